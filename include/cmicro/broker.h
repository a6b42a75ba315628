#ifndef CMICRO_BROKER_H
#define CMICRO_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "msg.h"
#include "options.h"
#include "registry.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * The broker: asynchronous messaging (Go Micro's broker.Broker). Publish a
 * message {header, body} on a topic; subscribers of the topic receive it.
 * A subscription with a queue (group) name shares the topic's messages with
 * the other members of that queue: each message goes to one member. Without
 * a queue every subscription receives every message (broadcast).
 *
 * Delivery. Every subscription has its own bounded queue and its own
 * delivery thread, so a slow handler never blocks the publisher, the
 * broker's network threads or other subscriptions. When a queue is full the
 * message is dropped, counted (micro_broker_stats.dropped and the
 * subscription's own count) and logged at most once a second with the
 * count. A handler returning non-zero is counted and logged; delivery goes
 * on.
 *
 * Implementations: "http" (Go Micro's default, wire-compatible with v4:
 * subscribers registered as micro.http.broker, messages POSTed as the JSON
 * envelope {"Header":{...},"Body":"<base64>"}), "memory" (in-process) and
 * "nats" (cnats; Go Micro's NATS plugin envelope on subject = topic).
 */
typedef struct micro_broker micro_broker;
typedef struct micro_sub micro_sub;
typedef struct micro_event micro_event;

/* --- the event, borrowed by the handler for the call -------------- */
/** The topic the message was published on. */
MICRO_API const char *micro_event_topic(const micro_event *e);
/** The message: header and body (borrowed). */
MICRO_API const micro_msg *micro_event_msg(const micro_event *e);
/** A header value (case-insensitive) or NULL. */
MICRO_API const char *micro_event_header(
    const micro_event *e, const char *key);
/** The body; never NULL, *len may be 0. */
MICRO_API const void *micro_event_body(const micro_event *e, size_t *len);
/** Acknowledge (a no-op for http, memory and nats: they do not redeliver).
 *  Returns 0. */
MICRO_API int micro_event_ack(micro_event *e);

/**
 * A subscription handler. Runs on the subscription's delivery thread (so it
 * may block; other subscriptions go on). A non-zero return is counted as a
 * handler error and logged.
 */
typedef int (*micro_broker_handler_fn)(micro_event *ev, void *arg);

/**
 * Subscription options; a zeroed struct (or NULL) means the defaults.
 * ABI: the struct grows at its end. size is sizeof(micro_sub_opts) as the
 * caller compiled it (MICRO_SUB_OPTS_INIT sets it); 0 reads as the first
 * version (this one, which ends at queue_limit). Fields added later are
 * read only when size covers them.
 */
typedef struct micro_sub_opts {
    size_t size;
    const char *queue;  /* queue group; NULL or "" for broadcast */
    size_t queue_limit; /* bounded delivery queue; 0: 4096 messages */
} micro_sub_opts;

#define MICRO_SUB_OPTS_INIT {.size = sizeof(micro_sub_opts)}

/** Broker statistics (totals over all subscriptions, live and gone). */
typedef struct micro_broker_stats {
    uint64_t published;      /* messages accepted by publish */
    uint64_t publish_errors; /* publishes that failed */
    uint64_t received;       /* messages that reached a subscription */
    uint64_t delivered;      /* handler calls made */
    uint64_t dropped;        /* lost to a full subscription queue */
    uint64_t handler_errors; /* handler calls that returned non-zero */
    uint64_t bad_messages;   /* undecodable envelopes from the network */
} micro_broker_stats;

/** Per-subscription statistics. */
typedef struct micro_sub_stats {
    uint64_t received;
    uint64_t delivered;
    uint64_t dropped;
    uint64_t handler_errors;
    uint64_t pending; /* queued, not yet handled */
} micro_sub_stats;

/* --- implementations ---------------------------------------------- */

#define MICRO_BROKER_ABI 2

/**
 * For implementers of a broker. The front end owns the subscriptions, their
 * bounded queues, delivery threads and statistics; an implementation moves
 * messages and hands each received one to micro_broker_deliver.
 * Slots are called from any thread (the front end serialises connect,
 * disconnect, subscribe and unsubscribe; publish may run concurrently with
 * everything) and may block, except where noted. No front-end lock is held
 * while a slot runs, but a slot must not wait for a subscription handler
 * to return (the handler may be waiting for the slot's turn).
 */
typedef struct micro_broker_ops {
    uint32_t abi;      /* MICRO_BROKER_ABI */
    const char *name;  /* "http", "memory", "nats": the MICRO_BROKER value */
    size_t state_size; /* allocated and zeroed by the front end */
    /* Required. loop and registry (either may be NULL when the
     * implementation does not need it) are borrowed and outlive the
     * broker; opts is borrowed for the call. */
    int (*init)(void *st, micro_broker *b, micro_loop *loop,
        micro_registry *registry, const micro_options *opts);
    /* Required. Connect / start listening. */
    int (*connect)(void *st);
    /* Required. Undo connect; subscriptions are already gone. */
    int (*disconnect)(void *st);
    /* Required. msg (header + body) and topic are borrowed for the call. */
    int (*publish)(void *st, const char *topic, const micro_msg *msg);
    /* Required. Start receiving for sub (micro_sub_topic/queue); may keep
     * its own data with micro_sub_set_data. Called while connected. */
    int (*subscribe)(void *st, micro_sub *sub);
    /* Required. After it returns, no micro_broker_deliver for sub may
     * start. */
    int (*unsubscribe)(void *st, micro_sub *sub);
    /* Optional. The address it listens on or is connected to. */
    const char *(*address)(void *st);
    /* Optional. Frees what init allocated (after disconnect). */
    void (*fini)(void *st);
    /* --- ABI 2 ---------------------------------------------------- */
    /* The options the implementation reads (options.h: full Go Micro
     * names starting with "broker_"), ended by MICRO_OPTION_END; NULL for
     * none. The core learns them from here for flags, env and --help. */
    const micro_option_desc *options;
} micro_broker_ops;

MICRO_API extern const micro_broker_ops micro_broker_http_ops;
MICRO_API extern const micro_broker_ops micro_broker_memory_ops;
/** In libcmicro-nats (link cmicro::nats or -lcmicro-nats; built with
 *  MICRO_WITH_NATS). micro_broker_new_by_name("nats") loads it on first
 *  use, so programs that never pick it do not map libnats or OpenSSL. */
MICRO_API extern const micro_broker_ops micro_broker_nats_ops;

/** For implementations: the subscription's topic and queue ("" none). */
MICRO_API const char *micro_sub_topic(const micro_sub *s);
MICRO_API const char *micro_sub_queue(const micro_sub *s);
/** For implementations: a pointer of their own on the subscription. */
MICRO_API void micro_sub_set_data(micro_sub *s, void *data);
MICRO_API void *micro_sub_data(const micro_sub *s);

/**
 * For implementations: queue a received message for sub's handler. Takes
 * *msg on success (sets it NULL); on failure (MICRO_EAGAIN: the queue is
 * full and the message was dropped and counted; MICRO_ECLOSED: the
 * subscription is closing) *msg stays the caller's. Never blocks, never
 * logs and calls no user code, so an implementation may call it with its
 * own locks held (drops are logged later by the delivery thread). Thread:
 * any (for example a libnats thread).
 */
MICRO_API int micro_broker_deliver(micro_sub *sub, micro_msg **msg);
/** For implementations: count (and log, rate-limited) an undecodable
 *  message from the network. */
MICRO_API void micro_broker_count_bad(micro_broker *b, const char *why);

/**
 * Go Micro's broker envelope, {"Header":{...},"Body":"<base64>"}, as the
 * http and nats brokers send it. to_json appends to out; from_json
 * creates *out (MICRO_ECODEC when malformed or over 1024 header keys;
 * linear in the input, the last of duplicate keys wins as in Go).
 */
MICRO_API int micro_broker_envelope_encode(const micro_msg *m, micro_buf *out);
MICRO_API int micro_broker_envelope_decode(
    const void *p, size_t len, micro_msg **out);

/* --- the broker ----------------------------------------------------- */

/**
 * Create a broker from an ops table. Options read: "broker_address"
 * (http: the listen address, default 127.0.0.1:0; nats: the servers,
 * default nats://127.0.0.1:4222). The http broker finds subscribers
 * through registry (borrowed; required for http). loop is borrowed; NULL
 * lets the broker make its own where it needs one.
 */
MICRO_API int micro_broker_new(micro_broker **out, const micro_broker_ops *ops,
    micro_loop *loop, micro_registry *registry, const micro_options *opts);
/** By name: "http", "memory", "nats" (MICRO_ENOTBUILT when compiled out),
 *  MICRO_ENOENT when unknown. */
MICRO_API int micro_broker_new_by_name(micro_broker **out, const char *name,
    micro_loop *loop, micro_registry *registry, const micro_options *opts);
/** Unsubscribe everything, disconnect and free. NULL is a no-op. Waits
 *  for running handlers; they may call into the broker meanwhile
 *  (subscribe then fails with MICRO_ECLOSED, unsubscribe with
 *  MICRO_ENOENT). Thread: any but a delivery thread of b. */
MICRO_API void micro_broker_free(micro_broker *b);
MICRO_API const char *micro_broker_name(const micro_broker *b);
/** The implementation's address (listen or server URL), or "". */
MICRO_API const char *micro_broker_address(micro_broker *b);

/** Connect (idempotent). Thread: any; may block. */
MICRO_API int micro_broker_connect(micro_broker *b);
/** Remove every subscription, then disconnect. Blocks until running
 *  handlers return (they may call into the broker meanwhile, as during
 *  micro_broker_free). From a delivery thread, that thread's own
 *  subscription is freed when its handler returns. No library lock is held
 *  while the implementation does network I/O or while handlers run.
 *  Thread: any. */
MICRO_API int micro_broker_disconnect(micro_broker *b);

/**
 * Publish msg on topic. msg and topic are borrowed for the call (the broker
 * copies what it keeps). Thread: any; may block (http posts before it
 * returns; nats buffers, also while reconnecting). Errors: MICRO_EINVAL,
 * MICRO_ECLOSED (not connected), MICRO_ENOSERVICE (http: no subscriber
 * registered anywhere), transport errors.
 */
MICRO_API int micro_broker_publish(
    micro_broker *b, const char *topic, const micro_msg *msg);

/**
 * Subscribe fn to topic. *out receives the subscription (owned by the
 * broker; pass it to micro_broker_unsubscribe or let disconnect remove
 * it); out may be NULL. fn runs on the subscription's own delivery thread.
 * Thread: any, including a handler; connects first if needed. Errors:
 * MICRO_EINVAL, MICRO_ENOMEM, MICRO_ECLOSED (a disconnect or free is in
 * progress), the implementation's.
 */
MICRO_API int micro_broker_subscribe(micro_broker *b, const char *topic,
    const micro_sub_opts *opts, micro_broker_handler_fn fn, void *arg,
    micro_sub **out);
/**
 * Stop sub: no delivery starts after this returns; messages still queued
 * are dropped (counted), a running handler is waited for. sub is freed.
 * Called from sub's own handler, it does not wait for itself: it takes
 * effect when the handler returns (nothing else is delivered; the
 * subscription is freed by its thread then, and micro_broker_free waits
 * for that). sub is looked up before it is touched, so a subscription
 * that is gone already gives MICRO_ENOENT, not a crash.
 * Thread: any. Errors: MICRO_EINVAL (NULL), MICRO_ENOENT (not a live
 * subscription of b: unsubscribed before, or being removed by a
 * disconnect).
 */
MICRO_API int micro_broker_unsubscribe(micro_broker *b, micro_sub *sub);

MICRO_API void micro_broker_get_stats(
    micro_broker *b, micro_broker_stats *out);
MICRO_API void micro_sub_get_stats(micro_sub *s, micro_sub_stats *out);

#ifdef __cplusplus
}
#endif
#endif
