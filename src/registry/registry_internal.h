/* Registry internals shared by src/registry and src/plugins.c. Not installed. */
#ifndef CMICRO_REGISTRY_INTERNAL_H
#define CMICRO_REGISTRY_INTERNAL_H

#include "cmicro/registry.h"

#include <pthread.h>
#include <stdint.h>

/*
 * The name -> ops table (src/plugins.c). 0 and *ops set for a built
 * plugin; MICRO_ENOTBUILT for a known name compiled out;
 * MICRO_ENOENT for an unknown name.
 */
int micro__registry_ops_by_name(
    const char *name, const micro_registry_ops **ops);

/* Deep copies used by the registries (record.c). On failure dst is
 * zeroed and MICRO_ENOMEM returned. A NULL-items map stays NULL (null in
 * JSON); an empty non-NULL map stays non-NULL ({}). */
int micro__metadata_copy(micro_metadata *dst, const micro_metadata *src);
int micro__endpoint_copy(micro_endpoint *dst, const micro_endpoint *src);
/* Everything but the nodes (n_nodes 0, nodes NULL). */
int micro__registry_service_copy_header(
    micro_registry_service *dst, const micro_registry_service *src);

/* Go's encoding/json of the mDNS registry's TXT struct (registry/
 * mdns_registry.go mdnsTxt): {"Metadata":md,"Service":s,"Version":v,
 * "Endpoints":[...]}, capitalised keys, endpoints in the registry's
 * lower-case shape, a NULL-items md and n_eps 0 as null. *out is malloc'd
 * (micro__free). MICRO_ENOMEM on failure (record.c). */
int micro__registry_mdns_txt_json(const char *service, const char *version,
    const micro_metadata *md, const micro_endpoint *eps, size_t n_eps,
    char **out);

/* Go's encoding/json of one registry.Endpoint (NUL-terminated, *out
 * micro__free'd), and its decoding from a parsed object (e zeroed first;
 * MICRO_ECODEC when it is not one). The Consul registry's e- tags. */
int micro__endpoint_to_json(const micro_endpoint *e, char **out);
struct cJSON;
int micro__endpoint_from_cjson(const struct cJSON *j, micro_endpoint *e);

/*
 * Watchers and their events, shared by the registries that raise watch
 * events themselves (memory.c, mdns.c; watch.c).
 *
 * The list is guarded by the registry's own mutex (mu, borrowed), so a
 * registry can test n and change its own state under one lock. Callbacks
 * never run with mu held: events are collected under the lock into an
 * evlist and handed to micro__watchers_dispatch after it is released.
 */
typedef struct micro__watcher micro__watcher;

typedef struct micro__watchers {
    pthread_mutex_t *mu;  /* the registry's; guards everything below */
    pthread_cond_t idle;  /* a removed watcher's last callback returned */
    const char *comp;     /* the registry's log component */
    micro__watcher **w;
    size_t n;             /* read it with mu held */
    uint64_t next_token;
} micro__watchers;

typedef struct micro__event {
    micro_registry_action action;
    micro_registry_service svc;
} micro__event;

typedef struct micro__evlist {
    micro__event *ev;
    size_t n;
} micro__evlist;

/* 0, or MICRO_ENOMEM when the condvar cannot be made. comp is borrowed
 * for ws's lifetime and names the registry in logs. */
int micro__watchers_init(
    micro__watchers *ws, pthread_mutex_t *mu, const char *comp);
/* Frees every watcher; none may be running. Does not touch mu. */
void micro__watchers_fini(micro__watchers *ws);
/* Takes mu itself. 0 and *token set, or MICRO_ENOMEM. */
int micro__watchers_add(micro__watchers *ws, micro_registry_watch_fn fn,
    void *arg, uint64_t *token);
/* Called with mu held; may release it while it waits. After this returns
 * the callback will not start again. Called from outside every watch
 * callback it also waits until no callback of the watcher is running;
 * called from inside any watch callback (of any registry, on this
 * thread) it never waits: the callbacks running then finish on their
 * own. An unknown token is ignored. */
void micro__watchers_remove(micro__watchers *ws, uint64_t token);
/* Calls every watcher for every event of l, in order, then empties l.
 * mu must not be held. Returns the number of events no watcher saw
 * because the watcher snapshot could not be allocated (the caller logs
 * them, or not, as it always has). */
size_t micro__watchers_dispatch(micro__watchers *ws, micro__evlist *l);
/* micro__watchers_dispatch, logging the events dropped under ws->comp. */
void micro__watchers_deliver(micro__watchers *ws, micro__evlist *l);

/* Queue an event carrying hdr's header and the n nodes at nodes; a NULL
 * l does nothing. Events are best effort: out of memory drops one and
 * logs it under comp. */
void micro__evlist_push(micro__evlist *l, const char *comp,
    micro_registry_action action, const micro_registry_service *hdr,
    const micro_node *nodes, size_t n);
/* Frees every event of l and l's array; l is left empty. */
void micro__evlist_clear(micro__evlist *l);

/* For fuzz/fuzz_etcd.c (etcd.c): an etcd registry without endpoints takes
 * data as the lines of a watch stream, then as a range answer (merged for
 * get and list, and made the watch snapshot), raising events to a counting
 * watcher. 0, or MICRO_ENOMEM. */
int micro__etcd_fuzz(const uint8_t *data, size_t size);

/* For fuzz/fuzz_consul.c (consul.c): data as a /v1/health/service answer
 * (merged for get, twice made a watch snapshot with the differences as
 * events), as a catalog answer, and its strings as tags. 0, or
 * MICRO_ENOMEM. */
int micro__consul_fuzz(const uint8_t *data, size_t size);

#endif
