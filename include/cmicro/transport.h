#ifndef CMICRO_TRANSPORT_H
#define CMICRO_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "msg.h"
#include "options.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The transport moves messages {headers, body} between services: a
 * listener that receives requests and answers each one exactly once, and a
 * client side that sends a request to an address and waits for the answer
 * (on a pooled connection), either blocking the calling thread (roundtrip)
 * or, where the transport supports it, on an event loop without blocking
 * (roundtrip_async).
 */
typedef struct micro_transport micro_transport;

/** One received request awaiting its answer (opaque, transport-owned). */
typedef struct micro_exchange micro_exchange;

/**
 * A request arrived. Runs on the transport's loop thread. msg is
 * transferred to the callee, which must eventually call
 * micro_transport_reply(ex, ...) exactly once from any thread.
 */
typedef void (*micro_transport_recv_fn)(
    void *arg, micro_exchange *ex, micro_msg *msg);

/** Per-transport statistics. */
typedef struct micro_transport_stats {
    uint64_t accepted;       /* connections accepted */
    uint64_t requests;       /* requests received */
    uint64_t bad_requests;   /* malformed frames, answered or closed */
    uint64_t oversized;      /* header or body over the limit */
    uint64_t timeouts;       /* connections closed for a stalled request */
    uint64_t dropped_replies;/* answers whose connection had gone */
} micro_transport_stats;

/** One asynchronous round trip in progress (opaque, transport-owned). */
typedef struct micro_transport_call micro_transport_call;

/**
 * Completion of an asynchronous round trip, on the thread of the loop it
 * was started on. rc is 0 with rsp the answer (transferred to the callee,
 * which frees it with micro_msg_free), or an error with rsp NULL. sent is
 * as for roundtrip: 1 once any byte of the request was written, so the
 * caller knows whether a retry could run the call twice.
 */
typedef void (*micro_transport_done_fn)(
    void *arg, int rc, micro_msg *rsp, int sent);

/* ABI 2 added roundtrip_async and cancel. Tables declaring ABI 1 stay
 * valid (they end at fini, and the front end never reads past it). */
#define MICRO_TRANSPORT_ABI 2

/**
 * For implementers. listen/stop_listen/fini run on the loop thread;
 * reply and roundtrip are called from any thread (roundtrip blocks);
 * roundtrip_async and cancel on the thread of the loop they are given.
 */
typedef struct micro_transport_ops {
    uint32_t abi;
    const char *name; /* "http" */
    size_t state_size;
    int (*init)(void *st, micro_loop *loop, const micro_options *opts);
    /* Bind addr ("host:port", port 0 for any) and start accepting. */
    int (*listen)(void *st, const char *addr, micro_transport_recv_fn fn,
        void *arg);
    /* The bound address "ip:port" (borrowed), or NULL before listen. */
    const char *(*listen_address)(void *st);
    /* Answer ex. Takes *rsp on success. Any thread. */
    int (*reply)(void *st, micro_exchange *ex, micro_msg **rsp);
    /* Send req to addr, wait at most timeout_ms for the answer. *rsp is
     * the caller's on success. Any thread; blocks. dial_timeout_ms covers
     * connection set-up. Errors: MICRO_ETIMEDOUT, MICRO_ECONNREFUSED, ...
     * *sent is set to 1 once any byte of the request was written (so a
     * caller knows whether a retry could run the call twice). */
    int (*roundtrip)(void *st, const char *addr, const micro_msg *req,
        int64_t timeout_ms, micro_msg **rsp, int *sent);
    /* Stop accepting and close the listener; open connections finish
     * their current exchange. Loop thread. */
    void (*stop_listen)(void *st);
    /* Number of requests received but not yet answered. Any thread. */
    size_t (*inflight)(void *st);
    void (*stats)(void *st, micro_transport_stats *out);
    /* Loop thread, after stop_listen: close whatever is still open (even
     * busy connections) and return 1 once no handle remains open, else 0;
     * the front end calls it again on a later loop turn. May be NULL. */
    int (*shutdown)(void *st);
    void (*fini)(void *st);
    /* Optional (ABI 2; both NULL: not supported). Called on loop's thread
     * only. Start one exchange with addr, as roundtrip does (same wire
     * bytes, errors, limits and connection reuse), without blocking: the
     * whole exchange runs on loop's thread. timeout_ms bounds it all, dial
     * included (<= 0: no deadline but the dial timeout). req is borrowed
     * for the call. On 0, *call (when call is not NULL) names the round
     * trip until cb runs, and cb runs exactly once, on loop's thread and
     * never inside this call. On an error cb never runs: MICRO_ENOMEM,
     * MICRO_ECLOSED (the transport or the loop is shutting down). A
     * malformed address, like every connection failure, arrives through
     * cb. Round trips still pending when the transport is freed or the
     * loop closes complete with MICRO_ECANCELED. */
    int (*roundtrip_async)(void *st, micro_loop *loop, const char *addr,
        const micro_msg *req, int64_t timeout_ms, micro_transport_done_fn cb,
        void *arg, micro_transport_call **call);
    /* Abandon call (its connection is closed) before its cb ran: cb runs
     * before this returns, with MICRO_ECANCELED. The loop thread of call.
     */
    void (*cancel)(void *st, micro_transport_call *call);
} micro_transport_ops;

MICRO_API extern const micro_transport_ops micro_transport_http_ops;

/**
 * Options read: "transport_max_message_size" (default 4 MiB),
 * "transport_max_header_size" (1 MiB), "transport_read_timeout" (a
 * started but unfinished request older than this closes the connection,
 * default 30 s), "client_pool_size" (100), "client_pool_ttl" (1 min),
 * "client_dial_timeout" (5 s).
 * Thread: any. The loop is borrowed and must outlive the transport.
 */
MICRO_API int micro_transport_new(micro_transport **out,
    const micro_transport_ops *ops, micro_loop *loop,
    const micro_options *opts);
MICRO_API int micro_transport_new_by_name(micro_transport **out,
    const char *name, micro_loop *loop, const micro_options *opts);
/**
 * Stop listening (if needed) and free. Round trips of roundtrip_async
 * still pending complete with MICRO_ECANCELED, and the connections it
 * pooled are closed, each on its own loop's thread: this waits for them.
 * Thread: any but the transport's loop, or a loop it has run
 * roundtrip_async on (that loop must keep running).
 */
MICRO_API void micro_transport_free(micro_transport *t);
/** Thread: any (hops to the loop and waits). */
MICRO_API int micro_transport_listen(micro_transport *t, const char *addr,
    micro_transport_recv_fn fn, void *arg);
MICRO_API const char *micro_transport_address(micro_transport *t);
MICRO_API int micro_transport_reply(
    micro_transport *t, micro_exchange *ex, micro_msg **rsp);
MICRO_API int micro_transport_roundtrip(micro_transport *t, const char *addr,
    const micro_msg *req, int64_t timeout_ms, micro_msg **rsp, int *sent);
/** 1 when t implements roundtrip_async (the http transport does), else 0.
 *  Thread: any. */
MICRO_API int micro_transport_has_async(const micro_transport *t);
/**
 * Send req to addr on loop and return at once; cb gets the answer. The
 * exchange runs on loop's thread without blocking it; any number may be
 * in flight. Connections are pooled per loop (client_pool_size idle ones
 * per address, client_pool_ttl), separately from roundtrip's pool.
 *
 * Ownership: req, addr borrowed for the call; the answer is transferred to
 *   cb. *call (call may be NULL) names the round trip until cb runs.
 * Thread:   loop's thread only (MICRO_EINVAL from any other).
 * Callback: cb runs exactly once, on loop's thread, iff this returned 0;
 *   never inside this call. Errors through cb: MICRO_ETIMEDOUT,
 *   MICRO_ECONNREFUSED, MICRO_ECONNRESET, MICRO_EPROTO, MICRO_EMSGSIZE,
 *   MICRO_EINVAL (malformed or unresolvable address), MICRO_ECANCELED
 *   (micro_transport_cancel, the transport freed or the loop closed with
 *   the round trip pending), other -errno.
 * Errors:   MICRO_EINVAL (bad arguments, or not on loop's thread),
 *   MICRO_ENOTSUP (the transport has no async round trip), MICRO_ENOMEM,
 *   MICRO_ECLOSED.
 */
MICRO_API int micro_transport_roundtrip_async(micro_transport *t,
    micro_loop *loop, const char *addr, const micro_msg *req,
    int64_t timeout_ms, micro_transport_done_fn cb, void *arg,
    micro_transport_call **call);
/**
 * Abandon a round trip whose cb has not run yet: its connection is closed
 * and cb runs before this returns, with MICRO_ECANCELED.
 * Thread: the loop thread the round trip was started on.
 */
MICRO_API void micro_transport_cancel(
    micro_transport *t, micro_transport_call *call);
/** Thread: any (hops to the loop and waits). */
MICRO_API void micro_transport_stop_listen(micro_transport *t);
MICRO_API size_t micro_transport_inflight(micro_transport *t);
MICRO_API void micro_transport_get_stats(
    micro_transport *t, micro_transport_stats *out);

#ifdef __cplusplus
}
#endif
#endif
