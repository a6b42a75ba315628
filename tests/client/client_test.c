/* In-process tests of the mucp client against a micro_server on the same
 * micro_loop and http transport: call wrappers, async completion, errors,
 * timeouts. No processes. */
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

#include "support/support.h"

typedef struct fx {
    micro_loop *loop;  /* server and transport */
    micro_loop *cloop; /* async completions */
    micro_transport *tr;
    micro_server *srv;
    micro_client *cli;
    micro_options *opts;
    const char *addr;
} fx;

static pthread_mutex_t trace_mu = PTHREAD_MUTEX_INITIALIZER;
static char trace[256];

static void
trace_add(const char *s)
{
    pthread_mutex_lock(&trace_mu);
    size_t l = strlen(trace);
    snprintf(trace + l, sizeof(trace) - l, "%s%s", l ? " " : "", s);
    pthread_mutex_unlock(&trace_mu);
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Replies with "<X-A>|<X-B>|<X-C>" of the request metadata. */
static int
h_headers(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    const char *a = micro_request_header(req, "X-A");
    const char *b = micro_request_header(req, "X-B");
    const char *c = micro_request_header(req, "X-C");
    char out[256];
    snprintf(out, sizeof(out), "\"%s|%s|%s\"", a ? a : "-", b ? b : "-",
        c ? c : "-");
    return micro_response_set_body(rsp, out, strlen(out));
}

static int
h_sleep(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t len = 0;
    const char *b = micro_request_body(req, &len);
    char tmp[16] = "";
    snprintf(tmp, sizeof(tmp), "%.*s", (int) (len < 15 ? len : 15), b);
    sleep_ms(atoi(tmp));
    return micro_response_set_body(rsp, "\"done\"", 6);
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
    assert_int_equal(micro_transport_new(&f->tr, &micro_transport_http_ops,
                         f->loop, f->opts),
        0);
    assert_int_equal(micro_server_new(&f->srv, f->loop, f->tr, f->opts), 0);
    micro_handler_desc d1 = {.endpoint = "T.Headers", .fn = h_headers};
    micro_handler_desc d2 = {.endpoint = "T.Sleep", .fn = h_sleep};
    assert_int_equal(micro_server_handle(f->srv, &d1), 0);
    assert_int_equal(micro_server_handle(f->srv, &d2), 0);
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

/* Each test makes its own client (wrappers are per client). */
static micro_client *
new_client(fx *f)
{
    micro_client *c = NULL;
    assert_int_equal(micro_client_new(&c, f->tr, NULL, f->opts), 0);
    return c;
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
/* Wrappers.                                                            */

typedef struct wstate {
    const char *name; /* trace name */
    const char *key;  /* metadata it adds */
    const char *value;
} wstate;

/* Adds one metadata pair (copying the caller's array) and continues. */
static int
w_add_md(micro_call_req *req, micro_call *call, micro_call_chain *next,
    void *arg)
{
    const wstate *w = arg;
    trace_add(w->name);
    assert_string_equal(req->service, "svc");
    size_t n = req->opts.n_metadata;
    micro_header_kv *md = calloc(n + 1, sizeof(*md));
    assert_non_null(md);
    for (size_t i = 0; i < n; i++) {
        md[i] = req->opts.metadata[i];
    }
    md[n].key = w->key;
    md[n].value = w->value;
    req->opts.metadata = md;
    req->opts.n_metadata = n + 1;
    int rc = micro_call_next(next, req, call);
    char out[32];
    snprintf(out, sizeof(out), "%s-out", w->name);
    trace_add(out);
    free(md);
    return rc;
}

/* Rewrites X-A (set by the caller) before continuing. */
static int
w_rewrite(micro_call_req *req, micro_call *call, micro_call_chain *next,
    void *arg)
{
    (void) arg;
    trace_add("R");
    micro_header_kv md[8];
    size_t n = req->opts.n_metadata < 8 ? req->opts.n_metadata : 8;
    for (size_t i = 0; i < n; i++) {
        md[i] = req->opts.metadata[i];
        if (strcmp(md[i].key, "X-A") == 0) {
            md[i].value = "rewritten";
        }
    }
    req->opts.metadata = md;
    return micro_call_next(next, req, call);
}

static int
w_block(micro_call_req *req, micro_call *call, micro_call_chain *next,
    void *arg)
{
    (void) arg;
    trace_add("BLOCK");
    if (strcmp(req->endpoint, "T.Blocked") == 0) {
        return MICRO_ENOTSUP; /* short-circuit: nothing is sent */
    }
    return micro_call_next(next, req, call);
}

static void
test_call_wrappers(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f);
    wstate w1 = {"W1", "X-B", "from-w1"};
    wstate w2 = {"W2", "X-C", "from-w2"};
    assert_int_equal(micro_client_wrap(c, w_add_md, &w1), 0);
    assert_int_equal(micro_client_wrap(c, w_rewrite, NULL), 0);
    assert_int_equal(micro_client_wrap(c, w_add_md, &w2), 0);
    assert_int_equal(micro_client_wrap(c, w_block, NULL), 0);
    trace[0] = '\0';
    micro_header_kv md[] = {{"X-A", "caller"}};
    micro_call_opts o = {.address = f->addr, .metadata = md, .n_metadata = 1,
        .retries = MICRO_CALL_NO_RETRY, .timeout_ms = 5000};
    micro_call *call = NULL;
    assert_int_equal(
        micro_client_call(c, "svc", "T.Headers", "{}", 2, &o, &call), 0);
    char b[256];
    body_str(call, b, sizeof(b));
    assert_string_equal(b, "\"rewritten|from-w1|from-w2\"");
    micro_call_free(call);
    pthread_mutex_lock(&trace_mu);
    assert_string_equal(trace, "W1 R W2 BLOCK W2-out W1-out");
    pthread_mutex_unlock(&trace_mu);
    /* The caller's array was not touched by the wrappers. */
    assert_string_equal(md[0].value, "caller");
    /* A wrapper can short-circuit: nothing is sent. */
    trace[0] = '\0';
    assert_int_equal(
        micro_client_call(c, "svc", "T.Blocked", "{}", 2, &o, &call),
        MICRO_ENOTSUP);
    assert_non_null(call);
    assert_int_equal(micro_call_attempts(call), 0);
    micro_call_free(call);
    micro_client_free(c);
}

/* ------------------------------------------------------------------ */
/* Async.                                                               */

typedef struct async_rec {
    fx *f;
    atomic_int calls;
    atomic_int off_loop; /* callbacks not on the client loop */
    atomic_int ok;
    atomic_int rc;
    int code;
} async_rec;

static void
on_done(void *arg, int rc, micro_call *call)
{
    async_rec *r = arg;
    if (!micro_loop_is_current(r->f->cloop)) {
        atomic_fetch_add(&r->off_loop, 1);
    }
    atomic_store(&r->rc, rc);
    if (rc == 0) {
        char b[64];
        body_str(call, b, sizeof(b));
        if (strcmp(b, "\"-|-|-\"") == 0 || strcmp(b, "\"done\"") == 0) {
            atomic_fetch_add(&r->ok, 1);
        }
    } else if (micro_call_error(call) != NULL) {
        r->code = micro_call_error(call)->code;
    }
    micro_call_free(call);
    atomic_fetch_add(&r->calls, 1);
}

static void
wait_count(atomic_int *n, int want, int ms)
{
    int64_t until = t_now_ms() + ms;
    while (atomic_load(n) < want && t_now_ms() < until) {
        sleep_ms(2);
    }
}

static void
test_call_async_on_loop_once(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f);
    async_rec r = {.f = f};
    micro_call_opts o = {.address = f->addr, .timeout_ms = 5000};
    enum { N = 20 };
    for (int i = 0; i < N; i++) {
        assert_int_equal(micro_client_call_async(c, f->cloop, "svc",
                             "T.Headers", "{}", 2, &o, on_done, &r),
            0);
    }
    wait_count(&r.calls, N, 10000);
    sleep_ms(100); /* nothing more arrives */
    assert_int_equal(atomic_load(&r.calls), N);
    assert_int_equal(atomic_load(&r.ok), N);
    assert_int_equal(atomic_load(&r.off_loop), 0);
    /* Invalid arguments: no callback. */
    assert_int_equal(micro_client_call_async(c, f->cloop, "svc", "T.Headers",
                         "{}", 2, &o, NULL, &r),
        MICRO_EINVAL);
    assert_int_equal(micro_client_call_async(c, NULL, "svc", "T.Headers",
                         "{}", 2, &o, on_done, &r),
        MICRO_EINVAL);
    sleep_ms(50);
    assert_int_equal(atomic_load(&r.calls), N);
    micro_client_free(c);
}

static void
test_call_async_error_once(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f);
    async_rec r = {.f = f};
    micro_call_opts o = {.address = f->addr, .timeout_ms = 5000};
    assert_int_equal(micro_client_call_async(c, f->cloop, "svc", "T.Nope",
                         "{}", 2, &o, on_done, &r),
        0);
    wait_count(&r.calls, 1, 5000);
    sleep_ms(100);
    assert_int_equal(atomic_load(&r.calls), 1);
    assert_int_equal(atomic_load(&r.off_loop), 0);
    assert_int_equal(atomic_load(&r.rc), MICRO_EREMOTE);
    assert_int_equal(r.code, 404);
    micro_client_free(c);
}

/* ------------------------------------------------------------------ */
/* Errors.                                                              */

static void
test_timeout_408(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f);
    micro_call_opts o = {.address = f->addr, .timeout_ms = 200,
        .retries = MICRO_CALL_NO_RETRY};
    micro_call *call = NULL;
    int64_t t0 = t_now_ms();
    assert_int_equal(
        micro_client_call(c, "svc", "T.Sleep", "600", 3, &o, &call),
        MICRO_ETIMEDOUT);
    int64_t el = t_now_ms() - t0;
    assert_true(el >= 150 && el < 600);
    assert_non_null(micro_call_error(call));
    assert_int_equal(micro_call_error(call)->code, 408);
    assert_int_equal(micro_call_attempts(call), 1);
    micro_call_free(call);
    /* Timeouts are retried by default; the whole call still ends in time
     * (the back-off of 100 ms leaves room for a second attempt only). */
    o.retries = 3;
    t0 = t_now_ms();
    assert_int_equal(
        micro_client_call(c, "svc", "T.Sleep", "600", 3, &o, &call),
        MICRO_ETIMEDOUT);
    el = t_now_ms() - t0;
    assert_true(el < 600);
    assert_int_equal(micro_call_attempts(call), 1);
    micro_call_free(call);
    micro_client_free(c);
}

static void
test_refused_and_bad_args(void **state)
{
    fx *f = *state;
    micro_client *c = new_client(f);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", t_free_port());
    micro_call_opts o = {.address = addr, .timeout_ms = 1000,
        .retries = MICRO_CALL_NO_RETRY};
    micro_call *call = NULL;
    int rc = micro_client_call(c, "svc", "T.Headers", "{}", 2, &o, &call);
    assert_int_equal(rc, MICRO_ECONNREFUSED);
    assert_non_null(micro_call_error(call));
    assert_int_equal(micro_call_error(call)->code, 500);
    assert_string_equal(micro_call_address(call), addr);
    micro_call_free(call);
    /* No selector and no address. */
    assert_int_equal(
        micro_client_call(c, "svc", "T.Headers", "{}", 2, NULL, &call),
        MICRO_EINVAL);
    micro_call_free(call);
    assert_int_equal(
        micro_client_call(c, NULL, "T.Headers", "{}", 2, NULL, &call),
        MICRO_EINVAL);
    assert_null(call);
    micro_client_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_wrappers),
        cmocka_unit_test(test_call_async_on_loop_once),
        cmocka_unit_test(test_call_async_error_once),
        cmocka_unit_test(test_timeout_408),
        cmocka_unit_test(test_refused_and_bad_args),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
