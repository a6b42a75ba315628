/*
 * TLS test fixtures: a server and clients with transport_secure on and
 * their own settings (loop, transport and options each), and raw TCP
 * peers for handshakes that go wrong.
 */
#ifndef CMICRO_TEST_TLSFX_H
#define CMICRO_TEST_TLSFX_H

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

/* A raw TCP connection to addr (asserts it connects). */
int t_raw_dial(const char *addr);
/* Wait (up to ms) for the peer to close fd: 0 when it did. */
int t_wait_closed(int fd, int ms);

#endif
