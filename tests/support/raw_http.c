/* A raw HTTP/1.1 peer for tests (raw_http.h). */
#include "support/raw_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/support.h"

void
raw_close(raw *r)
{
    if (r->fd >= 0) {
        close(r->fd);
    }
    r->fd = -1;
    free(r->buf);
    r->buf = NULL;
}

int
raw_connect(raw *r, const char *addr)
{
    memset(r, 0, sizeof(*r));
    r->fd = -1;
    const char *colon = strrchr(addr, ':');
    if (colon == NULL) {
        return -1;
    }
    struct sockaddr_in a = {.sin_family = AF_INET,
        .sin_port = htons((uint16_t) strtol(colon + 1, NULL, 10))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->cap = 1 << 16;
    r->buf = malloc(r->cap);
    if (r->buf == NULL) {
        return -1;
    }
    r->buf[0] = '\0';
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (r->fd < 0 ||
        connect(r->fd, (struct sockaddr *) &a, sizeof(a)) != 0) {
        raw_close(r);
        return -1;
    }
    fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK);
    return 0;
}

/* Take what is there (up to a cap: a flood's tail is not kept). */
int
raw_take(raw *r)
{
    char tmp[16384];
    ssize_t n = recv(r->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (n == 0) {
        r->closed = 1;
        return -1;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return 0;
        }
        r->closed = 2;
        return -1;
    }
    if (r->len + (size_t) n + 1 > r->cap && r->cap < (8u << 20)) {
        size_t nc = r->cap * 2;
        while (nc < r->len + (size_t) n + 1) {
            nc *= 2;
        }
        char *nb = realloc(r->buf, nc);
        if (nb != NULL) { /* else keep what fits */
            r->buf = nb;
            r->cap = nc;
        }
    }
    size_t keep = (size_t) n;
    if (keep > r->cap - 1 - r->len) {
        keep = r->cap - 1 - r->len;
    }
    memcpy(r->buf + r->len, tmp, keep);
    r->len += keep;
    r->buf[r->len] = '\0';
    return 1;
}

/* Wait up to ms for bytes: 1 when some came, 0 on timeout, -1 closed. */
int
raw_fill(raw *r, int ms)
{
    if (r->closed) {
        return -1;
    }
    struct pollfd p = {r->fd, POLLIN, 0};
    if (poll(&p, 1, ms < 0 ? 0 : ms) <= 0) {
        return 0;
    }
    return raw_take(r);
}

/* Send p within ms, reading what arrives meanwhile. Bytes sent. */
size_t
raw_send_ms(raw *r, const void *p, size_t n, int ms)
{
    size_t off = 0;
    int64_t until = t_now_ms() + ms;
    while (off < n && t_now_ms() < until && r->closed == 0) {
        struct pollfd pf = {r->fd, POLLOUT | POLLIN, 0};
        if (poll(&pf, 1, 50) <= 0) {
            continue;
        }
        if ((pf.revents & POLLIN) && raw_take(r) < 0) {
            break;
        }
        if (pf.revents & (POLLERR | POLLHUP)) {
            break;
        }
        if (pf.revents & POLLOUT) {
            ssize_t w = send(r->fd, (const char *) p + off, n - off,
                MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    continue;
                }
                break;
            }
            off += (size_t) w;
        }
    }
    return off;
}

size_t
raw_send(raw *r, const void *p, size_t n)
{
    return raw_send_ms(r, p, n, 10000);
}

size_t
raw_send_str(raw *r, const char *s)
{
    return raw_send(r, s, strlen(s));
}

const char *
rsp_header(const raw_rsp *rsp, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *line = strstr(rsp->head, "\r\n");
    while (line != NULL && line[2] != '\0') {
        line += 2;
        const char *end = strstr(line, "\r\n");
        if (end == NULL) {
            end = line + strlen(line);
        }
        if ((size_t) (end - line) > nl && strncasecmp(line, name, nl) == 0 &&
            line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ') {
                v++;
            }
            snprintf(out, cap, "%.*s", (int) (end - v), v);
            return out;
        }
        line = *end ? end : NULL;
    }
    return NULL;
}

/* One response (Content-Length framed) within ms: 0, -1 closed first, -2
 * timeout. Consumed from r->buf. */
int
raw_read_response(raw *r, raw_rsp *rsp, int ms)
{
    memset(rsp, 0, sizeof(*rsp));
    int64_t until = t_now_ms() + ms;
    for (;;) {
        char *eoh = r->len > 0 ? strstr(r->buf, "\r\n\r\n") : NULL;
        if (eoh != NULL) {
            size_t hl = (size_t) (eoh - r->buf) + 2;
            if (hl >= sizeof(rsp->head)) {
                hl = sizeof(rsp->head) - 1;
            }
            memcpy(rsp->head, r->buf, hl);
            rsp->head[hl] = '\0';
            char cl[32];
            size_t blen = rsp_header(rsp, "Content-Length", cl, sizeof(cl))
                ? (size_t) strtoul(cl, NULL, 10)
                : 0;
            size_t total = (size_t) (eoh - r->buf) + 4 + blen;
            if (r->len >= total) {
                if (sscanf(rsp->head, "HTTP/1.%*d %d", &rsp->status) != 1) {
                    return -1;
                }
                size_t keep = blen < sizeof(rsp->body) - 1
                    ? blen
                    : sizeof(rsp->body) - 1;
                memcpy(rsp->body, eoh + 4, keep);
                rsp->body[keep] = '\0';
                rsp->body_len = blen;
                memmove(r->buf, r->buf + total, r->len - total);
                r->len -= total;
                r->buf[r->len] = '\0';
                return 0;
            }
        }
        if (r->closed) {
            return -1; /* and what was buffered holds no whole answer */
        }
        int left = (int) (until - t_now_ms());
        if (left <= 0) {
            return -2;
        }
        raw_fill(r, left > 50 ? 50 : left);
    }
}

/* Wait until the peer closes; the ms it took, or -1 on timeout. */
int64_t
raw_wait_closed(raw *r, int ms)
{
    int64_t t0 = t_now_ms();
    int64_t until = t0 + ms;
    while (!r->closed) {
        int left = (int) (until - t_now_ms());
        if (left <= 0) {
            return -1;
        }
        raw_fill(r, left > 50 ? 50 : left);
    }
    return t_now_ms() - t0;
}

micro_error *
rsp_error(const raw_rsp *rsp)
{
    char v[2048];
    if (rsp_header(rsp, "Micro-Error", v, sizeof(v)) == NULL) {
        return NULL;
    }
    return micro_error_parse(v, strlen(v));
}
