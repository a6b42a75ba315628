/*
 * Layer 4: Go Micro's RPC protocol ("mucp") over transport messages, the
 * parts shared by the client and the server, unary calls and streams:
 * the headers of a request, reading an answer, deadlines, and streams
 * (stream.c). Not installed.
 */
#ifndef CMICRO_RPC_MUCP_H
#define CMICRO_RPC_MUCP_H

#include "core/internal.h"
#include "core/loop_internal.h"

/* A header under either of two names (Micro-X, then X-Micro-X), non-empty,
 * or NULL. */
const char *micro__mucp_hdr2(const micro_msg *m, const char *a,
    const char *b);

/* Milliseconds -> the decimal nanoseconds of a Timeout header, saturated
 * at INT64_MAX. */
void micro__mucp_timeout_header(int64_t ms, char out[24]);

/* The absolute deadline (micro__now_ms clock) of a request's Timeout
 * header (nanoseconds, rounded up to the millisecond, saturated), or 0
 * when it has none or an unusable one. */
int64_t micro__mucp_deadline(const micro_msg *m);

/* now + ms, saturated; 0 when ms <= 0 (no deadline). */
int64_t micro__deadline_after(int64_t ms);

/* What a client request is made of. Strings borrowed. */
typedef struct micro__mucp_req {
    const char *service;
    const char *endpoint;
    const char *content_type;
    const char *id;
    const micro_header_kv *metadata;
    size_t n_metadata;
    int64_t timeout_ms;  /* > 0: a Timeout header */
    bool stream;         /* Micro-Stream: id */
} micro__mucp_req;

/*
 * The headers of a Go Micro request (metadata first, so that the
 * framework's own win: Timeout, Content-Type, Accept, Micro-Id,
 * Micro-Service, Micro-Method, Micro-Endpoint, and Micro-Stream for a
 * stream). Metadata whose key is not an HTTP token, or whose value holds
 * CR, LF or NUL, is refused with MICRO_EINVAL (and *bad names it,
 * borrowed), rather than sent altered or dropped.
 */
int micro__mucp_request_headers(micro_msg *m, const micro__mucp_req *r,
    const char **bad);

/*
 * Read an answer of the server (a unary reply or a stream message): 0 with
 * the payload decoded by codec; MICRO_EOF for Micro-Error: EOS;
 * MICRO_EREMOTE with *err (parsed as Go's errors.Parse) for another
 * Micro-Error or an error in the codec's envelope; MICRO_ECODEC when the
 * body does not decode; MICRO_ENOMEM.
 */
int micro__mucp_read_answer(const micro_msg *m, const micro_codec_ops *codec,
    micro_buf *payload, micro_error **err);

/* Copy every header of src into dst except those named in skip (a
 * NULL-terminated list, compared ignoring case). */
int micro__msg_copy_headers(micro_msg *dst, const micro_msg *src,
    const char *const *skip);

/* ------------------------------------------------------------------ */
/* Streams (stream.c).                                                  */

typedef struct micro__stream_host micro__stream_host;

/* What the server gives each of its streams. */
struct micro__stream_host {
    micro_server *srv;
    micro__pool *pool;  /* callbacks run here unless inline */
    size_t window;
    /* The stream is over and gone (loop thread): the server's connection
     * may close its socket. */
    void (*on_done)(micro__stream_host *host, void *conn, micro_socket *s);
    /* Count of work for the server's drain: +1 / -1 (any thread). */
    void (*work)(micro__stream_host *host, int delta);
};

struct micro__handler;

/*
 * Server: the opening message of a stream arrived on sock (loop thread).
 * Takes first. The stream queues on_open and runs the handler's callbacks;
 * later messages of the connection go to micro__stream_deliver, and the
 * socket's end to micro__stream_gone. *out is the stream (owned by the
 * framework). Errors (the caller answers them): MICRO_ENOMEM.
 */
int micro__stream_accept(micro__stream_host *host, void *conn,
    micro_socket *sock, micro_msg *first, const struct micro__handler *h,
    const micro_codec_ops *codec, const char *ct, micro_stream **out);
/* Server, loop thread: the next message of the connection (taken). */
void micro__stream_deliver(micro_stream *s, micro_msg *m);
/* Server, loop thread: the connection's peer ended its side (rc 0) or it
 * failed; or the socket is gone (gone true: the socket must not be used
 * any more). */
void micro__stream_gone(micro_stream *s, int rc, bool gone);
/* Server, loop thread: the socket's output has been written. */
void micro__stream_drain(micro_stream *s);
/* Server, loop thread: the server stops: the stream ends with 503. */
void micro__stream_stop(micro_stream *s);

/* Client: what an opened stream needs. */
typedef struct micro__stream_client_cfg {
    const micro_codec_ops *codec;
    const char *content_type;
    const char *service;
    const char *endpoint;
    const char *id;
    size_t window;
    int64_t deadline; /* 0: none */
    micro_msg *base;  /* taken: the headers of every message (request) */
} micro__stream_client_cfg;

/* Client, loop thread: make the stream on a connected socket and send the
 * opening message (the placeholder). Takes the socket on success. */
int micro__stream_client_new(micro_socket *sock,
    micro__stream_client_cfg *cfg, micro_stream **out);

#endif
