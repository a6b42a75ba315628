/*
 * Helpers shared by the registries that talk to a server over HTTP (etcd.c,
 * consul.c): the address list, answers collected with a cap, waits on a
 * monotonic condvar, an option or its environment variable, and the
 * rate-limited accounting of outages and refused input. Not installed.
 */
#ifndef CMICRO_REGISTRY_NETREG_H
#define CMICRO_REGISTRY_NETREG_H

#include "cmicro/registry.h"
#include "http/client.h"
#include "registry/registry_internal.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* The TLS options of a network registry (io/tls.h reads them with the
 * prefix "registry"); server names it in the help. */
#define MICRO__NETREG_TLS_OPTIONS(server)                                    \
    {"registry_secure", MICRO_OPT_BOOL, "false",                             \
        "TLS to " server " (also when an address is https://); verified "   \
        "only with registry_tls_ca_file, as Go Micro's Secure"},             \
    {"registry_tls_cert_file", MICRO_OPT_STR, NULL,                          \
        "PEM client certificate, for " server "'s client-certificate auth"}, \
    {"registry_tls_key_file", MICRO_OPT_STR, NULL,                           \
        "PEM private key of registry_tls_cert_file"},                        \
    {"registry_tls_ca_file", MICRO_OPT_STR, NULL,                            \
        "PEM CAs that verify " server "'s certificate"},                     \
    {"registry_tls_server_name", MICRO_OPT_STR, NULL,                        \
        "the name " server "'s certificate must carry (default: the host)"}

/* How often an ongoing outage or refused input is logged again. */
#define MICRO__NETREG_LOG_EVERY_MS 10000

/* "a, http://b:1,[::1]" -> "a:<port>", "b:1", "[::1]:<port>" (port is
 * the default, as text). https://: *tls set true (one configuration for
 * every address then), or, with tls NULL (the server's registry has no TLS
 * here), refused: logged under comp, MICRO_EINVAL; an empty list too.
 * *eps: n malloc'd strings in a malloc'd array (micro__free each), also on
 * failure (what was parsed). */
int micro__netreg_addrs(const char *list, const char *port, const char *comp,
    const char *server, char ***eps, size_t *n, bool *tls);

/* An on_body callback appending to the micro_buf arg, at most 256 MiB
 * (MICRO_EMSGSIZE beyond). */
int micro__netreg_collect(void *arg, micro__http_call *call, const char *p,
    size_t n);

/* Wait on cv (made with CLOCK_MONOTONIC) for at most ms. */
void micro__netreg_timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu,
    int64_t ms);

/* The option's value, else the environment variable's; NULL when both
 * are unset or empty. */
const char *micro__netreg_opt_or_env(const micro_options *opts,
    const char *opt, const char *env);

/* Outages and refused input, counted; each function takes mu. */
typedef struct micro__netreg_log {
    int64_t last_log;
    uint64_t n_fail;
    bool down;
    uint64_t n_bad;
    int64_t last_bad_log;
} micro__netreg_log;

/* A request got no answer: true when it is to be logged (an outage
 * starts, or MICRO__NETREG_LOG_EVERY_MS passed); *n the failures so far. */
bool micro__netreg_fail(micro__netreg_log *l, pthread_mutex_t *mu,
    uint64_t *n);
/* An answer came: true when an outage just ended; *n its failures. */
bool micro__netreg_ok(micro__netreg_log *l, pthread_mutex_t *mu,
    uint64_t *n);
/* Input refused: true when to be logged (rate-limited); *n so far. */
bool micro__netreg_bad(micro__netreg_log *l, pthread_mutex_t *mu,
    uint64_t *n);

/*
 * The watch thread of a registry, started by the first watch. watch()
 * waits until the thread says it listed what there is (or failed to), so
 * that a change made once watch returned is an event. The registry's mu
 * guards on and listed.
 */
typedef struct micro__netreg_wthread {
    pthread_t th;
    bool on;
    bool listed;
    pthread_cond_t ready;
} micro__netreg_wthread;

/* Add a watcher to ws; start main(st) on the first; wait for its list. */
int micro__netreg_watch(micro__watchers *ws, pthread_mutex_t *mu,
    micro__netreg_wthread *wt, void *(*main)(void *), void *st,
    micro_registry_watch_fn fn, void *arg, uint64_t *token);
/* The watch thread listed (or failed to): watch() may return. */
void micro__netreg_listed(micro__netreg_wthread *wt, pthread_mutex_t *mu);
/* Remove a watcher (mu taken here). */
void micro__netreg_unwatch(micro__watchers *ws, pthread_mutex_t *mu,
    uint64_t token);

/* The fuzz targets' watcher: it folds what it is given into *(size_t *)
 * arg, so every field of an event is read. */
void micro__netreg_fuzz_event(void *arg, micro_registry_action a,
    const micro_registry_service *s);

#endif
