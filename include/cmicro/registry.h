#ifndef CMICRO_REGISTRY_H
#define CMICRO_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Registration records in Go Micro's model (registry.Service). Plain value
 * types: every string and array is malloc'd and owned by the containing
 * struct; free with the matching *_clear / micro_registry_service_free.
 */

/** One metadata entry. */
typedef struct micro_kv {
    char *key;
    char *value;
} micro_kv;

/** A string map, kept in insertion order; NULL items with len 0 means
 *  "null" (Go's nil map). */
typedef struct micro_metadata {
    micro_kv *items;
    size_t len;
} micro_metadata;

MICRO_API const char *micro_metadata_get(
    const micro_metadata *m, const char *key);
/** Set (copying key and value); replaces an existing key. */
MICRO_API int micro_metadata_set(
    micro_metadata *m, const char *key, const char *value);
MICRO_API void micro_metadata_clear(micro_metadata *m);

/** registry.Value: {"name","type","values"} */
typedef struct micro_value {
    char *name;
    char *type;
    struct micro_value *values;
    size_t n_values;
} micro_value;

/** registry.Endpoint: {"request","response","metadata","name"} */
typedef struct micro_endpoint {
    char *name;
    micro_value *request;  /* NULL: null */
    micro_value *response; /* NULL: null */
    micro_metadata metadata;
} micro_endpoint;

/** registry.Node: {"metadata","id","address"} */
typedef struct micro_node {
    char *id;
    char *address;
    micro_metadata metadata;
} micro_node;

/** registry.Service: {"name","version","metadata","endpoints","nodes"} */
typedef struct micro_registry_service {
    char *name;
    char *version;
    micro_metadata metadata;
    micro_endpoint *endpoints;
    size_t n_endpoints;
    micro_node *nodes;
    size_t n_nodes;
} micro_registry_service;

MICRO_API void micro_value_clear(micro_value *v);
MICRO_API void micro_endpoint_clear(micro_endpoint *e);
MICRO_API void micro_node_clear(micro_node *n);
MICRO_API void micro_registry_service_clear(micro_registry_service *s);
/** Free a heap-allocated record; NULL is a no-op. */
MICRO_API void micro_registry_service_free(micro_registry_service *s);
/** Free an array of n records (as returned by get/list) and the array. */
MICRO_API void micro_registry_services_free(
    micro_registry_service *svcs, size_t n);

/** Deep copies. MICRO_ENOMEM on failure (dst then zeroed). */
MICRO_API int micro_node_copy(micro_node *dst, const micro_node *src);
MICRO_API int micro_registry_service_copy(
    micro_registry_service *dst, const micro_registry_service *src);

/** Encode as Go's encoding/json of registry.Service (nil maps and slices as
 *  null). *out is malloc'd, NUL-terminated; free() it. */
MICRO_API int micro_registry_service_to_json(
    const micro_registry_service *s, char **out);
/** Decode Go's JSON into *s (zeroed first). MICRO_ECODEC when malformed. */
MICRO_API int micro_registry_service_from_json(
    const char *json, size_t len, micro_registry_service *s);

/* ------------------------------------------------------------------ */
/* The registry interface.                                              */

typedef struct micro_registry micro_registry;

/** Watch actions, as Go Micro names them. */
typedef enum micro_registry_action {
    MICRO_REGISTRY_CREATE,
    MICRO_REGISTRY_UPDATE,
    MICRO_REGISTRY_DELETE,
} micro_registry_action;

/**
 * A watch event. svc is borrowed for the duration of the callback. The
 * callback runs on a registry-owned thread (or the thread that caused the
 * change), with no library lock held: it may call into any registry,
 * including this one, and may unwatch (see micro_registry_unwatch).
 */
typedef void (*micro_registry_watch_fn)(void *arg,
    micro_registry_action action, const micro_registry_service *svc);

#define MICRO_REGISTRY_ABI 2

/**
 * For implementers. Every slot may block (network registries do) and is
 * called from any thread, concurrently: implementations synchronise
 * themselves. The front end validates arguments first.
 */
typedef struct micro_registry_ops {
    uint32_t abi;       /* MICRO_REGISTRY_ABI */
    const char *name;   /* "memory", "mdns", ...: the MICRO_REGISTRY value */
    size_t state_size;  /* the front end allocates this much, zeroed */
    /* Required. opts is borrowed for the call. */
    int (*init)(void *st, const micro_options *opts);
    /* Required. svc borrowed. ttl_ms 0 means no expiry. */
    int (*register_service)(
        void *st, const micro_registry_service *svc, int64_t ttl_ms);
    /* Required. Removes the nodes of svc (matched by id). */
    int (*deregister)(void *st, const micro_registry_service *svc);
    /* Required. One record per version; *out malloc'd (may be NULL when
     * *n is 0). MICRO_ENOSERVICE when the name is unknown. */
    int (*get_service)(void *st, const char *name,
        micro_registry_service **out, size_t *n);
    /* Required. One record per service name (name only is enough). */
    int (*list_services)(void *st, micro_registry_service **out, size_t *n);
    /* Optional (NULL: MICRO_ENOTSUP). Calls fn on every change until
     * unwatch with the same token. */
    int (*watch)(void *st, micro_registry_watch_fn fn, void *arg,
        uint64_t *token);
    void (*unwatch)(void *st, uint64_t token);
    /* Required. Frees what init allocated. */
    void (*fini)(void *st);
    /* --- ABI 2 ---------------------------------------------------- */
    /* The options the implementation reads (options.h: full Go Micro
     * names starting with "registry_"), ended by MICRO_OPTION_END; NULL for
     * none. The core learns them from here for flags, env and --help. */
    const micro_option_desc *options;
} micro_registry_ops;

/** The in-process registry. */
MICRO_API extern const micro_registry_ops micro_registry_memory_ops;
/**
 * The mDNS registry (the default), wire-compatible with Go Micro v4's:
 * multicast DNS on 224.0.0.251:5353 and [ff02::fb]:5353 on every up
 * interface (loopback included, followed as interfaces come and go),
 * records and TXT encoding as Go Micro writes them, record TTL = the
 * registration TTL. Options: "registry_timeout" (the lookup window,
 * 100 ms), "registry_interfaces" (comma list; default all),
 * "registry_ipv6" (on | off | only). IPv6 multicast on lo needs the route
 * `ip -6 route add local ff02::fb/128 dev lo table local`; without it the
 * registry runs on IPv4 there and says so at debug level.
 */
MICRO_API extern const micro_registry_ops micro_registry_mdns_ops;

/**
 * The etcd registry, record-compatible with Go Micro v4's etcd plugin:
 * keys /micro/registry/<service>/<node id>, each holding Go Micro's JSON
 * registry.Service with that one node, on a lease of the registration's
 * TTL (one per TTL, shared by the registry's nodes) kept alive at a third
 * of it (a lost lease is replaced and its records put again, so
 * registrations come back with etcd). Talks to etcd 3.4+'s
 * v3 JSON gateway over HTTP/1.1. Options: "registry_address" (endpoints,
 * comma-separated, host:port or http://host:port; default
 * 127.0.0.1:2379; the next one is tried on a connection error),
 * "registry_timeout" (per request, 5 s), "registry_username" /
 * "registry_password" (or ETCD_USERNAME / ETCD_PASSWORD). Watch callbacks
 * run on a thread of the registry's; every event of a watch response is
 * reported, and a watch resumes after a disconnect (listing again after a
 * compaction).
 */
MICRO_API extern const micro_registry_ops micro_registry_etcd_ops;

/**
 * The Consul registry, record-compatible with Go Micro v4's Consul plugin:
 * one Consul service instance per node (ID = node id, Meta = node
 * metadata, version / endpoints / node metadata in hex(zlib) tags), with a
 * TTL check passed at a third of the TTL (an agent that lost it gets the
 * registration again, so registrations come back with the agent).
 * Lookups read /v1/health/service (critical instances left out); watch
 * runs blocking queries on the catalog and on every service. Options:
 * "registry_address" (agents, comma-separated, host[:port],
 * http://host:port or https://host:port, port 8500 by default; or
 * CONSUL_HTTP_ADDR; the next one is tried on a connection error),
 * "registry_timeout" (per request, 5 s), "registry_token" (ACL token, sent
 * as X-Consul-Token; or CONSUL_HTTP_TOKEN), and the TLS options as etcd's
 * ("registry_secure", "registry_tls_ca_file", ...: verified only with a CA
 * file, as Go Micro's Secure).
 */
MICRO_API extern const micro_registry_ops micro_registry_consul_ops;

/** Create a registry from an ops table. opts may be NULL. */
MICRO_API int micro_registry_new(micro_registry **out,
    const micro_registry_ops *ops, const micro_options *opts);
/** Create by name ("memory", "mdns", "etcd", "consul"). */
MICRO_API int micro_registry_new_by_name(
    micro_registry **out, const char *name, const micro_options *opts);
MICRO_API void micro_registry_free(micro_registry *r);
MICRO_API const char *micro_registry_name(const micro_registry *r);

/* Thread: any. They may block. */
MICRO_API int micro_registry_register(
    micro_registry *r, const micro_registry_service *svc, int64_t ttl_ms);
MICRO_API int micro_registry_deregister(
    micro_registry *r, const micro_registry_service *svc);
MICRO_API int micro_registry_get_service(micro_registry *r, const char *name,
    micro_registry_service **out, size_t *n);
MICRO_API int micro_registry_list_services(
    micro_registry *r, micro_registry_service **out, size_t *n);
MICRO_API int micro_registry_watch(micro_registry *r,
    micro_registry_watch_fn fn, void *arg, uint64_t *token);
/**
 * Stop a watch. After this returns the callback is not started again.
 * Called from outside every watch callback, it also waits until no
 * callback of this watch is running (so arg may be freed then). Called
 * from inside a watch callback (of any registry, on this thread, however
 * nested) it never waits, so that it cannot wait for itself or for a
 * callback that waits for it: callbacks of the watch that are running
 * then, this one or on other threads, finish on their own; free arg only
 * once they have. An unknown token is ignored. Thread: any.
 */
MICRO_API void micro_registry_unwatch(micro_registry *r, uint64_t token);

#ifdef __cplusplus
}
#endif
#endif
