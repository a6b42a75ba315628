/*
 * Pub/sub throughput, end to end (publish -> subscriber handler), in one
 * process: raw cnats publish/subscribe, the cmicro NATS broker on the same
 * nats-server, the cmicro HTTP broker (memory registry shared in-process)
 * and the memory broker. Starts its own nats-server on a free loopback
 * port (skips the NATS rows when it is not installed).
 *
 *   bench_broker [messages=200000] [payload bytes=128]
 */
#include <arpa/inet.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmicro/micro.h>

static atomic_long got;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
on_event(micro_event *ev, void *arg)
{
    (void) ev;
    (void) arg;
    atomic_fetch_add(&got, 1);
    return 0;
}

static void
on_raw(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *arg)
{
    (void) nc;
    (void) sub;
    (void) arg;
    natsMsg_Destroy(m);
    atomic_fetch_add(&got, 1);
}

static void
wait_got(long n, double limit_s)
{
    double until = now_s() + limit_s;
    while (atomic_load(&got) < n && now_s() < until) {
        usleep(200);
    }
}

static void
report(const char *what, long n, long recv, double t)
{
    printf("%-34s %8ld sent %8ld received  %6.3f s  %10.0f msg/s\n", what, n,
        recv, t, (double) recv / t);
}

static void
run_broker(const char *what, micro_broker *pub, micro_broker *sub, long n,
    size_t size)
{
    micro_sub_opts o = {.queue_limit = (size_t) n + 1};
    atomic_store(&got, 0);
    micro_sub *s = NULL;
    if (micro_broker_subscribe(sub, "bench", &o, on_event, NULL, &s) != 0) {
        printf("%s: subscribe failed\n", what);
        return;
    }
    micro_msg *m = NULL;
    micro_msg_new(&m);
    char *body = calloc(1, size + 1);
    memset(body, 'x', size);
    micro_msg_set_header(m, "Content-Type", "application/octet-stream");
    micro_msg_set_body(m, body, size);
    double t0 = now_s();
    long errs = 0;
    for (long i = 0; i < n; i++) {
        errs += micro_broker_publish(pub, "bench", m) != 0;
    }
    wait_got(n - errs, 60);
    double t = now_s() - t0;
    report(what, n, atomic_load(&got), t);
    micro_broker_unsubscribe(sub, s);
    micro_msg_free(m);
    free(body);
}

static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t l = sizeof(a);
    bind(fd, (struct sockaddr *) &a, sizeof(a));
    getsockname(fd, (struct sockaddr *) &a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

int
main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    size_t size = argc > 2 ? (size_t) atol(argv[2]) : 128;
    micro_log_set_level(MICRO_LOG_ERR);
    printf("pub/sub end to end, %ld messages of %zu bytes, one publisher "
           "thread, one subscriber\n",
        n, size);

    const char *bin = access("/usr/sbin/nats-server", X_OK) == 0
        ? "/usr/sbin/nats-server"
        : (access("/usr/bin/nats-server", X_OK) == 0 ? "/usr/bin/nats-server"
                                                    : NULL);
    pid_t pid = -1;
    char url[64];
    if (bin != NULL) {
        int port = free_port();
        snprintf(url, sizeof(url), "nats://127.0.0.1:%d", port);
        pid = fork();
        if (pid == 0) {
            char ps[16];
            snprintf(ps, sizeof(ps), "%d", port);
            execl(bin, bin, "-a", "127.0.0.1", "-p", ps, "-l", "/dev/null",
                (char *) NULL);
            _exit(127);
        }
        natsConnection *nc = NULL, *sc = NULL;
        for (int i = 0; i < 200 && natsConnection_ConnectTo(&nc, url) !=
                 NATS_OK;
             i++) {
            usleep(10000);
        }
        natsConnection_ConnectTo(&sc, url);
        /* Raw cnats: the same payload wrapped in nothing. */
        natsSubscription *sub = NULL;
        atomic_store(&got, 0);
        natsConnection_Subscribe(&sub, sc, "raw", on_raw, NULL);
        natsSubscription_SetPendingLimits(sub, -1, -1);
        natsConnection_Flush(sc);
        char *body = calloc(1, size + 1);
        memset(body, 'x', size);
        double t0 = now_s();
        for (long i = 0; i < n; i++) {
            natsConnection_Publish(nc, "raw", body, (int) size);
        }
        natsConnection_Flush(nc);
        wait_got(n, 60);
        report("raw cnats publish/subscribe", n, atomic_load(&got),
            now_s() - t0);
        natsSubscription_Destroy(sub);
        natsConnection_Destroy(nc);
        natsConnection_Destroy(sc);
        free(body);

        micro_options *o = NULL;
        micro_options_new(&o);
        micro_options_set_str(o, "broker_address", url);
        micro_broker *pb = NULL, *sb = NULL;
        micro_broker_new_by_name(&pb, "nats", NULL, NULL, o);
        micro_broker_new_by_name(&sb, "nats", NULL, NULL, o);
        micro_broker_connect(pb);
        run_broker("cmicro broker nats", pb, sb, n, size);
        micro_broker_free(pb);
        micro_broker_free(sb);
        micro_options_free(o);
    } else {
        printf("nats-server not installed: NATS rows skipped\n");
    }

    micro_registry *reg = NULL;
    micro_registry_new(&reg, &micro_registry_memory_ops, NULL);
    micro_broker *hp = NULL, *hs = NULL;
    micro_broker_new(&hp, &micro_broker_http_ops, NULL, reg, NULL);
    micro_broker_new(&hs, &micro_broker_http_ops, NULL, reg, NULL);
    micro_broker_connect(hp);
    micro_broker_connect(hs);
    long hn = n / 4 > 0 ? n / 4 : 1;
    run_broker("cmicro broker http (keep-alive)", hp, hs, hn, size);
    micro_broker_free(hp);
    micro_broker_free(hs);
    micro_registry_free(reg);

    micro_broker *mb = NULL;
    micro_broker_new(&mb, &micro_broker_memory_ops, NULL, NULL, NULL);
    micro_broker_connect(mb);
    run_broker("cmicro broker memory", mb, mb, n, size);
    micro_broker_free(mb);

    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
    }
    return 0;
}
