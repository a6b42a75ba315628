#ifndef CMICRO_LOG_H
#define CMICRO_LOG_H

#include <stdbool.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Syslog-numbered levels. */
typedef enum micro_log_level {
    MICRO_LOG_NONE = 0,
    MICRO_LOG_ERR = 3,
    MICRO_LOG_WARN = 4,
    MICRO_LOG_NOTICE = 5,
    MICRO_LOG_INFO = 6,
    MICRO_LOG_DEBUG = 7,
} micro_log_level;

/** A logger: one line of text (no newline) with its component. */
typedef void (*micro_logger_fn)(
    void *arg, micro_log_level lvl, const char *component, const char *msg);

/**
 * Install a logger (NULL restores the stderr logger). Call before starting
 * services; not synchronised with concurrent logging.
 */
MICRO_API void micro_log_set_logger(micro_logger_fn fn, void *arg);
/** The built-in stderr logger (the default). */
MICRO_API void micro_log_stderr(
    void *arg, micro_log_level lvl, const char *component, const char *msg);
/** The built-in logger that drops everything. */
MICRO_API void micro_log_null(
    void *arg, micro_log_level lvl, const char *component, const char *msg);
/** Messages above lvl are dropped. Default MICRO_LOG_NOTICE, or the value
 *  of MICRO_LOG_LEVEL (err, warn, notice, info, debug) at first use. */
MICRO_API void micro_log_set_level(micro_log_level lvl);
/** True if a message at lvl would be written. Thread: any. */
MICRO_API bool micro_log_enabled(micro_log_level lvl);
/** Write one message. Thread: any. */
MICRO_API void micro_log(micro_log_level lvl, const char *component,
    const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
