/*
 * Out-of-memory torture (tests/support/failalloc.h) of the broker front
 * end over the memory broker: subscribe, and publish with delivery to a
 * broadcast subscriber and a queue group. Each allocation on the calling
 * thread fails in turn: the call returns MICRO_ENOMEM or succeeds, a
 * failed publish delivers nothing, nothing leaks, and the broker keeps
 * delivering. (Delivery threads are not tortured: failalloc counts the
 * arming thread only.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "bt.h"
#include "support/failalloc.h"

typedef struct bcase {
    micro_broker *b;
    micro_sub *sub;
    micro_sub *members[2];
    bt_counter c;     /* the broadcast subscriber */
    bt_counter q[2];  /* the queue members */
    micro_msg *msg;
} bcase;

static int
setup_broker(void *arg)
{
    bcase *c = arg;
    memset(&c->c, 0, sizeof(c->c));
    memset(c->q, 0, sizeof(c->q));
    c->sub = NULL;
    return micro_broker_new(&c->b, &micro_broker_memory_ops, NULL, NULL,
        NULL);
}

static void
teardown(void *arg)
{
    bcase *c = arg;
    micro_broker_free(c->b);
    c->b = NULL;
    micro_msg_free(c->msg);
    c->msg = NULL;
}

/* Received by sub (at enqueue), waiting up to 5 s for want handler calls
 * on counter. */
static uint64_t
received(micro_sub *s, bt_counter *counter, long want)
{
    assert_true(bt_wait(&counter->n, want, 5000));
    micro_sub_stats st;
    micro_sub_get_stats(s, &st);
    return st.received;
}

/* --- subscribe ------------------------------------------------------- */

static int
op_subscribe(void *arg)
{
    bcase *c = arg;
    micro_sub_opts o = {.queue_limit = 16};
    return micro_broker_subscribe(c->b, "t", &o, bt_handler, &c->c, &c->sub);
}

static int
check_subscribe(void *arg, int rc)
{
    bcase *c = arg;
    if (rc != 0) {
        assert_null(c->sub);
        /* Nobody to deliver to (MICRO_ECLOSED: not connected yet). */
        int prc = bt_publish_i(c->b, "t", 1);
        assert_true(prc == 0 || prc == MICRO_ECLOSED);
        assert_int_equal(op_subscribe(c), 0);
    }
    assert_int_equal(bt_publish_i(c->b, "t", 2), 0);
    assert_int_equal(received(c->sub, &c->c, 1), 1);
    micro_broker_stats st;
    micro_broker_get_stats(c->b, &st);
    assert_int_equal(st.received, 1);
    return 0;
}

/* --- publish --------------------------------------------------------- */

static int
setup_subscribed(void *arg)
{
    bcase *c = arg;
    int rc = setup_broker(c);
    micro_sub_opts o = {.queue_limit = 16};
    if (rc == 0) {
        rc = micro_broker_subscribe(c->b, "t", &o, bt_handler, &c->c,
            &c->sub);
    }
    micro_sub_opts g = {.queue = "workers", .queue_limit = 16};
    for (int i = 0; rc == 0 && i < 2; i++) {
        rc = micro_broker_subscribe(c->b, "t", &g, bt_handler, &c->q[i],
            &c->members[i]);
    }
    if (rc == 0) {
        rc = micro_msg_new(&c->msg);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(c->msg, "Content-Type", "text/plain");
    }
    if (rc == 0) {
        rc = micro_msg_set_header(c->msg, "Micro-Topic", "t");
    }
    if (rc == 0) {
        rc = micro_msg_set_body(c->msg, "7", 1);
    }
    return rc;
}

static int
op_publish(void *arg)
{
    bcase *c = arg;
    return micro_broker_publish(c->b, "t", c->msg);
}

static int
check_publish(void *arg, int rc)
{
    bcase *c = arg;
    /* One more, healthy: it arrives, behind whatever the first left. */
    assert_int_equal(micro_broker_publish(c->b, "t", c->msg), 0);
    uint64_t got = received(c->sub, &c->c, 1);
    long members = 0;
    for (int i = 0; i < 2; i++) {
        micro_sub_stats st;
        micro_sub_get_stats(c->members[i], &st);
        members += (long) st.received;
    }
    /* All or nothing: a failed publish reached nobody, so a retry does
     * not deliver twice. */
    assert_int_equal(got, rc == 0 ? 2 : 1);
    assert_int_equal(members, rc == 0 ? 2 : 1);
    assert_true(bt_wait(&c->c.n, (long) got, 5000));
    size_t len = 0;
    const char *body = micro_msg_body(c->msg, &len);
    assert_int_equal(len, 1);
    assert_memory_equal(body, "7", 1);
    return 0;
}

static void
test_memory_broker(void **state)
{
    (void) state;
    static bcase c;
    failalloc_case sub = {.name = "memory broker: subscribe",
        .arg = &c,
        .setup = setup_broker,
        .op = op_subscribe,
        .check = check_subscribe,
        .teardown = teardown};
    assert_true(failalloc_run(&sub) > 0);
    failalloc_case pub = {.name = "memory broker: publish",
        .arg = &c,
        .setup = setup_subscribed,
        .op = op_publish,
        .check = check_publish,
        .teardown = teardown};
    assert_true(failalloc_run(&pub) > 0);
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
        cmocka_unit_test(test_memory_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
