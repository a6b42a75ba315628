/* The name -> implementation tables behind every *_new_by_name. */
#ifndef CMICRO_PLUGINS_H
#define CMICRO_PLUGINS_H

#include "cmicro/micro.h"

int micro__transport_ops_by_name(
    const char *name, const micro_transport_ops **ops);
int micro__registry_ops_by_name(
    const char *name, const micro_registry_ops **ops);

int micro__client_ops_by_name(const char *name, const micro_client_ops **ops);

int micro__server_ops_by_name(const char *name, const micro_server_ops **ops);

int micro__broker_ops_by_name(const char *name, const micro_broker_ops **ops);

#endif
