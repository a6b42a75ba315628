/*
 * The TLS engine (tls_engine.h), libcmicro-tls.so: OpenSSL 3 contexts,
 * certificates, and the byte stream "tls" over an inner byte stream
 * (tcp.c), with
 * two memory BIOs: ciphertext read by the inner stream is written into
 * rbio, and what OpenSSL writes into wbio is taken out and written to the
 * inner stream at once. Nothing here ever blocks or touches a socket.
 *
 * Backpressure: SSL_write with a memory BIO always takes all it is given
 * (the BIO grows), and its output goes straight to the inner stream, so
 * the unsent count of a TLS stream is its inner stream's (ciphertext), and
 * on_drain is the inner stream's. Reading: while the owner has stopped
 * reading, the inner stream is stopped too, and what was already read
 * waits inside OpenSSL (one read buffer at most) until read_start, which
 * delivers it on a later loop turn.
 *
 * See tls.h for the contract. The loop is reached through the host
 * table (H) that libcmicro passes to init.
 */
#include "io/tls_engine.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define TLS_COMPONENT "io.tls"

static const micro__tls_host *H;
#define TLS_READ_CHUNK (16 * 1024)

/* ------------------------------------------------------------------ */
/* Contexts.                                                            */

typedef struct file_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    bool present;
} file_stamp;

struct micro__tls_ctx {
    atomic_int refs;
    bool server;
    pthread_mutex_t mu;
    SSL_CTX *ssl; /* current; SSL_new references it */
    /* the configuration, owned */
    char *cert_file, *key_file, *ca_file, *server_name, *component;
    bool verify, client_auth, alpn_required;
    int64_t hs_timeout_ms;
    unsigned char *alpn; /* wire form: length-prefixed names */
    size_t alpn_len;
    X509 *self_cert; /* the self-signed certificate, when made */
    EVP_PKEY *self_key;
    file_stamp stamps[3];       /* cert, key, CA of ssl */
    file_stamp bad_stamps[3];   /* of a rebuild that failed */
    bool have_bad;
    _Atomic uint64_t handshakes, failed, timeouts, reloads;
};

static const char *
comp(const micro__tls_ctx *c)
{
    return c != NULL && c->component != NULL ? c->component : TLS_COMPONENT;
}

/* OpenSSL's queued errors as one line (the queue is emptied). */
static void
err_text(char *out, size_t cap)
{
    size_t used = 0;
    unsigned long e;
    out[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        const char *r = ERR_reason_error_string(e);
        if (r == NULL) {
            ERR_error_string_n(e, one, sizeof(one));
            r = one;
        }
        if (used < cap) {
            int n = snprintf(out + used, cap - used, "%s%s",
                used ? "; " : "", r);
            used += n > 0 ? (size_t) n : 0;
        }
    }
    if (out[0] == '\0') {
        snprintf(out, cap, "unknown TLS error");
    }
}

static void
stamp_file(const char *path, file_stamp *s)
{
    struct stat st;
    memset(s, 0, sizeof(*s));
    if (path != NULL && stat(path, &st) == 0) {
        s->present = true;
        s->dev = st.st_dev;
        s->ino = st.st_ino;
        s->size = st.st_size;
        s->mtime = st.st_mtim;
    }
}

static bool
stamps_equal(const file_stamp *a, const file_stamp *b)
{
    for (int i = 0; i < 3; i++) {
        if (a[i].present != b[i].present || a[i].dev != b[i].dev ||
            a[i].ino != b[i].ino || a[i].size != b[i].size ||
            a[i].mtime.tv_sec != b[i].mtime.tv_sec ||
            a[i].mtime.tv_nsec != b[i].mtime.tv_nsec) {
            return false;
        }
    }
    return true;
}

static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
    micro__tls_ctx *c = arg;
    (void) ssl;
    unsigned char *sel = NULL;
    /* The server's preference order, as Go's crypto/tls. */
    if (SSL_select_next_proto(&sel, outlen, c->alpn,
            (unsigned) c->alpn_len, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    if (c->alpn_required) {
        /* OpenSSL sends no_application_protocol; the reason is logged by
         * the handshake's failure. */
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    return SSL_TLSEXT_ERR_NOACK; /* no overlap: carry on without ALPN */
}

/* alpn_required: a ClientHello without ALPN is refused as one without an
 * overlap is (alpn_select runs only when the client offers a list). */
static int
alpn_hello(SSL *ssl, int *al, void *arg)
{
    const unsigned char *p = NULL;
    size_t n = 0;
    (void) arg;
    if (SSL_client_hello_get0_ext(ssl,
            TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &n) ==
        1) {
        return SSL_CLIENT_HELLO_SUCCESS;
    }
    ERR_raise(ERR_LIB_SSL, SSL_R_NO_APPLICATION_PROTOCOL);
    *al = SSL_AD_NO_APPLICATION_PROTOCOL;
    return SSL_CLIENT_HELLO_ERROR;
}

static int self_signed(micro__tls_ctx *c, const char *host);

/* A new SSL_CTX from c's configuration (files read now). */
static SSL_CTX *
build(micro__tls_ctx *c, char *why, size_t wcap)
{
    SSL_CTX *s = SSL_CTX_new(c->server ? TLS_server_method()
                                       : TLS_client_method());
    if (s == NULL) {
        err_text(why, wcap);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION); /* as Go Micro */
    SSL_CTX_set_options(s, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    const char *what = NULL;
    if (c->cert_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(s, c->cert_file) != 1) {
            what = c->cert_file;
        } else if (SSL_CTX_use_PrivateKey_file(s,
                       c->key_file ? c->key_file : c->cert_file,
                       SSL_FILETYPE_PEM) != 1) {
            what = c->key_file ? c->key_file : c->cert_file;
        } else if (SSL_CTX_check_private_key(s) != 1) {
            what = "the key does not match the certificate";
        }
    } else if (c->self_cert != NULL) {
        if (SSL_CTX_use_certificate(s, c->self_cert) != 1 ||
            SSL_CTX_use_PrivateKey(s, c->self_key) != 1) {
            what = "self-signed certificate";
        }
    }
    bool need_ca = c->server ? c->client_auth : c->verify;
    if (what == NULL && need_ca) {
        if (c->ca_file != NULL) {
            if (SSL_CTX_load_verify_locations(s, c->ca_file, NULL) != 1) {
                what = c->ca_file;
            } else if (c->server) {
                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(
                    c->ca_file);
                if (names != NULL) {
                    SSL_CTX_set_client_CA_list(s, names);
                }
            }
        } else {
            SSL_CTX_set_default_verify_paths(s);
        }
    }
    if (what != NULL) {
        char e[512];
        err_text(e, sizeof(e));
        snprintf(why, wcap, "%s: %s", what, e);
        SSL_CTX_free(s);
        return NULL;
    }
    if (c->server) {
        SSL_CTX_set_verify(s, c->client_auth
                ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                : SSL_VERIFY_NONE, NULL);
        if (c->alpn_len > 0) {
            SSL_CTX_set_alpn_select_cb(s, alpn_select, c);
            if (c->alpn_required) {
                SSL_CTX_set_client_hello_cb(s, alpn_hello, c);
            }
        }
    } else {
        SSL_CTX_set_verify(s, c->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
            NULL);
        if (c->alpn_len > 0) {
            SSL_CTX_set_alpn_protos(s, c->alpn, (unsigned) c->alpn_len);
        }
    }
    return s;
}

static int
alpn_wire(micro__tls_ctx *c, const char *list)
{
    if (list == NULL || list[0] == '\0') {
        return 0;
    }
    size_t n = strlen(list);
    c->alpn = micro__malloc(n + 1);
    if (c->alpn == NULL) {
        return MICRO_ENOMEM;
    }
    size_t o = 0;
    const char *p = list;
    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t) (e - p) : strlen(p);
        if (l == 0 || l > 255) {
            return MICRO_EINVAL;
        }
        c->alpn[o++] = (unsigned char) l;
        memcpy(c->alpn + o, p, l);
        o += l;
        p += l + (e ? 1 : 0);
    }
    c->alpn_len = o;
    return 0;
}

static void
ctx_destroy(micro__tls_ctx *c)
{
    SSL_CTX_free(c->ssl);
    X509_free(c->self_cert);
    EVP_PKEY_free(c->self_key);
    micro__free(c->cert_file);
    micro__free(c->key_file);
    micro__free(c->ca_file);
    micro__free(c->server_name);
    micro__free(c->component);
    micro__free(c->alpn);
    pthread_mutex_destroy(&c->mu);
    micro__free(c);
}

static int
e_ctx_new(micro__tls_ctx **out, bool server, const micro__tls_conf *conf)
{
    *out = NULL;
    micro__tls_ctx *c = micro__calloc(1, sizeof(*c));
    if (c == NULL) {
        return MICRO_ENOMEM;
    }
    pthread_mutex_init(&c->mu, NULL);
    atomic_init(&c->refs, 1);
    c->server = server;
    int rc = 0;
    c->cert_file = micro__tls_strdup(conf->cert_file, &rc);
    c->key_file = micro__tls_strdup(conf->key_file, &rc);
    c->ca_file = micro__tls_strdup(conf->ca_file, &rc);
    c->server_name = micro__tls_strdup(conf->server_name, &rc);
    c->component = micro__tls_strdup(conf->component, &rc);
    c->verify = conf->verify;
    c->client_auth = conf->client_auth;
    c->alpn_required = conf->alpn_required;
    c->hs_timeout_ms = conf->handshake_timeout_ms > 0
        ? conf->handshake_timeout_ms : 10000;
    if (rc == 0) {
        rc = alpn_wire(c, conf->alpn);
        if (rc == MICRO_EINVAL) {
            MICRO_LOGF(MICRO_LOG_ERR, comp(c), "bad ALPN list \"%s\"",
                conf->alpn);
        }
    }
    if (rc == 0 && server && c->cert_file == NULL) {
        rc = self_signed(c, conf->self_signed_host);
    }
    if (rc == 0) {
        stamp_file(c->cert_file, &c->stamps[0]);
        stamp_file(c->key_file, &c->stamps[1]);
        stamp_file(c->ca_file, &c->stamps[2]);
        char why[600];
        c->ssl = build(c, why, sizeof(why));
        if (c->ssl == NULL) {
            MICRO_LOGF(MICRO_LOG_ERR, comp(c), "TLS configuration: %s", why);
            rc = MICRO_EINVAL;
        }
    }
    if (rc != 0) {
        ctx_destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void
e_ctx_ref(micro__tls_ctx *c)
{
    atomic_fetch_add(&c->refs, 1);
}

static void
e_ctx_free(micro__tls_ctx *c)
{
    if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1) {
        ctx_destroy(c);
    }
}

static bool
e_ctx_is_server(const micro__tls_ctx *c)
{
    return c->server;
}

static const char *
e_ctx_server_name(const micro__tls_ctx *c)
{
    return c->server_name;
}

static void
e_ctx_stats(const micro__tls_ctx *c, micro__tls_stats *out)
{
    micro__tls_ctx *m = (micro__tls_ctx *) c;
    out->handshakes = atomic_load(&m->handshakes);
    out->failed = atomic_load(&m->failed);
    out->timeouts = atomic_load(&m->timeouts);
    out->reloads = atomic_load(&m->reloads);
}

/* The SSL_CTX for a new handshake (referenced), rebuilt first when its
 * files changed since it was built. */
static SSL_CTX *
ctx_current(micro__tls_ctx *c)
{
    file_stamp now[3];
    stamp_file(c->cert_file, &now[0]);
    stamp_file(c->key_file, &now[1]);
    stamp_file(c->ca_file, &now[2]);
    pthread_mutex_lock(&c->mu);
    if (!stamps_equal(now, c->stamps) &&
        !(c->have_bad && stamps_equal(now, c->bad_stamps))) {
        char why[600];
        SSL_CTX *n = build(c, why, sizeof(why));
        if (n != NULL) {
            SSL_CTX_free(c->ssl);
            c->ssl = n;
            memcpy(c->stamps, now, sizeof(now));
            c->have_bad = false;
            atomic_fetch_add(&c->reloads, 1);
            MICRO_LOGF(MICRO_LOG_NOTICE, comp(c),
                "certificate files changed: reloaded (%s)",
                c->cert_file ? c->cert_file : c->ca_file);
        } else {
            /* Perhaps half written: keep serving with what we had, and
             * try again when the files change again. */
            memcpy(c->bad_stamps, now, sizeof(now));
            c->have_bad = true;
            MICRO_LOGF(MICRO_LOG_ERR, comp(c),
                "certificate files changed but do not load (%s); keeping "
                "the previous ones", why);
        }
    }
    SSL_CTX *s = c->ssl;
    SSL_CTX_up_ref(s);
    pthread_mutex_unlock(&c->mu);
    return s;
}

/* ------------------------------------------------------------------ */
/* The stream.                                                          */

typedef struct tls_stream tls_stream;

struct tls_stream {
    micro__bs bs; /* first */
    micro__bs *inner;
    micro__tls_ctx *ctx;
    SSL *ssl;
    BIO *rbio, *wbio;
    micro__task pump;
    micro__timer hs_timer;
    micro__tls_done_fn hs_done;
    void *hs_arg;
    char peer_name[256];     /* client: the name verified, for logs */
    char alpn[32];
    int depth;          /* our callbacks running */
    int inner_eof_rc;
    bool server;
    bool handshaken;
    bool want_read;     /* the owner reads */
    bool inner_eof;     /* the inner stream ended its input */
    bool eof_told;
    bool pump_queued;
    bool closing;
    bool failed;
    bool shut;
};

static const micro__bs_cbs inner_cbs;

static void
ts_free(tls_stream *s)
{
    SSL_free(s->ssl); /* frees the BIOs */
    e_ctx_free(s->ctx);
    micro__free(s);
}

/* Free once no callback of ours is on the stack and no pump is queued. */
static void
ts_maybe_free(tls_stream *s)
{
    if (s->closing && s->depth == 0 && !s->pump_queued) {
        ts_free(s);
    }
}

/* Hand what OpenSSL wrote to the inner stream. */
static int
flush_out(tls_stream *s)
{
    size_t n = BIO_ctrl_pending(s->wbio);
    if (n == 0 || s->inner == NULL) {
        return 0;
    }
    micro_buf b = {0};
    if (micro_buf_reserve(&b, n) != 0) {
        return MICRO_ENOMEM;
    }
    int got = BIO_read(s->wbio, b.data, (int) n);
    b.len = got > 0 ? (size_t) got : 0;
    int rc = micro__bs_write(s->inner, &b);
    s->bs.unsent = s->inner->unsent;
    return rc;
}

static bool
is_verify_failure(const tls_stream *s, unsigned long lib_err)
{
    if (SSL_get_verify_result(s->ssl) != X509_V_OK) {
        return true;
    }
    /* Our own checks, and the peer's alerts about our certificate (a TLS
     * 1.3 client hears of a refused certificate only this way). */
    switch (ERR_GET_REASON(lib_err)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
        return true;
    default:
        return false;
    }
}

/* The code and reason of a failed SSL call (the error queue emptied). */
static int
failure(tls_stream *s, int ret, char *why, size_t cap)
{
    int e = SSL_get_error(s->ssl, ret);
    unsigned long first = ERR_peek_error();
    bool cert = is_verify_failure(s, first);
    char lib[400];
    err_text(lib, sizeof(lib));
    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
        snprintf(lib, sizeof(lib), "the peer closed the connection");
    }
    if (ERR_GET_LIB(first) == ERR_LIB_SSL &&
        ERR_GET_REASON(first) == SSL_R_NO_APPLICATION_PROTOCOL) {
        /* ours (alpn_required): name what the client should offer */
        char want[128];
        size_t k = 0;
        const micro__tls_ctx *c = s->ctx;
        for (size_t i = 0; i < c->alpn_len && k + 1 < sizeof(want);) {
            size_t l = c->alpn[i++];
            int w = snprintf(want + k, sizeof(want) - k, "%s%.*s",
                k ? ", " : "", (int) l, (const char *) c->alpn + i);
            k += w > 0 ? (size_t) w : 0;
            i += l;
        }
        want[k < sizeof(want) ? k : sizeof(want) - 1] = '\0';
        snprintf(lib, sizeof(lib),
            "no application protocol: the client offers no ALPN %s "
            "(refused with the no_application_protocol alert)", want);
    }
    long vr = SSL_get_verify_result(s->ssl);
    if (vr != X509_V_OK) {
        snprintf(why, cap, "%s (%s)", X509_verify_cert_error_string(vr),
            lib);
    } else {
        snprintf(why, cap, "%s", lib);
    }
    return cert ? MICRO_ECERT : MICRO_ETLS;
}

static void deliver_eof(tls_stream *s, int rc);

static void ts_close(micro__bs *b);

/* The handshake is over: hand the stream to the owner, or close it and
 * tell the owner why. */
static void
hs_finish(tls_stream *s, int rc)
{
    H->timer_stop(s->bs.loop, &s->hs_timer);
    micro__tls_done_fn fn = s->hs_done;
    void *arg = s->hs_arg;
    s->hs_done = NULL;
    if (rc == 0) {
        atomic_fetch_add(&s->ctx->handshakes, 1);
        const unsigned char *p = NULL;
        unsigned int n = 0;
        SSL_get0_alpn_selected(s->ssl, &p, &n);
        if (n > 0 && n < sizeof(s->alpn)) {
            memcpy(s->alpn, p, n);
            s->alpn[n] = '\0';
        }
        s->handshaken = true;
        /* The owner starts reading when it is ready. */
        micro__bs_read_stop(s->inner);
        if (fn != NULL) {
            fn(arg, &s->bs, 0);
        }
        return;
    }
    if (rc == MICRO_ETIMEDOUT) {
        atomic_fetch_add(&s->ctx->timeouts, 1);
    } else {
        atomic_fetch_add(&s->ctx->failed, 1);
    }
    ts_close(&s->bs);
    if (fn != NULL) {
        fn(arg, NULL, rc);
    }
}

static void
handshake(tls_stream *s)
{
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    int frc = flush_out(s);
    if (r == 1) {
        hs_finish(s, 0);
        return;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ && frc == 0 && !s->inner_eof) {
        return; /* more input */
    }
    char why[600];
    int rc;
    if (e == SSL_ERROR_WANT_READ && s->inner_eof) {
        rc = MICRO_ECONNRESET;
        snprintf(why, sizeof(why), "the peer closed the connection");
    } else if (frc != 0 && e == SSL_ERROR_WANT_READ) {
        rc = frc;
        snprintf(why, sizeof(why), "write: %s", micro_strerror(frc));
    } else {
        rc = failure(s, r, why, sizeof(why));
    }
    /* Flush the alert OpenSSL may have queued, so the peer learns why. */
    (void) flush_out(s);
    if (s->server) {
        MICRO_LOGF(MICRO_LOG_WARN, comp(s->ctx),
            "TLS handshake with %s failed: %s", s->inner->remote, why);
    } else {
        MICRO_LOGF(MICRO_LOG_WARN, comp(s->ctx),
            "TLS handshake with %s (%s) failed: %s", s->inner->remote,
            s->peer_name, why);
    }
    hs_finish(s, rc);
}

static void
on_hs_timeout(micro__timer *t)
{
    tls_stream *s = (tls_stream *) ((char *) t -
        offsetof(tls_stream, hs_timer));
    MICRO_LOGF(MICRO_LOG_WARN, comp(s->ctx),
        "TLS handshake with %s not complete after %lld ms: dropped",
        s->inner != NULL ? s->inner->remote : "?",
        (long long) s->ctx->hs_timeout_ms);
    hs_finish(s, MICRO_ETIMEDOUT);
}

/* Decrypt and deliver while the owner reads. */
static void
pump(tls_stream *s)
{
    char buf[TLS_READ_CHUNK];
    s->depth++;
    while (s->want_read && !s->closing && !s->eof_told) {
        ERR_clear_error();
        int n = SSL_read(s->ssl, buf, sizeof(buf));
        if (n > 0) {
            if (s->bs.cbs != NULL) {
                s->bs.cbs->on_read(s->bs.arg, &s->bs, buf, (size_t) n);
            }
            continue;
        }
        int e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_READ) {
            if (s->inner_eof) {
                /* The connection ended without close_notify: a clean end
                 * for framed protocols (HTTP checks its own framing). */
                deliver_eof(s, s->inner_eof_rc);
            }
            break;
        }
        if (e == SSL_ERROR_ZERO_RETURN) {
            deliver_eof(s, 0); /* close_notify */
            break;
        }
        char why[600];
        int rc = failure(s, n, why, sizeof(why));
        MICRO_LOGF(MICRO_LOG_WARN, comp(s->ctx), "TLS with %s: %s",
            s->inner->remote, why);
        s->failed = true;
        deliver_eof(s, rc);
        break;
    }
    if (!s->closing && flush_out(s) != 0 && !s->failed) {
        s->failed = true; /* a KeyUpdate answer could not be queued */
    }
    s->depth--;
}

static void
deliver_eof(tls_stream *s, int rc)
{
    if (s->eof_told) {
        return;
    }
    s->eof_told = true;
    if (s->bs.cbs != NULL) {
        s->bs.cbs->on_eof(s->bs.arg, &s->bs, rc);
    }
}

static void
on_pump_task(micro__task *t)
{
    tls_stream *s = (tls_stream *) ((char *) t - offsetof(tls_stream, pump));
    s->pump_queued = false;
    if (!s->closing) {
        pump(s);
    }
    ts_maybe_free(s);
}

/* Inner stream events. */

static void
in_read(void *arg, micro__bs *inner, const char *p, size_t n)
{
    tls_stream *s = arg;
    (void) inner;
    if (s->closing) {
        return;
    }
    s->depth++;
    if (BIO_write(s->rbio, p, (int) n) != (int) n) {
        s->failed = true;
        if (!s->handshaken) {
            hs_finish(s, MICRO_ENOMEM);
        } else {
            deliver_eof(s, MICRO_ENOMEM);
        }
    } else if (!s->handshaken) {
        if (s->hs_done != NULL) {
            handshake(s);
        }
    } else if (s->want_read) {
        pump(s);
    }
    s->depth--;
    ts_maybe_free(s);
}

static void
in_eof(void *arg, micro__bs *inner, int rc)
{
    tls_stream *s = arg;
    (void) inner;
    if (s->closing) {
        return;
    }
    s->inner_eof = true;
    s->inner_eof_rc = rc;
    s->depth++;
    if (!s->handshaken) {
        if (s->hs_done != NULL) {
            handshake(s); /* fails: the peer is gone */
        }
    } else if (s->want_read) {
        pump(s);
    }
    s->depth--;
    ts_maybe_free(s);
}

static void
in_drain(void *arg, micro__bs *inner)
{
    tls_stream *s = arg;
    s->bs.unsent = inner->unsent;
    if (!s->closing && s->handshaken && s->bs.cbs != NULL &&
        s->bs.cbs->on_drain != NULL) {
        s->depth++;
        s->bs.cbs->on_drain(s->bs.arg, &s->bs);
        s->depth--;
        ts_maybe_free(s);
    }
}

static void
in_error(void *arg, micro__bs *inner, int rc)
{
    tls_stream *s = arg;
    (void) inner;
    s->failed = true;
    if (s->closing) {
        return;
    }
    s->depth++;
    if (!s->handshaken) {
        if (s->hs_done != NULL) {
            hs_finish(s, rc);
        }
    } else if (s->bs.cbs != NULL && s->bs.cbs->on_error != NULL) {
        s->bs.cbs->on_error(s->bs.arg, &s->bs, rc);
    }
    s->depth--;
    ts_maybe_free(s);
}

static const micro__bs_cbs inner_cbs = {
    .on_read = in_read,
    .on_eof = in_eof,
    .on_drain = in_drain,
    .on_error = in_error,
};

/* The stream's ops. */

static void
ts_read_start(micro__bs *b)
{
    tls_stream *s = (tls_stream *) b;
    if (s->closing || s->want_read) {
        return;
    }
    s->want_read = true;
    if (!s->inner_eof) {
        micro__bs_read_start(s->inner);
    }
    /* Plaintext (or ciphertext) already inside OpenSSL, or an end already
     * seen: deliver on a later turn, never inside this call. */
    if (!s->pump_queued && (SSL_pending(s->ssl) > 0 ||
            BIO_ctrl_pending(s->rbio) > 0 || s->inner_eof)) {
        s->pump_queued = true;
        s->pump.fn = on_pump_task;
        H->defer(s->bs.loop, &s->pump);
    }
}

static void
ts_read_stop(micro__bs *b)
{
    tls_stream *s = (tls_stream *) b;
    if (!s->want_read) {
        return;
    }
    s->want_read = false;
    if (!s->closing && !s->inner_eof) {
        micro__bs_read_stop(s->inner);
    }
}

static int
ts_write(micro__bs *b, micro_buf *buf)
{
    tls_stream *s = (tls_stream *) b;
    micro_buf data = *buf;
    memset(buf, 0, sizeof(*buf));
    if (s->closing || s->failed || s->shut || !s->handshaken) {
        micro_buf_clear(&data);
        return s->failed ? MICRO_EPIPE : MICRO_ECLOSED;
    }
    int rc = 0;
    if (data.len > 0) {
        ERR_clear_error();
        /* A memory BIO takes everything: one call writes it all (in
         * records of up to 16 KiB). */
        int n = SSL_write(s->ssl, data.data, (int) data.len);
        if (n != (int) data.len) {
            char why[600];
            rc = failure(s, n, why, sizeof(why));
            MICRO_LOGF(MICRO_LOG_WARN, comp(s->ctx), "TLS write to %s: %s",
                s->inner->remote, why);
            s->failed = true;
        } else {
            rc = flush_out(s);
            if (rc != 0) {
                s->failed = true;
            }
        }
    }
    micro_buf_clear(&data);
    return rc;
}

static void
ts_shutdown(micro__bs *b)
{
    tls_stream *s = (tls_stream *) b;
    if (s->shut || s->closing) {
        return;
    }
    s->shut = true;
    if (s->handshaken && !s->failed) {
        ERR_clear_error();
        (void) SSL_shutdown(s->ssl); /* queues close_notify */
        (void) flush_out(s);
    }
    micro__bs_shutdown(s->inner);
}

static void
ts_close(micro__bs *b)
{
    tls_stream *s = (tls_stream *) b;
    if (s->closing) {
        return;
    }
    if (s->handshaken && !s->failed && !s->shut) {
        /* Best effort: tell the peer this is a clean end. */
        ERR_clear_error();
        (void) SSL_shutdown(s->ssl);
        (void) flush_out(s);
    }
    s->closing = true;
    s->bs.cbs = NULL;
    H->timer_stop(s->bs.loop, &s->hs_timer);
    if (s->inner != NULL) {
        micro__bs_close(s->inner);
        s->inner = NULL;
    }
    ERR_clear_error();
    ts_maybe_free(s);
}

static const micro__bs_ops tls_ops = {
    .name = "tls",
    .read_start = ts_read_start,
    .read_stop = ts_read_stop,
    .write = ts_write,
    .shutdown = ts_shutdown,
    .close = ts_close,
};

static const char *
e_alpn(const micro__bs *b)
{
    if (b == NULL || b->ops != &tls_ops) {
        return NULL;
    }
    return ((const tls_stream *) b)->alpn;
}

static bool
is_ip_literal(const char *h)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
}

/* Wrap inner (taken: closed on failure) and start the handshake. */
static int
e_wrap(micro__tls_ctx *ctx, micro__bs *inner, bool server, const char *name,
    micro__tls_done_fn done, void *arg, void **handle)
{
    *handle = NULL;
    tls_stream *s = micro__calloc(1, sizeof(*s));
    SSL_CTX *sc = s != NULL ? ctx_current(ctx) : NULL;
    if (sc != NULL) {
        s->ssl = SSL_new(sc);
        SSL_CTX_free(sc); /* SSL_new holds its own reference */
    }
    if (s != NULL && s->ssl != NULL) {
        s->rbio = BIO_new(BIO_s_mem());
        s->wbio = BIO_new(BIO_s_mem());
    }
    if (s == NULL || s->ssl == NULL || s->rbio == NULL || s->wbio == NULL) {
        if (s != NULL) {
            BIO_free(s->rbio);
            BIO_free(s->wbio);
            SSL_free(s->ssl);
            micro__free(s);
        }
        ERR_clear_error();
        micro__bs_close(inner);
        return MICRO_ENOMEM;
    }
    /* An empty memory BIO reads as "retry", not end of file. */
    BIO_set_mem_eof_return(s->rbio, -1);
    BIO_set_mem_eof_return(s->wbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    s->bs.ops = &tls_ops;
    s->bs.loop = inner->loop;
    memcpy(s->bs.remote, inner->remote, sizeof(s->bs.remote));
    memcpy(s->bs.local, inner->local, sizeof(s->bs.local));
    s->inner = inner;
    e_ctx_ref(ctx);
    s->ctx = ctx;
    s->server = server;
    s->hs_done = done;
    s->hs_arg = arg;
    if (server) {
        SSL_set_accept_state(s->ssl);
    } else {
        SSL_set_connect_state(s->ssl);
        snprintf(s->peer_name, sizeof(s->peer_name), "%s", name);
        if (name[0] != '\0' && !is_ip_literal(name)) {
            SSL_set_tlsext_host_name(s->ssl, name);
        }
        if (ctx->verify && name[0] != '\0') {
            if (is_ip_literal(name)) {
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), name);
            } else {
                SSL_set1_host(s->ssl, name);
            }
        }
    }
    micro__bs_set_cbs(inner, &inner_cbs, s);
    if (H->timer_start(s->bs.loop, &s->hs_timer,
            micro__now_ms() + ctx->hs_timeout_ms, on_hs_timeout) != 0) {
        s->hs_done = NULL;
        s->closing = true;
        micro__bs_close(inner);
        s->inner = NULL;
        ts_free(s);
        return MICRO_ENOMEM;
    }
    *handle = s;
    micro__bs_read_start(inner);
    if (!server) {
        s->depth++;
        handshake(s); /* the ClientHello; a failure calls done now */
        s->depth--;
        ts_maybe_free(s);
    }
    return 0;
}

static void
e_abort(void *handle)
{
    tls_stream *s = handle;
    s->hs_done = NULL;
    ts_close(&s->bs);
}

/* ------------------------------------------------------------------ */
/* Certificates.                                                        */

static int
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (e == NULL) {
        return MICRO_EINVAL;
    }
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : MICRO_ENOMEM;
}

static int
e_cert_make(const micro__tls_cert_spec *spec, void **cert_out,
    void **key_out)
{
    *cert_out = NULL;
    *key_out = NULL;
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    char *san = NULL;
    int rc = MICRO_ENOMEM;
    if (key == NULL || x == NULL || bn == NULL) {
        goto done;
    }
    X509_set_version(x, 2);
    /* A random 128-bit serial, as Go's util/tls. */
    if (BN_rand(bn, 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) {
        goto done;
    }
    X509_gmtime_adj(X509_getm_notBefore(x), (long) spec->not_before_s);
    X509_gmtime_adj(X509_getm_notAfter(x), (long) spec->not_after_s);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_UTF8,
        (const unsigned char *) (spec->org ? spec->org : "Acme Co"), -1, -1,
        0);
    if (spec->cn != NULL) {
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8,
            (const unsigned char *) spec->cn, -1, -1, 0);
    }
    X509 *issuer = spec->issuer_cert != NULL ? spec->issuer_cert : x;
    EVP_PKEY *ikey = spec->issuer_key != NULL ? spec->issuer_key : key;
    X509_set_issuer_name(x, X509_get_subject_name(issuer));
    X509_set_pubkey(x, key);
    rc = MICRO_EINVAL;
    if (add_ext(x, issuer, NID_basic_constraints,
            spec->is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE") != 0 ||
        add_ext(x, issuer, NID_key_usage, spec->is_ca
                ? "critical,digitalSignature,keyEncipherment,keyCertSign"
                : "critical,digitalSignature,keyEncipherment") != 0 ||
        (spec->eku != NULL &&
            add_ext(x, issuer, NID_ext_key_usage, spec->eku) != 0) ||
        add_ext(x, issuer, NID_subject_key_identifier, "hash") != 0) {
        goto done;
    }
    if (spec->n_hosts > 0) {
        size_t cap = 1;
        for (size_t i = 0; i < spec->n_hosts; i++) {
            cap += strlen(spec->hosts[i]) + 6;
        }
        san = micro__malloc(cap);
        if (san == NULL) {
            rc = MICRO_ENOMEM;
            goto done;
        }
        size_t o = 0;
        for (size_t i = 0; i < spec->n_hosts; i++) {
            o += (size_t) snprintf(san + o, cap - o, "%s%s:%s",
                i ? "," : "", is_ip_literal(spec->hosts[i]) ? "IP" : "DNS",
                spec->hosts[i]);
        }
        if (add_ext(x, issuer, NID_subject_alt_name, san) != 0) {
            goto done;
        }
    }
    if (X509_sign(x, ikey, EVP_sha256()) == 0) {
        goto done;
    }
    *cert_out = x;
    *key_out = key;
    x = NULL;
    key = NULL;
    rc = 0;
done:
    micro__free(san);
    BN_free(bn);
    X509_free(x);
    EVP_PKEY_free(key);
    ERR_clear_error();
    return rc;
}

static int
e_cert_write(const char *cert_path, const char *key_path, void *cert,
    void *key)
{
    int rc = 0;
    if (cert_path != NULL) {
        FILE *f = fopen(cert_path, "w");
        if (f == NULL || PEM_write_X509(f, cert) != 1) {
            rc = MICRO_EIO;
        }
        if (f != NULL && fclose(f) != 0) {
            rc = MICRO_EIO;
        }
    }
    if (rc == 0 && key_path != NULL) {
        FILE *f = fopen(key_path, "w");
        if (f == NULL ||
            PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1) {
            rc = MICRO_EIO;
        }
        if (f != NULL && fclose(f) != 0) {
            rc = MICRO_EIO;
        }
    }
    ERR_clear_error();
    return rc;
}

/* Every interface address, as Go Micro's util/addr.IPs. */
static size_t
interface_ips(char (*ips)[INET6_ADDRSTRLEN], size_t cap)
{
    struct ifaddrs *ifa = NULL;
    size_t n = 0;
    if (getifaddrs(&ifa) != 0) {
        return 0;
    }
    for (struct ifaddrs *i = ifa; i != NULL && n < cap; i = i->ifa_next) {
        if (i->ifa_addr == NULL) {
            continue;
        }
        if (i->ifa_addr->sa_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *) i->ifa_addr)->sin_addr,
                ips[n], INET6_ADDRSTRLEN);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            inet_ntop(AF_INET6,
                &((struct sockaddr_in6 *) i->ifa_addr)->sin6_addr, ips[n],
                INET6_ADDRSTRLEN);
        } else {
            continue;
        }
        n++;
    }
    freeifaddrs(ifa);
    return n;
}

static int
self_signed(micro__tls_ctx *c, const char *host)
{
    enum { MAX_IPS = 64 };
    char(*ips)[INET6_ADDRSTRLEN] = micro__calloc(MAX_IPS, sizeof(*ips));
    const char **hosts = micro__calloc(MAX_IPS, sizeof(*hosts));
    if (ips == NULL || hosts == NULL) {
        micro__free(ips);
        micro__free(hosts);
        return MICRO_ENOMEM;
    }
    size_t n = 0;
    if (host != NULL && host[0] != '\0' && strcmp(host, "0.0.0.0") != 0 &&
        strcmp(host, "::") != 0) {
        hosts[n++] = host;
    } else {
        size_t k = interface_ips(ips, MAX_IPS);
        for (size_t i = 0; i < k; i++) {
            hosts[n++] = ips[i];
        }
    }
    micro__tls_cert_spec spec = {
        .hosts = hosts,
        .n_hosts = n,
        .org = "Acme Co",
        .not_before_s = 0,
        .not_after_s = 365 * 24 * 3600,
        .is_ca = true,
        .eku = "serverAuth",
    };
    void *x = NULL, *k = NULL;
    int rc = e_cert_make(&spec, &x, &k);
    if (rc == 0) {
        c->self_cert = x;
        c->self_key = k;
        MICRO_LOGF(MICRO_LOG_INFO, comp(c),
            "no certificate given: using a self-signed one for %s",
            n == 1 ? hosts[0] : "every interface address");
    }
    micro__free(ips);
    micro__free(hosts);
    return rc;
}

static void
e_init(const micro__tls_host *host)
{
    H = host;
}

const micro__tls_engine micro_tls_engine_openssl = {
    .abi = MICRO__TLS_ENGINE_ABI,
    .init = e_init,
    .ctx_new = e_ctx_new,
    .ctx_ref = e_ctx_ref,
    .ctx_free = e_ctx_free,
    .ctx_stats = e_ctx_stats,
    .ctx_is_server = e_ctx_is_server,
    .ctx_server_name = e_ctx_server_name,
    .wrap = e_wrap,
    .abort = e_abort,
    .alpn = e_alpn,
    .cert_make = e_cert_make,
    .cert_write = e_cert_write,
};
