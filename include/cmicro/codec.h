#ifndef CMICRO_CODEC_H
#define CMICRO_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MICRO_CODEC_ABI 1

/**
 * What a codec's envelope carries besides the payload. Strings are owned
 * by the struct (malloc'd); release with micro_codec_info_clear. A zeroed
 * struct is empty.
 *   endpoint  "Service.Method" (json-rpc "method", proto-rpc service_method)
 *   id        the request id (Micro-Id / json-rpc "id" / proto-rpc seq)
 *   error     error text of a response, or NULL on success
 */
typedef struct micro_codec_info {
    char *endpoint;
    char *id;
    char *error;
} micro_codec_info;

MICRO_API void micro_codec_info_clear(micro_codec_info *info);

/**
 * A codec turns payloads into wire bodies and back for one content type.
 * All slots are required, pure functions with no shared state: any thread.
 * Inputs are borrowed; outputs are appended to the caller's buffer or set
 * in info (which the caller clears). Errors: MICRO_ECODEC for a malformed
 * body (the caller answers 400), MICRO_ENOMEM.
 */
typedef struct micro_codec_ops {
    uint32_t abi;     /* MICRO_CODEC_ABI */
    const char *name; /* "json", "json-rpc", "bytes", ... */
    /* Server side: request wire body -> payload (+ envelope fields). */
    int (*read_request)(const void *wire, size_t len, micro_codec_info *info,
        micro_buf *payload);
    /* Server side: payload or error -> response wire body. */
    int (*write_response)(const micro_codec_info *info, const void *payload,
        size_t len, micro_buf *wire);
    /* Client side: payload -> request wire body. */
    int (*write_request)(const micro_codec_info *info, const void *payload,
        size_t len, micro_buf *wire);
    /* Client side: response wire body -> payload (+ error in envelope). */
    int (*read_response)(const void *wire, size_t len, micro_codec_info *info,
        micro_buf *payload);
} micro_codec_ops;

/** Built-in codecs. */
MICRO_API extern const micro_codec_ops micro_codec_json_ops;
MICRO_API extern const micro_codec_ops micro_codec_jsonrpc_ops;
MICRO_API extern const micro_codec_ops micro_codec_bytes_ops;
/** application/protobuf: the payload as it is (no framing). */
MICRO_API extern const micro_codec_ops micro_codec_proto_ops;
/** application/proto-rpc: Go Micro's legacy envelope in 4-byte
 *  big-endian length-prefixed "netstrings" (wire spec §3.6). */
MICRO_API extern const micro_codec_ops micro_codec_protorpc_ops;
/** application/grpc, grpc+proto, grpc+json: one gRPC frame (flag byte,
 *  4-byte big-endian length; wire spec §3.7). The payload is protobuf or
 *  JSON; see proto.h for messages. */
MICRO_API extern const micro_codec_ops micro_codec_grpc_ops;

/** Largest gRPC message the grpc codec accepts (Go Micro's 4 MiB). */
#define MICRO_GRPC_MAX_MESSAGE (4u * 1024u * 1024u)

/**
 * Find the codec for a content type. Parameters after ';' and case are
 * ignored. Looks in the table of registered codecs (built-ins first).
 * Returns NULL when no codec serves the type. Thread: any.
 */
MICRO_API const micro_codec_ops *micro_codec_lookup(const char *content_type);

/**
 * Register (or replace) the codec for a content type; the string and the
 * ops table are borrowed for the life of the process. Call before starting
 * services (not synchronised with lookups). MICRO_EINVAL on a bad abi,
 * MICRO_ENOMEM when the table is full.
 */
MICRO_API int micro_codec_register(
    const char *content_type, const micro_codec_ops *ops);

#ifdef __cplusplus
}
#endif
#endif
