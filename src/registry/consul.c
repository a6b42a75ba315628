/*
 * The Consul registry, record-compatible with Go Micro v4's Consul plugin
 * (github.com/go-micro/plugins/v4/registry/consul v1.2.1), on Consul's
 * agent HTTP API with the project's HTTP/1.1 client.
 *
 * Records. Each node is one Consul service instance, registered with
 * PUT /v1/agent/service/register exactly as the Go plugin does: ID = node
 * id, Name, Address and Port split from the node address, Meta = the
 * node's metadata, and Tags carrying the rest as hex(zlib(...)):
 * "t-" + {"key":"value"} per node metadata key, "e-" + the JSON of each
 * endpoint, "v-" + the version. (The Go plugin carries no service-level
 * metadata; neither do we.) A node registered with a TTL gets a TTL check
 * "service:<id>" with DeregisterCriticalServiceAfter = max(TTL, 1m) + 5 s,
 * passed right after the registration.
 *
 * Keeping alive. Every registered node is remembered (id, registration
 * body, TTL). A keeper thread passes the TTL checks at a third of the TTL;
 * a pass the agent refuses (it lost the service: restarted, or the check
 * went critical and the service was reaped) registers the node again, and
 * a node without TTL is looked up every 30 s and registered again when the
 * agent does not know it. So a registration comes back by itself with
 * the agent. A re-registration with the same body only passes the check
 * (Go's unchanged-hash shortcut).
 *
 * Reads. GetService = GET /v1/health/service/<name>?stale; instances with
 * a critical check are left out (their version's record stays, with no
 * nodes, as Go's), version, endpoints and node metadata are decoded from
 * the tags by Go's rules (the first of the "x-" / "x=" forms met wins).
 * ListServices = GET /v1/catalog/services?stale. Tags that do not decode
 * are skipped, counted and logged at most once per 10 s.
 *
 * Addresses. registry_address (or CONSUL_HTTP_ADDR) is a comma-separated
 * list, :8500 added when a port is missing; each request starts at the
 * agent that answered last and moves on to the next on a connection error
 * or a 502/503/504. Failures are logged once per outage (then every
 * 10 s) with a count. registry_token (or CONSUL_HTTP_TOKEN) is
 * sent as X-Consul-Token.
 *
 * Watch. The Go plugin can only watch one named service; the C interface
 * watches everything, so one thread per registry runs blocking queries
 * (?index=N&wait=...) on /v1/catalog/services, to learn services that come
 * and go, and one on /v1/health/service/<name> per service, all at once on
 * the registry's loop. Each service's answer is diffed, by instance id,
 * against the last one: new or healthy again -> create, changed -> update,
 * gone or critical -> delete, each event carrying that one node. A query
 * that fails keeps the last good state (no events) and is retried with a
 * backoff. Callbacks run on the watch thread, never on the loop.
 *
 * Threads: every op may be called from any thread but the registry's own
 * loop.
 */
#include "core/internal.h"
#include "http/client.h"
#include "io/tls.h"
#include "registry/mdns_internal.h"
#include "registry/netreg.h"
#include "registry/registry_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define COMP "registry.consul"
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define NOTTL_CHECK_MS 30000
/* A blocking query waits this long on the agent for a change. */
#define WAIT_S 60

/* A node we registered: what the keeper keeps alive. */
typedef struct reg_ent {
    char *id;
    char *body;     /* the registration's JSON */
    int64_t ttl_ms; /* 0: no check */
    bool stored;    /* the agent took the last registration */
} reg_ent;

/* One instance of a watched service, as last seen. */
typedef struct snap_node {
    char *id;
    char *fp; /* what it was: its record's JSON */
    micro_registry_service svc; /* that one node */
} snap_node;

typedef struct consul_state consul_state;

/* One blocking query: the catalog (name NULL) or a service's health. */
typedef struct wq {
    consul_state *c;
    char *name;
    uint64_t index;
    snap_node *nodes; /* sorted by id */
    size_t n;
    bool known; /* answered once */
    /* the call, on the loop while busy (flags under wmu) */
    micro__aio aio;
    micro__http_call call;
    micro_buf buf;
    micro_msg *hdrs;
    char *target;
    size_t ep;
    bool busy;
    bool done;
    bool gone; /* the service left the catalog: freed once not busy */
    int64_t retry_at;
    int64_t backoff;
    int64_t started;
} wq;

struct consul_state {
    pthread_mutex_t mu; /* everything below not marked otherwise */
    micro_loop *loop;
    micro__http_client *http;
    char **eps;
    size_t n_eps;
    bool tls;                 /* registry_secure or https:// addresses */
    micro__tls_ctx *tls_ctx;
    atomic_size_t cur; /* the agent that answered last */
    int64_t timeout_ms;
    char *token;
    micro__netreg_log log; /* failures and refused input */

    /* registrations: op_mu serialises register, deregister and the
     * keeper, so that the keeper never brings back what was deregistered */
    pthread_mutex_t op_mu;
    reg_ent *ents;
    size_t n_ents;
    pthread_t keeper;
    bool keeper_on;
    pthread_cond_t kcv;
    bool stop;

    /* watch */
    micro__watchers watch; /* guarded by mu */
    micro__netreg_wthread wt; /* guarded by mu */
    pthread_mutex_t wmu; /* the queries' busy/done flags, wstop */
    pthread_cond_t wcv;
    bool wstop;
    wq **q; /* watch thread only */
    size_t n_q;
};

/* ------------------------------------------------------------------ */
/* Logging.                                                             */

static void
note_bad(consul_state *c, const char *what, const char *why)
{
    uint64_t n = 0;
    if (micro__netreg_bad(&c->log, &c->mu, &n)) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP, "%s: %s (%llu refused so far)",
            what, why, (unsigned long long) n);
    }
}

/* An agent did not answer: logged when an outage starts, then at most
 * once per MICRO__NETREG_LOG_EVERY_MS. */
static void
note_down(consul_state *c, const char *ep, const char *what, int rc)
{
    uint64_t n = 0;
    if (micro__netreg_fail(&c->log, &c->mu, &n)) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP,
            "Consul agent %s did not answer %s: %s (%llu failures so far; "
            "serving what is known, retrying)",
            ep, what, micro_strerror(rc), (unsigned long long) n);
    }
}

static void
note_up(consul_state *c, const char *ep)
{
    uint64_t n = 0;
    if (micro__netreg_ok(&c->log, &c->mu, &n)) {
        MICRO_LOGF(MICRO_LOG_INFO, COMP,
            "Consul agent %s answers again (%llu failures in all)", ep,
            (unsigned long long) n);
    }
}

/* ------------------------------------------------------------------ */
/* Requests.                                                            */

/* Percent-encode s (a path segment or query value) onto b. */
static int
put_escaped(micro_buf *b, const char *s)
{
    static const char hexd[] = "0123456789ABCDEF";
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *) s;
         *p != '\0' && rc == 0; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
            *p == '.' || *p == '~';
        if (plain) {
            rc = micro_buf_append(b, (const char *) p, 1);
        } else {
            char e[3] = {'%', hexd[*p >> 4], hexd[*p & 15]};
            rc = micro_buf_append(b, e, 3);
        }
    }
    return rc;
}

/* prefix + escaped(s) + suffix, NUL-terminated, as a new string. */
static char *
make_target(const char *prefix, const char *s, const char *suffix)
{
    micro_buf b = {0};
    int rc = micro_buf_append_str(&b, prefix);
    if (rc == 0 && s != NULL) {
        rc = put_escaped(&b, s);
    }
    if (rc == 0 && suffix != NULL) {
        rc = micro_buf_append_str(&b, suffix);
    }
    if (rc == 0) {
        rc = micro_buf_append(&b, "", 1);
    }
    if (rc < 0) {
        micro_buf_clear(&b);
        return NULL;
    }
    return (char *) b.data;
}

static int
make_headers(consul_state *c, micro_msg **out)
{
    int rc = micro_msg_new(out);
    if (rc == 0) {
        rc = micro_msg_set_header(*out, "Content-Type", "application/json");
    }
    if (rc == 0 && c->token != NULL) {
        rc = micro_msg_set_header(*out, "X-Consul-Token", c->token);
    }
    return rc;
}

/* The X-Consul-Index of an answer; 0 when absent or malformed. */
static uint64_t
answer_index(const micro_msg *rsp)
{
    const char *v = rsp != NULL ? micro_msg_header(rsp, "X-Consul-Index")
                                : NULL;
    if (v == NULL) {
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    return errno == 0 && end != v && *end == '\0' ? (uint64_t) n : 0;
}

typedef struct answer {
    unsigned status;
    uint64_t index;
    micro_buf body; /* NUL-terminated after a request */
} answer;

/* One request to one agent. rc < 0: no answer. */
static int
req_once(consul_state *c, const char *ep, const char *method,
    const char *target, const char *body, answer *a)
{
    micro_msg *hdrs = NULL;
    int rc = make_headers(c, &hdrs);
    if (rc < 0) {
        micro_msg_free(hdrs);
        return rc;
    }
    micro__http_call call;
    memset(&call, 0, sizeof(call));
    call.client = c->http;
    call.method = method;
    call.addr = ep;
    call.tls = c->tls;
    call.target = target;
    call.headers = hdrs;
    call.body = body;
    call.body_len = body != NULL ? strlen(body) : 0;
    call.replayable = true; /* every request here may be repeated */
    call.on_body = micro__netreg_collect;
    call.arg = &a->body;
    a->body.len = 0;
    rc = micro__http_call_wait(&call, c->timeout_ms);
    a->status = call.status;
    a->index = answer_index(call.rsp);
    micro__http_call_fini(&call);
    micro_msg_free(hdrs);
    if (rc == 0) {
        rc = micro_buf_append(&a->body, "", 1);
        a->body.len--;
    }
    return rc;
}

static bool
unavailable(unsigned status)
{
    return status == 502 || status == 503 || status == 504;
}

/* A request, from the agent that answered last on. 0 with a->status set
 * when an agent answered, else the transport's code (logged). */
static int
consul_req(consul_state *c, const char *method, const char *target,
    const char *body, answer *a)
{
    int rc = MICRO_ECONNREFUSED;
    size_t start = atomic_load(&c->cur);
    for (size_t i = 0; i < c->n_eps; i++) {
        size_t k = (start + i) % c->n_eps;
        rc = req_once(c, c->eps[k], method, target, body, a);
        if (rc == MICRO_ENOMEM || rc == MICRO_EMSGSIZE) {
            return rc;
        }
        if (rc == 0 && !unavailable(a->status)) {
            atomic_store(&c->cur, k);
            note_up(c, c->eps[k]);
            return 0;
        }
        note_down(c, c->eps[k], target, rc < 0 ? rc : MICRO_EAGAIN);
        rc = rc < 0 ? rc : MICRO_EAGAIN;
    }
    return rc;
}

/* An answer other than 200: logged, MICRO_EREMOTE. */
/* An answer other than 200: logged (rate-limited), MICRO_EREMOTE. */
static int
refused(consul_state *c, const char *what, const answer *a)
{
    char why[256];
    snprintf(why, sizeof(why), "Consul answered %u: %.200s", a->status,
        a->body.data != NULL ? (const char *) a->body.data : "");
    note_bad(c, what, why);
    return MICRO_EREMOTE;
}

/* ------------------------------------------------------------------ */
/* Tags: hex(zlib(...)), as the Go plugin's encoding.go.                */

/* prefix + hex(zlib(p[0..n))) into arr; false on out-of-memory. */
static bool
add_tag(cJSON *arr, const char *prefix, const char *p, size_t n)
{
    char **chunks = NULL;
    size_t k = 0;
    if (micro__mdns_txt_encode(p, n, &chunks, &k) < 0) {
        return false;
    }
    micro_buf b = {0};
    int rc = micro_buf_append_str(&b, prefix);
    for (size_t i = 0; i < k && rc == 0; i++) {
        rc = micro_buf_append_str(&b, chunks[i]);
    }
    micro__mdns_txt_free(chunks, k);
    if (rc == 0) {
        rc = micro_buf_append(&b, "", 1);
    }
    bool ok = rc == 0 &&
        cJSON_AddItemToArray(arr, cJSON_CreateString((char *) b.data));
    micro_buf_clear(&b);
    return ok;
}

/* The payload of a tag after its two-character prefix: the plain form
 * ('=') as is, the hex form ('-') unpacked; NULL when it does not decode
 * (*out then NULL), else a new string (micro__free). */
static char *
tag_payload(const char *tag, size_t *len)
{
    if (tag[1] == '=') {
        *len = strlen(tag + 2);
        return micro__strdup(tag + 2);
    }
    const char *hex = tag + 2;
    char *out = NULL;
    if (micro__mdns_txt_decode(&hex, 1, &out, len) < 0) {
        return NULL;
    }
    return out;
}

/* Version, endpoints (into hdr) and node metadata from a Tags array, by
 * the Go decoders' rules: for endpoints and metadata the first form met
 * ('-' or '=') is the only one used after it; the first version tag
 * that decodes wins. Undecodable tags are counted (*bad). */
static int
decode_tags(const cJSON *tags, micro_registry_service *hdr,
    micro_metadata *md, size_t *bad)
{
    char ever = 0, tver = 0;
    size_t cap = 0;
    /* Go's decodeMetadata returns a non-nil map: {} when nothing. */
    md->items = micro__calloc(1, sizeof(micro_kv));
    if (md->items == NULL) {
        return MICRO_ENOMEM;
    }
    const cJSON *t = NULL;
    cJSON_ArrayForEach(t, tags)
    {
        if (!cJSON_IsString(t) || t->valuestring == NULL) {
            ++*bad;
            continue;
        }
        const char *s = t->valuestring;
        if (strlen(s) < 2 || (s[0] != 'v' && s[0] != 'e' && s[0] != 't')) {
            continue; /* not ours */
        }
        if (s[1] != '-' && s[1] != '=') {
            continue;
        }
        if (s[0] == 'v' && hdr->version != NULL) {
            continue;
        }
        if ((s[0] == 'e' && ever != 0 && s[1] != ever) ||
            (s[0] == 't' && tver != 0 && s[1] != tver)) {
            continue;
        }
        size_t len = 0;
        char *p = tag_payload(s, &len);
        if (s[0] == 'e') {
            ever = s[1];
        } else if (s[0] == 't') {
            tver = s[1];
        }
        if (p == NULL) {
            ++*bad;
            continue;
        }
        int rc = 0;
        if (s[0] == 'v') {
            if (len > 0 || s[1] == '=') {
                hdr->version = p;
                p = NULL;
            }
        } else {
            int prc = 0;
            cJSON *j = micro__json_parse(p, len, NULL, &prc);
            if (j == NULL && prc == MICRO_ENOMEM) {
                rc = MICRO_ENOMEM;
            } else if (s[0] == 'e' && cJSON_IsObject(j)) {
                if (hdr->n_endpoints == cap) {
                    size_t ncap = cap ? cap * 2 : 4;
                    micro_endpoint *e = micro__realloc(
                        hdr->endpoints, ncap * sizeof(*e));
                    rc = e != NULL ? 0 : MICRO_ENOMEM;
                    if (e != NULL) {
                        hdr->endpoints = e;
                        cap = ncap;
                    }
                }
                if (rc == 0) {
                    rc = micro__endpoint_from_cjson(
                        j, &hdr->endpoints[hdr->n_endpoints]);
                    if (rc == 0) {
                        hdr->n_endpoints++;
                    } else if (rc == MICRO_ECODEC) {
                        ++*bad;
                        rc = 0;
                    }
                }
            } else if (s[0] == 't' && cJSON_IsObject(j)) {
                const cJSON *kv = NULL;
                cJSON_ArrayForEach(kv, j)
                {
                    if (cJSON_IsString(kv) && kv->string != NULL) {
                        rc = micro_metadata_set(md, kv->string,
                            kv->valuestring);
                    } else {
                        ++*bad;
                    }
                    if (rc < 0) {
                        break;
                    }
                }
            } else {
                ++*bad;
            }
            cJSON_Delete(j);
        }
        micro__free(p);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Health answers.                                                      */

static const cJSON *
field(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const char *
str_field(const cJSON *o, const char *name)
{
    const cJSON *f = field(o, name);
    return cJSON_IsString(f) && f->valuestring != NULL ? f->valuestring
                                                       : NULL;
}

/* One entry of /v1/health/service: its instance as a one-node record
 * (name, version, endpoints, the node). *critical: a check of it is
 * critical. MICRO_ECODEC (counted in *bad by the caller) when it is not
 * a service entry; want (not NULL): other services' entries too. */
static int
decode_entry(const cJSON *ent, const char *want, micro_registry_service *one,
    bool *critical, size_t *bad)
{
    memset(one, 0, sizeof(*one));
    *critical = false;
    const cJSON *svc = field(ent, "Service");
    const char *name = str_field(svc, "Service");
    const char *id = str_field(svc, "ID");
    const cJSON *port = field(svc, "Port");
    if (!cJSON_IsObject(ent) || name == NULL || id == NULL ||
        (port != NULL && !cJSON_IsNumber(port))) {
        return MICRO_ECODEC;
    }
    if (want != NULL && strcmp(name, want) != 0) {
        return MICRO_ENOENT;
    }
    const char *addr = str_field(svc, "Address");
    if (addr == NULL || addr[0] == '\0') {
        addr = str_field(field(ent, "Node"), "Address");
    }
    if (addr == NULL) {
        addr = "";
    }
    double pd = cJSON_IsNumber(port) ? port->valuedouble : 0;
    long pn = pd >= 0 && pd <= 65535 ? (long) pd : 0;
    const cJSON *ck = NULL;
    cJSON_ArrayForEach(ck, field(ent, "Checks"))
    {
        const char *st = str_field(ck, "Status");
        if (st != NULL && strcmp(st, "critical") == 0) {
            *critical = true;
        }
    }
    one->name = micro__strdup(name);
    one->nodes = micro__calloc(1, sizeof(micro_node));
    int rc = one->name != NULL && one->nodes != NULL ? 0 : MICRO_ENOMEM;
    if (rc == 0) {
        one->n_nodes = 1;
        micro_node *n = &one->nodes[0];
        n->id = micro__strdup(id);
        size_t alen = strlen(addr) + 24;
        n->address = micro__malloc(alen);
        rc = n->id != NULL && n->address != NULL ? 0 : MICRO_ENOMEM;
        if (rc == 0) {
            /* Go's mnet.HostPort: brackets around an IPv6 host. */
            snprintf(n->address, alen,
                strchr(addr, ':') != NULL ? "[%s]:%ld" : "%s:%ld", addr, pn);
            rc = decode_tags(field(svc, "Tags"), one, &n->metadata, bad);
        }
    }
    if (rc == 0 && one->version == NULL) {
        one->version = micro__strdup("");
        rc = one->version != NULL ? 0 : MICRO_ENOMEM;
    }
    if (rc < 0) {
        micro_registry_service_clear(one);
    }
    return rc;
}

/* Records of a health answer merged by version, as Go's GetService:
 * critical instances leave their version's record without them. */
static int
merge_health(consul_state *c, const cJSON *arr, const char *name,
    micro_registry_service **out, size_t *n_out)
{
    micro_registry_service *res = NULL;
    size_t n = 0, room = 0;
    size_t *cap = NULL;
    size_t bad = 0, bad_entries = 0;
    int rc = 0;
    const cJSON *ent = NULL;
    if (!cJSON_IsArray(arr)) {
        note_bad(c, name, "a health answer that is not an array");
        return MICRO_EPROTO;
    }
    cJSON_ArrayForEach(ent, arr)
    {
        micro_registry_service one;
        bool critical = false;
        rc = decode_entry(ent, name, &one, &critical, &bad);
        if (rc == MICRO_ECODEC) {
            bad_entries++;
            rc = 0;
            continue;
        }
        if (rc == MICRO_ENOENT) {
            rc = 0;
            continue;
        }
        if (rc < 0) {
            break;
        }
        size_t i = 0;
        while (i < n && strcmp(res[i].version, one.version) != 0) {
            i++;
        }
        if (i == n) {
            if (n == room) {
                size_t nr = room ? room * 2 : 4;
                micro_registry_service *r2 =
                    micro__realloc(res, nr * sizeof(*r2));
                size_t *c2 = r2 ? micro__realloc(cap, nr * sizeof(*c2)) : NULL;
                if (r2 != NULL) {
                    res = r2;
                }
                if (c2 == NULL) {
                    micro_registry_service_clear(&one);
                    rc = MICRO_ENOMEM;
                    break;
                }
                cap = c2;
                room = nr;
            }
            res[n] = one;
            cap[n] = 1;
            if (critical) {
                micro_node_clear(&res[n].nodes[0]);
                micro__free(res[n].nodes);
                res[n].nodes = NULL;
                res[n].n_nodes = 0;
                cap[n] = 0;
            }
            n++;
            continue;
        }
        micro_registry_service *d = &res[i];
        if (!critical && d->n_nodes == cap[i]) {
            size_t nc = cap[i] ? cap[i] * 2 : 4;
            micro_node *nodes = micro__realloc(d->nodes, nc * sizeof(*nodes));
            if (nodes == NULL) {
                micro_registry_service_clear(&one);
                rc = MICRO_ENOMEM;
                break;
            }
            d->nodes = nodes;
            cap[i] = nc;
        }
        if (!critical) {
            d->nodes[d->n_nodes++] = one.nodes[0];
            memset(&one.nodes[0], 0, sizeof(one.nodes[0]));
        }
        micro_registry_service_clear(&one);
    }
    micro__free(cap);
    if (bad_entries > 0) {
        note_bad(c, name, "health entries without Service.ID/Service");
    }
    if (bad > 0) {
        note_bad(c, name, "tags that do not decode");
    }
    if (rc < 0) {
        micro_registry_services_free(res, n);
        return rc;
    }
    *out = res;
    *n_out = n;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Registration.                                                        */

/* Go's time.Duration.String() of ms (>= 0). */
static void
go_duration(char *out, size_t cap, int64_t ms)
{
    if (ms == 0) {
        snprintf(out, cap, "0s");
        return;
    }
    if (ms < 1000) {
        snprintf(out, cap, "%lldms", (long long) ms);
        return;
    }
    long long h = (long long) (ms / 3600000);
    int m = (int) (ms / 60000 % 60), sec = (int) (ms / 1000 % 60),
        f = (int) (ms % 1000);
    char frac[8] = "";
    if (f != 0) {
        snprintf(frac, sizeof(frac), ".%03d", f);
        for (size_t i = strlen(frac) - 1; frac[i] == '0'; i--) {
            frac[i] = '\0';
        }
    }
    char buf[80];
    if (h > 0) {
        snprintf(buf, sizeof(buf), "%lldh%dm%d%ss", h, m, sec, frac);
    } else if (m > 0) {
        snprintf(buf, sizeof(buf), "%dm%d%ss", m, sec, frac);
    } else {
        snprintf(buf, sizeof(buf), "%d%ss", sec, frac);
    }
    snprintf(out, cap, "%s", buf);
}

/* The AgentServiceRegistration of node i of svc, as the Go plugin
 * builds it. *out: JSON (cJSON_free). */
static int
registration(const micro_registry_service *svc, size_t i, int64_t ttl_ms,
    char **out)
{
    const micro_node *node = &svc->nodes[i];
    cJSON *r = cJSON_CreateObject();
    cJSON *tags = r ? cJSON_AddArrayToObject(r, "Tags") : NULL;
    bool ok = tags != NULL;
    for (size_t k = 0; ok && k < node->metadata.len; k++) {
        cJSON *kv = cJSON_CreateObject();
        char *js = NULL;
        ok = kv != NULL &&
            cJSON_AddStringToObject(kv, node->metadata.items[k].key,
                node->metadata.items[k].value ? node->metadata.items[k].value
                                              : "") != NULL &&
            (js = cJSON_PrintUnformatted(kv)) != NULL &&
            add_tag(tags, "t-", js, strlen(js));
        cJSON_free(js);
        cJSON_Delete(kv);
    }
    for (size_t k = 0; ok && k < svc->n_endpoints; k++) {
        char *js = NULL;
        ok = micro__endpoint_to_json(&svc->endpoints[k], &js) == 0 &&
            add_tag(tags, "e-", js, strlen(js));
        micro__free(js);
    }
    const char *ver = svc->version != NULL ? svc->version : "";
    ok = ok && add_tag(tags, "v-", ver, strlen(ver));
    /* net.SplitHostPort; a host alone when that fails. */
    const char *a = node->address != NULL ? node->address : "";
    const char *colon = strrchr(a, ':');
    char host[256];
    long port = 0;
    if (colon != NULL && (a[0] != '[' || colon[-1] == ']') &&
        (a[0] == '[' || memchr(a, ':', (size_t) (colon - a)) == NULL)) {
        size_t hl = (size_t) (colon - a);
        const char *hs = a;
        if (a[0] == '[') {
            hs++;
            hl -= 2;
        }
        snprintf(host, sizeof(host), "%.*s", (int) hl, hs);
        char *end = NULL;
        port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end != '\0' || port < 0 || port > 65535) {
            port = 0;
        }
    } else {
        snprintf(host, sizeof(host), "%s", a);
    }
    if (host[0] == '\0') {
        snprintf(host, sizeof(host), "%s", a);
    }
    ok = ok && cJSON_AddStringToObject(r, "ID", node->id) != NULL &&
        cJSON_AddStringToObject(r, "Name", svc->name) != NULL &&
        cJSON_AddNumberToObject(r, "Port", (double) port) != NULL &&
        cJSON_AddStringToObject(r, "Address", host) != NULL;
    if (ok && node->metadata.len > 0) {
        cJSON *meta = cJSON_AddObjectToObject(r, "Meta");
        ok = meta != NULL;
        for (size_t k = 0; ok && k < node->metadata.len; k++) {
            const micro_kv *kv = &node->metadata.items[k];
            ok = cJSON_AddStringToObject(meta, kv->key,
                     kv->value ? kv->value : "") != NULL;
        }
    }
    if (ok && ttl_ms > 0) {
        char ttl[80], dereg[80];
        go_duration(ttl, sizeof(ttl), ttl_ms);
        go_duration(dereg, sizeof(dereg),
            (ttl_ms < 60000 ? 60000 : ttl_ms) + 5000);
        cJSON *ck = cJSON_AddObjectToObject(r, "Check");
        ok = ck != NULL && cJSON_AddStringToObject(ck, "TTL", ttl) != NULL &&
            cJSON_AddStringToObject(ck, "DeregisterCriticalServiceAfter",
                dereg) != NULL;
    }
    *out = ok ? cJSON_PrintUnformatted(r) : NULL;
    cJSON_Delete(r);
    return *out != NULL ? 0 : MICRO_ENOMEM;
}

/* PUT /v1/agent/check/pass/service:<id>: 0, MICRO_ENOENT when the agent
 * refuses (it does not know the check), or the transport's code. */
static int
check_pass(consul_state *c, const char *id)
{
    char *target = make_target("/v1/agent/check/pass/service:", id, "?note=");
    if (target == NULL) {
        return MICRO_ENOMEM;
    }
    answer a = {0};
    int rc = consul_req(c, "PUT", target, NULL, &a);
    if (rc == 0 && a.status != 200) {
        MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "pass of service:%s: %u %.200s", id,
            a.status, (const char *) a.body.data);
        rc = MICRO_ENOENT;
    }
    micro_buf_clear(&a.body);
    micro__free(target);
    return rc;
}

/* Is id registered with the agent? 0 yes, MICRO_ENOENT no. */
static int
agent_has(consul_state *c, const char *id)
{
    char *target = make_target("/v1/agent/service/", id, NULL);
    if (target == NULL) {
        return MICRO_ENOMEM;
    }
    answer a = {0};
    int rc = consul_req(c, "GET", target, NULL, &a);
    if (rc == 0 && a.status != 200) {
        rc = MICRO_ENOENT;
    }
    micro_buf_clear(&a.body);
    micro__free(target);
    return rc;
}

/* Register t with the agent (and pass its check). */
static int
store(consul_state *c, reg_ent *t)
{
    answer a = {0};
    int rc = consul_req(c, "PUT", "/v1/agent/service/register", t->body, &a);
    if (rc == 0 && a.status != 200) {
        rc = refused(c, "register", &a);
    }
    micro_buf_clear(&a.body);
    if (rc == 0 && t->ttl_ms > 0) {
        rc = check_pass(c, t->id);
        rc = rc == MICRO_ENOENT ? MICRO_EREMOTE : rc;
    }
    t->stored = rc == 0;
    return rc;
}

/* Keep one node registered (op_mu held). */
static int
keep(consul_state *c, reg_ent *t, bool changed)
{
    if (t->stored && !changed) {
        int rc = t->ttl_ms > 0 ? check_pass(c, t->id) : agent_has(c, t->id);
        if (rc != MICRO_ENOENT) {
            return rc; /* alive, or the agent is out of reach */
        }
        MICRO_LOGF(MICRO_LOG_INFO, COMP,
            "the agent lost %s; registering it again", t->id);
    }
    return store(c, t);
}

static reg_ent *
ent_find(consul_state *c, const char *id)
{
    for (size_t i = 0; i < c->n_ents; i++) {
        if (strcmp(c->ents[i].id, id) == 0) {
            return &c->ents[i];
        }
    }
    return NULL;
}

/* The keeper's period (op_mu held): a third of the shortest TTL, a
 * second while a registration failed. */
static int64_t
keeper_every(const consul_state *c)
{
    int64_t every = NOTTL_CHECK_MS;
    for (size_t i = 0; i < c->n_ents; i++) {
        const reg_ent *t = &c->ents[i];
        int64_t e = !t->stored ? 1000
            : t->ttl_ms > 0    ? t->ttl_ms / 3
                               : NOTTL_CHECK_MS;
        every = e < every ? e : every;
    }
    return every < 300 ? 300 : every;
}

static void *
keeper_main(void *arg)
{
    consul_state *c = arg;
    int64_t last = micro__now_ms();
    for (;;) {
        pthread_mutex_lock(&c->op_mu);
        int64_t due = last + keeper_every(c);
        pthread_mutex_unlock(&c->op_mu);
        pthread_mutex_lock(&c->mu);
        int64_t now = micro__now_ms();
        if (!c->stop && now < due) {
            micro__netreg_timed_wait(&c->kcv, &c->mu, due - now);
        }
        bool stop = c->stop;
        pthread_mutex_unlock(&c->mu);
        if (stop) {
            return NULL;
        }
        if (micro__now_ms() < due) {
            continue;
        }
        last = micro__now_ms();
        pthread_mutex_lock(&c->op_mu);
        for (size_t i = 0; i < c->n_ents && !stop; i++) {
            (void) keep(c, &c->ents[i], false);
            pthread_mutex_lock(&c->mu);
            stop = c->stop;
            pthread_mutex_unlock(&c->mu);
        }
        pthread_mutex_unlock(&c->op_mu);
    }
}

static int
consul_register(void *st, const micro_registry_service *svc, int64_t ttl_ms)
{
    consul_state *c = st;
    if (svc->n_nodes == 0) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP, "register %s: no node to register",
            svc->name);
        return MICRO_EINVAL;
    }
    int first_rc = 0;
    pthread_mutex_lock(&c->op_mu);
    for (size_t i = 0; i < svc->n_nodes; i++) {
        char *body = NULL;
        int rc = svc->nodes[i].id != NULL && svc->nodes[i].id[0] != '\0'
            ? registration(svc, i, ttl_ms, &body)
            : MICRO_EINVAL;
        reg_ent *t = rc == 0 ? ent_find(c, svc->nodes[i].id) : NULL;
        if (rc == 0 && t == NULL) {
            reg_ent *ents =
                micro__realloc(c->ents, (c->n_ents + 1) * sizeof(*ents));
            char *id = micro__strdup(svc->nodes[i].id);
            if (ents != NULL) {
                c->ents = ents;
            }
            if (ents == NULL || id == NULL) {
                micro__free(id);
                rc = MICRO_ENOMEM;
            } else {
                t = &c->ents[c->n_ents++];
                memset(t, 0, sizeof(*t));
                t->id = id;
            }
        }
        if (rc == 0) {
            bool changed = t->body == NULL || strcmp(t->body, body) != 0;
            micro__free(t->body);
            t->body = micro__strdup(body);
            t->ttl_ms = ttl_ms;
            rc = t->body != NULL ? keep(c, t, changed) : MICRO_ENOMEM;
            if (t->body == NULL) {
                t->stored = false;
            }
            /* A failed registration stays listed: the keeper retries it,
             * so it comes back with the agent. */
        }
        cJSON_free(body);
        if (rc < 0 && first_rc == 0) {
            first_rc = rc;
        }
    }
    if (!c->keeper_on && c->n_ents > 0) {
        c->keeper_on = pthread_create(&c->keeper, NULL, keeper_main, c) == 0;
        if (!c->keeper_on) {
            MICRO_LOGF(MICRO_LOG_ERR, COMP,
                "cannot start the check keeper: registrations may lapse");
        }
    }
    pthread_mutex_unlock(&c->op_mu);
    pthread_mutex_lock(&c->mu);
    pthread_cond_signal(&c->kcv);
    pthread_mutex_unlock(&c->mu);
    return first_rc;
}

static int
consul_deregister(void *st, const micro_registry_service *svc)
{
    consul_state *c = st;
    if (svc->n_nodes == 0) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP,
            "deregister %s: no node to deregister", svc->name);
        return MICRO_EINVAL;
    }
    int first_rc = 0;
    pthread_mutex_lock(&c->op_mu);
    for (size_t i = 0; i < svc->n_nodes; i++) {
        const char *id = svc->nodes[i].id != NULL ? svc->nodes[i].id : "";
        reg_ent *t = ent_find(c, id);
        if (t != NULL) {
            micro__free(t->id);
            micro__free(t->body);
            *t = c->ents[--c->n_ents];
        }
        char *target = make_target("/v1/agent/service/deregister/", id, NULL);
        answer a = {0};
        int rc = target != NULL
            ? consul_req(c, "PUT", target, NULL, &a)
            : MICRO_ENOMEM;
        /* 404: the agent does not know it (any more): done too. */
        if (rc == 0 && a.status != 200 && a.status != 404) {
            rc = refused(c, "deregister", &a);
        }
        micro_buf_clear(&a.body);
        micro__free(target);
        if (rc < 0 && first_rc == 0) {
            first_rc = rc;
        }
    }
    pthread_mutex_unlock(&c->op_mu);
    return first_rc;
}

/* ------------------------------------------------------------------ */
/* Reads.                                                               */

/* GET target and parse the 200 answer. */
static int
get_json(consul_state *c, const char *target, cJSON **out)
{
    *out = NULL;
    answer a = {0};
    int rc = consul_req(c, "GET", target, NULL, &a);
    if (rc == 0 && a.status != 200) {
        rc = refused(c, target, &a);
    }
    if (rc == 0) {
        *out = micro__json_parse((const char *) a.body.data, a.body.len, NULL,
            &rc);
        if (*out == NULL && rc != MICRO_ENOMEM) {
            note_bad(c, target, "an answer that is not JSON");
            rc = MICRO_EPROTO;
        }
    }
    micro_buf_clear(&a.body);
    return rc;
}

static int
consul_get_service(
    void *st, const char *name, micro_registry_service **out, size_t *n)
{
    consul_state *c = st;
    char *target = make_target("/v1/health/service/", name, "?stale");
    cJSON *j = NULL;
    int rc = target != NULL ? get_json(c, target, &j) : MICRO_ENOMEM;
    if (rc == 0) {
        rc = merge_health(c, j, name, out, n);
    }
    cJSON_Delete(j);
    micro__free(target);
    if (rc == 0 && *n == 0) {
        rc = MICRO_ENOSERVICE;
    }
    return rc;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(((const micro_registry_service *) a)->name,
        ((const micro_registry_service *) b)->name);
}

/* The names of a /v1/catalog/services answer (an object). */
static int
catalog_names(consul_state *c, const cJSON *j, micro_registry_service **out,
    size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!cJSON_IsObject(j)) {
        note_bad(c, "/v1/catalog/services", "an answer that is not an object");
        return MICRO_EPROTO;
    }
    size_t cap = (size_t) cJSON_GetArraySize(j);
    micro_registry_service *res =
        cap > 0 ? micro__calloc(cap, sizeof(*res)) : NULL;
    if (cap > 0 && res == NULL) {
        return MICRO_ENOMEM;
    }
    size_t n = 0;
    const cJSON *s = NULL;
    cJSON_ArrayForEach(s, j)
    {
        if (s->string == NULL || s->string[0] == '\0') {
            continue;
        }
        res[n].name = micro__strdup(s->string);
        if (res[n].name == NULL) {
            micro_registry_services_free(res, n);
            return MICRO_ENOMEM;
        }
        n++;
    }
    if (n > 1) {
        qsort(res, n, sizeof(*res), name_cmp);
    }
    *out = res;
    *n_out = n;
    return 0;
}

static int
consul_list_services(void *st, micro_registry_service **out, size_t *n)
{
    consul_state *c = st;
    cJSON *j = NULL;
    int rc = get_json(c, "/v1/catalog/services?stale", &j);
    if (rc == 0) {
        rc = catalog_names(c, j, out, n);
    }
    cJSON_Delete(j);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Watch.                                                               */

static void
snap_free(snap_node *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        micro__free(nodes[i].id);
        micro__free(nodes[i].fp);
        micro_registry_service_clear(&nodes[i].svc);
    }
    micro__free(nodes);
}

static int
snap_cmp(const void *a, const void *b)
{
    return strcmp(((const snap_node *) a)->id, ((const snap_node *) b)->id);
}

static void
push(micro__evlist *l, micro_registry_action a, const micro_registry_service *s)
{
    micro__evlist_push(l, COMP, a, s, s->nodes, s->n_nodes);
}

/* A health answer for q's service becomes its snapshot: the instances
 * that are not critical, by id. The differences with the old one are
 * pushed onto l (unless initial). */
static int
apply_health(consul_state *c, wq *q, const cJSON *arr, bool initial,
    micro__evlist *l)
{
    if (!cJSON_IsArray(arr)) {
        note_bad(c, q->name, "a health answer that is not an array");
        return MICRO_EPROTO;
    }
    size_t cap = (size_t) cJSON_GetArraySize(arr);
    snap_node *fresh = cap > 0 ? micro__calloc(cap, sizeof(*fresh)) : NULL;
    if (cap > 0 && fresh == NULL) {
        return MICRO_ENOMEM;
    }
    size_t nf = 0, bad = 0, bad_entries = 0;
    const cJSON *ent = NULL;
    int rc = 0;
    cJSON_ArrayForEach(ent, arr)
    {
        micro_registry_service one;
        bool critical = false;
        rc = decode_entry(ent, q->name, &one, &critical, &bad);
        if (rc == MICRO_ECODEC || rc == MICRO_ENOENT) {
            bad_entries += rc == MICRO_ECODEC;
            rc = 0;
            continue;
        }
        if (rc < 0) {
            break;
        }
        if (critical) {
            micro_registry_service_clear(&one);
            continue;
        }
        fresh[nf].id = micro__strdup(one.nodes[0].id);
        rc = micro_registry_service_to_json(&one, &fresh[nf].fp);
        fresh[nf].svc = one;
        nf++;
        if (fresh[nf - 1].id == NULL || rc < 0) {
            rc = MICRO_ENOMEM;
            break;
        }
    }
    if (bad_entries > 0) {
        note_bad(c, q->name, "health entries without Service.ID/Service");
    }
    if (bad > 0) {
        note_bad(c, q->name, "tags that do not decode");
    }
    if (rc < 0) {
        snap_free(fresh, nf);
        return rc;
    }
    if (nf > 1) {
        qsort(fresh, nf, sizeof(*fresh), snap_cmp);
    }
    /* One record per id (the last one of duplicates). */
    size_t u = 0;
    for (size_t k = 0; k < nf; k++) {
        if (u > 0 && strcmp(fresh[u - 1].id, fresh[k].id) == 0) {
            micro__free(fresh[u - 1].id);
            micro__free(fresh[u - 1].fp);
            micro_registry_service_clear(&fresh[u - 1].svc);
            fresh[u - 1] = fresh[k];
        } else {
            fresh[u++] = fresh[k];
        }
    }
    nf = u;
    size_t i = 0, j = 0;
    while (!initial && (i < q->n || j < nf)) {
        int d = i == q->n ? 1
            : j == nf     ? -1
                          : strcmp(q->nodes[i].id, fresh[j].id);
        if (d < 0) {
            push(l, MICRO_REGISTRY_DELETE, &q->nodes[i++].svc);
        } else if (d > 0) {
            push(l, MICRO_REGISTRY_CREATE, &fresh[j++].svc);
        } else {
            if (strcmp(q->nodes[i].fp, fresh[j].fp) != 0) {
                push(l, MICRO_REGISTRY_UPDATE, &fresh[j].svc);
            }
            i++;
            j++;
        }
    }
    snap_free(q->nodes, q->n);
    q->nodes = fresh;
    q->n = nf;
    q->known = true;
    return 0;
}

static wq *
wq_new(consul_state *c, const char *name)
{
    wq *q = micro__calloc(1, sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    q->c = c;
    q->backoff = BACKOFF_MIN_MS;
    if (name != NULL) {
        q->name = micro__strdup(name);
        if (q->name == NULL) {
            micro__free(q);
            return NULL;
        }
    }
    return q;
}

static void
wq_free(wq *q)
{
    snap_free(q->nodes, q->n);
    micro_msg_free(q->hdrs);
    micro_buf_clear(&q->buf);
    micro__free(q->name);
    micro__free(q->target);
    micro__free(q);
}

static void
wq_done(micro__aio *a)
{
    wq *q = a->arg;
    consul_state *c = q->c;
    pthread_mutex_lock(&c->wmu);
    q->done = true;
    pthread_cond_signal(&c->wcv);
    pthread_mutex_unlock(&c->wmu);
}

/* Start q's blocking query (wmu held; watch thread). */
static void
wq_start(consul_state *c, wq *q)
{
    char suffix[96];
    snprintf(suffix, sizeof(suffix), "?index=%llu&wait=%ds",
        (unsigned long long) q->index, WAIT_S);
    micro__free(q->target);
    q->target = q->name != NULL
        ? make_target("/v1/health/service/", q->name, suffix)
        : make_target("/v1/catalog/services", NULL, suffix);
    micro_msg_free(q->hdrs);
    q->hdrs = NULL;
    if (q->target == NULL || make_headers(c, &q->hdrs) < 0) {
        q->retry_at = micro__now_ms() + BACKOFF_MAX_MS;
        return;
    }
    q->ep = atomic_load(&c->cur) % c->n_eps;
    q->buf.len = 0;
    memset(&q->call, 0, sizeof(q->call));
    q->call.client = c->http;
    q->call.method = "GET";
    q->call.addr = c->eps[q->ep];
    q->call.tls = c->tls;
    q->call.target = q->target;
    q->call.headers = q->hdrs;
    q->call.on_body = micro__netreg_collect;
    q->call.arg = &q->buf;
    micro__aio_init(&q->aio, c->loop, wq_done, q);
    /* Consul adds up to wait/16 of jitter. */
    micro__aio_set_timeout(&q->aio, WAIT_S * 1000 + WAIT_S * 1000 / 16 +
        c->timeout_ms);
    q->started = micro__now_ms();
    q->done = false;
    q->busy = micro__aio_post(&q->aio, micro__http_call_start, &q->call) == 0;
    if (!q->busy) {
        q->retry_at = micro__now_ms() + BACKOFF_MAX_MS;
    }
}

/* On the loop: cancel every query that is gone (or all when stopping)
 * and still busy. A cancel may complete its query at once (wq_done takes
 * wmu), so the queries are collected first and cancelled without wmu:
 * none of them can complete meanwhile, completions run on this thread,
 * so none is freed before its cancel. */
static void
cancel_all(void *arg)
{
    consul_state *c = arg;
    pthread_mutex_lock(&c->wmu);
    size_t n = 0;
    micro__aio **a = c->n_q > 0 ? micro__calloc(c->n_q, sizeof(*a)) : NULL;
    for (size_t i = 0; a != NULL && i < c->n_q; i++) {
        wq *q = c->q[i];
        if ((q->gone || c->wstop) && q->busy && !q->done &&
            micro__aio_pending(&q->aio)) {
            a[n++] = &q->aio;
        }
    }
    bool again = a == NULL && c->n_q > 0;
    pthread_mutex_unlock(&c->wmu);
    for (size_t i = 0; i < n; i++) {
        micro__aio_cancel(a[i], MICRO_ECANCELED);
    }
    micro__free(a);
    if (again) {
        /* Out of memory: the watch thread posts this again. */
        MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "cancel: out of memory, later");
    }
}

static wq *
find_q(consul_state *c, const char *name)
{
    /* A query being dropped (gone) does not count: a service that left
     * and came back gets a new one. */
    for (size_t i = 0; i < c->n_q; i++) {
        if (c->q[i]->name != NULL && !c->q[i]->gone &&
            strcmp(c->q[i]->name, name) == 0) {
            return c->q[i];
        }
    }
    return NULL;
}

static int
add_q(consul_state *c, wq *q)
{
    /* Under wmu: the loop's cancel_all reads the array. */
    pthread_mutex_lock(&c->wmu);
    wq **qs = micro__realloc(c->q, (c->n_q + 1) * sizeof(*qs));
    if (qs != NULL) {
        c->q = qs;
        c->q[c->n_q++] = q;
    }
    pthread_mutex_unlock(&c->wmu);
    return qs != NULL ? 0 : MICRO_ENOMEM;
}

/* The catalog's names (a parsed answer) against the watched services:
 * new ones get a query (initial: listed now, without events), vanished
 * ones raise deletes for what was known of them and are dropped. */
static void
apply_catalog(consul_state *c, const cJSON *j, bool initial, micro__evlist *l)
{
    micro_registry_service *names = NULL;
    size_t n = 0;
    if (catalog_names(c, j, &names, &n) < 0) {
        return;
    }
    bool cancel = false;
    for (size_t i = 0; i < c->n_q; i++) {
        wq *q = c->q[i];
        if (q->name == NULL || q->gone) {
            continue;
        }
        micro_registry_service key = {.name = q->name};
        if (n > 0 && bsearch(&key, names, n, sizeof(*names), name_cmp)) {
            continue;
        }
        for (size_t k = 0; k < q->n; k++) {
            push(l, MICRO_REGISTRY_DELETE, &q->nodes[k].svc);
        }
        pthread_mutex_lock(&c->wmu);
        q->gone = true;
        cancel = cancel || q->busy;
        pthread_mutex_unlock(&c->wmu);
    }
    for (size_t i = 0; i < n; i++) {
        if (find_q(c, names[i].name) != NULL) {
            continue;
        }
        wq *q = wq_new(c, names[i].name);
        if (q == NULL || add_q(c, q) < 0) {
            MICRO_LOGF(MICRO_LOG_WARN, COMP,
                "out of memory: not watching %s", names[i].name);
            if (q != NULL) {
                wq_free(q);
            }
            continue;
        }
        if (initial) {
            /* Listed now, so that watch returns with the state known. */
            char *target = make_target("/v1/health/service/", q->name, NULL);
            answer a = {0};
            int rc = target != NULL
                ? consul_req(c, "GET", target, NULL, &a)
                : MICRO_ENOMEM;
            cJSON *h = rc == 0 && a.status == 200
                ? micro__json_parse((const char *) a.body.data, a.body.len,
                      NULL, &rc)
                : NULL;
            if (h != NULL && apply_health(c, q, h, true, l) == 0) {
                q->index = a.index;
            }
            cJSON_Delete(h);
            micro_buf_clear(&a.body);
            micro__free(target);
        }
    }
    micro_registry_services_free(names, n);
    if (cancel) {
        (void) micro_loop_post(c->loop, cancel_all, c);
    }
}

/* A finished query (not busy any more): its answer applied. */
static void
wq_finish(consul_state *c, wq *q, micro__evlist *l)
{
    int rc = q->aio.rc;
    unsigned status = q->call.status;
    uint64_t index = answer_index(q->call.rsp);
    micro__http_call_fini(&q->call);
    micro_msg_free(q->hdrs);
    q->hdrs = NULL;
    int64_t now = micro__now_ms();
    const char *what = q->name != NULL ? q->name : "the catalog";
    if (rc == 0 && unavailable(status)) {
        rc = MICRO_EAGAIN;
    }
    if (rc < 0 || status != 200) {
        if (rc == MICRO_ECANCELED) {
            return;
        }
        if (rc < 0) {
            note_down(c, c->eps[q->ep], q->target, rc);
            size_t want = q->ep;
            atomic_compare_exchange_strong(&c->cur, &want,
                (q->ep + 1) % c->n_eps);
        } else {
            char why[64];
            snprintf(why, sizeof(why), "Consul answered %u", status);
            note_bad(c, what, why);
        }
        /* The last good state stays; try again later, from index 0 (the
         * agent that answers next may be another, or a new one, whose
         * indexes are not ours: a blocking query would wait). */
        q->index = 0;
        q->retry_at = now + q->backoff;
        q->backoff = q->backoff * 2 < BACKOFF_MAX_MS ? q->backoff * 2
                                                     : BACKOFF_MAX_MS;
        return;
    }
    note_up(c, c->eps[q->ep]);
    q->backoff = BACKOFF_MIN_MS;
    if (q->known && index != 0 && index == q->index) {
        /* The wait ran out with nothing new. Pace an agent that answers
         * at once without blocking. */
        q->retry_at = now - q->started < 100 ? now + 100 : 0;
        return;
    }
    int prc = 0;
    cJSON *j = micro__json_parse((const char *) q->buf.data, q->buf.len,
        NULL, &prc);
    if (j == NULL) {
        note_bad(c, what, prc == MICRO_ENOMEM ? "out of memory"
                                              : "an answer that is not JSON");
        q->retry_at = now + BACKOFF_MAX_MS;
        return;
    }
    int arc = q->name != NULL ? apply_health(c, q, j, false, l) : 0;
    if (q->name == NULL) {
        apply_catalog(c, j, false, l);
        q->known = true;
    }
    cJSON_Delete(j);
    if (arc < 0) {
        q->retry_at = now + BACKOFF_MAX_MS;
        return;
    }
    /* Consul's rules: an index that goes back means a reset (a new
     * agent): start again from 0; never block on 0. */
    q->index = index < q->index ? 0 : index;
    if (q->index == 0 && index == 0) {
        q->retry_at = now + BACKOFF_MAX_MS; /* no index: poll */
    } else {
        q->retry_at = 0;
    }
}

static void
dispatch(consul_state *c, micro__evlist *l)
{
    micro__watchers_deliver(&c->watch, l);
}

static void *
watch_main(void *arg)
{
    consul_state *c = arg;
    micro__evlist l = {0};
    wq *cat = wq_new(c, NULL);
    if (cat == NULL || add_q(c, cat) < 0) {
        MICRO_LOGF(MICRO_LOG_ERR, COMP, "out of memory: no watch");
        if (cat != NULL) {
            wq_free(cat);
        }
        cat = NULL;
    }
    if (cat != NULL) {
        answer a = {0};
        int rc = consul_req(c, "GET", "/v1/catalog/services", NULL, &a);
        cJSON *j = rc == 0 && a.status == 200
            ? micro__json_parse((const char *) a.body.data, a.body.len,
                  NULL, &rc)
            : NULL;
        if (j != NULL) {
            apply_catalog(c, j, true, &l);
            cat->index = a.index;
            cat->known = true;
        }
        cJSON_Delete(j);
        micro_buf_clear(&a.body);
    }
    micro__evlist_clear(&l);
    micro__netreg_listed(&c->wt, &c->mu);

    pthread_mutex_lock(&c->wmu);
    while (!c->wstop && cat != NULL) {
        int64_t now = micro__now_ms();
        int64_t next = now + 1000;
        wq *ready = NULL;
        for (size_t i = 0; i < c->n_q; i++) {
            wq *q = c->q[i];
            if (q->busy && q->done) {
                q->busy = false;
                ready = q;
                break;
            }
            if (q->gone && !q->busy) {
                c->q[i] = c->q[--c->n_q];
                wq_free(q);
                i--;
                continue;
            }
            if (!q->busy && !q->gone) {
                if (q->retry_at <= now) {
                    wq_start(c, q);
                } else if (q->retry_at < next) {
                    next = q->retry_at;
                }
            }
        }
        if (ready != NULL) {
            pthread_mutex_unlock(&c->wmu);
            if (!ready->gone) {
                wq_finish(c, ready, &l);
            } else {
                micro__http_call_fini(&ready->call);
                micro_msg_free(ready->hdrs);
                ready->hdrs = NULL;
            }
            dispatch(c, &l);
            pthread_mutex_lock(&c->wmu);
            continue;
        }
        micro__netreg_timed_wait(&c->wcv, &c->wmu,
            next - now > 0 ? next - now : 1);
    }
    /* Stopping: cancel what is on the loop and wait for it. */
    bool busy = true;
    while (busy) {
        busy = false;
        for (size_t i = 0; i < c->n_q; i++) {
            busy = busy || (c->q[i]->busy && !c->q[i]->done);
        }
        if (busy) {
            pthread_mutex_unlock(&c->wmu);
            (void) micro_loop_post(c->loop, cancel_all, c);
            pthread_mutex_lock(&c->wmu);
            micro__netreg_timed_wait(&c->wcv, &c->wmu, 200);
        }
    }
    for (size_t i = 0; i < c->n_q; i++) {
        if (c->q[i]->busy) {
            micro__http_call_fini(&c->q[i]->call);
        }
        wq_free(c->q[i]);
    }
    micro__free(c->q);
    c->q = NULL;
    c->n_q = 0;
    pthread_mutex_unlock(&c->wmu);
    micro__evlist_clear(&l);
    return NULL;
}

static int
consul_watch(void *st, micro_registry_watch_fn fn, void *arg, uint64_t *token)
{
    consul_state *c = st;
    return micro__netreg_watch(&c->watch, &c->mu, &c->wt,
        watch_main, c, fn, arg, token);
}

static void
consul_unwatch(void *st, uint64_t token)
{
    consul_state *c = st;
    micro__netreg_unwatch(&c->watch, &c->mu, token);
}

/* ------------------------------------------------------------------ */
/* Life.                                                                */

static void
consul_fini(void *st)
{
    consul_state *c = st;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_broadcast(&c->kcv);
    bool w_on = c->wt.on;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&c->wmu);
    c->wstop = true;
    pthread_cond_broadcast(&c->wcv);
    pthread_mutex_unlock(&c->wmu);
    if (c->keeper_on) {
        pthread_join(c->keeper, NULL);
    }
    if (w_on) {
        pthread_join(c->wt.th, NULL);
    }
    micro__http_client_free(c->http);
    micro_loop_free(c->loop);
    micro__tls_ctx_free(c->tls_ctx);
    c->tls_ctx = NULL;
    for (size_t i = 0; i < c->n_ents; i++) {
        micro__free(c->ents[i].id);
        micro__free(c->ents[i].body);
    }
    micro__free(c->ents);
    for (size_t i = 0; i < c->n_eps; i++) {
        micro__free(c->eps[i]);
    }
    micro__free(c->eps);
    micro__free(c->token);
    micro__watchers_fini(&c->watch);
    pthread_cond_destroy(&c->kcv);
    pthread_cond_destroy(&c->wt.ready);
    pthread_cond_destroy(&c->wcv);
    pthread_mutex_destroy(&c->wmu);
    pthread_mutex_destroy(&c->op_mu);
    pthread_mutex_destroy(&c->mu);
}

static int
consul_init(void *st, const micro_options *opts)
{
    consul_state *c = st;
    atomic_init(&c->cur, 0);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    bool ok = pthread_mutex_init(&c->mu, NULL) == 0;
    ok = ok && pthread_mutex_init(&c->op_mu, NULL) == 0;
    ok = ok && pthread_mutex_init(&c->wmu, NULL) == 0;
    ok = ok && pthread_cond_init(&c->kcv, &ca) == 0;
    ok = ok && pthread_cond_init(&c->wt.ready, NULL) == 0;
    ok = ok && pthread_cond_init(&c->wcv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok || micro__watchers_init(&c->watch, &c->mu, COMP) < 0) {
        return MICRO_ENOMEM;
    }
    c->timeout_ms = micro_options_get_ms(opts, "registry_timeout");
    if (c->timeout_ms <= 0) {
        c->timeout_ms = 5000;
    }
    const char *addrs = micro__netreg_opt_or_env(opts, "registry_address",
        "CONSUL_HTTP_ADDR");
    const char *token = micro__netreg_opt_or_env(opts, "registry_token",
        "CONSUL_HTTP_TOKEN");
    micro__tls_conf tc;
    c->tls = micro__tls_conf_load(&tc, opts, "registry");
    int rc = micro__netreg_addrs(addrs != NULL ? addrs : "127.0.0.1:8500",
        "8500", COMP, "Consul", &c->eps, &c->n_eps, &c->tls);
    if (rc == 0 && c->tls) {
        /* Go Micro's Consul plugin: Secure without a TLSConfig skips
         * verification; here a CA file turns it on. */
        tc.verify = tc.verify && tc.ca_file != NULL;
        tc.alpn = NULL;
        tc.component = COMP;
        rc = micro__tls_ctx_new(&c->tls_ctx, false, &tc);
    }
    if (rc == 0 && token != NULL) {
        c->token = micro__strdup(token);
        rc = c->token != NULL ? 0 : MICRO_ENOMEM;
    }
    if (rc == 0) {
        rc = micro_loop_new(&c->loop);
    }
    if (rc == 0) {
        micro__http_client_cfg cfg;
        micro__http_client_cfg_load(&cfg, NULL);
        cfg.pool_size = 16;
        cfg.dial_timeout_ms = c->timeout_ms;
        cfg.tls = c->tls_ctx;
        rc = micro__http_client_new(&c->http, c->loop, &cfg);
    }
    if (rc < 0) {
        micro_loop_free(c->loop);
        c->loop = NULL;
        consul_fini(c);
        return rc;
    }
    MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "%zu agents, first %s, timeout %lld ms",
        c->n_eps, c->eps[0], (long long) c->timeout_ms);
    return 0;
}

/* ------------------------------------------------------------------ */
/* For fuzz/fuzz_consul.c (registry_internal.h).                       */

int
micro__consul_fuzz(const uint8_t *data, size_t size)
{
    consul_state *c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        return MICRO_ENOMEM;
    }
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        micro__free(c);
        return MICRO_ENOMEM;
    }
    size_t seen = 0;
    uint64_t tok = 0;
    int rc = micro__watchers_init(&c->watch, &c->mu, COMP);
    if (rc == 0) {
        rc = micro__watchers_add(&c->watch, micro__netreg_fuzz_event, &seen,
            &tok);
    }
    cJSON *j = rc == 0 ? micro__json_parse((const char *) data, size, NULL,
                              &rc)
                       : NULL;
    wq *q = j != NULL ? wq_new(c, "greeter") : NULL;
    if (q != NULL) {
        /* As a GetService answer (merged by version), then twice as a
         * watch answer (a snapshot, then the same again: no events), and
         * as a catalog answer's names. */
        micro_registry_service *out = NULL;
        size_t n = 0;
        if (merge_health(c, j, "greeter", &out, &n) == 0) {
            micro_registry_services_free(out, n);
        }
        micro__evlist l = {0};
        (void) apply_health(c, q, j, false, &l);
        (void) apply_health(c, q, j, false, &l);
        micro__watchers_deliver(&c->watch, &l);
        if (catalog_names(c, j, &out, &n) == 0) {
            micro_registry_services_free(out, n);
        }
        /* Every string in it as a Tags array of one. */
        cJSON *arr = cJSON_CreateArray();
        const cJSON *s = NULL;
        cJSON_ArrayForEach(s, j)
        {
            if (arr != NULL && cJSON_IsString(s)) {
                cJSON_AddItemToArray(arr, cJSON_CreateString(s->valuestring));
            }
        }
        micro_registry_service hdr = {0};
        micro_metadata md = {0};
        size_t bad = 0;
        (void) decode_tags(arr, &hdr, &md, &bad);
        micro_registry_service_clear(&hdr);
        micro_metadata_clear(&md);
        cJSON_Delete(arr);
        wq_free(q);
    }
    cJSON_Delete(j);
    micro__watchers_fini(&c->watch);
    pthread_mutex_destroy(&c->mu);
    micro__free(c);
    return rc == MICRO_ENOMEM ? rc : 0;
}

static const micro_option_desc consul_options[] = {
    {"registry_address", MICRO_OPT_STR, "127.0.0.1:8500",
        "Consul agent addresses, comma-separated (or CONSUL_HTTP_ADDR)"},
    {"registry_timeout", MICRO_OPT_MS, "5s",
        "how long one Consul request may take"},
    {"registry_token", MICRO_OPT_STR, NULL,
        "Consul ACL token sent as X-Consul-Token (or CONSUL_HTTP_TOKEN)"},
    MICRO__NETREG_TLS_OPTIONS("Consul"),
    MICRO_OPTION_END,
};

MICRO_API const micro_registry_ops micro_registry_consul_ops = {
    .abi = MICRO_REGISTRY_ABI,
    .name = "consul",
    .state_size = sizeof(consul_state),
    .init = consul_init,
    .register_service = consul_register,
    .deregister = consul_deregister,
    .get_service = consul_get_service,
    .list_services = consul_list_services,
    .watch = consul_watch,
    .unwatch = consul_unwatch,
    .fini = consul_fini,
    .options = consul_options,
};
