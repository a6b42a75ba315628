/*
 * The least-connections strategy: the candidate with the fewest calls in
 * flight from this selector (counted between micro_selector_begin and
 * micro_selector_end, which the client brackets every attempt with). Ties
 * are broken by rotating over the tied candidates with the service's
 * counter, so an idle service is spread like round robin rather than
 * piling onto the first node the registry listed.
 *
 * The count is what this process sends; it knows nothing of other
 * clients' load, which is what keeps it free of coordination.
 */
#include "core/internal.h"
#include "selector/selector_internal.h"

typedef struct lc_state {
    micro__selector_core core; /* first: see selector.c core_of */
} lc_state;

static size_t
lc_pick(micro__selector_core *c, const micro_node **cands,
    micro__sel_stat *const *stats, size_t n, atomic_uint_fast64_t *counter,
    int64_t now)
{
    (void) c;
    (void) cands;
    (void) now;
    uint32_t least = UINT32_MAX;
    size_t tied = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t f = stats[i]->inflight;
        if (f < least) {
            least = f;
            tied = 1;
        } else if (f == least) {
            tied++;
        }
    }
    uint_fast64_t k = atomic_fetch_add_explicit(counter, 1,
                          memory_order_relaxed) %
        tied;
    for (size_t i = 0; i < n; i++) {
        if (stats[i]->inflight == least && k-- == 0) {
            return i;
        }
    }
    return 0; /* not reached */
}

static int
lc_init(void *st, micro_registry *reg, const micro_options *opts)
{
    lc_state *l = st;
    int rc = micro__selector_core_init(&l->core, reg, opts, lc_pick);
    l->core.want_stats = true;
    return rc;
}

static int
lc_select(void *st, const char *service, const micro_select_filter *filter,
    micro_node *out)
{
    lc_state *l = st;
    return micro__selector_core_select(&l->core, service, filter, lc_pick, out);
}

static void
lc_mark(void *st, const char *service, const char *node_id, int err)
{
    lc_state *l = st;
    micro__selector_core_mark(&l->core, service, node_id, err);
}

static void
lc_begin(void *st, const char *service, const char *node_id)
{
    lc_state *l = st;
    micro__selector_core_begin(&l->core, service, node_id);
}

static void
lc_end(void *st, const char *service, const char *node_id, int err,
    int64_t latency_us)
{
    lc_state *l = st;
    micro__selector_core_end(&l->core, service, node_id, err, latency_us);
}

static void
lc_reset(void *st, const char *service)
{
    lc_state *l = st;
    micro__selector_core_reset(&l->core, service);
}

static void
lc_fini(void *st)
{
    lc_state *l = st;
    micro__selector_core_fini(&l->core);
}

const micro_selector_ops micro_selector_leastconn_ops = {
    .abi = MICRO_SELECTOR_ABI,
    .name = "leastconn",
    .state_size = sizeof(lc_state),
    .init = lc_init,
    .select = lc_select,
    .mark = lc_mark,
    .reset = lc_reset,
    .fini = lc_fini,
    .begin = lc_begin,
    .end = lc_end,
    .options = micro__selector_core_options,
};
