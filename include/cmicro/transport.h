#ifndef CMICRO_TRANSPORT_H
#define CMICRO_TRANSPORT_H

#include <stdbool.h>
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
 * The transport moves messages {headers, body} between services over
 * sockets, Go Micro's model (transport.Transport): dial an address to get
 * a socket, listen to accept sockets; a socket sends and receives
 * messages, both directions independent, and can pause reading
 * (backpressure), end its sending side, and close. A unary call is a
 * socket that sends one message, receives one and goes back to a pool
 * (micro_transport_roundtrip and _async do exactly that); a stream keeps
 * its socket.
 *
 * The built-in "http" transport is Go Micro's: every message is one
 * HTTP/1.1 message (a dialled socket sends POST / requests and receives
 * 200 responses; an accepted socket the reverse), pipelined both ways.
 *
 * Threads: a socket belongs to one loop (the transport's for accepted
 * sockets, the dialler's for dialled ones). Its handler runs on that
 * loop's thread, and micro_socket_* are called on it too.
 */
typedef struct micro_transport micro_transport;
typedef struct micro_socket micro_socket;

/** A socket's events, on its loop thread, never inside a micro_socket_*
 *  call except micro_socket_pause(false), which may deliver messages
 *  that were already read before it returns. */
typedef struct micro_socket_handler {
    /* A message: *msg is the callee's (transferred). Required. */
    void (*on_msg)(void *arg, micro_socket *s, micro_msg *msg);
    /* The peer ended its sending side (rc 0), or reading failed. The
     * socket may still send. Optional: without it the socket closes and
     * on_close follows with MICRO_EOF (or the error). */
    void (*on_eof)(void *arg, micro_socket *s, int rc);
    /* The unsent output has been written (after a send had to queue).
     * Optional. */
    void (*on_drain)(void *arg, micro_socket *s);
    /* The socket ended by itself: MICRO_EOF (the peer closed), an I/O
     * error, MICRO_ETIMEDOUT (read or idle timeout), MICRO_EPROTO /
     * MICRO_EMSGSIZE (refused input, already answered). Last event; the
     * socket is freed when this returns. Not called after
     * micro_socket_close. Required. */
    void (*on_close)(void *arg, micro_socket *s, int rc);
} micro_socket_handler;

/** A new socket accepted: the callee sets its handler
 *  (micro_socket_set_handler) before returning, or closes it. */
typedef void (*micro_accept_fn)(void *arg, micro_socket *s);
/** Dial result: rc 0 with a socket (the callee's, with no handler yet:
 *  set one before returning), or an error with s NULL. */
typedef void (*micro_dial_fn)(void *arg, int rc, micro_socket *s);

/**
 * Dial options; a zeroed struct (or NULL) means the defaults.
 * ABI: the struct grows at its end. size is sizeof(micro_dial_opts) as the
 * caller compiled it (MICRO_DIAL_OPTS_INIT sets it); 0 reads as the first
 * version (this one, which ends at stream). Fields added later are read
 * only when size covers them.
 */
typedef struct micro_dial_opts {
    size_t size;
    int64_t timeout_ms; /* connection set-up; 0: "client_dial_timeout" */
    bool stream;        /* a fresh connection of its own, never pooled
                           (Go Micro's transport.WithStream) */
} micro_dial_opts;

#define MICRO_DIAL_OPTS_INIT {.size = sizeof(micro_dial_opts)}

/** Per-transport statistics. */
typedef struct micro_transport_stats {
    uint64_t accepted;       /* connections accepted */
    uint64_t requests;       /* messages received on accepted sockets */
    uint64_t bad_requests;   /* malformed frames, answered or closed */
    uint64_t oversized;      /* header or body over the limit */
    uint64_t timeouts;       /* connections closed by read/idle timeout */
    uint64_t refused;        /* connections refused at the connection cap */
    uint64_t evicted;        /* idle connections closed to make room */
    uint64_t busy;           /* refused: partial bodies over the budget */
} micro_transport_stats;

/* --- sockets ----------------------------------------------------------- */

/** Set the handler (h is borrowed for the socket's life). */
MICRO_API void micro_socket_set_handler(micro_socket *s,
    const micro_socket_handler *h, void *arg);
/**
 * Send a message (borrowed: serialised or copied before this returns).
 * Never blocks: what the connection cannot take yet is queued, and
 * micro_socket_unsent tells how much; callers bound it (on_drain).
 * Errors: MICRO_ECLOSED (closed, or its sending side ended),
 * MICRO_EINVAL (a header name that is not an HTTP token), MICRO_ENOMEM,
 * MICRO_EPIPE / other -errno (the connection failed).
 */
MICRO_API int micro_socket_send(micro_socket *s, const micro_msg *m);
/** End the sending side (later sends fail with MICRO_ECLOSED). Over
 *  HTTP/1.1 this sends nothing: Go Micro's end of a stream is a message
 *  (EOS), which the RPC layer sends; the connection stays open for
 *  reading. */
MICRO_API int micro_socket_close_send(micro_socket *s);
/** Stop (true) or resume (false) receiving: exact to the message. */
MICRO_API void micro_socket_pause(micro_socket *s, bool paused);
/** Cork (true): sends gather and go out together when uncorked (false),
 *  in one write where the transport can: for many small messages. */
MICRO_API void micro_socket_cork(micro_socket *s, bool cork);
/** Mark work in progress on the socket (no idle timeout while busy). */
MICRO_API void micro_socket_set_busy(micro_socket *s, bool busy);
/** Bytes sent but not yet written to the connection. */
MICRO_API size_t micro_socket_unsent(const micro_socket *s);
/** A dialled socket whose exchange is complete: back to its transport's
 *  pool when the connection can carry another one, else closed. No
 *  event follows. */
MICRO_API void micro_socket_release(micro_socket *s);
/** Close now; no event follows. */
MICRO_API void micro_socket_close(micro_socket *s);
/** "ip:port" of the peer / of this end (borrowed). */
MICRO_API const char *micro_socket_remote(const micro_socket *s);
MICRO_API const char *micro_socket_local(const micro_socket *s);
MICRO_API micro_loop *micro_socket_loop(const micro_socket *s);
/** True for a dialled socket that came out of the pool. */
MICRO_API bool micro_socket_reused(const micro_socket *s);
/** True while (or, once closed, when) a message is partly received. */
MICRO_API bool micro_socket_got_bytes(const micro_socket *s);
/** The transport's own data for the socket (implementations only). */
MICRO_API void *micro_socket_impl(micro_socket *s);

/* --- the transport ----------------------------------------------------- */

/**
 * Options read by the http transport: "transport_max_message_size" (4
 * MiB), "transport_max_header_size" (1 MiB), "transport_max_headers"
 * (1000 fields), "transport_read_timeout" (30 s: a message begun must
 * complete), "transport_idle_timeout" (5 min: an accepted connection with
 * nothing in progress), "transport_max_conns" (accepted connections;
 * default from the descriptor limit), "transport_max_buffered" (128 MiB of
 * partially received bodies over all connections), "transport_window"
 * (1 MiB: unsent output above which an accepted connection is no longer
 * read), "client_pool_size" (100 idle per address), "client_pool_ttl"
 * (1 min), "client_dial_timeout" (5 s).
 * Thread: any. The loop is borrowed and must outlive the transport.
 */
MICRO_API int micro_transport_new_by_name(micro_transport **out,
    const char *name, micro_loop *loop, const micro_options *opts);
/**
 * Stop listening, close every socket (on each loop's thread: this waits
 * for them) and free. Round trips still pending complete with
 * MICRO_ECANCELED. Thread: any but a loop the transport has sockets on.
 */
MICRO_API void micro_transport_free(micro_transport *t);
MICRO_API micro_loop *micro_transport_loop(const micro_transport *t);

/**
 * Listen on addr ("host:port", port 0 for any) and accept sockets on the
 * transport's loop, handing each to fn there.
 * Thread: any (hops to the loop and waits). Errors: MICRO_EEXIST
 * (listening already), MICRO_EINVAL (bad address), MICRO_EADDRINUSE...
 */
MICRO_API int micro_transport_listen(micro_transport *t, const char *addr,
    micro_accept_fn fn, void *arg);
/** The bound address "ip:port" (borrowed), or NULL before listen. */
MICRO_API const char *micro_transport_address(micro_transport *t);
/** Stop accepting; accepted sockets stay open. Thread: any. */
MICRO_API void micro_transport_stop_listen(micro_transport *t);
/** Close every accepted socket now (no events). Thread: any. */
MICRO_API void micro_transport_close_accepted(micro_transport *t);

/**
 * Dial addr from loop. cb gets the socket, on loop's thread, exactly once
 * iff this returned 0, never inside this call. Unless o->stream, an idle
 * pooled connection to addr is reused when there is one. *pending (pending
 * may be NULL) is the socket being connected: micro_socket_close on it
 * abandons the dial (cb then never runs); it is NULL when the dial is
 * answered from the pool on the next turn, which cannot be abandoned.
 * Thread: loop's. Errors (here): MICRO_EINVAL, MICRO_ENOMEM,
 * MICRO_ECLOSED. Through cb: MICRO_EINVAL (malformed or unresolvable
 * address), MICRO_ECONNREFUSED, MICRO_ETIMEDOUT, MICRO_ECANCELED (the
 * transport freed or the loop closed), other -errno.
 */
MICRO_API int micro_transport_dial(micro_transport *t, micro_loop *loop,
    const char *addr, const micro_dial_opts *o, micro_dial_fn cb, void *arg,
    micro_socket **pending);

/**
 * One exchange with addr, blocking the calling thread: send req on a
 * pooled connection (or a new one), wait at most timeout_ms in all (dial
 * included) for the answer. *sent is 1 once any byte of the request was
 * written, so the caller knows whether a retry could run the call twice.
 * A pooled connection that turns out closed before any answer byte is
 * replaced by a new one once. The http transport does this on the calling
 * thread with the same protocol code as its sockets (no loop hop);
 * other transports run micro_transport_roundtrip_async and wait.
 * Ownership: req borrowed; *rsp the caller's on success.
 * Thread: any but the transport's loop. Errors: MICRO_ETIMEDOUT,
 * MICRO_ECONNREFUSED, MICRO_ECONNRESET, MICRO_EPROTO (not an answer of
 * the protocol), MICRO_EMSGSIZE, MICRO_EINVAL, MICRO_ENOMEM, -errno.
 */
MICRO_API int micro_transport_roundtrip(micro_transport *t, const char *addr,
    const micro_msg *req, int64_t timeout_ms, micro_msg **rsp, int *sent);

/** One asynchronous round trip in progress (opaque). */
typedef struct micro_transport_call micro_transport_call;

/** Completion of an asynchronous round trip: rc 0 with rsp (the
 *  callee's), or an error with rsp NULL; sent as for roundtrip. */
typedef void (*micro_transport_done_fn)(
    void *arg, int rc, micro_msg *rsp, int sent);

/**
 * micro_transport_roundtrip on loop without blocking it: a pooled socket
 * (or a dial), send, the first message back, release. Any number may be
 * in flight; connections are pooled per loop.
 * Ownership: the transport takes *req on success (sets it NULL); on
 *   failure the caller keeps it. *call (call may be NULL) names the round
 *   trip until cb runs.
 * Thread: loop's only. Callback: on loop's thread, exactly once iff this
 *   returned 0, never inside this call; errors as roundtrip's, plus
 *   MICRO_ECANCELED (micro_transport_cancel, the transport freed, the
 *   loop closed).
 * Errors: MICRO_EINVAL (bad arguments or not on loop's thread),
 *   MICRO_ENOMEM, MICRO_ECLOSED.
 */
MICRO_API int micro_transport_roundtrip_async(micro_transport *t,
    micro_loop *loop, const char *addr, micro_msg **req, int64_t timeout_ms,
    micro_transport_done_fn cb, void *arg, micro_transport_call **call);
/** Abandon a round trip whose cb has not run: its connection is closed and
 *  cb runs before this returns, with MICRO_ECANCELED. Loop thread. */
MICRO_API void micro_transport_cancel(
    micro_transport *t, micro_transport_call *call);

MICRO_API void micro_transport_get_stats(
    micro_transport *t, micro_transport_stats *out);

/* --- implementations -------------------------------------------------- */

#define MICRO_TRANSPORT_ABI 4

/**
 * For implementers of a transport. The front end owns the sockets (it
 * allocates each with socket_size bytes for the implementation,
 * micro_socket_impl), the pools of idle dialled sockets, the round-trip
 * compositions and the threads rule; an implementation moves messages.
 * Slots run on the loop thread of the socket (or of the transport for
 * listen/stop_listen/shutdown/fini) unless stated otherwise.
 * The implementation reports socket events with micro_socket_emit_*.
 */
typedef struct micro_transport_ops {
    uint32_t abi;       /* MICRO_TRANSPORT_ABI */
    const char *name;   /* "http" */
    size_t state_size;  /* allocated and zeroed by the front end */
    size_t socket_size; /* per socket, zeroed */
    /* Any thread, before use. */
    int (*init)(void *st, micro_loop *loop, const micro_options *opts);
    /* Bind and accept: each connection becomes a socket made with
     * micro_socket_accepted. */
    int (*listen)(void *st, micro_transport *t, const char *addr);
    const char *(*listen_address)(void *st);
    void (*stop_listen)(void *st);
    /* Connect s (made by the front end, on its loop) to addr; report with
     * micro_socket_dialed, never inside this call. */
    int (*dial)(void *st, micro_socket *s, const char *addr,
        int64_t timeout_ms);
    /* Abandon a dial in progress (micro_socket_dialed must not follow). */
    void (*dial_cancel)(micro_socket *s);
    int (*send)(micro_socket *s, const micro_msg *m);
    int (*close_send)(micro_socket *s);
    void (*pause)(micro_socket *s, bool paused);
    void (*set_busy)(micro_socket *s, bool busy);
    void (*cork)(micro_socket *s, bool cork); /* optional */
    size_t (*unsent)(const micro_socket *s);
    /* Can s carry another exchange (keep-alive, clean, nothing pending)? */
    bool (*reusable)(const micro_socket *s);
    bool (*got_bytes)(const micro_socket *s);
    /* Release everything of s; no event after this. */
    void (*close)(micro_socket *s);
    /* Optional: the blocking round trip (any thread); NULL: the front end
     * runs the asynchronous one and waits. */
    int (*roundtrip)(void *st, const char *addr, const micro_msg *req,
        int64_t timeout_ms, micro_msg **rsp, int *sent);
    void (*stats)(void *st, micro_transport_stats *out);
    /* After stop_listen: close what is left; 1 once nothing of the
     * transport remains open on its loop (called again later if 0). */
    int (*shutdown)(void *st);
    void (*fini)(void *st);
    /* --- ABI 4 ---------------------------------------------------- */
    /* The options the implementation reads (options.h: full Go Micro
     * names starting with "transport_"), ended by MICRO_OPTION_END; NULL for
     * none. The core learns them from here for flags, env and --help. */
    const micro_option_desc *options;
} micro_transport_ops;

MICRO_API extern const micro_transport_ops micro_transport_http_ops;

MICRO_API int micro_transport_new(micro_transport **out,
    const micro_transport_ops *ops, micro_loop *loop,
    const micro_options *opts);

/** Implementations: a socket for an accepted connection (on the
 *  transport's loop); then micro_socket_accepted hands it to the
 *  listener's callback. */
MICRO_API int micro_socket_new_accepted(micro_transport *t,
    micro_socket **out);
MICRO_API void micro_socket_accepted(micro_socket *s);
/** Implementations: the socket's peer and local addresses ("ip:port"),
 *  copied. */
MICRO_API void micro_socket_set_names(micro_socket *s, const char *remote,
    const char *local);
/** Implementations: a dial finished (rc 0: connected). */
MICRO_API void micro_socket_dialed(micro_socket *s, int rc);
/** Implementations: report events (as micro_socket_handler). */
MICRO_API void micro_socket_emit_msg(micro_socket *s, micro_msg *msg);
MICRO_API void micro_socket_emit_eof(micro_socket *s, int rc);
MICRO_API void micro_socket_emit_drain(micro_socket *s);
MICRO_API void micro_socket_emit_close(micro_socket *s, int rc);

#ifdef __cplusplus
}
#endif
#endif
