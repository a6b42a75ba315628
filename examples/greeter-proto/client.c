/*
 * greeter-proto-client: calls greeter Greeter.Hello through the generated
 * stub and prints the reply's msg.
 *   greeter-proto-client [--address host:port] [--name John]
 *       [--content_type application/protobuf|application/proto-rpc|
 *        application/grpc|application/json|...] [--async] [Go Micro flags]
 *   greeter-proto-client --stream [--address ...] [--content_type ...]
 *       [NAME...]
 * --stream streams the NAMEs (default John Jane Ann) to Greeter.Stream,
 * ends its side, and prints each reply's msg until the server ends the
 * stream. Without --address the service is found through the registry.
 * On an error it prints {"id","code","detail"} on stderr and exits 1.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "greeter.micro.h"

/* The asynchronous path: the callback hands the result to main. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int rc;
    Greeter__Response *out;
    micro_call *call;
} waiter;

static void
on_hello(void *arg, int rc, Greeter__Response *out, micro_call *call)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->out = out;
    w->call = call;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void
print_error(const micro_error *e, int rc)
{
    fprintf(stderr, "{\"id\":\"%s\",\"code\":%d,\"detail\":\"%s\"}\n",
        e && e->id ? e->id : "", e ? (int) e->code : 0,
        e && e->detail ? e->detail : micro_strerror(rc));
}

/* Greeter.Stream through the generated stream stubs: send every name,
 * half-close, then read the replies until the end of the stream. (The
 * server answers as the names arrive; a client that must not hold them
 * all would receive on another thread, or use the _async calls.) */
static int
stream_names(micro_client *cli, const micro_call_opts *o,
    const char *const *names, size_t n)
{
    micro_stream *s = NULL;
    int rc = greeter__greeter__stream_stream(cli, "greeter", o, &s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        Greeter__Request in = GREETER__REQUEST__INIT;
        in.name = (char *) names[i];
        rc = greeter__greeter__stream_send(s, &in);
    }
    if (rc == 0) {
        rc = micro_stream_close_send(s);
    }
    /* A failed send means the server ended the stream: the receive
     * reports why, after the replies sent before. */
    if (s != NULL) {
        Greeter__Response *out = NULL;
        while ((rc = greeter__greeter__stream_recv(s, &out)) == 0) {
            printf("%s\n", out->msg);
            fflush(stdout); /* a stream: show each reply as it comes */
            micro_proto_free(&out->base);
        }
        if (rc == MICRO_EOF) {
            rc = 0;
        }
    }
    if (rc != 0) {
        print_error(micro_stream_error(s), rc);
    }
    micro_stream_free(s);
    return rc == 0 ? 0 : 1;
}

static const char *
flag(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') {
        return argv[*i] + n + 1;
    }
    if (strcmp(argv[*i], name) == 0 && *i + 1 < argc) {
        return argv[++*i];
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    micro_service *svc = NULL;
    int rc = micro_service_new(&svc, "greeter.client", &argc, argv);
    if (rc == MICRO_ECANCELED) {
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "greeter-proto-client: %s\n", micro_strerror(rc));
        return 2;
    }
    const char *address = NULL;
    const char *name = "John";
    const char *ct = "application/protobuf";
    int async = 0;
    int stream = 0;
    const char **names = calloc((size_t) argc + 1, sizeof(*names));
    size_t n_names = 0;
    if (names == NULL) {
        micro_service_free(svc);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *v;
        if ((v = flag(argc, argv, &i, "--address")) != NULL) {
            address = v;
        } else if ((v = flag(argc, argv, &i, "--name")) != NULL) {
            name = v;
        } else if ((v = flag(argc, argv, &i, "--content_type")) != NULL) {
            ct = v;
        } else if (strcmp(argv[i], "--async") == 0) {
            async = 1;
        } else if (strcmp(argv[i], "--stream") == 0) {
            stream = 1;
        } else if (argv[i][0] != '-') {
            names[n_names++] = argv[i];
        }
    }
    micro_call_opts o = {.size = sizeof(o), .address = address,
        .content_type = ct};
    if (stream) {
        static const char *const dflt[] = {"John", "Jane", "Ann"};
        int status = n_names > 0
            ? stream_names(micro_service_client(svc), &o, names, n_names)
            : stream_names(micro_service_client(svc), &o, dflt, 3);
        free(names);
        micro_service_free(svc);
        return status;
    }
    free(names);
    Greeter__Request in = GREETER__REQUEST__INIT;
    in.name = (char *) name;
    Greeter__Response *out = NULL;
    micro_call *call = NULL;
    micro_loop *loop = NULL;
    if (async) {
        waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER,
            .cv = PTHREAD_COND_INITIALIZER};
        rc = micro_loop_new(&loop);
        if (rc == 0) {
            rc = greeter__greeter__hello_call_async(micro_service_client(svc),
                loop, "greeter", &in, &o, on_hello, &w);
        }
        if (rc == 0) {
            pthread_mutex_lock(&w.mu);
            while (!w.done) {
                pthread_cond_wait(&w.cv, &w.mu);
            }
            pthread_mutex_unlock(&w.mu);
            rc = w.rc;
            out = w.out;
            call = w.call;
        }
    } else {
        rc = greeter__greeter__hello_call(micro_service_client(svc),
            "greeter", &in, &out, &o, &call);
    }
    int status = 0;
    if (rc == 0) {
        printf("%s\n", out->msg);
    } else {
        print_error(micro_call_error(call), rc);
        status = 1;
    }
    micro_proto_free(out ? &out->base : NULL);
    micro_call_free(call);
    micro_loop_free(loop);
    micro_service_free(svc);
    return status;
}
