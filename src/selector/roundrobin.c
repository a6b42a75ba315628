/*
 * The round-robin strategy. Go v4 builds a new iterator, starting at a
 * random index, for every call, so it only rotates across the retries of
 * one call. Here each service has one counter shared by every select, so
 * successive selects cycle evenly over the candidates. The candidates are
 * sorted by node id first, so the order does not depend on the registry's
 * answer order; when the candidate set changes (a node joins, leaves or
 * backs off) the rotation simply continues over the new list.
 */
#include "core/internal.h"
#include "selector/selector_internal.h"

typedef struct rr_state {
    micro__selector_core core; /* first: see selector.c core_of */
} rr_state;

static int
node_id_cmp(const void *a, const void *b)
{
    const micro_node *const *x = a;
    const micro_node *const *y = b;
    return strcmp((*x)->id ? (*x)->id : "", (*y)->id ? (*y)->id : "");
}

static size_t
rr_pick(micro__selector_core *c, const micro_node **cands,
    micro__sel_stat *const *stats, size_t n, atomic_uint_fast64_t *counter,
    int64_t now)
{
    (void) c;
    (void) stats;
    (void) now;
    qsort(cands, n, sizeof(*cands), node_id_cmp);
    uint_fast64_t i = atomic_fetch_add_explicit(counter, 1,
        memory_order_relaxed);
    return (size_t) (i % n);
}

static int
rr_init(void *st, micro_registry *reg, const micro_options *opts)
{
    rr_state *r = st;
    return micro__selector_core_init(&r->core, reg, opts, rr_pick);
}

static int
rr_select(void *st, const char *service, const micro_select_filter *filter,
    micro_node *out)
{
    rr_state *r = st;
    return micro__selector_core_select(&r->core, service, filter, rr_pick, out);
}

static void
rr_mark(void *st, const char *service, const char *node_id, int err)
{
    rr_state *r = st;
    micro__selector_core_mark(&r->core, service, node_id, err);
}

static void
rr_reset(void *st, const char *service)
{
    rr_state *r = st;
    micro__selector_core_reset(&r->core, service);
}

static void
rr_fini(void *st)
{
    rr_state *r = st;
    micro__selector_core_fini(&r->core);
}

const micro_selector_ops micro_selector_roundrobin_ops = {
    .abi = MICRO_SELECTOR_ABI,
    .name = "roundrobin",
    .state_size = sizeof(rr_state),
    .init = rr_init,
    .select = rr_select,
    .mark = rr_mark,
    .reset = rr_reset,
    .fini = rr_fini,
    .options = micro__selector_core_options,
};
