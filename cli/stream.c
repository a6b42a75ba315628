/*
 * cmicro stream [--address host:port] [--content_type CT] [--metadata K=V]
 *               [--timeout D] [--descriptor_set FILE] SERVICE ENDPOINT
 *
 * One JSON request per line of stdin is sent as it is read; every reply
 * is printed as one JSON line as it arrives; at the end of stdin the
 * client half-closes (EOS, the connection kept open for reading). Exit 0
 * at the end of the stream, 1 with the error's JSON on stdout when the
 * server ended it with an error, 2 for anything else. --timeout is the
 * stream's deadline (sent as Timeout): a server that never ends its side
 * (Go handlers that return nil after io.EOF do not) then ends with 408.
 * With --descriptor_set the lines are the method's input messages as JSON,
 * sent as protobuf (or the --content_type given), and the replies are
 * printed as JSON of its output message.
 */
#include "stream.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmicro/dynpb.h>

typedef struct reader {
    micro_stream *s;
    const struct ProtobufCMessageDescriptor *out; /* NULL: JSON */
    const char *ct;
    int rc;
    int status;
} reader;

/* Print one reply as a JSON line. */
static int
print_reply(reader *r, const void *body, size_t len)
{
    if (r->out == NULL) {
        const char *p = body;
        while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r')) {
            len--;
        }
        fwrite(p, 1, len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        return 0;
    }
    struct ProtobufCMessage *m = NULL;
    int rc = micro_proto_decode(r->ct, r->out, body, len, &m);
    micro_buf b = {0};
    if (rc == 0) {
        rc = micro_pbjson_encode(m, 0, &b);
    }
    if (rc == 0) {
        fwrite(b.data, 1, b.len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    } else {
        fprintf(stderr, "cmicro: a reply does not decode: %s\n",
            micro_strerror(rc));
    }
    micro_buf_clear(&b);
    micro_proto_free(m);
    return rc;
}

static void *
read_replies(void *arg)
{
    reader *r = arg;
    for (;;) {
        micro_buf b = {0};
        int rc = micro_stream_recv(r->s, &b);
        if (rc == 0) {
            rc = print_reply(r, b.data, b.len);
            micro_buf_clear(&b);
            if (rc == 0) {
                continue;
            }
            r->status = 2;
            micro_stream_abort(r->s);
            return NULL;
        }
        r->rc = rc;
        if (rc == MICRO_EOF) {
            r->status = 0;
        } else if (micro_stream_error(r->s) != NULL) {
            char *json = micro_error_to_json(micro_stream_error(r->s));
            printf("%s\n", json ? json : "{}");
            fflush(stdout);
            free(json);
            r->status = rc == MICRO_EREMOTE || rc == MICRO_ETIMEDOUT ? 1 : 2;
        } else {
            fprintf(stderr, "cmicro: %s\n", micro_strerror(rc));
            r->status = 2;
        }
        return NULL;
    }
}

/* One stdin line (without its newline) into *line; false at EOF. */
static bool
read_line(micro_buf *line)
{
    line->len = 0;
    int c;
    bool any = false;
    while ((c = getchar()) != EOF) {
        any = true;
        if (c == '\n') {
            return true;
        }
        char ch = (char) c;
        if (micro_buf_append(line, &ch, 1) != 0) {
            return false;
        }
    }
    return any;
}

int
cli_stream(micro_service *svc, const char *service, const char *endpoint,
    const micro_call_opts *opts, const char *descriptor_set)
{
    micro_call_opts o = *opts;
    o.size = sizeof(o);
    micro_proto_dyn *dyn = NULL;
    micro_proto_dyn_method_info mi;
    const struct ProtobufCMessageDescriptor *in_desc = NULL;
    reader r = {.status = 2};
    char ep[512];
    if (descriptor_set != NULL) {
        char err[512] = "";
        FILE *f = fopen(descriptor_set, "rb");
        micro_buf set = {0};
        char chunk[65536];
        size_t n;
        while (f != NULL && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
            micro_buf_append(&set, chunk, n);
        }
        if (f == NULL) {
            fprintf(stderr, "cmicro: cannot read %s\n", descriptor_set);
            return 2;
        }
        fclose(f);
        int rc = micro_proto_dyn_load(set.data, set.len, &dyn, err,
            sizeof(err));
        micro_buf_clear(&set);
        if (rc == 0) {
            rc = micro_proto_dyn_method(dyn, endpoint, &mi, err, sizeof(err));
        }
        if (rc != 0) {
            fprintf(stderr, "cmicro: %s: %s\n", descriptor_set, err);
            micro_proto_dyn_free(dyn);
            return 2;
        }
        if (o.content_type == NULL) {
            o.content_type = "application/protobuf";
        }
        in_desc = mi.input;
        r.out = mi.output;
        r.ct = o.content_type;
        /* Go Micro names the handler by the unqualified service name. */
        snprintf(ep, sizeof(ep), "%s.%s", mi.service_name, mi.method);
        endpoint = ep;
    }
    micro_stream *s = NULL;
    int rc = micro_client_stream(micro_service_client(svc), service,
        endpoint, &o, &s);
    if (rc != 0) {
        fprintf(stderr, "cmicro: stream %s %s: %s\n", service, endpoint,
            micro_strerror(rc));
        micro_proto_dyn_free(dyn);
        return rc == MICRO_EREMOTE ? 1 : 2;
    }
    r.s = s;
    pthread_t tid;
    if (pthread_create(&tid, NULL, read_replies, &r) != 0) {
        micro_stream_free(s);
        micro_proto_dyn_free(dyn);
        return 2;
    }
    micro_buf line = {0};
    micro_buf wire = {0};
    int send_rc = 0;
    while (send_rc == 0 && read_line(&line)) {
        if (line.len == 0) {
            continue;
        }
        if (in_desc != NULL) {
            char err[256] = "";
            struct ProtobufCMessage *m = NULL;
            send_rc = micro_pbjson_decode(in_desc, line.data, line.len, 0, &m,
                err, sizeof(err));
            wire.len = 0;
            if (send_rc == 0) {
                send_rc = micro_proto_encode(o.content_type, m, &wire);
            }
            micro_proto_free(m);
            if (send_rc != 0) {
                fprintf(stderr, "cmicro: a request is not a %s: %s\n",
                    mi.input_type, err);
                micro_stream_abort(s);
                break;
            }
            send_rc = micro_stream_send(s, wire.data, wire.len);
        } else {
            send_rc = micro_stream_send(s, line.data, line.len);
        }
    }
    micro_buf_clear(&line);
    micro_buf_clear(&wire);
    if (send_rc == 0) {
        micro_stream_close_send(s);
    }
    /* A failed send means the stream ended: the reader reports why. */
    pthread_join(tid, NULL);
    micro_stream_free(s);
    micro_proto_dyn_free(dyn);
    return r.status;
}
