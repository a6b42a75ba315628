/*
 * bench_stream: cmicro's streaming load generator for bench/run.sh
 * (contender cmicro-stream), against a greeter-server serving the
 * bidirectional Greeter.Stream ({"name":N} -> {"msg":"Hello N"}).
 *
 *   bench_stream --address 127.0.0.1:PORT [--streams S] [--duration S]
 *                [--warmup S] [--size BYTES] [--async K]
 *                [--content_type application/json|application/protobuf]
 *
 * --async K: instead of two threads per stream, ONE loop thread drives
 * every stream with the asynchronous API (micro_client_stream_async,
 * micro_stream_send_async, micro_stream_recv_async), keeping K messages
 * in flight per stream: each reply received sends the next message.
 *
 * ONE micro_client (HTTP transport, opts.address) opens S streams with
 * micro_client_stream. Each stream has a sender thread looping
 * micro_stream_send (blocking: it waits while the stream's window is full,
 * so the pipe stays as full as flow control allows) and a receiver thread
 * looping micro_stream_recv, checking every reply and counting those
 * received inside the window [warm-up, warm-up + duration]. When the window
 * ends the sender half-closes (micro_stream_close_send), the receiver
 * drains to MICRO_EOF, and the stream is freed. Prints one JSON line:
 * {"msgs_per_s":..,"streams":S,"size":..,"errors":..}
 *
 * --size is the encoded request in bytes, as the other streaming
 * contenders count it: JSON {"name":"xx..."} plus the codec's '\n' (a name
 * of size-12 bytes: 64 -> 52, 1024 -> 1012); protobuf greeter.proto
 * Request (a name of size-2 bytes up to 129, size-3 above).
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmicro/micro.h>
#include <cmicro/stream.h>

typedef struct bench_cfg {
    const char *address;
    const char *content_type;
    int streams;
    double duration;
    double warmup;
    long size;
    int async; /* messages in flight per stream; 0: threads */
    bool grpc; /* --client grpc: the gRPC client (HTTP/2) */
} bench_cfg;

/* Request and expected reply, built once in main from --size. */
static char *req_body;
static size_t req_len;
static char *rsp_body;
static size_t rsp_len;
static bool is_json = true;

typedef struct pipe_state {
    micro_stream *s;
    pthread_t sender, receiver;
    uint64_t start_ns, end_ns;
    uint64_t msgs;     /* replies received in the window */
    uint64_t errors;   /* failures and wrong replies in the window */
    int last_rc;
} pipe_state;

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static bool
in_window(const pipe_state *p, uint64_t t)
{
    return t >= p->start_ns && t <= p->end_ns;
}

static void *
sender_main(void *arg)
{
    pipe_state *p = arg;
    while (now_ns() < p->end_ns) {
        int rc = micro_stream_send(p->s, req_body, req_len);
        if (rc != 0) {
            /* The receiver sees why the stream ended; count it once. */
            if (in_window(p, now_ns())) {
                p->last_rc = rc;
            }
            return NULL;
        }
    }
    int rc = micro_stream_close_send(p->s);
    if (rc != 0) {
        p->last_rc = rc;
    }
    return NULL;
}

static bool
reply_ok(const micro_buf *b)
{
    size_t len = b->len;
    /* The JSON codec ends bodies with '\n', as Go's Encoder. */
    while (is_json && len > 0 &&
        (b->data[len - 1] == '\n' || b->data[len - 1] == '\r')) {
        len--;
    }
    return len == rsp_len && memcmp(b->data, rsp_body, rsp_len) == 0;
}

static void *
receiver_main(void *arg)
{
    pipe_state *p = arg;
    for (;;) {
        micro_buf b = {0};
        int rc = micro_stream_recv(p->s, &b);
        uint64_t t = now_ns();
        if (rc == MICRO_EOF) {
            break;
        }
        if (rc != 0) {
            p->last_rc = rc;
            if (t < p->end_ns) {
                p->errors++;
            }
            break;
        }
        if (!reply_ok(&b)) {
            p->last_rc = MICRO_ECODEC;
            if (in_window(p, t)) {
                p->errors++;
            }
        } else if (in_window(p, t)) {
            p->msgs++;
        }
        micro_buf_clear(&b);
    }
    return NULL;
}

static void
usage(void)
{
    fprintf(stderr,
        "usage: bench_stream --address HOST:PORT [--streams S] "
        "[--duration S]\n"
        "       [--warmup S] [--size BYTES] [--content_type CT]"
        " [--async K] [--client mucp|grpc]\n");
    exit(2);
}

static void
parse_args(int argc, char **argv, bench_cfg *cfg)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        char key[32];
        const char *eq = strchr(a, '=');
        if (eq != NULL && (size_t) (eq - a) < sizeof(key)) {
            memcpy(key, a, (size_t) (eq - a));
            key[eq - a] = '\0';
            a = key;
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            usage();
        }
        if (strcmp(a, "--address") == 0) {
            cfg->address = v;
        } else if (strcmp(a, "--streams") == 0) {
            cfg->streams = (int) strtol(v, NULL, 10);
        } else if (strcmp(a, "--duration") == 0) {
            cfg->duration = strtod(v, NULL);
        } else if (strcmp(a, "--warmup") == 0) {
            cfg->warmup = strtod(v, NULL);
        } else if (strcmp(a, "--size") == 0) {
            cfg->size = strtol(v, NULL, 10);
        } else if (strcmp(a, "--content_type") == 0) {
            cfg->content_type = v;
        } else if (strcmp(a, "--async") == 0) {
            cfg->async = (int) strtol(v, NULL, 10);
        } else if (strcmp(a, "--client") == 0 &&
            (strcmp(v, "grpc") == 0 || strcmp(v, "mucp") == 0)) {
            cfg->grpc = strcmp(v, "grpc") == 0;
        } else {
            usage();
        }
    }
    if (cfg->address == NULL || cfg->streams <= 0 || cfg->duration <= 0 ||
        cfg->warmup < 0 || cfg->size < 12 || cfg->size > 16000) {
        usage();
    }
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

/* --- --async: one loop thread, K messages in flight per stream ------- */

typedef struct arun arun;

typedef struct astream {
    arun *run;
    micro_stream *s;
    uint64_t msgs, errors;
    int last_rc;
    bool closing;
    bool done;
} astream;

struct arun {
    micro_client *cli;
    micro_loop *loop;
    const bench_cfg *cfg;
    micro_call_opts co;
    uint64_t start_ns, end_ns;
    astream *v;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active;
};

static void
a_done(astream *a)
{
    if (a->done) {
        return;
    }
    a->done = true;
    pthread_mutex_lock(&a->run->mu);
    if (--a->run->active == 0) {
        pthread_cond_signal(&a->run->cv);
    }
    pthread_mutex_unlock(&a->run->mu);
}

static void
a_recv(void *arg, micro_stream *s, int rc, const void *body, size_t len)
{
    astream *a = arg;
    arun *r = a->run;
    uint64_t t = now_ns();
    if (rc != 0) {
        if (rc != MICRO_EOF) {
            a->last_rc = rc;
            if (t < r->end_ns) {
                a->errors++;
            }
        }
        a_done(a);
        return;
    }
    micro_buf b = {(uint8_t *) body, len, len};
    if (!reply_ok(&b)) {
        a->last_rc = MICRO_ECODEC;
        if (t >= r->start_ns && t <= r->end_ns) {
            a->errors++;
        }
    } else if (t >= r->start_ns && t <= r->end_ns) {
        a->msgs++;
    }
    if (t < r->end_ns) {
        rc = micro_stream_send_async(s, req_body, req_len, NULL, NULL);
        if (rc != 0) {
            a->last_rc = rc;
        }
    } else if (!a->closing) {
        a->closing = true;
        micro_stream_close_send(s);
    }
    if (micro_stream_recv_async(s, a_recv, a) != 0) {
        a_done(a);
    }
}

static void
a_opened(void *arg, int rc, micro_stream *s)
{
    astream *a = arg;
    if (rc != 0) {
        a->last_rc = rc;
        a->errors++;
        a_done(a);
        return;
    }
    a->s = s;
    for (int i = 0; i < a->run->cfg->async; i++) {
        micro_stream_send_async(s, req_body, req_len, NULL, NULL);
    }
    if (micro_stream_recv_async(s, a_recv, a) != 0) {
        a_done(a);
    }
}

static void
a_start(void *arg)
{
    arun *r = arg;
    for (int i = 0; i < r->cfg->streams; i++) {
        r->v[i].run = r;
        if (micro_client_stream_async(r->cli, r->loop, "greeter",
                "Greeter.Stream", &r->co, a_opened, &r->v[i]) != 0) {
            r->v[i].errors++;
            a_done(&r->v[i]);
        }
    }
}

static int
run_async(const bench_cfg *cfg, micro_client *cli, micro_loop *loop,
    const micro_call_opts *co, uint64_t *msgs, uint64_t *errors,
    int *last_rc)
{
    arun r;
    memset(&r, 0, sizeof(r));
    r.cli = cli;
    r.loop = loop;
    r.cfg = cfg;
    r.co = *co;
    r.v = calloc((size_t) cfg->streams, sizeof(*r.v));
    if (r.v == NULL) {
        return -1;
    }
    r.active = cfg->streams;
    r.start_ns = now_ns() + (uint64_t) (cfg->warmup * 1e9);
    r.end_ns = r.start_ns + (uint64_t) (cfg->duration * 1e9);
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    if (micro_loop_post(loop, a_start, &r) != 0) {
        return -1;
    }
    pthread_mutex_lock(&r.mu);
    while (r.active > 0) {
        pthread_cond_wait(&r.cv, &r.mu);
    }
    pthread_mutex_unlock(&r.mu);
    for (int i = 0; i < cfg->streams; i++) {
        *msgs += r.v[i].msgs;
        *errors += r.v[i].errors;
        if (r.v[i].last_rc != 0) {
            *last_rc = r.v[i].last_rc;
        }
        micro_stream_free(r.v[i].s);
    }
    free(r.v);
    pthread_cond_destroy(&r.cv);
    pthread_mutex_destroy(&r.mu);
    return 0;
}

int
main(int argc, char **argv)
{
    bench_cfg cfg = {NULL, "application/json", 1, 5.0, 0.5, 64, 0, false};
    parse_args(argc, argv, &cfg);
    is_json = strcmp(cfg.content_type, "application/protobuf") != 0;
    size_t nlen = is_json ? (size_t) cfg.size - 12
                          : (size_t) (cfg.size <= 129 ? cfg.size - 2
                                                      : cfg.size - 3);
    char *name = malloc(nlen + 1);
    req_body = malloc(nlen + 16);
    rsp_body = malloc(nlen + 24);
    if (name == NULL || req_body == NULL || rsp_body == NULL) {
        fprintf(stderr, "bench_stream: out of memory\n");
        return 2;
    }
    memset(name, 'x', nlen);
    name[nlen] = '\0';
    if (is_json) {
        /* The codec adds the '\n' (size = this + 1). */
        req_len = (size_t) snprintf(req_body, nlen + 16,
            "{\"name\":\"%s\"}", name);
        rsp_len = (size_t) snprintf(rsp_body, nlen + 24,
            "{\"msg\":\"Hello %s\"}", name);
    } else {
        req_len = pb_string_field(req_body, "", name);
        rsp_len = pb_string_field(rsp_body, "Hello ", name);
    }
    free(name);

    micro_options *opts = NULL;
    micro_loop *loop = NULL;
    micro_transport *tr = NULL;
    micro_client *cli = NULL;
    int rc = micro_options_new(&opts);
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
        fprintf(stderr, "bench_stream: setup: %s\n", micro_strerror(rc));
        return 2;
    }

    pipe_state *ps = calloc((size_t) cfg.streams, sizeof(*ps));
    if (ps == NULL) {
        fprintf(stderr, "bench_stream: out of memory\n");
        return 2;
    }
    micro_call_opts co = MICRO_CALL_OPTS_INIT;
    co.address = cfg.address;
    co.content_type = cfg.content_type;
    co.retries = MICRO_CALL_NO_RETRY;
    /* A stuck stream ends (MICRO_ETIMEDOUT) 30 s after the window. */
    co.stream_timeout_ms =
        (int64_t) ((cfg.warmup + cfg.duration) * 1000.0) + 30000;
    uint64_t errors = 0;
    int last_rc = 0;
    int opened = 0;
    if (cfg.async > 0) {
        micro_loop *aloop = NULL;
        uint64_t msgs = 0;
        if (micro_loop_new(&aloop) != 0 ||
            run_async(&cfg, cli, aloop, &co, &msgs, &errors, &last_rc) != 0) {
            fprintf(stderr, "bench_stream: cannot start the async run\n");
            return 2;
        }
        printf("{\"msgs_per_s\":%.0f,\"streams\":%d,\"size\":%ld,"
               "\"errors\":%llu}\n",
            (double) msgs / cfg.duration, cfg.streams, cfg.size,
            (unsigned long long) errors);
        fflush(stdout);
        if (last_rc != 0) {
            fprintf(stderr, "bench_stream: last error: %s\n",
                micro_strerror(last_rc));
        }
        micro_client_free(cli);
        micro_loop_free(aloop);
        micro_transport_free(tr);
        micro_loop_free(loop);
        micro_options_free(opts);
        free(ps);
        free(req_body);
        free(rsp_body);
        return 0;
    }
    for (int i = 0; i < cfg.streams; i++) {
        rc = micro_client_stream(cli, "greeter", "Greeter.Stream", &co,
            &ps[i].s);
        if (rc != 0) {
            fprintf(stderr, "bench_stream: open stream %d: %s\n", i,
                micro_strerror(rc));
            errors++;
            last_rc = rc;
            break;
        }
        opened++;
    }
    uint64_t start = now_ns() + (uint64_t) (cfg.warmup * 1e9);
    uint64_t end = start + (uint64_t) (cfg.duration * 1e9);
    for (int i = 0; i < opened; i++) {
        ps[i].start_ns = start;
        ps[i].end_ns = end;
        if (pthread_create(&ps[i].receiver, NULL, receiver_main, &ps[i]) !=
                0 ||
            pthread_create(&ps[i].sender, NULL, sender_main, &ps[i]) != 0) {
            fprintf(stderr, "bench_stream: pthread_create failed\n");
            return 2;
        }
    }
    uint64_t msgs = 0;
    for (int i = 0; i < opened; i++) {
        pthread_join(ps[i].sender, NULL);
        pthread_join(ps[i].receiver, NULL);
        msgs += ps[i].msgs;
        errors += ps[i].errors;
        if (ps[i].last_rc != 0) {
            last_rc = ps[i].last_rc;
        }
        micro_stream_free(ps[i].s);
    }
    printf("{\"msgs_per_s\":%.0f,\"streams\":%d,\"size\":%ld,"
           "\"errors\":%llu}\n",
        (double) msgs / cfg.duration, cfg.streams, cfg.size,
        (unsigned long long) errors);
    fflush(stdout);
    if (last_rc != 0) {
        fprintf(stderr, "bench_stream: last error: %s\n",
            micro_strerror(last_rc));
    }
    free(ps);
    free(req_body);
    free(rsp_body);
    micro_client_free(cli);
    micro_transport_free(tr);
    micro_loop_free(loop);
    micro_options_free(opts);
    return 0;
}
