/*
 * The broker front end: argument and state checks, the subscriptions with
 * their bounded queues and delivery threads, statistics, rate-limited
 * logging of drops, and Go Micro's JSON envelope shared by the http and
 * nats implementations. Each implementation only moves messages.
 */
#include "broker/broker_internal.h"
#include "core/msg_internal.h"
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
    pthread_mutex_t mu; /* connect/disconnect/subscribe/unsubscribe + list */
    bool connected;
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

/* Log drops and handler errors at most once a second, with the counts.
 * Called with s->mu held; formats nothing unless it logs. */
static void
maybe_log(micro_sub *s)
{
    int64_t now = micro__now_ms();
    if (now - s->last_log_ms < 1000) {
        return;
    }
    s->last_log_ms = now;
    if (s->unlogged_drops > 0) {
        micro_log(MICRO_LOG_WARN, "broker",
            "%s: subscription to %s%s%s dropped %llu message(s): its queue "
            "of %zu is full (slow handler)",
            s->b->ops->name, s->topic, s->queue[0] ? " queue " : "",
            s->queue, (unsigned long long) s->unlogged_drops, s->cap);
        s->unlogged_drops = 0;
    }
    if (s->unlogged_errors > 0) {
        micro_log(MICRO_LOG_WARN, "broker",
            "%s: handler of %s returned an error %llu time(s)",
            s->b->ops->name, s->topic,
            (unsigned long long) s->unlogged_errors);
        s->unlogged_errors = 0;
    }
}

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
        maybe_log(s);
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

static void *
sub_thread(void *arg)
{
    micro_sub *s = arg;
    micro_broker *b = s->b;
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
            maybe_log(s);
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
        s->unlogged_drops += left;
        s->last_log_ms = 0;
    }
    maybe_log(s);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void
sub_free(micro_sub *s)
{
    if (s == NULL) {
        return;
    }
    if (s->thread_on) {
        pthread_mutex_lock(&s->mu);
        s->closing = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thr, NULL);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    micro__free(s->ring);
    micro__free(s->topic);
    micro__free(s->queue);
    micro__free(s);
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
    pthread_mutex_init(&b->mu, NULL);
    int rc = opts ? micro_options_dup(opts, &b->opts)
                  : micro_options_new(&b->opts);
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
    micro_broker_disconnect(b);
    if (b->ops->fini != NULL) {
        b->ops->fini(b->st);
    }
    micro__free(b->st);
    micro_options_free(b->opts);
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

int
micro_broker_connect(micro_broker *b)
{
    if (b == NULL) {
        return MICRO_EINVAL;
    }
    pthread_mutex_lock(&b->mu);
    int rc = 0;
    if (!b->connected) {
        rc = b->ops->connect(b->st);
        if (rc == 0) {
            b->connected = true;
        } else {
            micro_log(MICRO_LOG_ERR, "broker", "%s: connect: %s",
                b->ops->name, micro_strerror(rc));
        }
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static int
unsubscribe_locked(micro_broker *b, micro_sub *s)
{
    micro_sub **pp = &b->subs;
    while (*pp != NULL && *pp != s) {
        pp = &(*pp)->next;
    }
    if (*pp == NULL) {
        return MICRO_ENOENT;
    }
    *pp = s->next;
    int rc = b->ops->unsubscribe(b->st, s);
    if (rc != 0) {
        micro_log(MICRO_LOG_WARN, "broker", "%s: unsubscribe %s: %s",
            b->ops->name, s->topic, micro_strerror(rc));
    }
    sub_free(s);
    return 0;
}

int
micro_broker_disconnect(micro_broker *b)
{
    if (b == NULL) {
        return MICRO_EINVAL;
    }
    pthread_mutex_lock(&b->mu);
    while (b->subs != NULL) {
        unsubscribe_locked(b, b->subs);
    }
    int rc = 0;
    if (b->connected) {
        rc = b->ops->disconnect(b->st);
        b->connected = false;
    }
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
    const micro_sub_opts *opts, micro_broker_handler_fn fn, void *arg,
    micro_sub **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (b == NULL || topic == NULL || topic[0] == '\0' || fn == NULL) {
        return MICRO_EINVAL;
    }
    int rc = micro_broker_connect(b);
    if (rc != 0) {
        return rc;
    }
    micro_sub *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    s->b = b;
    s->fn = fn;
    s->arg = arg;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->cap = opts && opts->queue_limit ? opts->queue_limit
                                       : DEFAULT_QUEUE_LIMIT;
    s->topic = micro__strdup(topic);
    s->queue = micro__strdup(opts && opts->queue ? opts->queue : "");
    s->ring = micro__calloc(s->cap, sizeof(*s->ring));
    if (s->topic == NULL || s->queue == NULL || s->ring == NULL) {
        sub_free(s);
        return MICRO_ENOMEM;
    }
    if (pthread_create(&s->thr, NULL, sub_thread, s) != 0) {
        sub_free(s);
        return MICRO_ENOMEM;
    }
    s->thread_on = true;
    pthread_mutex_lock(&b->mu);
    rc = b->ops->subscribe(b->st, s);
    if (rc == 0) {
        s->next = b->subs;
        b->subs = s;
    }
    pthread_mutex_unlock(&b->mu);
    if (rc != 0) {
        micro_log(MICRO_LOG_ERR, "broker", "%s: subscribe %s: %s",
            b->ops->name, topic, micro_strerror(rc));
        sub_free(s);
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
    if (b == NULL || s == NULL || s->b != b) {
        return MICRO_EINVAL;
    }
    if (s->thread_on && pthread_equal(s->thr, pthread_self())) {
        return MICRO_EINVAL; /* from its own handler: would join itself */
    }
    pthread_mutex_lock(&b->mu);
    int rc = unsubscribe_locked(b, s);
    pthread_mutex_unlock(&b->mu);
    return rc;
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

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
micro__base64_encode(const void *src, size_t n, micro_buf *out)
{
    const uint8_t *p = src;
    int rc = micro_buf_reserve(out, (n + 2) / 3 * 4);
    if (rc != 0) {
        return rc;
    }
    char *d = (char *) out->data + out->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 |
            p[i + 2];
        *d++ = b64[v >> 18];
        *d++ = b64[(v >> 12) & 63];
        *d++ = b64[(v >> 6) & 63];
        *d++ = b64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t) p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t) p[i + 1] << 8;
        }
        *d++ = b64[v >> 18];
        *d++ = b64[(v >> 12) & 63];
        *d++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        *d++ = '=';
    }
    out->len = (size_t) ((uint8_t *) d - out->data);
    return 0;
}

static int
b64_val(int c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Strict standard base64 with padding, as Go's encoding/json wants it. */
int
micro__base64_decode(const char *s, size_t n, micro_buf *out)
{
    if (n % 4 != 0) {
        return MICRO_ECODEC;
    }
    int rc = micro_buf_reserve(out, n / 4 * 3);
    if (rc != 0) {
        return rc;
    }
    uint8_t *d = out->data + out->len;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 || (v[k] = b64_val((unsigned char) s[i + k])) <
                    0) {
                return MICRO_ECODEC;
            }
        }
        uint32_t x = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 |
            (uint32_t) v[2] << 6 | (uint32_t) v[3];
        *d++ = (uint8_t) (x >> 16);
        if (pad < 2) {
            *d++ = (uint8_t) (x >> 8);
        }
        if (pad < 1) {
            *d++ = (uint8_t) x;
        }
    }
    out->len = (size_t) (d - out->data);
    return 0;
}

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

int
micro_broker_envelope_decode(const void *p, size_t len, micro_msg **out)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    *out = NULL;
    if (p == NULL || len == 0) {
        return MICRO_ECODEC;
    }
    cJSON *root = cJSON_ParseWithLength(p, len);
    if (root == NULL) {
        return MICRO_ECODEC;
    }
    int rc = 0;
    micro_msg *m = NULL;
    const cJSON *hdr = NULL, *body = NULL;
    if (!cJSON_IsObject(root)) {
        rc = MICRO_ECODEC;
    } else {
        /* Go's decoder matches field names case-insensitively. */
        hdr = cJSON_GetObjectItem(root, "Header");
        body = cJSON_GetObjectItem(root, "Body");
        if ((hdr != NULL && !cJSON_IsObject(hdr) && !cJSON_IsNull(hdr)) ||
            (body != NULL && !cJSON_IsString(body) && !cJSON_IsNull(body))) {
            rc = MICRO_ECODEC;
        }
    }
    if (rc == 0) {
        rc = micro_msg_new(&m);
    }
    if (rc == 0 && cJSON_IsObject(hdr)) {
        for (const cJSON *h = hdr->child; h != NULL && rc == 0; h = h->next) {
            if (!cJSON_IsString(h) || h->string == NULL) {
                rc = MICRO_ECODEC;
            } else {
                rc = micro_msg_set_header(m, h->string, h->valuestring);
            }
        }
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
    cJSON_Delete(root);
    if (rc != 0) {
        micro_msg_free(m);
        return rc == MICRO_ENOMEM ? rc : MICRO_ECODEC;
    }
    *out = m;
    return 0;
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
