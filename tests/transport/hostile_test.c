/* Hostile peers at the RPC listener and at the client (issue 11): an
 * in-process server (micro_server over the http transport on 127.0.0.1:0,
 * handlers inline and on workers) attacked over raw sockets, and the
 * cmicro client facing raw fake servers. Every case asserts bounded
 * memory (the test process's resident set and heap, outside sanitizers),
 * bounded time (generous upper bounds only: a busy 2-core machine), a
 * clear answer where one is due (status, error code, statistics), and
 * that a well-behaved micro_client_call is still served.
 *
 * The defects these cases pin down were found in the code before the
 * HTTP/1.1 redesign (4741dc4): trailers leaking into the next request,
 * response splitting, unbounded pipelining, slow header floods, no idle
 * timeout, no connection cap, no budget for partial bodies, head-of-line
 * 408s, more than 8 pipelined requests refused, a space before a colon
 * accepted, no 100 Continue, ports over 65535 wrapped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "support/raw_http.h"
#include "support/support.h"

#define CT_JSON "application/json"

/* Outside sanitizers: how much the process may grow during an attack. */
#define RSS_SLACK_KIB (64L * 1024)

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Bytes of heap in use (glibc's own count: exact, unlike the resident
 * set, which keeps pages malloc has not returned). */
static long
heap_kib(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (long) ((mi.uordblks + mi.hblkhd) / 1024);
}

/* ------------------------------------------------------------------ */
/* The server under attack and its handlers.                            */

static atomic_int g_blocked;       /* Greeter.Block handlers inside */
static atomic_bool g_release;      /* let them go */
static atomic_int g_hdr_rc[4];     /* what micro_response_set_header said */
static atomic_int g_fail_calls;    /* Greeter.Fail ran */

/* {"name":"X"} -> {"msg":"Hello X"} (no JSON library needed here). */
static int
h_hello(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t len = 0;
    const char *b = micro_request_body(req, &len);
    const char *k = len > 0 ? strstr(b, "\"name\":\"") : NULL;
    if (k == NULL || (size_t) (k - b) >= len) {
        return micro_response_error(rsp, NULL, 400, "name required");
    }
    k += 8;
    const char *e = memchr(k, '"', len - (size_t) (k - b));
    if (e == NULL) {
        return micro_response_error(rsp, NULL, 400, "name required");
    }
    char out[256];
    int n = snprintf(out, sizeof(out), "{\"msg\":\"Hello %.*s\"}",
        (int) (e - k < 200 ? e - k : 200), k);
    return micro_response_set_body(rsp, out, (size_t) n);
}

static int
h_fail(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) arg;
    atomic_fetch_add(&g_fail_calls, 1);
    return micro_response_error(rsp, NULL, 500, "failed on purpose");
}

/* 64 KiB of reply. */
static int
h_big(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) arg;
    static char big[64 * 1024];
    if (big[0] == '\0') {
        memset(big, 'x', sizeof(big));
        big[0] = '"';
        big[sizeof(big) - 1] = '"';
    }
    return micro_response_set_body(rsp, big, sizeof(big));
}

/* Holds its worker until released (or 20 s). */
static int
h_block(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) arg;
    atomic_fetch_add(&g_blocked, 1);
    int64_t until = t_now_ms() + 20000;
    while (!atomic_load(&g_release) && t_now_ms() < until) {
        sleep_ms(5);
    }
    atomic_fetch_sub(&g_blocked, 1);
    return micro_response_set_body(rsp, "{}", 2);
}

/* Tries to split its response; then sets a harmless header. */
static int
h_hdr(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) arg;
    atomic_store(&g_hdr_rc[0], micro_response_set_header(rsp, "X-A",
                                   "v\r\nX-Injected: 1"));
    atomic_store(&g_hdr_rc[1], micro_response_set_header(rsp, "X-B",
                                   "v\nX-Injected: 2"));
    atomic_store(&g_hdr_rc[2], micro_response_set_header(rsp,
                                   "X-Injected: 3\r\nX-C", "v"));
    atomic_store(&g_hdr_rc[3], micro_response_set_header(rsp, "Bad Name",
                                   "v"));
    int rc = micro_response_set_header(rsp, "X-Good", "ok");
    if (rc != 0) {
        return rc;
    }
    return micro_response_set_body(rsp, "{}", 2);
}

/* The deadline the server derived from Timeout: {"left":ms} or
 * {"left":"none"}. */
static int
h_deadline(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    char out[64];
    int64_t left = micro_request_remaining_ms(req);
    int n = left == INT64_MAX
        ? snprintf(out, sizeof(out), "{\"left\":\"none\"}")
        : snprintf(out, sizeof(out), "{\"left\":%lld}", (long long) left);
    return micro_response_set_body(rsp, out, (size_t) n);
}

static int
s_echo(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    return micro_stream_send_async(s, body, len, NULL, NULL);
}

typedef struct srv {
    micro_options *opts;
    micro_loop *loop;
    micro_transport *tr;
    micro_server *s;
    char addr[64];
} srv;

static srv S;

/* The client side: its own loop and transport, for every test. */
static micro_loop *g_cloop;
static micro_transport *g_ctr;
static micro_client *g_cli;
static micro_options *g_copts;

/* Start S with "name=value" options on top of the test defaults. */
static void
srv_start(const char *const *kv)
{
    memset(&S, 0, sizeof(S));
    atomic_store(&g_blocked, 0);
    atomic_store(&g_release, false);
    assert_int_equal(micro_options_new(&S.opts), 0);
    assert_int_equal(micro_options_set_str(S.opts, "server_address",
                         "127.0.0.1:0"), 0);
    assert_int_equal(micro_options_set_str(S.opts, "server_name", "greeter"),
        0);
    assert_int_equal(micro_options_set_str(S.opts, "server_workers", "4"), 0);
    for (size_t i = 0; kv != NULL && kv[i] != NULL; i++) {
        char name[64];
        const char *eq = strchr(kv[i], '=');
        assert_non_null(eq);
        snprintf(name, sizeof(name), "%.*s", (int) (eq - kv[i]), kv[i]);
        assert_int_equal(micro_options_set_str(S.opts, name, eq + 1), 0);
    }
    assert_int_equal(micro_loop_new(&S.loop), 0);
    assert_int_equal(micro_transport_new_by_name(&S.tr, "http", S.loop,
                         S.opts), 0);
    assert_int_equal(micro_server_new(&S.s, S.loop, S.tr, S.opts), 0);
    static const struct {
        const char *ep;
        micro_handler_fn fn;
        unsigned flags;
    } hs[] = {
        {"Greeter.Hello", h_hello, 0},
        {"Greeter.Inline", h_hello, MICRO_HANDLER_INLINE},
        {"Greeter.Fail", h_fail, 0},
        {"Greeter.Big", h_big, MICRO_HANDLER_INLINE},
        {"Greeter.Block", h_block, 0},
        {"Greeter.Hdr", h_hdr, 0},
        {"Greeter.Deadline", h_deadline, 0},
    };
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
        micro_handler_desc d = {.endpoint = hs[i].ep, .fn = hs[i].fn,
            .flags = hs[i].flags};
        assert_int_equal(micro_server_handle(S.s, &d), 0);
    }
    micro_stream_handler sh = {.size = sizeof(sh), .endpoint = "S.Echo",
        .on_msg = s_echo, .flags = MICRO_HANDLER_INLINE};
    assert_int_equal(micro_server_handle_stream(S.s, &sh), 0);
    assert_int_equal(micro_server_start(S.s), 0);
    snprintf(S.addr, sizeof(S.addr), "%s", micro_transport_address(S.tr));
}

static void
srv_stop(void)
{
    atomic_store(&g_release, true);
    micro_server_stop(S.s, 2000);
    micro_server_free(S.s);
    micro_transport_free(S.tr);
    micro_loop_free(S.loop);
    micro_options_free(S.opts);
    memset(&S, 0, sizeof(S));
}

static micro_transport_stats
srv_stats(void)
{
    micro_transport_stats st;
    micro_transport_get_stats(S.tr, &st);
    return st;
}

static int
group_setup(void **state)
{
    (void) state;
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(micro_options_new(&g_copts), 0);
    assert_int_equal(micro_options_set_int(g_copts, "client_retries", 0), 0);
    assert_int_equal(micro_loop_new(&g_cloop), 0);
    assert_int_equal(micro_transport_new_by_name(&g_ctr, "http", g_cloop,
                         g_copts), 0);
    assert_int_equal(micro_client_new(&g_cli, g_ctr, NULL, g_copts), 0);
    return 0;
}

static int
group_teardown(void **state)
{
    (void) state;
    micro_client_free(g_cli);
    micro_transport_free(g_ctr);
    micro_loop_free(g_cloop);
    micro_options_free(g_copts);
    return 0;
}

/* ------------------------------------------------------------------ */
/* The well-behaved client.                                             */

static int
call_hello(const char *addr, const char *ep, const char *name,
    int64_t timeout_ms, micro_call **out)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = addr;
    o.timeout_ms = timeout_ms;
    o.retries = MICRO_CALL_NO_RETRY;
    return micro_client_call(g_cli, "greeter", ep, body, (size_t) n, &o,
        out);
}

/* A normal call is served, promptly and correctly. */
static void
good_call(void)
{
    micro_call *c = NULL;
    int64_t t0 = t_now_ms();
    int rc = call_hello(S.addr, "Greeter.Hello", "Good", 10000, &c);
    if (rc != 0) {
        fprintf(stderr, "good call: %s\n", micro_err_name(rc));
    }
    assert_int_equal(rc, 0);
    size_t len = 0;
    const char *b = micro_call_body(c, &len);
    assert_true(len >= 20);
    assert_memory_equal(b, "{\"msg\":\"Hello Good\"}", 20);
    micro_call_free(c);
    assert_true(t_now_ms() - t0 < 10000);
}

/* A well-behaved client running for a while on its own thread, for
 * "others are served meanwhile". */
typedef struct bg_client {
    pthread_t th;
    atomic_bool stop;
    atomic_int ok, failed;
    char addr[64];
} bg_client;

static void *
bg_main(void *arg)
{
    bg_client *b = arg;
    while (!atomic_load(&b->stop)) {
        micro_call *c = NULL;
        int rc = call_hello(b->addr, "Greeter.Inline", "bg", 10000, &c);
        micro_call_free(c);
        atomic_fetch_add(rc == 0 ? &b->ok : &b->failed, 1);
        sleep_ms(20);
    }
    return NULL;
}

static void
bg_start(bg_client *b)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->addr, sizeof(b->addr), "%s", S.addr);
    assert_int_equal(pthread_create(&b->th, NULL, bg_main, b), 0);
}

/* Stop it; it must have been served during the attack. */
static void
bg_stop(bg_client *b)
{
    int64_t until = t_now_ms() + 10000;
    while (atomic_load(&b->ok) == 0 && t_now_ms() < until) {
        sleep_ms(10);
    }
    atomic_store(&b->stop, true);
    pthread_join(b->th, NULL);
    print_message("  well-behaved client meanwhile: %d served, %d failed\n",
        atomic_load(&b->ok), atomic_load(&b->failed));
    assert_true(atomic_load(&b->ok) > 0);
    assert_int_equal(atomic_load(&b->failed), 0);
}

/* ------------------------------------------------------------------ */
/* Raw HTTP/1.1 over a socket.                                          */

/* A request as Go Micro's client writes one (plus extra header lines). */
static int
build_request(char *out, size_t cap, const char *endpoint,
    const char *extra, const char *body)
{
    return snprintf(out, cap,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " CT_JSON "\r\n"
        "Micro-Service: greeter\r\nMicro-Endpoint: %s\r\n%s"
        "Content-Length: %zu\r\n\r\n%s",
        endpoint, extra != NULL ? extra : "", strlen(body), body);
}

/* ------------------------------------------------------------------ */
/* Trailers.                                                            */

/* A chunked request whose trailer says Micro-Endpoint: Greeter.Fail, then
 * a pipelined Greeter.Hello on the same connection: the trailer is
 * dropped, the second request goes where it says. (Before: the last
 * trailer field became the first header of the next request, and first
 * values win, so the next caller ran Greeter.Fail.) */
static void
test_trailer_no_leak(void **state)
{
    (void) state;
    srv_start(NULL);
    atomic_store(&g_fail_calls, 0);
    char second[512];
    build_request(second, sizeof(second), "Greeter.Hello", NULL,
        "{\"name\":\"B\"}");
    char req[2048];
    snprintf(req, sizeof(req),
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: " CT_JSON "\r\n"
        "Micro-Service: greeter\r\nMicro-Endpoint: Greeter.Hello\r\n"
        "Transfer-Encoding: chunked\r\nTrailer: Micro-Endpoint, Timeout\r\n"
        "\r\nc\r\n{\"name\":\"A\"}\r\n0\r\n"
        "Timeout: 1\r\nMicro-Endpoint: Greeter.Fail\r\n\r\n%s",
        second);
    raw r;
    raw_rsp rsp;
    assert_int_equal(raw_connect(&r, S.addr), 0);
    assert_int_equal(raw_send_str(&r, req), strlen(req));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(raw_read_response(&r, &rsp, 5000), 0);
        assert_int_equal(rsp.status, 200);
        micro_error *e = rsp_error(&rsp);
        if (e != NULL) {
            fprintf(stderr, "answer %d: %d %s\n", i, (int) e->code,
                e->detail);
        }
        assert_null(e);
        assert_string_equal(rsp.body,
            i == 0 ? "{\"msg\":\"Hello A\"}\n" : "{\"msg\":\"Hello B\"}\n");
    }
    assert_int_equal(atomic_load(&g_fail_calls), 0);
    raw_close(&r);
    good_call();
    srv_stop();
}

/* ------------------------------------------------------------------ */
/* Response splitting.                                                  */

static int call_async_opts(const micro_call_opts *o);

static void
test_response_splitting(void **state)
{
    (void) state;
    srv_start(NULL);
    char req[512];
    build_request(req, sizeof(req), "Greeter.Hdr", NULL, "{}");
    raw r;
    raw_rsp rsp;
    assert_int_equal(raw_connect(&r, S.addr), 0);
    assert_int_equal(raw_send_str(&r, req), strlen(req));
    assert_int_equal(raw_read_response(&r, &rsp, 5000), 0);
    assert_int_equal(rsp.status, 200);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(atomic_load(&g_hdr_rc[i]), MICRO_EINVAL);
    }
    char v[64];
    assert_non_null(rsp_header(&rsp, "X-Good", v, sizeof(v)));
    assert_string_equal(v, "ok");
    assert_null(strstr(rsp.head, "Injected"));
    assert_null(strstr(rsp.head, "Bad Name"));
    assert_null(rsp_header(&rsp, "X-A", v, sizeof(v)));
    assert_null(rsp_header(&rsp, "X-B", v, sizeof(v)));
    /* Exactly one answer, nothing after it. */
    assert_int_equal(raw_fill(&r, 200), 0);
    assert_int_equal(r.len, 0);
    raw_close(&r);

    /* The client refuses metadata that would change the request's
     * framing: the call fails with MICRO_EINVAL and sends nothing. */
    uint64_t before = srv_stats().requests;
    static const micro_header_kv bad[][1] = {
        {{"Bad Key", "v"}},
        {{"X-Key\r\nX-Injected", "v"}},
        {{"X-Key", "v\r\nX-Injected: 1"}},
        {{"X-Key", "v\nX-Injected: 1"}},
        {{"", "v"}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        micro_call_opts o = MICRO_CALL_OPTS_INIT;
        o.address = S.addr;
        o.retries = MICRO_CALL_NO_RETRY;
        o.metadata = bad[i];
        o.n_metadata = 1;
        micro_call *c = NULL;
        int rc = micro_client_call(g_cli, "greeter", "Greeter.Hello",
            "{\"name\":\"x\"}", 12, &o, &c);
        assert_int_equal(rc, MICRO_EINVAL);
        micro_call_free(c);
        /* The same on a loop, and for a stream's opening. */
        assert_int_equal(call_async_opts(&o), MICRO_EINVAL);
        micro_stream *st = NULL;
        rc = micro_client_stream(g_cli, "greeter", "S.Echo", &o, &st);
        assert_int_equal(rc, MICRO_EINVAL);
        assert_null(st);
    }
    sleep_ms(100);
    assert_int_equal(srv_stats().requests, before);
    good_call();
    srv_stop();
}

/* ------------------------------------------------------------------ */
/* A client that pipelines and never reads.                             */

/* Pipeline Greeter.Big requests (64 KiB answers) on a new connection and
 * never read: 16 KiB requests one every millisecond (a pipeliner the old
 * 8-deep queue let through, and answered without bound), or small ones
 * in 256 KiB blocks. Returns the bytes of requests the server took before
 * it stopped reading (a second without room), at most 16 MiB. */
static size_t
pipeline_flood(raw *r, bool paced)
{
    static char one[20000];
    static char pad[16384];
    memset(pad, 'p', sizeof(pad) - 1);
    char body[sizeof(pad) + 16];
    snprintf(body, sizeof(body), "{\"pad\":\"%s\"}", paced ? pad : "");
    int per = build_request(one, sizeof(one), "Greeter.Big", NULL, body);
    size_t nreq = paced ? 1 : (256u << 10) / (size_t) per;
    size_t bl = nreq * (size_t) per;
    char *block = malloc(bl);
    assert_non_null(block);
    for (size_t i = 0; i < nreq; i++) {
        memcpy(block + i * (size_t) per, one, (size_t) per);
    }
    assert_int_equal(raw_connect(r, S.addr), 0);
    /* Never read: a small receive buffer, so the answers back up in the
     * server quickly. */
    int small = 4096;
    setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    size_t sent = 0, total = 16u << 20; /* 16 MiB of requests: 6 GiB back */
    int64_t t0 = t_now_ms();
    while (sent < total && t_now_ms() - t0 < 10000) {
        size_t w = 0;
        while (w < bl) {
            ssize_t k = send(r->fd, block + w, bl - w,
                MSG_NOSIGNAL | MSG_DONTWAIT);
            if (k <= 0) {
                break;
            }
            w += (size_t) k;
        }
        sent += w;
        if (w < bl) {
            struct pollfd pf = {r->fd, POLLOUT, 0};
            if (poll(&pf, 1, 1000) <= 0) {
                break; /* a second without room: it stopped reading us */
            }
        } else if (paced) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    free(block);
    return sent;
}

static void
test_pipeline_never_reads(void **state)
{
    (void) state;
    static const char *const o[] = {"transport_window=262144", NULL};
    srv_start(o);
    good_call();
    for (int paced = 1; paced >= 0; paced--) {
        long rss0 = t_rss_kib(), heap0 = heap_kib();
        raw r;
        size_t sent = pipeline_flood(&r, paced);
        long grew_rss = t_rss_kib() - rss0, grew_heap = heap_kib() - heap0;
        print_message("  pipelined %zu KiB of requests (%s), never "
                      "reading: RSS +%ld KiB, heap +%ld KiB\n",
            sent >> 10, paced ? "16 KiB each ms" : "256 KiB at a time",
            grew_rss, grew_heap);
        assert_true(sent < (16u << 20)); /* the server stopped taking them */
        assert_false(r.closed);          /* nor did it give up on us */
        good_call();                     /* others are served meanwhile */
        if (!T_SANITIZED_RSS) {
            /* The window (256 KiB), an answer past it, the requests read
             * ahead (at most 128 KiB): in all a few MiB. Before: every
             * request read was answered (1 GiB and more). */
            assert_true(grew_rss < RSS_SLACK_KIB);
            assert_true(grew_heap < 4 * 1024);
        }
        raw_close(&r);
        /* Its memory goes with it. */
        int64_t until = t_now_ms() + 10000;
        long heap1 = heap_kib();
        while (!T_SANITIZED_RSS && heap1 - heap0 > 2048 &&
            t_now_ms() < until) {
            sleep_ms(20);
            heap1 = heap_kib();
        }
        print_message("  after the close: heap +%ld KiB\n", heap1 - heap0);
        if (!T_SANITIZED_RSS) {
            assert_true(heap1 - heap0 <= 2048);
        }
    }
    good_call();
    srv_stop();
}

/* ------------------------------------------------------------------ */
/* Header floods.                                                       */

/* Send a flood on a new connection while a well-behaved client runs:
 * answered 431 (or closed, counted as oversized) quickly. */
static void
flood(const char *what, const char *head, size_t n)
{
    bg_client bg;
    bg_start(&bg);
    uint64_t over0 = srv_stats().oversized;
    long rss0 = t_rss_kib();
    int64_t t0 = t_now_ms();
    raw r;
    raw_rsp rsp;
    assert_int_equal(raw_connect(&r, S.addr), 0);
    size_t sent = raw_send_ms(&r, head, n, 5000);
    int rc = raw_read_response(&r, &rsp, 5000);
    int64_t el = t_now_ms() - t0;
    print_message("  %s (%zu KiB, %zu sent): %s %d after %lld ms\n", what,
        n >> 10, sent, rc == 0 ? "status" : "no answer, rc",
        rc == 0 ? rsp.status : rc, (long long) el);
    if (rc == 0) {
        assert_int_equal(rsp.status, 431);
        assert_string_equal(rsp.body, "431 Request Header Fields Too Large");
    } else {
        assert_int_equal(rc, -1); /* a reset beat the answer to us */
    }
    assert_true(raw_wait_closed(&r, 5000) >= 0);
    assert_true(t_now_ms() - t0 < 5000);
    raw_close(&r);
    assert_int_equal(srv_stats().oversized, over0 + 1);
    bg_stop(&bg);
    good_call();
    if (!T_SANITIZED_RSS) {
        assert_true(t_rss_kib() - rss0 < RSS_SLACK_KIB);
    }
}

static void
test_header_floods(void **state)
{
    (void) state;
    srv_start(NULL);
    micro_buf b = {0};
    const char start[] = "POST / HTTP/1.1\r\nHost: x\r\n"
                         "Micro-Endpoint: Greeter.Hello\r\n";
    /* 100,000 Remote: fields in one request: under the size limit (1
     * MiB), over the count (1000), which is what makes it fast (before:
     * no count, and removing them one by one was quadratic). */
    micro_buf_append_str(&b, start);
    for (int i = 0; i < 100000; i++) {
        micro_buf_append_str(&b, "Remote:6\r\n");
    }
    micro_buf_append_str(&b, "Content-Length: 2\r\n\r\n{}");
    assert_true(b.len < 1048576);
    flood("100,000 Remote fields", (const char *) b.data, b.len);
    /* 95,000 distinct names, under the size limit too. */
    b.len = 0;
    micro_buf_append_str(&b, start);
    for (int i = 0; i < 95000; i++) {
        char l[32];
        int k = snprintf(l, sizeof(l), "K%05d:v\r\n", i);
        micro_buf_append(&b, l, (size_t) k);
    }
    assert_true(b.len < 1048576);
    micro_buf_append_str(&b, "Content-Length: 2\r\n\r\n{}");
    flood("95,000 distinct fields", (const char *) b.data, b.len);
    /* A header block of more than 1 MiB in few fields. */
    b.len = 0;
    micro_buf_append_str(&b, start);
    char *v = malloc(64 * 1024);
    assert_non_null(v);
    memset(v, 'v', 64 * 1024);
    for (int i = 0; i < 17; i++) {
        char l[32];
        int k = snprintf(l, sizeof(l), "X-Big%d: ", i);
        micro_buf_append(&b, l, (size_t) k);
        micro_buf_append(&b, v, 64 * 1024);
        micro_buf_append_str(&b, "\r\n");
    }
    free(v);
    micro_buf_append_str(&b, "Content-Length: 2\r\n\r\n{}");
    flood("a 1 MiB header block", (const char *) b.data, b.len);
    micro_buf_clear(&b);
    srv_stop();
}

/* ------------------------------------------------------------------ */
/* Raw fake servers for the client.                                     */

enum fake_kind {
    FK_GARBAGE,
    FK_STATUS,
    FK_BIG_LENGTH,
    FK_NEVER_ENDS,
    FK_HUGE_CHUNKED,
    FK_HEADER_FLOOD,
};

typedef struct fake {
    int lfd;
    char addr[64];
    pthread_t th;
    atomic_bool stop;
    atomic_int kind;
    atomic_long written; /* bytes of answer written */
} fake;

/* Read one request head (and a Content-Length body). False on close. */
static bool
fake_read_request(int fd, fake *f)
{
    char buf[65536];
    size_t len = 0;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0) {
            return false;
        }
        len += (size_t) n;
        buf[len] = '\0';
        char *eoh = strstr(buf, "\r\n\r\n");
        if (eoh == NULL) {
            continue;
        }
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        size_t want = (size_t) (eoh - buf) + 4;
        if (cl != NULL && cl < eoh) {
            want += (size_t) strtoul(cl + 17, NULL, 10);
        } else {
            want += 5; /* chunked "0\r\n\r\n" */
        }
        if (len >= want) {
            return true;
        }
    }
    return false;
}

/* Write all of p unless the client goes (or we are stopped). */
static bool
fake_write(int fd, fake *f, const char *p, size_t n)
{
    size_t off = 0;
    while (off < n && !atomic_load(&f->stop)) {
        struct pollfd pf = {fd, POLLOUT, 0};
        if (poll(&pf, 1, 50) <= 0) {
            continue;
        }
        ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            return false;
        }
        off += (size_t) w;
        atomic_fetch_add(&f->written, (long) w);
    }
    return off == n;
}

/* Hold the connection until the client closes it (or 20 s). */
static void
fake_hold(int fd, fake *f)
{
    int64_t until = t_now_ms() + 20000;
    while (!atomic_load(&f->stop) && t_now_ms() < until) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) > 0) {
            char tmp[4096];
            if (recv(fd, tmp, sizeof(tmp), 0) <= 0) {
                return;
            }
        }
    }
}

static void
fake_serve(int fd, fake *f)
{
    static char chunk[16384 + 16];
    if (!fake_read_request(fd, f)) {
        return;
    }
    switch (atomic_load(&f->kind)) {
    case FK_GARBAGE: {
        static const char g[] = "\x16\x03\x01garbage\r\n\r\nmore garbage";
        fake_write(fd, f, g, sizeof(g) - 1);
        fake_hold(fd, f);
        break;
    }
    case FK_STATUS: {
        static const char s[] = "HTTP/1.1 502 Bad Gateway\r\n"
                                "Content-Length: 3\r\n\r\nbad";
        fake_write(fd, f, s, sizeof(s) - 1);
        fake_hold(fd, f);
        break;
    }
    case FK_BIG_LENGTH: {
        static const char s[] = "HTTP/1.1 200 OK\r\n"
                                "Content-Length: 107374182400\r\n\r\n";
        if (fake_write(fd, f, s, sizeof(s) - 1)) {
            memset(chunk, 'b', sizeof(chunk));
            int64_t until = t_now_ms() + 20000;
            while (t_now_ms() < until &&
                fake_write(fd, f, chunk, sizeof(chunk))) {
            }
        }
        break;
    }
    case FK_NEVER_ENDS: {
        static const char s[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                                "\r\n{\"partial";
        fake_write(fd, f, s, sizeof(s) - 1);
        fake_hold(fd, f);
        break;
    }
    case FK_HUGE_CHUNKED: {
        static const char s[] = "HTTP/1.1 200 OK\r\n"
                                "Transfer-Encoding: chunked\r\n\r\n";
        if (fake_write(fd, f, s, sizeof(s) - 1)) {
            memcpy(chunk, "4000\r\n", 6);
            memset(chunk + 6, 'c', 16384);
            memcpy(chunk + 6 + 16384, "\r\n", 2);
            int64_t until = t_now_ms() + 20000;
            while (t_now_ms() < until &&
                fake_write(fd, f, chunk, 16384 + 8)) {
            }
        }
        break;
    }
    case FK_HEADER_FLOOD: {
        static const char s[] = "HTTP/1.1 200 OK\r\n";
        bool ok = fake_write(fd, f, s, sizeof(s) - 1);
        static char lines[100 * 16];
        for (int i = 0; i < 100; i++) {
            memcpy(lines + i * 16, "X-Flood: 123456\r", 16);
            lines[i * 16 + 15] = '\n';
        }
        for (int i = 0; ok && i < 1000; i++) { /* 100,000 fields */
            ok = fake_write(fd, f, lines, sizeof(lines));
        }
        if (ok) {
            fake_write(fd, f, "Content-Length: 2\r\n\r\n{}", 24);
        }
        fake_hold(fd, f);
        break;
    }
    default:
        break;
    }
}

static void *
fake_main(void *arg)
{
    fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {f->lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        fake_serve(fd, f);
        close(fd);
    }
    return NULL;
}

static void
fake_start(fake *f)
{
    memset(f, 0, sizeof(*f));
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    assert_int_equal(bind(f->lfd, (struct sockaddr *) &a, sizeof(a)), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *) &a, &al), 0);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", ntohs(a.sin_port));
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void
fake_stop(fake *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    close(f->lfd);
}

/* One asynchronous call on the client's loop, waited for. */
typedef struct async_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
} async_wait;

static void
async_done(void *arg, int rc, micro_call *call)
{
    async_wait *w = arg;
    micro_call_free(call);
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int
call_async(const char *addr, int64_t timeout_ms)
{
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = addr;
    o.timeout_ms = timeout_ms;
    o.retries = MICRO_CALL_NO_RETRY;
    return call_async_opts(&o);
}

static int
call_async_opts(const micro_call_opts *o)
{
    async_wait w = {.done = false};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = micro_client_call_async(g_cli, g_cloop, "greeter",
        "Greeter.Hello", "{\"name\":\"x\"}", 12, o, async_done, &w);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) {
            pthread_cond_wait(&w.cv, &w.mu);
        }
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

static void
client_case(fake *f, int kind, const char *what, int want, int64_t timeout)
{
    atomic_store(&f->kind, kind);
    for (int async = 0; async < 2; async++) {
        long rss0 = t_rss_kib();
        int64_t t0 = t_now_ms();
        int rc;
        if (async) {
            rc = call_async(f->addr, timeout);
        } else {
            micro_call *c = NULL;
            rc = call_hello(f->addr, "Greeter.Hello", "x", timeout, &c);
            micro_call_free(c);
        }
        int64_t el = t_now_ms() - t0;
        print_message("  %s (%s): %s after %lld ms; RSS +%ld KiB\n", what,
            async ? "async" : "blocking", micro_err_name(rc), (long long) el,
            t_rss_kib() - rss0);
        assert_int_equal(rc, want);
        /* Within its deadline (plus slack for a busy machine): a timeout
         * ends at the deadline, everything else well before it. */
        assert_true(el < timeout + 3000);
        if (want != MICRO_ETIMEDOUT) {
            assert_true(el < timeout);
        }
        if (!T_SANITIZED_RSS) {
            assert_true(t_rss_kib() - rss0 < RSS_SLACK_KIB);
        }
    }
}

static void
test_client_hostile_servers(void **state)
{
    (void) state;
    fake f;
    fake_start(&f);
    client_case(&f, FK_GARBAGE, "garbage", MICRO_EPROTO, 5000);
    client_case(&f, FK_STATUS, "status 502", MICRO_EPROTO, 5000);
    client_case(&f, FK_BIG_LENGTH, "Content-Length 100 GiB", MICRO_EMSGSIZE,
        5000);
    client_case(&f, FK_NEVER_ENDS, "a body that never ends",
        MICRO_ETIMEDOUT, 700);
    client_case(&f, FK_HUGE_CHUNKED, "an endless chunked body",
        MICRO_EMSGSIZE, 10000);
    client_case(&f, FK_HEADER_FLOOD, "100,000 header fields",
        MICRO_EMSGSIZE, 10000);
    fake_stop(&f);
    /* The client still works against a real server. */
    srv_start(NULL);
    good_call();
    assert_int_equal(call_async(S.addr, 5000), 0);
    srv_stop();
}

/* ------------------------------------------------------------------ */
/* Idle connections and the connection cap.                             */

/* One exchange on r (a new connection): served. */
static void
raw_one_call(raw *r, const char *name)
{
    char body[64], req[512];
    snprintf(body, sizeof(body), "{\"name\":\"%s\"}", name);
    build_request(req, sizeof(req), "Greeter.Inline", NULL, body);
    assert_int_equal(raw_connect(r, S.addr), 0);
    assert_int_equal(raw_send_str(r, req), strlen(req));
    raw_rsp rsp;
    assert_int_equal(raw_read_response(r, &rsp, 5000), 0);
    assert_int_equal(rsp.status, 200);
}

static void
test_idle_timeout(void **state)
{
    (void) state;
    static const char *const o[] = {"transport_idle_timeout=300ms", NULL};
    srv_start(o);
    enum { N = 6 };
    raw r[N];
    uint64_t to0 = srv_stats().timeouts;
    for (int i = 0; i < N; i++) {
        raw_one_call(&r[i], "idle");
    }
    int64_t t0 = t_now_ms();
    for (int i = 0; i < N; i++) {
        assert_true(raw_wait_closed(&r[i], 5000) >= 0);
        assert_int_equal(r[i].len, 0); /* closed without a word */
        raw_close(&r[i]);
    }
    print_message("  %d idle connections closed within %lld ms\n", N,
        (long long) (t_now_ms() - t0));
    assert_true(t_now_ms() - t0 < 5000);
    /* Counted on the server's loop, just after the close we saw. */
    int64_t until = t_now_ms() + 5000;
    while (srv_stats().timeouts < to0 + N && t_now_ms() < until) {
        sleep_ms(5);
    }
    assert_true(srv_stats().timeouts >= to0 + N);
    good_call();
    srv_stop();
}

static atomic_int g_refuse_lines;

static void
count_logger(void *arg, micro_log_level lvl, const char *component,
    const char *msg)
{
    (void) arg;
    if (strstr(msg, "transport_max_conns") != NULL) {
        atomic_fetch_add(&g_refuse_lines, 1);
    }
    micro_log_stderr(NULL, lvl, component, msg);
}

static void
test_connection_cap(void **state)
{
    (void) state;
    enum { CAP = 8 };
    static const char *const o[] = {"transport_max_conns=8", NULL};
    srv_start(o);
    micro_log_set_logger(count_logger, NULL);
    atomic_store(&g_refuse_lines, 0);
    raw r[CAP];
    for (int i = 0; i < CAP; i++) {
        raw_one_call(&r[i], "cap");
        sleep_ms(5); /* distinct idle times: r[0] is the longest idle */
    }
    /* At the cap: a new well-behaved client makes room by closing the
     * longest-idle connection, and is served. */
    good_call();
    micro_transport_stats st = srv_stats();
    assert_true(st.evicted >= 1);
    assert_int_equal(st.refused, 0);
    assert_true(raw_wait_closed(&r[0], 2000) >= 0);
    for (int i = 1; i < CAP; i++) {
        assert_false(r[i].closed); /* only the longest idle went */
    }
    /* Now nobody is idle: r[1..] and a newcomer each begin a request and
     * stall (the client's pooled connection, idle, makes room for the
     * newcomer). A connection beyond that is refused, and logged. */
    static const char partial[] =
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{";
    for (int i = 1; i < CAP; i++) {
        raw_send_str(&r[i], partial);
    }
    raw_close(&r[0]);
    assert_int_equal(raw_connect(&r[0], S.addr), 0);
    raw_send_str(&r[0], partial);
    sleep_ms(100);
    uint64_t ev = srv_stats().evicted;
    raw extra;
    assert_int_equal(raw_connect(&extra, S.addr), 0);
    assert_true(raw_wait_closed(&extra, 5000) >= 0);
    raw_close(&extra);
    st = srv_stats();
    print_message("  cap %d: evicted %llu, refused %llu, %d log lines\n",
        CAP, (unsigned long long) st.evicted, (unsigned long long) st.refused,
        atomic_load(&g_refuse_lines));
    assert_int_equal(st.evicted, ev);
    assert_true(st.refused >= 1);
    assert_true(atomic_load(&g_refuse_lines) >= 1);
    for (int i = 0; i < CAP; i++) {
        assert_false(r[i].closed);
        raw_close(&r[i]);
    }
    micro_log_set_logger(NULL, NULL);
    /* The stalled ones gone, a well-behaved client is served again. */
    int64_t until = t_now_ms() + 5000;
    micro_call *c = NULL;
    int rc;
    while ((rc = call_hello(S.addr, "Greeter.Hello", "Good", 2000, &c)) !=
            0 && t_now_ms() < until) {
        micro_call_free(c);
        c = NULL;
        sleep_ms(20);
    }
    micro_call_free(c);
    assert_int_equal(rc, 0);
    good_call();
    srv_stop();
}

/* ------------------------------------------------------------------ */
/* Partial bodies over many connections.                                */

static void
test_partial_body_budget(void **state)
{
    (void) state;
    static const char *const o[] = {"transport_max_buffered=16777216", NULL};
    srv_start(o);
    good_call();
    enum { NC = 24, SENT = 3 << 20 };
    long rss0 = t_rss_kib(), heap0 = heap_kib();
    char *junk = malloc(SENT);
    assert_non_null(junk);
    memset(junk, ' ', SENT);
    char head[256];
    snprintf(head, sizeof(head),
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: " CT_JSON "\r\n"
        "Micro-Endpoint: Greeter.Hello\r\nContent-Length: %d\r\n\r\n",
        4 << 20);
    bg_client bg;
    bg_start(&bg);
    raw r[NC];
    int refused = 0;
    for (int i = 0; i < NC; i++) {
        assert_int_equal(raw_connect(&r[i], S.addr), 0);
        raw_send_str(&r[i], head);
        raw_send_ms(&r[i], junk, SENT, 3000);
    }
    int64_t until = t_now_ms() + 10000;
    bool seen[NC] = {false};
    while (refused < NC - 5 && t_now_ms() < until) {
        for (int i = 0; i < NC; i++) {
            raw_rsp rsp;
            if (!seen[i] && raw_read_response(&r[i], &rsp, 10) == 0) {
                assert_int_equal(rsp.status, 503);
                seen[i] = true;
                refused++;
            }
        }
    }
    long grew = t_rss_kib() - rss0, grew_heap = heap_kib() - heap0;
    micro_transport_stats st = srv_stats();
    print_message("  %d x 3 MiB partial bodies, budget 16 MiB: %d refused "
                  "(busy %llu); RSS +%ld KiB, heap +%ld KiB\n",
        NC, refused, (unsigned long long) st.busy, grew, grew_heap);
    /* At most 16 MiB / 3 MiB = 5 fit; the rest are refused. */
    assert_true(refused >= NC - 5);
    assert_true(st.busy >= (uint64_t) (NC - 5));
    bg_stop(&bg);
    good_call();
    for (int i = 0; i < NC; i++) {
        raw_close(&r[i]);
    }
    free(junk);
    if (!T_SANITIZED_RSS) {
        /* The bodies held (at most 16 MiB, in buffers reserved at their
         * Content-Length, 4 MiB each) and our 3 MiB of junk; without the
         * budget, 24 x 4 MiB. */
        assert_true(grew < RSS_SLACK_KIB);
        assert_true(grew_heap < 40 * 1024);
    }
    srv_stop();
}

/* ------------------------------------------------------------------ */
/* Timeout headers that overflow.                                       */

static void
test_timeout_overflow(void **state)
{
    (void) state;
    srv_start(NULL);
    static const char *const values[] = {
        "9223372036854775807",   /* INT64_MAX ns */
        "9223372036854775806",
        "9223372036854775808",   /* INT64_MAX + 1 */
        "18446744073709551615",  /* UINT64_MAX */
        "18446744073709551616",
        "99999999999999999999999999999999999999",
        "abc", "-1", "-9223372036854775808", "+5", "1e9", "0x10", "12abc",
        "0", "",
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        for (int inl = 0; inl < 2; inl++) {
            char extra[128], req[1024];
            snprintf(extra, sizeof(extra), "Timeout: %s\r\n", values[i]);
            build_request(req, sizeof(req),
                inl ? "Greeter.Inline" : "Greeter.Deadline", extra,
                "{\"name\":\"t\"}");
            raw r;
            raw_rsp rsp;
            assert_int_equal(raw_connect(&r, S.addr), 0);
            assert_int_equal(raw_send_str(&r, req), strlen(req));
            assert_int_equal(raw_read_response(&r, &rsp, 5000), 0);
            assert_int_equal(rsp.status, 200);
            micro_error *e = rsp_error(&rsp);
            if (e != NULL) {
                fprintf(stderr, "Timeout %s: %d %s\n", values[i],
                    (int) e->code, e->detail);
            }
            assert_null(e);
            if (!inl) {
                /* Huge values are "no deadline soon", the others none. */
                long long left = 0;
                bool none = strstr(rsp.body, "\"none\"") != NULL;
                assert_true(none ||
                    sscanf(rsp.body, "{\"left\":%lld}", &left) == 1);
                if (!none && left <= 1000000000LL) {
                    fprintf(stderr, "Timeout %s: %s\n", values[i], rsp.body);
                }
                assert_true(none || left > 1000000000LL);
            }
            raw_close(&r);
        }
    }
    /* The client's own durations saturate as well. */
    micro_call *c = NULL;
    assert_int_equal(call_hello(S.addr, "Greeter.Deadline", "t", INT64_MAX,
                         &c), 0);
    micro_call_free(c);
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = S.addr;
    o.stream_timeout_ms = INT64_MAX;
    micro_stream *s = NULL;
    assert_int_equal(micro_client_stream(g_cli, "greeter", "S.Echo", &o, &s),
        0);
    assert_int_equal(micro_stream_send(s, "{}", 2), 0);
    micro_buf b = {0};
    assert_int_equal(micro_stream_recv(s, &b), 0);
    micro_buf_clear(&b);
    assert_true(micro_stream_remaining_ms(s) > 1000000000LL);
    micro_stream_free(s);
    good_call();
    srv_stop();
}

/* ------------------------------------------------------------------ */
/* Head-of-line blocking.                                               */

typedef struct blocker {
    pthread_t th;
    int rc;
} blocker;

static void *
blocker_main(void *arg)
{
    blocker *b = arg;
    micro_call *c = NULL;
    b->rc = call_hello(S.addr, "Greeter.Block", "b", 30000, &c);
    micro_call_free(c);
    return NULL;
}

static void
test_head_of_line(void **state)
{
    (void) state;
    static const char *const o[] = {"server_workers=2", NULL};
    srv_start(o);
    blocker b[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&b[i].th, NULL, blocker_main, &b[i]),
            0);
    }
    int64_t until = t_now_ms() + 10000;
    while (atomic_load(&g_blocked) < 2 && t_now_ms() < until) {
        sleep_ms(5);
    }
    assert_int_equal(atomic_load(&g_blocked), 2);
    /* Both workers are held. A request whose deadline (300 ms) passes in
     * the queue is answered 408 at its deadline. */
    char req[512];
    build_request(req, sizeof(req), "Greeter.Hello", "Timeout: 300000000\r\n",
        "{\"name\":\"late\"}");
    raw r;
    raw_rsp rsp;
    int64_t t0 = t_now_ms();
    assert_int_equal(raw_connect(&r, S.addr), 0);
    assert_int_equal(raw_send_str(&r, req), strlen(req));
    assert_int_equal(raw_read_response(&r, &rsp, 5000), 0);
    int64_t el = t_now_ms() - t0;
    print_message("  queued 300 ms request answered after %lld ms\n",
        (long long) el);
    micro_error *e = rsp_error(&rsp);
    assert_non_null(e);
    assert_int_equal(e->code, 408);
    micro_error_free(e);
    assert_true(el < 2000);
    assert_int_equal(atomic_load(&g_blocked), 2); /* still held */
    /* The same through the client: an error within 2 s. */
    micro_call *c = NULL;
    t0 = t_now_ms();
    int rc = call_hello(S.addr, "Greeter.Hello", "late", 300, &c);
    el = t_now_ms() - t0;
    assert_true(rc == MICRO_ETIMEDOUT || (rc == MICRO_EREMOTE &&
                                             micro_call_error(c)->code == 408));
    micro_call_free(c);
    assert_true(el < 2000);
    /* The connection that got its 408 takes its next request once the
     * workers are free. */
    atomic_store(&g_release, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(b[i].th, NULL);
        assert_int_equal(b[i].rc, 0);
    }
    build_request(req, sizeof(req), "Greeter.Hello", NULL,
        "{\"name\":\"next\"}");
    assert_int_equal(raw_send_str(&r, req), strlen(req));
    assert_int_equal(raw_read_response(&r, &rsp, 5000), 0);
    assert_string_equal(rsp.body, "{\"msg\":\"Hello next\"}\n");
    raw_close(&r);
    micro_server_stats ss;
    micro_server_get_stats(S.s, &ss);
    assert_true(ss.late >= 1);
    good_call();
    srv_stop();
}

/* ------------------------------------------------------------------ */
/* Wrong but safe.                                                      */

static void
test_pipelined_many(void **state)
{
    (void) state;
    srv_start(NULL);
    enum { N = 40 };
    micro_buf all = {0};
    for (int i = 0; i < N; i++) {
        char body[64], req[512];
        snprintf(body, sizeof(body), "{\"name\":\"p%d\"}", i);
        build_request(req, sizeof(req),
            i % 2 ? "Greeter.Hello" : "Greeter.Inline", NULL, body);
        micro_buf_append_str(&all, req);
    }
    raw r;
    raw_rsp rsp;
    assert_int_equal(raw_connect(&r, S.addr), 0);
    assert_int_equal(raw_send_ms(&r, all.data, all.len, 5000), all.len);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof(want), "{\"msg\":\"Hello p%d\"}\n", i);
        assert_int_equal(raw_read_response(&r, &rsp, 5000), 0);
        assert_int_equal(rsp.status, 200);
        assert_string_equal(rsp.body, want);
    }
    raw_close(&r);
    micro_buf_clear(&all);
    good_call();
    srv_stop();
}

static void
test_space_before_colon(void **state)
{
    (void) state;
    srv_start(NULL);
    static const char *const reqs[] = {
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: " CT_JSON "\r\n"
        "Micro-Endpoint: Greeter.Hello\r\nContent-Length : 12\r\n\r\n"
        "{\"name\":\"x\"}",
        "POST / HTTP/1.1\r\nHost: x\r\nMicro-Endpoint : Greeter.Fail\r\n"
        "Content-Type: " CT_JSON "\r\nContent-Length: 12\r\n\r\n"
        "{\"name\":\"x\"}",
    };
    for (size_t i = 0; i < 2; i++) {
        raw r;
        raw_rsp rsp;
        assert_int_equal(raw_connect(&r, S.addr), 0);
        raw_send_str(&r, reqs[i]);
        int rc = raw_read_response(&r, &rsp, 5000);
        assert_int_equal(rc, 0);
        assert_int_equal(rsp.status, 400);
        assert_true(raw_wait_closed(&r, 5000) >= 0);
        raw_close(&r);
    }
    assert_int_equal(atomic_load(&g_fail_calls), 0);
    good_call();
    srv_stop();
}

static void
test_expect_continue(void **state)
{
    (void) state;
    srv_start(NULL);
    const char body[] = "{\"name\":\"cont\"}";
    char head[512];
    snprintf(head, sizeof(head),
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: " CT_JSON "\r\n"
        "Micro-Endpoint: Greeter.Hello\r\nExpect: 100-continue\r\n"
        "Content-Length: %zu\r\n\r\n",
        sizeof(body) - 1);
    raw r;
    assert_int_equal(raw_connect(&r, S.addr), 0);
    raw_send_str(&r, head);
    /* The interim answer comes before any byte of the body is sent. */
    int64_t until = t_now_ms() + 5000;
    while (strstr(r.buf, "\r\n\r\n") == NULL && t_now_ms() < until) {
        raw_fill(&r, 50);
    }
    assert_int_equal(strcmp(r.buf, "HTTP/1.1 100 Continue\r\n\r\n"), 0);
    r.len = 0;
    r.buf[0] = '\0';
    raw_send_str(&r, body);
    raw_rsp rsp;
    assert_int_equal(raw_read_response(&r, &rsp, 5000), 0);
    assert_int_equal(rsp.status, 200);
    assert_string_equal(rsp.body, "{\"msg\":\"Hello cont\"}\n");
    raw_close(&r);
    good_call();
    srv_stop();
}

static void
test_dial_ports(void **state)
{
    (void) state;
    static const char *const bad[] = {"127.0.0.1:65536", "127.0.0.1:70000",
        "127.0.0.1:4294967297", "127.0.0.1:18446744073709551617",
        "[::1]:65536", ":99999", "127.0.0.1:-1", "127.0.0.1:+80",
        "127.0.0.1:", "127.0.0.1:0x50"};
    micro_msg *req = NULL;
    assert_int_equal(micro_msg_new(&req), 0);
    assert_int_equal(micro_msg_set_body(req, "{}", 2), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        micro_msg *rsp = NULL;
        int sent = 1;
        int rc = micro_transport_roundtrip(g_ctr, bad[i], req, 2000, &rsp,
            &sent);
        if (rc != MICRO_EINVAL) {
            fprintf(stderr, "roundtrip %s: %s\n", bad[i], micro_err_name(rc));
        }
        assert_int_equal(rc, MICRO_EINVAL);
        assert_int_equal(sent, 0);
        assert_null(rsp);
        micro_call_opts o = MICRO_CALL_OPTS_INIT;
        o.address = bad[i];
        o.retries = MICRO_CALL_NO_RETRY;
        micro_call *c = NULL;
        rc = micro_client_call(g_cli, "greeter", "Greeter.Hello", "{}", 2, &o,
            &c);
        assert_int_equal(rc, MICRO_EINVAL);
        micro_call_free(c);
        assert_int_equal(call_async(bad[i], 2000), MICRO_EINVAL);
    }
    micro_msg_free(req);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trailer_no_leak),
        cmocka_unit_test(test_response_splitting),
        cmocka_unit_test(test_pipeline_never_reads),
        cmocka_unit_test(test_header_floods),
        cmocka_unit_test(test_client_hostile_servers),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_connection_cap),
        cmocka_unit_test(test_partial_body_budget),
        cmocka_unit_test(test_timeout_overflow),
        cmocka_unit_test(test_head_of_line),
        cmocka_unit_test(test_pipelined_many),
        cmocka_unit_test(test_space_before_colon),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_dial_ports),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
