/* The HTTP/1.1 parser (http/h1.c) gives the same messages, the same
 * refusals and the same size accounting however its input is cut into
 * reads: every split size from 1 byte up, over requests and responses
 * with trailers, pipelined messages and header blocks at the limit. (A
 * trailer name whose ':' began a read was refused as malformed, and a
 * field's overhead was counted once per piece, so a header block sent in
 * small segments hit the size limit early.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "http/h1.h"

typedef struct got {
    int msgs;
    char heads[4][512]; /* "k=v;" of each message, and its body */
} got;

static int
on_head(void *arg, micro__h1_head *h)
{
    (void) arg;
    (void) h;
    return MICRO__H1_BUFFER;
}

static int
on_end(void *arg, micro_msg *m, bool keep_alive)
{
    got *g = arg;
    (void) keep_alive;
    if (g->msgs < 4) {
        char *o = g->heads[g->msgs];
        size_t off = 0;
        for (size_t i = 0; i < micro_msg_header_count(m); i++) {
            const char *k, *v;
            micro_msg_header_at(m, i, &k, &v);
            off += (size_t) snprintf(o + off, 512 - off, "%s=%s;", k, v);
        }
        size_t len = 0;
        const char *b = micro_msg_body(m, &len);
        snprintf(o + off, 512 - off, "[%.*s]", (int) len, b ? b : "");
    }
    g->msgs++;
    micro_msg_free(m);
    return 0;
}

static const micro__h1_cbs cbs = {.on_head = on_head, .on_end = on_end};

/* Parse s in pieces of step bytes (0: all at once). The parse's result. */
static int
parse(micro__h1_kind kind, const micro__h1_limits *lim, const char *s,
    size_t step, got *g, size_t *header_bytes)
{
    memset(g, 0, sizeof(*g));
    micro__h1_parser p;
    micro__h1_parser_init(&p, kind, lim, &cbs, g);
    size_t n = strlen(s), off = 0;
    int rc = 0;
    while (off < n && rc == 0) {
        size_t k = step == 0 || step > n - off ? n - off : step;
        ssize_t u = micro__h1_parse(&p, s + off, k);
        if (u < 0) {
            rc = (int) u;
        } else {
            off += (size_t) u;
        }
    }
    if (header_bytes != NULL) {
        *header_bytes = p.header_bytes;
    }
    micro__h1_parser_fini(&p);
    return rc;
}

/* Every split gives what the whole input gives. */
static void
same_every_split(micro__h1_kind kind, const micro__h1_limits *lim,
    const char *s, int want_rc, int want_msgs)
{
    got whole, cut;
    int rc = parse(kind, lim, s, 0, &whole, NULL);
    assert_int_equal(rc, want_rc);
    assert_int_equal(whole.msgs, want_msgs);
    for (size_t step = 1; step <= strlen(s); step++) {
        rc = parse(kind, lim, s, step, &cut, NULL);
        if (rc != want_rc || cut.msgs != whole.msgs) {
            fprintf(stderr, "split %zu: rc %d, %d messages\n", step, rc,
                cut.msgs);
        }
        assert_int_equal(rc, want_rc);
        assert_int_equal(cut.msgs, whole.msgs);
        for (int i = 0; i < whole.msgs && i < 4; i++) {
            assert_string_equal(cut.heads[i], whole.heads[i]);
        }
    }
}

static const micro__h1_limits big = {
    .max_header = 1 << 20, .max_fields = 1000, .max_body = 1 << 20};

static void
test_trailers_any_split(void **state)
{
    (void) state;
    same_every_split(MICRO__H1_REQUEST, &big,
        "POST / HTTP/1.1\r\nHost: x\r\nMicro-Endpoint: A.B\r\n"
        "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
        "Micro-Endpoint: Evil.Trailer\r\nX-Empty:\r\nX-T: v\r\n\r\n"
        "POST / HTTP/1.1\r\nHost: x\r\nMicro-Endpoint: C.D\r\n"
        "Content-Length: 2\r\n\r\nok",
        0, 2);
    same_every_split(MICRO__H1_RESPONSE, &big,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nMicro-Stream: 7\r\n"
        "\r\n2\r\nm1\r\n0\r\nMicro-Error: EOS\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Empty:\r\n\r\n",
        0, 2);
    /* The trailer never reaches a message. */
    got g;
    assert_int_equal(parse(MICRO__H1_REQUEST, &big,
                         "POST / HTTP/1.1\r\nHost: x\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n"
                         "Micro-Endpoint: Evil\r\n\r\n",
                         1, &g, NULL),
        0);
    assert_int_equal(g.msgs, 1);
    assert_null(strstr(g.heads[0], "Evil"));
    /* Refusals are the same at every split too. */
    same_every_split(MICRO__H1_REQUEST, &big,
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\nBad Name: v\r\n\r\n",
        MICRO_EPROTO, 0);
    same_every_split(MICRO__H1_REQUEST, &big,
        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n: v\r\n\r\n",
        MICRO_EPROTO, 0);
}

/* A header block exactly at the limit is taken in any pieces; one byte
 * over is refused in any pieces. */
static void
test_header_limit_any_split(void **state)
{
    (void) state;
    const char *req = "POST /x HTTP/1.1\r\nHost: example\r\n"
                      "Micro-Endpoint: Greeter.Hello\r\nX-Long: "
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
                      "Content-Length: 0\r\n\r\n";
    got g;
    size_t used = 0;
    assert_int_equal(parse(MICRO__H1_REQUEST, &big, req, 0, &g, &used), 0);
    micro__h1_limits at = {.max_header = used, .max_fields = 4,
        .max_body = 64};
    same_every_split(MICRO__H1_REQUEST, &at, req, 0, 1);
    micro__h1_limits under = {.max_header = used - 1, .max_fields = 4,
        .max_body = 64};
    same_every_split(MICRO__H1_REQUEST, &under, req, MICRO_EMSGSIZE, 0);
    micro__h1_limits fewer = {.max_header = used, .max_fields = 3,
        .max_body = 64};
    same_every_split(MICRO__H1_REQUEST, &fewer, req, MICRO_EMSGSIZE, 0);
}

/* Trailer fields count against max_fields with the head's. */
static void
test_trailers_counted(void **state)
{
    (void) state;
    micro__h1_limits lim = {.max_header = 4096, .max_fields = 4,
        .max_body = 64};
    const char *ok = "POST / HTTP/1.1\r\nHost: x\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 2\r\n"
                     "\r\n";
    same_every_split(MICRO__H1_REQUEST, &lim, ok, 0, 1);
    const char *over = "POST / HTTP/1.1\r\nHost: x\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\n"
                       "B: 2\r\nC: 3\r\n\r\n";
    same_every_split(MICRO__H1_REQUEST, &lim, over, MICRO_EMSGSIZE, 0);
}

/* Field values: every control byte but tab is refused wherever it sits
 * (the check looks at eight bytes at a time: positions inside and across
 * words), tab and obs-text (>= 0x80) pass; values are trimmed. */
static void
test_value_bytes(void **state)
{
    (void) state;
    char req[256];
    for (int pos = 0; pos < 20; pos++) {
        for (int c = 1; c < 0x100; c++) {
            char v[24];
            memset(v, 'a', 20);
            v[20] = '\0';
            v[pos] = (char) c;
            if (c == '\r' || c == '\n' || c == ' ' || c == '\t') {
                continue; /* framing, or trimmed at the ends */
            }
            snprintf(req, sizeof(req),
                "GET / HTTP/1.1\r\nHost: x\r\nX-V: %s\r\n\r\n", v);
            got g;
            int rc = parse(MICRO__H1_REQUEST, &big, req, 0, &g, NULL);
            bool bad = c < 0x20 || c == 0x7f;
            if ((rc != 0) != bad) {
                fprintf(stderr, "byte 0x%02x at %d: rc %d\n", c, pos, rc);
            }
            assert_int_equal(rc != 0, bad);
            assert_int_equal(g.msgs, bad ? 0 : 1);
        }
    }
    got g;
    assert_int_equal(parse(MICRO__H1_REQUEST, &big,
                         "GET / HTTP/1.1\r\nHost: x\r\n"
                         "X-V: a\tb\xc3\xa9 0123456789abcdef \t\r\n\r\n",
                         0, &g, NULL),
        0);
    assert_string_equal(g.heads[0], "Host=x;X-V=a\tb\xc3\xa9 0123456789abcdef;[]");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trailers_any_split),
        cmocka_unit_test(test_header_limit_any_split),
        cmocka_unit_test(test_trailers_counted),
        cmocka_unit_test(test_value_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
