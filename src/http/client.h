/*
 * The general HTTP/1.1 client on a loop (layer 2): any method and target,
 * request bodies whole or streamed in chunks, responses delivered as they
 * arrive (the head, then body pieces, then the completion), over the
 * connections of http/conn.c and the TCP dial of io/tcp.c. The HTTP
 * broker publishes with it; the etcd JSON gateway, Consul and the gateway
 * are meant to (an etcd watch is one endless chunked response: on_body
 * sees each piece when it arrives).
 *
 * A client belongs to one loop and keeps that loop's pool of idle
 * keep-alive connections, keyed by address (client_pool_size per address,
 * each kept at most client_pool_ttl after it was dialled). One exchange
 * per connection at a time; no pipelining.
 *
 * A call is an aio operation (core/aio.h): the owner fills a
 * micro__http_call, initialises an aio (callback, optional deadline) and
 * starts micro__http_call_start with it; the aio completes exactly once,
 * on the loop thread, never inside the start, with a->rc and a->out ==
 * the call. Cancel with micro__aio_cancel. micro__http_call_wait is the
 * blocking form for threads other than the loop's.
 *
 * The stale-connection rule. A call that fails on a connection taken from
 * the pool before any byte of its response arrived is retried once, on a
 * newly dialled connection, when
 *   - its method is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or
 *     the caller marked it replayable (a duplicate is harmless), or
 *   - nothing of it reached the socket (the connection refused the first
 *     write: the peer cannot have seen it).
 * Otherwise the error is the call's (MICRO_ECONNRESET for a close with no
 * answer): a POST that may have been processed is never sent twice behind
 * the caller's back. A freshly dialled connection is never retried.
 *
 * Not installed. Loop thread only, except where a function says otherwise.
 */
#ifndef CMICRO_HTTP_CLIENT_H
#define CMICRO_HTTP_CLIENT_H

#include "core/aio.h"
#include "http/h1.h"

typedef struct micro__http_client micro__http_client;
typedef struct micro__http_call micro__http_call;
typedef struct micro__hc_conn micro__hc_conn;

typedef struct micro__http_client_cfg {
    micro__h1_limits lim;    /* response head limits; max_body: buffered */
    size_t pool_size;        /* idle connections per address; 0: none */
    int64_t pool_ttl_ms;     /* a connection's life since dial; 0: 1 min */
    int64_t dial_timeout_ms; /* 0: 5 s (the call's deadline also bounds) */
    /* A client TLS context for https:// urls and calls with tls set
     * (referenced by the client); NULL: one is made on first use from
     * tls_conf (copied), or, without it, one verifying with the system's
     * CAs. Made lazily, so that a process that never speaks TLS never
     * initialises OpenSSL. */
    struct micro__tls_ctx *tls;
    const struct micro__tls_conf *tls_conf;
} micro__http_client_cfg;

/* Defaults, then the options that are set: client_pool_size,
 * client_pool_ttl, client_dial_timeout, transport_max_header_size,
 * transport_max_headers, transport_max_message_size. opts may be NULL. */
void micro__http_client_cfg_load(micro__http_client_cfg *cfg,
    const micro_options *opts);

/* Create a client on loop (cfg copied). Any thread. */
int micro__http_client_new(micro__http_client **out, micro_loop *loop,
    const micro__http_client_cfg *cfg);
/* Cancel its pending calls (they complete with MICRO_ECANCELED), close
 * its connections, free. Any thread but the loop's when calls may be
 * pending (it waits for the loop); on the loop thread it works directly.
 * NULL is a no-op. If the loop is freed first, pending calls complete
 * with MICRO_ECANCELED and the client becomes inert (still to be freed). */
void micro__http_client_free(micro__http_client *c);
micro_loop *micro__http_client_loop(const micro__http_client *c);
/* Idle connections in the pool (loop thread; tests). */
size_t micro__http_client_idle(const micro__http_client *c);

/* The response head, once it arrived (1xx interim answers are skipped). */
typedef void (*micro__http_head_fn)(void *arg, micro__http_call *call);
/* Body bytes as they arrive (valid for the call). A negative return
 * aborts the call with that code. */
typedef int (*micro__http_body_fn)(void *arg, micro__http_call *call,
    const char *p, size_t n);

/*
 * One request and its response. Zero it, fill the "in" part, start it.
 * Everything "in" is borrowed until the aio completes; the call itself
 * must stay in place until then.
 */
struct micro__http_call {
    /* in */
    micro__http_client *client;
    const char *method; /* "GET", "POST", ...; NULL: GET */
    /* Either url "http://host:port/path?query" (default port 80) or
     * "https://..." (443; TLS with the client's context), or
     * addr "host:port" (a comma-separated list is tried in order when a
     * dial fails) with target "/path?query" (NULL: "/"). */
    const char *url;
    const char *addr;
    const char *target;
    const micro_msg *headers; /* may be NULL; framing fields are ours */
    const void *body;         /* whole body (Content-Length), or NULL */
    size_t body_len;
    bool chunked;    /* the body comes in micro__http_call_write/_end */
    bool replayable; /* see the stale-connection rule */
    bool tls;        /* addr mode: TLS (a url says it with https) */
    micro__http_head_fn on_head; /* optional */
    micro__http_body_fn on_body; /* NULL: the body is buffered (max_body) */
    void *arg;
    /* out: valid from on_head (status, reason, rsp) and in the completion */
    unsigned status;
    char reason[64];
    /* The response fields, and its body when buffered. The call owns it;
     * take it by setting the pointer to NULL, else micro__http_call_fini
     * frees it. */
    micro_msg *rsp;
    bool reused; /* the last attempt ran on a pooled connection */
    int attempts;
    /* private */
    micro__aio *aio;
    struct hc_dial *dial; /* a dial in progress */
    micro__hc_conn *conn; /* the connection of the attempt */
    micro_buf head;       /* the request head, for every attempt */
    micro_buf pend;       /* chunks given before the connection is up */
    const char *method_s;
    const char *cur_addr; /* the address of the attempt (in addrs) */
    char *addrs;          /* the address list, NUL-separated (owned) */
    size_t addrs_len;
    char *host;           /* Host field (owned) */
    char *path;           /* target built from a url (owned) */
    bool head_only;
    bool use_tls;  /* this call runs over TLS */
    bool ended;    /* chunked body ended */
    bool flushed;  /* chunks reached a connection (no retry then) */
    bool got_head;
    bool done;
    micro__http_call *next_pending, *prev_pending;
};

/* The aio start function: micro__aio_start(a, micro__http_call_start,
 * call) (or _post / _call). Errors complete the aio: MICRO_EINVAL
 * (malformed url, method, header), MICRO_ECONNREFUSED and other dial
 * errors, MICRO_ETIMEDOUT (the aio's deadline), MICRO_ECANCELED,
 * MICRO_ECONNRESET (closed with no or a cut-short answer), MICRO_EPROTO
 * (a malformed answer), MICRO_EMSGSIZE (over a limit: head, or a buffered
 * body over max_body), or an on_body code. The status of a complete
 * answer, whatever it is, is in call->status with rc 0. */
void micro__http_call_start(micro__aio *a, void *call);

/* A chunked body (call->chunked): queue p[0..n) (n > 0), then end it.
 * Bytes given before the connection is up wait in memory. Loop thread;
 * MICRO_EINVAL when the call is not a chunked one or has ended,
 * MICRO_ECLOSED once it completed. */
int micro__http_call_write(micro__http_call *call, const void *p, size_t n);
int micro__http_call_end(micro__http_call *call);
/* Bytes written to the connection and not yet sent (backpressure for a
 * streaming writer). */
size_t micro__http_call_unsent(const micro__http_call *call);

/* Free what the call holds (rsp unless taken). After completion. */
void micro__http_call_fini(micro__http_call *call);

/* Blocking: start call on its client's loop and wait (timeout_ms <= 0:
 * none). Returns the aio's rc. Any thread but the client's loop's
 * (MICRO_EINVAL there). */
int micro__http_call_wait(micro__http_call *call, int64_t timeout_ms);

#endif
