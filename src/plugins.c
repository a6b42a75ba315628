/*
 * Every plugin name has a row here, built or not (curl's rule): asking for
 * one that is compiled out gives MICRO_ENOTBUILT with a message naming what
 * would provide it, rather than "unknown".
 */
#include "core/internal.h"
#include "plugins.h"
#include "registry/registry_internal.h"
#include "selector/selector_internal.h"

typedef struct row {
    const char *name;
    const void *ops;   /* NULL: not built */
    const char *where; /* what provides it when not built */
} row;

static const row transports[] = {
    {"http", &micro_transport_http_ops, NULL},
    {"grpc", NULL, "the gRPC transport (not built in this version)"},
    {"memory", NULL, "the memory transport (not built in this version)"},
    {"nats", NULL, "the NATS transport (not built in this version)"},
};

static const row registries[] = {
    {"memory", &micro_registry_memory_ops, NULL},
    {"mdns", &micro_registry_mdns_ops, NULL},
    {"etcd", NULL, "the etcd registry (not built in this version)"},
    {"consul", NULL, "the Consul registry (not built in this version)"},
};

static const row selectors[] = {
    {"random", &micro_selector_random_ops, NULL},
    {"roundrobin", &micro_selector_roundrobin_ops, NULL},
    {"leastconn", &micro_selector_leastconn_ops, NULL},
    {"p2c", &micro_selector_p2c_ops, NULL},
};

static const row clients[] = {
    {"mucp", &micro_client_mucp_ops, NULL},
    {"grpc", NULL, "the gRPC client (not built in this version)"},
};

static const row servers[] = {
    {"mucp", &micro_server_mucp_ops, NULL},
    {"grpc", NULL, "the gRPC server (not built in this version)"},
};

static const row brokers[] = {
    {"http", &micro_broker_http_ops, NULL},
    {"memory", &micro_broker_memory_ops, NULL},
#ifdef MICRO_HAVE_NATS
    {"nats", &micro_broker_nats_ops, NULL},
#else
    {"nats", NULL, "the NATS broker (configure with -DMICRO_WITH_NATS=ON and "
                   "libnats-dev)"},
#endif
    {"rabbitmq", NULL, "the RabbitMQ broker (not built in this version)"},
    {"redis", NULL, "the Redis broker (not built in this version)"},
    {"mqtt", NULL, "the MQTT broker (not built in this version)"},
};

static int
lookup(const row *rows, size_t n, const char *kind, const char *name,
    const void **ops)
{
    *ops = NULL;
    if (name == NULL || name[0] == '\0') {
        return MICRO_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].name, name) == 0) {
            if (rows[i].ops == NULL) {
                micro_log(MICRO_LOG_ERR, "plugins", "%s %s: %s", kind, name,
                    rows[i].where);
                return MICRO_ENOTBUILT;
            }
            *ops = rows[i].ops;
            return 0;
        }
    }
    micro_log(MICRO_LOG_ERR, "plugins", "unknown %s \"%s\"", kind, name);
    return MICRO_ENOENT;
}

int
micro__transport_ops_by_name(const char *name, const micro_transport_ops **ops)
{
    const void *p = NULL;
    int rc = lookup(transports, MICRO_ARRAY_LEN(transports), "transport",
        name, &p);
    *ops = p;
    return rc;
}

int
micro__registry_ops_by_name(const char *name, const micro_registry_ops **ops)
{
    const void *p = NULL;
    int rc = lookup(registries, MICRO_ARRAY_LEN(registries), "registry", name,
        &p);
    *ops = p;
    return rc;
}

int
micro__selector_ops_by_name(const char *name, const micro_selector_ops **ops)
{
    const void *p = NULL;
    int rc = lookup(selectors, MICRO_ARRAY_LEN(selectors), "selector", name,
        &p);
    *ops = p;
    return rc;
}

int
micro__client_ops_by_name(const char *name, const micro_client_ops **ops)
{
    const void *p = NULL;
    int rc = lookup(clients, MICRO_ARRAY_LEN(clients), "client", name, &p);
    *ops = p;
    return rc;
}

int
micro__server_ops_by_name(const char *name, const micro_server_ops **ops)
{
    const void *p = NULL;
    int rc = lookup(servers, MICRO_ARRAY_LEN(servers), "server", name, &p);
    *ops = p;
    return rc;
}

int
micro__broker_ops_by_name(const char *name, const micro_broker_ops **ops)
{
    const void *p = NULL;
    int rc = lookup(brokers, MICRO_ARRAY_LEN(brokers), "broker", name, &p);
    *ops = p;
    return rc;
}
