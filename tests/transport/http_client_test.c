/* Tests for the http transport client: request bytes, response parsing,
 * the connection pool and failure handling, against a tiny HTTP server
 * that runs on threads inside the test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <http_parser.h>

#include "transport/http_internal.h"

#include "support/http_srv.h"

/* ------------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

static micro__http_cfg
default_cfg(void)
{
    micro__http_cfg cfg;
    micro__http_cfg_load(&cfg, NULL);
    cfg.pool_size = 100;
    cfg.pool_ttl_ms = 60000;
    cfg.dial_timeout_ms = 5000;
    cfg.lim.max_body = (size_t) 4 << 20;
    cfg.lim.max_header = (size_t) 1 << 20;
    return cfg;
}

static micro__http_pool *
pool_with(const micro__http_cfg *cfg)
{
    micro__http_pool *p = NULL;
    assert_int_equal(micro__http_pool_new(&p, cfg), 0);
    assert_non_null(p);
    return p;
}

static micro_msg *
make_req(const char *body)
{
    micro_msg *m = NULL;
    assert_int_equal(micro_msg_new(&m), 0);
    assert_int_equal(micro_msg_set_header(m, "Content-Type", "text/plain"), 0);
    assert_int_equal(
        micro_msg_set_header(m, "Micro-Endpoint", "Greeter.Hello"), 0);
    if (body != NULL) {
        assert_int_equal(micro_msg_set_body(m, body, strlen(body)), 0);
    }
    return m;
}

static void
assert_body(const micro_msg *m, const char *want)
{
    size_t n = 0;
    const void *b = micro_msg_body(m, &n);
    assert_int_equal(n, strlen(want));
    if (n > 0) {
        assert_memory_equal(b, want, n);
    }
}

static int
call(micro__http_pool *p, const char *addr, const char *body,
    int64_t timeout_ms, micro_msg **rsp, int *sent)
{
    micro_msg *req = make_req(body);
    int rc = micro__http_roundtrip(p, addr, req, timeout_ms, rsp, sent);
    micro_msg_free(req);
    return rc;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Log capture: count warn lines from the transport. */
static atomic_int warn_lines;

static void
test_logger(void *arg, micro_log_level lvl, const char *component,
    const char *msg)
{
    (void) arg;
    (void) msg;
    if (lvl == MICRO_LOG_WARN && strcmp(component, "transport.http") == 0) {
        atomic_fetch_add(&warn_lines, 1);
    }
}

/* ------------------------------------------------------------------------
 * Request bytes
 * --------------------------------------------------------------------- */

static void
test_golden_content_length(void **state)
{
    (void) state;
    micro_msg *m = NULL;
    assert_int_equal(micro_msg_new(&m), 0);
    /* Spec §2.8 (A), headers already sorted, with spellings to fix and
     * framing headers to drop. */
    assert_int_equal(micro_msg_set_header(m, "accept", "application/json"), 0);
    assert_int_equal(
        micro_msg_set_header(m, "Content-Type", "application/json"), 0);
    assert_int_equal(micro_msg_set_header(m, "Content-Length", "999"), 0);
    assert_int_equal(micro_msg_set_header(m, "Host", "evil"), 0);
    assert_int_equal(
        micro_msg_set_header(m, "MICRO-ENDPOINT", "Greeter.Hello"), 0);
    assert_int_equal(micro_msg_set_header(m, "Micro-ID", "0"), 0);
    assert_int_equal(
        micro_msg_set_header(m, "micro-method", "Greeter.Hello"), 0);
    assert_int_equal(micro_msg_set_header(m, "Micro-Service", "greeter"), 0);
    assert_int_equal(micro_msg_set_header(m, "Timeout", "5000000000"), 0);
    assert_int_equal(micro_msg_set_header(m, "transfer-encoding", "gzip"), 0);
    assert_int_equal(micro_msg_set_header(m, "Connection", "close"), 0);
    const char *body = "{\"name\":\"John\"}\n";
    assert_int_equal(micro_msg_set_body(m, body, strlen(body)), 0);

    micro_buf out = { 0 };
    assert_int_equal(micro_buf_append(&out, "X", 1), 0); /* appends */
    assert_int_equal(
        micro__h1_write_mucp_request(&out, "192.168.1.10:40123", m), 0);
    const char *want = "X"
                       "POST / HTTP/1.1\r\n"
                       "Host: 192.168.1.10:40123\r\n"
                       "User-Agent: Go-http-client/1.1\r\n"
                       "Content-Length: 16\r\n"
                       "Accept: application/json\r\n"
                       "Content-Type: application/json\r\n"
                       "Micro-Endpoint: Greeter.Hello\r\n"
                       "Micro-Id: 0\r\n"
                       "Micro-Method: Greeter.Hello\r\n"
                       "Micro-Service: greeter\r\n"
                       "Timeout: 5000000000\r\n"
                       "\r\n"
                       "{\"name\":\"John\"}\n";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    micro_buf_clear(&out);
    micro_msg_free(m);
}

static void
test_golden_chunked_empty(void **state)
{
    (void) state;
    micro_msg *m = NULL;
    assert_int_equal(micro_msg_new(&m), 0);
    assert_int_equal(micro_msg_set_header(m, "Accept", "application/json"), 0);
    assert_int_equal(
        micro_msg_set_header(m, "Content-Type", "application/json"), 0);
    assert_int_equal(
        micro_msg_set_header(m, "Micro-Endpoint", "Greeter.Stream"), 0);
    assert_int_equal(micro_msg_set_header(m, "Micro-Error", "EOS"), 0);
    assert_int_equal(micro_msg_set_header(m, "Micro-Id", "7"), 0);
    assert_int_equal(
        micro_msg_set_header(m, "Micro-Method", "Greeter.Stream"), 0);
    assert_int_equal(micro_msg_set_header(m, "Micro-Service", "greeter"), 0);
    assert_int_equal(micro_msg_set_header(m, "micro-stream", "7"), 0);
    micro_buf out = { 0 };
    assert_int_equal(
        micro__h1_write_mucp_request(&out, "192.168.1.10:40123", m), 0);
    const char *want = "POST / HTTP/1.1\r\n"
                       "Host: 192.168.1.10:40123\r\n"
                       "User-Agent: Go-http-client/1.1\r\n"
                       "Transfer-Encoding: chunked\r\n"
                       "Accept: application/json\r\n"
                       "Content-Type: application/json\r\n"
                       "Micro-Endpoint: Greeter.Stream\r\n"
                       "Micro-Error: EOS\r\n"
                       "Micro-Id: 7\r\n"
                       "Micro-Method: Greeter.Stream\r\n"
                       "Micro-Service: greeter\r\n"
                       "Micro-Stream: 7\r\n"
                       "\r\n"
                       "0\r\n\r\n";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    micro_buf_clear(&out);
    micro_msg_free(m);
}

static void
test_golden_user_agent_and_values(void **state)
{
    (void) state;
    micro_msg *m = NULL;
    assert_int_equal(micro_msg_new(&m), 0);
    assert_int_equal(micro_msg_set_header(m, "A.b", "x"), 0);
    assert_int_equal(micro_msg_set_header(m, "user-agent", "cmicro/0.1"), 0);
    /* CR/LF in a value must not split the header (Go replaces them). */
    assert_int_equal(micro_msg_set_header(m, "x-inject", " a\r\nEvil: 1 "), 0);
    assert_int_equal(micro_msg_set_body(m, "b", 1), 0);
    micro_buf out = { 0 };
    assert_int_equal(micro__h1_write_mucp_request(&out, "h:1", m), 0);
    const char *want = "POST / HTTP/1.1\r\n"
                       "Host: h:1\r\n"
                       "User-Agent: cmicro/0.1\r\n"
                       "Content-Length: 1\r\n"
                       "A.b: x\r\n"
                       "X-Inject: a  Evil: 1\r\n"
                       "\r\n"
                       "b";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    micro_buf_clear(&out);

    /* An empty User-Agent drops the line, as in Go. */
    assert_int_equal(micro_msg_set_header(m, "User-Agent", ""), 0);
    assert_int_equal(micro__h1_write_mucp_request(&out, "h:1", m), 0);
    const char *want2 = "POST / HTTP/1.1\r\n"
                        "Host: h:1\r\n"
                        "Content-Length: 1\r\n"
                        "A.b: x\r\n"
                        "X-Inject: a  Evil: 1\r\n"
                        "\r\n"
                        "b";
    assert_int_equal(out.len, strlen(want2));
    assert_memory_equal(out.data, want2, out.len);
    micro_buf_clear(&out);
    micro_msg_free(m);
}

/* The bytes on the wire equal micro__http_write_request's. */
static void
test_wire_matches_writer(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_ECHO, NULL);
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    micro_msg *req = make_req("{\"a\":1}");
    micro_msg *rsp = NULL;
    int sent = 0;
    assert_int_equal(micro__http_roundtrip(p, s->addr, req, 2000, &rsp, &sent),
        0);
    assert_int_equal(sent, 1);
    assert_body(rsp, "{\"a\":1}");
    micro_buf want = { 0 };
    assert_int_equal(micro__h1_write_mucp_request(&want, s->addr, req), 0);
    pthread_mutex_lock(&s->mu);
    assert_int_equal(s->first_req.len, want.len);
    assert_memory_equal(s->first_req.data, want.data, want.len);
    pthread_mutex_unlock(&s->mu);
    micro_buf_clear(&want);
    micro_msg_free(rsp);

    /* Empty body travels chunked and the server sees an empty body. */
    micro_msg *empty = make_req(NULL);
    assert_int_equal(
        micro__http_roundtrip(p, s->addr, empty, 2000, &rsp, &sent), 0);
    assert_body(rsp, "");
    micro_msg_free(rsp);
    micro_msg_free(empty);
    micro_msg_free(req);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

/* ------------------------------------------------------------------------
 * Responses
 * --------------------------------------------------------------------- */

static void
test_reply_content_length(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_CANNED,
        "HTTP/1.1 200 OK\r\n"
        "Content-Length: 5\r\n"
        "Content-Type: text/plain\r\n"
        "Micro-Id: 7\r\n"
        "X-Dup: first\r\n"
        "x-dup: second\r\n"
        "Empty:\r\n"
        "\r\n"
        "hello");
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    micro_msg *rsp = NULL;
    int sent = 0;
    assert_int_equal(call(p, s->addr, "hi", 2000, &rsp, &sent), 0);
    assert_int_equal(sent, 1);
    assert_body(rsp, "hello");
    assert_string_equal(micro_msg_header(rsp, "Content-Type"), "text/plain");
    assert_string_equal(micro_msg_header(rsp, "Content-Length"), "5");
    assert_string_equal(micro_msg_header(rsp, "Micro-Id"), "7");
    assert_string_equal(micro_msg_header(rsp, "X-Dup"), "first");
    assert_string_equal(micro_msg_header(rsp, "Empty"), "");
    assert_int_equal(micro_msg_header_count(rsp), 5);
    const char *k = NULL, *v = NULL;
    assert_int_equal(micro_msg_header_at(rsp, 2, &k, &v), 0);
    assert_string_equal(k, "Micro-Id"); /* keys as received, in order */
    micro_msg_free(rsp);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

static void
test_reply_chunked(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_CANNED,
        "HTTP/1.1 200 OK\r\n"
        "Transfer-Encoding: chunked\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "5\r\nhello\r\n"
        "6\r\n world\r\n"
        "0\r\n\r\n");
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    for (int i = 0; i < 3; i++) {
        micro_msg *rsp = NULL;
        int sent = 0;
        assert_int_equal(call(p, s->addr, "x", 2000, &rsp, &sent), 0);
        assert_body(rsp, "hello world");
        micro_msg_free(rsp);
    }
    assert_int_equal(atomic_load(&s->accepts), 1); /* kept alive */
    assert_int_equal(atomic_load(&s->requests), 3);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

/* No length and not chunked: the body runs to EOF. */
static void
test_reply_until_eof(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_CANNED_CLOSE,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end");
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    for (int i = 0; i < 2; i++) {
        micro_msg *rsp = NULL;
        int sent = 0;
        assert_int_equal(call(p, s->addr, "x", 2000, &rsp, &sent), 0);
        assert_body(rsp, "to the end");
        micro_msg_free(rsp);
    }
    assert_int_equal(atomic_load(&s->accepts), 2);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

/* Chunked trailers stay out of the header map, as in Go. */
static void
test_reply_chunked_trailer(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_CANNED,
        "HTTP/1.1 200 OK\r\n"
        "Transfer-Encoding: chunked\r\n"
        "Trailer: X-Sum\r\n"
        "\r\n"
        "3\r\nabc\r\n"
        "0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n");
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    micro_msg *rsp = NULL;
    int sent = 0;
    assert_int_equal(call(p, s->addr, "x", 2000, &rsp, &sent), 0);
    assert_body(rsp, "abc");
    assert_null(micro_msg_header(rsp, "X-Sum"));
    assert_null(micro_msg_header(rsp, "X-Other"));
    assert_string_equal(micro_msg_header(rsp, "Trailer"), "X-Sum");
    micro_msg_free(rsp);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

/* "[::1]:port" dials IPv6 (skipped when the host has no IPv6 loopback). */
static void
test_dial_ipv6(void **state)
{
    (void) state;
    t_srv *s = t_srv_start_family(AF_INET6, T_SRV_ECHO, NULL);
    if (s == NULL) {
        print_message("skipped: no IPv6 loopback (::1) here\n");
        skip();
    }
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    for (int i = 0; i < 2; i++) {
        micro_msg *rsp = NULL;
        int sent = 0;
        assert_int_equal(call(p, s->addr, "six", 2000, &rsp, &sent), 0);
        assert_body(rsp, "six");
        micro_msg_free(rsp);
    }
    assert_int_equal(atomic_load(&s->accepts), 1);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

/* ------------------------------------------------------------------------
 * Pooling
 * --------------------------------------------------------------------- */

static void
test_reuse(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_ECHO, NULL);
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    for (int i = 0; i < 10; i++) {
        char body[32];
        snprintf(body, sizeof(body), "call %d", i);
        micro_msg *rsp = NULL;
        int sent = 0;
        assert_int_equal(call(p, s->addr, body, 2000, &rsp, &sent), 0);
        assert_int_equal(sent, 1);
        assert_body(rsp, body);
        micro_msg_free(rsp);
    }
    assert_int_equal(atomic_load(&s->accepts), 1);
    assert_int_equal(atomic_load(&s->requests), 10);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

static void
test_micro_error_not_reused(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_CANNED,
        "HTTP/1.1 200 OK\r\n"
        "Content-Length: 0\r\n"
        "Micro-Error: {\"id\":\"greeter\",\"code\":400}\r\n"
        "\r\n");
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    for (int i = 0; i < 3; i++) {
        micro_msg *rsp = NULL;
        int sent = 0;
        /* The exchange itself succeeded; the error is the caller's. */
        assert_int_equal(call(p, s->addr, "x", 2000, &rsp, &sent), 0);
        assert_string_equal(micro_msg_header(rsp, "Micro-Error"),
            "{\"id\":\"greeter\",\"code\":400}");
        assert_body(rsp, "");
        micro_msg_free(rsp);
    }
    assert_int_equal(atomic_load(&s->accepts), 3);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

static void
test_connection_close_not_reused(void **state)
{
    (void) state;
    /* The server says close (but keeps the socket open). */
    t_srv *s = t_srv_start(T_SRV_CANNED,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    for (int i = 0; i < 2; i++) {
        micro_msg *rsp = NULL;
        int sent = 0;
        assert_int_equal(call(p, s->addr, "x", 2000, &rsp, &sent), 0);
        assert_body(rsp, "ok");
        micro_msg_free(rsp);
    }
    assert_int_equal(atomic_load(&s->accepts), 2);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

static void
test_trailing_bytes_not_reused(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_CANNED,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno");
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    for (int i = 0; i < 2; i++) {
        micro_msg *rsp = NULL;
        int sent = 0;
        assert_int_equal(call(p, s->addr, "x", 2000, &rsp, &sent), 0);
        assert_body(rsp, "ok");
        micro_msg_free(rsp);
    }
    assert_int_equal(atomic_load(&s->accepts), 2);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

static void
test_ttl_expiry(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_ECHO, NULL);
    micro__http_cfg cfg = default_cfg();
    cfg.pool_ttl_ms = 50;
    micro__http_pool *p = pool_with(&cfg);
    micro_msg *rsp = NULL;
    int sent = 0;
    assert_int_equal(call(p, s->addr, "a", 2000, &rsp, &sent), 0);
    micro_msg_free(rsp);
    assert_int_equal(call(p, s->addr, "b", 2000, &rsp, &sent), 0);
    micro_msg_free(rsp);
    assert_int_equal(atomic_load(&s->accepts), 1); /* still young */
    sleep_ms(120);
    assert_int_equal(call(p, s->addr, "c", 2000, &rsp, &sent), 0);
    assert_body(rsp, "c");
    micro_msg_free(rsp);
    assert_int_equal(atomic_load(&s->accepts), 2);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

static void
test_pool_size_zero(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_ECHO, NULL);
    micro__http_cfg cfg = default_cfg();
    cfg.pool_size = 0;
    micro__http_pool *p = pool_with(&cfg);
    for (int i = 0; i < 3; i++) {
        micro_msg *rsp = NULL;
        int sent = 0;
        assert_int_equal(call(p, s->addr, "z", 2000, &rsp, &sent), 0);
        micro_msg_free(rsp);
    }
    assert_int_equal(atomic_load(&s->accepts), 3);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

/* ------------------------------------------------------------------------
 * Failures
 * --------------------------------------------------------------------- */

static void
test_timeout(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_SILENT, NULL);
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    micro_msg *rsp = NULL;
    int sent = 0;
    int64_t t0 = micro_now_ms();
    assert_int_equal(call(p, s->addr, "x", 300, &rsp, &sent), MICRO_ETIMEDOUT);
    int64_t el = micro_now_ms() - t0;
    assert_true(el >= 295);
    assert_true(el <= 500);
    assert_int_equal(sent, 1);
    assert_null(rsp);
    /* The timed-out connection is not reused. */
    assert_int_equal(call(p, s->addr, "y", 100, &rsp, &sent), MICRO_ETIMEDOUT);
    assert_int_equal(atomic_load(&s->accepts), 2);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

/* The first read of a response blocks in recv() under SO_RCVTIMEO, which
 * a pooled connection keeps between calls: each call must still end at
 * its own deadline, whether the timeout is the one the connection was
 * armed with or a different one. */
static void
test_timeout_on_reused_connection(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_ECHO_HUSH, NULL);
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    micro_msg *rsp = NULL;
    int sent = 0;
    assert_int_equal(call(p, s->addr, "a", 300, &rsp, &sent), 0);
    assert_body(rsp, "a");
    micro_msg_free(rsp);
    rsp = NULL;
    int64_t t0 = micro_now_ms();
    assert_int_equal(
        call(p, s->addr, "hush", 300, &rsp, &sent), MICRO_ETIMEDOUT);
    int64_t el = micro_now_ms() - t0;
    assert_true(el >= 290 && el <= 500);
    assert_int_equal(atomic_load(&s->accepts), 1); /* it was reused */
    assert_int_equal(call(p, s->addr, "b", 5000, &rsp, &sent), 0);
    assert_body(rsp, "b");
    micro_msg_free(rsp);
    rsp = NULL;
    t0 = micro_now_ms();
    assert_int_equal(
        call(p, s->addr, "hush", 200, &rsp, &sent), MICRO_ETIMEDOUT);
    el = micro_now_ms() - t0;
    assert_true(el >= 190 && el <= 400);
    assert_int_equal(atomic_load(&s->accepts), 2);
    assert_null(rsp);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

static void
test_refused(void **state)
{
    (void) state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &sl), 0);
    close(fd); /* bound, never listened: the port refuses */
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned) ntohs(sa.sin_port));
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    micro_msg *rsp = NULL;
    int sent = 7;
    assert_int_equal(call(p, addr, "x", 2000, &rsp, &sent), MICRO_ECONNREFUSED);
    assert_int_equal(sent, 0);
    assert_null(rsp);
    micro__http_pool_free(p);
}

static void
test_bad_address(void **state)
{
    (void) state;
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    static const char *bad[] = { "nonsense", "127.0.0.1", "127.0.0.1:",
        "::1:80", "[::1:80" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        micro_msg *rsp = NULL;
        int sent = 7;
        assert_int_equal(call(p, bad[i], "x", 500, &rsp, &sent), MICRO_EINVAL);
        assert_int_equal(sent, 0);
    }
    micro_msg *req = make_req("x");
    micro_msg *rsp = NULL;
    assert_int_equal(micro__http_roundtrip(NULL, "a:1", req, 100, &rsp, NULL),
        MICRO_EINVAL);
    assert_int_equal(micro__http_roundtrip(p, "a:1", req, 100, NULL, NULL),
        MICRO_EINVAL);
    micro_msg_free(req);
    micro__http_pool_free(p);
    micro__http_pool_free(NULL);
}

/* "localhost" goes through the resolver. */
static void
test_dial_by_name(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_ECHO, NULL);
    const char *port = strrchr(s->addr, ':');
    char addr[64];
    snprintf(addr, sizeof(addr), "localhost%s", port);
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    micro_msg *rsp = NULL;
    int sent = 0;
    assert_int_equal(call(p, addr, "named", 2000, &rsp, &sent), 0);
    assert_body(rsp, "named");
    micro_msg_free(rsp);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

/* The server closes each connection after answering; by the next call the
 * pooled connection reads EOF and the call re-dials. */
static void
test_stale_idle_connection(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_ECHO_CLOSE, NULL);
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    for (int i = 0; i < 3; i++) {
        micro_msg *rsp = NULL;
        int sent = 0;
        assert_int_equal(call(p, s->addr, "again", 2000, &rsp, &sent), 0);
        assert_body(rsp, "again");
        micro_msg_free(rsp);
        sleep_ms(30);
    }
    assert_int_equal(atomic_load(&s->accepts), 3);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

/* The peer closes a reused connection as the request arrives, without an
 * answer: the call is resent once on a fresh connection. */
static void
test_stale_retry_on_reuse(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_DROP_REUSE, NULL);
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    micro_msg *rsp = NULL;
    int sent = 0;
    assert_int_equal(call(p, s->addr, "one", 2000, &rsp, &sent), 0);
    micro_msg_free(rsp);
    assert_int_equal(call(p, s->addr, "two", 2000, &rsp, &sent), 0);
    assert_int_equal(sent, 1);
    assert_body(rsp, "two");
    micro_msg_free(rsp);
    assert_int_equal(atomic_load(&s->accepts), 2);
    assert_int_equal(atomic_load(&s->requests), 3);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

/* A fresh connection that closes without answering is not retried. */
static void
test_fresh_close_not_retried(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_CLOSE_NOW, NULL);
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    micro_msg *rsp = NULL;
    int sent = 0;
    int rc = call(p, s->addr, "x", 2000, &rsp, &sent);
    assert_true(rc == MICRO_ECONNRESET || rc == MICRO_EPIPE);
    assert_int_equal(sent, 1);
    assert_null(rsp);
    assert_int_equal(atomic_load(&s->accepts), 1);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

static void
test_oversized(void **state)
{
    (void) state;
    micro__http_cfg cfg = default_cfg();
    cfg.lim.max_body = 8;
    cfg.lim.max_header = 256;
    micro__http_pool *p = pool_with(&cfg);
    static const char *replies[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n123456789",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: "
        "................................................................"
        "................................................................"
        "................................................................"
        "................................................................"
        "\r\n\r\nok",
    };
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        t_srv *s = t_srv_start(T_SRV_CANNED, replies[i]);
        micro_msg *rsp = NULL;
        int sent = 0;
        assert_int_equal(call(p, s->addr, "x", 2000, &rsp, &sent),
            MICRO_EMSGSIZE);
        assert_null(rsp);
        t_srv_stop(s);
    }
    /* Exactly at the limit is fine. */
    t_srv *s = t_srv_start(
        T_SRV_CANNED, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n12345678");
    micro_msg *rsp = NULL;
    int sent = 0;
    assert_int_equal(call(p, s->addr, "x", 2000, &rsp, &sent), 0);
    assert_body(rsp, "12345678");
    micro_msg_free(rsp);
    t_srv_stop(s);
    micro__http_pool_free(p);
}

static void
test_non_200(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_CANNED,
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy");
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    int before = atomic_load(&warn_lines);
    micro_msg *rsp = NULL;
    int sent = 0;
    assert_int_equal(call(p, s->addr, "x", 2000, &rsp, &sent), MICRO_EPROTO);
    assert_null(rsp);
    assert_int_equal(atomic_load(&warn_lines), before + 1);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

static void
test_garbage(void **state)
{
    (void) state;
    static const char *replies[] = {
        "this is not http at all\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        t_srv *s = t_srv_start(T_SRV_CANNED, replies[i]);
        micro_msg *rsp = NULL;
        int sent = 0;
        assert_int_equal(
            call(p, s->addr, "x", 2000, &rsp, &sent), MICRO_EPROTO);
        assert_null(rsp);
        t_srv_stop(s);
    }
    /* A response cut short by EOF. */
    t_srv *s = t_srv_start(
        T_SRV_CANNED_CLOSE, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    micro_msg *rsp = NULL;
    int sent = 0;
    assert_int_equal(
        call(p, s->addr, "x", 2000, &rsp, &sent), MICRO_ECONNRESET);
    t_srv_stop(s);
    micro__http_pool_free(p);
}

/* ------------------------------------------------------------------------
 * Concurrency
 * --------------------------------------------------------------------- */

#define CC_THREADS 16
#define CC_CALLS 200

typedef struct cc_arg {
    micro__http_pool *p;
    const char *addr;
    int id;
    int ok;
    int bad;
} cc_arg;

static void *
cc_main(void *arg)
{
    cc_arg *a = arg;
    for (int i = 0; i < CC_CALLS; i++) {
        char body[64];
        int bl = snprintf(body, sizeof(body), "thread %d call %d", a->id, i);
        micro_msg *req = NULL;
        if (micro_msg_new(&req) != 0 ||
            micro_msg_set_header(req, "Micro-Endpoint", "Echo.Call") != 0 ||
            micro_msg_set_body(req, body, (size_t) bl) != 0) {
            a->bad++;
            micro_msg_free(req);
            continue;
        }
        micro_msg *rsp = NULL;
        int sent = 0;
        int rc = micro__http_roundtrip(a->p, a->addr, req, 5000, &rsp, &sent);
        size_t n = 0;
        const void *b = rc == 0 ? micro_msg_body(rsp, &n) : NULL;
        if (rc == 0 && n == (size_t) bl && memcmp(b, body, n) == 0) {
            a->ok++;
        } else {
            a->bad++;
        }
        micro_msg_free(rsp);
        micro_msg_free(req);
    }
    return NULL;
}

static void
test_concurrent(void **state)
{
    (void) state;
    t_srv *s = t_srv_start(T_SRV_ECHO, NULL);
    micro__http_cfg cfg = default_cfg();
    micro__http_pool *p = pool_with(&cfg);
    pthread_t th[CC_THREADS];
    cc_arg args[CC_THREADS];
    for (int i = 0; i < CC_THREADS; i++) {
        args[i] = (cc_arg) { p, s->addr, i, 0, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, cc_main, &args[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < CC_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += args[i].ok;
        assert_int_equal(args[i].bad, 0);
    }
    assert_int_equal(ok, CC_THREADS * CC_CALLS);
    assert_int_equal(atomic_load(&s->requests), CC_THREADS * CC_CALLS);
    /* A connection serves one call at a time, and at most CC_THREADS calls
     * run at once. */
    assert_true(atomic_load(&s->accepts) <= CC_THREADS);
    micro__http_pool_free(p);
    t_srv_stop(s);
}

int
main(void)
{
    micro_log_set_logger(test_logger, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_content_length),
        cmocka_unit_test(test_golden_chunked_empty),
        cmocka_unit_test(test_golden_user_agent_and_values),
        cmocka_unit_test(test_wire_matches_writer),
        cmocka_unit_test(test_reply_content_length),
        cmocka_unit_test(test_reply_chunked),
        cmocka_unit_test(test_reply_until_eof),
        cmocka_unit_test(test_reply_chunked_trailer),
        cmocka_unit_test(test_dial_ipv6),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_micro_error_not_reused),
        cmocka_unit_test(test_connection_close_not_reused),
        cmocka_unit_test(test_trailing_bytes_not_reused),
        cmocka_unit_test(test_ttl_expiry),
        cmocka_unit_test(test_pool_size_zero),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_timeout_on_reused_connection),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_bad_address),
        cmocka_unit_test(test_dial_by_name),
        cmocka_unit_test(test_stale_idle_connection),
        cmocka_unit_test(test_stale_retry_on_reuse),
        cmocka_unit_test(test_fresh_close_not_retried),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_non_200),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
