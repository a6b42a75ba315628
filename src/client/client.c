/*
 * The client front end: call objects, the wrapper chain, and asynchronous
 * calls and stream openings: their arguments copied, the hop to the loop,
 * and the bookkeeping that cancels what is pending when the client is
 * freed or a loop closes. The protocol is an implementation behind
 * micro_client_ops; the built-in one is mucp.c.
 *
 * An asynchronous call runs on the caller's loop when the implementation
 * has call_async and no wrapper is installed (wrappers are synchronous);
 * otherwise the synchronous call runs on the client's own threads and its
 * result is posted to the loop.
 */
#include "client/client_internal.h"
#include "client/publish_internal.h"
#include "core/loop_internal.h"
#include "core/msg_internal.h"
#include "core/options_internal.h"
#include "plugins.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct cwrapper {
    micro_call_wrapper_fn fn;
    void *arg;
} cwrapper;

typedef struct cloop cloop;
typedef struct acall acall;

struct micro_client {
    const micro_client_ops *ops;
    void *st;
    bool has_async;  /* ABI 2 with call_async and cancel */
    cwrapper *wrappers;
    size_t n_wrappers;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* an lxs entry left */
    micro__pool *async_pool;
    struct micro__publish *pub; /* publish.c */
    /* The struct lives while any async call or a loop's state refers to
     * it. */
    atomic_bool closing; /* micro_client_free has begun */
    atomic_int refs;     /* the user's, one per async call, one per lx */
    cloop *lxs;          /* mu: per-loop states */
};

struct micro_call_chain {
    micro_client *c;
    size_t idx;
};

/* ------------------------------------------------------------------ */
/* The call object.                                                     */

const void *
micro_call_body(const micro_call *c, size_t *len)
{
    *len = c->payload.len;
    return c->payload.data ? (const void *) c->payload.data : "";
}

const char *
micro_call_header(const micro_call *c, const char *key)
{
    return c->rsp ? micro_msg_header(c->rsp, key) : NULL;
}

const micro_error *
micro_call_error(const micro_call *c)
{
    return c->err;
}

const char *
micro_call_address(const micro_call *c)
{
    return c->address;
}

int
micro_call_attempts(const micro_call *c)
{
    return c->attempts;
}

void
micro_call_free(micro_call *c)
{
    if (c == NULL) {
        return;
    }
    micro_msg_free(c->rsp);
    micro_buf_clear(&c->payload);
    micro_error_free(c->err);
    micro__free(c);
}

int
micro_call_set_body(micro_call *c, const void *p, size_t n)
{
    if (c == NULL || (p == NULL && n > 0)) {
        return MICRO_EINVAL;
    }
    c->payload.len = 0;
    return micro_buf_append(&c->payload, p, n);
}

int
micro_call_set_error(micro_call *c, const char *id, int32_t code,
    const char *detail)
{
    if (c == NULL) {
        return MICRO_EINVAL;
    }
    micro_error_free(c->err);
    c->err = micro_error_new(id, code, detail);
    return c->err ? 0 : MICRO_ENOMEM;
}

void
micro_call_set_address(micro_call *c, const char *address)
{
    if (c != NULL) {
        snprintf(c->address, sizeof(c->address), "%s",
            address ? address : "");
    }
}

void
micro__call_reset(micro_call *c)
{
    micro_msg_free(c->rsp);
    c->rsp = NULL;
    c->payload.len = 0;
    micro_error_free(c->err);
    c->err = NULL;
}

void
micro__call_error(micro_call *c, const char *id, int32_t code,
    const char *detail)
{
    micro_error_free(c->err);
    c->err = micro_error_new(id, code, detail);
}

int
micro_call_next(micro_call_chain *next, micro_call_req *req, micro_call *call)
{
    micro_client *c = next->c;
    if (next->idx < c->n_wrappers) {
        const cwrapper *w = &c->wrappers[next->idx];
        micro_call_chain n2 = {c, next->idx + 1};
        return w->fn(req, call, &n2, w->arg);
    }
    return c->ops->call(c->st, req, call);
}

/* ------------------------------------------------------------------ */
/* The client.                                                          */

int
micro_client_new_with_ops(micro_client **out, const micro_client_ops *ops,
    micro_transport *transport, micro_selector *selector,
    const micro_options *opts)
{
    *out = NULL;
    if (ops == NULL || ops->abi < 1 || ops->abi > MICRO_CLIENT_ABI ||
        ops->init == NULL || ops->call == NULL) {
        return MICRO_EINVAL;
    }
    /* An ABI 1 table ends at fini and an ABI 2 one at default_loop: the
     * later slots do not exist (micro__client_ops_options reads options
     * of an ABI 3 table only). */
    bool has_async = ops->abi >= 2 && ops->call_async != NULL;
    if (has_async && ops->cancel == NULL) {
        return MICRO_EINVAL;
    }
    micro_client *c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        return MICRO_ENOMEM;
    }
    c->st = micro__calloc(1, ops->state_size ? ops->state_size : 1);
    if (c->st == NULL) {
        micro__free(c);
        return MICRO_ENOMEM;
    }
    c->ops = ops;
    c->has_async = has_async;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    atomic_init(&c->closing, false);
    atomic_init(&c->refs, 1);
    micro_options *own = NULL; /* reads the options it declares */
    int rc = micro__options_scoped(opts, "client", ops->name,
        micro__client_ops_options(ops), &own);
    bool inited = rc == 0;
    if (inited) {
        rc = ops->init(c->st, transport, selector, own);
    }
    micro_options_free(own);
    if (rc != 0) {
        if (inited && ops->fini != NULL) {
            ops->fini(c->st);
        }
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        micro__free(c->st);
        micro__free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int
micro_client_new(micro_client **out, micro_transport *transport,
    micro_selector *selector, const micro_options *opts)
{
    return micro_client_new_with_ops(out, &micro_client_mucp_ops, transport,
        selector, opts);
}

static void
client_unref(micro_client *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        micro__free(c);
    }
}

static void cancel_all(micro_client *c);

void
micro_client_free(micro_client *c)
{
    if (c == NULL) {
        return;
    }
    atomic_store(&c->closing, true);
    /* Pending loop-native calls and openings complete with
     * MICRO_ECANCELED; after this nothing of theirs touches the
     * implementation. */
    cancel_all(c);
    micro__pool_free(c->async_pool);
    if (c->ops->fini != NULL) {
        c->ops->fini(c->st);
    }
    micro__free(c->wrappers);
    micro__publish_free(c->pub);
    micro__free(c->st);
    c->st = NULL;
    client_unref(c);
}

struct micro__publish **
micro__client_pub(micro_client *c)
{
    return &c->pub;
}

int
micro_client_wrap(micro_client *c, micro_call_wrapper_fn fn, void *arg)
{
    if (c == NULL || fn == NULL) {
        return MICRO_EINVAL;
    }
    cwrapper *ws = micro__realloc(c->wrappers,
        (c->n_wrappers + 1) * sizeof(*ws));
    if (ws == NULL) {
        return MICRO_ENOMEM;
    }
    c->wrappers = ws;
    ws[c->n_wrappers].fn = fn;
    ws[c->n_wrappers].arg = arg;
    c->n_wrappers++;
    return 0;
}

void
micro_client_set_retry_on(micro_client *c, unsigned bits)
{
    if (c != NULL && c->ops->set_retry_on != NULL) {
        c->ops->set_retry_on(c->st, bits);
    }
}

int
micro_client_call(micro_client *c, const char *service, const char *endpoint,
    const void *body, size_t len, const micro_call_opts *opts,
    micro_call **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (c == NULL || service == NULL || endpoint == NULL ||
        (body == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    micro_call *call = micro__calloc(1, sizeof(*call));
    if (call == NULL) {
        return MICRO_ENOMEM;
    }
    micro_call_req req = {service, endpoint, body, len, {0}};
    micro__opts_copy(&req.opts, opts);
    micro_call_chain chain = {c, 0};
    int rc = micro_call_next(&chain, &req, call);
    if (out != NULL) {
        *out = call;
    } else {
        micro_call_free(call);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Asynchronous calls and stream openings.                             */

/* A call's arguments, copied: the call outlives micro_client_call_async.
 * One allocation holds the body and every string. */
typedef struct req_copy {
    micro_call_req req;
    micro_select_filter filter;
    micro_header_kv *md;
    char *store;
} req_copy;

static size_t
str_size(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

static const char *
put_str(char **pos, const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    memcpy(*pos, s, n);
    const char *r = *pos;
    *pos += n;
    return r;
}

static void
req_copy_clear(req_copy *rc)
{
    micro__free(rc->md);
    micro__free(rc->store);
    memset(rc, 0, sizeof(*rc));
}

static int
req_copy_init(req_copy *rc, const char *service, const char *endpoint,
    const void *body, size_t len, const micro_call_opts *opts)
{
    memset(rc, 0, sizeof(*rc));
    micro_call_opts o;
    micro__opts_copy(&o, opts);
    const micro_select_filter *f = o.filter;
    size_t nmd = o.metadata != NULL ? o.n_metadata : 0;
    size_t n = len + str_size(service) + str_size(endpoint) +
        str_size(o.address) + str_size(o.content_type);
    if (f != NULL) {
        n += str_size(f->version) + str_size(f->label_key) +
            str_size(f->label_value) + str_size(f->endpoint);
    }
    for (size_t i = 0; i < nmd; i++) {
        n += str_size(o.metadata[i].key) + str_size(o.metadata[i].value);
    }
    rc->store = micro__malloc(n > 0 ? n : 1);
    if (nmd > 0) {
        rc->md = micro__calloc(nmd, sizeof(*rc->md));
    }
    if (rc->store == NULL || (nmd > 0 && rc->md == NULL)) {
        req_copy_clear(rc);
        return MICRO_ENOMEM;
    }
    char *pos = rc->store;
    if (len > 0) {
        memcpy(pos, body, len);
    }
    rc->req.body = pos;
    rc->req.len = len;
    pos += len;
    rc->req.service = put_str(&pos, service);
    rc->req.endpoint = put_str(&pos, endpoint);
    rc->req.opts = o;
    rc->req.opts.address = put_str(&pos, o.address);
    rc->req.opts.content_type = put_str(&pos, o.content_type);
    rc->req.opts.filter = NULL;
    if (f != NULL) {
        rc->filter.version = put_str(&pos, f->version);
        rc->filter.label_key = put_str(&pos, f->label_key);
        rc->filter.label_value = put_str(&pos, f->label_value);
        rc->filter.endpoint = put_str(&pos, f->endpoint);
        rc->req.opts.filter = &rc->filter;
    }
    for (size_t i = 0; i < nmd; i++) {
        rc->md[i].key = put_str(&pos, o.metadata[i].key);
        rc->md[i].value = put_str(&pos, o.metadata[i].value);
    }
    rc->req.opts.metadata = rc->md;
    rc->req.opts.n_metadata = nmd;
    return 0;
}

/* --- on the client's threads ----------------------------------------- */

typedef struct pool_call {
    micro__task task;
    micro_client *c;
    micro_loop *loop;
    req_copy args;
    micro_call_cb cb;
    void *arg;
    int rc;
    micro_call *call;
} pool_call;

static void
pool_call_free(pool_call *a)
{
    req_copy_clear(&a->args);
    micro__free(a);
}

static void
pool_call_complete(micro__task *t)
{
    pool_call *a = (pool_call *) t;
    a->cb(a->arg, a->rc, a->call);
    pool_call_free(a);
}

static void
pool_call_run(micro__task *t)
{
    pool_call *a = (pool_call *) t;
    const micro_call_req *r = &a->args.req;
    a->rc = micro_client_call(a->c, r->service, r->endpoint, r->body, r->len,
        &r->opts, &a->call);
    a->task.fn = pool_call_complete;
    if (micro__loop_post_task(a->loop, &a->task) != 0) {
        /* The loop is gone: nobody can be told; drop quietly but count. */
        micro_log(MICRO_LOG_WARN, "client",
            "async completion of %s dropped: its loop has closed",
            r->endpoint);
        micro_call_free(a->call);
        pool_call_free(a);
    }
}

static int
pool_call_start(micro_client *c, micro_loop *loop, const char *service,
    const char *endpoint, const void *body, size_t len,
    const micro_call_opts *opts, micro_call_cb cb, void *arg)
{
    pthread_mutex_lock(&c->mu);
    if (c->async_pool == NULL) {
        int rc = micro__pool_new(&c->async_pool, 8, "client-async");
        if (rc != 0) {
            pthread_mutex_unlock(&c->mu);
            return rc;
        }
    }
    pthread_mutex_unlock(&c->mu);
    pool_call *a = micro__calloc(1, sizeof(*a));
    if (a == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = req_copy_init(&a->args, service, endpoint, body, len, opts);
    if (rc != 0) {
        micro__free(a);
        return rc;
    }
    a->c = c;
    a->loop = loop;
    a->cb = cb;
    a->arg = arg;
    a->task.fn = pool_call_run;
    rc = micro__pool_submit(c->async_pool, &a->task);
    if (rc != 0) {
        pool_call_free(a);
    }
    return rc;
}

/* --- on the caller's loop --------------------------------------------- */

/* A call or an opening the implementation runs on a loop. */
struct acall {
    micro__task task; /* first: the hop to the loop */
    micro_client *c;
    micro_loop *loop;
    cloop *lx;          /* once started */
    acall *prev, *next; /* lx->calls */
    req_copy args;
    micro_call *call;   /* calls: the caller's once cb runs */
    micro_call_cb cb;
    micro_stream_open_cb scb;
    void *arg;
    void *handle;       /* the implementation's */
    bool stream;
    bool started;
};

/* A client's state on one loop: its pending calls, found through the
 * loop's ext list (no lock) and cancelled when the loop closes. */
struct cloop {
    micro__loop_ext ext; /* first; key: the client */
    micro_client *c;
    micro_loop *loop;
    cloop *next; /* c->lxs */
    acall *calls;
    micro__task cancel_task;
    int depth;          /* lx_cancel frames on the stack */
    bool cancel_posted; /* c->mu */
};

static void
ac_free(acall *a)
{
    micro_client *c = a->c;
    req_copy_clear(&a->args);
    micro_call_free(a->call);
    micro__free(a);
    client_unref(c);
}

static void
ac_unlink(acall *a)
{
    cloop *lx = a->lx;
    if (lx == NULL) {
        return;
    }
    if (a->prev != NULL) {
        a->prev->next = a->next;
    } else {
        lx->calls = a->next;
    }
    if (a->next != NULL) {
        a->next->prev = a->prev;
    }
    a->prev = a->next = NULL;
    a->lx = NULL;
}

/* The implementation's completion of a call (loop thread). */
static void
ac_done(void *arg, int rc)
{
    acall *a = arg;
    ac_unlink(a);
    micro_call *call = a->call;
    a->call = NULL;
    a->cb(a->arg, rc, call);
    ac_free(a);
}

/* ... and of an opening. */
static void
ac_opened(void *arg, int rc, micro_stream *s)
{
    acall *a = arg;
    ac_unlink(a);
    a->scb(a->arg, rc, s);
    ac_free(a);
}

/* Cancel every call of lx and free it. Callbacks may free the client,
 * which cancels lx again from inside this frame: the innermost frame
 * empties the list, the outermost frees lx. */
static void
lx_cancel(cloop *lx)
{
    micro_client *c = lx->c;
    lx->depth++;
    micro__loop_ext_remove(lx->loop, &lx->ext);
    while (lx->calls != NULL) {
        acall *a = lx->calls;
        /* The implementation completes it (ac_done / ac_opened) before
         * cancel returns, which unlinks it. */
        c->ops->cancel(c->st, a->handle);
        if (lx->calls == a) {
            ac_unlink(a); /* a broken implementation: do not spin */
        }
    }
    if (--lx->depth > 0) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    for (cloop **pp = &c->lxs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == lx) {
            *pp = lx->next;
            break;
        }
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    micro__free(lx);
    client_unref(c);
}

static void
lx_on_loop_close(micro__loop_ext *x)
{
    lx_cancel((cloop *) x);
}

static void
lx_cancel_task(micro__task *t)
{
    lx_cancel((cloop *) ((char *) t - offsetof(cloop, cancel_task)));
}

/* Loop thread: the client's state on loop, made on first use. */
static int
lx_get(micro_client *c, micro_loop *loop, cloop **out)
{
    cloop *lx = (cloop *) micro__loop_ext_find(loop, c);
    if (lx != NULL) {
        *out = lx;
        return 0;
    }
    lx = micro__calloc(1, sizeof(*lx));
    if (lx == NULL) {
        return MICRO_ENOMEM;
    }
    lx->ext.key = c;
    lx->ext.on_close = lx_on_loop_close;
    lx->c = c;
    lx->loop = loop;
    lx->cancel_task.fn = lx_cancel_task;
    pthread_mutex_lock(&c->mu);
    bool closing = atomic_load(&c->closing);
    if (!closing) {
        lx->next = c->lxs;
        c->lxs = lx;
        atomic_fetch_add(&c->refs, 1);
    }
    pthread_mutex_unlock(&c->mu);
    if (closing) {
        micro__free(lx);
        return MICRO_ECLOSED;
    }
    micro__loop_ext_add(loop, &lx->ext);
    *out = lx;
    return 0;
}

/* Loop thread: hand a to the implementation. An error means it did not
 * start (no callback will come). */
static int
ac_start(acall *a)
{
    micro_client *c = a->c;
    if (atomic_load(&c->closing)) {
        return MICRO_ECANCELED;
    }
    cloop *lx = NULL;
    int rc = lx_get(c, a->loop, &lx);
    if (rc != 0) {
        return rc == MICRO_ECLOSED ? MICRO_ECANCELED : rc;
    }
    rc = a->stream
        ? c->ops->stream(c->st, a->loop, &a->args.req, ac_opened, a,
              &a->handle)
        : c->ops->call_async(c->st, a->loop, &a->args.req, a->call, ac_done,
              a, &a->handle);
    if (rc != 0) {
        return rc;
    }
    a->lx = lx;
    a->next = lx->calls;
    if (lx->calls != NULL) {
        lx->calls->prev = a;
    }
    lx->calls = a;
    return 0;
}

/* The hop from another thread: a start that fails still owes the caller
 * its callback. */
static void
ac_task(micro__task *t)
{
    acall *a = (acall *) t;
    int rc = ac_start(a);
    if (rc == 0) {
        return;
    }
    if (a->stream) {
        a->scb(a->arg, rc, NULL);
    } else {
        if (rc == MICRO_ECANCELED) {
            micro__call_error(a->call, "go.micro.client", 408,
                "context canceled");
        }
        micro_call *call = a->call;
        a->call = NULL;
        a->cb(a->arg, rc, call);
    }
    ac_free(a);
}

static int
ac_launch(micro_client *c, micro_loop *loop, const char *service,
    const char *endpoint, const void *body, size_t len,
    const micro_call_opts *opts, bool stream, micro_call_cb cb,
    micro_stream_open_cb scb, void *arg)
{
    acall *a = micro__calloc(1, sizeof(*a));
    if (a == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = req_copy_init(&a->args, service, endpoint, body, len, opts);
    if (rc == 0 && !stream) {
        a->call = micro__calloc(1, sizeof(*a->call));
        rc = a->call != NULL ? 0 : MICRO_ENOMEM;
    }
    if (rc != 0) {
        req_copy_clear(&a->args);
        micro__free(a);
        return rc;
    }
    a->c = c;
    a->loop = loop;
    a->cb = cb;
    a->scb = scb;
    a->arg = arg;
    a->stream = stream;
    atomic_fetch_add(&c->refs, 1);
    a->task.fn = ac_task;
    if (!micro_loop_is_current(loop)) {
        rc = micro__loop_post_task(loop, &a->task);
        if (rc != 0) {
            ac_free(a);
        }
        return rc;
    }
    /* On the loop already (typically inside another call's callback):
     * start at once, saving a hop; the implementation never calls back
     * inside its start. */
    if (micro__loop_closing(loop)) {
        ac_free(a);
        return MICRO_ECLOSED;
    }
    rc = ac_start(a);
    if (rc != 0) {
        ac_free(a);
        return rc == MICRO_ECANCELED ? MICRO_ECLOSED : rc;
    }
    return 0;
}

/*
 * micro_client_free: cancel every pending call and opening, on its own
 * loop (directly when that is this thread's), and wait until none is left.
 */
static void
cancel_all(micro_client *c)
{
    pthread_mutex_lock(&c->mu);
    for (;;) {
        cloop *mine = NULL;
        bool others = false;
        for (cloop *lx = c->lxs; lx != NULL; lx = lx->next) {
            if (micro_loop_is_current(lx->loop)) {
                /* depth > 0 with no calls: a frame up this stack is
                 * cancelling it and frees it on return. */
                if (lx->calls != NULL || lx->depth == 0) {
                    mine = lx;
                    break;
                }
                continue;
            }
            others = true;
            if (!lx->cancel_posted) {
                lx->cancel_posted = true;
                /* Refused when the loop is closing: then its on_close
                 * hook cancels lx. */
                (void) micro__loop_post_task(lx->loop, &lx->cancel_task);
            }
        }
        if (mine != NULL) {
            pthread_mutex_unlock(&c->mu);
            lx_cancel(mine);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (!others) {
            break;
        }
        pthread_cond_wait(&c->cv, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
}

int
micro_client_call_async(micro_client *c, micro_loop *loop,
    const char *service, const char *endpoint, const void *body, size_t len,
    const micro_call_opts *opts, micro_call_cb cb, void *arg)
{
    if (c == NULL || loop == NULL || service == NULL || endpoint == NULL ||
        cb == NULL || (body == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    if (atomic_load(&c->closing)) {
        return MICRO_ECLOSED;
    }
    if (c->has_async && c->n_wrappers == 0) {
        return ac_launch(c, loop, service, endpoint, body, len, opts, false,
            cb, NULL, arg);
    }
    return pool_call_start(c, loop, service, endpoint, body, len, opts, cb,
        arg);
}

/* ------------------------------------------------------------------ */
/* Streams.                                                             */

static bool
has_streams(const micro_client *c)
{
    return c->ops->abi >= 2 && c->ops->stream != NULL &&
        c->ops->cancel != NULL && c->ops->default_loop != NULL;
}

int
micro_client_stream_async(micro_client *c, micro_loop *loop,
    const char *service, const char *endpoint, const micro_call_opts *opts,
    micro_stream_open_cb cb, void *arg)
{
    if (c == NULL || loop == NULL || service == NULL || endpoint == NULL ||
        cb == NULL) {
        return MICRO_EINVAL;
    }
    if (!has_streams(c)) {
        return MICRO_ENOTSUP;
    }
    if (atomic_load(&c->closing)) {
        return MICRO_ECLOSED;
    }
    return ac_launch(c, loop, service, endpoint, NULL, 0, opts, true, NULL,
        cb, arg);
}

typedef struct open_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
    micro_stream *s;
} open_wait;

static void
on_open_wait(void *arg, int rc, micro_stream *s)
{
    open_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->s = s;
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int
micro_client_stream(micro_client *c, const char *service,
    const char *endpoint, const micro_call_opts *opts, micro_stream **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (c == NULL || service == NULL || endpoint == NULL || out == NULL) {
        return MICRO_EINVAL;
    }
    if (!has_streams(c)) {
        return MICRO_ENOTSUP;
    }
    micro_loop *loop = c->ops->default_loop(c->st);
    if (loop == NULL || micro_loop_is_current(loop)) {
        return MICRO_EINVAL; /* it would wait for itself */
    }
    open_wait w;
    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    int rc = micro_client_stream_async(c, loop, service, endpoint, opts,
        on_open_wait, &w);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) {
            pthread_cond_wait(&w.cv, &w.mu);
        }
        pthread_mutex_unlock(&w.mu);
        rc = w.rc;
        *out = w.s;
    }
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}
