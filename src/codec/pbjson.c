/*
 * JSON for protobuf-c messages, driven by the descriptors alone, shaped
 * after what Go Micro v4 writes and reads (wire spec §3.2):
 *
 * - Go Micro v4 encodes protoc-gen-go structs with encoding/json: keys are
 *   the proto field names (the json tags), zero values are omitted, 64-bit
 *   integers and enums are numbers, bytes are base64. We write the same.
 * - It decodes with jsonpb: proto or lowerCamelCase names, integers as
 *   numbers or strings, enums by number or name, unknown keys rejected. We
 *   accept the same, plus what a v4 peer's encoding/json writes for shapes
 *   jsonpb cannot read back (oneofs wrapped in an object named after the
 *   oneof, well-known types as plain structs).
 * - Where Go v4's two halves disagree (oneofs, well-known types, NaN), we
 *   write what jsonpb reads, so a Go Micro server can decode our requests.
 *
 * The parser is our own rather than cJSON's because cJSON keeps numbers
 * as doubles, which corrupts 64-bit integers above 2^53.
 */
#include "codec/proto_internal.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>

#define MEMBER(T, m, off) (*(T *) ((char *) (m) + (off)))
#define CMEMBER(T, m, off) (*(T const *) ((const char *) (m) + (off)))

typedef enum wkt {
    WKT_NONE = 0,
    WKT_TIMESTAMP,
    WKT_DURATION,
    WKT_WRAPPER,
    WKT_STRUCT,
    WKT_VALUE,
    WKT_LIST,
    WKT_FIELDMASK,
} wkt;

static wkt
wkt_of(const ProtobufCMessageDescriptor *d)
{
    const char *n = d->name;
    if (strncmp(n, "google.protobuf.", 16) != 0) {
        return WKT_NONE;
    }
    n += 16;
    static const char *const wrappers[] = {"DoubleValue", "FloatValue",
        "Int64Value", "UInt64Value", "Int32Value", "UInt32Value",
        "BoolValue", "StringValue", "BytesValue"};
    for (size_t i = 0; i < MICRO_ARRAY_LEN(wrappers); i++) {
        if (strcmp(n, wrappers[i]) == 0) {
            return WKT_WRAPPER;
        }
    }
    if (strcmp(n, "Timestamp") == 0) {
        return WKT_TIMESTAMP;
    }
    if (strcmp(n, "Duration") == 0) {
        return WKT_DURATION;
    }
    if (strcmp(n, "Struct") == 0) {
        return WKT_STRUCT;
    }
    if (strcmp(n, "Value") == 0) {
        return WKT_VALUE;
    }
    if (strcmp(n, "ListValue") == 0) {
        return WKT_LIST;
    }
    if (strcmp(n, "FieldMask") == 0) {
        return WKT_FIELDMASK;
    }
    return WKT_NONE;
}

/* lowerCamelCase of a proto name, as protoc computes json_name. */
static void
camel(const char *name, char *out, size_t cap)
{
    size_t n = 0;
    bool up = false;
    for (const char *p = name; *p != '\0' && n + 1 < cap; p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        out[n++] = up && *p >= 'a' && *p <= 'z' ? (char) (*p - 32) : *p;
        up = false;
    }
    out[n] = '\0';
}

static size_t
elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return 4;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    return 0;
}

/* ================================================================== */
/* Encoding.                                                            */

typedef struct enc {
    micro_buf *out;
    unsigned flags;
    int rc;
} enc;

static void
put(enc *e, const void *p, size_t n)
{
    micro_buf *b = e->out;
    if (e->rc == 0 && b->cap - b->len >= n && n > 0) {
        memcpy(b->data + b->len, p, n); /* the usual case: room left */
        b->len += n;
    } else if (e->rc == 0) {
        e->rc = micro_buf_append(b, p, n);
    }
}

static void
puts_(enc *e, const char *s)
{
    put(e, s, strlen(s));
}

static void
putc_(enc *e, char c)
{
    put(e, &c, 1);
}

/* Go encoding/json's string escaping with HTML escaping on (json.Encoder's
 * default): <, > and & become \u003c..., U+2028/9 are escaped, and invalid
 * UTF-8 becomes U+FFFD. */
static void
put_json_string(enc *e, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *) s;
    putc_(e, '"');
    size_t start = 0;
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\' && c != '<' &&
            c != '>' && c != '&') {
            i++;
            continue;
        }
        if (c < 0x80) {
            put(e, p + start, i - start);
            char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
            size_t k = 2;
            switch (c) {
            case '"':
            case '\\':
                esc[1] = (char) c;
                break;
            case '\n':
                esc[1] = 'n';
                break;
            case '\r':
                esc[1] = 'r';
                break;
            case '\t':
                esc[1] = 't';
                break;
            case '\b':
                esc[1] = 'b';
                break;
            case '\f':
                esc[1] = 'f';
                break;
            default:
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                k = 6;
            }
            put(e, esc, k);
            i++;
            start = i;
            continue;
        }
        /* Multi-byte: validate; pass through, or replace. */
        size_t k = (c & 0xe0) == 0xc0 ? 2
            : (c & 0xf0) == 0xe0        ? 3
            : (c & 0xf8) == 0xf0        ? 4
                                        : 0;
        bool ok = k != 0 && i + k <= n;
        uint32_t cp = k == 2 ? (c & 0x1fu) : k == 3 ? (c & 0x0fu) : (c & 7u);
        for (size_t j = 1; ok && j < k; j++) {
            ok = (p[i + j] & 0xc0) == 0x80;
            cp = (cp << 6) | (p[i + j] & 0x3fu);
        }
        if (ok) {
            ok = !((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) ||
                (k == 4 && cp < 0x10000) || cp > 0x10ffff ||
                (cp >= 0xd800 && cp <= 0xdfff));
        }
        if (!ok) {
            put(e, p + start, i - start);
            puts_(e, "\\ufffd");
            i++;
            start = i;
            continue;
        }
        if (cp == 0x2028 || cp == 0x2029) {
            put(e, p + start, i - start);
            puts_(e, cp == 0x2028 ? "\\u2028" : "\\u2029");
            i += k;
            start = i;
            continue;
        }
        i += k;
    }
    put(e, p + start, n - start);
    putc_(e, '"');
}

/* Go's strconv.AppendFloat(v, 'f' or 'e', -1, bits) as encoding/json
 * uses it: the shortest digits that read back to the same value. */
static void
put_float(enc *e, double v, int bits)
{
    if (isnan(v)) {
        puts_(e, "\"NaN\"");
        return;
    }
    if (isinf(v)) {
        puts_(e, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    if (v == 0) {
        puts_(e, signbit(v) ? "-0" : "0");
        return;
    }
    /* Whether p significant digits read back is monotonic in p, so a
     * binary search finds the shortest in about four tries. */
    char sci[40];
    int lo = 1;
    int hi = bits == 32 ? 9 : 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(sci, sizeof(sci), "%.*e", mid - 1, v);
        bool same = bits == 32 ? strtof(sci, NULL) == (float) v
                               : strtod(sci, NULL) == v;
        if (same) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    snprintf(sci, sizeof(sci), "%.*e", lo - 1, v);
    /* sci = [-]d[.ddd]e[+-]XX: split into digits and exponent. */
    const char *s = sci;
    bool neg = *s == '-';
    if (neg) {
        s++;
    }
    char digits[24];
    size_t nd = 0;
    for (; *s != 'e'; s++) {
        if (*s != '.') {
            digits[nd++] = *s;
        }
    }
    int exp10 = (int) strtol(s + 1, NULL, 10);
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    double a = fabs(v);
    bool use_e = bits == 32 ? ((float) a < 1e-6f || (float) a >= 1e21f)
                            : (a < 1e-6 || a >= 1e21);
    char out[64];
    size_t n = 0;
    if (neg) {
        out[n++] = '-';
    }
    if (use_e) {
        out[n++] = digits[0];
        if (nd > 1) {
            out[n++] = '.';
            memcpy(out + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        /* Go writes e+21, e-07; encoding/json trims the latter to e-7. */
        n += (size_t) snprintf(out + n, sizeof(out) - n, "e%c%0*d",
            exp10 < 0 ? '-' : '+', exp10 < 0 && exp10 > -10 ? 1 : 2,
            abs(exp10));
    } else if (exp10 < 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int z = -1; z > exp10; z--) {
            out[n++] = '0';
        }
        memcpy(out + n, digits, nd);
        n += nd;
    } else {
        for (int i = 0; i <= exp10 || (size_t) i < nd; i++) {
            if (i == exp10 + 1) {
                out[n++] = '.';
            }
            out[n++] = (size_t) i < nd ? digits[i] : '0';
        }
    }
    put(e, out, n);
}

static void
put_base64(enc *e, const uint8_t *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    putc_(e, '"');
    char q[4];
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t) p[i] << 16) | ((uint32_t) p[i + 1] << 8) |
            p[i + 2];
        q[0] = tab[v >> 18];
        q[1] = tab[(v >> 12) & 63];
        q[2] = tab[(v >> 6) & 63];
        q[3] = tab[v & 63];
        put(e, q, 4);
    }
    if (i < n) {
        uint32_t v = (uint32_t) p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t) p[i + 1] << 8;
        }
        q[0] = tab[v >> 18];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        q[3] = '=';
        put(e, q, 4);
    }
    putc_(e, '"');
}

static void enc_message(enc *e, const ProtobufCMessage *m, int depth);

/* One value of type f->type stored at p. */
static void
enc_value(enc *e, const ProtobufCFieldDescriptor *f, const void *p,
    int depth)
{
    char tmp[32];
    bool q64 = (e->flags & MICRO_PBJSON_PROTOJSON) != 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(tmp, sizeof(tmp), "%d", (int) *(const int32_t *) p);
        puts_(e, tmp);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(tmp, sizeof(tmp), "%u", (unsigned) *(const uint32_t *) p);
        puts_(e, tmp);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(tmp, sizeof(tmp), q64 ? "\"%lld\"" : "%lld",
            (long long) *(const int64_t *) p);
        puts_(e, tmp);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(tmp, sizeof(tmp), q64 ? "\"%llu\"" : "%llu",
            (unsigned long long) *(const uint64_t *) p);
        puts_(e, tmp);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        put_float(e, *(const float *) p, 32);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        put_float(e, *(const double *) p, 64);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        puts_(e, *(const protobuf_c_boolean *) p ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *) p;
        const ProtobufCEnumValue *ev = q64 && f->descriptor != NULL
            ? protobuf_c_enum_descriptor_get_value(f->descriptor, v)
            : NULL;
        if (ev != NULL) {
            put_json_string(e, ev->name, strlen(ev->name));
        } else {
            snprintf(tmp, sizeof(tmp), "%d", v);
            puts_(e, tmp);
        }
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *) p;
        put_json_string(e, s ? s : "", s ? strlen(s) : 0);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        put_base64(e, b->data, b->len);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *) p;
        if (sub == NULL) {
            puts_(e, "null");
        } else {
            enc_message(e, sub, depth + 1);
        }
        break;
    }
    }
}

/* The string form of a map key (Go sorts map keys by it). */
static void
key_text(const ProtobufCFieldDescriptor *kf, const ProtobufCMessage *entry,
    char *buf, size_t cap, const char **out)
{
    const void *p = (const char *) entry + kf->offset;
    switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *) p;
        *out = s ? s : "";
        return;
    }
    case PROTOBUF_C_TYPE_BOOL:
        *out = *(const protobuf_c_boolean *) p ? "true" : "false";
        return;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, cap, "%lld", (long long) *(const int64_t *) p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, cap, "%llu", (unsigned long long) *(const uint64_t *) p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(buf, cap, "%u", (unsigned) *(const uint32_t *) p);
        break;
    default:
        snprintf(buf, cap, "%d", (int) *(const int32_t *) p);
        break;
    }
    *out = buf;
}

typedef struct map_item {
    const char *key;
    size_t index;
    char buf[24];
} map_item;

static const char *
item_key(const map_item *it)
{
    return it->key != NULL ? it->key : it->buf;
}

static int
map_item_cmp(const void *a, const void *b)
{
    const map_item *x = a;
    const map_item *y = b;
    int c = strcmp(item_key(x), item_key(y));
    if (c != 0) {
        return c;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

static void
enc_map(enc *e, const ProtobufCFieldDescriptor *f, size_t n,
    ProtobufCMessage *const *entries, int depth)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0];
    const ProtobufCFieldDescriptor *vf = &ed->fields[1];
    map_item *items = micro__calloc(n, sizeof(*items));
    if (items == NULL) {
        e->rc = e->rc ? e->rc : MICRO_ENOMEM;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (entries[i] == NULL) {
            continue;
        }
        items[k].index = i;
        key_text(kf, entries[i], items[k].buf, sizeof(items[k].buf),
            &items[k].key);
        if (items[k].key == items[k].buf) {
            /* qsort moves the items: NULL means "in buf" (item_key). */
            items[k].key = NULL;
        }
        k++;
    }
    qsort(items, k, sizeof(*items), map_item_cmp);
    putc_(e, '{');
    bool first = true;
    for (size_t i = 0; i < k; i++) {
        /* Repeated keys on the wire: the last one wins, as in Go. */
        const char *key = item_key(&items[i]);
        if (i + 1 < k && strcmp(key, item_key(&items[i + 1])) == 0) {
            continue;
        }
        if (!first) {
            putc_(e, ',');
        }
        first = false;
        put_json_string(e, key, strlen(key));
        putc_(e, ':');
        const ProtobufCMessage *entry = entries[items[i].index];
        enc_value(e, vf, (const char *) entry + vf->offset, depth);
    }
    putc_(e, '}');
    micro__free(items);
}

static bool
scalar_is_zero(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return *(const uint32_t *) p == 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *) p == 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *) p == 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *) p == 0;
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *) p;
    case PROTOBUF_C_TYPE_ENUM:
        return *(const int *) p == 0;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *) p;
        return s == NULL || s[0] == '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *) p)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *) p == NULL;
    }
    return true;
}

/* Whether field f of m is written. */
static bool
field_present(enc *e, const ProtobufCMessage *m,
    const ProtobufCFieldDescriptor *f)
{
    const void *p = (const char *) m + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        return CMEMBER(uint32_t, m, f->quantifier_offset) == f->id;
    }
    switch (f->label) {
    case PROTOBUF_C_LABEL_REPEATED:
        return CMEMBER(size_t, m, f->quantifier_offset) > 0 ||
            (e->flags & MICRO_PBJSON_EMIT_DEFAULTS) != 0;
    case PROTOBUF_C_LABEL_REQUIRED:
        return true;
    case PROTOBUF_C_LABEL_OPTIONAL:
        /* proto2: present as protobuf-c would pack it (Go: non-nil). */
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = *(char *const *) p;
            return s != NULL && s != (const char *) f->default_value;
        }
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            return *(ProtobufCMessage *const *) p != NULL;
        }
        return CMEMBER(protobuf_c_boolean, m, f->quantifier_offset) != 0;
    case PROTOBUF_C_LABEL_NONE:
    default:
        return (e->flags & MICRO_PBJSON_EMIT_DEFAULTS) != 0 ||
            !scalar_is_zero(f, p);
    }
}

static void
put_key(enc *e, const char *name)
{
    if (e->flags & MICRO_PBJSON_PROTOJSON) {
        char c[128];
        camel(name, c, sizeof(c));
        put_json_string(e, c, strlen(c));
    } else {
        put_json_string(e, name, strlen(name));
    }
    putc_(e, ':');
}

static void
enc_fields(enc *e, const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    putc_(e, '{');
    bool first = true;
    for (unsigned i = 0; i < d->n_fields && e->rc == 0; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!field_present(e, m, f)) {
            continue;
        }
        if (!first) {
            putc_(e, ',');
        }
        first = false;
        put_key(e, f->name);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = CMEMBER(size_t, m, f->quantifier_offset);
            const char *arr = CMEMBER(const char *, m, f->offset);
            if (micro__pb_is_map(f)) {
                enc_map(e, f, n, (ProtobufCMessage *const *) arr, depth);
                continue;
            }
            size_t sz = elem_size(f->type);
            putc_(e, '[');
            for (size_t j = 0; j < n; j++) {
                if (j > 0) {
                    putc_(e, ',');
                }
                enc_value(e, f, arr + j * sz, depth);
            }
            putc_(e, ']');
        } else {
            enc_value(e, f, (const char *) m + f->offset, depth);
        }
    }
    putc_(e, '}');
}

static const ProtobufCFieldDescriptor *
field_by_id(const ProtobufCMessageDescriptor *d, unsigned id)
{
    return protobuf_c_message_descriptor_get_field(d, id);
}

/* Days since 1970-01-01 -> civil date (Howard Hinnant's algorithm). */
static void
civil_from_days(int64_t z, int64_t *y, unsigned *mo, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned) (z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t) yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *mo = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*mo <= 2);
}

static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned) (y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t) doe - 719468;
}

/* 9 fraction digits trimmed to 0, 3, 6 or 9, as jsonpb writes them. */
static size_t
put_frac(char *out, int32_t nanos)
{
    if (nanos == 0) {
        return 0;
    }
    char f[16];
    snprintf(f, sizeof(f), ".%09d", (int) nanos);
    size_t n = 10;
    while (n > 4 && memcmp(f + n - 3, "000", 3) == 0) {
        n -= 3;
    }
    memcpy(out, f, n);
    return n;
}

#define TS_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define TS_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */
#define DUR_MAX 315576000000LL

static void
enc_wkt(enc *e, wkt w, const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (w == WKT_TIMESTAMP || w == WKT_DURATION) {
        const ProtobufCFieldDescriptor *fs = field_by_id(d, 1);
        const ProtobufCFieldDescriptor *fn = field_by_id(d, 2);
        int64_t s = fs ? CMEMBER(int64_t, m, fs->offset) : 0;
        int32_t ns = fn ? CMEMBER(int32_t, m, fn->offset) : 0;
        char out[64];
        size_t n = 0;
        if (w == WKT_TIMESTAMP) {
            if (s < TS_MIN || s > TS_MAX || ns < 0 || ns > 999999999) {
                e->rc = e->rc ? e->rc : MICRO_ECODEC;
                return;
            }
            int64_t days = s >= 0 ? s / 86400 : -((-s + 86399) / 86400);
            int64_t sod = s - days * 86400;
            int64_t y = 0;
            unsigned mo = 0;
            unsigned dd = 0;
            civil_from_days(days, &y, &mo, &dd);
            n = (size_t) snprintf(out, sizeof(out),
                "\"%04lld-%02u-%02uT%02d:%02d:%02d", (long long) y, mo, dd,
                (int) (sod / 3600), (int) (sod / 60 % 60), (int) (sod % 60));
            n += put_frac(out + n, ns);
            memcpy(out + n, "Z\"", 2);
            n += 2;
        } else {
            if (s < -DUR_MAX || s > DUR_MAX || ns < -999999999 ||
                ns > 999999999 || (s > 0 && ns < 0) || (s < 0 && ns > 0)) {
                e->rc = e->rc ? e->rc : MICRO_ECODEC;
                return;
            }
            bool neg = s < 0 || ns < 0;
            n = (size_t) snprintf(out, sizeof(out), "\"%s%lld",
                neg ? "-" : "", (long long) (s < 0 ? -s : s));
            n += put_frac(out + n, ns < 0 ? -ns : ns);
            memcpy(out + n, "s\"", 2);
            n += 2;
        }
        put(e, out, n);
        return;
    }
    if (w == WKT_WRAPPER) {
        const ProtobufCFieldDescriptor *f = field_by_id(d, 1);
        if (f != NULL) {
            enc_value(e, f, (const char *) m + f->offset, depth);
        }
        return;
    }
    if (w == WKT_FIELDMASK && !(e->flags & MICRO_PBJSON_PROTOJSON)) {
        /* Go Micro v4's jsonpb reads a FieldMask only as a plain message
         * ({"paths":[...]}), not as protojson's "a,b" string. */
        enc_fields(e, m, depth);
        return;
    }
    if (w == WKT_FIELDMASK) {
        const ProtobufCFieldDescriptor *f = field_by_id(d, 1);
        size_t n = f ? CMEMBER(size_t, m, f->quantifier_offset) : 0;
        char *const *paths = f ? CMEMBER(char **, m, f->offset) : NULL;
        micro_buf joined = {0};
        int rc = 0;
        for (size_t i = 0; i < n && rc == 0; i++) {
            char c[256];
            camel(paths[i] ? paths[i] : "", c, sizeof(c));
            if (i > 0) {
                rc = micro_buf_append(&joined, ",", 1);
            }
            if (rc == 0) {
                rc = micro_buf_append_str(&joined, c);
            }
        }
        if (rc != 0) {
            e->rc = e->rc ? e->rc : rc;
        }
        put_json_string(e, (const char *) joined.data, joined.len);
        micro_buf_clear(&joined);
        return;
    }
    if (w == WKT_STRUCT) {
        const ProtobufCFieldDescriptor *f = field_by_id(d, 1);
        if (f == NULL || !micro__pb_is_map(f)) {
            enc_fields(e, m, depth);
            return;
        }
        enc_map(e, f, CMEMBER(size_t, m, f->quantifier_offset),
            CMEMBER(ProtobufCMessage *const *, m, f->offset), depth);
        return;
    }
    if (w == WKT_LIST) {
        const ProtobufCFieldDescriptor *f = field_by_id(d, 1);
        size_t n = f ? CMEMBER(size_t, m, f->quantifier_offset) : 0;
        ProtobufCMessage *const *v =
            f ? CMEMBER(ProtobufCMessage *const *, m, f->offset) : NULL;
        putc_(e, '[');
        for (size_t i = 0; i < n; i++) {
            if (i > 0) {
                putc_(e, ',');
            }
            if (v[i] == NULL) {
                puts_(e, "null");
            } else {
                enc_message(e, v[i], depth + 1);
            }
        }
        putc_(e, ']');
        return;
    }
    /* WKT_VALUE: the member of its oneof "kind" that is set. */
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            CMEMBER(uint32_t, m, f->quantifier_offset) == f->id) {
            if (f->id == 1) {
                puts_(e, "null");
            } else {
                enc_value(e, f, (const char *) m + f->offset, depth);
            }
            return;
        }
    }
    puts_(e, "null");
}

static void
enc_message(enc *e, const ProtobufCMessage *m, int depth)
{
    if (e->rc != 0) {
        return;
    }
    if (depth > MICRO_PROTO_MAX_DEPTH) {
        e->rc = MICRO_ECODEC;
        return;
    }
    wkt w = wkt_of(m->descriptor);
    if (w != WKT_NONE) {
        enc_wkt(e, w, m, depth);
    } else {
        enc_fields(e, m, depth);
    }
}

int
micro_pbjson_encode(
    const struct ProtobufCMessage *m, unsigned flags, micro_buf *out)
{
    if (m == NULL || out == NULL || m->descriptor == NULL ||
        m->descriptor->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
        return MICRO_EINVAL;
    }
    size_t mark = out->len;
    enc e = {out, flags, 0};
    enc_message(&e, m, 1);
    if (e.rc != 0) {
        out->len = mark;
    }
    return e.rc;
}

/* ================================================================== */
/* Decoding.                                                            */

typedef struct dec {
    const char *p;
    const char *end;
    const char *start;
    unsigned flags;
    char *err;
    size_t cap;
    bool failed;
} dec;

static int
fail(dec *d, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int
fail(dec *d, const char *fmt, ...)
{
    if (!d->failed && d->err != NULL && d->cap > 0) {
        char msg[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        micro__pb_err(d->err, d->cap, "offset %zu: %s",
            (size_t) (d->p - d->start), msg);
    }
    d->failed = true;
    return MICRO_ECODEC;
}

static void
ws(dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\t' ||
                                *d->p == '\n' || *d->p == '\r')) {
        d->p++;
    }
}

static char
peek(dec *d)
{
    ws(d);
    return d->p < d->end ? *d->p : '\0';
}

static bool
eat(dec *d, char c)
{
    if (peek(d) == c) {
        d->p++;
        return true;
    }
    return false;
}

static bool
literal(dec *d, const char *lit)
{
    size_t n = strlen(lit);
    ws(d);
    if ((size_t) (d->end - d->p) >= n && memcmp(d->p, lit, n) == 0) {
        d->p += n;
        return true;
    }
    return false;
}

static int
hex4(const char *p, uint32_t *v)
{
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        int d = micro__hexval((unsigned char) p[i]);
        if (d < 0) {
            return -1;
        }
        r = (r << 4) | (uint32_t) d;
    }
    *v = r;
    return 0;
}

static int
put_utf8(micro_buf *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t) cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t) (0xc0 | (cp >> 6));
        u[1] = (uint8_t) (0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t) (0xe0 | (cp >> 12));
        u[1] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f));
        u[2] = (uint8_t) (0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (uint8_t) (0xf0 | (cp >> 18));
        u[1] = (uint8_t) (0x80 | ((cp >> 12) & 0x3f));
        u[2] = (uint8_t) (0x80 | ((cp >> 6) & 0x3f));
        u[3] = (uint8_t) (0x80 | (cp & 0x3f));
        n = 4;
    }
    return micro_buf_append(b, u, n);
}

/* A JSON string into b (NUL-terminated, not counted in b->len). Invalid
 * UTF-8 and lone surrogates become U+FFFD, as in Go. */
static int
read_string(dec *d, micro_buf *b)
{
    if (peek(d) != '"') {
        return fail(d, "expected a string");
    }
    d->p++;
    b->len = 0;
    int rc = 0;
    while (rc == 0) {
        if (d->p >= d->end) {
            return fail(d, "unterminated string");
        }
        uint8_t c = (uint8_t) *d->p;
        if (c == '"') {
            d->p++;
            break;
        }
        if (c < 0x20) {
            return fail(d, "control character in string");
        }
        if (c == '\\') {
            if (d->end - d->p < 2) {
                return fail(d, "unterminated escape");
            }
            char x = d->p[1];
            d->p += 2;
            char out = 0;
            switch (x) {
            case '"':
            case '\\':
            case '/':
                out = x;
                break;
            case 'b':
                out = '\b';
                break;
            case 'f':
                out = '\f';
                break;
            case 'n':
                out = '\n';
                break;
            case 'r':
                out = '\r';
                break;
            case 't':
                out = '\t';
                break;
            case 'u': {
                uint32_t cp = 0;
                if (d->end - d->p < 4 || hex4(d->p, &cp) != 0) {
                    return fail(d, "bad \\u escape");
                }
                d->p += 4;
                if (cp >= 0xd800 && cp < 0xdc00) {
                    uint32_t lo = 0;
                    if (d->end - d->p >= 6 && d->p[0] == '\\' &&
                        d->p[1] == 'u' && hex4(d->p + 2, &lo) == 0 &&
                        lo >= 0xdc00 && lo < 0xe000) {
                        d->p += 6;
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    } else {
                        cp = 0xfffd;
                    }
                } else if (cp >= 0xdc00 && cp < 0xe000) {
                    cp = 0xfffd;
                }
                rc = put_utf8(b, cp);
                continue;
            }
            default:
                return fail(d, "bad escape \\%c", x);
            }
            rc = micro_buf_append(b, &out, 1);
            continue;
        }
        if (c < 0x80) {
            /* A run of plain ASCII in one append. */
            const char *run = d->p;
            while (d->p < d->end && (uint8_t) *d->p >= 0x20 &&
                (uint8_t) *d->p < 0x80 && *d->p != '"' && *d->p != '\\') {
                d->p++;
            }
            rc = micro_buf_append(b, run, (size_t) (d->p - run));
            continue;
        }
        size_t k = (c & 0xe0) == 0xc0 ? 2
            : (c & 0xf0) == 0xe0        ? 3
            : (c & 0xf8) == 0xf0        ? 4
                                        : 0;
        const uint8_t *s = (const uint8_t *) d->p;
        bool ok = k != 0 && (size_t) (d->end - d->p) >= k;
        uint32_t cp = k == 2 ? (c & 0x1fu) : k == 3 ? (c & 0x0fu) : (c & 7u);
        for (size_t j = 1; ok && j < k; j++) {
            ok = (s[j] & 0xc0) == 0x80;
            cp = (cp << 6) | (s[j] & 0x3fu);
        }
        ok = ok && !((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) ||
                       (k == 4 && cp < 0x10000) || cp > 0x10ffff ||
                       (cp >= 0xd800 && cp <= 0xdfff));
        if (ok) {
            rc = micro_buf_append(b, s, k);
            d->p += k;
        } else {
            rc = put_utf8(b, 0xfffd);
            d->p++;
        }
    }
    if (rc == 0) {
        rc = micro_buf_reserve(b, 1);
    }
    if (rc != 0) {
        return rc;
    }
    b->data[b->len] = '\0';
    return 0;
}

/* A JSON number token: its text in [*s, *e). */
static int
read_number(dec *d, const char **s, const char **e)
{
    ws(d);
    const char *p = d->p;
    const char *q = p;
    if (q < d->end && *q == '-') {
        q++;
    }
    if (q >= d->end || *q < '0' || *q > '9') {
        return fail(d, "expected a number");
    }
    if (*q == '0') {
        q++;
    } else {
        while (q < d->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    if (q < d->end && *q == '.') {
        q++;
        if (q >= d->end || *q < '0' || *q > '9') {
            return fail(d, "bad number");
        }
        while (q < d->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    if (q < d->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < d->end && (*q == '+' || *q == '-')) {
            q++;
        }
        if (q >= d->end || *q < '0' || *q > '9') {
            return fail(d, "bad number");
        }
        while (q < d->end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    *s = p;
    *e = q;
    d->p = q;
    return 0;
}

static int
skip_value(dec *d, int depth)
{
    if (depth > MICRO_PROTO_MAX_DEPTH) {
        return fail(d, "nested deeper than %d", MICRO_PROTO_MAX_DEPTH);
    }
    char c = peek(d);
    if (c == '"') {
        micro_buf b = {0};
        int rc = read_string(d, &b);
        micro_buf_clear(&b);
        return rc;
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        d->p++;
        if (eat(d, close)) {
            return 0;
        }
        for (;;) {
            if (c == '{') {
                micro_buf b = {0};
                int rc = read_string(d, &b);
                micro_buf_clear(&b);
                if (rc != 0) {
                    return rc;
                }
                if (!eat(d, ':')) {
                    return fail(d, "expected ':'");
                }
            }
            int rc = skip_value(d, depth + 1);
            if (rc != 0) {
                return rc;
            }
            if (eat(d, close)) {
                return 0;
            }
            if (!eat(d, ',')) {
                return fail(d, "expected ',' or '%c'", close);
            }
        }
    }
    if (literal(d, "true") || literal(d, "false") || literal(d, "null")) {
        return 0;
    }
    const char *s = NULL;
    const char *e = NULL;
    return read_number(d, &s, &e);
}

/* Copy a token span into a NUL-terminated scratch buffer. */
static bool
span(const char *s, const char *e, char *buf, size_t cap)
{
    size_t n = (size_t) (e - s);
    if (n + 1 > cap) {
        return false;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return true;
}

/* An integer from a number token or a string holding one. */
static int
read_int(dec *d, bool is_signed, int64_t lo, uint64_t hi, int64_t *sv,
    uint64_t *uv)
{
    char buf[64];
    if (peek(d) == '"') {
        micro_buf b = {0};
        int rc = read_string(d, &b);
        if (rc == 0 && (b.len == 0 || b.len >= sizeof(buf))) {
            rc = fail(d, "bad integer string");
        }
        if (rc == 0) {
            memcpy(buf, b.data, b.len + 1);
        }
        micro_buf_clear(&b);
        if (rc != 0) {
            return rc;
        }
    } else {
        const char *s = NULL;
        const char *e = NULL;
        int rc = read_number(d, &s, &e);
        if (rc != 0) {
            return rc;
        }
        if (!span(s, e, buf, sizeof(buf))) {
            return fail(d, "integer too long");
        }
    }
    char *end = NULL;
    errno = 0;
    if (strpbrk(buf, ".eE") != NULL) {
        /* 1.0 or 1e3: allowed when integral (protojson does). */
        double v = strtod(buf, &end);
        if (*end != '\0' || !isfinite(v)) {
            return fail(d, "not an integer: %s", buf);
        }
        /* (double) INT64_MAX and UINT64_MAX round up to 2^63 and 2^64,
         * which the casts below cannot hold: those bounds are exclusive. */
        if (is_signed ? (v < (double) lo || v > (double) (int64_t) hi ||
                            v >= 0x1p63)
                      : (v < 0 || v > (double) hi || v >= 0x1p64)) {
            return fail(d, "integer out of range: %s", buf);
        }
        /* In range, so the cast is defined; integral iff it is exact. */
        if (is_signed) {
            int64_t x = (int64_t) v;
            if ((double) x != v) {
                return fail(d, "not an integer: %s", buf);
            }
            *sv = x;
        } else {
            uint64_t x = (uint64_t) v;
            if ((double) x != v) {
                return fail(d, "not an integer: %s", buf);
            }
            *uv = x;
        }
        return 0;
    }
    if (is_signed) {
        long long v = strtoll(buf, &end, 10);
        if (end == buf || *end != '\0' || errno != 0 || v < lo ||
            v > (int64_t) hi) {
            return fail(d, "integer out of range or malformed: %s", buf);
        }
        *sv = v;
    } else {
        if (buf[0] == '-') {
            return fail(d, "negative value for an unsigned field: %s", buf);
        }
        unsigned long long v = strtoull(buf, &end, 10);
        if (end == buf || *end != '\0' || errno != 0 || v > hi) {
            return fail(d, "integer out of range or malformed: %s", buf);
        }
        *uv = v;
    }
    return 0;
}

static int
read_double(dec *d, bool is_float, double *out)
{
    char buf[64];
    if (peek(d) == '"') {
        micro_buf b = {0};
        int rc = read_string(d, &b);
        if (rc == 0) {
            const char *s = (const char *) b.data;
            if (strcmp(s, "NaN") == 0) {
                *out = NAN;
            } else if (strcmp(s, "Infinity") == 0) {
                *out = INFINITY;
            } else if (strcmp(s, "-Infinity") == 0) {
                *out = -INFINITY;
            } else if (b.len == 0 || b.len >= sizeof(buf)) {
                rc = fail(d, "bad number string");
            } else {
                char *end = NULL;
                *out = strtod(s, &end);
                if (*end != '\0' || isspace((unsigned char) s[0])) {
                    rc = fail(d, "bad number string: %s", s);
                }
            }
        }
        micro_buf_clear(&b);
        if (rc != 0 || !isfinite(*out)) {
            return rc;
        }
    } else {
        const char *s = NULL;
        const char *e = NULL;
        int rc = read_number(d, &s, &e);
        if (rc != 0) {
            return rc;
        }
        if (!span(s, e, buf, sizeof(buf))) {
            return fail(d, "number too long");
        }
        *out = strtod(buf, NULL);
    }
    if (!isfinite(*out)) {
        return fail(d, "number out of range");
    }
    if (is_float && (*out > FLT_MAX || *out < -FLT_MAX)) {
        return fail(d, "number out of float range");
    }
    return 0;
}

/* Either alphabet: standard or URL-safe. */
static int
b64val(char c)
{
    if (c == '-') {
        return 62;
    }
    if (c == '_') {
        return 63;
    }
    return micro__base64_val((unsigned char) c);
}

/* Standard or URL-safe base64, padded or not, into a new allocation. */
static int
base64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen)
{
    while (n > 0 && s[n - 1] == '=') {
        n--;
    }
    if (n % 4 == 1) {
        return MICRO_ECODEC;
    }
    uint8_t *o = micro__malloc(n * 3 / 4 + 1);
    if (o == NULL) {
        return MICRO_ENOMEM;
    }
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(s[i]);
        if (v < 0) {
            micro__free(o);
            return MICRO_ECODEC;
        }
        acc = (acc << 6) | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[k++] = (uint8_t) (acc >> bits);
        }
    }
    *out = o;
    *outlen = k;
    return 0;
}

static int dec_message(
    dec *d, const ProtobufCMessageDescriptor *md, ProtobufCMessage *m,
    int depth);

/* Release whatever field f of m holds and reset it to its default, so a
 * key given twice does not leak (the last one wins). */
static void
clear_field(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    void *p = (char *) m + f->offset;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *kase = &MEMBER(uint32_t, m, f->quantifier_offset);
        if (*kase != f->id) {
            /* Another member (or none) is set: nothing of f to free. */
            if (*kase == 0) {
                memset(p, 0, elem_size(f->type));
            }
            return;
        }
        *kase = 0;
    }
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = MEMBER(size_t, m, f->quantifier_offset);
        void *arr = MEMBER(void *, m, f->offset);
        for (size_t i = 0; i < n; i++) {
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                micro__free(((char **) arr)[i]);
            } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
                micro__free(((ProtobufCBinaryData *) arr)[i].data);
            } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                micro_proto_free(((ProtobufCMessage **) arr)[i]);
            }
        }
        micro__free(arr);
        MEMBER(void *, m, f->offset) = NULL;
        MEMBER(size_t, m, f->quantifier_offset) = 0;
        return;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        /* protobuf-c points an unset string at the field's default
         * (protobuf_c_empty_string in proto3), which is never freed. */
        char *s = *(char **) p;
        const char *def = f->default_value;
        if (s != NULL && s != def && s != protobuf_c_empty_string) {
            micro__free(s);
        }
        *(char **) p = (char *) def;
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = p;
        const ProtobufCBinaryData *def = f->default_value;
        if (b->data != NULL && (def == NULL || b->data != def->data)) {
            micro__free(b->data);
        }
        if (def != NULL) {
            *b = *def;
        } else {
            b->data = NULL;
            b->len = 0;
        }
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        micro_proto_free(*(ProtobufCMessage **) p);
        *(ProtobufCMessage **) p = NULL;
        break;
    default:
        break;
    }
}

/* One value of f's type into p (a field slot or an array element). */
static int
dec_value(dec *d, const ProtobufCFieldDescriptor *f, void *p, int depth)
{
    int64_t sv = 0;
    uint64_t uv = 0;
    double dv = 0;
    int rc = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        rc = read_int(d, true, INT32_MIN, INT32_MAX, &sv, &uv);
        if (rc == 0) {
            *(int32_t *) p = (int32_t) sv;
        }
        return rc;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        rc = read_int(d, true, INT64_MIN, INT64_MAX, &sv, &uv);
        if (rc == 0) {
            *(int64_t *) p = sv;
        }
        return rc;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        rc = read_int(d, false, 0, UINT32_MAX, &sv, &uv);
        if (rc == 0) {
            *(uint32_t *) p = (uint32_t) uv;
        }
        return rc;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        rc = read_int(d, false, 0, UINT64_MAX, &sv, &uv);
        if (rc == 0) {
            *(uint64_t *) p = uv;
        }
        return rc;
    case PROTOBUF_C_TYPE_FLOAT:
        rc = read_double(d, true, &dv);
        if (rc == 0) {
            *(float *) p = (float) dv;
        }
        return rc;
    case PROTOBUF_C_TYPE_DOUBLE:
        rc = read_double(d, false, &dv);
        if (rc == 0) {
            *(double *) p = dv;
        }
        return rc;
    case PROTOBUF_C_TYPE_BOOL:
        if (literal(d, "true")) {
            *(protobuf_c_boolean *) p = 1;
        } else if (literal(d, "false")) {
            *(protobuf_c_boolean *) p = 0;
        } else {
            return fail(d, "%s: expected true or false", f->name);
        }
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        if (peek(d) == '"') {
            micro_buf b = {0};
            rc = read_string(d, &b);
            const ProtobufCEnumValue *ev = rc == 0 && f->descriptor
                ? protobuf_c_enum_descriptor_get_value_by_name(
                      f->descriptor, (const char *) b.data)
                : NULL;
            if (rc == 0 && ev == NULL) {
                rc = fail(d, "%s: unknown enum value \"%s\"", f->name,
                    (const char *) b.data);
            }
            if (rc == 0) {
                *(int *) p = ev->value;
            }
            micro_buf_clear(&b);
            return rc;
        }
        rc = read_int(d, true, INT32_MIN, INT32_MAX, &sv, &uv);
        if (rc == 0) {
            *(int *) p = (int) sv;
        }
        return rc;
    case PROTOBUF_C_TYPE_STRING: {
        micro_buf b = {0};
        rc = read_string(d, &b);
        if (rc == 0) {
            *(char **) p = (char *) b.data;
            if (b.data == NULL) {
                *(char **) p = micro__strdup("");
                rc = *(char **) p ? 0 : MICRO_ENOMEM;
            }
        } else {
            micro_buf_clear(&b);
        }
        return rc;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        micro_buf b = {0};
        rc = read_string(d, &b);
        ProtobufCBinaryData *bd = p;
        bd->data = NULL;
        bd->len = 0;
        if (rc == 0) {
            rc = base64_decode((const char *) b.data, b.len, &bd->data,
                &bd->len);
            if (rc == MICRO_ECODEC) {
                rc = fail(d, "%s: invalid base64", f->name);
            }
        }
        micro_buf_clear(&b);
        return rc;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *sub = micro__pb_alloc(f->descriptor);
        if (sub == NULL) {
            return MICRO_ENOMEM;
        }
        rc = dec_message(d, f->descriptor, sub, depth + 1);
        if (rc != 0) {
            micro_proto_free(sub);
            return rc;
        }
        *(ProtobufCMessage **) p = sub;
        return 0;
    }
    }
    return fail(d, "unsupported field type");
}

/* Append one element slot to the repeated field f of m; *slot points at
 * the zeroed new element. */
static int
grow(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, void **slot)
{
    size_t n = MEMBER(size_t, m, f->quantifier_offset);
    size_t sz = elem_size(f->type);
    /* The capacity is implicit: 4, then doubling, so the array is full
     * exactly when n is 0 or a power of two of at least 4. */
    char *arr = MEMBER(char *, m, f->offset);
    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        size_t cap = n == 0 ? 4 : n * 2;
        if (cap > SIZE_MAX / sz) {
            return MICRO_ENOMEM;
        }
        char *na = micro__realloc(arr, cap * sz);
        if (na == NULL) {
            return MICRO_ENOMEM;
        }
        arr = na;
        MEMBER(char *, m, f->offset) = arr;
    }
    memset(arr + n * sz, 0, sz);
    *slot = arr + n * sz;
    return 0;
}

static int
dec_map(dec *d, const ProtobufCFieldDescriptor *f, ProtobufCMessage *m,
    int depth)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0];
    const ProtobufCFieldDescriptor *vf = &ed->fields[1];
    if (!eat(d, '{')) {
        return fail(d, "%s: expected an object for a map", f->name);
    }
    if (eat(d, '}')) {
        return 0;
    }
    for (;;) {
        micro_buf key = {0};
        int rc = read_string(d, &key);
        if (rc == 0 && !eat(d, ':')) {
            rc = fail(d, "expected ':'");
        }
        ProtobufCMessage *entry = NULL;
        if (rc == 0) {
            entry = micro__pb_alloc(ed);
            rc = entry ? 0 : MICRO_ENOMEM;
        }
        if (rc == 0) {
            /* The key is JSON text inside the string: parse it as such. */
            void *kp = (char *) entry + kf->offset;
            if (kf->type == PROTOBUF_C_TYPE_STRING) {
                *(char **) kp = (char *) key.data;
                if (key.data == NULL) {
                    *(char **) kp = micro__strdup("");
                }
                key.data = NULL;
                key.cap = key.len = 0;
                rc = *(char **) kp ? 0 : MICRO_ENOMEM;
            } else if (kf->type == PROTOBUF_C_TYPE_BOOL) {
                const char *k = key.data ? (const char *) key.data : "";
                if (strcmp(k, "true") == 0 || strcmp(k, "false") == 0) {
                    *(protobuf_c_boolean *) kp = k[0] == 't';
                } else {
                    rc = fail(d, "%s: bad bool map key", f->name);
                }
            } else {
                dec kd = *d;
                const char *k = key.data ? (const char *) key.data : "";
                kd.p = k;
                kd.end = k + key.len;
                kd.start = k;
                rc = dec_value(&kd, kf, kp, depth);
                if (rc == 0 && kd.p != kd.end) {
                    rc = MICRO_ECODEC;
                }
                if (rc != 0) {
                    rc = fail(d, "%s: bad map key \"%s\"", f->name, k);
                }
            }
        }
        micro_buf_clear(&key);
        if (rc == 0) {
            if (peek(d) == 'n' && literal(d, "null")) {
                /* null value: the default (Go's jsonpb does the same). */
            } else {
                rc = dec_value(d, vf, (char *) entry + vf->offset, depth);
            }
        }
        void *slot = NULL;
        if (rc == 0) {
            rc = grow(m, f, &slot);
        }
        if (rc != 0) {
            micro_proto_free(entry);
            return rc;
        }
        *(ProtobufCMessage **) slot = entry;
        MEMBER(size_t, m, f->quantifier_offset)++;
        if (eat(d, '}')) {
            return 0;
        }
        if (!eat(d, ',')) {
            return fail(d, "expected ',' or '}'");
        }
    }
}

static int
dec_repeated(dec *d, const ProtobufCFieldDescriptor *f, ProtobufCMessage *m,
    int depth)
{
    if (!eat(d, '[')) {
        return fail(d, "%s: expected an array", f->name);
    }
    if (eat(d, ']')) {
        return 0;
    }
    for (;;) {
        void *slot = NULL;
        int rc = grow(m, f, &slot);
        if (rc == 0) {
            rc = dec_value(d, f, slot, depth);
        }
        if (rc != 0) {
            return rc;
        }
        MEMBER(size_t, m, f->quantifier_offset)++;
        if (eat(d, ']')) {
            return 0;
        }
        if (!eat(d, ',')) {
            return fail(d, "expected ',' or ']'");
        }
    }
}

/* Set the singular field f of m from the next JSON value. */
static int
dec_field(dec *d, const ProtobufCFieldDescriptor *f, ProtobufCMessage *m,
    int depth)
{
    clear_field(m, f);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (literal(d, "null")) {
            return 0;
        }
        return micro__pb_is_map(f) ? dec_map(d, f, m, depth)
                                   : dec_repeated(d, f, m, depth);
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t kase = MEMBER(uint32_t, m, f->quantifier_offset);
        if (kase != 0 && kase != f->id) {
            return fail(d, "%s: another member of its oneof is set",
                f->name);
        }
    }
    bool is_value = f->type == PROTOBUF_C_TYPE_MESSAGE &&
        wkt_of(f->descriptor) == WKT_VALUE;
    if (!is_value && peek(d) == 'n' && literal(d, "null")) {
        return 0; /* null: the default */
    }
    void *p = (char *) m + f->offset;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        *(char **) p = NULL;
    }
    int rc = dec_value(d, f, p, depth);
    if (rc != 0) {
        if (f->type == PROTOBUF_C_TYPE_STRING && *(char **) p == NULL) {
            *(char **) p = (char *) f->default_value;
        }
        return rc;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        MEMBER(uint32_t, m, f->quantifier_offset) = f->id;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
        f->type != PROTOBUF_C_TYPE_STRING &&
        f->type != PROTOBUF_C_TYPE_MESSAGE) {
        MEMBER(protobuf_c_boolean, m, f->quantifier_offset) = 1;
    }
    return 0;
}

static bool
name_eq(const char *a, size_t an, const char *b, bool fold)
{
    return strlen(b) == an &&
        (fold ? strncasecmp(a, b, an) == 0 : memcmp(a, b, an) == 0);
}

/* The field a JSON key names: the proto name or the lowerCamelCase JSON
 * name; with fold, ignoring case (encoding/json matches that way, and a
 * Go struct's field name "UserId" is lowerCamel "userId" up to case). */
static const ProtobufCFieldDescriptor *
find_field(const ProtobufCMessageDescriptor *md, const char *k, size_t n,
    bool fold, bool oneof_only)
{
    /* The proto name first: the common case costs no camel-casing. */
    for (unsigned i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        if ((!oneof_only || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) &&
            name_eq(k, n, f->name, fold)) {
            return f;
        }
    }
    for (unsigned i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        if (oneof_only && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) {
            continue;
        }
        char c[128];
        camel(f->name, c, sizeof(c));
        if (name_eq(k, n, c, fold)) {
            return f;
        }
    }
    return NULL;
}

/* {"Kind":{"Text":"x"}}: a Go v4 peer's encoding/json of a oneof. The
 * object after the unknown key holds only members of oneofs. */
static bool
try_oneof_wrapper(dec *d, const ProtobufCMessageDescriptor *md,
    ProtobufCMessage *m, int depth, int *rc)
{
    dec probe = *d;
    if (peek(&probe) == 'n' && literal(&probe, "null")) {
        /* {"Choice":null}: encoding/json writes an unset oneof so (there
         * is no omitempty on the interface field). */
        for (unsigned i = 0; i < md->n_fields; i++) {
            if (md->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                *d = probe;
                *rc = 0;
                return true;
            }
        }
        return false;
    }
    if (!eat(&probe, '{')) {
        return false;
    }
    micro_buf k = {0};
    bool ok = read_string(&probe, &k) == 0 &&
        find_field(md, (const char *) k.data, k.len, true, true) != NULL;
    micro_buf_clear(&k);
    if (!ok) {
        return false;
    }
    eat(d, '{');
    for (;;) {
        micro_buf key = {0};
        *rc = read_string(d, &key);
        const ProtobufCFieldDescriptor *f = *rc == 0
            ? find_field(md, (const char *) key.data, key.len, true, true)
            : NULL;
        if (*rc == 0 && f == NULL) {
            *rc = fail(d, "%s: unknown oneof member \"%s\"", md->name,
                (const char *) key.data);
        }
        micro_buf_clear(&key);
        if (*rc == 0 && !eat(d, ':')) {
            *rc = fail(d, "expected ':'");
        }
        if (*rc == 0) {
            *rc = dec_field(d, f, m, depth);
        }
        if (*rc != 0) {
            return true;
        }
        if (eat(d, '}')) {
            return true;
        }
        if (!eat(d, ',')) {
            *rc = fail(d, "expected ',' or '}'");
            return true;
        }
    }
}

static int
dec_fields(dec *d, const ProtobufCMessageDescriptor *md, ProtobufCMessage *m,
    int depth)
{
    if (!eat(d, '{')) {
        return fail(d, "%s: expected an object", md->name);
    }
    if (eat(d, '}')) {
        return 0;
    }
    for (;;) {
        micro_buf key = {0};
        int rc = read_string(d, &key);
        if (rc == 0 && !eat(d, ':')) {
            rc = fail(d, "expected ':'");
        }
        const char *k = key.data ? (const char *) key.data : "";
        const ProtobufCFieldDescriptor *f = NULL;
        if (rc == 0) {
            f = find_field(md, k, key.len, false, false);
            if (f == NULL) {
                f = find_field(md, k, key.len, true, false);
            }
        }
        if (rc == 0 && f != NULL) {
            rc = dec_field(d, f, m, depth);
        } else if (rc == 0 && !try_oneof_wrapper(d, md, m, depth, &rc)) {
            if (d->flags & MICRO_PBJSON_IGNORE_UNKNOWN) {
                rc = skip_value(d, depth);
            } else {
                rc = fail(d, "%s: unknown field \"%s\"", md->name, k);
            }
        }
        micro_buf_clear(&key);
        if (rc != 0) {
            return rc;
        }
        if (eat(d, '}')) {
            return 0;
        }
        if (!eat(d, ',')) {
            return fail(d, "expected ',' or '}'");
        }
    }
}

/* "2006-01-02T15:04:05[.frac](Z|+hh:mm|-hh:mm)" */
static int
parse_timestamp(const char *s, int64_t *sec, int32_t *nanos)
{
    int y, mo, dd, h, mi, se;
    int n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &dd, &h, &mi, &se,
            &n) != 6 ||
        n != 19 || mo < 1 || mo > 12 || dd < 1 || dd > 31 || h > 23 ||
        mi > 59 || se > 60) {
        return -1;
    }
    s += n;
    int32_t ns = 0;
    if (*s == '.') {
        s++;
        int digits = 0;
        while (*s >= '0' && *s <= '9') {
            if (digits < 9) {
                ns = ns * 10 + (*s - '0');
            }
            digits++;
            s++;
        }
        if (digits == 0 || digits > 9) {
            return -1;
        }
        for (; digits < 9; digits++) {
            ns *= 10;
        }
    }
    int64_t off = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int oh = 0;
        int om = 0;
        int k = 0;
        if (sscanf(s + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5) {
            return -1;
        }
        off = (int64_t) (oh * 3600 + om * 60) * (*s == '-' ? -1 : 1);
        s += 6;
    } else {
        return -1;
    }
    if (*s != '\0') {
        return -1;
    }
    int64_t v = days_from_civil(y, (unsigned) mo, (unsigned) dd) * 86400 +
        h * 3600 + mi * 60 + se - off;
    if (v < TS_MIN || v > TS_MAX) {
        return -1;
    }
    *sec = v;
    *nanos = ns;
    return 0;
}

/* "-1.5s" */
static int
parse_duration(const char *s, int64_t *sec, int32_t *nanos)
{
    size_t n = strlen(s);
    if (n < 2 || s[n - 1] != 's') {
        return -1;
    }
    bool neg = s[0] == '-';
    const char *p = neg ? s + 1 : s;
    int64_t whole = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9') {
        if (whole > DUR_MAX) {
            return -1;
        }
        whole = whole * 10 + (*p - '0');
        digits++;
        p++;
    }
    int32_t ns = 0;
    if (*p == '.') {
        p++;
        int fd = 0;
        while (*p >= '0' && *p <= '9') {
            if (fd < 9) {
                ns = ns * 10 + (*p - '0');
            }
            fd++;
            p++;
        }
        if (fd == 0 || fd > 9) {
            return -1;
        }
        for (; fd < 9; fd++) {
            ns *= 10;
        }
    }
    if (digits == 0 || p != s + n - 1 || whole > DUR_MAX) {
        return -1;
    }
    *sec = neg ? -whole : whole;
    *nanos = neg ? -ns : ns;
    return 0;
}

static int
set_oneof_value(dec *d, ProtobufCMessage *m, unsigned id, int depth);

static int
dec_wkt(dec *d, wkt w, const ProtobufCMessageDescriptor *md,
    ProtobufCMessage *m, int depth)
{
    char c = peek(d);
    if ((w == WKT_TIMESTAMP || w == WKT_DURATION || w == WKT_WRAPPER ||
            w == WKT_FIELDMASK) &&
        c == '{') {
        return dec_fields(d, md, m, depth); /* Go v4's struct form */
    }
    if (w == WKT_TIMESTAMP || w == WKT_DURATION || w == WKT_FIELDMASK) {
        micro_buf b = {0};
        int rc = read_string(d, &b);
        if (rc != 0) {
            micro_buf_clear(&b);
            return rc;
        }
        const char *s = b.data ? (const char *) b.data : "";
        const ProtobufCFieldDescriptor *f1 = field_by_id(md, 1);
        const ProtobufCFieldDescriptor *f2 = field_by_id(md, 2);
        if (w == WKT_FIELDMASK) {
            /* "fooBar,a.b" -> paths foo_bar, a.b */
            const char *p = s;
            while (rc == 0 && *p != '\0' && f1 != NULL) {
                size_t n = strcspn(p, ",");
                micro_buf path = {0};
                for (size_t i = 0; rc == 0 && i < n; i++) {
                    char ch = p[i];
                    if (ch >= 'A' && ch <= 'Z') {
                        rc = micro_buf_append(&path, "_", 1);
                        ch = (char) (ch + 32);
                    }
                    if (rc == 0) {
                        rc = micro_buf_append(&path, &ch, 1);
                    }
                }
                char *str = rc == 0 ? micro__strndup(
                                          path.data ? (char *) path.data : "",
                                          path.len)
                                    : NULL;
                micro_buf_clear(&path);
                void *slot = NULL;
                if (rc == 0 && str == NULL) {
                    rc = MICRO_ENOMEM;
                }
                if (rc == 0) {
                    rc = grow(m, f1, &slot);
                }
                if (rc != 0) {
                    micro__free(str);
                    break;
                }
                *(char **) slot = str;
                MEMBER(size_t, m, f1->quantifier_offset)++;
                p += n;
                if (*p == ',') {
                    p++;
                }
            }
            micro_buf_clear(&b);
            return rc;
        }
        int64_t sec = 0;
        int32_t ns = 0;
        int bad = w == WKT_TIMESTAMP ? parse_timestamp(s, &sec, &ns)
                                     : parse_duration(s, &sec, &ns);
        if (bad) {
            rc = fail(d, "%s: malformed value \"%s\"", md->name, s);
        } else {
            if (f1 != NULL) {
                MEMBER(int64_t, m, f1->offset) = sec;
            }
            if (f2 != NULL) {
                MEMBER(int32_t, m, f2->offset) = ns;
            }
        }
        micro_buf_clear(&b);
        return rc;
    }
    if (w == WKT_WRAPPER) {
        const ProtobufCFieldDescriptor *f = field_by_id(md, 1);
        if (f == NULL) {
            return fail(d, "%s: no value field", md->name);
        }
        return dec_field(d, f, m, depth);
    }
    if (w == WKT_STRUCT) {
        const ProtobufCFieldDescriptor *f = field_by_id(md, 1);
        if (f == NULL || !micro__pb_is_map(f)) {
            return dec_fields(d, md, m, depth);
        }
        return dec_map(d, f, m, depth);
    }
    if (w == WKT_LIST) {
        const ProtobufCFieldDescriptor *f = field_by_id(md, 1);
        if (f == NULL) {
            return fail(d, "%s: no values field", md->name);
        }
        return dec_repeated(d, f, m, depth);
    }
    /* WKT_VALUE: null 1, number 2, string 3, bool 4, struct 5, list 6. */
    if (c == 'n') {
        if (!literal(d, "null")) {
            return fail(d, "bad literal");
        }
        const ProtobufCFieldDescriptor *f = field_by_id(md, 1);
        if (f != NULL) {
            MEMBER(int, m, f->offset) = 0;
            MEMBER(uint32_t, m, f->quantifier_offset) = 1;
        }
        return 0;
    }
    unsigned id = c == '"'             ? 3
        : (c == 't' || c == 'f')      ? 4
        : c == '{'                    ? 5
        : c == '['                    ? 6
                                      : 2;
    return set_oneof_value(d, m, id, depth);
}

static int
set_oneof_value(dec *d, ProtobufCMessage *m, unsigned id, int depth)
{
    const ProtobufCFieldDescriptor *f = field_by_id(m->descriptor, id);
    if (f == NULL) {
        return fail(d, "%s: no field %u", m->descriptor->name, id);
    }
    return dec_field(d, f, m, depth);
}

static int
dec_message(dec *d, const ProtobufCMessageDescriptor *md, ProtobufCMessage *m,
    int depth)
{
    if (depth > MICRO_PROTO_MAX_DEPTH) {
        return fail(d, "nested deeper than %d", MICRO_PROTO_MAX_DEPTH);
    }
    wkt w = wkt_of(md);
    return w != WKT_NONE ? dec_wkt(d, w, md, m, depth)
                         : dec_fields(d, md, m, depth);
}

int
micro_pbjson_decode(const struct ProtobufCMessageDescriptor *md,
    const void *json, size_t len, unsigned flags,
    struct ProtobufCMessage **out, char *err, size_t cap)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    *out = NULL;
    if (md == NULL || md->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC ||
        (json == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    static const char empty[1] = "";
    const char *text = len > 0 ? json : empty;
    dec d = {text, text + len, text, flags, err, cap, false};
    ProtobufCMessage *m = micro__pb_alloc(md);
    if (m == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = dec_message(&d, md, m, 1);
    if (rc == 0 && peek(&d) != '\0') {
        rc = fail(&d, "trailing data after the message");
    }
    if (rc == 0 && d.p != d.end) {
        rc = fail(&d, "NUL byte in the input");
    }
    if (rc != 0) {
        micro_proto_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
