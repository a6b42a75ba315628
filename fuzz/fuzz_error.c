/* libFuzzer target: Go Micro error JSON (micro_error_parse), and the
 * re-encoding of whatever it parsed. */
#include "fuzz.h"

#include <stdlib.h>

#include "cmicro/micro.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    micro_error *e = micro_error_parse((const char *) data, size);
    if (e == NULL) {
        return 0; /* out of memory */
    }
    free(micro_error_to_json(e));
    micro_error_free(e);
    return 0;
}
