/*
 * application/grpc, application/grpc+proto, application/grpc+json (wire
 * spec §3.7, Go Micro codec/grpc): one gRPC length-prefixed message,
 *   flag (1 byte, 0 = uncompressed) | length (4 bytes, big-endian) | data
 * The payload inside is protobuf for grpc and grpc+proto and JSON for
 * grpc+json; the framing is the same, so one codec serves all three. As on
 * the Go side, an empty message is an empty body (no frame at all), the
 * first frame is the message, and lengths above 4 MiB are refused.
 *
 * Go Micro's codec also writes HTTP/2 pseudo-headers (":path", ...) into
 * the transport header map; the mucp server routes on Micro-Endpoint and
 * does not need them, so this codec, which sees bodies only, omits them.
 */
#include "core/internal.h"

static int
grpc_read(const void *wire, size_t len, micro_codec_info *info,
    micro_buf *payload)
{
    (void) info;
    if (payload == NULL || (wire == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    if (len == 0) {
        return 0;
    }
    const uint8_t *p = wire;
    if (len < 5) {
        return MICRO_ECODEC; /* truncated frame header */
    }
    if (p[0] != 0) {
        return MICRO_ECODEC; /* compressed (1) or an invalid flag */
    }
    uint32_t n = ((uint32_t) p[1] << 24) | ((uint32_t) p[2] << 16) |
        ((uint32_t) p[3] << 8) | p[4];
    if (n > MICRO_GRPC_MAX_MESSAGE || n > len - 5) {
        return MICRO_ECODEC; /* oversized or truncated message */
    }
    return n > 0 ? micro_buf_append(payload, p + 5, n) : 0;
}

static int
grpc_frame(const void *payload, size_t len, micro_buf *wire)
{
    if (wire == NULL || (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    if (len == 0) {
        return 0;
    }
    if (len > UINT32_MAX) {
        return MICRO_EMSGSIZE;
    }
    uint8_t hdr[5] = {0, (uint8_t) (len >> 24), (uint8_t) (len >> 16),
        (uint8_t) (len >> 8), (uint8_t) len};
    int rc = micro_buf_reserve(wire, len + 5);
    if (rc == 0) {
        rc = micro_buf_append(wire, hdr, 5);
    }
    return rc == 0 ? micro_buf_append(wire, payload, len) : rc;
}

static int
grpc_write_response(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    if (info != NULL && info->error != NULL) {
        return wire != NULL ? 0 : MICRO_EINVAL; /* error in Micro-Error */
    }
    return grpc_frame(payload, len, wire);
}

static int
grpc_write_request(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    (void) info;
    return grpc_frame(payload, len, wire);
}

const micro_codec_ops micro_codec_grpc_ops = {
    .abi = MICRO_CODEC_ABI,
    .name = "grpc",
    .read_request = grpc_read,
    .write_response = grpc_write_response,
    .write_request = grpc_write_request,
    .read_response = grpc_read,
};
