/* The worker pool that runs handlers, so that they may block.
 *
 * Workers start on demand, up to the configured number: one at creation,
 * then another whenever a task is queued and no sleeping worker is left to
 * take it. An idle service (or one whose handlers all run inline) thus
 * keeps one thread instead of 16: each started thread costs resident
 * memory for its touched stack pages and, once it allocates, a glibc
 * malloc arena. Submitters signal the condition variable only when a
 * worker is asleep on it; a busy worker picks the task up when it loops,
 * which saves a futex call per task under load. */
#include "core/loop_internal.h"

#include <pthread.h>

struct micro__pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    micro__task *head;
    micro__task *tail;
    size_t pending;
    size_t waiting; /* workers blocked in pthread_cond_wait */
    bool closing;
    bool spawn_failed; /* logged once */
    int n;          /* started */
    int max;        /* configured */
    const char *name;
    pthread_t *threads;
};

static void *
worker_main(void *arg)
{
    micro__pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->closing) {
            p->waiting++;
            pthread_cond_wait(&p->cv, &p->mu);
            p->waiting--;
        }
        micro__task *t = p->head;
        if (t == NULL) {
            break; /* closing and drained */
        }
        p->head = t->next;
        if (p->head == NULL) {
            p->tail = NULL;
        }
        p->pending--;
        pthread_mutex_unlock(&p->mu);
        t->fn(t);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Start one more worker; the caller holds p->mu (the new thread blocks
 * on it until the caller lets go). */
static int
spawn(micro__pool *p)
{
    /* Handlers may recurse into JSON parsers; 512 KiB is plenty and
     * keeps the pool's virtual footprint small. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    int rc = pthread_create(&p->threads[p->n], &attr, worker_main, p);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        if (!p->spawn_failed) {
            p->spawn_failed = true;
            MICRO_LOGF(MICRO_LOG_ERR, "pool", "%s: thread %d: %s",
                p->name, p->n, micro_strerror(-rc));
        }
        return -rc;
    }
    p->n++;
    return 0;
}

int
micro__pool_new(micro__pool **out, int nthreads, const char *name)
{
    *out = NULL;
    if (nthreads < 1) {
        nthreads = 1;
    }
    micro__pool *p = micro__calloc(1, sizeof(*p));
    if (p == NULL) {
        return MICRO_ENOMEM;
    }
    p->threads = micro__calloc((size_t) nthreads, sizeof(pthread_t));
    if (p->threads == NULL) {
        micro__free(p);
        return MICRO_ENOMEM;
    }
    p->max = nthreads;
    p->name = name ? name : "pool";
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    /* No thread yet: the first task starts one. A server whose handlers
     * all run inline never starts any. */
    *out = p;
    return 0;
}

int
micro__pool_submit(micro__pool *p, micro__task *t)
{
    t->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->closing) {
        pthread_mutex_unlock(&p->mu);
        return MICRO_ECLOSED;
    }
    /* Without a worker the task would never run: fail instead. */
    bool first = p->n == 0;
    if (first) {
        if (spawn(p) != 0) {
            pthread_mutex_unlock(&p->mu);
            return MICRO_ENOMEM;
        }
    }
    if (p->tail != NULL) {
        p->tail->next = t;
    } else {
        p->head = t;
    }
    p->tail = t;
    p->pending++;
    /* A woken worker leaves `waiting` only once it runs, so tasks beyond
     * the sleepers would wait for a busy worker: start another. */
    if (!first && p->pending > p->waiting && p->n < p->max) {
        (void) spawn(p);
    }
    if (p->waiting > 0) {
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t
micro__pool_pending(micro__pool *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->pending;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void
micro__pool_free(micro__pool *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->closing = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n; i++) {
        pthread_join(p->threads[i], NULL);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    micro__free(p->threads);
    micro__free(p);
}
