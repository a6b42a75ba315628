/*
 * The DNS message codec (src/registry/dns.c): every record type through
 * the builder and back, names with escapes and compression, and every
 * kind of malformed message rejected with MICRO_EPROTO. Under ASan each
 * rejection is also a check that nothing was read outside the packet:
 * malformed packets are parsed from exactly-sized heap copies.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cmicro/micro.h"
#include "registry/dns.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

/* Parse a heap copy of exactly n octets, so that ASan sees any read past
 * the end. */
static int
parse_exact(micro_dns_msg *m, const uint8_t *p, size_t n, uint8_t **copy)
{
    *copy = malloc(n > 0 ? n : 1);
    assert_non_null(*copy);
    memcpy(*copy, p, n);
    return micro__dns_parse(m, *copy, n);
}

/* Expect p[0..n) to be rejected as malformed. */
static void
expect_bad(const uint8_t *p, size_t n)
{
    micro_dns_msg m;
    uint8_t *copy;
    assert_int_equal(parse_exact(&m, p, n, &copy), MICRO_EPROTO);
    assert_non_null(m.why);
    assert_null(m.rr);
    size_t cnt = 1;
    assert_null(micro__dns_section(&m, MICRO_DNS_ANSWER, &cnt));
    assert_int_equal(cnt, 0);
    micro__dns_msg_free(&m);
    free(copy);
}

static void
expect_name(const micro_dns_msg *m, uint16_t off, const char *want)
{
    char buf[MICRO_DNS_NAME_TEXT_MAX];
    int l = micro__dns_name_text(m, off, buf, sizeof(buf));
    assert_int_equal(l, (int) strlen(want));
    assert_string_equal(buf, want);
}

/* A raw message writer for packets the builder would never make. */
typedef struct wbuf {
    uint8_t b[2048];
    size_t n;
} wbuf;

static void
w8(wbuf *w, unsigned v)
{
    assert_true(w->n < sizeof(w->b));
    w->b[w->n++] = (uint8_t) v;
}

static void
w16(wbuf *w, unsigned v)
{
    w8(w, v >> 8);
    w8(w, v & 0xff);
}

static void
wbytes(wbuf *w, const void *p, size_t n)
{
    assert_true(w->n + n <= sizeof(w->b));
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void
whead(wbuf *w, unsigned qd, unsigned an, unsigned ns, unsigned ar)
{
    w->n = 0;
    w16(w, 0x1234);
    w16(w, 0x8400);
    w16(w, qd);
    w16(w, an);
    w16(w, ns);
    w16(w, ar);
}

/* type, class IN, TTL 120, and RDLENGTH */
static void
wrr_fixed(wbuf *w, unsigned type, unsigned rdlen)
{
    w16(w, type);
    w16(w, 1);
    w16(w, 0);
    w16(w, 120);
    w16(w, rdlen);
}

/* "greeter.micro." uncompressed: 15 octets */
static const uint8_t GREETER[] = { 7, 'g', 'r', 'e', 'e', 't', 'e', 'r', 5,
    'm', 'i', 'c', 'r', 'o', 0 };

/* ------------------------------------------------------------------ */
/* Round trips                                                          */

static void
test_round_trip_every_type(void **state)
{
    (void) state;
    static const uint8_t ip4[4] = { 192, 168, 1, 10 };
    static const uint8_t ip6[16] = { 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 1 };
    char s255[256];
    memset(s255, 'z', 255);
    s255[255] = '\0';
    const char *txt[] = { "a=1", "", s255, "\x01\xff" };

    micro_dns_builder b;
    micro__dns_builder_init(&b, 0xbeef, MICRO_DNS_QR | MICRO_DNS_AA);
    assert_int_equal(micro__dns_add_question(&b, "greeter.micro.",
                         MICRO_DNS_PTR, MICRO_DNS_CLASS_IN),
        0);
    assert_int_equal(
        micro__dns_add_question(&b, "n1.greeter.micro", MICRO_DNS_ANY,
            MICRO_DNS_CLASS_IN | MICRO_DNS_CLASS_QU),
        0);
    assert_int_equal(micro__dns_add_ptr(&b, MICRO_DNS_ANSWER,
                         "greeter.micro.", 120, "n1.greeter.micro."),
        0);
    assert_int_equal(micro__dns_add_srv(&b, MICRO_DNS_ANSWER,
                         "n1.greeter.micro.", 121, 10, 1, 8080, "host.local."),
        0);
    assert_int_equal(micro__dns_add_addr(&b, MICRO_DNS_ANSWER, "host.local.",
                         122, ip4, 4),
        0);
    assert_int_equal(micro__dns_add_addr(&b, MICRO_DNS_ANSWER, "host.local.",
                         123, ip6, 16),
        0);
    assert_int_equal(micro__dns_add_txt(&b, MICRO_DNS_ANSWER,
                         "n1.greeter.micro.", 0, txt, 4),
        0);
    assert_int_equal(micro__dns_add_txt(&b, MICRO_DNS_ANSWER,
                         "_services.micro.", 7, NULL, 0),
        0);
    assert_int_equal(micro__dns_add_ptr(&b, MICRO_DNS_AUTHORITY, ".",
                         4294967295u, "greeter.micro."),
        0);
    assert_int_equal(micro__dns_add_addr(&b, MICRO_DNS_ADDITIONAL,
                         "N1.greeter.micro.", 5, ip4, 4),
        0);
    uint8_t *wire;
    size_t len;
    assert_int_equal(micro__dns_builder_finish(&b, &wire, &len), 0);
    assert_non_null(wire);

    micro_dns_msg m;
    uint8_t *copy;
    assert_int_equal(parse_exact(&m, wire, len, &copy), 0);
    assert_int_equal(m.id, 0xbeef);
    assert_int_equal(m.flags, MICRO_DNS_QR | MICRO_DNS_AA);
    assert_int_equal(MICRO_DNS_OPCODE(m.flags), 0);
    assert_int_equal(MICRO_DNS_RCODE(m.flags), 0);
    assert_int_equal(m.count[MICRO_DNS_QUESTION], 2);
    assert_int_equal(m.count[MICRO_DNS_ANSWER], 6);
    assert_int_equal(m.count[MICRO_DNS_AUTHORITY], 1);
    assert_int_equal(m.count[MICRO_DNS_ADDITIONAL], 1);

    size_t n;
    const micro_dns_rr *q = micro__dns_section(&m, MICRO_DNS_QUESTION, &n);
    assert_int_equal(n, 2);
    expect_name(&m, q[0].name, "greeter.micro.");
    assert_int_equal(q[0].type, MICRO_DNS_PTR);
    assert_int_equal(q[0].rclass, MICRO_DNS_CLASS_IN);
    expect_name(&m, q[1].name, "n1.greeter.micro.");
    assert_int_equal(q[1].type, MICRO_DNS_ANY);
    assert_int_equal(q[1].rclass, MICRO_DNS_CLASS_IN | MICRO_DNS_CLASS_QU);

    const micro_dns_rr *a = micro__dns_section(&m, MICRO_DNS_ANSWER, &n);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(a[i].rclass, MICRO_DNS_CLASS_IN);
    }
    assert_int_equal(a[0].type, MICRO_DNS_PTR);
    assert_int_equal(a[0].ttl, 120);
    expect_name(&m, a[0].name, "greeter.micro.");
    expect_name(&m, a[0].target, "n1.greeter.micro.");

    assert_int_equal(a[1].type, MICRO_DNS_SRV);
    assert_int_equal(a[1].ttl, 121);
    assert_int_equal(a[1].priority, 10);
    assert_int_equal(a[1].weight, 1);
    assert_int_equal(a[1].port, 8080);
    expect_name(&m, a[1].name, "n1.greeter.micro.");
    expect_name(&m, a[1].target, "host.local.");

    assert_int_equal(a[2].type, MICRO_DNS_A);
    assert_int_equal(a[2].ttl, 122);
    assert_int_equal(a[2].rdlen, 4);
    assert_memory_equal(m.wire + a[2].rdata, ip4, 4);
    expect_name(&m, a[2].name, "host.local.");

    assert_int_equal(a[3].type, MICRO_DNS_AAAA);
    assert_int_equal(a[3].ttl, 123);
    assert_int_equal(a[3].rdlen, 16);
    assert_memory_equal(m.wire + a[3].rdata, ip6, 16);

    assert_int_equal(a[4].type, MICRO_DNS_TXT);
    assert_int_equal(a[4].ttl, 0);
    size_t pos = 0;
    const uint8_t *s;
    size_t sl;
    for (size_t i = 0; i < 4; i++) {
        assert_true(micro__dns_txt_next(&m, &a[4], &pos, &s, &sl));
        assert_int_equal(sl, strlen(txt[i]));
        assert_memory_equal(s, txt[i], sl);
    }
    assert_false(micro__dns_txt_next(&m, &a[4], &pos, &s, &sl));

    assert_int_equal(a[5].type, MICRO_DNS_TXT);
    assert_int_equal(a[5].rdlen, 0);
    pos = 0;
    assert_false(micro__dns_txt_next(&m, &a[5], &pos, &s, &sl));
    expect_name(&m, a[5].name, "_services.micro.");

    const micro_dns_rr *ns = micro__dns_section(&m, MICRO_DNS_AUTHORITY, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ns[0].type, MICRO_DNS_PTR);
    assert_int_equal(ns[0].ttl, 4294967295u);
    expect_name(&m, ns[0].name, ".");
    expect_name(&m, ns[0].target, "greeter.micro.");

    const micro_dns_rr *ar = micro__dns_section(&m, MICRO_DNS_ADDITIONAL, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ar[0].type, MICRO_DNS_A);
    assert_int_equal(ar[0].ttl, 5);
    expect_name(&m, ar[0].name, "N1.greeter.micro.");
    assert_memory_equal(m.wire + ar[0].rdata, ip4, 4);

    micro__dns_msg_free(&m);
    micro__dns_msg_free(&m); /* idempotent */
    free(copy);
    free(wire);
}

static void
test_empty_message(void **state)
{
    (void) state;
    micro_dns_builder b;
    micro__dns_builder_init(&b, 7, 0);
    uint8_t *wire;
    size_t len;
    assert_int_equal(micro__dns_builder_finish(&b, &wire, &len), 0);
    assert_int_equal(len, MICRO_DNS_HEADER);
    static const uint8_t want[12] = { 0, 7 };
    assert_memory_equal(wire, want, sizeof(want));

    micro_dns_msg m;
    assert_int_equal(micro__dns_parse(&m, wire, len), 0);
    assert_null(m.rr);
    size_t n = 99;
    assert_null(micro__dns_section(&m, MICRO_DNS_ANSWER, &n));
    assert_int_equal(n, 0);
    micro__dns_msg_free(&m);
    free(wire);

    /* A builder that is dropped holds nothing afterwards. */
    micro__dns_builder_init(&b, 1, 0);
    assert_int_equal(
        micro__dns_add_question(&b, "a.", MICRO_DNS_A, MICRO_DNS_CLASS_IN), 0);
    micro__dns_builder_fini(&b);
    assert_null(b.buf);
    micro__dns_builder_fini(&b);
}

/* Header flags and opcode/rcode come back as written; octets after the
 * last record are ignored. */
static void
test_header_and_trailing(void **state)
{
    (void) state;
    wbuf w;
    whead(&w, 1, 0, 0, 0);
    w.b[2] = 0x28 | 0x01; /* opcode 5 (UPDATE), RD */
    w.b[3] = 0x03;        /* rcode 3 */
    wbytes(&w, GREETER, sizeof(GREETER));
    w16(&w, MICRO_DNS_PTR);
    w16(&w, 1);
    w8(&w, 0xff);
    w8(&w, 0xff);
    micro_dns_msg m;
    uint8_t *copy;
    assert_int_equal(parse_exact(&m, w.b, w.n, &copy), 0);
    assert_int_equal(m.id, 0x1234);
    assert_int_equal(MICRO_DNS_OPCODE(m.flags), 5);
    assert_int_equal(MICRO_DNS_RCODE(m.flags), 3);
    assert_true(m.flags & MICRO_DNS_RD);
    assert_false(m.flags & MICRO_DNS_QR);
    expect_name(&m, m.rr[0].name, "greeter.micro.");
    micro__dns_msg_free(&m);
    free(copy);
}

/* Records of other types keep their RDATA as it is, names and all. */
static void
test_opaque(void **state)
{
    (void) state;
    static const uint8_t nsec[] = { 1, 'x', 0, 0, 6, 0x40, 0, 0, 0, 0, 3 };
    wbuf w;
    whead(&w, 0, 1, 0, 1);
    wbytes(&w, GREETER, sizeof(GREETER));
    wrr_fixed(&w, 47, sizeof(nsec)); /* NSEC */
    wbytes(&w, nsec, sizeof(nsec));
    w8(&w, 0); /* OPT: the root, class = UDP size, no RDATA */
    w16(&w, 41);
    w16(&w, 1440);
    w16(&w, 0);
    w16(&w, 0);
    w16(&w, 0);
    micro_dns_msg m;
    uint8_t *copy;
    assert_int_equal(parse_exact(&m, w.b, w.n, &copy), 0);
    size_t n;
    const micro_dns_rr *a = micro__dns_section(&m, MICRO_DNS_ANSWER, &n);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].type, 47);
    assert_int_equal(a[0].ttl, 120);
    assert_int_equal(a[0].rdata, 12 + sizeof(GREETER) + 10);
    assert_int_equal(a[0].rdlen, sizeof(nsec));
    assert_memory_equal(m.wire + a[0].rdata, nsec, sizeof(nsec));
    const micro_dns_rr *ar = micro__dns_section(&m, MICRO_DNS_ADDITIONAL, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ar[0].type, 41);
    assert_int_equal(ar[0].rclass, 1440);
    assert_int_equal(ar[0].rdlen, 0);
    expect_name(&m, ar[0].name, ".");
    micro__dns_msg_free(&m);
    free(copy);
}

/* ------------------------------------------------------------------ */
/* Names                                                                */

static void
test_name_text_to_wire(void **state)
{
    (void) state;
    uint8_t w[MICRO_DNS_NAME_MAX];
    assert_int_equal(micro__dns_name_wire(".", w), 1);
    assert_int_equal(w[0], 0);
    assert_int_equal(micro__dns_name_wire("greeter.micro.", w), 15);
    assert_memory_equal(w, GREETER, 15);
    assert_int_equal(micro__dns_name_wire("greeter.micro", w), 15);
    assert_memory_equal(w, GREETER, 15);

    /* Escapes: \c and \DDD. */
    static const uint8_t esc[] = { 5, 'a', '.', 'b', 0, 255, 2, '\\', ' ', 0 };
    assert_int_equal(micro__dns_name_wire("a\\.b\\000\\255.\\\\\\032", w),
        (int) sizeof(esc));
    assert_memory_equal(w, esc, sizeof(esc));

    const char *bad[] = {
        "",
        "..",
        ".a.",
        "a..b.",
        "a\\",        /* escape at the end */
        "a\\1b.",     /* \D without three digits */
        "a\\25.",
        "a\\256.",    /* over 255 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(micro__dns_name_wire(bad[i], w), MICRO_EINVAL);
    }

    /* A label of 63 octets is fine, 64 is not. */
    char l[80];
    memset(l, 'x', 64);
    memcpy(l + 64, ".", 2);
    assert_int_equal(micro__dns_name_wire(l, w), MICRO_EINVAL);
    assert_int_equal(micro__dns_name_wire(l + 1, w), 65);

    /* 255 octets in all is fine, 256 is not. */
    char n[300];
    size_t k = 0;
    for (int i = 0; i < 3; i++) {
        memset(n + k, 'y', 63);
        k += 63;
        n[k++] = '.';
    }
    memset(n + k, 'y', 61);
    k += 61;
    memcpy(n + k, ".", 2);
    assert_int_equal(micro__dns_name_wire(n, w), 255);
    n[k] = 'y';
    memcpy(n + k + 1, ".", 2);
    assert_int_equal(micro__dns_name_wire(n, w), MICRO_EINVAL);
    /* The same length in escapes. */
    char e[1100];
    k = 0;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < (i < 3 ? 63 : 62); j++) {
            memcpy(e + k, "\\000", 4);
            k += 4;
        }
        e[k++] = '.';
    }
    e[k] = '\0';
    assert_int_equal(micro__dns_name_wire(e, w), MICRO_EINVAL);
}

/* Names print back exactly as given (escapes, case), through the wire
 * with compression; the worst case fits MICRO_DNS_NAME_TEXT_MAX. */
static void
test_name_text_round_trip(void **state)
{
    (void) state;
    char worst[MICRO_DNS_NAME_TEXT_MAX];
    size_t k = 0;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < (i < 3 ? 63 : 61); j++) {
            memcpy(worst + k, "\\000", 4);
            k += 4;
        }
        worst[k++] = '.';
    }
    worst[k] = '\0';
    assert_int_equal(k, MICRO_DNS_NAME_TEXT_MAX - 1);

    const char *names[] = {
        "GreeTer.MICRO.",
        "greeter.micro.",
        "a\\.b\\;c\\(d\\)e\\\\f.micro.",
        "sp\\032ace\\127\\200\\255.micro.",
        "x.",
        worst,
    };
    const size_t nn = sizeof(names) / sizeof(names[0]);
    micro_dns_builder b;
    micro__dns_builder_init(&b, 0, 0);
    for (size_t i = 0; i < nn; i++) {
        assert_int_equal(micro__dns_add_question(
                             &b, names[i], MICRO_DNS_A, MICRO_DNS_CLASS_IN),
            0);
    }
    uint8_t *wire;
    size_t len;
    assert_int_equal(micro__dns_builder_finish(&b, &wire, &len), 0);
    micro_dns_msg m;
    assert_int_equal(micro__dns_parse(&m, wire, len), 0);
    for (size_t i = 0; i < nn; i++) {
        expect_name(&m, m.rr[i].name, names[i]);
    }
    /* Too small a buffer: an error, never a cut name. */
    char small[8];
    assert_int_equal(micro__dns_name_text(&m, m.rr[0].name, small, 8),
        MICRO_EMSGSIZE);
    assert_int_equal(micro__dns_name_text(&m, m.rr[4].name, small, 3), 2);
    assert_string_equal(small, "x.");
    assert_int_equal(micro__dns_name_text(&m, m.rr[4].name, small, 2),
        MICRO_EMSGSIZE);
    micro__dns_msg_free(&m);
    free(wire);
}

/* Compression: later names point at earlier ones (owners, question names,
 * PTR targets), exactly, case included; an SRV target is written whole. */
static void
test_compression(void **state)
{
    (void) state;
    micro_dns_builder b;
    micro__dns_builder_init(&b, 0, MICRO_DNS_QR);
    assert_int_equal(micro__dns_add_question(&b, "greeter.micro.",
                         MICRO_DNS_PTR, MICRO_DNS_CLASS_IN),
        0);
    size_t q_end = b.len;
    assert_int_equal(q_end, 12 + 15 + 4);
    /* The owner is all pointer, the target one label and a pointer. */
    assert_int_equal(micro__dns_add_ptr(&b, MICRO_DNS_ANSWER,
                         "greeter.micro.", 1, "n1.greeter.micro."),
        0);
    assert_int_equal(b.len, q_end + 2 + 10 + 3 + 2);
    static const uint8_t ptr[] = { 0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 1, 0, 5,
        2, 'n', '1', 0xc0, 12 };
    assert_memory_equal(b.buf + q_end, ptr, sizeof(ptr));

    /* The SRV owner points at the PTR target; its target is whole. */
    size_t srv_at = b.len;
    assert_int_equal(micro__dns_add_srv(&b, MICRO_DNS_ANSWER,
                         "n1.greeter.micro.", 1, 0, 0, 80, "greeter.micro."),
        0);
    assert_int_equal(b.buf[srv_at], 0xc0);
    assert_int_equal(b.buf[srv_at + 1], q_end + 12);
    assert_memory_equal(b.buf + srv_at + 2 + 10 + 6, GREETER, 15);

    /* A different case is a different name to the compressor. */
    size_t up_at = b.len;
    static const uint8_t ip[4] = { 1, 2, 3, 4 };
    assert_int_equal(micro__dns_add_addr(
                         &b, MICRO_DNS_ANSWER, "N1.Greeter.micro.", 1, ip, 4),
        0);
    static const uint8_t up[] = { 2, 'N', '1', 7, 'G', 'r', 'e', 'e', 't',
        'e', 'r', 0xc0, 12 + 8 };
    assert_memory_equal(b.buf + up_at, up, sizeof(up));

    uint8_t *wire;
    size_t len;
    assert_int_equal(micro__dns_builder_finish(&b, &wire, &len), 0);
    micro_dns_msg m;
    assert_int_equal(micro__dns_parse(&m, wire, len), 0);
    expect_name(&m, m.rr[1].name, "greeter.micro.");
    expect_name(&m, m.rr[1].target, "n1.greeter.micro.");
    expect_name(&m, m.rr[2].name, "n1.greeter.micro.");
    expect_name(&m, m.rr[2].target, "greeter.micro.");
    expect_name(&m, m.rr[3].name, "N1.Greeter.micro.");
    micro__dns_msg_free(&m);
    free(wire);
}

/* Pointers parsed from other encoders: to an earlier name, to the middle
 * of one, through a chain; the limit on pointers per name. */
static void
test_pointers_accepted(void **state)
{
    (void) state;
    wbuf w;
    whead(&w, 3, 0, 0, 0);
    wbytes(&w, GREETER, sizeof(GREETER)); /* 12 */
    w16(&w, 1);
    w16(&w, 1);
    w8(&w, 1); /* 31: "x" then the middle of GREETER ("micro.") */
    w8(&w, 'x');
    w16(&w, 0xc000 | 20);
    w16(&w, 1);
    w16(&w, 1);
    w8(&w, 1); /* "y" then a pointer to the name at 31 */
    w8(&w, 'y');
    w16(&w, 0xc000 | 31);
    w16(&w, 1);
    w16(&w, 1);
    micro_dns_msg m;
    uint8_t *copy;
    assert_int_equal(parse_exact(&m, w.b, w.n, &copy), 0);
    expect_name(&m, m.rr[0].name, "greeter.micro.");
    expect_name(&m, m.rr[1].name, "x.micro.");
    expect_name(&m, m.rr[2].name, "y.x.micro.");
    micro__dns_msg_free(&m);
    free(copy);

    /* A chain of 128 pointers, each to the one before it, ending at the
     * root name at 12, is accepted; 129 are not. */
    for (unsigned hops = 128; hops <= 129; hops++) {
        wbuf c;
        whead(&c, 1, 1, 0, 1);
        w8(&c, 0); /* 12: a question for the root */
        w16(&c, 1);
        w16(&c, 1);
        /* 17: an opaque record holding the chain from 28 on: pointer k
         * points at pointer k - 1, pointer 0 at the root at 12. */
        w8(&c, 0);
        wrr_fixed(&c, 99, (hops - 1) * 2);
        size_t first = c.n;
        for (unsigned k = 0; k + 1 < hops; k++) {
            w16(&c, 0xc000 | (unsigned) (k == 0 ? 12 : first + 2 * (k - 1)));
        }
        /* An additional record owned by a pointer to the last one. */
        w16(&c, 0xc000 | (unsigned) (first + 2 * (hops - 2)));
        wrr_fixed(&c, 99, 0);
        uint8_t *cc;
        int rc = parse_exact(&m, c.b, c.n, &cc);
        if (hops == 128) {
            assert_int_equal(rc, 0);
            size_t n;
            const micro_dns_rr *ar =
                micro__dns_section(&m, MICRO_DNS_ADDITIONAL, &n);
            assert_int_equal(n, 1);
            expect_name(&m, ar[0].name, ".");
        } else {
            assert_int_equal(rc, MICRO_EPROTO);
        }
        micro__dns_msg_free(&m);
        free(cc);
    }
}

/* ------------------------------------------------------------------ */
/* Malformed                                                            */

static void
test_bad_pointers(void **state)
{
    (void) state;
    wbuf w;
    /* Points at itself. */
    whead(&w, 1, 0, 0, 0);
    w16(&w, 0xc000 | 12);
    w16(&w, 1);
    w16(&w, 1);
    expect_bad(w.b, w.n);
    /* A label, then back to it: a loop. */
    whead(&w, 1, 0, 0, 0);
    w8(&w, 1);
    w8(&w, 'a');
    w16(&w, 0xc000 | 12);
    w16(&w, 1);
    w16(&w, 1);
    expect_bad(w.b, w.n);
    /* Two names pointing at each other. */
    whead(&w, 2, 0, 0, 0);
    w8(&w, 1); /* 12: "a" -> 20 */
    w8(&w, 'a');
    w16(&w, 0xc000 | 20);
    w16(&w, 1);
    w16(&w, 1);
    w8(&w, 1); /* 20: "b" -> 12 */
    w8(&w, 'b');
    w16(&w, 0xc000 | 12);
    w16(&w, 1);
    w16(&w, 1);
    expect_bad(w.b, w.n);
    /* Forward, to a valid name later in the packet. */
    whead(&w, 2, 0, 0, 0);
    w16(&w, 0xc000 | 18);
    w16(&w, 1);
    w16(&w, 1);
    wbytes(&w, GREETER, sizeof(GREETER)); /* 18 */
    w16(&w, 1);
    w16(&w, 1);
    expect_bad(w.b, w.n);
    /* Past the end. */
    whead(&w, 1, 0, 0, 0);
    w16(&w, 0xc000 | 0x3fff);
    w16(&w, 1);
    w16(&w, 1);
    expect_bad(w.b, w.n);
    /* Into the header. */
    whead(&w, 1, 0, 0, 0);
    w16(&w, 0xc000 | 4);
    w16(&w, 1);
    w16(&w, 1);
    expect_bad(w.b, w.n);
    /* Cut after its first octet: the last octet of the packet. */
    whead(&w, 2, 0, 0, 0);
    wbytes(&w, GREETER, sizeof(GREETER));
    w16(&w, 1);
    w16(&w, 1);
    w8(&w, 0xc0);
    expect_bad(w.b, w.n);
}

static void
test_bad_labels(void **state)
{
    (void) state;
    wbuf w;
    /* Label types 01 and 10 (a length of 64..191). */
    for (unsigned t = 0x40; t <= 0x80; t += 0x40) {
        whead(&w, 1, 0, 0, 0);
        w8(&w, t);
        for (int i = 0; i < 70; i++) {
            w8(&w, 'a');
        }
        w8(&w, 0);
        w16(&w, 1);
        w16(&w, 1);
        expect_bad(w.b, w.n);
    }
    /* Five labels of 63: 321 octets. */
    whead(&w, 1, 0, 0, 0);
    for (int l = 0; l < 5; l++) {
        w8(&w, 63);
        for (int i = 0; i < 63; i++) {
            w8(&w, 'a');
        }
    }
    w8(&w, 0);
    w16(&w, 1);
    w16(&w, 1);
    expect_bad(w.b, w.n);
    /* Over 255 only through a pointer: a name of 253 octets (three
     * labels of 63, one of 59, the root), then "b" + a pointer to it is
     * 255 octets, and fine, and "bb" + the pointer is 256. */
    for (size_t extra = 1; extra <= 2; extra++) {
        whead(&w, 2, 0, 0, 0);
        for (int l = 0; l < 4; l++) {
            int ll = l < 3 ? 63 : 59;
            w8(&w, (unsigned) ll);
            for (int i = 0; i < ll; i++) {
                w8(&w, 'a');
            }
        }
        w8(&w, 0);
        assert_int_equal(w.n, 12 + 253);
        w16(&w, 1);
        w16(&w, 1);
        w8(&w, (unsigned) extra);
        for (size_t i = 0; i < extra; i++) {
            w8(&w, 'b');
        }
        w16(&w, 0xc000 | 12);
        w16(&w, 1);
        w16(&w, 1);
        if (extra == 2) {
            expect_bad(w.b, w.n);
            continue;
        }
        micro_dns_msg m;
        uint8_t *copy;
        assert_int_equal(parse_exact(&m, w.b, w.n, &copy), 0);
        char text[MICRO_DNS_NAME_TEXT_MAX];
        assert_int_equal(
            micro__dns_name_text(&m, m.rr[1].name, text, sizeof(text)),
            2 + 3 * 64 + 60);
        micro__dns_msg_free(&m);
        free(copy);
    }
    /* A label that runs past the end. */
    whead(&w, 1, 0, 0, 0);
    w8(&w, 63);
    for (int i = 0; i < 10; i++) {
        w8(&w, 'a');
    }
    expect_bad(w.b, w.n);
    /* No root label before the end. */
    whead(&w, 1, 0, 0, 0);
    for (int i = 0; i < 3; i++) {
        w8(&w, 1);
        w8(&w, 'a');
    }
    expect_bad(w.b, w.n);
}

/* Every strict prefix of a valid message is rejected. */
static void
test_truncated(void **state)
{
    (void) state;
    static const uint8_t ip[16] = { 1 };
    const char *txt[] = { "hello", "world" };
    micro_dns_builder b;
    micro__dns_builder_init(&b, 1, MICRO_DNS_QR);
    micro__dns_add_question(&b, "s.micro.", MICRO_DNS_PTR, 1);
    micro__dns_add_ptr(&b, MICRO_DNS_ANSWER, "s.micro.", 1, "i.s.micro.");
    micro__dns_add_srv(&b, MICRO_DNS_ANSWER, "i.s.micro.", 1, 0, 0, 1, "h.");
    micro__dns_add_addr(&b, MICRO_DNS_ANSWER, "h.", 1, ip, 16);
    micro__dns_add_txt(&b, MICRO_DNS_ANSWER, "i.s.micro.", 1, txt, 2);
    micro__dns_add_addr(&b, MICRO_DNS_ADDITIONAL, "i.s.micro.", 1, ip, 4);
    uint8_t *wire;
    size_t len;
    assert_int_equal(micro__dns_builder_finish(&b, &wire, &len), 0);
    for (size_t n = 0; n < len; n++) {
        expect_bad(wire, n);
    }
    micro_dns_msg m;
    uint8_t *copy;
    assert_int_equal(parse_exact(&m, wire, len, &copy), 0);
    micro__dns_msg_free(&m);
    free(copy);
    free(wire);
}

static void
test_bad_counts(void **state)
{
    (void) state;
    wbuf w;
    whead(&w, 1, 1, 0, 0);
    wbytes(&w, GREETER, sizeof(GREETER));
    w16(&w, 1);
    w16(&w, 1);
    w16(&w, 0xc000 | 12);
    wrr_fixed(&w, MICRO_DNS_A, 4);
    wbytes(&w, "\x7f\0\0\x01", 4);
    micro_dns_msg m;
    uint8_t *copy;
    assert_int_equal(parse_exact(&m, w.b, w.n, &copy), 0);
    micro__dns_msg_free(&m);
    free(copy);
    /* Each count one larger, then all of them at their maximum. */
    for (int s = 0; s < 4; s++) {
        w.b[5 + 2 * s]++;
        expect_bad(w.b, w.n);
        w.b[5 + 2 * s]--;
    }
    memset(w.b + 4, 0xff, 8);
    expect_bad(w.b, w.n);
    /* Shorter than a header; longer than a DNS message can be. */
    expect_bad(w.b, 11);
    uint8_t *big = calloc(1, MICRO_DNS_MSG_MAX + 1);
    assert_non_null(big);
    assert_int_equal(micro__dns_parse(&m, big, MICRO_DNS_MSG_MAX + 1),
        MICRO_EPROTO);
    assert_int_equal(micro__dns_parse(&m, big, MICRO_DNS_MSG_MAX), 0);
    micro__dns_msg_free(&m);
    free(big);
}

/* RDATA that does not fit its type. */
static void
test_bad_rdata(void **state)
{
    (void) state;
    struct {
        unsigned type;
        unsigned rdlen; /* declared */
        const char *rdata;
        size_t n; /* actual */
    } cases[] = {
        { MICRO_DNS_A, 3, "\1\2\3", 3 },
        { MICRO_DNS_A, 5, "\1\2\3\4\5", 5 },
        { MICRO_DNS_AAAA, 4, "\1\2\3\4", 4 },
        { MICRO_DNS_AAAA, 17, "0123456789abcdefg", 17 },
        /* PTR: a name shorter or longer than RDLENGTH; none at all. */
        { MICRO_DNS_PTR, 4, "\1x\0\0", 4 },
        { MICRO_DNS_PTR, 2, "\1x\0", 3 },
        { MICRO_DNS_PTR, 0, "", 0 },
        /* SRV: too short for the numbers; a name past its RDATA. */
        { MICRO_DNS_SRV, 6, "\0\0\0\0\0\1", 6 },
        { MICRO_DNS_SRV, 8, "\0\0\0\0\0\1\1x\0", 9 },
        /* TXT: a string past its RDATA. */
        { MICRO_DNS_TXT, 3, "\3ab\0", 4 },
        { MICRO_DNS_TXT, 5, "\1a\4bc\0", 6 },
        /* Any type: RDATA past the end of the packet. */
        { 99, 10, "abc", 3 },
        { MICRO_DNS_TXT, 10, "\3abc", 4 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wbuf w;
        whead(&w, 0, 1, 0, 0);
        w8(&w, 0);
        wrr_fixed(&w, cases[i].type, cases[i].rdlen);
        wbytes(&w, cases[i].rdata, cases[i].n);
        expect_bad(w.b, w.n);
    }
    /* The same records well-formed parse. */
    wbuf w;
    whead(&w, 0, 4, 0, 0);
    w8(&w, 0);
    wrr_fixed(&w, MICRO_DNS_PTR, 3);
    wbytes(&w, "\1x\0", 3);
    w8(&w, 0);
    wrr_fixed(&w, MICRO_DNS_SRV, 9);
    wbytes(&w, "\0\0\0\0\0\1\1x\0", 9);
    w8(&w, 0);
    wrr_fixed(&w, MICRO_DNS_TXT, 6);
    wbytes(&w, "\1a\3bc\0", 6);
    w8(&w, 0);
    wrr_fixed(&w, MICRO_DNS_SRV, 8); /* a compressed target */
    wbytes(&w, "\0\0\0\0\0\2\xc0\x0c", 8);
    micro_dns_msg m;
    uint8_t *copy;
    assert_int_equal(parse_exact(&m, w.b, w.n, &copy), 0);
    expect_name(&m, m.rr[0].target, "x.");
    assert_int_equal(m.rr[1].port, 1);
    expect_name(&m, m.rr[1].target, "x.");
    assert_int_equal(m.rr[3].port, 2);
    expect_name(&m, m.rr[3].target, ".");
    micro__dns_msg_free(&m);
    free(copy);
}

/* ------------------------------------------------------------------ */
/* Builder errors                                                       */

static void
test_builder_errors(void **state)
{
    (void) state;
    micro_dns_builder b;
    uint8_t *wire = (uint8_t *) "x";
    size_t len = 1;
    static const uint8_t ip[5] = { 0 };

    /* A bad name sticks: later calls fail too, finish reports it. */
    micro__dns_builder_init(&b, 0, 0);
    assert_int_equal(
        micro__dns_add_question(&b, "a..b.", MICRO_DNS_A, 1), MICRO_EINVAL);
    assert_int_equal(
        micro__dns_add_question(&b, "ok.", MICRO_DNS_A, 1), MICRO_EINVAL);
    assert_int_equal(micro__dns_builder_finish(&b, &wire, &len), MICRO_EINVAL);
    assert_null(wire);
    assert_int_equal(len, 0);

    char s256[257];
    memset(s256, 'a', 256);
    s256[256] = '\0';
    const char *txt[] = { s256 };
    int r[6];
    micro__dns_builder_init(&b, 0, 0);
    r[0] = micro__dns_add_txt(&b, MICRO_DNS_ANSWER, "a.", 1, txt, 1);
    micro__dns_builder_fini(&b);
    micro__dns_builder_init(&b, 0, 0);
    r[1] = micro__dns_add_addr(&b, MICRO_DNS_ANSWER, "a.", 1, ip, 5);
    micro__dns_builder_fini(&b);
    micro__dns_builder_init(&b, 0, 0);
    micro__dns_add_ptr(&b, MICRO_DNS_ADDITIONAL, "a.", 1, "b.");
    r[2] = micro__dns_add_ptr(&b, MICRO_DNS_ANSWER, "a.", 1, "b.");
    micro__dns_builder_fini(&b);
    micro__dns_builder_init(&b, 0, 0);
    micro__dns_add_ptr(&b, MICRO_DNS_ANSWER, "a.", 1, "b.");
    r[3] = micro__dns_add_question(&b, "a.", MICRO_DNS_A, 1);
    micro__dns_builder_fini(&b);
    micro__dns_builder_init(&b, 0, 0);
    r[4] = micro__dns_add_ptr(&b, MICRO_DNS_QUESTION, "a.", 1, "b.");
    micro__dns_builder_fini(&b);
    micro__dns_builder_init(&b, 0, 0);
    r[5] = micro__dns_add_ptr(&b, MICRO_DNS_ANSWER, "a.", 1, "b..");
    micro__dns_builder_fini(&b);
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(r[i], MICRO_EINVAL);
    }

    /* Over 65535 octets. */
    char s255[256];
    memset(s255, 'a', 255);
    s255[255] = '\0';
    const char *big[16];
    for (size_t i = 0; i < 16; i++) {
        big[i] = s255;
    }
    micro__dns_builder_init(&b, 0, 0);
    int rc = 0;
    size_t added = 0;
    while (rc == 0) {
        rc = micro__dns_add_txt(&b, MICRO_DNS_ANSWER, "a.", 1, big, 16);
        added += rc == 0;
    }
    assert_int_equal(rc, MICRO_EMSGSIZE);
    /* Each record is its owner (3 octets, then a 2-octet pointer), 10,
     * and 16 * 256 of RDATA: 15 fit after the header, 16 do not. */
    assert_int_equal(added, 15);
    assert_int_equal(micro__dns_builder_finish(&b, &wire, &len),
        MICRO_EMSGSIZE);
    assert_null(wire);

    /* Exactly 65535 octets is fine: the header, then two TXT records
     * made to measure. */
    micro__dns_builder_init(&b, 0, 0);
    size_t room = MICRO_DNS_MSG_MAX - 12;
    static const char *strs[256];
    char tail[256];
    while (room > 0) {
        /* Each record: owner "a." (3, or a pointer, 2), 10, RDATA. */
        size_t head = b.len > 12 ? 2 + 10 : 3 + 10;
        size_t rd = room - head;
        if (rd > 60000) {
            rd = 60000;
        }
        size_t ns = 0;
        for (; ns < rd / 256; ns++) {
            strs[ns] = s255;
        }
        if (rd % 256 != 0) {
            memset(tail, 'b', rd % 256 - 1);
            tail[rd % 256 - 1] = '\0';
            strs[ns++] = tail;
        }
        assert_int_equal(
            micro__dns_add_txt(&b, MICRO_DNS_ANSWER, "a.", 1, strs, ns), 0);
        room -= head + rd;
    }
    assert_int_equal(micro__dns_builder_finish(&b, &wire, &len), 0);
    assert_int_equal(len, MICRO_DNS_MSG_MAX);
    micro_dns_msg m;
    assert_int_equal(micro__dns_parse(&m, wire, len), 0);
    assert_int_equal(m.count[MICRO_DNS_ANSWER], 2);
    micro__dns_msg_free(&m);
    free(wire);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_empty_message),
        cmocka_unit_test(test_header_and_trailing),
        cmocka_unit_test(test_opaque),
        cmocka_unit_test(test_name_text_to_wire),
        cmocka_unit_test(test_name_text_round_trip),
        cmocka_unit_test(test_compression),
        cmocka_unit_test(test_pointers_accepted),
        cmocka_unit_test(test_bad_pointers),
        cmocka_unit_test(test_bad_labels),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bad_counts),
        cmocka_unit_test(test_bad_rdata),
        cmocka_unit_test(test_builder_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
