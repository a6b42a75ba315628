/* The protobuf codecs: an every-field-kind message through every codec
 * (both directions), golden framing bytes, and the typed helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "kitchen_fill.h"
#include "legacy.pb-c.h"

static const char *const all_types[] = {
    "application/protobuf",
    "application/proto-rpc",
    "application/grpc",
    "application/grpc+proto",
    "application/grpc+json",
    "application/json",
    "application/json-rpc",
};

static void
expect_bytes(const micro_buf *b, const void *want, size_t n)
{
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

/* Through one content type: typed encode, codec request framing, codec
 * read, typed decode; then the same for the response. */
static void
round_trip(const char *ct, const ProtobufCMessage *m)
{
    const micro_codec_ops *c = micro_codec_lookup(ct);
    assert_non_null(c);
    char *want = canon(m);
    assert_non_null(want);
    for (int dir = 0; dir < 2; dir++) {
        micro_buf payload = {0};
        assert_int_equal(micro_proto_encode(ct, m, &payload), 0);
        micro_codec_info info = {(char *) "KitchenSvc.Echo", (char *) "42",
            NULL};
        micro_buf wire = {0};
        micro_codec_info got = {0};
        micro_buf back = {0};
        if (dir == 0) {
            assert_int_equal(c->write_request(&info, payload.data,
                                 payload.len, &wire),
                0);
            assert_int_equal(
                c->read_request(wire.data, wire.len, &got, &back), 0);
        } else {
            assert_int_equal(c->write_response(&info, payload.data,
                                 payload.len, &wire),
                0);
            assert_int_equal(
                c->read_response(wire.data, wire.len, &got, &back), 0);
        }
        if (strcmp(ct, "application/proto-rpc") == 0) {
            assert_string_equal(got.endpoint, "KitchenSvc.Echo");
            assert_string_equal(got.id, "42");
        }
        ProtobufCMessage *out = NULL;
        assert_int_equal(micro_proto_decode(ct, m->descriptor, back.data,
                             back.len, &out),
            0);
        char *have = canon(out);
        if (strcmp(have, want) != 0) {
            fail_msg("%s (%s):\n have %s\n want %s", ct,
                dir ? "response" : "request", have, want);
        }
        free(have);
        micro_proto_free(out);
        micro_codec_info_clear(&got);
        micro_buf_clear(&payload);
        micro_buf_clear(&wire);
        micro_buf_clear(&back);
    }
    free(want);
}

static void
test_every_field_every_codec(void **state)
{
    (void) state;
    kitchen_store *s = malloc(sizeof(*s));
    kitchen_fill(s);
    for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
        round_trip(all_types[i], &s->k.base);
    }
    /* The other oneof members, and the empty message. */
    s->k.choice_case = CMICRO__TEST__KITCHEN__CHOICE_O_NUM;
    s->k.o_num = INT64_MIN;
    round_trip("application/json", &s->k.base);
    round_trip("application/protobuf", &s->k.base);
    s->k.choice_case = CMICRO__TEST__KITCHEN__CHOICE_O_TEXT;
    s->k.o_text = (char *) "";
    round_trip("application/json", &s->k.base);
    Cmicro__Test__Kitchen empty = CMICRO__TEST__KITCHEN__INIT;
    for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
        round_trip(all_types[i], &empty.base);
    }
    free(s);
}

static void
test_proto2_presence(void **state)
{
    (void) state;
    Cmicro__Legacy__Old o = CMICRO__LEGACY__OLD__INIT;
    o.id = 0; /* required: written even at zero */
    o.has_big = 1;
    o.big = 0; /* optional set to zero: present */
    int32_t p[] = {1, 300, -1};
    o.n_packed = 3;
    o.packed = p;
    micro_buf j = {0};
    assert_int_equal(micro_pbjson_encode(&o.base, 0, &j), 0);
    const char *want = "{\"id\":0,\"big\":0,\"packed\":[1,300,-1]}";
    expect_bytes(&j, want, strlen(want));
    micro_buf_clear(&j);
    for (size_t i = 0; i < sizeof(all_types) / sizeof(all_types[0]); i++) {
        round_trip(all_types[i], &o.base);
    }
    /* Missing required field: protobuf-c refuses it, cleanly. */
    ProtobufCMessage *m = NULL;
    assert_int_equal(micro_proto_unpack(&cmicro__legacy__old__descriptor,
                         "\x10\x01", 2, &m),
        MICRO_ECODEC);
    assert_null(m);
    /* Defaults come back for absent fields. */
    assert_int_equal(micro_proto_unpack(&cmicro__legacy__old__descriptor,
                         "\x08\x07", 2, &m),
        0);
    Cmicro__Legacy__Old *d = (Cmicro__Legacy__Old *) m;
    assert_int_equal(d->id, 7);
    assert_string_equal(d->name, "anon");
    micro_proto_free(m);
}

/* Golden bytes: Greeter.Hello {name:"John"}, seq 7. */
static void
test_golden_framing(void **state)
{
    (void) state;
    static const uint8_t john[] = {0x0a, 0x04, 'J', 'o', 'h', 'n'};
    micro_codec_info info = {(char *) "Greeter.Hello", (char *) "7", NULL};
    micro_buf w = {0};

    /* application/protobuf: the message, unframed. */
    assert_int_equal(
        micro_codec_proto_ops.write_request(&info, john, 6, &w), 0);
    expect_bytes(&w, john, 6);
    micro_buf_clear(&w);

    /* application/grpc: flag 0, length 6 big-endian, message. */
    static const uint8_t grpc[] = {0, 0, 0, 0, 6, 0x0a, 0x04, 'J', 'o',
        'h', 'n'};
    assert_int_equal(micro_codec_grpc_ops.write_request(&info, john, 6, &w),
        0);
    expect_bytes(&w, grpc, sizeof(grpc));
    micro_buf_clear(&w);
    /* An empty message is an empty body (Go writes no frame at all). */
    assert_int_equal(micro_codec_grpc_ops.write_response(&info, "", 0, &w),
        0);
    assert_int_equal(w.len, 0);

    /* application/proto-rpc request: NS(Request{1:"Greeter.Hello",
     * 2:fixed64 7}) NS(message); NS = 4-byte big-endian length. */
    static const uint8_t rpc_req[] = {0, 0, 0, 24, 0x0a, 13, 'G', 'r', 'e',
        'e', 't', 'e', 'r', '.', 'H', 'e', 'l', 'l', 'o', 0x11, 7, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 6, 0x0a, 0x04, 'J', 'o', 'h', 'n'};
    assert_int_equal(
        micro_codec_protorpc_ops.write_request(&info, john, 6, &w), 0);
    expect_bytes(&w, rpc_req, sizeof(rpc_req));
    micro_codec_info got = {0};
    micro_buf p = {0};
    assert_int_equal(
        micro_codec_protorpc_ops.read_request(w.data, w.len, &got, &p), 0);
    assert_string_equal(got.endpoint, "Greeter.Hello");
    assert_string_equal(got.id, "7");
    expect_bytes(&p, john, 6);
    micro_codec_info_clear(&got);
    micro_buf_clear(&p);
    micro_buf_clear(&w);

    /* proto-rpc error response: Response{1, 2, 3:error} and an empty
     * second netstring. */
    micro_codec_info err = {(char *) "Greeter.Hello", (char *) "7",
        (char *) "boom"};
    static const uint8_t rpc_err[] = {0, 0, 0, 30, 0x0a, 13, 'G', 'r', 'e',
        'e', 't', 'e', 'r', '.', 'H', 'e', 'l', 'l', 'o', 0x11, 7, 0, 0, 0,
        0, 0, 0, 0, 0x1a, 4, 'b', 'o', 'o', 'm', 0, 0, 0, 0};
    assert_int_equal(
        micro_codec_protorpc_ops.write_response(&err, john, 6, &w), 0);
    expect_bytes(&w, rpc_err, sizeof(rpc_err));
    assert_int_equal(
        micro_codec_protorpc_ops.read_response(w.data, w.len, &got, &p), 0);
    assert_string_equal(got.error, "boom");
    assert_int_equal(p.len, 0);
    micro_codec_info_clear(&got);
    micro_buf_clear(&w);
    /* Go's seq is 0 when Micro-Id does not parse: no field 2. */
    micro_codec_info odd = {(char *) "A.B", (char *) "x", NULL};
    static const uint8_t rpc_odd[] = {0, 0, 0, 5, 0x0a, 3, 'A', '.', 'B', 0,
        0, 0, 0};
    assert_int_equal(
        micro_codec_protorpc_ops.write_request(&odd, NULL, 0, &w), 0);
    expect_bytes(&w, rpc_odd, sizeof(rpc_odd));
    micro_buf_clear(&w);
}

static void
test_framing_errors(void **state)
{
    (void) state;
    micro_codec_info info = {0};
    micro_buf p = {0};
    const micro_codec_ops *g = &micro_codec_grpc_ops;
    /* Truncated header, compressed flag, oversized, truncated body. */
    assert_int_equal(g->read_request("\0\0\0", 3, &info, &p), MICRO_ECODEC);
    assert_int_equal(g->read_request("\1\0\0\0\1x", 6, &info, &p),
        MICRO_ECODEC);
    assert_int_equal(g->read_request("\0\0\x40\0\1x", 6, &info, &p),
        MICRO_ECODEC);
    assert_int_equal(g->read_request("\0\0\0\0\2x", 6, &info, &p),
        MICRO_ECODEC);
    assert_int_equal(g->read_request("", 0, &info, &p), 0);
    assert_int_equal(p.len, 0);
    const micro_codec_ops *r = &micro_codec_protorpc_ops;
    assert_int_equal(r->read_request("\0\0", 2, &info, &p), MICRO_ECODEC);
    assert_int_equal(r->read_request("\0\0\0\0", 4, &info, &p),
        MICRO_ECODEC); /* no second netstring */
    assert_int_equal(r->read_request("\xff\xff\xff\xff", 4, &info, &p),
        MICRO_ECODEC);
    assert_int_equal(r->read_request("\0\0\0\2\x0a\x05\0\0\0\0", 10, &info,
                         &p),
        MICRO_ECODEC); /* string length past the envelope */
    micro_codec_info_clear(&info);
    micro_buf_clear(&p);
}

static void
test_formats(void **state)
{
    (void) state;
    assert_int_equal(micro_proto_format_of(NULL), MICRO_PROTO_FORMAT_BINARY);
    assert_int_equal(micro_proto_format_of("application/grpc+json"),
        MICRO_PROTO_FORMAT_JSON);
    assert_int_equal(micro_proto_format_of("Application/JSON; charset=x"),
        MICRO_PROTO_FORMAT_JSON);
    assert_int_equal(micro_proto_format_of("application/grpc"),
        MICRO_PROTO_FORMAT_BINARY);
    assert_int_equal(micro_proto_format_of("application/octet-stream"),
        MICRO_PROTO_FORMAT_NONE);
    Cmicro__Common__Point pt = CMICRO__COMMON__POINT__INIT;
    micro_buf b = {0};
    assert_int_equal(micro_proto_encode("text/plain", &pt.base, &b),
        MICRO_ECONTENTTYPE);
    /* An empty JSON body is the empty message, as on the Go server. */
    ProtobufCMessage *m = NULL;
    assert_int_equal(micro_proto_decode("application/json",
                         &cmicro__common__point__descriptor, " \n", 2, &m),
        0);
    micro_proto_free(m);
    /* grpc+json ignores unknown keys (encoding/json); json does not. */
    const char *j = "{\"x\":1,\"zz\":2}";
    assert_int_equal(micro_proto_decode("application/json",
                         &cmicro__common__point__descriptor, j, strlen(j), &m),
        MICRO_ECODEC);
    assert_int_equal(micro_proto_decode("application/grpc+json",
                         &cmicro__common__point__descriptor, j, strlen(j), &m),
        0);
    assert_int_equal(((Cmicro__Common__Point *) m)->x, 1);
    micro_proto_free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_field_every_codec),
        cmocka_unit_test(test_proto2_presence),
        cmocka_unit_test(test_golden_framing),
        cmocka_unit_test(test_framing_errors),
        cmocka_unit_test(test_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
