#ifndef CMICRO_DYNPB_H
#define CMICRO_DYNPB_H

#include <stdbool.h>
#include <stddef.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Protobuf messages known only at run time. micro_proto_dyn_load reads a
 * binary FileDescriptorSet (protoc --include_imports --descriptor_set_out)
 * and builds protobuf-c descriptors for its messages and enums, laid out as
 * protobuf-c-compiler lays out generated structs (has_ flags for proto2
 * and proto3 `optional` scalars, n_ counts for repeated fields, a case
 * word and a shared slot per oneof). Those descriptors work with every
 * function of proto.h (micro_pbjson_decode, micro_proto_pack,
 * micro_proto_call...) and with protobuf_c_message_pack/unpack, so a
 * program can speak protobuf without generated code (cmicro call
 * --descriptor_set).
 *
 * Not supported: proto2 groups (a load error), extensions (ignored).
 * Editions files are read with proto2 rules.
 *
 * Lifetime: descriptors and names belong to the micro_proto_dyn; free
 * messages of its types before micro_proto_dyn_free. Thread: a loaded set
 * is immutable and may be read from any thread.
 */
struct ProtobufCMessageDescriptor;

typedef struct micro_proto_dyn micro_proto_dyn;

/** One RPC method of a loaded set. */
typedef struct micro_proto_dyn_method_info {
    const char *service;      /* full name: "pkg.Greeter" */
    const char *service_name; /* unqualified: "Greeter" */
    const char *method;       /* "Hello" */
    const char *input_type;   /* full names: "pkg.Request" */
    const char *output_type;
    const struct ProtobufCMessageDescriptor *input;
    const struct ProtobufCMessageDescriptor *output;
    bool client_streaming;
    bool server_streaming;
} micro_proto_dyn_method_info;

/**
 * Load the FileDescriptorSet p[0..len). A file named twice is read once.
 * Errors: MICRO_EINVAL (bad arguments), MICRO_ECODEC (malformed set,
 * unresolved type, unsupported construct), MICRO_ENOMEM; a description
 * goes into err (cap bytes, may be NULL). *out is NULL on failure.
 */
MICRO_API int micro_proto_dyn_load(const void *p, size_t len,
    micro_proto_dyn **out, char *err, size_t cap);

/** Free a set. NULL is a no-op. */
MICRO_API void micro_proto_dyn_free(micro_proto_dyn *d);

/** The message type of a full name ("pkg.Outer.Inner"; a leading dot is
 *  allowed), or NULL. */
MICRO_API const struct ProtobufCMessageDescriptor *micro_proto_dyn_message(
    const micro_proto_dyn *d, const char *full_name);

/**
 * Find the method of an endpoint "Service.Method", where Service is a
 * proto service's unqualified name ("Greeter") or full name
 * ("pkg.Greeter"), as Go Micro names handlers. Returns 0 and fills *info,
 * or MICRO_ENOENDPOINT (no such service or method) / MICRO_EINVAL (bad
 * endpoint; an unqualified name that several packages define), with a
 * description in err.
 */
MICRO_API int micro_proto_dyn_method(const micro_proto_dyn *d,
    const char *endpoint, micro_proto_dyn_method_info *info, char *err,
    size_t cap);

#ifdef __cplusplus
}
#endif
#endif
