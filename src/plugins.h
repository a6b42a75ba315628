/* The name -> implementation tables behind every *_new_by_name, and the
 * plugins' option declarations the core learns from them. */
#ifndef CMICRO_PLUGINS_H
#define CMICRO_PLUGINS_H

#include <stdbool.h>

#include "cmicro/micro.h"

int micro__transport_ops_by_name(
    const char *name, const micro_transport_ops **ops);
int micro__registry_ops_by_name(
    const char *name, const micro_registry_ops **ops);

int micro__client_ops_by_name(const char *name, const micro_client_ops **ops);

int micro__server_ops_by_name(const char *name, const micro_server_ops **ops);

int micro__broker_ops_by_name(const char *name, const micro_broker_ops **ops);

/* One row of src/plugins.c as the option catalogue sees it. */
typedef struct micro__plugin_info {
    const char *kind;    /* "registry", "broker", ...: also the option that
                            chooses the plugin */
    const char *name;    /* "mdns" */
    const micro_option_desc *options; /* declared options, or NULL */
    const char *module;  /* a shared object loaded when chosen, or NULL */
    bool built;          /* an ops table is linked in */
} micro__plugin_info;

/* The i-th row (kinds in help order: registry, broker, transport,
 * selector, server, client; rows in their table's order); false past the
 * last. Loads nothing: a module's options are declared in its row. */
bool micro__plugin_at(size_t i, micro__plugin_info *out);

/* dlopen file (beside libcmicro first) once and return its symbol, or
 * NULL (logged with kind and name). Built when a module is. */
const void *micro__module_load(const char *file, const char *symbol,
    const char *kind, const char *name);

/* The options an ops table declares, read only when its abi has the
 * member (so an older table is never read past its end). */
static inline const micro_option_desc *
micro__registry_ops_options(const micro_registry_ops *ops)
{
    return ops != NULL && ops->abi >= 2 ? ops->options : NULL;
}
static inline const micro_option_desc *
micro__selector_ops_options(const micro_selector_ops *ops)
{
    return ops != NULL && ops->abi >= 3 ? ops->options : NULL;
}
static inline const micro_option_desc *
micro__transport_ops_options(const micro_transport_ops *ops)
{
    return ops != NULL && ops->abi >= 4 ? ops->options : NULL;
}
static inline const micro_option_desc *
micro__broker_ops_options(const micro_broker_ops *ops)
{
    return ops != NULL && ops->abi >= 2 ? ops->options : NULL;
}
static inline const micro_option_desc *
micro__server_ops_options(const micro_server_ops *ops)
{
    return ops != NULL && ops->abi >= 2 ? ops->options : NULL;
}
static inline const micro_option_desc *
micro__client_ops_options(const micro_client_ops *ops)
{
    return ops != NULL && ops->abi >= 3 ? ops->options : NULL;
}

#endif
