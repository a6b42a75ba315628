/* The etcd registry over TLS against a real etcd (Debian's etcd-server)
 * started with --cert-file/--key-file on a free loopback port, then with
 * --client-cert-auth (mTLS): register, get, watch and deregister through
 * https, verification with registry_tls_ca_file, Go Micro's Secure
 * without a CA (no verification), a wrong CA refused, a client without a
 * certificate refused by etcd. Certificates are made at run time. Exits 77
 * when etcd is not installed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/reg.h"
#include "support/support.h"
#include "support/tlscerts.h"

static t_certs C;
static const char *etcd_bin;
static char data_dir[256];
static t_proc etcd;
static int cport;

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void
etcd_start(bool client_auth)
{
    cport = t_free_port();
    int pport = t_free_port();
    char curl[64], purl[64], cluster[96], log[300];
    snprintf(curl, sizeof(curl), "https://127.0.0.1:%d", cport);
    snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", pport);
    snprintf(cluster, sizeof(cluster), "t=%s", purl);
    snprintf(log, sizeof(log), "%s/etcd.log", C.dir);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", data_dir);
    assert_int_equal(system(cmd), 0);
    char *argv[40] = {(char *) etcd_bin, "--name", "t", "--data-dir",
        data_dir, "--listen-client-urls", curl, "--advertise-client-urls",
        curl, "--listen-peer-urls", purl, "--initial-advertise-peer-urls",
        purl, "--initial-cluster", cluster, "--heartbeat-interval", "10",
        "--election-timeout", "100", "--log-level", "error", "--logger",
        "zap", "--log-outputs", log, "--cert-file", C.srv, "--key-file",
        C.srv_key, NULL};
    size_t n = 0;
    while (argv[n] != NULL) {
        n++;
    }
    if (client_auth) {
        argv[n++] = "--client-cert-auth";
        argv[n++] = "--trusted-ca-file";
        argv[n++] = C.ca;
        argv[n] = NULL;
    }
    assert_int_equal(t_proc_spawn(&etcd, etcd_bin, argv), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", cport);
    assert_int_equal(t_wait_port(addr, 30000), 0);
}

static void
etcd_stop(void)
{
    t_proc_stop(&etcd, SIGTERM, 10000);
}

static micro_registry *
reg_new(const char *const *kv)
{
    return t_reg_new_kv("etcd", kv);
}

static atomic_int events;

static void
on_event(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) arg;
    (void) action;
    if (svc != NULL && svc->name != NULL && strcmp(svc->name, "tls.w") == 0) {
        atomic_fetch_add(&events, 1);
    }
}

static size_t
nodes_of(micro_registry *r, const char *name)
{
    micro_registry_service *out = NULL;
    size_t n = 0, total = 0;
    if (micro_registry_get_service(r, name, &out, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            total += out[i].n_nodes;
        }
        micro_registry_services_free(out, n);
    }
    return total;
}

static void
test_tls(void **state)
{
    (void) state;
    etcd_start(false);
    char url[80], plain[64];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", cport);
    snprintf(plain, sizeof(plain), "127.0.0.1:%d", cport);
    /* Verified with the CA. */
    const char *vkv[] = {t_kv("registry_address", url),
        t_kv("registry_tls_ca_file", C.ca), NULL};
    micro_registry *r = reg_new(vkv);
    uint64_t tok = 0;
    atomic_store(&events, 0);
    assert_int_equal(micro_registry_watch(r, on_event, NULL, &tok), 0);
    assert_int_equal(t_reg_register_one(r, "tls.a"), 0);
    assert_int_equal(nodes_of(r, "tls.a"), 1);
    assert_int_equal(t_reg_register_one(r, "tls.w"), 0);
    int64_t until = t_now_ms() + 20000;
    while (atomic_load(&events) == 0 && t_now_ms() < until) {
        sleep_ms(20);
    }
    assert_true(atomic_load(&events) > 0); /* the watch runs over TLS */
    /* registry_secure without a CA: Go Micro's Secure, no verification. */
    const char *skv[] = {t_kv("registry_address", plain), "registry_secure=true",
        NULL};
    micro_registry *s = reg_new(skv);
    assert_int_equal(nodes_of(s, "tls.a"), 1);
    micro_registry_free(s);
    /* A CA that did not sign etcd's certificate: refused. */
    const char *bkv[] = {t_kv("registry_address", url),
        t_kv("registry_tls_ca_file", C.other_ca), NULL};
    micro_registry *b = reg_new(bkv);
    assert_int_equal(t_reg_register_one(b, "tls.b"), MICRO_ECERT);
    micro_registry_free(b);
    /* Plain HTTP to a TLS etcd gets no answer it can use. */
    const char *pkv[] = {t_kv("registry_address", plain), NULL};
    micro_registry *p = reg_new(pkv);
    micro_registry_service sv;
    micro_node nd;
    t_svc_one(&sv, &nd, "tls.p");
    assert_int_not_equal(micro_registry_register(p, &sv, 60000), 0);
    micro_registry_free(p);
    micro_registry_unwatch(r, tok);
    micro_registry_free(r);
    etcd_stop();
}

static void
test_mtls(void **state)
{
    (void) state;
    etcd_start(true);
    char url[80];
    snprintf(url, sizeof(url), "https://127.0.0.1:%d", cport);
    const char *nkv[] = {t_kv("registry_address", url),
        t_kv("registry_tls_ca_file", C.ca), NULL};
    micro_registry *n = reg_new(nkv);
    int rc = t_reg_register_one(n, "tls.m");
    print_message("  without a client certificate: %s\n", micro_strerror(rc));
    assert_int_equal(rc, MICRO_ECERT);
    micro_registry_free(n);
    const char *ckv[] = {t_kv("registry_address", url),
        t_kv("registry_tls_ca_file", C.ca), t_kv("registry_tls_cert_file", C.cli),
        t_kv("registry_tls_key_file", C.cli_key), NULL};
    micro_registry *r = reg_new(ckv);
    assert_int_equal(t_reg_register_one(r, "tls.m"), 0);
    assert_int_equal(nodes_of(r, "tls.m"), 1);
    micro_registry_free(r);
    etcd_stop();
}

int
main(void)
{
    etcd_bin = t_etcd_bin();
    if (etcd_bin == NULL) {
        fprintf(stderr, "SKIP: etcd is not installed "
                        "(scripts/install-deps.sh installs etcd-server)\n");
        return 77;
    }
    t_watchdog(280, "registry_etcd_tls");
    t_certs_make(&C);
    snprintf(data_dir, sizeof(data_dir), "%s/data", C.dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_mtls),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s/data %s/etcd.log", C.dir, C.dir);
    (void) system(cmd);
    t_certs_free(&C);
    return failed;
}
