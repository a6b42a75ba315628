/*
 * The mucp client: resolve (selector or explicit address), encode with the
 * codec of the content type, round-trip on a pooled transport connection,
 * decode, and retry with Go Micro's back-off on the failures it retries.
 */
#include "client/publish_internal.h"
#include "core/internal.h"
#include "core/loop_internal.h"
#include "core/msg_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

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

/* The front end: wrappers and async calls, then the implementation. */
struct micro_client {
    const micro_client_ops *ops;
    void *st;
    cwrapper *wrappers;
    size_t n_wrappers;
    pthread_mutex_t mu;
    micro__pool *async_pool;
    struct micro__publish *pub; /* publish.c */
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

/* Go Micro's back-off before attempt n: floor(n^e) x 100 ms. */
static int64_t
backoff_ms(int n)
{
    if (n <= 0) {
        return 0;
    }
    if (n > 13) {
        return 120000;
    }
    return (int64_t) floor(pow((double) n, M_E)) * 100;
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
    int rc = ops->init(c->st, transport, selector, opts);
    if (rc != 0) {
        if (ops->fini != NULL) {
            ops->fini(c->st);
        }
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

void
micro_client_free(micro_client *c)
{
    if (c == NULL) {
        return;
    }
    micro__pool_free(c->async_pool);
    if (c->ops->fini != NULL) {
        c->ops->fini(c->st);
    }
    pthread_mutex_destroy(&c->mu);
    micro__free(c->wrappers);
    micro__publish_free(c->pub);
    micro__free(c->st);
    micro__free(c);
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
/* Asynchronous calls: run the synchronous path on the client's own
 * threads and complete on the caller's loop.                           */

typedef struct async_call {
    micro__task task;
    micro_client *c;
    micro_loop *loop;
    char *service;
    char *endpoint;
    micro_buf body;
    micro_call_opts opts;
    char *address;
    char *content_type;
    micro_header_kv *md;
    char **md_store;
    micro_call_cb cb;
    void *arg;
    int rc;
    micro_call *call;
} async_call;

static void
async_free(async_call *a)
{
    micro__free(a->service);
    micro__free(a->endpoint);
    micro_buf_clear(&a->body);
    micro__free(a->address);
    micro__free(a->content_type);
    for (size_t i = 0; a->md_store != NULL && i < 2 * a->opts.n_metadata;
         i++) {
        micro__free(a->md_store[i]);
    }
    micro__free(a->md_store);
    micro__free(a->md);
    micro__free(a);
}

static void
async_complete(micro__task *t)
{
    async_call *a = (async_call *) t;
    a->cb(a->arg, a->rc, a->call);
    async_free(a);
}

static void
async_run(micro__task *t)
{
    async_call *a = (async_call *) t;
    a->rc = micro_client_call(a->c, a->service, a->endpoint, a->body.data,
        a->body.len, &a->opts, &a->call);
    a->task.fn = async_complete;
    if (micro__loop_post_task(a->loop, &a->task) != 0) {
        /* The loop is gone: nobody can be told; drop quietly but count. */
        micro_log(MICRO_LOG_WARN, "client",
            "async completion of %s dropped: its loop has closed",
            a->endpoint);
        micro_call_free(a->call);
        async_free(a);
    }
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
    pthread_mutex_lock(&c->mu);
    if (c->async_pool == NULL) {
        int rc = micro__pool_new(&c->async_pool, 8, "client-async");
        if (rc != 0) {
            pthread_mutex_unlock(&c->mu);
            return rc;
        }
    }
    pthread_mutex_unlock(&c->mu);
    async_call *a = micro__calloc(1, sizeof(*a));
    if (a == NULL) {
        return MICRO_ENOMEM;
    }
    a->c = c;
    a->loop = loop;
    a->cb = cb;
    a->arg = arg;
    a->service = micro__strdup(service);
    a->endpoint = micro__strdup(endpoint);
    bool ok = a->service && a->endpoint &&
        micro_buf_append(&a->body, body ? body : "", len) == 0;
    if (opts != NULL) {
        a->opts = *opts;
        a->opts.filter = NULL; /* borrowed pointers are not kept */
        a->address = micro__strdup(opts->address);
        a->content_type = micro__strdup(opts->content_type);
        a->opts.address = a->address;
        a->opts.content_type = a->content_type;
        if (ok && opts->n_metadata > 0) {
            a->md = micro__calloc(opts->n_metadata, sizeof(*a->md));
            a->md_store = micro__calloc(2 * opts->n_metadata, sizeof(char *));
            ok = a->md && a->md_store;
            for (size_t i = 0; ok && i < opts->n_metadata; i++) {
                a->md_store[2 * i] = micro__strdup(opts->metadata[i].key);
                a->md_store[2 * i + 1] =
                    micro__strdup(opts->metadata[i].value);
                a->md[i].key = a->md_store[2 * i];
                a->md[i].value = a->md_store[2 * i + 1];
            }
            a->opts.metadata = a->md;
        } else {
            a->opts.n_metadata = 0;
            a->opts.metadata = NULL;
        }
    }
    a->task.fn = async_run;
    if (!ok) {
        async_free(a);
        return MICRO_ENOMEM;
    }
    int rc = micro__pool_submit(c->async_pool, &a->task);
    if (rc != 0) {
        async_free(a);
    }
    return rc;
}
