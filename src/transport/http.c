/*
 * Transport "http": Go Micro's HTTP/1.1 framing. This file is the server
 * side, on the libuv loop; the blocking client side is http_client.c, the
 * loop-native one http_async.c.
 *
 * One connection carries one exchange at a time, as Go Micro peers expect
 * (they never pipeline). Should a peer pipeline anyway, the parsed requests
 * wait in a short per-connection queue and are answered in order.
 *
 * Memory per idle connection is the conn struct only: reads go into one
 * buffer per transport (the parser copies what it keeps), and header/body
 * storage exists only while a request is being parsed.
 */
#include "transport/http_internal.h"
#include "core/loop_internal.h"
#include "core/msg_internal.h"

#include <http_parser.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#define READ_BUF_SIZE (64 * 1024)
#define MAX_QUEUED 8

typedef struct http_state http_state;
typedef struct conn conn;

struct micro_exchange {
    micro__task task; /* posts the reply to the loop */
    conn *c;
    bool close_after; /* close once the reply is written */
    micro_buf out;    /* serialised response */
    micro_exchange *next;
};

struct conn {
    uv_tcp_t tcp;
    http_state *t;
    http_parser parser;
    conn *prev, *next;      /* all connections of the transport */
    micro_msg *cur;         /* request being parsed */
    micro_buf field;        /* header name being parsed */
    micro_buf value;        /* header value being parsed */
    bool in_value;
    size_t header_bytes;
    micro_msg *queue[MAX_QUEUED]; /* parsed, waiting their turn */
    bool queue_close[MAX_QUEUED];
    int qhead, qlen;
    bool busy;              /* an exchange is out */
    bool close_after;       /* answer, then close */
    bool closing;
    bool reading;
    int refs;               /* the connection itself + outstanding exchange */
    int64_t started_ms;     /* first byte of the current request (or accept) */
    bool waiting;           /* a request is partially read (or none yet) */
    bool oversized;         /* a callback refused the body as too large */
    char remote[64];
};

struct http_state {
    micro_loop *loop;
    uv_loop_t *uv;
    uv_tcp_t listener;
    uv_timer_t timer;
    bool listening;
    bool timer_on;
    int open_handles; /* listener + timer not yet closed */
    micro_transport_recv_fn fn;
    void *fn_arg;
    char address[80];
    size_t max_message;
    size_t max_header;
    int64_t read_timeout_ms;
    conn *conns;
    atomic_size_t inflight;
    _Atomic uint64_t accepted, requests, bad, oversized, timeouts, dropped;
    char *rbuf;
    bool rbuf_busy;
    micro__http_pool *pool;
    micro__http_async *async;
    http_parser_settings settings;
};

/* ------------------------------------------------------------------ */
/* Serialising a response.                                              */

static int
append_header(micro_buf *out, const char *k, size_t kl, const char *v,
    size_t vl)
{
    char key[256];
    const char *kp = k;
    if (kl < sizeof(key)) {
        int n = micro_canonical_header_key(k, key, sizeof(key));
        if (n >= 0) {
            kp = key;
            kl = (size_t) n;
        }
    }
    int rc = micro_buf_reserve(out, kl + vl + 4);
    if (rc != 0) {
        return rc;
    }
    memcpy(out->data + out->len, kp, kl);
    out->len += kl;
    out->data[out->len++] = ':';
    out->data[out->len++] = ' ';
    memcpy(out->data + out->len, v, vl);
    out->len += vl;
    out->data[out->len++] = '\r';
    out->data[out->len++] = '\n';
    return 0;
}

/* The length test first: this runs for every header of every reply. */
static bool
skip_header(const struct micro_hdr *h)
{
    switch (h->klen) {
    case 7:
        return strcasecmp(h->key, "Trailer") == 0;
    case 10:
        return strcasecmp(h->key, "Connection") == 0;
    case 14:
        return strcasecmp(h->key, "Content-Length") == 0;
    case 17:
        return strcasecmp(h->key, "Transfer-Encoding") == 0;
    default:
        return false;
    }
}

/* Decimal digits of v at the end of buf[0..cap); returns the start. */
static char *
fmt_size(char *buf, size_t cap, size_t v)
{
    char *p = buf + cap;
    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return p;
}

int
micro__http_write_response(micro_buf *out, const micro_msg *rsp)
{
    static const char status[] = "HTTP/1.1 200 OK\r\nContent-Length: ";
    size_t blen = rsp->body.len;
    char num[24];
    char *d = fmt_size(num, sizeof(num), blen);
    size_t dl = (size_t) (num + sizeof(num) - d);
    int rc = micro_buf_reserve(out, sizeof(status) + dl + 2 + blen + 256);
    if (rc != 0) {
        return rc;
    }
    micro_buf_append(out, status, sizeof(status) - 1);
    micro_buf_append(out, d, dl);
    micro_buf_append(out, "\r\n", 2);
    for (size_t i = 0; i < rsp->n; i++) {
        const struct micro_hdr *h = &rsp->hdrs[i];
        if (skip_header(h)) {
            continue;
        }
        rc = append_header(out, h->key, h->klen, h->value, h->vlen);
        if (rc != 0) {
            return rc;
        }
    }
    rc = micro_buf_append(out, "\r\n", 2);
    if (rc == 0 && blen > 0) {
        rc = micro_buf_append(out, rsp->body.data, blen);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Connections.                                                         */

static void conn_close(conn *c);
static void conn_pump(conn *c);

static void
conn_unref(conn *c)
{
    if (--c->refs > 0) {
        return;
    }
    micro_msg_free(c->cur);
    for (int i = 0; i < c->qlen; i++) {
        micro_msg_free(c->queue[(c->qhead + i) % MAX_QUEUED]);
    }
    micro_buf_clear(&c->field);
    micro_buf_clear(&c->value);
    micro__free(c);
}

static void
on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    http_state *t = c->t;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (t->conns == c) {
        t->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    conn_unref(c);
}

static void
conn_close(conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    uv_close((uv_handle_t *) &c->tcp, on_conn_closed);
}

typedef struct raw_write {
    uv_write_t req;
    conn *c;
    bool close_after;
    micro_buf buf;
    uv_buf_t ub;
} raw_write;

static void
on_raw_written(uv_write_t *req, int status)
{
    raw_write *w = (raw_write *) req;
    (void) status;
    if (w->close_after) {
        conn_close(w->c);
    }
    conn_unref(w->c);
    micro_buf_clear(&w->buf);
    micro__free(w);
}

/* Write bytes owned by out (taken), optionally closing afterwards. */
static void
conn_write(conn *c, micro_buf *out, bool close_after)
{
    if (c->closing) {
        micro_buf_clear(out);
        return;
    }
    raw_write *w = micro__malloc(sizeof(*w));
    if (w == NULL) {
        micro_buf_clear(out);
        conn_close(c);
        return;
    }
    w->c = c;
    w->close_after = close_after;
    w->buf = *out;
    memset(out, 0, sizeof(*out));
    w->ub = uv_buf_init((char *) w->buf.data, (unsigned) w->buf.len);
    c->refs++;
    int rc = uv_write(&w->req, (uv_stream_t *) &c->tcp, &w->ub, 1,
        on_raw_written);
    if (rc != 0) {
        c->refs--;
        micro_buf_clear(&w->buf);
        micro__free(w);
        conn_close(c);
    }
}

/* Reject what cannot be parsed as Go's net/http does: the status line
 * "HTTP/1.1 <status> <reason>", the body "<status> <reason>", then close. */
static void
conn_reject(conn *c, int status, const char *reason)
{
    micro_buf out = {0};
    char text[128];
    char head[256];
    snprintf(text, sizeof(text), "%d %s", status, reason);
    int n = snprintf(head, sizeof(head),
        "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
        text, strlen(text), text);
    if (micro_buf_append(&out, head, (size_t) n) == 0) {
        conn_write(c, &out, true);
    } else {
        conn_close(c);
    }
}

/* Answer with a Go Micro error (HTTP 200 + Micro-Error), then close. */
static void
conn_micro_error(conn *c, int32_t code, const char *detail)
{
    micro_error *e = micro_error_new("go.micro.transport", code, detail);
    char *json = e ? micro_error_to_json(e) : NULL;
    micro_error_free(e);
    micro_msg *m = NULL;
    micro_buf out = {0};
    if (json != NULL && micro_msg_new(&m) == 0 &&
        micro_msg_set_header(m, "Micro-Error", json) == 0 &&
        micro_msg_set_header(m, "X-Micro-Error", json) == 0 &&
        micro__http_write_response(&out, m) == 0) {
        conn_write(c, &out, true);
    } else {
        micro_buf_clear(&out);
        conn_close(c);
    }
    micro_msg_free(m);
    free(json);
}

static void
dispatch(conn *c, micro_msg *m, bool close_after)
{
    http_state *t = c->t;
    micro_exchange *ex = micro__calloc(1, sizeof(*ex));
    if (ex == NULL) {
        micro_msg_free(m);
        conn_close(c);
        return;
    }
    ex->c = c;
    c->busy = true;
    c->close_after = close_after;
    c->refs++;
    atomic_fetch_add(&t->inflight, 1);
    atomic_fetch_add(&t->requests, 1);
    t->fn(t->fn_arg, ex, m);
}

/* Hand the next queued request to the server, or read more. */
static void
conn_pump(conn *c)
{
    if (c->closing) {
        return;
    }
    if (!c->busy && c->qlen > 0) {
        micro_msg *m = c->queue[c->qhead];
        bool cl = c->queue_close[c->qhead];
        c->qhead = (c->qhead + 1) % MAX_QUEUED;
        c->qlen--;
        dispatch(c, m, cl);
    }
}

/* ------------------------------------------------------------------ */
/* Parsing.                                                             */

static int
flush_header(conn *c)
{
    if (c->field.len == 0) {
        return 0;
    }
    int rc = micro__msg_add_header_n(c->cur, (const char *) c->field.data,
        c->field.len, (const char *) c->value.data, c->value.len);
    c->field.len = 0;
    c->value.len = 0;
    c->in_value = false;
    return rc;
}

static int
on_message_begin(http_parser *p)
{
    conn *c = p->data;
    c->started_ms = micro__now_ms();
    c->waiting = true;
    c->header_bytes = 0;
    if (c->cur == NULL && micro_msg_new(&c->cur) != 0) {
        return -1;
    }
    return 0;
}

static int
check_header_size(conn *c, size_t n)
{
    c->header_bytes += n;
    if (c->header_bytes > c->t->max_header) {
        return -1;
    }
    return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (check_header_size(c, n) != 0) {
        return -1;
    }
    if (c->in_value && flush_header(c) != 0) {
        return -1;
    }
    return micro_buf_append(&c->field, at, n) == 0 ? 0 : -1;
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (check_header_size(c, n) != 0) {
        return -1;
    }
    c->in_value = true;
    return micro_buf_append(&c->value, at, n) == 0 ? 0 : -1;
}

static int
on_headers_complete(http_parser *p)
{
    conn *c = p->data;
    if (flush_header(c) != 0) {
        return -1;
    }
    if ((p->flags & F_CONTENTLENGTH) != 0 &&
        p->content_length > (uint64_t) c->t->max_message) {
        c->oversized = true;
        return -2; /* oversized: answered by the caller */
    }
    if ((p->flags & F_CONTENTLENGTH) != 0 && p->content_length > 0) {
        if (micro_buf_reserve(&c->cur->body, (size_t) p->content_length) !=
            0) {
            return -1;
        }
    }
    return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (c->cur->body.len + n > c->t->max_message) {
        c->oversized = true;
        return -2;
    }
    return micro_buf_append(&c->cur->body, at, n) == 0 ? 0 : -1;
}

static int
on_message_complete(http_parser *p)
{
    conn *c = p->data;
    micro_msg *m = c->cur;
    c->cur = NULL;
    c->waiting = false;
    /* Go Micro hands handlers the peer as metadata "Remote"; a header of
     * that name sent by the peer must not stand in for the real address. */
    while (micro_msg_header(m, "Remote") != NULL) {
        micro_msg_del_header(m, "Remote");
    }
    if (c->remote[0] != '\0' &&
        micro__msg_add_header_n(m, "Remote", 6, c->remote,
            strlen(c->remote)) != 0) {
        micro_msg_free(m);
        return -1;
    }
    if (c->qlen == MAX_QUEUED) {
        micro_msg_free(m);
        return -1; /* a peer pipelining this deep is abusive */
    }
    int slot = (c->qhead + c->qlen) % MAX_QUEUED;
    c->queue[slot] = m;
    c->queue_close[slot] = !http_should_keep_alive(p);
    c->qlen++;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Reading.                                                             */

static void
on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    conn *c = h->data;
    http_state *t = c->t;
    (void) hint;
    /* One loop thread, one read at a time: a shared buffer suffices. */
    if (!t->rbuf_busy) {
        t->rbuf_busy = true;
        *buf = uv_buf_init(t->rbuf, READ_BUF_SIZE);
    } else {
        *buf = uv_buf_init(NULL, 0);
    }
}

static void
on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    http_state *t = c->t;
    if (buf->base == t->rbuf) {
        t->rbuf_busy = false;
    }
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        /* EOF or error: nothing more will arrive. An exchange in flight
         * still gets its answer dropped (counted) when it comes back. */
        conn_close(c);
        return;
    }
    size_t used =
        http_parser_execute(&c->parser, &t->settings, buf->base, (size_t) nread);
    enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    if (err != HPE_OK || c->parser.upgrade) {
        micro_msg_free(c->cur);
        c->cur = NULL;
        uv_read_stop(s);
        c->reading = false;
        if (err == HPE_CB_headers_complete || err == HPE_CB_body) {
            /* Our callbacks return -2 only for an oversized message
             * (and say so in c->oversized); -1 is out of memory. The
             * parser's content_length cannot tell: in a chunked body the
             * callback runs once a chunk is complete, when it is 0. */
            if (c->oversized) {
                atomic_fetch_add(&t->oversized, 1);
                char d[128];
                snprintf(d, sizeof(d),
                    "message too large: exceeds the maximum of %zu bytes",
                    t->max_message);
                MICRO_LOGF(MICRO_LOG_WARN, "transport.http", "%s: %s",
                    c->remote, d);
                conn_micro_error(c, 413, d);
                return;
            }
        }
        if (err == HPE_HEADER_OVERFLOW || err == HPE_CB_header_field ||
            err == HPE_CB_header_value || c->header_bytes > t->max_header) {
            atomic_fetch_add(&t->oversized, 1);
            MICRO_LOGF(MICRO_LOG_WARN, "transport.http",
                "%s: request header too large; closing", c->remote);
            conn_reject(c, 431, "Request Header Fields Too Large");
            return;
        }
        atomic_fetch_add(&t->bad, 1);
        MICRO_LOGF(MICRO_LOG_WARN, "transport.http",
            "%s: malformed request (%s); closing", c->remote,
            c->parser.upgrade ? "upgrade not supported"
                              : http_errno_description(err));
        conn_reject(c, 400, "Bad Request");
        return;
    }
    (void) used;
    if (c->qlen >= MAX_QUEUED / 2 && c->reading) {
        uv_read_stop(s);
        c->reading = false;
    }
    conn_pump(c);
}

static void
start_reading(conn *c)
{
    if (!c->reading && !c->closing) {
        if (uv_read_start((uv_stream_t *) &c->tcp, on_alloc, on_read) == 0) {
            c->reading = true;
        }
    }
}

/* ------------------------------------------------------------------ */
/* Replies.                                                             */

static void
on_reply_written(uv_write_t *req, int status)
{
    micro_exchange *ex = req->data;
    conn *c = ex->c;
    (void) status;
    if (ex->close_after) {
        conn_close(c); /* only now: uv_close would cancel the write */
    }
    micro_buf_clear(&ex->out);
    micro__free(req);
    micro__free(ex);
    conn_unref(c);
}

/* Loop thread: send the serialised reply and move the connection on. */
static void
reply_on_loop(micro__task *task)
{
    micro_exchange *ex = (micro_exchange *) task;
    conn *c = ex->c;
    http_state *t = c->t;
    atomic_fetch_sub(&t->inflight, 1);
    c->busy = false;
    if (c->closing) {
        atomic_fetch_add(&t->dropped, 1);
        MICRO_LOGF(MICRO_LOG_INFO, "transport.http",
            "%s: reply dropped: the peer has gone", c->remote);
        micro_buf_clear(&ex->out);
        micro__free(ex);
        conn_unref(c);
        return;
    }
    ex->close_after = c->close_after;
    /* Most replies fit the socket buffer: write them now, with no request
     * object, no deferred callback and no poll-set change. */
    uv_buf_t b = uv_buf_init((char *) ex->out.data, (unsigned) ex->out.len);
    int n = uv_try_write((uv_stream_t *) &c->tcp, &b, 1);
    if (n == (int) ex->out.len) {
        bool close_after = ex->close_after;
        micro_buf_clear(&ex->out);
        micro__free(ex);
        if (close_after) {
            conn_close(c);
            conn_unref(c);
            return;
        }
        conn_unref(c);
    } else {
        size_t done = n > 0 ? (size_t) n : 0;
        if (n < 0 && n != UV_EAGAIN) {
            micro_buf_clear(&ex->out);
            micro__free(ex);
            conn_close(c);
            conn_unref(c);
            return;
        }
        uv_write_t *w = micro__malloc(sizeof(*w));
        if (w == NULL) {
            micro_buf_clear(&ex->out);
            micro__free(ex);
            conn_close(c);
            conn_unref(c);
            return;
        }
        w->data = ex;
        b = uv_buf_init((char *) ex->out.data + done,
            (unsigned) (ex->out.len - done));
        if (uv_write(w, (uv_stream_t *) &c->tcp, &b, 1, on_reply_written) !=
            0) {
            micro__free(w);
            micro_buf_clear(&ex->out);
            micro__free(ex);
            conn_close(c);
            conn_unref(c);
            return;
        }
        if (ex->close_after) {
            uv_read_stop((uv_stream_t *) &c->tcp);
            c->reading = false;
            return;
        }
    }
    conn_pump(c);
    if (!c->busy && c->qlen < MAX_QUEUED / 2) {
        start_reading(c);
    }
}

static int
http_reply(void *st, micro_exchange *ex, micro_msg **rsp)
{
    http_state *t = st;
    int rc = micro__http_write_response(&ex->out, *rsp);
    if (rc != 0) {
        /* Out of memory: answer with nothing and close the connection,
         * so the peer sees a transport error rather than a hang. */
        micro_buf_clear(&ex->out);
        ex->c->close_after = true;
    }
    micro_msg_free(*rsp);
    *rsp = NULL;
    ex->task.fn = reply_on_loop;
    if (micro_loop_is_current(t->loop)) {
        reply_on_loop(&ex->task);
        return 0;
    }
    if (micro__loop_post_task(t->loop, &ex->task) != 0) {
        /* The loop has shut down: everything is gone already. */
        micro_buf_clear(&ex->out);
        micro__free(ex);
        return MICRO_ECLOSED;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Accepting.                                                           */

static void
on_connection(uv_stream_t *server, int status)
{
    http_state *t = server->data;
    if (status != 0) {
        MICRO_LOGF(MICRO_LOG_WARN, "transport.http", "accept: %s",
            uv_strerror(status));
        return;
    }
    conn *c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    c->t = t;
    c->refs = 1;
    uv_tcp_init(t->uv, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *) &c->tcp) != 0) {
        uv_close((uv_handle_t *) &c->tcp, (uv_close_cb) micro__free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *) &ss, &len) == 0) {
        char ip[INET6_ADDRSTRLEN] = "";
        int port = 0;
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *) &ss;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
            snprintf(c->remote, sizeof(c->remote), "[%s]:%d", ip, port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *) &ss;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
            snprintf(c->remote, sizeof(c->remote), "%s:%d", ip, port);
        }
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->started_ms = micro__now_ms();
    c->waiting = true;
    c->next = t->conns;
    if (t->conns != NULL) {
        t->conns->prev = c;
    }
    t->conns = c;
    atomic_fetch_add(&t->accepted, 1);
    start_reading(c);
}

/* Close connections that started a request (or connected) and did not
 * finish it within the read timeout: a stalled or silent peer must not
 * hold resources for ever. Idle keep-alive connections between requests
 * are left alone, as Go Micro clients reuse them for up to a minute. */
static void
on_timer(uv_timer_t *timer)
{
    http_state *t = timer->data;
    int64_t now = micro__now_ms();
    for (conn *c = t->conns; c != NULL; c = c->next) {
        if (c->waiting && !c->busy && !c->closing &&
            now - c->started_ms > t->read_timeout_ms) {
            atomic_fetch_add(&t->timeouts, 1);
            MICRO_LOGF(MICRO_LOG_INFO, "transport.http",
                "%s: no complete request within %lld ms; closing", c->remote,
                (long long) t->read_timeout_ms);
            conn_close(c);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Ops.                                                                 */

/* http_parser has one process-wide header limit (80 KiB as built by
 * Debian). Raise it to the largest limit any transport asked for; each
 * transport still enforces its own (check_header_size on the server, the
 * pool's max_header on the client). */
static void
raise_parser_header_limit(size_t want)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static size_t current = 80 * 1024;
    if (want > UINT32_MAX) {
        want = UINT32_MAX;
    }
    pthread_mutex_lock(&mu);
    if (want > current) {
        current = want;
        http_parser_set_max_header_size((uint32_t) want);
    }
    pthread_mutex_unlock(&mu);
}

static void
set_parser_callbacks(http_parser_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->on_message_begin = on_message_begin;
    s->on_header_field = on_header_field;
    s->on_header_value = on_header_value;
    s->on_headers_complete = on_headers_complete;
    s->on_body = on_body;
    s->on_message_complete = on_message_complete;
}

/* The fuzz target's way in (http_internal.h). A connection that exists
 * only in memory: no socket, no loop, no remote address; it is parsed as
 * on_read parses one read of a fresh connection, and the errors are
 * classified as on_read classifies them, minus the replies. */
int
micro__http_parse_requests(const uint8_t *p, size_t n, size_t max_header,
    size_t max_body, size_t *n_msgs)
{
    *n_msgs = 0;
    http_state *t = micro__calloc(1, sizeof(*t));
    conn *c = micro__calloc(1, sizeof(*c));
    if (t == NULL || c == NULL) {
        micro__free(t);
        micro__free(c);
        return MICRO_ENOMEM;
    }
    t->max_message = max_body;
    t->max_header = max_header;
    raise_parser_header_limit(max_header);
    set_parser_callbacks(&t->settings);
    c->t = t;
    c->refs = 1;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    http_parser_execute(&c->parser, &t->settings, (const char *) p, n);
    enum http_errno err = HTTP_PARSER_ERRNO(&c->parser);
    int rc = 0;
    if (err != HPE_OK || c->parser.upgrade) {
        rc = MICRO_EPROTO;
        if (c->oversized || err == HPE_HEADER_OVERFLOW ||
            err == HPE_CB_header_field || err == HPE_CB_header_value ||
            c->header_bytes > t->max_header) {
            rc = MICRO_EMSGSIZE;
        }
    }
    *n_msgs = (size_t) c->qlen;
    conn_unref(c); /* frees the request in progress and the queue */
    micro__free(t);
    return rc;
}

static int
http_init(void *st, micro_loop *loop, const micro_options *opts)
{
    http_state *t = st;
    t->loop = loop;
    t->max_message =
        (size_t) micro_options_get_int(opts, "transport_max_message_size");
    t->max_header =
        (size_t) micro_options_get_int(opts, "transport_max_header_size");
    t->read_timeout_ms = micro_options_get_ms(opts, "transport_read_timeout");
    if (t->max_message == 0) {
        t->max_message = 4u << 20;
    }
    if (t->max_header == 0) {
        t->max_header = 1u << 20;
    }
    if (t->read_timeout_ms <= 0) {
        t->read_timeout_ms = 30000;
    }
    raise_parser_header_limit(t->max_header);
    set_parser_callbacks(&t->settings);
    micro__http_pool_cfg cfg = {
        .size = (size_t) micro_options_get_int(opts, "client_pool_size"),
        .ttl_ms = micro_options_get_ms(opts, "client_pool_ttl"),
        .dial_timeout_ms = micro_options_get_ms(opts, "client_dial_timeout"),
        .max_message = t->max_message,
        .max_header = t->max_header,
    };
    int rc = micro__http_pool_new(&t->pool, &cfg);
    if (rc == 0) {
        /* The loop-native client pools under the same limits. */
        rc = micro__http_async_new(&t->async, &cfg);
        if (rc != 0) {
            micro__http_pool_free(t->pool);
            t->pool = NULL;
        }
    }
    return rc;
}

static void
on_handle_closed(uv_handle_t *h)
{
    http_state *t = h->data;
    t->open_handles--;
}

static int
http_listen(void *st, const char *addr, micro_transport_recv_fn fn, void *arg)
{
    http_state *t = st;
    char host[64];
    int port = 0;
    int rc = micro__split_host_port(addr, host, sizeof(host), &port);
    if (rc != 0) {
        MICRO_LOGF(MICRO_LOG_ERR, "transport.http", "bad address %s", addr);
        return rc;
    }
    struct sockaddr_storage ss;
    if (host[0] == '\0') {
        uv_ip4_addr("0.0.0.0", port, (struct sockaddr_in *) &ss);
    } else if (strchr(host, ':') != NULL) {
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *) &ss);
    } else {
        rc = uv_ip4_addr(host, port, (struct sockaddr_in *) &ss);
    }
    if (rc != 0) {
        return MICRO_EINVAL;
    }
    t->uv = micro_loop_uv(t->loop);
    t->rbuf = micro__malloc(READ_BUF_SIZE);
    if (t->rbuf == NULL) {
        return MICRO_ENOMEM;
    }
    uv_tcp_init(t->uv, &t->listener);
    t->listener.data = t;
    t->open_handles++;
    rc = uv_tcp_bind(&t->listener, (struct sockaddr *) &ss, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *) &t->listener, 1024, on_connection);
    }
    if (rc != 0) {
        MICRO_LOGF(MICRO_LOG_ERR, "transport.http", "listen %s: %s", addr,
            uv_strerror(rc));
        uv_close((uv_handle_t *) &t->listener, on_handle_closed);
        return rc;
    }
    int len = sizeof(ss);
    uv_tcp_getsockname(&t->listener, (struct sockaddr *) &ss, &len);
    char ip[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *) &ss, ip, sizeof(ip));
        snprintf(t->address, sizeof(t->address), "[%s]:%d", ip,
            ntohs(((struct sockaddr_in6 *) &ss)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *) &ss, ip, sizeof(ip));
        snprintf(t->address, sizeof(t->address), "%s:%d", ip,
            ntohs(((struct sockaddr_in *) &ss)->sin_port));
    }
    t->fn = fn;
    t->fn_arg = arg;
    t->listening = true;
    uv_timer_init(t->uv, &t->timer);
    t->timer.data = t;
    t->open_handles++;
    int64_t tick = t->read_timeout_ms / 4;
    if (tick < 10) {
        tick = 10;
    }
    if (tick > 1000) {
        tick = 1000;
    }
    uv_timer_start(&t->timer, on_timer, (uint64_t) tick, (uint64_t) tick);
    t->timer_on = true;
    return 0;
}

static const char *
http_listen_address(void *st)
{
    http_state *t = st;
    return t->address[0] ? t->address : NULL;
}

static void
http_stop_listen(void *st)
{
    http_state *t = st;
    if (t->listening) {
        t->listening = false;
        uv_close((uv_handle_t *) &t->listener, on_handle_closed);
    }
    if (t->timer_on) {
        t->timer_on = false;
        uv_close((uv_handle_t *) &t->timer, on_handle_closed);
    }
    /* Idle connections go now; busy ones once their answer is written
     * (close_after), so in-flight requests still complete. */
    for (conn *c = t->conns; c != NULL; c = c->next) {
        if (c->busy) {
            c->close_after = true;
        } else {
            conn_close(c);
        }
    }
}

static int
http_shutdown(void *st)
{
    http_state *t = st;
    http_stop_listen(st);
    for (conn *c = t->conns; c != NULL; c = c->next) {
        conn_close(c);
    }
    /* Contexts of the loop-native client on other loops close on their
     * own threads; this only asks them to. */
    int async_done = micro__http_async_shutdown(t->async);
    return t->conns == NULL && t->open_handles == 0 && async_done ? 1 : 0;
}

static size_t
http_inflight(void *st)
{
    http_state *t = st;
    return atomic_load(&t->inflight);
}

static void
http_stats(void *st, micro_transport_stats *out)
{
    http_state *t = st;
    out->accepted = atomic_load(&t->accepted);
    out->requests = atomic_load(&t->requests);
    out->bad_requests = atomic_load(&t->bad);
    out->oversized = atomic_load(&t->oversized);
    out->timeouts = atomic_load(&t->timeouts);
    out->dropped_replies = atomic_load(&t->dropped);
}

static int
http_roundtrip(void *st, const char *addr, const micro_msg *req,
    int64_t timeout_ms, micro_msg **rsp, int *sent)
{
    http_state *t = st;
    return micro__http_roundtrip(t->pool, addr, req, timeout_ms, rsp, sent);
}

static int
http_roundtrip_async(void *st, micro_loop *loop, const char *addr,
    const micro_msg *req, int64_t timeout_ms, micro_transport_done_fn cb,
    void *arg, micro_transport_call **call)
{
    http_state *t = st;
    return micro__http_async_roundtrip(t->async, loop, addr, req, timeout_ms,
        cb, arg, call);
}

static void
http_cancel(void *st, micro_transport_call *call)
{
    http_state *t = st;
    micro__http_async_cancel(t->async, call);
}

static void
http_fini(void *st)
{
    http_state *t = st;
    micro__http_async_free(t->async);
    micro__http_pool_free(t->pool);
    micro__free(t->rbuf);
}

const micro_transport_ops micro_transport_http_ops = {
    .abi = MICRO_TRANSPORT_ABI,
    .name = "http",
    .state_size = sizeof(http_state),
    .init = http_init,
    .listen = http_listen,
    .listen_address = http_listen_address,
    .reply = http_reply,
    .roundtrip = http_roundtrip,
    .stop_listen = http_stop_listen,
    .inflight = http_inflight,
    .stats = http_stats,
    .shutdown = http_shutdown,
    .fini = http_fini,
    .roundtrip_async = http_roundtrip_async,
    .cancel = http_cancel,
};
