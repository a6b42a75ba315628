/* micro_client_call_async on the caller's loop (mucp over the http
 * transport, no wrappers): many calls in flight from one loop thread,
 * completion in any order, timeouts, retries across nodes with back-off,
 * connection reuse, a peer that closes mid-response, calls from other
 * threads and from inside callbacks, and freeing the client or closing the
 * loop with calls pending. The server is a real cmicro server in the same
 * process (its own loop). */
#include <stdarg.h>
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

#include "core/loop_internal.h"
#include "support/http_srv.h"
#include "support/support.h"

typedef struct fx {
    micro_loop *loop;  /* server and transport */
    micro_loop *cloop; /* async calls */
    micro_transport *tr;
    micro_server *srv;
    micro_options *opts;
    const char *addr;
} fx;

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Echoes the body; a body "<n>" with n % 4 != 0 first sleeps (n % 4) * 5
 * ms, so that replies come back out of order. */
static int
h_echo(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t len = 0;
    const char *b = micro_request_body(req, &len);
    char tmp[16] = "";
    snprintf(tmp, sizeof(tmp), "%.*s", (int) (len < 15 ? len : 15), b);
    int n = (int) strtol(tmp, NULL, 10);
    if (n % 4 != 0) {
        sleep_ms((n % 4) * 5);
    }
    return micro_response_set_body(rsp, b, len);
}

static int
h_sleep(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t len = 0;
    const char *b = micro_request_body(req, &len);
    char tmp[16] = "";
    snprintf(tmp, sizeof(tmp), "%.*s", (int) (len < 15 ? len : 15), b);
    sleep_ms((int) strtol(tmp, NULL, 10));
    return micro_response_set_body(rsp, "\"done\"", 6);
}

/* Replies "<X-A>|<Micro-Id>|<Content-Type>" of the request. */
static int
h_headers(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    const char *a = micro_request_header(req, "X-A");
    const char *ct = micro_request_header(req, "Content-Type");
    char out[256];
    snprintf(out, sizeof(out), "\"%s|%s\"", a ? a : "-", ct ? ct : "-");
    return micro_response_set_body(rsp, out, strlen(out));
}

static int
fx_setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(micro_loop_new(&f->loop), 0);
    assert_int_equal(micro_loop_new(&f->cloop), 0);
    assert_int_equal(micro_options_new(&f->opts), 0);
    assert_int_equal(
        micro_options_set_str(f->opts, "server_address", "127.0.0.1:0"), 0);
    assert_int_equal(micro_options_set_str(f->opts, "server_name", "svc"), 0);
    assert_int_equal(micro_options_set_int(f->opts, "server_workers", 16), 0);
    assert_int_equal(micro_transport_new(&f->tr, &micro_transport_http_ops,
                         f->loop, f->opts),
        0);
    assert_int_equal(micro_server_new(&f->srv, f->loop, f->tr, f->opts), 0);
    micro_handler_desc d1 = {.endpoint = "T.Echo", .fn = h_echo};
    micro_handler_desc d2 = {.endpoint = "T.Sleep", .fn = h_sleep};
    micro_handler_desc d3 = {.endpoint = "T.Headers", .fn = h_headers};
    assert_int_equal(micro_server_handle(f->srv, &d1), 0);
    assert_int_equal(micro_server_handle(f->srv, &d2), 0);
    assert_int_equal(micro_server_handle(f->srv, &d3), 0);
    assert_int_equal(micro_server_start(f->srv), 0);
    f->addr = micro_server_address(f->srv);
    *state = f;
    return 0;
}

static int
fx_teardown(void **state)
{
    fx *f = *state;
    micro_server_stop(f->srv, 3000);
    micro_server_free(f->srv);
    micro_transport_free(f->tr);
    micro_loop_free(f->cloop);
    micro_loop_free(f->loop);
    micro_options_free(f->opts);
    free(f);
    return 0;
}

static micro_client *
new_client(fx *f, micro_selector *sel)
{
    micro_client *c = NULL;
    assert_int_equal(micro_client_new(&c, f->tr, sel, f->opts), 0);
    return c;
}

static uint64_t
accepted(fx *f)
{
    micro_transport_stats st;
    micro_transport_get_stats(f->tr, &st);
    return st.accepted;
}

static void
body_str(const micro_call *c, char *out, size_t cap)
{
    size_t len = 0;
    const char *b = micro_call_body(c, &len);
    while (len > 0 && b[len - 1] == '\n') {
        len--;
    }
    snprintf(out, cap, "%.*s", (int) len, b);
}

/* ------------------------------------------------------------------ */
/* Results.                                                             */

#define MAX_CALLS 1024

typedef struct rec {
    pthread_mutex_t mu;
    micro_loop *loop;
    int done;
    int off_loop;
    int in_start; /* completions inside micro_client_call_async */
    int starting; /* depth of micro_client_call_async on the loop */
    int ok;
    int rc;       /* of the last completion */
    int code;     /* its error code, or 0 */
    char detail[128];
    char body[128];
    char address[96];
    int attempts;
    int seen[MAX_CALLS]; /* echo replies by the number they carry */
    int order[MAX_CALLS];
    int norder;
} rec;

static void
rec_init(rec *r, micro_loop *loop)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->loop = loop;
}

static int
rec_done(rec *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->done;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static void
rec_wait(rec *r, int n, int ms)
{
    int64_t until = t_now_ms() + ms;
    while (rec_done(r) < n && t_now_ms() < until) {
        sleep_ms(2);
    }
    assert_int_equal(rec_done(r), n);
}

/* The argument of one call: its record and the number it sent. */
typedef struct ctx {
    rec *r;
    int id;
} ctx;

static ctx ctxs[MAX_CALLS];

static void
on_done(void *arg, int rc, micro_call *call)
{
    ctx *x = arg;
    rec *r = x->r;
    pthread_mutex_lock(&r->mu);
    if (!micro_loop_is_current(r->loop)) {
        r->off_loop++;
    }
    if (r->starting > 0) {
        r->in_start++;
    }
    r->rc = rc;
    r->code = 0;
    r->detail[0] = r->body[0] = '\0';
    if (call != NULL) {
        const micro_error *e = micro_call_error(call);
        if (e != NULL) {
            r->code = e->code;
            snprintf(r->detail, sizeof(r->detail), "%s",
                e->detail ? e->detail : "");
        }
        snprintf(r->address, sizeof(r->address), "%s",
            micro_call_address(call));
        r->attempts = micro_call_attempts(call);
        if (rc == 0) {
            body_str(call, r->body, sizeof(r->body));
            if (x->id >= 0 && x->id < MAX_CALLS &&
                (int) strtol(r->body, NULL, 10) == x->id) {
                r->seen[x->id]++;
                r->order[r->norder++] = x->id;
            }
            r->ok++;
        }
    }
    r->done++;
    pthread_mutex_unlock(&r->mu);
    micro_call_free(call);
}

/* Start calls on the loop thread (micro__loop_call runs fn there). */
typedef struct batch {
    micro_client *c;
    micro_loop *loop;
    rec *r;
    const char *endpoint;
    int first, n;
    micro_call_opts o;
    int rc;
} batch;

static int
do_batch(void *arg)
{
    batch *b = arg;
    for (int i = b->first; i < b->first + b->n; i++) {
        char body[16];
        snprintf(body, sizeof(body), "%d", i);
        ctxs[i].r = b->r;
        ctxs[i].id = i;
        pthread_mutex_lock(&b->r->mu);
        b->r->starting++;
        pthread_mutex_unlock(&b->r->mu);
        int rc = micro_client_call_async(b->c, b->loop, "svc", b->endpoint,
            body, strlen(body), &b->o, on_done, &ctxs[i]);
        pthread_mutex_lock(&b->r->mu);
        b->r->starting--;
        pthread_mutex_unlock(&b->r->mu);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Throughput shapes.                                                   */

/* 256 calls in flight from one loop thread; replies arrive out of order
 * and each goes to its own callback. */
static void
test_many_in_flight(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f, NULL);
    rec r;
    rec_init(&r, f->cloop);
    enum { N = 256 };
    uint64_t acc0 = accepted(f);
    batch b = {c, f->cloop, &r, "T.Echo", 0, N,
        {.address = f->addr, .timeout_ms = 20000}, 0};
    assert_int_equal(micro__loop_call(f->cloop, do_batch, &b), 0);
    rec_wait(&r, N, 30000);
    assert_int_equal(r.ok, N);
    assert_int_equal(r.off_loop, 0);
    assert_int_equal(r.in_start, 0);
    bool in_order = true;
    for (int i = 0; i < N; i++) {
        assert_int_equal(r.seen[i], 1);
        in_order = in_order && r.order[i] == i;
    }
    assert_false(in_order);
    /* All were in flight at once: one connection each. */
    assert_int_equal(accepted(f) - acc0, N);
    micro_client_free(c);
}

/* Each callback starts the next call on the loop: one connection serves
 * them all. */
typedef struct chain {
    micro_client *c;
    micro_loop *loop;
    const char *addr;
    rec r;
    int left;
} chain;

static ctx chain_ctx;

static void on_chain(void *arg, int rc, micro_call *call);

static int
chain_next(chain *ch)
{
    micro_call_opts o = {.address = ch->addr, .timeout_ms = 5000};
    pthread_mutex_lock(&ch->r.mu);
    ch->r.starting++;
    pthread_mutex_unlock(&ch->r.mu);
    int rc = micro_client_call_async(ch->c, ch->loop, "svc", "T.Echo", "0",
        1, &o, on_chain, ch);
    pthread_mutex_lock(&ch->r.mu);
    ch->r.starting--;
    pthread_mutex_unlock(&ch->r.mu);
    return rc;
}

static void
on_chain(void *arg, int rc, micro_call *call)
{
    chain *ch = arg;
    chain_ctx.r = &ch->r;
    chain_ctx.id = -1;
    on_done(&chain_ctx, rc, call);
    if (rc == 0 && --ch->left > 0) {
        assert_int_equal(chain_next(ch), 0);
    }
}

static int
do_chain(void *arg)
{
    return chain_next(arg);
}

static void
test_chained_calls_reuse_connection(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f, NULL);
    chain ch;
    memset(&ch, 0, sizeof(ch));
    ch.c = c;
    ch.loop = f->cloop;
    ch.addr = f->addr;
    ch.left = 50;
    rec_init(&ch.r, f->cloop);
    uint64_t acc0 = accepted(f);
    assert_int_equal(micro__loop_call(f->cloop, do_chain, &ch), 0);
    rec_wait(&ch.r, 50, 10000);
    assert_int_equal(ch.r.ok, 50);
    assert_int_equal(ch.r.in_start, 0);
    assert_int_equal(ch.r.off_loop, 0);
    assert_int_equal(accepted(f) - acc0, 1);
    micro_client_free(c);
}

/* Calls from several threads at once, completing on the loop. */
typedef struct poster {
    micro_client *c;
    fx *f;
    rec *r;
    int first;
    int rc;
} poster;

enum { POSTERS = 4, PER_POSTER = 50 };

static void *
poster_main(void *arg)
{
    poster *p = arg;
    micro_call_opts o = {.address = p->f->addr, .timeout_ms = 10000};
    for (int i = p->first; i < p->first + PER_POSTER; i++) {
        char body[16];
        snprintf(body, sizeof(body), "%d", i);
        ctxs[i].r = p->r;
        ctxs[i].id = i;
        int rc = micro_client_call_async(p->c, p->f->cloop, "svc", "T.Echo",
            body, strlen(body), &o, on_done, &ctxs[i]);
        if (rc != 0) {
            p->rc = rc;
        }
    }
    return NULL;
}

static void
test_calls_from_other_threads(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f, NULL);
    rec r;
    rec_init(&r, f->cloop);
    pthread_t th[POSTERS];
    poster ps[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        ps[i] = (poster){c, f, &r, i * PER_POSTER, 0};
        pthread_create(&th[i], NULL, poster_main, &ps[i]);
    }
    for (int i = 0; i < POSTERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ps[i].rc, 0);
    }
    rec_wait(&r, POSTERS * PER_POSTER, 20000);
    assert_int_equal(r.ok, POSTERS * PER_POSTER);
    assert_int_equal(r.off_loop, 0);
    for (int i = 0; i < POSTERS * PER_POSTER; i++) {
        assert_int_equal(r.seen[i], 1);
    }
    micro_client_free(c);
}

/* ------------------------------------------------------------------ */
/* The semantics of micro_client_call.                                  */

typedef struct one_body {
    micro_client *c;
    micro_loop *loop;
    rec *r;
    const char *service;
    const char *endpoint;
    const char *body;
    micro_call_opts o;
} one_body;

static int
do_one_body(void *arg)
{
    one_body *b = arg;
    ctxs[0].r = b->r;
    ctxs[0].id = -1;
    pthread_mutex_lock(&b->r->mu);
    b->r->starting++;
    pthread_mutex_unlock(&b->r->mu);
    int rc = micro_client_call_async(b->c, b->loop, b->service, b->endpoint,
        b->body, strlen(b->body), &b->o, on_done, &ctxs[0]);
    pthread_mutex_lock(&b->r->mu);
    b->r->starting--;
    pthread_mutex_unlock(&b->r->mu);
    return rc;
}

/* Start one call on the loop thread and wait for it. */
static int
async_call(fx *f, micro_client *c, const char *service, const char *endpoint,
    const char *body, const micro_call_opts *o, rec *r)
{
    int before = rec_done(r);
    one_body b = {c, f->cloop, r, service, endpoint, body, *o};
    int rc = micro__loop_call(f->cloop, do_one_body, &b);
    if (rc != 0) {
        return rc;
    }
    rec_wait(r, before + 1, 20000);
    return r->rc;
}

static int
async_body(fx *f, micro_client *c, const char *endpoint, const char *body,
    const micro_call_opts *o, rec *r)
{
    return async_call(f, c, "svc", endpoint, body, o, r);
}

/* Metadata, content type and errors as the synchronous call gives them. */
static void
test_same_as_sync(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f, NULL);
    rec r;
    rec_init(&r, f->cloop);
    micro_header_kv md[] = {{"X-A", "alpha"}, {"Micro-Topic", "no"}};
    micro_call_opts o = {.address = f->addr, .timeout_ms = 5000,
        .metadata = md, .n_metadata = 2};
    assert_int_equal(async_body(f, c, "T.Headers", "{}", &o, &r), 0);
    micro_call *call = NULL;
    assert_int_equal(
        micro_client_call(c, "svc", "T.Headers", "{}", 2, &o, &call), 0);
    char sync_body[128];
    body_str(call, sync_body, sizeof(sync_body));
    micro_call_free(call);
    assert_string_equal(r.body, sync_body);
    assert_string_equal(r.body, "\"alpha|application/json\"");
    assert_string_equal(r.address, f->addr);
    assert_int_equal(r.attempts, 1);
    /* Another content type, through its codec. */
    o.content_type = "application/octet-stream";
    assert_int_equal(async_body(f, c, "T.Headers", "raw", &o, &r), 0);
    assert_string_equal(r.body, "\"alpha|application/octet-stream\"");
    o.content_type = NULL;
    /* A Go Micro error reply. */
    assert_int_equal(async_body(f, c, "T.Nope", "{}", &o, &r), MICRO_EREMOTE);
    assert_int_equal(r.code, 404);
    /* Failures found before anything is sent still come through the
     * callback, never inside the call that started them. */
    o.content_type = "application/x-unknown";
    assert_int_equal(async_body(f, c, "T.Echo", "1", &o, &r),
        MICRO_ECONTENTTYPE);
    o.content_type = NULL;
    micro_call_opts none = {.timeout_ms = 1000};
    assert_int_equal(async_body(f, c, "T.Echo", "1", &none, &r),
        MICRO_EINVAL); /* no selector and no address */
    assert_string_equal(r.detail, "no selector and no address");
    assert_int_equal(r.in_start, 0);
    assert_int_equal(r.off_loop, 0);
    micro_client_free(c);
}

/* A handler slower than the call's timeout: 408, as micro_client_call. */
static void
test_timeout(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f, NULL);
    rec r;
    rec_init(&r, f->cloop);
    micro_call_opts o = {.address = f->addr, .timeout_ms = 200,
        .retries = MICRO_CALL_NO_RETRY};
    int64_t t0 = t_now_ms();
    assert_int_equal(async_body(f, c, "T.Sleep", "600", &o, &r),
        MICRO_ETIMEDOUT);
    int64_t el = t_now_ms() - t0;
    assert_true(el >= 190 && el < 600);
    assert_int_equal(r.code, 408);
    assert_int_equal(r.attempts, 1);
    /* Timeouts are retried by default, but the call's own budget leaves
     * no room for a second attempt after the 100 ms back-off. */
    o.retries = 3;
    t0 = t_now_ms();
    assert_int_equal(async_body(f, c, "T.Sleep", "600", &o, &r),
        MICRO_ETIMEDOUT);
    assert_true(t_now_ms() - t0 < 600);
    assert_int_equal(r.attempts, 1);
    /* Other calls were not held up meanwhile: the loop never blocked. */
    o.timeout_ms = 5000;
    assert_int_equal(async_body(f, c, "T.Echo", "0", &o, &r), 0);
    micro_client_free(c);
    sleep_ms(500); /* let the sleeping handlers finish */
}

static void
add_node(micro_registry *reg, const char *id, const char *addr)
{
    micro_registry_service s;
    memset(&s, 0, sizeof(s));
    s.name = strdup("svc");
    s.version = strdup("1");
    s.n_nodes = 1;
    s.nodes = calloc(1, sizeof(micro_node));
    s.nodes[0].id = strdup(id);
    s.nodes[0].address = strdup(addr);
    assert_int_equal(
        micro_metadata_set(&s.nodes[0].metadata, "protocol", "mucp"), 0);
    assert_int_equal(micro_registry_register(reg, &s, 0), 0);
    micro_registry_service_clear(&s);
}

/* Through the selector: the first node (round robin, by id) is dead; the
 * attempt fails to connect, is retried after the 100 ms back-off, and the
 * selector, which now backs the dead node off, picks the live one. */
static void
test_retry_dead_then_live(void **state)
{
    fx *f = *state;
    micro_registry *reg = NULL;
    micro_selector *sel = NULL;
    assert_int_equal(
        micro_registry_new(&reg, &micro_registry_memory_ops, NULL), 0);
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", t_free_port());
    add_node(reg, "a-dead", dead);
    add_node(reg, "b-live", f->addr);
    assert_int_equal(
        micro_selector_new(&sel, &micro_selector_roundrobin_ops, reg, NULL),
        0);
    micro_client *c = new_client(f, sel);
    rec r;
    rec_init(&r, f->cloop);
    micro_call_opts o = {.timeout_ms = 5000};
    int64_t t0 = t_now_ms();
    assert_int_equal(async_body(f, c, "T.Echo", "0", &o, &r), 0);
    int64_t el = t_now_ms() - t0;
    assert_int_equal(r.attempts, 2);
    assert_string_equal(r.address, f->addr);
    assert_true(el >= 100);
    /* The cache answers on the loop now, and the dead node stays backed
     * off: the next calls go straight to the live one. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(async_body(f, c, "T.Echo", "0", &o, &r), 0);
        assert_int_equal(r.attempts, 1);
        assert_string_equal(r.address, f->addr);
    }
    /* An unknown service ends the call at once (no retry), as the
     * synchronous call does; its lookup ran off the loop. */
    o.retries = 3;
    assert_int_equal(async_call(f, c, "nosvc", "T.Echo", "0", &o, &r),
        MICRO_ENOSERVICE);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.code, 500);
    assert_int_equal(r.in_start, 0);
    micro_client_free(c);
    micro_selector_free(sel);
    micro_registry_free(reg);
}

/* Retries on a dead address alone run out within the call's budget, with
 * the back-off between attempts on a timer. */
static void
test_retries_exhausted(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f, NULL);
    rec r;
    rec_init(&r, f->cloop);
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", t_free_port());
    micro_call_opts o = {.address = dead, .timeout_ms = 5000, .retries = 2};
    int64_t t0 = t_now_ms();
    assert_int_equal(async_body(f, c, "T.Echo", "0", &o, &r),
        MICRO_ECONNREFUSED);
    int64_t el = t_now_ms() - t0;
    /* Back-offs of 100 and 600 ms (floor(n^e) x 100). */
    assert_int_equal(r.attempts, 3);
    assert_true(el >= 700 && el < 3000);
    assert_int_equal(r.code, 500);
    assert_string_equal(r.address, dead);
    micro_client_free(c);
}

/* A peer that answers half a response and closes: a connection error,
 * not retried (the request was sent). */
static void
test_peer_closes_mid_response(void **state)
{
    fx *f = *state;
    t_srv *s = t_srv_start(T_SRV_CANNED_CLOSE,
        "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"half");
    micro_client *c = new_client(f, NULL);
    rec r;
    rec_init(&r, f->cloop);
    micro_call_opts o = {.address = s->addr, .timeout_ms = 5000};
    assert_int_equal(async_body(f, c, "T.Echo", "0", &o, &r),
        MICRO_ECONNRESET);
    assert_int_equal(r.code, 500);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(atomic_load(&s->accepts), 1);
    micro_client_free(c);
    t_srv_stop(s);
}

/* ------------------------------------------------------------------ */
/* Teardown with calls pending.                                         */

static void
test_free_with_pending(void **state)
{
    fx *f = *state;
    t_srv *s = t_srv_start(T_SRV_SILENT, NULL);
    char dead[64];
    snprintf(dead, sizeof(dead), "127.0.0.1:%d", t_free_port());
    micro_client *c = new_client(f, NULL);
    rec r;
    rec_init(&r, f->cloop);
    /* In flight on a silent server, ... */
    batch b = {c, f->cloop, &r, "T.Echo", 0, 10,
        {.address = s->addr, .timeout_ms = 20000}, 0};
    assert_int_equal(micro__loop_call(f->cloop, do_batch, &b), 0);
    /* ... in back-off after a refused dial, ... */
    batch b2 = {c, f->cloop, &r, "T.Echo", 10, 5,
        {.address = dead, .timeout_ms = 20000, .retries = 5}, 0};
    assert_int_equal(micro__loop_call(f->cloop, do_batch, &b2), 0);
    sleep_ms(50);
    /* ... and posted from this thread, not yet started. */
    micro_call_opts o = {.address = s->addr, .timeout_ms = 20000};
    for (int i = 15; i < 20; i++) {
        ctxs[i].r = &r;
        ctxs[i].id = i;
        assert_int_equal(micro_client_call_async(c, f->cloop, "svc",
                             "T.Echo", "0", 1, &o, on_done, &ctxs[i]),
            0);
    }
    int64_t t0 = t_now_ms();
    micro_client_free(c);
    assert_true(t_now_ms() - t0 < 2000);
    assert_int_equal(rec_done(&r), 20);
    assert_int_equal(r.rc, MICRO_ECANCELED);
    assert_int_equal(r.code, 408);
    assert_string_equal(r.detail, "context canceled");
    assert_int_equal(r.off_loop, 0);
    sleep_ms(50);
    assert_int_equal(rec_done(&r), 20);
    t_srv_stop(s);
}

/* Freed from inside one of its callbacks, with others pending on the
 * same loop: they complete before micro_client_free returns. */
typedef struct self_free {
    micro_client *c;
    rec *r;
    int pending_at_free; /* these two under r->mu */
    int done_after_free;
} self_free;

static self_free sf;

static void
on_free_inside(void *arg, int rc, micro_call *call)
{
    (void) arg;
    on_done(&ctxs[0], rc, call);
    if (sf.c != NULL) {
        micro_client *c = sf.c;
        sf.c = NULL;
        int before = rec_done(sf.r);
        micro_client_free(c);
        pthread_mutex_lock(&sf.r->mu);
        sf.pending_at_free = before;
        sf.done_after_free = sf.r->done;
        pthread_mutex_unlock(&sf.r->mu);
    }
}

static int
sf_after(void)
{
    pthread_mutex_lock(&sf.r->mu);
    int n = sf.done_after_free;
    pthread_mutex_unlock(&sf.r->mu);
    return n;
}

typedef struct self_args {
    micro_client *c;
    fx *f;
    const char *silent;
} self_args;

static int
do_self(void *arg)
{
    self_args *a = arg;
    micro_call_opts slow = {.address = a->silent, .timeout_ms = 20000};
    for (int i = 1; i <= 5; i++) {
        ctxs[i].r = sf.r;
        ctxs[i].id = i;
        int rc = micro_client_call_async(a->c, a->f->cloop, "svc", "T.Echo",
            "0", 1, &slow, on_done, &ctxs[i]);
        if (rc != 0) {
            return rc;
        }
    }
    micro_call_opts fast = {.address = a->f->addr, .timeout_ms = 5000};
    return micro_client_call_async(a->c, a->f->cloop, "svc", "T.Echo", "0",
        1, &fast, on_free_inside, NULL);
}

static void
test_free_from_callback(void **state)
{
    fx *f = *state;
    t_srv *s = t_srv_start(T_SRV_SILENT, NULL);
    rec r;
    rec_init(&r, f->cloop);
    ctxs[0].r = &r;
    ctxs[0].id = -1;
    sf = (self_free){new_client(f, NULL), &r, 0, 0};
    self_args a = {sf.c, f, s->addr};
    assert_int_equal(micro__loop_call(f->cloop, do_self, &a), 0);
    rec_wait(&r, 6, 5000);
    int64_t until = t_now_ms() + 5000;
    while (sf_after() == 0 && t_now_ms() < until) {
        sleep_ms(2);
    }
    assert_int_equal(sf_after(), 6);
    pthread_mutex_lock(&r.mu);
    assert_int_equal(sf.pending_at_free, 1);
    pthread_mutex_unlock(&r.mu);
    assert_int_equal(r.off_loop, 0);
    t_srv_stop(s);
}

/* The loop closes with calls pending on it: they complete there with
 * MICRO_ECANCELED; the client lives on for other loops. */
static void
test_loop_close_with_pending(void **state)
{
    fx *f = *state;
    t_srv *s = t_srv_start(T_SRV_SILENT, NULL);
    micro_loop *l2 = NULL;
    assert_int_equal(micro_loop_new(&l2), 0);
    micro_client *c = new_client(f, NULL);
    rec r;
    rec_init(&r, l2);
    batch b = {c, l2, &r, "T.Echo", 0, 8,
        {.address = s->addr, .timeout_ms = 20000}, 0};
    assert_int_equal(micro__loop_call(l2, do_batch, &b), 0);
    sleep_ms(50);
    micro_loop_free(l2);
    assert_int_equal(rec_done(&r), 8);
    assert_int_equal(r.rc, MICRO_ECANCELED);
    assert_int_equal(r.off_loop, 0);
    /* The client still works on its other loops. */
    rec r2;
    rec_init(&r2, f->cloop);
    micro_call_opts o = {.address = f->addr, .timeout_ms = 5000};
    assert_int_equal(async_body(f, c, "T.Echo", "0", &o, &r2), 0);
    micro_client_free(c);
    t_srv_stop(s);
}

/* With a wrapper (synchronous by nature), calls run on the client's
 * threads and still complete once, on the loop. */
static atomic_int wrapped;

static int
w_count(micro_call_req *req, micro_call *call, micro_call_chain *next,
    void *arg)
{
    (void) arg;
    atomic_fetch_add(&wrapped, 1);
    return micro_call_next(next, req, call);
}

static void
test_wrappers_keep_thread_path(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f, NULL);
    assert_int_equal(micro_client_wrap(c, w_count, NULL), 0);
    rec r;
    rec_init(&r, f->cloop);
    batch b = {c, f->cloop, &r, "T.Echo", 0, 20,
        {.address = f->addr, .timeout_ms = 5000}, 0};
    assert_int_equal(micro__loop_call(f->cloop, do_batch, &b), 0);
    rec_wait(&r, 20, 10000);
    assert_int_equal(r.ok, 20);
    assert_int_equal(atomic_load(&wrapped), 20);
    assert_int_equal(r.off_loop, 0);
    micro_client_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_many_in_flight, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_chained_calls_reuse_connection, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_calls_from_other_threads, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_same_as_sync, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_timeout, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_retry_dead_then_live, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_retries_exhausted, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_peer_closes_mid_response, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_free_with_pending, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_free_from_callback, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_loop_close_with_pending, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(
            test_wrappers_keep_thread_path, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
