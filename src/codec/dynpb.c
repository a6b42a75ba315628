/*
 * Dynamic protobuf types (dynpb.h): protobuf-c message and enum
 * descriptors built at run time from a binary FileDescriptorSet.
 *
 * The set is read with a small wire reader (only the descriptor.proto
 * fields that shape a message's encoding), then each message gets a
 * synthetic struct layout that follows protobuf-c-compiler's rules, so
 * protobuf-c's pack/unpack and pbjson treat it exactly like generated code:
 *
 *   repeated          size_t n_x; T *x;
 *   proto2 optional / proto3 `optional` scalar (not string or message)
 *                     protobuf_c_boolean has_x; T x;
 *   oneof o           uint32_t o_case; one 16-byte slot shared by members
 *   anything else     T x;
 *
 * Everything a set owns lives in one allocation list, freed at once.
 */
#include "codec/proto_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "cmicro/dynpb.h"

/* descriptor.proto FieldDescriptorProto.Type and .Label. */
enum {
    T_DOUBLE = 1,
    T_FLOAT,
    T_INT64,
    T_UINT64,
    T_INT32,
    T_FIXED64,
    T_FIXED32,
    T_BOOL,
    T_STRING,
    T_GROUP,
    T_MESSAGE,
    T_BYTES,
    T_UINT32,
    T_ENUM,
    T_SFIXED32,
    T_SFIXED64,
    T_SINT32,
    T_SINT64
};
enum { L_OPTIONAL = 1, L_REQUIRED, L_REPEATED };

/* ------------------------------------------------------------------ */
/* The model read from the set.                                        */

typedef struct dyn_field {
    const char *name;
    int32_t number;
    int label;
    int type;
    const char *type_name;
    const char *default_value; /* NULL: none */
    int32_t oneof_index;       /* -1: none */
    bool proto3_optional;
    int packed; /* -1: not said */
} dyn_field;

typedef struct dyn_msg {
    const char *full_name;
    const char *short_name;
    const char *package;
    bool proto3;
    dyn_field *fields;
    size_t n_fields, cap_fields;
    size_t n_oneofs;
    ProtobufCMessageDescriptor desc;
} dyn_msg;

typedef struct dyn_enum {
    const char *full_name;
    const char *short_name;
    const char *package;
    ProtobufCEnumValue *raw; /* as declared (aliases included) */
    size_t n_raw, cap_raw;
    ProtobufCEnumDescriptor desc;
} dyn_enum;

typedef struct dyn_method {
    const char *name;
    const char *input;
    const char *output;
    bool cs, ss;
} dyn_method;

typedef struct dyn_service {
    const char *full_name;
    const char *name;
    dyn_method *methods;
    size_t n_methods, cap_methods;
} dyn_service;

typedef struct chunk {
    struct chunk *next;
    max_align_t data[];
} chunk;

struct micro_proto_dyn {
    chunk *chunks;
    dyn_msg **msgs;
    size_t n_msgs, cap_msgs;
    dyn_enum **enums;
    size_t n_enums, cap_enums;
    dyn_service **svcs;
    size_t n_svcs, cap_svcs;
    const char **files;
    size_t n_files, cap_files;
    /* While loading. */
    char *err;
    size_t cap;
    int rc;
};

static void *
dalloc(micro_proto_dyn *d, size_t n)
{
    chunk *c = micro__calloc(1, sizeof(chunk) + (n != 0 ? n : 1));
    if (c == NULL) {
        d->rc = MICRO_ENOMEM;
        return NULL;
    }
    c->next = d->chunks;
    d->chunks = c;
    return c->data;
}

/* Make room for one more element in *arr (cap doubles; the old block
 * stays in the chunk list until the set is freed). */
static bool
dgrow(micro_proto_dyn *d, void **arr, size_t *cap, size_t n, size_t elt)
{
    if (n < *cap) {
        return true;
    }
    size_t nc = *cap != 0 ? *cap * 2 : 8;
    void *p = dalloc(d, nc * elt);
    if (p == NULL) {
        return false;
    }
    if (n != 0) {
        memcpy(p, *arr, n * elt);
    }
    *arr = p;
    *cap = nc;
    return true;
}

#define DPUSH(d, arr, n, cap)                                                 \
    (dgrow((d), (void **) &(arr), &(cap), (n), sizeof(*(arr)))                \
            ? &(arr)[(n)++]                                                    \
            : NULL)

static char *
dstrn(micro_proto_dyn *d, const char *s, size_t n)
{
    char *p = dalloc(d, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static char *
djoin(micro_proto_dyn *d, const char *a, const char *b)
{
    if (a == NULL || *a == '\0') {
        return dstrn(d, b, strlen(b));
    }
    size_t la = strlen(a), lb = strlen(b);
    char *p = dalloc(d, la + lb + 2);
    if (p != NULL) {
        memcpy(p, a, la);
        p[la] = '.';
        memcpy(p + la + 1, b, lb + 1);
    }
    return p;
}

static int
fail(micro_proto_dyn *d, const char *what, const char *detail)
{
    micro__pb_err(d->err, d->cap, "descriptor set: %s%s%s", what,
        detail != NULL ? ": " : "", detail != NULL ? detail : "");
    d->rc = MICRO_ECODEC;
    return MICRO_ECODEC;
}

/* ------------------------------------------------------------------ */
/* Wire reader.                                                        */

typedef struct rd {
    const uint8_t *p, *end;
} rd;

typedef struct wfield {
    uint32_t num;
    int wt;
    uint64_t v;       /* varint, fixed32 and fixed64 values */
    const uint8_t *s; /* length-delimited span */
    size_t len;
} wfield;

static bool
rd_varint(rd *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < 10; i++) {
        if (r->p == r->end) {
            return false;
        }
        uint8_t b = *r->p++;
        v |= (uint64_t) (b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* Next field of r into *f: 1, 0 at the end, -1 when malformed. */
static int
rd_next(rd *r, wfield *f)
{
    if (r->p == r->end) {
        return 0;
    }
    uint64_t tag;
    if (!rd_varint(r, &tag) || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX) {
        return -1;
    }
    f->num = (uint32_t) (tag >> 3);
    f->wt = (int) (tag & 7);
    f->s = NULL;
    f->len = 0;
    switch (f->wt) {
    case 0:
        return rd_varint(r, &f->v) ? 1 : -1;
    case 1:
    case 5: {
        size_t n = f->wt == 1 ? 8 : 4;
        if ((size_t) (r->end - r->p) < n) {
            return -1;
        }
        f->v = 0;
        for (size_t i = 0; i < n; i++) {
            f->v |= (uint64_t) r->p[i] << (8 * i);
        }
        r->p += n;
        return 1;
    }
    case 2: {
        uint64_t n;
        if (!rd_varint(r, &n) || n > (uint64_t) (r->end - r->p)) {
            return -1;
        }
        f->s = r->p;
        f->len = (size_t) n;
        r->p += n;
        return 1;
    }
    default:
        return -1; /* groups (3, 4) and reserved types */
    }
}

static rd
rd_of(const wfield *f)
{
    rd r = {f->s, f->s + f->len};
    return r;
}

/* A string field into the arena (or NULL and d->rc set). */
static const char *
wstr(micro_proto_dyn *d, const wfield *f, const char *what)
{
    if (f->wt != 2) {
        fail(d, what, "not a string");
        return NULL;
    }
    if (memchr(f->s, '\0', f->len) != NULL) {
        fail(d, what, "string contains NUL");
        return NULL;
    }
    return dstrn(d, (const char *) f->s, f->len);
}

#define WANT(d, f, type, what)                                                \
    do {                                                                       \
        if ((f).wt != (type)) {                                                \
            return fail((d), (what), "wrong wire type");                       \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------ */
/* Parsing the set.                                                    */

static int
parse_enum(micro_proto_dyn *d, const wfield *span, const char *prefix,
    const char *pkg)
{
    dyn_enum *e = dalloc(d, sizeof(*e));
    dyn_enum **slot = e ? DPUSH(d, d->enums, d->n_enums, d->cap_enums) : NULL;
    if (slot == NULL) {
        return d->rc;
    }
    *slot = e;
    e->package = pkg;
    rd r = rd_of(span);
    wfield f;
    int k;
    while ((k = rd_next(&r, &f)) > 0) {
        if (f.num == 1) {
            if ((e->short_name = wstr(d, &f, "enum name")) == NULL) {
                return d->rc;
            }
        } else if (f.num == 2) {
            WANT(d, f, 2, "enum value");
            ProtobufCEnumValue *v = DPUSH(d, e->raw, e->n_raw, e->cap_raw);
            if (v == NULL) {
                return d->rc;
            }
            memset(v, 0, sizeof(*v));
            rd vr = rd_of(&f);
            wfield g;
            int j;
            while ((j = rd_next(&vr, &g)) > 0) {
                if (g.num == 1) {
                    if ((v->name = wstr(d, &g, "enum value name")) == NULL) {
                        return d->rc;
                    }
                    v->c_name = v->name;
                } else if (g.num == 2) {
                    WANT(d, g, 0, "enum value number");
                    v->value = (int) (int32_t) (uint32_t) g.v;
                }
            }
            if (j < 0 || v->name == NULL) {
                return fail(d, "malformed enum value", NULL);
            }
        }
    }
    if (k < 0 || e->short_name == NULL) {
        return fail(d, "malformed enum", prefix);
    }
    e->full_name = djoin(d, prefix, e->short_name);
    return e->full_name != NULL ? 0 : d->rc;
}

static int
parse_field(micro_proto_dyn *d, dyn_msg *m, const wfield *span)
{
    dyn_field *fd = DPUSH(d, m->fields, m->n_fields, m->cap_fields);
    if (fd == NULL) {
        return d->rc;
    }
    memset(fd, 0, sizeof(*fd));
    fd->oneof_index = -1;
    fd->packed = -1;
    rd r = rd_of(span);
    wfield f;
    int k;
    while ((k = rd_next(&r, &f)) > 0) {
        switch (f.num) {
        case 1:
            if ((fd->name = wstr(d, &f, "field name")) == NULL) {
                return d->rc;
            }
            break;
        case 3:
            WANT(d, f, 0, "field number");
            fd->number = (int32_t) (uint32_t) f.v;
            break;
        case 4:
            WANT(d, f, 0, "field label");
            fd->label = (int) (uint32_t) f.v;
            break;
        case 5:
            WANT(d, f, 0, "field type");
            fd->type = (int) (uint32_t) f.v;
            break;
        case 6:
            if ((fd->type_name = wstr(d, &f, "field type_name")) == NULL) {
                return d->rc;
            }
            break;
        case 7:
            if ((fd->default_value = wstr(d, &f, "default_value")) == NULL) {
                return d->rc;
            }
            break;
        case 8: { /* FieldOptions: packed = 2 */
            WANT(d, f, 2, "field options");
            rd o = rd_of(&f);
            wfield g;
            int j;
            while ((j = rd_next(&o, &g)) > 0) {
                if (g.num == 2 && g.wt == 0) {
                    fd->packed = g.v != 0;
                }
            }
            if (j < 0) {
                return fail(d, "malformed field options", fd->name);
            }
            break;
        }
        case 9:
            WANT(d, f, 0, "oneof_index");
            fd->oneof_index = (int32_t) (uint32_t) f.v;
            break;
        case 17:
            WANT(d, f, 0, "proto3_optional");
            fd->proto3_optional = f.v != 0;
            break;
        default:
            break;
        }
    }
    if (k < 0 || fd->name == NULL) {
        return fail(d, "malformed field in", m->full_name);
    }
    return 0;
}


static int
parse_msg(micro_proto_dyn *d, const wfield *span, const char *prefix,
    const char *pkg, bool proto3, int depth)
{
    if (depth > MICRO_PROTO_MAX_DEPTH) {
        return fail(d, "messages nested too deeply", prefix);
    }
    dyn_msg *m = dalloc(d, sizeof(*m));
    dyn_msg **slot = m ? DPUSH(d, d->msgs, d->n_msgs, d->cap_msgs) : NULL;
    if (slot == NULL) {
        return d->rc;
    }
    *slot = m;
    m->package = pkg;
    m->proto3 = proto3;
    /* Pass 1: the name (nested types need it). */
    rd r = rd_of(span);
    wfield f;
    int k;
    while ((k = rd_next(&r, &f)) > 0) {
        if (f.num == 1 &&
            (m->short_name = wstr(d, &f, "message name")) == NULL) {
            return d->rc;
        }
    }
    if (k < 0 || m->short_name == NULL) {
        return fail(d, "malformed message in", prefix);
    }
    if ((m->full_name = djoin(d, prefix, m->short_name)) == NULL) {
        return d->rc;
    }
    r = rd_of(span);
    while (rd_next(&r, &f) > 0) {
        int rc = 0;
        switch (f.num) {
        case 2:
            WANT(d, f, 2, "field");
            rc = parse_field(d, m, &f);
            break;
        case 3:
            WANT(d, f, 2, "nested message");
            rc = parse_msg(d, &f, m->full_name, pkg, proto3, depth + 1);
            break;
        case 4:
            WANT(d, f, 2, "nested enum");
            rc = parse_enum(d, &f, m->full_name, pkg);
            break;
        case 8:
            WANT(d, f, 2, "oneof");
            m->n_oneofs++;
            break;
        default:
            break;
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
parse_service(micro_proto_dyn *d, const wfield *span, const char *pkg)
{
    dyn_service *s = dalloc(d, sizeof(*s));
    dyn_service **slot = s ? DPUSH(d, d->svcs, d->n_svcs, d->cap_svcs) : NULL;
    if (slot == NULL) {
        return d->rc;
    }
    *slot = s;
    rd r = rd_of(span);
    wfield f;
    int k;
    while ((k = rd_next(&r, &f)) > 0) {
        if (f.num == 1) {
            if ((s->name = wstr(d, &f, "service name")) == NULL) {
                return d->rc;
            }
        } else if (f.num == 2) {
            WANT(d, f, 2, "method");
            dyn_method *mt = DPUSH(d, s->methods, s->n_methods,
                s->cap_methods);
            if (mt == NULL) {
                return d->rc;
            }
            memset(mt, 0, sizeof(*mt));
            rd mr = rd_of(&f);
            wfield g;
            int j;
            while ((j = rd_next(&mr, &g)) > 0) {
                const char **dst = g.num == 1 ? &mt->name
                    : g.num == 2              ? &mt->input
                    : g.num == 3              ? &mt->output
                                              : NULL;
                if (dst != NULL) {
                    if ((*dst = wstr(d, &g, "method")) == NULL) {
                        return d->rc;
                    }
                } else if (g.num == 5 && g.wt == 0) {
                    mt->cs = g.v != 0;
                } else if (g.num == 6 && g.wt == 0) {
                    mt->ss = g.v != 0;
                }
            }
            if (j < 0 || mt->name == NULL || mt->input == NULL ||
                mt->output == NULL) {
                return fail(d, "malformed method", s->name);
            }
        }
    }
    if (k < 0 || s->name == NULL) {
        return fail(d, "malformed service", NULL);
    }
    s->full_name = djoin(d, pkg, s->name);
    return s->full_name != NULL ? 0 : d->rc;
}

static int
parse_file(micro_proto_dyn *d, const wfield *span)
{
    /* Pass 1: name, package and syntax (they follow the types on the
     * wire, and the types need them). */
    const char *name = NULL;
    const char *pkg = "";
    bool proto3 = false;
    rd r = rd_of(span);
    wfield f;
    int k;
    while ((k = rd_next(&r, &f)) > 0) {
        if (f.num == 1) {
            if ((name = wstr(d, &f, "file name")) == NULL) {
                return d->rc;
            }
        } else if (f.num == 2) {
            if ((pkg = wstr(d, &f, "package")) == NULL) {
                return d->rc;
            }
        } else if (f.num == 12) {
            WANT(d, f, 2, "syntax");
            proto3 = f.len == 6 && memcmp(f.s, "proto3", 6) == 0;
        }
    }
    if (k < 0) {
        return fail(d, "malformed FileDescriptorProto", name);
    }
    if (name != NULL) {
        for (size_t i = 0; i < d->n_files; i++) {
            if (strcmp(d->files[i], name) == 0) {
                return 0;
            }
        }
        const char **slot = DPUSH(d, d->files, d->n_files, d->cap_files);
        if (slot == NULL) {
            return d->rc;
        }
        *slot = name;
    }
    r = rd_of(span);
    while (rd_next(&r, &f) > 0) {
        int rc = 0;
        switch (f.num) {
        case 4:
            WANT(d, f, 2, "message_type");
            rc = parse_msg(d, &f, pkg, pkg, proto3, 0);
            break;
        case 5:
            WANT(d, f, 2, "enum_type");
            rc = parse_enum(d, &f, pkg, pkg);
            break;
        case 6:
            WANT(d, f, 2, "service");
            rc = parse_service(d, &f, pkg);
            break;
        default:
            break;
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Lookup.                                                             */

static int
cmp_msg(const void *a, const void *b)
{
    return strcmp((*(dyn_msg *const *) a)->full_name,
        (*(dyn_msg *const *) b)->full_name);
}

static int
cmp_enum(const void *a, const void *b)
{
    return strcmp((*(dyn_enum *const *) a)->full_name,
        (*(dyn_enum *const *) b)->full_name);
}

static dyn_msg *
find_msg(const micro_proto_dyn *d, const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    if (*name == '.') {
        name++;
    }
    dyn_msg key = {.full_name = name};
    dyn_msg *kp = &key;
    dyn_msg **hit = d->n_msgs == 0
        ? NULL
        : bsearch(&kp, d->msgs, d->n_msgs, sizeof(*d->msgs), cmp_msg);
    return hit != NULL ? *hit : NULL;
}

static dyn_enum *
find_enum(const micro_proto_dyn *d, const char *name)
{
    if (name == NULL) {
        return NULL;
    }
    if (*name == '.') {
        name++;
    }
    dyn_enum key = {.full_name = name};
    dyn_enum *kp = &key;
    dyn_enum **hit = d->n_enums == 0
        ? NULL
        : bsearch(&kp, d->enums, d->n_enums, sizeof(*d->enums), cmp_enum);
    return hit != NULL ? *hit : NULL;
}

/* ------------------------------------------------------------------ */
/* Building protobuf-c descriptors.                                    */

typedef struct name_idx {
    const char *name;
    unsigned idx;
    int value;
} name_idx;

static int
cmp_name_idx(const void *a, const void *b)
{
    const name_idx *x = a;
    const name_idx *y = b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int
cmp_value_idx(const void *a, const void *b)
{
    const name_idx *x = a;
    const name_idx *y = b;
    if (x->value != y->value) {
        return x->value < y->value ? -1 : 1;
    }
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Ranges of consecutive numbers in sorted nums[0..n), with protobuf-c's
 * sentinel {0, n} after them. */
static ProtobufCIntRange *
ranges_of(micro_proto_dyn *d, const int *nums, size_t n, unsigned *n_out)
{
    ProtobufCIntRange *r = dalloc(d, (n + 1) * sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    unsigned k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || nums[i] != nums[i - 1] + 1) {
            r[k].start_value = nums[i];
            r[k].orig_index = (int) i;
            k++;
        }
    }
    r[k].start_value = 0;
    r[k].orig_index = (int) n;
    *n_out = k;
    return r;
}

static int
build_enum(micro_proto_dyn *d, dyn_enum *e)
{
    size_t n = e->n_raw;
    name_idx *by = dalloc(d, (n + 1) * sizeof(*by));
    ProtobufCEnumValue *vals = dalloc(d, (n + 1) * sizeof(*vals));
    int *nums = dalloc(d, (n + 1) * sizeof(*nums));
    ProtobufCEnumValueIndex *names = dalloc(d, (n + 1) * sizeof(*names));
    if (by == NULL || vals == NULL || nums == NULL || names == NULL) {
        return d->rc;
    }
    for (size_t i = 0; i < n; i++) {
        by[i] = (name_idx){e->raw[i].name, (unsigned) i, e->raw[i].value};
    }
    /* Values by number, aliases dropped (first name wins). */
    qsort(by, n, sizeof(*by), cmp_value_idx);
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (u == 0 || vals[u - 1].value != by[i].value) {
            vals[u] = e->raw[by[i].idx];
            nums[u] = vals[u].value;
            u++;
        }
    }
    /* Names (aliases included) -> index into vals. */
    for (size_t i = 0; i < n; i++) {
        by[i] = (name_idx){e->raw[i].name, (unsigned) i, e->raw[i].value};
    }
    qsort(by, n, sizeof(*by), cmp_name_idx);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(by[i].name, by[i - 1].name) == 0) {
            return fail(d, "duplicate enum value name", by[i].name);
        }
        size_t lo = 0, hi = u;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (vals[mid].value < by[i].value) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        names[i].name = by[i].name;
        names[i].index = (unsigned) lo;
    }
    ProtobufCEnumDescriptor *ed = &e->desc;
    ed->magic = PROTOBUF_C__ENUM_DESCRIPTOR_MAGIC;
    ed->name = e->full_name;
    ed->short_name = e->short_name;
    ed->c_name = e->full_name;
    ed->package_name = e->package;
    ed->n_values = (unsigned) u;
    ed->values = vals;
    ed->n_value_names = (unsigned) n;
    ed->values_by_name = names;
    ed->value_ranges = ranges_of(d, nums, u, &ed->n_value_ranges);
    return ed->value_ranges != NULL ? 0 : d->rc;
}

static size_t
value_size(int type)
{
    switch (type) {
    case T_DOUBLE:
    case T_INT64:
    case T_UINT64:
    case T_FIXED64:
    case T_SFIXED64:
    case T_SINT64:
        return 8;
    case T_STRING:
    case T_MESSAGE:
        return sizeof(void *);
    case T_BYTES:
        return sizeof(ProtobufCBinaryData);
    default: /* 32-bit numbers, bool (protobuf_c_boolean), enum */
        return 4;
    }
}

static size_t
align_up(size_t off, size_t a)
{
    return (off + a - 1) / a * a;
}

/* Our type number -> protobuf-c's. */
static ProtobufCType
pbc_type(int t)
{
    static const ProtobufCType map[] = {
        [T_DOUBLE] = PROTOBUF_C_TYPE_DOUBLE,
        [T_FLOAT] = PROTOBUF_C_TYPE_FLOAT,
        [T_INT64] = PROTOBUF_C_TYPE_INT64,
        [T_UINT64] = PROTOBUF_C_TYPE_UINT64,
        [T_INT32] = PROTOBUF_C_TYPE_INT32,
        [T_FIXED64] = PROTOBUF_C_TYPE_FIXED64,
        [T_FIXED32] = PROTOBUF_C_TYPE_FIXED32,
        [T_BOOL] = PROTOBUF_C_TYPE_BOOL,
        [T_STRING] = PROTOBUF_C_TYPE_STRING,
        [T_MESSAGE] = PROTOBUF_C_TYPE_MESSAGE,
        [T_BYTES] = PROTOBUF_C_TYPE_BYTES,
        [T_UINT32] = PROTOBUF_C_TYPE_UINT32,
        [T_ENUM] = PROTOBUF_C_TYPE_ENUM,
        [T_SFIXED32] = PROTOBUF_C_TYPE_SFIXED32,
        [T_SFIXED64] = PROTOBUF_C_TYPE_SFIXED64,
        [T_SINT32] = PROTOBUF_C_TYPE_SINT32,
        [T_SINT64] = PROTOBUF_C_TYPE_SINT64,
    };
    return map[t];
}

/* protoc writes bytes defaults C-escaped (CEscape). */
static ProtobufCBinaryData *
bytes_default(micro_proto_dyn *d, const char *s)
{
    size_t n = strlen(s);
    ProtobufCBinaryData *b = dalloc(d, sizeof(*b));
    uint8_t *out = dalloc(d, n + 1);
    if (b == NULL || out == NULL) {
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 == n) {
            out[k++] = (uint8_t) s[i];
            continue;
        }
        char c = s[++i];
        if (c >= '0' && c <= '7') {
            unsigned v = 0;
            for (int j = 0; j < 3 && i < n && s[i] >= '0' && s[i] <= '7';
                j++, i++) {
                v = v * 8 + (unsigned) (s[i] - '0');
            }
            i--;
            out[k++] = (uint8_t) v;
        } else if (c == 'x' && i + 1 < n && micro__hexval(s[i + 1]) >= 0) {
            unsigned v = 0;
            for (int j = 0; j < 2 && i + 1 < n && micro__hexval(s[i + 1]) >= 0;
                j++) {
                v = v * 16 + (unsigned) micro__hexval(s[++i]);
            }
            out[k++] = (uint8_t) v;
        } else {
            static const char from[] = "ntrabfv";
            static const char to[] = "\n\t\r\a\b\f\v";
            const char *p = strchr(from, c);
            out[k++] = (uint8_t) (p != NULL && c != '\0' ? to[p - from] : c);
        }
    }
    b->len = k;
    b->data = out;
    return b;
}

/* The typed default value of a proto2 field (NULL and d->rc set when it
 * does not parse). */
static const void *
default_of(micro_proto_dyn *d, const dyn_msg *m, const dyn_field *f,
    const ProtobufCFieldDescriptor *pf)
{
    const char *s = f->default_value;
    char *end = NULL;
    errno = 0;
    void *v = NULL;
    switch (f->type) {
    case T_STRING:
        return s;
    case T_BYTES:
        return bytes_default(d, s);
    case T_BOOL: {
        protobuf_c_boolean *b = dalloc(d, sizeof(*b));
        if (b != NULL) {
            *b = strcmp(s, "true") == 0;
        }
        return b;
    }
    case T_ENUM: {
        const ProtobufCEnumDescriptor *ed = pf->descriptor;
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value_by_name(ed, s);
        if (ev == NULL) {
            fail(d, "bad enum default", f->name);
            return NULL;
        }
        int *p = dalloc(d, sizeof(*p));
        if (p != NULL) {
            *p = ev->value;
        }
        return p;
    }
    case T_FLOAT:
    case T_DOUBLE: {
        double x = strtod(s, &end);
        if (f->type == T_FLOAT) {
            float *p = dalloc(d, sizeof(*p));
            if (p != NULL) {
                *p = (float) x;
            }
            v = p;
        } else {
            double *p = dalloc(d, sizeof(*p));
            if (p != NULL) {
                *p = x;
            }
            v = p;
        }
        break;
    }
    case T_INT32:
    case T_SINT32:
    case T_SFIXED32: {
        long long x = strtoll(s, &end, 0);
        int32_t *p = dalloc(d, sizeof(*p));
        if (p != NULL) {
            *p = (int32_t) x;
        }
        v = p;
        if (x < INT32_MIN || x > INT32_MAX) {
            errno = ERANGE;
        }
        break;
    }
    case T_UINT32:
    case T_FIXED32: {
        unsigned long long x = strtoull(s, &end, 0);
        uint32_t *p = dalloc(d, sizeof(*p));
        if (p != NULL) {
            *p = (uint32_t) x;
        }
        v = p;
        if (x > UINT32_MAX || *s == '-') {
            errno = ERANGE;
        }
        break;
    }
    case T_UINT64:
    case T_FIXED64: {
        unsigned long long x = strtoull(s, &end, 0);
        uint64_t *p = dalloc(d, sizeof(*p));
        if (p != NULL) {
            *p = (uint64_t) x;
        }
        v = p;
        if (*s == '-') {
            errno = ERANGE;
        }
        break;
    }
    default: { /* 64-bit signed */
        long long x = strtoll(s, &end, 0);
        int64_t *p = dalloc(d, sizeof(*p));
        if (p != NULL) {
            *p = (int64_t) x;
        }
        v = p;
        break;
    }
    }
    if (v != NULL && (end == s || *end != '\0' || errno == ERANGE)) {
        micro__pb_err(d->err, d->cap, "descriptor set: %s.%s: bad default %s",
            m->full_name, f->name, s);
        d->rc = MICRO_ECODEC;
        return NULL;
    }
    return v;
}

static int
cmp_field_num(const void *a, const void *b)
{
    const dyn_field *x = a;
    const dyn_field *y = b;
    return (x->number > y->number) - (x->number < y->number);
}

static bool
packable(int t)
{
    return t != T_STRING && t != T_BYTES && t != T_MESSAGE;
}

static int
build_msg(micro_proto_dyn *d, dyn_msg *m)
{
    size_t n = m->n_fields;
    if (n > 1) {
        qsort(m->fields, n, sizeof(*m->fields), cmp_field_num);
    }
    ProtobufCFieldDescriptor *pf = dalloc(d, (n + 1) * sizeof(*pf));
    int *nums = dalloc(d, (n + 1) * sizeof(*nums));
    name_idx *by = dalloc(d, (n + 1) * sizeof(*by));
    unsigned *by_name = dalloc(d, (n + 1) * sizeof(*by_name));
    size_t *case_off = dalloc(d, (m->n_oneofs + 1) * sizeof(*case_off));
    if (pf == NULL || nums == NULL || by == NULL || by_name == NULL ||
        case_off == NULL) {
        return d->rc;
    }
    size_t off = sizeof(ProtobufCMessage);
    char what[300];
    for (size_t i = 0; i < n; i++) {
        const dyn_field *f = &m->fields[i];
        ProtobufCFieldDescriptor *p = &pf[i];
        snprintf(what, sizeof(what), "%s.%s", m->full_name, f->name);
        if (f->number <= 0 || f->number > 536870911) {
            return fail(d, "bad field number", what);
        }
        if (i > 0 && f->number == m->fields[i - 1].number) {
            return fail(d, "duplicate field number", what);
        }
        if (f->type == T_GROUP) {
            return fail(d, "groups are not supported", what);
        }
        if (f->type < T_DOUBLE || f->type > T_SINT64) {
            return fail(d, "bad field type", what);
        }
        if (f->label < L_OPTIONAL || f->label > L_REPEATED) {
            return fail(d, "bad field label", what);
        }
        p->name = f->name;
        p->id = (uint32_t) f->number;
        p->type = pbc_type(f->type);
        nums[i] = f->number;
        if (f->type == T_MESSAGE) {
            dyn_msg *t = find_msg(d, f->type_name);
            if (t == NULL) {
                return fail(d, "unknown message type for", what);
            }
            p->descriptor = &t->desc;
        } else if (f->type == T_ENUM) {
            dyn_enum *t = find_enum(d, f->type_name);
            if (t == NULL) {
                return fail(d, "unknown enum type for", what);
            }
            p->descriptor = &t->desc;
        }
        size_t vs = value_size(f->type);
        size_t va = vs > 8 ? 8 : vs;
        bool in_oneof = f->oneof_index >= 0 && !f->proto3_optional;
        if (f->oneof_index >= 0 && (size_t) f->oneof_index >= m->n_oneofs) {
            return fail(d, "bad oneof_index", what);
        }
        if (in_oneof && f->label != L_REPEATED) {
            size_t o = (size_t) f->oneof_index;
            if (case_off[o] == 0) {
                case_off[o] = align_up(off, 4);
                off = case_off[o] + 4;
                /* The shared slot right after the case word. */
                off = align_up(off, 8) + 16;
            }
            p->label = m->proto3 ? PROTOBUF_C_LABEL_NONE
                                 : PROTOBUF_C_LABEL_OPTIONAL;
            p->quantifier_offset = (unsigned) case_off[o];
            p->offset = (unsigned) align_up(case_off[o] + 4, 8);
            p->flags |= PROTOBUF_C_FIELD_FLAG_ONEOF;
        } else if (f->label == L_REPEATED) {
            p->label = PROTOBUF_C_LABEL_REPEATED;
            p->quantifier_offset = (unsigned) align_up(off, sizeof(size_t));
            off = p->quantifier_offset + sizeof(size_t);
            p->offset = (unsigned) align_up(off, sizeof(void *));
            off = p->offset + sizeof(void *);
            if (packable(f->type) &&
                (f->packed == 1 || (f->packed == -1 && m->proto3))) {
                p->flags |= PROTOBUF_C_FIELD_FLAG_PACKED;
            }
        } else if (f->label == L_REQUIRED) {
            p->label = PROTOBUF_C_LABEL_REQUIRED;
            p->offset = (unsigned) align_up(off, va);
            off = p->offset + vs;
        } else if (m->proto3 && !f->proto3_optional) {
            p->label = PROTOBUF_C_LABEL_NONE;
            p->offset = (unsigned) align_up(off, va);
            off = p->offset + vs;
        } else {
            p->label = PROTOBUF_C_LABEL_OPTIONAL;
            if (f->type != T_STRING && f->type != T_MESSAGE) {
                p->quantifier_offset =
                    (unsigned) align_up(off, sizeof(protobuf_c_boolean));
                off = p->quantifier_offset + sizeof(protobuf_c_boolean);
            }
            p->offset = (unsigned) align_up(off, va);
            off = p->offset + vs;
        }
        /* Defaults as protobuf-c-compiler sets them, except in oneofs:
         * without a message_init, protobuf-c's unpack writes defaults into
         * the fields, and a member's default in the shared slot would be
         * taken for a value of another member (and freed). */
        if (f->type == T_STRING && m->proto3 && !in_oneof &&
            p->label != PROTOBUF_C_LABEL_OPTIONAL) {
            p->default_value = protobuf_c_empty_string;
        }
        if (f->default_value != NULL && !m->proto3 && !in_oneof &&
            f->label != L_REPEATED && f->type != T_MESSAGE) {
            p->default_value = default_of(d, m, f, p);
            if (p->default_value == NULL) {
                return d->rc != 0 ? d->rc : fail(d, "bad default", what);
            }
        }
        by[i] = (name_idx){f->name, (unsigned) i, 0};
    }
    qsort(by, n, sizeof(*by), cmp_name_idx);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(by[i].name, by[i - 1].name) == 0) {
            return fail(d, "duplicate field name", by[i].name);
        }
        by_name[i] = by[i].idx;
    }
    ProtobufCMessageDescriptor *md = &m->desc;
    md->magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC;
    md->name = m->full_name;
    md->short_name = m->short_name;
    md->c_name = m->full_name;
    md->package_name = m->package;
    md->sizeof_message = align_up(off, alignof(max_align_t));
    md->n_fields = (unsigned) n;
    md->fields = pf;
    md->fields_sorted_by_name = by_name;
    md->field_ranges = ranges_of(d, nums, n, &md->n_field_ranges);
    md->message_init = NULL; /* zeroed; micro__pb_alloc sets descriptor */
    return md->field_ranges != NULL ? 0 : d->rc;
}

static int
load(micro_proto_dyn *d, const void *p, size_t len)
{
    rd r = {p, (const uint8_t *) p + len};
    wfield f;
    int k;
    while ((k = rd_next(&r, &f)) > 0) {
        if (f.num != 1) {
            continue;
        }
        WANT(d, f, 2, "FileDescriptorSet.file");
        int rc = parse_file(d, &f);
        if (rc != 0) {
            return rc;
        }
    }
    if (k < 0) {
        return fail(d, "not a FileDescriptorSet (malformed protobuf)", NULL);
    }
    if (d->n_files == 0) {
        return fail(d, "no files (want protoc --descriptor_set_out)", NULL);
    }
    if (d->n_msgs > 1) {
        qsort(d->msgs, d->n_msgs, sizeof(*d->msgs), cmp_msg);
    }
    if (d->n_enums > 1) {
        qsort(d->enums, d->n_enums, sizeof(*d->enums), cmp_enum);
    }
    for (size_t i = 1; i < d->n_msgs; i++) {
        if (strcmp(d->msgs[i]->full_name, d->msgs[i - 1]->full_name) == 0) {
            return fail(d, "duplicate message", d->msgs[i]->full_name);
        }
    }
    for (size_t i = 1; i < d->n_enums; i++) {
        if (strcmp(d->enums[i]->full_name, d->enums[i - 1]->full_name) ==
            0) {
            return fail(d, "duplicate enum", d->enums[i]->full_name);
        }
    }
    for (size_t i = 0; i < d->n_enums; i++) {
        int rc = build_enum(d, d->enums[i]);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < d->n_msgs; i++) {
        int rc = build_msg(d, d->msgs[i]);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < d->n_svcs; i++) {
        const dyn_service *s = d->svcs[i];
        for (size_t j = 0; j < s->n_methods; j++) {
            if (find_msg(d, s->methods[j].input) == NULL ||
                find_msg(d, s->methods[j].output) == NULL) {
                micro__pb_err(d->err, d->cap,
                    "descriptor set: %s.%s: unknown input or output type "
                    "(was the set made with --include_imports?)",
                    s->full_name, s->methods[j].name);
                return d->rc = MICRO_ECODEC;
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* API.                                                                */

int
micro_proto_dyn_load(const void *p, size_t len, micro_proto_dyn **out,
    char *err, size_t cap)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (err != NULL && cap != 0) {
        err[0] = '\0';
    }
    if (out == NULL || (p == NULL && len != 0)) {
        micro__pb_err(err, cap, "invalid argument");
        return MICRO_EINVAL;
    }
    micro_proto_dyn *d = micro__calloc(1, sizeof(*d));
    if (d == NULL) {
        return MICRO_ENOMEM;
    }
    d->err = err;
    d->cap = cap;
    int rc = load(d, p, len);
    if (rc == 0 && d->rc != 0) {
        rc = d->rc;
    }
    if (rc != 0) {
        if (rc == MICRO_ENOMEM) {
            micro__pb_err(err, cap, "out of memory");
        }
        micro_proto_dyn_free(d);
        return rc;
    }
    d->err = NULL;
    d->cap = 0;
    *out = d;
    return 0;
}

void
micro_proto_dyn_free(micro_proto_dyn *d)
{
    if (d == NULL) {
        return;
    }
    chunk *c = d->chunks;
    while (c != NULL) {
        chunk *next = c->next;
        micro__free(c);
        c = next;
    }
    micro__free(d);
}

const struct ProtobufCMessageDescriptor *
micro_proto_dyn_message(const micro_proto_dyn *d, const char *full_name)
{
    if (d == NULL) {
        return NULL;
    }
    dyn_msg *m = find_msg(d, full_name);
    return m != NULL ? &m->desc : NULL;
}

int
micro_proto_dyn_method(const micro_proto_dyn *d, const char *endpoint,
    micro_proto_dyn_method_info *info, char *err, size_t cap)
{
    if (d == NULL || endpoint == NULL || info == NULL) {
        micro__pb_err(err, cap, "invalid argument");
        return MICRO_EINVAL;
    }
    const char *dot = strrchr(endpoint, '.');
    if (dot == NULL || dot == endpoint || dot[1] == '\0') {
        micro__pb_err(err, cap, "endpoint %s: want Service.Method",
            endpoint);
        return MICRO_EINVAL;
    }
    size_t sl = (size_t) (dot - endpoint);
    const char *method = dot + 1;
    const dyn_service *hit = NULL;
    int n_hits = 0;
    for (size_t i = 0; i < d->n_svcs; i++) {
        const dyn_service *s = d->svcs[i];
        if (strlen(s->full_name) == sl &&
            memcmp(s->full_name, endpoint, sl) == 0) {
            hit = s; /* a full name is exact */
            n_hits = 1;
            break;
        }
        if (strlen(s->name) == sl && memcmp(s->name, endpoint, sl) == 0) {
            hit = s;
            n_hits++;
        }
    }
    if (hit == NULL) {
        micro__pb_err(err, cap,
            "no service %.*s in the descriptor set", (int) sl, endpoint);
        return MICRO_ENOENDPOINT;
    }
    if (n_hits > 1) {
        micro__pb_err(err, cap,
            "service %.*s is ambiguous: qualify it (package.%.*s.%s)",
            (int) sl, endpoint, (int) sl, endpoint, method);
        return MICRO_EINVAL;
    }
    for (size_t j = 0; j < hit->n_methods; j++) {
        const dyn_method *mt = &hit->methods[j];
        if (strcmp(mt->name, method) == 0) {
            info->service = hit->full_name;
            info->service_name = hit->name;
            info->method = mt->name;
            info->input = &find_msg(d, mt->input)->desc;
            info->output = &find_msg(d, mt->output)->desc;
            info->input_type = info->input->name;
            info->output_type = info->output->name;
            info->client_streaming = mt->cs;
            info->server_streaming = mt->ss;
            return 0;
        }
    }
    micro__pb_err(err, cap, "service %s has no method %s", hit->full_name,
        method);
    return MICRO_ENOENDPOINT;
}
