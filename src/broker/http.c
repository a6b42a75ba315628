/*
 * Broker "http": Go Micro v4's default broker (broker/http.go), on the wire.
 *
 * Subscribing. connect() starts a small HTTP/1.1 server on the loop
 * ("broker_address", default 127.0.0.1:0). Every subscription registers
 *   {name:"micro.http.broker", version: queue or "ff.http.broadcast",
 *    nodes:[{id:"<topic>-<uuid>", address:"<ip>:<port>",
 *            metadata:{"secure":"false","broker":"http","topic":T}}]}
 * with TTL 1 min, refreshed every 30 s, removed on unsubscribe. Go uses one
 * uuid per broker; here it is one per subscription, so two subscriptions of
 * one process in the same queue group do not both get a queued message.
 *
 * Receiving. POST /?id=<node id> with the JSON envelope
 * {"Header":{...,"Micro-Topic":T},"Body":"<base64>"} goes to the
 * subscription with that node id: 200 and an empty body. Other methods
 * 405; undecodable envelope or no Micro-Topic 500 (counted); a full
 * subscription queue 503 (counted as a drop), so the publisher knows.
 *
 * Publishing. micro.http.broker is looked up through the registry (cached
 * for 5 s, dropped early on a registry watch event or a failed post). For
 * each version: "ff.http.broadcast" posts to every node with broker=http
 * and topic=T; a queue group posts to one random node of that version
 * (another one if that post fails). Posts are synchronous on the caller's
 * thread over kept-alive connections. No subscriber anywhere:
 * MICRO_ENOSERVICE.
 */
#include "broker/broker_internal.h"
#include "core/loop_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define BROKER_SERVICE "micro.http.broker"
#define BROADCAST "ff.http.broadcast"
#define REG_TTL_MS 60000
#define REG_INTERVAL_MS 30000
#define CACHE_TTL_MS 5000
#define POST_TIMEOUT_MS 5000
#define MAX_BODY (64u << 20)
#define IDLE_PER_ADDR 8

typedef struct hsub {
    micro_sub *sub;
    char id[300]; /* node id */
    struct hsub *next;
} hsub;

typedef struct idle_conn {
    char addr[96];
    int fd;
    int64_t since;
} idle_conn;

typedef struct hconn hconn;

typedef struct httpb {
    micro_broker *b;
    micro_loop *loop;
    bool own_loop;
    micro_registry *reg;
    char *listen;       /* as configured */
    char address[96];   /* bound "ip:port" */
    char advertise[96]; /* registered "ip:port" */
    uv_tcp_t server;
    bool listening;
    hconn *conns;
    int open_handles; /* loop thread only */
    char *rbuf;       /* the read buffer of every connection (loop thread) */
    pthread_rwlock_t subs_lock;
    hsub *subs;
    /* publisher side */
    pthread_mutex_t cache_mu;
    micro_registry_service *cache;
    size_t n_cache;
    int64_t cache_at;
    atomic_bool cache_dirty;
    uint64_t watch_token;
    bool watching;
    pthread_mutex_t pool_mu;
    idle_conn idle[64];
    size_t n_idle;
    /* re-registration */
    pthread_mutex_t reg_mu;
    pthread_cond_t reg_cv;
    pthread_t reg_thr;
    bool reg_on, reg_stop;
} httpb;

/* ------------------------------------------------------------------ */
/* Server side: one connection.                                         */

struct hconn {
    uv_tcp_t tcp;
    httpb *h;
    http_parser p;
    micro_buf url, body;
    bool too_big;
    bool closing;
    hconn *next, *prev;
};

typedef struct wreq {
    uv_write_t w;
    bool close_after;
    char data[];
} wreq;

static void
on_conn_closed(uv_handle_t *hd)
{
    hconn *c = hd->data;
    c->h->open_handles--;
    micro_buf_clear(&c->url);
    micro_buf_clear(&c->body);
    micro__free(c);
}

static void
conn_close(hconn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    httpb *h = c->h;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        h->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    uv_close((uv_handle_t *) &c->tcp, on_conn_closed);
}

static void
on_written(uv_write_t *w, int status)
{
    wreq *r = (wreq *) w;
    hconn *c = w->data;
    if ((status < 0 || r->close_after) && !c->closing) {
        conn_close(c);
    }
    micro__free(r);
}

static void
respond(hconn *c, int code, const char *detail, bool close_after)
{
    static const char *const reason[] = {"OK", "Method Not Allowed",
        "Internal Server Error", "Service Unavailable", "Bad Request"};
    const char *rs = code == 200 ? reason[0]
        : code == 405          ? reason[1]
        : code == 500          ? reason[2]
        : code == 503          ? reason[3]
                               : reason[4];
    char body[512] = "";
    if (detail != NULL) {
        /* Go's error JSON + "\n", as http.Error writes it. */
        snprintf(body, sizeof(body),
            "{\"id\":\"go.micro.broker\",\"code\":%d,\"detail\":\"%s\","
            "\"status\":\"%s\"}\n",
            code == 405 ? 400 : code, detail, rs);
    }
    size_t bl = strlen(body);
    char head[256];
    int hl = snprintf(head, sizeof(head),
        "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\n%s\r\n", code, rs,
        bl ? "Content-Type: text/plain; charset=utf-8\r\n" : "", bl,
        close_after ? "Connection: close\r\n" : "");
    wreq *r = micro__malloc(sizeof(*r) + (size_t) hl + bl);
    if (r == NULL) {
        conn_close(c);
        return;
    }
    memcpy(r->data, head, (size_t) hl);
    memcpy(r->data + hl, body, bl);
    r->close_after = close_after;
    r->w.data = c;
    uv_buf_t buf = uv_buf_init(r->data, (unsigned) ((size_t) hl + bl));
    if (uv_write(&r->w, (uv_stream_t *) &c->tcp, &buf, 1, on_written) != 0) {
        micro__free(r);
        conn_close(c);
    }
}

/* The "id" query parameter of url, unescaped (Go's url.ParseQuery). */
static bool
query_id(const char *url, size_t n, char *out, size_t cap)
{
    const char *q = memchr(url, '?', n);
    if (q == NULL) {
        return false;
    }
    const char *end = url + n;
    const char *p = q + 1;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t) (end - p));
        const char *e = amp ? amp : end;
        if (e - p >= 3 && memcmp(p, "id=", 3) == 0) {
            size_t o = 0;
            for (const char *s = p + 3; s < e; s++) {
                int ch = (unsigned char) *s;
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%') {
                    if (e - s < 3 || micro__hexval(s[1]) < 0 || micro__hexval(s[2]) < 0) {
                        return false;
                    }
                    ch = micro__hexval(s[1]) * 16 + micro__hexval(s[2]);
                    s += 2;
                }
                if (o + 1 >= cap) {
                    return false;
                }
                out[o++] = (char) ch;
            }
            out[o] = '\0';
            return true;
        }
        p = e + 1;
    }
    return false;
}

/* Loop thread: one complete request. */
static void
handle(hconn *c, bool keep)
{
    httpb *h = c->h;
    if (c->p.method != HTTP_POST) {
        respond(c, 405, "Method not allowed", !keep);
        return;
    }
    if (c->too_big) {
        micro_broker_count_bad(h->b, "body too large");
        respond(c, 500, "Error reading request body: too large", true);
        return;
    }
    micro_msg *m = NULL;
    if (micro_broker_envelope_decode(c->body.data, c->body.len, &m) != 0) {
        micro_broker_count_bad(h->b, "invalid JSON envelope");
        respond(c, 500, "Error parsing request body", !keep);
        return;
    }
    const char *topic = micro_msg_header(m, "Micro-Topic");
    if (topic == NULL || topic[0] == '\0') {
        micro_msg_free(m);
        micro_broker_count_bad(h->b, "no Micro-Topic header");
        respond(c, 500, "Topic not found", !keep);
        return;
    }
    char id[300];
    bool has_id = query_id((const char *) c->url.data, c->url.len, id,
        sizeof(id));
    int rc = 0;
    pthread_rwlock_rdlock(&h->subs_lock);
    for (hsub *s = h->subs; has_id && s != NULL; s = s->next) {
        if (strcmp(s->id, id) != 0 ||
            strcmp(micro_sub_topic(s->sub), topic) != 0) {
            continue;
        }
        rc = micro_broker_deliver(s->sub, &m);
        break;
    }
    pthread_rwlock_unlock(&h->subs_lock);
    micro_msg_free(m);
    if (rc == MICRO_EAGAIN) {
        respond(c, 503, "subscriber queue full", !keep);
    } else {
        respond(c, 200, NULL, !keep);
    }
}

static int
on_url(http_parser *p, const char *at, size_t n)
{
    hconn *c = p->data;
    return micro_buf_append(&c->url, at, n) == 0 ? 0 : -1;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
    hconn *c = p->data;
    if (c->body.len + n > MAX_BODY) {
        c->too_big = true;
        return 0;
    }
    return micro_buf_append(&c->body, at, n) == 0 ? 0 : -1;
}

static int
on_begin(http_parser *p)
{
    hconn *c = p->data;
    c->url.len = 0;
    c->body.len = 0;
    c->too_big = false;
    return 0;
}

static int
on_complete(http_parser *p)
{
    hconn *c = p->data;
    handle(c, http_should_keep_alive(p) != 0);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

/* One loop thread, and each read is parsed before the next: one buffer
 * per broker serves every connection. Allocated on the first read, so a
 * process that never receives an event does not pay for it (a thread-local
 * slab here used to cost every thread of every process 64 KiB). NULL gives
 * libuv UV_ENOBUFS, which closes the connection. */
#define HB_READ_BUF (64 * 1024)

static void
on_alloc(uv_handle_t *hd, size_t sz, uv_buf_t *buf)
{
    hconn *c = hd->data;
    httpb *h = c->h;
    (void) sz;
    if (h->rbuf == NULL) {
        h->rbuf = micro__malloc(HB_READ_BUF);
    }
    *buf = h->rbuf != NULL ? uv_buf_init(h->rbuf, HB_READ_BUF)
                           : uv_buf_init(NULL, 0);
}

static void
on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    hconn *c = st->data;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0 || c->closing) {
        return;
    }
    size_t done = http_parser_execute(&c->p, &settings, buf->base,
        (size_t) n);
    if (c->p.http_errno != HPE_OK || done != (size_t) n) {
        if (!c->closing) {
            micro_broker_count_bad(c->h->b, "malformed HTTP");
            respond(c, 400, "malformed request", true);
        }
    }
}

static void
on_connection(uv_stream_t *server, int status)
{
    httpb *h = server->data;
    if (status < 0) {
        return;
    }
    hconn *c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    c->h = h;
    uv_tcp_init(server->loop, &c->tcp);
    h->open_handles++;
    c->tcp.data = c;
    c->next = h->conns;
    if (h->conns != NULL) {
        h->conns->prev = c;
    }
    h->conns = c;
    if (uv_accept(server, (uv_stream_t *) &c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->p, HTTP_REQUEST);
    c->p.data = c;
    uv_read_start((uv_stream_t *) &c->tcp, on_alloc, on_read);
}

/* ------------------------------------------------------------------ */
/* Addresses.                                                           */

static int
do_listen(void *arg)
{
    httpb *h = arg;
    char host[64];
    int port = 0;
    int rc = micro__split_host_port(h->listen, host, sizeof(host), &port);
    if (rc != 0) {
        micro_log(MICRO_LOG_ERR, "broker.http", "bad broker_address %s",
            h->listen);
        return rc;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    const char *bind_host = host[0] ? host : "0.0.0.0";
    if (uv_ip4_addr(bind_host, port, (struct sockaddr_in *) &ss) != 0 &&
        uv_ip6_addr(bind_host, port, (struct sockaddr_in6 *) &ss) != 0) {
        return MICRO_EINVAL;
    }
    uv_loop_t *uv = micro_loop_uv(h->loop);
    uv_tcp_init(uv, &h->server);
    h->open_handles++;
    h->server.data = h;
    int r = uv_tcp_bind(&h->server, (struct sockaddr *) &ss, 0);
    if (r == 0) {
        r = uv_listen((uv_stream_t *) &h->server, 256, on_connection);
    }
    if (r != 0) {
        h->listening = true; /* so that the close path runs */
        return r == UV_EADDRINUSE ? MICRO_EADDRINUSE : MICRO_EIO;
    }
    h->listening = true;
    struct sockaddr_storage bound;
    int bl = sizeof(bound);
    uv_tcp_getsockname(&h->server, (struct sockaddr *) &bound, &bl);
    char ip[64] = "";
    int bport = 0;
    if (bound.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *) &bound;
        uv_ip4_name(a, ip, sizeof(ip));
        bport = ntohs(a->sin_port);
        snprintf(h->address, sizeof(h->address), "%s:%d", ip, bport);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *) &bound;
        uv_ip6_name(a, ip, sizeof(ip));
        bport = ntohs(a->sin6_port);
        snprintf(h->address, sizeof(h->address), "[%s]:%d", ip, bport);
    }
    char adv[64];
    if (micro__host_unspecified(host)) {
        micro__advertise_host(adv, sizeof(adv));
    } else {
        snprintf(adv, sizeof(adv), "%s", ip);
    }
    snprintf(h->advertise, sizeof(h->advertise),
        strchr(adv, ':') ? "[%s]:%d" : "%s:%d", adv, bport);
    return 0;
}

static void
on_server_closed(uv_handle_t *hd)
{
    httpb *h = hd->data;
    h->open_handles--;
}

static int
do_close(void *arg)
{
    httpb *h = arg;
    if (h->listening) {
        h->listening = false;
        uv_close((uv_handle_t *) &h->server, on_server_closed);
    }
    while (h->conns != NULL) {
        conn_close(h->conns);
    }
    return 0;
}

static int
count_open(void *arg)
{
    httpb *h = arg;
    return h->open_handles;
}

/* ------------------------------------------------------------------ */
/* Registration of subscriptions.                                       */

static int
sub_record(httpb *h, const hsub *s, micro_registry_service *svc,
    micro_node *node)
{
    memset(svc, 0, sizeof(*svc));
    memset(node, 0, sizeof(*node));
    const char *q = micro_sub_queue(s->sub);
    svc->name = (char *) BROKER_SERVICE;
    svc->version = (char *) (q[0] ? q : BROADCAST);
    node->id = (char *) s->id;
    node->address = h->advertise;
    int rc = micro_metadata_set(&node->metadata, "secure", "false");
    if (rc == 0) {
        rc = micro_metadata_set(&node->metadata, "broker", "http");
    }
    if (rc == 0) {
        rc = micro_metadata_set(&node->metadata, "topic",
            micro_sub_topic(s->sub));
    }
    svc->nodes = node;
    svc->n_nodes = 1;
    return rc;
}

static int
sub_register(httpb *h, const hsub *s, bool deregister)
{
    micro_registry_service svc;
    micro_node node;
    int rc = sub_record(h, s, &svc, &node);
    if (rc == 0) {
        rc = deregister ? micro_registry_deregister(h->reg, &svc)
                        : micro_registry_register(h->reg, &svc, REG_TTL_MS);
    }
    micro_metadata_clear(&node.metadata);
    if (rc != 0) {
        micro_log(MICRO_LOG_WARN, "broker.http", "%s %s: %s",
            deregister ? "deregister" : "register", s->id,
            micro_strerror(rc));
    }
    atomic_store(&h->cache_dirty, true);
    return rc;
}

static void *
reg_thread(void *arg)
{
    httpb *h = arg;
    pthread_mutex_lock(&h->reg_mu);
    while (!h->reg_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += REG_INTERVAL_MS / 1000;
        pthread_cond_timedwait(&h->reg_cv, &h->reg_mu, &ts);
        if (h->reg_stop) {
            break;
        }
        pthread_mutex_unlock(&h->reg_mu);
        /* Unsubscribe (a writer) waits for the refresh to finish. */
        pthread_rwlock_rdlock(&h->subs_lock);
        for (hsub *s = h->subs; s != NULL; s = s->next) {
            sub_register(h, s, false);
        }
        pthread_rwlock_unlock(&h->subs_lock);
        pthread_mutex_lock(&h->reg_mu);
    }
    pthread_mutex_unlock(&h->reg_mu);
    return NULL;
}

static void
on_watch(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) action;
    httpb *h = arg;
    if (svc != NULL && svc->name != NULL &&
        strcmp(svc->name, BROKER_SERVICE) == 0) {
        atomic_store(&h->cache_dirty, true);
    }
}

/* ------------------------------------------------------------------ */
/* Ops.                                                                 */

static int
hb_init(void *st, micro_broker *b, micro_loop *loop, micro_registry *reg,
    const micro_options *opts)
{
    httpb *h = st;
    if (reg == NULL) {
        micro_log(MICRO_LOG_ERR, "broker.http",
            "the http broker needs a registry to find subscribers");
        return MICRO_EINVAL;
    }
    h->b = b;
    h->reg = reg;
    h->loop = loop;
    const char *a = micro_options_get_str(opts, "broker_address");
    h->listen = micro__strdup(a != NULL && a[0] != '\0' ? a : "127.0.0.1:0");
    if (h->listen == NULL) {
        return MICRO_ENOMEM;
    }
    pthread_rwlock_init(&h->subs_lock, NULL);
    pthread_mutex_init(&h->cache_mu, NULL);
    pthread_mutex_init(&h->pool_mu, NULL);
    pthread_mutex_init(&h->reg_mu, NULL);
    pthread_cond_init(&h->reg_cv, NULL);
    atomic_init(&h->cache_dirty, true);
    if (micro_registry_watch(reg, on_watch, h, &h->watch_token) == 0) {
        h->watching = true;
    }
    return 0;
}

static int
hb_connect(void *st)
{
    httpb *h = st;
    if (h->loop == NULL) {
        int rc = micro_loop_new(&h->loop);
        if (rc != 0) {
            return rc;
        }
        h->own_loop = true;
    }
    int rc = micro__loop_call(h->loop, do_listen, h);
    if (rc != 0) {
        micro_log(MICRO_LOG_ERR, "broker.http", "listen on %s: %s",
            h->listen, micro_strerror(rc));
        micro__loop_call(h->loop, do_close, h);
        while (micro__loop_call(h->loop, count_open, h) > 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        return rc;
    }
    h->reg_stop = false;
    if (pthread_create(&h->reg_thr, NULL, reg_thread, h) == 0) {
        h->reg_on = true;
    }
    MICRO_LOGF(MICRO_LOG_INFO, "broker.http", "listening on %s (advertised %s)",
        h->address, h->advertise);
    return 0;
}

static void
pool_drain(httpb *h)
{
    pthread_mutex_lock(&h->pool_mu);
    for (size_t i = 0; i < h->n_idle; i++) {
        close(h->idle[i].fd);
    }
    h->n_idle = 0;
    pthread_mutex_unlock(&h->pool_mu);
}

static int
hb_disconnect(void *st)
{
    httpb *h = st;
    if (h->reg_on) {
        pthread_mutex_lock(&h->reg_mu);
        h->reg_stop = true;
        pthread_cond_signal(&h->reg_cv);
        pthread_mutex_unlock(&h->reg_mu);
        pthread_join(h->reg_thr, NULL);
        h->reg_on = false;
    }
    if (h->loop != NULL) {
        micro__loop_call(h->loop, do_close, h);
        while (micro__loop_call(h->loop, count_open, h) > 0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    pool_drain(h);
    return 0;
}

static int
hb_subscribe(void *st, micro_sub *sub)
{
    httpb *h = st;
    hsub *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    char uuid[37];
    micro__uuid(uuid);
    s->sub = sub;
    snprintf(s->id, sizeof(s->id), "%s-%s", micro_sub_topic(sub), uuid);
    pthread_rwlock_wrlock(&h->subs_lock);
    s->next = h->subs;
    h->subs = s;
    pthread_rwlock_unlock(&h->subs_lock);
    micro_sub_set_data(sub, s);
    int rc = sub_register(h, s, false);
    if (rc != 0) {
        pthread_rwlock_wrlock(&h->subs_lock);
        h->subs = s->next;
        pthread_rwlock_unlock(&h->subs_lock);
        micro_sub_set_data(sub, NULL);
        micro__free(s);
    }
    return rc;
}

static int
hb_unsubscribe(void *st, micro_sub *sub)
{
    httpb *h = st;
    hsub *s = micro_sub_data(sub);
    if (s == NULL) {
        return 0;
    }
    pthread_rwlock_wrlock(&h->subs_lock);
    for (hsub **pp = &h->subs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_rwlock_unlock(&h->subs_lock);
    sub_register(h, s, true);
    micro_sub_set_data(sub, NULL);
    micro__free(s);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Publishing: a blocking HTTP/1.1 client with kept-alive connections.  */

static int
pool_get(httpb *h, const char *addr)
{
    int fd = -1;
    int64_t now = micro__now_ms();
    pthread_mutex_lock(&h->pool_mu);
    for (size_t i = h->n_idle; i-- > 0;) {
        if (strcmp(h->idle[i].addr, addr) != 0) {
            continue;
        }
        int f = h->idle[i].fd;
        bool fresh = now - h->idle[i].since < 30000;
        h->idle[i] = h->idle[--h->n_idle];
        if (fresh) {
            fd = f;
            break;
        }
        close(f);
    }
    pthread_mutex_unlock(&h->pool_mu);
    return fd;
}

static void
pool_put(httpb *h, const char *addr, int fd)
{
    size_t same = 0;
    pthread_mutex_lock(&h->pool_mu);
    for (size_t i = 0; i < h->n_idle; i++) {
        same += strcmp(h->idle[i].addr, addr) == 0;
    }
    if (same < IDLE_PER_ADDR && h->n_idle < MICRO_ARRAY_LEN(h->idle)) {
        idle_conn *c = &h->idle[h->n_idle++];
        snprintf(c->addr, sizeof(c->addr), "%s", addr);
        c->fd = fd;
        c->since = micro__now_ms();
        fd = -1;
    }
    pthread_mutex_unlock(&h->pool_mu);
    if (fd >= 0) {
        close(fd);
    }
}

static int
wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - micro__now_ms();
        if (left <= 0) {
            return MICRO_ETIMEDOUT;
        }
        struct pollfd p = {.fd = fd, .events = ev};
        int r = poll(&p, 1, (int) left);
        if (r > 0) {
            return 0;
        }
        if (r < 0 && errno != EINTR) {
            return -errno;
        }
    }
}

static int
dial(const char *addr, int64_t deadline, int *out)
{
    char host[64];
    int port = 0;
    if (micro__split_host_port(addr, host, sizeof(host), &port) != 0) {
        return MICRO_EINVAL;
    }
    char ps[8];
    snprintf(ps, sizeof(ps), "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host[0] ? host : "127.0.0.1", ps, &hints, &ai) != 0 ||
        ai == NULL) {
        return MICRO_ENONODE;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
        0);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        rc = errno == EINPROGRESS ? wait_fd(fd, POLLOUT, deadline) : -errno;
        if (rc == 0) {
            int err = 0;
            socklen_t l = sizeof(err);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
            rc = -err;
        }
    }
    freeaddrinfo(ai);
    if (rc != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return rc;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *out = fd;
    return 0;
}

typedef struct rsp_state {
    bool done;
    bool keep;
    int status;
} rsp_state;

static int
rsp_complete(http_parser *p)
{
    rsp_state *r = p->data;
    r->done = true;
    r->status = (int) p->status_code;
    r->keep = http_should_keep_alive(p) != 0;
    return 0;
}

static const http_parser_settings rsp_settings = {
    .on_message_complete = rsp_complete,
};

/* One POST on fd. *reusable tells whether fd may go back to the pool. */
static int
post_on(int fd, const char *addr, const char *path, const micro_buf *body,
    int64_t deadline, bool *reusable, int *status, bool *sent_any)
{
    *reusable = false;
    char head[1024];
    int hl = snprintf(head, sizeof(head),
        "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cmicro\r\n"
        "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
        path, addr, body->len);
    if (hl < 0 || (size_t) hl >= sizeof(head)) {
        return MICRO_EMSGSIZE;
    }
    struct iovec iov[2] = {{head, (size_t) hl}, {body->data, body->len}};
    int idx = 0;
    while (idx < 2) {
        ssize_t w = writev(fd, &iov[idx], 2 - idx);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int rc = wait_fd(fd, POLLOUT, deadline);
                if (rc != 0) {
                    return rc;
                }
                continue;
            }
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        *sent_any = true;
        size_t left = (size_t) w;
        while (idx < 2 && left >= iov[idx].iov_len) {
            left -= iov[idx].iov_len;
            idx++;
        }
        if (idx < 2) {
            iov[idx].iov_base = (char *) iov[idx].iov_base + left;
            iov[idx].iov_len -= left;
        }
    }
    http_parser p;
    http_parser_init(&p, HTTP_RESPONSE);
    rsp_state r = {0};
    p.data = &r;
    char buf[4096];
    while (!r.done) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(fd, POLLIN, deadline);
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        size_t done = http_parser_execute(&p, &rsp_settings, buf, (size_t) n);
        if (n == 0 && !r.done) {
            return MICRO_ECONNRESET;
        }
        if (p.http_errno != HPE_OK || done != (size_t) n) {
            return MICRO_EPROTO;
        }
    }
    *status = r.status;
    *reusable = r.keep;
    return 0;
}

static void
query_escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s != '\0' && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char) *s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
            ch == '.' || ch == '~') {
            out[o++] = (char) ch;
        } else if (ch == ' ') {
            out[o++] = '+';
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

static int
post(httpb *h, const char *addr, const char *node_id, const micro_buf *body)
{
    char esc[600];
    query_escape(node_id, esc, sizeof(esc));
    char path[640];
    snprintf(path, sizeof(path), "/?id=%s", esc);
    int64_t deadline = micro__now_ms() + POST_TIMEOUT_MS;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = attempt == 0 ? pool_get(h, addr) : -1;
        bool pooled = fd >= 0;
        int rc = 0;
        if (fd < 0) {
            rc = dial(addr, deadline, &fd);
            if (rc != 0) {
                return rc;
            }
        }
        bool reusable = false, sent = false;
        int status = 0;
        rc = post_on(fd, addr, path, body, deadline, &reusable, &status,
            &sent);
        if (rc == 0 && reusable) {
            pool_put(h, addr, fd);
        } else {
            close(fd);
        }
        if (rc != 0 && pooled && rc != MICRO_ETIMEDOUT) {
            continue; /* a kept-alive connection the peer had closed */
        }
        if (rc != 0) {
            return rc;
        }
        if (status == 503) {
            return MICRO_EAGAIN;
        }
        return status == 200 ? 0 : MICRO_EREMOTE;
    }
    return MICRO_ECONNRESET;
}

typedef struct target {
    char addr[96];
    char id[300];
    char version[128];
    bool broadcast;
} target;

/* The subscribers of topic, from the (cached) registry view. */
static int
targets(httpb *h, const char *topic, target **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&h->cache_mu);
    int64_t now = micro__now_ms();
    if (atomic_exchange(&h->cache_dirty, false) || h->cache == NULL ||
        now - h->cache_at > CACHE_TTL_MS) {
        micro_registry_service *svcs = NULL;
        size_t ns = 0;
        int rc = micro_registry_get_service(h->reg, BROKER_SERVICE, &svcs,
            &ns);
        if (rc != 0 && rc != MICRO_ENOSERVICE) {
            pthread_mutex_unlock(&h->cache_mu);
            atomic_store(&h->cache_dirty, true);
            return rc;
        }
        micro_registry_services_free(h->cache, h->n_cache);
        h->cache = svcs;
        h->n_cache = ns;
        h->cache_at = now;
    }
    size_t cap = 0;
    for (size_t i = 0; i < h->n_cache; i++) {
        cap += h->cache[i].n_nodes;
    }
    target *t = cap ? micro__calloc(cap, sizeof(*t)) : NULL;
    if (cap > 0 && t == NULL) {
        pthread_mutex_unlock(&h->cache_mu);
        return MICRO_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < h->n_cache; i++) {
        const micro_registry_service *s = &h->cache[i];
        for (size_t j = 0; j < s->n_nodes; j++) {
            const micro_node *nd = &s->nodes[j];
            const char *br = micro_metadata_get(&nd->metadata, "broker");
            const char *tp = micro_metadata_get(&nd->metadata, "topic");
            if (br == NULL || strcmp(br, "http") != 0 || tp == NULL ||
                strcmp(tp, topic) != 0 || nd->address == NULL ||
                nd->id == NULL) {
                continue;
            }
            const char *sec = micro_metadata_get(&nd->metadata, "secure");
            if (sec != NULL && strcmp(sec, "true") == 0) {
                MICRO_LOGF(MICRO_LOG_WARN, "broker.http",
                    "subscriber %s wants TLS, which is not built; skipped",
                    nd->id);
                continue;
            }
            snprintf(t[k].addr, sizeof(t[k].addr), "%s", nd->address);
            snprintf(t[k].id, sizeof(t[k].id), "%s", nd->id);
            snprintf(t[k].version, sizeof(t[k].version), "%s",
                s->version ? s->version : "");
            t[k].broadcast = s->version != NULL &&
                strcmp(s->version, BROADCAST) == 0;
            k++;
        }
    }
    pthread_mutex_unlock(&h->cache_mu);
    *out = t;
    *n = k;
    return 0;
}

static int
hb_publish(void *st, const char *topic, const micro_msg *msg)
{
    httpb *h = st;
    /* Header = the message's + Micro-Topic (Go's http broker adds it). */
    micro_msg *m = NULL;
    int rc = micro__msg_copy(msg, &m);
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Topic", topic);
    }
    micro_buf env = {0};
    if (rc == 0) {
        rc = micro_broker_envelope_encode(m, &env);
    }
    micro_msg_free(m);
    target *t = NULL;
    size_t n = 0;
    if (rc == 0) {
        rc = targets(h, topic, &t, &n);
    }
    if (rc == 0 && n == 0) {
        rc = MICRO_ENOSERVICE;
    }
    int first_err = 0;
    bool any_fail = false;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (t[i].broadcast) {
            int r = post(h, t[i].addr, t[i].id, &env);
            if (r != 0) {
                any_fail = true;
                first_err = first_err ? first_err : r;
            }
            continue;
        }
        if (t[i].id[0] == '\0') {
            continue; /* a group already served */
        }
        /* A queue group: one random member, another if that fails. */
        size_t members[64];
        size_t nm = 0;
        for (size_t j = i; j < n && nm < 64; j++) {
            if (!t[j].broadcast && t[j].id[0] != '\0' &&
                strcmp(t[j].version, t[i].version) == 0) {
                members[nm++] = j;
            }
        }
        int r = MICRO_ENONODE;
        for (size_t tries = 0; tries < nm && r != 0; tries++) {
            size_t pick = micro__rand((uint32_t) (nm - tries));
            size_t j = members[pick];
            members[pick] = members[nm - tries - 1];
            r = post(h, t[j].addr, t[j].id, &env);
        }
        for (size_t k = 0; k < nm; k++) {
            t[members[k]].id[0] = '\0';
        }
        for (size_t j = i; j < n; j++) {
            if (!t[j].broadcast && strcmp(t[j].version, t[i].version) == 0) {
                t[j].id[0] = '\0';
            }
        }
        if (r != 0) {
            any_fail = true;
            first_err = first_err ? first_err : r;
        }
    }
    if (any_fail) {
        atomic_store(&h->cache_dirty, true);
        MICRO_LOGF(MICRO_LOG_INFO, "broker.http", "publish %s: %s", topic,
            micro_strerror(first_err));
        rc = first_err;
    }
    micro__free(t);
    micro_buf_clear(&env);
    return rc;
}

static const char *
hb_address(void *st)
{
    httpb *h = st;
    return h->address;
}

static void
hb_fini(void *st)
{
    httpb *h = st;
    if (h->watching) {
        micro_registry_unwatch(h->reg, h->watch_token);
    }
    if (h->own_loop) {
        micro_loop_free(h->loop);
    }
    micro_registry_services_free(h->cache, h->n_cache);
    pool_drain(h);
    micro__free(h->rbuf);
    micro__free(h->listen);
    pthread_rwlock_destroy(&h->subs_lock);
    pthread_mutex_destroy(&h->cache_mu);
    pthread_mutex_destroy(&h->pool_mu);
    pthread_mutex_destroy(&h->reg_mu);
    pthread_cond_destroy(&h->reg_cv);
}

const micro_broker_ops micro_broker_http_ops = {
    .abi = MICRO_BROKER_ABI,
    .name = "http",
    .state_size = sizeof(httpb),
    .init = hb_init,
    .connect = hb_connect,
    .disconnect = hb_disconnect,
    .publish = hb_publish,
    .subscribe = hb_subscribe,
    .unsubscribe = hb_unsubscribe,
    .address = hb_address,
    .fini = hb_fini,
};
