/*
 * Layer 2: one HTTP/2 connection engine (nghttp2) over a byte stream
 * (io/stream.h), for client and server sessions alike: h2c with prior
 * knowledge over TCP now, and the same code under a TLS stream (ALPN h2)
 * since it only sees a micro__bs.
 *
 *  - streams multiplexed; the server advertises max_concurrent (nghttp2
 *    refuses streams above it with REFUSED_STREAM);
 *  - flow control is the backpressure: received DATA is acknowledged to
 *    the peer (WINDOW_UPDATE) only when the owner calls
 *    micro__h2_stream_consume, so a stream whose owner stops taking data
 *    stops its peer after one window (stream_window), and memory stays
 *    bounded; the connection window is given back at once so one slow
 *    stream does not stall the others;
 *  - output: the engine stops producing frames while the byte stream's
 *    unsent bytes exceed out_high and resumes on its drain;
 *  - keepalive PING (ping_ms, ping_timeout_ms); GOAWAY on a graceful stop
 *    (streams in flight finish, new ones are refused; the connection closes
 *    when the last one is done); RST_STREAM both ways, with a budget of
 *    peer resets (a reset flood ends the connection with ENHANCE_YOUR_CALM).
 *
 * Threads: the loop's. Callbacks run on it, never inside micro__h2_new,
 * micro__h2_request or the stream calls below, except micro__h2_close,
 * which runs the streams' on_close before returning. Not installed.
 */
#ifndef CMICRO_HTTP_H2_H
#define CMICRO_HTTP_H2_H

#include "io/stream.h"

typedef struct micro__h2 micro__h2;
typedef struct micro__h2_stream micro__h2_stream;

/* A header field (borrowed; not NUL-terminated necessarily: use lengths,
 * though the engine's own always are). */
typedef struct micro__h2_nv {
    const char *name;
    const char *value;
    size_t namelen, valuelen;
} micro__h2_nv;

typedef struct micro__h2_cfg {
    bool server;
    uint32_t max_concurrent;  /* server: concurrent streams (0: 1000) */
    uint32_t stream_window;   /* receive window of a stream (0: 1 MiB) */
    size_t max_header_list;   /* bytes of one header block (0: 64 KiB) */
    size_t out_high;          /* unsent bytes that stop output (0: 256 KiB) */
    int64_t ping_ms;          /* PING after this long silent (0: never) */
    int64_t ping_timeout_ms;  /* no answer within: close (0: 20 s) */
    uint32_t reset_budget;    /* peer resets tolerated (0: 1000; each
                                 stream that completes earns one back) */
} micro__h2_cfg;

typedef struct micro__h2_cbs {
    /* Server: a request's headers arrived on a new stream (nv borrowed for
     * the call, pseudo-headers first). The owner sets the stream's
     * callbacks or resets it. */
    void (*on_stream)(void *arg, micro__h2 *c, micro__h2_stream *st,
        const micro__h2_nv *nv, size_t n);
    /* The connection is gone (every stream had its on_close first): rc
     * MICRO_EOF (peer closed / GOAWAY completed), MICRO_ETIMEDOUT (ping),
     * MICRO_EPROTO (a protocol error), an I/O error. Not after
     * micro__h2_close. The engine is freed after it returns. */
    void (*on_close)(void *arg, micro__h2 *c, int rc);
} micro__h2_cbs;

typedef struct micro__h2_stream_cbs {
    /* Client: the response headers (trailers false), then the trailers
     * (true). Server: trailers of a request. nv borrowed for the call. */
    void (*on_headers)(void *arg, micro__h2_stream *st,
        const micro__h2_nv *nv, size_t n, bool trailers);
    /* DATA bytes, borrowed for the call. The owner calls
     * micro__h2_stream_consume(st, n) once it has taken them. */
    void (*on_data)(void *arg, micro__h2_stream *st, const uint8_t *p,
        size_t n);
    /* The peer ended its side (END_STREAM). */
    void (*on_end)(void *arg, micro__h2_stream *st);
    /* The stream's unsent output fell to zero: what it queued was framed
     * and handed to the byte stream, which is under out_high (after each
     * output pass that took some of it, and on the byte stream's drain).
     * Optional. */
    void (*on_drain)(void *arg, micro__h2_stream *st);
    /* The stream is over: rc 0 (both sides ended), MICRO_ECANCELED (the
     * peer reset it: h2err its code), MICRO_ECONNRESET (the connection was
     * lost), MICRO_ECERT / MICRO_ETLS (the TLS stream under it failed, e.g.
     * the server refused our certificate after a TLS 1.3 handshake),
     * MICRO_ECLOSED (the engine closed). Last callback for st,
     * which is freed after it returns. */
    void (*on_close)(void *arg, micro__h2_stream *st, int rc,
        uint32_t h2err);
} micro__h2_stream_cbs;

/* HTTP/2 error codes used here. */
#define MICRO__H2_NO_ERROR 0u
#define MICRO__H2_PROTOCOL_ERROR 1u
#define MICRO__H2_INTERNAL_ERROR 2u
#define MICRO__H2_REFUSED_STREAM 7u
#define MICRO__H2_CANCEL 8u
#define MICRO__H2_ENHANCE_YOUR_CALM 11u

/* Take bs (closed on failure), send the preface and SETTINGS, read. cfg
 * copied; cbs borrowed for the connection's life. */
int micro__h2_new(micro__h2 **out, micro__bs *bs, const micro__h2_cfg *cfg,
    const micro__h2_cbs *cbs, void *arg);
/* Close at once: open streams get on_close(MICRO_ECLOSED) inside this
 * call; the connection's on_close does not run. */
void micro__h2_close(micro__h2 *c);
/* Graceful stop: GOAWAY; streams in flight finish, new ones are refused;
 * on_close(MICRO_EOF) once the last one is done. */
void micro__h2_goaway(micro__h2 *c);
/* Client: may this connection open a stream (no GOAWAY seen, alive)? */
bool micro__h2_usable(const micro__h2 *c);
/* Streams open. */
size_t micro__h2_nstreams(const micro__h2 *c);
/* Bytes given to the byte stream and not yet written. */
size_t micro__h2_unsent(const micro__h2 *c);
const char *micro__h2_remote(const micro__h2 *c);
const char *micro__h2_local(const micro__h2 *c);
void micro__h2_set_arg(micro__h2 *c, void *arg);
/* Peer resets seen / streams refused for exceeding the budget. */
uint64_t micro__h2_peer_resets(const micro__h2 *c);

/* Client: open a stream with these request headers (pseudo-headers
 * first; copied). Data follows with micro__h2_stream_write, the end with
 * micro__h2_stream_end. MICRO_ECLOSED when the connection cannot take
 * streams any more. Streams over the peer's limit wait inside nghttp2. */
int micro__h2_request(micro__h2 *c, const micro__h2_nv *nv, size_t n,
    const micro__h2_stream_cbs *cbs, void *arg, micro__h2_stream **out);

void micro__h2_stream_set_cbs(micro__h2_stream *st,
    const micro__h2_stream_cbs *cbs, void *arg);
micro__h2 *micro__h2_stream_conn(const micro__h2_stream *st);
int32_t micro__h2_stream_id(const micro__h2_stream *st);
/* Server: the response headers (copied); end true: nothing follows (a
 * trailers-only answer: END_STREAM on this HEADERS frame). Once. */
int micro__h2_stream_respond(micro__h2_stream *st, const micro__h2_nv *nv,
    size_t n, bool end);
bool micro__h2_stream_responded(const micro__h2_stream *st);
/* Queue DATA (takes *buf: zeroed on return). MICRO_ECLOSED after the
 * end or a reset. */
int micro__h2_stream_write(micro__h2_stream *st, micro_buf *buf);
/* End our side once queued DATA is sent, with trailers (server; copied)
 * or none. Idempotent. */
int micro__h2_stream_end(micro__h2_stream *st, const micro__h2_nv *trailers,
    size_t n);
/* The owner took n bytes of DATA: the peer may send as many more. */
void micro__h2_stream_consume(micro__h2_stream *st, size_t n);
/* RST_STREAM with code; no callback for st runs after this. */
void micro__h2_stream_reset(micro__h2_stream *st, uint32_t code);
/* DATA queued and not yet framed. */
size_t micro__h2_stream_unsent(const micro__h2_stream *st);

#endif
