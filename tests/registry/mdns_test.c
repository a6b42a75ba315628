/*
 * The mDNS registry: two registries in one process find each other over
 * multicast on lo. Both bind 0.0.0.0:5353 with SO_REUSEPORT; the kernel
 * gives every multicast datagram to each of them (checked: a single
 * reuseport socket would get only unicast, which is why responders
 * answer a querier on 5353 by multicast too).
 *
 * The test runs in a private network namespace (unshare(CLONE_NEWNET), so
 * nothing reaches a real network) holding only lo, which it brings up. It
 * skips (77) when it may not create one (not root).
 *
 * IPv6 (ff02::fb). Linux joins ff02::fb on lo but gives lo no route for
 * IPv6 multicast (sendto fails with ENETUNREACH, and a "multicast ff00::/8
 * dev lo" route is turned into a reject route), so the IPv6 cases add
 * "local ff02::fb/128 dev lo table local", which loops the group back
 * through lo to every joined socket, and remove it afterwards. They skip
 * with a message when the kernel has no IPv6 (/proc/sys/net/ipv6) or lo
 * lacks ::1. A veth pair between two namespaces checks a real link.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cmicro/micro.h"
#include "registry/dns.h"
#include "registry/mdns_internal.h"
#include "registry/registry_internal.h"
#include "support/netns.h"

static void
sleep_ms(int64_t ms)
{
    struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* IPv6 on lo, looped back as the header says; false (and why) when this
 * kernel or namespace cannot. */
static bool
ipv6_lo_up(const char *test)
{
    if (access("/proc/sys/net/ipv6", F_OK) != 0) {
        fprintf(stderr, "%s: skipped: no IPv6 in this kernel\n", test);
        return false;
    }
    if (system("ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/128' "
               "&& ip -6 route replace local ff02::fb/128 dev lo table local "
               "2>/dev/null") != 0) {
        fprintf(stderr, "%s: skipped: no ::1 on lo or no ip(8)\n", test);
        return false;
    }
    return true;
}

static void
ipv6_lo_down(void)
{
    (void) !system("ip -6 route del local ff02::fb/128 dev lo table local "
                   "2>/dev/null");
}

/* §5.5's example, byte for byte what Go's json.Marshal writes. */
static const char golden_json[] =
    "{\"Metadata\":{\"broker\":\"http\",\"protocol\":\"mucp\",\"registry\":"
    "\"mdns\",\"server\":\"mucp\",\"transport\":\"http\"},\"Service\":"
    "\"greeter\",\"Version\":\"latest\",\"Endpoints\":[{\"request\":{"
    "\"name\":\"Request\",\"type\":\"Request\",\"values\":[{\"name\":"
    "\"name\",\"type\":\"string\",\"values\":null}]},\"response\":{\"name\":"
    "\"Response\",\"type\":\"Response\",\"values\":[{\"name\":\"msg\","
    "\"type\":\"string\",\"values\":null}]},\"metadata\":{},\"name\":"
    "\"Greeter.Hello\"}]}";

static const char greeter_record[] =
    "{\"name\":\"greeter\",\"version\":\"latest\",\"metadata\":null,"
    "\"endpoints\":[{\"request\":{\"name\":\"Request\",\"type\":\"Request\","
    "\"values\":[{\"name\":\"name\",\"type\":\"string\",\"values\":null}]},"
    "\"response\":{\"name\":\"Response\",\"type\":\"Response\",\"values\":[{"
    "\"name\":\"msg\",\"type\":\"string\",\"values\":null}]},\"metadata\":{},"
    "\"name\":\"Greeter.Hello\"}],\"nodes\":null}";

static void
test_txt_golden(void **state)
{
    (void) state;
    assert_int_equal(strlen(golden_json), 401);

    /* record.c writes the TXT JSON exactly as Go does. */
    micro_registry_service svc;
    assert_int_equal(micro_registry_service_from_json(greeter_record,
                         strlen(greeter_record), &svc),
        0);
    micro_metadata md = { 0 };
    const char *kv[][2] = { { "transport", "http" }, { "broker", "http" },
        { "server", "mucp" }, { "registry", "mdns" },
        { "protocol", "mucp" } };
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(micro_metadata_set(&md, kv[i][0], kv[i][1]), 0);
    }
    char *json = NULL;
    assert_int_equal(micro__registry_mdns_txt_json(svc.name, svc.version,
                         &md, svc.endpoints, svc.n_endpoints, &json),
        0);
    assert_string_equal(json, golden_json);
    free(json);
    micro_metadata_clear(&md);
    micro_registry_service_clear(&svc);

    char **chunks = NULL;
    size_t n = 0;
    assert_int_equal(
        micro__mdns_txt_encode(golden_json, strlen(golden_json), &chunks, &n),
        0);
    assert_int_equal(n, 2);
    assert_int_equal(strlen(chunks[0]), 255);
    assert_int_equal(strlen(chunks[1]), 151);
    assert_memory_equal(chunks[0], "789c8d90316ec330", 16);
    for (size_t i = 0; i < n; i++) {
        for (const char *p = chunks[i]; *p != '\0'; p++) {
            assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
        }
    }
    char *back = NULL;
    size_t len = 0;
    assert_int_equal(micro__mdns_txt_decode((const char *const *) chunks, n,
                         &back, &len),
        0);
    assert_int_equal(len, strlen(golden_json));
    assert_string_equal(back, golden_json);
    free(back);

    /* Upper-case hex decodes too (Go's hex.DecodeString); odd length and
     * bad digits do not. */
    for (size_t i = 0; i < n; i++) {
        for (char *p = chunks[i]; *p != '\0'; p++) {
            if (*p >= 'a' && *p <= 'f') {
                *p = (char) (*p - 'a' + 'A');
            }
        }
    }
    assert_int_equal(micro__mdns_txt_decode((const char *const *) chunks, n,
                         &back, &len),
        0);
    assert_string_equal(back, golden_json);
    free(back);
    chunks[1][150] = '\0';
    assert_int_equal(micro__mdns_txt_decode((const char *const *) chunks, n,
                         &back, &len),
        MICRO_ECODEC);
    chunks[1][0] = 'x';
    chunks[1][149] = '\0';
    assert_int_equal(micro__mdns_txt_decode((const char *const *) chunks, n,
                         &back, &len),
        MICRO_ECODEC);
    micro__mdns_txt_free(chunks, n);
}

/* ------------------------------------------------------------------ */

typedef struct rec_event {
    micro_registry_action action;
    char *name;
    char *id;
    char *addr;
    int64_t at;
} rec_event;

typedef struct recorder {
    pthread_mutex_t mu;
    rec_event ev[256];
    size_t n;
} recorder;

static void
on_event(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    recorder *r = arg;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < svc->n_nodes && r->n < 256; i++) {
        rec_event *e = &r->ev[r->n++];
        e->action = action;
        e->name = strdup(svc->name);
        e->id = strdup(svc->nodes[i].id);
        e->addr = strdup(svc->nodes[i].address);
        e->at = now_ms();
    }
    pthread_mutex_unlock(&r->mu);
}

static void
recorder_clear(recorder *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->ev[i].name);
        free(r->ev[i].id);
        free(r->ev[i].addr);
    }
    r->n = 0;
}

/* The time of the first event (action, id) at or after index from, or -1
 * after waiting up to ms. */
static int64_t
wait_event(recorder *r, micro_registry_action action, const char *id, int ms)
{
    int64_t deadline = now_ms() + ms;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        for (size_t i = 0; i < r->n; i++) {
            if (r->ev[i].action == action && strcmp(r->ev[i].id, id) == 0) {
                int64_t at = r->ev[i].at;
                pthread_mutex_unlock(&r->mu);
                return at;
            }
        }
        pthread_mutex_unlock(&r->mu);
        if (now_ms() > deadline) {
            return -1;
        }
        sleep_ms(20);
    }
}

/* greeter v1 with nodes n1 (127.0.0.1:10001) and n2 (127.0.0.1:10002),
 * node metadata, and two endpoints. */
static void
make_greeter(micro_registry_service *s)
{
    assert_int_equal(micro_registry_service_from_json(greeter_record,
                         strlen(greeter_record), s),
        0);
    free(s->version);
    s->version = strdup("v1");
    micro_endpoint *eps = realloc(s->endpoints, 2 * sizeof(*eps));
    assert_non_null(eps);
    s->endpoints = eps;
    memset(&eps[1], 0, sizeof(eps[1]));
    eps[1].name = strdup("Greeter.Stream");
    assert_int_equal(micro_metadata_set(&eps[1].metadata, "stream", "true"), 0);
    s->n_endpoints = 2;
    assert_int_equal(micro_metadata_set(&s->metadata, "svc", "dropped"), 0);
    s->nodes = calloc(2, sizeof(micro_node));
    s->n_nodes = 2;
    for (int i = 0; i < 2; i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "n%d", i + 1);
        s->nodes[i].id = strdup(buf);
        snprintf(buf, sizeof(buf), "127.0.0.1:%d", 10001 + i);
        s->nodes[i].address = strdup(buf);
        snprintf(buf, sizeof(buf), "value <%d> & more", i + 1);
        assert_int_equal(
            micro_metadata_set(&s->nodes[i].metadata, "key", buf), 0);
        assert_int_equal(
            micro_metadata_set(&s->nodes[i].metadata, "registry", "mdns"), 0);
    }
}

static const micro_node *
find_node(const micro_registry_service *svcs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < svcs[i].n_nodes; j++) {
            if (strcmp(svcs[i].nodes[j].id, id) == 0) {
                return &svcs[i].nodes[j];
            }
        }
    }
    return NULL;
}

static void
check_found(const micro_registry_service *svcs, size_t n)
{
    assert_int_equal(n, 1);
    const micro_registry_service *s = &svcs[0];
    assert_string_equal(s->name, "greeter");
    assert_string_equal(s->version, "v1");
    assert_null(micro_metadata_get(&s->metadata, "svc")); /* not carried */
    assert_int_equal(s->n_endpoints, 2);
    assert_string_equal(s->endpoints[0].name, "Greeter.Hello");
    assert_non_null(s->endpoints[0].request);
    assert_string_equal(s->endpoints[0].request->name, "Request");
    assert_int_equal(s->endpoints[0].request->n_values, 1);
    assert_string_equal(s->endpoints[0].request->values[0].name, "name");
    assert_string_equal(s->endpoints[0].response->values[0].name, "msg");
    assert_string_equal(s->endpoints[1].name, "Greeter.Stream");
    assert_string_equal(
        micro_metadata_get(&s->endpoints[1].metadata, "stream"), "true");
    for (int i = 0; i < 2; i++) {
        char id[8];
        char addr[32];
        char val[32];
        snprintf(id, sizeof(id), "n%d", i + 1);
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", 10001 + i);
        snprintf(val, sizeof(val), "value <%d> & more", i + 1);
        const micro_node *node = find_node(svcs, n, id);
        assert_non_null(node);
        assert_string_equal(node->address, addr);
        assert_string_equal(micro_metadata_get(&node->metadata, "key"), val);
        assert_string_equal(
            micro_metadata_get(&node->metadata, "registry"), "mdns");
    }
}

static micro_registry *
new_mdns(void)
{
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new(&r, &micro_registry_mdns_ops, NULL), 0);
    assert_string_equal(micro_registry_name(r), "mdns");
    return r;
}

static void
test_two_registries(void **state)
{
    (void) state;
    micro_registry *a = new_mdns();
    micro_registry *b = new_mdns();
    recorder rec = { .mu = PTHREAD_MUTEX_INITIALIZER };
    uint64_t tok = 0;
    assert_int_equal(micro_registry_watch(b, on_event, &rec, &tok), 0);

    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(b, "greeter", &out, &n),
        MICRO_ENOSERVICE);

    micro_registry_service svc;
    make_greeter(&svc);
    int64_t t0 = now_ms();
    assert_int_equal(micro_registry_register(a, &svc, 60000), 0);

    /* B finds both nodes, intact, within 1 s. */
    bool both = false;
    while (!both && now_ms() - t0 < 1000) {
        int rc = micro_registry_get_service(b, "greeter", &out, &n);
        if (rc == 0) {
            both = find_node(out, n, "n1") != NULL &&
                   find_node(out, n, "n2") != NULL;
            if (both) {
                check_found(out, n);
            }
            micro_registry_services_free(out, n);
        }
    }
    assert_true(both);

    /* A finds itself; list includes greeter on both. */
    assert_int_equal(micro_registry_get_service(a, "greeter", &out, &n), 0);
    check_found(out, n);
    micro_registry_services_free(out, n);
    assert_int_equal(micro_registry_list_services(b, &out, &n), 0);
    bool listed = false;
    for (size_t i = 0; i < n; i++) {
        listed |= strcmp(out[i].name, "greeter") == 0;
    }
    micro_registry_services_free(out, n);
    assert_true(listed);

    /* B's watch saw both created (from A's announcement). */
    assert_true(wait_event(&rec, MICRO_REGISTRY_CREATE, "n1", 2000) >= 0);
    assert_true(wait_event(&rec, MICRO_REGISTRY_CREATE, "n2", 2000) >= 0);

    /* Re-registering is accepted and changes nothing visible. */
    assert_int_equal(micro_registry_register(a, &svc, 60000), 0);

    /* Deregister n1: its goodbye reaches B's watch, and B no longer
     * resolves it. */
    micro_registry_service one = { 0 };
    one.name = svc.name;
    one.version = svc.version;
    one.nodes = &svc.nodes[0];
    one.n_nodes = 1;
    assert_int_equal(micro_registry_deregister(a, &one), 0);
    assert_true(wait_event(&rec, MICRO_REGISTRY_DELETE, "n1", 2000) >= 0);
    assert_true(wait_event(&rec, MICRO_REGISTRY_DELETE, "n2", 0) < 0);
    assert_int_equal(micro_registry_get_service(b, "greeter", &out, &n), 0);
    assert_null(find_node(out, n, "n1"));
    assert_non_null(find_node(out, n, "n2"));
    micro_registry_services_free(out, n);

    /* Not ip:port: refused, as Go refuses it. */
    micro_registry_service bad;
    make_greeter(&bad);
    free(bad.nodes[1].address);
    bad.nodes[1].address = strdup("localhost:8080");
    assert_int_equal(micro_registry_register(a, &bad, 0), MICRO_EINVAL);
    free(bad.nodes[1].address);
    bad.nodes[1].address = strdup("127.0.0.1");
    assert_int_equal(micro_registry_register(a, &bad, 0), MICRO_EINVAL);
    micro_registry_service_clear(&bad);

    micro_registry_unwatch(b, tok);
    micro_registry_free(a);
    micro_registry_free(b);
    micro_registry_service_clear(&svc);
    recorder_clear(&rec);
}

/* A node heard once with TTL 2 s and never again is deleted when its TTL
 * runs out (B's refresh queries at 80% and 90% go unanswered). */
static void
test_ttl_expiry(void **state)
{
    (void) state;
    micro_registry *b = new_mdns();
    recorder rec = { .mu = PTHREAD_MUTEX_INITIALIZER };
    uint64_t tok = 0;
    assert_int_equal(micro_registry_watch(b, on_event, &rec, &tok), 0);

    micro_registry_service svc;
    make_greeter(&svc);
    free(svc.name);
    svc.name = strdup("ttlsvc");
    uint8_t *wire = NULL;
    size_t len = 0;
    assert_int_equal(
        micro__mdns_build_response(&svc, 0, "testhost.", 2, &wire, &len), 0);

    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct in_addr lo;
    lo.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(
        setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof(lo)), 0);
    struct sockaddr_in group;
    memset(&group, 0, sizeof(group));
    group.sin_family = AF_INET;
    group.sin_port = htons(5353);
    inet_pton(AF_INET, "224.0.0.251", &group.sin_addr);
    int64_t sent = now_ms();
    assert_int_equal(sendto(fd, wire, len, 0, (struct sockaddr *) &group,
                         sizeof(group)),
        (ssize_t) len);
    close(fd);
    free(wire);

    int64_t created = wait_event(&rec, MICRO_REGISTRY_CREATE, "n1", 1000);
    assert_true(created >= 0);
    int64_t deleted = wait_event(&rec, MICRO_REGISTRY_DELETE, "n1", 4000);
    assert_true(deleted >= 0);
    assert_true(deleted - sent >= 1800);
    assert_true(deleted - sent <= 3200);
    pthread_mutex_lock(&rec.mu);
    for (size_t i = 0; i < rec.n; i++) {
        if (strcmp(rec.ev[i].id, "n1") == 0) {
            assert_string_equal(rec.ev[i].name, "ttlsvc");
            assert_string_equal(rec.ev[i].addr, "127.0.0.1:10001");
        }
    }
    pthread_mutex_unlock(&rec.mu);

    micro_registry_unwatch(b, tok);
    micro_registry_free(b);
    micro_registry_service_clear(&svc);
    recorder_clear(&rec);
}

/* A goodbye heard for a node the watcher never saw still gives one delete
 * (Go's watcher reports every goodbye); repeats of it give none. */
static void
test_goodbye_once(void **state)
{
    (void) state;
    micro_registry *b = new_mdns();
    recorder rec = { .mu = PTHREAD_MUTEX_INITIALIZER };
    uint64_t tok = 0;
    assert_int_equal(micro_registry_watch(b, on_event, &rec, &tok), 0);
    micro_registry_service svc;
    make_greeter(&svc);
    uint8_t *wire = NULL;
    size_t len = 0;
    assert_int_equal(
        micro__mdns_build_response(&svc, 1, "testhost.", 0, &wire, &len), 0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct in_addr lo;
    lo.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof(lo));
    struct sockaddr_in group;
    memset(&group, 0, sizeof(group));
    group.sin_family = AF_INET;
    group.sin_port = htons(5353);
    inet_pton(AF_INET, "224.0.0.251", &group.sin_addr);
    for (int i = 0; i < 3; i++) {
        sendto(fd, wire, len, 0, (struct sockaddr *) &group, sizeof(group));
    }
    close(fd);
    free(wire);
    assert_true(wait_event(&rec, MICRO_REGISTRY_DELETE, "n2", 1000) >= 0);
    sleep_ms(200);
    pthread_mutex_lock(&rec.mu);
    assert_int_equal(rec.n, 1);
    pthread_mutex_unlock(&rec.mu);
    micro_registry_unwatch(b, tok);
    micro_registry_free(b);
    micro_registry_service_clear(&svc);
    recorder_clear(&rec);
}

/* A node A serves is heard once with a 2 s TTL; B asks again at 80% of
 * it, A answers (TTL 120), and B keeps the node. */
static void
test_refresh_keeps_live_node(void **state)
{
    (void) state;
    micro_registry *a = new_mdns();
    micro_registry *b = new_mdns();
    micro_registry_service svc;
    make_greeter(&svc);
    free(svc.name);
    svc.name = strdup("livesvc");
    assert_int_equal(micro_registry_register(a, &svc, 0), 0);
    sleep_ms(3500); /* A's own announcements (0, 1 s, 3 s) are over */

    recorder rec = { .mu = PTHREAD_MUTEX_INITIALIZER };
    uint64_t tok = 0;
    assert_int_equal(micro_registry_watch(b, on_event, &rec, &tok), 0);
    uint8_t *wire = NULL;
    size_t len = 0;
    assert_int_equal(
        micro__mdns_build_response(&svc, 0, "testhost.", 2, &wire, &len), 0);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct in_addr lo;
    lo.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &lo, sizeof(lo));
    struct sockaddr_in group;
    memset(&group, 0, sizeof(group));
    group.sin_family = AF_INET;
    group.sin_port = htons(5353);
    inet_pton(AF_INET, "224.0.0.251", &group.sin_addr);
    sendto(fd, wire, len, 0, (struct sockaddr *) &group, sizeof(group));
    close(fd);
    free(wire);
    assert_true(wait_event(&rec, MICRO_REGISTRY_CREATE, "n1", 1000) >= 0);
    assert_true(wait_event(&rec, MICRO_REGISTRY_DELETE, "n1", 3500) < 0);

    micro_registry_unwatch(b, tok);
    micro_registry_free(a);
    micro_registry_free(b);
    micro_registry_service_clear(&svc);
    recorder_clear(&rec);
}

/* Does /proc/net/igmp (this namespace) show 224.0.0.251 on dev? */
static bool
igmp_joined(const char *dev)
{
    FILE *f = fopen("/proc/net/igmp", "r");
    if (f == NULL) {
        return false;
    }
    char line[256];
    bool in_dev = false;
    bool found = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (line[0] != '\t' && line[0] != ' ') {
            char name[64] = "";
            /* "Idx\tDevice    : Count Querier" then "3\td0        :..." */
            in_dev = sscanf(line, "%*d %63s", name) == 1 &&
                     strcmp(name, dev) == 0;
        } else if (in_dev && strstr(line, "FB0000E0") != NULL) {
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* Wait up to ms for dev to have its carrier (IFF_RUNNING), as this
 * namespace sees it (sysfs would show the namespace it was mounted in). */
static bool
wait_carrier(const char *dev, int ms)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        return false;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
    int64_t t0 = now_ms();
    bool up = false;
    do {
        if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 &&
            (ifr.ifr_flags & IFF_RUNNING) != 0) {
            up = true;
            break;
        }
        sleep_ms(10);
    } while (now_ms() - t0 < ms);
    close(fd);
    return up;
}

/* Does /proc/net/igmp6 (this namespace) show ff02::fb on dev? */
static bool
igmp6_joined(const char *dev)
{
    FILE *f = fopen("/proc/net/igmp6", "r");
    if (f == NULL) {
        return false;
    }
    char line[256];
    bool found = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        char name[64] = "";
        char group[64] = "";
        /* "1    lo    ff0200000000000000000000000000fb     2 ..." */
        if (sscanf(line, "%*d %63s %63s", name, group) == 2 &&
            strcmp(name, dev) == 0 &&
            strcmp(group, "ff0200000000000000000000000000fb") == 0) {
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* A new interface is joined within a re-scan; a removed one forgotten. */
static void
test_follows_interfaces(void **state)
{
    (void) state;
    micro_registry *a = new_mdns();
    /* Sockets open on first use: a lookup starts them. */
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(a, "nobody", &out, &n),
        MICRO_ENOSERVICE);
    assert_true(igmp_joined("lo"));
    if (system("ip link add mdt0 type veth peer name mdt1 2>/dev/null && "
               "ip addr add 10.77.0.1/24 dev mdt0 && ip link set mdt1 up && "
               "ip link set mdt0 up") != 0) {
        micro_registry_free(a);
        skip(); /* no ip(8) or no veth support */
    }
    int64_t t0 = now_ms();
    while (!igmp_joined("mdt0") && now_ms() - t0 < 5000) {
        sleep_ms(100);
    }
    assert_true(igmp_joined("mdt0"));
    if (access("/proc/sys/net/ipv6", F_OK) == 0) {
        /* The veth's link-local address: ff02::fb is joined too. */
        while (!igmp6_joined("mdt0") && now_ms() - t0 < 5000) {
            sleep_ms(100);
        }
        assert_true(igmp6_joined("mdt0"));
        assert_true(igmp6_joined("lo"));
    }
    assert_int_equal(system("ip link del mdt0"), 0);
    micro_registry_free(a);
}


/* The registration TTL is the records' TTL: a node registered with
 * ttl 2 s stays while its process answers the refresh queries, and
 * leaves peers' watch within ~2 s of a SIGKILL (no goodbye). */
static void
test_register_ttl_kill(void **state)
{
    (void) state;
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        micro_registry *a = NULL;
        if (micro_registry_new(&a, &micro_registry_mdns_ops, NULL) != 0) {
            _exit(1);
        }
        micro_registry_service svc;
        make_greeter(&svc);
        free(svc.name);
        svc.name = strdup("killsvc");
        if (micro_registry_register(a, &svc, 2000) != 0) {
            _exit(1);
        }
        char c = 1;
        if (write(ready[1], &c, 1) != 1) {
            _exit(1);
        }
        for (;;) {
            pause();
        }
    }
    close(ready[1]);
    micro_registry *b = new_mdns();
    recorder rec = { .mu = PTHREAD_MUTEX_INITIALIZER };
    uint64_t tok = 0;
    assert_int_equal(micro_registry_watch(b, on_event, &rec, &tok), 0);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    close(ready[0]);
    /* Learned (announcement or lookup), and kept past two TTLs. */
    micro_registry_service *out = NULL;
    size_t n = 0;
    int64_t t0 = now_ms();
    int rc = MICRO_ENOSERVICE;
    while (rc != 0 && now_ms() - t0 < 2000) {
        rc = micro_registry_get_service(b, "killsvc", &out, &n);
    }
    assert_int_equal(rc, 0);
    micro_registry_services_free(out, n);
    assert_true(wait_event(&rec, MICRO_REGISTRY_CREATE, "n1", 1000) >= 0);
    assert_true(wait_event(&rec, MICRO_REGISTRY_DELETE, "n1", 4500) < 0);

    int64_t killed = now_ms();
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    int64_t deleted = wait_event(&rec, MICRO_REGISTRY_DELETE, "n1", 4000);
    assert_true(deleted >= 0);
    assert_true(deleted - killed <= 2600);
    assert_int_equal(micro_registry_get_service(b, "killsvc", &out, &n),
        MICRO_ENOSERVICE);
    micro_registry_unwatch(b, tok);
    micro_registry_free(b);
    recorder_clear(&rec);
}

/* registry_interfaces: only the named interfaces are joined. */
static void
test_interfaces_option(void **state)
{
    (void) state;
    if (system("ip link add mdt2 type veth peer name mdt3 2>/dev/null && "
               "ip addr add 10.77.1.1/24 dev mdt2 && ip link set mdt3 up && "
               "ip link set mdt2 up") != 0) {
        skip();
    }
    /* A veth gets its carrier after both ends are up, asynchronously (the
     * kernel's link watch, later on a loaded machine); only a running
     * interface is joined, so wait for it before the first use. */
    assert_true(wait_carrier("mdt2", 10000));
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    assert_int_equal(
        micro_options_set_str(o, "registry_interfaces", "mdt2"), 0);
    micro_registry *a = NULL;
    assert_int_equal(micro_registry_new(&a, &micro_registry_mdns_ops, o), 0);
    micro_options_free(o);
    /* Nothing is joined (or sent) before the first use. */
    assert_false(igmp_joined("mdt2"));
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_list_services(a, &out, &n), 0);
    micro_registry_services_free(out, n);
    assert_true(igmp_joined("mdt2"));
    assert_false(igmp_joined("lo"));
    if (access("/proc/sys/net/ipv6", F_OK) == 0) {
        assert_false(igmp6_joined("lo"));
    }
    micro_registry_free(a);
    assert_int_equal(system("ip link del mdt2"), 0);
}

static micro_registry *
new_mdns_ipv6(const char *mode)
{
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    assert_int_equal(micro_options_set_str(o, "registry_ipv6", mode), 0);
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new(&r, &micro_registry_mdns_ops, o), 0);
    micro_options_free(o);
    return r;
}

/* greeter (as make_greeter) renamed name, node n1 at addr1, n2 at addr2. */
static void
make_named(micro_registry_service *s, const char *name, const char *addr1,
    const char *addr2)
{
    make_greeter(s);
    free(s->name);
    s->name = strdup(name);
    free(s->nodes[0].address);
    s->nodes[0].address = strdup(addr1);
    free(s->nodes[1].address);
    s->nodes[1].address = strdup(addr2);
}

/* Poll get_service until node id shows up with address want (1.5 s). */
static bool
resolves(micro_registry *r, const char *svc, const char *id, const char *want)
{
    int64_t t0 = now_ms();
    while (now_ms() - t0 < 1500) {
        micro_registry_service *out = NULL;
        size_t n = 0;
        if (micro_registry_get_service(r, svc, &out, &n) == 0) {
            const micro_node *node = find_node(out, n, id);
            bool ok = node != NULL && strcmp(node->address, want) == 0;
            if (node != NULL && !ok) {
                fprintf(stderr, "%s/%s: got %s, want %s\n", svc, id,
                    node->address, want);
            }
            micro_registry_services_free(out, n);
            if (ok) {
                return true;
            }
        }
    }
    return false;
}

/* A node at an IPv6 address is served with AAAA and found as "[ip]:port"
 * by a second registry (both families on). */
static void
test_ipv6_node(void **state)
{
    (void) state;
    if (!ipv6_lo_up("test_ipv6_node")) {
        skip();
    }
    micro_registry *a = new_mdns();
    micro_registry *b = new_mdns();
    recorder rec = { .mu = PTHREAD_MUTEX_INITIALIZER };
    uint64_t tok = 0;
    assert_int_equal(micro_registry_watch(b, on_event, &rec, &tok), 0);
    micro_registry_service svc;
    make_named(&svc, "greeter6", "[::1]:10001", "127.0.0.1:10002");
    assert_int_equal(micro_registry_register(a, &svc, 60000), 0);
    assert_true(resolves(b, "greeter6", "n1", "[::1]:10001"));
    assert_true(resolves(b, "greeter6", "n2", "127.0.0.1:10002"));
    assert_true(resolves(a, "greeter6", "n1", "[::1]:10001"));
    assert_true(wait_event(&rec, MICRO_REGISTRY_CREATE, "n1", 2000) >= 0);
    pthread_mutex_lock(&rec.mu);
    for (size_t i = 0; i < rec.n; i++) {
        if (strcmp(rec.ev[i].id, "n1") == 0) {
            assert_string_equal(rec.ev[i].addr, "[::1]:10001");
        }
    }
    pthread_mutex_unlock(&rec.mu);
    micro_registry_unwatch(b, tok);
    micro_registry_free(a);
    micro_registry_free(b);
    micro_registry_service_clear(&svc);
    recorder_clear(&rec);
    ipv6_lo_down();
}

/* registry_ipv6=only: no IPv4 socket or group, and discovery, listing,
 * watch and goodbyes all work over ff02::fb. A registry with
 * registry_ipv6=off cannot be heard by them. */
static void
test_ipv6_only(void **state)
{
    (void) state;
    micro_registry *bad = NULL;
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    assert_int_equal(micro_options_set_str(o, "registry_ipv6", "maybe"), 0);
    assert_int_equal(micro_registry_new(&bad, &micro_registry_mdns_ops, o),
        MICRO_EINVAL);
    micro_options_free(o);
    if (!ipv6_lo_up("test_ipv6_only")) {
        skip();
    }
    micro_registry *a = new_mdns_ipv6("only");
    micro_registry *b = new_mdns_ipv6("only");
    recorder rec = { .mu = PTHREAD_MUTEX_INITIALIZER };
    uint64_t tok = 0;
    assert_int_equal(micro_registry_watch(b, on_event, &rec, &tok), 0);
    assert_true(igmp6_joined("lo"));
    assert_false(igmp_joined("lo"));

    micro_registry_service svc;
    make_named(&svc, "only6", "[::1]:10003", "127.0.0.1:10004");
    assert_int_equal(micro_registry_register(a, &svc, 60000), 0);
    assert_true(resolves(b, "only6", "n1", "[::1]:10003"));
    assert_true(resolves(b, "only6", "n2", "127.0.0.1:10004"));
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_list_services(b, &out, &n), 0);
    bool listed = false;
    for (size_t i = 0; i < n; i++) {
        listed |= strcmp(out[i].name, "only6") == 0;
    }
    micro_registry_services_free(out, n);
    assert_true(listed);
    assert_true(wait_event(&rec, MICRO_REGISTRY_CREATE, "n1", 2000) >= 0);
    assert_true(wait_event(&rec, MICRO_REGISTRY_CREATE, "n2", 2000) >= 0);

    micro_registry_service one = { 0 };
    one.name = svc.name;
    one.version = svc.version;
    one.nodes = &svc.nodes[0];
    one.n_nodes = 1;
    assert_int_equal(micro_registry_deregister(a, &one), 0);
    assert_true(wait_event(&rec, MICRO_REGISTRY_DELETE, "n1", 2000) >= 0);

    /* IPv4 alone is not heard by IPv6 alone. */
    micro_registry *c = new_mdns_ipv6("off");
    micro_registry_service v4;
    make_named(&v4, "only4", "127.0.0.1:10005", "127.0.0.1:10006");
    assert_int_equal(micro_registry_register(c, &v4, 60000), 0);
    assert_int_equal(micro_registry_get_service(b, "only4", &out, &n),
        MICRO_ENOSERVICE);
    assert_true(resolves(c, "only4", "n1", "127.0.0.1:10005"));
    micro_registry_free(c);
    micro_registry_service_clear(&v4);

    micro_registry_unwatch(b, tok);
    micro_registry_free(a);
    micro_registry_free(b);
    micro_registry_service_clear(&svc);
    recorder_clear(&rec);
    ipv6_lo_down();
}

/* Two hosts: this namespace and a child's, joined by a veth pair with
 * IPv6 only (link-local plus fd77:2::/64, no DAD). The child registers
 * "[fd77:2::2]:9000" with registry_ipv6=only; we find it over the link
 * and see its announcement and goodbye. */
static void
test_ipv6_veth(void **state)
{
    (void) state;
    if (access("/proc/sys/net/ipv6", F_OK) != 0) {
        fprintf(stderr, "test_ipv6_veth: skipped: no IPv6 in this kernel\n");
        skip();
    }
    int go[2];
    int ready[2];
    assert_int_equal(pipe(go), 0);
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        close(ready[0]);
        char c = 0;
        if (unshare(CLONE_NEWNET) != 0 || write(ready[1], &c, 1) != 1 ||
            read(go[0], &c, 1) != 1 || c != 1) {
            _exit(1);
        }
        /* The parent has moved mdv1 in here. */
        if (system("ip link set lo up && "
                   "echo 0 > /proc/sys/net/ipv6/conf/mdv1/accept_dad && "
                   "ip -6 addr add fd77:2::2/64 dev mdv1 nodad && "
                   "ip link set mdv1 up") != 0) {
            _exit(2);
        }
        micro_options *o = NULL;
        micro_registry *r = NULL;
        if (micro_options_new(&o) != 0 ||
            micro_options_set_str(o, "registry_ipv6", "only") != 0 ||
            micro_options_set_str(o, "registry_interfaces", "mdv1") != 0 ||
            micro_registry_new(&r, &micro_registry_mdns_ops, o) != 0) {
            _exit(3);
        }
        micro_options_free(o);
        micro_registry_service svc;
        make_named(&svc, "vethsvc", "[fd77:2::2]:9000", "[fd77:2::2]:9001");
        if (micro_registry_register(r, &svc, 60000) != 0) {
            _exit(4);
        }
        /* Ready means answering: the link may come up (carrier) just
         * after the registry's first scan, and then the join waits for the
         * next re-scan (2 s). Wait for it rather than race the lookup. */
        int64_t until = now_ms() + 6000;
        while (!igmp6_joined("mdv1") && now_ms() < until) {
            usleep(20000);
        }
        if (!igmp6_joined("mdv1")) {
            _exit(6);
        }
        c = 2;
        if (write(ready[1], &c, 1) != 1) {
            _exit(5);
        }
        (void) !read(go[0], &c, 1); /* until the parent is done */
        micro_registry_free(r); /* says goodbye */
        micro_registry_service_clear(&svc);
        _exit(0);
    }
    close(go[0]);
    close(ready[1]);
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
        "ip link add mdv0 type veth peer name mdv1 netns %d 2>/dev/null && "
        "echo 0 > /proc/sys/net/ipv6/conf/mdv0/accept_dad && "
        "ip -6 addr add fd77:2::1/64 dev mdv0 nodad && ip link set mdv0 up",
        (int) pid);
    if (system(cmd) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fprintf(stderr, "test_ipv6_veth: skipped: no veth or ip(8)\n");
        skip();
    }
    c = 1;
    assert_int_equal(write(go[1], &c, 1), 1);
    assert_int_equal(read(ready[0], &c, 1), 1);
    assert_int_equal(c, 2);
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    assert_int_equal(micro_options_set_str(o, "registry_ipv6", "only"), 0);
    assert_int_equal(
        micro_options_set_str(o, "registry_interfaces", "mdv0"), 0);
    micro_registry *b = NULL;
    assert_int_equal(micro_registry_new(&b, &micro_registry_mdns_ops, o), 0);
    micro_options_free(o);
    recorder rec = { .mu = PTHREAD_MUTEX_INITIALIZER };
    uint64_t tok = 0;
    assert_int_equal(micro_registry_watch(b, on_event, &rec, &tok), 0);
    assert_true(igmp6_joined("mdv0")); /* the link is up: joined at once */
    assert_true(resolves(b, "vethsvc", "n1", "[fd77:2::2]:9000"));
    assert_true(resolves(b, "vethsvc", "n2", "[fd77:2::2]:9001"));
    assert_true(wait_event(&rec, MICRO_REGISTRY_CREATE, "n1", 3000) >= 0);
    c = 3;
    assert_int_equal(write(go[1], &c, 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(wait_event(&rec, MICRO_REGISTRY_DELETE, "n1", 2000) >= 0);
    micro_registry_unwatch(b, tok);
    micro_registry_free(b);
    recorder_clear(&rec);
    close(go[1]);
    close(ready[0]);
    (void) !system("ip link del mdv0 2>/dev/null");
}

/* ------------------------------------------------------------------ */
/* Caps: what hostile announcements can make a registry hold            */

/* A registry driven by hand: its packet handler is fed directly. */
typedef struct caps_reg {
    void *st;
    uint64_t tok;
    size_t creates, updates, deletes;
} caps_reg;

static void
caps_event(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) svc;
    caps_reg *c = arg;
    c->creates += action == MICRO_REGISTRY_CREATE;
    c->updates += action == MICRO_REGISTRY_UPDATE;
    c->deletes += action == MICRO_REGISTRY_DELETE;
}

static void
caps_open(caps_reg *c)
{
    memset(c, 0, sizeof(*c));
    c->st = calloc(1, micro_registry_mdns_ops.state_size);
    assert_non_null(c->st);
    assert_int_equal(micro_registry_mdns_ops.init(c->st, NULL), 0);
    assert_int_equal(
        micro_registry_mdns_ops.watch(c->st, caps_event, c, &c->tok), 0);
}

static void
caps_close(caps_reg *c)
{
    micro_registry_mdns_ops.unwatch(c->st, c->tok);
    micro_registry_mdns_ops.fini(c->st);
    free(c->st);
}

/* The TXT of service svc (version v1) whose JSON carries pad bytes of
 * padding: zlib makes a few KB of them. */
static void
caps_txt(const char *svc, size_t pad, char ***chunks, size_t *n)
{
    size_t cap = pad + 256;
    char *json = malloc(cap);
    int k = snprintf(json, cap,
        "{\"Service\":\"%s\",\"Version\":\"v1\",\"Metadata\":{\"pad\":\"",
        svc);
    memset(json + k, 'a', pad);
    size_t len = (size_t) k + pad;
    len += (size_t) snprintf(json + len, cap - len, "\"},\"Endpoints\":null}");
    assert_int_equal(micro__mdns_txt_encode(json, len, chunks, n), 0);
    free(json);
}

/* An announcement of node id of svc (PTR, SRV, A, TXT), with ttl. */
static uint8_t *
caps_announce(const char *svc, const char *id, char **chunks, size_t n,
    uint32_t ttl, size_t *len)
{
    char sname[300];
    char inst[300];
    snprintf(sname, sizeof(sname), "%s.micro.", svc);
    snprintf(inst, sizeof(inst), "%s.%s.micro.", id, svc);
    micro_dns_builder b;
    micro__dns_builder_init(&b, 0, MICRO_DNS_QR | MICRO_DNS_AA);
    static const uint8_t ip[4] = {127, 0, 0, 1};
    micro__dns_add_ptr(&b, MICRO_DNS_ANSWER, sname, ttl, inst);
    micro__dns_add_srv(&b, MICRO_DNS_ANSWER, inst, ttl, 10, 1, 8080, "h.");
    micro__dns_add_addr(&b, MICRO_DNS_ANSWER, "h.", ttl, ip, 4);
    micro__dns_add_txt(
        &b, MICRO_DNS_ANSWER, inst, ttl, (const char *const *) chunks, n);
    uint8_t *wire = NULL;
    assert_int_equal(micro__dns_builder_finish(&b, &wire, len), 0);
    return wire;
}

static void
caps_feed(caps_reg *c, const char *svc, const char *id, char **chunks,
    size_t n, uint32_t ttl)
{
    size_t len = 0;
    uint8_t *w = caps_announce(svc, id, chunks, n, ttl, &len);
    assert_int_equal(micro__mdns_handle_packet(c->st, w, len, NULL), 0);
    free(w);
}

/* 1,000 announcements whose TXT inflates to 0.9 MB each (a server went
 * from 2.6 MB to 767 MB on them): every one is refused while inflating,
 * and nothing is cached. */
static void
test_caps_oversized_txt(void **state)
{
    (void) state;
    caps_reg c;
    caps_open(&c);
    char **chunks = NULL;
    size_t n = 0;
    caps_txt("bomb", 900 * 1000, &chunks, &n);
    size_t wire = 0;
    for (size_t i = 0; i < n; i++) {
        wire += strlen(chunks[i]);
    }
    print_message("0.9 MB of JSON in %zu bytes of TXT\n", wire);
    assert_true(wire < 9000); /* fits one mDNS datagram */
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "n%d", i);
        caps_feed(&c, "bomb", id, chunks, n, 120);
    }
    micro__mdns_cache_stats st;
    micro__mdns_get_cache_stats(c.st, &st);
    assert_int_equal(st.refused_txt, 1000);
    assert_int_equal(st.nodes, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(c.creates, 0);
    micro__mdns_txt_free(chunks, n);
    /* Under the cap: taken. */
    caps_txt("bomb", 1000, &chunks, &n);
    caps_feed(&c, "bomb", "ok", chunks, n, 120);
    micro__mdns_get_cache_stats(c.st, &st);
    assert_int_equal(st.nodes, 1);
    assert_int_equal(c.creates, 1);
    micro__mdns_txt_free(chunks, n);
    caps_close(&c);
}

/* Large but acceptable records fill the cache's bytes, then are refused;
 * the cache stays under its byte cap. */
static void
test_caps_bytes(void **state)
{
    (void) state;
    caps_reg c;
    caps_open(&c);
    micro__mdns_limits lim;
    micro__mdns_get_limits(c.st, &lim);
    assert_int_equal(lim.max_bytes, 16 << 20);
    assert_int_equal(lim.max_txt, 256 * 1024);
    char **chunks = NULL;
    size_t n = 0;
    caps_txt("big", 200 * 1000, &chunks, &n);
    for (int i = 0; i < 200; i++) {
        char id[32];
        snprintf(id, sizeof(id), "n%d", i);
        caps_feed(&c, "big", id, chunks, n, 120);
    }
    micro__mdns_cache_stats st;
    micro__mdns_get_cache_stats(c.st, &st);
    print_message("cached %zu nodes, %zu bytes; refused %llu\n", st.nodes,
        st.bytes, (unsigned long long) st.refused_bytes);
    assert_true(st.bytes <= lim.max_bytes);
    assert_true(st.bytes > lim.max_bytes - 2 * 210 * 1000);
    /* Each costs twice its JSON: about 40 of 200 fit. */
    assert_in_range(st.nodes, 38, 42);
    assert_int_equal(st.refused_bytes, 200 - st.nodes);
    assert_int_equal(c.creates, st.nodes);
    micro__mdns_txt_free(chunks, n);
    /* A goodbye frees a node's share: the next one fits. */
    caps_txt("big", 10, &chunks, &n);
    caps_feed(&c, "big", "n0", chunks, n, 0);
    caps_feed(&c, "big", "fresh", chunks, n, 120);
    size_t before = st.nodes;
    micro__mdns_get_cache_stats(c.st, &st);
    assert_int_equal(st.nodes, before + 1); /* n0 a tombstone, + fresh */
    assert_true(st.bytes < lim.max_bytes - 300 * 1000);
    micro__mdns_txt_free(chunks, n);
    caps_close(&c);
}

/* Many distinct services, and many nodes of one: the node caps. */
static void
test_caps_nodes(void **state)
{
    (void) state;
    caps_reg c;
    caps_open(&c);
    micro__mdns_limits lim;
    micro__mdns_get_limits(c.st, &lim);
    assert_int_equal(lim.max_nodes, 4096);
    assert_int_equal(lim.max_per_service, 1024);
    for (int i = 0; i < 5000; i++) {
        char svc[32];
        snprintf(svc, sizeof(svc), "s%d", i);
        char **chunks = NULL;
        size_t n = 0;
        caps_txt(svc, 10, &chunks, &n);
        caps_feed(&c, svc, "n1", chunks, n, 120);
        micro__mdns_txt_free(chunks, n);
    }
    micro__mdns_cache_stats st;
    micro__mdns_get_cache_stats(c.st, &st);
    assert_int_equal(st.nodes, 4096);
    assert_int_equal(st.refused_nodes, 5000 - 4096);
    assert_int_equal(c.creates, 4096);
    assert_true(st.bytes <= lim.max_bytes);
    caps_close(&c);

    /* One service with 2,000 nodes: 1,024 are kept. */
    caps_open(&c);
    char **chunks = NULL;
    size_t n = 0;
    caps_txt("many", 10, &chunks, &n);
    for (int i = 0; i < 2000; i++) {
        char id[32];
        snprintf(id, sizeof(id), "n%d", i);
        caps_feed(&c, "many", id, chunks, n, 120);
    }
    micro__mdns_get_cache_stats(c.st, &st);
    assert_int_equal(st.nodes, 1024);
    assert_int_equal(st.max_service, 1024);
    assert_int_equal(st.refused_nodes, 2000 - 1024);
    /* Another service still gets in. */
    micro__mdns_txt_free(chunks, n);
    caps_txt("other", 10, &chunks, &n);
    caps_feed(&c, "other", "n1", chunks, n, 120);
    micro__mdns_get_cache_stats(c.st, &st);
    assert_int_equal(st.nodes, 1025);
    micro__mdns_txt_free(chunks, n);
    caps_close(&c);
}

/* A record asking for a TTL of 2^32-1 s is believed for an hour. */
static void
test_caps_ttl(void **state)
{
    (void) state;
    caps_reg c;
    caps_open(&c);
    char **chunks = NULL;
    size_t n = 0;
    caps_txt("ttl", 10, &chunks, &n);
    caps_feed(&c, "ttl", "n1", chunks, n, UINT32_MAX);
    caps_feed(&c, "ttl", "n2", chunks, n, 60);
    micro__mdns_cache_stats st;
    micro__mdns_get_cache_stats(c.st, &st);
    assert_int_equal(st.nodes, 2);
    assert_int_equal(st.ttl_clamped, 1);
    assert_int_equal(st.longest_ttl_ms, 3600 * 1000);
    micro__mdns_txt_free(chunks, n);
    caps_close(&c);
}

/* A query with 16 questions about one node used to draw 16 answers (a
 * 316-byte query, 11 KB back). Now its questions are answered together:
 * one message for the instance, one for the host's address, one for the
 * wildcard, and each record once. */
static void
test_answer_packs_questions(void **state)
{
    (void) state;
    caps_reg c;
    caps_open(&c);
    micro_registry_service svc;
    make_greeter(&svc);
    svc.n_nodes = 1; /* n1 only */
    assert_int_equal(
        micro_registry_mdns_ops.register_service(c.st, &svc, 0), 0);
    svc.n_nodes = 2;
    char host[256];
    assert_int_equal(gethostname(host, sizeof(host) - 2), 0);
    size_t hl = strlen(host);
    snprintf(host + hl, sizeof(host) - hl, ".");

    micro_dns_builder b;
    micro__dns_builder_init(&b, 0x1234, 0);
    for (int i = 0; i < 4; i++) {
        micro__dns_add_question(&b, "greeter.micro.", MICRO_DNS_PTR, 1);
        micro__dns_add_question(&b, "n1.greeter.micro.", MICRO_DNS_ANY, 1);
        micro__dns_add_question(&b, "n1.greeter.micro.", MICRO_DNS_TXT, 1);
    }
    micro__dns_add_question(&b, host, MICRO_DNS_A, 1);
    micro__dns_add_question(&b, host, MICRO_DNS_A, 1);
    micro__dns_add_question(&b, "_services.micro.", MICRO_DNS_PTR, 1);
    micro__dns_add_question(&b, "_services.micro.", MICRO_DNS_PTR, 1);
    uint8_t *q = NULL;
    size_t qlen = 0;
    assert_int_equal(micro__dns_builder_finish(&b, &q, &qlen), 0);

    /* The querier: a socket of ours, not on 5353 (no multicast copy). */
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *) &sa, &sl);
    assert_int_equal(micro__mdns_handle_packet(c.st, q, qlen,
                         (const struct sockaddr *) &sa),
        0);
    /* Everything was sent before handle returned. */
    size_t msgs = 0, bytes = 0, instance = 0;
    uint8_t buf[65536];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r < 0) {
            break;
        }
        msgs++;
        bytes += (size_t) r;
        micro_dns_msg m;
        assert_int_equal(micro__dns_parse(&m, buf, (size_t) r), 0);
        size_t na = 0;
        const micro_dns_rr *an = micro__dns_section(&m, MICRO_DNS_ANSWER, &na);
        size_t txt = 0, ptr = 0, srv = 0;
        for (size_t i = 0; i < na; i++) {
            txt += an[i].type == MICRO_DNS_TXT;
            ptr += an[i].type == MICRO_DNS_PTR;
            srv += an[i].type == MICRO_DNS_SRV;
        }
        if (srv > 0 && txt > 0 && ptr == 1 && na == 4) {
            char name[MICRO_DNS_NAME_TEXT_MAX];
            micro__dns_name_text(&m, an[na - 1].name, name, sizeof(name));
            instance += strcmp(name, "n1.greeter.micro.") == 0;
        }
        assert_true(txt <= 1 && srv <= 1 && ptr <= 1);
        micro__dns_msg_free(&m);
    }
    print_message("%zu-byte query: %zu answers, %zu bytes\n", qlen, msgs,
        bytes);
    assert_int_equal(msgs, 3);
    assert_int_equal(instance, 1);
    assert_true(bytes < 4 * qlen + 2048);
    close(fd);
    free(q);
    micro_registry_service_clear(&svc);
    caps_close(&c);
}

int
main(void)
{
    if (t_enter_netns() != 0) {
        fprintf(stderr, "mdns_test: skipped: cannot create a private network "
                        "namespace with lo up (needs root)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_txt_golden),
        cmocka_unit_test(test_two_registries),
        cmocka_unit_test(test_ttl_expiry),
        cmocka_unit_test(test_goodbye_once),
        cmocka_unit_test(test_refresh_keeps_live_node),
        cmocka_unit_test(test_follows_interfaces),
        cmocka_unit_test(test_register_ttl_kill),
        cmocka_unit_test(test_interfaces_option),
        cmocka_unit_test(test_ipv6_node),
        cmocka_unit_test(test_ipv6_only),
        cmocka_unit_test(test_ipv6_veth),
        cmocka_unit_test(test_caps_oversized_txt),
        cmocka_unit_test(test_caps_bytes),
        cmocka_unit_test(test_caps_nodes),
        cmocka_unit_test(test_caps_ttl),
        cmocka_unit_test(test_answer_packs_questions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
