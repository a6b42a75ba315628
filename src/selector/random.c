/*
 * The random strategy, Go Micro's default: a uniform pick across every
 * candidate node of every matching version.
 */
#include "core/internal.h"
#include "selector/selector_internal.h"

typedef struct random_state {
    micro__selector_core core; /* first: see selector.c core_of */
} random_state;

static size_t
random_pick(micro__selector_core *c, const micro_node **cands,
    micro__sel_stat *const *stats, size_t n, atomic_uint_fast64_t *counter,
    int64_t now)
{
    (void) cands;
    (void) stats;
    (void) counter;
    (void) now;
    return micro__selector_rand(c, (uint32_t) n);
}

static int
random_init(void *st, micro_registry *reg, const micro_options *opts)
{
    random_state *r = st;
    return micro__selector_core_init(&r->core, reg, opts, random_pick);
}

static int
random_select(void *st, const char *service,
    const micro_select_filter *filter, micro_node *out)
{
    random_state *r = st;
    return micro__selector_core_select(
        &r->core, service, filter, random_pick, out);
}

static void
random_mark(void *st, const char *service, const char *node_id, int err)
{
    random_state *r = st;
    micro__selector_core_mark(&r->core, service, node_id, err);
}

static void
random_reset(void *st, const char *service)
{
    random_state *r = st;
    micro__selector_core_reset(&r->core, service);
}

static void
random_fini(void *st)
{
    random_state *r = st;
    micro__selector_core_fini(&r->core);
}

const micro_selector_ops micro_selector_random_ops = {
    .abi = MICRO_SELECTOR_ABI,
    .name = "random",
    .state_size = sizeof(random_state),
    .init = random_init,
    .select = random_select,
    .mark = random_mark,
    .reset = random_reset,
    .fini = random_fini,
    .options = micro__selector_core_options,
};
