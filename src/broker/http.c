/*
 * Broker "http": Go Micro v4's default broker (broker/http.go), on the wire.
 *
 * Subscribing. connect() starts the general HTTP/1.1 server (http/server.h)
 * on the loop ("broker_address", default 127.0.0.1:0). Every subscription
 * registers
 *   {name:"micro.http.broker", version: queue or "ff.http.broadcast",
 *    nodes:[{id:"<topic>-<uuid>", address:"<ip>:<port>",
 *            metadata:{"secure":"false","broker":"http","topic":T}}]}
 * with TTL 1 min, refreshed every 30 s, removed on unsubscribe. Go uses one
 * uuid per broker; here it is one per subscription, so two subscriptions of
 * one process in the same queue group do not both get a queued message.
 *
 * Receiving. POST /?id=<node id> with the JSON envelope
 * {"Header":{...,"Micro-Topic":T},"Body":"<base64>"} goes to the
 * subscription with that node id: 200 and an empty body. Other methods
 * 405; undecodable envelope or no Micro-Topic 500 (counted); a full
 * subscription queue 503 (counted as a drop), so the publisher knows.
 * The envelope is decoded off the loop, by this broker's two decoder
 * threads, never by the loop that also serves RPC (micro__broker_envelope_decode
 * caps header keys and handles them in one hashed pass).
 *
 * Limits of the listener (the shared engine enforces them; each refusal is
 * answered as Go's net/http does, counted as a bad message and logged at
 * most once a second):
 *   header block   64 KiB, 100 fields (431)
 *   envelope       transport_max_message_size * 4/3 + 64 KiB (base64 of
 *                  a body at the transport's limit; 413 before reading it)
 *   partial bodies 32 MiB over all connections (503)
 *   waiting for the decoders: 32 MiB of envelopes (503)
 *   read timeout   transport_read_timeout (30 s) for a whole request
 *   idle timeout   transport_idle_timeout, at most 2 min (longer than
 *                  Go's client keeps idle connections)
 *   connections    256; the longest idle is closed to make room, and a new
 *                  one is refused when none is idle
 *   unsent output  64 KiB per connection, then it is no longer read; no
 *                  progress for 30 s: closed
 *
 * Publishing. micro.http.broker is looked up through the registry (cached
 * for 5 s, dropped early on a registry watch event or a failed post; no
 * lock is held across the lookup). For each version: "ff.http.broadcast"
 * posts to every node with broker=http and topic=T; a queue group posts to
 * one random node of that version, and to the next one when that post
 * fails, until one takes it. A node address may be a comma-separated
 * list, tried in order, and each name is dialled at every address it
 * resolves to. The posts run on the loop over the general HTTP client
 * (http/client.h: pooled keep-alive connections, the stale-connection
 * rule), in parallel; publish waits for them (5 s per post, 10 s in all).
 * No user thread writes to a socket. Published from the loop thread
 * itself, the posts start and publish returns 0 at once (their errors are
 * logged). No subscriber anywhere: MICRO_ENOSERVICE.
 */
#include "broker/broker_internal.h"
#include "core/aio.h"
#include "core/loop_internal.h"
#include "core/msg_internal.h"
#include "http/client.h"
#include "http/server.h"
#include "io/tls.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define HB_COMPONENT "broker.http"
#define BROKER_SERVICE "micro.http.broker"
#define BROADCAST "ff.http.broadcast"
#define REG_TTL_MS 60000
#define REG_INTERVAL_MS 30000
#define CACHE_TTL_MS 5000
#define POST_TIMEOUT_MS 5000
#define PUBLISH_TIMEOUT_MS 10000
#define MAX_HEADER (64u << 10)
#define MAX_FIELDS 100
#define MAX_PARTIAL ((size_t) 32 << 20)
#define MAX_DECODING ((size_t) 32 << 20)
#define MAX_CONNS 256
#define IDLE_TIMEOUT_MS 120000
#define WRITE_TIMEOUT_MS 30000
#define OUT_HIGH (64u << 10)
#define DECODERS 2

typedef struct hsub {
    micro_sub *sub;
    char id[300]; /* node id */
    struct hsub *next;
} hsub;

typedef struct target {
    char addr[256];
    bool secure; /* the node's metadata secure=true: https */
    char id[300];
    char version[128];
    bool broadcast;
} target;

typedef struct httpb {
    micro_broker *b;
    micro_loop *loop;
    bool own_loop;
    micro_registry *reg;
    char *listen;       /* as configured */
    char address[96];   /* bound "ip:port" */
    char advertise[96]; /* registered "ip:port" */
    size_t max_body;
    int64_t read_timeout_ms;
    int64_t idle_timeout_ms;
    pthread_mutex_t mu; /* loop + client creation */
    /* subscriber side */
    micro__http_server *srv; /* loop thread */
    micro__pool *decoders;
    size_t decoding;         /* bytes of envelopes with the decoders (loop) */
    int64_t busy_log_ms;
    uint64_t busy_unlogged;
    pthread_rwlock_t subs_lock;
    hsub *subs;
    /* publisher side */
    micro__http_client *client;
    /* TLS (broker_secure): the listener's context, and the publisher's
     * for secure=true subscriber nodes. */
    bool secure;
    micro__tls_conf tls_conf;
    micro__tls_ctx *tls_server;
    micro_msg *post_hdrs; /* Content-Type: application/json (read-only) */
    pthread_mutex_t cache_mu; /* never held across a registry call */
    micro_registry_service *cache;
    size_t n_cache;
    int64_t cache_at;
    atomic_bool cache_dirty;
    uint64_t watch_token;
    bool watching;
    /* re-registration */
    pthread_mutex_t reg_mu;
    pthread_cond_t reg_cv;
    pthread_t reg_thr;
    bool reg_on, reg_stop;
} httpb;

/* ------------------------------------------------------------------ */
/* Subscriber side: requests on the loop, envelopes on the decoders.    */

/* The "id" query parameter of url, unescaped (Go's url.ParseQuery). */
static bool
query_id(const char *url, char *out, size_t cap)
{
    size_t n = strlen(url);
    const char *q = memchr(url, '?', n);
    if (q == NULL) {
        return false;
    }
    const char *end = url + n;
    const char *p = q + 1;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t) (end - p));
        const char *e = amp ? amp : end;
        if (e - p >= 3 && memcmp(p, "id=", 3) == 0) {
            size_t o = 0;
            for (const char *s = p + 3; s < e; s++) {
                int ch = (unsigned char) *s;
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%') {
                    if (e - s < 3 || micro__hexval(s[1]) < 0 ||
                        micro__hexval(s[2]) < 0) {
                        return false;
                    }
                    ch = micro__hexval(s[1]) * 16 + micro__hexval(s[2]);
                    s += 2;
                }
                if (o + 1 >= cap) {
                    return false;
                }
                out[o++] = (char) ch;
            }
            out[o] = '\0';
            return true;
        }
        p = e + 1;
    }
    return false;
}

/* Go's http.Error body for the broker's answers: its error JSON + "\n". */
static void
respond(micro__http_req *r, int code, const char *detail)
{
    if (detail == NULL) {
        (void) micro__http_respond(r, (unsigned) code, NULL, NULL, NULL, 0);
        return;
    }
    const char *st = code == 405 ? "Method Not Allowed"
        : code == 500            ? "Internal Server Error"
        : code == 503            ? "Service Unavailable"
                                 : "Bad Request";
    char body[512];
    int n = snprintf(body, sizeof(body),
        "{\"id\":\"go.micro.broker\",\"code\":%d,\"detail\":\"%s\","
        "\"status\":\"%s\"}\n",
        code == 405 ? 400 : code, detail, st);
    micro_msg *hd = NULL;
    if (micro_msg_new(&hd) == 0) {
        micro_msg_set_header(hd, "Content-Type", "text/plain; charset=utf-8");
    }
    (void) micro__http_respond(r, (unsigned) code, NULL, hd, body,
        (size_t) n);
    micro_msg_free(hd);
}

typedef struct job {
    micro__task task;
    httpb *h;
    micro__http_req *r;
    micro_msg *msg; /* the request: its body is the envelope */
    size_t len;
    int code;
    const char *detail;
    bool has_id;
    char id[300];
} job;

/* Loop thread: the decoder's verdict goes out. */
static void
job_answer(micro__task *t)
{
    job *j = (job *) t;
    j->h->decoding -= j->len;
    respond(j->r, j->code, j->detail);
    micro_msg_free(j->msg);
    micro__free(j);
}

/* A decoder thread: decode, route, deliver. */
static void
job_run(micro__task *t)
{
    job *j = (job *) t;
    httpb *h = j->h;
    size_t len = 0;
    const void *body = micro_msg_body(j->msg, &len);
    micro_msg *m = NULL;
    const char *why = NULL;
    j->code = 200;
    j->detail = NULL;
    if (micro__broker_envelope_decode(body, len, &m, &why) != 0) {
        micro_broker_count_bad(h->b, why);
        j->code = 500;
        j->detail = "Error parsing request body";
    } else {
        const char *topic = micro_msg_header(m, "Micro-Topic");
        if (topic == NULL || topic[0] == '\0') {
            micro_broker_count_bad(h->b, "no Micro-Topic header");
            j->code = 500;
            j->detail = "Topic not found";
        } else {
            int rc = 0;
            pthread_rwlock_rdlock(&h->subs_lock);
            for (hsub *s = h->subs; j->has_id && s != NULL; s = s->next) {
                if (strcmp(s->id, j->id) != 0 ||
                    strcmp(micro_sub_topic(s->sub), topic) != 0) {
                    continue;
                }
                rc = micro_broker_deliver(s->sub, &m);
                break;
            }
            pthread_rwlock_unlock(&h->subs_lock);
            if (rc == MICRO_EAGAIN) {
                j->code = 503;
                j->detail = "subscriber queue full";
            }
        }
    }
    micro_msg_free(m);
    micro_msg_free(j->msg);
    j->msg = NULL;
    j->task.fn = job_answer;
    if (micro__loop_post_task(h->loop, &j->task) != 0) {
        /* The loop is going away with its server; nothing to answer. */
        micro__free(j);
    }
}

static void
busy_log(httpb *h, const char *remote)
{
    int64_t now = micro__now_ms();
    h->busy_unlogged++;
    if (now - h->busy_log_ms >= 1000) {
        h->busy_log_ms = now;
        MICRO_LOGF(MICRO_LOG_WARN, HB_COMPONENT,
            "%s: envelopes waiting for decoding over %zu bytes: answered 503 "
            "(%llu in the last second)", remote, MAX_DECODING,
            (unsigned long long) h->busy_unlogged);
        h->busy_unlogged = 0;
    }
}

static void
srv_on_request(void *arg, micro__http_req *r)
{
    httpb *h = arg;
    if (strcmp(micro__http_req_method(r), "POST") != 0) {
        respond(r, 405, "Method not allowed");
        return;
    }
    micro_msg *msg = micro__http_req_take(r);
    size_t len = 0;
    (void) micro_msg_body(msg, &len);
    if (h->decoding + len > MAX_DECODING) {
        micro_msg_free(msg);
        busy_log(h, micro__http_req_remote(r));
        respond(r, 503, "broker busy");
        return;
    }
    job *j = micro__calloc(1, sizeof(*j));
    if (j == NULL) {
        micro_msg_free(msg);
        respond(r, 503, "out of memory");
        return;
    }
    j->h = h;
    j->r = r;
    j->msg = msg;
    j->len = len;
    j->has_id = query_id(micro__http_req_target(r), j->id, sizeof(j->id));
    j->task.fn = job_run;
    h->decoding += len;
    if (micro__pool_submit(h->decoders, &j->task) != 0) {
        h->decoding -= len;
        micro_msg_free(msg);
        micro__free(j);
        respond(r, 503, "broker closing");
    }
}

static void
srv_on_reject(void *arg, const char *remote, int status, int rc)
{
    httpb *h = arg;
    (void) remote;
    (void) rc;
    micro_broker_count_bad(h->b, status == 431 ? "header block too large"
            : status == 413                    ? "body too large"
            : status == 503                    ? "partial bodies over budget"
                                               : "malformed HTTP");
}

static const micro__http_server_cbs srv_cbs = {
    .on_request = srv_on_request,
    .on_reject = srv_on_reject,
};

/* ------------------------------------------------------------------ */
/* Listening.                                                           */

static int
do_listen(void *arg)
{
    httpb *h = arg;
    char host[64];
    int port = 0;
    if (micro__split_host_port(h->listen, host, sizeof(host), &port) != 0) {
        micro_log(MICRO_LOG_ERR, HB_COMPONENT, "bad broker_address %s",
            h->listen);
        return MICRO_EINVAL;
    }
    micro__http_server_cfg cfg = {
        .lim = {.max_header = MAX_HEADER, .max_fields = MAX_FIELDS,
            .max_body = h->max_body},
        .read_timeout_ms = h->read_timeout_ms,
        .idle_timeout_ms = h->idle_timeout_ms,
        .write_timeout_ms = WRITE_TIMEOUT_MS,
        .max_conns = MAX_CONNS,
        .max_partial = MAX_PARTIAL,
        .out_high = OUT_HIGH,
    };
    if (h->secure && h->tls_server == NULL) {
        micro__tls_conf c = h->tls_conf;
        c.self_signed_host = host;
        int rc = micro__tls_ctx_new(&h->tls_server, true, &c);
        if (rc != 0) {
            return rc;
        }
    }
    cfg.tls = h->tls_server;
    char bind[96];
    snprintf(bind, sizeof(bind), strchr(host, ':') ? "[%s]:%d" : "%s:%d",
        host[0] ? host : "0.0.0.0", port);
    int rc = micro__http_server_new(&h->srv, h->loop, bind, &cfg, &srv_cbs,
        h);
    if (rc != 0) {
        return rc;
    }
    snprintf(h->address, sizeof(h->address), "%s",
        micro__http_server_address(h->srv));
    /* The advertised address: the bound one, or this host's when bound to
     * every interface. */
    char ip[64];
    int bport = 0;
    micro__split_host_port(h->address, ip, sizeof(ip), &bport);
    char adv[64];
    if (micro__host_unspecified(host)) {
        micro__advertise_host(adv, sizeof(adv));
    } else {
        snprintf(adv, sizeof(adv), "%s", ip);
    }
    snprintf(h->advertise, sizeof(h->advertise),
        strchr(adv, ':') ? "[%s]:%d" : "%s:%d", adv, bport);
    return 0;
}

static int
do_close(void *arg)
{
    httpb *h = arg;
    micro__http_server_close(h->srv);
    h->srv = NULL;
    return 0;
}

static int
do_nothing(void *arg)
{
    (void) arg;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Registration of subscriptions.                                       */

typedef struct sub_rec {
    char id[300];
    char topic[256];
    char queue[128];
} sub_rec;

static int
sub_register(httpb *h, const sub_rec *s, bool deregister)
{
    micro_registry_service svc;
    micro_node node;
    memset(&svc, 0, sizeof(svc));
    memset(&node, 0, sizeof(node));
    svc.name = (char *) BROKER_SERVICE;
    svc.version = (char *) (s->queue[0] ? s->queue : BROADCAST);
    node.id = (char *) s->id;
    node.address = h->advertise;
    int rc = micro_metadata_set(&node.metadata, "secure",
        h->secure ? "true" : "false");
    if (rc == 0) {
        rc = micro_metadata_set(&node.metadata, "broker", "http");
    }
    if (rc == 0) {
        rc = micro_metadata_set(&node.metadata, "topic", s->topic);
    }
    svc.nodes = &node;
    svc.n_nodes = 1;
    if (rc == 0) {
        rc = deregister ? micro_registry_deregister(h->reg, &svc)
                        : micro_registry_register(h->reg, &svc, REG_TTL_MS);
    }
    micro_metadata_clear(&node.metadata);
    if (rc != 0) {
        micro_log(MICRO_LOG_WARN, HB_COMPONENT, "%s %s: %s",
            deregister ? "deregister" : "register", s->id,
            micro_strerror(rc));
    }
    atomic_store(&h->cache_dirty, true);
    return rc;
}

static void
sub_rec_fill(sub_rec *r, const hsub *s)
{
    snprintf(r->id, sizeof(r->id), "%s", s->id);
    snprintf(r->topic, sizeof(r->topic), "%s", micro_sub_topic(s->sub));
    snprintf(r->queue, sizeof(r->queue), "%s", micro_sub_queue(s->sub));
}

static bool
sub_alive(httpb *h, const char *id)
{
    bool found = false;
    pthread_rwlock_rdlock(&h->subs_lock);
    for (hsub *s = h->subs; s != NULL && !found; s = s->next) {
        found = strcmp(s->id, id) == 0;
    }
    pthread_rwlock_unlock(&h->subs_lock);
    return found;
}

/* Refresh every registration: a copy of the records is taken under the
 * lock, the registry is called without it. A subscription removed
 * meanwhile is deregistered again after its refresh (unsubscribe removes
 * it from the list before its own deregister, so one of the two
 * deregisters comes last). */
static void
refresh_all(httpb *h)
{
    pthread_rwlock_rdlock(&h->subs_lock);
    size_t n = 0;
    for (hsub *s = h->subs; s != NULL; s = s->next) {
        n++;
    }
    sub_rec *recs = n ? micro__calloc(n, sizeof(*recs)) : NULL;
    size_t k = 0;
    for (hsub *s = h->subs; recs != NULL && s != NULL; s = s->next) {
        sub_rec_fill(&recs[k++], s);
    }
    pthread_rwlock_unlock(&h->subs_lock);
    for (size_t i = 0; i < k; i++) {
        sub_register(h, &recs[i], false);
        if (!sub_alive(h, recs[i].id)) {
            sub_register(h, &recs[i], true);
        }
    }
    micro__free(recs);
}

static void *
reg_thread(void *arg)
{
    httpb *h = arg;
    pthread_mutex_lock(&h->reg_mu);
    while (!h->reg_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += REG_INTERVAL_MS / 1000;
        pthread_cond_timedwait(&h->reg_cv, &h->reg_mu, &ts);
        if (h->reg_stop) {
            break;
        }
        pthread_mutex_unlock(&h->reg_mu);
        refresh_all(h);
        pthread_mutex_lock(&h->reg_mu);
    }
    pthread_mutex_unlock(&h->reg_mu);
    return NULL;
}

static void
on_watch(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) action;
    httpb *h = arg;
    if (svc != NULL && svc->name != NULL &&
        strcmp(svc->name, BROKER_SERVICE) == 0) {
        atomic_store(&h->cache_dirty, true);
    }
}

/* ------------------------------------------------------------------ */
/* Publishing: the general client on the loop.                          */

static void
query_escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s != '\0' && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char) *s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
            ch == '.' || ch == '~') {
            out[o++] = (char) ch;
        } else if (ch == ' ') {
            out[o++] = '+';
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

/* The subscribers of topic, from the (cached) registry view. The lookup
 * runs without a lock; concurrent publishers may both look up, and the
 * later answer is kept. */
static int
targets(httpb *h, const char *topic, target **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int64_t now = micro__now_ms();
    pthread_mutex_lock(&h->cache_mu);
    bool stale = h->cache == NULL || now - h->cache_at > CACHE_TTL_MS;
    pthread_mutex_unlock(&h->cache_mu);
    if (atomic_exchange(&h->cache_dirty, false) || stale) {
        micro_registry_service *svcs = NULL;
        size_t ns = 0;
        int rc = micro_registry_get_service(h->reg, BROKER_SERVICE, &svcs,
            &ns);
        if (rc != 0 && rc != MICRO_ENOSERVICE) {
            atomic_store(&h->cache_dirty, true);
            return rc;
        }
        pthread_mutex_lock(&h->cache_mu);
        micro_registry_service *old = h->cache;
        size_t n_old = h->n_cache;
        h->cache = svcs;
        h->n_cache = ns;
        h->cache_at = now;
        pthread_mutex_unlock(&h->cache_mu);
        micro_registry_services_free(old, n_old);
    }
    pthread_mutex_lock(&h->cache_mu);
    size_t cap = 0;
    for (size_t i = 0; i < h->n_cache; i++) {
        cap += h->cache[i].n_nodes;
    }
    target *t = cap ? micro__calloc(cap, sizeof(*t)) : NULL;
    if (cap > 0 && t == NULL) {
        pthread_mutex_unlock(&h->cache_mu);
        return MICRO_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < h->n_cache; i++) {
        const micro_registry_service *s = &h->cache[i];
        for (size_t j = 0; j < s->n_nodes; j++) {
            const micro_node *nd = &s->nodes[j];
            const char *br = micro_metadata_get(&nd->metadata, "broker");
            const char *tp = micro_metadata_get(&nd->metadata, "topic");
            if (br == NULL || strcmp(br, "http") != 0 || tp == NULL ||
                strcmp(tp, topic) != 0 || nd->address == NULL ||
                nd->id == NULL) {
                continue;
            }
            const char *sec = micro_metadata_get(&nd->metadata, "secure");
            /* Go Micro's publisher: https for secure=true nodes. */
            t[k].secure = sec != NULL && strcmp(sec, "true") == 0;
            snprintf(t[k].addr, sizeof(t[k].addr), "%s", nd->address);
            snprintf(t[k].id, sizeof(t[k].id), "%s", nd->id);
            snprintf(t[k].version, sizeof(t[k].version), "%s",
                s->version ? s->version : "");
            t[k].broadcast = s->version != NULL &&
                strcmp(s->version, BROADCAST) == 0;
            k++;
        }
    }
    pthread_mutex_unlock(&h->cache_mu);
    *out = t;
    *n = k;
    return 0;
}

typedef struct pub_op pub_op;

/* One delivery: a broadcast node, or a queue group (members tried in a
 * random order until one takes the message). */
typedef struct pgroup {
    pub_op *op;
    size_t *members; /* indices into op->t */
    size_t nm, next;
    micro__aio aio;
    micro__http_call call;
    char path[sizeof(((target *) 0)->id) * 3 + 8];
    int rc;
    bool running;
} pgroup;

struct pub_op {
    httpb *h;
    micro__aio *aio; /* the publish */
    micro__aio own;  /* for a publish from the loop thread */
    char *topic;
    micro_buf env;
    target *t;
    size_t n;
    pgroup *groups;
    size_t ngroups;
    size_t *idx; /* storage of every group's members */
    size_t running;
    int first_err;
    bool cancelled;
};

static void
pub_op_free(pub_op *op)
{
    micro__free(op->groups);
    micro__free(op->idx);
    micro__free(op->t);
    micro__free(op->topic);
    micro_buf_clear(&op->env);
    micro__free(op);
}

static void group_post(pgroup *g);

static void
pub_done(pub_op *op)
{
    int rc = op->first_err;
    if (rc != 0) {
        atomic_store(&op->h->cache_dirty, true);
        MICRO_LOGF(MICRO_LOG_INFO, HB_COMPONENT, "publish %s: %s", op->topic,
            micro_strerror(rc));
    }
    micro__aio_finish(op->aio, rc, NULL);
}

static void
on_posted(micro__aio *a)
{
    pgroup *g = a->arg;
    pub_op *op = g->op;
    int rc = a->rc;
    if (rc == 0) {
        rc = g->call.status == 200 ? 0
            : g->call.status == 503 ? MICRO_EAGAIN
                                    : MICRO_EREMOTE;
    }
    const target *t = &op->t[g->members[g->next - 1]];
    micro__http_call_fini(&g->call);
    if (rc != 0 && !op->cancelled) {
        MICRO_LOGF(MICRO_LOG_DEBUG, HB_COMPONENT, "post %s to %s (%s): %s",
            op->topic, t->id, t->addr, micro_strerror(rc));
    }
    if (rc != 0 && !op->cancelled && g->next < g->nm) {
        group_post(g); /* the next member of the queue group */
        return;
    }
    g->running = false;
    g->rc = rc;
    if (rc != 0 && op->first_err == 0) {
        op->first_err = rc;
    }
    if (--op->running == 0) {
        pub_done(op);
    }
}

static void
group_post(pgroup *g)
{
    pub_op *op = g->op;
    const target *t = &op->t[g->members[g->next++]];
    char esc[sizeof(t->id) * 3 + 1];
    query_escape(t->id, esc, sizeof(esc));
    snprintf(g->path, sizeof(g->path), "/?id=%s", esc);
    memset(&g->call, 0, sizeof(g->call));
    g->call.client = op->h->client;
    g->call.method = "POST";
    g->call.addr = t->addr;
    g->call.tls = t->secure;
    g->call.target = g->path;
    g->call.headers = op->h->post_hdrs;
    g->call.body = op->env.data;
    g->call.body_len = op->env.len;
    micro__aio_init(&g->aio, op->h->loop, on_posted, g);
    micro__aio_set_timeout(&g->aio, POST_TIMEOUT_MS);
    micro__aio_start(&g->aio, micro__http_call_start, &g->call);
}

static void
pub_cancel(micro__aio *a, int rc)
{
    pub_op *op = a->prov;
    op->cancelled = true;
    /* The last group to finish would complete (and free) op inside the
     * loop below: hold it open until the loop is over. */
    op->running++;
    for (size_t i = 0; i < op->ngroups; i++) {
        if (op->groups[i].running) {
            micro__aio_cancel(&op->groups[i].aio, rc);
        }
    }
    if (--op->running == 0) {
        pub_done(op);
    }
}

/* Loop thread: start every group. */
static void
pub_start(micro__aio *a, void *arg)
{
    pub_op *op = arg;
    op->aio = a;
    if (op->h->client == NULL) {
        micro__aio_finish(a, MICRO_ECLOSED, NULL);
        return;
    }
    micro__aio_schedule(a, pub_cancel, op);
    if (op->cancelled) {
        return; /* the deadline could not be armed: finished */
    }
    op->running = op->ngroups;
    for (size_t i = 0; i < op->ngroups; i++) {
        op->groups[i].running = true;
    }
    for (size_t i = 0; i < op->ngroups; i++) {
        group_post(&op->groups[i]);
    }
}

/* Group the targets: each broadcast node alone, each queue group's
 * members together in a random order. */
static int
pub_plan(pub_op *op)
{
    size_t n = op->n;
    op->groups = micro__calloc(n, sizeof(*op->groups));
    op->idx = micro__calloc(n, sizeof(*op->idx));
    bool *used = micro__calloc(n, sizeof(*used));
    if (op->groups == NULL || op->idx == NULL || used == NULL) {
        micro__free(used);
        return MICRO_ENOMEM;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (used[i]) {
            continue;
        }
        pgroup *g = &op->groups[op->ngroups++];
        g->op = op;
        g->members = &op->idx[at];
        for (size_t j = i; j < n; j++) {
            bool same = j == i ||
                (!op->t[i].broadcast && !op->t[j].broadcast && !used[j] &&
                    strcmp(op->t[j].version, op->t[i].version) == 0);
            if (same) {
                used[j] = true;
                op->idx[at++] = j;
                g->nm++;
            }
        }
        for (size_t k = g->nm; k > 1; k--) { /* Fisher-Yates */
            size_t r = micro__rand((uint32_t) k);
            size_t tmp = g->members[k - 1];
            g->members[k - 1] = g->members[r];
            g->members[r] = tmp;
        }
    }
    micro__free(used);
    return 0;
}

static void
on_detached_done(micro__aio *a)
{
    pub_op_free(a->arg);
}

/* ------------------------------------------------------------------ */
/* Ops.                                                                 */

static int
ensure_client(httpb *h)
{
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    if (h->loop == NULL) {
        rc = micro_loop_new(&h->loop);
        h->own_loop = rc == 0;
    }
    if (rc == 0 && h->client == NULL) {
        micro__http_client_cfg cfg;
        micro__http_client_cfg_load(&cfg,
            micro__broker_options(h->b));
        /* Below the idle timeout of our own listeners, so that a pooled
         * connection is seldom closed under a publish. */
        if (cfg.pool_ttl_ms > IDLE_TIMEOUT_MS / 2) {
            cfg.pool_ttl_ms = IDLE_TIMEOUT_MS / 2;
        }
        if (cfg.pool_size > 8) {
            cfg.pool_size = 8;
        }
        cfg.lim.max_body = 64 << 10; /* answers are short */
        /* Publishing to secure=true nodes: Go Micro v4 skips verification
         * unless given a TLSConfig; here, unless given a CA file (and
         * tls_insecure_skip_verify is off). A client certificate, when
         * set, is presented (mTLS subscribers). */
        micro__tls_conf c = h->tls_conf;
        c.verify = h->tls_conf.verify && h->tls_conf.ca_file != NULL;
        c.client_auth = false;
        c.component = HB_COMPONENT;
        cfg.tls_conf = &c; /* made on the first secure node */
        if (rc == 0) {
            rc = micro__http_client_new(&h->client, h->loop, &cfg);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static int
hb_init(void *st, micro_broker *b, micro_loop *loop, micro_registry *reg,
    const micro_options *opts)
{
    httpb *h = st;
    if (reg == NULL) {
        micro_log(MICRO_LOG_ERR, HB_COMPONENT,
            "the http broker needs a registry to find subscribers");
        return MICRO_EINVAL;
    }
    h->b = b;
    h->reg = reg;
    h->loop = loop;
    micro__tls_conf tc;
    h->secure = micro__tls_conf_load(&tc, opts, "broker");
    tc.component = HB_COMPONENT;
    tc.alpn = NULL;
    /* Contexts are made at connect, after opts is gone: an owned copy. */
    if (micro__tls_conf_copy(&h->tls_conf, &tc) != 0) {
        return MICRO_ENOMEM;
    }
    const char *a = micro_options_get_str(opts, "broker_address");
    h->listen = micro__strdup(a != NULL && a[0] != '\0' ? a : "127.0.0.1:0");
    int rc = h->listen != NULL ? micro_msg_new(&h->post_hdrs) : MICRO_ENOMEM;
    if (rc == 0) {
        rc = micro_msg_set_header(h->post_hdrs, "Content-Type",
            "application/json");
    }
    if (rc != 0) {
        micro__free(h->listen);
        micro_msg_free(h->post_hdrs);
        micro__tls_conf_clear(&h->tls_conf);
        return MICRO_ENOMEM;
    }
    int64_t v = micro_options_get_int(opts, "transport_max_message_size");
    size_t msg_max = v > 0 ? (size_t) v : (size_t) 4 << 20;
    h->max_body = msg_max / 3 * 4 + 4 + (64u << 10);
    h->read_timeout_ms = micro_options_get_ms(opts, "transport_read_timeout");
    if (h->read_timeout_ms <= 0) {
        h->read_timeout_ms = 30000;
    }
    h->idle_timeout_ms = micro_options_get_ms(opts, "transport_idle_timeout");
    if (h->idle_timeout_ms <= 0 || h->idle_timeout_ms > IDLE_TIMEOUT_MS) {
        h->idle_timeout_ms = IDLE_TIMEOUT_MS;
    }
    pthread_rwlock_init(&h->subs_lock, NULL);
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->cache_mu, NULL);
    pthread_mutex_init(&h->reg_mu, NULL);
    pthread_cond_init(&h->reg_cv, NULL);
    atomic_init(&h->cache_dirty, true);
    if (micro_registry_watch(reg, on_watch, h, &h->watch_token) == 0) {
        h->watching = true;
    }
    return 0;
}

static int
hb_connect(void *st)
{
    httpb *h = st;
    int rc = ensure_client(h);
    if (rc == 0) {
        rc = micro__pool_new(&h->decoders, DECODERS, "broker-decode");
    }
    if (rc == 0) {
        rc = micro__loop_call(h->loop, do_listen, h);
        if (rc != 0) {
            micro_log(MICRO_LOG_ERR, HB_COMPONENT, "listen on %s: %s",
                h->listen, micro_strerror(rc));
        }
    }
    if (rc != 0) {
        micro__pool_free(h->decoders);
        h->decoders = NULL;
        return rc;
    }
    h->reg_stop = false;
    if (pthread_create(&h->reg_thr, NULL, reg_thread, h) == 0) {
        h->reg_on = true;
    }
    MICRO_LOGF(MICRO_LOG_INFO, HB_COMPONENT,
        "listening on %s (advertised %s)", h->address, h->advertise);
    return 0;
}

static int
hb_disconnect(void *st)
{
    httpb *h = st;
    if (h->reg_on) {
        pthread_mutex_lock(&h->reg_mu);
        h->reg_stop = true;
        pthread_cond_signal(&h->reg_cv);
        pthread_mutex_unlock(&h->reg_mu);
        pthread_join(h->reg_thr, NULL);
        h->reg_on = false;
    }
    if (h->loop != NULL) {
        micro__loop_call(h->loop, do_close, h);
    }
    /* The decoders finish what they hold; their answers go to the loop
     * (to closed connections), and the loop runs them before the call
     * below returns. */
    micro__pool_free(h->decoders);
    h->decoders = NULL;
    if (h->loop != NULL) {
        micro__loop_call(h->loop, do_nothing, h);
    }
    return 0;
}

/* Take s off the list and free it. After the write lock no decoder
 * delivers to sub any more. */
static void
sub_unlink_free(httpb *h, micro_sub *sub, hsub *s)
{
    pthread_rwlock_wrlock(&h->subs_lock);
    for (hsub **pp = &h->subs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    pthread_rwlock_unlock(&h->subs_lock);
    micro_sub_set_data(sub, NULL);
    micro__free(s);
}

static int
hb_subscribe(void *st, micro_sub *sub)
{
    httpb *h = st;
    hsub *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    char uuid[37];
    micro__uuid(uuid);
    s->sub = sub;
    snprintf(s->id, sizeof(s->id), "%s-%s", micro_sub_topic(sub), uuid);
    sub_rec rec;
    sub_rec_fill(&rec, s);
    pthread_rwlock_wrlock(&h->subs_lock);
    s->next = h->subs;
    h->subs = s;
    pthread_rwlock_unlock(&h->subs_lock);
    micro_sub_set_data(sub, s);
    int rc = sub_register(h, &rec, false);
    if (rc != 0) {
        sub_unlink_free(h, sub, s);
    }
    return rc;
}

static int
hb_unsubscribe(void *st, micro_sub *sub)
{
    httpb *h = st;
    hsub *s = micro_sub_data(sub);
    if (s == NULL) {
        return 0;
    }
    sub_rec rec;
    sub_rec_fill(&rec, s);
    sub_unlink_free(h, sub, s);
    sub_register(h, &rec, true);
    return 0;
}

static int
hb_publish(void *st, const char *topic, const micro_msg *msg)
{
    httpb *h = st;
    int rc = ensure_client(h);
    if (rc != 0) {
        return rc;
    }
    pub_op *op = micro__calloc(1, sizeof(*op));
    if (op == NULL) {
        return MICRO_ENOMEM;
    }
    op->h = h;
    op->topic = micro__strdup(topic);
    /* Header = the message's + Micro-Topic (Go's http broker adds it). */
    micro_msg *m = NULL;
    rc = op->topic != NULL ? micro__msg_copy(msg, &m) : MICRO_ENOMEM;
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Topic", topic);
    }
    if (rc == 0) {
        rc = micro_broker_envelope_encode(m, &op->env);
    }
    micro_msg_free(m);
    if (rc == 0) {
        rc = targets(h, topic, &op->t, &op->n);
    }
    if (rc == 0 && op->n == 0) {
        rc = MICRO_ENOSERVICE;
    }
    if (rc == 0) {
        rc = pub_plan(op);
    }
    if (rc != 0) {
        pub_op_free(op);
        return rc;
    }
    if (micro_loop_is_current(h->loop)) {
        /* On the loop itself nothing may wait for the loop: the posts go
         * out and finish on their own. */
        micro__aio_init(&op->own, h->loop, on_detached_done, op);
        micro__aio_set_timeout(&op->own, PUBLISH_TIMEOUT_MS);
        micro__aio_start(&op->own, pub_start, op);
        return 0;
    }
    micro__aio a;
    micro__aio_init(&a, h->loop, NULL, NULL);
    micro__aio_set_timeout(&a, PUBLISH_TIMEOUT_MS);
    rc = micro__aio_call(&a, pub_start, op);
    pub_op_free(op);
    return rc;
}

static const char *
hb_address(void *st)
{
    httpb *h = st;
    return h->address;
}

static void
hb_fini(void *st)
{
    httpb *h = st;
    if (h->watching) {
        micro_registry_unwatch(h->reg, h->watch_token);
    }
    micro__http_client_free(h->client);
    micro__tls_ctx_free(h->tls_server);
    micro__tls_conf_clear(&h->tls_conf);
    if (h->own_loop) {
        micro_loop_free(h->loop);
    }
    micro_registry_services_free(h->cache, h->n_cache);
    micro_msg_free(h->post_hdrs);
    micro__free(h->listen);
    pthread_rwlock_destroy(&h->subs_lock);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->cache_mu);
    pthread_mutex_destroy(&h->reg_mu);
    pthread_cond_destroy(&h->reg_cv);
}

/* The options this broker reads (its --help group); it also reads the
 * http transport's message limits and timeouts. */
static const micro_option_desc hb_options[] = {
    {"broker_address", MICRO_OPT_STR, "127.0.0.1:0",
        "address the broker listens on for messages"},
    {"broker_secure", MICRO_OPT_BOOL, "false",
        "listen with TLS (self-signed without a certificate) and advertise "
        "secure=true (Go Micro's broker.Secure)"},
    {"broker_tls_cert_file", MICRO_OPT_STR, NULL,
        "PEM certificate of the listener (and the publisher's for mTLS)"},
    {"broker_tls_key_file", MICRO_OPT_STR, NULL,
        "PEM private key of broker_tls_cert_file"},
    {"broker_tls_ca_file", MICRO_OPT_STR, NULL,
        "PEM CAs: publishing verifies secure subscribers with them (none: "
        "no verification, as Go Micro v4); with broker_tls_client_auth, "
        "they verify publishers"},
    {"broker_tls_client_auth", MICRO_OPT_BOOL, "false",
        "the listener requires a client certificate (mTLS)"},
    MICRO_OPTION_END,
};

const micro_broker_ops micro_broker_http_ops = {
    .abi = MICRO_BROKER_ABI,
    .name = "http",
    .state_size = sizeof(httpb),
    .init = hb_init,
    .connect = hb_connect,
    .disconnect = hb_disconnect,
    .publish = hb_publish,
    .subscribe = hb_subscribe,
    .unsubscribe = hb_unsubscribe,
    .address = hb_address,
    .fini = hb_fini,
    .options = hb_options,
};
