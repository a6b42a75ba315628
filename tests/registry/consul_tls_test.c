/* The Consul registry over TLS against a real Consul v1.14.8 agent
 * (scripts/consul.sh's build) in -dev mode with an HTTPS port on a free
 * loopback port (its plain HTTP port kept for the test's own readiness
 * check): register, get, watch and deregister through https, verification
 * with registry_tls_ca_file, Go Micro's Secure without a CA (no
 * verification), a wrong CA refused; then an agent that verifies incoming
 * HTTPS clients (mTLS): refused without a client certificate, served with
 * one. Certificates are made at run time. Exits 77 when the agent is
 * missing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/reg.h"
#include "support/support.h"
#include "support/tlscerts.h"

static t_certs C;
static const char *consul_bin;
static t_proc agent;
static int https_port;

/* Start a -dev agent serving HTTPS with the test server certificate;
 * verify_incoming: clients must present a certificate of the test CA. */
static void
agent_start(bool verify_incoming)
{
    int http = t_free_port();
    https_port = t_free_port();
    char hp[8], sp[8], lp[8], wp[8], rp[8], dir[256], hcl[1024];
    snprintf(hp, sizeof(hp), "%d", http);
    snprintf(sp, sizeof(sp), "%d", https_port);
    snprintf(lp, sizeof(lp), "%d", t_free_port());
    snprintf(wp, sizeof(wp), "%d", t_free_port());
    snprintf(rp, sizeof(rp), "%d", t_free_port());
    snprintf(dir, sizeof(dir), "%s/data", C.dir);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(hcl, sizeof(hcl),
        "ports { https = %s } tls { defaults { ca_file = \"%s\" "
        "cert_file = \"%s\" key_file = \"%s\" } https { verify_incoming = "
        "%s } }",
        sp, C.ca, C.srv, C.srv_key, verify_incoming ? "true" : "false");
    char *argv[] = {(char *) consul_bin, "agent", "-dev", "-bind",
        "127.0.0.1", "-client", "127.0.0.1", "-http-port", hp, "-dns-port",
        "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1", "-serf-lan-port",
        lp, "-serf-wan-port", wp, "-server-port", rp, "-data-dir", dir,
        "-log-level", "error", "-hcl", hcl, NULL};
    assert_int_equal(t_proc_spawn(&agent, consul_bin, argv), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", https_port);
    assert_int_equal(t_wait_port(addr, 60000), 0);
}

static void
agent_stop(void)
{
    t_proc_stop(&agent, SIGTERM, 20000);
}

static micro_registry *
reg_new(const char *const *kv)
{
    return t_reg_new_kv("consul", kv);
}

static void
test_tls(void **state)
{
    (void) state;
    agent_start(false);
    char url[80], plain[64];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", https_port);
    snprintf(plain, sizeof(plain), "127.0.0.1:%d", https_port);
    /* Verified with the CA: register, get, watch, deregister. */
    const char *vkv[] = {t_kv("registry_address", url),
        t_kv("registry_tls_ca_file", C.ca), NULL};
    micro_registry *r = reg_new(vkv);
    static t_recorder rec = {.mu = PTHREAD_MUTEX_INITIALIZER};
    uint64_t tok = 0;
    t_rec_watch(&rec, r, &tok);
    assert_int_equal(t_reg_register_one(r, "tls.a"), 0);
    assert_true(t_wait_nodes(r, "tls.a", 1, 20000));
    assert_int_equal(t_reg_register_one(r, "tls.w"), 0);
    /* The watch runs over TLS too. */
    assert_true(t_wait_event(&rec, MICRO_REGISTRY_CREATE, "tls.w", "tls.w",
                    30000) >= 0);
    /* registry_secure without a CA: Go Micro's Secure, no verification. */
    const char *skv[] = {t_kv("registry_address", plain),
        "registry_secure=true", NULL};
    micro_registry *s = reg_new(skv);
    assert_true(t_wait_nodes(s, "tls.a", 1, 20000));
    micro_registry_free(s);
    /* A CA that did not sign the agent's certificate: refused. */
    const char *bkv[] = {t_kv("registry_address", url),
        t_kv("registry_tls_ca_file", C.other_ca), NULL};
    micro_registry *b = reg_new(bkv);
    assert_int_equal(t_reg_register_one(b, "tls.b"), MICRO_ECERT);
    micro_registry_free(b);
    micro_registry_service sv;
    micro_node nd;
    t_svc_one(&sv, &nd, "tls.a");
    assert_int_equal(micro_registry_deregister(r, &sv), 0);
    assert_true(t_wait_nodes(r, "tls.a", 0, 20000));
    t_rec_unwatch(r, tok); /* and frees r */
    agent_stop();
}

static void
test_mtls(void **state)
{
    (void) state;
    agent_start(true);
    char url[80];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", https_port);
    const char *nkv[] = {t_kv("registry_address", url),
        t_kv("registry_tls_ca_file", C.ca), NULL};
    micro_registry *n = reg_new(nkv);
    int rc = t_reg_register_one(n, "tls.m");
    print_message("  without a client certificate: %s\n", micro_strerror(rc));
    assert_true(rc == MICRO_ECERT || rc == MICRO_ETLS);
    micro_registry_free(n);
    const char *ckv[] = {t_kv("registry_address", url),
        t_kv("registry_tls_ca_file", C.ca),
        t_kv("registry_tls_cert_file", C.cli),
        t_kv("registry_tls_key_file", C.cli_key), NULL};
    micro_registry *r = reg_new(ckv);
    assert_int_equal(t_reg_register_one(r, "tls.m"), 0);
    assert_true(t_wait_nodes(r, "tls.m", 1, 20000));
    micro_registry_free(r);
    agent_stop();
}

int
main(void)
{
    const char *tried = NULL;
    consul_bin = t_consul_bin(&tried);
    if (consul_bin == NULL) {
        fprintf(stderr, "SKIP: no Consul agent at %s (scripts/consul.sh "
                        "builds v1.14.8 there; or set MICRO_CONSUL_BIN)\n",
            tried);
        return 77;
    }
    t_watchdog(280, "registry_consul_tls");
    t_certs_make(&C);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_mtls),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s/data", C.dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s/data\n", C.dir);
    }
    t_certs_free(&C);
    return failed;
}
