/*
 * The mDNS registry, on the wire what Go Micro v4's registry/mdns_registry.go
 * and util/mdns speak (spec §5): service S is "S.micro.", node I of it the
 * instance "I.S.micro." (PTR, SRV, A/AAAA, TXT), and the TXT carries the
 * zlib-compressed, hex-encoded JSON {"Metadata","Service","Version",
 * "Endpoints"} in 255-character strings.
 *
 * Threads and sockets. Each registry owns one thread and, per address
 * family, two sockets (as Go, which binds 0.0.0.0:5353 and [::]:5353):
 *  - sock4, UDP 0.0.0.0:5353 with SO_REUSEADDR+SO_REUSEPORT (so several
 *    registries and Go processes share the port; the kernel hands every
 *    multicast datagram to each of them), joined to 224.0.0.251 on every
 *    IPv4 interface that is up and multicast-capable or loopback; sock6,
 *    UDP [::]:5353 (IPV6_V6ONLY), joined to ff02::fb on every such
 *    interface that has an IPv6 address. The thread re-scans the
 *    interfaces every SCAN_MS and joins new ones, so interfaces may come
 *    and go. They answer queries (by unicast to the querier, over the
 *    family it asked on) and hear the announcements and goodbyes that
 *    feed Watch;
 *  - qsock/qsock6, ephemeral UDP sockets from which the thread sends the
 *    queries that keep the watch cache fresh (answers come back to them by
 *    unicast);
 *  - a pipe that wakes the thread.
 * IPv6 is used "where available" (option "registry_ipv6": on, the
 * default; off; only): without kernel IPv6 the registry runs on IPv4
 * alone and says so at debug level. Announcements, goodbyes and queries go
 * to both groups. Node addresses are independent of the transport: an
 * "[ip6]:port" node is served with an AAAA record over either family.
 * GetService and ListServices run on the caller's thread with private
 * ephemeral sockets: one multicast query per family, then collect answers
 * for "registry_timeout" (100 ms, as Go). Multicast goes out on each
 * joined interface in turn with IP_MULTICAST_IF/IPV6_MULTICAST_IF set per
 * send (send_mu serialises that on the shared sockets); without it the
 * kernel would follow the default route. Linux gives lo no route for
 * IPv6 multicast, so ff02::fb on lo is joined but only carries traffic
 * when the host adds one ("ip -6 route add local ff02::fb dev lo table
 * local", as the tests do); real interfaces need nothing.
 *
 * DNS messages are parsed and built by dns.c, which rejects truncated
 * packets, bad names, compression loops and wrong counts. Every malformed
 * datagram or undecodable micro TXT is dropped, counted, and logged at
 * most once per DROP_LOG_MS.
 *
 * Watch. The thread turns complete instances in the responses it hears
 * into events. A cache of seen nodes holds each for its record TTL: an
 * unseen node gives create, a changed one update, a goodbye (TTL 0)
 * delete, and a node whose TTL runs out without refresh delete too.
 * Before that happens the thread asks again (at 80% and 90% of the TTL,
 * as RFC 6762 §5.2 does), because Go responders announce only at start.
 * The cache exists only while someone watches.
 *
 * Caps. What peers announce is bounded, since anyone on the link can
 * announce anything: a TXT payload that inflates beyond CACHE_MAX_TXT is
 * refused (at inflate time, so it never takes more memory than that); the
 * cache holds at most CACHE_MAX_NODES nodes (tombstones included),
 * CACHE_MAX_PER_SERVICE of one service and CACHE_MAX_BYTES in all (each
 * node costs its struct, its name and twice its record's JSON: the JSON
 * kept to tell an update from a refresh, and about as much again for the
 * parsed record); a record's TTL is believed up to CACHE_MAX_TTL seconds.
 * A lookup collects at most CACHE_MAX_PER_SERVICE nodes. What is refused
 * or cut is counted and logged at most once per DROP_LOG_MS.
 *
 * Answers. All the questions of one query are answered together, each
 * record once: one message per local instance asked about (PTR, SRV,
 * A/AAAA and TXT as its questions want them), one per wildcard service,
 * one for the DNS-SD enumeration and one for the host's addresses (the
 * last two split to stay under MAX_PACKET). Go's responders, one per node,
 * answer a query with one message in the same way; instances are not
 * packed together because Go's querier completes only the instance a
 * message ends with (§5.6). Questions asking for a unicast reply (QU) are
 * answered apart with the query's ID, as Go does.
 *
 * Locks. The logger is never called with mu, start_mu or send_mu held:
 * lines are queued (logq) and written once the lock is released.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "core/internal.h"
#include "registry/dns.h"
#include "registry/mdns_internal.h"
#include "registry/registry_internal.h"

#define COMP "registry.mdns"

#define MDNS_PORT 5353
#define MDNS_GROUP "224.0.0.251"
#define MDNS_GROUP6 "ff02::fb"
#define MDNS_TTL 120        /* seconds: Go's defaultTTL, and ours for ttl 0 */
#define MDNS_DOMAIN "micro" /* Go's mdnsDomain */
#define WILDCARD "_services"
#define WILDCARD_PORT 9999
#define SCAN_MS 2000        /* interface re-scan */
#define DROP_LOG_MS 10000   /* at most one "dropped" log line per this */
/* Caps on what peers can make us hold (see the top of this file). */
#define CACHE_MAX_TXT (256 * 1024)  /* inflated TXT JSON of one record */
#define CACHE_MAX_NODES 4096        /* cached nodes and tombstones */
#define CACHE_MAX_PER_SERVICE 1024  /* cached nodes of one service */
#define CACHE_MAX_BYTES (16 << 20)  /* cache bytes in all */
#define CACHE_MAX_TTL 3600          /* seconds a record's TTL is believed */
#define MAX_PACKET 9000             /* RFC 6762 §17: our answers' size */
#define MAX_RRS 1024        /* records looked at per message */
#define MAX_ENTRIES 256     /* instances tracked per message */
#define MAX_IFS 64
#define RECV_BUF 65536
#define TOMBSTONE_MS 2000   /* repeated goodbyes give one delete */

/* ------------------------------------------------------------------ */
/* State                                                                */

typedef struct iface {
    unsigned index;
    struct in_addr addr; /* IPv4 only: the interface's address */
    bool seen;           /* in the latest scan */
} iface;

/* A node this process registered. */
typedef struct lnode {
    micro_registry_service rec; /* header (no service metadata), 1 node */
    char *svc_name;             /* "S.micro." */
    char *instance;             /* "I.S.micro." */
    int family;                 /* AF_INET or AF_INET6 */
    uint8_t ip[16];
    uint16_t port;
    char **txt;
    size_t n_txt;
    uint32_t ttl;      /* record TTL, seconds: the registration's */
    int announce_left; /* further unsolicited announcements due */
    int64_t next_announce;
    int64_t gap_ms;
} lnode;

/* A node heard on the network, for Watch. */
typedef struct seen_node {
    char *instance;
    micro_registry_service rec; /* header + the node */
    char *json;                 /* rec as JSON, to tell update from refresh */
    int64_t heard;              /* when last refreshed */
    int64_t ttl_ms;
    int stage;                  /* refresh queries sent since heard */
    bool gone;                  /* a tombstone after a goodbye */
    size_t cost;                /* its share of cache_bytes */
} seen_node;

/* Log lines queued while a lock is held, written after it is released. */
typedef struct logq {
    struct {
        micro_log_level lvl;
        char text[240];
    } line[8];
    size_t n;
    size_t lost; /* beyond line[] */
} logq;

typedef struct mdns_state {
    /* Sockets and the thread start on first use (register, get, list,
     * watch), so a process that only calls by address multicasts nothing
     * and joins no group. */
    pthread_mutex_t start_mu;
    atomic_bool started;
    int start_rc;            /* guarded by start_mu */
    pthread_mutex_t mu;      /* everything below but the sockets */
    char **only_ifs;         /* registry_interfaces; NULL: every one */
    size_t n_only_ifs;
    bool scanned;            /* the first interface scan is done */
    pthread_mutex_t send_mu; /* IP_MULTICAST_IF + sendto on shared sockets */
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    int sock4;  /* -1 when IPv4 is off */
    int qsock;
    int sock6;  /* -1 when IPv6 is off or unavailable */
    int qsock6;
    bool use4;  /* registry_ipv6 != only */
    bool use6;  /* registry_ipv6 != off */
    int wake[2];
    char host[256]; /* "hostname." */
    int64_t timeout_ms;

    iface ifs[MAX_IFS]; /* joined to 224.0.0.251 */
    size_t n_ifs;
    iface ifs6[MAX_IFS]; /* joined to ff02::fb */
    size_t n_ifs6;

    lnode **nodes;
    size_t n_nodes;

    seen_node **seen;
    size_t n_seen;

    micro__watchers watch; /* guarded by mu */

    micro__mdns_limits lim; /* guarded by mu */
    size_t cache_bytes;     /* guarded by mu: the seen nodes' costs */

    atomic_uint_fast64_t n_malformed;
    atomic_uint_fast64_t n_logged;
    atomic_int_fast64_t last_log;

    /* Refused by the caps; logged like malformed packets. */
    atomic_uint_fast64_t refused_txt, refused_nodes, refused_bytes,
        ttl_clamped, n_refused, refused_logged;
    atomic_int_fast64_t refuse_log_ms;
    _Atomic(const char *) refuse_why; /* the latest reason (static) */
} mdns_state;

/* A built message waiting to be sent. */
typedef struct outmsg {
    uint8_t *wire; /* micro__free */
    size_t len;
} outmsg;

typedef struct outlist {
    outmsg *m;
    size_t n;
} outlist;

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static char *
str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
str_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return NULL;
    }
    char *s = micro__malloc((size_t) n + 1);
    if (s == NULL) {
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t) n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static bool
ends_with_ci(const char *s, const char *suffix)
{
    size_t a = strlen(s);
    size_t b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static void
count_malformed(mdns_state *m, const char *why)
{
    uint64_t total = atomic_fetch_add(&m->n_malformed, 1) + 1;
    int64_t now = micro__now_ms();
    int64_t last = atomic_load(&m->last_log);
    if (last != 0 && now - last < DROP_LOG_MS) {
        return;
    }
    if (!atomic_compare_exchange_strong(&m->last_log, &last, now)) {
        return;
    }
    uint64_t before = atomic_exchange(&m->n_logged, total);
    MICRO_LOGF(MICRO_LOG_WARN, COMP,
        "dropped %llu malformed mDNS packets (%llu in all; latest: %s)",
        (unsigned long long) (total - before), (unsigned long long) total,
        why);
}

static void
logq_add(logq *q, micro_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
logq_add(logq *q, micro_log_level lvl, const char *fmt, ...)
{
    if (q == NULL || !micro_log_enabled(lvl)) {
        return;
    }
    if (q->n == MICRO_ARRAY_LEN(q->line)) {
        q->lost++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->line[q->n].text, sizeof(q->line[q->n].text), fmt, ap);
    va_end(ap);
    q->line[q->n].lvl = lvl;
    q->n++;
}

/* No lock held. */
static void
logq_flush(logq *q)
{
    for (size_t i = 0; i < q->n; i++) {
        micro_log(q->line[i].lvl, COMP, "%s", q->line[i].text);
    }
    if (q->lost > 0) {
        MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "(%zu more log lines dropped)",
            q->lost);
    }
    q->n = 0;
    q->lost = 0;
}

/* Count something a cap refused (any thread, any lock); why is static.
 * refuse_log writes the line, rate-limited, and must be called without
 * a lock. */
static void
note_refused(mdns_state *m, atomic_uint_fast64_t *counter, const char *why)
{
    atomic_fetch_add(counter, 1);
    atomic_fetch_add(&m->n_refused, 1);
    atomic_store(&m->refuse_why, why);
}

static void
refuse_log(mdns_state *m)
{
    uint64_t total = atomic_load(&m->n_refused);
    if (total == atomic_load(&m->refused_logged)) {
        return;
    }
    int64_t now = micro__now_ms();
    int64_t last = atomic_load(&m->refuse_log_ms);
    if (last != 0 && now - last < DROP_LOG_MS) {
        return;
    }
    if (!atomic_compare_exchange_strong(&m->refuse_log_ms, &last, now)) {
        return;
    }
    uint64_t before = atomic_exchange(&m->refused_logged, total);
    const char *why = atomic_load(&m->refuse_why);
    MICRO_LOGF(MICRO_LOG_WARN, COMP,
        "cache limits: %llu announced record(s) refused or cut (%llu in "
        "all; latest: %s)",
        (unsigned long long) (total - before), (unsigned long long) total,
        why != NULL ? why : "?");
}

/* ------------------------------------------------------------------ */
/* TXT payload (§5.5)                                                   */

/* zlib's memory, through our allocator (Z_NULL on failure). */
static voidpf
zalloc_hook(voidpf opaque, uInt items, uInt size)
{
    (void) opaque;
    return micro__calloc(items, size);
}

static void
zfree_hook(voidpf opaque, voidpf p)
{
    (void) opaque;
    micro__free(p);
}

void
micro__mdns_txt_free(char **chunks, size_t n)
{
    if (chunks == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        micro__free(chunks[i]);
    }
    micro__free(chunks);
}

int
micro__mdns_txt_encode(
    const char *json, size_t len, char ***chunks, size_t *n)
{
    static const char hexd[] = "0123456789abcdef";
    *chunks = NULL;
    *n = 0;
    uLongf zlen = compressBound((uLong) len);
    uint8_t *z = micro__malloc(zlen);
    if (z == NULL) {
        return MICRO_ENOMEM;
    }
    /* Z_DEFAULT_COMPRESSION (6) with the zlib wrapper: "78 9c", as Go.
     * compress2 with zlib's memory through our allocator. */
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    zs.zalloc = zalloc_hook;
    zs.zfree = zfree_hook;
    int zr = deflateInit(&zs, Z_DEFAULT_COMPRESSION);
    if (zr == Z_OK) {
        zs.next_in = (Bytef *) (uintptr_t) json;
        zs.avail_in = (uInt) len;
        zs.next_out = z;
        zs.avail_out = (uInt) zlen;
        zr = deflate(&zs, Z_FINISH);
        zlen = zs.total_out;
        deflateEnd(&zs);
    }
    if (zr != Z_STREAM_END) {
        micro__free(z);
        return zr == Z_MEM_ERROR ? MICRO_ENOMEM : MICRO_ECODEC;
    }
    size_t hlen = (size_t) zlen * 2;
    size_t count = (hlen + 254) / 255;
    char **c = micro__calloc(count, sizeof(*c));
    if (c == NULL) {
        micro__free(z);
        return MICRO_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        size_t off = i * 255;
        size_t l = hlen - off < 255 ? hlen - off : 255;
        c[i] = micro__malloc(l + 1);
        if (c[i] == NULL) {
            micro__mdns_txt_free(c, i);
            micro__free(z);
            return MICRO_ENOMEM;
        }
        for (size_t j = 0; j < l; j++) {
            size_t k = off + j;
            uint8_t b = z[k / 2];
            c[i][j] = hexd[(k & 1) ? (b & 15) : (b >> 4)];
        }
        c[i][l] = '\0';
    }
    micro__free(z);
    *chunks = c;
    *n = count;
    return 0;
}

/* hex (as Go's hex.DecodeString: either case, even length) then inflate,
 * at most max bytes (MICRO_EMSGSIZE beyond: inflating stops there). */
static int
txt_unpack(
    const uint8_t *hex, size_t n, size_t max, char **json, size_t *jlen)
{
    *json = NULL;
    *jlen = 0;
    if (n == 0 || n % 2 != 0) {
        return MICRO_ECODEC;
    }
    size_t rlen = n / 2;
    uint8_t *raw = micro__malloc(rlen);
    if (raw == NULL) {
        return MICRO_ENOMEM;
    }
    for (size_t i = 0; i < rlen; i++) {
        int hi = micro__hexval(hex[2 * i]);
        int lo = micro__hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            micro__free(raw);
            return MICRO_ECODEC;
        }
        raw[i] = (uint8_t) (hi << 4 | lo);
    }
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    zs.zalloc = zalloc_hook;
    zs.zfree = zfree_hook;
    if (inflateInit(&zs) != Z_OK) {
        micro__free(raw);
        return MICRO_ENOMEM;
    }
    size_t cap = rlen * 4 < 4096 ? 4096 : rlen * 4;
    if (cap > max) {
        cap = max;
    }
    char *out = micro__malloc(cap + 1);
    int rc = out != NULL ? 0 : MICRO_ENOMEM;
    size_t have = 0;
    zs.next_in = raw;
    zs.avail_in = (uInt) rlen;
    while (rc == 0) {
        if (have == cap) {
            if (cap >= max) {
                rc = MICRO_EMSGSIZE; /* a zip bomb, or just too big */
                break;
            }
            cap = cap * 2 > max ? max : cap * 2;
            char *p = micro__realloc(out, cap + 1);
            if (p == NULL) {
                rc = MICRO_ENOMEM;
                break;
            }
            out = p;
        }
        zs.next_out = (Bytef *) out + have;
        zs.avail_out = (uInt) (cap - have);
        int z = inflate(&zs, Z_NO_FLUSH);
        have = cap - zs.avail_out;
        if (z == Z_STREAM_END) {
            break;
        }
        if (z == Z_OK || (z == Z_BUF_ERROR && zs.avail_out == 0)) {
            continue;
        }
        rc = MICRO_ECODEC; /* bad data, or truncated */
    }
    inflateEnd(&zs);
    micro__free(raw);
    if (rc < 0) {
        micro__free(out);
        return rc;
    }
    out[have] = '\0';
    *json = out;
    *jlen = have;
    return 0;
}

int
micro__mdns_txt_decode(
    const char *const *chunks, size_t n, char **json, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += strlen(chunks[i]);
    }
    uint8_t *hex = micro__malloc(total + 1);
    if (hex == NULL) {
        return MICRO_ENOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(chunks[i]);
        memcpy(hex + off, chunks[i], l);
        off += l;
    }
    int rc = txt_unpack(hex, total, CACHE_MAX_TXT, json, len);
    micro__free(hex);
    return rc;
}

/* The TXT JSON into s: name = Service, version, metadata = the node's,
 * endpoints. json.Unmarshal matches keys case-insensitively, and so do
 * cJSON and the registry decoder. */
static int
txt_to_service(const char *json, size_t len, micro_registry_service *s)
{
    memset(s, 0, sizeof(*s));
    int prc = 0;
    cJSON *root = micro__json_parse(json, len, NULL, &prc);
    if (root == NULL || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return root == NULL ? prc : MICRO_ECODEC;
    }
    const cJSON *sv = cJSON_GetObjectItem(root, "Service");
    char *svc = NULL;
    int rc = 0;
    if (sv != NULL && !cJSON_IsNull(sv)) {
        if (!cJSON_IsString(sv) || sv->valuestring == NULL) {
            rc = MICRO_ECODEC;
        } else if ((svc = micro__strdup(sv->valuestring)) == NULL) {
            rc = MICRO_ENOMEM;
        }
    }
    cJSON_Delete(root);
    if (rc == 0) {
        rc = micro_registry_service_from_json(json, len, s);
    }
    if (rc < 0) {
        micro__free(svc);
        return rc;
    }
    micro__free(s->name);
    s->name = svc != NULL ? svc : micro__strdup("");
    for (size_t i = 0; i < s->n_nodes; i++) {
        micro_node_clear(&s->nodes[i]);
    }
    micro__free(s->nodes);
    s->nodes = NULL;
    s->n_nodes = 0;
    if (s->version == NULL) {
        s->version = micro__strdup("");
    }
    if (s->name == NULL || s->version == NULL) {
        micro_registry_service_clear(s);
        return MICRO_ENOMEM;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Local nodes                                                          */

/* "ip:port" or "[ip6]:port" with a literal IP and a port in 1..65535. */
static int
parse_addr(const char *addr, int *family, uint8_t ip[16], uint16_t *port)
{
    if (addr == NULL) {
        return MICRO_EINVAL;
    }
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr) {
        return MICRO_EINVAL;
    }
    char host[INET6_ADDRSTRLEN + 2];
    const char *h = addr;
    size_t hl = (size_t) (colon - addr);
    if (addr[0] == '[') {
        if (hl < 3 || addr[hl - 1] != ']') {
            return MICRO_EINVAL;
        }
        h = addr + 1;
        hl -= 2;
    } else if (memchr(addr, ':', hl) != NULL) {
        return MICRO_EINVAL; /* Go: "too many colons" */
    }
    if (hl == 0 || hl >= sizeof(host)) {
        return MICRO_EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5) {
        return MICRO_EINVAL;
    }
    long v = 0;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return MICRO_EINVAL;
        }
        v = v * 10 + (*p - '0');
    }
    if (v <= 0 || v > 65535) {
        return MICRO_EINVAL; /* Go: "missing service port" for 0 */
    }
    memset(ip, 0, 16);
    if (inet_pton(AF_INET, host, ip) == 1) {
        *family = AF_INET;
    } else if (inet_pton(AF_INET6, host, ip) == 1) {
        /* Go puts an IPv4-mapped address into an A record. */
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0xff, 0xff };
        if (memcmp(ip, mapped, 12) == 0) {
            memmove(ip, ip + 12, 4);
            memset(ip + 4, 0, 12);
            *family = AF_INET;
        } else {
            *family = AF_INET6;
        }
    } else {
        return MICRO_EINVAL;
    }
    *port = (uint16_t) v;
    return 0;
}

static bool
dname_ok(const char *name)
{
    uint8_t w[MICRO_DNS_NAME_MAX];
    return micro__dns_name_wire(name, w) > 0;
}

static void
lnode_free(lnode *n)
{
    if (n == NULL) {
        return;
    }
    micro_registry_service_clear(&n->rec);
    micro__free(n->svc_name);
    micro__free(n->instance);
    micro__mdns_txt_free(n->txt, n->n_txt);
    micro__free(n);
}

/* Build the responder state for node i of svc. */
static int
lnode_new(const micro_registry_service *svc, size_t i, lnode **out)
{
    *out = NULL;
    const micro_node *node = &svc->nodes[i];
    lnode *n = micro__calloc(1, sizeof(*n));
    if (n == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = parse_addr(node->address, &n->family, n->ip, &n->port);
    if (rc < 0) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP,
            "%s: node %s: address \"%s\" is not ip:port", svc->name,
            node->id, node->address ? node->address : "");
        micro__free(n);
        return rc;
    }
    n->svc_name = str_printf("%s.%s.", svc->name, MDNS_DOMAIN);
    n->instance = str_printf("%s.%s.%s.", node->id, svc->name, MDNS_DOMAIN);
    if (n->svc_name == NULL || n->instance == NULL) {
        lnode_free(n);
        return MICRO_ENOMEM;
    }
    if (!dname_ok(n->svc_name) || !dname_ok(n->instance)) {
        MICRO_LOGF(MICRO_LOG_WARN, COMP,
            "%s is not a valid DNS name (labels of 1-63 bytes, 255 in all)",
            n->instance);
        lnode_free(n);
        return MICRO_EINVAL;
    }
    rc = micro__registry_service_copy_header(&n->rec, svc);
    if (rc == 0) {
        /* Go's mDNS does not carry service metadata. */
        micro_metadata_clear(&n->rec.metadata);
        n->rec.nodes = micro__calloc(1, sizeof(micro_node));
        rc = n->rec.nodes != NULL ? micro_node_copy(&n->rec.nodes[0], node)
                                  : MICRO_ENOMEM;
        if (rc == 0) {
            n->rec.n_nodes = 1;
        }
    }
    if (rc == 0 && n->rec.version == NULL) {
        n->rec.version = micro__strdup("");
        rc = n->rec.version != NULL ? 0 : MICRO_ENOMEM;
    }
    char *json = NULL;
    if (rc == 0) {
        rc = micro__registry_mdns_txt_json(svc->name, n->rec.version,
            &node->metadata, svc->endpoints, svc->n_endpoints, &json);
    }
    if (rc == 0) {
        rc = micro__mdns_txt_encode(json, strlen(json), &n->txt, &n->n_txt);
    }
    micro__free(json);
    if (rc < 0) {
        lnode_free(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Building messages                                                    */

/* Records go in the answer section; a failure sticks in the builder and
 * out_add drops the message. */
static void
add_ptr(micro_dns_builder *b, const char *owner, const char *target,
    uint32_t ttl)
{
    (void) micro__dns_add_ptr(b, MICRO_DNS_ANSWER, owner, ttl, target);
}

static void
add_srv(micro_dns_builder *b, const char *owner, uint16_t port,
    const char *target, uint32_t ttl)
{
    (void) micro__dns_add_srv(
        b, MICRO_DNS_ANSWER, owner, ttl, 10, 1, port, target);
}

static void
add_addr(micro_dns_builder *b, const char *owner, int family,
    const uint8_t *ip, uint32_t ttl)
{
    (void) micro__dns_add_addr(
        b, MICRO_DNS_ANSWER, owner, ttl, ip, family == AF_INET ? 4 : 16);
}

/* A TXT of n strings; n 0 gives RDLENGTH 0, as Go's wildcard sends. */
static void
add_txt(micro_dns_builder *b, const char *owner, char *const *s, size_t n,
    uint32_t ttl)
{
    (void) micro__dns_add_txt(
        b, MICRO_DNS_ANSWER, owner, ttl, (const char *const *) s, n);
}

/* A response with the query's questions copied (Go does so, and its
 * querier drops answers without them). */
static void
pkt_response(micro_dns_builder *b, const micro_dns_msg *query, uint16_t id)
{
    micro__dns_builder_init(b, id, MICRO_DNS_QR | MICRO_DNS_AA);
    if (query == NULL) {
        return;
    }
    size_t nq = 0;
    const micro_dns_rr *qs = micro__dns_section(query, MICRO_DNS_QUESTION, &nq);
    for (size_t i = 0; i < nq; i++) {
        char name[MICRO_DNS_NAME_TEXT_MAX];
        if (micro__dns_name_text(query, qs[i].name, name, sizeof(name)) < 0) {
            b->err = MICRO_EPROTO; /* cannot be: parsing checked it */
            return;
        }
        (void) micro__dns_add_question(b, name, qs[i].type, qs[i].rclass);
    }
}

/* Finish b and queue the message; a failed one is dropped. */
static void
out_add(outlist *o, micro_dns_builder *b)
{
    uint8_t *wire = NULL;
    size_t len = 0;
    if (micro__dns_builder_finish(b, &wire, &len) < 0) {
        return;
    }
    outmsg *m = micro__realloc(o->m, (o->n + 1) * sizeof(*m));
    if (m == NULL) {
        micro__free(wire);
        return;
    }
    o->m = m;
    o->m[o->n].wire = wire;
    o->m[o->n].len = len;
    o->n++;
}

static void
out_clear(outlist *o)
{
    for (size_t i = 0; i < o->n; i++) {
        micro__free(o->m[i].wire);
    }
    micro__free(o->m);
    o->m = NULL;
    o->n = 0;
}

/* One instance per message, PTR, SRV, A/AAAA, TXT: Go's querier checks
 * only the entry touched by a message's last record (§5.6). */
static void
build_instance(outlist *o, const lnode *n, const char *host,
    const micro_dns_msg *query, uint16_t id, uint32_t ttl, bool ptr,
    bool srv, bool addr, bool txt)
{
    micro_dns_builder b;
    pkt_response(&b, query, id);
    if (ptr) {
        add_ptr(&b, n->svc_name, n->instance, ttl);
    }
    if (srv) {
        add_srv(&b, n->instance, n->port, host, ttl);
    }
    if (addr) {
        add_addr(&b, host, n->family, n->ip, ttl);
    }
    if (txt) {
        add_txt(&b, n->instance, n->txt, n->n_txt, ttl);
    }
    out_add(o, &b);
}

/* Go's wildcard responder for S: what answers "_services.micro." PTR. */
static void
build_wildcard(outlist *o, const char *svc, const char *host,
    const micro_dns_msg *query, uint16_t id, uint32_t ttl)
{
    char *inst = str_printf("%s.%s.%s.", svc, WILDCARD, MDNS_DOMAIN);
    if (inst == NULL) {
        return;
    }
    static const uint8_t any[16] = { 0 };
    micro_dns_builder b;
    pkt_response(&b, query, id);
    add_ptr(&b, WILDCARD "." MDNS_DOMAIN ".", inst, ttl);
    add_srv(&b, inst, WILDCARD_PORT, host, ttl);
    add_addr(&b, host, AF_INET, any, ttl);
    add_txt(&b, inst, NULL, 0, ttl);
    micro__free(inst);
    out_add(o, &b);
}

int
micro__mdns_build_response(const micro_registry_service *svc, size_t i,
    const char *host, uint32_t ttl, uint8_t **wire, size_t *len)
{
    *wire = NULL;
    *len = 0;
    if (svc == NULL || svc->name == NULL || i >= svc->n_nodes ||
        host == NULL || !dname_ok(host)) {
        return MICRO_EINVAL;
    }
    lnode *n = NULL;
    int rc = lnode_new(svc, i, &n);
    if (rc < 0) {
        return rc;
    }
    micro_dns_builder b;
    pkt_response(&b, NULL, 0);
    add_ptr(&b, n->svc_name, n->instance, ttl);
    add_srv(&b, n->instance, n->port, host, ttl);
    add_addr(&b, host, n->family, n->ip, ttl);
    add_txt(&b, n->instance, n->txt, n->n_txt, ttl);
    lnode_free(n);
    return micro__dns_builder_finish(&b, wire, len);
}

/* ------------------------------------------------------------------ */
/* Sending                                                              */

static struct sockaddr_in
group_addr(void)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(MDNS_PORT);
    sa.sin_addr.s_addr = htonl(0xe00000fbu); /* 224.0.0.251 */
    return sa;
}

static struct sockaddr_in6
group6_addr(unsigned ifindex)
{
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(MDNS_PORT);
    sa.sin6_addr.s6_addr[0] = 0xff; /* ff02::fb */
    sa.sin6_addr.s6_addr[1] = 0x02;
    sa.sin6_addr.s6_addr[15] = 0xfb;
    sa.sin6_scope_id = ifindex;
    return sa;
}

static void
ifs_snapshot(mdns_state *m, iface *v4, size_t *n4, iface *v6, size_t *n6)
{
    pthread_mutex_lock(&m->mu);
    *n4 = m->n_ifs;
    memcpy(v4, m->ifs, *n4 * sizeof(*v4));
    *n6 = m->n_ifs6;
    memcpy(v6, m->ifs6, *n6 * sizeof(*v6));
    pthread_mutex_unlock(&m->mu);
}

/* Multicast buf on every joined interface: to 224.0.0.251 from fd4 and to
 * ff02::fb from fd6 (either may be -1). */
static void
send_multicast(
    mdns_state *m, int fd4, int fd6, const uint8_t *buf, size_t len)
{
    iface ifs[MAX_IFS];
    iface ifs6[MAX_IFS];
    size_t n = 0;
    size_t n6 = 0;
    ifs_snapshot(m, ifs, &n, ifs6, &n6);
    if (fd4 < 0) {
        n = 0;
    }
    if (fd6 < 0) {
        n6 = 0;
    }
    if (n == 0 && n6 == 0) {
        return;
    }
    struct sockaddr_in group = group_addr();
    int err4 = 0, err6 = 0; /* logged once send_mu is released */
    unsigned if4 = 0, if6 = 0;
    pthread_mutex_lock(&m->send_mu);
    for (size_t i = 0; i < n; i++) {
        struct ip_mreqn mr;
        memset(&mr, 0, sizeof(mr));
        mr.imr_address = ifs[i].addr;
        mr.imr_ifindex = (int) ifs[i].index;
        if (setsockopt(fd4, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr)) !=
            0) {
            continue;
        }
        if (sendto(fd4, buf, len, 0, (const struct sockaddr *) &group,
                sizeof(group)) < 0) {
            err4 = errno;
            if4 = ifs[i].index;
        }
    }
    for (size_t i = 0; i < n6; i++) {
        int idx = (int) ifs6[i].index;
        struct sockaddr_in6 group6 = group6_addr(ifs6[i].index);
        if (setsockopt(fd6, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx,
                sizeof(idx)) != 0) {
            continue;
        }
        if (sendto(fd6, buf, len, 0, (const struct sockaddr *) &group6,
                sizeof(group6)) < 0) {
            /* lo without an ff02::fb route: ENETUNREACH. */
            err6 = errno;
            if6 = ifs6[i].index;
        }
    }
    pthread_mutex_unlock(&m->send_mu);
    if (err4 != 0) {
        MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "multicast on if %u: %s", if4,
            strerror(err4));
    }
    if (err6 != 0) {
        MICRO_LOGF(MICRO_LOG_DEBUG, COMP, "multicast %s on if %u: %s",
            MDNS_GROUP6, if6, strerror(err6));
    }
}

static void
send_all_multicast(mdns_state *m, int fd4, int fd6, outlist *o)
{
    for (size_t i = 0; i < o->n; i++) {
        send_multicast(m, fd4, fd6, o->m[i].wire, o->m[i].len);
    }
}

static void
wake_thread(mdns_state *m)
{
    if (m->wake[1] >= 0) {
        char c = 1;
        ssize_t w = write(m->wake[1], &c, 1);
        (void) w; /* a full pipe already wakes it */
    }
}

/* ------------------------------------------------------------------ */
/* Interfaces                                                           */

static bool
if_allowed(const mdns_state *m, const char *name)
{
    if (m->only_ifs == NULL) {
        return true;
    }
    for (size_t i = 0; i < m->n_only_ifs; i++) {
        if (strcmp(m->only_ifs[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* Join the group of family fam (224.0.0.251 on fd m->sock4, ff02::fb on
 * m->sock6) on every usable interface with an address of that family (up,
 * with carrier, multicast or loopback, allowed by registry_interfaces),
 * and leave the ones that went. Mutex held. Returns how many were joined. */
static size_t
scan_family(mdns_state *m, struct ifaddrs *all, int fam, logq *lq)
{
    bool v6 = fam == AF_INET6;
    int fd = v6 ? m->sock6 : m->sock4;
    iface *ifs = v6 ? m->ifs6 : m->ifs;
    size_t *n_ifs = v6 ? &m->n_ifs6 : &m->n_ifs;
    const char *group = v6 ? MDNS_GROUP6 : MDNS_GROUP;
    size_t joined = 0;
    if (fd < 0) {
        return 0;
    }
    for (size_t i = 0; i < *n_ifs; i++) {
        ifs[i].seen = false;
    }
    for (struct ifaddrs *a = all; a != NULL; a = a->ifa_next) {
        if (a->ifa_addr == NULL || a->ifa_addr->sa_family != fam ||
            !(a->ifa_flags & IFF_UP) || !(a->ifa_flags & IFF_RUNNING) ||
            !(a->ifa_flags & (IFF_MULTICAST | IFF_LOOPBACK)) ||
            !if_allowed(m, a->ifa_name)) {
            continue;
        }
        unsigned idx = if_nametoindex(a->ifa_name);
        if (idx == 0) {
            continue;
        }
        size_t j = 0;
        while (j < *n_ifs && ifs[j].index != idx) {
            j++;
        }
        if (j < *n_ifs) {
            ifs[j].seen = true;
            continue;
        }
        if (*n_ifs == MAX_IFS) {
            continue;
        }
        struct in_addr addr = { 0 };
        int rc;
        if (v6) {
            struct ipv6_mreq mr;
            memset(&mr, 0, sizeof(mr));
            mr.ipv6mr_multiaddr = group6_addr(0).sin6_addr;
            mr.ipv6mr_interface = idx;
            rc = setsockopt(
                fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof(mr));
        } else {
            addr = ((struct sockaddr_in *) a->ifa_addr)->sin_addr;
            struct ip_mreqn mr;
            memset(&mr, 0, sizeof(mr));
            mr.imr_multiaddr = group_addr().sin_addr;
            mr.imr_address = addr;
            mr.imr_ifindex = (int) idx;
            rc = setsockopt(
                fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr));
        }
        if (rc != 0 && errno != EADDRINUSE) {
            /* IPv6 is "where available": an interface without it is
             * not worth more than a debug line. */
            logq_add(lq, v6 ? MICRO_LOG_DEBUG : MICRO_LOG_INFO,
                "join %s on %s: %s", group, a->ifa_name, strerror(errno));
            continue;
        }
        logq_add(lq, m->scanned ? MICRO_LOG_INFO : MICRO_LOG_DEBUG,
            "joined %s on %s (index %u)", group, a->ifa_name, idx);
        joined++;
        ifs[*n_ifs].index = idx;
        ifs[*n_ifs].addr = addr;
        ifs[*n_ifs].seen = true;
        (*n_ifs)++;
    }
    for (size_t i = 0; i < *n_ifs;) {
        if (ifs[i].seen) {
            i++;
            continue;
        }
        if (v6) {
            struct ipv6_mreq mr;
            memset(&mr, 0, sizeof(mr));
            mr.ipv6mr_multiaddr = group6_addr(0).sin6_addr;
            mr.ipv6mr_interface = ifs[i].index;
            (void) setsockopt(
                fd, IPPROTO_IPV6, IPV6_LEAVE_GROUP, &mr, sizeof(mr));
        } else {
            struct ip_mreqn mr;
            memset(&mr, 0, sizeof(mr));
            mr.imr_multiaddr = group_addr().sin_addr;
            mr.imr_ifindex = (int) ifs[i].index;
            (void) setsockopt(
                fd, IPPROTO_IP, IP_DROP_MEMBERSHIP, &mr, sizeof(mr));
        }
        logq_add(lq, MICRO_LOG_INFO, "interface %u is down or gone (%s)",
            ifs[i].index, group);
        ifs[i] = ifs[--*n_ifs];
    }
    return joined;
}

/* Join the groups on every usable interface, leave the ones that went.
 * An interface that appears (or gets its carrier back) after the first
 * scan makes our nodes announce themselves again, so peers behind it
 * learn of them without waiting for a re-registration. Log lines go to
 * lq, for the caller to write once no lock is held. */
static void
scan_ifaces(mdns_state *m, logq *lq)
{
    struct ifaddrs *all = NULL;
    if (getifaddrs(&all) != 0) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    size_t joined = scan_family(m, all, AF_INET, lq);
    joined += scan_family(m, all, AF_INET6, lq);
    if (joined > 0 && m->scanned) {
        int64_t now = micro__now_ms();
        for (size_t i = 0; i < m->n_nodes; i++) {
            lnode *n = m->nodes[i];
            if (n->announce_left < 2) {
                n->announce_left = 2; /* now and a second later */
                n->next_announce = now;
                n->gap_ms = 1000;
            }
        }
    }
    m->scanned = true;
    pthread_mutex_unlock(&m->mu);
    freeifaddrs(all);
}

/* ------------------------------------------------------------------ */
/* Parsing responses: Go's messageToEntry (§5.6)                        */

typedef struct entry {
    char *name; /* instance */
    char *host; /* SRV target */
    uint16_t port;
    bool has_txt;
    uint8_t *txt; /* the TXT strings concatenated */
    size_t txt_len;
    bool has4, has6;
    uint8_t a4[4];
    uint8_t a6[16];
    uint32_t ttl;
} entry;

typedef struct hostaddr {
    char *name;
    bool v6;
    uint8_t a[16];
    uint32_t ttl;
} hostaddr;

typedef struct parsed {
    entry *e;
    size_t n_e;
    hostaddr *h;
    size_t n_h;
    bool oom;
} parsed;

static void
parsed_clear(parsed *p)
{
    for (size_t i = 0; i < p->n_e; i++) {
        micro__free(p->e[i].name);
        micro__free(p->e[i].host);
        micro__free(p->e[i].txt);
    }
    for (size_t i = 0; i < p->n_h; i++) {
        micro__free(p->h[i].name);
    }
    micro__free(p->e);
    micro__free(p->h);
    memset(p, 0, sizeof(*p));
}

/* The name at off of msg in presentation form ("a.b."), into a
 * MICRO_DNS_NAME_TEXT_MAX buffer; false when not a name. */
static bool
dname_text(const micro_dns_msg *msg, uint16_t off, char *buf)
{
    return micro__dns_name_text(msg, off, buf, MICRO_DNS_NAME_TEXT_MAX) >= 0;
}

static entry *
ensure(parsed *p, const char *name)
{
    for (size_t i = 0; i < p->n_e; i++) {
        if (strcasecmp(p->e[i].name, name) == 0) {
            return &p->e[i];
        }
    }
    if (p->n_e == MAX_ENTRIES) {
        return NULL;
    }
    entry *e = micro__realloc(p->e, (p->n_e + 1) * sizeof(*e));
    if (e == NULL) {
        p->oom = true;
        return NULL;
    }
    p->e = e;
    e = &p->e[p->n_e];
    memset(e, 0, sizeof(*e));
    e->ttl = UINT32_MAX;
    e->name = micro__strdup(name);
    if (e->name == NULL) {
        p->oom = true;
        return NULL;
    }
    p->n_e++;
    return e;
}

static void
touch(entry *e, uint32_t ttl)
{
    if (ttl < e->ttl) {
        e->ttl = ttl;
    }
}

static void
take_rr(parsed *p, const micro_dns_msg *msg, const micro_dns_rr *rr)
{
    char owner[MICRO_DNS_NAME_TEXT_MAX];
    char target[MICRO_DNS_NAME_TEXT_MAX];
    if (!dname_text(msg, rr->name, owner)) {
        return;
    }
    uint32_t ttl = rr->ttl;
    entry *e;
    switch (rr->type) {
    case MICRO_DNS_PTR:
        if (dname_text(msg, rr->target, target) &&
            (e = ensure(p, target)) != NULL) {
            touch(e, ttl);
        }
        break;
    case MICRO_DNS_SRV:
        if (!dname_text(msg, rr->target, target) ||
            (e = ensure(p, owner)) == NULL) {
            break;
        }
        micro__free(e->host);
        e->host = micro__strdup(target);
        if (e->host == NULL) {
            p->oom = true;
        }
        e->port = rr->port;
        touch(e, ttl);
        break;
    case MICRO_DNS_TXT: {
        if ((e = ensure(p, owner)) == NULL) {
            break;
        }
        /* The strings concatenated: fewer octets than the RDATA. */
        uint8_t *t = micro__malloc((size_t) rr->rdlen + 1);
        if (t == NULL) {
            p->oom = true;
            break;
        }
        size_t off = 0;
        size_t pos = 0;
        const uint8_t *str;
        size_t l;
        while (micro__dns_txt_next(msg, rr, &pos, &str, &l)) {
            memcpy(t + off, str, l);
            off += l;
        }
        micro__free(e->txt);
        e->txt = t;
        e->txt_len = off;
        e->has_txt = true;
        touch(e, ttl);
        break;
    }
    case MICRO_DNS_A:
    case MICRO_DNS_AAAA: {
        /* Parsing checked the length: 4 or 16. */
        bool v6 = rr->type == MICRO_DNS_AAAA;
        hostaddr *h = micro__realloc(p->h, (p->n_h + 1) * sizeof(*h));
        if (h == NULL) {
            p->oom = true;
            break;
        }
        p->h = h;
        h = &p->h[p->n_h];
        memset(h, 0, sizeof(*h));
        h->name = micro__strdup(owner);
        if (h->name == NULL) {
            p->oom = true;
            break;
        }
        h->v6 = v6;
        memcpy(h->a, msg->wire + rr->rdata, v6 ? 16 : 4);
        h->ttl = ttl;
        p->n_h++;
        break;
    }
    default:
        break;
    }
}

/* Answer then Additional, as Go; then give each instance the addresses
 * of its SRV target (or of its own name). Go does this through aliases
 * that only work when a message holds one instance; this is a superset. */
static void
parse_entries(const micro_dns_msg *msg, parsed *p)
{
    memset(p, 0, sizeof(*p));
    static const micro_dns_section secs[2] = { MICRO_DNS_ANSWER,
        MICRO_DNS_ADDITIONAL };
    size_t seen = 0;
    for (size_t s = 0; s < 2; s++) {
        size_t n = 0;
        const micro_dns_rr *rrs = micro__dns_section(msg, secs[s], &n);
        for (size_t i = 0; i < n; i++) {
            if (seen++ == MAX_RRS) {
                break;
            }
            take_rr(p, msg, &rrs[i]);
        }
    }
    for (size_t i = 0; i < p->n_e; i++) {
        entry *e = &p->e[i];
        for (size_t j = 0; j < p->n_h; j++) {
            hostaddr *h = &p->h[j];
            if (strcasecmp(h->name, e->name) != 0 &&
                (e->host == NULL || strcasecmp(h->name, e->host) != 0)) {
                continue;
            }
            if (h->v6) {
                memcpy(e->a6, h->a, 16);
                e->has6 = true;
            } else {
                memcpy(e->a4, h->a, 4);
                e->has4 = true;
            }
            touch(e, h->ttl);
        }
    }
}

static bool
entry_complete(const entry *e)
{
    return (e->has4 || e->has6) && e->port != 0 && e->has_txt;
}

/* The node of a complete entry whose TXT decoded to t: id = instance
 * minus suffix, address = IPv4:port (preferred) or [IPv6]:port. */
static int
entry_node(const entry *e, const char *suffix, const micro_registry_service *t,
    micro_node *n)
{
    memset(n, 0, sizeof(*n));
    size_t nl = strlen(e->name);
    size_t sl = strlen(suffix);
    n->id = ends_with_ci(e->name, suffix) && nl > sl
                ? micro__strndup(e->name, nl - sl)
                : micro__strdup(e->name);
    char ip[INET6_ADDRSTRLEN];
    if (e->has4) {
        inet_ntop(AF_INET, e->a4, ip, sizeof(ip));
        n->address = str_printf("%s:%u", ip, (unsigned) e->port);
    } else {
        inet_ntop(AF_INET6, e->a6, ip, sizeof(ip));
        n->address = str_printf("[%s]:%u", ip, (unsigned) e->port);
    }
    int rc = n->id != NULL && n->address != NULL ? 0 : MICRO_ENOMEM;
    if (rc == 0) {
        rc = micro__metadata_copy(&n->metadata, &t->metadata);
    }
    if (rc < 0) {
        micro_node_clear(n);
    }
    return rc;
}

static size_t
limit_txt(mdns_state *m)
{
    pthread_mutex_lock(&m->mu);
    size_t max = m->lim.max_txt;
    pthread_mutex_unlock(&m->mu);
    return max;
}

/* Decode a complete entry's TXT (no lock held); malformed payloads are
 * counted, and so are payloads that inflate beyond the cap. */
static int
entry_txt(mdns_state *m, const entry *e, micro_registry_service *t)
{
    char *json = NULL;
    size_t len = 0;
    int rc = txt_unpack(e->txt, e->txt_len, limit_txt(m), &json, &len);
    if (rc == 0) {
        rc = txt_to_service(json, len, t);
    }
    micro__free(json);
    if (rc == MICRO_ECODEC) {
        count_malformed(m, "undecodable TXT payload");
    } else if (rc == MICRO_EMSGSIZE) {
        note_refused(m, &m->refused_txt,
            "a TXT payload inflates beyond the limit");
        refuse_log(m);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Watch: events and the seen cache                                     */

/* Queue an event carrying a copy of svc; a NULL l learns silently
 * (seen_apply from a lookup). */
static void
ev_add(micro__evlist *l, micro_registry_action action,
    const micro_registry_service *svc)
{
    micro__evlist_push(l, COMP, action, svc, svc->nodes, svc->n_nodes);
}

/* Call every watcher for every event; the mutex must not be held. */
static void
dispatch(mdns_state *m, micro__evlist *l)
{
    (void) micro__watchers_dispatch(&m->watch, l);
}

static void
seen_free(seen_node *s)
{
    micro__free(s->instance);
    micro_registry_service_clear(&s->rec);
    micro__free(s->json);
    micro__free(s);
}

static void
seen_remove(mdns_state *m, size_t i)
{
    m->cache_bytes -= m->seen[i]->cost;
    seen_free(m->seen[i]);
    m->seen[i] = m->seen[--m->n_seen];
}

/* What a cached node costs against max_bytes: the struct, its name and
 * its record twice (the JSON, and about as much for the parsed copy). */
static size_t
seen_cost(const char *instance, const char *json)
{
    return sizeof(seen_node) + strlen(instance) + 1 +
        (json != NULL ? 2 * (strlen(json) + 1) : 0);
}

/* Live cached nodes of service name (mutex held). */
static size_t
seen_count_service(const mdns_state *m, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_seen; i++) {
        const seen_node *s = m->seen[i];
        n += !s->gone && s->rec.name != NULL && strcmp(s->rec.name, name) == 0;
    }
    return n;
}

/* A new entry for instance at the end of the cache (mutex held), or NULL
 * when out of memory. The caller checked the caps. */
static seen_node *
seen_add(mdns_state *m, const char *instance)
{
    seen_node *s = micro__calloc(1, sizeof(*s));
    seen_node **arr = s != NULL
        ? micro__realloc(m->seen, (m->n_seen + 1) * sizeof(*arr))
        : NULL;
    if (arr != NULL) {
        m->seen = arr;
    }
    if (s == NULL || arr == NULL ||
        (s->instance = micro__strdup(instance)) == NULL) {
        if (s != NULL) {
            seen_free(s);
        }
        return NULL;
    }
    s->cost = seen_cost(instance, NULL);
    m->cache_bytes += s->cost;
    m->seen[m->n_seen++] = s;
    return s;
}

/* Give s the record rec (taken) and its JSON json (taken), keeping
 * cache_bytes right. */
static void
seen_take(mdns_state *m, seen_node *s, micro_registry_service *rec,
    char *json, size_t cost)
{
    m->cache_bytes = m->cache_bytes - s->cost + cost;
    s->cost = cost;
    micro__free(s->json);
    s->json = json;
    micro_registry_service_clear(&s->rec);
    s->rec = *rec;
    memset(rec, 0, sizeof(*rec));
}

static seen_node *
seen_find(mdns_state *m, const char *instance)
{
    for (size_t i = 0; i < m->n_seen; i++) {
        if (strcasecmp(m->seen[i]->instance, instance) == 0) {
            return m->seen[i];
        }
    }
    return NULL;
}

/* One complete instance heard (mutex held). rec holds one node. ev NULL:
 * learn or refresh the node without reporting anything. The caps apply:
 * a node that would exceed them is not cached (and not reported), counted
 * and, once the lock is released, logged (refuse_log). */
static void
seen_apply(mdns_state *m, const char *instance, micro_registry_service *rec,
    uint32_t ttl, int64_t now, micro__evlist *ev)
{
    seen_node *s = seen_find(m, instance);
    if (ttl > m->lim.max_ttl_s) {
        ttl = m->lim.max_ttl_s;
        note_refused(m, &m->ttl_clamped, "a record TTL beyond the limit");
    }
    if (ttl == 0) {
        /* Go's watcher reports delete for every goodbye it hears; we do
         * once (a tombstone absorbs repeats), also for nodes learned
         * before this watch started. */
        if (s != NULL && s->gone) {
            return;
        }
        ev_add(ev, MICRO_REGISTRY_DELETE, rec);
        if (s == NULL) {
            if (m->n_seen >= m->lim.max_nodes) {
                /* Reported, not remembered: a repeat reports again. */
                note_refused(m, &m->refused_nodes,
                    "the cache holds its most nodes");
                return;
            }
            s = seen_add(m, instance);
            if (s == NULL) {
                return;
            }
        }
        micro_registry_service_clear(&s->rec);
        micro__free(s->json);
        s->json = NULL;
        m->cache_bytes = m->cache_bytes - s->cost + seen_cost(instance, NULL);
        s->cost = seen_cost(instance, NULL);
        s->gone = true;
        s->heard = now;
        s->ttl_ms = TOMBSTONE_MS;
        return;
    }
    char *json = NULL;
    if (micro_registry_service_to_json(rec, &json) < 0) {
        return;
    }
    size_t cost = seen_cost(instance, json);
    if (s != NULL && !s->gone) {
        s->heard = now;
        s->ttl_ms = (int64_t) ttl * 1000;
        s->stage = 0;
        if (strcmp(s->json, json) == 0) {
            micro__free(json);
            return;
        }
        if (m->cache_bytes - s->cost + cost > m->lim.max_bytes) {
            /* Alive, but the new record does not fit: keep the old. */
            note_refused(m, &m->refused_bytes,
                "an update beyond the cache's bytes");
            micro__free(json);
            return;
        }
        ev_add(ev, MICRO_REGISTRY_UPDATE, rec);
        seen_take(m, s, rec, json, cost);
        return;
    }
    /* New, or back after a goodbye. */
    if (s == NULL && m->n_seen >= m->lim.max_nodes) {
        note_refused(m, &m->refused_nodes, "the cache holds its most nodes");
        micro__free(json);
        return;
    }
    if (seen_count_service(m, rec->name) >= m->lim.max_per_service) {
        note_refused(m, &m->refused_nodes,
            "the cache holds its most nodes of one service");
        micro__free(json);
        return;
    }
    if (m->cache_bytes - (s != NULL ? s->cost : 0) + cost >
        m->lim.max_bytes) {
        note_refused(m, &m->refused_bytes, "the cache holds its most bytes");
        micro__free(json);
        return;
    }
    if (s == NULL && (s = seen_add(m, instance)) == NULL) {
        micro__free(json);
        return;
    }
    ev_add(ev, MICRO_REGISTRY_CREATE, rec);
    s->gone = false;
    s->heard = now;
    s->ttl_ms = (int64_t) ttl * 1000;
    s->stage = 0;
    seen_take(m, s, rec, json, cost);
}

/* A response heard by the thread: Go's mdnsWatcher.Next (§5.8). */
static void
on_response(mdns_state *m, const micro_dns_msg *pkt)
{
    pthread_mutex_lock(&m->mu);
    bool watching = m->watch.n > 0;
    pthread_mutex_unlock(&m->mu);
    if (!watching) {
        return;
    }
    parsed p;
    parse_entries(pkt, &p);
    micro__evlist ev = { 0 };
    int64_t now = micro__now_ms();
    for (size_t i = 0; i < p.n_e; i++) {
        const entry *e = &p.e[i];
        /* Only micro instances; skip the wildcard's (empty TXT). */
        if (!entry_complete(e) || !ends_with_ci(e->name, "." MDNS_DOMAIN ".") ||
            ends_with_ci(e->name, "." WILDCARD "." MDNS_DOMAIN ".")) {
            continue;
        }
        micro_registry_service t;
        if (entry_txt(m, e, &t) < 0) {
            continue;
        }
        char *suffix = str_printf(".%s.%s.", t.name, MDNS_DOMAIN);
        micro_node node;
        if (t.name[0] == '\0' || t.version[0] == '\0' || suffix == NULL ||
            !ends_with_ci(e->name, suffix) ||
            entry_node(e, suffix, &t, &node) < 0) {
            micro__free(suffix);
            micro_registry_service_clear(&t);
            continue;
        }
        micro__free(suffix);
        micro_metadata_clear(&t.metadata);
        t.nodes = micro__calloc(1, sizeof(micro_node));
        if (t.nodes == NULL) {
            micro_node_clear(&node);
            micro_registry_service_clear(&t);
            continue;
        }
        t.nodes[0] = node;
        t.n_nodes = 1;
        pthread_mutex_lock(&m->mu);
        if (m->watch.n > 0) {
            seen_apply(m, e->name, &t, e->ttl, now, &ev);
        }
        pthread_mutex_unlock(&m->mu);
        micro_registry_service_clear(&t);
    }
    parsed_clear(&p);
    dispatch(m, &ev);
    refuse_log(m);
}

/* ------------------------------------------------------------------ */
/* Answering queries (§5.3, §5.4)                                       */

static bool
qtype_is(uint16_t t, uint16_t want)
{
    return t == want || t == MICRO_DNS_ANY;
}

/* Record bits a query wants of one local node. */
enum { WANT_PTR = 1, WANT_SRV = 2, WANT_ADDR = 4, WANT_TXT = 8 };

/* What the questions of one class (QU or not) of a query ask of us. */
typedef struct want {
    uint8_t *node;     /* per m->nodes[i]: WANT_* bits */
    bool any;          /* anything at all */
    bool wildcard;     /* _services.micro. PTR */
    bool enumerate;    /* _services._dns-sd._udp.micro. PTR */
    bool host4, host6; /* the host name's A, AAAA */
} want;

/* Note what the question name/t asks of us in w (mutex held). */
static void
want_question(mdns_state *m, const char *name, uint16_t t, want *w)
{
    if (strcasecmp(name, WILDCARD "." MDNS_DOMAIN ".") == 0) {
        if (qtype_is(t, MICRO_DNS_PTR)) {
            w->wildcard = w->any = true;
        }
        return;
    }
    if (strcasecmp(name, "_services._dns-sd._udp." MDNS_DOMAIN ".") == 0) {
        if (qtype_is(t, MICRO_DNS_PTR)) {
            w->enumerate = w->any = true;
        }
        return;
    }
    if (strcasecmp(name, m->host) == 0) {
        /* Go's responder answers A and AAAA for its host, not ANY. */
        w->host4 = w->host4 || t == MICRO_DNS_A;
        w->host6 = w->host6 || t == MICRO_DNS_AAAA;
        w->any = w->any || w->host4 || w->host6;
        return;
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        const lnode *n = m->nodes[i];
        uint8_t bits = 0;
        if (strcasecmp(name, n->svc_name) == 0) {
            if (qtype_is(t, MICRO_DNS_PTR)) {
                bits = WANT_PTR | WANT_SRV | WANT_ADDR | WANT_TXT;
            }
        } else if (strcasecmp(name, n->instance) == 0) {
            bool any = t == MICRO_DNS_ANY;
            bool srv = any || t == MICRO_DNS_SRV;
            bool a = srv || (t == MICRO_DNS_A && n->family == AF_INET) ||
                     (t == MICRO_DNS_AAAA && n->family == AF_INET6);
            bool txt = any || t == MICRO_DNS_TXT;
            bits = (uint8_t) ((srv ? WANT_SRV : 0) | (a ? WANT_ADDR : 0) |
                (txt ? WANT_TXT : 0));
        }
        w->node[i] |= bits;
        w->any = w->any || bits != 0;
    }
}

/* Start a response to query; PTR/A records are then added until the next
 * one might take it over MAX_PACKET, when it is queued and another
 * begun. */
typedef struct packer {
    micro_dns_builder b;
    const micro_dns_msg *query;
    uint16_t id;
    size_t records;
} packer;

static void
packer_begin(packer *pk, const micro_dns_msg *query, uint16_t id)
{
    pk->query = query;
    pk->id = id;
    pk->records = 0;
    pkt_response(&pk->b, query, id);
}

/* Room for a record of up to need octets (uncompressed): flush if not. */
static void
packer_room(packer *pk, outlist *o, size_t need)
{
    if (pk->records > 0 && pk->b.len + need > MAX_PACKET) {
        out_add(o, &pk->b);
        packer_begin(pk, pk->query, pk->id);
    }
    pk->records++;
}

static void
packer_end(packer *pk, outlist *o)
{
    if (pk->records > 0) {
        out_add(o, &pk->b);
    } else {
        micro__dns_builder_fini(&pk->b);
    }
}

/* The messages that answer what w wants, with ID id (mutex held). */
static void
answer_want(mdns_state *m, const micro_dns_msg *query, uint16_t id,
    const want *w, outlist *o)
{
    for (size_t i = 0; i < m->n_nodes; i++) {
        uint8_t bits = w->node[i];
        if (bits != 0) {
            const lnode *n = m->nodes[i];
            build_instance(o, n, m->host, query, id, n->ttl,
                (bits & WANT_PTR) != 0, (bits & WANT_SRV) != 0,
                (bits & WANT_ADDR) != 0, (bits & WANT_TXT) != 0);
        }
    }
    if (w->wildcard) {
        /* An instance each: Go's querier completes one per message. */
        for (size_t i = 0; i < m->n_nodes; i++) {
            bool dup = false;
            for (size_t j = 0; j < i && !dup; j++) {
                dup = strcmp(m->nodes[j]->rec.name, m->nodes[i]->rec.name) ==
                    0;
            }
            if (!dup) {
                build_wildcard(o, m->nodes[i]->rec.name, m->host, query, id,
                    MDNS_TTL);
            }
        }
    }
    if (w->enumerate && m->n_nodes > 0) {
        static const char owner[] = "_services._dns-sd._udp." MDNS_DOMAIN ".";
        packer pk;
        packer_begin(&pk, query, id);
        packer_room(&pk, o, sizeof(owner) + 32);
        add_ptr(&pk.b, owner, WILDCARD "." MDNS_DOMAIN ".", MDNS_TTL);
        for (size_t i = 0; i < m->n_nodes; i++) {
            bool dup = false;
            for (size_t j = 0; j < i && !dup; j++) {
                dup = strcasecmp(m->nodes[j]->svc_name,
                          m->nodes[i]->svc_name) == 0;
            }
            if (!dup) {
                packer_room(&pk, o,
                    sizeof(owner) + strlen(m->nodes[i]->svc_name) + 16);
                add_ptr(&pk.b, owner, m->nodes[i]->svc_name, MDNS_TTL);
            }
        }
        packer_end(&pk, o);
    }
    if (w->host4 || w->host6) {
        packer pk;
        packer_begin(&pk, query, id);
        for (size_t i = 0; i < m->n_nodes; i++) {
            const lnode *n = m->nodes[i];
            bool dup = !(n->family == AF_INET ? w->host4 : w->host6);
            for (size_t j = 0; j < i && !dup; j++) {
                dup = m->nodes[j]->family == n->family &&
                      memcmp(m->nodes[j]->ip, n->ip, 16) == 0;
            }
            if (!dup) {
                packer_room(&pk, o, strlen(m->host) + 2 + 10 + 16);
                add_addr(&pk.b, m->host, n->family, n->ip, n->ttl);
            }
        }
        packer_end(&pk, o);
    }
}

/*
 * Build the answers to query (mutex held): every question is looked at
 * (up to 16), and what they ask is answered together, each record once
 * (see the top of this file). The QU bit: Go answers with the query's ID
 * then, else ID 0; either way the answer goes by unicast to the querier.
 */
static void
answer(mdns_state *m, const micro_dns_msg *query, outlist *o)
{
    size_t nq = 0;
    const micro_dns_rr *qs = micro__dns_section(query, MICRO_DNS_QUESTION, &nq);
    uint8_t small[2][32];
    want w[2];
    memset(w, 0, sizeof(w));
    for (int k = 0; k < 2; k++) {
        w[k].node = m->n_nodes <= sizeof(small[k]) ? small[k]
                                                   : micro__calloc(
                                                         m->n_nodes, 1);
        if (w[k].node == NULL) {
            if (k == 1 && w[0].node != small[0]) {
                micro__free(w[0].node);
            }
            return; /* no memory: no answer; the querier asks again */
        }
        memset(w[k].node, 0, m->n_nodes);
    }
    for (size_t qi = 0; qi < nq && qi < 16; qi++) {
        char name[MICRO_DNS_NAME_TEXT_MAX];
        if (dname_text(query, qs[qi].name, name)) {
            bool qu = (qs[qi].rclass & MICRO_DNS_CLASS_QU) != 0;
            want_question(m, name, qs[qi].type, &w[qu]);
        }
    }
    for (int k = 0; k < 2; k++) {
        if (w[k].any) {
            answer_want(m, query, k == 1 ? query->id : 0, &w[k], o);
        }
        if (w[k].node != small[k]) {
            micro__free(w[k].node);
        }
    }
}

static int
handle(mdns_state *m, const uint8_t *buf, size_t n, const struct sockaddr *from,
    socklen_t fromlen)
{
    micro_dns_msg pkt;
    if (micro__dns_parse(&pkt, buf, n) < 0) {
        count_malformed(m, pkt.why);
        return MICRO_EPROTO;
    }
    /* RFC 6762 §18.3, §18.11: anything but a standard query or response
     * with rcode 0 is silently ignored (as Go does for queries). */
    if (MICRO_DNS_OPCODE(pkt.flags) != 0 || MICRO_DNS_RCODE(pkt.flags) != 0) {
        micro__dns_msg_free(&pkt);
        return 0;
    }
    if (!(pkt.flags & MICRO_DNS_QR)) {
        outlist o = { 0 };
        pthread_mutex_lock(&m->mu);
        if (m->n_nodes > 0) {
            answer(m, &pkt, &o);
        }
        pthread_mutex_unlock(&m->mu);
        micro__dns_msg_free(&pkt);
        /* Unicast to the querier, over the family it asked on. */
        bool mdns_port = false;
        int fd = -1;
        if (from != NULL && from->sa_family == AF_INET) {
            fd = m->sock4;
            mdns_port = ((const struct sockaddr_in *) from)->sin_port ==
                        htons(MDNS_PORT);
        } else if (from != NULL && from->sa_family == AF_INET6) {
            fd = m->sock6;
            mdns_port = ((const struct sockaddr_in6 *) from)->sin6_port ==
                        htons(MDNS_PORT);
        }
        for (size_t i = 0; i < o.n && fd >= 0; i++) {
            if (sendto(fd, o.m[i].wire, o.m[i].len, 0, from, fromlen) < 0) {
                MICRO_LOGF(
                    MICRO_LOG_DEBUG, COMP, "answer: %s", strerror(errno));
            }
        }
        /* A querier on port 5353 shares it with every other responder
         * on its host (SO_REUSEPORT): unicast reaches only one of them. */
        if (mdns_port && fd >= 0) {
            bool v4 = from->sa_family == AF_INET;
            send_all_multicast(m, v4 ? m->sock4 : -1, v4 ? -1 : m->sock6, &o);
        }
        out_clear(&o);
        return 0;
    }
    on_response(m, &pkt);
    micro__dns_msg_free(&pkt);
    return 0;
}

int
micro__mdns_handle_packet(
    void *st, const uint8_t *p, size_t n, const struct sockaddr *from)
{
    socklen_t len = 0;
    if (from != NULL) {
        len = from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                          : sizeof(struct sockaddr_in);
    }
    return handle(st, p, n, from, len);
}

uint64_t
micro__mdns_malformed(void *st)
{
    mdns_state *m = st;
    return atomic_load(&m->n_malformed);
}

void
micro__mdns_get_limits(void *st, micro__mdns_limits *out)
{
    mdns_state *m = st;
    pthread_mutex_lock(&m->mu);
    *out = m->lim;
    pthread_mutex_unlock(&m->mu);
}

void
micro__mdns_set_limits(void *st, const micro__mdns_limits *l)
{
    mdns_state *m = st;
    pthread_mutex_lock(&m->mu);
    if (l->max_txt != 0) {
        m->lim.max_txt = l->max_txt;
    }
    if (l->max_nodes != 0) {
        m->lim.max_nodes = l->max_nodes;
    }
    if (l->max_per_service != 0) {
        m->lim.max_per_service = l->max_per_service;
    }
    if (l->max_bytes != 0) {
        m->lim.max_bytes = l->max_bytes;
    }
    if (l->max_ttl_s != 0) {
        m->lim.max_ttl_s = l->max_ttl_s;
    }
    pthread_mutex_unlock(&m->mu);
}

void
micro__mdns_get_cache_stats(void *st, micro__mdns_cache_stats *out)
{
    mdns_state *m = st;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&m->mu);
    out->nodes = m->n_seen;
    out->bytes = m->cache_bytes;
    for (size_t i = 0; i < m->n_seen; i++) {
        const seen_node *s = m->seen[i];
        if (!s->gone && s->rec.name != NULL) {
            size_t k = seen_count_service(m, s->rec.name);
            out->max_service = k > out->max_service ? k : out->max_service;
            if (s->ttl_ms > out->longest_ttl_ms) {
                out->longest_ttl_ms = s->ttl_ms;
            }
        }
    }
    pthread_mutex_unlock(&m->mu);
    out->refused_txt = atomic_load(&m->refused_txt);
    out->refused_nodes = atomic_load(&m->refused_nodes);
    out->refused_bytes = atomic_load(&m->refused_bytes);
    out->ttl_clamped = atomic_load(&m->ttl_clamped);
}

/* ------------------------------------------------------------------ */
/* The thread                                                           */

/* A standard query (RD clear) with a random ID and one question. */
static void
build_query(micro_dns_builder *b, const char *name, uint16_t type)
{
    micro__dns_builder_init(b, (uint16_t) micro__rand(65536), 0);
    (void) micro__dns_add_question(b, name, type, MICRO_DNS_CLASS_IN);
}

/* Due announcements, expired and to-be-refreshed watch entries. Returns
 * the time of the next timer. */
static int64_t
run_timers(mdns_state *m, int64_t now, outlist *announce, outlist *queries,
    micro__evlist *ev, logq *lq)
{
    int64_t next = now + 1000;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_nodes; i++) {
        lnode *n = m->nodes[i];
        if (n->announce_left <= 0) {
            continue;
        }
        if (n->next_announce <= now) {
            build_instance(announce, n, m->host, NULL, 0, n->ttl, true, true,
                true, true);
            n->announce_left--;
            n->next_announce = now + n->gap_ms;
            n->gap_ms *= 2;
        }
        if (n->announce_left > 0 && n->next_announce < next) {
            next = n->next_announce;
        }
    }
    for (size_t i = 0; i < m->n_seen;) {
        seen_node *s = m->seen[i];
        int64_t expires = s->heard + s->ttl_ms;
        if (expires <= now) {
            if (!s->gone) {
                logq_add(lq, MICRO_LOG_DEBUG, "%s: TTL ran out",
                    s->instance);
                ev_add(ev, MICRO_REGISTRY_DELETE, &s->rec);
            }
            seen_remove(m, i);
            continue;
        }
        if (!s->gone && s->stage < 2) {
            int64_t at = s->heard + s->ttl_ms * (s->stage == 0 ? 8 : 9) / 10;
            if (at <= now) {
                /* One query per service asks all of its nodes again. */
                char *q = str_printf("%s.%s.", s->rec.name, MDNS_DOMAIN);
                bool dup = false;
                for (size_t j = 0; j < i && q != NULL && !dup; j++) {
                    dup = !m->seen[j]->gone && m->seen[j]->stage > s->stage &&
                          strcmp(m->seen[j]->rec.name, s->rec.name) == 0;
                }
                if (q != NULL && !dup) {
                    micro_dns_builder b;
                    build_query(&b, q, MICRO_DNS_PTR);
                    out_add(queries, &b);
                }
                micro__free(q);
                s->stage++;
                at = s->heard + s->ttl_ms * (s->stage == 1 ? 9 : 10) / 10;
            }
            if (at < next) {
                next = at;
            }
        }
        if (expires < next) {
            next = expires;
        }
        i++;
    }
    pthread_mutex_unlock(&m->mu);
    return next;
}

static void
drain_socket(mdns_state *m, int fd, uint8_t *buf)
{
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t r = recvfrom(fd, buf, RECV_BUF, MSG_DONTWAIT | MSG_TRUNC,
            (struct sockaddr *) &from, &fl);
        if (r < 0) {
            return;
        }
        if ((size_t) r > RECV_BUF) {
            count_malformed(m, "datagram larger than 64 KiB");
            continue;
        }
        handle(m, buf, (size_t) r, (struct sockaddr *) &from, fl);
    }
}

static void *
mdns_thread(void *arg)
{
    mdns_state *m = arg;
    uint8_t *buf = micro__malloc(RECV_BUF);
    if (buf == NULL) {
        MICRO_LOGF(MICRO_LOG_ERR, COMP, "thread: %s",
            micro_strerror(MICRO_ENOMEM));
        return NULL;
    }
    int64_t next_scan = micro__now_ms() + SCAN_MS;
    while (!atomic_load(&m->stop)) {
        int64_t now = micro__now_ms();
        if (now >= next_scan) {
            logq lq = { .n = 0 };
            scan_ifaces(m, &lq);
            logq_flush(&lq);
            next_scan = now + SCAN_MS;
        }
        outlist ann = { 0 };
        outlist qry = { 0 };
        micro__evlist ev = { 0 };
        logq lq = { .n = 0 };
        int64_t next = run_timers(m, now, &ann, &qry, &ev, &lq);
        logq_flush(&lq);
        send_all_multicast(m, m->sock4, m->sock6, &ann);
        send_all_multicast(m, m->qsock, m->qsock6, &qry);
        out_clear(&ann);
        out_clear(&qry);
        dispatch(m, &ev);
        if (next > next_scan) {
            next = next_scan;
        }
        int64_t wait = next - micro__now_ms();
        if (wait < 0) {
            wait = 0;
        }
        /* poll ignores the -1 of a family that is off. */
        struct pollfd pf[5] = {
            { m->wake[0], POLLIN, 0 },
            { m->sock4, POLLIN, 0 },
            { m->qsock, POLLIN, 0 },
            { m->sock6, POLLIN, 0 },
            { m->qsock6, POLLIN, 0 },
        };
        int r = poll(pf, 5, (int) wait);
        if (r <= 0) {
            continue;
        }
        if (pf[0].revents) {
            char tmp[64];
            while (read(m->wake[0], tmp, sizeof(tmp)) > 0) {
            }
        }
        for (size_t i = 1; i < 5; i++) {
            if (pf[i].revents) {
                drain_socket(m, pf[i].fd, buf);
            }
        }
    }
    micro__free(buf);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Sockets                                                              */

static int
udp4_socket(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    unsigned char loop = 1;
    unsigned char ttl = 255;
    if (port != 0 &&
        (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) !=
                0)) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof(loop)) !=
            0 ||
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl)) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* UDP [::]:port, IPv6 only (the IPv4 side has its own socket), hop
 * limit 255 and loopback on, as RFC 6762 and Go. A negative errno when
 * the kernel has no IPv6 (EAFNOSUPPORT) or it is disabled
 * (EADDRNOTAVAIL). */
static int
udp6_socket(uint16_t port)
{
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    int hops = 255;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0 ||
        (port != 0 &&
            (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) !=
                    0 ||
                setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) !=
                    0))) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(port);
    sa.sin6_addr = in6addr_any;
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &one, sizeof(one)) !=
            0 ||
        setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops,
            sizeof(hops)) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* ------------------------------------------------------------------ */
/* Ops                                                                  */

static void mdns_fini(void *st);

static void
free_if_list(mdns_state *m)
{
    for (size_t i = 0; i < m->n_only_ifs; i++) {
        micro__free(m->only_ifs[i]);
    }
    micro__free(m->only_ifs);
    m->only_ifs = NULL;
    m->n_only_ifs = 0;
}

/* "eth1, lo" -> only_ifs. */
static int
parse_if_list(mdns_state *m, const char *list)
{
    const char *p = list;
    while (*p != '\0') {
        while (*p == ',' || *p == ' ') {
            p++;
        }
        size_t l = strcspn(p, ", ");
        if (l == 0) {
            break;
        }
        char **arr = micro__realloc(
            m->only_ifs, (m->n_only_ifs + 1) * sizeof(*arr));
        char *name = arr != NULL ? micro__strndup(p, l) : NULL;
        if (arr != NULL) {
            m->only_ifs = arr;
        }
        if (name == NULL) {
            free_if_list(m);
            return MICRO_ENOMEM;
        }
        m->only_ifs[m->n_only_ifs++] = name;
        p += l;
    }
    return 0; /* only separators: as if unset */
}

static int
mdns_init(void *st, const micro_options *opts)
{
    mdns_state *m = st;
    int rc_only = 0;
    m->sock4 = m->qsock = m->sock6 = m->qsock6 = -1;
    m->wake[0] = m->wake[1] = -1;
    atomic_init(&m->stop, false);
    atomic_init(&m->n_malformed, 0);
    atomic_init(&m->n_logged, 0);
    atomic_init(&m->last_log, 0);
    atomic_init(&m->refused_txt, 0);
    atomic_init(&m->refused_nodes, 0);
    atomic_init(&m->refused_bytes, 0);
    atomic_init(&m->ttl_clamped, 0);
    atomic_init(&m->n_refused, 0);
    atomic_init(&m->refused_logged, 0);
    atomic_init(&m->refuse_log_ms, 0);
    atomic_init(&m->refuse_why, NULL);
    m->lim = (micro__mdns_limits){.max_txt = CACHE_MAX_TXT,
        .max_nodes = CACHE_MAX_NODES,
        .max_per_service = CACHE_MAX_PER_SERVICE,
        .max_bytes = CACHE_MAX_BYTES,
        .max_ttl_s = CACHE_MAX_TTL};
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        return MICRO_ENOMEM;
    }
    if (pthread_mutex_init(&m->send_mu, NULL) != 0) {
        pthread_mutex_destroy(&m->mu);
        return MICRO_ENOMEM;
    }
    if (micro__watchers_init(&m->watch, &m->mu, COMP) < 0) {
        pthread_mutex_destroy(&m->send_mu);
        pthread_mutex_destroy(&m->mu);
        return MICRO_ENOMEM;
    }
    m->timeout_ms = micro_options_get_ms(opts, "registry_timeout");
    if (m->timeout_ms <= 0) {
        m->timeout_ms = 100;
    }
    const char *v6 = micro_options_get_str(opts, "registry_ipv6");
    m->use4 = m->use6 = true;
    if (v6 != NULL && v6[0] != '\0' && strcmp(v6, "on") != 0) {
        if (strcmp(v6, "off") == 0) {
            m->use6 = false;
        } else if (strcmp(v6, "only") == 0) {
            m->use4 = false;
        } else {
            MICRO_LOGF(MICRO_LOG_ERR, COMP,
                "registry_ipv6 \"%s\": want on, off or only", v6);
            micro__watchers_fini(&m->watch);
            pthread_mutex_destroy(&m->send_mu);
            pthread_mutex_destroy(&m->mu);
            return MICRO_EINVAL;
        }
    }
    const char *only = micro_options_get_str(opts, "registry_interfaces");
    if (only != NULL && only[0] != '\0') {
        rc_only = parse_if_list(m, only);
        if (rc_only < 0) {
            micro__watchers_fini(&m->watch);
            pthread_mutex_destroy(&m->send_mu);
            pthread_mutex_destroy(&m->mu);
            return rc_only;
        }
    }
    char hn[200];
    if (gethostname(hn, sizeof(hn)) != 0 || hn[0] == '\0') {
        snprintf(hn, sizeof(hn), "localhost");
    }
    hn[sizeof(hn) - 1] = '\0';
    snprintf(m->host, sizeof(m->host), "%s.", hn);
    if (!dname_ok(m->host)) {
        snprintf(m->host, sizeof(m->host), "localhost.");
    }

    if (pthread_mutex_init(&m->start_mu, NULL) != 0) {
        free_if_list(m);
        micro__watchers_fini(&m->watch);
        pthread_mutex_destroy(&m->send_mu);
        pthread_mutex_destroy(&m->mu);
        return MICRO_ENOMEM;
    }
    atomic_init(&m->started, false);
    return 0;
}

/* Open the sockets, join the groups and start the thread, once. */
static int
mdns_start(mdns_state *m)
{
    if (atomic_load(&m->started)) {
        return m->start_rc;
    }
    pthread_mutex_lock(&m->start_mu);
    if (atomic_load(&m->started)) {
        pthread_mutex_unlock(&m->start_mu);
        return m->start_rc;
    }
    logq lq = { .n = 0 }; /* written once start_mu is released */
    int rc = 0;
    if (m->use4) {
        rc = udp4_socket(MDNS_PORT);
        if (rc < 0) {
            logq_add(&lq, MICRO_LOG_ERR, "bind 0.0.0.0:%d: %s", MDNS_PORT,
                micro_strerror(rc));
            goto fail;
        }
        m->sock4 = rc;
        rc = udp4_socket(0);
        if (rc < 0) {
            goto fail;
        }
        m->qsock = rc;
    }
    if (m->use6) {
        rc = udp6_socket(MDNS_PORT);
        if (rc >= 0) {
            m->sock6 = rc;
            rc = udp6_socket(0);
            if (rc >= 0) {
                m->qsock6 = rc;
            }
        }
        if (rc < 0) {
            if (!m->use4) {
                logq_add(&lq, MICRO_LOG_ERR,
                    "bind [::]:%d: %s (registry_ipv6 is \"only\")",
                    MDNS_PORT, micro_strerror(rc));
                goto fail;
            }
            /* "Where available": IPv4 carries on alone. */
            logq_add(&lq, MICRO_LOG_DEBUG, "no IPv6 (%s): IPv4 only",
                micro_strerror(rc));
            if (m->sock6 >= 0) {
                close(m->sock6);
                m->sock6 = -1;
            }
        }
    }
    if (pipe2(m->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = -errno;
        m->wake[0] = m->wake[1] = -1;
        goto fail;
    }
    scan_ifaces(m, &lq);
    if (m->n_ifs == 0 && m->n_ifs6 == 0) {
        logq_add(&lq, MICRO_LOG_WARN,
            "no interface to join %s on yet%s (will keep looking)",
            m->use4 ? MDNS_GROUP : MDNS_GROUP6,
            m->only_ifs ? " among registry_interfaces" : "");
    }
    if (pthread_create(&m->thread, NULL, mdns_thread, m) != 0) {
        rc = MICRO_ENOMEM;
        goto fail;
    }
    m->thread_started = true;
    logq_add(&lq, MICRO_LOG_DEBUG,
        "up: host %s, %zu IPv4 and %zu IPv6 interfaces, timeout %lld ms",
        m->host, m->n_ifs, m->n_ifs6, (long long) m->timeout_ms);
    rc = 0;
    goto done;
fail:
    /* Leave nothing half open; the next use tries again. */
    {
        int *fds[6] = { &m->sock4, &m->qsock, &m->sock6, &m->qsock6,
            &m->wake[0], &m->wake[1] };
        for (size_t i = 0; i < 6; i++) {
            if (*fds[i] >= 0) {
                close(*fds[i]);
                *fds[i] = -1;
            }
        }
    }
    m->start_rc = rc;
    pthread_mutex_unlock(&m->start_mu);
    logq_flush(&lq);
    return rc;
done:
    m->start_rc = 0;
    atomic_store(&m->started, true);
    pthread_mutex_unlock(&m->start_mu);
    logq_flush(&lq);
    return 0;
}

static void
mdns_fini(void *st)
{
    mdns_state *m = st;
    /* Say goodbye for what is still registered, so peers drop it now. */
    outlist o = { 0 };
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_nodes; i++) {
        build_instance(
            &o, m->nodes[i], m->host, NULL, 0, 0, true, true, true, true);
    }
    pthread_mutex_unlock(&m->mu);
    send_all_multicast(m, m->sock4, m->sock6, &o);
    out_clear(&o);

    if (m->thread_started) {
        atomic_store(&m->stop, true);
        wake_thread(m);
        pthread_join(m->thread, NULL);
        m->thread_started = false;
    }
    int fds[6] = { m->sock4, m->qsock, m->sock6, m->qsock6, m->wake[0],
        m->wake[1] };
    for (size_t i = 0; i < 6; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
        }
    }
    for (size_t i = 0; i < m->n_nodes; i++) {
        lnode_free(m->nodes[i]);
    }
    micro__free(m->nodes);
    for (size_t i = 0; i < m->n_seen; i++) {
        seen_free(m->seen[i]);
    }
    micro__free(m->seen);
    micro__watchers_fini(&m->watch);
    free_if_list(m);
    pthread_mutex_destroy(&m->start_mu);
    pthread_mutex_destroy(&m->send_mu);
    pthread_mutex_destroy(&m->mu);
}

static int
mdns_register(void *st, const micro_registry_service *svc, int64_t ttl_ms)
{
    mdns_state *m = st;
    /* Go always writes TTL 120 s. Ours carry the registration's TTL (in
     * whole seconds, at least 1; 120 when none is given), so that a node
     * killed without a goodbye leaves peers' watch caches (and through
     * them their selectors) within --register_ttl, not two minutes. */
    uint32_t ttl = MDNS_TTL;
    if (ttl_ms > 0) {
        int64_t sec = (ttl_ms + 999) / 1000;
        ttl = sec > 86400 ? 86400 : (uint32_t) sec;
    }
    if (svc->n_nodes == 0) {
        return 0; /* Go starts only the wildcard responder then */
    }
    int src = mdns_start(m);
    if (src < 0) {
        return src;
    }
    lnode **fresh = micro__calloc(svc->n_nodes, sizeof(*fresh));
    if (fresh == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < svc->n_nodes && rc == 0; i++) {
        rc = lnode_new(svc, i, &fresh[i]);
        if (rc == 0) {
            fresh[i]->ttl = ttl;
        }
    }
    if (rc == 0) {
        pthread_mutex_lock(&m->mu);
        lnode **arr = micro__realloc(
            m->nodes, (m->n_nodes + svc->n_nodes) * sizeof(*arr));
        if (arr == NULL) {
            rc = MICRO_ENOMEM;
        } else {
            m->nodes = arr;
        }
        pthread_mutex_unlock(&m->mu);
    }
    if (rc < 0) {
        for (size_t i = 0; i < svc->n_nodes; i++) {
            lnode_free(fresh[i]);
        }
        micro__free(fresh);
        return rc;
    }

    outlist o = { 0 };
    int64_t now = micro__now_ms();
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < svc->n_nodes; i++) {
        lnode *n = fresh[i];
        size_t j = 0;
        while (j < m->n_nodes &&
               !(strcmp(m->nodes[j]->rec.name, n->rec.name) == 0 &&
                   strcmp(m->nodes[j]->rec.nodes[0].id,
                       n->rec.nodes[0].id) == 0)) {
            j++;
        }
        if (j < m->n_nodes) {
            /* Go does nothing on a re-register. We take the new records
             * and announce them once more, so that peers' watch caches
             * (which expire nodes after their TTL) stay fresh. */
            n->announce_left = m->nodes[j]->announce_left;
            n->next_announce = m->nodes[j]->next_announce;
            n->gap_ms = m->nodes[j]->gap_ms;
            lnode_free(m->nodes[j]);
            m->nodes[j] = n;
        } else {
            /* A new node: announce at 0, 1 s and 3 s, as Go does. */
            n->announce_left = 2;
            n->next_announce = now + 1000;
            n->gap_ms = 2000;
            m->nodes[m->n_nodes++] = n;
        }
        build_instance(
            &o, n, m->host, NULL, 0, n->ttl, true, true, true, true);
    }
    pthread_mutex_unlock(&m->mu);
    micro__free(fresh);
    send_all_multicast(m, m->sock4, m->sock6, &o);
    out_clear(&o);
    wake_thread(m);
    return 0;
}

static int
mdns_deregister(void *st, const micro_registry_service *svc)
{
    mdns_state *m = st;
    if (!atomic_load(&m->started)) {
        return 0; /* nothing was ever registered */
    }
    outlist o = { 0 };
    lnode **gone = NULL;
    size_t n_gone = 0;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < svc->n_nodes; i++) {
        for (size_t j = 0; j < m->n_nodes; j++) {
            lnode *n = m->nodes[j];
            if (strcmp(n->rec.name, svc->name) != 0 ||
                strcmp(n->rec.nodes[0].id, svc->nodes[i].id) != 0) {
                continue;
            }
            lnode **g = micro__realloc(gone, (n_gone + 1) * sizeof(*g));
            if (g == NULL) {
                break;
            }
            gone = g;
            gone[n_gone++] = n;
            memmove(&m->nodes[j], &m->nodes[j + 1],
                (m->n_nodes - j - 1) * sizeof(*m->nodes));
            m->n_nodes--;
            /* The goodbye: the same records with TTL 0. */
            build_instance(&o, n, m->host, NULL, 0, 0, true, true, true, true);
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    send_all_multicast(m, m->sock4, m->sock6, &o);
    out_clear(&o);
    for (size_t i = 0; i < n_gone; i++) {
        lnode_free(gone[i]);
    }
    micro__free(gone);
    return 0;
}

/* Add node (of version, with endpoints from hdr) to the result. */
static int
result_add(micro_registry_service **res, size_t *n,
    const micro_registry_service *hdr, const micro_node *node)
{
    micro_registry_service *s = NULL;
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*res)[i].version, hdr->version) == 0) {
            s = &(*res)[i];
            break;
        }
    }
    if (s == NULL) {
        micro_registry_service *arr =
            micro__realloc(*res, (*n + 1) * sizeof(*arr));
        if (arr == NULL) {
            return MICRO_ENOMEM;
        }
        *res = arr;
        s = &arr[*n];
        if (micro__registry_service_copy_header(s, hdr) < 0) {
            return MICRO_ENOMEM;
        }
        micro_metadata_clear(&s->metadata);
        (*n)++;
    }
    for (size_t i = 0; i < s->n_nodes; i++) {
        if (strcmp(s->nodes[i].id, node->id) == 0) {
            return 0;
        }
    }
    micro_node *nodes =
        micro__realloc(s->nodes, (s->n_nodes + 1) * sizeof(*nodes));
    if (nodes == NULL) {
        return MICRO_ENOMEM;
    }
    s->nodes = nodes;
    int rc = micro_node_copy(&nodes[s->n_nodes], node);
    if (rc == 0) {
        s->n_nodes++;
    }
    return rc;
}

typedef void (*collect_fn)(
    mdns_state *m, const micro_dns_msg *pkt, void *arg);

/* Multicast one PTR query for qname from a private socket per family and
 * feed every answer whose first question is qname to fn, for timeout_ms. */
static int
query_collect(mdns_state *m, const char *qname, collect_fn fn, void *arg)
{
    micro_dns_builder q;
    build_query(&q, qname, MICRO_DNS_PTR);
    uint8_t *wire = NULL;
    size_t wlen = 0;
    int rc = micro__dns_builder_finish(&q, &wire, &wlen);
    if (rc < 0) {
        return rc;
    }
    /* Private sockets: no race on _MULTICAST_IF. A family the registry
     * could not open (m->sock6 < 0) is not asked on. */
    int fd = m->sock4 >= 0 ? udp4_socket(0) : -1;
    int fd6 = m->sock6 >= 0 ? udp6_socket(0) : -1;
    if (fd < 0 && fd6 < 0) {
        micro__free(wire);
        return fd < 0 && m->sock4 >= 0 ? fd : fd6;
    }
    send_multicast(m, fd, fd6, wire, wlen);
    micro__free(wire);
    uint8_t *buf = micro__malloc(RECV_BUF);
    if (buf == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        if (fd6 >= 0) {
            close(fd6);
        }
        return MICRO_ENOMEM;
    }
    int64_t deadline = micro__now_ms() + m->timeout_ms;
    for (;;) {
        int64_t left = deadline - micro__now_ms();
        if (left <= 0) {
            break;
        }
        struct pollfd pf[2] = { { fd, POLLIN, 0 }, { fd6, POLLIN, 0 } };
        int r = poll(pf, 2, (int) left);
        if (r <= 0) {
            continue; /* EINTR or the deadline: the loop decides */
        }
        int rfd = pf[0].revents ? fd : fd6;
        ssize_t got = recv(rfd, buf, RECV_BUF, MSG_DONTWAIT | MSG_TRUNC);
        if (got < 0) {
            continue;
        }
        if ((size_t) got > RECV_BUF) {
            count_malformed(m, "datagram larger than 64 KiB");
            continue;
        }
        micro_dns_msg pkt;
        if (micro__dns_parse(&pkt, buf, (size_t) got) < 0) {
            count_malformed(m, pkt.why);
            continue;
        }
        char first[MICRO_DNS_NAME_TEXT_MAX];
        size_t nq = 0;
        const micro_dns_rr *qs =
            micro__dns_section(&pkt, MICRO_DNS_QUESTION, &nq);
        /* Go drops anything whose first question is not what it asked. */
        if ((pkt.flags & MICRO_DNS_QR) && MICRO_DNS_OPCODE(pkt.flags) == 0 &&
            MICRO_DNS_RCODE(pkt.flags) == 0 && nq > 0 &&
            dname_text(&pkt, qs[0].name, first) &&
            strcasecmp(first, qname) == 0) {
            fn(m, &pkt, arg);
        }
        micro__dns_msg_free(&pkt);
    }
    micro__free(buf);
    if (fd >= 0) {
        close(fd);
    }
    if (fd6 >= 0) {
        close(fd6);
    }
    return 0;
}

typedef struct get_ctx {
    micro__evlist ev; /* watch events of nodes the lookup taught the cache */
    const char *name;
    char *suffix; /* ".S.micro." */
    micro_registry_service *res;
    size_t n;
    size_t nodes;     /* in res, over every version */
    size_t max_nodes; /* max_per_service when the lookup began */
    int rc;
} get_ctx;

/* A node found by a lookup joins the watch cache (create when it is new
 * to it, as if announced), so that the cache asks it again before its TTL
 * runs out and reports delete when it stops answering. Without this, a
 * node that announced itself before this process started would be known
 * only to the lookup, and nobody would notice it die. */
static void
seen_learn(mdns_state *m, const entry *e, const micro_registry_service *t,
    const micro_node *node, micro__evlist *ev)
{
    if (t->version == NULL || t->version[0] == '\0') {
        return; /* Go's watcher ignores these as well */
    }
    micro_registry_service rec;
    if (micro__registry_service_copy_header(&rec, t) < 0) {
        return;
    }
    micro_metadata_clear(&rec.metadata);
    rec.nodes = micro__calloc(1, sizeof(micro_node));
    if (rec.nodes != NULL && micro_node_copy(&rec.nodes[0], node) == 0) {
        rec.n_nodes = 1;
        pthread_mutex_lock(&m->mu);
        if (m->watch.n > 0) {
            seen_apply(m, e->name, &rec, e->ttl, micro__now_ms(), ev);
        }
        pthread_mutex_unlock(&m->mu);
        refuse_log(m);
        wake_thread(m); /* its refresh timers may be due before the next */
    }
    micro_registry_service_clear(&rec);
}

static void
get_collect(mdns_state *m, const micro_dns_msg *pkt, void *arg)
{
    get_ctx *g = arg;
    parsed p;
    parse_entries(pkt, &p);
    for (size_t i = 0; i < p.n_e && g->rc == 0; i++) {
        const entry *e = &p.e[i];
        if (!entry_complete(e) || e->ttl == 0 ||
            ends_with_ci(e->name, "." WILDCARD "." MDNS_DOMAIN ".")) {
            continue;
        }
        micro_registry_service t;
        if (entry_txt(m, e, &t) < 0) {
            continue;
        }
        micro_node node;
        if (strcmp(t.name, g->name) == 0 && g->nodes >= g->max_nodes) {
            note_refused(m, &m->refused_nodes,
                "a lookup collected its most nodes");
        } else if (strcmp(t.name, g->name) == 0 &&
            entry_node(e, g->suffix, &t, &node) == 0) {
            g->rc = result_add(&g->res, &g->n, &t, &node);
            g->nodes = 0;
            for (size_t k = 0; k < g->n; k++) {
                g->nodes += g->res[k].n_nodes;
            }
            seen_learn(m, e, &t, &node, &g->ev);
            micro_node_clear(&node);
        }
        micro_registry_service_clear(&t);
    }
    parsed_clear(&p);
}

static int
mdns_get_service(
    void *st, const char *name, micro_registry_service **out, size_t *n)
{
    mdns_state *m = st;
    *out = NULL;
    *n = 0;
    get_ctx g = { .name = name };
    g.suffix = str_printf(".%s.%s.", name, MDNS_DOMAIN);
    char *qname = str_printf("%s.%s.", name, MDNS_DOMAIN);
    if (g.suffix == NULL || qname == NULL) {
        micro__free(g.suffix);
        micro__free(qname);
        return MICRO_ENOMEM;
    }
    if (!dname_ok(qname)) {
        micro__free(g.suffix);
        micro__free(qname);
        return MICRO_ENOSERVICE; /* no valid DNS name: nobody serves it */
    }
    int src = mdns_start(m);
    if (src < 0) {
        micro__free(g.suffix);
        micro__free(qname);
        return src;
    }
    /* Our own nodes first: a service always finds itself, even with no
     * interface to multicast on. */
    pthread_mutex_lock(&m->mu);
    g.max_nodes = m->lim.max_per_service;
    for (size_t i = 0; i < m->n_nodes && g.rc == 0; i++) {
        const lnode *l = m->nodes[i];
        if (strcmp(l->rec.name, name) == 0) {
            g.rc = result_add(&g.res, &g.n, &l->rec, &l->rec.nodes[0]);
        }
    }
    pthread_mutex_unlock(&m->mu);
    int rc = g.rc;
    if (rc == 0) {
        rc = query_collect(m, qname, get_collect, &g);
    }
    dispatch(m, &g.ev); /* no lock held: watchers may take their own */
    refuse_log(m);
    if (rc == 0) {
        rc = g.rc;
    }
    micro__free(g.suffix);
    micro__free(qname);
    if (rc < 0) {
        micro_registry_services_free(g.res, g.n);
        return rc;
    }
    if (g.n == 0) {
        micro__free(g.res);
        return MICRO_ENOSERVICE;
    }
    *out = g.res;
    *n = g.n;
    return 0;
}

typedef struct list_ctx {
    micro_registry_service *res;
    size_t n;
    int rc;
} list_ctx;

static void
list_add(list_ctx *l, const char *name, size_t len)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strlen(l->res[i].name) == len &&
            strncmp(l->res[i].name, name, len) == 0) {
            return;
        }
    }
    micro_registry_service *arr =
        micro__realloc(l->res, (l->n + 1) * sizeof(*arr));
    if (arr == NULL) {
        l->rc = MICRO_ENOMEM;
        return;
    }
    l->res = arr;
    memset(&arr[l->n], 0, sizeof(arr[0]));
    arr[l->n].name = micro__strndup(name, len);
    arr[l->n].version = micro__strdup("");
    l->n++;
    if (arr[l->n - 1].name == NULL || arr[l->n - 1].version == NULL) {
        l->rc = MICRO_ENOMEM;
    }
}

static void
list_collect(mdns_state *m, const micro_dns_msg *pkt, void *arg)
{
    (void) m;
    list_ctx *l = arg;
    static const char suffix[] = "." WILDCARD "." MDNS_DOMAIN ".";
    parsed p;
    parse_entries(pkt, &p);
    for (size_t i = 0; i < p.n_e && l->rc == 0; i++) {
        const entry *e = &p.e[i];
        size_t nl = strlen(e->name);
        if (entry_complete(e) && e->ttl != 0 && ends_with_ci(e->name, suffix) &&
            nl > sizeof(suffix) - 1) {
            list_add(l, e->name, nl - (sizeof(suffix) - 1));
        }
    }
    parsed_clear(&p);
}

static int
mdns_list_services(void *st, micro_registry_service **out, size_t *n)
{
    mdns_state *m = st;
    *out = NULL;
    *n = 0;
    list_ctx l = { 0 };
    int src = mdns_start(m);
    if (src < 0) {
        return src;
    }
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_nodes && l.rc == 0; i++) {
        list_add(&l, m->nodes[i]->rec.name, strlen(m->nodes[i]->rec.name));
    }
    pthread_mutex_unlock(&m->mu);
    int rc = l.rc;
    if (rc == 0) {
        rc = query_collect(m, WILDCARD "." MDNS_DOMAIN ".", list_collect, &l);
    }
    if (rc == 0) {
        rc = l.rc;
    }
    if (rc < 0) {
        micro_registry_services_free(l.res, l.n);
        return rc;
    }
    *out = l.res;
    *n = l.n;
    return 0;
}

static int
mdns_watch(void *st, micro_registry_watch_fn fn, void *arg, uint64_t *token)
{
    mdns_state *m = st;
    int src = mdns_start(m);
    if (src < 0) {
        return src;
    }
    return micro__watchers_add(&m->watch, fn, arg, token);
}

static void
mdns_unwatch(void *st, uint64_t token)
{
    mdns_state *m = st;
    pthread_mutex_lock(&m->mu);
    micro__watchers_remove(&m->watch, token);
    /* The cache serves only watchers. */
    if (m->watch.n == 0) {
        for (size_t i = 0; i < m->n_seen; i++) {
            seen_free(m->seen[i]);
        }
        micro__free(m->seen);
        m->seen = NULL;
        m->n_seen = 0;
        m->cache_bytes = 0;
    }
    pthread_mutex_unlock(&m->mu);
}

/* The options this registry reads (its --help group). */
static const micro_option_desc mdns_options[] = {
    {"registry_timeout", MICRO_OPT_MS, "100ms",
        "how long an mDNS lookup collects answers"},
    {"registry_interfaces", MICRO_OPT_STR, NULL,
        "interfaces mDNS uses, comma-separated names (default: every "
        "interface that is up)"},
    {"registry_ipv6", MICRO_OPT_STR, "on", "mDNS over IPv6 too: on, off, only"},
    MICRO_OPTION_END,
};

MICRO_API const micro_registry_ops micro_registry_mdns_ops = {
    .abi = MICRO_REGISTRY_ABI,
    .name = "mdns",
    .state_size = sizeof(mdns_state),
    .init = mdns_init,
    .register_service = mdns_register,
    .deregister = mdns_deregister,
    .get_service = mdns_get_service,
    .list_services = mdns_list_services,
    .watch = mdns_watch,
    .unwatch = mdns_unwatch,
    .fini = mdns_fini,
    .options = mdns_options,
};
