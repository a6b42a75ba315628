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

/*
 * The raw text [*vs, *ve) of the member key of the object whose text is
 * [p, end). Keys match ignoring case, as cJSON_GetObjectItem and Go's
 * encoding/json do, and the first match wins, as in cJSON. False when the
 * member is not found this way (the caller then falls back to cJSON).
 */
static bool
member_span(const char *p, const char *end, const char *key, const char **vs,
    const char **ve)
{
    size_t klen = strlen(key);
    p = skip_ws(p, end);
    if (p >= end || *p != '{') {
        return false;
    }
    p++;
    for (;;) {
        p = skip_ws(p, end);
        if (p >= end || *p != '"') {
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
        const char *v = p;
        p = skip_value(p, end);
        if (ke >= ks && (size_t) (ke - ks) == klen &&
            strncasecmp(ks, key, klen) == 0) {
            *vs = v;
            *ve = p;
            return true;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ',') {
            return false;
        }
        p++;
    }
}

/* Parse one JSON object filling all of [text, text+len) but blanks. */
static cJSON *
parse_object(const char *text, size_t len)
{
    if (text == NULL || len == 0) {
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (root == NULL) {
        return NULL;
    }
    if (!cJSON_IsObject(root) || skip_ws(end, text + len) != text + len) {
        cJSON_Delete(root);
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

/*
 * The raw text of item, the member key of the envelope [text, text+len)
 * (or, with first_elem, that member's first array element): its span in
 * the wire text or, failing that, cJSON's compact print of it.
 */
static int
value_text(const char *text, size_t len, const char *key, bool first_elem,
    const cJSON *item, micro_buf *out)
{
    const char *vs = NULL;
    const char *ve = NULL;
    const char *end = text + len;
    bool found = member_span(text, end, key, &vs, &ve);
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

/* The envelope "id": a string, a number (kept as its wire text) or
 * null/absent (NULL). */
static int
read_id(const char *text, size_t len, const cJSON *root, char **out)
{
    const cJSON *id = cJSON_GetObjectItem(root, "id");
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
    const char *vs = NULL;
    const char *ve = NULL;
    if (member_span(text, text + len, "id", &vs, &ve)) {
        return dup_span(vs, ve, out);
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
    cJSON *root = parse_object(text, len);
    if (root == NULL) {
        return MICRO_ECODEC;
    }
    int rc = 0;
    char *id = NULL;
    char *method = NULL;
    micro_buf body = {0};
    const cJSON *m = cJSON_GetObjectItem(root, "method");
    const cJSON *params = cJSON_GetObjectItem(root, "params");
    if (!cJSON_IsString(m) || m->valuestring == NULL ||
        (params != NULL && !cJSON_IsNull(params) &&
            !cJSON_IsArray(params))) {
        rc = MICRO_ECODEC;
    }
    if (rc == 0) {
        rc = read_id(text, len, root, &id);
    }
    if (rc == 0) {
        method = micro__strdup(m->valuestring);
        rc = method == NULL ? MICRO_ENOMEM : 0;
    }
    const cJSON *p0 = cJSON_IsArray(params) ? params->child : NULL;
    if (rc == 0 && p0 != NULL && !cJSON_IsNull(p0)) {
        rc = value_text(text, len, "params", true, p0, &body);
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
    const char *p = payload;
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
    cJSON *v = cJSON_ParseWithLengthOpts(p, *n, &pe, 0);
    if (v == NULL) {
        return MICRO_ECODEC;
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
    cJSON *root = parse_object(text, len);
    if (root == NULL) {
        return MICRO_ECODEC;
    }
    int rc = 0;
    char *id = NULL;
    char *err = NULL;
    micro_buf body = {0};
    const cJSON *e = cJSON_GetObjectItem(root, "error");
    if (e != NULL && !cJSON_IsNull(e)) {
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
        rc = read_id(text, len, root, &id);
    }
    const cJSON *res = cJSON_GetObjectItem(root, "result");
    if (rc == 0 && err == NULL && res != NULL && !cJSON_IsNull(res)) {
        rc = value_text(text, len, "result", false, res, &body);
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
