/* libFuzzer target: the HTTP server's request path, bytes through
 * http_parser with the transport's own callbacks and its default limits
 * (1 MiB of header, 4 MiB of body), as one read of a new connection. */
#include "fuzz.h"

#include <stdlib.h>

#include "transport/http_internal.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0;
    int rc = micro__http_parse_requests(data, size, 1u << 20, 4u << 20, &n);
    if (rc != 0 && rc != MICRO_EPROTO && rc != MICRO_EMSGSIZE &&
        rc != MICRO_ENOMEM) {
        abort();
    }
    return 0;
}
