/* The broker front end, the envelope, and the memory and http brokers:
 * broadcast, queue groups (counted: none lost, none duplicated), slow and
 * failing subscribers, undecodable input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bt.h"

static void
test_envelope(void **state)
{
    (void) state;
    micro_msg *m = NULL;
    assert_int_equal(micro_msg_new(&m), 0);
    micro_msg_set_header(m, "Micro-Topic", "events");
    micro_msg_set_header(m, "Content-Type", "application/json");
    micro_msg_set_header(m, "Micro-ID", "2b6a1f6e-7d0c-4d6e-9a51-3c2f8e4b7a10");
    micro_msg_set_body(m, "{\"id\":\"1\"}\n", 11);
    micro_buf out = {0};
    assert_int_equal(micro_broker_envelope_encode(m, &out), 0);
    /* Byte for byte the spec's example (§6.4): keys sorted, std base64. */
    const char want[] =
        "{\"Header\":{\"Content-Type\":\"application/json\",\"Micro-ID\":"
        "\"2b6a1f6e-7d0c-4d6e-9a51-3c2f8e4b7a10\",\"Micro-Topic\":\"events\"}"
        ",\"Body\":\"eyJpZCI6IjEifQo=\"}";
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);
    micro_msg *back = NULL;
    assert_int_equal(micro_broker_envelope_decode(out.data, out.len, &back), 0);
    assert_string_equal(micro_msg_header(back, "Micro-Topic"), "events");
    size_t len = 0;
    const char *b = micro_msg_body(back, &len);
    assert_int_equal(len, 11);
    assert_memory_equal(b, "{\"id\":\"1\"}\n", 11);
    micro_msg_free(back);
    micro_buf_clear(&out);
    micro_msg_free(m);

    static const char *const bad[] = {"", "nope", "[]", "{\"Body\":\"@@@@\"}",
        "{\"Body\":\"abc\"}", "{\"Header\":{\"a\":1}}", "{\"Header\":[]}",
        "{\"Body\":5}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        micro_msg *x = NULL;
        assert_int_equal(micro_broker_envelope_decode(bad[i], strlen(bad[i]),
                             &x),
            MICRO_ECODEC);
        assert_null(x);
    }
    /* Padding variants. */
    for (int n = 0; n < 5; n++) {
        micro_msg *y = NULL;
        micro_msg_new(&y);
        micro_msg_set_body(y, "abcd", (size_t) n);
        micro_buf e = {0};
        micro_broker_envelope_encode(y, &e);
        micro_msg *z = NULL;
        assert_int_equal(micro_broker_envelope_decode(e.data, e.len, &z), 0);
        micro_msg_body(z, &len);
        assert_int_equal(len, (size_t) n);
        micro_msg_free(z);
        micro_msg_free(y);
        micro_buf_clear(&e);
    }
}

static void
test_by_name(void **state)
{
    (void) state;
    micro_broker *b = NULL;
    assert_int_equal(micro_broker_new_by_name(&b, "nope", NULL, NULL, NULL),
        MICRO_ENOENT);
    assert_int_equal(micro_broker_new_by_name(&b, "redis", NULL, NULL, NULL),
        MICRO_ENOTBUILT);
    /* http needs a registry. */
    assert_int_equal(micro_broker_new_by_name(&b, "http", NULL, NULL, NULL),
        MICRO_EINVAL);
    assert_null(b);
    assert_int_equal(micro_broker_new_by_name(&b, "memory", NULL, NULL, NULL),
        0);
    assert_string_equal(micro_broker_name(b), "memory");
    assert_int_equal(micro_broker_subscribe(b, "", NULL, bt_handler, NULL,
                         NULL),
        MICRO_EINVAL);
    micro_broker_free(b);
    micro_broker_free(NULL);
}

/* 3 broadcast subscribers each receive every message. */
static void
broadcast(micro_broker *pub, micro_broker *subs[3], const char *topic, long n)
{
    bt_counter c[3];
    memset(c, 0, sizeof(c));
    micro_sub *s[3];
    /* The burst is published faster than a starved delivery thread may
     * drain it; a queue that holds it all makes any loss a real bug (the
     * drop path has its own slow-subscriber test). */
    micro_sub_opts o = {.queue_limit = BT_MAX};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(micro_broker_subscribe(subs[i], topic, &o,
                             bt_handler, &c[i], &s[i]),
            0);
    }
    for (long i = 0; i < n; i++) {
        assert_int_equal(bt_publish_i(pub, topic, i), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_true(bt_wait(&c[i].n, n, 20000));
    }
    bt_sleep_ms(50);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&c[i].n), n);
        micro_sub_stats st;
        micro_sub_get_stats(s[i], &st);
        assert_int_equal(st.dropped, 0);
        assert_int_equal(micro_broker_unsubscribe(subs[i], s[i]), 0);
    }
}

/* 3 members of one queue split the messages: none lost, none twice. */
static void
queue_split(micro_broker *pub, micro_broker *subs[3], const char *topic,
    long n)
{
    _Atomic unsigned char *seen = calloc(BT_MAX, 1);
    bt_counter c[3];
    memset(c, 0, sizeof(c));
    micro_sub *s[3];
    micro_sub_opts o = {.queue = "workers", .queue_limit = BT_MAX};
    for (int i = 0; i < 3; i++) {
        c[i].seen = seen;
        assert_int_equal(micro_broker_subscribe(subs[i], topic, &o,
                             bt_handler, &c[i], &s[i]),
            0);
    }
    for (long i = 0; i < n; i++) {
        assert_int_equal(bt_publish_i(pub, topic, i), 0);
    }
    int64_t until = bt_now_ms() + 20000;
    while (atomic_load(&c[0].n) + atomic_load(&c[1].n) +
            atomic_load(&c[2].n) < n &&
        bt_now_ms() < until) {
        bt_sleep_ms(5);
    }
    bt_sleep_ms(100); /* anything extra would show up now */
    long total = 0, dups = 0;
    for (int i = 0; i < 3; i++) {
        total += atomic_load(&c[i].n);
        dups += atomic_load(&c[i].dups);
        print_message("member %d: %ld\n", i, atomic_load(&c[i].n));
        assert_true(atomic_load(&c[i].n) > 0);
    }
    assert_int_equal(dups, 0);
    assert_int_equal(total, n);
    for (long i = 0; i < n; i++) {
        assert_int_equal(seen[i], 1);
    }
    for (int i = 0; i < 3; i++) {
        micro_broker_unsubscribe(subs[i], s[i]);
    }
    free((void *) seen);
}

static void
test_memory_broadcast_and_queue(void **state)
{
    (void) state;
    micro_broker *b = NULL;
    assert_int_equal(micro_broker_new(&b, &micro_broker_memory_ops, NULL,
                         NULL, NULL),
        0);
    assert_int_equal(micro_broker_connect(b), 0);
    micro_broker *subs[3] = {b, b, b};
    broadcast(b, subs, "news", 5000);
    queue_split(b, subs, "jobs", 10000);
    micro_broker_stats st;
    micro_broker_get_stats(b, &st);
    assert_int_equal(st.published, 15000);
    assert_int_equal(st.delivered, 25000);
    assert_int_equal(st.dropped, 0);
    micro_broker_free(b);
}

/* A slow subscriber: the publisher and the other subscriber go on; the
 * slow one's overflow is counted. */
static void
test_memory_slow_subscriber(void **state)
{
    (void) state;
    micro_broker *b = NULL;
    micro_broker_new(&b, &micro_broker_memory_ops, NULL, NULL, NULL);
    bt_counter slow = {.sleep_ms = 20}, fast = {0};
    micro_sub *ss = NULL, *fs = NULL;
    micro_sub_opts small = {.queue_limit = 8};
    assert_int_equal(micro_broker_subscribe(b, "t", &small, bt_handler, &slow,
                         &ss),
        0);
    assert_int_equal(micro_broker_subscribe(b, "t", NULL, bt_handler, &fast,
                         &fs),
        0);
    int64_t t0 = bt_now_ms();
    for (long i = 0; i < 500; i++) {
        assert_int_equal(bt_publish_i(b, "t", i), 0);
    }
    int64_t took = bt_now_ms() - t0;
    /* 500 x 20 ms would be 10 s if the slow handler held the publisher. */
    assert_true(took < 1000);
    assert_true(bt_wait(&fast.n, 500, 5000));
    micro_sub_stats st;
    micro_sub_get_stats(ss, &st);
    assert_true(st.dropped > 0);
    assert_int_equal(st.received, 500);
    micro_broker_stats bs;
    micro_broker_get_stats(b, &bs);
    assert_int_equal(bs.dropped, st.dropped);
    print_message("slow: publish took %lld ms; slow got %ld, dropped %llu\n",
        (long long) took, atomic_load(&slow.n),
        (unsigned long long) st.dropped);
    micro_broker_free(b); /* joins the slow handler; the rest is dropped */
}

/* A failing subscriber is counted and keeps receiving. */
static void
test_memory_failing_subscriber(void **state)
{
    (void) state;
    micro_broker *b = NULL;
    micro_broker_new(&b, &micro_broker_memory_ops, NULL, NULL, NULL);
    bt_counter bad = {.fail = 1};
    micro_sub *s = NULL;
    assert_int_equal(micro_broker_subscribe(b, "t", NULL, bt_handler, &bad,
                         &s),
        0);
    for (long i = 0; i < 300; i++) {
        bt_publish_i(b, "t", i);
    }
    assert_true(bt_wait(&bad.n, 300, 5000));
    bt_sleep_ms(20);
    micro_sub_stats st;
    micro_sub_get_stats(s, &st);
    assert_int_equal(st.handler_errors, 300);
    assert_int_equal(st.delivered, 300);
    micro_broker_stats bs;
    micro_broker_get_stats(b, &bs);
    assert_int_equal(bs.handler_errors, 300);
    micro_broker_free(b);
}

/* --- http, with a memory registry shared in-process ---------------- */

static void
test_http_broadcast_and_queue(void **state)
{
    (void) state;
    micro_registry *reg = NULL;
    assert_int_equal(micro_registry_new(&reg, &micro_registry_memory_ops,
                         NULL),
        0);
    micro_broker *pub = NULL, *subs[3];
    assert_int_equal(micro_broker_new(&pub, &micro_broker_http_ops, NULL, reg,
                         NULL),
        0);
    assert_int_equal(micro_broker_connect(pub), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(micro_broker_new(&subs[i], &micro_broker_http_ops,
                             NULL, reg, NULL),
            0);
        assert_int_equal(micro_broker_connect(subs[i]), 0);
        assert_non_null(strstr(micro_broker_address(subs[i]), "127.0.0.1:"));
    }
    /* Nobody subscribed: the publisher is told. */
    assert_int_equal(bt_publish_i(pub, "none", 1), MICRO_ENOSERVICE);
    broadcast(pub, subs, "news", 1000);
    queue_split(pub, subs, "jobs", 3000);

    /* The registry holds Go Micro's record shape while subscribed. */
    bt_counter c = {0};
    micro_sub *s = NULL;
    micro_sub_opts q = {.queue = "g1"};
    assert_int_equal(micro_broker_subscribe(subs[0], "rec", &q, bt_handler,
                         &c, &s),
        0);
    micro_registry_service *svcs = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(reg, "micro.http.broker",
                         &svcs, &n),
        0);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < svcs[i].n_nodes; j++) {
            const micro_node *nd = &svcs[i].nodes[j];
            if (strncmp(nd->id, "rec-", 4) == 0) {
                found = true;
                assert_string_equal(svcs[i].version, "g1");
                assert_string_equal(micro_metadata_get(&nd->metadata,
                                        "broker"),
                    "http");
                assert_string_equal(micro_metadata_get(&nd->metadata,
                                        "topic"),
                    "rec");
                assert_string_equal(micro_metadata_get(&nd->metadata,
                                        "secure"),
                    "false");
                assert_int_equal(strlen(nd->id), 4 + 36);
                assert_string_equal(nd->address,
                    micro_broker_address(subs[0]));
            }
        }
    }
    micro_registry_services_free(svcs, n);
    assert_true(found);
    micro_broker_unsubscribe(subs[0], s);
    /* Deregistered on unsubscribe. */
    assert_int_equal(bt_publish_i(pub, "rec", 1), MICRO_ENOSERVICE);
    for (int i = 0; i < 3; i++) {
        micro_broker_free(subs[i]);
    }
    micro_broker_free(pub);
    micro_registry_free(reg);
}

/* Raw HTTP at the subscriber endpoint: bad input is answered and counted. */
static int
raw_http(const char *addr, const char *req, char *out, size_t cap)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", addr);
    char *colon = strrchr(host, ':');
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET,
        .sin_port = htons((uint16_t) atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    if (write(fd, req, strlen(req)) < 0) {
        close(fd);
        return -1;
    }
    ssize_t n = read(fd, out, cap - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    return 0;
}

static void
test_http_bad_input(void **state)
{
    (void) state;
    micro_registry *reg = NULL;
    micro_registry_new(&reg, &micro_registry_memory_ops, NULL);
    micro_broker *b = NULL;
    micro_broker_new(&b, &micro_broker_http_ops, NULL, reg, NULL);
    bt_counter c = {0};
    micro_sub *s = NULL;
    assert_int_equal(micro_broker_subscribe(b, "t", NULL, bt_handler, &c, &s),
        0);
    char rsp[1024];
    raw_http(micro_broker_address(b), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", rsp,
        sizeof(rsp));
    assert_non_null(strstr(rsp, "405"));
    raw_http(micro_broker_address(b),
        "POST /?id=x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        rsp, sizeof(rsp));
    assert_non_null(strstr(rsp, "500"));
    raw_http(micro_broker_address(b),
        "POST /?id=x HTTP/1.1\r\nHost: x\r\nContent-Length: 23\r\n\r\n"
        "{\"Header\":{},\"Body\":\"\"}",
        rsp, sizeof(rsp)); /* no Micro-Topic */
    assert_non_null(strstr(rsp, "500"));
    raw_http(micro_broker_address(b), "garbage\r\n\r\n", rsp, sizeof(rsp));
    micro_broker_stats st;
    micro_broker_get_stats(b, &st);
    assert_int_equal(st.bad_messages, 3);
    assert_int_equal(atomic_load(&c.n), 0);
    /* Still serving. */
    assert_int_equal(bt_publish_i(b, "t", 7), 0);
    assert_true(bt_wait(&c.n, 1, 5000));
    micro_broker_free(b);
    micro_registry_free(reg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_by_name),
        cmocka_unit_test(test_memory_broadcast_and_queue),
        cmocka_unit_test(test_memory_slow_subscriber),
        cmocka_unit_test(test_memory_failing_subscriber),
        cmocka_unit_test(test_http_broadcast_and_queue),
        cmocka_unit_test(test_http_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
