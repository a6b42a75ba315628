/* Intrusive tasks for the loop and the worker pool: no allocation per
 * hand-off on the request path. */
#ifndef CMICRO_LOOP_INTERNAL_H
#define CMICRO_LOOP_INTERNAL_H

#include "core/internal.h"

typedef struct micro__task micro__task;
struct micro__task {
    void (*fn)(micro__task *t);
    micro__task *next;
};

/* Queue t to run on the loop thread (any thread). MICRO_ECLOSED when the
 * loop is shutting down (t is then not run). */
int micro__loop_post_task(micro_loop *l, micro__task *t);

/* The loop's clock: micro__now_ms as of the start of the loop's current
 * turn (libuv's cached time: no system call). Loop thread only. */
int64_t micro__loop_now(micro_loop *l);

/* Loop thread only: run t on a later turn of the loop (after the current
 * callbacks return), without a system call. */
void micro__loop_defer(micro_loop *l, micro__task *t);

/* Loop thread only: run the deferred tasks now, and those they defer,
 * until none is left. For harnesses that drive the loop's components
 * from inside one task (fuzz/fuzz_stream.c): no turn of the loop, so no
 * timer or I/O runs in between, which makes a run deterministic. */
void micro__loop_run_deferred(micro_loop *l);

/* Run fn(arg) on the loop thread and wait for its result (directly when
 * already on it). Not from inside a posted task that the loop must finish
 * first. */
int micro__loop_call(micro_loop *l, int (*fn)(void *arg), void *arg);

/*
 * State a component keeps per loop (the http transport's connections of an
 * asynchronous client, the client's pending calls), found by key without a
 * lock and told when the loop closes. Every function here is for the loop
 * thread only; the component owns the struct (usually embedded in its own).
 */
typedef struct micro__loop_ext micro__loop_ext;
struct micro__loop_ext {
    const void *key; /* the owner, e.g. its transport's state */
    /* Runs once on the loop thread when micro_loop_free begins, after every
     * posted task has run and before the loop closes what is still open.
     * x has already been removed. The component finishes its work there
     * (completing what is pending) and closes its handles with their own
     * close callbacks. May be NULL. */
    void (*on_close)(micro__loop_ext *x);
    micro__loop_ext *next;
};

micro__loop_ext *micro__loop_ext_find(micro_loop *l, const void *key);
void micro__loop_ext_add(micro_loop *l, micro__loop_ext *x);
/* No-op when x is not on l (e.g. already removed for on_close). */
void micro__loop_ext_remove(micro_loop *l, micro__loop_ext *x);
/* True once micro_loop_free has begun: posts fail from then on, and
 * components should start nothing new. Any thread. */
bool micro__loop_closing(micro_loop *l);

/*
 * Timers on a loop without a libuv handle each: a heap per loop driven by
 * one uv_timer, so a timer is a plain struct that needs no asynchronous
 * close (it can live inside any object and be stopped synchronously).
 * Loop thread only. Times are monotonic milliseconds (micro__now_ms).
 */
typedef struct micro__timer micro__timer;
typedef void (*micro__timer_fn)(micro__timer *t);
struct micro__timer {
    micro__timer_fn fn;
    int64_t due;
    size_t slot; /* heap index + 1; 0 when not armed */
};

/* Arm (or re-arm) t to run fn at due. MICRO_ENOMEM (t not armed). */
int micro__timer_start(micro_loop *l, micro__timer *t, int64_t due_ms,
    micro__timer_fn fn);
/* Disarm; no-op when not armed. */
void micro__timer_stop(micro_loop *l, micro__timer *t);
static inline bool
micro__timer_armed(const micro__timer *t)
{
    return t->slot != 0;
}

/* A pool of up to nthreads worker threads running tasks FIFO. Threads
 * start on demand: the first with the first task, another when a task is
 * queued and no idle worker can take it. */
typedef struct micro__pool micro__pool;
int micro__pool_new(micro__pool **out, int nthreads, const char *name);
/* Queue a task (any thread). MICRO_ECLOSED after micro__pool_free began;
 * MICRO_ENOMEM when no worker exists and none can be started. */
int micro__pool_submit(micro__pool *p, micro__task *t);
/* Run every queued task, then join the threads and free. */
void micro__pool_free(micro__pool *p);
/* Tasks queued but not started. */
size_t micro__pool_pending(micro__pool *p);

#endif
