/*
 * Selectors over the memory registry: strategies, filters, back-off, cache.
 *
 * Every selector whose choices are counted here has a seeded random source
 * and the test's clock (micro__selector_set_rand/set_clock): the counts
 * are the same on every run and machine, time moves only when a test
 * advances it, and nothing depends on the scheduler.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmicro/micro.h"
#include "selector/selector_internal.h"

/* The test clock: it moves only when a test advances it. */
static _Atomic int64_t fake_now = 1000000;

static int64_t
fake_clock(void *arg)
{
    (void) arg;
    return atomic_load(&fake_now);
}

static void
advance_ms(int64_t ms)
{
    atomic_fetch_add(&fake_now, ms);
}

/* A selector by name with the given seed and the test clock. */
static micro_selector *
new_det(const char *name, micro_registry *r, const micro_options *o,
    uint64_t seed)
{
    micro_selector *s = NULL;
    assert_int_equal(micro_selector_new_by_name(&s, name, r, o), 0);
    micro__selector_set_rand(s, seed);
    micro__selector_set_clock(s, fake_clock, NULL);
    return s;
}

/* Register one node of name:version, with an optional label and endpoint. */
static void
add_node(micro_registry *r, const char *name, const char *version,
    const char *id, const char *zone, const char *endpoint)
{
    micro_registry_service s;
    memset(&s, 0, sizeof(s));
    s.name = strdup(name);
    s.version = strdup(version);
    s.n_nodes = 1;
    s.nodes = calloc(1, sizeof(micro_node));
    s.nodes[0].id = strdup(id);
    s.nodes[0].address = strdup("127.0.0.1:1");
    if (zone != NULL) {
        assert_int_equal(
            micro_metadata_set(&s.nodes[0].metadata, "zone", zone), 0);
    }
    if (endpoint != NULL) {
        s.n_endpoints = 1;
        s.endpoints = calloc(1, sizeof(micro_endpoint));
        s.endpoints[0].name = strdup(endpoint);
    }
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    micro_registry_service_clear(&s);
}

static micro_registry *
three_nodes(void)
{
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new(&r, &micro_registry_memory_ops, NULL),
        0);
    add_node(r, "svc", "v1", "n1", "a", "Svc.A");
    add_node(r, "svc", "v1", "n2", "b", "Svc.A");
    add_node(r, "svc", "v1", "n3", "a", "Svc.A");
    return r;
}

/* Pick `picks` times and count n1..n4 in hits[0..3]. */
static void
tally(micro_selector *s, const char *svc, const micro_select_filter *f,
    int picks, int hits[4])
{
    memset(hits, 0, 4 * sizeof(int));
    for (int i = 0; i < picks; i++) {
        micro_node n;
        assert_int_equal(micro_selector_select(s, svc, f, &n), 0);
        assert_true(n.id[0] == 'n' && n.id[1] >= '1' && n.id[1] <= '4');
        hits[n.id[1] - '1']++;
        micro_node_clear(&n);
    }
}

static void
test_random_spread(void **state)
{
    (void) state;
    micro_registry *r = three_nodes();
    micro_selector *s = new_det("", r, NULL, 42);
    int hits[4];
    tally(s, "svc", NULL, 3000, hits);
    print_message("random: %d %d %d\n", hits[0], hits[1], hits[2]);
    for (int i = 0; i < 3; i++) {
        assert_in_range(hits[i], 940, 1060); /* 1000 +- 2.3 sigma */
    }
    /* The same seed makes the same choices; another seed others. */
    micro_selector *a = new_det("random", r, NULL, 7);
    micro_selector *b = new_det("random", r, NULL, 7);
    micro_selector *c = new_det("random", r, NULL, 8);
    int same = 0, differ = 0;
    for (int i = 0; i < 200; i++) {
        micro_node na, nb, nc;
        assert_int_equal(micro_selector_select(a, "svc", NULL, &na), 0);
        assert_int_equal(micro_selector_select(b, "svc", NULL, &nb), 0);
        assert_int_equal(micro_selector_select(c, "svc", NULL, &nc), 0);
        same += strcmp(na.id, nb.id) == 0;
        differ += strcmp(na.id, nc.id) != 0;
        micro_node_clear(&na);
        micro_node_clear(&nb);
        micro_node_clear(&nc);
    }
    assert_int_equal(same, 200);
    assert_true(differ > 0);
    micro_selector_free(a);
    micro_selector_free(b);
    micro_selector_free(c);
    micro_selector_free(s);
    micro_registry_free(r);
}

static void
test_roundrobin_even(void **state)
{
    (void) state;
    micro_registry *r = three_nodes();
    micro_selector *s = NULL;
    assert_int_equal(micro_selector_new_by_name(&s, "roundrobin", r, NULL), 0);
    int hits[4];
    tally(s, "svc", NULL, 300, hits);
    assert_int_equal(hits[0], 100);
    assert_int_equal(hits[1], 100);
    assert_int_equal(hits[2], 100);
    /* Successive picks cycle in node-id order. */
    micro_node a;
    micro_node b;
    assert_int_equal(micro_selector_select(s, "svc", NULL, &a), 0);
    assert_int_equal(micro_selector_select(s, "svc", NULL, &b), 0);
    assert_int_equal((b.id[1] - '1'), (a.id[1] - '1' + 1) % 3);
    micro_node_clear(&a);
    micro_node_clear(&b);
    micro_selector_free(s);
    micro_registry_free(r);
}

static void
test_filters(void **state)
{
    (void) state;
    micro_registry *r = three_nodes();
    add_node(r, "svc", "v2", "n4", "c", "Svc.B");
    micro_selector *s = NULL;
    assert_int_equal(micro_selector_new(&s, &micro_selector_random_ops, r,
                         NULL),
        0);
    micro__selector_set_rand(s, 3);
    micro__selector_set_clock(s, fake_clock, NULL);
    int hits[4];

    /* No filter: every version is mixed, as in Go. */
    tally(s, "svc", NULL, 400, hits);
    assert_true(hits[0] > 0 && hits[1] > 0 && hits[2] > 0 && hits[3] > 0);

    micro_select_filter f = { .version = "v2" };
    tally(s, "svc", &f, 50, hits);
    assert_int_equal(hits[3], 50);

    f = (micro_select_filter) { .label_key = "zone", .label_value = "b" };
    tally(s, "svc", &f, 50, hits);
    assert_int_equal(hits[1], 50);

    f = (micro_select_filter) { .label_key = "zone", .label_value = "a" };
    tally(s, "svc", &f, 200, hits);
    assert_int_equal(hits[0] + hits[2], 200);
    assert_true(hits[0] > 0 && hits[2] > 0);

    f = (micro_select_filter) { .endpoint = "Svc.B" };
    tally(s, "svc", &f, 50, hits);
    assert_int_equal(hits[3], 50);

    f = (micro_select_filter) { .version = "v1", .endpoint = "Svc.A",
        .label_key = "zone", .label_value = "a" };
    tally(s, "svc", &f, 100, hits);
    assert_int_equal(hits[0] + hits[2], 100);

    micro_node n;
    f = (micro_select_filter) { .version = "v3" };
    assert_int_equal(micro_selector_select(s, "svc", &f, &n), MICRO_ENONODE);
    assert_null(n.id);
    f = (micro_select_filter) { .endpoint = "Svc.C" };
    assert_int_equal(micro_selector_select(s, "svc", &f, &n), MICRO_ENONODE);
    f = (micro_select_filter) { .version = "v2", .label_key = "zone",
        .label_value = "a" };
    assert_int_equal(micro_selector_select(s, "svc", &f, &n), MICRO_ENONODE);
    f = (micro_select_filter) { .label_key = "region" };
    assert_int_equal(micro_selector_select(s, "svc", &f, &n), MICRO_ENONODE);

    assert_int_equal(micro_selector_select(s, "nope", NULL, &n),
        MICRO_ENOSERVICE);
    assert_int_equal(micro_selector_select(s, "", NULL, &n), MICRO_EINVAL);
    assert_int_equal(micro_selector_select(s, "svc", NULL, NULL),
        MICRO_EINVAL);
    micro_selector_free(s);
    micro_registry_free(r);
}

static void
check_backoff(micro_selector *s)
{
    int hits[4];
    micro_selector_mark(s, "svc", "n1", MICRO_ECONNREFUSED);
    tally(s, "svc", NULL, 300, hits);
    assert_int_equal(hits[0], 0);
    assert_int_equal(hits[1] + hits[2], 300);
    assert_true(hits[1] > 0 && hits[2] > 0);

    /* mark(0) lifts a back-off at once. */
    micro_selector_mark(s, "svc", "n2", MICRO_ETIMEDOUT);
    tally(s, "svc", NULL, 30, hits);
    assert_int_equal(hits[2], 30);
    micro_selector_mark(s, "svc", "n2", 0);
    tally(s, "svc", NULL, 300, hits);
    assert_int_equal(hits[0], 0);
    assert_true(hits[1] > 0);

    /* Every node failed: pick one anyway. */
    micro_selector_mark(s, "svc", "n2", MICRO_EIO);
    micro_selector_mark(s, "svc", "n3", MICRO_EIO);
    tally(s, "svc", NULL, 300, hits);
    assert_int_equal(hits[0] + hits[1] + hits[2], 300);

    /* The window ends. */
    advance_ms(99);
    tally(s, "svc", NULL, 30, hits);
    assert_int_equal(hits[0] + hits[1] + hits[2], 30);
    advance_ms(1);
    tally(s, "svc", NULL, 300, hits);
    assert_true(hits[0] > 0 && hits[1] > 0 && hits[2] > 0);
}

static void
test_backoff(void **state)
{
    (void) state;
    micro_registry *r = three_nodes();
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    assert_int_equal(micro_options_set_ms(o, "selector_backoff", 100), 0);
    micro_selector *s = new_det("random", r, o, 11);
    micro_options_free(o);
    check_backoff(s);
    micro_selector_free(s);

    /* The same with the others, and the back-off set by the test hook. */
    const char *names[] = { "roundrobin", "leastconn", "p2c" };
    for (size_t i = 0; i < 3; i++) {
        s = new_det(names[i], r, NULL, 12 + i);
        micro__selector_set_backoff_ms(s, 100);
        check_backoff(s);
        micro_selector_free(s);
    }
    micro_registry_free(r);
}

/* The memory registry, with a get_service that fails on demand and no
 * watch, so the selector relies on its TTL. */
static atomic_int fail_get;

static int
flaky_get(void *st, const char *name, micro_registry_service **out, size_t *n)
{
    if (atomic_load(&fail_get)) {
        return MICRO_EIO;
    }
    return micro_registry_memory_ops.get_service(st, name, out, n);
}

static void
test_stale(void **state)
{
    (void) state;
    micro_registry_ops flaky = micro_registry_memory_ops;
    flaky.name = "flaky";
    flaky.get_service = flaky_get;
    flaky.watch = NULL;
    flaky.unwatch = NULL;
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new(&r, &flaky, NULL), 0);
    add_node(r, "svc", "v1", "n1", NULL, NULL);

    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    assert_int_equal(micro_options_set_ms(o, "selector_ttl", 30), 0);
    micro_selector *s = new_det("random", r, o, 21);
    micro_options_free(o);

    micro_node n;
    assert_int_equal(micro_selector_select(s, "svc", NULL, &n), 0);
    assert_string_equal(n.id, "n1");
    micro_node_clear(&n);

    /* The registry fails and the entry expires: served stale. */
    atomic_store(&fail_get, 1);
    add_node(r, "svc", "v1", "n2", NULL, NULL);
    advance_ms(29);
    assert_int_equal(micro_selector_select(s, "svc", NULL, &n), 0);
    micro_node_clear(&n);
    assert_int_equal(micro__selector_get_counters(s).lookups, 1);
    advance_ms(21);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(micro_selector_select(s, "svc", NULL, &n), 0);
        assert_string_equal(n.id, "n1");
        micro_node_clear(&n);
    }
    /* Nothing cached for this one: the error comes through. */
    assert_int_equal(micro_selector_select(s, "other", NULL, &n), MICRO_EIO);

    /* A reset drops the stale entry too. */
    micro_selector_reset(s, "svc");
    assert_int_equal(micro_selector_select(s, "svc", NULL, &n), MICRO_EIO);

    /* Recovery: the next lookup sees both nodes. */
    atomic_store(&fail_get, 0);
    int hits[4];
    tally(s, "svc", NULL, 200, hits);
    assert_true(hits[0] > 0 && hits[1] > 0);

    /* Within the TTL the cache answers, even for a deregistered node. */
    micro_selector_reset(s, NULL);
    micro__selector_set_ttl_ms(s, 60000);
    tally(s, "svc", NULL, 10, hits);
    micro_registry_service d;
    memset(&d, 0, sizeof(d));
    d.name = "svc";
    d.version = "v1";
    micro_node gone = { .id = "n2" };
    d.nodes = &gone;
    d.n_nodes = 1;
    assert_int_equal(micro_registry_deregister(r, &d), 0);
    tally(s, "svc", NULL, 200, hits);
    assert_true(hits[1] > 0);
    /* ENOSERVICE from the registry is authoritative once the TTL ends. */
    gone.id = "n1";
    assert_int_equal(micro_registry_deregister(r, &d), 0);
    micro__selector_set_ttl_ms(s, 0);
    assert_int_equal(micro_selector_select(s, "svc", NULL, &n),
        MICRO_ENOSERVICE);

    micro_selector_free(s);
    micro_registry_free(r);
}

static void
test_watch_invalidates(void **state)
{
    (void) state;
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new(&r, &micro_registry_memory_ops, NULL),
        0);
    add_node(r, "svc", "v1", "n1", NULL, NULL);
    micro_selector *s = NULL;
    assert_int_equal(micro_selector_new_by_name(&s, "roundrobin", r, NULL), 0);
    int hits[4];
    tally(s, "svc", NULL, 10, hits);
    assert_int_equal(hits[0], 10);
    /* The TTL is a minute: only the watch can make n2 visible. */
    add_node(r, "svc", "v1", "n2", NULL, NULL);
    tally(s, "svc", NULL, 10, hits);
    assert_int_equal(hits[0], 5);
    assert_int_equal(hits[1], 5);
    micro_selector_free(s);
    micro_registry_free(r);
}


/* ------------------------------------------------------------------ */
/* leastconn and p2c                                                    */

static void
test_leastconn(void **state)
{
    (void) state;
    micro_registry *r = three_nodes();
    micro_selector *s = NULL;
    assert_int_equal(micro_selector_new_by_name(&s, "leastconn", r, NULL), 0);
    /* Idle: ties rotate, so the spread is even. */
    int hits[4];
    tally(s, "svc", NULL, 30, hits);
    assert_int_equal(hits[0], 10);
    assert_int_equal(hits[1], 10);
    assert_int_equal(hits[2], 10);
    /* Two calls in flight on n1, one on n2: n3 is the idle node. */
    micro_selector_begin(s, "svc", "n1");
    micro_selector_begin(s, "svc", "n1");
    micro_selector_begin(s, "svc", "n2");
    uint32_t inflight;
    double ewma;
    micro__selector_node_stat(s, "svc", "n1", &inflight, &ewma);
    assert_int_equal(inflight, 2);
    for (int i = 0; i < 20; i++) {
        micro_node n;
        assert_int_equal(micro_selector_select(s, "svc", NULL, &n), 0);
        assert_string_equal(n.id, "n3");
        micro_node_clear(&n);
    }
    /* n3 takes one: n2 and n3 tie at 1 and share; n1 (2) gets nothing. */
    micro_selector_begin(s, "svc", "n3");
    tally(s, "svc", NULL, 20, hits);
    assert_int_equal(hits[0], 0);
    assert_int_equal(hits[1], 10);
    assert_int_equal(hits[2], 10);
    /* Calls end (one failed: n2 backs off); n1 is the least loaded. */
    micro_selector_end(s, "svc", "n2", MICRO_ECONNREFUSED, 10);
    micro_selector_end(s, "svc", "n3", 0, 10);
    micro_selector_end(s, "svc", "n1", 0, 10);
    micro__selector_node_stat(s, "svc", "n1", &inflight, &ewma);
    assert_int_equal(inflight, 1);
    tally(s, "svc", NULL, 20, hits);
    assert_int_equal(hits[1], 0); /* backing off */
    assert_int_equal(hits[2], 20); /* 0 in flight vs n1's 1 */
    micro_selector_end(s, "svc", "n1", 0, 10);
    /* An end without begin never underflows. */
    micro_selector_end(s, "svc", "n1", 0, 10);
    micro__selector_node_stat(s, "svc", "n1", &inflight, &ewma);
    assert_int_equal(inflight, 0);
    micro_selector_free(s);
    micro_registry_free(r);
}

/* n calls through s: select, begin, end with the latency slow_us for
 * node `slow` (NULL: none) and 1000 us for the others. Counts in hits.
 * The test clock moves 1 ms just before call tick_at (-1: never) and
 * before every every-th call (0: never). */
static void
drive_clock(micro_selector *s, int calls, const char *slow, int64_t slow_us,
    int hits[4], int tick_at, int every)
{
    memset(hits, 0, 4 * sizeof(int));
    for (int i = 0; i < calls; i++) {
        if (i == tick_at || (every > 0 && i % every == 0)) {
            advance_ms(1);
        }
        micro_node n;
        assert_int_equal(micro_selector_select(s, "svc", NULL, &n), 0);
        hits[n.id[1] - '1']++;
        micro_selector_begin(s, "svc", n.id);
        int64_t lat = slow != NULL && strcmp(n.id, slow) == 0 ? slow_us : 1000;
        micro_selector_end(s, "svc", n.id, 0, lat);
        micro_node_clear(&n);
    }
}

static void
drive(micro_selector *s, int calls, const char *slow, int64_t slow_us,
    int hits[4])
{
    drive_clock(s, calls, slow, slow_us, hits, -1, 0);
}

static void
test_p2c(void **state)
{
    (void) state;
    micro_registry *r = three_nodes();
    micro_selector *s = new_det("p2c", r, NULL, 5);
    /* Equal latencies: load is spread over all three. The clock ticks
     * once, after the first two calls, then stands still, as on a fast
     * machine that makes the remaining calls within one millisecond:
     * exact cost comparison starved one node here (2 of 3000). */
    int hits[4];
    drive_clock(s, 3000, NULL, 0, hits, 2, 0);
    print_message("p2c equal: %d %d %d\n", hits[0], hits[1], hits[2]);
    for (int i = 0; i < 3; i++) {
        assert_in_range(hits[i], 900, 1100);
    }
    /* And with the clock ticking every call, every 3rd and every 500th. */
    static const int every[] = {1, 3, 500};
    for (size_t k = 0; k < 3; k++) {
        drive_clock(s, 3000, NULL, 0, hits, -1, every[k]);
        print_message("p2c equal, tick every %d: %d %d %d\n", every[k],
            hits[0], hits[1], hits[2]);
        for (int i = 0; i < 3; i++) {
            assert_in_range(hits[i], 900, 1100);
        }
    }
    /* n1 becomes 20 times slower: its average rises within a few calls
     * and p2c moves its load to the other two. */
    drive(s, 200, "n1", 20000, hits);
    drive(s, 2000, "n1", 20000, hits);
    print_message("p2c slow n1: %d %d %d\n", hits[0], hits[1], hits[2]);
    assert_true(hits[0] < 2000 / 20);
    assert_true(hits[1] > 900 && hits[2] > 900);
    uint32_t inflight;
    double slow, fast;
    micro__selector_node_stat(s, "svc", "n1", &inflight, &slow);
    micro__selector_node_stat(s, "svc", "n2", &inflight, &fast);
    assert_true(slow > 3 * fast);
    /* It recovers: fast again, and once the decay (its cost halves every
     * 250 ms without a sample) lets it be tried, its average falls back
     * and it gets its share. */
    advance_ms((int64_t) (slow / fast * 250.0) + 200);
    drive(s, 300, NULL, 0, hits);
    drive(s, 3000, NULL, 0, hits);
    print_message("p2c recovered: %d %d %d\n", hits[0], hits[1], hits[2]);
    for (int i = 0; i < 3; i++) {
        assert_in_range(hits[i], 900, 1100);
    }
    /* In-flight calls count too: n2 busy with many calls loses every
     * comparison. */
    for (int i = 0; i < 50; i++) {
        micro_selector_begin(s, "svc", "n2");
    }
    drive(s, 1000, NULL, 0, hits);
    assert_int_equal(hits[1], 0);
    assert_int_equal(hits[0] + hits[2], 1000);
    micro_selector_free(s);
    micro_registry_free(r);
}

/* ------------------------------------------------------------------ */
/* The cache                                                            */

static void
has_ids(micro_selector *s, const char *svc, const char *want)
{
    char **ids = NULL;
    size_t n = 0;
    assert_int_equal(micro__selector_cached_ids(s, svc, &ids, &n), 0);
    char got[256] = "";
    /* Sorted, space separated, for a readable assertion. */
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            if (strcmp(ids[j], ids[i]) < 0) {
                char *t = ids[i];
                ids[i] = ids[j];
                ids[j] = t;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(got);
        snprintf(got + l, sizeof(got) - l, "%s%s", i ? " " : "", ids[i]);
        free(ids[i]);
    }
    free(ids);
    assert_string_equal(got, want);
}

static void
dereg(micro_registry *r, const char *svc, const char *version, const char *id)
{
    micro_registry_service d;
    memset(&d, 0, sizeof(d));
    d.name = (char *) svc;
    d.version = (char *) version;
    micro_node gone = { .id = (char *) id };
    d.nodes = &gone;
    d.n_nodes = 1;
    assert_int_equal(micro_registry_deregister(r, &d), 0);
}

static void
test_cache_watch_applies(void **state)
{
    (void) state;
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new(&r, &micro_registry_memory_ops, NULL),
        0);
    add_node(r, "svc", "v1", "n1", NULL, NULL);
    micro_selector *s = NULL;
    assert_int_equal(micro_selector_new_by_name(&s, "roundrobin", r, NULL), 0);
    /* Nothing cached before the first select; filled by it. */
    has_ids(s, "svc", "");
    int hits[4];
    tally(s, "svc", NULL, 4, hits);
    has_ids(s, "svc", "n1");
    assert_int_equal(micro__selector_get_counters(s).lookups, 1);

    /* Create, a second version, delete: applied without a lookup. */
    add_node(r, "svc", "v1", "n2", NULL, NULL);
    has_ids(s, "svc", "n1 n2");
    add_node(r, "svc", "v2", "n3", NULL, NULL);
    has_ids(s, "svc", "n1 n2 n3");
    dereg(r, "svc", "v1", "n1");
    has_ids(s, "svc", "n2 n3");
    tally(s, "svc", NULL, 20, hits);
    assert_int_equal(hits[0], 0);
    assert_int_equal(hits[1], 10);
    assert_int_equal(hits[2], 10);
    micro__selector_counters k = micro__selector_get_counters(s);
    assert_int_equal(k.lookups, 1);
    assert_true(k.events >= 3);
    /* Services nobody selected are not cached by events. */
    add_node(r, "other", "v1", "o1", NULL, NULL);
    has_ids(s, "other", "");

    /* The last node goes: the entry is empty, the next select asks the
     * registry (which no longer knows the service). */
    dereg(r, "svc", "v1", "n2");
    dereg(r, "svc", "v2", "n3");
    has_ids(s, "svc", "");
    micro_node n;
    assert_int_equal(micro_selector_select(s, "svc", NULL, &n),
        MICRO_ENOSERVICE);
    assert_int_equal(micro__selector_get_counters(s).lookups, 2);
    micro_selector_free(s);
    micro_registry_free(r);
}

/* Captures the selector's warnings. */
typedef struct logcap {
    int warnings;
    int notices;
    char last[512];
} logcap;

static void
cap_log(void *arg, micro_log_level lvl, const char *comp, const char *msg)
{
    logcap *c = arg;
    if (strcmp(comp, "selector") != 0) {
        return;
    }
    if (lvl == MICRO_LOG_WARN) {
        c->warnings++;
        snprintf(c->last, sizeof(c->last), "%s", msg);
    } else if (lvl == MICRO_LOG_NOTICE) {
        c->notices++;
    }
}

static void
test_cache_ttl_and_stale_log(void **state)
{
    (void) state;
    micro_registry_ops flaky = micro_registry_memory_ops;
    flaky.name = "flaky";
    flaky.get_service = flaky_get;
    flaky.watch = NULL;
    flaky.unwatch = NULL;
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new(&r, &flaky, NULL), 0);
    add_node(r, "svc", "v1", "n1", NULL, NULL);
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    assert_int_equal(micro_options_set_ms(o, "selector_ttl", 50), 0);
    micro_selector *s = new_det("p2c", r, o, 31);
    micro_options_free(o);
    int hits[4];

    /* Within the TTL: one lookup; past it: looked up again (and without
     * a watch, that is how n2 is found). */
    tally(s, "svc", NULL, 10, hits);
    add_node(r, "svc", "v1", "n2", NULL, NULL);
    tally(s, "svc", NULL, 10, hits);
    assert_int_equal(hits[1], 0);
    assert_int_equal(micro__selector_get_counters(s).lookups, 1);
    advance_ms(49);
    tally(s, "svc", NULL, 10, hits);
    assert_int_equal(micro__selector_get_counters(s).lookups, 1);
    advance_ms(1);
    tally(s, "svc", NULL, 50, hits);
    assert_true(hits[1] > 0);
    assert_int_equal(micro__selector_get_counters(s).lookups, 2);

    /* The registry fails for a while: the cached nodes are served and
     * the outage is logged once, however many selects and refreshes. */
    logcap cap = { 0 };
    micro_log_set_level(MICRO_LOG_NOTICE);
    micro_log_set_logger(cap_log, &cap);
    atomic_store(&fail_get, 1);
    for (int i = 0; i < 6; i++) {
        advance_ms(60);
        tally(s, "svc", NULL, 20, hits);
        assert_int_equal(hits[0] + hits[1], 20);
    }
    micro__selector_counters k = micro__selector_get_counters(s);
    assert_int_equal(cap.warnings, 1);
    assert_int_equal(k.stale_logged, 1);
    assert_int_equal(k.stale_served, 120);
    assert_int_equal(k.lookups, 2 + 6);
    assert_non_null(strstr(cap.last, "svc: registry flaky lookup failed"));
    assert_non_null(strstr(cap.last, "serving the 2 node(s) cached"));
    /* Recovery is logged once too. */
    atomic_store(&fail_get, 0);
    advance_ms(60);
    tally(s, "svc", NULL, 20, hits);
    assert_int_equal(cap.notices, 1);
    assert_int_equal(cap.warnings, 1);
    micro_log_set_logger(NULL, NULL);
    micro_log_set_level(MICRO_LOG_NONE);
    micro_selector_free(s);
    micro_registry_free(r);
}

/* Events that arrive while a lookup is in flight are replayed over its
 * answer: a registry whose get_service waits, after reading its answer,
 * until a node has gone. */
static micro_registry *slow_reg;
static pthread_mutex_t slow_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slow_cv = PTHREAD_COND_INITIALIZER;
static int slow_stage; /* 1: a lookup has its answer; 2: n1 has gone */

static void
slow_set(int stage)
{
    pthread_mutex_lock(&slow_mu);
    slow_stage = stage;
    pthread_cond_broadcast(&slow_cv);
    pthread_mutex_unlock(&slow_mu);
}

static bool
slow_wait(int stage)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&slow_mu);
    while (slow_stage < stage) {
        if (pthread_cond_timedwait(&slow_cv, &slow_mu, &ts) != 0) {
            break;
        }
    }
    bool ok = slow_stage >= stage;
    pthread_mutex_unlock(&slow_mu);
    return ok;
}

static int
slow_get(void *st, const char *name, micro_registry_service **out, size_t *n)
{
    int rc = micro_registry_memory_ops.get_service(st, name, out, n);
    pthread_mutex_lock(&slow_mu);
    bool first = slow_stage == 0;
    pthread_mutex_unlock(&slow_mu);
    if (first) {
        slow_set(1);
        slow_wait(2);
    }
    return rc;
}

static void *
dereg_later(void *arg)
{
    (void) arg;
    if (slow_wait(1)) {
        dereg(slow_reg, "svc", "v1", "n1");
    }
    slow_set(2);
    return NULL;
}

static void
test_cache_events_during_lookup(void **state)
{
    (void) state;
    micro_registry_ops slow = micro_registry_memory_ops;
    slow.name = "slow";
    slow.get_service = slow_get;
    assert_int_equal(micro_registry_new(&slow_reg, &slow, NULL), 0);
    add_node(slow_reg, "svc", "v1", "n1", NULL, NULL);
    add_node(slow_reg, "svc", "v1", "n2", NULL, NULL);
    micro_selector *s = new_det("random", slow_reg, NULL, 41);
    slow_stage = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, dereg_later, NULL), 0);
    /* The lookup answers n1 n2, but n1 left while it was in flight. */
    int hits[4];
    tally(s, "svc", NULL, 20, hits);
    pthread_join(th, NULL);
    has_ids(s, "svc", "n2");
    assert_int_equal(hits[0], 0);
    assert_int_equal(hits[1], 20);
    micro_selector_free(s);
    micro_registry_free(slow_reg);
}

static void
test_front_end(void **state)
{
    (void) state;
    micro_registry *r = three_nodes();
    micro_selector *s = (micro_selector *) 1;
    assert_int_equal(micro_selector_new_by_name(&s, "bogus", r, NULL),
        MICRO_ENOENT);
    assert_null(s);
    assert_int_equal(micro_selector_new_by_name(&s, "", r, NULL), 0);
    micro_selector_free(s);
    assert_int_equal(micro_selector_new(&s, &micro_selector_random_ops, NULL,
                         NULL),
        MICRO_EINVAL);
    micro_selector_ops bad = micro_selector_roundrobin_ops;
    bad.abi = 1; /* before begin/end */
    assert_int_equal(micro_selector_new(&s, &bad, r, NULL), MICRO_EINVAL);
    bad = micro_selector_roundrobin_ops;
    bad.mark = NULL;
    assert_int_equal(micro_selector_new(&s, &bad, r, NULL), MICRO_EINVAL);
    micro_selector_free(NULL);
    micro_selector_mark(NULL, "svc", "n1", -1);
    micro_selector_begin(NULL, "svc", "n1");
    micro_selector_end(NULL, "svc", "n1", 0, 1);
    micro_selector_reset(NULL, NULL);
    /* Every strategy by name; begin/end are optional slots. */
    const char *names[] = { "random", "roundrobin", "leastconn", "p2c" };
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(micro_selector_new_by_name(&s, names[i], r, NULL), 0);
        micro_node n;
        assert_int_equal(micro_selector_select(s, "svc", NULL, &n), 0);
        micro_selector_begin(s, "svc", n.id);
        micro_selector_end(s, "svc", n.id, 0, 10);
        micro_node_clear(&n);
        micro_selector_free(s);
    }
    /* A table without begin/end: end falls back to mark. */
    bad = micro_selector_random_ops;
    bad.begin = NULL;
    bad.end = NULL;
    assert_int_equal(micro_selector_new(&s, &bad, r, NULL), 0);
    micro_selector_end(s, "svc", "n1", MICRO_EIO, -1);
    micro_selector_free(s);
    micro_registry_free(r);
}

#define THREADS 4

typedef struct conc {
    micro_selector *s;
    micro_registry *r;
    int idx;
} conc;

static void *
conc_main(void *arg)
{
    conc *c = arg;
    for (int i = 0; i < 1000; i++) {
        micro_node n;
        int rc = micro_selector_select(c->s, "svc", NULL, &n);
        if (rc != 0) {
            abort();
        }
        micro_selector_begin(c->s, "svc", n.id);
        micro_selector_end(c->s, "svc", n.id, (i % 3) ? 0 : MICRO_EIO, i);
        micro_node_clear(&n);
        if (i % 50 == 0) {
            micro_selector_reset(c->s, (i % 100) ? "svc" : NULL);
        }
        if (c->idx == 0 && i % 20 == 0) {
            micro_registry_service sv;
            memset(&sv, 0, sizeof(sv));
            sv.name = "svc";
            sv.version = "v1";
            micro_node nd = { .id = "n9", .address = "x:9" };
            sv.nodes = &nd;
            sv.n_nodes = 1;
            if (micro_registry_register(c->r, &sv, 0) != 0) {
                abort();
            }
            micro_registry_deregister(c->r, &sv);
        }
    }
    return NULL;
}

static void
test_concurrency(void **state)
{
    (void) state;
    micro_registry *r = three_nodes();
    const char *names[] = { "roundrobin", "leastconn", "p2c" };
    for (size_t k = 0; k < 3; k++) {
        micro_selector *s = NULL;
        assert_int_equal(micro_selector_new_by_name(&s, names[k], r, NULL), 0);
        micro__selector_set_ttl_ms(s, 1);
        pthread_t th[THREADS];
        conc c[THREADS];
        for (int i = 0; i < THREADS; i++) {
            c[i] = (conc) { s, r, i };
            assert_int_equal(
                pthread_create(&th[i], NULL, conc_main, &c[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(th[i], NULL);
        }
        micro_selector_free(s);
    }
    micro_registry_free(r);
}

int
main(void)
{
    micro_log_set_level(MICRO_LOG_NONE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_spread),
        cmocka_unit_test(test_roundrobin_even),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_watch_invalidates),
        cmocka_unit_test(test_leastconn),
        cmocka_unit_test(test_p2c),
        cmocka_unit_test(test_cache_watch_applies),
        cmocka_unit_test(test_cache_ttl_and_stale_log),
        cmocka_unit_test(test_cache_events_during_lookup),
        cmocka_unit_test(test_front_end),
        cmocka_unit_test(test_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
