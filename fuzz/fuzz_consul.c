/* libFuzzer target: what a Consul agent sends the Consul registry
 * (src/registry/consul.c): the input as a /v1/health/service answer
 * (merged by version for get, made the watch snapshot twice with the
 * differences as events), as a /v1/catalog/services answer, and every
 * string of it as a tag (the t-/e-/v- hex(zlib(...)) and plain forms). */
#include "fuzz.h"

#include <stdlib.h>

#include "core/internal.h"
#include "registry/registry_internal.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc = micro__consul_fuzz(data, size);
    if (rc != 0 && rc != MICRO_ENOMEM) {
        abort();
    }
    return 0;
}
