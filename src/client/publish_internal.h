/* The client's publish state (publish.c), kept by client.c. Not installed. */
#ifndef CMICRO_PUBLISH_INTERNAL_H
#define CMICRO_PUBLISH_INTERNAL_H

#include "core/internal.h"

struct micro__publish;
/* The slot in the client that holds its publish state (client.c). */
struct micro__publish **micro__client_pub(micro_client *c);
/* Frees the publish state; NULL is a no-op (publish.c). */
void micro__publish_free(struct micro__publish *p);

#endif
