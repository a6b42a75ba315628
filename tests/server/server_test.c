/* In-process tests of the mucp server: one micro_loop, the http transport
 * and a micro_server, called through a micro_client on the same transport.
 * No processes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "support/support.h"

/* ------------------------------------------------------------------ */
/* Fixture.                                                             */

typedef struct fx {
    micro_loop *loop;
    micro_transport *tr;
    micro_server *srv;
    micro_client *cli;
    micro_options *opts;
    const char *addr;
} fx;

/* The wrapper/handler trace, shared by the threads that run handlers. */
static pthread_mutex_t trace_mu = PTHREAD_MUTEX_INITIALIZER;
static char trace[256];

static void
trace_add(const char *s)
{
    pthread_mutex_lock(&trace_mu);
    size_t l = strlen(trace);
    snprintf(trace + l, sizeof(trace) - l, "%s%s", l ? " " : "", s);
    pthread_mutex_unlock(&trace_mu);
}

static void
trace_reset(void)
{
    pthread_mutex_lock(&trace_mu);
    trace[0] = '\0';
    pthread_mutex_unlock(&trace_mu);
}

static int
h_echo(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    trace_add("H");
    size_t len = 0;
    const void *b = micro_request_body(req, &len);
    return micro_response_set_body(rsp, b, len);
}

/* Reports whether it runs on the server's loop thread. */
static int
h_where(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    fx *f = arg;
    char out[64];
    snprintf(out, sizeof(out), "{\"on_loop\":%d}",
        micro_loop_is_current(f->loop) ? 1 : 0);
    return micro_response_set_body(rsp, out, strlen(out));
}

/* Returns the code given in the body as a bare return code. */
static int
h_rc(micro_request *req, micro_response *rsp, void *arg)
{
    (void) rsp;
    (void) arg;
    size_t len = 0;
    const char *b = micro_request_body(req, &len);
    char tmp[32] = "";
    snprintf(tmp, sizeof(tmp), "%.*s", (int) (len < 31 ? len : 31), b);
    return (int) strtol(tmp, NULL, 10);
}

/* Echoes header X-User as header X-Echo and reports remaining ms. */
static int
h_meta(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    const char *u = micro_request_header(req, "x-user");
    int rc = micro_response_set_header(rsp, "X-Echo", u ? u : "(none)");
    if (rc != 0) {
        return rc;
    }
    char out[96];
    snprintf(out, sizeof(out), "{\"remaining\":%lld}",
        (long long) micro_request_remaining_ms(req));
    return micro_response_set_body(rsp, out, strlen(out));
}

static int
w_outer(micro_request *req, micro_response *rsp, micro_handler_chain *next,
    void *arg)
{
    (void) arg;
    trace_add("W1");
    if (micro_request_header(req, "X-Stop") != NULL) {
        trace_add("W1-stop");
        return micro_response_error(rsp, "wrapper", 403, "stopped by %s",
            "w_outer");
    }
    int rc = micro_handler_next(next, req, rsp);
    trace_add("W1-out");
    return rc;
}

static int
w_inner(micro_request *req, micro_response *rsp, micro_handler_chain *next,
    void *arg)
{
    (void) arg;
    trace_add("W2");
    int rc = micro_handler_next(next, req, rsp);
    trace_add("W2-out");
    return rc;
}

static int
fx_setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(micro_loop_new(&f->loop), 0);
    assert_int_equal(micro_options_new(&f->opts), 0);
    assert_int_equal(
        micro_options_set_str(f->opts, "server_address", "127.0.0.1:0"), 0);
    assert_int_equal(
        micro_options_set_str(f->opts, "server_name", "test.srv"), 0);
    assert_int_equal(
        micro_options_set_str(f->opts, "server_version", "1.2.3"), 0);
    assert_int_equal(micro_options_set_str(f->opts, "registry", "memory"), 0);
    assert_int_equal(micro_options_set_int(f->opts, "server_workers", 4), 0);
    assert_int_equal(micro_transport_new(&f->tr, &micro_transport_http_ops,
                         f->loop, f->opts),
        0);
    assert_int_equal(micro_server_new(&f->srv, f->loop, f->tr, f->opts), 0);
    /* Registered out of order, to check the record sorts them. */
    micro_handler_desc ds[] = {
        {.endpoint = "Test.Where", .fn = h_where, .arg = f},
        {.endpoint = "Test.Echo", .fn = h_echo},
        {.endpoint = "Test.Inline", .fn = h_where, .arg = f,
            .flags = MICRO_HANDLER_INLINE},
        {.endpoint = "Test.Rc", .fn = h_rc},
        {.endpoint = "Alpha.Meta", .fn = h_meta},
    };
    for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++) {
        assert_int_equal(micro_server_handle(f->srv, &ds[i]), 0);
    }
    assert_int_equal(micro_server_handle(f->srv, &ds[1]), MICRO_EEXIST);
    micro_handler_desc bad = {.endpoint = "NoDot", .fn = h_echo};
    assert_int_equal(micro_server_handle(f->srv, &bad), MICRO_EINVAL);
    assert_int_equal(micro_server_wrap(f->srv, w_outer, NULL), 0);
    assert_int_equal(micro_server_wrap(f->srv, w_inner, NULL), 0);
    assert_int_equal(micro_server_start(f->srv), 0);
    f->addr = micro_server_address(f->srv);
    assert_non_null(strstr(f->addr, "127.0.0.1:"));
    assert_true(strcmp(f->addr, "127.0.0.1:0") != 0);
    /* Registration is closed once started. */
    assert_int_equal(micro_server_handle(f->srv, &bad), MICRO_EINVAL);
    assert_int_equal(micro_server_wrap(f->srv, w_inner, NULL), MICRO_EINVAL);
    assert_int_equal(micro_client_new(&f->cli, f->tr, NULL, f->opts), 0);
    *state = f;
    return 0;
}

static int
fx_teardown(void **state)
{
    fx *f = *state;
    assert_int_equal(micro_server_stop(f->srv, 2000), 0);
    micro_server_free(f->srv);
    micro_client_free(f->cli);
    micro_transport_free(f->tr);
    micro_loop_free(f->loop);
    micro_options_free(f->opts);
    free(f);
    return 0;
}

/* A call to f's server; returns rc, *out the call (caller frees). */
static int
call(fx *f, const char *ep, const char *body, const micro_call_opts *o,
    micro_call **out)
{
    micro_call_opts d = {0};
    if (o != NULL) {
        d = *o;
    }
    d.address = f->addr;
    if (d.retries == 0) {
        d.retries = MICRO_CALL_NO_RETRY;
    }
    if (d.timeout_ms == 0) {
        d.timeout_ms = 5000;
    }
    return micro_client_call(f->cli, "test.srv", ep, body, strlen(body), &d,
        out);
}

/* The body as a string without the codec's trailing newline. */
static void
body_str(const micro_call *c, char *out, size_t cap)
{
    size_t len = 0;
    const char *b = micro_call_body(c, &len);
    while (len > 0 && (b[len - 1] == '\n' || b[len - 1] == ' ')) {
        len--;
    }
    snprintf(out, cap, "%.*s", (int) len, b);
}

/* Send req on a new connection to addr; read the response head. */
static int
raw_request(const char *addr, const char *req, char *head, size_t cap)
{
    const char *colon = strrchr(addr, ':');
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t) atoi(colon + 1));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *) &a, sizeof(a)) != 0 ||
        send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t) strlen(req)) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    size_t len = 0;
    int64_t until = t_now_ms() + 5000;
    head[0] = '\0';
    while (strstr(head, "\r\n\r\n") == NULL && len + 1 < cap &&
        t_now_ms() < until) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        ssize_t n = recv(fd, head + len, cap - 1 - len, 0);
        if (n <= 0) {
            break;
        }
        len += (size_t) n;
        head[len] = '\0';
    }
    close(fd);
    return strstr(head, "\r\n\r\n") != NULL ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Tests.                                                               */

static void
test_wrappers_order(void **state)
{
    fx *f = *state;
    micro_call *c = NULL;
    char b[128];
    trace_reset();
    assert_int_equal(call(f, "Test.Echo", "{\"a\":1}", NULL, &c), 0);
    body_str(c, b, sizeof(b));
    assert_string_equal(b, "{\"a\":1}");
    micro_call_free(c);
    pthread_mutex_lock(&trace_mu);
    assert_string_equal(trace, "W1 W2 H W2-out W1-out");
    pthread_mutex_unlock(&trace_mu);
}

static void
test_wrapper_short_circuit(void **state)
{
    fx *f = *state;
    micro_call *c = NULL;
    trace_reset();
    micro_header_kv md[] = {{"X-Stop", "1"}};
    micro_call_opts o = {.metadata = md, .n_metadata = 1};
    assert_int_equal(call(f, "Test.Echo", "{}", &o, &c), MICRO_EREMOTE);
    const micro_error *e = micro_call_error(c);
    assert_non_null(e);
    assert_int_equal(e->code, 403);
    assert_string_equal(e->id, "wrapper");
    assert_string_equal(e->detail, "stopped by w_outer");
    micro_call_free(c);
    pthread_mutex_lock(&trace_mu);
    assert_string_equal(trace, "W1 W1-stop"); /* the handler never ran */
    pthread_mutex_unlock(&trace_mu);
}

static void
test_inline_handler(void **state)
{
    fx *f = *state;
    micro_call *c = NULL;
    char b[128];
    assert_int_equal(call(f, "Test.Inline", "{}", NULL, &c), 0);
    body_str(c, b, sizeof(b));
    assert_string_equal(b, "{\"on_loop\":1}");
    micro_call_free(c);
    assert_int_equal(call(f, "Test.Where", "{}", NULL, &c), 0);
    body_str(c, b, sizeof(b));
    assert_string_equal(b, "{\"on_loop\":0}"); /* the worker pool */
    micro_call_free(c);
}

static void
test_bare_return_code(void **state)
{
    fx *f = *state;
    micro_call *c = NULL;
    char body[32];
    snprintf(body, sizeof(body), "%d", MICRO_ENOENT);
    assert_int_equal(call(f, "Test.Rc", body, NULL, &c), MICRO_EREMOTE);
    const micro_error *e = micro_call_error(c);
    assert_non_null(e);
    assert_int_equal(e->code, 500);
    assert_string_equal(e->id, "test.srv");
    assert_string_equal(e->detail, micro_strerror(MICRO_ENOENT));
    assert_string_equal(e->status, "Internal Server Error");
    micro_call_free(c);
    /* A bare MICRO_ETIMEDOUT is a 408, as the server documents. */
    snprintf(body, sizeof(body), "%d", MICRO_ETIMEDOUT);
    assert_int_equal(call(f, "Test.Rc", body, NULL, &c), MICRO_EREMOTE);
    e = micro_call_error(c);
    assert_non_null(e);
    assert_int_equal(e->code, 408);
    assert_string_equal(e->detail, micro_strerror(MICRO_ETIMEDOUT));
    micro_call_free(c);
}

static void
test_metadata_both_ways(void **state)
{
    fx *f = *state;
    micro_call *c = NULL;
    micro_header_kv md[] = {{"X-User", "alice"}};
    micro_call_opts o = {.metadata = md, .n_metadata = 1};
    assert_int_equal(call(f, "Alpha.Meta", "{}", &o, &c), 0);
    assert_non_null(micro_call_header(c, "X-Echo"));
    assert_string_equal(micro_call_header(c, "X-Echo"), "alice");
    assert_string_equal(micro_call_header(c, "x-echo"), "alice");
    micro_call_free(c);
    assert_int_equal(call(f, "Alpha.Meta", "{}", NULL, &c), 0);
    assert_string_equal(micro_call_header(c, "X-Echo"), "(none)");
    micro_call_free(c);
}

static void
test_deadline(void **state)
{
    fx *f = *state;
    micro_call *c = NULL;
    char b[128];
    micro_call_opts o = {.timeout_ms = 1500};
    assert_int_equal(call(f, "Alpha.Meta", "{}", &o, &c), 0);
    body_str(c, b, sizeof(b));
    long long rem = -1;
    assert_int_equal(sscanf(b, "{\"remaining\":%lld}", &rem), 1);
    assert_true(rem > 0);
    assert_true(rem <= 1500);
    micro_call_free(c);
}

static void
test_record(void **state)
{
    fx *f = *state;
    micro_registry_service r;
    assert_int_equal(micro_server_record(f->srv, &r), 0);
    assert_string_equal(r.name, "test.srv");
    assert_string_equal(r.version, "1.2.3");
    assert_int_equal(r.n_nodes, 1);
    const micro_node *n = &r.nodes[0];
    /* "<name>-<uuid>" */
    assert_int_equal(strncmp(n->id, "test.srv-", 9), 0);
    const char *u = n->id + 9;
    assert_int_equal(strlen(u), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(u[i], '-');
        } else {
            assert_non_null(strchr("0123456789abcdef", u[i]));
        }
    }
    assert_string_equal(n->address, f->addr);
    assert_string_equal(micro_metadata_get(&n->metadata, "protocol"), "mucp");
    assert_string_equal(micro_metadata_get(&n->metadata, "transport"),
        "http");
    assert_string_equal(micro_metadata_get(&n->metadata, "registry"),
        "memory");
    assert_string_equal(micro_metadata_get(&n->metadata, "server"), "mucp");
    assert_string_equal(micro_metadata_get(&n->metadata, "broker"), "http");
    /* Sorted; Debug.Health is served but not advertised. */
    const char *want[] = {"Alpha.Meta", "Test.Echo", "Test.Inline", "Test.Rc",
        "Test.Where"};
    assert_int_equal(r.n_endpoints, 5);
    for (size_t i = 0; i < r.n_endpoints; i++) {
        assert_string_equal(r.endpoints[i].name, want[i]);
        assert_non_null(r.endpoints[i].metadata.items); /* {} not null */
    }
    micro_registry_service_clear(&r);
    /* ...and Debug.Health does answer. */
    micro_call *c = NULL;
    char b[64];
    assert_int_equal(call(f, "Debug.Health", "{}", NULL, &c), 0);
    body_str(c, b, sizeof(b));
    assert_string_equal(b, "{\"status\":\"ok\"}");
    micro_call_free(c);
}

static void
test_stats(void **state)
{
    fx *f = *state;
    micro_server_stats s0, s1;
    micro_server_get_stats(f->srv, &s0);
    micro_call *c = NULL;
    /* one good request */
    assert_int_equal(call(f, "Test.Echo", "{}", NULL, &c), 0);
    micro_call_free(c);
    /* unknown method and unknown handler */
    assert_int_equal(call(f, "Test.Nope", "{}", NULL, &c), MICRO_EREMOTE);
    assert_int_equal(micro_call_error(c)->code, 404);
    assert_string_equal(micro_call_error(c)->detail,
        "rpc: can't find method Test.Nope");
    micro_call_free(c);
    assert_int_equal(call(f, "Nope.Echo", "{}", NULL, &c), MICRO_EREMOTE);
    assert_int_equal(micro_call_error(c)->code, 404);
    assert_string_equal(micro_call_error(c)->detail,
        "rpc: can't find service Nope");
    micro_call_free(c);
    /* an undecodable JSON body: a codec error */
    assert_int_equal(call(f, "Test.Echo", "{bad", NULL, &c), MICRO_EREMOTE);
    assert_int_equal(micro_call_error(c)->code, 400);
    micro_call_free(c);
    /* an unsupported content type: the client refuses to encode it, so
     * nothing reaches the server */
    micro_call_opts o = {.content_type = "application/x-nope"};
    assert_int_equal(call(f, "Test.Echo", "{}", &o, &c), MICRO_ECONTENTTYPE);
    micro_call_free(c);
    /* ...so send one raw: the server counts it as a codec error */
    char head[1024];
    assert_int_equal(raw_request(f->addr,
                         "POST / HTTP/1.1\r\nHost: x\r\n"
                         "Content-Type: application/x-nope\r\n"
                         "Micro-Service: test.srv\r\n"
                         "Micro-Endpoint: Test.Echo\r\n"
                         "Content-Length: 2\r\n\r\n{}",
                         head, sizeof(head)),
        0);
    assert_non_null(strstr(head, "HTTP/1.1 200"));
    assert_non_null(strstr(head, "unsupported Content-Type: "
                                 "application/x-nope"));
    micro_server_get_stats(f->srv, &s1);
    assert_int_equal(s1.requests - s0.requests, 5);
    assert_int_equal(s1.unknown - s0.unknown, 2);
    assert_int_equal(s1.codec_errors - s0.codec_errors, 2);
    assert_int_equal(s1.errors - s0.errors, 4);
    assert_int_equal(s1.inflight, 0);
    micro_transport_stats ts;
    micro_transport_get_stats(f->tr, &ts);
    assert_true(ts.requests >= s1.requests);
    assert_true(ts.accepted >= 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wrappers_order),
        cmocka_unit_test(test_wrapper_short_circuit),
        cmocka_unit_test(test_inline_handler),
        cmocka_unit_test(test_bare_return_code),
        cmocka_unit_test(test_metadata_both_ways),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_stats),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
