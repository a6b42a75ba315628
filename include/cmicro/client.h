#ifndef CMICRO_CLIENT_H
#define CMICRO_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "error.h"
#include "loop.h"
#include "options.h"
#include "registry.h"
#include "selector.h"
#include "stream.h"
#include "transport.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The RPC client (Go Micro's mucp client). Resolves a service name through
 * the selector (or uses an explicit address), encodes with the codec of
 * the content type, sends on a pooled transport connection, applies the
 * per-call timeout, and retries with back-off.
 *
 * Threading: micro_client_call is synchronous and may be called from any
 * thread, including inside a handler. micro_client_call_async runs the
 * call on the caller's event loop without blocking it (mucp over a
 * transport with an asynchronous round trip, such as http, and no call
 * wrappers), otherwise on the client's worker threads, and completes on
 * the loop thread either way.
 */
typedef struct micro_client micro_client;

/** The result of one call (opaque). */
typedef struct micro_call micro_call;

/** Completion of micro_client_stream_async: rc 0 with the stream (the
 *  callee's, micro_stream_free), or an error with s NULL. */
typedef void (*micro_stream_open_cb)(void *arg, int rc, micro_stream *s);

/** One metadata pair sent as a header. */
typedef struct micro_header_kv {
    const char *key;
    const char *value;
} micro_header_kv;

/**
 * Per-call options; a zeroed struct (or NULL) means the client defaults.
 * Everything is borrowed for the call.
 *
 * ABI: the struct grows at its end. size is sizeof(micro_call_opts) as the
 * caller compiled it (MICRO_CALL_OPTS_INIT sets it); 0 reads as the first
 * version, which ends at filter, so fields after filter are read only when
 * size covers them.
 */
typedef struct micro_call_opts {
    size_t size;
    const char *address;      /* call this "host:port", skip the selector */
    const char *content_type; /* default "application/json" */
    int64_t timeout_ms;       /* per attempt; 0: "client_request_timeout" */
    int retries;              /* 0: default "client_retries"; n > 0: n
                                 retries; MICRO_CALL_NO_RETRY: none */
    const micro_header_kv *metadata; /* sent as headers */
    size_t n_metadata;
    const micro_select_filter *filter;
    /* --- size > offsetof(stream_timeout_ms) --- */
    /* Streams: a deadline for the whole stream, sent as Timeout (Go
     * Micro's StreamTimeout); 0: none. timeout_ms bounds the opening. */
    int64_t stream_timeout_ms;
} micro_call_opts;

#define MICRO_CALL_OPTS_INIT {.size = sizeof(micro_call_opts)}

#define MICRO_CALL_NO_RETRY (-1)

/** Which failures are retried (bit set; default 408 + dial errors). */
#define MICRO_RETRY_TIMEOUT 0x1u   /* remote or local 408 */
#define MICRO_RETRY_DIAL 0x2u      /* nothing was sent: refused, dial fail */
#define MICRO_RETRY_500 0x4u       /* remote 500s (Go Micro v1 did this) */
#define MICRO_RETRY_TRANSPORT 0x8u /* connection lost after sending */

/* --- the call result ------------------------------------------------- */
/** Reply payload (borrowed from call). */
MICRO_API const void *micro_call_body(const micro_call *c, size_t *len);
/** Reply header (borrowed) or NULL. */
MICRO_API const char *micro_call_header(const micro_call *c, const char *key);
/** The error when the call returned MICRO_EREMOTE (or a local error made
 *  into Go Micro's shape, e.g. 408 on timeout); NULL on success. */
MICRO_API const micro_error *micro_call_error(const micro_call *c);
/** Address of the node that answered (or was tried last). */
MICRO_API const char *micro_call_address(const micro_call *c);
/** Attempts made (1 + retries used). */
MICRO_API int micro_call_attempts(const micro_call *c);
MICRO_API void micro_call_free(micro_call *c);

/* --- wrappers ---------------------------------------------------------- */
typedef struct micro_call_chain micro_call_chain;
/** What a wrapper sees of a call. Fields are borrowed; a wrapper may
 *  replace them (pointing at its own storage) before calling next. */
typedef struct micro_call_req {
    const char *service;
    const char *endpoint;
    const void *body;
    size_t len;
    micro_call_opts opts;
} micro_call_req;
typedef int (*micro_call_wrapper_fn)(
    micro_call_req *req, micro_call *call, micro_call_chain *next, void *arg);
MICRO_API int micro_call_next(
    micro_call_chain *next, micro_call_req *req, micro_call *call);

/* --- implementations ------------------------------------------------ */

#define MICRO_CLIENT_ABI 3

/** Completion of an implementation's asynchronous call (ops.call_async):
 *  rc as micro_client_call's; the call object is the one passed in. */
typedef void (*micro_client_done_fn)(void *arg, int rc);

/**
 * For implementers of a client (Go Micro's client.Client): the front end
 * keeps the call objects, the wrapper chain and the bookkeeping of
 * asynchronous calls (cancellation when the client is freed or a loop
 * closes) and calls these at the end of the chain. The built-in is
 * micro_client_mucp_ops (name "mucp": Go Micro's RPC over a transport,
 * with selection and retries).
 */
typedef struct micro_client_ops {
    uint32_t abi;      /* MICRO_CLIENT_ABI (1 and 2 still accepted: they
                          end at fini and default_loop) */
    const char *name;  /* the MICRO_CLIENT value */
    size_t state_size; /* allocated and zeroed by the front end */
    /* Required. transport and selector (may be NULL) are borrowed. */
    int (*init)(void *st, micro_transport *transport,
        micro_selector *selector, const micro_options *opts);
    /* Required. Make the call, blocking; fill call with micro_call_set_*.
     * Return 0, MICRO_EREMOTE (with an error set) or another code. Any
     * thread, concurrently. */
    int (*call)(void *st, micro_call_req *req, micro_call *call);
    /* Optional: which failures to retry (MICRO_RETRY_* bits). */
    void (*set_retry_on)(void *st, unsigned bits);
    void (*fini)(void *st);
    /* --- ABI 2 ---------------------------------------------------- */
    /* Optional: the call on loop without blocking it (loop thread). req
     * and its strings stay valid until done runs; done runs exactly once
     * on loop's thread iff this returned 0, never inside it. *handle names
     * the call for cancel. Without it the front end runs call on its
     * threads. */
    int (*call_async)(void *st, micro_loop *loop, micro_call_req *req,
        micro_call *call, micro_client_done_fn done, void *arg,
        void **handle);
    /* Required with call_async: end that call now; done runs before this
     * returns, with MICRO_ECANCELED. Loop thread. */
    void (*cancel)(void *st, void *handle);
    /* Optional: open a stream on loop (loop thread; req valid until cb);
     * cb exactly once on loop's thread iff this returned 0, never inside
     * it; cancel(handle) ends it early. NULL: streams are MICRO_ENOTSUP. */
    int (*stream)(void *st, micro_loop *loop, micro_call_req *req,
        micro_stream_open_cb cb, void *arg, void **handle);
    /* The loop streams opened with micro_client_stream run on. */
    micro_loop *(*default_loop)(void *st);
    /* --- ABI 3 ---------------------------------------------------- */
    /* The options the implementation reads (options.h: full Go Micro
     * names starting with "client_"), ended by MICRO_OPTION_END; NULL for
     * none. The core learns them from here for flags, env and --help. */
    const micro_option_desc *options;
} micro_client_ops;

MICRO_API extern const micro_client_ops micro_client_mucp_ops;
/** Go Micro's gRPC client (h2c; spec §2.3): every call over gRPC. */
MICRO_API extern const micro_client_ops micro_client_grpc_ops;

/** Create a client from an ops table (micro_client_new uses mucp). */
MICRO_API int micro_client_new_with_ops(micro_client **out,
    const micro_client_ops *ops, micro_transport *transport,
    micro_selector *selector, const micro_options *opts);

/** For implementations: set the reply payload (copied). */
MICRO_API int micro_call_set_body(micro_call *c, const void *p, size_t n);
/** For implementations: set the error (id and detail copied). */
MICRO_API int micro_call_set_error(
    micro_call *c, const char *id, int32_t code, const char *detail);
/** For implementations: record the address that answered. */
MICRO_API void micro_call_set_address(micro_call *c, const char *address);

/**
 * Options read: "client_retries" (5), "client_request_timeout" (30 s, the
 * whole call), "client_conn_timeout" (5 s, one attempt), "client_pool_size",
 * "client_pool_ttl", "client_dial_timeout", "client_content_type".
 * selector may be NULL (then only addressed calls work). transport and
 * selector are borrowed and outlive the client.
 */
MICRO_API int micro_client_new(micro_client **out, micro_transport *transport,
    micro_selector *selector, const micro_options *opts);
/**
 * Free the client. Asynchronous calls still pending on loops complete
 * first, with MICRO_ECANCELED (see micro_client_call_async), so that none
 * touches the transport or selector afterwards; those on the worker
 * threads run to their end.
 * Thread: any, including a loop thread inside a call's callback; not
 * concurrently with another call on c. When pending calls belong to
 * another loop, this waits for that loop to cancel them.
 */
MICRO_API void micro_client_free(micro_client *c);
/** Append a call wrapper (outermost first). Before first use. */
MICRO_API int micro_client_wrap(
    micro_client *c, micro_call_wrapper_fn fn, void *arg);
/** Which failures to retry (MICRO_RETRY_* bits). */
MICRO_API void micro_client_set_retry_on(micro_client *c, unsigned bits);

/**
 * Call endpoint of service with a payload. Blocks. *out receives the call
 * object whenever one was created (also on failure, to read the error);
 * free it with micro_call_free.
 * Returns 0, MICRO_EREMOTE (see micro_call_error), MICRO_ETIMEDOUT,
 * MICRO_ENOSERVICE, MICRO_ENONODE, MICRO_ECONTENTTYPE, transport errors.
 * Thread: any.
 */
MICRO_API int micro_client_call(micro_client *c, const char *service,
    const char *endpoint, const void *body, size_t len,
    const micro_call_opts *opts, micro_call **out);

/** Completion of an async call: call is transferred to the callback. */
typedef void (*micro_call_cb)(void *arg, int rc, micro_call *call);

/**
 * Start a call and return at once; cb gets the result.
 *
 * The mucp client over a transport with an asynchronous round trip (http)
 * and without call wrappers runs the call on loop's thread without ever
 * blocking it: any number may be in flight, with no thread per call. It
 * keeps every rule of micro_client_call: the node from the selector (from
 * its cache on the loop; a registry lookup that the cache cannot answer
 * runs on libuv's thread pool) or opts.address, retries with the same
 * back-off (on a timer), the per-attempt timeout, the same headers and
 * codecs, Go Micro errors as micro_call_error, micro_call_attempts and
 * micro_call_address, and the selector's begin/end. Connections are pooled
 * per loop. Otherwise (wrappers are synchronous; other client ops tables
 * have only a blocking call) micro_client_call runs on one of the
 * client's 8 threads and its result is posted to loop.
 *
 * Ownership: every argument is copied (opts' strings, metadata and filter
 *   included). The call object is transferred to cb.
 * Thread:   any, including loop's thread inside another call's callback.
 * Callback: cb runs exactly once, on loop's thread, iff this returned 0,
 *   and never inside this call. Its rc is what micro_client_call would
 *   return, or MICRO_ECANCELED (with error 408 "context canceled", Go
 *   Micro's answer to a canceled context) when the client is freed or the
 *   loop closes (micro_loop_free) while the call is pending. On the
 *   worker-thread path, a result whose loop has closed meanwhile is dropped
 *   (and logged), since it cannot run there.
 * Errors:   MICRO_EINVAL, MICRO_ENOMEM, MICRO_ECLOSED (the client is being
 *   freed, or loop is closing).
 */
MICRO_API int micro_client_call_async(micro_client *c, micro_loop *loop,
    const char *service, const char *endpoint, const void *body, size_t len,
    const micro_call_opts *opts, micro_call_cb cb, void *arg);

/* --- streams (Go Micro's client.Stream) --------------------------------- */

/**
 * Open a stream to endpoint of service (through the selector, or
 * opts.address): a fresh connection, then the opening message, which Go
 * Micro's servers discard (a placeholder: {} for JSON, empty for
 * protobuf). Blocks until the opening message is written or the open
 * fails; routing errors (unknown endpoint) arrive on the first receive, as
 * with Go Micro. A failed dial is retried on another node as a unary call
 * is (client_retries), since nothing was sent. The stream's events run on
 * the client's loop (the transport's).
 *
 * Ownership: arguments borrowed for the call; *out is the caller's
 *   (micro_stream_free).
 * Thread:   any but the client's loop thread.
 * Errors:   MICRO_ENOSERVICE, MICRO_ENONODE, MICRO_ECONTENTTYPE,
 *   MICRO_ETIMEDOUT, MICRO_ECONNREFUSED, other transport errors,
 *   MICRO_ENOTSUP (a client implementation without streams).
 */
MICRO_API int micro_client_stream(micro_client *c, const char *service,
    const char *endpoint, const micro_call_opts *opts, micro_stream **out);

/**
 * micro_client_stream on loop: cb gets the stream, whose events then run
 * on loop's thread.
 * Ownership: arguments copied. Thread: any. Callback: on loop's thread,
 * exactly once iff this returned 0, never inside this call.
 * Errors: MICRO_EINVAL, MICRO_ENOMEM, MICRO_ECLOSED, MICRO_ENOTSUP.
 */
MICRO_API int micro_client_stream_async(micro_client *c, micro_loop *loop,
    const char *service, const char *endpoint, const micro_call_opts *opts,
    micro_stream_open_cb cb, void *arg);

/* --- publishing (Go Micro's client.Publish) --------------------------- */

/**
 * Per-publish options; zeroed (or NULL) means the defaults. Borrowed.
 * ABI: the struct grows at its end. size is sizeof(micro_publish_opts) as
 * the caller compiled it (MICRO_PUBLISH_OPTS_INIT sets it); 0 reads as the
 * first version (this one, which ends at n_metadata). Fields added later
 * are read only when size covers them. A publish wrapper sees a copy of
 * this version with size set.
 */
typedef struct micro_publish_opts {
    size_t size;
    const char *content_type; /* default "client_content_type" (json) */
    const micro_header_kv *metadata; /* extra message headers */
    size_t n_metadata;
} micro_publish_opts;

#define MICRO_PUBLISH_OPTS_INIT {.size = sizeof(micro_publish_opts)}

/** What a publish wrapper sees. Fields are borrowed; a wrapper may point
 *  them at its own storage before calling next. */
typedef struct micro_publication {
    const char *topic;
    const void *body; /* the payload before encoding */
    size_t len;
    micro_publish_opts opts;
} micro_publication;

typedef struct micro_publish_chain micro_publish_chain;
typedef int (*micro_publish_wrapper_fn)(
    micro_publication *p, micro_publish_chain *next, void *arg);
MICRO_API int micro_publish_next(
    micro_publish_chain *next, micro_publication *p);

/** The broker publish uses (borrowed; outlives the client). */
MICRO_API int micro_client_set_broker(micro_client *c, micro_broker *b);
/** Append a publish wrapper (outermost first). Before first use. */
MICRO_API int micro_client_wrap_publish(
    micro_client *c, micro_publish_wrapper_fn fn, void *arg);

/**
 * Publish payload on topic as Go Micro's client does: header = metadata +
 * Content-Type + Micro-Topic + Micro-ID (a new UUID); body = the payload
 * encoded by the codec of the content type (json: the JSON + "\n").
 * Returns 0, MICRO_ECONTENTTYPE, MICRO_ECODEC (payload not valid for the
 * codec), MICRO_EINVAL (no broker), or the broker's error. Thread: any.
 */
MICRO_API int micro_client_publish(micro_client *c, const char *topic,
    const void *payload, size_t len, const micro_publish_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
