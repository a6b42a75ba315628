#ifndef CMICRO_ERROR_H
#define CMICRO_ERROR_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Return codes. Every fallible function returns int: 0 on success or a
 * negative MICRO_E* code. System codes equal -errno; framework codes sit
 * below -4000.
 */
#define MICRO_ERRNO_MAP(X)                                                     \
    X(EINVAL, -EINVAL, "invalid argument")                                     \
    X(ENOMEM, -ENOMEM, "out of memory")                                        \
    X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                      \
    X(ECONNREFUSED, -ECONNREFUSED, "connection refused")                       \
    X(ECONNRESET, -ECONNRESET, "connection reset by peer")                     \
    X(EPIPE, -EPIPE, "broken pipe")                                            \
    X(EADDRINUSE, -EADDRINUSE, "address already in use")                       \
    X(ENOENT, -ENOENT, "no such entry")                                        \
    X(EEXIST, -EEXIST, "already exists")                                       \
    X(EMSGSIZE, -EMSGSIZE, "message too long")                                 \
    X(EPROTO, -EPROTO, "protocol error")                                       \
    X(ECANCELED, -ECANCELED, "canceled")                                       \
    X(EAGAIN, -EAGAIN, "resource temporarily unavailable")                     \
    X(EIO, -EIO, "i/o error")                                                  \
    X(EBUSY, -EBUSY, "resource busy")                                          \
    X(ECLOSED, -4001, "object is closed")                                      \
    X(ENOSERVICE, -4002, "service not found")                                  \
    X(ENONODE, -4003, "no node available")                                     \
    X(ECODEC, -4004, "codec error")                                            \
    X(EREMOTE, -4005, "remote error")                                          \
    X(ENOTBUILT, -4006, "plugin not built")                                    \
    X(ENOTSUP, -4007, "operation not supported")                               \
    X(EBADTYPE, -4008, "option of the wrong type")                             \
    X(ECONTENTTYPE, -4009, "unsupported content type")                         \
    X(ENOENDPOINT, -4010, "unknown endpoint")                                  \
    X(EOF, -4011, "end of stream")                                             \
    X(ETLS, -4020, "TLS handshake or record failure")                          \
    X(ECERT, -4021, "certificate verification failed")

enum {
#define MICRO_ERR_ENUM(name, val, text) MICRO_##name = (val),
    MICRO_ERRNO_MAP(MICRO_ERR_ENUM)
#undef MICRO_ERR_ENUM
};

/** Text for a return code. Thread: any. Never NULL. */
MICRO_API const char *micro_strerror(int rc);
/** Symbolic name ("MICRO_ETIMEDOUT") of a return code. Never NULL. */
MICRO_API const char *micro_err_name(int rc);

/**
 * A remote error in Go Micro's shape {"id","code","detail","status"}.
 * A plain value type: the strings are owned by the struct and freed by
 * micro_error_free. A NULL string means "absent" (omitted in JSON).
 */
typedef struct micro_error {
    char *id;
    int32_t code;
    char *detail;
    char *status;
} micro_error;

/**
 * Build an error. id and detail are copied; status is the HTTP status text
 * of code. Returns NULL only on out-of-memory.
 * Thread: any.
 */
MICRO_API micro_error *micro_error_new(
    const char *id, int32_t code, const char *detail);
/** Free an error; NULL is a no-op. */
MICRO_API void micro_error_free(micro_error *e);
/** Deep copy; NULL on out-of-memory or NULL input. */
MICRO_API micro_error *micro_error_dup(const micro_error *e);

/**
 * Encode as Go Micro's JSON (fields in order id, code, detail, status, each
 * omitted when empty or zero). Returns a malloc'd NUL-terminated string the
 * caller frees with free(), or NULL on out-of-memory.
 */
MICRO_API char *micro_error_to_json(const micro_error *e);

/**
 * Parse an error string as Go Micro's errors.Parse does: JSON of the shape
 * above, or, when that fails, the whole text as detail with code 0.
 * text need not be NUL-terminated. Returns NULL only on out-of-memory.
 */
MICRO_API micro_error *micro_error_parse(const char *text, size_t len);

/** HTTP status text for a code ("Bad Request"); "" for unknown codes. */
MICRO_API const char *micro_status_text(int32_t code);

#ifdef __cplusplus
}
#endif
#endif
