/* application/json-rpc: Go Micro's JSON-RPC 1.0 envelope (spec §3.5). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cmicro/micro.h"

static const micro_codec_ops *c = &micro_codec_jsonrpc_ops;

static void
expect_buf(micro_buf *b, const char *want)
{
    assert_int_equal(b->len, strlen(want));
    assert_memory_equal(b->data, want, b->len);
    micro_buf_clear(b);
}

/* Run read_request on an exact-length heap copy (no NUL after it). */
static int
read_req(const char *text, micro_codec_info *info, micro_buf *p)
{
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    int rc = c->read_request(copy, n, info, p);
    free(copy);
    return rc;
}

static int
read_rsp(const char *text, micro_codec_info *info, micro_buf *p)
{
    size_t n = strlen(text);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, text, n);
    int rc = c->read_response(copy, n, info, p);
    free(copy);
    return rc;
}

static void
test_round_trip(void **state)
{
    (void) state;
    /* Client writes the request. */
    micro_codec_info cinfo = {0};
    cinfo.endpoint = "Greeter.Hello";
    cinfo.id = "1";
    micro_buf wire = {0};
    const char *req = "{\"name\":\"John\"}\n";
    assert_int_equal(c->write_request(&cinfo, req, strlen(req), &wire), 0);
    const char *golden_req = "{\"method\":\"Greeter.Hello\",\"params\":[{"
                             "\"name\":\"John\"}],\"id\":\"1\"}\n";
    assert_int_equal(wire.len, strlen(golden_req));
    assert_memory_equal(wire.data, golden_req, wire.len);

    /* Server reads it. */
    micro_codec_info sinfo = {0};
    micro_buf payload = {0};
    assert_int_equal(c->read_request(wire.data, wire.len, &sinfo, &payload),
        0);
    assert_string_equal(sinfo.endpoint, "Greeter.Hello");
    assert_string_equal(sinfo.id, "1");
    assert_null(sinfo.error);
    expect_buf(&payload, "{\"name\":\"John\"}");
    micro_buf_clear(&wire);

    /* Server writes the response. */
    const char *rsp = "{\"msg\":\"Hello John\"}";
    assert_int_equal(c->write_response(&sinfo, rsp, strlen(rsp), &wire), 0);
    const char *golden_rsp =
        "{\"id\":\"1\",\"result\":{\"msg\":\"Hello John\"},\"error\":null}\n";
    assert_int_equal(wire.len, strlen(golden_rsp));
    assert_memory_equal(wire.data, golden_rsp, wire.len);

    /* Client reads it. */
    micro_codec_info rinfo = {0};
    assert_int_equal(
        c->read_response(wire.data, wire.len, &rinfo, &payload), 0);
    assert_string_equal(rinfo.id, "1");
    assert_null(rinfo.error);
    expect_buf(&payload, rsp);
    micro_buf_clear(&wire);
    micro_codec_info_clear(&sinfo);
    micro_codec_info_clear(&rinfo);
}

static void
test_error_response(void **state)
{
    (void) state;
    micro_codec_info info = {0};
    info.id = "7";
    info.error = "{\"id\":\"greeter\",\"code\":400,\"detail\":\"<bad>\"}";
    micro_buf wire = {0};
    assert_int_equal(c->write_response(&info, "{\"x\":1}", 7, &wire), 0);
    const char *golden =
        "{\"id\":\"7\",\"result\":null,\"error\":\"{\\\"id\\\":\\\"greeter\\\","
        "\\\"code\\\":400,\\\"detail\\\":\\\"\\u003cbad\\u003e\\\"}\"}\n";
    assert_int_equal(wire.len, strlen(golden));
    assert_memory_equal(wire.data, golden, wire.len);

    micro_codec_info r = {0};
    micro_buf p = {0};
    assert_int_equal(c->read_response(wire.data, wire.len, &r, &p), 0);
    assert_string_equal(r.error, info.error);
    assert_int_equal(p.len, 0);
    micro_codec_info_clear(&r);
    micro_buf_clear(&wire);

    /* Empty error string: Go Micro's "unspecified error". */
    assert_int_equal(
        read_rsp("{\"id\":\"1\",\"result\":null,\"error\":\"\"}", &r, &p), 0);
    assert_string_equal(r.error, "unspecified error");
    micro_codec_info_clear(&r);
    /* Non-string error is malformed. */
    assert_int_equal(
        read_rsp("{\"id\":\"1\",\"result\":null,\"error\":{\"a\":1}}", &r, &p),
        MICRO_ECODEC);
    assert_null(r.error);
    micro_buf_clear(&p);
}

static void
test_empty_and_null(void **state)
{
    (void) state;
    micro_codec_info info = {0};
    info.endpoint = "A.B";
    micro_buf wire = {0};
    /* Empty payload: params [null]; no id: null. */
    assert_int_equal(c->write_request(&info, NULL, 0, &wire), 0);
    expect_buf(&wire, "{\"method\":\"A.B\",\"params\":[null],\"id\":null}\n");
    assert_int_equal(c->write_response(&info, "", 0, &wire), 0);
    expect_buf(&wire, "{\"id\":null,\"result\":null,\"error\":null}\n");
    /* Payload whitespace is trimmed before splicing. */
    assert_int_equal(c->write_response(&info, " [1] \n", 6, &wire), 0);
    expect_buf(&wire, "{\"id\":null,\"result\":[1],\"error\":null}\n");

    micro_codec_info r = {0};
    micro_buf p = {0};
    assert_int_equal(read_req("{\"method\":\"A.B\"}", &r, &p), 0);
    assert_string_equal(r.endpoint, "A.B");
    assert_null(r.id);
    assert_int_equal(p.len, 0);
    micro_codec_info_clear(&r);
    assert_int_equal(
        read_req("{\"method\":\"A.B\",\"params\":[],\"id\":null}", &r, &p), 0);
    assert_int_equal(p.len, 0);
    micro_codec_info_clear(&r);
    assert_int_equal(
        read_req("{\"method\":\"A.B\",\"params\":null,\"id\":\"x\"}", &r, &p),
        0);
    assert_int_equal(p.len, 0);
    micro_codec_info_clear(&r);
    assert_int_equal(read_req("{\"method\":\"A.B\",\"params\":[null]}", &r, &p),
        0);
    assert_int_equal(p.len, 0);
    micro_codec_info_clear(&r);
    assert_int_equal(read_rsp("{\"id\":\"1\",\"result\":null,\"error\":null}",
                         &r, &p),
        0);
    assert_int_equal(p.len, 0);
    assert_null(r.error);
    micro_codec_info_clear(&r);
}

static void
test_read_variants(void **state)
{
    (void) state;
    micro_codec_info r = {0};
    micro_buf p = {0};
    /* Numeric id (net/rpc/jsonrpc clients), any key order, whitespace,
     * extra params ignored, big integers kept exactly. */
    const char *t = " {\n \"id\" : 12345678901234567890 ,"
                    "\"params\" : [ {\"n\": 9007199254740993, "
                    "\"s\":\"]}\\\"\"} , 2 ],"
                    "\"method\":\"Svc.M\"}\n";
    assert_int_equal(read_req(t, &r, &p), 0);
    assert_string_equal(r.id, "12345678901234567890");
    assert_string_equal(r.endpoint, "Svc.M");
    expect_buf(&p, "{\"n\": 9007199254740993, \"s\":\"]}\\\"\"}");
    micro_codec_info_clear(&r);

    /* Keys match case-insensitively, as Go's encoding/json does. */
    assert_int_equal(
        read_req("{\"Method\":\"X.Y\",\"PARAMS\":[\"s\"],\"Id\":3}", &r, &p),
        0);
    assert_string_equal(r.endpoint, "X.Y");
    assert_string_equal(r.id, "3");
    expect_buf(&p, "\"s\"");
    micro_codec_info_clear(&r);

    /* Escaped method names are decoded. */
    assert_int_equal(
        read_req("{\"method\":\"A\\u002eB\",\"params\":[1]}", &r, &p), 0);
    assert_string_equal(r.endpoint, "A.B");
    expect_buf(&p, "1");
    micro_codec_info_clear(&r);

    /* Response with a numeric id and a scalar result. */
    assert_int_equal(read_rsp("{\"id\":42,\"result\":\"hi\",\"error\":null}",
                         &r, &p),
        0);
    assert_string_equal(r.id, "42");
    expect_buf(&p, "\"hi\"");
    micro_codec_info_clear(&r);

    /* Previous info values are replaced, not leaked. */
    r.endpoint = malloc(4);
    memcpy(r.endpoint, "old", 4);
    assert_int_equal(read_req("{\"method\":\"N.M\",\"id\":\"9\"}", &r, &p), 0);
    assert_string_equal(r.endpoint, "N.M");
    micro_codec_info_clear(&r);
    micro_buf_clear(&p);
}

static void
test_malformed(void **state)
{
    (void) state;
    static const char *const bad_req[] = {
        "",
        "   ",
        "{\"method\":\"A.B\",\"params\":[{\"a\":1}",   /* truncated */
        "{\"method\":\"A.B\",\"params\":{\"a\":1}}",   /* not an array */
        "{\"method\":\"A.B\",\"params\":\"x\"}",
        "{\"params\":[1],\"id\":\"1\"}",               /* no method */
        "{\"method\":7,\"params\":[1]}",
        "{\"method\":\"A.B\",\"id\":{}}",
        "{\"method\":\"A.B\",\"id\":[1]}",
        "[{\"method\":\"A.B\"}]",
        "\"str\"",
        "{\"method\":\"A.B\"} trailing",
        "{\"method\":\"A.B\",}",
        "not json at all",
    };
    micro_codec_info r = {0};
    micro_buf p = {0};
    for (size_t i = 0; i < sizeof(bad_req) / sizeof(bad_req[0]); i++) {
        assert_int_equal(read_req(bad_req[i], &r, &p), MICRO_ECODEC);
        assert_int_equal(p.len, 0);
        assert_null(r.endpoint);
        assert_null(r.id);
    }
    static const char *const bad_rsp[] = {
        "",
        "{\"id\":\"1\",\"result\":",
        "{\"id\":\"1\",\"result\":null,\"error\":5}",
        "{\"id\":true}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(bad_rsp) / sizeof(bad_rsp[0]); i++) {
        assert_int_equal(read_rsp(bad_rsp[i], &r, &p), MICRO_ECODEC);
        assert_int_equal(p.len, 0);
        assert_null(r.error);
    }

    /* 1000+ deep nesting inside params, and unbalanced depth: refused. */
    size_t n = 5000;
    const char *pre = "{\"method\":\"A.B\",\"params\":[";
    size_t pl = strlen(pre);
    char *deep = malloc(pl + 2 * n + 2);
    memcpy(deep, pre, pl);
    memset(deep + pl, '[', n);
    memset(deep + pl + n, ']', n);
    memcpy(deep + pl + 2 * n, "]}", 2);
    assert_int_equal(
        c->read_request(deep, pl + 2 * n + 2, &r, &p), MICRO_ECODEC);
    assert_int_equal(
        c->read_request(deep, pl + n + 10, &r, &p), MICRO_ECODEC);
    free(deep);

    /* Payloads that are not one JSON value are refused on write, so they
     * cannot break or inject into the envelope. */
    micro_codec_info w = {0};
    w.endpoint = "A.B";
    micro_buf wire = {0};
    assert_int_equal(c->write_request(&w, "1],\"id\":[", 9, &wire),
        MICRO_ECODEC);
    assert_int_equal(c->write_response(&w, "{", 1, &wire), MICRO_ECODEC);
    assert_int_equal(c->write_response(&w, "1 2", 3, &wire), MICRO_ECODEC);
    assert_int_equal(wire.len, 0);
    w.endpoint = NULL;
    assert_int_equal(c->write_request(&w, "1", 1, &wire), MICRO_EINVAL);
    micro_buf_clear(&wire);
    micro_buf_clear(&p);
}

/* A member named twice (or in two spellings) is read as Go's
 * encoding/json reads it into Go Micro's envelope: keys unescaped and
 * case-folded, the last occurrence wins, and the value that was checked is
 * the value that is used. */
static void
test_duplicate_keys(void **state)
{
    (void) state;
    micro_codec_info r = {0};
    micro_buf p = {0};

    /* The escaped spelling is the same key: the last one wins, and it is
     * both checked and answered from. */
    assert_int_equal(read_req("{\"method\":\"A.B\",\"p\\u0061rams\":[{\"evil\":"
                              "1}],\"params\":[{\"good\":1}]}",
                         &r, &p),
        0);
    expect_buf(&p, "{\"good\":1}");
    micro_codec_info_clear(&r);
    assert_int_equal(read_req("{\"method\":\"A.B\",\"params\":[{\"good\":1}],"
                              "\"p\\u0061rams\":[{\"evil\":1}]}",
                         &r, &p),
        0);
    expect_buf(&p, "{\"evil\":1}");
    micro_codec_info_clear(&r);
    /* Checked on the one that is used: an array first, then not. */
    assert_int_equal(
        read_req("{\"method\":\"A.B\",\"p\\u0061rams\":[1],\"params\":5}", &r,
            &p),
        MICRO_ECODEC);
    assert_int_equal(p.len, 0);
    assert_int_equal(
        read_req("{\"method\":\"A.B\",\"params\":5,\"p\\u0061rams\":[1]}", &r,
            &p),
        0);
    expect_buf(&p, "1");
    micro_codec_info_clear(&r);

    /* Case-insensitive, last wins, for each member. */
    assert_int_equal(read_req("{\"method\":\"A.B\",\"METHOD\":\"C.D\",\"Params\""
                              ":[1],\"params\":[2],\"id\":1,\"ID\":\"x\"}",
                         &r, &p),
        0);
    assert_string_equal(r.endpoint, "C.D");
    assert_string_equal(r.id, "x");
    expect_buf(&p, "2");
    micro_codec_info_clear(&r);
    /* Go's folding: U+017F (long s) is 's', escaped or raw UTF-8. */
    assert_int_equal(read_req("{\"method\":\"A.B\",\"params\":[1],"
                              "\"param\\u017f\":[7]}",
                         &r, &p),
        0);
    expect_buf(&p, "7");
    micro_codec_info_clear(&r);
    assert_int_equal(read_req("{\"method\":\"A.B\",\"params\":[1],"
                              "\"param\xc5\xbf\":[8]}",
                         &r, &p),
        0);
    expect_buf(&p, "8");
    micro_codec_info_clear(&r);
    /* A key that differs once unescaped is another key. */
    assert_int_equal(read_req("{\"method\":\"A.B\",\"params\":[1],"
                              "\"params\\u0000\":[2],\"par\\u0131ms\":[3]}",
                         &r, &p),
        0);
    expect_buf(&p, "1");
    micro_codec_info_clear(&r);

    /* null into a Go string changes nothing; into the raw params it
     * clears them. */
    assert_int_equal(read_req("{\"method\":\"A.B\",\"params\":[1],"
                              "\"method\":null,\"params\":null}",
                         &r, &p),
        0);
    assert_string_equal(r.endpoint, "A.B");
    assert_int_equal(p.len, 0);
    micro_codec_info_clear(&r);
    /* A method of the wrong type anywhere fails the request, as Go's
     * decoder does, even when a later one is a string. */
    assert_int_equal(read_req("{\"method\":5,\"method\":\"A.B\"}", &r, &p),
        MICRO_ECODEC);
    assert_int_equal(read_req("{\"method\":\"A.B\",\"Method\":[\"x\"]}", &r,
                         &p),
        MICRO_ECODEC);

    /* Responses: the same rules. */
    assert_int_equal(read_rsp("{\"id\":1,\"result\":\"a\",\"RESULT\":\"b\","
                              "\"error\":null}",
                         &r, &p),
        0);
    expect_buf(&p, "\"b\"");
    micro_codec_info_clear(&r);
    assert_int_equal(read_rsp("{\"id\":1,\"result\":\"a\",\"error\":\"bad\","
                              "\"\\u0065rror\":null}",
                         &r, &p),
        0);
    assert_null(r.error);
    expect_buf(&p, "\"a\"");
    micro_codec_info_clear(&r);
    assert_int_equal(read_rsp("{\"id\":1,\"error\":null,\"Error\":\"bad\"}",
                         &r, &p),
        0);
    assert_string_equal(r.error, "bad");
    micro_codec_info_clear(&r);
    micro_buf_clear(&p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_error_response),
        cmocka_unit_test(test_empty_and_null),
        cmocka_unit_test(test_read_variants),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
