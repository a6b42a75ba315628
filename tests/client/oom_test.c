/*
 * Out-of-memory torture (tests/support/failalloc.h) of a unary call and a
 * stream over the http transport, client and server in one process, each
 * side in turn:
 *
 *  - a unary micro_client_call: the caller's thread armed (the blocking
 *    client runs there); then the server's loop thread and its worker
 *    armed together (a failalloc group);
 *  - a stream: open, send 2 messages, receive the 2 echoes, half-close,
 *    read EOF; the caller's thread and the client's loop armed together,
 *    then the server's loop and worker.
 *
 * Each allocation of the operation fails in turn (then it and every later
 * one). Every case must end with a clear error (or a closed connection,
 * which the caller sees as one) promptly, never by running into its
 * deadline; leak nothing (LeakSanitizer in the ASan tier); and the next
 * call or stream on the same client and server must succeed. A watchdog
 * turns a deadlock (a drain that never ends, a join that never returns)
 * into a failure with a message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include "support/failalloc.h"
#include "support/support.h"

#define CT "application/octet-stream"

/* An operation that takes this long ran into a deadline: a stall. */
#define PROMPT_MS 4000

enum { SIDE_CLIENT, SIDE_SERVER };

typedef struct pair {
    int side;
    bool stream;
    bool fail; /* call T.Fail: the answer is an error */
    micro_options *opts;
    micro_loop *sloop, *cloop;
    micro_transport *str, *ctr;
    micro_server *srv;
    micro_client *cli;
    micro_transport *jtr; /* setup's own client (not tortured) */
    micro_client *jcli;
    char addr[64];
    int64_t took; /* ms the last op took */
} pair;

/* --- handlers ----------------------------------------------------------- */

static int
h_echo(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t len = 0;
    const void *b = micro_request_body(req, &len);
    if (micro_response_set_header(rsp, "X-Echo", "1") != 0) {
        return MICRO_ENOMEM;
    }
    return micro_response_set_body(rsp, b, len);
}

static int
h_fail(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) arg;
    return micro_response_error(rsp, "t", 409, "refused as asked");
}

/* Makes the worker that runs it a member of the failalloc group. */
static int
h_join(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) rsp;
    (void) arg;
    failalloc_join();
    return 0;
}

static int
s_echo(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    return micro_stream_send(s, body, len);
}

/* --- the pair ------------------------------------------------------------ */

typedef struct posted {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    void (*fn)(void *);
    void *arg;
} posted;

static void
posted_run(void *arg)
{
    posted *p = arg;
    p->fn(p->arg);
    pthread_mutex_lock(&p->mu);
    p->done = true;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Run fn on loop's thread and wait for it. */
static void
on_loop(micro_loop *loop, void (*fn)(void *), void *arg)
{
    posted p = {.done = false};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    p.fn = fn;
    p.arg = arg;
    assert_int_equal(micro_loop_post(loop, posted_run, &p), 0);
    pthread_mutex_lock(&p.mu);
    while (!p.done) {
        pthread_cond_wait(&p.cv, &p.mu);
    }
    pthread_mutex_unlock(&p.mu);
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
}

static void
join_fn(void *arg)
{
    (void) arg;
    failalloc_join();
}

/* Make loop's thread a member of the group. */
static void
join_loop(micro_loop *loop)
{
    on_loop(loop, join_fn, NULL);
}

/*
 * libuv aborts when it cannot grow its array of watched descriptors
 * (maybe_resize in src/unix/core.c, up to libuv 1.44 at least): a limit of
 * the dependency, not a failure cmicro could answer. Grow it beforehand,
 * by watching a descriptor numbered above any this test opens, so that no
 * allocation the torture fails is that one.
 */
typedef struct grow {
    uv_poll_t poll;
    int fd;
} grow;

static void
grow_closed(uv_handle_t *h)
{
    grow *g = h->data;
    close(g->fd);
    free(g);
}

static void
grow_cb(uv_poll_t *h, int status, int events)
{
    (void) h;
    (void) status;
    (void) events;
}

static void
grow_fn(void *arg)
{
    micro_loop *loop = arg;
    grow *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    g->fd = fcntl(fds[0], F_DUPFD_CLOEXEC, 900);
    assert_true(g->fd >= 900);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(uv_poll_init(micro_loop_uv(loop), &g->poll, g->fd), 0);
    g->poll.data = g;
    assert_int_equal(uv_poll_start(&g->poll, UV_READABLE, grow_cb), 0);
    uv_poll_stop(&g->poll);
    uv_close((uv_handle_t *) &g->poll, grow_closed);
}

static void
grow_watchers(micro_loop *loop)
{
    on_loop(loop, grow_fn, loop);
}

static int
pair_setup(void *arg)
{
    pair *p = arg;
    t_watchdog(60, p->stream ? "stream torture iteration"
                             : "unary call torture iteration");
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    p->opts = o;
    assert_int_equal(micro_options_set_str(o, "server_address",
                         "127.0.0.1:0"), 0);
    assert_int_equal(micro_options_set_int(o, "server_workers", 1), 0);
    assert_int_equal(micro_options_set_int(o, "client_retries", 0), 0);
    assert_int_equal(micro_loop_new(&p->sloop), 0);
    assert_int_equal(micro_loop_new(&p->cloop), 0);
    grow_watchers(p->sloop);
    grow_watchers(p->cloop);
    assert_int_equal(micro_transport_new_by_name(&p->str, "http", p->sloop,
                         o), 0);
    assert_int_equal(micro_transport_new_by_name(&p->ctr, "http", p->cloop,
                         o), 0);
    assert_int_equal(micro_transport_new_by_name(&p->jtr, "http", p->cloop,
                         o), 0);
    assert_int_equal(micro_server_new(&p->srv, p->sloop, p->str, o), 0);
    micro_handler_desc d = {.endpoint = "T.Echo", .fn = h_echo};
    assert_int_equal(micro_server_handle(p->srv, &d), 0);
    micro_handler_desc f = {.endpoint = "T.Fail", .fn = h_fail};
    assert_int_equal(micro_server_handle(p->srv, &f), 0);
    micro_handler_desc j = {.endpoint = "T.Join", .fn = h_join};
    assert_int_equal(micro_server_handle(p->srv, &j), 0);
    micro_stream_handler sh = {.size = sizeof(sh), .endpoint = "T.Stream",
        .on_msg = s_echo};
    assert_int_equal(micro_server_handle_stream(p->srv, &sh), 0);
    assert_int_equal(micro_server_start(p->srv), 0);
    snprintf(p->addr, sizeof(p->addr), "%s", micro_transport_address(p->str));
    assert_int_equal(micro_client_new(&p->cli, p->ctr, NULL, o), 0);
    assert_int_equal(micro_client_new(&p->jcli, p->jtr, NULL, o), 0);
    if (p->side == SIDE_SERVER) {
        /* The worker (there is one) and the loop join; through the setup
         * client, so that the tortured client's first call dials. */
        micro_call_opts co = MICRO_CALL_OPTS_INIT;
        co.address = p->addr;
        co.content_type = CT;
        micro_call *c = NULL;
        assert_int_equal(micro_client_call(p->jcli, "t", "T.Join", "", 0,
                             &co, &c), 0);
        micro_call_free(c);
        join_loop(p->sloop);
    } else if (p->stream) {
        failalloc_join();
        join_loop(p->cloop);
    }
    return 0;
}

static void
pair_teardown(void *arg)
{
    pair *p = arg;
    failalloc_leave();
    micro_client_free(p->cli);
    micro_client_free(p->jcli);
    /* A stream or request the torture left half-done would hold the drain
     * (2 s, then a log line) and then micro_server_free for ever: the
     * watchdog says so. */
    int rc = micro_server_stop(p->srv, 2000);
    if (rc != 0) {
        fprintf(stderr, "server stop: %s\n", micro_err_name(rc));
    }
    assert_int_equal(rc, 0);
    micro_server_free(p->srv);
    micro_transport_free(p->jtr);
    micro_transport_free(p->ctr);
    micro_transport_free(p->str);
    micro_loop_free(p->cloop);
    micro_loop_free(p->sloop);
    micro_options_free(p->opts);
    p->opts = NULL;
    t_watchdog(0, NULL);
}

/* --- the operations ------------------------------------------------------ */

static int
unary_op(void *arg)
{
    pair *p = arg;
    int64_t t0 = t_now_ms();
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = p->addr;
    o.content_type = CT;
    o.timeout_ms = 10000;
    o.retries = MICRO_CALL_NO_RETRY;
    micro_call *c = NULL;
    int rc = micro_client_call(p->cli, "t", p->fail ? "T.Fail" : "T.Echo",
        "hello", 5, &o, &c);
    if (p->fail) {
        /* The handler's error, or a failure of the exchange: never a
         * success (an error whose Micro-Error header could not be made
         * went out as an empty success before). */
        const micro_error *e = micro_call_error(c);
        if (rc == 0) {
            rc = MICRO_EPROTO; /* not allowed */
        } else if (rc == MICRO_EREMOTE && e != NULL && e->code == 409) {
            rc = 0; /* what it answers when nothing fails */
        }
    } else if (rc == 0) {
        size_t len = 0;
        const void *b = micro_call_body(c, &len);
        if (len != 5 || memcmp(b, "hello", 5) != 0) {
            rc = MICRO_EPROTO; /* not allowed: a wrong answer */
        }
    } else if (rc == MICRO_EREMOTE) {
        const micro_error *e = micro_call_error(c);
        print_message("    remote error %d: %s\n", e ? (int) e->code : -1,
            e ? e->detail : "");
    }
    micro_call_free(c);
    p->took = t_now_ms() - t0;
    return rc;
}

static int
recv_is(micro_stream *s, const char *want)
{
    micro_buf b = {0};
    int rc = micro_stream_recv(s, &b);
    if (rc == 0 && (b.len != strlen(want) ||
                       memcmp(b.data, want, b.len) != 0)) {
        rc = MICRO_EPROTO; /* not allowed */
    }
    micro_buf_clear(&b);
    return rc;
}

static int
stream_op(void *arg)
{
    pair *p = arg;
    int64_t t0 = t_now_ms();
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = p->addr;
    o.content_type = CT;
    o.timeout_ms = 10000;
    o.retries = MICRO_CALL_NO_RETRY;
    o.stream_timeout_ms = 10000;
    micro_stream *s = NULL;
    int rc = micro_client_stream(p->cli, "t", "T.Stream", &o, &s);
    if (rc == 0) {
        rc = micro_stream_send(s, "m1", 2);
    }
    if (rc == 0) {
        rc = micro_stream_send(s, "m2", 2);
    }
    if (rc == 0) {
        rc = recv_is(s, "m1");
    }
    if (rc == 0) {
        rc = recv_is(s, "m2");
    }
    if (rc == 0) {
        rc = micro_stream_close_send(s);
    }
    if (rc == 0) {
        micro_buf b = {0};
        rc = micro_stream_recv(s, &b);
        micro_buf_clear(&b);
        rc = rc == MICRO_EOF ? 0 : (rc == 0 ? MICRO_EPROTO : rc);
    }
    if (rc == MICRO_EREMOTE && s != NULL) {
        const micro_error *e = micro_stream_error(s);
        print_message("    remote error %d: %s\n", e ? (int) e->code : -1,
            e ? e->detail : "");
    }
    micro_stream_free(s);
    p->took = t_now_ms() - t0;
    return rc;
}

/* Healthy again: the op was prompt, and the same op now succeeds on the
 * same client and server. */
static int
check_next(void *arg, int rc)
{
    pair *p = arg;
    if (p->took >= PROMPT_MS) {
        fail_msg("the operation took %lld ms (rc %s): it waited for a "
                 "deadline instead of failing",
            (long long) p->took, micro_err_name(rc));
    }
    int rc2 = p->stream ? stream_op(p) : unary_op(p);
    if (rc2 != 0) {
        fail_msg("after a failure (%s), the next %s failed: %s",
            micro_err_name(rc), p->stream ? "stream" : "call",
            micro_err_name(rc2));
    }
    return 0;
}

/* --- the cases ---------------------------------------------------------- */

/* The caller's side: its own allocation failures come back as
 * MICRO_ENOMEM. A failure in the loop's reading of a stream (the client's
 * loop is armed too) ends the stream: the caller sees MICRO_ENOMEM, or the
 * connection lost when the failure closed it. */
static const int client_codes[] = {MICRO_ENOMEM, MICRO_ECONNRESET, 0};
/* The server's side: the caller sees a closed connection, or an error
 * answer (500) when the server could still say why. */
static const int server_codes[] = {MICRO_ECONNRESET, MICRO_EREMOTE, 0};

static void
torture(int side, bool stream, bool fail)
{
    pair p;
    memset(&p, 0, sizeof(p));
    p.side = side;
    p.stream = stream;
    p.fail = fail;
    char name[96];
    snprintf(name, sizeof(name), "%s, %s side", stream ? "a stream"
        : fail ? "a unary call answered with an error" : "a unary call",
        side == SIDE_CLIENT ? "client" : "server");
    failalloc_case c = {.name = name,
        .arg = &p,
        .setup = pair_setup,
        .op = stream ? stream_op : unary_op,
        .check = check_next,
        .teardown = pair_teardown,
        .allowed = side == SIDE_CLIENT ? client_codes : server_codes,
        .group = side == SIDE_SERVER || stream};
    assert_true(failalloc_run(&c) > 0);
}

static void
test_unary_client(void **state)
{
    (void) state;
    torture(SIDE_CLIENT, false, false);
}

static void
test_unary_server(void **state)
{
    (void) state;
    torture(SIDE_SERVER, false, false);
}

static void
test_unary_error_server(void **state)
{
    (void) state;
    torture(SIDE_SERVER, false, true);
}

static void
test_stream_client(void **state)
{
    (void) state;
    torture(SIDE_CLIENT, true, false);
}

static void
test_stream_server(void **state)
{
    (void) state;
    torture(SIDE_SERVER, true, false);
}

int
main(void)
{
    if (failalloc_install() != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_client),
        cmocka_unit_test(test_unary_server),
        cmocka_unit_test(test_unary_error_server),
        cmocka_unit_test(test_stream_client),
        cmocka_unit_test(test_stream_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
