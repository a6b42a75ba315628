/* The general HTTP/1.1 client (src/http/client.c) against the general
 * server (src/http/server.c) and against the raw test server of
 * support/http_srv.h: methods, statuses, chunked bodies both ways
 * delivered as they arrive, keep-alive reuse, the stale-connection rule,
 * deadline, cancel, HEAD, oversized answers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "core/loop_internal.h"
#include "http/client.h"
#include "http/server.h"
#include "support/http_srv.h"
#include "support/support.h"

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ */
/* The peer: a general server on the test loop.                         */

typedef struct peer {
    micro_loop *loop;
    micro__http_server *srv;
    char addr[80];
    micro__http_client *cl;
    /* /chunked: the held answer, continued on demand */
    micro__http_req *held;
    atomic_int stream_in; /* bytes seen by on_body of /stream-in */
    atomic_int aborted;
} peer;

static peer P;

static int
srv_on_head(void *arg, micro__http_req *r)
{
    (void) arg;
    return strcmp(micro__http_req_target(r), "/stream-in") == 0
        ? MICRO__HTTP_STREAM
        : 0;
}

static int
srv_on_body(void *arg, micro__http_req *r, const char *p, size_t n)
{
    (void) arg;
    (void) r;
    (void) p;
    atomic_fetch_add(&P.stream_in, (int) n);
    return 0;
}

static void
srv_on_request(void *arg, micro__http_req *r)
{
    (void) arg;
    const char *t = micro__http_req_target(r);
    micro_msg *m = micro__http_req_headers(r);
    size_t len = 0;
    const void *body = m != NULL ? micro_msg_body(m, &len) : NULL;
    micro_msg *h = NULL;
    micro_msg_new(&h);
    micro_msg_set_header(h, "X-Method", micro__http_req_method(r));
    if (strcmp(t, "/echo") == 0) {
        micro__http_respond(r, 200, NULL, h, body, len);
    } else if (strncmp(t, "/status/", 8) == 0) {
        micro__http_respond(r, (unsigned) strtol(t + 8, NULL, 10), NULL, h,
            "x", 1);
    } else if (strcmp(t, "/head") == 0) {
        micro__http_respond(r, 200, NULL, h, "hello", 5);
    } else if (strcmp(t, "/big") == 0) {
        static char big[100000];
        micro__http_respond(r, 200, NULL, h, big, sizeof(big));
    } else if (strcmp(t, "/chunked") == 0) {
        micro__http_respond_start(r, 200, NULL, h);
        micro__http_respond_chunk(r, "first,", 6);
        P.held = r;
    } else if (strcmp(t, "/stream-in") == 0) {
        char n[32];
        int k = snprintf(n, sizeof(n), "%d", atomic_load(&P.stream_in));
        micro__http_respond(r, 200, NULL, h, n, (size_t) k);
    } else if (strcmp(t, "/slow") == 0) {
        P.held = r; /* answered never (or dropped by the test) */
    } else {
        micro__http_respond(r, 404, NULL, NULL, NULL, 0);
    }
    micro_msg_free(h);
}

static void
srv_on_abort(void *arg, micro__http_req *r, int rc)
{
    (void) arg;
    (void) rc;
    atomic_fetch_add(&P.aborted, 1);
    if (P.held == r) {
        P.held = NULL;
    }
    micro__http_req_drop(r);
}

static const micro__http_server_cbs srv_cbs = {
    .on_head = srv_on_head,
    .on_body = srv_on_body,
    .on_request = srv_on_request,
    .on_abort = srv_on_abort,
};

static int
do_srv_new(void *arg)
{
    (void) arg;
    micro__http_server_cfg cfg = {0};
    int rc = micro__http_server_new(&P.srv, P.loop, "127.0.0.1:0", &cfg,
        &srv_cbs, NULL);
    if (rc == 0) {
        snprintf(P.addr, sizeof(P.addr), "%s",
            micro__http_server_address(P.srv));
    }
    return rc;
}

static int
do_srv_close(void *arg)
{
    (void) arg;
    if (P.held != NULL) {
        micro__http_req_drop(P.held);
        P.held = NULL;
    }
    micro__http_server_close(P.srv);
    return 0;
}

static int
setup(void **state)
{
    (void) state;
    memset(&P, 0, sizeof(P));
    assert_int_equal(micro_loop_new(&P.loop), 0);
    assert_int_equal(micro__loop_call(P.loop, do_srv_new, NULL), 0);
    micro__http_client_cfg cfg;
    micro__http_client_cfg_load(&cfg, NULL);
    cfg.lim.max_body = 64 << 10;
    assert_int_equal(micro__http_client_new(&P.cl, P.loop, &cfg), 0);
    return 0;
}

static int
teardown(void **state)
{
    (void) state;
    micro__http_client_free(P.cl);
    micro__loop_call(P.loop, do_srv_close, NULL);
    micro_loop_free(P.loop);
    return 0;
}

static micro__http_server_stats
srv_stats(void)
{
    micro__http_server_stats st;
    micro__http_server_stats_get(P.srv, &st);
    return st;
}

/* A blocking call: status in *status, body copied into out. */
static int
do_call(const char *method, const char *target, const char *body,
    int64_t timeout_ms, unsigned *status, char *out, size_t cap,
    bool *reused)
{
    micro__http_call c;
    memset(&c, 0, sizeof(c));
    c.client = P.cl;
    c.method = method;
    c.addr = P.addr;
    c.target = target;
    c.body = body;
    c.body_len = body ? strlen(body) : 0;
    int rc = micro__http_call_wait(&c, timeout_ms);
    *status = c.status;
    if (out != NULL) {
        out[0] = '\0';
        size_t n = 0;
        const void *b = c.rsp ? micro_msg_body(c.rsp, &n) : NULL;
        if (b != NULL && n < cap) {
            memcpy(out, b, n);
            out[n] = '\0';
        }
    }
    if (reused != NULL) {
        *reused = c.reused;
    }
    micro__http_call_fini(&c);
    return rc;
}

/* ------------------------------------------------------------------ */

static void
test_methods_statuses(void **state)
{
    (void) state;
    unsigned st = 0;
    char out[256];
    assert_int_equal(do_call("POST", "/echo", "ping", 5000, &st, out,
                         sizeof(out), NULL),
        0);
    assert_int_equal(st, 200);
    assert_string_equal(out, "ping");
    const char *methods[] = {"GET", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (size_t i = 0; i < 5; i++) {
        micro__http_call c;
        memset(&c, 0, sizeof(c));
        c.client = P.cl;
        c.method = methods[i];
        c.addr = P.addr;
        c.target = "/echo";
        assert_int_equal(micro__http_call_wait(&c, 5000), 0);
        assert_int_equal(c.status, 200);
        assert_string_equal(micro_msg_header(c.rsp, "X-Method"), methods[i]);
        micro__http_call_fini(&c);
    }
    unsigned codes[] = {201, 204, 404, 500, 503};
    for (size_t i = 0; i < 5; i++) {
        char t[32];
        snprintf(t, sizeof(t), "/status/%u", codes[i]);
        assert_int_equal(do_call("GET", t, NULL, 5000, &st, NULL, 0, NULL),
            0);
        assert_int_equal(st, codes[i]);
    }
    /* By url, with a query. */
    micro__http_call c;
    memset(&c, 0, sizeof(c));
    char url[128];
    snprintf(url, sizeof(url), "http://%s/status/202?x=1", P.addr);
    c.client = P.cl;
    c.url = url;
    assert_int_equal(micro__http_call_wait(&c, 5000), 0);
    assert_int_equal(c.status, 202);
    micro__http_call_fini(&c);
    /* Bad input is refused, not sent. */
    memset(&c, 0, sizeof(c));
    c.client = P.cl;
    c.method = "GE T";
    c.addr = P.addr;
    assert_int_equal(micro__http_call_wait(&c, 5000), MICRO_EINVAL);
    micro__http_call_fini(&c);
    memset(&c, 0, sizeof(c));
    c.client = P.cl;
    c.url = "ftp://example.com/"; /* http and https only */
    assert_int_equal(micro__http_call_wait(&c, 5000), MICRO_ENOTSUP);
    micro__http_call_fini(&c);
}

static void
test_keepalive_reuse(void **state)
{
    (void) state;
    unsigned st = 0;
    bool reused = true;
    uint64_t before = srv_stats().accepted;
    assert_int_equal(do_call("GET", "/echo", NULL, 5000, &st, NULL, 0,
                         &reused),
        0);
    assert_false(reused);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(do_call("POST", "/echo", "x", 5000, &st, NULL, 0,
                             &reused),
            0);
        assert_true(reused);
    }
    assert_int_equal(srv_stats().accepted - before, 1);
}

static void
test_head(void **state)
{
    (void) state;
    micro__http_call c;
    memset(&c, 0, sizeof(c));
    c.client = P.cl;
    c.method = "HEAD";
    c.addr = P.addr;
    c.target = "/head";
    assert_int_equal(micro__http_call_wait(&c, 5000), 0);
    assert_int_equal(c.status, 200);
    assert_string_equal(micro_msg_header(c.rsp, "Content-Length"), "5");
    size_t n = 99;
    micro_msg_body(c.rsp, &n);
    assert_int_equal(n, 0);
    micro__http_call_fini(&c);
    /* The connection is still in step: the next answer is read whole. */
    unsigned st = 0;
    char out[64];
    bool reused = false;
    assert_int_equal(do_call("POST", "/echo", "after-head", 5000, &st, out,
                         sizeof(out), &reused),
        0);
    assert_string_equal(out, "after-head");
    assert_true(reused);
}

static void
test_oversized(void **state)
{
    (void) state;
    unsigned st = 0;
    int64_t t0 = t_now_ms();
    /* A buffered body over the client's max_body (64 KiB). */
    assert_int_equal(do_call("GET", "/big", NULL, 5000, &st, NULL, 0, NULL),
        MICRO_EMSGSIZE);
    /* A head with too many fields, from a raw peer. */
    micro_buf canned = {0};
    micro_buf_append_str(&canned, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 2000; i++) {
        char l[32];
        snprintf(l, sizeof(l), "X-F%d: v\r\n", i);
        micro_buf_append_str(&canned, l);
    }
    micro_buf_append_str(&canned, "Content-Length: 0\r\n\r\n");
    micro_buf_append(&canned, "", 1);
    t_srv *raw = t_srv_start(T_SRV_CANNED, (const char *) canned.data);
    micro__http_call c;
    memset(&c, 0, sizeof(c));
    c.client = P.cl;
    c.addr = raw->addr;
    assert_int_equal(micro__http_call_wait(&c, 5000), MICRO_EMSGSIZE);
    micro__http_call_fini(&c);
    t_srv_stop(raw);
    micro_buf_clear(&canned);
    assert_true(t_now_ms() - t0 < 4000);
}

static void
test_stale_connection_rule(void **state)
{
    (void) state;
    /* The raw peer answers the first request of its first connection,
     * then closes that connection without answering the second. */
    const char *methods[] = {"GET", "POST", "POST"};
    const bool replayable[] = {false, false, true};
    const int want[] = {0, MICRO_ECONNRESET, 0};
    for (int k = 0; k < 3; k++) {
        t_srv *raw = t_srv_start(T_SRV_DROP_REUSE, NULL);
        micro__http_client *cl = NULL;
        micro__http_client_cfg cfg;
        micro__http_client_cfg_load(&cfg, NULL);
        assert_int_equal(micro__http_client_new(&cl, P.loop, &cfg), 0);
        for (int i = 0; i < 2; i++) {
            micro__http_call c;
            memset(&c, 0, sizeof(c));
            c.client = cl;
            c.method = methods[k];
            c.replayable = replayable[k];
            c.addr = raw->addr;
            c.body = "abc";
            c.body_len = 3;
            int rc = micro__http_call_wait(&c, 5000);
            if (i == 0) {
                assert_int_equal(rc, 0);
                assert_false(c.reused);
            } else {
                assert_int_equal(rc, want[k]);
                if (rc == 0) {
                    assert_int_equal(c.attempts, 2); /* retried once */
                    assert_false(c.reused);
                    assert_int_equal(atomic_load(&raw->accepts), 2);
                }
            }
            micro__http_call_fini(&c);
        }
        micro__http_client_free(cl);
        t_srv_stop(raw);
    }
}

static void
test_deadline(void **state)
{
    (void) state;
    unsigned st = 0;
    int64_t t0 = t_now_ms();
    assert_int_equal(do_call("GET", "/slow", NULL, 200, &st, NULL, 0, NULL),
        MICRO_ETIMEDOUT);
    int64_t took = t_now_ms() - t0;
    assert_true(took >= 150 && took < 5000);
    /* A dial that cannot complete: a black-holed address is not portable,
     * so a refused one must fail fast instead. */
    micro__http_call c;
    memset(&c, 0, sizeof(c));
    c.client = P.cl;
    c.addr = "127.0.0.1:1";
    assert_int_equal(micro__http_call_wait(&c, 5000), MICRO_ECONNREFUSED);
    micro__http_call_fini(&c);
    /* A list of addresses: the next one after a refusal. */
    char list[128];
    snprintf(list, sizeof(list), "127.0.0.1:1,%s", P.addr);
    memset(&c, 0, sizeof(c));
    c.client = P.cl;
    c.addr = list;
    c.target = "/status/200";
    assert_int_equal(micro__http_call_wait(&c, 5000), 0);
    assert_int_equal(c.status, 200);
    micro__http_call_fini(&c);
}

/* --- asynchronous: cancel, chunked both ways ---------------------- */

typedef struct acall {
    micro__http_call c;
    micro__aio aio;
    atomic_int done;
    atomic_int rc;
    atomic_int heads;
    atomic_int body_bytes;
    char body[256];
    size_t blen;
} acall;

static void
a_done(micro__aio *a)
{
    acall *x = a->arg;
    atomic_store(&x->rc, a->rc);
    atomic_store(&x->done, 1);
}

static void
a_head(void *arg, micro__http_call *c)
{
    acall *x = arg;
    (void) c;
    atomic_fetch_add(&x->heads, 1);
}

static int
a_body(void *arg, micro__http_call *c, const char *p, size_t n)
{
    acall *x = arg;
    (void) c;
    if (x->blen + n < sizeof(x->body)) {
        memcpy(x->body + x->blen, p, n);
        x->blen += n;
    }
    atomic_fetch_add(&x->body_bytes, (int) n);
    return 0;
}

static int
a_start(void *arg)
{
    acall *x = arg;
    micro__aio_init(&x->aio, P.loop, a_done, x);
    micro__aio_set_timeout(&x->aio, 10000);
    micro__aio_start(&x->aio, micro__http_call_start, &x->c);
    /* Never inside the start. */
    return atomic_load(&x->done) ? -1 : 0;
}

static int
a_cancel(void *arg)
{
    acall *x = arg;
    micro__aio_cancel(&x->aio, MICRO_ECANCELED);
    return 0;
}

static int
a_write_first(void *arg)
{
    acall *x = arg;
    return micro__http_call_write(&x->c, "hello ", 6);
}

static int
a_write_end(void *arg)
{
    acall *x = arg;
    int rc = micro__http_call_write(&x->c, "world", 5);
    return rc == 0 ? micro__http_call_end(&x->c) : rc;
}

static int
srv_continue(void *arg)
{
    (void) arg;
    micro__http_req *r = P.held;
    P.held = NULL;
    if (r == NULL) {
        return -1;
    }
    micro__http_respond_chunk(r, "second", 6);
    return micro__http_respond_end(r);
}

static bool
wait_int(atomic_int *v, int want, int ms)
{
    int64_t until = t_now_ms() + ms;
    while (atomic_load(v) < want) {
        if (t_now_ms() > until) {
            return false;
        }
        sleep_ms(2);
    }
    return true;
}

static void
test_cancel(void **state)
{
    (void) state;
    acall *x = calloc(1, sizeof(*x));
    x->c.client = P.cl;
    x->c.addr = P.addr;
    x->c.target = "/slow";
    assert_int_equal(micro__loop_call(P.loop, a_start, x), 0);
    sleep_ms(50);
    assert_int_equal(atomic_load(&x->done), 0);
    assert_int_equal(micro__loop_call(P.loop, a_cancel, x), 0);
    assert_true(wait_int(&x->done, 1, 5000));
    assert_int_equal(atomic_load(&x->rc), MICRO_ECANCELED);
    micro__http_call_fini(&x->c);
    free(x);
}

static void
test_chunked_both_ways(void **state)
{
    (void) state;
    /* A chunked request body reaches the server piece by piece. */
    atomic_store(&P.stream_in, 0);
    acall *x = calloc(1, sizeof(*x));
    x->c.client = P.cl;
    x->c.method = "POST";
    x->c.addr = P.addr;
    x->c.target = "/stream-in";
    x->c.chunked = true;
    assert_int_equal(micro__loop_call(P.loop, a_start, x), 0);
    assert_int_equal(micro__loop_call(P.loop, a_write_first, x), 0);
    assert_true(wait_int(&P.stream_in, 6, 5000));
    assert_int_equal(atomic_load(&x->done), 0); /* not ended yet */
    assert_int_equal(micro__loop_call(P.loop, a_write_end, x), 0);
    assert_true(wait_int(&x->done, 1, 5000));
    assert_int_equal(atomic_load(&x->rc), 0);
    assert_int_equal(x->c.status, 200);
    size_t n = 0;
    const char *b = micro_msg_body(x->c.rsp, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(b, "11", 2);
    micro__http_call_fini(&x->c);
    free(x);

    /* A chunked answer reaches the client piece by piece. */
    x = calloc(1, sizeof(*x));
    x->c.client = P.cl;
    x->c.addr = P.addr;
    x->c.target = "/chunked";
    x->c.on_head = a_head;
    x->c.on_body = a_body;
    x->c.arg = x;
    assert_int_equal(micro__loop_call(P.loop, a_start, x), 0);
    assert_true(wait_int(&x->body_bytes, 6, 5000));
    assert_int_equal(atomic_load(&x->heads), 1);
    assert_int_equal(atomic_load(&x->done), 0); /* the answer goes on */
    assert_int_equal(micro__loop_call(P.loop, srv_continue, NULL), 0);
    assert_true(wait_int(&x->done, 1, 5000));
    assert_int_equal(atomic_load(&x->rc), 0);
    assert_int_equal(x->blen, 12);
    assert_memory_equal(x->body, "first,second", 12);
    assert_string_equal(micro_msg_header(x->c.rsp, "Transfer-Encoding"),
        "chunked");
    micro__http_call_fini(&x->c);
    free(x);
}

/* The loop closes with a call pending: it completes, cancelled. */
static void
test_loop_closes_first(void **state)
{
    (void) state;
    micro_loop *loop = NULL;
    assert_int_equal(micro_loop_new(&loop), 0);
    micro__http_client *cl = NULL;
    micro__http_client_cfg cfg;
    micro__http_client_cfg_load(&cfg, NULL);
    assert_int_equal(micro__http_client_new(&cl, loop, &cfg), 0);
    t_srv *raw = t_srv_start(T_SRV_SILENT, NULL);
    acall *x = calloc(1, sizeof(*x));
    x->c.client = cl;
    x->c.addr = raw->addr;
    micro__aio_init(&x->aio, loop, a_done, x);
    assert_int_equal(micro__aio_post(&x->aio, micro__http_call_start, &x->c),
        0);
    assert_true(wait_int(&raw->requests, 1, 5000));
    micro_loop_free(loop);
    assert_int_equal(atomic_load(&x->done), 1);
    assert_int_equal(atomic_load(&x->rc), MICRO_ECANCELED);
    micro__http_client_free(cl);
    micro__http_call_fini(&x->c);
    free(x);
    t_srv_stop(raw);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_methods_statuses, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuse, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_connection_rule, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_both_ways, setup,
            teardown),
        cmocka_unit_test(test_loop_closes_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
