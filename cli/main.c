/*
 * cmicro: the command line, on the public API only.
 *
 *   cmicro call [--address host:port] [--content_type CT]
 *               [--metadata K=V]... [--timeout 5s]
 *               [--descriptor_set FILE] SERVICE ENDPOINT [JSON]
 *   cmicro list services
 *   cmicro get service NAME
 *   cmicro health [--address host:port] SERVICE
 *   cmicro stream [--address host:port] [--content_type CT]
 *                 [--metadata K=V]... [--timeout D] [--descriptor_set FILE]
 *                 SERVICE ENDPOINT   (JSON lines in, JSON lines out)
 *   cmicro publish [--content_type CT] [--metadata K=V]... TOPIC [JSON]
 *   cmicro subscribe [--queue Q] [--count N] TOPIC
 *   cmicro watch [--count N] [SERVICE]
 *
 * With --descriptor_set (a binary FileDescriptorSet: protoc
 * --include_imports --descriptor_set_out=FILE x.proto) call sends the JSON
 * argument as the method's protobuf input message (content type
 * application/protobuf unless --content_type says application/proto-rpc,
 * application/grpc...) and prints the reply as JSON (Go Micro v4 style).
 *
 * Go Micro's flags and MICRO_* variables apply (--registry, ...).
 * Exit status: 0 success; 1 the service answered with an error (its JSON
 * on stdout); 2 anything else (message on stderr).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmicro/dynpb.h>
#include <cmicro/micro.h>

#include "pubsub.h"
#include "stream.h"

static void
usage(void)
{
    fprintf(stderr,
        "usage:\n"
        "  cmicro call [--address host:port] [--protocol grpc|mucp]\n"
        "              [--content_type CT]\n"
        "              [--metadata K=V]... [--timeout 5s]\n"
        "              [--descriptor_set FILE] SERVICE ENDPOINT [JSON]\n"
        "      --descriptor_set: a protoc --include_imports "
        "--descriptor_set_out file;\n"
        "      JSON is then sent as the method's protobuf input "
        "(application/protobuf,\n"
        "      or --content_type application/proto-rpc|application/grpc) and "
        "the reply\n"
        "      printed as JSON\n"
        "  cmicro list services\n"
        "  cmicro get service NAME\n"
        "  cmicro health [--address host:port] SERVICE\n"
        "  cmicro stream [--address host:port] [--protocol grpc|mucp]\n"
        "                [--content_type CT]\n"
        "                [--metadata K=V]... [--timeout D] "
        "[--descriptor_set FILE]\n"
        "                SERVICE ENDPOINT   (one JSON request per stdin "
        "line; one JSON\n"
        "                reply per stdout line; half-closes at end of "
        "input)\n"
        "  cmicro publish [--content_type CT] [--metadata K=V]... TOPIC "
        "[JSON]\n"
        "  cmicro subscribe [--queue Q] [--count N] TOPIC   (one JSON line "
        "per event)\n"
        "  cmicro watch [--count N] [SERVICE]   (registry changes, one JSON "
        "line each:\n"
        "                {\"action\":\"create|update|delete\","
        "\"service\":{...}})\n"
        "  cmicro --help   (all Go Micro flags)\n"
        "TLS (call, stream, health): --tls [--ca_file F] [--cert_file F "
        "--key_file F]\n"
        "  (--transport_secure and --transport_tls_*_file; "
        "--tls_insecure_skip_verify\n"
        "  accepts any server certificate)\n");
}

typedef struct cli_args {
    const char *address;
    const char *content_type;
    const char *descriptor_set;
    micro_header_kv md[32];
    char *md_store[32];
    size_t n_md;
    int64_t timeout_ms;
    const char *queue;
    long count;
    const char *pos[8];
    int n_pos;
} cli_args;

/*
 * "host:port" or "[ipv6]:port", the port a decimal number from 1 to 65535.
 * Checked here because the resolver takes any number as a port and keeps
 * its low 16 bits: 127.0.0.1:70000 would quietly dial port 4464.
 */
static bool
address_ok(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL) {
        return false;
    }
    if (addr[0] == '[' && (colon == addr || colon[-1] != ']')) {
        return false;
    }
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5) {
        return false;
    }
    long port = 0;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        port = port * 10 + (*p - '0');
    }
    return port >= 1 && port <= 65535;
}

static int
parse(int argc, char **argv, cli_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        const char *names[] = {"--address", "--content_type", "--metadata",
            "--timeout", "--queue", "--count", "--descriptor_set"};
        int which = -1;
        for (int k = 0; k < 7; k++) {
            size_t n = strlen(names[k]);
            if (strncmp(arg, names[k], n) == 0 &&
                (arg[n] == '=' || arg[n] == '\0')) {
                which = k;
                if (arg[n] == '=') {
                    val = arg + n + 1;
                } else if (i + 1 < argc) {
                    val = argv[++i];
                } else {
                    fprintf(stderr, "cmicro: %s needs a value\n", names[k]);
                    return -1;
                }
            }
        }
        switch (which) {
        case 0:
            if (!address_ok(val)) {
                fprintf(stderr,
                    "cmicro: bad --address %s: want host:port or "
                    "[ipv6]:port with a port from 1 to 65535\n",
                    val);
                return -1;
            }
            a->address = val;
            break;
        case 1:
            a->content_type = val;
            break;
        case 2: {
            const char *eq = strchr(val, '=');
            if (eq == NULL || a->n_md == 32) {
                fprintf(stderr, "cmicro: --metadata wants K=V\n");
                return -1;
            }
            char *k = strndup(val, (size_t) (eq - val));
            a->md_store[a->n_md] = k;
            a->md[a->n_md].key = k;
            a->md[a->n_md].value = eq + 1;
            a->n_md++;
            break;
        }
        case 3:
            /* The library's parser: Go's duration forms or seconds, and
             * saturation at MICRO_DURATION_MAX_MS (the client turns the
             * timeout into nanoseconds). */
            if (micro_parse_duration_ms(val, &a->timeout_ms) != 0 ||
                a->timeout_ms <= 0) {
                fprintf(stderr,
                    "cmicro: bad --timeout %s: want a positive duration "
                    "such as 500ms, 5s, 1m or a number of seconds\n",
                    val);
                return -1;
            }
            break;
        case 4:
            a->queue = val;
            break;
        case 5:
            a->count = strtol(val, NULL, 10);
            break;
        case 6:
            a->descriptor_set = val;
            break;
        default:
            if (arg[0] == '-' && arg[1] == '-') {
                fprintf(stderr, "cmicro: unknown flag %s\n", arg);
                return -1;
            }
            if (a->n_pos == 8) {
                return -1;
            }
            a->pos[a->n_pos++] = arg;
        }
    }
    return 0;
}

static void
call_opts(const cli_args *a, micro_call_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->address = a->address;
    o->content_type = a->content_type;
    o->metadata = a->md;
    o->n_metadata = a->n_md;
    o->timeout_ms = a->timeout_ms;
}

/* Exit status and output of a failed call. */
static int
call_failed(int rc, micro_call *call)
{
    int status = 2;
    if (call != NULL && micro_call_error(call) != NULL) {
        char *json = micro_error_to_json(micro_call_error(call));
        printf("%s\n", json ? json : "{}");
        free(json);
        status = rc == MICRO_EREMOTE || rc == MICRO_ETIMEDOUT ? 1 : 2;
        if (status == 2) {
            fprintf(stderr, "cmicro: %s\n", micro_strerror(rc));
        }
    } else {
        fprintf(stderr, "cmicro: %s\n", micro_strerror(rc));
    }
    return status;
}

static int
do_call(micro_service *svc, cli_args *a, const char *service,
    const char *endpoint, const char *body)
{
    micro_call_opts o;
    call_opts(a, &o);
    micro_call *call = NULL;
    int rc = micro_client_call(micro_service_client(svc), service, endpoint,
        body, strlen(body), &o, &call);
    int status = 0;
    if (rc == 0) {
        size_t len = 0;
        const char *p = micro_call_body(call, &len);
        fwrite(p, 1, len, stdout);
        if (len == 0 || p[len - 1] != '\n') {
            fputc('\n', stdout);
        }
    } else {
        status = call_failed(rc, call);
    }
    micro_call_free(call);
    return status;
}

/* The whole of file path, or NULL (message printed). */
static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cmicro: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    micro_buf b = {0};
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = micro_buf_append(&b, chunk, n);
    }
    if (rc != 0 || ferror(f)) {
        fprintf(stderr, "cmicro: %s: %s\n", path,
            rc != 0 ? micro_strerror(rc) : strerror(errno));
        fclose(f);
        micro_buf_clear(&b);
        return NULL;
    }
    fclose(f);
    *len = b.len;
    char *out = malloc(b.len != 0 ? b.len : 1);
    if (out != NULL && b.len != 0) {
        memcpy(out, b.data, b.len);
    }
    micro_buf_clear(&b);
    if (out == NULL) {
        fprintf(stderr, "cmicro: out of memory\n");
    }
    return out;
}

/* call with --descriptor_set: JSON -> the method's input message ->
 * protobuf on the wire; the reply back to JSON. */
static int
do_proto_call(micro_service *svc, cli_args *a, const char *service,
    const char *endpoint, const char *json)
{
    char err[512] = "";
    size_t len = 0;
    char *set = read_file(a->descriptor_set, &len);
    if (set == NULL) {
        return 2;
    }
    micro_proto_dyn *dyn = NULL;
    int rc = micro_proto_dyn_load(set, len, &dyn, err, sizeof(err));
    free(set);
    if (rc != 0) {
        fprintf(stderr, "cmicro: %s: %s\n", a->descriptor_set, err);
        return 2;
    }
    int status = 2;
    struct ProtobufCMessage *in = NULL;
    struct ProtobufCMessage *out = NULL;
    micro_call *call = NULL;
    micro_buf b = {0};
    micro_proto_dyn_method_info mi;
    rc = micro_proto_dyn_method(dyn, endpoint, &mi, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "cmicro: %s: %s\n", a->descriptor_set, err);
        goto out;
    }
    if (mi.client_streaming || mi.server_streaming) {
        fprintf(stderr, "cmicro: %s.%s is a streaming method; call makes "
            "unary calls only\n", mi.service, mi.method);
        goto out;
    }
    micro_call_opts o;
    call_opts(a, &o);
    if (o.content_type == NULL) {
        o.content_type = "application/protobuf";
    }
    if (micro_proto_format_of(o.content_type) == MICRO_PROTO_FORMAT_NONE) {
        fprintf(stderr, "cmicro: content type %s carries no protobuf "
            "messages\n", o.content_type);
        goto out;
    }
    rc = micro_pbjson_decode(mi.input, json, strlen(json), 0, &in, err,
        sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "cmicro: request is not a %s: %s\n",
            mi.input_type, err);
        goto out;
    }
    /* Go Micro names the handler by the unqualified service name. */
    char ep[512];
    snprintf(ep, sizeof(ep), "%s.%s", mi.service_name, mi.method);
    rc = micro_proto_call(micro_service_client(svc), service, ep, in,
        mi.output, &out, &o, &call);
    if (rc != 0) {
        status = call_failed(rc, call);
        goto out;
    }
    rc = micro_pbjson_encode(out, 0, &b);
    if (rc != 0) {
        fprintf(stderr, "cmicro: reply to JSON: %s\n", micro_strerror(rc));
        goto out;
    }
    fwrite(b.data, 1, b.len, stdout);
    fputc('\n', stdout);
    status = 0;
out:
    micro_buf_clear(&b);
    micro_proto_free(out);
    micro_proto_free(in);
    micro_call_free(call);
    micro_proto_dyn_free(dyn);
    return status;
}

static void
print_service(const micro_registry_service *s)
{
    char *json = NULL;
    if (micro_registry_service_to_json(s, &json) == 0) {
        printf("%s\n", json);
        free(json);
    }
}

/*
 * The CLI's TLS flags are short names for the transport's options:
 * --tls is --transport_secure=true, --ca_file/--cert_file/--key_file are
 * --transport_tls_ca_file/_cert_file/_key_file. Rewritten into a new
 * argv (its strings in *store, freed by the caller) before the service
 * parses the flags.
 */
static char **
tls_aliases(int *argc, char **argv, char ***store, int *nstore)
{
    static const struct {
        const char *from, *to;
    } al[] = {
        {"--ca_file", "--transport_tls_ca_file"},
        {"--cert_file", "--transport_tls_cert_file"},
        {"--key_file", "--transport_tls_key_file"},
    };
    char **out = calloc((size_t) *argc + 1, sizeof(*out));
    *store = calloc((size_t) *argc + 1, sizeof(**store));
    *nstore = 0;
    if (out == NULL || *store == NULL) {
        free(out);
        free(*store);
        *store = NULL;
        return NULL;
    }
    int n = 0;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        if (i > 0 && strcmp(a, "--tls") == 0) {
            out[n++] = (char *) "--transport_secure=true";
            continue;
        }
        bool done = false;
        for (size_t k = 0; k < sizeof(al) / sizeof(al[0]) && i > 0; k++) {
            size_t fl = strlen(al[k].from);
            if (strncmp(a, al[k].from, fl) != 0 ||
                (a[fl] != '=' && a[fl] != '\0')) {
                continue;
            }
            const char *val = a[fl] == '=' ? a + fl + 1
                : i + 1 < *argc ? argv[++i]
                                : "";
            size_t len = strlen(al[k].to) + strlen(val) + 2;
            char *f = malloc(len);
            if (f == NULL) {
                break;
            }
            snprintf(f, len, "%s=%s", al[k].to, val);
            (*store)[(*nstore)++] = f;
            out[n++] = f;
            done = true;
            break;
        }
        if (!done) {
            out[n++] = argv[i];
        }
    }
    out[n] = NULL;
    *argc = n;
    return out;
}

/*
 * --protocol=grpc|mucp (or --protocol grpc): the protocol of the calls,
 * for nodes given by --address (a node found in the registry says its own,
 * protocol=grpc, and is called over gRPC whatever this says). It is Go
 * Micro's --client flag under the name the CLI documents: rewritten to
 * --client=... before the service reads its flags. -1 on a bad value.
 */
static int
protocol_flag(int *argc, char **argv, char *store, size_t cap)
{
    for (int i = 1; i < *argc; i++) {
        const char *v = NULL;
        if (strncmp(argv[i], "--protocol=", 11) == 0) {
            v = argv[i] + 11;
        } else if (strcmp(argv[i], "--protocol") == 0 && i + 1 < *argc) {
            v = argv[i + 1];
            /* drop the separate value */
            for (int j = i + 1; j + 1 < *argc; j++) {
                argv[j] = argv[j + 1];
            }
            argv[--*argc] = NULL;
        } else {
            continue;
        }
        if (strcmp(v, "grpc") != 0 && strcmp(v, "mucp") != 0) {
            fprintf(stderr, "cmicro: bad --protocol %s: want grpc or mucp\n",
                v);
            return -1;
        }
        snprintf(store, cap, "--client=%s", v);
        argv[i] = store;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    micro_service *svc = NULL;
    micro_log_set_level(MICRO_LOG_WARN);
    char **store = NULL;
    int nstore = 0;
    argv = tls_aliases(&argc, argv, &store, &nstore);
    if (argv == NULL) {
        fprintf(stderr, "cmicro: out of memory\n");
        return 2;
    }
    cli_args a = {0};
    int status = 2;
    char protocol[32];
    if (protocol_flag(&argc, argv, protocol, sizeof(protocol)) != 0) {
        goto out;
    }
    int rc = micro_service_new(&svc, "cmicro.cli", &argc, argv);
    if (rc == MICRO_ECANCELED) {
        usage();
        status = 0;
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "cmicro: %s\n", micro_strerror(rc));
        goto out;
    }
    if (parse(argc, argv, &a) != 0 || a.n_pos == 0) {
        usage();
        goto out;
    }
    if (strcmp(a.pos[0], "call") == 0 && (a.n_pos == 3 || a.n_pos == 4)) {
        const char *body = a.n_pos == 4 ? a.pos[3] : "{}";
        status = a.descriptor_set != NULL
            ? do_proto_call(svc, &a, a.pos[1], a.pos[2], body)
            : do_call(svc, &a, a.pos[1], a.pos[2], body);
    } else if (strcmp(a.pos[0], "publish") == 0 &&
        (a.n_pos == 2 || a.n_pos == 3)) {
        status = cli_publish(svc, a.pos[1], a.n_pos == 3 ? a.pos[2] : "{}",
            a.content_type, a.md, a.n_md);
    } else if (strcmp(a.pos[0], "subscribe") == 0 && a.n_pos == 2) {
        status = cli_subscribe(svc, a.pos[1], a.queue, a.count);
    } else if (strcmp(a.pos[0], "watch") == 0 && a.n_pos <= 2) {
        status = cli_watch(svc, a.n_pos == 2 ? a.pos[1] : NULL, a.count);
    } else if (strcmp(a.pos[0], "stream") == 0 && a.n_pos == 3) {
        micro_call_opts o;
        call_opts(&a, &o);
        o.timeout_ms = 0;
        o.size = sizeof(o);
        o.stream_timeout_ms = a.timeout_ms;
        status = cli_stream(svc, a.pos[1], a.pos[2], &o, a.descriptor_set);
    } else if (strcmp(a.pos[0], "health") == 0 && a.n_pos == 2) {
        status = do_call(svc, &a, a.pos[1], "Debug.Health", "{}");
    } else if (strcmp(a.pos[0], "list") == 0 && a.n_pos == 2 &&
        strcmp(a.pos[1], "services") == 0) {
        micro_registry_service *svcs = NULL;
        size_t n = 0;
        rc = micro_registry_list_services(micro_service_registry(svc), &svcs,
            &n);
        if (rc == 0) {
            for (size_t i = 0; i < n; i++) {
                printf("%s\n", svcs[i].name);
            }
            status = 0;
        } else {
            fprintf(stderr, "cmicro: %s\n", micro_strerror(rc));
        }
        micro_registry_services_free(svcs, n);
    } else if (strcmp(a.pos[0], "get") == 0 && a.n_pos == 3 &&
        strcmp(a.pos[1], "service") == 0) {
        micro_registry_service *svcs = NULL;
        size_t n = 0;
        rc = micro_registry_get_service(micro_service_registry(svc),
            a.pos[2], &svcs, &n);
        if (rc == 0) {
            for (size_t i = 0; i < n; i++) {
                print_service(&svcs[i]);
            }
            status = 0;
        } else {
            fprintf(stderr, "cmicro: %s: %s\n", a.pos[2],
                micro_strerror(rc));
        }
        micro_registry_services_free(svcs, n);
    } else {
        usage();
    }
out:
    for (size_t i = 0; i < a.n_md; i++) {
        free(a.md_store[i]);
    }
    micro_service_free(svc);
    for (int i = 0; i < nstore; i++) {
        free(store[i]);
    }
    free(store);
    free(argv);
    return status;
}
