#ifndef CMICRO_STREAM_H
#define CMICRO_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "loop.h"
#include "msg.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A stream: Go Micro's client.Stream / server.Stream. Messages flow both
 * ways, independently, in order, until each side ends its own direction.
 *
 * Client side (micro_client_stream, in client.h): send and receive from
 * any thread with the blocking calls, or on a loop with the _async ones;
 * micro_stream_close_send ends the client's direction (the server sees
 * MICRO_EOF) while replies keep arriving; micro_stream_recv returns
 * MICRO_EOF once the server has ended the stream. micro_stream_free
 * closes what is still open and frees.
 *
 * Server side (micro_stream_handler, in server.h): the framework owns the
 * stream; the handler's callbacks see each message, the client's end and
 * the stream's end, and the handler sends with micro_stream_send (or
 * _async) and ends the stream with micro_stream_close_send (Go Micro's EOS)
 * or micro_stream_fail (an error in Go Micro's shape).
 *
 * End of stream is its own result, MICRO_EOF, distinct from errors. A
 * stream that ends abnormally reports why: MICRO_EREMOTE (the peer ended
 * it with an error: micro_stream_error), MICRO_ETIMEDOUT (its deadline),
 * MICRO_ECANCELED (the peer or the local side closed it early),
 * MICRO_ECONNRESET (the connection was lost: the peer died). From then on
 * sends fail with that status.
 *
 * Flow control: the memory of a stream's queued messages is bounded, each
 * way ("transport_window", default 256 KiB, payloads and what holding them
 * costs): micro_stream_send waits while the window is full, and a
 * receiver that does not keep up stops the connection being read, so a
 * fast sender facing a slow receiver never grows memory without bound.
 *
 * Wire: Go Micro v4's streams over its HTTP transport (a connection per
 * stream, each message one HTTP/1.1 message, Micro-Stream on every one,
 * EOS as Micro-Error: EOS). See the README for how cmicro differs from Go
 * where Go misbehaves.
 */
typedef struct micro_stream micro_stream;

/** Completion of micro_stream_send_async (and of an asynchronous open in
 *  client.h): on the stream's loop thread, exactly once. */
typedef void (*micro_stream_cb)(void *arg, micro_stream *s, int rc);

/**
 * Completion of micro_stream_recv_async, on the stream's loop thread,
 * exactly once: rc 0 with the decoded payload (borrowed for the call),
 * MICRO_EOF at the end of the stream, or the stream's error.
 */
typedef void (*micro_stream_recv_cb)(void *arg, micro_stream *s, int rc,
    const void *body, size_t len);

/**
 * Encode payload with the stream's codec and queue it to the peer.
 *
 * Ownership: body is copied (encoded) before this returns.
 * Thread:   any. Off the stream's loop thread it waits while the stream's
 *   unsent output is over its window; on the loop thread it never waits
 *   and returns MICRO_EAGAIN instead (use micro_stream_send_async there).
 * Errors:   MICRO_ECLOSED (this side already ended or closed the stream),
 *   MICRO_ECODEC (payload not valid for the codec), the stream's end
 *   status once it has ended abnormally (see above), MICRO_ENOMEM.
 */
MICRO_API int micro_stream_send(micro_stream *s, const void *body,
    size_t len);

/**
 * Queue payload whatever the window; cb (may be NULL) runs once the
 * message has been written to the connection (rc 0) or can no longer be
 * (the error). The caller bounds its own memory by waiting for cb; on a
 * server stream the framework also holds back the client's next message
 * while the output is over the window, so a handler that answers each
 * message with send_async stays bounded without waiting.
 * Thread: any. Callback: on the stream's loop thread, exactly once, iff
 * this returned 0, never inside this call.
 */
MICRO_API int micro_stream_send_async(micro_stream *s, const void *body,
    size_t len, micro_stream_cb cb, void *arg);

/**
 * Wait for the next message: 0 with the decoded payload in *out (the
 * caller owns it: micro_buf_clear), MICRO_EOF when the peer has ended its
 * direction cleanly, MICRO_EREMOTE (micro_stream_error), or the stream's
 * error. Waits at most until the stream's deadline.
 * Thread: any but the stream's loop thread (MICRO_EINVAL there).
 * Client streams only (MICRO_EINVAL on a server stream: its handler gets
 * messages through on_msg).
 */
MICRO_API int micro_stream_recv(micro_stream *s, micro_buf *out);

/**
 * Ask for the next message; cb gets it. One receive may be pending at a
 * time (MICRO_EBUSY otherwise). Messages that arrive while none is
 * pending are kept, up to the window; beyond it the connection is no
 * longer read until they are taken.
 * Thread: any. Callback: on the stream's loop thread, exactly once, iff
 * this returned 0, never inside this call. Client streams only.
 */
MICRO_API int micro_stream_recv_async(micro_stream *s,
    micro_stream_recv_cb cb, void *arg);

/**
 * End this side's direction cleanly.
 * Client: half-close; the server's handler sees MICRO_EOF and may still
 * send; keep receiving until MICRO_EOF. Server: the end of the stream
 * (Go Micro's EOS); the client's receive returns MICRO_EOF after every
 * message sent before. Idempotent (0 again).
 * Thread: any. Errors: the stream's end status when it already ended
 * abnormally.
 */
MICRO_API int micro_stream_close_send(micro_stream *s);

/**
 * Server streams: end the stream with an error in Go Micro's shape (id
 * NULL: the server's name); the client's receive returns MICRO_EREMOTE
 * with it after every message sent before. Returns MICRO_EREMOTE, so a
 * callback can `return micro_stream_fail(...)`. On a client stream it
 * closes the stream (Go Micro's client cannot send an error).
 * Thread: any.
 */
MICRO_API int micro_stream_fail(micro_stream *s, const char *id,
    int32_t code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/** The error that ended the stream (borrowed; valid until the stream is
 *  freed), or NULL: the peer's when a call returned MICRO_EREMOTE, else a
 *  local one in Go Micro's shape (408 deadline, 499 canceled, 500 lost). */
MICRO_API const micro_error *micro_stream_error(const micro_stream *s);

/**
 * A header of the stream: on the server the opening request's (metadata,
 * Micro-*, Remote); on the client the first reply's. Borrowed for the
 * stream's life; NULL when absent. Case-insensitive. Thread: any.
 */
MICRO_API const char *micro_stream_header(const micro_stream *s,
    const char *key);
/** "Handler.Method". Thread: any. */
MICRO_API const char *micro_stream_endpoint(const micro_stream *s);
/** The content type the stream's payloads are encoded with, both ways:
 *  on the client the one it was opened with, on the server the opening
 *  request's. Borrowed for the stream's life. Thread: any. */
MICRO_API const char *micro_stream_content_type(const micro_stream *s);
/** The stream's id (Micro-Stream). Thread: any. */
MICRO_API const char *micro_stream_id(const micro_stream *s);
/** The peer's address "ip:port". Thread: any. */
MICRO_API const char *micro_stream_remote(const micro_stream *s);
/** Milliseconds left before the stream's deadline (INT64_MAX when it has
 *  none). Thread: any. */
MICRO_API int64_t micro_stream_remaining_ms(const micro_stream *s);
/** The loop the stream's events run on. */
MICRO_API micro_loop *micro_stream_loop(const micro_stream *s);
/** A pointer for the owner's per-stream state (NULL until set). */
MICRO_API void micro_stream_set_data(micro_stream *s, void *data);
MICRO_API void *micro_stream_data(const micro_stream *s);

/**
 * Client streams: close what is still open (sending EOS first when this
 * side had not ended, as Go Micro's Close does) and free the stream.
 * Pending asynchronous operations complete first, with MICRO_ECANCELED.
 * Thread: any, including the loop thread inside one of the stream's
 * callbacks. NULL is a no-op. Server streams are the framework's: use
 * micro_stream_close_send / micro_stream_fail / micro_stream_abort.
 */
MICRO_API void micro_stream_free(micro_stream *s);

/**
 * Abort: close the stream's connection at once without a clean end. The
 * peer sees the stream lost (MICRO_ECONNRESET on a client, cancellation on
 * a server). Pending operations complete with MICRO_ECANCELED.
 * Thread: any.
 */
MICRO_API void micro_stream_abort(micro_stream *s);

#ifdef __cplusplus
}
#endif
#endif
