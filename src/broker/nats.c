/*
 * Broker "nats" on cnats (libnats 3.4): Go Micro's NATS broker plugin
 * (github.com/go-micro/plugins/v4/broker/nats) on the wire: the JSON
 * envelope {"Header":{...},"Body":"<base64>"} published on subject =
 * topic; a queue group is a NATS queue subscription. No ack, no registry.
 *
 * Threads. libnats delivers messages on its own threads. The callback here
 * only decodes the envelope and hands the message to the subscription's
 * bounded queue (micro_broker_deliver never blocks); the handler runs on
 * the subscription's delivery thread. Nothing here runs on, or blocks, a
 * libuv loop: publish buffers in libnats (also while reconnecting, up to
 * the reconnect buffer) and never flushes.
 *
 * Reconnect: unlimited attempts every 100 ms; libnats re-sends the
 * subscriptions after a reconnect, so they survive a server restart.
 */
#include "broker/broker_internal.h"
#include "broker/nats_options.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

typedef struct nsub {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool closed;   /* set by unsubscribe: no delivery after */
    bool complete; /* libnats will not call on_msg again */
    micro_sub *sub;
    natsSubscription *ns;
    micro_broker *b;
} nsub;

typedef struct natsb {
    micro_broker *b;
    char *servers; /* comma-separated, as given */
    natsConnection *nc;
    pthread_mutex_t mu;
    atomic_bool closing; /* our own Close: not worth a warning */
    pthread_cond_t closed_cv;
    bool closed; /* libnats ran the closed callback: no callback after */
    char addr[256];
} natsb;

static int
status_err(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return 0;
    case NATS_NO_MEMORY:
        return MICRO_ENOMEM;
    case NATS_TIMEOUT:
        return MICRO_ETIMEDOUT;
    case NATS_NO_SERVER:
        return MICRO_ECONNREFUSED;
    case NATS_CONNECTION_CLOSED:
        return MICRO_ECLOSED;
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
        return MICRO_EINVAL;
    case NATS_MAX_PAYLOAD:
        return MICRO_EMSGSIZE;
    case NATS_INSUFFICIENT_BUFFER:
        return MICRO_EAGAIN;
    default:
        return MICRO_EIO;
    }
}

static int
nb_init(void *st, micro_broker *b, micro_loop *loop, micro_registry *reg,
    const micro_options *opts)
{
    (void) loop;
    (void) reg;
    natsb *n = st;
    n->b = b;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->closed_cv, NULL);
    const char *a = micro_options_get_str(opts, "broker_address");
    n->servers = micro__strdup(a != NULL && a[0] != '\0' ? a
                                                        : MICRO_NATS_URL);
    if (n->servers == NULL) {
        pthread_mutex_destroy(&n->mu);
        pthread_cond_destroy(&n->closed_cv);
        return MICRO_ENOMEM;
    }
    snprintf(n->addr, sizeof(n->addr), "%s", n->servers);
    return 0;
}

static void
on_disconnected(natsConnection *nc, void *closure)
{
    (void) nc;
    natsb *n = closure;
    if (atomic_load(&n->closing)) {
        return;
    }
    micro_log(MICRO_LOG_WARN, "broker.nats",
        "disconnected from %s; reconnecting (publishes are buffered)",
        n->addr);
}

static void
on_reconnected(natsConnection *nc, void *closure)
{
    (void) nc;
    natsb *n = closure;
    micro_log(MICRO_LOG_NOTICE, "broker.nats",
        "reconnected to %s; subscriptions restored", n->addr);
}

static void
on_error(natsConnection *nc, natsSubscription *sub, natsStatus err,
    void *closure)
{
    (void) nc;
    (void) sub;
    (void) closure;
    micro_log(MICRO_LOG_WARN, "broker.nats", "asynchronous error: %s",
        natsStatus_GetText(err));
}

/* libnats runs connection callbacks in order on its own thread; closed is
 * the last one, so once it ran nothing will touch n again. */
static void
on_closed(natsConnection *nc, void *closure)
{
    (void) nc;
    natsb *n = closure;
    pthread_mutex_lock(&n->mu);
    n->closed = true;
    pthread_cond_broadcast(&n->closed_cv);
    pthread_mutex_unlock(&n->mu);
}

static int
nb_connect(void *st)
{
    natsb *n = st;
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    /* Servers: "a:4222,nats://b:4222"; bare host:port gets nats://. */
    const char *urls[16];
    char *store[16] = {0};
    int nurl = 0;
    char *copy = micro__strdup(n->servers);
    char *save = NULL;
    for (char *u = copy ? strtok_r(copy, ",", &save) : NULL;
         u != NULL && nurl < 16; u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ') {
            u++;
        }
        size_t l = strlen(u) + 8;
        store[nurl] = micro__malloc(l);
        if (store[nurl] == NULL) {
            break;
        }
        snprintf(store[nurl], l, "%s%s", strstr(u, "://") ? "" : "nats://",
            u);
        urls[nurl] = store[nurl];
        nurl++;
    }
    if (s == NATS_OK) {
        s = nurl > 0 ? natsOptions_SetServers(o, urls, nurl) : NATS_INVALID_ARG;
    }
    if (s == NATS_OK) {
        s = natsOptions_SetNoRandomize(o, true);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetAllowReconnect(o, true);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetMaxReconnect(o, -1);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectWait(o, 100);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectBufSize(o, 64 * 1024 * 1024);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetTimeout(o, 2000);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetDisconnectedCB(o, on_disconnected, n);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetReconnectedCB(o, on_reconnected, n);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetErrorHandler(o, on_error, n);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetClosedCB(o, on_closed, n);
    }
    natsConnection *nc = NULL;
    if (s == NATS_OK) {
        s = natsConnection_Connect(&nc, o);
    }
    natsOptions_Destroy(o);
    for (int i = 0; i < nurl; i++) {
        micro__free(store[i]);
    }
    micro__free(copy);
    if (s != NATS_OK) {
        micro_log(MICRO_LOG_ERR, "broker.nats", "connect %s: %s", n->servers,
            natsStatus_GetText(s));
        return status_err(s);
    }
    char url[200] = "";
    if (natsConnection_GetConnectedUrl(nc, url, sizeof(url)) == NATS_OK &&
        url[0] != '\0') {
        snprintf(n->addr, sizeof(n->addr), "%s", url);
    }
    pthread_mutex_lock(&n->mu);
    n->nc = nc;
    n->closed = false;
    pthread_mutex_unlock(&n->mu);
    atomic_store(&n->closing, false);
    return 0;
}

static int
nb_disconnect(void *st)
{
    natsb *n = st;
    pthread_mutex_lock(&n->mu);
    natsConnection *nc = n->nc;
    n->nc = NULL;
    pthread_mutex_unlock(&n->mu);
    if (nc != NULL) {
        atomic_store(&n->closing, true);
        natsConnection_Close(nc);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        pthread_mutex_lock(&n->mu);
        while (!n->closed) {
            if (pthread_cond_timedwait(&n->closed_cv, &n->mu, &ts) != 0) {
                break;
            }
        }
        pthread_mutex_unlock(&n->mu);
        natsConnection_Destroy(nc);
    }
    return 0;
}

static int
nb_publish(void *st, const char *topic, const micro_msg *msg)
{
    natsb *n = st;
    micro_buf env = {0};
    int rc = micro_broker_envelope_encode(msg, &env);
    if (rc != 0) {
        return rc;
    }
    /* The connection pointer is stable between connect and disconnect;
     * the lock only guards the pointer, not the publish. */
    pthread_mutex_lock(&n->mu);
    natsConnection *nc = n->nc;
    pthread_mutex_unlock(&n->mu);
    if (nc == NULL) {
        micro_buf_clear(&env);
        return MICRO_ECLOSED;
    }
    natsStatus s = natsConnection_Publish(nc, topic, env.data, (int) env.len);
    micro_buf_clear(&env);
    if (s != NATS_OK) {
        MICRO_LOGF(MICRO_LOG_INFO, "broker.nats", "publish %s: %s", topic,
            natsStatus_GetText(s));
    }
    return status_err(s);
}

/* A libnats thread. Decode, queue, return: never run the handler here. */
static void
on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void) nc;
    (void) sub;
    nsub *d = closure;
    micro_msg *msg = NULL;
    int rc = micro_broker_envelope_decode(natsMsg_GetData(m),
        (size_t) natsMsg_GetDataLength(m), &msg);
    natsMsg_Destroy(m);
    if (rc != 0) {
        micro_broker_count_bad(d->b, rc == MICRO_ENOMEM ? "out of memory"
            : "not a broker envelope (or over 1024 header keys)");
        return;
    }
    pthread_mutex_lock(&d->mu);
    if (!d->closed) {
        micro_broker_deliver(d->sub, &msg); /* drops are counted there */
    }
    pthread_mutex_unlock(&d->mu);
    micro_msg_free(msg);
}

static void
on_complete(void *closure)
{
    nsub *d = closure;
    pthread_mutex_lock(&d->mu);
    d->complete = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static int
nb_subscribe(void *st, micro_sub *sub)
{
    natsb *n = st;
    nsub *d = micro__calloc(1, sizeof(*d));
    if (d == NULL) {
        return MICRO_ENOMEM;
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->sub = sub;
    d->b = n->b;
    pthread_mutex_lock(&n->mu);
    natsConnection *nc = n->nc;
    pthread_mutex_unlock(&n->mu);
    natsStatus s = NATS_CONNECTION_CLOSED;
    const char *q = micro_sub_queue(sub);
    if (nc != NULL) {
        s = q[0] != '\0' ? natsConnection_QueueSubscribe(&d->ns, nc,
                               micro_sub_topic(sub), q, on_msg, d)
                         : natsConnection_Subscribe(&d->ns, nc,
                               micro_sub_topic(sub), on_msg, d);
    }
    if (s == NATS_OK) {
        s = natsSubscription_SetOnCompleteCB(d->ns, on_complete, d);
    }
    if (s == NATS_OK) {
        /* Return only once the server has the interest, so a publish made
         * right after subscribe is not lost. subscribe runs on the
         * caller's thread (never on a loop: the front end's slots may
         * block); a failure (reconnecting) is harmless, libnats re-sends
         * the subscription on reconnect. */
        natsConnection_FlushTimeout(nc, 2000);
    }
    if (s == NATS_OK) {
        /* Our own bounded queue does the limiting; let libnats hold a
         * burst rather than drop it as a slow consumer. */
        s = natsSubscription_SetPendingLimits(d->ns, 1 << 20, 256 << 20);
    }
    if (s != NATS_OK) {
        if (d->ns != NULL) {
            natsSubscription_Unsubscribe(d->ns);
            natsSubscription_Destroy(d->ns);
        }
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
        micro__free(d);
        return status_err(s);
    }
    micro_sub_set_data(sub, d);
    return 0;
}

static int
nb_unsubscribe(void *st, micro_sub *sub)
{
    (void) st;
    nsub *d = micro_sub_data(sub);
    if (d == NULL) {
        return 0;
    }
    pthread_mutex_lock(&d->mu);
    d->closed = true;
    pthread_mutex_unlock(&d->mu);
    natsStatus s = natsSubscription_Unsubscribe(d->ns);
    /* Wait (bounded) until libnats is done with d: the handler of an
     * async subscription may still be running on its thread. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 5;
    pthread_mutex_lock(&d->mu);
    while (!d->complete && s == NATS_OK) {
        if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) != 0) {
            break;
        }
    }
    bool complete = d->complete;
    pthread_mutex_unlock(&d->mu);
    natsSubscription_Destroy(d->ns);
    micro_sub_set_data(sub, NULL);
    if (!complete) {
        /* Leak d rather than free it under a running callback. */
        micro_log(MICRO_LOG_WARN, "broker.nats",
            "unsubscribe %s: libnats did not confirm completion (%s)",
            micro_sub_topic(sub), natsStatus_GetText(s));
        return 0;
    }
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    micro__free(d);
    return 0;
}

static const char *
nb_address(void *st)
{
    natsb *n = st;
    return n->addr;
}

static void
nb_fini(void *st)
{
    natsb *n = st;
    nb_disconnect(st);
    micro__free(n->servers);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->closed_cv);
}

const micro_broker_ops micro_broker_nats_ops = {
    .abi = MICRO_BROKER_ABI,
    .name = "nats",
    .state_size = sizeof(natsb),
    .init = nb_init,
    .connect = nb_connect,
    .disconnect = nb_disconnect,
    .publish = nb_publish,
    .subscribe = nb_subscribe,
    .unsubscribe = nb_unsubscribe,
    .address = nb_address,
    .fini = nb_fini,
    .options = micro__nats_options,
};
