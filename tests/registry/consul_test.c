/* The Consul registry (src/registry/consul.c) against a real Consul agent
 * (v1.14.8, built from the Go module proxy by scripts/consul.sh) in -dev
 * mode on free loopback ports in a temporary directory: the Go plugin's
 * registration (tags, Meta, TTL check), register / get / list /
 * deregister, watch events, a node filtered once its owner is SIGKILLed
 * (critical check), a registration removed behind the registry's back and
 * restored, the agent stopped longer than the TTL (calls go on from the
 * cache) and started again (a -dev agent forgets everything: services
 * register again by themselves), failover between addresses; and, against
 * a small fake agent on a socket, garbage tags, a 10,000-node answer,
 * answers cut mid-body, error answers and the ACL token header, with the
 * watch keeping its last good state. Exits 77 when the Consul binary is
 * missing. */
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
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "http/client.h"
#include "registry/mdns_internal.h"
#include "support/reg.h"
#include "support/support.h"

#define TTL_MS 2000
/* Generous: the machine may be busy. Upper bounds only. */
#define SLACK_MS 20000

static char consul_bin[512];
static char base_dir[40];
static char agent_addr[32];
static int ports[4]; /* http, serf lan, serf wan, server */
static t_proc agent;
static bool agent_up;

static micro_loop *hloop;
static micro__http_client *hcli;

/* One request to the agent; the body (NUL-terminated, malloc'd) and the
 * status, or NULL when it did not answer. */
static char *
agent_req(const char *method, const char *path, const char *body,
    unsigned *status)
{
    char url[512];
    snprintf(url, sizeof(url), "http://%s%s", agent_addr, path);
    micro__http_call c;
    memset(&c, 0, sizeof(c));
    c.client = hcli;
    c.method = method;
    c.url = url;
    c.body = body;
    c.body_len = body != NULL ? strlen(body) : 0;
    char *out = NULL;
    if (micro__http_call_wait(&c, 10000) == 0 && c.rsp != NULL) {
        size_t len = 0;
        const char *p = micro_msg_body(c.rsp, &len);
        out = calloc(1, len + 1);
        if (out != NULL && len > 0) {
            memcpy(out, p, len);
        }
        if (status != NULL) {
            *status = c.status;
        }
    }
    micro__http_call_fini(&c);
    return out;
}

static cJSON *
agent_json(const char *path)
{
    unsigned st = 0;
    char *b = agent_req("GET", path, NULL, &st);
    cJSON *j = b != NULL && st == 200 ? cJSON_Parse(b) : NULL;
    free(b);
    return j;
}

static void
agent_put_ok(const char *path, const char *body)
{
    unsigned st = 0;
    char *b = agent_req("PUT", path, body, &st);
    if (b == NULL || st != 200) {
        fail_msg("PUT %s: %u %s", path, st, b ? b : "(no answer)");
    }
    free(b);
}

static bool
leader_known(void)
{
    char *b = agent_req("GET", "/v1/status/leader", NULL, NULL);
    bool ok = b != NULL && strlen(b) > 4; /* "\"127.0.0.1:p\"" */
    free(b);
    return ok;
}

static void
agent_start(void)
{
    char hp[8], lp[8], wp[8], sp[8], dir[64];
    snprintf(hp, sizeof(hp), "%d", ports[0]);
    snprintf(lp, sizeof(lp), "%d", ports[1]);
    snprintf(wp, sizeof(wp), "%d", ports[2]);
    snprintf(sp, sizeof(sp), "%d", ports[3]);
    snprintf(dir, sizeof(dir), "%s/data", base_dir);
    char *argv[] = {consul_bin, "agent", "-dev", "-bind", "127.0.0.1",
        "-client", "127.0.0.1", "-http-port", hp, "-dns-port", "-1",
        "-grpc-port", "-1", "-grpc-tls-port", "-1", "-serf-lan-port", lp,
        "-serf-wan-port", wp,
        "-server-port", sp, "-data-dir", dir, "-log-level", "error", NULL};
    assert_int_equal(t_proc_spawn(&agent, consul_bin, argv), 0);
    agent_up = true;
    int64_t deadline = t_now_ms() + 60000;
    while (!leader_known()) {
        if (t_now_ms() > deadline) {
            fail_msg("Consul agent without a leader after 60 s");
        }
        t_sleep_ms(100);
    }
}

static void
agent_stop(void)
{
    if (agent_up) {
        t_proc_stop(&agent, SIGTERM, 20000);
        agent_up = false;
    }
}

/* ------------------------------------------------------------------ */
/* Registry helpers (as in etcd_test.c).                                */

static micro_registry *
reg_new_tok(const char *addr, const char *token)
{
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    assert_int_equal(micro_options_set_str(o, "registry_address", addr), 0);
    assert_int_equal(micro_options_set_ms(o, "registry_timeout", 3000), 0);
    if (token != NULL) {
        assert_int_equal(micro_options_set_str(o, "registry_token", token),
            0);
    }
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new_by_name(&r, "consul", o), 0);
    micro_options_free(o);
    return r;
}

static micro_registry *
reg_new(const char *addr)
{
    return reg_new_tok(addr, NULL);
}

static t_recorder rec = {.mu = PTHREAD_MUTEX_INITIALIZER};

static micro_registry *
rec_watch(const char *addr, uint64_t *tok)
{
    return t_rec_watch(&rec, reg_new(addr), tok);
}

/* ------------------------------------------------------------------ */
/* Against the real agent.                                              */

static int
agent_setup(void **state)
{
    (void) state;
    agent_start();
    return 0;
}

static int
agent_teardown(void **state)
{
    (void) state;
    agent_stop();
    return 0;
}

static bool
has_tag(const cJSON *tags, const char *prefix)
{
    const cJSON *t = NULL;
    cJSON_ArrayForEach(t, tags)
    {
        if (cJSON_IsString(t) &&
            strncmp(t->valuestring, prefix, strlen(prefix)) == 0) {
            return true;
        }
    }
    return false;
}

static void
test_crud(void **state)
{
    (void) state;
    micro_registry *r = reg_new(agent_addr);
    micro_registry_service s;
    t_svc_make(&s, "go.micro.srv.greeter", "1.0", 2, "node-");
    assert_int_equal(micro_registry_register(r, &s, 10000), 0);

    /* What the agent holds is the Go plugin's registration. */
    cJSON *j = agent_json("/v1/agent/service/node-1");
    assert_non_null(j);
    assert_string_equal(
        cJSON_GetObjectItem(j, "Service")->valuestring, "go.micro.srv.greeter");
    assert_string_equal(cJSON_GetObjectItem(j, "Address")->valuestring,
        "10.0.0.1");
    assert_int_equal(cJSON_GetObjectItem(j, "Port")->valueint, 8001);
    const cJSON *tags = cJSON_GetObjectItem(j, "Tags");
    /* zlib's header "78 9c" in hex, as Go's zlib.NewWriter writes it. */
    assert_true(has_tag(tags, "t-789c"));
    assert_true(has_tag(tags, "e-789c"));
    assert_true(has_tag(tags, "v-789c"));
    assert_string_equal(cJSON_GetObjectItem(
                            cJSON_GetObjectItem(j, "Meta"), "n")->valuestring,
        "v");
    cJSON_Delete(j);
    j = agent_json("/v1/agent/checks");
    const cJSON *ck = cJSON_GetObjectItem(j, "service:node-1");
    assert_non_null(ck);
    assert_string_equal(cJSON_GetObjectItem(ck, "Status")->valuestring,
        "passing");
    cJSON_Delete(j);

    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(
        micro_registry_get_service(r, "go.micro.srv.greeter", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].version, "1.0");
    assert_int_equal(out[0].n_nodes, 2);
    assert_int_equal(out[0].n_endpoints, 1);
    assert_string_equal(out[0].endpoints[0].name, "Greeter.Hello");
    assert_string_equal(
        micro_metadata_get(&out[0].endpoints[0].metadata, "stream"), "false");
    assert_string_equal(micro_metadata_get(&out[0].nodes[0].metadata, "n"),
        "v");
    assert_true(strcmp(out[0].nodes[0].address, "10.0.0.0:8000") == 0 ||
        strcmp(out[0].nodes[0].address, "10.0.0.1:8001") == 0);
    micro_registry_services_free(out, n);

    /* The agent lists its own "consul" service, as for Go. */
    static const char *const own[] = {"consul"};
    t_reg_crud(r, &s, own, 1);
    micro_registry_free(r);
}

/* The TTL check stays passing for several TTLs while its owner lives,
 * and the check's fields are Go's. */
static void
test_ttl_check_kept(void **state)
{
    (void) state;
    micro_registry *r = reg_new(agent_addr);
    micro_registry_service s;
    t_svc_make(&s, "kept", "1", 1, "k-");
    assert_int_equal(micro_registry_register(r, &s, TTL_MS), 0);
    t_sleep_ms(3 * TTL_MS);
    assert_true(t_wait_nodes(r, "kept", 1, SLACK_MS));
    cJSON *j = agent_json("/v1/health/checks/kept");
    const cJSON *ck = cJSON_GetArrayItem(j, 0);
    assert_non_null(ck);
    assert_string_equal(cJSON_GetObjectItem(ck, "CheckID")->valuestring,
        "service:k-0");
    assert_string_equal(cJSON_GetObjectItem(ck, "Type")->valuestring, "ttl");
    cJSON_Delete(j);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    micro_registry_service_clear(&s);
    micro_registry_free(r);
}

static void
test_watch(void **state)
{
    (void) state;
    uint64_t tok = 0;
    micro_registry *r = reg_new(agent_addr);
    micro_registry_service pre;
    t_svc_make(&pre, "before", "1", 1, "b-");
    assert_int_equal(micro_registry_register(r, &pre, 0), 0);
    micro_registry *w = rec_watch(agent_addr, &tok);

    micro_registry_service s;
    t_svc_make(&s, "watched", "1", 1, "w-");
    assert_int_equal(micro_registry_register(r, &s, 10000), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "watched", "w-0", SLACK_MS), 1);
    assert_int_equal(micro_metadata_set(&s.nodes[0].metadata, "n", "v2"), 0);
    assert_int_equal(micro_registry_register(r, &s, 10000), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_UPDATE, "watched", "w-0", SLACK_MS), 1);
    /* A second node of a known service. */
    micro_registry_service two;
    t_svc_make(&two, "before", "1", 2, "b-");
    assert_int_equal(micro_registry_register(r, &two, 0), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "before", "b-1", SLACK_MS), 1);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "watched", "w-0", SLACK_MS), 1);
    assert_int_equal(micro_registry_deregister(r, &two), 0);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "before", "b-0", SLACK_MS), 1);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "before", "b-1", SLACK_MS), 1);
    /* What existed before the watch was no event of its own. */
    assert_int_equal(t_count_events(&rec, MICRO_REGISTRY_CREATE, "before"), 1);
    t_rec_unwatch(w, tok);
    micro_registry_service_clear(&s);
    micro_registry_service_clear(&two);
    micro_registry_service_clear(&pre);
    micro_registry_free(r);
}

/* The owner is SIGKILLed: its check turns critical within the TTL and
 * lookups leave the node out. (Consul removes the instance itself only
 * after DeregisterCriticalServiceAfter, 1 min at least.) */
static void
test_ttl_after_kill(void **state)
{
    (void) state;
    micro_registry *r = reg_new(agent_addr);
    uint64_t tok = 0;
    micro_registry *w = rec_watch(agent_addr, &tok);
    t_proc child;
    char self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = '\0';
    char *argv[] = {self, "--child", agent_addr, NULL};
    assert_int_equal(t_proc_spawn(&child, self, argv), 0);
    assert_int_equal(t_proc_wait_line(&child, "registered", SLACK_MS), 0);
    assert_int_equal(t_count_nodes(r, "doomed", NULL), 1);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "doomed", "doomed-1",
            SLACK_MS),
        1);
    t_sleep_ms(3 * TTL_MS);
    assert_true(t_wait_nodes(r, "doomed", 1, SLACK_MS));
    int64_t t0 = t_now_ms();
    t_proc_stop(&child, SIGKILL, 5000);
    assert_true(t_wait_nodes(r, "doomed", 0, TTL_MS + SLACK_MS));
    print_message("node left out %lld ms after SIGKILL (TTL %d ms)\n",
        (long long) (t_now_ms() - t0), TTL_MS);
    /* The watch saw it go. */
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "doomed", "doomed-1",
            SLACK_MS),
        1);
    /* The instance is still in the catalog (critical), as Consul keeps
     * it until DeregisterCriticalServiceAfter. */
    cJSON *j = agent_json("/v1/health/checks/doomed");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "Status")->valuestring,
        "critical");
    cJSON_Delete(j);
    agent_put_ok("/v1/agent/service/deregister/doomed-1", NULL);
    t_rec_unwatch(w, tok);
    micro_registry_free(r);
}

/* A registration removed behind the registry's back comes back. */
static void
test_lost_registration(void **state)
{
    (void) state;
    micro_registry *r = reg_new(agent_addr);
    micro_registry_service s;
    t_svc_make(&s, "phoenix", "1", 1, "p-");
    assert_int_equal(micro_registry_register(r, &s, TTL_MS), 0);
    agent_put_ok("/v1/agent/service/deregister/p-0", NULL);
    assert_int_equal(t_count_nodes(r, "phoenix", NULL), 0);
    assert_true(t_wait_nodes(r, "phoenix", 1, TTL_MS + SLACK_MS));
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    micro_registry_service_clear(&s);
    micro_registry_free(r);
}

/* Instances with garbage tags, registered straight at the agent: they
 * are still nodes (as Go's decoders skip what does not decode), the
 * garbage is skipped, nothing crashes. */
static void
test_garbage_tags(void **state)
{
    (void) state;
    micro_registry *r = reg_new(agent_addr);
    uint64_t tok = 0;
    micro_registry *w = rec_watch(agent_addr, &tok);
    micro_registry_service s;
    t_svc_make(&s, "mixed", "1", 1, "good-");
    assert_int_equal(micro_registry_register(r, &s, 0), 0);
    agent_put_ok("/v1/agent/service/register",
        "{\"ID\":\"bad-1\",\"Name\":\"mixed\",\"Address\":\"10.1.1.1\","
        "\"Port\":9,\"Tags\":[\"e-zz\",\"t-789c00\",\"v-\",\"e={not json\","
        "\"t=[1,2]\",\"x\",\"e\",\"\",\"v-0102\",\"t-\"]}");
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "mixed", "bad-1", SLACK_MS),
        1);
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(r, "mixed", &out, &n), 0);
    size_t nodes = 0;
    for (size_t i = 0; i < n; i++) {
        nodes += out[i].n_nodes;
        if (strcmp(out[i].version, "1") == 0) {
            assert_int_equal(out[i].n_endpoints, 1);
        } else {
            /* No version decoded: Go's "" record, no endpoints. */
            assert_string_equal(out[i].version, "");
            assert_int_equal(out[i].n_endpoints, 0);
            assert_string_equal(out[i].nodes[0].address, "10.1.1.1:9");
        }
    }
    assert_int_equal(nodes, 2);
    micro_registry_services_free(out, n);
    agent_put_ok("/v1/agent/service/deregister/bad-1", NULL);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "mixed", "bad-1", SLACK_MS),
        1);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    t_rec_unwatch(w, tok);
    micro_registry_service_clear(&s);
    micro_registry_free(r);
}

static void
test_unreachable(void **state)
{
    (void) state;
    t_reg_unreachable(reg_new, agent_addr);
}

/* An agent answering errors: a registration Consul refuses (a Meta key
 * it does not allow) is a clear error, and the process goes on. */
static void
test_error_answer(void **state)
{
    (void) state;
    micro_registry *r = reg_new(agent_addr);
    micro_registry_service s;
    t_svc_make(&s, "refused", "1", 1, "r-");
    assert_int_equal(
        micro_metadata_set(&s.nodes[0].metadata, "bad key!", "x"), 0);
    assert_int_equal(micro_registry_register(r, &s, 10000), MICRO_EREMOTE);
    assert_int_equal(t_count_nodes(r, "refused", NULL), 0);
    micro_registry_service ok;
    t_svc_make(&ok, "refused", "1", 1, "r-");
    assert_int_equal(micro_registry_register(r, &ok, 10000), 0);
    assert_int_equal(t_count_nodes(r, "refused", NULL), 1);
    assert_int_equal(micro_registry_deregister(r, &ok), 0);
    micro_registry_service_clear(&s);
    micro_registry_service_clear(&ok);
    micro_registry_free(r);
}

static int
call_greeter(micro_service *cli)
{
    micro_call *call = NULL;
    const char *body = "{\"name\":\"consul\"}";
    int rc = micro_client_call(micro_service_client(cli), "greeter",
        "Greeter.Hello", body, strlen(body), NULL, &call);
    micro_call_free(call);
    return rc;
}

/* A real service (greeter-server) on Consul and a client calling it by
 * name; the agent stops for longer than the TTL (calls go on from the
 * client's cache) and a new -dev agent, which knows nothing, starts on
 * the same ports: the registrations come back by themselves. Last: it
 * restarts the agent. */
static void
test_agent_outage(void **state)
{
    (void) state;
    micro_registry *r = reg_new(agent_addr);
    micro_registry *look = reg_new(agent_addr);
    micro_registry_service s;
    t_svc_make(&s, "sturdy", "1", 1, "s-");
    assert_int_equal(micro_registry_register(r, &s, TTL_MS), 0);
    char reg_flag[300], gaddr[64];
    snprintf(reg_flag, sizeof(reg_flag), "--registry_address=%s", agent_addr);
    const char *const extra[] = {"--registry=consul", reg_flag,
        "--register_ttl=2s", "--register_interval=1s", NULL};
    t_proc greeter;
    assert_int_equal(t_start_greeter(&greeter, gaddr, sizeof(gaddr), extra),
        0);
    char *cargv[] = {"client", "--registry=consul", reg_flag, NULL};
    int cargc = 3;
    micro_service *cli = NULL;
    assert_int_equal(
        micro_service_new(&cli, "consul.client", &cargc, cargv), 0);
    assert_true(t_wait_nodes(look, "greeter", 1, SLACK_MS));
    assert_int_equal(call_greeter(cli), 0);

    agent_stop();
    int rc = 0;
    assert_int_equal(t_count_nodes(look, "sturdy", &rc), 0);
    assert_int_equal(rc, MICRO_ECONNREFUSED);
    int64_t until = t_now_ms() + 2 * TTL_MS;
    int calls = 0, failed_calls = 0;
    while (t_now_ms() < until) {
        failed_calls += call_greeter(cli) != 0;
        calls++;
        t_sleep_ms(50);
    }
    print_message("%d calls by name while Consul was down: %d failed\n",
        calls, failed_calls);
    assert_int_equal(failed_calls, 0);
    agent_start();
    int64_t t0 = t_now_ms();
    assert_true(t_wait_nodes(look, "sturdy", 1, SLACK_MS));
    assert_true(t_wait_nodes(look, "greeter", 1, SLACK_MS));
    print_message("registrations back %lld ms after the agent was\n",
        (long long) (t_now_ms() - t0));
    t_sleep_ms(3 * TTL_MS);
    assert_true(t_wait_nodes(look, "sturdy", 1, SLACK_MS));
    assert_true(t_wait_nodes(look, "greeter", 1, SLACK_MS));
    assert_int_equal(call_greeter(cli), 0);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    assert_int_equal(t_count_nodes(look, "sturdy", NULL), 0);
    assert_int_equal(t_proc_stop(&greeter, SIGTERM, 10000), 0);
    assert_int_equal(t_count_nodes(look, "greeter", NULL), 0);
    micro_service_free(cli);
    micro_registry_service_clear(&s);
    micro_registry_free(look);
    micro_registry_free(r);
}

/* ------------------------------------------------------------------ */
/* A fake agent: answers by path prefix from a table the test changes. */

typedef enum fake_mode {
    FAKE_OK,    /* 200 with the body */
    FAKE_ERROR, /* 500 "internal error" */
    FAKE_CUT,   /* the head and half the body, then close */
    FAKE_JUNK,  /* 200 with a body that is not JSON */
} fake_mode;

typedef struct fake_route {
    char prefix[128];
    char *body; /* malloc'd */
    unsigned long long index;
} fake_route;

typedef struct fake_agent {
    int lfd;
    char addr[32];
    pthread_t th;
    atomic_bool stop;
    pthread_mutex_t mu;
    fake_mode mode;
    fake_route routes[4];
    size_t n_routes;
    char token[128]; /* the last X-Consul-Token seen */
    char *reg_body;  /* the last PUT /v1/agent/service/register body */
    atomic_int requests;
    atomic_int conns; /* connection threads running */
} fake_agent;

typedef struct fake_conn {
    fake_agent *f;
    int fd;
} fake_conn;

/* The client may have gone (a cancelled watch, a cut answer): MSG_NOSIGNAL,
 * so that writing to it is an error here, not a SIGPIPE for the test. */
static void
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t) w;
    }
}

static void *
fake_conn_main(void *arg)
{
    fake_conn *fc = arg;
    fake_agent *f = fc->f;
    char buf[8192];
    size_t have = 0;
    while (!atomic_load(&f->stop)) {
        struct pollfd pf = {fc->fd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) {
            continue;
        }
        ssize_t n = read(fc->fd, buf + have, sizeof(buf) - 1 - have);
        if (n <= 0) {
            break;
        }
        have += (size_t) n;
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL) {
            if (have == sizeof(buf) - 1) {
                break;
            }
            continue;
        }
        /* Requests here carry no body the fake needs; skip it. */
        size_t clen = 0;
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl != NULL && cl < end) {
            clen = strtoul(cl + 17, NULL, 10);
        }
        size_t used = (size_t) (end + 4 - buf) + clen;
        if (used > have) {
            continue; /* the rest of the body is still coming */
        }
        char path[256] = "";
        sscanf(buf, "%*s %255s", path);
        atomic_fetch_add(&f->requests, 1);
        pthread_mutex_lock(&f->mu);
        if (strcmp(path, "/v1/agent/service/register") == 0) {
            free(f->reg_body);
            f->reg_body = strndup(end + 4, clen);
        }
        const char *tk = strcasestr(buf, "\r\nX-Consul-Token:");
        if (tk != NULL && tk < end) {
            tk += 17;
            while (*tk == ' ') {
                tk++;
            }
            size_t tl = strcspn(tk, "\r");
            snprintf(f->token, sizeof(f->token), "%.*s", (int) tl, tk);
        }
        fake_mode mode = f->mode;
        const fake_route *rt = NULL;
        for (size_t i = 0; i < f->n_routes; i++) {
            if (strncmp(path, f->routes[i].prefix,
                    strlen(f->routes[i].prefix)) == 0) {
                rt = &f->routes[i];
                break;
            }
        }
        const char *body = rt != NULL ? rt->body : "[]";
        unsigned long long index = rt != NULL ? rt->index : 1;
        if (mode == FAKE_ERROR) {
            body = "internal error";
        } else if (mode == FAKE_JUNK) {
            body = "<html>not json";
        }
        size_t blen = strlen(body);
        char *copy = malloc(blen + 1);
        memcpy(copy, body, blen + 1);
        pthread_mutex_unlock(&f->mu);
        char head[256];
        int hl = snprintf(head, sizeof(head),
            "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
            "X-Consul-Index: %llu\r\nContent-Length: %zu\r\n\r\n",
            mode == FAKE_ERROR ? "500 Internal Server Error" : "200 OK",
            index, blen);
        write_all(fc->fd, head, (size_t) hl);
        bool cut = mode == FAKE_CUT;
        write_all(fc->fd, copy, cut ? blen / 2 : blen);
        free(copy);
        if (cut) {
            break;
        }
        /* A blocking query: answer at most every 50 ms per connection. */
        if (strstr(path, "index=") != NULL) {
            t_sleep_ms(50);
        }
        memmove(buf, buf + used, have - used);
        have -= used;
    }
    close(fc->fd);
    free(fc);
    atomic_fetch_sub(&f->conns, 1);
    return NULL;
}

static void *
fake_main(void *arg)
{
    fake_agent *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd pf = {f->lfd, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) {
            continue;
        }
        int c = accept(f->lfd, NULL, NULL);
        if (c < 0) {
            continue;
        }
        fake_conn *fc = malloc(sizeof(*fc));
        pthread_t th;
        *fc = (fake_conn){f, c};
        atomic_fetch_add(&f->conns, 1);
        if (pthread_create(&th, NULL, fake_conn_main, fc) != 0) {
            atomic_fetch_sub(&f->conns, 1);
            close(c);
            free(fc);
            continue;
        }
        pthread_detach(th);
    }
    return NULL;
}

static void
fake_start(fake_agent *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    atomic_init(&f->stop, false);
    atomic_init(&f->requests, 0);
    atomic_init(&f->conns, 0);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(f->lfd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    assert_int_equal(listen(f->lfd, 64), 0);
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *) &sa, &len), 0);
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", ntohs(sa.sin_port));
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void
fake_route_set(fake_agent *f, const char *prefix, const char *body,
    unsigned long long index)
{
    pthread_mutex_lock(&f->mu);
    fake_route *rt = NULL;
    for (size_t i = 0; i < f->n_routes; i++) {
        if (strcmp(f->routes[i].prefix, prefix) == 0) {
            rt = &f->routes[i];
        }
    }
    if (rt == NULL) {
        rt = &f->routes[f->n_routes++];
        snprintf(rt->prefix, sizeof(rt->prefix), "%s", prefix);
    }
    free(rt->body);
    rt->body = strdup(body);
    rt->index = index;
    pthread_mutex_unlock(&f->mu);
}

static void
fake_mode_set(fake_agent *f, fake_mode m)
{
    pthread_mutex_lock(&f->mu);
    f->mode = m;
    pthread_mutex_unlock(&f->mu);
}

static void
fake_stop(fake_agent *f)
{
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    close(f->lfd);
    int64_t deadline = t_now_ms() + SLACK_MS;
    while (atomic_load(&f->conns) > 0 && t_now_ms() < deadline) {
        t_sleep_ms(20);
    }
    assert_int_equal(atomic_load(&f->conns), 0);
    for (size_t i = 0; i < f->n_routes; i++) {
        free(f->routes[i].body);
    }
    free(f->reg_body);
    pthread_mutex_destroy(&f->mu);
}

/* A /v1/health/service answer of n instances of name (ids prefix0..),
 * version tag v (the Go plugin's encoding of "1": computed by the
 * registry's own encoder through a real registration is not available
 * here, so the plain "v=" form, which Go's decoder also reads). */
static char *
health_answer(const char *name, size_t n, const char *prefix)
{
    size_t cap = 256 + n * 256;
    char *b = malloc(cap);
    size_t off = (size_t) snprintf(b, cap, "[");
    for (size_t i = 0; i < n; i++) {
        off += (size_t) snprintf(b + off, cap - off,
            "%s{\"Node\":{\"Node\":\"n\",\"Address\":\"10.9.%zu.%zu\"},"
            "\"Service\":{\"ID\":\"%s%zu\",\"Service\":\"%s\",\"Tags\":"
            "[\"v=1\",\"t={\\\"k\\\":\\\"v\\\"}\"],\"Address\":\"\","
            "\"Port\":%zu},\"Checks\":[{\"Status\":\"passing\"}]}",
            i ? "," : "", i / 250, i % 250, prefix, i, name, 1000 + i % 1000);
    }
    snprintf(b + off, cap - off, "]");
    return b;
}

/* A 10,000-node answer; then the agent answers errors, junk and cut
 * bodies: lookups fail clearly, the watch keeps its last good state (no
 * event), and picks up the next good answer. The ACL token goes out as
 * X-Consul-Token. */
static void
test_fake_agent(void **state)
{
    (void) state;
    fake_agent f;
    fake_start(&f);
    fake_route_set(&f, "/v1/catalog/services", "{\"huge\":[]}", 5);
    char *big = health_answer("huge", 10000, "h-");
    fake_route_set(&f, "/v1/health/service/huge", big, 5);
    free(big);
    micro_registry *r = reg_new_tok(f.addr, "s3cr3t-token");
    int64_t t0 = t_now_ms();
    assert_int_equal(t_count_nodes(r, "huge", NULL), 10000);
    print_message("get of a 10,000-node answer: %lld ms\n",
        (long long) (t_now_ms() - t0));
    pthread_mutex_lock(&f.mu);
    assert_string_equal(f.token, "s3cr3t-token");
    pthread_mutex_unlock(&f.mu);
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(r, "huge", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].version, "1");
    /* Node.Address when Service.Address is empty. */
    assert_string_equal(out[0].nodes[0].address, "10.9.0.0:1000");
    assert_string_equal(micro_metadata_get(&out[0].nodes[0].metadata, "k"),
        "v");
    micro_registry_services_free(out, n);

    /* The registration is the Go plugin's: a TTL check with
     * DeregisterCriticalServiceAfter = max(TTL, 1m) + 5 s, Go's duration
     * text, Meta = node metadata, and the version in a v- tag that
     * unpacks (hex, zlib) to the version. */
    micro_registry_service s;
    t_svc_make(&s, "ttl", "1.2.3", 1, "t-");
    assert_int_equal(micro_registry_register(r, &s, 90000), 0);
    pthread_mutex_lock(&f.mu);
    cJSON *reg = f.reg_body != NULL ? cJSON_Parse(f.reg_body) : NULL;
    pthread_mutex_unlock(&f.mu);
    assert_non_null(reg);
    const cJSON *ck = cJSON_GetObjectItem(reg, "Check");
    assert_string_equal(cJSON_GetObjectItem(ck, "TTL")->valuestring, "1m30s");
    assert_string_equal(
        cJSON_GetObjectItem(ck, "DeregisterCriticalServiceAfter")->valuestring,
        "1m35s");
    assert_string_equal(cJSON_GetObjectItem(reg, "ID")->valuestring, "t-0");
    assert_string_equal(cJSON_GetObjectItem(reg, "Address")->valuestring,
        "10.0.0.0");
    assert_int_equal(cJSON_GetObjectItem(reg, "Port")->valueint, 8000);
    assert_string_equal(cJSON_GetObjectItem(
                            cJSON_GetObjectItem(reg, "Meta"), "n")->valuestring,
        "v");
    const cJSON *tag = NULL;
    bool version_seen = false;
    cJSON_ArrayForEach(tag, cJSON_GetObjectItem(reg, "Tags"))
    {
        if (strncmp(tag->valuestring, "v-", 2) == 0) {
            const char *hex = tag->valuestring + 2;
            char *v = NULL;
            size_t vlen = 0;
            assert_int_equal(micro__mdns_txt_decode(&hex, 1, &v, &vlen), 0);
            assert_string_equal(v, "1.2.3");
            micro__free(v);
            version_seen = true;
        }
    }
    assert_true(version_seen);
    cJSON_Delete(reg);
    assert_int_equal(micro_registry_register(r, &s, 2000), 0);
    pthread_mutex_lock(&f.mu);
    reg = cJSON_Parse(f.reg_body);
    pthread_mutex_unlock(&f.mu);
    ck = cJSON_GetObjectItem(reg, "Check");
    assert_string_equal(cJSON_GetObjectItem(ck, "TTL")->valuestring, "2s");
    assert_string_equal(
        cJSON_GetObjectItem(ck, "DeregisterCriticalServiceAfter")->valuestring,
        "1m5s");
    cJSON_Delete(reg);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    micro_registry_service_clear(&s);

    uint64_t tok = 0;
    micro_registry *w = rec_watch(f.addr, &tok);
    /* A node more: one create. */
    big = health_answer("huge", 10001, "h-");
    fake_route_set(&f, "/v1/health/service/huge", big, 6);
    free(big);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_CREATE, "huge", "h-10000", SLACK_MS),
        1);
    assert_int_equal(t_count_events(&rec, MICRO_REGISTRY_CREATE, "huge"), 1);

    /* Bad answers: clear errors, and the watch keeps what it knew. */
    int rc = 0;
    fake_mode_set(&f, FAKE_ERROR);
    t_count_nodes(r, "huge", &rc);
    assert_int_equal(rc, MICRO_EREMOTE);
    fake_mode_set(&f, FAKE_JUNK);
    t_count_nodes(r, "huge", &rc);
    assert_int_equal(rc, MICRO_EPROTO);
    fake_mode_set(&f, FAKE_CUT);
    t_count_nodes(r, "huge", &rc);
    assert_int_equal(rc, MICRO_ECONNRESET);
    int before = atomic_load(&f.requests);
    /* Let the watch meet every kind of bad answer a few times. */
    int64_t deadline = t_now_ms() + SLACK_MS;
    while (atomic_load(&f.requests) < before + 6 && t_now_ms() < deadline) {
        t_sleep_ms(20);
    }
    fake_mode_set(&f, FAKE_ERROR);
    before = atomic_load(&f.requests);
    while (atomic_load(&f.requests) < before + 4 && t_now_ms() < deadline) {
        t_sleep_ms(20);
    }
    fake_mode_set(&f, FAKE_OK);
    /* Back to good answers: a node fewer is one delete, and nothing
     * else happened meanwhile. */
    big = health_answer("huge", 10000, "h-");
    fake_route_set(&f, "/v1/health/service/huge", big, 7);
    free(big);
    assert_int_equal(
        t_wait_event(&rec, MICRO_REGISTRY_DELETE, "huge", "h-10000", SLACK_MS),
        1);
    assert_int_equal(t_count_events(&rec, MICRO_REGISTRY_DELETE, "huge"), 1);
    assert_int_equal(t_count_events(&rec, MICRO_REGISTRY_CREATE, "huge"), 1);
    assert_int_equal(t_count_events(&rec, MICRO_REGISTRY_UPDATE, "huge"), 0);
    /* The service leaves the catalog: every node is deleted. */
    t_rec_reset(&rec);
    fake_route_set(&f, "/v1/catalog/services", "{}", 8);
    fake_route_set(&f, "/v1/health/service/huge", "[]", 8);
    deadline = t_now_ms() + SLACK_MS;
    while (t_count_events(&rec, MICRO_REGISTRY_DELETE, "huge") < 10000 &&
        t_now_ms() < deadline) {
        t_sleep_ms(50);
    }
    assert_int_equal(t_count_events(&rec, MICRO_REGISTRY_DELETE, "huge"),
        512); /* the recorder keeps the first 512 */
    t_rec_unwatch(w, tok);
    micro_registry_free(r);
    fake_stop(&f);
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        return t_reg_child("consul", argv[2], TTL_MS);
    }
    const char *tried = NULL;
    if (t_consul_bin(&tried) == NULL) {
        fprintf(stderr, "SKIP: no Consul agent at %s (scripts/consul.sh "
                        "builds v1.14.8 there; or set MICRO_CONSUL_BIN)\n",
            tried);
        return 77;
    }
    snprintf(consul_bin, sizeof(consul_bin), "%s", tried);
    t_watchdog(580, "consul_test");
    snprintf(base_dir, sizeof(base_dir), "/tmp/cmicro-consul-XXXXXX");
    if (mkdtemp(base_dir) == NULL) {
        return 1;
    }
    for (size_t i = 0; i < 4; i++) {
        ports[i] = t_free_port();
    }
    snprintf(agent_addr, sizeof(agent_addr), "127.0.0.1:%d", ports[0]);
    micro__http_client_cfg cfg;
    micro__http_client_cfg_load(&cfg, NULL);
    cfg.lim.max_body = 64 << 20;
    if (micro_loop_new(&hloop) != 0 ||
        micro__http_client_new(&hcli, hloop, &cfg) != 0) {
        return 1;
    }
    const struct CMUnitTest real[] = {
        cmocka_unit_test(test_crud),
        cmocka_unit_test(test_ttl_check_kept),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_ttl_after_kill),
        cmocka_unit_test(test_lost_registration),
        cmocka_unit_test(test_garbage_tags),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_error_answer),
        cmocka_unit_test(test_agent_outage),
    };
    const struct CMUnitTest fake[] = {
        cmocka_unit_test(test_fake_agent),
    };
    int failed = cmocka_run_group_tests_name("consul agent", real,
        agent_setup, agent_teardown);
    failed += cmocka_run_group_tests_name("consul fake agent", fake, NULL,
        NULL);
    micro__http_client_free(hcli);
    micro_loop_free(hloop);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", base_dir);
    if (system(cmd) != 0) {
        failed++;
    }
    return failed;
}
