/*
 * bench_echo: the raw limit of request/response over loopback TCP, the
 * baseline that bench_greeter is measured against.
 *
 *   bench_echo server PORT
 *       (PORT 0 picks a free port; the address is printed on stdout.)
 *       A one-thread echo server on 127.0.0.1:PORT (non-blocking
 *       sockets, level-triggered epoll, TCP_NODELAY).
 *   bench_echo client HOST:PORT [--size N] [--inflight K] [--duration S]
 *                               [--warmup S] [--mode epoll|threads]
 *       K connections, each with one request in flight: write N bytes,
 *       read N bytes back, repeat. Prints one JSON line:
 *       {"calls_per_s":..,"p50_us":..,"p99_us":..,"p999_us":..,"errors":..}
 *
 * The default client is one epoll loop driving all K connections: on a
 * single pinned core that is the fastest client (no context switch per
 * call), so the baseline is the best the kernel's loopback can do.
 * --mode threads runs K blocking threads instead, the shape bench_greeter
 * has, to separate "cost of threads" from "cost of the framework".
 *
 * The default size, 286 bytes, is the size of the HTTP request the
 * greeter client sends for Greeter.Hello {"name":"John"}.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define ECHO_DEFAULT_SIZE 286
#define ECHO_MAX_EVENTS 256
#define ECHO_SRV_BUF 65536

/* ------------------------------------------------------------------------
 * Shared helpers
 * --------------------------------------------------------------------- */

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static void
die(const char *what)
{
    perror(what);
    exit(2);
}

static void
set_nodelay(int fd)
{
    int one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A growable array of per-call latencies in nanoseconds. */
typedef struct lat_vec {
    uint64_t *v;
    size_t n, cap;
} lat_vec;

static void
lat_push(lat_vec *l, uint64_t ns)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 65536;
        uint64_t *v = realloc(l->v, nc * sizeof(*v));
        if (v == NULL) {
            die("realloc");
        }
        l->v = v;
        l->cap = nc;
    }
    l->v[l->n++] = ns;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a;
    uint64_t y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static double
pct_us(const lat_vec *l, double p)
{
    if (l->n == 0) {
        return 0.0;
    }
    size_t i = (size_t) (p * (double) (l->n - 1) + 0.5);
    return (double) l->v[i] / 1000.0;
}

static void
print_result(lat_vec *l, double seconds, uint64_t errors)
{
    qsort(l->v, l->n, sizeof(*l->v), cmp_u64);
    printf("{\"calls_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"p999_us\":%.1f,\"errors\":%llu}\n",
        seconds > 0 ? (double) l->n / seconds : 0.0, pct_us(l, 0.50),
        pct_us(l, 0.99), pct_us(l, 0.999), (unsigned long long) errors);
    fflush(stdout);
}

/* ------------------------------------------------------------------------
 * Server
 * --------------------------------------------------------------------- */

/* Bytes read but not yet written back (only when the socket pushed back). */
typedef struct srv_conn {
    int fd;
    char *pend;
    size_t off, len;
} srv_conn;

static void
srv_close(int ep, srv_conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->pend);
    free(c);
}

/* Write out what is pending; returns -1 on a dead connection. */
static int
srv_flush(srv_conn *c)
{
    while (c->off < c->len) {
        ssize_t w = send(c->fd, c->pend + c->off, c->len - c->off,
            MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN ? 0 : -1;
        }
        c->off += (size_t) w;
    }
    c->off = c->len = 0;
    return 0;
}

static int
srv_queue(srv_conn *c, const char *p, size_t n)
{
    char *np = realloc(c->pend, c->len + n);
    if (np == NULL) {
        return -1;
    }
    c->pend = np;
    memcpy(c->pend + c->len, p, n);
    c->len += n;
    return 0;
}

static void
srv_update(int ep, srv_conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (c->off < c->len) {
        ev.events |= EPOLLOUT;
    }
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int
run_server(const char *port_s)
{
    int port = (int) strtol(port_s, NULL, 10);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        die("socket");
    }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET,
        .sin_port = htons((uint16_t) port),
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        die("bind");
    }
    if (listen(lfd, 1024) != 0) {
        die("listen");
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        die("epoll_create1");
    }
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    socklen_t slen = sizeof(sa);
    getsockname(lfd, (struct sockaddr *) &sa, &slen);
    printf("bench_echo server listening on 127.0.0.1:%d\n",
        (int) ntohs(sa.sin_port));
    fflush(stdout);

    static char buf[ECHO_SRV_BUF];
    struct epoll_event evs[ECHO_MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, ECHO_MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            srv_conn *c = evs[i].data.ptr;
            if (c == NULL) {
                for (;;) {
                    int fd = accept4(lfd, NULL, NULL,
                        SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) {
                        break;
                    }
                    set_nodelay(fd);
                    srv_conn *nc = calloc(1, sizeof(*nc));
                    if (nc == NULL) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN,
                        .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (srv_flush(c) != 0) {
                    srv_close(ep, c);
                    continue;
                }
                srv_update(ep, c);
            }
            if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                continue;
            }
            bool dead = false;
            bool was_pending = c->off < c->len;
            /* One read per wake-up keeps connections fair. */
            ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                dead = true;
            } else if (r > 0) {
                if (c->off < c->len) {
                    dead = srv_queue(c, buf, (size_t) r) != 0;
                } else {
                    ssize_t w = send(c->fd, buf, (size_t) r, MSG_NOSIGNAL);
                    if (w < 0 && errno != EAGAIN) {
                        dead = true;
                    } else {
                        size_t done = w < 0 ? 0 : (size_t) w;
                        if (done < (size_t) r) {
                            dead = srv_queue(c, buf + done,
                                       (size_t) r - done) != 0;
                        }
                    }
                }
            }
            if (dead) {
                srv_close(ep, c);
            } else if (was_pending != (c->off < c->len)) {
                srv_update(ep, c);
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Client
 * --------------------------------------------------------------------- */

typedef struct client_cfg {
    struct sockaddr_storage sa;
    socklen_t salen;
    size_t size;
    int inflight;
    double duration;
    double warmup;
} client_cfg;

/* Measurement window, shared by all client threads. */
static _Atomic uint64_t g_start_ns;
static _Atomic uint64_t g_end_ns;

static int
client_connect(const client_cfg *cfg, bool nonblock)
{
    int fd = socket(cfg->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        die("socket");
    }
    if (connect(fd, (const struct sockaddr *) &cfg->sa, cfg->salen) != 0) {
        die("connect");
    }
    set_nodelay(fd);
    if (nonblock) {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
            die("fcntl");
        }
    }
    return fd;
}

typedef struct cli_conn {
    int fd;
    size_t sent, got;
    uint64_t t0;
} cli_conn;

/* Send as much of the request as the socket takes. */
static int
cli_send(cli_conn *c, const char *msg, size_t size)
{
    while (c->sent < size) {
        ssize_t w = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == EAGAIN ? 0 : -1;
        }
        c->sent += (size_t) w;
    }
    return 0;
}

static void
cli_start(cli_conn *c)
{
    c->sent = c->got = 0;
    c->t0 = now_ns();
}

/* One epoll loop drives every connection. */
static int
run_client_epoll(const client_cfg *cfg, lat_vec *lat, uint64_t *errors)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        die("epoll_create1");
    }
    char *msg = malloc(cfg->size);
    char *rbuf = malloc(cfg->size > 65536 ? cfg->size : 65536);
    cli_conn *conns = calloc((size_t) cfg->inflight, sizeof(*conns));
    if (msg == NULL || rbuf == NULL || conns == NULL) {
        die("malloc");
    }
    memset(msg, 'x', cfg->size);
    for (int i = 0; i < cfg->inflight; i++) {
        conns[i].fd = client_connect(cfg, true);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
    }
    uint64_t start = now_ns() + (uint64_t) (cfg->warmup * 1e9);
    uint64_t end = start + (uint64_t) (cfg->duration * 1e9);
    for (int i = 0; i < cfg->inflight; i++) {
        cli_start(&conns[i]);
        if (cli_send(&conns[i], msg, cfg->size) != 0) {
            die("send");
        }
    }
    struct epoll_event evs[ECHO_MAX_EVENTS];
    int active = cfg->inflight;
    while (active > 0) {
        int n = epoll_wait(ep, evs, ECHO_MAX_EVENTS, 1000);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            cli_conn *c = evs[i].data.ptr;
            if (c->fd < 0) {
                continue;
            }
            bool dead = false;
            if (c->sent < cfg->size) {
                dead = cli_send(c, msg, cfg->size) != 0;
            }
            ssize_t r = dead ? -1 : recv(c->fd, rbuf, cfg->size - c->got, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                dead = true;
            } else if (r > 0) {
                c->got += (size_t) r;
            }
            if (dead) {
                (*errors)++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                active--;
                continue;
            }
            if (c->got < cfg->size) {
                continue;
            }
            uint64_t t1 = now_ns();
            if (c->t0 >= start && t1 <= end) {
                lat_push(lat, t1 - c->t0);
            }
            if (t1 >= end) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->fd = -1;
                active--;
                continue;
            }
            cli_start(c);
            if (cli_send(c, msg, cfg->size) != 0) {
                (*errors)++;
            }
        }
    }
    free(conns);
    free(rbuf);
    free(msg);
    close(ep);
    return 0;
}

typedef struct cli_thread {
    pthread_t tid;
    const client_cfg *cfg;
    lat_vec lat;
    uint64_t errors;
} cli_thread;

/* One blocking connection per thread. */
static void *
cli_thread_main(void *arg)
{
    cli_thread *t = arg;
    const client_cfg *cfg = t->cfg;
    int fd = client_connect(cfg, false);
    char *msg = malloc(cfg->size);
    char *rbuf = malloc(cfg->size);
    if (msg == NULL || rbuf == NULL) {
        die("malloc");
    }
    memset(msg, 'x', cfg->size);
    uint64_t start = atomic_load(&g_start_ns);
    uint64_t end = atomic_load(&g_end_ns);
    for (;;) {
        uint64_t t0 = now_ns();
        size_t off = 0;
        bool ok = true;
        while (ok && off < cfg->size) {
            ssize_t w = send(fd, msg + off, cfg->size - off, MSG_NOSIGNAL);
            ok = w > 0 || (w < 0 && errno == EINTR);
            off += w > 0 ? (size_t) w : 0;
        }
        off = 0;
        while (ok && off < cfg->size) {
            ssize_t r = recv(fd, rbuf + off, cfg->size - off, 0);
            ok = r > 0 || (r < 0 && errno == EINTR);
            off += r > 0 ? (size_t) r : 0;
        }
        if (!ok) {
            t->errors++;
            break;
        }
        uint64_t t1 = now_ns();
        if (t0 >= start && t1 <= end) {
            lat_push(&t->lat, t1 - t0);
        }
        if (t1 >= end) {
            break;
        }
    }
    close(fd);
    free(msg);
    free(rbuf);
    return NULL;
}

static int
run_client_threads(const client_cfg *cfg, lat_vec *lat, uint64_t *errors)
{
    cli_thread *ts = calloc((size_t) cfg->inflight, sizeof(*ts));
    if (ts == NULL) {
        die("calloc");
    }
    uint64_t start = now_ns() + (uint64_t) (cfg->warmup * 1e9);
    atomic_store(&g_start_ns, start);
    atomic_store(&g_end_ns, start + (uint64_t) (cfg->duration * 1e9));
    for (int i = 0; i < cfg->inflight; i++) {
        ts[i].cfg = cfg;
        if (pthread_create(&ts[i].tid, NULL, cli_thread_main, &ts[i]) != 0) {
            die("pthread_create");
        }
    }
    for (int i = 0; i < cfg->inflight; i++) {
        pthread_join(ts[i].tid, NULL);
        for (size_t j = 0; j < ts[i].lat.n; j++) {
            lat_push(lat, ts[i].lat.v[j]);
        }
        *errors += ts[i].errors;
        free(ts[i].lat.v);
    }
    free(ts);
    return 0;
}

static void
usage(void)
{
    fprintf(stderr,
        "usage: bench_echo server PORT\n"
        "       bench_echo client HOST:PORT [--size N] [--inflight K]\n"
        "                  [--duration S] [--warmup S]"
        " [--mode epoll|threads]\n");
    exit(2);
}

static void
resolve(const char *hostport, client_cfg *cfg)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (colon == NULL || (size_t) (colon - hostport) >= sizeof(host)) {
        usage();
    }
    memcpy(host, hostport, (size_t) (colon - hostport));
    host[colon - hostport] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || res == NULL) {
        fprintf(stderr, "bench_echo: %s: %s\n", hostport, gai_strerror(rc));
        exit(2);
    }
    memcpy(&cfg->sa, res->ai_addr, res->ai_addrlen);
    cfg->salen = res->ai_addrlen;
    freeaddrinfo(res);
}

int
main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3) {
        usage();
    }
    if (strcmp(argv[1], "server") == 0) {
        return run_server(argv[2]);
    }
    if (strcmp(argv[1], "client") != 0) {
        usage();
    }
    client_cfg cfg = {.size = ECHO_DEFAULT_SIZE, .inflight = 1,
        .duration = 5.0, .warmup = 0.5};
    bool threads = false;
    resolve(argv[2], &cfg);
    for (int i = 3; i < argc; i += 2) { /* --option value pairs */
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) {
            usage();
        }
        if (strcmp(a, "--size") == 0) {
            cfg.size = (size_t) strtoul(v, NULL, 10);
        } else if (strcmp(a, "--inflight") == 0) {
            cfg.inflight = (int) strtol(v, NULL, 10);
        } else if (strcmp(a, "--duration") == 0) {
            cfg.duration = strtod(v, NULL);
        } else if (strcmp(a, "--warmup") == 0) {
            cfg.warmup = strtod(v, NULL);
        } else if (strcmp(a, "--mode") == 0) {
            threads = strcmp(v, "threads") == 0;
        } else {
            usage();
        }
    }
    if (cfg.size == 0 || cfg.inflight <= 0 || cfg.duration <= 0) {
        usage();
    }
    lat_vec lat = {0};
    uint64_t errors = 0;
    if (threads) {
        run_client_threads(&cfg, &lat, &errors);
    } else {
        run_client_epoll(&cfg, &lat, &errors);
    }
    print_result(&lat, cfg.duration, errors);
    free(lat.v);
    return 0;
}
