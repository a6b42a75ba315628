/* Test support for the registry tests against servers (etcd_test.c,
 * consul_test.c): a sample record, node counts by lookup, and a watcher
 * that records events for the test to wait on. */
#ifndef CMICRO_TEST_REG_H
#define CMICRO_TEST_REG_H

#include <pthread.h>
#include <stddef.h>

#include <cmicro/micro.h>

void t_sleep_ms(int ms);

/* name, version v, service metadata owner=test, an endpoint
 * Greeter.Hello (metadata stream=false), n nodes <id_prefix>0.. at
 * 10.0.x.y:8000+i with metadata n=v. Free with
 * micro_registry_service_clear. */
void t_svc_make(micro_registry_service *s, const char *name, const char *v,
    size_t n, const char *id_prefix);

/* The nodes of every record get_service gives for name (0 on error,
 * *rc_out the code when not NULL). */
size_t t_count_nodes(micro_registry *r, const char *name, int *rc_out);
/* Poll until name has want nodes; false at the deadline. */
bool t_wait_nodes(micro_registry *r, const char *name, size_t want, int ms);

typedef struct t_rec_ev {
    micro_registry_action a;
    char name[64];
    char node[64];
    size_t n_nodes;
} t_rec_ev;

#define T_REC_MAX 512

/* Events recorded in order (the first T_REC_MAX). */
typedef struct t_recorder {
    pthread_mutex_t mu;
    t_rec_ev ev[T_REC_MAX];
    size_t n;
} t_recorder;

/* The watch callback; arg is a t_recorder. */
void t_on_event(void *arg, micro_registry_action a,
    const micro_registry_service *s);
/* Wait up to ms for an event a on name (and node, unless NULL): its count
 * of nodes, or -1. */
long t_wait_event(t_recorder *rc, micro_registry_action a, const char *name,
    const char *node, int ms);
size_t t_count_events(t_recorder *rc, micro_registry_action a,
    const char *name);
void t_rec_reset(t_recorder *rc);
/* Empty rc and watch w into it; w returned. Unwatch and free w. */
micro_registry *t_rec_watch(t_recorder *rc, micro_registry *w,
    uint64_t *tok);
void t_rec_unwatch(micro_registry *w, uint64_t tok);

/*
 * The rest of a register/get/list/deregister round, once s (name, version
 * "1.0", two nodes: t_svc_make) is registered in r with a TTL of 10 s and
 * checked: a second version is a second record, a record without nodes
 * is refused, list gives the names sorted (base: the names the server
 * lists of its own, sorted, before name and "other"), re-registering
 * changes nothing, deregistration removes each node, an unknown name is
 * MICRO_ENOSERVICE, and 100 register + deregister cycles succeed (their
 * rate printed). s is cleared.
 */
/* A registry by name with a 3 s request timeout and "name=value" options
 * (t_opts_flags). Asserts. */
micro_registry *t_reg_new_kv(const char *reg, const char *const *kv);
/* One service "name" whose one node has id "name" (ids are per service in
 * etcd and per agent in Consul: unique either way); borrowed strings. */
void t_svc_one(micro_registry_service *s, micro_node *nd, const char *name);
/* Register t_svc_one(name) with a 60 s TTL, retrying for up to 60 s while
 * the server elects itself; certificate and TLS failures are final.
 * 0 or the last error. */
int t_reg_register_one(micro_registry *r, const char *name);

void t_reg_crud(micro_registry *r, micro_registry_service *s,
    const char *const *base, size_t n_base);

/* Failover: a registry (made by mk) on an address that refuses
 * connections fails lookups with MICRO_ECONNREFUSED; one whose list
 * starts with that address and goes on with good serves them. */
void t_reg_unreachable(micro_registry *(*mk)(const char *addr),
    const char *good);

/* A child process's main for TTL tests: register the service "doomed"
 * (node doomed-1) in registry name at addr with ttl_ms, print
 * "registered", and wait to be killed. 1 when it cannot. */
int t_reg_child(const char *name, const char *addr, int64_t ttl_ms);

#endif
