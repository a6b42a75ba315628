#ifndef CMICRO_PROTO_H
#define CMICRO_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "loop.h"
#include "msg.h"
#include "server.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Protobuf messages on the wire (protobuf-c). The codecs of codec.h frame
 * bodies (application/protobuf, proto-rpc, grpc...); this header turns a
 * protobuf-c message into the payload of a content type and back:
 *
 *   application/protobuf, application/proto-rpc, application/grpc,
 *   application/grpc+proto             the protobuf binary encoding
 *   application/json, application/json-rpc, application/grpc+json
 *                                      JSON as Go Micro v4 writes it
 *
 * so a handler written against protobuf types answers JSON callers too.
 * protoc-gen-cmicro generates typed wrappers over these calls.
 *
 * The protobuf-c types are only declared here; include
 * <protobuf-c/protobuf-c.h> (generated code does) to use them.
 *
 * Memory: messages this API returns are allocated through cmicro's
 * allocator hooks (micro_init) and freed with micro_proto_free, never with
 * protobuf_c_message_free_unpacked(m, NULL) (which assumes malloc).
 * Thread: every function here is any-thread and keeps no shared state.
 */
struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;

/** Deepest message nesting accepted by the decoders (binary and JSON). */
#define MICRO_PROTO_MAX_DEPTH 100

/** How a content type carries a message. */
typedef enum micro_proto_format {
    MICRO_PROTO_FORMAT_NONE = 0, /* not a message content type */
    MICRO_PROTO_FORMAT_BINARY,   /* protobuf encoding */
    MICRO_PROTO_FORMAT_JSON      /* JSON mapping (micro_pbjson_*) */
} micro_proto_format;

/** The format of a content type (parameters and case ignored); NULL
 *  means Go Micro's server default, application/protobuf. */
MICRO_API micro_proto_format micro_proto_format_of(const char *content_type);

/**
 * Check that p[0..len) is a well-formed encoding of a message of type d:
 * valid tags, varints of at most 10 bytes, lengths inside the buffer,
 * wire types that fit the declared fields, nesting at most
 * MICRO_PROTO_MAX_DEPTH, UTF-8 in proto3 strings. Unknown fields are
 * allowed (skipped). Returns 0 or MICRO_ECODEC; a description of the first
 * problem goes into err (cap bytes, may be NULL).
 */
MICRO_API int micro_proto_validate(const struct ProtobufCMessageDescriptor *d,
    const void *p, size_t len, char *err, size_t cap);

/**
 * Decode the protobuf encoding p[0..len) (validated first, so hostile input
 * yields MICRO_ECODEC and never a crash). *out is the new message, or NULL
 * on failure. Errors: MICRO_EINVAL, MICRO_ECODEC, MICRO_ENOMEM.
 */
MICRO_API int micro_proto_unpack(const struct ProtobufCMessageDescriptor *d,
    const void *p, size_t len, struct ProtobufCMessage **out);

/** Append the protobuf encoding of m to out. */
MICRO_API int micro_proto_pack(
    const struct ProtobufCMessage *m, micro_buf *out);

/** Free a message returned by this API (recursively). NULL is a no-op. */
MICRO_API void micro_proto_free(struct ProtobufCMessage *m);

/** A new message of type d, initialised to its defaults (free with
 *  micro_proto_free). MICRO_ENOMEM. */
MICRO_API int micro_proto_new(const struct ProtobufCMessageDescriptor *d,
    struct ProtobufCMessage **out);

/* --- JSON ------------------------------------------------------------ */

/**
 * JSON flags.
 *   MICRO_PBJSON_PROTOJSON     encode as Go Micro v5 (protojson) does:
 *                              lowerCamelCase keys, 64-bit integers as
 *                              strings, enums by name. Default: Go Micro
 *                              v4 (encoding/json over protoc-gen-go
 *                              structs): proto field names, 64-bit
 *                              integers as numbers, enums as numbers.
 *   MICRO_PBJSON_IGNORE_UNKNOWN  decode: skip unknown keys (encoding/json;
 *                              grpc+json) instead of failing (jsonpb).
 *   MICRO_PBJSON_EMIT_DEFAULTS encode zero values of proto3 fields too.
 */
#define MICRO_PBJSON_PROTOJSON 0x1u
#define MICRO_PBJSON_IGNORE_UNKNOWN 0x2u
#define MICRO_PBJSON_EMIT_DEFAULTS 0x4u

/**
 * Append the JSON of m to out (compact, no trailing newline).
 *
 * Both styles omit zero proto3 fields, write bytes as standard base64,
 * maps as objects (keys sorted as Go sorts them) and set oneof members as
 * plain keys. Well-known types use their JSON forms (Timestamp as RFC 3339,
 * Duration as "1.5s", wrappers as bare values, Struct/Value/ListValue as
 * JSON, Empty as {}), because Go Micro v4's decoder (jsonpb) accepts only
 * those; FieldMask is {"paths":[...]} (v4's jsonpb reads only that) or
 * "a,b.c" with MICRO_PBJSON_PROTOJSON. NaN and infinities are the strings
 * jsonpb accepts. Strings are escaped as Go's json.Encoder does (<, >, &,
 * U+2028/9; invalid UTF-8 becomes U+FFFD).
 * Errors: MICRO_EINVAL, MICRO_ENOMEM, MICRO_ECODEC (a message deeper than
 * MICRO_PROTO_MAX_DEPTH, or a Timestamp/Duration out of range).
 */
MICRO_API int micro_pbjson_encode(
    const struct ProtobufCMessage *m, unsigned flags, micro_buf *out);

/**
 * Decode JSON text into a new message of type d, accepting what Go Micro
 * v4 (jsonpb) and v5 (protojson) accept: proto names and lowerCamelCase
 * names, 64-bit integers as numbers or strings, enums by number or name,
 * null for a default, bytes in standard or URL-safe base64. Also accepted,
 * because real Go Micro v4 peers write them: oneofs wrapped in an object
 * named after the oneof ({"Kind":{"Text":"x"}}), and Timestamp, Duration
 * and wrapper types as plain messages ({"seconds":1,"nanos":2}).
 * Unknown keys fail unless MICRO_PBJSON_IGNORE_UNKNOWN. *out is NULL on
 * failure; err (cap bytes, may be NULL) receives a description.
 * Errors: MICRO_EINVAL, MICRO_ECODEC, MICRO_ENOMEM.
 */
MICRO_API int micro_pbjson_decode(const struct ProtobufCMessageDescriptor *d,
    const void *json, size_t len, unsigned flags,
    struct ProtobufCMessage **out, char *err, size_t cap);

/* --- messages by content type ----------------------------------------- */

/** Append m's payload for content_type (micro_proto_format_of) to out.
 *  MICRO_ECONTENTTYPE for a type that carries no messages. */
MICRO_API int micro_proto_encode(const char *content_type,
    const struct ProtobufCMessage *m, micro_buf *out);

/** Decode a payload of content_type into a new message of type d. */
MICRO_API int micro_proto_decode(const char *content_type,
    const struct ProtobufCMessageDescriptor *d, const void *p, size_t len,
    struct ProtobufCMessage **out);

/* --- server side -------------------------------------------------------- */

/**
 * Decode the request body into a new message of type d, by the request's
 * content type. On a malformed body this sets a 400 error on rsp and
 * returns MICRO_EREMOTE, so a handler can return the result as it is.
 * Thread: the handler's.
 */
MICRO_API int micro_proto_request(micro_request *req, micro_response *rsp,
    const struct ProtobufCMessageDescriptor *d, struct ProtobufCMessage **out);

/** Set m, encoded for the request's content type, as the reply body. m is
 *  borrowed for the call. */
MICRO_API int micro_proto_reply(const micro_request *req, micro_response *rsp,
    const struct ProtobufCMessage *m);

/* --- client side -------------------------------------------------------- */

/**
 * Call endpoint of service with message in; on success *out is the decoded
 * reply of type out_desc (free with micro_proto_free). The content type is
 * opts->content_type, or application/protobuf when unset (typed stubs
 * default to the protobuf encoding; pass "application/json" for JSON).
 * *call as for micro_client_call (free it with micro_call_free; may be
 * NULL when the caller needs no call object).
 * Returns what micro_client_call returns, or MICRO_ECODEC when the reply
 * does not decode. Blocks; thread: any.
 */
MICRO_API int micro_proto_call(micro_client *c, const char *service,
    const char *endpoint, const struct ProtobufCMessage *in,
    const struct ProtobufCMessageDescriptor *out_desc,
    struct ProtobufCMessage **out, const micro_call_opts *opts,
    micro_call **call);

/** Completion of micro_proto_call_async: out (the decoded reply, or NULL)
 *  and call are transferred to the callback. */
typedef void (*micro_proto_call_cb)(
    void *arg, int rc, struct ProtobufCMessage *out, micro_call *call);

/**
 * Asynchronous micro_proto_call: in is encoded before this returns; cb
 * runs exactly once on loop's thread iff this returned 0.
 */
MICRO_API int micro_proto_call_async(micro_client *c, micro_loop *loop,
    const char *service, const char *endpoint,
    const struct ProtobufCMessage *in,
    const struct ProtobufCMessageDescriptor *out_desc,
    const micro_call_opts *opts, micro_proto_call_cb cb, void *arg);

/* --- streams -------------------------------------------------------- */

/*
 * Typed messages over a stream (stream.h): each payload is m encoded for
 * the stream's content type (micro_stream_content_type), so one typed
 * handler serves protobuf and JSON streams alike. protoc-gen-cmicro's
 * streaming stubs are thin wrappers over these.
 */

/**
 * micro_client_stream with the content type opts->content_type, or
 * application/protobuf when unset (as micro_proto_call). Same ownership,
 * thread and errors; MICRO_ECONTENTTYPE for a content type that carries
 * no messages.
 */
MICRO_API int micro_proto_stream_open(micro_client *c, const char *service,
    const char *endpoint, const micro_call_opts *opts, micro_stream **out);

/** micro_client_stream_async with micro_proto_stream_open's content type;
 *  callback as micro_client_stream_async's. */
MICRO_API int micro_proto_stream_open_async(micro_client *c,
    micro_loop *loop, const char *service, const char *endpoint,
    const micro_call_opts *opts, micro_stream_open_cb cb, void *arg);

/**
 * Encode m for the stream's content type and micro_stream_send it: a
 * client's message, or a server's reply. m is borrowed for the call.
 * Thread and errors as micro_stream_send's, plus MICRO_EINVAL,
 * MICRO_ECONTENTTYPE, MICRO_ECODEC (m cannot be encoded).
 */
MICRO_API int micro_proto_stream_send(micro_stream *s,
    const struct ProtobufCMessage *m);

/** micro_proto_stream_send with micro_stream_send_async: m is encoded
 *  before this returns; cb as micro_stream_send_async's. */
MICRO_API int micro_proto_stream_send_async(micro_stream *s,
    const struct ProtobufCMessage *m, micro_stream_cb cb, void *arg);

/**
 * Client streams: micro_stream_recv, decoded as a message of type d by
 * the stream's content type. 0 with *out the message (the caller's:
 * micro_proto_free), MICRO_EOF at the end of the stream, MICRO_ECODEC
 * when the payload does not decode (the stream stays open), or what
 * micro_stream_recv returns. *out is NULL unless 0. Thread: as
 * micro_stream_recv. (Asynchronously: micro_stream_recv_async, then
 * micro_proto_decode by micro_stream_content_type, as the generated
 * _recv_async stubs do.)
 */
MICRO_API int micro_proto_stream_recv(micro_stream *s,
    const struct ProtobufCMessageDescriptor *d,
    struct ProtobufCMessage **out);

/**
 * Server streams, in on_msg: decode body[0..len) as a message of type d by
 * the stream's content type. On a payload that does not decode this ends
 * the stream with 400 (415 for a content type that carries no messages)
 * through micro_stream_fail and returns MICRO_EREMOTE, so on_msg can
 * return the result as it is. *out (the caller's: micro_proto_free) is
 * NULL unless 0. Thread: the handler's.
 */
MICRO_API int micro_proto_stream_request(micro_stream *s,
    const struct ProtobufCMessageDescriptor *d, const void *body, size_t len,
    struct ProtobufCMessage **out);

#ifdef __cplusplus
}
#endif
#endif
