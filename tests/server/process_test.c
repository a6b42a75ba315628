/* Real processes: greeter-server binaries called through the in-process
 * client (a micro_client on its own loop and http transport), and the
 * greeter-client binary. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/support.h"

/* The in-process client side, shared by every test. */
static micro_loop *g_loop;
static micro_transport *g_tr;
static micro_client *g_cli;
static micro_options *g_opts;

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int
group_setup(void **state)
{
    (void) state;
    char path[512];
    if (access(t_bin("greeter-server", path, sizeof(path)), X_OK) != 0) {
        fprintf(stderr, "no greeter-server at %s\n", path);
        exit(77);
    }
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(micro_loop_new(&g_loop), 0);
    assert_int_equal(micro_options_new(&g_opts), 0);
    assert_int_equal(micro_transport_new(&g_tr, &micro_transport_http_ops,
                         g_loop, g_opts),
        0);
    assert_int_equal(micro_client_new(&g_cli, g_tr, NULL, g_opts), 0);
    return 0;
}

static int
group_teardown(void **state)
{
    (void) state;
    micro_client_free(g_cli);
    micro_transport_free(g_tr);
    micro_loop_free(g_loop);
    micro_options_free(g_opts);
    return 0;
}

/* Call addr's greeter; NUL-terminated body (newline trimmed) in out. */
static int
gcall(micro_client *cli, const char *addr, const char *ep, const char *body,
    int64_t timeout_ms, int retries, char *out, size_t cap, micro_call **keep)
{
    micro_call_opts o = {.address = addr, .timeout_ms = timeout_ms,
        .retries = retries};
    micro_call *c = NULL;
    int rc = micro_client_call(cli, "greeter", ep, body, strlen(body), &o, &c);
    if (out != NULL) {
        out[0] = '\0';
        if (c != NULL && rc == 0) {
            size_t len = 0;
            const char *b = micro_call_body(c, &len);
            while (len > 0 && b[len - 1] == '\n') {
                len--;
            }
            snprintf(out, cap, "%.*s", (int) len, b);
        }
    }
    if (keep != NULL) {
        *keep = c;
    } else {
        micro_call_free(c);
    }
    return rc;
}

static void
start_greeter(t_proc *p, char *addr, size_t cap, const char *const extra[])
{
    assert_int_equal(t_start_greeter(p, addr, cap, extra), 0);
    assert_int_equal(t_wait_port(addr, 5000), 0);
}

static void
stop_greeter(t_proc *p)
{
    if (p->pid > 0) {
        assert_int_equal(t_proc_stop(p, SIGTERM, 5000), 0);
    }
}

/* ------------------------------------------------------------------ */

static void
test_hello_and_client_binary(void **state)
{
    (void) state;
    t_proc srv;
    char addr[64], out[256];
    start_greeter(&srv, addr, sizeof(addr), NULL);
    assert_int_equal(gcall(g_cli, addr, "Greeter.Hello", "{\"name\":\"John\"}",
                         5000, 0, out, sizeof(out), NULL),
        0);
    assert_string_equal(out, "{\"msg\":\"Hello John\"}");
    /* Debug.Health */
    assert_int_equal(gcall(g_cli, addr, "Debug.Health", "{}", 5000, 0, out,
                         sizeof(out), NULL),
        0);
    assert_string_equal(out, "{\"status\":\"ok\"}");
    /* The greeter-client binary. */
    char path[512], flag[96];
    snprintf(flag, sizeof(flag), "--address=%s", addr);
    char *argv[] = {"greeter-client", flag, "--registry=memory", NULL};
    t_proc cli;
    assert_int_equal(
        t_proc_spawn(&cli, t_bin("greeter-client", path, sizeof(path)), argv),
        0);
    assert_int_equal(t_proc_wait_line(&cli, "Hello", 10000), 0);
    assert_string_equal(cli.line, "Hello John");
    assert_int_equal(t_proc_stop(&cli, 0, 5000), 0); /* exit status 0 */
    stop_greeter(&srv);
}

/* ------------------------------------------------------------------ */

enum { N_THREADS = 200, N_CALLS = 20 };

typedef struct worker {
    pthread_t thr;
    int idx;
    const char *addr;
    int ok;
    int bad;
} worker;

static void *
worker_run(void *arg)
{
    worker *w = arg;
    for (int j = 0; j < N_CALLS; j++) {
        char body[64], want[64], out[128];
        snprintf(body, sizeof(body), "{\"name\":\"u%d-%d\"}", w->idx, j);
        snprintf(want, sizeof(want), "{\"msg\":\"Hello u%d-%d\"}", w->idx, j);
        int rc = gcall(g_cli, w->addr, "Greeter.Hello", body, 20000, 0, out,
            sizeof(out), NULL);
        if (rc == 0 && strcmp(out, want) == 0) {
            w->ok++;
        } else {
            if (w->bad++ == 0) {
                fprintf(stderr, "thread %d call %d: rc %s body %s\n", w->idx,
                    j, micro_err_name(rc), out);
            }
        }
    }
    return NULL;
}

static void
test_concurrent_callers(void **state)
{
    (void) state;
    t_proc srv;
    char addr[64];
    start_greeter(&srv, addr, sizeof(addr), NULL);
    static worker ws[N_THREADS];
    int64_t t0 = t_now_ms();
    for (int i = 0; i < N_THREADS; i++) {
        ws[i] = (worker){.idx = i, .addr = addr};
        assert_int_equal(pthread_create(&ws[i].thr, NULL, worker_run, &ws[i]),
            0);
    }
    int ok = 0, bad = 0;
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(ws[i].thr, NULL);
        ok += ws[i].ok;
        bad += ws[i].bad;
    }
    fprintf(stderr, "  %d calls from %d threads in %lld ms\n", ok + bad,
        N_THREADS, (long long) (t_now_ms() - t0));
    assert_int_equal(bad, 0);
    assert_int_equal(ok, N_THREADS * N_CALLS);
    stop_greeter(&srv);
}

/* ------------------------------------------------------------------ */

static void
test_handler_calls_other_service(void **state)
{
    (void) state;
    t_proc a, b;
    char aa[64], ba[64], out[256], body[160];
    start_greeter(&a, aa, sizeof(aa), NULL);
    start_greeter(&b, ba, sizeof(ba), NULL);
    snprintf(body, sizeof(body), "{\"address\":\"%s\",\"name\":\"X\"}", ba);
    assert_int_equal(gcall(g_cli, aa, "Greeter.Call", body, 5000, 0, out,
                         sizeof(out), NULL),
        0);
    assert_string_equal(out, "{\"msg\":\"Hello X\"}");
    /* B's error comes back through A unchanged. */
    snprintf(body, sizeof(body), "{\"address\":\"%s\",\"name\":\"\"}", ba);
    micro_call *c = NULL;
    assert_int_equal(gcall(g_cli, aa, "Greeter.Call", body, 5000, 0, NULL, 0,
                         &c),
        MICRO_EREMOTE);
    const micro_error *e = micro_call_error(c);
    assert_non_null(e);
    assert_int_equal(e->code, 400);
    assert_string_equal(e->detail, "name required");
    assert_string_equal(e->id, "greeter");
    micro_call_free(c);
    stop_greeter(&a);
    stop_greeter(&b);
}

/* ------------------------------------------------------------------ */

typedef struct slow_call {
    pthread_t thr;
    const char *addr;
    int ms;
    int rc;
    char out[128];
    int64_t took;
} slow_call;

static void *
slow_run(void *arg)
{
    slow_call *s = arg;
    char body[64];
    snprintf(body, sizeof(body), "{\"ms\":%d}", s->ms);
    int64_t t0 = t_now_ms();
    s->rc = gcall(g_cli, s->addr, "Greeter.Slow", body, 5000,
        MICRO_CALL_NO_RETRY, s->out, sizeof(s->out), NULL);
    s->took = t_now_ms() - t0;
    return NULL;
}

static void
test_timeouts(void **state)
{
    (void) state;
    t_proc srv;
    char addr[64], out[256];
    start_greeter(&srv, addr, sizeof(addr), NULL);
    micro_call *c = NULL;
    int64_t t0 = t_now_ms();
    int rc = gcall(g_cli, addr, "Greeter.Slow", "{\"ms\":2000}", 300,
        MICRO_CALL_NO_RETRY, NULL, 0, &c);
    int64_t el = t_now_ms() - t0;
    assert_int_equal(rc, MICRO_ETIMEDOUT);
    assert_non_null(micro_call_error(c));
    assert_int_equal(micro_call_error(c)->code, 408);
    assert_int_equal(micro_call_attempts(c), 1);
    micro_call_free(c);
    fprintf(stderr, "  timed out after %lld ms\n", (long long) el);
    assert_true(el >= 280 && el <= 800);
    /* The server is not stuck: Hello answers at once while the slow
     * handler still sleeps on a worker. */
    t0 = t_now_ms();
    assert_int_equal(gcall(g_cli, addr, "Greeter.Hello",
                         "{\"name\":\"John\"}", 5000, 0, out, sizeof(out),
                         NULL),
        0);
    el = t_now_ms() - t0;
    assert_string_equal(out, "{\"msg\":\"Hello John\"}");
    assert_true(el < 200);

    /* Two workers, both busy with slow calls: a fast call queues for a
     * worker (handlers run on the pool in arrival order), while the
     * inline Debug.Health still answers at once from the loop. */
    t_proc two;
    char addr2[64];
    const char *extra[] = {"--server_workers=2", NULL};
    start_greeter(&two, addr2, sizeof(addr2), extra);
    slow_call sc[2];
    for (int i = 0; i < 2; i++) {
        sc[i] = (slow_call){.addr = addr2, .ms = 1200};
        assert_int_equal(pthread_create(&sc[i].thr, NULL, slow_run, &sc[i]),
            0);
    }
    sleep_ms(150); /* both slow calls are on the workers */
    t0 = t_now_ms();
    assert_int_equal(gcall(g_cli, addr2, "Debug.Health", "{}", 5000, 0, out,
                         sizeof(out), NULL),
        0);
    int64_t health = t_now_ms() - t0;
    assert_string_equal(out, "{\"status\":\"ok\"}");
    /* Greeter.Hello is an inline handler: it answers at once. */
    t0 = t_now_ms();
    assert_int_equal(gcall(g_cli, addr2, "Greeter.Hello",
                         "{\"name\":\"Fast\"}", 5000, MICRO_CALL_NO_RETRY, out,
                         sizeof(out), NULL),
        0);
    int64_t fast = t_now_ms() - t0;
    assert_string_equal(out, "{\"msg\":\"Hello Fast\"}");
    /* A short call to a worker-bound endpoint waits for a free worker,
     * i.e. until a slow handler ends (~1050 ms after it was sent here). */
    t0 = t_now_ms();
    assert_int_equal(gcall(g_cli, addr2, "Greeter.Slow", "{\"ms\":1}", 5000,
                         MICRO_CALL_NO_RETRY, out, sizeof(out), NULL),
        0);
    int64_t queued = t_now_ms() - t0;
    assert_string_equal(out, "{\"msg\":\"done\"}");
    for (int i = 0; i < 2; i++) {
        pthread_join(sc[i].thr, NULL);
        assert_int_equal(sc[i].rc, 0);
        assert_string_equal(sc[i].out, "{\"msg\":\"done\"}");
    }
    fprintf(stderr,
        "  2 workers busy: Debug.Health %lld ms, Greeter.Hello (inline) %lld "
        "ms, Greeter.Slow 1 ms (worker) %lld ms\n",
        (long long) health, (long long) fast, (long long) queued);
    assert_true(health < 200);
    assert_true(fast < 200);
    assert_true(queued >= 700);
    assert_true(queued < 2500);
    stop_greeter(&two);
    stop_greeter(&srv);
}

/* ------------------------------------------------------------------ */

static void
test_retry_other_node(void **state)
{
    (void) state;
    t_proc s1, s2;
    char a1[64], a2[64], out[256];
    start_greeter(&s1, a1, sizeof(a1), NULL);
    start_greeter(&s2, a2, sizeof(a2), NULL);
    micro_registry *reg = NULL;
    assert_int_equal(micro_registry_new_by_name(&reg, "memory", NULL), 0);
    micro_registry_service svc = {0};
    svc.name = "greeter";
    svc.version = "latest";
    micro_node nodes[2] = {{0}, {0}};
    nodes[0].id = "greeter-1";
    nodes[0].address = a1;
    nodes[1].id = "greeter-2";
    nodes[1].address = a2;
    micro_kv md = {"protocol", "mucp"};
    for (int i = 0; i < 2; i++) {
        nodes[i].metadata.items = &md;
        nodes[i].metadata.len = 1;
    }
    svc.nodes = nodes;
    svc.n_nodes = 2;
    assert_int_equal(micro_registry_register(reg, &svc, 0), 0);
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    assert_int_equal(micro_options_set_int(o, "client_retries", 5), 0);
    micro_selector *sel = NULL;
    assert_int_equal(micro_selector_new_by_name(&sel, "roundrobin", reg, o),
        0);
    micro_client *cli = NULL;
    assert_int_equal(micro_client_new(&cli, g_tr, sel, o), 0);

    int n1 = 0, n2 = 0;
    for (int i = 0; i < 20; i++) {
        micro_call *c = NULL;
        assert_int_equal(gcall(cli, NULL, "Greeter.Hello",
                             "{\"name\":\"R\"}", 5000, 0, out, sizeof(out),
                             &c),
            0);
        assert_string_equal(out, "{\"msg\":\"Hello R\"}");
        assert_int_equal(micro_call_attempts(c), 1);
        n1 += strcmp(micro_call_address(c), a1) == 0;
        n2 += strcmp(micro_call_address(c), a2) == 0;
        micro_call_free(c);
    }
    assert_int_equal(n1 + n2, 20);
    assert_true(n1 > 0 && n2 > 0);

    assert_int_equal(t_proc_stop(&s1, SIGKILL, 5000), 128 + SIGKILL);
    int retried = 0, maxatt = 0, on_live = 0;
    for (int i = 0; i < 50; i++) {
        micro_call *c = NULL;
        int rc = gcall(cli, NULL, "Greeter.Hello", "{\"name\":\"R\"}", 5000,
            0, out, sizeof(out), &c);
        if (rc != 0) {
            fprintf(stderr, "  call %d after kill: %s (%s)\n", i,
                micro_err_name(rc),
                micro_call_error(c) ? micro_call_error(c)->detail : "");
        }
        assert_int_equal(rc, 0);
        assert_string_equal(out, "{\"msg\":\"Hello R\"}");
        int att = micro_call_attempts(c);
        retried += att > 1;
        maxatt = att > maxatt ? att : maxatt;
        on_live += strcmp(micro_call_address(c), a2) == 0;
        micro_call_free(c);
    }
    fprintf(stderr, "  after SIGKILL: %d/50 calls needed a retry (max %d "
                    "attempts)\n",
        retried, maxatt);
    assert_int_equal(on_live, 50);
    assert_true(maxatt <= 2);
    /* The dead node is backed off after its first failure. */
    assert_true(retried >= 1 && retried <= 2);

    micro_client_free(cli);
    micro_selector_free(sel);
    micro_registry_free(reg);
    micro_options_free(o);
    stop_greeter(&s2);
}

/* ------------------------------------------------------------------ */

/* A connection attempt to addr: 0 if it was refused or dropped without
 * an answer within ms, 1 if a greeter answered. */
static int
try_new_connection(const char *addr, int ms)
{
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t) atoi(colon + 1));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *) &a, sizeof(a)) != 0) {
        close(fd);
        return 0;
    }
    static const char req[] =
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Micro-Service: greeter\r\nMicro-Endpoint: Debug.Health\r\n"
        "Content-Length: 2\r\n\r\n{}";
    send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
    struct pollfd p = {fd, POLLIN, 0};
    char buf[256];
    int got = 0;
    if (poll(&p, 1, ms) == 1) {
        got = recv(fd, buf, sizeof(buf), 0) > 0;
    }
    close(fd);
    return got;
}

static void
test_graceful_stop(void **state)
{
    (void) state;
    t_proc srv;
    char addr[64];
    const char *extra[] = {"--server_drain=5s", NULL};
    start_greeter(&srv, addr, sizeof(addr), extra);
    slow_call sc[5];
    for (int i = 0; i < 5; i++) {
        sc[i] = (slow_call){.addr = addr, .ms = 800};
        assert_int_equal(pthread_create(&sc[i].thr, NULL, slow_run, &sc[i]),
            0);
    }
    sleep_ms(200);
    int64_t t0 = t_now_ms();
    assert_int_equal(kill(srv.pid, SIGTERM), 0);
    sleep_ms(100);
    /* While draining, a new connection is refused (or closed) promptly. */
    int64_t c0 = t_now_ms();
    assert_int_equal(try_new_connection(addr, 1000), 0);
    int64_t refused = t_now_ms() - c0;
    assert_true(refused < 500);
    micro_call *c = NULL;
    c0 = t_now_ms();
    int rc = gcall(g_cli, addr, "Greeter.Hello", "{\"name\":\"late\"}", 1000,
        MICRO_CALL_NO_RETRY, NULL, 0, &c);
    int64_t late = t_now_ms() - c0;
    micro_call_free(c);
    assert_int_not_equal(rc, 0);
    assert_true(late < 500);
    for (int i = 0; i < 5; i++) {
        pthread_join(sc[i].thr, NULL);
        assert_int_equal(sc[i].rc, 0);
        assert_string_equal(sc[i].out, "{\"msg\":\"done\"}");
    }
    /* Signal 0 only waits: exit status 0 within 3 s of SIGTERM. */
    int st = t_proc_stop(&srv, 0, (int) (3000 - (t_now_ms() - t0)));
    int64_t exited = t_now_ms() - t0;
    fprintf(stderr,
        "  new connection failed in %lld ms, late call rc %s in %lld ms, "
        "exit %d after %lld ms\n",
        (long long) refused, micro_err_name(rc), (long long) late, st,
        (long long) exited);
    assert_int_equal(st, 0);
    assert_true(exited < 3000);
}

/* A stream whose server process is SIGKILLed mid-stream ends promptly
 * with MICRO_ECONNRESET, and sends fail from then on. */
static void
test_stream_peer_killed(void **state)
{
    (void) state;
    t_proc p;
    char addr[64];
    start_greeter(&p, addr, sizeof(addr), NULL);
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = addr;
    micro_stream *s = NULL;
    assert_int_equal(micro_client_stream(g_cli, "greeter", "Greeter.Stream",
                         &o, &s), 0);
    const char req[] = "{\"name\":\"a\"}";
    assert_int_equal(micro_stream_send(s, req, sizeof(req) - 1), 0);
    micro_buf b = {0};
    assert_int_equal(micro_stream_recv(s, &b), 0);
    micro_buf_clear(&b);
    int64_t t0 = t_now_ms();
    kill(p.pid, SIGKILL);
    assert_int_equal(micro_stream_recv(s, &b), MICRO_ECONNRESET);
    assert_true(t_now_ms() - t0 < 5000);
    assert_int_equal(micro_stream_send(s, req, sizeof(req) - 1),
        MICRO_ECONNRESET);
    assert_non_null(micro_stream_error(s));
    assert_int_equal(micro_stream_error(s)->code, 500);
    micro_stream_free(s);
    t_proc_stop(&p, SIGKILL, 5000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_and_client_binary),
        cmocka_unit_test(test_concurrent_callers),
        cmocka_unit_test(test_handler_calls_other_service),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_retry_other_node),
        cmocka_unit_test(test_graceful_stop),
        cmocka_unit_test(test_stream_peer_killed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
