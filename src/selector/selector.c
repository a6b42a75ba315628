/*
 * The selector front end, and the machinery both strategies share: a cache
 * of registry results per service, filtering, and failed-node back-off.
 *
 * The cache follows Go Micro's registry cache: a lookup is kept for
 * selector_ttl; a failed refresh serves the stale entry (with one warning
 * per entry until a refresh succeeds); concurrent lookups of one service
 * are de-duplicated (the others serve the stale entry, or wait when there
 * is none). When the registry can watch, any change to a cached service
 * invalidates its entry. MICRO_ENOSERVICE from the registry is taken as an
 * authoritative answer and drops the entry, where Go would keep serving
 * the stale copy of a service that has gone.
 *
 * Unlike Go v4, where Mark is a no-op, a node marked failed is skipped for
 * selector_backoff unless every candidate is in back-off.
 *
 * The registry is never called with the mutex held.
 */
#include "core/internal.h"
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

struct micro__sel_entry {
    micro__sel_entry *next;
    char *name;
    micro_registry_service *svcs; /* the last good lookup; n > 0 if have */
    size_t n;
    bool have;
    int64_t fetched;     /* when svcs were looked up */
    bool invalid;        /* a watch event saw a change since */
    bool refreshing;     /* a thread is asking the registry */
    bool warned;         /* stale-serving warning logged */
    uint64_t gen;        /* bumped by watch events */
    atomic_uint_fast64_t counter;
    backoff *bo;
    size_t n_bo;
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
entry_free(micro__sel_entry *e)
{
    entry_drop_data(e);
    for (size_t i = 0; i < e->n_bo; i++) {
        micro__free(e->bo[i].id);
    }
    micro__free(e->bo);
    micro__free(e->name);
    micro__free(e);
}

static void
watch_cb(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) action;
    micro__selector_core *c = arg;
    if (svc == NULL || svc->name == NULL) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    micro__sel_entry *e = entry_find(c, svc->name);
    if (e != NULL) {
        e->invalid = true;
        e->gen++;
    }
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------------------ */
/* The shared core                                                      */

int
micro__selector_core_init(
    micro__selector_core *c, micro_registry *reg, const micro_options *opts)
{
    c->reg = reg;
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
    int rc = micro_registry_watch(reg, watch_cb, c, &c->watch_token);
    if (rc == 0) {
        c->watching = true;
    } else if (rc != MICRO_ENOTSUP) {
        MICRO_LOGF(MICRO_LOG_INFO, COMP,
            "registry %s: watch failed (%s); relying on the cache TTL",
            micro_registry_name(reg), micro_strerror(rc));
    }
    return 0;
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
pick_from(micro__sel_entry *e, const micro_select_filter *filter,
    micro__selector_pick_fn pick, micro_node *out)
{
    size_t total = 0;
    for (size_t i = 0; i < e->n; i++) {
        total += e->svcs[i].n_nodes;
    }
    if (total == 0) {
        return MICRO_ENONODE;
    }
    const micro_node **cands = micro__calloc(total, sizeof(*cands));
    if (cands == NULL) {
        return MICRO_ENOMEM;
    }
    int64_t now = micro__now_ms();
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
            if (!node_matches(nd, filter)) {
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
        size_t idx = pick(set, n, &e->counter);
        MICRO_ASSERT(idx < n);
        rc = micro_node_copy(out, set[idx]);
    }
    micro__free(cands);
    return rc;
}

int
micro__selector_core_select(micro__selector_core *c, const char *service,
    const micro_select_filter *filter, micro__selector_pick_fn pick,
    micro_node *out)
{
    pthread_mutex_lock(&c->mu);
    micro__sel_entry *e;
    for (;;) {
        e = entry_find(c, service);
        int64_t now = micro__now_ms();
        if (e != NULL && e->have && !e->invalid &&
            now - e->fetched < c->ttl_ms) {
            goto pick; /* fresh */
        }
        if (e == NULL || !e->refreshing) {
            break; /* this thread asks the registry */
        }
        if (e->have) {
            goto pick; /* another thread refreshes; serve what we have */
        }
        pthread_cond_wait(&c->done, &c->mu);
    }
    e = entry_get(c, service);
    if (e == NULL) {
        pthread_mutex_unlock(&c->mu);
        return MICRO_ENOMEM;
    }
    e->refreshing = true;
    uint64_t gen = e->gen;
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
    if (again != e) {
        gen = again != NULL ? again->gen : 0;
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
        entry_drop_data(e);
        e->svcs = svcs;
        e->n = n;
        e->have = true;
        e->warned = false;
        /* A change seen during the lookup may not be in this answer. */
        e->fetched = micro__now_ms();
        e->invalid = e->gen != gen;
        goto pick;
    }
    if (rc == MICRO_ENOSERVICE) {
        if (e != NULL) {
            entry_drop_data(e);
        }
        pthread_mutex_unlock(&c->mu);
        return rc;
    }
    if (e != NULL && e->have) {
        if (!e->warned) {
            e->warned = true;
            MICRO_LOGF(MICRO_LOG_WARN, COMP,
                "%s: registry lookup failed (%s); serving the cached nodes",
                service, micro_strerror(rc));
        }
        goto pick;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;

pick:
    rc = pick_from(e, filter, pick, out);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void
micro__selector_core_mark(micro__selector_core *c, const char *service,
    const char *node_id, int err)
{
    pthread_mutex_lock(&c->mu);
    micro__sel_entry *e =
        err < 0 ? entry_get(c, service) : entry_find(c, service);
    if (e == NULL) {
        pthread_mutex_unlock(&c->mu);
        return;
    }
    int64_t now = micro__now_ms();
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
    } else if (c->backoff_ms > 0) {
        if (i == e->n_bo) {
            char *id = micro__strdup(node_id);
            backoff *bo = id != NULL
                ? micro__realloc(e->bo, (e->n_bo + 1) * sizeof(*bo))
                : NULL;
            if (bo == NULL) {
                micro__free(id);
                pthread_mutex_unlock(&c->mu);
                return; /* back-off is advisory */
            }
            e->bo = bo;
            e->bo[e->n_bo++].id = id;
        }
        e->bo[i].until = now + c->backoff_ms;
        MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: node %s backs off for %lld ms",
            service, node_id, (long long) c->backoff_ms);
    }
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
    int rc = ops->init(s->st, reg, opts);
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
    const micro_selector_ops *ops;
    if (name == NULL || name[0] == '\0' || strcmp(name, "random") == 0) {
        ops = &micro_selector_random_ops;
    } else if (strcmp(name, "roundrobin") == 0) {
        ops = &micro_selector_roundrobin_ops;
    } else {
        MICRO_LOGF(MICRO_LOG_WARN, COMP, "unknown selector %s", name);
        return MICRO_ENOENT;
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
                         s->ops != &micro_selector_roundrobin_ops)) {
        return NULL;
    }
    /* Both strategies put the core first in their state. */
    return s->st;
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
micro__selector_set_backoff_ms(micro_selector *s, int64_t ms)
{
    micro__selector_core *c = core_of(s);
    if (c != NULL) {
        pthread_mutex_lock(&c->mu);
        c->backoff_ms = ms;
        pthread_mutex_unlock(&c->mu);
    }
}
