/*
 * Transport "http": Go Micro's HTTP transport (spec §1-2, and streams in
 * go-micro-next.md §1). Every transport message is one HTTP/1.1 message:
 * a dialled socket sends POST / requests and receives 200 responses, an
 * accepted socket the reverse; the two directions are independent and
 * pipelined, which carries Go Micro's unary calls and its streams alike.
 *
 * The sockets are HTTP/1.1 connections of http/conn.c over TCP byte
 * streams (io/tcp.c), in buffered mode (whole messages, bodies up to
 * transport_max_message_size). Accepted connections carry the server-side
 * defences: read timeout, idle timeout, a connection cap that closes the
 * longest-idle connection to make room (and refuses, logged, when none is
 * idle), a budget for partially received bodies over all connections, and
 * no reading while a connection's unsent output is over the window.
 *
 * The blocking round trip of the synchronous client is http_blocking.c.
 */
#include "transport/http_internal.h"
#include "core/loop_internal.h"
#include "core/msg_internal.h"
#include "http/conn.h"
#include "io/stream.h"
#include "io/tls.h"

#include <stdatomic.h>
#include <sys/resource.h>

#define HT_COMPONENT "transport.http"

typedef struct hsock hsock;
typedef struct hdial hdial;

typedef struct http_state {
    micro_loop *loop;
    micro_transport *t;
    micro__http_cfg cfg;
    micro__io_listener *listener;
    char address[80];
    micro__tls_ends tls; /* transport_secure: tls.client set */
    hsock *conns;   /* accepted sockets (loop thread) */
    size_t nconns;
    size_t partial; /* bytes of partially received bodies (loop thread) */
    micro__http_pool *pool;
    _Atomic uint64_t accepted, requests, bad, oversized, timeouts, refused,
        evicted, busy;
} http_state;

struct hsock {
    micro_socket *s;
    http_state *st;
    micro__h1_conn *conn;
    hsock *prev, *next; /* st->conns (accepted) */
    hdial *dial;        /* a dial in progress */
    char *host;         /* dialled: the address, for Host */
    bool server;
    bool listed;
    bool send_closed;
    bool busy;
    bool keep_alive;    /* client: the last response's */
    bool had_error;     /* client: a response carried Micro-Error */
    bool partial;       /* a message was partly received when it closed */
};

/* A dial in progress, apart from the socket so that an abandoned one can
 * finish (and free itself) after the socket is gone. */
struct hdial {
    micro__aio aio;
    micro__io_dial d;
    hsock *hs; /* NULL once abandoned */
    char addr[];
};

/* ------------------------------------------------------------------ */
/* Settings.                                                            */

void
micro__http_cfg_load(micro__http_cfg *c, const micro_options *o)
{
    memset(c, 0, sizeof(*c));
    int64_t v = micro_options_get_int(o, "transport_max_message_size");
    c->lim.max_body = v > 0 ? (size_t) v : (size_t) 4 << 20;
    v = micro_options_get_int(o, "transport_max_header_size");
    c->lim.max_header = v > 0 ? (size_t) v : (size_t) 1 << 20;
    v = micro_options_get_int(o, "transport_max_headers");
    c->lim.max_fields = v > 0 ? (size_t) v : 1000;
    c->read_timeout_ms = micro_options_get_ms(o, "transport_read_timeout");
    if (c->read_timeout_ms <= 0) {
        c->read_timeout_ms = 30000;
    }
    c->idle_timeout_ms = micro_options_get_ms(o, "transport_idle_timeout");
    if (c->idle_timeout_ms < 0) {
        c->idle_timeout_ms = 0;
    }
    v = micro_options_get_int(o, "transport_max_conns");
    if (v <= 0) {
        struct rlimit rl;
        v = 1024;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
            v = (int64_t) (rl.rlim_cur / 8 * 7);
        } else if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            v = 1 << 20;
        }
        if (v < 16) {
            v = 16;
        }
    }
    c->max_conns = (size_t) v;
    v = micro_options_get_int(o, "transport_max_buffered");
    c->max_buffered = v > 0 ? (size_t) v : (size_t) 128 << 20;
    v = micro_options_get_int(o, "transport_window");
    c->window = v > 0 ? (size_t) v : (size_t) 256 << 10;
    v = micro_options_get_int(o, "client_pool_size");
    c->pool_size = v > 0 ? (size_t) v : 0;
    c->pool_ttl_ms = micro_options_get_ms(o, "client_pool_ttl");
    c->dial_timeout_ms = micro_options_get_ms(o, "client_dial_timeout");
    if (c->dial_timeout_ms <= 0) {
        c->dial_timeout_ms = 5000;
    }
}

int
micro__http_check_status(const micro__h1_head *h, const char *addr)
{
    if (h->status == 200) {
        return 0;
    }
    /* Go Micro servers always answer 200; anything else is an HTTP
     * intermediary or a different server. */
    MICRO_LOGF(MICRO_LOG_WARN, HT_COMPONENT,
        "%s: unexpected HTTP status %u %s", addr, h->status,
        h->reason != NULL ? h->reason : "");
    return MICRO_EPROTO;
}

static hsock *
HS(micro_socket *s)
{
    return micro_socket_impl(s);
}

static const hsock *
HSC(const micro_socket *s)
{
    return micro_socket_impl((micro_socket *) s);
}

/* ------------------------------------------------------------------ */
/* Connection events, both sides.                                       */

static int
on_head(void *arg, micro__h1_conn *c, micro__h1_head *h)
{
    hsock *hs = arg;
    if (!hs->server) {
        int rc = micro__http_check_status(h, hs->host);
        return rc != 0 ? rc : MICRO__H1_BUFFER;
    }
    if (h->expect_continue && (h->content_length < 0 ||
            (uint64_t) h->content_length <= hs->st->cfg.lim.max_body)) {
        /* curl and friends wait for this before sending a body. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        micro_buf b = {0};
        if (micro_buf_append(&b, cont, sizeof(cont) - 1) != 0) {
            return MICRO_ENOMEM;
        }
        (void) micro__h1_conn_write(c, &b);
    }
    return MICRO__H1_BUFFER;
}

static int
on_end(void *arg, micro__h1_conn *c, micro_msg *msg, bool keep_alive)
{
    hsock *hs = arg;
    (void) c;
    if (hs->server) {
        atomic_fetch_add(&hs->st->requests, 1);
        /* Go Micro hands handlers the peer as metadata "Remote"; a field
         * of that name sent by the peer must not pose as its address. */
        micro__msg_del_all(msg, "Remote");
        const char *remote = micro__h1_conn_remote(hs->conn);
        if (remote[0] != '\0' &&
            micro__msg_add_header_n(msg, "Remote", 6, remote,
                strlen(remote)) != 0) {
            micro_msg_free(msg);
            return MICRO_ENOMEM;
        }
    } else {
        hs->keep_alive = keep_alive;
        if (micro_msg_header(msg, "Micro-Error") != NULL) {
            hs->had_error = true;
        }
    }
    micro_socket_emit_msg(hs->s, msg);
    return 0;
}

/* Answer with a Go Micro error (HTTP 200 + Micro-Error). */
static int
write_micro_error(micro__h1_conn *c, int32_t code, const char *detail)
{
    micro_error *e = micro_error_new("go.micro.transport", code, detail);
    char *json = e ? micro_error_to_json(e) : NULL;
    micro_error_free(e);
    micro_msg *m = NULL;
    micro_buf out = {0};
    int rc = MICRO_ENOMEM;
    if (json != NULL && micro_msg_new(&m) == 0 &&
        micro_msg_set_header(m, "Micro-Error", json) == 0 &&
        micro_msg_set_header(m, "X-Micro-Error", json) == 0 &&
        micro__h1_write_mucp_response(&out, m) == 0) {
        rc = micro__h1_conn_write(c, &out);
    }
    micro_buf_clear(&out);
    micro_msg_free(m);
    free(json);
    return rc;
}

static void
on_reject(void *arg, micro__h1_conn *c, int rc, int status)
{
    hsock *hs = arg;
    http_state *st = hs->st;
    const char *remote = micro__h1_conn_remote(c);
    if (!hs->server) {
        MICRO_LOGF(MICRO_LOG_INFO, HT_COMPONENT, "%s: bad response: %s",
            hs->host, micro_strerror(rc));
        return;
    }
    micro_buf out = {0};
    if (status == 413) {
        atomic_fetch_add(&st->oversized, 1);
        char d[128];
        snprintf(d, sizeof(d),
            "message too large: exceeds the maximum of %zu bytes",
            st->cfg.lim.max_body);
        MICRO_LOGF(MICRO_LOG_WARN, HT_COMPONENT, "%s: %s", remote, d);
        (void) write_micro_error(c, 413, d);
        return;
    }
    if (status == 431) {
        atomic_fetch_add(&st->oversized, 1);
        MICRO_LOGF(MICRO_LOG_WARN, HT_COMPONENT,
            "%s: header block over %zu bytes or %zu fields", remote,
            st->cfg.lim.max_header, st->cfg.lim.max_fields);
    } else if (status == 503) {
        atomic_fetch_add(&st->busy, 1);
    } else {
        atomic_fetch_add(&st->bad, 1);
        MICRO_LOGF(MICRO_LOG_INFO, HT_COMPONENT, "%s: malformed request (%s)",
            remote, micro_strerror(rc));
    }
    if (rc == MICRO_ENOMEM) {
        return; /* close without an answer */
    }
    if (micro__h1_write_reject(&out, status) == 0) {
        (void) micro__h1_conn_write(c, &out);
    }
    micro_buf_clear(&out);
}

static void
on_eof(void *arg, micro__h1_conn *c, int rc)
{
    hsock *hs = arg;
    (void) c;
    micro_socket_emit_eof(hs->s, rc);
}

static void
on_drain(void *arg, micro__h1_conn *c)
{
    hsock *hs = arg;
    (void) c;
    micro_socket_emit_drain(hs->s);
}

static void
unlist(hsock *hs)
{
    if (!hs->listed) {
        return;
    }
    http_state *st = hs->st;
    if (hs->prev != NULL) {
        hs->prev->next = hs->next;
    } else {
        st->conns = hs->next;
    }
    if (hs->next != NULL) {
        hs->next->prev = hs->prev;
    }
    hs->prev = hs->next = NULL;
    hs->listed = false;
    st->nconns--;
}

static void
on_close(void *arg, micro__h1_conn *c, int rc)
{
    hsock *hs = arg;
    hs->partial = micro__h1_conn_receiving(c);
    hs->conn = NULL; /* it frees itself after this */
    if (rc == MICRO_ETIMEDOUT && hs->server) {
        atomic_fetch_add(&hs->st->timeouts, 1);
    }
    micro_socket_emit_close(hs->s, rc);
}

static const micro__h1_conn_cbs conn_cbs = {
    .on_head = on_head,
    .on_end = on_end,
    .on_reject = on_reject,
    .on_eof = on_eof,
    .on_drain = on_drain,
    .on_close = on_close,
};

/* ------------------------------------------------------------------ */
/* Accepting.                                                           */

/* Close the accepted connection idle the longest (nothing being received,
 * nothing in progress, nothing unsent). False when none is idle. */
static bool
evict_idle(http_state *st)
{
    hsock *best = NULL;
    int64_t oldest = INT64_MAX;
    for (hsock *hs = st->conns; hs != NULL; hs = hs->next) {
        if (hs->conn == NULL || hs->busy ||
            micro__h1_conn_receiving(hs->conn) ||
            micro__h1_conn_unsent(hs->conn) > 0) {
            continue;
        }
        int64_t since = micro__h1_conn_idle_since(hs->conn);
        if (since < oldest) {
            oldest = since;
            best = hs;
        }
    }
    if (best == NULL) {
        return false;
    }
    atomic_fetch_add(&st->evicted, 1);
    MICRO_LOGF(MICRO_LOG_INFO, HT_COMPONENT,
        "%zu connections: closing the longest idle (%s) to make room",
        st->nconns, micro__h1_conn_remote(best->conn));
    micro_socket_emit_close(best->s, MICRO_ETIMEDOUT);
    return true;
}

static void
on_accept(void *arg, micro__bs *bs)
{
    http_state *st = arg;
    if (st->nconns >= st->cfg.max_conns && !evict_idle(st)) {
        atomic_fetch_add(&st->refused, 1);
        static int64_t last_log;
        int64_t now = micro__now_ms();
        if (now - last_log > 1000) {
            last_log = now;
            MICRO_LOGF(MICRO_LOG_WARN, HT_COMPONENT,
                "%zu connections, none idle (transport_max_conns): refusing "
                "%s", st->nconns, bs->remote);
        }
        micro__bs_close(bs);
        return;
    }
    micro_socket *s = NULL;
    if (micro_socket_new_accepted(st->t, &s) != 0) {
        micro__bs_close(bs);
        return;
    }
    hsock *hs = HS(s);
    hs->s = s;
    hs->st = st;
    hs->server = true;
    micro__h1_conn_cfg cfg = {
        .kind = MICRO__H1_REQUEST,
        .lim = st->cfg.lim,
        .read_timeout_ms = st->cfg.read_timeout_ms,
        .idle_timeout_ms = st->cfg.idle_timeout_ms,
        .out_high = st->cfg.window,
        .partial = &st->partial,
        .partial_max = st->cfg.max_buffered,
    };
    micro_socket_set_names(s, bs->remote, bs->local);
    if (micro__h1_conn_new(&hs->conn, bs, &cfg, &conn_cbs, hs) != 0) {
        hs->conn = NULL;
        micro_socket_close(s);
        return;
    }
    hs->next = st->conns;
    if (st->conns != NULL) {
        st->conns->prev = hs;
    }
    st->conns = hs;
    hs->listed = true;
    st->nconns++;
    atomic_fetch_add(&st->accepted, 1);
    micro_socket_accepted(s);
}

/* ------------------------------------------------------------------ */
/* Dialling.                                                            */

static void
on_dialed(micro__aio *a)
{
    hdial *d = a->arg;
    hsock *hs = d->hs;
    micro__bs *bs = a->out;
    int rc = a->rc;
    micro__free(d);
    if (hs == NULL) {
        if (bs != NULL) {
            micro__bs_close(bs); /* abandoned */
        }
        return;
    }
    hs->dial = NULL;
    if (rc == 0) {
        micro__h1_conn_cfg cfg = {
            .kind = MICRO__H1_RESPONSE,
            .lim = hs->st->cfg.lim,
            .read_timeout_ms = hs->st->cfg.read_timeout_ms,
        };
        micro_socket_set_names(hs->s, bs->remote, bs->local);
        rc = micro__h1_conn_new(&hs->conn, bs, &cfg, &conn_cbs, hs);
        if (rc != 0) {
            hs->conn = NULL;
        }
    }
    micro_socket_dialed(hs->s, rc);
}

static int
http_dial(void *st_, micro_socket *s, const char *addr, int64_t timeout_ms)
{
    http_state *st = st_;
    hsock *hs = HS(s);
    hs->s = s;
    hs->st = st;
    hs->keep_alive = true;
    size_t len = strlen(addr);
    hs->host = micro__strdup(addr);
    hdial *d = hs->host ? micro__malloc(sizeof(*d) + len + 1) : NULL;
    if (d == NULL) {
        return MICRO_ENOMEM;
    }
    memcpy(d->addr, addr, len + 1);
    d->hs = hs;
    memset(&d->d, 0, sizeof(d->d));
    d->d.addr = d->addr;
    d->d.tls = st->tls.client;
    hs->dial = d;
    micro__aio_init(&d->aio, micro_socket_loop(s), on_dialed, d);
    micro__aio_set_timeout(&d->aio, timeout_ms);
    micro__aio_start(&d->aio, micro__io_dial_start, &d->d);
    return 0;
}

static void
http_dial_cancel(micro_socket *s)
{
    hsock *hs = HS(s);
    hdial *d = hs->dial;
    if (d != NULL) {
        hs->dial = NULL;
        d->hs = NULL;
        micro__aio_cancel(&d->aio, MICRO_ECANCELED);
    }
}

/* ------------------------------------------------------------------ */
/* Socket ops.                                                          */

static int
http_send(micro_socket *s, const micro_msg *m)
{
    hsock *hs = HS(s);
    if (hs->conn == NULL || hs->send_closed) {
        return MICRO_ECLOSED;
    }
    micro_buf out = {0};
    int rc = hs->server ? micro__h1_write_mucp_response(&out, m)
                        : micro__h1_write_mucp_request(&out, hs->host, m);
    if (rc != 0) {
        micro_buf_clear(&out);
        return rc;
    }
    return micro__h1_conn_write(hs->conn, &out);
}

static int
http_close_send(micro_socket *s)
{
    HS(s)->send_closed = true;
    return 0;
}

static void
http_pause(micro_socket *s, bool paused)
{
    hsock *hs = HS(s);
    if (hs->conn != NULL) {
        micro__h1_conn_pause(hs->conn, paused);
    }
}

static void
http_set_busy(micro_socket *s, bool busy)
{
    hsock *hs = HS(s);
    if (hs->busy == busy) {
        return;
    }
    hs->busy = busy;
    if (hs->conn != NULL) {
        micro__h1_conn_hold(hs->conn, busy ? 1 : -1);
    }
}

static void
http_cork(micro_socket *s, bool cork)
{
    hsock *hs = HS(s);
    if (hs->conn != NULL) {
        (void) micro__h1_conn_cork(hs->conn, cork);
    }
}

static size_t
http_unsent(const micro_socket *s)
{
    const hsock *hs = HSC(s);
    return hs->conn != NULL ? micro__h1_conn_unsent(hs->conn) : 0;
}

static bool
http_reusable(const micro_socket *s)
{
    const hsock *hs = HSC(s);
    return !hs->server && hs->conn != NULL && !hs->send_closed &&
        hs->keep_alive && !hs->had_error &&
        !micro__h1_conn_receiving(hs->conn);
}

/* Bytes of a message not yet complete: what tells a stale pooled
 * connection (closed before any byte of the answer) from a failed
 * exchange. */
static bool
http_got_bytes(const micro_socket *s)
{
    const hsock *hs = HSC(s);
    return hs->conn != NULL ? micro__h1_conn_receiving(hs->conn)
                            : hs->partial;
}

static void
http_sock_close(micro_socket *s)
{
    hsock *hs = HS(s);
    http_dial_cancel(s);
    unlist(hs);
    if (hs->conn != NULL) {
        micro__h1_conn *c = hs->conn;
        hs->conn = NULL;
        micro__h1_conn_close(c);
    }
    micro__free(hs->host);
    hs->host = NULL;
}

/* ------------------------------------------------------------------ */
/* Transport ops.                                                       */

static int
http_init(void *st_, micro_loop *loop, const micro_options *opts)
{
    http_state *st = st_;
    st->loop = loop;
    micro__http_cfg_load(&st->cfg, opts);
    micro__tls_conf tc;
    if (micro__tls_conf_load(&tc, opts, "transport")) {
        tc.component = HT_COMPONENT;
        if (tc.alpn == NULL) {
            tc.alpn = "http/1.1"; /* as Go's net/http forces */
        }
        int rc = micro__tls_ends_init(&st->tls, &tc);
        if (rc != 0) {
            return rc;
        }
    }
    int rc = micro__http_pool_new(&st->pool, &st->cfg);
    if (rc != 0) {
        micro__tls_ends_clear(&st->tls);
    }
    return rc;
}

static int
http_listen(void *st_, micro_transport *t, const char *addr)
{
    http_state *st = st_;
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
http_listen_address(void *st_)
{
    http_state *st = st_;
    return st->address[0] ? st->address : NULL;
}

static void
http_stop_listen(void *st_)
{
    http_state *st = st_;
    micro__io_listener_close(st->listener);
    st->listener = NULL;
}

static int
http_roundtrip(void *st_, const char *addr, const micro_msg *req,
    int64_t timeout_ms, micro_msg **rsp, int *sent)
{
    http_state *st = st_;
    if (st->tls.client != NULL) {
        /* The blocking fast path speaks plain TCP; TLS goes through the
         * loop (the front end's generic round trip). */
        return MICRO_ENOTSUP;
    }
    return micro__http_roundtrip(st->pool, addr, req, timeout_ms, rsp, sent);
}

static void
http_stats(void *st_, micro_transport_stats *out)
{
    http_state *st = st_;
    out->accepted = atomic_load(&st->accepted);
    out->requests = atomic_load(&st->requests);
    out->bad_requests = atomic_load(&st->bad);
    out->oversized = atomic_load(&st->oversized);
    out->timeouts = atomic_load(&st->timeouts);
    out->refused = atomic_load(&st->refused);
    out->evicted = atomic_load(&st->evicted);
    out->busy = atomic_load(&st->busy);
}

static int
http_shutdown(void *st_)
{
    http_state *st = st_;
    if (st->listener != NULL) {
        http_stop_listen(st);
    }
    return 1;
}

static void
http_fini(void *st_)
{
    http_state *st = st_;
    micro__http_pool_free(st->pool);
    micro__tls_ends_clear(&st->tls);
}

/* The options this transport reads (its --help group); the HTTP broker
 * and client read the message limits too. */
static const micro_option_desc http_options[] = {
    {"transport_max_message_size", MICRO_OPT_INT, "4194304",
        "largest message body accepted, in bytes"},
    {"transport_max_header_size", MICRO_OPT_INT, "1048576",
        "largest header block accepted, in bytes"},
    {"transport_max_headers", MICRO_OPT_INT, "1000",
        "header fields in one message (more: 431 and close)"},
    {"transport_read_timeout", MICRO_OPT_MS, "30s",
        "idle read timeout of a connection"},
    {"transport_idle_timeout", MICRO_OPT_MS, "5m",
        "an accepted connection with nothing in progress is closed after"},
    {"transport_max_conns", MICRO_OPT_INT, "0",
        "accepted connections (0: 7/8 of the descriptor limit); idle ones "
        "are closed to make room"},
    {"transport_max_buffered", MICRO_OPT_INT, "134217728",
        "bytes of partially received messages over all connections"},
    {"transport_window", MICRO_OPT_INT, "262144",
        "unsent bytes per connection above which it is no longer read, and "
        "a stream's window: the memory its queued messages may hold, each "
        "way"},
    {"transport_secure", MICRO_OPT_BOOL, "false",
        "TLS on every connection (Go Micro's transport.Secure); without a "
        "certificate a self-signed one is made"},
    {"transport_tls_cert_file", MICRO_OPT_STR, NULL,
        "PEM certificate (chain) of this end: the server's, or the "
        "client's for mTLS; reloaded when it changes"},
    {"transport_tls_key_file", MICRO_OPT_STR, NULL,
        "PEM private key of transport_tls_cert_file"},
    {"transport_tls_ca_file", MICRO_OPT_STR, NULL,
        "PEM CAs that verify the peer (default: the system's)"},
    {"transport_tls_client_auth", MICRO_OPT_BOOL, "false",
        "server: require a client certificate signed by "
        "transport_tls_ca_file (mTLS)"},
    {"transport_tls_server_name", MICRO_OPT_STR, NULL,
        "client: the name the server's certificate must carry (default: "
        "the dialled host)"},
    {"transport_tls_alpn", MICRO_OPT_STR, "http/1.1",
        "ALPN protocols offered, comma-separated (gRPC always uses h2)"},
    {"transport_tls_handshake_timeout", MICRO_OPT_MS, "10s",
        "a TLS handshake not complete by then is dropped"},
    MICRO_OPTION_END,
};

const micro_transport_ops micro_transport_http_ops = {
    .abi = MICRO_TRANSPORT_ABI,
    .name = "http",
    .state_size = sizeof(http_state),
    .socket_size = sizeof(hsock),
    .init = http_init,
    .listen = http_listen,
    .listen_address = http_listen_address,
    .stop_listen = http_stop_listen,
    .dial = http_dial,
    .dial_cancel = http_dial_cancel,
    .send = http_send,
    .close_send = http_close_send,
    .pause = http_pause,
    .set_busy = http_set_busy,
    .cork = http_cork,
    .unsent = http_unsent,
    .reusable = http_reusable,
    .got_bytes = http_got_bytes,
    .close = http_sock_close,
    .roundtrip = http_roundtrip,
    .stats = http_stats,
    .shutdown = http_shutdown,
    .fini = http_fini,
    .options = http_options,
};
