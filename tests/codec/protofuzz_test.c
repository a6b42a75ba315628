/* Hostile protobuf and JSON: malformed encodings, wrong wire types,
 * truncated varints, deep nesting, oversized length prefixes, then a fixed
 * number of seeded random mutations of valid messages through every
 * decoder (binary, JSON, proto-rpc and grpc framing). Everything must fail
 * cleanly or succeed; ASan/UBSan runs catch the rest. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "kitchen_fill.h"

#define ITERATIONS 20000

static const ProtobufCMessageDescriptor *K = &cmicro__test__kitchen__descriptor;

static int
unpack(const void *p, size_t n)
{
    ProtobufCMessage *m = NULL;
    int rc = micro_proto_unpack(K, p, n, &m);
    if (rc == 0) {
        assert_non_null(m);
        micro_proto_free(m);
    } else {
        assert_null(m);
    }
    return rc;
}

static void
test_crafted(void **state)
{
    (void) state;
    char err[160];
    /* Truncated varint (tag 3, value cut), overlong varint (11 bytes). */
    assert_int_equal(unpack("\x18\xff\xff", 3), MICRO_ECODEC);
    assert_int_equal(unpack("\x18\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                         12),
        MICRO_ECODEC);
    /* Wrong wire type: f_string (14) as a varint; f_int32 as fixed32. */
    assert_int_equal(unpack("\x70\x01", 2), MICRO_ECODEC);
    assert_int_equal(micro_proto_validate(K, "\x70\x01", 2, err, sizeof(err)),
        MICRO_ECODEC);
    assert_non_null(strstr(err, "f_string"));
    assert_int_equal(unpack("\x1d\x01\x02\x03\x04", 5), MICRO_ECODEC);
    /* Oversized length prefix: f_bytes claims 2^31 bytes. */
    assert_int_equal(unpack("\x7a\x80\x80\x80\x80\x08xx", 8), MICRO_ECODEC);
    /* Field number 0, groups (wire types 3/4), wire types 6/7. */
    assert_int_equal(unpack("\x00\x01", 2), MICRO_ECODEC);
    assert_int_equal(unpack("\x0b\x0c", 2), MICRO_ECODEC);
    assert_int_equal(unpack("\x0e", 1), MICRO_ECODEC);
    /* Invalid UTF-8 in a string. */
    assert_int_equal(unpack("\x72\x02\xc3\x28", 4), MICRO_ECODEC);
    /* Packed int32 cut inside a varint; packed double of 7 bytes. */
    assert_int_equal(unpack("\x9a\x01\x02\x01\xff", 5), MICRO_ECODEC);
    assert_int_equal(unpack("\xca\x01\x07\x01\x02\x03\x04\x05\x06\x07", 10),
        MICRO_ECODEC);
    /* Unknown fields are skipped, not refused. */
    assert_int_equal(unpack("\xf8\x07\x05", 3), 0);
    assert_int_equal(unpack("", 0), 0);

    /* Deep nesting: f_msg.child.child... (Inner.child = field 3). */
    enum { DEPTH = 5000 };
    size_t cap = DEPTH * 8 + 16;
    uint8_t *buf = malloc(cap);
    uint8_t *tmp = malloc(cap);
    size_t n = 0;
    for (int i = 0; i < DEPTH; i++) {
        /* Wrap: tag 0x1a (field 3, len) + varint(n) + body. */
        uint8_t hdr[8];
        size_t h = 0;
        hdr[h++] = 0x1a;
        size_t v = n;
        do {
            hdr[h] = (uint8_t) (v & 0x7f);
            v >>= 7;
            if (v) {
                hdr[h] |= 0x80;
            }
            h++;
        } while (v);
        memcpy(tmp, hdr, h);
        memcpy(tmp + h, buf, n);
        memcpy(buf, tmp, h + n);
        n += h;
    }
    /* Outermost: Kitchen.f_msg (17, len): 0x8a 0x01. */
    ProtobufCMessage *m = NULL;
    assert_int_equal(micro_proto_unpack(
                         &cmicro__test__kitchen__inner__descriptor, buf, n, &m),
        MICRO_ECODEC);
    assert_null(m);
    free(buf);
    free(tmp);

    /* JSON: deep nesting, bad tokens, bad values. */
    micro_buf deep = {0};
    for (int i = 0; i < DEPTH; i++) {
        micro_buf_append_str(&deep, "{\"child\":");
    }
    micro_buf_append_str(&deep, "{}");
    for (int i = 0; i < DEPTH; i++) {
        micro_buf_append_str(&deep, "}");
    }
    assert_int_equal(micro_pbjson_decode(
                         &cmicro__test__kitchen__inner__descriptor, deep.data,
                         deep.len, 0, &m, err, sizeof(err)),
        MICRO_ECODEC);
    assert_non_null(strstr(err, "deeper"));
    micro_buf_clear(&deep);
    static const char *const bad[] = {
        "{", "{\"f_int32\":}", "{\"f_int32\":1.5}", "{\"f_int32\":2147483648}",
        "{\"f_uint64\":-1}", "{\"f_bool\":\"true\"}", "{\"f_enum\":\"BLUE\"}",
        "{\"f_bytes\":\"!!!\"}", "{\"f_string\":\"\\x\"}", "{\"f_string\":\"a",
        "{\"f_float\":1e39}", "{\"r_int32\":{}}", "{\"m_i32_str\":{\"x\":\"y\"}}",
        "{\"o_text\":\"a\",\"o_num\":1}", "{\"t_time\":\"yesterday\"}",
        "{\"t_dur\":\"1h\"}", "[]", "{} x", "{\"nope\":1}", "{\"f_msg\":[]}",
        "{\"f_int64\":\"9223372036854775808\"}", "{\"m_bool\":{\"yes\":true}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        int rc = micro_pbjson_decode(K, bad[i], strlen(bad[i]), 0, &m, err,
            sizeof(err));
        if (rc != MICRO_ECODEC) {
            fail_msg("accepted %s (rc %d)", bad[i], rc);
        }
        assert_null(m);
        assert_true(err[0] != '\0');
    }
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t
rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t) (rng % n);
}

/* Flip, insert, delete or overwrite a few bytes of src into dst. */
static size_t
mutate(const uint8_t *src, size_t n, uint8_t *dst, size_t cap)
{
    size_t len = n < cap ? n : cap;
    memcpy(dst, src, len);
    int k = 1 + (int) rnd(4);
    for (int i = 0; i < k; i++) {
        uint32_t op = rnd(5);
        size_t at = len ? rnd((uint32_t) len) : 0;
        if (op == 0 && len) {
            dst[at] ^= (uint8_t) (1u << rnd(8));
        } else if (op == 1 && len < cap) {
            memmove(dst + at + 1, dst + at, len - at);
            dst[at] = (uint8_t) rnd(256);
            len++;
        } else if (op == 2 && len) {
            memmove(dst + at, dst + at + 1, len - at - 1);
            len--;
        } else if (op == 3 && len) {
            dst[at] = (uint8_t) (rnd(2) ? 0xff : 0x80);
        } else if (len) {
            len = at; /* truncate */
        }
    }
    return len;
}

static void
test_fuzz(void **state)
{
    (void) state;
    kitchen_store *s = malloc(sizeof(*s));
    kitchen_fill(s);
    micro_buf bin = {0};
    micro_buf json = {0};
    micro_buf rpc = {0};
    micro_buf grpc = {0};
    assert_int_equal(micro_proto_pack(&s->k.base, &bin), 0);
    assert_int_equal(micro_pbjson_encode(&s->k.base, 0, &json), 0);
    micro_codec_info info = {(char *) "KitchenSvc.Echo", (char *) "1", NULL};
    assert_int_equal(micro_codec_protorpc_ops.write_request(&info, bin.data,
                         bin.len, &rpc),
        0);
    assert_int_equal(micro_codec_grpc_ops.write_request(&info, bin.data,
                         bin.len, &grpc),
        0);
    size_t cap = json.len + 64;
    uint8_t *buf = malloc(cap);
    int ok = 0;
    for (int i = 0; i < ITERATIONS; i++) {
        ProtobufCMessage *m = NULL;
        size_t n = mutate(bin.data, bin.len, buf, cap);
        if (micro_proto_unpack(K, buf, n, &m) == 0) {
            /* What decodes must also encode. */
            micro_buf out = {0};
            int rc = micro_pbjson_encode(m, 0, &out);
            assert_true(rc == 0 || rc == MICRO_ECODEC);
            micro_buf_clear(&out);
            micro_proto_free(m);
            ok++;
        }
        n = mutate(json.data, json.len, buf, cap);
        if (micro_pbjson_decode(K, buf, n, 0, &m, NULL, 0) == 0) {
            micro_buf out = {0};
            assert_int_equal(micro_proto_pack(m, &out), 0);
            micro_buf_clear(&out);
            micro_proto_free(m);
        }
        const micro_buf *fr = (i & 1) ? &rpc : &grpc;
        const micro_codec_ops *c =
            (i & 1) ? &micro_codec_protorpc_ops : &micro_codec_grpc_ops;
        n = mutate(fr->data, fr->len, buf, cap);
        micro_codec_info got = {0};
        micro_buf p = {0};
        if (c->read_request(buf, n, &got, &p) == 0 &&
            micro_proto_unpack(K, p.data, p.len, &m) == 0) {
            micro_proto_free(m);
        }
        micro_codec_info_clear(&got);
        micro_buf_clear(&p);
        if (c->read_response(buf, n, &got, &p) == 0) {
            micro_buf_clear(&p);
        }
        micro_codec_info_clear(&got);
    }
    /* Some mutations leave valid messages; most must be refused. */
    assert_true(ok > 0 && ok < ITERATIONS);
    free(buf);
    micro_buf_clear(&bin);
    micro_buf_clear(&json);
    micro_buf_clear(&rpc);
    micro_buf_clear(&grpc);
    free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crafted),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
