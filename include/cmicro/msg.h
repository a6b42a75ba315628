#ifndef CMICRO_MSG_H
#define CMICRO_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * A growable byte buffer: a plain value type. data is malloc'd (or NULL when
 * cap == 0) and owned by whoever owns the struct; release with
 * micro_buf_clear. A zeroed struct is an empty buffer.
 */
typedef struct micro_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} micro_buf;

/** Make room for n more bytes. MICRO_ENOMEM on failure. */
MICRO_API int micro_buf_reserve(micro_buf *b, size_t n);
/** Append n bytes. MICRO_ENOMEM on failure (b unchanged). */
MICRO_API int micro_buf_append(micro_buf *b, const void *p, size_t n);
/** Append a NUL-terminated string (without the NUL). */
MICRO_API int micro_buf_append_str(micro_buf *b, const char *s);
/** Free the storage and zero the struct. */
MICRO_API void micro_buf_clear(micro_buf *b);

/**
 * A transport message: an ordered header map (string -> string, keys
 * compared case-insensitively, one value each) plus a byte body. This is
 * Go Micro's transport.Message.
 *
 * Thread: a message has one owner at a time and is not synchronised.
 */
typedef struct micro_msg micro_msg;

/** New empty message; *out is NULL on failure. */
MICRO_API int micro_msg_new(micro_msg **out);
/** Free; NULL is a no-op. */
MICRO_API void micro_msg_free(micro_msg *m);
/** Set a header (key and value copied). Replaces an existing key that
 *  compares equal ignoring case, keeping the new spelling. */
MICRO_API int micro_msg_set_header(
    micro_msg *m, const char *key, const char *value);
/** Header value (borrowed until the message changes) or NULL. */
MICRO_API const char *micro_msg_header(const micro_msg *m, const char *key);
/** Remove a header; no-op when absent. */
MICRO_API void micro_msg_del_header(micro_msg *m, const char *key);
/** Number of headers. */
MICRO_API size_t micro_msg_header_count(const micro_msg *m);
/** The i-th header (borrowed). MICRO_EINVAL when i is out of range. */
MICRO_API int micro_msg_header_at(
    const micro_msg *m, size_t i, const char **key, const char **value);
/** Replace the body with a copy of p[0..n). */
MICRO_API int micro_msg_set_body(micro_msg *m, const void *p, size_t n);
/** Replace the body with b's storage: the message takes it and b is zeroed. */
MICRO_API void micro_msg_take_body(micro_msg *m, micro_buf *b);
/** The body (borrowed until the message changes); *len may be 0. */
MICRO_API const void *micro_msg_body(const micro_msg *m, size_t *len);

/**
 * Go's MIME header canonicalisation (textproto.CanonicalMIMEHeaderKey):
 * first letter and every letter after '-' upper-cased, the rest lower-cased.
 * Keys with bytes that are not HTTP token characters are copied unchanged.
 * Writes at most cap bytes including the NUL; returns the key length, or
 * MICRO_EMSGSIZE when it does not fit.
 */
MICRO_API int micro_canonical_header_key(
    const char *key, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
