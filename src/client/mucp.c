/*
 * Client implementation "mucp": Go Micro's RPC over a transport.
 *
 * A call is planned (codec, retries, budgets), then made one attempt at a
 * time: gate (retries left, back-off n^e x 100 ms), begin, select a node
 * (or opts.address), prepare the request, exchange, finish (decode, Go
 * Micro errors, selector feedback), retry? The steps are shared by
 *
 *  - the blocking call (mucp_call): the exchange is the transport's
 *    blocking round trip on the calling thread (the fast path: no loop
 *    hop, measured in docs/benchmarks.md);
 *  - the asynchronous call on a loop (mucp_call_async): the exchange is
 *    micro_transport_roundtrip_async, the back-off a loop timer, and a
 *    selection the cache cannot answer runs on libuv's thread pool;
 *  - a stream's opening (mucp_stream): the exchange is a fresh dialled
 *    socket and the opening message (rpc/stream.c); a failed dial moves to
 *    another node as a unary call's does, since nothing was sent.
 */
#include "client/client_internal.h"
#include "core/loop_internal.h"
#include "core/msg_internal.h"
#include "rpc/grpc.h"
#include "rpc/mucp.h"
#include "selector/selector_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include <uv.h>

typedef struct mucp_client {
    micro_transport *tr;
    /* gRPC (rpc/grpc.c): used for nodes whose record says protocol=grpc,
     * or for every call (grpc_all: --client=grpc, where tr is it). */
    micro_transport *grpc_tr;
    bool grpc_all;
    bool own_grpc_tr;
    micro_selector *sel;
    int retries;
    int64_t request_timeout_ms;
    int64_t conn_timeout_ms;
    char *content_type;
    atomic_uint retry_on;
    atomic_uint_fast64_t seq;
    size_t window;
    pthread_mutex_t mu; /* selecting */
    pthread_cond_t cv;
    int selecting;      /* selections running on libuv's pool */
} mucp_client;

/* ------------------------------------------------------------------ */
/* The steps of an attempt.                                             */

static int
build_request(mucp_client *c, const micro_call_req *req,
    const micro_codec_ops *codec, const char *ct, int64_t timeout_ms,
    micro_call *call, micro_msg **out)
{
    micro_msg *m = NULL;
    int rc = micro_msg_new(&m);
    if (rc != 0) {
        return rc;
    }
    char id[24];
    snprintf(id, sizeof(id), "%llu",
        (unsigned long long) atomic_fetch_add(&c->seq, 1));
    micro__mucp_req r = {.service = req->service,
        .endpoint = req->endpoint,
        .content_type = ct,
        .id = id,
        .metadata = req->opts.metadata,
        .n_metadata = req->opts.n_metadata,
        .timeout_ms = timeout_ms};
    const char *bad = NULL;
    rc = micro__mucp_request_headers(m, &r, &bad);
    if (rc == MICRO_EINVAL) {
        char d[200];
        snprintf(d, sizeof(d),
            "invalid metadata key or value: %.80s (keys are HTTP tokens; "
            "values hold no CR, LF or NUL)", bad ? bad : "");
        micro__call_error(call, "go.micro.client", 400, d);
    }
    if (rc == 0) {
        micro_codec_info info = {(char *) req->endpoint, id, NULL};
        rc = codec->write_request(&info, req->body, req->len, &m->body);
        if (rc != 0) {
            micro__call_error(call, "go.micro.client.codec", 500,
                "failed to encode the request");
        }
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
    micro_error *err = NULL;
    int rc = micro__mucp_read_answer(call->rsp, codec, &call->payload, &err);
    if (rc == MICRO_EOF) {
        rc = 0; /* an empty answer (EOS) of a unary call */
    } else if (rc == MICRO_EREMOTE) {
        micro_error_free(call->err);
        call->err = err;
    } else if (rc == MICRO_ECODEC) {
        micro__call_error(call, "go.micro.client.codec", 500,
            "failed to decode the response");
    }
    return rc;
}

/* Go Micro's back-off before attempt n (util/backoff.Do): floor(n^e) x
 * 100 ms, 2 minutes from n = 14 on (a table: pow() was libm's only use). */
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
    unsigned on = atomic_load(&c->retry_on);
    if (rc == MICRO_EREMOTE) {
        int32_t code = call->err ? call->err->code : 0;
        return (code == 408 && (on & MICRO_RETRY_TIMEOUT)) ||
            (code == 500 && (on & MICRO_RETRY_500));
    }
    if (rc == MICRO_ETIMEDOUT) {
        return (on & MICRO_RETRY_TIMEOUT) != 0;
    }
    if (rc == MICRO_ECODEC || rc == MICRO_ENOMEM || rc == MICRO_EINVAL ||
        rc == MICRO_ECONTENTTYPE || rc == MICRO_ENOSERVICE ||
        rc == MICRO_ECANCELED || rc == MICRO_ECLOSED) {
        return false;
    }
    if (rc == MICRO_ECERT || rc == MICRO_ETLS) {
        return false; /* a refused certificate stays refused */
    }
    if (!sent) {
        return (on & MICRO_RETRY_DIAL) != 0;
    }
    return (on & MICRO_RETRY_TRANSPORT) != 0;
}

typedef struct call_plan {
    const micro_codec_ops *codec;
    const char *ct;
    int retries;
    int64_t per;      /* one attempt's budget */
    int64_t deadline; /* the whole call's */
} call_plan;

typedef struct attempt {
    micro_node node; /* chosen by the selector (empty when addressed) */
    micro_transport *tr; /* the protocol the node speaks */
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
        micro__call_error(call, "go.micro.client", 500,
            "unsupported content type");
        return MICRO_ECONTENTTYPE;
    }
    p->retries = o->retries > 0 ? o->retries
        : (o->retries < 0 ? 0 : c->retries);
    int64_t total = o->timeout_ms > 0 ? o->timeout_ms : c->request_timeout_ms;
    p->per = o->timeout_ms > 0 ? o->timeout_ms : c->conn_timeout_ms;
    p->deadline = micro__deadline_after(total);
    return 0;
}

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

static int
attempt_begin(const call_plan *p, micro_call *call, int n, attempt *a)
{
    memset(a, 0, sizeof(*a));
    a->left = p->deadline - micro__now_ms();
    if (a->left <= 0) {
        return MICRO_ETIMEDOUT;
    }
    micro__call_reset(call);
    call->attempts = n + 1;
    return 0;
}

static int
no_selector(micro_call *call)
{
    micro__call_error(call, "go.micro.client", 500,
        "no selector and no address");
    return MICRO_EINVAL;
}

/* True when the call ends here (the service is unknown). */
static bool
select_failed(micro_call *call, const char *service, int rc)
{
    char d[256];
    snprintf(d, sizeof(d), "service %s: %s", service,
        rc == MICRO_ENOSERVICE ? "not found" : micro_strerror(rc));
    micro__call_error(call, "go.micro.client", 500, d);
    return rc == MICRO_ENOSERVICE;
}

/* The node is chosen: settle the codec, the address and the budget. */
/* A gRPC attempt: the payload goes framed, as application/grpc+json for
 * JSON and application/grpc+proto otherwise (Go Micro's gRPC client
 * default), unless the caller chose a gRPC content type. */
static void
attempt_grpc(attempt *a)
{
    if (strncasecmp(a->use_ct, "application/grpc", 16) != 0) {
        bool json = a->use == &micro_codec_json_ops ||
            a->use == &micro_codec_jsonrpc_ops;
        a->use_ct = json ? "application/grpc+json" : "application/grpc+proto";
        a->use = micro_codec_lookup(a->use_ct);
    }
}

static void
attempt_target(const mucp_client *c, const micro_call_req *req,
    micro_call *call, const call_plan *p, attempt *a)
{
    a->use = p->codec;
    a->use_ct = p->ct;
    a->addr = req->opts.address;
    a->tr = c->tr;
    const char *proto = micro_metadata_get(&a->node.metadata, "protocol");
    bool addressed = a->addr != NULL;
    if (!addressed) {
        a->addr = a->node.address;
    }
    if (c->grpc_all || (!addressed && proto != NULL &&
                           strcmp(proto, "grpc") == 0 && c->grpc_tr)) {
        /* Go Micro's gRPC server (or --client=grpc): over gRPC. */
        a->tr = c->grpc_all ? c->tr : c->grpc_tr;
        attempt_grpc(a);
    } else if (!addressed && proto == NULL) {
        /* Go Micro's legacy switch: a node that does not say
         * protocol=mucp gets the envelope codecs. */
        if (p->codec == &micro_codec_json_ops) {
            a->use = &micro_codec_jsonrpc_ops;
            a->use_ct = "application/json-rpc";
        } else if (p->codec == &micro_codec_proto_ops) {
            a->use = &micro_codec_protorpc_ops;
            a->use_ct = "application/proto-rpc";
        }
    }
    snprintf(call->address, sizeof(call->address), "%s",
        a->addr ? a->addr : "");
    a->t = p->per < a->left ? p->per : a->left;
}

static void
attempt_bracket(mucp_client *c, const micro_call_req *req, attempt *a)
{
    if (a->node.id != NULL) {
        micro_selector_begin(c->sel, req->service, a->node.id);
        a->t0 = micro__now_ns();
    }
}

static int
attempt_prepare(mucp_client *c, const micro_call_req *req, micro_call *call,
    const call_plan *p, attempt *a, micro_msg **m)
{
    attempt_target(c, req, call, p, a);
    int rc = build_request(c, req, a->use, a->use_ct, a->t, call, m);
    if (rc != 0) {
        micro_node_clear(&a->node);
        return rc;
    }
    attempt_bracket(c, req, a);
    return 0;
}

/* The attempt's exchange ended with rc (call->rsp set on 0). */
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
        micro__call_error(call, "go.micro.client", 408, d);
    } else if (rc == MICRO_ECANCELED) {
        /* What Go Micro answers when the caller's context is canceled. */
        micro__call_error(call, "go.micro.client", 408, "context canceled");
    } else {
        char d[256];
        snprintf(d, sizeof(d), "connection error: %s: %s", call->address,
            micro_strerror(rc));
        micro__call_error(call, "go.micro.client", 500, d);
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
    struct timespec ts = {(time_t) (ms / 1000), (long) (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ------------------------------------------------------------------ */
/* The blocking call.                                                   */

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
        rc = micro_transport_roundtrip(a.tr, a.addr, m, a.t, &call->rsp,
            &sent);
        micro_msg_free(m);
        rc = attempt_finish(c, req, call, &a, rc);
        if (!attempt_retry(c, req, call, rc, sent, n)) {
            break;
        }
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* On a loop: calls and stream openings.                                */

enum { MC_RUN, MC_TIMER, MC_SELECT, MC_RT, MC_DIAL, MC_DONE };

typedef struct mcall {
    mucp_client *c;
    micro_loop *loop;
    micro_call_req *req;
    micro_call *call;
    bool stream;                 /* an opening, not a call */
    micro_client_done_fn done;   /* calls */
    micro_stream_open_cb opened; /* streams */
    void *arg;
    micro_stream *out;           /* the opened stream */
    call_plan plan;
    attempt at;
    int n;
    int rc;
    int state;
    micro__timer timer;
    micro__task task;            /* a completion out of the start */
    micro_transport_call *rt;
    micro_socket *dialing;       /* a stream's dial in progress */
    bool deferred;               /* mc_deliver_task is queued */
    uv_work_t work;
    int sel_rc;
    atomic_bool canceled;
    bool work_on;
    bool in_start;
} mcall;

static void mc_attempt(mcall *a);
static void mc_begin(mcall *a);

static void
mc_free(mcall *a)
{
    micro_call_free(a->call != NULL && a->stream ? a->call : NULL);
    micro__free(a);
}

/* The result goes to the owner; a is freed once nothing else (libuv's
 * pool, a queued delivery) refers to it. */
static void
mc_deliver(mcall *a)
{
    a->state = MC_DONE;
    micro__timer_stop(a->loop, &a->timer);
    if (a->stream) {
        micro_stream *s = a->out;
        a->out = NULL;
        micro_call_free(a->call);
        a->call = NULL;
        a->opened(a->arg, a->rc, s);
    } else {
        a->done(a->arg, a->rc);
    }
    if (!a->work_on && !a->deferred) {
        mc_free(a);
    }
}

static void
mc_deliver_task(micro__task *t)
{
    mcall *a = (mcall *) ((char *) t - offsetof(mcall, task));
    a->deferred = false;
    if (a->state != MC_DONE) {
        mc_deliver(a);
    } else if (!a->work_on) {
        mc_free(a); /* a cancel delivered it meanwhile */
    }
}

static void
mc_end(mcall *a, int rc)
{
    a->rc = rc;
    if (a->in_start) {
        a->state = MC_TIMER; /* a cancel delivers it at once */
        a->deferred = true;
        a->task.fn = mc_deliver_task;
        micro__loop_defer(a->loop, &a->task);
        return;
    }
    mc_deliver(a);
}

static void
on_backoff(micro__timer *t)
{
    mc_begin((mcall *) ((char *) t - offsetof(mcall, timer)));
}

static void
mc_attempt_done(mcall *a, int rc, int sent)
{
    mucp_client *c = a->c;
    a->state = MC_RUN;
    rc = attempt_finish(c, a->req, a->call, &a->at, rc);
    a->rc = rc;
    if (!attempt_retry(c, a->req, a->call, rc, sent, a->n)) {
        mc_end(a, rc);
        return;
    }
    a->n++;
    mc_attempt(a);
}

static void
mc_on_rt(void *arg, int rc, micro_msg *rsp, int sent)
{
    mcall *a = arg;
    a->rt = NULL;
    a->call->rsp = rsp;
    mc_attempt_done(a, rc, sent);
}

/* A stream's dial ended: open it there, or fail the attempt. */
static void
mc_on_dial(void *arg, int rc, micro_socket *sock)
{
    mcall *a = arg;
    mucp_client *c = a->c;
    a->dialing = NULL;
    a->state = MC_RUN;
    if (rc != 0) {
        mc_attempt_done(a, rc, 0);
        return;
    }
    char id[24];
    snprintf(id, sizeof(id), "%llu",
        (unsigned long long) atomic_fetch_add(&c->seq, 1));
    micro_msg *base = NULL;
    rc = micro_msg_new(&base);
    micro__mucp_req r = {.service = a->req->service,
        .endpoint = a->req->endpoint,
        .content_type = a->at.use_ct,
        .id = id,
        .metadata = a->req->opts.metadata,
        .n_metadata = a->req->opts.n_metadata,
        .timeout_ms = micro__opts_stream_timeout(&a->req->opts),
        .stream = true};
    const char *bad = NULL;
    if (rc == 0) {
        rc = micro__mucp_request_headers(base, &r, &bad);
        if (rc == MICRO_EINVAL) {
            micro__call_error(a->call, "go.micro.client", 400,
                "invalid metadata key or value");
        }
    }
    micro__stream_client_cfg cfg = {.codec = a->at.use,
        .content_type = a->at.use_ct,
        .service = a->req->service,
        .endpoint = a->req->endpoint,
        .id = id,
        .window = c->window,
        .deadline = micro__deadline_after(r.timeout_ms),
        .base = base};
    micro_stream *s = NULL;
    if (rc == 0) {
        rc = micro__stream_client_new(sock, &cfg, &s);
    }
    micro_msg_free(cfg.base); /* NULL once the stream took it */
    if (rc != 0) {
        micro_socket_close(sock);
        micro_node_clear(&a->at.node);
        mc_end(a, rc);
        return;
    }
    if (a->at.node.id != NULL) {
        micro_selector_end(c->sel, a->req->service, a->at.node.id, 0,
            (micro__now_ns() - a->at.t0) / 1000);
    }
    micro_node_clear(&a->at.node);
    a->out = s;
    mc_end(a, 0);
}

static void
mc_send(mcall *a)
{
    mucp_client *c = a->c;
    if (a->stream) {
        attempt_target(c, a->req, a->call, &a->plan, &a->at);
        attempt_bracket(c, a->req, &a->at);
        micro_dial_opts o = {.size = sizeof(o), .timeout_ms = a->at.t,
            .stream = true};
        a->state = MC_DIAL;
        int rc = micro_transport_dial(a->at.tr, a->loop, a->at.addr, &o,
            mc_on_dial, a, &a->dialing);
        if (rc != 0) {
            a->dialing = NULL;
            mc_attempt_done(a, rc, 0);
        }
        return;
    }
    micro_msg *req = NULL;
    int rc = attempt_prepare(c, a->req, a->call, &a->plan, &a->at, &req);
    if (rc != 0) {
        mc_end(a, rc);
        return;
    }
    a->state = MC_RT;
    rc = micro_transport_roundtrip_async(a->at.tr, a->loop, a->at.addr, &req,
        a->at.t, mc_on_rt, a, &a->rt);
    micro_msg_free(req);
    if (rc != 0) {
        /* Nothing was sent; the attempt fails as a dial would. */
        a->rt = NULL;
        mc_attempt_done(a, rc, 0);
    }
}

static void
mc_selected(mcall *a, int rc)
{
    a->state = MC_RUN;
    if (rc != 0) {
        a->rc = rc;
        if (select_failed(a->call, a->req->service, rc)) {
            mc_end(a, rc);
            return;
        }
        a->n++;
        mc_attempt(a);
        return;
    }
    mc_send(a);
}

static void
selecting_done(mucp_client *c)
{
    pthread_mutex_lock(&c->mu);
    if (--c->selecting == 0) {
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

/* libuv's thread pool: a selection that may ask the registry. */
static void
sel_work(uv_work_t *w)
{
    mcall *a = (mcall *) ((char *) w - offsetof(mcall, work));
    if (atomic_load(&a->canceled)) {
        a->sel_rc = MICRO_ECANCELED;
    } else {
        a->sel_rc = micro_selector_select(a->c->sel, a->req->service,
            a->req->opts.filter, &a->at.node);
    }
    selecting_done(a->c);
}

static void
sel_after(uv_work_t *w, int status)
{
    mcall *a = (mcall *) ((char *) w - offsetof(mcall, work));
    (void) status; /* UV_ECANCELED only after a cancel: then MC_DONE */
    a->work_on = false;
    if (a->state == MC_DONE) {
        micro_node_clear(&a->at.node);
        mc_free(a);
        return;
    }
    mc_selected(a, a->sel_rc);
}

static void
mc_select_off_loop(mcall *a)
{
    mucp_client *c = a->c;
    pthread_mutex_lock(&c->mu);
    c->selecting++;
    pthread_mutex_unlock(&c->mu);
    a->state = MC_SELECT;
    a->work_on = true;
    int rc = uv_queue_work(micro_loop_uv(a->loop), &a->work, sel_work,
        sel_after);
    if (rc != 0) {
        a->work_on = false;
        selecting_done(c);
        mc_selected(a, rc);
    }
}

/* After the back-off of attempt a->n. */
static void
mc_begin(mcall *a)
{
    mucp_client *c = a->c;
    a->state = MC_RUN;
    int rc = attempt_begin(&a->plan, a->call, a->n, &a->at);
    if (rc != 0) {
        mc_end(a, rc);
        return;
    }
    if (a->req->opts.address != NULL) {
        mc_send(a);
        return;
    }
    if (c->sel == NULL) {
        mc_end(a, no_selector(a->call));
        return;
    }
    rc = micro__selector_select_cached(c->sel, a->req->service,
        a->req->opts.filter, &a->at.node);
    if (rc == MICRO_EAGAIN) {
        mc_select_off_loop(a);
        return;
    }
    mc_selected(a, rc);
}

static void
mc_attempt(mcall *a)
{
    int64_t wait = 0;
    if (!attempt_gate(&a->plan, a->n, &wait)) {
        mc_end(a, a->rc);
        return;
    }
    if (wait > 0) {
        a->state = MC_TIMER;
        if (micro__timer_start(a->loop, &a->timer, micro__now_ms() + wait,
                on_backoff) != 0) {
            mc_end(a, MICRO_ENOMEM);
        }
        return;
    }
    mc_begin(a);
}

static int
mc_start(mucp_client *c, micro_loop *loop, micro_call_req *req,
    micro_call *call, mcall **out)
{
    mcall *a = micro__calloc(1, sizeof(*a));
    if (a == NULL) {
        return MICRO_ENOMEM;
    }
    a->c = c;
    a->loop = loop;
    a->req = req;
    a->call = call;
    atomic_init(&a->canceled, false);
    *out = a;
    return 0;
}

static void
mc_run(mcall *a)
{
    a->in_start = true;
    int rc = plan_call(a->c, a->req, a->call, &a->plan);
    if (rc != 0) {
        mc_end(a, rc);
    } else {
        a->rc = MICRO_ENONODE;
        mc_attempt(a);
    }
    a->in_start = false;
}

static int
mucp_call_async(void *st, micro_loop *loop, micro_call_req *req,
    micro_call *call, micro_client_done_fn done, void *arg, void **handle)
{
    mcall *a = NULL;
    int rc = mc_start(st, loop, req, call, &a);
    if (rc != 0) {
        return rc;
    }
    a->done = done;
    a->arg = arg;
    *handle = a;
    mc_run(a);
    return 0;
}

static int
mucp_stream(void *st, micro_loop *loop, micro_call_req *req,
    micro_stream_open_cb cb, void *arg, void **handle)
{
    mcall *a = NULL;
    micro_call *call = micro__calloc(1, sizeof(*call));
    if (call == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = mc_start(st, loop, req, call, &a);
    if (rc != 0) {
        micro__free(call);
        return rc;
    }
    a->stream = true;
    a->opened = cb;
    a->arg = arg;
    *handle = a;
    mc_run(a);
    return 0;
}

/* Loop thread: end a pending call or opening now, with MICRO_ECANCELED. */
static void
mucp_cancel(void *st, void *handle)
{
    mcall *a = handle;
    (void) st;
    switch (a->state) {
    case MC_DONE:
        return;
    case MC_RT:
        /* The transport completes the round trip with MICRO_ECANCELED
         * before it returns, which ends the call (never retried). */
        micro_transport_cancel(a->at.tr, a->rt);
        return;
    case MC_DIAL:
        if (a->dialing != NULL) {
            micro_socket_close(a->dialing); /* its callback never runs */
            a->dialing = NULL;
        }
        micro_node_clear(&a->at.node);
        break;
    case MC_TIMER:
        micro__timer_stop(a->loop, &a->timer);
        if (a->deferred) {
            /* Its result only waited for the next turn: it goes now; the
             * queued task finds the call done and frees it. */
            mc_deliver(a);
            return;
        }
        break;
    case MC_SELECT:
        atomic_store(&a->canceled, true);
        if (uv_cancel((uv_req_t *) &a->work) == 0) {
            selecting_done(a->c); /* it will never run */
        }
        break;
    default:
        break;
    }
    micro__call_error(a->call, "go.micro.client", 408, "context canceled");
    a->rc = MICRO_ECANCELED;
    mc_deliver(a);
}

/* ------------------------------------------------------------------ */
/* The implementation.                                                  */

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
    int64_t w = micro_options_get_int(opts, "transport_window");
    c->window = w > 0 ? (size_t) w : (size_t) 256 << 10;
    const char *ct = micro_options_get_str(opts, "client_content_type");
    c->content_type = micro__strdup(ct ? ct : "application/json");
    atomic_init(&c->retry_on,
        parse_retry_on(micro_options_get_str(opts, "client_retry_on")));
    if (c->content_type == NULL) {
        return MICRO_ENOMEM;
    }
    /* Nodes of Go Micro's gRPC server (protocol=grpc) are called over
     * gRPC; the transport connects on first use only. */
    int rc = micro_transport_new(&c->grpc_tr, &micro__grpc_transport_ops,
        micro_transport_loop(transport), opts);
    if (rc != 0) {
        micro__free(c->content_type);
        return rc;
    }
    c->own_grpc_tr = true;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return 0;
}

void
micro__mucp_client_grpc_all(void *st)
{
    mucp_client *c = st;
    c->grpc_all = true;
}

static void
mucp_set_retry_on(void *st, unsigned bits)
{
    atomic_store(&((mucp_client *) st)->retry_on, bits);
}

static micro_loop *
mucp_default_loop(void *st)
{
    return micro_transport_loop(((mucp_client *) st)->tr);
}

static void
mucp_fini(void *st)
{
    mucp_client *c = st;
    /* Selections still on libuv's pool read the selector: wait. */
    pthread_mutex_lock(&c->mu);
    while (c->selecting > 0) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    micro__free(c->content_type);
    if (c->own_grpc_tr) {
        micro_transport_free(c->grpc_tr);
        c->grpc_tr = NULL;
    }
}

/* The options this client reads besides the core's (its --help group). */
static const micro_option_desc mucp_options[] = {
    {"client_retry_on", MICRO_OPT_STR, "timeout,dial",
        "errors that are retried, comma-separated: timeout, dial, 500, "
        "transport"},
    MICRO_OPTION_END,
};

const micro_client_ops micro_client_mucp_ops = {
    .abi = MICRO_CLIENT_ABI,
    .name = "mucp",
    .state_size = sizeof(mucp_client),
    .init = mucp_init,
    .call = mucp_call,
    .set_retry_on = mucp_set_retry_on,
    .fini = mucp_fini,
    .call_async = mucp_call_async,
    .cancel = mucp_cancel,
    .stream = mucp_stream,
    .default_loop = mucp_default_loop,
    .options = mucp_options,
};
