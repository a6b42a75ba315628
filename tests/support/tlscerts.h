/* Test certificates, made at run time in a temp dir with the library's
 * own generator (io/tls.h: ECDSA P-256): no private key is committed. */
#ifndef CMICRO_TEST_TLSCERTS_H
#define CMICRO_TEST_TLSCERTS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct t_certs {
    char dir[128];
    char ca[192], ca_key[192];           /* the CA everyone trusts */
    char srv[192], srv_key[192];         /* 127.0.0.1, ::1, localhost */
    char cli[192], cli_key[192];         /* client (clientAuth) */
    char other_ca[192];                  /* an unrelated CA */
    char bad_cli[192], bad_cli_key[192]; /* signed by other_ca */
    char old_cli[192], old_cli_key[192]; /* expired */
    char old_srv[192], old_srv_key[192]; /* expired server */
    char alt_srv[192], alt_srv_key[192]; /* signed by other_ca (reload) */
    char name_srv[192], name_srv_key[192]; /* only "other.example" */
} t_certs;

/* Make every file above (asserts). */
void t_certs_make(t_certs *c);
/* Remove them and the directory. */
void t_certs_free(t_certs *c);
/* Copy file from to to (atomically: write + rename). 0 or -1. */
int t_file_copy(const char *from, const char *to);

/* cmocka group setup and teardown of the TLS tests: the library's log
 * captured (support/logcap.h, INFO and up) and t_tls_certs made; then
 * the certificates removed and the log back to its default. */
extern t_certs t_tls_certs;
int t_tls_group_setup(void **state);
int t_tls_group_teardown(void **state);

#endif
