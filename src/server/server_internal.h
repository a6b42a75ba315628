/* Shared by the server front end (server.c) and its built-in
 * implementation (mucp.c). Not installed. */
#ifndef CMICRO_SERVER_INTERNAL_H
#define CMICRO_SERVER_INTERNAL_H

#include "core/internal.h"
#include "core/loop_internal.h"

#include <stdatomic.h>

typedef struct micro__handler {
    char *endpoint;
    micro_handler_fn fn; /* unary; NULL for a stream endpoint */
    void *arg;
    micro_value *request;
    micro_value *response;
    unsigned flags;
    /* A stream endpoint (micro_stream_handler). */
    bool stream;
    int (*on_open)(micro_stream *s, void *arg);
    int (*on_msg)(micro_stream *s, const void *body, size_t len, void *arg);
    void (*on_end)(micro_stream *s, int rc, void *arg);
    void (*on_close)(micro_stream *s, int rc, void *arg);
} micro__handler;

typedef struct micro__wrapper {
    micro_handler_wrapper_fn fn;
    void *arg;
} micro__wrapper;

struct micro_server {
    const micro_server_ops *ops;
    void *impl;
    micro_loop *loop;
    micro_transport *tr;
    micro_options *opts;
    char *name;
    char *version;
    char *id;
    micro_metadata md;
    micro__handler *handlers;
    size_t n_handlers;
    micro__wrapper *wrappers;
    size_t n_wrappers;
    bool started;
    char address[96];
    _Atomic uint64_t requests, errors, unknown, codec_errors, late, dropped,
        streams;
    atomic_long inflight;
    struct micro__subs *subs; /* subscribers (subscriber.c), or NULL */
};

/* What a handler sees. The mucp implementation embeds it in its own
 * per-request object; micro_server_dispatch builds one on the stack. */
struct micro_request {
    micro_server *s;
    const micro_msg *msg; /* headers / metadata; may be NULL */
    const char *endpoint;
    const char *service;
    const char *ct;
    const void *body;
    size_t len;
    int64_t deadline;
};

struct micro_response {
    micro_msg *msg; /* reply headers, created on first use */
    micro_buf body;
    micro_error *err;
    const micro_server *s;
    /* An error was set but there was no memory to build it: the answer
     * must not go out as a success (the implementation closes instead). */
    bool err_lost;
};

/* The handler registered for endpoint, or NULL. */
const micro__handler *micro__server_find(const micro_server *s,
    const char *endpoint);

/*
 * A stream opens (its event thread): run the server's wrappers as for a
 * unary call, with req (the opening message's headers, no body), around the
 * handler's on_open. *reached: the chain got to the handler (a wrapper that
 * answers by itself, an auth check that refuses, does not reach it); *err:
 * the error a wrapper set (the caller's to free). Returns the chain's rc.
 */
int micro__server_stream_open(micro_server *s, const micro__handler *h,
    micro_stream *st, const micro_request *req, bool *reached,
    micro_error **err);

/*
 * Route r to its handler through the wrappers: checks the endpoint's form,
 * finds the handler, refuses a request whose deadline has passed, runs the
 * chain. On return either rsp->err is set (Go Micro's error shape, with
 * the server's texts) or rsp->body holds the reply. Counts unknown, late
 * and error outcomes. Any thread.
 */
void micro__server_route(micro_server *s, micro_request *r,
    micro_response *rsp);

/* Subscribers (subscriber.c). */
/* Frees the subscribers (unsubscribing first). From micro_server_free. */
void micro__server_subs_free(micro_server *s);
/* Appends the subscriber endpoints to a record (micro_server_record). */
int micro__server_subs_record(const micro_server *s,
    micro_registry_service *out);
/*
 * Where an answer goes: the server implementation's way back to the peer
 * of one request. fn takes out and may be called from any thread, once.
 */
typedef struct micro__reply micro__reply;
struct micro__reply {
    void (*fn)(micro__reply *r, micro_msg *out);
};

/*
 * A transport message carrying Micro-Topic: an event (Go Micro §2.3). Takes
 * msg: decodes and runs every subscriber of the topic on the event
 * workers, then answers through r (request headers echoed, Micro-Error on
 * failure, empty body) and decrements s->inflight, which the caller has
 * incremented. Loop thread.
 */
void micro__server_event(micro_server *s, micro__reply *r, micro_msg *msg);

#endif
