/* The general HTTP/1.1 server (src/http/server.c) from raw sockets:
 * pipelined requests answered in order, Expect: 100-continue, trailers
 * dropped (never carried into the next request), 400 / 413 / 431, a
 * chunked answer, HEAD, an answer given before the body (then a close),
 * and the connection cap. The broker's hostile-peer test
 * (tests/broker/http_test.c) covers the rest through the broker. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/loop_internal.h"
#include "http/server.h"
#include "support/support.h"

static micro_loop *loop;
static micro__http_server *srv;
static char addr[80];
static atomic_int leaked; /* requests that carried a trailer's field */

static int
on_head(void *arg, micro__http_req *r)
{
    (void) arg;
    if (strcmp(micro__http_req_target(r), "/early") == 0) {
        micro__http_respond(r, 403, NULL, NULL, "no", 2);
    }
    return 0;
}

static void
on_request(void *arg, micro__http_req *r)
{
    (void) arg;
    micro_msg *m = micro__http_req_headers(r);
    if (micro_msg_header(m, "X-Trailer") != NULL) {
        atomic_fetch_add(&leaked, 1);
    }
    const char *t = micro__http_req_target(r);
    if (strcmp(t, "/chunked") == 0) {
        micro__http_respond_start(r, 200, NULL, NULL);
        micro__http_respond_chunk(r, "ab", 2);
        micro__http_respond_chunk(r, "cd", 2);
        micro__http_respond_end(r);
        return;
    }
    /* Answer with the target, so that the order shows. */
    micro__http_respond(r, 200, NULL, NULL, t, strlen(t));
}

static const micro__http_server_cbs cbs = {
    .on_head = on_head,
    .on_request = on_request,
};

static int
do_new(void *arg)
{
    (void) arg;
    micro__http_server_cfg cfg = {
        .lim = {.max_header = 4096, .max_fields = 20, .max_body = 1024},
        .max_conns = 4,
    };
    int rc = micro__http_server_new(&srv, loop, "127.0.0.1:0", &cfg, &cbs,
        NULL);
    if (rc == 0) {
        snprintf(addr, sizeof(addr), "%s", micro__http_server_address(srv));
    }
    return rc;
}

static int
do_close(void *arg)
{
    (void) arg;
    micro__http_server_close(srv);
    return 0;
}

static int
setup(void **state)
{
    (void) state;
    assert_int_equal(micro_loop_new(&loop), 0);
    assert_int_equal(micro__loop_call(loop, do_new, NULL), 0);
    return 0;
}

static int
teardown(void **state)
{
    (void) state;
    micro__loop_call(loop, do_close, NULL);
    micro_loop_free(loop);
    return 0;
}

static int
dial(void)
{
    char host[80];
    snprintf(host, sizeof(host), "%s", addr);
    char *colon = strrchr(host, ':');
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET,
        .sin_port = htons((uint16_t) strtol(colon + 1, NULL, 10))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    return fd;
}

/* Send req, read until needle (or close / 5 s). */
static void
exchange(int fd, const char *req, const char *needle, char *out, size_t cap)
{
    if (req != NULL) {
        assert_true(send(fd, req, strlen(req), MSG_NOSIGNAL) ==
            (ssize_t) strlen(req));
    }
    size_t len = 0;
    out[0] = '\0';
    int64_t until = t_now_ms() + 5000;
    while (t_now_ms() < until && strstr(out, needle) == NULL) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0) {
            continue;
        }
        ssize_t r = recv(fd, out + len, cap - 1 - len, 0);
        if (r <= 0) {
            break;
        }
        len += (size_t) r;
        out[len] = '\0';
    }
}

static void
test_pipelined_in_order(void **state)
{
    (void) state;
    int fd = dial();
    char out[4096];
    exchange(fd,
        "GET /1 HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
        "\r\n\r\n/3", out, sizeof(out));
    char *a = strstr(out, "\r\n\r\n/1");
    char *b = strstr(out, "\r\n\r\n/2");
    char *c = strstr(out, "\r\n\r\n/3");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    close(fd);
}

static void
test_trailer_dropped(void **state)
{
    (void) state;
    int fd = dial();
    char out[4096];
    exchange(fd,
        "POST /t1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"
        "GET /t2 HTTP/1.1\r\nHost: x\r\n\r\n",
        "\r\n\r\n/t2", out, sizeof(out));
    assert_non_null(strstr(out, "/t1"));
    assert_non_null(strstr(out, "/t2"));
    assert_int_equal(atomic_load(&leaked), 0);
    close(fd);
}

static void
test_expect_continue(void **state)
{
    (void) state;
    int fd = dial();
    char out[4096];
    exchange(fd,
        "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
        "Expect: 100-continue\r\n\r\n",
        "100 Continue", out, sizeof(out));
    assert_non_null(strstr(out, "HTTP/1.1 100 Continue\r\n\r\n"));
    exchange(fd, "ok", "\r\n\r\n/c", out, sizeof(out));
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    close(fd);
    /* Too large for the body limit: no 100, a 413. */
    fd = dial();
    exchange(fd,
        "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
        "Expect: 100-continue\r\n\r\n",
        "413", out, sizeof(out));
    assert_null(strstr(out, "100 Continue"));
    assert_non_null(strstr(out, "413"));
    close(fd);
}

static void
test_rejections(void **state)
{
    (void) state;
    char out[4096];
    int fd = dial();
    exchange(fd, "garbage\r\n\r\n", "400", out, sizeof(out));
    assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request"));
    close(fd);
    fd = dial();
    micro_buf req = {0};
    micro_buf_append_str(&req, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 30; i++) {
        micro_buf_append_str(&req, "X-A: b\r\n");
    }
    micro_buf_append_str(&req, "\r\n");
    micro_buf_append(&req, "", 1);
    exchange(fd, (const char *) req.data, "431", out, sizeof(out));
    assert_non_null(strstr(out, "431 Request Header Fields Too Large"));
    micro_buf_clear(&req);
    close(fd);
    fd = dial();
    exchange(fd, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999\r\n\r\n",
        "413", out, sizeof(out));
    assert_non_null(strstr(out, "413"));
    close(fd);
    micro__http_server_stats st;
    micro__http_server_stats_get(srv, &st);
    assert_true(st.bad >= 1 && st.header_too_large >= 1 && st.too_large >= 1);
}

static void
test_chunked_head_early(void **state)
{
    (void) state;
    char out[4096];
    int fd = dial();
    exchange(fd, "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n", "0\r\n\r\n", out,
        sizeof(out));
    assert_non_null(strstr(out, "Transfer-Encoding: chunked"));
    assert_non_null(strstr(out, "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"));
    exchange(fd, "HEAD /hd HTTP/1.1\r\nHost: x\r\n\r\n", "\r\n\r\n", out,
        sizeof(out));
    assert_non_null(strstr(out, "Content-Length: 3"));
    assert_null(strstr(out, "/hd"));
    close(fd);
    /* Answered from on_head: the body is not read, the connection ends. */
    fd = dial();
    exchange(fd, "POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n",
        "no", out, sizeof(out));
    assert_non_null(strstr(out, "403"));
    assert_non_null(strstr(out, "Connection: close"));
    close(fd);
}

static void
test_cap_evicts_idle(void **state)
{
    (void) state;
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = dial();
    }
    char out[1024];
    exchange(fds[5], "GET /last HTTP/1.1\r\nHost: x\r\n\r\n", "/last", out,
        sizeof(out));
    assert_non_null(strstr(out, "/last"));
    micro__http_server_stats st;
    micro__http_server_stats_get(srv, &st);
    assert_true(st.evicted >= 2);
    assert_true(st.conns <= 4);
    for (int i = 0; i < 6; i++) {
        close(fds[i]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_trailer_dropped, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_head_early, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_cap_evicts_idle, setup,
            teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
