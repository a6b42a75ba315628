/* The http broker over TLS (Go Micro v4's broker.Secure): a secure
 * subscriber listens with TLS and advertises secure=true; publishers reach
 * it with https, skipping verification without a CA (as Go Micro v4) and
 * verifying with one; a subscriber requiring client certificates (mTLS)
 * refuses a publisher without one. Certificates are made at run time. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "bt.h"
#include "support/support.h"
#include "support/tlscerts.h"

static t_certs C;
static micro_registry *reg;

static micro_broker *
broker(const char *const *kv)
{
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    t_opts_flags(o, kv);
    micro_broker *b = NULL;
    assert_int_equal(micro_broker_new(&b, &micro_broker_http_ops, NULL, reg,
                         o), 0);
    micro_options_free(o);
    return b;
}

/* The secure metadata of the subscriber nodes of topic. */
static void
node_secure(const char *topic, char *out, size_t cap)
{
    micro_registry_service *svcs = NULL;
    size_t n = 0;
    out[0] = '\0';
    assert_int_equal(micro_registry_get_service(reg, "micro.http.broker",
                         &svcs, &n), 0);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < svcs[i].n_nodes; j++) {
            const micro_node *nd = &svcs[i].nodes[j];
            const char *t = micro_metadata_get(&nd->metadata, "topic");
            const char *s = micro_metadata_get(&nd->metadata, "secure");
            if (t != NULL && strcmp(t, topic) == 0 && s != NULL) {
                snprintf(out, cap, "%s", s);
            }
        }
    }
    micro_registry_services_free(svcs, n);
}

static void
test_secure_subscriber(void **state)
{
    (void) state;
    /* Self-signed (no certificate given), as Go Micro's broker. */
    const char *skv[] = {"broker_secure=true", NULL};
    micro_broker *sub_b = broker(skv);
    bt_counter c;
    memset(&c, 0, sizeof(c));
    micro_sub *sub = NULL;
    assert_int_equal(micro_broker_subscribe(sub_b, "tls.a", NULL, bt_handler,
                         &c, &sub), 0);
    char sec[16];
    node_secure("tls.a", sec, sizeof(sec));
    assert_string_equal(sec, "true");
    /* A publisher without TLS settings: https, no verification (v4). */
    micro_broker *pub = broker(NULL);
    for (long i = 0; i < 10; i++) {
        assert_int_equal(bt_publish_i(pub, "tls.a", i), 0);
    }
    assert_true(bt_wait(&c.n, 10, 10000));
    /* A verifying publisher refuses the self-signed certificate. */
    const char *vkv[] = {t_kv("broker_tls_ca_file", C.ca), NULL};
    micro_broker *vpub = broker(vkv);
    assert_int_not_equal(bt_publish_i(vpub, "tls.a", 99), 0);
    micro_broker_free(vpub);
    micro_broker_free(pub);
    assert_int_equal(micro_broker_unsubscribe(sub_b, sub), 0);
    micro_broker_free(sub_b);
}

static void
test_verified_and_mtls(void **state)
{
    (void) state;
    const char *skv[] = {"broker_secure=true",
        t_kv("broker_tls_cert_file", C.srv), t_kv("broker_tls_key_file", C.srv_key),
        t_kv("broker_tls_ca_file", C.ca), "broker_tls_client_auth=true", NULL};
    micro_broker *sub_b = broker(skv);
    bt_counter c;
    memset(&c, 0, sizeof(c));
    micro_sub *sub = NULL;
    assert_int_equal(micro_broker_subscribe(sub_b, "tls.b", NULL, bt_handler,
                         &c, &sub), 0);
    /* Without a client certificate: refused. */
    const char *nkv[] = {t_kv("broker_tls_ca_file", C.ca), NULL};
    micro_broker *nopub = broker(nkv);
    assert_int_not_equal(bt_publish_i(nopub, "tls.b", 1), 0);
    /* With one from an unrelated CA: refused. */
    const char *bkv[] = {t_kv("broker_tls_ca_file", C.ca),
        t_kv("broker_tls_cert_file", C.bad_cli),
        t_kv("broker_tls_key_file", C.bad_cli_key), NULL};
    micro_broker *badpub = broker(bkv);
    assert_int_not_equal(bt_publish_i(badpub, "tls.b", 2), 0);
    /* Verified both ways: delivered. */
    const char *gkv[] = {t_kv("broker_tls_ca_file", C.ca),
        t_kv("broker_tls_cert_file", C.cli), t_kv("broker_tls_key_file", C.cli_key),
        NULL};
    micro_broker *pub = broker(gkv);
    for (long i = 0; i < 20; i++) {
        assert_int_equal(bt_publish_i(pub, "tls.b", i), 0);
    }
    assert_true(bt_wait(&c.n, 20, 10000));
    assert_int_equal(atomic_load(&c.n), 20);
    /* A plain subscriber is still reached by the TLS-configured one. */
    micro_broker *plain = broker(NULL);
    bt_counter pc;
    memset(&pc, 0, sizeof(pc));
    micro_sub *psub = NULL;
    assert_int_equal(micro_broker_subscribe(plain, "tls.c", NULL, bt_handler,
                         &pc, &psub), 0);
    char sec[16];
    node_secure("tls.c", sec, sizeof(sec));
    assert_string_equal(sec, "false");
    assert_int_equal(bt_publish_i(pub, "tls.c", 7), 0);
    assert_true(bt_wait(&pc.n, 1, 10000));
    assert_int_equal(micro_broker_unsubscribe(plain, psub), 0);
    micro_broker_free(plain);
    micro_broker_free(pub);
    micro_broker_free(badpub);
    micro_broker_free(nopub);
    assert_int_equal(micro_broker_unsubscribe(sub_b, sub), 0);
    micro_broker_free(sub_b);
}

static int
setup(void **state)
{
    (void) state;
    t_certs_make(&C);
    assert_int_equal(micro_registry_new(&reg, &micro_registry_memory_ops,
                         NULL), 0);
    return 0;
}

static int
teardown(void **state)
{
    (void) state;
    micro_registry_free(reg);
    t_certs_free(&C);
    return 0;
}

int
main(void)
{
    t_watchdog(170, "broker_http_tls");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secure_subscriber),
        cmocka_unit_test(test_verified_and_mtls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
