/*
 * The multi-host discovery test's client, run by multihost.sh inside
 * host 3 of three network namespaces joined by a bridge. It starts
 * greeter-server on hosts 1 and 2 itself (through `ip netns exec`, so it
 * knows their pids), finds them by name over mDNS, and checks:
 *
 *  1. discovery: both nodes are found by name; round robin spreads calls
 *     evenly over them;
 *  2. SIGKILL of host 1's server (no goodbye): every call still succeeds
 *     (retries + failed-node back-off), and the dead node leaves the
 *     selector's cache within its register TTL (3 s) plus slack;
 *  3. a restarted server is discovered again (its announcement);
 *  4. SIGTERM of host 2's server: its goodbye removes it at once;
 *  5. host 1's link goes down: its node leaves within the TTL while calls
 *     go to host 2; the link comes back: host 1 is discovered again.
 *
 * Usage: multihost IP_BIN GREETER_SERVER NS1 ADDR1 NS2 ADDR2 IFACE
 * (IFACE: host 1's interface name inside NS1).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmicro/micro.h"
#include "selector/selector_internal.h"
#include "support/support.h"

#define TTL_MS 3000
#define SLACK_MS 1500

static const char *ip_bin, *server_bin, *ns[2], *addr[2], *iface;
static micro_registry *reg;
static micro_selector *sel;
static micro_client *cli;
static t_proc srv[2];
static int failures;

static void
say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("[%7.3f] ", (double) (t_now_ms() % 1000000) / 1000.0);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static void
check(bool ok, const char *what)
{
    say("%s: %s", ok ? "ok  " : "FAIL", what);
    if (!ok) {
        failures++;
    }
}

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int
start_server(int h)
{
    char flag[96];
    snprintf(flag, sizeof(flag), "--server_address=%s", addr[h]);
    char *argv[] = { "ip", "netns", "exec", (char *) ns[h],
        (char *) server_bin, flag, "--registry=mdns", "--register_ttl=3s",
        "--log_level=warn", NULL };
    if (t_proc_spawn(&srv[h], ip_bin, argv) != 0 ||
        t_proc_wait_line(&srv[h], "listening on", 10000) != 0) {
        say("could not start greeter-server on %s", ns[h]);
        return -1;
    }
    say("greeter-server %d up on %s (pid %d)", h + 1, addr[h],
        (int) srv[h].pid);
    return 0;
}

/* Which of the two servers' node ids the cache holds: bit h set for
 * host h+1. Node ids are matched by address through a registry lookup
 * made at discovery. */
static char node_id[2][128];

static unsigned
cached(void)
{
    char **ids = NULL;
    size_t n = 0;
    unsigned bits = 0;
    if (micro__selector_cached_ids(sel, "greeter", &ids, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            for (int h = 0; h < 2; h++) {
                if (strcmp(ids[i], node_id[h]) == 0) {
                    bits |= 1u << h;
                }
            }
            free(ids[i]);
        }
        free(ids);
    }
    return bits;
}

/* One call; which host answered (0, 1) or -1 on failure. */
static int
call_once(void)
{
    micro_call *c = NULL;
    static const char body[] = "{\"name\":\"multihost\"}";
    int rc = micro_client_call(cli, "greeter", "Greeter.Hello", body,
        sizeof(body) - 1, NULL, &c);
    int who = -1;
    if (rc == 0) {
        const char *a = micro_call_address(c);
        for (int h = 0; h < 2; h++) {
            if (a != NULL && strcmp(a, addr[h]) == 0) {
                who = h;
            }
        }
    }
    micro_call_free(c);
    return who;
}

/* Call in a loop until cond(bits of the cache) holds or ms pass; count
 * failed calls. Returns the elapsed ms, or -1 on timeout. */
static int64_t
calls_until(bool (*cond)(unsigned), int64_t ms, int *failed, int *hits)
{
    int64_t t0 = t_now_ms();
    while (t_now_ms() - t0 < ms) {
        if (cond(cached())) {
            return t_now_ms() - t0;
        }
        int who = call_once();
        if (who < 0) {
            (*failed)++;
        } else if (hits != NULL) {
            hits[who]++;
        }
        sleep_ms(20);
    }
    return cond(cached()) ? t_now_ms() - t0 : -1;
}

static bool only_h2(unsigned b) { return b == 2u; }
static bool both(unsigned b) { return b == 3u; }

static void
round_robin(const char *when)
{
    int hits[2] = { 0, 0 };
    int failed = 0;
    for (int i = 0; i < 200; i++) {
        int who = call_once();
        if (who < 0) {
            failed++;
        } else {
            hits[who]++;
        }
    }
    char what[160];
    snprintf(what, sizeof(what),
        "%s: round robin over 200 calls: host1 %d, host2 %d, failed %d",
        when, hits[0], hits[1], failed);
    check(failed == 0 && hits[0] >= 90 && hits[1] >= 90, what);
}

static bool
discover_ids(void)
{
    /* The cache must hold both; learn their ids from a lookup. */
    micro_registry_service *svcs = NULL;
    size_t n = 0;
    if (micro_registry_get_service(reg, "greeter", &svcs, &n) != 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < svcs[i].n_nodes; j++) {
            for (int h = 0; h < 2; h++) {
                if (strcmp(svcs[i].nodes[j].address, addr[h]) == 0) {
                    snprintf(node_id[h], sizeof(node_id[h]), "%s",
                        svcs[i].nodes[j].id);
                }
            }
        }
    }
    micro_registry_services_free(svcs, n);
    return node_id[0][0] != '\0' && node_id[1][0] != '\0';
}

static int
link_set(const char *state)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "%s -n %s link set %s %s", ip_bin, ns[0],
        iface, state);
    return system(cmd);
}

int
main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr,
            "usage: %s IP GREETER_SERVER NS1 ADDR1 NS2 ADDR2 IFACE\n",
            argv[0]);
        return 2;
    }
    ip_bin = argv[1];
    server_bin = argv[2];
    ns[0] = argv[3];
    addr[0] = argv[4];
    ns[1] = argv[5];
    addr[1] = argv[6];
    iface = argv[7];
    micro_log_set_level(MICRO_LOG_NOTICE);

    micro_options *o = NULL;
    micro_loop *loop = NULL;
    micro_transport *tr = NULL;
    if (micro_options_new(&o) != 0 ||
        micro_options_set_str(o, "registry", "mdns") != 0 ||
        micro_options_set_str(o, "selector", "roundrobin") != 0 ||
        micro_options_set_ms(o, "client_conn_timeout", 1000) != 0 ||
        micro_options_set_ms(o, "client_dial_timeout", 500) != 0 ||
        micro_loop_new(&loop) != 0 ||
        micro_transport_new_by_name(&tr, "http", loop, o) != 0 ||
        micro_registry_new_by_name(&reg, "mdns", o) != 0 ||
        micro_selector_new_by_name(&sel, "roundrobin", reg, o) != 0 ||
        micro_client_new(&cli, tr, sel, o) != 0) {
        fprintf(stderr, "multihost: setup failed\n");
        return 1;
    }

    int64_t t_start = t_now_ms();
    if (start_server(0) != 0 || start_server(1) != 0) {
        return 1;
    }

    /* 1. Discovery by name, then an even spread. */
    int64_t first = -1;
    while (t_now_ms() - t_start < 10000) {
        if (call_once() >= 0) {
            first = t_now_ms() - t_start;
            break;
        }
        sleep_ms(50);
    }
    check(first >= 0, "a call by name succeeds");
    say("first successful call %lld ms after starting the servers",
        (long long) first);
    bool ids = false;
    for (int i = 0; i < 50 && !ids; i++) {
        ids = discover_ids();
    }
    check(ids, "both nodes are found by name");
    int failed = 0;
    int64_t t = calls_until(both, 5000, &failed, NULL);
    check(t >= 0, "the selector's cache holds both nodes");
    round_robin("discovery");

    /* 2. SIGKILL host 1's server: no goodbye. */
    int64_t killed = t_now_ms();
    kill(srv[0].pid, SIGKILL);
    t_proc_stop(&srv[0], SIGKILL, 2000);
    failed = 0;
    int hits[2] = { 0, 0 };
    t = calls_until(only_h2, TTL_MS + SLACK_MS + 2000, &failed, hits);
    char what[200];
    snprintf(what, sizeof(what),
        "SIGKILL host 1: dead node left the cache after %lld ms "
        "(TTL %d ms + %d ms slack)",
        (long long) t, TTL_MS, SLACK_MS);
    check(t >= 0 && t <= TTL_MS + SLACK_MS, what);
    snprintf(what, sizeof(what),
        "SIGKILL host 1: %d calls meanwhile, %d failed (host2 answered %d)",
        hits[0] + hits[1] + failed, failed, hits[1]);
    check(failed == 0 && hits[1] > 0, what);
    (void) killed;

    /* 3. Host 1 comes back: discovered again through its announcement. */
    if (start_server(0) != 0) {
        return 1;
    }
    node_id[0][0] = '\0';
    ids = false;
    for (int i = 0; i < 50 && !ids; i++) {
        ids = discover_ids();
    }
    failed = 0;
    t = calls_until(both, 8000, &failed, NULL);
    snprintf(what, sizeof(what),
        "restarted host 1 is back in the cache after %lld ms", (long long) t);
    check(ids && t >= 0, what);
    round_robin("after restart");

    /* 4. SIGTERM host 2: its goodbye removes it at once. */
    t_proc_stop(&srv[1], SIGTERM, 5000);
    int64_t term = t_now_ms();
    while (cached() != 1u && t_now_ms() - term < 3000) {
        sleep_ms(5);
    }
    t = t_now_ms() - term;
    snprintf(what, sizeof(what),
        "SIGTERM host 2: goodbye removed it %lld ms after exit",
        (long long) t);
    check(cached() == 1u && t <= 500, what);
    failed = 0;
    for (int i = 0; i < 50; i++) {
        failed += call_once() != 0;
    }
    check(failed == 0, "calls after SIGTERM all go to host 1");

    /* 5. Host 1's link goes down and up; host 2 serves meanwhile. */
    if (start_server(1) != 0) {
        return 1;
    }
    node_id[1][0] = '\0';
    ids = false;
    for (int i = 0; i < 50 && !ids; i++) {
        ids = discover_ids();
    }
    failed = 0;
    t = calls_until(both, 8000, &failed, NULL);
    check(ids && t >= 0, "restarted host 2 is back in the cache");
    check(link_set("down") == 0, "host 1 link down");
    int64_t down = t_now_ms();
    failed = 0;
    memset(hits, 0, sizeof(hits));
    t = calls_until(only_h2, TTL_MS + SLACK_MS + 2000, &failed, hits);
    snprintf(what, sizeof(what),
        "link down: host 1 left the cache after %lld ms; %d calls failed",
        (long long) t, failed);
    check(t >= 0 && t <= TTL_MS + SLACK_MS, what);
    check(link_set("up") == 0, "host 1 link up");
    int64_t up = t_now_ms();
    failed = 0;
    t = calls_until(both, 10000, &failed, NULL);
    snprintf(what, sizeof(what),
        "link up: host 1 rediscovered after %lld ms (down for %lld ms)",
        (long long) t, (long long) (up - down));
    check(t >= 0, what);
    round_robin("after the link came back");

    t_proc_stop(&srv[0], SIGTERM, 5000);
    t_proc_stop(&srv[1], SIGTERM, 5000);
    micro_client_free(cli);
    micro_selector_free(sel);
    micro_registry_free(reg);
    micro_transport_free(tr);
    micro_loop_free(loop);
    micro_options_free(o);
    say("%s: %d failure(s), %lld ms in all", failures ? "FAILED" : "passed",
        failures, (long long) (t_now_ms() - t_start));
    return failures ? 1 : 0;
}
