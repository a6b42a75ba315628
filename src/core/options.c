/*
 * Named options: the catalogue behind the C setters, MICRO_* env, flags
 * and --help.
 *
 * Who declares what. The core declares here only the framework's own
 * options, those that mean the same whatever implementation is chosen:
 *   service  the plugin choices (registry, broker, transport, selector,
 *            server, client), registration (register_ttl,
 *            register_interval) and log_level: read by the service;
 *   server   the server's identity, address, metadata and drain (Go
 *            Micro's server.Options): read by the server front end, the
 *            service, and every server implementation for its address;
 *   client   Go Micro's client.Options (retries, timeouts, the connection
 *            pool that the transport front end keeps, the content type).
 * Everything else is read by one implementation (or a family of them)
 * and is declared in its ops table: the mDNS registry's timeout,
 * interfaces and IPv6 mode, the http transport's limits, the address of
 * each broker, the selector cache's TTL and back-off, the mucp server's
 * workers... The core learns those from the rows of src/plugins.c
 * (micro__plugin_at: built plugins' ops tables, and the options declared
 * in the rows of modules and of plugins not built) the first time options
 * are used, and keeps no list of them.
 *
 * One name may be declared by several plugins of a kind (broker_address by
 * http and nats, selector_ttl by every strategy), with one type; their
 * defaults may differ. A front end hands its plugin a copy of the options
 * scoped to that plugin (micro__options_scoped), so that the plugin reads
 * the defaults it declares.
 */
#include "core/internal.h"
#include "core/options_internal.h"
#include "plugins.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>

static const micro_option_desc core_service[] = {
    {"registry", MICRO_OPT_STR, "mdns", "registry for discovery"},
    {"broker", MICRO_OPT_STR, "http", "broker for pub/sub"},
    {"transport", MICRO_OPT_STR, "http", "transport for requests"},
    {"selector", MICRO_OPT_STR, "random", "strategy for picking nodes"},
    {"server", MICRO_OPT_STR, "mucp", "server protocol"},
    {"client", MICRO_OPT_STR, "mucp", "client protocol"},
    {"register_ttl", MICRO_OPT_MS, "60s",
        "TTL of a registration (bare number: seconds)"},
    {"register_interval", MICRO_OPT_MS, "30s",
        "interval between re-registrations (bare number: seconds)"},
    {"log_level", MICRO_OPT_STR, "notice",
        "err, warn, notice, info or debug"},
    {"tls_insecure_skip_verify", MICRO_OPT_BOOL, "false",
        "TLS clients accept any server certificate (Go Micro's "
        "WithInsecureSkipVerify)"},
    MICRO_OPTION_END,
};

static const micro_option_desc core_server[] = {
    {"server_name", MICRO_OPT_STR, "go.micro.server", "name of the server"},
    {"server_version", MICRO_OPT_STR, "latest", "version of the server"},
    {"server_id", MICRO_OPT_STR, NULL, "id of the server (random uuid)"},
    {"server_address", MICRO_OPT_STR, ":0", "bind address for the server"},
    {"server_advertise", MICRO_OPT_STR, NULL,
        "address to advertise for discovery"},
    {"server_metadata", MICRO_OPT_STR, NULL,
        "metadata for the server: k=v,k2=v2"},
    {"server_drain", MICRO_OPT_MS, "10s",
        "how long shutdown waits for in-flight requests"},
    MICRO_OPTION_END,
};

static const micro_option_desc core_client[] = {
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
    MICRO_OPTION_END,
};

static const struct {
    const char *group;
    const micro_option_desc *opts;
} core_groups[] = {
    {"service", core_service},
    {"server", core_server},
    {"client", core_client},
};

/* ------------------------------------------------------------------ */
/* The catalogue: every option once, and the groups that declare them.  */

#define CAT_MAX 192
#define GROUPS_MAX 64
#define OPT_NAME_MAX 56 /* MICRO_ + name fits the 64-byte env buffers */

typedef struct group {
    const char *kind; /* the core's: "service", "server", "client"; else
                         the plugin's kind */
    const char *name; /* the plugin; NULL for a group of the core's */
    const micro_option_desc *opts; /* NULL-name terminated, or NULL */
    const char *module;            /* loaded when chosen, or NULL */
    bool built;
} group;

typedef struct entry {
    const char *kind;      /* a plugin option's kind; NULL: the core's */
    size_t group;          /* the group that declared it first */
    const char *first_def; /* the first declarer's default */
} entry;

static struct {
    micro_option_desc known[CAT_MAX + 1]; /* NULL-name terminated */
    entry e[CAT_MAX];
    size_t n;
    group g[GROUPS_MAX];
    size_t ng;
} cat;

static pthread_once_t cat_once = PTHREAD_ONCE_INIT;

static const char *const type_names[] = {"string", "int", "duration",
    "bool"};

/* Index of the option named by name[0..len), or cat.n. '.' matches '_'
 * so that "registry.address" and "registry_address" name one option. */
static size_t
opt_find(const char *name, size_t len)
{
    if (name == NULL) {
        return cat.n;
    }
    for (size_t i = 0; i < cat.n; i++) {
        const char *k = cat.known[i].name;
        size_t j = 0;
        while (j < len && k[j] != '\0' &&
            (k[j] == name[j] || (k[j] == '_' && name[j] == '.'))) {
            j++;
        }
        if (j == len && k[j] == '\0') {
            return i;
        }
    }
    return cat.n;
}

static size_t
opt_lookup(const char *name)
{
    return name == NULL ? cat.n : opt_find(name, strlen(name));
}

/* "kind_..." with something after the prefix. */
static bool
has_prefix(const char *kind, const char *name)
{
    size_t k = strlen(kind);
    return strncmp(name, kind, k) == 0 && name[k] == '_' &&
        name[k + 1] != '\0';
}

/* Whether a plugin of kind may declare d at all (before the catalogue
 * is consulted). */
static bool
decl_shape_ok(const char *kind, const micro_option_desc *d)
{
    return has_prefix(kind, d->name) && strlen(d->name) <= OPT_NAME_MAX &&
        (unsigned) d->type <= MICRO_OPT_BOOL;
}

/* d, declared by a plugin of kind, is in the catalogue as that plugin's
 * (same name and type). */
static bool
decl_usable(const char *kind, const micro_option_desc *d)
{
    if (!decl_shape_ok(kind, d)) {
        return false;
    }
    size_t i = opt_lookup(d->name);
    return i < cat.n && cat.e[i].kind != NULL &&
        strcmp(cat.e[i].kind, kind) == 0 && cat.known[i].type == d->type;
}

/* The declaration of name in decls (of a plugin of kind), if usable. */
static const micro_option_desc *
decl_find(const char *kind, const micro_option_desc *decls, const char *name)
{
    for (const micro_option_desc *d = decls; d != NULL && d->name != NULL;
         d++) {
        if (strcmp(d->name, name) == 0) {
            return decl_usable(kind, d) ? d : NULL;
        }
    }
    return NULL;
}

static const group *
group_find(const char *kind, const char *name)
{
    for (size_t i = 0; name != NULL && i < cat.ng; i++) {
        const group *g = &cat.g[i];
        if (g->name != NULL && strcmp(g->kind, kind) == 0 &&
            strcmp(g->name, name) == 0) {
            return g;
        }
    }
    return NULL;
}

static void
cat_declare(size_t gi, const micro_option_desc *d)
{
    const group *g = &cat.g[gi];
    const char *kind = g->name != NULL ? g->kind : NULL;
    if (kind != NULL && !decl_shape_ok(kind, d)) {
        micro_log(MICRO_LOG_ERR, "options",
            "%s %s: option %s ignored: a %s option's name starts with "
            "\"%s_\" (at most %d characters) and has a known type",
            g->kind, g->name, d->name, g->kind, g->kind, OPT_NAME_MAX);
        return;
    }
    size_t i = opt_lookup(d->name);
    if (i == cat.n) {
        MICRO_ASSERT(cat.n < CAT_MAX);
        cat.known[i] = *d;
        cat.e[i].kind = kind;
        cat.e[i].group = gi;
        cat.e[i].first_def = d->def;
        cat.n++;
        return;
    }
    const group *first = &cat.g[cat.e[i].group];
    if (kind == NULL || cat.e[i].kind == NULL) {
        micro_log(MICRO_LOG_ERR, "options",
            "%s%s%s: option %s ignored: %s declares it already",
            g->kind, g->name ? " " : "", g->name ? g->name : "", d->name,
            first->name != NULL ? first->name : first->kind);
        return;
    }
    if (cat.known[i].type != d->type) {
        micro_log(MICRO_LOG_ERR, "options",
            "%s %s: option %s ignored: a %s, but %s %s declares a %s",
            g->kind, g->name, d->name, type_names[d->type], first->kind,
            first->name, type_names[cat.known[i].type]);
        return;
    }
    const char *a = cat.e[i].first_def;
    if ((a == NULL) != (d->def == NULL) ||
        (a != NULL && strcmp(a, d->def) != 0)) {
        cat.known[i].def = NULL; /* no common default */
    }
}

static void
cat_build(void)
{
    for (size_t i = 0; i < MICRO_ARRAY_LEN(core_groups); i++) {
        MICRO_ASSERT(cat.ng < GROUPS_MAX);
        cat.g[cat.ng++] = (group) {.kind = core_groups[i].group,
            .opts = core_groups[i].opts,
            .built = true};
    }
    micro__plugin_info p;
    for (size_t i = 0; micro__plugin_at(i, &p); i++) {
        MICRO_ASSERT(cat.ng < GROUPS_MAX);
        cat.g[cat.ng++] = (group) {.kind = p.kind,
            .name = p.name,
            .opts = p.options,
            .module = p.module,
            .built = p.built};
    }
    for (size_t gi = 0; gi < cat.ng; gi++) {
        for (const micro_option_desc *d = cat.g[gi].opts;
             d != NULL && d->name != NULL; d++) {
            cat_declare(gi, d);
        }
    }
    cat.known[cat.n] = (micro_option_desc) MICRO_OPTION_END;
}

static void
cat_init(void)
{
    pthread_once(&cat_once, cat_build);
}

const micro_option_desc *
micro_options_known(void)
{
    cat_init();
    return cat.known;
}

/* Who declares option i, for messages: "server" (a group of the core's)
 * or "broker http, nats". */
static void
owners(size_t i, char *buf, size_t cap)
{
    const entry *e = &cat.e[i];
    if (e->kind == NULL) {
        snprintf(buf, cap, "%s", cat.g[e->group].kind);
        return;
    }
    size_t len = (size_t) snprintf(buf, cap, "%s", e->kind);
    const char *sep = " ";
    for (size_t gi = 0; gi < cat.ng && len < cap; gi++) {
        const group *g = &cat.g[gi];
        if (g->name != NULL && strcmp(g->kind, e->kind) == 0 &&
            decl_find(g->kind, g->opts, cat.known[i].name) != NULL) {
            len += (size_t) snprintf(buf + len, cap - len, "%s%s", sep,
                g->name);
            sep = ", ";
        }
    }
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

/* Parse text as type t into *n (or report failure). */
static bool
parse_value(micro_opt_type t, const char *text, int64_t *n)
{
    bool b = false;
    switch (t) {
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

/* ------------------------------------------------------------------ */
/* Options objects.                                                     */

/* Where a value came from: the environment never overrides a flag. */
enum opt_src { SRC_NONE = 0, SRC_SET, SRC_ENV, SRC_FLAG };

typedef struct opt_val {
    enum opt_src src;
    char *s;   /* MICRO_OPT_STR; may be NULL */
    int64_t n; /* MICRO_OPT_INT and MICRO_OPT_MS; bool as 0/1 */
} opt_val;

struct micro_options {
    /* Set by micro__options_scoped: the plugin this copy is for. */
    const char *scope_kind;
    const micro_option_desc *scope;
    size_t n; /* cat.n */
    opt_val v[];
};

static micro_options *
opts_alloc(void)
{
    cat_init();
    micro_options *o =
        micro__calloc(1, sizeof(micro_options) + cat.n * sizeof(opt_val));
    if (o != NULL) {
        o->n = cat.n;
    }
    return o;
}

int
micro_options_new(micro_options **out)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    *out = opts_alloc();
    return *out == NULL ? MICRO_ENOMEM : 0;
}

void
micro_options_free(micro_options *o)
{
    if (o == NULL) {
        return;
    }
    for (size_t i = 0; i < o->n; i++) {
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
    micro_options *d = opts_alloc();
    if (d == NULL) {
        return MICRO_ENOMEM;
    }
    d->scope_kind = o->scope_kind;
    d->scope = o->scope;
    for (size_t i = 0; i < o->n; i++) {
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

int
micro__options_scoped(const micro_options *o, const char *kind,
    const char *plugin, const micro_option_desc *decls, micro_options **out)
{
    int rc = o != NULL ? micro_options_dup(o, out) : micro_options_new(out);
    if (rc != 0) {
        return rc;
    }
    (*out)->scope_kind = kind;
    (*out)->scope = decls;
    for (const micro_option_desc *d = decls; d != NULL && d->name != NULL;
         d++) {
        if (!decl_usable(kind, d)) {
            MICRO_LOGF(MICRO_LOG_DEBUG, "options",
                "%s %s: option %s has no row in src/plugins.c: it reads "
                "its default and cannot be set by name",
                kind, plugin != NULL ? plugin : "(null)", d->name);
        }
    }
    return 0;
}

/* The plugin o chooses for kind (the value of the option named kind). */
static const char *
chosen(const micro_options *o, const char *kind)
{
    size_t k = opt_lookup(kind);
    if (k == cat.n || cat.e[k].kind != NULL) {
        return NULL;
    }
    if (o != NULL && k < o->n && o->v[k].src != SRC_NONE) {
        return o->v[k].s;
    }
    return cat.known[k].def;
}

/* Option i's default as text. Scoped to a plugin of i's kind: that
 * plugin's declaration, else (a table that does not declare it) the
 * default every declarer agrees on. Otherwise: the declaration of the
 * plugin o chooses for that kind (none when it does not declare i), else
 * (an unknown choice) the agreed default. */
static const char *
default_text(const micro_options *o, size_t i)
{
    const entry *e = &cat.e[i];
    if (e->kind == NULL) {
        return cat.known[i].def;
    }
    const micro_option_desc *d = NULL;
    if (o != NULL && o->scope_kind != NULL &&
        strcmp(o->scope_kind, e->kind) == 0) {
        d = decl_find(e->kind, o->scope, cat.known[i].name);
    } else {
        const group *g = group_find(e->kind, chosen(o, e->kind));
        if (g != NULL) {
            d = decl_find(e->kind, g->opts, cat.known[i].name);
            return d != NULL ? d->def : NULL;
        }
    }
    return d != NULL ? d->def : cat.known[i].def;
}

/* A name the catalogue does not know that the plugin o is scoped to
 * declares (an ops table without a row): its declaration. */
static const micro_option_desc *
scope_only(const micro_options *o, const char *name)
{
    for (const micro_option_desc *d = o != NULL ? o->scope : NULL;
         name != NULL && d != NULL && d->name != NULL; d++) {
        if (strcmp(d->name, name) == 0) {
            return d;
        }
    }
    return NULL;
}

static int
unknown_option(const char *name)
{
    const char *hint = NULL;
    for (size_t gi = 0; name != NULL && gi < cat.ng; gi++) {
        size_t k = strlen(cat.g[gi].kind);
        if (cat.g[gi].name != NULL && strncmp(name, cat.g[gi].kind, k) == 0 &&
            (name[k] == '_' || name[k] == '.')) {
            hint = cat.g[gi].kind;
            break;
        }
    }
    if (hint != NULL) {
        micro_log(MICRO_LOG_WARN, "options",
            "unknown option %s: no %s plugin declares it", name, hint);
    } else {
        micro_log(MICRO_LOG_WARN, "options", "unknown option %s",
            name != NULL ? name : "(null)");
    }
    return MICRO_ENOENT;
}

static int
bad_value(size_t i, const char *what)
{
    static const char *const types[] = {"a string", "an integer",
        "a duration", "a boolean"};
    char who[192];
    owners(i, who, sizeof(who));
    micro_log(MICRO_LOG_WARN, "options", "%s: option %s wants %s, not %s",
        who, cat.known[i].name, types[cat.known[i].type], what);
    return MICRO_EBADTYPE;
}

/* Set option i from text, recording where the value came from. */
static int
set_text(micro_options *o, size_t i, const char *value, enum opt_src src)
{
    if (cat.known[i].type == MICRO_OPT_STR) {
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
    if (!parse_value(cat.known[i].type, value, &n)) {
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
    if (i == cat.n) {
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
    if (i == cat.n) {
        return unknown_option(name);
    }
    if (cat.known[i].type != t) {
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

/* Parse a default text of type t (0 when none or malformed). */
static int64_t
default_num(micro_opt_type t, const char *def)
{
    int64_t n = 0;
    if (def != NULL && !parse_value(t, def, &n)) {
        n = 0;
    }
    return n;
}

const char *
micro_options_get_str(const micro_options *o, const char *name)
{
    cat_init();
    size_t i = opt_lookup(name);
    if (i == cat.n) {
        const micro_option_desc *d = scope_only(o, name);
        return d != NULL ? d->def : NULL;
    }
    if (o != NULL && o->v[i].src != SRC_NONE &&
        cat.known[i].type == MICRO_OPT_STR) {
        return o->v[i].s;
    }
    /* Non-string options report their default text when unset, NULL
     * once set (use the typed getters). */
    if (o != NULL && o->v[i].src != SRC_NONE) {
        return NULL;
    }
    return default_text(o, i);
}

int64_t
micro_options_get_int(const micro_options *o, const char *name)
{
    cat_init();
    size_t i = opt_lookup(name);
    if (i == cat.n) {
        const micro_option_desc *d = scope_only(o, name);
        return d != NULL && d->type != MICRO_OPT_STR
            ? default_num(d->type, d->def)
            : 0;
    }
    if (cat.known[i].type == MICRO_OPT_STR) {
        return 0;
    }
    if (o != NULL && o->v[i].src != SRC_NONE) {
        return o->v[i].n;
    }
    return default_num(cat.known[i].type, default_text(o, i));
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
    cat_init();
    size_t i = opt_lookup(name);
    return o != NULL && i != cat.n && o->v[i].src != SRC_NONE;
}

/* MICRO_ + the name in capitals. */
static void
env_name(const char *name, char *env, size_t cap)
{
    size_t n = strlen(name);
    MICRO_ASSERT(cap > 6 && n + 7 <= cap);
    memcpy(env, "MICRO_", 6);
    for (size_t j = 0; j < n; j++) {
        env[6 + j] = (char) toupper((unsigned char) name[j]);
    }
    env[6 + n] = '\0';
}

int
micro_options_load_env(micro_options *o)
{
    if (o == NULL) {
        return MICRO_EINVAL;
    }
    int first_rc = 0;
    for (size_t i = 0; i < o->n; i++) {
        if (o->v[i].src == SRC_FLAG) {
            continue; /* flags win over the environment */
        }
        char env[64];
        env_name(cat.known[i].name, env, sizeof(env));
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
        if (i == cat.n) {
            argv[w++] = argv[r++]; /* someone else's flag */
            continue;
        }
        const char *value = NULL;
        int used = 1;
        if (eq != NULL) {
            value = eq + 1;
        } else if (cat.known[i].type == MICRO_OPT_BOOL) {
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

/* ------------------------------------------------------------------ */
/* Help.                                                                */

/* For an option of the core's that chooses a plugin: the names. */
static void
choices(const char *kind, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int pass = 0; pass < 2; pass++) {
        const char *sep = pass == 0 ? ": " : " (not built: ";
        bool any = false;
        for (size_t gi = 0; gi < cat.ng && len < cap; gi++) {
            const group *g = &cat.g[gi];
            bool avail = g->built || g->module != NULL;
            if (g->name == NULL || strcmp(g->kind, kind) != 0 ||
                avail != (pass == 0)) {
                continue;
            }
            len += (size_t) snprintf(buf + len, cap - len, "%s%s", sep,
                g->name);
            sep = ", ";
            any = true;
        }
        if (pass == 1 && any && len < cap) {
            len += (size_t) snprintf(buf + len, cap - len, ")");
        }
    }
}

static void
print_line(FILE *f, const micro_option_desc *d, const char *extra)
{
    char flag[64];
    char env[64];
    snprintf(flag, sizeof(flag), "--%s", d->name);
    env_name(d->name, env, sizeof(env));
    fprintf(f, "  %-30s  %-34s  %-8s  %-18s  %s%s\n", flag, env,
        type_names[d->type], d->def != NULL ? d->def : "-",
        d->help != NULL ? d->help : "", extra);
}

void
micro_options_print_help(void *fp)
{
    cat_init();
    FILE *f = fp != NULL ? fp : stdout;
    fprintf(f, "Options (flag, environment variable, type, default), by "
               "the part that reads them:\n");
    for (size_t gi = 0; gi < cat.ng; gi++) {
        const group *g = &cat.g[gi];
        size_t n = 0; /* options to show */
        for (const micro_option_desc *d = g->opts;
             d != NULL && d->name != NULL; d++) {
            /* Declarations refused when the catalogue was built are not
             * shown (they were logged then). */
            n += g->name == NULL || decl_usable(g->kind, d);
        }
        if (g->name == NULL) {
            fprintf(f, "\n%s:", g->kind);
        } else if (g->built) {
            fprintf(f, "\n%s %s:", g->kind, g->name);
        } else if (g->module != NULL) {
            fprintf(f, "\n%s %s (module %s, loaded when chosen):", g->kind,
                g->name, g->module);
        } else {
            fprintf(f, "\n%s %s (not built):", g->kind, g->name);
        }
        fprintf(f, "%s\n", n == 0 ? " no options" : "");
        for (const micro_option_desc *d = g->opts;
             d != NULL && d->name != NULL; d++) {
            if (g->name != NULL && !decl_usable(g->kind, d)) {
                continue;
            }
            char extra[256] = "";
            if (g->name == NULL) {
                choices(d->name, extra, sizeof(extra));
            }
            print_line(f, d, extra);
        }
    }
}

/* ------------------------------------------------------------------ */
/* The service's check.                                                 */

void
micro__options_check_chosen(const micro_options *o)
{
    if (o == NULL) {
        return;
    }
    for (size_t i = 0; i < o->n; i++) {
        const entry *e = &cat.e[i];
        if (e->kind == NULL || o->v[i].src == SRC_NONE) {
            continue;
        }
        const char *name = chosen(o, e->kind);
        const group *g = group_find(e->kind, name);
        if (g == NULL ||
            decl_find(e->kind, g->opts, cat.known[i].name) != NULL) {
            continue; /* an unknown choice fails on its own */
        }
        char who[192];
        owners(i, who, sizeof(who));
        micro_log(MICRO_LOG_WARN, "options",
            "option %s is set, but %s %s does not read it (an option of "
            "%s)",
            cat.known[i].name, e->kind, name, who);
    }
}
