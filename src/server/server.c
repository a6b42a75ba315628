/*
 * The server front end: the name and id, handlers, wrappers, routing of
 * "Handler.Method", the registration record and statistics. The wire
 * protocol is an implementation behind micro_server_ops; the built-in one
 * is mucp.c.
 */
#include "server/server_internal.h"
#include "core/msg_internal.h"
#include "core/options_internal.h"
#include "plugins.h"
#include "http/h1.h"
#include "registry/registry_internal.h"

#include <stdarg.h>

typedef micro__handler handler;
typedef micro__wrapper wrapper;

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
    *len = r->len;
    return r->body ? r->body : "";
}

const char *
micro_request_header(const micro_request *r, const char *key)
{
    return r->msg ? micro_msg_header(r->msg, key) : NULL;
}

size_t
micro_request_header_count(const micro_request *r)
{
    return r->msg ? micro_msg_header_count(r->msg) : 0;
}

int
micro_request_header_at(const micro_request *r, size_t i, const char **key,
    const char **value)
{
    if (r->msg == NULL) {
        return MICRO_EINVAL;
    }
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
    const char *v = r->msg ? micro_msg_header(r->msg, "Remote") : NULL;
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
    if (key == NULL || value == NULL ||
        !micro__h1_token(key, strlen(key)) ||
        !micro__h1_value_ok(value, strlen(value))) {
        /* A name that is not an HTTP token, or CR/LF/NUL in a value, would
         * change the framing of the answer (response splitting). */
        MICRO_LOGF(MICRO_LOG_WARN, "server",
            "response header refused: invalid name or value");
        return MICRO_EINVAL;
    }
    if (r->msg == NULL && micro_msg_new(&r->msg) != 0) {
        return MICRO_ENOMEM;
    }
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
    r->err_lost = r->err == NULL;
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

const micro__handler *
micro__server_find(const micro_server *s, const char *endpoint)
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

static void
route_error(micro_server *s, micro_response *rsp, int32_t code,
    const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    micro_error_free(rsp->err);
    rsp->err = micro_error_new(s->name, code, detail);
    rsp->err_lost = rsp->err == NULL;
}

void
micro__server_route(micro_server *s, micro_request *r, micro_response *rsp)
{
    const char *ep = r->endpoint;
    if (ep == NULL || ep[0] == '\0') {
        atomic_fetch_add(&s->unknown, 1);
        route_error(s, rsp, 400,
            "rpc: service/endpoint request ill-formed: no endpoint");
        return;
    }
    const char *dot = strchr(ep, '.');
    if (dot == NULL || dot == ep || dot[1] == '\0' ||
        strchr(dot + 1, '.') != NULL) {
        atomic_fetch_add(&s->unknown, 1);
        route_error(s, rsp, 400,
            "rpc: service/endpoint request ill-formed: %s", ep);
        return;
    }
    const handler *h = micro__server_find(s, ep);
    if (h == NULL) {
        atomic_fetch_add(&s->unknown, 1);
        MICRO_LOGF(MICRO_LOG_INFO, "server", "%s: unknown endpoint %s",
            micro_request_remote(r), ep);
        if (!handler_name_known(s, ep, (size_t) (dot - ep))) {
            route_error(s, rsp, 404, "rpc: can't find service %.*s",
                (int) (dot - ep), ep);
        } else {
            route_error(s, rsp, 404, "rpc: can't find method %s", ep);
        }
        return;
    }
    if (r->deadline != 0 && micro__now_ms() >= r->deadline) {
        atomic_fetch_add(&s->late, 1);
        route_error(s, rsp, 408, "deadline exceeded before %s could start",
            ep);
        return;
    }
    if (h->stream) {
        atomic_fetch_add(&s->unknown, 1);
        route_error(s, rsp, 400, "%s is a stream endpoint: call it as a stream",
            ep);
        return;
    }
    micro_handler_chain chain = {s, 0, h};
    int rc = micro_handler_next(&chain, r, rsp);
    if (rc != 0 && rsp->err == NULL) {
        route_error(s, rsp, rc == MICRO_ETIMEDOUT ? 408 : 500, "%s",
            micro_strerror(rc));
    }
    if (r->deadline != 0 && micro__now_ms() > r->deadline) {
        atomic_fetch_add(&s->late, 1);
    }
}

/* A stream's opening through the wrappers: the innermost link runs the
 * handler's on_open. */
typedef struct stream_open {
    micro_stream *st;
    const handler *h;
    bool reached;
} stream_open;

static int
stream_open_link(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) rsp;
    stream_open *o = arg;
    o->reached = true;
    return o->h->on_open != NULL ? o->h->on_open(o->st, o->h->arg) : 0;
}

int
micro__server_stream_open(micro_server *s, const handler *h,
    micro_stream *st, const micro_request *req, bool *reached,
    micro_error **err)
{
    *err = NULL;
    if (s->n_wrappers == 0) {
        *reached = true;
        return h->on_open != NULL ? h->on_open(st, h->arg) : 0;
    }
    stream_open o = {st, h, false};
    handler link = *h;
    link.fn = stream_open_link;
    link.arg = &o;
    micro_request r = *req;
    micro_response rsp = {.s = s};
    micro_handler_chain chain = {s, 0, &link};
    int rc = micro_handler_next(&chain, &r, &rsp);
    *reached = o.reached;
    *err = rsp.err;
    micro_buf_clear(&rsp.body);
    micro_msg_free(rsp.msg);
    return rc;
}

int
micro_server_dispatch(micro_server *s, micro_dispatch *d)
{
    if (s == NULL || d == NULL || (d->body == NULL && d->len > 0)) {
        return MICRO_EINVAL;
    }
    atomic_fetch_add(&s->requests, 1);
    micro_request r = {.s = s,
        .msg = d->headers,
        .endpoint = d->endpoint,
        .service = d->service,
        .ct = d->content_type,
        .body = d->body,
        .len = d->len,
        .deadline = d->deadline};
    micro_response rsp = {.s = s};
    micro__server_route(s, &r, &rsp);
    d->reply_headers = rsp.msg;
    if (rsp.err != NULL) {
        atomic_fetch_add(&s->errors, 1);
        micro_buf_clear(&rsp.body);
        d->error = rsp.err;
        return MICRO_EREMOTE;
    }
    d->reply = rsp.body;
    return 0;
}

void
micro_dispatch_clear(micro_dispatch *d)
{
    if (d == NULL) {
        return;
    }
    micro_buf_clear(&d->reply);
    micro_msg_free(d->reply_headers);
    d->reply_headers = NULL;
    micro_error_free(d->error);
    d->error = NULL;
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
    return micro_server_new_with_ops(out, &micro_server_mucp_ops, loop,
        transport, opts);
}

const micro_options *
micro_server_options(const micro_server *s)
{
    return s->opts;
}

int
micro_server_new_with_ops(micro_server **out, const micro_server_ops *ops,
    micro_loop *loop, micro_transport *transport, const micro_options *opts)
{
    *out = NULL;
    if (ops == NULL || ops->abi != MICRO_SERVER_ABI || ops->init == NULL ||
        ops->start == NULL || ops->stop == NULL ||
        ops->listen_address == NULL) {
        return MICRO_EINVAL;
    }
    micro_server *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    s->ops = ops;
    s->loop = loop;
    s->tr = transport;
    /* The implementation reads the options it declares. */
    int rc = micro__options_scoped(opts, "server", ops->name,
        micro__server_ops_options(ops), &s->opts);
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
    micro_handler_desc health = {.size = sizeof(health),
        .endpoint = "Debug.Health",
        .fn = debug_health,
        .flags = MICRO_HANDLER_INLINE | MICRO_HANDLER_INTERNAL};
    rc = micro_server_handle(s, &health);
    if (rc == 0) {
        s->impl = micro__calloc(1, ops->state_size ? ops->state_size : 1);
        rc = s->impl ? ops->init(s->impl, s, loop, transport, s->opts)
                     : MICRO_ENOMEM;
    }
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
    micro__server_subs_free(s);
    if (s->impl != NULL && s->ops->fini != NULL) {
        s->ops->fini(s->impl);
    }
    micro__free(s->impl);
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

static int
handle_common(micro_server *s, const micro_handler_desc *d, bool stream)
{
    if (s == NULL || d == NULL || d->endpoint == NULL ||
        (d->fn == NULL && !stream)) {
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
    if (micro__server_find(s, d->endpoint) != NULL) {
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
micro_server_handle(micro_server *s, const micro_handler_desc *d)
{
    if (d == NULL) {
        return MICRO_EINVAL;
    }
    micro_handler_desc h; /* as much as the caller's version holds */
    MICRO__SIZED_COPY(&h, d, micro_handler_desc, flags);
    return handle_common(s, &h, false);
}

int
micro_server_handle_stream(
    micro_server *s, const micro_stream_handler *caller)
{
    if (caller == NULL) {
        return MICRO_EINVAL;
    }
    micro_stream_handler sh; /* as much as the caller's version holds */
    MICRO__SIZED_COPY(&sh, caller, micro_stream_handler, response);
    const micro_stream_handler *d = &sh;
    if (s == NULL || d->endpoint == NULL || d->on_msg == NULL) {
        return MICRO_EINVAL;
    }
    micro_handler_desc u = {.size = sizeof(u),
        .endpoint = d->endpoint,
        .fn = NULL,
        .arg = d->arg,
        .request = d->request,
        .response = d->response,
        .flags = d->flags};
    int rc = handle_common(s, &u, true);
    if (rc != 0) {
        return rc;
    }
    handler *h = &s->handlers[s->n_handlers - 1];
    h->stream = true;
    h->on_open = d->on_open;
    h->on_msg = d->on_msg;
    h->on_end = d->on_end;
    h->on_close = d->on_close;
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

static void
compute_address(micro_server *s)
{
    const char *adv = micro_options_get_str(s->opts, "server_advertise");
    const char *src = (adv != NULL && adv[0] != '\0')
        ? adv
        : s->ops->listen_address(s->impl);
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
    if (micro__host_unspecified(host)) {
        micro__advertise_host(host, sizeof(host));
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
    int rc = s->ops->start(s->impl);
    if (rc != 0) {
        return rc;
    }
    compute_address(s);
    s->started = true;
    MICRO_LOGF(MICRO_LOG_INFO, "server", "%s listening on %s (advertised %s)",
        s->name, s->ops->listen_address(s->impl), s->address);
    return 0;
}

int
micro_server_stop(micro_server *s, int64_t drain_ms)
{
    if (s == NULL || !s->started) {
        return MICRO_EINVAL;
    }
    s->started = false;
    return s->ops->stop(s->impl, drain_ms);
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
    /* Go Micro's gRPC server marks its nodes server=grpc transport=grpc
     * protocol=grpc (its own transport, whatever the service's). */
    bool grpc = strcmp(s->ops->name, "grpc") == 0;
    if (rc == 0) {
        rc = micro_metadata_set(&n->metadata, "broker", br ? br : "http");
    }
    if (rc == 0) {
        rc = micro_metadata_set(&n->metadata, "protocol", grpc ? "grpc" : "mucp");
    }
    if (rc == 0) {
        rc = micro_metadata_set(&n->metadata, "registry",
            reg ? reg : "memory");
    }
    if (rc == 0) {
        rc = micro_metadata_set(&n->metadata, "server", s->ops->name);
    }
    if (rc == 0) {
        rc = micro_metadata_set(&n->metadata, "transport",
            grpc ? "grpc" : (tr ? tr : "http"));
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
            if (h->stream) {
                /* Go Micro marks stream endpoints so. */
                rc = micro_metadata_set(&e->metadata, "stream", "true");
            } else if (e->metadata.items == NULL) {
                /* Go Micro writes {} for a handler endpoint's metadata:
                 * an empty map that is not nil. */
                e->metadata.items = micro__calloc(1, sizeof(micro_kv));
                rc = e->metadata.items ? 0 : MICRO_ENOMEM;
            }
        }
    }
    if (rc != 0) {
        micro_registry_service_clear(out);
        return rc;
    }
    if (out->n_endpoints > 1) {
        qsort(out->endpoints, out->n_endpoints, sizeof(micro_endpoint),
            cmp_endpoint);
    }
    rc = micro__server_subs_record(s, out); /* after the handlers, as Go */
    if (rc != 0) {
        micro_registry_service_clear(out);
    }
    return rc;
}

void
micro_server_get_stats(micro_server *s, micro_server_stats *out)
{
    out->requests = atomic_load(&s->requests);
    out->errors = atomic_load(&s->errors);
    out->unknown = atomic_load(&s->unknown);
    out->codec_errors = atomic_load(&s->codec_errors);
    out->late = atomic_load(&s->late);
    out->dropped = atomic_load(&s->dropped);
    out->streams = atomic_load(&s->streams);
    long n = atomic_load(&s->inflight);
    out->inflight = n > 0 ? (uint64_t) n : 0;
}
