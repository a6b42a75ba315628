/*
 * The in-process registry, modelled on Go Micro's registry/memory: records
 * keyed by (service name, version), each holding the version's metadata,
 * endpoints and nodes. Every node carries its own expiry. Expired nodes are
 * purged lazily whenever the registry is touched, which also raises their
 * delete events, so no background thread is needed.
 *
 * Watch callbacks run on the thread that caused the change, never with
 * the mutex held: events are collected under the lock and dispatched after
 * it is released. Go sends "update" for every registration; we send
 * "create" for a node we had not seen and "update" for a re-registration,
 * which is what a cache needs to tell the two apart.
 */
#include "core/internal.h"
#include "registry/registry_internal.h"

#include <pthread.h>

#define COMP "registry.memory"

typedef struct mem_rec {
    micro_registry_service svc; /* nodes[i] expires at expires[i] (0: never) */
    int64_t *expires;
    size_t cap;
} mem_rec;

typedef struct watcher {
    uint64_t token;
    micro_registry_watch_fn fn;
    void *arg;
    unsigned refs;  /* the list holds one; each dispatch snapshot one */
    unsigned busy;  /* callbacks running right now */
    bool removed;   /* unwatched: never called again */
} watcher;

typedef struct mem_state {
    pthread_mutex_t mu;
    pthread_cond_t idle; /* a removed watcher's last callback returned */
    mem_rec **recs;
    size_t n_recs;
    watcher **watchers;
    size_t n_watchers;
    uint64_t next_token;
} mem_state;

typedef struct event {
    micro_registry_action action;
    micro_registry_service svc;
} event;

typedef struct evlist {
    event *ev;
    size_t n;
} evlist;

/* The registry whose watchers this thread is calling, so an unwatch from
 * inside a callback does not wait for itself. */
static _Thread_local mem_state *tl_dispatching;

static bool
str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Queue an event carrying svc's header and the n nodes at nodes. Events
 * are best effort: out of memory drops one and logs it. */
static void
ev_add(evlist *l, micro_registry_action action,
    const micro_registry_service *hdr, const micro_node *nodes, size_t n)
{
    event *ev = micro__realloc(l->ev, (l->n + 1) * sizeof(*ev));
    if (ev == NULL) {
        goto oom;
    }
    l->ev = ev;
    event *e = &ev[l->n];
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
    MICRO_LOGF(MICRO_LOG_WARN, COMP, "watch event for %s dropped: %s",
        hdr->name, micro_strerror(MICRO_ENOMEM));
}

static void
watcher_unref(watcher *w)
{
    if (--w->refs == 0) {
        micro__free(w);
    }
}

/* Call every watcher for every event; the mutex must not be held. */
static void
dispatch(mem_state *m, evlist *l)
{
    if (l->n == 0) {
        micro__free(l->ev);
        return;
    }
    pthread_mutex_lock(&m->mu);
    size_t nw = m->n_watchers;
    watcher **ws = NULL;
    if (nw > 0) {
        ws = micro__calloc(nw, sizeof(*ws));
        if (ws == NULL) {
            nw = 0;
            MICRO_LOGF(MICRO_LOG_WARN, COMP, "%zu watch events dropped: %s",
                l->n, micro_strerror(MICRO_ENOMEM));
        }
        for (size_t i = 0; i < nw; i++) {
            ws[i] = m->watchers[i];
            ws[i]->refs++;
        }
    }
    pthread_mutex_unlock(&m->mu);

    mem_state *prev = tl_dispatching;
    tl_dispatching = m;
    for (size_t e = 0; e < l->n; e++) {
        for (size_t i = 0; i < nw; i++) {
            watcher *w = ws[i];
            pthread_mutex_lock(&m->mu);
            bool live = !w->removed;
            if (live) {
                w->busy++;
            }
            pthread_mutex_unlock(&m->mu);
            if (!live) {
                continue;
            }
            w->fn(w->arg, l->ev[e].action, &l->ev[e].svc);
            pthread_mutex_lock(&m->mu);
            if (--w->busy == 0 && w->removed) {
                pthread_cond_broadcast(&m->idle);
            }
            pthread_mutex_unlock(&m->mu);
        }
    }
    tl_dispatching = prev;

    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < nw; i++) {
        watcher_unref(ws[i]);
    }
    pthread_mutex_unlock(&m->mu);
    micro__free(ws);
    for (size_t e = 0; e < l->n; e++) {
        micro_registry_service_clear(&l->ev[e].svc);
    }
    micro__free(l->ev);
    l->ev = NULL;
    l->n = 0;
}

static void
rec_free(mem_rec *r)
{
    micro_registry_service_clear(&r->svc);
    micro__free(r->expires);
    micro__free(r);
}

static void
rec_remove(mem_state *m, size_t i)
{
    rec_free(m->recs[i]);
    memmove(&m->recs[i], &m->recs[i + 1],
        (m->n_recs - i - 1) * sizeof(m->recs[0]));
    m->n_recs--;
}

static mem_rec *
rec_find(mem_state *m, const char *name, const char *version, size_t *idx)
{
    for (size_t i = 0; i < m->n_recs; i++) {
        mem_rec *r = m->recs[i];
        if (strcmp(r->svc.name, name) == 0 && str_eq(r->svc.version, version)) {
            if (idx != NULL) {
                *idx = i;
            }
            return r;
        }
    }
    return NULL;
}

/* Remove node j of r, without events. */
static void
rec_drop_node(mem_rec *r, size_t j)
{
    micro_node_clear(&r->svc.nodes[j]);
    size_t tail = r->svc.n_nodes - j - 1;
    memmove(&r->svc.nodes[j], &r->svc.nodes[j + 1], tail * sizeof(micro_node));
    memmove(&r->expires[j], &r->expires[j + 1], tail * sizeof(int64_t));
    r->svc.n_nodes--;
}

/* Drop expired nodes, and versions they leave empty; queue delete events.
 * Called with the mutex held. */
static void
purge(mem_state *m, int64_t now, evlist *l)
{
    for (size_t i = 0; i < m->n_recs;) {
        mem_rec *r = m->recs[i];
        bool dropped = false;
        for (size_t j = 0; j < r->svc.n_nodes;) {
            if (r->expires[j] != 0 && r->expires[j] <= now) {
                MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s:%s node %s expired",
                    r->svc.name, r->svc.version ? r->svc.version : "",
                    r->svc.nodes[j].id);
                ev_add(l, MICRO_REGISTRY_DELETE, &r->svc, &r->svc.nodes[j], 1);
                rec_drop_node(r, j);
                dropped = true;
            } else {
                j++;
            }
        }
        if (dropped && r->svc.n_nodes == 0) {
            rec_remove(m, i);
        } else {
            i++;
        }
    }
}

static int
mem_init(void *st, const micro_options *opts)
{
    (void) opts;
    mem_state *m = st;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        return MICRO_ENOMEM;
    }
    if (pthread_cond_init(&m->idle, NULL) != 0) {
        pthread_mutex_destroy(&m->mu);
        return MICRO_ENOMEM;
    }
    m->next_token = 1;
    return 0;
}

static void
mem_fini(void *st)
{
    mem_state *m = st;
    for (size_t i = 0; i < m->n_recs; i++) {
        rec_free(m->recs[i]);
    }
    micro__free(m->recs);
    for (size_t i = 0; i < m->n_watchers; i++) {
        watcher_unref(m->watchers[i]);
    }
    micro__free(m->watchers);
    pthread_cond_destroy(&m->idle);
    pthread_mutex_destroy(&m->mu);
}

/* Make room for extra more nodes in r. */
static int
rec_reserve(mem_rec *r, size_t extra)
{
    size_t need = r->svc.n_nodes + extra;
    if (need <= r->cap) {
        return 0;
    }
    size_t cap = r->cap ? r->cap * 2 : 4;
    while (cap < need) {
        cap *= 2;
    }
    micro_node *nodes = micro__realloc(r->svc.nodes, cap * sizeof(*nodes));
    if (nodes == NULL) {
        return MICRO_ENOMEM;
    }
    r->svc.nodes = nodes;
    int64_t *exp = micro__realloc(r->expires, cap * sizeof(*exp));
    if (exp == NULL) {
        return MICRO_ENOMEM;
    }
    r->expires = exp;
    r->cap = cap;
    return 0;
}

static int
mem_register(void *st, const micro_registry_service *svc, int64_t ttl_ms)
{
    mem_state *m = st;
    /* Copy everything before taking the lock, so that out-of-memory
     * cannot leave a registration half applied. */
    micro_registry_service in;
    int rc = micro_registry_service_copy(&in, svc);
    if (rc < 0) {
        return rc;
    }
    mem_rec *fresh = micro__calloc(1, sizeof(*fresh));
    micro_registry_service hdr;
    rc = fresh != NULL ? micro__registry_service_copy_header(&hdr, svc)
                       : MICRO_ENOMEM;
    if (rc < 0) {
        micro__free(fresh);
        micro_registry_service_clear(&in);
        return rc;
    }

    evlist ev = { 0 };
    pthread_mutex_lock(&m->mu);
    int64_t now = micro__now_ms();
    purge(m, now, &ev);
    bool created = false;
    mem_rec *r = rec_find(m, in.name, in.version, NULL);
    if (r == NULL) {
        mem_rec **recs =
            micro__realloc(m->recs, (m->n_recs + 1) * sizeof(*recs));
        if (recs == NULL) {
            rc = MICRO_ENOMEM;
            goto out;
        }
        m->recs = recs;
        r = fresh;
        fresh = NULL;
        r->svc = hdr;
        memset(&hdr, 0, sizeof(hdr));
        m->recs[m->n_recs++] = r;
        created = true;
    }
    rc = rec_reserve(r, in.n_nodes);
    if (rc < 0) {
        if (created && r->svc.n_nodes == 0) {
            rec_remove(m, m->n_recs - 1);
        }
        goto out;
    }
    if (!created) {
        /* The latest registration's metadata and endpoints win. */
        micro_registry_service old = r->svc;
        r->svc = hdr;
        r->svc.nodes = old.nodes;
        r->svc.n_nodes = old.n_nodes;
        old.nodes = NULL;
        old.n_nodes = 0;
        micro_registry_service_clear(&old);
        memset(&hdr, 0, sizeof(hdr));
    }
    int64_t expires = ttl_ms > 0 ? now + ttl_ms : 0;
    size_t n_new = 0;
    for (size_t i = 0; i < in.n_nodes; i++) {
        micro_node *n = &in.nodes[i];
        size_t j = 0;
        while (j < r->svc.n_nodes && strcmp(r->svc.nodes[j].id, n->id) != 0) {
            j++;
        }
        bool is_new = j == r->svc.n_nodes;
        if (is_new) {
            r->svc.n_nodes++;
            n_new++;
        } else {
            micro_node_clear(&r->svc.nodes[j]);
        }
        r->svc.nodes[j] = *n;
        memset(n, 0, sizeof(*n));
        r->expires[j] = expires;
        ev_add(&ev, is_new ? MICRO_REGISTRY_CREATE : MICRO_REGISTRY_UPDATE,
            &r->svc, &r->svc.nodes[j], 1);
    }
    if (created && in.n_nodes == 0) {
        ev_add(&ev, MICRO_REGISTRY_CREATE, &r->svc, NULL, 0);
    }
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s:%s registered (%zu new nodes)",
        r->svc.name, r->svc.version ? r->svc.version : "", n_new);
out:
    pthread_mutex_unlock(&m->mu);
    micro__free(fresh);
    micro_registry_service_clear(&hdr);
    micro_registry_service_clear(&in);
    dispatch(m, &ev);
    return rc;
}

static int
mem_deregister(void *st, const micro_registry_service *svc)
{
    mem_state *m = st;
    evlist ev = { 0 };
    pthread_mutex_lock(&m->mu);
    purge(m, micro__now_ms(), &ev);
    size_t idx = 0;
    mem_rec *r = rec_find(m, svc->name, svc->version, &idx);
    if (r != NULL) {
        for (size_t i = 0; i < svc->n_nodes; i++) {
            for (size_t j = 0; j < r->svc.n_nodes; j++) {
                if (strcmp(r->svc.nodes[j].id, svc->nodes[i].id) == 0) {
                    ev_add(&ev, MICRO_REGISTRY_DELETE, &r->svc,
                        &r->svc.nodes[j], 1);
                    rec_drop_node(r, j);
                    break;
                }
            }
        }
        /* As in Go, a version with no node left is gone. */
        if (r->svc.n_nodes == 0) {
            if (svc->n_nodes == 0) {
                ev_add(&ev, MICRO_REGISTRY_DELETE, &r->svc, NULL, 0);
            }
            rec_remove(m, idx);
        }
    }
    pthread_mutex_unlock(&m->mu);
    dispatch(m, &ev);
    return 0;
}

static int
mem_get_service(
    void *st, const char *name, micro_registry_service **out, size_t *n)
{
    mem_state *m = st;
    evlist ev = { 0 };
    int rc = 0;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&m->mu);
    purge(m, micro__now_ms(), &ev);
    size_t count = 0;
    for (size_t i = 0; i < m->n_recs; i++) {
        count += strcmp(m->recs[i]->svc.name, name) == 0;
    }
    if (count == 0) {
        rc = MICRO_ENOSERVICE;
        goto out;
    }
    micro_registry_service *res = micro__calloc(count, sizeof(*res));
    if (res == NULL) {
        rc = MICRO_ENOMEM;
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < m->n_recs && rc == 0; i++) {
        if (strcmp(m->recs[i]->svc.name, name) == 0) {
            rc = micro_registry_service_copy(&res[k], &m->recs[i]->svc);
            if (rc == 0) {
                k++;
            }
        }
    }
    if (rc < 0) {
        micro_registry_services_free(res, k);
        goto out;
    }
    *out = res;
    *n = k;
out:
    pthread_mutex_unlock(&m->mu);
    dispatch(m, &ev);
    return rc;
}

static int
mem_list_services(void *st, micro_registry_service **out, size_t *n)
{
    mem_state *m = st;
    evlist ev = { 0 };
    int rc = 0;
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&m->mu);
    purge(m, micro__now_ms(), &ev);
    micro_registry_service *res = NULL;
    size_t k = 0;
    if (m->n_recs > 0) {
        res = micro__calloc(m->n_recs, sizeof(*res));
        if (res == NULL) {
            rc = MICRO_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < m->n_recs; i++) {
        const micro_registry_service *s = &m->recs[i]->svc;
        bool seen = false;
        for (size_t j = 0; j < k && !seen; j++) {
            seen = strcmp(res[j].name, s->name) == 0;
        }
        if (seen) {
            continue;
        }
        res[k].name = micro__strdup(s->name);
        res[k].version = micro__strdup(s->version ? s->version : "");
        k++;
        if (res[k - 1].name == NULL || res[k - 1].version == NULL) {
            micro_registry_services_free(res, k);
            res = NULL;
            k = 0;
            rc = MICRO_ENOMEM;
            goto out;
        }
    }
    *out = res;
    *n = k;
out:
    pthread_mutex_unlock(&m->mu);
    dispatch(m, &ev);
    return rc;
}

static int
mem_watch(void *st, micro_registry_watch_fn fn, void *arg, uint64_t *token)
{
    mem_state *m = st;
    watcher *w = micro__calloc(1, sizeof(*w));
    if (w == NULL) {
        return MICRO_ENOMEM;
    }
    w->fn = fn;
    w->arg = arg;
    w->refs = 1;
    pthread_mutex_lock(&m->mu);
    watcher **ws =
        micro__realloc(m->watchers, (m->n_watchers + 1) * sizeof(*ws));
    if (ws == NULL) {
        pthread_mutex_unlock(&m->mu);
        micro__free(w);
        return MICRO_ENOMEM;
    }
    m->watchers = ws;
    w->token = m->next_token++;
    m->watchers[m->n_watchers++] = w;
    *token = w->token;
    pthread_mutex_unlock(&m->mu);
    return 0;
}

/* After this returns the callback is not running and will not run again,
 * unless unwatch was called from inside one of this registry's callbacks
 * (then only the waiting is skipped). */
static void
mem_unwatch(void *st, uint64_t token)
{
    mem_state *m = st;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_watchers; i++) {
        watcher *w = m->watchers[i];
        if (w->token != token) {
            continue;
        }
        memmove(&m->watchers[i], &m->watchers[i + 1],
            (m->n_watchers - i - 1) * sizeof(*m->watchers));
        m->n_watchers--;
        w->removed = true;
        while (w->busy > 0 && tl_dispatching != m) {
            pthread_cond_wait(&m->idle, &m->mu);
        }
        watcher_unref(w);
        break;
    }
    pthread_mutex_unlock(&m->mu);
}

const micro_registry_ops micro_registry_memory_ops = {
    .abi = MICRO_REGISTRY_ABI,
    .name = "memory",
    .state_size = sizeof(mem_state),
    .init = mem_init,
    .register_service = mem_register,
    .deregister = mem_deregister,
    .get_service = mem_get_service,
    .list_services = mem_list_services,
    .watch = mem_watch,
    .unwatch = mem_unwatch,
    .fini = mem_fini,
};
