/* The NATS broker against a real nats-server on a free loopback port:
 * broadcast, queue groups (counted), undecodable input, and a server
 * killed and restarted mid-stream. Exits 77 without nats-server. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bt.h"
#include "support/support.h"

static char nats_bin[256];
static char dir[64];
static int port;
static pid_t server_pid = -1;
static char url[64];

static int
server_start(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        char ps[16], log[128];
        snprintf(ps, sizeof(ps), "%d", port);
        snprintf(log, sizeof(log), "%s/nats.log", dir);
        execl(nats_bin, nats_bin, "-a", "127.0.0.1", "-p", ps, "-l", log,
            (char *) NULL);
        _exit(127);
    }
    server_pid = pid;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    return t_wait_port(addr, 5000);
}

static void
server_stop(int sig)
{
    if (server_pid > 0) {
        kill(server_pid, sig);
        waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
}

static int
setup(void **state)
{
    (void) state;
    const char *cands[] = {"/usr/sbin/nats-server", "/usr/bin/nats-server",
        "/usr/local/bin/nats-server"};
    for (size_t i = 0; i < 3 && nats_bin[0] == '\0'; i++) {
        if (access(cands[i], X_OK) == 0) {
            snprintf(nats_bin, sizeof(nats_bin), "%s", cands[i]);
        }
    }
    if (nats_bin[0] == '\0') {
        return -1;
    }
    snprintf(dir, sizeof(dir), "/tmp/cmicro-nats-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    port = t_free_port();
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", port);
    return server_start();
}

static int
teardown(void **state)
{
    (void) state;
    server_stop(SIGTERM);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        return -1;
    }
    return 0;
}

static micro_broker *
nats_broker(void)
{
    micro_options *o = NULL;
    micro_options_new(&o);
    micro_options_set_str(o, "broker_address", url);
    micro_broker *b = NULL;
    assert_int_equal(micro_broker_new_by_name(&b, "nats", NULL, NULL, o), 0);
    micro_options_free(o);
    assert_int_equal(micro_broker_connect(b), 0);
    return b;
}

static void
test_broadcast(void **state)
{
    (void) state;
    micro_broker *pub = nats_broker(), *b[3];
    bt_counter c[3];
    memset(c, 0, sizeof(c));
    /* A queue that holds the whole burst: a delivery thread starved of CPU
     * must not turn into an allowed drop (the drop path is tested apart). */
    micro_sub_opts o = {.queue_limit = BT_MAX};
    for (int i = 0; i < 3; i++) {
        b[i] = nats_broker();
        assert_int_equal(micro_broker_subscribe(b[i], "news", &o,
                             bt_handler, &c[i], NULL),
            0);
    }
    bt_sleep_ms(100); /* subscriptions reach the server (no Flush here) */
    for (long i = 0; i < 5000; i++) {
        assert_int_equal(bt_publish_i(pub, "news", i), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_true(bt_wait(&c[i].n, 5000, 20000));
    }
    bt_sleep_ms(50);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(atomic_load(&c[i].n), 5000);
        micro_broker_free(b[i]);
    }
    micro_broker_free(pub);
}

static void
test_queue(void **state)
{
    (void) state;
    _Atomic unsigned char *seen = calloc(BT_MAX, 1);
    micro_broker *pub = nats_broker(), *b[3];
    bt_counter c[3];
    memset(c, 0, sizeof(c));
    micro_sub_opts o = {.queue = "workers", .queue_limit = BT_MAX};
    for (int i = 0; i < 3; i++) {
        c[i].seen = seen;
        b[i] = nats_broker();
        assert_int_equal(micro_broker_subscribe(b[i], "jobs", &o, bt_handler,
                             &c[i], NULL),
            0);
    }
    bt_sleep_ms(100);
    const long n = 10000;
    for (long i = 0; i < n; i++) {
        assert_int_equal(bt_publish_i(pub, "jobs", i), 0);
    }
    int64_t until = bt_now_ms() + 20000;
    while (atomic_load(&c[0].n) + atomic_load(&c[1].n) +
            atomic_load(&c[2].n) < n &&
        bt_now_ms() < until) {
        bt_sleep_ms(5);
    }
    bt_sleep_ms(200);
    long total = 0;
    for (int i = 0; i < 3; i++) {
        print_message("member %d: %ld\n", i, atomic_load(&c[i].n));
        total += atomic_load(&c[i].n);
        assert_int_equal(atomic_load(&c[i].dups), 0);
        assert_true(atomic_load(&c[i].n) > 0);
        micro_broker_free(b[i]);
    }
    assert_int_equal(total, n);
    for (long i = 0; i < n; i++) {
        assert_int_equal(seen[i], 1);
    }
    micro_broker_free(pub);
    free((void *) seen);
}

/* Raw NATS data that is no envelope: counted, reaches no handler. */
static void
test_undecodable(void **state)
{
    (void) state;
    micro_broker *b = nats_broker();
    bt_counter c = {0};
    assert_int_equal(micro_broker_subscribe(b, "raw", NULL, bt_handler, &c,
                         NULL),
        0);
    natsConnection *nc = NULL;
    assert_int_equal(natsConnection_ConnectTo(&nc, url), NATS_OK);
    bt_sleep_ms(100);
    natsConnection_PublishString(nc, "raw", "not json");
    natsConnection_PublishString(nc, "raw", "{\"Body\":\"!!\"}");
    natsConnection_PublishString(nc, "raw",
        "{\"Header\":{\"a\":\"b\"},\"Body\":\"MQ==\"}");
    natsConnection_Flush(nc); /* a test thread, not a loop */
    assert_true(bt_wait(&c.n, 1, 5000));
    bt_sleep_ms(50);
    micro_broker_stats st;
    micro_broker_get_stats(b, &st);
    assert_int_equal(st.bad_messages, 2);
    assert_int_equal(atomic_load(&c.n), 1);
    natsConnection_Destroy(nc);
    micro_broker_free(b);
}

typedef struct pubctl {
    micro_broker *b;
    atomic_long next;
    atomic_long errors;
    atomic_bool stop;
} pubctl;

static void *
publisher(void *arg)
{
    pubctl *p = arg;
    while (!atomic_load(&p->stop)) {
        long i = atomic_load(&p->next);
        if (i >= BT_MAX) {
            break;
        }
        if (bt_publish_i(p->b, "stream", i) != 0) {
            atomic_fetch_add(&p->errors, 1);
        }
        atomic_fetch_add(&p->next, 1);
        bt_sleep_ms(1);
    }
    return NULL;
}

/* Kill nats-server mid-stream and start it again on the same port:
 * publishing resumes and the subscriber keeps receiving on its old
 * subscription. */
static void
test_restart(void **state)
{
    (void) state;
    _Atomic unsigned char *seen = calloc(BT_MAX, 1);
    micro_broker *sb = nats_broker();
    bt_counter c = {.seen = seen};
    assert_int_equal(micro_broker_subscribe(sb, "stream", NULL, bt_handler,
                         &c, NULL),
        0);
    bt_sleep_ms(100);
    pubctl p = {.b = nats_broker()};
    pthread_t t;
    pthread_create(&t, NULL, publisher, &p);
    assert_true(bt_wait(&c.n, 200, 10000));
    long before = atomic_load(&p.next);
    server_stop(SIGKILL);
    bt_sleep_ms(500);
    long during = atomic_load(&p.next);
    assert_int_equal(server_start(), 0);
    /* After the restart: everything published from here on arrives. */
    bt_sleep_ms(1500);
    long mark = atomic_load(&p.next);
    long got_at_mark = atomic_load(&c.n);
    /* 500 more publishes: a count, not a time window (the publisher
     * sleeps 1 ms between publishes, so a busy machine takes longer). */
    int64_t until = bt_now_ms() + 60000;
    while (atomic_load(&p.next) < mark + 500 && bt_now_ms() < until) {
        bt_sleep_ms(10);
    }
    atomic_store(&p.stop, true);
    pthread_join(t, NULL);
    long last = atomic_load(&p.next);
    until = bt_now_ms() + 10000;
    long missing = 0;
    do {
        missing = 0;
        for (long i = mark; i < last; i++) {
            missing += seen[i] == 0;
        }
        bt_sleep_ms(20);
    } while (missing > 0 && bt_now_ms() < until);
    print_message("published %ld (killed at %ld, %ld during the outage, "
                  "restart mark %ld); received %ld, %ld after the mark; "
                  "publish errors %ld; missing after mark %ld\n",
        last, before, during - before, mark, atomic_load(&c.n),
        atomic_load(&c.n) - got_at_mark, atomic_load(&p.errors), missing);
    assert_true(last - mark >= 500);
    assert_int_equal(missing, 0);
    assert_int_equal(atomic_load(&c.dups), 0);
    micro_broker_free(p.b);
    micro_broker_free(sb);
    free((void *) seen);
}

int
main(void)
{
    if (access("/usr/sbin/nats-server", X_OK) != 0 &&
        access("/usr/bin/nats-server", X_OK) != 0 &&
        access("/usr/local/bin/nats-server", X_OK) != 0) {
        fprintf(stderr, "SKIP: nats-server is not installed "
                        "(scripts/install-deps.sh installs it)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast),
        cmocka_unit_test(test_queue),
        cmocka_unit_test(test_undecodable),
        cmocka_unit_test(test_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
