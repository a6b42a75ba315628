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

#define MICRO__SELECTOR_TTL_MS 60000
#define MICRO__SELECTOR_BACKOFF_MS 5000

typedef struct micro__sel_entry micro__sel_entry;

typedef struct micro__selector_core {
    micro_registry *reg; /* borrowed */
    pthread_mutex_t mu;  /* guards everything below */
    pthread_cond_t done; /* a registry lookup finished */
    micro__sel_entry *entries;
    int64_t ttl_ms;
    int64_t backoff_ms;
    bool watching;
    uint64_t watch_token;
} micro__selector_core;

/*
 * Chooses one of n (n > 0) candidates. Called with the core's mutex held:
 * it must not block or call into the selector or registry. It may reorder
 * cands (a scratch array of the candidates). counter is the
 * service's own counter, shared by every select of that service.
 * Returns an index in [0, n).
 */
typedef size_t (*micro__selector_pick_fn)(
    const micro_node **cands, size_t n, atomic_uint_fast64_t *counter);

int micro__selector_core_init(micro__selector_core *c, micro_registry *reg,
    const micro_options *opts);
void micro__selector_core_fini(micro__selector_core *c);
/* Look service up (through the cache), filter, drop nodes in back-off
 * unless that leaves none, let pick choose, and copy the node to *out. */
int micro__selector_core_select(micro__selector_core *c, const char *service,
    const micro_select_filter *filter, micro__selector_pick_fn pick,
    micro_node *out);
void micro__selector_core_mark(micro__selector_core *c, const char *service,
    const char *node_id, int err);
void micro__selector_core_reset(micro__selector_core *c, const char *service);

/* For tests: override the TTL and back-off of a random or roundrobin
 * selector (no-op for other ops tables). */
void micro__selector_set_ttl_ms(micro_selector *s, int64_t ms);
void micro__selector_set_backoff_ms(micro_selector *s, int64_t ms);

#endif
