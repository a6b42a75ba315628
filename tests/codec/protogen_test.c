/* protoc-gen-cmicro output for tests/codec/proto/kitchen.proto (two
 * services, streaming methods, a package, same-tree and well-known
 * imports), compiled with the project's warnings: typed handlers served
 * over the http transport and called through the typed sync and async
 * clients with every content type, and the registry record matching what
 * Go Micro advertises for protoc-gen-go types. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>

#include "kitchen_fill.h"

typedef struct fx {
    micro_loop *loop;
    micro_transport *tr;
    micro_server *srv;
    micro_client *cli;
    micro_options *opts;
    const char *addr;
} fx;

static int
echo(micro_request *req, const Cmicro__Test__Kitchen *in, micro_response *rsp,
    void *arg)
{
    (void) arg;
    if (in->f_int32 == 400) {
        return micro_response_error(rsp, "kitchen", 400, "bad %d",
            in->f_int32);
    }
    return cmicro__test__kitchen_svc__echo_reply(req, rsp, in);
}

static int
ping(micro_request *req, const Cmicro__Common__Point *in, micro_response *rsp,
    void *arg)
{
    (void) req;
    (void) in;
    (void) rsp;
    (void) arg;
    return 0; /* no reply: the empty message */
}

static const Cmicro__Test__KitchenSvc_Handlers kitchen_handlers = {
    .echo = echo};
static const Cmicro__Test__OtherService_Handlers other_handlers = {
    .ping = ping, .flags = MICRO_HANDLER_INLINE};

static int
fx_setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_int_equal(micro_loop_new(&f->loop), 0);
    assert_int_equal(micro_options_new(&f->opts), 0);
    assert_int_equal(
        micro_options_set_str(f->opts, "server_address", "127.0.0.1:0"), 0);
    assert_int_equal(
        micro_options_set_str(f->opts, "server_name", "kitchen"), 0);
    assert_int_equal(micro_transport_new(&f->tr, &micro_transport_http_ops,
                         f->loop, f->opts),
        0);
    assert_int_equal(micro_server_new(&f->srv, f->loop, f->tr, f->opts), 0);
    assert_int_equal(
        cmicro__test__kitchen_svc__register(f->srv, &kitchen_handlers), 0);
    assert_int_equal(
        cmicro__test__other__service__register(f->srv, &other_handlers), 0);
    assert_int_equal(
        cmicro__test__kitchen_svc__register(f->srv, &kitchen_handlers),
        MICRO_EEXIST);
    assert_int_equal(micro_server_start(f->srv), 0);
    f->addr = micro_server_address(f->srv);
    assert_int_equal(micro_client_new(&f->cli, f->tr, NULL, f->opts), 0);
    *state = f;
    return 0;
}

static int
fx_teardown(void **state)
{
    fx *f = *state;
    assert_int_equal(micro_server_stop(f->srv, 2000), 0);
    micro_server_free(f->srv);
    micro_client_free(f->cli);
    micro_transport_free(f->tr);
    micro_loop_free(f->loop);
    micro_options_free(f->opts);
    free(f);
    return 0;
}

static const char *const cts[] = {
    "application/protobuf", "application/proto-rpc", "application/grpc",
    "application/grpc+proto", "application/grpc+json", "application/json",
    "application/json-rpc", NULL, /* NULL: the stub's default */
};

static void
test_sync_calls(void **state)
{
    fx *f = *state;
    kitchen_store *s = malloc(sizeof(*s));
    kitchen_fill(s);
    char *want = canon(&s->k.base);
    for (size_t i = 0; i < sizeof(cts) / sizeof(cts[0]); i++) {
        micro_call_opts o = {.address = f->addr, .content_type = cts[i],
            .timeout_ms = 5000};
        Cmicro__Test__Kitchen *out = NULL;
        micro_call *call = NULL;
        int rc = cmicro__test__kitchen_svc__echo_call(f->cli, "kitchen",
            &s->k, &out, &o, &call);
        if (rc != 0) {
            const micro_error *e = micro_call_error(call);
            fail_msg("%s: %s %s", cts[i] ? cts[i] : "default",
                micro_strerror(rc), e && e->detail ? e->detail : "");
        }
        char *have = canon(&out->base);
        assert_string_equal(have, want);
        free(have);
        micro_proto_free(&out->base);
        micro_call_free(call);

        /* A typed handler's error reaches the typed caller. */
        Cmicro__Test__Kitchen bad = CMICRO__TEST__KITCHEN__INIT;
        bad.f_int32 = 400;
        rc = cmicro__test__kitchen_svc__echo_call(f->cli, "kitchen", &bad,
            &out, &o, &call);
        assert_int_equal(rc, MICRO_EREMOTE);
        assert_null(out);
        assert_int_equal(micro_call_error(call)->code, 400);
        assert_string_equal(micro_call_error(call)->detail, "bad 400");
        micro_call_free(call);

        /* Imports across packages; an empty reply. */
        Cmicro__Common__Point pt = CMICRO__COMMON__POINT__INIT;
        pt.x = 3;
        Google__Protobuf__Empty *empty = NULL;
        assert_int_equal(cmicro__test__other__service__ping_call(f->cli,
                             "kitchen", &pt, &empty, &o, NULL),
            0);
        assert_non_null(empty);
        micro_proto_free(&empty->base);
    }
    /* Undecodable body: 400 from the stub's decoding. */
    micro_call_opts o = {.address = f->addr,
        .content_type = "application/json", .timeout_ms = 5000};
    micro_call *call = NULL;
    assert_int_equal(micro_client_call(f->cli, "kitchen", "KitchenSvc.Echo",
                         "{\"nope\":1}", 10, &o, &call),
        MICRO_EREMOTE);
    assert_int_equal(micro_call_error(call)->code, 400);
    micro_call_free(call);
    free(want);
    free(s);
}

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int rc;
    Cmicro__Test__Kitchen *out;
    micro_call *call;
} waiter;

static void
on_echo(void *arg, int rc, Cmicro__Test__Kitchen *out, micro_call *call)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->out = out;
    w->call = call;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void
test_async_call(void **state)
{
    fx *f = *state;
    kitchen_store *s = malloc(sizeof(*s));
    kitchen_fill(s);
    for (size_t i = 0; i < 3; i++) {
        waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER,
            .cv = PTHREAD_COND_INITIALIZER};
        micro_call_opts o = {.address = f->addr, .content_type = cts[i * 2],
            .timeout_ms = 5000};
        assert_int_equal(cmicro__test__kitchen_svc__echo_call_async(f->cli,
                             f->loop, "kitchen", &s->k, &o, on_echo, &w),
            0);
        pthread_mutex_lock(&w.mu);
        while (!w.done) {
            pthread_cond_wait(&w.cv, &w.mu);
        }
        pthread_mutex_unlock(&w.mu);
        assert_int_equal(w.rc, 0);
        assert_int_equal(w.out->f_int64, INT64_MAX);
        micro_proto_free(&w.out->base);
        micro_call_free(w.call);
    }
    assert_int_equal(cmicro__test__kitchen_svc__echo_call_async(f->cli,
                         f->loop, "kitchen", &s->k, NULL, NULL, NULL),
        MICRO_EINVAL);
    free(s);
}

static const micro_value *
child(const micro_value *v, const char *name)
{
    for (size_t i = 0; i < v->n_values; i++) {
        if (strcmp(v->values[i].name, name) == 0) {
            return &v->values[i];
        }
    }
    fail_msg("no value %s under %s", name, v->name);
    return NULL;
}

static void
test_registry_record(void **state)
{
    fx *f = *state;
    micro_registry_service rec = {0};
    assert_int_equal(micro_server_record(f->srv, &rec), 0);
    const micro_endpoint *echo_ep = NULL;
    for (size_t i = 0; i < rec.n_endpoints; i++) {
        const char *n = rec.endpoints[i].name;
        /* Streaming methods are not registered (yet). */
        assert_true(strstr(n, "Upload") == NULL && strstr(n, "Chat") == NULL &&
            strstr(n, "Watch") == NULL);
        if (strcmp(n, "KitchenSvc.Echo") == 0) {
            echo_ep = &rec.endpoints[i];
        }
    }
    assert_int_equal(rec.n_endpoints, 2); /* Echo, Ping; GetHTTP2 is NULL */
    assert_non_null(echo_ep);
    /* What Go Micro's extractValue gives for protoc-gen-go's Kitchen. */
    const micro_value *r = echo_ep->request;
    assert_string_equal(r->name, "Kitchen");
    assert_string_equal(r->type, "Kitchen");
    assert_string_equal(child(r, "f_int64")->type, "int64");
    assert_string_equal(child(r, "f_float")->type, "float32");
    assert_string_equal(child(r, "f_bytes")->type, "[]uint8");
    assert_string_equal(child(r, "f_enum")->type, "Color");
    assert_string_equal(child(r, "r_msg")->type, "[]Kitchen_Inner");
    assert_string_equal(child(r, "r_bytes")->type, "[]");
    assert_string_equal(child(r, "m_str_i64")->type, "");
    assert_string_equal(child(r, "isKitchen_Choice")->type,
        "isKitchen_Choice");
    const micro_value *fm = child(r, "f_msg");
    assert_string_equal(fm->type, "Kitchen_Inner");
    assert_string_equal(child(fm, "tags")->type, "[]string");
    /* Depth 3 ends the tree: f_msg.child has no children. */
    assert_int_equal(child(fm, "child")->n_values, 0);
    assert_string_equal(child(child(r, "t_time"), "seconds")->type, "int64");
    micro_registry_service_clear(&rec);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sync_calls),
        cmocka_unit_test(test_async_call),
        cmocka_unit_test(test_registry_record),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
