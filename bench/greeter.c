/*
 * bench_greeter: Greeter.Hello {"name":"John"} through cmicro's client
 * against a greeter-server: K threads sharing ONE micro_client, each making
 * synchronous calls, or with --async ONE loop thread keeping K calls in
 * flight with micro_client_call_async (each completion, on the loop,
 * starts the next call).
 *
 *   bench_greeter --address 127.0.0.1:PORT [--inflight K] [--duration S]
 *                 [--warmup S] [--content_type application/json]
 *                 [--size BYTES] [--async] [--tls CA_FILE] [--pool N]
 *
 * --tls CA_FILE: TLS (transport_secure) verified with CA_FILE. --pool N:
 * idle connections kept (default max(K, 100)); 0 dials (and with --tls,
 * handshakes) for every call.
 *
 * --size N sends a name of N 'x' bytes instead of "John" (the 1 KB payload
 * variant is --size 1024); the reply must be {"msg":"Hello <name>"}.
 * --content_type application/protobuf sends greeter.proto's Request
 * (field 1, the name) and expects its Response (field 1, "Hello <name>"),
 * as greeter-proto-server answers.
 *
 * Each thread (or, with --async, each of the K call slots) calls in a loop
 * and records every call's latency (monotonic clock) in its own array; the
 * arrays are merged after the run. Calls are
 * counted only when they start after the warm-up and end before the end of
 * the window. A call that fails, or whose reply is not the expected one,
 * counts as an error. Prints one JSON line:
 * {"calls_per_s":..,"p50_us":..,"p99_us":..,"p999_us":..,"errors":..}
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmicro/micro.h>

/* Request and expected reply, built once in main from --size. */
static char *greeter_req;
static size_t greeter_req_len;
static char *greeter_rsp;
static size_t greeter_rsp_len;
static bool greeter_json = true;

typedef struct bench_cfg {
    const char *address;
    const char *content_type;
    int inflight;
    double duration;
    double warmup;
    long size;
    bool async;
    const char *tls_ca;
    long pool; /* -1: default */
    bool grpc; /* --client grpc: the gRPC client (HTTP/2) */
} bench_cfg;

typedef struct worker {
    pthread_t tid;
    micro_client *cli;
    const bench_cfg *cfg;
    uint64_t start_ns, end_ns;
    uint64_t *lat;
    size_t n, cap;
    uint64_t errors;
    int last_rc;
} worker;

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static bool
lat_push(worker *w, uint64_t ns)
{
    if (w->n == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 16384;
        uint64_t *v = realloc(w->lat, nc * sizeof(*v));
        if (v == NULL) {
            return false;
        }
        w->lat = v;
        w->cap = nc;
    }
    w->lat[w->n++] = ns;
    return true;
}

static micro_call_opts
call_opts(const bench_cfg *cfg)
{
    micro_call_opts o = {0};
    o.address = cfg->address;
    o.content_type = cfg->content_type;
    o.retries = MICRO_CALL_NO_RETRY; /* a failure is an error, not a retry */
    return o;
}

/* rc of the call, made MICRO_ECODEC when the reply is not the expected
 * one; frees call. */
static int
check_reply(int rc, micro_call *call)
{
    if (rc == 0) {
        size_t len = 0;
        const void *body = micro_call_body(call, &len);
        /* The JSON codec ends bodies with '\n', as Go's Encoder. */
        while (greeter_json && len > 0 &&
            (((const char *) body)[len - 1] == '\n' ||
                ((const char *) body)[len - 1] == '\r')) {
            len--;
        }
        if (len != greeter_rsp_len ||
            memcmp(body, greeter_rsp, greeter_rsp_len) != 0) {
            rc = MICRO_ECODEC;
        }
    }
    micro_call_free(call);
    return rc;
}

/* Count one finished call that started at t0 and ended at t1; true when
 * the run is over. */
static bool
record(worker *w, int rc, uint64_t t0, uint64_t t1)
{
    bool in_window = t0 >= w->start_ns && t1 <= w->end_ns;
    if (rc != 0) {
        w->last_rc = rc;
        if (in_window) {
            w->errors++;
        }
    } else if (in_window && !lat_push(w, t1 - t0)) {
        w->errors++;
    }
    return t1 >= w->end_ns;
}

static void *
worker_main(void *arg)
{
    worker *w = arg;
    micro_call_opts o = call_opts(w->cfg);
    for (;;) {
        uint64_t t0 = now_ns();
        micro_call *call = NULL;
        int rc = micro_client_call(w->cli, "greeter", "Greeter.Hello",
            greeter_req, greeter_req_len, &o, &call);
        rc = check_reply(rc, call);
        if (record(w, rc, t0, now_ns())) {
            break;
        }
    }
    return NULL;
}

/* --async: K slots on one loop; a slot's completion starts its next call,
 * until the window ends. The main thread waits for every slot to stop. */
typedef struct async_run {
    micro_loop *loop;
    micro_call_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active; /* slots still calling */
} async_run;

typedef struct slot {
    worker w; /* its latencies; tid unused */
    async_run *run;
    uint64_t t0;
} slot;

static void slot_done(void *arg, int rc, micro_call *call);

static void
slot_stop(slot *s)
{
    async_run *r = s->run;
    pthread_mutex_lock(&r->mu);
    if (--r->active == 0) {
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

static void
slot_start(slot *s)
{
    for (;;) {
        s->t0 = now_ns();
        int rc = micro_client_call_async(s->w.cli, s->run->loop, "greeter",
            "Greeter.Hello", greeter_req, greeter_req_len, &s->run->o,
            slot_done, s);
        if (rc == 0) {
            return;
        }
        /* Not started: count it, as a failed call. */
        if (record(&s->w, rc, s->t0, now_ns())) {
            slot_stop(s);
            return;
        }
    }
}

static void
slot_done(void *arg, int rc, micro_call *call)
{
    slot *s = arg;
    rc = check_reply(rc, call);
    if (record(&s->w, rc, s->t0, now_ns())) {
        slot_stop(s);
        return;
    }
    slot_start(s);
}

typedef struct slots {
    slot *v;
    int n;
} slots;

/* On the loop thread: every slot's first call. */
static void
slots_start(void *arg)
{
    slots *ss = arg;
    for (int i = 0; i < ss->n; i++) {
        slot_start(&ss->v[i]);
    }
}

/* Run the K slots; their workers (with the latencies) go to ws. */
static int
run_async(const bench_cfg *cfg, micro_client *cli, micro_loop *loop,
    worker *ws, uint64_t start, uint64_t end)
{
    async_run r;
    r.loop = loop;
    r.o = call_opts(cfg);
    r.active = cfg->inflight;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    slot *v = calloc((size_t) cfg->inflight, sizeof(*v));
    if (v == NULL) {
        return -1;
    }
    for (int i = 0; i < cfg->inflight; i++) {
        v[i].w.cli = cli;
        v[i].w.cfg = cfg;
        v[i].w.start_ns = start;
        v[i].w.end_ns = end;
        v[i].run = &r;
    }
    slots ss = {v, cfg->inflight};
    if (micro_loop_post(loop, slots_start, &ss) != 0) {
        free(v);
        return -1;
    }
    pthread_mutex_lock(&r.mu);
    while (r.active > 0) {
        pthread_cond_wait(&r.cv, &r.mu);
    }
    pthread_mutex_unlock(&r.mu);
    for (int i = 0; i < cfg->inflight; i++) {
        ws[i] = v[i].w;
    }
    free(v);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a;
    uint64_t y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static double
pct_us(const uint64_t *v, size_t n, double p)
{
    if (n == 0) {
        return 0.0;
    }
    return (double) v[(size_t) (p * (double) (n - 1) + 0.5)] / 1000.0;
}

static void
usage(void)
{
    fprintf(stderr,
        "usage: bench_greeter --address HOST:PORT [--inflight K]"
        " [--duration S]\n"
        "                     [--warmup S] [--content_type TYPE]"
        " [--size BYTES] [--async]\n"
        "                     [--tls CA_FILE] [--pool N] [--client mucp|grpc]\n");
    exit(2);
}

static int
parse_args(int argc, char **argv, bench_cfg *cfg)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--async") == 0) {
            cfg->async = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char *eq = strchr(a, '=');
        char name[64];
        if (eq != NULL) { /* --name=value */
            size_t l = (size_t) (eq - a);
            if (l >= sizeof(name)) {
                usage();
            }
            memcpy(name, a, l);
            name[l] = '\0';
            a = name;
            v = eq + 1;
        } else {
            i++;
        }
        if (v == NULL) {
            usage();
        }
        if (strcmp(a, "--address") == 0) {
            cfg->address = v;
        } else if (strcmp(a, "--inflight") == 0) {
            cfg->inflight = (int) strtol(v, NULL, 10);
        } else if (strcmp(a, "--duration") == 0) {
            cfg->duration = strtod(v, NULL);
        } else if (strcmp(a, "--warmup") == 0) {
            cfg->warmup = strtod(v, NULL);
        } else if (strcmp(a, "--content_type") == 0) {
            cfg->content_type = v;
        } else if (strcmp(a, "--size") == 0) {
            cfg->size = strtol(v, NULL, 10);
        } else if (strcmp(a, "--tls") == 0) {
            cfg->tls_ca = v;
        } else if (strcmp(a, "--pool") == 0) {
            cfg->pool = strtol(v, NULL, 10);
        } else if (strcmp(a, "--client") == 0 &&
            (strcmp(v, "grpc") == 0 || strcmp(v, "mucp") == 0)) {
            cfg->grpc = strcmp(v, "grpc") == 0;
        } else {
            usage();
        }
    }
    if (cfg->address == NULL || cfg->inflight <= 0 || cfg->duration <= 0 ||
        cfg->warmup < 0 || cfg->size < 0 || cfg->size > (1L << 20)) {
        usage();
    }
    return 0;
}

/* A message whose only field is string field 1 = prefix + name: tag 0x0a,
 * the length as a varint, the bytes. out has room for 16 + both. */
static size_t
pb_string_field(char *out, const char *prefix, const char *name)
{
    size_t lp = strlen(prefix), ln = strlen(name), v = lp + ln, n = 0;
    out[n++] = 0x0a;
    while (v >= 0x80) {
        out[n++] = (char) (0x80 | (v & 0x7f));
        v >>= 7;
    }
    out[n++] = (char) v;
    memcpy(out + n, prefix, lp);
    memcpy(out + n + lp, name, ln);
    return n + lp + ln;
}

int
main(int argc, char **argv)
{
    bench_cfg cfg = {NULL, "application/json", 1, 5.0, 0.5, 0, false, NULL,
        -1, false};
    parse_args(argc, argv, &cfg);
    size_t nlen = cfg.size > 0 ? (size_t) cfg.size : 4;
    greeter_req = malloc(nlen + 16);
    greeter_rsp = malloc(nlen + 24);
    if (greeter_req == NULL || greeter_rsp == NULL) {
        fprintf(stderr, "bench_greeter: out of memory\n");
        return 2;
    }
    char *name = malloc(nlen + 1);
    if (name == NULL) {
        fprintf(stderr, "bench_greeter: out of memory\n");
        return 2;
    }
    if (cfg.size > 0) {
        memset(name, 'x', nlen);
        name[nlen] = '\0';
    } else {
        memcpy(name, "John", 5);
    }
    if (strcmp(cfg.content_type, "application/protobuf") == 0) {
        greeter_json = false;
        greeter_req_len = pb_string_field(greeter_req, "", name);
        greeter_rsp_len = pb_string_field(greeter_rsp, "Hello ", name);
    } else {
        greeter_req_len = (size_t) snprintf(greeter_req, nlen + 16,
            "{\"name\":\"%s\"}", name);
        greeter_rsp_len = (size_t) snprintf(greeter_rsp, nlen + 24,
            "{\"msg\":\"Hello %s\"}", name);
    }
    free(name);

    micro_options *opts = NULL;
    micro_loop *loop = NULL;
    micro_transport *tr = NULL;
    micro_client *cli = NULL;
    int rc = micro_options_new(&opts);
    if (rc == 0) {
        /* One idle connection per thread (or call slot) must fit in the
         * pool. */
        int64_t pool = cfg.inflight > 100 ? cfg.inflight : 100;
        if (cfg.pool >= 0) {
            pool = cfg.pool;
        }
        rc = micro_options_set_int(opts, "client_pool_size", pool);
    }
    if (rc == 0 && cfg.tls_ca != NULL) {
        rc = micro_options_set_bool(opts, "transport_secure", true);
        if (rc == 0) {
            rc = micro_options_set_str(opts, "transport_tls_ca_file",
                cfg.tls_ca);
        }
    }
    if (rc == 0) {
        rc = micro_loop_new(&loop);
    }
    if (rc == 0) {
        rc = micro_transport_new_by_name(&tr, "http", loop, opts);
    }
    if (rc == 0) {
        rc = micro_client_new_with_ops(&cli,
            cfg.grpc ? &micro_client_grpc_ops : &micro_client_mucp_ops, tr,
            NULL, opts);
    }
    if (rc != 0) {
        fprintf(stderr, "bench_greeter: setup: %s\n", micro_strerror(rc));
        return 2;
    }

    worker *ws = calloc((size_t) cfg.inflight, sizeof(*ws));
    if (ws == NULL) {
        fprintf(stderr, "bench_greeter: out of memory\n");
        return 2;
    }
    uint64_t start = now_ns() + (uint64_t) (cfg.warmup * 1e9);
    uint64_t end = start + (uint64_t) (cfg.duration * 1e9);
    if (cfg.async) {
        if (run_async(&cfg, cli, loop, ws, start, end) != 0) {
            fprintf(stderr, "bench_greeter: cannot start the async run\n");
            return 2;
        }
    }
    for (int i = 0; i < cfg.inflight && !cfg.async; i++) {
        ws[i].cli = cli;
        ws[i].cfg = &cfg;
        ws[i].start_ns = start;
        ws[i].end_ns = end;
        if (pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "bench_greeter: pthread_create failed\n");
            return 2;
        }
    }
    size_t total = 0;
    uint64_t errors = 0;
    int last_rc = 0;
    for (int i = 0; i < cfg.inflight; i++) {
        if (!cfg.async) {
            pthread_join(ws[i].tid, NULL);
        }
        total += ws[i].n;
        errors += ws[i].errors;
        if (ws[i].last_rc != 0) {
            last_rc = ws[i].last_rc;
        }
    }
    uint64_t *all = malloc((total ? total : 1) * sizeof(*all));
    if (all == NULL) {
        fprintf(stderr, "bench_greeter: out of memory\n");
        return 2;
    }
    size_t k = 0;
    for (int i = 0; i < cfg.inflight; i++) {
        memcpy(all + k, ws[i].lat, ws[i].n * sizeof(*all));
        k += ws[i].n;
        free(ws[i].lat);
    }
    qsort(all, total, sizeof(*all), cmp_u64);
    printf("{\"calls_per_s\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"p999_us\":%.1f,\"errors\":%llu}\n",
        (double) total / cfg.duration, pct_us(all, total, 0.50),
        pct_us(all, total, 0.99), pct_us(all, total, 0.999),
        (unsigned long long) errors);
    fflush(stdout);
    if (last_rc != 0) {
        fprintf(stderr, "bench_greeter: last error: %s\n",
            micro_strerror(last_rc));
    }
    free(all);
    free(ws);
    free(greeter_req);
    free(greeter_rsp);
    micro_client_free(cli);
    micro_transport_free(tr);
    micro_loop_free(loop);
    micro_options_free(opts);
    return 0;
}
