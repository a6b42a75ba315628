/* Go Micro's RPC protocol: what the client and the server share. */
#include "rpc/mucp.h"
#include "core/msg_internal.h"
#include "http/h1.h"

const char *
micro__mucp_hdr2(const micro_msg *m, const char *a, const char *b)
{
    const char *v = micro_msg_header(m, a);
    if (v == NULL || v[0] == '\0') {
        v = micro_msg_header(m, b);
    }
    return (v != NULL && v[0] != '\0') ? v : NULL;
}

void
micro__mucp_timeout_header(int64_t ms, char out[24])
{
    int64_t ns = ms > INT64_MAX / 1000000 ? INT64_MAX : ms * 1000000;
    snprintf(out, 24, "%lld", (long long) ns);
}

int64_t
micro__deadline_after(int64_t ms)
{
    if (ms <= 0) {
        return 0;
    }
    int64_t now = micro__now_ms();
    return ms > INT64_MAX - now ? INT64_MAX : now + ms;
}

int64_t
micro__mucp_deadline(const micro_msg *m)
{
    const char *v = micro_msg_header(m, "Timeout");
    if (v == NULL) {
        return 0;
    }
    /* Go parses it with strconv.ParseUint: digits only. */
    int64_t ns = 0;
    const char *p = v;
    if (*p == '\0') {
        return 0;
    }
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return 0;
        }
        int d = *p - '0';
        ns = ns > (INT64_MAX - d) / 10 ? INT64_MAX : ns * 10 + d;
    }
    if (ns <= 0) {
        return 0;
    }
    int64_t ms = ns / 1000000 + (ns % 1000000 != 0);
    return micro__deadline_after(ms);
}

int
micro__mucp_request_headers(micro_msg *m, const micro__mucp_req *r,
    const char **bad)
{
    int rc = 0;
    *bad = NULL;
    /* Metadata first: the framework's own headers win (Go Micro's order). */
    for (size_t i = 0; rc == 0 && i < r->n_metadata; i++) {
        const micro_header_kv *kv = &r->metadata[i];
        if (kv->key == NULL || kv->value == NULL ||
            strcasecmp(kv->key, "Micro-Topic") == 0) {
            continue;
        }
        if (!micro__h1_token(kv->key, strlen(kv->key)) ||
            !micro__h1_value_ok(kv->value, strlen(kv->value))) {
            *bad = kv->key;
            return MICRO_EINVAL;
        }
        rc = micro_msg_set_header(m, kv->key, kv->value);
    }
    if (rc == 0 && r->timeout_ms > 0) {
        char tmo[24];
        micro__mucp_timeout_header(r->timeout_ms, tmo);
        rc = micro_msg_set_header(m, "Timeout", tmo);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Content-Type", r->content_type);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Accept", r->content_type);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Id", r->id);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Service", r->service);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Method", r->endpoint);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Endpoint", r->endpoint);
    }
    if (rc == 0 && r->stream) {
        rc = micro_msg_set_header(m, "Micro-Stream", r->id);
    }
    return rc;
}

int
micro__mucp_read_answer(const micro_msg *m, const micro_codec_ops *codec,
    micro_buf *payload, micro_error **err)
{
    *err = NULL;
    const char *e = micro_msg_header(m, "Micro-Error");
    if (e != NULL && e[0] != '\0') {
        if (strcmp(e, "EOS") == 0) {
            return MICRO_EOF;
        }
        *err = micro_error_parse(e, strlen(e));
        return *err != NULL ? MICRO_EREMOTE : MICRO_ENOMEM;
    }
    micro_codec_info info = {0};
    size_t len = 0;
    const void *body = micro_msg_body(m, &len);
    int rc = codec->read_response(body, len, &info, payload);
    if (rc == 0 && info.error != NULL && info.error[0] != '\0') {
        *err = micro_error_parse(info.error, strlen(info.error));
        rc = *err != NULL ? MICRO_EREMOTE : MICRO_ENOMEM;
    } else if (rc != 0 && rc != MICRO_ENOMEM) {
        rc = MICRO_ECODEC;
    }
    micro_codec_info_clear(&info);
    return rc;
}

int
micro__msg_copy_headers(micro_msg *dst, const micro_msg *src,
    const char *const *skip)
{
    size_t n = micro_msg_header_count(src);
    for (size_t i = 0; i < n; i++) {
        const char *k, *v;
        micro_msg_header_at(src, i, &k, &v);
        bool skipped = false;
        for (size_t j = 0; skip != NULL && skip[j] != NULL; j++) {
            if (strcasecmp(k, skip[j]) == 0) {
                skipped = true;
                break;
            }
        }
        if (skipped) {
            continue;
        }
        int rc = micro__msg_add_header_n(dst, k, strlen(k), v, strlen(v));
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
