/* Option table, typed setters/getters, env and flag parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmicro/micro.h"
#include "core/options_internal.h"
#include "plugins.h"

#define MICRO_ARRAY_LEN_T(a) (sizeof(a) / sizeof((a)[0]))

static int
setup(void **state)
{
    micro_options *o = NULL;
    micro_log_set_logger(micro_log_null, NULL);
    assert_int_equal(micro_options_new(&o), 0);
    *state = o;
    return 0;
}

static int
teardown(void **state)
{
    micro_options_free(*state);
    micro_log_set_logger(NULL, NULL);
    return 0;
}

static void
test_defaults(void **state)
{
    micro_options *o = *state;
    assert_string_equal(micro_options_get_str(o, "server_name"),
        "go.micro.server");
    assert_null(micro_options_get_str(o, "server_id"));
    assert_int_equal(micro_options_get_int(o, "server_workers"), 16);
    assert_int_equal(micro_options_get_ms(o, "register_ttl"), 60000);
    assert_int_equal(micro_options_get_ms(o, "selector_ttl"), 60000);
    assert_int_equal(micro_options_get_ms(o, "server_drain"), 10000);
    assert_false(micro_options_get_bool(o, "server_inline"));
    assert_int_equal(
        micro_options_get_int(o, "transport_max_message_size"), 4194304);
    assert_false(micro_options_is_set(o, "registry"));
    /* A NULL options object reads the defaults. */
    assert_string_equal(micro_options_get_str(NULL, "registry"), "mdns");
    assert_int_equal(micro_options_get_int(NULL, "client_retries"), 5);

    const micro_option_desc *k = micro_options_known();
    size_t n = 0;
    while (k[n].name != NULL) {
        n++;
    }
    /* Every Go Micro flag this version reads is known, once. */
    assert_true(n >= 34);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            assert_string_not_equal(k[i].name, k[j].name);
        }
    }
}

static void
test_setters(void **state)
{
    micro_options *o = *state;
    assert_int_equal(micro_options_set_str(o, "registry", "mdns"), 0);
    assert_string_equal(micro_options_get_str(o, "registry"), "mdns");
    assert_true(micro_options_is_set(o, "registry"));
    assert_int_equal(micro_options_set_str(o, "registry.address", "a:1"), 0);
    assert_string_equal(micro_options_get_str(o, "registry_address"), "a:1");

    assert_int_equal(micro_options_set_int(o, "client_retries", 2), 0);
    assert_int_equal(micro_options_get_int(o, "client_retries"), 2);
    assert_int_equal(micro_options_set_ms(o, "register_ttl", 1500), 0);
    assert_int_equal(micro_options_get_ms(o, "register_ttl"), 1500);
    assert_int_equal(micro_options_set_bool(o, "server_inline", true), 0);
    assert_true(micro_options_get_bool(o, "server_inline"));

    /* Text forms go through the option's type. */
    assert_int_equal(micro_options_set_str(o, "client_pool_size", "7"), 0);
    assert_int_equal(micro_options_get_int(o, "client_pool_size"), 7);
    assert_int_equal(micro_options_set_str(o, "server_inline", "no"), 0);
    assert_false(micro_options_get_bool(o, "server_inline"));

    assert_int_equal(micro_options_set_str(o, "nope", "x"), MICRO_ENOENT);
    assert_int_equal(micro_options_set_int(o, "nope", 1), MICRO_ENOENT);
    assert_int_equal(micro_options_set_int(o, "registry", 1), MICRO_EBADTYPE);
    assert_int_equal(
        micro_options_set_bool(o, "client_retries", true), MICRO_EBADTYPE);
    assert_int_equal(
        micro_options_set_ms(o, "register_ttl", -1), MICRO_EBADTYPE);
    assert_int_equal(
        micro_options_set_str(o, "client_retries", "5x"), MICRO_EBADTYPE);
    assert_int_equal(
        micro_options_set_str(o, "client_retries", ""), MICRO_EBADTYPE);
    assert_int_equal(
        micro_options_set_str(o, "server_inline", "maybe"), MICRO_EBADTYPE);
    assert_int_equal(micro_options_get_int(o, "client_retries"), 2);
}

static void
expect_ms(micro_options *o, const char *text, int64_t ms)
{
    assert_int_equal(micro_options_set_str(o, "register_ttl", text), 0);
    assert_int_equal(micro_options_get_ms(o, "register_ttl"), ms);
}

static void
test_durations(void **state)
{
    micro_options *o = *state;
    expect_ms(o, "60", 60000); /* bare number: seconds, like Go Micro */
    expect_ms(o, "0", 0);
    expect_ms(o, "1m30s", 90000);
    expect_ms(o, "250ms", 250);
    expect_ms(o, "500ms", 500);
    expect_ms(o, "5s", 5000);
    expect_ms(o, "1m", 60000);
    expect_ms(o, "2h", 7200000);
    expect_ms(o, "1.5s", 1500);
    expect_ms(o, "1h2m3s4ms", 3723004);
    expect_ms(o, "100us", 0);
    expect_ms(o, "1500us", 2);
    expect_ms(o, "1ns", 0);
    expect_ms(o, "2000000ns", 2);
    static const char *const bad[] = {"-1", "-5s", "", "s", "5x", "5 s",
        "1e3s", "0x10s", "inf", "nan", "1m30", " 5s", "5s ", "--1",
        "1e13", "1e400h"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            micro_options_set_str(o, "register_ttl", bad[i]), MICRO_EBADTYPE);
    }
    assert_int_equal(micro_options_get_ms(o, "register_ttl"), 2);
    /* Durations too long for an int64 of nanoseconds saturate (they used
     * to overflow where the client turns the timeout into ns). */
    expect_ms(o, "99999999999999999999h", MICRO_DURATION_MAX_MS);
}

/* The longest duration, and everything beyond it, as text and as a
 * number; micro_parse_duration_ms agrees with the options. */
static void
test_duration_saturates(void **state)
{
    micro_options *o = *state;
    /* INT64_MAX / 1e6 - 1: its ns plus a receiver's rounding up to ms
     * still fit an int64. */
    assert_true(MICRO_DURATION_MAX_MS * 1000000 + 999999 <= INT64_MAX);
    assert_true((uint64_t) (MICRO_DURATION_MAX_MS + 1) * 1000000u + 999999u >
        (uint64_t) INT64_MAX);
    expect_ms(o, "9223372036853ms", MICRO_DURATION_MAX_MS);
    expect_ms(o, "9223372036852ms", MICRO_DURATION_MAX_MS - 1);
    expect_ms(o, "9223372036854ms", MICRO_DURATION_MAX_MS);
    expect_ms(o, "10000000000000", MICRO_DURATION_MAX_MS); /* seconds */
}

static void
test_duration_saturates_numbers(void **state)
{
    micro_options *o = *state;
    static const char *const huge[] = {"106751991167h", "9999999999999999m",
        "18446744073709551616ns", "2562047788015216h1m",
        /* 400 digits: strtold overflows to infinity */
        "1000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000000000000000000000000000000000000000000000000000"
        "0000000000000000s"};
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        assert_int_equal(
            micro_options_set_str(o, "client_request_timeout", huge[i]), 0);
        assert_int_equal(micro_options_get_ms(o, "client_request_timeout"),
            MICRO_DURATION_MAX_MS);
        int64_t ms = 0;
        assert_int_equal(micro_parse_duration_ms(huge[i], &ms), 0);
        assert_int_equal(ms, MICRO_DURATION_MAX_MS);
    }
    assert_int_equal(
        micro_options_set_ms(o, "client_request_timeout", INT64_MAX), 0);
    assert_int_equal(micro_options_get_ms(o, "client_request_timeout"),
        MICRO_DURATION_MAX_MS);
    assert_int_equal(
        micro_options_set_ms(o, "client_request_timeout", 1234), 0);
    assert_int_equal(micro_options_get_ms(o, "client_request_timeout"), 1234);
    assert_int_equal(micro_options_set_ms(o, "client_request_timeout", -1),
        MICRO_EBADTYPE);
    /* Tiny values round to zero rather than fail. */
    int64_t ms = 7;
    assert_int_equal(micro_parse_duration_ms("0.0000000000001s", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(micro_parse_duration_ms("1500ms", &ms), 0);
    assert_int_equal(ms, 1500);
    static const char *const bad[] = {"1e13", "-1s", "inf", "", "5x",
        "300000y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = 7;
        assert_int_equal(micro_parse_duration_ms(bad[i], &ms), MICRO_EINVAL);
        assert_int_equal(ms, 7);
    }
    assert_int_equal(micro_parse_duration_ms(NULL, &ms), MICRO_EINVAL);
    assert_int_equal(micro_parse_duration_ms("1s", NULL), MICRO_EINVAL);
}

static void
test_env_and_flags(void **state)
{
    micro_options *o = *state;
    setenv("MICRO_REGISTRY", "etcd", 1);
    setenv("MICRO_REGISTER_TTL", "90", 1);
    setenv("MICRO_SERVER_ADDRESS", "127.0.0.1:9090", 1);
    setenv("MICRO_CLIENT_RETRIES", "3", 1);

    char *args[] = {"prog", "--registry=mdns", "pos1", "--unknown=1",
        "--register_ttl", "1m30s", "--server_inline", "-x", "pos2",
        "--client_pool_size=9", NULL};
    int argc = 10;
    bool help = true;
    assert_int_equal(micro_options_parse_args(o, &argc, args, &help), 0);
    assert_false(help);
    assert_int_equal(argc, 5);
    assert_string_equal(args[0], "prog");
    assert_string_equal(args[1], "pos1");
    assert_string_equal(args[2], "--unknown=1");
    assert_string_equal(args[3], "-x");
    assert_string_equal(args[4], "pos2");
    assert_null(args[5]);

    /* Flags win over the environment even when env is loaded after. */
    assert_int_equal(micro_options_load_env(o), 0);
    assert_string_equal(micro_options_get_str(o, "registry"), "mdns");
    assert_int_equal(micro_options_get_ms(o, "register_ttl"), 90000);
    assert_true(micro_options_get_bool(o, "server_inline"));
    assert_int_equal(micro_options_get_int(o, "client_pool_size"), 9);
    /* ...while the environment wins over defaults. */
    assert_string_equal(
        micro_options_get_str(o, "server_address"), "127.0.0.1:9090");
    assert_int_equal(micro_options_get_int(o, "client_retries"), 3);

    /* Env over a setter value, flag over env. */
    micro_options *p = NULL;
    assert_int_equal(micro_options_new(&p), 0);
    assert_int_equal(micro_options_set_str(p, "registry", "consul"), 0);
    assert_int_equal(micro_options_load_env(p), 0);
    assert_string_equal(micro_options_get_str(p, "registry"), "etcd");
    assert_int_equal(micro_options_get_ms(p, "register_ttl"), 90000);
    char *a2[] = {"prog", "--registry", "nats", NULL};
    argc = 3;
    assert_int_equal(micro_options_parse_args(p, &argc, a2, NULL), 0);
    assert_int_equal(argc, 1);
    assert_null(a2[1]);
    assert_string_equal(micro_options_get_str(p, "registry"), "nats");

    setenv("MICRO_CLIENT_RETRIES", "many", 1);
    assert_int_equal(micro_options_load_env(p), MICRO_EBADTYPE);
    micro_options_free(p);

    unsetenv("MICRO_REGISTRY");
    unsetenv("MICRO_REGISTER_TTL");
    unsetenv("MICRO_SERVER_ADDRESS");
    unsetenv("MICRO_CLIENT_RETRIES");
}

static void
test_flag_errors_and_bools(void **state)
{
    micro_options *o = *state;
    char *a[] = {"prog", "--server_inline=false", "--client_retries", NULL};
    int argc = 3;
    assert_int_equal(
        micro_options_parse_args(o, &argc, a, NULL), MICRO_EBADTYPE);
    assert_false(micro_options_get_bool(o, "server_inline"));
    assert_int_equal(argc, 2);
    assert_string_equal(a[1], "--client_retries");

    char *b[] = {"prog", "--register_ttl=-1", "rest", NULL};
    argc = 3;
    assert_int_equal(
        micro_options_parse_args(o, &argc, b, NULL), MICRO_EBADTYPE);
    assert_int_equal(argc, 3);

    /* A bool flag does not eat the next argument; "--" ends our flags. */
    char *c[] = {"prog", "--server_inline", "file", "--", "--registry=x",
        NULL};
    argc = 5;
    assert_int_equal(micro_options_parse_args(o, &argc, c, NULL), 0);
    assert_int_equal(argc, 4);
    assert_string_equal(c[1], "file");
    assert_string_equal(c[2], "--");
    assert_string_equal(c[3], "--registry=x");
    assert_true(micro_options_get_bool(o, "server_inline"));
    assert_false(micro_options_is_set(o, "registry"));
}

static void
test_help_and_dup(void **state)
{
    micro_options *o = *state;
    fflush(stdout);
    FILE *saved = stdout;
    FILE *tmp = tmpfile();
    stdout = tmp;
    char *a[] = {"prog", "--help", "x", NULL};
    int argc = 3;
    bool help = false;
    assert_int_equal(micro_options_parse_args(o, &argc, a, &help), 0);
    stdout = saved;
    assert_true(help);
    assert_int_equal(argc, 2);
    assert_string_equal(a[1], "x");
    char buf[8192] = {0};
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof(buf) - 1, tmp);
    fclose(tmp);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "--register_ttl"));
    assert_non_null(strstr(buf, "MICRO_REGISTER_TTL"));
    assert_non_null(strstr(buf, "60s"));

    assert_int_equal(micro_options_set_str(o, "server_name", "greeter"), 0);
    assert_int_equal(micro_options_set_int(o, "client_retries", 1), 0);
    micro_options *d = NULL;
    assert_int_equal(micro_options_dup(o, &d), 0);
    assert_int_equal(micro_options_set_str(o, "server_name", "other"), 0);
    assert_string_equal(micro_options_get_str(d, "server_name"), "greeter");
    assert_int_equal(micro_options_get_int(d, "client_retries"), 1);
    assert_true(micro_options_is_set(d, "server_name"));
    assert_false(micro_options_is_set(d, "registry"));
    micro_options_free(d);
    micro_options_free(NULL);
}


/* ------------------------------------------------------------------ */
/* Options per plugin.                                                  */

/* The last warnings logged (one line each), to check what they name. */
static char logged[4096];

static void
log_capture(void *arg, micro_log_level lvl, const char *comp, const char *msg)
{
    (void) arg;
    (void) lvl;
    size_t l = strlen(logged);
    snprintf(logged + l, sizeof(logged) - l, "%s: %s\n", comp, msg);
}

static void
capture_logs(void)
{
    logged[0] = '\0';
    micro_log_set_logger(log_capture, NULL);
}

/* The descriptor of name in a NULL-terminated table, or NULL. */
static const micro_option_desc *
desc_in(const micro_option_desc *t, const char *name)
{
    for (; t != NULL && t->name != NULL; t++) {
        if (strcmp(t->name, name) == 0) {
            return t;
        }
    }
    return NULL;
}

/* The options row (kind, name) of src/plugins.c declares. */
static const micro_option_desc *
row_options(const char *kind, const char *name, bool *built)
{
    micro__plugin_info p;
    for (size_t i = 0; micro__plugin_at(i, &p); i++) {
        if (strcmp(p.kind, kind) == 0 && strcmp(p.name, name) == 0) {
            if (built != NULL) {
                *built = p.built;
            }
            return p.options;
        }
    }
    fail_msg("no row %s %s", kind, name);
    return NULL;
}

/* Each option lives where it is read: the core keeps the framework's, and
 * every plugin declares its own in its ops table (or its row). */
static void
test_options_per_plugin(void **state)
{
    (void) state;
    const micro_option_desc *known = micro_options_known();
    /* Every declaration of every row is known, with its type, and named
     * after its kind. */
    micro__plugin_info p;
    size_t rows = 0;
    for (size_t i = 0; micro__plugin_at(i, &p); i++, rows++) {
        for (const micro_option_desc *d = p.options; d && d->name; d++) {
            const micro_option_desc *k = desc_in(known, d->name);
            assert_non_null(k);
            assert_int_equal(k->type, d->type);
            assert_int_equal(strncmp(d->name, p.kind, strlen(p.kind)), 0);
            assert_int_equal(d->name[strlen(p.kind)], '_');
            assert_non_null(d->help);
        }
    }
    assert_true(rows >= 20);

    /* Where each option is declared. */
    assert_non_null(desc_in(micro_registry_mdns_ops.options,
        "registry_timeout"));
    assert_non_null(desc_in(micro_registry_mdns_ops.options,
        "registry_interfaces"));
    assert_non_null(desc_in(micro_registry_mdns_ops.options,
        "registry_ipv6"));
    assert_null(micro_registry_memory_ops.options);
    assert_non_null(desc_in(micro_broker_http_ops.options,
        "broker_address"));
    assert_null(micro_broker_memory_ops.options);
    assert_non_null(desc_in(micro_transport_http_ops.options,
        "transport_max_message_size"));
    assert_non_null(desc_in(micro_transport_http_ops.options,
        "transport_window"));
    const micro_selector_ops *sels[] = {&micro_selector_random_ops,
        &micro_selector_roundrobin_ops, &micro_selector_leastconn_ops,
        &micro_selector_p2c_ops};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(sels[i]->abi, MICRO_SELECTOR_ABI);
        assert_non_null(desc_in(sels[i]->options, "selector_ttl"));
        assert_non_null(desc_in(sels[i]->options, "selector_backoff"));
    }
    assert_non_null(desc_in(micro_server_mucp_ops.options, "server_workers"));
    assert_non_null(desc_in(micro_server_mucp_ops.options, "server_inline"));
    assert_non_null(desc_in(micro_client_mucp_ops.options,
        "client_retry_on"));
    /* The nats broker's options are in its row, loaded or not, and they
     * are the module's own. */
    const micro_option_desc *nats = row_options("broker", "nats", NULL);
    assert_non_null(desc_in(nats, "broker_address"));
#ifdef MICRO_HAVE_NATS
    assert_ptr_equal(nats, micro_broker_nats_ops.options);
#endif
    /* Plugins not built declare their Go Micro flags in their rows. */
    bool built = true;
    const micro_option_desc *nats_tr =
        row_options("transport", "nats", &built);
    assert_false(built);
    assert_string_equal(desc_in(nats_tr, "transport_address")->def,
        "nats://127.0.0.1:4222");
    /* A built plugin's come from its ops table. */
    assert_ptr_equal(row_options("registry", "etcd", &built),
        micro_registry_etcd_ops.options);
    assert_true(built);
    assert_non_null(desc_in(row_options("transport", "nats", NULL),
        "transport_address"));

    /* The core declares none of those. */
    static const char *const plugin_only[] = {"registry_timeout",
        "registry_address", "broker_address", "transport_window",
        "selector_ttl", "server_workers", "client_retry_on"};
    micro__plugin_info q;
    for (size_t i = 0; i < MICRO_ARRAY_LEN_T(plugin_only); i++) {
        size_t declarers = 0;
        for (size_t j = 0; micro__plugin_at(j, &q); j++) {
            declarers += desc_in(q.options, plugin_only[i]) != NULL;
        }
        assert_true(declarers >= 1);
    }
    static const char *const core_only[] = {"registry", "broker",
        "transport", "selector", "server", "client", "register_ttl",
        "register_interval", "log_level", "server_name", "server_address",
        "server_drain", "client_retries", "client_request_timeout",
        "client_pool_size", "client_dial_timeout", "client_content_type"};
    for (size_t i = 0; i < MICRO_ARRAY_LEN_T(core_only); i++) {
        assert_non_null(desc_in(known, core_only[i]));
        for (size_t j = 0; micro__plugin_at(j, &q); j++) {
            assert_null(desc_in(q.options, core_only[i]));
        }
    }
}

/* A plugin option's default is its plugin's: the one the options choose,
 * or the one a front end scoped them to. */
static void
test_plugin_defaults(void **state)
{
    micro_options *o = *state;
    /* broker "http" by default */
    assert_string_equal(micro_options_get_str(o, "broker_address"),
        "127.0.0.1:0");
    assert_int_equal(micro_options_set_str(o, "broker", "nats"), 0);
    assert_string_equal(micro_options_get_str(o, "broker_address"),
        "nats://127.0.0.1:4222");
    /* memory declares no address; http and nats disagree: none. */
    assert_int_equal(micro_options_set_str(o, "broker", "memory"), 0);
    assert_null(micro_options_get_str(o, "broker_address"));
    assert_null(micro_options_get_str(NULL, "registry_address"));
    assert_int_equal(micro_options_set_str(o, "registry", "consul"), 0);
    assert_string_equal(micro_options_get_str(o, "registry_address"),
        "127.0.0.1:8500");
    /* Only the nats transport declares transport_address: not http's. */
    assert_null(micro_options_get_str(o, "transport_address"));
    assert_int_equal(micro_options_set_str(o, "transport", "nats"), 0);
    assert_string_equal(micro_options_get_str(o, "transport_address"),
        "nats://127.0.0.1:4222");
    /* One declarer, or declarers that agree: that default everywhere. */
    assert_int_equal(micro_options_get_ms(NULL, "selector_ttl"), 60000);
    assert_int_equal(micro_options_get_ms(NULL, "registry_timeout"), 100);
    assert_int_equal(micro_options_get_int(NULL, "server_workers"), 16);
    const micro_option_desc *k = desc_in(micro_options_known(),
        "broker_address");
    assert_non_null(k);
    assert_null(k->def); /* http and nats differ */

    /* Scoped to nats, whatever the options choose. */
    assert_int_equal(micro_options_set_str(o, "broker", "http"), 0);
    micro_options *s = NULL;
    assert_int_equal(micro__options_scoped(o, "broker", "nats",
                         row_options("broker", "nats", NULL), &s),
        0);
    assert_string_equal(micro_options_get_str(s, "broker_address"),
        "nats://127.0.0.1:4222");
    /* A value set wins over every default; the copy keeps its scope. */
    micro_options *d = NULL;
    assert_int_equal(micro_options_dup(s, &d), 0);
    assert_string_equal(micro_options_get_str(d, "broker_address"),
        "nats://127.0.0.1:4222");
    assert_int_equal(micro_options_set_str(d, "broker.address", "n:1"), 0);
    assert_string_equal(micro_options_get_str(d, "broker_address"), "n:1");
    micro_options_free(d);
    micro_options_free(s);

    /* A table without a row (a user's plugin): its own options read their
     * declared defaults, but cannot be set by name. */
    static const micro_option_desc mine[] = {
        {"broker_knob", MICRO_OPT_MS, "7s", "a knob"},
        {"broker_address", MICRO_OPT_STR, "mine:1", "where"},
        MICRO_OPTION_END,
    };
    assert_int_equal(micro__options_scoped(NULL, "broker", "mine", mine, &s),
        0);
    assert_int_equal(micro_options_get_ms(s, "broker_knob"), 7000);
    assert_string_equal(micro_options_get_str(s, "broker_address"),
        "mine:1");
    assert_int_equal(micro_options_get_ms(s, "registry_timeout"), 100);
    assert_int_equal(micro_options_set_ms(s, "broker_knob", 1),
        MICRO_ENOENT);
    micro_options_free(s);
}

/* Unknown names and bad values are logged with the plugins that declare
 * the option. */
static void
test_errors_name_the_plugin(void **state)
{
    micro_options *o = *state;
    capture_logs();
    assert_int_equal(micro_options_set_str(o, "registry_timeout", "soon"),
        MICRO_EBADTYPE);
    assert_non_null(strstr(logged, "registry mdns, etcd, consul: option "
                                   "registry_timeout wants a duration"));
    logged[0] = '\0';
    assert_int_equal(micro_options_set_int(o, "broker.address", 1),
        MICRO_EBADTYPE);
    assert_non_null(strstr(logged, "broker http, nats: option "
                                   "broker_address wants a string"));
    logged[0] = '\0';
    assert_int_equal(micro_options_set_bool(o, "selector_ttl", true),
        MICRO_EBADTYPE);
    assert_non_null(strstr(logged,
        "selector random, roundrobin, leastconn, p2c: option selector_ttl"));
    logged[0] = '\0';
    assert_int_equal(micro_options_set_str(o, "server_drain", "x"),
        MICRO_EBADTYPE);
    assert_non_null(strstr(logged, "server: option server_drain wants"));
    logged[0] = '\0';
    assert_int_equal(micro_options_set_str(o, "registry_foo", "x"),
        MICRO_ENOENT);
    assert_non_null(strstr(logged,
        "unknown option registry_foo: no registry plugin declares it"));
    logged[0] = '\0';
    assert_int_equal(micro_options_set_str(o, "nope", "x"), MICRO_ENOENT);
    assert_non_null(strstr(logged, "unknown option nope"));
    /* By flag and environment too. */
    logged[0] = '\0';
    char *a[] = {"prog", "--transport_window=big", NULL};
    int argc = 2;
    assert_int_equal(micro_options_parse_args(o, &argc, a, NULL),
        MICRO_EBADTYPE);
    assert_non_null(strstr(logged, "transport http: option "
                                   "transport_window wants an integer"));
    logged[0] = '\0';
    setenv("MICRO_SERVER_WORKERS", "lots", 1);
    assert_int_equal(micro_options_load_env(o), MICRO_EBADTYPE);
    unsetenv("MICRO_SERVER_WORKERS");
    /* declared by both servers (grpc runs on mucp's workers) */
    assert_non_null(strstr(logged, "server mucp, grpc: option server_workers"));
    micro_log_set_logger(micro_log_null, NULL);
}

/* A plugin's option set by setter, environment or flag reaches the
 * plugin, and unset it reads the plugin's declared default. */
static void
test_plugin_option_reaches_plugin(void **state)
{
    (void) state;
#ifdef MICRO_HAVE_NATS
    /* The nats broker keeps its servers from init (no connection yet). */
    micro_broker *b = NULL;
    assert_int_equal(micro_broker_new_by_name(&b, "nats", NULL, NULL, NULL),
        0);
    assert_string_equal(micro_broker_address(b), "nats://127.0.0.1:4222");
    micro_broker_free(b);
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    /* The options choose http, whose default differs: nats still reads
     * its own. */
    assert_int_equal(micro_broker_new_by_name(&b, "nats", NULL, NULL, o), 0);
    assert_string_equal(micro_broker_address(b), "nats://127.0.0.1:4222");
    micro_broker_free(b);
    assert_int_equal(
        micro_options_set_str(o, "broker.address", "nats://h1:1"), 0);
    assert_int_equal(micro_broker_new_by_name(&b, "nats", NULL, NULL, o), 0);
    assert_string_equal(micro_broker_address(b), "nats://h1:1");
    micro_broker_free(b);
    setenv("MICRO_BROKER_ADDRESS", "nats://h2:2", 1);
    assert_int_equal(micro_options_load_env(o), 0);
    unsetenv("MICRO_BROKER_ADDRESS");
    assert_int_equal(micro_broker_new_by_name(&b, "nats", NULL, NULL, o), 0);
    assert_string_equal(micro_broker_address(b), "nats://h2:2");
    micro_broker_free(b);
    char *a[] = {"prog", "--broker_address", "nats://h3:3", NULL};
    int argc = 3;
    assert_int_equal(micro_options_parse_args(o, &argc, a, NULL), 0);
    assert_int_equal(micro_broker_new_by_name(&b, "nats", NULL, NULL, o), 0);
    assert_string_equal(micro_broker_address(b), "nats://h3:3");
    micro_broker_free(b);
    micro_options_free(o);
#endif
    /* The mDNS registry reads registry_ipv6 (and refuses a bad one); its
     * sockets open on first use, so nothing is sent here. */
    micro_options *m = NULL;
    assert_int_equal(micro_options_new(&m), 0);
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new_by_name(&r, "mdns", m), 0);
    micro_registry_free(r);
    setenv("MICRO_REGISTRY_IPV6", "sideways", 1);
    assert_int_equal(micro_options_load_env(m), 0);
    unsetenv("MICRO_REGISTRY_IPV6");
    assert_int_equal(micro_registry_new_by_name(&r, "mdns", m),
        MICRO_EINVAL);
    assert_null(r);
    char *a2[] = {"prog", "--registry_ipv6=off", NULL};
    int argc2 = 2;
    assert_int_equal(micro_options_parse_args(m, &argc2, a2, NULL), 0);
    assert_int_equal(micro_registry_new_by_name(&r, "mdns", m), 0);
    micro_registry_free(r);
    micro_options_free(m);
}

/* The service warns about an option its chosen plugin does not read, and
 * a plugin that is not built fails clearly. */
static void
test_service_chosen_plugins(void **state)
{
    (void) state;
    capture_logs();
    char *a[] = {"prog", "--registry=memory", "--broker=memory",
        "--registry_address=10.0.0.1:2379", "--server_address=127.0.0.1:0",
        NULL};
    int argc = 5;
    micro_service *svc = NULL;
    assert_int_equal(micro_service_new(&svc, "opt.test", &argc, a), 0);
    assert_int_equal(argc, 1);
    assert_non_null(micro_service_registry(svc));
    assert_non_null(strstr(logged, "option registry_address is set, but "
                                   "registry memory does not read it (an "
                                   "option of registry etcd, consul)"));
    micro_service_free(svc);

    logged[0] = '\0';
    char *b[] = {"prog", "--registry=consul", "--registry_address=e:8500",
        "--broker=memory", NULL};
    argc = 4;
    assert_int_equal(micro_service_new(&svc, "opt.test", &argc, b), 0);
    assert_non_null(micro_service_registry(svc));
    assert_string_equal(micro_registry_name(micro_service_registry(svc)),
        "consul");
    assert_null(strstr(logged, "does not read"));
    micro_service_free(svc);
    micro_log_set_logger(micro_log_null, NULL);
}

/* --help lists the core's options, then each plugin's under its name. */
static void
test_help_grouped(void **state)
{
    (void) state;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    micro_options_print_help(tmp);
    long len = ftell(tmp);
    assert_true(len > 0);
    char *buf = calloc(1, (size_t) len + 1);
    assert_non_null(buf);
    rewind(tmp);
    assert_int_equal(fread(buf, 1, (size_t) len, tmp), (size_t) len);
    fclose(tmp);

    /* Groups, in order. */
    static const char *const groups[] = {"\nservice:\n", "\nserver:\n",
        "\nclient:\n", "\nregistry memory: no options\n",
        "\nregistry mdns:\n", "\nregistry etcd:\n",
        "\nregistry consul:\n",
        "\nbroker http:\n", "\nbroker nats", "\ntransport http:\n",
        "\nselector random:\n", "\nselector p2c:\n", "\nserver mucp:\n",
        "\nclient mucp:\n"};
    const char *at = buf;
    for (size_t i = 0; i < MICRO_ARRAY_LEN_T(groups); i++) {
        const char *g = strstr(at, groups[i]);
        if (g == NULL) {
            fail_msg("group \"%s\" missing or out of order", groups[i] + 1);
        }
        at = g + 1;
    }
    /* The lines of a group up to the next one. */
    char grp[4096];
    struct {
        const char *group;
        const char *has[3];
    } want[] = {
        {"\nservice:\n", {"--registry ", "MICRO_REGISTER_TTL", "60s"}},
        {"\nserver:\n", {"--server_address", "MICRO_SERVER_DRAIN", "10s"}},
        {"\nclient:\n", {"--client_retries", "MICRO_CLIENT_POOL_SIZE",
                            "100"}},
        {"\nregistry mdns:\n", {"--registry_timeout", "MICRO_REGISTRY_IPV6",
                                   "100ms"}},
        {"\nregistry etcd:\n", {"--registry_address",
                                               "MICRO_REGISTRY_ADDRESS",
                                               "127.0.0.1:2379"}},
        {"\nbroker http:\n", {"--broker_address", "MICRO_BROKER_ADDRESS",
                                 "127.0.0.1:0"}},
        {"\nbroker nats", {"--broker_address", "MICRO_BROKER_ADDRESS",
                              "nats://127.0.0.1:4222"}},
        {"\ntransport http:\n", {"--transport_max_message_size",
                                    "MICRO_TRANSPORT_WINDOW", "4194304"}},
        {"\nselector p2c:\n", {"--selector_ttl", "MICRO_SELECTOR_BACKOFF",
                                  "1m"}},
        {"\nserver mucp:\n", {"--server_workers", "MICRO_SERVER_INLINE",
                                 "16"}},
        {"\nclient mucp:\n", {"--client_retry_on", "MICRO_CLIENT_RETRY_ON",
                                 "timeout,dial"}},
    };
    for (size_t i = 0; i < MICRO_ARRAY_LEN_T(want); i++) {
        const char *g = strstr(buf, want[i].group);
        assert_non_null(g);
        g++;
        const char *end = strstr(g, "\n\n");
        size_t n = end != NULL ? (size_t) (end - g) : strlen(g);
        assert_true(n < sizeof(grp));
        memcpy(grp, g, n);
        grp[n] = '\0';
        for (size_t j = 0; j < 3; j++) {
            if (strstr(grp, want[i].has[j]) == NULL) {
                fail_msg("group %s lacks %s:\n%s", want[i].group + 1,
                    want[i].has[j], grp);
            }
        }
    }
    /* A plugin's option is not in the core's groups. */
    const char *srv = strstr(buf, "\nserver:\n");
    const char *cli = strstr(buf, "\nregistry memory");
    assert_true(srv != NULL && cli != NULL);
    size_t n = (size_t) (cli - srv);
    memcpy(grp, srv, n < sizeof(grp) ? n : sizeof(grp) - 1);
    grp[n < sizeof(grp) ? n : sizeof(grp) - 1] = '\0';
    assert_null(strstr(grp, "--server_workers"));
    assert_null(strstr(grp, "--client_retry_on"));
    assert_null(strstr(grp, "--registry_timeout"));
    /* The plugin choices list the names. */
    assert_non_null(strstr(buf, "registry for discovery: memory, mdns, etcd, "
                                "consul"));
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_setters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_duration_saturates, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_duration_saturates_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_and_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_flag_errors_and_bools, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_and_dup, setup, teardown),
        cmocka_unit_test(test_options_per_plugin),
        cmocka_unit_test_setup_teardown(test_plugin_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_errors_name_the_plugin, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_plugin_option_reaches_plugin, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_service_chosen_plugins, setup, teardown),
        cmocka_unit_test(test_help_grouped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
