/* TLS and mutual TLS over the http transport, with real OpenSSL on both
 * sides and certificates made by the test in a temp dir: unary calls and
 * streams, verification failures (unknown CA, expired, wrong name, no
 * client certificate under mTLS) reported on both sides while the server
 * keeps serving, a client that stalls mid-handshake, garbage instead of a
 * ClientHello, certificate reload without restart, a TLS peer that never
 * reads, self-signed certificates, and ALPN at the byte-stream layer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/aio.h"
#include "io/tls.h"
#include "support/raw_http.h"
#include "support/logcap.h"
#include "support/support.h"
#include "support/tlsfx.h"
#include "support/tlscerts.h"

#define C t_tls_certs /* support/tlscerts.h */

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------ */
/* Handlers.                                                            */

static int
h_hello(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t len = 0;
    const void *b = micro_request_body(req, &len);
    return micro_response_set_body(rsp, b, len);
}

/* 64 KiB answers, for a peer that never reads. */
static int
h_big(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) arg;
    static char big[64 * 1024 + 3];
    big[0] = '"';
    memset(big + 1, 'b', sizeof(big) - 3);
    big[sizeof(big) - 2] = '"';
    big[sizeof(big) - 1] = '\0';
    return micro_response_set_body(rsp, big, sizeof(big) - 1);
}

static int
echo_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    return micro_stream_send(s, body, len);
}

static void
echo_end(micro_stream *s, int rc, void *arg)
{
    (void) arg;
    if (rc == MICRO_EOF) {
        micro_stream_close_send(s);
    }
}

/* ------------------------------------------------------------------ */
/* A TLS server (support/tlsfx.h) with these handlers.                  */

static void
handlers(micro_server *s)
{
    micro_handler_desc d = {.endpoint = "T.Hello", .fn = h_hello};
    assert_int_equal(micro_server_handle(s, &d), 0);
    micro_handler_desc b = {.endpoint = "T.Big", .fn = h_big};
    assert_int_equal(micro_server_handle(s, &b), 0);
    micro_stream_handler h = {.size = sizeof(h), .endpoint = "T.Echo",
        .on_msg = echo_msg, .on_end = echo_end};
    assert_int_equal(micro_server_handle_stream(s, &h), 0);
}

static void
srv_start(t_tls_srv *v, const char *const *kv)
{
    t_tls_srv_start(v, NULL, kv, handlers);
}

/* One unary call to addr: rc, and the body in out when given. */
static int
call(t_tls_cli *c, const char *addr, const char *body, char *out, size_t cap)
{
    micro_call_opts co = MICRO_CALL_OPTS_INIT;
    co.address = addr;
    co.timeout_ms = 10000;
    co.retries = MICRO_CALL_NO_RETRY;
    micro_call *k = NULL;
    int rc = micro_client_call(c->c, "svc", "T.Hello", body, strlen(body),
        &co, &k);
    if (rc == 0 && out != NULL) {
        size_t n = 0;
        const char *b = micro_call_body(k, &n);
        while (n > 0 && b[n - 1] == '\n') {
            n--; /* the JSON codec's line end */
        }
        snprintf(out, cap, "%.*s", (int) n, b);
    }
    micro_call_free(k);
    return rc;
}

/* t_tls_call_fn: "ok" echoed. */
static int
call_ok(t_tls_cli *c, const char *addr)
{
    char out[64];
    int rc = call(c, addr, "\"ok\"", out, sizeof(out));
    if (rc == 0) {
        assert_string_equal(out, "\"ok\"");
    }
    return rc;
}

static void
good_call(t_tls_srv *v)
{
    t_tls_good_call(v, NULL, call_ok);
}

/* ------------------------------------------------------------------ */
/* Tests.                                                               */

static void
test_unary_and_stream(void **state)
{
    (void) state;
    t_tls_srv v;
    const char *skv[] = {t_kv("transport_tls_cert_file", C.srv),
        t_kv("transport_tls_key_file", C.srv_key), NULL};
    srv_start(&v, skv);
    t_tls_cli c;
    const char *ckv[] = {t_kv("transport_tls_ca_file", C.ca), NULL};
    t_tls_cli_new(&c, NULL, ckv);
    char out[64];
    for (int i = 0; i < 20; i++) { /* pooled: one handshake, many calls */
        assert_int_equal(call(&c, v.addr, "\"hi\"", out, sizeof(out)), 0);
        assert_string_equal(out, "\"hi\"");
    }
    /* A 1 MiB body each way: many records, partial reads, queued
     * ciphertext drained. */
    size_t big = (size_t) 1 << 20;
    char *body = malloc(big + 3);
    assert_non_null(body);
    body[0] = '"';
    for (size_t i = 1; i <= big; i++) {
        body[i] = (char) ('a' + i % 26);
    }
    body[big + 1] = '"';
    body[big + 2] = '\0';
    micro_call_opts bo = MICRO_CALL_OPTS_INIT;
    bo.address = v.addr;
    bo.timeout_ms = 20000;
    micro_call *bk = NULL;
    assert_int_equal(micro_client_call(c.c, "svc", "T.Hello", body, big + 2,
                         &bo, &bk), 0);
    size_t bn = 0;
    const char *bb = micro_call_body(bk, &bn);
    assert_true(bn >= big + 2);
    assert_memory_equal(bb, body, big + 2);
    micro_call_free(bk);
    free(body);
    /* "localhost" is in the certificate too. */
    char byname[80];
    snprintf(byname, sizeof(byname), "localhost:%s",
        strrchr(v.addr, ':') + 1);
    assert_int_equal(call(&c, byname, "\"n\"", out, sizeof(out)), 0);

    /* A stream: fresh connection, several messages each way, clean end. */
    micro_call_opts co = MICRO_CALL_OPTS_INIT;
    co.address = v.addr;
    co.timeout_ms = 10000;
    micro_stream *st = NULL;
    assert_int_equal(micro_client_stream(c.c, "svc", "T.Echo", &co, &st), 0);
    for (int i = 0; i < 5; i++) {
        char m[32];
        snprintf(m, sizeof(m), "\"m%d\"", i);
        assert_int_equal(micro_stream_send(st, m, strlen(m)), 0);
        micro_buf b = {0};
        assert_int_equal(micro_stream_recv(st, &b), 0);
        assert_true(b.len >= strlen(m));
        assert_memory_equal(b.data, m, strlen(m));
        micro_buf_clear(&b);
    }
    assert_int_equal(micro_stream_close_send(st), 0);
    micro_buf b = {0};
    assert_int_equal(micro_stream_recv(st, &b), MICRO_EOF);
    micro_stream_free(st);

    /* A plain client cannot talk to it. */
    t_tls_cli p;
    const char *pkv[] = {"transport_secure=false", NULL};
    t_tls_cli_new(&p, NULL, pkv);
    assert_int_not_equal(call(&p, v.addr, "\"x\"", NULL, 0), 0);
    t_tls_cli_free(&p);
    assert_int_equal(call(&c, v.addr, "\"again\"", out, sizeof(out)), 0);
    t_tls_cli_free(&c);
    t_tls_srv_stop(&v);
}

/* The client refuses: unknown CA (self-signed server), expired server
 * certificate, a name the certificate does not carry. Each is
 * MICRO_ECERT with the reason logged; tls_insecure_skip_verify
 * accepts them. */
static void
test_client_verification(void **state)
{
    (void) state;
    struct {
        const char *cert, *key, *why;
        bool name_only;
    } cases[] = {
        {NULL, NULL, "self-signed certificate", false},
        {C.old_srv, C.old_srv_key, "certificate has expired", false},
        {C.name_srv, C.name_srv_key, "address mismatch", false},
        {C.name_srv, C.name_srv_key, NULL, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        t_tls_srv v;
        const char *skv[] = {NULL, NULL, NULL};
        if (cases[i].cert != NULL) {
            skv[0] = t_kv("transport_tls_cert_file", cases[i].cert);
            skv[1] = t_kv("transport_tls_key_file", cases[i].key);
        }
        srv_start(&v, skv);
        t_tls_cli c;
        const char *ckv[] = {t_kv("transport_tls_ca_file", C.ca),
            cases[i].name_only
                ? t_kv("transport_tls_server_name", "other.example")
                : NULL,
            NULL};
        t_tls_cli_new(&c, NULL, ckv);
        t_logcap_reset();
        int rc = call(&c, v.addr, "\"x\"", NULL, 0);
        if (cases[i].name_only) {
            /* transport_tls_server_name makes the same certificate fine. */
            assert_int_equal(rc, 0);
        } else {
            print_message("  %s: %s\n", cases[i].why, micro_strerror(rc));
            assert_int_equal(rc, MICRO_ECERT);
            assert_true(t_logcap_has("TLS handshake with", cases[i].why));
            /* The server heard of it too (the client's alert). */
            assert_true(t_logcap_has("TLS handshake with", "alert"));
            t_tls_cli ins;
            const char *ikv[] = {"tls_insecure_skip_verify=true", NULL};
            t_tls_cli_new(&ins, NULL, ikv);
            assert_int_equal(call(&ins, v.addr, "\"y\"", NULL, 0), 0);
            t_tls_cli_free(&ins);
        }
        t_tls_cli_free(&c);
        t_tls_srv_stop(&v);
    }
}

/* mTLS: no client certificate, one from another CA and an expired one
 * are refused with their reasons logged on both sides; the right one
 * works, and the server serves throughout. */
static void
test_mtls(void **state)
{
    (void) state;
    t_tls_srv v;
    srv_start(&v, t_tls_srv_kv(true));
    t_tls_mtls_refusals(&v, NULL, call_ok, "transport.http", true);
    t_tls_srv_stop(&v);
}

/* A client that sends half a ClientHello and stalls is dropped at the
 * handshake deadline; one that sends HTTP instead of TLS at once. Others
 * are served all along. */
static void
test_stall_and_garbage(void **state)
{
    (void) state;
    t_tls_srv v;
    const char *skv[] = {t_kv("transport_tls_cert_file", C.srv),
        t_kv("transport_tls_key_file", C.srv_key),
        "transport_tls_handshake_timeout=300ms", NULL};
    srv_start(&v, skv);
    t_logcap_reset();
    int stall = t_raw_dial(v.addr);
    /* A TLS record header announcing 512 bytes, then 10 of them. */
    static const unsigned char part[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
        0x00, 0x01, 0xfc, 0x03, 0x03, 0, 0, 0, 0};
    assert_int_equal(send(stall, part, sizeof(part), 0), (ssize_t) sizeof(part));
    good_call(&v);
    assert_int_equal(t_wait_closed(stall, 20000), 0);
    assert_true(t_logcap_has("not complete after 300 ms", "dropped"));
    close(stall);

    int junk = t_raw_dial(v.addr);
    static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(junk, get, sizeof(get) - 1, 0),
        (ssize_t) sizeof(get) - 1);
    assert_int_equal(t_wait_closed(junk, 20000), 0);
    assert_true(t_logcap_has("TLS handshake with", "http request"));
    close(junk);

    int bin = t_raw_dial(v.addr);
    unsigned char noise[256];
    for (size_t i = 0; i < sizeof(noise); i++) {
        noise[i] = (unsigned char) (i * 7 + 3);
    }
    noise[0] = 0x16; /* a handshake record with nonsense inside */
    assert_int_equal(send(bin, noise, sizeof(noise), 0),
        (ssize_t) sizeof(noise));
    assert_int_equal(t_wait_closed(bin, 20000), 0);
    close(bin);
    good_call(&v);
    t_tls_srv_stop(&v);
}

/* New handshakes use a replaced certificate; established connections go
 * on with theirs. */
static void
test_reload(void **state)
{
    (void) state;
    char live[256], live_key[256];
    snprintf(live, sizeof(live), "%s/live0.pem", C.dir);
    snprintf(live_key, sizeof(live_key), "%s/live0.key", C.dir);
    assert_int_equal(t_file_copy(C.srv, live), 0);
    assert_int_equal(t_file_copy(C.srv_key, live_key), 0);
    t_tls_srv v;
    const char *skv[] = {t_kv("transport_tls_cert_file", live),
        t_kv("transport_tls_key_file", live_key), NULL};
    srv_start(&v, skv);
    t_tls_cli a; /* trusts the first CA */
    const char *akv[] = {t_kv("transport_tls_ca_file", C.ca), NULL};
    t_tls_cli_new(&a, NULL, akv);
    t_tls_cli b; /* trusts the other CA, which signed the replacement */
    const char *bkv[] = {t_kv("transport_tls_ca_file", C.other_ca), NULL};
    t_tls_cli_new(&b, NULL, bkv);
    assert_int_equal(call(&a, v.addr, "\"1\"", NULL, 0), 0);
    assert_int_equal(call(&b, v.addr, "\"1\"", NULL, 0), MICRO_ECERT);

    /* A stream on the old certificate stays open across the reload. */
    micro_call_opts co = MICRO_CALL_OPTS_INIT;
    co.address = v.addr;
    co.timeout_ms = 20000;
    micro_stream *st = NULL;
    assert_int_equal(micro_client_stream(a.c, "svc", "T.Echo", &co, &st), 0);
    assert_int_equal(micro_stream_send(st, "\"a\"", 3), 0);
    micro_buf m = {0};
    assert_int_equal(micro_stream_recv(st, &m), 0);
    micro_buf_clear(&m);

    t_logcap_reset();
    assert_int_equal(t_file_copy(C.alt_srv, live), 0);
    assert_int_equal(t_file_copy(C.alt_srv_key, live_key), 0);
    /* New connections (a's pooled one would still be the old). */
    t_tls_cli a2;
    t_tls_cli_new(&a2, NULL, akv);
    assert_int_equal(call(&b, v.addr, "\"2\"", NULL, 0), 0);
    assert_int_equal(call(&a2, v.addr, "\"2\"", NULL, 0), MICRO_ECERT);
    assert_true(t_logcap_has("certificate files changed", "reloaded"));

    assert_int_equal(micro_stream_send(st, "\"b\"", 3), 0);
    assert_int_equal(micro_stream_recv(st, &m), 0);
    assert_true(m.len >= 3 && memcmp(m.data, "\"b\"", 3) == 0);
    micro_buf_clear(&m);
    assert_int_equal(micro_stream_close_send(st), 0);
    assert_int_equal(micro_stream_recv(st, &m), MICRO_EOF);
    micro_stream_free(st);

    /* A broken replacement is refused and the current one kept. */
    FILE *f = fopen(live, "w");
    assert_non_null(f);
    fputs("-----BEGIN CERTIFICATE-----\nnot one\n", f);
    fclose(f);
    assert_int_equal(call(&b, v.addr, "\"3\"", NULL, 0) == 0 ||
            call(&b, v.addr, "\"3\"", NULL, 0) == 0, 1);
    t_tls_cli b2;
    t_tls_cli_new(&b2, NULL, bkv);
    assert_int_equal(call(&b2, v.addr, "\"4\"", NULL, 0), 0);
    assert_true(t_logcap_has("do not load", "keeping the previous"));
    t_tls_cli_free(&b2);
    t_tls_cli_free(&a2);
    t_tls_cli_free(&a);
    t_tls_cli_free(&b);
    t_tls_srv_stop(&v);
}

/* Without a certificate the server makes a self-signed one for its listen
 * host, as Go Micro: O=Acme Co, IsCA, ECDSA P-256, a year. A verifying
 * client refuses it; one given it as CA accepts it. */
static void
test_self_signed(void **state)
{
    (void) state;
    t_tls_srv v;
    srv_start(&v, NULL);
    char host[64];
    int port = 0;
    struct sockaddr_storage ss;
    micro__addr_parse(v.addr, host, sizeof(host), &port, &ss);
    int fd = t_raw_dial(v.addr);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1);
    assert_int_equal(SSL_connect(ssl), 1);
    X509 *x = SSL_get1_peer_certificate(ssl);
    assert_non_null(x);
    char subj[256];
    X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
    print_message("  self-signed: %s\n", subj);
    assert_non_null(strstr(subj, "O = Acme Co") ? subj : strstr(subj, "O=Acme Co"));
    assert_int_equal(X509_check_ca(x) > 0, 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    EVP_PKEY *pk = X509_get0_pubkey(x);
    assert_int_equal(EVP_PKEY_get_bits(pk), 256);
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x),
                         X509_get0_notAfter(x)), 1);
    assert_int_equal(days, 365);
    const unsigned char *sel = NULL;
    unsigned sl = 0;
    SSL_get0_alpn_selected(ssl, &sel, &sl);
    assert_int_equal(sl, 8);
    assert_memory_equal(sel, "http/1.1", 8);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    X509_free(x);
    t_tls_srv_stop(&v);
}

/* A TLS peer that pipelines requests for 64 KiB answers and never reads:
 * the server stops reading it once its unsent ciphertext passes the
 * window, does not drop it, and serves others; memory stays bounded. */
static void
test_never_reads(void **state)
{
    (void) state;
    t_tls_srv v;
    const char *skv[] = {t_kv("transport_tls_cert_file", C.srv),
        t_kv("transport_tls_key_file", C.srv_key), "transport_window=262144",
        NULL};
    srv_start(&v, skv);
    int fd = t_raw_dial(v.addr);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    assert_int_equal(SSL_connect(ssl), 1);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    /* 16 KiB requests (the body is ignored), as the plain-TCP test. */
    static char req[17000];
    static char pad[16384];
    memset(pad, 'p', sizeof(pad) - 1);
    int n = snprintf(req, sizeof(req),
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Micro-Service: svc\r\nMicro-Endpoint: T.Big\r\n"
        "Micro-Method: T.Big\r\nContent-Length: %zu\r\n\r\n"
        "{\"pad\":\"%s\"}", sizeof(pad) - 1 + 10, pad);
    long rss0 = t_rss_kib();
    /* Up to 1,024 requests (16 MiB; 64 MiB of answers if all were
     * taken). */
    size_t asked = 0, most = 1024;
    int64_t t0 = t_now_ms();
    while (asked < most && t_now_ms() - t0 < 20000) {
        int w = SSL_write(ssl, req, n);
        if (w == n) {
            asked++;
            continue;
        }
        int e = SSL_get_error(ssl, w);
        assert_true(e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ);
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 1000) <= 0) {
            break; /* a second without room: it stopped reading us */
        }
    }
    long grew = t_rss_kib() - rss0;
    print_message("  %zu requests taken (of %zu) before the server stopped "
                  "reading; RSS +%ld KiB\n", asked, most, grew);
    assert_true(asked < most); /* the server stopped taking them */
    good_call(&v);
    if (!T_SANITIZED_RSS) {
        assert_true(grew < 32 * 1024);
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    good_call(&v);
    t_tls_srv_stop(&v);
}

/* ------------------------------------------------------------------ */
/* The byte-stream layer directly: ALPN, both sides.                    */

typedef struct alpn_fx {
    micro__tls_ctx *sctx;
    char got[32];
    int accepted;
    micro__bs *sbs;
    micro__bs *cbs_client;
} alpn_fx;

static void
alpn_accept(void *arg, micro__bs *s)
{
    alpn_fx *f = arg;
    snprintf(f->got, sizeof(f->got), "%s", micro__tls_alpn(s));
    f->accepted++;
    f->sbs = s;
}

typedef struct listen_op {
    micro_loop *loop;
    micro__tls_ctx *ctx;
    alpn_fx *f;
    micro__io_listener *l;
} listen_op;

static int
do_listen(void *arg)
{
    listen_op *o = arg;
    return micro__io_listen(o->loop, "127.0.0.1:0", o->ctx, alpn_accept, o->f,
        &o->l);
}

static int
do_unlisten(void *arg)
{
    listen_op *o = arg;
    if (o->f->sbs != NULL) {
        micro__bs_close(o->f->sbs);
    }
    if (o->f->cbs_client != NULL) {
        micro__bs_close(o->f->cbs_client);
    }
    micro__io_listener_close(o->l);
    return 0;
}

typedef struct snap_op {
    const alpn_fx *from;
    alpn_fx *to;
} snap_op;

static int
do_snap(void *arg)
{
    snap_op *o = arg;
    *o->to = *o->from;
    return 0;
}

static void
test_alpn(void **state)
{
    (void) state;
    micro_loop *loop = NULL;
    assert_int_equal(micro_loop_new(&loop), 0);
    struct {
        const char *server, *client, *want;
    } cases[] = {
        {"h2,http/1.1", "h2", "h2"},
        {"h2,http/1.1", "http/1.1", "http/1.1"},
        {"h2", "http/1.1", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        alpn_fx f;
        memset(&f, 0, sizeof(f));
        micro__tls_conf sc = {.cert_file = C.srv, .key_file = C.srv_key,
            .alpn = cases[i].server};
        micro__tls_ctx *sctx = NULL, *cctx = NULL;
        assert_int_equal(micro__tls_ctx_new(&sctx, true, &sc), 0);
        micro__tls_conf cc = {.ca_file = C.ca, .verify = true,
            .alpn = cases[i].client};
        assert_int_equal(micro__tls_ctx_new(&cctx, false, &cc), 0);
        listen_op lo = {loop, sctx, &f, NULL};
        assert_int_equal(micro__loop_call(loop, do_listen, &lo), 0);
        micro__io_dial d;
        memset(&d, 0, sizeof(d));
        d.addr = micro__io_listener_address(lo.l);
        d.tls = cctx;
        micro__aio a;
        micro__aio_init(&a, loop, NULL, NULL);
        micro__aio_set_timeout(&a, 10000);
        assert_int_equal(micro__aio_call(&a, micro__io_dial_start, &d), 0);
        micro__bs *bs = a.out;
        assert_string_equal(micro__tls_alpn(bs), cases[i].want);
        assert_true(micro__bs_is_tls(bs));
        /* f is the loop's: read it there. */
        alpn_fx seen;
        snap_op so = {&f, &seen};
        int64_t until = t_now_ms() + 10000;
        do {
            sleep_ms(5);
            assert_int_equal(micro__loop_call(loop, do_snap, &so), 0);
        } while (seen.accepted == 0 && t_now_ms() < until);
        assert_int_equal(seen.accepted, 1);
        assert_string_equal(seen.got, cases[i].want);
        micro__tls_stats stats;
        micro__tls_ctx_stats(sctx, &stats);
        assert_int_equal(stats.handshakes, 1);
        /* Close both ends and the listener on the loop. */
        f.cbs_client = bs;
        assert_int_equal(micro__loop_call(loop, do_unlisten, &lo), 0);
        micro__tls_ctx_free(sctx);
        micro__tls_ctx_free(cctx);
    }
    micro_loop_free(loop);
}

/* A TLS stream's shutdown sends close_notify: a raw OpenSSL client reads
 * a clean end (SSL_ERROR_ZERO_RETURN), not a truncation. */
typedef struct cn_fx {
    micro__io_listener *l;
    micro_loop *loop;
    micro__tls_ctx *ctx;
    micro__bs *s;
} cn_fx;

static void
cn_read(void *arg, micro__bs *s, const char *p, size_t n)
{
    (void) arg;
    (void) s;
    (void) p;
    (void) n;
}

static void
cn_eof(void *arg, micro__bs *s, int rc)
{
    (void) arg;
    (void) s;
    (void) rc;
}

static const micro__bs_cbs cn_cbs = {.on_read = cn_read, .on_eof = cn_eof};

static void
cn_accept(void *arg, micro__bs *s)
{
    cn_fx *f = arg;
    f->s = s;
    micro__bs_set_cbs(s, &cn_cbs, f);
    micro__bs_read_start(s);
    micro_buf b = {0};
    assert_int_equal(micro_buf_append(&b, "bye", 3), 0);
    assert_int_equal(micro__bs_write(s, &b), 0);
    micro__bs_shutdown(s); /* close_notify, then FIN */
}

static int
cn_listen(void *arg)
{
    cn_fx *f = arg;
    return micro__io_listen(f->loop, "127.0.0.1:0", f->ctx, cn_accept, f,
        &f->l);
}

static int
cn_close(void *arg)
{
    cn_fx *f = arg;
    if (f->s != NULL) {
        micro__bs_close(f->s);
    }
    micro__io_listener_close(f->l);
    return 0;
}

static void
test_close_notify(void **state)
{
    (void) state;
    cn_fx f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(micro_loop_new(&f.loop), 0);
    micro__tls_conf sc = {.cert_file = C.srv, .key_file = C.srv_key};
    assert_int_equal(micro__tls_ctx_new(&f.ctx, true, &sc), 0);
    assert_int_equal(micro__loop_call(f.loop, cn_listen, &f), 0);
    int fd = t_raw_dial(micro__io_listener_address(f.l));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    assert_int_equal(SSL_connect(ssl), 1);
    char buf[16];
    int n = SSL_read(ssl, buf, sizeof(buf));
    assert_int_equal(n, 3);
    assert_memory_equal(buf, "bye", 3);
    n = SSL_read(ssl, buf, sizeof(buf));
    assert_true(n <= 0);
    assert_int_equal(SSL_get_error(ssl, n), SSL_ERROR_ZERO_RETURN);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    assert_int_equal(micro__loop_call(f.loop, cn_close, &f), 0);
    micro__tls_ctx_free(f.ctx);
    micro_loop_free(f.loop);
}

int
main(void)
{
    t_watchdog(170, "io_tls");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_and_stream),
        cmocka_unit_test(test_client_verification),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_stall_and_garbage),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_self_signed),
        cmocka_unit_test(test_never_reads),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_close_notify),
    };
    return cmocka_run_group_tests(tests, t_tls_group_setup,
        t_tls_group_teardown);
}
