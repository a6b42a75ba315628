/* cmicro publish / subscribe (pubsub.c). */
#ifndef CMICRO_CLI_PUBSUB_H
#define CMICRO_CLI_PUBSUB_H

#include <cmicro/micro.h>

int cli_publish(micro_service *svc, const char *topic, const char *json,
    const char *content_type, const micro_header_kv *md, size_t n_md);
int cli_subscribe(micro_service *svc, const char *topic, const char *queue,
    long count);
/* Print the registry's watch events for service (NULL: all), one JSON
 * line each, until a signal or count events. */
int cli_watch(micro_service *svc, const char *service, long count);

#endif
