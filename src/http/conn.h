/*
 * An HTTP/1.1 connection on a loop: the parser and writers of h1.h
 * driven over a byte stream (io/stream.h), with the rules every HTTP/1.1
 * endpoint of cmicro shares:
 *
 *  - read timeout: a message begun (or, on the server side, the first one
 *    awaited after accept) must be complete within read_timeout_ms;
 *  - idle timeout: a connection with nothing being received, nothing held
 *    by its owner and nothing unsent closes after idle_timeout_ms;
 *  - backpressure: a server-side connection stops being read while its
 *    unsent output exceeds out_high, and resumes once it is written;
 *  - a shared budget (*partial, of *partial_max bytes) for the buffered
 *    bodies of messages still arriving, over all connections sharing it;
 *  - pause/resume by the owner, exact to the message: a pause asked for
 *    inside on_end stops parsing right after that message, and the bytes
 *    already read that follow it wait for the resume.
 *
 * Messages in both directions are independent: the connection pairs
 * nothing (the general client and server above it, or the transport's
 * sockets, do what their protocol needs).
 *
 * Threads: the loop's. Callbacks never run inside micro__h1_conn_new or
 * micro__h1_conn_close. Not installed.
 */
#ifndef CMICRO_HTTP_CONN_H
#define CMICRO_HTTP_CONN_H

#include "http/h1.h"
#include "io/stream.h"

typedef struct micro__h1_conn micro__h1_conn;

typedef struct micro__h1_conn_cfg {
    micro__h1_kind kind;     /* REQUEST: a server side; RESPONSE: a client */
    micro__h1_limits lim;
    int64_t read_timeout_ms; /* 0: none */
    int64_t idle_timeout_ms; /* 0: none */
    size_t out_high;         /* 0: never stop reading for output */
    size_t *partial;         /* shared budget counter, or NULL */
    size_t partial_max;
} micro__h1_conn_cfg;

typedef struct micro__h1_conn_cbs {
    /* As micro__h1_cbs (h1.h), with the connection. on_end may pause. */
    int (*on_head)(void *arg, micro__h1_conn *c, micro__h1_head *h);
    int (*on_body)(void *arg, micro__h1_conn *c, const char *p, size_t n);
    int (*on_end)(void *arg, micro__h1_conn *c, micro_msg *msg,
        bool keep_alive);
    /* The input was refused: rc MICRO_EPROTO (status 400), MICRO_EMSGSIZE
     * (431 header, 413 body), MICRO_EBUSY (503: the shared budget is
     * spent), MICRO_ENOMEM, or a callback's code. The owner may write a
     * last answer (micro__h1_conn_write); the connection then closes once
     * it is written (or after a grace period), and on_close follows. */
    void (*on_reject)(void *arg, micro__h1_conn *c, int rc, int status);
    /* The peer ended its side (rc 0) or reading failed. Optional: without
     * it the connection closes (on_close with MICRO_EOF / the error). */
    void (*on_eof)(void *arg, micro__h1_conn *c, int rc);
    /* Unsent output has been written (after it exceeded nothing: every
     * time it falls to zero after queueing). Optional. */
    void (*on_drain)(void *arg, micro__h1_conn *c);
    /* The connection ended without the owner closing it: MICRO_EOF (the
     * peer closed), MICRO_ETIMEDOUT (read or idle timeout), the reject's
     * code, or an I/O error. Last callback; the connection is freed after
     * it returns. */
    void (*on_close)(void *arg, micro__h1_conn *c, int rc);
} micro__h1_conn_cbs;

/* Take bs (on failure it is closed) and start reading. cfg is copied; cbs is borrowed for the connection's life. */
int micro__h1_conn_new(micro__h1_conn **out, micro__bs *bs,
    const micro__h1_conn_cfg *cfg, const micro__h1_conn_cbs *cbs, void *arg);
/* Hand the connection to another owner (e.g. into or out of a pool). */
void micro__h1_conn_set_cbs(micro__h1_conn *c, const micro__h1_conn_cbs *cbs,
    void *arg);
void *micro__h1_conn_arg(const micro__h1_conn *c);

/* Queue bytes (takes *buf). MICRO_ECLOSED / an I/O error when the
 * connection cannot write any more (nothing queued). */
int micro__h1_conn_write(micro__h1_conn *c, micro_buf *buf);
/* Unsent bytes (including corked ones). */
size_t micro__h1_conn_unsent(const micro__h1_conn *c);
/* Cork (true): later writes gather in one buffer (up to 64 KiB at a time)
 * and go out in one write when uncorked (false): many small messages,
 * one system call. */
int micro__h1_conn_cork(micro__h1_conn *c, bool cork);
/* Stop (true) or resume (false) delivering messages. */
void micro__h1_conn_pause(micro__h1_conn *c, bool paused);
/* Messages the owner holds (delta +1/-1): no idle timeout while > 0. */
void micro__h1_conn_hold(micro__h1_conn *c, int delta);
/* Close once the unsent output is written (or after a grace period);
 * on_close(rc) follows then. */
void micro__h1_conn_close_after_write(micro__h1_conn *c, int rc);
/* Close now; no callback follows. Safe inside the connection's own
 * callbacks. */
void micro__h1_conn_close(micro__h1_conn *c);
/* Shut the sending side after queued output (the peer reads EOF). */
void micro__h1_conn_shutdown(micro__h1_conn *c);
/* True while a message is partly received (a client: a response began). */
bool micro__h1_conn_receiving(const micro__h1_conn *c);
/* Any byte ever received. */
bool micro__h1_conn_got_bytes(const micro__h1_conn *c);
/* The next response has no body (it answers HEAD). */
void micro__h1_conn_expect_no_body(micro__h1_conn *c);
/* Idle since (monotonic ms): the last byte received or written. */
int64_t micro__h1_conn_idle_since(const micro__h1_conn *c);
const char *micro__h1_conn_remote(const micro__h1_conn *c);
const char *micro__h1_conn_local(const micro__h1_conn *c);
micro_loop *micro__h1_conn_loop(const micro__h1_conn *c);

#endif
