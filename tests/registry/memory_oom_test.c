/*
 * Out-of-memory torture (tests/support/failalloc.h) of the memory
 * registry through its front end: register (with a watcher attached, so
 * that events are built and dispatched), lookup, list, watch and
 * deregister. Each allocation fails in turn: the call returns MICRO_ENOMEM
 * or absorbs the failure (watch events are best effort), leaves either the
 * whole change or none of it, leaks nothing, and the registry keeps
 * working.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmicro/micro.h"
#include "support/failalloc.h"

typedef struct regcase {
    micro_registry *r;
    uint64_t tok;
    bool watching;
    int events;
    micro_registry_service svc; /* greeter, 2 nodes, endpoints, metadata */
    micro_registry_service *out;
    size_t n;
} regcase;

static void
count_event(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) action;
    (void) svc;
    ((regcase *) arg)->events++;
}

static void
make_svc(micro_registry_service *s)
{
    static const char json[] =
        "{\"name\":\"greeter\",\"version\":\"v1\",\"metadata\":{\"a\":\"b\"},"
        "\"endpoints\":[{\"name\":\"Greeter.Hello\",\"request\":{\"name\":"
        "\"Request\",\"type\":\"Request\",\"values\":[{\"name\":\"name\","
        "\"type\":\"string\",\"values\":null}]},\"response\":null,"
        "\"metadata\":{\"stream\":\"false\"}}],\"nodes\":[{\"id\":\"n1\","
        "\"address\":\"127.0.0.1:1\",\"metadata\":{\"zone\":\"a\"}},{\"id\":"
        "\"n2\",\"address\":\"127.0.0.1:2\",\"metadata\":null}]}";
    assert_int_equal(
        micro_registry_service_from_json(json, sizeof(json) - 1, s), 0);
}

/* The registry holds greeter with both nodes, whole. */
static void
expect_greeter(micro_registry *r)
{
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(r, "greeter", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].version, "v1");
    assert_int_equal(out[0].n_nodes, 2);
    assert_int_equal(out[0].n_endpoints, 1);
    assert_string_equal(out[0].endpoints[0].name, "Greeter.Hello");
    assert_string_equal(
        micro_metadata_get(&out[0].nodes[0].metadata, "zone") != NULL
            ? micro_metadata_get(&out[0].nodes[0].metadata, "zone")
            : micro_metadata_get(&out[0].nodes[1].metadata, "zone"),
        "a");
    micro_registry_services_free(out, n);
}

static int
setup_empty(void *arg)
{
    regcase *c = arg;
    c->events = 0;
    c->out = NULL;
    c->n = 0;
    int rc = micro_registry_new(&c->r, &micro_registry_memory_ops, NULL);
    if (rc == 0) {
        rc = micro_registry_watch(c->r, count_event, c, &c->tok);
        c->watching = rc == 0;
    }
    return rc;
}

static int
setup_registered(void *arg)
{
    regcase *c = arg;
    int rc = setup_empty(c);
    if (rc == 0) {
        rc = micro_registry_register(c->r, &c->svc, 0);
        c->events = 0;
    }
    return rc;
}

static void
teardown(void *arg)
{
    regcase *c = arg;
    if (c->watching) {
        micro_registry_unwatch(c->r, c->tok);
        c->watching = false;
    }
    micro_registry_services_free(c->out, c->n);
    c->out = NULL;
    c->n = 0;
    micro_registry_free(c->r);
    c->r = NULL;
}

/* --- register -------------------------------------------------------- */

static int
op_register(void *arg)
{
    regcase *c = arg;
    return micro_registry_register(c->r, &c->svc, 0);
}

static int
check_register(void *arg, int rc)
{
    regcase *c = arg;
    if (rc == 0) {
        expect_greeter(c->r);
    } else {
        /* All or nothing. */
        micro_registry_service *out = NULL;
        size_t n = 0;
        assert_int_equal(micro_registry_get_service(c->r, "greeter", &out,
                             &n),
            MICRO_ENOSERVICE);
        assert_int_equal(c->events, 0);
        assert_int_equal(micro_registry_register(c->r, &c->svc, 0), 0);
        expect_greeter(c->r);
    }
    /* Events are best effort; the watcher still gets the next. */
    int before = c->events;
    micro_registry_service other;
    make_svc(&other);
    free(other.name);
    other.name = strdup("other");
    assert_int_equal(micro_registry_register(c->r, &other, 0), 0);
    assert_true(c->events > before);
    micro_registry_service_clear(&other);
    return 0;
}

/* --- lookup and list ------------------------------------------------- */

static int
op_lookup(void *arg)
{
    regcase *c = arg;
    return micro_registry_get_service(c->r, "greeter", &c->out, &c->n);
}

static int
check_lookup(void *arg, int rc)
{
    regcase *c = arg;
    if (rc == 0) {
        assert_int_equal(c->n, 1);
        assert_int_equal(c->out[0].n_nodes, 2);
    } else {
        assert_null(c->out);
        assert_int_equal(c->n, 0);
    }
    expect_greeter(c->r);
    return 0;
}

static int
op_list(void *arg)
{
    regcase *c = arg;
    return micro_registry_list_services(c->r, &c->out, &c->n);
}

static int
check_list(void *arg, int rc)
{
    regcase *c = arg;
    if (rc == 0) {
        assert_int_equal(c->n, 1);
        assert_string_equal(c->out[0].name, "greeter");
    } else {
        assert_null(c->out);
    }
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_list_services(c->r, &out, &n), 0);
    assert_int_equal(n, 1);
    micro_registry_services_free(out, n);
    return 0;
}

/* --- watch ----------------------------------------------------------- */

static int
setup_nowatch(void *arg)
{
    regcase *c = arg;
    c->events = 0;
    c->watching = false;
    return micro_registry_new(&c->r, &micro_registry_memory_ops, NULL);
}

static int
op_watch(void *arg)
{
    regcase *c = arg;
    int rc = micro_registry_watch(c->r, count_event, c, &c->tok);
    c->watching = rc == 0;
    return rc;
}

static int
check_watch(void *arg, int rc)
{
    regcase *c = arg;
    if (rc != 0) {
        assert_int_equal(micro_registry_watch(c->r, count_event, c, &c->tok),
            0);
        c->watching = true;
    }
    assert_int_equal(micro_registry_register(c->r, &c->svc, 0), 0);
    assert_int_equal(c->events, 2); /* one per node */
    expect_greeter(c->r);
    return 0;
}

/* --- deregister ------------------------------------------------------ */

static int
op_deregister(void *arg)
{
    regcase *c = arg;
    micro_registry_service one = c->svc;
    one.n_nodes = 1; /* n1 goes, n2 stays */
    return micro_registry_deregister(c->r, &one);
}

static int
check_deregister(void *arg, int rc)
{
    regcase *c = arg;
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(c->r, "greeter", &out, &n),
        0);
    assert_int_equal(out[0].n_nodes, rc == 0 ? 1 : 2);
    micro_registry_services_free(out, n);
    assert_int_equal(micro_registry_deregister(c->r, &c->svc), 0);
    assert_int_equal(micro_registry_get_service(c->r, "greeter", &out, &n),
        MICRO_ENOSERVICE);
    return 0;
}

static void
test_memory_registry(void **state)
{
    (void) state;
    static regcase c;
    make_svc(&c.svc);
    const failalloc_case cases[] = {
        {.name = "memory registry: register (watched)",
            .arg = &c,
            .setup = setup_empty,
            .op = op_register,
            .check = check_register,
            .teardown = teardown},
        {.name = "memory registry: get_service",
            .arg = &c,
            .setup = setup_registered,
            .op = op_lookup,
            .check = check_lookup,
            .teardown = teardown},
        {.name = "memory registry: list_services",
            .arg = &c,
            .setup = setup_registered,
            .op = op_list,
            .check = check_list,
            .teardown = teardown},
        {.name = "memory registry: watch",
            .arg = &c,
            .setup = setup_nowatch,
            .op = op_watch,
            .check = check_watch,
            .teardown = teardown},
        {.name = "memory registry: deregister (watched)",
            .arg = &c,
            .setup = setup_registered,
            .op = op_deregister,
            .check = check_deregister,
            .teardown = teardown},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_true(failalloc_run(&cases[i]) > 0);
    }
    micro_registry_service_clear(&c.svc);
}

int
main(void)
{
    if (failalloc_install() != 0) {
        fprintf(stderr, "memory_oom_test: micro_init refused the hooks\n");
        return 1;
    }
    micro_log_set_level(MICRO_LOG_NONE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
