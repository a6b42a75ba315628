/* The test HTTP server of http_srv.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <http_parser.h>

#include "support/http_srv.h"

/* Per-connection request parsing. */
typedef struct srv_req {
    micro_buf body;
    bool complete;
} srv_req;

static int
srv_on_body(http_parser *hp, const char *at, size_t len)
{
    srv_req *r = hp->data;
    return micro_buf_append(&r->body, at, len) == 0 ? 0 : -1;
}

static int
srv_on_complete(http_parser *hp)
{
    srv_req *r = hp->data;
    r->complete = true;
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings srv_settings = {
    .on_body = srv_on_body,
    .on_message_complete = srv_on_complete,
};

static bool
write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        c += w;
        n -= (size_t) w;
    }
    return true;
}

static bool
srv_answer(t_srv_conn *c, srv_req *r, int nreq)
{
    t_srv *s = c->s;
    switch (s->mode) {
    case T_SRV_ECHO:
    case T_SRV_ECHO_CLOSE:
    case T_SRV_ECHO_HUSH:
    case T_SRV_DROP_REUSE: {
        if (s->mode == T_SRV_DROP_REUSE && c->index == 0 && nreq == 2) {
            return false;
        }
        if (s->mode == T_SRV_ECHO_HUSH && r->body.len == 4 &&
            memcmp(r->body.data, "hush", 4) == 0) {
            return true;
        }
        /* One write, so that Nagle plus delayed ACKs cannot stall it. */
        char head[128];
        int hl = snprintf(head, sizeof(head),
            "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
            "Content-Type: text/plain\r\n\r\n",
            r->body.len);
        micro_buf out = { 0 };
        bool ok = micro_buf_append(&out, head, (size_t) hl) == 0 &&
                  micro_buf_append(&out, r->body.data, r->body.len) == 0 &&
                  write_all(c->fd, out.data, out.len);
        micro_buf_clear(&out);
        return ok && s->mode != T_SRV_ECHO_CLOSE;
    }
    case T_SRV_CANNED:
        return write_all(c->fd, s->canned, s->canned_len);
    case T_SRV_CANNED_CLOSE:
        write_all(c->fd, s->canned, s->canned_len);
        return false;
    case T_SRV_SILENT:
        return true;
    case T_SRV_CLOSE_NOW:
        return false;
    }
    return false;
}

static void *
srv_conn_main(void *arg)
{
    t_srv_conn *c = arg;
    t_srv *s = c->s;
    http_parser hp;
    srv_req r;
    memset(&r, 0, sizeof(r));
    http_parser_init(&hp, HTTP_REQUEST);
    hp.data = &r;
    micro_buf raw = { 0 };
    bool capture = false;
    pthread_mutex_lock(&s->mu);
    if (!s->have_first) {
        s->have_first = true;
        capture = true;
    }
    pthread_mutex_unlock(&s->mu);
    int nreq = 0;
    char buf[8192];
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = { .fd = c->fd, .events = POLLIN, .revents = 0 };
        int pr = poll(&pfd, 1, 20);
        if (pr <= 0) {
            continue;
        }
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            break;
        }
        size_t off = 0;
        bool keep = true;
        while (off < (size_t) n && keep) {
            size_t np = http_parser_execute(
                &hp, &srv_settings, buf + off, (size_t) n - off);
            if (capture) {
                micro_buf_append(&raw, buf + off, np);
            }
            off += np;
            if (!r.complete) {
                if (HTTP_PARSER_ERRNO(&hp) != HPE_OK) {
                    keep = false;
                }
                break;
            }
            if (capture) {
                pthread_mutex_lock(&s->mu);
                s->first_req = raw;
                pthread_mutex_unlock(&s->mu);
                memset(&raw, 0, sizeof(raw));
                capture = false;
            }
            nreq++;
            atomic_fetch_add(&s->requests, 1);
            keep = srv_answer(c, &r, nreq);
            r.body.len = 0;
            r.complete = false;
            http_parser_init(&hp, HTTP_REQUEST);
            hp.data = &r;
        }
        if (!keep) {
            break;
        }
    }
    micro_buf_clear(&raw);
    micro_buf_clear(&r.body);
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    c->fd = -1;
    return NULL;
}

static void *
srv_accept_main(void *arg)
{
    t_srv *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = { .fd = s->lfd, .events = POLLIN, .revents = 0 };
        if (poll(&pfd, 1, 20) <= 0) {
            continue;
        }
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        t_srv_conn *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            abort(); /* cmocka asserts belong to the main thread */
        }
        c->s = s;
        c->fd = fd;
        pthread_mutex_lock(&s->mu);
        if (s->nconns == T_SRV_MAX_CONNS) {
            pthread_mutex_unlock(&s->mu);
            close(fd);
            free(c);
            continue;
        }
        c->index = atomic_fetch_add(&s->accepts, 1);
        s->conns[s->nconns++] = c;
        pthread_create(&c->thr, NULL, srv_conn_main, c);
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

t_srv *
t_srv_start_family(int family, t_srv_mode mode, const char *canned)
{
    int lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        return NULL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    if (family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_loopback;
        sl = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof(*s4);
    }
    if (bind(lfd, (struct sockaddr *) &ss, sl) != 0 || listen(lfd, 128) != 0 ||
        getsockname(lfd, (struct sockaddr *) &ss, &sl) != 0) {
        close(lfd);
        return NULL;
    }
    t_srv *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->lfd = lfd;
    s->mode = mode;
    s->canned = canned;
    s->canned_len = canned ? strlen(canned) : 0;
    pthread_mutex_init(&s->mu, NULL);
    if (family == AF_INET6) {
        snprintf(s->addr, sizeof(s->addr), "[::1]:%u",
            (unsigned) ntohs(((struct sockaddr_in6 *) &ss)->sin6_port));
    } else {
        snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u",
            (unsigned) ntohs(((struct sockaddr_in *) &ss)->sin_port));
    }
    pthread_create(&s->acceptor, NULL, srv_accept_main, s);
    return s;
}

t_srv *
t_srv_start(t_srv_mode mode, const char *canned)
{
    t_srv *s = t_srv_start_family(AF_INET, mode, canned);
    assert_non_null(s);
    return s;
}

void
t_srv_stop(t_srv *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->acceptor, NULL);
    for (int i = 0; i < s->nconns; i++) {
        pthread_join(s->conns[i]->thr, NULL);
        free(s->conns[i]);
    }
    close(s->lfd);
    micro_buf_clear(&s->first_req);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

