/*
 * application/protobuf (Go Micro codec/proto): the body is the protobuf
 * encoding of the message with no framing, so the codec passes payloads
 * through. This file also holds the protobuf-c glue of proto.h: the
 * allocator, a validating unpack, and messages by content type for
 * handlers and callers.
 */
#include "codec/proto_internal.h"

#include <stdarg.h>

/* ------------------------------------------------------------------ */
/* The codec.                                                           */

static int
proto_pass(const void *wire, size_t len, micro_codec_info *info,
    micro_buf *payload)
{
    (void) info;
    if (payload == NULL || (wire == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    return len > 0 ? micro_buf_append(payload, wire, len) : 0;
}

static int
proto_write_response(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    if (wire == NULL || (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    if (info != NULL && info->error != NULL) {
        return 0; /* the error travels in Micro-Error; the body is empty */
    }
    return len > 0 ? micro_buf_append(wire, payload, len) : 0;
}

static int
proto_write_request(const micro_codec_info *info, const void *payload,
    size_t len, micro_buf *wire)
{
    (void) info;
    if (wire == NULL || (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    return len > 0 ? micro_buf_append(wire, payload, len) : 0;
}

const micro_codec_ops micro_codec_proto_ops = {
    .abi = MICRO_CODEC_ABI,
    .name = "proto",
    .read_request = proto_pass,
    .write_response = proto_write_response,
    .write_request = proto_write_request,
    .read_response = proto_pass,
};

/* ------------------------------------------------------------------ */
/* Allocation.                                                          */

static void *
pb_alloc(void *data, size_t size)
{
    (void) data;
    return micro__malloc(size != 0 ? size : 1);
}

static void
pb_free(void *data, void *p)
{
    (void) data;
    micro__free(p);
}

ProtobufCAllocator micro__pb_allocator = {pb_alloc, pb_free, NULL};

ProtobufCMessage *
micro__pb_alloc(const ProtobufCMessageDescriptor *d)
{
    ProtobufCMessage *m = micro__calloc(1, d->sizeof_message);
    if (m == NULL) {
        return NULL;
    }
    if (d->message_init != NULL) {
        d->message_init(m);
    } else {
        m->descriptor = d;
    }
    return m;
}

void
micro__pb_err(char *err, size_t cap, const char *fmt, ...)
{
    if (err == NULL || cap == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

bool
micro__pb_is_map(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED ||
        f->type != PROTOBUF_C_TYPE_MESSAGE || f->descriptor == NULL) {
        return false;
    }
    const ProtobufCMessageDescriptor *e = f->descriptor;
    if (e->n_fields != 2 || e->fields[0].id != 1 || e->fields[1].id != 2 ||
        strcmp(e->fields[0].name, "key") != 0 ||
        strcmp(e->fields[1].name, "value") != 0) {
        return false;
    }
    /* protoc names the entry after the field: foo_bar -> FooBarEntry. */
    char want[256];
    size_t n = 0;
    bool up = true;
    for (const char *p = f->name; *p != '\0' && n + 6 < sizeof(want); p++) {
        if (*p == '_') {
            up = true;
            continue;
        }
        want[n++] = up && *p >= 'a' && *p <= 'z' ? (char) (*p - 32) : *p;
        up = *p >= '0' && *p <= '9';
    }
    memcpy(want + n, "Entry", 6);
    return strcmp(e->short_name, want) == 0;
}

void
micro_proto_free(struct ProtobufCMessage *m)
{
    if (m != NULL) {
        protobuf_c_message_free_unpacked(m, &micro__pb_allocator);
    }
}

int
micro_proto_new(const struct ProtobufCMessageDescriptor *d,
    struct ProtobufCMessage **out)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    *out = NULL;
    if (d == NULL || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
        return MICRO_EINVAL;
    }
    *out = micro__pb_alloc(d);
    return *out ? 0 : MICRO_ENOMEM;
}

/* ------------------------------------------------------------------ */
/* Validation: protobuf-c trusts its input's shape more than a network  */
/* peer deserves (its unpack recurses without a depth limit), so every  */
/* body is walked once against the descriptor first.                    */

typedef struct pbv {
    char *err;
    size_t cap;
} pbv;

static bool
read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t r = 0;
    for (int i = 0; i < 10; i++) {
        if (*p >= end) {
            return false;
        }
        uint8_t b = *(*p)++;
        if (i == 9 && b > 1) {
            return false; /* more than 64 bits */
        }
        r |= (uint64_t) (b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = r;
            return true;
        }
    }
    return false;
}

static bool
utf8_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            k = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i - 1 < k) { /* the sequence runs past the end */
            return false;
        }
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) ||
            (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += k + 1;
    }
    return true;
}

/* The wire type a non-packed value of this type uses. */
static int
wire_type_of(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 1;
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return 5;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return 2;
    default:
        return 0;
    }
}

static int
validate(pbv *v, const ProtobufCMessageDescriptor *d, const uint8_t *p,
    const uint8_t *end, int depth)
{
    if (depth > MICRO_PROTO_MAX_DEPTH) {
        micro__pb_err(v->err, v->cap, "%s: nested deeper than %d",
            d->name, MICRO_PROTO_MAX_DEPTH);
        return MICRO_ECODEC;
    }
    while (p < end) {
        uint64_t tag = 0;
        if (!read_varint(&p, end, &tag)) {
            micro__pb_err(v->err, v->cap, "%s: truncated or overlong tag",
                d->name);
            return MICRO_ECODEC;
        }
        uint64_t num = tag >> 3;
        int wt = (int) (tag & 7);
        if (num == 0 || num > 536870911u) {
            micro__pb_err(v->err, v->cap, "%s: invalid field number %llu",
                d->name, (unsigned long long) num);
            return MICRO_ECODEC;
        }
        const ProtobufCFieldDescriptor *f =
            protobuf_c_message_descriptor_get_field(d, (unsigned) num);
        if (f != NULL) {
            int want = wire_type_of(f->type);
            bool packable = f->label == PROTOBUF_C_LABEL_REPEATED && want != 2;
            if (wt != want && !(packable && wt == 2)) {
                micro__pb_err(v->err, v->cap,
                    "%s.%s: wire type %d where %d was expected", d->name,
                    f->name, wt, want);
                return MICRO_ECODEC;
            }
        }
        uint64_t x = 0;
        switch (wt) {
        case 0:
            if (!read_varint(&p, end, &x)) {
                micro__pb_err(v->err, v->cap, "%s: truncated varint",
                    d->name);
                return MICRO_ECODEC;
            }
            break;
        case 1:
        case 5: {
            size_t n = wt == 1 ? 8 : 4;
            if ((size_t) (end - p) < n) {
                micro__pb_err(v->err, v->cap, "%s: truncated fixed field",
                    d->name);
                return MICRO_ECODEC;
            }
            p += n;
            break;
        }
        case 2: {
            if (!read_varint(&p, end, &x)) {
                micro__pb_err(v->err, v->cap, "%s: truncated length",
                    d->name);
                return MICRO_ECODEC;
            }
            if (x > (uint64_t) (end - p)) {
                micro__pb_err(v->err, v->cap,
                    "%s: length %llu exceeds the %zu bytes left", d->name,
                    (unsigned long long) x, (size_t) (end - p));
                return MICRO_ECODEC;
            }
            const uint8_t *s = p;
            p += x;
            if (f == NULL) {
                break;
            }
            if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = validate(v, f->descriptor, s, p, depth + 1);
                if (rc != 0) {
                    return rc;
                }
            } else if (f->type == PROTOBUF_C_TYPE_STRING) {
                if (!utf8_valid(s, (size_t) x)) {
                    micro__pb_err(v->err, v->cap,
                        "%s.%s: string is not valid UTF-8", d->name,
                        f->name);
                    return MICRO_ECODEC;
                }
            } else if (f->type != PROTOBUF_C_TYPE_BYTES) {
                /* Packed repeated scalars must fill the span exactly. */
                int ew = wire_type_of(f->type);
                if (ew == 0) {
                    while (s < p) {
                        if (!read_varint(&s, p, &x)) {
                            micro__pb_err(v->err, v->cap,
                                "%s.%s: bad packed varint", d->name,
                                f->name);
                            return MICRO_ECODEC;
                        }
                    }
                } else if ((size_t) (p - s) % (ew == 1 ? 8 : 4) != 0) {
                    micro__pb_err(v->err, v->cap,
                        "%s.%s: packed length not a multiple of the "
                        "element size", d->name, f->name);
                    return MICRO_ECODEC;
                }
            }
            break;
        }
        default:
            micro__pb_err(v->err, v->cap, "%s: unsupported wire type %d",
                d->name, wt);
            return MICRO_ECODEC;
        }
    }
    return 0;
}

int
micro_proto_validate(const struct ProtobufCMessageDescriptor *d,
    const void *p, size_t len, char *err, size_t cap)
{
    if (d == NULL || (p == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    pbv v = {err, cap};
    const uint8_t *b = p;
    return validate(&v, d, b, b + len, 1);
}

int
micro_proto_unpack(const struct ProtobufCMessageDescriptor *d,
    const void *p, size_t len, struct ProtobufCMessage **out)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    *out = NULL;
    if (d == NULL || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC) {
        return MICRO_EINVAL;
    }
    char err[160] = "";
    int rc = micro_proto_validate(d, p, len, err, sizeof(err));
    if (rc != 0) {
        MICRO_LOGF(MICRO_LOG_DEBUG, "codec.proto", "rejected: %s", err);
        return rc;
    }
    static const uint8_t none[1] = {0};
    micro__alloc_failed_reset();
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &micro__pb_allocator,
        len, len > 0 ? p : none);
    if (m == NULL) {
        /* Validated input fails only on memory or a protobuf-c limit
         * (e.g. a missing proto2 required field); protobuf-c says NULL
         * for both, our allocator tells them apart. */
        return micro__alloc_failed() ? MICRO_ENOMEM : MICRO_ECODEC;
    }
    *out = m;
    return 0;
}

int
micro_proto_pack(const struct ProtobufCMessage *m, micro_buf *out)
{
    if (m == NULL || out == NULL || m->descriptor == NULL) {
        return MICRO_EINVAL;
    }
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n == 0) {
        return 0;
    }
    int rc = micro_buf_reserve(out, n);
    if (rc != 0) {
        return rc;
    }
    size_t w = protobuf_c_message_pack(m, out->data + out->len);
    MICRO_ASSERT(w == n);
    out->len += w;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Messages by content type.                                            */

static bool
type_is(const char *ct, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(ct, want, n) == 0;
}

micro_proto_format
micro_proto_format_of(const char *content_type)
{
    if (content_type == NULL) {
        return MICRO_PROTO_FORMAT_BINARY;
    }
    const char *ct = content_type;
    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t')) {
        n--;
    }
    if (n == 0 || type_is(ct, n, "application/protobuf") ||
        type_is(ct, n, "application/proto-rpc") ||
        type_is(ct, n, "application/grpc") ||
        type_is(ct, n, "application/grpc+proto") ||
        type_is(ct, n, "application/x-protobuf")) {
        return MICRO_PROTO_FORMAT_BINARY;
    }
    if (type_is(ct, n, "application/json") ||
        type_is(ct, n, "application/json-rpc") ||
        type_is(ct, n, "application/grpc+json")) {
        return MICRO_PROTO_FORMAT_JSON;
    }
    return MICRO_PROTO_FORMAT_NONE;
}

/* grpc+json is decoded by Go's encoding/json, which ignores unknown
 * keys; application/json by jsonpb, which rejects them. */
static unsigned
json_flags(const char *ct)
{
    return ct != NULL && strcasestr(ct, "grpc+json") != NULL
        ? MICRO_PBJSON_IGNORE_UNKNOWN
        : 0;
}

int
micro_proto_encode(
    const char *content_type, const struct ProtobufCMessage *m, micro_buf *out)
{
    switch (micro_proto_format_of(content_type)) {
    case MICRO_PROTO_FORMAT_BINARY:
        return micro_proto_pack(m, out);
    case MICRO_PROTO_FORMAT_JSON:
        return micro_pbjson_encode(m, 0, out);
    default:
        return MICRO_ECONTENTTYPE;
    }
}

int
micro_proto_decode(const char *content_type,
    const struct ProtobufCMessageDescriptor *d, const void *p, size_t len,
    struct ProtobufCMessage **out)
{
    if (out == NULL) {
        return MICRO_EINVAL;
    }
    *out = NULL;
    switch (micro_proto_format_of(content_type)) {
    case MICRO_PROTO_FORMAT_BINARY:
        return micro_proto_unpack(d, p, len, out);
    case MICRO_PROTO_FORMAT_JSON: {
        /* An empty body is the empty message, as on the Go server. */
        const uint8_t *b = p;
        size_t i = 0;
        while (i < len && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' ||
                              b[i] == '\t')) {
            i++;
        }
        if (i == len) {
            return micro_proto_new(d, out);
        }
        char err[160] = "";
        int rc = micro_pbjson_decode(d, p, len, json_flags(content_type), out,
            err, sizeof(err));
        if (rc == MICRO_ECODEC) {
            MICRO_LOGF(MICRO_LOG_DEBUG, "codec.pbjson", "rejected: %s", err);
        }
        return rc;
    }
    default:
        return MICRO_ECONTENTTYPE;
    }
}

/* ------------------------------------------------------------------ */
/* Handlers and callers.                                                */

int
micro_proto_request(micro_request *req, micro_response *rsp,
    const struct ProtobufCMessageDescriptor *d, struct ProtobufCMessage **out)
{
    if (req == NULL || rsp == NULL || d == NULL || out == NULL) {
        return MICRO_EINVAL;
    }
    *out = NULL;
    size_t len = 0;
    const void *body = micro_request_body(req, &len);
    const char *ct = micro_request_content_type(req);
    int rc = micro_proto_decode(ct, d, body, len, out);
    if (rc == MICRO_ECODEC) {
        return micro_response_error(rsp, NULL, 400,
            "decode error: the %s body is not a valid %s",
            ct ? ct : "application/protobuf", d->name);
    }
    if (rc == MICRO_ECONTENTTYPE) {
        return micro_response_error(rsp, NULL, 415,
            "unsupported Content-Type for %s: %s", d->name, ct);
    }
    return rc;
}

int
micro_proto_reply(const micro_request *req, micro_response *rsp,
    const struct ProtobufCMessage *m)
{
    if (req == NULL || rsp == NULL || m == NULL) {
        return MICRO_EINVAL;
    }
    micro_buf b = {0};
    int rc = micro_proto_encode(micro_request_content_type(req), m, &b);
    if (rc == 0) {
        micro_response_take_body(rsp, &b);
    }
    micro_buf_clear(&b);
    return rc;
}

/* The caller's options, read only as far as its size says (a caller
 * compiled against an older micro_call_opts has a shorter struct; size 0
 * is the first version), with the typed stubs' default content type. */
static void
call_opts(micro_call_opts *o, const micro_call_opts *opts)
{
    MICRO__SIZED_COPY(o, opts, micro_call_opts, filter);
    if (o->content_type == NULL) {
        o->content_type = "application/protobuf";
    }
}

int
micro_proto_call(micro_client *c, const char *service, const char *endpoint,
    const struct ProtobufCMessage *in,
    const struct ProtobufCMessageDescriptor *out_desc,
    struct ProtobufCMessage **out, const micro_call_opts *opts,
    micro_call **call)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (call != NULL) {
        *call = NULL;
    }
    if (c == NULL || in == NULL || out_desc == NULL || out == NULL) {
        return MICRO_EINVAL;
    }
    micro_call_opts o;
    call_opts(&o, opts);
    micro_buf b = {0};
    int rc = micro_proto_encode(o.content_type, in, &b);
    if (rc != 0) {
        micro_buf_clear(&b);
        return rc;
    }
    micro_call *k = NULL;
    rc = micro_client_call(c, service, endpoint, b.data, b.len, &o, &k);
    micro_buf_clear(&b);
    if (rc == 0) {
        size_t len = 0;
        const void *p = micro_call_body(k, &len);
        rc = micro_proto_decode(o.content_type, out_desc, p, len, out);
    }
    if (call != NULL) {
        *call = k;
    } else {
        micro_call_free(k);
    }
    return rc;
}

typedef struct proto_async {
    micro_proto_call_cb cb;
    void *arg;
    const ProtobufCMessageDescriptor *out_desc;
    char *ct;
} proto_async;

static void
proto_async_done(void *arg, int rc, micro_call *call)
{
    proto_async *a = arg;
    ProtobufCMessage *out = NULL;
    if (rc == 0) {
        size_t len = 0;
        const void *p = micro_call_body(call, &len);
        rc = micro_proto_decode(a->ct, a->out_desc, p, len, &out);
    }
    micro_proto_call_cb cb = a->cb;
    void *cb_arg = a->arg;
    micro__free(a->ct);
    micro__free(a);
    cb(cb_arg, rc, out, call);
}

int
micro_proto_call_async(micro_client *c, micro_loop *loop,
    const char *service, const char *endpoint,
    const struct ProtobufCMessage *in,
    const struct ProtobufCMessageDescriptor *out_desc,
    const micro_call_opts *opts, micro_proto_call_cb cb, void *arg)
{
    if (c == NULL || loop == NULL || in == NULL || out_desc == NULL ||
        cb == NULL) {
        return MICRO_EINVAL;
    }
    micro_call_opts o;
    call_opts(&o, opts);
    proto_async *a = micro__calloc(1, sizeof(*a));
    if (a == NULL) {
        return MICRO_ENOMEM;
    }
    a->cb = cb;
    a->arg = arg;
    a->out_desc = out_desc;
    a->ct = micro__strdup(o.content_type);
    micro_buf b = {0};
    int rc = a->ct != NULL ? micro_proto_encode(o.content_type, in, &b)
                           : MICRO_ENOMEM;
    if (rc == 0) {
        rc = micro_client_call_async(c, loop, service, endpoint, b.data,
            b.len, &o, proto_async_done, a);
    }
    micro_buf_clear(&b);
    if (rc != 0) {
        micro__free(a->ct);
        micro__free(a);
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* Streams.                                                             */

int
micro_proto_stream_open(micro_client *c, const char *service,
    const char *endpoint, const micro_call_opts *opts, micro_stream **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    micro_call_opts o;
    call_opts(&o, opts);
    /* Refused here rather than at the first send, after a connection. */
    if (micro_proto_format_of(o.content_type) == MICRO_PROTO_FORMAT_NONE) {
        return MICRO_ECONTENTTYPE;
    }
    return micro_client_stream(c, service, endpoint, &o, out);
}

int
micro_proto_stream_open_async(micro_client *c, micro_loop *loop,
    const char *service, const char *endpoint, const micro_call_opts *opts,
    micro_stream_open_cb cb, void *arg)
{
    micro_call_opts o;
    call_opts(&o, opts);
    if (micro_proto_format_of(o.content_type) == MICRO_PROTO_FORMAT_NONE) {
        return MICRO_ECONTENTTYPE;
    }
    return micro_client_stream_async(c, loop, service, endpoint, &o, cb,
        arg);
}

int
micro_proto_stream_send(micro_stream *s, const struct ProtobufCMessage *m)
{
    if (s == NULL || m == NULL) {
        return MICRO_EINVAL;
    }
    micro_buf b = {0};
    int rc = micro_proto_encode(micro_stream_content_type(s), m, &b);
    if (rc == 0) {
        /* An empty message is an empty payload (protobuf): never NULL. */
        rc = micro_stream_send(s, b.data != NULL ? (const void *) b.data : "",
            b.len);
    }
    micro_buf_clear(&b);
    return rc;
}

int
micro_proto_stream_send_async(micro_stream *s,
    const struct ProtobufCMessage *m, micro_stream_cb cb, void *arg)
{
    if (s == NULL || m == NULL || cb == NULL) {
        return MICRO_EINVAL;
    }
    micro_buf b = {0};
    int rc = micro_proto_encode(micro_stream_content_type(s), m, &b);
    if (rc == 0) {
        rc = micro_stream_send_async(s,
            b.data != NULL ? (const void *) b.data : "", b.len, cb, arg);
    }
    micro_buf_clear(&b);
    return rc;
}

int
micro_proto_stream_recv(micro_stream *s,
    const struct ProtobufCMessageDescriptor *d,
    struct ProtobufCMessage **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (s == NULL || d == NULL || out == NULL) {
        return MICRO_EINVAL;
    }
    micro_buf b = {0};
    int rc = micro_stream_recv(s, &b);
    if (rc == 0) {
        rc = micro_proto_decode(micro_stream_content_type(s), d,
            b.data != NULL ? (const void *) b.data : "", b.len, out);
    }
    micro_buf_clear(&b);
    return rc;
}

int
micro_proto_stream_request(micro_stream *s,
    const struct ProtobufCMessageDescriptor *d, const void *body, size_t len,
    struct ProtobufCMessage **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (s == NULL || d == NULL || out == NULL) {
        return MICRO_EINVAL;
    }
    const char *ct = micro_stream_content_type(s);
    int rc = micro_proto_decode(ct, d, body != NULL ? body : "", len, out);
    if (rc == MICRO_ECODEC) {
        return micro_stream_fail(s, NULL, 400,
            "decode error: the %s body is not a valid %s",
            ct ? ct : "application/protobuf", d->name);
    }
    if (rc == MICRO_ECONTENTTYPE) {
        return micro_stream_fail(s, NULL, 415,
            "unsupported Content-Type for %s: %s", d->name, ct);
    }
    return rc;
}
