/*
 * Registration records: metadata maps, deep copies, and the JSON form that
 * Go's encoding/json gives registry.Service. The encoder is written by hand
 * because the bytes must match Go's exactly (field order, sorted map keys,
 * HTML-safe escaping, nil as null); the decoder uses cJSON.
 */
#include "core/internal.h"
#include "registry/registry_internal.h"

#include <cjson/cJSON.h>

/* Go's decoder has no depth limit of its own beyond the stack; we cap Value
 * trees so hostile input cannot recurse without bound. */
#define VALUE_MAX_DEPTH 32

/* ------------------------------------------------------------------ */
/* Metadata                                                             */

const char *
micro_metadata_get(const micro_metadata *m, const char *key)
{
    if (m == NULL || key == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < m->len; i++) {
        if (strcmp(m->items[i].key, key) == 0) {
            return m->items[i].value;
        }
    }
    return NULL;
}

int
micro_metadata_set(micro_metadata *m, const char *key, const char *value)
{
    if (m == NULL || key == NULL) {
        return MICRO_EINVAL;
    }
    char *v = micro__strdup(value != NULL ? value : "");
    if (v == NULL) {
        return MICRO_ENOMEM;
    }
    for (size_t i = 0; i < m->len; i++) {
        if (strcmp(m->items[i].key, key) == 0) {
            micro__free(m->items[i].value);
            m->items[i].value = v;
            return 0;
        }
    }
    char *k = micro__strdup(key);
    if (k == NULL) {
        micro__free(v);
        return MICRO_ENOMEM;
    }
    micro_kv *items = micro__realloc(m->items, (m->len + 1) * sizeof(*items));
    if (items == NULL) {
        micro__free(k);
        micro__free(v);
        return MICRO_ENOMEM;
    }
    items[m->len].key = k;
    items[m->len].value = v;
    m->items = items;
    m->len++;
    return 0;
}

void
micro_metadata_clear(micro_metadata *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->len; i++) {
        micro__free(m->items[i].key);
        micro__free(m->items[i].value);
    }
    micro__free(m->items);
    m->items = NULL;
    m->len = 0;
}

int
micro__metadata_copy(micro_metadata *dst, const micro_metadata *src)
{
    memset(dst, 0, sizeof(*dst));
    if (src == NULL || src->items == NULL) {
        return 0; /* nil stays nil */
    }
    /* A non-NULL array even when empty: {} must survive a copy. */
    dst->items = micro__calloc(src->len ? src->len : 1, sizeof(micro_kv));
    if (dst->items == NULL) {
        return MICRO_ENOMEM;
    }
    for (size_t i = 0; i < src->len; i++) {
        dst->items[i].key = micro__strdup(src->items[i].key);
        dst->items[i].value = micro__strdup(src->items[i].value);
        dst->len++;
        if (dst->items[i].key == NULL || dst->items[i].value == NULL) {
            micro_metadata_clear(dst);
            return MICRO_ENOMEM;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Clearing                                                             */

void
micro_value_clear(micro_value *v)
{
    if (v == NULL) {
        return;
    }
    micro__free(v->name);
    micro__free(v->type);
    for (size_t i = 0; i < v->n_values; i++) {
        micro_value_clear(&v->values[i]);
    }
    micro__free(v->values);
    memset(v, 0, sizeof(*v));
}

static void
value_free(micro_value *v)
{
    if (v != NULL) {
        micro_value_clear(v);
        micro__free(v);
    }
}

void
micro_endpoint_clear(micro_endpoint *e)
{
    if (e == NULL) {
        return;
    }
    micro__free(e->name);
    value_free(e->request);
    value_free(e->response);
    micro_metadata_clear(&e->metadata);
    memset(e, 0, sizeof(*e));
}

void
micro_node_clear(micro_node *n)
{
    if (n == NULL) {
        return;
    }
    micro__free(n->id);
    micro__free(n->address);
    micro_metadata_clear(&n->metadata);
    memset(n, 0, sizeof(*n));
}

void
micro_registry_service_clear(micro_registry_service *s)
{
    if (s == NULL) {
        return;
    }
    micro__free(s->name);
    micro__free(s->version);
    micro_metadata_clear(&s->metadata);
    for (size_t i = 0; i < s->n_endpoints; i++) {
        micro_endpoint_clear(&s->endpoints[i]);
    }
    micro__free(s->endpoints);
    for (size_t i = 0; i < s->n_nodes; i++) {
        micro_node_clear(&s->nodes[i]);
    }
    micro__free(s->nodes);
    memset(s, 0, sizeof(*s));
}

void
micro_registry_service_free(micro_registry_service *s)
{
    if (s != NULL) {
        micro_registry_service_clear(s);
        micro__free(s);
    }
}

void
micro_registry_services_free(micro_registry_service *svcs, size_t n)
{
    if (svcs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        micro_registry_service_clear(&svcs[i]);
    }
    micro__free(svcs);
}

/* ------------------------------------------------------------------ */
/* Deep copies                                                          */

/* Copy a string that may be NULL; *ok turns false on out-of-memory. */
static char *
dup_opt(const char *s, bool *ok)
{
    if (s == NULL) {
        return NULL;
    }
    char *p = micro__strdup(s);
    if (p == NULL) {
        *ok = false;
    }
    return p;
}

static int
value_copy(micro_value *dst, const micro_value *src, int depth)
{
    bool ok = true;
    memset(dst, 0, sizeof(*dst));
    if (depth > VALUE_MAX_DEPTH * 4) {
        /* Records we built ourselves are never this deep; refuse rather
         * than recurse without bound on a corrupted tree. */
        return MICRO_EINVAL;
    }
    dst->name = dup_opt(src->name, &ok);
    dst->type = dup_opt(src->type, &ok);
    if (ok && src->n_values > 0) {
        dst->values = micro__calloc(src->n_values, sizeof(micro_value));
        if (dst->values == NULL) {
            ok = false;
        }
        for (size_t i = 0; ok && i < src->n_values; i++) {
            int rc = value_copy(&dst->values[i], &src->values[i], depth + 1);
            dst->n_values++;
            if (rc < 0) {
                micro_value_clear(dst);
                return rc;
            }
        }
    }
    if (!ok) {
        micro_value_clear(dst);
        return MICRO_ENOMEM;
    }
    return 0;
}

static int
value_dup(micro_value **dst, const micro_value *src)
{
    *dst = NULL;
    if (src == NULL) {
        return 0;
    }
    micro_value *v = micro__malloc(sizeof(*v));
    if (v == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = value_copy(v, src, 0);
    if (rc < 0) {
        micro__free(v);
        return rc;
    }
    *dst = v;
    return 0;
}

int
micro__endpoint_copy(micro_endpoint *dst, const micro_endpoint *src)
{
    bool ok = true;
    memset(dst, 0, sizeof(*dst));
    dst->name = dup_opt(src->name, &ok);
    int rc = ok ? 0 : MICRO_ENOMEM;
    if (rc == 0) {
        rc = value_dup(&dst->request, src->request);
    }
    if (rc == 0) {
        rc = value_dup(&dst->response, src->response);
    }
    if (rc == 0) {
        rc = micro__metadata_copy(&dst->metadata, &src->metadata);
    }
    if (rc < 0) {
        micro_endpoint_clear(dst);
    }
    return rc;
}

int
micro_node_copy(micro_node *dst, const micro_node *src)
{
    if (dst == NULL || src == NULL) {
        return MICRO_EINVAL;
    }
    bool ok = true;
    memset(dst, 0, sizeof(*dst));
    dst->id = dup_opt(src->id, &ok);
    dst->address = dup_opt(src->address, &ok);
    int rc = ok ? 0 : MICRO_ENOMEM;
    if (rc == 0) {
        rc = micro__metadata_copy(&dst->metadata, &src->metadata);
    }
    if (rc < 0) {
        micro_node_clear(dst);
    }
    return rc;
}

int
micro__registry_service_copy_header(
    micro_registry_service *dst, const micro_registry_service *src)
{
    bool ok = true;
    memset(dst, 0, sizeof(*dst));
    dst->name = dup_opt(src->name, &ok);
    dst->version = dup_opt(src->version, &ok);
    int rc = ok ? 0 : MICRO_ENOMEM;
    if (rc == 0) {
        rc = micro__metadata_copy(&dst->metadata, &src->metadata);
    }
    if (rc == 0 && src->n_endpoints > 0) {
        dst->endpoints = micro__calloc(src->n_endpoints, sizeof(micro_endpoint));
        if (dst->endpoints == NULL) {
            rc = MICRO_ENOMEM;
        }
        for (size_t i = 0; rc == 0 && i < src->n_endpoints; i++) {
            rc = micro__endpoint_copy(&dst->endpoints[i], &src->endpoints[i]);
            if (rc == 0) {
                dst->n_endpoints++;
            }
        }
    }
    if (rc < 0) {
        micro_registry_service_clear(dst);
    }
    return rc;
}

int
micro_registry_service_copy(
    micro_registry_service *dst, const micro_registry_service *src)
{
    if (dst == NULL || src == NULL) {
        return MICRO_EINVAL;
    }
    int rc = micro__registry_service_copy_header(dst, src);
    if (rc == 0 && src->n_nodes > 0) {
        dst->nodes = micro__calloc(src->n_nodes, sizeof(micro_node));
        if (dst->nodes == NULL) {
            rc = MICRO_ENOMEM;
        }
        for (size_t i = 0; rc == 0 && i < src->n_nodes; i++) {
            rc = micro_node_copy(&dst->nodes[i], &src->nodes[i]);
            if (rc == 0) {
                dst->n_nodes++;
            }
        }
        if (rc < 0) {
            micro_registry_service_clear(dst);
        }
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                             */

typedef struct jbuf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
} jbuf;

static void
jb_put(jbuf *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *p = micro__realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
jb_lit(jbuf *b, const char *s)
{
    jb_put(b, s, strlen(s));
}

/*
 * The length of the valid UTF-8 sequence at s (at most n bytes), or 0 when
 * it is invalid. Mirrors Go's utf8.DecodeRuneInString: overlong forms,
 * surrogates and code points above U+10FFFF are invalid.
 */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t need;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        if (c == 0xe0) {
            lo = 0xa0;
        } else if (c == 0xed) {
            hi = 0x9f;
        }
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        if (c == 0xf0) {
            lo = 0x90;
        } else if (c == 0xf4) {
            hi = 0x8f;
        }
    } else {
        return 0;
    }
    if (n < need || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) {
            return 0;
        }
    }
    return need;
}

/*
 * Write s as a JSON string the way Go's encoding/json does with its default
 * HTML escaping: '"' and '\\' backslashed; \n \r \t short; every other
 * control byte, '<', '>' and '&' as \u00XX (lower-case hex, so \b and \f
 * become \u0008 and \u000c as Go wrote them before 1.22); U+2028 and U+2029
 * escaped; each byte of invalid UTF-8 replaced by \ufffd. NULL is "".
 */
static void
jb_str(jbuf *b, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *) (str ? str : "");
    size_t n = strlen((const char *) s);
    size_t start = 0;
    size_t i = 0;
    jb_put(b, "\"", 1);
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && c != '<' &&
            c != '>' && c != '&') {
            i++;
            continue;
        }
        if (c < 0x80) {
            jb_put(b, (const char *) s + start, i - start);
            char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            switch (c) {
            case '"':
                jb_put(b, "\\\"", 2);
                break;
            case '\\':
                jb_put(b, "\\\\", 2);
                break;
            case '\n':
                jb_put(b, "\\n", 2);
                break;
            case '\r':
                jb_put(b, "\\r", 2);
                break;
            case '\t':
                jb_put(b, "\\t", 2);
                break;
            default:
                jb_put(b, esc, sizeof(esc));
                break;
            }
            i++;
            start = i;
            continue;
        }
        size_t w = utf8_len(s + i, n - i);
        if (w == 0) {
            jb_put(b, (const char *) s + start, i - start);
            jb_lit(b, "\\ufffd");
            i++;
            start = i;
            continue;
        }
        /* U+2028 is E2 80 A8 and U+2029 is E2 80 A9. */
        if (w == 3 && c == 0xe2 && s[i + 1] == 0x80 &&
            (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
            jb_put(b, (const char *) s + start, i - start);
            jb_lit(b, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
            i += 3;
            start = i;
            continue;
        }
        i += w;
    }
    jb_put(b, (const char *) s + start, n - start);
    jb_put(b, "\"", 1);
}

static int
kv_cmp(const void *a, const void *b)
{
    const micro_kv *const *x = a;
    const micro_kv *const *y = b;
    return strcmp((*x)->key, (*y)->key);
}

/* Go writes maps with their keys sorted by byte order. */
static void
jb_metadata(jbuf *b, const micro_metadata *m)
{
    if (m->items == NULL) {
        jb_lit(b, "null");
        return;
    }
    const micro_kv **order = micro__calloc(m->len ? m->len : 1, sizeof(*order));
    if (order == NULL) {
        b->oom = true;
        return;
    }
    for (size_t i = 0; i < m->len; i++) {
        order[i] = &m->items[i];
    }
    qsort(order, m->len, sizeof(*order), kv_cmp);
    jb_put(b, "{", 1);
    for (size_t i = 0; i < m->len; i++) {
        if (i > 0) {
            jb_put(b, ",", 1);
        }
        jb_str(b, order[i]->key);
        jb_put(b, ":", 1);
        jb_str(b, order[i]->value);
    }
    jb_put(b, "}", 1);
    micro__free(order);
}

static void
jb_value(jbuf *b, const micro_value *v, int depth)
{
    if (v == NULL) {
        jb_lit(b, "null");
        return;
    }
    if (depth > VALUE_MAX_DEPTH * 4) {
        b->oom = true; /* a corrupted tree; reported as an error below */
        return;
    }
    jb_lit(b, "{\"name\":");
    jb_str(b, v->name);
    jb_lit(b, ",\"type\":");
    jb_str(b, v->type);
    jb_lit(b, ",\"values\":");
    if (v->n_values == 0) {
        jb_lit(b, "null");
    } else {
        jb_put(b, "[", 1);
        for (size_t i = 0; i < v->n_values; i++) {
            if (i > 0) {
                jb_put(b, ",", 1);
            }
            jb_value(b, &v->values[i], depth + 1);
        }
        jb_put(b, "]", 1);
    }
    jb_put(b, "}", 1);
}

static void
jb_endpoint(jbuf *b, const micro_endpoint *e)
{
    jb_lit(b, "{\"request\":");
    jb_value(b, e->request, 0);
    jb_lit(b, ",\"response\":");
    jb_value(b, e->response, 0);
    jb_lit(b, ",\"metadata\":");
    jb_metadata(b, &e->metadata);
    jb_lit(b, ",\"name\":");
    jb_str(b, e->name);
    jb_put(b, "}", 1);
}

static void
jb_node(jbuf *b, const micro_node *n)
{
    jb_lit(b, "{\"metadata\":");
    jb_metadata(b, &n->metadata);
    jb_lit(b, ",\"id\":");
    jb_str(b, n->id);
    jb_lit(b, ",\"address\":");
    jb_str(b, n->address);
    jb_put(b, "}", 1);
}

int
micro_registry_service_to_json(const micro_registry_service *s, char **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (s == NULL || out == NULL) {
        return MICRO_EINVAL;
    }
    jbuf b = { 0 };
    jb_lit(&b, "{\"name\":");
    jb_str(&b, s->name);
    jb_lit(&b, ",\"version\":");
    jb_str(&b, s->version);
    jb_lit(&b, ",\"metadata\":");
    jb_metadata(&b, &s->metadata);
    jb_lit(&b, ",\"endpoints\":");
    if (s->n_endpoints == 0) {
        jb_lit(&b, "null");
    } else {
        jb_put(&b, "[", 1);
        for (size_t i = 0; i < s->n_endpoints; i++) {
            if (i > 0) {
                jb_put(&b, ",", 1);
            }
            jb_endpoint(&b, &s->endpoints[i]);
        }
        jb_put(&b, "]", 1);
    }
    jb_lit(&b, ",\"nodes\":");
    if (s->n_nodes == 0) {
        jb_lit(&b, "null");
    } else {
        jb_put(&b, "[", 1);
        for (size_t i = 0; i < s->n_nodes; i++) {
            if (i > 0) {
                jb_put(&b, ",", 1);
            }
            jb_node(&b, &s->nodes[i]);
        }
        jb_put(&b, "]", 1);
    }
    jb_put(&b, "}", 1);
    if (b.oom) {
        micro__free(b.p);
        return MICRO_ENOMEM;
    }
    *out = b.p;
    return 0;
}

int
micro__endpoint_to_json(const micro_endpoint *e, char **out)
{
    jbuf b = { 0 };
    jb_endpoint(&b, e);
    if (b.oom) {
        micro__free(b.p);
        *out = NULL;
        return MICRO_ENOMEM;
    }
    *out = b.p;
    return 0;
}

int
micro__registry_mdns_txt_json(const char *service, const char *version,
    const micro_metadata *md, const micro_endpoint *eps, size_t n_eps,
    char **out)
{
    jbuf b = { 0 };
    jb_lit(&b, "{\"Metadata\":");
    jb_metadata(&b, md);
    jb_lit(&b, ",\"Service\":");
    jb_str(&b, service);
    jb_lit(&b, ",\"Version\":");
    jb_str(&b, version);
    jb_lit(&b, ",\"Endpoints\":");
    if (n_eps == 0) {
        jb_lit(&b, "null");
    } else {
        jb_put(&b, "[", 1);
        for (size_t i = 0; i < n_eps; i++) {
            if (i > 0) {
                jb_put(&b, ",", 1);
            }
            jb_endpoint(&b, &eps[i]);
        }
        jb_put(&b, "]", 1);
    }
    jb_put(&b, "}", 1);
    if (b.oom) {
        micro__free(b.p);
        *out = NULL;
        return MICRO_ENOMEM;
    }
    *out = b.p;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                             */

/* Go matches JSON keys to struct fields case-insensitively, as
 * cJSON_GetObjectItem does. */
static const cJSON *
field(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItem(obj, name);
}

/* A string field: missing or null leaves *dst NULL. */
static int
dec_str(const cJSON *obj, const char *name, char **dst)
{
    const cJSON *j = field(obj, name);
    if (j == NULL || cJSON_IsNull(j)) {
        return 0;
    }
    if (!cJSON_IsString(j) || j->valuestring == NULL) {
        return MICRO_ECODEC;
    }
    *dst = micro__strdup(j->valuestring);
    return *dst != NULL ? 0 : MICRO_ENOMEM;
}

static int
dec_metadata(const cJSON *obj, const char *name, micro_metadata *m)
{
    const cJSON *j = field(obj, name);
    if (j == NULL || cJSON_IsNull(j)) {
        return 0;
    }
    if (!cJSON_IsObject(j)) {
        return MICRO_ECODEC;
    }
    /* {} decodes to an empty, non-nil map. */
    m->items = micro__calloc(1, sizeof(micro_kv));
    if (m->items == NULL) {
        return MICRO_ENOMEM;
    }
    const cJSON *kv;
    cJSON_ArrayForEach(kv, j)
    {
        const char *v;
        if (cJSON_IsNull(kv)) {
            v = "";
        } else if (cJSON_IsString(kv) && kv->valuestring != NULL) {
            v = kv->valuestring;
        } else {
            return MICRO_ECODEC;
        }
        if (kv->string == NULL) {
            return MICRO_ECODEC;
        }
        int rc = micro_metadata_set(m, kv->string, v);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* An array field: missing or null gives count 0. */
static int
dec_array(const cJSON *obj, const char *name, const cJSON **arr, size_t *n)
{
    const cJSON *j = field(obj, name);
    *arr = NULL;
    *n = 0;
    if (j == NULL || cJSON_IsNull(j)) {
        return 0;
    }
    if (!cJSON_IsArray(j)) {
        return MICRO_ECODEC;
    }
    *arr = j;
    *n = (size_t) cJSON_GetArraySize(j);
    return 0;
}

static int
dec_value(const cJSON *j, micro_value *v, int depth)
{
    if (depth >= VALUE_MAX_DEPTH) {
        return MICRO_ECODEC;
    }
    if (!cJSON_IsObject(j)) {
        return MICRO_ECODEC;
    }
    int rc = dec_str(j, "name", &v->name);
    if (rc == 0) {
        rc = dec_str(j, "type", &v->type);
    }
    const cJSON *arr = NULL;
    size_t n = 0;
    if (rc == 0) {
        rc = dec_array(j, "values", &arr, &n);
    }
    if (rc == 0 && n > 0) {
        v->values = micro__calloc(n, sizeof(micro_value));
        if (v->values == NULL) {
            return MICRO_ENOMEM;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, arr)
        {
            rc = dec_value(e, &v->values[v->n_values++], depth + 1);
            if (rc < 0) {
                break;
            }
        }
    }
    return rc;
}

static int
dec_value_ptr(const cJSON *obj, const char *name, micro_value **out)
{
    const cJSON *j = field(obj, name);
    if (j == NULL || cJSON_IsNull(j)) {
        return 0;
    }
    *out = micro__calloc(1, sizeof(micro_value));
    if (*out == NULL) {
        return MICRO_ENOMEM;
    }
    return dec_value(j, *out, 0);
}

static int
dec_endpoint(const cJSON *j, micro_endpoint *e)
{
    if (!cJSON_IsObject(j)) {
        return MICRO_ECODEC;
    }
    int rc = dec_value_ptr(j, "request", &e->request);
    if (rc == 0) {
        rc = dec_value_ptr(j, "response", &e->response);
    }
    if (rc == 0) {
        rc = dec_metadata(j, "metadata", &e->metadata);
    }
    if (rc == 0) {
        rc = dec_str(j, "name", &e->name);
    }
    return rc;
}

static int
dec_node(const cJSON *j, micro_node *n)
{
    if (!cJSON_IsObject(j)) {
        return MICRO_ECODEC;
    }
    int rc = dec_metadata(j, "metadata", &n->metadata);
    if (rc == 0) {
        rc = dec_str(j, "id", &n->id);
    }
    if (rc == 0) {
        rc = dec_str(j, "address", &n->address);
    }
    return rc;
}

static int
dec_service(const cJSON *j, micro_registry_service *s)
{
    if (!cJSON_IsObject(j)) {
        return MICRO_ECODEC;
    }
    int rc = dec_str(j, "name", &s->name);
    if (rc == 0) {
        rc = dec_str(j, "version", &s->version);
    }
    if (rc == 0) {
        rc = dec_metadata(j, "metadata", &s->metadata);
    }
    const cJSON *arr = NULL;
    size_t n = 0;
    if (rc == 0) {
        rc = dec_array(j, "endpoints", &arr, &n);
    }
    if (rc == 0 && n > 0) {
        s->endpoints = micro__calloc(n, sizeof(micro_endpoint));
        if (s->endpoints == NULL) {
            return MICRO_ENOMEM;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, arr)
        {
            rc = dec_endpoint(e, &s->endpoints[s->n_endpoints++]);
            if (rc < 0) {
                return rc;
            }
        }
    }
    if (rc == 0) {
        rc = dec_array(j, "nodes", &arr, &n);
    }
    if (rc == 0 && n > 0) {
        s->nodes = micro__calloc(n, sizeof(micro_node));
        if (s->nodes == NULL) {
            return MICRO_ENOMEM;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, arr)
        {
            rc = dec_node(e, &s->nodes[s->n_nodes++]);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return rc;
}

int
micro_registry_service_from_json(
    const char *json, size_t len, micro_registry_service *s)
{
    if (s == NULL) {
        return MICRO_EINVAL;
    }
    memset(s, 0, sizeof(*s));
    if (json == NULL) {
        return MICRO_EINVAL;
    }
    const char *end = NULL;
    int prc = 0;
    cJSON *root = micro__json_parse(json, len, &end, &prc);
    if (root == NULL) {
        return prc;
    }
    /* Like json.Unmarshal, allow only white space after the value. */
    for (const char *p = end; p != NULL && p < json + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return MICRO_ECODEC;
        }
    }
    int rc = dec_service(root, s);
    cJSON_Delete(root);
    if (rc < 0) {
        micro_registry_service_clear(s);
    }
    return rc;
}

int
micro__endpoint_from_cjson(const cJSON *j, micro_endpoint *e)
{
    memset(e, 0, sizeof(*e));
    int rc = dec_endpoint(j, e);
    if (rc < 0) {
        micro_endpoint_clear(e);
    }
    return rc;
}
