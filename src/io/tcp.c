/*
 * Byte stream "tcp": libuv TCP handles behind micro__bs_ops, a listener,
 * and dialling as an aio operation (resolution on libuv's thread pool,
 * non-blocking connect, every address in turn, bounded by the aio's
 * deadline and cancellable at any point).
 *
 * Reads go into one 64 KiB buffer per loop (a reader keeps what it needs
 * before on_read returns), so an idle connection costs its handle only.
 * A write is tried at once (uv_try_write: most fit the socket buffer, with
 * no request object and no poll-set change); what does not fit is queued
 * with uv_write and counted in unsent until written.
 */
#include "io/stream.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <uv.h>

#define TCP_READ_BUF (64 * 1024)
#define TCP_COMPONENT "io.tcp"

typedef struct tcp_stream tcp_stream;

/* Per loop: the read buffer, and every handle of this file on the loop,
 * so that the loop's close can close them with their own callbacks. The
 * context lives until the last of them is freed. */
typedef struct tcp_ctx {
    micro__loop_ext ext; /* key: &tcp_ctx_key */
    char *rbuf;
    bool rbuf_busy;
    size_t closing;  /* handles closing */
    size_t live;     /* handles not yet freed */
    bool dead;       /* the loop is closing */
    tcp_stream *streams; /* open (not closing) streams */
    struct micro__tcp_listener *listeners;
} tcp_ctx;

static const char tcp_ctx_key = 0;

static void tcp_close_stream(tcp_stream *s);
static void listener_close(struct micro__tcp_listener *l);

static void
ctx_release(tcp_ctx *c)
{
    if (c->dead && c->live == 0) {
        micro__free(c->rbuf);
        micro__free(c);
    }
}

static void
ctx_on_loop_close(micro__loop_ext *x)
{
    tcp_ctx *c = (tcp_ctx *) x;
    c->dead = true;
    /* What the components left open closes now, with its own callbacks
     * (the loop's last resort, uv_walk, would close them without). */
    while (c->listeners != NULL) {
        listener_close(c->listeners);
    }
    while (c->streams != NULL) {
        tcp_close_stream(c->streams);
    }
    ctx_release(c);
}

static tcp_ctx *
ctx_get(micro_loop *loop)
{
    tcp_ctx *c = (tcp_ctx *) micro__loop_ext_find(loop, &tcp_ctx_key);
    if (c != NULL) {
        return c;
    }
    c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->ext.key = &tcp_ctx_key;
    c->ext.on_close = ctx_on_loop_close;
    micro__loop_ext_add(loop, &c->ext);
    return c;
}

size_t
micro__tcp_closing(micro_loop *loop)
{
    tcp_ctx *c = (tcp_ctx *) micro__loop_ext_find(loop, &tcp_ctx_key);
    return c != NULL ? c->closing : 0;
}

/* ------------------------------------------------------------------ */
/* Addresses.                                                           */

int
micro__addr_parse(const char *addr, char *host, size_t hcap, int *port,
    struct sockaddr_storage *ss)
{
    const char *hs;
    size_t hl;
    const char *colon;
    if (addr == NULL) {
        return MICRO_EINVAL;
    }
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (rb == NULL || rb[1] != ':') {
            return MICRO_EINVAL;
        }
        hs = addr + 1;
        hl = (size_t) (rb - hs);
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL) {
            return MICRO_EINVAL;
        }
        hs = addr;
        hl = (size_t) (colon - addr);
        if (memchr(hs, ':', hl) != NULL) {
            return MICRO_EINVAL; /* a bare IPv6 address needs brackets */
        }
    }
    const char *ps = colon + 1;
    size_t pl = strlen(ps);
    if (hl >= hcap || pl == 0 || pl > 5) {
        return MICRO_EINVAL;
    }
    long pn = 0;
    for (size_t i = 0; i < pl; i++) {
        if (ps[i] < '0' || ps[i] > '9') {
            return MICRO_EINVAL;
        }
        pn = pn * 10 + (ps[i] - '0');
    }
    if (pn > 65535) {
        return MICRO_EINVAL;
    }
    memcpy(host, hs, hl);
    host[hl] = '\0';
    *port = (int) pn;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *) ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) ss;
    if (hl == 0) {
        /* ":port" dials the local system, as in Go. */
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t) pn);
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return 1;
    }
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t) pn);
        return 1;
    }
    if (strchr(host, '%') == NULL &&
        inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t) pn);
        return 1;
    }
    return 0;
}

void
micro__addr_format(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *) ss;
        uv_ip6_name(a, ip, sizeof(ip));
        snprintf(out, cap, "[%s]:%d", ip, ntohs(a->sin6_port));
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *) ss;
        uv_ip4_name(a, ip, sizeof(ip));
        snprintf(out, cap, "%s:%d", ip, ntohs(a->sin_port));
    } else if (cap > 0) {
        out[0] = '\0';
    }
}

/* ------------------------------------------------------------------ */
/* The stream.                                                          */

struct tcp_stream {
    micro__bs bs; /* first */
    uv_tcp_t tcp;
    tcp_ctx *ctx;
    tcp_stream *prev, *next; /* ctx->streams while open */
    bool reading;
    bool closing;
    bool shut; /* shutdown requested */
    bool failed;
    int writes; /* uv_write requests outstanding */
};

typedef struct tcp_write {
    uv_write_t req;
    tcp_stream *s;
    micro_buf buf;
    size_t len; /* bytes handed to uv_write */
} tcp_write;

static void
on_tcp_closed(uv_handle_t *h)
{
    tcp_stream *s = h->data;
    tcp_ctx *ctx = s->ctx;
    ctx->closing--;
    ctx->live--;
    micro__free(s);
    ctx_release(ctx);
}

static void
tcp_close_stream(tcp_stream *s)
{
    if (s->closing) {
        return;
    }
    s->closing = true;
    s->bs.cbs = NULL;
    tcp_ctx *ctx = s->ctx;
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else if (ctx->streams == s) {
        ctx->streams = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    s->prev = s->next = NULL;
    ctx->closing++;
    uv_close((uv_handle_t *) &s->tcp, on_tcp_closed);
}

static void
tcp_close(micro__bs *b)
{
    tcp_close_stream((tcp_stream *) b);
}

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    tcp_stream *s = h->data;
    (void) hint;
    tcp_ctx *ctx = s->ctx;
    if (ctx->rbuf == NULL) {
        ctx->rbuf = micro__malloc(TCP_READ_BUF);
    }
    if (ctx->rbuf != NULL && !ctx->rbuf_busy) {
        ctx->rbuf_busy = true;
        *buf = uv_buf_init(ctx->rbuf, TCP_READ_BUF);
    } else {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
    }
}

static int
map_uv(int rc)
{
    /* libuv's codes are -errno on Unix, as ours are. */
    return rc;
}

static void
on_tcp_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    tcp_stream *s = st->data;
    if (buf->base == s->ctx->rbuf) {
        s->ctx->rbuf_busy = false;
    }
    if (nread == 0 || s->closing || s->bs.cbs == NULL) {
        return;
    }
    if (nread < 0) {
        uv_read_stop(st);
        s->reading = false;
        int rc = nread == UV_EOF ? 0 : map_uv((int) nread);
        if (nread == UV_ENOBUFS) {
            rc = MICRO_ENOMEM;
        }
        s->bs.cbs->on_eof(s->bs.arg, &s->bs, rc);
        return;
    }
    s->bs.cbs->on_read(s->bs.arg, &s->bs, buf->base, (size_t) nread);
}

static void
tcp_read_start(micro__bs *b)
{
    tcp_stream *s = (tcp_stream *) b;
    if (s->reading || s->closing) {
        return;
    }
    if (uv_read_start((uv_stream_t *) &s->tcp, on_alloc, on_tcp_read) == 0) {
        s->reading = true;
    }
}

static void
tcp_read_stop(micro__bs *b)
{
    tcp_stream *s = (tcp_stream *) b;
    if (s->reading) {
        uv_read_stop((uv_stream_t *) &s->tcp);
        s->reading = false;
    }
}

static void
on_shutdown(uv_shutdown_t *req, int status)
{
    (void) status;
    micro__free(req);
}

static void
do_shutdown(tcp_stream *s)
{
    uv_shutdown_t *req = micro__malloc(sizeof(*req));
    if (req == NULL) {
        return; /* the close that follows ends the connection anyway */
    }
    if (uv_shutdown(req, (uv_stream_t *) &s->tcp, on_shutdown) != 0) {
        micro__free(req);
    }
}

static void
on_written(uv_write_t *req, int status)
{
    tcp_write *w = (tcp_write *) req;
    tcp_stream *s = w->s;
    s->writes--;
    s->bs.unsent -= w->len;
    micro_buf_clear(&w->buf);
    micro__free(w);
    if (s->closing || s->bs.cbs == NULL) {
        return;
    }
    if (status < 0) {
        if (!s->failed) {
            s->failed = true;
            if (s->bs.cbs->on_error != NULL) {
                s->bs.cbs->on_error(s->bs.arg, &s->bs, map_uv(status));
            }
        }
        return;
    }
    if (s->bs.unsent == 0 && s->bs.cbs->on_drain != NULL) {
        s->bs.cbs->on_drain(s->bs.arg, &s->bs);
    }
}

static int
tcp_write_buf(micro__bs *b, micro_buf *buf)
{
    tcp_stream *s = (tcp_stream *) b;
    micro_buf data = *buf;
    memset(buf, 0, sizeof(*buf));
    if (s->closing || s->failed || s->shut) {
        micro_buf_clear(&data);
        return s->failed ? MICRO_EPIPE : MICRO_ECLOSED;
    }
    if (data.len == 0) {
        micro_buf_clear(&data);
        return 0;
    }
    size_t done = 0;
    if (s->writes == 0) {
        uv_buf_t ub = uv_buf_init((char *) data.data, (unsigned) data.len);
        int n = uv_try_write((uv_stream_t *) &s->tcp, &ub, 1);
        if (n == (int) data.len) {
            micro_buf_clear(&data);
            return 0;
        }
        if (n < 0 && n != UV_EAGAIN) {
            micro_buf_clear(&data);
            s->failed = true;
            return map_uv(n);
        }
        done = n > 0 ? (size_t) n : 0;
    }
    tcp_write *w = micro__malloc(sizeof(*w));
    if (w == NULL) {
        micro_buf_clear(&data);
        s->failed = true;
        return MICRO_ENOMEM;
    }
    w->s = s;
    w->buf = data;
    w->len = data.len - done;
    uv_buf_t ub = uv_buf_init((char *) data.data + done, (unsigned) w->len);
    int rc = uv_write(&w->req, (uv_stream_t *) &s->tcp, &ub, 1, on_written);
    if (rc != 0) {
        micro_buf_clear(&w->buf);
        micro__free(w);
        s->failed = true;
        return map_uv(rc);
    }
    s->writes++;
    s->bs.unsent += w->len;
    return 0;
}

static void
tcp_shutdown(micro__bs *b)
{
    tcp_stream *s = (tcp_stream *) b;
    if (s->shut || s->closing) {
        return;
    }
    s->shut = true;
    do_shutdown(s); /* libuv runs it after the queued writes */
}

static const micro__bs_ops tcp_ops = {
    .name = "tcp",
    .read_start = tcp_read_start,
    .read_stop = tcp_read_stop,
    .write = tcp_write_buf,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
};

static tcp_stream *
stream_new(micro_loop *loop, tcp_ctx *ctx)
{
    tcp_stream *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->bs.ops = &tcp_ops;
    s->bs.loop = loop;
    s->ctx = ctx;
    uv_tcp_init(micro_loop_uv(loop), &s->tcp);
    s->tcp.data = s;
    ctx->live++;
    s->next = ctx->streams;
    if (ctx->streams != NULL) {
        ctx->streams->prev = s;
    }
    ctx->streams = s;
    return s;
}

static void
stream_names(tcp_stream *s)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *) &ss, &len) == 0) {
        micro__addr_format(&ss, s->bs.remote, sizeof(s->bs.remote));
    }
    len = sizeof(ss);
    if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *) &ss, &len) == 0) {
        micro__addr_format(&ss, s->bs.local, sizeof(s->bs.local));
    }
}

/* ------------------------------------------------------------------ */
/* Listening.                                                           */

struct micro__tcp_listener {
    uv_tcp_t tcp;
    /* Takes a connection off the queue when there is no memory for it:
     * libuv stops listening until a pending connection is accepted, so
     * one that is not would stall the listener for good. Accepting and
     * closing it here allocates nothing. */
    uv_tcp_t drop;
    bool drop_busy;    /* drop is closing */
    bool drop_pending; /* a connection waits in libuv for drop */
    bool tcp_closed;   /* tcp's close callback has run */
    micro_loop *loop;
    tcp_ctx *ctx;
    struct micro__tcp_listener *prev, *next; /* ctx->listeners */
    micro__tcp_accept_fn fn;
    void *arg;
    char address[80];
};

static void on_connection(uv_stream_t *server, int status);
static void listener_free(micro__tcp_listener *l);

static void
on_drop_closed(uv_handle_t *h)
{
    micro__tcp_listener *l = h->data;
    l->drop_busy = false;
    if (l->tcp_closed) {
        listener_free(l);
        return;
    }
    if (l->drop_pending && !uv_is_closing((uv_handle_t *) &l->tcp)) {
        /* Another came while drop was busy: take it now (memory may be
         * back), which also makes libuv listen again. */
        l->drop_pending = false;
        on_connection((uv_stream_t *) &l->tcp, 0);
    }
}

/* Out of memory for a new connection: take it off the queue and close
 * it, without allocating. */
static void
drop_connection(micro__tcp_listener *l)
{
    if (l->drop_busy) {
        l->drop_pending = true; /* on_drop_closed takes it */
        return;
    }
    uv_tcp_init(micro_loop_uv(l->loop), &l->drop);
    l->drop.data = l;
    l->drop_busy = true;
    if (uv_accept((uv_stream_t *) &l->tcp, (uv_stream_t *) &l->drop) == 0) {
        MICRO_LOGF(MICRO_LOG_ERR, TCP_COMPONENT,
            "%s: out of memory; connection dropped", l->address);
    }
    uv_close((uv_handle_t *) &l->drop, on_drop_closed);
}

static void
on_connection(uv_stream_t *server, int status)
{
    micro__tcp_listener *l = server->data;
    if (status != 0) {
        MICRO_LOGF(MICRO_LOG_WARN, TCP_COMPONENT, "accept on %s: %s",
            l->address, uv_strerror(status));
        return;
    }
    tcp_stream *s = stream_new(l->loop, l->ctx);
    if (s == NULL) {
        drop_connection(l);
        return;
    }
    if (uv_accept(server, (uv_stream_t *) &s->tcp) != 0) {
        tcp_close_stream(s);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    stream_names(s);
    l->fn(l->arg, &s->bs);
}

int
micro__tcp_listen(micro_loop *loop, const char *addr, micro__tcp_accept_fn fn,
    void *arg, micro__tcp_listener **out)
{
    *out = NULL;
    char host[64];
    int port = 0;
    struct sockaddr_storage ss;
    int rc = micro__addr_parse(addr, host, sizeof(host), &port, &ss);
    if (rc < 0) {
        MICRO_LOGF(MICRO_LOG_ERR, TCP_COMPONENT, "bad listen address %s",
            addr);
        return rc;
    }
    if (host[0] == '\0') {
        /* ":port" listens on every interface, as in Go. */
        uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *) &ss);
    } else if (rc == 0) {
        MICRO_LOGF(MICRO_LOG_ERR, TCP_COMPONENT,
            "listen address %s: the host must be an IP address", addr);
        return MICRO_EINVAL;
    }
    tcp_ctx *ctx = ctx_get(loop);
    micro__tcp_listener *l = ctx ? micro__calloc(1, sizeof(*l)) : NULL;
    if (l == NULL) {
        return MICRO_ENOMEM;
    }
    l->loop = loop;
    l->ctx = ctx;
    l->fn = fn;
    l->arg = arg;
    uv_tcp_init(micro_loop_uv(loop), &l->tcp);
    l->tcp.data = l;
    ctx->live++;
    l->next = ctx->listeners;
    if (ctx->listeners != NULL) {
        ctx->listeners->prev = l;
    }
    ctx->listeners = l;
    rc = uv_tcp_bind(&l->tcp, (struct sockaddr *) &ss, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *) &l->tcp, 1024, on_connection);
    }
    if (rc != 0) {
        MICRO_LOGF(MICRO_LOG_ERR, TCP_COMPONENT, "listen %s: %s", addr,
            uv_strerror(rc));
        micro__tcp_listener_close(l);
        return map_uv(rc);
    }
    int len = sizeof(ss);
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *) &ss, &len);
    micro__addr_format(&ss, l->address, sizeof(l->address));
    *out = l;
    return 0;
}

const char *
micro__tcp_listener_address(const micro__tcp_listener *l)
{
    return l->address;
}

static void
listener_free(micro__tcp_listener *l)
{
    tcp_ctx *ctx = l->ctx;
    ctx->closing--;
    ctx->live--;
    micro__free(l);
    ctx_release(ctx);
}

static void
on_listener_closed(uv_handle_t *h)
{
    micro__tcp_listener *l = h->data;
    l->tcp_closed = true;
    if (!l->drop_busy) {
        listener_free(l); /* else when drop has closed */
    }
}

static void
listener_close(micro__tcp_listener *l)
{
    tcp_ctx *ctx = l->ctx;
    if (l->prev != NULL) {
        l->prev->next = l->next;
    } else if (ctx->listeners == l) {
        ctx->listeners = l->next;
    }
    if (l->next != NULL) {
        l->next->prev = l->prev;
    }
    l->prev = l->next = NULL;
    ctx->closing++;
    uv_close((uv_handle_t *) &l->tcp, on_listener_closed);
}

void
micro__tcp_listener_close(micro__tcp_listener *l)
{
    if (l != NULL) {
        listener_close(l);
    }
}

/* ------------------------------------------------------------------ */
/* Dialling.                                                            */

typedef struct dial_op {
    micro__aio *a;      /* NULL once finished (callbacks still pending) */
    micro_loop *loop;
    tcp_ctx *ctx;
    uv_getaddrinfo_t gai;
    uv_connect_t creq;
    tcp_stream *s;      /* the attempt in progress */
    struct addrinfo *res;
    struct addrinfo *next; /* the next address to try */
    struct sockaddr_storage lit;
    int last_rc;
    int busy;           /* libuv requests outstanding */
    char host[256];
    char port[8];
} dial_op;

static void dial_next(dial_op *d);

static void
dial_release(dial_op *d)
{
    if (d->a == NULL && d->busy == 0) {
        if (d->res != NULL) {
            uv_freeaddrinfo(d->res);
        }
        micro__free(d);
    }
}

static void
dial_finish(dial_op *d, int rc)
{
    micro__aio *a = d->a;
    if (a == NULL) {
        return;
    }
    d->a = NULL;
    micro__bs *out = NULL;
    if (rc == 0) {
        out = &d->s->bs;
        d->s = NULL;
    } else if (d->s != NULL) {
        tcp_close(&d->s->bs);
        d->s = NULL;
    }
    micro__aio_finish(a, rc, out);
}

static void
dial_cancel(micro__aio *a, int rc)
{
    dial_op *d = a->prov;
    if (d->busy > 0 && d->s == NULL) {
        /* Resolving: the pool thread may already run it; the callback
         * then sees d->a NULL and only releases d. */
        uv_cancel((uv_req_t *) &d->gai);
    }
    dial_finish(d, rc);
    dial_release(d);
}

static void
on_connect(uv_connect_t *req, int status)
{
    dial_op *d = req->data;
    d->busy--;
    if (d->a == NULL) {
        dial_release(d);
        return;
    }
    if (status == 0) {
        uv_tcp_nodelay(&d->s->tcp, 1);
        stream_names(d->s);
        dial_finish(d, 0);
        dial_release(d);
        return;
    }
    d->last_rc = map_uv(status);
    tcp_close(&d->s->bs);
    d->s = NULL;
    dial_next(d);
}

static int
dial_addr(dial_op *d, const struct sockaddr *sa)
{
    d->s = stream_new(d->loop, d->ctx);
    if (d->s == NULL) {
        return MICRO_ENOMEM;
    }
    d->creq.data = d;
    int rc = uv_tcp_connect(&d->creq, &d->s->tcp, sa, on_connect);
    if (rc != 0) {
        tcp_close(&d->s->bs);
        d->s = NULL;
        return map_uv(rc);
    }
    d->busy++;
    return 0;
}

/* Try the next resolved address, or finish with the last error. */
static void
dial_next(dial_op *d)
{
    while (d->next != NULL) {
        struct addrinfo *ai = d->next;
        d->next = ai->ai_next;
        int rc = dial_addr(d, ai->ai_addr);
        if (rc == 0) {
            return;
        }
        d->last_rc = rc;
    }
    dial_finish(d, d->last_rc != 0 ? d->last_rc : MICRO_ECONNREFUSED);
    dial_release(d);
}

static void
on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    dial_op *d = req->data;
    d->busy--;
    d->res = res;
    if (d->a == NULL) {
        dial_release(d);
        return;
    }
    if (status != 0 || res == NULL) {
        MICRO_LOGF(MICRO_LOG_DEBUG, TCP_COMPONENT, "resolve %s: %s", d->host,
            uv_strerror(status));
        dial_finish(d, status == UV_ENOMEM ? MICRO_ENOMEM : MICRO_EINVAL);
        dial_release(d);
        return;
    }
    d->next = res;
    d->last_rc = MICRO_ECONNREFUSED;
    dial_next(d);
}

void
micro__tcp_dial_start(micro__aio *a, void *op)
{
    const micro__tcp_dial *dial = op;
    char host[256];
    int port = 0;
    struct sockaddr_storage ss;
    int rc = micro__addr_parse(dial->addr, host, sizeof(host), &port, &ss);
    if (rc < 0) {
        micro__aio_finish(a, rc, NULL);
        return;
    }
    tcp_ctx *ctx = ctx_get(a->loop);
    dial_op *d = ctx ? micro__calloc(1, sizeof(*d)) : NULL;
    if (d == NULL) {
        micro__aio_finish(a, MICRO_ENOMEM, NULL);
        return;
    }
    d->a = a;
    d->loop = a->loop;
    d->ctx = ctx;
    micro__aio_schedule(a, dial_cancel, d);
    if (!micro__aio_pending(a)) {
        /* The deadline could not be armed: dial_cancel has finished a and
         * freed d (so d must not be read here). */
        return;
    }
    if (rc == 1) {
        d->lit = ss;
        rc = dial_addr(d, (const struct sockaddr *) &d->lit);
        if (rc != 0) {
            dial_finish(d, rc);
            dial_release(d);
        }
        return;
    }
    snprintf(d->host, sizeof(d->host), "%s", host);
    snprintf(d->port, sizeof(d->port), "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    d->gai.data = d;
    rc = uv_getaddrinfo(micro_loop_uv(a->loop), &d->gai, on_resolved, d->host,
        d->port, &hints);
    if (rc != 0) {
        dial_finish(d, map_uv(rc));
        dial_release(d);
        return;
    }
    d->busy++;
}
