/* Allocation, clocks, randomness and UUIDs. */
#include "core/internal.h"

#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>

void
micro__panic(const char *file, int line, const char *expr)
{
    fprintf(stderr, "cmicro: assertion failed at %s:%d: %s\n", file, line,
        expr);
    abort();
}

void *
micro__malloc(size_t n)
{
    return malloc(n ? n : 1);
}

void *
micro__calloc(size_t n, size_t m)
{
    return calloc(n ? n : 1, m ? m : 1);
}

void *
micro__realloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}

void
micro__free(void *p)
{
    free(p);
}

char *
micro__strdup(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    return micro__strndup(s, strlen(s));
}

char *
micro__strndup(const char *s, size_t n)
{
    char *p = micro__malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

int64_t
micro__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
micro__now_ms(void)
{
    return micro__now_ns() / 1000000;
}

int64_t
micro_now_ms(void)
{
    return micro__now_ms();
}

/* xorshift128+ per thread, seeded from getrandom: fast and lock-free. */
static _Thread_local uint64_t rng_s[2];

static uint64_t
rng_next(void)
{
    if (rng_s[0] == 0 && rng_s[1] == 0) {
        if (getrandom(rng_s, sizeof(rng_s), 0) != (ssize_t) sizeof(rng_s)) {
            rng_s[0] = (uint64_t) micro__now_ns() ^ (uint64_t) pthread_self();
            rng_s[1] = 0x9e3779b97f4a7c15ull;
        }
        if (rng_s[0] == 0 && rng_s[1] == 0) {
            rng_s[0] = 1;
        }
    }
    uint64_t s1 = rng_s[0];
    const uint64_t s0 = rng_s[1];
    rng_s[0] = s0;
    s1 ^= s1 << 23;
    rng_s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return rng_s[1] + s0;
}

uint32_t
micro__rand(uint32_t n)
{
    return (uint32_t) ((rng_next() >> 32) % n);
}

void
micro__uuid(char out[37])
{
    uint8_t b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t) sizeof(b)) {
        for (size_t i = 0; i < sizeof(b); i += 8) {
            uint64_t r = rng_next();
            memcpy(b + i, &r, 8);
        }
    }
    b[6] = (uint8_t) ((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t) ((b[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

const char *
micro_version(void)
{
    return MICRO_VERSION_STRING;
}
