/*
 * The TLS engine: everything that needs OpenSSL, behind one table, so
 * that libcmicro.so itself never maps libssl/libcrypto (1.7 MiB of
 * resident memory in every process, TLS or not). The engine is
 * src/io/tls_openssl.c, built as the module libcmicro-tls.so and loaded
 * by src/io/tls.c on the first TLS context (the static library links it
 * in). tls.c keeps what needs no OpenSSL: options, listening and
 * dialling, the bookkeeping of handshakes in progress.
 *
 * The engine reaches the loop (hidden symbols of libcmicro) only through
 * the host table given to init. Threads: as tls.h. Not installed.
 */
#ifndef CMICRO_IO_TLS_ENGINE_H
#define CMICRO_IO_TLS_ENGINE_H

#include "io/tls.h"

#define MICRO__TLS_ENGINE_ABI 2 /* 2: micro__tls_conf.alpn_required */

/* What the host (libcmicro) lends the engine. */
typedef struct micro__tls_host {
    void (*defer)(micro_loop *l, micro__task *t);
    int (*timer_start)(micro_loop *l, micro__timer *t, int64_t due_ms,
        micro__timer_fn fn);
    void (*timer_stop)(micro_loop *l, micro__timer *t);
} micro__tls_host;

/* A handshake's end: tls is the stream (rc 0, the owner's from now on) or
 * NULL (rc the error; the engine has closed the inner stream). On the
 * loop thread, once, unless the handshake was aborted. */
typedef void (*micro__tls_done_fn)(void *arg, micro__bs *tls, int rc);

typedef struct micro__tls_engine {
    uint32_t abi; /* MICRO__TLS_ENGINE_ABI */
    void (*init)(const micro__tls_host *host); /* once, before the rest */
    int (*ctx_new)(micro__tls_ctx **out, bool server,
        const micro__tls_conf *conf);
    void (*ctx_ref)(micro__tls_ctx *c);
    void (*ctx_free)(micro__tls_ctx *c);
    void (*ctx_stats)(const micro__tls_ctx *c, micro__tls_stats *out);
    bool (*ctx_is_server)(const micro__tls_ctx *c);
    const char *(*ctx_server_name)(const micro__tls_ctx *c); /* or NULL */
    /*
     * Take inner and run a handshake over it (server: wait for the
     * ClientHello within the context's timeout; client: send it, name is
     * the name to verify and the SNI). *handle is set before anything
     * else happens and stays valid until done runs or abort is called.
     * Non-zero: inner was closed, done never runs.
     */
    int (*wrap)(micro__tls_ctx *c, micro__bs *inner, bool server,
        const char *name, micro__tls_done_fn done, void *arg, void **handle);
    /* Drop a handshake in progress (no done). */
    void (*abort)(void *handle);
    /* The ALPN protocol negotiated on a stream of this engine. */
    const char *(*alpn)(const micro__bs *s);
    int (*cert_make)(const micro__tls_cert_spec *spec, void **cert,
        void **key);
    int (*cert_write)(const char *cert_path, const char *key_path,
        void *cert, void *key);
} micro__tls_engine;

/* libcmicro-tls.so's one export. */
MICRO_API extern const micro__tls_engine micro_tls_engine_openssl;

#endif
