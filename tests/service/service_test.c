/* The service lifecycle: hooks, registration, re-registration, stop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "support/support.h"

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

typedef struct trace {
    char log[256];
    int fail_before_start;
} trace;

static int
hook(micro_service *s, void *arg, const char *name)
{
    (void) s;
    trace *t = arg;
    size_t n = strlen(t->log);
    snprintf(t->log + n, sizeof(t->log) - n, "%s%s", n ? "," : "", name);
    return 0;
}

static int
before_start(micro_service *s, void *arg)
{
    trace *t = arg;
    hook(s, arg, "before_start");
    return t->fail_before_start ? MICRO_ECANCELED : 0;
}

static int
after_start(micro_service *s, void *arg)
{
    /* Registered by now. */
    micro_registry_service *svcs = NULL;
    size_t n = 0;
    int rc = micro_registry_get_service(micro_service_registry(s), "svc.test",
        &svcs, &n);
    hook(s, arg, rc == 0 && n == 1 ? "after_start(registered)" : "after_start");
    micro_registry_services_free(svcs, n);
    return 0;
}

static int
before_stop(micro_service *s, void *arg)
{
    return hook(s, arg, "before_stop");
}

static int
after_stop(micro_service *s, void *arg)
{
    micro_registry_service *svcs = NULL;
    size_t n = 0;
    int rc = micro_registry_get_service(micro_service_registry(s), "svc.test",
        &svcs, &n);
    hook(s, arg, rc == MICRO_ENOSERVICE ? "after_stop(deregistered)"
                                        : "after_stop");
    micro_registry_services_free(svcs, n);
    return 0;
}

static void *
runner(void *arg)
{
    micro_service *s = arg;
    intptr_t rc = micro_service_run(s);
    return (void *) rc;
}

static int
echo(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t len = 0;
    const void *p = micro_request_body(req, &len);
    return micro_response_set_body(rsp, p, len);
}

static void
test_lifecycle(void **state)
{
    (void) state;
    char a0[] = "prog", a1[] = "--server_address=127.0.0.1:0",
         a2[] = "--register_ttl=300ms", a3[] = "--register_interval",
         a4[] = "100ms", a5[] = "positional";
    char *argv[] = {a0, a1, a2, a3, a4, a5, NULL};
    int argc = 6;
    micro_service *s = NULL;
    assert_int_equal(micro_service_new(&s, "svc.test", &argc, argv), 0);
    assert_int_equal(argc, 2); /* ours consumed, the rest kept */
    assert_string_equal(argv[1], "positional");
    trace t = {0};
    micro_service_add_hook(s, MICRO_HOOK_BEFORE_START, before_start, &t);
    micro_service_add_hook(s, MICRO_HOOK_AFTER_START, after_start, &t);
    micro_service_add_hook(s, MICRO_HOOK_BEFORE_STOP, before_stop, &t);
    micro_service_add_hook(s, MICRO_HOOK_AFTER_STOP, after_stop, &t);
    assert_int_equal(micro_service_handle(s, "Echo.Call", echo, NULL), 0);
    pthread_t th;
    pthread_create(&th, NULL, runner, s);
    /* Past several TTLs the node is still there: it is re-registered. */
    sleep_ms(1000);
    micro_registry_service *svcs = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(micro_service_registry(s),
                         "svc.test", &svcs, &n),
        0);
    assert_int_equal(n, 1);
    assert_int_equal(svcs[0].n_nodes, 1);
    assert_string_equal(
        micro_metadata_get(&svcs[0].nodes[0].metadata, "protocol"), "mucp");
    assert_int_equal(strncmp(svcs[0].nodes[0].id, "svc.test-", 9), 0);
    /* Call it by name through the service's own client + selector. */
    micro_call *call = NULL;
    int rc = micro_client_call(micro_service_client(s), "svc.test",
        "Echo.Call", "{\"a\":1}", 7, NULL, &call);
    assert_int_equal(rc, 0);
    size_t len = 0;
    const char *body = micro_call_body(call, &len);
    assert_true(len >= 7);
    assert_memory_equal(body, "{\"a\":1}", 7);
    assert_string_equal(micro_call_address(call), svcs[0].nodes[0].address);
    micro_call_free(call);
    micro_registry_services_free(svcs, n);
    micro_service_stop(s);
    void *ret = NULL;
    pthread_join(th, &ret);
    assert_int_equal((intptr_t) ret, 0);
    assert_string_equal(t.log,
        "before_start,after_start(registered),before_stop,"
        "after_stop(deregistered)");
    micro_service_free(s);
}

static int
mark_started(micro_service *s, void *arg)
{
    (void) s;
    atomic_store((atomic_int *) arg, 1);
    return 0;
}

/* A registry out of reach at start does not stop the service (Go Micro
 * v4 logs and serves): it answers by address, keeps trying to register
 * every register_interval, and stops cleanly. The registry is etcd on a
 * port nobody listens on: every request is refused at once. */
static void
test_serves_without_registry(void **state)
{
    (void) state;
    char reg_addr[64], a0[] = "prog", a1[] = "--server_address=127.0.0.1:0",
                       a2[] = "--registry=etcd", a4[] = "--register_interval",
                       a5[] = "100ms", a6[] = "--registry_timeout",
                       a7[] = "500ms";
    snprintf(reg_addr, sizeof(reg_addr), "--registry_address=127.0.0.1:%d",
        t_free_port());
    char *argv[] = {a0, a1, a2, reg_addr, a4, a5, a6, a7, NULL};
    int argc = 8;
    micro_service *s = NULL;
    assert_int_equal(micro_service_new(&s, "svc.noreg", &argc, argv), 0);
    atomic_int started = 0;
    micro_service_add_hook(s, MICRO_HOOK_AFTER_START, mark_started,
        &started);
    assert_int_equal(micro_service_handle(s, "Echo.Call", echo, NULL), 0);
    pthread_t th;
    pthread_create(&th, NULL, runner, s);
    /* Serving: the after-start hooks ran, and a call by address works. */
    int64_t t0 = t_now_ms();
    while (!atomic_load(&started) && t_now_ms() - t0 < 20000) {
        sleep_ms(20);
    }
    assert_true(atomic_load(&started));
    const char *addr = micro_server_address(micro_service_server(s));
    micro_call_opts o = MICRO_CALL_OPTS_INIT;
    o.address = addr;
    micro_call *call = NULL;
    assert_int_equal(micro_client_call(micro_service_client(s), "svc.noreg",
                         "Echo.Call", "{\"b\":2}", 7, &o, &call),
        0);
    size_t len = 0;
    const char *body = micro_call_body(call, &len);
    assert_true(len >= 7);
    assert_memory_equal(body, "{\"b\":2}", 7);
    micro_call_free(call);
    micro_service_stop(s);
    void *ret = NULL;
    pthread_join(th, &ret);
    assert_int_equal((intptr_t) ret, 0);
    micro_service_free(s);
}

static void
test_before_start_failure_aborts(void **state)
{
    (void) state;
    micro_service *s = NULL;
    assert_int_equal(micro_service_new(&s, "svc.test", NULL, NULL), 0);
    micro_options_set_str(micro_service_options(s), "server_address",
        "127.0.0.1:0");
    trace t = {.fail_before_start = 1};
    micro_service_add_hook(s, MICRO_HOOK_BEFORE_START, before_start, &t);
    micro_service_add_hook(s, MICRO_HOOK_AFTER_START, after_start, &t);
    assert_int_equal(micro_service_run(s), MICRO_ECANCELED);
    assert_string_equal(t.log, "before_start");
    micro_service_free(s);
}

/* A SIGTERM during start-up (here from a before-start hook) is the
 * service's from the start: it starts, registers, then stops and
 * deregisters, rather than dying with its node left in the registry. */
static int
term_before_start(micro_service *s, void *arg)
{
    hook(s, arg, "before_start");
    return kill(getpid(), SIGTERM) == 0 ? 0 : MICRO_EINVAL;
}

static void
test_signal_during_start(void **state)
{
    (void) state;
    micro_service *s = NULL;
    assert_int_equal(micro_service_new(&s, "svc.test", NULL, NULL), 0);
    micro_options_set_str(micro_service_options(s), "server_address",
        "127.0.0.1:0");
    trace t = {0};
    micro_service_add_hook(s, MICRO_HOOK_BEFORE_START, term_before_start, &t);
    micro_service_add_hook(s, MICRO_HOOK_AFTER_START, after_start, &t);
    micro_service_add_hook(s, MICRO_HOOK_BEFORE_STOP, before_stop, &t);
    micro_service_add_hook(s, MICRO_HOOK_AFTER_STOP, after_stop, &t);
    assert_int_equal(micro_service_run(s), 0);
    assert_string_equal(t.log, "before_start,after_start(registered),"
                               "before_stop,after_stop(deregistered)");
    micro_service_free(s);
}

static void
test_env_and_unknown_plugin(void **state)
{
    (void) state;
    setenv("MICRO_SERVER_NAME", "from.env", 1);
    micro_service *s = NULL;
    assert_int_equal(micro_service_new(&s, NULL, NULL, NULL), 0);
    assert_string_equal(micro_server_name(micro_service_server(s)),
        "from.env");
    micro_service_free(s);
    unsetenv("MICRO_SERVER_NAME");
    /* A transport that is not built is a clear error, not a crash. */
    assert_int_equal(micro_service_new(&s, "x", NULL, NULL), 0);
    micro_options_set_str(micro_service_options(s), "transport", "grpc");
    assert_int_equal(micro_service_run(s), MICRO_ENOTBUILT);
    micro_service_free(s);
}

int
main(void)
{
    /* mDNS is the default registry: keep these services off the network
     * (the environment, not a flag, so every service here gets it). */
    setenv("MICRO_REGISTRY", "memory", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_serves_without_registry),
        cmocka_unit_test(test_before_start_failure_aborts),
        cmocka_unit_test(test_signal_during_start),
        cmocka_unit_test(test_env_and_unknown_plugin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
