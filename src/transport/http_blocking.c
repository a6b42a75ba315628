/*
 * The http transport's blocking round trip: the synchronous call path's
 * fast path (no loop hop: a call costs two system calls on a pooled
 * connection, sendmsg and recv). The request bytes come from
 * micro__h1_mucp_request_head and the response goes through the h1 parser,
 * the same code the transport's sockets run on the loop; only the waiting
 * differs (poll and SO_RCVTIMEO here).
 *
 * Any number of threads call micro__http_roundtrip at once; each works on
 * its own socket. The only shared state is the pool of idle connections,
 * guarded by one mutex that is never held across a system call that can
 * block.
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

#include "core/msg_internal.h"
#include "core/strtab.h"
#include "io/stream.h"
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
    micro__http_cfg cfg;
    micro__strtab buckets; /* of hc_bucket, by address */
};

int
micro__http_pool_new(micro__http_pool **out, const micro__http_cfg *cfg)
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
        micro__http_cfg_load(&p->cfg, NULL);
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
            if (p->cfg.pool_ttl_ms > 0 && now - c.dialed_at_ms > p->cfg.pool_ttl_ms) {
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
    if (p->cfg.pool_size > 0) {
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
        if (b != NULL && b->n < p->cfg.pool_size) {
            if (b->n == b->cap) {
                size_t nc = b->cap ? b->cap * 2 : 4;
                if (nc > p->cfg.pool_size) {
                    nc = p->cfg.pool_size;
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
    char port[8];
    int pn = 0;
    struct sockaddr_storage ss;
    int rc = micro__addr_parse(addr, host, sizeof(host), &pn, &ss);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in);
        return dial_sockaddr((const struct sockaddr *) &ss, sl, deadline,
            fd_out);
    }
    snprintf(port, sizeof(port), "%d", pn);
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
 * Response
 * --------------------------------------------------------------------- */

typedef struct hc_rsp {
    const char *addr;
    micro_msg *msg;      /* the complete response */
    bool keep_alive;
    bool leftover;       /* bytes followed the response */
} hc_rsp;

static int
rsp_on_head(void *arg, micro__h1_head *h)
{
    hc_rsp *r = arg;
    int rc = micro__http_check_status(h, r->addr);
    return rc != 0 ? rc : MICRO__H1_BUFFER;
}

static int
rsp_on_end(void *arg, micro_msg *msg, bool keep_alive)
{
    hc_rsp *r = arg;
    r->msg = msg;
    r->keep_alive = keep_alive;
    /* Stop right after this response: bytes after it show as unparsed. */
    return MICRO__H1_PAUSE;
}

static const micro__h1_cbs rsp_cbs = {
    .on_head = rsp_on_head,
    .on_end = rsp_on_end,
};

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
recv_response(hc_conn *c, const char *addr, const micro__h1_limits *lim,
    int64_t timeout_ms, int64_t deadline, micro_msg **rsp, xfer_out *xo)
{
    int fd = c->fd;
    hc_rsp r = { .addr = addr };
    micro__h1_parser p;
    micro__h1_parser_init(&p, MICRO__H1_RESPONSE, lim, &rsp_cbs, &r);
    char buf[HC_RECV_BUF];
    int rc = 0;
    /* Right after the request nothing has arrived yet: the first read
     * sleeps in recv() itself (SO_RCVTIMEO bounds it). After that, a full
     * buffer means more is probably queued, so read first; otherwise wait
     * in poll() for what is left of the deadline. */
    bool blocking = arm_rcvtimeo(c, timeout_ms, deadline) == 0;
    bool must_wait = !blocking;
    while (r.msg == NULL) {
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
        if (n == 0) {
            rc = micro__h1_parse_eof(&p);
            if (rc == 0 && r.msg == NULL) {
                rc = MICRO_ECONNRESET;
            }
            r.keep_alive = false;
            break;
        }
        ssize_t used = micro__h1_parse(&p, buf, (size_t) n);
        if (used < 0) {
            rc = (int) used;
            break;
        }
        r.leftover = (size_t) used < (size_t) n;
        must_wait = (size_t) n < sizeof(buf);
    }
    xo->got_bytes = p.got_bytes;
    micro__h1_parser_fini(&p);
    if (r.msg != NULL) {
        /* A Go Micro server never sends unsolicited bytes: a connection
         * with bytes after the response is out of step and not reused. Nor
         * is one after an error: Go Micro's client closes those. */
        xo->reusable = r.keep_alive && !r.leftover &&
            micro_msg_header(r.msg, "Micro-Error") == NULL;
        *rsp = r.msg;
        return 0;
    }
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
    int64_t deadline = timeout_ms > 0 && timeout_ms < INT64_MAX - start
        ? start + timeout_ms
        : HC_NO_DEADLINE;
    size_t alen = strlen(addr);
    uint64_t h = micro__strtab_hash(addr, alen);

    size_t head_size = 0;
    char stack_head[HC_HEAD_STACK];
    char *head = stack_head;
    int rc = micro__h1_mucp_request_head(addr, req, stack_head,
        sizeof(stack_head), &head_size);
    if (rc == MICRO_EMSGSIZE) { /* a head too big for the stack: rare */
        head = micro__malloc(head_size);
        if (head == NULL) {
            return MICRO_ENOMEM;
        }
        rc = micro__h1_mucp_request_head(addr, req, head, head_size,
            &head_size);
    }
    if (rc != 0) {
        goto done;
    }
    size_t body_len = 0;
    const void *body = micro_msg_body(req, &body_len);

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
     * crossed its close). A Go Micro server never closes a connection with
     * an answer pending, so such a failure means the request was never
     * read, and resending it on a new connection is safe (Go's net/http
     * Transport retries in the same situation). *sent is reset for the
     * second attempt, since the first copy is deemed undelivered; a failed
     * re-dial therefore reports *sent == 0 and the caller may try another
     * node. The socket side (transport.c) applies the same rule.
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
        iov[0].iov_len = head_size;
        if (body_len > 0) {
            iov[1].iov_base = (void *) body;
            iov[1].iov_len = body_len;
            iovcnt = 2;
        }
        xfer_out xo = { false, false };
        rc = send_all(c.fd, iov, iovcnt, deadline, sent);
        if (rc == 0) {
            rc = recv_response(
                &c, addr, &p->cfg.lim, timeout_ms, deadline, rsp, &xo);
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
