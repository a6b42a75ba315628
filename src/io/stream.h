/*
 * Layer 1: byte streams on a loop. A stream reads (start/stop), writes
 * with completion, shuts its sending side and closes; TCP is the one
 * implementation now (tcp.c), and TLS and websockets plug in here as
 * streams over streams, so that every protocol above (HTTP/1.1, HTTP/2)
 * is written once.
 *
 * Threads: a stream belongs to its loop; every function and callback runs
 * on that loop's thread. Not installed.
 */
#ifndef CMICRO_IO_STREAM_H
#define CMICRO_IO_STREAM_H

#include "core/aio.h"

typedef struct micro__bs micro__bs;

/* What a stream tells its owner. */
typedef struct micro__bs_cbs {
    /* Bytes arrived: p is valid for the call only; n > 0. The owner may
     * stop reading (micro__bs_read_stop) or close inside. */
    void (*on_read)(void *arg, micro__bs *s, const char *p, size_t n);
    /* No more input: 0 when the peer ended its side cleanly, else the
     * error (MICRO_ECONNRESET, ...). Reading has stopped; writing may
     * still work (half-closed) until the owner closes. */
    void (*on_eof)(void *arg, micro__bs *s, int rc);
    /* Unsent output fell to zero after a write had to queue. Optional. */
    void (*on_drain)(void *arg, micro__bs *s);
    /* A queued write failed (the stream is unusable; the owner closes). */
    void (*on_error)(void *arg, micro__bs *s, int rc);
} micro__bs_cbs;

typedef struct micro__bs_ops {
    const char *name;
    void (*read_start)(micro__bs *s);
    void (*read_stop)(micro__bs *s);
    /* Takes *buf (zeroed on return, success or not). 0, or an error when
     * the stream cannot write any more (then nothing was queued). */
    int (*write)(micro__bs *s, micro_buf *buf);
    /* Shut the sending side once queued output is written. */
    void (*shutdown)(micro__bs *s);
    /* Close at once (queued output is dropped); the memory goes once the
     * loop is done with it. No callback runs after this. */
    void (*close)(micro__bs *s);
} micro__bs_ops;

struct micro__bs {
    const micro__bs_ops *ops;
    micro_loop *loop;
    const micro__bs_cbs *cbs;
    void *arg;
    size_t unsent;   /* bytes accepted by write and not yet written */
    char remote[64]; /* "ip:port" of the peer, or "" */
    char local[64];  /* "ip:port" of this end, or "" */
};

static inline void
micro__bs_set_cbs(micro__bs *s, const micro__bs_cbs *cbs, void *arg)
{
    s->cbs = cbs;
    s->arg = arg;
}
static inline void
micro__bs_read_start(micro__bs *s)
{
    s->ops->read_start(s);
}
static inline void
micro__bs_read_stop(micro__bs *s)
{
    s->ops->read_stop(s);
}
static inline int
micro__bs_write(micro__bs *s, micro_buf *buf)
{
    return s->ops->write(s, buf);
}
static inline void
micro__bs_shutdown(micro__bs *s)
{
    s->ops->shutdown(s);
}
static inline void
micro__bs_close(micro__bs *s)
{
    s->ops->close(s);
}

/* ------------------------------------------------------------------ */
/* TCP (tcp.c).                                                         */

typedef struct micro__tcp_listener micro__tcp_listener;

/* A new connection: the callee owns s (sets its callbacks and starts
 * reading, or closes it). */
typedef void (*micro__tcp_accept_fn)(void *arg, micro__bs *s);

/*
 * Listen on addr ("host:port", ":port", "[v6]:port"; port 0 for any),
 * on loop. Loop thread. MICRO_EINVAL (malformed address, port over
 * 65535), MICRO_EADDRINUSE, other -errno.
 */
int micro__tcp_listen(micro_loop *loop, const char *addr,
    micro__tcp_accept_fn fn, void *arg, micro__tcp_listener **out);
/* The bound address "ip:port" (borrowed). */
const char *micro__tcp_listener_address(const micro__tcp_listener *l);
/* Stop accepting and free (the handle closes on a later turn; no accept
 * callback runs after this). Loop thread. */
void micro__tcp_listener_close(micro__tcp_listener *l);
/* Handles of tcp.c still closing on loop (for shutdown waits). */
size_t micro__tcp_closing(micro_loop *loop);

/*
 * Dial addr (an IPv4/IPv6 literal or a name, which is resolved on libuv's
 * thread pool) as an aio operation: a->out is the connected micro__bs on
 * success (the owner's). The aio's deadline bounds resolution and
 * connection; cancel works at any point. Errors: MICRO_EINVAL (malformed
 * address or port), MICRO_ECONNREFUSED, MICRO_ETIMEDOUT, MICRO_ECANCELED,
 * other -errno. Loop thread (micro__aio_start / _post).
 */
typedef struct micro__tcp_dial {
    const char *addr; /* borrowed until the aio completes */
} micro__tcp_dial;
void micro__tcp_dial_start(micro__aio *a, void *dial /* micro__tcp_dial */);

/*
 * Parse a dial address "host:port", "[v6]:port" or ":port": host copied
 * (brackets removed), *port the number (0..65535). Returns 1 with *ss
 * filled when host is a literal (or empty: the loopback), 0 when the name
 * needs resolving, MICRO_EINVAL when malformed (a bare IPv6 address needs
 * brackets, as in Go; a port must be decimal and at most 65535).
 */
struct sockaddr_storage;
int micro__addr_parse(const char *addr, char *host, size_t hcap, int *port,
    struct sockaddr_storage *ss);
/* "ip:port" / "[ip6]:port" of a socket address. */
void micro__addr_format(const struct sockaddr_storage *ss, char *out,
    size_t cap);

#endif
