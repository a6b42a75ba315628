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
 */
#include <errno.h>
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
    fprintf(stderr, "usage: %s cold [RUNS] | selector [CALLS]\n", argv[0]);
    return 2;
}
