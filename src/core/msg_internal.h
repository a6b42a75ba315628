/* Internal view of micro_msg for the transport hot path, plus the JSON
 * string writer shared by the error and codec code. Not installed. */
#ifndef CMICRO_MSG_INTERNAL_H
#define CMICRO_MSG_INTERNAL_H

#include "core/internal.h"

/*
 * One header. key and value point into a single block (key first, NUL,
 * value, NUL); klen and vlen are their lengths without the NUL. The block
 * lives in the message's arena when it fits and is malloc'd otherwise;
 * msg.c frees it (hdr_release), nothing else may.
 */
struct micro_hdr {
    char *key;
    char *value;
    size_t klen, vlen;
};

/* Inline room in every message, sized so that a Go Micro request (about
 * ten headers, some 250 bytes of names and values) and its response need
 * no allocation beyond the message itself, which stays under glibc's
 * tcache limit (1032 bytes). */
#define MICRO__MSG_INLINE_HDRS 12
#define MICRO__MSG_ARENA 440

/* Headers in insertion order; keys are unique ignoring case, except after
 * micro__msg_add_header_n, which skips that check. hdrs points at
 * inline_hdrs until more than MICRO__MSG_INLINE_HDRS are added. A message
 * is never copied by value (the pointers point into itself). */
struct micro_msg {
    struct micro_hdr *hdrs;
    size_t n, cap;
    micro_buf body;
    size_t arena_used;
    struct micro_hdr inline_hdrs[MICRO__MSG_INLINE_HDRS];
    char arena[MICRO__MSG_ARENA];
};

/*
 * Append a header without looking for an existing key (for parsers that
 * feed a fresh message). k and v need not be NUL-terminated and are copied.
 * MICRO_ENOMEM on failure (m unchanged).
 */
int micro__msg_add_header_n(
    micro_msg *m, const char *k, size_t kl, const char *v, size_t vl);

/*
 * Keep only the first field of each name (compared ignoring case), in
 * order: one hashed pass, linear in the number of fields. MICRO_ENOMEM
 * (m unchanged) only for messages with more than a few dozen fields.
 */
int micro__msg_dedup(micro_msg *m);

/* Remove every field named key (ignoring case): one pass. */
void micro__msg_del_all(micro_msg *m, const char *key);

/* Case-insensitive hash of s[0..n) (ASCII folding). */
uint64_t micro__hash_nocase(const char *s, size_t n);

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
