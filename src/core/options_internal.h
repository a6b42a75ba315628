/* What the front ends and the service use of the option catalogue
 * (src/core/options.c). Not installed. */
#ifndef CMICRO_OPTIONS_INTERNAL_H
#define CMICRO_OPTIONS_INTERNAL_H

#include "cmicro/options.h"

/*
 * A copy of o (NULL: all defaults) for the plugin (kind, name) whose ops
 * table declares decls: options of that kind it leaves unset read the
 * defaults decls declares. A front end passes this to the plugin's init.
 * A declaration without a row in src/plugins.c (a user's ops table) is
 * not settable by name but reads its declared default.
 */
int micro__options_scoped(const micro_options *o, const char *kind,
    const char *name, const micro_option_desc *decls, micro_options **out);

/*
 * Warn about plugin options that are set (by setter, env or flag) but not
 * declared by the plugin o chooses for their kind: --registry_address
 * with the mdns registry, --broker_address with the memory broker.
 */
void micro__options_check_chosen(const micro_options *o);

#endif
