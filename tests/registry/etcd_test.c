/* The etcd registry (src/registry/etcd.c) against real etcd servers
 * (Debian's etcd-server) on free loopback ports in temporary directories:
 * Go Micro's key layout, register / get / list / deregister, watch
 * events, TTL expiry after the owner is SIGKILLed, a lost lease replaced
 * by itself, garbage values, a 10,000-node record, a watch resumed after
 * a restart and listed again after a compaction, and a three-member
 * cluster losing a member during lookups, then stopped for longer than
 * the TTL and started again. Exits 77 when etcd is not installed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "core/loop_internal.h"
#include "http/client.h"
#include "support/reg.h"
#include "support/support.h"

#define TTL_MS 2000
/* Generous: the machine may be busy. etcd checks lease expiry every
 * 500 ms; the bounds below are upper bounds only. */
#define SLACK_MS 15000

static const char *etcd_bin;

typedef struct member {
    char name[24];
    int cport, pport;
    char dir[128];
    char log[140];
    t_proc p;
    bool up;
} member;

static member mem[3];
static size_t n_mem;
static char base_dir[32];
static char cluster[512];
static char endpoints[256];

static micro_loop *hloop;
static micro__http_client *hcli;

/* ------------------------------------------------------------------ */
/* Raw gateway requests (for what a test does behind the registry's
 * back), through the project's HTTP client.                           */

/* POST body to member m's path; the parsed answer (cJSON_Delete it). */
static cJSON *
raw_post(const member *m, const char *path, const char *body)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", m->cport, path);
    micro__http_call c;
    memset(&c, 0, sizeof(c));
    c.client = hcli;
    c.method = "POST";
    c.url = url;
    c.body = body;
    c.body_len = strlen(body);
    int rc = micro__http_call_wait(&c, 10000);
    cJSON *j = NULL;
    if (rc == 0 && c.rsp != NULL) {
        size_t len = 0;
        const void *p = micro_msg_body(c.rsp, &len);
        j = cJSON_ParseWithLength(p, len);
    }
    micro__http_call_fini(&c);
    return j;
}

static char *
b64s(const char *s)
{
    micro_buf b = {0};
    assert_int_equal(micro__base64_encode(s, strlen(s), &b), 0);
    assert_int_equal(micro_buf_append(&b, "", 1), 0);
    return (char *) b.data;
}

/* Put a raw value under key; the revision of the put. */
static int64_t
raw_put(const member *m, const char *key, const char *value)
{
    char *k = b64s(key), *v = b64s(value);
    size_t n = strlen(k) + strlen(v) + 64;
    char *body = malloc(n);
    assert_non_null(body);
    snprintf(body, n, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
    cJSON *j = raw_post(m, "/v3/kv/put", body);
    assert_non_null(j);
    const cJSON *rev = cJSON_GetObjectItem(
        cJSON_GetObjectItem(j, "header"), "revision");
    assert_true(cJSON_IsString(rev));
    int64_t r = strtoll(rev->valuestring, NULL, 10);
    cJSON_Delete(j);
    free(body);
    micro__free(k);
    micro__free(v);
    return r;
}

static void
raw_delete(const member *m, const char *key)
{
    char *k = b64s(key);
    char body[512];
    snprintf(body, sizeof(body), "{\"key\":\"%s\"}", k);
    cJSON_Delete(raw_post(m, "/v3/kv/deleterange", body));
    micro__free(k);
}

/* The range answer for one key. */
static cJSON *
raw_get(const member *m, const char *key)
{
    char *k = b64s(key);
    char body[512];
    snprintf(body, sizeof(body), "{\"key\":\"%s\"}", k);
    micro__free(k);
    return raw_post(m, "/v3/kv/range", body);
}

static void
raw_compact(const member *m, int64_t rev)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"revision\":\"%lld\",\"physical\":true}",
        (long long) rev);
    cJSON *j = raw_post(m, "/v3/kv/compaction", body);
    assert_non_null(j);
    assert_null(cJSON_GetObjectItem(j, "error"));
    cJSON_Delete(j);
}

static bool
healthy(const member *m)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/health", m->cport);
    micro__http_call c;
    memset(&c, 0, sizeof(c));
    c.client = hcli;
    c.url = url;
    bool ok = micro__http_call_wait(&c, 2000) == 0 && c.status == 200 &&
        c.rsp != NULL;
    if (ok) {
        size_t len = 0;
        const char *p = micro_msg_body(c.rsp, &len);
        ok = len > 0 && memmem(p, len, "\"true\"", 6) != NULL;
    }
    micro__http_call_fini(&c);
    return ok;
}

/* ------------------------------------------------------------------ */
/* Servers.                                                             */

static void
member_start(member *m)
{
    char curl[64], purl[64];
    snprintf(curl, sizeof(curl), "http://127.0.0.1:%d", m->cport);
    snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", m->pport);
    char *argv[] = {(char *) etcd_bin, "--name", m->name, "--data-dir",
        m->dir, "--listen-client-urls", curl, "--advertise-client-urls",
        curl, "--listen-peer-urls", purl, "--initial-advertise-peer-urls",
        purl, "--initial-cluster", cluster, "--initial-cluster-token",
        base_dir, "--heartbeat-interval", "10", "--election-timeout", "100",
        "--log-level", "error", "--logger", "zap", "--log-outputs", m->log,
        NULL};
    assert_int_equal(t_proc_spawn(&m->p, etcd_bin, argv), 0);
    m->up = true;
}

static void
member_stop(member *m, int sig)
{
    if (m->up) {
        t_proc_stop(&m->p, sig, 10000);
        m->up = false;
    }
}

/* Wait until every member that is up says it is healthy (it has a
 * leader and answers). */
static void
wait_healthy(void)
{
    int64_t deadline = t_now_ms() + 30000;
    for (size_t i = 0; i < n_mem; i++) {
        while (mem[i].up && !healthy(&mem[i])) {
            if (t_now_ms() > deadline) {
                fail_msg("etcd member %s not healthy within 30 s",
                    mem[i].name);
            }
            t_sleep_ms(50);
        }
    }
}

static void
cluster_start(size_t n)
{
    n_mem = n;
    size_t off = 0, eoff = 0;
    for (size_t i = 0; i < n; i++) {
        member *m = &mem[i];
        memset(m, 0, sizeof(*m));
        snprintf(m->name, sizeof(m->name), "m%zu", i);
        m->cport = t_free_port();
        m->pport = t_free_port();
        snprintf(m->dir, sizeof(m->dir), "%.31s/m%zu", base_dir, i);
        snprintf(m->log, sizeof(m->log), "%.31s/m%zu.log", base_dir, i);
        off += (size_t) snprintf(cluster + off, sizeof(cluster) - off,
            "%s%s=http://127.0.0.1:%d", i ? "," : "", m->name, m->pport);
        eoff += (size_t) snprintf(endpoints + eoff,
            sizeof(endpoints) - eoff, "%s127.0.0.1:%d", i ? "," : "",
            m->cport);
    }
    for (size_t i = 0; i < n; i++) {
        member_start(&mem[i]);
    }
    wait_healthy();
}

static void
cluster_stop(void)
{
    for (size_t i = 0; i < n_mem; i++) {
        member_stop(&mem[i], SIGTERM);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s/m*", base_dir);
    assert_int_equal(system(cmd), 0);
    n_mem = 0;
}

/* ------------------------------------------------------------------ */
/* Registry helpers.                                                    */

/* A registry on addr with a request timeout; user NULL: no auth. */
static micro_registry *
reg_new_full(const char *addr, const char *user, const char *pass,
    int64_t timeout_ms)
{
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    assert_int_equal(micro_options_set_str(o, "registry_address", addr), 0);
    if (user != NULL) {
        assert_int_equal(
            micro_options_set_str(o, "registry_username", user), 0);
        assert_int_equal(
            micro_options_set_str(o, "registry_password", pass), 0);
    }
    assert_int_equal(
        micro_options_set_ms(o, "registry_timeout", timeout_ms), 0);
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new_by_name(&r, "etcd", o), 0);
    micro_options_free(o);
    return r;
}

static micro_registry *
reg_new_auth(const char *addr, const char *user, const char *pass)
{
    return reg_new_full(addr, user, pass, 3000);
}

static micro_registry *
reg_new(const char *addr)
{
    return reg_new_auth(addr, NULL, NULL);
}

static t_recorder rec = {.mu = PTHREAD_MUTEX_INITIALIZER};

static micro_registry *
rec_watch_on(micro_registry *w, uint64_t *tok)
{
    return t_rec_watch(&rec, w, tok);
}

static micro_registry *
rec_watch(const char *addr, uint64_t *tok)
{
    return rec_watch_on(reg_new(addr), tok);
}

/* ------------------------------------------------------------------ */
/* Single-server tests.                                                 */

static int
single_setup(void **state)
{
    (void) state;
    cluster_start(1);
    return 0;
}

static int
single_teardown(void **state)
{
    (void) state;
    cluster_stop();
    return 0;
}

static void
test_crud(void **state)
{
    (void) state;
    micro_registry *r = reg_new(endpoints);
    micro_registry_service s;
    t_svc_make(&s, "go.micro.srv/greeter", "1.0", 2, "node/");
    assert_int_equal(micro_registry_register(r, &s, 10000), 0);

    /* Go Micro's layout: '/' -> '-' in both parts, one node per value. */
    cJSON *j = raw_get(&mem[0], "/micro/registry/go.micro.srv-greeter/node-1");
    assert_non_null(j);
    const cJSON *kv = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "kvs"), 0);
    assert_non_null(kv);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(kv, "lease")));
    micro_buf v = {0};
    const char *b = cJSON_GetObjectItem(kv, "value")->valuestring;
    assert_int_equal(micro__base64_decode(b, strlen(b), &v), 0);
    micro_registry_service one;
    assert_int_equal(micro_registry_service_from_json(
                         (const char *) v.data, v.len, &one), 0);
    assert_string_equal(one.name, "go.micro.srv/greeter");
    assert_int_equal(one.n_nodes, 1);
    assert_string_equal(one.nodes[0].id, "node/1");
    assert_string_equal(micro_metadata_get(&one.metadata, "owner"), "test");
    micro_registry_service_clear(&one);
    micro_buf_clear(&v);
    cJSON_Delete(j);

    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(
        micro_registry_get_service(r, "go.micro.srv/greeter", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].version, "1.0");
    assert_int_equal(out[0].n_nodes, 2);
    assert_int_equal(out[0].n_endpoints, 1);
    assert_string_equal(out[0].endpoints[0].name, "Greeter.Hello");
    micro_registry_services_free(out, n);

    t_reg_crud(r, &s, NULL, 0);
    micro_registry_free(r);
}

static void
test_watch(void **state)
{
    (void) state;
    uint64_t tok = 0;
    micro_registry *w = rec_watch(endpoints, &tok);
    micro_registry *r = reg_new(endpoints);

    micro_registry_service s;
    t_svc_make(&s, "watched", "1", 1, "w-");
    assert_int_equal(micro_registry_register(r, &s, 10000), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "watched", "w-0", SLACK_MS), 1);
    assert_int_equal(micro_metadata_set(&s.nodes[0].metadata, "n", "v2"), 0);
    assert_int_equal(micro_registry_register(r, &s, 10000), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_UPDATE, "watched", "w-0", SLACK_MS), 1);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "watched", "w-0", SLACK_MS), 1);

    /* etcd restarts: the watch comes back by itself and sees what
     * follows. */
    t_rec_reset(&rec);
    member_stop(&mem[0], SIGTERM);
    member_start(&mem[0]);
    wait_healthy();
    assert_int_equal(micro_registry_register(r, &s, 10000), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "watched", "w-0", SLACK_MS), 1);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "watched", "w-0", SLACK_MS), 1);

    t_rec_unwatch(w, tok);
    micro_registry_service_clear(&s);
    micro_registry_free(r);
}

static void
test_ttl_after_kill(void **state)
{
    (void) state;
    micro_registry *r = reg_new(endpoints);
    t_proc child;
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = '\0';
    char *argv[] = {self, "--child", endpoints, NULL};
    assert_int_equal(t_proc_spawn(&child, self, argv), 0);
    assert_int_equal(t_proc_wait_line(&child, "registered", SLACK_MS), 0);
    assert_int_equal(t_count_nodes(r, "doomed", NULL), 1);
    /* While the owner lives, its keeper renews the lease: still there
     * after three TTLs. */
    t_sleep_ms(3 * TTL_MS);
    /* (Polled: on a stalled machine a lease may lapse for a moment
     * before the keeper restores it; without the keeper it stays gone.) */
    assert_true(t_wait_nodes(r, "doomed", 1, SLACK_MS));
    int64_t t0 = t_now_ms();
    t_proc_stop(&child, SIGKILL, 5000);
    assert_true(t_wait_nodes(r, "doomed", 0, TTL_MS + SLACK_MS));
    print_message("record gone %lld ms after SIGKILL (TTL %d ms)\n",
        (long long) (t_now_ms() - t0), TTL_MS);
    micro_registry_free(r);
}

/* A lease revoked behind the registry's back: the keeper notices and
 * registers the node again, with a new lease. */
static void
test_lost_lease(void **state)
{
    (void) state;
    micro_registry *r = reg_new(endpoints);
    micro_registry_service s;
    t_svc_make(&s, "phoenix", "1", 1, "p-");
    assert_int_equal(micro_registry_register(r, &s, TTL_MS), 0);
    cJSON *j = raw_get(&mem[0], "/micro/registry/phoenix/p-0");
    const cJSON *kv = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "kvs"), 0);
    assert_non_null(kv);
    char body[128];
    snprintf(body, sizeof(body), "{\"ID\":\"%s\"}",
        cJSON_GetObjectItem(kv, "lease")->valuestring);
    cJSON_Delete(j);
    cJSON_Delete(raw_post(&mem[0], "/v3/lease/revoke", body));
    assert_int_equal(t_count_nodes(r, "phoenix", NULL), 0);
    assert_true(t_wait_nodes(r, "phoenix", 1, TTL_MS + SLACK_MS));
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    micro_registry_service_clear(&s);
    micro_registry_free(r);
}

/* Registers and deregisters from many threads at once on one registry:
 * different nodes proceed together, one node's operations stay in order,
 * every call succeeds and nothing is left behind. Nodes with one TTL share
 * one lease, and losing it brings all of them back under a new one. */
typedef struct churner {
    micro_registry *r;
    int id;
    int failed;
} churner;

static void *
churn_thread(void *arg)
{
    churner *c = arg;
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "t%d-", c->id);
    micro_registry_service s;
    t_svc_make(&s, "churned", "1", 1, prefix);
    for (int i = 0; i < 25; i++) {
        /* Even threads share node "same-0": its register and deregister
         * race with theirs, serialised per node. */
        if (c->id % 2 == 0) {
            free(s.nodes[0].id);
            s.nodes[0].id = strdup(i % 2 == 0 ? "same-0" : prefix);
        }
        if (micro_registry_register(c->r, &s, 10000) != 0) {
            c->failed++;
        }
        if (micro_registry_deregister(c->r, &s) != 0) {
            c->failed++;
        }
    }
    micro_registry_service_clear(&s);
    return NULL;
}

static void
test_concurrent_and_shared_lease(void **state)
{
    (void) state;
    micro_registry *r = reg_new(endpoints);
    churner cs[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        cs[i] = (churner){r, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, churn_thread, &cs[i]),
            0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(cs[i].failed, 0);
    }
    int rc = 0;
    assert_int_equal(t_count_nodes(r, "churned", &rc), 0);
    assert_int_equal(rc, MICRO_ENOSERVICE);

    /* Two nodes with one TTL: one lease. */
    micro_registry_service s;
    t_svc_make(&s, "shared", "1", 2, "s-");
    assert_int_equal(micro_registry_register(r, &s, TTL_MS), 0);
    char lease[2][32];
    for (int i = 0; i < 2; i++) {
        char key[64];
        snprintf(key, sizeof(key), "/micro/registry/shared/s-%d", i);
        cJSON *j = raw_get(&mem[0], key);
        const cJSON *kv =
            cJSON_GetArrayItem(cJSON_GetObjectItem(j, "kvs"), 0);
        assert_non_null(kv);
        const cJSON *l = cJSON_GetObjectItem(kv, "lease");
        assert_true(cJSON_IsString(l));
        snprintf(lease[i], sizeof(lease[i]), "%s", l->valuestring);
        cJSON_Delete(j);
    }
    assert_string_equal(lease[0], lease[1]);
    /* Revoked behind the registry's back: both keys go, and the keeper
     * puts both again under a new lease. */
    char body[128];
    snprintf(body, sizeof(body), "{\"ID\":\"%s\"}", lease[0]);
    cJSON_Delete(raw_post(&mem[0], "/v3/lease/revoke", body));
    assert_int_equal(t_count_nodes(r, "shared", NULL), 0);
    assert_true(t_wait_nodes(r, "shared", 2, TTL_MS + SLACK_MS));
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    assert_int_equal(t_count_nodes(r, "shared", NULL), 0);
    micro_registry_service_clear(&s);
    micro_registry_free(r);
}

static void
test_garbage_and_huge(void **state)
{
    (void) state;
    micro_registry *r = reg_new(endpoints);
    uint64_t tok = 0;
    micro_registry *w = rec_watch(endpoints, &tok);

    micro_registry_service s;
    t_svc_make(&s, "mixed", "1", 1, "good-");
    assert_int_equal(micro_registry_register(r, &s, 10000), 0);
    raw_put(&mem[0], "/micro/registry/mixed/bad1", "not json at all");
    raw_put(&mem[0], "/micro/registry/mixed/bad2", "{\"name\":5}");
    raw_put(&mem[0], "/micro/registry/mixed/bad3", "");
    raw_put(&mem[0], "/micro/registry/lonely", "{\"name\":\"x\"");
    assert_int_equal(t_count_nodes(r, "mixed", NULL), 1);
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_list_services(r, &out, &n), 0);
    assert_int_equal(n, 1);
    micro_registry_services_free(out, n);

    /* One value holding a record of 10,000 nodes. */
    micro_registry_service big;
    t_svc_make(&big, "huge", "1", 10000, "h-");
    char *json = NULL;
    assert_int_equal(micro_registry_service_to_json(&big, &json), 0);
    int64_t t0 = t_now_ms();
    raw_put(&mem[0], "/micro/registry/huge/all", json);
    assert_int_equal(t_count_nodes(r, "huge", NULL), 10000);
    print_message("get of a 10,000-node record (%zu bytes): %lld ms\n",
        strlen(json), (long long) (t_now_ms() - t0));
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "huge", "h-0", SLACK_MS),
        10000);
    micro__free(json);
    raw_delete(&mem[0], "/micro/registry/huge/all");
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "huge", "h-0", SLACK_MS),
        10000);
    /* The garbage never became an event; the good record did. */
    assert_int_equal(t_count_events(&rec, MICRO_REGISTRY_CREATE, "mixed"), 1);
    raw_delete(&mem[0], "/micro/registry/mixed/bad1");
    raw_delete(&mem[0], "/micro/registry/mixed/bad2");
    raw_delete(&mem[0], "/micro/registry/mixed/bad3");
    raw_delete(&mem[0], "/micro/registry/lonely");
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "mixed", "good-0", SLACK_MS),
        1);
    t_rec_unwatch(w, tok);
    micro_registry_service_clear(&big);
    micro_registry_service_clear(&s);
    micro_registry_free(r);
}

/* A TCP proxy to member 0 that, when told, forwards only the first half of
 * the next piece the server sends and then cuts both connections: a watch
 * response cut in the middle of a chunk. */
typedef struct proxy {
    int lfd;
    int port;
    atomic_bool cut;
    atomic_bool stop;
    atomic_int cuts;
    atomic_int pumps; /* pump threads still running */
    pthread_t th;
} proxy;

typedef struct pump {
    proxy *px;
    int a, b; /* client, server */
} pump;

static void *
pump_main(void *arg)
{
    pump *p = arg;
    char buf[65536];
    struct pollfd fds[2] = {{p->a, POLLIN, 0}, {p->b, POLLIN, 0}};
    while (!atomic_load(&p->px->stop)) {
        if (poll(fds, 2, 100) <= 0) {
            continue;
        }
        int from = (fds[0].revents != 0) ? 0 : 1;
        ssize_t n = read(fds[from].fd, buf, sizeof(buf));
        if (n <= 0) {
            break;
        }
        int to = from == 0 ? p->b : p->a;
        bool cut = false;
        if (from == 1 && n > 1) {
            bool want = true;
            cut = atomic_compare_exchange_strong(&p->px->cut, &want, false);
        }
        if (cut) {
            n /= 2;
        }
        if (write(to, buf, (size_t) n) != n) {
            break;
        }
        if (cut) {
            atomic_fetch_add(&p->px->cuts, 1);
            break;
        }
    }
    close(p->a);
    close(p->b);
    proxy *px = p->px;
    free(p);
    atomic_fetch_sub(&px->pumps, 1);
    return NULL;
}

static void *
proxy_main(void *arg)
{
    proxy *px = arg;
    while (!atomic_load(&px->stop)) {
        struct pollfd pf = {px->lfd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) {
            continue;
        }
        int c = accept(px->lfd, NULL, NULL);
        if (c < 0) {
            continue;
        }
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
            .sin_port = htons((uint16_t) mem[0].cport),
            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (s < 0 || connect(s, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
            close(c);
            if (s >= 0) {
                close(s);
            }
            continue;
        }
        pump *p = malloc(sizeof(*p));
        pthread_t th;
        if (p == NULL) {
            close(c);
            close(s);
            continue;
        }
        *p = (pump){px, c, s};
        atomic_fetch_add(&px->pumps, 1);
        if (pthread_create(&th, NULL, pump_main, p) != 0) {
            atomic_fetch_sub(&px->pumps, 1);
            close(c);
            close(s);
            free(p);
            continue;
        }
        pthread_detach(th);
    }
    return NULL;
}

static void
proxy_start(proxy *px)
{
    atomic_init(&px->cut, false);
    atomic_init(&px->stop, false);
    atomic_init(&px->cuts, 0);
    atomic_init(&px->pumps, 0);
    px->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(px->lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(px->lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    assert_int_equal(listen(px->lfd, 16), 0);
    assert_int_equal(getsockname(px->lfd, (struct sockaddr *) &sa, &len), 0);
    px->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&px->th, NULL, proxy_main, px), 0);
}

static void
proxy_stop(proxy *px)
{
    atomic_store(&px->stop, true);
    pthread_join(px->th, NULL);
    close(px->lfd);
    /* The pumps see stop within a poll (100 ms). */
    int64_t deadline = t_now_ms() + SLACK_MS;
    while (atomic_load(&px->pumps) > 0 && t_now_ms() < deadline) {
        t_sleep_ms(20);
    }
    assert_int_equal(atomic_load(&px->pumps), 0);
}

/* A watch response cut in the middle of a chunk: the watch resumes from
 * the last revision it completed, so the cut event arrives once, whole. */
static void
test_watch_cut_mid_chunk(void **state)
{
    (void) state;
    proxy px;
    proxy_start(&px);
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", px.port);
    uint64_t tok = 0;
    micro_registry *w = rec_watch(addr, &tok);
    micro_registry *r = reg_new(endpoints);
    micro_registry_service a, b;
    t_svc_make(&a, "cut-a", "1", 1, "a-");
    t_svc_make(&b, "cut-b", "1", 1, "b-");
    assert_int_equal(micro_registry_register(r, &a, 0), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "cut-a", "a-0", SLACK_MS), 1);
    atomic_store(&px.cut, true);
    assert_int_equal(micro_registry_register(r, &b, 0), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "cut-b", "b-0", SLACK_MS), 1);
    assert_int_equal(atomic_load(&px.cuts), 1);
    assert_int_equal(t_count_events(&rec, MICRO_REGISTRY_CREATE, "cut-a"), 1);
    assert_int_equal(t_count_events(&rec, MICRO_REGISTRY_CREATE, "cut-b"), 1);
    /* And it goes on. */
    assert_int_equal(micro_registry_deregister(r, &a), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "cut-a", "a-0", SLACK_MS), 1);
    assert_int_equal(micro_registry_deregister(r, &b), 0);
    t_rec_unwatch(w, tok);
    proxy_stop(&px);
    micro_registry_service_clear(&a);
    micro_registry_service_clear(&b);
    micro_registry_free(r);
}

/* An endpoint list whose first entries refuse connections. */
static void
test_unreachable(void **state)
{
    (void) state;
    t_reg_unreachable(reg_new, endpoints);
}

/* An etcd answering errors: a TTL over etcd's limit is refused with an
 * error answer, which is a clear error (and the process goes on). */
static void
test_error_answer(void **state)
{
    (void) state;
    micro_registry *r = reg_new(endpoints);
    micro_registry_service s;
    t_svc_make(&s, "too-long", "1", 1, "t-");
    /* etcd's MaxLeaseTTL is 9,000,000,000 s. */
    assert_int_equal(
        micro_registry_register(r, &s, (int64_t) 9100000000 * 1000),
        MICRO_EREMOTE);
    assert_int_equal(t_count_nodes(r, "too-long", NULL), 0);
    /* The same record with a sane TTL goes in. */
    assert_int_equal(micro_registry_register(r, &s, 10000), 0);
    assert_int_equal(t_count_nodes(r, "too-long", NULL), 1);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    micro_registry_service_clear(&s);
    micro_registry_free(r);
}

static void
raw_ok(const char *path, const char *body)
{
    cJSON *j = raw_post(&mem[0], path, body);
    assert_non_null(j);
    if (cJSON_GetObjectItem(j, "error") != NULL) {
        char *p = cJSON_PrintUnformatted(j);
        fail_msg("%s: %s", path, p);
    }
    cJSON_Delete(j);
}

/* User and password: a token from /v3/auth/authenticate, renewed when
 * etcd forgets it (simple tokens do not survive a restart). Last in its
 * group: auth stays on until the data is removed. */
static void
test_auth(void **state)
{
    (void) state;
    raw_ok("/v3/auth/role/add", "{\"name\":\"root\"}");
    raw_ok("/v3/auth/user/add", "{\"name\":\"root\",\"password\":\"s3cret\"}");
    raw_ok("/v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}");
    raw_ok("/v3/auth/enable", "{}");

    micro_registry *anon = reg_new(endpoints);
    micro_registry *bad = reg_new_auth(endpoints, "root", "wrong");
    /* The first endpoint refuses connections: the token comes from the
     * next. */
    char eps[300];
    snprintf(eps, sizeof(eps), "127.0.0.1:%d,%s", t_free_port(), endpoints);
    micro_registry *r = reg_new_auth(eps, "root", "s3cret");
    int rc = 0;
    t_count_nodes(anon, "guarded", &rc);
    assert_int_equal(rc, MICRO_EREMOTE);
    t_count_nodes(bad, "guarded", &rc);
    assert_int_equal(rc, MICRO_EREMOTE);

    micro_registry_service s;
    t_svc_make(&s, "guarded", "1", 1, "g-");
    uint64_t tok = 0;
    micro_registry *w =
        rec_watch_on(reg_new_auth(endpoints, "root", "s3cret"), &tok);
    assert_int_equal(micro_registry_register(r, &s, TTL_MS), 0);
    assert_int_equal(t_count_nodes(r, "guarded", NULL), 1);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "guarded", "g-0", SLACK_MS), 1);

    /* etcd restarts and forgets every token: each registry gets a new
     * one by itself, and the keeper keeps the lease alive. */
    member_stop(&mem[0], SIGTERM);
    member_start(&mem[0]);
    wait_healthy();
    assert_true(t_wait_nodes(r, "guarded", 1, SLACK_MS));
    t_sleep_ms(2 * TTL_MS);
    assert_true(t_wait_nodes(r, "guarded", 1, SLACK_MS));
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "guarded", "g-0", SLACK_MS), 1);
    assert_int_equal(t_count_nodes(r, "guarded", NULL), 0);
    t_rec_unwatch(w, tok);
    micro_registry_service_clear(&s);
    micro_registry_free(r);
    micro_registry_free(bad);
    micro_registry_free(anon);
}

/* ------------------------------------------------------------------ */
/* Three members.                                                       */

static int
cluster_setup(void **state)
{
    (void) state;
    cluster_start(3);
    return 0;
}

/* The watch's member is frozen while records change and the history is
 * compacted, then killed: the watch resumes on another member, finds its
 * revision compacted, lists again and reports the differences. */
static void
test_compaction(void **state)
{
    (void) state;
    char ep0[32];
    snprintf(ep0, sizeof(ep0), "127.0.0.1:%d", mem[0].cport);
    char eps[300];
    snprintf(eps, sizeof(eps), "%s,%s", ep0, endpoints);
    uint64_t tok = 0;
    micro_registry *w = rec_watch(eps, &tok); /* starts at member 0 */
    char rest[128];
    snprintf(rest, sizeof(rest), "127.0.0.1:%d,127.0.0.1:%d", mem[1].cport,
        mem[2].cport);
    micro_registry *r = reg_new(rest);
    micro_registry_service keep, gone, upd, fresh;
    t_svc_make(&keep, "keep", "1", 1, "k-");
    t_svc_make(&gone, "gone", "1", 1, "g-");
    t_svc_make(&upd, "upd", "1", 1, "u-");
    t_svc_make(&fresh, "fresh", "1", 1, "f-");
    assert_int_equal(micro_registry_register(r, &keep, 0), 0);
    assert_int_equal(micro_registry_register(r, &gone, 0), 0);
    assert_int_equal(micro_registry_register(r, &upd, 0), 0);
    /* The watch is live on member 0 once it reports a change. */
    raw_put(&mem[1], "/micro/registry/probe/p", "{\"name\":\"probe\"}");
    assert_true(t_wait_event(&rec, MICRO_REGISTRY_CREATE, "probe", NULL,
                    SLACK_MS) >= 0);

    kill(mem[0].p.pid, SIGSTOP);
    assert_int_equal(micro_registry_deregister(r, &gone), 0);
    assert_int_equal(micro_metadata_set(&upd.metadata, "v", "2"), 0);
    assert_int_equal(micro_registry_register(r, &upd, 0), 0);
    assert_int_equal(micro_registry_register(r, &fresh, 0), 0);
    int64_t rev = raw_put(&mem[1], "/micro/registry/probe/p",
        "{\"name\":\"probe\"}");
    raw_compact(&mem[1], rev);
    t_rec_reset(&rec);
    member_stop(&mem[0], SIGKILL);

    assert_true(t_wait_event(&rec, MICRO_REGISTRY_DELETE, "gone", "g-0",
                    SLACK_MS) == 1);
    assert_true(t_wait_event(&rec, MICRO_REGISTRY_UPDATE, "upd", "u-0",
                    SLACK_MS) == 1);
    assert_true(t_wait_event(&rec, MICRO_REGISTRY_CREATE, "fresh", "f-0",
                    SLACK_MS) == 1);
    assert_int_equal(t_count_events(&rec, MICRO_REGISTRY_CREATE, "keep"), 0);
    assert_int_equal(t_count_events(&rec, MICRO_REGISTRY_DELETE, "keep"), 0);
    /* And it goes on watching from there. */
    assert_int_equal(micro_registry_deregister(r, &fresh), 0);
    assert_true(t_wait_event(&rec, MICRO_REGISTRY_DELETE, "fresh", "f-0",
                    SLACK_MS) == 1);

    t_rec_unwatch(w, tok);
    assert_int_equal(micro_registry_deregister(r, &keep), 0);
    assert_int_equal(micro_registry_deregister(r, &upd), 0);
    raw_delete(&mem[1], "/micro/registry/probe/p");
    micro_registry_service_clear(&keep);
    micro_registry_service_clear(&gone);
    micro_registry_service_clear(&upd);
    micro_registry_service_clear(&fresh);
    micro_registry_free(r);
    /* Member 0 back for the next test. */
    member_start(&mem[0]);
    wait_healthy();
}

/* One call by name to greeter through cli; 0 when it answered. */
static int
call_greeter(micro_service *cli)
{
    micro_call *call = NULL;
    const char *body = "{\"name\":\"etcd\"}";
    int rc = micro_client_call(micro_service_client(cli), "greeter",
        "Greeter.Hello", body, strlen(body), NULL, &call);
    micro_call_free(call);
    return rc;
}

/* The watch's member freezes (SIGSTOP: it neither answers nor closes):
 * the silent watch is made again, on another member, within 12 request
 * timeouts, and reports what changed meanwhile. */
static void
test_frozen_member(void **state)
{
    (void) state;
    uint64_t tok = 0; /* member 0 first */
    micro_registry *w =
        rec_watch_on(reg_new_full(endpoints, NULL, NULL, 500), &tok);
    char rest[128];
    snprintf(rest, sizeof(rest), "127.0.0.1:%d,127.0.0.1:%d", mem[1].cport,
        mem[2].cport);
    micro_registry *r = reg_new(rest);
    micro_registry_service s;
    t_svc_make(&s, "thawed", "1", 1, "t-");
    kill(mem[0].p.pid, SIGSTOP);
    int64_t t0 = t_now_ms();
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "thawed", "t-0", 2 * SLACK_MS),
        1);
    print_message("event seen %lld ms after the watch's member froze "
                  "(watch idle bound 6000 ms)\n",
        (long long) (t_now_ms() - t0));
    kill(mem[0].p.pid, SIGCONT);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "thawed", "t-0", SLACK_MS), 1);
    t_rec_unwatch(w, tok);
    micro_registry_service_clear(&s);
    micro_registry_free(r);
    wait_healthy();
}

/* Lookups and calls by name go on while a member dies; the whole cluster
 * stops for longer than the TTL (calls go on from the client's cache) and
 * comes back: the registrations come back by themselves. */
static void
test_member_loss_and_outage(void **state)
{
    (void) state;
    micro_registry *r = reg_new(endpoints);
    micro_registry *look = reg_new(endpoints);
    micro_registry_service s;
    t_svc_make(&s, "sturdy", "1", 1, "s-");
    assert_int_equal(micro_registry_register(r, &s, TTL_MS), 0);
    /* A real service on etcd (greeter-server), and a client finding it by
     * name through etcd. */
    char reg_flag[300], gaddr[64];
    snprintf(reg_flag, sizeof(reg_flag), "--registry_address=%s", endpoints);
    const char *const extra[] = {"--registry=etcd", reg_flag,
        "--register_ttl=2s", "--register_interval=1s", NULL};
    t_proc greeter;
    assert_int_equal(t_start_greeter(&greeter, gaddr, sizeof(gaddr), extra),
        0);
    char *cargv[] = {"client", "--registry=etcd", reg_flag, NULL};
    int cargc = 3;
    micro_service *cli = NULL;
    assert_int_equal(micro_service_new(&cli, "etcd.client", &cargc, cargv),
        0);
    assert_true(t_wait_nodes(look, "greeter", 1, SLACK_MS));
    assert_int_equal(call_greeter(cli), 0);

    int failed = 0, failed_calls = 0;
    int64_t t0 = t_now_ms();
    for (int i = 0; i < 200; i++) {
        if (i == 50) {
            member_stop(&mem[0], SIGKILL);
        }
        int rc = 0;
        if (t_count_nodes(look, "sturdy", &rc) != 1) {
            failed++;
            print_message("lookup %d failed: %s\n", i, micro_strerror(rc));
        }
        failed_calls += call_greeter(cli) != 0;
    }
    print_message("200 lookups and calls with a member killed at the 50th: "
                  "%lld ms, %d lookups and %d calls failed\n",
        (long long) (t_now_ms() - t0), failed, failed_calls);
    assert_int_equal(failed, 0);
    assert_int_equal(failed_calls, 0);
    /* Still registered after several TTLs on the two members left. */
    t_sleep_ms(2 * TTL_MS);
    assert_true(t_wait_nodes(look, "sturdy", 1, SLACK_MS));
    assert_true(t_wait_nodes(look, "greeter", 1, SLACK_MS));

    /* The whole cluster down for longer than the TTL: lookups fail
     * clearly, calls go on from the client's cache. */
    for (size_t i = 1; i < 3; i++) {
        member_stop(&mem[i], SIGKILL);
    }
    int rc = 0;
    assert_int_equal(t_count_nodes(look, "sturdy", &rc), 0);
    assert_int_equal(rc, MICRO_ECONNREFUSED);
    int64_t until = t_now_ms() + 2 * TTL_MS;
    int calls = 0;
    while (t_now_ms() < until) {
        failed_calls += call_greeter(cli) != 0;
        calls++;
        t_sleep_ms(50);
    }
    print_message("%d calls by name while etcd was down: %d failed\n", calls,
        failed_calls);
    assert_int_equal(failed_calls, 0);
    for (size_t i = 0; i < 3; i++) {
        member_start(&mem[i]);
    }
    wait_healthy();
    t0 = t_now_ms();
    assert_true(t_wait_nodes(look, "sturdy", 1, SLACK_MS));
    assert_true(t_wait_nodes(look, "greeter", 1, SLACK_MS));
    print_message("registrations back %lld ms after the cluster was\n",
        (long long) (t_now_ms() - t0));
    /* And kept alive from then on. */
    t_sleep_ms(3 * TTL_MS);
    assert_true(t_wait_nodes(look, "sturdy", 1, SLACK_MS));
    assert_true(t_wait_nodes(look, "greeter", 1, SLACK_MS));
    assert_int_equal(call_greeter(cli), 0);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    assert_int_equal(t_count_nodes(look, "sturdy", NULL), 0);
    /* A stopped service deregisters. */
    assert_int_equal(t_proc_stop(&greeter, SIGTERM, 10000), 0);
    assert_int_equal(t_count_nodes(look, "greeter", NULL), 0);
    micro_service_free(cli);
    micro_registry_service_clear(&s);
    micro_registry_free(look);
    micro_registry_free(r);
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        return t_reg_child("etcd", argv[2], TTL_MS);
    }
    etcd_bin = t_etcd_bin();
    if (etcd_bin == NULL) {
        fprintf(stderr, "SKIP: etcd is not installed "
                        "(scripts/install-deps.sh installs etcd-server)\n");
        return 77;
    }
    t_watchdog(280, "etcd_test");
    snprintf(base_dir, sizeof(base_dir), "/tmp/cmicro-etcd-XXXXXX");
    if (mkdtemp(base_dir) == NULL) {
        return 1;
    }
    micro__http_client_cfg cfg;
    micro__http_client_cfg_load(&cfg, NULL);
    cfg.lim.max_body = 64 << 20;
    if (micro_loop_new(&hloop) != 0 ||
        micro__http_client_new(&hcli, hloop, &cfg) != 0) {
        return 1;
    }
    const struct CMUnitTest single[] = {
        cmocka_unit_test(test_crud),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_ttl_after_kill),
        cmocka_unit_test(test_lost_lease),
        cmocka_unit_test(test_concurrent_and_shared_lease),
        cmocka_unit_test(test_garbage_and_huge),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_watch_cut_mid_chunk),
        cmocka_unit_test(test_error_answer),
        cmocka_unit_test(test_auth),
    };
    const struct CMUnitTest three[] = {
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_frozen_member),
        cmocka_unit_test(test_member_loss_and_outage),
    };
    int failed = cmocka_run_group_tests_name("etcd single", single,
        single_setup, single_teardown);
    failed += cmocka_run_group_tests_name("etcd cluster", three,
        cluster_setup, single_teardown);
    micro__http_client_free(hcli);
    micro_loop_free(hloop);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", base_dir);
    if (system(cmd) != 0) {
        failed++;
    }
    return failed;
}
