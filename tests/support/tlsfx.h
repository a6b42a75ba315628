/*
 * TLS test fixtures: a server and clients with transport_secure on and
 * their own settings (loop, transport and options each), and raw TCP
 * peers for handshakes that go wrong.
 */
#ifndef CMICRO_TEST_TLSFX_H
#define CMICRO_TEST_TLSFX_H

#include <stdbool.h>

#include <cmicro/micro.h>

typedef struct t_tls_srv {
    micro_loop *loop;
    micro_transport *tr; /* "http" */
    micro_server *s;
    micro_options *o;
    char addr[64];
} t_tls_srv;

/* A server on 127.0.0.1:0 with transport_secure and the options kv
 * ("name=value", NULL-terminated; NULL for none); ops NULL: the one the
 * options choose (mucp). handle registers its handlers; then it starts. */
void t_tls_srv_start(t_tls_srv *v, const micro_server_ops *ops,
    const char *const *kv, void (*handle)(micro_server *s));
void t_tls_srv_stop(t_tls_srv *v);

typedef struct t_tls_cli {
    micro_loop *loop;
    micro_transport *tr; /* "http" */
    micro_client *c;
    micro_options *o;
} t_tls_cli;

/* A client with transport_secure, no retries, and kv; ops NULL: the one
 * the options choose (mucp). */
void t_tls_cli_new(t_tls_cli *c, const micro_client_ops *ops,
    const char *const *kv);
void t_tls_cli_free(t_tls_cli *c);

/* One call of the test's unary endpoint from c to addr: 0 (the answer
 * checked) or the error. */
typedef int (*t_tls_call_fn)(t_tls_cli *c, const char *addr);

/* The options of a server with the test certificate (t_tls_certs), and
 * with mtls the test CA and client_auth. Static storage. */
const char *const *t_tls_srv_kv(bool mtls);

/* A client (ops as t_tls_cli_new) trusting the test CA and presenting
 * the test client certificate calls v and is served: every server of the
 * TLS tests serves it, mTLS ones included. */
void t_tls_good_call(const t_tls_srv *v, const micro_client_ops *ops,
    t_tls_call_fn call);

/*
 * mTLS refusals against v (started with t_tls_srv_kv(true)): clients
 * without a certificate, with one from another CA and (expired) an
 * expired one each get MICRO_ECERT (under TLS 1.3 from the server's alert
 * after their own handshake), the server logs its reason under
 * "[comp] TLS handshake with" and the client the alert under
 * "[comp] TLS with"; v serves a good client after each.
 */
void t_tls_mtls_refusals(const t_tls_srv *v, const micro_client_ops *ops,
    t_tls_call_fn call, const char *comp, bool expired);

/* A raw TCP connection to addr (asserts it connects). */
int t_raw_dial(const char *addr);
/* Wait (up to ms) for the peer to close fd: 0 when it did. */
int t_wait_closed(int fd, int ms);

#endif
