/* protoc-gen-cmicro output for tests/codec/proto/kitchen.proto (two
 * services, streaming methods, a package, same-tree and well-known
 * imports), compiled with the project's warnings: typed handlers served
 * over the http transport and called through the typed sync and async
 * clients with every content type; the three kinds of streaming method
 * (Upload client-, Watch server-, Chat bidirectional) through the typed
 * stream stubs, with their errors; and the registry record matching what
 * Go Micro advertises for protoc-gen-go types. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

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

/* ---- stream handlers ------------------------------------------------ */

static int handlers_arg;          /* the Handlers' arg, seen by callbacks */
static atomic_int wrong_arg;      /* callbacks that got another arg */
static atomic_int chat_inline;    /* Chat callbacks run on the loop */
static atomic_int watch_offloop;  /* Watch callbacks run off the loop */
static atomic_int upload_closed;  /* Upload streams whose close ran */

static void
check_arg(void *arg)
{
    if (arg != &handlers_arg) {
        atomic_fetch_add(&wrong_arg, 1);
    }
}

/* Chat (bidirectional): echo each message. f_int32 409 ends the stream
 * with that error, 500 returns a bare error code (the framework's 500).
 * No end hook: the stream ends (EOS) when the client ends its side. */
static int
chat_msg(micro_stream *s, const Cmicro__Test__Kitchen *in, void *arg)
{
    check_arg(arg);
    if (micro_loop_is_current(micro_stream_loop(s))) {
        atomic_fetch_add(&chat_inline, 1);
    }
    if (in->f_int32 == 409) {
        return micro_stream_fail(s, "kitchen", 409, "chat failed at %s",
            in->f_string);
    }
    if (in->f_int32 == 500) {
        return MICRO_ENOMEM;
    }
    return cmicro__test__kitchen_svc__chat_reply(s, in);
}

static void
sent_cb(void *arg, micro_stream *s, int rc)
{
    (void) arg;
    (void) s;
    (void) rc;
}

/* Watch (server-streaming, inline): f_uint32 replies numbered by f_int32,
 * queued with _reply_async (the loop thread never waits), then EOS. */
static int
watch_msg(micro_stream *s, const Cmicro__Test__Kitchen *in, void *arg)
{
    check_arg(arg);
    if (!micro_loop_is_current(micro_stream_loop(s))) {
        atomic_fetch_add(&watch_offloop, 1);
    }
    Cmicro__Test__Kitchen out = CMICRO__TEST__KITCHEN__INIT;
    out.f_string = in->f_string;
    for (uint32_t i = 0; i < in->f_uint32; i++) {
        out.f_int32 = (int32_t) i;
        int rc = cmicro__test__kitchen_svc__watch_reply_async(s, &out,
            sent_cb, NULL);
        if (rc != 0) {
            return rc;
        }
    }
    return micro_stream_close_send(s);
}

/* Upload (client-streaming): sum f_int32 over the messages; at the
 * client's end reply {f_int64: sum, f_int32: count}. */
typedef struct upload_state {
    int64_t sum;
    int32_t count;
} upload_state;

static int
upload_open(micro_stream *s, void *arg)
{
    check_arg(arg);
    upload_state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return MICRO_ENOMEM;
    }
    micro_stream_set_data(s, st);
    return 0;
}

static int
upload_msg(micro_stream *s, const Cmicro__Test__Kitchen *in, void *arg)
{
    check_arg(arg);
    upload_state *st = micro_stream_data(s);
    st->sum += in->f_int32;
    st->count++;
    return 0;
}

static void
upload_end(micro_stream *s, int rc, void *arg)
{
    check_arg(arg);
    if (rc != MICRO_EOF) {
        return;
    }
    upload_state *st = micro_stream_data(s);
    Cmicro__Test__Kitchen out = CMICRO__TEST__KITCHEN__INIT;
    out.f_int64 = st->sum;
    out.f_int32 = st->count;
    if (cmicro__test__kitchen_svc__upload_reply(s, &out) == 0) {
        micro_stream_close_send(s);
    }
}

static void
upload_close(micro_stream *s, int rc, void *arg)
{
    (void) rc;
    check_arg(arg);
    free(micro_stream_data(s));
    atomic_fetch_add(&upload_closed, 1);
}

/* An untyped endpoint that answers a payload no Kitchen decodes from,
 * then a good one, then EOS: the typed receive's MICRO_ECODEC. */
static int
raw_bad_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) body;
    (void) len;
    (void) arg;
    static const uint8_t bad[] = {0xff};
    int rc = micro_stream_send(s, bad, sizeof(bad));
    Cmicro__Test__Kitchen ok = CMICRO__TEST__KITCHEN__INIT;
    ok.f_int32 = 7;
    if (rc == 0) {
        rc = micro_proto_stream_send(s, &ok.base);
    }
    if (rc == 0) {
        rc = micro_stream_close_send(s);
    }
    return rc;
}

/* Echo may run inline; the Handlers' MICRO_HANDLER_INLINE is not applied
 * to the streams (Chat runs on the worker pool), which take it only from
 * their own flags (Watch). */
static const Cmicro__Test__KitchenSvc_Handlers kitchen_handlers = {
    .echo = echo,
    .upload = {.open = upload_open, .msg = upload_msg, .end = upload_end,
        .close = upload_close},
    .watch = {.msg = watch_msg, .flags = MICRO_HANDLER_INLINE},
    .chat = {.msg = chat_msg},
    .arg = &handlers_arg,
    .flags = MICRO_HANDLER_INLINE,
};
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
    micro_stream_handler raw = {.size = sizeof(raw), .endpoint = "Raw.Bad",
        .on_msg = raw_bad_msg, .flags = MICRO_HANDLER_INTERNAL};
    assert_int_equal(micro_server_handle_stream(f->srv, &raw), 0);
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

/* ---- streams ------------------------------------------------------------ */

#define NCTS (sizeof(cts) / sizeof(cts[0]))

static micro_call_opts
stream_opts(const fx *f, const char *ct)
{
    micro_call_opts o = {.size = sizeof(o), .address = f->addr,
        .content_type = ct, .timeout_ms = 5000, .stream_timeout_ms = 20000};
    return o;
}

static void
fail_rc(const char *what, const char *ct, micro_stream *s, int rc)
{
    const micro_error *e = micro_stream_error(s);
    fail_msg("%s (%s): %s %s", what, ct ? ct : "default", micro_strerror(rc),
        e && e->detail ? e->detail : "");
}

/* Bidirectional, every content type: lockstep (the full Kitchen, the
 * empty message), then pipelined sends, the half-close, the replies and
 * the end of the stream. */
static void
test_stream_bidi(void **state)
{
    fx *f = *state;
    kitchen_store *ks = malloc(sizeof(*ks));
    kitchen_fill(ks);
    char *want = canon(&ks->k.base);
    Cmicro__Test__Kitchen empty = CMICRO__TEST__KITCHEN__INIT;
    char *want_empty = canon(&empty.base);
    for (size_t i = 0; i < NCTS; i++) {
        micro_call_opts o = stream_opts(f, cts[i]);
        micro_stream *s = NULL;
        int rc = cmicro__test__kitchen_svc__chat_stream(f->cli, "kitchen", &o,
            &s);
        if (rc != 0) {
            fail_rc("open", cts[i], s, rc);
        }
        assert_string_equal(micro_stream_content_type(s),
            cts[i] ? cts[i] : "application/protobuf");
        for (int round = 0; round < 3; round++) {
            const Cmicro__Test__Kitchen *m = round == 1 ? &empty : &ks->k;
            assert_int_equal(cmicro__test__kitchen_svc__chat_send(s, m), 0);
            Cmicro__Test__Kitchen *out = NULL;
            rc = cmicro__test__kitchen_svc__chat_recv(s, &out);
            if (rc != 0) {
                fail_rc("recv", cts[i], s, rc);
            }
            char *have = canon(&out->base);
            assert_string_equal(have, round == 1 ? want_empty : want);
            free(have);
            micro_proto_free(&out->base);
        }
        for (int32_t n = 1; n <= 3; n++) {
            Cmicro__Test__Kitchen m = CMICRO__TEST__KITCHEN__INIT;
            m.f_int32 = n;
            assert_int_equal(cmicro__test__kitchen_svc__chat_send(s, &m), 0);
        }
        assert_int_equal(micro_stream_close_send(s), 0);
        for (int32_t n = 1; n <= 3; n++) {
            Cmicro__Test__Kitchen *out = NULL;
            rc = cmicro__test__kitchen_svc__chat_recv(s, &out);
            if (rc != 0) {
                fail_rc("recv after close_send", cts[i], s, rc);
            }
            assert_int_equal(out->f_int32, n);
            micro_proto_free(&out->base);
        }
        Cmicro__Test__Kitchen *out = (Cmicro__Test__Kitchen *) &empty;
        assert_int_equal(cmicro__test__kitchen_svc__chat_recv(s, &out),
            MICRO_EOF);
        assert_null(out);
        assert_null(micro_stream_error(s));
        micro_stream_free(s);
    }
    free(want);
    free(want_empty);
    free(ks);
    assert_int_equal(atomic_load(&wrong_arg), 0);
    assert_int_equal(atomic_load(&chat_inline), 0);
}

/* Server-streaming: _call_stream sends the request and half-closes; the
 * replies, then MICRO_EOF. The handler runs inline (its own flags). */
static void
test_stream_server(void **state)
{
    fx *f = *state;
    for (size_t i = 0; i < NCTS; i++) {
        for (uint32_t count = 0; count <= 5; count += 5) {
            micro_call_opts o = stream_opts(f, cts[i]);
            Cmicro__Test__Kitchen in = CMICRO__TEST__KITCHEN__INIT;
            in.f_string = "w";
            in.f_uint32 = count;
            micro_stream *s = NULL;
            int rc = cmicro__test__kitchen_svc__watch_call_stream(f->cli,
                "kitchen", &in, &o, &s);
            if (rc != 0) {
                fail_rc("call_stream", cts[i], s, rc);
            }
            for (uint32_t n = 0; n < count; n++) {
                Cmicro__Test__Kitchen *out = NULL;
                rc = cmicro__test__kitchen_svc__watch_recv(s, &out);
                if (rc != 0) {
                    fail_rc("recv", cts[i], s, rc);
                }
                assert_int_equal(out->f_int32, (int32_t) n);
                assert_string_equal(out->f_string, "w");
                micro_proto_free(&out->base);
            }
            Cmicro__Test__Kitchen *out = NULL;
            assert_int_equal(cmicro__test__kitchen_svc__watch_recv(s, &out),
                MICRO_EOF);
            micro_stream_free(s);
        }
    }
    assert_int_equal(atomic_load(&watch_offloop), 0);
    assert_int_equal(atomic_load(&wrong_arg), 0);
    assert_int_equal(cmicro__test__kitchen_svc__watch_call_stream(f->cli,
                         "kitchen", NULL, NULL, &(micro_stream *){NULL}),
        MICRO_EINVAL);
}

static void
wait_atomic(atomic_int *v, int want)
{
    for (int i = 0; i < 500 && atomic_load(v) < want; i++) {
        usleep(10000);
    }
    assert_int_equal(atomic_load(v), want);
}

/* Client-streaming: the messages, then _close_and_recv gets the one reply
 * the handler's end hook sends; open/close hooks keep per-stream state. */
static void
test_stream_client(void **state)
{
    fx *f = *state;
    int before = atomic_load(&upload_closed);
    int streams = 0;
    for (size_t i = 0; i < NCTS; i++) {
        for (int32_t count = 0; count <= 4; count += 4) {
            /* Not tested: no message at all over application/grpc*, where
             * there is no placeholder and the client's EOS is the opening
             * message, which the server does not take as the client's
             * end (the stream waits for its deadline). */
            if (count == 0 && cts[i] != NULL &&
                strncmp(cts[i], "application/grpc", 16) == 0) {
                continue;
            }
            micro_call_opts o = stream_opts(f, cts[i]);
            micro_stream *s = NULL;
            int rc = cmicro__test__kitchen_svc__upload_stream(f->cli,
                "kitchen", &o, &s);
            if (rc != 0) {
                fail_rc("open", cts[i], s, rc);
            }
            for (int32_t n = 1; n <= count; n++) {
                Cmicro__Test__Kitchen m = CMICRO__TEST__KITCHEN__INIT;
                m.f_int32 = n;
                assert_int_equal(cmicro__test__kitchen_svc__upload_send(s, &m),
                    0);
            }
            Cmicro__Test__Kitchen *out = NULL;
            rc = cmicro__test__kitchen_svc__upload_close_and_recv(s, &out);
            if (rc != 0) {
                fail_rc("close_and_recv", cts[i], s, rc);
            }
            assert_int_equal(out->f_int32, count);
            assert_int_equal(out->f_int64, count * (count + 1) / 2);
            micro_proto_free(&out->base);
            micro_stream_free(s);
            streams++;
        }
    }
    wait_atomic(&upload_closed, before + streams);
    assert_int_equal(atomic_load(&wrong_arg), 0);
}

/* Errors: an undecodable message (400 from the stub's decoding), a
 * handler's micro_stream_fail mid-stream and a bare error return (500),
 * each reaching the client as MICRO_EREMOTE after the replies sent
 * before; a reply the typed receive cannot decode (MICRO_ECODEC, the
 * stream goes on); a content type without messages; bad arguments. */
static void
test_stream_errors(void **state)
{
    fx *f = *state;
    static const char *const two[] = {"application/protobuf",
        "application/json"};
    static const char *const junk[] = {"\xff", "{\"nope\":1}"};
    for (size_t i = 0; i < 2; i++) {
        micro_call_opts o = stream_opts(f, two[i]);
        micro_stream *s = NULL;
        Cmicro__Test__Kitchen m = CMICRO__TEST__KITCHEN__INIT;
        Cmicro__Test__Kitchen *out = NULL;

        /* Undecodable. */
        assert_int_equal(cmicro__test__kitchen_svc__chat_stream(f->cli,
                             "kitchen", &o, &s),
            0);
        m.f_string = "a";
        assert_int_equal(cmicro__test__kitchen_svc__chat_send(s, &m), 0);
        assert_int_equal(micro_stream_send(s, junk[i], strlen(junk[i])), 0);
        assert_int_equal(cmicro__test__kitchen_svc__chat_recv(s, &out), 0);
        assert_string_equal(out->f_string, "a");
        micro_proto_free(&out->base);
        assert_int_equal(cmicro__test__kitchen_svc__chat_recv(s, &out),
            MICRO_EREMOTE);
        assert_null(out);
        assert_int_equal(micro_stream_error(s)->code, 400);
        assert_non_null(strstr(micro_stream_error(s)->detail,
            "cmicro.test.Kitchen"));
        micro_stream_free(s);

        /* micro_stream_fail mid-stream. */
        assert_int_equal(cmicro__test__kitchen_svc__chat_stream(f->cli,
                             "kitchen", &o, &s),
            0);
        m.f_string = "a";
        assert_int_equal(cmicro__test__kitchen_svc__chat_send(s, &m), 0);
        m.f_string = "b";
        m.f_int32 = 409;
        assert_int_equal(cmicro__test__kitchen_svc__chat_send(s, &m), 0);
        assert_int_equal(cmicro__test__kitchen_svc__chat_recv(s, &out), 0);
        assert_string_equal(out->f_string, "a");
        micro_proto_free(&out->base);
        assert_int_equal(cmicro__test__kitchen_svc__chat_recv(s, &out),
            MICRO_EREMOTE);
        const micro_error *e = micro_stream_error(s);
        assert_int_equal(e->code, 409);
        assert_string_equal(e->id, "kitchen");
        assert_string_equal(e->detail, "chat failed at b");
        /* The stream is over: sends fail with its status. */
        assert_int_equal(cmicro__test__kitchen_svc__chat_send(s, &m),
            MICRO_EREMOTE);
        micro_stream_free(s);

        /* A bare error return: 500. */
        assert_int_equal(cmicro__test__kitchen_svc__chat_stream(f->cli,
                             "kitchen", &o, &s),
            0);
        m.f_int32 = 500;
        assert_int_equal(cmicro__test__kitchen_svc__chat_send(s, &m), 0);
        assert_int_equal(cmicro__test__kitchen_svc__chat_recv(s, &out),
            MICRO_EREMOTE);
        assert_int_equal(micro_stream_error(s)->code, 500);
        micro_stream_free(s);
        m.f_int32 = 0;
    }

    /* A reply that does not decode: MICRO_ECODEC, then the stream goes on. */
    micro_call_opts o = stream_opts(f, NULL);
    micro_stream *s = NULL;
    assert_int_equal(
        micro_proto_stream_open(f->cli, "kitchen", "Raw.Bad", &o, &s), 0);
    Cmicro__Test__Kitchen m = CMICRO__TEST__KITCHEN__INIT;
    assert_int_equal(cmicro__test__kitchen_svc__chat_send(s, &m), 0);
    Cmicro__Test__Kitchen *out = NULL;
    assert_int_equal(cmicro__test__kitchen_svc__chat_recv(s, &out),
        MICRO_ECODEC);
    assert_null(out);
    assert_int_equal(cmicro__test__kitchen_svc__chat_recv(s, &out), 0);
    assert_int_equal(out->f_int32, 7);
    micro_proto_free(&out->base);
    assert_int_equal(cmicro__test__kitchen_svc__chat_recv(s, &out),
        MICRO_EOF);

    /* Bad arguments. */
    assert_int_equal(cmicro__test__kitchen_svc__chat_send(s, NULL),
        MICRO_EINVAL);
    assert_int_equal(cmicro__test__kitchen_svc__chat_send(NULL, &m),
        MICRO_EINVAL);
    assert_int_equal(cmicro__test__kitchen_svc__chat_recv(s, NULL),
        MICRO_EINVAL);
    assert_int_equal(cmicro__test__kitchen_svc__chat_recv_async(s, NULL,
                         NULL),
        MICRO_EINVAL);
    assert_int_equal(cmicro__test__kitchen_svc__upload_close_and_recv(NULL,
                         &out),
        MICRO_EINVAL);
    micro_stream_free(s);

    /* A content type that carries no messages: refused before dialing. */
    o = stream_opts(f, "text/plain");
    s = (micro_stream *) &m;
    assert_int_equal(cmicro__test__kitchen_svc__chat_stream(f->cli, "kitchen",
                         &o, &s),
        MICRO_ECONTENTTYPE);
    assert_null(s);
}

typedef struct swaiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int events;
    int open_rc;
    micro_stream *s;
    int sent_rc;
    int recv_rc;
    Cmicro__Test__Kitchen *out;
} swaiter;

static void
sw_event(swaiter *w)
{
    w->events++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void
sw_wait(swaiter *w, int events)
{
    pthread_mutex_lock(&w->mu);
    while (w->events < events) {
        pthread_cond_wait(&w->cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
}

static void
on_stream_open(void *arg, int rc, micro_stream *s)
{
    swaiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->open_rc = rc;
    w->s = s;
    sw_event(w);
}

static void
on_stream_sent(void *arg, micro_stream *s, int rc)
{
    (void) s;
    swaiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->sent_rc = rc;
    sw_event(w);
}

static void
on_stream_recv(void *arg, micro_stream *s, int rc, Cmicro__Test__Kitchen *out)
{
    (void) s;
    swaiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->recv_rc = rc;
    w->out = out;
    sw_event(w);
}

/* The asynchronous stubs on a loop: open, send, receive, end. */
static void
test_stream_async(void **state)
{
    fx *f = *state;
    for (size_t i = 0; i < NCTS; i++) {
        swaiter w = {.mu = PTHREAD_MUTEX_INITIALIZER,
            .cv = PTHREAD_COND_INITIALIZER};
        micro_call_opts o = stream_opts(f, cts[i]);
        assert_int_equal(cmicro__test__kitchen_svc__chat_stream_async(f->cli,
                             f->loop, "kitchen", &o, on_stream_open, &w),
            0);
        sw_wait(&w, 1);
        assert_int_equal(w.open_rc, 0);
        Cmicro__Test__Kitchen m = CMICRO__TEST__KITCHEN__INIT;
        m.f_int32 = 42;
        assert_int_equal(cmicro__test__kitchen_svc__chat_recv_async(w.s,
                             on_stream_recv, &w),
            0);
        assert_int_equal(cmicro__test__kitchen_svc__chat_send_async(w.s, &m,
                             on_stream_sent, &w),
            0);
        sw_wait(&w, 3);
        assert_int_equal(w.sent_rc, 0);
        assert_int_equal(w.recv_rc, 0);
        assert_int_equal(w.out->f_int32, 42);
        micro_proto_free(&w.out->base);
        w.out = NULL;
        assert_int_equal(micro_stream_close_send(w.s), 0);
        assert_int_equal(cmicro__test__kitchen_svc__chat_recv_async(w.s,
                             on_stream_recv, &w),
            0);
        sw_wait(&w, 4);
        assert_int_equal(w.recv_rc, MICRO_EOF);
        assert_null(w.out);
        micro_stream_free(w.s);
    }
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
    size_t streams = 0;
    for (size_t i = 0; i < rec.n_endpoints; i++) {
        const micro_endpoint *ep = &rec.endpoints[i];
        const char *n = ep->name;
        const char *stream = micro_metadata_get(&ep->metadata, "stream");
        if (strcmp(n, "KitchenSvc.Upload") == 0 ||
            strcmp(n, "KitchenSvc.Watch") == 0 ||
            strcmp(n, "KitchenSvc.Chat") == 0) {
            /* Streams carry their message types, and Go's marker. */
            assert_non_null(stream);
            assert_string_equal(stream, "true");
            assert_string_equal(ep->request->type, "Kitchen");
            assert_string_equal(ep->response->type, "Kitchen");
            assert_string_equal(child(ep->request, "f_int64")->type, "int64");
            streams++;
        } else {
            assert_null(stream);
        }
        assert_true(strcmp(n, "Raw.Bad") != 0); /* internal */
        if (strcmp(n, "KitchenSvc.Echo") == 0) {
            echo_ep = &rec.endpoints[i];
        }
    }
    /* Echo, Upload, Watch, Chat, Ping; GetHTTP2 is NULL */
    assert_int_equal(rec.n_endpoints, 5);
    assert_int_equal(streams, 3);
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
        cmocka_unit_test(test_stream_bidi),
        cmocka_unit_test(test_stream_server),
        cmocka_unit_test(test_stream_client),
        cmocka_unit_test(test_stream_errors),
        cmocka_unit_test(test_stream_async),
        cmocka_unit_test(test_registry_record),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
