#include "support/tlscerts.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/internal.h"
#include "io/tls.h"
#include "support/logcap.h"

static void
path(char *out, size_t cap, const t_certs *c, const char *name)
{
    snprintf(out, cap, "%s/%s", c->dir, name);
}

static void
leaf(const t_certs *c, X509 *ca, EVP_PKEY *cakey, const char *cert,
    const char *key, const char *const *hosts, size_t n, const char *eku,
    int64_t from_s, int64_t to_s)
{
    micro__tls_cert_spec s = {
        .hosts = hosts,
        .n_hosts = n,
        .org = "cmicro tests",
        .cn = n > 0 ? hosts[0] : "client",
        .not_before_s = from_s,
        .not_after_s = to_s,
        .eku = eku,
        .issuer_cert = ca,
        .issuer_key = cakey,
    };
    void *x = NULL, *k = NULL;
    assert_int_equal(micro__tls_cert_make(&s, &x, &k), 0);
    assert_int_equal(micro__tls_cert_write(cert, key, x, k), 0);
    (void) c;
    X509_free(x);
    EVP_PKEY_free(k);
}

static void
make_ca(const char *cn, X509 **x, EVP_PKEY **k)
{
    micro__tls_cert_spec s = {
        .org = "cmicro tests",
        .cn = cn,
        .not_before_s = -3600,
        .not_after_s = 24 * 3600,
        .is_ca = true,
    };
    void *xv = NULL, *kv = NULL;
    assert_int_equal(micro__tls_cert_make(&s, &xv, &kv), 0);
    *x = xv;
    *k = kv;
}

void
t_certs_make(t_certs *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "/tmp/cmicro-tls-XXXXXX");
    assert_non_null(mkdtemp(c->dir));
    path(c->ca, sizeof(c->ca), c, "ca.pem");
    path(c->ca_key, sizeof(c->ca_key), c, "ca.key");
    path(c->srv, sizeof(c->srv), c, "srv.pem");
    path(c->srv_key, sizeof(c->srv_key), c, "srv.key");
    path(c->cli, sizeof(c->cli), c, "cli.pem");
    path(c->cli_key, sizeof(c->cli_key), c, "cli.key");
    path(c->other_ca, sizeof(c->other_ca), c, "other-ca.pem");
    path(c->bad_cli, sizeof(c->bad_cli), c, "bad-cli.pem");
    path(c->bad_cli_key, sizeof(c->bad_cli_key), c, "bad-cli.key");
    path(c->old_cli, sizeof(c->old_cli), c, "old-cli.pem");
    path(c->old_cli_key, sizeof(c->old_cli_key), c, "old-cli.key");
    path(c->old_srv, sizeof(c->old_srv), c, "old-srv.pem");
    path(c->old_srv_key, sizeof(c->old_srv_key), c, "old-srv.key");
    path(c->alt_srv, sizeof(c->alt_srv), c, "alt-srv.pem");
    path(c->alt_srv_key, sizeof(c->alt_srv_key), c, "alt-srv.key");
    path(c->name_srv, sizeof(c->name_srv), c, "name-srv.pem");
    path(c->name_srv_key, sizeof(c->name_srv_key), c, "name-srv.key");

    X509 *ca = NULL, *oca = NULL;
    EVP_PKEY *cak = NULL, *ocak = NULL;
    make_ca("cmicro test CA", &ca, &cak);
    make_ca("unrelated CA", &oca, &ocak);
    assert_int_equal(micro__tls_cert_write(c->ca, c->ca_key, ca, cak), 0);
    assert_int_equal(micro__tls_cert_write(c->other_ca, NULL, oca, NULL), 0);
    static const char *const local[] = {"127.0.0.1", "::1", "localhost"};
    static const char *const other[] = {"other.example"};
    const int64_t day = 24 * 3600;
    leaf(c, ca, cak, c->srv, c->srv_key, local, 3,
        "serverAuth,clientAuth", -3600, day);
    leaf(c, ca, cak, c->cli, c->cli_key, NULL, 0, "clientAuth,serverAuth",
        -3600, day);
    leaf(c, oca, ocak, c->bad_cli, c->bad_cli_key, NULL, 0, "clientAuth",
        -3600, day);
    leaf(c, ca, cak, c->old_cli, c->old_cli_key, NULL, 0, "clientAuth",
        -2 * day, -day);
    leaf(c, ca, cak, c->old_srv, c->old_srv_key, local, 3, "serverAuth",
        -2 * day, -day);
    leaf(c, oca, ocak, c->alt_srv, c->alt_srv_key, local, 3, "serverAuth",
        -3600, day);
    leaf(c, ca, cak, c->name_srv, c->name_srv_key, other, 1, "serverAuth",
        -3600, day);
    X509_free(ca);
    X509_free(oca);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(ocak);
}

void
t_certs_free(t_certs *c)
{
    const char *files[] = {c->ca, c->ca_key, c->srv, c->srv_key, c->cli,
        c->cli_key, c->other_ca, c->bad_cli, c->bad_cli_key, c->old_cli,
        c->old_cli_key, c->old_srv, c->old_srv_key, c->alt_srv,
        c->alt_srv_key, c->name_srv, c->name_srv_key};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        unlink(files[i]);
    }
    char extra[256];
    for (int i = 0; i < 4; i++) {
        snprintf(extra, sizeof(extra), "%s/live%d.pem", c->dir, i);
        unlink(extra);
        snprintf(extra, sizeof(extra), "%s/live%d.key", c->dir, i);
        unlink(extra);
    }
    rmdir(c->dir);
}

int
t_file_copy(const char *from, const char *to)
{
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", to);
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(tmp, "wb");
    int rc = in != NULL && out != NULL ? 0 : -1;
    char buf[4096];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0) {
        if (fwrite(buf, 1, n, out) != n) {
            rc = -1;
        }
    }
    if (in != NULL) {
        fclose(in);
    }
    if (out != NULL && fclose(out) != 0) {
        rc = -1;
    }
    if (rc == 0 && rename(tmp, to) != 0) {
        rc = -1;
    }
    return rc;
}

t_certs t_tls_certs;

int
t_tls_group_setup(void **state)
{
    (void) state;
    t_logcap_install(MICRO_LOG_INFO);
    t_certs_make(&t_tls_certs);
    return 0;
}

int
t_tls_group_teardown(void **state)
{
    (void) state;
    t_certs_free(&t_tls_certs);
    t_logcap_uninstall();
    return 0;
}
