/*
 * The HTTP/2 connection engine (h2.h): nghttp2 drives the protocol (frame
 * parsing, HPACK, stream states, flow-control accounting); this file moves
 * bytes between it and a micro__bs, keeps the owner's data flow honest
 * (manual WINDOW_UPDATE: see micro__h2_stream_consume), and adds what
 * nghttp2 leaves to its user: the output bound, keepalive pings, graceful
 * GOAWAY, and a budget of peer resets.
 *
 * Re-entrancy: nghttp2 calls back from inside nghttp2_session_mem_recv and
 * _mem_send; an owner may close the connection from one of those
 * callbacks, so the engine counts how deep it is (c->depth) and frees
 * itself only when it is back at the top. Output is produced by one pass
 * (pump) run after input is handled and from a deferred task after the
 * owner queued something, never inside an owner's call.
 */
#include "http/h2.h"

#include <nghttp2/nghttp2.h>

#define H2_COMPONENT "h2"
#define CHUNK 16384

typedef struct obuf obuf;
struct obuf {
    obuf *next;
    micro_buf b;
    size_t off;
};

struct micro__h2_stream {
    micro__h2 *c;
    int32_t id;
    const micro__h2_stream_cbs *cbs;
    void *arg;
    micro__h2_stream *prev, *next; /* c->streams */
    obuf *oh, *ot;                 /* DATA to send */
    size_t unsent;
    micro_buf hbuf;                /* received header block: name\0value\0 */
    size_t nh;
    nghttp2_nv *trailers;          /* to submit after the last DATA */
    size_t ntrailers;
    micro_buf tstore;
    bool responded;                /* server: response HEADERS submitted */
    bool ended;                    /* our side: end requested */
    bool deferred;                 /* the data source said DEFERRED */
    bool has_provider;
    bool reset;                    /* owner reset it: no callbacks */
    bool got_response;             /* client: first HEADERS seen */
    bool completed;                /* got END_STREAM from the peer */
    bool want_drain;               /* DATA queued since the last on_drain */
};

struct micro__h2 {
    micro__bs *bs;
    micro__h2_cfg cfg;
    const micro__h2_cbs *cbs;
    void *arg;
    nghttp2_session *sess;
    micro__h2_stream *streams;
    size_t nstreams;
    size_t want_drain;  /* streams with want_drain set */
    micro__task task;
    bool task_queued;
    bool blocked;       /* output over out_high: wait for drain */
    bool goaway_sent;
    bool goaway_seen;
    bool closing;       /* closed by the owner or failed: no more I/O */
    bool dead;          /* free once depth is 0 */
    bool notify;        /* run cbs->on_close when finishing */
    int close_rc;
    int depth;
    uint32_t budget;
    uint64_t resets;
    micro__timer ping;
    int64_t last_read;
    int64_t ping_sent;  /* 0: none outstanding */
};

static void pump(micro__h2 *c);
static void finish(micro__h2 *c, int rc, bool notify);

/* ------------------------------------------------------------------ */
/* Streams.                                                             */

static micro__h2_stream *
stream_new(micro__h2 *c)
{
    micro__h2_stream *st = micro__calloc(1, sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    st->c = c;
    st->next = c->streams;
    if (c->streams != NULL) {
        c->streams->prev = st;
    }
    c->streams = st;
    c->nstreams++;
    return st;
}

static void
stream_free(micro__h2_stream *st)
{
    micro__h2 *c = st->c;
    if (st->prev != NULL) {
        st->prev->next = st->next;
    } else {
        c->streams = st->next;
    }
    if (st->next != NULL) {
        st->next->prev = st->prev;
    }
    c->nstreams--;
    if (st->want_drain) {
        c->want_drain--;
    }
    obuf *o = st->oh;
    while (o != NULL) {
        obuf *n = o->next;
        micro_buf_clear(&o->b);
        micro__free(o);
        o = n;
    }
    micro_buf_clear(&st->hbuf);
    micro_buf_clear(&st->tstore);
    micro__free(st->trailers);
    micro__free(st);
}

/* The received header block as an array (into *nv, allocated). */
static int
headers_array(micro__h2_stream *st, micro__h2_nv **out)
{
    micro__h2_nv *nv = micro__calloc(st->nh ? st->nh : 1, sizeof(*nv));
    if (nv == NULL) {
        return MICRO_ENOMEM;
    }
    const char *p = (const char *) st->hbuf.data;
    for (size_t i = 0; i < st->nh; i++) {
        nv[i].name = p;
        nv[i].namelen = strlen(p);
        p += nv[i].namelen + 1;
        nv[i].value = p;
        nv[i].valuelen = strlen(p);
        p += nv[i].valuelen + 1;
    }
    *out = nv;
    return 0;
}

/* nghttp2_nv copies of nv, with storage in one block (*store). */
static int
nv_copy(const micro__h2_nv *nv, size_t n, nghttp2_nv **out,
    micro_buf *store)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += nv[i].namelen + nv[i].valuelen + 2;
    }
    nghttp2_nv *a = micro__calloc(n ? n : 1, sizeof(*a));
    if (a == NULL || micro_buf_reserve(store, total + 1) != 0) {
        micro__free(a);
        return MICRO_ENOMEM;
    }
    uint8_t *base = store->data + store->len;
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(base + off, nv[i].name, nv[i].namelen);
        a[i].name = base + off;
        a[i].namelen = nv[i].namelen;
        off += nv[i].namelen;
        base[off++] = 0;
        memcpy(base + off, nv[i].value, nv[i].valuelen);
        a[i].value = base + off;
        a[i].valuelen = nv[i].valuelen;
        off += nv[i].valuelen;
        base[off++] = 0;
        a[i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    store->len += off;
    *out = a;
    return 0;
}

static ssize_t
data_read(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *user)
{
    (void) user;
    micro__h2_stream *st = src->ptr;
    size_t n = 0;
    while (n < len && st->oh != NULL) {
        obuf *o = st->oh;
        size_t k = o->b.len - o->off;
        if (k > len - n) {
            k = len - n;
        }
        memcpy(buf + n, o->b.data + o->off, k);
        n += k;
        o->off += k;
        if (o->off == o->b.len) {
            st->oh = o->next;
            if (st->oh == NULL) {
                st->ot = NULL;
            }
            micro_buf_clear(&o->b);
            micro__free(o);
        }
    }
    st->unsent -= n;
    if (st->oh == NULL) {
        if (st->ended) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            if (st->trailers != NULL) {
                *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
                int rc = nghttp2_submit_trailer(sess, id, st->trailers,
                    st->ntrailers);
                micro__free(st->trailers);
                st->trailers = NULL;
                if (rc != 0) {
                    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
                }
            }
        } else if (n == 0) {
            st->deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t) n;
}

/* ------------------------------------------------------------------ */
/* nghttp2 callbacks.                                                   */

static int
cb_begin_headers(nghttp2_session *sess, const nghttp2_frame *f, void *user)
{
    micro__h2 *c = user;
    if (f->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    micro__h2_stream *st = nghttp2_session_get_stream_user_data(sess,
        f->hd.stream_id);
    if (st == NULL && c->cfg.server &&
        f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        st = stream_new(c);
        if (st == NULL) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        st->id = f->hd.stream_id;
        nghttp2_session_set_stream_user_data(sess, f->hd.stream_id, st);
    }
    if (st != NULL) {
        micro_buf_clear(&st->hbuf);
        st->nh = 0;
    }
    return 0;
}

static int
cb_header(nghttp2_session *sess, const nghttp2_frame *f,
    const uint8_t *name, size_t namelen, const uint8_t *value,
    size_t valuelen, uint8_t flags, void *user)
{
    (void) flags;
    micro__h2 *c = user;
    micro__h2_stream *st = nghttp2_session_get_stream_user_data(sess,
        f->hd.stream_id);
    if (st == NULL) {
        return 0;
    }
    if (st->hbuf.len + namelen + valuelen + 2 > c->cfg.max_header_list) {
        MICRO_LOGF(MICRO_LOG_WARN, H2_COMPONENT,
            "%s: stream %d: header block over %zu bytes: reset",
            c->bs->remote, (int) st->id, c->cfg.max_header_list);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (micro_buf_append(&st->hbuf, name, namelen) != 0 ||
        micro_buf_append(&st->hbuf, "", 1) != 0 ||
        micro_buf_append(&st->hbuf, value, valuelen) != 0 ||
        micro_buf_append(&st->hbuf, "", 1) != 0) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    st->nh++;
    return 0;
}

static int
cb_frame_recv(nghttp2_session *sess, const nghttp2_frame *f, void *user)
{
    micro__h2 *c = user;
    if (f->hd.type == NGHTTP2_PING) {
        if ((f->hd.flags & NGHTTP2_FLAG_ACK) != 0) {
            c->ping_sent = 0;
        }
        return 0;
    }
    if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway_seen = true;
        return 0;
    }
    micro__h2_stream *st = nghttp2_session_get_stream_user_data(sess,
        f->hd.stream_id);
    if (st == NULL || st->reset) {
        return 0;
    }
    if (f->hd.type == NGHTTP2_HEADERS) {
        micro__h2_nv *nv = NULL;
        if (headers_array(st, &nv) != 0) {
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        size_t nh = st->nh;
        if (c->cfg.server && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
            c->cbs->on_stream(c->arg, c, st, nv, nh);
        } else if (st->cbs != NULL && st->cbs->on_headers != NULL) {
            bool trailers = c->cfg.server || st->got_response;
            if (!c->cfg.server && f->headers.cat == NGHTTP2_HCAT_HEADERS &&
                !st->got_response) {
                trailers = false; /* 1xx: ignored by gRPC, passed on */
            }
            st->got_response = true;
            st->cbs->on_headers(st->arg, st, nv, nh, trailers);
        }
        micro__free(nv);
    }
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        st = nghttp2_session_get_stream_user_data(sess, f->hd.stream_id);
        if (st != NULL && !st->reset && !st->completed) {
            st->completed = true;
            if (st->cbs != NULL && st->cbs->on_end != NULL) {
                st->cbs->on_end(st->arg, st);
            }
        }
    }
    return 0;
}

static int
cb_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id,
    const uint8_t *data, size_t len, void *user)
{
    (void) flags;
    micro__h2 *c = user;
    /* The connection window goes back at once: only the stream's waits
     * for its owner. */
    (void) nghttp2_session_consume_connection(c->sess, len);
    micro__h2_stream *st = nghttp2_session_get_stream_user_data(sess, id);
    if (st == NULL || st->reset || st->cbs == NULL) {
        (void) nghttp2_session_consume_stream(sess, id, len);
        return 0;
    }
    st->cbs->on_data(st->arg, st, data, len);
    return 0;
}

static int
cb_stream_close(nghttp2_session *sess, int32_t id, uint32_t err,
    void *user)
{
    micro__h2 *c = user;
    micro__h2_stream *st = nghttp2_session_get_stream_user_data(sess, id);
    if (st == NULL) {
        return 0;
    }
    nghttp2_session_set_stream_user_data(sess, id, NULL);
    int rc = 0;
    if (err != NGHTTP2_NO_ERROR || !st->completed) {
        rc = MICRO_ECANCELED;
    }
    if (rc != 0 && !st->reset && c->cfg.server) {
        /* Reset by the peer (or refused): spend the budget. */
        c->resets++;
        if (c->budget > 0) {
            c->budget--;
        }
        if (c->budget == 0 && !c->goaway_sent) {
            MICRO_LOGF(MICRO_LOG_WARN, H2_COMPONENT,
                "%s: %llu streams reset by the peer: GOAWAY "
                "ENHANCE_YOUR_CALM", c->bs->remote,
                (unsigned long long) c->resets);
            c->goaway_sent = true;
            (void) nghttp2_submit_goaway(sess, NGHTTP2_FLAG_NONE,
                nghttp2_session_get_last_proc_stream_id(sess),
                NGHTTP2_ENHANCE_YOUR_CALM, NULL, 0);
            (void) nghttp2_session_terminate_session(sess,
                NGHTTP2_ENHANCE_YOUR_CALM);
        }
    } else if (rc == 0 && c->budget < c->cfg.reset_budget) {
        c->budget++;
    }
    if (!st->reset && st->cbs != NULL) {
        st->cbs->on_close(st->arg, st, rc, err);
    }
    stream_free(st);
    return 0;
}

/* ------------------------------------------------------------------ */
/* I/O.                                                                 */

static void
schedule(micro__h2 *c)
{
    if (!c->task_queued && !c->dead && !c->closing) {
        c->task_queued = true;
        micro__loop_defer(c->bs->loop, &c->task);
    }
}

static void
free_now(micro__h2 *c)
{
    micro__timer_stop(c->bs->loop, &c->ping);
    nghttp2_session_del(c->sess);
    micro__bs_close(c->bs);
    micro__free(c);
}

/* Back at the top: free when dead. Returns true when c is gone. */
static bool
leave(micro__h2 *c)
{
    if (--c->depth == 0 && c->dead && !c->task_queued) {
        free_now(c);
        return true;
    }
    return false;
}

/* Tell the owners of streams whose queued DATA is all framed: every such
 * stream (all), or those that queued some since they were last told.
 * Streams are freed only inside nghttp2's calls or finish, never by an
 * owner's on_drain, so the walk holds. */
static void
drain_streams(micro__h2 *c, bool all)
{
    if (!all && c->want_drain == 0) {
        return;
    }
    for (micro__h2_stream *st = c->streams; st != NULL && !c->closing;) {
        micro__h2_stream *next = st->next;
        if (st->unsent == 0 && (all || st->want_drain)) {
            if (st->want_drain) {
                st->want_drain = false;
                c->want_drain--;
            }
            if (!st->reset && st->cbs != NULL && st->cbs->on_drain != NULL) {
                st->cbs->on_drain(st->arg, st);
            }
        }
        st = next;
    }
}

static void
pump(micro__h2 *c)
{
    if (c->closing || c->dead) {
        return;
    }
    c->depth++;
    micro_buf out = {0};
    bool more = false; /* stopped at out_high with frames still to make */
    while (!c->closing) {
        if (c->bs->unsent + out.len >= c->cfg.out_high) {
            more = true;
            break;
        }
        const uint8_t *p = NULL;
        ssize_t n = nghttp2_session_mem_send(c->sess, &p);
        if (n < 0) {
            micro_buf_clear(&out);
            MICRO_LOGF(MICRO_LOG_WARN, H2_COMPONENT, "%s: %s",
                c->bs->remote, nghttp2_strerror((int) n));
            finish(c, MICRO_EPROTO, true);
            leave(c);
            return;
        }
        if (n == 0) {
            break;
        }
        if (micro_buf_append(&out, p, (size_t) n) != 0) {
            micro_buf_clear(&out);
            finish(c, MICRO_ENOMEM, true);
            leave(c);
            return;
        }
    }
    if (out.len > 0 && !c->closing) {
        int rc = micro__bs_write(c->bs, &out);
        if (rc != 0) {
            finish(c, rc, true);
            leave(c);
            return;
        }
    }
    micro_buf_clear(&out);
    c->blocked = c->bs->unsent >= c->cfg.out_high;
    if (more && !c->blocked) {
        /* The byte stream took this pass's output at once, so no drain
         * will come to resume the rest: another pass, on a later turn. */
        schedule(c);
    }
    if (!c->blocked) {
        /* What the owners queued went out in this pass: they may queue
         * more (the byte stream's own drain comes only after a write that
         * had to wait, so it cannot be the only signal). */
        drain_streams(c, false);
    }
    if (!c->closing && !nghttp2_session_want_read(c->sess) &&
        !nghttp2_session_want_write(c->sess) && c->bs->unsent == 0) {
        finish(c, MICRO_EOF, true);
    }
    leave(c);
}

static void
task_fn(micro__task *t)
{
    micro__h2 *c = (micro__h2 *) ((char *) t - offsetof(micro__h2, task));
    c->task_queued = false;
    if (c->dead) {
        if (c->depth == 0) {
            free_now(c);
        }
        return;
    }
    pump(c);
}

static void
on_read(void *arg, micro__bs *bs, const char *p, size_t n)
{
    (void) bs;
    micro__h2 *c = arg;
    if (c->closing) {
        return;
    }
    c->last_read = micro__loop_now(c->bs->loop);
    c->depth++;
    ssize_t r = nghttp2_session_mem_recv(c->sess, (const uint8_t *) p, n);
    if (r < 0 && !c->closing) {
        MICRO_LOGF(MICRO_LOG_INFO, H2_COMPONENT, "%s: bad input: %s",
            c->bs->remote, nghttp2_strerror((int) r));
        /* nghttp2 queued GOAWAY for protocol errors: send it, then end. */
        (void) nghttp2_session_terminate_session(c->sess,
            NGHTTP2_PROTOCOL_ERROR);
        c->depth++;
        micro_buf out = {0};
        const uint8_t *q = NULL;
        ssize_t k;
        while ((k = nghttp2_session_mem_send(c->sess, &q)) > 0 &&
            out.len < 65536) {
            if (micro_buf_append(&out, q, (size_t) k) != 0) {
                break;
            }
        }
        c->depth--;
        if (out.len > 0) {
            (void) micro__bs_write(c->bs, &out);
        }
        micro_buf_clear(&out);
        micro__bs_shutdown(c->bs);
        finish(c, MICRO_EPROTO, true);
    }
    if (leave(c)) {
        return;
    }
    pump(c);
}

static void
on_eof(void *arg, micro__bs *bs, int rc)
{
    (void) bs;
    micro__h2 *c = arg;
    c->depth++;
    finish(c, rc == 0 ? MICRO_EOF : rc, true);
    leave(c);
}

static void
on_drain(void *arg, micro__bs *bs)
{
    (void) bs;
    micro__h2 *c = arg;
    c->blocked = false;
    c->depth++;
    drain_streams(c, true);
    if (leave(c)) {
        return;
    }
    pump(c);
}

static void
on_error(void *arg, micro__bs *bs, int rc)
{
    (void) bs;
    micro__h2 *c = arg;
    c->depth++;
    finish(c, rc, true);
    leave(c);
}

static const micro__bs_cbs bs_cbs = {
    .on_read = on_read,
    .on_eof = on_eof,
    .on_drain = on_drain,
    .on_error = on_error,
};

/* End the connection: every stream's on_close (rc for them is
 * MICRO_ECONNRESET, MICRO_ECERT / MICRO_ETLS when the TLS stream under
 * it failed, or MICRO_ECLOSED when the owner closed), then the owner's
 * on_close when notify. Frees once the engine is at the top. */
static void
finish(micro__h2 *c, int rc, bool notify)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    c->close_rc = rc;
    micro__timer_stop(c->bs->loop, &c->ping);
    micro__bs_read_stop(c->bs);
    int src = notify ? MICRO_ECONNRESET : MICRO_ECLOSED;
    if (notify && (rc == MICRO_ECERT || rc == MICRO_ETLS)) {
        /* A TLS 1.3 client hears that its certificate was refused only
         * after its handshake: its calls fail with the reason. */
        src = rc;
    }
    c->depth++;
    while (c->streams != NULL) {
        micro__h2_stream *st = c->streams;
        nghttp2_session_set_stream_user_data(c->sess, st->id, NULL);
        if (!st->reset && st->cbs != NULL) {
            st->cbs->on_close(st->arg, st, src, NGHTTP2_CANCEL);
        }
        stream_free(st);
    }
    c->depth--;
    if (notify && c->cbs->on_close != NULL) {
        c->cbs->on_close(c->arg, c, rc);
    }
    c->dead = true;
    if (c->depth == 0 && !c->task_queued) {
        free_now(c);
    }
}

static void
on_ping_timer(micro__timer *t)
{
    micro__h2 *c = (micro__h2 *) ((char *) t - offsetof(micro__h2, ping));
    int64_t now = micro__loop_now(c->bs->loop);
    if (c->ping_sent != 0 && now - c->ping_sent >= c->cfg.ping_timeout_ms) {
        MICRO_LOGF(MICRO_LOG_INFO, H2_COMPONENT,
            "%s: no PING answer in %lld ms: closing", c->bs->remote,
            (long long) c->cfg.ping_timeout_ms);
        c->depth++;
        finish(c, MICRO_ETIMEDOUT, true);
        leave(c);
        return;
    }
    int64_t next = c->last_read + c->cfg.ping_ms;
    if (c->ping_sent == 0 && now >= next) {
        if (nghttp2_submit_ping(c->sess, NGHTTP2_FLAG_NONE, NULL) == 0) {
            c->ping_sent = now;
            schedule(c);
        }
        next = now + c->cfg.ping_ms;
    }
    if (c->ping_sent != 0 && c->ping_sent + c->cfg.ping_timeout_ms < next) {
        next = c->ping_sent + c->cfg.ping_timeout_ms;
    }
    (void) micro__timer_start(c->bs->loop, &c->ping, next, on_ping_timer);
}

/* ------------------------------------------------------------------ */
/* Connections.                                                         */

int
micro__h2_new(micro__h2 **out, micro__bs *bs, const micro__h2_cfg *cfg,
    const micro__h2_cbs *cbs, void *arg)
{
    *out = NULL;
    micro__h2 *c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        micro__bs_close(bs);
        return MICRO_ENOMEM;
    }
    c->bs = bs;
    c->cfg = *cfg;
    if (c->cfg.max_concurrent == 0) {
        c->cfg.max_concurrent = 1000;
    }
    if (c->cfg.stream_window == 0) {
        c->cfg.stream_window = 1u << 20;
    }
    if (c->cfg.max_header_list == 0) {
        c->cfg.max_header_list = 65536;
    }
    if (c->cfg.out_high == 0) {
        c->cfg.out_high = 256 * 1024;
    }
    if (c->cfg.ping_timeout_ms <= 0) {
        c->cfg.ping_timeout_ms = 20000;
    }
    if (c->cfg.reset_budget == 0) {
        c->cfg.reset_budget = 1000;
    }
    c->budget = c->cfg.reset_budget;
    c->cbs = cbs;
    c->arg = arg;
    c->task.fn = task_fn;
    nghttp2_session_callbacks *ncb = NULL;
    nghttp2_option *opt = NULL;
    int rc = MICRO_ENOMEM;
    if (nghttp2_session_callbacks_new(&ncb) != 0 ||
        nghttp2_option_new(&opt) != 0) {
        goto fail;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(ncb,
        cb_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(ncb, cb_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(ncb, cb_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(ncb,
        cb_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(ncb,
        cb_stream_close);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_send_header_block_length(opt, 1u << 20);
    if (!cfg->server) {
        /* The peer's limit before its SETTINGS arrive: a conservative 100,
         * as gRPC assumes. */
        nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
    }
    int nrc = cfg->server ? nghttp2_session_server_new2(&c->sess, ncb, c, opt)
                          : nghttp2_session_client_new2(&c->sess, ncb, c, opt);
    if (nrc != 0) {
        goto fail;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, c->cfg.max_concurrent},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, c->cfg.stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
            (uint32_t) c->cfg.max_header_list},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    /* server: the first three; client: the last three */
    const nghttp2_settings_entry *ivp = cfg->server ? iv : iv + 1;
    if (nghttp2_submit_settings(c->sess, NGHTTP2_FLAG_NONE, ivp, 3) != 0) {
        goto fail;
    }
    /* A large connection window: flow control is per stream here. */
    (void) nghttp2_session_set_local_window_size(c->sess, NGHTTP2_FLAG_NONE,
        0, 16 << 20);
    nghttp2_session_callbacks_del(ncb);
    nghttp2_option_del(opt);
    c->last_read = micro__loop_now(bs->loop);
    micro__bs_set_cbs(bs, &bs_cbs, c);
    micro__bs_read_start(bs);
    if (c->cfg.ping_ms > 0) {
        (void) micro__timer_start(bs->loop, &c->ping,
            c->last_read + c->cfg.ping_ms, on_ping_timer);
    }
    schedule(c);
    *out = c;
    return 0;
fail:
    nghttp2_session_callbacks_del(ncb);
    nghttp2_option_del(opt);
    if (c->sess != NULL) {
        nghttp2_session_del(c->sess);
    }
    micro__bs_close(bs);
    micro__free(c);
    return rc;
}

void
micro__h2_close(micro__h2 *c)
{
    if (c == NULL || c->closing) {
        return;
    }
    c->depth++;
    finish(c, MICRO_ECLOSED, false);
    leave(c);
}

void
micro__h2_goaway(micro__h2 *c)
{
    if (c->closing || c->goaway_sent) {
        return;
    }
    c->goaway_sent = true;
    if (c->cfg.server) {
        (void) nghttp2_submit_goaway(c->sess, NGHTTP2_FLAG_NONE,
            nghttp2_session_get_last_proc_stream_id(c->sess),
            NGHTTP2_NO_ERROR, NULL, 0);
    } else {
        (void) nghttp2_session_terminate_session2(c->sess, 0,
            NGHTTP2_NO_ERROR);
    }
    schedule(c);
}

bool
micro__h2_usable(const micro__h2 *c)
{
    return !c->closing && !c->goaway_seen && !c->goaway_sent;
}

size_t
micro__h2_nstreams(const micro__h2 *c)
{
    return c->nstreams;
}

size_t
micro__h2_unsent(const micro__h2 *c)
{
    return c->bs->unsent;
}

const char *
micro__h2_remote(const micro__h2 *c)
{
    return c->bs->remote;
}

const char *
micro__h2_local(const micro__h2 *c)
{
    return c->bs->local;
}

void
micro__h2_set_arg(micro__h2 *c, void *arg)
{
    c->arg = arg;
}

uint64_t
micro__h2_peer_resets(const micro__h2 *c)
{
    return c->resets;
}

/* ------------------------------------------------------------------ */
/* Stream operations.                                                   */

int
micro__h2_request(micro__h2 *c, const micro__h2_nv *nv, size_t n,
    const micro__h2_stream_cbs *cbs, void *arg, micro__h2_stream **out)
{
    *out = NULL;
    if (!micro__h2_usable(c) || c->cfg.server) {
        return MICRO_ECLOSED;
    }
    micro__h2_stream *st = stream_new(c);
    if (st == NULL) {
        return MICRO_ENOMEM;
    }
    micro_buf store = {0};
    nghttp2_nv *a = NULL;
    if (nv_copy(nv, n, &a, &store) != 0) {
        stream_free(st);
        return MICRO_ENOMEM;
    }
    st->cbs = cbs;
    st->arg = arg;
    st->has_provider = true;
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
    int32_t id = nghttp2_submit_request(c->sess, NULL, a, n, &prd, st);
    micro__free(a);
    micro_buf_clear(&store);
    if (id < 0) {
        stream_free(st);
        return id == NGHTTP2_ERR_NOMEM ? MICRO_ENOMEM : MICRO_ECLOSED;
    }
    st->id = id;
    schedule(c);
    *out = st;
    return 0;
}

void
micro__h2_stream_set_cbs(micro__h2_stream *st,
    const micro__h2_stream_cbs *cbs, void *arg)
{
    st->cbs = cbs;
    st->arg = arg;
}

micro__h2 *
micro__h2_stream_conn(const micro__h2_stream *st)
{
    return st->c;
}

int32_t
micro__h2_stream_id(const micro__h2_stream *st)
{
    return st->id;
}

bool
micro__h2_stream_responded(const micro__h2_stream *st)
{
    return st->responded;
}

int
micro__h2_stream_respond(micro__h2_stream *st, const micro__h2_nv *nv,
    size_t n, bool end)
{
    micro__h2 *c = st->c;
    if (st->responded || st->reset || c->closing) {
        return MICRO_ECLOSED;
    }
    micro_buf store = {0};
    nghttp2_nv *a = NULL;
    if (nv_copy(nv, n, &a, &store) != 0) {
        return MICRO_ENOMEM;
    }
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
    int rc = nghttp2_submit_response(c->sess, st->id, a, n,
        end ? NULL : &prd);
    micro__free(a);
    micro_buf_clear(&store);
    if (rc != 0) {
        return rc == NGHTTP2_ERR_NOMEM ? MICRO_ENOMEM : MICRO_ECLOSED;
    }
    st->responded = true;
    st->has_provider = !end;
    if (end) {
        st->ended = true;
    }
    schedule(c);
    return 0;
}

static void
resume(micro__h2_stream *st)
{
    if (st->deferred && st->has_provider) {
        st->deferred = false;
        (void) nghttp2_session_resume_data(st->c->sess, st->id);
    }
    schedule(st->c);
}

int
micro__h2_stream_write(micro__h2_stream *st, micro_buf *buf)
{
    if (st->ended || st->reset || st->c->closing) {
        micro_buf_clear(buf);
        return MICRO_ECLOSED;
    }
    if (buf->len == 0) {
        micro_buf_clear(buf);
        return 0;
    }
    obuf *o = micro__malloc(sizeof(*o));
    if (o == NULL) {
        micro_buf_clear(buf);
        return MICRO_ENOMEM;
    }
    o->b = *buf;
    *buf = (micro_buf){0};
    o->off = 0;
    o->next = NULL;
    if (st->ot != NULL) {
        st->ot->next = o;
    } else {
        st->oh = o;
    }
    st->ot = o;
    st->unsent += o->b.len;
    if (!st->want_drain) {
        st->want_drain = true;
        st->c->want_drain++;
    }
    resume(st);
    return 0;
}

int
micro__h2_stream_end(micro__h2_stream *st, const micro__h2_nv *trailers,
    size_t n)
{
    if (st->ended) {
        return 0;
    }
    if (st->reset || st->c->closing) {
        return MICRO_ECLOSED;
    }
    if (n > 0) {
        if (nv_copy(trailers, n, &st->trailers, &st->tstore) != 0) {
            return MICRO_ENOMEM;
        }
        st->ntrailers = n;
    }
    st->ended = true;
    resume(st);
    return 0;
}

void
micro__h2_stream_consume(micro__h2_stream *st, size_t n)
{
    micro__h2 *c = st->c;
    if (n == 0 || c->closing || st->reset) {
        return;
    }
    (void) nghttp2_session_consume_stream(c->sess, st->id, n);
    schedule(c);
}

void
micro__h2_stream_reset(micro__h2_stream *st, uint32_t code)
{
    micro__h2 *c = st->c;
    if (st->reset) {
        return;
    }
    st->reset = true;
    st->cbs = NULL;
    if (!c->closing) {
        (void) nghttp2_submit_rst_stream(c->sess, NGHTTP2_FLAG_NONE, st->id,
            code);
        schedule(c);
    }
}

size_t
micro__h2_stream_unsent(const micro__h2_stream *st)
{
    return st->unsent;
}
