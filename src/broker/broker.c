/*
 * The broker front end: argument and state checks, the subscriptions with
 * their bounded queues and delivery threads, statistics, rate-limited
 * logging of drops, and Go Micro's JSON envelope shared by the http and
 * nats implementations. Each implementation only moves messages.
 */
#include "broker/broker_internal.h"
#include "core/msg_internal.h"
#include "core/options_internal.h"
#include "plugins.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>

#define DEFAULT_QUEUE_LIMIT 4096

struct micro_event {
    micro_sub *sub;
    micro_msg *msg;
};

struct micro_sub {
    micro_broker *b;
    char *topic;
    char *queue;
    micro_broker_handler_fn fn;
    void *arg;
    void *data;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    micro_msg **ring;
    size_t cap, head, count;
    bool closing;
    bool thread_on;
    bool self_free; /* unsubscribed from its own handler: the thread frees */
    pthread_t thr;
    _Atomic uint64_t received, delivered, dropped, handler_errors;
    int64_t last_log_ms;
    uint64_t unlogged_drops, unlogged_errors;
    micro_sub *next;
};

struct micro_broker {
    const micro_broker_ops *ops;
    void *st;
    micro_options *opts;
    pthread_mutex_t mu; /* the fields below; see gate_enter */
    pthread_cond_t cv;  /* busy cleared, or detached reached 0 */
    bool busy;          /* an ops slot other than publish is running */
    bool connected;
    bool closed;        /* micro_broker_free has begun */
    int disconnecting;  /* disconnects in progress */
    size_t detached;    /* subscriptions off the list, not yet freed */
    micro_sub *subs;
    _Atomic uint64_t published, publish_errors, received, delivered, dropped,
        handler_errors, bad_messages;
    _Atomic int64_t bad_log_ms;
};

/* ------------------------------------------------------------------ */
/* Events.                                                              */

const char *
micro_event_topic(const micro_event *e)
{
    return e->sub->topic;
}

const micro_msg *
micro_event_msg(const micro_event *e)
{
    return e->msg;
}

const char *
micro_event_header(const micro_event *e, const char *key)
{
    return micro_msg_header(e->msg, key);
}

const void *
micro_event_body(const micro_event *e, size_t *len)
{
    const void *p = micro_msg_body(e->msg, len);
    return p != NULL ? p : "";
}

int
micro_event_ack(micro_event *e)
{
    (void) e;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Subscriptions.                                                       */

const char *
micro_sub_topic(const micro_sub *s)
{
    return s->topic;
}

const char *
micro_sub_queue(const micro_sub *s)
{
    return s->queue;
}

void
micro_sub_set_data(micro_sub *s, void *data)
{
    s->data = data;
}

void *
micro_sub_data(const micro_sub *s)
{
    return s->data;
}

/* What one rate-limited log line of a subscription reports. */
typedef struct sub_log {
    uint64_t drops;  /* queue full */
    uint64_t errors; /* handler errors */
    uint64_t closed; /* still queued when the subscription closed */
} sub_log;

/* With s->mu held: take the drop and error counts due for logging (at
 * most once a second, or now when force), zeroing them. Formats nothing;
 * the caller logs with sub_log_emit once it has released the lock, so
 * that a logger may call back into the broker. */
static bool
sub_log_take(micro_sub *s, bool force, sub_log *out)
{
    if (s->unlogged_drops == 0 && s->unlogged_errors == 0) {
        return false;
    }
    int64_t now = micro__now_ms();
    if (!force && now - s->last_log_ms < 1000) {
        return false;
    }
    s->last_log_ms = now;
    out->closed = 0;
    out->drops = s->unlogged_drops;
    out->errors = s->unlogged_errors;
    s->unlogged_drops = 0;
    s->unlogged_errors = 0;
    return true;
}

/* No lock held. topic, queue, cap and the broker's name never change. */
static void
sub_log_emit(const micro_sub *s, const sub_log *l)
{
    if (l->drops > 0) {
        micro_log(MICRO_LOG_WARN, "broker",
            "%s: subscription to %s%s%s dropped %llu message(s): its queue "
            "of %zu is full (slow handler)",
            s->b->ops->name, s->topic, s->queue[0] ? " queue " : "",
            s->queue, (unsigned long long) l->drops, s->cap);
    }
    if (l->errors > 0) {
        micro_log(MICRO_LOG_WARN, "broker",
            "%s: handler of %s returned an error %llu time(s)",
            s->b->ops->name, s->topic, (unsigned long long) l->errors);
    }
    if (l->closed > 0) {
        micro_log(MICRO_LOG_WARN, "broker",
            "%s: subscription to %s%s%s closed with %llu message(s) still "
            "queued; they are dropped",
            s->b->ops->name, s->topic, s->queue[0] ? " queue " : "",
            s->queue, (unsigned long long) l->closed);
    }
}

/*
 * Implementations call this with their own locks held, so it never logs:
 * a drop is counted here and logged by the subscription's delivery thread
 * once its current handler returns (a full queue means that thread has
 * work, so it will look).
 */
int
micro_broker_deliver(micro_sub *s, micro_msg **msg)
{
    if (s == NULL || msg == NULL || *msg == NULL) {
        return MICRO_EINVAL;
    }
    micro_broker *b = s->b;
    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        return MICRO_ECLOSED;
    }
    atomic_fetch_add(&s->received, 1);
    atomic_fetch_add(&b->received, 1);
    if (s->count == s->cap) {
        atomic_fetch_add(&s->dropped, 1);
        atomic_fetch_add(&b->dropped, 1);
        s->unlogged_drops++;
        pthread_mutex_unlock(&s->mu);
        return MICRO_EAGAIN;
    }
    s->ring[(s->head + s->count) % s->cap] = *msg;
    s->count++;
    *msg = NULL;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void sub_destroy(micro_sub *s);
static void broker_detached_done(micro_broker *b);

static void *
sub_thread(void *arg)
{
    micro_sub *s = arg;
    micro_broker *b = s->b;
    sub_log l;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->count == 0 && !s->closing) {
            pthread_cond_wait(&s->cv, &s->mu);
        }
        if (s->closing) {
            break;
        }
        micro_msg *m = s->ring[s->head];
        s->ring[s->head] = NULL;
        s->head = (s->head + 1) % s->cap;
        s->count--;
        pthread_mutex_unlock(&s->mu);
        micro_event ev = {s, m};
        int rc = s->fn(&ev, s->arg);
        micro_msg_free(m);
        atomic_fetch_add(&s->delivered, 1);
        atomic_fetch_add(&b->delivered, 1);
        pthread_mutex_lock(&s->mu);
        if (rc != 0) {
            atomic_fetch_add(&s->handler_errors, 1);
            atomic_fetch_add(&b->handler_errors, 1);
            s->unlogged_errors++;
        }
        if (sub_log_take(s, false, &l)) {
            pthread_mutex_unlock(&s->mu);
            sub_log_emit(s, &l);
            pthread_mutex_lock(&s->mu);
        }
    }
    /* Closing: what is still queued will never be handled. */
    size_t left = s->count;
    while (s->count > 0) {
        micro_msg_free(s->ring[s->head]);
        s->ring[s->head] = NULL;
        s->head = (s->head + 1) % s->cap;
        s->count--;
    }
    if (left > 0) {
        atomic_fetch_add(&s->dropped, left);
        atomic_fetch_add(&b->dropped, left);
    }
    memset(&l, 0, sizeof(l));
    (void) sub_log_take(s, true, &l);
    l.closed = left;
    bool log = l.drops > 0 || l.errors > 0 || l.closed > 0;
    /* Set by unsubscribe from this thread's own handler: nobody joins us,
     * so the subscription is ours to free. */
    bool self_free = s->self_free;
    pthread_mutex_unlock(&s->mu);
    if (log) {
        sub_log_emit(s, &l);
    }
    if (self_free) {
        sub_destroy(s);
        broker_detached_done(b);
    }
    return NULL;
}

static void
sub_destroy(micro_sub *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    micro__free(s->ring);
    micro__free(s->topic);
    micro__free(s->queue);
    micro__free(s);
}

/*
 * Stop s's delivery thread and free s. No library lock may be held: this
 * joins the thread, which may be running a handler that calls back into
 * the broker. Called from s's own handler (unsubscribe of itself, or a
 * disconnect from it), it cannot join itself: the thread then frees s
 * once the handler returns. b->detached counted s; the count is released
 * here or, in that case, by the thread.
 */
static void
sub_stop(micro_sub *s)
{
    micro_broker *b = s->b;
    if (s->thread_on) {
        pthread_mutex_lock(&s->mu);
        s->closing = true;
        bool self = pthread_equal(s->thr, pthread_self()) != 0;
        s->self_free = self;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (self) {
            pthread_detach(s->thr);
            return;
        }
        pthread_join(s->thr, NULL);
    }
    sub_destroy(s);
    broker_detached_done(b);
}

void
micro_sub_get_stats(micro_sub *s, micro_sub_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->received = atomic_load(&s->received);
    out->delivered = atomic_load(&s->delivered);
    out->dropped = atomic_load(&s->dropped);
    out->handler_errors = atomic_load(&s->handler_errors);
    pthread_mutex_lock(&s->mu);
    out->pending = s->count;
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------ */
/* The broker.                                                          */

/*
 * Locking. b->mu guards the broker's state and is held only for short
 * bookkeeping: never across an ops slot (network I/O), a join, a handler
 * or a log call. The implementation slots connect, disconnect, subscribe
 * and unsubscribe are serialised (as the ops contract promises) by the
 * busy gate instead: a thread takes it under mu, runs the slot with mu
 * released, and gives it back. No slot waits for a handler, so a handler
 * that calls into the broker while another thread holds the gate only
 * waits for that slot to return.
 */
static void
gate_enter(micro_broker *b)
{
    while (b->busy) {
        pthread_cond_wait(&b->cv, &b->mu);
    }
    b->busy = true;
}

static void
gate_leave(micro_broker *b)
{
    b->busy = false;
    pthread_cond_broadcast(&b->cv);
}

/* A subscription taken off the list has been freed. */
static void
broker_detached_done(micro_broker *b)
{
    pthread_mutex_lock(&b->mu);
    if (--b->detached == 0) {
        pthread_cond_broadcast(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
}

int
micro_broker_new(micro_broker **out, const micro_broker_ops *ops,
    micro_loop *loop, micro_registry *registry, const micro_options *opts)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    *out = NULL;
    if (ops == NULL || ops->abi != MICRO_BROKER_ABI || ops->init == NULL ||
        ops->connect == NULL || ops->disconnect == NULL ||
        ops->publish == NULL || ops->subscribe == NULL ||
        ops->unsubscribe == NULL) {
        return MICRO_EINVAL;
    }
    micro_broker *b = micro__calloc(1, sizeof(*b));
    if (b == NULL) {
        return MICRO_ENOMEM;
    }
    b->ops = ops;
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        micro__free(b);
        return MICRO_ENOMEM;
    }
    if (pthread_cond_init(&b->cv, NULL) != 0) {
        pthread_mutex_destroy(&b->mu);
        micro__free(b);
        return MICRO_ENOMEM;
    }
    /* The broker reads the options it declares. */
    int rc = micro__options_scoped(opts, "broker", ops->name,
        micro__broker_ops_options(ops), &b->opts);
    if (rc == 0) {
        b->st = micro__calloc(1, ops->state_size ? ops->state_size : 1);
        rc = b->st ? ops->init(b->st, b, loop, registry, b->opts)
                   : MICRO_ENOMEM;
        if (rc != 0) {
            micro__free(b->st);
            b->st = NULL;
        }
    }
    if (rc != 0) {
        micro_options_free(b->opts);
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        micro__free(b);
        return rc;
    }
    *out = b;
    return 0;
}

int
micro_broker_new_by_name(micro_broker **out, const char *name,
    micro_loop *loop, micro_registry *registry, const micro_options *opts)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    *out = NULL;
    const micro_broker_ops *ops = NULL;
    int rc = micro__broker_ops_by_name(name, &ops);
    if (rc != 0) {
        return rc;
    }
    return micro_broker_new(out, ops, loop, registry, opts);
}

void
micro_broker_free(micro_broker *b)
{
    if (b == NULL) {
        return;
    }
    pthread_mutex_lock(&b->mu);
    b->closed = true;
    pthread_mutex_unlock(&b->mu);
    micro_broker_disconnect(b);
    /* Subscriptions that unsubscribed from their own handler are freed
     * by their thread when the handler returns; a slot another thread
     * is still running finishes first. */
    pthread_mutex_lock(&b->mu);
    while (b->detached > 0 || b->busy) {
        pthread_cond_wait(&b->cv, &b->mu);
    }
    pthread_mutex_unlock(&b->mu);
    if (b->ops->fini != NULL) {
        b->ops->fini(b->st);
    }
    micro__free(b->st);
    micro_options_free(b->opts);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    micro__free(b);
}

const char *
micro_broker_name(const micro_broker *b)
{
    return b->ops->name;
}

const char *
micro_broker_address(micro_broker *b)
{
    const char *a = b->ops->address ? b->ops->address(b->st) : NULL;
    return a ? a : "";
}

const micro_options *
micro__broker_options(const micro_broker *b)
{
    return b->opts;
}

const micro_broker_ops *
micro__broker_ops(const micro_broker *b)
{
    return b->ops;
}

void *
micro__broker_state(micro_broker *b)
{
    return b->st;
}

/* With the gate held and mu released: connect unless connected. */
static int
connect_gated(micro_broker *b)
{
    pthread_mutex_lock(&b->mu);
    bool connected = b->connected;
    pthread_mutex_unlock(&b->mu);
    if (connected) {
        return 0;
    }
    int rc = b->ops->connect(b->st);
    if (rc != 0) {
        micro_log(MICRO_LOG_ERR, "broker", "%s: connect: %s", b->ops->name,
            micro_strerror(rc));
        return rc;
    }
    pthread_mutex_lock(&b->mu);
    b->connected = true;
    pthread_mutex_unlock(&b->mu);
    return 0;
}

int
micro_broker_connect(micro_broker *b)
{
    if (b == NULL) {
        return MICRO_EINVAL;
    }
    pthread_mutex_lock(&b->mu);
    if (b->closed) {
        pthread_mutex_unlock(&b->mu);
        return MICRO_ECLOSED;
    }
    gate_enter(b);
    pthread_mutex_unlock(&b->mu);
    int rc = connect_gated(b);
    pthread_mutex_lock(&b->mu);
    gate_leave(b);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/*
 * Detach everything under the lock, then unsubscribe and disconnect
 * through the implementation, then stop the delivery threads: all with
 * no lock held, so running handlers may call into the broker meanwhile
 * (a subscribe then fails with MICRO_ECLOSED, an unsubscribe of a
 * subscription being removed with MICRO_ENOENT).
 */
int
micro_broker_disconnect(micro_broker *b)
{
    if (b == NULL) {
        return MICRO_EINVAL;
    }
    pthread_mutex_lock(&b->mu);
    b->disconnecting++;
    gate_enter(b);
    micro_sub *list = b->subs;
    b->subs = NULL;
    for (micro_sub *s = list; s != NULL; s = s->next) {
        b->detached++;
    }
    bool connected = b->connected;
    pthread_mutex_unlock(&b->mu);

    for (micro_sub *s = list; s != NULL; s = s->next) {
        int rc = b->ops->unsubscribe(b->st, s);
        if (rc != 0) {
            micro_log(MICRO_LOG_WARN, "broker", "%s: unsubscribe %s: %s",
                b->ops->name, s->topic, micro_strerror(rc));
        }
    }
    int rc = connected ? b->ops->disconnect(b->st) : 0;

    pthread_mutex_lock(&b->mu);
    b->connected = false;
    gate_leave(b);
    pthread_mutex_unlock(&b->mu);

    while (list != NULL) {
        micro_sub *s = list;
        list = s->next;
        sub_stop(s);
    }
    pthread_mutex_lock(&b->mu);
    b->disconnecting--;
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int
micro_broker_publish(micro_broker *b, const char *topic, const micro_msg *msg)
{
    if (b == NULL || topic == NULL || topic[0] == '\0' || msg == NULL) {
        return MICRO_EINVAL;
    }
    /* A racy read is fine: a publish concurrent with disconnect is
     * answered by the implementation (closed). */
    int rc = b->ops->publish(b->st, topic, msg);
    if (rc == 0) {
        atomic_fetch_add(&b->published, 1);
    } else {
        atomic_fetch_add(&b->publish_errors, 1);
    }
    return rc;
}

int
micro_broker_subscribe(micro_broker *b, const char *topic,
    const micro_sub_opts *caller, micro_broker_handler_fn fn, void *arg,
    micro_sub **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    micro_sub_opts so; /* as much as the caller's version holds */
    MICRO__SIZED_COPY(&so, caller, micro_sub_opts, queue_limit);
    const micro_sub_opts *opts = &so;
    if (b == NULL || topic == NULL || topic[0] == '\0' || fn == NULL) {
        return MICRO_EINVAL;
    }
    pthread_mutex_lock(&b->mu);
    bool closing = b->closed || b->disconnecting > 0;
    pthread_mutex_unlock(&b->mu);
    if (closing) {
        return MICRO_ECLOSED;
    }
    micro_sub *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    s->b = b;
    s->fn = fn;
    s->arg = arg;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        micro__free(s);
        return MICRO_ENOMEM;
    }
    if (pthread_cond_init(&s->cv, NULL) != 0) {
        pthread_mutex_destroy(&s->mu);
        micro__free(s);
        return MICRO_ENOMEM;
    }
    s->cap = opts->queue_limit ? opts->queue_limit : DEFAULT_QUEUE_LIMIT;
    s->topic = micro__strdup(topic);
    s->queue = micro__strdup(opts->queue ? opts->queue : "");
    s->ring = micro__calloc(s->cap, sizeof(*s->ring));
    int rc = 0;
    if (s->topic == NULL || s->queue == NULL || s->ring == NULL) {
        rc = MICRO_ENOMEM;
    } else if (pthread_create(&s->thr, NULL, sub_thread, s) != 0) {
        rc = MICRO_ENOMEM;
    } else {
        s->thread_on = true;
    }
    pthread_mutex_lock(&b->mu);
    /* Counted as detached until it is on the list, so that a free that
     * races this call waits for it. */
    b->detached++;
    if (rc == 0 && (b->closed || b->disconnecting > 0)) {
        rc = MICRO_ECLOSED;
    }
    if (rc == 0) {
        gate_enter(b);
        pthread_mutex_unlock(&b->mu);
        rc = connect_gated(b);
        if (rc == 0) {
            rc = b->ops->subscribe(b->st, s);
            if (rc != 0) {
                micro_log(MICRO_LOG_ERR, "broker", "%s: subscribe %s: %s",
                    b->ops->name, topic, micro_strerror(rc));
            }
        }
        pthread_mutex_lock(&b->mu);
        if (rc == 0) {
            s->next = b->subs;
            b->subs = s;
            b->detached--;
        }
        gate_leave(b);
    }
    pthread_mutex_unlock(&b->mu);
    if (rc != 0) {
        sub_stop(s);
        return rc;
    }
    if (out != NULL) {
        *out = s;
    }
    return 0;
}

int
micro_broker_unsubscribe(micro_broker *b, micro_sub *s)
{
    if (b == NULL || s == NULL) {
        return MICRO_EINVAL;
    }
    /* s is looked for on the list before it is touched: one another
     * thread (or a disconnect) has removed may be freed already. */
    pthread_mutex_lock(&b->mu);
    micro_sub **pp;
    for (;;) {
        pp = &b->subs;
        while (*pp != NULL && *pp != s) {
            pp = &(*pp)->next;
        }
        if (*pp == NULL) {
            pthread_mutex_unlock(&b->mu);
            return MICRO_ENOENT;
        }
        if (!b->busy) {
            break;
        }
        pthread_cond_wait(&b->cv, &b->mu);
    }
    *pp = s->next;
    b->detached++;
    gate_enter(b);
    pthread_mutex_unlock(&b->mu);
    int rc = b->ops->unsubscribe(b->st, s);
    pthread_mutex_lock(&b->mu);
    gate_leave(b);
    pthread_mutex_unlock(&b->mu);
    if (rc != 0) {
        micro_log(MICRO_LOG_WARN, "broker", "%s: unsubscribe %s: %s",
            b->ops->name, s->topic, micro_strerror(rc));
    }
    sub_stop(s);
    return 0;
}

void
micro_broker_get_stats(micro_broker *b, micro_broker_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->published = atomic_load(&b->published);
    out->publish_errors = atomic_load(&b->publish_errors);
    out->received = atomic_load(&b->received);
    out->delivered = atomic_load(&b->delivered);
    out->dropped = atomic_load(&b->dropped);
    out->handler_errors = atomic_load(&b->handler_errors);
    out->bad_messages = atomic_load(&b->bad_messages);
}

void
micro_broker_count_bad(micro_broker *b, const char *why)
{
    uint64_t n = atomic_fetch_add(&b->bad_messages, 1) + 1;
    int64_t now = micro__now_ms();
    int64_t last = atomic_load(&b->bad_log_ms);
    if (now - last >= 1000 &&
        atomic_compare_exchange_strong(&b->bad_log_ms, &last, now)) {
        micro_log(MICRO_LOG_WARN, "broker",
            "%s: undecodable message (%s); %llu so far", b->ops->name,
            why ? why : "?", (unsigned long long) n);
    }
}

/* ------------------------------------------------------------------ */
/* Go Micro's envelope: {"Header":{...},"Body":"<base64 std, padded>"}. */


static int
cmp_idx(const void *a, const void *b, void *m)
{
    const char *ka = NULL, *kb = NULL, *v = NULL;
    micro_msg_header_at(m, *(const size_t *) a, &ka, &v);
    micro_msg_header_at(m, *(const size_t *) b, &kb, &v);
    return strcmp(ka, kb);
}

int
micro_broker_envelope_encode(const micro_msg *m, micro_buf *out)
{
    if (m == NULL || out == NULL) {
        return MICRO_EINVAL;
    }
    size_t n = micro_msg_header_count(m);
    size_t stack[32];
    size_t *idx = n <= 32 ? stack : micro__malloc(n * sizeof(size_t));
    if (idx == NULL) {
        return MICRO_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        idx[i] = i;
    }
    /* Go's encoding/json writes map keys sorted. */
    qsort_r(idx, n, sizeof(size_t), cmp_idx, (void *) m);
    size_t start = out->len;
    int rc = micro_buf_append(out, "{\"Header\":{", 11);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *k = NULL, *v = NULL;
        micro_msg_header_at(m, idx[i], &k, &v);
        if (i > 0) {
            rc = micro_buf_append(out, ",", 1);
        }
        if (rc == 0) {
            rc = micro__json_append_string(out, k, strlen(k));
        }
        if (rc == 0) {
            rc = micro_buf_append(out, ":", 1);
        }
        if (rc == 0) {
            rc = micro__json_append_string(out, v, strlen(v));
        }
    }
    if (rc == 0) {
        rc = micro_buf_append(out, "},\"Body\":\"", 10);
    }
    size_t len = 0;
    const void *body = micro_msg_body(m, &len);
    if (rc == 0) {
        rc = micro__base64_encode(body, len, out);
    }
    if (rc == 0) {
        rc = micro_buf_append(out, "\"}", 2);
    }
    if (idx != stack) {
        micro__free(idx);
    }
    if (rc != 0) {
        out->len = start;
    }
    return rc;
}

#define ENV_MAX_KEYS 1024

/* Go's json.Unmarshal into struct{Header map[string]string; Body []byte}:
 * field names match case-insensitively, the last of duplicate keys wins.
 * More than ENV_MAX_KEYS header keys: refused (*why says so). */
int
micro__broker_envelope_decode(const void *p, size_t len, micro_msg **out,
    const char **why)
{
    const char *ignored = NULL;
    if (why == NULL) {
        why = &ignored;
    }
    *out = NULL;
    *why = "invalid JSON envelope";
    if (p == NULL || len == 0) {
        return MICRO_ECODEC;
    }
    int rc = 0;
    cJSON *root = micro__json_parse(p, len, NULL, &rc);
    if (root == NULL) {
        return rc;
    }
    micro_msg *m = NULL;
    const cJSON *hdr = NULL, *body = NULL;
    const cJSON **keys = NULL;
    size_t nk = 0;
    if (!cJSON_IsObject(root)) {
        rc = MICRO_ECODEC;
    } else {
        hdr = cJSON_GetObjectItem(root, "Header");
        body = cJSON_GetObjectItem(root, "Body");
        if ((hdr != NULL && !cJSON_IsObject(hdr) && !cJSON_IsNull(hdr)) ||
            (body != NULL && !cJSON_IsString(body) && !cJSON_IsNull(body))) {
            rc = MICRO_ECODEC;
        }
    }
    if (rc == 0 && cJSON_IsObject(hdr)) {
        for (const cJSON *h = hdr->child; h != NULL; h = h->next) {
            if (!cJSON_IsString(h) || h->string == NULL) {
                rc = MICRO_ECODEC;
                break;
            }
            if (++nk > ENV_MAX_KEYS) {
                *why = "over 1024 header keys (ENV_MAX_KEYS)";
                rc = MICRO_EMSGSIZE;
                break;
            }
        }
        if (rc == 0 && nk > 0) {
            keys = micro__malloc(nk * sizeof(*keys));
            rc = keys != NULL ? 0 : MICRO_ENOMEM;
        }
        size_t i = 0;
        for (const cJSON *h = hdr->child; rc == 0 && h != NULL; h = h->next) {
            keys[i++] = h;
        }
    }
    if (rc == 0) {
        rc = micro_msg_new(&m);
    }
    /* Last first, then one hashed pass keeping the first of each name:
     * the last duplicate wins, as in Go, in linear time. */
    for (size_t i = nk; rc == 0 && i-- > 0;) {
        const char *k = keys[i]->string;
        const char *v = keys[i]->valuestring;
        rc = micro__msg_add_header_n(m, k, strlen(k), v, strlen(v));
    }
    if (rc == 0 && nk > 1) {
        rc = micro__msg_dedup(m);
    }
    if (rc == 0 && cJSON_IsString(body)) {
        micro_buf b = {0};
        rc = micro__base64_decode(body->valuestring,
            strlen(body->valuestring), &b);
        if (rc == 0) {
            micro_msg_take_body(m, &b);
        }
        micro_buf_clear(&b);
    }
    micro__free(keys);
    cJSON_Delete(root);
    if (rc != 0) {
        micro_msg_free(m);
        return rc == MICRO_ENOMEM ? rc : MICRO_ECODEC;
    }
    *out = m;
    return 0;
}

int
micro_broker_envelope_decode(const void *p, size_t len, micro_msg **out)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    return micro__broker_envelope_decode(p, len, out, NULL);
}

/* A deep copy of a message. */
int
micro__msg_copy(const micro_msg *src, micro_msg **out)
{
    *out = NULL;
    micro_msg *m = NULL;
    int rc = micro_msg_new(&m);
    size_t n = micro_msg_header_count(src);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *k = NULL, *v = NULL;
        micro_msg_header_at(src, i, &k, &v);
        rc = micro__msg_add_header_n(m, k, strlen(k), v, strlen(v));
    }
    size_t len = 0;
    const void *body = micro_msg_body(src, &len);
    if (rc == 0 && len > 0) {
        rc = micro_msg_set_body(m, body, len);
    }
    if (rc != 0) {
        micro_msg_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
