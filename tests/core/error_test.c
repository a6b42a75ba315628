/* Return-code text and Go Micro's remote error JSON. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cmicro/micro.h"

static void
test_strerror_and_names(void **state)
{
    (void) state;
    assert_string_equal(micro_strerror(MICRO_ETIMEDOUT), "timed out");
    assert_string_equal(micro_strerror(MICRO_ECODEC), "codec error");
    assert_string_equal(micro_err_name(MICRO_ETIMEDOUT), "MICRO_ETIMEDOUT");
    assert_string_equal(micro_err_name(MICRO_ENOENDPOINT),
        "MICRO_ENOENDPOINT");
    assert_string_equal(micro_err_name(-ENOTDIR), "MICRO_UNKNOWN");
    assert_string_equal(micro_err_name(12345), "MICRO_UNKNOWN");
    assert_int_equal(MICRO_ETIMEDOUT, -ETIMEDOUT);
    /* A system code outside the table falls back to the C library. */
    assert_string_equal(micro_strerror(-ENOTDIR), "Not a directory");
    /* Never NULL, whatever the input. */
    assert_string_equal(micro_strerror(-4999), "unknown error");
    assert_string_equal(micro_strerror(-99999), "unknown error");
    assert_string_equal(micro_strerror(7), "unknown error");
    assert_non_null(micro_strerror(0));
    assert_non_null(micro_strerror(-100000000));
}

static void
test_status_text(void **state)
{
    (void) state;
    assert_string_equal(micro_status_text(100), "Continue");
    assert_string_equal(micro_status_text(200), "OK");
    assert_string_equal(micro_status_text(400), "Bad Request");
    assert_string_equal(micro_status_text(401), "Unauthorized");
    assert_string_equal(micro_status_text(404), "Not Found");
    assert_string_equal(micro_status_text(408), "Request Timeout");
    assert_string_equal(micro_status_text(418), "I'm a teapot");
    assert_string_equal(micro_status_text(500), "Internal Server Error");
    assert_string_equal(micro_status_text(511),
        "Network Authentication Required");
    assert_string_equal(micro_status_text(0), "");
    assert_string_equal(micro_status_text(299), "");
    assert_string_equal(micro_status_text(-1), "");
    assert_string_equal(micro_status_text(600), "");
}

static void
test_to_json_golden(void **state)
{
    (void) state;
    micro_error *e = micro_error_new("greeter", 400, "name required");
    assert_non_null(e);
    assert_string_equal(e->status, "Bad Request");
    char *j = micro_error_to_json(e);
    assert_string_equal(j,
        "{\"id\":\"greeter\",\"code\":400,\"detail\":\"name required\","
        "\"status\":\"Bad Request\"}");
    free(j);

    micro_error *d = micro_error_dup(e);
    assert_non_null(d);
    assert_ptr_not_equal(d->id, e->id);
    assert_string_equal(d->id, "greeter");
    assert_int_equal(d->code, 400);
    micro_error_free(e);
    micro_error_free(d);
    micro_error_free(NULL);
    assert_null(micro_error_dup(NULL));
}

static void
test_to_json_omitempty(void **state)
{
    (void) state;
    /* Unknown code: no status; zero code and empty strings omitted. */
    micro_error *e = micro_error_new(NULL, 0, "boom");
    assert_null(e->status);
    char *j = micro_error_to_json(e);
    assert_string_equal(j, "{\"detail\":\"boom\"}");
    free(j);
    micro_error_free(e);

    e = micro_error_new("", 799, NULL);
    assert_null(e->status);
    j = micro_error_to_json(e);
    assert_string_equal(j, "{\"code\":799}");
    free(j);
    micro_error_free(e);

    micro_error z = {0};
    j = micro_error_to_json(&z);
    assert_string_equal(j, "{}");
    free(j);

    e = micro_error_new("x", -5, NULL);
    j = micro_error_to_json(e);
    assert_string_equal(j, "{\"id\":\"x\",\"code\":-5}");
    free(j);
    micro_error_free(e);
}

static void
test_to_json_go_escaping(void **state)
{
    (void) state;
    micro_error e = {0};
    e.detail = "a\"b\\c\nd\re\tf\x01g\x1f<h>&i\x7fj";
    char *j = micro_error_to_json(&e);
    assert_string_equal(j,
        "{\"detail\":\"a\\\"b\\\\c\\nd\\re\\tf\\u0001g\\u001f\\u003ch"
        "\\u003e\\u0026i\x7fj\"}");
    free(j);

    /* Valid UTF-8 passes through; U+2028/9 are escaped; invalid bytes
     * become U+FFFD as in Go. */
    e.detail = "\xc3\xa9\xe2\x80\xa8\xe2\x80\xa9\xf0\x9f\x98\x80|\xff|"
               "\xc0\xaf|\xed\xa0\x80|\xe2\x82";
    j = micro_error_to_json(&e);
    assert_string_equal(j,
        "{\"detail\":\"\xc3\xa9\\u2028\\u2029\xf0\x9f\x98\x80|\\ufffd|"
        "\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\"}");
    free(j);
}

static void
test_parse_json(void **state)
{
    (void) state;
    const char *t = "{\"id\":\"greeter\",\"code\":400,\"detail\":\"name "
                    "required\",\"status\":\"Bad Request\"}";
    micro_error *e = micro_error_parse(t, strlen(t));
    assert_non_null(e);
    assert_string_equal(e->id, "greeter");
    assert_int_equal(e->code, 400);
    assert_string_equal(e->detail, "name required");
    assert_string_equal(e->status, "Bad Request");
    /* Round trip gives the same bytes. */
    char *j = micro_error_to_json(e);
    assert_string_equal(j, t);
    free(j);
    micro_error_free(e);

    /* Partial objects, extra fields, whitespace; no NUL terminator. */
    const char *t2 = " {\"code\":408,\"x\":[1,2],\"detail\":\"slow\"}\n";
    char *copy = malloc(strlen(t2));
    memcpy(copy, t2, strlen(t2));
    e = micro_error_parse(copy, strlen(t2));
    free(copy);
    assert_null(e->id);
    assert_int_equal(e->code, 408);
    assert_string_equal(e->detail, "slow");
    assert_null(e->status);
    micro_error_free(e);

    /* Duplicate names: the last wins, names match without case, and a
     * later null leaves the value (encoding/json). Before, the first
     * "code" won, so a C client read 200 where Go reads 500. */
    const char *t4 = "{\"code\":200,\"Code\":500,\"detail\":\"a\","
                     "\"DETAIL\":\"b\",\"id\":\"x\",\"id\":null}";
    e = micro_error_parse(t4, strlen(t4));
    assert_int_equal(e->code, 500);
    assert_string_equal(e->detail, "b");
    assert_string_equal(e->id, "x");
    micro_error_free(e);

    /* Escapes are decoded. */
    const char *t3 = "{\"detail\":\"a\\u003cb\\n\"}";
    e = micro_error_parse(t3, strlen(t3));
    assert_string_equal(e->detail, "a<b\n");
    micro_error_free(e);
}

static void
expect_fallback(const char *t)
{
    micro_error *e = micro_error_parse(t, strlen(t));
    assert_non_null(e);
    assert_null(e->id);
    assert_int_equal(e->code, 0);
    assert_null(e->status);
    if (t[0] == '\0') {
        assert_null(e->detail);
    } else {
        assert_non_null(e->detail);
        assert_string_equal(e->detail, t);
    }
    micro_error_free(e);
}

static void
test_parse_fallback(void **state)
{
    (void) state;
    expect_fallback("rpc: can't find service Foo");
    expect_fallback("");
    expect_fallback("{\"id\":\"x\""); /* truncated */
    expect_fallback("{\"id\":\"x\"} trailing");
    expect_fallback("[1,2,3]");
    expect_fallback("\"just a string\"");
    expect_fallback("42");
    expect_fallback("{\"code\":\"400\"}");
    expect_fallback("{\"code\":1.5}");
    expect_fallback("{\"code\":99999999999}");
    expect_fallback("{\"id\":7}");

    /* As Go: a member of the wrong type leaves the members decoded
     * around it, and the detail is the whole text. */
    const char *tm = "{\"id\":\"svc\",\"code\":\"400\",\"status\":\"x\"}";
    micro_error *te = micro_error_parse(tm, strlen(tm));
    assert_string_equal(te->id, "svc");
    assert_int_equal(te->code, 0);
    assert_string_equal(te->status, "x");
    assert_string_equal(te->detail, tm);
    micro_error_free(te);

    /* 1000-deep nesting must not crash. */
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    expect_fallback(deep);
    free(deep);

    /* The length bounds the text. */
    micro_error *e = micro_error_parse("abcdef", 3);
    assert_string_equal(e->detail, "abc");
    micro_error_free(e);

    /* JSON null decodes to an empty error, as Go's Unmarshal does. */
    e = micro_error_parse("null", 4);
    assert_null(e->detail);
    assert_int_equal(e->code, 0);
    micro_error_free(e);

    e = micro_error_parse(NULL, 0);
    assert_non_null(e);
    micro_error_free(e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_and_names),
        cmocka_unit_test(test_status_text),
        cmocka_unit_test(test_to_json_golden),
        cmocka_unit_test(test_to_json_omitempty),
        cmocka_unit_test(test_to_json_go_escaping),
        cmocka_unit_test(test_parse_json),
        cmocka_unit_test(test_parse_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
