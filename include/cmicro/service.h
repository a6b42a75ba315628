#ifndef CMICRO_SERVICE_H
#define CMICRO_SERVICE_H

#include "client.h"
#include "options.h"
#include "registry.h"
#include "server.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A service: server + client + registry + selector + transport on one
 * loop, with Go Micro's run lifecycle:
 *   before-start hooks -> server start -> register -> after-start hooks ->
 *   wait for SIGINT/SIGTERM or micro_service_stop -> before-stop hooks ->
 *   deregister -> drain in-flight requests (bounded by "server_drain",
 *   default 10 s) -> close -> after-stop hooks.
 * Re-registration runs every "register_interval" with TTL "register_ttl".
 */
typedef struct micro_service micro_service;

typedef enum micro_hook_kind {
    MICRO_HOOK_BEFORE_START,
    MICRO_HOOK_AFTER_START,
    MICRO_HOOK_BEFORE_STOP,
    MICRO_HOOK_AFTER_STOP,
} micro_hook_kind;

/** A hook; a non-zero return from a before-start hook aborts run. */
typedef int (*micro_hook_fn)(micro_service *svc, void *arg);

/**
 * Create a service called name (NULL: "server_name" option or
 * "go.micro.server"). Reads MICRO_* environment variables, then flags from
 * argc/argv (which may be 0/NULL); consumed flags are removed from argv.
 * Returns MICRO_ECANCELED after printing --help.
 */
MICRO_API int micro_service_new(
    micro_service **out, const char *name, int *argc, char **argv);
MICRO_API void micro_service_free(micro_service *s);
/** The options, to change before run (borrowed). */
MICRO_API micro_options *micro_service_options(micro_service *s);
/** Components (borrowed; valid for the service's life). */
MICRO_API micro_server *micro_service_server(micro_service *s);
MICRO_API micro_client *micro_service_client(micro_service *s);
MICRO_API micro_registry *micro_service_registry(micro_service *s);
MICRO_API micro_loop *micro_service_loop(micro_service *s);
/** The broker ("broker" option: http, memory, nats). */
MICRO_API micro_broker *micro_service_broker(micro_service *s);
/** Add a subscriber (shorthand for micro_server_subscribe). queue may be
 *  NULL. */
MICRO_API int micro_service_subscribe(micro_service *s, const char *topic,
    const char *queue, micro_subscriber_fn fn, void *arg);
/** Publish a payload (shorthand for micro_client_publish); connects the
 *  broker if the service is not running. */
MICRO_API int micro_service_publish(micro_service *s, const char *topic,
    const void *payload, size_t len, const micro_publish_opts *opts);
/** Register an endpoint (shorthand for micro_server_handle). */
MICRO_API int micro_service_handle(micro_service *s, const char *endpoint,
    micro_handler_fn fn, void *arg);
MICRO_API int micro_service_add_hook(
    micro_service *s, micro_hook_kind kind, micro_hook_fn fn, void *arg);
/**
 * Start (creates the components from the options on first call), serve
 * until a signal or micro_service_stop, then shut down. Blocks. Thread:
 * the thread that created the service.
 *
 * Lifecycle, as Go Micro v4's: before-start hooks, server start, broker
 * connect, register (3 tries), subscribers, after-start hooks; then the
 * node is registered again every register_interval. A registry out of
 * reach at start does not stop the service: it is logged, the service
 * serves by address, and the node (then its subscribers) appears at the
 * first re-registration that succeeds. On stop: before-stop hooks,
 * subscribers, deregister (if registered), drain, after-stop hooks.
 * SIGINT and SIGTERM stop the service from the moment run begins: one that
 * arrives during start-up lets the start finish, then stops (so a node
 * registered meanwhile is deregistered; Go Micro v4 catches signals only
 * after its start, so an early one kills it with the node left behind).
 */
MICRO_API int micro_service_run(micro_service *s);
/** Ask run to return. Thread: any, async-signal-unsafe. */
MICRO_API void micro_service_stop(micro_service *s);

#ifdef __cplusplus
}
#endif
#endif
