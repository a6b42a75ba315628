/*
 * Power of two choices (Mitzenmacher) on a moving average of latency, the
 * shape of Finagle's "P2C + peak EWMA": pick two distinct candidates at
 * random and keep the cheaper, where
 *
 *     cost = ewma_latency * decay * (in_flight + 1)
 *
 * A node with no sample yet costs 0, so new nodes are tried at once. The
 * average decays with the time since its last sample (halved after
 * MICRO__SELECTOR_DECAY_MS, 250 ms), and a new sample is averaged with the
 * decayed value: a node that was slow and lost every comparison since is
 * tried again after a while, and one fast answer then restores it, instead
 * of it being starved forever on an old number.
 * Two random choices rather than the global minimum keep many clients
 * from stampeding onto the same fastest node.
 */
#include "core/internal.h"
#include "selector/selector_internal.h"

typedef struct p2c_state {
    micro__selector_core core; /* first: see selector.c core_of */
} p2c_state;

static double
cost(const micro__sel_stat *s, int64_t now)
{
    if (s->ewma_us <= 0.0) {
        return 0.0;
    }
    double age = (double) (now - s->sampled_ms);
    if (age < 0.0) {
        age = 0.0;
    }
    return s->ewma_us *
        (MICRO__SELECTOR_DECAY_MS / (MICRO__SELECTOR_DECAY_MS + age)) *
        (double) (s->inflight + 1);
}

static size_t
p2c_pick(const micro_node **cands, micro__sel_stat *const *stats, size_t n,
    atomic_uint_fast64_t *counter, int64_t now)
{
    (void) cands;
    (void) counter;
    if (n == 1) {
        return 0;
    }
    size_t a = micro__rand((uint32_t) n);
    size_t b = micro__rand((uint32_t) n - 1);
    if (b >= a) {
        b++; /* distinct from a, uniform over the rest */
    }
    double ca = cost(stats[a], now);
    double cb = cost(stats[b], now);
    if (ca == cb) {
        return micro__rand(2) ? a : b;
    }
    return ca < cb ? a : b;
}

static int
p2c_init(void *st, micro_registry *reg, const micro_options *opts)
{
    p2c_state *p = st;
    int rc = micro__selector_core_init(&p->core, reg, opts, p2c_pick);
    p->core.want_stats = true;
    return rc;
}

static int
p2c_select(void *st, const char *service, const micro_select_filter *filter,
    micro_node *out)
{
    p2c_state *p = st;
    return micro__selector_core_select(&p->core, service, filter, p2c_pick,
        out);
}

static void
p2c_mark(void *st, const char *service, const char *node_id, int err)
{
    p2c_state *p = st;
    micro__selector_core_mark(&p->core, service, node_id, err);
}

static void
p2c_begin(void *st, const char *service, const char *node_id)
{
    p2c_state *p = st;
    micro__selector_core_begin(&p->core, service, node_id);
}

static void
p2c_end(void *st, const char *service, const char *node_id, int err,
    int64_t latency_us)
{
    p2c_state *p = st;
    micro__selector_core_end(&p->core, service, node_id, err, latency_us);
}

static void
p2c_reset(void *st, const char *service)
{
    p2c_state *p = st;
    micro__selector_core_reset(&p->core, service);
}

static void
p2c_fini(void *st)
{
    p2c_state *p = st;
    micro__selector_core_fini(&p->core);
}

const micro_selector_ops micro_selector_p2c_ops = {
    .abi = MICRO_SELECTOR_ABI,
    .name = "p2c",
    .state_size = sizeof(p2c_state),
    .init = p2c_init,
    .select = p2c_select,
    .mark = p2c_mark,
    .reset = p2c_reset,
    .fini = p2c_fini,
    .begin = p2c_begin,
    .end = p2c_end,
};
