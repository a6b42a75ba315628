/*
 * The one completion primitive for asynchronous operations (nng's nng_aio
 * is the model). An operation is started on an aio, runs on a loop, and
 * finishes it exactly once with a status and a result; the aio's callback
 * then runs on that loop's thread, never inside the call that started the
 * operation. A pending operation can be cancelled, an aio can carry a
 * deadline (the operation is cancelled with MICRO_ETIMEDOUT when it
 * passes), and a thread can wait for an aio instead of giving it a
 * callback: the synchronous form of an operation is its asynchronous form
 * plus micro__aio_wait.
 *
 * Roles: the owner (who starts operations and gets the completion) and
 * the provider (who implements one). The owner initialises the aio,
 * optionally sets a deadline, and starts the operation with
 * micro__aio_start (or micro__aio_call to start and wait from another
 * thread). The provider, in its start function, either finishes at once
 * (micro__aio_finish) or registers how to cancel itself
 * (micro__aio_schedule) and finishes later, on the loop thread.
 *
 * Not installed. Loop thread only, except micro__aio_call/_wait.
 */
#ifndef CMICRO_AIO_H
#define CMICRO_AIO_H

#include "core/loop_internal.h"

#include <pthread.h>

typedef struct micro__aio micro__aio;
typedef void (*micro__aio_cb)(micro__aio *a);
/* The provider's cancel: finish a (now or later) with rc. */
typedef void (*micro__aio_cancel_fn)(micro__aio *a, int rc);
/* An operation's start function (the provider's). */
typedef void (*micro__aio_start_fn)(micro__aio *a, void *op);

typedef struct micro__aio_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
} micro__aio_waiter;

struct micro__aio {
    micro__task task;  /* deferred completion / the hop to the loop */
    micro_loop *loop;  /* where the operation runs and cb runs */
    micro__aio_cb cb;  /* NULL: a thread waits (micro__aio_wait) */
    void *arg;         /* the owner's */
    int rc;            /* the status, once finished */
    void *out;         /* the result, by each operation's convention */
    /* provider, while pending */
    micro__aio_cancel_fn cancel;
    void *prov;
    /* start, for the hop from another thread */
    micro__aio_start_fn start_fn;
    void *start_op;
    micro__timer timer; /* the deadline */
    int64_t deadline;   /* monotonic ms; 0: none */
    micro__aio_waiter *waiter;
    unsigned char state; /* AIO_IDLE, AIO_PENDING, AIO_DONE */
    bool in_start;
    bool done_in_start;
};

/* Initialise (or re-initialise an idle or completed) aio. cb NULL means
 * the owner will wait for it. */
void micro__aio_init(micro__aio *a, micro_loop *loop, micro__aio_cb cb,
    void *arg);
/* An absolute deadline (micro__now_ms clock) for the next operation; 0:
 * none. Before start. */
static inline void
micro__aio_set_deadline(micro__aio *a, int64_t deadline_ms)
{
    a->deadline = deadline_ms;
}
/* A deadline relative to now; <= 0: none. Saturates. */
void micro__aio_set_timeout(micro__aio *a, int64_t timeout_ms);

/*
 * Owner, loop thread: run start(a, op), which must finish a or schedule
 * it. A completion that happens inside this call is delivered on a later
 * loop turn. A deadline already past finishes a with MICRO_ETIMEDOUT
 * without running start.
 */
void micro__aio_start(micro__aio *a, micro__aio_start_fn start, void *op);

/*
 * Owner, any thread but the loop's: start the operation on the loop and
 * wait for it; returns a->rc (a->out holds the result). a must have been
 * initialised with cb NULL. MICRO_ECLOSED when the loop is closing
 * (start never ran).
 */
int micro__aio_call(micro__aio *a, micro__aio_start_fn start, void *op);

/* Owner, any thread: post the start to the loop (the completion comes
 * through cb as usual). MICRO_ECLOSED when the loop is closing. */
int micro__aio_post(micro__aio *a, micro__aio_start_fn start, void *op);

/*
 * Owner, loop thread: cancel a pending operation; its provider finishes it
 * with rc (usually at once). No-op when a is not pending.
 */
void micro__aio_cancel(micro__aio *a, int rc);

/* Provider: the operation waits for an event; fn cancels it. Arms the
 * deadline. Call again to change fn (e.g. between phases). */
void micro__aio_schedule(micro__aio *a, micro__aio_cancel_fn fn, void *prov);

/* Provider: the operation is over. Exactly once per start. */
void micro__aio_finish(micro__aio *a, int rc, void *out);

static inline bool
micro__aio_pending(const micro__aio *a)
{
    return a->state == 1;
}

#endif
