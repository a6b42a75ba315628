/*
 * Shutdown torture: a server, and separately a whole micro_service, is
 * stopped while 200 unary calls (some in handlers longer than the drain),
 * 50 streams and a burst of broker events (memory broker) are in flight,
 * with server_drain shorter than the slow handlers.
 *
 * Asserted: no sanitizer report (the ASan and TSan tiers run this); no
 * hang (a watchdog); every caller hears something: all 200 calls complete
 * (an answer or an error), every stream ends (EOF or an error, never its
 * deadline); the stop reports the drain's timeout; and micro_server_free
 * / micro_service_free return only once the late handlers have finished,
 * which touch their request and response and make a call through a
 * client (the service's own client, in the service case) after the drain
 * has timed out.
 */
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

#define CT "application/octet-stream"

enum {
    N_CALLS = 200,
    N_LATE = 16,     /* of the calls: handlers longer than the drain */
    N_SLOW = 64,     /* of the calls: 20 ms handlers */
    N_STREAMS = 50,
    N_EVENTS = 2000,
    DRAIN_MS = 200,
    LATE_MS = 700,   /* a late handler's sleep, past the drain */
    WORKERS = 8,
};

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* What the server side saw. */
static atomic_int late_started, late_done, late_touch_ok, late_call_ok;
static atomic_int events_seen, stream_msgs;
static atomic_bool stopping_now;

/* The client a late handler calls through after the drain (the
 * service's own in the service case), and where. */
static micro_client *_Atomic late_client;
static char helper_addr[64];

/* --- handlers ----------------------------------------------------------- */

static int
h_fast(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t len = 0;
    const void *b = micro_request_body(req, &len);
    return micro_response_set_body(rsp, b, len);
}

static int
h_slow(micro_request *req, micro_response *rsp, void *arg)
{
    sleep_ms(20);
    return h_fast(req, rsp, arg);
}

/* Outlives the drain, then uses everything it was given, and a client. */
static int
h_late(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    atomic_fetch_add(&late_started, 1);
    size_t len = 0;
    const char *b = micro_request_body(req, &len);
    char copy[64];
    snprintf(copy, sizeof(copy), "%.*s", (int) (len < 63 ? len : 63), b);
    sleep_ms(LATE_MS);
    /* The drain has timed out by now (its connection is closed): the
     * request and response must still be ours. */
    size_t len2 = 0;
    const char *b2 = micro_request_body(req, &len2);
    const char *ep = micro_request_endpoint(req);
    const char *ct = micro_request_content_type(req);
    bool ok = len2 == len && memcmp(b2, copy, len) == 0 &&
        ep != NULL && strcmp(ep, "T.Late") == 0 && ct != NULL &&
        micro_request_remote(req) != NULL &&
        micro_request_header(req, "Micro-Service") != NULL;
    ok = ok && micro_response_set_header(rsp, "X-Late", "1") == 0 &&
        micro_response_set_body(rsp, b2, len2) == 0;
    if (ok) {
        atomic_fetch_add(&late_touch_ok, 1);
    }
    micro_client *cli = atomic_load(&late_client);
    if (cli != NULL) {
        micro_call_opts o = MICRO_CALL_OPTS_INIT;
        o.address = helper_addr;
        o.content_type = CT;
        o.timeout_ms = 5000;
        o.retries = MICRO_CALL_NO_RETRY;
        micro_call *c = NULL;
        if (micro_client_call(cli, "helper", "H.Echo", "late", 4, &o, &c) ==
            0) {
            atomic_fetch_add(&late_call_ok, 1);
        }
        micro_call_free(c);
    }
    atomic_fetch_add(&late_done, 1);
    return 0;
}

static int
s_echo(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    atomic_fetch_add(&stream_msgs, 1);
    return micro_stream_send(s, body, len);
}

static int
on_event(micro_request *r, void *arg)
{
    (void) arg;
    size_t len = 0;
    (void) micro_request_body(r, &len);
    (void) micro_request_topic(r);
    atomic_fetch_add(&events_seen, 1);
    return 0;
}

static void
add_handlers(micro_server *srv)
{
    static const struct {
        const char *ep;
        micro_handler_fn fn;
        unsigned flags;
    } hs[] = {
        {"T.Fast", h_fast, MICRO_HANDLER_INLINE},
        {"T.Slow", h_slow, 0},
        {"T.Late", h_late, 0},
    };
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
        micro_handler_desc d = {.endpoint = hs[i].ep, .fn = hs[i].fn,
            .flags = hs[i].flags};
        assert_int_equal(micro_server_handle(srv, &d), 0);
    }
    micro_stream_handler sh = {.size = sizeof(sh), .endpoint = "T.Stream",
        .on_msg = s_echo};
    assert_int_equal(micro_server_handle_stream(srv, &sh), 0);
    micro_subscriber_desc sd = {.topic = "events", .fn = on_event,
        .queue_limit = 64};
    assert_int_equal(micro_server_subscribe(srv, &sd), 0);
}

/* --- the helper a late handler calls --------------------------------------- */

typedef struct helper {
    micro_options *opts;
    micro_loop *loop;
    micro_transport *tr;
    micro_server *srv;
} helper;

static void
helper_start(helper *h)
{
    memset(h, 0, sizeof(*h));
    assert_int_equal(micro_options_new(&h->opts), 0);
    micro_options_set_str(h->opts, "server_address", "127.0.0.1:0");
    assert_int_equal(micro_loop_new(&h->loop), 0);
    assert_int_equal(micro_transport_new_by_name(&h->tr, "http", h->loop,
                         h->opts), 0);
    assert_int_equal(micro_server_new(&h->srv, h->loop, h->tr, h->opts), 0);
    micro_handler_desc d = {.endpoint = "H.Echo", .fn = h_fast,
        .flags = MICRO_HANDLER_INLINE};
    assert_int_equal(micro_server_handle(h->srv, &d), 0);
    assert_int_equal(micro_server_start(h->srv), 0);
    snprintf(helper_addr, sizeof(helper_addr), "%s",
        micro_transport_address(h->tr));
}

static void
helper_stop(helper *h)
{
    micro_server_free(h->srv);
    micro_transport_free(h->tr);
    micro_loop_free(h->loop);
    micro_options_free(h->opts);
}

/* --- the callers ---------------------------------------------------------- */

typedef struct callers {
    micro_options *opts;
    micro_loop *loop;
    micro_transport *tr;
    micro_client *cli;
    char addr[64];
    atomic_int done, ok, failed;
    micro_stream *streams[N_STREAMS];
    pthread_t pub;
    micro_client *pub_cli; /* publishes the burst */
    atomic_int published;
} callers;

static void
callers_new(callers *c)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(micro_options_new(&c->opts), 0);
    micro_options_set_int(c->opts, "client_retries", 0);
    assert_int_equal(micro_loop_new(&c->loop), 0);
    assert_int_equal(micro_transport_new_by_name(&c->tr, "http", c->loop,
                         c->opts), 0);
    assert_int_equal(micro_client_new(&c->cli, c->tr, NULL, c->opts), 0);
}

static void
callers_free(callers *c)
{
    micro_client_free(c->cli);
    micro_transport_free(c->tr);
    micro_loop_free(c->loop);
    micro_options_free(c->opts);
}

static void
call_done(void *arg, int rc, micro_call *call)
{
    callers *c = arg;
    micro_call_free(call);
    atomic_fetch_add(rc == 0 ? &c->ok : &c->failed, 1);
    atomic_fetch_add(&c->done, 1);
}

/* Open the streams (each echoes once: established), then start the 200
 * calls. */
static void
start_traffic(callers *c)
{
    for (int i = 0; i < N_STREAMS; i++) {
        micro_call_opts o = MICRO_CALL_OPTS_INIT;
        o.address = c->addr;
        o.content_type = CT;
        o.stream_timeout_ms = 60000;
        assert_int_equal(micro_client_stream(c->cli, "t", "T.Stream", &o,
                             &c->streams[i]), 0);
        assert_int_equal(micro_stream_send(c->streams[i], "s", 1), 0);
        micro_buf b = {0};
        assert_int_equal(micro_stream_recv(c->streams[i], &b), 0);
        micro_buf_clear(&b);
    }
    for (int i = 0; i < N_CALLS; i++) {
        const char *ep = i < N_LATE ? "T.Late"
            : i < N_LATE + N_SLOW   ? "T.Slow"
                                    : "T.Fast";
        char body[32];
        int n = snprintf(body, sizeof(body), "call-%d", i);
        micro_call_opts o = MICRO_CALL_OPTS_INIT;
        o.address = c->addr;
        o.content_type = CT;
        o.timeout_ms = 30000;
        o.retries = MICRO_CALL_NO_RETRY;
        assert_int_equal(micro_client_call_async(c->cli, c->loop, "t", ep,
                             body, (size_t) n, &o, call_done, c), 0);
    }
}

static void *
publisher(void *arg)
{
    callers *c = arg;
    for (int i = 0; i < N_EVENTS; i++) {
        char body[32];
        int n = snprintf(body, sizeof(body), "{\"n\":%d}", i);
        micro_publish_opts po = {0};
        po.content_type = "application/json";
        (void) micro_client_publish(c->pub_cli, "events", body, (size_t) n,
            &po);
        atomic_fetch_add(&c->published, 1);
        if (i % 200 == 0) {
            sleep_ms(1);
        }
    }
    return NULL;
}

/* After the stop: every call completes, every stream ends (not by its
 * deadline). */
static void
check_callers(callers *c)
{
    int64_t until = t_now_ms() + 20000;
    while (atomic_load(&c->done) < N_CALLS && t_now_ms() < until) {
        sleep_ms(10);
    }
    print_message("  calls: %d complete (%d answered, %d failed)\n",
        atomic_load(&c->done), atomic_load(&c->ok), atomic_load(&c->failed));
    assert_int_equal(atomic_load(&c->done), N_CALLS);
    int eof = 0, err = 0;
    for (int i = 0; i < N_STREAMS; i++) {
        int64_t t0 = t_now_ms();
        int rc;
        do {
            micro_buf b = {0};
            rc = micro_stream_recv(c->streams[i], &b);
            micro_buf_clear(&b);
        } while (rc == 0);
        assert_true(t_now_ms() - t0 < 10000);
        assert_int_not_equal(rc, MICRO_ETIMEDOUT);
        if (rc == MICRO_EOF) {
            eof++;
        } else {
            err++;
        }
        micro_stream_free(c->streams[i]);
        c->streams[i] = NULL;
    }
    print_message("  streams: %d ended (%d EOF, %d with an error)\n",
        eof + err, eof, err);
    assert_int_equal(eof + err, N_STREAMS);
}

static void
reset_counters(void)
{
    atomic_store(&late_started, 0);
    atomic_store(&late_done, 0);
    atomic_store(&late_touch_ok, 0);
    atomic_store(&late_call_ok, 0);
    atomic_store(&events_seen, 0);
    atomic_store(&stream_msgs, 0);
    atomic_store(&stopping_now, false);
}

/* Late handlers still running at the stop must all have finished, and
 * used what they were given, by the time free returns. */
static void
check_late(void)
{
    print_message("  late handlers: %d started, %d done, %d touched their "
                  "request/response, %d called out after the drain\n",
        atomic_load(&late_started), atomic_load(&late_done),
        atomic_load(&late_touch_ok), atomic_load(&late_call_ok));
    assert_true(atomic_load(&late_started) >= 1);
    assert_int_equal(atomic_load(&late_done), atomic_load(&late_started));
    assert_int_equal(atomic_load(&late_touch_ok), atomic_load(&late_started));
    assert_int_equal(atomic_load(&late_call_ok), atomic_load(&late_started));
}

/* --- a server ------------------------------------------------------------ */

static void
test_stop_server(void **state)
{
    (void) state;
    t_watchdog(120, "server shutdown torture");
    reset_counters();
    helper h;
    helper_start(&h);
    callers c;
    callers_new(&c);
    atomic_store(&late_client, c.cli);

    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    micro_options_set_str(o, "server_address", "127.0.0.1:0");
    micro_options_set_int(o, "server_workers", WORKERS);
    micro_loop *loop = NULL;
    assert_int_equal(micro_loop_new(&loop), 0);
    micro_transport *tr = NULL;
    assert_int_equal(micro_transport_new_by_name(&tr, "http", loop, o), 0);
    micro_broker *b = NULL;
    assert_int_equal(micro_broker_new(&b, &micro_broker_memory_ops, NULL,
                         NULL, NULL), 0);
    assert_int_equal(micro_broker_connect(b), 0);
    micro_server *srv = NULL;
    assert_int_equal(micro_server_new(&srv, loop, tr, o), 0);
    add_handlers(srv);
    assert_int_equal(micro_server_set_broker(srv, b), 0);
    assert_int_equal(micro_server_start(srv), 0);
    assert_int_equal(micro_server_start_subscribers(srv), 0);
    snprintf(c.addr, sizeof(c.addr), "%s", micro_transport_address(tr));
    assert_int_equal(micro_client_new(&c.pub_cli, c.tr, NULL, c.opts), 0);
    assert_int_equal(micro_client_set_broker(c.pub_cli, b), 0);

    start_traffic(&c);
    assert_int_equal(pthread_create(&c.pub, NULL, publisher, &c), 0);
    /* Let the late handlers start (all workers busy), then stop. */
    int64_t until = t_now_ms() + 10000;
    while (atomic_load(&late_started) < WORKERS / 2 && t_now_ms() < until) {
        sleep_ms(2);
    }
    micro_server_stop_subscribers(srv);
    int64_t t0 = t_now_ms();
    int rc = micro_server_stop(srv, DRAIN_MS);
    print_message("  stop: %s after %lld ms (drain %d ms)\n",
        micro_err_name(rc), (long long) (t_now_ms() - t0), DRAIN_MS);
    assert_int_equal(rc, MICRO_ETIMEDOUT);
    assert_true(atomic_load(&late_done) < atomic_load(&late_started));
    check_callers(&c);
    pthread_join(c.pub, NULL);
    /* Free waits for the late handlers, which still use the server's
     * request objects and the callers' client. */
    micro_server_free(srv);
    check_late();
    print_message("  events: %d published, %d handled\n",
        atomic_load(&c.published), atomic_load(&events_seen));
    micro_client_free(c.pub_cli);
    micro_broker_free(b);
    micro_transport_free(tr);
    micro_loop_free(loop);
    micro_options_free(o);
    atomic_store(&late_client, NULL);
    callers_free(&c);
    helper_stop(&h);
    t_watchdog(0, NULL);
}

/* --- a service ------------------------------------------------------------ */

static atomic_bool svc_started;

static int
after_start(micro_service *svc, void *arg)
{
    (void) svc;
    (void) arg;
    atomic_store(&svc_started, true);
    return 0;
}

static void *
run_service(void *arg)
{
    micro_service_run(arg);
    return NULL;
}

static void
test_stop_service(void **state)
{
    (void) state;
    t_watchdog(120, "service shutdown torture");
    reset_counters();
    helper h;
    helper_start(&h);
    callers c;
    callers_new(&c);

    micro_service *svc = NULL;
    assert_int_equal(micro_service_new(&svc, "torture", NULL, NULL), 0);
    micro_options *o = micro_service_options(svc);
    assert_int_equal(micro_options_set_str(o, "registry", "memory"), 0);
    assert_int_equal(micro_options_set_str(o, "broker", "memory"), 0);
    assert_int_equal(micro_options_set_str(o, "server_address",
                         "127.0.0.1:0"), 0);
    assert_int_equal(micro_options_set_int(o, "server_workers", WORKERS), 0);
    assert_int_equal(micro_options_set_ms(o, "server_drain", DRAIN_MS), 0);
    assert_int_equal(micro_options_set_int(o, "client_retries", 0), 0);
    add_handlers(micro_service_server(svc));
    assert_int_equal(micro_service_add_hook(svc, MICRO_HOOK_AFTER_START,
                         after_start, NULL), 0);
    /* The late handlers call out through the service's own client. */
    atomic_store(&late_client, micro_service_client(svc));
    atomic_store(&svc_started, false);
    pthread_t run;
    assert_int_equal(pthread_create(&run, NULL, run_service, svc), 0);
    int64_t until = t_now_ms() + 10000;
    while (!atomic_load(&svc_started) && t_now_ms() < until) {
        sleep_ms(5);
    }
    assert_true(atomic_load(&svc_started));
    snprintf(c.addr, sizeof(c.addr), "%s",
        micro_server_address(micro_service_server(svc)));
    /* The events go through the service's broker (memory: in process). */
    c.pub_cli = micro_service_client(svc);

    start_traffic(&c);
    assert_int_equal(pthread_create(&c.pub, NULL, publisher, &c), 0);
    until = t_now_ms() + 10000;
    while (atomic_load(&late_started) < WORKERS / 2 && t_now_ms() < until) {
        sleep_ms(2);
    }
    int64_t t0 = t_now_ms();
    micro_service_stop(svc);
    pthread_join(run, NULL); /* run returns after the drain */
    print_message("  run returned %lld ms after the stop (drain %d ms)\n",
        (long long) (t_now_ms() - t0), DRAIN_MS);
    assert_true(atomic_load(&late_done) < atomic_load(&late_started));
    check_callers(&c);
    pthread_join(c.pub, NULL);
    micro_service_free(svc);
    check_late();
    print_message("  events: %d published, %d handled\n",
        atomic_load(&c.published), atomic_load(&events_seen));
    atomic_store(&late_client, NULL);
    callers_free(&c);
    helper_stop(&h);
    t_watchdog(0, NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_server),
        cmocka_unit_test(test_stop_service),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
