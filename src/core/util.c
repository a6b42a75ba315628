/* Allocation, clocks, randomness and UUIDs. */
#include "core/internal.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>
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

/*
 * The allocator. hooks holds what micro_init installed (all NULL: the C
 * library's). alloc_used records that an allocation happened, after
 * which other hooks may not be installed: memory from one allocator would
 * be handed to another's free. tl_failed remembers, per thread, that an
 * allocation failed, for callers whose libraries report out-of-memory and
 * bad input alike (a cJSON parse returns NULL for both).
 */
static micro_init_params hooks;
static _Thread_local bool tl_failed;

#ifdef MICRO_MODULE
/* A plugin module (libcmicro-nats) has its own copy of this file: it
 * takes the hooks libcmicro has in force, once, so that its memory comes
 * from the same allocator. */
static pthread_once_t module_once = PTHREAD_ONCE_INIT;

static void
module_hooks(void)
{
    micro_init_params p;
    micro_init_get(&p);
    hooks = p;
}

static inline void
note_use(void)
{
    pthread_once(&module_once, module_hooks);
}
#else
static atomic_bool hooks_set;
static atomic_bool alloc_used;

static inline void
note_use(void)
{
    if (!atomic_load_explicit(&alloc_used, memory_order_relaxed)) {
        atomic_store_explicit(&alloc_used, true, memory_order_relaxed);
    }
}
#endif

static inline void *
note_result(void *p)
{
    if (p == NULL) {
        tl_failed = true;
    }
    return p;
}

void *
micro__malloc(size_t n)
{
    note_use();
    n = n ? n : 1;
    return note_result(hooks.malloc_fn ? hooks.malloc_fn(n) : malloc(n));
}

void *
micro__calloc(size_t n, size_t m)
{
    note_use();
    n = n ? n : 1;
    m = m ? m : 1;
    return note_result(hooks.calloc_fn ? hooks.calloc_fn(n, m) : calloc(n, m));
}

void *
micro__realloc(void *p, size_t n)
{
    note_use();
    n = n ? n : 1;
    return note_result(
        hooks.realloc_fn ? hooks.realloc_fn(p, n) : realloc(p, n));
}

void
micro__free(void *p)
{
#ifdef MICRO_MODULE
    note_use();
#endif
    if (hooks.free_fn != NULL) {
        if (p != NULL) {
            hooks.free_fn(p);
        }
        return;
    }
    free(p);
}

void
micro__alloc_failed_reset(void)
{
    tl_failed = false;
}

bool
micro__alloc_failed(void)
{
    return tl_failed;
}

cJSON *
micro__json_parse(const char *text, size_t len, const char **end, int *rc)
{
    micro__alloc_failed_reset();
    const char *e = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &e, 0);
    if (end != NULL) {
        *end = e;
    }
    *rc = v != NULL ? 0 : micro__alloc_failed() ? MICRO_ENOMEM : MICRO_ECODEC;
    return v;
}

#ifndef MICRO_MODULE
void
micro_init_get(micro_init_params *out)
{
    memset(out, 0, sizeof(*out));
    out->size = sizeof(*out);
    out->malloc_fn = hooks.malloc_fn;
    out->calloc_fn = hooks.calloc_fn;
    out->realloc_fn = hooks.realloc_fn;
    out->free_fn = hooks.free_fn;
}

int
micro_init(const micro_init_params *params)
{
    micro_init_params want;
    memset(&want, 0, sizeof(want));
    if (params != NULL) {
        if (params->size < sizeof(micro_init_params)) {
            return MICRO_EINVAL;
        }
        want.malloc_fn = params->malloc_fn;
        want.calloc_fn = params->calloc_fn;
        want.realloc_fn = params->realloc_fn;
        want.free_fn = params->free_fn;
    }
    int given = (want.malloc_fn != NULL) + (want.calloc_fn != NULL) +
        (want.realloc_fn != NULL) + (want.free_fn != NULL);
    if (given != 0 && given != 4) {
        return MICRO_EINVAL;
    }
    bool same = want.malloc_fn == hooks.malloc_fn &&
        want.calloc_fn == hooks.calloc_fn &&
        want.realloc_fn == hooks.realloc_fn && want.free_fn == hooks.free_fn;
    if (same) {
        atomic_store(&hooks_set, true);
        return 0;
    }
    if (atomic_load(&hooks_set) || atomic_load(&alloc_used)) {
        return MICRO_EINVAL;
    }
    hooks.malloc_fn = want.malloc_fn;
    hooks.calloc_fn = want.calloc_fn;
    hooks.realloc_fn = want.realloc_fn;
    hooks.free_fn = want.free_fn;
    atomic_store(&hooks_set, true);
    /* The libraries that allocate for us, process-wide. */
    uv_replace_allocator(micro__malloc, micro__realloc, micro__calloc,
        micro__free);
    cJSON_Hooks ch = {micro__malloc, micro__free};
    cJSON_InitHooks(&ch);
    return 0;
}
#endif /* MICRO_MODULE */

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
micro__rand_seed(uint64_t seed)
{
    micro__rng_seed(&tl_rng, seed);
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

/* ------------------------------------------------------------------ */
/* Base64 (standard alphabet, padded): Go's []byte in JSON, the broker
 * envelope and etcd's JSON gateway. */

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
micro__base64_encode(const void *src, size_t n, micro_buf *out)
{
    const uint8_t *p = src;
    if (n == 0) {
        return 0; /* (an empty buffer may have no storage) */
    }
    int rc = micro_buf_reserve(out, (n + 2) / 3 * 4);
    if (rc != 0) {
        return rc;
    }
    char *d = (char *) out->data + out->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 |
            p[i + 2];
        *d++ = b64[v >> 18];
        *d++ = b64[(v >> 12) & 63];
        *d++ = b64[(v >> 6) & 63];
        *d++ = b64[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t) p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t) p[i + 1] << 8;
        }
        *d++ = b64[v >> 18];
        *d++ = b64[(v >> 12) & 63];
        *d++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        *d++ = '=';
    }
    out->len = (size_t) ((uint8_t *) d - out->data);
    return 0;
}

int
micro__base64_val(int c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Strict standard base64 with padding, as Go's encoding/json wants it. */
int
micro__base64_decode(const char *s, size_t n, micro_buf *out)
{
    if (n % 4 != 0) {
        return MICRO_ECODEC;
    }
    if (n == 0) {
        return 0; /* (an empty buffer may have no storage) */
    }
    int rc = micro_buf_reserve(out, n / 4 * 3);
    if (rc != 0) {
        return rc;
    }
    uint8_t *d = out->data + out->len;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 ||
                (v[k] = micro__base64_val((unsigned char) s[i + k])) < 0) {
                return MICRO_ECODEC;
            }
        }
        uint32_t x = (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 |
            (uint32_t) v[2] << 6 | (uint32_t) v[3];
        *d++ = (uint8_t) (x >> 16);
        if (pad < 2) {
            *d++ = (uint8_t) (x >> 8);
        }
        if (pad < 1) {
            *d++ = (uint8_t) x;
        }
    }
    out->len = (size_t) (d - out->data);
    return 0;
}
