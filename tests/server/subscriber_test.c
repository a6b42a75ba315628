/* Service-level pub/sub: subscribers decoded by content type, wrappers,
 * the event shape of micro_client_publish, publish wrappers, undecodable
 * and failing events, the registry record, events over the transport. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmicro/micro.h>

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct seen {
    atomic_long calls, wrapped, published_wrapped;
    pthread_mutex_t mu;
    char body[256];
    char ct[64], topic[64], id[64], meta[64];
    int fail;
} seen;

static seen S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int
on_event(micro_request *r, void *arg)
{
    seen *s = arg;
    size_t len = 0;
    const char *b = micro_request_body(r, &len);
    pthread_mutex_lock(&s->mu);
    snprintf(s->body, sizeof(s->body), "%.*s", (int) len, b);
    const char *v = micro_request_content_type(r);
    snprintf(s->ct, sizeof(s->ct), "%s", v ? v : "");
    snprintf(s->topic, sizeof(s->topic), "%s", micro_request_topic(r));
    v = micro_request_header(r, "Micro-ID");
    snprintf(s->id, sizeof(s->id), "%s", v ? v : "");
    v = micro_request_header(r, "X-Tenant");
    snprintf(s->meta, sizeof(s->meta), "%s", v ? v : "");
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&s->calls, 1);
    return s->fail ? MICRO_EIO : 0;
}

static int
sub_wrapper(micro_request *r, micro_subscriber_chain *next, void *arg)
{
    seen *s = arg;
    atomic_fetch_add(&s->wrapped, 1);
    return micro_subscriber_next(next, r);
}

static int
pub_wrapper(micro_publication *p, micro_publish_chain *next, void *arg)
{
    seen *s = arg;
    atomic_fetch_add(&s->published_wrapped, 1);
    return micro_publish_next(next, p);
}

static atomic_bool started;

static int
after_start(micro_service *svc, void *arg)
{
    (void) svc;
    (void) arg;
    atomic_store(&started, true);
    return 0;
}

static void *
runner(void *arg)
{
    micro_service_run(arg);
    return NULL;
}

static bool
wait_calls(long want)
{
    for (int i = 0; i < 500 && atomic_load(&S.calls) < want; i++) {
        sleep_ms(10);
    }
    return atomic_load(&S.calls) >= want;
}

static void
run_with_broker(const char *broker)
{
    atomic_store(&S.calls, 0);
    atomic_store(&S.wrapped, 0);
    atomic_store(&started, false);
    S.fail = 0;
    micro_service *svc = NULL;
    assert_int_equal(micro_service_new(&svc, "subs", NULL, NULL), 0);
    micro_options *o = micro_service_options(svc);
    micro_options_set_str(o, "broker", broker);
    micro_options_set_str(o, "registry", "memory");
    micro_options_set_str(o, "server_address", "127.0.0.1:0");
    micro_server *srv = micro_service_server(svc);
    micro_subscriber_desc d = {.topic = "events", .fn = on_event, .arg = &S,
        .name = "Handler.Events"};
    assert_int_equal(micro_server_subscribe(srv, &d), 0);
    assert_int_equal(micro_server_wrap_subscriber(srv, sub_wrapper, &S), 0);
    micro_client *cli = micro_service_client(svc);
    assert_int_equal(micro_client_wrap_publish(cli, pub_wrapper, &S), 0);
    micro_service_add_hook(svc, MICRO_HOOK_AFTER_START, after_start, NULL);
    pthread_t t;
    pthread_create(&t, NULL, runner, svc);
    for (int i = 0; i < 500 && !atomic_load(&started); i++) {
        sleep_ms(10);
    }
    assert_true(atomic_load(&started));

    /* The record advertises the subscriber as Go Micro does. */
    micro_registry_service rec;
    assert_int_equal(micro_server_record(srv, &rec), 0);
    bool found = false;
    for (size_t i = 0; i < rec.n_endpoints; i++) {
        if (strcmp(rec.endpoints[i].name, "Handler.Events") == 0) {
            found = true;
            assert_string_equal(micro_metadata_get(&rec.endpoints[i].metadata,
                                    "topic"),
                "events");
            assert_string_equal(micro_metadata_get(&rec.endpoints[i].metadata,
                                    "subscriber"),
                "true");
            assert_null(rec.endpoints[i].response);
        }
    }
    micro_registry_service_clear(&rec);
    assert_true(found);

    /* Publish through the client: Go Micro's event shape. */
    micro_header_kv md[] = {{"X-Tenant", "acme"}};
    micro_publish_opts po = {.metadata = md, .n_metadata = 1};
    assert_int_equal(micro_client_publish(cli, "events", "{\"id\":1}", 8,
                         &po),
        0);
    assert_true(wait_calls(1));
    pthread_mutex_lock(&S.mu);
    assert_string_equal(S.body, "{\"id\":1}\n");
    assert_string_equal(S.ct, "application/json");
    assert_string_equal(S.topic, "events");
    assert_int_equal(strlen(S.id), 36);
    assert_string_equal(S.meta, "acme");
    pthread_mutex_unlock(&S.mu);
    assert_true(atomic_load(&S.wrapped) >= 1);
    assert_true(atomic_load(&S.published_wrapped) >= 1);

    /* Undecodable: invalid JSON, and an unknown content type. */
    micro_broker *b = micro_service_broker(svc);
    micro_msg *m = NULL;
    micro_msg_new(&m);
    micro_msg_set_header(m, "Content-Type", "application/json");
    micro_msg_set_header(m, "Micro-Topic", "events");
    micro_msg_set_body(m, "{not json", 9);
    assert_int_equal(micro_broker_publish(b, "events", m), 0);
    micro_msg_set_header(m, "Content-Type", "application/x-unknown");
    assert_int_equal(micro_broker_publish(b, "events", m), 0);
    micro_msg_free(m);
    micro_subscriber_stats st;
    for (int i = 0; i < 500; i++) {
        micro_server_get_subscriber_stats(srv, &st);
        if (st.undecodable >= 2) {
            break;
        }
        sleep_ms(10);
    }
    assert_int_equal(st.undecodable, 2);
    assert_int_equal(atomic_load(&S.calls), 1); /* reached no handler */

    /* A failing subscriber is counted; delivery goes on. */
    S.fail = 1;
    for (int i = 0; i < 5; i++) {
        micro_client_publish(cli, "events", "{}", 2, NULL);
    }
    assert_true(wait_calls(6));
    sleep_ms(20);
    micro_server_get_subscriber_stats(srv, &st);
    assert_int_equal(st.errors, 5);
    S.fail = 0;

    /* An event over the transport (Micro-Topic on an RPC connection). */
    micro_transport *tr = NULL;
    micro_transport_new(&tr, &micro_transport_http_ops,
        micro_service_loop(svc), NULL);
    micro_msg *req = NULL, *rsp = NULL;
    micro_msg_new(&req);
    micro_msg_set_header(req, "Content-Type", "application/json");
    micro_msg_set_header(req, "Micro-Topic", "events");
    micro_msg_set_body(req, "{\"via\":\"transport\"}", 19);
    int sent = 0;
    assert_int_equal(micro_transport_roundtrip(tr, micro_server_address(srv),
                         req, 5000, &rsp, &sent),
        0);
    assert_null(micro_msg_header(rsp, "Micro-Error"));
    assert_true(wait_calls(7));
    micro_msg_free(rsp);
    rsp = NULL;
    micro_msg_set_header(req, "Micro-Topic", "nobody");
    assert_int_equal(micro_transport_roundtrip(tr, micro_server_address(srv),
                         req, 5000, &rsp, &sent),
        0);
    assert_non_null(micro_msg_header(rsp, "Micro-Error"));
    micro_msg_free(rsp);
    micro_msg_free(req);
    micro_transport_free(tr);

    micro_service_stop(svc);
    pthread_join(t, NULL);
    micro_service_free(svc);
}

static void
test_memory_broker(void **state)
{
    (void) state;
    run_with_broker("memory");
}

static void
test_http_broker(void **state)
{
    (void) state;
    run_with_broker("http");
}

/* --- subscribing while events are delivered ------------------------ */

#define CONC_SUBS 120

typedef struct conc {
    micro_service *svc;
    micro_server *srv;
    atomic_bool stop;
    atomic_long sub_failures;
    atomic_long events_sent, events_failed;
    atomic_long records;
    atomic_long calls[CONC_SUBS];
} conc;

static int
on_conc(micro_request *r, void *arg)
{
    (void) r;
    atomic_fetch_add((atomic_long *) arg, 1);
    return 0;
}

/* Adds subscribers one by one: the list grows while it is walked. */
static void *
conc_subscribe(void *arg)
{
    conc *c = arg;
    /* Start once both walkers are going. */
    for (int i = 0; i < 500 && (atomic_load(&c->events_sent) == 0 ||
                                   atomic_load(&c->records) == 0);
         i++) {
        sleep_ms(2);
    }
    for (int i = 0; i < CONC_SUBS; i++) {
        char topic[32];
        snprintf(topic, sizeof(topic), "t%d", i);
        micro_subscriber_desc d = {.topic = topic, .fn = on_conc,
            .arg = &c->calls[i]};
        if (micro_server_subscribe(c->srv, &d) != 0) {
            atomic_fetch_add(&c->sub_failures, 1);
        }
    }
    return NULL;
}

/* Events over the transport: each walks the whole list. */
static void *
conc_events(void *arg)
{
    conc *c = arg;
    micro_transport *tr = NULL;
    micro_transport_new(&tr, &micro_transport_http_ops,
        micro_service_loop(c->svc), NULL);
    micro_msg *req = NULL;
    micro_msg_new(&req);
    micro_msg_set_header(req, "Content-Type", "application/json");
    micro_msg_set_header(req, "Micro-Topic", "events");
    micro_msg_set_body(req, "{}", 2);
    while (!atomic_load(&c->stop)) {
        micro_msg *rsp = NULL;
        int sent = 0;
        int rc = micro_transport_roundtrip(tr, micro_server_address(c->srv),
            req, 5000, &rsp, &sent);
        atomic_fetch_add(&c->events_sent, 1);
        if (rc != 0 || micro_msg_header(rsp, "Micro-Error") != NULL) {
            atomic_fetch_add(&c->events_failed, 1);
        }
        micro_msg_free(rsp);
    }
    micro_msg_free(req);
    micro_transport_free(tr);
    return NULL;
}

/* The registry record walks the list; stop and start re-subscribe. */
static void *
conc_records(void *arg)
{
    conc *c = arg;
    for (int i = 0; !atomic_load(&c->stop); i++) {
        micro_registry_service rec;
        if (micro_server_record(c->srv, &rec) == 0) {
            micro_registry_service_clear(&rec);
            atomic_fetch_add(&c->records, 1);
        }
        if (i % 4 == 0) {
            micro_server_stop_subscribers(c->srv);
            micro_server_start_subscribers(c->srv);
        }
    }
    return NULL;
}

static void
test_subscribe_during_delivery(void **state)
{
    (void) state;
    static conc c;
    memset(&c, 0, sizeof(c));
    atomic_store(&S.calls, 0);
    atomic_store(&started, false);
    S.fail = 0;
    assert_int_equal(micro_service_new(&c.svc, "conc", NULL, NULL), 0);
    micro_options *o = micro_service_options(c.svc);
    micro_options_set_str(o, "broker", "memory");
    micro_options_set_str(o, "registry", "memory");
    micro_options_set_str(o, "server_address", "127.0.0.1:0");
    c.srv = micro_service_server(c.svc);
    micro_subscriber_desc d = {.topic = "events", .fn = on_event, .arg = &S};
    assert_int_equal(micro_server_subscribe(c.srv, &d), 0);
    micro_service_add_hook(c.svc, MICRO_HOOK_AFTER_START, after_start, NULL);
    pthread_t run;
    pthread_create(&run, NULL, runner, c.svc);
    for (int i = 0; i < 500 && !atomic_load(&started); i++) {
        sleep_ms(10);
    }
    assert_true(atomic_load(&started));

    pthread_t th[3];
    pthread_create(&th[0], NULL, conc_events, &c);
    pthread_create(&th[1], NULL, conc_records, &c);
    pthread_create(&th[2], NULL, conc_subscribe, &c);
    pthread_join(th[2], NULL);
    /* Let the walkers run over the full list for a moment too. */
    for (int i = 0; i < 500 && (atomic_load(&c.events_sent) < 20 ||
                                   atomic_load(&c.records) < 20);
         i++) {
        sleep_ms(10);
    }
    atomic_store(&c.stop, true);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    assert_int_equal(atomic_load(&c.sub_failures), 0);
    assert_int_equal(atomic_load(&c.events_failed), 0);
    assert_true(atomic_load(&c.events_sent) >= 20);
    assert_true(wait_calls(atomic_load(&c.events_sent)));

    /* Every subscriber is subscribed exactly once after the churn: one
     * event per topic reaches its handler once. */
    micro_server_start_subscribers(c.srv);
    micro_broker *b = micro_service_broker(c.svc);
    for (int i = 0; i < CONC_SUBS; i++) {
        char topic[32];
        snprintf(topic, sizeof(topic), "t%d", i);
        micro_msg *m = NULL;
        micro_msg_new(&m);
        micro_msg_set_header(m, "Content-Type", "application/json");
        micro_msg_set_body(m, "{}", 2);
        assert_int_equal(micro_broker_publish(b, topic, m), 0);
        micro_msg_free(m);
    }
    for (int i = 0; i < CONC_SUBS; i++) {
        for (int k = 0; k < 500 && atomic_load(&c.calls[i]) < 1; k++) {
            sleep_ms(10);
        }
    }
    sleep_ms(50);
    for (int i = 0; i < CONC_SUBS; i++) {
        assert_int_equal(atomic_load(&c.calls[i]), 1);
    }
    micro_registry_service rec;
    assert_int_equal(micro_server_record(c.srv, &rec), 0);
    size_t subs = 0;
    for (size_t i = 0; i < rec.n_endpoints; i++) {
        subs += micro_metadata_get(&rec.endpoints[i].metadata,
                    "subscriber") != NULL;
    }
    micro_registry_service_clear(&rec);
    assert_int_equal(subs, CONC_SUBS + 1);
    micro_service_stop(c.svc);
    pthread_join(run, NULL);
    micro_service_free(c.svc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_broker),
        cmocka_unit_test(test_http_broker),
        cmocka_unit_test(test_subscribe_during_delivery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
