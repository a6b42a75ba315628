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
 * through a cache of registry lookups (option "selector_ttl", default
 * 1 min). The cache is filled on the first lookup of a service, kept
 * current by the registry's watch (create, update and delete events are
 * applied to the cached nodes as they arrive), looked up again when its
 * TTL runs out, and, when the registry cannot answer, keeps serving the
 * last known nodes (logged once per outage). Nodes whose call failed are
 * skipped for a back-off period (option "selector_backoff", default 5 s)
 * unless no other node is left.
 *
 * Strategies: "random" (Go Micro's default), "roundrobin", "leastconn"
 * (fewest calls in flight per node) and "p2c" (power of two choices on a
 * moving average of latency), chosen by option "selector", the --selector
 * flag or MICRO_SELECTOR.
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

#define MICRO_SELECTOR_ABI 3

/**
 * For implementers. Every slot is called from any thread, concurrently;
 * implementations synchronise themselves and must not block except in
 * select (which may ask the registry).
 */
typedef struct micro_selector_ops {
    uint32_t abi;      /* MICRO_SELECTOR_ABI */
    const char *name;  /* "random", "roundrobin", "leastconn", "p2c" */
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
    /* Optional (NULL: nothing to do). A call to node_id starts. */
    void (*begin)(void *st, const char *service, const char *node_id);
    /* Optional (NULL: the front end calls mark). The call begun on
     * node_id ended: err as for mark, latency_us its duration (<0:
     * unknown). Implementations do what mark does as well. */
    void (*end)(void *st, const char *service, const char *node_id, int err,
        int64_t latency_us);
    /* --- ABI 3 ---------------------------------------------------- */
    /* The options the implementation reads (options.h: full Go Micro
     * names starting with "selector_"), ended by MICRO_OPTION_END; NULL for
     * none. The core learns them from here for flags, env and --help. */
    const micro_option_desc *options;
} micro_selector_ops;

MICRO_API extern const micro_selector_ops micro_selector_random_ops;
MICRO_API extern const micro_selector_ops micro_selector_roundrobin_ops;
MICRO_API extern const micro_selector_ops micro_selector_leastconn_ops;
MICRO_API extern const micro_selector_ops micro_selector_p2c_ops;

MICRO_API int micro_selector_new(micro_selector **out,
    const micro_selector_ops *ops, micro_registry *reg,
    const micro_options *opts);
/** By strategy name: "random" (default when name is NULL or empty),
 *  "roundrobin", "leastconn" or "p2c"; MICRO_ENOENT for others. */
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
/**
 * Report the outcome of a call to node_id without begin/end: err 0 is a
 * success (clears the node's back-off), <0 a failure (backs it off).
 */
MICRO_API void micro_selector_mark(
    micro_selector *s, const char *service, const char *node_id, int err);
/**
 * Bracket one attempt on the node select returned. Every begin must be
 * followed by exactly one end with the same service and node_id. end also
 * does what mark does (err 0: success; <0: failure, the node backs off);
 * latency_us is the attempt's duration (<0 when unknown). leastconn counts
 * the calls in flight between the two; p2c averages the latencies.
 * Strings are borrowed for the call.
 */
MICRO_API void micro_selector_begin(
    micro_selector *s, const char *service, const char *node_id);
MICRO_API void micro_selector_end(micro_selector *s, const char *service,
    const char *node_id, int err, int64_t latency_us);
MICRO_API void micro_selector_reset(micro_selector *s, const char *service);

#ifdef __cplusplus
}
#endif
#endif
