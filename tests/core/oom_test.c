/*
 * Out-of-memory torture (tests/support/failalloc.h) of the core value
 * types: micro_msg (headers in and beyond the inline arrays and the arena,
 * bodies) and micro_error (new, dup, parse, to_json). Every allocation of
 * each operation fails in turn; the operation must report MICRO_ENOMEM
 * (or absorb the failure), leak nothing, and leave its object usable.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmicro/micro.h"
#include "support/failalloc.h"

/* --- micro_msg ------------------------------------------------------ */

typedef struct msgcase {
    micro_msg *m;
    size_t preset; /* headers set in setup */
} msgcase;

static char long_value[3000];

/* Build a message from nothing: new, headers (some long enough to leave
 * the arena, enough to leave the inline array), a replaced header, body. */
static int
msg_build(void *arg)
{
    msgcase *c = arg;
    int rc = micro_msg_new(&c->m);
    for (int i = 0; rc == 0 && i < 24; i++) {
        char k[32];
        snprintf(k, sizeof(k), "X-Header-%d", i);
        rc = micro_msg_set_header(c->m, k, i % 5 == 0 ? long_value : "v");
    }
    if (rc == 0) {
        rc = micro_msg_set_header(c->m, "x-header-3", long_value);
    }
    if (rc == 0) {
        rc = micro_msg_set_body(c->m, long_value, sizeof(long_value) - 1);
    }
    return rc;
}

/* Whatever was set is whole; the message takes more. */
static void
msg_usable(micro_msg *m)
{
    size_t n = micro_msg_header_count(m);
    for (size_t i = 0; i < n; i++) {
        const char *k = NULL, *v = NULL;
        assert_int_equal(micro_msg_header_at(m, i, &k, &v), 0);
        assert_non_null(k);
        assert_non_null(v);
        assert_true(strcmp(v, "v") == 0 || strcmp(v, long_value) == 0);
        assert_ptr_equal(micro_msg_header(m, k), v);
    }
    assert_int_equal(micro_msg_set_header(m, "X-After", "ok"), 0);
    assert_string_equal(micro_msg_header(m, "x-after"), "ok");
    assert_int_equal(micro_msg_header_count(m), n + 1);
    assert_int_equal(micro_msg_set_body(m, "body", 4), 0);
    size_t len = 0;
    assert_memory_equal(micro_msg_body(m, &len), "body", 4);
    assert_int_equal(len, 4);
}

static int
msg_build_check(void *arg, int rc)
{
    msgcase *c = arg;
    if (rc == 0) {
        assert_int_equal(micro_msg_header_count(c->m), 24);
        assert_string_equal(micro_msg_header(c->m, "X-HEADER-3"), long_value);
        assert_string_equal(micro_msg_header(c->m, "x-header-23"), "v");
        size_t len = 0;
        micro_msg_body(c->m, &len);
        assert_int_equal(len, sizeof(long_value) - 1);
    }
    if (c->m == NULL) {
        assert_int_equal(rc, MICRO_ENOMEM); /* only new itself failed */
        assert_int_equal(micro_msg_new(&c->m), 0);
    }
    msg_usable(c->m);
    return 0;
}

static void
msg_teardown(void *arg)
{
    msgcase *c = arg;
    micro_msg_free(c->m);
    c->m = NULL;
}

/* One header on a message that is full (inline array and arena used): a
 * failure leaves it exactly as it was. */
static int
msg_full_setup(void *arg)
{
    msgcase *c = arg;
    int rc = micro_msg_new(&c->m);
    for (size_t i = 0; rc == 0 && i < c->preset; i++) {
        char k[32];
        snprintf(k, sizeof(k), "Pre-%zu", i);
        rc = micro_msg_set_header(c->m, k, long_value);
    }
    return rc;
}

static int
msg_add_one(void *arg)
{
    msgcase *c = arg;
    int rc = micro_msg_set_header(c->m, "Added", long_value);
    if (rc == 0) {
        rc = micro_msg_set_header(c->m, "Pre-0", "v"); /* replace */
    }
    return rc;
}

static int
msg_add_one_check(void *arg, int rc)
{
    msgcase *c = arg;
    size_t n = micro_msg_header_count(c->m);
    const char *added = micro_msg_header(c->m, "added");
    if (rc == 0) {
        assert_int_equal(n, c->preset + 1);
        assert_string_equal(micro_msg_header(c->m, "pre-0"), "v");
    } else {
        /* Either nothing happened, or the add did and the replace not. */
        assert_int_equal(n, c->preset + (added != NULL));
        assert_string_equal(micro_msg_header(c->m, "pre-0"), long_value);
    }
    msg_usable(c->m);
    return 0;
}

static void
test_msg(void **state)
{
    (void) state;
    memset(long_value, 'L', sizeof(long_value) - 1);
    static msgcase c;
    failalloc_case build = {.name = "micro_msg build",
        .arg = &c,
        .op = msg_build,
        .check = msg_build_check,
        .teardown = msg_teardown};
    assert_true(failalloc_run(&build) >= 5);
    c.preset = 40;
    failalloc_case add = {.name = "micro_msg set_header on a full message",
        .arg = &c,
        .setup = msg_full_setup,
        .op = msg_add_one,
        .check = msg_add_one_check,
        .teardown = msg_teardown};
    assert_true(failalloc_run(&add) >= 1);
}

/* --- micro_error ---------------------------------------------------- */

typedef struct errcase {
    micro_error *e;
    char *json;
} errcase;

static const char err_json[] = "{\"id\":\"go.micro.client\",\"code\":408,"
                               "\"detail\":\"call timed out\",\"status\":"
                               "\"Request Timeout\"}";

/* new, dup, to_json, parse: the full cycle. */
static int
err_cycle(void *arg)
{
    errcase *c = arg;
    micro_error *e = micro_error_new("go.micro.client", 408, "call timed out");
    if (e == NULL) {
        return MICRO_ENOMEM;
    }
    micro_error *d = micro_error_dup(e);
    micro_error_free(e);
    if (d == NULL) {
        return MICRO_ENOMEM;
    }
    c->json = micro_error_to_json(d);
    micro_error_free(d);
    if (c->json == NULL) {
        return MICRO_ENOMEM;
    }
    c->e = micro_error_parse(c->json, strlen(c->json));
    return c->e != NULL ? 0 : MICRO_ENOMEM;
}

static int
err_cycle_check(void *arg, int rc)
{
    errcase *c = arg;
    if (rc == 0) {
        assert_string_equal(c->json, err_json);
        /* Parsed as JSON: not degraded to "the text as detail". */
        assert_string_equal(c->e->id, "go.micro.client");
        assert_int_equal(c->e->code, 408);
        assert_string_equal(c->e->detail, "call timed out");
        assert_string_equal(c->e->status, "Request Timeout");
    } else {
        assert_null(c->e);
    }
    micro_error *again = micro_error_parse(err_json, sizeof(err_json) - 1);
    assert_non_null(again);
    assert_int_equal(again->code, 408);
    micro_error_free(again);
    return 0;
}

static void
err_teardown(void *arg)
{
    errcase *c = arg;
    micro_error_free(c->e);
    free(c->json); /* micro_error_to_json's: plain free() */
    c->e = NULL;
    c->json = NULL;
}

/* Not JSON: the whole text becomes the detail, or out of memory. */
static int
err_parse_text(void *arg)
{
    errcase *c = arg;
    c->e = micro_error_parse("plain failure", 13);
    return c->e != NULL ? 0 : MICRO_ENOMEM;
}

static int
err_parse_text_check(void *arg, int rc)
{
    errcase *c = arg;
    if (rc == 0) {
        assert_int_equal(c->e->code, 0);
        assert_string_equal(c->e->detail, "plain failure");
    }
    return 0;
}

static void
test_error(void **state)
{
    (void) state;
    static errcase c;
    failalloc_case cycle = {.name = "micro_error new/dup/to_json/parse",
        .arg = &c,
        .op = err_cycle,
        .check = err_cycle_check,
        .teardown = err_teardown};
    assert_true(failalloc_run(&cycle) >= 8);
    failalloc_case text = {.name = "micro_error_parse of text",
        .arg = &c,
        .op = err_parse_text,
        .check = err_parse_text_check,
        .teardown = err_teardown};
    assert_true(failalloc_run(&text) >= 2);
}

int
main(void)
{
    if (failalloc_install() != 0) {
        fprintf(stderr, "oom_test: micro_init refused the hooks\n");
        return 1;
    }
    micro_log_set_level(MICRO_LOG_NONE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg),
        cmocka_unit_test(test_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
