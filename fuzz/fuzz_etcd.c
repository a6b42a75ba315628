/* libFuzzer target: what etcd's v3 JSON gateway sends the etcd registry
 * (src/registry/etcd.c): each line as a line of a watch stream (events,
 * created/canceled/compaction answers, in-band errors), then the whole
 * input as a range answer (merged for get and list, and made the watch
 * snapshot with the differences as events). */
#include "fuzz.h"

#include <stdlib.h>

#include "core/internal.h"
#include "registry/registry_internal.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc = micro__etcd_fuzz(data, size);
    if (rc != 0 && rc != MICRO_ENOMEM) {
        abort();
    }
    return 0;
}
