/* Option table, typed setters/getters, env and flag parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmicro/micro.h"

static int
setup(void **state)
{
    micro_options *o = NULL;
    micro_log_set_logger(micro_log_null, NULL);
    assert_int_equal(micro_options_new(&o), 0);
    *state = o;
    return 0;
}

static int
teardown(void **state)
{
    micro_options_free(*state);
    micro_log_set_logger(NULL, NULL);
    return 0;
}

static void
test_defaults(void **state)
{
    micro_options *o = *state;
    assert_string_equal(micro_options_get_str(o, "server_name"),
        "go.micro.server");
    assert_null(micro_options_get_str(o, "server_id"));
    assert_int_equal(micro_options_get_int(o, "server_workers"), 16);
    assert_int_equal(micro_options_get_ms(o, "register_ttl"), 60000);
    assert_int_equal(micro_options_get_ms(o, "selector_ttl"), 60000);
    assert_int_equal(micro_options_get_ms(o, "server_drain"), 10000);
    assert_false(micro_options_get_bool(o, "server_inline"));
    assert_int_equal(
        micro_options_get_int(o, "transport_max_message_size"), 4194304);
    assert_false(micro_options_is_set(o, "registry"));
    /* A NULL options object reads the defaults. */
    assert_string_equal(micro_options_get_str(NULL, "registry"), "mdns");
    assert_int_equal(micro_options_get_int(NULL, "client_retries"), 5);

    const micro_option_desc *k = micro_options_known();
    size_t n = 0;
    while (k[n].name != NULL) {
        n++;
    }
    /* Every Go Micro flag this version reads is known, once. */
    assert_true(n >= 34);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            assert_string_not_equal(k[i].name, k[j].name);
        }
    }
}

static void
test_setters(void **state)
{
    micro_options *o = *state;
    assert_int_equal(micro_options_set_str(o, "registry", "mdns"), 0);
    assert_string_equal(micro_options_get_str(o, "registry"), "mdns");
    assert_true(micro_options_is_set(o, "registry"));
    assert_int_equal(micro_options_set_str(o, "registry.address", "a:1"), 0);
    assert_string_equal(micro_options_get_str(o, "registry_address"), "a:1");

    assert_int_equal(micro_options_set_int(o, "client_retries", 2), 0);
    assert_int_equal(micro_options_get_int(o, "client_retries"), 2);
    assert_int_equal(micro_options_set_ms(o, "register_ttl", 1500), 0);
    assert_int_equal(micro_options_get_ms(o, "register_ttl"), 1500);
    assert_int_equal(micro_options_set_bool(o, "server_inline", true), 0);
    assert_true(micro_options_get_bool(o, "server_inline"));

    /* Text forms go through the option's type. */
    assert_int_equal(micro_options_set_str(o, "client_pool_size", "7"), 0);
    assert_int_equal(micro_options_get_int(o, "client_pool_size"), 7);
    assert_int_equal(micro_options_set_str(o, "server_inline", "no"), 0);
    assert_false(micro_options_get_bool(o, "server_inline"));

    assert_int_equal(micro_options_set_str(o, "nope", "x"), MICRO_ENOENT);
    assert_int_equal(micro_options_set_int(o, "nope", 1), MICRO_ENOENT);
    assert_int_equal(micro_options_set_int(o, "registry", 1), MICRO_EBADTYPE);
    assert_int_equal(
        micro_options_set_bool(o, "client_retries", true), MICRO_EBADTYPE);
    assert_int_equal(
        micro_options_set_ms(o, "register_ttl", -1), MICRO_EBADTYPE);
    assert_int_equal(
        micro_options_set_str(o, "client_retries", "5x"), MICRO_EBADTYPE);
    assert_int_equal(
        micro_options_set_str(o, "client_retries", ""), MICRO_EBADTYPE);
    assert_int_equal(
        micro_options_set_str(o, "server_inline", "maybe"), MICRO_EBADTYPE);
    assert_int_equal(micro_options_get_int(o, "client_retries"), 2);
}

static void
expect_ms(micro_options *o, const char *text, int64_t ms)
{
    assert_int_equal(micro_options_set_str(o, "register_ttl", text), 0);
    assert_int_equal(micro_options_get_ms(o, "register_ttl"), ms);
}

static void
test_durations(void **state)
{
    micro_options *o = *state;
    expect_ms(o, "60", 60000); /* bare number: seconds, like Go Micro */
    expect_ms(o, "0", 0);
    expect_ms(o, "1m30s", 90000);
    expect_ms(o, "250ms", 250);
    expect_ms(o, "500ms", 500);
    expect_ms(o, "5s", 5000);
    expect_ms(o, "1m", 60000);
    expect_ms(o, "2h", 7200000);
    expect_ms(o, "1.5s", 1500);
    expect_ms(o, "1h2m3s4ms", 3723004);
    expect_ms(o, "100us", 0);
    expect_ms(o, "1500us", 2);
    expect_ms(o, "1ns", 0);
    expect_ms(o, "2000000ns", 2);
    static const char *const bad[] = {"-1", "-5s", "", "s", "5x", "5 s",
        "1e3s", "0x10s", "inf", "nan", "1m30", " 5s", "5s ", "--1",
        "1e13", "1e400h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            micro_options_set_str(o, "register_ttl", bad[i]), MICRO_EBADTYPE);
    }
    assert_int_equal(micro_options_get_ms(o, "register_ttl"), 2);
    /* Durations too long for an int64 of nanoseconds saturate (they used
     * to overflow where the client turns the timeout into ns). */
    expect_ms(o, "99999999999999999999h", MICRO_DURATION_MAX_MS);
}

/* The longest duration, and everything beyond it, as text and as a
 * number; micro_parse_duration_ms agrees with the options. */
static void
test_duration_saturates(void **state)
{
    micro_options *o = *state;
    /* INT64_MAX / 1e6 - 1: its ns plus a receiver's rounding up to ms
     * still fit an int64. */
    assert_true(MICRO_DURATION_MAX_MS * 1000000 + 999999 <= INT64_MAX);
    assert_true((uint64_t) (MICRO_DURATION_MAX_MS + 1) * 1000000u + 999999u >
        (uint64_t) INT64_MAX);
    expect_ms(o, "9223372036853ms", MICRO_DURATION_MAX_MS);
    expect_ms(o, "9223372036852ms", MICRO_DURATION_MAX_MS - 1);
    expect_ms(o, "9223372036854ms", MICRO_DURATION_MAX_MS);
    expect_ms(o, "10000000000000", MICRO_DURATION_MAX_MS); /* seconds */
}

static void
test_duration_saturates_numbers(void **state)
{
    micro_options *o = *state;
    static const char *const huge[] = {"106751991167h", "9999999999999999m",
        "18446744073709551616ns", "2562047788015216h1m",
        /* 400 digits: strtold overflows to infinity */
        "1000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000s"};
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        assert_int_equal(
            micro_options_set_str(o, "client_request_timeout", huge[i]), 0);
        assert_int_equal(micro_options_get_ms(o, "client_request_timeout"),
            MICRO_DURATION_MAX_MS);
        int64_t ms = 0;
        assert_int_equal(micro_parse_duration_ms(huge[i], &ms), 0);
        assert_int_equal(ms, MICRO_DURATION_MAX_MS);
    }
    assert_int_equal(
        micro_options_set_ms(o, "client_request_timeout", INT64_MAX), 0);
    assert_int_equal(micro_options_get_ms(o, "client_request_timeout"),
        MICRO_DURATION_MAX_MS);
    assert_int_equal(
        micro_options_set_ms(o, "client_request_timeout", 1234), 0);
    assert_int_equal(micro_options_get_ms(o, "client_request_timeout"), 1234);
    assert_int_equal(micro_options_set_ms(o, "client_request_timeout", -1),
        MICRO_EBADTYPE);
    /* Tiny values round to zero rather than fail. */
    int64_t ms = 7;
    assert_int_equal(micro_parse_duration_ms("0.0000000000001s", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(micro_parse_duration_ms("1500ms", &ms), 0);
    assert_int_equal(ms, 1500);
    static const char *const bad[] = {"1e13", "-1s", "inf", "", "5x",
        "300000y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = 7;
        assert_int_equal(micro_parse_duration_ms(bad[i], &ms), MICRO_EINVAL);
        assert_int_equal(ms, 7);
    }
    assert_int_equal(micro_parse_duration_ms(NULL, &ms), MICRO_EINVAL);
    assert_int_equal(micro_parse_duration_ms("1s", NULL), MICRO_EINVAL);
}

static void
test_env_and_flags(void **state)
{
    micro_options *o = *state;
    setenv("MICRO_REGISTRY", "etcd", 1);
    setenv("MICRO_REGISTER_TTL", "90", 1);
    setenv("MICRO_SERVER_ADDRESS", "127.0.0.1:9090", 1);
    setenv("MICRO_CLIENT_RETRIES", "3", 1);

    char *args[] = {"prog", "--registry=mdns", "pos1", "--unknown=1",
        "--register_ttl", "1m30s", "--server_inline", "-x", "pos2",
        "--client_pool_size=9", NULL};
    int argc = 10;
    bool help = true;
    assert_int_equal(micro_options_parse_args(o, &argc, args, &help), 0);
    assert_false(help);
    assert_int_equal(argc, 5);
    assert_string_equal(args[0], "prog");
    assert_string_equal(args[1], "pos1");
    assert_string_equal(args[2], "--unknown=1");
    assert_string_equal(args[3], "-x");
    assert_string_equal(args[4], "pos2");
    assert_null(args[5]);

    /* Flags win over the environment even when env is loaded after. */
    assert_int_equal(micro_options_load_env(o), 0);
    assert_string_equal(micro_options_get_str(o, "registry"), "mdns");
    assert_int_equal(micro_options_get_ms(o, "register_ttl"), 90000);
    assert_true(micro_options_get_bool(o, "server_inline"));
    assert_int_equal(micro_options_get_int(o, "client_pool_size"), 9);
    /* ...while the environment wins over defaults. */
    assert_string_equal(
        micro_options_get_str(o, "server_address"), "127.0.0.1:9090");
    assert_int_equal(micro_options_get_int(o, "client_retries"), 3);

    /* Env over a setter value, flag over env. */
    micro_options *p = NULL;
    assert_int_equal(micro_options_new(&p), 0);
    assert_int_equal(micro_options_set_str(p, "registry", "consul"), 0);
    assert_int_equal(micro_options_load_env(p), 0);
    assert_string_equal(micro_options_get_str(p, "registry"), "etcd");
    assert_int_equal(micro_options_get_ms(p, "register_ttl"), 90000);
    char *a2[] = {"prog", "--registry", "nats", NULL};
    argc = 3;
    assert_int_equal(micro_options_parse_args(p, &argc, a2, NULL), 0);
    assert_int_equal(argc, 1);
    assert_null(a2[1]);
    assert_string_equal(micro_options_get_str(p, "registry"), "nats");

    setenv("MICRO_CLIENT_RETRIES", "many", 1);
    assert_int_equal(micro_options_load_env(p), MICRO_EBADTYPE);
    micro_options_free(p);

    unsetenv("MICRO_REGISTRY");
    unsetenv("MICRO_REGISTER_TTL");
    unsetenv("MICRO_SERVER_ADDRESS");
    unsetenv("MICRO_CLIENT_RETRIES");
}

static void
test_flag_errors_and_bools(void **state)
{
    micro_options *o = *state;
    char *a[] = {"prog", "--server_inline=false", "--client_retries", NULL};
    int argc = 3;
    assert_int_equal(
        micro_options_parse_args(o, &argc, a, NULL), MICRO_EBADTYPE);
    assert_false(micro_options_get_bool(o, "server_inline"));
    assert_int_equal(argc, 2);
    assert_string_equal(a[1], "--client_retries");

    char *b[] = {"prog", "--register_ttl=-1", "rest", NULL};
    argc = 3;
    assert_int_equal(
        micro_options_parse_args(o, &argc, b, NULL), MICRO_EBADTYPE);
    assert_int_equal(argc, 3);

    /* A bool flag does not eat the next argument; "--" ends our flags. */
    char *c[] = {"prog", "--server_inline", "file", "--", "--registry=x",
        NULL};
    argc = 5;
    assert_int_equal(micro_options_parse_args(o, &argc, c, NULL), 0);
    assert_int_equal(argc, 4);
    assert_string_equal(c[1], "file");
    assert_string_equal(c[2], "--");
    assert_string_equal(c[3], "--registry=x");
    assert_true(micro_options_get_bool(o, "server_inline"));
    assert_false(micro_options_is_set(o, "registry"));
}

static void
test_help_and_dup(void **state)
{
    micro_options *o = *state;
    fflush(stdout);
    FILE *saved = stdout;
    FILE *tmp = tmpfile();
    stdout = tmp;
    char *a[] = {"prog", "--help", "x", NULL};
    int argc = 3;
    bool help = false;
    assert_int_equal(micro_options_parse_args(o, &argc, a, &help), 0);
    stdout = saved;
    assert_true(help);
    assert_int_equal(argc, 2);
    assert_string_equal(a[1], "x");
    char buf[8192] = {0};
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof(buf) - 1, tmp);
    fclose(tmp);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "--register_ttl"));
    assert_non_null(strstr(buf, "MICRO_REGISTER_TTL"));
    assert_non_null(strstr(buf, "60s"));

    assert_int_equal(micro_options_set_str(o, "server_name", "greeter"), 0);
    assert_int_equal(micro_options_set_int(o, "client_retries", 1), 0);
    micro_options *d = NULL;
    assert_int_equal(micro_options_dup(o, &d), 0);
    assert_int_equal(micro_options_set_str(o, "server_name", "other"), 0);
    assert_string_equal(micro_options_get_str(d, "server_name"), "greeter");
    assert_int_equal(micro_options_get_int(d, "client_retries"), 1);
    assert_true(micro_options_is_set(d, "server_name"));
    assert_false(micro_options_is_set(d, "registry"));
    micro_options_free(d);
    micro_options_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_duration_saturates, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_duration_saturates_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_and_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_flag_errors_and_bools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_and_dup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
