/*
 * Out-of-memory torture (tests/support/failalloc.h) of codec round trips:
 * json, json-rpc and the protobuf codecs (a message with every field
 * kind, typed encode, framing, read, typed decode), requests and
 * responses. Each allocation fails in turn: the round trip reports
 * MICRO_ENOMEM (never MICRO_ECODEC: the input is valid), leaks nothing,
 * and the next round trip gives the same result as an undisturbed one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "kitchen_fill.h"
#include "support/failalloc.h"

typedef struct trip {
    const char *ct;
    const ProtobufCMessage *msg; /* NULL: a JSON payload */
    const char *payload;         /* the JSON payload */
    /* Results, freed by teardown. */
    micro_buf wire, back, wire2, back2, enc;
    micro_codec_info got, got2;
    ProtobufCMessage *out;
} trip;

static int
round_trip(void *arg)
{
    trip *t = arg;
    const micro_codec_ops *c = micro_codec_lookup(t->ct);
    int rc = 0;
    const void *p = t->payload;
    size_t len = t->payload != NULL ? strlen(t->payload) : 0;
    if (t->msg != NULL) {
        rc = micro_proto_encode(t->ct, t->msg, &t->enc);
        p = t->enc.data;
        len = t->enc.len;
    }
    micro_codec_info info = {(char *) "Kitchen.Echo", (char *) "42", NULL};
    if (rc == 0) {
        rc = c->write_request(&info, p, len, &t->wire);
    }
    if (rc == 0) {
        rc = c->read_request(t->wire.data, t->wire.len, &t->got, &t->back);
    }
    if (rc == 0) {
        rc = c->write_response(&t->got, t->back.data, t->back.len,
            &t->wire2);
    }
    if (rc == 0) {
        rc = c->read_response(t->wire2.data, t->wire2.len, &t->got2,
            &t->back2);
    }
    if (rc == 0 && t->msg != NULL) {
        rc = micro_proto_decode(t->ct, t->msg->descriptor, t->back2.data,
            t->back2.len, &t->out);
    }
    return rc;
}

static void
trip_clear(void *arg)
{
    trip *t = arg;
    micro_buf_clear(&t->wire);
    micro_buf_clear(&t->back);
    micro_buf_clear(&t->wire2);
    micro_buf_clear(&t->back2);
    micro_buf_clear(&t->enc);
    micro_codec_info_clear(&t->got);
    micro_codec_info_clear(&t->got2);
    micro_proto_free(t->out);
    t->out = NULL;
}

/* The result of a round trip that succeeded. */
static void
expect_result(trip *t)
{
    if (t->msg != NULL) {
        char *want = canon(t->msg);
        char *have = canon(t->out);
        assert_non_null(want);
        assert_non_null(have);
        assert_string_equal(have, want);
        free(want);
        free(have);
    } else {
        /* json adds the '\n' of Go's encoder; json-rpc does not. */
        size_t n = strlen(t->payload);
        assert_true(t->back2.len == n || t->back2.len == n + 1);
        assert_memory_equal(t->back2.data, t->payload, n);
    }
    if (strcmp(t->ct, "application/json-rpc") == 0 ||
        strcmp(t->ct, "application/proto-rpc") == 0) {
        assert_string_equal(t->got.endpoint, "Kitchen.Echo");
        assert_string_equal(t->got2.id, "42");
    }
}

static int
check(void *arg, int rc)
{
    trip *t = arg;
    if (rc == 0) {
        expect_result(t);
    }
    /* Another round trip, undisturbed, gives the same. */
    trip_clear(t);
    assert_int_equal(round_trip(t), 0);
    expect_result(t);
    return 0;
}

static void
torture(trip *t)
{
    char name[128];
    snprintf(name, sizeof(name), "%s round trip%s", t->ct,
        t->msg != NULL ? " of a Kitchen" : "");
    failalloc_case c = {.name = name,
        .arg = t,
        .op = round_trip,
        .check = check,
        .teardown = trip_clear};
    assert_true(failalloc_run(&c) > 0);
}

static void
test_json(void **state)
{
    (void) state;
    static trip t = {.ct = "application/json",
        .payload = "{\"name\":\"John\",\"n\":9007199254740993,\"l\":[1,2,{}]}"};
    torture(&t);
    static trip r = {.ct = "application/json-rpc",
        .payload = "{\"name\":\"John\",\"n\":9007199254740993,\"l\":[1,2,{}]}"};
    torture(&r);
}

static void
test_protobuf(void **state)
{
    (void) state;
    kitchen_store *s = malloc(sizeof(*s));
    kitchen_fill(s);
    static const char *const types[] = {"application/protobuf",
        "application/proto-rpc", "application/grpc", "application/json",
        "application/json-rpc"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        trip t;
        memset(&t, 0, sizeof(t));
        t.ct = types[i];
        t.msg = &s->k.base;
        torture(&t);
    }
    free(s);
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
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_protobuf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
