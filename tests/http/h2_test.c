/*
 * HTTP/2 misuse against the gRPC server (--server=grpc, src/http/h2.c):
 * 10,000 streams on one connection, streams over the concurrency limit,
 * a RST_STREAM flood, a peer that never reads (flow control bounds what
 * it can make the server hold), and malformed paths, headers and message
 * framing. The hostile peer writes frames by hand (HPACK from nghttp2);
 * the well-behaved one is an nghttp2 client session. After each abuse a
 * fresh connection must still be served.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include <cmicro/micro.h>

#include "support/support.h"

/* --- the server --------------------------------------------------------- */

static int
h_hello(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t n = 0;
    const void *b = micro_request_body(req, &n);
    return micro_response_set_body(rsp, b, n);
}

#include <pthread.h>

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_in, gate_open;

/* Waits until the test opens the gate. */
static int
h_gate(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) arg;
    pthread_mutex_lock(&gate_mu);
    gate_in = 1;
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

typedef struct fx {
    micro_loop *loop;
    micro_transport *tr;
    micro_server *srv;
    micro_options *opts;
    char host[64];
    int port;
} fx;

static const char *fx_keepalive; /* server_grpc_keepalive_time, or NULL */

static fx *
fx_new(void)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(micro_options_new(&f->opts), 0);
    if (fx_keepalive != NULL) {
        assert_int_equal(micro_options_set_str(f->opts,
                             "server_grpc_keepalive_time", fx_keepalive), 0);
        assert_int_equal(micro_options_set_str(f->opts,
                             "server_grpc_keepalive_timeout", fx_keepalive),
            0);
    }
    assert_int_equal(micro_options_set_str(f->opts, "server_address",
                         "127.0.0.1:0"), 0);
    assert_int_equal(micro_loop_new(&f->loop), 0);
    assert_int_equal(micro_transport_new_by_name(&f->tr, "http", f->loop,
                         f->opts), 0);
    assert_int_equal(micro_server_new_with_ops(&f->srv, &micro_server_grpc_ops,
                         f->loop, f->tr, f->opts), 0);
    micro_handler_desc d = {.size = sizeof(d), .endpoint = "G.Hello",
        .fn = h_hello};
    assert_int_equal(micro_server_handle(f->srv, &d), 0);
    micro_handler_desc g = {.size = sizeof(g), .endpoint = "G.Gate",
        .fn = h_gate};
    assert_int_equal(micro_server_handle(f->srv, &g), 0);
    micro_stream_handler e = {.size = sizeof(e), .endpoint = "G.Echo",
        .on_msg = echo_msg};
    assert_int_equal(micro_server_handle_stream(f->srv, &e), 0);
    assert_int_equal(micro_server_start(f->srv), 0);
    const char *a = micro_server_address(f->srv);
    const char *colon = strrchr(a, ':');
    assert_non_null(colon);
    snprintf(f->host, sizeof(f->host), "%.*s", (int) (colon - a), a);
    f->port = (int) strtol(colon + 1, NULL, 10);
    return f;
}

static void
fx_free(fx *f)
{
    micro_server_stop(f->srv, 5000);
    micro_server_free(f->srv);
    micro_transport_free(f->tr);
    micro_loop_free(f->loop);
    micro_options_free(f->opts);
    free(f);
}

static int
dial(fx *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
        .sin_port = htons((uint16_t) f->port)};
    inet_pton(AF_INET, f->host, &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* false when the peer has closed the connection */
static bool
write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0 && (errno == EPIPE || errno == ECONNRESET)) {
            return false;
        }
        assert_true(k > 0);
        c += k;
        n -= (size_t) k;
    }
    return true;
}

/* --- a hand-written peer ------------------------------------------------ */

typedef struct raw {
    int fd;
    nghttp2_hd_deflater *def;
    nghttp2_hd_inflater *inf;
    uint8_t in[1 << 16];
    size_t inlen;
    bool closed;
    bool write_failed; /* the server closed on us */
    bool mute_pings;   /* do not answer PINGs */
} raw;

static void
frame(raw *r, uint8_t type, uint8_t flags, uint32_t sid, const void *p,
    size_t n)
{
    uint8_t h[9] = {(uint8_t) (n >> 16), (uint8_t) (n >> 8), (uint8_t) n,
        type, flags, (uint8_t) (sid >> 24), (uint8_t) (sid >> 16),
        (uint8_t) (sid >> 8), (uint8_t) sid};
    if (r->write_failed || !write_all(r->fd, h, 9) ||
        (n > 0 && !write_all(r->fd, p, n))) {
        r->write_failed = true;
    }
}

static void
raw_open(raw *r, fx *f)
{
    memset(r, 0, sizeof(*r));
    r->fd = dial(f);
    assert_int_equal(nghttp2_hd_deflate_new(&r->def, 4096), 0);
    assert_int_equal(nghttp2_hd_inflate_new(&r->inf), 0);
    assert_true(write_all(r->fd, NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN));
    frame(r, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
}

static void
raw_close(raw *r)
{
    close(r->fd);
    nghttp2_hd_deflate_del(r->def);
    nghttp2_hd_inflate_del(r->inf);
}

#define NV(n, v)                                                               \
    {                                                                          \
        (uint8_t *) (n), (uint8_t *) (v), sizeof(n) - 1, strlen(v),            \
            NGHTTP2_NV_FLAG_NONE                                               \
    }

/* HEADERS for a request (END_HEADERS; END_STREAM when end). */
static void
raw_request(raw *r, uint32_t sid, const char *method, const char *path,
    const char *ct, bool end)
{
    nghttp2_nv nv[] = {NV(":method", method), NV(":scheme", "http"),
        NV(":path", path), NV(":authority", "x"), NV("content-type", ct),
        NV("te", "trailers")};
    uint8_t buf[4096];
    ssize_t n = nghttp2_hd_deflate_hd(r->def, buf, sizeof(buf), nv, 6);
    assert_true(n > 0);
    frame(r, NGHTTP2_HEADERS,
        NGHTTP2_FLAG_END_HEADERS | (end ? NGHTTP2_FLAG_END_STREAM : 0), sid,
        buf, (size_t) n);
}

/* One DATA frame carrying a gRPC message header that says len, followed
 * by body (n bytes). */
static void
raw_message(raw *r, uint32_t sid, uint8_t flag, uint32_t len,
    const void *body, size_t n, bool end)
{
    uint8_t *p = malloc(5 + n);
    assert_non_null(p);
    p[0] = flag;
    p[1] = (uint8_t) (len >> 24);
    p[2] = (uint8_t) (len >> 16);
    p[3] = (uint8_t) (len >> 8);
    p[4] = (uint8_t) len;
    memcpy(p + 5, body, n);
    frame(r, NGHTTP2_DATA, end ? NGHTTP2_FLAG_END_STREAM : 0, sid, p, 5 + n);
    free(p);
}

typedef struct rframe {
    uint8_t type, flags;
    uint32_t sid;
    uint8_t payload[1 << 16];
    size_t len;
} rframe;

/* Read one frame (within 20 s); false when the connection closed. */
static bool
raw_read(raw *r, rframe *fr)
{
    for (;;) {
        if (r->inlen >= 9) {
            size_t len = ((size_t) r->in[0] << 16) | ((size_t) r->in[1] << 8) |
                r->in[2];
            assert_true(len <= sizeof(fr->payload));
            if (r->inlen >= 9 + len) {
                fr->type = r->in[3];
                fr->flags = r->in[4];
                fr->sid = (((uint32_t) r->in[5] & 0x7f) << 24) |
                    ((uint32_t) r->in[6] << 16) | ((uint32_t) r->in[7] << 8) |
                    r->in[8];
                fr->len = len;
                memcpy(fr->payload, r->in + 9, len);
                memmove(r->in, r->in + 9 + len, r->inlen - 9 - len);
                r->inlen -= 9 + len;
                if (fr->type == NGHTTP2_SETTINGS &&
                    !(fr->flags & NGHTTP2_FLAG_ACK)) {
                    frame(r, NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, NULL, 0);
                }
                if (fr->type == NGHTTP2_PING && !r->mute_pings &&
                    !(fr->flags & NGHTTP2_FLAG_ACK)) {
                    frame(r, NGHTTP2_PING, NGHTTP2_FLAG_ACK, 0, fr->payload,
                        fr->len);
                }
                return true;
            }
        }
        if (r->closed) {
            return false;
        }
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        int pr = poll(&p, 1, 20000);
        assert_true(pr > 0); /* the server answers within 20 s */
        ssize_t k = read(r->fd, r->in + r->inlen, sizeof(r->in) - r->inlen);
        if (k <= 0) {
            r->closed = true;
            continue;
        }
        r->inlen += (size_t) k;
    }
}

/* Decode a HEADERS payload; value of name (copied) or "". */
static void
hdr_value(raw *r, const rframe *fr, const char *name, char *out, size_t cap)
{
    const uint8_t *in = fr->payload;
    size_t inlen = fr->len;
    if (fr->flags & NGHTTP2_FLAG_PRIORITY) {
        in += 5;
        inlen -= 5;
    }
    out[0] = '\0';
    for (;;) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t k = nghttp2_hd_inflate_hd2(r->inf, &nv, &fl, in, inlen, 1);
        assert_true(k >= 0);
        in += k;
        inlen -= (size_t) k;
        if (fl & NGHTTP2_HD_INFLATE_EMIT) {
            if (nv.namelen == strlen(name) &&
                memcmp(nv.name, name, nv.namelen) == 0) {
                snprintf(out, cap, "%.*s", (int) nv.valuelen, nv.value);
            }
        }
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(r->inf);
            break;
        }
        if (inlen == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT)) {
            break;
        }
    }
}

/* Read until stream sid's HEADERS carry name; its value in out. Other
 * HEADERS frames are decoded too (HPACK state). */
static void
raw_wait_header(raw *r, uint32_t sid, const char *name, char *out,
    size_t cap)
{
    rframe *fr = malloc(sizeof(*fr));
    assert_non_null(fr);
    out[0] = '\0';
    while (out[0] == '\0') {
        assert_true(raw_read(r, fr));
        if (fr->type == NGHTTP2_HEADERS) {
            char v[256];
            hdr_value(r, fr, name, v, sizeof(v));
            if (fr->sid == sid && v[0] != '\0') {
                size_t l = strlen(v) < cap - 1 ? strlen(v) : cap - 1;
                memcpy(out, v, l);
                out[l] = '\0';
            }
        }
    }
    free(fr);
}

/* --- a well-behaved peer: nghttp2's client session ------------------------ */

typedef struct cl {
    int fd;
    nghttp2_session *s;
    int done, ok;
    size_t data_recv;
    bool consume;  /* acknowledge received DATA */
    uint8_t *src;  /* bytes for the one streaming request */
    size_t srclen, srcoff;
} cl;

static ssize_t
cl_send(nghttp2_session *s, const uint8_t *d, size_t n, int flags, void *u)
{
    (void) s;
    (void) flags;
    cl *c = u;
    ssize_t k = write(c->fd, d, n);
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return NGHTTP2_ERR_WOULDBLOCK;
    }
    return k < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : k;
}

static int
cl_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
    size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
    void *u)
{
    (void) s;
    (void) f;
    (void) flags;
    cl *c = u;
    if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0 &&
        valuelen == 1 && value[0] == '0') {
        c->ok++;
    }
    return 0;
}

static int
cl_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *d,
    size_t n, void *u)
{
    (void) flags;
    (void) d;
    cl *c = u;
    c->data_recv += n;
    if (c->consume) {
        nghttp2_session_consume(s, sid, n);
    }
    return 0;
}

static int
cl_close(nghttp2_session *s, int32_t sid, uint32_t err, void *u)
{
    (void) s;
    (void) sid;
    (void) err;
    ((cl *) u)->done++;
    return 0;
}

static ssize_t
src_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *u)
{
    (void) s;
    (void) sid;
    (void) flags;
    (void) src;
    cl *c = u;
    size_t n = c->srclen - c->srcoff;
    if (n > len) {
        n = len;
    }
    memcpy(buf, c->src + c->srcoff, n);
    c->srcoff += n;
    if (c->srcoff == c->srclen) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    }
    return (ssize_t) n;
}

static void
cl_open(cl *c, fx *f, bool consume)
{
    memset(c, 0, sizeof(*c));
    c->fd = dial(f);
    c->consume = consume;
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, cl_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, cl_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cl_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, cl_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    assert_int_equal(nghttp2_session_client_new2(&c->s, cb, c, opt), 0);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, NULL, 0);
}

static void
cl_close_all(cl *c)
{
    nghttp2_session_del(c->s);
    close(c->fd);
    free(c->src);
}

/* One round of I/O: send what can go, read what arrived (within ms). */
static bool
cl_pump(cl *c, int ms)
{
    if (nghttp2_session_send(c->s) != 0) {
        return false;
    }
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, ms) > 0) {
        uint8_t buf[65536];
        ssize_t k = read(c->fd, buf, sizeof(buf));
        if (k <= 0) {
            return false;
        }
        if (nghttp2_session_mem_recv(c->s, buf, (size_t) k) < 0) {
            return false;
        }
    }
    return nghttp2_session_send(c->s) == 0;
}

static int32_t
cl_unary(cl *c, const char *path, const char *body)
{
    nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "http"),
        NV(":path", path), NV(":authority", "x"),
        NV("content-type", "application/grpc+json"), NV("te", "trailers")};
    size_t n = strlen(body);
    free(c->src);
    c->src = malloc(5 + n);
    c->src[0] = 0;
    c->src[1] = (uint8_t) (n >> 24);
    c->src[2] = (uint8_t) (n >> 16);
    c->src[3] = (uint8_t) (n >> 8);
    c->src[4] = (uint8_t) n;
    memcpy(c->src + 5, body, n);
    c->srclen = 5 + n;
    c->srcoff = 0;
    nghttp2_data_provider prd = {.read_callback = src_read};
    int32_t id = nghttp2_submit_request(c->s, NULL, nv, 6, &prd, NULL);
    assert_true(id > 0);
    /* the provider reads c->src at once or later: keep it until sent */
    while (c->srcoff < c->srclen) {
        assert_true(cl_pump(c, 100));
    }
    return id;
}

/* A fresh connection still gets a unary call answered. */
static void
still_serving(fx *f)
{
    cl c;
    cl_open(&c, f, true);
    cl_unary(&c, "/pkg.G/Hello", "{\"still\":1}");
    int64_t end = t_now_ms() + 20000;
    while (c.done < 1 && t_now_ms() < end) {
        assert_true(cl_pump(&c, 200));
    }
    assert_int_equal(c.ok, 1);
    cl_close_all(&c);
}

/* --- tests -------------------------------------------------------------- */

/* 10,000 unary streams on one connection, as fast as the server's
 * concurrency limit lets a well-behaved client open them. */
static void
test_10k_streams(void **state)
{
    (void) state;
    fx *f = fx_new();
    cl c;
    cl_open(&c, f, true);
    enum { N = 10000 };
    /* Requests without a body: unary calls of an empty message (HEADERS
     * with END_STREAM). */
    nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "http"),
        NV(":path", "/pkg.G/Hello"), NV(":authority", "x"),
        NV("content-type", "application/grpc+json"), NV("te", "trailers")};
    for (int i = 0; i < N; i++) {
        int32_t id = nghttp2_submit_request(c.s, NULL, nv, 6, NULL, NULL);
        assert_true(id > 0);
    }
    int64_t end = t_now_ms() + 120000;
    while (c.done < N && t_now_ms() < end) {
        assert_true(cl_pump(&c, 200));
    }
    assert_int_equal(c.done, N);
    assert_int_equal(c.ok, N);
    cl_close_all(&c);
    still_serving(f);
    fx_free(f);
}

/* A client that opens streams beyond the advertised limit (1000) without
 * waiting: nghttp2 treats it as a connection error (GOAWAY PROTOCOL_ERROR;
 * RFC 9113 5.1.2 allows that or REFUSED_STREAM); the server lives on. */
static void
test_over_concurrency_limit(void **state)
{
    (void) state;
    fx *f = fx_new();
    raw r;
    raw_open(&r, f);
    rframe *fr = malloc(sizeof(*fr));
    /* wait for the ACK of our SETTINGS, so that the server's are in force
     * (raw_read acknowledges the server's) */
    bool acked = false;
    while (!acked) {
        assert_true(raw_read(&r, fr));
        acked = fr->type == NGHTTP2_SETTINGS &&
            (fr->flags & NGHTTP2_FLAG_ACK);
    }
    enum { N = 1500 };
    for (uint32_t i = 0; i < N && !r.write_failed; i++) {
        raw_request(&r, 1 + 2 * i, "POST", "/pkg.G/Echo",
            "application/grpc+json", false);
    }
    int refused = 0;
    bool goaway = false;
    while (!goaway && refused < N - 1000 && raw_read(&r, fr)) {
        if (fr->type == NGHTTP2_RST_STREAM &&
            fr->payload[3] == NGHTTP2_REFUSED_STREAM) {
            refused++;
        }
        if (fr->type == NGHTTP2_GOAWAY) {
            goaway = true;
            assert_int_equal(fr->payload[7], NGHTTP2_PROTOCOL_ERROR);
        }
    }
    assert_true(goaway || refused == N - 1000);
    free(fr);
    raw_close(&r);
    still_serving(f);
    fx_free(f);
}

/* HEADERS + RST_STREAM, 5,000 times: the reset budget (1000) runs out and
 * the server ends the connection with GOAWAY ENHANCE_YOUR_CALM. */
static void
test_rst_flood(void **state)
{
    (void) state;
    fx *f = fx_new();
    raw r;
    raw_open(&r, f);
    static const uint8_t cancel[4] = {0, 0, 0, NGHTTP2_CANCEL};
    for (uint32_t i = 0; i < 5000 && !r.write_failed; i++) {
        uint32_t sid = 1 + 2 * i;
        raw_request(&r, sid, "POST", "/pkg.G/Echo", "application/grpc+json",
            false);
        frame(&r, NGHTTP2_RST_STREAM, 0, sid, cancel, 4);
    }
    rframe *fr = malloc(sizeof(*fr));
    uint32_t code = 0;
    bool goaway = false;
    while (!goaway && raw_read(&r, fr)) {
        if (fr->type == NGHTTP2_HEADERS) {
            char v[8];
            hdr_value(&r, fr, "grpc-status", v, sizeof(v));
        }
        if (fr->type == NGHTTP2_GOAWAY) {
            goaway = true;
            code = ((uint32_t) fr->payload[4] << 24) |
                ((uint32_t) fr->payload[5] << 16) |
                ((uint32_t) fr->payload[6] << 8) | fr->payload[7];
        }
    }
    assert_true(goaway);
    assert_int_equal(code, NGHTTP2_ENHANCE_YOUR_CALM);
    free(fr);
    raw_close(&r);
    still_serving(f);
    fx_free(f);
}

/* A peer that sends a stream's requests and never takes the replies: the
 * server's replies wait on the peer's window, its handler waits on its
 * output, it stops taking the peer's messages, and the peer's send window
 * closes. What the peer can push stays bounded (the server's stream
 * window plus the queues of rpc/stream.c), however much it has to send. */
static void
test_peer_never_reads(void **state)
{
    (void) state;
    fx *f = fx_new();
    cl c;
    cl_open(&c, f, false);
    enum { MSG = 16384, COUNT = 4000 }; /* 64 MiB of messages */
    const size_t TOTAL = (size_t) COUNT * (5 + MSG);
    c.srclen = TOTAL;
    c.src = malloc(TOTAL);
    assert_non_null(c.src);
    for (size_t off = 0; off < TOTAL; off += 5 + MSG) {
        memset(c.src + off, 'x', 5 + MSG);
        c.src[off] = 0;
        c.src[off + 1] = 0;
        c.src[off + 2] = 0;
        c.src[off + 3] = (uint8_t) (MSG >> 8);
        c.src[off + 4] = (uint8_t) MSG;
        c.src[off + 5] = '"';
        c.src[off + 4 + MSG] = '"';
    }
    nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "http"),
        NV(":path", "/pkg.G/Echo"), NV(":authority", "x"),
        NV("content-type", "application/grpc+json"), NV("te", "trailers")};
    nghttp2_data_provider prd = {.read_callback = src_read};
    int32_t id = nghttp2_submit_request(c.s, NULL, nv, 6, &prd, NULL);
    assert_true(id > 0);
    /* Until the server has stopped taking our data: our send window for
     * the stream is spent and no WINDOW_UPDATE comes. */
    int64_t end = t_now_ms() + 60000;
    while (t_now_ms() < end) {
        assert_true(cl_pump(&c, 100));
        if (c.srcoff > 0 &&
            nghttp2_session_get_stream_remote_window_size(c.s, id) == 0) {
            break;
        }
    }
    assert_int_equal(nghttp2_session_get_stream_remote_window_size(c.s, id),
        0);
    /* bounded: far less than what we had to send */
    assert_true(c.srcoff < 16u << 20);
    print_message("peer sent %zu of %zu bytes before the server stopped it\n",
        c.srcoff, TOTAL);
    /* Others are still served meanwhile. */
    still_serving(f);
    cl_close_all(&c);
    fx_free(f);
}

/* Keepalive: a silent connection gets a PING; one whose peer answers
 * stays, one whose peer does not is closed. */
static void
test_keepalive(void **state)
{
    (void) state;
    fx_keepalive = "200ms";
    fx *f = fx_new();
    fx_keepalive = NULL;
    rframe *fr = malloc(sizeof(*fr));
    /* answered: several PINGs in a row, the connection stays */
    raw r;
    raw_open(&r, f);
    int pings = 0;
    while (pings < 3) {
        assert_true(raw_read(&r, fr));
        pings += fr->type == NGHTTP2_PING && !(fr->flags & NGHTTP2_FLAG_ACK);
    }
    raw_request(&r, 1, "POST", "/pkg.G/Hello", "application/grpc+json",
        false);
    raw_message(&r, 1, 0, 2, "{}", 2, true);
    char v[16];
    raw_wait_header(&r, 1, "grpc-status", v, sizeof(v));
    assert_string_equal(v, "0");
    raw_close(&r);
    /* not answered: the server closes (GOAWAY or plain close) */
    raw_open(&r, f);
    r.mute_pings = true;
    bool pinged = false;
    while (raw_read(&r, fr)) {
        pinged |= fr->type == NGHTTP2_PING;
    }
    assert_true(pinged);
    assert_true(r.closed);
    raw_close(&r);
    free(fr);
    still_serving(f);
    fx_free(f);
}

static void *
stop_server(void *arg)
{
    fx *f = arg;
    (void) micro_server_stop(f->srv, 20000);
    return NULL;
}

/* Graceful stop: the connection gets GOAWAY (NO_ERROR, the last stream it
 * took), the call in flight is answered after it, a stream opened after
 * the GOAWAY is not served, and the connection closes. */
static void
test_goaway_on_stop(void **state)
{
    (void) state;
    fx *f = fx_new();
    gate_in = gate_open = 0;
    raw r;
    raw_open(&r, f);
    raw_request(&r, 1, "POST", "/pkg.G/Gate", "application/grpc+json", false);
    raw_message(&r, 1, 0, 2, "{}", 2, true);
    pthread_mutex_lock(&gate_mu);
    while (!gate_in) {
        pthread_cond_wait(&gate_cv, &gate_mu);
    }
    pthread_mutex_unlock(&gate_mu);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_server, f), 0);
    rframe *fr = malloc(sizeof(*fr));
    bool goaway = false;
    while (!goaway) {
        assert_true(raw_read(&r, fr));
        if (fr->type == NGHTTP2_GOAWAY) {
            goaway = true;
            uint32_t last = (((uint32_t) fr->payload[0] & 0x7f) << 24) |
                ((uint32_t) fr->payload[1] << 16) |
                ((uint32_t) fr->payload[2] << 8) | fr->payload[3];
            assert_int_equal(last, 1);
            assert_int_equal(fr->payload[7], NGHTTP2_NO_ERROR);
        }
    }
    /* a new stream after the GOAWAY: above the last id, never served */
    raw_request(&r, 3, "POST", "/pkg.G/Hello", "application/grpc+json",
        false);
    raw_message(&r, 3, 0, 2, "{}", 2, true);
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    /* the call in flight completes */
    char v[16];
    raw_wait_header(&r, 1, "grpc-status", v, sizeof(v));
    assert_string_equal(v, "0");
    bool served3 = false;
    while (raw_read(&r, fr)) {
        served3 |= fr->type == NGHTTP2_HEADERS && fr->sid == 3;
    }
    assert_false(served3);
    free(fr);
    raw_close(&r);
    pthread_join(t, NULL);
    fx_free(f);
}

static void
expect_status(fx *f, const char *method, const char *path, const char *ct,
    const char *name, const char *want)
{
    raw r;
    raw_open(&r, f);
    raw_request(&r, 1, method, path, ct, false);
    raw_message(&r, 1, 0, 2, "{}", 2, true);
    char v[64];
    raw_wait_header(&r, 1, name, v, sizeof(v));
    assert_string_equal(v, want);
    raw_close(&r);
}

static void
test_malformed(void **state)
{
    (void) state;
    fx *f = fx_new();
    const char *ct = "application/grpc+json";
    /* paths */
    expect_status(f, "POST", "/nope", ct, "grpc-status", "12");
    expect_status(f, "POST", "/G.Hello", ct, "grpc-status", "12");
    expect_status(f, "POST", "//Hello", ct, "grpc-status", "12");
    expect_status(f, "POST", "/pkg.G/", ct, "grpc-status", "12");
    expect_status(f, "POST", "/pkg.G/Hello/x", ct, "grpc-status", "12");
    expect_status(f, "POST", "/pkg.G/Nope", ct, "grpc-status", "12");
    /* headers */
    expect_status(f, "GET", "/pkg.G/Hello", ct, "grpc-status", "12");
    expect_status(f, "POST", "/pkg.G/Hello", "text/plain", ":status", "415");
    expect_status(f, "POST", "/pkg.G/Hello", "application/grpcx", ":status",
        "415");
    /* framing: a declared length over 4 MiB */
    raw r;
    raw_open(&r, f);
    raw_request(&r, 1, "POST", "/pkg.G/Hello", ct, false);
    raw_message(&r, 1, 0, 5u << 20, "{}", 2, false);
    char v[64];
    raw_wait_header(&r, 1, "grpc-status", v, sizeof(v));
    assert_string_equal(v, "8");
    raw_close(&r);
    /* a compressed message (no compression was negotiated) */
    raw_open(&r, f);
    raw_request(&r, 1, "POST", "/pkg.G/Hello", ct, false);
    raw_message(&r, 1, 1, 2, "{}", 2, true);
    raw_wait_header(&r, 1, "grpc-status", v, sizeof(v));
    assert_string_not_equal(v, "0");
    raw_close(&r);
    /* a message cut short by the end of the stream */
    raw_open(&r, f);
    raw_request(&r, 1, "POST", "/pkg.G/Echo", ct, false);
    raw_message(&r, 1, 0, 100, "{}", 2, true);
    raw_wait_header(&r, 1, "grpc-status", v, sizeof(v));
    assert_string_equal(v, "13");
    raw_close(&r);
    /* a header block over the limit (64 KiB): the stream is reset */
    raw_open(&r, f);
    {
        char *big = malloc(70000);
        memset(big, 'a', 69999);
        big[69999] = '\0';
        nghttp2_nv nv[] = {NV(":method", "POST"), NV(":scheme", "http"),
            NV(":path", "/pkg.G/Hello"), NV(":authority", "x"),
            NV("content-type", ct), NV("x-big", big)};
        uint8_t *buf = malloc(80000);
        ssize_t n = nghttp2_hd_deflate_hd(r.def, buf, 80000, nv, 6);
        assert_true(n > 0);
        /* in frames of at most 16 KiB: HEADERS + CONTINUATION */
        size_t off = 0;
        bool first = true;
        while (off < (size_t) n) {
            size_t k = (size_t) n - off > 16384 ? 16384 : (size_t) n - off;
            bool last = off + k == (size_t) n;
            frame(&r, first ? NGHTTP2_HEADERS : NGHTTP2_CONTINUATION,
                last ? NGHTTP2_FLAG_END_HEADERS : 0, 1, buf + off, k);
            first = false;
            off += k;
        }
        free(buf);
        free(big);
        rframe *fr = malloc(sizeof(*fr));
        bool gone = false;
        while (!gone && raw_read(&r, fr)) {
            gone = fr->type == NGHTTP2_RST_STREAM ||
                fr->type == NGHTTP2_GOAWAY;
        }
        assert_true(gone || r.closed);
        free(fr);
    }
    raw_close(&r);
    /* not HTTP/2 at all */
    int fd = dial(f);
    (void) write_all(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    char buf[256];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_true(poll(&p, 1, 20000) > 0);
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    close(fd);
    still_serving(f);
    fx_free(f);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_over_concurrency_limit),
        cmocka_unit_test(test_rst_flood),
        cmocka_unit_test(test_10k_streams),
        cmocka_unit_test(test_peer_never_reads),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_goaway_on_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
