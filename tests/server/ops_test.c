/*
 * User-supplied client and server implementations: an in-process pair
 * where the client's call goes straight to micro_server_dispatch, through
 * the same handlers and wrappers that the mucp server uses.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <cmicro/micro.h>

/* --- an in-process server implementation ---------------------------- */
typedef struct inproc_srv {
    micro_server *srv;
    int started;
} inproc_srv;

static int
srv_init(void *st, micro_server *srv, micro_loop *loop, micro_transport *tr,
    const micro_options *opts)
{
    (void) loop;
    (void) tr;
    (void) opts;
    ((inproc_srv *) st)->srv = srv;
    return 0;
}

static int
srv_start(void *st)
{
    ((inproc_srv *) st)->started = 1;
    return 0;
}

static int
srv_stop(void *st, int64_t drain_ms)
{
    (void) drain_ms;
    ((inproc_srv *) st)->started = 0;
    return 0;
}

static const char *
srv_addr(void *st)
{
    (void) st;
    return "127.0.0.1:1";
}

static const micro_server_ops inproc_server_ops = {
    .abi = MICRO_SERVER_ABI,
    .name = "inproc",
    .state_size = sizeof(inproc_srv),
    .init = srv_init,
    .start = srv_start,
    .stop = srv_stop,
    .listen_address = srv_addr,
};

/* --- an in-process client implementation ---------------------------- */
static micro_server *the_server;

typedef struct inproc_cli {
    int calls;
} inproc_cli;

static int
cli_init(void *st, micro_transport *tr, micro_selector *sel,
    const micro_options *opts)
{
    (void) st;
    (void) tr;
    (void) sel;
    (void) opts;
    return 0;
}

static int
cli_call(void *st, micro_call_req *req, micro_call *call)
{
    inproc_cli *c = st;
    c->calls++;
    micro_msg *hdrs = NULL;
    micro_msg_new(&hdrs);
    for (size_t i = 0; i < req->opts.n_metadata; i++) {
        micro_msg_set_header(hdrs, req->opts.metadata[i].key,
            req->opts.metadata[i].value);
    }
    micro_dispatch d = {.endpoint = req->endpoint,
        .service = req->service,
        .headers = hdrs,
        .body = req->body,
        .len = req->len};
    int rc = micro_server_dispatch(the_server, &d);
    if (rc == 0) {
        micro_call_set_body(call, d.reply.data, d.reply.len);
    } else if (d.error != NULL) {
        micro_call_set_error(call, d.error->id, d.error->code,
            d.error->detail);
    }
    micro_call_set_address(call, "inproc");
    micro_dispatch_clear(&d);
    micro_msg_free(hdrs);
    return rc;
}

static const micro_client_ops inproc_client_ops = {
    .abi = MICRO_CLIENT_ABI,
    .name = "inproc",
    .state_size = sizeof(inproc_cli),
    .init = cli_init,
    .call = cli_call,
};

/* --- handlers and wrappers ------------------------------------------ */
static int
greet(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    const char *who = micro_request_header(req, "X-Who");
    char out[128];
    int n = snprintf(out, sizeof(out), "{\"msg\":\"Hello %s\"}",
        who ? who : "nobody");
    return micro_response_set_body(rsp, out, (size_t) n);
}

static int wrapped;

static int
count_wrapper(micro_request *req, micro_response *rsp,
    micro_handler_chain *next, void *arg)
{
    (void) arg;
    wrapped++;
    return micro_handler_next(next, req, rsp);
}

static void
test_user_client_and_server(void **state)
{
    (void) state;
    micro_loop *loop = NULL;
    micro_transport *tr = NULL;
    assert_int_equal(micro_loop_new(&loop), 0);
    assert_int_equal(micro_transport_new(&tr, &micro_transport_http_ops,
                         loop, NULL),
        0);
    assert_int_equal(micro_server_new_with_ops(&the_server,
                         &inproc_server_ops, loop, tr, NULL),
        0);
    micro_handler_desc d = {.endpoint = "Greeter.Hello", .fn = greet};
    assert_int_equal(micro_server_handle(the_server, &d), 0);
    assert_int_equal(micro_server_wrap(the_server, count_wrapper, NULL), 0);
    assert_int_equal(micro_server_start(the_server), 0);
    assert_string_equal(micro_server_address(the_server), "127.0.0.1:1");

    micro_client *cli = NULL;
    assert_int_equal(micro_client_new_with_ops(&cli, &inproc_client_ops, tr,
                         NULL, NULL),
        0);
    micro_header_kv md[] = {{"X-Who", "Ada"}};
    micro_call_opts o = {.metadata = md, .n_metadata = 1};
    micro_call *call = NULL;
    assert_int_equal(micro_client_call(cli, "greeter", "Greeter.Hello", "{}",
                         2, &o, &call),
        0);
    size_t len = 0;
    const char *body = micro_call_body(call, &len);
    assert_int_equal(len, strlen("{\"msg\":\"Hello Ada\"}"));
    assert_memory_equal(body, "{\"msg\":\"Hello Ada\"}", len);
    assert_string_equal(micro_call_address(call), "inproc");
    micro_call_free(call);
    assert_int_equal(wrapped, 1);

    /* Routing errors come back in Go Micro's shape through the table. */
    call = NULL;
    assert_int_equal(micro_client_call(cli, "greeter", "Greeter.Nope", "{}",
                         2, NULL, &call),
        MICRO_EREMOTE);
    assert_int_equal(micro_call_error(call)->code, 404);
    assert_string_equal(micro_call_error(call)->detail,
        "rpc: can't find method Greeter.Nope");
    micro_call_free(call);

    /* A table with a wrong ABI or missing slot is refused. */
    micro_client_ops bad = inproc_client_ops;
    bad.abi = 99;
    micro_client *c2 = NULL;
    assert_int_equal(micro_client_new_with_ops(&c2, &bad, tr, NULL, NULL),
        MICRO_EINVAL);
    micro_server_ops sbad = inproc_server_ops;
    sbad.start = NULL;
    micro_server *s2 = NULL;
    assert_int_equal(micro_server_new_with_ops(&s2, &sbad, loop, tr, NULL),
        MICRO_EINVAL);

    micro_server_stats st;
    micro_server_get_stats(the_server, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.unknown, 1);
    assert_int_equal(st.errors, 1);

    micro_client_free(cli);
    assert_int_equal(micro_server_stop(the_server, 0), 0);
    micro_server_free(the_server);
    micro_transport_free(tr);
    micro_loop_free(loop);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_client_and_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
