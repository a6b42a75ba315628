/*
 * Internal to the http transport: its settings, and the blocking round
 * trip (http_blocking.c) that the socket side (http.c) offers as the
 * synchronous fast path. Both speak through http/h1.h, so they write and
 * accept the same bytes. Not installed.
 */
#ifndef CMICRO_HTTP_INTERNAL_H
#define CMICRO_HTTP_INTERNAL_H

#include "core/internal.h"
#include "http/h1.h"

typedef struct micro__http_cfg {
    micro__h1_limits lim;    /* max_body = transport_max_message_size */
    int64_t read_timeout_ms;
    int64_t idle_timeout_ms;
    size_t max_conns;
    size_t max_buffered;
    size_t window;
    size_t pool_size;        /* idle connections kept per address */
    int64_t pool_ttl_ms;     /* since dial */
    int64_t dial_timeout_ms;
} micro__http_cfg;

/* From the options (defaults for what is unset). */
void micro__http_cfg_load(micro__http_cfg *cfg, const micro_options *opts);

/*
 * The blocking client: a pool of idle keep-alive connections (file
 * descriptors) shared by every thread, one mutex never held across a
 * system call that blocks. Thread-safe.
 */
typedef struct micro__http_pool micro__http_pool;

int micro__http_pool_new(micro__http_pool **out, const micro__http_cfg *cfg);
void micro__http_pool_free(micro__http_pool *p);

/*
 * One exchange with addr on the calling thread: micro_transport_ops
 * .roundtrip. The request is written with micro__h1_mucp_request_head and
 * the response read with the h1 parser (status 200 only; others are
 * MICRO_EPROTO with the status line logged). A connection goes back to
 * the pool only after a complete exchange whose response is keep-alive,
 * carries no Micro-Error, and has nothing after it.
 */
int micro__http_roundtrip(micro__http_pool *p, const char *addr,
    const micro_msg *req, int64_t timeout_ms, micro_msg **rsp, int *sent);

/*
 * The client side's response checks, shared by the sockets and the
 * blocking client: MICRO_EPROTO (logged) unless status is 200.
 */
int micro__http_check_status(const micro__h1_head *h, const char *addr);

#endif
