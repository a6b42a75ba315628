/*
 * Transport front end: sockets, the pools of idle dialled sockets (one
 * per transport per loop, found through the loop's ext list, so no lock),
 * and the unary round trips composed of socket operations. The
 * implementation behind micro_transport_ops only moves messages.
 */
#include "core/internal.h"
#include "core/loop_internal.h"
#include "core/options_internal.h"
#include "core/strtab.h"
#include "plugins.h"
#include "rpc/grpc.h"

#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>

#define TR_COMPONENT "transport"

typedef struct tloop tloop;
typedef struct bucket bucket;

struct micro_transport {
    const micro_transport_ops *ops;
    micro_loop *loop;
    void *st;
    size_t pool_size;
    int64_t pool_ttl_ms;
    int64_t dial_timeout_ms;
    bool listening;              /* t->loop */
    micro_accept_fn accept_fn;
    void *accept_arg;
    micro_socket *accepted;      /* t->loop: accepted sockets */
    pthread_mutex_t mu;          /* tloops, closing, close_posted */
    pthread_cond_t cv;
    tloop *tloops;
    bool closing;
};

struct micro_socket {
    micro_transport *t;
    micro_loop *loop;
    const micro_socket_handler *h;
    void *harg;
    micro_socket *prev, *next; /* t->accepted or tl->sockets */
    tloop *tl;                 /* dialled sockets */
    char *addr;                /* dialled: the address (pool key) */
    micro_dial_fn dial_cb;
    void *dial_arg;
    micro__task task;          /* a pooled dial's deferred callback */
    bucket *b;                 /* in this pool bucket (idle) */
    micro_socket *pnext;
    int64_t born;
    char remote[64];
    char local[64];
    bool accepted_side;
    bool got; /* bytes received, as of the close */
    bool dialing;
    bool reused;
    bool idle;
    bool closed;
    bool in_accept; /* inside the listener's callback: a close there
                       leaves the freeing to micro_socket_accepted */
    alignas(max_align_t) unsigned char impl[];
};

/* The idle sockets to one address: a LIFO stack (the most recently
 * released is reused first, which keeps the working set warm). */
struct bucket {
    micro__strtab_node node; /* first: key = addr */
    micro_socket *top;
    size_t n;
    char addr[];
};

struct tloop {
    micro__loop_ext ext; /* first; key: the transport */
    micro_transport *t;
    micro_loop *loop;
    tloop *next;          /* t->tloops */
    micro_socket *sockets; /* every dialled socket (idle ones too) */
    micro__strtab buckets;
    micro_transport_call *calls;
    micro__task close_task;
    bool close_posted; /* t->mu */
};

/* ------------------------------------------------------------------ */
/* Sockets.                                                             */

static void
list_add(micro_socket **head, micro_socket *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head != NULL) {
        (*head)->prev = s;
    }
    *head = s;
}

static void
list_del(micro_socket **head, micro_socket *s)
{
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else if (*head == s) {
        *head = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    s->prev = s->next = NULL;
}

static micro_socket *
socket_alloc(micro_transport *t, micro_loop *loop)
{
    micro_socket *s = micro__calloc(1, sizeof(*s) + t->ops->socket_size);
    if (s != NULL) {
        s->t = t;
        s->loop = loop;
        s->born = micro__now_ms();
    }
    return s;
}

static void bucket_remove(micro_socket *s);

/* Unlink and free; the implementation has let go. */
static void
socket_free(micro_socket *s)
{
    if (s->b != NULL) {
        bucket_remove(s);
    }
    if (s->accepted_side) {
        list_del(&s->t->accepted, s);
    } else if (s->tl != NULL) {
        list_del(&s->tl->sockets, s);
    }
    micro__free(s->addr);
    micro__free(s);
}

void *
micro_socket_impl(micro_socket *s)
{
    return s->impl;
}

void
micro_socket_set_handler(micro_socket *s, const micro_socket_handler *h,
    void *arg)
{
    s->h = h;
    s->harg = arg;
}

int
micro_socket_send(micro_socket *s, const micro_msg *m)
{
    if (s == NULL || m == NULL) {
        return MICRO_EINVAL;
    }
    if (s->closed) {
        return MICRO_ECLOSED;
    }
    return s->t->ops->send(s, m);
}

int
micro_socket_close_send(micro_socket *s)
{
    if (s->closed) {
        return MICRO_ECLOSED;
    }
    return s->t->ops->close_send != NULL ? s->t->ops->close_send(s) : 0;
}

void
micro_socket_pause(micro_socket *s, bool paused)
{
    if (!s->closed && s->t->ops->pause != NULL) {
        s->t->ops->pause(s, paused);
    }
}

void
micro_socket_cork(micro_socket *s, bool cork)
{
    if (!s->closed && s->t->ops->cork != NULL) {
        s->t->ops->cork(s, cork);
    }
}

void
micro_socket_set_busy(micro_socket *s, bool busy)
{
    if (!s->closed && s->t->ops->set_busy != NULL) {
        s->t->ops->set_busy(s, busy);
    }
}

size_t
micro_socket_unsent(const micro_socket *s)
{
    return s->closed || s->t->ops->unsent == NULL ? 0 : s->t->ops->unsent(s);
}

void
micro_socket_set_names(micro_socket *s, const char *remote,
    const char *local)
{
    snprintf(s->remote, sizeof(s->remote), "%s", remote ? remote : "");
    snprintf(s->local, sizeof(s->local), "%s", local ? local : "");
}

const char *
micro_socket_remote(const micro_socket *s)
{
    return s->remote;
}

const char *
micro_socket_local(const micro_socket *s)
{
    return s->local;
}

bool
micro_socket_reused(const micro_socket *s)
{
    return s->reused;
}

bool
micro_socket_got_bytes(const micro_socket *s)
{
    if (s->closed) {
        return s->got;
    }
    return s->t->ops->got_bytes != NULL && s->t->ops->got_bytes(s);
}

micro_loop *
micro_socket_loop(const micro_socket *s)
{
    return s->loop;
}

void
micro_socket_close(micro_socket *s)
{
    if (s == NULL || s->closed) {
        return;
    }
    s->closed = true;
    if (s->dialing) {
        s->dialing = false;
        if (s->t->ops->dial_cancel != NULL) {
            s->t->ops->dial_cancel(s);
        }
    }
    s->t->ops->close(s);
    if (!s->in_accept) {
        socket_free(s);
    }
}

/* ------------------------------------------------------------------ */
/* Events from the implementation.                                      */

void
micro_socket_emit_msg(micro_socket *s, micro_msg *msg)
{
    if (s->closed || s->h == NULL) {
        micro_msg_free(msg);
        return;
    }
    s->h->on_msg(s->harg, s, msg);
}

void
micro_socket_emit_eof(micro_socket *s, int rc)
{
    if (s->closed) {
        return;
    }
    if (s->h != NULL && s->h->on_eof != NULL) {
        s->h->on_eof(s->harg, s, rc);
        return;
    }
    micro_socket_emit_close(s, rc == 0 ? MICRO_EOF : rc);
}

void
micro_socket_emit_drain(micro_socket *s)
{
    if (!s->closed && s->h != NULL && s->h->on_drain != NULL) {
        s->h->on_drain(s->harg, s);
    }
}

void
micro_socket_emit_close(micro_socket *s, int rc)
{
    if (s->closed) {
        return;
    }
    s->got = micro_socket_got_bytes(s);
    s->closed = true;
    s->t->ops->close(s);
    if (s->h != NULL) {
        s->h->on_close(s->harg, s, rc);
    }
    socket_free(s);
}

/* ------------------------------------------------------------------ */
/* Per-loop state: pools and round trips.                               */

static void tloop_close(tloop *tl);

static void
tloop_on_loop_close(micro__loop_ext *x)
{
    tloop_close((tloop *) x);
}

static void
tloop_close_task(micro__task *task)
{
    tloop *tl = (tloop *) ((char *) task - offsetof(tloop, close_task));
    micro__loop_ext_remove(tl->loop, &tl->ext);
    tloop_close(tl);
}

static tloop *
tloop_get(micro_transport *t, micro_loop *loop)
{
    tloop *tl = (tloop *) micro__loop_ext_find(loop, t);
    if (tl != NULL) {
        return tl;
    }
    tl = micro__calloc(1, sizeof(*tl));
    if (tl == NULL) {
        return NULL;
    }
    tl->ext.key = t;
    tl->ext.on_close = tloop_on_loop_close;
    tl->t = t;
    tl->loop = loop;
    tl->close_task.fn = tloop_close_task;
    pthread_mutex_lock(&t->mu);
    bool closing = t->closing;
    if (!closing) {
        tl->next = t->tloops;
        t->tloops = tl;
    }
    pthread_mutex_unlock(&t->mu);
    if (closing) {
        micro__free(tl);
        return NULL;
    }
    micro__loop_ext_add(loop, &tl->ext);
    return tl;
}

static void
bucket_remove(micro_socket *s)
{
    bucket *b = s->b;
    for (micro_socket **pp = &b->top; *pp != NULL; pp = &(*pp)->pnext) {
        if (*pp == s) {
            *pp = s->pnext;
            b->n--;
            break;
        }
    }
    s->b = NULL;
    s->pnext = NULL;
    s->idle = false;
}

/* Idle sockets in the pool: anything from the peer ends them. */
static void
idle_on_msg(void *arg, micro_socket *s, micro_msg *msg)
{
    (void) arg;
    micro_msg_free(msg);
    MICRO_LOGF(MICRO_LOG_DEBUG, TR_COMPONENT,
        "%s: unsolicited message on an idle connection; closed", s->addr);
    micro_socket_close(s);
}

static void
idle_on_close(void *arg, micro_socket *s, int rc)
{
    (void) arg;
    (void) s;
    (void) rc; /* socket_free takes it out of its bucket */
}

static const micro_socket_handler idle_handler = {
    .on_msg = idle_on_msg,
    .on_close = idle_on_close,
};

static micro_socket *
pool_take(tloop *tl, const char *addr)
{
    micro_transport *t = tl->t;
    size_t len = strlen(addr);
    bucket *b = (bucket *) micro__strtab_find(&tl->buckets, addr, len,
        micro__strtab_hash(addr, len));
    int64_t now = micro__now_ms();
    while (b != NULL && b->top != NULL) {
        micro_socket *s = b->top;
        bucket_remove(s);
        if (t->pool_ttl_ms > 0 && now - s->born > t->pool_ttl_ms) {
            micro_socket_close(s);
            continue;
        }
        s->h = NULL;
        s->harg = NULL;
        s->reused = true;
        return s;
    }
    return NULL;
}

void
micro_socket_release(micro_socket *s)
{
    if (s == NULL || s->closed) {
        return;
    }
    micro_transport *t = s->t;
    tloop *tl = s->tl;
    bool keep = !s->accepted_side && tl != NULL && s->addr != NULL &&
        t->pool_size > 0 && !t->closing &&
        (t->pool_ttl_ms <= 0 || micro__now_ms() - s->born <= t->pool_ttl_ms) &&
        t->ops->reusable != NULL && t->ops->reusable(s);
    if (!keep) {
        micro_socket_close(s);
        return;
    }
    size_t len = strlen(s->addr);
    uint64_t h = micro__strtab_hash(s->addr, len);
    bucket *b = (bucket *) micro__strtab_find(&tl->buckets, s->addr, len, h);
    if (b == NULL) {
        b = micro__malloc(sizeof(*b) + len + 1);
        if (b == NULL) {
            micro_socket_close(s);
            return;
        }
        b->top = NULL;
        b->n = 0;
        memcpy(b->addr, s->addr, len + 1);
        if (micro__strtab_insert(&tl->buckets, &b->node, b->addr, len, h) !=
            0) {
            micro__free(b);
            micro_socket_close(s);
            return;
        }
    }
    if (b->n >= t->pool_size) {
        micro_socket_close(s);
        return;
    }
    s->h = &idle_handler;
    s->harg = NULL;
    s->b = b;
    s->idle = true;
    s->pnext = b->top;
    b->top = s;
    b->n++;
    if (t->ops->set_busy != NULL) {
        t->ops->set_busy(s, false);
    }
}

/* ------------------------------------------------------------------ */
/* Dialling.                                                            */

static void
pooled_dial_task(micro__task *task)
{
    micro_socket *s = (micro_socket *) ((char *) task -
        offsetof(micro_socket, task));
    micro_dial_fn cb = s->dial_cb;
    s->dial_cb = NULL;
    if (s->closed) {
        return; /* cannot happen: a taken socket has no handler to close */
    }
    cb(s->dial_arg, 0, s);
}

void
micro_socket_dialed(micro_socket *s, int rc)
{
    if (!s->dialing) {
        return;
    }
    s->dialing = false;
    micro_dial_fn cb = s->dial_cb;
    void *arg = s->dial_arg;
    s->dial_cb = NULL;
    if (rc != 0) {
        s->closed = true;
        s->t->ops->close(s);
        socket_free(s);
        cb(arg, rc, NULL);
        return;
    }
    cb(arg, 0, s);
}

/* Start a dial; *out is the socket in progress (for an abort). */
static int
dial_start(micro_transport *t, tloop *tl, const char *addr,
    int64_t timeout_ms, micro_dial_fn cb, void *arg, micro_socket **out)
{
    micro_socket *s = socket_alloc(t, tl->loop);
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    s->addr = micro__strdup(addr);
    if (s->addr == NULL) {
        micro__free(s);
        return MICRO_ENOMEM;
    }
    s->tl = tl;
    list_add(&tl->sockets, s);
    s->dial_cb = cb;
    s->dial_arg = arg;
    s->dialing = true;
    int64_t to = timeout_ms > 0 ? timeout_ms : t->dial_timeout_ms;
    int rc = t->ops->dial(t->st, s, addr, to);
    if (rc != 0) {
        s->dialing = false;
        s->closed = true;
        t->ops->close(s);
        socket_free(s);
        return rc;
    }
    if (out != NULL) {
        *out = s;
    }
    return 0;
}

int
micro_transport_dial(micro_transport *t, micro_loop *loop, const char *addr,
    const micro_dial_opts *o, micro_dial_fn cb, void *arg,
    micro_socket **pending)
{
    micro_socket *dummy = NULL;
    if (pending == NULL) {
        pending = &dummy;
    }
    *pending = NULL;
    if (t == NULL || loop == NULL || addr == NULL || cb == NULL ||
        !micro_loop_is_current(loop)) {
        return MICRO_EINVAL;
    }
    tloop *tl = tloop_get(t, loop);
    if (tl == NULL) {
        return t->closing ? MICRO_ECLOSED : MICRO_ENOMEM;
    }
    micro_dial_opts d; /* as much as the caller's version holds */
    MICRO__SIZED_COPY(&d, o, micro_dial_opts, stream);
    if (!d.stream) {
        micro_socket *s = pool_take(tl, addr);
        if (s != NULL) {
            s->dial_cb = cb;
            s->dial_arg = arg;
            s->task.fn = pooled_dial_task;
            micro__loop_defer(loop, &s->task);
            return 0;
        }
    }
    return dial_start(t, tl, addr, d.timeout_ms, cb, arg, pending);
}

/* ------------------------------------------------------------------ */
/* Round trips: a socket, one message each way, back to the pool.      */

struct micro_transport_call {
    micro_transport *t;
    tloop *tl;
    micro_transport_call *prev, *next; /* tl->calls */
    micro_msg *req;
    char *addr;
    micro_socket *s;   /* connected, or being dialled (dialing) */
    bool dialing;
    bool retried;
    bool in_start;
    bool done;
    int sent;
    int64_t deadline;  /* 0: none */
    micro__timer timer;
    micro_transport_done_fn cb;
    void *arg;
    micro__task task;  /* a completion deferred out of the start */
    int rc;
    micro_msg *rsp;
};

static void rt_dial(micro_transport_call *c);

static void
rt_free(micro_transport_call *c)
{
    micro_msg_free(c->req);
    micro_msg_free(c->rsp);
    micro__free(c->addr);
    micro__free(c);
}

static void
rt_deliver(micro_transport_call *c)
{
    micro_msg *rsp = c->rsp;
    c->rsp = NULL;
    c->cb(c->arg, c->rc, rsp, c->sent);
    rt_free(c);
}

static void
rt_deliver_task(micro__task *task)
{
    rt_deliver((micro_transport_call *) ((char *) task -
        offsetof(micro_transport_call, task)));
}

/* The round trip is over: unlink, and call back (now, or after the start
 * returns). The socket has been released or closed by the caller. */
static void
rt_complete(micro_transport_call *c, int rc, micro_msg *rsp)
{
    if (c->done) {
        micro_msg_free(rsp);
        return;
    }
    c->done = true;
    tloop *tl = c->tl;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (tl->calls == c) {
        tl->calls = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    micro__timer_stop(tl->loop, &c->timer);
    c->rc = rc;
    c->rsp = rsp;
    if (c->in_start) {
        c->task.fn = rt_deliver_task;
        micro__loop_defer(tl->loop, &c->task);
        return;
    }
    rt_deliver(c);
}

/* Should a failure on the socket be retried on a new connection? Only a
 * pooled one that failed before any answer byte: the peer closed it while
 * it sat idle, or as the request crossed; a Go Micro server never closes
 * a connection with an answer pending, so the request was not read (Go's
 * net/http Transport retries in the same case). */
static bool
rt_stale(micro_transport_call *c, micro_socket *s, int rc)
{
    return !c->retried && s->reused && !micro_socket_got_bytes(s) &&
        (rc == MICRO_EOF || rc == MICRO_EPIPE || rc == MICRO_ECONNRESET);
}

static void
rt_fail(micro_transport_call *c, micro_socket *s, int rc)
{
    bool stale = s != NULL && rt_stale(c, s, rc);
    if (s != NULL) {
        c->s = NULL;
        micro_socket_close(s);
    }
    if (stale) {
        MICRO_LOGF(MICRO_LOG_DEBUG, TR_COMPONENT,
            "%s: pooled connection was closed (%s); redialling", c->addr,
            micro_strerror(rc));
        c->retried = true;
        c->sent = 0; /* the first copy was not delivered */
        rt_dial(c);
        return;
    }
    if (rc == MICRO_EOF) {
        rc = MICRO_ECONNRESET; /* closed before the answer */
    }
    rt_complete(c, rc, NULL);
}

static void
rt_on_msg(void *arg, micro_socket *s, micro_msg *msg)
{
    micro_transport_call *c = arg;
    c->s = NULL;
    micro_socket_release(s);
    rt_complete(c, 0, msg);
}

static void
rt_on_close(void *arg, micro_socket *s, int rc)
{
    micro_transport_call *c = arg;
    (void) s;
    c->s = NULL; /* freed by the front end after this */
    bool stale = rt_stale(c, s, rc);
    if (stale) {
        MICRO_LOGF(MICRO_LOG_DEBUG, TR_COMPONENT,
            "%s: pooled connection was closed (%s); redialling", c->addr,
            micro_strerror(rc));
        c->retried = true;
        c->sent = 0;
        rt_dial(c);
        return;
    }
    rt_complete(c, rc == MICRO_EOF ? MICRO_ECONNRESET : rc, NULL);
}

static void
rt_on_eof(void *arg, micro_socket *s, int rc)
{
    micro_transport_call *c = arg;
    rt_fail(c, s, rc == 0 ? MICRO_EOF : rc);
}

static const micro_socket_handler rt_handler = {
    .on_msg = rt_on_msg,
    .on_eof = rt_on_eof,
    .on_close = rt_on_close,
};

static void
rt_send(micro_transport_call *c, micro_socket *s)
{
    c->s = s;
    micro_socket_set_handler(s, &rt_handler, c);
    micro_socket_set_busy(s, true);
    int rc = micro_socket_send(s, c->req);
    if (rc != 0) {
        rt_fail(c, s, rc);
        return;
    }
    c->sent = 1;
}

static void
rt_on_dial(void *arg, int rc, micro_socket *s)
{
    micro_transport_call *c = arg;
    c->dialing = false;
    c->s = NULL;
    if (rc != 0) {
        rt_complete(c, rc, NULL);
        return;
    }
    rt_send(c, s);
}

static void
rt_dial(micro_transport_call *c)
{
    micro_transport *t = c->t;
    int64_t to = t->dial_timeout_ms;
    if (c->deadline != 0) {
        int64_t left = c->deadline - micro__now_ms();
        if (left <= 0) {
            rt_complete(c, MICRO_ETIMEDOUT, NULL);
            return;
        }
        if (to <= 0 || left < to) {
            to = left;
        }
    }
    c->dialing = true;
    int rc = dial_start(t, c->tl, c->addr, to, rt_on_dial, c, &c->s);
    if (rc != 0) {
        c->dialing = false;
        c->s = NULL;
        rt_complete(c, rc, NULL);
    }
}

static void
rt_abort(micro_transport_call *c, int rc)
{
    micro_socket *s = c->s;
    c->s = NULL;
    c->dialing = false;
    if (s != NULL) {
        micro_socket_close(s); /* a dial in progress is abandoned */
    }
    rt_complete(c, rc, NULL);
}

static void
rt_on_timer(micro__timer *tm)
{
    micro_transport_call *c = (micro_transport_call *) ((char *) tm -
        offsetof(micro_transport_call, timer));
    rt_abort(c, MICRO_ETIMEDOUT);
}

int
micro_transport_roundtrip_async(micro_transport *t, micro_loop *loop,
    const char *addr, micro_msg **req, int64_t timeout_ms,
    micro_transport_done_fn cb, void *arg, micro_transport_call **call)
{
    if (call != NULL) {
        *call = NULL;
    }
    if (t == NULL || loop == NULL || addr == NULL || req == NULL ||
        *req == NULL || cb == NULL || !micro_loop_is_current(loop)) {
        return MICRO_EINVAL;
    }
    tloop *tl = tloop_get(t, loop);
    if (tl == NULL) {
        return t->closing ? MICRO_ECLOSED : MICRO_ENOMEM;
    }
    micro_transport_call *c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        return MICRO_ENOMEM;
    }
    c->addr = micro__strdup(addr);
    if (c->addr == NULL) {
        micro__free(c);
        return MICRO_ENOMEM;
    }
    c->t = t;
    c->tl = tl;
    c->cb = cb;
    c->arg = arg;
    c->req = *req;
    *req = NULL;
    c->next = tl->calls;
    if (tl->calls != NULL) {
        tl->calls->prev = c;
    }
    tl->calls = c;
    if (call != NULL) {
        *call = c;
    }
    c->in_start = true;
    if (timeout_ms > 0) {
        int64_t now = micro__now_ms();
        c->deadline = timeout_ms > INT64_MAX - now ? 0 : now + timeout_ms;
        if (c->deadline != 0 &&
            micro__timer_start(loop, &c->timer, c->deadline, rt_on_timer) !=
                0) {
            rt_complete(c, MICRO_ENOMEM, NULL);
            c->in_start = false;
            return 0;
        }
    }
    micro_socket *s = pool_take(tl, addr);
    if (s != NULL) {
        rt_send(c, s);
    } else {
        rt_dial(c);
    }
    c->in_start = false;
    return 0;
}

void
micro_transport_cancel(micro_transport *t, micro_transport_call *c)
{
    (void) t;
    if (c != NULL && !c->done) {
        rt_abort(c, MICRO_ECANCELED);
    }
}

/* The blocking form for transports without their own. */
typedef struct rt_wait {
    micro__task task;
    micro_transport *t;
    const char *addr;
    micro_msg *req;
    int64_t timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    int sent;
    micro_msg *rsp;
} rt_wait;

static void
rt_wait_done(void *arg, int rc, micro_msg *rsp, int sent)
{
    rt_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->rsp = rsp;
    w->sent = sent;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void
rt_wait_start(micro__task *task)
{
    rt_wait *w = (rt_wait *) task;
    int rc = micro_transport_roundtrip_async(w->t, w->t->loop, w->addr,
        &w->req, w->timeout_ms, rt_wait_done, w, NULL);
    if (rc != 0) {
        rt_wait_done(w, rc, NULL, 0);
    }
}

int
micro_transport_roundtrip(micro_transport *t, const char *addr,
    const micro_msg *req, int64_t timeout_ms, micro_msg **rsp, int *sent)
{
    int dummy = 0;
    if (sent == NULL) {
        sent = &dummy;
    }
    *sent = 0;
    if (rsp != NULL) {
        *rsp = NULL;
    }
    if (t == NULL || addr == NULL || req == NULL || rsp == NULL) {
        return MICRO_EINVAL;
    }
    if (t->ops->roundtrip != NULL) {
        /* MICRO_ENOTSUP: no fast path for this configuration (TLS). */
        int rc = t->ops->roundtrip(t->st, addr, req, timeout_ms, rsp, sent);
        if (rc != MICRO_ENOTSUP) {
            return rc;
        }
    }
    if (micro_loop_is_current(t->loop)) {
        return MICRO_EINVAL; /* it would wait for itself */
    }
    rt_wait w;
    memset(&w, 0, sizeof(w));
    w.task.fn = rt_wait_start;
    w.t = t;
    w.addr = addr;
    w.timeout_ms = timeout_ms;
    int rc = micro_msg_new(&w.req);
    if (rc != 0) {
        return rc;
    }
    /* The round trip takes its message: give it a copy. */
    for (size_t i = 0; rc == 0 && i < micro_msg_header_count(req); i++) {
        const char *k, *v;
        micro_msg_header_at(req, i, &k, &v);
        rc = micro_msg_set_header(w.req, k, v);
    }
    size_t blen = 0;
    const void *body = micro_msg_body(req, &blen);
    if (rc == 0) {
        rc = micro_msg_set_body(w.req, body, blen);
    }
    if (rc != 0) {
        micro_msg_free(w.req);
        return rc;
    }
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    rc = micro__loop_post_task(t->loop, &w.task);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) {
            pthread_cond_wait(&w.cv, &w.mu);
        }
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
        *rsp = w.rsp;
        *sent = w.sent;
    } else {
        micro_msg_free(w.req);
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Closing a loop's state.                                              */

static void
bucket_free(micro__strtab_node *n, void *arg)
{
    (void) arg;
    micro__free(n);
}

/* Loop thread of tl: complete its round trips with MICRO_ECANCELED, end
 * its sockets (owners hear on_close with MICRO_ECANCELED), free it. */
static void
tloop_close(tloop *tl)
{
    micro_transport *t = tl->t;
    while (tl->calls != NULL) {
        rt_abort(tl->calls, MICRO_ECANCELED);
    }
    while (tl->sockets != NULL) {
        micro_socket *s = tl->sockets;
        if (s->dialing) {
            /* A dial whose owner is not a round trip: it hears the end. */
            micro_dial_fn cb = s->dial_cb;
            void *arg = s->dial_arg;
            micro_socket_close(s);
            cb(arg, MICRO_ECANCELED, NULL);
        } else if (s->idle || s->h == NULL) {
            micro_socket_close(s);
        } else {
            micro_socket_emit_close(s, MICRO_ECANCELED);
        }
    }
    micro__strtab_clear(&tl->buckets, bucket_free, NULL);
    pthread_mutex_lock(&t->mu);
    for (tloop **pp = &t->tloops; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == tl) {
            *pp = tl->next;
            break;
        }
    }
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    micro__free(tl);
}

/* ------------------------------------------------------------------ */
/* The transport.                                                       */

int
micro_transport_new(micro_transport **out, const micro_transport_ops *ops,
    micro_loop *loop, const micro_options *opts)
{
    *out = NULL;
    if (ops == NULL || loop == NULL || ops->abi != MICRO_TRANSPORT_ABI ||
        ops->init == NULL || ops->listen == NULL || ops->dial == NULL ||
        ops->send == NULL || ops->close == NULL || ops->fini == NULL) {
        return MICRO_EINVAL;
    }
    micro_transport *t = micro__calloc(1, sizeof(*t));
    if (t == NULL) {
        return MICRO_ENOMEM;
    }
    t->st = micro__calloc(1, ops->state_size ? ops->state_size : 1);
    if (t->st == NULL) {
        micro__free(t);
        return MICRO_ENOMEM;
    }
    t->ops = ops;
    t->loop = loop;
    int64_t ps = micro_options_get_int(opts, "client_pool_size");
    t->pool_size = ps > 0 ? (size_t) ps : 0;
    t->pool_ttl_ms = micro_options_get_ms(opts, "client_pool_ttl");
    t->dial_timeout_ms = micro_options_get_ms(opts, "client_dial_timeout");
    if (t->dial_timeout_ms <= 0) {
        t->dial_timeout_ms = 5000;
    }
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    micro_options *own = NULL; /* reads the options it declares */
    int rc = micro__options_scoped(opts, "transport", ops->name,
        micro__transport_ops_options(ops), &own);
    if (rc == 0) {
        rc = ops->init(t->st, loop, own);
    }
    micro_options_free(own);
    if (rc != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        micro__free(t->st);
        micro__free(t);
        return rc;
    }
    *out = t;
    return 0;
}

int
micro_transport_new_by_name(micro_transport **out, const char *name,
    micro_loop *loop, const micro_options *opts)
{
    const micro_transport_ops *ops = NULL;
    *out = NULL;
    int rc = micro__transport_ops_by_name(name, &ops);
    if (rc != 0) {
        return rc;
    }
    return micro_transport_new(out, ops, loop, opts);
}

void *
micro__transport_state(micro_transport *t)
{
    return t->st;
}

micro_loop *
micro_transport_loop(const micro_transport *t)
{
    return t->loop;
}

int
micro_socket_new_accepted(micro_transport *t, micro_socket **out)
{
    micro_socket *s = socket_alloc(t, t->loop);
    *out = s;
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    s->accepted_side = true;
    list_add(&t->accepted, s);
    return 0;
}

void
micro_socket_accepted(micro_socket *s)
{
    micro_transport *t = s->t;
    if (!t->listening || t->accept_fn == NULL) {
        micro_socket_close(s);
        return;
    }
    s->in_accept = true;
    t->accept_fn(t->accept_arg, s);
    s->in_accept = false;
    if (s->closed) {
        socket_free(s); /* the callback closed it (out of memory, say) */
        return;
    }
    if (s->h == NULL) {
        MICRO_LOGF(MICRO_LOG_ERR, TR_COMPONENT,
            "an accepted socket got no handler; closed");
        micro_socket_close(s);
    }
}

typedef struct listen_args {
    micro_transport *t;
    const char *addr;
} listen_args;

static int
do_listen(void *arg)
{
    listen_args *a = arg;
    return a->t->ops->listen(a->t->st, a->t, a->addr);
}

int
micro_transport_listen(micro_transport *t, const char *addr,
    micro_accept_fn fn, void *arg)
{
    if (t == NULL || addr == NULL || fn == NULL) {
        return MICRO_EINVAL;
    }
    if (t->listening) {
        return MICRO_EEXIST;
    }
    t->accept_fn = fn;
    t->accept_arg = arg;
    t->listening = true;
    listen_args a = {t, addr};
    int rc = micro__loop_call(t->loop, do_listen, &a);
    if (rc != 0) {
        t->listening = false;
    }
    return rc;
}

const char *
micro_transport_address(micro_transport *t)
{
    if (t == NULL || t->ops->listen_address == NULL) {
        return NULL;
    }
    return t->ops->listen_address(t->st);
}

static int
do_stop(void *arg)
{
    micro_transport *t = arg;
    if (t->listening) {
        t->listening = false;
        if (t->ops->stop_listen != NULL) {
            t->ops->stop_listen(t->st);
        }
    }
    return 0;
}

void
micro_transport_stop_listen(micro_transport *t)
{
    if (t != NULL) {
        micro__loop_call(t->loop, do_stop, t);
    }
}

static int
do_close_accepted(void *arg)
{
    micro_transport *t = arg;
    while (t->accepted != NULL) {
        micro_socket *s = t->accepted;
        if (s->h != NULL) {
            micro_socket_emit_close(s, MICRO_ECANCELED);
        } else {
            micro_socket_close(s);
        }
    }
    return 0;
}

void
micro_transport_close_accepted(micro_transport *t)
{
    if (t != NULL) {
        micro__loop_call(t->loop, do_close_accepted, t);
    }
}

void
micro_transport_get_stats(micro_transport *t, micro_transport_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (t != NULL && t->ops->stats != NULL) {
        t->ops->stats(t->st, out);
    }
}

static int
do_shutdown(void *arg)
{
    micro_transport *t = arg;
    do_stop(t);
    do_close_accepted(t);
    /* This loop's own pool and round trips. */
    tloop *tl = (tloop *) micro__loop_ext_find(t->loop, t);
    if (tl != NULL) {
        micro__loop_ext_remove(t->loop, &tl->ext);
        tloop_close(tl);
    }
    if (t->ops->shutdown != NULL) {
        t->ops->shutdown(t->st);
    }
    return 0;
}

static int
do_fini(void *arg)
{
    micro_transport *t = arg;
    t->ops->fini(t->st);
    return 0;
}

void
micro_transport_free(micro_transport *t)
{
    if (t == NULL) {
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->closing = true;
    pthread_mutex_unlock(&t->mu);
    micro__loop_call(t->loop, do_shutdown, t);
    /* State on other loops closes on their own threads; wait for it. */
    pthread_mutex_lock(&t->mu);
    while (t->tloops != NULL) {
        for (tloop *tl = t->tloops; tl != NULL; tl = tl->next) {
            if (!tl->close_posted) {
                tl->close_posted = true;
                /* Refused when that loop is closing: its on_close hook
                 * then closes tl. */
                (void) micro__loop_post_task(tl->loop, &tl->close_task);
            }
        }
        pthread_cond_wait(&t->cv, &t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    micro__loop_call(t->loop, do_fini, t);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    micro__free(t->st);
    micro__free(t);
}
