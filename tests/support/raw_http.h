/*
 * A raw HTTP/1.1 peer for tests that must write bytes no well-behaved
 * client would (hostile and malformed input): a blocking-free socket with
 * a receive buffer, responses framed by Content-Length. Not thread-safe;
 * one raw per thread.
 */
#ifndef CMICRO_TESTS_RAW_HTTP_H
#define CMICRO_TESTS_RAW_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <cmicro/error.h>

typedef struct raw {
    int fd;
    char *buf; /* received, not yet consumed; NUL-terminated */
    size_t len, cap;
    int closed; /* 1: EOF, 2: reset/error */
} raw;

typedef struct raw_rsp {
    int status;
    char head[16384]; /* status line + headers, NUL-terminated */
    char body[8192];  /* the first sizeof-1 bytes, NUL-terminated */
    size_t body_len;  /* the whole body's length */
} raw_rsp;

/* Connect to 127.0.0.1:<port of addr> (non-blocking afterwards): 0, or
 * -1 with nothing to close. */
int raw_connect(raw *r, const char *addr);
void raw_close(raw *r);
/* Take what has arrived, without waiting (the buffer grows to 8 MiB; a
 * flood's tail beyond it is dropped): 1 bytes came, 0 none, -1 closed. */
int raw_take(raw *r);
/* Wait up to ms for bytes: 1 when some came, 0 on timeout, -1 closed. */
int raw_fill(raw *r, int ms);
/* Send p within ms, buffering what arrives meanwhile (a peer that closes
 * early is not an error here). Bytes sent. */
size_t raw_send_ms(raw *r, const void *p, size_t n, int ms);
/* raw_send_ms within 10 s. */
size_t raw_send(raw *r, const void *p, size_t n);
size_t raw_send_str(raw *r, const char *s);
/* One response within ms: 0; -1 when the connection closed first (what
 * was buffered held no whole answer); -2 on timeout. Consumed from
 * r->buf. */
int raw_read_response(raw *r, raw_rsp *rsp, int ms);
/* Wait until the peer closes: the ms it took, or -1 on timeout. */
int64_t raw_wait_closed(raw *r, int ms);
/* A header value of the response (name without case) in out, or NULL. */
const char *rsp_header(const raw_rsp *rsp, const char *name, char *out,
    size_t cap);
/* The response's Micro-Error, parsed (caller frees), or NULL. */
micro_error *rsp_error(const raw_rsp *rsp);

#endif
