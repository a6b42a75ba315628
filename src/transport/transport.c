/* Transport front end: checks, then dispatch through the ops table. */
#include "core/internal.h"
#include "core/loop_internal.h"
#include "plugins.h"

#include <time.h>

struct micro_transport {
    const micro_transport_ops *ops;
    micro_loop *loop;
    void *st;
    bool listening;
    bool has_async; /* ABI >= 2 and both async slots set */
};

int
micro_transport_new(micro_transport **out, const micro_transport_ops *ops,
    micro_loop *loop, const micro_options *opts)
{
    *out = NULL;
    if (ops == NULL || loop == NULL || ops->abi < 1 ||
        ops->abi > MICRO_TRANSPORT_ABI || ops->init == NULL ||
        ops->listen == NULL || ops->reply == NULL || ops->roundtrip == NULL ||
        ops->fini == NULL) {
        return MICRO_EINVAL;
    }
    /* An ABI 1 table ends at fini: its async slots do not exist. */
    bool has_async = ops->abi >= 2 && ops->roundtrip_async != NULL;
    if (ops->abi >= 2 &&
        (ops->roundtrip_async == NULL) != (ops->cancel == NULL)) {
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
    t->has_async = has_async;
    int rc = ops->init(t->st, loop, opts);
    if (rc != 0) {
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

typedef struct listen_args {
    micro_transport *t;
    const char *addr;
    micro_transport_recv_fn fn;
    void *arg;
} listen_args;

static int
do_listen(void *arg)
{
    listen_args *a = arg;
    return a->t->ops->listen(a->t->st, a->addr, a->fn, a->arg);
}

int
micro_transport_listen(micro_transport *t, const char *addr,
    micro_transport_recv_fn fn, void *arg)
{
    if (t == NULL || addr == NULL || fn == NULL) {
        return MICRO_EINVAL;
    }
    if (t->listening) {
        return MICRO_EEXIST;
    }
    listen_args a = {t, addr, fn, arg};
    int rc = micro__loop_call(t->loop, do_listen, &a);
    if (rc == 0) {
        t->listening = true;
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

int
micro_transport_reply(micro_transport *t, micro_exchange *ex, micro_msg **rsp)
{
    if (t == NULL || ex == NULL || rsp == NULL || *rsp == NULL) {
        return MICRO_EINVAL;
    }
    return t->ops->reply(t->st, ex, rsp);
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
    return t->ops->roundtrip(t->st, addr, req, timeout_ms, rsp, sent);
}

int
micro_transport_has_async(const micro_transport *t)
{
    return t != NULL && t->has_async;
}

int
micro_transport_roundtrip_async(micro_transport *t, micro_loop *loop,
    const char *addr, const micro_msg *req, int64_t timeout_ms,
    micro_transport_done_fn cb, void *arg, micro_transport_call **call)
{
    if (call != NULL) {
        *call = NULL;
    }
    if (t == NULL || loop == NULL || addr == NULL || req == NULL ||
        cb == NULL || !micro_loop_is_current(loop)) {
        return MICRO_EINVAL;
    }
    if (!t->has_async) {
        return MICRO_ENOTSUP;
    }
    micro_transport_call *dummy = NULL;
    return t->ops->roundtrip_async(t->st, loop, addr, req, timeout_ms, cb,
        arg, call != NULL ? call : &dummy);
}

void
micro_transport_cancel(micro_transport *t, micro_transport_call *call)
{
    if (t != NULL && call != NULL && t->has_async) {
        t->ops->cancel(t->st, call);
    }
}

static int
do_stop(void *arg)
{
    micro_transport *t = arg;
    if (t->ops->stop_listen != NULL) {
        t->ops->stop_listen(t->st);
    }
    return 0;
}

void
micro_transport_stop_listen(micro_transport *t)
{
    if (t == NULL || !t->listening) {
        return;
    }
    t->listening = false;
    micro__loop_call(t->loop, do_stop, t);
}

size_t
micro_transport_inflight(micro_transport *t)
{
    if (t == NULL || t->ops->inflight == NULL) {
        return 0;
    }
    return t->ops->inflight(t->st);
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
    return t->ops->shutdown != NULL ? t->ops->shutdown(t->st) : 1;
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
    micro_transport_stop_listen(t);
    /* Close callbacks run on later loop turns: wait for them before the
     * state they point at goes away. */
    while (micro__loop_call(t->loop, do_shutdown, t) == 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    micro__loop_call(t->loop, do_fini, t);
    micro__free(t->st);
    micro__free(t);
}
