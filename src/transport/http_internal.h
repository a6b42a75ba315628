/* Internal to the http transport: shared by http.c (server side) and
 * http_client.c (client side). */
#ifndef CMICRO_HTTP_INTERNAL_H
#define CMICRO_HTTP_INTERNAL_H

#include "core/internal.h"

#include <sys/socket.h>

#include <http_parser.h>

/* A pool of idle keep-alive client connections, keyed by address.
 * Thread-safe: every function may be called from any thread. */
typedef struct micro__http_pool micro__http_pool;

typedef struct micro__http_pool_cfg {
    size_t size;             /* idle connections kept per address (100) */
    int64_t ttl_ms;          /* a connection older than this (since dial)
                                is closed instead of reused (60000) */
    int64_t dial_timeout_ms; /* connect timeout (5000) */
    size_t max_message;      /* largest response body accepted (4 MiB) */
    size_t max_header;       /* largest response header block (1 MiB) */
} micro__http_pool_cfg;

int micro__http_pool_new(micro__http_pool **out,
    const micro__http_pool_cfg *cfg);
void micro__http_pool_free(micro__http_pool *p);

/*
 * One request/response exchange with addr ("host:port", host an IPv4/IPv6
 * literal or a name) on a pooled connection (or a new one). Blocks the
 * calling thread for at most timeout_ms in total (dial included).
 * req is borrowed; on success *rsp is a new message the caller frees.
 * *sent is set to 1 as soon as any request byte was written.
 * The connection goes back to the pool only after a complete, successful
 * exchange whose response does not carry Micro-Error and no
 * "Connection: close"; on any error it is closed.
 * Errors: MICRO_ETIMEDOUT, MICRO_ECONNREFUSED, MICRO_ECONNRESET,
 * MICRO_EPROTO (unparsable response, or status other than 200: then the
 * status line text is logged), MICRO_EMSGSIZE, MICRO_EINVAL (bad address),
 * MICRO_ENOMEM, other -errno.
 */
int micro__http_roundtrip(micro__http_pool *p, const char *addr,
    const micro_msg *req, int64_t timeout_ms, micro_msg **rsp, int *sent);

/*
 * Parse a dial address "host:port", "[v6]:port" or ":port": host is
 * copied (NUL-terminated, brackets removed) and *port points into addr.
 * Returns 1 with *ss and *sslen filled when host is an IPv4 or IPv6
 * literal and the port numeric (no resolver needed), 0 when the name must
 * be resolved (getaddrinfo; an empty host means the local system),
 * MICRO_EINVAL when addr is malformed (a bare IPv6 address needs
 * brackets, as in Go).
 */
int micro__http_addr_parse(const char *addr, char *host, size_t hcap,
    const char **port, struct sockaddr_storage *ss, socklen_t *sslen);

/*
 * The client's response parser, shared by the blocking round trip
 * (http_client.c) and the loop-native one (http_async.c), so both accept
 * exactly the same responses: status 200 only (anything else is
 * MICRO_EPROTO, its status line logged by micro__http_rsp_end), headers
 * with the first value of a repeated key kept and trailers ignored, a
 * header block within cfg->max_header and a body within cfg->max_message
 * (MICRO_EMSGSIZE), Content-Length, chunked or until-EOF bodies.
 * A plain value: begin, feed until it returns 1 or an error, take on 1,
 * then always end.
 */
typedef struct micro__http_rsp {
    http_parser hp;
    const micro__http_pool_cfg *cfg;
    micro_msg *msg;
    micro_buf body;
    micro_buf kv; /* current header: key, NUL, value */
    size_t klen;
    bool in_value;
    bool headers_done; /* later header callbacks are chunked trailers */
    bool complete;
    bool keep_alive;
    bool micro_error;
    bool got_bytes; /* any response byte arrived */
    bool leftover;  /* bytes followed the response in the same read */
    size_t header_bytes;
    char status_text[64];
    size_t status_len;
    int err; /* set by a callback that failed */
} micro__http_rsp;

/* Start a response (cfg is borrowed for its life). MICRO_ENOMEM. */
int micro__http_rsp_begin(micro__http_rsp *r, const micro__http_pool_cfg *cfg);
/* Parse n more bytes; n == 0 means the peer closed the connection. 1 when
 * the response is complete (bytes after it are noted, not parsed), 0 when
 * more is needed, else MICRO_EPROTO, MICRO_EMSGSIZE, MICRO_ENOMEM or
 * MICRO_ECONNRESET (closed before the end). */
int micro__http_rsp_feed(micro__http_rsp *r, const char *p, size_t n);
/* After feed returned 1: the response (the caller frees it), and whether
 * the connection may carry another exchange: keep-alive, no Micro-Error
 * and nothing after the response. */
micro_msg *micro__http_rsp_take(micro__http_rsp *r, bool *reusable);
/* Release what take did not; rc is the exchange's result (its bad status
 * line is logged here). */
void micro__http_rsp_end(micro__http_rsp *r, const char *addr, int rc);

/*
 * The loop-native client (http_async.c): the transport's roundtrip_async
 * and cancel. Each loop that starts round trips gets its own context (a
 * pool of idle keep-alive connections keyed by address with the limits of
 * cfg, a read buffer, a timer for deferred completions), created on first
 * use and found through the loop's micro__loop_ext list. A context lives
 * until micro__http_async_shutdown closes it or its loop closes; either
 * way pending round trips complete with MICRO_ECANCELED.
 */
typedef struct micro__http_async micro__http_async;

/* cfg is copied. Any thread. */
int micro__http_async_new(micro__http_async **out,
    const micro__http_pool_cfg *cfg);
/* As micro_transport_ops.roundtrip_async: loop's thread. */
int micro__http_async_roundtrip(micro__http_async *a, micro_loop *loop,
    const char *addr, const micro_msg *req, int64_t timeout_ms,
    micro_transport_done_fn cb, void *arg, micro_transport_call **call);
/* As micro_transport_ops.cancel: the loop thread of call. */
void micro__http_async_cancel(micro__http_async *a, micro_transport_call *call);
/* Any thread: refuse new round trips and ask each loop's context to close
 * (a task posted to its loop). 1 once every context is gone, else 0: call
 * again later (micro_transport_free polls it through http_shutdown). */
int micro__http_async_shutdown(micro__http_async *a);
/* After shutdown returned 1. NULL is a no-op. */
void micro__http_async_free(micro__http_async *a);

/*
 * Serialise req as Go's http client does for Go Micro: "POST / HTTP/1.1",
 * Host, User-Agent (unless a header supplies one), Content-Length (or, for
 * an empty body, Transfer-Encoding: chunked with "0\r\n\r\n"), then every
 * header with its key canonicalised (micro_canonical_header_key), then the
 * body. Appends to out.
 */
int micro__http_write_request(micro_buf *out, const char *host,
    const micro_msg *req);

/* Serialise a response: "HTTP/1.1 200 OK", Content-Length (always),
 * canonicalised headers, body. Appends to out. */
int micro__http_write_response(micro_buf *out, const micro_msg *rsp);

/*
 * For the fuzz target: run p through the server's request parser
 * (http_parser with http.c's own callbacks), as one read of a new
 * connection, with the given limits (transport_max_header_size and
 * transport_max_message_size). *n_msgs is the number of complete requests
 * parsed; they are freed. 0 when every byte parsed; MICRO_EMSGSIZE when a
 * limit was exceeded (the server answers 413 or 431), MICRO_EPROTO when
 * malformed (400), MICRO_ENOMEM. Raises http_parser's process-wide header
 * limit as a transport would. Thread: any.
 */
int micro__http_parse_requests(const uint8_t *p, size_t n, size_t max_header,
    size_t max_body, size_t *n_msgs);

#endif
