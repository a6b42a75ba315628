/* The memory registry, through the registry front end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmicro/micro.h"

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* A one-node record; free with micro_registry_service_clear. */
static void
make_svc(micro_registry_service *s, const char *name, const char *version,
    const char *id, const char *addr)
{
    memset(s, 0, sizeof(*s));
    s->name = strdup(name);
    s->version = strdup(version);
    if (id != NULL) {
        s->n_nodes = 1;
        s->nodes = calloc(1, sizeof(micro_node));
        s->nodes[0].id = strdup(id);
        s->nodes[0].address = strdup(addr);
    }
}

static micro_registry *
new_mem(void)
{
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new(&r, &micro_registry_memory_ops, NULL),
        0);
    assert_non_null(r);
    assert_string_equal(micro_registry_name(r), "memory");
    return r;
}

static void
test_basic(void **state)
{
    (void) state;
    micro_registry *r = new_mem();
    micro_registry_service *out = NULL;
    size_t n = 99;
    assert_int_equal(micro_registry_get_service(r, "greeter", &out, &n),
        MICRO_ENOSERVICE);
    assert_null(out);
    assert_int_equal(n, 0);

    micro_registry_service s;
    make_svc(&s, "greeter", "latest", "greeter-1", "127.0.0.1:1");
    assert_int_equal(micro_metadata_set(&s.nodes[0].metadata, "k", "v"), 0);
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    micro_registry_service_clear(&s);
    make_svc(&s, "greeter", "latest", "greeter-2", "127.0.0.1:2");
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    micro_registry_service_clear(&s);
    make_svc(&s, "other", "1.0", "other-1", "127.0.0.1:3");
    assert_int_equal(micro_registry_register(r, &s, 0), 0);

    assert_int_equal(micro_registry_get_service(r, "greeter", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].name, "greeter");
    assert_string_equal(out[0].version, "latest");
    assert_int_equal(out[0].n_nodes, 2);
    assert_string_equal(out[0].nodes[0].id, "greeter-1");
    assert_string_equal(out[0].nodes[0].address, "127.0.0.1:1");
    assert_string_equal(
        micro_metadata_get(&out[0].nodes[0].metadata, "k"), "v");
    assert_string_equal(out[0].nodes[1].id, "greeter-2");
    micro_registry_services_free(out, n);

    assert_int_equal(micro_registry_list_services(r, &out, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].name, "greeter");
    assert_string_equal(out[1].name, "other");
    assert_string_equal(out[1].version, "1.0");
    micro_registry_services_free(out, n);

    /* Deregister "other" entirely, and one greeter node. */
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    micro_registry_service_clear(&s);
    assert_int_equal(micro_registry_get_service(r, "other", &out, &n),
        MICRO_ENOSERVICE);
    make_svc(&s, "greeter", "latest", "greeter-1", "");
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    /* Deregistering what is not there is not an error. */
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    micro_registry_service_clear(&s);
    assert_int_equal(micro_registry_get_service(r, "greeter", &out, &n), 0);
    assert_int_equal(out[0].n_nodes, 1);
    assert_string_equal(out[0].nodes[0].id, "greeter-2");
    micro_registry_services_free(out, n);
    make_svc(&s, "greeter", "latest", "greeter-2", "");
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    micro_registry_service_clear(&s);
    assert_int_equal(micro_registry_get_service(r, "greeter", &out, &n),
        MICRO_ENOSERVICE);
    assert_int_equal(micro_registry_list_services(r, &out, &n), 0);
    assert_int_equal(n, 0);
    micro_registry_services_free(out, n);
    micro_registry_free(r);
}

static void
test_versions_and_update(void **state)
{
    (void) state;
    micro_registry *r = new_mem();
    micro_registry_service s;
    make_svc(&s, "greeter", "v1", "g-1", "a:1");
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    micro_registry_service_clear(&s);
    make_svc(&s, "greeter", "v2", "g-2", "a:2");
    s.n_endpoints = 1;
    s.endpoints = calloc(1, sizeof(micro_endpoint));
    s.endpoints[0].name = strdup("Greeter.Hello");
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    micro_registry_service_clear(&s);

    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(r, "greeter", &out, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].version, "v1");
    assert_string_equal(out[1].version, "v2");
    assert_int_equal(out[1].n_endpoints, 1);
    micro_registry_services_free(out, n);
    assert_int_equal(micro_registry_list_services(r, &out, &n), 0);
    assert_int_equal(n, 1);
    micro_registry_services_free(out, n);

    /* Re-registering v2 updates the node and replaces the endpoints and
     * metadata of the version. */
    make_svc(&s, "greeter", "v2", "g-2", "a:22");
    assert_int_equal(micro_metadata_set(&s.metadata, "m", "1"), 0);
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    micro_registry_service_clear(&s);
    assert_int_equal(micro_registry_get_service(r, "greeter", &out, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(out[1].n_nodes, 1);
    assert_string_equal(out[1].nodes[0].address, "a:22");
    assert_int_equal(out[1].n_endpoints, 0);
    assert_string_equal(micro_metadata_get(&out[1].metadata, "m"), "1");
    micro_registry_services_free(out, n);
    micro_registry_free(r);
}

static void
test_ttl(void **state)
{
    (void) state;
    micro_registry *r = new_mem();
    micro_registry_service s;
    make_svc(&s, "short", "1", "short-1", "a:1");
    assert_int_equal(micro_registry_register(r, &s, 50), 0);
    micro_registry_service_clear(&s);
    make_svc(&s, "short", "1", "short-2", "a:2");
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    micro_registry_service_clear(&s);
    make_svc(&s, "gone", "1", "gone-1", "a:3");
    assert_int_equal(micro_registry_register(r, &s, 50), 0);

    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(r, "gone", &out, &n), 0);
    micro_registry_services_free(out, n);
    /* A refresh before expiry extends it. */
    sleep_ms(30);
    assert_int_equal(micro_registry_register(r, &s, 50), 0);
    sleep_ms(30);
    assert_int_equal(micro_registry_get_service(r, "gone", &out, &n), 0);
    micro_registry_services_free(out, n);
    micro_registry_service_clear(&s);

    sleep_ms(80);
    assert_int_equal(micro_registry_get_service(r, "gone", &out, &n),
        MICRO_ENOSERVICE);
    assert_int_equal(micro_registry_get_service(r, "short", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].n_nodes, 1);
    assert_string_equal(out[0].nodes[0].id, "short-2");
    micro_registry_services_free(out, n);
    assert_int_equal(micro_registry_list_services(r, &out, &n), 0);
    assert_int_equal(n, 1);
    micro_registry_services_free(out, n);
    micro_registry_free(r);
}

typedef struct seen {
    int create;
    int update;
    int del;
    char last_node[64];
    char last_service[64];
} seen;

static void
on_event(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    seen *w = arg;
    switch (action) {
    case MICRO_REGISTRY_CREATE:
        w->create++;
        break;
    case MICRO_REGISTRY_UPDATE:
        w->update++;
        break;
    case MICRO_REGISTRY_DELETE:
        w->del++;
        break;
    }
    snprintf(w->last_service, sizeof(w->last_service), "%s", svc->name);
    snprintf(w->last_node, sizeof(w->last_node), "%s",
        svc->n_nodes > 0 ? svc->nodes[0].id : "");
}

static void
test_watch(void **state)
{
    (void) state;
    micro_registry *r = new_mem();
    seen w = { 0 };
    uint64_t token = 0;
    assert_int_equal(micro_registry_watch(r, on_event, &w, &token), 0);

    micro_registry_service s;
    make_svc(&s, "greeter", "1", "g-1", "a:1");
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    assert_int_equal(w.create, 1);
    assert_string_equal(w.last_node, "g-1");
    assert_string_equal(w.last_service, "greeter");
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    assert_int_equal(w.update, 1);
    assert_int_equal(w.create, 1);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    assert_int_equal(w.del, 1);
    assert_string_equal(w.last_node, "g-1");
    micro_registry_service_clear(&s);

    /* Expiry is a delete too, seen on the next access. */
    make_svc(&s, "eph", "1", "e-1", "a:2");
    assert_int_equal(micro_registry_register(r, &s, 20), 0);
    micro_registry_service_clear(&s);
    assert_int_equal(w.create, 2);
    sleep_ms(40);
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(r, "eph", &out, &n),
        MICRO_ENOSERVICE);
    assert_int_equal(w.del, 2);
    assert_string_equal(w.last_node, "e-1");
    assert_string_equal(w.last_service, "eph");

    /* After unwatch, silence. */
    micro_registry_unwatch(r, token);
    micro_registry_unwatch(r, token);
    make_svc(&s, "greeter", "1", "g-9", "a:9");
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    micro_registry_service_clear(&s);
    assert_int_equal(w.create, 2);
    micro_registry_free(r);
}

#define THREADS 4
#define ITERS 1000

typedef struct worker {
    micro_registry *r;
    int idx;
    int events;
} worker;

static void
count_event(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) action;
    (void) svc;
    __atomic_add_fetch((int *) arg, 1, __ATOMIC_RELAXED);
}

static void *
worker_main(void *arg)
{
    worker *w = arg;
    char id[32];
    char name[32];
    snprintf(name, sizeof(name), "svc-%d", w->idx % 2);
    for (int i = 0; i < ITERS; i++) {
        snprintf(id, sizeof(id), "n-%d-%d", w->idx, i % 7);
        micro_registry_service s;
        make_svc(&s, name, (i & 1) ? "a" : "b", id, "x:1");
        if (micro_registry_register(w->r, &s, (i % 3) == 0 ? 1 : 0) != 0) {
            abort();
        }
        micro_registry_service *out = NULL;
        size_t n = 0;
        int rc = micro_registry_get_service(w->r, name, &out, &n);
        if (rc != 0 && rc != MICRO_ENOSERVICE) {
            abort();
        }
        micro_registry_services_free(out, n);
        if (i % 5 == 0) {
            rc = micro_registry_list_services(w->r, &out, &n);
            if (rc != 0) {
                abort();
            }
            micro_registry_services_free(out, n);
        }
        if (i % 2 == 0) {
            micro_registry_deregister(w->r, &s);
        }
        if (i % 100 == 0) {
            uint64_t tok;
            if (micro_registry_watch(w->r, count_event, &w->events, &tok) ==
                0) {
                micro_registry_unwatch(w->r, tok);
            }
        }
        micro_registry_service_clear(&s);
    }
    return NULL;
}

static void
test_concurrency(void **state)
{
    (void) state;
    micro_registry *r = new_mem();
    int events = 0;
    uint64_t token;
    assert_int_equal(micro_registry_watch(r, count_event, &events, &token), 0);
    pthread_t th[THREADS];
    worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker) { r, i, 0 };
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    micro_registry_unwatch(r, token);
    assert_true(__atomic_load_n(&events, __ATOMIC_RELAXED) >= THREADS * ITERS);
    micro_registry_free(r);
}

/* A table without watch, to check the front end's optional slots. */
static int
nw_init(void *st, const micro_options *o)
{
    return micro_registry_memory_ops.init(st, o);
}

static const micro_registry_ops no_watch_ops = {
    .abi = MICRO_REGISTRY_ABI,
    .name = "nowatch",
    .state_size = 4096,
    .init = nw_init,
    .register_service = NULL, /* filled in the test */
};

static void
test_front_end(void **state)
{
    (void) state;
    micro_registry *r = (micro_registry *) 1;
    assert_int_equal(micro_registry_new(&r, NULL, NULL), MICRO_EINVAL);
    assert_null(r);
    assert_int_equal(micro_registry_new(NULL, &micro_registry_memory_ops,
                         NULL),
        MICRO_EINVAL);

    micro_registry_ops bad = micro_registry_memory_ops;
    bad.abi = 99;
    assert_int_equal(micro_registry_new(&r, &bad, NULL), MICRO_EINVAL);
    bad = micro_registry_memory_ops;
    bad.get_service = NULL;
    assert_int_equal(micro_registry_new(&r, &bad, NULL), MICRO_EINVAL);
    assert_int_equal(micro_registry_new(&r, &no_watch_ops, NULL),
        MICRO_EINVAL);

    micro_registry_ops nw = micro_registry_memory_ops;
    nw.name = no_watch_ops.name;
    nw.watch = NULL;
    nw.unwatch = NULL;
    assert_int_equal(micro_registry_new(&r, &nw, NULL), 0);
    uint64_t tok;
    assert_int_equal(micro_registry_watch(r, on_event, NULL, &tok),
        MICRO_ENOTSUP);
    micro_registry_unwatch(r, 1);
    micro_registry_free(r);

    assert_int_equal(micro_registry_new_by_name(&r, "memory", NULL), 0);
    assert_string_equal(micro_registry_name(r), "memory");

    /* Argument checks. */
    micro_registry_service s;
    make_svc(&s, "x", "1", "x-1", "a:1");
    assert_int_equal(micro_registry_register(r, NULL, 0), MICRO_EINVAL);
    assert_int_equal(micro_registry_register(r, &s, -1), MICRO_EINVAL);
    free(s.nodes[0].id);
    s.nodes[0].id = NULL;
    assert_int_equal(micro_registry_register(r, &s, 0), MICRO_EINVAL);
    assert_int_equal(micro_registry_deregister(r, &s), MICRO_EINVAL);
    s.nodes[0].id = strdup("");
    assert_int_equal(micro_registry_register(r, &s, 0), MICRO_EINVAL);
    free(s.name);
    s.name = strdup("");
    assert_int_equal(micro_registry_register(r, &s, 0), MICRO_EINVAL);
    micro_registry_service_clear(&s);
    micro_registry_service *out = (micro_registry_service *) 1;
    size_t n = 5;
    assert_int_equal(micro_registry_get_service(r, "", &out, &n),
        MICRO_EINVAL);
    assert_null(out);
    assert_int_equal(micro_registry_get_service(r, NULL, &out, &n),
        MICRO_EINVAL);
    assert_int_equal(micro_registry_get_service(r, "x", NULL, &n),
        MICRO_EINVAL);
    assert_int_equal(micro_registry_list_services(r, &out, NULL),
        MICRO_EINVAL);
    assert_int_equal(micro_registry_watch(r, NULL, NULL, &tok), MICRO_EINVAL);
    micro_registry_free(r);
    micro_registry_free(NULL);

    /* Every registry name is built: creating one does not connect. */
    assert_int_equal(micro_registry_new_by_name(&r, "consul", NULL), 0);
    assert_string_equal(micro_registry_name(r), "consul");
    micro_registry_free(r);
    r = (micro_registry *) 1;
    assert_int_equal(micro_registry_new_by_name(&r, "bogus", NULL),
        MICRO_ENOENT);
    assert_int_equal(micro_registry_new_by_name(&r, "", NULL), MICRO_EINVAL);
}

int
main(void)
{
    micro_log_set_level(MICRO_LOG_NONE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_versions_and_update),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_front_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
