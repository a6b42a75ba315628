/* The body of the codec targets: one input through a codec's two read
 * paths (server: read_request; client: read_response). */
#ifndef CMICRO_CODEC_FUZZ_H
#define CMICRO_CODEC_FUZZ_H

#include "fuzz.h"

#include <stdlib.h>

#include "cmicro/micro.h"

static inline void
fuzz_codec_reads(const micro_codec_ops *ops, const uint8_t *data, size_t size)
{
    micro_codec_info info = { 0 };
    micro_buf payload = { 0 };
    int rc = ops->read_request(data, size, &info, &payload);
    if (rc != 0 && rc != MICRO_ECODEC && rc != MICRO_ENOMEM) {
        abort(); /* the contract admits no other error */
    }
    micro_codec_info_clear(&info);
    micro_buf_clear(&payload);
    rc = ops->read_response(data, size, &info, &payload);
    if (rc != 0 && rc != MICRO_ECODEC && rc != MICRO_ENOMEM) {
        abort();
    }
    micro_codec_info_clear(&info);
    micro_buf_clear(&payload);
}

#endif
