/*
 * ABI growth of the public structs callers fill in: each starts with
 * `size_t size`. A struct with size 0 is read as the first version; one
 * from a "future" caller (a bigger size, fields this library does not
 * know) is accepted; and nothing beyond what size covers is read: the
 * structs here end exactly at a PROT_NONE page, so an over-read faults.
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
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/loop_internal.h"
#include "google/protobuf/empty.pb-c.h"
#include "support/support.h"

/* The end of each struct's first version. */
#define V1(type, last) (offsetof(type, last) + sizeof(((type *) 0)->last))

/* ------------------------------------------------------------------ */
/* Memory that ends at a guard page, and memory with poison after.     */

typedef struct guard {
    void *map;
    size_t len;
} guard;

static guard guards[32];
static size_t n_guards;

/* n bytes (8-aligned) that end at most 7 bytes before a PROT_NONE page,
 * filled with poison. */
static void *
guarded(size_t n)
{
    size_t page = (size_t) sysconf(_SC_PAGESIZE);
    assert_true(n <= page);
    char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + page, page, PROT_NONE), 0);
    assert_true(n_guards < sizeof(guards) / sizeof(guards[0]));
    guards[n_guards].map = m;
    guards[n_guards].len = 2 * page;
    n_guards++;
    size_t at = page - ((n + 7) & ~(size_t) 7);
    memset(m + at, 0xA5, page - at);
    return m + at;
}

static void
guards_free(void)
{
    for (size_t i = 0; i < n_guards; i++) {
        munmap(guards[i].map, guards[i].len);
    }
    n_guards = 0;
}

/* A "future" caller's struct: sizeof(T) + 64 bytes, poison after what the
 * caller copies in, size set to the whole. */
#define FUTURE_EXTRA 64
static void *
future(const void *v, size_t n)
{
    char *p = malloc(n + FUTURE_EXTRA);
    assert_non_null(p);
    memset(p, 0xA5, n + FUTURE_EXTRA);
    memcpy(p, v, n);
    size_t size = n + FUTURE_EXTRA;
    memcpy(p, &size, sizeof(size));
    return p;
}

/* ------------------------------------------------------------------ */
/* A server (not listening unless started) on the http transport.      */

typedef struct fx {
    micro_loop *loop;
    micro_transport *tr;
    micro_server *srv;
    micro_options *opts;
} fx;

static int
fx_setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    micro_log_set_logger(micro_log_null, NULL);
    assert_int_equal(micro_loop_new(&f->loop), 0);
    assert_int_equal(micro_options_new(&f->opts), 0);
    assert_int_equal(
        micro_options_set_str(f->opts, "server_address", "127.0.0.1:0"), 0);
    assert_int_equal(micro_options_set_str(f->opts, "server_name", "abi"), 0);
    assert_int_equal(micro_transport_new(&f->tr, &micro_transport_http_ops,
                         f->loop, f->opts),
        0);
    assert_int_equal(micro_server_new(&f->srv, f->loop, f->tr, f->opts), 0);
    *state = f;
    return 0;
}

static int
fx_teardown(void **state)
{
    fx *f = *state;
    micro_server_stop(f->srv, 1000);
    micro_server_free(f->srv);
    micro_transport_free(f->tr);
    micro_loop_free(f->loop);
    micro_options_free(f->opts);
    free(f);
    guards_free();
    micro_log_set_logger(NULL, NULL);
    return 0;
}

/* The endpoint of the server's record, or NULL. */
static const micro_endpoint *
endpoint(const micro_registry_service *r, const char *name)
{
    for (size_t i = 0; i < r->n_endpoints; i++) {
        if (strcmp(r->endpoints[i].name, name) == 0) {
            return &r->endpoints[i];
        }
    }
    return NULL;
}

static int
h_tag(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    const char *tag = arg;
    return micro_response_set_body(rsp, tag, strlen(tag));
}

/* Dispatch endpoint in-process; the reply body, or "" on error. */
static void
dispatch(micro_server *s, const char *ep, char *out, size_t cap)
{
    micro_dispatch d = {.endpoint = ep, .body = "{}", .len = 2};
    int rc = micro_server_dispatch(s, &d);
    snprintf(out, cap, "%.*s", rc == 0 ? (int) d.reply.len : 0,
        rc == 0 ? (const char *) d.reply.data : "");
    micro_dispatch_clear(&d);
}

static void
test_handler_desc(void **state)
{
    fx *f = *state;
    static const micro_value req = {"Req", "Req", NULL, 0};
    /* size 0: the first version, every field of it read (flags last). */
    micro_handler_desc zero = {.endpoint = "A.Zero",
        .fn = h_tag,
        .arg = "zero",
        .request = &req};
    assert_int_equal(micro_server_handle(f->srv, &zero), 0);
    micro_handler_desc hidden = {.endpoint = "A.Hidden",
        .fn = h_tag,
        .arg = "hidden",
        .flags = MICRO_HANDLER_INTERNAL};
    assert_int_equal(micro_server_handle(f->srv, &hidden), 0);
    /* This version, ending at a guard page. */
    micro_handler_desc *g = guarded(sizeof(*g));
    *g = (micro_handler_desc) {.size = sizeof(*g),
        .endpoint = "A.Guard",
        .fn = h_tag,
        .arg = "guard"};
    assert_int_equal(micro_server_handle(f->srv, g), 0);
    /* The first version with size 0, ending at a guard page. */
    micro_handler_desc *g1 = guarded(V1(micro_handler_desc, flags));
    memcpy(g1, &(micro_handler_desc) {.endpoint = "A.V1",
               .fn = h_tag,
               .arg = "v1",
               .flags = MICRO_HANDLER_INTERNAL},
        V1(micro_handler_desc, flags));
    assert_int_equal(micro_server_handle(f->srv, g1), 0);
    /* A future caller's bigger struct. */
    micro_handler_desc fd = {.size = sizeof(fd),
        .endpoint = "A.Future",
        .fn = h_tag,
        .arg = "future"};
    micro_handler_desc *fp = future(&fd, sizeof(fd));
    assert_int_equal(micro_server_handle(f->srv, fp), 0);
    free(fp);
    assert_int_equal(micro_server_handle(f->srv, NULL), MICRO_EINVAL);

    char out[32];
    static const char *const eps[][2] = {{"A.Zero", "zero"},
        {"A.Hidden", "hidden"}, {"A.Guard", "guard"}, {"A.V1", "v1"},
        {"A.Future", "future"}};
    for (size_t i = 0; i < 5; i++) {
        dispatch(f->srv, eps[i][0], out, sizeof(out));
        assert_string_equal(out, eps[i][1]);
    }
    micro_registry_service r = {0};
    assert_int_equal(micro_server_record(f->srv, &r), 0);
    assert_non_null(endpoint(&r, "A.Zero"));
    assert_string_equal(endpoint(&r, "A.Zero")->request->name, "Req");
    assert_null(endpoint(&r, "A.Hidden")); /* flags read with size 0 */
    assert_null(endpoint(&r, "A.V1"));
    assert_non_null(endpoint(&r, "A.Guard"));
    assert_non_null(endpoint(&r, "A.Future"));
    micro_registry_service_clear(&r);
}

static int
s_msg(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) s;
    (void) body;
    (void) len;
    (void) arg;
    return 0;
}

static void
test_stream_handler(void **state)
{
    fx *f = *state;
    micro_stream_handler zero = {.endpoint = "S.Zero", .on_msg = s_msg};
    assert_int_equal(micro_server_handle_stream(f->srv, &zero), 0);
    size_t v1 = V1(micro_stream_handler, response);
    micro_stream_handler *g1 = guarded(v1);
    memcpy(g1, &(micro_stream_handler) {.endpoint = "S.V1",
               .on_msg = s_msg,
               .flags = MICRO_HANDLER_INTERNAL},
        v1);
    assert_int_equal(micro_server_handle_stream(f->srv, g1), 0);
    micro_stream_handler *g = guarded(sizeof(*g));
    *g = (micro_stream_handler) MICRO_STREAM_HANDLER_INIT;
    g->endpoint = "S.Guard";
    g->on_msg = s_msg;
    assert_int_equal(micro_server_handle_stream(f->srv, g), 0);
    micro_stream_handler fd = {.size = sizeof(fd),
        .endpoint = "S.Future",
        .on_msg = s_msg};
    micro_stream_handler *fp = future(&fd, sizeof(fd));
    assert_int_equal(micro_server_handle_stream(f->srv, fp), 0);
    free(fp);
    assert_int_equal(micro_server_handle_stream(f->srv, NULL), MICRO_EINVAL);

    micro_registry_service r = {0};
    assert_int_equal(micro_server_record(f->srv, &r), 0);
    const micro_endpoint *e = endpoint(&r, "S.Zero");
    assert_non_null(e);
    assert_string_equal(micro_metadata_get(&e->metadata, "stream"), "true");
    assert_null(endpoint(&r, "S.V1"));
    assert_non_null(endpoint(&r, "S.Guard"));
    assert_non_null(endpoint(&r, "S.Future"));
    micro_registry_service_clear(&r);
}

static int
on_sub(micro_request *msg, void *arg)
{
    (void) msg;
    (void) arg;
    return 0;
}

static void
test_subscriber_desc(void **state)
{
    fx *f = *state;
    micro_subscriber_desc zero = {.topic = "t.zero",
        .fn = on_sub,
        .name = "Zero.Handler",
        .queue_limit = 8};
    assert_int_equal(micro_server_subscribe(f->srv, &zero), 0);
    size_t v1 = V1(micro_subscriber_desc, queue_limit);
    micro_subscriber_desc *g1 = guarded(v1);
    memcpy(g1, &(micro_subscriber_desc) {.topic = "t.v1",
               .fn = on_sub,
               .name = "V1.Handler",
               .queue_limit = 8},
        v1);
    assert_int_equal(micro_server_subscribe(f->srv, g1), 0);
    micro_subscriber_desc *g = guarded(sizeof(*g));
    *g = (micro_subscriber_desc) MICRO_SUBSCRIBER_DESC_INIT;
    g->topic = "t.guard";
    g->fn = on_sub;
    assert_int_equal(micro_server_subscribe(f->srv, g), 0);
    micro_subscriber_desc fd = {.size = sizeof(fd),
        .topic = "t.future",
        .fn = on_sub};
    micro_subscriber_desc *fp = future(&fd, sizeof(fd));
    assert_int_equal(micro_server_subscribe(f->srv, fp), 0);
    free(fp);
    assert_int_equal(micro_server_subscribe(f->srv, NULL), MICRO_EINVAL);

    micro_registry_service r = {0};
    assert_int_equal(micro_server_record(f->srv, &r), 0);
    const micro_endpoint *e = endpoint(&r, "Zero.Handler");
    assert_non_null(e);
    assert_string_equal(micro_metadata_get(&e->metadata, "topic"), "t.zero");
    assert_non_null(endpoint(&r, "V1.Handler"));
    assert_non_null(endpoint(&r, "t.guard"));
    assert_non_null(endpoint(&r, "t.future"));
    micro_registry_service_clear(&r);
}

/* ------------------------------------------------------------------ */
/* Broker subscriptions and publishing.                                */

typedef struct seen {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    char hdr[64];
    char ct[64];
} seen;

static int
on_event(micro_event *ev, void *arg)
{
    seen *s = arg;
    const char *h = micro_event_header(ev, "X-K");
    const char *ct = micro_event_header(ev, "Content-Type");
    pthread_mutex_lock(&s->mu);
    snprintf(s->hdr, sizeof(s->hdr), "%s", h ? h : "-");
    snprintf(s->ct, sizeof(s->ct), "%s", ct ? ct : "-");
    s->n++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void
wait_seen(seen *s, int n)
{
    int64_t until = t_now_ms() + 5000;
    pthread_mutex_lock(&s->mu);
    while (s->n < n && t_now_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    assert_true(s->n >= n);
    pthread_mutex_unlock(&s->mu);
}

static void
test_sub_opts(void **state)
{
    (void) state;
    micro_broker *b = NULL;
    assert_int_equal(micro_broker_new_by_name(&b, "memory", NULL, NULL, NULL),
        0);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    micro_sub *sub = NULL;
    size_t v1 = V1(micro_sub_opts, queue_limit);
    micro_sub_opts *g1 = guarded(v1);
    memcpy(g1, &(micro_sub_opts) {.queue = "g1", .queue_limit = 4}, v1);
    assert_int_equal(micro_broker_subscribe(b, "t", g1, on_event, &s, &sub),
        0);
    assert_string_equal(micro_sub_queue(sub), "g1");
    micro_sub_opts *g = guarded(sizeof(*g));
    *g = (micro_sub_opts) MICRO_SUB_OPTS_INIT;
    g->queue = "g2";
    assert_int_equal(micro_broker_subscribe(b, "t", g, on_event, &s, &sub),
        0);
    assert_string_equal(micro_sub_queue(sub), "g2");
    micro_sub_opts fd = {.size = sizeof(fd), .queue = "g3"};
    micro_sub_opts *fp = future(&fd, sizeof(fd));
    assert_int_equal(micro_broker_subscribe(b, "t", fp, on_event, &s, &sub),
        0);
    free(fp);
    assert_string_equal(micro_sub_queue(sub), "g3");
    assert_int_equal(micro_broker_subscribe(b, "t", NULL, on_event, &s, &sub),
        0);
    assert_string_equal(micro_sub_queue(sub), "");
    micro_broker_free(b);
}

static int
pub_wrap(micro_publication *p, micro_publish_chain *next, void *arg)
{
    size_t *size = arg;
    *size = p->opts.size;
    return micro_publish_next(next, p);
}

static void
test_publish_opts(void **state)
{
    fx *f = *state;
    micro_broker *b = NULL;
    assert_int_equal(micro_broker_new_by_name(&b, "memory", NULL, NULL, NULL),
        0);
    micro_client *c = NULL;
    assert_int_equal(micro_client_new(&c, f->tr, NULL, f->opts), 0);
    assert_int_equal(micro_client_set_broker(c, b), 0);
    size_t wrapper_saw = 0;
    assert_int_equal(micro_client_wrap_publish(c, pub_wrap, &wrapper_saw), 0);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(micro_broker_subscribe(b, "t", NULL, on_event, &s, NULL),
        0);
    static const micro_header_kv md[] = {{"X-K", "v1"}};
    /* size 0, ending at a guard page: metadata (the last v1 field) read. */
    size_t v1 = V1(micro_publish_opts, n_metadata);
    micro_publish_opts *g1 = guarded(v1);
    memcpy(g1, &(micro_publish_opts) {.content_type = "application/json",
               .metadata = md,
               .n_metadata = 1},
        v1);
    assert_int_equal(micro_client_publish(c, "t", "{}", 2, g1), 0);
    wait_seen(&s, 1);
    assert_string_equal(s.hdr, "v1");
    assert_string_equal(s.ct, "application/json");
    /* The wrapper sees this version's struct, size set. */
    assert_int_equal(wrapper_saw, sizeof(micro_publish_opts));
    /* A future caller's. */
    static const micro_header_kv md2[] = {{"X-K", "future"}};
    micro_publish_opts fd = {.size = sizeof(fd),
        .metadata = md2,
        .n_metadata = 1};
    micro_publish_opts *fp = future(&fd, sizeof(fd));
    assert_int_equal(micro_client_publish(c, "t", "{}", 2, fp), 0);
    free(fp);
    wait_seen(&s, 2);
    assert_string_equal(s.hdr, "future");
    micro_client_free(c);
    micro_broker_free(b);
}

/* ------------------------------------------------------------------ */
/* Dialling.                                                            */

typedef struct dial_arg {
    micro_transport *tr;
    micro_loop *loop;
    const micro_dial_opts *o;
    atomic_int rc;
    atomic_bool done;
} dial_arg;

static void
on_dial(void *arg, int rc, micro_socket *s)
{
    dial_arg *a = arg;
    if (s != NULL) {
        micro_socket_close(s);
    }
    atomic_store(&a->rc, rc);
    atomic_store(&a->done, true);
}

static int
start_dial(void *arg)
{
    dial_arg *a = arg;
    return micro_transport_dial(a->tr, a->loop, "127.0.0.1:1", a->o, on_dial,
        a, NULL);
}

static void
test_dial_opts(void **state)
{
    fx *f = *state;
    size_t v1 = V1(micro_dial_opts, stream);
    micro_dial_opts *g1 = guarded(v1);
    memcpy(g1, &(micro_dial_opts) {.timeout_ms = 2000, .stream = true}, v1);
    micro_dial_opts *g = guarded(sizeof(*g));
    *g = (micro_dial_opts) MICRO_DIAL_OPTS_INIT;
    g->timeout_ms = 2000;
    micro_dial_opts fd = {.size = sizeof(fd), .timeout_ms = 2000};
    micro_dial_opts *fp = future(&fd, sizeof(fd));
    const micro_dial_opts *all[] = {g1, g, fp, NULL};
    for (size_t i = 0; i < 4; i++) {
        dial_arg a = {.tr = f->tr, .loop = f->loop, .o = all[i]};
        atomic_init(&a.rc, 1);
        atomic_init(&a.done, false);
        assert_int_equal(micro__loop_call(f->loop, start_dial, &a), 0);
        int64_t until = t_now_ms() + 5000;
        while (!atomic_load(&a.done) && t_now_ms() < until) {
            struct timespec ts = {0, 5 * 1000000L};
            nanosleep(&ts, NULL);
        }
        assert_true(atomic_load(&a.done));
        assert_true(atomic_load(&a.rc) < 0); /* nothing listens on port 1 */
    }
    free(fp);
}

/* ------------------------------------------------------------------ */
/* Call options: the client, typed calls and streams.                  */

static int
h_empty(micro_request *req, micro_response *rsp, void *arg)
{
    (void) req;
    (void) rsp;
    (void) arg;
    return 0; /* the empty message */
}

typedef struct async_res {
    atomic_bool done;
    atomic_int rc;
} async_res;

static void
on_proto(void *arg, int rc, struct ProtobufCMessage *out, micro_call *call)
{
    async_res *r = arg;
    micro_proto_free(out);
    micro_call_free(call);
    atomic_store(&r->rc, rc);
    atomic_store(&r->done, true);
}

static void
test_call_opts(void **state)
{
    fx *f = *state;
    micro_handler_desc d = {.size = sizeof(d),
        .endpoint = "E.Empty",
        .fn = h_empty};
    assert_int_equal(micro_server_handle(f->srv, &d), 0);
    assert_int_equal(micro_server_start(f->srv), 0);
    const char *addr = micro_server_address(f->srv);
    micro_client *c = NULL;
    assert_int_equal(micro_client_new(&c, f->tr, NULL, f->opts), 0);

    /* The first version, size 0, ending at a guard page: the typed call
     * used to copy the whole current struct from it. */
    size_t v1 = V1(micro_call_opts, filter);
    micro_call_opts *g1 = guarded(v1);
    memcpy(g1, &(micro_call_opts) {.address = addr,
               .timeout_ms = 5000,
               .retries = MICRO_CALL_NO_RETRY},
        v1);
    Google__Protobuf__Empty in = GOOGLE__PROTOBUF__EMPTY__INIT;
    struct ProtobufCMessage *out = NULL;
    assert_int_equal(micro_proto_call(c, "abi", "E.Empty", &in.base,
                         &google__protobuf__empty__descriptor, &out, g1,
                         NULL),
        0);
    assert_non_null(out);
    micro_proto_free(out);
    micro_call *call = NULL;
    assert_int_equal(
        micro_client_call(c, "abi", "E.Empty", "{}", 2, g1, &call), 0);
    micro_call_free(call);

    micro_loop *cl = NULL;
    assert_int_equal(micro_loop_new(&cl), 0);
    async_res r;
    atomic_init(&r.done, false);
    atomic_init(&r.rc, 1);
    assert_int_equal(micro_proto_call_async(c, cl, "abi", "E.Empty",
                         &in.base, &google__protobuf__empty__descriptor, g1,
                         on_proto, &r),
        0);
    int64_t until = t_now_ms() + 5000;
    while (!atomic_load(&r.done) && t_now_ms() < until) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_true(atomic_load(&r.done));
    assert_int_equal(atomic_load(&r.rc), 0);

    /* A future caller's struct. */
    micro_call_opts fd = {.size = sizeof(fd),
        .address = addr,
        .retries = MICRO_CALL_NO_RETRY};
    micro_call_opts *fp = future(&fd, sizeof(fd));
    assert_int_equal(micro_proto_call(c, "abi", "E.Empty", &in.base,
                         &google__protobuf__empty__descriptor, &out, fp,
                         NULL),
        0);
    micro_proto_free(out);

    /* Fields beyond size are not read: stream_timeout_ms is poison when
     * size says the first version, and the stream has no deadline; the
     * same struct with its size covering the field has one. */
    micro_call_opts *p = malloc(sizeof(micro_call_opts));
    assert_non_null(p);
    memset(p, 0xA5, sizeof(*p));
    memcpy(p, &(micro_call_opts) {.address = addr,
              .retries = MICRO_CALL_NO_RETRY},
        v1);
    p->size = v1;
    p->stream_timeout_ms = 1000;
    micro_stream *st = NULL;
    assert_int_equal(micro_proto_stream_open(c, "abi", "E.Stream", p, &st),
        0);
    assert_true(micro_stream_remaining_ms(st) == INT64_MAX);
    micro_stream_free(st);
    assert_int_equal(micro_client_stream(c, "abi", "E.Stream", p, &st), 0);
    assert_true(micro_stream_remaining_ms(st) == INT64_MAX);
    micro_stream_free(st);
    p->size = sizeof(*p);
    assert_int_equal(micro_proto_stream_open(c, "abi", "E.Stream", p, &st),
        0);
    assert_true(micro_stream_remaining_ms(st) <= 1000);
    micro_stream_free(st);
    free(p);
    free(fp);
    micro_client_free(c);
    micro_loop_free(cl);
}

/* ------------------------------------------------------------------ */
/* Ops tables: the options member is read only from tables whose abi has
 * it; the client front end still takes ABI 1 and 2 tables.             */

static void
test_old_client_tables(void **state)
{
    fx *f = *state;
    for (uint32_t abi = 1; abi <= MICRO_CLIENT_ABI; abi++) {
        micro_client_ops t = micro_client_mucp_ops;
        t.abi = abi;
        if (abi < 3) {
            /* Not there in such a table: poison, never read. */
            t.options = (const micro_option_desc *) (uintptr_t) 0x1;
        }
        micro_client *c = NULL;
        assert_int_equal(micro_client_new_with_ops(&c, &t, f->tr, NULL,
                             f->opts),
            0);
        micro_client_free(c);
    }
    micro_client_ops bad = micro_client_mucp_ops;
    bad.abi = MICRO_CLIENT_ABI + 1;
    micro_client *c = NULL;
    assert_int_equal(
        micro_client_new_with_ops(&c, &bad, f->tr, NULL, f->opts),
        MICRO_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handler_desc, fx_setup,
            fx_teardown),
        cmocka_unit_test_setup_teardown(test_stream_handler, fx_setup,
            fx_teardown),
        cmocka_unit_test_setup_teardown(test_subscriber_desc, fx_setup,
            fx_teardown),
        cmocka_unit_test_setup_teardown(test_sub_opts, fx_setup,
            fx_teardown),
        cmocka_unit_test_setup_teardown(test_publish_opts, fx_setup,
            fx_teardown),
        cmocka_unit_test_setup_teardown(test_dial_opts, fx_setup,
            fx_teardown),
        cmocka_unit_test_setup_teardown(test_call_opts, fx_setup,
            fx_teardown),
        cmocka_unit_test_setup_teardown(test_old_client_tables, fx_setup,
            fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
