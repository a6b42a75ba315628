/*
 * The mucp server: reads a request message, picks the codec by content
 * type, routes "Handler.Method" through the wrapper chain to a handler on
 * the worker pool (or inline on the loop), and answers in Go Micro's
 * shape (errors in Micro-Error as {"id","code","detail","status"}).
 */
#include "core/internal.h"
#include "core/loop_internal.h"
#include "core/msg_internal.h"
#include "registry/registry_internal.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

typedef struct handler {
    char *endpoint;
    micro_handler_fn fn;
    void *arg;
    micro_value *request;
    micro_value *response;
    unsigned flags;
} handler;

typedef struct wrapper {
    micro_handler_wrapper_fn fn;
    void *arg;
} wrapper;

struct micro_server {
    micro_loop *loop;
    micro_transport *tr;
    micro_options *opts;
    char *name;
    char *version;
    char *id;
    micro_metadata md;
    handler *handlers;
    size_t n_handlers;
    wrapper *wrappers;
    size_t n_wrappers;
    micro__pool *pool;
    int workers;
    bool inline_all;
    bool started;
    char address[96];
    _Atomic uint64_t requests, errors, unknown, codec_errors, late;
    atomic_long inflight;
};

struct micro_request {
    micro__task task;
    micro_server *s;
    micro_exchange *ex;
    micro_msg *msg;
    const char *endpoint;
    const char *service;
    const char *ct;
    const micro_codec_ops *codec;
    micro_codec_info info;
    micro_buf payload;
    int64_t deadline;
};

struct micro_response {
    micro_msg *msg;
    micro_buf body;
    micro_error *err;
    const micro_server *s;
};

struct micro_handler_chain {
    const micro_server *s;
    size_t idx;
    const handler *h;
};

/* ------------------------------------------------------------------ */
/* Request and response accessors.                                      */

const char *
micro_request_service(const micro_request *r)
{
    return r->service ? r->service : "";
}

const char *
micro_request_endpoint(const micro_request *r)
{
    return r->endpoint ? r->endpoint : "";
}

const char *
micro_request_content_type(const micro_request *r)
{
    return r->ct;
}

const void *
micro_request_body(const micro_request *r, size_t *len)
{
    *len = r->payload.len;
    return r->payload.data ? (const void *) r->payload.data : "";
}

const char *
micro_request_header(const micro_request *r, const char *key)
{
    return micro_msg_header(r->msg, key);
}

size_t
micro_request_header_count(const micro_request *r)
{
    return micro_msg_header_count(r->msg);
}

int
micro_request_header_at(const micro_request *r, size_t i, const char **key,
    const char **value)
{
    return micro_msg_header_at(r->msg, i, key, value);
}

int64_t
micro_request_deadline(const micro_request *r)
{
    return r->deadline;
}

int64_t
micro_request_remaining_ms(const micro_request *r)
{
    if (r->deadline == 0) {
        return INT64_MAX;
    }
    return r->deadline - micro__now_ms();
}

const char *
micro_request_remote(const micro_request *r)
{
    const char *v = micro_msg_header(r->msg, "Remote");
    return v ? v : "";
}

int
micro_response_set_body(micro_response *r, const void *p, size_t n)
{
    r->body.len = 0;
    return micro_buf_append(&r->body, p, n);
}

void
micro_response_take_body(micro_response *r, micro_buf *b)
{
    micro_buf_clear(&r->body);
    r->body = *b;
    memset(b, 0, sizeof(*b));
}

int
micro_response_set_header(micro_response *r, const char *key,
    const char *value)
{
    return micro_msg_set_header(r->msg, key, value);
}

int
micro_response_error(micro_response *r, const char *id, int32_t code,
    const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    micro_error_free(r->err);
    r->err = micro_error_new(id ? id : r->s->name, code, detail);
    return MICRO_EREMOTE;
}

int
micro_handler_next(micro_handler_chain *next, micro_request *req,
    micro_response *rsp)
{
    if (next->idx < next->s->n_wrappers) {
        const wrapper *w = &next->s->wrappers[next->idx];
        micro_handler_chain n2 = {next->s, next->idx + 1, next->h};
        return w->fn(req, rsp, &n2, w->arg);
    }
    return next->h->fn(req, rsp, next->h->arg);
}

/* ------------------------------------------------------------------ */
/* Routing.                                                             */

static const handler *
find_handler(const micro_server *s, const char *endpoint)
{
    for (size_t i = 0; i < s->n_handlers; i++) {
        if (strcmp(s->handlers[i].endpoint, endpoint) == 0) {
            return &s->handlers[i];
        }
    }
    return NULL;
}

static bool
handler_name_known(const micro_server *s, const char *endpoint, size_t hl)
{
    for (size_t i = 0; i < s->n_handlers; i++) {
        const char *e = s->handlers[i].endpoint;
        if (strncmp(e, endpoint, hl) == 0 && e[hl] == '.') {
            return true;
        }
    }
    return false;
}

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
request_free(micro_request *r)
{
    micro_msg_free(r->msg);
    micro_codec_info_clear(&r->info);
    micro_buf_clear(&r->payload);
    micro__free(r);
}

/* Send the reply for r (success or error) and free r. */
static void
finish(micro_request *r, micro_response *rsp)
{
    micro_server *s = r->s;
    micro_msg *out = rsp->msg;
    micro_buf wire = {0};
    int rc = 0;
    if (rsp->err != NULL) {
        atomic_fetch_add(&s->errors, 1);
        char *json = micro_error_to_json(rsp->err);
        if (json != NULL) {
            micro_msg_set_header(out, "Micro-Error", json);
            micro_msg_set_header(out, "X-Micro-Error", json);
        }
        if (r->codec != NULL) {
            micro_codec_info info = {r->info.endpoint, r->info.id, json};
            rc = r->codec->write_response(&info, NULL, 0, &wire);
            if (rc != 0) {
                wire.len = 0;
            }
        }
        free(json);
    } else {
        micro_codec_info info = {r->info.endpoint, r->info.id, NULL};
        rc = r->codec->write_response(&info, rsp->body.data, rsp->body.len,
            &wire);
        if (rc != 0) {
            wire.len = 0;
            micro_error *e = micro_error_new(s->name, 500,
                "failed to encode the response");
            char *json = e ? micro_error_to_json(e) : NULL;
            if (json != NULL) {
                micro_msg_set_header(out, "Micro-Error", json);
                micro_msg_set_header(out, "X-Micro-Error", json);
            }
            free(json);
            micro_error_free(e);
        }
    }
    if (wire.len > 0 && r->ct != NULL) {
        micro_msg_set_header(out, "Content-Type", r->ct);
    }
    micro_msg_take_body(out, &wire);
    micro_buf_clear(&rsp->body);
    micro_error_free(rsp->err);
    rsp->err = NULL;
    rsp->msg = NULL;
    micro_exchange *ex = r->ex;
    atomic_fetch_sub(&s->inflight, 1);
    request_free(r);
    micro_transport_reply(s->tr, ex, &out);
    micro_msg_free(out);
}

/* Fail r with a Go Micro error without running a handler. */
static void
fail(micro_request *r, int32_t code, const char *fmt, ...)
{
    micro_response rsp = {.s = r->s};
    if (micro_msg_new(&rsp.msg) != 0) {
        micro_msg *none = NULL;
        micro_exchange *ex = r->ex;
        atomic_fetch_sub(&r->s->inflight, 1);
        request_free(r);
        if (micro_msg_new(&none) == 0) {
            micro_transport_reply(r->s->tr, ex, &none);
        }
        return;
    }
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    rsp.err = micro_error_new(r->s->name, code, detail);
    finish(r, &rsp);
}

/* Decode, route and run. Worker thread, or the loop for inline work. */
static void
process(micro_request *r)
{
    micro_server *s = r->s;
    int rc = r->codec->read_request(r->msg->body.data, r->msg->body.len,
        &r->info, &r->payload);
    if (rc != 0) {
        atomic_fetch_add(&s->codec_errors, 1);
        MICRO_LOGF(MICRO_LOG_INFO, "server", "%s: undecodable %s body",
            micro_request_remote(r), r->ct);
        fail(r, 400, "decode error: the %s body is malformed", r->ct);
        return;
    }
    if (r->endpoint == NULL) {
        r->endpoint = r->info.endpoint;
    }
    if (r->endpoint == NULL || r->endpoint[0] == '\0') {
        atomic_fetch_add(&s->unknown, 1);
        fail(r, 400, "rpc: service/endpoint request ill-formed: no endpoint");
        return;
    }
    const char *dot = strchr(r->endpoint, '.');
    if (dot == NULL || dot == r->endpoint || dot[1] == '\0' ||
        strchr(dot + 1, '.') != NULL) {
        atomic_fetch_add(&s->unknown, 1);
        fail(r, 400, "rpc: service/endpoint request ill-formed: %s",
            r->endpoint);
        return;
    }
    const handler *h = find_handler(s, r->endpoint);
    if (h == NULL) {
        atomic_fetch_add(&s->unknown, 1);
        MICRO_LOGF(MICRO_LOG_INFO, "server", "%s: unknown endpoint %s",
            micro_request_remote(r), r->endpoint);
        if (!handler_name_known(s, r->endpoint, (size_t) (dot - r->endpoint))) {
            fail(r, 404, "rpc: can't find service %.*s",
                (int) (dot - r->endpoint), r->endpoint);
        } else {
            fail(r, 404, "rpc: can't find method %s", r->endpoint);
        }
        return;
    }
    if (r->deadline != 0 && micro__now_ms() >= r->deadline) {
        atomic_fetch_add(&s->late, 1);
        fail(r, 408, "deadline exceeded before %s could start", r->endpoint);
        return;
    }
    micro_response rsp = {.s = s};
    if (micro_msg_new(&rsp.msg) != 0) {
        fail(r, 500, "out of memory");
        return;
    }
    micro_handler_chain chain = {s, 0, h};
    rc = micro_handler_next(&chain, r, &rsp);
    if (rc != 0 && rsp.err == NULL) {
        rsp.err = micro_error_new(s->name, rc == MICRO_ETIMEDOUT ? 408 : 500,
            micro_strerror(rc));
    }
    if (r->deadline != 0 && micro__now_ms() > r->deadline) {
        atomic_fetch_add(&s->late, 1);
    }
    finish(r, &rsp);
}

static void
process_task(micro__task *t)
{
    process((micro_request *) t);
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
    micro_server *s = arg;
    atomic_fetch_add(&s->requests, 1);
    atomic_fetch_add(&s->inflight, 1);
    micro_request *r = micro__calloc(1, sizeof(*r));
    if (r == NULL) {
        atomic_fetch_sub(&s->inflight, 1);
        micro_msg_free(msg);
        micro_msg *none = NULL;
        if (micro_msg_new(&none) == 0) {
            micro_transport_reply(s->tr, ex, &none);
        }
        return;
    }
    r->s = s;
    r->ex = ex;
    r->msg = msg;
    r->service = hdr2(msg, "Micro-Service", "X-Micro-Service");
    r->endpoint = hdr2(msg, "Micro-Endpoint", "X-Micro-Endpoint");
    const char *method = hdr2(msg, "Micro-Method", "X-Micro-Method");
    if (r->endpoint == NULL) {
        r->endpoint = method;
    }
    int64_t ns = parse_timeout_ns(micro_msg_header(msg, "Timeout"));
    if (ns > 0) {
        r->deadline = micro__now_ms() + (ns + 999999) / 1000000;
    }
    r->ct = micro_msg_header(msg, "Content-Type");
    if (r->ct == NULL || r->ct[0] == '\0') {
        r->ct = "application/protobuf"; /* Go Micro's server default */
    }
    if (hdr2(msg, "Micro-Topic", "X-Micro-Topic") != NULL) {
        fail(r, 400, "this server has no subscribers: events over the "
                     "transport are not accepted");
        return;
    }
    if (hdr2(msg, "Micro-Stream", "X-Micro-Stream") != NULL) {
        fail(r, 400, "stream requests are not accepted by this server");
        return;
    }
    r->codec = micro_codec_lookup(r->ct);
    /* Go Micro's legacy switch: a request naming no service, method or
     * endpoint is read with the envelope codec of its content type. */
    if (r->service == NULL && r->endpoint == NULL &&
        hdr2(msg, "Micro-Protocol", "X-Micro-Protocol") == NULL) {
        const char *base = r->ct;
        if (strncasecmp(base, "application/json", 16) == 0) {
            r->codec = &micro_codec_jsonrpc_ops;
        }
    }
    if (r->codec == NULL) {
        atomic_fetch_add(&s->codec_errors, 1);
        MICRO_LOGF(MICRO_LOG_INFO, "server", "unsupported Content-Type %s",
            r->ct);
        fail(r, 400, "unsupported Content-Type: %s", r->ct);
        return;
    }
    bool run_inline = s->inline_all;
    if (!run_inline && r->endpoint != NULL) {
        const handler *h = find_handler(s, r->endpoint);
        run_inline = h != NULL && (h->flags & MICRO_HANDLER_INLINE) != 0;
    }
    if (run_inline) {
        process(r);
        return;
    }
    r->task.fn = process_task;
    if (micro__pool_submit(s->pool, &r->task) != 0) {
        fail(r, 503, "server is shutting down");
    }
}

/* ------------------------------------------------------------------ */
/* Built-in endpoints.                                                  */

static int
debug_health(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) arg;
    static const char ok[] = "{\"status\":\"ok\"}";
    return micro_response_set_body(rsp, ok, sizeof(ok) - 1);
}

/* ------------------------------------------------------------------ */
/* Lifecycle.                                                           */

static int
value_dup(micro_value **dst, const micro_value *src)
{
    *dst = NULL;
    if (src == NULL) {
        return 0;
    }
    micro_endpoint tmp_src = {.request = (micro_value *) src};
    micro_endpoint tmp = {0};
    int rc = micro__endpoint_copy(&tmp, &tmp_src);
    if (rc == 0) {
        *dst = tmp.request;
        tmp.request = NULL;
        micro_endpoint_clear(&tmp);
    }
    return rc;
}

int
micro_server_new(micro_server **out, micro_loop *loop,
    micro_transport *transport, const micro_options *opts)
{
    *out = NULL;
    if (loop == NULL || transport == NULL) {
        return MICRO_EINVAL;
    }
    micro_server *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    s->loop = loop;
    s->tr = transport;
    int rc = opts ? micro_options_dup(opts, &s->opts)
                  : micro_options_new(&s->opts);
    if (rc != 0) {
        micro__free(s);
        return rc;
    }
    s->name = micro__strdup(micro_options_get_str(s->opts, "server_name"));
    s->version =
        micro__strdup(micro_options_get_str(s->opts, "server_version"));
    const char *id = micro_options_get_str(s->opts, "server_id");
    char uuid[37];
    if (id == NULL || id[0] == '\0') {
        micro__uuid(uuid);
        id = uuid;
    }
    s->id = micro__strdup(id);
    s->workers = (int) micro_options_get_int(s->opts, "server_workers");
    s->inline_all = micro_options_get_bool(s->opts, "server_inline");
    const char *md = micro_options_get_str(s->opts, "server_metadata");
    if (md != NULL) {
        /* "k=v,k2=v2" */
        char *copy = micro__strdup(md);
        char *save = NULL;
        for (char *kv = copy ? strtok_r(copy, ",", &save) : NULL; kv != NULL;
             kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            if (eq != NULL) {
                *eq = '\0';
                micro_metadata_set(&s->md, kv, eq + 1);
            }
        }
        micro__free(copy);
    }
    if (s->name == NULL || s->version == NULL || s->id == NULL) {
        micro_server_free(s);
        return MICRO_ENOMEM;
    }
    micro_handler_desc health = {.endpoint = "Debug.Health",
        .fn = debug_health,
        .flags = MICRO_HANDLER_INLINE | MICRO_HANDLER_INTERNAL};
    rc = micro_server_handle(s, &health);
    if (rc != 0) {
        micro_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void
micro_server_free(micro_server *s)
{
    if (s == NULL) {
        return;
    }
    if (s->started) {
        micro_server_stop(s, 0);
    }
    for (size_t i = 0; i < s->n_handlers; i++) {
        handler *h = &s->handlers[i];
        micro__free(h->endpoint);
        if (h->request) {
            micro_value_clear(h->request);
            micro__free(h->request);
        }
        if (h->response) {
            micro_value_clear(h->response);
            micro__free(h->response);
        }
    }
    micro__free(s->handlers);
    micro__free(s->wrappers);
    micro_metadata_clear(&s->md);
    micro_options_free(s->opts);
    micro__free(s->name);
    micro__free(s->version);
    micro__free(s->id);
    micro__free(s);
}

int
micro_server_handle(micro_server *s, const micro_handler_desc *d)
{
    if (s == NULL || d == NULL || d->endpoint == NULL || d->fn == NULL) {
        return MICRO_EINVAL;
    }
    const char *dot = strchr(d->endpoint, '.');
    if (dot == NULL || dot == d->endpoint || dot[1] == '\0' ||
        strchr(dot + 1, '.') != NULL) {
        micro_log(MICRO_LOG_ERR, "server",
            "endpoint \"%s\" must be Handler.Method", d->endpoint);
        return MICRO_EINVAL;
    }
    if (s->started) {
        return MICRO_EINVAL;
    }
    if (find_handler(s, d->endpoint) != NULL) {
        return MICRO_EEXIST;
    }
    handler *hs = micro__realloc(s->handlers,
        (s->n_handlers + 1) * sizeof(*hs));
    if (hs == NULL) {
        return MICRO_ENOMEM;
    }
    s->handlers = hs;
    handler *h = &hs[s->n_handlers];
    memset(h, 0, sizeof(*h));
    h->endpoint = micro__strdup(d->endpoint);
    h->fn = d->fn;
    h->arg = d->arg;
    h->flags = d->flags;
    if (h->endpoint == NULL || value_dup(&h->request, d->request) != 0 ||
        value_dup(&h->response, d->response) != 0) {
        micro__free(h->endpoint);
        return MICRO_ENOMEM;
    }
    s->n_handlers++;
    return 0;
}

int
micro_server_wrap(micro_server *s, micro_handler_wrapper_fn fn, void *arg)
{
    if (s == NULL || fn == NULL || s->started) {
        return MICRO_EINVAL;
    }
    wrapper *ws = micro__realloc(s->wrappers,
        (s->n_wrappers + 1) * sizeof(*ws));
    if (ws == NULL) {
        return MICRO_ENOMEM;
    }
    s->wrappers = ws;
    ws[s->n_wrappers].fn = fn;
    ws[s->n_wrappers].arg = arg;
    s->n_wrappers++;
    return 0;
}

/* Go Micro's advertise rule: an unspecified host becomes the first private
 * address of a non-loopback interface, else any non-loopback address, else
 * loopback. */
static void
pick_host(char *out, size_t cap)
{
    struct ifaddrs *ifs = NULL;
    snprintf(out, cap, "127.0.0.1");
    if (getifaddrs(&ifs) != 0) {
        return;
    }
    const char *best = NULL;
    char priv[INET_ADDRSTRLEN] = "", other[INET_ADDRSTRLEN] = "";
    for (struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET ||
            (i->ifa_flags & IFF_LOOPBACK) != 0 ||
            (i->ifa_flags & IFF_UP) == 0) {
            continue;
        }
        struct sockaddr_in *a = (struct sockaddr_in *) i->ifa_addr;
        uint32_t ip = ntohl(a->sin_addr.s_addr);
        bool is_priv = (ip >> 24) == 10 || (ip >> 20) == 0xac1 ||
            (ip >> 16) == 0xc0a8;
        char *dst = is_priv ? priv : other;
        if (dst[0] == '\0') {
            inet_ntop(AF_INET, &a->sin_addr, dst, INET_ADDRSTRLEN);
        }
    }
    best = priv[0] ? priv : (other[0] ? other : NULL);
    if (best != NULL) {
        snprintf(out, cap, "%s", best);
    }
    freeifaddrs(ifs);
}

static void
compute_address(micro_server *s)
{
    const char *adv = micro_options_get_str(s->opts, "server_advertise");
    const char *src = (adv != NULL && adv[0] != '\0')
        ? adv
        : micro_transport_address(s->tr);
    if (src == NULL) {
        src = "";
    }
    const char *colon = strrchr(src, ':');
    if (colon == NULL) {
        snprintf(s->address, sizeof(s->address), "%s", src);
        return;
    }
    size_t hl = (size_t) (colon - src);
    char host[64];
    if (hl >= sizeof(host)) {
        hl = sizeof(host) - 1;
    }
    memcpy(host, src, hl);
    host[hl] = '\0';
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
        strcmp(host, "[::]") == 0 || strcmp(host, "::") == 0) {
        pick_host(host, sizeof(host));
    }
    snprintf(s->address, sizeof(s->address), "%s%s", host, colon);
}

int
micro_server_start(micro_server *s)
{
    if (s == NULL) {
        return MICRO_EINVAL;
    }
    if (s->started) {
        return MICRO_EEXIST;
    }
    int rc = micro__pool_new(&s->pool, s->workers > 0 ? s->workers : 16,
        "server");
    if (rc != 0) {
        return rc;
    }
    const char *addr = micro_options_get_str(s->opts, "server_address");
    if (addr == NULL || addr[0] == '\0') {
        addr = ":0";
    }
    rc = micro_transport_listen(s->tr, addr, on_request, s);
    if (rc != 0) {
        micro__pool_free(s->pool);
        s->pool = NULL;
        return rc;
    }
    compute_address(s);
    s->started = true;
    MICRO_LOGF(MICRO_LOG_INFO, "server", "%s listening on %s (advertised %s)",
        s->name, micro_transport_address(s->tr), s->address);
    return 0;
}

int
micro_server_stop(micro_server *s, int64_t drain_ms)
{
    if (s == NULL || !s->started) {
        return MICRO_EINVAL;
    }
    s->started = false;
    /* Stop accepting; connections with a request in flight close once it
     * is answered. */
    micro_transport_stop_listen(s->tr);
    int64_t until = micro__now_ms() + (drain_ms > 0 ? drain_ms : 0);
    while (atomic_load(&s->inflight) > 0 && micro__now_ms() < until) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    long left = atomic_load(&s->inflight);
    if (left > 0) {
        micro_log(MICRO_LOG_WARN, "server",
            "%ld request(s) still running after the %lld ms drain; "
            "their replies will be dropped",
            left, (long long) drain_ms);
        /* Workers stuck in handlers cannot be joined; leave the pool. */
        s->pool = NULL;
        return MICRO_ETIMEDOUT;
    }
    micro__pool_free(s->pool);
    s->pool = NULL;
    return 0;
}

const char *
micro_server_address(const micro_server *s)
{
    return s->address;
}

const char *
micro_server_name(const micro_server *s)
{
    return s->name;
}

static int
cmp_endpoint(const void *a, const void *b)
{
    return strcmp(((const micro_endpoint *) a)->name,
        ((const micro_endpoint *) b)->name);
}

int
micro_server_record(const micro_server *s, micro_registry_service *out)
{
    memset(out, 0, sizeof(*out));
    out->name = micro__strdup(s->name);
    out->version = micro__strdup(s->version);
    out->nodes = micro__calloc(1, sizeof(micro_node));
    if (out->name == NULL || out->version == NULL || out->nodes == NULL) {
        micro_registry_service_clear(out);
        return MICRO_ENOMEM;
    }
    out->n_nodes = 1;
    micro_node *n = &out->nodes[0];
    size_t idl = strlen(s->name) + 1 + strlen(s->id) + 1;
    n->id = micro__malloc(idl);
    n->address = micro__strdup(s->address);
    if (n->id == NULL || n->address == NULL) {
        micro_registry_service_clear(out);
        return MICRO_ENOMEM;
    }
    snprintf(n->id, idl, "%s-%s", s->name, s->id);
    int rc = micro__metadata_copy(&n->metadata, &s->md);
    const char *reg = micro_options_get_str(s->opts, "registry");
    const char *tr = micro_options_get_str(s->opts, "transport");
    const char *br = micro_options_get_str(s->opts, "broker");
    if (rc == 0) {
        rc = micro_metadata_set(&n->metadata, "broker", br ? br : "http");
    }
    if (rc == 0) {
        rc = micro_metadata_set(&n->metadata, "protocol", "mucp");
    }
    if (rc == 0) {
        rc = micro_metadata_set(&n->metadata, "registry",
            reg ? reg : "memory");
    }
    if (rc == 0) {
        rc = micro_metadata_set(&n->metadata, "server", "mucp");
    }
    if (rc == 0) {
        rc = micro_metadata_set(&n->metadata, "transport", tr ? tr : "http");
    }
    size_t ne = 0;
    for (size_t i = 0; i < s->n_handlers; i++) {
        ne += (s->handlers[i].flags & MICRO_HANDLER_INTERNAL) == 0;
    }
    if (rc == 0 && ne > 0) {
        out->endpoints = micro__calloc(ne, sizeof(micro_endpoint));
        if (out->endpoints == NULL) {
            rc = MICRO_ENOMEM;
        }
    }
    for (size_t i = 0; rc == 0 && i < s->n_handlers; i++) {
        const handler *h = &s->handlers[i];
        if ((h->flags & MICRO_HANDLER_INTERNAL) != 0) {
            continue;
        }
        micro_endpoint src = {.name = h->endpoint,
            .request = h->request,
            .response = h->response};
        micro_endpoint *e = &out->endpoints[out->n_endpoints];
        rc = micro__endpoint_copy(e, &src);
        if (rc == 0) {
            out->n_endpoints++;
            /* Go Micro writes {} for a handler endpoint's metadata: an
             * empty map that is not nil. */
            if (e->metadata.items == NULL) {
                e->metadata.items = micro__calloc(1, sizeof(micro_kv));
                rc = e->metadata.items ? 0 : MICRO_ENOMEM;
            }
        }
    }
    if (rc != 0) {
        micro_registry_service_clear(out);
        return rc;
    }
    qsort(out->endpoints, out->n_endpoints, sizeof(micro_endpoint),
        cmp_endpoint);
    return 0;
}

void
micro_server_get_stats(micro_server *s, micro_server_stats *out)
{
    out->requests = atomic_load(&s->requests);
    out->errors = atomic_load(&s->errors);
    out->unknown = atomic_load(&s->unknown);
    out->codec_errors = atomic_load(&s->codec_errors);
    out->late = atomic_load(&s->late);
    long n = atomic_load(&s->inflight);
    out->inflight = n > 0 ? (uint64_t) n : 0;
}
