/*
 * 20,000 malformed datagrams straight into the mDNS registry's packet
 * handler (random bytes, truncated and bit-flipped responses, compression
 * loops, counts larger than the data, a 60 KB TXT, bad hex, bad zlib, bad
 * JSON), with a watcher attached so that responses go all the way through
 * TXT decoding; then the registry must still register and resolve.
 *
 * Runs in a private network namespace (lo only); skips (77) without root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "cmicro/micro.h"
#include "registry/mdns_internal.h"
#include "registry/registry_internal.h"
#include "support/netns.h"

/* xorshift: reproducible. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t) (rng % n);
}

/* A tiny DNS writer (no compression unless asked). */
typedef struct wbuf {
    uint8_t b[70000];
    size_t n;
} wbuf;

static void
w8(wbuf *w, unsigned v)
{
    if (w->n < sizeof(w->b)) {
        w->b[w->n++] = (uint8_t) v;
    }
}

static void
w16(wbuf *w, unsigned v)
{
    w8(w, v >> 8);
    w8(w, v & 0xff);
}

static void
w32(wbuf *w, uint32_t v)
{
    w16(w, v >> 16);
    w16(w, v & 0xffff);
}

static void
wname(wbuf *w, const char *name)
{
    while (*name != '\0') {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t) (dot - name) : strlen(name);
        w8(w, (unsigned) l);
        for (size_t i = 0; i < l; i++) {
            w8(w, (uint8_t) name[i]);
        }
        name += l;
        if (*name == '.') {
            name++;
        }
    }
    w8(w, 0);
}

static void
header(wbuf *w, unsigned flags, unsigned qd, unsigned an)
{
    w->n = 0;
    w16(w, 0);
    w16(w, flags);
    w16(w, qd);
    w16(w, an);
    w16(w, 0);
    w16(w, 0);
}

static void
rr_head(wbuf *w, const char *name, unsigned type, uint32_t ttl)
{
    wname(w, name);
    w16(w, type);
    w16(w, 1);
    w32(w, ttl);
}

/* A response PTR, SRV, A, TXT for x.greeter.micro. whose TXT is the given
 * text cut into strings of up to 255 bytes. */
static void
response_with_txt(wbuf *w, const uint8_t *txt, size_t len)
{
    header(w, 0x8400, 0, 4);
    rr_head(w, "greeter.micro.", 12, 120);
    w16(w, 17); /* the name that follows */
    wname(w, "x.greeter.micro.");
    rr_head(w, "x.greeter.micro.", 33, 120);
    w16(w, 6 + 3);
    w16(w, 10);
    w16(w, 1);
    w16(w, 8080);
    wname(w, "h.");
    rr_head(w, "h.", 1, 120);
    w16(w, 4);
    w8(w, 127);
    w8(w, 0);
    w8(w, 0);
    w8(w, 1);
    rr_head(w, "x.greeter.micro.", 16, 120);
    size_t nstr = (len + 254) / 255;
    w16(w, (unsigned) (len + nstr));
    for (size_t off = 0; off < len; off += 255) {
        size_t l = len - off < 255 ? len - off : 255;
        w8(w, (unsigned) l);
        for (size_t i = 0; i < l; i++) {
            w8(w, txt[off + i]);
        }
    }
}

/* hex of zlib of s */
static size_t
zhex(const char *s, size_t n, uint8_t *out, size_t cap)
{
    uint8_t z[8192];
    uLongf zl = sizeof(z);
    compress2(z, &zl, (const Bytef *) s, (uLong) n, 6);
    static const char hx[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < zl && k + 2 <= cap; i++) {
        out[k++] = (uint8_t) hx[z[i] >> 4];
        out[k++] = (uint8_t) hx[z[i] & 15];
    }
    return k;
}

static size_t watch_events;

static void
on_event(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) arg;
    (void) action;
    (void) svc;
    watch_events++;
}

static void
test_fuzz(void **state)
{
    (void) state;
    const micro_registry_ops *ops = &micro_registry_mdns_ops;
    void *st = calloc(1, ops->state_size);
    assert_non_null(st);
    assert_int_equal(ops->init(st, NULL), 0);
    uint64_t tok = 0;
    assert_int_equal(ops->watch(st, on_event, NULL, &tok), 0);

    /* Something to answer, so queries reach the answering code. */
    micro_registry_service svc = { 0 };
    svc.name = strdup("greeter");
    svc.version = strdup("latest");
    svc.nodes = calloc(1, sizeof(micro_node));
    svc.n_nodes = 1;
    svc.nodes[0].id = strdup("greeter-1");
    svc.nodes[0].address = strdup("127.0.0.1:4321");
    assert_int_equal(ops->register_service(st, &svc, 0), 0);

    uint8_t *valid = NULL;
    size_t vlen = 0;
    assert_int_equal(
        micro__mdns_build_response(&svc, 0, "host.", 120, &valid, &vlen), 0);

    struct sockaddr_in from;
    memset(&from, 0, sizeof(from));
    from.sin_family = AF_INET;
    from.sin_port = htons(9); /* discard: answers go nowhere */
    from.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Every other datagram comes from an IPv6 querier: answers go back
     * through the [::]:5353 socket. */
    struct sockaddr_in6 from6;
    memset(&from6, 0, sizeof(from6));
    from6.sin6_family = AF_INET6;
    from6.sin6_port = htons(9);
    from6.sin6_addr = in6addr_loopback;
    const struct sockaddr *fp4 = (const struct sockaddr *) &from;
    const struct sockaddr *fp6 = (const struct sockaddr *) &from6;

    static wbuf w;
    static uint8_t big[61440];
    size_t handled = 0;
    size_t proto = 0;
    for (int i = 0; i < 20000; i++) {
        int kind = i % 10;
        switch (kind) {
        case 0: /* random bytes */
        case 1: {
            w.n = rnd(1500);
            for (size_t k = 0; k < w.n; k++) {
                w.b[k] = (uint8_t) rnd(256);
            }
            break;
        }
        case 2: /* truncations of a valid response */
            w.n = rnd((uint32_t) vlen);
            memcpy(w.b, valid, w.n);
            break;
        case 3: { /* bit flips in a valid response */
            memcpy(w.b, valid, vlen);
            w.n = vlen;
            for (int k = 0; k < 1 + (int) rnd(4); k++) {
                w.b[rnd((uint32_t) vlen)] ^= (uint8_t) (1u << rnd(8));
            }
            break;
        }
        case 4: { /* compression pointer loops */
            header(&w, rnd(2) ? 0x8400 : 0, 1, 0);
            unsigned at = (unsigned) w.n;
            switch (rnd(3)) {
            case 0: /* points at itself */
                w16(&w, 0xc000 | at);
                break;
            case 1: /* a label, then back to it */
                w8(&w, 1);
                w8(&w, 'a');
                w16(&w, 0xc000 | at);
                break;
            default: /* forward pointer past the end */
                w16(&w, 0xc000 | 0x3fff);
                break;
            }
            w16(&w, 12);
            w16(&w, 1);
            break;
        }
        case 5: { /* counts larger than the data */
            memcpy(w.b, valid, vlen);
            w.n = vlen;
            w.b[4] = (uint8_t) rnd(256);
            w.b[6] = (uint8_t) (1 + rnd(255));
            w.b[10] = (uint8_t) rnd(256);
            break;
        }
        case 6: { /* a 60 KB TXT of hex digits (bad zlib) or junk */
            bool hex = rnd(2);
            for (size_t k = 0; k < sizeof(big); k++) {
                big[k] = hex ? (uint8_t) "0123456789abcdef"[rnd(16)]
                             : (uint8_t) rnd(256);
            }
            response_with_txt(&w, big, sizeof(big) - rnd(1000));
            break;
        }
        case 7: { /* bad hex: odd length, non-hex digit */
            uint8_t t[600];
            size_t n = zhex("{\"Service\":\"greeter\"}", 21, t, sizeof(t));
            if (rnd(2)) {
                n--; /* odd */
            } else {
                t[rnd((uint32_t) n)] = 'g';
            }
            response_with_txt(&w, t, n);
            break;
        }
        case 8: { /* bad zlib: valid hex, corrupt or truncated stream */
            uint8_t t[600];
            size_t n = zhex("{\"Service\":\"greeter\",\"Version\":\"x\"}", 35,
                t, sizeof(t));
            if (rnd(2)) {
                n = 2 * (1 + rnd((uint32_t) (n / 2 - 1)));
            } else {
                size_t k = 4 + rnd((uint32_t) (n - 4));
                t[k] = t[k] == '0' ? '1' : '0';
            }
            response_with_txt(&w, t, n);
            break;
        }
        default: { /* valid zlib of bad or ill-typed JSON; random queries */
            static const char *bad[] = {
                "not json",
                "null",
                "[]",
                "{\"Service\":7}",
                "{\"Service\":\"greeter\",\"Version\":\"v\",\"Metadata\":[1]}",
                "{\"Service\":\"greeter\",\"Version\":\"v\",\"Endpoints\":{}}",
                "{\"Service\":\"greeter\",\"Version\":\"v\",\"Endpoints\":[7]}",
                "{\"Service\":\"greeter\",\"Version\":\"v\",\"Endpoints\":[{"
                "\"request\":{\"values\":[{\"values\":[{\"values\":[{\"values"
                "\":[{}]}]}]}]}}]}",
                "{\"Service\":\"greeter\",\"Version\":\"v\"} trailing",
                "{\"Service\":\"\xff\xfe\",\"Version\":\"v\"}",
            };
            if (rnd(3) == 0) {
                header(&w, 0, 1 + rnd(3), 0);
                static const char *names[] = { "greeter.micro.",
                    "_services.micro.", "greeter-1.greeter.micro.", "host.",
                    "_services._dns-sd._udp.micro.", "nope.micro." };
                for (int q = 0; q < 3; q++) {
                    wname(&w, names[rnd(6)]);
                    w16(&w, (unsigned[]) { 1, 12, 16, 28, 33, 255 }[rnd(6)]);
                    w16(&w, rnd(2) ? 0x8001 : 1);
                }
                break;
            }
            const char *j = bad[rnd((uint32_t) (sizeof(bad) / sizeof(bad[0])))];
            uint8_t t[2000];
            size_t n = zhex(j, strlen(j), t, sizeof(t));
            response_with_txt(&w, t, n);
            break;
        }
        }
        int rc = micro__mdns_handle_packet(
            st, w.b, w.n, (i / 10) % 2 ? fp6 : fp4);
        assert_true(rc == 0 || rc == MICRO_EPROTO);
        handled++;
        proto += rc == MICRO_EPROTO;
    }
    assert_int_equal(handled, 20000);
    uint64_t dropped = micro__mdns_malformed(st);
    print_message("%zu packets, %zu unparsable, %llu dropped as malformed, "
                  "%zu watch events\n",
        handled, proto, (unsigned long long) dropped, watch_events);
    assert_true(proto > 5000);
    assert_true(dropped >= proto);

    /* Still works: registers, resolves itself and is resolved by another
     * registry over the network. */
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(ops->get_service(st, "greeter", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].n_nodes, 1);
    assert_string_equal(out[0].nodes[0].address, "127.0.0.1:4321");
    micro_registry_services_free(out, n);

    micro_registry *other = NULL;
    assert_int_equal(
        micro_registry_new(&other, &micro_registry_mdns_ops, NULL), 0);
    assert_int_equal(micro_registry_get_service(other, "greeter", &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].n_nodes, 1);
    assert_string_equal(out[0].nodes[0].id, "greeter-1");
    micro_registry_services_free(out, n);
    micro_registry_free(other);

    ops->unwatch(st, tok);
    ops->fini(st);
    free(st);
    free(valid);
    micro_registry_service_clear(&svc);
}

int
main(void)
{
    if (t_enter_netns() != 0) {
        fprintf(stderr, "mdns_fuzz_test: skipped: cannot create a private "
                        "network namespace with lo up (needs root)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
