/* The general HTTP/1.1 client (client.h). */
#include "http/client.h"
#include "core/msg_internal.h"
#include "http/conn.h"
#include "io/stream.h"
#include "io/tls.h"

#include <stdatomic.h>

#define HC_COMPONENT "http.client"

struct micro__hc_conn {
    micro__http_client *cl;
    micro__h1_conn *h1;
    micro__http_call *call; /* the exchange in progress; NULL when idle */
    micro__hc_conn *prev, *next;
    int64_t dialed_at;
    bool idle;    /* in the pool */
    bool interim; /* a 1xx answer is being parsed */
    char addr[];  /* the pool key */
};

struct micro__http_client {
    micro_loop *loop;
    micro__http_client_cfg cfg;
    micro__loop_ext ext;
    micro__hc_conn *conns;     /* every connection, idle or busy */
    micro__http_call *pending; /* calls started and not completed */
    atomic_bool dead;          /* the loop closed under us */
    atomic_int gone;           /* loop close + free: the second frees */
    micro__tls_ctx *tls;       /* cfg.tls, or made on first https use */
    micro__tls_conf tls_conf;  /* a copy of cfg.tls_conf */
    bool have_tls_conf;
};

/* A dial in progress, apart from the call so that an abandoned one can
 * finish (and free itself) after the call completed. */
typedef struct hc_dial {
    micro__aio aio;
    micro__io_dial d;
    micro__http_call *call; /* NULL once abandoned */
    char addr[];
} hc_dial;

static const micro__h1_conn_cbs hc_conn_cbs;
static void attempt(micro__http_call *call, bool fresh);

/* ------------------------------------------------------------------ */
/* Settings.                                                            */

void
micro__http_client_cfg_load(micro__http_client_cfg *cfg,
    const micro_options *o)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->lim.max_header = (size_t) 1 << 20;
    cfg->lim.max_fields = 1000;
    cfg->lim.max_body = (size_t) 4 << 20;
    cfg->pool_size = 100;
    cfg->pool_ttl_ms = 60000;
    cfg->dial_timeout_ms = 5000;
    if (o == NULL) {
        return;
    }
    int64_t v = micro_options_get_int(o, "transport_max_message_size");
    if (v > 0) {
        cfg->lim.max_body = (size_t) v;
    }
    v = micro_options_get_int(o, "transport_max_header_size");
    if (v > 0) {
        cfg->lim.max_header = (size_t) v;
    }
    v = micro_options_get_int(o, "transport_max_headers");
    if (v > 0) {
        cfg->lim.max_fields = (size_t) v;
    }
    v = micro_options_get_int(o, "client_pool_size");
    if (v >= 0) {
        cfg->pool_size = (size_t) v;
    }
    v = micro_options_get_ms(o, "client_pool_ttl");
    if (v > 0) {
        cfg->pool_ttl_ms = v;
    }
    v = micro_options_get_ms(o, "client_dial_timeout");
    if (v > 0) {
        cfg->dial_timeout_ms = v;
    }
}

/* ------------------------------------------------------------------ */
/* Connections.                                                         */

static void
conn_unlist(micro__hc_conn *hc)
{
    micro__http_client *cl = hc->cl;
    if (hc->prev != NULL) {
        hc->prev->next = hc->next;
    } else if (cl->conns == hc) {
        cl->conns = hc->next;
    }
    if (hc->next != NULL) {
        hc->next->prev = hc->prev;
    }
    hc->prev = hc->next = NULL;
}

/* Close and forget a connection (no callback follows). */
static void
conn_drop(micro__hc_conn *hc)
{
    conn_unlist(hc);
    micro__h1_conn *h1 = hc->h1;
    hc->h1 = NULL;
    micro__free(hc);
    micro__h1_conn_close(h1);
}

/* Pooled connections are found by address, TLS ones apart. */
static void
pool_key(const micro__http_call *call, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", call->use_tls ? "tls:" : "", call->cur_addr);
}

static micro__hc_conn *
pool_take(micro__http_client *cl, const char *addr)
{
    int64_t now = micro__now_ms();
    micro__hc_conn *hc = cl->conns;
    while (hc != NULL) {
        micro__hc_conn *next = hc->next;
        if (hc->idle && strcmp(hc->addr, addr) == 0) {
            if (now - hc->dialed_at < cl->cfg.pool_ttl_ms) {
                hc->idle = false;
                micro__h1_conn_hold(hc->h1, 1);
                return hc;
            }
            conn_drop(hc); /* too old */
        }
        hc = next;
    }
    return NULL;
}

static void
pool_put(micro__hc_conn *hc)
{
    micro__http_client *cl = hc->cl;
    size_t same = 0;
    for (micro__hc_conn *o = cl->conns; o != NULL; o = o->next) {
        same += o->idle && strcmp(o->addr, hc->addr) == 0;
    }
    if (cl->dead || same >= cl->cfg.pool_size ||
        micro__now_ms() - hc->dialed_at >= cl->cfg.pool_ttl_ms) {
        conn_drop(hc);
        return;
    }
    hc->idle = true;
    micro__h1_conn_hold(hc->h1, -1);
}

/* ------------------------------------------------------------------ */
/* Completion.                                                          */

static bool
method_idempotent(const char *m)
{
    static const char *const ok[] = {"GET", "HEAD", "OPTIONS", "TRACE",
        "PUT", "DELETE"};
    for (size_t i = 0; i < MICRO_ARRAY_LEN(ok); i++) {
        if (strcmp(m, ok[i]) == 0) {
            return true;
        }
    }
    return false;
}

static void
pending_remove(micro__http_call *call)
{
    micro__http_client *cl = call->client;
    if (call->prev_pending != NULL) {
        call->prev_pending->next_pending = call->next_pending;
    } else if (cl->pending == call) {
        cl->pending = call->next_pending;
    }
    if (call->next_pending != NULL) {
        call->next_pending->prev_pending = call->prev_pending;
    }
    call->next_pending = call->prev_pending = NULL;
}

static void
abandon_dial(micro__http_call *call)
{
    hc_dial *d = call->dial;
    if (d != NULL) {
        call->dial = NULL;
        d->call = NULL;
        micro__aio_cancel(&d->aio, MICRO_ECANCELED);
    }
}

static void
finish(micro__http_call *call, int rc)
{
    if (call->done) {
        return;
    }
    call->done = true;
    pending_remove(call);
    abandon_dial(call);
    if (call->conn != NULL) {
        micro__hc_conn *hc = call->conn;
        call->conn = NULL;
        hc->call = NULL;
        conn_drop(hc); /* mid-exchange: not reusable */
    }
    micro_buf_clear(&call->pend);
    micro__aio_finish(call->aio, rc, call);
}

static void
call_cancel(micro__aio *a, int rc)
{
    finish(a->prov, rc);
}

/* The connection of call failed: retry by the stale-connection rule, or
 * complete. */
static void
conn_failed(micro__http_call *call, int rc, bool nothing_written,
    bool answer_began)
{
    call->conn = NULL;
    if (rc == MICRO_EOF) {
        rc = MICRO_ECONNRESET;
    }
    bool may = call->replayable || method_idempotent(call->method_s) ||
        nothing_written;
    if (call->reused && !answer_began && call->attempts == 1 && may &&
        (!call->chunked || !call->flushed)) {
        MICRO_LOGF(MICRO_LOG_DEBUG, HC_COMPONENT,
            "%s: pooled connection failed (%s); retrying on a new one",
            call->cur_addr, micro_strerror(rc));
        attempt(call, true);
        return;
    }
    finish(call, rc);
}

/* ------------------------------------------------------------------ */
/* Connection events.                                                   */

static int
hc_on_head(void *arg, micro__h1_conn *c, micro__h1_head *h)
{
    micro__hc_conn *hc = arg;
    (void) c;
    micro__http_call *call = hc->call;
    if (call == NULL) {
        return MICRO_EPROTO; /* an answer nobody asked for */
    }
    if (h->status >= 100 && h->status < 200) {
        hc->interim = true; /* 100 Continue and friends: no body */
        return 0;
    }
    call->got_head = true;
    call->status = h->status;
    snprintf(call->reason, sizeof(call->reason), "%s",
        h->reason != NULL ? h->reason : "");
    bool stream = call->on_body != NULL;
    if (call->on_head != NULL) {
        call->rsp = h->msg; /* borrowed for on_head */
        call->on_head(call->arg, call);
        if (call->done) {
            call->rsp = NULL;
            return MICRO_ECANCELED;
        }
        call->rsp = NULL;
    }
    if (stream) {
        call->rsp = h->msg;
        h->msg = NULL;
        return 0;
    }
    return MICRO__H1_BUFFER;
}

static int
hc_on_body(void *arg, micro__h1_conn *c, const char *p, size_t n)
{
    micro__hc_conn *hc = arg;
    (void) c;
    micro__http_call *call = hc->call;
    if (call == NULL || hc->interim) {
        return 0;
    }
    int rc = call->on_body(call->arg, call, p, n);
    if (call->done) {
        return MICRO_ECANCELED;
    }
    return rc < 0 ? rc : 0;
}

static int
hc_on_end(void *arg, micro__h1_conn *c, micro_msg *msg, bool keep_alive)
{
    micro__hc_conn *hc = arg;
    (void) c;
    if (hc->interim) {
        hc->interim = false;
        micro_msg_free(msg);
        return 0;
    }
    micro__http_call *call = hc->call;
    if (call == NULL) {
        micro_msg_free(msg);
        return MICRO_EPROTO;
    }
    if (msg != NULL) {
        micro_msg_free(call->rsp);
        call->rsp = msg;
    }
    hc->call = NULL;
    call->conn = NULL;
    bool sent_all = !call->chunked || call->ended;
    if (keep_alive && sent_all && micro__h1_conn_unsent(hc->h1) == 0) {
        pool_put(hc);
    } else {
        conn_drop(hc);
    }
    finish(call, 0);
    return 0;
}

static void
hc_on_reject(void *arg, micro__h1_conn *c, int rc, int status)
{
    micro__hc_conn *hc = arg;
    (void) c;
    (void) status;
    micro__http_call *call = hc->call;
    hc->call = NULL;
    MICRO_LOGF(MICRO_LOG_INFO, HC_COMPONENT, "%s: bad response: %s",
        hc->addr, micro_strerror(rc));
    conn_drop(hc);
    if (call != NULL) {
        call->conn = NULL;
        finish(call, rc);
    }
}

static void
hc_on_close(void *arg, micro__h1_conn *c, int rc)
{
    micro__hc_conn *hc = arg;
    micro__http_call *call = hc->call;
    bool began = micro__h1_conn_receiving(c);
    hc->call = NULL;
    hc->h1 = NULL; /* it frees itself after this */
    conn_unlist(hc);
    micro__free(hc);
    if (call != NULL) {
        conn_failed(call, rc, false, began || call->got_head);
    }
}

static const micro__h1_conn_cbs hc_conn_cbs = {
    .on_head = hc_on_head,
    .on_body = hc_on_body,
    .on_end = hc_on_end,
    .on_reject = hc_on_reject,
    .on_close = hc_on_close,
};

/* ------------------------------------------------------------------ */
/* Sending.                                                             */

/* Put the call on hc and write its request. */
static void
attach(micro__http_call *call, micro__hc_conn *hc, bool reused)
{
    call->conn = hc;
    hc->call = call;
    hc->interim = false;
    call->reused = reused;
    call->attempts++;
    call->got_head = false;
    if (call->head_only) {
        micro__h1_conn_expect_no_body(hc->h1);
    }
    micro_buf out = {0};
    int rc = micro_buf_append(&out, call->head.data, call->head.len);
    if (rc == 0 && !call->chunked && call->body_len > 0) {
        rc = micro_buf_append(&out, call->body, call->body_len);
    }
    if (rc == 0 && call->chunked && call->pend.len > 0) {
        rc = micro_buf_append(&out, call->pend.data, call->pend.len);
    }
    if (rc != 0) {
        micro_buf_clear(&out);
        finish(call, rc);
        return;
    }
    rc = micro__h1_conn_write(hc->h1, &out);
    micro_buf_clear(&out);
    if (rc != 0) {
        /* Refused at once: nothing of the request left us. */
        call->conn = NULL;
        hc->call = NULL;
        conn_drop(hc);
        conn_failed(call, rc, true, false);
        return;
    }
    if (call->chunked && call->pend.len > 0) {
        call->flushed = true;
        micro_buf_clear(&call->pend);
    }
}

static void
on_dialed(micro__aio *a)
{
    hc_dial *d = a->arg;
    micro__http_call *call = d->call;
    micro__bs *bs = a->out;
    int rc = a->rc;
    micro__free(d);
    if (call == NULL) {
        if (bs != NULL) {
            micro__bs_close(bs); /* abandoned */
        }
        return;
    }
    call->dial = NULL;
    micro__http_client *cl = call->client;
    if (rc == 0) {
        char key[300];
        pool_key(call, key, sizeof(key));
        size_t alen = strlen(key);
        micro__hc_conn *hc = micro__calloc(1, sizeof(*hc) + alen + 1);
        if (hc == NULL) {
            micro__bs_close(bs);
            finish(call, MICRO_ENOMEM);
            return;
        }
        memcpy(hc->addr, key, alen + 1);
        hc->cl = cl;
        hc->dialed_at = micro__now_ms();
        micro__h1_conn_cfg cfg = {
            .kind = MICRO__H1_RESPONSE,
            .lim = cl->cfg.lim,
            /* No read timeout: a response may stream for as long as the
             * caller wants (an etcd watch); the call's deadline bounds. */
            .idle_timeout_ms = cl->cfg.pool_ttl_ms,
        };
        rc = micro__h1_conn_new(&hc->h1, bs, &cfg, &hc_conn_cbs, hc);
        if (rc != 0) {
            micro__free(hc);
            finish(call, rc);
            return;
        }
        micro__h1_conn_hold(hc->h1, 1);
        hc->next = cl->conns;
        if (cl->conns != NULL) {
            cl->conns->prev = hc;
        }
        cl->conns = hc;
        attach(call, hc, false);
        return;
    }
    /* The next address of the list, if any. */
    const char *next = call->cur_addr + strlen(call->cur_addr) + 1;
    if (next < call->addrs + call->addrs_len && next[0] != '\0') {
        MICRO_LOGF(MICRO_LOG_DEBUG, HC_COMPONENT, "dial %s: %s; trying %s",
            call->cur_addr, micro_strerror(rc), next);
        call->cur_addr = next;
        attempt(call, true);
        return;
    }
    finish(call, rc);
}

static void
start_dial(micro__http_call *call)
{
    size_t len = strlen(call->cur_addr);
    hc_dial *d = micro__malloc(sizeof(*d) + len + 1);
    if (d == NULL) {
        finish(call, MICRO_ENOMEM);
        return;
    }
    memcpy(d->addr, call->cur_addr, len + 1);
    d->call = call;
    memset(&d->d, 0, sizeof(d->d));
    d->d.addr = d->addr;
    micro__http_client *cl = call->client;
    if (call->use_tls) {
        if (cl->tls == NULL) {
            micro__tls_conf conf = {.verify = true, .component = HC_COMPONENT};
            int rc = micro__tls_ctx_new(&cl->tls, false,
                cl->have_tls_conf ? &cl->tls_conf : &conf);
            if (rc != 0) {
                micro__free(d);
                finish(call, rc);
                return;
            }
        }
        d->d.tls = cl->tls;
    }
    call->dial = d;
    micro__aio_init(&d->aio, cl->loop, on_dialed, d);
    int64_t deadline = micro__now_ms() + cl->cfg.dial_timeout_ms;
    if (call->aio->deadline != 0 && call->aio->deadline < deadline) {
        deadline = call->aio->deadline;
    }
    micro__aio_set_deadline(&d->aio, deadline);
    micro__aio_start(&d->aio, micro__io_dial_start, &d->d);
}

/* One attempt: a pooled connection to the current address, or a dial. */
static void
attempt(micro__http_call *call, bool fresh)
{
    micro__http_client *cl = call->client;
    if (!fresh) {
        char key[300];
        pool_key(call, key, sizeof(key));
        micro__hc_conn *hc = pool_take(cl, key);
        if (hc != NULL) {
            attach(call, hc, true);
            return;
        }
    }
    start_dial(call);
}

/* ------------------------------------------------------------------ */
/* Starting.                                                            */

/* Fill addrs (NUL-separated list), host and the target from the call. */
static int
plan(micro__http_call *call, const char **target)
{
    const char *hostport = NULL;
    size_t hl = 0;
    *target = call->target != NULL && call->target[0] != '\0' ? call->target
                                                              : "/";
    call->use_tls = call->tls;
    if (call->url != NULL) {
        const char *u = call->url;
        call->use_tls = false;
        if (strncasecmp(u, "http://", 7) == 0) {
            u += 7;
        } else if (strncasecmp(u, "https://", 8) == 0) {
            u += 8;
            call->use_tls = true;
        } else if (strstr(u, "://") != NULL) {
            return MICRO_ENOTSUP; /* other schemes */
        }
        const char *slash = strpbrk(u, "/?");
        hl = slash != NULL ? (size_t) (slash - u) : strlen(u);
        hostport = u;
        if (slash != NULL) {
            *target = slash;
            if (slash[0] == '?') {
                /* "host?q": the path is "/" */
                call->path = micro__malloc(strlen(slash) + 2);
                if (call->path == NULL) {
                    return MICRO_ENOMEM;
                }
                call->path[0] = '/';
                memcpy(call->path + 1, slash, strlen(slash) + 1);
                *target = call->path;
            }
        }
    } else if (call->addr != NULL) {
        hostport = call->addr;
        hl = strlen(call->addr);
    }
    if (hostport == NULL || hl == 0) {
        return MICRO_EINVAL;
    }
    /* addrs: the list with commas turned into NULs, ":80" added to a
     * url's host without a port. */
    call->addrs = micro__malloc(hl + 8);
    if (call->addrs == NULL) {
        return MICRO_ENOMEM;
    }
    memcpy(call->addrs, hostport, hl);
    call->addrs[hl] = '\0';
    if (call->url != NULL) {
        const char *rb = strrchr(call->addrs, ']');
        const char *colon = strrchr(call->addrs, ':');
        if (colon == NULL || (rb != NULL && colon < rb)) {
            memcpy(call->addrs + hl, call->use_tls ? ":443" : ":80",
                call->use_tls ? 5 : 4);
            hl += call->use_tls ? 4 : 3;
        }
    }
    call->addrs_len = hl + 1;
    char *first_end = strchr(call->addrs, ',');
    size_t flen = first_end ? (size_t) (first_end - call->addrs) : hl;
    call->host = micro__strndup(call->addrs, flen);
    if (call->host == NULL) {
        return MICRO_ENOMEM;
    }
    for (char *p = call->addrs; *p != '\0'; p++) {
        if (*p == ',') {
            *p = '\0';
        }
    }
    call->cur_addr = call->addrs;
    if (call->cur_addr[0] == '\0') {
        return MICRO_EINVAL;
    }
    return 0;
}

void
micro__http_call_start(micro__aio *a, void *op)
{
    micro__http_call *call = op;
    micro__http_client *cl = call->client;
    call->aio = a;
    call->status = 0;
    call->reason[0] = '\0';
    call->attempts = 0;
    call->reused = false;
    call->done = false;
    call->ended = false;
    call->flushed = false;
    call->got_head = false;
    call->conn = NULL;
    call->dial = NULL;
    call->method_s = call->method != NULL ? call->method : "GET";
    call->head_only = strcmp(call->method_s, "HEAD") == 0;
    if (cl == NULL || cl->dead) {
        micro__aio_finish(a, MICRO_ECLOSED, call);
        return;
    }
    const char *target = NULL;
    int rc = plan(call, &target);
    if (rc == 0) {
        int64_t blen = call->chunked ? -1 : (int64_t) call->body_len;
        rc = micro__h1_write_request_head(&call->head, call->method_s, target,
            call->host, call->headers, blen);
    }
    if (rc != 0) {
        micro__aio_finish(a, rc, call);
        return;
    }
    call->next_pending = cl->pending;
    if (cl->pending != NULL) {
        cl->pending->prev_pending = call;
    }
    cl->pending = call;
    micro__aio_schedule(a, call_cancel, call);
    if (call->done) {
        return; /* the deadline could not be armed */
    }
    attempt(call, false);
}

int
micro__http_call_write(micro__http_call *call, const void *p, size_t n)
{
    if (!call->chunked || call->ended || n == 0) {
        return MICRO_EINVAL;
    }
    if (call->done) {
        return MICRO_ECLOSED;
    }
    micro_buf b = {0};
    int rc = micro__h1_write_chunk(&b, p, n);
    if (rc != 0) {
        return rc;
    }
    if (call->conn == NULL) {
        rc = micro_buf_append(&call->pend, b.data, b.len);
        micro_buf_clear(&b);
        return rc;
    }
    call->flushed = true;
    return micro__h1_conn_write(call->conn->h1, &b);
}

int
micro__http_call_end(micro__http_call *call)
{
    if (!call->chunked || call->ended) {
        return MICRO_EINVAL;
    }
    if (call->done) {
        return MICRO_ECLOSED;
    }
    micro_buf b = {0};
    int rc = micro__h1_write_chunk(&b, NULL, 0);
    if (rc != 0) {
        return rc;
    }
    call->ended = true;
    if (call->conn == NULL) {
        rc = micro_buf_append(&call->pend, b.data, b.len);
        micro_buf_clear(&b);
        return rc;
    }
    return micro__h1_conn_write(call->conn->h1, &b);
}

size_t
micro__http_call_unsent(const micro__http_call *call)
{
    if (call->conn != NULL && call->conn->h1 != NULL) {
        return micro__h1_conn_unsent(call->conn->h1);
    }
    return call->pend.len;
}

void
micro__http_call_fini(micro__http_call *call)
{
    micro_msg_free(call->rsp);
    call->rsp = NULL;
    micro_buf_clear(&call->head);
    micro_buf_clear(&call->pend);
    micro__free(call->addrs);
    micro__free(call->host);
    micro__free(call->path);
    call->addrs = call->host = call->path = NULL;
}

int
micro__http_call_wait(micro__http_call *call, int64_t timeout_ms)
{
    if (call->client == NULL) {
        return MICRO_EINVAL;
    }
    micro_loop *loop = call->client->loop;
    if (micro_loop_is_current(loop)) {
        return MICRO_EINVAL;
    }
    micro__aio a;
    micro__aio_init(&a, loop, NULL, NULL);
    micro__aio_set_timeout(&a, timeout_ms);
    return micro__aio_call(&a, micro__http_call_start, call);
}

/* ------------------------------------------------------------------ */
/* The client.                                                          */

/* Complete every pending call and close every connection. Loop thread. */
static void
shut(micro__http_client *cl)
{
    while (cl->pending != NULL) {
        finish(cl->pending, MICRO_ECANCELED);
    }
    while (cl->conns != NULL) {
        conn_drop(cl->conns);
    }
}

static void
client_destroy(micro__http_client *cl)
{
    micro__tls_ctx_free(cl->tls);
    micro__tls_conf_clear(&cl->tls_conf);
    micro__free(cl);
}

static void
on_loop_close(micro__loop_ext *x)
{
    micro__http_client *cl =
        (micro__http_client *) ((char *) x -
            offsetof(micro__http_client, ext));
    shut(cl);
    atomic_store(&cl->dead, true);
    if (atomic_fetch_add(&cl->gone, 1) == 1) {
        client_destroy(cl); /* micro__http_client_free came first */
    }
}

static int
do_add(void *arg)
{
    micro__http_client *cl = arg;
    micro__loop_ext_add(cl->loop, &cl->ext);
    return 0;
}

int
micro__http_client_new(micro__http_client **out, micro_loop *loop,
    const micro__http_client_cfg *cfg)
{
    *out = NULL;
    micro__http_client *cl = micro__calloc(1, sizeof(*cl));
    if (cl == NULL) {
        return MICRO_ENOMEM;
    }
    cl->loop = loop;
    cl->cfg = *cfg;
    if (cl->cfg.pool_ttl_ms <= 0) {
        cl->cfg.pool_ttl_ms = 60000;
    }
    if (cl->cfg.dial_timeout_ms <= 0) {
        cl->cfg.dial_timeout_ms = 5000;
    }
    cl->cfg.tls_conf = NULL;
    if (cfg->tls_conf != NULL) {
        if (micro__tls_conf_copy(&cl->tls_conf, cfg->tls_conf) != 0) {
            micro__free(cl);
            return MICRO_ENOMEM;
        }
        cl->have_tls_conf = true;
    }
    cl->ext.key = cl;
    cl->ext.on_close = on_loop_close;
    int rc = micro__loop_call(loop, do_add, cl);
    if (rc != 0) {
        micro__tls_conf_clear(&cl->tls_conf);
        micro__free(cl);
        return rc;
    }
    if (cfg->tls != NULL) {
        cl->tls = micro__tls_ctx_ref(cfg->tls);
    }
    *out = cl;
    return 0;
}

static int
do_free(void *arg)
{
    micro__http_client *cl = arg;
    micro__loop_ext_remove(cl->loop, &cl->ext);
    shut(cl);
    return 0;
}

void
micro__http_client_free(micro__http_client *cl)
{
    if (cl == NULL) {
        return;
    }
    if (!atomic_load(&cl->dead) && micro__loop_call(cl->loop, do_free, cl) ==
            0) {
        client_destroy(cl);
        return;
    }
    /* The loop is closing or closed: its on_close shuts us down; whichever
     * of the two comes second frees. */
    if (atomic_fetch_add(&cl->gone, 1) == 1) {
        client_destroy(cl);
    }
}

micro_loop *
micro__http_client_loop(const micro__http_client *cl)
{
    return cl->loop;
}

size_t
micro__http_client_idle(const micro__http_client *cl)
{
    size_t n = 0;
    for (const micro__hc_conn *hc = cl->conns; hc != NULL; hc = hc->next) {
        n += hc->idle;
    }
    return n;
}
