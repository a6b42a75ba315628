/*
 * The gRPC client (Go Micro v4's client/grpc plugin, spec go-micro-next
 * §2.3): --client=grpc. Every call and stream goes over gRPC (rpc/grpc.c:
 * one HTTP/2 connection per address per loop, each call a stream on it,
 * path /<service>.<Handler>/<Method>), through the mucp client's
 * selection, retries, deadlines and streams. The payload's content type
 * picks the framing's: JSON goes as application/grpc+json, protobuf as
 * application/grpc+proto. (The mucp client also calls gRPC by itself
 * when the selected node's record says protocol=grpc.)
 */
#include "client/client_internal.h"
#include "rpc/grpc.h"

typedef struct gcli {
    micro_transport *tr;
    void *inner; /* the mucp client's state */
} gcli;

static int
gcli_init(void *st, micro_transport *transport, micro_selector *selector,
    const micro_options *opts)
{
    gcli *g = st;
    if (transport == NULL) {
        return MICRO_EINVAL;
    }
    g->inner = micro__calloc(1, micro_client_mucp_ops.state_size);
    if (g->inner == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = micro_transport_new(&g->tr, &micro__grpc_transport_ops,
        micro_transport_loop(transport), opts);
    if (rc == 0) {
        rc = micro_client_mucp_ops.init(g->inner, g->tr, selector, opts);
    }
    if (rc != 0) {
        micro_transport_free(g->tr);
        g->tr = NULL;
        micro__free(g->inner);
        g->inner = NULL;
        return rc;
    }
    micro__mucp_client_grpc_all(g->inner);
    return 0;
}

static int
gcli_call(void *st, micro_call_req *req, micro_call *call)
{
    gcli *g = st;
    return micro_client_mucp_ops.call(g->inner, req, call);
}

static void
gcli_set_retry_on(void *st, unsigned bits)
{
    gcli *g = st;
    micro_client_mucp_ops.set_retry_on(g->inner, bits);
}

static void
gcli_fini(void *st)
{
    gcli *g = st;
    if (g->inner != NULL) {
        micro_client_mucp_ops.fini(g->inner);
        micro__free(g->inner);
        g->inner = NULL;
    }
    micro_transport_free(g->tr);
    g->tr = NULL;
}

static int
gcli_call_async(void *st, micro_loop *loop, micro_call_req *req,
    micro_call *call, micro_client_done_fn done, void *arg, void **handle)
{
    gcli *g = st;
    return micro_client_mucp_ops.call_async(g->inner, loop, req, call, done,
        arg, handle);
}

static void
gcli_cancel(void *st, void *handle)
{
    gcli *g = st;
    micro_client_mucp_ops.cancel(g->inner, handle);
}

static int
gcli_stream(void *st, micro_loop *loop, micro_call_req *req,
    micro_stream_open_cb cb, void *arg, void **handle)
{
    gcli *g = st;
    return micro_client_mucp_ops.stream(g->inner, loop, req, cb, arg, handle);
}

static micro_loop *
gcli_default_loop(void *st)
{
    gcli *g = st;
    return micro_client_mucp_ops.default_loop(g->inner);
}

static const micro_option_desc gcli_options[] = {
    {"client_retry_on", MICRO_OPT_STR, "timeout,dial",
        "errors that are retried, comma-separated: timeout, dial, 500, "
        "transport"},
    {"client_grpc_max_msg_size", MICRO_OPT_INT, "4194304",
        "largest gRPC message accepted, in bytes"},
    {"client_grpc_keepalive_time", MICRO_OPT_MS, "0s",
        "PING a connection silent this long (0: never)"},
    MICRO_OPTION_END,
};

const micro_client_ops micro_client_grpc_ops = {
    .abi = MICRO_CLIENT_ABI,
    .name = "grpc",
    .state_size = sizeof(gcli),
    .init = gcli_init,
    .call = gcli_call,
    .set_retry_on = gcli_set_retry_on,
    .fini = gcli_fini,
    .call_async = gcli_call_async,
    .cancel = gcli_cancel,
    .stream = gcli_stream,
    .default_loop = gcli_default_loop,
    .options = gcli_options,
};
