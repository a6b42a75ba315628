/*
 * Discovery benchmarks (docs/benchmarks.md, "Discovery"):
 *
 *  bench_discovery cold [RUNS]
 *    Cold discovery: the time from process start to the first successful
 *    call by name over mDNS. The program moves itself into a private
 *    network namespace holding only lo (so nothing multicasts on a real
 *    interface; needs root), starts greeter-server there on the default
 *    registry, then RUNS times spawns a fresh client process
 *    (`bench_discovery first-call`) that builds a service on the default
 *    registry and calls greeter Greeter.Hello by name. Reported: wall time
 *    from fork to the client's exit, and the client's own time from
 *    main() to the reply.
 *
 *  bench_discovery selector [CALLS]
 *    Selector overhead per call: ns per micro_selector_select on a warm
 *    cache of 3 nodes (memory registry), per strategy, single thread; and
 *    per select + begin + end (what the client does per attempt).
 *
 *  bench_discovery side REGISTRY [RUNS] [CALLS]
 *    One registry (memory, mdns, etcd, consul) measured the same way as
 *    the others (bench/discovery.sh runs all four side by side; etcd and
 *    Consul come from MICRO_REGISTRY_ADDRESS). A greeter service runs in
 *    this process on REGISTRY (mdns: in a private network namespace
 *    holding only lo). Then:
 *      - cold, in process: RUNS times, a fresh client stack (registry
 *        client, selector, transport, client: micro_service_new) to the
 *        first reply by name; for memory, a fresh selector and client on
 *        the server's registry (a memory registry is one process's);
 *      - cold, new process: RUNS times, fork + exec of `first-call`, from
 *        its main() to the first reply (not for memory);
 *      - steady, warm cache: CALLS calls by name, one at a time, against
 *        CALLS calls to the same node by address, and the selector's
 *        select on that warm cache.
 *    Prints one line "row REGISTRY ..." for bench/discovery.sh.
 *
 *  bench_discovery churn REGISTRY SECONDS THREADS
 *    Registration churn: THREADS threads share one registry client and
 *    each registers a node of service "churn" (TTL 30 s) and deregisters
 *    it, over and over, for SECONDS. Prints "churn REGISTRY pairs/s
 *    errors". bench/go/churn does the same with Go Micro's plugins.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmicro/micro.h>
#include "support/netns.h"

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------ */

static int
first_call(int argc, char **argv, int64_t t_main)
{
    micro_log_set_level(MICRO_LOG_ERR);
    micro_service *svc = NULL;
    if (micro_service_new(&svc, "bench.discovery", &argc, argv) != 0) {
        return 2;
    }
    static const char body[] = "{\"name\":\"cold\"}";
    int rc = -1;
    for (int i = 0; i < 100 && rc != 0; i++) {
        micro_call *c = NULL;
        rc = micro_client_call(micro_service_client(svc), "greeter",
            "Greeter.Hello", body, sizeof(body) - 1, NULL, &c);
        micro_call_free(c);
    }
    int64_t t = now_ns() - t_main;
    micro_service_free(svc);
    if (rc != 0) {
        fprintf(stderr, "first-call: %s\n", micro_strerror(rc));
        return 1;
    }
    printf("%lld\n", (long long) t);
    return 0;
}

/* Run self with args, stdout into buf; returns the exit status. */
static int
run_self(const char *self, char *const argv[], char *buf, size_t cap)
{
    int p[2];
    if (pipe(p) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execv(self, argv);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(p[0], buf + n, cap - 1 - n)) > 0) {
        n += (size_t) r;
    }
    buf[n] = '\0';
    close(p[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
cold(const char *self, int runs)
{
    if (unshare(CLONE_NEWNET) != 0 || t_lo_up() != 0) {
        fprintf(stderr, "cold: cannot enter a private network namespace "
                        "(%s); run as root\n", strerror(errno));
        return 77;
    }
    char server[4096];
    snprintf(server, sizeof(server), "%s", self);
    char *slash = strrchr(server, '/');
    /* bench_discovery lives in <build>/bench, greeter-server in <build>. */
    if (slash != NULL) {
        *slash = '\0';
        slash = strrchr(server, '/');
    }
    if (slash == NULL) {
        fprintf(stderr, "cold: cannot locate greeter-server\n");
        return 1;
    }
    snprintf(slash, sizeof(server) - (size_t) (slash - server),
        "/greeter-server");
    unsetenv("MICRO_REGISTRY");
    pid_t srv = fork();
    if (srv == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl(server, "greeter-server", "--server_address=127.0.0.1:18095",
            (char *) NULL);
        _exit(127);
    }
    struct timespec ts = { 0, 300000000 };
    nanosleep(&ts, NULL);

    int64_t *wall = calloc((size_t) runs, sizeof(int64_t));
    int64_t *inproc = calloc((size_t) runs, sizeof(int64_t));
    char *argv[] = { (char *) self, "first-call", NULL };
    int ok = 0;
    for (int i = 0; i < runs; i++) {
        char out[64];
        int64_t t0 = now_ns();
        int st = run_self(self, argv, out, sizeof(out));
        int64_t t1 = now_ns();
        if (st != 0) {
            fprintf(stderr, "cold: run %d failed (%d)\n", i, st);
            continue;
        }
        wall[ok] = t1 - t0;
        inproc[ok] = strtoll(out, NULL, 10);
        ok++;
    }
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
    if (ok == 0) {
        return 1;
    }
    qsort(wall, (size_t) ok, sizeof(int64_t), cmp_i64);
    qsort(inproc, (size_t) ok, sizeof(int64_t), cmp_i64);
    printf("cold discovery over mDNS (lo, private netns), %d runs\n", ok);
    printf("  process start -> first reply (in process): "
           "min %.1f ms, median %.1f ms, max %.1f ms\n",
        inproc[0] / 1e6, inproc[ok / 2] / 1e6, inproc[ok - 1] / 1e6);
    printf("  fork -> exit (wall, incl. exec and teardown): "
           "min %.1f ms, median %.1f ms, max %.1f ms\n",
        wall[0] / 1e6, wall[ok / 2] / 1e6, wall[ok - 1] / 1e6);
    free(wall);
    free(inproc);
    return 0;
}

/* ------------------------------------------------------------------ */

static int
selector_bench(long calls)
{
    micro_log_set_level(MICRO_LOG_ERR);
    micro_registry *r = NULL;
    if (micro_registry_new(&r, &micro_registry_memory_ops, NULL) != 0) {
        return 1;
    }
    for (int i = 1; i <= 3; i++) {
        micro_registry_service s;
        memset(&s, 0, sizeof(s));
        micro_node n;
        memset(&n, 0, sizeof(n));
        char id[16], addr[32];
        snprintf(id, sizeof(id), "node-%d", i);
        snprintf(addr, sizeof(addr), "10.0.0.%d:8080", i);
        n.id = id;
        n.address = addr;
        s.name = "greeter";
        s.version = "latest";
        s.nodes = &n;
        s.n_nodes = 1;
        if (micro_registry_register(r, &s, 0) != 0) {
            return 1;
        }
    }
    const char *names[] = { "random", "roundrobin", "leastconn", "p2c" };
    printf("selector overhead, warm cache, 3 nodes, %ld calls, 1 thread\n",
        calls);
    printf("  %-11s %12s %22s\n", "strategy", "select ns", "select+begin+end ns");
    for (size_t k = 0; k < 4; k++) {
        micro_selector *s = NULL;
        if (micro_selector_new_by_name(&s, names[k], r, NULL) != 0) {
            return 1;
        }
        micro_node n;
        micro_selector_select(s, "greeter", NULL, &n); /* warm the cache */
        micro_node_clear(&n);
        int64_t t0 = now_ns();
        for (long i = 0; i < calls; i++) {
            micro_selector_select(s, "greeter", NULL, &n);
            micro_node_clear(&n);
        }
        int64_t t1 = now_ns();
        for (long i = 0; i < calls; i++) {
            micro_selector_select(s, "greeter", NULL, &n);
            micro_selector_begin(s, "greeter", n.id);
            micro_selector_end(s, "greeter", n.id, 0, 250);
            micro_node_clear(&n);
        }
        int64_t t2 = now_ns();
        printf("  %-11s %12.0f %22.0f\n", names[k],
            (double) (t1 - t0) / (double) calls,
            (double) (t2 - t1) / (double) calls);
        micro_selector_free(s);
    }
    micro_registry_free(r);
    return 0;
}

/* ------------------------------------------------------------------ */
/* side: one registry measured like the others.                         */

static int
hello(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) arg;
    static const char out[] = "{\"msg\":\"Hello cold\"}";
    return micro_response_set_body(rsp, out, sizeof(out) - 1);
}

typedef struct side_srv {
    const char *registry;
    micro_service *svc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state; /* 0 starting, 1 serving, 2 failed */
} side_srv;

static int
srv_started(micro_service *s, void *arg)
{
    (void) s;
    side_srv *v = arg;
    pthread_mutex_lock(&v->mu);
    v->state = 1;
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
    return 0;
}

static void *
srv_main(void *arg)
{
    side_srv *v = arg;
    char reg[64];
    snprintf(reg, sizeof(reg), "--registry=%s", v->registry);
    char *argv[] = { "greeter", reg, "--server_address=127.0.0.1:0", NULL };
    int argc = 3;
    int rc = micro_service_new(&v->svc, "greeter", &argc, argv);
    if (rc == 0) {
        rc = micro_service_handle(v->svc, "Greeter.Hello", hello, NULL);
    }
    if (rc == 0) {
        rc = micro_service_add_hook(v->svc, MICRO_HOOK_AFTER_START,
            srv_started, v);
    }
    if (rc == 0) {
        rc = micro_service_run(v->svc);
    }
    if (rc != 0) {
        fprintf(stderr, "side: greeter: %s\n", micro_strerror(rc));
    }
    pthread_mutex_lock(&v->mu);
    if (v->state == 0) {
        v->state = 2;
    }
    pthread_cond_broadcast(&v->cv);
    pthread_mutex_unlock(&v->mu);
    return NULL;
}

static void
report(const char *what, int64_t *v, int n, double scale, const char *unit)
{
    qsort(v, (size_t) n, sizeof(int64_t), cmp_i64);
    printf("  %-44s min %8.2f  median %8.2f  max %8.2f %s (%d runs)\n", what,
        (double) v[0] / scale, (double) v[n / 2] / scale,
        (double) v[n - 1] / scale, unit, n);
}

static const char hello_body[] = "{\"name\":\"cold\"}";

/* A fresh client stack (as a new process builds it) to the first reply by
 * name; memory: a fresh selector and client on the server's registry. */
static int
cold_once(const char *registry, micro_service *srv, int64_t *ns)
{
    int64_t t0 = now_ns();
    int rc;
    micro_call *c = NULL;
    if (strcmp(registry, "memory") == 0) {
        micro_loop *loop = NULL;
        micro_transport *t = NULL;
        micro_selector *sel = NULL;
        micro_client *cli = NULL;
        rc = micro_loop_new(&loop);
        if (rc == 0) {
            rc = micro_transport_new(&t, &micro_transport_http_ops, loop,
                NULL);
        }
        if (rc == 0) {
            rc = micro_selector_new_by_name(&sel, "random",
                micro_service_registry(srv), NULL);
        }
        if (rc == 0) {
            rc = micro_client_new(&cli, t, sel, NULL);
        }
        if (rc == 0) {
            rc = micro_client_call(cli, "greeter", "Greeter.Hello",
                hello_body, sizeof(hello_body) - 1, NULL, &c);
        }
        *ns = now_ns() - t0;
        micro_call_free(c);
        micro_client_free(cli);
        micro_selector_free(sel);
        micro_transport_free(t);
        micro_loop_free(loop);
        return rc;
    }
    char reg[64];
    snprintf(reg, sizeof(reg), "--registry=%s", registry);
    char *argv[] = { "client", reg, NULL };
    int argc = 2;
    micro_service *svc = NULL;
    rc = micro_service_new(&svc, "bench.discovery", &argc, argv);
    if (rc == 0) {
        rc = micro_client_call(micro_service_client(svc), "greeter",
            "Greeter.Hello", hello_body, sizeof(hello_body) - 1, NULL, &c);
    }
    *ns = now_ns() - t0;
    micro_call_free(c);
    micro_service_free(svc);
    return rc;
}

static int
side(const char *self, const char *registry, int runs, long calls)
{
    micro_log_set_level(MICRO_LOG_ERR);
    if (strcmp(registry, "mdns") == 0
        && (unshare(CLONE_NEWNET) != 0 || t_lo_up() != 0)) {
        fprintf(stderr, "side: cannot enter a private network namespace "
                        "(%s); run as root\n", strerror(errno));
        return 77;
    }
    side_srv v = { .registry = registry };
    pthread_mutex_init(&v.mu, NULL);
    pthread_cond_init(&v.cv, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, srv_main, &v) != 0) {
        return 1;
    }
    pthread_mutex_lock(&v.mu);
    while (v.state == 0) {
        pthread_cond_wait(&v.cv, &v.mu);
    }
    int state = v.state;
    pthread_mutex_unlock(&v.mu);
    if (state != 1) {
        pthread_join(th, NULL);
        micro_service_free(v.svc);
        return 1;
    }
    /* Wait until the registry shows the node (a warm-up call by name). */
    int64_t w, deadline = now_ns() + 30 * 1000000000LL;
    int rc;
    while ((rc = cold_once(registry, v.svc, &w)) != 0 && now_ns() < deadline) {
        struct timespec ts = { 0, 100000000 };
        nanosleep(&ts, NULL);
    }
    if (rc != 0) {
        fprintf(stderr, "side %s: greeter not found: %s\n", registry,
            micro_strerror(rc));
        micro_service_stop(v.svc);
        pthread_join(th, NULL);
        micro_service_free(v.svc);
        return 1;
    }

    int64_t *in = calloc((size_t) runs, sizeof(int64_t));
    int64_t *proc = calloc((size_t) runs, sizeof(int64_t));
    int n_in = 0, n_proc = 0, failed = 0;
    for (int i = 0; i < runs; i++) {
        if (cold_once(registry, v.svc, &in[n_in]) == 0) {
            n_in++;
        } else {
            failed++;
        }
    }
    if (strcmp(registry, "memory") != 0) {
        setenv("MICRO_REGISTRY", registry, 1);
        char *argv[] = { (char *) self, "first-call", NULL };
        for (int i = 0; i < runs; i++) {
            char out[64];
            if (run_self(self, argv, out, sizeof(out)) == 0) {
                proc[n_proc++] = strtoll(out, NULL, 10);
            } else {
                failed++;
            }
        }
    }

    /* Steady: the server's own client has a warm cache by now. */
    micro_client *cli = micro_service_client(v.svc);
    micro_call *c = NULL;
    char addr[128] = "";
    rc = micro_client_call(cli, "greeter", "Greeter.Hello", hello_body,
        sizeof(hello_body) - 1, NULL, &c);
    if (rc == 0 && micro_call_address(c) != NULL) {
        snprintf(addr, sizeof(addr), "%s", micro_call_address(c));
    }
    micro_call_free(c);
    int64_t by_name[3], by_addr[3];
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = addr;
    for (int k = 0; k < 3 && rc == 0; k++) {
        int64_t t0 = now_ns();
        for (long i = 0; i < calls && rc == 0; i++) {
            c = NULL;
            rc = micro_client_call(cli, "greeter", "Greeter.Hello",
                hello_body, sizeof(hello_body) - 1, NULL, &c);
            micro_call_free(c);
        }
        int64_t t1 = now_ns();
        for (long i = 0; i < calls && rc == 0; i++) {
            c = NULL;
            rc = micro_client_call(cli, "greeter", "Greeter.Hello",
                hello_body, sizeof(hello_body) - 1, &o, &c);
            micro_call_free(c);
        }
        by_name[k] = (t1 - t0) / calls;
        by_addr[k] = (now_ns() - t1) / calls;
    }
    if (rc != 0) {
        failed++;
    }
    micro_selector *sel = NULL;
    int64_t select_ns = -1;
    if (micro_selector_new_by_name(&sel, "random",
            micro_service_registry(v.svc), NULL) == 0) {
        micro_node nd;
        if (micro_selector_select(sel, "greeter", NULL, &nd) == 0) {
            micro_node_clear(&nd);
            long k = 200000;
            int64_t t0 = now_ns();
            for (long i = 0; i < k; i++) {
                micro_selector_select(sel, "greeter", NULL, &nd);
                micro_node_clear(&nd);
            }
            select_ns = (now_ns() - t0) / k;
        }
        micro_selector_free(sel);
    }
    micro_service_stop(v.svc);
    pthread_join(th, NULL);
    micro_service_free(v.svc);

    printf("discovery on %s\n", registry);
    if (n_in > 0) {
        report("cold, in process (client stack -> reply)", in, n_in, 1e6,
            "ms");
    }
    if (n_proc > 0) {
        report("cold, new process (main() -> reply)", proc, n_proc, 1e6,
            "ms");
    }
    if (rc == 0) {
        qsort(by_name, 3, sizeof(int64_t), cmp_i64);
        qsort(by_addr, 3, sizeof(int64_t), cmp_i64);
        printf("  steady, warm cache, 1 in flight: by name %.1f us, "
               "by address %.1f us (median of 3 x %ld calls)\n",
            (double) by_name[1] / 1e3, (double) by_addr[1] / 1e3, calls);
    }
    printf("  selector select on the warm cache: %lld ns\n",
        (long long) select_ns);
    printf("row %s cold_in_ms=%.2f cold_proc_ms=%.2f by_name_us=%.1f "
           "by_addr_us=%.1f select_ns=%lld failed=%d\n",
        registry, n_in ? (double) in[n_in / 2] / 1e6 : -1.0,
        n_proc ? (double) proc[n_proc / 2] / 1e6 : -1.0,
        rc == 0 ? (double) by_name[1] / 1e3 : -1.0,
        rc == 0 ? (double) by_addr[1] / 1e3 : -1.0, (long long) select_ns,
        failed);
    free(in);
    free(proc);
    return failed == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* churn: register + deregister pairs per second.                       */

typedef struct churn_arg {
    micro_registry *r;
    int id;
    int64_t until;
    atomic_long *pairs, *errors;
} churn_arg;

static void *
churn_main(void *p)
{
    churn_arg *a = p;
    char id[64];
    micro_node n;
    memset(&n, 0, sizeof(n));
    n.address = "127.0.0.1:9";
    micro_registry_service s;
    memset(&s, 0, sizeof(s));
    s.name = "churn";
    s.version = "latest";
    s.nodes = &n;
    s.n_nodes = 1;
    for (long i = 0; now_ns() < a->until; i++) {
        snprintf(id, sizeof(id), "churn-%d-%ld", a->id, i);
        n.id = id;
        if (micro_registry_register(a->r, &s, 30000) != 0
            || micro_registry_deregister(a->r, &s) != 0) {
            atomic_fetch_add(a->errors, 1);
        } else {
            atomic_fetch_add(a->pairs, 1);
        }
    }
    return NULL;
}

static int
churn(const char *registry, int seconds, int threads)
{
    micro_log_set_level(MICRO_LOG_ERR);
    micro_options *o = NULL;
    micro_registry *r = NULL;
    if (micro_options_new(&o) != 0 || micro_options_load_env(o) != 0
        || micro_registry_new_by_name(&r, registry, o) != 0) {
        fprintf(stderr, "churn: cannot create the %s registry\n", registry);
        micro_options_free(o);
        return 1;
    }
    atomic_long pairs = 0, errors = 0;
    pthread_t *th = calloc((size_t) threads, sizeof(pthread_t));
    churn_arg *args = calloc((size_t) threads, sizeof(churn_arg));
    int64_t t0 = now_ns();
    for (int i = 0; i < threads; i++) {
        args[i] = (churn_arg){ r, i, t0 + (int64_t) seconds * 1000000000,
            &pairs, &errors };
        pthread_create(&th[i], NULL, churn_main, &args[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
    }
    double secs = (double) (now_ns() - t0) / 1e9;
    printf("churn %s %.0f %ld\n", registry, (double) pairs / secs,
        (long) errors);
    free(th);
    free(args);
    micro_registry_free(r);
    micro_options_free(o);
    return errors == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
    int64_t t_main = now_ns();
    if (argc >= 2 && strcmp(argv[1], "first-call") == 0) {
        return first_call(argc - 1, argv + 1, t_main);
    }
    if (argc >= 2 && strcmp(argv[1], "cold") == 0) {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) {
            return 1;
        }
        self[n] = '\0';
        return cold(self, argc > 2 ? (int) strtol(argv[2], NULL, 10) : 20);
    }
    if (argc >= 2 && strcmp(argv[1], "selector") == 0) {
        return selector_bench(argc > 2 ? strtol(argv[2], NULL, 10) : 1000000);
    }
    if (argc >= 3 && strcmp(argv[1], "side") == 0) {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        if (n <= 0) {
            return 1;
        }
        self[n] = '\0';
        return side(self, argv[2], argc > 3 ? (int) strtol(argv[3], NULL, 10) : 10,
            argc > 4 ? strtol(argv[4], NULL, 10) : 2000);
    }
    if (argc >= 3 && strcmp(argv[1], "churn") == 0) {
        return churn(argv[2], argc > 3 ? (int) strtol(argv[3], NULL, 10) : 5,
            argc > 4 ? (int) strtol(argv[4], NULL, 10) : 8);
    }
    fprintf(stderr, "usage: %s cold [RUNS] | selector [CALLS] | "
                    "side REGISTRY [RUNS] [CALLS] | "
                    "churn REGISTRY [SECONDS] [THREADS]\n", argv[0]);
    return 2;
}
