/* failalloc: counting, failing allocator hooks and the torture driver. */
#include "support/failalloc.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmicro/micro.h>

/* Per thread: see the header. */
static _Thread_local struct {
    bool armed;
    bool every_after;
    size_t fail_at; /* 0: none */
    size_t count;
    size_t failed;
} tl;

/* The group (failalloc_join): members count here while it is armed. */
static _Thread_local bool tl_member;
static atomic_bool g_armed;
static atomic_bool g_every_after;
static atomic_size_t g_fail_at;
static atomic_size_t g_count;
static atomic_size_t g_failed;

static bool
group_should_fail(void)
{
    if (!tl_member || !atomic_load(&g_armed)) {
        return false;
    }
    size_t n = atomic_fetch_add(&g_count, 1) + 1;
    size_t at = atomic_load(&g_fail_at);
    bool fail = at != 0 &&
        (n == at || (atomic_load(&g_every_after) && n > at));
    if (fail) {
        atomic_fetch_add(&g_failed, 1);
    }
    return fail;
}

static bool
should_fail(void)
{
    if (!tl.armed) {
        return group_should_fail();
    }
    tl.count++;
    bool fail = tl.fail_at != 0 &&
        (tl.count == tl.fail_at || (tl.every_after && tl.count > tl.fail_at));
    tl.failed += fail;
    return fail;
}

static void *
fa_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n);
}

static void *
fa_calloc(size_t n, size_t m)
{
    return should_fail() ? NULL : calloc(n, m);
}

static void *
fa_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n);
}

static void
fa_free(void *p)
{
    free(p);
}

int
failalloc_install(void)
{
    micro_init_params p = {.size = sizeof(p),
        .malloc_fn = fa_malloc,
        .calloc_fn = fa_calloc,
        .realloc_fn = fa_realloc,
        .free_fn = fa_free};
    return micro_init(&p);
}

void
failalloc_arm(size_t n, bool every_after)
{
    tl.armed = true;
    tl.every_after = every_after;
    tl.fail_at = n;
    tl.count = 0;
    tl.failed = 0;
}

void
failalloc_fail_at(size_t n)
{
    failalloc_arm(n, false);
}

void
failalloc_fail_from(size_t n)
{
    failalloc_arm(n, true);
}

size_t
failalloc_disarm(void)
{
    tl.armed = false;
    tl.fail_at = 0;
    return tl.count;
}

size_t
failalloc_count(void)
{
    return tl.count;
}

size_t
failalloc_failed(void)
{
    return tl.failed;
}

void
failalloc_join(void)
{
    tl_member = true;
}

void
failalloc_leave(void)
{
    tl_member = false;
}

void
failalloc_group_arm(size_t n, bool every_after)
{
    atomic_store(&g_armed, false);
    atomic_store(&g_fail_at, n);
    atomic_store(&g_every_after, every_after);
    atomic_store(&g_count, 0);
    atomic_store(&g_failed, 0);
    atomic_store(&g_armed, true);
}

size_t
failalloc_group_disarm(void)
{
    atomic_store(&g_armed, false);
    atomic_store(&g_fail_at, 0);
    return atomic_load(&g_count);
}

size_t
failalloc_group_count(void)
{
    return atomic_load(&g_count);
}

size_t
failalloc_group_failed(void)
{
    return atomic_load(&g_failed);
}

static void
arm(const failalloc_case *c, size_t n, bool every_after)
{
    if (c->group) {
        failalloc_group_arm(n, every_after);
    } else {
        failalloc_arm(n, every_after);
    }
}

/* Disarm; the count, and how many failed. */
static size_t
disarm(const failalloc_case *c, size_t *failed)
{
    if (c->group) {
        *failed = failalloc_group_failed();
        return failalloc_group_disarm();
    }
    *failed = failalloc_failed();
    return failalloc_disarm();
}

static bool
allowed(const failalloc_case *c, int rc)
{
    if (c->allowed == NULL) {
        return rc == MICRO_ENOMEM;
    }
    for (const int *a = c->allowed; *a != 0; a++) {
        if (*a == rc) {
            return true;
        }
    }
    return false;
}

static void
run_once(const failalloc_case *c, size_t fail_at, bool every_after,
    size_t n)
{
    if (c->setup != NULL) {
        assert_int_equal(c->setup(c->arg), 0);
    }
    arm(c, fail_at, every_after);
    int rc = c->op(c->arg);
    size_t failed = 0;
    disarm(c, &failed);
    if (rc != 0 && !allowed(c, rc)) {
        fail_msg("%s: with allocation %zu of %zu failing%s, it returned %s "
                 "(%d), not one of the codes allowed",
            c->name, fail_at, n, every_after ? " (and every later one)" : "",
            micro_err_name(rc), rc);
    }
    if (rc != 0 && failed == 0) {
        fail_msg("%s: returned %s with no allocation failing", c->name,
            micro_err_name(rc));
    }
    assert_int_equal(c->check(c->arg, rc), 0);
    if (c->teardown != NULL) {
        c->teardown(c->arg);
    }
}

size_t
failalloc_run(const failalloc_case *c)
{
    /* Nothing fails: count. */
    if (c->setup != NULL) {
        assert_int_equal(c->setup(c->arg), 0);
    }
    arm(c, 0, false);
    int rc = c->op(c->arg);
    size_t failed = 0;
    size_t n = disarm(c, &failed);
    (void) failed;
    if (rc != 0) {
        fail_msg("%s: fails with no allocation failing: %s", c->name,
            micro_err_name(rc));
    }
    assert_int_equal(c->check(c->arg, 0), 0);
    if (c->teardown != NULL) {
        c->teardown(c->arg);
    }
    for (int every = 0; every < 2; every++) {
        for (size_t i = 1; i <= n; i++) {
            run_once(c, i, every == 1, n);
        }
    }
    print_message("%s: %zu allocations, each failed in turn\n", c->name, n);
    return n;
}
