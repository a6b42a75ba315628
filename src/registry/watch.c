/*
 * Watchers and watch events for the registries that raise them
 * themselves (memory.c, mdns.c).
 *
 * Each dispatch snapshots the watcher list under the registry's mutex,
 * taking a reference on every watcher, and then calls them without the
 * lock, so a callback may call back into any registry. A watcher's busy
 * count says how many of its callbacks are running; unwatch marks it
 * removed (no callback of it starts after that) and, from outside any
 * watch callback, waits on idle until none is running, so that once it
 * returns the callback is done for good.
 *
 * From inside a watch callback (of any registry: a thread remembers how
 * deeply it is nested in dispatches) unwatch never waits. Waiting there
 * could wait for the very callback that is calling, one further out on
 * the same thread (a callback of registry A causes a dispatch of B, whose
 * callback unwatches A's watcher), or for a callback on another thread
 * that is itself waiting in an unwatch for ours. The unwatch then takes
 * effect as the running callbacks return: none starts any more, and the
 * reference each dispatch holds keeps the watcher alive until its own
 * callback is done.
 */
#include "core/internal.h"
#include "registry/registry_internal.h"

struct micro__watcher {
    uint64_t token;
    micro_registry_watch_fn fn;
    void *arg;
    unsigned refs;  /* the list holds one; each dispatch snapshot one */
    unsigned busy;  /* callbacks running right now */
    bool removed;   /* unwatched: never called again */
};

/* How many watch callbacks this thread is inside (nested dispatches). */
static _Thread_local unsigned tl_in_callback;

static void
watcher_unref(micro__watcher *w)
{
    if (--w->refs == 0) {
        micro__free(w);
    }
}

int
micro__watchers_init(
    micro__watchers *ws, pthread_mutex_t *mu, const char *comp)
{
    memset(ws, 0, sizeof(*ws));
    if (pthread_cond_init(&ws->idle, NULL) != 0) {
        return MICRO_ENOMEM;
    }
    ws->mu = mu;
    ws->comp = comp;
    ws->next_token = 1;
    return 0;
}

void
micro__watchers_fini(micro__watchers *ws)
{
    for (size_t i = 0; i < ws->n; i++) {
        watcher_unref(ws->w[i]);
    }
    micro__free(ws->w);
    ws->w = NULL;
    ws->n = 0;
    pthread_cond_destroy(&ws->idle);
}

int
micro__watchers_add(micro__watchers *ws, micro_registry_watch_fn fn,
    void *arg, uint64_t *token)
{
    micro__watcher *w = micro__calloc(1, sizeof(*w));
    if (w == NULL) {
        return MICRO_ENOMEM;
    }
    w->fn = fn;
    w->arg = arg;
    w->refs = 1;
    pthread_mutex_lock(ws->mu);
    micro__watcher **list =
        micro__realloc(ws->w, (ws->n + 1) * sizeof(*list));
    if (list == NULL) {
        pthread_mutex_unlock(ws->mu);
        micro__free(w);
        return MICRO_ENOMEM;
    }
    ws->w = list;
    w->token = ws->next_token++;
    ws->w[ws->n++] = w;
    *token = w->token;
    pthread_mutex_unlock(ws->mu);
    return 0;
}

void
micro__watchers_remove(micro__watchers *ws, uint64_t token)
{
    for (size_t i = 0; i < ws->n; i++) {
        micro__watcher *w = ws->w[i];
        if (w->token != token) {
            continue;
        }
        memmove(&ws->w[i], &ws->w[i + 1], (ws->n - i - 1) * sizeof(*ws->w));
        ws->n--;
        w->removed = true;
        while (w->busy > 0 && tl_in_callback == 0) {
            pthread_cond_wait(&ws->idle, ws->mu);
        }
        watcher_unref(w);
        break;
    }
}

size_t
micro__watchers_dispatch(micro__watchers *ws, micro__evlist *l)
{
    size_t dropped = 0;
    if (l->n == 0) {
        micro__evlist_clear(l);
        return 0;
    }
    pthread_mutex_lock(ws->mu);
    size_t nw = ws->n;
    micro__watcher **snap = NULL;
    if (nw > 0) {
        snap = micro__calloc(nw, sizeof(*snap));
        if (snap == NULL) {
            nw = 0;
            dropped = l->n;
        }
        for (size_t i = 0; i < nw; i++) {
            snap[i] = ws->w[i];
            snap[i]->refs++;
        }
    }
    pthread_mutex_unlock(ws->mu);

    for (size_t e = 0; e < l->n; e++) {
        for (size_t i = 0; i < nw; i++) {
            micro__watcher *w = snap[i];
            pthread_mutex_lock(ws->mu);
            bool live = !w->removed;
            if (live) {
                w->busy++;
            }
            pthread_mutex_unlock(ws->mu);
            if (!live) {
                continue;
            }
            tl_in_callback++;
            w->fn(w->arg, l->ev[e].action, &l->ev[e].svc);
            tl_in_callback--;
            pthread_mutex_lock(ws->mu);
            if (--w->busy == 0 && w->removed) {
                pthread_cond_broadcast(&ws->idle);
            }
            pthread_mutex_unlock(ws->mu);
        }
    }

    pthread_mutex_lock(ws->mu);
    for (size_t i = 0; i < nw; i++) {
        watcher_unref(snap[i]);
    }
    pthread_mutex_unlock(ws->mu);
    micro__free(snap);
    micro__evlist_clear(l);
    return dropped;
}

void
micro__watchers_deliver(micro__watchers *ws, micro__evlist *l)
{
    size_t dropped = micro__watchers_dispatch(ws, l);
    if (dropped > 0) {
        MICRO_LOGF(MICRO_LOG_WARN, ws->comp, "%zu watch events dropped: %s",
            dropped, micro_strerror(MICRO_ENOMEM));
    }
}

void
micro__evlist_push(micro__evlist *l, const char *comp,
    micro_registry_action action, const micro_registry_service *hdr,
    const micro_node *nodes, size_t n)
{
    if (l == NULL) {
        return;
    }
    micro__event *ev = micro__realloc(l->ev, (l->n + 1) * sizeof(*ev));
    if (ev == NULL) {
        goto oom;
    }
    l->ev = ev;
    micro__event *e = &ev[l->n];
    e->action = action;
    if (micro__registry_service_copy_header(&e->svc, hdr) < 0) {
        goto oom;
    }
    if (n > 0) {
        e->svc.nodes = micro__calloc(n, sizeof(micro_node));
        if (e->svc.nodes == NULL) {
            micro_registry_service_clear(&e->svc);
            goto oom;
        }
        for (size_t i = 0; i < n; i++) {
            if (micro_node_copy(&e->svc.nodes[i], &nodes[i]) < 0) {
                micro_registry_service_clear(&e->svc);
                goto oom;
            }
            e->svc.n_nodes++;
        }
    }
    l->n++;
    return;
oom:
    MICRO_LOGF(MICRO_LOG_WARN, comp, "watch event for %s dropped: %s",
        hdr->name, micro_strerror(MICRO_ENOMEM));
}

void
micro__evlist_clear(micro__evlist *l)
{
    for (size_t e = 0; e < l->n; e++) {
        micro_registry_service_clear(&l->ev[e].svc);
    }
    micro__free(l->ev);
    l->ev = NULL;
    l->n = 0;
}
