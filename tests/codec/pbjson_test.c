/* The JSON mapping's exact output (Go Micro v4's encoding/json shape) and
 * what it accepts; the equality with real Go is tests/interop/pbjson_test.go. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "kitchen_fill.h"

static const ProtobufCMessageDescriptor *K = &cmicro__test__kitchen__descriptor;

static void
expect_json(const ProtobufCMessage *m, unsigned flags, const char *want)
{
    micro_buf b = {0};
    assert_int_equal(micro_pbjson_encode(m, flags, &b), 0);
    if (b.len != strlen(want) || memcmp(b.data, want, b.len) != 0) {
        fail_msg("have %.*s\nwant %s", (int) b.len, (const char *) b.data,
            want);
    }
    micro_buf_clear(&b);
}

static Cmicro__Test__Kitchen *
decode(const char *json, unsigned flags)
{
    ProtobufCMessage *m = NULL;
    char err[160] = "";
    int rc = micro_pbjson_decode(K, json, strlen(json), flags, &m, err,
        sizeof(err));
    if (rc != 0) {
        fail_msg("%s: %s", json, err);
    }
    return (Cmicro__Test__Kitchen *) m;
}

static void
test_encode_v4_shape(void **state)
{
    (void) state;
    Cmicro__Test__Kitchen k = CMICRO__TEST__KITCHEN__INIT;
    expect_json(&k.base, 0, "{}");
    k.f_int64 = INT64_MIN;
    k.f_uint64 = UINT64_MAX;
    k.f_enum = CMICRO__TEST__COLOR__RED;
    k.snake_case_name = (char *) "<a&b>\xe2\x80\xa8\xff";
    expect_json(&k.base, 0,
        "{\"f_int64\":-9223372036854775808,\"f_uint64\":18446744073709551615,"
        "\"f_enum\":1,\"snake_case_name\":\"\\u003ca\\u0026b\\u003e\\u2028"
        "\\ufffd\"}");
    expect_json(&k.base, MICRO_PBJSON_PROTOJSON,
        "{\"fInt64\":\"-9223372036854775808\",\"fUint64\":"
        "\"18446744073709551615\",\"fEnum\":\"RED\",\"snakeCaseName\":"
        "\"\\u003ca\\u0026b\\u003e\\u2028\\ufffd\"}");
    /* Go's float formatting: shortest digits, 'e' below 1e-6 and from
     * 1e21, "e-7" not "e-07"; float32 keeps float32 digits. */
    Cmicro__Test__Kitchen f = CMICRO__TEST__KITCHEN__INIT;
    double ds[] = {0.1, 1e21, 1e20, 1.5e-7, 123456.789, -0.0, 5e-324};
    f.n_r_double = 7;
    f.r_double = ds;
    f.f_float = 0.1f;
    expect_json(&f.base, 0,
        "{\"f_float\":0.1,\"r_double\":[0.1,1e+21,100000000000000000000,"
        "1.5e-7,123456.789,-0,5e-324]}");
    double nan[] = {NAN, INFINITY, -INFINITY};
    f.r_double = nan;
    f.n_r_double = 3;
    f.f_float = 0;
    expect_json(&f.base, 0,
        "{\"r_double\":[\"NaN\",\"Infinity\",\"-Infinity\"]}");
}

static void
test_decode_accepts(void **state)
{
    (void) state;
    /* Orig and lowerCamel names, 64-bit as strings, enums by name,
     * URL-safe unpadded base64, Go v4's oneof wrapper and struct WKTs. */
    Cmicro__Test__Kitchen *k = decode(
        " {\"fInt64\":\"-5\",\"f_uint64\":\"18446744073709551615\","
        "\"f_enum\":\"GREEN\",\"f_bytes\":\"_-8\",\"Choice\":{\"OText\":\"t\"},"
        "\"t_time\":{\"seconds\":5,\"nanos\":6},\"t_i64\":{\"value\":7},"
        "\"f_int32\":1e2,\"f_msg\":null}\n",
        0);
    assert_int_equal(k->f_int64, -5);
    assert_true(k->f_uint64 == UINT64_MAX);
    assert_int_equal(k->f_enum, CMICRO__TEST__COLOR__GREEN);
    assert_int_equal(k->f_bytes.len, 2);
    assert_int_equal(k->f_bytes.data[0], 0xff);
    assert_int_equal(k->choice_case, CMICRO__TEST__KITCHEN__CHOICE_O_TEXT);
    assert_string_equal(k->o_text, "t");
    assert_int_equal(k->t_time->seconds, 5);
    assert_int_equal(k->t_i64->value, 7);
    assert_int_equal(k->f_int32, 100);
    assert_null(k->f_msg);
    micro_proto_free(&k->base);
    /* Unset oneof as encoding/json writes it; duplicate keys: last wins. */
    k = decode("{\"Choice\":null,\"f_string\":\"a\",\"f_string\":\"b\","
               "\"r_int32\":[1],\"r_int32\":[2,3]}",
        0);
    assert_string_equal(k->f_string, "b");
    assert_int_equal(k->n_r_int32, 2);
    micro_proto_free(&k->base);
    /* RFC 3339 with an offset; negative durations. */
    k = decode("{\"t_time\":\"1970-01-01T01:00:00.5+01:00\","
               "\"t_dur\":\"-0.25s\",\"t_mask\":\"a,fooBar\"}",
        0);
    assert_int_equal(k->t_time->seconds, 0);
    assert_int_equal(k->t_time->nanos, 500000000);
    assert_int_equal(k->t_dur->seconds, 0);
    assert_int_equal(k->t_dur->nanos, -250000000);
    assert_string_equal(k->t_mask->paths[1], "foo_bar");
    micro_proto_free(&k->base);
    /* Unknown keys: refused by default (jsonpb), skipped on request. */
    ProtobufCMessage *m = NULL;
    assert_int_equal(micro_pbjson_decode(K, "{\"zz\":{\"a\":[1]}}", 16, 0, &m,
                         NULL, 0),
        MICRO_ECODEC);
    k = decode("{\"zz\":{\"a\":[1,{}]},\"f_bool\":true}",
        MICRO_PBJSON_IGNORE_UNKNOWN);
    assert_true(k->f_bool);
    micro_proto_free(&k->base);
}

/* Integers written with a fraction or an exponent: accepted when integral
 * and in range. (double) INT64_MAX is 2^63, which int64 cannot hold. */
static void
test_decode_integral_doubles(void **state)
{
    (void) state;
    Cmicro__Test__Kitchen *k = decode(
        "{\"f_int64\":-9.223372036854775808e18,\"f_uint64\":1.8e19,"
        "\"f_int32\":-2.147483648e9,\"f_uint32\":4.0}",
        0);
    assert_true(k->f_int64 == INT64_MIN);
    assert_true(k->f_uint64 == 18000000000000000000ULL);
    assert_int_equal(k->f_int32, INT32_MIN);
    assert_int_equal(k->f_uint32, 4);
    micro_proto_free(&k->base);
    const char *bad[] = {
        "{\"f_int64\":9.223372036854775807e18}",  /* rounds to 2^63 */
        "{\"f_uint64\":1.8446744073709551615e19}", /* rounds to 2^64 */
        "{\"f_int32\":2.147483648e9}",
        "{\"f_uint32\":-1.0}",
        "{\"f_int64\":2.5}",
        "{\"f_uint64\":1e400}",
        "{\"f_int32\":1.0000001e2}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ProtobufCMessage *m = NULL;
        char err[160] = "";
        assert_int_equal(micro_pbjson_decode(K, bad[i], strlen(bad[i]), 0,
                             &m, err, sizeof(err)),
            MICRO_ECODEC);
        assert_null(m);
        assert_true(strstr(err, "integer") != NULL);
    }
}

static void
test_wkt_encode(void **state)
{
    (void) state;
    kitchen_store *s = malloc(sizeof(*s));
    kitchen_fill(s);
    Cmicro__Test__Kitchen k = CMICRO__TEST__KITCHEN__INIT;
    k.t_time = s->k.t_time;
    k.t_dur = s->k.t_dur;
    k.t_i64 = s->k.t_i64;
    k.t_mask = s->k.t_mask;
    k.t_struct = s->k.t_struct;
    k.t_list = s->k.t_list;
    expect_json(&k.base, 0,
        "{\"t_time\":\"2023-11-14T22:13:20.123Z\",\"t_dur\":\"-3.500s\","
        "\"t_i64\":-9223372036854775808,"
        "\"t_struct\":{\"num\":2.5,\"str\":\"s\"},"
        "\"t_list\":[null,{\"num\":2.5,\"str\":\"s\"}],"
        "\"t_mask\":{\"paths\":[\"f_int32\",\"f_msg.name\"]}}");
    free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_v4_shape),
        cmocka_unit_test(test_decode_accepts),
        cmocka_unit_test(test_decode_integral_doubles),
        cmocka_unit_test(test_wkt_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
