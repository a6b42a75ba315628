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
