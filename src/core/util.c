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

static uint64_t
xorshift128p(uint64_t s[2])
{
    uint64_t s1 = s[0];
    const uint64_t s0 = s[1];
    s[0] = s0;
    s1 ^= s1 << 23;
    s[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return s[1] + s0;
}

/* splitmix64: spreads one 64-bit seed over the generator's state. */
static uint64_t
splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void
micro__rng_seed(micro__rng *r, uint64_t seed)
{
    if (seed == 0 &&
        getrandom(&seed, sizeof(seed), 0) != (ssize_t) sizeof(seed)) {
        seed = (uint64_t) micro__now_ns() ^ (uint64_t) pthread_self();
    }
    r->s[0] = splitmix64(&seed);
    r->s[1] = splitmix64(&seed);
    if (r->s[0] == 0 && r->s[1] == 0) {
        r->s[0] = 1;
    }
}

/* Lemire's multiply-shift on the high 32 bits (xorshift128+'s best). */
static uint32_t
below(uint64_t x, uint32_t n)
{
    return (uint32_t) (((x >> 32) * (uint64_t) n) >> 32);
}

uint32_t
micro__rng_below(micro__rng *r, uint32_t n)
{
    return below(xorshift128p(r->s), n);
}

/* xorshift128+ per thread, seeded from getrandom: fast and lock-free. */
static _Thread_local micro__rng tl_rng;

static uint64_t
rng_next(void)
{
    if (tl_rng.s[0] == 0 && tl_rng.s[1] == 0) {
        micro__rng_seed(&tl_rng, 0);
    }
    return xorshift128p(tl_rng.s);
}

uint32_t
micro__rand(uint32_t n)
{
    return below(rng_next(), n);
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
