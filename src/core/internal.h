/* Internal helpers shared by every source file. Not installed. */
#ifndef CMICRO_INTERNAL_H
#define CMICRO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmicro/micro.h"

#define MICRO_ASSERT(x)                                                        \
    do {                                                                       \
        if (!(x)) {                                                            \
            micro__panic(__FILE__, __LINE__, #x);                              \
        }                                                                      \
    } while (0)

#define MICRO_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void micro__panic(const char *file, int line, const char *expr);

/* Allocation: every internal allocation goes through these. */
void *micro__malloc(size_t n);
void *micro__calloc(size_t n, size_t m);
void *micro__realloc(void *p, size_t n);
void micro__free(void *p);
char *micro__strdup(const char *s);
char *micro__strndup(const char *s, size_t n);
/* Whether an allocation of this thread failed since the last reset: for
 * telling out-of-memory from bad input where a library reports both as
 * NULL (cJSON's parsers). */
void micro__alloc_failed_reset(void);
bool micro__alloc_failed(void);

/* cJSON_ParseWithLengthOpts (end may be NULL) that tells out-of-memory
 * from bad input: NULL with *rc MICRO_ENOMEM or MICRO_ECODEC. */
struct cJSON;
struct cJSON *micro__json_parse(
    const char *text, size_t len, const char **end, int *rc);

/* Standard base64 with padding (Go's []byte in JSON). Appends to out.
 * decode: MICRO_ECODEC when s is not strict base64 (util.c). */
int micro__base64_encode(const void *src, size_t n, micro_buf *out);
int micro__base64_decode(const char *s, size_t n, micro_buf *out);
/* The value of one character of the standard alphabet, or -1. */
int micro__base64_val(int c);

/* Monotonic clock in milliseconds / nanoseconds. */
int64_t micro__now_ms(void);
int64_t micro__now_ns(void);

/* A random v4 UUID as 36 characters + NUL. */
void micro__uuid(char out[37]);
/* Uniform random number in [0, n); thread-safe. n > 0. */
uint32_t micro__rand(uint32_t n);
/* For tests: seed the calling thread's micro__rand generator (seed 0:
 * from getrandom again), so that choices made on this thread repeat. */
void micro__rand_seed(uint64_t seed);

/* A seedable random source (xorshift128+), for components whose choices
 * tests must be able to reproduce. Not thread-safe: its owner guards it.
 * seed 0 seeds from getrandom; any other seed gives the same sequence
 * every time. */
typedef struct micro__rng {
    uint64_t s[2];
} micro__rng;

void micro__rng_seed(micro__rng *r, uint64_t seed);
/* Uniform in [0, n) (n > 0). */
uint32_t micro__rng_below(micro__rng *r, uint32_t n);

/* Go Micro's advertise rule (util/addr Extract) for an unspecified host:
 * the first private IPv4 address of an up non-loopback interface, else any
 * non-loopback one, else 127.0.0.1. */
void micro__advertise_host(char *out, size_t cap);
/* True for "", "0.0.0.0", "::" and "[::]". */
bool micro__host_unspecified(const char *host);
/* Split a listen address "host:port" / "[ip6]:port" (port 0..65535, host
 * may be empty) into host (brackets removed) and port. MICRO_EINVAL when
 * malformed or the host does not fit cap. */
int micro__split_host_port(const char *addr, char *host, size_t cap,
    int *port);
/* Value of one hex digit (either case), or -1. */
int micro__hexval(int c);

/*
 * Public structs that grow at their end start with `size_t size`: sizeof
 * the struct as the caller compiled it, 0 for the first version (v1
 * bytes, MICRO__V1: up to the end of its last field). Copy what the
 * caller's struct holds into dst (dst_size bytes: this version), never
 * reading past it; what it does not hold is zeroed, and dst's size becomes
 * dst_size. A NULL src gives a zeroed dst with its size set.
 */
#define MICRO__V1(type, last)                                                  \
    (offsetof(type, last) + sizeof(((const type *) 0)->last))
static inline void
micro__sized_copy(void *dst, size_t dst_size, const void *src, size_t v1)
{
    memset(dst, 0, dst_size);
    if (src != NULL) {
        size_t n = 0;
        memcpy(&n, src, sizeof(n));
        n = n == 0 ? v1 : n;
        n = n < dst_size ? n : dst_size;
        if (n > sizeof(size_t)) {
            memcpy((char *) dst + sizeof(size_t),
                (const char *) src + sizeof(size_t), n - sizeof(size_t));
        }
    }
    memcpy(dst, &dst_size, sizeof(dst_size));
}
/* dst: a pointer to this version of type; last: type's last v1 field. */
#define MICRO__SIZED_COPY(dst, src, type, last)                                \
    micro__sized_copy((dst), sizeof(type), (src), MICRO__V1(type, last))

#define MICRO_LOGF(lvl, comp, ...)                                             \
    do {                                                                       \
        if (micro_log_enabled(lvl)) {                                          \
            micro_log((lvl), (comp), __VA_ARGS__);                             \
        }                                                                      \
    } while (0)

/* Banned functions (curl checksrc): placed after the system includes. */
#pragma GCC poison sprintf vsprintf strcpy strcat strtok gets atoi

#endif
