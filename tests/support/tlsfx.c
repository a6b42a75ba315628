#include "support/tlsfx.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "io/stream.h"
#include "support/logcap.h"
#include "support/support.h"
#include "support/tlscerts.h"

void
t_tls_srv_start(t_tls_srv *v, const micro_server_ops *ops,
    const char *const *kv, void (*handle)(micro_server *s))
{
    memset(v, 0, sizeof(*v));
    assert_int_equal(micro_options_new(&v->o), 0);
    assert_int_equal(micro_options_set_str(v->o, "server_address",
                         "127.0.0.1:0"), 0);
    assert_int_equal(micro_options_set_bool(v->o, "transport_secure", true),
        0);
    t_opts_flags(v->o, kv);
    assert_int_equal(micro_loop_new(&v->loop), 0);
    assert_int_equal(micro_transport_new_by_name(&v->tr, "http", v->loop,
                         v->o), 0);
    if (ops != NULL) {
        assert_int_equal(micro_server_new_with_ops(&v->s, ops, v->loop,
                             v->tr, v->o), 0);
    } else {
        assert_int_equal(micro_server_new(&v->s, v->loop, v->tr, v->o), 0);
    }
    handle(v->s);
    int rc = micro_server_start(v->s);
    if (rc != 0) {
        print_message("server start: %s; log:\n%s", micro_strerror(rc),
            t_logcap_text());
    }
    assert_int_equal(rc, 0);
    snprintf(v->addr, sizeof(v->addr), "%s", micro_server_address(v->s));
}

void
t_tls_srv_stop(t_tls_srv *v)
{
    micro_server_stop(v->s, 3000);
    micro_server_free(v->s);
    micro_transport_free(v->tr);
    micro_loop_free(v->loop);
    micro_options_free(v->o);
}

void
t_tls_cli_new(t_tls_cli *c, const micro_client_ops *ops,
    const char *const *kv)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(micro_options_new(&c->o), 0);
    assert_int_equal(micro_options_set_bool(c->o, "transport_secure", true),
        0);
    assert_int_equal(micro_options_set_int(c->o, "client_retries", 0), 0);
    t_opts_flags(c->o, kv);
    assert_int_equal(micro_loop_new(&c->loop), 0);
    assert_int_equal(micro_transport_new_by_name(&c->tr, "http", c->loop,
                         c->o), 0);
    if (ops != NULL) {
        assert_int_equal(micro_client_new_with_ops(&c->c, ops, c->tr, NULL,
                             c->o), 0);
    } else {
        assert_int_equal(micro_client_new(&c->c, c->tr, NULL, c->o), 0);
    }
}

void
t_tls_cli_free(t_tls_cli *c)
{
    micro_client_free(c->c);
    micro_transport_free(c->tr);
    micro_loop_free(c->loop);
    micro_options_free(c->o);
}

const char *const *
t_tls_srv_kv(bool mtls)
{
    static const char *kv[5];
    const t_certs *c = &t_tls_certs;
    kv[0] = t_kv("transport_tls_cert_file", c->srv);
    kv[1] = t_kv("transport_tls_key_file", c->srv_key);
    kv[2] = mtls ? t_kv("transport_tls_ca_file", c->ca) : NULL;
    kv[3] = mtls ? "transport_tls_client_auth=true" : NULL;
    kv[4] = NULL;
    return kv;
}

/* A client trusting the test CA with cert/key (NULL: none). */
static void
client(t_tls_cli *c, const micro_client_ops *ops, const char *cert,
    const char *key)
{
    const char *kv[] = {t_kv("transport_tls_ca_file", t_tls_certs.ca),
        cert ? t_kv("transport_tls_cert_file", cert) : NULL,
        cert ? t_kv("transport_tls_key_file", key) : NULL, NULL};
    t_tls_cli_new(c, ops, kv);
}

void
t_tls_good_call(const t_tls_srv *v, const micro_client_ops *ops,
    t_tls_call_fn call)
{
    t_tls_cli c;
    client(&c, ops, t_tls_certs.cli, t_tls_certs.cli_key);
    assert_int_equal(call(&c, v->addr), 0);
    t_tls_cli_free(&c);
}

void
t_tls_mtls_refusals(const t_tls_srv *v, const micro_client_ops *ops,
    t_tls_call_fn call, const char *comp, bool expired)
{
    const t_certs *k = &t_tls_certs;
    struct {
        const char *cert, *key, *server_why;
    } bad[] = {
        {NULL, NULL, "did not return a certificate"},
        {k->bad_cli, k->bad_cli_key, "unable to get local issuer"},
        {k->old_cli, k->old_cli_key, "certificate has expired"},
    };
    char srv_line[96], cli_line[96];
    snprintf(srv_line, sizeof(srv_line), "[%s] TLS handshake with", comp);
    snprintf(cli_line, sizeof(cli_line), "[%s] TLS with", comp);
    for (size_t i = 0; i < (expired ? 3u : 2u); i++) {
        t_tls_cli c;
        client(&c, ops, bad[i].cert, bad[i].key);
        t_logcap_reset();
        int rc = call(&c, v->addr);
        print_message("  client %zu: %s\n", i, micro_strerror(rc));
        assert_int_equal(rc, MICRO_ECERT);
        assert_true(t_logcap_has(srv_line, bad[i].server_why));
        assert_true(t_logcap_has(cli_line, "alert"));
        t_tls_cli_free(&c);
        t_tls_good_call(v, ops, call);
    }
}

int
t_raw_dial(const char *addr)
{
    char host[64];
    int port = 0;
    struct sockaddr_storage ss;
    assert_int_equal(micro__addr_parse(addr, host, sizeof(host), &port, &ss),
        1);
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *) &ss, sizeof(ss)), 0);
    return fd;
}

int
t_wait_closed(int fd, int ms)
{
    int64_t until = t_now_ms() + ms;
    char buf[4096];
    while (t_now_ms() < until) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n <= 0) {
                return 0;
            }
        }
    }
    return -1;
}
