/*
 * protoc-gen-cmicro: a protoc plugin emitting typed cmicro stubs, the C
 * counterpart of Go Micro's protoc-gen-micro. For every x.proto it writes
 * x.micro.h and x.micro.c next to protoc-gen-c's x.pb-c.{h,c}:
 *
 *   for each service S and unary method M, with P the protobuf-c prefix of
 *   S (package my.pkg, service Greeter: my__pkg__greeter / My__Pkg__Greeter)
 *     int P__m_call(client, service, in, &out, opts, &call)   synchronous
 *     int P__m_call_async(client, loop, service, in, opts, cb, arg)
 *     int P__m_reply(req, rsp, out)         a handler's typed reply
 *   for each streaming method M (client-, server- or bidirectional)
 *     int P__m_stream(client, service, opts, &s)       open (blocking)
 *     int P__m_stream_async(client, loop, service, opts, cb, arg)
 *     int P__m_call_stream(client, service, in, opts, &s) server-streaming:
 *                                           send in, half-close
 *     int P__m_send(s, in), P__m_send_async(s, in, cb, arg)
 *     int P__m_recv(s, &out), P__m_recv_async(s, cb, arg)
 *     int P__m_close_and_recv(s, &out)      client-streaming: the reply
 *     int P__m_reply(s, out), P__m_reply_async(s, out, cb, arg)  server
 *     struct T_M_Handler { open; msg; end; close; flags; }  typed callbacks
 *   and for the service
 *     struct T_Handlers { m; ...; arg; flags; }     typed handler table
 *     int P__register(server, &handlers)    registers every endpoint
 *
 * Endpoints are "S.M" as in Go Micro, and each registration carries the
 * request/response descriptions Go Micro's reflection would advertise for
 * protoc-gen-go types (field names from json tags, Go type names, three
 * levels deep); a stream's are its message types. Stream payloads are
 * encoded by the stream's content type (proto.h's micro_proto_stream_*).
 *
 * The plugin protocol itself is protobuf: the request is decoded with
 * protobuf-c code generated at build time from the compiler's own
 * descriptor.proto and plugin.proto.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/compiler/plugin.pb-c.h"

typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MsgProto;
typedef Google__Protobuf__FieldDescriptorProto FieldProto;
typedef Google__Protobuf__EnumDescriptorProto EnumProto;
typedef Google__Protobuf__ServiceDescriptorProto SvcProto;
typedef Google__Protobuf__MethodDescriptorProto MethodProto;

/* ------------------------------------------------------------------ */
/* Strings.                                                             */

typedef struct sbuf {
    char *p;
    size_t len;
    size_t cap;
} sbuf;

static void
die(const char *what)
{
    fprintf(stderr, "protoc-gen-cmicro: %s\n", what);
    exit(1);
}

static void
sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        b->p = realloc(b->p, cap);
        if (b->p == NULL) {
            die("out of memory");
        }
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void
sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        die("format error");
    }
    char *tmp = malloc((size_t) n + 1);
    if (tmp == NULL) {
        die("out of memory");
    }
    va_start(ap, fmt);
    vsnprintf(tmp, (size_t) n + 1, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t) n);
    free(tmp);
}

static char *
xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL) {
        die("out of memory");
    }
    return d;
}

/* A template with ${name} placeholders, filled from vars (a table ended
 * by a NULL key): long generated functions read better this way than as
 * a printf format with thirty positional arguments. */
typedef struct tvar {
    const char *k;
    const char *v;
} tvar;

static void
sb_tmpl(sbuf *b, const char *t, const tvar *vars)
{
    for (;;) {
        const char *d = strstr(t, "${");
        if (d == NULL) {
            sb_put(b, t, strlen(t));
            return;
        }
        sb_put(b, t, (size_t) (d - t));
        const char *e = strchr(d, '}');
        if (e == NULL) {
            die("internal: unterminated template variable");
        }
        size_t n = (size_t) (e - d - 2);
        const tvar *v = vars;
        while (v->k != NULL &&
            !(strlen(v->k) == n && memcmp(v->k, d + 2, n) == 0)) {
            v++;
        }
        if (v->k == NULL) {
            die("internal: unknown template variable");
        }
        sb_put(b, v->v, strlen(v->v));
        t = e + 1;
    }
}

/* protobuf-c's ToCamel: drop '_' and upper-case the letter after it and
 * the first letter. "my_pkg" -> "MyPkg". */
static void
to_camel(sbuf *b, const char *s, size_t n)
{
    bool up = true;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            up = true;
        } else if (up) {
            char c = (char) toupper((unsigned char) s[i]);
            sb_put(b, &c, 1);
            up = false;
        } else {
            sb_put(b, &s[i], 1);
        }
    }
}

/* protobuf-c's CamelToLower: '_' before an upper-case letter that follows
 * a non-upper one, everything lower-cased. "FooBar" -> "foo_bar". */
static void
camel_to_lower(sbuf *b, const char *s, size_t n)
{
    bool was_upper = true;
    for (size_t i = 0; i < n; i++) {
        bool is_upper = isupper((unsigned char) s[i]) != 0;
        if (is_upper && !was_upper) {
            sb_put(b, "_", 1);
        }
        char c = (char) tolower((unsigned char) s[i]);
        sb_put(b, &c, 1);
        was_upper = is_upper;
    }
}

/* A dotted full name ("pkg.Msg.Inner", no leading dot) in protobuf-c's
 * type form (Pkg__Msg__Inner) or function form (pkg__msg__inner). */
static char *
c_name(const char *full, bool lower)
{
    sbuf b = {0};
    const char *p = full;
    while (*p != '\0') {
        size_t n = strcspn(p, ".");
        if (b.len > 0) {
            sb_put(&b, "__", 2);
        }
        if (lower) {
            camel_to_lower(&b, p, n);
        } else {
            to_camel(&b, p, n);
        }
        p += n;
        if (*p == '.') {
            p++;
        }
    }
    if (b.p == NULL) {
        sb_put(&b, "", 0);
    }
    return b.p;
}

/* protoc-gen-go's GoCamelCase (google.golang.org/protobuf/internal/strs):
 * the Go identifier of a name relative to its package. */
static char *
go_camel(const char *s)
{
    sbuf b = {0};
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool next_lower = i + 1 < n && islower((unsigned char) s[i + 1]);
        if (c == '.' && next_lower) {
            continue;
        } else if (c == '.') {
            sb_put(&b, "_", 1);
        } else if (c == '_' && (i == 0 || s[i - 1] == '.')) {
            sb_put(&b, "X", 1);
        } else if (c == '_' && next_lower) {
            continue;
        } else if (isdigit((unsigned char) c)) {
            sb_put(&b, &c, 1);
        } else {
            c = (char) toupper((unsigned char) c);
            sb_put(&b, &c, 1);
            while (i + 1 < n && islower((unsigned char) s[i + 1])) {
                sb_put(&b, &s[++i], 1);
            }
        }
    }
    if (b.p == NULL) {
        sb_put(&b, "", 0);
    }
    return b.p;
}

/* ------------------------------------------------------------------ */
/* Type index over every file protoc sent (targets and imports).        */

typedef struct type_entry {
    char *full;  /* "pkg.Msg.Inner" */
    char *go;    /* "Msg_Inner" */
    const MsgProto *msg;
    const EnumProto *en;
} type_entry;

static type_entry *types;
static size_t ntypes;

static void
add_type(const char *pkg, const char *prefix, const char *name,
    const MsgProto *m, const EnumProto *e)
{
    sbuf full = {0};
    sbuf rel = {0};
    if (pkg != NULL && pkg[0] != '\0') {
        sb_printf(&full, "%s.", pkg);
    }
    if (prefix != NULL) {
        sb_printf(&full, "%s.", prefix);
        sb_printf(&rel, "%s.", prefix);
    }
    sb_printf(&full, "%s", name);
    sb_printf(&rel, "%s", name);
    types = realloc(types, (ntypes + 1) * sizeof(*types));
    if (types == NULL) {
        die("out of memory");
    }
    types[ntypes].full = full.p;
    types[ntypes].go = go_camel(rel.p);
    types[ntypes].msg = m;
    types[ntypes].en = e;
    ntypes++;
    if (m != NULL) {
        for (size_t i = 0; i < m->n_nested_type; i++) {
            add_type(pkg, rel.p, m->nested_type[i]->name, m->nested_type[i],
                NULL);
        }
        for (size_t i = 0; i < m->n_enum_type; i++) {
            add_type(pkg, rel.p, m->enum_type[i]->name, NULL,
                m->enum_type[i]);
        }
    }
    free(rel.p);
}

static const type_entry *
find_type(const char *type_name)
{
    const char *n = type_name[0] == '.' ? type_name + 1 : type_name;
    for (size_t i = 0; i < ntypes; i++) {
        if (strcmp(types[i].full, n) == 0) {
            return &types[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Registry descriptions: the Value tree Go Micro's extractValue builds  */
/* from a protoc-gen-go struct.                                          */

static int value_seq;

static const char *
go_scalar(Google__Protobuf__FieldDescriptorProto__Type t)
{
    switch (t) {
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_DOUBLE:
        return "float64";
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FLOAT:
        return "float32";
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT64:
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SINT64:
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SFIXED64:
        return "int64";
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_UINT64:
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FIXED64:
        return "uint64";
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_INT32:
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SINT32:
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_SFIXED32:
        return "int32";
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_UINT32:
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_FIXED32:
        return "uint32";
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BOOL:
        return "bool";
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_STRING:
        return "string";
    case GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BYTES:
        return "[]uint8";
    default:
        return NULL;
    }
}

static bool
is_map_field(const FieldProto *f, const type_entry **entry)
{
    if (f->label != GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED ||
        f->type_name == NULL) {
        return false;
    }
    const type_entry *t = find_type(f->type_name);
    if (t == NULL || t->msg == NULL || t->msg->options == NULL ||
        !t->msg->options->map_entry) {
        return false;
    }
    *entry = t;
    return true;
}

/* Emit the children of message m at depth d as a static array; returns
 * its id (0 when there are none) and the count in *n. Children are
 * emitted before their parents so that each array is defined before use. */
static int emit_values(sbuf *out, const type_entry *m, int d, size_t *n);

typedef struct val {
    char *name;
    char *type;
    int child; /* array id, 0 = none */
    size_t nchild;
} val;

static void
make_field_value(sbuf *out, const FieldProto *f, int d, val *v)
{
    bool repeated =
        f->label == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__LABEL__LABEL_REPEATED;
    const type_entry *entry = NULL;
    v->name = xstrdup(f->name); /* protoc-gen-go json tag */
    v->child = 0;
    v->nchild = 0;
    if (is_map_field(f, &entry)) {
        v->type = xstrdup(""); /* an unnamed Go map type */
        return;
    }
    const char *scalar = go_scalar(f->type);
    const type_entry *t = f->type_name ? find_type(f->type_name) : NULL;
    const char *tn = scalar ? scalar : t ? t->go : "";
    if (repeated) {
        /* Go: "[]" + the element's type name; []byte elements have none. */
        sbuf s = {0};
        sb_printf(&s, "[]%s",
            f->type == GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__TYPE__TYPE_BYTES
                ? ""
                : tn);
        v->type = s.p;
        return;
    }
    v->type = xstrdup(tn);
    if (t != NULL && t->msg != NULL) {
        v->child = emit_values(out, t, d, &v->nchild); /* t sits at d */
    }
}

static int
emit_values(sbuf *out, const type_entry *m, int d, size_t *n)
{
    *n = 0;
    if (d + 1 >= 3 || m->msg == NULL) {
        return 0; /* Go stops at depth 3: these fields would be dropped */
    }
    const MsgProto *mp = m->msg;
    val *vals = calloc(mp->n_field + 1, sizeof(*vals));
    if (vals == NULL) {
        die("out of memory");
    }
    size_t k = 0;
    bool *oneof_done = calloc(mp->n_oneof_decl + 1, sizeof(bool));
    if (oneof_done == NULL) {
        die("out of memory");
    }
    for (size_t i = 0; i < mp->n_field; i++) {
        const FieldProto *f = mp->field[i];
        bool synthetic = f->has_proto3_optional && f->proto3_optional;
        if (f->has_oneof_index && !synthetic &&
            (size_t) f->oneof_index < mp->n_oneof_decl) {
            /* protoc-gen-go makes a oneof one interface field with no
             * json tag, placed at its first member: Go Micro v4 names it
             * after the interface type, "is<Msg>_<Oneof>". */
            if (oneof_done[f->oneof_index]) {
                continue;
            }
            oneof_done[f->oneof_index] = true;
            char *on = go_camel(mp->oneof_decl[f->oneof_index]->name);
            sbuf s = {0};
            sb_printf(&s, "is%s_%s", m->go, on);
            free(on);
            vals[k].name = xstrdup(s.p);
            vals[k].type = s.p;
            k++;
            continue;
        }
        make_field_value(out, f, d + 1, &vals[k]);
        k++;
    }
    free(oneof_done);
    if (k == 0) {
        free(vals);
        return 0;
    }
    int id = ++value_seq;
    sb_printf(out, "static const micro_value cmicro_v%d[%zu] = {\n", id, k);
    for (size_t i = 0; i < k; i++) {
        if (vals[i].child != 0) {
            sb_printf(out,
                "    {(char *) \"%s\", (char *) \"%s\", "
                "(micro_value *) cmicro_v%d, %zu},\n",
                vals[i].name, vals[i].type, vals[i].child, vals[i].nchild);
        } else {
            sb_printf(out, "    {(char *) \"%s\", (char *) \"%s\", NULL, 0},\n",
                vals[i].name, vals[i].type);
        }
        free(vals[i].name);
        free(vals[i].type);
    }
    sb_printf(out, "};\n");
    free(vals);
    *n = k;
    return id;
}

/* The root Value of a message type: a static micro_value; its name. */
static char *
emit_root(sbuf *out, const type_entry *t)
{
    size_t n = 0;
    int child = emit_values(out, t, 0, &n);
    int id = ++value_seq;
    sbuf name = {0};
    sb_printf(&name, "cmicro_v%d", id);
    if (child != 0) {
        sb_printf(out,
            "static const micro_value cmicro_v%d = {(char *) \"%s\", "
            "(char *) \"%s\", (micro_value *) cmicro_v%d, %zu};\n",
            id, t->go, t->go, child, n);
    } else {
        sb_printf(out,
            "static const micro_value cmicro_v%d = {(char *) \"%s\", "
            "(char *) \"%s\", NULL, 0};\n",
            id, t->go, t->go);
    }
    return name.p;
}

/* ------------------------------------------------------------------ */
/* Code.                                                                */

static char *
strip_proto(const char *file)
{
    size_t n = strlen(file);
    if (n > 6 && strcmp(file + n - 6, ".proto") == 0) {
        n -= 6;
    }
    char *s = malloc(n + 1);
    if (s == NULL) {
        die("out of memory");
    }
    memcpy(s, file, n);
    s[n] = '\0';
    return s;
}

static char *
guard_of(const char *base)
{
    sbuf b = {0};
    sb_printf(&b, "CMICRO_GEN_");
    for (const char *p = base; *p != '\0'; p++) {
        char c = isalnum((unsigned char) *p)
            ? (char) toupper((unsigned char) *p)
            : '_';
        sb_put(&b, &c, 1);
    }
    sb_printf(&b, "_MICRO_H");
    return b.p;
}

/* ------------------------------------------------------------------ */
/* Streaming methods.                                                   */

typedef enum stream_kind {
    KIND_UNARY = 0,
    KIND_CLIENT, /* stream In -> Out */
    KIND_SERVER, /* In -> stream Out */
    KIND_BIDI    /* stream In -> stream Out */
} stream_kind;

typedef struct method_names {
    const MethodProto *m;
    bool stream;
    stream_kind kind;
    char *lower; /* do_thing */
    char *endpoint; /* "Svc.DoThing" */
    const type_entry *in;
    const type_entry *out;
    char *in_c;  /* C type */
    char *out_c;
    char *in_desc;  /* descriptor variable */
    char *out_desc;
} method_names;

static char *
full_of(const type_entry *t)
{
    return xstrdup(t->full);
}

static stream_kind
kind_of(const MethodProto *m)
{
    if (m->client_streaming && m->server_streaming) {
        return KIND_BIDI;
    }
    if (m->client_streaming) {
        return KIND_CLIENT;
    }
    return m->server_streaming ? KIND_SERVER : KIND_UNARY;
}

static const char *const stream_usage[] = {
    [KIND_CLIENT] =
        "client-streaming: stream ${InF} -> ${OutF}.\n"
        " * Client: ${P}__${m}_stream, ${P}__${m}_send for each message,\n"
        " *   ${P}__${m}_close_and_recv for the one reply, micro_stream_free.\n"
        " * Server: .${m}.msg sees each message; .${m}.end(s, MICRO_EOF, arg)\n"
        " *   runs once the client has sent them all: ${P}__${m}_reply the\n"
        " *   answer, then micro_stream_close_send. Per-stream state:\n"
        " *   micro_stream_set_data, released in .${m}.close.",
    [KIND_SERVER] =
        "server-streaming: ${InF} -> stream ${OutF}.\n"
        " * Client: ${P}__${m}_call_stream(in), then ${P}__${m}_recv until\n"
        " *   MICRO_EOF, micro_stream_free.\n"
        " * Server: .${m}.msg gets the request: ${P}__${m}_reply each\n"
        " *   answer, then micro_stream_close_send (without waiting for the\n"
        " *   client's end: a Go Micro client never half-closes).",
    [KIND_BIDI] =
        "bidirectional: stream ${InF} -> stream ${OutF}.\n"
        " * Client: ${P}__${m}_stream, then ${P}__${m}_send and\n"
        " *   ${P}__${m}_recv (until MICRO_EOF) in any order or from two\n"
        " *   threads; micro_stream_close_send once done sending;\n"
        " *   micro_stream_free.\n"
        " * Server: .${m}.msg sees each message and may ${P}__${m}_reply;\n"
        " *   the stream ends with EOS when the client ends its side, or,\n"
        " *   with .${m}.end set, when the handler ends it\n"
        " *   (micro_stream_close_send or micro_stream_fail).",
};

static void
gen_stream_header(sbuf *h, const tvar *v, stream_kind kind)
{
    sb_tmpl(h, "\n/* ${E}: ", v);
    sb_tmpl(h, stream_usage[kind], v);
    sb_tmpl(h,
        "\n * Close and free with the generic micro_stream_close_send and\n"
        " * micro_stream_free; the stream's accessors are stream.h's. */\n"
        "/** Open a ${E} stream to service (the registry name, e.g.\n"
        " *  \"greeter\"). Content type: opts->content_type, default\n"
        " *  application/protobuf; it encodes every message both ways.\n"
        " *  On success *s is the caller's (micro_stream_free); NULL on\n"
        " *  failure. Blocks until the opening is written; any thread but\n"
        " *  the client's loop thread. Errors as micro_client_stream, and\n"
        " *  MICRO_ECONTENTTYPE (a content type without messages). */\n"
        "int ${P}__${m}_stream(micro_client *c, const char *service,\n"
        "    const micro_call_opts *opts, micro_stream **s);\n"
        "/** Asynchronous open: cb runs once on loop's thread iff 0 is\n"
        " *  returned, never inside this call, with the stream (the\n"
        " *  callback's: micro_stream_free), whose events then run on\n"
        " *  loop's thread. Arguments are copied; any thread. */\n"
        "int ${P}__${m}_stream_async(micro_client *c, micro_loop *loop,\n"
        "    const char *service, const micro_call_opts *opts,\n"
        "    micro_stream_open_cb cb, void *arg);\n",
        v);
    if (kind == KIND_SERVER) {
        sb_tmpl(h,
            "/** Open a ${E} stream, send in (borrowed) and end the client's\n"
            " *  side; then ${P}__${m}_recv the replies. *s as for\n"
            " *  ${P}__${m}_stream. Once the stream is open, an error that\n"
            " *  ends it (the server's 404, ...) is what the first\n"
            " *  ${P}__${m}_recv returns, as with Go Micro. Blocks; any\n"
            " *  thread but the client's loop thread. */\n"
            "int ${P}__${m}_call_stream(micro_client *c, const char "
            "*service,\n"
            "    const ${In} *in, const micro_call_opts *opts, "
            "micro_stream **s);\n",
            v);
    }
    sb_tmpl(h,
        "/** Send in (borrowed: encoded for the stream's content type before\n"
        " *  this returns). Waits while the stream's unsent output is over\n"
        " *  its window; on the stream's loop thread it returns MICRO_EAGAIN\n"
        " *  instead. Any thread. Errors as micro_stream_send, and\n"
        " *  MICRO_EINVAL, MICRO_ECODEC (in does not encode). */\n"
        "int ${P}__${m}_send(micro_stream *s, const ${In} *in);\n"
        "/** Queue in (encoded before this returns) whatever the window; cb\n"
        " *  runs once on the stream's loop thread iff 0 is returned, never\n"
        " *  inside this call: 0 once written, else why it cannot be. Any\n"
        " *  thread. */\n"
        "int ${P}__${m}_send_async(micro_stream *s, const ${In} *in,\n"
        "    micro_stream_cb cb, void *arg);\n"
        "/** Wait for the next reply: 0 with *out (the caller's:\n"
        " *  micro_proto_free(&(*out)->base)), MICRO_EOF once the server\n"
        " *  ended the stream, MICRO_EREMOTE (its error: micro_stream_error),\n"
        " *  MICRO_ECODEC (a reply that does not decode; the stream stays\n"
        " *  open) or the stream's error (micro_stream_recv). *out is NULL\n"
        " *  unless 0. Any thread but the stream's loop thread. */\n"
        "int ${P}__${m}_recv(micro_stream *s, ${Out} **out);\n"
        "/** Completion of ${P}__${m}_recv_async: rc as ${P}__${m}_recv's;\n"
        " *  out (NULL unless rc is 0) is the callback's to free. */\n"
        "typedef void (*${T}_${M}_RecvCb)(void *arg, micro_stream *s, int "
        "rc,\n"
        "    ${Out} *out);\n"
        "/** Ask for the next reply; cb runs once on the stream's loop\n"
        " *  thread iff 0 is returned, never inside this call. One receive\n"
        " *  may be pending (MICRO_EBUSY). Any thread. */\n"
        "int ${P}__${m}_recv_async(micro_stream *s, ${T}_${M}_RecvCb cb,\n"
        "    void *arg);\n",
        v);
    if (kind == KIND_CLIENT) {
        sb_tmpl(h,
            "/** End the client's side and wait for the server's reply: as\n"
            " *  ${P}__${m}_recv (MICRO_EOF: the stream ended without one).\n"
            " *  The stream's end is not awaited (a Go Micro server sends\n"
            " *  none after its reply): free the stream. Any thread but the\n"
            " *  stream's loop thread. */\n"
            "int ${P}__${m}_close_and_recv(micro_stream *s, ${Out} **out);\n",
            v);
    }
    sb_tmpl(h,
        "/** In a ${E} handler: send out (borrowed) to the client, encoded\n"
        " *  for the stream's content type. Waits while the client reads\n"
        " *  slowly (flow control); callbacks run with MICRO_HANDLER_INLINE\n"
        " *  are on the loop thread, where it returns MICRO_EAGAIN instead:\n"
        " *  they use ${P}__${m}_reply_async. Any thread. Errors as\n"
        " *  micro_stream_send. */\n"
        "int ${P}__${m}_reply(micro_stream *s, const ${Out} *out);\n"
        "/** ${P}__${m}_reply without waiting: cb as\n"
        " *  micro_stream_send_async's. */\n"
        "int ${P}__${m}_reply_async(micro_stream *s, const ${Out} *out,\n"
        "    micro_stream_cb cb, void *arg);\n"
        "/** The stream endpoint ${E}: micro_stream_handler's callbacks\n"
        " *  (server.h), typed. They run in order, never concurrently, on\n"
        " *  the worker pool (on the loop thread with MICRO_HANDLER_INLINE\n"
        " *  in flags), with the Handlers' arg. msg is required (NULL: the\n"
        " *  endpoint is not registered); in is borrowed for the call. A\n"
        " *  payload that does not decode ends the stream with 400 before\n"
        " *  msg would see it. A non-zero return ends the stream with an\n"
        " *  error: micro_stream_fail's, else 500. */\n"
        "typedef struct ${T}_${M}_Handler {\n"
        "    int (*open)(micro_stream *s, void *arg); /* optional */\n"
        "    int (*msg)(micro_stream *s, const ${In} *in, void *arg);\n"
        "    /* optional: the client's side ended (rc MICRO_EOF), or the\n"
        "     * stream did (another rc); see micro_stream_handler.on_end */\n"
        "    void (*end)(micro_stream *s, int rc, void *arg);\n"
        "    void (*close)(micro_stream *s, int rc, void *arg); /* optional "
        "*/\n"
        "    /* MICRO_HANDLER_* of this endpoint, with the Handlers' flags but\n"
        "     * MICRO_HANDLER_INLINE, which a stream takes only from here:\n"
        "     * callbacks that wait in _reply must not be made inline by a\n"
        "     * flag meant for the unary handlers. */\n"
        "    unsigned flags;\n"
        "} ${T}_${M}_Handler;\n",
        v);
}

static void
gen_stream_source(sbuf *c, const tvar *v, stream_kind kind)
{
    sb_tmpl(c,
        "\nint\n${P}__${m}_stream(micro_client *c, const char *service,\n"
        "    const micro_call_opts *opts, micro_stream **s)\n{\n"
        "    return micro_proto_stream_open(c, service, \"${E}\", opts, s);\n"
        "}\n"
        "\nint\n${P}__${m}_stream_async(micro_client *c, micro_loop *loop,\n"
        "    const char *service, const micro_call_opts *opts,\n"
        "    micro_stream_open_cb cb, void *arg)\n{\n"
        "    return micro_proto_stream_open_async(c, loop, service, "
        "\"${E}\", opts,\n"
        "        cb, arg);\n}\n"
        "\nint\n${P}__${m}_send(micro_stream *s, const ${In} *in)\n{\n"
        "    return micro_proto_stream_send(s, in ? &in->base : NULL);\n}\n"
        "\nint\n${P}__${m}_send_async(micro_stream *s, const ${In} *in,\n"
        "    micro_stream_cb cb, void *arg)\n{\n"
        "    return micro_proto_stream_send_async(s, in ? &in->base : NULL, "
        "cb,\n"
        "        arg);\n}\n"
        "\nint\n${P}__${m}_recv(micro_stream *s, ${Out} **out)\n{\n"
        "    ProtobufCMessage *o = NULL;\n"
        "    int rc = micro_proto_stream_recv(s, &${OutD}, out ? &o : NULL);\n"
        "    if (out != NULL) {\n"
        "        *out = (${Out} *) o;\n"
        "    }\n"
        "    return rc;\n}\n"
        "\ntypedef struct ${P}__${m}_recv_ctx {\n"
        "    ${T}_${M}_RecvCb cb;\n"
        "    void *arg;\n"
        "} ${P}__${m}_recv_ctx;\n"
        "\nstatic void\n${P}__${m}_recv_done(void *arg, micro_stream *s, int "
        "rc,\n"
        "    const void *body, size_t len)\n{\n"
        "    ${P}__${m}_recv_ctx a = *(${P}__${m}_recv_ctx *) arg;\n"
        "    free(arg);\n"
        "    ProtobufCMessage *out = NULL;\n"
        "    if (rc == 0) {\n"
        "        rc = micro_proto_decode(micro_stream_content_type(s), "
        "&${OutD},\n"
        "            body != NULL ? body : \"\", len, &out);\n"
        "    }\n"
        "    a.cb(a.arg, s, rc, (${Out} *) out);\n}\n"
        "\nint\n${P}__${m}_recv_async(micro_stream *s, ${T}_${M}_RecvCb cb,\n"
        "    void *arg)\n{\n"
        "    if (s == NULL || cb == NULL) {\n"
        "        return MICRO_EINVAL;\n"
        "    }\n"
        "    ${P}__${m}_recv_ctx *a = malloc(sizeof(*a));\n"
        "    if (a == NULL) {\n"
        "        return MICRO_ENOMEM;\n"
        "    }\n"
        "    a->cb = cb;\n"
        "    a->arg = arg;\n"
        "    int rc = micro_stream_recv_async(s, ${P}__${m}_recv_done, a);\n"
        "    if (rc != 0) {\n"
        "        free(a);\n"
        "    }\n"
        "    return rc;\n}\n",
        v);
    if (kind == KIND_SERVER) {
        sb_tmpl(c,
            "\nint\n${P}__${m}_call_stream(micro_client *c, const char "
            "*service,\n"
            "    const ${In} *in, const micro_call_opts *opts, micro_stream "
            "**s)\n{\n"
            "    if (s == NULL) {\n"
            "        return MICRO_EINVAL;\n"
            "    }\n"
            "    *s = NULL;\n"
            "    if (in == NULL) {\n"
            "        return MICRO_EINVAL;\n"
            "    }\n"
            "    micro_stream *st = NULL;\n"
            "    int rc = micro_proto_stream_open(c, service, \"${E}\", opts, "
            "&st);\n"
            "    if (rc != 0) {\n"
            "        return rc;\n"
            "    }\n"
            "    rc = micro_proto_stream_send(st, &in->base);\n"
            "    if (rc == 0) {\n"
            "        rc = micro_stream_close_send(st);\n"
            "    }\n"
            "    /* A stream the server already ended says why on the first\n"
            "     * receive, which the caller makes anyway. */\n"
            "    if (rc != 0 && micro_stream_error(st) == NULL) {\n"
            "        micro_stream_free(st);\n"
            "        return rc;\n"
            "    }\n"
            "    *s = st;\n"
            "    return 0;\n}\n",
            v);
    }
    if (kind == KIND_CLIENT) {
        sb_tmpl(c,
            "\nint\n${P}__${m}_close_and_recv(micro_stream *s, ${Out} "
            "**out)\n{\n"
            "    if (s == NULL || out == NULL) {\n"
            "        if (out != NULL) {\n"
            "            *out = NULL;\n"
            "        }\n"
            "        return MICRO_EINVAL;\n"
            "    }\n"
            "    /* close_send fails only on a stream that ended abnormally,\n"
            "     * which the receive reports after any reply sent before. */\n"
            "    (void) micro_stream_close_send(s);\n"
            "    return ${P}__${m}_recv(s, out);\n}\n",
            v);
    }
    sb_tmpl(c,
        "\nint\n${P}__${m}_reply(micro_stream *s, const ${Out} *out)\n{\n"
        "    return micro_proto_stream_send(s, out ? &out->base : NULL);\n}\n"
        "\nint\n${P}__${m}_reply_async(micro_stream *s, const ${Out} *out,\n"
        "    micro_stream_cb cb, void *arg)\n{\n"
        "    return micro_proto_stream_send_async(s, out ? &out->base : NULL,"
        " cb,\n"
        "        arg);\n}\n"
        "\nstatic int\n${P}__${m}_on_open(micro_stream *s, void *arg)\n{\n"
        "    const ${T}_Handlers *h = arg;\n"
        "    return h->${m}.open(s, h->arg);\n}\n"
        "\nstatic int\n${P}__${m}_on_msg(micro_stream *s, const void *body, "
        "size_t len,\n"
        "    void *arg)\n{\n"
        "    const ${T}_Handlers *h = arg;\n"
        "    ProtobufCMessage *in = NULL;\n"
        "    int rc = micro_proto_stream_request(s, &${InD}, body, len, "
        "&in);\n"
        "    if (rc != 0) {\n"
        "        return rc;\n"
        "    }\n"
        "    rc = h->${m}.msg(s, (const ${In} *) in, h->arg);\n"
        "    micro_proto_free(in);\n"
        "    return rc;\n}\n"
        "\nstatic void\n${P}__${m}_on_end(micro_stream *s, int rc, void "
        "*arg)\n{\n"
        "    const ${T}_Handlers *h = arg;\n"
        "    h->${m}.end(s, rc, h->arg);\n}\n"
        "\nstatic void\n${P}__${m}_on_close(micro_stream *s, int rc, void "
        "*arg)\n{\n"
        "    const ${T}_Handlers *h = arg;\n"
        "    h->${m}.close(s, rc, h->arg);\n}\n",
        v);
}

static void
gen_stream_register(sbuf *c, const tvar *v)
{
    sb_tmpl(c,
        "    if (rc == 0 && h->${m}.msg != NULL) {\n"
        "        micro_stream_handler d = {\n"
        "            .size = sizeof(micro_stream_handler),\n"
        "            .endpoint = \"${E}\",\n"
        "            .on_open = h->${m}.open ? ${P}__${m}_on_open : NULL,\n"
        "            .on_msg = ${P}__${m}_on_msg,\n"
        "            .on_end = h->${m}.end ? ${P}__${m}_on_end : NULL,\n"
        "            .on_close = h->${m}.close ? ${P}__${m}_on_close : NULL,\n"
        "            .arg = (void *) h,\n"
        "            .flags = (h->flags & ~MICRO_HANDLER_INLINE) | "
        "h->${m}.flags,\n"
        "            .request = &${InV},\n"
        "            .response = &${OutV},\n"
        "        };\n"
        "        rc = micro_server_handle_stream(s, &d);\n"
        "    }\n",
        v);
}

/* The template variables of a method (all borrowed from x and the
 * arguments). */
#define VARS_MAX 16

static void
method_vars(tvar *v, const method_names *x, const char *P, const char *T,
    const char *in_v, const char *out_v)
{
    const tvar vars[] = {
        {"P", P},
        {"T", T},
        {"m", x->lower},
        {"M", x->m->name},
        {"E", x->endpoint},
        {"In", x->in_c},
        {"Out", x->out_c},
        {"InF", x->in->full},
        {"OutF", x->out->full},
        {"InD", x->in_desc},
        {"OutD", x->out_desc},
        {"InV", in_v},
        {"OutV", out_v},
        {NULL, NULL},
    };
    _Static_assert(sizeof(vars) / sizeof(vars[0]) <= VARS_MAX, "VARS_MAX");
    memcpy(v, vars, sizeof(vars));
}

static void
gen_service(sbuf *h, sbuf *c, const FileProto *file, const SvcProto *svc)
{
    sbuf full = {0};
    if (file->package != NULL && file->package[0] != '\0') {
        sb_printf(&full, "%s.", file->package);
    }
    sb_printf(&full, "%s", svc->name);
    char *T = c_name(full.p, false); /* My__Pkg__Greeter */
    char *P = c_name(full.p, true);  /* my__pkg__greeter */
    method_names *ms = calloc(svc->n_method + 1, sizeof(*ms));
    if (ms == NULL) {
        die("out of memory");
    }
    for (size_t i = 0; i < svc->n_method; i++) {
        const MethodProto *m = svc->method[i];
        method_names *x = &ms[i];
        x->m = m;
        x->stream = m->client_streaming || m->server_streaming;
        x->kind = kind_of(m);
        sbuf l = {0};
        camel_to_lower(&l, m->name, strlen(m->name));
        x->lower = l.p;
        sbuf e = {0};
        sb_printf(&e, "%s.%s", svc->name, m->name);
        x->endpoint = e.p;
        x->in = find_type(m->input_type);
        x->out = find_type(m->output_type);
        if (x->in == NULL || x->out == NULL) {
            die("a method's input or output type is not in the request");
        }
        char *fi = full_of(x->in);
        char *fo = full_of(x->out);
        x->in_c = c_name(fi, false);
        x->out_c = c_name(fo, false);
        char *li = c_name(fi, true);
        char *lo = c_name(fo, true);
        sbuf di = {0};
        sbuf dd = {0};
        sb_printf(&di, "%s__descriptor", li);
        sb_printf(&dd, "%s__descriptor", lo);
        x->in_desc = di.p;
        x->out_desc = dd.p;
        free(fi);
        free(fo);
        free(li);
        free(lo);
    }

    /* --- header --- */
    sb_printf(h, "\n/* ---- service %s (endpoints \"%s.<Method>\") ---- */\n",
        full.p, svc->name);
    for (size_t i = 0; i < svc->n_method; i++) {
        method_names *x = &ms[i];
        if (x->stream) {
            tvar v[VARS_MAX];
            method_vars(v, x, P, T, "", "");
            gen_stream_header(h, v, x->kind);
            continue;
        }
        sb_printf(h,
            "\n/* %s.%s: %s -> %s */\n"
            "/** Call %s.%s on service (the registry name, e.g. \"greeter\").\n"
            " *  Content type: opts->content_type, default application/"
            "protobuf.\n"
            " *  On success *out is the reply (free with micro_proto_free(&"
            "(*out)->base)).\n"
            " *  *call (may be NULL) as for micro_client_call. Blocks; any "
            "thread. */\n"
            "int %s__%s_call(micro_client *c, const char *service,\n"
            "    const %s *in, %s **out, const micro_call_opts *opts,\n"
            "    micro_call **call);\n"
            "/** Completion: out (or NULL) and call are the callback's to "
            "free. */\n"
            "typedef void (*%s_%s_Cb)(void *arg, int rc, %s *out,\n"
            "    micro_call *call);\n"
            "/** Asynchronous call: cb runs once on loop's thread iff 0 is "
            "returned. */\n"
            "int %s__%s_call_async(micro_client *c, micro_loop *loop,\n"
            "    const char *service, const %s *in, const micro_call_opts "
            "*opts,\n"
            "    %s_%s_Cb cb, void *arg);\n"
            "/** In a %s handler: reply with out (borrowed), encoded for "
            "the\n"
            " *  request's content type. */\n"
            "int %s__%s_reply(const micro_request *req, micro_response *rsp,\n"
            "    const %s *out);\n"
            "/** The handler: in is borrowed for the call. Reply with\n"
            " *  %s__%s_reply (no reply: the default %s), or return\n"
            " *  micro_response_error(...). */\n"
            "typedef int (*%s_%s_Fn)(micro_request *req, const %s *in,\n"
            "    micro_response *rsp, void *arg);\n",
            svc->name, x->m->name, x->in->full, x->out->full, svc->name,
            x->m->name, P, x->lower, x->in_c, x->out_c, T, x->m->name,
            x->out_c, P, x->lower, x->in_c, T, x->m->name, x->m->name, P,
            x->lower, x->out_c, P, x->lower, x->out_c, T, x->m->name,
            x->in_c);
    }
    sb_printf(h,
        "\n/** The handlers of %s; NULL members (streams: a NULL .msg) are\n"
        " *  not registered. */\n"
        "typedef struct %s_Handlers {\n",
        svc->name, T);
    for (size_t i = 0; i < svc->n_method; i++) {
        if (!ms[i].stream) {
            sb_printf(h, "    %s_%s_Fn %s;\n", T, ms[i].m->name,
                ms[i].lower);
        } else {
            sb_printf(h, "    %s_%s_Handler %s; /* a stream */\n", T,
                ms[i].m->name, ms[i].lower);
        }
    }
    sb_printf(h,
        "    void *arg;      /* passed to every handler */\n"
        "    unsigned flags; /* MICRO_HANDLER_* for every endpoint (streams:\n"
        "                       see their own flags) */\n"
        "} %s_Handlers;\n"
        "/** Register the endpoints \"%s.<Method>\" of h on s, with their\n"
        " *  registry descriptions. h is borrowed for the server's life.\n"
        " *  Before start. Errors as micro_server_handle (and\n"
        " *  micro_server_handle_stream). */\n"
        "int %s__register(micro_server *s, const %s_Handlers *h);\n",
        T, svc->name, P, T);

    /* --- source --- */
    sb_printf(c, "\n/* ---- service %s ---- */\n", full.p);
    for (size_t i = 0; i < svc->n_method; i++) {
        method_names *x = &ms[i];
        if (x->stream) {
            tvar v[VARS_MAX];
            method_vars(v, x, P, T, "", "");
            gen_stream_source(c, v, x->kind);
            continue;
        }
        sb_printf(c,
            "\nint\n%s__%s_call(micro_client *c, const char *service,\n"
            "    const %s *in, %s **out, const micro_call_opts *opts,\n"
            "    micro_call **call)\n{\n"
            "    ProtobufCMessage *o = NULL;\n"
            "    int rc = micro_proto_call(c, service, \"%s.%s\",\n"
            "        in ? &in->base : NULL, &%s, out ? &o : NULL, opts, "
            "call);\n"
            "    if (out != NULL) {\n"
            "        *out = (%s *) o;\n"
            "    }\n"
            "    return rc;\n}\n",
            P, x->lower, x->in_c, x->out_c, svc->name, x->m->name,
            x->out_desc, x->out_c);
        sb_printf(c,
            "\ntypedef struct %s__%s_async {\n"
            "    %s_%s_Cb cb;\n"
            "    void *arg;\n"
            "} %s__%s_async;\n"
            "\nstatic void\n%s__%s_done(void *arg, int rc, ProtobufCMessage "
            "*out,\n    micro_call *call)\n{\n"
            "    %s__%s_async a = *(%s__%s_async *) arg;\n"
            "    free(arg);\n"
            "    a.cb(a.arg, rc, (%s *) out, call);\n}\n"
            "\nint\n%s__%s_call_async(micro_client *c, micro_loop *loop,\n"
            "    const char *service, const %s *in, const micro_call_opts "
            "*opts,\n"
            "    %s_%s_Cb cb, void *arg)\n{\n"
            "    if (cb == NULL || in == NULL) {\n"
            "        return MICRO_EINVAL;\n"
            "    }\n"
            "    %s__%s_async *a = malloc(sizeof(*a));\n"
            "    if (a == NULL) {\n"
            "        return MICRO_ENOMEM;\n"
            "    }\n"
            "    a->cb = cb;\n"
            "    a->arg = arg;\n"
            "    int rc = micro_proto_call_async(c, loop, service, \"%s.%s\",\n"
            "        &in->base, &%s, opts, %s__%s_done, a);\n"
            "    if (rc != 0) {\n"
            "        free(a);\n"
            "    }\n"
            "    return rc;\n}\n",
            P, x->lower, T, x->m->name, P, x->lower, P, x->lower, P,
            x->lower, P, x->lower, x->out_c, P, x->lower, x->in_c, T,
            x->m->name, P, x->lower, svc->name, x->m->name, x->out_desc, P,
            x->lower);
        sb_printf(c,
            "\nint\n%s__%s_reply(const micro_request *req, micro_response "
            "*rsp,\n    const %s *out)\n{\n"
            "    return micro_proto_reply(req, rsp, out ? &out->base : "
            "NULL);\n}\n"
            "\nstatic int\n%s__%s_serve(micro_request *req, micro_response "
            "*rsp, void *arg)\n{\n"
            "    const %s_Handlers *h = arg;\n"
            "    ProtobufCMessage *in = NULL;\n"
            "    int rc = micro_proto_request(req, rsp, &%s, &in);\n"
            "    if (rc != 0) {\n"
            "        return rc;\n"
            "    }\n"
            "    rc = h->%s(req, (const %s *) in, rsp, h->arg);\n"
            "    micro_proto_free(in);\n"
            "    return rc;\n}\n",
            P, x->lower, x->out_c, P, x->lower, T, x->in_desc, x->lower,
            x->in_c);
    }
    /* Registry descriptions, then the registration. */
    sb_printf(c, "\n");
    char **in_v = calloc(svc->n_method + 1, sizeof(char *));
    char **out_v = calloc(svc->n_method + 1, sizeof(char *));
    if (in_v == NULL || out_v == NULL) {
        die("out of memory");
    }
    for (size_t i = 0; i < svc->n_method; i++) {
        in_v[i] = emit_root(c, ms[i].in);
        out_v[i] = emit_root(c, ms[i].out);
    }
    sb_printf(c,
        "\nint\n%s__register(micro_server *s, const %s_Handlers *h)\n{\n"
        "    if (s == NULL || h == NULL) {\n"
        "        return MICRO_EINVAL;\n"
        "    }\n"
        "    int rc = 0;\n",
        P, T);
    for (size_t i = 0; i < svc->n_method; i++) {
        method_names *x = &ms[i];
        if (x->stream) {
            tvar v[VARS_MAX];
            method_vars(v, x, P, T, in_v[i], out_v[i]);
            gen_stream_register(c, v);
            continue;
        }
        sb_printf(c,
            "    if (rc == 0 && h->%s != NULL) {\n"
            "        micro_handler_desc d = {\n"
            "            .size = sizeof(micro_handler_desc),\n"
            "            .endpoint = \"%s.%s\",\n"
            "            .fn = %s__%s_serve,\n"
            "            .arg = (void *) h,\n"
            "            .request = &%s,\n"
            "            .response = &%s,\n"
            "            .flags = h->flags,\n"
            "        };\n"
            "        rc = micro_server_handle(s, &d);\n"
            "    }\n",
            x->lower, svc->name, x->m->name, P, x->lower, in_v[i],
            out_v[i]);
    }
    sb_printf(c, "    return rc;\n}\n");

    for (size_t i = 0; i < svc->n_method; i++) {
        free(in_v[i]);
        free(out_v[i]);
        free(ms[i].lower);
        free(ms[i].endpoint);
        free(ms[i].in_c);
        free(ms[i].out_c);
        free(ms[i].in_desc);
        free(ms[i].out_desc);
    }
    free(in_v);
    free(out_v);
    free(ms);
    free(T);
    free(P);
    free(full.p);
}

static void
gen_file(const FileProto *file,
    Google__Protobuf__Compiler__CodeGeneratorResponse__File **hf,
    Google__Protobuf__Compiler__CodeGeneratorResponse__File **cf)
{
    char *base = strip_proto(file->name);
    char *guard = guard_of(base);
    sbuf h = {0};
    sbuf c = {0};
    sb_printf(&h,
        "/* Code generated by protoc-gen-cmicro. DO NOT EDIT.\n"
        " * source: %s */\n"
        "#ifndef %s\n#define %s\n\n"
        "#include <cmicro/micro.h>\n"
        "#include <protobuf-c/protobuf-c.h>\n\n"
        "#include \"%s.pb-c.h\"\n\n"
        "#ifdef __cplusplus\nextern \"C\" {\n#endif\n",
        file->name, guard, guard, base);
    const char *slash = strrchr(base, '/');
    sb_printf(&c,
        "/* Code generated by protoc-gen-cmicro. DO NOT EDIT.\n"
        " * source: %s */\n"
        "#include <stdlib.h>\n\n"
        "#include \"%s.micro.h\"\n",
        file->name, slash ? slash + 1 : base);
    if (file->n_service == 0) {
        sb_printf(&h, "\n/* %s declares no services. */\n", file->name);
        sb_printf(&c,
            "\n/* %s declares no services; this unit is empty. */\n"
            "typedef int cmicro_gen_empty_unit;\n",
            file->name);
    }
    for (size_t i = 0; i < file->n_service; i++) {
        gen_service(&h, &c, file, file->service[i]);
    }
    sb_printf(&h, "\n#ifdef __cplusplus\n}\n#endif\n#endif\n");

    *hf = calloc(1, sizeof(**hf));
    *cf = calloc(1, sizeof(**cf));
    if (*hf == NULL || *cf == NULL) {
        die("out of memory");
    }
    google__protobuf__compiler__code_generator_response__file__init(*hf);
    google__protobuf__compiler__code_generator_response__file__init(*cf);
    sbuf hn = {0};
    sbuf cn = {0};
    sb_printf(&hn, "%s.micro.h", base);
    sb_printf(&cn, "%s.micro.c", base);
    (*hf)->name = hn.p;
    (*hf)->content = h.p;
    (*cf)->name = cn.p;
    (*cf)->content = c.p;
    free(base);
    free(guard);
}

int
main(void)
{
    sbuf in = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        sb_put(&in, chunk, n);
    }
    Google__Protobuf__Compiler__CodeGeneratorRequest *req =
        google__protobuf__compiler__code_generator_request__unpack(NULL,
            in.len, (const uint8_t *) (in.p ? in.p : ""));
    if (req == NULL) {
        die("cannot decode the CodeGeneratorRequest on stdin "
            "(run me from protoc: --plugin=protoc-gen-cmicro=...)");
    }
    for (size_t i = 0; i < req->n_proto_file; i++) {
        const FileProto *f = req->proto_file[i];
        for (size_t j = 0; j < f->n_message_type; j++) {
            add_type(f->package, NULL, f->message_type[j]->name,
                f->message_type[j], NULL);
        }
        for (size_t j = 0; j < f->n_enum_type; j++) {
            add_type(f->package, NULL, f->enum_type[j]->name, NULL,
                f->enum_type[j]);
        }
    }
    Google__Protobuf__Compiler__CodeGeneratorResponse rsp =
        GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
    rsp.has_supported_features = 1;
    rsp.supported_features =
        GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
    rsp.n_file = 0;
    rsp.file = calloc(2 * req->n_file_to_generate + 1, sizeof(*rsp.file));
    if (rsp.file == NULL) {
        die("out of memory");
    }
    for (size_t i = 0; i < req->n_file_to_generate; i++) {
        const FileProto *f = NULL;
        for (size_t j = 0; j < req->n_proto_file; j++) {
            if (strcmp(req->proto_file[j]->name, req->file_to_generate[i]) ==
                0) {
                f = req->proto_file[j];
            }
        }
        if (f == NULL) {
            die("a file to generate is missing from the request");
        }
        gen_file(f, &rsp.file[rsp.n_file], &rsp.file[rsp.n_file + 1]);
        rsp.n_file += 2;
    }
    size_t len = google__protobuf__compiler__code_generator_response__get_packed_size(&rsp);
    uint8_t *outb = malloc(len ? len : 1);
    if (outb == NULL) {
        die("out of memory");
    }
    google__protobuf__compiler__code_generator_response__pack(&rsp, outb);
    if (fwrite(outb, 1, len, stdout) != len || fflush(stdout) != 0) {
        die("cannot write the response");
    }
    return 0;
}
