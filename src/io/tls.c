/*
 * TLS, the part that needs no OpenSSL (tls.h): options, the engine
 * (tls_engine.h: libcmicro-tls.so, loaded on the first TLS context, so
 * that a process that never uses TLS never maps OpenSSL), listening with
 * the handshakes in progress, and dialling as one aio operation (TCP,
 * then the handshake).
 */
#include "io/tls_engine.h"

#include "plugins.h"

#include <pthread.h>
#include <sys/socket.h>

#define TLS_COMPONENT "io.tls"

/* ------------------------------------------------------------------ */
/* The engine.                                                          */

static const micro__tls_host tls_host = {
    .defer = micro__loop_defer,
    .timer_start = micro__timer_start,
    .timer_stop = micro__timer_stop,
};

static const micro__tls_engine *engine_p;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void
engine_load(void)
{
    const micro__tls_engine *e;
#ifdef MICRO_TLS_MODULE
    e = micro__module_load(MICRO_TLS_MODULE, "micro_tls_engine_openssl",
        "tls", "openssl");
#else
    e = &micro_tls_engine_openssl;
#endif
    if (e != NULL && e->abi != MICRO__TLS_ENGINE_ABI) {
        micro_log(MICRO_LOG_ERR, TLS_COMPONENT,
            "TLS engine ABI %u, expected %u", (unsigned) e->abi,
            (unsigned) MICRO__TLS_ENGINE_ABI);
        e = NULL;
    }
    if (e != NULL) {
        e->init(&tls_host);
    }
    engine_p = e;
}

/* The engine, loaded on first use; NULL when it cannot be (logged). */
static const micro__tls_engine *
engine(void)
{
    pthread_once(&engine_once, engine_load);
    return engine_p;
}

int
micro__tls_ctx_new(micro__tls_ctx **out, bool server,
    const micro__tls_conf *conf)
{
    *out = NULL;
    const micro__tls_engine *e = engine();
    return e != NULL ? e->ctx_new(out, server, conf) : MICRO_ENOTBUILT;
}

micro__tls_ctx *
micro__tls_ctx_ref(micro__tls_ctx *c)
{
    engine_p->ctx_ref(c); /* a context exists: the engine is loaded */
    return c;
}

void
micro__tls_ctx_free(micro__tls_ctx *c)
{
    if (c != NULL) {
        engine_p->ctx_free(c);
    }
}

bool
micro__tls_ctx_is_server(const micro__tls_ctx *c)
{
    return engine_p->ctx_is_server(c);
}

void
micro__tls_ctx_stats(const micro__tls_ctx *c, micro__tls_stats *out)
{
    engine_p->ctx_stats(c, out);
}

bool
micro__bs_is_tls(const micro__bs *s)
{
    return s != NULL && strcmp(s->ops->name, "tls") == 0;
}

const char *
micro__tls_alpn(const micro__bs *s)
{
    return micro__bs_is_tls(s) && engine_p != NULL ? engine_p->alpn(s)
                                                   : NULL;
}

int
micro__tls_cert_make(const micro__tls_cert_spec *spec, void **cert,
    void **key)
{
    const micro__tls_engine *e = engine();
    return e != NULL ? e->cert_make(spec, cert, key) : MICRO_ENOTBUILT;
}

int
micro__tls_cert_write(const char *cert_path, const char *key_path,
    void *cert, void *key)
{
    const micro__tls_engine *e = engine();
    return e != NULL ? e->cert_write(cert_path, key_path, cert, key)
                     : MICRO_ENOTBUILT;
}

/* ------------------------------------------------------------------ */
/* Options.                                                             */

static const char *
opt_str(const micro_options *o, const char *kind, const char *name)
{
    char key[96];
    snprintf(key, sizeof(key), "%s_%s", kind, name);
    const char *v = micro_options_get_str(o, key);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

bool
micro__tls_conf_load(micro__tls_conf *conf, const micro_options *o,
    const char *kind)
{
    char key[96];
    memset(conf, 0, sizeof(*conf));
    if (o == NULL) {
        return false;
    }
    snprintf(key, sizeof(key), "%s_secure", kind);
    bool on = micro_options_get_bool(o, key);
    conf->cert_file = opt_str(o, kind, "tls_cert_file");
    conf->key_file = opt_str(o, kind, "tls_key_file");
    conf->ca_file = opt_str(o, kind, "tls_ca_file");
    conf->server_name = opt_str(o, kind, "tls_server_name");
    conf->alpn = opt_str(o, kind, "tls_alpn");
    snprintf(key, sizeof(key), "%s_tls_client_auth", kind);
    conf->client_auth = micro_options_get_bool(o, key);
    snprintf(key, sizeof(key), "%s_tls_handshake_timeout", kind);
    conf->handshake_timeout_ms = micro_options_get_ms(o, key);
    conf->verify = !micro_options_get_bool(o, "tls_insecure_skip_verify");
    return on || conf->cert_file != NULL;
}

int
micro__tls_conf_copy(micro__tls_conf *dst, const micro__tls_conf *src)
{
    *dst = *src;
    int rc = 0;
    dst->cert_file = micro__tls_strdup(src->cert_file, &rc);
    dst->key_file = micro__tls_strdup(src->key_file, &rc);
    dst->ca_file = micro__tls_strdup(src->ca_file, &rc);
    dst->server_name = micro__tls_strdup(src->server_name, &rc);
    dst->alpn = micro__tls_strdup(src->alpn, &rc);
    dst->self_signed_host = micro__tls_strdup(src->self_signed_host, &rc);
    dst->component = micro__tls_strdup(src->component, &rc);
    if (rc != 0) {
        micro__tls_conf_clear(dst);
    }
    return rc;
}

void
micro__tls_conf_clear(micro__tls_conf *c)
{
    micro__free((char *) c->cert_file);
    micro__free((char *) c->key_file);
    micro__free((char *) c->ca_file);
    micro__free((char *) c->server_name);
    micro__free((char *) c->alpn);
    micro__free((char *) c->self_signed_host);
    micro__free((char *) c->component);
    memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------ */
/* A transport's two ends.                                              */

int
micro__tls_ends_init(micro__tls_ends *e, const micro__tls_conf *conf)
{
    memset(e, 0, sizeof(*e));
    int rc = micro__tls_conf_copy(&e->conf, conf);
    if (rc == 0) {
        rc = micro__tls_ctx_new(&e->client, false, conf);
    }
    if (rc != 0) {
        micro__tls_ends_clear(e);
    }
    return rc;
}

int
micro__tls_ends_listen(micro__tls_ends *e, const char *addr,
    micro__tls_ctx **out)
{
    if (e->client != NULL && e->server == NULL) {
        /* Go Micro's self-signed certificate names the listen host (every
         * interface address when it is empty). */
        char host[64] = "";
        int port = 0;
        struct sockaddr_storage ss;
        if (micro__addr_parse(addr, host, sizeof(host), &port, &ss) < 0) {
            host[0] = '\0';
        }
        micro__tls_conf c = e->conf;
        c.self_signed_host = host;
        int rc = micro__tls_ctx_new(&e->server, true, &c);
        if (rc != 0) {
            *out = NULL;
            return rc;
        }
    }
    *out = e->server;
    return 0;
}

void
micro__tls_ends_clear(micro__tls_ends *e)
{
    micro__tls_ctx_free(e->server);
    micro__tls_ctx_free(e->client);
    micro__tls_conf_clear(&e->conf);
    e->server = e->client = NULL;
}

/* ------------------------------------------------------------------ */
/* Listening.                                                           */

/* A handshake in progress on a listener. */
typedef struct pend {
    struct micro__io_listener *l;
    void *h; /* the engine's handle */
    struct pend *prev, *next;
} pend;

struct micro__io_listener {
    micro__loop_ext ext;
    micro_loop *loop;
    micro__tcp_listener *tcp;
    micro__tls_ctx *tls;
    micro__tcp_accept_fn fn;
    void *arg;
    pend *hs; /* handshakes in progress */
    size_t nhs;
};

static void
pend_unlink(micro__io_listener *l, pend *p)
{
    if (p->prev != NULL) {
        p->prev->next = p->next;
    } else if (l->hs == p) {
        l->hs = p->next;
    }
    if (p->next != NULL) {
        p->next->prev = p->prev;
    }
    l->nhs--;
    micro__free(p);
}

static void
on_server_done(void *arg, micro__bs *tls, int rc)
{
    pend *p = arg;
    micro__io_listener *l = p->l;
    pend_unlink(l, p);
    if (rc == 0) {
        l->fn(l->arg, tls);
    }
}

static void
on_tcp_accept(void *arg, micro__bs *inner)
{
    micro__io_listener *l = arg;
    if (l->tls == NULL) {
        l->fn(l->arg, inner);
        return;
    }
    pend *p = micro__calloc(1, sizeof(*p));
    if (p == NULL) {
        micro__bs_close(inner);
        MICRO_LOGF(MICRO_LOG_ERR, TLS_COMPONENT,
            "out of memory for a TLS connection: dropped");
        return;
    }
    p->l = l;
    p->next = l->hs;
    if (l->hs != NULL) {
        l->hs->prev = p;
    }
    l->hs = p;
    l->nhs++;
    if (engine_p->wrap(l->tls, inner, true, "", on_server_done, p, &p->h) !=
        0) {
        MICRO_LOGF(MICRO_LOG_ERR, TLS_COMPONENT,
            "out of memory for a TLS connection: dropped");
        pend_unlink(l, p);
    }
}

static void
drop_handshakes(micro__io_listener *l)
{
    while (l->hs != NULL) {
        pend *p = l->hs;
        void *h = p->h;
        pend_unlink(l, p);
        engine_p->abort(h);
    }
}

static void
listener_on_loop_close(micro__loop_ext *x)
{
    drop_handshakes((micro__io_listener *) x);
}

int
micro__io_listen(micro_loop *loop, const char *addr, micro__tls_ctx *tls,
    micro__tcp_accept_fn fn, void *arg, micro__io_listener **out)
{
    *out = NULL;
    micro__io_listener *l = micro__calloc(1, sizeof(*l));
    if (l == NULL) {
        return MICRO_ENOMEM;
    }
    l->fn = fn;
    l->arg = arg;
    l->loop = loop;
    int rc = micro__tcp_listen(loop, addr, on_tcp_accept, l, &l->tcp);
    if (rc != 0) {
        micro__free(l);
        return rc;
    }
    if (tls != NULL) {
        l->tls = micro__tls_ctx_ref(tls);
        l->ext.key = l;
        l->ext.on_close = listener_on_loop_close;
        micro__loop_ext_add(loop, &l->ext);
    }
    *out = l;
    return 0;
}

const char *
micro__io_listener_address(const micro__io_listener *l)
{
    return micro__tcp_listener_address(l->tcp);
}

size_t
micro__io_listener_handshaking(const micro__io_listener *l)
{
    return l->nhs;
}

void
micro__io_listener_close(micro__io_listener *l)
{
    if (l == NULL) {
        return;
    }
    if (l->tls != NULL) {
        drop_handshakes(l);
        micro__loop_ext_remove(l->loop, &l->ext);
        micro__tls_ctx_free(l->tls);
    }
    micro__tcp_listener_close(l->tcp);
    micro__free(l);
}

/* ------------------------------------------------------------------ */
/* Dialling.                                                            */

static void
on_client_done(void *arg, micro__bs *tls, int rc)
{
    micro__io_dial *d = arg;
    micro__aio *a = d->outer;
    d->hs = NULL;
    d->outer = NULL;
    micro__aio_finish(a, rc, rc == 0 ? tls : NULL);
}

static void
io_dial_cancel(micro__aio *a, int rc)
{
    micro__io_dial *d = a->prov;
    if (d->hs != NULL) {
        void *h = d->hs;
        d->hs = NULL;
        d->outer = NULL;
        if (rc == MICRO_ETIMEDOUT) {
            MICRO_LOGF(MICRO_LOG_WARN, TLS_COMPONENT,
                "TLS handshake with %s: timed out", d->addr);
        }
        engine_p->abort(h);
        micro__aio_finish(a, rc, NULL);
        return;
    }
    /* Still dialling TCP: cancel that; its completion finishes a (also
     * when it has finished already and its callback is on its way). */
    d->cancel_rc = rc;
    micro__aio_cancel(&d->inner, rc);
}

static void
on_tcp_dialed(micro__aio *ia)
{
    micro__io_dial *d = ia->arg;
    micro__aio *a = d->outer;
    micro__bs *bs = ia->out;
    if (ia->rc != 0 || d->cancel_rc != 0) {
        if (ia->rc == 0) {
            micro__bs_close(bs);
        }
        d->outer = NULL;
        micro__aio_finish(a, ia->rc != 0 ? ia->rc : d->cancel_rc, NULL);
        return;
    }
    char host[256];
    int port = 0;
    struct sockaddr_storage ss;
    const char *name = d->server_name;
    if (name == NULL || name[0] == '\0') {
        name = engine_p->ctx_server_name(d->tls);
    }
    if (name == NULL || name[0] == '\0') {
        if (micro__addr_parse(d->addr, host, sizeof(host), &port, &ss) < 0) {
            host[0] = '\0';
        }
        if (host[0] == '\0') {
            snprintf(host, sizeof(host), "127.0.0.1"); /* ":port" */
        }
        name = host;
    }
    /* d->hs is set before the ClientHello goes out; a handshake that
     * fails at once finishes a through on_client_done. */
    int rc = engine_p->wrap(d->tls, bs, false, name, on_client_done, d,
        &d->hs);
    if (rc != 0) {
        d->hs = NULL;
        d->outer = NULL;
        micro__aio_finish(a, rc, NULL);
    }
}

void
micro__io_dial_start(micro__aio *a, void *op)
{
    micro__io_dial *d = op;
    if (d->tls == NULL) {
        d->tcp.addr = d->addr;
        micro__tcp_dial_start(a, &d->tcp);
        return;
    }
    d->outer = a;
    d->hs = NULL;
    d->cancel_rc = 0;
    d->tcp.addr = d->addr;
    micro__aio_init(&d->inner, a->loop, on_tcp_dialed, d);
    micro__aio_set_deadline(&d->inner, a->deadline);
    micro__aio_schedule(a, io_dial_cancel, d);
    if (!micro__aio_pending(a)) {
        return;
    }
    micro__aio_start(&d->inner, micro__tcp_dial_start, &d->tcp);
}
