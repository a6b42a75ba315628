/*
 * The gRPC server (Go Micro v4's server/grpc plugin, spec go-micro-next
 * §2.2): --server=grpc. The protocol lives in rpc/grpc.c, which presents
 * every HTTP/2 stream as a transport socket carrying Go Micro's headers;
 * the mucp implementation (mucp.c) serves those sockets unchanged, so
 * routing, workers, wrappers, deadlines and the streams of rpc/stream.c
 * are one code for both protocols. This file owns the gRPC transport
 * (the service's transport is not used, as in Go Micro) and tells it
 * which endpoints exist and which are streams.
 */
#include "rpc/grpc.h"
#include "server/server_internal.h"

typedef struct gsrv {
    micro_server *srv;
    micro_transport *tr;
    void *inner; /* the mucp implementation's state */
} gsrv;

static int
classify(void *arg, const char *endpoint)
{
    gsrv *g = arg;
    const micro__handler *h = micro__server_find(g->srv, endpoint);
    if (h == NULL) {
        return MICRO__GRPC_UNKNOWN;
    }
    return h->stream ? MICRO__GRPC_STREAM : MICRO__GRPC_UNARY;
}

static int
gsrv_init(void *st, micro_server *srv, micro_loop *loop,
    micro_transport *transport, const micro_options *opts)
{
    gsrv *g = st;
    (void) transport;
    if (loop == NULL) {
        return MICRO_EINVAL;
    }
    g->srv = srv;
    g->inner = micro__calloc(1, micro_server_mucp_ops.state_size);
    if (g->inner == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = micro_transport_new(&g->tr, &micro__grpc_transport_ops, loop,
        opts);
    if (rc == 0) {
        micro__grpc_transport_set_classify(g->tr, classify, g,
            micro_server_name(srv));
        rc = micro_server_mucp_ops.init(g->inner, srv, loop, g->tr, opts);
    }
    if (rc != 0) {
        micro_transport_free(g->tr);
        g->tr = NULL;
        micro__free(g->inner);
        g->inner = NULL;
    }
    return rc;
}

static int
gsrv_start(void *st)
{
    gsrv *g = st;
    return micro_server_mucp_ops.start(g->inner);
}

static int
gsrv_stop(void *st, int64_t drain_ms)
{
    gsrv *g = st;
    return micro_server_mucp_ops.stop(g->inner, drain_ms);
}

static const char *
gsrv_listen_address(void *st)
{
    gsrv *g = st;
    return micro_server_mucp_ops.listen_address(g->inner);
}

static void
gsrv_fini(void *st)
{
    gsrv *g = st;
    if (g->inner != NULL) {
        micro_server_mucp_ops.fini(g->inner);
        micro__free(g->inner);
        g->inner = NULL;
    }
    micro_transport_free(g->tr);
    g->tr = NULL;
}

micro_transport *
micro__server_grpc_transport(micro_server *s)
{
    if (s == NULL || s->ops != &micro_server_grpc_ops) {
        return NULL;
    }
    return ((gsrv *) s->impl)->tr;
}

static const micro_option_desc gsrv_options[] = {
    {"server_workers", MICRO_OPT_INT, "16", "handler worker threads"},
    {"server_inline", MICRO_OPT_BOOL, "false",
        "run handlers on the loop thread (non-blocking handlers only)"},
    {"server_grpc_max_msg_size", MICRO_OPT_INT, "4194304",
        "largest gRPC message accepted, in bytes"},
    {"server_grpc_max_concurrent_streams", MICRO_OPT_INT, "1000",
        "HTTP/2 streams a client may have open on one connection"},
    {"server_grpc_keepalive_time", MICRO_OPT_MS, "2h",
        "PING a connection silent this long"},
    {"server_grpc_keepalive_timeout", MICRO_OPT_MS, "20s",
        "close a connection whose PING is not answered in this time"},
    MICRO_OPTION_END,
};

const micro_server_ops micro_server_grpc_ops = {
    .abi = MICRO_SERVER_ABI,
    .name = "grpc",
    .state_size = sizeof(gsrv),
    .init = gsrv_init,
    .start = gsrv_start,
    .stop = gsrv_stop,
    .listen_address = gsrv_listen_address,
    .fini = gsrv_fini,
    .options = gsrv_options,
};
