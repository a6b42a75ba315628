/* application/octet-stream: the body is the payload, unframed. */
#include "core/internal.h"

static int
bytes_read(const void *wire, size_t len, micro_codec_info *info,
    micro_buf *payload)
{
    (void) info;
    if (payload == NULL || (wire == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    return micro_buf_append(payload, wire, len);
}

static int
bytes_write_response(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    if (wire == NULL || (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    if (info != NULL && info->error != NULL) {
        return 0; /* the error travels in Micro-Error; the body is empty */
    }
    return micro_buf_append(wire, payload, len);
}

static int
bytes_write_request(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    (void) info;
    if (wire == NULL || (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    return micro_buf_append(wire, payload, len);
}

const micro_codec_ops micro_codec_bytes_ops = {
    .abi = MICRO_CODEC_ABI,
    .name = "bytes",
    .read_request = bytes_read,
    .write_response = bytes_write_response,
    .write_request = bytes_write_request,
    .read_response = bytes_read,
};
