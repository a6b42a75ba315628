/*
 * Machinery shared by the selector strategies (selector.c): the registry
 * cache, filtering and failed-node back-off. Each strategy's state begins
 * with a micro__selector_core. Not installed.
 */
#ifndef CMICRO_SELECTOR_INTERNAL_H
#define CMICRO_SELECTOR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "cmicro/selector.h"
#include "core/internal.h"

#define MICRO__SELECTOR_TTL_MS 60000
#define MICRO__SELECTOR_BACKOFF_MS 5000
/* A latency average halves every this many ms without a new sample. */
#define MICRO__SELECTOR_DECAY_MS 250.0

typedef struct micro__sel_entry micro__sel_entry;

/* What leastconn and p2c know about one node, kept per service entry
 * across refreshes (by node id). Guarded by the core's mutex. */
typedef struct micro__sel_stat {
    char *id;
    uint32_t inflight;  /* begun and not yet ended */
    double ewma_us;     /* moving average of latency; 0: no sample yet */
    int64_t sampled_ms; /* when ewma_us was last updated */
} micro__sel_stat;

/* Counters for tests and the log (guarded by the mutex). */
typedef struct micro__selector_counters {
    uint64_t lookups;       /* registry get_service calls */
    uint64_t events;        /* watch events applied to a cached entry */
    uint64_t stale_served;  /* selects answered from a stale entry */
    uint64_t stale_logged;  /* "serving cached nodes" log lines */
} micro__selector_counters;

typedef struct micro__selector_core micro__selector_core;

/*
 * Chooses one of n (n > 0) candidates. Called with the core's mutex held:
 * it must not block or call into the selector or registry. It may reorder
 * cands (a scratch array of the candidates) when stats is NULL. stats is
 * NULL unless the core's want_stats is set; then stats[i] belongs to
 * cands[i]. counter is the service's own counter, shared by every select
 * of that service. now is the core's clock (micro__selector_now).
 * Randomness comes from micro__selector_rand(c, ...), so that a test can
 * seed it. Returns an index in [0, n).
 */
typedef size_t (*micro__selector_pick_fn)(micro__selector_core *c,
    const micro_node **cands, micro__sel_stat *const *stats, size_t n,
    atomic_uint_fast64_t *counter, int64_t now);

/* A clock in milliseconds (monotonic, or a test's). */
typedef int64_t (*micro__selector_clock_fn)(void *arg);

struct micro__selector_core {
    micro_registry *reg; /* borrowed */
    pthread_mutex_t mu;  /* guards everything below */
    micro__rng rng;      /* the strategies' random choices */
    micro__selector_clock_fn clock; /* NULL: micro__now_ms */
    void *clock_arg;
    pthread_cond_t done; /* a registry lookup finished */
    micro__sel_entry *entries;
    int64_t ttl_ms;
    int64_t backoff_ms;
    bool want_stats; /* the strategy's pick reads per-node stats */
    /* The watch starts with the first select, not at init, so a client
     * that only calls by address never touches the registry (an mDNS
     * registry then never opens a socket). */
    pthread_mutex_t wmu;      /* serialises starting the watch */
    atomic_bool watch_tried;  /* set once the attempt was made */
    bool watching;            /* guarded by wmu */
    uint64_t watch_token;
    micro__selector_counters cnt;
    micro__selector_pick_fn pick; /* the strategy's */
};

/* The options the core reads ("selector_ttl", "selector_backoff"): every
 * strategy built on it declares them in its ops table. */
extern const micro_option_desc micro__selector_core_options[];

int micro__selector_core_init(micro__selector_core *c, micro_registry *reg,
    const micro_options *opts, micro__selector_pick_fn pick);
void micro__selector_core_fini(micro__selector_core *c);
/* Look service up (through the cache), filter, drop nodes in back-off
 * unless that leaves none, let pick choose, and copy the node to *out. */
int micro__selector_core_select(micro__selector_core *c, const char *service,
    const micro_select_filter *filter, micro__selector_pick_fn pick,
    micro_node *out);
void micro__selector_core_mark(micro__selector_core *c, const char *service,
    const char *node_id, int err);
void micro__selector_core_reset(micro__selector_core *c, const char *service);
/* begin/end for strategies with stats: in-flight count, latency EWMA,
 * and (end) the back-off of mark. */
void micro__selector_core_begin(
    micro__selector_core *c, const char *service, const char *node_id);
void micro__selector_core_end(micro__selector_core *c, const char *service,
    const char *node_id, int err, int64_t latency_us);
/* The core's clock and its random source in [0, n) (mutex held for the
 * latter; pick functions are called with it held). */
int64_t micro__selector_now(micro__selector_core *c);
uint32_t micro__selector_rand(micro__selector_core *c, uint32_t n);

/*
 * select without blocking, for callers on an event loop: the answer of
 * micro_selector_select when the built-in selector s can give it from its
 * cache (fresh, or stale while another thread refreshes it) with no
 * registry call and no wait, else MICRO_EAGAIN (a cold or expired entry,
 * the first select of s, or s not built in): then call
 * micro_selector_select off the loop. *out as for micro_selector_select.
 */
int micro__selector_select_cached(micro_selector *s, const char *service,
    const micro_select_filter *filter, micro_node *out);

/* The built-in ops tables by name (plugins.c). */
int micro__selector_ops_by_name(
    const char *name, const micro_selector_ops **ops);

/* For tests: override the TTL and back-off of a built-in selector (no-op
 * for other ops tables); read its counters; copy the ids of the nodes its
 * cache holds for service (n 0 when none). *ids is malloc'd, each id too. */
void micro__selector_set_ttl_ms(micro_selector *s, int64_t ms);
void micro__selector_set_backoff_ms(micro_selector *s, int64_t ms);
micro__selector_counters micro__selector_get_counters(micro_selector *s);
int micro__selector_cached_ids(
    micro_selector *s, const char *service, char ***ids, size_t *n);
/* For tests: the in-flight count and latency average of node_id (0 and
 * 0.0 when unknown). */
void micro__selector_node_stat(micro_selector *s, const char *service,
    const char *node_id, uint32_t *inflight, double *ewma_us);
/* For tests: make a built-in selector's choices reproducible. set_rand
 * seeds its random source (every seed but 0 gives a fixed sequence; 0
 * reseeds from getrandom). set_clock replaces the clock that TTLs,
 * back-off, stale holds and the latency decay read (fn NULL: the
 * monotonic clock again); fn is called with the selector's mutex held and
 * must not call into the selector. No-ops for other ops tables. */
void micro__selector_set_rand(micro_selector *s, uint64_t seed);
void micro__selector_set_clock(
    micro_selector *s, micro__selector_clock_fn fn, void *arg);

#endif
