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

/* Run fn(arg) on the loop thread and wait for its result (directly when
 * already on it). Not from inside a posted task that the loop must finish
 * first. */
int micro__loop_call(micro_loop *l, int (*fn)(void *arg), void *arg);

/* A fixed pool of worker threads running tasks FIFO. */
typedef struct micro__pool micro__pool;
int micro__pool_new(micro__pool **out, int nthreads, const char *name);
/* Queue a task (any thread). MICRO_ECLOSED after micro__pool_free began. */
int micro__pool_submit(micro__pool *p, micro__task *t);
/* Run every queued task, then join the threads and free. */
void micro__pool_free(micro__pool *p);
/* Tasks queued but not started. */
size_t micro__pool_pending(micro__pool *p);

#endif
