/*
 * greeter-server: the Go Micro greeter, in C.
 *
 *   Greeter.Hello {"name":"John"}           -> {"msg":"Hello John"}
 *   Greeter.Meta  {"key":"X-Foo"}           -> {"value":"<metadata X-Foo>"}
 *   Greeter.Fail  {"code":409,"detail":"d"} -> that error
 *   Greeter.Slow  {"ms":500}                -> sleeps, then {"msg":"done"}
 *   Greeter.Call  {"address":"h:p","name":"N"} (address optional: by name)
 *                 -> calls greeter Greeter.Hello there and returns its reply
 *
 * Streams (Go Micro's client.Stream / server.Stream):
 *   Greeter.Stream        bidirectional: each {"name":X} is answered with
 *                         {"msg":"Hello X"}, until the client ends its side
 *   Greeter.ServerStream  {"name":X,"count":N} -> N x {"msg":"Hello X","n":i}
 *   Greeter.Sum           client-streaming: {"n":k}... then, once the client
 *                         ends its side, {"sum":S,"count":C}
 *   Greeter.StreamFail    as Stream; {"fail":CODE,"detail":D} ends the stream
 *                         with that error
 *
 * Flags and MICRO_* variables are Go Micro's: --server_address=127.0.0.1:0,
 * --registry=memory, ... (--help lists them). --no_inline runs every
 * handler on the worker pool (the benchmark uses it to measure that path).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmicro/micro.h>

static cJSON *
parse(micro_request *req)
{
    size_t len = 0;
    const char *body = micro_request_body(req, &len);
    return len ? cJSON_ParseWithLength(body, len) : cJSON_CreateObject();
}

static int
reply(micro_response *rsp, cJSON *obj)
{
    char *out = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (out == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = micro_response_set_body(rsp, out, strlen(out));
    cJSON_free(out);
    return rc;
}

static int
hello(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    cJSON *in = parse(req);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "name");
    if (!cJSON_IsString(name) || name->valuestring[0] == '\0') {
        cJSON_Delete(in);
        return micro_response_error(rsp, "greeter", 400, "name required");
    }
    /* Names of any length (the benchmark's 1 KB variant): a stack
     * buffer for the usual short name, the heap beyond it. */
    char small[256];
    size_t n = strlen(name->valuestring) + sizeof("Hello ");
    char *msg = n <= sizeof(small) ? small : malloc(n);
    if (msg == NULL) {
        cJSON_Delete(in);
        return MICRO_ENOMEM;
    }
    snprintf(msg, n, "Hello %s", name->valuestring);
    cJSON_Delete(in);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "msg", msg);
    if (msg != small) {
        free(msg);
    }
    return reply(rsp, out);
}

static int
meta(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    cJSON *in = parse(req);
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(in, "key");
    const char *v = cJSON_IsString(key)
        ? micro_request_header(req, key->valuestring)
        : NULL;
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "value", v ? v : "");
    cJSON_Delete(in);
    return reply(rsp, out);
}

static int
fail(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    cJSON *in = parse(req);
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(in, "code");
    const cJSON *detail = cJSON_GetObjectItemCaseSensitive(in, "detail");
    int c = cJSON_IsNumber(code) ? code->valueint : 500;
    int rc = micro_response_error(rsp, "greeter", c, "%s",
        cJSON_IsString(detail) ? detail->valuestring : "failed");
    cJSON_Delete(in);
    return rc;
}

static int
slow(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    cJSON *in = parse(req);
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(in, "ms");
    long n = cJSON_IsNumber(ms) ? (long) ms->valuedouble : 100;
    cJSON_Delete(in);
    struct timespec ts = {n / 1000, (n % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "msg", "done");
    return reply(rsp, out);
}

/* A handler that calls another service with the synchronous client. */
static int
call(micro_request *req, micro_response *rsp, void *arg)
{
    micro_service *svc = arg;
    cJSON *in = parse(req);
    const cJSON *addr = cJSON_GetObjectItemCaseSensitive(in, "address");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "name");
    cJSON *fwd = cJSON_CreateObject();
    cJSON_AddStringToObject(fwd, "name",
        cJSON_IsString(name) ? name->valuestring : "");
    char *body = cJSON_PrintUnformatted(fwd);
    cJSON_Delete(fwd);
    micro_call_opts o = {0};
    o.address = cJSON_IsString(addr) ? addr->valuestring : NULL;
    int64_t left = micro_request_remaining_ms(req);
    o.timeout_ms = left < 5000 ? (left > 0 ? left : 1) : 5000;
    micro_call *c = NULL;
    int rc = micro_client_call(micro_service_client(svc), "greeter",
        "Greeter.Hello", body, strlen(body), &o, &c);
    cJSON_free(body);
    cJSON_Delete(in);
    if (rc == 0) {
        size_t len = 0;
        const void *p = micro_call_body(c, &len);
        rc = micro_response_set_body(rsp, p, len);
    } else if (micro_call_error(c) != NULL) {
        const micro_error *e = micro_call_error(c);
        rc = micro_response_error(rsp, e->id, e->code, "%s",
            e->detail ? e->detail : "");
    }
    micro_call_free(c);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Streams. Stream and StreamFail answer each message with one: they run
 * inline on the loop and queue their answers (micro_stream_send_async);
 * the framework holds back the next message while the output is over the
 * window. ServerStream sends many answers per message and Sum may wait:
 * they run on the worker pool, where micro_stream_send waits for the
 * client to read (flow control). */

static cJSON *
parse_body(const void *body, size_t len)
{
    return len ? cJSON_ParseWithLength(body, len) : cJSON_CreateObject();
}

static int
send_json(micro_stream *s, cJSON *obj)
{
    char *out = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (out == NULL) {
        return MICRO_ENOMEM;
    }
    /* On the loop thread (inline handlers) queue; on a worker wait for
     * room. */
    int rc = micro_loop_is_current(micro_stream_loop(s))
        ? micro_stream_send_async(s, out, strlen(out), NULL, NULL)
        : micro_stream_send(s, out, strlen(out));
    cJSON_free(out);
    return rc;
}

static int
send_hello(micro_stream *s, const char *name, int n)
{
    size_t len = strlen(name) + sizeof("Hello ");
    char *msg = malloc(len);
    if (msg == NULL) {
        return MICRO_ENOMEM;
    }
    snprintf(msg, len, "Hello %s", name);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "msg", msg);
    if (n >= 0) {
        cJSON_AddNumberToObject(out, "n", n);
    }
    free(msg);
    return send_json(s, out);
}

static int
stream_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    bool can_fail = arg != NULL;
    cJSON *in = parse_body(body, len);
    const cJSON *fail_code = cJSON_GetObjectItemCaseSensitive(in, "fail");
    if (can_fail && cJSON_IsNumber(fail_code)) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(in, "detail");
        int rc = micro_stream_fail(s, "greeter", fail_code->valueint, "%s",
            cJSON_IsString(d) ? d->valuestring : "failed");
        cJSON_Delete(in);
        return rc;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "name");
    if (!cJSON_IsString(name) || name->valuestring[0] == '\0') {
        cJSON_Delete(in);
        return micro_stream_fail(s, "greeter", 400, "name required");
    }
    int rc = send_hello(s, name->valuestring, -1);
    cJSON_Delete(in);
    return rc;
}

static int
server_stream_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    cJSON *in = parse_body(body, len);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "name");
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(in, "count");
    if (!cJSON_IsString(name)) {
        cJSON_Delete(in);
        return micro_stream_fail(s, "greeter", 400, "name required");
    }
    int n = cJSON_IsNumber(count) ? count->valueint : 1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = send_hello(s, name->valuestring, i);
    }
    cJSON_Delete(in);
    if (rc == 0) {
        rc = micro_stream_close_send(s);
    }
    return rc;
}

typedef struct sum_state {
    double sum;
    long count;
} sum_state;

static int
sum_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    sum_state *st = micro_stream_data(s);
    if (st == NULL) {
        st = calloc(1, sizeof(*st));
        if (st == NULL) {
            return MICRO_ENOMEM;
        }
        micro_stream_set_data(s, st);
    }
    cJSON *in = parse_body(body, len);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(in, "n");
    if (cJSON_IsNumber(n)) {
        st->sum += n->valuedouble;
    }
    st->count++;
    cJSON_Delete(in);
    return 0;
}

static void
sum_end(micro_stream *s, int rc, void *arg)
{
    (void) arg;
    if (rc != MICRO_EOF) {
        return; /* canceled: nobody to answer */
    }
    sum_state *st = micro_stream_data(s);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "sum", st ? st->sum : 0);
    cJSON_AddNumberToObject(out, "count", st ? (double) st->count : 0);
    if (send_json(s, out) == 0) {
        micro_stream_close_send(s);
    }
}

static void
sum_close(micro_stream *s, int rc, void *arg)
{
    (void) rc;
    (void) arg;
    free(micro_stream_data(s));
}

static int
handle_streams(micro_server *srv)
{
    static const char can_fail = 1;
    micro_stream_handler h[] = {
        {.size = sizeof(micro_stream_handler), .endpoint = "Greeter.Stream",
            .on_msg = stream_msg, .flags = MICRO_HANDLER_INLINE},
        {.size = sizeof(micro_stream_handler),
            .endpoint = "Greeter.ServerStream", .on_msg = server_stream_msg},
        {.size = sizeof(micro_stream_handler), .endpoint = "Greeter.Sum",
            .on_msg = sum_msg, .on_end = sum_end, .on_close = sum_close},
        {.size = sizeof(micro_stream_handler),
            .endpoint = "Greeter.StreamFail", .on_msg = stream_msg,
            .arg = (void *) &can_fail, .flags = MICRO_HANDLER_INLINE},
    };
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++) {
        int rc = micro_server_handle_stream(srv, &h[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
announce(micro_service *svc, void *arg)
{
    (void) arg;
    printf("greeter-server listening on %s\n",
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
        fprintf(stderr, "greeter-server: %s\n", micro_strerror(rc));
        return 2;
    }
    static const micro_value name_field = {"name", "string", NULL, 0};
    static const micro_value msg_field = {"msg", "string", NULL, 0};
    const micro_value req_v = {"Request", "Request",
        (micro_value *) &name_field, 1};
    const micro_value rsp_v = {"Response", "Response",
        (micro_value *) &msg_field, 1};
    /* Hello, Meta and Fail never block: they run inline on the loop
     * thread, saving two thread hand-offs per call. Slow and Call block
     * (one sleeps, one calls another service) and run on the workers. */
    micro_handler_desc d = {.size = sizeof(d),
        .endpoint = "Greeter.Hello",
        .fn = hello,
        .request = &req_v, .response = &rsp_v,
        .flags = MICRO_HANDLER_INLINE};
    unsigned inl = MICRO_HANDLER_INLINE;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no_inline") == 0) {
            inl = 0;
        }
    }
    d.flags = inl;
    micro_server *srv = micro_service_server(svc);
    if (srv == NULL) {
        micro_service_free(svc);
        return 2;
    }
    rc = micro_server_handle(srv, &d);
    micro_handler_desc dm = {
        .size = sizeof(dm), .endpoint = "Greeter.Meta", .fn = meta,
        .flags = inl};
    micro_handler_desc df = {
        .size = sizeof(df), .endpoint = "Greeter.Fail", .fn = fail,
        .flags = inl};
    if (rc == 0) {
        rc = micro_server_handle(srv, &dm);
    }
    if (rc == 0) {
        rc = micro_server_handle(srv, &df);
    }
    if (rc == 0) {
        rc = micro_service_handle(svc, "Greeter.Slow", slow, NULL);
    }
    if (rc == 0) {
        rc = micro_service_handle(svc, "Greeter.Call", call, svc);
    }
    if (rc == 0) {
        rc = handle_streams(srv);
    }
    if (rc == 0) {
        rc = micro_service_add_hook(svc, MICRO_HOOK_AFTER_START, announce,
            NULL);
    }
    if (rc == 0) {
        rc = micro_service_run(svc);
    }
    if (rc != 0) {
        fprintf(stderr, "greeter-server: %s\n", micro_strerror(rc));
    }
    micro_service_free(svc);
    return rc == 0 ? 0 : 1;
}
