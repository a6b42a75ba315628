/* libFuzzer target: registry records in Go's JSON
 * (micro_registry_service_from_json), and re-encoding what decoded. */
#include "fuzz.h"

#include <stdlib.h>

#include "cmicro/micro.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    micro_registry_service s;
    int rc = micro_registry_service_from_json((const char *) data, size, &s);
    if (rc == 0) {
        char *json = NULL;
        if (micro_registry_service_to_json(&s, &json) == 0) {
            free(json);
        }
    } else if (rc != MICRO_ECODEC && rc != MICRO_ENOMEM) {
        abort();
    }
    micro_registry_service_clear(&s);
    return 0;
}
