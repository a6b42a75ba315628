/*
 * gRPC over TLS (h2 chosen by ALPN) in process over loopback, with the
 * gRPC server (--server=grpc) and client (--client=grpc) under
 * transport_secure and certificates made by the test in a temp dir:
 * unary calls and a bidirectional stream; a self-signed server; mTLS
 * refusing a client without a certificate (the reason on both sides);
 * a server certificate from a CA the client does not trust; TLS clients
 * that offer no ALPN h2 refused in the handshake; a TLS server that does
 * not choose h2 refused by the client; a plaintext client; and a client
 * that stalls mid-handshake. After each refusal the server still serves.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/aio.h"
#include "io/tls.h"
#include "support/logcap.h"
#include "support/support.h"
#include "support/tlsfx.h"
#include "support/tlscerts.h"

#define CT "application/json"

#define C t_tls_certs /* support/tlscerts.h */

/* G.Hello: the request back. */
static int
h_hello(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t n = 0;
    const void *b = micro_request_body(req, &n);
    return micro_response_set_body(rsp, b, n);
}

static int
echo_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    return micro_stream_send(s, body, len);
}

/* ------------------------------------------------------------------ */
/* gRPC servers and clients over TLS (support/tlsfx.h).                 */

static void
handlers(micro_server *s)
{
    micro_handler_desc d = {.size = sizeof(d), .endpoint = "G.Hello",
        .fn = h_hello};
    assert_int_equal(micro_server_handle(s, &d), 0);
    micro_stream_handler e = {.size = sizeof(e), .endpoint = "G.Echo",
        .on_msg = echo_msg};
    assert_int_equal(micro_server_handle_stream(s, &e), 0);
}

/* The gRPC server (or, server "mucp", the mucp one over the http
 * transport) with kv. */
static void
srv_start(t_tls_srv *v, const char *server, const char *const *kv)
{
    t_tls_srv_start(v, strcmp(server, "grpc") == 0 ? &micro_server_grpc_ops
                                                   : &micro_server_mucp_ops,
        kv, handlers);
}

static void
cli_new(t_tls_cli *c, const char *const *kv)
{
    t_tls_cli_new(c, &micro_client_grpc_ops, kv);
}

/* A gRPC client verifying servers with the CA file ca. */
static void
cli_trusting(t_tls_cli *c, const char *ca)
{
    const char *kv[] = {t_kv("transport_tls_ca_file", ca), NULL};
    cli_new(c, kv);
}

/* One unary call of G.Hello: rc; the answer must be body. */
static int
call(t_tls_cli *c, const char *addr, const char *body)
{
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = addr;
    o.content_type = CT;
    o.timeout_ms = 10000;
    o.retries = MICRO_CALL_NO_RETRY;
    micro_call *k = NULL;
    int rc = micro_client_call(c->c, "pkg.svc", "G.Hello", body,
        strlen(body), &o, &k);
    if (rc == 0) {
        size_t n = 0;
        const char *b = micro_call_body(k, &n);
        assert_int_equal(n, strlen(body));
        assert_memory_equal(b, body, n);
    }
    micro_call_free(k);
    return rc;
}

static int
call_one(t_tls_cli *c, const char *addr)
{
    return call(c, addr, "\"ok\"");
}

/* A client with the CA and a client certificate: served by every server
 * of these tests (mTLS included). */
static void
good_call(const t_tls_srv *v)
{
    t_tls_good_call(v, &micro_client_grpc_ops, call_one);
}

/* ------------------------------------------------------------------ */
/* Tests.                                                               */

/* Unary calls (one connection, one handshake, many streams) and a bidi
 * stream over TLS; "localhost" verifies too; a plaintext (h2c) client
 * gets nothing from the TLS server, which keeps serving. */
static void
test_unary_and_bidi(void **state)
{
    (void) state;
    t_tls_srv v;
    srv_start(&v, "grpc", t_tls_srv_kv(false));
    t_tls_cli c;
    cli_trusting(&c, C.ca);
    for (int i = 0; i < 20; i++) {
        char b[16];
        snprintf(b, sizeof(b), "%d", i);
        assert_int_equal(call(&c, v.addr, b), 0);
    }
    char byname[80];
    snprintf(byname, sizeof(byname), "localhost:%s",
        strrchr(v.addr, ':') + 1);
    assert_int_equal(call(&c, byname, "\"n\""), 0);

    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = v.addr;
    o.content_type = CT;
    o.timeout_ms = 20000;
    micro_stream *s = NULL;
    assert_int_equal(micro_client_stream(c.c, "pkg.svc", "G.Echo", &o, &s),
        0);
    for (int i = 0; i < 50; i++) {
        char m[16];
        snprintf(m, sizeof(m), "%d", i);
        assert_int_equal(micro_stream_send(s, m, strlen(m)), 0);
        micro_buf b = {0};
        assert_int_equal(micro_stream_recv(s, &b), 0);
        assert_int_equal(b.len, strlen(m));
        assert_memory_equal(b.data, m, b.len);
        micro_buf_clear(&b);
    }
    assert_int_equal(micro_stream_close_send(s), 0);
    micro_buf b = {0};
    assert_int_equal(micro_stream_recv(s, &b), MICRO_EOF);
    micro_stream_free(s);

    t_tls_cli p;
    const char *pkv[] = {"transport_secure=false", NULL};
    cli_new(&p, pkv);
    assert_int_not_equal(call(&p, v.addr, "\"plain\""), 0);
    t_tls_cli_free(&p);
    assert_int_equal(call(&c, v.addr, "\"again\""), 0);
    t_tls_cli_free(&c);
    t_tls_srv_stop(&v);
}

/* transport_secure without a certificate: a self-signed one (Go Micro's
 * util/tls). A verifying client refuses it (MICRO_ECERT); one that skips
 * verification is served. */
static void
test_self_signed(void **state)
{
    (void) state;
    t_tls_srv v;
    srv_start(&v, "grpc", NULL);
    t_tls_cli c;
    cli_trusting(&c, C.ca);
    t_logcap_reset();
    assert_int_equal(call(&c, v.addr, "1"), MICRO_ECERT);
    assert_true(t_logcap_has("[grpc] TLS handshake with",
        "self-signed certificate"));
    t_tls_cli_free(&c);
    t_tls_cli ins;
    const char *ikv[] = {"tls_insecure_skip_verify=true", NULL};
    cli_new(&ins, ikv);
    assert_int_equal(call(&ins, v.addr, "2"), 0);
    t_tls_cli_free(&ins);
    t_tls_srv_stop(&v);
}

/* mTLS: a client without a certificate, one whose certificate comes from
 * another CA and an expired one are refused with the reason logged on
 * both sides (under TLS 1.3 the client learns it from the server's alert
 * after its own handshake: its call fails with MICRO_ECERT all the same,
 * the h2 engine passing the code to its streams); the server serves the
 * right client before and after. */
static void
test_mtls(void **state)
{
    (void) state;
    t_tls_srv v;
    srv_start(&v, "grpc", t_tls_srv_kv(true));
    good_call(&v);
    t_tls_mtls_refusals(&v, &micro_client_grpc_ops, call_one, "grpc", true);
    t_tls_srv_stop(&v);
}

/* A server whose certificate comes from a CA the client does not trust
 * (and a client that trusts only that other CA against the right
 * server): MICRO_ECERT, "unable to get local issuer" on the client, the
 * client's alert on the server. */
static void
test_wrong_ca(void **state)
{
    (void) state;
    t_tls_srv v;
    const char *skv[] = {t_kv("transport_tls_cert_file", C.alt_srv),
        t_kv("transport_tls_key_file", C.alt_srv_key), NULL};
    srv_start(&v, "grpc", skv);
    t_tls_cli c;
    cli_trusting(&c, C.ca);
    t_logcap_reset();
    assert_int_equal(call(&c, v.addr, "1"), MICRO_ECERT);
    assert_true(t_logcap_has("[grpc] TLS handshake with",
        "unable to get local issuer"));
    assert_true(t_logcap_has("[grpc] TLS handshake with", "alert"));
    t_tls_cli_free(&c);
    t_tls_srv_stop(&v);

    srv_start(&v, "grpc", t_tls_srv_kv(false));
    cli_trusting(&c, C.other_ca);
    assert_int_equal(call(&c, v.addr, "2"), MICRO_ECERT);
    t_tls_cli_free(&c);
    good_call(&v);
    t_tls_srv_stop(&v);
}

/* On the stream's loop. */
static int
close_bs(void *bs)
{
    micro__bs_close(bs);
    return 0;
}

/* TLS clients that do not offer h2 by ALPN (none at all, or only
 * http/1.1) are refused in the handshake with the no_application_protocol
 * alert: MICRO_ETLS on their side, the reason in the server's log; one
 * offering h2 completes its handshake with h2 chosen; gRPC calls go on. */
static void
test_alpn_required(void **state)
{
    (void) state;
    t_tls_srv v;
    srv_start(&v, "grpc", t_tls_srv_kv(false));
    const char *offers[] = {NULL, "http/1.1", "http/1.1,h2"};
    for (size_t i = 0; i < sizeof(offers) / sizeof(offers[0]); i++) {
        micro__tls_conf cc = {.ca_file = C.ca, .verify = true,
            .alpn = offers[i]};
        micro__tls_ctx *ctx = NULL;
        assert_int_equal(micro__tls_ctx_new(&ctx, false, &cc), 0);
        micro_loop *loop = NULL;
        assert_int_equal(micro_loop_new(&loop), 0);
        micro__io_dial d;
        memset(&d, 0, sizeof(d));
        d.addr = v.addr;
        d.tls = ctx;
        micro__aio a;
        micro__aio_init(&a, loop, NULL, NULL);
        micro__aio_set_timeout(&a, 10000);
        t_logcap_reset();
        int rc = micro__aio_call(&a, micro__io_dial_start, &d);
        print_message("  ALPN %s: %s\n", offers[i] ? offers[i] : "(none)",
            micro_strerror(rc));
        if (i < 2) {
            assert_int_equal(rc, MICRO_ETLS);
            assert_true(t_logcap_has("[grpc] TLS handshake with",
                "the client offers no ALPN h2"));
            assert_true(t_logcap_has("[io.tls] TLS handshake with",
                "alert no application protocol"));
            micro__tls_stats st;
            micro__tls_ctx_stats(ctx, &st);
            assert_int_equal(st.failed, 1);
        } else {
            assert_int_equal(rc, 0);
            micro__bs *bs = a.out;
            assert_string_equal(micro__tls_alpn(bs), "h2");
            assert_int_equal(micro__loop_call(loop, close_bs, bs), 0);
        }
        micro_loop_free(loop);
        micro__tls_ctx_free(ctx);
        good_call(&v);
    }
    t_tls_srv_stop(&v);
}

/* The gRPC client refuses a TLS server that does not choose h2 (the mucp
 * server's http transport: ALPN http/1.1): MICRO_ETLS, logged, not
 * retried. */
static void
test_server_without_h2(void **state)
{
    (void) state;
    t_tls_srv v;
    srv_start(&v, "mucp", t_tls_srv_kv(false));
    t_tls_cli c;
    cli_trusting(&c, C.ca);
    t_logcap_reset();
    assert_int_equal(call(&c, v.addr, "1"), MICRO_ETLS);
    assert_true(t_logcap_has("[grpc]", "instead of ALPN h2"));
    t_tls_cli_free(&c);
    t_tls_srv_stop(&v);
}

/* A client that connects and never completes its handshake is dropped at
 * transport_tls_handshake_timeout; calls are served meanwhile. */
static void
test_stalled_handshake(void **state)
{
    (void) state;
    t_tls_srv v;
    const char *skv[] = {t_kv("transport_tls_cert_file", C.srv),
        t_kv("transport_tls_key_file", C.srv_key),
        "transport_tls_handshake_timeout=300ms", NULL};
    srv_start(&v, "grpc", skv);
    t_logcap_reset();
    int fd = t_raw_dial(v.addr);
    static const unsigned char part[] = {0x16, 3, 1, 0, 0xf0, 1};
    assert_int_equal(send(fd, part, sizeof(part), 0), (ssize_t) sizeof(part));
    good_call(&v);
    assert_int_equal(t_wait_closed(fd, 20000), 0);
    close(fd);
    assert_true(t_logcap_has("[grpc] TLS handshake with", "not complete"));
    good_call(&v);
    t_tls_srv_stop(&v);
}

int
main(void)
{
    t_watchdog(170, "server_grpc_tls");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_and_bidi),
        cmocka_unit_test(test_self_signed),
        cmocka_unit_test(test_mtls),
        cmocka_unit_test(test_wrong_ca),
        cmocka_unit_test(test_alpn_required),
        cmocka_unit_test(test_server_without_h2),
        cmocka_unit_test(test_stalled_handshake),
    };
    return cmocka_run_group_tests(tests, t_tls_group_setup,
        t_tls_group_teardown);
}
