/* One libuv loop on one thread; other threads reach it through an MPSC
 * queue and uv_async_send, the only libuv call allowed from any thread. */
#include "core/loop_internal.h"

#include <pthread.h>
#include <signal.h>
#include <uv.h>

typedef struct post_item {
    micro__task task;
    micro_loop_fn fn;
    void *arg;
} post_item;

struct micro_loop {
    uv_loop_t uv;
    uv_async_t async;
    pthread_t thread;
    pthread_mutex_t mu;
    micro__task *head;
    micro__task *tail;
    bool closing;
    bool started;
    micro__loop_ext *exts; /* loop thread only */
};

static void
drain(micro_loop *l)
{
    for (;;) {
        pthread_mutex_lock(&l->mu);
        micro__task *t = l->head;
        l->head = l->tail = NULL;
        pthread_mutex_unlock(&l->mu);
        if (t == NULL) {
            return;
        }
        while (t != NULL) {
            micro__task *next = t->next;
            t->fn(t);
            t = next;
        }
    }
}

static void
close_any(uv_handle_t *h, void *arg)
{
    (void) arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void
on_async(uv_async_t *a)
{
    micro_loop *l = a->data;
    drain(l);
    pthread_mutex_lock(&l->mu);
    bool closing = l->closing;
    pthread_mutex_unlock(&l->mu);
    if (closing) {
        drain(l);
        /* Components with state on this loop finish it now, while their
         * handles can still be closed with their own callbacks. */
        micro__loop_ext *x;
        while ((x = l->exts) != NULL) {
            l->exts = x->next;
            x->next = NULL;
            if (x->on_close != NULL) {
                x->on_close(x);
            }
        }
        /* Whatever is still open belongs to a component that was not shut
         * down; close it so the loop can end rather than hang. */
        uv_walk(&l->uv, close_any, NULL);
    }
}

static void *
loop_main(void *arg)
{
    micro_loop *l = arg;
    /* libuv writes with write()/writev(), which raise SIGPIPE when the peer
     * has gone. Blocked on this thread, the signal stays pending and the
     * write fails with EPIPE, which the connection's owner handles; the
     * process's disposition is the application's and stays untouched. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    uv_run(&l->uv, UV_RUN_DEFAULT);
    return NULL;
}

static _Thread_local micro_loop *current_loop;

static void
mark_current(void *arg)
{
    current_loop = arg;
}

int
micro_loop_new(micro_loop **out)
{
    *out = NULL;
    micro_loop *l = micro__calloc(1, sizeof(*l));
    if (l == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = uv_loop_init(&l->uv);
    if (rc != 0) {
        micro__free(l);
        return rc;
    }
    pthread_mutex_init(&l->mu, NULL);
    uv_async_init(&l->uv, &l->async, on_async);
    l->async.data = l;
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
        uv_close((uv_handle_t *) &l->async, NULL);
        uv_run(&l->uv, UV_RUN_DEFAULT);
        uv_loop_close(&l->uv);
        pthread_mutex_destroy(&l->mu);
        micro__free(l);
        return MICRO_ENOMEM;
    }
    l->started = true;
    micro_loop_post(l, mark_current, l);
    *out = l;
    return 0;
}

void
micro_loop_free(micro_loop *l)
{
    if (l == NULL) {
        return;
    }
    pthread_mutex_lock(&l->mu);
    l->closing = true;
    pthread_mutex_unlock(&l->mu);
    uv_async_send(&l->async);
    pthread_join(l->thread, NULL);
    /* Tasks posted after the last drain: run none, but free posts. */
    micro__task *t = l->head;
    while (t != NULL) {
        micro__task *next = t->next;
        t->fn(t);
        t = next;
    }
    uv_loop_close(&l->uv);
    pthread_mutex_destroy(&l->mu);
    micro__free(l);
}

int
micro__loop_post_task(micro_loop *l, micro__task *t)
{
    t->next = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->closing) {
        pthread_mutex_unlock(&l->mu);
        return MICRO_ECLOSED;
    }
    if (l->tail != NULL) {
        l->tail->next = t;
    } else {
        l->head = t;
    }
    l->tail = t;
    pthread_mutex_unlock(&l->mu);
    uv_async_send(&l->async);
    return 0;
}

static void
run_post(micro__task *t)
{
    post_item *p = (post_item *) t;
    p->fn(p->arg);
    micro__free(p);
}

int
micro_loop_post(micro_loop *l, micro_loop_fn fn, void *arg)
{
    if (l == NULL || fn == NULL) {
        return MICRO_EINVAL;
    }
    post_item *p = micro__malloc(sizeof(*p));
    if (p == NULL) {
        return MICRO_ENOMEM;
    }
    p->task.fn = run_post;
    p->fn = fn;
    p->arg = arg;
    int rc = micro__loop_post_task(l, &p->task);
    if (rc != 0) {
        micro__free(p);
    }
    return rc;
}

int
micro_loop_is_current(const micro_loop *l)
{
    return current_loop == l;
}

void *
micro_loop_uv(micro_loop *l)
{
    return &l->uv;
}

micro__loop_ext *
micro__loop_ext_find(micro_loop *l, const void *key)
{
    for (micro__loop_ext *x = l->exts; x != NULL; x = x->next) {
        if (x->key == key) {
            return x;
        }
    }
    return NULL;
}

void
micro__loop_ext_add(micro_loop *l, micro__loop_ext *x)
{
    x->next = l->exts;
    l->exts = x;
}

void
micro__loop_ext_remove(micro_loop *l, micro__loop_ext *x)
{
    for (micro__loop_ext **pp = &l->exts; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            x->next = NULL;
            return;
        }
    }
}

bool
micro__loop_closing(micro_loop *l)
{
    pthread_mutex_lock(&l->mu);
    bool closing = l->closing;
    pthread_mutex_unlock(&l->mu);
    return closing;
}

typedef struct sync_call {
    micro__task task;
    int (*fn)(void *arg);
    void *arg;
    int rc;
    bool done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} sync_call;

static void
run_sync(micro__task *t)
{
    sync_call *s = (sync_call *) t;
    int rc = s->fn(s->arg);
    pthread_mutex_lock(&s->mu);
    s->rc = rc;
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int
micro__loop_call(micro_loop *l, int (*fn)(void *arg), void *arg)
{
    if (micro_loop_is_current(l)) {
        return fn(arg);
    }
    sync_call s = {.fn = fn, .arg = arg};
    s.task.fn = run_sync;
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    int rc = micro__loop_post_task(l, &s.task);
    if (rc == 0) {
        pthread_mutex_lock(&s.mu);
        while (!s.done) {
            pthread_cond_wait(&s.cv, &s.mu);
        }
        pthread_mutex_unlock(&s.mu);
        rc = s.rc;
    }
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    return rc;
}
