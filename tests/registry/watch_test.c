/*
 * The watcher rule shared by the memory and mDNS registries (watch.c):
 * unwatch from inside any watch callback never waits (it cannot wait for
 * itself, one dispatch further out on the same thread, or for a callback
 * that waits for it), and from outside every callback it waits until the
 * callback has returned. Each test runs under a watchdog, so that a
 * deadlock fails instead of hanging ctest.
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
#include "support/support.h"

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t) (ms / 1000), (long) (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static micro_registry *
new_mem(void)
{
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new(&r, &micro_registry_memory_ops, NULL),
        0);
    return r;
}

/* Register (or deregister) one node of name. */
static int
reg(micro_registry *r, const char *name, const char *id, bool add)
{
    micro_node n = {.id = (char *) id, .address = (char *) "127.0.0.1:1"};
    micro_registry_service s = {.name = (char *) name,
        .version = (char *) "v1",
        .nodes = &n,
        .n_nodes = 1};
    return add ? micro_registry_register(r, &s, 0)
               : micro_registry_deregister(r, &s);
}

/* A one-shot latch with a bounded wait. */
typedef struct latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int count;
} latch;

#define LATCH_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0}

static void
latch_add(latch *l)
{
    pthread_mutex_lock(&l->mu);
    l->count++;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

/* Wait until count >= want, at most ms; true when reached. */
static bool
latch_wait(latch *l, int want, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long) (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->mu);
    while (l->count < want) {
        if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) != 0) {
            break;
        }
    }
    bool ok = l->count >= want;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

/* --- nested: a callback of B unwatches A from inside A's callback ---- */

typedef struct nested {
    micro_registry *a, *b;
    uint64_t tok_a, tok_b;
    atomic_int a_calls, b_calls;
} nested;

static void
nested_a(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) action;
    nested *n = arg;
    if (strcmp(svc->name, "on-a") != 0) {
        return;
    }
    atomic_fetch_add(&n->a_calls, 1);
    /* B's watchers run now, on this thread, inside this callback. */
    reg(n->b, "on-b", "b1", true);
}

static void
nested_b(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) action;
    nested *n = arg;
    if (strcmp(svc->name, "on-b") != 0) {
        return;
    }
    atomic_fetch_add(&n->b_calls, 1);
    /* A's watcher is running further out on this very thread. */
    micro_registry_unwatch(n->a, n->tok_a);
}

static void
test_unwatch_from_nested_dispatch(void **state)
{
    (void) state;
    t_watchdog(30, "test_unwatch_from_nested_dispatch");
    static nested n;
    n.a = new_mem();
    n.b = new_mem();
    assert_int_equal(micro_registry_watch(n.a, nested_a, &n, &n.tok_a), 0);
    assert_int_equal(micro_registry_watch(n.b, nested_b, &n, &n.tok_b), 0);
    assert_int_equal(reg(n.a, "on-a", "a1", true), 0);
    assert_int_equal(atomic_load(&n.a_calls), 1);
    assert_int_equal(atomic_load(&n.b_calls), 1);
    /* Unwatched: A's callback never runs again; B's still does. */
    assert_int_equal(reg(n.a, "on-a", "a2", true), 0);
    assert_int_equal(reg(n.a, "on-a", "a1", false), 0);
    assert_int_equal(atomic_load(&n.a_calls), 1);
    assert_int_equal(reg(n.b, "on-b", "b2", true), 0);
    assert_int_equal(atomic_load(&n.b_calls), 2);
    micro_registry_unwatch(n.b, n.tok_b);
    micro_registry_free(n.a);
    micro_registry_free(n.b);
    t_watchdog(0, NULL);
}

/* --- crossed: two threads, each in a callback, unwatch each other ---- */

typedef struct crossed {
    micro_registry *a, *b;
    uint64_t tok_a, tok_b;
    latch inside;   /* both callbacks have started */
    latch done;     /* both unwatches have returned */
    atomic_int a_calls, b_calls;
} crossed;

static void
crossed_a(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) action;
    (void) svc;
    crossed *c = arg;
    if (atomic_fetch_add(&c->a_calls, 1) != 0) {
        return;
    }
    latch_add(&c->inside);
    latch_wait(&c->inside, 2, 10000);
    micro_registry_unwatch(c->b, c->tok_b);
    latch_add(&c->done);
}

static void
crossed_b(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) action;
    (void) svc;
    crossed *c = arg;
    if (atomic_fetch_add(&c->b_calls, 1) != 0) {
        return;
    }
    latch_add(&c->inside);
    latch_wait(&c->inside, 2, 10000);
    micro_registry_unwatch(c->a, c->tok_a);
    latch_add(&c->done);
}

static void *
register_on(void *arg)
{
    reg(arg, "x", "n1", true);
    return NULL;
}

static void
test_unwatch_crossed_callbacks(void **state)
{
    (void) state;
    t_watchdog(30, "test_unwatch_crossed_callbacks");
    static crossed c = {.inside = LATCH_INIT, .done = LATCH_INIT};
    c.a = new_mem();
    c.b = new_mem();
    assert_int_equal(micro_registry_watch(c.a, crossed_a, &c, &c.tok_a), 0);
    assert_int_equal(micro_registry_watch(c.b, crossed_b, &c, &c.tok_b), 0);
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, register_on, c.a), 0);
    assert_int_equal(pthread_create(&tb, NULL, register_on, c.b), 0);
    assert_true(latch_wait(&c.done, 2, 20000));
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    /* Both watches are gone. */
    assert_int_equal(reg(c.a, "y", "n2", true), 0);
    assert_int_equal(reg(c.b, "y", "n2", true), 0);
    assert_int_equal(atomic_load(&c.a_calls), 1);
    assert_int_equal(atomic_load(&c.b_calls), 1);
    micro_registry_free(c.a);
    micro_registry_free(c.b);
    t_watchdog(0, NULL);
}

/* --- outside: unwatch waits for a callback running elsewhere -------- */

typedef struct outside {
    micro_registry *r;
    uint64_t tok;
    latch entered;
    latch release;
    atomic_bool returned;  /* the callback */
    atomic_bool unwatched; /* the unwatch */
    atomic_int calls;
} outside;

static void
outside_cb(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) action;
    (void) svc;
    outside *o = arg;
    atomic_fetch_add(&o->calls, 1);
    latch_add(&o->entered);
    latch_wait(&o->release, 1, 20000);
    atomic_store(&o->returned, true);
}

static void *
unwatch_outside(void *arg)
{
    outside *o = arg;
    micro_registry_unwatch(o->r, o->tok);
    /* The callback must be done by now. */
    atomic_store(&o->unwatched, atomic_load(&o->returned));
    return NULL;
}

static void
test_unwatch_outside_waits(void **state)
{
    (void) state;
    t_watchdog(30, "test_unwatch_outside_waits");
    static outside o = {.entered = LATCH_INIT, .release = LATCH_INIT};
    o.r = new_mem();
    assert_int_equal(micro_registry_watch(o.r, outside_cb, &o, &o.tok), 0);
    pthread_t reg_t, unw_t;
    assert_int_equal(pthread_create(&reg_t, NULL, register_on, o.r), 0);
    assert_true(latch_wait(&o.entered, 1, 20000));
    assert_int_equal(pthread_create(&unw_t, NULL, unwatch_outside, &o), 0);
    sleep_ms(50); /* usually the unwatch is waiting by now; either way it
                   * must not return before the callback */
    latch_add(&o.release);
    pthread_join(unw_t, NULL);
    pthread_join(reg_t, NULL);
    assert_true(atomic_load(&o.unwatched));
    assert_int_equal(reg(o.r, "z", "n3", true), 0);
    assert_int_equal(atomic_load(&o.calls), 1);
    micro_registry_free(o.r);
    t_watchdog(0, NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unwatch_from_nested_dispatch),
        cmocka_unit_test(test_unwatch_crossed_callbacks),
        cmocka_unit_test(test_unwatch_outside_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
