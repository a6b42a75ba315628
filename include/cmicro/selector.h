#ifndef CMICRO_SELECTOR_H
#define CMICRO_SELECTOR_H

#include <stdint.h>

#include "registry.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Client-side load balancing over registry results. The selector reads
 * through a cache (TTL option "selector_ttl", default 1 min; served stale
 * when the registry fails) and picks one node per call by its strategy.
 * Nodes marked failed are skipped for a back-off period (option
 * "selector_backoff", default 5 s) unless no other node is left.
 *
 * Thread: every function may be called from any thread concurrently.
 */
typedef struct micro_selector micro_selector;

/** Filters applied before the strategy; NULL fields mean "any". */
typedef struct micro_select_filter {
    const char *version;     /* keep services of this version */
    const char *label_key;   /* keep nodes whose metadata[label_key] */
    const char *label_value; /*   equals label_value */
    const char *endpoint;    /* keep services that advertise it */
} micro_select_filter;

#define MICRO_SELECTOR_ABI 1

typedef struct micro_selector_ops {
    uint32_t abi;      /* MICRO_SELECTOR_ABI */
    const char *name;  /* "random", "roundrobin" */
    size_t state_size; /* allocated and zeroed by the front end */
    /* Required. The registry is borrowed and outlives the selector. */
    int (*init)(void *st, micro_registry *reg, const micro_options *opts);
    /* Required. Copy the chosen node into *out (caller clears it). */
    int (*select)(void *st, const char *service,
        const micro_select_filter *filter, micro_node *out);
    /* Required. err 0 marks success, <0 marks failure. */
    void (*mark)(void *st, const char *service, const char *node_id, int err);
    /* Required. Drop cached state for service (NULL: all). */
    void (*reset)(void *st, const char *service);
    void (*fini)(void *st);
} micro_selector_ops;

MICRO_API extern const micro_selector_ops micro_selector_random_ops;
MICRO_API extern const micro_selector_ops micro_selector_roundrobin_ops;

MICRO_API int micro_selector_new(micro_selector **out,
    const micro_selector_ops *ops, micro_registry *reg,
    const micro_options *opts);
/** By strategy name: "random" (default) or "roundrobin". */
MICRO_API int micro_selector_new_by_name(micro_selector **out,
    const char *name, micro_registry *reg, const micro_options *opts);
MICRO_API void micro_selector_free(micro_selector *s);

/**
 * Pick a node of service. out is zeroed first and filled with a copy the
 * caller clears with micro_node_clear. MICRO_ENOSERVICE when the registry
 * does not know the service, MICRO_ENONODE when filters leave no node.
 */
MICRO_API int micro_selector_select(micro_selector *s, const char *service,
    const micro_select_filter *filter, micro_node *out);
MICRO_API void micro_selector_mark(
    micro_selector *s, const char *service, const char *node_id, int err);
MICRO_API void micro_selector_reset(micro_selector *s, const char *service);

#ifdef __cplusplus
}
#endif
#endif
