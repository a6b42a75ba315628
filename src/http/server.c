/* The general HTTP/1.1 server (server.h). */
#include "http/server.h"
#include "core/loop_internal.h"
#include "core/msg_internal.h"
#include "http/conn.h"
#include "io/stream.h"
#include "io/tls.h"

#include <stdatomic.h>

#define HS_COMPONENT "http.server"
#define SWEEP_MS 1000

typedef struct sconn sconn;

typedef struct rate_log {
    int64_t last;
    uint64_t n;
} rate_log;

struct micro__http_server {
    micro_loop *loop;
    micro__io_listener *lst;
    micro__http_server_cfg cfg;
    const micro__http_server_cbs *cbs;
    void *arg;
    char address[80];
    sconn *conns;
    size_t nconns;
    size_t partial;  /* bytes of buffered bodies still arriving */
    size_t nreqs;    /* live requests */
    bool closed;
    micro__timer sweep;
    rate_log refused_log, reject_log, stall_log, evict_log;
    _Atomic uint64_t accepted, requests, bad, too_large, header_too_large,
        busy, timeouts, write_stalls, refused, evicted, open;
};

struct sconn {
    micro__http_server *s;
    micro__h1_conn *h1;
    sconn *prev, *next;
    micro__http_req *req; /* the exchange in progress */
    micro__timer resume;  /* resume reading on a later turn */
    int64_t progress_at;  /* output last made progress */
    size_t last_unsent;
    bool peer_eof;
    bool closing; /* a last answer is going out: parse nothing more */
};

struct micro__http_req {
    micro__http_server *s;
    sconn *c; /* NULL once the connection is gone */
    micro_msg *msg;
    char *target;
    void *data;
    int64_t content_length;
    int depth; /* owner callbacks running with r */
    char method[24];
    char remote[64];
    bool owned;
    bool streaming;
    bool ended;    /* the request has been received whole */
    bool started;  /* answer head written */
    bool finished; /* answer complete (or dropped) */
    bool keep_alive;
    bool head_only;
    bool close;    /* the answer ends the connection */
};

static const micro__h1_conn_cbs sconn_cbs;

/* ------------------------------------------------------------------ */
/* Logging at most once a second per kind, with the count.              */

static bool
rate_ok(rate_log *rl, uint64_t *count)
{
    int64_t now = micro__now_ms();
    rl->n++;
    if (now - rl->last < 1000) {
        return false;
    }
    rl->last = now;
    *count = rl->n;
    rl->n = 0;
    return true;
}

/* ------------------------------------------------------------------ */
/* Requests and connections.                                            */

static void
server_free(micro__http_server *s)
{
    micro__timer_stop(s->loop, &s->sweep);
    micro__free(s);
}

static void
req_free(micro__http_req *r)
{
    micro__http_server *s = r->s;
    micro_msg_free(r->msg);
    micro__free(r->target);
    micro__free(r);
    s->nreqs--;
    if (s->closed && s->nreqs == 0) {
        server_free(s);
    }
}

/* r is finished or abandoned: free it unless a callback still runs. */
static void
req_release(micro__http_req *r)
{
    if (r->depth == 0) {
        req_free(r);
    }
}

static void
sconn_unlist(sconn *sc)
{
    micro__http_server *s = sc->s;
    if (sc->prev != NULL) {
        sc->prev->next = sc->next;
    } else if (s->conns == sc) {
        s->conns = sc->next;
    }
    if (sc->next != NULL) {
        sc->next->prev = sc->prev;
    }
    sc->prev = sc->next = NULL;
    s->nconns--;
    atomic_fetch_sub(&s->open, 1);
}

/* The request's connection is gone: a request its owner never took is
 * released; the owner of one it took hears of it (tell) and releases it
 * when it has finished. */
static void
req_abandon(micro__http_server *s, micro__http_req *r, int rc, bool tell)
{
    r->c = NULL;
    if (!r->owned) {
        req_release(r);
        return;
    }
    if (tell && s->cbs->on_abort != NULL) {
        r->depth++;
        s->cbs->on_abort(s->arg, r, rc);
        r->depth--;
        if (r->finished) {
            req_release(r);
        }
    }
}

/* The connection is gone (closed by us or for its own reasons). */
static void
sconn_gone(sconn *sc, int rc, bool tell)
{
    micro__http_server *s = sc->s;
    micro__timer_stop(s->loop, &sc->resume);
    sconn_unlist(sc);
    micro__http_req *r = sc->req;
    sc->req = NULL;
    micro__free(sc);
    if (r != NULL) {
        req_abandon(s, r, rc, tell);
    }
}

/* Close now; no conn callback follows. */
static void
sconn_kill(sconn *sc, int rc)
{
    micro__h1_conn *h1 = sc->h1;
    sc->h1 = NULL;
    sconn_gone(sc, rc, true);
    micro__h1_conn_close(h1);
}

static int
write_buf(sconn *sc, micro_buf *b)
{
    if (micro__h1_conn_unsent(sc->h1) == 0) {
        sc->progress_at = micro__now_ms();
        sc->last_unsent = 0;
    }
    return micro__h1_conn_write(sc->h1, b);
}

static void
on_resume(micro__timer *t)
{
    sconn *sc = (sconn *) ((char *) t - offsetof(sconn, resume));
    if (sc->h1 != NULL && sc->req == NULL) {
        micro__h1_conn_pause(sc->h1, false);
    }
}

/* The answer of r is complete: the next request, or the close. */
static void
exchange_done(micro__http_req *r)
{
    sconn *sc = r->c;
    r->finished = true;
    if (sc != NULL) {
        sc->req = NULL;
        r->c = NULL;
        if (r->close) {
            sc->closing = true;
            micro__h1_conn_close_after_write(sc->h1, 0);
        } else {
            micro__h1_conn_hold(sc->h1, -1);
            /* Resume on a later turn, so that the next pipelined request
             * never arrives inside the call that answered this one. */
            if (micro__timer_start(sc->s->loop, &sc->resume, micro__now_ms(),
                    on_resume) != 0) {
                micro__h1_conn_close_after_write(sc->h1, MICRO_ENOMEM);
            }
        }
    }
    req_release(r);
}

/* ------------------------------------------------------------------ */
/* Connection events.                                                   */

static void
send_continue(sconn *sc)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    micro_buf b = {0};
    if (micro_buf_append(&b, cont, sizeof(cont) - 1) == 0) {
        (void) write_buf(sc, &b);
    }
    micro_buf_clear(&b);
}

static int
sc_on_head(void *arg, micro__h1_conn *c, micro__h1_head *h)
{
    sconn *sc = arg;
    micro__http_server *s = sc->s;
    if (sc->closing) {
        return MICRO_ECANCELED; /* pipelined after a closing answer */
    }
    if (sc->req != NULL) {
        return MICRO_EPROTO; /* cannot happen: paused between requests */
    }
    micro__http_req *r = micro__calloc(1, sizeof(*r));
    if (r == NULL) {
        return MICRO_ENOMEM;
    }
    r->target = micro__strdup(h->url != NULL ? h->url : "/");
    if (r->target == NULL) {
        micro__free(r);
        return MICRO_ENOMEM;
    }
    s->nreqs++;
    r->s = s;
    r->c = sc;
    snprintf(r->method, sizeof(r->method), "%s",
        http_method_str((enum http_method) h->method));
    snprintf(r->remote, sizeof(r->remote), "%s", micro__h1_conn_remote(c));
    r->content_length = h->content_length;
    r->keep_alive = h->keep_alive;
    r->head_only = h->method == HTTP_HEAD;
    sc->req = r;
    micro__h1_conn_hold(c, 1);
    int rc = 0;
    if (s->cbs->on_head != NULL) {
        r->msg = h->msg; /* borrowed for the call */
        r->depth++;
        rc = s->cbs->on_head(s->arg, r);
        r->depth--;
        r->msg = NULL;
    }
    if (r->finished) {
        /* Answered at once: the body is not wanted; the connection
         * closes after the answer (r->close was set). */
        req_release(r);
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    bool want = rc == MICRO__HTTP_STREAM ||
        (h->content_length >= 0 &&
            (uint64_t) h->content_length <= s->cfg.lim.max_body) ||
        (h->content_length < 0 && h->chunked);
    if (h->expect_continue && want) {
        send_continue(sc);
    }
    if (rc == MICRO__HTTP_STREAM) {
        r->streaming = true;
        r->owned = true;
        r->msg = h->msg;
        h->msg = NULL;
        return 0;
    }
    return MICRO__H1_BUFFER;
}

static int
sc_on_body(void *arg, micro__h1_conn *c, const char *p, size_t n)
{
    sconn *sc = arg;
    (void) c;
    micro__http_req *r = sc->req;
    micro__http_server *s = sc->s;
    if (r == NULL || !r->streaming || r->finished ||
        s->cbs->on_body == NULL) {
        return 0; /* not wanted: discarded */
    }
    r->depth++;
    int rc = s->cbs->on_body(s->arg, r, p, n);
    r->depth--;
    if (r->finished) {
        req_release(r);
        return MICRO_ECANCELED; /* answered or dropped mid-body */
    }
    return rc < 0 ? rc : 0;
}

static int
sc_on_end(void *arg, micro__h1_conn *c, micro_msg *msg, bool keep_alive)
{
    sconn *sc = arg;
    micro__http_server *s = sc->s;
    micro__http_req *r = sc->req;
    atomic_fetch_add(&s->requests, 1);
    if (r == NULL) {
        /* Its early answer finished it; the connection is closing. */
        micro_msg_free(msg);
        return 0;
    }
    r->ended = true;
    if (msg != NULL) {
        micro_msg_free(r->msg);
        r->msg = msg;
    }
    r->keep_alive = r->keep_alive && keep_alive;
    micro__h1_conn_pause(c, true); /* one exchange at a time */
    r->owned = true;
    r->depth++;
    s->cbs->on_request(s->arg, r);
    r->depth--;
    if (r->finished) {
        req_release(r);
    }
    return 0;
}

static const char *
status_text(int status)
{
    switch (status) {
    case 413:
        return "body too large";
    case 431:
        return "header block too large";
    case 503:
        return "partial-body budget spent";
    default:
        return "malformed request";
    }
}

static void
sc_on_reject(void *arg, micro__h1_conn *c, int rc, int status)
{
    sconn *sc = arg;
    micro__http_server *s = sc->s;
    if (sc->closing) {
        return; /* input after our last answer: not answered again */
    }
    sc->closing = true;
    switch (status) {
    case 413:
        atomic_fetch_add(&s->too_large, 1);
        break;
    case 431:
        atomic_fetch_add(&s->header_too_large, 1);
        break;
    case 503:
        atomic_fetch_add(&s->busy, 1);
        break;
    default:
        atomic_fetch_add(&s->bad, 1);
        break;
    }
    uint64_t n = 0;
    if (rate_ok(&s->reject_log, &n)) {
        MICRO_LOGF(MICRO_LOG_INFO, HS_COMPONENT,
            "%s: %d (%s: %s); %llu refused in the last second", sc->h1 ?
            micro__h1_conn_remote(c) : "?", status, status_text(status),
            micro_strerror(rc), (unsigned long long) n);
    }
    /* The owner first, so that its count is in before the peer sees the
     * answer. */
    if (s->cbs->on_reject != NULL) {
        s->cbs->on_reject(s->arg, micro__h1_conn_remote(c), status, rc);
    }
    if (rc != MICRO_ENOMEM) {
        micro_buf b = {0};
        if (micro__h1_write_reject(&b, status) == 0) {
            (void) write_buf(sc, &b);
        }
        micro_buf_clear(&b);
    }
    micro__http_req *r = sc->req;
    if (r != NULL) {
        sc->req = NULL;
        req_abandon(s, r, rc, true);
    }
}

static void
sc_on_eof(void *arg, micro__h1_conn *c, int rc)
{
    sconn *sc = arg;
    sc->peer_eof = true;
    micro__http_req *r = sc->req;
    if (rc != 0 || r == NULL || !r->ended) {
        /* Nothing to answer (or a request cut short): close once what is
         * queued is written. */
        if (r != NULL && !r->ended) {
            sconn_kill(sc, rc != 0 ? rc : MICRO_ECONNRESET);
            return;
        }
        sc->closing = true;
        micro__h1_conn_close_after_write(c, rc != 0 ? rc : MICRO_EOF);
        return;
    }
    /* A request waits for its answer (a client that half-closed after
     * sending): answer, then close. */
    r->close = true;
}

static void
sc_on_drain(void *arg, micro__h1_conn *c)
{
    sconn *sc = arg;
    (void) c;
    sc->progress_at = micro__now_ms();
    sc->last_unsent = 0;
}

static void
sc_on_close(void *arg, micro__h1_conn *c, int rc)
{
    sconn *sc = arg;
    (void) c;
    if (rc == MICRO_ETIMEDOUT) {
        atomic_fetch_add(&sc->s->timeouts, 1);
    }
    sc->h1 = NULL; /* it frees itself after this */
    sconn_gone(sc, rc, true);
}

static const micro__h1_conn_cbs sconn_cbs = {
    .on_head = sc_on_head,
    .on_body = sc_on_body,
    .on_end = sc_on_end,
    .on_reject = sc_on_reject,
    .on_eof = sc_on_eof,
    .on_drain = sc_on_drain,
    .on_close = sc_on_close,
};

/* ------------------------------------------------------------------ */
/* Accepting, the cap, the output watchdog.                             */

static bool
evict_idle(micro__http_server *s)
{
    sconn *best = NULL;
    int64_t oldest = INT64_MAX;
    for (sconn *sc = s->conns; sc != NULL; sc = sc->next) {
        if (sc->req != NULL || sc->h1 == NULL ||
            micro__h1_conn_receiving(sc->h1) ||
            micro__h1_conn_unsent(sc->h1) > 0) {
            continue;
        }
        int64_t since = micro__h1_conn_idle_since(sc->h1);
        if (since < oldest) {
            oldest = since;
            best = sc;
        }
    }
    if (best == NULL) {
        return false;
    }
    atomic_fetch_add(&s->evicted, 1);
    uint64_t n = 0;
    if (rate_ok(&s->evict_log, &n)) {
        MICRO_LOGF(MICRO_LOG_INFO, HS_COMPONENT,
            "%s: %zu connections: closing the longest idle (%s) to make "
            "room; %llu in the last second",
            s->address, s->nconns, micro__h1_conn_remote(best->h1),
            (unsigned long long) n);
    }
    sconn_kill(best, MICRO_ETIMEDOUT);
    return true;
}

static void
on_sweep(micro__timer *t)
{
    micro__http_server *s =
        (micro__http_server *) ((char *) t -
            offsetof(micro__http_server, sweep));
    int64_t now = micro__now_ms();
    sconn *sc = s->conns;
    while (sc != NULL) {
        sconn *next = sc->next;
        size_t unsent = sc->h1 != NULL ? micro__h1_conn_unsent(sc->h1) : 0;
        if (unsent == 0 || unsent < sc->last_unsent) {
            sc->progress_at = now;
        } else if (now - sc->progress_at > s->cfg.write_timeout_ms) {
            atomic_fetch_add(&s->write_stalls, 1);
            uint64_t n = 0;
            if (rate_ok(&s->stall_log, &n)) {
                MICRO_LOGF(MICRO_LOG_INFO, HS_COMPONENT,
                    "%s: %zu bytes unsent for %lld ms (the peer does not "
                    "read); closing; %llu in the last second",
                    micro__h1_conn_remote(sc->h1), unsent,
                    (long long) (now - sc->progress_at),
                    (unsigned long long) n);
            }
            sconn_kill(sc, MICRO_ETIMEDOUT);
            sc = next;
            continue;
        }
        sc->last_unsent = unsent;
        sc = next;
    }
    if (!s->closed) {
        (void) micro__timer_start(s->loop, &s->sweep, now + SWEEP_MS,
            on_sweep);
    }
}

static void
on_accept(void *arg, micro__bs *bs)
{
    micro__http_server *s = arg;
    if (s->closed) {
        micro__bs_close(bs);
        return;
    }
    if (s->nconns >= s->cfg.max_conns && !evict_idle(s)) {
        atomic_fetch_add(&s->refused, 1);
        uint64_t n = 0;
        if (rate_ok(&s->refused_log, &n)) {
            MICRO_LOGF(MICRO_LOG_WARN, HS_COMPONENT,
                "%s: %zu connections, none idle: refused %llu in the last "
                "second (latest %s)",
                s->address, s->nconns, (unsigned long long) n, bs->remote);
        }
        micro__bs_close(bs);
        return;
    }
    sconn *sc = micro__calloc(1, sizeof(*sc));
    if (sc == NULL) {
        micro__bs_close(bs);
        return;
    }
    sc->s = s;
    sc->progress_at = micro__now_ms();
    micro__h1_conn_cfg cfg = {
        .kind = MICRO__H1_REQUEST,
        .lim = s->cfg.lim,
        .read_timeout_ms = s->cfg.read_timeout_ms,
        .idle_timeout_ms = s->cfg.idle_timeout_ms,
        .out_high = s->cfg.out_high,
        .partial = &s->partial,
        .partial_max = s->cfg.max_partial,
    };
    if (micro__h1_conn_new(&sc->h1, bs, &cfg, &sconn_cbs, sc) != 0) {
        micro__free(sc);
        return;
    }
    sc->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = sc;
    }
    s->conns = sc;
    s->nconns++;
    atomic_fetch_add(&s->open, 1);
    atomic_fetch_add(&s->accepted, 1);
}

/* ------------------------------------------------------------------ */
/* The server.                                                          */

int
micro__http_server_new(micro__http_server **out, micro_loop *loop,
    const char *addr, const micro__http_server_cfg *cfg,
    const micro__http_server_cbs *cbs, void *arg)
{
    *out = NULL;
    micro__http_server *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    s->loop = loop;
    s->cfg = *cfg;
    s->cbs = cbs;
    s->arg = arg;
    micro__http_server_cfg *c = &s->cfg;
    if (c->lim.max_header == 0) {
        c->lim.max_header = (size_t) 1 << 20;
    }
    if (c->lim.max_fields == 0) {
        c->lim.max_fields = 1000;
    }
    if (c->lim.max_body == 0) {
        c->lim.max_body = (size_t) 4 << 20;
    }
    if (c->read_timeout_ms <= 0) {
        c->read_timeout_ms = 30000;
    }
    if (c->idle_timeout_ms <= 0) {
        c->idle_timeout_ms = 120000;
    }
    if (c->write_timeout_ms <= 0) {
        c->write_timeout_ms = 30000;
    }
    if (c->max_conns == 0) {
        c->max_conns = 1024;
    }
    if (c->max_partial == 0) {
        c->max_partial = (size_t) 64 << 20;
    }
    if (c->out_high == 0) {
        c->out_high = (size_t) 256 << 10;
    }
    int rc = micro__io_listen(loop, addr, c->tls, on_accept, s, &s->lst);
    if (rc == 0) {
        rc = micro__timer_start(loop, &s->sweep, micro__now_ms() + SWEEP_MS,
            on_sweep);
    }
    if (rc != 0) {
        if (s->lst != NULL) {
            micro__io_listener_close(s->lst);
        }
        micro__free(s);
        return rc;
    }
    snprintf(s->address, sizeof(s->address), "%s",
        micro__io_listener_address(s->lst));
    *out = s;
    return 0;
}

const char *
micro__http_server_address(const micro__http_server *s)
{
    return s->address;
}

void
micro__http_server_close(micro__http_server *s)
{
    if (s == NULL || s->closed) {
        return;
    }
    s->closed = true;
    micro__timer_stop(s->loop, &s->sweep);
    if (s->lst != NULL) {
        micro__io_listener_close(s->lst);
        s->lst = NULL;
    }
    s->nreqs++; /* keep s while the connections go */
    while (s->conns != NULL) {
        sconn *sc = s->conns;
        micro__h1_conn *h1 = sc->h1;
        sc->h1 = NULL;
        sconn_gone(sc, MICRO_ECANCELED, false);
        micro__h1_conn_close(h1);
    }
    if (--s->nreqs == 0) {
        server_free(s);
    }
}

void
micro__http_server_stats_get(const micro__http_server *s,
    micro__http_server_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->accepted = atomic_load(&s->accepted);
    out->requests = atomic_load(&s->requests);
    out->bad = atomic_load(&s->bad);
    out->too_large = atomic_load(&s->too_large);
    out->header_too_large = atomic_load(&s->header_too_large);
    out->busy = atomic_load(&s->busy);
    out->timeouts = atomic_load(&s->timeouts);
    out->write_stalls = atomic_load(&s->write_stalls);
    out->refused = atomic_load(&s->refused);
    out->evicted = atomic_load(&s->evicted);
    out->conns = atomic_load(&s->open);
}

/* ------------------------------------------------------------------ */
/* The request.                                                         */

const char *
micro__http_req_method(const micro__http_req *r)
{
    return r->method;
}

const char *
micro__http_req_target(const micro__http_req *r)
{
    return r->target;
}

micro_msg *
micro__http_req_headers(const micro__http_req *r)
{
    return r->msg;
}

micro_msg *
micro__http_req_take(micro__http_req *r)
{
    micro_msg *m = r->msg;
    r->msg = NULL;
    return m;
}

const char *
micro__http_req_remote(const micro__http_req *r)
{
    return r->remote;
}

int64_t
micro__http_req_content_length(const micro__http_req *r)
{
    return r->content_length;
}

void
micro__http_req_set_data(micro__http_req *r, void *data)
{
    r->data = data;
}

void *
micro__http_req_data(const micro__http_req *r)
{
    return r->data;
}

size_t
micro__http_req_unsent(const micro__http_req *r)
{
    return r->c != NULL && r->c->h1 != NULL ? micro__h1_conn_unsent(r->c->h1)
                                            : 0;
}

/* The connection of r can take an answer; else r is finished here. */
static int
answerable(micro__http_req *r)
{
    if (r->finished) {
        return MICRO_EINVAL;
    }
    if (r->c == NULL || r->c->h1 == NULL) {
        r->finished = true;
        req_release(r);
        return MICRO_ECLOSED;
    }
    r->close = r->close || !r->keep_alive || !r->ended || r->s->closed ||
        r->c->peer_eof;
    return 0;
}

static int
write_head(micro__http_req *r, unsigned status, const char *reason,
    const micro_msg *hdrs, int64_t len, micro_buf *out)
{
    if (reason == NULL || reason[0] == '\0') {
        reason = http_status_str((enum http_status) status);
    }
    return micro__h1_write_response_head(out, status, reason, hdrs, len,
        r->close);
}

int
micro__http_respond(micro__http_req *r, unsigned status, const char *reason,
    const micro_msg *hdrs, const void *body, size_t len)
{
    if (r->started) {
        return MICRO_EINVAL;
    }
    int rc = answerable(r);
    if (rc != 0) {
        return rc;
    }
    micro_buf out = {0};
    rc = write_head(r, status, reason, hdrs, (int64_t) len, &out);
    if (rc == 0 && !r->head_only && len > 0) {
        rc = micro_buf_append(&out, body, len);
    }
    if (rc == MICRO_EINVAL) {
        micro_buf_clear(&out);
        return rc; /* a bad field: r stays the owner's */
    }
    if (rc == 0) {
        rc = write_buf(r->c, &out);
    } else {
        r->c->closing = true;
        micro__h1_conn_close_after_write(r->c->h1, rc);
        r->close = true;
    }
    micro_buf_clear(&out);
    r->started = true;
    exchange_done(r);
    return rc;
}

int
micro__http_respond_start(micro__http_req *r, unsigned status,
    const char *reason, const micro_msg *hdrs)
{
    if (r->started) {
        return MICRO_EINVAL;
    }
    if (r->finished) {
        return MICRO_EINVAL;
    }
    if (r->c == NULL || r->c->h1 == NULL) {
        return MICRO_ECLOSED; /* finished by respond_end or drop */
    }
    r->close = r->close || !r->keep_alive || !r->ended || r->s->closed ||
        r->c->peer_eof;
    micro_buf out = {0};
    int rc = write_head(r, status, reason, hdrs, -1, &out);
    if (rc == 0) {
        rc = write_buf(r->c, &out);
        r->started = rc == 0;
    }
    micro_buf_clear(&out);
    return rc;
}

int
micro__http_respond_chunk(micro__http_req *r, const void *p, size_t n)
{
    if (!r->started || r->finished || n == 0) {
        return MICRO_EINVAL;
    }
    if (r->c == NULL || r->c->h1 == NULL) {
        return MICRO_ECLOSED;
    }
    if (r->head_only) {
        return 0;
    }
    micro_buf out = {0};
    int rc = micro__h1_write_chunk(&out, p, n);
    if (rc == 0) {
        rc = write_buf(r->c, &out);
    }
    micro_buf_clear(&out);
    return rc;
}

int
micro__http_respond_end(micro__http_req *r)
{
    if (r->finished) {
        return MICRO_EINVAL;
    }
    if (!r->started) {
        /* Never started (or the connection went first): finish it. */
        int rc = answerable(r);
        if (rc != 0) {
            return rc;
        }
        return MICRO_EINVAL;
    }
    if (r->c == NULL || r->c->h1 == NULL) {
        r->finished = true;
        req_release(r);
        return MICRO_ECLOSED;
    }
    int rc = 0;
    if (!r->head_only) {
        micro_buf out = {0};
        rc = micro__h1_write_chunk(&out, NULL, 0);
        if (rc == 0) {
            rc = write_buf(r->c, &out);
        }
        micro_buf_clear(&out);
    }
    exchange_done(r);
    return rc;
}

void
micro__http_req_drop(micro__http_req *r)
{
    if (r->finished) {
        return;
    }
    r->finished = true;
    sconn *sc = r->c;
    if (sc != NULL) {
        sc->req = NULL;
        r->c = NULL;
        if (sc->h1 != NULL) {
            sconn_kill(sc, MICRO_ECANCELED);
        }
    }
    req_release(r);
}
