/*
 * The selector front end, and the machinery every built-in strategy
 * shares: a cache of registry results per service, filtering, failed-node
 * back-off and per-node call statistics.
 *
 * The cache follows Go Micro's registry cache (registry/cache): the first
 * select of a service asks the registry; the answer is kept for
 * selector_ttl; watch events are applied to it as they arrive (create and
 * update add or replace the event's nodes in their version, delete removes
 * them, and a version left without nodes goes), so a node that says
 * goodbye, or whose mDNS TTL runs out, leaves the cache at once without a
 * new lookup. Events that arrive while a lookup is in flight are replayed
 * over its answer. A refresh that fails serves the stale entry, logged
 * once per outage and again when the registry answers; concurrent lookups
 * of one service are de-duplicated (the others serve the stale entry, or
 * wait when there is none). MICRO_ENOSERVICE from the registry is an
 * authoritative answer and drops the entry, where Go would keep serving
 * the stale copy of a service that has gone.
 *
 * Unlike Go v4, where Mark is a no-op, a node marked failed is skipped for
 * selector_backoff unless every candidate is in back-off.
 *
 * The registry is never called with the mutex held.
 */
#include "core/internal.h"
#include "core/options_internal.h"
#include "plugins.h"
#include "selector/selector_internal.h"

#define COMP "selector"

struct micro_selector {
    const micro_selector_ops *ops;
    void *st;
};

typedef struct backoff {
    char *id;
    int64_t until;
} backoff;

/* A watch event waiting for the lookup in flight to finish. */
typedef struct pending_ev {
    micro_registry_action action;
    micro_registry_service svc;
} pending_ev;

#define MAX_PENDING 64

struct micro__sel_entry {
    micro__sel_entry *next;
    char *name;
    micro_registry_service *svcs; /* the cached services; n > 0 if have */
    size_t n;
    bool have;
    int64_t fetched;     /* when svcs were looked up */
    bool invalid;        /* look up again before serving (lost events) */
    bool refreshing;     /* a thread is asking the registry */
    bool stale;          /* the last refresh failed; stale data served */
    int64_t stale_since; /* when that started */
    atomic_uint_fast64_t counter;
    backoff *bo;
    size_t n_bo;
    micro__sel_stat **stats;
    size_t n_stats;
    pending_ev *pend;  /* events seen during the lookup in flight */
    size_t n_pend;
    bool pend_lost;    /* more than MAX_PENDING of them */
};

/* ------------------------------------------------------------------ */
/* Cache entries (mutex held)                                           */

static micro__sel_entry *
entry_find(micro__selector_core *c, const char *name)
{
    for (micro__sel_entry *e = c->entries; e != NULL; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            return e;
        }
    }
    return NULL;
}

static micro__sel_entry *
entry_get(micro__selector_core *c, const char *name)
{
    micro__sel_entry *e = entry_find(c, name);
    if (e != NULL) {
        return e;
    }
    e = micro__calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    e->name = micro__strdup(name);
    if (e->name == NULL) {
        micro__free(e);
        return NULL;
    }
    atomic_init(&e->counter, 0);
    e->next = c->entries;
    c->entries = e;
    return e;
}

static void
entry_drop_data(micro__sel_entry *e)
{
    micro_registry_services_free(e->svcs, e->n);
    e->svcs = NULL;
    e->n = 0;
    e->have = false;
    e->invalid = false;
}

static void
pending_clear(micro__sel_entry *e)
{
    for (size_t i = 0; i < e->n_pend; i++) {
        micro_registry_service_clear(&e->pend[i].svc);
    }
    micro__free(e->pend);
    e->pend = NULL;
    e->n_pend = 0;
    e->pend_lost = false;
}

static void
stat_free(micro__sel_stat *st)
{
    micro__free(st->id);
    micro__free(st);
}

static void
entry_free(micro__sel_entry *e)
{
    entry_drop_data(e);
    pending_clear(e);
    for (size_t i = 0; i < e->n_bo; i++) {
        micro__free(e->bo[i].id);
    }
    micro__free(e->bo);
    for (size_t i = 0; i < e->n_stats; i++) {
        stat_free(e->stats[i]);
    }
    micro__free(e->stats);
    micro__free(e->name);
    micro__free(e);
}

/* Drop the stats of nodes that left the entry and have nothing in
 * flight, so a service whose nodes churn does not grow without bound. */
static void
stats_prune(micro__sel_entry *e)
{
    size_t k = 0;
    for (size_t i = 0; i < e->n_stats; i++) {
        micro__sel_stat *st = e->stats[i];
        bool present = st->inflight > 0;
        for (size_t a = 0; a < e->n && !present; a++) {
            for (size_t b = 0; b < e->svcs[a].n_nodes && !present; b++) {
                const char *id = e->svcs[a].nodes[b].id;
                present = id != NULL && strcmp(id, st->id) == 0;
            }
        }
        if (present) {
            e->stats[k++] = st;
        } else {
            stat_free(st);
        }
    }
    e->n_stats = k;
}

static micro__sel_stat *
stat_get(micro__sel_entry *e, const char *id, bool create)
{
    for (size_t i = 0; i < e->n_stats; i++) {
        if (strcmp(e->stats[i]->id, id) == 0) {
            return e->stats[i];
        }
    }
    if (!create) {
        return NULL;
    }
    micro__sel_stat *st = micro__calloc(1, sizeof(*st));
    micro__sel_stat **arr = st != NULL
        ? micro__realloc(e->stats, (e->n_stats + 1) * sizeof(*arr))
        : NULL;
    if (arr != NULL) {
        e->stats = arr;
    }
    if (st == NULL || arr == NULL ||
        (st->id = micro__strdup(id)) == NULL) {
        micro__free(st);
        return NULL;
    }
    e->stats[e->n_stats++] = st;
    return st;
}

static micro_registry_service *
version_find(micro__sel_entry *e, const char *version)
{
    const char *v = version != NULL ? version : "";
    for (size_t i = 0; i < e->n; i++) {
        const char *w = e->svcs[i].version != NULL ? e->svcs[i].version : "";
        if (strcmp(v, w) == 0) {
            return &e->svcs[i];
        }
    }
    return NULL;
}

static void
version_remove(micro__sel_entry *e, micro_registry_service *s)
{
    size_t i = (size_t) (s - e->svcs);
    micro_registry_service_clear(s);
    memmove(&e->svcs[i], &e->svcs[i + 1], (e->n - i - 1) * sizeof(*s));
    e->n--;
    if (e->n == 0) {
        /* Nothing left: the next select asks the registry again. */
        entry_drop_data(e);
    }
}

/* Go's cache.update: apply one watch event to the entry's data (mutex
 * held, e->have). MICRO_ENOMEM leaves the data as it was. */
static int
entry_apply(micro__sel_entry *e, micro_registry_action action,
    const micro_registry_service *ev)
{
    micro_registry_service *s = version_find(e, ev->version);
    if (action == MICRO_REGISTRY_DELETE) {
        if (s == NULL) {
            return 0;
        }
        if (ev->n_nodes == 0) {
            version_remove(e, s); /* the whole version went */
            return 0;
        }
        size_t k = 0;
        for (size_t i = 0; i < s->n_nodes; i++) {
            bool gone = false;
            for (size_t j = 0; j < ev->n_nodes && !gone; j++) {
                gone = ev->nodes[j].id != NULL && s->nodes[i].id != NULL &&
                    strcmp(ev->nodes[j].id, s->nodes[i].id) == 0;
            }
            if (gone) {
                micro_node_clear(&s->nodes[i]);
            } else {
                s->nodes[k++] = s->nodes[i];
            }
        }
        s->n_nodes = k;
        if (k == 0) {
            version_remove(e, s);
        }
        return 0;
    }
    /* create or update */
    if (s == NULL) {
        if (ev->n_nodes == 0) {
            return 0;
        }
        micro_registry_service *arr =
            micro__realloc(e->svcs, (e->n + 1) * sizeof(*arr));
        if (arr == NULL) {
            return MICRO_ENOMEM;
        }
        e->svcs = arr;
        if (micro_registry_service_copy(&arr[e->n], ev) < 0) {
            return MICRO_ENOMEM;
        }
        e->n++;
        return 0;
    }
    for (size_t j = 0; j < ev->n_nodes; j++) {
        const micro_node *nd = &ev->nodes[j];
        if (nd->id == NULL) {
            continue;
        }
        micro_node copy;
        if (micro_node_copy(&copy, nd) < 0) {
            return MICRO_ENOMEM;
        }
        size_t i = 0;
        while (i < s->n_nodes &&
            (s->nodes[i].id == NULL || strcmp(s->nodes[i].id, nd->id) != 0)) {
            i++;
        }
        if (i < s->n_nodes) {
            micro_node_clear(&s->nodes[i]);
            s->nodes[i] = copy;
            continue;
        }
        micro_node *arr =
            micro__realloc(s->nodes, (s->n_nodes + 1) * sizeof(*arr));
        if (arr == NULL) {
            micro_node_clear(&copy);
            return MICRO_ENOMEM;
        }
        s->nodes = arr;
        s->nodes[s->n_nodes++] = copy;
    }
    return 0;
}

static void mark_locked(micro__selector_core *c, micro__sel_entry *e,
    const char *service, const char *node_id, int err);

static const char *
action_name(micro_registry_action a)
{
    return a == MICRO_REGISTRY_CREATE ? "create"
        : a == MICRO_REGISTRY_UPDATE  ? "update"
                                      : "delete";
}

static void
watch_cb(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    micro__selector_core *c = arg;
    if (svc == NULL || svc->name == NULL) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    micro__sel_entry *e = entry_find(c, svc->name);
    if (e == NULL) {
        pthread_mutex_unlock(&c->mu);
        return; /* not a service this selector has looked up */
    }
    if (e->refreshing) {
        /* The answer in flight may predate this event: replay it. */
        if (e->n_pend == MAX_PENDING) {
            e->pend_lost = true;
        } else {
            pending_ev *p =
                micro__realloc(e->pend, (e->n_pend + 1) * sizeof(*p));
            if (p == NULL) {
                e->pend_lost = true;
            } else {
                e->pend = p;
                if (micro_registry_service_copy(&p[e->n_pend].svc, svc) < 0) {
                    e->pend_lost = true;
                } else {
                    p[e->n_pend++].action = action;
                }
            }
        }
    }
    if (action == MICRO_REGISTRY_CREATE) {
        /* A node that (re)appears, e.g. announced again after its link
         * came back, gets another chance at once. */
        for (size_t j = 0; j < svc->n_nodes; j++) {
            if (svc->nodes[j].id != NULL) {
                mark_locked(c, e, svc->name, svc->nodes[j].id, 0);
            }
        }
    }
    if (e->have) {
        if (entry_apply(e, action, svc) < 0) {
            e->invalid = true; /* look it up again rather than guess */
        }
        c->cnt.events++;
        MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: watch %s of %zu node(s)%s%s",
            svc->name, action_name(action), svc->n_nodes,
            svc->n_nodes > 0 ? ", first " : "",
            svc->n_nodes > 0 && svc->nodes[0].id ? svc->nodes[0].id : "");
    }
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------ */
/* The shared core                                                      */

const micro_option_desc micro__selector_core_options[] = {
    {"selector_ttl", MICRO_OPT_MS, "1m", "TTL of the selector's cache"},
    {"selector_backoff", MICRO_OPT_MS, "5s",
        "how long a failing node is avoided"},
    MICRO_OPTION_END,
};

int
micro__selector_core_init(micro__selector_core *c, micro_registry *reg,
    const micro_options *opts, micro__selector_pick_fn pick)
{
    c->reg = reg;
    c->pick = pick;
    c->ttl_ms = opts != NULL ? micro_options_get_ms(opts, "selector_ttl")
                             : MICRO__SELECTOR_TTL_MS;
    c->backoff_ms = opts != NULL
        ? micro_options_get_ms(opts, "selector_backoff")
        : MICRO__SELECTOR_BACKOFF_MS;
    if (c->ttl_ms < 0) {
        c->ttl_ms = MICRO__SELECTOR_TTL_MS;
    }
    if (c->backoff_ms < 0) {
        c->backoff_ms = MICRO__SELECTOR_BACKOFF_MS;
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        return MICRO_ENOMEM;
    }
    if (pthread_cond_init(&c->done, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        return MICRO_ENOMEM;
    }
    if (pthread_mutex_init(&c->wmu, NULL) != 0) {
        pthread_cond_destroy(&c->done);
        pthread_mutex_destroy(&c->mu);
        return MICRO_ENOMEM;
    }
    atomic_init(&c->watch_tried, false);
    micro__rng_seed(&c->rng, 0);
    c->clock = NULL;
    return 0;
}

int64_t
micro__selector_now(micro__selector_core *c)
{
    return c->clock != NULL ? c->clock(c->clock_arg) : micro__now_ms();
}

uint32_t
micro__selector_rand(micro__selector_core *c, uint32_t n)
{
    return micro__rng_below(&c->rng, n);
}

/* Before the first lookup (so that no event of it is missed). */
static void
start_watch(micro__selector_core *c)
{
    pthread_mutex_lock(&c->wmu);
    if (!atomic_load(&c->watch_tried)) {
        int rc = micro_registry_watch(c->reg, watch_cb, c, &c->watch_token);
        if (rc == 0) {
            c->watching = true;
        } else if (rc != MICRO_ENOTSUP) {
            MICRO_LOGF(MICRO_LOG_INFO, COMP,
                "registry %s: watch failed (%s); relying on the cache TTL",
                micro_registry_name(c->reg), micro_strerror(rc));
        }
        atomic_store(&c->watch_tried, true);
    }
    pthread_mutex_unlock(&c->wmu);
}

void
micro__selector_core_fini(micro__selector_core *c)
{
    /* Unwatch first: it waits for a callback that is still running. */
    if (c->watching) {
        micro_registry_unwatch(c->reg, c->watch_token);
        c->watching = false;
    }
    while (c->entries != NULL) {
        micro__sel_entry *e = c->entries;
        c->entries = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&c->wmu);
    pthread_cond_destroy(&c->done);
    pthread_mutex_destroy(&c->mu);
}

static bool
service_matches(
    const micro_registry_service *s, const micro_select_filter *f)
{
    if (f == NULL) {
        return true;
    }
    if (f->version != NULL &&
        strcmp(s->version != NULL ? s->version : "", f->version) != 0) {
        return false;
    }
    if (f->endpoint != NULL) {
        for (size_t i = 0; i < s->n_endpoints; i++) {
            if (s->endpoints[i].name != NULL &&
                strcmp(s->endpoints[i].name, f->endpoint) == 0) {
                return true;
            }
        }
        return false;
    }
    return true;
}

/* A label filter with a NULL value keeps nodes that have the key at all. */
static bool
node_matches(const micro_node *n, const micro_select_filter *f)
{
    if (f == NULL || f->label_key == NULL) {
        return true;
    }
    const char *v = micro_metadata_get(&n->metadata, f->label_key);
    if (v == NULL) {
        return false;
    }
    return f->label_value == NULL || strcmp(v, f->label_value) == 0;
}

static bool
in_backoff(micro__sel_entry *e, const char *id, int64_t now)
{
    for (size_t i = 0; i < e->n_bo; i++) {
        if (e->bo[i].until > now && strcmp(e->bo[i].id, id) == 0) {
            return true;
        }
    }
    return false;
}

static void
backoff_prune(micro__sel_entry *e, int64_t now)
{
    size_t k = 0;
    for (size_t i = 0; i < e->n_bo; i++) {
        if (e->bo[i].until > now) {
            e->bo[k++] = e->bo[i];
        } else {
            micro__free(e->bo[i].id);
        }
    }
    e->n_bo = k;
}

/* Choose from the entry's data. Mutex held. */
static int
pick_from(micro__selector_core *c, micro__sel_entry *e,
    const micro_select_filter *filter, micro__selector_pick_fn pick,
    micro_node *out)
{
    size_t total = 0;
    for (size_t i = 0; i < e->n; i++) {
        total += e->svcs[i].n_nodes;
    }
    if (total == 0) {
        return MICRO_ENONODE;
    }
    const micro_node *small[16];
    const micro_node **cands = total <= 16 ? small
                                           : micro__calloc(total, sizeof(*cands));
    if (cands == NULL) {
        return MICRO_ENOMEM;
    }
    int64_t now = micro__selector_now(c);
    backoff_prune(e, now);
    /* Healthy nodes fill the front; nodes in back-off the back. */
    size_t n_ok = 0;
    size_t n_bad = 0;
    for (size_t i = 0; i < e->n; i++) {
        const micro_registry_service *s = &e->svcs[i];
        if (!service_matches(s, filter)) {
            continue;
        }
        for (size_t j = 0; j < s->n_nodes; j++) {
            const micro_node *nd = &s->nodes[j];
            if (nd->id == NULL || !node_matches(nd, filter)) {
                continue;
            }
            if (e->n_bo > 0 && in_backoff(e, nd->id, now)) {
                cands[total - 1 - n_bad++] = nd;
            } else {
                cands[n_ok++] = nd;
            }
        }
    }
    int rc = 0;
    if (n_ok + n_bad == 0) {
        rc = MICRO_ENONODE;
    } else {
        const micro_node **set = cands;
        size_t n = n_ok;
        if (n_ok == 0) {
            /* Every candidate has failed recently: try one anyway. */
            set = cands + total - n_bad;
            n = n_bad;
        }
        micro__sel_stat *ssmall[16];
        micro__sel_stat **stats = NULL;
        if (c->want_stats) {
            stats = n <= 16 ? ssmall : micro__calloc(n, sizeof(*stats));
            for (size_t i = 0; stats != NULL && i < n; i++) {
                stats[i] = stat_get(e, set[i]->id, true);
                if (stats[i] == NULL) {
                    if (stats != ssmall) {
                        micro__free(stats);
                    }
                    stats = NULL;
                }
            }
            if (stats == NULL) {
                rc = MICRO_ENOMEM;
            }
        }
        if (rc == 0) {
            size_t idx = pick(c, set, stats, n, &e->counter, now);
            MICRO_ASSERT(idx < n);
            rc = micro_node_copy(out, set[idx]);
        }
        if (stats != NULL && stats != ssmall) {
            micro__free(stats);
        }
    }
    if (cands != small) {
        micro__free(cands);
    }
    return rc;
}

/* Install a successful lookup (mutex held), replaying the events that
 * arrived while it was in flight. */
static void
entry_install(micro__selector_core *c, micro__sel_entry *e,
    micro_registry_service *svcs, size_t n)
{
    entry_drop_data(e);
    e->svcs = svcs;
    e->n = n;
    e->have = n > 0;
    e->fetched = micro__selector_now(c);
    for (size_t i = 0; i < e->n_pend && e->have; i++) {
        if (entry_apply(e, e->pend[i].action, &e->pend[i].svc) < 0) {
            e->pend_lost = true;
        }
    }
    /* Events were lost: serve this answer, but ask again next time. */
    e->invalid = e->have && e->pend_lost;
    pending_clear(e);
    if (e->have) {
        stats_prune(e);
    }
    if (e->stale) {
        MICRO_LOGF(MICRO_LOG_NOTICE, COMP,
            "%s: registry %s answers again after %lld ms; cache refreshed",
            e->name, micro_registry_name(c->reg),
            (long long) (e->fetched - e->stale_since));
        e->stale = false;
    }
}

static size_t
entry_nodes(const micro__sel_entry *e)
{
    size_t total = 0;
    for (size_t i = 0; i < e->n; i++) {
        total += e->svcs[i].n_nodes;
    }
    return total;
}

/* nowait: answer only from the cache, MICRO_EAGAIN when that would take
 * a registry call or a wait for another thread's. */
static int
core_select(micro__selector_core *c, const char *service,
    const micro_select_filter *filter, micro__selector_pick_fn pick,
    micro_node *out, bool nowait)
{
    if (!atomic_load(&c->watch_tried)) {
        if (nowait) {
            return MICRO_EAGAIN;
        }
        start_watch(c);
    }
    pthread_mutex_lock(&c->mu);
    micro__sel_entry *e;
    for (;;) {
        e = entry_find(c, service);
        int64_t now = micro__selector_now(c);
        if (e != NULL && e->have && !e->invalid &&
            now - e->fetched < c->ttl_ms) {
            goto pick; /* fresh */
        }
        if (e != NULL && e->refreshing && e->have) {
            goto pick; /* another thread refreshes; serve what we have */
        }
        if (nowait) {
            pthread_mutex_unlock(&c->mu);
            return MICRO_EAGAIN;
        }
        if (e == NULL || !e->refreshing) {
            break; /* this thread asks the registry */
        }
        pthread_cond_wait(&c->done, &c->mu);
    }
    e = entry_get(c, service);
    if (e == NULL) {
        pthread_mutex_unlock(&c->mu);
        return MICRO_ENOMEM;
    }
    e->refreshing = true;
    pending_clear(e);
    c->cnt.lookups++;
    pthread_mutex_unlock(&c->mu);

    micro_registry_service *svcs = NULL;
    size_t n = 0;
    int rc = micro_registry_get_service(c->reg, service, &svcs, &n);

    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->done);
    /* A reset may have dropped the entry meanwhile: look it up again. */
    micro__sel_entry *again = entry_find(c, service);
    if (again != NULL) {
        again->refreshing = false;
    }
    e = again;
    if (rc == 0) {
        if (e == NULL) {
            e = entry_get(c, service);
        }
        if (e == NULL) {
            pthread_mutex_unlock(&c->mu);
            micro_registry_services_free(svcs, n);
            return MICRO_ENOMEM;
        }
        entry_install(c, e, svcs, n);
        if (!e->have) {
            pthread_mutex_unlock(&c->mu);
            return MICRO_ENOSERVICE; /* events removed every node */
        }
        goto pick;
    }
    if (e != NULL) {
        pending_clear(e);
    }
    if (rc == MICRO_ENOSERVICE) {
        if (e != NULL) {
            entry_drop_data(e);
            e->stale = false;
        }
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    if (e != NULL && e->have) {
        /* Serve the last known nodes rather than fail every call, and
         * retry the registry on the next select after a short pause. */
        int64_t now = micro__selector_now(c);
        if (!e->stale) {
            e->stale = true;
            e->stale_since = now;
            c->cnt.stale_logged++;
            MICRO_LOGF(MICRO_LOG_WARN, COMP,
                "%s: registry %s lookup failed (%s); serving the %zu node(s) "
                "cached %lld ms ago until it answers",
                service, micro_registry_name(c->reg), micro_strerror(rc),
                entry_nodes(e), (long long) (now - e->fetched));
        }
        /* Hold the stale data for a second before asking again, so a
         * dead registry costs one lookup per second, not one per call. */
        int64_t hold = c->ttl_ms < 1000 ? c->ttl_ms : 1000;
        e->fetched = now - c->ttl_ms + hold;
        e->invalid = false;
        goto pick;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;

pick:
    if (e->stale) {
        c->cnt.stale_served++;
    }
    rc = pick_from(c, e, filter, pick, out);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int
micro__selector_core_select(micro__selector_core *c, const char *service,
    const micro_select_filter *filter, micro__selector_pick_fn pick,
    micro_node *out)
{
    return core_select(c, service, filter, pick, out, false);
}

/* Back-off bookkeeping of mark and end (mutex held). */
static void
mark_locked(micro__selector_core *c, micro__sel_entry *e, const char *service,
    const char *node_id, int err)
{
    int64_t now = micro__selector_now(c);
    backoff_prune(e, now);
    size_t i = 0;
    while (i < e->n_bo && strcmp(e->bo[i].id, node_id) != 0) {
        i++;
    }
    if (err == 0) {
        if (i < e->n_bo) {
            micro__free(e->bo[i].id);
            e->bo[i] = e->bo[--e->n_bo];
        }
        return;
    }
    if (c->backoff_ms <= 0) {
        return;
    }
    if (i == e->n_bo) {
        char *id = micro__strdup(node_id);
        backoff *bo = id != NULL
            ? micro__realloc(e->bo, (e->n_bo + 1) * sizeof(*bo))
            : NULL;
        if (bo == NULL) {
            micro__free(id);
            return; /* back-off is advisory */
        }
        e->bo = bo;
        e->bo[e->n_bo++].id = id;
    }
    e->bo[i].until = now + c->backoff_ms;
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: node %s backs off for %lld ms (%s)",
        service, node_id, (long long) c->backoff_ms, micro_strerror(err));
}

void
micro__selector_core_mark(micro__selector_core *c, const char *service,
    const char *node_id, int err)
{
    pthread_mutex_lock(&c->mu);
    micro__sel_entry *e =
        err < 0 ? entry_get(c, service) : entry_find(c, service);
    if (e != NULL) {
        mark_locked(c, e, service, node_id, err);
    }
    pthread_mutex_unlock(&c->mu);
}

void
micro__selector_core_begin(
    micro__selector_core *c, const char *service, const char *node_id)
{
    pthread_mutex_lock(&c->mu);
    micro__sel_entry *e = entry_find(c, service);
    micro__sel_stat *st = e != NULL ? stat_get(e, node_id, true) : NULL;
    if (st != NULL) {
        st->inflight++;
    }
    pthread_mutex_unlock(&c->mu);
}

/* The weight of a new latency sample in the moving average. */
#define EWMA_ALPHA 0.3

void
micro__selector_core_end(micro__selector_core *c, const char *service,
    const char *node_id, int err, int64_t latency_us)
{
    pthread_mutex_lock(&c->mu);
    micro__sel_entry *e =
        err < 0 ? entry_get(c, service) : entry_find(c, service);
    if (e == NULL) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    micro__sel_stat *st = stat_get(e, node_id, false);
    if (st != NULL && st->inflight > 0) {
        st->inflight--;
    }
    /* A refused connection is fast and says nothing about the node's
     * speed (back-off deals with it); a timeout says it is slow. */
    if (latency_us >= 0 && (err == 0 || err == MICRO_ETIMEDOUT)) {
        if (st == NULL) {
            st = stat_get(e, node_id, true);
        }
        if (st != NULL) {
            double l = (double) latency_us;
            int64_t now = micro__selector_now(c);
            double age = (double) (now - st->sampled_ms);
            if (st->ewma_us > 0.0 && age > 0.0) {
                /* The decay p2c's cost applies, made permanent. */
                st->ewma_us *= MICRO__SELECTOR_DECAY_MS /
                    (MICRO__SELECTOR_DECAY_MS + age);
            }
            st->ewma_us = st->ewma_us <= 0.0
                ? l
                : st->ewma_us + EWMA_ALPHA * (l - st->ewma_us);
            if (st->ewma_us <= 0.0) {
                st->ewma_us = 1.0; /* sampled, even if under 1 us */
            }
            st->sampled_ms = now;
        }
    }
    mark_locked(c, e, service, node_id, err);
    pthread_mutex_unlock(&c->mu);
}

void
micro__selector_core_reset(micro__selector_core *c, const char *service)
{
    pthread_mutex_lock(&c->mu);
    micro__sel_entry **pp = &c->entries;
    while (*pp != NULL) {
        micro__sel_entry *e = *pp;
        if (service == NULL || strcmp(e->name, service) == 0) {
            *pp = e->next;
            entry_free(e);
        } else {
            pp = &e->next;
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------ */
/* Front end                                                            */

int
micro_selector_new(micro_selector **out, const micro_selector_ops *ops,
    micro_registry *reg, const micro_options *opts)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || ops == NULL || reg == NULL) {
        return MICRO_EINVAL;
    }
    if (ops->abi != MICRO_SELECTOR_ABI || ops->name == NULL ||
        ops->init == NULL || ops->select == NULL || ops->mark == NULL ||
        ops->reset == NULL || ops->fini == NULL) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP,
            "rejecting ops table %s: bad abi %u or missing slot",
            ops->name ? ops->name : "(null)", (unsigned) ops->abi);
        return MICRO_EINVAL;
    }
    micro_selector *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    s->ops = ops;
    s->st = micro__calloc(1, ops->state_size ? ops->state_size : 1);
    if (s->st == NULL) {
        micro__free(s);
        return MICRO_ENOMEM;
    }
    micro_options *own = NULL; /* reads the options it declares */
    int rc = micro__options_scoped(opts, "selector", ops->name,
        micro__selector_ops_options(ops), &own);
    if (rc == 0) {
        rc = ops->init(s->st, reg, own);
    }
    micro_options_free(own);
    if (rc < 0) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP, "%s: init failed: %s", ops->name,
            micro_strerror(rc));
        micro__free(s->st);
        micro__free(s);
        return rc;
    }
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: created over registry %s",
        ops->name, micro_registry_name(reg));
    *out = s;
    return 0;
}

int
micro_selector_new_by_name(micro_selector **out, const char *name,
    micro_registry *reg, const micro_options *opts)
{
    if (out != NULL) {
        *out = NULL;
    }
    const micro_selector_ops *ops = NULL;
    int rc = micro__selector_ops_by_name(
        name == NULL || name[0] == '\0' ? "random" : name, &ops);
    if (rc < 0) {
        return rc;
    }
    return micro_selector_new(out, ops, reg, opts);
}

void
micro_selector_free(micro_selector *s)
{
    if (s == NULL) {
        return;
    }
    s->ops->fini(s->st);
    micro__free(s->st);
    micro__free(s);
}

int
micro_selector_select(micro_selector *s, const char *service,
    const micro_select_filter *filter, micro_node *out)
{
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if (s == NULL || service == NULL || service[0] == '\0' || out == NULL) {
        return MICRO_EINVAL;
    }
    int rc = s->ops->select(s->st, service, filter, out);
    if (rc < 0) {
        micro_node_clear(out);
        MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: select %s: %s", s->ops->name,
            service, micro_strerror(rc));
    }
    return rc;
}

void
micro_selector_mark(
    micro_selector *s, const char *service, const char *node_id, int err)
{
    if (s == NULL || service == NULL || node_id == NULL) {
        return;
    }
    s->ops->mark(s->st, service, node_id, err);
}

void
micro_selector_begin(
    micro_selector *s, const char *service, const char *node_id)
{
    if (s == NULL || service == NULL || node_id == NULL ||
        s->ops->begin == NULL) {
        return;
    }
    s->ops->begin(s->st, service, node_id);
}

void
micro_selector_end(micro_selector *s, const char *service,
    const char *node_id, int err, int64_t latency_us)
{
    if (s == NULL || service == NULL || node_id == NULL) {
        return;
    }
    if (s->ops->end != NULL) {
        s->ops->end(s->st, service, node_id, err, latency_us);
    } else {
        s->ops->mark(s->st, service, node_id, err);
    }
}

void
micro_selector_reset(micro_selector *s, const char *service)
{
    if (s == NULL) {
        return;
    }
    s->ops->reset(s->st, service);
}

static micro__selector_core *
core_of(micro_selector *s)
{
    if (s == NULL || (s->ops != &micro_selector_random_ops &&
                         s->ops != &micro_selector_roundrobin_ops &&
                         s->ops != &micro_selector_leastconn_ops &&
                         s->ops != &micro_selector_p2c_ops)) {
        return NULL;
    }
    /* Every built-in strategy puts the core first in its state. */
    return s->st;
}

int
micro__selector_select_cached(micro_selector *s, const char *service,
    const micro_select_filter *filter, micro_node *out)
{
    memset(out, 0, sizeof(*out));
    micro__selector_core *c = core_of(s);
    if (c == NULL || service == NULL || service[0] == '\0') {
        return MICRO_EAGAIN;
    }
    int rc = core_select(c, service, filter, c->pick, out, true);
    if (rc < 0) {
        micro_node_clear(out);
    }
    return rc;
}

void
micro__selector_set_ttl_ms(micro_selector *s, int64_t ms)
{
    micro__selector_core *c = core_of(s);
    if (c != NULL) {
        pthread_mutex_lock(&c->mu);
        c->ttl_ms = ms;
        pthread_mutex_unlock(&c->mu);
    }
}

void
micro__selector_set_rand(micro_selector *s, uint64_t seed)
{
    micro__selector_core *c = core_of(s);
    if (c != NULL) {
        pthread_mutex_lock(&c->mu);
        micro__rng_seed(&c->rng, seed);
        pthread_mutex_unlock(&c->mu);
    }
}

void
micro__selector_set_clock(
    micro_selector *s, micro__selector_clock_fn fn, void *arg)
{
    micro__selector_core *c = core_of(s);
    if (c != NULL) {
        pthread_mutex_lock(&c->mu);
        c->clock = fn;
        c->clock_arg = arg;
        pthread_mutex_unlock(&c->mu);
    }
}

void
micro__selector_set_backoff_ms(micro_selector *s, int64_t ms)
{
    micro__selector_core *c = core_of(s);
    if (c != NULL) {
        pthread_mutex_lock(&c->mu);
        c->backoff_ms = ms;
        pthread_mutex_unlock(&c->mu);
    }
}

micro__selector_counters
micro__selector_get_counters(micro_selector *s)
{
    micro__selector_counters k;
    memset(&k, 0, sizeof(k));
    micro__selector_core *c = core_of(s);
    if (c != NULL) {
        pthread_mutex_lock(&c->mu);
        k = c->cnt;
        pthread_mutex_unlock(&c->mu);
    }
    return k;
}

int
micro__selector_cached_ids(
    micro_selector *s, const char *service, char ***ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    micro__selector_core *c = core_of(s);
    if (c == NULL) {
        return MICRO_EINVAL;
    }
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    micro__sel_entry *e = entry_find(c, service);
    size_t total = e != NULL && e->have ? entry_nodes(e) : 0;
    if (total > 0) {
        *ids = micro__calloc(total, sizeof(char *));
        if (*ids == NULL) {
            rc = MICRO_ENOMEM;
        }
        for (size_t i = 0; rc == 0 && i < e->n; i++) {
            for (size_t j = 0; rc == 0 && j < e->svcs[i].n_nodes; j++) {
                const char *id = e->svcs[i].nodes[j].id;
                (*ids)[*n] = micro__strdup(id != NULL ? id : "");
                if ((*ids)[*n] == NULL) {
                    rc = MICRO_ENOMEM;
                } else {
                    (*n)++;
                }
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void
micro__selector_node_stat(micro_selector *s, const char *service,
    const char *node_id, uint32_t *inflight, double *ewma_us)
{
    *inflight = 0;
    *ewma_us = 0.0;
    micro__selector_core *c = core_of(s);
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    micro__sel_entry *e = entry_find(c, service);
    micro__sel_stat *st = e != NULL ? stat_get(e, node_id, false) : NULL;
    if (st != NULL) {
        *inflight = st->inflight;
        *ewma_us = st->ewma_us;
    }
    pthread_mutex_unlock(&c->mu);
}
