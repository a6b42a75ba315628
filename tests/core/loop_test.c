/* The loop thread and the worker pool. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "core/loop_internal.h"

typedef struct counter {
    micro_loop *loop;
    atomic_int n;
    atomic_int off_loop;
} counter;

static void
bump(void *arg)
{
    counter *c = arg;
    if (!micro_loop_is_current(c->loop)) {
        atomic_fetch_add(&c->off_loop, 1);
    }
    atomic_fetch_add(&c->n, 1);
}

static void *
poster(void *arg)
{
    counter *c = arg;
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(micro_loop_post(c->loop, bump, c), 0);
    }
    return NULL;
}

/* Posts from many threads all run, on the loop thread, and the loop runs
 * what was queued before it stops. */
static void
test_post_from_threads(void **state)
{
    (void) state;
    counter c = {0};
    assert_int_equal(micro_loop_new(&c.loop), 0);
    assert_false(micro_loop_is_current(c.loop));
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        pthread_create(&th[i], NULL, poster, &c);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
    }
    micro_loop_free(c.loop);
    assert_int_equal(atomic_load(&c.n), 20000);
    assert_int_equal(atomic_load(&c.off_loop), 0);
}

static int
on_loop(void *arg)
{
    micro_loop *l = arg;
    return micro_loop_is_current(l) ? 42 : -1;
}

static void
test_loop_call(void **state)
{
    (void) state;
    micro_loop *l = NULL;
    assert_int_equal(micro_loop_new(&l), 0);
    assert_int_equal(micro__loop_call(l, on_loop, l), 42);
    assert_non_null(micro_loop_uv(l));
    micro_loop_free(l);
    micro_loop_free(NULL);
    assert_int_equal(micro_loop_post(NULL, bump, NULL), MICRO_EINVAL);
}

typedef struct job {
    micro__task task;
    atomic_int *done;
    int sleep_ms;
} job;

static void
run_job(micro__task *t)
{
    job *j = (job *) t;
    struct timespec ts = {0, (long) j->sleep_ms * 1000000L};
    nanosleep(&ts, NULL);
    atomic_fetch_add(j->done, 1);
}

/* Four workers run 8 blocking 50 ms jobs in about 100 ms, and free runs
 * everything queued before returning. */
static void
test_pool(void **state)
{
    (void) state;
    micro__pool *p = NULL;
    atomic_int done = 0;
    assert_int_equal(micro__pool_new(&p, 4, "test"), 0);
    job jobs[8];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 8; i++) {
        jobs[i].task.fn = run_job;
        jobs[i].done = &done;
        jobs[i].sleep_ms = 50;
        assert_int_equal(micro__pool_submit(p, &jobs[i].task), 0);
    }
    while (atomic_load(&done) < 8) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 +
        (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 95);
    assert_true(ms < 400); /* not 8 x 50 in series */
    /* Queued work survives free. */
    for (int i = 0; i < 8; i++) {
        jobs[i].sleep_ms = 1;
        assert_int_equal(micro__pool_submit(p, &jobs[i].task), 0);
    }
    micro__pool_free(p);
    assert_int_equal(atomic_load(&done), 16);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_from_threads),
        cmocka_unit_test(test_loop_call),
        cmocka_unit_test(test_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
