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
 *
 * Costs within P2C_TIE of each other are a tie, broken at random. Exact
 * comparison starved equally fast nodes: the clock moves in whole
 * milliseconds, so during one millisecond (hundreds of calls) every cost
 * is frozen, and equal latencies do not give bit-equal averages (the
 * first sample sets the average exactly, later ones approach it from
 * below and stop a few ulps short; a node first sampled after a clock
 * tick carries a 0.4% decay). The highest of such "equal" costs then lost
 * every comparison until the clock moved, so a node could get 1 of 3,000
 * calls. A decay of a few milliseconds, or latencies a few per cent
 * apart, are not worth a preference; a slow node (2x) or one with a call
 * in flight (x2) is far outside the band.
 */
#include "core/internal.h"
#include "selector/selector_internal.h"

/* Relative difference below which two costs are equal: 1/64, 1.6 %. */
#define P2C_TIE (1.0 / 64.0)

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
p2c_pick(micro__selector_core *c, const micro_node **cands,
    micro__sel_stat *const *stats, size_t n, atomic_uint_fast64_t *counter,
    int64_t now)
{
    (void) cands;
    (void) counter;
    if (n == 1) {
        return 0;
    }
    size_t a = micro__selector_rand(c, (uint32_t) n);
    size_t b = micro__selector_rand(c, (uint32_t) n - 1);
    if (b >= a) {
        b++; /* distinct from a, uniform over the rest */
    }
    double ca = cost(stats[a], now);
    double cb = cost(stats[b], now);
    double hi = ca > cb ? ca : cb;
    double lo = ca > cb ? cb : ca;
    if (hi - lo <= hi * P2C_TIE) {
        return micro__selector_rand(c, 2) ? a : b;
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
    .options = micro__selector_core_options,
};
