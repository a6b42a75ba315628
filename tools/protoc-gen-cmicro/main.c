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
 *     struct P_Handlers { m; ...; arg; flags; }     typed handler table
 *     int P__register(server, &handlers)    registers every endpoint
 *
 * Endpoints are "S.M" as in Go Micro, and each registration carries the
 * request/response descriptions Go Micro's reflection would advertise for
 * protoc-gen-go types (field names from json tags, Go type names, three
 * levels deep). Streaming methods are listed in comments and not
 * registered until cmicro has streams.
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

typedef struct method_names {
    const MethodProto *m;
    bool stream;
    char *lower; /* do_thing */
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
        sbuf l = {0};
        camel_to_lower(&l, m->name, strlen(m->name));
        x->lower = l.p;
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
            sb_printf(h,
                "/* %s.%s streams (%s%s): no stub until cmicro has "
                "streams. */\n",
                svc->name, x->m->name,
                x->m->client_streaming ? "client" : "",
                x->m->client_streaming && x->m->server_streaming
                    ? "+server"
                    : (x->m->server_streaming ? "server" : ""));
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
        "\n/** The handlers of %s; NULL members are not registered. */\n"
        "typedef struct %s_Handlers {\n",
        svc->name, T);
    for (size_t i = 0; i < svc->n_method; i++) {
        if (!ms[i].stream) {
            sb_printf(h, "    %s_%s_Fn %s;\n", T, ms[i].m->name,
                ms[i].lower);
        }
    }
    sb_printf(h,
        "    void *arg;      /* passed to every handler */\n"
        "    unsigned flags; /* MICRO_HANDLER_* for every endpoint */\n"
        "} %s_Handlers;\n"
        "/** Register the endpoints \"%s.<Method>\" of h on s, with their\n"
        " *  registry descriptions. h is borrowed for the server's life.\n"
        " *  Before start. Errors as micro_server_handle. */\n"
        "int %s__register(micro_server *s, const %s_Handlers *h);\n",
        T, svc->name, P, T);

    /* --- source --- */
    sb_printf(c, "\n/* ---- service %s ---- */\n", full.p);
    for (size_t i = 0; i < svc->n_method; i++) {
        method_names *x = &ms[i];
        if (x->stream) {
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
        if (!ms[i].stream) {
            in_v[i] = emit_root(c, ms[i].in);
            out_v[i] = emit_root(c, ms[i].out);
        }
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
            continue;
        }
        sb_printf(c,
            "    if (rc == 0 && h->%s != NULL) {\n"
            "        micro_handler_desc d = {\"%s.%s\", %s__%s_serve, "
            "(void *) h,\n"
            "            &%s, &%s, h->flags};\n"
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
