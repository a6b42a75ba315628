/*
 * The service: one loop, the transport, registry, selector, server and
 * client built from the options, and Go Micro's run lifecycle.
 */
#include "core/internal.h"
#include "core/loop_internal.h"
#include "core/options_internal.h"
#include "plugins.h"

#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <uv.h>

typedef struct hook {
    micro_hook_kind kind;
    micro_hook_fn fn;
    void *arg;
} hook;

struct micro_service {
    micro_options *opts;
    bool built;
    micro_loop *loop;
    micro_transport *tr;
    micro_registry *reg;
    micro_selector *sel;
    micro_server *srv;
    micro_client *cli;
    micro_broker *broker;
    hook *hooks;
    size_t n_hooks;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool running;
    uv_signal_t sig[2];
    bool sig_on;
    micro_registry_service record;
};

static int
build(micro_service *s)
{
    if (s->built) {
        return 0;
    }
    /* An option of a plugin that is not the one chosen is said so. */
    micro__options_check_chosen(s->opts);
    int rc = micro_loop_new(&s->loop);
    if (rc == 0) {
        rc = micro_transport_new_by_name(&s->tr,
            micro_options_get_str(s->opts, "transport"), s->loop, s->opts);
    }
    if (rc == 0) {
        rc = micro_registry_new_by_name(&s->reg,
            micro_options_get_str(s->opts, "registry"), s->opts);
    }
    if (rc == 0) {
        rc = micro_selector_new_by_name(&s->sel,
            micro_options_get_str(s->opts, "selector"), s->reg, s->opts);
    }
    const micro_server_ops *sops = NULL;
    if (rc == 0) {
        rc = micro__server_ops_by_name(
            micro_options_get_str(s->opts, "server"), &sops);
    }
    if (rc == 0) {
        rc = micro_server_new_with_ops(&s->srv, sops, s->loop, s->tr,
            s->opts);
    }
    const micro_client_ops *cops = NULL;
    if (rc == 0) {
        rc = micro__client_ops_by_name(
            micro_options_get_str(s->opts, "client"), &cops);
    }
    if (rc == 0) {
        rc = micro_client_new_with_ops(&s->cli, cops, s->tr, s->sel,
            s->opts);
    }
    if (rc == 0) {
        rc = micro_broker_new_by_name(&s->broker,
            micro_options_get_str(s->opts, "broker"), s->loop, s->reg,
            s->opts);
    }
    if (rc == 0) {
        rc = micro_server_set_broker(s->srv, s->broker);
    }
    if (rc == 0) {
        rc = micro_client_set_broker(s->cli, s->broker);
    }
    if (rc != 0) {
        micro_log(MICRO_LOG_ERR, "service", "cannot build the service: %s",
            micro_strerror(rc));
        return rc;
    }
    s->built = true;
    return 0;
}

int
micro_service_new(micro_service **out, const char *name, int *argc,
    char **argv)
{
    *out = NULL;
    micro_service *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = micro_options_new(&s->opts);
    if (rc == 0 && name != NULL) {
        rc = micro_options_set_str(s->opts, "server_name", name);
    }
    if (rc == 0) {
        rc = micro_options_load_env(s->opts);
    }
    bool help = false;
    if (rc == 0 && argc != NULL && argv != NULL) {
        rc = micro_options_parse_args(s->opts, argc, argv, &help);
    }
    if (rc == 0 && help) {
        rc = MICRO_ECANCELED;
    }
    if (rc == 0) {
        const char *lvl = micro_options_get_str(s->opts, "log_level");
        static const struct {
            const char *n;
            micro_log_level l;
        } lv[] = {{"err", MICRO_LOG_ERR}, {"error", MICRO_LOG_ERR},
            {"warn", MICRO_LOG_WARN}, {"notice", MICRO_LOG_NOTICE},
            {"info", MICRO_LOG_INFO}, {"debug", MICRO_LOG_DEBUG}};
        for (size_t i = 0; lvl != NULL && micro_options_is_set(s->opts,
                               "log_level") && i < MICRO_ARRAY_LEN(lv);
             i++) {
            if (strcmp(lvl, lv[i].n) == 0) {
                micro_log_set_level(lv[i].l);
            }
        }
    }
    if (rc != 0) {
        micro_service_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int
close_signals(void *arg)
{
    micro_service *s = arg;
    if (s->sig_on) {
        s->sig_on = false;
        uv_close((uv_handle_t *) &s->sig[0], NULL);
        uv_close((uv_handle_t *) &s->sig[1], NULL);
    }
    return 0;
}

void
micro_service_free(micro_service *s)
{
    if (s == NULL) {
        return;
    }
    if (s->loop != NULL) {
        micro__loop_call(s->loop, close_signals, s);
    }
    /* The server first: its free waits for handlers still running, which
     * may use the client, the broker and the transport. */
    micro_server_free(s->srv);
    micro_client_free(s->cli);
    micro_broker_free(s->broker);
    micro_transport_free(s->tr);
    micro_selector_free(s->sel);
    micro_registry_free(s->reg);
    micro_loop_free(s->loop);
    micro_registry_service_clear(&s->record);
    micro_options_free(s->opts);
    micro__free(s->hooks);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    micro__free(s);
}

micro_options *
micro_service_options(micro_service *s)
{
    return s->opts;
}

micro_server *
micro_service_server(micro_service *s)
{
    return build(s) == 0 ? s->srv : NULL;
}

micro_client *
micro_service_client(micro_service *s)
{
    return build(s) == 0 ? s->cli : NULL;
}

micro_registry *
micro_service_registry(micro_service *s)
{
    return build(s) == 0 ? s->reg : NULL;
}

micro_loop *
micro_service_loop(micro_service *s)
{
    return build(s) == 0 ? s->loop : NULL;
}

micro_broker *
micro_service_broker(micro_service *s)
{
    return build(s) == 0 ? s->broker : NULL;
}

int
micro_service_subscribe(micro_service *s, const char *topic,
    const char *queue, micro_subscriber_fn fn, void *arg)
{
    int rc = build(s);
    if (rc != 0) {
        return rc;
    }
    micro_subscriber_desc d = {.size = sizeof(d),
        .topic = topic,
        .queue = queue,
        .fn = fn,
        .arg = arg};
    return micro_server_subscribe(s->srv, &d);
}

int
micro_service_publish(micro_service *s, const char *topic,
    const void *payload, size_t len, const micro_publish_opts *opts)
{
    int rc = build(s);
    if (rc == 0) {
        rc = micro_broker_connect(s->broker); /* idempotent */
    }
    if (rc != 0) {
        return rc;
    }
    return micro_client_publish(s->cli, topic, payload, len, opts);
}

int
micro_service_handle(micro_service *s, const char *endpoint,
    micro_handler_fn fn, void *arg)
{
    int rc = build(s);
    if (rc != 0) {
        return rc;
    }
    micro_handler_desc d = {
        .size = sizeof(d), .endpoint = endpoint, .fn = fn, .arg = arg};
    return micro_server_handle(s->srv, &d);
}

int
micro_service_add_hook(micro_service *s, micro_hook_kind kind,
    micro_hook_fn fn, void *arg)
{
    if (s == NULL || fn == NULL) {
        return MICRO_EINVAL;
    }
    hook *h = micro__realloc(s->hooks, (s->n_hooks + 1) * sizeof(*h));
    if (h == NULL) {
        return MICRO_ENOMEM;
    }
    s->hooks = h;
    h[s->n_hooks].kind = kind;
    h[s->n_hooks].fn = fn;
    h[s->n_hooks].arg = arg;
    s->n_hooks++;
    return 0;
}

static int
run_hooks(micro_service *s, micro_hook_kind kind)
{
    for (size_t i = 0; i < s->n_hooks; i++) {
        if (s->hooks[i].kind == kind) {
            int rc = s->hooks[i].fn(s, s->hooks[i].arg);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

void
micro_service_stop(micro_service *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void
on_signal(uv_signal_t *h, int signum)
{
    micro_service *s = h->data;
    micro_log(MICRO_LOG_NOTICE, "service", "received %s; stopping",
        signum == SIGINT ? "SIGINT" : "SIGTERM");
    micro_service_stop(s);
}

static int
open_signals(void *arg)
{
    micro_service *s = arg;
    uv_loop_t *uv = micro_loop_uv(s->loop);
    int sigs[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(uv, &s->sig[i]);
        s->sig[i].data = s;
        uv_signal_start(&s->sig[i], on_signal, sigs[i]);
    }
    s->sig_on = true;
    return 0;
}

static int
do_register(micro_service *s)
{
    int64_t ttl = micro_options_get_ms(s->opts, "register_ttl");
    int rc = micro_registry_register(s->reg, &s->record, ttl);
    if (rc != 0) {
        micro_log(MICRO_LOG_WARN, "service", "register %s: %s",
            s->record.name, micro_strerror(rc));
    }
    return rc;
}

static int
start_subscribers(micro_service *s)
{
    int rc = micro_server_start_subscribers(s->srv);
    if (rc != 0) {
        micro_log(MICRO_LOG_ERR, "service", "subscribe: %s",
            micro_strerror(rc));
    }
    return rc;
}

/* Wait until stop or the deadline; true when stop was asked. */
static bool
wait_stop(micro_service *s, int64_t until_ms)
{
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        if (until_ms == 0) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        int64_t left = until_ms - micro__now_ms();
        if (left <= 0) {
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += left / 1000;
        ts.tv_nsec += (long) (left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    bool stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

int
micro_service_run(micro_service *s)
{
    int rc = build(s);
    if (rc != 0) {
        return rc;
    }
    if (s->running) {
        return MICRO_EEXIST;
    }
    s->running = true;
    /* SIGINT and SIGTERM are ours from here on, before anything is
     * registered: a signal during start-up stops the service once it has
     * started (deregistering what it registered) instead of killing the
     * process with its node left in the registry. (Go Micro v4 installs
     * its handler only after Start, when the node is registered.) */
    micro__loop_call(s->loop, open_signals, s);
    rc = run_hooks(s, MICRO_HOOK_BEFORE_START);
    if (rc == 0) {
        rc = micro_server_start(s->srv);
    }
    if (rc == 0) {
        /* Go Micro connects the broker as part of server start. */
        rc = micro_broker_connect(s->broker);
        if (rc != 0) {
            micro_server_stop(s->srv, 0);
        }
    }
    if (rc != 0) {
        micro__loop_call(s->loop, close_signals, s);
        s->running = false;
        return rc;
    }
    rc = micro_server_record(s->srv, &s->record);
    /* Register: up to 3 tries, 100 ms then 600 ms apart. A registry still
     * out of reach does not stop the service: Go Micro v4 logs and serves
     * (server/rpc_server.go Start), and the re-registration below retries
     * every register_interval, so the node appears when the registry
     * comes back. */
    static const int64_t gaps[] = {100, 600};
    bool registered = false;
    for (int i = 0; rc == 0 && !registered; i++) {
        registered = do_register(s) == 0;
        if (registered || i == 2) {
            break;
        }
        struct timespec ts = {0, (long) gaps[i] * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == 0 && !registered) {
        micro_log(MICRO_LOG_ERR, "service",
            "%s is not registered; serving anyway, registering again "
            "every register_interval", s->record.name);
    }
    if (rc == 0 && registered) {
        /* Subscriptions follow the first registration (Go Micro v4). */
        rc = start_subscribers(s);
    }
    if (rc == 0) {
        rc = run_hooks(s, MICRO_HOOK_AFTER_START);
    }
    if (rc == 0) {
        micro_log(MICRO_LOG_NOTICE, "service", "%s serving on %s",
            micro_server_name(s->srv), micro_server_address(s->srv));
        int64_t interval = micro_options_get_ms(s->opts, "register_interval");
        for (;;) {
            int64_t until = interval > 0 ? micro__now_ms() + interval : 0;
            if (wait_stop(s, until)) {
                break;
            }
            /* Refresh the TTL; failures are logged. */
            if (do_register(s) == 0 && !registered) {
                registered = true;
                micro_log(MICRO_LOG_NOTICE, "service", "%s registered",
                    s->record.name);
                (void) start_subscribers(s);
            }
        }
    }
    int stop_rc = run_hooks(s, MICRO_HOOK_BEFORE_STOP);
    micro_server_stop_subscribers(s->srv);
    if (s->record.name != NULL && registered) {
        micro_registry_service dereg = {0};
        micro_node node = {0};
        if (s->record.n_nodes > 0) {
            node.id = s->record.nodes[0].id;
            node.address = s->record.nodes[0].address;
        }
        dereg.name = s->record.name;
        dereg.version = s->record.version;
        dereg.nodes = &node;
        dereg.n_nodes = 1;
        int d = micro_registry_deregister(s->reg, &dereg);
        if (d != 0) {
            micro_log(MICRO_LOG_WARN, "service", "deregister: %s",
                micro_strerror(d));
        }
    }
    micro_server_stop(s->srv, micro_options_get_ms(s->opts, "server_drain"));
    micro_broker_disconnect(s->broker);
    micro__loop_call(s->loop, close_signals, s);
    int after = run_hooks(s, MICRO_HOOK_AFTER_STOP);
    s->running = false;
    pthread_mutex_lock(&s->mu);
    s->stop = false;
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) {
        rc = stop_rc != 0 ? stop_rc : after;
    }
    micro_log(MICRO_LOG_NOTICE, "service", "%s stopped",
        micro_server_name(s->srv));
    return rc;
}
