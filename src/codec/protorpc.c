/*
 * application/proto-rpc: Go Micro's legacy net/rpc envelope (wire spec
 * §3.6, codec/protorpc). A "netstring" here is a 4-byte big-endian length
 * and that many bytes:
 *   request   NS(Request{service_method=1, seq=2 fixed64}) NS(payload)
 *   response  NS(Response{service_method=1, seq=2, error=3}) NS(payload)
 * An error response carries an empty second netstring. The envelopes are
 * tiny proto3 messages, encoded and parsed here by hand: fields at their
 * zero value are omitted, as Go's proto.Marshal does.
 */
#include "core/internal.h"

/* Largest netstring we accept: Go Micro reads any uint32 length, but a
 * body beyond the transport's own limit cannot arrive anyway. */
#define NS_MAX (64u << 20)

static int
put_varint(micro_buf *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t) (v & 0x7f);
        v >>= 7;
        if (v != 0) {
            tmp[n] |= 0x80;
        }
        n++;
    } while (v != 0);
    return micro_buf_append(b, tmp, n);
}

static int
put_string(micro_buf *b, uint8_t tag, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    size_t n = strlen(s);
    int rc = micro_buf_append(b, &tag, 1);
    if (rc == 0) {
        rc = put_varint(b, n);
    }
    return rc == 0 ? micro_buf_append(b, s, n) : rc;
}

/* Go's strconv.ParseInt(id, 10, 64) as a uint64, 0 when it fails. */
static uint64_t
seq_of(const char *id)
{
    if (id == NULL || id[0] == '\0') {
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(id, &end, 10);
    if (errno != 0 || end == id || *end != '\0') {
        return 0;
    }
    return (uint64_t) v;
}

/* NS(envelope): a Request, or with response a Response (error = 3). */
static int
put_envelope(micro_buf *b, const micro_codec_info *info, bool response)
{
    micro_buf e = {0};
    int rc = put_string(&e, 0x0a, info ? info->endpoint : NULL);
    uint64_t seq = seq_of(info ? info->id : NULL);
    if (rc == 0 && seq != 0) {
        uint8_t f[9] = {0x11};
        for (int i = 0; i < 8; i++) {
            f[1 + i] = (uint8_t) (seq >> (8 * i));
        }
        rc = micro_buf_append(&e, f, sizeof(f));
    }
    if (rc == 0 && response) {
        rc = put_string(&e, 0x1a, info ? info->error : NULL);
    }
    uint8_t hdr[4] = {(uint8_t) (e.len >> 24), (uint8_t) (e.len >> 16),
        (uint8_t) (e.len >> 8), (uint8_t) e.len};
    if (rc == 0) {
        rc = micro_buf_append(b, hdr, 4);
    }
    if (rc == 0 && e.len > 0) {
        rc = micro_buf_append(b, e.data, e.len);
    }
    micro_buf_clear(&e);
    return rc;
}

static int
put_netstring(micro_buf *b, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        return MICRO_EMSGSIZE;
    }
    uint8_t hdr[4] = {(uint8_t) (n >> 24), (uint8_t) (n >> 16),
        (uint8_t) (n >> 8), (uint8_t) n};
    int rc = micro_buf_reserve(b, 4 + n);
    if (rc == 0) {
        rc = micro_buf_append(b, hdr, 4);
    }
    if (rc == 0 && n > 0) {
        rc = micro_buf_append(b, p, n);
    }
    return rc;
}

/* Take the next netstring from [*p, end). */
static int
get_netstring(const uint8_t **p, const uint8_t *end, const uint8_t **s,
    size_t *n)
{
    if (end - *p < 4) {
        return MICRO_ECODEC;
    }
    const uint8_t *q = *p;
    uint32_t len = ((uint32_t) q[0] << 24) | ((uint32_t) q[1] << 16) |
        ((uint32_t) q[2] << 8) | q[3];
    if (len > NS_MAX || (size_t) (end - q - 4) < len) {
        return MICRO_ECODEC;
    }
    *s = q + 4;
    *n = len;
    *p = q + 4 + len;
    return 0;
}

static bool
get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int i = 0; i < 10 && *p < end; i++) {
        uint8_t b = *(*p)++;
        r |= (uint64_t) (b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* Parse a Request/Response envelope into info (fields 1, 2, 3). */
static int
parse_envelope(const uint8_t *p, size_t n, micro_codec_info *info,
    bool response)
{
    const uint8_t *end = p + n;
    char *method = NULL;
    char *error = NULL;
    uint64_t seq = 0;
    int rc = 0;
    while (rc == 0 && p < end) {
        uint64_t tag = 0;
        uint64_t v = 0;
        if (!get_varint(&p, end, &tag)) {
            rc = MICRO_ECODEC;
            break;
        }
        switch (tag & 7) {
        case 0:
            rc = get_varint(&p, end, &v) ? 0 : MICRO_ECODEC;
            break;
        case 1:
            if (end - p < 8) {
                rc = MICRO_ECODEC;
                break;
            }
            if ((tag >> 3) == 2) {
                for (int i = 0; i < 8; i++) {
                    seq |= (uint64_t) p[i] << (8 * i);
                }
            }
            p += 8;
            break;
        case 5:
            if (end - p < 4) {
                rc = MICRO_ECODEC;
                break;
            }
            p += 4;
            break;
        case 2: {
            if (!get_varint(&p, end, &v) || v > (uint64_t) (end - p)) {
                rc = MICRO_ECODEC;
                break;
            }
            char **dst = NULL;
            if ((tag >> 3) == 1) {
                dst = &method;
            } else if ((tag >> 3) == 3 && response) {
                dst = &error;
            }
            if (dst != NULL) {
                micro__free(*dst);
                *dst = micro__strndup((const char *) p, (size_t) v);
                if (*dst == NULL) {
                    rc = MICRO_ENOMEM;
                }
            }
            p += v;
            break;
        }
        default:
            rc = MICRO_ECODEC;
        }
    }
    if (rc == 0 && info != NULL) {
        char id[24];
        snprintf(id, sizeof(id), "%llu", (unsigned long long) seq);
        micro__free(info->endpoint);
        micro__free(info->id);
        micro__free(info->error);
        info->endpoint = method;
        info->error = error;
        info->id = micro__strdup(id);
        method = error = NULL;
        if (info->id == NULL) {
            rc = MICRO_ENOMEM;
        }
    }
    micro__free(method);
    micro__free(error);
    return rc;
}

static int
read_body(const void *wire, size_t len, micro_codec_info *info,
    micro_buf *payload, bool response)
{
    if (payload == NULL || (wire == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    /* An empty body may come as NULL, and NULL + 0 is undefined. */
    const uint8_t *p = wire != NULL ? wire : (const uint8_t *) "";
    const uint8_t *end = p + len;
    const uint8_t *s = NULL;
    size_t n = 0;
    int rc = get_netstring(&p, end, &s, &n);
    if (rc == 0) {
        rc = parse_envelope(s, n, info, response);
    }
    if (rc == 0) {
        rc = get_netstring(&p, end, &s, &n);
    }
    if (rc == 0 && n > 0) {
        rc = micro_buf_append(payload, s, n);
    }
    return rc;
}

static int
protorpc_read_request(const void *wire, size_t len, micro_codec_info *info,
    micro_buf *payload)
{
    return read_body(wire, len, info, payload, false);
}

static int
protorpc_read_response(const void *wire, size_t len, micro_codec_info *info,
    micro_buf *payload)
{
    return read_body(wire, len, info, payload, true);
}

static int
protorpc_write_response(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    if (wire == NULL || (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    bool failed = info != NULL && info->error != NULL;
    int rc = put_envelope(wire, info, true);
    return rc == 0 ? put_netstring(wire, payload, failed ? 0 : len) : rc;
}

static int
protorpc_write_request(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    if (wire == NULL || (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    int rc = put_envelope(wire, info, false);
    return rc == 0 ? put_netstring(wire, payload, len) : rc;
}

const micro_codec_ops micro_codec_protorpc_ops = {
    .abi = MICRO_CODEC_ABI,
    .name = "proto-rpc",
    .read_request = protorpc_read_request,
    .write_response = protorpc_write_response,
    .write_request = protorpc_write_request,
    .read_response = protorpc_read_response,
};
