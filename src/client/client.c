/*
 * The mucp client: resolve (selector or explicit address), encode with the
 * codec of the content type, round-trip on a pooled transport connection,
 * decode, and retry with Go Micro's back-off on the failures it retries.
 */
#include "client/publish_internal.h"
#include "core/internal.h"
#include "core/loop_internal.h"
#include "core/msg_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include <uv.h>

#include "selector/selector_internal.h"

typedef struct cwrapper {
    micro_call_wrapper_fn fn;
    void *arg;
} cwrapper;

/* The mucp implementation's state. */
typedef struct mucp_client {
    micro_transport *tr;
    micro_selector *sel;
    int retries;
    int64_t request_timeout_ms;
    int64_t conn_timeout_ms;
    char *content_type;
    unsigned retry_on;
    atomic_uint_fast64_t seq;
} mucp_client;

typedef struct cloop cloop;

/* The front end: wrappers and async calls, then the implementation. */
struct micro_client {
    const micro_client_ops *ops;
    void *st;
    cwrapper *wrappers;
    size_t n_wrappers;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* an lxs entry left, or selecting fell */
    micro__pool *async_pool;
    struct micro__publish *pub; /* publish.c */
    /* Loop-native async calls (see "Asynchronous calls"). The struct
     * itself lives while any of them, or a loop's state, refers to it. */
    atomic_bool closing; /* micro_client_free has begun */
    atomic_int refs;     /* the user's, one per async call, one per lx */
    cloop *lxs;          /* mu: per-loop states */
    int selecting;       /* mu: selections running off their loop */
};

struct micro_call {
    micro_msg *rsp;
    micro_buf payload;
    micro_error *err;
    char address[96];
    int attempts;
};

struct micro_call_chain {
    micro_client *c;
    size_t idx;
};

/* ------------------------------------------------------------------ */
/* The call object.                                                     */

const void *
micro_call_body(const micro_call *c, size_t *len)
{
    *len = c->payload.len;
    return c->payload.data ? (const void *) c->payload.data : "";
}

const char *
micro_call_header(const micro_call *c, const char *key)
{
    return c->rsp ? micro_msg_header(c->rsp, key) : NULL;
}

const micro_error *
micro_call_error(const micro_call *c)
{
    return c->err;
}

const char *
micro_call_address(const micro_call *c)
{
    return c->address;
}

int
micro_call_attempts(const micro_call *c)
{
    return c->attempts;
}

void
micro_call_free(micro_call *c)
{
    if (c == NULL) {
        return;
    }
    micro_msg_free(c->rsp);
    micro_buf_clear(&c->payload);
    micro_error_free(c->err);
    micro__free(c);
}

int
micro_call_set_body(micro_call *c, const void *p, size_t n)
{
    if (c == NULL || (p == NULL && n > 0)) {
        return MICRO_EINVAL;
    }
    c->payload.len = 0;
    return micro_buf_append(&c->payload, p, n);
}

int
micro_call_set_error(micro_call *c, const char *id, int32_t code,
    const char *detail)
{
    if (c == NULL) {
        return MICRO_EINVAL;
    }
    micro_error_free(c->err);
    c->err = micro_error_new(id, code, detail);
    return c->err ? 0 : MICRO_ENOMEM;
}

void
micro_call_set_address(micro_call *c, const char *address)
{
    if (c != NULL) {
        snprintf(c->address, sizeof(c->address), "%s",
            address ? address : "");
    }
}

static void
call_reset(micro_call *c)
{
    micro_msg_free(c->rsp);
    c->rsp = NULL;
    c->payload.len = 0;
    micro_error_free(c->err);
    c->err = NULL;
}

static void
call_set_error(micro_call *c, const char *id, int32_t code,
    const char *detail)
{
    micro_error_free(c->err);
    c->err = micro_error_new(id, code, detail);
}

/* ------------------------------------------------------------------ */
/* One attempt.                                                         */

static int
build_request(mucp_client *c, const micro_call_req *req,
    const micro_codec_ops *codec, const char *ct, int64_t timeout_ms,
    micro_msg **out)
{
    micro_msg *m = NULL;
    int rc = micro_msg_new(&m);
    if (rc != 0) {
        return rc;
    }
    char id[24];
    snprintf(id, sizeof(id), "%llu",
        (unsigned long long) atomic_fetch_add(&c->seq, 1));
    char tmo[32];
    snprintf(tmo, sizeof(tmo), "%lld", (long long) timeout_ms * 1000000LL);
    /* Metadata first: the framework's own headers win (Go Micro's order). */
    for (size_t i = 0; rc == 0 && i < req->opts.n_metadata; i++) {
        const micro_header_kv *kv = &req->opts.metadata[i];
        if (kv->key != NULL && kv->value != NULL &&
            strcasecmp(kv->key, "Micro-Topic") != 0) {
            rc = micro_msg_set_header(m, kv->key, kv->value);
        }
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Timeout", tmo);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Content-Type", ct);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Accept", ct);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Id", id);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Service", req->service);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Method", req->endpoint);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Endpoint", req->endpoint);
    }
    if (rc == 0) {
        micro_codec_info info = {(char *) req->endpoint, id, NULL};
        rc = codec->write_request(&info, req->body, req->len, &m->body);
    }
    if (rc != 0) {
        micro_msg_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* Turn the response into payload or error. */
static int
read_response(micro_call *call, const micro_codec_ops *codec)
{
    const char *e = micro_msg_header(call->rsp, "Micro-Error");
    if (e != NULL && e[0] != '\0' && strcmp(e, "EOS") != 0) {
        call->err = micro_error_parse(e, strlen(e));
        return call->err ? MICRO_EREMOTE : MICRO_ENOMEM;
    }
    micro_codec_info info = {0};
    int rc = codec->read_response(call->rsp->body.data, call->rsp->body.len,
        &info, &call->payload);
    if (rc == 0 && info.error != NULL && info.error[0] != '\0') {
        call->err = micro_error_parse(info.error, strlen(info.error));
        rc = call->err ? MICRO_EREMOTE : MICRO_ENOMEM;
    } else if (rc != 0) {
        call_set_error(call, "go.micro.client.codec", 500,
            "failed to decode the response");
        rc = MICRO_ECODEC;
    }
    micro_codec_info_clear(&info);
    return rc;
}

/* Go Micro's back-off before attempt n (util/backoff.Do): floor(n^e) x
 * 100 ms, 2 minutes from n = 14 on. A table of floor(n^e): it was the
 * only use of pow(), and libm cost every process 350 KiB of RSS. */
static int64_t
backoff_ms(int n)
{
    static const int16_t pow_e[14] = {
        0, 1, 6, 19, 43, 79, 130, 198, 285, 392, 522, 677, 858, 1066};
    if (n <= 0) {
        return 0;
    }
    if (n > 13) {
        return 120000;
    }
    return (int64_t) pow_e[n] * 100;
}

static bool
should_retry(const mucp_client *c, int rc, const micro_call *call, int sent)
{
    if (rc == MICRO_EREMOTE) {
        int32_t code = call->err ? call->err->code : 0;
        return (code == 408 && (c->retry_on & MICRO_RETRY_TIMEOUT)) ||
            (code == 500 && (c->retry_on & MICRO_RETRY_500));
    }
    if (rc == MICRO_ETIMEDOUT) {
        return (c->retry_on & MICRO_RETRY_TIMEOUT) != 0;
    }
    if (rc == MICRO_ECODEC || rc == MICRO_ENOMEM || rc == MICRO_EINVAL ||
        rc == MICRO_ECONTENTTYPE || rc == MICRO_ENOSERVICE ||
        rc == MICRO_ECANCELED || rc == MICRO_ECLOSED) {
        return false;
    }
    if (!sent) {
        return (c->retry_on & MICRO_RETRY_DIAL) != 0;
    }
    return (c->retry_on & MICRO_RETRY_TRANSPORT) != 0;
}

/*
 * A call, one attempt at a time. The blocking path (mucp_call) and the
 * loop-native one (the asynchronous calls below) run the same steps and
 * differ only in how they wait: plan, then per attempt gate (back-off),
 * begin, select (unless addressed), prepare, round trip, finish, retry?
 */

/* What a call does, from its options and the client's defaults. */
typedef struct call_plan {
    const micro_codec_ops *codec;
    const char *ct;
    int retries;
    int64_t per;      /* one attempt's budget */
    int64_t deadline; /* the whole call's */
} call_plan;

/* One attempt. */
typedef struct attempt {
    micro_node node; /* chosen by the selector (empty when addressed) */
    const char *addr;
    const micro_codec_ops *use;
    const char *use_ct;
    int64_t left; /* of the call's budget when the attempt began */
    int64_t t;    /* the attempt's budget */
    int64_t t0;   /* selector begin, ns */
} attempt;

static int
plan_call(const mucp_client *c, const micro_call_req *req, micro_call *call,
    call_plan *p)
{
    const micro_call_opts *o = &req->opts;
    p->ct = o->content_type ? o->content_type : c->content_type;
    p->codec = micro_codec_lookup(p->ct);
    if (p->codec == NULL) {
        call_set_error(call, "go.micro.client", 500,
            "unsupported content type");
        return MICRO_ECONTENTTYPE;
    }
    p->retries = o->retries > 0 ? o->retries
        : (o->retries < 0 ? 0 : c->retries);
    int64_t total = o->timeout_ms > 0 ? o->timeout_ms : c->request_timeout_ms;
    p->per = o->timeout_ms > 0 ? o->timeout_ms : c->conn_timeout_ms;
    p->deadline = micro__now_ms() + total;
    return 0;
}

/* May attempt n (from 0) start, after waiting *wait ms? Not when the
 * retries are used up or the back-off would outlast the call. */
static bool
attempt_gate(const call_plan *p, int n, int64_t *wait)
{
    if (n > p->retries) {
        return false;
    }
    *wait = backoff_ms(n);
    int64_t left = p->deadline - micro__now_ms();
    return n == 0 || *wait < left; /* else no time for another try */
}

/* After the back-off: MICRO_ETIMEDOUT when the call's time is up. */
static int
attempt_begin(const call_plan *p, micro_call *call, int n, attempt *a)
{
    memset(a, 0, sizeof(*a));
    a->left = p->deadline - micro__now_ms();
    if (a->left <= 0) {
        return MICRO_ETIMEDOUT;
    }
    call_reset(call);
    call->attempts = n + 1;
    return 0;
}

/* An unaddressed call without a selector cannot be made. */
static int
no_selector(micro_call *call)
{
    call_set_error(call, "go.micro.client", 500,
        "no selector and no address");
    return MICRO_EINVAL;
}

/* The selection of an attempt failed with rc: record why. True when the
 * call ends here (the service is unknown); otherwise the next attempt may
 * find a node. */
static bool
select_failed(micro_call *call, const char *service, int rc)
{
    char d[256];
    snprintf(d, sizeof(d), "service %s: %s", service,
        rc == MICRO_ENOSERVICE ? "not found" : micro_strerror(rc));
    call_set_error(call, "go.micro.client", 500, d);
    return rc == MICRO_ENOSERVICE;
}

/*
 * The node is chosen (or opts.address given): settle the codec, record
 * the address, build the request and bracket the attempt for the
 * selector. On failure the call ends with the code returned (the node is
 * cleared).
 */
static int
attempt_prepare(mucp_client *c, const micro_call_req *req, micro_call *call,
    const call_plan *p, attempt *a, micro_msg **m)
{
    a->use = p->codec;
    a->use_ct = p->ct;
    a->addr = req->opts.address;
    if (a->addr == NULL) {
        a->addr = a->node.address;
        /* Go Micro's legacy switch: a node that does not say
         * protocol=mucp gets the envelope codecs. */
        bool legacy = micro_metadata_get(&a->node.metadata, "protocol") ==
            NULL;
        if (legacy && p->codec == &micro_codec_json_ops) {
            a->use = &micro_codec_jsonrpc_ops;
            a->use_ct = "application/json-rpc";
        } else if (legacy && p->codec == &micro_codec_proto_ops) {
            a->use = &micro_codec_protorpc_ops;
            a->use_ct = "application/proto-rpc";
        }
    }
    snprintf(call->address, sizeof(call->address), "%s",
        a->addr ? a->addr : "");
    a->t = p->per < a->left ? p->per : a->left;
    int rc = build_request(c, req, a->use, a->use_ct, a->t, m);
    if (rc != 0) {
        micro_node_clear(&a->node);
        call_set_error(call, "go.micro.client.codec", 500,
            "failed to encode the request");
        return rc;
    }
    if (a->node.id != NULL) {
        micro_selector_begin(c->sel, req->service, a->node.id);
        a->t0 = micro__now_ns();
    }
    return 0;
}

/* The attempt's round trip ended with rc (call->rsp set on 0): decode,
 * turn failures into Go Micro errors, tell the selector, clear the node.
 * Returns the attempt's result. */
static int
attempt_finish(mucp_client *c, const micro_call_req *req, micro_call *call,
    attempt *a, int rc)
{
    if (rc == 0) {
        rc = read_response(call, a->use);
    } else if (rc == MICRO_ETIMEDOUT) {
        char d[160];
        snprintf(d, sizeof(d), "call timeout: %s to %s after %lld ms",
            req->endpoint, call->address, (long long) a->t);
        call_set_error(call, "go.micro.client", 408, d);
    } else if (rc == MICRO_ECANCELED) {
        /* What Go Micro answers when the caller's context is canceled. */
        call_set_error(call, "go.micro.client", 408, "context canceled");
    } else {
        char d[256];
        snprintf(d, sizeof(d), "connection error: %s: %s",
            call->address, micro_strerror(rc));
        call_set_error(call, "go.micro.client", 500, d);
    }
    if (a->node.id != NULL) {
        /* A canceled attempt says nothing about the node. */
        bool node_failed = rc != 0 && rc != MICRO_EREMOTE &&
            rc != MICRO_ECODEC && rc != MICRO_ECANCELED;
        int64_t lat = rc == MICRO_ECANCELED ? -1
                                            : (micro__now_ns() - a->t0) / 1000;
        micro_selector_end(c->sel, req->service, a->node.id,
            node_failed ? rc : 0, lat);
    }
    micro_node_clear(&a->node);
    return rc;
}

/* After attempt n ended with rc: is another one due? */
static bool
attempt_retry(const mucp_client *c, const micro_call_req *req,
    const micro_call *call, int rc, int sent, int n)
{
    if (rc == 0 || !should_retry(c, rc, call, sent)) {
        return false;
    }
    MICRO_LOGF(MICRO_LOG_DEBUG, "client", "%s %s attempt %d: %s; retrying",
        req->service, req->endpoint, n + 1, micro_strerror(rc));
    return true;
}

static void
sleep_ms(int64_t ms)
{
    if (ms <= 0) {
        return;
    }
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* The mucp call, blocking: resolution, attempts, retries. */
static int
mucp_call(void *st, micro_call_req *req, micro_call *call)
{
    mucp_client *c = st;
    call_plan p;
    int rc = plan_call(c, req, call, &p);
    if (rc != 0) {
        return rc;
    }
    rc = MICRO_ENONODE;
    for (int n = 0;; n++) {
        int64_t wait = 0;
        if (!attempt_gate(&p, n, &wait)) {
            break;
        }
        sleep_ms(wait);
        attempt a;
        int brc = attempt_begin(&p, call, n, &a);
        if (brc != 0) {
            rc = brc;
            break;
        }
        if (req->opts.address == NULL) {
            if (c->sel == NULL) {
                return no_selector(call);
            }
            rc = micro_selector_select(c->sel, req->service,
                req->opts.filter, &a.node);
            if (rc != 0) {
                if (select_failed(call, req->service, rc)) {
                    return rc;
                }
                continue;
            }
        }
        micro_msg *m = NULL;
        rc = attempt_prepare(c, req, call, &p, &a, &m);
        if (rc != 0) {
            return rc;
        }
        int sent = 0;
        rc = micro_transport_roundtrip(c->tr, a.addr, m, a.t, &call->rsp,
            &sent);
        micro_msg_free(m);
        rc = attempt_finish(c, req, call, &a, rc);
        if (!attempt_retry(c, req, call, rc, sent, n)) {
            break;
        }
    }
    return rc;
}

int
micro_call_next(micro_call_chain *next, micro_call_req *req, micro_call *call)
{
    micro_client *c = next->c;
    if (next->idx < c->n_wrappers) {
        const cwrapper *w = &c->wrappers[next->idx];
        micro_call_chain n2 = {c, next->idx + 1};
        return w->fn(req, call, &n2, w->arg);
    }
    return c->ops->call(c->st, req, call);
}

/* ------------------------------------------------------------------ */
/* Public entry points.                                                 */

static unsigned
parse_retry_on(const char *s)
{
    unsigned bits = 0;
    if (s == NULL) {
        return MICRO_RETRY_TIMEOUT | MICRO_RETRY_DIAL;
    }
    if (strstr(s, "timeout")) {
        bits |= MICRO_RETRY_TIMEOUT;
    }
    if (strstr(s, "dial")) {
        bits |= MICRO_RETRY_DIAL;
    }
    if (strstr(s, "500")) {
        bits |= MICRO_RETRY_500;
    }
    if (strstr(s, "transport")) {
        bits |= MICRO_RETRY_TRANSPORT;
    }
    return bits;
}

static int
mucp_init(void *st, micro_transport *transport, micro_selector *selector,
    const micro_options *opts)
{
    mucp_client *c = st;
    if (transport == NULL) {
        return MICRO_EINVAL;
    }
    c->tr = transport;
    c->sel = selector;
    c->retries = (int) micro_options_get_int(opts, "client_retries");
    c->request_timeout_ms =
        micro_options_get_ms(opts, "client_request_timeout");
    c->conn_timeout_ms = micro_options_get_ms(opts, "client_conn_timeout");
    if (c->request_timeout_ms <= 0) {
        c->request_timeout_ms = 30000;
    }
    if (c->conn_timeout_ms <= 0) {
        c->conn_timeout_ms = 5000;
    }
    /* A request timeout shorter than an attempt's bounds the attempt. */
    if (c->conn_timeout_ms > c->request_timeout_ms) {
        c->conn_timeout_ms = c->request_timeout_ms;
    }
    const char *ct = micro_options_get_str(opts, "client_content_type");
    c->content_type = micro__strdup(ct ? ct : "application/json");
    c->retry_on =
        parse_retry_on(micro_options_get_str(opts, "client_retry_on"));
    return c->content_type ? 0 : MICRO_ENOMEM;
}

static void
mucp_set_retry_on(void *st, unsigned bits)
{
    ((mucp_client *) st)->retry_on = bits;
}

static void
mucp_fini(void *st)
{
    mucp_client *c = st;
    micro__free(c->content_type);
}

const micro_client_ops micro_client_mucp_ops = {
    .abi = MICRO_CLIENT_ABI,
    .name = "mucp",
    .state_size = sizeof(mucp_client),
    .init = mucp_init,
    .call = mucp_call,
    .set_retry_on = mucp_set_retry_on,
    .fini = mucp_fini,
};

int
micro_client_new_with_ops(micro_client **out, const micro_client_ops *ops,
    micro_transport *transport, micro_selector *selector,
    const micro_options *opts)
{
    *out = NULL;
    if (ops == NULL || ops->abi != MICRO_CLIENT_ABI || ops->init == NULL ||
        ops->call == NULL) {
        return MICRO_EINVAL;
    }
    micro_client *c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        return MICRO_ENOMEM;
    }
    c->st = micro__calloc(1, ops->state_size ? ops->state_size : 1);
    if (c->st == NULL) {
        micro__free(c);
        return MICRO_ENOMEM;
    }
    c->ops = ops;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    atomic_init(&c->closing, false);
    atomic_init(&c->refs, 1);
    int rc = ops->init(c->st, transport, selector, opts);
    if (rc != 0) {
        if (ops->fini != NULL) {
            ops->fini(c->st);
        }
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        micro__free(c->st);
        micro__free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int
micro_client_new(micro_client **out, micro_transport *transport,
    micro_selector *selector, const micro_options *opts)
{
    return micro_client_new_with_ops(out, &micro_client_mucp_ops, transport,
        selector, opts);
}

static void native_cancel_all(micro_client *c);

static void
client_unref(micro_client *c)
{
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        micro__free(c);
    }
}

void
micro_client_free(micro_client *c)
{
    if (c == NULL) {
        return;
    }
    atomic_store(&c->closing, true);
    /* Pending loop-native calls complete with MICRO_ECANCELED; after this
     * nothing of theirs touches the implementation, the transport or the
     * selector. */
    native_cancel_all(c);
    micro__pool_free(c->async_pool);
    if (c->ops->fini != NULL) {
        c->ops->fini(c->st);
    }
    micro__free(c->wrappers);
    micro__publish_free(c->pub);
    micro__free(c->st);
    c->st = NULL;
    client_unref(c);
}

struct micro__publish **
micro__client_pub(micro_client *c)
{
    return &c->pub;
}

int
micro_client_wrap(micro_client *c, micro_call_wrapper_fn fn, void *arg)
{
    if (c == NULL || fn == NULL) {
        return MICRO_EINVAL;
    }
    cwrapper *ws = micro__realloc(c->wrappers,
        (c->n_wrappers + 1) * sizeof(*ws));
    if (ws == NULL) {
        return MICRO_ENOMEM;
    }
    c->wrappers = ws;
    ws[c->n_wrappers].fn = fn;
    ws[c->n_wrappers].arg = arg;
    c->n_wrappers++;
    return 0;
}

void
micro_client_set_retry_on(micro_client *c, unsigned bits)
{
    if (c != NULL && c->ops->set_retry_on != NULL) {
        c->ops->set_retry_on(c->st, bits);
    }
}

int
micro_client_call(micro_client *c, const char *service, const char *endpoint,
    const void *body, size_t len, const micro_call_opts *opts,
    micro_call **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (c == NULL || service == NULL || endpoint == NULL ||
        (body == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    micro_call *call = micro__calloc(1, sizeof(*call));
    if (call == NULL) {
        return MICRO_ENOMEM;
    }
    micro_call_req req = {service, endpoint, body, len, {0}};
    if (opts != NULL) {
        req.opts = *opts;
    }
    micro_call_chain chain = {c, 0};
    int rc = micro_call_next(&chain, &req, call);
    if (out != NULL) {
        *out = call;
    } else {
        micro_call_free(call);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Asynchronous calls.
 *
 * Two paths. The mucp client over a transport with roundtrip_async (the
 * http transport) and without wrappers runs each call on the caller's
 * loop: the steps of mucp_call, with the round trip on the loop (any
 * number in flight, no thread per call), the back-off on a uv timer, and
 * the selection answered from the selector's cache on the loop, or, when
 * that would take a registry call, on libuv's thread pool. Otherwise
 * (wrappers are synchronous; another client ops table has only call) the
 * synchronous path runs on the client's own 8 threads and completes on
 * the caller's loop.                                                   */

/* A call's arguments, copied: the call outlives micro_client_call_async.
 * One allocation holds the body and every string. */
typedef struct req_copy {
    micro_call_req req;
    micro_select_filter filter;
    micro_header_kv *md;
    char *store;
} req_copy;

static size_t
str_size(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

static const char *
put_str(char **pos, const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    memcpy(*pos, s, n);
    const char *r = *pos;
    *pos += n;
    return r;
}

static void
req_copy_clear(req_copy *rc)
{
    micro__free(rc->md);
    micro__free(rc->store);
    memset(rc, 0, sizeof(*rc));
}

static int
req_copy_init(req_copy *rc, const char *service, const char *endpoint,
    const void *body, size_t len, const micro_call_opts *opts)
{
    memset(rc, 0, sizeof(*rc));
    micro_call_opts o;
    memset(&o, 0, sizeof(o));
    if (opts != NULL) {
        o = *opts;
    }
    const micro_select_filter *f = o.filter;
    size_t nmd = o.metadata != NULL ? o.n_metadata : 0;
    size_t n = len + str_size(service) + str_size(endpoint) +
        str_size(o.address) + str_size(o.content_type);
    if (f != NULL) {
        n += str_size(f->version) + str_size(f->label_key) +
            str_size(f->label_value) + str_size(f->endpoint);
    }
    for (size_t i = 0; i < nmd; i++) {
        n += str_size(o.metadata[i].key) + str_size(o.metadata[i].value);
    }
    rc->store = micro__malloc(n > 0 ? n : 1);
    if (nmd > 0) {
        rc->md = micro__calloc(nmd, sizeof(*rc->md));
    }
    if (rc->store == NULL || (nmd > 0 && rc->md == NULL)) {
        req_copy_clear(rc);
        return MICRO_ENOMEM;
    }
    char *pos = rc->store;
    if (len > 0) {
        memcpy(pos, body, len);
    }
    rc->req.body = pos;
    rc->req.len = len;
    pos += len;
    rc->req.service = put_str(&pos, service);
    rc->req.endpoint = put_str(&pos, endpoint);
    rc->req.opts = o;
    rc->req.opts.address = put_str(&pos, o.address);
    rc->req.opts.content_type = put_str(&pos, o.content_type);
    rc->req.opts.filter = NULL;
    if (f != NULL) {
        rc->filter.version = put_str(&pos, f->version);
        rc->filter.label_key = put_str(&pos, f->label_key);
        rc->filter.label_value = put_str(&pos, f->label_value);
        rc->filter.endpoint = put_str(&pos, f->endpoint);
        rc->req.opts.filter = &rc->filter;
    }
    for (size_t i = 0; i < nmd; i++) {
        rc->md[i].key = put_str(&pos, o.metadata[i].key);
        rc->md[i].value = put_str(&pos, o.metadata[i].value);
    }
    rc->req.opts.metadata = rc->md;
    rc->req.opts.n_metadata = nmd;
    return 0;
}

/* --- on the client's threads ----------------------------------------- */

typedef struct pool_call {
    micro__task task;
    micro_client *c;
    micro_loop *loop;
    req_copy args;
    micro_call_cb cb;
    void *arg;
    int rc;
    micro_call *call;
} pool_call;

static void
pool_call_free(pool_call *a)
{
    req_copy_clear(&a->args);
    micro__free(a);
}

static void
pool_call_complete(micro__task *t)
{
    pool_call *a = (pool_call *) t;
    a->cb(a->arg, a->rc, a->call);
    pool_call_free(a);
}

static void
pool_call_run(micro__task *t)
{
    pool_call *a = (pool_call *) t;
    const micro_call_req *r = &a->args.req;
    a->rc = micro_client_call(a->c, r->service, r->endpoint, r->body, r->len,
        &r->opts, &a->call);
    a->task.fn = pool_call_complete;
    if (micro__loop_post_task(a->loop, &a->task) != 0) {
        /* The loop is gone: nobody can be told; drop quietly but count. */
        micro_log(MICRO_LOG_WARN, "client",
            "async completion of %s dropped: its loop has closed",
            r->endpoint);
        micro_call_free(a->call);
        pool_call_free(a);
    }
}

static int
pool_call_start(micro_client *c, micro_loop *loop, const char *service,
    const char *endpoint, const void *body, size_t len,
    const micro_call_opts *opts, micro_call_cb cb, void *arg)
{
    pthread_mutex_lock(&c->mu);
    if (c->async_pool == NULL) {
        int rc = micro__pool_new(&c->async_pool, 8, "client-async");
        if (rc != 0) {
            pthread_mutex_unlock(&c->mu);
            return rc;
        }
    }
    pthread_mutex_unlock(&c->mu);
    pool_call *a = micro__calloc(1, sizeof(*a));
    if (a == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = req_copy_init(&a->args, service, endpoint, body, len, opts);
    if (rc != 0) {
        micro__free(a);
        return rc;
    }
    a->c = c;
    a->loop = loop;
    a->cb = cb;
    a->arg = arg;
    a->task.fn = pool_call_run;
    rc = micro__pool_submit(c->async_pool, &a->task);
    if (rc != 0) {
        pool_call_free(a);
    }
    return rc;
}

/* --- on the caller's loop --------------------------------------------- */

typedef struct acall acall;

/* Where a loop-native call is, for cancellation. */
enum {
    AC_RUN,    /* between steps (never seen by a cancel) */
    AC_TIMER,  /* back-off, or a completion waiting for the next turn */
    AC_SELECT, /* selection on libuv's thread pool */
    AC_RT,     /* round trip in flight */
    AC_DONE,   /* cb has run */
};

struct acall {
    micro__task task; /* first: the hop to the loop */
    micro_client *c;
    micro_loop *loop;
    cloop *lx;          /* once started */
    acall *prev, *next; /* lx->calls */
    req_copy args;
    micro_call *call; /* the caller's once cb runs */
    micro_call_cb cb;
    void *arg;
    call_plan plan;
    attempt at;
    int n;  /* the attempt, from 0 */
    int rc; /* the result so far */
    int state;
    micro_transport_call *rt;
    uv_timer_t timer; /* once timer_init */
    uv_work_t work;   /* while work_on */
    int sel_rc;
    atomic_bool canceled; /* read by the selecting thread */
    bool timer_init;
    bool work_on;
    bool in_start; /* inside micro_client_call_async */
    bool ending;   /* the timer delivers rc */
};

/* A client's state on one loop: its pending calls, found through the
 * loop's ext list (no lock) and cancelled when the loop closes. */
struct cloop {
    micro__loop_ext ext; /* first; key: the client */
    micro_client *c;
    micro_loop *loop;
    cloop *next; /* c->lxs */
    acall *calls;
    micro__task cancel_task;
    int depth;          /* lx_cancel frames on the stack */
    bool cancel_posted; /* c->mu */
};

static void ac_attempt(acall *a);
static void ac_begin(acall *a);

static mucp_client *
ac_mucp(const acall *a)
{
    return a->c->st;
}

static void
ac_free(acall *a)
{
    micro_client *c = a->c;
    req_copy_clear(&a->args);
    micro_call_free(a->call);
    micro__free(a);
    client_unref(c);
}

static void ac_release(acall *a);

static void
on_ac_timer_closed(uv_handle_t *h)
{
    acall *a = h->data;
    a->timer_init = false;
    ac_release(a);
}

/* Free a finished call once nothing of libuv's refers to it. */
static void
ac_release(acall *a)
{
    if (a->state != AC_DONE || a->work_on) {
        return;
    }
    if (a->timer_init) {
        if (!uv_is_closing((uv_handle_t *) &a->timer)) {
            uv_close((uv_handle_t *) &a->timer, on_ac_timer_closed);
        }
        return;
    }
    ac_free(a);
}

/* Hand the result to the caller (loop thread, outside the start). */
static void
ac_complete(acall *a, int rc)
{
    cloop *lx = a->lx;
    if (lx != NULL) {
        if (a->prev != NULL) {
            a->prev->next = a->next;
        } else {
            lx->calls = a->next;
        }
        if (a->next != NULL) {
            a->next->prev = a->prev;
        }
        a->prev = a->next = NULL;
        a->lx = NULL;
    }
    a->state = AC_DONE;
    micro_call *call = a->call;
    a->call = NULL;
    a->cb(a->arg, rc, call);
    ac_release(a);
}

static void
on_ac_timer(uv_timer_t *t)
{
    acall *a = t->data;
    if (a->ending) {
        ac_complete(a, a->rc);
    } else {
        ac_begin(a);
    }
}

static void
ac_timer(acall *a, int64_t ms)
{
    if (!a->timer_init) {
        uv_timer_init(micro_loop_uv(a->loop), &a->timer);
        a->timer.data = a;
        a->timer_init = true;
    }
    a->state = AC_TIMER;
    uv_timer_start(&a->timer, on_ac_timer, (uint64_t) ms, 0);
}

/* The call's result is rc. Inside micro_client_call_async it waits for
 * the next loop turn: a callback never runs inside the call that started
 * it. */
static void
ac_end(acall *a, int rc)
{
    if (a->in_start) {
        a->rc = rc;
        a->ending = true;
        ac_timer(a, 0);
        return;
    }
    ac_complete(a, rc);
}

static void
ac_attempt_done(acall *a, int rc, micro_msg *rsp, int sent)
{
    mucp_client *m = ac_mucp(a);
    a->state = AC_RUN;
    a->call->rsp = rsp;
    rc = attempt_finish(m, &a->args.req, a->call, &a->at, rc);
    a->rc = rc;
    if (!attempt_retry(m, &a->args.req, a->call, rc, sent, a->n)) {
        ac_end(a, rc);
        return;
    }
    a->n++;
    ac_attempt(a);
}

static void
ac_on_rt(void *arg, int rc, micro_msg *rsp, int sent)
{
    acall *a = arg;
    a->rt = NULL;
    ac_attempt_done(a, rc, rsp, sent);
}

static void
ac_send(acall *a)
{
    mucp_client *m = ac_mucp(a);
    micro_msg *req = NULL;
    int rc = attempt_prepare(m, &a->args.req, a->call, &a->plan, &a->at, &req);
    if (rc != 0) {
        ac_end(a, rc);
        return;
    }
    a->state = AC_RT;
    rc = micro_transport_roundtrip_async(m->tr, a->loop, a->at.addr, req,
        a->at.t, ac_on_rt, a, &a->rt);
    micro_msg_free(req);
    if (rc != 0) {
        /* Nothing was sent; the attempt fails as a dial would. */
        a->rt = NULL;
        ac_attempt_done(a, rc, NULL, 0);
    }
}

static void
ac_selected(acall *a, int rc)
{
    a->state = AC_RUN;
    if (rc != 0) {
        a->rc = rc;
        if (select_failed(a->call, a->args.req.service, rc)) {
            ac_end(a, rc);
            return;
        }
        a->n++;
        ac_attempt(a);
        return;
    }
    ac_send(a);
}

/* libuv's thread pool: a selection that may ask the registry. */
static void
sel_work(uv_work_t *w)
{
    acall *a = (acall *) ((char *) w - offsetof(acall, work));
    micro_client *c = a->c;
    if (atomic_load(&a->canceled)) {
        a->sel_rc = MICRO_ECANCELED;
    } else {
        mucp_client *m = c->st;
        a->sel_rc = micro_selector_select(m->sel, a->args.req.service,
            a->args.req.opts.filter, &a->at.node);
    }
    pthread_mutex_lock(&c->mu);
    if (--c->selecting == 0) {
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

static void
sel_after(uv_work_t *w, int status)
{
    acall *a = (acall *) ((char *) w - offsetof(acall, work));
    (void) status; /* UV_ECANCELED only after ac_cancel: then AC_DONE */
    a->work_on = false;
    if (a->state == AC_DONE) {
        micro_node_clear(&a->at.node);
        ac_release(a);
        return;
    }
    ac_selected(a, a->sel_rc);
}

static void
ac_select_off_loop(acall *a)
{
    micro_client *c = a->c;
    pthread_mutex_lock(&c->mu);
    c->selecting++;
    pthread_mutex_unlock(&c->mu);
    a->state = AC_SELECT;
    a->work_on = true;
    int rc = uv_queue_work(micro_loop_uv(a->loop), &a->work, sel_work,
        sel_after);
    if (rc != 0) {
        a->work_on = false;
        pthread_mutex_lock(&c->mu);
        if (--c->selecting == 0) {
            pthread_cond_broadcast(&c->cv);
        }
        pthread_mutex_unlock(&c->mu);
        ac_selected(a, rc);
    }
}

/* After the back-off of attempt a->n. */
static void
ac_begin(acall *a)
{
    mucp_client *m = ac_mucp(a);
    const micro_call_req *req = &a->args.req;
    a->state = AC_RUN;
    int rc = attempt_begin(&a->plan, a->call, a->n, &a->at);
    if (rc != 0) {
        ac_end(a, rc);
        return;
    }
    if (req->opts.address != NULL) {
        ac_send(a);
        return;
    }
    if (m->sel == NULL) {
        ac_end(a, no_selector(a->call));
        return;
    }
    rc = micro__selector_select_cached(m->sel, req->service, req->opts.filter,
        &a->at.node);
    if (rc == MICRO_EAGAIN) {
        ac_select_off_loop(a);
        return;
    }
    ac_selected(a, rc);
}

static void
ac_attempt(acall *a)
{
    int64_t wait = 0;
    if (!attempt_gate(&a->plan, a->n, &wait)) {
        ac_end(a, a->rc);
        return;
    }
    if (wait > 0) {
        ac_timer(a, wait);
        return;
    }
    ac_begin(a);
}

/* Loop thread: complete a pending call with MICRO_ECANCELED (or with its
 * result, when that only waited for the next turn). */
static void
ac_cancel(acall *a)
{
    switch (a->state) {
    case AC_RT:
        /* The transport runs ac_on_rt with MICRO_ECANCELED before it
         * returns, which ends the call (a canceled attempt is not
         * retried). */
        micro_transport_cancel(ac_mucp(a)->tr, a->rt);
        return;
    case AC_TIMER:
        uv_timer_stop(&a->timer);
        if (a->ending) {
            ac_complete(a, a->rc);
            return;
        }
        break;
    case AC_SELECT:
        atomic_store(&a->canceled, true);
        if (uv_cancel((uv_req_t *) &a->work) == 0) {
            /* It will never run; sel_after still comes, with
             * UV_ECANCELED. */
            pthread_mutex_lock(&a->c->mu);
            if (--a->c->selecting == 0) {
                pthread_cond_broadcast(&a->c->cv);
            }
            pthread_mutex_unlock(&a->c->mu);
        }
        break;
    default:
        break;
    }
    call_set_error(a->call, "go.micro.client", 408, "context canceled");
    ac_complete(a, MICRO_ECANCELED);
}

/* Cancel every call of lx and free it. Callbacks may free the client,
 * which cancels lx again from inside this frame: the innermost frame
 * empties the list, the outermost frees lx. */
static void
lx_cancel(cloop *lx)
{
    lx->depth++;
    micro__loop_ext_remove(lx->loop, &lx->ext);
    while (lx->calls != NULL) {
        ac_cancel(lx->calls);
    }
    if (--lx->depth > 0) {
        return;
    }
    micro_client *c = lx->c;
    pthread_mutex_lock(&c->mu);
    for (cloop **pp = &c->lxs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == lx) {
            *pp = lx->next;
            break;
        }
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    micro__free(lx);
    client_unref(c);
}

static void
lx_on_loop_close(micro__loop_ext *x)
{
    lx_cancel((cloop *) x);
}

static void
lx_cancel_task(micro__task *t)
{
    lx_cancel((cloop *) ((char *) t - offsetof(cloop, cancel_task)));
}

/* Loop thread: the client's state on loop, made on first use. */
static int
lx_get(micro_client *c, micro_loop *loop, cloop **out)
{
    cloop *lx = (cloop *) micro__loop_ext_find(loop, c);
    if (lx != NULL) {
        *out = lx;
        return 0;
    }
    lx = micro__calloc(1, sizeof(*lx));
    if (lx == NULL) {
        return MICRO_ENOMEM;
    }
    lx->ext.key = c;
    lx->ext.on_close = lx_on_loop_close;
    lx->c = c;
    lx->loop = loop;
    lx->cancel_task.fn = lx_cancel_task;
    pthread_mutex_lock(&c->mu);
    bool closing = atomic_load(&c->closing);
    if (!closing) {
        lx->next = c->lxs;
        c->lxs = lx;
        atomic_fetch_add(&c->refs, 1);
    }
    pthread_mutex_unlock(&c->mu);
    if (closing) {
        micro__free(lx);
        return MICRO_ECLOSED;
    }
    micro__loop_ext_add(loop, &lx->ext);
    *out = lx;
    return 0;
}

/* Loop thread: register the call and run it as far as it goes without
 * waiting. An error means it was not started (nothing to cancel). */
static int
ac_start(acall *a)
{
    micro_client *c = a->c;
    if (atomic_load(&c->closing)) {
        return MICRO_ECANCELED;
    }
    cloop *lx = NULL;
    int rc = lx_get(c, a->loop, &lx);
    if (rc != 0) {
        return rc == MICRO_ECLOSED ? MICRO_ECANCELED : rc;
    }
    a->lx = lx;
    a->next = lx->calls;
    if (lx->calls != NULL) {
        lx->calls->prev = a;
    }
    lx->calls = a;
    rc = plan_call(ac_mucp(a), &a->args.req, a->call, &a->plan);
    if (rc != 0) {
        ac_end(a, rc);
        return 0;
    }
    a->rc = MICRO_ENONODE;
    ac_attempt(a);
    return 0;
}

/* The hop from another thread. */
static void
ac_task(micro__task *t)
{
    acall *a = (acall *) t;
    int rc = ac_start(a);
    if (rc != 0) {
        if (rc == MICRO_ECANCELED) {
            call_set_error(a->call, "go.micro.client", 408,
                "context canceled");
        }
        ac_complete(a, rc);
    }
}

static bool
native_ok(const micro_client *c)
{
    return c->ops == &micro_client_mucp_ops && c->n_wrappers == 0 &&
        micro_transport_has_async(((const mucp_client *) c->st)->tr);
}

static int
native_call_start(micro_client *c, micro_loop *loop, const char *service,
    const char *endpoint, const void *body, size_t len,
    const micro_call_opts *opts, micro_call_cb cb, void *arg)
{
    acall *a = micro__calloc(1, sizeof(*a));
    if (a == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = req_copy_init(&a->args, service, endpoint, body, len, opts);
    if (rc == 0) {
        a->call = micro__calloc(1, sizeof(*a->call));
        rc = a->call != NULL ? 0 : MICRO_ENOMEM;
    }
    if (rc != 0) {
        req_copy_clear(&a->args);
        micro__free(a);
        return rc;
    }
    a->c = c;
    a->loop = loop;
    a->cb = cb;
    a->arg = arg;
    atomic_init(&a->canceled, false);
    atomic_fetch_add(&c->refs, 1);
    a->task.fn = ac_task;
    if (!micro_loop_is_current(loop)) {
        rc = micro__loop_post_task(loop, &a->task);
        if (rc != 0) {
            ac_free(a);
        }
        return rc;
    }
    /* On the loop already (typically inside another call's callback):
     * start at once, saving a hop. */
    if (micro__loop_closing(loop)) {
        ac_free(a);
        return MICRO_ECLOSED;
    }
    a->in_start = true;
    rc = ac_start(a);
    if (rc != 0) {
        ac_free(a);
        return rc == MICRO_ECANCELED ? MICRO_ECLOSED : rc;
    }
    /* Not freed: a completion found during the start waits on a's timer. */
    a->in_start = false;
    return 0;
}

/*
 * micro_client_free: cancel every pending loop-native call, on its own
 * loop (directly when that is this thread's), and wait until none is left
 * and no selection still runs off its loop.
 */
static void
native_cancel_all(micro_client *c)
{
    pthread_mutex_lock(&c->mu);
    for (;;) {
        cloop *mine = NULL;
        bool others = false;
        for (cloop *lx = c->lxs; lx != NULL; lx = lx->next) {
            if (micro_loop_is_current(lx->loop)) {
                /* depth > 0 with no calls: a frame up this stack is
                 * cancelling it and frees it on return. */
                if (lx->calls != NULL || lx->depth == 0) {
                    mine = lx;
                    break;
                }
                continue;
            }
            others = true;
            if (!lx->cancel_posted) {
                lx->cancel_posted = true;
                /* Refused when the loop is closing: then its on_close
                 * hook cancels lx. */
                (void) micro__loop_post_task(lx->loop, &lx->cancel_task);
            }
        }
        if (mine != NULL) {
            pthread_mutex_unlock(&c->mu);
            lx_cancel(mine);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (!others && c->selecting == 0) {
            break;
        }
        pthread_cond_wait(&c->cv, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
}

int
micro_client_call_async(micro_client *c, micro_loop *loop,
    const char *service, const char *endpoint, const void *body, size_t len,
    const micro_call_opts *opts, micro_call_cb cb, void *arg)
{
    if (c == NULL || loop == NULL || service == NULL || endpoint == NULL ||
        cb == NULL || (body == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    if (atomic_load(&c->closing)) {
        return MICRO_ECLOSED;
    }
    if (native_ok(c)) {
        return native_call_start(c, loop, service, endpoint, body, len, opts,
            cb, arg);
    }
    return pool_call_start(c, loop, service, endpoint, body, len, opts, cb,
        arg);
}
