/*
 * Server implementation "mucp": Go Micro's RPC protocol over transport
 * sockets. Each accepted socket is a connection (mconn) that carries
 *
 *  - unary requests, one at a time: the socket is paused while a request
 *    is in progress, so a peer that pipelines waits in its own socket
 *    buffer (bounded by the transport) and answers go out in order;
 *  - events (Micro-Topic), answered the same way (subscriber.c);
 *  - or one stream (Micro-Stream): the connection then belongs to the
 *    stream (rpc/stream.c) until it ends.
 *
 * Handlers run on the worker pool, or inline on the loop. A request
 * waiting in the pool's queue has a timer at its deadline: when it fires
 * first, the caller gets its 408 at once and the handler never runs.
 *
 * Stopping waits on a condition variable for the work in progress (the
 * drain), then closes what is left; the worker pool is joined only when
 * the server is freed, so a handler that outlives the drain finishes
 * against live objects.
 */
#include "server/server_internal.h"
#include "core/msg_internal.h"
#include "rpc/mucp.h"

#include <pthread.h>
#include <stdarg.h>

typedef struct mconn mconn;
typedef struct mreq mreq;

typedef struct mucp {
    micro_server *s;
    micro_loop *loop;
    micro_transport *tr;
    micro__pool *pool;
    int workers;
    bool inline_all;
    bool started;
    bool stopping; /* loop thread */
    mconn *conns;  /* loop thread */
    micro__stream_host host;
    /* Requests, events and streams in progress: counted without a lock;
     * the drain waits on cv only when asked to (waiting). */
    atomic_long work;
    atomic_bool waiting;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} mucp;

struct mconn {
    mucp *m;
    micro_socket *sock; /* NULL once gone */
    mconn *prev, *next;
    int refs;           /* the socket's, and one per request */
    micro_stream *stream;
    bool busy;          /* a request is in progress */
    bool eof;           /* the peer ended its side */
    bool rejected;      /* a refused stream: drop the rest, close on EOF */
};

enum { RQ_QUEUED, RQ_RUNNING, RQ_EXPIRED };

struct mreq {
    micro__task task;
    micro__reply reply; /* the way back, for events */
    mucp *m;
    mconn *c;
    micro_msg *msg;
    micro_request req; /* the handler's view */
    const micro_codec_ops *codec;
    micro_codec_info info;
    micro_buf payload;
    micro_msg *out;    /* the answer */
    micro__timer timer;
    _Atomic int state;
};

/* ------------------------------------------------------------------ */
/* Work accounting (any thread).                                        */

static void
work(mucp *m, int delta)
{
    if (atomic_fetch_add(&m->work, delta) + delta == 0 &&
        atomic_load(&m->waiting)) {
        /* Under the lock: the waiter checks and sleeps holding it. */
        pthread_mutex_lock(&m->mu);
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
    }
}

static void
host_work(micro__stream_host *h, int delta)
{
    work((mucp *) ((char *) h - offsetof(mucp, host)), delta);
}

/* ------------------------------------------------------------------ */
/* Connections (loop thread).                                           */

static void
conn_unref(mconn *c)
{
    if (--c->refs > 0) {
        return;
    }
    mucp *m = c->m;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (m->conns == c) {
        m->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    micro__free(c);
}

/* The socket is gone (closed by us, or it ended by itself). */
static void
conn_gone(mconn *c)
{
    if (c->sock == NULL) {
        return;
    }
    c->sock = NULL;
    conn_unref(c);
}

static void
conn_close(mconn *c)
{
    micro_socket *sock = c->sock;
    if (sock == NULL) {
        return;
    }
    if (c->stream != NULL) {
        micro_stream *st = c->stream;
        c->stream = NULL;
        micro__stream_gone(st, MICRO_ECLOSED, true);
    }
    micro_socket_close(sock);
    conn_gone(c);
}

/* ------------------------------------------------------------------ */
/* Answers.                                                             */

static void
req_free(mreq *r)
{
    micro_msg_free(r->msg);
    micro_msg_free(r->out);
    micro_codec_info_clear(&r->info);
    micro_buf_clear(&r->payload);
    micro__free(r);
}

/* Loop thread: a request is over; the connection may take the next. */
static void
request_done(mreq *r)
{
    mconn *c = r->c;
    mucp *m = r->m;
    micro__timer_stop(m->loop, &r->timer);
    req_free(r);
    c->busy = false;
    if (c->sock != NULL) {
        micro_socket_set_busy(c->sock, false);
        if (c->eof || m->stopping) {
            /* The peer has stopped sending, or we are stopping: this
             * answer was the last. */
            conn_close(c);
        } else {
            micro_socket_pause(c->sock, false); /* may start the next */
        }
    }
    conn_unref(c);
    work(m, -1);
}

static void
send_answer(mreq *r)
{
    mconn *c = r->c;
    micro_server *s = r->m->s;
    if (c->sock == NULL) {
        atomic_fetch_add(&s->dropped, 1);
        MICRO_LOGF(MICRO_LOG_INFO, "server",
            "%s: answer to %s dropped: the peer has gone",
            micro_request_remote(&r->req),
            r->req.endpoint ? r->req.endpoint : "an event");
        return;
    }
    int rc = r->out != NULL ? micro_socket_send(c->sock, r->out)
                            : MICRO_ENOMEM;
    if (rc != 0) {
        atomic_fetch_add(&s->dropped, 1);
        MICRO_LOGF(MICRO_LOG_WARN, "server", "%s: answer not sent: %s",
            micro_socket_remote(c->sock), micro_strerror(rc));
        conn_close(c);
    }
}

/* Loop thread: the answer of r is ready in r->out. */
static void
answer_on_loop(micro__task *task)
{
    mreq *r = (mreq *) task;
    if (atomic_load(&r->state) != RQ_EXPIRED) {
        send_answer(r);
    }
    request_done(r);
}

/* Any thread: hand r's answer to the loop. */
static void
post_answer(mreq *r)
{
    r->task.fn = answer_on_loop;
    if (micro_loop_is_current(r->m->loop)) {
        answer_on_loop(&r->task);
        return;
    }
    if (micro__loop_post_task(r->m->loop, &r->task) != 0) {
        /* The loop has shut down: nothing can be answered any more. */
        atomic_fetch_add(&r->m->s->dropped, 1);
        micro__free(r); /* its connection went with the loop */
    }
}

/* 0, or MICRO_ENOMEM (json NULL: it could not be made). */
static int
set_error_headers(micro_msg *out, const char *json)
{
    if (json == NULL || micro_msg_set_header(out, "Micro-Error", json) != 0 ||
        micro_msg_set_header(out, "X-Micro-Error", json) != 0) {
        return MICRO_ENOMEM;
    }
    return 0;
}

/* Make r's answer from rsp (success or error) and send it. An answer
 * that cannot be made whole (out of memory) is not sent at all: an error
 * without its Micro-Error header would reach the caller as a success. */
static void
finish(mreq *r, micro_response *rsp)
{
    micro_server *s = r->m->s;
    micro_msg *out = rsp->msg;
    micro_buf wire = {0};
    micro_codec_info info = {r->info.endpoint, r->info.id, NULL};
    bool lost = rsp->err == NULL && rsp->err_lost;
    rsp->msg = NULL;
    if (out == NULL && micro_msg_new(&out) != 0) {
        out = NULL;
    }
    int erc = 0;
    if (rsp->err == NULL && !lost && r->codec != NULL &&
        (erc = r->codec->write_response(&info, rsp->body.data,
             rsp->body.len, &wire)) != 0) {
        wire.len = 0;
        rsp->err = micro_error_new(s->name, 500,
            erc == MICRO_ENOMEM ? "out of memory"
                                : "failed to encode the response");
        lost = rsp->err == NULL;
    }
    if (rsp->err != NULL) {
        atomic_fetch_add(&s->errors, 1);
        char *json = micro_error_to_json(rsp->err);
        if (json == NULL || (out != NULL && set_error_headers(out, json) != 0)) {
            lost = true;
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
    if (out != NULL && wire.len > 0 && r->req.ct != NULL &&
        micro_msg_set_header(out, "Content-Type", r->req.ct) != 0) {
        lost = true;
    }
    if (lost) {
        micro_msg_free(out);
        out = NULL;
    }
    if (out != NULL) {
        micro_msg_take_body(out, &wire);
    }
    micro_buf_clear(&wire);
    micro_buf_clear(&rsp->body);
    micro_error_free(rsp->err);
    rsp->err = NULL;
    atomic_fetch_sub(&s->inflight, 1);
    if (out == NULL) {
        /* Out of memory even for an empty answer: the connection closes,
         * so the caller sees a transport error rather than a hang. */
        micro_log(MICRO_LOG_ERR, "server",
            "out of memory: an answer is lost; its connection closes");
        atomic_fetch_add(&s->dropped, 1);
    }
    r->out = out;
    post_answer(r);
}

/* Fail r with a Go Micro error without running a handler. */
static void
fail(mreq *r, int32_t code, const char *fmt, ...)
{
    micro_response rsp = {.s = r->m->s};
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    rsp.err = micro_error_new(r->m->s->name, code, detail);
    rsp.err_lost = rsp.err == NULL;
    finish(r, &rsp);
}

/* Decode, route and run. Worker thread, or the loop for inline work. */
static void
process(mreq *r)
{
    micro_server *s = r->m->s;
    int rc = r->codec->read_request(r->msg->body.data, r->msg->body.len,
        &r->info, &r->payload);
    if (rc == MICRO_ENOMEM) {
        fail(r, 500, "out of memory"); /* not the caller's fault */
        return;
    }
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
    mreq *r = (mreq *) t;
    int expect = RQ_QUEUED;
    if (!atomic_compare_exchange_strong(&r->state, &expect, RQ_RUNNING)) {
        /* Its deadline passed while it waited: answered already. */
        r->task.fn = answer_on_loop;
        if (micro__loop_post_task(r->m->loop, &r->task) != 0) {
            micro__free(r);
        }
        return;
    }
    process(r);
}

/* Loop thread: a queued request reached its deadline before a worker. */
static void
on_queued_deadline(micro__timer *t)
{
    mreq *r = (mreq *) ((char *) t - offsetof(mreq, timer));
    int expect = RQ_QUEUED;
    if (!atomic_compare_exchange_strong(&r->state, &expect, RQ_EXPIRED)) {
        return; /* a worker has it */
    }
    micro_server *s = r->m->s;
    atomic_fetch_add(&s->late, 1);
    atomic_fetch_add(&s->errors, 1);
    atomic_fetch_sub(&s->inflight, 1);
    MICRO_LOGF(MICRO_LOG_WARN, "server",
        "%s: %s waited past its deadline for a worker; answered 408",
        micro_request_remote(&r->req), r->req.endpoint);
    micro_error *e = micro_error_new(s->name, 408,
        "deadline exceeded before the request could start");
    char *json = e ? micro_error_to_json(e) : NULL;
    micro_error_free(e);
    micro_msg *out = NULL;
    bool ok = json != NULL && micro_msg_new(&out) == 0 &&
        set_error_headers(out, json) == 0;
    if (ok) {
        micro_buf wire = {0};
        micro_codec_info info = {r->info.endpoint, r->info.id, json};
        if (r->codec != NULL &&
            r->codec->write_response(&info, NULL, 0, &wire) == 0 &&
            wire.len > 0) {
            ok = micro_msg_set_header(out, "Content-Type", r->req.ct) == 0;
            micro_msg_take_body(out, &wire);
        }
        micro_buf_clear(&wire);
    }
    if (!ok) {
        micro_msg_free(out);
        out = NULL;
    }
    /* Without an answer (out of memory) the connection closes, so that
     * the caller hears something now rather than nothing. */
    r->out = out;
    send_answer(r);
    micro_msg_free(out);
    r->out = NULL;
    free(json);
    /* The worker that dequeues r hands it back to the loop (request_done);
     * until then the connection takes nothing new. */
}

static void
event_reply(micro__reply *rp, micro_msg *out)
{
    mreq *r = (mreq *) ((char *) rp - offsetof(mreq, reply));
    r->out = out;
    post_answer(r);
}

/* ------------------------------------------------------------------ */
/* Requests (loop thread).                                              */

static void on_stream_request(mconn *c, micro_msg *msg, const char *ct);

static void
on_unary(mconn *c, micro_msg *msg)
{
    mucp *m = c->m;
    micro_server *s = m->s;
    atomic_fetch_add(&s->requests, 1);
    atomic_fetch_add(&s->inflight, 1);
    mreq *r = micro__calloc(1, sizeof(*r));
    if (r == NULL) {
        atomic_fetch_sub(&s->inflight, 1);
        atomic_fetch_add(&s->dropped, 1);
        micro_msg_free(msg);
        micro_log(MICRO_LOG_ERR, "server",
            "out of memory: a request is refused; its connection closes");
        conn_close(c);
        return;
    }
    /* One request at a time per connection. */
    c->busy = true;
    c->refs++;
    work(m, 1);
    micro_socket_pause(c->sock, true);
    micro_socket_set_busy(c->sock, true);
    r->m = m;
    r->c = c;
    r->msg = msg;
    r->reply.fn = event_reply;
    r->req.s = s;
    r->req.msg = msg;
    r->req.service = micro__mucp_hdr2(msg, "Micro-Service", "X-Micro-Service");
    r->req.endpoint = micro__mucp_hdr2(msg, "Micro-Endpoint",
        "X-Micro-Endpoint");
    if (r->req.endpoint == NULL) {
        r->req.endpoint = micro__mucp_hdr2(msg, "Micro-Method",
            "X-Micro-Method");
    }
    r->req.deadline = micro__mucp_deadline(msg);
    r->req.ct = micro_msg_header(msg, "Content-Type");
    if (r->req.ct == NULL || r->req.ct[0] == '\0') {
        r->req.ct = "application/protobuf"; /* Go Micro's server default */
    }
    if (micro__mucp_hdr2(msg, "Micro-Topic", "X-Micro-Topic") != NULL) {
        /* An event: subscriber.c answers it through r->reply and owns
         * the inflight count. */
        r->msg = NULL;
        micro__server_event(s, &r->reply, msg);
        return;
    }
    r->codec = micro_codec_lookup(r->req.ct);
    /* Go Micro's legacy switch: a request naming no service, method or
     * endpoint is read with the envelope codec of its content type. */
    bool legacy = r->req.service == NULL && r->req.endpoint == NULL &&
        micro__mucp_hdr2(msg, "Micro-Protocol", "X-Micro-Protocol") == NULL;
    if (legacy && strncasecmp(r->req.ct, "application/json", 16) == 0) {
        r->codec = &micro_codec_jsonrpc_ops;
    } else if (legacy &&
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
    const micro__handler *h = r->req.endpoint != NULL
        ? micro__server_find(s, r->req.endpoint)
        : NULL;
    if (h != NULL && h->stream) {
        fail(r, 400, "%s is a stream endpoint: call it as a stream",
            r->req.endpoint);
        return;
    }
    bool run_inline = m->inline_all ||
        (h != NULL && (h->flags & MICRO_HANDLER_INLINE) != 0);
    if (run_inline) {
        atomic_init(&r->state, RQ_RUNNING);
        process(r);
        return;
    }
    atomic_init(&r->state, RQ_QUEUED);
    r->task.fn = process_task;
    int rc = micro__pool_submit(m->pool, &r->task);
    if (rc != 0) {
        atomic_store(&r->state, RQ_RUNNING);
        fail(r, 503, rc == MICRO_ECLOSED ? "server is shutting down"
                                         : "no worker thread could start");
        return;
    }
    if (r->req.deadline != 0) {
        (void) micro__timer_start(m->loop, &r->timer, r->req.deadline,
            on_queued_deadline);
    }
}

static void
sock_on_msg(void *arg, micro_socket *sock, micro_msg *msg)
{
    mconn *c = arg;
    (void) sock;
    if (c->stream != NULL) {
        micro__stream_deliver(c->stream, msg);
        return;
    }
    if (c->rejected) {
        micro_msg_free(msg); /* the rest of a refused stream */
        return;
    }
    const char *sid = micro__mucp_hdr2(msg, "Micro-Stream", "X-Micro-Stream");
    if (sid != NULL && micro__mucp_hdr2(msg, "Micro-Topic",
                           "X-Micro-Topic") == NULL) {
        const char *ct = micro_msg_header(msg, "Content-Type");
        on_stream_request(c, msg,
            ct != NULL && ct[0] != '\0' ? ct : "application/protobuf");
        return;
    }
    on_unary(c, msg);
}

static void
sock_on_eof(void *arg, micro_socket *sock, int rc)
{
    mconn *c = arg;
    (void) sock;
    c->eof = true;
    if (c->stream != NULL) {
        micro__stream_gone(c->stream, rc, false);
        return;
    }
    if (!c->busy) {
        conn_close(c);
    }
    /* Otherwise the answer in progress is written, then it closes. */
}

static void
sock_on_drain(void *arg, micro_socket *sock)
{
    mconn *c = arg;
    (void) sock;
    if (c->stream != NULL) {
        micro__stream_drain(c->stream);
    }
}

static void
sock_on_close(void *arg, micro_socket *sock, int rc)
{
    mconn *c = arg;
    (void) sock;
    if (c->stream != NULL) {
        micro_stream *st = c->stream;
        c->stream = NULL;
        micro__stream_gone(st, rc, true);
    }
    conn_gone(c);
}

static const micro_socket_handler conn_handler = {
    .on_msg = sock_on_msg,
    .on_eof = sock_on_eof,
    .on_drain = sock_on_drain,
    .on_close = sock_on_close,
};

/* The stream of c ended and closed its socket. */
static void
host_on_done(micro__stream_host *h, void *conn, micro_socket *sock)
{
    mconn *c = conn;
    (void) h;
    (void) sock;
    c->stream = NULL;
    conn_gone(c);
}

/* Answer a stream that cannot be served with one error message (the
 * opening request's headers + Micro-Error), then drop the rest. */
static void
refuse_stream(mconn *c, micro_msg *msg, int32_t code, const char *detail)
{
    micro_server *s = c->m->s;
    atomic_fetch_add(&s->errors, 1);
    c->rejected = true;
    micro_error *e = micro_error_new(s->name, code, detail);
    char *json = e ? micro_error_to_json(e) : NULL;
    micro_error_free(e);
    micro_msg *out = NULL;
    static const char *const skip[] = {"Host", "Remote", "Content-Length",
        "Transfer-Encoding", "Connection", NULL};
    if (json != NULL && micro_msg_new(&out) == 0 &&
        micro__msg_copy_headers(out, msg, skip) == 0 &&
        set_error_headers(out, json) == 0) {
        if (micro_socket_send(c->sock, out) != 0) {
            conn_close(c);
        }
    } else {
        conn_close(c);
    }
    micro_msg_free(out);
    micro_msg_free(msg);
    free(json);
}

static void
on_stream_request(mconn *c, micro_msg *msg, const char *ct)
{
    mucp *m = c->m;
    micro_server *s = m->s;
    atomic_fetch_add(&s->requests, 1);
    const char *ep = micro__mucp_hdr2(msg, "Micro-Endpoint",
        "X-Micro-Endpoint");
    if (ep == NULL) {
        ep = micro__mucp_hdr2(msg, "Micro-Method", "X-Micro-Method");
    }
    const micro_codec_ops *codec = micro_codec_lookup(ct);
    if (codec == NULL) {
        atomic_fetch_add(&s->codec_errors, 1);
        char d[300];
        snprintf(d, sizeof(d), "unsupported Content-Type: %s", ct);
        refuse_stream(c, msg, 400, d);
        return;
    }
    micro_request probe = {.s = s, .msg = msg, .endpoint = ep};
    micro_response rsp = {.s = s};
    const micro__handler *h = ep != NULL ? micro__server_find(s, ep) : NULL;
    if (h == NULL) {
        /* The router's own texts and codes (404 / 400). */
        micro__server_route(s, &probe, &rsp);
        refuse_stream(c, msg, rsp.err ? rsp.err->code : 404,
            rsp.err ? rsp.err->detail : "unknown endpoint");
        micro_error_free(rsp.err);
        micro_buf_clear(&rsp.body);
        micro_msg_free(rsp.msg);
        return;
    }
    if (!h->stream) {
        char d[300];
        snprintf(d, sizeof(d), "rpc: %s is not a stream endpoint", ep);
        refuse_stream(c, msg, 400, d);
        return;
    }
    atomic_fetch_add(&s->streams, 1);
    micro_stream *st = NULL;
    work(m, 1); /* until the stream's on_close has run */
    int rc = micro__stream_accept(&m->host, c, c->sock, msg, h, codec, ct,
        &st);
    if (rc != 0) {
        work(m, -1);
        micro_log(MICRO_LOG_ERR, "server",
            "out of memory: a stream is refused; its connection closes");
        conn_close(c);
        return;
    }
    c->stream = st;
}

/* ------------------------------------------------------------------ */
/* Accepting and stopping.                                              */

static void
on_accept(void *arg, micro_socket *sock)
{
    mucp *m = arg;
    if (m->stopping) {
        micro_socket_close(sock);
        return;
    }
    mconn *c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        micro_log(MICRO_LOG_ERR, "server",
            "out of memory: a connection is refused");
        micro_socket_close(sock);
        return;
    }
    c->m = m;
    c->sock = sock;
    c->refs = 1;
    c->next = m->conns;
    if (m->conns != NULL) {
        m->conns->prev = c;
    }
    m->conns = c;
    micro_socket_set_handler(sock, &conn_handler, c);
}

/* Loop thread: stop taking work. Idle connections close; streams end with
 * 503; a request in progress closes its connection once answered. */
static int
do_quiesce(void *arg)
{
    mucp *m = arg;
    m->stopping = true;
    for (mconn *c = m->conns, *next; c != NULL; c = next) {
        next = c->next;
        c->refs++;
        if (c->stream != NULL) {
            micro__stream_stop(c->stream);
        } else if (!c->busy) {
            conn_close(c);
        }
        conn_unref(c);
    }
    return 0;
}

/* Loop thread: close everything still open (after the drain). */
static int
do_close_all(void *arg)
{
    mucp *m = arg;
    for (mconn *c = m->conns, *next; c != NULL; c = next) {
        next = c->next;
        c->refs++;
        conn_close(c);
        conn_unref(c);
    }
    return 0;
}

/* Wait until no work is left, or until deadline (0: no deadline). */
static bool
wait_work(mucp *m, int64_t deadline)
{
    pthread_mutex_lock(&m->mu);
    atomic_store(&m->waiting, true);
    while (atomic_load(&m->work) > 0) {
        if (deadline == 0) {
            pthread_cond_wait(&m->cv, &m->mu);
            continue;
        }
        int64_t left = deadline - micro__now_ms();
        if (left <= 0) {
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t) (left / 1000);
        ts.tv_nsec += (long) (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    }
    bool idle = atomic_load(&m->work) == 0;
    atomic_store(&m->waiting, false);
    pthread_mutex_unlock(&m->mu);
    return idle;
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
    int64_t w = micro_options_get_int(opts, "transport_window");
    m->host.srv = srv;
    m->host.window = w > 0 ? (size_t) w : (size_t) 256 << 10;
    m->host.on_done = host_on_done;
    m->host.work = host_work;
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    return 0;
}

static int
mucp_start(void *st)
{
    mucp *m = st;
    if (m->pool == NULL) {
        int rc = micro__pool_new(&m->pool, m->workers > 0 ? m->workers : 16,
            "server");
        if (rc != 0) {
            return rc;
        }
    }
    m->host.pool = m->pool;
    m->stopping = false;
    const char *addr =
        micro_options_get_str(micro_server_options(m->s), "server_address");
    if (addr == NULL || addr[0] == '\0') {
        addr = ":0";
    }
    int rc = micro_transport_listen(m->tr, addr, on_accept, m);
    if (rc != 0) {
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
    micro_transport_stop_listen(m->tr);
    micro__loop_call(m->loop, do_quiesce, m);
    int64_t deadline = micro__deadline_after(drain_ms > 0 ? drain_ms : 1);
    if (wait_work(m, deadline)) {
        micro__loop_call(m->loop, do_close_all, m);
        return 0;
    }
    long left = atomic_load(&m->work);
    micro_log(MICRO_LOG_WARN, "server",
        "%ld request(s) or stream(s) still running after the %lld ms "
        "drain; their connections close and their answers are dropped "
        "(micro_server_free waits for the handlers)",
        left, (long long) drain_ms);
    micro__loop_call(m->loop, do_close_all, m);
    return MICRO_ETIMEDOUT;
}

static const char *
mucp_listen_address(void *st)
{
    mucp *m = st;
    return micro_transport_address(m->tr);
}

static int
loop_barrier(void *arg)
{
    (void) arg;
    return 0;
}

static void
mucp_fini(void *st)
{
    mucp *m = st;
    if (m->started) {
        mucp_stop(m, 0);
    }
    /* Handlers still running finish against live objects: wait for every
     * request, event and stream, then join the workers. */
    wait_work(m, 0);
    micro__pool_free(m->pool);
    m->pool = NULL;
    /* Tasks the workers posted to the loop have run once this returns. */
    micro__loop_call(m->loop, loop_barrier, NULL);
    micro__loop_call(m->loop, do_close_all, m);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
}

/* The options this server reads besides the core's (its --help group). */
static const micro_option_desc mucp_options[] = {
    {"server_workers", MICRO_OPT_INT, "16", "handler worker threads"},
    {"server_inline", MICRO_OPT_BOOL, "false",
        "run handlers on the loop thread (non-blocking handlers only)"},
    MICRO_OPTION_END,
};

const micro_server_ops micro_server_mucp_ops = {
    .abi = MICRO_SERVER_ABI,
    .name = "mucp",
    .state_size = sizeof(mucp),
    .init = mucp_init,
    .start = mucp_start,
    .stop = mucp_stop,
    .listen_address = mucp_listen_address,
    .fini = mucp_fini,
    .options = mucp_options,
};
