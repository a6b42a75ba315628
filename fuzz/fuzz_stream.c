/*
 * libFuzzer target: the stream path, in process and without sockets.
 *
 * The input is the bytes a peer sends on one connection, after a 2-byte
 * header that steers the harness:
 *
 *   byte 0  bit 0     0: the bytes are requests to a server (a mucp server
 *                        with stream and unary handlers, all inline);
 *                        1: responses to a client stream
 *           bits 1-2  how the bytes arrive: all at once, 1, 7 or 64 at a
 *                     time
 *           bit 3     backpressure: the connection's output stays over the
 *                     window until the harness drains it
 *           bit 4     the peer ends with a reset instead of a clean EOF
 *           bits 5-7  client: the codec (bytes, json, proto-rpc, json-rpc,
 *                     grpc, protobuf)
 *   byte 1            client: what the application does (sends, half-close,
 *                     abort, receives)
 *
 * The bytes go through the HTTP/1.1 parser the transport uses (http/h1.c,
 * the http transport's limits with a smaller body cap), and each message
 * is handed to a socket of a fake transport (the public
 * micro_transport_ops: micro_socket_emit_msg, _eof, _drain, _close),
 * exactly as the http transport hands its messages up: so the mucp
 * server's routing, rpc/stream.c's server side (open, deliver, EOS,
 * errors, flow control, the end and the close) and its client side
 * (micro__stream_client_new, answers, EOS, errors) run as they do over
 * TCP. The whole input runs inside one task on the loop thread, which
 * runs what the components defer with micro__loop_run_deferred: no turn
 * of the loop, so no timer fires and no I/O happens in between, and no
 * worker thread runs (the handlers are inline): deterministic, and one
 * thread hop per input. What the stream sends is serialised with the
 * transport's writers and dropped.
 *
 * Failures: a crash, a sanitizer report, a leak, or a broken invariant
 * (abort): every stream that opened must close once the connection is
 * gone, and on the client every send and receive callback must run
 * exactly once.
 */
#include "fuzz.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/loop_internal.h"
#include "http/h1.h"
#include "rpc/mucp.h"

#include <cmicro/micro.h>

#define WINDOW 4096
#define PRESSURE ((size_t) 1 << 20)

/* ------------------------------------------------------------------ */
/* The harness's view of one connection.                                */

typedef struct conn {
    micro_socket *s;    /* NULL once closed (the socket is then freed) */
    bool paused;
    bool pressure;      /* report output over the window */
    size_t unsent;
    size_t out_bytes;   /* serialised and dropped */
    bool client;
    /* client mode */
    micro_stream *st;
    bool dial_failed;
    int sends, send_cbs, recvs, recv_cbs;
    bool recv_armed;
    bool freed; /* micro_stream_free called: st is not ours any more */
} conn;

/* The fake transport's per-socket data. */
typedef struct fsock {
    conn *c;
    micro_socket *s;
    micro__task dial_task;
} fsock;

typedef struct fstate {
    micro_transport *t; /* set by listen */
} fstate;

static int
f_init(void *st, micro_loop *loop, const micro_options *opts)
{
    (void) st;
    (void) loop;
    (void) opts;
    return 0;
}

static int
f_listen(void *st, micro_transport *t, const char *addr)
{
    (void) addr;
    ((fstate *) st)->t = t;
    return 0;
}

static const char *
f_listen_address(void *st)
{
    (void) st;
    return "fuzz:0";
}

static void
f_stop_listen(void *st)
{
    (void) st;
}

static void
f_dial_task(micro__task *t)
{
    fsock *fs = (fsock *) ((char *) t - offsetof(fsock, dial_task));
    micro_socket_dialed(fs->s, 0);
}

static conn *g_dialing; /* the conn a dial is for */

static int
f_dial(void *st, micro_socket *s, const char *addr, int64_t timeout_ms)
{
    (void) st;
    (void) addr;
    (void) timeout_ms;
    fsock *fs = micro_socket_impl(s);
    fs->s = s;
    fs->c = g_dialing;
    fs->c->s = s;
    fs->dial_task.fn = f_dial_task;
    micro__loop_defer(micro_socket_loop(s), &fs->dial_task);
    return 0;
}

static void
f_dial_cancel(micro_socket *s)
{
    (void) s; /* the deferred task finds the socket dialled already */
}

static int
f_send(micro_socket *s, const micro_msg *m)
{
    fsock *fs = micro_socket_impl(s);
    micro_buf out = {0};
    int rc = fs->c->client ? micro__h1_write_mucp_request(&out, "fuzz", m)
                           : micro__h1_write_mucp_response(&out, m);
    if (rc == 0) {
        fs->c->out_bytes += out.len;
        if (fs->c->pressure) {
            fs->c->unsent += out.len;
        }
    }
    micro_buf_clear(&out);
    return rc;
}

static int
f_close_send(micro_socket *s)
{
    (void) s;
    return 0;
}

static void
f_pause(micro_socket *s, bool paused)
{
    fsock *fs = micro_socket_impl(s);
    fs->c->paused = paused;
}

static void
f_set_busy(micro_socket *s, bool busy)
{
    (void) s;
    (void) busy;
}

static size_t
f_unsent(const micro_socket *s)
{
    const fsock *fs = micro_socket_impl((micro_socket *) s);
    return fs->c->pressure && fs->c->unsent < PRESSURE ? PRESSURE
                                                       : fs->c->unsent;
}

static bool
f_reusable(const micro_socket *s)
{
    (void) s;
    return false;
}

static bool
f_got_bytes(const micro_socket *s)
{
    (void) s;
    return true;
}

static void
f_close(micro_socket *s)
{
    fsock *fs = micro_socket_impl(s);
    if (fs->c != NULL) {
        fs->c->s = NULL; /* freed after this returns */
        fs->c->paused = false;
    }
}

static void
f_fini(void *st)
{
    (void) st;
}

static const micro_transport_ops fuzz_transport = {
    .abi = MICRO_TRANSPORT_ABI,
    .name = "fuzz",
    .state_size = sizeof(fstate),
    .socket_size = sizeof(fsock),
    .init = f_init,
    .listen = f_listen,
    .listen_address = f_listen_address,
    .stop_listen = f_stop_listen,
    .dial = f_dial,
    .dial_cancel = f_dial_cancel,
    .send = f_send,
    .close_send = f_close_send,
    .pause = f_pause,
    .set_busy = f_set_busy,
    .unsent = f_unsent,
    .reusable = f_reusable,
    .got_bytes = f_got_bytes,
    .close = f_close,
    .fini = f_fini,
};

/* ------------------------------------------------------------------ */
/* The server's handlers (inline: the loop thread runs them).           */

static int g_opens, g_closes; /* loop thread */

static int
h_open(micro_stream *s, void *arg)
{
    (void) s;
    (void) arg;
    g_opens++;
    return 0;
}

static void
h_close(micro_stream *s, int rc, void *arg)
{
    (void) s;
    (void) rc;
    (void) arg;
    g_closes++;
}

static int
h_echo(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    return micro_stream_send_async(s, body, len, NULL, NULL);
}

static int
h_count_open(micro_stream *s, void *arg)
{
    h_open(s, arg);
    for (int i = 0; i < 3; i++) {
        if (micro_stream_send_async(s, "n", 1, NULL, NULL) != 0) {
            break;
        }
    }
    return 0;
}

static int
h_count_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) body;
    (void) len;
    (void) arg;
    return micro_stream_close_send(s);
}

static int
h_fail_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    if (len > 0 && ((const char *) body)[0] == 'x') {
        return micro_stream_fail(s, "fuzz", 409, "refused %zu", len);
    }
    if (len > 0 && ((const char *) body)[0] == 'y') {
        return MICRO_EIO; /* a callback's error */
    }
    if (len > 0 && ((const char *) body)[0] == 'z') {
        micro_stream_abort(s);
        return 0;
    }
    return micro_stream_send_async(s, body, len, NULL, NULL);
}

static void
h_end_reply(micro_stream *s, int rc, void *arg)
{
    (void) arg;
    if (rc == MICRO_EOF) {
        (void) micro_stream_send_async(s, "done", 4, NULL, NULL);
        (void) micro_stream_close_send(s);
    }
}

static int
h_hello(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t len = 0;
    const void *b = micro_request_body(req, &len);
    (void) micro_response_set_header(rsp, "X-Fuzz", "1");
    return micro_response_set_body(rsp, b, len);
}

/* ------------------------------------------------------------------ */
/* Set-up, once.                                                        */

static micro_loop *g_loop;
static micro_transport *g_str, *g_ctr;
static micro_server *g_srv;
static micro_options *g_opts;

static void
setup_once(void)
{
    if (g_loop != NULL) {
        return;
    }
    micro_log_set_logger(micro_log_null, NULL);
    if (micro_options_new(&g_opts) != 0 || micro_loop_new(&g_loop) != 0) {
        abort();
    }
    micro_options_set_bool(g_opts, "server_inline", true);
    micro_options_set_int(g_opts, "server_workers", 1);
    micro_options_set_int(g_opts, "transport_window", WINDOW);
    micro_options_set_str(g_opts, "server_name", "fuzz");
    if (micro_transport_new(&g_str, &fuzz_transport, g_loop, g_opts) != 0 ||
        micro_transport_new(&g_ctr, &fuzz_transport, g_loop, g_opts) != 0 ||
        micro_server_new(&g_srv, g_loop, g_str, g_opts) != 0) {
        abort();
    }
    static const struct {
        const char *ep;
        int (*open)(micro_stream *, void *);
        int (*msg)(micro_stream *, const void *, size_t, void *);
        void (*end)(micro_stream *, int, void *);
    } hs[] = {
        {"F.Echo", h_open, h_echo, NULL},
        {"F.Count", h_count_open, h_count_msg, NULL},
        {"F.Fail", h_open, h_fail_msg, NULL},
        {"F.Sum", h_open, h_echo, h_end_reply},
    };
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
        micro_stream_handler h = {.size = sizeof(h),
            .endpoint = hs[i].ep,
            .on_open = hs[i].open,
            .on_msg = hs[i].msg,
            .on_end = hs[i].end,
            .on_close = h_close,
            .flags = MICRO_HANDLER_INLINE};
        if (micro_server_handle_stream(g_srv, &h) != 0) {
            abort();
        }
    }
    micro_handler_desc d = {.endpoint = "F.Hello", .fn = h_hello,
        .flags = MICRO_HANDLER_INLINE};
    if (micro_server_handle(g_srv, &d) != 0 ||
        micro_server_start(g_srv) != 0) {
        abort();
    }
}

/* ------------------------------------------------------------------ */
/* One input.                                                           */

typedef struct run {
    conn c;
    const char *p;
    size_t n, off;
    size_t chunk;
    micro__h1_parser parser;
    micro__h1_limits lim;
    bool parse_done; /* the input is used up, or refused */
    bool reset;
    unsigned ops;
    const micro_codec_ops *codec;
    const char *ct;
} run;

static int
p_on_head(void *arg, micro__h1_head *h)
{
    run *r = arg;
    if (r->c.client && h->status != 200) {
        return MICRO_EPROTO; /* as the transport's client side */
    }
    return MICRO__H1_BUFFER;
}

static int
p_on_end(void *arg, micro_msg *msg, bool keep_alive)
{
    run *r = arg;
    (void) keep_alive;
    if (r->c.s == NULL) {
        micro_msg_free(msg);
        return MICRO__H1_PAUSE;
    }
    micro_socket_emit_msg(r->c.s, msg);
    return (r->c.s == NULL || r->c.paused) ? MICRO__H1_PAUSE : 0;
}

static const micro__h1_cbs parser_cbs = {
    .on_head = p_on_head,
    .on_end = p_on_end,
};

/* Loop thread: feed until paused, closed or done. */
static int
feed(void *arg)
{
    run *r = arg;
    while (!r->parse_done && r->c.s != NULL && !r->c.paused) {
        size_t left = r->n - r->off;
        if (left == 0) {
            r->parse_done = true;
            break;
        }
        size_t k = r->chunk == 0 || r->chunk > left ? left : r->chunk;
        ssize_t used = micro__h1_parse(&r->parser, r->p + r->off, k);
        if (used < 0) {
            /* Refused: the transport answers and closes; its owner hears
             * on_close with the code. */
            r->parse_done = true;
            if (r->c.s != NULL) {
                micro_socket_emit_close(r->c.s, (int) used);
            }
            break;
        }
        r->off += (size_t) used;
    }
    return 0;
}

/* Loop thread: the output was written. */
static int
drain(void *arg)
{
    run *r = arg;
    r->c.unsent = 0;
    r->c.pressure = false;
    if (r->c.s != NULL) {
        micro_socket_emit_drain(r->c.s);
    }
    return 0;
}

/* Loop thread: the peer is done (EOF or reset), then gone. */
static int
peer_ends(void *arg)
{
    run *r = arg;
    if (r->c.s != NULL) {
        micro_socket_emit_eof(r->c.s, r->reset ? MICRO_ECONNRESET : 0);
    }
    return 0;
}

static int
peer_gone(void *arg)
{
    run *r = arg;
    if (r->c.s != NULL) {
        micro_socket_emit_close(r->c.s, r->reset ? MICRO_ECONNRESET
                                                 : MICRO_EOF);
    }
    return 0;
}

/* Let what was deferred run (on the loop thread: no turn of the loop, so
 * no timer fires and no I/O happens in between). */
static void
settle(void)
{
    micro__loop_run_deferred(g_loop);
}

/* --- server mode --------------------------------------------------------- */

static int
server_open(void *arg)
{
    run *r = arg;
    micro_transport *t = g_str;
    micro_socket *s = NULL;
    if (micro_socket_new_accepted(t, &s) != 0) {
        abort();
    }
    fsock *fs = micro_socket_impl(s);
    fs->c = &r->c;
    fs->s = s;
    r->c.s = s;
    micro_socket_set_names(s, "10.0.0.1:1234", "10.0.0.2:8080");
    micro_socket_accepted(s); /* the server sets its handler */
    return 0;
}

/* --- client mode --------------------------------------------------------- */

static void
cl_sent(void *arg, micro_stream *s, int rc)
{
    conn *c = arg;
    (void) s;
    (void) rc;
    c->send_cbs++;
}

static void cl_recv(void *arg, micro_stream *s, int rc, const void *body,
    size_t len);

static void
arm_recv(conn *c)
{
    if (c->st != NULL && !c->freed && !c->recv_armed && c->recvs < 64 &&
        micro_stream_recv_async(c->st, cl_recv, c) == 0) {
        c->recv_armed = true;
        c->recvs++;
    }
}

static void
cl_recv(void *arg, micro_stream *s, int rc, const void *body, size_t len)
{
    conn *c = arg;
    (void) s;
    (void) body;
    (void) len;
    c->recv_cbs++;
    c->recv_armed = false;
    if (rc == 0) {
        arm_recv(c); /* keep receiving */
    }
}

static void
cl_dialed(void *arg, int rc, micro_socket *sock)
{
    run *r = arg;
    if (rc != 0) {
        r->c.dial_failed = true;
        return;
    }
    char id[] = "7";
    micro_msg *base = NULL;
    micro__mucp_req q = {.service = "fuzz", .endpoint = "F.Echo",
        .content_type = r->ct, .id = id, .stream = true};
    const char *bad = NULL;
    int brc = micro_msg_new(&base);
    if (brc == 0) {
        brc = micro__mucp_request_headers(base, &q, &bad);
    }
    micro__stream_client_cfg cfg = {.codec = r->codec,
        .content_type = r->ct,
        .service = "fuzz",
        .endpoint = "F.Echo",
        .id = id,
        .window = WINDOW,
        .base = base};
    if (brc == 0) {
        brc = micro__stream_client_new(sock, &cfg, &r->c.st);
    }
    micro_msg_free(cfg.base);
    if (brc != 0) {
        micro_socket_close(sock);
        r->c.dial_failed = true;
    }
}

static int
client_open(void *arg)
{
    run *r = arg;
    micro_dial_opts o = {.size = sizeof(o), .stream = true};
    g_dialing = &r->c;
    if (micro_transport_dial(g_ctr, g_loop, "fuzz:1", &o, cl_dialed, r,
            NULL) != 0) {
        abort();
    }
    return 0;
}

/* The application's side, steered by byte 1. */
static int
client_app(void *arg)
{
    run *r = arg;
    conn *c = &r->c;
    if (c->st == NULL) {
        return 0;
    }
    int nsend = (int) (r->ops & 3u);
    for (int i = 0; i < nsend; i++) {
        if (micro_stream_send_async(c->st, "ping", 4, cl_sent, c) == 0) {
            c->sends++;
        }
    }
    if ((r->ops & 4u) != 0) {
        (void) micro_stream_close_send(c->st);
    }
    if ((r->ops & 8u) == 0) {
        arm_recv(c);
    }
    return 0;
}

static int
client_late(void *arg)
{
    run *r = arg;
    conn *c = &r->c;
    if (c->st == NULL) {
        return 0;
    }
    if ((r->ops & 16u) != 0) {
        micro_stream_abort(c->st);
    }
    if ((r->ops & 32u) != 0 &&
        micro_stream_send_async(c->st, "late", 4, cl_sent, c) == 0) {
        c->sends++;
    }
    arm_recv(c);
    return 0;
}

static int
client_free(void *arg)
{
    run *r = arg;
    r->c.freed = true;
    micro_stream_free(r->c.st); /* posts its close */
    return 0;
}

/* ------------------------------------------------------------------ */

/* The whole input, on the loop thread (one hop per input). */
static int
run_input(void *arg)
{
    run *r = arg;
    if (r->c.client) {
        client_open(r);
        settle(); /* the dial completes, the stream opens */
        if (r->c.st == NULL && !r->c.dial_failed) {
            abort();
        }
        client_app(r);
    } else {
        server_open(r);
    }
    /* Feed; a paused connection waits for the loop (and, under
     * backpressure, for its output to drain). */
    for (int round = 0; round < 64 && !r->parse_done && r->c.s != NULL;
         round++) {
        feed(r);
        settle();
        if (r->c.paused && r->c.pressure) {
            drain(r);
            settle();
        }
        if (r->c.paused) {
            break; /* waits for something that never comes: end it */
        }
    }
    if (r->c.client) {
        client_late(r);
        settle();
    }
    drain(r);
    peer_ends(r);
    settle();
    if (r->c.client) {
        client_free(r);
        settle();
    }
    peer_gone(r);
    settle();
    return 0;
}

static const struct {
    const micro_codec_ops *ops;
    const char *ct;
} codecs[8] = {
    {&micro_codec_bytes_ops, "application/octet-stream"},
    {&micro_codec_json_ops, "application/json"},
    {&micro_codec_protorpc_ops, "application/proto-rpc"},
    {&micro_codec_jsonrpc_ops, "application/json-rpc"},
    {&micro_codec_grpc_ops, "application/grpc"},
    {&micro_codec_proto_ops, "application/protobuf"},
    {&micro_codec_bytes_ops, "application/octet-stream"},
    {&micro_codec_json_ops, "application/json"},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    setup_once();
    static const size_t chunks[4] = {0, 1, 7, 64};
    run r;
    memset(&r, 0, sizeof(r));
    r.c.client = (data[0] & 1u) != 0;
    r.chunk = chunks[(data[0] >> 1) & 3u];
    r.c.pressure = (data[0] & 8u) != 0;
    r.reset = (data[0] & 16u) != 0;
    r.codec = codecs[(data[0] >> 5) & 7u].ops;
    r.ct = codecs[(data[0] >> 5) & 7u].ct;
    r.ops = data[1];
    r.p = (const char *) data + 2;
    r.n = size - 2;
    r.lim.max_header = 64 * 1024;
    r.lim.max_fields = 100;
    r.lim.max_body = 64 * 1024;
    micro__h1_parser_init(&r.parser,
        r.c.client ? MICRO__H1_RESPONSE : MICRO__H1_REQUEST, &r.lim,
        &parser_cbs, &r);
    g_opens = g_closes = 0;

    micro__loop_call(g_loop, run_input, &r);
    /* Invariants. */
    if (r.c.s != NULL) {
        abort(); /* the peer is gone: the socket must be too */
    }
    if (g_opens != g_closes) {
        fprintf(stderr, "fuzz_stream: %d streams opened, %d closed\n",
            g_opens, g_closes);
        abort();
    }
    if (r.c.client && (r.c.send_cbs != r.c.sends ||
                          r.c.recv_cbs != r.c.recvs || r.c.recv_armed)) {
        fprintf(stderr, "fuzz_stream: sends %d/%d, receives %d/%d\n",
            r.c.send_cbs, r.c.sends, r.c.recv_cbs, r.c.recvs);
        abort();
    }
    if (getenv("FUZZ_STREAM_DEBUG") != NULL) {
        fprintf(stderr, "fuzz_stream: %s: %zu of %zu bytes parsed, %d "
                        "streams, %zu bytes out, sends %d, receives %d\n",
            r.c.client ? "client" : "server", r.off, r.n, g_opens,
            r.c.out_bytes, r.c.sends, r.c.recv_cbs);
    }
    micro__h1_parser_fini(&r.parser);
    return 0;
}
