/* Levels, MICRO_LOG_LEVEL, custom loggers and the stderr line format. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmicro/micro.h"

typedef struct capture {
    int calls;
    micro_log_level lvl;
    char component[64];
    char msg[4096];
} capture;

static void
capture_logger(void *arg, micro_log_level lvl, const char *component,
    const char *msg)
{
    capture *c = arg;
    c->calls++;
    c->lvl = lvl;
    snprintf(c->component, sizeof(c->component), "%s", component);
    snprintf(c->msg, sizeof(c->msg), "%s", msg);
}

static void
test_env_level_read_at_first_use(void **state)
{
    (void) state;
    /* main() set MICRO_LOG_LEVEL=info before anything logged. */
    assert_true(micro_log_enabled(MICRO_LOG_INFO));
    assert_false(micro_log_enabled(MICRO_LOG_DEBUG));
    /* Changing the environment later has no effect: read once. */
    setenv("MICRO_LOG_LEVEL", "err", 1);
    assert_true(micro_log_enabled(MICRO_LOG_INFO));
}

static void
test_levels(void **state)
{
    (void) state;
    capture c = {0};
    micro_log_set_logger(capture_logger, &c);
    micro_log_set_level(MICRO_LOG_NOTICE);
    assert_true(micro_log_enabled(MICRO_LOG_ERR));
    assert_true(micro_log_enabled(MICRO_LOG_NOTICE));
    assert_false(micro_log_enabled(MICRO_LOG_INFO));
    assert_false(micro_log_enabled(MICRO_LOG_NONE));

    micro_log(MICRO_LOG_INFO, "test", "dropped %d", 1);
    assert_int_equal(c.calls, 0);
    micro_log(MICRO_LOG_WARN, "registry.etcd", "kept %d %s", 2, "x");
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.lvl, MICRO_LOG_WARN);
    assert_string_equal(c.component, "registry.etcd");
    assert_string_equal(c.msg, "kept 2 x");

    micro_log_set_level(MICRO_LOG_NONE);
    micro_log(MICRO_LOG_ERR, "test", "nothing");
    assert_int_equal(c.calls, 1);

    micro_log_set_level(MICRO_LOG_DEBUG);
    micro_log(MICRO_LOG_DEBUG, "test", "debug");
    assert_int_equal(c.calls, 2);
    micro_log_set_logger(NULL, NULL);
}

static void
test_one_line_and_truncation(void **state)
{
    (void) state;
    capture c = {0};
    micro_log_set_logger(capture_logger, &c);
    micro_log_set_level(MICRO_LOG_DEBUG);
    micro_log(MICRO_LOG_ERR, "t", "a\nb\rc");
    assert_string_equal(c.msg, "a b c");

    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    micro_log(MICRO_LOG_ERR, "t", "%s", big);
    assert_true(strlen(c.msg) >= 1000 && strlen(c.msg) < 1024);
    assert_int_equal(c.msg[0], 'x');

    micro_log_set_logger(micro_log_null, NULL);
    micro_log(MICRO_LOG_ERR, "t", "to nowhere");
    micro_log_set_logger(NULL, NULL);
}

static void
test_stderr_format(void **state)
{
    (void) state;
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    dup2(fileno(tmp), 2);
    micro_log_set_logger(NULL, NULL);
    micro_log_set_level(MICRO_LOG_NOTICE);
    micro_log(MICRO_LOG_WARN, "server", "listening on %s", "[::]:8080");
    micro_log(MICRO_LOG_INFO, "server", "dropped");
    micro_log_stderr(NULL, MICRO_LOG_ERR, "direct", "called directly");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    char out[512] = {0};
    rewind(tmp);
    size_t n = fread(out, 1, sizeof(out) - 1, tmp);
    fclose(tmp);
    assert_true(n > 0);
    regex_t re;
    assert_int_equal(regcomp(&re,
                         "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:"
                         "[0-9]{2}\\.[0-9]{3}Z WARN server: listening on "
                         "\\[::\\]:8080\n"
                         "[0-9]{4}-[^ ]+Z ERROR direct: called directly\n$",
                         REG_EXTENDED),
        0);
    assert_int_equal(regexec(&re, out, 0, NULL, 0), 0);
    regfree(&re);
}

int
main(void)
{
    setenv("MICRO_LOG_LEVEL", "info", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_level_read_at_first_use),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_one_line_and_truncation),
        cmocka_unit_test(test_stderr_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
