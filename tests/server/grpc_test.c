/*
 * The gRPC server (--server=grpc) and client (--client=grpc) together, in
 * process over loopback: unary calls, errors and their codes both ways,
 * unknown endpoints, metadata, deadlines, streams of every kind (several
 * bidirectional ones at once on one connection, blocking senders and
 * receivers that fall behind), many calls multiplexed, the registry
 * markers, and the graceful stop (a call in flight finishes, a new one is
 * refused).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmicro/micro.h>

#define CT "application/json"

static int
h_hello(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t n = 0;
    const char *b = micro_request_body(req, &n);
    char out[256];
    int k = snprintf(out, sizeof(out), "{\"got\":%.*s}", (int) n, b);
    return micro_response_set_body(rsp, out, (size_t) k);
}

static int
h_fail(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t n = 0;
    const char *b = micro_request_body(req, &n);
    char tmp[32] = {0};
    memcpy(tmp, b, n < sizeof(tmp) - 1 ? n : sizeof(tmp) - 1);
    return micro_response_error(rsp, "g", (int32_t) strtol(tmp, NULL, 10),
        "failed %s", tmp);
}

static int
h_meta(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    const char *v = micro_request_header(req, "X-Foo");
    char out[128];
    int k = snprintf(out, sizeof(out), "\"%s\"", v ? v : "");
    (void) micro_response_set_header(rsp, "X-Back", "yes");
    return micro_response_set_body(rsp, out, (size_t) k);
}

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_entered, gate_open;

static int
h_gate(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) arg;
    pthread_mutex_lock(&gate_mu);
    gate_entered = 1;
    pthread_cond_broadcast(&gate_cv);
    while (!gate_open) {
        pthread_cond_wait(&gate_cv, &gate_mu);
    }
    pthread_mutex_unlock(&gate_mu);
    return micro_response_set_body(rsp, "\"done\"", 6);
}

static int
echo_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    return micro_stream_send(s, body, len);
}

static _Atomic int sum_count;

static int
sum_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) s;
    (void) body;
    (void) len;
    (void) arg;
    atomic_fetch_add(&sum_count, 1);
    return 0;
}

static void
sum_end(micro_stream *s, int rc, void *arg)
{
    (void) arg;
    if (rc == MICRO_EOF) {
        char out[32];
        int k = snprintf(out, sizeof(out), "%d", atomic_load(&sum_count));
        (void) micro_stream_send(s, out, (size_t) k);
        (void) micro_stream_close_send(s);
    }
}

static int
count_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    char tmp[16] = {0};
    memcpy(tmp, body, len < 15 ? len : 15);
    int n = (int) strtol(tmp, NULL, 10);
    for (int i = 0; i < n; i++) {
        char out[16];
        int k = snprintf(out, sizeof(out), "%d", i);
        int rc = micro_stream_send(s, out, (size_t) k);
        if (rc != 0) {
            return rc;
        }
    }
    return micro_stream_close_send(s);
}

typedef struct fx {
    micro_loop *sloop, *cloop;
    micro_transport *str, *ctr;
    micro_server *srv;
    micro_client *cli;
    micro_options *opts;
    char addr[64];
} fx;

static fx *
fx_new(void)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(micro_options_new(&f->opts), 0);
    assert_int_equal(micro_options_set_str(f->opts, "server_address",
                         "127.0.0.1:0"), 0);
    assert_int_equal(micro_options_set_str(f->opts, "server_name", "g"), 0);
    assert_int_equal(micro_options_set_int(f->opts, "client_retries", 0), 0);
    assert_int_equal(micro_loop_new(&f->sloop), 0);
    assert_int_equal(micro_loop_new(&f->cloop), 0);
    assert_int_equal(micro_transport_new_by_name(&f->str, "http", f->sloop,
                         f->opts), 0);
    assert_int_equal(micro_transport_new_by_name(&f->ctr, "http", f->cloop,
                         f->opts), 0);
    assert_int_equal(micro_server_new_with_ops(&f->srv, &micro_server_grpc_ops,
                         f->sloop, f->str, f->opts), 0);
    struct {
        const char *ep;
        micro_handler_fn fn;
    } us[] = {{"G.Hello", h_hello}, {"G.Fail", h_fail}, {"G.Meta", h_meta},
        {"G.Gate", h_gate}};
    for (size_t i = 0; i < sizeof(us) / sizeof(us[0]); i++) {
        micro_handler_desc d = {.size = sizeof(d), .endpoint = us[i].ep,
            .fn = us[i].fn};
        assert_int_equal(micro_server_handle(f->srv, &d), 0);
    }
    micro_stream_handler e = {.size = sizeof(e), .endpoint = "G.Echo",
        .on_msg = echo_msg};
    micro_stream_handler s = {.size = sizeof(s), .endpoint = "G.Sum",
        .on_msg = sum_msg, .on_end = sum_end};
    micro_stream_handler c = {.size = sizeof(c), .endpoint = "G.Count",
        .on_msg = count_msg};
    assert_int_equal(micro_server_handle_stream(f->srv, &e), 0);
    assert_int_equal(micro_server_handle_stream(f->srv, &s), 0);
    assert_int_equal(micro_server_handle_stream(f->srv, &c), 0);
    assert_int_equal(micro_server_start(f->srv), 0);
    snprintf(f->addr, sizeof(f->addr), "%s", micro_server_address(f->srv));
    assert_int_equal(micro_client_new_with_ops(&f->cli, &micro_client_grpc_ops,
                         f->ctr, NULL, f->opts), 0);
    return f;
}

static void
fx_free(fx *f)
{
    micro_client_free(f->cli);
    micro_server_stop(f->srv, 2000);
    micro_server_free(f->srv);
    micro_transport_free(f->ctr);
    micro_transport_free(f->str);
    micro_loop_free(f->cloop);
    micro_loop_free(f->sloop);
    micro_options_free(f->opts);
    free(f);
}

static int
call(fx *f, const char *ep, const char *body, micro_call **out,
    const micro_header_kv *md, size_t nmd)
{
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = f->addr;
    o.content_type = CT;
    o.metadata = md;
    o.n_metadata = nmd;
    o.timeout_ms = 20000;
    return micro_client_call(f->cli, "pkg.svc", ep, body, strlen(body), &o,
        out);
}

static void
expect_body(const micro_call *c, const char *want)
{
    size_t n = 0;
    const char *b = micro_call_body(c, &n);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(b, want, n);
}

static void
test_unary(void **state)
{
    (void) state;
    fx *f = fx_new();
    micro_call *c = NULL;
    assert_int_equal(call(f, "G.Hello", "{\"a\":1}", &c, NULL, 0), 0);
    expect_body(c, "{\"got\":{\"a\":1}}");
    micro_call_free(c);
    /* An empty request is one empty message. */
    assert_int_equal(call(f, "G.Hello", "", &c, NULL, 0), 0);
    expect_body(c, "{\"got\":}");
    micro_call_free(c);
    fx_free(f);
}

static void
test_errors_keep_codes(void **state)
{
    (void) state;
    fx *f = fx_new();
    const int codes[] = {400, 401, 403, 404, 408, 409, 412, 418, 500, 501,
        503};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        char b[16];
        snprintf(b, sizeof(b), "%d", codes[i]);
        micro_call *c = NULL;
        assert_int_equal(call(f, "G.Fail", b, &c, NULL, 0), MICRO_EREMOTE);
        const micro_error *e = micro_call_error(c);
        assert_non_null(e);
        assert_int_equal(e->code, codes[i]);
        assert_string_equal(e->id, "g");
        char d[32];
        snprintf(d, sizeof(d), "failed %d", codes[i]);
        assert_string_equal(e->detail, d);
        micro_call_free(c);
    }
    /* Unknown method and service: Unimplemented (501 back), and the
     * server keeps serving. */
    micro_call *c = NULL;
    assert_int_equal(call(f, "G.Nope", "{}", &c, NULL, 0), MICRO_EREMOTE);
    assert_int_equal(micro_call_error(c)->code, 501);
    assert_non_null(strstr(micro_call_error(c)->detail,
        "unknown service G.Nope"));
    micro_call_free(c);
    assert_int_equal(call(f, "Nope.Hello", "{}", &c, NULL, 0), MICRO_EREMOTE);
    assert_int_equal(micro_call_error(c)->code, 501);
    micro_call_free(c);
    assert_int_equal(call(f, "G.Hello", "1", &c, NULL, 0), 0);
    micro_call_free(c);
    micro_server_stats st;
    micro_server_get_stats(f->srv, &st);
    assert_true(st.errors >= 11);
    fx_free(f);
}

static void
test_metadata(void **state)
{
    (void) state;
    fx *f = fx_new();
    micro_header_kv md[] = {{"X-Foo", "bar"}};
    micro_call *c = NULL;
    assert_int_equal(call(f, "G.Meta", "{}", &c, md, 1), 0);
    expect_body(c, "\"bar\"");
    assert_string_equal(micro_call_header(c, "x-back"), "yes");
    micro_call_free(c);
    fx_free(f);
}

static void
test_record_markers(void **state)
{
    (void) state;
    fx *f = fx_new();
    micro_registry_service rec;
    memset(&rec, 0, sizeof(rec));
    assert_int_equal(micro_server_record(f->srv, &rec), 0);
    assert_int_equal(rec.n_nodes, 1);
    const micro_metadata *md = &rec.nodes[0].metadata;
    assert_string_equal(micro_metadata_get(md, "protocol"), "grpc");
    assert_string_equal(micro_metadata_get(md, "server"), "grpc");
    assert_string_equal(micro_metadata_get(md, "transport"), "grpc");
    micro_registry_service_clear(&rec);
    fx_free(f);
}

static micro_stream *
open_stream(fx *f, const char *ep)
{
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = f->addr;
    o.content_type = CT;
    micro_stream *s = NULL;
    assert_int_equal(micro_client_stream(f->cli, "pkg.svc", ep, &o, &s), 0);
    return s;
}

static void
recv_str(micro_stream *s, const char *want)
{
    micro_buf b = {0};
    assert_int_equal(micro_stream_recv(s, &b), 0);
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.data, want, b.len);
    micro_buf_clear(&b);
}

static void
test_streams(void **state)
{
    (void) state;
    fx *f = fx_new();
    /* bidi, lock-step; the first message is answered */
    micro_stream *s = open_stream(f, "G.Echo");
    for (int i = 0; i < 50; i++) {
        char m[16];
        snprintf(m, sizeof(m), "%d", i);
        assert_int_equal(micro_stream_send(s, m, strlen(m)), 0);
        recv_str(s, m);
    }
    assert_int_equal(micro_stream_close_send(s), 0);
    micro_buf b = {0};
    assert_int_equal(micro_stream_recv(s, &b), MICRO_EOF);
    micro_stream_free(s);
    /* client streaming: the handler sees the end and still answers */
    atomic_store(&sum_count, 0);
    s = open_stream(f, "G.Sum");
    for (int i = 0; i < 20; i++) {
        assert_int_equal(micro_stream_send(s, "1", 1), 0);
    }
    assert_int_equal(micro_stream_close_send(s), 0);
    recv_str(s, "20");
    assert_int_equal(micro_stream_recv(s, &b), MICRO_EOF);
    micro_stream_free(s);
    /* server streaming */
    s = open_stream(f, "G.Count");
    assert_int_equal(micro_stream_send(s, "300", 3), 0);
    for (int i = 0; i < 300; i++) {
        char m[16];
        snprintf(m, sizeof(m), "%d", i);
        recv_str(s, m);
    }
    assert_int_equal(micro_stream_recv(s, &b), MICRO_EOF);
    micro_stream_free(s);
    /* a unary endpoint called as a stream: served as unary (as gRPC
     * servers do): one reply, then the end */
    s = open_stream(f, "G.Hello");
    assert_int_equal(micro_stream_send(s, "1", 1), 0);
    recv_str(s, "{\"got\":1}");
    assert_int_equal(micro_stream_recv(s, &b), MICRO_EOF);
    micro_buf_clear(&b);
    micro_stream_free(s);
    fx_free(f);
}

/* Several bidirectional streams at once on one client (one HTTP/2
 * connection), each fed by a sender thread with the blocking API and read
 * by a receiver thread: every reply arrives in order, then a clean EOF on
 * every stream. Twice: small messages, whose receivers fall behind early
 * (their streams fill up and pause while the rest of the stream, its
 * trailers and its close arrive: the end must still come after every
 * message, not as a reset), and 1 KiB messages, whose senders hand more
 * than a window at once (they must be woken once HTTP/2 has taken it) and
 * whose receivers fall behind near the end; then 1 KiB messages on 16
 * streams, more output at once than the HTTP/2 engine writes in one pass.
 * A watchdog ends the process if anything hangs. */
enum { CB_STREAMS = 16, CB_MSGS = 5000 };

typedef struct cb_pipe {
    micro_stream *s;
    int idx;
    int pad;    /* bytes of padding in each message */
    int lag_at; /* the receiver stops for a moment at this message */
    int send_rc, close_rc;
    int got, bad, end_rc;
} cb_pipe;

/* Message i of pipe p: a JSON string, the number then padding. */
static int
cb_msg(const cb_pipe *p, int i, char *out, size_t cap)
{
    int k = snprintf(out, cap, "\"%d", p->idx * 1000000 + i);
    memset(out + k, 'x', (size_t) p->pad);
    k += p->pad;
    out[k++] = '"';
    return k;
}

static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cv = PTHREAD_COND_INITIALIZER;
static bool wd_done;

static void *
watchdog(void *arg)
{
    int secs = *(const int *) arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += secs;
    pthread_mutex_lock(&wd_mu);
    while (!wd_done) {
        if (pthread_cond_timedwait(&wd_cv, &wd_mu, &ts) != 0 && !wd_done) {
            fprintf(stderr, "watchdog: no end after %d s\n", secs);
            abort();
        }
    }
    pthread_mutex_unlock(&wd_mu);
    return NULL;
}

static void *
cb_sender(void *arg)
{
    cb_pipe *p = arg;
    for (int i = 0; i < CB_MSGS && p->send_rc == 0; i++) {
        char m[1100];
        int k = cb_msg(p, i, m, sizeof(m));
        p->send_rc = micro_stream_send(p->s, m, (size_t) k);
    }
    p->close_rc = micro_stream_close_send(p->s);
    return NULL;
}

static void *
cb_receiver(void *arg)
{
    cb_pipe *p = arg;
    for (;;) {
        if (p->got == p->lag_at) {
            /* fall behind: the stream fills and pauses meanwhile */
            struct timespec d = {0, 100 * 1000 * 1000};
            nanosleep(&d, NULL);
        }
        micro_buf b = {0};
        int rc = micro_stream_recv(p->s, &b);
        if (rc != 0) {
            p->end_rc = rc;
            break;
        }
        char want[1100];
        int k = cb_msg(p, p->got, want, sizeof(want));
        if (b.len != (size_t) k || memcmp(b.data, want, b.len) != 0) {
            p->bad++;
        }
        p->got++;
        micro_buf_clear(&b);
    }
    return NULL;
}

static void
concurrent_bidi(fx *f, int streams, int pad, int lag_at)
{
    cb_pipe p[CB_STREAMS];
    pthread_t snd[CB_STREAMS], rcv[CB_STREAMS];
    memset(p, 0, sizeof(p));
    for (int i = 0; i < streams; i++) {
        p[i].idx = i + 1;
        p[i].pad = pad;
        p[i].lag_at = lag_at;
        p[i].s = open_stream(f, "G.Echo");
    }
    for (int i = 0; i < streams; i++) {
        assert_int_equal(pthread_create(&rcv[i], NULL, cb_receiver, &p[i]),
            0);
        assert_int_equal(pthread_create(&snd[i], NULL, cb_sender, &p[i]), 0);
    }
    for (int i = 0; i < streams; i++) {
        pthread_join(snd[i], NULL);
        pthread_join(rcv[i], NULL);
    }
    for (int i = 0; i < streams; i++) {
        assert_int_equal(p[i].send_rc, 0);
        assert_int_equal(p[i].close_rc, 0);
        assert_int_equal(p[i].bad, 0);
        assert_int_equal(p[i].got, CB_MSGS);
        assert_int_equal(p[i].end_rc, MICRO_EOF);
        assert_null(micro_stream_error(p[i].s));
        micro_stream_free(p[i].s);
    }
}

static void
test_concurrent_bidi(void **state)
{
    (void) state;
    fx *f = fx_new();
    wd_done = false;
    int secs = 90; /* under the test's ctest timeout */
    pthread_t wd;
    assert_int_equal(pthread_create(&wd, NULL, watchdog, &secs), 0);
    concurrent_bidi(f, 4, 0, 100);
    concurrent_bidi(f, 4, 1000, CB_MSGS - 1000);
    /* more output at once than the engine writes in one pass (256 KiB) */
    concurrent_bidi(f, CB_STREAMS, 1000, CB_MSGS - 1000);
    fx_free(f);
    pthread_mutex_lock(&wd_mu);
    wd_done = true;
    pthread_cond_broadcast(&wd_cv);
    pthread_mutex_unlock(&wd_mu);
    pthread_join(wd, NULL);
}

typedef struct multi {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int left, ok;
} multi;

static void
multi_done(void *arg, int rc, micro_call *c)
{
    multi *m = arg;
    size_t n = 0;
    const char *b = rc == 0 ? micro_call_body(c, &n) : NULL;
    pthread_mutex_lock(&m->mu);
    m->ok += rc == 0 && n > 6 && memcmp(b, "{\"got\":", 7) == 0;
    m->left--;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    micro_call_free(c);
}

/* Many calls at once from one loop: one HTTP/2 connection carries them. */
static void
test_multiplexed(void **state)
{
    (void) state;
    fx *f = fx_new();
    enum { N = 500 };
    multi m = {.left = N};
    pthread_mutex_init(&m.mu, NULL);
    pthread_cond_init(&m.cv, NULL);
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = f->addr;
    o.content_type = CT;
    o.timeout_ms = 30000;
    for (int i = 0; i < N; i++) {
        char b[16];
        snprintf(b, sizeof(b), "%d", i);
        assert_int_equal(micro_client_call_async(f->cli, f->cloop, "pkg.svc",
                             "G.Hello", b, strlen(b), &o, multi_done, &m), 0);
    }
    pthread_mutex_lock(&m.mu);
    while (m.left > 0) {
        pthread_cond_wait(&m.cv, &m.mu);
    }
    pthread_mutex_unlock(&m.mu);
    assert_int_equal(m.ok, N);
    micro_transport_stats ts;
    micro_transport_get_stats(f->str, &ts);
    pthread_mutex_destroy(&m.mu);
    pthread_cond_destroy(&m.cv);
    fx_free(f);
}

typedef struct bg {
    fx *f;
    int rc;
    int code;
} bg;

static void *
bg_call(void *arg)
{
    bg *b = arg;
    micro_call *c = NULL;
    b->rc = call(b->f, "G.Gate", "{}", &c, NULL, 0);
    micro_call_free(c);
    return NULL;
}

static void *
bg_stop(void *arg)
{
    bg *b = arg;
    b->rc = micro_server_stop(b->f->srv, 20000);
    return NULL;
}

/* Graceful stop: GOAWAY; the call in flight finishes, new calls fail. */
static void
test_graceful_stop(void **state)
{
    (void) state;
    fx *f = fx_new();
    gate_entered = gate_open = 0;
    bg c = {.f = f}, s = {.f = f};
    pthread_t tc, ts;
    assert_int_equal(pthread_create(&tc, NULL, bg_call, &c), 0);
    pthread_mutex_lock(&gate_mu);
    while (!gate_entered) {
        pthread_cond_wait(&gate_cv, &gate_mu);
    }
    pthread_mutex_unlock(&gate_mu);
    assert_int_equal(pthread_create(&ts, NULL, bg_stop, &s), 0);
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    pthread_join(tc, NULL);
    pthread_join(ts, NULL);
    assert_int_equal(c.rc, 0);
    assert_int_equal(s.rc, 0);
    micro_call *x = NULL;
    assert_int_not_equal(call(f, "G.Hello", "1", &x, NULL, 0), 0);
    micro_call_free(x);
    fx_free(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_errors_keep_codes),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_record_markers),
        cmocka_unit_test(test_streams),
        cmocka_unit_test(test_concurrent_bidi),
        cmocka_unit_test(test_multiplexed),
        cmocka_unit_test(test_graceful_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
