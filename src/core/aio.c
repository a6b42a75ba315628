/* The completion primitive (aio.h). */
#include "core/aio.h"

enum { AIO_IDLE = 0, AIO_PENDING = 1, AIO_DONE = 2 };

void
micro__aio_init(micro__aio *a, micro_loop *loop, micro__aio_cb cb, void *arg)
{
    memset(a, 0, sizeof(*a));
    a->loop = loop;
    a->cb = cb;
    a->arg = arg;
}

void
micro__aio_set_timeout(micro__aio *a, int64_t timeout_ms)
{
    if (timeout_ms <= 0) {
        a->deadline = 0;
        return;
    }
    int64_t now = micro__now_ms();
    a->deadline = timeout_ms > INT64_MAX - now ? INT64_MAX : now + timeout_ms;
}

/* Run the owner's callback, or wake the waiting thread. */
static void
deliver(micro__aio *a)
{
    if (a->cb != NULL) {
        a->cb(a);
        return;
    }
    micro__aio_waiter *w = a->waiter;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void
deliver_task(micro__task *t)
{
    deliver((micro__aio *) t);
}

static void
on_deadline(micro__timer *t)
{
    micro__aio *a = (micro__aio *) ((char *) t - offsetof(micro__aio, timer));
    if (a->state == AIO_PENDING && a->cancel != NULL) {
        a->cancel(a, MICRO_ETIMEDOUT);
    }
}

void
micro__aio_finish(micro__aio *a, int rc, void *out)
{
    MICRO_ASSERT(a->state == AIO_PENDING);
    micro__timer_stop(a->loop, &a->timer);
    a->state = AIO_DONE;
    a->rc = rc;
    a->out = out;
    a->cancel = NULL;
    a->prov = NULL;
    if (a->in_start) {
        a->done_in_start = true;
        return;
    }
    deliver(a);
}

void
micro__aio_schedule(micro__aio *a, micro__aio_cancel_fn fn, void *prov)
{
    MICRO_ASSERT(a->state == AIO_PENDING);
    a->cancel = fn;
    a->prov = prov;
    if (a->deadline != 0 && !micro__timer_armed(&a->timer) &&
        micro__timer_start(a->loop, &a->timer, a->deadline, on_deadline) !=
            0) {
        /* No room for the timer: fail now rather than never time out. */
        fn(a, MICRO_ENOMEM);
    }
}

void
micro__aio_start(micro__aio *a, micro__aio_start_fn start, void *op)
{
    MICRO_ASSERT(a->state != AIO_PENDING);
    a->state = AIO_PENDING;
    a->rc = 0;
    a->out = NULL;
    a->cancel = NULL;
    a->prov = NULL;
    a->done_in_start = false;
    a->in_start = true;
    if (a->deadline != 0 && micro__now_ms() >= a->deadline) {
        micro__aio_finish(a, MICRO_ETIMEDOUT, NULL);
    } else {
        start(a, op);
    }
    a->in_start = false;
    if (a->done_in_start) {
        a->done_in_start = false;
        /* Never inside the call that started it: the next loop turn. */
        a->task.fn = deliver_task;
        micro__loop_defer(a->loop, &a->task);
    }
}

static void
start_task(micro__task *t)
{
    micro__aio *a = (micro__aio *) t;
    micro__aio_start(a, a->start_fn, a->start_op);
}

int
micro__aio_post(micro__aio *a, micro__aio_start_fn start, void *op)
{
    a->start_fn = start;
    a->start_op = op;
    a->task.fn = start_task;
    return micro__loop_post_task(a->loop, &a->task);
}

int
micro__aio_call(micro__aio *a, micro__aio_start_fn start, void *op)
{
    micro__aio_waiter w;
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    w.done = false;
    a->cb = NULL;
    a->waiter = &w;
    int rc = micro__aio_post(a, start, op);
    if (rc == 0) {
        pthread_mutex_lock(&w.mu);
        while (!w.done) {
            pthread_cond_wait(&w.cv, &w.mu);
        }
        pthread_mutex_unlock(&w.mu);
        rc = a->rc;
    }
    a->waiter = NULL;
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return rc;
}

void
micro__aio_cancel(micro__aio *a, int rc)
{
    if (a->state == AIO_PENDING && a->cancel != NULL) {
        a->cancel(a, rc);
    }
}
