/* application/json: validation and json.Encoder's trailing newline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cmicro/micro.h"

static const micro_codec_ops *c = &micro_codec_json_ops;

static void
expect_wire(micro_buf *b, const char *want)
{
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, b->len);
    micro_buf_clear(b);
}

static void
test_write(void **state)
{
    (void) state;
    micro_codec_info info = {0};
    micro_buf w = {0};
    const char *p = "{\"name\":\"John\"}";
    assert_int_equal(c->write_request(&info, p, strlen(p), &w), 0);
    expect_wire(&w, "{\"name\":\"John\"}\n");
    /* A payload already ending in '\n' gets no second one. */
    assert_int_equal(c->write_request(&info, "{}\n", 3, &w), 0);
    expect_wire(&w, "{}\n");
    /* Empty payload: "{}\n", which Go can decode. */
    assert_int_equal(c->write_request(&info, NULL, 0, &w), 0);
    expect_wire(&w, "{}\n");
    assert_int_equal(c->write_response(&info, "", 0, &w), 0);
    expect_wire(&w, "{}\n");
    const char *r = "{\"msg\":\"Hello John\"}";
    assert_int_equal(c->write_response(&info, r, strlen(r), &w), 0);
    expect_wire(&w, "{\"msg\":\"Hello John\"}\n");
    /* An error response has an empty body (Micro-Error carries it). */
    info.error = "{\"code\":500}";
    assert_int_equal(c->write_response(&info, r, strlen(r), &w), 0);
    assert_int_equal(w.len, 0);
    micro_buf_clear(&w);
}

static void
test_read_request(void **state)
{
    (void) state;
    micro_codec_info info = {0};
    micro_buf p = {0};
    const char *body = "{\"name\":\"John\",\"n\":12345678901234567890}\n";
    assert_int_equal(c->read_request(body, strlen(body), &info, &p), 0);
    expect_wire(&p, body); /* as is, big numbers untouched */
    assert_int_equal(c->read_request("", 0, &info, &p), 0);
    assert_int_equal(p.len, 0);
    assert_int_equal(c->read_request(" \r\n", 3, &info, &p), 0);
    assert_int_equal(p.len, 0);
    assert_int_equal(c->read_request("[1, 2]", 6, &info, &p), 0);
    expect_wire(&p, "[1, 2]");
    assert_null(info.endpoint);

    static const char *const bad[] = {"{\"name\":", "{\"a\":1} {", "nul",
        "{'a':1}", "{\"a\":1,}", "]", "\"unterminated"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(c->read_request(bad[i], strlen(bad[i]), &info, &p),
            MICRO_ECODEC);
        assert_int_equal(p.len, 0);
    }
    /* The length bounds the input: a valid prefix of a longer buffer. */
    char *exact = malloc(7);
    memcpy(exact, "{\"a\":1}", 7);
    assert_int_equal(c->read_request(exact, 7, &info, &p), 0);
    expect_wire(&p, "{\"a\":1}");
    assert_int_equal(c->read_request(exact, 6, &info, &p), MICRO_ECODEC);
    free(exact);

    /* Deep nesting is refused, not a crash. */
    size_t n = 100000;
    char *deep = malloc(2 * n);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    assert_int_equal(c->read_request(deep, 2 * n, &info, &p), MICRO_ECODEC);
    free(deep);
    micro_buf_clear(&p);
}

static void
test_read_response(void **state)
{
    (void) state;
    micro_codec_info info = {0};
    micro_buf p = {0};
    const char *body = "{\"msg\":\"Hello John\"}\n";
    assert_int_equal(c->read_response(body, strlen(body), &info, &p), 0);
    expect_wire(&p, body);
    assert_null(info.error);
    assert_int_equal(c->read_response("", 0, &info, &p), 0);
    assert_int_equal(p.len, 0);
    micro_buf_clear(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_read_request),
        cmocka_unit_test(test_read_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
