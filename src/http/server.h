/*
 * The general HTTP/1.1 server on a loop (layer 2), over the connections
 * of http/conn.c and the TCP listener of io/tcp.c. The HTTP broker's
 * subscriber endpoint uses it; the gateway is meant to.
 *
 * Requests arrive with method, target and header fields; the body is
 * buffered (up to lim.max_body, then 413) or streamed to on_body, as
 * on_head chooses. Each request is answered with a whole body or a
 * chunked one. A connection carries one exchange at a time: pipelined
 * requests wait (conn.c pause, exact to the message) and are answered in
 * order.
 *
 * Defences, all from the config:
 *  - read timeout: a request (or the first one after accept) must arrive
 *    whole within read_timeout_ms;
 *  - idle timeout: a connection with nothing in progress closes after
 *    idle_timeout_ms;
 *  - a connection cap: at max_conns the longest-idle connection is closed
 *    to make room; when none is idle the new one is refused (closed),
 *    counted, and logged at most once a second with the count;
 *  - a budget (max_partial) for buffered bodies still arriving, over all
 *    connections: beyond it 503 and close;
 *  - backpressure: a connection whose unsent output exceeds out_high is no
 *    longer read, and one whose output makes no progress for
 *    write_timeout_ms is closed (a peer that pipelines and never reads
 *    holds at most out_high of answers, for a bounded time);
 *  - Expect: 100-continue answered when the body is acceptable;
 *  - header blocks over lim.max_header bytes or lim.max_fields fields:
 *    431; malformed: 400; a body over lim.max_body: 413; each answered
 *    with Go's net/http text and a close, counted, and told to on_reject.
 *
 * Ownership of a request: the owner holds it from on_request (or from
 * on_head when it chose streaming) until it finishes it with exactly one
 * of micro__http_respond, micro__http_respond_end or micro__http_req_drop
 * (from the loop thread). If the connection goes first, on_abort says so
 * (optional), and the finish call still frees the request (returning
 * MICRO_ECLOSED). A request the owner does not hold is the server's.
 *
 * Threads: the loop's, for everything here but micro__http_server_stats.
 * Callbacks never run inside the call that started them. Not installed.
 */
#ifndef CMICRO_HTTP_SERVER_H
#define CMICRO_HTTP_SERVER_H

#include "http/h1.h"

typedef struct micro__http_server micro__http_server;
typedef struct micro__http_req micro__http_req;

typedef struct micro__http_server_cfg {
    micro__h1_limits lim;     /* head limits; max_body: buffered bodies */
    int64_t read_timeout_ms;  /* 0: 30 s */
    int64_t idle_timeout_ms;  /* 0: 2 min */
    int64_t write_timeout_ms; /* output without progress; 0: 30 s */
    size_t max_conns;         /* 0: 1024 */
    size_t max_partial;       /* 0: 64 MiB */
    size_t out_high;          /* 0: 256 KiB */
    struct micro__tls_ctx *tls; /* a server TLS context (referenced), or
                                 * NULL: plain HTTP */
} micro__http_server_cfg;

/* on_head's answer: stream the body to on_body (the owner holds the
 * request from then on); 0 buffers it for on_request. */
#define MICRO__HTTP_STREAM 1

typedef struct micro__http_server_cbs {
    /* Optional. A request head (headers in micro__http_req_headers,
     * borrowed for the call). Return 0 (buffer), MICRO__HTTP_STREAM, or
     * answer at once (micro__http_respond) and return 0: the body is then
     * not delivered and the connection closes after the answer. */
    int (*on_head)(void *arg, micro__http_req *r);
    /* Streamed body bytes (valid for the call). A negative return
     * refuses the request (400 and close). */
    int (*on_body)(void *arg, micro__http_req *r, const char *p, size_t n);
    /* Required. The request is complete (buffered: its body is in
     * micro__http_req_headers' message). The owner holds r now. */
    void (*on_request)(void *arg, micro__http_req *r);
    /* Optional. The connection of a request the owner holds is gone.
     * A connection waiting for its answer is not read (one exchange at a
     * time), so a peer's close is seen when the answer is written, not
     * before. */
    void (*on_abort)(void *arg, micro__http_req *r, int rc);
    /* Optional. Input refused with status (400, 413, 431, 503) from
     * remote; counted and logged, and answered right after this returns
     * (so a count taken here is in before the peer sees the answer). */
    void (*on_reject)(void *arg, const char *remote, int status, int rc);
} micro__http_server_cbs;

typedef struct micro__http_server_stats {
    uint64_t accepted, requests;
    uint64_t bad;        /* 400 */
    uint64_t too_large;  /* 413 */
    uint64_t header_too_large; /* 431 */
    uint64_t busy;       /* 503: the partial-body budget */
    uint64_t timeouts;   /* read and idle timeouts */
    uint64_t write_stalls; /* closed for output without progress */
    uint64_t refused;    /* over max_conns with none idle */
    uint64_t evicted;    /* idle ones closed to make room */
    uint64_t conns;      /* open now */
} micro__http_server_stats;

/*
 * Listen on addr ("host:port", ":port"; port 0 for any) on loop. cfg is
 * copied; cbs and arg are borrowed for the server's life. Loop thread.
 * Errors as micro__tcp_listen.
 */
int micro__http_server_new(micro__http_server **out, micro_loop *loop,
    const char *addr, const micro__http_server_cfg *cfg,
    const micro__http_server_cbs *cbs, void *arg);
/* The bound "ip:port" (borrowed). */
const char *micro__http_server_address(const micro__http_server *s);
/* Stop listening and close every connection; no callback runs after
 * this. Requests the owner holds stay valid until it finishes them; the
 * memory goes with the last one. Loop thread. NULL is a no-op. */
void micro__http_server_close(micro__http_server *s);
/* Any thread. */
void micro__http_server_stats_get(const micro__http_server *s,
    micro__http_server_stats *out);

/* --- the request (loop thread) --- */
const char *micro__http_req_method(const micro__http_req *r);
/* The request target as sent ("/path?query"). */
const char *micro__http_req_target(const micro__http_req *r);
/* The header fields (first value of each name), and once buffered the
 * body. Borrowed; NULL after micro__http_req_take. */
micro_msg *micro__http_req_headers(const micro__http_req *r);
/* Take the message (fields and buffered body); the caller frees it. */
micro_msg *micro__http_req_take(micro__http_req *r);
const char *micro__http_req_remote(const micro__http_req *r);
int64_t micro__http_req_content_length(const micro__http_req *r);
void micro__http_req_set_data(micro__http_req *r, void *data);
void *micro__http_req_data(const micro__http_req *r);
/* Unsent output of the request's connection (a streaming answer's
 * backpressure); 0 once the connection is gone. */
size_t micro__http_req_unsent(const micro__http_req *r);

/*
 * A whole answer: status line, fields of hdrs (may be NULL; framing
 * fields are ours), Content-Length and body (omitted for HEAD). Finishes
 * r. MICRO_ECLOSED when the connection is gone (r is freed all the same),
 * MICRO_EINVAL for a bad field name (then r is not finished).
 */
int micro__http_respond(micro__http_req *r, unsigned status,
    const char *reason, const micro_msg *hdrs, const void *body, size_t len);
/* A chunked answer: the head, chunks (n > 0), then the end, which
 * finishes r (a pure no-op body for HEAD). */
int micro__http_respond_start(micro__http_req *r, unsigned status,
    const char *reason, const micro_msg *hdrs);
int micro__http_respond_chunk(micro__http_req *r, const void *p, size_t n);
int micro__http_respond_end(micro__http_req *r);
/* Finish r without an answer: its connection closes. */
void micro__http_req_drop(micro__http_req *r);

#endif
