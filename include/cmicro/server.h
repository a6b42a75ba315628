#ifndef CMICRO_SERVER_H
#define CMICRO_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "error.h"
#include "loop.h"
#include "options.h"
#include "registry.h"
#include "stream.h"
#include "transport.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The RPC server (Go Micro's mucp server): routes "Handler.Method"
 * endpoints to handlers through a chain of wrappers.
 *
 * Threading: requests are read on the transport's loop thread; handlers run
 * on a worker pool (option "server_workers", default 16) so that they may
 * block, for example on a synchronous micro_client_call. A handler
 * registered with MICRO_HANDLER_INLINE runs on the loop thread instead and
 * must never block.
 */
typedef struct micro_server micro_server;
typedef struct micro_request micro_request;
typedef struct micro_response micro_response;

/* --- the request, borrowed by the handler for the call ------------- */
MICRO_API const char *micro_request_service(const micro_request *r);
/** "Handler.Method". */
MICRO_API const char *micro_request_endpoint(const micro_request *r);
MICRO_API const char *micro_request_content_type(const micro_request *r);
/** The decoded payload (envelopes removed). Never NULL; *len may be 0. */
MICRO_API const void *micro_request_body(const micro_request *r, size_t *len);
/** A header / metadata value, case-insensitive, or NULL. Metadata set by a
 *  Go Micro client arrives title-cased ("User-Id"): any case matches. */
MICRO_API const char *micro_request_header(
    const micro_request *r, const char *key);
MICRO_API size_t micro_request_header_count(const micro_request *r);
MICRO_API int micro_request_header_at(const micro_request *r, size_t i,
    const char **key, const char **value);
/** Absolute deadline (monotonic ms, see micro_now_ms), 0 when none. */
MICRO_API int64_t micro_request_deadline(const micro_request *r);
/** Milliseconds left before the deadline (INT64_MAX when none, <= 0 when
 *  past). A handler that calls other services passes this on. */
MICRO_API int64_t micro_request_remaining_ms(const micro_request *r);
/** Peer address "ip:port". */
MICRO_API const char *micro_request_remote(const micro_request *r);

/* --- the response, written by the handler --------------------------- */
/** Set the reply payload (copied). */
MICRO_API int micro_response_set_body(
    micro_response *r, const void *p, size_t n);
/** Set the reply payload, taking b's storage (b zeroed). */
MICRO_API void micro_response_take_body(micro_response *r, micro_buf *b);
/** Add a response header (copied). */
MICRO_API int micro_response_set_header(
    micro_response *r, const char *key, const char *value);
/**
 * Make the reply an error in Go Micro's shape. id NULL means the server's
 * name. Returns MICRO_EREMOTE so a handler can `return
 * micro_response_error(...)`.
 */
MICRO_API int micro_response_error(
    micro_response *r, const char *id, int32_t code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/**
 * A handler. Return 0 for success (the body set with
 * micro_response_set_body, or empty). A non-zero return without an error
 * set becomes a 500 {"id":server,"detail":micro_strerror(rc)}.
 */
typedef int (*micro_handler_fn)(
    micro_request *req, micro_response *rsp, void *arg);

/** A link in the wrapper chain; call micro_handler_next to continue. */
typedef struct micro_handler_chain micro_handler_chain;
typedef int (*micro_handler_wrapper_fn)(micro_request *req,
    micro_response *rsp, micro_handler_chain *next, void *arg);
MICRO_API int micro_handler_next(
    micro_handler_chain *next, micro_request *req, micro_response *rsp);

#define MICRO_HANDLER_INLINE 0x1u /* run on the loop thread; never block */
#define MICRO_HANDLER_INTERNAL 0x2u /* served but not advertised */

/**
 * One endpoint. Strings and values are copied at registration.
 *
 * ABI: the struct grows at its end. size is sizeof(micro_handler_desc) as
 * the caller compiled it (MICRO_HANDLER_DESC_INIT, or .size = sizeof(d));
 * 0 reads as the first version (this one, which ends at flags). Fields
 * added later are read only when size covers them.
 */
typedef struct micro_handler_desc {
    size_t size;
    const char *endpoint; /* "Handler.Method" */
    micro_handler_fn fn;
    void *arg;
    const micro_value *request;  /* for the registry record; may be NULL */
    const micro_value *response; /* may be NULL */
    unsigned flags;
} micro_handler_desc;

#define MICRO_HANDLER_DESC_INIT {.size = sizeof(micro_handler_desc)}

/**
 * A stream endpoint (Go Micro's `func(ctx, stream) error` handler),
 * driven by events so that a stream waiting for its next message holds no
 * thread. The callbacks of one stream never run concurrently and come in
 * order: on_open, on_msg for each client message, on_end once, on_close
 * last. They run on the worker pool, or on the loop thread with
 * MICRO_HANDLER_INLINE (then they must never block: use
 * micro_stream_send_async).
 *
 * The handler sends with micro_stream_send(_async) from any callback or
 * any thread, and ends the stream with micro_stream_close_send (Go Micro's
 * EOS) or micro_stream_fail. A callback that returns non-zero ends the
 * stream with an error (its own from micro_stream_fail, else 500 with
 * micro_strerror of the return), as a unary handler's return does.
 *
 * The first client message of a Go Micro stream is the request the client
 * was opened with, a placeholder that Go Micro's server discards: so does
 * this one (except with application/grpc), and on_msg sees what the client
 * sent after it. The registry record marks the endpoint {"stream":"true"}.
 */
typedef struct micro_stream_handler {
    /* sizeof(micro_stream_handler) as compiled; 0 reads as the first
     * version (this one, which ends at response). Fields added later are
     * read only when size covers them. */
    size_t size;
    const char *endpoint; /* "Handler.Method" */
    /* Optional: the stream opened (before any message). A server-streaming
     * handler may start sending here. */
    int (*on_open)(micro_stream *s, void *arg);
    /* Required: a message (the decoded payload, borrowed for the call). */
    int (*on_msg)(micro_stream *s, const void *body, size_t len, void *arg);
    /* Optional: the client's direction ended. rc MICRO_EOF: it
     * half-closed cleanly; the handler may still send, and must end the
     * stream (without on_end, the stream ends with EOS at once). Any other
     * rc: the stream is over (MICRO_ECANCELED the client closed it,
     * MICRO_ECONNRESET it died, MICRO_ETIMEDOUT its deadline passed,
     * MICRO_ECLOSED the server is stopping); sends fail from now on. */
    void (*on_end)(micro_stream *s, int rc, void *arg);
    /* Optional: the stream is finished and is freed after this returns:
     * release per-stream state. rc 0 for a clean end of both directions,
     * else the status that ended it. */
    void (*on_close)(micro_stream *s, int rc, void *arg);
    void *arg;
    unsigned flags; /* MICRO_HANDLER_INLINE, MICRO_HANDLER_INTERNAL */
    const micro_value *request;  /* for the registry record; may be NULL */
    const micro_value *response; /* may be NULL */
} micro_stream_handler;

#define MICRO_STREAM_HANDLER_INIT {.size = sizeof(micro_stream_handler)}

/** Server statistics. */
typedef struct micro_server_stats {
    uint64_t requests;
    uint64_t errors;       /* replies carrying Micro-Error */
    uint64_t unknown;      /* unknown endpoints */
    uint64_t codec_errors; /* unsupported content type / undecodable */
    uint64_t late;         /* handlers that finished after the deadline,
                              or requests answered 408 before a worker
                              could take them */
    uint64_t inflight;
    uint64_t dropped;      /* answers whose peer had gone, and stream
                              messages after the stream's end */
    uint64_t streams;      /* streams opened */
} micro_server_stats;

/* --- implementations ------------------------------------------------ */

#define MICRO_SERVER_ABI 2

/**
 * For implementers of a server protocol (Go Micro's server.Server). The
 * front end owns the name, id, handlers, wrappers, registration record and
 * statistics; an implementation receives requests in its own protocol,
 * routes each one with micro_server_dispatch, and answers. The built-in is
 * micro_server_mucp_ops (name "mucp": Go Micro's RPC over a transport).
 */
typedef struct micro_server_ops {
    uint32_t abi;      /* MICRO_SERVER_ABI */
    const char *name;  /* the MICRO_SERVER value */
    size_t state_size; /* allocated and zeroed by the front end */
    /* Required. All pointers are borrowed and outlive the server. */
    int (*init)(void *st, micro_server *srv, micro_loop *loop,
        micro_transport *transport, const micro_options *opts);
    /* Required. Start serving; thread: any. */
    int (*start)(void *st);
    /* Required. Stop accepting, wait up to drain_ms for in-flight work,
     * close. MICRO_ETIMEDOUT when work was still running. */
    int (*stop)(void *st, int64_t drain_ms);
    /* Required. The bound address ("ip:port"), or NULL. */
    const char *(*listen_address)(void *st);
    void (*fini)(void *st);
    /* --- ABI 2 ---------------------------------------------------- */
    /* The options the implementation reads (options.h: full Go Micro
     * names starting with "server_"), ended by MICRO_OPTION_END; NULL for
     * none. The core learns them from here for flags, env and --help. */
    const micro_option_desc *options;
} micro_server_ops;

MICRO_API extern const micro_server_ops micro_server_mucp_ops;
/** Go Micro's gRPC server (h2c; spec §2.2): paths /<pkg>.<Handler>/<Method>,
 *  application/grpc(+proto|+json), grpc-status trailers. */
MICRO_API extern const micro_server_ops micro_server_grpc_ops;

/**
 * One request to route, for implementations. Inputs are borrowed for the
 * call; outputs belong to the caller, who releases them with
 * micro_dispatch_clear.
 */
typedef struct micro_dispatch {
    const char *endpoint;      /* in: "Handler.Method" */
    const char *service;       /* in: may be NULL */
    const char *content_type;  /* in: may be NULL */
    const micro_msg *headers;  /* in: metadata; may be NULL */
    const void *body;          /* in: decoded payload */
    size_t len;
    int64_t deadline;          /* in: monotonic ms (micro_now_ms); 0 none */
    micro_buf reply;           /* out: reply payload */
    micro_msg *reply_headers;  /* out: headers the handler set, or NULL */
    micro_error *error;        /* out: set when the call failed */
} micro_dispatch;

/**
 * Route d through the wrappers to its handler and run it on the calling
 * thread. Returns 0 (d->reply set) or MICRO_EREMOTE (d->error set: unknown
 * endpoint 404, ill-formed 400, deadline 408, or the handler's error).
 * Thread: any; may block as long as the handler does.
 */
MICRO_API int micro_server_dispatch(micro_server *s, micro_dispatch *d);
MICRO_API void micro_dispatch_clear(micro_dispatch *d);

/** Create a server from an ops table (micro_server_new uses mucp). */
MICRO_API int micro_server_new_with_ops(micro_server **out,
    const micro_server_ops *ops, micro_loop *loop,
    micro_transport *transport, const micro_options *opts);
/** The options the server was created with (borrowed). */
MICRO_API const micro_options *micro_server_options(const micro_server *s);

/**
 * Options read: "server_name", "server_version", "server_id",
 * "server_address", "server_advertise", "server_metadata", "server_workers",
 * plus the transport's. transport and loop are borrowed.
 */
MICRO_API int micro_server_new(micro_server **out, micro_loop *loop,
    micro_transport *transport, const micro_options *opts);
/** Stop if needed, wait for handlers still running, free.
 *  Thread: any but the loop's. */
MICRO_API void micro_server_free(micro_server *s);
/** Register an endpoint. Before start only. MICRO_EEXIST if taken. */
MICRO_API int micro_server_handle(
    micro_server *s, const micro_handler_desc *desc);
/** Register a stream endpoint. Before start only. MICRO_EEXIST if the
 *  endpoint is taken (by a unary or a stream handler). */
MICRO_API int micro_server_handle_stream(
    micro_server *s, const micro_stream_handler *h);
/**
 * Append a wrapper (outermost first). Before start only. Wrappers run for
 * every unary call, and once for each stream as it opens (on its event
 * thread, around on_open; the request has the opening's metadata and no
 * body, and what a wrapper puts in the response other than an error is
 * not sent). A wrapper that sets an error refuses the stream with it; one
 * that returns without calling micro_handler_next ends it cleanly; either
 * way none of the handler's callbacks run for that stream.
 */
MICRO_API int micro_server_wrap(
    micro_server *s, micro_handler_wrapper_fn fn, void *arg);
/** Listen and serve. Thread: any. */
MICRO_API int micro_server_start(micro_server *s);
/**
 * Stop accepting, wait up to drain_ms for in-flight requests and streams
 * to finish (streams are told first: they end with 503, their handlers see
 * on_end(MICRO_ECLOSED)), then close every connection. MICRO_ETIMEDOUT
 * when work was still running: its answers are dropped (counted), and
 * micro_server_free waits for those handlers to return before freeing
 * anything they can touch. Thread: any but the loop's.
 */
MICRO_API int micro_server_stop(micro_server *s, int64_t drain_ms);
/** The address the server is reachable at ("ip:port", advertised). */
MICRO_API const char *micro_server_address(const micro_server *s);
MICRO_API const char *micro_server_name(const micro_server *s);
/** The record this server registers (caller clears). */
MICRO_API int micro_server_record(
    const micro_server *s, micro_registry_service *out);
MICRO_API void micro_server_get_stats(
    micro_server *s, micro_server_stats *out);

/** Monotonic milliseconds (the clock of deadlines). */
MICRO_API int64_t micro_now_ms(void);

/* --- subscribers (Go Micro's micro.RegisterSubscriber) --------------- */

/**
 * A subscriber handler. msg is the event seen as a request, borrowed for
 * the call: micro_request_body is the payload decoded by the message's
 * Content-Type (default application/protobuf, as Go Micro), the headers
 * are the message header (Content-Type, Micro-Topic, Micro-ID, metadata),
 * micro_request_topic the topic. A non-zero return is counted and logged.
 * Runs on the subscription's delivery thread (broker events) or on the
 * server's event workers (events over the transport); it may block.
 */
typedef int (*micro_subscriber_fn)(micro_request *msg, void *arg);

/** A link in the subscriber wrapper chain; call micro_subscriber_next. */
typedef struct micro_subscriber_chain micro_subscriber_chain;
typedef int (*micro_subscriber_wrapper_fn)(micro_request *msg,
    micro_subscriber_chain *next, void *arg);
MICRO_API int micro_subscriber_next(
    micro_subscriber_chain *next, micro_request *msg);

/**
 * One subscriber. Strings and values are copied at registration.
 * ABI: as micro_handler_desc; size 0 reads as the first version (this
 * one, which ends at queue_limit).
 */
typedef struct micro_subscriber_desc {
    size_t size; /* sizeof(micro_subscriber_desc) as compiled, or 0 */
    const char *topic;
    const char *queue;  /* queue group; NULL: every instance gets each */
    micro_subscriber_fn fn;
    void *arg;
    const char *name;   /* endpoint name in the registry; NULL: the topic */
    const micro_value *request; /* message type for the record; may be NULL */
    size_t queue_limit; /* bounded delivery queue; 0: the broker default */
} micro_subscriber_desc;

#define MICRO_SUBSCRIBER_DESC_INIT {.size = sizeof(micro_subscriber_desc)}

typedef struct micro_subscriber_stats {
    uint64_t events;           /* handler calls */
    uint64_t errors;           /* handler calls that failed */
    uint64_t undecodable;      /* events that reached no handler */
    uint64_t transport_events; /* events that came over the transport */
} micro_subscriber_stats;

/** The topic of a subscriber's event (Micro-Topic). */
MICRO_API const char *micro_request_topic(const micro_request *r);
/**
 * Add a subscriber. Its endpoint is advertised in the registry record
 * (metadata {"topic":T,"subscriber":"true"}). Before start; the broker
 * subscription is made by micro_server_start_subscribers.
 */
MICRO_API int micro_server_subscribe(
    micro_server *s, const micro_subscriber_desc *desc);
/** Append a subscriber wrapper (outermost first). Before start only. */
MICRO_API int micro_server_wrap_subscriber(
    micro_server *s, micro_subscriber_wrapper_fn fn, void *arg);
/** The broker subscribers use (borrowed; outlives the server). Before
 *  micro_server_start_subscribers. */
MICRO_API int micro_server_set_broker(micro_server *s, micro_broker *b);
MICRO_API micro_broker *micro_server_broker(const micro_server *s);
/** Subscribe every subscriber on the broker (the service does it after
 *  registering). Thread: any. */
MICRO_API int micro_server_start_subscribers(micro_server *s);
/** Remove the broker subscriptions (before deregistering). */
MICRO_API void micro_server_stop_subscribers(micro_server *s);
MICRO_API void micro_server_get_subscriber_stats(
    micro_server *s, micro_subscriber_stats *out);

#ifdef __cplusplus
}
#endif
#endif
