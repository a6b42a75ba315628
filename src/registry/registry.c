/*
 * The registry front end: argument checks and logging, then dispatch
 * through the ops table. Implementations synchronise themselves, so the
 * front end holds no lock of its own.
 */
#include "core/internal.h"
#include "core/options_internal.h"
#include "plugins.h"
#include "registry/registry_internal.h"

#define COMP "registry"

struct micro_registry {
    const micro_registry_ops *ops;
    void *st;
};

int
micro_registry_new(micro_registry **out, const micro_registry_ops *ops,
    const micro_options *opts)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || ops == NULL) {
        return MICRO_EINVAL;
    }
    if (ops->abi != MICRO_REGISTRY_ABI || ops->name == NULL ||
        ops->init == NULL || ops->register_service == NULL ||
        ops->deregister == NULL || ops->get_service == NULL ||
        ops->list_services == NULL || ops->fini == NULL ||
        (ops->watch == NULL) != (ops->unwatch == NULL)) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP,
            "rejecting ops table %s: bad abi %u or missing slot",
            ops->name ? ops->name : "(null)", (unsigned) ops->abi);
        return MICRO_EINVAL;
    }
    micro_registry *r = micro__calloc(1, sizeof(*r));
    if (r == NULL) {
        return MICRO_ENOMEM;
    }
    r->ops = ops;
    r->st = micro__calloc(1, ops->state_size ? ops->state_size : 1);
    if (r->st == NULL) {
        micro__free(r);
        return MICRO_ENOMEM;
    }
    /* init cleans up after itself when it fails; fini is only for a
     * registry that was fully built. It reads the options it declares. */
    micro_options *own = NULL;
    int rc = micro__options_scoped(opts, "registry", ops->name,
        micro__registry_ops_options(ops), &own);
    if (rc == 0) {
        rc = ops->init(r->st, own);
    }
    micro_options_free(own);
    if (rc < 0) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP, "%s: init failed: %s", ops->name,
            micro_strerror(rc));
        micro__free(r->st);
        micro__free(r);
        return rc;
    }
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: created", ops->name);
    *out = r;
    return 0;
}

int
micro_registry_new_by_name(
    micro_registry **out, const char *name, const micro_options *opts)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || name == NULL || name[0] == '\0') {
        return MICRO_EINVAL;
    }
    const micro_registry_ops *ops = NULL;
    int rc = micro__registry_ops_by_name(name, &ops);
    if (rc < 0) {
        MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "registry %s: %s", name,
            micro_strerror(rc));
        return rc;
    }
    return micro_registry_new(out, ops, opts);
}

void
micro_registry_free(micro_registry *r)
{
    if (r == NULL) {
        return;
    }
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: freed", r->ops->name);
    r->ops->fini(r->st);
    micro__free(r->st);
    micro__free(r);
}

const char *
micro_registry_name(const micro_registry *r)
{
    return r != NULL ? r->ops->name : "";
}

/* A record we may register or deregister: a name, and an id on each node. */
static int
check_service(const micro_registry_service *svc)
{
    if (svc == NULL || svc->name == NULL || svc->name[0] == '\0') {
        return MICRO_EINVAL;
    }
    if (svc->n_nodes > 0 && svc->nodes == NULL) {
        return MICRO_EINVAL;
    }
    for (size_t i = 0; i < svc->n_nodes; i++) {
        if (svc->nodes[i].id == NULL || svc->nodes[i].id[0] == '\0') {
            return MICRO_EINVAL;
        }
    }
    return 0;
}

int
micro_registry_register(
    micro_registry *r, const micro_registry_service *svc, int64_t ttl_ms)
{
    if (r == NULL || ttl_ms < 0) {
        return MICRO_EINVAL;
    }
    int rc = check_service(svc);
    if (rc < 0) {
        return rc;
    }
    rc = r->ops->register_service(r->st, svc, ttl_ms);
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP,
        "%s: register %s:%s (%zu nodes, ttl %lld ms): %s", r->ops->name,
        svc->name, svc->version ? svc->version : "", svc->n_nodes,
        (long long) ttl_ms, rc < 0 ? micro_strerror(rc) : "ok");
    return rc;
}

int
micro_registry_deregister(
    micro_registry *r, const micro_registry_service *svc)
{
    if (r == NULL) {
        return MICRO_EINVAL;
    }
    int rc = check_service(svc);
    if (rc < 0) {
        return rc;
    }
    rc = r->ops->deregister(r->st, svc);
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: deregister %s:%s (%zu nodes): %s",
        r->ops->name, svc->name, svc->version ? svc->version : "",
        svc->n_nodes, rc < 0 ? micro_strerror(rc) : "ok");
    return rc;
}

int
micro_registry_get_service(micro_registry *r, const char *name,
    micro_registry_service **out, size_t *n)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (n != NULL) {
        *n = 0;
    }
    if (r == NULL || name == NULL || name[0] == '\0' || out == NULL ||
        n == NULL) {
        return MICRO_EINVAL;
    }
    int rc = r->ops->get_service(r->st, name, out, n);
    if (rc < 0) {
        /* Never hand back half a result alongside an error. */
        micro_registry_services_free(*out, *n);
        *out = NULL;
        *n = 0;
    } else if (*n == 0) {
        micro_registry_services_free(*out, 0);
        *out = NULL;
        rc = MICRO_ENOSERVICE;
    }
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: get %s: %s (%zu records)",
        r->ops->name, name, rc < 0 ? micro_strerror(rc) : "ok", *n);
    return rc;
}

int
micro_registry_list_services(
    micro_registry *r, micro_registry_service **out, size_t *n)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (n != NULL) {
        *n = 0;
    }
    if (r == NULL || out == NULL || n == NULL) {
        return MICRO_EINVAL;
    }
    int rc = r->ops->list_services(r->st, out, n);
    if (rc < 0) {
        micro_registry_services_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: list: %s (%zu services)",
        r->ops->name, rc < 0 ? micro_strerror(rc) : "ok", *n);
    return rc;
}

int
micro_registry_watch(micro_registry *r, micro_registry_watch_fn fn,
    void *arg, uint64_t *token)
{
    if (r == NULL || fn == NULL || token == NULL) {
        return MICRO_EINVAL;
    }
    if (r->ops->watch == NULL) {
        return MICRO_ENOTSUP;
    }
    int rc = r->ops->watch(r->st, fn, arg, token);
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: watch: %s", r->ops->name,
        rc < 0 ? micro_strerror(rc) : "ok");
    return rc;
}

void
micro_registry_unwatch(micro_registry *r, uint64_t token)
{
    if (r == NULL || r->ops->unwatch == NULL) {
        return;
    }
    r->ops->unwatch(r->st, token);
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%s: unwatch %llu", r->ops->name,
        (unsigned long long) token);
}
