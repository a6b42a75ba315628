/* Shared by the protobuf sources (proto.c, pbjson.c). Not installed. */
#ifndef CMICRO_PROTO_INTERNAL_H
#define CMICRO_PROTO_INTERNAL_H

#include <protobuf-c/protobuf-c.h>

#include "core/internal.h"
#include "cmicro/proto.h"

/* protobuf-c's allocator over cmicro's hooks: every message this library
 * hands out is allocated and freed through it. */
extern ProtobufCAllocator micro__pb_allocator;

/* A new zeroed-and-initialised message of type d, or NULL. */
ProtobufCMessage *micro__pb_alloc(const ProtobufCMessageDescriptor *d);

/* True when the repeated message field f of a message is a map (protoc
 * names the entry type <FieldCamel>Entry, fields key=1 and value=2). */
bool micro__pb_is_map(const ProtobufCFieldDescriptor *f);

/* Write "what" into err[0..cap) (truncated); no-op when err is NULL. */
void micro__pb_err(char *err, size_t cap, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
