/* Byte buffers and transport messages (Go Micro's transport.Message). */
#include "core/msg_internal.h"

int
micro_buf_reserve(micro_buf *b, size_t n)
{
    if (b == NULL) {
        return MICRO_EINVAL;
    }
    if (n <= b->cap - b->len) {
        return 0;
    }
    if (n > SIZE_MAX - b->len) {
        return MICRO_ENOMEM;
    }
    size_t need = b->len + n;
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    uint8_t *p = micro__realloc(b->data, cap);
    if (p == NULL) {
        return MICRO_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int
micro_buf_append(micro_buf *b, const void *p, size_t n)
{
    if (n == 0) {
        return b == NULL ? MICRO_EINVAL : 0;
    }
    if (p == NULL) {
        return MICRO_EINVAL;
    }
    int rc = micro_buf_reserve(b, n);
    if (rc != 0) {
        return rc;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int
micro_buf_append_str(micro_buf *b, const char *s)
{
    if (s == NULL) {
        return MICRO_EINVAL;
    }
    return micro_buf_append(b, s, strlen(s));
}

void
micro_buf_clear(micro_buf *b)
{
    if (b == NULL) {
        return;
    }
    micro__free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int
micro_msg_new(micro_msg **out)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    /* malloc, not calloc: the inline arrays need no zeroing. */
    micro_msg *m = micro__malloc(sizeof(micro_msg));
    *out = m;
    if (m == NULL) {
        return MICRO_ENOMEM;
    }
    m->hdrs = m->inline_hdrs;
    m->n = 0;
    m->cap = MICRO__MSG_INLINE_HDRS;
    m->body = (micro_buf) {0};
    m->arena_used = 0;
    return 0;
}

/* Free a header block unless it lives in the message's arena. */
static void
hdr_release(micro_msg *m, char *key)
{
    uintptr_t k = (uintptr_t) key, a = (uintptr_t) m->arena;
    if (k < a || k >= a + MICRO__MSG_ARENA) {
        micro__free(key);
    }
}

void
micro_msg_free(micro_msg *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->n; i++) {
        hdr_release(m, m->hdrs[i].key);
    }
    if (m->hdrs != m->inline_hdrs) {
        micro__free(m->hdrs);
    }
    micro_buf_clear(&m->body);
    micro__free(m);
}

/* Fill h with a fresh key/value pair in one block: from m's arena while
 * it has room (bump allocation; space given back by a replaced or deleted
 * header is reused only when the message is freed), else malloc'd. */
static int
hdr_make(micro_msg *m, struct micro_hdr *h, const char *k, size_t kl,
    const char *v, size_t vl)
{
    if (kl > SIZE_MAX - vl - 2) {
        return MICRO_ENOMEM;
    }
    size_t need = kl + vl + 2;
    char *p;
    if (need <= MICRO__MSG_ARENA - m->arena_used) {
        p = m->arena + m->arena_used;
        m->arena_used += need;
    } else {
        p = micro__malloc(need);
        if (p == NULL) {
            return MICRO_ENOMEM;
        }
    }
    if (kl > 0) {
        memcpy(p, k, kl);
    }
    p[kl] = '\0';
    if (vl > 0) {
        memcpy(p + kl + 1, v, vl);
    }
    p[kl + 1 + vl] = '\0';
    h->key = p;
    h->value = p + kl + 1;
    h->klen = kl;
    h->vlen = vl;
    return 0;
}

static int
hdrs_grow(micro_msg *m)
{
    if (m->n < m->cap) {
        return 0;
    }
    size_t cap = m->cap * 2;
    struct micro_hdr *h;
    if (m->hdrs == m->inline_hdrs) {
        h = micro__malloc(cap * sizeof(*h));
        if (h != NULL) {
            memcpy(h, m->hdrs, m->n * sizeof(*h));
        }
    } else {
        h = micro__realloc(m->hdrs, cap * sizeof(*h));
    }
    if (h == NULL) {
        return MICRO_ENOMEM;
    }
    m->hdrs = h;
    m->cap = cap;
    return 0;
}

int
micro__msg_add_header_n(
    micro_msg *m, const char *k, size_t kl, const char *v, size_t vl)
{
    if (m == NULL || (k == NULL && kl > 0) || (v == NULL && vl > 0)) {
        return MICRO_EINVAL;
    }
    int rc = hdrs_grow(m);
    if (rc != 0) {
        return rc;
    }
    rc = hdr_make(m, &m->hdrs[m->n], k, kl, v, vl);
    if (rc != 0) {
        return rc;
    }
    m->n++;
    return 0;
}

/* Index of key (ignoring case), or m->n when absent. */
static size_t
hdr_find(const micro_msg *m, const char *key)
{
    /* The server asks for half a dozen headers per request among ten or
     * so: comparing lengths first skips nearly every strcasecmp. */
    size_t kl = strlen(key);
    for (size_t i = 0; i < m->n; i++) {
        if (m->hdrs[i].klen == kl && strcasecmp(m->hdrs[i].key, key) == 0) {
            return i;
        }
    }
    return m->n;
}

int
micro_msg_set_header(micro_msg *m, const char *key, const char *value)
{
    if (m == NULL || key == NULL) {
        return MICRO_EINVAL;
    }
    if (value == NULL) {
        value = "";
    }
    size_t i = hdr_find(m, key);
    if (i == m->n) {
        return micro__msg_add_header_n(
            m, key, strlen(key), value, strlen(value));
    }
    struct micro_hdr h;
    int rc = hdr_make(m, &h, key, strlen(key), value, strlen(value));
    if (rc != 0) {
        return rc;
    }
    hdr_release(m, m->hdrs[i].key);
    m->hdrs[i] = h;
    return 0;
}

const char *
micro_msg_header(const micro_msg *m, const char *key)
{
    if (m == NULL || key == NULL) {
        return NULL;
    }
    size_t i = hdr_find(m, key);
    return i == m->n ? NULL : m->hdrs[i].value;
}

void
micro_msg_del_header(micro_msg *m, const char *key)
{
    if (m == NULL || key == NULL) {
        return;
    }
    size_t i = hdr_find(m, key);
    if (i == m->n) {
        return;
    }
    hdr_release(m, m->hdrs[i].key);
    memmove(&m->hdrs[i], &m->hdrs[i + 1],
        (m->n - i - 1) * sizeof(m->hdrs[0]));
    m->n--;
}

size_t
micro_msg_header_count(const micro_msg *m)
{
    return m == NULL ? 0 : m->n;
}

int
micro_msg_header_at(
    const micro_msg *m, size_t i, const char **key, const char **value)
{
    if (m == NULL || i >= m->n) {
        return MICRO_EINVAL;
    }
    if (key != NULL) {
        *key = m->hdrs[i].key;
    }
    if (value != NULL) {
        *value = m->hdrs[i].value;
    }
    return 0;
}

int
micro_msg_set_body(micro_msg *m, const void *p, size_t n)
{
    if (m == NULL || (p == NULL && n > 0)) {
        return MICRO_EINVAL;
    }
    if (n > m->body.cap) {
        /* Fresh storage first so that failure leaves the old body intact. */
        micro_buf nb = {0};
        int rc = micro_buf_append(&nb, p, n);
        if (rc != 0) {
            return rc;
        }
        micro_buf_clear(&m->body);
        m->body = nb;
        return 0;
    }
    if (n > 0) {
        memmove(m->body.data, p, n);
    }
    m->body.len = n;
    return 0;
}

void
micro_msg_take_body(micro_msg *m, micro_buf *b)
{
    if (m == NULL || b == NULL) {
        return;
    }
    micro_buf_clear(&m->body);
    m->body = *b;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

const void *
micro_msg_body(const micro_msg *m, size_t *len)
{
    if (m == NULL) {
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    if (len != NULL) {
        *len = m->body.len;
    }
    return m->body.data;
}

/* RFC 7230 tchar, as Go's validHeaderFieldByte. */
static bool
is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
        (c >= 'A' && c <= 'Z')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int
micro_canonical_header_key(const char *key, char *out, size_t cap)
{
    if (key == NULL || (out == NULL && cap > 0)) {
        return MICRO_EINVAL;
    }
    size_t n = strlen(key);
    if (n > INT32_MAX || n >= cap) {
        return MICRO_EMSGSIZE;
    }
    /* Go returns the key unchanged when any byte is not a token byte
     * (a space included: go.dev/issue/34540). */
    bool canon = true;
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char) key[i])) {
            canon = false;
            break;
        }
    }
    bool upper = true;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (canon) {
            if (upper && c >= 'a' && c <= 'z') {
                c = (char) (c - 'a' + 'A');
            } else if (!upper && c >= 'A' && c <= 'Z') {
                c = (char) (c - 'A' + 'a');
            }
            upper = c == '-';
        }
        out[i] = c;
    }
    out[n] = '\0';
    return (int) n;
}

uint64_t
micro__hash_nocase(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c >= 'A' && c <= 'Z') {
            c = (unsigned char) (c - 'A' + 'a');
        }
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

static bool
hdr_same(const struct micro_hdr *a, const struct micro_hdr *b)
{
    return a->klen == b->klen && strncasecmp(a->key, b->key, a->klen) == 0;
}

int
micro__msg_dedup(micro_msg *m)
{
    if (m == NULL || m->n < 2) {
        return 0;
    }
    size_t n = m->n;
    size_t keep = 0;
    if (n <= 16) {
        /* A few fields: comparing pairs costs less than a table. */
        for (size_t i = 0; i < n; i++) {
            bool dup = false;
            for (size_t j = 0; j < keep && !dup; j++) {
                dup = hdr_same(&m->hdrs[j], &m->hdrs[i]);
            }
            if (dup) {
                hdr_release(m, m->hdrs[i].key);
            } else {
                m->hdrs[keep++] = m->hdrs[i];
            }
        }
        m->n = keep;
        return 0;
    }
    size_t cap = 32;
    while (cap < 2 * n) {
        cap *= 2;
    }
    /* Slots hold index + 1 of the first field of a name; 0 is empty. */
    size_t *slot = micro__calloc(cap, sizeof(*slot));
    if (slot == NULL) {
        return MICRO_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct micro_hdr *h = &m->hdrs[i];
        size_t s = (size_t) micro__hash_nocase(h->key, h->klen) & (cap - 1);
        bool dup = false;
        while (slot[s] != 0) {
            if (hdr_same(&m->hdrs[slot[s] - 1], h)) {
                dup = true;
                break;
            }
            s = (s + 1) & (cap - 1);
        }
        if (dup) {
            hdr_release(m, h->key);
            continue;
        }
        /* Kept fields move down, never past an unvisited one, and the
         * table points at their new places. */
        m->hdrs[keep] = *h;
        slot[s] = ++keep;
    }
    m->n = keep;
    micro__free(slot);
    return 0;
}

void
micro__msg_del_all(micro_msg *m, const char *key)
{
    if (m == NULL || key == NULL) {
        return;
    }
    size_t kl = strlen(key);
    size_t keep = 0;
    for (size_t i = 0; i < m->n; i++) {
        struct micro_hdr *h = &m->hdrs[i];
        if (h->klen == kl && strcasecmp(h->key, key) == 0) {
            hdr_release(m, h->key);
            continue;
        }
        m->hdrs[keep++] = *h;
    }
    m->n = keep;
}
