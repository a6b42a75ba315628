/*
 * Client side of the http transport, native to an event loop: a round trip
 * started with roundtrip_async runs on the thread of the loop it was given,
 * from dial to parsed response, with no thread of its own and no blocking
 * call. It writes the bytes micro__http_write_request builds (those of the
 * blocking client) and reads with the blocking client's response parser
 * (micro__http_rsp), so the two differ only in how they wait.
 *
 * Each loop gets a context of its own: a pool of idle keep-alive
 * connections keyed by address, under the limits of the blocking pool
 * (client_pool_size per address, client_pool_ttl since dial), a read
 * buffer, and a timer that runs completions a start could not run itself
 * (a callback never runs inside the call that started it). Nothing in a
 * context is shared with another thread except its place in the list that
 * shutdown walks, so none of it is locked.
 *
 * A connection carries one exchange at a time and owns a timer, armed per
 * exchange for its deadline (and for the dial timeout while connecting);
 * when it fires, the connection is closed. Idle connections keep reading,
 * so one the server closes (or writes to out of turn) leaves the pool at
 * once instead of failing the next call. Should a pooled connection still
 * fail before any response byte arrived (EPIPE, ECONNRESET or EOF: the
 * server closed it as the request crossed), the request is sent once more
 * on a new connection, by the rule and for the reasons micro__http_roundtrip
 * gives.
 */
#include "transport/http_internal.h"
#include "core/loop_internal.h"
#include "core/strtab.h"

#include <netdb.h>
#include <pthread.h>

#include <uv.h>

#define HA_COMPONENT "transport.http"
#define HA_READ_BUF (64 * 1024)
#define HA_NO_DEADLINE INT64_MAX

typedef struct ha_ctx ha_ctx;
typedef struct ha_conn ha_conn;
typedef struct ha_bucket ha_bucket;
typedef struct ha_gai ha_gai;

struct micro__http_async {
    micro__http_pool_cfg cfg;
    pthread_mutex_t mu; /* guards ctxs, closing and each ctx's close_posted */
    ha_ctx *ctxs;
    bool closing;
};

/* The idle connections to one address, a LIFO stack as in the blocking
 * pool: the most recently released one is reused first. */
struct ha_bucket {
    micro__strtab_node node; /* first: key = addr */
    ha_conn *top;
    size_t n;
    char addr[]; /* NUL-terminated */
};

struct ha_ctx {
    micro__loop_ext ext; /* key: the micro__http_async */
    micro__http_async *a;
    micro_loop *loop;
    uv_loop_t *uv;
    ha_ctx *next;           /* in a->ctxs */
    micro__task close_task; /* posted by shutdown */
    bool close_posted;      /* a->mu */
    bool closing;
    int handles;            /* open handles: defer + two per connection */
    uv_timer_t defer;
    micro_transport_call *deferred; /* completions for the next turn */
    micro_transport_call *flushing; /* those the defer timer is running */
    micro_transport_call *calls;    /* every pending round trip */
    ha_conn *conns;                 /* every open connection */
    micro__strtab buckets; /* of ha_bucket, by address */
    char *rbuf;
    bool rbuf_busy;
};

struct ha_conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the deadline of the exchange it carries */
    uv_connect_t creq;
    uv_write_t wreq;
    ha_ctx *x;
    ha_conn *prev, *next; /* x->conns */
    ha_bucket *bucket;    /* while idle */
    ha_conn *idle_prev, *idle_next;
    micro_transport_call *rt; /* the exchange it carries, or NULL */
    micro__http_rsp rsp;      /* begun while rsp_on */
    int open;                 /* of tcp and timer, not yet closed */
    bool rsp_on;
    bool closing;
    bool connected;
    bool writing; /* a uv_write is pending */
    int64_t dialed_at_ms;
};

struct micro_transport_call {
    ha_ctx *x;
    ha_conn *conn;                     /* carrying it, or NULL */
    micro_transport_call *prev, *next; /* x->calls */
    micro_transport_call *dprev, *dnext; /* *dlist, while deferred */
    micro_transport_call **dlist;        /* &x->deferred or &x->flushing */
    micro_transport_done_fn cb;
    void *arg;
    micro_buf out;         /* the request, head and body */
    int64_t deadline;      /* of the whole exchange, or HA_NO_DEADLINE */
    int64_t dial_deadline; /* of the dial in progress */
    int sent;
    int rc; /* while deferred */
    bool starting; /* inside micro__http_async_roundtrip */
    bool deferred;
    bool reused;     /* the connection came from the pool */
    bool redialled;  /* the one resend after a stale connection is used */
    ha_gai *gai;     /* a name being resolved */
    struct addrinfo *ai_res, *ai_next; /* resolved, and still to try */
    uint64_t hash;
    size_t addr_len;
    char addr[]; /* NUL-terminated */
};

/* A resolution outlives an abandoned round trip: the request cannot be
 * taken back once libuv's thread pool runs it, so it holds no pointer to
 * anything else once rt is NULL. */
struct ha_gai {
    uv_getaddrinfo_t req;
    micro_transport_call *rt; /* NULL once abandoned */
};

static void conn_close(ha_conn *c);
static void conn_fail(ha_conn *c, int rc);
static void rt_dial(micro_transport_call *rt);
static void ctx_maybe_free(ha_ctx *x);

/* ------------------------------------------------------------------------
 * Round trips: completion
 * --------------------------------------------------------------------- */

static void
rt_free(micro_transport_call *rt)
{
    if (rt->gai != NULL) {
        /* Let the resolution finish on its own; uv_cancel only helps when
         * it has not started. */
        rt->gai->rt = NULL;
        uv_cancel((uv_req_t *) &rt->gai->req);
        rt->gai = NULL;
    }
    if (rt->ai_res != NULL) {
        uv_freeaddrinfo(rt->ai_res);
    }
    micro_buf_clear(&rt->out);
    micro__free(rt);
}

static void
deferred_unlink(micro_transport_call *rt)
{
    if (rt->dprev != NULL) {
        rt->dprev->dnext = rt->dnext;
    } else {
        *rt->dlist = rt->dnext;
    }
    if (rt->dnext != NULL) {
        rt->dnext->dprev = rt->dprev;
    }
    rt->dprev = rt->dnext = NULL;
    rt->deferred = false;
}

/* Run cb and free rt. The connection is already detached. */
static void
rt_complete(micro_transport_call *rt, int rc, micro_msg *rsp)
{
    ha_ctx *x = rt->x;
    if (rt->deferred) {
        deferred_unlink(rt);
    }
    if (rt->prev != NULL) {
        rt->prev->next = rt->next;
    } else {
        x->calls = rt->next;
    }
    if (rt->next != NULL) {
        rt->next->prev = rt->prev;
    }
    micro_transport_done_fn cb = rt->cb;
    void *arg = rt->arg;
    int sent = rt->sent;
    rt_free(rt);
    cb(arg, rc, rsp, sent);
}

static void
on_defer(uv_timer_t *t)
{
    ha_ctx *x = t->data;
    /* Completions queued by the callbacks below wait for the next turn;
     * a callback may cancel one of those still to run here. */
    x->flushing = x->deferred;
    x->deferred = NULL;
    for (micro_transport_call *rt = x->flushing; rt != NULL; rt = rt->dnext) {
        rt->dlist = &x->flushing;
    }
    while (x->flushing != NULL) {
        micro_transport_call *rt = x->flushing;
        rt_complete(rt, rt->rc, NULL);
    }
}

/*
 * The round trip ended (its connection, if any, is detached). Inside the
 * call that started it, the callback waits for the next loop turn.
 */
static void
rt_finish(micro_transport_call *rt, int rc, micro_msg *rsp)
{
    if (!rt->starting) {
        rt_complete(rt, rc, rsp);
        return;
    }
    /* Only failures are found synchronously: there is no response. */
    MICRO_ASSERT(rsp == NULL);
    ha_ctx *x = rt->x;
    rt->rc = rc;
    rt->deferred = true;
    rt->dlist = &x->deferred;
    rt->dprev = NULL;
    rt->dnext = x->deferred;
    if (x->deferred != NULL) {
        x->deferred->dprev = rt;
    }
    x->deferred = rt;
    if (!uv_is_active((uv_handle_t *) &x->defer)) {
        uv_timer_start(&x->defer, on_defer, 0, 0);
    }
}

/* ------------------------------------------------------------------------
 * The pool of idle connections
 * --------------------------------------------------------------------- */

static ha_bucket *
pool_find(ha_ctx *x, const char *addr, size_t len, uint64_t h)
{
    return (ha_bucket *) micro__strtab_find(&x->buckets, addr, len, h);
}

/* Connections are closed through x->conns; a bucket only links them. */
static void
bucket_free(micro__strtab_node *n, void *arg)
{
    (void) arg;
    micro__free(n);
}

static void
idle_remove(ha_conn *c)
{
    ha_bucket *b = c->bucket;
    if (b == NULL) {
        return;
    }
    if (c->idle_prev != NULL) {
        c->idle_prev->idle_next = c->idle_next;
    } else {
        b->top = c->idle_next;
    }
    if (c->idle_next != NULL) {
        c->idle_next->idle_prev = c->idle_prev;
    }
    c->idle_prev = c->idle_next = NULL;
    c->bucket = NULL;
    b->n--;
}

/* The most recently released idle connection to the address that is
 * younger than the TTL; older ones are closed on the way. */
static ha_conn *
pool_get(ha_ctx *x, const micro_transport_call *rt)
{
    ha_bucket *b = pool_find(x, rt->addr, rt->addr_len, rt->hash);
    int64_t ttl = x->a->cfg.ttl_ms;
    int64_t now = b != NULL && b->top != NULL ? micro__now_ms() : 0;
    while (b != NULL && b->top != NULL) {
        ha_conn *c = b->top;
        idle_remove(c);
        if (ttl > 0 && now - c->dialed_at_ms > ttl) {
            conn_close(c);
            continue;
        }
        return c;
    }
    return NULL;
}

/* Keep a connection after a clean exchange, unless the address already
 * has client_pool_size idle ones. */
static void
pool_put(ha_conn *c, const char *addr, size_t len, uint64_t h)
{
    ha_ctx *x = c->x;
    size_t cap = x->a->cfg.size;
    ha_bucket *b = cap > 0 && !x->closing ? pool_find(x, addr, len, h) : NULL;
    if (b == NULL && cap > 0 && !x->closing) {
        b = micro__malloc(sizeof(*b) + len + 1);
        if (b != NULL) {
            b->top = NULL;
            b->n = 0;
            memcpy(b->addr, addr, len + 1);
            if (micro__strtab_insert(&x->buckets, &b->node, b->addr, len, h) !=
                0) {
                micro__free(b);
                b = NULL;
            }
        }
    }
    if (b == NULL || b->n >= cap) {
        conn_close(c);
        return;
    }
    c->bucket = b;
    c->idle_prev = NULL;
    c->idle_next = b->top;
    if (b->top != NULL) {
        b->top->idle_prev = c;
    }
    b->top = c;
    b->n++;
}

/* ------------------------------------------------------------------------
 * Connections
 * --------------------------------------------------------------------- */

static void
on_conn_closed(uv_handle_t *h)
{
    ha_conn *c = h->data;
    ha_ctx *x = c->x;
    x->handles--;
    if (--c->open > 0) {
        return;
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        x->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    micro__free(c);
    ctx_maybe_free(x);
}

static void
conn_rsp_end(ha_conn *c, const char *addr, int rc)
{
    if (c->rsp_on) {
        micro__http_rsp_end(&c->rsp, addr, rc);
        c->rsp_on = false;
    }
}

/* Close a connection that carries nothing (detach its exchange first). */
static void
conn_close(ha_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    idle_remove(c);
    conn_rsp_end(c, "", 0);
    uv_timer_stop(&c->timer);
    /* Closing the stream cancels a pending connect or write: their
     * callbacks run with UV_ECANCELED and find the connection closing. */
    uv_close((uv_handle_t *) &c->tcp, on_conn_closed);
    uv_close((uv_handle_t *) &c->timer, on_conn_closed);
}

static ha_conn *
conn_new(ha_ctx *x)
{
    ha_conn *c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->x = x;
    if (uv_tcp_init(x->uv, &c->tcp) != 0) {
        micro__free(c);
        return NULL;
    }
    uv_timer_init(x->uv, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->creq.data = c;
    c->wreq.data = c;
    c->open = 2;
    x->handles += 2;
    c->next = x->conns;
    if (x->conns != NULL) {
        x->conns->prev = c;
    }
    x->conns = c;
    return c;
}

static micro_transport_call *
conn_detach(ha_conn *c)
{
    micro_transport_call *rt = c->rt;
    if (rt != NULL) {
        rt->conn = NULL;
        c->rt = NULL;
    }
    uv_timer_stop(&c->timer);
    return rt;
}

static void
on_conn_timer(uv_timer_t *t)
{
    ha_conn *c = t->data;
    if (c->rt != NULL && c->rt->gai != NULL) {
        /* Still resolving: the answer, when it comes, is dropped. */
        c->rt->gai->rt = NULL;
        uv_cancel((uv_req_t *) &c->rt->gai->req);
        c->rt->gai = NULL;
    }
    conn_fail(c, MICRO_ETIMEDOUT);
}

/* Arm the connection's timer for deadline (in micro__now_ms time, which
 * shares libuv's monotonic clock): it fires at the deadline or a little
 * after, never before. */
static void
conn_arm(ha_conn *c, int64_t deadline)
{
    if (deadline == HA_NO_DEADLINE) {
        uv_timer_stop(&c->timer);
        return;
    }
    int64_t left = deadline - (int64_t) uv_now(c->x->uv);
    uv_timer_start(&c->timer, on_conn_timer, left > 0 ? (uint64_t) left : 0,
        0);
}

/*
 * The exchange on c failed with rc: close c, then move the round trip on:
 * to the next resolved address when the dial failed (not timed out), to a
 * new connection once when a pooled one turned out stale, else to its end.
 */
static void
conn_fail(ha_conn *c, int rc)
{
    micro_transport_call *rt = conn_detach(c);
    bool got_bytes = c->rsp_on && c->rsp.got_bytes;
    bool connected = c->connected;
    conn_rsp_end(c, rt != NULL ? rt->addr : "", rc);
    conn_close(c);
    if (rt == NULL) {
        return;
    }
    if (!connected && rc != MICRO_ETIMEDOUT && rt->ai_next != NULL) {
        rt_dial(rt);
        return;
    }
    if (rt->reused && !rt->redialled && !got_bytes &&
        (rc == MICRO_EPIPE || rc == MICRO_ECONNRESET)) {
        MICRO_LOGF(MICRO_LOG_DEBUG, HA_COMPONENT,
            "%s: pooled connection was closed (%s); redialling", rt->addr,
            micro_strerror(rc));
        rt->redialled = true;
        rt->reused = false;
        rt->sent = 0; /* the first copy is deemed undelivered */
        rt_dial(rt);
        return;
    }
    rt_finish(rt, rc, NULL);
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    ha_conn *c = h->data;
    ha_ctx *x = c->x;
    (void) hint;
    /* One loop thread, one read at a time: a shared buffer suffices (the
     * parser copies what it keeps). */
    if (!x->rbuf_busy) {
        x->rbuf_busy = true;
        *buf = uv_buf_init(x->rbuf, HA_READ_BUF);
    } else {
        *buf = uv_buf_init(NULL, 0);
    }
}

/* The response is complete: reuse or close the connection, then finish. */
static void
conn_done(ha_conn *c)
{
    micro_transport_call *rt = conn_detach(c);
    bool reusable = false;
    micro_msg *rsp = micro__http_rsp_take(&c->rsp, &reusable);
    conn_rsp_end(c, rt->addr, 0);
    /* A write still pending means the server answered before reading the
     * whole request: the connection is out of step. */
    if (reusable && !c->writing) {
        pool_put(c, rt->addr, rt->addr_len, rt->hash);
    } else {
        conn_close(c);
    }
    rt_finish(rt, 0, rsp);
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    ha_conn *c = s->data;
    ha_ctx *x = c->x;
    if (buf->base == x->rbuf) {
        x->rbuf_busy = false;
    }
    if (nread == 0 || c->closing) {
        return;
    }
    if (c->rt == NULL) {
        /* Idle: the server closed it, or sent what nobody asked for. */
        conn_close(c);
        return;
    }
    int rc;
    if (nread < 0) {
        rc = nread == UV_EOF ? micro__http_rsp_feed(&c->rsp, NULL, 0)
                             : (int) nread;
    } else {
        rc = micro__http_rsp_feed(&c->rsp, buf->base, (size_t) nread);
    }
    if (rc == 1) {
        conn_done(c);
    } else if (rc < 0) {
        conn_fail(c, rc);
    }
}

static void
on_written(uv_write_t *w, int status)
{
    ha_conn *c = w->data;
    c->writing = false;
    if (c->closing || status == 0) {
        return;
    }
    conn_fail(c, status);
}

/* Send rt's request on its connection (connected, reading, timer armed). */
static void
rt_send(micro_transport_call *rt)
{
    ha_conn *c = rt->conn;
    int rc = micro__http_rsp_begin(&c->rsp, &rt->x->a->cfg);
    if (rc != 0) {
        conn_fail(c, rc);
        return;
    }
    c->rsp_on = true;
    /* Most requests fit the socket buffer: written now, with no request
     * object and no deferred callback. */
    uv_buf_t b = uv_buf_init((char *) rt->out.data, (unsigned) rt->out.len);
    int n = uv_try_write((uv_stream_t *) &c->tcp, &b, 1);
    if (n == (int) rt->out.len) {
        rt->sent = 1;
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_fail(c, n);
        return;
    }
    size_t done = n > 0 ? (size_t) n : 0;
    b = uv_buf_init((char *) rt->out.data + done,
        (unsigned) (rt->out.len - done));
    rc = uv_write(&c->wreq, (uv_stream_t *) &c->tcp, &b, 1, on_written);
    if (rc != 0) {
        if (done > 0) {
            rt->sent = 1;
        }
        conn_fail(c, rc);
        return;
    }
    /* What reached the peer is unknown from here: assume some did. */
    rt->sent = 1;
    c->writing = true;
}

static void
on_connect(uv_connect_t *req, int status)
{
    ha_conn *c = req->data;
    if (c->closing) {
        return; /* abandoned; status is UV_ECANCELED */
    }
    if (status != 0) {
        conn_fail(c, status);
        return;
    }
    c->connected = true;
    c->dialed_at_ms = micro__now_ms();
    /* Requests are single writes answered by the peer: Nagle only adds
     * latency here. */
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_read_start((uv_stream_t *) &c->tcp, on_alloc, on_read);
    if (rc != 0) {
        conn_fail(c, rc);
        return;
    }
    conn_arm(c, c->rt->deadline);
    rt_send(c->rt);
}

static void
conn_connect(ha_conn *c, const struct sockaddr *sa)
{
    int rc = uv_tcp_connect(&c->creq, &c->tcp, sa, on_connect);
    if (rc != 0) {
        conn_fail(c, rc);
    }
}

static int
resolve_error(int status)
{
    return status == UV_EAI_MEMORY ? MICRO_ENOMEM : MICRO_EINVAL;
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    ha_gai *g = (ha_gai *) req;
    micro_transport_call *rt = g->rt;
    micro__free(g);
    if (rt == NULL) {
        uv_freeaddrinfo(res); /* abandoned */
        return;
    }
    rt->gai = NULL;
    if (status != 0 || res == NULL) {
        MICRO_LOGF(MICRO_LOG_DEBUG, HA_COMPONENT, "resolve %s: %s", rt->addr,
            status != 0 ? uv_strerror(status) : "no address");
        uv_freeaddrinfo(res);
        conn_fail(rt->conn, resolve_error(status));
        return;
    }
    rt->ai_res = res;
    rt->ai_next = res->ai_next;
    conn_connect(rt->conn, res->ai_addr);
}

/*
 * Dial a new connection for rt: the next resolved address when a dial is
 * under way, else addr itself (a literal at once, a name through
 * uv_getaddrinfo on libuv's thread pool). The connection's timer bounds
 * the dial by client_dial_timeout and the exchange's deadline.
 */
static void
rt_dial(micro_transport_call *rt)
{
    ha_ctx *x = rt->x;
    bool next_addr = rt->ai_next != NULL;
    if (!next_addr) {
        if (rt->ai_res != NULL) {
            uv_freeaddrinfo(rt->ai_res);
            rt->ai_res = NULL;
        }
        rt->dial_deadline = rt->deadline;
        int64_t dt = x->a->cfg.dial_timeout_ms;
        if (dt > 0 && micro__now_ms() + dt < rt->dial_deadline) {
            rt->dial_deadline = micro__now_ms() + dt;
        }
    }
    ha_conn *c = conn_new(x);
    if (c == NULL) {
        rt_finish(rt, MICRO_ENOMEM, NULL);
        return;
    }
    c->rt = rt;
    rt->conn = c;
    rt->reused = false;
    conn_arm(c, rt->dial_deadline);
    if (next_addr) {
        struct addrinfo *ai = rt->ai_next;
        rt->ai_next = ai->ai_next;
        conn_connect(c, ai->ai_addr);
        return;
    }
    char host[256];
    const char *port = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int rc = micro__http_addr_parse(rt->addr, host, sizeof(host), &port, &ss,
        &sl);
    if (rc == 1) {
        conn_connect(c, (const struct sockaddr *) &ss);
        return;
    }
    if (rc < 0) {
        conn_fail(c, rc);
        return;
    }
    ha_gai *g = micro__calloc(1, sizeof(*g));
    if (g == NULL) {
        conn_fail(c, MICRO_ENOMEM);
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    g->rt = rt;
    /* An empty host (":port") means the local system, as in Go. */
    rc = uv_getaddrinfo(x->uv, &g->req, on_resolved, host[0] ? host : NULL,
        port, &hints);
    if (rc != 0) {
        micro__free(g);
        conn_fail(c, resolve_error(rc));
        return;
    }
    rt->gai = g;
}

/* ------------------------------------------------------------------------
 * Per-loop contexts
 * --------------------------------------------------------------------- */

static void
ctx_maybe_free(ha_ctx *x)
{
    if (!x->closing || x->handles > 0) {
        return;
    }
    micro__http_async *a = x->a;
    pthread_mutex_lock(&a->mu);
    for (ha_ctx **pp = &a->ctxs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    }
    pthread_mutex_unlock(&a->mu);
    micro__strtab_clear(&x->buckets, bucket_free, NULL);
    micro__free(x->rbuf);
    micro__free(x);
}

static void
on_defer_closed(uv_handle_t *h)
{
    ha_ctx *x = h->data;
    x->handles--;
    ctx_maybe_free(x);
}

/* Loop thread: complete every pending round trip (those already decided
 * with their result, the others with MICRO_ECANCELED), close every
 * connection, and free the context once the last handle has closed. */
static void
ctx_close(ha_ctx *x)
{
    if (x->closing) {
        return;
    }
    x->closing = true;
    micro__loop_ext_remove(x->loop, &x->ext);
    uv_timer_stop(&x->defer);
    uv_close((uv_handle_t *) &x->defer, on_defer_closed);
    /* Callbacks may start round trips (refused: the transport or loop is
     * closing, so no context is made) or cancel others: re-read the list
     * head each time. */
    while (x->calls != NULL) {
        micro_transport_call *rt = x->calls;
        int rc = rt->deferred ? rt->rc : MICRO_ECANCELED;
        ha_conn *c = rt->conn;
        if (c != NULL) {
            conn_detach(c);
            conn_rsp_end(c, rt->addr, rc);
            conn_close(c);
        }
        rt->starting = false;
        rt_complete(rt, rc, NULL);
    }
    for (ha_conn *c = x->conns; c != NULL; c = c->next) {
        conn_close(c);
    }
}

static void
ctx_on_loop_close(micro__loop_ext *ext)
{
    ctx_close((ha_ctx *) ext);
}

static void
ctx_close_task(micro__task *t)
{
    ha_ctx *x = (ha_ctx *) ((char *) t - offsetof(ha_ctx, close_task));
    ctx_close(x);
}

static int
ctx_get(micro__http_async *a, micro_loop *loop, ha_ctx **out)
{
    ha_ctx *x = (ha_ctx *) micro__loop_ext_find(loop, a);
    if (x != NULL) {
        *out = x;
        return 0;
    }
    if (micro__loop_closing(loop)) {
        return MICRO_ECLOSED;
    }
    x = micro__calloc(1, sizeof(*x));
    if (x == NULL) {
        return MICRO_ENOMEM;
    }
    x->rbuf = micro__malloc(HA_READ_BUF);
    if (x->rbuf == NULL) {
        micro__free(x);
        return MICRO_ENOMEM;
    }
    x->ext.key = a;
    x->ext.on_close = ctx_on_loop_close;
    x->a = a;
    x->loop = loop;
    x->uv = micro_loop_uv(loop);
    x->close_task.fn = ctx_close_task;
    pthread_mutex_lock(&a->mu);
    bool closing = a->closing;
    if (!closing) {
        x->next = a->ctxs;
        a->ctxs = x;
    }
    pthread_mutex_unlock(&a->mu);
    if (closing) {
        micro__free(x->rbuf);
        micro__free(x);
        return MICRO_ECLOSED;
    }
    uv_timer_init(x->uv, &x->defer);
    x->defer.data = x;
    x->handles = 1;
    micro__loop_ext_add(loop, &x->ext);
    *out = x;
    return 0;
}

/* ------------------------------------------------------------------------
 * Entry points
 * --------------------------------------------------------------------- */

int
micro__http_async_new(micro__http_async **out,
    const micro__http_pool_cfg *cfg)
{
    *out = NULL;
    micro__http_async *a = micro__calloc(1, sizeof(*a));
    if (a == NULL) {
        return MICRO_ENOMEM;
    }
    a->cfg = *cfg;
    if (pthread_mutex_init(&a->mu, NULL) != 0) {
        micro__free(a);
        return MICRO_ENOMEM;
    }
    *out = a;
    return 0;
}

int
micro__http_async_roundtrip(micro__http_async *a, micro_loop *loop,
    const char *addr, const micro_msg *req, int64_t timeout_ms,
    micro_transport_done_fn cb, void *arg, micro_transport_call **call)
{
    ha_ctx *x = NULL;
    int rc = ctx_get(a, loop, &x);
    if (rc != 0) {
        return rc;
    }
    if (x->closing) {
        return MICRO_ECLOSED;
    }
    size_t alen = strlen(addr);
    micro_transport_call *rt = micro__calloc(1, sizeof(*rt) + alen + 1);
    if (rt == NULL) {
        return MICRO_ENOMEM;
    }
    memcpy(rt->addr, addr, alen + 1);
    rt->addr_len = alen;
    rt->hash = micro__strtab_hash(addr, alen);
    rc = micro__http_write_request(&rt->out, addr, req);
    if (rc != 0) {
        micro_buf_clear(&rt->out);
        micro__free(rt);
        return rc;
    }
    rt->x = x;
    rt->cb = cb;
    rt->arg = arg;
    rt->deadline =
        timeout_ms > 0 ? micro__now_ms() + timeout_ms : HA_NO_DEADLINE;
    rt->next = x->calls;
    if (x->calls != NULL) {
        x->calls->prev = rt;
    }
    x->calls = rt;
    /* Everything below may fail at once; rt_finish then defers the
     * callback to the next loop turn. */
    rt->starting = true;
    ha_conn *c = pool_get(x, rt);
    if (c != NULL) {
        c->rt = rt;
        rt->conn = c;
        rt->reused = true;
        conn_arm(c, rt->deadline);
        rt_send(rt);
    } else {
        rt_dial(rt);
    }
    /* rt may have been finished (deferred, not freed) above. */
    rt->starting = false;
    *call = rt;
    return 0;
}

void
micro__http_async_cancel(micro__http_async *a, micro_transport_call *rt)
{
    (void) a;
    ha_conn *c = rt->conn;
    if (c != NULL) {
        conn_detach(c);
        conn_rsp_end(c, rt->addr, MICRO_ECANCELED);
        conn_close(c);
    }
    rt_complete(rt, MICRO_ECANCELED, NULL);
}

int
micro__http_async_shutdown(micro__http_async *a)
{
    pthread_mutex_lock(&a->mu);
    a->closing = true;
    for (ha_ctx *x = a->ctxs; x != NULL; x = x->next) {
        if (!x->close_posted) {
            x->close_posted = true;
            /* A loop that refuses the task is closing: its on_close hook
             * closes the context instead. */
            (void) micro__loop_post_task(x->loop, &x->close_task);
        }
    }
    int done = a->ctxs == NULL;
    pthread_mutex_unlock(&a->mu);
    return done;
}

void
micro__http_async_free(micro__http_async *a)
{
    if (a == NULL) {
        return;
    }
    MICRO_ASSERT(a->ctxs == NULL);
    pthread_mutex_destroy(&a->mu);
    micro__free(a);
}
