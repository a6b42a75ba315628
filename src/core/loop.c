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
    /* micro__timer heap (loop thread only) */
    micro__timer **heap;
    size_t nheap, capheap;
    uv_timer_t tick;
    int64_t tick_due; /* when tick is armed for, 0: not armed */
    /* micro__loop_defer: run by an idle handle, which also keeps the loop
     * from sleeping while the queue is not empty */
    uv_idle_t idle;
    micro__task *dhead, *dtail;
    bool idle_on;
};

/* Run the tasks posted so far: one batch. Tasks posted while it runs come
 * with their own uv_async_send, so they run on the next turn, after the
 * loop has polled its sockets: threads that keep posting cannot hold the
 * loop here (a stream's senders re-post as fast as it flushes). */
static void
drain_batch(micro_loop *l)
{
    pthread_mutex_lock(&l->mu);
    micro__task *t = l->head;
    l->head = l->tail = NULL;
    pthread_mutex_unlock(&l->mu);
    while (t != NULL) {
        micro__task *next = t->next;
        t->fn(t);
        t = next;
    }
}

/* Run tasks until none is left (the loop is closing). */
static void
drain(micro_loop *l)
{
    for (;;) {
        pthread_mutex_lock(&l->mu);
        bool empty = l->head == NULL;
        pthread_mutex_unlock(&l->mu);
        if (empty) {
            return;
        }
        drain_batch(l);
    }
}

static void on_idle(uv_idle_t *h);

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
    drain_batch(l);
    pthread_mutex_lock(&l->mu);
    bool closing = l->closing;
    pthread_mutex_unlock(&l->mu);
    if (closing) {
        drain(l);
        while (l->dhead != NULL) {
            on_idle(&l->idle);
        }
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
    uv_timer_init(&l->uv, &l->tick);
    l->tick.data = l;
    uv_idle_init(&l->uv, &l->idle);
    l->idle.data = l;
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
    micro__free(l->heap);
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

int64_t
micro__loop_now(micro_loop *l)
{
    return (int64_t) uv_now(&l->uv);
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

static void
on_idle(uv_idle_t *h)
{
    micro_loop *l = h->data;
    micro__task *t = l->dhead;
    l->dhead = l->dtail = NULL;
    uv_idle_stop(&l->idle);
    l->idle_on = false;
    while (t != NULL) {
        micro__task *next = t->next;
        t->fn(t);
        t = next;
    }
}

void
micro__loop_run_deferred(micro_loop *l)
{
    while (l->dhead != NULL) {
        on_idle(&l->idle);
    }
}

void
micro__loop_defer(micro_loop *l, micro__task *t)
{
    t->next = NULL;
    if (l->dtail != NULL) {
        l->dtail->next = t;
    } else {
        l->dhead = t;
    }
    l->dtail = t;
    if (!l->idle_on) {
        l->idle_on = true;
        uv_idle_start(&l->idle, on_idle);
    }
}

/* ------------------------------------------------------------------ */
/* Timers: a binary min-heap on due time.                               */

static void
heap_set(micro_loop *l, size_t i, micro__timer *t)
{
    l->heap[i] = t;
    t->slot = i + 1;
}

static void
heap_up(micro_loop *l, size_t i)
{
    micro__timer *t = l->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (l->heap[p]->due <= t->due) {
            break;
        }
        heap_set(l, i, l->heap[p]);
        i = p;
    }
    heap_set(l, i, t);
}

static void
heap_down(micro_loop *l, size_t i)
{
    micro__timer *t = l->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= l->nheap) {
            break;
        }
        if (c + 1 < l->nheap && l->heap[c + 1]->due < l->heap[c]->due) {
            c++;
        }
        if (t->due <= l->heap[c]->due) {
            break;
        }
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

static void heap_remove(micro_loop *l, micro__timer *t);
static void tick_arm(micro_loop *l);

static void
on_tick(uv_timer_t *h)
{
    micro_loop *l = h->data;
    l->tick_due = 0;
    int64_t now = micro__now_ms();
    while (l->nheap > 0 && l->heap[0]->due <= now) {
        micro__timer *t = l->heap[0];
        heap_remove(l, t);
        t->fn(t);
    }
    tick_arm(l);
}

/* Point the uv timer at the earliest due time. */
static void
tick_arm(micro_loop *l)
{
    if (l->nheap == 0) {
        if (l->tick_due != 0) {
            uv_timer_stop(&l->tick);
            l->tick_due = 0;
        }
        return;
    }
    int64_t due = l->heap[0]->due;
    if (l->tick_due == due) {
        return;
    }
    int64_t wait = due - micro__now_ms();
    if (wait < 0) {
        wait = 0;
    }
    /* libuv measures from its cached loop time, which may lag: never
     * early, at worst a millisecond late. */
    uv_update_time(&l->uv);
    uv_timer_start(&l->tick, on_tick, (uint64_t) wait, 0);
    l->tick_due = due;
}

static void
heap_remove(micro_loop *l, micro__timer *t)
{
    size_t i = t->slot - 1;
    t->slot = 0;
    l->nheap--;
    if (i == l->nheap) {
        return;
    }
    micro__timer *last = l->heap[l->nheap];
    heap_set(l, i, last);
    if (i > 0 && l->heap[(i - 1) / 2]->due > last->due) {
        heap_up(l, i);
    } else {
        heap_down(l, i);
    }
}

int
micro__timer_start(micro_loop *l, micro__timer *t, int64_t due_ms,
    micro__timer_fn fn)
{
    t->fn = fn;
    if (t->slot != 0) {
        t->due = due_ms;
        size_t i = t->slot - 1;
        if (i > 0 && l->heap[(i - 1) / 2]->due > due_ms) {
            heap_up(l, i);
        } else {
            heap_down(l, i);
        }
        tick_arm(l);
        return 0;
    }
    if (l->nheap == l->capheap) {
        size_t nc = l->capheap ? l->capheap * 2 : 64;
        micro__timer **h = micro__realloc(l->heap, nc * sizeof(*h));
        if (h == NULL) {
            return MICRO_ENOMEM;
        }
        l->heap = h;
        l->capheap = nc;
    }
    t->due = due_ms;
    l->heap[l->nheap++] = t;
    heap_up(l, l->nheap - 1);
    tick_arm(l);
    return 0;
}

void
micro__timer_stop(micro_loop *l, micro__timer *t)
{
    if (t->slot == 0) {
        return;
    }
    heap_remove(l, t);
    tick_arm(l);
}
