/* The worker pool that runs handlers, so that they may block. */
#include "core/loop_internal.h"

#include <pthread.h>

struct micro__pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    micro__task *head;
    micro__task *tail;
    size_t pending;
    bool closing;
    int n;
    pthread_t *threads;
};

static void *
worker_main(void *arg)
{
    micro__pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->closing) {
            pthread_cond_wait(&p->cv, &p->mu);
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
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i < nthreads; i++) {
        /* Handlers may recurse into JSON parsers; 256 KiB is plenty and
         * keeps the pool's virtual footprint small. */
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 512 * 1024);
        int rc = pthread_create(&p->threads[i], &attr, worker_main, p);
        pthread_attr_destroy(&attr);
        if (rc != 0) {
            MICRO_LOGF(MICRO_LOG_ERR, "pool", "%s: thread %d: %s",
                name ? name : "pool", i, micro_strerror(-rc));
            break;
        }
        p->n++;
    }
    if (p->n == 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        micro__free(p->threads);
        micro__free(p);
        return MICRO_ENOMEM;
    }
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
    if (p->tail != NULL) {
        p->tail->next = t;
    } else {
        p->head = t;
    }
    p->tail = t;
    p->pending++;
    pthread_cond_signal(&p->cv);
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
