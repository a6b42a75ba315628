/* The content-type -> codec table. */
#include "core/internal.h"

#define CODEC_TABLE_MAX 32

typedef struct codec_entry {
    const char *content_type;
    const micro_codec_ops *ops;
} codec_entry;

static const codec_entry builtins[] = {
    {"application/json", &micro_codec_json_ops},
    {"application/json-rpc", &micro_codec_jsonrpc_ops},
    {"application/octet-stream", &micro_codec_bytes_ops},
    {"application/protobuf", &micro_codec_proto_ops},
    {"application/proto-rpc", &micro_codec_protorpc_ops},
    {"application/grpc", &micro_codec_grpc_ops},
    {"application/grpc+proto", &micro_codec_grpc_ops},
    {"application/grpc+json", &micro_codec_grpc_ops},
};

/* User registrations; searched before the built-ins. */
static codec_entry registered[CODEC_TABLE_MAX];
static size_t nregistered;

void
micro_codec_info_clear(micro_codec_info *info)
{
    if (info == NULL) {
        return;
    }
    micro__free(info->endpoint);
    micro__free(info->id);
    micro__free(info->error);
    info->endpoint = NULL;
    info->id = NULL;
    info->error = NULL;
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* The media type of a Content-Type value: parameters after ';' and
 * surrounding blanks dropped. */
static const char *
media_type(const char *ct, size_t *len)
{
    while (is_space(*ct)) {
        ct++;
    }
    size_t n = strcspn(ct, ";");
    while (n > 0 && is_space(ct[n - 1])) {
        n--;
    }
    *len = n;
    return ct;
}

static bool
same_type(const char *a, size_t alen, const char *b)
{
    size_t blen = 0;
    b = media_type(b, &blen);
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

const micro_codec_ops *
micro_codec_lookup(const char *content_type)
{
    if (content_type == NULL) {
        return NULL;
    }
    size_t len = 0;
    const char *t = media_type(content_type, &len);
    if (len == 0) {
        return NULL;
    }
    for (size_t i = 0; i < nregistered; i++) {
        if (same_type(t, len, registered[i].content_type)) {
            return registered[i].ops;
        }
    }
    for (size_t i = 0; i < MICRO_ARRAY_LEN(builtins); i++) {
        if (same_type(t, len, builtins[i].content_type)) {
            return builtins[i].ops;
        }
    }
    return NULL;
}

int
micro_codec_register(const char *content_type, const micro_codec_ops *ops)
{
    if (content_type == NULL || ops == NULL || ops->abi != MICRO_CODEC_ABI ||
        ops->name == NULL || ops->read_request == NULL ||
        ops->write_response == NULL || ops->write_request == NULL ||
        ops->read_response == NULL) {
        return MICRO_EINVAL;
    }
    size_t len = 0;
    const char *t = media_type(content_type, &len);
    if (len == 0) {
        return MICRO_EINVAL;
    }
    for (size_t i = 0; i < nregistered; i++) {
        if (same_type(t, len, registered[i].content_type)) {
            registered[i].ops = ops;
            return 0;
        }
    }
    if (nregistered == CODEC_TABLE_MAX) {
        return MICRO_ENOMEM;
    }
    registered[nregistered].content_type = content_type;
    registered[nregistered].ops = ops;
    nregistered++;
    return 0;
}
