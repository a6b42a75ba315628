/*
 * Layer 1: TLS (OpenSSL 3) as a byte stream over another byte stream,
 * with memory BIOs, so that it runs on the loop without blocking. What
 * listens or dials at layer 2 and above does it through the functions
 * here, which are plain TCP when given no TLS context and TLS over TCP
 * otherwise: a TLS stream is handed to its owner only once its handshake
 * has completed (the server side within the context's handshake timeout),
 * so HTTP/1.1 and HTTP/2 above see a byte stream like any other.
 *
 * A context (micro__tls_ctx) is one side's configuration: certificate and
 * key (files, or on a server without them a self-signed certificate made
 * as Go Micro's util/tls does), CA file, verification, client
 * certificates (mTLS), server name, ALPN list. It is shared by threads and
 * reference-counted. Its certificate, key and CA files are checked (stat:
 * inode, size, mtime) at every new handshake; when they changed the
 * context is rebuilt from them, so new handshakes use the new certificate
 * while established connections keep theirs (a rebuild that fails is
 * logged and the previous configuration stays in use).
 *
 * Errors of a failed handshake: MICRO_ECERT (certificate verification:
 * unknown CA, expired, hostname mismatch, a required client certificate
 * missing) or MICRO_ETLS (anything else: protocol, alerts, not TLS at
 * all), MICRO_ETIMEDOUT (the deadline), each logged with its reason on
 * the side that saw it.
 *
 * Threads: contexts any thread; streams, listeners and dials their
 * loop's. Not installed.
 */
#ifndef CMICRO_IO_TLS_H
#define CMICRO_IO_TLS_H

#include "io/stream.h"

typedef struct micro__tls_ctx micro__tls_ctx;

/* One side's settings; strings borrowed for micro__tls_ctx_new. */
typedef struct micro__tls_conf {
    const char *cert_file; /* PEM chain; NULL: none (a server makes one) */
    const char *key_file;  /* PEM private key */
    const char *ca_file;   /* PEM CAs verifying the peer; NULL: system's */
    bool verify;           /* client: verify the server (name, chain) */
    bool client_auth;      /* server: require and verify a client cert */
    const char *server_name; /* client: expected name / SNI; NULL: host */
    const char *alpn;      /* "h2,http/1.1" (preference order); NULL */
    int64_t handshake_timeout_ms; /* <= 0: 10 s */
    /* Server without cert_file: the self-signed certificate's SAN host
     * (an IP or a name); NULL or empty: every interface address. */
    const char *self_signed_host;
    const char *component; /* for log lines; NULL: "io.tls" */
    /* Server: a client that offers none of alpn (or no ALPN at all) is
     * refused in the handshake with the no_application_protocol alert
     * (RFC 7301 3.2), as gRPC over TLS needs h2. */
    bool alpn_required;
} micro__tls_conf;

/* A context for servers (server true) or clients. MICRO_EINVAL (a file
 * that does not load: logged with OpenSSL's reason), MICRO_ENOMEM. */
int micro__tls_ctx_new(micro__tls_ctx **out, bool server,
    const micro__tls_conf *conf);
micro__tls_ctx *micro__tls_ctx_ref(micro__tls_ctx *c);
/* Drop a reference; NULL is a no-op. */
void micro__tls_ctx_free(micro__tls_ctx *c);
bool micro__tls_ctx_is_server(const micro__tls_ctx *c);

typedef struct micro__tls_stats {
    uint64_t handshakes; /* completed */
    uint64_t failed;     /* failed (protocol, certificate) */
    uint64_t timeouts;   /* not complete within the deadline */
    uint64_t reloads;    /* certificate/key reloads that took effect */
} micro__tls_stats;
void micro__tls_ctx_stats(const micro__tls_ctx *c, micro__tls_stats *out);

/* The settings of kind ("transport", "broker", "registry") from opts:
 * <kind>_secure, <kind>_tls_cert_file, _key_file, _ca_file, _client_auth,
 * _server_name, _alpn, _handshake_timeout, and tls_insecure_skip_verify.
 * Returns whether <kind>_secure is on (or a certificate file is given).
 * Strings point into opts. verify is !tls_insecure_skip_verify. */
bool micro__tls_conf_load(micro__tls_conf *conf, const micro_options *opts,
    const char *kind);

/* A copy of s (NULL for NULL or ""); *rc = MICRO_ENOMEM when it cannot
 * be made. For the core and the engine alike. */
static inline char *
micro__tls_strdup(const char *s, int *rc)
{
    if (s == NULL || s[0] == '\0') {
        return NULL;
    }
    char *d = micro__strdup(s);
    if (d == NULL) {
        *rc = MICRO_ENOMEM;
    }
    return d;
}

/* Deep copy (the strings owned by dst; free with _clear). MICRO_ENOMEM
 * (dst then empty). */
int micro__tls_conf_copy(micro__tls_conf *dst, const micro__tls_conf *src);
void micro__tls_conf_clear(micro__tls_conf *c);

/* The negotiated ALPN protocol of a TLS stream ("" when none), NULL when
 * s is not TLS. */
const char *micro__tls_alpn(const micro__bs *s);
bool micro__bs_is_tls(const micro__bs *s);

/*
 * A transport's TLS, both ends (the http and grpc transports): the
 * configuration read at init, the client context made then, and the
 * server's made at the first listen, when its self-signed certificate
 * (no cert_file) can name the listen host, as Go Micro's does.
 */
typedef struct micro__tls_ends {
    micro__tls_conf conf;   /* owned copy */
    micro__tls_ctx *client; /* NULL: not secure */
    micro__tls_ctx *server; /* made by micro__tls_ends_listen */
} micro__tls_ends;

/* Copy conf (loaded by micro__tls_conf_load and adjusted by the caller)
 * and make the client context. MICRO_EINVAL (files that do not load:
 * logged), MICRO_ENOMEM, MICRO_ENOTBUILT; e is then empty. */
int micro__tls_ends_init(micro__tls_ends *e, const micro__tls_conf *conf);
/* The server context for a listener on addr (made on the first call):
 * *out is NULL when e is not secure. Errors as micro__tls_ctx_new. */
int micro__tls_ends_listen(micro__tls_ends *e, const char *addr,
    micro__tls_ctx **out);
/* Drop the contexts and the configuration; an empty e is a no-op. */
void micro__tls_ends_clear(micro__tls_ends *e);

/* ------------------------------------------------------------------ */
/* Listening and dialling, plain or TLS.                                */

typedef struct micro__io_listener micro__io_listener;

/* As micro__tcp_listen; with tls (a server context, referenced) each
 * connection is handed to fn once its handshake completed; failures and
 * timeouts are logged, counted in the context, and closed. */
int micro__io_listen(micro_loop *loop, const char *addr, micro__tls_ctx *tls,
    micro__tcp_accept_fn fn, void *arg, micro__io_listener **out);
const char *micro__io_listener_address(const micro__io_listener *l);
/* Handshakes in progress (tests). */
size_t micro__io_listener_handshaking(const micro__io_listener *l);
/* Stop accepting, drop handshakes in progress, free. */
void micro__io_listener_close(micro__io_listener *l);

/*
 * Dial addr, then (with tls, a client context) run the handshake, as one
 * aio operation: a->out is the micro__bs. The aio's deadline bounds both.
 * Errors: those of micro__tcp_dial_start, MICRO_ECERT, MICRO_ETLS.
 */
typedef struct micro__io_dial {
    const char *addr;        /* borrowed until the aio completes */
    micro__tls_ctx *tls;     /* NULL: plain TCP */
    const char *server_name; /* NULL: the context's, else addr's host */
    /* private */
    micro__tcp_dial tcp;
    micro__aio inner;
    micro__aio *outer;
    void *hs; /* the engine's handshake in progress */
    int cancel_rc;
} micro__io_dial;
void micro__io_dial_start(micro__aio *a, void *dial /* micro__io_dial */);

/* ------------------------------------------------------------------ */
/* Certificates (self-signed generation; tests make their CAs with it). */

typedef struct micro__tls_cert_spec {
    const char *const *hosts; /* SANs: IP literals or DNS names */
    size_t n_hosts;
    const char *org;          /* O=; NULL: "Acme Co" */
    const char *cn;           /* CN=; NULL: none */
    int64_t not_before_s;     /* relative to now */
    int64_t not_after_s;      /* relative to now */
    bool is_ca;
    const char *eku;          /* extendedKeyUsage, e.g. "serverAuth" */
    /* Signer; NULL: self-signed. */
    void *issuer_cert;        /* X509 * */
    void *issuer_key;         /* EVP_PKEY * */
} micro__tls_cert_spec;

/* An ECDSA P-256 key and a certificate for it (X509 *, EVP_PKEY *,
 * freed with X509_free / EVP_PKEY_free). Serial: 128 random bits. */
int micro__tls_cert_make(const micro__tls_cert_spec *spec, void **cert,
    void **key);
/* Write them as PEM (either path may be NULL). MICRO_EIO. */
int micro__tls_cert_write(const char *cert_path, const char *key_path,
    void *cert, void *key);

#endif
