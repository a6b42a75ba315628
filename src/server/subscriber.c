/*
 * Server subscribers (Go Micro's micro.RegisterSubscriber): a handler per
 * topic with an optional queue group, fed by the server's broker and by
 * events arriving over the transport (a message with Micro-Topic, §2.3).
 *
 * Each event is decoded by its Content-Type (default application/protobuf,
 * as Go Micro's server) with the codec table; an undecodable event reaches
 * no handler and is counted and logged. The handler sees a micro_request
 * whose headers are the message header, whose body is the decoded payload
 * and whose endpoint is the topic. Subscriber wrappers run around it. A
 * handler error is counted and logged.
 *
 * Broker subscriptions are made by micro_server_start_subscribers (the
 * service calls it after registering) and removed by
 * micro_server_stop_subscribers (before deregistering).
 *
 * Threads. Subscribers may be added at any time, also while events are
 * delivered: the list is append-only (entries live until the server is
 * freed) and linked through atomic pointers, so the event paths and the
 * record walk it without a lock while micro_server_subscribe appends.
 * The broker subscription of each entry (sub, subscribing) and the
 * active state are guarded by the mutex, which is never held across a
 * broker call or a handler.
 */
#include "server/server_internal.h"
#include "core/msg_internal.h"
#include "registry/registry_internal.h"

#include <pthread.h>

#define EVENT_WORKERS 4

typedef struct subscriber {
    /* Immutable once on the list. */
    micro_server *s;
    char *topic;
    char *queue;
    char *name;
    micro_subscriber_fn fn;
    void *arg;
    micro_value *request;
    size_t queue_limit;
    struct subscriber *_Atomic next; /* the append-only list */
    /* Guarded by the mutex. */
    micro_sub *sub;   /* the broker subscription, while active */
    bool subscribing; /* a broker subscribe for it is in flight */
} subscriber;

typedef struct swrapper {
    micro_subscriber_wrapper_fn fn;
    void *arg;
} swrapper;

struct micro__subs {
    pthread_mutex_t mu;
    pthread_cond_t idle;       /* inflight fell to 0 */
    subscriber *_Atomic head;  /* appended under mu, read without it */
    subscriber *tail;          /* mu */
    atomic_size_t n;           /* entries on the list */
    swrapper *wrappers;        /* set before the server starts */
    size_t n_wrappers;
    micro_broker *broker;      /* mu; set while not active */
    bool active;               /* mu */
    uint64_t gen;              /* mu: bumped by every start and stop */
    size_t inflight;           /* mu: broker subscribes in progress */
    micro__pool *pool; /* transport events */
    _Atomic uint64_t events, errors, undecodable, transport_events;
    _Atomic int64_t log_ms;
};

struct micro_subscriber_chain {
    const struct micro__subs *ss;
    size_t idx;
    const subscriber *sb;
};

/* The subscribers of s, or NULL; safe from any thread. */
static struct micro__subs *
subs_peek(const micro_server *s)
{
    return __atomic_load_n(&s->subs, __ATOMIC_ACQUIRE);
}

static pthread_mutex_t subs_create_mu = PTHREAD_MUTEX_INITIALIZER;

static struct micro__subs *
subs_get(micro_server *s)
{
    struct micro__subs *ss = subs_peek(s);
    if (ss != NULL) {
        return ss;
    }
    /* Created on first use, which may race an event arriving over the
     * transport: published with a release store. */
    pthread_mutex_lock(&subs_create_mu);
    ss = subs_peek(s);
    if (ss == NULL) {
        ss = micro__calloc(1, sizeof(*ss));
        if (ss != NULL && pthread_mutex_init(&ss->mu, NULL) != 0) {
            micro__free(ss);
            ss = NULL;
        }
        if (ss != NULL && pthread_cond_init(&ss->idle, NULL) != 0) {
            pthread_mutex_destroy(&ss->mu);
            micro__free(ss);
            ss = NULL;
        }
        if (ss != NULL) {
            __atomic_store_n(&s->subs, ss, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&subs_create_mu);
    return ss;
}

/* The first subscriber and the next one: a snapshot of the list is
 * whatever these reach; entries appended meanwhile may or may not be. */
static subscriber *
list_first(const struct micro__subs *ss)
{
    return atomic_load_explicit(&ss->head, memory_order_acquire);
}

static subscriber *
list_next(const subscriber *sb)
{
    return atomic_load_explicit(&sb->next, memory_order_acquire);
}

static void
value_free(micro_value *v)
{
    if (v != NULL) {
        micro_value_clear(v);
        micro__free(v);
    }
}

static void
subscriber_free(subscriber *sb)
{
    if (sb == NULL) {
        return;
    }
    micro__free(sb->topic);
    micro__free(sb->queue);
    micro__free(sb->name);
    value_free(sb->request);
    micro__free(sb);
}

void
micro__server_subs_free(micro_server *s)
{
    struct micro__subs *ss = subs_peek(s);
    if (ss == NULL) {
        return;
    }
    micro_server_stop_subscribers(s);
    micro__pool_free(ss->pool);
    subscriber *sb = list_first(ss);
    while (sb != NULL) {
        subscriber *next = list_next(sb);
        subscriber_free(sb);
        sb = next;
    }
    micro__free(ss->wrappers);
    pthread_cond_destroy(&ss->idle);
    pthread_mutex_destroy(&ss->mu);
    micro__free(ss);
    __atomic_store_n(&s->subs, NULL, __ATOMIC_RELEASE);
}

const char *
micro_request_topic(const micro_request *r)
{
    const char *t = micro_request_header(r, "Micro-Topic");
    if (t == NULL || t[0] == '\0') {
        t = micro_request_header(r, "X-Micro-Topic");
    }
    return (t != NULL && t[0] != '\0') ? t : micro_request_endpoint(r);
}

int
micro_subscriber_next(micro_subscriber_chain *next, micro_request *req)
{
    if (next->idx < next->ss->n_wrappers) {
        const swrapper *w = &next->ss->wrappers[next->idx];
        micro_subscriber_chain n2 = {next->ss, next->idx + 1, next->sb};
        return w->fn(req, &n2, w->arg);
    }
    return next->sb->fn(req, next->sb->arg);
}

static void
log_limited(struct micro__subs *ss, const char *fmt, const char *a,
    const char *b)
{
    int64_t now = micro__now_ms();
    int64_t last = atomic_load(&ss->log_ms);
    if (now - last >= 1000 &&
        atomic_compare_exchange_strong(&ss->log_ms, &last, now)) {
        micro_log(MICRO_LOG_WARN, "server.subscriber", fmt, a, b,
            (unsigned long long) atomic_load(&ss->undecodable),
            (unsigned long long) atomic_load(&ss->errors));
    }
}

/*
 * Decode msg by its content type. MICRO_ECODEC (counted, logged) when it
 * cannot be decoded; the payload is then empty.
 */
static int
decode(micro_server *s, const micro_msg *msg, const char *topic,
    const char **ct_out, micro_buf *payload)
{
    struct micro__subs *ss = subs_peek(s);
    const char *ct = micro_msg_header(msg, "Content-Type");
    if (ct == NULL || ct[0] == '\0') {
        ct = "application/protobuf"; /* Go Micro's server default */
    }
    *ct_out = ct;
    const micro_codec_ops *codec = micro_codec_lookup(ct);
    micro_codec_info info = {0};
    size_t len = 0;
    const void *body = micro_msg_body(msg, &len);
    int rc = codec == NULL ? MICRO_ECONTENTTYPE
                           : codec->read_request(body, len, &info, payload);
    micro_codec_info_clear(&info);
    if (rc != 0) {
        atomic_fetch_add(&ss->undecodable, 1);
        atomic_fetch_add(&s->codec_errors, 1);
        log_limited(ss,
            "event on %s: undecodable %s payload; reaches no handler "
            "(undecodable %llu, handler errors %llu so far)",
            topic, ct);
        micro_buf_clear(payload);
        return MICRO_ECODEC;
    }
    return 0;
}

/* Run one subscriber on an already decoded payload. */
static int
run_one(micro_server *s, const subscriber *sb, const micro_msg *msg,
    const char *ct, const micro_buf *payload)
{
    struct micro__subs *ss = subs_peek(s);
    micro_request r = {.s = s,
        .msg = msg,
        .endpoint = sb->topic,
        .service = NULL,
        .ct = ct,
        .body = payload->data,
        .len = payload->len};
    micro_subscriber_chain chain = {ss, 0, sb};
    atomic_fetch_add(&ss->events, 1);
    int rc = micro_subscriber_next(&chain, &r);
    if (rc != 0) {
        atomic_fetch_add(&ss->errors, 1);
        log_limited(ss,
            "subscriber of %s failed (%s) (undecodable %llu, handler "
            "errors %llu so far)",
            sb->topic, micro_strerror(rc));
    }
    return rc;
}

/* The broker's delivery thread of one subscription. */
static int
on_broker_event(micro_event *ev, void *arg)
{
    subscriber *sb = arg;
    micro_buf payload = {0};
    const char *ct = NULL;
    const micro_msg *msg = micro_event_msg(ev);
    /* Undecodable events have their own count; they are not handler
     * errors for the broker. */
    int rc = decode(sb->s, msg, sb->topic, &ct, &payload) == 0
        ? run_one(sb->s, sb, msg, ct, &payload)
        : 0;
    micro_buf_clear(&payload);
    return rc;
}

/*
 * Subscribe sb to the broker when the subscribers are active and nobody
 * has (or is getting) a subscription for it. The broker is called without
 * the mutex; a stop (or stop and start) that happens meanwhile makes the
 * new subscription stale, and it is removed again here. Stop waits for
 * calls in flight, so the broker outlives them.
 */
static int
sub_attach(struct micro__subs *ss, subscriber *sb)
{
    pthread_mutex_lock(&ss->mu);
    if (!ss->active || ss->broker == NULL || sb->sub != NULL ||
        sb->subscribing) {
        pthread_mutex_unlock(&ss->mu);
        return 0;
    }
    sb->subscribing = true;
    ss->inflight++;
    uint64_t gen = ss->gen;
    micro_broker *b = ss->broker;
    pthread_mutex_unlock(&ss->mu);

    micro_sub_opts o = {.size = sizeof(o),
        .queue = sb->queue,
        .queue_limit = sb->queue_limit};
    micro_sub *sub = NULL;
    int rc = micro_broker_subscribe(b, sb->topic, &o, on_broker_event, sb,
        &sub);

    pthread_mutex_lock(&ss->mu);
    sb->subscribing = false;
    bool keep = rc == 0 && ss->active && ss->gen == gen;
    if (keep) {
        sb->sub = sub;
    }
    pthread_mutex_unlock(&ss->mu);
    if (rc == 0 && !keep) {
        micro_broker_unsubscribe(b, sub);
    }
    pthread_mutex_lock(&ss->mu);
    if (--ss->inflight == 0) {
        pthread_cond_broadcast(&ss->idle);
    }
    pthread_mutex_unlock(&ss->mu);
    return rc;
}

int
micro_server_subscribe(micro_server *s, const micro_subscriber_desc *caller)
{
    if (caller == NULL) {
        return MICRO_EINVAL;
    }
    micro_subscriber_desc sd; /* as much as the caller's version holds */
    MICRO__SIZED_COPY(&sd, caller, micro_subscriber_desc, queue_limit);
    const micro_subscriber_desc *d = &sd;
    if (s == NULL || d->topic == NULL || d->topic[0] == '\0' ||
        d->fn == NULL) {
        return MICRO_EINVAL;
    }
    struct micro__subs *ss = subs_get(s);
    if (ss == NULL) {
        return MICRO_ENOMEM;
    }
    subscriber *sb = micro__calloc(1, sizeof(*sb));
    if (sb == NULL) {
        return MICRO_ENOMEM;
    }
    sb->s = s;
    sb->fn = d->fn;
    sb->arg = d->arg;
    sb->queue_limit = d->queue_limit;
    sb->topic = micro__strdup(d->topic);
    sb->queue = micro__strdup(d->queue ? d->queue : "");
    sb->name = micro__strdup(d->name ? d->name : d->topic);
    int rc = (sb->topic && sb->queue && sb->name) ? 0 : MICRO_ENOMEM;
    if (rc == 0 && d->request != NULL) {
        micro_endpoint src = {.request = (micro_value *) d->request};
        micro_endpoint tmp = {0};
        rc = micro__endpoint_copy(&tmp, &src);
        if (rc == 0) {
            sb->request = tmp.request;
            tmp.request = NULL;
            micro_endpoint_clear(&tmp);
        }
    }
    if (rc != 0) {
        subscriber_free(sb);
        return rc;
    }
    atomic_init(&sb->next, NULL);
    pthread_mutex_lock(&ss->mu);
    if (ss->tail == NULL) {
        atomic_store_explicit(&ss->head, sb, memory_order_release);
    } else {
        atomic_store_explicit(&ss->tail->next, sb, memory_order_release);
    }
    ss->tail = sb;
    atomic_fetch_add(&ss->n, 1);
    pthread_mutex_unlock(&ss->mu);
    return sub_attach(ss, sb);
}

int
micro_server_wrap_subscriber(micro_server *s, micro_subscriber_wrapper_fn fn,
    void *arg)
{
    if (s == NULL || fn == NULL || s->started) {
        return MICRO_EINVAL;
    }
    struct micro__subs *ss = subs_get(s);
    if (ss == NULL) {
        return MICRO_ENOMEM;
    }
    swrapper *w = micro__realloc(ss->wrappers,
        (ss->n_wrappers + 1) * sizeof(*w));
    if (w == NULL) {
        return MICRO_ENOMEM;
    }
    ss->wrappers = w;
    w[ss->n_wrappers].fn = fn;
    w[ss->n_wrappers].arg = arg;
    ss->n_wrappers++;
    return 0;
}

int
micro_server_set_broker(micro_server *s, micro_broker *b)
{
    if (s == NULL) {
        return MICRO_EINVAL;
    }
    struct micro__subs *ss = subs_get(s);
    if (ss == NULL) {
        return MICRO_ENOMEM;
    }
    pthread_mutex_lock(&ss->mu);
    int rc = ss->active ? MICRO_EINVAL : 0;
    if (rc == 0) {
        ss->broker = b;
    }
    pthread_mutex_unlock(&ss->mu);
    return rc;
}

micro_broker *
micro_server_broker(const micro_server *s)
{
    struct micro__subs *ss = subs_peek(s);
    if (ss == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&ss->mu);
    micro_broker *b = ss->broker;
    pthread_mutex_unlock(&ss->mu);
    return b;
}

int
micro_server_start_subscribers(micro_server *s)
{
    if (s == NULL) {
        return MICRO_EINVAL;
    }
    struct micro__subs *ss = subs_get(s);
    if (ss == NULL) {
        return MICRO_ENOMEM;
    }
    pthread_mutex_lock(&ss->mu);
    if (ss->active) {
        pthread_mutex_unlock(&ss->mu);
        return 0;
    }
    ss->active = true;
    ss->gen++;
    pthread_mutex_unlock(&ss->mu);
    int rc = 0;
    for (subscriber *sb = list_first(ss); sb != NULL && rc == 0;
         sb = list_next(sb)) {
        rc = sub_attach(ss, sb);
    }
    if (rc != 0) {
        micro_server_stop_subscribers(s);
    }
    return rc;
}

void
micro_server_stop_subscribers(micro_server *s)
{
    struct micro__subs *ss = s != NULL ? subs_peek(s) : NULL;
    if (ss == NULL) {
        return;
    }
    pthread_mutex_lock(&ss->mu);
    ss->active = false;
    ss->gen++;
    micro_broker *b = ss->broker;
    pthread_mutex_unlock(&ss->mu);
    for (subscriber *sb = list_first(ss); sb != NULL; sb = list_next(sb)) {
        pthread_mutex_lock(&ss->mu);
        micro_sub *sub = sb->sub;
        sb->sub = NULL;
        pthread_mutex_unlock(&ss->mu);
        if (sub != NULL) {
            micro_broker_unsubscribe(b, sub);
        }
    }
    /* Subscribes in flight see the stop and undo themselves; wait for
     * them, so the broker is not used after this returns. */
    pthread_mutex_lock(&ss->mu);
    while (ss->inflight > 0) {
        pthread_cond_wait(&ss->idle, &ss->mu);
    }
    pthread_mutex_unlock(&ss->mu);
}

void
micro_server_get_subscriber_stats(micro_server *s,
    micro_subscriber_stats *out)
{
    memset(out, 0, sizeof(*out));
    struct micro__subs *ss = s != NULL ? subs_peek(s) : NULL;
    if (ss == NULL) {
        return;
    }
    out->events = atomic_load(&ss->events);
    out->errors = atomic_load(&ss->errors);
    out->undecodable = atomic_load(&ss->undecodable);
    out->transport_events = atomic_load(&ss->transport_events);
}

/* ------------------------------------------------------------------ */
/* Events over the transport (a message carrying Micro-Topic).          */

typedef struct tevent {
    micro__task task;
    micro_server *s;
    micro__reply *r;
    micro_msg *msg;
} tevent;

static void
tevent_reply(tevent *t, const char *err_json)
{
    /* Go Micro echoes the request headers, adds Micro-Error on failure,
     * and sends an empty body. */
    micro_msg *out = t->msg;
    t->msg = NULL;
    micro_msg_set_body(out, NULL, 0);
    if (err_json != NULL) {
        micro_msg_set_header(out, "Micro-Error", err_json);
        micro_msg_set_header(out, "X-Micro-Error", err_json);
        atomic_fetch_add(&t->s->errors, 1);
    }
    atomic_fetch_sub(&t->s->inflight, 1);
    t->r->fn(t->r, out);
    micro__free(t);
}

static void
tevent_fail(tevent *t, int32_t code, const char *detail)
{
    micro_error *e = micro_error_new("go.micro.server", code, detail);
    char *json = e ? micro_error_to_json(e) : NULL;
    tevent_reply(t, json ? json : "{\"id\":\"go.micro.server\"}");
    free(json);
    micro_error_free(e);
}

static void
tevent_run(micro__task *task)
{
    tevent *t = (tevent *) task;
    micro_server *s = t->s;
    struct micro__subs *ss = subs_peek(s);
    const char *topic = micro_msg_header(t->msg, "Micro-Topic");
    if (topic == NULL || topic[0] == '\0') {
        topic = micro_msg_header(t->msg, "X-Micro-Topic");
    }
    micro_buf payload = {0};
    const char *ct = NULL;
    size_t matched = 0, failed = 0;
    char first[256] = "";
    if (decode(s, t->msg, topic, &ct, &payload) != 0) {
        char d[300];
        snprintf(d, sizeof(d), "decode error: the %s payload is malformed",
            ct);
        tevent_fail(t, 400, d);
        return;
    }
    /* Every subscriber of the topic runs, as Go Micro's router does for
     * an event that arrives over the transport. */
    for (const subscriber *sb = list_first(ss); sb != NULL;
         sb = list_next(sb)) {
        if (strcmp(sb->topic, topic) != 0) {
            continue;
        }
        matched++;
        int rc = run_one(s, sb, t->msg, ct, &payload);
        if (rc != 0) {
            if (failed++ == 0) {
                snprintf(first, sizeof(first), "%s", micro_strerror(rc));
            }
        }
    }
    micro_buf_clear(&payload);
    if (matched == 0) {
        char d[300];
        snprintf(d, sizeof(d), "subscriber not found for topic %s", topic);
        tevent_fail(t, 404, d);
    } else if (failed > 0) {
        char d[300];
        snprintf(d, sizeof(d), "subscriber error: %s", first);
        tevent_fail(t, 500, d);
    } else {
        tevent_reply(t, NULL);
    }
}

void
micro__server_event(micro_server *s, micro__reply *r, micro_msg *msg)
{
    tevent *t = micro__calloc(1, sizeof(*t));
    if (t == NULL) {
        micro_msg_set_body(msg, NULL, 0);
        atomic_fetch_sub(&s->inflight, 1);
        r->fn(r, msg);
        return;
    }
    t->s = s;
    t->r = r;
    t->msg = msg;
    t->task.fn = tevent_run;
    struct micro__subs *ss = subs_peek(s);
    if (ss == NULL || atomic_load(&ss->n) == 0) {
        tevent_fail(t, 404, "this server has no subscribers");
        return;
    }
    atomic_fetch_add(&ss->transport_events, 1);
    pthread_mutex_lock(&ss->mu);
    if (ss->pool == NULL) {
        micro__pool_new(&ss->pool, EVENT_WORKERS, "events");
    }
    micro__pool *pool = ss->pool;
    pthread_mutex_unlock(&ss->mu);
    int rc =
        pool == NULL ? MICRO_ECLOSED : micro__pool_submit(pool, &t->task);
    if (rc != 0) {
        tevent_fail(t, 503, rc == MICRO_ECLOSED ? "server is shutting down"
                                                : "no worker thread could start");
    }
}

int
micro__server_subs_record(const micro_server *s, micro_registry_service *out)
{
    const struct micro__subs *ss = subs_peek(s);
    size_t n = ss != NULL ? atomic_load(&ss->n) : 0;
    if (n == 0) {
        return 0;
    }
    micro_endpoint *e = micro__realloc(out->endpoints,
        (out->n_endpoints + n) * sizeof(*e));
    if (e == NULL) {
        return MICRO_ENOMEM;
    }
    out->endpoints = e;
    /* Go Micro lists subscribers after the handlers, by topic descending.
     * The first n entries: those appended since n was read wait for the
     * next record. */
    subscriber **order = micro__malloc(n * sizeof(*order));
    if (order == NULL) {
        return MICRO_ENOMEM;
    }
    size_t k = 0;
    for (subscriber *sb = list_first(ss); sb != NULL && k < n;
         sb = list_next(sb)) {
        order[k++] = sb;
    }
    n = k;
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && strcmp(order[j - 1]->topic,
                                        order[j]->topic) < 0;
             j--) {
            subscriber *tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
        }
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        micro_endpoint src = {.name = order[i]->name,
            .request = order[i]->request};
        micro_endpoint *dst = &out->endpoints[out->n_endpoints];
        rc = micro__endpoint_copy(dst, &src);
        if (rc == 0) {
            out->n_endpoints++;
            rc = micro_metadata_set(&dst->metadata, "topic",
                order[i]->topic);
        }
        if (rc == 0) {
            rc = micro_metadata_set(&dst->metadata, "subscriber", "true");
        }
    }
    micro__free(order);
    return rc;
}
