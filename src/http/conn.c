/* An HTTP/1.1 connection on a loop (conn.h). */
#include "http/conn.h"
#include "core/msg_internal.h"

#define REJECT_GRACE_MS 5000 /* a last answer nobody reads */
/* A paused connection keeps reading into its buffer up to this much
 * before it stops reading: a pause that ends before more arrives (the
 * usual unary exchange) then costs no system call at all. */
#define LAZY_PAUSE_MAX (64 * 1024)

struct micro__h1_conn {
    micro__bs *bs;
    micro_loop *loop;
    micro__h1_conn_cfg cfg;
    const micro__h1_conn_cbs *cbs;
    void *arg;
    micro__h1_parser parser;
    micro_buf rest;     /* read, not yet parsed (after a pause) */
    size_t rest_off;
    micro__timer timer;
    int64_t started;    /* the current message (or the wait for it) */
    int64_t activity;   /* last byte in or out */
    int64_t grace_until;
    size_t partial_held; /* our part of *cfg.partial */
    int holds;
    int depth;          /* frames of ours on the stack running callbacks */
    int close_rc;
    bool paused;        /* by the owner */
    bool out_blocked;   /* not reading: too much unsent */
    bool reading;
    bool eof;
    bool closed;        /* by the owner: destroy when depth is 0 */
    bool dead;          /* on_close delivered */
    bool closing_after; /* close once written */
    bool rejected;
    bool waiting_first; /* server: accepted, no byte yet */
    char remote[64];
    char local[64];
    bool corked;
    micro_buf cork; /* gathered writes while corked */
};

static const micro__bs_cbs conn_bs_cbs;

/* ------------------------------------------------------------------ */
/* Lifetime.                                                            */

static void
budget_set(micro__h1_conn *c, size_t held)
{
    if (c->cfg.partial == NULL) {
        return;
    }
    *c->cfg.partial -= c->partial_held;
    *c->cfg.partial += held;
    c->partial_held = held;
}

static void
destroy(micro__h1_conn *c)
{
    micro__timer_stop(c->loop, &c->timer);
    budget_set(c, 0);
    if (c->bs != NULL) {
        micro__bs_close(c->bs);
        c->bs = NULL;
    }
    micro__h1_parser_fini(&c->parser);
    micro_buf_clear(&c->rest);
    micro_buf_clear(&c->cork);
    micro__free(c);
}

/* End the connection for a reason of its own; on_close tells the owner. */
static void
die(micro__h1_conn *c, int rc)
{
    if (c->dead || c->closed) {
        return;
    }
    c->dead = true;
    c->closed = true;
    micro__timer_stop(c->loop, &c->timer);
    if (c->bs != NULL) {
        micro__bs_close(c->bs);
        c->bs = NULL;
    }
    c->depth++;
    if (c->cbs->on_close != NULL) {
        c->cbs->on_close(c->arg, c, rc);
    }
    c->depth--;
    if (c->depth == 0) {
        destroy(c);
    }
}

void
micro__h1_conn_close(micro__h1_conn *c)
{
    if (c == NULL || c->closed) {
        return;
    }
    c->closed = true;
    if (c->depth == 0) {
        destroy(c);
    }
}

/* A frame of ours that ran callbacks ends: true when the connection was
 * closed meanwhile (it is then freed once the outermost frame ends). */
static bool
frame_end(micro__h1_conn *c)
{
    c->depth--;
    if (!c->closed) {
        return false;
    }
    if (c->depth == 0) {
        destroy(c);
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* Timers.                                                              */

static void on_timer(micro__timer *t);

static void
timer_update(micro__h1_conn *c)
{
    if (c->closed) {
        return;
    }
    int64_t due = 0;
    if (c->closing_after) {
        due = c->grace_until;
    } else if ((micro__h1_parser_busy(&c->parser) || c->waiting_first) &&
        c->cfg.read_timeout_ms > 0 && !c->paused) {
        due = c->started + c->cfg.read_timeout_ms;
    } else if (c->cfg.idle_timeout_ms > 0 && c->holds == 0 &&
        c->bs->unsent == 0 && !micro__h1_parser_busy(&c->parser) &&
        c->rest.len == c->rest_off) {
        due = c->activity + c->cfg.idle_timeout_ms;
    }
    if (due == 0) {
        micro__timer_stop(c->loop, &c->timer);
    } else if (!micro__timer_armed(&c->timer) || c->timer.due != due) {
        if (micro__timer_start(c->loop, &c->timer, due, on_timer) != 0) {
            die(c, MICRO_ENOMEM);
        }
    }
}

static void
on_timer(micro__timer *t)
{
    micro__h1_conn *c =
        (micro__h1_conn *) ((char *) t - offsetof(micro__h1_conn, timer));
    if (c->closing_after) {
        die(c, c->close_rc);
        return;
    }
    int64_t now = micro__now_ms();
    bool reading = micro__h1_parser_busy(&c->parser) || c->waiting_first;
    if (reading) {
        MICRO_LOGF(MICRO_LOG_INFO, "http",
            "%s: no complete message within %lld ms; closing", c->remote,
            (long long) c->cfg.read_timeout_ms);
    } else {
        MICRO_LOGF(MICRO_LOG_DEBUG, "http", "%s: idle for %lld ms; closing",
            c->remote, (long long) (now - c->activity));
    }
    die(c, MICRO_ETIMEDOUT);
}

/* ------------------------------------------------------------------ */
/* Parsing.                                                             */

static int
p_on_head(void *arg, micro__h1_head *h)
{
    micro__h1_conn *c = arg;
    if (c->closed) {
        return MICRO_ECANCELED;
    }
    return c->cbs->on_head(c->arg, c, h);
}

static int
p_on_body(void *arg, const char *p, size_t n)
{
    micro__h1_conn *c = arg;
    if (c->closed) {
        return MICRO_ECANCELED;
    }
    return c->cbs->on_body != NULL ? c->cbs->on_body(c->arg, c, p, n) : 0;
}

static int
p_on_end(void *arg, micro_msg *msg, bool keep_alive)
{
    micro__h1_conn *c = arg;
    if (c->closed) {
        micro_msg_free(msg);
        return MICRO_ECANCELED;
    }
    c->started = micro__loop_now(c->loop); /* the wait for the next message */
    int rc = c->cbs->on_end(c->arg, c, msg, keep_alive);
    if (rc < 0) {
        return rc;
    }
    /* Over the window, the messages already read wait too (in rest): a
     * peer that pipelines small requests for big answers, and never reads
     * them, would otherwise get every request of a read answered. */
    return (c->paused || c->closed || c->out_blocked) ? MICRO__H1_PAUSE : 0;
}

static const micro__h1_cbs parser_cbs = {
    .on_head = p_on_head,
    .on_body = p_on_body,
    .on_end = p_on_end,
};

static void
reject(micro__h1_conn *c, int rc)
{
    if (c->rejected || c->closed) {
        return;
    }
    c->rejected = true;
    int status = rc == MICRO_EBUSY ? 503
                                   : micro__h1_parser_status(&c->parser, rc);
    if (c->reading) {
        micro__bs_read_stop(c->bs);
        c->reading = false;
    }
    c->depth++;
    if (c->cbs->on_reject != NULL) {
        c->cbs->on_reject(c->arg, c, rc, status);
    }
    c->depth--;
    if (c->closed) {
        if (c->depth == 0) {
            destroy(c);
        }
        return;
    }
    micro__h1_conn_close_after_write(c, rc);
}

/* Our bytes of partial bodies after a parse: the budget. */
static bool
budget_update(micro__h1_conn *c)
{
    const micro__h1_parser *p = &c->parser;
    size_t held = (p->buffering && p->msg != NULL) ? p->msg->body.len : 0;
    budget_set(c, held);
    return c->cfg.partial == NULL || held == 0 ||
        *c->cfg.partial <= c->cfg.partial_max;
}

/* Parse p[0..n): 0 when all was taken (or kept for later), -1 when the
 * connection is gone or refused. */
static int
feed(micro__h1_conn *c, const char *p, size_t n, bool from_rest)
{
    c->depth++;
    ssize_t used = micro__h1_parse(&c->parser, p, n);
    if (frame_end(c)) {
        return -1;
    }
    if (used < 0) {
        budget_update(c);
        reject(c, (int) used);
        return -1;
    }
    if (!budget_update(c)) {
        MICRO_LOGF(MICRO_LOG_WARN, "http",
            "%s: partially received bodies over %zu bytes in all; refused",
            c->remote, c->cfg.partial_max);
        reject(c, MICRO_EBUSY);
        return -1;
    }
    if ((size_t) used < n) {
        if (from_rest) {
            c->rest_off += (size_t) used;
        } else {
            c->rest.len = 0;
            c->rest_off = 0;
            if (micro_buf_append(&c->rest, p + used, n - (size_t) used) !=
                0) {
                die(c, MICRO_ENOMEM);
                return -1;
            }
        }
    } else if (from_rest) {
        c->rest_off = 0;
        c->rest.len = 0;
        if (c->rest.cap > 64 * 1024) {
            micro_buf_clear(&c->rest);
        }
    }
    return 0;
}

/* Deliver what waits in rest, then read or not. Outside callbacks only. */
static void
pump(micro__h1_conn *c)
{
    while (!c->closed && !c->paused && !c->out_blocked && c->depth == 0 &&
        c->rest_off < c->rest.len) {
        size_t n = c->rest.len - c->rest_off;
        /* Parse from a copy of the pointer: feed may move rest. */
        if (feed(c, (const char *) c->rest.data + c->rest_off, n, true) != 0) {
            return;
        }
    }
    if (c->closed) {
        return;
    }
    bool want = !c->out_blocked && !c->eof && !c->rejected &&
        !c->closing_after &&
        (c->paused ? c->rest.len - c->rest_off < LAZY_PAUSE_MAX
                   : c->rest_off >= c->rest.len);
    if (want && !c->reading) {
        micro__bs_read_start(c->bs);
        c->reading = true;
    } else if (!want && c->reading) {
        micro__bs_read_stop(c->bs);
        c->reading = false;
    }
    timer_update(c);
}

/* ------------------------------------------------------------------ */
/* Byte stream events.                                                  */

static void
bs_on_read(void *arg, micro__bs *s, const char *p, size_t n)
{
    micro__h1_conn *c = arg;
    (void) s;
    c->activity = micro__loop_now(c->loop);
    if (c->waiting_first) {
        c->waiting_first = false;
    }
    if (!micro__h1_parser_busy(&c->parser)) {
        c->started = c->activity;
    }
    if (c->paused || c->rest_off < c->rest.len) {
        /* Paused: keep the bytes for the resume (pump bounds them). */
        if (c->rest_off > 0 && c->rest_off == c->rest.len) {
            c->rest.len = c->rest_off = 0;
        }
        if (micro_buf_append(&c->rest, p, n) != 0) {
            die(c, MICRO_ENOMEM);
            return;
        }
        pump(c);
        return;
    }
    if (feed(c, p, n, false) != 0) {
        return;
    }
    pump(c);
}

static void
bs_on_eof(void *arg, micro__bs *s, int rc)
{
    micro__h1_conn *c = arg;
    (void) s;
    c->eof = true;
    c->reading = false;
    if (rc == 0) {
        c->depth++;
        int prc = micro__h1_parse_eof(&c->parser);
        if (frame_end(c)) {
            return;
        }
        if (prc != 0) {
            rc = prc == MICRO_ECONNRESET ? MICRO_ECONNRESET : prc;
        }
    }
    if (c->cbs->on_eof != NULL) {
        c->depth++;
        c->cbs->on_eof(c->arg, c, rc);
        if (frame_end(c)) {
            return;
        }
        timer_update(c);
        return;
    }
    die(c, rc == 0 ? MICRO_EOF : rc);
}

static void
bs_on_drain(void *arg, micro__bs *s)
{
    micro__h1_conn *c = arg;
    (void) s;
    c->activity = micro__loop_now(c->loop);
    if (c->closing_after) {
        die(c, c->close_rc);
        return;
    }
    if (c->out_blocked) {
        c->out_blocked = false;
        pump(c);
        if (c->closed) {
            return;
        }
    }
    if (c->cbs->on_drain != NULL) {
        c->depth++;
        c->cbs->on_drain(c->arg, c);
        if (frame_end(c)) {
            return;
        }
    }
    timer_update(c);
}

static void
bs_on_error(void *arg, micro__bs *s, int rc)
{
    micro__h1_conn *c = arg;
    (void) s;
    die(c, c->closing_after ? c->close_rc : rc);
}

static const micro__bs_cbs conn_bs_cbs = {
    .on_read = bs_on_read,
    .on_eof = bs_on_eof,
    .on_drain = bs_on_drain,
    .on_error = bs_on_error,
};

/* ------------------------------------------------------------------ */
/* The owner's calls.                                                   */

int
micro__h1_conn_new(micro__h1_conn **out, micro__bs *bs,
    const micro__h1_conn_cfg *cfg, const micro__h1_conn_cbs *cbs, void *arg)
{
    *out = NULL;
    micro__h1_conn *c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        micro__bs_close(bs);
        return MICRO_ENOMEM;
    }
    c->bs = bs;
    c->loop = bs->loop;
    c->cfg = *cfg;
    c->cbs = cbs;
    c->arg = arg;
    micro__h1_parser_init(&c->parser, cfg->kind, &c->cfg.lim, &parser_cbs, c);
    c->started = c->activity = micro__now_ms();
    c->waiting_first = cfg->kind == MICRO__H1_REQUEST;
    snprintf(c->remote, sizeof(c->remote), "%s", bs->remote);
    snprintf(c->local, sizeof(c->local), "%s", bs->local);
    micro__bs_set_cbs(bs, &conn_bs_cbs, c);
    pump(c);
    if (c->closed) {
        return MICRO_ENOMEM; /* the timer could not be armed: all freed */
    }
    *out = c;
    return 0;
}

void
micro__h1_conn_set_cbs(micro__h1_conn *c, const micro__h1_conn_cbs *cbs,
    void *arg)
{
    c->cbs = cbs;
    c->arg = arg;
}

void *
micro__h1_conn_arg(const micro__h1_conn *c)
{
    return c->arg;
}

#define CORK_MAX (64 * 1024)

static int conn_write_now(micro__h1_conn *c, micro_buf *buf);

int
micro__h1_conn_write(micro__h1_conn *c, micro_buf *buf)
{
    if (c->closed || c->bs == NULL) {
        micro_buf_clear(buf);
        return MICRO_ECLOSED;
    }
    if (c->corked) {
        int rc = c->cork.len == 0 && buf->len >= CORK_MAX
            ? 0
            : micro_buf_append(&c->cork, buf->data, buf->len);
        if (rc == 0 && c->cork.len == 0) {
            return conn_write_now(c, buf); /* big: as it is */
        }
        micro_buf_clear(buf);
        if (rc != 0) {
            return rc;
        }
        if (c->cork.len >= CORK_MAX) {
            micro_buf out = c->cork;
            memset(&c->cork, 0, sizeof(c->cork));
            return conn_write_now(c, &out);
        }
        return 0;
    }
    return conn_write_now(c, buf);
}

int
micro__h1_conn_cork(micro__h1_conn *c, bool cork)
{
    if (c->closed) {
        return MICRO_ECLOSED;
    }
    c->corked = cork;
    if (cork || c->cork.len == 0) {
        return 0;
    }
    micro_buf out = c->cork;
    memset(&c->cork, 0, sizeof(c->cork));
    return conn_write_now(c, &out);
}

static int
conn_write_now(micro__h1_conn *c, micro_buf *buf)
{
    c->activity = micro__loop_now(c->loop);
    int rc = micro__bs_write(c->bs, buf);
    if (rc != 0) {
        return rc;
    }
    if (c->cfg.out_high > 0 && c->bs->unsent > c->cfg.out_high &&
        !c->out_blocked) {
        c->out_blocked = true;
        if (c->reading) {
            micro__bs_read_stop(c->bs);
            c->reading = false;
        }
    }
    if (c->depth == 0) {
        timer_update(c);
    }
    return 0;
}

size_t
micro__h1_conn_unsent(const micro__h1_conn *c)
{
    return (c->bs != NULL ? c->bs->unsent : 0) + c->cork.len;
}

void
micro__h1_conn_pause(micro__h1_conn *c, bool paused)
{
    if (c->closed || c->paused == paused) {
        return;
    }
    c->paused = paused;
    if (paused) {
        /* Reading goes on until LAZY_PAUSE_MAX bytes wait (pump). */
        if (c->depth == 0) {
            timer_update(c);
        }
        return;
    }
    if (c->depth == 0) {
        pump(c);
    }
    /* Inside a callback: the frame below resumes when it returns. */
}

void
micro__h1_conn_hold(micro__h1_conn *c, int delta)
{
    c->holds += delta;
    if (c->holds < 0) {
        c->holds = 0;
    }
    if (c->depth == 0 && !c->closed) {
        c->activity = micro__loop_now(c->loop);
        timer_update(c);
    }
}

void
micro__h1_conn_close_after_write(micro__h1_conn *c, int rc)
{
    if (c->closed || c->closing_after) {
        return;
    }
    c->closing_after = true;
    c->close_rc = rc;
    if (c->reading) {
        micro__bs_read_stop(c->bs);
        c->reading = false;
    }
    if (c->bs->unsent == 0) {
        if (c->depth == 0) {
            die(c, rc);
        } else {
            /* From inside a callback: end on the next timer turn. */
            c->grace_until = micro__now_ms();
            timer_update(c);
        }
        return;
    }
    c->grace_until = micro__now_ms() + REJECT_GRACE_MS;
    timer_update(c);
}

void
micro__h1_conn_shutdown(micro__h1_conn *c)
{
    if (!c->closed && c->bs != NULL) {
        micro__bs_shutdown(c->bs);
    }
}

bool
micro__h1_conn_receiving(const micro__h1_conn *c)
{
    return micro__h1_parser_busy(&c->parser);
}

bool
micro__h1_conn_got_bytes(const micro__h1_conn *c)
{
    return c->parser.got_bytes;
}

void
micro__h1_conn_expect_no_body(micro__h1_conn *c)
{
    micro__h1_parser_expect_no_body(&c->parser);
}

int64_t
micro__h1_conn_idle_since(const micro__h1_conn *c)
{
    return c->activity;
}

const char *
micro__h1_conn_remote(const micro__h1_conn *c)
{
    return c->remote;
}

const char *
micro__h1_conn_local(const micro__h1_conn *c)
{
    return c->local;
}

micro_loop *
micro__h1_conn_loop(const micro__h1_conn *c)
{
    return c->loop;
}
