/* Runtime descriptors (dynpb.h) from protoc descriptor sets of the test
 * protos, checked against the protobuf-c code generated for the same
 * protos: the same field shapes, byte-equal wire for the same values, the
 * same JSON; and clean failures on malformed sets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include <cmicro/dynpb.h>

#include "kitchen_fill.h"
#include "legacy.pb-c.h"

#ifndef MICRO_ARRAY_LEN
#define MICRO_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#endif

static const ProtobufCMessageDescriptor *K = &cmicro__test__kitchen__descriptor;

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t) n + 1);
    assert_int_equal(fread(p, 1, (size_t) n, f), (size_t) n);
    fclose(f);
    *len = (size_t) n;
    return p;
}

static micro_proto_dyn *
load_set(const char *path)
{
    size_t len = 0;
    char *p = slurp(path, &len);
    micro_proto_dyn *d = NULL;
    char err[256] = "";
    int rc = micro_proto_dyn_load(p, len, &d, err, sizeof(err));
    free(p);
    if (rc != 0) {
        fail_msg("%s: %s", path, err);
    }
    return d;
}

static const ProtobufCMessageDescriptor *
dyn_of(const micro_proto_dyn *d, const ProtobufCMessageDescriptor *gen)
{
    const ProtobufCMessageDescriptor *m = micro_proto_dyn_message(d, gen->name);
    if (m == NULL) {
        fail_msg("%s not in the set", gen->name);
    }
    return m;
}

static void
same_enum(const ProtobufCEnumDescriptor *a, const ProtobufCEnumDescriptor *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->n_values, b->n_values);
    for (unsigned i = 0; i < a->n_values; i++) {
        assert_string_equal(a->values[i].name, b->values[i].name);
        assert_int_equal(a->values[i].value, b->values[i].value);
    }
    assert_int_equal(a->n_value_names, b->n_value_names);
    for (unsigned i = 0; i < a->n_value_names; i++) {
        assert_string_equal(a->values_by_name[i].name,
            b->values_by_name[i].name);
        assert_int_equal(a->values_by_name[i].index,
            b->values_by_name[i].index);
    }
    assert_int_equal(a->n_value_ranges, b->n_value_ranges);
}

/* The dynamic descriptor has the generated one's shape: fields, labels,
 * flags, presence words, types, defaults, name index and ranges. */
static void
same_shape(const ProtobufCMessageDescriptor *gen,
    const ProtobufCMessageDescriptor *dyn, int depth)
{
    assert_string_equal(gen->name, dyn->name);
    assert_string_equal(gen->short_name, dyn->short_name);
    assert_string_equal(gen->package_name, dyn->package_name);
    assert_int_equal(gen->n_fields, dyn->n_fields);
    assert_int_equal(gen->n_field_ranges, dyn->n_field_ranges);
    for (unsigned i = 0; i < gen->n_fields; i++) {
        const ProtobufCFieldDescriptor *g = &gen->fields[i];
        const ProtobufCFieldDescriptor *y = &dyn->fields[i];
        assert_string_equal(g->name, y->name);
        assert_int_equal(g->id, y->id);
        if (g->label != y->label || g->type != y->type ||
            g->flags != y->flags ||
            (g->quantifier_offset != 0) != (y->quantifier_offset != 0) ||
            ((g->default_value != NULL) != (y->default_value != NULL) &&
                !(g->flags & PROTOBUF_C_FIELD_FLAG_ONEOF))) {
            fail_msg("%s.%s: label %d/%d type %d/%d flags %u/%u q %u/%u "
                     "default %p/%p",
                gen->name, g->name, g->label, y->label, g->type, y->type,
                g->flags, y->flags, g->quantifier_offset,
                y->quantifier_offset, g->default_value, y->default_value);
        }
        if (y->offset + 4 > dyn->sizeof_message) {
            fail_msg("%s.%s: offset %u size %zu", dyn->name, y->name,
                y->offset, dyn->sizeof_message);
        }
        if (g->type == PROTOBUF_C_TYPE_MESSAGE && depth < 3) {
            same_shape(g->descriptor, y->descriptor, depth + 1);
        } else if (g->type == PROTOBUF_C_TYPE_ENUM) {
            same_enum(g->descriptor, y->descriptor);
        }
    }
    for (unsigned i = 0; i < gen->n_fields; i++) {
        assert_int_equal(gen->fields_sorted_by_name[i],
            dyn->fields_sorted_by_name[i]);
    }
    for (unsigned i = 0; gen->n_fields > 0 && i <= gen->n_field_ranges; i++) {
        assert_int_equal(gen->field_ranges[i].start_value,
            dyn->field_ranges[i].start_value);
        assert_int_equal(gen->field_ranges[i].orig_index,
            dyn->field_ranges[i].orig_index);
    }
}

static void
test_shapes(void **state)
{
    (void) state;
    micro_proto_dyn *d = load_set(MICRO_DYNPB_DESC);
    same_shape(K, dyn_of(d, K), 0);
    same_shape(&cmicro__legacy__old__descriptor,
        dyn_of(d, &cmicro__legacy__old__descriptor), 0);
    same_shape(&google__protobuf__value__descriptor,
        dyn_of(d, &google__protobuf__value__descriptor), 0);
    assert_non_null(micro_proto_dyn_message(d, ".cmicro.test.Kitchen.Inner"));
    assert_null(micro_proto_dyn_message(d, "cmicro.test.Nope"));
    micro_proto_dyn_free(d);
    micro_proto_dyn_free(NULL);
}

static micro_buf
pack(const ProtobufCMessage *m)
{
    micro_buf b = {0};
    assert_int_equal(micro_proto_pack(m, &b), 0);
    return b;
}

static void
same_bytes(const micro_buf *a, const micro_buf *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len);
}

static char *
json_of(const ProtobufCMessage *m, unsigned flags)
{
    micro_buf b = {0};
    assert_int_equal(micro_pbjson_encode(m, flags, &b), 0);
    char *s = strndup((const char *) b.data, b.len);
    micro_buf_clear(&b);
    return s;
}

static ProtobufCMessage *
from_json(const ProtobufCMessageDescriptor *t, const char *json,
    unsigned flags)
{
    ProtobufCMessage *m = NULL;
    char err[256] = "";
    if (micro_pbjson_decode(t, json, strlen(json), flags, &m, err,
            sizeof(err)) != 0) {
        fail_msg("%s: %s: %s", t->name, json, err);
    }
    return m;
}

/* Generated encoding -> dynamic unpack -> dynamic pack: the same bytes,
 * the same JSON. */
static void
test_kitchen_wire(void **state)
{
    (void) state;
    micro_proto_dyn *d = load_set(MICRO_DYNPB_DESC);
    const ProtobufCMessageDescriptor *DK = dyn_of(d, K);
    kitchen_store *s = malloc(sizeof(*s));
    kitchen_fill(s);
    micro_buf g = pack(&s->k.base);
    ProtobufCMessage *m = NULL;
    assert_int_equal(micro_proto_unpack(DK, g.data, g.len, &m), 0);
    micro_buf y = pack(m);
    same_bytes(&g, &y);
    /* protobuf-c's own unpack and pack work on the synthetic layout too. */
    ProtobufCMessage *m2 =
        protobuf_c_message_unpack(DK, NULL, g.len, g.data);
    assert_non_null(m2);
    assert_int_equal(protobuf_c_message_get_packed_size(m2), g.len);
    uint8_t *raw = malloc(g.len);
    assert_int_equal(protobuf_c_message_pack(m2, raw), g.len);
    assert_memory_equal(raw, g.data, g.len);
    free(raw);
    protobuf_c_message_free_unpacked(m2, NULL);
    for (unsigned fl = 0; fl < 8; fl++) {
        char *a = json_of(&s->k.base, fl);
        char *b = json_of(m, fl);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    micro_buf_clear(&y);
    micro_proto_free(m);
    micro_buf_clear(&g);
    free(s);
    micro_proto_dyn_free(d);
}

/* JSON -> wire (dynamic) equals JSON -> wire (generated), and wire ->
 * JSON gives the JSON back, in both JSON styles. */
static void
test_kitchen_json_roundtrip(void **state)
{
    (void) state;
    micro_proto_dyn *d = load_set(MICRO_DYNPB_DESC);
    const ProtobufCMessageDescriptor *DK = dyn_of(d, K);
    kitchen_store *s = malloc(sizeof(*s));
    kitchen_fill(s);
    const unsigned styles[] = {0, MICRO_PBJSON_PROTOJSON,
        MICRO_PBJSON_EMIT_DEFAULTS};
    for (size_t i = 0; i < MICRO_ARRAY_LEN(styles); i++) {
        char *json = json_of(&s->k.base, styles[i]);
        ProtobufCMessage *gm = from_json(K, json, 0);
        ProtobufCMessage *dm = from_json(DK, json, 0);
        micro_buf gw = pack(gm);
        micro_buf dw = pack(dm);
        same_bytes(&gw, &dw);
        ProtobufCMessage *back = NULL;
        assert_int_equal(micro_proto_unpack(DK, dw.data, dw.len, &back), 0);
        char *again = json_of(back, styles[i]);
        assert_string_equal(json, again);
        free(again);
        micro_proto_free(back);
        micro_buf_clear(&gw);
        micro_buf_clear(&dw);
        micro_proto_free(gm);
        micro_proto_free(dm);
        free(json);
    }
    /* Oneof members replace each other; nested, repeated and map values. */
    const char *js[] = {
        "{\"o_text\":\"x\"}",
        "{\"o_msg\":{\"name\":\"n\",\"child\":{\"id\":3}}}",
        "{\"Choice\":{\"ONum\":7}}",
        /* One element in two literals: the parentheses say so. */
        ("{\"r_int32\":[1,-2,3],\"m_bool\":{\"true\":false},"
         "\"m_u64_enum\":{\"18446744073709551615\":\"GREEN\"}}"),
        "{\"f_bytes\":\"AAEC/w==\",\"r_bytes\":[\"\",\"YQ==\"]}",
        "{\"t_value\":null,\"t_empty\":{}}",
        "{}",
    };
    for (size_t i = 0; i < MICRO_ARRAY_LEN(js); i++) {
        ProtobufCMessage *gm = from_json(K, js[i], 0);
        ProtobufCMessage *dm = from_json(DK, js[i], 0);
        micro_buf gw = pack(gm);
        micro_buf dw = pack(dm);
        same_bytes(&gw, &dw);
        char *a = json_of(gm, 0);
        char *b = json_of(dm, 0);
        assert_string_equal(a, b);
        free(a);
        free(b);
        micro_buf_clear(&gw);
        micro_buf_clear(&dw);
        micro_proto_free(gm);
        micro_proto_free(dm);
    }
    /* JSON that does not fit the type fails as it does for generated. */
    const char *bad[] = {"{\"nope\":1}", "{\"f_int32\":\"x\"}",
        "{\"f_msg\":[]}", "[1]", "{\"f_enum\":\"BLUE\"}", "{"};
    for (size_t i = 0; i < MICRO_ARRAY_LEN(bad); i++) {
        ProtobufCMessage *m = NULL;
        char err[128] = "";
        assert_int_equal(micro_pbjson_decode(DK, bad[i], strlen(bad[i]), 0,
                             &m, err, sizeof(err)),
            MICRO_ECODEC);
        assert_null(m);
        assert_true(err[0] != '\0');
    }
    free(s);
    micro_proto_dyn_free(d);
}

/* proto2: required, has_ flags, defaults, explicit packed. */
static void
test_legacy(void **state)
{
    (void) state;
    micro_proto_dyn *d = load_set(MICRO_DYNPB_DESC);
    const ProtobufCMessageDescriptor *G = &cmicro__legacy__old__descriptor;
    const ProtobufCMessageDescriptor *D = dyn_of(d, G);
    const char *json = "{\"id\":5,\"big\":-7,\"packed\":[1,2,300],"
                       "\"blob\":\"AAE=\",\"next\":{\"id\":6,\"name\":\"\"}}";
    ProtobufCMessage *gm = from_json(G, json, 0);
    ProtobufCMessage *dm = from_json(D, json, 0);
    micro_buf gw = pack(gm);
    micro_buf dw = pack(dm);
    same_bytes(&gw, &dw);
    ProtobufCMessage *back = NULL;
    assert_int_equal(micro_proto_unpack(D, dw.data, dw.len, &back), 0);
    char *a = json_of(gm, 0);
    char *b = json_of(back, 0);
    assert_string_equal(a, b);
    free(a);
    free(b);
    /* The unset name reads as its default. */
    const ProtobufCFieldDescriptor *fn =
        protobuf_c_message_descriptor_get_field_by_name(D, "name");
    assert_non_null(fn);
    assert_string_equal(*(char **) ((char *) back + fn->offset), "anon");
    micro_proto_free(back);
    /* A missing required field fails as with generated code. */
    ProtobufCMessage *none = NULL;
    assert_int_not_equal(micro_proto_unpack(D, "", 0, &none), 0);
    assert_null(none);
    micro_buf_clear(&gw);
    micro_buf_clear(&dw);
    micro_proto_free(gm);
    micro_proto_free(dm);
    micro_proto_dyn_free(d);
}

static void
test_methods(void **state)
{
    (void) state;
    micro_proto_dyn *d = load_set(MICRO_DYNPB_DESC);
    micro_proto_dyn_method_info mi;
    char err[256];
    assert_int_equal(
        micro_proto_dyn_method(d, "KitchenSvc.Echo", &mi, err, sizeof(err)),
        0);
    assert_string_equal(mi.service, "cmicro.test.KitchenSvc");
    assert_string_equal(mi.service_name, "KitchenSvc");
    assert_string_equal(mi.method, "Echo");
    assert_ptr_equal(mi.input, dyn_of(d, K));
    assert_string_equal(mi.output_type, "cmicro.test.Kitchen");
    assert_false(mi.client_streaming || mi.server_streaming);
    assert_int_equal(micro_proto_dyn_method(d, "cmicro.test.KitchenSvc.Watch",
                         &mi, err, sizeof(err)),
        0);
    assert_true(mi.server_streaming && !mi.client_streaming);
    assert_int_equal(micro_proto_dyn_method(d, "Other_Service.GetHTTP2", &mi,
                         err, sizeof(err)),
        0);
    assert_string_equal(mi.input_type, "cmicro.test.Kitchen.Inner");
    assert_string_equal(mi.output_type, "cmicro.common.Point");
    assert_int_equal(
        micro_proto_dyn_method(d, "KitchenSvc.Nope", &mi, err, sizeof(err)),
        MICRO_ENOENDPOINT);
    assert_non_null(strstr(err, "Nope"));
    assert_int_equal(
        micro_proto_dyn_method(d, "Greeter.Hello", &mi, err, sizeof(err)),
        MICRO_ENOENDPOINT);
    assert_int_equal(micro_proto_dyn_method(d, "test.KitchenSvc.Echo", &mi,
                         err, sizeof(err)),
        MICRO_ENOENDPOINT);
    assert_int_equal(micro_proto_dyn_method(d, "Echo", &mi, err, sizeof(err)),
        MICRO_EINVAL);
    assert_int_equal(
        micro_proto_dyn_method(d, "KitchenSvc.", &mi, err, sizeof(err)),
        MICRO_EINVAL);
    micro_proto_dyn_free(d);
}

/* --- hand-made sets ------------------------------------------------- */

static void
put_varint(micro_buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n++] = (uint8_t) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    micro_buf_append(b, t, n);
}

static void
put_bytes(micro_buf *b, unsigned num, const void *p, size_t n)
{
    put_varint(b, (uint64_t) num << 3 | 2);
    put_varint(b, n);
    micro_buf_append(b, p, n);
}

static void
put_str(micro_buf *b, unsigned num, const char *s)
{
    put_bytes(b, num, s, strlen(s));
}

static void
put_int(micro_buf *b, unsigned num, uint64_t v)
{
    put_varint(b, (uint64_t) num << 3);
    put_varint(b, v);
}

/* Moves inner into b as field num. */
static void
put_msg(micro_buf *b, unsigned num, micro_buf *inner)
{
    put_bytes(b, num, inner->data, inner->len);
    micro_buf_clear(inner);
}

/* A set of one proto2 file with one message "M" holding one field. */
static micro_buf
one_field_set(const char *syntax, int type, int label, const char *tname,
    const char *def)
{
    micro_buf f = {0}, m = {0}, file = {0}, set = {0};
    put_str(&f, 1, "x");
    put_int(&f, 3, 1);
    put_int(&f, 4, (uint64_t) label);
    put_int(&f, 5, (uint64_t) type);
    if (tname != NULL) {
        put_str(&f, 6, tname);
    }
    if (def != NULL) {
        put_str(&f, 7, def);
    }
    put_str(&m, 1, "M");
    put_msg(&m, 2, &f);
    put_str(&file, 1, "t.proto");
    put_str(&file, 2, "p");
    put_msg(&file, 4, &m);
    if (syntax != NULL) {
        put_str(&file, 12, syntax);
    }
    put_msg(&set, 1, &file);
    return set;
}

static int
try_load(const micro_buf *set, char *err, size_t cap)
{
    micro_proto_dyn *d = NULL;
    int rc = micro_proto_dyn_load(set->data, set->len, &d, err, cap);
    assert_true((rc == 0) == (d != NULL));
    micro_proto_dyn_free(d);
    return rc;
}

static void
expect_load_error(micro_buf set, const char *needle)
{
    char err[256] = "";
    assert_int_equal(try_load(&set, err, sizeof(err)), MICRO_ECODEC);
    if (strstr(err, needle) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
    }
    micro_buf_clear(&set);
}

static void
test_bad_sets(void **state)
{
    (void) state;
    char err[256];
    micro_buf empty = {0};
    expect_load_error(empty, "no files");
    micro_buf junk = {0};
    micro_buf_append(&junk, "\xff\xff\xff", 3);
    expect_load_error(junk, "malformed");
    micro_buf text = {0};
    micro_buf_append_str(&text, "syntax = \"proto3\";\n");
    expect_load_error(text, "FileDescriptorSet");
    expect_load_error(one_field_set(NULL, 10, 1, ".p.M", NULL), "groups");
    expect_load_error(one_field_set(NULL, 11, 1, ".p.Nope", NULL),
        "unknown message type");
    expect_load_error(one_field_set(NULL, 14, 1, ".p.M", NULL),
        "unknown enum type");
    expect_load_error(one_field_set(NULL, 99, 1, NULL, NULL), "type");
    expect_load_error(one_field_set(NULL, 5, 9, NULL, NULL), "label");
    expect_load_error(one_field_set(NULL, 5, 1, NULL, "x1"), "bad default");
    expect_load_error(one_field_set(NULL, 13, 1, NULL, "-1"), "bad default");
    /* Defaults that parse. */
    const struct {
        int type;
        const char *def;
    } good[] = {{5, "-12"}, {3, "-9223372036854775808"}, {4, "0x10"},
        {1, "inf"}, {2, "-1.5"}, {8, "true"}, {9, "abc"},
        {12, "a\\001\\x02\\n"}};
    for (size_t i = 0; i < MICRO_ARRAY_LEN(good); i++) {
        micro_buf set = one_field_set(NULL, good[i].type, 1, NULL,
            good[i].def);
        micro_proto_dyn *d = NULL;
        assert_int_equal(
            micro_proto_dyn_load(set.data, set.len, &d, err, sizeof(err)), 0);
        /* An unpacked empty message carries the default. */
        const ProtobufCMessageDescriptor *md =
            micro_proto_dyn_message(d, "p.M");
        ProtobufCMessage *m = NULL;
        assert_int_equal(micro_proto_unpack(md, "", 0, &m), 0);
        const char *p = (const char *) m + md->fields[0].offset;
        if (good[i].type == 12) {
            const ProtobufCBinaryData *bd = (const void *) p;
            assert_int_equal(bd->len, 4);
            assert_memory_equal(bd->data, "a\x01\x02\n", 4);
        } else if (good[i].type == 3) {
            assert_true(*(const int64_t *) (const void *) p == INT64_MIN);
        } else if (good[i].type == 5) {
            assert_int_equal(*(const int32_t *) (const void *) p, -12);
        }
        micro_proto_free(m);
        micro_proto_dyn_free(d);
        micro_buf_clear(&set);
    }
    /* Without --include_imports the imported types are missing. */
    size_t len = 0;
    char *p = slurp(MICRO_DYNPB_DESC_NOIMP, &len);
    micro_proto_dyn *d = NULL;
    assert_int_equal(micro_proto_dyn_load(p, len, &d, err, sizeof(err)),
        MICRO_ECODEC);
    assert_null(d);
    assert_non_null(strstr(err, "unknown message type"));
    free(p);
    assert_int_equal(micro_proto_dyn_load(NULL, 1, &d, err, sizeof(err)),
        MICRO_EINVAL);
}

/* Every truncation and many corruptions of the real set load or fail
 * cleanly (ASan/UBSan builds check "cleanly"); what loads still encodes. */
static void
test_mutations(void **state)
{
    (void) state;
    size_t len = 0;
    char *orig = slurp(MICRO_DYNPB_DESC, &len);
    uint8_t *p = malloc(len);
    char err[256];
    size_t step = len / 400 + 1;
    for (size_t n = 0; n < len; n += step) {
        micro_buf b = {0};
        micro_buf_append(&b, orig, n);
        try_load(&b, err, sizeof(err));
        micro_buf_clear(&b);
    }
    uint32_t x = 12345;
    for (int it = 0; it < 600; it++) {
        memcpy(p, orig, len);
        for (int k = 0; k < 3; k++) {
            x = x * 1103515245u + 12345u;
            size_t at = (x >> 8) % len;
            x = x * 1103515245u + 12345u;
            p[at] = (uint8_t) (x >> 16);
        }
        micro_proto_dyn *d = NULL;
        if (micro_proto_dyn_load(p, len, &d, err, sizeof(err)) == 0) {
            const ProtobufCMessageDescriptor *md =
                micro_proto_dyn_message(d, "cmicro.test.Kitchen");
            if (md != NULL) {
                ProtobufCMessage *m = NULL;
                if (micro_pbjson_decode(md, "{\"f_int32\":1}", 13, 0, &m,
                        NULL, 0) == 0) {
                    micro_buf b = {0};
                    micro_proto_pack(m, &b);
                    micro_buf_clear(&b);
                    micro_proto_free(m);
                }
            }
            micro_proto_dyn_free(d);
        }
    }
    free(p);
    free(orig);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_kitchen_wire),
        cmocka_unit_test(test_kitchen_json_roundtrip),
        cmocka_unit_test(test_legacy),
        cmocka_unit_test(test_methods),
        cmocka_unit_test(test_bad_sets),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
