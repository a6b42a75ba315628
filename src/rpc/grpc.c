/*
 * gRPC over HTTP/2 as transport sockets (grpc.h). Server side: a TCP
 * listener (TLS with transport_secure: io/tls.h hands over a connection
 * once its handshake chose ALPN h2, and refuses clients that offer no
 * h2) whose connections run the HTTP/2 engine; every request stream
 * becomes an accepted socket once its headers are read and its endpoint is
 * known (unknown and malformed paths are answered here, UNIMPLEMENTED, as
 * Go Micro's gRPC server does). Client side: one HTTP/2 connection per
 * address per loop, shared by every socket dialled there (each socket is
 * one stream on it), over TLS when secure (a server that does not choose
 * ALPN h2 is refused).
 *
 * Flow control: a socket paused by its owner stops consuming its stream's
 * DATA, so the peer stops after one stream window; received bytes are
 * acknowledged as the owner takes the messages they carry.
 */
#include "rpc/grpc.h"
#include "core/loop_internal.h"
#include "core/msg_internal.h"
#include "http/h2.h"
#include "io/stream.h"
#include "io/tls.h"
#include "rpc/mucp.h"

#include <ctype.h>
#include <stdatomic.h>

#define GR_COMPONENT "grpc"
#define DETAIL_TYPE "type.googleapis.com/errors.Error"

typedef struct gstate gstate;
typedef struct gconn gconn;
typedef struct gsock gsock;
typedef struct gloop gloop;

struct gconn {
    gstate *st;
    gloop *gl;           /* client connections: their loop's list */
    micro__h2 *h2;
    gconn *prev, *next;
    char addr[96];       /* client: the dialled address */
    micro__aio aio;      /* client: the dial (TCP, then TLS when secure) */
    micro__io_dial dial;
    gsock *waiting;      /* client: sockets waiting for the dial */
    bool connected;
};

struct gloop {
    micro__loop_ext ext; /* first; key: the state */
    gstate *st;
    micro_loop *loop;
    gconn *conns;
    gloop *next;
    gsock *reports;      /* dialled on a live connection: report later */
    micro__task rtask;
    bool rposted;
};

struct gstate {
    micro_loop *loop;
    micro_transport *t;
    micro__io_listener *listener;
    char address[96];
    /* transport_secure: TLS under HTTP/2, ALPN h2 only (tls.client set) */
    micro__tls_ends tls;
    gconn *conns;        /* server connections */
    micro__grpc_classify_fn classify;
    void *classify_arg;
    char name[128];      /* the server's: the id of errors made here */
    micro__h2_cfg h2;
    micro__h2_cfg h2c;   /* client sessions */
    size_t max_msg;
    pthread_mutex_t mu;  /* gloops */
    gloop *gloops;
    _Atomic uint64_t accepted, requests, bad, oversized, unknown;
};

struct gsock {
    micro_socket *s;
    gstate *st;
    gconn *gc;
    micro__h2_stream *h2;
    bool server;
    bool stream;          /* server: a stream endpoint */
    bool responded;       /* our headers sent (server), or got (client) */
    bool ended;           /* our direction ended */
    bool paused;
    bool emitted_first;   /* server: the opening message went up */
    bool peer_ended;      /* END_STREAM seen */
    bool eof_sent;
    bool done;            /* the h2 stream is over */
    bool close_pending;   /* over cleanly while paused with messages or
                             the end still to report: closed after them */
    bool failed;          /* we answered an error ourselves */
    bool *alive;          /* cleared when the socket is closed */
    micro_msg *first;     /* server unary: headers waiting for the body;
                             client: the response headers / trailers */
    micro_buf in;         /* bytes received; from in_off on, not yet
                             made messages */
    size_t in_off;
    size_t held;          /* received and not yet consumed (the tail of
                             in) */
    size_t acked;         /* consumed and not yet made messages (a
                             message still arriving, taken so that it
                             can complete) */
    char ct[80];
    char path[256];       /* client */
    gsock *wnext;         /* client: waiting for the connection, or for
                             its report (gloop.reports) */
    int64_t timeout_ms;
    int64_t deadline;     /* server: absolute (micro__now_ms); 0 none */
    char ep[256];         /* server: "Handler.Method" */
};

#define GS(s) ((gsock *) micro_socket_impl(s))
#define GSC(s) ((const gsock *) micro_socket_impl((micro_socket *) (s)))

/* ------------------------------------------------------------------ */
/* Pure helpers.                                                        */

int
micro__grpc_status_of(int32_t code)
{
    switch (code) {
    case 400: return 3;  /* InvalidArgument */
    case 401: return 16; /* Unauthenticated */
    case 403: return 7;  /* PermissionDenied */
    case 404: return 5;  /* NotFound */
    case 408: return 4;  /* DeadlineExceeded */
    case 409: return 6;  /* AlreadyExists */
    case 412: return 9;  /* FailedPrecondition */
    case 500: return 13; /* Internal */
    case 501: return 12; /* Unimplemented */
    case 503: return 14; /* Unavailable */
    default: return 2;   /* Unknown */
    }
}

int32_t
micro__grpc_code_of(int status)
{
    switch (status) {
    case 0: return 200;
    case 1: return 499;  /* Canceled */
    case 3: return 400;
    case 4: return 408;
    case 5: return 404;
    case 6: return 409;
    case 7: return 403;
    case 8: return 429;  /* ResourceExhausted */
    case 9: return 412;
    case 10: return 409; /* Aborted */
    case 11: return 400; /* OutOfRange */
    case 12: return 501;
    case 13: return 500;
    case 14: return 503;
    case 15: return 500; /* DataLoss */
    case 16: return 401;
    default: return 500;
    }
}

int
micro__grpc_path_endpoint(const char *path, size_t len, char *out,
    size_t cap, char *svc, size_t svccap)
{
    if (len < 4 || path[0] != '/') {
        return MICRO_EINVAL;
    }
    const char *slash = NULL;
    for (size_t i = len; i-- > 1;) {
        if (path[i] == '/') {
            slash = path + i;
            break;
        }
    }
    if (slash == NULL || slash == path + 1 || slash == path + len - 1) {
        return MICRO_EINVAL;
    }
    const char *service = path + 1;
    size_t slen = (size_t) (slash - service);
    const char *method = slash + 1;
    size_t mlen = len - (size_t) (method - path);
    const char *handler = service;
    for (size_t i = slen; i-- > 0;) {
        if (service[i] == '.') {
            handler = service + i + 1;
            break;
        }
    }
    size_t hlen = slen - (size_t) (handler - service);
    if (hlen == 0 || hlen + mlen + 2 > cap) {
        return MICRO_EINVAL;
    }
    for (size_t i = 0; i < slen + 1 + mlen; i++) {
        unsigned char ch = (unsigned char) service[i];
        if (ch <= 0x20 || ch >= 0x7f) {
            return MICRO_EINVAL;
        }
    }
    if (memchr(method, '/', mlen) != NULL || memchr(method, '.', mlen)) {
        return MICRO_EINVAL;
    }
    memcpy(out, handler, hlen);
    out[hlen] = '.';
    memcpy(out + hlen + 1, method, mlen);
    out[hlen + 1 + mlen] = '\0';
    if (svc != NULL) {
        if (slen >= svccap) {
            return MICRO_EINVAL;
        }
        memcpy(svc, service, slen);
        svc[slen] = '\0';
    }
    return 0;
}

int64_t
micro__grpc_timeout_ms(const char *v, size_t len)
{
    if (len < 2 || len > 9) {
        return -1;
    }
    int64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (v[i] < '0' || v[i] > '9') {
            return -1;
        }
        n = n * 10 + (v[i] - '0');
    }
    switch (v[len - 1]) {
    case 'H': return n * 3600000;
    case 'M': return n * 60000;
    case 'S': return n * 1000;
    case 'm': return n;
    case 'u': return (n + 999) / 1000;
    case 'n': return (n + 999999) / 1000000;
    default: return -1;
    }
}

static void
pb_varint(micro_buf *b, uint64_t v, int *rc)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    if (*rc == 0) {
        *rc = micro_buf_append(b, tmp, n);
    }
}

static void
pb_bytes(micro_buf *b, unsigned field, const void *p, size_t n, int *rc)
{
    if (n == 0) {
        return;
    }
    pb_varint(b, ((uint64_t) field << 3) | 2, rc);
    pb_varint(b, n, rc);
    if (*rc == 0) {
        *rc = micro_buf_append(b, p, n);
    }
}

/* google.rpc.Status{code, message, details: [Any{errors.Error}]} */
static int
status_details(const micro_error *e, int status, const char *msg,
    micro_buf *out)
{
    int rc = 0;
    micro_buf err = {0}, any = {0};
    pb_bytes(&err, 1, e->id, e->id ? strlen(e->id) : 0, &rc);
    if (e->code != 0) {
        pb_varint(&err, (2 << 3) | 0, &rc);
        pb_varint(&err, (uint64_t) (int64_t) e->code, &rc);
    }
    pb_bytes(&err, 3, e->detail, e->detail ? strlen(e->detail) : 0, &rc);
    pb_bytes(&err, 4, e->status, e->status ? strlen(e->status) : 0, &rc);
    pb_bytes(&any, 1, DETAIL_TYPE, strlen(DETAIL_TYPE), &rc);
    pb_bytes(&any, 2, err.data, err.len, &rc);
    if (status != 0) {
        pb_varint(out, (1 << 3) | 0, &rc);
        pb_varint(out, (uint64_t) status, &rc);
    }
    pb_bytes(out, 2, msg, strlen(msg), &rc);
    pb_bytes(out, 3, any.data, any.len, &rc);
    micro_buf_clear(&err);
    micro_buf_clear(&any);
    return rc;
}

static int
b64(const uint8_t *p, size_t n, micro_buf *out)
{
    static const char t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int rc = micro_buf_reserve(out, (n + 2) / 3 * 4 + 1);
    if (rc != 0) {
        return rc;
    }
    char *o = (char *) out->data + out->len;
    size_t k = 0;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = ((uint32_t) p[i] << 16) | ((uint32_t) p[i + 1] << 8) |
            p[i + 2];
        o[k++] = t[v >> 18];
        o[k++] = t[(v >> 12) & 63];
        o[k++] = t[(v >> 6) & 63];
        o[k++] = t[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t) p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t) p[i + 1] << 8;
        }
        o[k++] = t[v >> 18];
        o[k++] = t[(v >> 12) & 63];
        if (i + 1 < n) {
            o[k++] = t[(v >> 6) & 63];
        }
    }
    out->len += k;
    return 0;
}

/* grpc-message: percent-encode what is not printable ASCII, and '%'. */
static int
pct(const char *s, micro_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *) s; *p && rc == 0;
         p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '%') {
            rc = micro_buf_append(out, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = micro_buf_append(out, e, 3);
        }
    }
    return rc;
}

#define NV(n, v)                                                                \
    (micro__h2_nv) { (n), (v), strlen(n), strlen(v) }

/* ------------------------------------------------------------------ */
/* Socket plumbing.                                                     */

/* Emit through the socket; false when the socket was closed inside. */
static bool
emit_msg(gsock *gs, micro_msg *m)
{
    bool alive = true;
    gs->alive = &alive;
    micro_socket_emit_msg(gs->s, m);
    if (alive) {
        gs->alive = NULL;
    }
    return alive;
}

/* Server streams: the client's END_STREAM is Go Micro's EOS message (what
 * its mucp client sends on CloseSend): the handler sees MICRO_EOF and may
 * still send. */
static bool
emit_client_eos(gsock *gs)
{
    micro_msg *m = NULL;
    if (micro_msg_new(&m) != 0 ||
        micro_msg_set_header(m, "Micro-Error", "EOS") != 0) {
        micro_msg_free(m);
        micro_socket_emit_close(gs->s, MICRO_ENOMEM);
        return false;
    }
    return emit_msg(gs, m);
}

static void
detach(gsock *gs)
{
    if (gs->h2 != NULL) {
        micro__h2_stream *h = gs->h2;
        gs->h2 = NULL;
        if (!gs->done) {
            micro__h2_stream_reset(h, MICRO__H2_CANCEL);
        }
    }
}

/* Answer with a status of our own and end (server). */
static void
answer_status(micro__h2_stream *h, bool responded, const char *ct, int status,
    const char *msg, const micro_error *e)
{
    micro_buf m = {0}, det = {0}, b = {0};
    (void) pct(msg, &m);
    (void) micro_buf_append(&m, "", 1);
    if (e != NULL && status_details(e, status, msg, &det) == 0) {
        (void) b64(det.data, det.len, &b);
    }
    (void) micro_buf_append(&b, "", 1);
    char code[12];
    snprintf(code, sizeof(code), "%d", status);
    micro__h2_nv nv[6];
    size_t n = 0;
    if (!responded) {
        nv[n++] = NV(":status", "200");
        nv[n++] = NV("content-type", ct);
    }
    nv[n++] = NV("grpc-status", code);
    if (m.len > 1) {
        nv[n++] = NV("grpc-message", (const char *) m.data);
    }
    if (b.len > 1) {
        nv[n++] = NV("grpc-status-details-bin", (const char *) b.data);
    }
    if (!responded) {
        (void) micro__h2_stream_respond(h, nv, n, true);
    } else {
        (void) micro__h2_stream_end(h, nv, n);
    }
    micro_buf_clear(&m);
    micro_buf_clear(&det);
    micro_buf_clear(&b);
}

/* Server: the opening message goes up: its Timeout is what is left of
 * the deadline. False when the deadline has passed: then the call is
 * answered DeadlineExceeded here (Go Micro's 408) and the socket closed. */
static bool
set_timeout(gsock *gs, micro_msg *m)
{
    if (gs->deadline == 0) {
        return true;
    }
    int64_t left = gs->deadline - micro__now_ms();
    if (left > 0) {
        char ns[24];
        micro__mucp_timeout_header(left, ns);
        if (micro_msg_set_header(m, "Timeout", ns) == 0) {
            return true;
        }
    }
    char d[320];
    snprintf(d, sizeof(d), "deadline exceeded before %s could start",
        gs->ep);
    micro_error *e = micro_error_new(gs->st->name[0] ? gs->st->name
                                                    : "go.micro.server",
        408, d);
    char *json = e ? micro_error_to_json(e) : NULL;
    if (gs->h2 != NULL) {
        answer_status(gs->h2, gs->responded, gs->ct, 4, json ? json : d, e);
        gs->responded = gs->ended = gs->failed = true;
    }
    free(json);
    micro_error_free(e);
    micro_msg_free(m);
    micro_socket_emit_close(gs->s, MICRO_ETIMEDOUT);
    return false;
}

/* Acknowledge the k bytes of a message taken from gs->in: the peer may
 * send as many more. Only what was taken is acknowledged, so that a paused
 * socket buffers at most one stream window (plus the part of a message
 * that was still arriving when it paused). */
static void
took(gsock *gs, size_t k)
{
    if (gs->acked >= k) {
        gs->acked -= k;
        return;
    }
    k -= gs->acked;
    gs->acked = 0;
    if (k > gs->held) {
        k = gs->held;
    }
    gs->held -= k;
    if (gs->h2 != NULL) {
        micro__h2_stream_consume(gs->h2, k);
    }
}

/* Parse complete messages from gs->in and emit them while not paused;
 * returns false when the socket went away. Messages are taken from
 * in_off on and the rest moved to the front once at the end, never per
 * message (a paused socket holds a whole window: moving it for each small
 * message taken costs a copy of the window per message). */
static bool
deliver(gsock *gs)
{
    while (!gs->paused && (gs->h2 != NULL || gs->close_pending)) {
        size_t have = gs->in.len - gs->in_off;
        if (have < 5) {
            break;
        }
        const uint8_t *p = gs->in.data + gs->in_off;
        uint32_t n = ((uint32_t) p[1] << 24) | ((uint32_t) p[2] << 16) |
            ((uint32_t) p[3] << 8) | p[4];
        if (n > gs->st->max_msg) {
            atomic_fetch_add(&gs->st->oversized, 1);
            char d[128];
            snprintf(d, sizeof(d),
                "grpc: received message larger than max (%u vs. %zu)", n,
                gs->st->max_msg);
            MICRO_LOGF(MICRO_LOG_INFO, GR_COMPONENT, "%s: %s",
                micro_socket_remote(gs->s), d);
            if (gs->server && gs->h2 != NULL) {
                answer_status(gs->h2, gs->responded, gs->ct, 8, d, NULL);
                gs->responded = gs->ended = true;
                gs->failed = true;
            } else {
                detach(gs);
            }
            micro_socket_emit_close(gs->s, MICRO_EMSGSIZE);
            return false;
        }
        if (have < 5 + (size_t) n) {
            break;
        }
        micro_msg *m = NULL;
        if (gs->server && !gs->emitted_first && !gs->stream) {
            m = gs->first;
            gs->first = NULL;
        } else if (micro_msg_new(&m) != 0) {
            m = NULL;
        }
        if (m == NULL || micro_msg_set_body(m, p, 5 + (size_t) n) != 0) {
            micro_msg_free(m);
            micro_socket_emit_close(gs->s, MICRO_ENOMEM);
            return false;
        }
        gs->in_off += 5 + (size_t) n;
        took(gs, 5 + (size_t) n);
        if (gs->server && !gs->stream && gs->emitted_first) {
            micro_msg_free(m); /* a second message on a unary call */
            continue;
        }
        if (gs->server && !gs->emitted_first && !set_timeout(gs, m)) {
            return false;
        }
        gs->emitted_first = true;
        if (!gs->server && gs->first != NULL) {
            /* client: the first message carries the response headers */
            for (size_t i = 0; i < gs->first->n; i++) {
                (void) micro_msg_set_header(m, gs->first->hdrs[i].key,
                    gs->first->hdrs[i].value);
            }
        }
        if (!emit_msg(gs, m)) {
            return false;
        }
    }
    if (gs->in_off > 0) {
        size_t left = gs->in.len - gs->in_off;
        memmove(gs->in.data, gs->in.data + gs->in_off, left);
        gs->in.len = left;
        gs->in_off = 0;
    }
    if (!gs->paused && gs->held > 0 && gs->h2 != NULL) {
        /* a message still arriving: take its bytes so it can complete
         * (it may be longer than the window) */
        micro__h2_stream_consume(gs->h2, gs->held);
        gs->acked += gs->held;
        gs->held = 0;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Server streams.                                                      */

static void
sv_on_data(void *arg, micro__h2_stream *h, const uint8_t *p, size_t n)
{
    (void) h;
    gsock *gs = arg;
    gs->held += n;
    if (micro_buf_append(&gs->in, p, n) != 0) {
        micro_socket_emit_close(gs->s, MICRO_ENOMEM);
        return;
    }
    (void) deliver(gs);
}

/* The client's end, once the messages before it went up (gs_end); false
 * when the socket went away. */
static bool
sv_end(gsock *gs)
{
    if (gs->in.len > 0) {
        atomic_fetch_add(&gs->st->bad, 1);
        if (gs->h2 != NULL && !gs->ended) {
            answer_status(gs->h2, gs->responded, gs->ct, 13,
                "grpc: a message is truncated by the end of the stream",
                NULL);
            gs->responded = gs->ended = gs->failed = true;
        }
        micro_socket_emit_close(gs->s, MICRO_EPROTO);
        return false;
    }
    if (!gs->stream && !gs->emitted_first) {
        /* a unary request without a message: an empty one */
        micro_msg *m = gs->first;
        gs->first = NULL;
        if (!set_timeout(gs, m)) {
            return false;
        }
        gs->emitted_first = true;
        if (!emit_msg(gs, m)) {
            return false;
        }
    }
    if (gs->stream && !gs->eof_sent) {
        gs->eof_sent = true;
        return emit_client_eos(gs);
    }
    return true;
}

static bool cl_end(gsock *gs);

/* The peer's end goes up after the messages before it, unless the owner
 * paused the socket meanwhile (then grpc_pause reports it); false when the
 * socket went away. */
static bool
gs_end(gsock *gs)
{
    if (!deliver(gs)) {
        return false;
    }
    if (gs->paused) {
        return true;
    }
    return gs->server ? sv_end(gs) : cl_end(gs);
}

/* The peer's END_STREAM (both sides). */
static void
gs_on_end(void *arg, micro__h2_stream *h)
{
    (void) h;
    gsock *gs = arg;
    gs->peer_ended = true;
    (void) gs_end(gs);
}

static void
sv_on_trailers(void *arg, micro__h2_stream *h, const micro__h2_nv *nv,
    size_t n, bool trailers)
{
    (void) arg;
    (void) h;
    (void) nv;
    (void) n;
    (void) trailers;
}

static void
gs_on_drain(void *arg, micro__h2_stream *h)
{
    (void) h;
    gsock *gs = arg;
    micro_socket_emit_drain(gs->s);
}

/* Has the peer's end been reported to the socket's owner? */
static bool
end_reported(const gsock *gs)
{
    if (!gs->peer_ended) {
        return true; /* nothing to report */
    }
    if (gs->server) {
        return gs->stream ? gs->eof_sent : gs->emitted_first;
    }
    return gs->eof_sent;
}

static void
gs_on_close(void *arg, micro__h2_stream *h, int rc, uint32_t err)
{
    (void) h;
    (void) err;
    gsock *gs = arg;
    gs->h2 = NULL;
    gs->done = true;
    if (rc == 0 && gs->paused &&
        (gs->in.len > gs->in_off || !end_reported(gs))) {
        /* Over cleanly, but the owner has not taken everything yet (it
         * paused the socket): the messages, the end, then the close, once
         * it resumes (grpc_pause). Closing now would lose them, and a
         * client would see its stream reset instead of ended. */
        gs->close_pending = true;
        return;
    }
    if (gs->server) {
        micro_socket_emit_close(gs->s, rc == 0 ? MICRO_EOF : rc);
        return;
    }
    /* client: a clean close after the trailers was reported with them */
    if (rc != 0) {
        micro_socket_emit_close(gs->s, rc == MICRO_ECANCELED
                ? MICRO_ECONNRESET : rc);
    } else if (!gs->eof_sent) {
        gs->eof_sent = true;
        micro_socket_emit_close(gs->s, MICRO_EOF);
    }
}

static const micro__h2_stream_cbs sv_stream_cbs = {
    .on_headers = sv_on_trailers,
    .on_data = sv_on_data,
    .on_end = gs_on_end,
    .on_drain = gs_on_drain,
    .on_close = gs_on_close,
};

static bool
nv_is(const micro__h2_nv *nv, const char *name)
{
    size_t n = strlen(name);
    return nv->namelen == n && memcmp(nv->name, name, n) == 0;
}

/* Headers that are HTTP/2's or gRPC's own, not metadata. */
static bool
reserved_header(const micro__h2_nv *nv)
{
    static const char *const names[] = {"te", "content-type", "user-agent",
        "grpc-timeout", "grpc-encoding", "grpc-accept-encoding",
        "grpc-message-type", "content-length", "connection", NULL};
    if (nv->namelen > 0 && nv->name[0] == ':') {
        return true;
    }
    for (size_t i = 0; names[i] != NULL; i++) {
        if (nv_is(nv, names[i])) {
            return true;
        }
    }
    return false;
}

static void
on_h2_stream(void *arg, micro__h2 *c, micro__h2_stream *h,
    const micro__h2_nv *nv, size_t n)
{
    gconn *gc = arg;
    gstate *st = gc->st;
    (void) c;
    atomic_fetch_add(&st->requests, 1);
    const micro__h2_nv *path = NULL, *method = NULL, *ctype = NULL,
                       *gto = NULL;
    for (size_t i = 0; i < n; i++) {
        if (nv_is(&nv[i], ":path")) {
            path = &nv[i];
        } else if (nv_is(&nv[i], ":method")) {
            method = &nv[i];
        } else if (nv_is(&nv[i], "content-type")) {
            ctype = &nv[i];
        } else if (nv_is(&nv[i], "grpc-timeout")) {
            gto = &nv[i];
        }
    }
    char ct[80] = "application/grpc";
    if (ctype == NULL || ctype->valuelen < 16 || ctype->valuelen >= 80 ||
        strncasecmp(ctype->value, "application/grpc", 16) != 0 ||
        (ctype->valuelen > 16 && ctype->value[16] != '+' &&
            ctype->value[16] != ';')) {
        atomic_fetch_add(&st->bad, 1);
        micro__h2_nv r[] = {NV(":status", "415"),
            NV("content-type", "text/plain")};
        (void) micro__h2_stream_respond(h, r, 2, true);
        return;
    }
    memcpy(ct, ctype->value, ctype->valuelen);
    ct[ctype->valuelen] = '\0';
    if (method == NULL || !(method->valuelen == 4 &&
                              memcmp(method->value, "POST", 4) == 0)) {
        atomic_fetch_add(&st->bad, 1);
        answer_status(h, false, ct, 12, "grpc: method must be POST", NULL);
        return;
    }
    char ep[256], svc[256];
    if (path == NULL || micro__grpc_path_endpoint(path->value,
                            path->valuelen, ep, sizeof(ep), svc,
                            sizeof(svc)) != 0) {
        atomic_fetch_add(&st->unknown, 1);
        char d[320];
        snprintf(d, sizeof(d), "malformed method name: \"%.*s\"",
            path ? (int) (path->valuelen > 256 ? 256 : path->valuelen) : 0,
            path ? path->value : "");
        answer_status(h, false, ct, 12, d, NULL);
        return;
    }
    int kind = st->classify != NULL ? st->classify(st->classify_arg, ep)
                                    : MICRO__GRPC_UNARY;
    if (kind == MICRO__GRPC_UNKNOWN) {
        atomic_fetch_add(&st->unknown, 1);
        char d[300];
        snprintf(d, sizeof(d), "unknown service %s", ep);
        answer_status(h, false, ct, 12, d, NULL);
        return;
    }
    micro_msg *m = NULL;
    int rc = micro_msg_new(&m);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (reserved_header(&nv[i])) {
            continue;
        }
        char k[256], v[4096];
        if (nv[i].namelen >= sizeof(k) || nv[i].valuelen >= sizeof(v)) {
            continue;
        }
        memcpy(k, nv[i].name, nv[i].namelen);
        k[nv[i].namelen] = '\0';
        memcpy(v, nv[i].value, nv[i].valuelen);
        v[nv[i].valuelen] = '\0';
        const char *old = micro_msg_header(m, k);
        if (old != NULL) {
            /* repeated metadata: joined as Go Micro does */
            size_t ol = strlen(old);
            char *j = micro__malloc(ol + 2 + nv[i].valuelen + 1);
            if (j == NULL) {
                rc = MICRO_ENOMEM;
                break;
            }
            snprintf(j, ol + 2 + nv[i].valuelen + 1, "%s, %s", old, v);
            rc = micro_msg_set_header(m, k, j);
            micro__free(j);
        } else {
            rc = micro_msg_set_header(m, k, v);
        }
    }
    /* The deadline runs from the headers' arrival: Go Micro's `timeout`
     * metadata (ns) first, as its server does, else grpc-timeout. The
     * Timeout header is set again, to what is left, when the request goes
     * up (set_timeout). */
    int64_t deadline = rc == 0 ? micro__mucp_deadline(m) : 0;
    if (rc == 0 && deadline == 0 && gto != NULL) {
        int64_t ms = micro__grpc_timeout_ms(gto->value, gto->valuelen);
        if (ms >= 0) {
            deadline = micro__deadline_after(ms > 0 ? ms : 1);
        }
    }
    micro_msg_del_header(m, "Timeout");
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Content-Type", ct);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Endpoint", ep);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Service", svc);
    }
    char id[32];
    snprintf(id, sizeof(id), "%d", (int) micro__h2_stream_id(h));
    if (rc == 0 && kind == MICRO__GRPC_STREAM) {
        rc = micro_msg_set_header(m, "Micro-Stream", id);
    }
    if (rc == 0 && micro_msg_header(m, "Micro-Id") == NULL) {
        rc = micro_msg_set_header(m, "Micro-Id", id);
    }
    micro_socket *s = NULL;
    if (rc == 0) {
        rc = micro_socket_new_accepted(st->t, &s);
    }
    if (rc != 0) {
        micro_msg_free(m);
        micro__h2_stream_reset(h, MICRO__H2_INTERNAL_ERROR);
        return;
    }
    gsock *gs = GS(s);
    gs->s = s;
    gs->st = st;
    gs->gc = gc;
    gs->h2 = h;
    gs->server = true;
    gs->stream = kind == MICRO__GRPC_STREAM;
    gs->first = m;
    gs->deadline = deadline;
    snprintf(gs->ep, sizeof(gs->ep), "%s", ep);
    snprintf(gs->ct, sizeof(gs->ct), "%s", ct);
    micro_socket_set_names(s, micro__h2_remote(gc->h2),
        micro__h2_local(gc->h2));
    if (micro_msg_set_header(m, "Remote", micro__h2_remote(gc->h2)) != 0) {
        micro_socket_close(s);
        return;
    }
    micro__h2_stream_set_cbs(h, &sv_stream_cbs, gs);
    bool alive = true;
    gs->alive = &alive;
    micro_socket_accepted(s);
    if (!alive) {
        return;
    }
    gs->alive = NULL;
    if (gs->stream) {
        m = gs->first;
        gs->first = NULL;
        if (!set_timeout(gs, m)) {
            return;
        }
        gs->emitted_first = true;
        (void) emit_msg(gs, m);
    }
}

/* ------------------------------------------------------------------ */
/* Connections.                                                         */

static void
gconn_unlink(gconn *gc)
{
    gconn **head = gc->gl != NULL ? &gc->gl->conns : &gc->st->conns;
    if (gc->prev != NULL) {
        gc->prev->next = gc->next;
    } else if (*head == gc) {
        *head = gc->next;
    }
    if (gc->next != NULL) {
        gc->next->prev = gc->prev;
    }
    gc->prev = gc->next = NULL;
}

static void
gconn_link(gconn **head, gconn *gc)
{
    gc->next = *head;
    if (*head != NULL) {
        (*head)->prev = gc;
    }
    *head = gc;
}

/* A connection is gone (its streams' sockets were told first). */
static void
on_h2_close(void *arg, micro__h2 *c, int rc)
{
    (void) c;
    (void) rc;
    gconn *gc = arg;
    gc->h2 = NULL;
    gconn_unlink(gc);
    micro__free(gc);
}

static const micro__h2_cbs server_cbs = {
    .on_stream = on_h2_stream,
    .on_close = on_h2_close,
};

static void
on_accept(void *arg, micro__bs *bs)
{
    gstate *st = arg;
    gconn *gc = micro__calloc(1, sizeof(*gc));
    if (gc == NULL) {
        micro__bs_close(bs);
        return;
    }
    gc->st = st;
    if (micro__h2_new(&gc->h2, bs, &st->h2, &server_cbs, gc) != 0) {
        micro__free(gc);
        return;
    }
    gconn_link(&st->conns, gc);
    atomic_fetch_add(&st->accepted, 1);
}

void
micro__grpc_transport_accept(micro_transport *t, micro__bs *bs)
{
    on_accept(micro__transport_state(t), bs);
}

/* ------------------------------------------------------------------ */
/* Client side.                                                         */

static void gloop_on_close(micro__loop_ext *x);

static gloop *
gloop_get(gstate *st, micro_loop *loop)
{
    gloop *gl = (gloop *) micro__loop_ext_find(loop, st);
    if (gl != NULL) {
        return gl;
    }
    gl = micro__calloc(1, sizeof(*gl));
    if (gl == NULL) {
        return NULL;
    }
    gl->ext.key = st;
    gl->ext.on_close = gloop_on_close;
    gl->st = st;
    gl->loop = loop;
    micro__loop_ext_add(loop, &gl->ext);
    pthread_mutex_lock(&st->mu);
    gl->next = st->gloops;
    st->gloops = gl;
    pthread_mutex_unlock(&st->mu);
    return gl;
}

static void
gloop_close_conns(gloop *gl)
{
    while (gl->conns != NULL) {
        gconn *gc = gl->conns;
        gconn_unlink(gc);
        if (gc->h2 != NULL) {
            micro__h2 *h = gc->h2;
            gc->h2 = NULL;
            micro__h2_close(h);
        }
        if (!gc->connected) {
            micro__aio_cancel(&gc->aio, MICRO_ECANCELED);
            gc->gl = NULL; /* the dial's completion frees it */
            continue;
        }
        micro__free(gc);
    }
}

static void
gloop_unlist(gloop *gl)
{
    gstate *st = gl->st;
    pthread_mutex_lock(&st->mu);
    for (gloop **pp = &st->gloops; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == gl) {
            *pp = gl->next;
            break;
        }
    }
    pthread_mutex_unlock(&st->mu);
}

static void
gloop_on_close(micro__loop_ext *x)
{
    gloop *gl = (gloop *) x;
    gloop_close_conns(gl);
    if (gl->st != NULL) {
        gloop_unlist(gl);
    }
    micro__free(gl);
}

/* On gl's loop: close its connections and forget it. */
static int
gloop_close_on_loop(void *arg)
{
    gloop *gl = arg;
    micro__loop_ext_remove(gl->loop, &gl->ext);
    gloop_close_conns(gl);
    micro__free(gl);
    return 0;
}

static void cl_start(gsock *gs);

static void
dial_report(micro__task *t)
{
    gloop *gl = (gloop *) ((char *) t - offsetof(gloop, rtask));
    gl->rposted = false;
    gsock *w = gl->reports;
    gl->reports = NULL;
    while (w != NULL) {
        gsock *next = w->wnext;
        w->wnext = NULL;
        if (w->gc != NULL && w->gc->h2 != NULL) {
            cl_start(w);
        } else {
            micro_socket_dialed(w->s, MICRO_ECONNRESET);
        }
        w = next;
    }
}

static const micro__h2_cbs client_cbs = {
    .on_stream = NULL,
    .on_close = on_h2_close, /* as a server connection's */
};

static void
on_conn_dialed(micro__aio *a)
{
    gconn *gc = a->arg;
    micro__bs *bs = a->out;
    int rc = a->rc;
    gsock *w = gc->waiting;
    gc->waiting = NULL;
    if (gc->gl == NULL) { /* abandoned by the loop's close */
        if (bs != NULL) {
            micro__bs_close(bs);
        }
        micro__free(gc);
        return;
    }
    if (rc == 0 && gc->st->tls.client != NULL) {
        /* gRPC over TLS is HTTP/2 chosen by ALPN: a server that did not
         * choose h2 speaks something else (HTTP/1.1, perhaps Go Micro's
         * http transport). */
        const char *p = micro__tls_alpn(bs);
        if (p == NULL || strcmp(p, "h2") != 0) {
            MICRO_LOGF(MICRO_LOG_WARN, GR_COMPONENT,
                "%s: the TLS server negotiated %s%s%s instead of ALPN h2: "
                "not a gRPC server, refused", gc->addr,
                p != NULL && p[0] ? "ALPN \"" : "no ALPN",
                p != NULL ? p : "", p != NULL && p[0] ? "\"" : "");
            micro__bs_close(bs);
            rc = MICRO_ETLS;
        }
    }
    if (rc == 0) {
        rc = micro__h2_new(&gc->h2, bs, &gc->st->h2c, &client_cbs, gc);
    }
    if (rc == 0) {
        gc->connected = true;
    } else {
        gconn_unlink(gc);
        micro__free(gc);
    }
    while (w != NULL) {
        gsock *next = w->wnext;
        w->wnext = NULL;
        w->gc = rc == 0 ? gc : NULL;
        if (rc == 0) {
            cl_start(w);
        } else {
            micro_socket_dialed(w->s, rc);
        }
        w = next;
    }
}

static int
grpc_dial(void *st_, micro_socket *s, const char *addr, int64_t timeout_ms)
{
    gstate *st = st_;
    gsock *gs = GS(s);
    gs->s = s;
    gs->st = st;
    gs->timeout_ms = timeout_ms;
    gloop *gl = gloop_get(st, micro_socket_loop(s));
    if (gl == NULL) {
        return MICRO_ENOMEM;
    }
    gconn *gc = NULL;
    for (gconn *c = gl->conns; c != NULL; c = c->next) {
        if (strcmp(c->addr, addr) == 0 &&
            (!c->connected || (c->h2 != NULL && micro__h2_usable(c->h2)))) {
            gc = c;
            break;
        }
    }
    if (gc == NULL) {
        if (strlen(addr) >= sizeof(gc->addr)) {
            return MICRO_EINVAL;
        }
        gc = micro__calloc(1, sizeof(*gc));
        if (gc == NULL) {
            return MICRO_ENOMEM;
        }
        gc->st = st;
        gc->gl = gl;
        snprintf(gc->addr, sizeof(gc->addr), "%s", addr);
        gc->dial.addr = gc->addr;
        gc->dial.tls = st->tls.client;
        gconn_link(&gl->conns, gc);
        micro__aio_init(&gc->aio, gl->loop, on_conn_dialed, gc);
        micro__aio_set_timeout(&gc->aio, timeout_ms);
        micro__aio_start(&gc->aio, micro__io_dial_start, &gc->dial);
    }
    if (!gc->connected) {
        gs->wnext = gc->waiting;
        gc->waiting = gs;
        return 0;
    }
    gs->gc = gc;
    gs->wnext = gl->reports;
    gl->reports = gs;
    if (!gl->rposted) {
        gl->rposted = true;
        gl->rtask.fn = dial_report;
        micro__loop_defer(gl->loop, &gl->rtask);
    }
    return 0;
}

static void
cl_start(gsock *gs)
{
    micro_socket_set_names(gs->s, micro__h2_remote(gs->gc->h2),
        micro__h2_local(gs->gc->h2));
    micro_socket_dialed(gs->s, 0);
}

/* Take gs off whichever list waits to report its dial. */
static void
grpc_dial_cancel(micro_socket *s)
{
    gsock *gs = GS(s);
    gloop *gl = gs->st != NULL
        ? (gloop *) micro__loop_ext_find(micro_socket_loop(s), gs->st)
        : NULL;
    if (gl == NULL) {
        return;
    }
    for (gsock **pp = &gl->reports; *pp != NULL; pp = &(*pp)->wnext) {
        if (*pp == gs) {
            *pp = gs->wnext;
            return;
        }
    }
    for (gconn *c = gl->conns; c != NULL; c = c->next) {
        for (gsock **pp = &c->waiting; *pp != NULL; pp = &(*pp)->wnext) {
            if (*pp == gs) {
                *pp = gs->wnext;
                return;
            }
        }
    }
}

/* Client: response headers, then trailers. */
static void
cl_on_headers(void *arg, micro__h2_stream *h, const micro__h2_nv *nv,
    size_t n, bool trailers)
{
    (void) h;
    gsock *gs = arg;
    if (gs->first == NULL && micro_msg_new(&gs->first) != 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (nv[i].namelen == 0 || nv[i].name[0] == ':') {
            if (nv_is(&nv[i], ":status")) {
                char v[8];
                snprintf(v, sizeof(v), "%.*s", (int) nv[i].valuelen,
                    nv[i].value);
                (void) micro_msg_set_header(gs->first, ":status", v);
            }
            continue;
        }
        char k[256];
        if (nv[i].namelen >= sizeof(k)) {
            continue;
        }
        memcpy(k, nv[i].name, nv[i].namelen);
        k[nv[i].namelen] = '\0';
        char *v = micro__malloc(nv[i].valuelen + 1);
        if (v == NULL) {
            continue;
        }
        memcpy(v, nv[i].value, nv[i].valuelen);
        v[nv[i].valuelen] = '\0';
        (void) micro_msg_set_header(gs->first, k, v);
        micro__free(v);
    }
    (void) trailers;
    gs->responded = true;
}

/* The status of the call, once the trailers (or a trailers-only answer)
 * are in and the messages before them went up (gs_end): an answer message
 * carrying Micro-Error, or the end. */
static bool
cl_end(gsock *gs)
{
    micro_msg *t = gs->first;
    const char *status = t ? micro_msg_header(t, "grpc-status") : NULL;
    const char *http = t ? micro_msg_header(t, ":status") : NULL;
    int code = status != NULL ? (int) strtol(status, NULL, 10) : -1;
    if (code == 0 && status != NULL) {
        if (!gs->emitted_first) {
            /* no message: an empty answer */
            micro_msg *m = NULL;
            if (micro_msg_new(&m) == 0) {
                gs->emitted_first = true;
                if (!emit_msg(gs, m)) {
                    return false;
                }
            }
        }
        if (!gs->eof_sent) {
            micro_msg *m = NULL;
            if (micro_msg_new(&m) == 0 &&
                micro_msg_set_header(m, "Micro-Error", "EOS") == 0) {
                gs->eof_sent = true;
                if (!emit_msg(gs, m)) {
                    return false;
                }
            } else {
                micro_msg_free(m);
            }
        }
        return true;
    }
    /* An error: Go Micro's client prefers the detail, then the message
     * parsed as a micro error, then the status code mapped back. */
    micro_error *e = NULL;
    const char *gm = t ? micro_msg_header(t, "grpc-message") : NULL;
    char *msg = NULL;
    if (gm != NULL) {
        size_t l = strlen(gm);
        msg = micro__malloc(l + 1);
        if (msg != NULL) {
            size_t k = 0;
            for (size_t i = 0; i < l; i++) {
                if (gm[i] == '%' && i + 2 < l &&
                    isxdigit((unsigned char) gm[i + 1]) &&
                    isxdigit((unsigned char) gm[i + 2])) {
                    char hx[3] = {gm[i + 1], gm[i + 2], 0};
                    msg[k++] = (char) strtol(hx, NULL, 16);
                    i += 2;
                } else {
                    msg[k++] = gm[i];
                }
            }
            msg[k] = '\0';
        }
    }
    if (msg != NULL) {
        e = micro_error_parse(msg, strlen(msg));
        if (e != NULL && e->code == 0 && (e->id == NULL || !e->id[0])) {
            micro_error_free(e);
            e = NULL;
        }
    }
    if (e == NULL) {
        int32_t mc = status != NULL ? micro__grpc_code_of(code) : 500;
        char d[512];
        if (status == NULL) {
            snprintf(d, sizeof(d), "grpc: no status in the answer (HTTP %s)",
                http ? http : "?");
        } else {
            snprintf(d, sizeof(d), "%s", msg ? msg : "");
        }
        e = micro_error_new("go.micro.client", mc, d);
    }
    micro__free(msg);
    char *json = e ? micro_error_to_json(e) : NULL;
    micro_error_free(e);
    micro_msg *m = NULL;
    if (json != NULL && micro_msg_new(&m) == 0 &&
        micro_msg_set_header(m, "Micro-Error", json) == 0) {
        gs->eof_sent = true;
        free(json);
        return emit_msg(gs, m);
    }
    free(json);
    micro_msg_free(m);
    micro_socket_emit_close(gs->s, MICRO_ENOMEM);
    return false;
}

static const micro__h2_stream_cbs cl_stream_cbs = {
    .on_headers = cl_on_headers,
    .on_data = sv_on_data,
    .on_end = gs_on_end,
    .on_drain = gs_on_drain,
    .on_close = gs_on_close,
};

/* The client's first send opens the HTTP/2 stream with the request's
 * headers: path /<service>.<Handler>/<Method> as Go Micro's gRPC client. */
static int
cl_open(gsock *gs, const micro_msg *m)
{
    const char *svc = micro__mucp_hdr2(m, "Micro-Service", "X-Micro-Service");
    const char *ep = micro__mucp_hdr2(m, "Micro-Endpoint", "X-Micro-Endpoint");
    if (ep == NULL) {
        ep = micro__mucp_hdr2(m, "Micro-Method", "X-Micro-Method");
    }
    const char *dot = ep ? strchr(ep, '.') : NULL;
    if (dot == NULL) {
        return MICRO_EINVAL;
    }
    int l = svc != NULL && svc[0]
        ? snprintf(gs->path, sizeof(gs->path), "/%s.%.*s/%s", svc,
              (int) (dot - ep), ep, dot + 1)
        : snprintf(gs->path, sizeof(gs->path), "/%.*s/%s", (int) (dot - ep),
              ep, dot + 1);
    if (l < 0 || (size_t) l >= sizeof(gs->path)) {
        return MICRO_EINVAL;
    }
    const char *ct = micro_msg_header(m, "Content-Type");
    snprintf(gs->ct, sizeof(gs->ct), "%s",
        ct != NULL && strncasecmp(ct, "application/grpc", 16) == 0
            ? ct : "application/grpc+proto");
    micro__h2_nv nv[64];
    size_t n = 0;
    nv[n++] = NV(":method", "POST");
    nv[n++] = NV(":scheme",
        gs->st->tls.client != NULL ? "https" : "http");
    nv[n++] = NV(":path", gs->path);
    nv[n++] = NV(":authority", gs->gc->addr);
    nv[n++] = NV("content-type", gs->ct);
    nv[n++] = NV("te", "trailers");
    char gto[24] = "";
    const char *to = micro_msg_header(m, "Timeout");
    if (to != NULL) {
        long long ns = strtoll(to, NULL, 10);
        long long ms = ns / 1000000 + (ns % 1000000 != 0);
        if (ms > 0) {
            snprintf(gto, sizeof(gto), "%lldm", ms > 99999999 ? 99999999 : ms);
            nv[n++] = NV("grpc-timeout", gto);
            /* Go Micro's own, in nanoseconds */
            nv[n++] = NV("timeout", to);
        }
    }
    /* metadata: lower-cased keys (HTTP/2 requires it) */
    char keys[48][128];
    size_t nk = 0;
    for (size_t i = 0; i < m->n && n < 60 && nk < 48; i++) {
        const char *k = m->hdrs[i].key;
        if (strncasecmp(k, "Micro-", 6) == 0 ||
            strncasecmp(k, "X-Micro-", 8) == 0 ||
            strcasecmp(k, "Content-Type") == 0 ||
            strcasecmp(k, "Timeout") == 0 || strcasecmp(k, "Accept") == 0 ||
            strlen(k) >= sizeof(keys[0])) {
            continue;
        }
        size_t kl = strlen(k);
        for (size_t j = 0; j <= kl; j++) {
            keys[nk][j] = (char) tolower((unsigned char) k[j]);
        }
        nv[n++] = (micro__h2_nv){keys[nk], m->hdrs[i].value, kl,
            m->hdrs[i].vlen};
        nk++;
    }
    return micro__h2_request(gs->gc->h2, nv, n, &cl_stream_cbs, gs, &gs->h2);
}

/* ------------------------------------------------------------------ */
/* Socket ops.                                                          */

/* The body of m as one gRPC message: the codec framed it, except an
 * empty message, which Go Micro's codecs write as nothing and gRPC as a
 * frame of length 0. */
static int
write_message(gsock *gs, const micro_msg *m)
{
    size_t len = 0;
    const void *b = micro_msg_body(m, &len);
    micro_buf buf = {0};
    static const uint8_t empty[5] = {0, 0, 0, 0, 0};
    if (micro_buf_append(&buf, len > 0 ? b : empty, len > 0 ? len : 5) != 0) {
        return MICRO_ENOMEM;
    }
    return micro__h2_stream_write(gs->h2, &buf);
}

static int
grpc_send(micro_socket *s, const micro_msg *m)
{
    gsock *gs = GS(s);
    if (gs->ended || gs->done) {
        return MICRO_ECLOSED;
    }
    if (!gs->server) {
        if (gs->h2 == NULL) {
            if (gs->gc == NULL || gs->gc->h2 == NULL) {
                return MICRO_ECLOSED;
            }
            int rc = cl_open(gs, m);
            if (rc != 0) {
                return rc;
            }
            /* With a gRPC content type rpc/stream.c sends no placeholder:
             * the first message opens the stream and is a message. */
            gs->stream = micro__mucp_hdr2(m, "Micro-Stream",
                             "X-Micro-Stream") != NULL;
        }
        const char *err = micro_msg_header(m, "Micro-Error");
        if (err != NULL) {
            gs->ended = true;
            return micro__h2_stream_end(gs->h2, NULL, 0);
        }
        int rc = write_message(gs, m);
        if (rc != 0) {
            return rc;
        }
        if (!gs->stream) {
            gs->ended = true; /* unary: the one message */
            return micro__h2_stream_end(gs->h2, NULL, 0);
        }
        return 0;
    }
    if (gs->h2 == NULL) {
        return MICRO_ECLOSED;
    }
    const char *err = micro_msg_header(m, "Micro-Error");
    if (err != NULL && strcmp(err, "EOS") != 0) {
        micro_error *e = micro_error_parse(err, strlen(err));
        int status = micro__grpc_status_of(e ? e->code : 500);
        answer_status(gs->h2, gs->responded, gs->ct, status, err, e);
        micro_error_free(e);
        gs->responded = gs->ended = true;
        return 0;
    }
    if (!gs->responded) {
        micro__h2_nv nv[40];
        size_t n = 0;
        nv[n++] = NV(":status", "200");
        nv[n++] = NV("content-type", gs->ct);
        char keys[38][128];
        for (size_t i = 0; i < m->n && n < 40; i++) {
            const char *k = m->hdrs[i].key;
            if (strncasecmp(k, "Micro-", 6) == 0 ||
                strncasecmp(k, "X-Micro-", 8) == 0 ||
                strcasecmp(k, "Content-Type") == 0 ||
                strlen(k) >= sizeof(keys[0])) {
                continue;
            }
            size_t kl = strlen(k);
            for (size_t j = 0; j <= kl; j++) {
                keys[n - 2][j] = (char) tolower((unsigned char) k[j]);
            }
            nv[n] = (micro__h2_nv){keys[n - 2], m->hdrs[i].value, kl,
                m->hdrs[i].vlen};
            n++;
        }
        int rc = micro__h2_stream_respond(gs->h2, nv, n, false);
        if (rc != 0) {
            return rc;
        }
        gs->responded = true;
    }
    if (err == NULL) {
        int rc = write_message(gs, m);
        if (rc != 0) {
            return rc;
        }
    }
    if (!gs->stream || (err != NULL && strcmp(err, "EOS") == 0)) {
        micro__h2_nv t[] = {NV("grpc-status", "0")};
        gs->ended = true;
        return micro__h2_stream_end(gs->h2, t, 1);
    }
    return 0;
}

static int
grpc_close_send(micro_socket *s)
{
    gsock *gs = GS(s);
    if (gs->ended || gs->h2 == NULL) {
        return 0;
    }
    gs->ended = true;
    if (!gs->server) {
        return micro__h2_stream_end(gs->h2, NULL, 0);
    }
    if (!gs->responded) {
        gs->responded = true;
        answer_status(gs->h2, false, gs->ct, 0, "", NULL);
        return 0;
    }
    micro__h2_nv t[] = {NV("grpc-status", "0")};
    return micro__h2_stream_end(gs->h2, t, 1);
}

static void
grpc_pause(micro_socket *s, bool paused)
{
    gsock *gs = GS(s);
    if (gs->paused == paused) {
        return;
    }
    gs->paused = paused;
    if (paused) {
        return;
    }
    /* the messages taken meanwhile, then the end if it came */
    bool alive = gs->peer_ended && !end_reported(gs) ? gs_end(gs)
                                                     : deliver(gs);
    if (!alive) {
        return;
    }
    if (gs->close_pending && !gs->paused) {
        /* the stream ended cleanly while paused: everything went up */
        gs->close_pending = false;
        if (gs->server) {
            micro_socket_emit_close(gs->s, MICRO_EOF);
        } else if (!gs->eof_sent) {
            gs->eof_sent = true;
            micro_socket_emit_close(gs->s, MICRO_EOF);
        }
    }
}

static void
grpc_set_busy(micro_socket *s, bool busy)
{
    (void) s;
    (void) busy;
}

static size_t
grpc_unsent(const micro_socket *s)
{
    const gsock *gs = GSC(s);
    return gs->h2 != NULL ? micro__h2_stream_unsent(gs->h2) : 0;
}

static bool
grpc_reusable(const micro_socket *s)
{
    (void) s;
    return false; /* one exchange per stream; the connection is shared */
}

static bool
grpc_got_bytes(const micro_socket *s)
{
    return GSC(s)->responded;
}

static void
grpc_sock_close(micro_socket *s)
{
    gsock *gs = GS(s);
    if (gs->alive != NULL) {
        *gs->alive = false;
        gs->alive = NULL;
    }
    if (!gs->server && gs->h2 == NULL && !gs->done) {
        grpc_dial_cancel(s);
    }
    if (gs->h2 != NULL) {
        micro__h2_stream *h = gs->h2;
        gs->h2 = NULL;
        if (!gs->done && !gs->ended) {
            micro__h2_stream_reset(h, MICRO__H2_CANCEL);
        } else {
            /* our answer is queued: it goes out; what the peer still
             * sends is consumed and dropped by the engine */
            micro__h2_stream_set_cbs(h, NULL, NULL);
        }
    }
    micro_msg_free(gs->first);
    gs->first = NULL;
    micro_buf_clear(&gs->in);
    gs->in_off = 0;
}

/* ------------------------------------------------------------------ */
/* Transport ops.                                                       */

void
micro__grpc_transport_set_classify(micro_transport *t,
    micro__grpc_classify_fn fn, void *arg, const char *name)
{
    gstate *st = micro__transport_state(t);
    st->classify = fn;
    st->classify_arg = arg;
    snprintf(st->name, sizeof(st->name), "%s", name ? name : "");
}

static int
grpc_init(void *st_, micro_loop *loop, const micro_options *opts)
{
    gstate *st = st_;
    st->loop = loop;
    /* TLS as the http transport's (transport_secure, the certificate, key
     * and CA files, mTLS, server name, skip verify, handshake timeout),
     * except ALPN: h2, required both ways. */
    micro__tls_conf tc;
    if (micro__tls_conf_load(&tc, opts, "transport")) {
        tc.component = GR_COMPONENT;
        tc.alpn = "h2";
        tc.alpn_required = true;
        int rc = micro__tls_ends_init(&st->tls, &tc);
        if (rc != 0) {
            return rc;
        }
    }
    /* The server's or the client's options (whichever made it). */
    int64_t mm = micro_options_get_int(opts, "server_grpc_max_msg_size");
    if (mm <= 0) {
        mm = micro_options_get_int(opts, "client_grpc_max_msg_size");
    }
    st->max_msg = mm > 0 ? (size_t) mm : MICRO_GRPC_MAX_MESSAGE;
    st->h2.server = true;
    st->h2.max_concurrent = (uint32_t) micro_options_get_int(opts,
        "server_grpc_max_concurrent_streams");
    st->h2.ping_ms = micro_options_get_int(opts, "server_grpc_keepalive_time");
    st->h2.ping_timeout_ms =
        micro_options_get_int(opts, "server_grpc_keepalive_timeout");
    st->h2c = st->h2;
    st->h2c.server = false;
    st->h2c.ping_ms = micro_options_get_int(opts, "client_grpc_keepalive_time");
    pthread_mutex_init(&st->mu, NULL);
    return 0;
}

static int
grpc_listen(void *st_, micro_transport *t, const char *addr)
{
    gstate *st = st_;
    st->t = t;
    micro__tls_ctx *tls = NULL;
    int rc = micro__tls_ends_listen(&st->tls, addr, &tls);
    if (rc == 0) {
        rc = micro__io_listen(st->loop, addr, tls, on_accept, st,
            &st->listener);
    }
    if (rc != 0) {
        return rc;
    }
    snprintf(st->address, sizeof(st->address), "%s",
        micro__io_listener_address(st->listener));
    return 0;
}

static const char *
grpc_listen_address(void *st_)
{
    gstate *st = st_;
    return st->address[0] ? st->address : NULL;
}

/* Graceful: no new connections; every connection says GOAWAY (streams in
 * flight finish; the peer opens new ones elsewhere). */
static void
grpc_stop_listen(void *st_)
{
    gstate *st = st_;
    if (st->listener != NULL) {
        micro__io_listener_close(st->listener);
        st->listener = NULL;
    }
    for (gconn *gc = st->conns; gc != NULL; gc = gc->next) {
        if (gc->h2 != NULL) {
            micro__h2_goaway(gc->h2);
        }
    }
}

static void
grpc_stats(void *st_, micro_transport_stats *out)
{
    gstate *st = st_;
    out->accepted = atomic_load(&st->accepted);
    out->requests = atomic_load(&st->requests);
    out->bad_requests = atomic_load(&st->bad) + atomic_load(&st->unknown);
    out->oversized = atomic_load(&st->oversized);
}

static int
grpc_shutdown(void *st_)
{
    gstate *st = st_;
    grpc_stop_listen(st);
    while (st->conns != NULL) {
        gconn *gc = st->conns;
        gconn_unlink(gc);
        micro__h2 *h = gc->h2;
        gc->h2 = NULL;
        micro__free(gc);
        if (h != NULL) {
            micro__h2_close(h);
        }
    }
    /* Client connections, on every loop that dialled. */
    for (;;) {
        pthread_mutex_lock(&st->mu);
        gloop *gl = st->gloops;
        if (gl != NULL) {
            st->gloops = gl->next;
        }
        pthread_mutex_unlock(&st->mu);
        if (gl == NULL) {
            break;
        }
        if (gl->loop == st->loop) {
            (void) gloop_close_on_loop(gl);
        } else if (micro__loop_call(gl->loop, gloop_close_on_loop, gl) !=
            0) {
            gl->st = NULL; /* its loop is closing: its on_close frees it */
        }
    }
    return 1;
}

static void
grpc_fini(void *st_)
{
    gstate *st = st_;
    pthread_mutex_destroy(&st->mu);
    micro__tls_ends_clear(&st->tls);
}

const micro_transport_ops micro__grpc_transport_ops = {
    .abi = MICRO_TRANSPORT_ABI,
    .name = "grpc",
    .state_size = sizeof(gstate),
    .socket_size = sizeof(gsock),
    .init = grpc_init,
    .listen = grpc_listen,
    .listen_address = grpc_listen_address,
    .stop_listen = grpc_stop_listen,
    .dial = grpc_dial,
    .dial_cancel = grpc_dial_cancel,
    .send = grpc_send,
    .close_send = grpc_close_send,
    .pause = grpc_pause,
    .set_busy = grpc_set_busy,
    .unsent = grpc_unsent,
    .reusable = grpc_reusable,
    .got_bytes = grpc_got_bytes,
    .close = grpc_sock_close,
    .stats = grpc_stats,
    .shutdown = grpc_shutdown,
    .fini = grpc_fini,
};
