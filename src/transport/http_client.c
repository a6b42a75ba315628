/*
 * Client side of the http transport: a pool of keep-alive connections and
 * one blocking request/response exchange per call, as Go Micro's http
 * transport client does it (spec §1.2, §1.3).
 *
 * The synchronous client calls micro__http_roundtrip from any number of
 * threads at once, so this file uses no event loop: each call works on its
 * own socket from the calling thread, with poll() enforcing the deadline.
 * The only shared state is the pool of idle connections, guarded by one
 * mutex that is never held across a system call that can block.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <http_parser.h>

#include "core/msg_internal.h"
#include "core/strtab.h"
#include "transport/http_internal.h"

#define HC_COMPONENT "transport.http"

/* Request heads up to this size are built on the stack (no allocation). */
#define HC_HEAD_STACK 4096
/* Bytes read per recv(). */
#define HC_RECV_BUF 16384
/* Expired connections closed outside the lock per pool_get pass. */
#define HC_EXPIRED_BATCH 16
/* A deadline that never comes. */
#define HC_NO_DEADLINE INT64_MAX

/* ------------------------------------------------------------------------
 * Pool
 * --------------------------------------------------------------------- */

typedef struct hc_conn {
    int fd;
    int64_t dialed_at_ms;
    /* The call timeout SO_RCVTIMEO was last set for (-1: never set). */
    int64_t rcvtimeo_for;
} hc_conn;

/* The idle connections of one address, a LIFO stack: the most recently
 * released connection is reused first (Go's util/pool does the same), which
 * keeps the working set of connections small and warm. */
typedef struct hc_bucket {
    micro__strtab_node node; /* first: key = addr */
    hc_conn *idle;
    size_t n, cap;
    char addr[]; /* NUL-terminated */
} hc_bucket;

struct micro__http_pool {
    pthread_mutex_t mu;
    micro__http_pool_cfg cfg;
    micro__strtab buckets; /* of hc_bucket, by address */
};

int
micro__http_pool_new(micro__http_pool **out, const micro__http_pool_cfg *cfg)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    *out = NULL;
    micro__http_pool *p = micro__calloc(1, sizeof(*p));
    if (p == NULL) {
        return MICRO_ENOMEM;
    }
    if (cfg != NULL) {
        p->cfg = *cfg;
    } else {
        p->cfg.size = 100;
        p->cfg.ttl_ms = 60000;
        p->cfg.dial_timeout_ms = 5000;
        p->cfg.max_message = (size_t) 4 << 20;
        p->cfg.max_header = (size_t) 1 << 20;
    }
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        micro__free(p);
        return MICRO_ENOMEM;
    }
    *out = p;
    return 0;
}

static void
bucket_free(micro__strtab_node *n, void *arg)
{
    hc_bucket *b = (hc_bucket *) n;
    (void) arg;
    for (size_t j = 0; j < b->n; j++) {
        close(b->idle[j].fd);
    }
    micro__free(b->idle);
    micro__free(b);
}

void
micro__http_pool_free(micro__http_pool *p)
{
    if (p == NULL) {
        return;
    }
    micro__strtab_clear(&p->buckets, bucket_free, NULL);
    pthread_mutex_destroy(&p->mu);
    micro__free(p);
}

/* Caller holds p->mu. */
static hc_bucket *
pool_find(micro__http_pool *p, const char *addr, size_t len, uint64_t h)
{
    return (hc_bucket *) micro__strtab_find(&p->buckets, addr, len, h);
}

/*
 * Pop the most recently released idle connection to addr that is younger
 * than the TTL. Expired ones are closed, outside the lock. Returns false
 * when there is none.
 */
static bool
pool_get(micro__http_pool *p, const char *addr, size_t len, uint64_t h,
    hc_conn *out)
{
    int expired[HC_EXPIRED_BATCH];
    bool found = false;
    for (;;) {
        size_t nexp = 0;
        bool more = false;
        int64_t now = micro__now_ms();
        pthread_mutex_lock(&p->mu);
        hc_bucket *b = pool_find(p, addr, len, h);
        while (b != NULL && b->n > 0) {
            hc_conn c = b->idle[--b->n];
            if (p->cfg.ttl_ms > 0 && now - c.dialed_at_ms > p->cfg.ttl_ms) {
                expired[nexp++] = c.fd;
                if (nexp == HC_EXPIRED_BATCH) {
                    more = true;
                    break;
                }
                continue;
            }
            *out = c;
            found = true;
            break;
        }
        pthread_mutex_unlock(&p->mu);
        for (size_t i = 0; i < nexp; i++) {
            close(expired[i]);
        }
        if (found || !more) {
            return found;
        }
    }
}

/* Return a connection after a clean exchange, or close it when the bucket
 * already holds cfg.size idle connections. */
static void
pool_put(micro__http_pool *p, const char *addr, size_t len, uint64_t h,
    hc_conn c)
{
    bool kept = false;
    pthread_mutex_lock(&p->mu);
    if (p->cfg.size > 0) {
        hc_bucket *b = pool_find(p, addr, len, h);
        if (b == NULL) {
            b = micro__malloc(sizeof(*b) + len + 1);
            if (b != NULL) {
                b->idle = NULL;
                b->n = b->cap = 0;
                memcpy(b->addr, addr, len + 1);
                if (micro__strtab_insert(
                        &p->buckets, &b->node, b->addr, len, h) != 0) {
                    micro__free(b);
                    b = NULL;
                }
            }
        }
        if (b != NULL && b->n < p->cfg.size) {
            if (b->n == b->cap) {
                size_t nc = b->cap ? b->cap * 2 : 4;
                if (nc > p->cfg.size) {
                    nc = p->cfg.size;
                }
                hc_conn *idle = micro__realloc(b->idle, nc * sizeof(*idle));
                if (idle != NULL) {
                    b->idle = idle;
                    b->cap = nc;
                }
            }
            if (b->n < b->cap) {
                b->idle[b->n++] = c;
                kept = true;
            }
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (!kept) {
        close(c.fd);
    }
}

/* ------------------------------------------------------------------------
 * Time and sockets
 * --------------------------------------------------------------------- */

/* Milliseconds left until deadline as a poll() timeout: -1 for none, 0
 * when it has passed. */
static int
poll_ms(int64_t deadline)
{
    if (deadline == HC_NO_DEADLINE) {
        return -1;
    }
    int64_t left = deadline - micro__now_ms();
    if (left <= 0) {
        return 0;
    }
    return left > INT_MAX ? INT_MAX : (int) left;
}

/* Wait until fd is ready for events or the deadline passes. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int ms = poll_ms(deadline);
        if (ms == 0) {
            return MICRO_ETIMEDOUT;
        }
        struct pollfd pfd = { .fd = fd, .events = events, .revents = 0 };
        int r = poll(&pfd, 1, ms);
        if (r > 0) {
            return 0; /* readable, writable, or an error for the I/O call */
        }
        if (r < 0 && errno != EINTR) {
            return -errno;
        }
        /* r == 0: poll may round down; the loop re-checks the clock. */
    }
}

/*
 * Split "host:port", "[v6]:port" or ":port" into host (NUL-terminated, in
 * hbuf) and port (a pointer into addr).
 */
static int
split_addr(const char *addr, char *hbuf, size_t hcap, const char **port)
{
    const char *hs;
    size_t hl;
    const char *colon;
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
            return MICRO_EINVAL; /* bare IPv6 needs brackets, as in Go */
        }
    }
    if (hl >= hcap || colon[1] == '\0') {
        return MICRO_EINVAL;
    }
    memcpy(hbuf, hs, hl);
    hbuf[hl] = '\0';
    *port = colon + 1;
    return 0;
}

int
micro__http_addr_parse(const char *addr, char *host, size_t hcap,
    const char **port, struct sockaddr_storage *ss, socklen_t *sslen)
{
    int rc = split_addr(addr, host, hcap, port);
    if (rc != 0) {
        return rc;
    }
    char *end = NULL;
    errno = 0;
    long pn = strtol(*port, &end, 10);
    bool numeric = errno == 0 && end != *port && *end == '\0' && pn >= 0 &&
                   pn <= 65535;
    if (!numeric) {
        return 0;
    }
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *) ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t) pn);
        *sslen = sizeof(*s4);
        return 1;
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) ss;
    if (strchr(host, '%') == NULL &&
        inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t) pn);
        *sslen = sizeof(*s6);
        return 1;
    }
    return 0;
}

/* Connect one address with a non-blocking connect bounded by deadline. */
static int
dial_sockaddr(const struct sockaddr *sa, socklen_t salen, int64_t deadline,
    int *fd_out)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
        IPPROTO_TCP);
    if (fd < 0) {
        return -errno;
    }
    int rc = 0;
    if (connect(fd, sa, salen) != 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            rc = -errno;
            close(fd);
            return rc;
        }
        rc = wait_fd(fd, POLLOUT, deadline);
        if (rc == 0) {
            int err = 0;
            socklen_t el = sizeof(err);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0) {
                err = errno;
            }
            rc = -err;
        }
        if (rc != 0) {
            close(fd);
            return rc;
        }
    }
    /* Requests are single writes answered by the peer: Nagle only adds
     * latency here. */
    int one = 1;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* Blocking from here on: the first read of a response sleeps in recv()
     * bounded by SO_RCVTIMEO (recv_response), saving a poll() per call.
     * Every other read and every write passes MSG_DONTWAIT. */
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/*
 * Resolve and connect addr. Literals skip the resolver; names go through
 * getaddrinfo (nothing is cached, so DNS changes apply at once) and each
 * address is tried in turn within the deadline.
 */
static int
dial(const char *addr, int64_t deadline, int *fd_out)
{
    char host[256];
    const char *port;
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    int rc = micro__http_addr_parse(addr, host, sizeof(host), &port, &ss, &sl);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        return dial_sockaddr((const struct sockaddr *) &ss, sl, deadline,
            fd_out);
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    struct addrinfo *res = NULL;
    /* An empty host (":port") means the local system, as in Go. */
    int gr = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (gr != 0) {
        if (gr == EAI_MEMORY) {
            return MICRO_ENOMEM;
        }
        if (gr == EAI_SYSTEM && errno != 0) {
            return -errno;
        }
        MICRO_LOGF(MICRO_LOG_DEBUG, HC_COMPONENT, "resolve %s: %s", addr,
            gai_strerror(gr));
        return MICRO_EINVAL;
    }
    rc = MICRO_EINVAL;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        rc = dial_sockaddr(ai->ai_addr, ai->ai_addrlen, deadline, fd_out);
        if (rc == 0 || rc == MICRO_ETIMEDOUT) {
            break;
        }
    }
    freeaddrinfo(res);
    return rc;
}


/* ------------------------------------------------------------------------
 * Request serialisation
 * --------------------------------------------------------------------- */

/* The User-Agent Go's client sends when none is set. A macro, not an
 * array: the plan takes its size and the writer pastes it into a literal,
 * so the two cannot disagree. */
#define UA_DEFAULT "Go-http-client/1.1"

static bool
hdr_is(const struct micro_hdr *h, const char *name, size_t nl)
{
    return h->klen == nl && strncasecmp(h->key, name, nl) == 0;
}

/* Headers the request line block writes itself (Go's
 * reqWriteExcludeHeader, plus Connection), and keys that would break the
 * framing. */
static bool
hdr_skip(const struct micro_hdr *h)
{
    if (h->klen == 0 || memchr(h->key, '\r', h->klen) != NULL ||
        memchr(h->key, '\n', h->klen) != NULL ||
        memchr(h->key, ':', h->klen) != NULL) {
        return true;
    }
    switch (h->klen) {
    case 4:
        return hdr_is(h, "Host", 4);
    case 7:
        return hdr_is(h, "Trailer", 7);
    case 10:
        return hdr_is(h, "User-Agent", 10) || hdr_is(h, "Connection", 10);
    case 14:
        return hdr_is(h, "Content-Length", 14);
    case 17:
        return hdr_is(h, "Transfer-Encoding", 17);
    default:
        return false;
    }
}

/* Go writes a value with CR and LF replaced by spaces and surrounding
 * spaces and tabs trimmed (headerNewlineToSpace + textproto.TrimString);
 * this gives the trimmed span. */
static void
value_span(const char *v, size_t n, size_t *start, size_t *len)
{
    size_t s = 0;
    size_t e = n;
    while (s < e && (v[s] == ' ' || v[s] == '\t' || v[s] == '\r' ||
                        v[s] == '\n')) {
        s++;
    }
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t' ||
                        v[e - 1] == '\r' || v[e - 1] == '\n')) {
        e--;
    }
    *start = s;
    *len = e - s;
}

static char *
put_value(char *d, const char *v, size_t n)
{
    size_t s, l;
    value_span(v, n, &s, &l);
    for (size_t i = 0; i < l; i++) {
        char c = v[s + i];
        *d++ = (c == '\r' || c == '\n') ? ' ' : c;
    }
    return d;
}

static char *
put(char *d, const char *s, size_t n)
{
    memcpy(d, s, n);
    return d + n;
}

/* The request head: everything before the body, plus the chunked
 * terminator when the body is empty. head_size is exact. */
typedef struct req_plan {
    const char *host;
    size_t host_len;
    const struct micro_hdr *ua; /* a User-Agent header, or NULL */
    size_t body_len;
    char clen[24];
    size_t clen_len;
    size_t head_size;
} req_plan;

static void
req_plan_make(req_plan *pl, const char *host, const micro_msg *req)
{
    pl->host = host;
    pl->host_len = strlen(host);
    pl->body_len = req->body.len;
    pl->ua = NULL;
    size_t n = sizeof("POST / HTTP/1.1\r\n") - 1;
    size_t s, l;
    value_span(host, pl->host_len, &s, &l);
    n += sizeof("Host: \r\n") - 1 + l;
    for (size_t i = 0; i < req->n; i++) {
        const struct micro_hdr *h = &req->hdrs[i];
        if (hdr_is(h, "User-Agent", 10)) {
            if (pl->ua == NULL) {
                pl->ua = h;
            }
            continue;
        }
        if (hdr_skip(h)) {
            continue;
        }
        value_span(h->value, h->vlen, &s, &l);
        n += h->klen + 2 + l + 2;
    }
    if (pl->ua == NULL) {
        n += sizeof("User-Agent: " UA_DEFAULT "\r\n") - 1;
    } else {
        value_span(pl->ua->value, pl->ua->vlen, &s, &l);
        if (l > 0) { /* Go omits the line for an empty User-Agent */
            n += sizeof("User-Agent: \r\n") - 1 + l;
        }
    }
    if (pl->body_len > 0) {
        int cl = snprintf(
            pl->clen, sizeof(pl->clen), "%zu", pl->body_len);
        pl->clen_len = (size_t) cl;
        n += sizeof("Content-Length: \r\n") - 1 + pl->clen_len;
    } else {
        pl->clen_len = 0;
        n += sizeof("Transfer-Encoding: chunked\r\n") - 1 +
             sizeof("0\r\n\r\n") - 1;
    }
    n += 2; /* blank line */
    pl->head_size = n;
}

#define PUT_LIT(d, s) put((d), (s), sizeof(s) - 1)

/* Write the head into dst (pl->head_size bytes). */
static int
req_plan_write(const req_plan *pl, const micro_msg *req, char *dst)
{
    char *d = dst;
    d = PUT_LIT(d, "POST / HTTP/1.1\r\nHost: ");
    d = put_value(d, pl->host, pl->host_len);
    d = PUT_LIT(d, "\r\n");
    if (pl->ua == NULL) {
        d = PUT_LIT(d, "User-Agent: " UA_DEFAULT "\r\n");
    } else {
        size_t s, l;
        value_span(pl->ua->value, pl->ua->vlen, &s, &l);
        if (l > 0) {
            d = PUT_LIT(d, "User-Agent: ");
            d = put_value(d, pl->ua->value, pl->ua->vlen);
            d = PUT_LIT(d, "\r\n");
        }
    }
    if (pl->body_len > 0) {
        d = PUT_LIT(d, "Content-Length: ");
        d = put(d, pl->clen, pl->clen_len);
        d = PUT_LIT(d, "\r\n");
    } else {
        d = PUT_LIT(d, "Transfer-Encoding: chunked\r\n");
    }
    for (size_t i = 0; i < req->n; i++) {
        const struct micro_hdr *h = &req->hdrs[i];
        if (hdr_skip(h)) {
            continue;
        }
        /* Canonicalisation only changes letter case, so the key keeps its
         * length; the room for the NUL is where ':' goes next. */
        size_t room = pl->head_size - (size_t) (d - dst);
        int kl = micro_canonical_header_key(h->key, d, room);
        if (kl < 0 || (size_t) kl != h->klen) {
            return kl < 0 ? kl : MICRO_EINVAL;
        }
        d += kl;
        d = PUT_LIT(d, ": ");
        d = put_value(d, h->value, h->vlen);
        d = PUT_LIT(d, "\r\n");
    }
    d = PUT_LIT(d, "\r\n");
    if (pl->body_len == 0) {
        d = PUT_LIT(d, "0\r\n\r\n");
    }
    MICRO_ASSERT((size_t) (d - dst) == pl->head_size);
    return 0;
}

int
micro__http_write_request(micro_buf *out, const char *host,
    const micro_msg *req)
{
    if (out == NULL || host == NULL || req == NULL) {
        return MICRO_EINVAL;
    }
    req_plan pl;
    req_plan_make(&pl, host, req);
    int rc = micro_buf_reserve(out, pl.head_size + pl.body_len);
    if (rc != 0) {
        return rc;
    }
    rc = req_plan_write(&pl, req, (char *) out->data + out->len);
    if (rc != 0) {
        return rc;
    }
    out->len += pl.head_size;
    if (pl.body_len > 0) {
        memcpy(out->data + out->len, req->body.data, pl.body_len);
        out->len += pl.body_len;
    }
    return 0;
}

/* Write all of iov (at most 2 entries) before the deadline. */
static int
send_all(int fd, struct iovec *iov, int iovcnt, int64_t deadline, int *sent)
{
    while (iovcnt > 0) {
        struct msghdr mh;
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = iov;
        mh.msg_iovlen = (size_t) iovcnt;
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int rc = wait_fd(fd, POLLOUT, deadline);
                if (rc != 0) {
                    return rc;
                }
                continue;
            }
            return -errno;
        }
        if (w > 0 && sent != NULL) {
            *sent = 1;
        }
        size_t left = (size_t) w;
        while (iovcnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *) iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Response parsing
 * --------------------------------------------------------------------- */

static int
count_header(micro__http_rsp *st, size_t n)
{
    st->header_bytes += n;
    if (st->header_bytes > st->cfg->max_header) {
        st->err = MICRO_EMSGSIZE;
        return -1;
    }
    return 0;
}

static int
on_status(http_parser *hp, const char *at, size_t len)
{
    micro__http_rsp *st = hp->data;
    size_t room = sizeof(st->status_text) - 1 - st->status_len;
    size_t n = len < room ? len : room;
    memcpy(st->status_text + st->status_len, at, n);
    st->status_len += n;
    st->status_text[st->status_len] = '\0';
    return count_header(st, len + 16);
}

static int
flush_header(micro__http_rsp *st)
{
    if (!st->in_value) {
        if (micro_buf_append(&st->kv, "", 1) != 0) {
            st->err = MICRO_ENOMEM;
            return -1;
        }
    }
    const char *k = (const char *) st->kv.data;
    size_t kl = st->klen;
    const char *v = k + kl + 1;
    size_t vl = st->kv.len - kl - 1;
    st->kv.len = 0;
    st->klen = 0;
    st->in_value = false;
    if (kl == 11 && strncasecmp(k, "Micro-Error", 11) == 0) {
        st->micro_error = true;
    }
    /* First value wins, as with Go's Header.Get. */
    const micro_msg *m = st->msg;
    for (size_t i = 0; i < m->n; i++) {
        if (m->hdrs[i].klen == kl && strncasecmp(m->hdrs[i].key, k, kl) == 0) {
            return 0;
        }
    }
    if (micro__msg_add_header_n(st->msg, k, kl, v, vl) != 0) {
        st->err = MICRO_ENOMEM;
        return -1;
    }
    return 0;
}

static int
on_header_field(http_parser *hp, const char *at, size_t len)
{
    micro__http_rsp *st = hp->data;
    if (count_header(st, len + 4) != 0) {
        return -1;
    }
    if (st->headers_done) {
        return 0; /* Go keeps trailers apart from the header map */
    }
    if (st->in_value && flush_header(st) != 0) {
        return -1;
    }
    if (micro_buf_append(&st->kv, at, len) != 0) {
        st->err = MICRO_ENOMEM;
        return -1;
    }
    st->klen += len;
    return 0;
}

static int
on_header_value(http_parser *hp, const char *at, size_t len)
{
    micro__http_rsp *st = hp->data;
    if (count_header(st, len) != 0) {
        return -1;
    }
    if (st->headers_done) {
        return 0;
    }
    if (!st->in_value) {
        if (micro_buf_append(&st->kv, "", 1) != 0) {
            st->err = MICRO_ENOMEM;
            return -1;
        }
        st->in_value = true;
    }
    if (micro_buf_append(&st->kv, at, len) != 0) {
        st->err = MICRO_ENOMEM;
        return -1;
    }
    return 0;
}

static int
on_headers_complete(http_parser *hp)
{
    micro__http_rsp *st = hp->data;
    if (st->klen > 0 && flush_header(st) != 0) {
        return -1;
    }
    st->headers_done = true;
    if (hp->status_code != 200) {
        /* Go Micro servers always answer 200; anything else is an HTTP
         * intermediary or a different server. */
        st->err = MICRO_EPROTO;
        return -1;
    }
    /* Absent Content-Length reads as ULLONG_MAX, so "more than max" also
     * means "chunked or until EOF", which on_body limits as it goes. */
    if (!(hp->flags & F_CHUNKED) && hp->content_length != ULLONG_MAX) {
        if (hp->content_length > st->cfg->max_message) {
            st->err = MICRO_EMSGSIZE;
            return -1;
        }
        if (hp->content_length > 0 &&
            micro_buf_reserve(&st->body, (size_t) hp->content_length) != 0) {
            st->err = MICRO_ENOMEM;
            return -1;
        }
    }
    st->keep_alive = http_should_keep_alive(hp) != 0;
    return 0;
}

static int
on_body(http_parser *hp, const char *at, size_t len)
{
    micro__http_rsp *st = hp->data;
    if (len > st->cfg->max_message - st->body.len) {
        st->err = MICRO_EMSGSIZE;
        return -1;
    }
    if (micro_buf_append(&st->body, at, len) != 0) {
        st->err = MICRO_ENOMEM;
        return -1;
    }
    return 0;
}

static int
on_message_complete(http_parser *hp)
{
    micro__http_rsp *st = hp->data;
    st->complete = true;
    /* Stop right after this response so that any byte after it shows up
     * as unparsed. */
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings rsp_settings = {
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int
micro__http_rsp_begin(micro__http_rsp *r, const micro__http_pool_cfg *cfg)
{
    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    int rc = micro_msg_new(&r->msg);
    if (rc != 0) {
        return rc;
    }
    http_parser_init(&r->hp, HTTP_RESPONSE);
    r->hp.data = r;
    return 0;
}

int
micro__http_rsp_feed(micro__http_rsp *r, const char *p, size_t n)
{
    if (n == 0) {
        /* EOF ends a body without length; anything else is cut short. */
        if (r->got_bytes) {
            http_parser_execute(&r->hp, &rsp_settings, NULL, 0);
            if (r->err != 0) {
                return r->err;
            }
        }
        if (!r->complete) {
            return MICRO_ECONNRESET;
        }
        r->keep_alive = false;
        return 1;
    }
    r->got_bytes = true;
    size_t np = http_parser_execute(&r->hp, &rsp_settings, p, n);
    if (r->err != 0) {
        return r->err;
    }
    enum http_errno he = HTTP_PARSER_ERRNO(&r->hp);
    if (he == HPE_PAUSED) {
        r->leftover = np < n;
        return 1;
    }
    if (he == HPE_HEADER_OVERFLOW) {
        return MICRO_EMSGSIZE;
    }
    if (he != HPE_OK || np != n) {
        MICRO_LOGF(MICRO_LOG_DEBUG, HC_COMPONENT, "bad response: %s",
            http_errno_description(he));
        return MICRO_EPROTO;
    }
    return r->complete ? 1 : 0;
}

micro_msg *
micro__http_rsp_take(micro__http_rsp *r, bool *reusable)
{
    /* A Go Micro server never sends unsolicited bytes: a connection with
     * bytes after the response is out of step and not reused. */
    *reusable = r->keep_alive && !r->micro_error && !r->leftover;
    micro_msg *m = r->msg;
    micro_msg_take_body(m, &r->body);
    r->msg = NULL;
    return m;
}

void
micro__http_rsp_end(micro__http_rsp *r, const char *addr, int rc)
{
    if (rc == MICRO_EPROTO && r->hp.status_code != 0 &&
        r->hp.status_code != 200) {
        MICRO_LOGF(MICRO_LOG_WARN, HC_COMPONENT,
            "%s: unexpected HTTP status %u %s", addr,
            (unsigned) r->hp.status_code, r->status_text);
    }
    micro_msg_free(r->msg);
    r->msg = NULL;
    micro_buf_clear(&r->body);
    micro_buf_clear(&r->kv);
}

/* Outcome of one exchange attempt beyond its return code. */
typedef struct xfer_out {
    bool got_bytes; /* any response byte arrived */
    bool reusable;  /* the connection may go back to the pool */
} xfer_out;

/*
 * Bound the blocking first recv() of a response by the call's timeout.
 * setsockopt runs only when the timeout differs from the one the
 * connection last had (usually once per connection). The value set is what
 * was left of that call's deadline, so a later call with the same timeout
 * may sleep past its deadline by at most the time it spent sending. 0
 * when the first read may block; otherwise the caller polls instead.
 */
static int
arm_rcvtimeo(hc_conn *c, int64_t timeout_ms, int64_t deadline)
{
    if (c->rcvtimeo_for == timeout_ms) {
        return 0;
    }
    struct timeval tv = { 0, 0 };
    if (deadline != HC_NO_DEADLINE) {
        int64_t left = deadline - micro__now_ms();
        if (left <= 0) {
            return MICRO_ETIMEDOUT;
        }
        tv.tv_sec = (time_t) (left / 1000);
        tv.tv_usec = (suseconds_t) ((left % 1000) * 1000);
    }
    if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
        c->rcvtimeo_for = -1;
        return -errno;
    }
    c->rcvtimeo_for = timeout_ms;
    return 0;
}

static int
recv_response(hc_conn *c, const char *addr, const micro__http_pool_cfg *cfg,
    int64_t timeout_ms, int64_t deadline, micro_msg **rsp, xfer_out *xo)
{
    int fd = c->fd;
    micro__http_rsp r;
    int rc = micro__http_rsp_begin(&r, cfg);
    if (rc != 0) {
        return rc;
    }
    char buf[HC_RECV_BUF];
    /* Right after the request nothing has arrived yet: the first read
     * sleeps in recv() itself (SO_RCVTIMEO bounds it). After that, a full
     * buffer means more is probably queued, so read first; otherwise wait
     * in poll() for what is left of the deadline. */
    bool blocking = arm_rcvtimeo(c, timeout_ms, deadline) == 0;
    bool must_wait = !blocking;
    for (;;) {
        if (must_wait) {
            rc = wait_fd(fd, POLLIN, deadline);
            if (rc != 0) {
                break;
            }
        }
        ssize_t n = recv(fd, buf, sizeof(buf), blocking ? 0 : MSG_DONTWAIT);
        if (n < 0 && blocking) {
            /* SO_RCVTIMEO expired (EAGAIN) or a signal came: poll() checks
             * the deadline from here on. */
            blocking = false;
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                must_wait = true;
                continue;
            }
        }
        blocking = false;
        if (n < 0) {
            if (errno == EINTR) {
                must_wait = false;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                must_wait = true;
                continue;
            }
            rc = -errno;
            break;
        }
        rc = micro__http_rsp_feed(&r, buf, (size_t) n);
        if (rc != 0) {
            break;
        }
        must_wait = (size_t) n < sizeof(buf);
    }
    xo->got_bytes = r.got_bytes;
    if (rc == 1) {
        rc = 0;
        *rsp = micro__http_rsp_take(&r, &xo->reusable);
    }
    micro__http_rsp_end(&r, addr, rc);
    return rc;
}

/* ------------------------------------------------------------------------
 * Round trip
 * --------------------------------------------------------------------- */

int
micro__http_roundtrip(micro__http_pool *p, const char *addr,
    const micro_msg *req, int64_t timeout_ms, micro_msg **rsp, int *sent)
{
    if (sent != NULL) {
        *sent = 0;
    }
    if (rsp != NULL) {
        *rsp = NULL;
    }
    if (p == NULL || addr == NULL || req == NULL || rsp == NULL) {
        return MICRO_EINVAL;
    }
    int64_t start = micro__now_ms();
    int64_t deadline = timeout_ms > 0 ? start + timeout_ms : HC_NO_DEADLINE;
    size_t alen = strlen(addr);
    uint64_t h = micro__strtab_hash(addr, alen);

    req_plan pl;
    req_plan_make(&pl, addr, req);
    char stack_head[HC_HEAD_STACK];
    char *head = stack_head;
    if (pl.head_size > sizeof(stack_head)) {
        head = micro__malloc(pl.head_size);
        if (head == NULL) {
            return MICRO_ENOMEM;
        }
    }
    int rc = req_plan_write(&pl, req, head);
    if (rc != 0) {
        goto done;
    }

    hc_conn c = { .fd = -1, .dialed_at_ms = 0, .rcvtimeo_for = -1 };
    bool reused = false;
    /* No liveness probe before reuse (it cost a syscall on every call):
     * a pooled connection the peer has closed fails on first use before any
     * response byte, and the retry below redials. */
    if (pool_get(p, addr, alen, h, &c)) {
        reused = true;
    }

    /*
     * At most two attempts. The second happens only when a reused
     * connection failed with EPIPE, ECONNRESET or EOF before any response
     * byte arrived: the peer closed it while it sat idle (or as our request
     * crossed its close). A Go Micro server handles each request on its own
     * connection-independent path and never closes a connection with an
     * answer pending, so such a failure means the request was never read,
     * and resending it on a new connection is safe (Go's net/http Transport
     * retries in the same situation). The one case it is not: a server
     * process that dies mid-request. *sent is reset for the second attempt,
     * since the first copy is deemed undelivered; a failed re-dial therefore
     * reports *sent == 0 and the caller may try another node.
     */
    for (int attempt = 0;; attempt++) {
        if (c.fd < 0) {
            int64_t dd = deadline;
            if (p->cfg.dial_timeout_ms > 0) {
                int64_t dl = micro__now_ms() + p->cfg.dial_timeout_ms;
                if (dl < dd) {
                    dd = dl;
                }
            }
            rc = dial(addr, dd, &c.fd);
            if (rc != 0) {
                c.fd = -1;
                goto done;
            }
            c.dialed_at_ms = micro__now_ms();
            c.rcvtimeo_for = -1;
            reused = false;
        }
        struct iovec iov[2];
        int iovcnt = 1;
        iov[0].iov_base = head;
        iov[0].iov_len = pl.head_size;
        if (pl.body_len > 0) {
            iov[1].iov_base = req->body.data;
            iov[1].iov_len = pl.body_len;
            iovcnt = 2;
        }
        xfer_out xo = { false, false };
        rc = send_all(c.fd, iov, iovcnt, deadline, sent);
        if (rc == 0) {
            rc = recv_response(
                &c, addr, &p->cfg, timeout_ms, deadline, rsp, &xo);
        }
        if (rc == 0) {
            if (xo.reusable) {
                pool_put(p, addr, alen, h, c);
            } else {
                close(c.fd);
            }
            c.fd = -1;
            goto done;
        }
        close(c.fd);
        c.fd = -1;
        bool stale = reused && !xo.got_bytes &&
                     (rc == MICRO_EPIPE || rc == MICRO_ECONNRESET);
        if (!stale || attempt > 0) {
            goto done;
        }
        MICRO_LOGF(MICRO_LOG_DEBUG, HC_COMPONENT,
            "%s: pooled connection was closed (%s); redialling", addr,
            micro_strerror(rc));
        if (sent != NULL) {
            *sent = 0;
        }
    }
done:
    if (head != stack_head) {
        micro__free(head);
    }
    return rc;
}
