/*
 * Layer 4: gRPC (Go Micro v4's gRPC server and client plugins, spec
 * go-micro-next §2) on the HTTP/2 engine (http/h2.h), presented as
 * transport sockets so that the mucp server and client machinery (routing,
 * workers, wrappers, deadlines, streams of rpc/stream.c) serves both
 * protocols: each HTTP/2 stream is one micro_socket; its request headers
 * become Go Micro's (Micro-Endpoint "Handler.Method" from the path's text
 * after the last dot of the service part, Micro-Service, Content-Type,
 * Timeout from grpc-timeout or Go Micro's `timeout` metadata, the rest as
 * metadata), each length-prefixed gRPC message one transport message
 * (body still framed: the grpc codec reads it), and an answer carrying
 * Micro-Error becomes grpc-status / grpc-message (the micro error JSON) /
 * grpc-status-details-bin (one Any, type.googleapis.com/errors.Error)
 * trailers, with Go Micro's mapping of codes both ways.
 *
 * Not a plugin of its own: --server=grpc and --client=grpc make one. Not
 * installed.
 */
#ifndef CMICRO_RPC_GRPC_H
#define CMICRO_RPC_GRPC_H

#include "core/internal.h"

/* The transport implementation (sockets = HTTP/2 streams). */
extern const micro_transport_ops micro__grpc_transport_ops;

/* What the server says of an endpoint "Handler.Method". */
enum { MICRO__GRPC_UNKNOWN = 0, MICRO__GRPC_UNARY = 1, MICRO__GRPC_STREAM = 2 };
typedef int (*micro__grpc_classify_fn)(void *arg, const char *endpoint);

/* Server side: how requests are told apart, and the name errors made by
 * the transport carry as their id (before listen). */
void micro__grpc_transport_set_classify(micro_transport *t,
    micro__grpc_classify_fn fn, void *arg, const char *server_name);

/* Harnesses (fuzz/fuzz_h2.c), loop thread: serve bs as a connection the
 * listener accepted (the transport must be listening). */
struct micro__bs;
void micro__grpc_transport_accept(micro_transport *t, struct micro__bs *bs);

/* The gRPC server's own transport (server/grpc.c), or NULL when s is not a
 * gRPC server. */
micro_transport *micro__server_grpc_transport(micro_server *s);

/* The transport's state (transport.c). */
void *micro__transport_state(micro_transport *t);

/* Go Micro's error code -> gRPC status (server/grpc error.go) and back
 * (client/grpc error.go). */
int micro__grpc_status_of(int32_t micro_code);
int32_t micro__grpc_code_of(int grpc_status);

/* "Handler.Method" of a gRPC path "/<pkg>.<Handler>/<Method>" or
 * "/<Handler>/<Method>" into out; MICRO_EINVAL when malformed. The
 * service part (before the last '/', without the leading '/') goes to
 * svc when not NULL. */
int micro__grpc_path_endpoint(const char *path, size_t len, char *out,
    size_t cap, char *svc, size_t svccap);

/* grpc-timeout "<digits><unit>" -> milliseconds (rounded up), or -1. */
int64_t micro__grpc_timeout_ms(const char *v, size_t len);

#endif
