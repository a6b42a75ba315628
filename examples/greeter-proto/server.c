/*
 * greeter-proto-server: the greeter built from greeter.proto with
 * protoc-gen-cmicro stubs. One typed handler answers every content type
 * Go Micro v4 uses for it: application/protobuf, application/proto-rpc,
 * application/grpc (+proto, +json), application/json and json-rpc.
 *
 *   Greeter.Hello {name:"John"} -> {msg:"Hello John"}; no name: 400
 *   Greeter.Stream (bidirectional) each {name:X} -> {msg:"Hello X"}, until
 *       the client ends its side, then the end of the stream; a message
 *       without a name ends the stream with 400
 *
 * Flags and MICRO_* variables are Go Micro's (--server_address=..., ...).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeter.micro.h"

/* "Hello <name>" (malloc'd), or NULL. */
static char *
greeting(const char *name)
{
    size_t n = strlen(name) + sizeof("Hello ");
    char *msg = malloc(n);
    if (msg != NULL) {
        snprintf(msg, n, "Hello %s", name);
    }
    return msg;
}

static int
hello(micro_request *req, const Greeter__Request *in, micro_response *rsp,
    void *arg)
{
    (void) arg;
    if (in->name == NULL || in->name[0] == '\0') {
        return micro_response_error(rsp, "greeter", 400, "name required");
    }
    Greeter__Response out = GREETER__RESPONSE__INIT;
    out.msg = greeting(in->name);
    if (out.msg == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = greeter__greeter__hello_reply(req, rsp, &out);
    free(out.msg);
    return rc;
}

/* Greeter.Stream: one reply per message, on the worker pool, where the
 * reply may wait for a slow client (flow control). Without an end hook the
 * framework ends the stream (EOS) once the client has ended its side. */
static int
stream_msg(micro_stream *s, const Greeter__Request *in, void *arg)
{
    (void) arg;
    if (in->name == NULL || in->name[0] == '\0') {
        return micro_stream_fail(s, "greeter", 400, "name required");
    }
    Greeter__Response out = GREETER__RESPONSE__INIT;
    out.msg = greeting(in->name);
    if (out.msg == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = greeter__greeter__stream_reply(s, &out);
    free(out.msg);
    return rc;
}

static int
announce(micro_service *svc, void *arg)
{
    (void) arg;
    printf("greeter-proto-server listening on %s\n",
        micro_server_address(micro_service_server(svc)));
    fflush(stdout);
    return 0;
}

int
main(int argc, char **argv)
{
    micro_service *svc = NULL;
    int rc = micro_service_new(&svc, "greeter", &argc, argv);
    if (rc == MICRO_ECANCELED) {
        return 0; /* --help */
    }
    if (rc != 0) {
        fprintf(stderr, "greeter-proto-server: %s\n", micro_strerror(rc));
        return 2;
    }
    /* Borrowed for the server's life: static. */
    static const Greeter__Greeter_Handlers handlers = {
        .hello = hello,
        .stream = {.msg = stream_msg}, /* not inline: replies may wait */
        .flags = MICRO_HANDLER_INLINE, /* hello never blocks */
    };
    rc = greeter__greeter__register(micro_service_server(svc), &handlers);
    if (rc == 0) {
        rc = micro_service_add_hook(svc, MICRO_HOOK_AFTER_START, announce,
            NULL);
    }
    if (rc == 0) {
        rc = micro_service_run(svc);
    }
    if (rc != 0) {
        fprintf(stderr, "greeter-proto-server: %s\n", micro_strerror(rc));
    }
    micro_service_free(svc);
    return rc == 0 ? 0 : 1;
}
