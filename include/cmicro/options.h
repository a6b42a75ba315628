#ifndef CMICRO_OPTIONS_H
#define CMICRO_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Named options, the one catalogue behind C setters, environment variables
 * and command-line flags. Names are Go Micro's flag names: "server_address",
 * "registry", "client_retries", ... An option "x_y" is set by
 * micro_options_set_*(o, "x_y", ...) (or "x.y"), by MICRO_X_Y=... in the
 * environment and by --x_y=... (or --x_y ...) on the command line; flags
 * win over the environment, which wins over defaults.
 *
 * Who declares an option. The core declares the framework's own: the
 * service's (the plugin choices "registry", "broker", "transport",
 * "selector", "server", "client"; "register_ttl", "register_interval",
 * "log_level"), the server's ("server_name", "server_address", ...) and
 * the client's (Go Micro's "client_retries", "client_request_timeout",
 * the pool, ...). Every other option belongs to the plugin that reads it
 * and is declared in its ops table (the `options` member): the mDNS
 * registry declares "registry_timeout", the http broker and the nats
 * broker each declare "broker_address" with their own default. The core
 * learns plugin options from the plugins it knows by name (built, loaded
 * on demand, or not built), so they parse and --help lists them by plugin.
 * A plugin's option names start with its kind and "_" (the Go Micro flag
 * names); several plugins may declare one name, with the same type.
 *
 * Defaults: a plugin reads the defaults its own table declares (its front
 * end hands it a copy of the options scoped to it; an option its table
 * does not declare reads the default all declarers agree on). Elsewhere,
 * an unset plugin option reads the default of the plugin the options
 * choose for its kind (option "broker" for "broker_address"; none when
 * that plugin does not declare it).
 *
 * Thread: an options object is not synchronised; constructors that take
 * one copy it.
 */
typedef struct micro_options micro_options;

typedef enum micro_opt_type {
    MICRO_OPT_STR,
    MICRO_OPT_INT,
    MICRO_OPT_MS, /* duration; text forms: "500ms", "5s", "1m", "2h", or a
                     bare number of seconds (Go Micro's flags are seconds);
                     saturates at MICRO_DURATION_MAX_MS */
    MICRO_OPT_BOOL,
} micro_opt_type;

/**
 * The longest duration, in milliseconds (about 292 years): durations are
 * sent in nanoseconds (the Timeout header) and a receiver rounds those up
 * to milliseconds, so this is the largest whole number of milliseconds
 * whose nanoseconds, plus that rounding, still fit an int64 (Go's
 * time.Duration holds up to INT64_MAX ns). Longer durations given to the
 * options (as text or by micro_options_set_ms) or to
 * micro_parse_duration_ms saturate to it rather than overflow.
 */
#define MICRO_DURATION_MAX_MS INT64_C(9223372036853)

/**
 * Parse a duration as the MICRO_OPT_MS options do: Go's forms ("300ms",
 * "1.5s", "1m30s", "2h"; units ns, us, ms, s, m, h) or a bare number of
 * seconds, rounded to milliseconds; saturates at MICRO_DURATION_MAX_MS.
 * Returns 0 with *ms set, or MICRO_EINVAL when text is not such a
 * duration (negative, exponent, hex, inf, nan, a unit missing or unknown).
 * Thread: any.
 */
MICRO_API int micro_parse_duration_ms(const char *text, int64_t *ms);

/**
 * One option, as an ops table declares it (an array ended by
 * MICRO_OPTION_END). name is the full Go Micro name ("registry_timeout"),
 * starting with the plugin's kind and "_". A declaration the core cannot
 * take (another prefix, a name of the core's, a type that differs from
 * another plugin's for the same name) is logged and ignored.
 */
typedef struct micro_option_desc {
    const char *name;
    micro_opt_type type;
    const char *def; /* default as text; NULL for none */
    const char *help;
} micro_option_desc;

#define MICRO_OPTION_END {NULL, MICRO_OPT_STR, NULL, NULL}

/**
 * Every known option once (NULL-name terminated): the core's, then those
 * of the plugins. An option several plugins declare appears once, with
 * the default they agree on (NULL when they differ); --help shows each
 * plugin's. The table lives as long as the process.
 */
MICRO_API const micro_option_desc *micro_options_known(void);

MICRO_API int micro_options_new(micro_options **out);
MICRO_API void micro_options_free(micro_options *o);
MICRO_API int micro_options_dup(const micro_options *o, micro_options **out);

/** Setters. MICRO_ENOENT for an unknown name, MICRO_EBADTYPE for a value
 *  of the wrong type (both logged, naming the plugins that declare the
 *  option). Strings are copied. */
MICRO_API int micro_options_set_str(
    micro_options *o, const char *name, const char *value);
MICRO_API int micro_options_set_int(
    micro_options *o, const char *name, int64_t value);
/* A negative ms is MICRO_EBADTYPE; one above MICRO_DURATION_MAX_MS is
 * stored as that. */
MICRO_API int micro_options_set_ms(
    micro_options *o, const char *name, int64_t ms);
MICRO_API int micro_options_set_bool(
    micro_options *o, const char *name, bool value);

/** Getters: the set value, else the default. The string is borrowed from
 *  o (or the static table) and may be NULL. */
MICRO_API const char *micro_options_get_str(
    const micro_options *o, const char *name);
MICRO_API int64_t micro_options_get_int(
    const micro_options *o, const char *name);
MICRO_API int64_t micro_options_get_ms(
    const micro_options *o, const char *name);
MICRO_API bool micro_options_get_bool(
    const micro_options *o, const char *name);
/** True if set explicitly (setter, env or flag). */
MICRO_API bool micro_options_is_set(const micro_options *o, const char *name);

/** Apply MICRO_* environment variables for every known option. */
MICRO_API int micro_options_load_env(micro_options *o);

/**
 * Apply --name=value / --name value flags from argv[1..argc). Known flags
 * are consumed; argv is compacted so that *argc and argv then hold the
 * program name and the arguments that are not ours. "--help" prints the
 * table to stdout and sets *help (if non-NULL). Unknown "--x" flags are
 * left in argv. MICRO_EBADTYPE on a bad value.
 */
MICRO_API int micro_options_parse_args(
    micro_options *o, int *argc, char **argv, bool *help);

/** Print the options (flags, env names, types, defaults, help) to fp,
 *  grouped: the core's ("service", "server", "client"), then one group
 *  per plugin ("registry mdns", "broker nats", ...; those not built and
 *  modules not loaded included: printing help loads nothing). */
MICRO_API void micro_options_print_help(void *fp);

#ifdef __cplusplus
}
#endif
#endif
