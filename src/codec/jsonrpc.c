/*
 * application/json-rpc: Go Micro's legacy JSON-RPC 1.0 envelope (wire spec
 * §3.5, codec/jsonrpc):
 *   request   {"method":"Greeter.Hello","params":[<payload>],"id":"<id>"}\n
 *   response  {"id":"<id>","result":<payload|null>,"error":null|"<text>"}\n
 *
 * cJSON validates each envelope and decodes its strings. The payload inside
 * is copied from the wire text itself rather than re-printed by cJSON,
 * which holds numbers as doubles and would corrupt int64 values above 2^53
 * (Go encodes int64 fields as JSON numbers).
 *
 * Member keys are matched as Go's encoding/json matches them into the
 * envelope structs of Go Micro's codec: on the unescaped key, ignoring
 * case with Go's folding (which also takes U+017F for 's' and U+212A for
 * 'k'), and when a key appears more than once the last occurrence wins;
 * a null "method" leaves the previous value (null into a Go string is a
 * no-op), and a "method" that is neither a string nor null anywhere fails
 * the request as Go's decoder does. Validation and use look at the same
 * occurrence, found once in the wire text and in cJSON's tree (both keep
 * every member, in order).
 */
#include "core/msg_internal.h"

#include <cjson/cJSON.h>

static bool
is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p)) {
        p++;
    }
    return p;
}

/* p at an opening quote: the byte after the closing quote. */
static const char *
skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\') {
            p++;
        } else if (*p == '"') {
            return p + 1;
        }
    }
    return end;
}

/* The end of the JSON value at p. Only used on text cJSON has accepted,
 * and bounded by end whatever the input. */
static const char *
skip_value(const char *p, const char *end)
{
    if (p >= end) {
        return end;
    }
    if (*p == '"') {
        return skip_string(p, end);
    }
    if (*p == '{' || *p == '[') {
        size_t depth = 0;
        while (p < end) {
            if (*p == '"') {
                p = skip_string(p, end);
                continue;
            }
            if (*p == '{' || *p == '[') {
                depth++;
            } else if (*p == '}' || *p == ']') {
                if (--depth == 0) {
                    return p + 1;
                }
            }
            p++;
        }
        return end;
    }
    while (p < end && !is_ws(*p) && *p != ',' && *p != ']' && *p != '}') {
        p++;
    }
    return p;
}

/* The next code point of the JSON string text [*p, end) with its escapes
 * decoded (Go's unquote: a bad or lone surrogate and invalid UTF-8 give
 * U+FFFD); -1 at the end. The text is what cJSON has accepted. */
static int32_t
key_rune(const char **p, const char *end)
{
    const unsigned char *s = (const unsigned char *) *p;
    const unsigned char *e = (const unsigned char *) end;
    if (s >= e) {
        return -1;
    }
    if (*s == '\\' && s + 1 < e) {
        unsigned char c = s[1];
        *p += 2;
        switch (c) {
        case 'b':
            return '\b';
        case 'f':
            return '\f';
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        case 'u':
            break;
        default:
            return c; /* " \\ / */
        }
        int32_t cp = 0;
        for (int i = 0; i < 4; i++) {
            int v = *p + i < end ? micro__hexval((unsigned char) (*p)[i]) : -1;
            if (v < 0) {
                return 0xfffd;
            }
            cp = cp << 4 | v;
        }
        *p += 4;
        if (cp >= 0xd800 && cp < 0xdc00) {
            /* A high surrogate wants \uDC00-\uDFFF next. */
            const char *q = *p;
            int32_t lo = 0;
            if (q + 6 <= end && q[0] == '\\' && q[1] == 'u') {
                for (int i = 0; i < 4 && lo >= 0; i++) {
                    int v = micro__hexval((unsigned char) q[2 + i]);
                    lo = v < 0 ? -1 : (lo << 4 | v);
                }
            } else {
                lo = -1;
            }
            if (lo >= 0xdc00 && lo < 0xe000) {
                *p += 6;
                return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            return 0xfffd;
        }
        return cp >= 0xdc00 && cp < 0xe000 ? 0xfffd : cp;
    }
    if (*s < 0x80) {
        *p += 1;
        return *s;
    }
    /* UTF-8: the lead byte gives the length; anything malformed is one
     * U+FFFD per byte, as Go's decoder makes it. */
    int n = 0;
    if ((*s & 0xe0) == 0xc0) {
        n = 2;
    } else if ((*s & 0xf0) == 0xe0) {
        n = 3;
    } else if ((*s & 0xf8) == 0xf0) {
        n = 4;
    }
    if (n == 0 || s + n > e) {
        *p += 1;
        return 0xfffd;
    }
    int32_t cp = *s & (0x7f >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *p += 1;
            return 0xfffd;
        }
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const int32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) {
        *p += 1;
        return 0xfffd;
    }
    *p += n;
    return cp;
}

/* Whether the raw key text [ks, ke) names field (ASCII, lower case) for
 * Go's encoding/json: exact or case-folded, where folding maps each rune
 * to the smallest of its Unicode simple-fold orbit, so that U+017F (long
 * s) matches 's' and U+212A (Kelvin sign) 'k'; no other non-ASCII rune
 * folds to ASCII. */
static bool
key_matches(const char *ks, const char *ke, const char *field)
{
    const char *p = ks;
    for (const char *f = field; *f != '\0'; f++) {
        int32_t r = key_rune(&p, ke);
        if (r == 0x17f) {
            r = 's';
        } else if (r == 0x212a) {
            r = 'k';
        } else if (r >= 'A' && r <= 'Z') {
            r += 'a' - 'A';
        }
        if (r != (unsigned char) *f) {
            return false;
        }
    }
    return p == ke;
}

/* The occurrence of an envelope member that Go would end up with. */
typedef struct member {
    const cJSON *item; /* NULL: absent */
    const char *vs;    /* its value's wire text [vs, ve) */
    const char *ve;
} member;

/*
 * Find field in the object [text, end) that cJSON parsed into root: the
 * last occurrence wins; with keep_on_null a null occurrence leaves the one
 * before. *type_error is set when want_string and an occurrence is
 * neither a string nor null (Go's decoder fails the whole value then,
 * after decoding the rest). False when the wire text and the tree do not
 * line up, which cannot happen for text cJSON accepted.
 */
static bool
member_find(const char *text, const char *end, const cJSON *root,
    const char *field, bool keep_on_null, bool want_string, member *out,
    bool *type_error)
{
    memset(out, 0, sizeof(*out));
    const char *p = skip_ws(text, end);
    if (p >= end || *p != '{') {
        return false;
    }
    p = skip_ws(p + 1, end);
    const cJSON *item = root->child;
    if (p < end && *p == '}') {
        return item == NULL;
    }
    for (;;) {
        if (p >= end || *p != '"' || item == NULL) {
            return false;
        }
        const char *ks = p + 1;
        p = skip_string(p, end);
        const char *ke = p - 1;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') {
            return false;
        }
        p = skip_ws(p + 1, end);
        const char *vs = p;
        p = skip_value(p, end);
        if (key_matches(ks, ke, field)) {
            if (want_string && !cJSON_IsString(item) && !cJSON_IsNull(item)) {
                *type_error = true;
            }
            if (!(keep_on_null && cJSON_IsNull(item) && out->item != NULL)) {
                out->item = item;
                out->vs = vs;
                out->ve = p;
            }
        }
        item = item->next;
        p = skip_ws(p, end);
        if (p < end && *p == '}') {
            return item == NULL;
        }
        if (p >= end || *p != ',') {
            return false;
        }
        p = skip_ws(p + 1, end);
    }
}

/* Parse one JSON object filling all of [text, text+len) but blanks; NULL
 * with *rc MICRO_ECODEC, or MICRO_ENOMEM. */
static cJSON *
parse_object(const char *text, size_t len, int *rc)
{
    *rc = MICRO_ECODEC;
    if (text == NULL || len == 0) {
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = micro__json_parse(text, len, &end, rc);
    if (root == NULL) {
        return NULL;
    }
    if (!cJSON_IsObject(root) || skip_ws(end, text + len) != text + len) {
        cJSON_Delete(root);
        *rc = MICRO_ECODEC;
        return NULL;
    }
    return root;
}

/* A copy of the JSON value text [s, e) in a fresh malloc'd string. */
static int
dup_span(const char *s, const char *e, char **out)
{
    *out = micro__strndup(s, (size_t) (e - s));
    return *out == NULL ? MICRO_ENOMEM : 0;
}

/* The wire text of m's value (or, with first_elem, of its array's first
 * element), else cJSON's compact print of item. */
static int
value_text(const member *m, bool first_elem, const cJSON *item,
    micro_buf *out)
{
    const char *vs = m->vs;
    const char *ve = m->ve;
    bool found = vs != NULL && vs < ve;
    if (found && first_elem) {
        /* vs is at '[': the first element follows. */
        vs = skip_ws(vs + 1, ve);
        ve = skip_value(vs, ve);
        found = vs < ve && *vs != ']';
    }
    if (found) {
        return micro_buf_append(out, vs, (size_t) (ve - vs));
    }
    char *s = cJSON_PrintUnformatted(item);
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    int rc = micro_buf_append_str(out, s);
    cJSON_free(s);
    return rc;
}

/* The envelope "id" m: a string, a number (kept as its wire text) or
 * null/absent (NULL). */
static int
read_id(const member *m, char **out)
{
    const cJSON *id = m->item;
    *out = NULL;
    if (id == NULL || cJSON_IsNull(id)) {
        return 0;
    }
    if (cJSON_IsString(id) && id->valuestring != NULL) {
        *out = micro__strdup(id->valuestring);
        return *out == NULL ? MICRO_ENOMEM : 0;
    }
    if (!cJSON_IsNumber(id)) {
        return MICRO_ECODEC;
    }
    if (m->vs != NULL && m->vs < m->ve) {
        return dup_span(m->vs, m->ve, out);
    }
    char num[32];
    snprintf(num, sizeof(num), "%.17g", id->valuedouble);
    *out = micro__strdup(num);
    return *out == NULL ? MICRO_ENOMEM : 0;
}

static void
set_field(char **field, char *v)
{
    micro__free(*field);
    *field = v;
}

static int
jsonrpc_read_request(const void *wire, size_t len, micro_codec_info *info,
    micro_buf *payload)
{
    if (info == NULL || payload == NULL || (wire == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    const char *text = wire;
    int rc = 0;
    cJSON *root = parse_object(text, len, &rc);
    if (root == NULL) {
        return rc;
    }
    char *id = NULL;
    char *method = NULL;
    micro_buf body = {0};
    member mm, pm, im;
    bool type_error = false;
    const char *end = text + len;
    if (!member_find(text, end, root, "method", true, true, &mm,
            &type_error) ||
        !member_find(text, end, root, "params", false, false, &pm,
            &type_error) ||
        !member_find(text, end, root, "id", false, false, &im, &type_error)) {
        rc = MICRO_ECODEC;
    }
    const cJSON *m = mm.item;
    const cJSON *params = pm.item;
    if (rc == 0 &&
        (type_error || !cJSON_IsString(m) || m->valuestring == NULL ||
            (params != NULL && !cJSON_IsNull(params) &&
                !cJSON_IsArray(params)))) {
        rc = MICRO_ECODEC;
    }
    if (rc == 0) {
        rc = read_id(&im, &id);
    }
    if (rc == 0) {
        method = micro__strdup(m->valuestring);
        rc = method == NULL ? MICRO_ENOMEM : 0;
    }
    const cJSON *p0 = rc == 0 && cJSON_IsArray(params) ? params->child : NULL;
    if (rc == 0 && p0 != NULL && !cJSON_IsNull(p0)) {
        rc = value_text(&pm, true, p0, &body);
    }
    if (rc == 0 && body.len > 0) {
        rc = micro_buf_append(payload, body.data, body.len);
    }
    cJSON_Delete(root);
    micro_buf_clear(&body);
    if (rc != 0) {
        micro__free(id);
        micro__free(method);
        return rc;
    }
    set_field(&info->endpoint, method);
    set_field(&info->id, id);
    return 0;
}

/* The payload with surrounding blanks trimmed, checked to be one JSON
 * value: it is spliced into the envelope verbatim. */
static int
payload_value(const void *payload, size_t len, const char **s, size_t *n)
{
    /* An empty payload may come as NULL, and NULL + 0 is undefined. */
    const char *p = payload != NULL ? payload : "";
    const char *end = p + len;
    p = skip_ws(p, end);
    while (end > p && is_ws(end[-1])) {
        end--;
    }
    *s = p;
    *n = (size_t) (end - p);
    if (*n == 0) {
        return 0;
    }
    const char *pe = NULL;
    int rc = 0;
    cJSON *v = micro__json_parse(p, *n, &pe, &rc);
    if (v == NULL) {
        return rc;
    }
    cJSON_Delete(v);
    return pe == end ? 0 : MICRO_ECODEC;
}

/* Append "text" (Go-escaped) or null. */
static int
append_str_or_null(micro_buf *b, const char *s)
{
    if (s == NULL) {
        return micro_buf_append(b, "null", 4);
    }
    return micro__json_append_string(b, s, strlen(s));
}

/* Append the payload value, or null when there is none. */
static int
append_value_or_null(micro_buf *b, const char *s, size_t n)
{
    if (n == 0) {
        return micro_buf_append(b, "null", 4);
    }
    return micro_buf_append(b, s, n);
}

static int
jsonrpc_write_response(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    if (wire == NULL || (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    const char *err = info != NULL ? info->error : NULL;
    const char *v = NULL;
    size_t vn = 0;
    if (err == NULL) {
        int rc = payload_value(payload, len, &v, &vn);
        if (rc != 0) {
            return rc;
        }
    }
    size_t mark = wire->len;
    int rc = micro_buf_append_str(wire, "{\"id\":");
    if (rc == 0) {
        rc = append_str_or_null(wire, info != NULL ? info->id : NULL);
    }
    if (rc == 0) {
        rc = micro_buf_append_str(wire, ",\"result\":");
    }
    if (rc == 0) {
        rc = append_value_or_null(wire, v, vn);
    }
    if (rc == 0) {
        rc = micro_buf_append_str(wire, ",\"error\":");
    }
    if (rc == 0) {
        rc = append_str_or_null(wire, err);
    }
    if (rc == 0) {
        rc = micro_buf_append(wire, "}\n", 2);
    }
    if (rc != 0) {
        wire->len = mark;
    }
    return rc;
}

static int
jsonrpc_write_request(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    if (info == NULL || info->endpoint == NULL || wire == NULL ||
        (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    const char *v = NULL;
    size_t vn = 0;
    int rc = payload_value(payload, len, &v, &vn);
    if (rc != 0) {
        return rc;
    }
    size_t mark = wire->len;
    rc = micro_buf_append_str(wire, "{\"method\":");
    if (rc == 0) {
        rc = micro__json_append_string(
            wire, info->endpoint, strlen(info->endpoint));
    }
    if (rc == 0) {
        rc = micro_buf_append_str(wire, ",\"params\":[");
    }
    if (rc == 0) {
        rc = append_value_or_null(wire, v, vn);
    }
    if (rc == 0) {
        rc = micro_buf_append_str(wire, "],\"id\":");
    }
    if (rc == 0) {
        rc = append_str_or_null(wire, info->id);
    }
    if (rc == 0) {
        rc = micro_buf_append(wire, "}\n", 2);
    }
    if (rc != 0) {
        wire->len = mark;
    }
    return rc;
}

static int
jsonrpc_read_response(const void *wire, size_t len, micro_codec_info *info,
    micro_buf *payload)
{
    if (info == NULL || payload == NULL || (wire == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    const char *text = wire;
    int rc = 0;
    cJSON *root = parse_object(text, len, &rc);
    if (root == NULL) {
        return rc;
    }
    char *id = NULL;
    char *err = NULL;
    micro_buf body = {0};
    member em, im, resm;
    bool type_error = false;
    const char *end = text + len;
    if (!member_find(text, end, root, "error", false, false, &em,
            &type_error) ||
        !member_find(text, end, root, "id", false, false, &im, &type_error) ||
        !member_find(text, end, root, "result", false, false, &resm,
            &type_error)) {
        rc = MICRO_ECODEC;
    }
    const cJSON *e = em.item;
    if (rc == 0 && e != NULL && !cJSON_IsNull(e)) {
        /* Go Micro: a non-string error is invalid, "" is unspecified. */
        if (!cJSON_IsString(e) || e->valuestring == NULL) {
            rc = MICRO_ECODEC;
        } else {
            const char *t = e->valuestring;
            err = micro__strdup(t[0] != '\0' ? t : "unspecified error");
            rc = err == NULL ? MICRO_ENOMEM : 0;
        }
    }
    if (rc == 0) {
        rc = read_id(&im, &id);
    }
    const cJSON *res = resm.item;
    if (rc == 0 && err == NULL && res != NULL && !cJSON_IsNull(res)) {
        rc = value_text(&resm, false, res, &body);
    }
    if (rc == 0 && body.len > 0) {
        rc = micro_buf_append(payload, body.data, body.len);
    }
    cJSON_Delete(root);
    micro_buf_clear(&body);
    if (rc != 0) {
        micro__free(id);
        micro__free(err);
        return rc;
    }
    set_field(&info->id, id);
    set_field(&info->error, err);
    return 0;
}

const micro_codec_ops micro_codec_jsonrpc_ops = {
    .abi = MICRO_CODEC_ABI,
    .name = "json-rpc",
    .read_request = jsonrpc_read_request,
    .write_response = jsonrpc_write_response,
    .write_request = jsonrpc_write_request,
    .read_response = jsonrpc_read_response,
};
