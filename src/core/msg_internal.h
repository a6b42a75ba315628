/* Internal view of micro_msg for the transport hot path, plus the JSON
 * string writer shared by the error and codec code. Not installed. */
#ifndef CMICRO_MSG_INTERNAL_H
#define CMICRO_MSG_INTERNAL_H

#include "core/internal.h"

/*
 * One header. key and value point into a single allocation owned by the
 * entry (key first, NUL, value, NUL), so freeing key frees both; klen and
 * vlen are their lengths without the NUL.
 */
struct micro_hdr {
    char *key;
    char *value;
    size_t klen, vlen;
};

/* Headers in insertion order; keys are unique ignoring case, except after
 * micro__msg_add_header_n, which skips that check. */
struct micro_msg {
    struct micro_hdr *hdrs;
    size_t n, cap;
    micro_buf body;
};

/*
 * Append a header without looking for an existing key (for parsers that
 * feed a fresh message). k and v need not be NUL-terminated and are copied.
 * MICRO_ENOMEM on failure (m unchanged).
 */
int micro__msg_add_header_n(
    micro_msg *m, const char *k, size_t kl, const char *v, size_t vl);

/*
 * Append s[0..n) to b as a JSON string literal, quotes included, escaped
 * exactly as Go's encoding/json does: '"' and '\\' backslashed; \n, \r and
 * \t as such; other control bytes, '<', '>', '&', U+2028 and U+2029 as
 * \u00XX / \u2028 / \u2029; invalid UTF-8 bytes as \ufffd. Defined in
 * error.c. MICRO_ENOMEM on failure (b may hold a partial string; callers
 * restore b->len).
 */
int micro__json_append_string(micro_buf *b, const char *s, size_t n);

#endif
