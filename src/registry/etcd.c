/*
 * The etcd registry, record-compatible with Go Micro v4's etcd plugin
 * (github.com/go-micro/plugins/v4/registry/etcd), over etcd's v3 JSON
 * gateway (etcd 3.4: /v3/...) with the project's HTTP/1.1 client.
 *
 * Records. Each node is one key, /micro/registry/<service>/<node id> (a
 * '/' in either part becomes '-', as path.Join in Go sees it), whose value
 * is Go Micro's JSON registry.Service holding exactly that node. A node
 * registered with a TTL is attached to a lease of that many seconds.
 *
 * Leases. Every registered node is remembered (key, value, lease). A
 * keeper thread renews the leases with /v3/lease/keepalive at a third of
 * the TTL; a lease that is gone (expired while etcd was unreachable, or
 * revoked) gets a new one and the value is put again, so a registration
 * comes back by itself once etcd does. A re-registration with the same
 * value only renews its lease (Go's hash shortcut). Deregister deletes the
 * key and revokes the lease.
 *
 * Reads are serializable (any member answers from its own store, as the
 * Go plugin's WithSerializable), so lookups go on while the cluster has no
 * leader. Values that are not a registry.Service are skipped with a log
 * line.
 *
 * Endpoints. registry_address is a comma-separated list; each request
 * starts at the endpoint that answered last and moves on to the next one
 * on a connection error or an "unavailable" answer. Failures are logged
 * at most once per 10 s, with a count.
 *
 * Watch. One thread per registry, started by the first watch, owns a
 * prefix watch (/v3/watch, one endless chunked response on a dedicated
 * connection). It lists the prefix first and keeps a snapshot (key ->
 * record), so that it can resume from the last revision + 1 after a
 * disconnect and, when that revision was compacted away, list again and
 * raise the differences as events. A watch that stays silent for 12
 * request timeouts (a frozen member sends nothing and closes nothing) is
 * made again, on the next endpoint if it never started. Go's watcher
 * reports only the first event of each watch response; every event is
 * reported here. Callbacks
 * run on the watch thread, never on the HTTP loop, so they may call back
 * into the registry.
 *
 * Auth: ETCD_USERNAME / ETCD_PASSWORD (as the Go plugin reads them) or
 * registry_username / registry_password get a token from
 * /v3/auth/authenticate, sent as the Authorization field and renewed when
 * etcd calls it invalid.
 *
 * Threads: every op may be called from any thread but the registry's own
 * loop (nothing of ours runs user code there).
 */
#include "core/internal.h"
#include "http/client.h"
#include "io/tls.h"
#include "registry/netreg.h"
#include "registry/registry_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define COMP "registry.etcd"
#define PREFIX "/micro/registry/"
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

/* gRPC status codes etcd puts in its error answers. */
#define GRPC_NOT_FOUND 5
#define GRPC_UNAVAILABLE 14
#define GRPC_UNAUTHENTICATED 16

/* A node we registered: what the keeper keeps alive. */
typedef struct etcd_ent {
    char *key;
    char *value;
    int64_t ttl_s;  /* 0: no lease */
    int64_t lease;  /* 0: none yet (or lost) */
    bool stored;    /* the last put succeeded */
    /* A register, deregister or keeper repair is at work on this node
     * (with op_mu released): only that one touches the fields above. */
    bool busy;
} etcd_ent;

/* A lease of ours, for every node registered with its TTL. */
typedef struct etcd_lease {
    int64_t ttl_s;
    int64_t id;
    int64_t used; /* when a node last took it (ms) */
} etcd_lease;

/* The watch snapshot: key -> the record under it, sorted by key. */
typedef struct snap_ent {
    char *key;
    int64_t mod;
    micro_registry_service svc;
} snap_ent;

typedef struct etcd_state {
    pthread_mutex_t mu; /* everything below not marked otherwise */
    micro_loop *loop;
    micro__http_client *http;
    bool tls;              /* registry_secure or https:// endpoints */
    micro__tls_ctx *tls_ctx;
    char **eps;
    size_t n_eps;
    atomic_size_t cur; /* the endpoint that answered last */
    int64_t timeout_ms;
    int64_t watch_idle_ms; /* a watch silent this long is made again */
    char *user;
    char *pass;
    char *token;
    micro__netreg_log log; /* failures and skipped values */

    /* registrations, guarded by op_mu, which is never held across a
     * request: register, deregister and the keeper's repairs claim one
     * node at a time (etcd_ent.busy; ecv wakes those waiting for it), so
     * that operations on different nodes run concurrently (etcd batches
     * concurrent writes into one commit), while those on one node run in
     * order: a repair never resurrects a key that a deregister removed. */
    pthread_mutex_t op_mu;
    pthread_cond_t ecv;
    etcd_ent **ents;
    size_t n_ents;
    /* One lease per TTL, shared by every node registered with that TTL
     * (etcd's session pattern): a register is one put, a deregister one
     * delete, and the keeper renews one lease per TTL however many nodes
     * it holds. Guarded by op_mu; granting: a grant is under way (others
     * wait on ecv for it rather than grant their own). */
    etcd_lease *leases;
    size_t n_leases;
    bool granting;
    pthread_t keeper;
    bool keeper_on;
    pthread_cond_t kcv;
    bool stop;

    /* watch */
    micro__watchers watch; /* guarded by mu */
    micro__netreg_wthread wt; /* guarded by mu */
    /* the watch call: guarded by wmu */
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    micro_buf wbuf;
    bool wdone;
    bool wstop;
    int64_t wlast; /* when the watch call last received bytes */
    uint64_t wgen;
    uint64_t cancel_gen;
    micro__aio waio;
    micro__http_call wcall;
    /* watch thread only */
    snap_ent *snap;
    size_t n_snap;
} etcd_state;

/* ------------------------------------------------------------------ */
/* Small helpers.                                                       */

/* A key part as Go's strings.Replace(s, "/", "-", -1). */
static void
put_part(micro_buf *b, const char *s, int *rc)
{
    for (const char *p = s; *p != '\0' && *rc == 0; p++) {
        char c = *p == '/' ? '-' : *p;
        *rc = micro_buf_append(b, &c, 1);
    }
}

/* PREFIX + service [+ "/" + node] (node NULL: the service's prefix, with
 * its trailing slash), NUL-terminated in b. */
static int
make_key(micro_buf *b, const char *service, const char *node)
{
    int rc = micro_buf_append_str(b, PREFIX);
    put_part(b, service, &rc);
    if (rc == 0) {
        rc = micro_buf_append(b, "/", 1);
    }
    if (node != NULL) {
        put_part(b, node, &rc);
    }
    if (rc == 0) {
        rc = micro_buf_append(b, "", 1);
    }
    return rc;
}

/* base64 of s[0..n) as a new C string. */
static char *
b64(const char *s, size_t n)
{
    micro_buf b = {0};
    if (micro__base64_encode(s, n, &b) != 0 ||
        micro_buf_append(&b, "", 1) != 0) {
        micro_buf_clear(&b);
        return NULL;
    }
    return (char *) b.data; /* the buffer's storage is micro__malloc'd */
}

/* A base64 JSON string field into out (NUL-terminated). */
static int
unb64(const cJSON *obj, const char *name, micro_buf *out)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (f == NULL || cJSON_IsNull(f)) {
        return micro_buf_append(out, "", 1); /* omitted: empty */
    }
    if (!cJSON_IsString(f)) {
        return MICRO_ECODEC;
    }
    int rc = micro__base64_decode(f->valuestring, strlen(f->valuestring), out);
    return rc == 0 ? micro_buf_append(out, "", 1) : rc;
}

/* An int64 field, which the gateway writes as a JSON string (or a
 * number); 0 when absent or malformed. */
static int64_t
jint(const cJSON *obj, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsString(f)) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(f->valuestring, &end, 10);
        return errno == 0 && end != f->valuestring && *end == '\0' ? v : 0;
    }
    if (cJSON_IsNumber(f)) {
        double d = f->valuedouble;
        return d >= -9.2e18 && d <= 9.2e18 ? (int64_t) d : 0;
    }
    return 0;
}

static bool
jbool(const cJSON *obj, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

/* Add a base64 field of s; false on out-of-memory. */
static bool
add_b64(cJSON *o, const char *name, const char *s, size_t n)
{
    char *v = b64(s, n);
    bool ok = v != NULL && cJSON_AddStringToObject(o, name, v) != NULL;
    micro__free(v);
    return ok;
}

static bool
add_i64(cJSON *o, const char *name, int64_t v)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long) v);
    return cJSON_AddStringToObject(o, name, s) != NULL;
}

/* Add key and range_end (every key starting with prefix). */
static bool
add_prefix_range(cJSON *o, const char *prefix)
{
    size_t n = strlen(prefix);
    char end[512];
    if (n == 0 || n >= sizeof(end)) {
        return false;
    }
    memcpy(end, prefix, n);
    end[n - 1]++; /* '/' + 1 == '0' */
    return add_b64(o, "key", prefix, n) && add_b64(o, "range_end", end, n);
}

static bool
str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Skipped values: logged at most once per 10 s, with a count. */
static void
note_bad(etcd_state *e, const char *key, const char *why)
{
    uint64_t n = 0;
    if (micro__netreg_bad(&e->log, &e->mu, &n)) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP,
            "skipping the value of %s: %s (%llu skipped so far)", key, why,
            (unsigned long long) n);
    }
}

/* Decode a kv's value into svc; false (logged) when it is not a
 * registry.Service with a name. */
static bool
decode_kv(etcd_state *e, const cJSON *kv, micro_buf *key,
    micro_registry_service *svc)
{
    micro_buf val = {0};
    key->len = 0;
    bool ok = false;
    const char *why = "not base64";
    if (unb64(kv, "key", key) == 0 && unb64(kv, "value", &val) == 0) {
        why = "not a registry.Service";
        ok = micro_registry_service_from_json(
                 (const char *) val.data, val.len - 1, svc) == 0 &&
            svc->name != NULL && svc->name[0] != '\0';
        if (!ok) {
            micro_registry_service_clear(svc);
        }
    }
    if (!ok) {
        note_bad(e, key->len > 0 ? (const char *) key->data : "(a key)", why);
    }
    micro_buf_clear(&val);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Requests.                                                            */

static void
note_fail(etcd_state *e, const char *ep, const char *path, int rc)
{
    uint64_t n = 0;
    if (micro__netreg_fail(&e->log, &e->mu, &n)) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP,
            "etcd at %s did not answer %s: %s (%llu failed requests so far; "
            "trying the other endpoints, then again)",
            ep, path, micro_strerror(rc), (unsigned long long) n);
    }
}

static void
note_ok(etcd_state *e, const char *ep)
{
    uint64_t n = 0;
    if (micro__netreg_ok(&e->log, &e->mu, &n)) {
        MICRO_LOGF(MICRO_LOG_INFO, COMP,
            "etcd reachable again at %s (%llu failed requests in all)", ep,
            (unsigned long long) n);
    }
}

/* The headers of a request: JSON, and the auth token if any (and
 * wanted: an authentication must not carry a stale one). */
static int
make_headers(etcd_state *e, bool token, micro_msg **out)
{
    int rc = micro_msg_new(out);
    if (rc == 0) {
        rc = micro_msg_set_header(*out, "Content-Type", "application/json");
    }
    pthread_mutex_lock(&e->mu);
    if (rc == 0 && token && e->token != NULL) {
        rc = micro_msg_set_header(*out, "Authorization", e->token);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* One POST to one endpoint. rc < 0: the request did not get an answer.
 * Otherwise *status and the answer's bytes. */
static int
post_once(etcd_state *e, const char *ep, const char *path, const char *body,
    bool token, unsigned *status, micro_buf *answer)
{
    micro_msg *hdrs = NULL;
    int rc = make_headers(e, token, &hdrs);
    if (rc < 0) {
        micro_msg_free(hdrs);
        return rc;
    }
    micro__http_call call;
    memset(&call, 0, sizeof(call));
    call.client = e->http;
    call.method = "POST";
    call.addr = ep;
    call.tls = e->tls;
    call.target = path;
    call.headers = hdrs;
    call.body = body;
    call.body_len = strlen(body);
    call.replayable = true; /* every request here may be repeated */
    call.on_body = micro__netreg_collect;
    call.arg = answer;
    answer->len = 0;
    rc = micro__http_call_wait(&call, e->timeout_ms);
    *status = call.status;
    micro__http_call_fini(&call);
    micro_msg_free(hdrs);
    return rc;
}

static int
authenticate(etcd_state *e, const char *ep);

/* With auth configured: a token, unless one is held; from the first
 * endpoint that answers, starting at the last good one. */
static int
ensure_token(etcd_state *e)
{
    pthread_mutex_lock(&e->mu);
    bool need = e->user != NULL && e->token == NULL;
    pthread_mutex_unlock(&e->mu);
    int rc = 0;
    size_t start = atomic_load(&e->cur);
    for (size_t i = 0; need && i < e->n_eps; i++) {
        const char *ep = e->eps[(start + i) % e->n_eps];
        rc = authenticate(e, ep);
        if (rc == 0 || rc == MICRO_EREMOTE || rc == MICRO_ENOMEM) {
            break;
        }
        note_fail(e, ep, "/v3/auth/authenticate", rc);
    }
    return rc;
}

/* etcd no longer knows our token (it restarted, or the token expired). */
static void
drop_token(etcd_state *e)
{
    pthread_mutex_lock(&e->mu);
    micro__free(e->token);
    e->token = NULL;
    pthread_mutex_unlock(&e->mu);
}

/*
 * POST req (JSON) to path, trying the endpoints from the last good one.
 * 0 and *out (the parsed answer; free with cJSON_Delete) on a 200 answer
 * without an error; else a code: MICRO_ENOENT for etcd's "not found"
 * (an unknown lease), MICRO_EREMOTE for another error answer (logged),
 * the transport's code when no endpoint answered (logged, rate-limited).
 */
static int
etcd_post(etcd_state *e, const char *path, const cJSON *req, cJSON **out)
{
    *out = NULL;
    char *body = cJSON_PrintUnformatted(req);
    if (body == NULL) {
        return MICRO_ENOMEM;
    }
    micro_buf ans = {0};
    int rc = MICRO_ECONNREFUSED;
    bool reauth = false;
    size_t start = atomic_load(&e->cur);
    pthread_mutex_lock(&e->mu);
    reauth = e->user != NULL && e->token == NULL; /* fresh from here */
    pthread_mutex_unlock(&e->mu);
    rc = ensure_token(e);
    if (rc < 0) {
        cJSON_free(body);
        return rc;
    }
    for (size_t i = 0; i < e->n_eps; i++) {
        size_t k = (start + i) % e->n_eps;
        const char *ep = e->eps[k];
        unsigned status = 0;
        rc = post_once(e, ep, path, body, true, &status, &ans);
        if (rc == MICRO_ENOMEM || rc == MICRO_EMSGSIZE) {
            break;
        }
        if (rc < 0) {
            note_fail(e, ep, path, rc);
            continue;
        }
        int perr = 0;
        cJSON *j = micro__json_parse(
            (const char *) ans.data, ans.len, NULL, &perr);
        const cJSON *err = j != NULL
            ? cJSON_GetObjectItemCaseSensitive(j, "error")
            : NULL;
        if (status == 200 && j != NULL && err == NULL) {
            atomic_store(&e->cur, k);
            note_ok(e, ep);
            *out = j;
            rc = 0;
            break;
        }
        int64_t code = j != NULL ? jint(j, "code") : 0;
        const char *msg = cJSON_IsString(err) ? err->valuestring : NULL;
        if (code == GRPC_UNAVAILABLE || status == 503 || status == 502) {
            /* This member cannot serve (no leader, shutting down). */
            cJSON_Delete(j);
            rc = MICRO_EAGAIN;
            note_fail(e, ep, path, rc);
            continue;
        }
        if (code == GRPC_UNAUTHENTICATED && e->user != NULL && !reauth) {
            cJSON_Delete(j);
            reauth = true;
            rc = authenticate(e, ep);
            if (rc == 0) {
                i--; /* the same endpoint again, with the new token */
                continue;
            }
            break;
        }
        rc = code == GRPC_NOT_FOUND ? MICRO_ENOENT : MICRO_EREMOTE;
        if (rc == MICRO_EREMOTE) {
            MICRO_LOGF(MICRO_LOG_WARN, COMP,
                "%s %s: etcd answered %u: %s (code %lld)", ep, path, status,
                msg ? msg : (j == NULL ? "not JSON" : "no message"),
                (long long) code);
        }
        note_ok(e, ep);
        cJSON_Delete(j);
        break;
    }
    micro_buf_clear(&ans);
    cJSON_free(body);
    return rc;
}

/* A token for user/password; the caller then retries. */
static int
authenticate(etcd_state *e, const char *ep)
{
    cJSON *req = cJSON_CreateObject();
    int rc = MICRO_ENOMEM;
    if (req != NULL && cJSON_AddStringToObject(req, "name", e->user) &&
        cJSON_AddStringToObject(req, "password", e->pass ? e->pass : "")) {
        char *body = cJSON_PrintUnformatted(req);
        micro_buf ans = {0};
        unsigned status = 0;
        rc = body != NULL
            ? post_once(e, ep, "/v3/auth/authenticate", body, false, &status,
                  &ans)
            : MICRO_ENOMEM;
        cJSON *j = NULL;
        if (rc == 0) {
            j = micro__json_parse((const char *) ans.data, ans.len, NULL, &rc);
        }
        const cJSON *tok = j ? cJSON_GetObjectItemCaseSensitive(j, "token")
                             : NULL;
        if (rc == 0 && status == 200 && cJSON_IsString(tok)) {
            char *t = micro__strdup(tok->valuestring);
            pthread_mutex_lock(&e->mu);
            micro__free(e->token);
            e->token = t;
            pthread_mutex_unlock(&e->mu);
            rc = t != NULL ? 0 : MICRO_ENOMEM;
        } else if (rc == 0) {
            const cJSON *m = j ? cJSON_GetObjectItemCaseSensitive(j, "error")
                               : NULL;
            MICRO_LOGF(MICRO_LOG_ERR, COMP,
                "authentication of user %s at %s failed: %s", e->user, ep,
                cJSON_IsString(m) ? m->valuestring : "no token in the answer");
            rc = MICRO_EREMOTE;
        }
        cJSON_Delete(j);
        micro_buf_clear(&ans);
        cJSON_free(body);
    }
    cJSON_Delete(req);
    return rc;
}

/* Prefix range (serializable). *out: the answer. */
static int
range_prefix(etcd_state *e, const char *prefix, cJSON **out)
{
    cJSON *req = cJSON_CreateObject();
    int rc = MICRO_ENOMEM;
    if (req != NULL && add_prefix_range(req, prefix) &&
        cJSON_AddTrueToObject(req, "serializable") != NULL) {
        rc = etcd_post(e, "/v3/kv/range", req, out);
    }
    cJSON_Delete(req);
    return rc;
}

/* POST a request of up to three fields: key and value (base64; NULL: not
 * sent) and one int64 (name NULL: not sent). *ans (NULL: not wanted). */
static int
post_fields(etcd_state *e, const char *path, const char *key,
    const char *value, const char *int_name, int64_t int_val, cJSON **ans)
{
    cJSON *req = cJSON_CreateObject();
    cJSON *local = NULL;
    int rc = MICRO_ENOMEM;
    if (req != NULL && (key == NULL || add_b64(req, "key", key, strlen(key))) &&
        (value == NULL || add_b64(req, "value", value, strlen(value))) &&
        (int_name == NULL || add_i64(req, int_name, int_val))) {
        rc = etcd_post(e, path, req, ans != NULL ? ans : &local);
    }
    cJSON_Delete(local);
    cJSON_Delete(req);
    return rc;
}

static int
lease_grant(etcd_state *e, int64_t ttl_s, int64_t *lease)
{
    cJSON *ans = NULL;
    int rc = post_fields(e, "/v3/lease/grant", NULL, NULL, "TTL", ttl_s, &ans);
    if (rc == 0) {
        *lease = jint(ans, "ID");
        if (*lease == 0) {
            MICRO_LOGF(MICRO_LOG_WARN, COMP, "lease grant: no ID in answer");
            rc = MICRO_EPROTO;
        }
    }
    cJSON_Delete(ans);
    return rc;
}

/* Renew once: 0 while the lease lives, MICRO_ENOENT once it is gone. */
static int
lease_keepalive(etcd_state *e, int64_t lease)
{
    cJSON *ans = NULL;
    int rc = post_fields(e, "/v3/lease/keepalive", NULL, NULL, "ID", lease,
        &ans);
    if (rc == 0) {
        const cJSON *res = cJSON_GetObjectItemCaseSensitive(ans, "result");
        rc = jint(res, "TTL") > 0 ? 0 : MICRO_ENOENT;
    }
    cJSON_Delete(ans);
    return rc;
}

static int
kv_put(etcd_state *e, const char *key, const char *value, int64_t lease)
{
    return post_fields(e, "/v3/kv/put", key, value,
        lease != 0 ? "lease" : NULL, lease, NULL);
}

static int
kv_delete(etcd_state *e, const char *key)
{
    return post_fields(e, "/v3/kv/deleterange", key, NULL, NULL, 0, NULL);
}

/* ------------------------------------------------------------------ */
/* Registrations and their leases.                                      */

/* op_mu held: the lease for ttl_s, or NULL. */
static etcd_lease *
lease_find_ttl(etcd_state *e, int64_t ttl_s)
{
    for (size_t i = 0; i < e->n_leases; i++) {
        if (e->leases[i].ttl_s == ttl_s) {
            return &e->leases[i];
        }
    }
    return NULL;
}

/* op_mu held: is id a lease we hold? */
static bool
lease_held(const etcd_state *e, int64_t id)
{
    for (size_t i = 0; i < e->n_leases; i++) {
        if (e->leases[i].id == id) {
            return true;
        }
    }
    return false;
}

/* op_mu held: forget lease id (gone in etcd, or no longer used). */
static void
lease_forget(etcd_state *e, int64_t id)
{
    for (size_t i = 0; i < e->n_leases; i++) {
        if (e->leases[i].id == id) {
            e->leases[i] = e->leases[--e->n_leases];
            return;
        }
    }
}

/* The shared lease for ttl_s: the one held, or a new grant (one at a
 * time: the others wait for it). op_mu not held. */
static int
lease_for(etcd_state *e, int64_t ttl_s, int64_t *id)
{
    pthread_mutex_lock(&e->op_mu);
    for (;;) {
        etcd_lease *l = lease_find_ttl(e, ttl_s);
        if (l != NULL) {
            l->used = micro__now_ms();
            *id = l->id;
            pthread_mutex_unlock(&e->op_mu);
            return 0;
        }
        if (!e->granting) {
            break;
        }
        pthread_cond_wait(&e->ecv, &e->op_mu);
    }
    e->granting = true;
    pthread_mutex_unlock(&e->op_mu);
    int rc = lease_grant(e, ttl_s, id);
    pthread_mutex_lock(&e->op_mu);
    e->granting = false;
    if (rc == 0) {
        etcd_lease *ls = micro__realloc(e->leases,
            (e->n_leases + 1) * sizeof(*ls));
        if (ls == NULL) {
            rc = MICRO_ENOMEM; /* etcd lets the grant expire */
        } else {
            e->leases = ls;
            e->leases[e->n_leases++] =
                (etcd_lease){ttl_s, *id, micro__now_ms()};
        }
    }
    pthread_cond_broadcast(&e->ecv);
    pthread_mutex_unlock(&e->op_mu);
    return rc;
}

/* op_mu held. */
static size_t
ent_index(etcd_state *e, const char *key)
{
    for (size_t i = 0; i < e->n_ents; i++) {
        if (strcmp(e->ents[i]->key, key) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* op_mu held: the node under key, claimed once no one else works on it
 * (waiting on ecv meanwhile); NULL when there is none. */
static etcd_ent *
ent_claim(etcd_state *e, const char *key)
{
    for (;;) {
        size_t i = ent_index(e, key);
        if (i == SIZE_MAX) {
            return NULL;
        }
        if (!e->ents[i]->busy) {
            e->ents[i]->busy = true;
            return e->ents[i];
        }
        pthread_cond_wait(&e->ecv, &e->op_mu);
    }
}

/* op_mu held. */
static void
ent_release(etcd_state *e, etcd_ent *t)
{
    t->busy = false;
    pthread_cond_broadcast(&e->ecv);
}

static void
ent_free(etcd_ent *t)
{
    if (t != NULL) {
        micro__free(t->key);
        micro__free(t->value);
        micro__free(t);
    }
}

/* Store one node (claimed, op_mu not held): put it when it is new, has
 * changed, or lost its lease (revoked or expired: the put is refused and
 * the lease forgotten, and a new one is taken once). A node without a TTL
 * has no lease. */
static int
keep(etcd_state *e, etcd_ent *t, bool changed)
{
    if (t->ttl_s == 0) {
        if (t->stored && t->lease == 0 && !changed) {
            return 0;
        }
        int rc = kv_put(e, t->key, t->value, 0);
        t->stored = rc == 0;
        t->lease = 0;
        return rc;
    }
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        int64_t id = 0;
        rc = lease_for(e, t->ttl_s, &id);
        if (rc < 0) {
            break;
        }
        if (t->stored && t->lease == id && !changed) {
            return 0;
        }
        rc = kv_put(e, t->key, t->value, id);
        if (rc == 0) {
            t->stored = true;
            t->lease = id;
            return 0;
        }
        if (rc != MICRO_ENOENT) {
            break;
        }
        MICRO_LOGF(MICRO_LOG_INFO, COMP,
            "lease %llx is gone; taking a new one for %s",
            (unsigned long long) id, t->key);
        pthread_mutex_lock(&e->op_mu);
        lease_forget(e, id);
        pthread_mutex_unlock(&e->op_mu);
    }
    t->stored = false; /* the keeper retries within a second */
    t->lease = 0;
    return rc;
}

static void
keeper_wake(etcd_state *e)
{
    pthread_mutex_lock(&e->mu);
    pthread_cond_signal(&e->kcv);
    pthread_mutex_unlock(&e->mu);
}

/* How often the keeper runs (op_mu held): at a third of the shortest
 * TTL, and within a second while a store failed. Nodes being worked on
 * are not looked at (their work ends with a store or a wake). */
static int64_t
keeper_every(const etcd_state *e)
{
    int64_t every = 60000;
    for (size_t i = 0; i < e->n_ents; i++) {
        const etcd_ent *t = e->ents[i];
        if (t->busy) {
            continue;
        }
        if (!t->stored) {
            every = every < 1000 ? every : 1000;
        } else if (t->ttl_s > 0 && t->ttl_s * 1000 / 3 < every) {
            every = t->ttl_s * 1000 / 3;
        }
    }
    return every < 300 ? 300 : every;
}

/* Renew every lease a node holds; forget those etcd no longer knows (their
 * nodes are put again with a new one) and those no node has taken for a
 * TTL (etcd lets them expire). */
static void
keeper_leases(etcd_state *e)
{
    pthread_mutex_lock(&e->op_mu);
    for (size_t i = 0; i < e->n_leases;) {
        etcd_lease l = e->leases[i];
        bool used = micro__now_ms() - l.used < l.ttl_s * 1000;
        for (size_t k = 0; k < e->n_ents && !used; k++) {
            used = e->ents[k]->busy || e->ents[k]->lease == l.id;
        }
        if (!used) {
            e->leases[i] = e->leases[--e->n_leases];
            continue;
        }
        pthread_mutex_unlock(&e->op_mu);
        int rc = lease_keepalive(e, l.id);
        pthread_mutex_lock(&e->op_mu);
        if (rc == MICRO_ENOENT) {
            MICRO_LOGF(MICRO_LOG_INFO, COMP,
                "lease %llx (TTL %llds) is gone; registering its nodes "
                "again", (unsigned long long) l.id, (long long) l.ttl_s);
            lease_forget(e, l.id);
            continue; /* the list moved: look at i again */
        }
        i++;
    }
    pthread_mutex_unlock(&e->op_mu);
}

static void *
keeper_main(void *arg)
{
    etcd_state *e = arg;
    int64_t last = micro__now_ms();
    for (;;) {
        pthread_mutex_lock(&e->op_mu);
        int64_t due = last + keeper_every(e);
        pthread_mutex_unlock(&e->op_mu);
        /* A register wakes us to look at the interval again, not to
         * renew everything early. */
        pthread_mutex_lock(&e->mu);
        int64_t now = micro__now_ms();
        if (!e->stop && now < due) {
            micro__netreg_timed_wait(&e->kcv, &e->mu, due - now);
        }
        bool stop = e->stop;
        pthread_mutex_unlock(&e->mu);
        if (stop) {
            return NULL;
        }
        if (micro__now_ms() < due) {
            continue;
        }
        last = micro__now_ms();
        keeper_leases(e);
        /* Then the nodes that need a put (new lease, or a failed store),
         * one at a time, released between them (the list may change
         * meanwhile: a node moved by a deregister may be skipped or seen
         * twice in this pass, which costs one put at most). Nodes a
         * register or deregister is working on are theirs. */
        pthread_mutex_lock(&e->op_mu);
        for (size_t i = 0; i < e->n_ents; i++) {
            pthread_mutex_lock(&e->mu);
            stop = e->stop;
            pthread_mutex_unlock(&e->mu);
            if (stop) {
                break;
            }
            etcd_ent *t = e->ents[i];
            if (t->busy || (t->stored &&
                               (t->ttl_s == 0 || lease_held(e, t->lease)))) {
                continue;
            }
            t->busy = true;
            pthread_mutex_unlock(&e->op_mu);
            (void) keep(e, t, false);
            pthread_mutex_lock(&e->op_mu);
            ent_release(e, t);
        }
        pthread_mutex_unlock(&e->op_mu);
    }
}

static int
etcd_register(void *st, const micro_registry_service *svc, int64_t ttl_ms)
{
    etcd_state *e = st;
    if (svc->n_nodes == 0) {
        /* Records are per node: nothing to store (Go: "Require at least
         * one node"). */
        MICRO_LOGF(MICRO_LOG_WARN, COMP, "register %s: no node to register",
            svc->name);
        return MICRO_EINVAL;
    }
    int64_t ttl_s = ttl_ms > 0 ? ttl_ms / 1000 + (ttl_ms % 1000 != 0) : 0;
    int first_rc = 0;
    for (size_t i = 0; i < svc->n_nodes; i++) {
        /* The record of this one node, borrowing svc's parts. */
        micro_registry_service one = *svc;
        one.nodes = &svc->nodes[i];
        one.n_nodes = 1;
        char *value = NULL;
        micro_buf key = {0};
        int rc = micro_registry_service_to_json(&one, &value);
        if (rc == 0) {
            rc = make_key(&key, svc->name, svc->nodes[i].id);
        }
        etcd_ent *t = NULL;
        pthread_mutex_lock(&e->op_mu);
        if (rc == 0) {
            t = ent_claim(e, (const char *) key.data);
        }
        if (rc == 0 && t == NULL) {
            etcd_ent **ents =
                micro__realloc(e->ents, (e->n_ents + 1) * sizeof(*ents));
            t = ents != NULL ? micro__calloc(1, sizeof(*t)) : NULL;
            if (ents != NULL) {
                e->ents = ents;
            }
            if (t == NULL) {
                rc = MICRO_ENOMEM;
            } else {
                e->ents[e->n_ents++] = t;
                t->key = (char *) key.data;
                t->busy = true;
                memset(&key, 0, sizeof(key));
            }
        }
        pthread_mutex_unlock(&e->op_mu);
        if (rc == 0) {
            /* A new TTL is another (shared) lease: put again under it. */
            bool changed = t->value == NULL || strcmp(t->value, value) != 0 ||
                t->ttl_s != ttl_s;
            micro__free(t->value);
            t->value = value;
            value = NULL;
            t->ttl_s = ttl_s;
            rc = keep(e, t, changed);
            /* A failed store stays listed: the keeper retries it, so the
             * registration comes back with etcd. */
            pthread_mutex_lock(&e->op_mu);
            ent_release(e, t);
            pthread_mutex_unlock(&e->op_mu);
        }
        micro__free(value);
        micro_buf_clear(&key);
        if (rc < 0 && first_rc == 0) {
            first_rc = rc;
        }
    }
    pthread_mutex_lock(&e->op_mu);
    bool start = !e->keeper_on && e->n_ents > 0;
    if (start) {
        e->keeper_on =
            pthread_create(&e->keeper, NULL, keeper_main, e) == 0;
        if (!e->keeper_on) {
            MICRO_LOGF(MICRO_LOG_ERR, COMP,
                "cannot start the lease keeper: registrations may lapse");
        }
    }
    pthread_mutex_unlock(&e->op_mu);
    keeper_wake(e);
    return first_rc;
}

static int
etcd_deregister(void *st, const micro_registry_service *svc)
{
    etcd_state *e = st;
    if (svc->n_nodes == 0) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP,
            "deregister %s: no node to deregister", svc->name);
        return MICRO_EINVAL;
    }
    int first_rc = 0;
    for (size_t i = 0; i < svc->n_nodes; i++) {
        micro_buf key = {0};
        int rc = make_key(&key, svc->name, svc->nodes[i].id);
        etcd_ent *t = NULL;
        if (rc == 0) {
            /* Claimed (and left listed) until the key is gone, so that
             * neither the keeper nor a register of the same node runs
             * in between. The shared lease stays for the other nodes. */
            pthread_mutex_lock(&e->op_mu);
            t = ent_claim(e, (const char *) key.data);
            pthread_mutex_unlock(&e->op_mu);
            rc = kv_delete(e, (const char *) key.data);
        }
        if (t != NULL) {
            pthread_mutex_lock(&e->op_mu);
            size_t k = ent_index(e, t->key);
            e->ents[k] = e->ents[--e->n_ents];
            pthread_cond_broadcast(&e->ecv);
            pthread_mutex_unlock(&e->op_mu);
            ent_free(t);
        }
        micro_buf_clear(&key);
        if (rc < 0 && first_rc == 0) {
            first_rc = rc;
        }
    }
    return first_rc;
}

/* ------------------------------------------------------------------ */
/* Reads.                                                               */

/* Records of a range answer, merged: by version (group_name false, for
 * get) or by name (true, for list). */
typedef struct merge {
    micro_registry_service *res;
    size_t n;
    size_t *cap; /* nodes capacity per record */
    size_t room;
} merge;

static int
merge_add(merge *m, micro_registry_service *s, bool by_name)
{
    size_t i = 0;
    for (; i < m->n; i++) {
        if (by_name ? strcmp(m->res[i].name, s->name) == 0
                    : str_eq(m->res[i].version, s->version)) {
            break;
        }
    }
    if (i == m->n) {
        if (m->n == m->room) {
            size_t room = m->room ? m->room * 2 : 4;
            micro_registry_service *r =
                micro__realloc(m->res, room * sizeof(*r));
            if (r == NULL) {
                return MICRO_ENOMEM;
            }
            m->res = r;
            size_t *c = micro__realloc(m->cap, room * sizeof(*c));
            if (c == NULL) {
                return MICRO_ENOMEM;
            }
            m->cap = c;
            m->room = room;
        }
        m->res[i] = *s;
        m->cap[i] = s->n_nodes;
        memset(s, 0, sizeof(*s));
        m->n++;
        return 0;
    }
    micro_registry_service *d = &m->res[i];
    if (d->n_nodes + s->n_nodes > m->cap[i]) {
        size_t cap = m->cap[i] ? m->cap[i] * 2 : 4;
        while (cap < d->n_nodes + s->n_nodes) {
            cap *= 2;
        }
        micro_node *nodes = micro__realloc(d->nodes, cap * sizeof(*nodes));
        if (nodes == NULL) {
            return MICRO_ENOMEM;
        }
        d->nodes = nodes;
        m->cap[i] = cap;
    }
    if (s->n_nodes > 0) {
        memcpy(&d->nodes[d->n_nodes], s->nodes,
            s->n_nodes * sizeof(*s->nodes));
        d->n_nodes += s->n_nodes;
    }
    micro__free(s->nodes);
    s->nodes = NULL;
    s->n_nodes = 0;
    micro_registry_service_clear(s);
    return 0;
}

/* The records of a range answer (borrowed), merged: by version (get)
 * or by name (list). */
static int
merge_answer(etcd_state *e, const cJSON *ans, bool by_name,
    micro_registry_service **out, size_t *n)
{
    int rc = 0;
    merge m = {0};
    micro_buf key = {0};
    const cJSON *kv = NULL;
    cJSON_ArrayForEach(kv, cJSON_GetObjectItemCaseSensitive(ans, "kvs"))
    {
        micro_registry_service s;
        if (!decode_kv(e, kv, &key, &s)) {
            continue;
        }
        rc = merge_add(&m, &s, by_name);
        micro_registry_service_clear(&s);
        if (rc < 0) {
            break;
        }
    }
    micro_buf_clear(&key);
    micro__free(m.cap);
    if (rc < 0) {
        micro_registry_services_free(m.res, m.n);
        return rc;
    }
    *out = m.res;
    *n = m.n;
    return 0;
}

static int
read_merged(etcd_state *e, const char *prefix, bool by_name,
    micro_registry_service **out, size_t *n)
{
    cJSON *ans = NULL;
    int rc = range_prefix(e, prefix, &ans);
    if (rc == 0) {
        rc = merge_answer(e, ans, by_name, out, n);
    }
    cJSON_Delete(ans);
    return rc;
}

static int
etcd_get_service(
    void *st, const char *name, micro_registry_service **out, size_t *n)
{
    micro_buf prefix = {0};
    int rc = make_key(&prefix, name, NULL);
    if (rc == 0) {
        rc = read_merged(st, (const char *) prefix.data, false, out, n);
    }
    micro_buf_clear(&prefix);
    if (rc == 0 && *n == 0) {
        rc = MICRO_ENOSERVICE;
    }
    return rc;
}

static int
svc_name_cmp(const void *a, const void *b)
{
    return strcmp(((const micro_registry_service *) a)->name,
        ((const micro_registry_service *) b)->name);
}

static int
etcd_list_services(void *st, micro_registry_service **out, size_t *n)
{
    int rc = read_merged(st, PREFIX, true, out, n);
    if (rc == 0 && *n > 1) {
        qsort(*out, *n, sizeof(**out), svc_name_cmp);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Watch.                                                               */

static void
snap_clear(etcd_state *e)
{
    for (size_t i = 0; i < e->n_snap; i++) {
        micro__free(e->snap[i].key);
        micro_registry_service_clear(&e->snap[i].svc);
    }
    micro__free(e->snap);
    e->snap = NULL;
    e->n_snap = 0;
}

/* The index of key in the snapshot, or where it would go. */
static size_t
snap_find(const etcd_state *e, const char *key, bool *found)
{
    size_t lo = 0, hi = e->n_snap;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(e->snap[mid].key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

static void
dispatch(etcd_state *e, micro__evlist *l)
{
    micro__watchers_deliver(&e->watch, l);
}

static void
push(micro__evlist *l, micro_registry_action a, const micro_registry_service *s)
{
    micro__evlist_push(l, COMP, a, s, s->nodes, s->n_nodes);
}

/* A record for a deleted key we know nothing of: its name and node id
 * from the key (the best there is). */
static void
push_bare_delete(micro__evlist *l, const char *key)
{
    if (strncmp(key, PREFIX, strlen(PREFIX)) != 0) {
        return;
    }
    const char *rest = key + strlen(PREFIX);
    const char *slash = strchr(rest, '/');
    if (slash == NULL) {
        return;
    }
    char *name = micro__strndup(rest, (size_t) (slash - rest));
    micro_node node = {.id = (char *) slash + 1};
    micro_registry_service s = {.name = name, .nodes = &node, .n_nodes = 1};
    if (name != NULL) {
        push(l, MICRO_REGISTRY_DELETE, &s);
    }
    micro__free(name);
}

static int
snap_cmp(const void *a, const void *b)
{
    return strcmp(((const snap_ent *) a)->key, ((const snap_ent *) b)->key);
}

/* A range answer (borrowed) becomes the snapshot; what changed since the
 * old one is raised (unless initial); *rev: the revision to watch from. */
static int
relist_answer(etcd_state *e, bool initial, const cJSON *ans, int64_t *rev)
{
    const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(ans, "kvs");
    size_t cap = (size_t) cJSON_GetArraySize(kvs);
    snap_ent *fresh = cap > 0 ? micro__calloc(cap, sizeof(*fresh)) : NULL;
    if (cap > 0 && fresh == NULL) {
        return MICRO_ENOMEM;
    }
    size_t nf = 0;
    micro_buf key = {0};
    const cJSON *kv = NULL;
    cJSON_ArrayForEach(kv, kvs)
    {
        micro_registry_service s;
        if (!decode_kv(e, kv, &key, &s)) {
            continue;
        }
        fresh[nf].key = micro__strdup((const char *) key.data);
        if (fresh[nf].key == NULL) {
            micro_registry_service_clear(&s);
            continue;
        }
        fresh[nf].mod = jint(kv, "mod_revision");
        fresh[nf].svc = s;
        nf++;
    }
    micro_buf_clear(&key);
    int64_t at = jint(cJSON_GetObjectItemCaseSensitive(ans, "header"),
        "revision");
    *rev = at < INT64_MAX ? at + 1 : at;
    /* etcd answers a range in key order, once per key; an answer that is
     * not is put in order (one of two equal keys is kept), since the
     * snapshot is searched by key. */
    if (nf > 1) {
        qsort(fresh, nf, sizeof(*fresh), snap_cmp);
    }
    size_t u = 0;
    for (size_t k = 0; k < nf; k++) {
        if (u > 0 && strcmp(fresh[u - 1].key, fresh[k].key) == 0) {
            micro__free(fresh[u - 1].key);
            micro_registry_service_clear(&fresh[u - 1].svc);
            fresh[u - 1] = fresh[k];
        } else {
            fresh[u++] = fresh[k];
        }
    }
    nf = u;

    /* Both are sorted by key. */
    micro__evlist ev = {0};
    size_t i = 0, j = 0;
    while (!initial && (i < e->n_snap || j < nf)) {
        int c = i == e->n_snap ? 1
            : j == nf          ? -1
                               : strcmp(e->snap[i].key, fresh[j].key);
        if (c < 0) {
            push(&ev, MICRO_REGISTRY_DELETE, &e->snap[i].svc);
            i++;
        } else if (c > 0) {
            push(&ev, MICRO_REGISTRY_CREATE, &fresh[j].svc);
            j++;
        } else {
            if (e->snap[i].mod != fresh[j].mod) {
                push(&ev, MICRO_REGISTRY_UPDATE, &fresh[j].svc);
            }
            i++;
            j++;
        }
    }
    snap_clear(e);
    e->snap = fresh;
    e->n_snap = nf;
    dispatch(e, &ev);
    return 0;
}

/* List the prefix into the snapshot (relist_answer). */
static int
relist(etcd_state *e, bool initial, int64_t *rev)
{
    cJSON *ans = NULL;
    int rc = range_prefix(e, PREFIX, &ans);
    if (rc == 0) {
        rc = relist_answer(e, initial, ans, rev);
    }
    cJSON_Delete(ans);
    return rc;
}

/* One event of a watch response into the snapshot and l. */
static void
watch_event(etcd_state *e, const cJSON *ev, micro__evlist *l)
{
    const cJSON *kv = cJSON_GetObjectItemCaseSensitive(ev, "kv");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "type");
    bool del = cJSON_IsString(type) && strcmp(type->valuestring, "DELETE") == 0;
    micro_buf key = {0};
    if (unb64(kv, "key", &key) != 0) {
        note_bad(e, "(a watched key)", "not base64");
        micro_buf_clear(&key);
        return;
    }
    bool found = false;
    size_t at = snap_find(e, (const char *) key.data, &found);
    if (del) {
        if (found) {
            push(l, MICRO_REGISTRY_DELETE, &e->snap[at].svc);
            micro__free(e->snap[at].key);
            micro_registry_service_clear(&e->snap[at].svc);
            memmove(&e->snap[at], &e->snap[at + 1],
                (e->n_snap - at - 1) * sizeof(*e->snap));
            e->n_snap--;
        } else {
            /* A key we held no record for (its value was garbage, or it
             * came before our list): the previous value if etcd sent it,
             * else the name and node from the key. */
            const cJSON *prev = cJSON_GetObjectItemCaseSensitive(ev, "prev_kv");
            micro_buf pk = {0};
            micro_registry_service s;
            if (prev != NULL && decode_kv(e, prev, &pk, &s)) {
                push(l, MICRO_REGISTRY_DELETE, &s);
                micro_registry_service_clear(&s);
            } else {
                push_bare_delete(l, (const char *) key.data);
            }
            micro_buf_clear(&pk);
        }
        micro_buf_clear(&key);
        return;
    }
    micro_registry_service s;
    micro_buf k2 = {0};
    if (!decode_kv(e, kv, &k2, &s)) {
        micro_buf_clear(&k2);
        micro_buf_clear(&key);
        return;
    }
    micro_buf_clear(&k2);
    bool create = jint(kv, "create_revision") == jint(kv, "mod_revision");
    push(l, create || !found ? MICRO_REGISTRY_CREATE : MICRO_REGISTRY_UPDATE,
        &s);
    if (found) {
        micro_registry_service_clear(&e->snap[at].svc);
        e->snap[at].svc = s;
        e->snap[at].mod = jint(kv, "mod_revision");
        micro_buf_clear(&key);
        return;
    }
    snap_ent *grown =
        micro__realloc(e->snap, (e->n_snap + 1) * sizeof(*grown));
    if (grown == NULL) {
        micro_registry_service_clear(&s);
        micro_buf_clear(&key);
        return;
    }
    e->snap = grown;
    memmove(&e->snap[at + 1], &e->snap[at],
        (e->n_snap - at) * sizeof(*e->snap));
    e->snap[at].key = (char *) key.data; /* taken */
    e->snap[at].mod = jint(kv, "mod_revision");
    e->snap[at].svc = s;
    e->n_snap++;
}

typedef enum {
    W_GOING,   /* the response goes on */
    W_END,     /* end this watch; resume from *rev */
    W_COMPACT, /* the revision is gone: list again */
    W_IDLE,    /* silent for too long: resume on the next endpoint */
} w_verdict;

/* One line of the watch stream (a WatchResponse, or an in-band error). */
static w_verdict
watch_line(etcd_state *e, const char *p, size_t n, int64_t *rev, bool *live)
{
    int rc = 0;
    cJSON *j = micro__json_parse(p, n, NULL, &rc);
    if (j == NULL) {
        note_bad(e, "the watch stream", "a line that is not JSON");
        return W_END;
    }
    w_verdict v = W_GOING;
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(j, "result");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (err != NULL || res == NULL) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
        MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "watch ended by etcd: %s",
            cJSON_IsString(m) ? m->valuestring : "no result");
        if (jint(err, "grpc_code") == GRPC_UNAUTHENTICATED) {
            drop_token(e);
        }
        cJSON_Delete(j);
        return W_END;
    }
    if (jbool(res, "created")) {
        *live = true;
    }
    if (jbool(res, "canceled")) {
        int64_t compact = jint(res, "compact_revision");
        if (compact > 0) {
            MICRO_LOGF(MICRO_LOG_INFO, COMP,
                "watch revision %lld compacted (now %lld): listing again",
                (long long) *rev, (long long) compact);
            v = W_COMPACT;
        } else {
            const cJSON *why =
                cJSON_GetObjectItemCaseSensitive(res, "cancel_reason");
            const char *reason =
                cJSON_IsString(why) ? why->valuestring : "no reason given";
            bool auth = e->user != NULL && strstr(reason, "auth") != NULL;
            /* A token etcd forgot: a new one, and the watch goes on. */
            MICRO_LOGF(auth ? MICRO_LOG_INFO : MICRO_LOG_WARN, COMP,
                "watch canceled by etcd: %s", reason);
            if (auth) {
                drop_token(e);
            }
            v = W_END;
        }
        cJSON_Delete(j);
        return v;
    }
    micro__evlist l = {0};
    int64_t last = 0;
    const cJSON *ev = NULL;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(res, "events"))
    {
        watch_event(e, ev, &l);
        int64_t mod = jint(cJSON_GetObjectItemCaseSensitive(ev, "kv"),
            "mod_revision");
        last = mod > last ? mod : last;
    }
    if (last == 0 && !jbool(res, "created")) {
        /* A progress notification: nothing changed up to its revision. */
        last = jint(cJSON_GetObjectItemCaseSensitive(res, "header"),
            "revision");
    }
    if (last < INT64_MAX && last + 1 > *rev) {
        *rev = last + 1;
    }
    cJSON_Delete(j);
    dispatch(e, &l);
    return v;
}

static int
watch_body(void *arg, micro__http_call *call, const char *p, size_t n)
{
    (void) call;
    etcd_state *e = arg;
    pthread_mutex_lock(&e->wmu);
    int rc = micro_buf_append(&e->wbuf, p, n);
    e->wlast = micro__now_ms();
    pthread_cond_signal(&e->wcv);
    pthread_mutex_unlock(&e->wmu);
    return rc;
}

static void
watch_done(micro__aio *a)
{
    etcd_state *e = a->arg;
    pthread_mutex_lock(&e->wmu);
    e->wdone = true;
    pthread_cond_signal(&e->wcv);
    pthread_mutex_unlock(&e->wmu);
}

/* On the loop: cancel the watch call of generation cancel_gen. */
static void
watch_cancel(void *arg)
{
    etcd_state *e = arg;
    pthread_mutex_lock(&e->wmu);
    bool cur = e->cancel_gen == e->wgen;
    pthread_mutex_unlock(&e->wmu);
    if (cur && micro__aio_pending(&e->waio)) {
        micro__aio_cancel(&e->waio, MICRO_ECANCELED);
    }
}

static void
watch_cancel_post(etcd_state *e)
{
    /* wmu held */
    e->cancel_gen = e->wgen;
    (void) micro_loop_post(e->loop, watch_cancel, e);
}

/* Run one watch from *rev on one endpoint until it ends. */
static w_verdict
watch_once(etcd_state *e, const char *ep, int64_t *rev, bool *live)
{
    cJSON *req = cJSON_CreateObject();
    cJSON *cr = req ? cJSON_AddObjectToObject(req, "create_request") : NULL;
    char *body = NULL;
    if (cr != NULL && add_prefix_range(cr, PREFIX) &&
        add_i64(cr, "start_revision", *rev) &&
        cJSON_AddTrueToObject(cr, "prev_kv") &&
        cJSON_AddTrueToObject(cr, "progress_notify")) {
        body = cJSON_PrintUnformatted(req);
    }
    cJSON_Delete(req);
    micro_msg *hdrs = NULL;
    if (body == NULL || ensure_token(e) < 0 ||
        make_headers(e, true, &hdrs) < 0) {
        cJSON_free(body);
        micro_msg_free(hdrs);
        return W_END;
    }
    pthread_mutex_lock(&e->wmu);
    e->wbuf.len = 0;
    e->wdone = false;
    e->wlast = micro__now_ms();
    e->wgen++;
    memset(&e->wcall, 0, sizeof(e->wcall));
    e->wcall.client = e->http;
    e->wcall.method = "POST";
    e->wcall.addr = ep;
    e->wcall.tls = e->tls;
    e->wcall.target = "/v3/watch";
    e->wcall.headers = hdrs;
    e->wcall.body = body;
    e->wcall.body_len = strlen(body);
    e->wcall.replayable = true;
    e->wcall.on_body = watch_body;
    e->wcall.arg = e;
    micro__aio_init(&e->waio, e->loop, watch_done, e);
    int prc = micro__aio_post(&e->waio, micro__http_call_start, &e->wcall);
    if (prc < 0) {
        pthread_mutex_unlock(&e->wmu);
        cJSON_free(body);
        micro_msg_free(hdrs);
        return W_END;
    }
    w_verdict v = W_GOING;
    size_t used = 0; /* bytes of wbuf processed */
    for (;;) {
        char *nl = NULL;
        bool idle = false;
        while (!e->wstop) {
            nl = e->wbuf.len > used
                ? memchr(e->wbuf.data + used, '\n', e->wbuf.len - used)
                : NULL;
            if (nl != NULL || e->wdone) {
                break;
            }
            /* A member that is frozen (or a path that silently dropped
             * the connection) sends nothing and closes nothing: a watch
             * silent for watch_idle_ms is made again, which costs one
             * request when all is well. */
            if (micro__now_ms() - e->wlast >= e->watch_idle_ms) {
                idle = true;
                break;
            }
            micro__netreg_timed_wait(&e->wcv, &e->wmu, 1000);
        }
        if (idle) {
            MICRO_LOGF(MICRO_LOG_DEBUG, COMP,
                "watch on %s silent for %lld ms: watching again", ep,
                (long long) e->watch_idle_ms);
            v = W_IDLE;
            break;
        }
        if (e->wstop || (nl == NULL && e->wdone)) {
            break;
        }
        /* Lines are handled without wmu: copy one out. */
        size_t len = (size_t) ((uint8_t *) nl - (e->wbuf.data + used));
        char *line = micro__strndup((char *) e->wbuf.data + used, len);
        used += len + 1;
        if (used > (1u << 20) && used * 2 > e->wbuf.len) {
            memmove(e->wbuf.data, e->wbuf.data + used, e->wbuf.len - used);
            e->wbuf.len -= used;
            used = 0;
        }
        pthread_mutex_unlock(&e->wmu);
        v = line != NULL && len > 0 ? watch_line(e, line, len, rev, live)
                                    : W_GOING;
        micro__free(line);
        pthread_mutex_lock(&e->wmu);
        if (v != W_GOING) {
            break;
        }
    }
    if (!e->wdone) {
        watch_cancel_post(e);
        while (!e->wdone) {
            pthread_cond_wait(&e->wcv, &e->wmu);
        }
    }
    int rc = e->waio.rc;
    unsigned status = e->wcall.status;
    micro__http_call_fini(&e->wcall);
    pthread_mutex_unlock(&e->wmu);
    if (v == W_GOING) {
        v = W_END;
        if (rc < 0 && rc != MICRO_ECANCELED) {
            note_fail(e, ep, "/v3/watch", rc);
        } else if (status != 200 && status != 0) {
            MICRO_LOGF(MICRO_LOG_WARN, COMP, "%s /v3/watch: status %u", ep,
                status);
        }
    }
    cJSON_free(body);
    micro_msg_free(hdrs);
    return v;
}

static bool
wait_ms(etcd_state *e, int64_t ms)
{
    pthread_mutex_lock(&e->wmu);
    if (!e->wstop) {
        micro__netreg_timed_wait(&e->wcv, &e->wmu, ms);
    }
    bool stop = e->wstop;
    pthread_mutex_unlock(&e->wmu);
    return !stop;
}

static void *
watch_main(void *arg)
{
    etcd_state *e = arg;
    int64_t rev = 0;
    int rc = relist(e, true, &rev);
    bool need_list = rc < 0;
    micro__netreg_listed(&e->wt, &e->mu);
    int64_t backoff = BACKOFF_MIN_MS;
    for (;;) {
        pthread_mutex_lock(&e->wmu);
        bool stop = e->wstop;
        pthread_mutex_unlock(&e->wmu);
        if (stop) {
            break;
        }
        if (need_list) {
            /* The first list, or the watch's revision was compacted: the
             * differences since the snapshot become events. */
            rc = relist(e, false, &rev);
            if (rc < 0) {
                wait_ms(e, backoff);
                backoff = backoff * 2 < BACKOFF_MAX_MS ? backoff * 2
                                                       : BACKOFF_MAX_MS;
                continue;
            }
            need_list = false;
        }
        size_t k = atomic_load(&e->cur) % e->n_eps;
        bool live = false;
        w_verdict v = watch_once(e, e->eps[k], &rev, &live);
        if (v == W_COMPACT) {
            need_list = true;
            continue;
        }
        if (v == W_IDLE || !live) {
            /* This endpoint did not take the watch, or went silent (it
             * may be frozen): the next one. */
            size_t want = k;
            atomic_compare_exchange_strong(&e->cur, &want, (k + 1) % e->n_eps);
        }
        if (v == W_IDLE) {
            backoff = BACKOFF_MIN_MS;
            continue; /* at once */
        }
        backoff = live ? BACKOFF_MIN_MS
            : backoff * 2 < BACKOFF_MAX_MS ? backoff * 2
                                           : BACKOFF_MAX_MS;
        wait_ms(e, backoff);
    }
    snap_clear(e);
    return NULL;
}

static int
etcd_watch(void *st, micro_registry_watch_fn fn, void *arg, uint64_t *token)
{
    etcd_state *e = st;
    return micro__netreg_watch(&e->watch, &e->mu, &e->wt,
        watch_main, e, fn, arg, token);
}

static void
etcd_unwatch(void *st, uint64_t token)
{
    etcd_state *e = st;
    micro__netreg_unwatch(&e->watch, &e->mu, token);
}

/* ------------------------------------------------------------------ */
/* Life.                                                                */

static void
etcd_fini(void *st)
{
    etcd_state *e = st;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_broadcast(&e->kcv);
    bool w_on = e->wt.on;
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&e->wmu);
    e->wstop = true;
    pthread_cond_broadcast(&e->wcv);
    if (w_on && !e->wdone) {
        watch_cancel_post(e);
    }
    pthread_mutex_unlock(&e->wmu);
    if (e->keeper_on) {
        pthread_join(e->keeper, NULL);
    }
    if (w_on) {
        pthread_join(e->wt.th, NULL);
    }
    micro__http_client_free(e->http);
    micro__tls_ctx_free(e->tls_ctx);
    e->tls_ctx = NULL;
    micro_loop_free(e->loop);
    for (size_t i = 0; i < e->n_ents; i++) {
        ent_free(e->ents[i]);
    }
    micro__free(e->ents);
    micro__free(e->leases);
    for (size_t i = 0; i < e->n_eps; i++) {
        micro__free(e->eps[i]);
    }
    micro__free(e->eps);
    micro__free(e->user);
    micro__free(e->pass);
    micro__free(e->token);
    micro_buf_clear(&e->wbuf);
    micro__watchers_fini(&e->watch);
    pthread_cond_destroy(&e->kcv);
    pthread_cond_destroy(&e->wt.ready);
    pthread_cond_destroy(&e->wcv);
    pthread_mutex_destroy(&e->wmu);
    pthread_cond_destroy(&e->ecv);
    pthread_mutex_destroy(&e->op_mu);
    pthread_mutex_destroy(&e->mu);
}

static int
etcd_init(void *st, const micro_options *opts)
{
    etcd_state *e = st;
    atomic_init(&e->cur, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool ok = pthread_mutex_init(&e->mu, NULL) == 0;
    ok = ok && pthread_mutex_init(&e->op_mu, NULL) == 0;
    ok = ok && pthread_cond_init(&e->ecv, NULL) == 0;
    ok = ok && pthread_mutex_init(&e->wmu, NULL) == 0;
    ok = ok && pthread_cond_init(&e->kcv, &ca) == 0;
    ok = ok && pthread_cond_init(&e->wt.ready, NULL) == 0;
    ok = ok && pthread_cond_init(&e->wcv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    /* On failure, what was made is left to the process (only allocation
     * of the sync objects can fail here, at start-up). */
    if (!ok || micro__watchers_init(&e->watch, &e->mu, COMP) < 0) {
        return MICRO_ENOMEM;
    }
    e->timeout_ms = micro_options_get_ms(opts, "registry_timeout");
    if (e->timeout_ms <= 0) {
        e->timeout_ms = 5000;
    }
    e->watch_idle_ms = 12 * e->timeout_ms;
    const char *user = micro__netreg_opt_or_env(opts, "registry_username",
        "ETCD_USERNAME");
    const char *pass = micro__netreg_opt_or_env(opts, "registry_password",
        "ETCD_PASSWORD");
    micro__tls_conf tc;
    e->tls = micro__tls_conf_load(&tc, opts, "registry");
    const char *addrs = micro_options_get_str(opts, "registry_address");
    int rc = micro__netreg_addrs(
        addrs != NULL && addrs[0] != '\0' ? addrs : "127.0.0.1:2379", "2379",
        COMP, "etcd", &e->eps, &e->n_eps, &e->tls);
    if (rc == 0 && e->tls) {
        /* Go Micro's etcd plugin: Secure without a TLSConfig skips
         * verification; here a CA file turns it on (and
         * tls_insecure_skip_verify off again). */
        tc.verify = tc.verify && tc.ca_file != NULL;
        tc.alpn = NULL;
        tc.component = COMP;
        rc = micro__tls_ctx_new(&e->tls_ctx, false, &tc);
    }
    if (rc == 0 && user != NULL) {
        e->user = micro__strdup(user);
        e->pass = pass != NULL ? micro__strdup(pass) : NULL;
        rc = e->user == NULL || (pass != NULL && e->pass == NULL)
            ? MICRO_ENOMEM
            : 0;
    }
    if (rc == 0) {
        rc = micro_loop_new(&e->loop);
    }
    if (rc == 0) {
        micro__http_client_cfg cfg;
        micro__http_client_cfg_load(&cfg, NULL);
        cfg.pool_size = 8;
        cfg.dial_timeout_ms = e->timeout_ms;
        /* A watch may stay quiet for long: its connection must outlive
         * the pool's usual lifetime. */
        cfg.pool_ttl_ms = 10 * 60 * 1000;
        cfg.tls = e->tls_ctx;
        rc = micro__http_client_new(&e->http, e->loop, &cfg);
    }
    if (rc < 0) {
        micro_loop_free(e->loop);
        e->loop = NULL;
        etcd_fini(e);
        return rc;
    }
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP,
        "%zu endpoints, first %s, timeout %lld ms", e->n_eps, e->eps[0], (long long) e->timeout_ms);
    return 0;
}

/* ------------------------------------------------------------------ */
/* For fuzz/fuzz_etcd.c (registry_internal.h).                         */

int
micro__etcd_fuzz(const uint8_t *data, size_t size)
{
    etcd_state *e = micro__calloc(1, sizeof(*e));
    if (e == NULL) {
        return MICRO_ENOMEM;
    }
    if (pthread_mutex_init(&e->mu, NULL) != 0) {
        micro__free(e);
        return MICRO_ENOMEM;
    }
    size_t seen = 0;
    uint64_t tok = 0;
    int rc = micro__watchers_init(&e->watch, &e->mu, COMP);
    if (rc == 0) {
        rc = micro__watchers_add(&e->watch, micro__netreg_fuzz_event, &seen,
            &tok);
        /* Each line as a line of a watch stream. */
        const char *p = (const char *) data, *end = p + size;
        int64_t rev = 0;
        bool live = false;
        while (rc == 0 && p < end) {
            const char *nl = memchr(p, '\n', (size_t) (end - p));
            size_t len = nl != NULL ? (size_t) (nl - p) : (size_t) (end - p);
            if (len > 0) {
                (void) watch_line(e, p, len, &rev, &live);
            }
            p += len + 1;
        }
        /* The whole input as a range answer: merged both ways, and made
         * the snapshot (with the differences as events). */
        cJSON *j = micro__json_parse((const char *) data, size, NULL, &rc);
        for (int by_name = 0; j != NULL && by_name < 2; by_name++) {
            micro_registry_service *out = NULL;
            size_t n = 0;
            if (merge_answer(e, j, by_name, &out, &n) == 0) {
                micro_registry_services_free(out, n);
            }
        }
        if (j != NULL) {
            (void) relist_answer(e, false, j, &rev);
        }
        cJSON_Delete(j);
        rc = 0;
        snap_clear(e);
        micro__watchers_fini(&e->watch);
    }
    pthread_mutex_destroy(&e->mu);
    micro__free(e);
    return rc;
}

static const micro_option_desc etcd_options[] = {
    {"registry_address", MICRO_OPT_STR, "127.0.0.1:2379",
        "etcd endpoints, comma-separated (host:port, http:// or https://)"},
    {"registry_timeout", MICRO_OPT_MS, "5s",
        "how long one etcd request may take"},
    {"registry_username", MICRO_OPT_STR, NULL,
        "etcd user (or ETCD_USERNAME); enables auth"},
    {"registry_password", MICRO_OPT_STR, NULL,
        "etcd password (or ETCD_PASSWORD)"},
    MICRO__NETREG_TLS_OPTIONS("etcd"),
    MICRO_OPTION_END,
};

MICRO_API const micro_registry_ops micro_registry_etcd_ops = {
    .abi = MICRO_REGISTRY_ABI,
    .name = "etcd",
    .state_size = sizeof(etcd_state),
    .init = etcd_init,
    .register_service = etcd_register,
    .deregister = etcd_deregister,
    .get_service = etcd_get_service,
    .list_services = etcd_list_services,
    .watch = etcd_watch,
    .unwatch = etcd_unwatch,
    .fini = etcd_fini,
    .options = etcd_options,
};
