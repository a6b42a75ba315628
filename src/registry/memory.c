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

typedef struct mem_state {
    pthread_mutex_t mu;
    mem_rec **recs;
    size_t n_recs;
    micro__watchers watch; /* guarded by mu */
} mem_state;

static bool
str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Call every watcher for every event; the mutex must not be held. */
static void
dispatch(mem_state *m, micro__evlist *l)
{
    micro__watchers_deliver(&m->watch, l);
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
purge(mem_state *m, int64_t now, micro__evlist *l)
{
    for (size_t i = 0; i < m->n_recs;) {
        mem_rec *r = m->recs[i];
        bool dropped = false;
        for (size_t j = 0; j < r->svc.n_nodes;) {
            if (r->expires[j] != 0 && r->expires[j] <= now) {
                MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s:%s node %s expired",
                    r->svc.name, r->svc.version ? r->svc.version : "",
                    r->svc.nodes[j].id);
                micro__evlist_push(l, COMP, MICRO_REGISTRY_DELETE, &r->svc,
                    &r->svc.nodes[j], 1);
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
    if (micro__watchers_init(&m->watch, &m->mu, COMP) < 0) {
        pthread_mutex_destroy(&m->mu);
        return MICRO_ENOMEM;
    }
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
    micro__watchers_fini(&m->watch);
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

    micro__evlist ev = { 0 };
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
        micro__evlist_push(&ev, COMP,
            is_new ? MICRO_REGISTRY_CREATE : MICRO_REGISTRY_UPDATE, &r->svc,
            &r->svc.nodes[j], 1);
    }
    if (created && in.n_nodes == 0) {
        micro__evlist_push(
            &ev, COMP, MICRO_REGISTRY_CREATE, &r->svc, NULL, 0);
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
    micro__evlist ev = { 0 };
    pthread_mutex_lock(&m->mu);
    purge(m, micro__now_ms(), &ev);
    size_t idx = 0;
    mem_rec *r = rec_find(m, svc->name, svc->version, &idx);
    if (r != NULL) {
        for (size_t i = 0; i < svc->n_nodes; i++) {
            for (size_t j = 0; j < r->svc.n_nodes; j++) {
                if (strcmp(r->svc.nodes[j].id, svc->nodes[i].id) == 0) {
                    micro__evlist_push(&ev, COMP, MICRO_REGISTRY_DELETE,
                        &r->svc, &r->svc.nodes[j], 1);
                    rec_drop_node(r, j);
                    break;
                }
            }
        }
        /* As in Go, a version with no node left is gone. */
        if (r->svc.n_nodes == 0) {
            if (svc->n_nodes == 0) {
                micro__evlist_push(
                    &ev, COMP, MICRO_REGISTRY_DELETE, &r->svc, NULL, 0);
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
    micro__evlist ev = { 0 };
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
    micro__evlist ev = { 0 };
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
    return micro__watchers_add(&m->watch, fn, arg, token);
}

/* After this returns the callback will not start again; from outside
 * every watch callback it is not running either (watch.c has the rule). */
static void
mem_unwatch(void *st, uint64_t token)
{
    mem_state *m = st;
    pthread_mutex_lock(&m->mu);
    micro__watchers_remove(&m->watch, token);
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
