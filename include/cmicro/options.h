#ifndef CMICRO_OPTIONS_H
#define CMICRO_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Named options, the one table behind C setters, environment variables and
 * command-line flags. Names are Go Micro's flag names: "server_address",
 * "registry", "client_retries", ... An option "x_y" is set by
 * micro_options_set_*(o, "x_y", ...), by MICRO_X_Y=... in the environment
 * and by --x_y=... (or --x_y ...) on the command line; flags win over the
 * environment, which wins over defaults.
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

/** One known option. */
typedef struct micro_option_desc {
    const char *name;
    micro_opt_type type;
    const char *def; /* default as text; NULL for none */
    const char *help;
} micro_option_desc;

/** The table of options the framework knows (NULL-name terminated). */
MICRO_API const micro_option_desc *micro_options_known(void);

MICRO_API int micro_options_new(micro_options **out);
MICRO_API void micro_options_free(micro_options *o);
MICRO_API int micro_options_dup(const micro_options *o, micro_options **out);

/** Setters. MICRO_ENOENT for an unknown name, MICRO_EBADTYPE for a value
 *  of the wrong type (both logged). Strings are copied. */
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

/** Print the option table (flags, env names, defaults, help) to fp. */
MICRO_API void micro_options_print_help(void *fp);

#ifdef __cplusplus
}
#endif
#endif
