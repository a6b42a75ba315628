/* Selectors over the memory registry: strategies, filters, back-off, cache. */
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

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0) {
    }
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
    micro_selector *s = NULL;
    assert_int_equal(micro_selector_new_by_name(&s, NULL, r, NULL), 0);
    int hits[4];
    tally(s, "svc", NULL, 3000, hits);
    for (int i = 0; i < 3; i++) {
        assert_in_range(hits[i], 600, 1350);
    }
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
    sleep_ms(150);
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
    micro_selector *s = NULL;
    assert_int_equal(micro_selector_new_by_name(&s, "random", r, o), 0);
    micro_options_free(o);
    check_backoff(s);
    micro_selector_free(s);

    /* The same with roundrobin, and the back-off set by the test hook. */
    assert_int_equal(micro_selector_new_by_name(&s, "roundrobin", r, NULL), 0);
    micro__selector_set_backoff_ms(s, 100);
    check_backoff(s);
    micro_selector_free(s);
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
    micro_selector *s = NULL;
    assert_int_equal(micro_selector_new_by_name(&s, "random", r, o), 0);
    micro_options_free(o);

    micro_node n;
    assert_int_equal(micro_selector_select(s, "svc", NULL, &n), 0);
    assert_string_equal(n.id, "n1");
    micro_node_clear(&n);

    /* The registry fails and the entry expires: served stale. */
    atomic_store(&fail_get, 1);
    add_node(r, "svc", "v1", "n2", NULL, NULL);
    sleep_ms(50);
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

static void
test_front_end(void **state)
{
    (void) state;
    micro_registry *r = three_nodes();
    micro_selector *s = (micro_selector *) 1;
    assert_int_equal(micro_selector_new_by_name(&s, "leastconn", r, NULL),
        MICRO_ENOENT);
    assert_null(s);
    assert_int_equal(micro_selector_new_by_name(&s, "", r, NULL), 0);
    micro_selector_free(s);
    assert_int_equal(micro_selector_new(&s, &micro_selector_random_ops, NULL,
                         NULL),
        MICRO_EINVAL);
    micro_selector_ops bad = micro_selector_roundrobin_ops;
    bad.abi = 2;
    assert_int_equal(micro_selector_new(&s, &bad, r, NULL), MICRO_EINVAL);
    bad = micro_selector_roundrobin_ops;
    bad.mark = NULL;
    assert_int_equal(micro_selector_new(&s, &bad, r, NULL), MICRO_EINVAL);
    micro_selector_free(NULL);
    micro_selector_mark(NULL, "svc", "n1", -1);
    micro_selector_reset(NULL, NULL);
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
        micro_selector_mark(c->s, "svc", n.id, (i % 3) ? 0 : MICRO_EIO);
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
    micro_selector *s = NULL;
    assert_int_equal(micro_selector_new_by_name(&s, "roundrobin", r, NULL), 0);
    micro__selector_set_ttl_ms(s, 1);
    pthread_t th[THREADS];
    conc c[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (conc) { s, r, i };
        assert_int_equal(pthread_create(&th[i], NULL, conc_main, &c[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    micro_selector_free(s);
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
        cmocka_unit_test(test_front_end),
        cmocka_unit_test(test_concurrency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
