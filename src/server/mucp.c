/*
 * Server implementation "mucp": Go Micro's RPC protocol over a transport.
 * Reads a request message, picks the codec by content type, routes
 * "Handler.Method" (server.c) on the worker pool or inline on the loop,
 * and answers in Go Micro's shape (errors in Micro-Error as
 * {"id","code","detail","status"}).
 */
#include "server/server_internal.h"
#include "core/msg_internal.h"

#include <stdarg.h>
#include <time.h>

typedef struct mucp {
    micro_server *s;
    micro_loop *loop;
    micro_transport *tr;
    micro__pool *pool;
    int workers;
    bool inline_all;
    bool started;
} mucp;

/* One request in flight. */
typedef struct mucp_req {
    micro__task task;
    mucp *m;
    micro_exchange *ex;
    micro_msg *msg;
    micro_request req; /* the handler's view */
    const micro_codec_ops *codec;
    micro_codec_info info;
    micro_buf payload;
} mucp_req;

static const char *
hdr2(const micro_msg *m, const char *a, const char *b)
{
    const char *v = micro_msg_header(m, a);
    if (v == NULL || v[0] == '\0') {
        v = micro_msg_header(m, b);
    }
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

static void
req_free(mucp_req *r)
{
    micro_msg_free(r->msg);
    micro_codec_info_clear(&r->info);
    micro_buf_clear(&r->payload);
    micro__free(r);
}

static void
set_error_headers(micro_msg *out, const char *json)
{
    if (json != NULL) {
        micro_msg_set_header(out, "Micro-Error", json);
        micro_msg_set_header(out, "X-Micro-Error", json);
    }
}

/* Send the reply for r (success or error) and free r. */
static void
finish(mucp_req *r, micro_response *rsp)
{
    micro_server *s = r->m->s;
    micro_msg *out = rsp->msg;
    micro_buf wire = {0};
    micro_codec_info info = {r->info.endpoint, r->info.id, NULL};
    if (out == NULL && micro_msg_new(&out) != 0) {
        out = NULL;
    }
    if (rsp->err == NULL && r->codec != NULL &&
        r->codec->write_response(&info, rsp->body.data, rsp->body.len,
            &wire) != 0) {
        wire.len = 0;
        rsp->err = micro_error_new(s->name, 500,
            "failed to encode the response");
    }
    if (rsp->err != NULL) {
        atomic_fetch_add(&s->errors, 1);
        char *json = micro_error_to_json(rsp->err);
        if (out != NULL) {
            set_error_headers(out, json);
        }
        /* json-rpc carries the error in its envelope too: the Go client
         * reads it only there. */
        info.error = json;
        wire.len = 0;
        if (r->codec != NULL &&
            r->codec->write_response(&info, NULL, 0, &wire) != 0) {
            wire.len = 0;
        }
        free(json);
    }
    if (out != NULL && wire.len > 0 && r->req.ct != NULL) {
        micro_msg_set_header(out, "Content-Type", r->req.ct);
    }
    if (out != NULL) {
        micro_msg_take_body(out, &wire);
    }
    micro_buf_clear(&wire);
    micro_buf_clear(&rsp->body);
    micro_error_free(rsp->err);
    rsp->err = NULL;
    rsp->msg = NULL;
    micro_exchange *ex = r->ex;
    micro_transport *tr = r->m->tr;
    atomic_fetch_sub(&s->inflight, 1);
    req_free(r);
    if (out == NULL) {
        /* Out of memory: an empty answer still frees the exchange. */
        if (micro_msg_new(&out) != 0) {
            micro_log(MICRO_LOG_ERR, "server",
                "out of memory: a reply is lost and its connection stalls");
            return;
        }
    }
    micro_transport_reply(tr, ex, &out);
    micro_msg_free(out);
}

/* Fail r with a Go Micro error without running a handler. */
static void
fail(mucp_req *r, int32_t code, const char *fmt, ...)
{
    micro_response rsp = {.s = r->m->s};
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    rsp.err = micro_error_new(r->m->s->name, code, detail);
    finish(r, &rsp);
}

/* Decode, route and run. Worker thread, or the loop for inline work. */
static void
process(mucp_req *r)
{
    micro_server *s = r->m->s;
    int rc = r->codec->read_request(r->msg->body.data, r->msg->body.len,
        &r->info, &r->payload);
    if (rc != 0) {
        atomic_fetch_add(&s->codec_errors, 1);
        MICRO_LOGF(MICRO_LOG_INFO, "server", "%s: undecodable %s body",
            micro_request_remote(&r->req), r->req.ct);
        fail(r, 400, "decode error: the %s body is malformed", r->req.ct);
        return;
    }
    if (r->req.endpoint == NULL) {
        r->req.endpoint = r->info.endpoint;
    }
    r->req.body = r->payload.data;
    r->req.len = r->payload.len;
    micro_response rsp = {.s = s};
    micro__server_route(s, &r->req, &rsp);
    finish(r, &rsp);
}

static void
process_task(micro__task *t)
{
    process((mucp_req *) t);
}

static int64_t
parse_timeout_ns(const char *v)
{
    if (v == NULL) {
        return 0;
    }
    char *end = NULL;
    long long ns = strtoll(v, &end, 10);
    if (end == v || *end != '\0' || ns <= 0) {
        return 0;
    }
    return (int64_t) ns;
}

/* Loop thread: a request arrived. */
static void
on_request(void *arg, micro_exchange *ex, micro_msg *msg)
{
    mucp *m = arg;
    micro_server *s = m->s;
    atomic_fetch_add(&s->requests, 1);
    atomic_fetch_add(&s->inflight, 1);
    mucp_req *r = micro__calloc(1, sizeof(*r));
    if (r == NULL) {
        atomic_fetch_sub(&s->inflight, 1);
        micro_msg_free(msg);
        micro_msg *none = NULL;
        if (micro_msg_new(&none) == 0) {
            micro_transport_reply(m->tr, ex, &none);
        }
        return;
    }
    r->m = m;
    r->ex = ex;
    r->msg = msg;
    r->req.s = s;
    r->req.msg = msg;
    r->req.service = hdr2(msg, "Micro-Service", "X-Micro-Service");
    r->req.endpoint = hdr2(msg, "Micro-Endpoint", "X-Micro-Endpoint");
    if (r->req.endpoint == NULL) {
        r->req.endpoint = hdr2(msg, "Micro-Method", "X-Micro-Method");
    }
    int64_t ns = parse_timeout_ns(micro_msg_header(msg, "Timeout"));
    if (ns > 0) {
        r->req.deadline = micro__now_ms() + (ns + 999999) / 1000000;
    }
    r->req.ct = micro_msg_header(msg, "Content-Type");
    if (r->req.ct == NULL || r->req.ct[0] == '\0') {
        r->req.ct = "application/protobuf"; /* Go Micro's server default */
    }
    if (hdr2(msg, "Micro-Topic", "X-Micro-Topic") != NULL) {
        /* An event: subscriber.c answers it and owns the inflight count. */
        micro__free(r);
        micro__server_event(s, m->tr, ex, msg);
        return;
    }
    if (hdr2(msg, "Micro-Stream", "X-Micro-Stream") != NULL) {
        fail(r, 400, "stream requests are not accepted by this server");
        return;
    }
    r->codec = micro_codec_lookup(r->req.ct);
    /* Go Micro's legacy switch: a request naming no service, method or
     * endpoint is read with the envelope codec of its content type. */
    if (r->req.service == NULL && r->req.endpoint == NULL &&
        hdr2(msg, "Micro-Protocol", "X-Micro-Protocol") == NULL &&
        strncasecmp(r->req.ct, "application/json", 16) == 0) {
        r->codec = &micro_codec_jsonrpc_ops;
    } else if (r->req.service == NULL && r->req.endpoint == NULL &&
        hdr2(msg, "Micro-Protocol", "X-Micro-Protocol") == NULL &&
        (strncasecmp(r->req.ct, "application/protobuf", 20) == 0 ||
            strncasecmp(r->req.ct, "application/octet-stream", 24) == 0)) {
        r->codec = &micro_codec_protorpc_ops; /* legacy map, spec §2.3 */
    }
    if (r->codec == NULL) {
        atomic_fetch_add(&s->codec_errors, 1);
        MICRO_LOGF(MICRO_LOG_INFO, "server", "unsupported Content-Type %s",
            r->req.ct);
        fail(r, 400, "unsupported Content-Type: %s", r->req.ct);
        return;
    }
    bool run_inline = m->inline_all;
    if (!run_inline && r->req.endpoint != NULL) {
        const micro__handler *h = micro__server_find(s, r->req.endpoint);
        run_inline = h != NULL && (h->flags & MICRO_HANDLER_INLINE) != 0;
    }
    if (run_inline) {
        process(r);
        return;
    }
    r->task.fn = process_task;
    int rc = micro__pool_submit(m->pool, &r->task);
    if (rc != 0) {
        fail(r, 503, rc == MICRO_ECLOSED ? "server is shutting down"
                                         : "no worker thread could start");
    }
}

/* ------------------------------------------------------------------ */
/* Ops.                                                                 */

static int
mucp_init(void *st, micro_server *srv, micro_loop *loop,
    micro_transport *transport, const micro_options *opts)
{
    mucp *m = st;
    if (loop == NULL || transport == NULL) {
        return MICRO_EINVAL;
    }
    m->s = srv;
    m->loop = loop;
    m->tr = transport;
    m->workers = (int) micro_options_get_int(opts, "server_workers");
    m->inline_all = micro_options_get_bool(opts, "server_inline");
    return 0;
}

static int
mucp_start(void *st)
{
    mucp *m = st;
    int rc = micro__pool_new(&m->pool, m->workers > 0 ? m->workers : 16,
        "server");
    if (rc != 0) {
        return rc;
    }
    const char *addr =
        micro_options_get_str(micro_server_options(m->s), "server_address");
    if (addr == NULL || addr[0] == '\0') {
        addr = ":0";
    }
    rc = micro_transport_listen(m->tr, addr, on_request, m);
    if (rc != 0) {
        micro__pool_free(m->pool);
        m->pool = NULL;
        return rc;
    }
    m->started = true;
    return 0;
}

static int
mucp_stop(void *st, int64_t drain_ms)
{
    mucp *m = st;
    if (!m->started) {
        return 0;
    }
    m->started = false;
    /* Stop accepting; connections with a request in flight close once it
     * is answered. */
    micro_transport_stop_listen(m->tr);
    int64_t until = micro__now_ms() + (drain_ms > 0 ? drain_ms : 0);
    while (atomic_load(&m->s->inflight) > 0 && micro__now_ms() < until) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    long left = atomic_load(&m->s->inflight);
    if (left > 0) {
        micro_log(MICRO_LOG_WARN, "server",
            "%ld request(s) still running after the %lld ms drain; "
            "their replies will be dropped",
            left, (long long) drain_ms);
        /* Workers stuck in handlers cannot be joined; leave the pool. */
        m->pool = NULL;
        return MICRO_ETIMEDOUT;
    }
    micro__pool_free(m->pool);
    m->pool = NULL;
    return 0;
}

static const char *
mucp_listen_address(void *st)
{
    mucp *m = st;
    return micro_transport_address(m->tr);
}

static void
mucp_fini(void *st)
{
    mucp *m = st;
    micro__pool_free(m->pool);
    m->pool = NULL;
}

const micro_server_ops micro_server_mucp_ops = {
    .abi = MICRO_SERVER_ABI,
    .name = "mucp",
    .state_size = sizeof(mucp),
    .init = mucp_init,
    .start = mucp_start,
    .stop = mucp_stop,
    .listen_address = mucp_listen_address,
    .fini = mucp_fini,
};
