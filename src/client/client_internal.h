/* Shared by the client front end (client.c) and its built-in
 * implementation (mucp.c). Not installed. */
#ifndef CMICRO_CLIENT_INTERNAL_H
#define CMICRO_CLIENT_INTERNAL_H

#include "core/internal.h"

struct micro_call {
    micro_msg *rsp;
    micro_buf payload;
    micro_error *err;
    char address[96];
    int attempts;
};

/* mucp.c: make every call of this client (its state) a gRPC call over its
 * transport, which is the gRPC one (client/grpc.c). */
void micro__mucp_client_grpc_all(void *st);

/* Forget the last attempt's outcome (a retry begins). */
void micro__call_reset(micro_call *c);
/* Set the error (id and detail copied; out of memory leaves none). */
void micro__call_error(micro_call *c, const char *id, int32_t code,
    const char *detail);

/* Copy the caller's options, reading no more than its struct holds (size
 * 0: the first version, which ends at filter). */
static inline void
micro__opts_copy(micro_call_opts *dst, const micro_call_opts *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src == NULL) {
        return;
    }
    size_t n = src->size == 0
        ? offsetof(micro_call_opts, filter) + sizeof(src->filter)
        : (src->size < sizeof(*dst) ? src->size : sizeof(*dst));
    memcpy(dst, src, n);
    dst->size = sizeof(*dst);
}

/* The options of a request, read up to what their size covers. */
static inline int64_t
micro__opts_stream_timeout(const micro_call_opts *o)
{
    if (o == NULL || o->size < offsetof(micro_call_opts, stream_timeout_ms) +
            sizeof(o->stream_timeout_ms)) {
        return 0;
    }
    return o->stream_timeout_ms;
}

#endif
