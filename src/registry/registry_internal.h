/* Registry internals shared by src/registry and src/plugins.c. Not installed. */
#ifndef CMICRO_REGISTRY_INTERNAL_H
#define CMICRO_REGISTRY_INTERNAL_H

#include "cmicro/registry.h"

/*
 * The name -> ops table (src/plugins.c). 0 and *ops set for a built
 * plugin; MICRO_ENOTBUILT for a known name compiled out (etcd,
 * consul until they land); MICRO_ENOENT for an unknown name.
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



#endif
