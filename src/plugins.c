/*
 * Every plugin name has a row here, built or not (curl's rule): asking for
 * one that is compiled out gives MICRO_ENOTBUILT with a message naming what
 * would provide it, rather than "unknown".
 *
 * The rows are also where the core learns the plugins' options (see
 * micro__plugin_at): a built row's from its ops table, a module's or a
 * name not built from the row itself, so that their Go Micro flags parse
 * and --help lists them without loading anything.
 */
#include "core/internal.h"

#include <dlfcn.h>
#include <pthread.h>
#include "plugins.h"
#include "registry/registry_internal.h"
#include "selector/selector_internal.h"
#if !defined(MICRO_HAVE_NATS)
#include "broker/nats_options.h"
#endif

typedef struct row {
    const char *name;
    const void *ops;   /* NULL: not built in (see module) */
    const char *where; /* what provides it when not built */
    const char *module; /* a shared object to load on first use, or NULL */
    const char *symbol; /* the ops table's name in it */
    /* Without an ops table (a module, a name not built): the options the
     * plugin declares, known without loading it. */
    const micro_option_desc *options;
} row;

/* Go Micro's flags of plugins not built in this version: they parse (and
 * --help lists them), and choosing the plugin gives MICRO_ENOTBUILT. */
static const micro_option_desc nats_transport_options[] = {
    {"transport_address", MICRO_OPT_STR, "nats://127.0.0.1:4222",
        "NATS servers, comma-separated URLs"},
    MICRO_OPTION_END,
};

static const row transports[] = {
    {"http", &micro_transport_http_ops, NULL, NULL, NULL, NULL},
    {"grpc", NULL, "the gRPC transport (not built in this version)",
        NULL, NULL, NULL},
    {"memory", NULL, "the memory transport (not built in this version)",
        NULL, NULL, NULL},
    {"nats", NULL, "the NATS transport (not built in this version)",
        NULL, NULL, nats_transport_options},
};

static const row registries[] = {
    {"memory", &micro_registry_memory_ops, NULL, NULL, NULL, NULL},
    {"mdns", &micro_registry_mdns_ops, NULL, NULL, NULL, NULL},
    {"etcd", &micro_registry_etcd_ops, NULL, NULL, NULL, NULL},
    {"consul", &micro_registry_consul_ops, NULL, NULL, NULL, NULL},
};

static const row selectors[] = {
    {"random", &micro_selector_random_ops, NULL, NULL, NULL, NULL},
    {"roundrobin", &micro_selector_roundrobin_ops, NULL, NULL, NULL, NULL},
    {"leastconn", &micro_selector_leastconn_ops, NULL, NULL, NULL, NULL},
    {"p2c", &micro_selector_p2c_ops, NULL, NULL, NULL, NULL},
};

static const row clients[] = {
    {"mucp", &micro_client_mucp_ops, NULL, NULL, NULL, NULL},
    {"grpc", &micro_client_grpc_ops, NULL, NULL, NULL, NULL},
};

static const row servers[] = {
    {"mucp", &micro_server_mucp_ops, NULL, NULL, NULL, NULL},
    {"grpc", &micro_server_grpc_ops, NULL, NULL, NULL, NULL},
};

static const row brokers[] = {
    {"http", &micro_broker_http_ops, NULL, NULL, NULL, NULL},
    {"memory", &micro_broker_memory_ops, NULL, NULL, NULL, NULL},
#if defined(MICRO_HAVE_NATS)
    {"nats", &micro_broker_nats_ops, NULL, NULL, NULL, NULL},
#elif defined(MICRO_NATS_MODULE)
    /* libnats (and the OpenSSL it links) is loaded only by services that
     * choose this broker. */
    {"nats", NULL, "the NATS broker module", MICRO_NATS_MODULE,
        "micro_broker_nats_ops", micro__nats_options},
#else
    {"nats", NULL, "the NATS broker (configure with -DMICRO_WITH_NATS=ON and "
                   "libnats-dev)", NULL, NULL, micro__nats_options},
#endif
    {"rabbitmq", NULL, "the RabbitMQ broker (not built in this version)",
        NULL, NULL, NULL},
    {"redis", NULL, "the Redis broker (not built in this version)", NULL,
        NULL, NULL},
    {"mqtt", NULL, "the MQTT broker (not built in this version)", NULL,
        NULL, NULL},
};

#if defined(MICRO_NATS_MODULE) || defined(MICRO_TLS_MODULE)
/*
 * dlopen a module: first from the directory libcmicro itself was loaded
 * from (a build tree, or the install's libdir), then by the dynamic
 * linker's search (LD_LIBRARY_PATH, ld.so.cache). Modules stay loaded:
 * their ops tables are referenced for the process's life.
 */
static pthread_mutex_t module_mu = PTHREAD_MUTEX_INITIALIZER;

const void *
micro__module_load(const char *file, const char *symbol, const char *kind,
    const char *name)
{
    static void *handles[4];
    static const char *files[4];
    void *h = NULL;
    const void *ops = NULL;

    pthread_mutex_lock(&module_mu);
    for (size_t i = 0; i < MICRO_ARRAY_LEN(files); i++) {
        if (files[i] != NULL && strcmp(files[i], file) == 0) {
            h = handles[i];
        }
    }
    if (h == NULL) {
        Dl_info self;
        char path[4096];
        if (dladdr((const void *)&module_mu, &self) != 0
            && self.dli_fname != NULL) {
            const char *slash = strrchr(self.dli_fname, '/');
            if (slash != NULL
                && (size_t)snprintf(path, sizeof path, "%.*s/%s",
                       (int)(slash - self.dli_fname), self.dli_fname, file)
                    < sizeof path) {
                h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            }
        }
        if (h == NULL) {
            h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
        }
        if (h == NULL) {
            micro_log(MICRO_LOG_ERR, "plugins", "%s %s: cannot load %s: %s",
                kind, name, file, dlerror());
        } else {
            for (size_t i = 0; i < MICRO_ARRAY_LEN(files); i++) {
                if (files[i] == NULL) {
                    files[i] = file;
                    handles[i] = h;
                    break;
                }
            }
        }
    }
    if (h != NULL) {
        ops = dlsym(h, symbol);
        if (ops == NULL) {
            micro_log(MICRO_LOG_ERR, "plugins", "%s %s: %s has no %s",
                kind, name, file, symbol);
        }
    }
    pthread_mutex_unlock(&module_mu);
    return ops;
}
#endif

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
#ifdef MICRO_NATS_MODULE
            if (rows[i].ops == NULL && rows[i].module != NULL) {
                *ops = micro__module_load(rows[i].module, rows[i].symbol, kind,
                    name);
                return *ops != NULL ? 0 : MICRO_ENOTBUILT;
            }
#endif
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

/* ------------------------------------------------------------------ */
/* The rows as the option catalogue sees them.                          */

static const micro_option_desc *
registry_options(const void *ops)
{
    return micro__registry_ops_options(ops);
}

static const micro_option_desc *
broker_options(const void *ops)
{
    return micro__broker_ops_options(ops);
}

static const micro_option_desc *
transport_options(const void *ops)
{
    return micro__transport_ops_options(ops);
}

static const micro_option_desc *
selector_options(const void *ops)
{
    return micro__selector_ops_options(ops);
}

static const micro_option_desc *
server_options(const void *ops)
{
    return micro__server_ops_options(ops);
}

static const micro_option_desc *
client_options(const void *ops)
{
    return micro__client_ops_options(ops);
}

static const struct kind {
    const char *kind;
    const row *rows;
    size_t n;
    const micro_option_desc *(*options)(const void *ops);
} kinds[] = {
    {"registry", registries, MICRO_ARRAY_LEN(registries), registry_options},
    {"broker", brokers, MICRO_ARRAY_LEN(brokers), broker_options},
    {"transport", transports, MICRO_ARRAY_LEN(transports),
        transport_options},
    {"selector", selectors, MICRO_ARRAY_LEN(selectors), selector_options},
    {"server", servers, MICRO_ARRAY_LEN(servers), server_options},
    {"client", clients, MICRO_ARRAY_LEN(clients), client_options},
};

bool
micro__plugin_at(size_t i, micro__plugin_info *out)
{
    for (size_t k = 0; k < MICRO_ARRAY_LEN(kinds); k++) {
        if (i >= kinds[k].n) {
            i -= kinds[k].n;
            continue;
        }
        const row *r = &kinds[k].rows[i];
        out->kind = kinds[k].kind;
        out->name = r->name;
        out->options = r->ops != NULL ? kinds[k].options(r->ops) : r->options;
        out->module = r->ops == NULL ? r->module : NULL;
        out->built = r->ops != NULL;
        return true;
    }
    return false;
}
