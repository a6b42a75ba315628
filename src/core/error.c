/* Return codes and Go Micro's remote error {id, code, detail, status}. */
#include "core/msg_internal.h"

#include <cjson/cJSON.h>

const char *
micro_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
#define MICRO_ERR_TEXT(name, val, text)                                        \
    case (val):                                                                \
        return (text);
        MICRO_ERRNO_MAP(MICRO_ERR_TEXT)
#undef MICRO_ERR_TEXT
    default:
        break;
    }
    /* Other system codes are -errno (4095 is the kernel's MAX_ERRNO);
     * framework codes start at -4001 and are all in the table. */
    if (rc < 0 && rc > -4001) {
#if defined(_GNU_SOURCE) && defined(__GLIBC__) &&                             \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
        /* Unlike strerror, never formats into a shared static buffer. */
        const char *s = strerrordesc_np(-rc);
#else
        const char *s = strerror(-rc);
#endif
        if (s != NULL) {
            return s;
        }
    }
    return "unknown error";
}

const char *
micro_err_name(int rc)
{
    switch (rc) {
#define MICRO_ERR_NAME(name, val, text)                                        \
    case (val):                                                                \
        return "MICRO_" #name;
        MICRO_ERRNO_MAP(MICRO_ERR_NAME)
#undef MICRO_ERR_NAME
    default:
        return "MICRO_UNKNOWN";
    }
}

/* Go's net/http StatusText, sorted by code. */
static const struct {
    int32_t code;
    const char *text;
} status_texts[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {102, "Processing"},
    {103, "Early Hints"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {207, "Multi-Status"},
    {208, "Already Reported"},
    {226, "IM Used"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {305, "Use Proxy"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {402, "Payment Required"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Request Entity Too Large"},
    {414, "Request URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Requested Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {418, "I'm a teapot"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Entity"},
    {423, "Locked"},
    {424, "Failed Dependency"},
    {425, "Too Early"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {451, "Unavailable For Legal Reasons"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {506, "Variant Also Negotiates"},
    {507, "Insufficient Storage"},
    {508, "Loop Detected"},
    {510, "Not Extended"},
    {511, "Network Authentication Required"},
};

const char *
micro_status_text(int32_t code)
{
    size_t lo = 0;
    size_t hi = MICRO_ARRAY_LEN(status_texts);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (status_texts[mid].code == code) {
            return status_texts[mid].text;
        }
        if (status_texts[mid].code < code) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return "";
}

/* Copy s, or NULL when s is NULL. *ok turns false on out-of-memory. */
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

micro_error *
micro_error_new(const char *id, int32_t code, const char *detail)
{
    micro_error *e = micro__calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    bool ok = true;
    const char *status = micro_status_text(code);
    e->id = dup_opt(id, &ok);
    e->code = code;
    e->detail = dup_opt(detail, &ok);
    e->status = dup_opt(status[0] != '\0' ? status : NULL, &ok);
    if (!ok) {
        micro_error_free(e);
        return NULL;
    }
    return e;
}

void
micro_error_free(micro_error *e)
{
    if (e == NULL) {
        return;
    }
    micro__free(e->id);
    micro__free(e->detail);
    micro__free(e->status);
    micro__free(e);
}

micro_error *
micro_error_dup(const micro_error *e)
{
    if (e == NULL) {
        return NULL;
    }
    micro_error *d = micro__calloc(1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }
    bool ok = true;
    d->id = dup_opt(e->id, &ok);
    d->code = e->code;
    d->detail = dup_opt(e->detail, &ok);
    d->status = dup_opt(e->status, &ok);
    if (!ok) {
        micro_error_free(d);
        return NULL;
    }
    return d;
}

/*
 * Length of the valid UTF-8 sequence at s[0..n), as Go's
 * utf8.DecodeRuneInString accepts it (no overlongs, no surrogates, at most
 * U+10FFFF), or 0 when the bytes there are invalid. *cp gets the rune.
 */
static size_t
utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t r;
    uint32_t min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        r = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        r = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        r = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        r = (r << 6) | (s[i] & 0x3f);
    }
    if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff)) {
        return 0;
    }
    *cp = r;
    return len;
}

int
micro__json_append_string(micro_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *) s;
    int rc = micro_buf_append(b, "\"", 1);
    size_t start = 0; /* first byte not yet copied */
    size_t i = 0;
    while (rc == 0 && i < n) {
        unsigned char c = p[i];
        char esc[8];
        size_t esc_len = 0;
        size_t adv = 1;
        if (c >= 0x80) {
            uint32_t cp = 0;
            adv = utf8_decode(p + i, n - i, &cp);
            if (adv == 0) {
                memcpy(esc, "\\ufffd", 6);
                esc_len = 6;
                adv = 1;
            } else if (cp == 0x2028 || cp == 0x2029) {
                memcpy(esc, cp == 0x2028 ? "\\u2028" : "\\u2029", 6);
                esc_len = 6;
            }
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char) c;
            esc_len = 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : (c == '\r' ? 'r' : 't');
            esc_len = 2;
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esc_len = 6;
        }
        if (esc_len > 0) {
            rc = micro_buf_append(b, s + start, i - start);
            if (rc == 0) {
                rc = micro_buf_append(b, esc, esc_len);
            }
            start = i + adv;
        }
        i += adv;
    }
    if (rc == 0) {
        rc = micro_buf_append(b, s + start, n - start);
    }
    if (rc == 0) {
        rc = micro_buf_append(b, "\"", 1);
    }
    return rc;
}

/* Append ,"name":"value" (or without the comma for the first field). */
static int
append_str_field(micro_buf *b, const char *name, const char *v)
{
    if (v == NULL || v[0] == '\0') {
        return 0;
    }
    int rc = micro_buf_append_str(b, b->len > 1 ? ",\"" : "\"");
    if (rc == 0) {
        rc = micro_buf_append_str(b, name);
    }
    if (rc == 0) {
        rc = micro_buf_append(b, "\":", 2);
    }
    if (rc == 0) {
        rc = micro__json_append_string(b, v, strlen(v));
    }
    return rc;
}

char *
micro_error_to_json(const micro_error *e)
{
    micro_buf b = {0};
    int rc = micro_buf_append(&b, "{", 1);
    if (e != NULL) {
        if (rc == 0) {
            rc = append_str_field(&b, "id", e->id);
        }
        if (rc == 0 && e->code != 0) {
            char num[24];
            int n = snprintf(num, sizeof(num), "%s\"code\":%ld",
                b.len > 1 ? "," : "", (long) e->code);
            rc = micro_buf_append(&b, num, (size_t) n);
        }
        if (rc == 0) {
            rc = append_str_field(&b, "detail", e->detail);
        }
        if (rc == 0) {
            rc = append_str_field(&b, "status", e->status);
        }
    }
    if (rc == 0) {
        rc = micro_buf_append(&b, "}", 2); /* with the NUL */
    }
    /* The header promises a string for plain free(), so the result must
     * not come from the (hookable) micro__ allocator. */
    char *out = rc == 0 ? malloc(b.len) : NULL;
    if (out != NULL) {
        memcpy(out, b.data, b.len);
    }
    micro_buf_clear(&b);
    return out;
}

/* A JSON string or null into *out: null leaves *out as it is (so does Go);
 * a string replaces it (NULL for ""). */
static bool
take_str(const cJSON *it, char **out, bool *oom)
{
    if (cJSON_IsNull(it)) {
        return true;
    }
    if (!cJSON_IsString(it) || it->valuestring == NULL) {
        return false;
    }
    micro__free(*out);
    *out = NULL;
    if (it->valuestring[0] != '\0') {
        *out = micro__strdup(it->valuestring);
        if (*out == NULL) {
            *oom = true;
        }
    }
    return true;
}

/* A JSON number or null into *code: an int32 or refused, as Go's. */
static bool
take_code(const cJSON *it, int32_t *code)
{
    if (cJSON_IsNull(it)) {
        return true;
    }
    double d = cJSON_IsNumber(it) ? it->valuedouble : 0.5;
    /* The range test first: converting a double outside int32's range
     * (1e99) is undefined behaviour. !(a && b) also refuses NaN. */
    if (!(d >= INT32_MIN && d <= INT32_MAX) || d != (double) (int32_t) d) {
        return false;
    }
    *code = (int32_t) d;
    return true;
}

/* How far encoding/json.Unmarshal into errors.Error got. */
enum { PARSED, NOT_JSON, TYPE_ERROR };

/* Fill e from text as encoding/json.Unmarshal into errors.Error would:
 * NOT_JSON when Go refuses the text before decoding anything (syntax, or
 * not an object: e stays zero); TYPE_ERROR when a member had the wrong
 * type (Go decodes the rest as best it can and reports the first). */
static int
parse_json_error(const char *text, size_t len, micro_error *e, bool *oom)
{
    const char *end = NULL;
    int prc = 0;
    cJSON *root = micro__json_parse(text, len, &end, &prc);
    if (root == NULL) {
        *oom = prc == MICRO_ENOMEM; /* not "not JSON": no fallback then */
        return NOT_JSON;
    }
    int res = PARSED;
    /* Go rejects anything but whitespace after the value. */
    for (const char *p = end; p != NULL && p < text + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
            res = NOT_JSON;
            break;
        }
    }
    if (res == PARSED && !cJSON_IsObject(root) && !cJSON_IsNull(root)) {
        res = NOT_JSON; /* Go leaves the struct zero for "null" */
    }
    /* Every member in order, names matched without case: a duplicate
     * name is decoded again, so the last one wins, as encoding/json does. */
    for (const cJSON *it = res == PARSED ? root->child : NULL;
         it != NULL && !*oom; it = it->next) {
        const char *k = it->string != NULL ? it->string : "";
        bool ok = true;
        if (strcasecmp(k, "code") == 0) {
            ok = take_code(it, &e->code);
        } else if (strcasecmp(k, "id") == 0) {
            ok = take_str(it, &e->id, oom);
        } else if (strcasecmp(k, "detail") == 0) {
            ok = take_str(it, &e->detail, oom);
        } else if (strcasecmp(k, "status") == 0) {
            ok = take_str(it, &e->status, oom);
        }
        if (!ok) {
            res = TYPE_ERROR;
        }
    }
    cJSON_Delete(root);
    return res;
}

micro_error *
micro_error_parse(const char *text, size_t len)
{
    micro_error *e = micro__calloc(1, sizeof(*e));
    if (e == NULL) {
        return NULL;
    }
    if (text == NULL) {
        len = 0;
        text = "";
    }
    /* Go Micro's errors.Parse: whatever Unmarshal fails on, the detail
     * is the whole text (other members it decoded stay). */
    bool oom = false;
    if (parse_json_error(text, len, e, &oom) != PARSED && !oom) {
        micro__free(e->detail);
        e->detail = NULL;
        if (len > 0) {
            e->detail = micro__strndup(text, len);
            oom = e->detail == NULL;
        }
    }
    if (oom) {
        micro_error_free(e);
        return NULL;
    }
    return e;
}
