/* Content-type lookup and user registration. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cmicro/micro.h"

static void
test_builtins(void **state)
{
    (void) state;
    assert_ptr_equal(
        micro_codec_lookup("application/json"), &micro_codec_json_ops);
    assert_ptr_equal(micro_codec_lookup("Application/JSON; charset=utf-8"),
        &micro_codec_json_ops);
    assert_ptr_equal(micro_codec_lookup("  application/json  ;x=y"),
        &micro_codec_json_ops);
    assert_ptr_equal(
        micro_codec_lookup("application/json-rpc"), &micro_codec_jsonrpc_ops);
    assert_ptr_equal(micro_codec_lookup("application/octet-stream"),
        &micro_codec_bytes_ops);
    assert_ptr_equal(
        micro_codec_lookup("application/protobuf"), &micro_codec_proto_ops);
    assert_ptr_equal(micro_codec_lookup("application/proto-rpc"),
        &micro_codec_protorpc_ops);
    assert_ptr_equal(
        micro_codec_lookup("application/grpc"), &micro_codec_grpc_ops);
    assert_ptr_equal(
        micro_codec_lookup("application/grpc+proto"), &micro_codec_grpc_ops);
    assert_ptr_equal(
        micro_codec_lookup("application/grpc+json"), &micro_codec_grpc_ops);
    assert_null(micro_codec_lookup("text/plain"));
    assert_null(micro_codec_lookup("application/jsonx"));
    assert_null(micro_codec_lookup("application/jso"));
    assert_null(micro_codec_lookup(""));
    assert_null(micro_codec_lookup(";"));
    assert_null(micro_codec_lookup(NULL));
    assert_string_equal(micro_codec_json_ops.name, "json");
    assert_string_equal(micro_codec_jsonrpc_ops.name, "json-rpc");
    assert_string_equal(micro_codec_bytes_ops.name, "bytes");
    assert_int_equal(micro_codec_json_ops.abi, MICRO_CODEC_ABI);
}

static void
test_register(void **state)
{
    (void) state;
    micro_codec_ops mine = micro_codec_bytes_ops;
    mine.name = "mine";
    micro_codec_ops other = micro_codec_bytes_ops;
    other.name = "other";

    /* A user codec takes precedence over the built-in. */
    assert_int_equal(micro_codec_register("application/json", &mine), 0);
    assert_ptr_equal(micro_codec_lookup("APPLICATION/JSON;q=1"), &mine);
    /* Registering again replaces. */
    assert_int_equal(micro_codec_register("application/JSON ", &other), 0);
    assert_ptr_equal(micro_codec_lookup("application/json"), &other);
    assert_int_equal(micro_codec_register("text/plain", &mine), 0);
    assert_ptr_equal(micro_codec_lookup("text/plain"), &mine);

    micro_codec_ops bad = micro_codec_bytes_ops;
    bad.abi = 99;
    assert_int_equal(micro_codec_register("x/y", &bad), MICRO_EINVAL);
    bad = micro_codec_bytes_ops;
    bad.read_request = NULL;
    assert_int_equal(micro_codec_register("x/y", &bad), MICRO_EINVAL);
    assert_int_equal(micro_codec_register(NULL, &mine), MICRO_EINVAL);
    assert_int_equal(micro_codec_register("", &mine), MICRO_EINVAL);
    assert_int_equal(micro_codec_register("x/y", NULL), MICRO_EINVAL);

    /* The table holds 32 registrations. */
    static char names[40][32];
    int rc = 0;
    int ok = 2;
    for (int i = 0; i < 40 && rc == 0; i++) {
        snprintf(names[i], sizeof(names[i]), "x/type-%d", i);
        rc = micro_codec_register(names[i], &mine);
        if (rc == 0) {
            ok++;
        }
    }
    assert_int_equal(rc, MICRO_ENOMEM);
    assert_int_equal(ok, 32);
    assert_ptr_equal(micro_codec_lookup("x/type-29"), &mine);
    /* Replacing still works with a full table. */
    assert_int_equal(micro_codec_register("x/type-0", &other), 0);
    assert_ptr_equal(micro_codec_lookup("x/type-0"), &other);
}

static void
test_info_clear(void **state)
{
    (void) state;
    micro_codec_info info = {0};
    micro_codec_info_clear(&info);
    micro_codec_info_clear(NULL);
    micro_buf payload = {0};
    const char *req = "{\"method\":\"A.B\",\"params\":[1],\"id\":\"7\"}";
    assert_int_equal(micro_codec_jsonrpc_ops.read_request(
                         req, strlen(req), &info, &payload),
        0);
    assert_non_null(info.endpoint);
    micro_codec_info_clear(&info);
    assert_null(info.endpoint);
    assert_null(info.id);
    assert_null(info.error);
    micro_buf_clear(&payload);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins),
        cmocka_unit_test(test_register),
        cmocka_unit_test(test_info_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
