/* application/json: the body is the payload, as Go's json.Encoder writes
 * it (compact JSON plus one '\n'). */
#include "core/internal.h"

#include <cjson/cJSON.h>

static bool
is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* 0 if p[0..len) is exactly one JSON value with optional blanks, else
 * MICRO_ECODEC (or MICRO_ENOMEM when checking ran out of memory). */
static int
json_valid(const char *p, size_t len)
{
    const char *end = NULL;
    int rc = 0;
    cJSON *v = micro__json_parse(p, len, &end, &rc);
    if (v == NULL) {
        return rc;
    }
    cJSON_Delete(v);
    for (; end != NULL && end < p + len; end++) {
        if (!is_ws((uint8_t) *end)) {
            return MICRO_ECODEC;
        }
    }
    return 0;
}

static int
json_read_request(const void *wire, size_t len, micro_codec_info *info,
    micro_buf *payload)
{
    (void) info;
    if (payload == NULL || (wire == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    const uint8_t *p = wire;
    size_t i = 0;
    while (i < len && is_ws(p[i])) {
        i++;
    }
    if (i == len) {
        return 0; /* empty (or blank) body: an empty payload */
    }
    int rc = json_valid(wire, len);
    if (rc != 0) {
        return rc;
    }
    return micro_buf_append(payload, wire, len);
}

/* payload + '\n' as json.Encoder ends every value; "{}\n" for nothing,
 * since a Go peer cannot decode an empty body into a message. */
static int
json_encode(const void *payload, size_t len, micro_buf *wire)
{
    if (len == 0) {
        return micro_buf_append(wire, "{}\n", 3);
    }
    const uint8_t *p = payload;
    bool nl = p[len - 1] != '\n';
    int rc = micro_buf_reserve(wire, len + (nl ? 1 : 0));
    if (rc != 0) {
        return rc;
    }
    rc = micro_buf_append(wire, payload, len);
    if (rc == 0 && nl) {
        rc = micro_buf_append(wire, "\n", 1);
    }
    return rc;
}

static int
json_write_response(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    if (wire == NULL || (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    if (info != NULL && info->error != NULL) {
        return 0; /* the error travels in Micro-Error; the body is empty */
    }
    return json_encode(payload, len, wire);
}

static int
json_write_request(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    (void) info;
    if (wire == NULL || (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    return json_encode(payload, len, wire);
}

static int
json_read_response(const void *wire, size_t len, micro_codec_info *info,
    micro_buf *payload)
{
    (void) info;
    if (payload == NULL || (wire == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    return micro_buf_append(payload, wire, len);
}

const micro_codec_ops micro_codec_json_ops = {
    .abi = MICRO_CODEC_ABI,
    .name = "json",
    .read_request = json_read_request,
    .write_response = json_write_response,
    .write_request = json_write_request,
    .read_response = json_read_response,
};
