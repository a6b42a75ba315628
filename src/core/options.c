/* Named options: one table behind the C setters, MICRO_* env and flags. */
#include "core/internal.h"

#include <ctype.h>
#include <errno.h>

static const micro_option_desc known[] = {
    {"server_name", MICRO_OPT_STR, "go.micro.server", "name of the server"},
    {"server_version", MICRO_OPT_STR, "latest", "version of the server"},
    {"server_id", MICRO_OPT_STR, NULL, "id of the server (random uuid)"},
    {"server_address", MICRO_OPT_STR, ":0", "bind address for the server"},
    {"server_advertise", MICRO_OPT_STR, NULL,
        "address to advertise for discovery"},
    {"server_metadata", MICRO_OPT_STR, NULL,
        "metadata for the server: k=v,k2=v2"},
    {"server_workers", MICRO_OPT_INT, "16", "handler worker threads"},
    {"server_drain", MICRO_OPT_MS, "10s",
        "how long shutdown waits for in-flight requests"},
    {"server_inline", MICRO_OPT_BOOL, "false",
        "run handlers on the loop thread (non-blocking handlers only)"},
    {"registry", MICRO_OPT_STR, "mdns",
        "registry for discovery: mdns (multicast DNS, no server) or memory"},
    {"registry_address", MICRO_OPT_STR, NULL,
        "registry addresses, comma-separated"},
    {"registry_timeout", MICRO_OPT_MS, "100ms", "registry lookup timeout"},
    {"registry_interfaces", MICRO_OPT_STR, NULL,
        "interfaces mDNS uses, comma-separated names (default: every "
        "interface that is up)"},
    {"registry_ipv6", MICRO_OPT_STR, "on", "mDNS over IPv6 too: on, off, only"},
    {"register_ttl", MICRO_OPT_MS, "60s",
        "TTL of a registration (bare number: seconds)"},
    {"register_interval", MICRO_OPT_MS, "30s",
        "interval between re-registrations (bare number: seconds)"},
    {"selector", MICRO_OPT_STR, "random",
        "strategy for picking nodes: random, roundrobin, leastconn or p2c"},
    {"selector_ttl", MICRO_OPT_MS, "1m", "TTL of the selector's cache"},
    {"selector_backoff", MICRO_OPT_MS, "5s",
        "how long a failing node is avoided"},
    {"transport", MICRO_OPT_STR, "http", "transport for requests"},
    {"transport_address", MICRO_OPT_STR, NULL, "transport addresses"},
    {"transport_max_message_size", MICRO_OPT_INT, "4194304",
        "largest message body accepted, in bytes"},
    {"transport_max_header_size", MICRO_OPT_INT, "1048576",
        "largest header block accepted, in bytes"},
    {"transport_read_timeout", MICRO_OPT_MS, "30s",
        "idle read timeout of a connection"},
    {"transport_max_headers", MICRO_OPT_INT, "1000",
        "header fields in one message (more: 431 and close)"},
    {"transport_idle_timeout", MICRO_OPT_MS, "5m",
        "an accepted connection with nothing in progress is closed after"},
    {"transport_max_conns", MICRO_OPT_INT, "0",
        "accepted connections (0: 7/8 of the descriptor limit); idle ones "
        "are closed to make room"},
    {"transport_max_buffered", MICRO_OPT_INT, "134217728",
        "bytes of partially received messages over all connections"},
    {"transport_window", MICRO_OPT_INT, "1048576",
        "unsent bytes per connection above which it is no longer read, and "
        "a stream's send window"},
    {"client", MICRO_OPT_STR, "mucp", "client protocol"},
    {"client_retries", MICRO_OPT_INT, "5", "retries of a failed request"},
    {"client_request_timeout", MICRO_OPT_MS, "30s",
        "timeout of one request"},
    {"client_conn_timeout", MICRO_OPT_MS, "5s", "connection timeout"},
    {"client_dial_timeout", MICRO_OPT_MS, "5s", "dial timeout"},
    {"client_pool_size", MICRO_OPT_INT, "100",
        "idle connections kept per address"},
    {"client_pool_ttl", MICRO_OPT_MS, "1m", "lifetime of a pooled connection"},
    {"client_content_type", MICRO_OPT_STR, "application/json",
        "content type of requests"},
    {"client_retry_on", MICRO_OPT_STR, "timeout,dial",
        "errors that are retried, comma-separated"},
    {"broker", MICRO_OPT_STR, "http", "broker for pub/sub"},
    {"broker_address", MICRO_OPT_STR, NULL, "broker addresses"},
    {"server", MICRO_OPT_STR, "mucp", "server protocol"},
    {"log_level", MICRO_OPT_STR, "notice",
        "err, warn, notice, info or debug"},
    {NULL, MICRO_OPT_STR, NULL, NULL},
};

#define NKNOWN (MICRO_ARRAY_LEN(known) - 1)

/* Where a value came from: the environment never overrides a flag. */
enum opt_src { SRC_NONE = 0, SRC_SET, SRC_ENV, SRC_FLAG };

typedef struct opt_val {
    enum opt_src src;
    char *s;   /* MICRO_OPT_STR; may be NULL */
    int64_t n; /* MICRO_OPT_INT and MICRO_OPT_MS; bool as 0/1 */
} opt_val;

struct micro_options {
    opt_val v[NKNOWN];
};

const micro_option_desc *
micro_options_known(void)
{
    return known;
}

/* Index of name in the table, or NKNOWN. '.' matches '_' so that
 * "registry.address" and "registry_address" name the same option. */
static size_t
opt_find(const char *name, size_t len)
{
    if (name == NULL) {
        return NKNOWN;
    }
    for (size_t i = 0; i < NKNOWN; i++) {
        const char *k = known[i].name;
        size_t j = 0;
        while (j < len && k[j] != '\0' &&
            (k[j] == name[j] || (k[j] == '_' && name[j] == '.'))) {
            j++;
        }
        if (j == len && k[j] == '\0') {
            return i;
        }
    }
    return NKNOWN;
}

static size_t
opt_lookup(const char *name)
{
    return name == NULL ? NKNOWN : opt_find(name, strlen(name));
}

/*
 * Go-style duration ("1m30s", "250ms", "1.5h") or a bare number of seconds,
 * rounded to milliseconds. Negative and malformed values are rejected;
 * values too long for MICRO_DURATION_MAX_MS saturate to it (they used to
 * overflow where milliseconds are turned into nanoseconds).
 */
static bool
parse_ms(const char *s, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t ns;
    } units[] = {
        {"ns", 1},
        {"us", 1000},
        {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
        {"\xce\xbcs", 1000}, /* U+03BC Greek mu */
        {"ms", 1000000},
        {"s", 1000000000},
        {"m", 60 * (int64_t) 1000000000},
        {"h", 3600 * (int64_t) 1000000000},
    };
    if (s == NULL || *s == '\0') {
        return false;
    }
    if (*s == '+') {
        s++;
    }
    /* Accumulate in nanoseconds, as a long double to catch overflow. */
    long double total = 0;
    bool any = false;
    while (*s != '\0') {
        if (!isdigit((unsigned char) *s) && *s != '.') {
            return false;
        }
        char *end = NULL;
        errno = 0;
        long double v = strtold(s, &end);
        if (end == s || v < 0) {
            return false;
        }
        if (errno == ERANGE) {
            /* Too many digits: huge (saturated below) or tiny (zero). */
            v = v > 1.0L ? (long double) MICRO_DURATION_MAX_MS * 1e9L : 0.0L;
        } else if (errno != 0) {
            return false;
        }
        /* strtold also takes hex, exponents, inf and nan: be strict. */
        for (const char *p = s; p < end; p++) {
            if (!isdigit((unsigned char) *p) && *p != '.') {
                return false;
            }
        }
        s = end;
        if (*s == '\0' && !any) {
            total = v * 1e9L; /* a bare number: seconds */
            any = true;
            break;
        }
        size_t best = MICRO_ARRAY_LEN(units);
        size_t best_len = 0;
        for (size_t i = 0; i < MICRO_ARRAY_LEN(units); i++) {
            size_t ul = strlen(units[i].unit);
            if (ul > best_len && strncmp(s, units[i].unit, ul) == 0) {
                best = i;
                best_len = ul;
            }
        }
        if (best == MICRO_ARRAY_LEN(units)) {
            return false;
        }
        s += best_len;
        total += v * (long double) units[best].ns;
        any = true;
    }
    if (!any) {
        return false;
    }
    long double ms = total / 1e6L + 0.5L;
    if (!(ms < (long double) MICRO_DURATION_MAX_MS)) {
        *out = MICRO_DURATION_MAX_MS; /* also for an infinite total */
        return true;
    }
    *out = (int64_t) ms;
    return true;
}

int
micro_parse_duration_ms(const char *text, int64_t *ms)
{
    int64_t v = 0;
    if (ms == NULL || !parse_ms(text, &v)) {
        return MICRO_EINVAL;
    }
    *ms = v;
    return 0;
}

static bool
parse_int(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char) *s)) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return false;
    }
    *out = (int64_t) v;
    return true;
}

static bool
parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on", "t"};
    static const char *const no[] = {"false", "0", "no", "off", "f"};
    if (s == NULL) {
        return false;
    }
    for (size_t i = 0; i < MICRO_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Parse text as option i's type into *n (or report failure). */
static bool
parse_value(size_t i, const char *text, int64_t *n)
{
    bool b = false;
    switch (known[i].type) {
    case MICRO_OPT_INT:
        return parse_int(text, n);
    case MICRO_OPT_MS:
        return parse_ms(text, n);
    case MICRO_OPT_BOOL:
        if (!parse_bool(text, &b)) {
            return false;
        }
        *n = b;
        return true;
    case MICRO_OPT_STR:
    default:
        return false;
    }
}

int
micro_options_new(micro_options **out)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    *out = micro__calloc(1, sizeof(micro_options));
    return *out == NULL ? MICRO_ENOMEM : 0;
}

void
micro_options_free(micro_options *o)
{
    if (o == NULL) {
        return;
    }
    for (size_t i = 0; i < NKNOWN; i++) {
        micro__free(o->v[i].s);
    }
    micro__free(o);
}

int
micro_options_dup(const micro_options *o, micro_options **out)
{
    if (o == NULL || out == NULL) {
        return MICRO_EINVAL;
    }
    *out = NULL;
    micro_options *d = micro__calloc(1, sizeof(*d));
    if (d == NULL) {
        return MICRO_ENOMEM;
    }
    for (size_t i = 0; i < NKNOWN; i++) {
        d->v[i] = o->v[i];
        d->v[i].s = NULL;
        if (o->v[i].s != NULL) {
            d->v[i].s = micro__strdup(o->v[i].s);
            if (d->v[i].s == NULL) {
                micro_options_free(d);
                return MICRO_ENOMEM;
            }
        }
    }
    *out = d;
    return 0;
}

static int
unknown_option(const char *name)
{
    micro_log(MICRO_LOG_WARN, "options", "unknown option %s",
        name != NULL ? name : "(null)");
    return MICRO_ENOENT;
}

static int
bad_value(size_t i, const char *what)
{
    static const char *const types[] = {"string", "integer", "duration",
        "boolean"};
    micro_log(MICRO_LOG_WARN, "options", "option %s wants a %s, not %s",
        known[i].name, types[known[i].type], what);
    return MICRO_EBADTYPE;
}

/* Set option i from text, recording where the value came from. */
static int
set_text(micro_options *o, size_t i, const char *value, enum opt_src src)
{
    if (known[i].type == MICRO_OPT_STR) {
        char *s = NULL;
        if (value != NULL) {
            s = micro__strdup(value);
            if (s == NULL) {
                return MICRO_ENOMEM;
            }
        }
        micro__free(o->v[i].s);
        o->v[i].s = s;
        o->v[i].src = src;
        return 0;
    }
    int64_t n = 0;
    if (!parse_value(i, value, &n)) {
        if (value == NULL) {
            return bad_value(i, "NULL");
        }
        char q[96];
        snprintf(q, sizeof(q), "\"%.80s\"", value);
        return bad_value(i, q);
    }
    o->v[i].n = n;
    o->v[i].src = src;
    return 0;
}

int
micro_options_set_str(micro_options *o, const char *name, const char *value)
{
    if (o == NULL) {
        return MICRO_EINVAL;
    }
    size_t i = opt_lookup(name);
    if (i == NKNOWN) {
        return unknown_option(name);
    }
    return set_text(o, i, value, SRC_SET);
}

/* Set a numeric value for an option whose type must be t. */
static int
set_num(micro_options *o, const char *name, micro_opt_type t, int64_t n)
{
    static const char *const what[] = {"a string", "an integer", "a duration",
        "a boolean"};
    if (o == NULL) {
        return MICRO_EINVAL;
    }
    size_t i = opt_lookup(name);
    if (i == NKNOWN) {
        return unknown_option(name);
    }
    if (known[i].type != t) {
        return bad_value(i, what[t]);
    }
    if (t == MICRO_OPT_MS && n < 0) {
        return bad_value(i, "a negative duration");
    }
    if (t == MICRO_OPT_MS && n > MICRO_DURATION_MAX_MS) {
        n = MICRO_DURATION_MAX_MS;
    }
    o->v[i].n = n;
    o->v[i].src = SRC_SET;
    return 0;
}

int
micro_options_set_int(micro_options *o, const char *name, int64_t value)
{
    return set_num(o, name, MICRO_OPT_INT, value);
}

int
micro_options_set_ms(micro_options *o, const char *name, int64_t ms)
{
    return set_num(o, name, MICRO_OPT_MS, ms);
}

int
micro_options_set_bool(micro_options *o, const char *name, bool value)
{
    return set_num(o, name, MICRO_OPT_BOOL, value ? 1 : 0);
}

/* Option i's numeric value: the set one, else the parsed default. */
static int64_t
get_num(const micro_options *o, size_t i)
{
    if (o != NULL && o->v[i].src != SRC_NONE) {
        return o->v[i].n;
    }
    int64_t n = 0;
    if (known[i].def != NULL && !parse_value(i, known[i].def, &n)) {
        n = 0;
    }
    return n;
}

const char *
micro_options_get_str(const micro_options *o, const char *name)
{
    size_t i = opt_lookup(name);
    if (i == NKNOWN) {
        return NULL;
    }
    if (o != NULL && o->v[i].src != SRC_NONE &&
        known[i].type == MICRO_OPT_STR) {
        return o->v[i].s;
    }
    /* Non-string options report their default text when unset, NULL
     * once set (use the typed getters). */
    if (o != NULL && o->v[i].src != SRC_NONE) {
        return NULL;
    }
    return known[i].def;
}

int64_t
micro_options_get_int(const micro_options *o, const char *name)
{
    size_t i = opt_lookup(name);
    if (i == NKNOWN || known[i].type == MICRO_OPT_STR) {
        return 0;
    }
    return get_num(o, i);
}

int64_t
micro_options_get_ms(const micro_options *o, const char *name)
{
    return micro_options_get_int(o, name);
}

bool
micro_options_get_bool(const micro_options *o, const char *name)
{
    return micro_options_get_int(o, name) != 0;
}

bool
micro_options_is_set(const micro_options *o, const char *name)
{
    size_t i = opt_lookup(name);
    return o != NULL && i != NKNOWN && o->v[i].src != SRC_NONE;
}

int
micro_options_load_env(micro_options *o)
{
    if (o == NULL) {
        return MICRO_EINVAL;
    }
    int first_rc = 0;
    for (size_t i = 0; i < NKNOWN; i++) {
        if (o->v[i].src == SRC_FLAG) {
            continue; /* flags win over the environment */
        }
        char env[64] = "MICRO_";
        size_t n = strlen(known[i].name);
        MICRO_ASSERT(n + 7 <= sizeof(env));
        for (size_t j = 0; j < n; j++) {
            env[6 + j] = (char) toupper((unsigned char) known[i].name[j]);
        }
        env[6 + n] = '\0';
        const char *v = getenv(env);
        if (v == NULL || *v == '\0') {
            continue;
        }
        int rc = set_text(o, i, v, SRC_ENV);
        if (rc != 0 && first_rc == 0) {
            first_rc = rc;
        }
    }
    return first_rc;
}

int
micro_options_parse_args(micro_options *o, int *argc, char **argv, bool *help)
{
    if (o == NULL || argc == NULL || argv == NULL || *argc < 1) {
        return MICRO_EINVAL;
    }
    if (help != NULL) {
        *help = false;
    }
    int n = *argc;
    int w = 1; /* next slot for an argument we keep */
    int r = 1;
    int rc = 0;
    while (r < n && rc == 0) {
        char *a = argv[r];
        if (a == NULL || a[0] != '-' || a[1] == '\0') {
            argv[w++] = argv[r++]; /* positional */
            continue;
        }
        if (strcmp(a, "--") == 0) {
            break; /* the rest is not ours; keep it all */
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        if (strcmp(name, "help") == 0 || strcmp(a, "-h") == 0) {
            micro_options_print_help(stdout);
            if (help != NULL) {
                *help = true;
            }
            r++;
            continue;
        }
        const char *eq = strchr(name, '=');
        size_t nl = eq != NULL ? (size_t) (eq - name) : strlen(name);
        size_t i = opt_find(name, nl);
        if (i == NKNOWN) {
            argv[w++] = argv[r++]; /* someone else's flag */
            continue;
        }
        const char *value = NULL;
        int used = 1;
        if (eq != NULL) {
            value = eq + 1;
        } else if (known[i].type == MICRO_OPT_BOOL) {
            value = "true";
        } else if (r + 1 < n && argv[r + 1] != NULL) {
            value = argv[r + 1];
            used = 2;
        } else {
            rc = bad_value(i, "a missing value");
            break;
        }
        rc = set_text(o, i, value, SRC_FLAG);
        if (rc == 0) {
            r += used;
        }
    }
    while (r < n) {
        argv[w++] = argv[r++];
    }
    argv[w] = NULL;
    *argc = w;
    return rc;
}

void
micro_options_print_help(void *fp)
{
    static const char *const types[] = {"string", "int", "duration", "bool"};
    FILE *f = fp != NULL ? fp : stdout;
    fprintf(f, "Options (flag, environment variable, type, default):\n");
    for (size_t i = 0; i < NKNOWN; i++) {
        char flag[64];
        char env[64] = "MICRO_";
        size_t n = strlen(known[i].name);
        snprintf(flag, sizeof(flag), "--%s", known[i].name);
        for (size_t j = 0; j < n && 6 + j < sizeof(env) - 1; j++) {
            env[6 + j] = (char) toupper((unsigned char) known[i].name[j]);
            env[7 + j] = '\0';
        }
        fprintf(f, "  %-30s  %-34s  %-8s  %-18s  %s\n", flag, env,
            types[known[i].type], known[i].def != NULL ? known[i].def : "-",
            known[i].help);
    }
}
