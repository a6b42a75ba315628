/* Test helpers: a cmicro.test.Kitchen with every field kind set, and a
 * canonical text of any message (for equality across codecs). */
#ifndef MICRO_TEST_KITCHEN_FILL_H
#define MICRO_TEST_KITCHEN_FILL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kitchen.micro.h"

/* Storage for one filled Kitchen: everything points into it. */
typedef struct kitchen_store {
    Cmicro__Test__Kitchen k;
    Cmicro__Test__Kitchen__Inner inner, inner2, child, o_msg, map_inner;
    Cmicro__Test__Kitchen__Inner *r_msg[2];
    Cmicro__Common__Point point;
    int32_t r_int32[3];
    int64_t r_int64[3];
    char *r_string[3];
    ProtobufCBinaryData r_bytes[2];
    Cmicro__Test__Color r_enum[2];
    double r_double[3];
    protobuf_c_boolean r_bool[2];
    char *tags[2];
    Cmicro__Test__Kitchen__MStrI64Entry e1, e2;
    Cmicro__Test__Kitchen__MStrI64Entry *m_str_i64[2];
    Cmicro__Test__Kitchen__MI32StrEntry e3, e4;
    Cmicro__Test__Kitchen__MI32StrEntry *m_i32_str[2];
    Cmicro__Test__Kitchen__MStrMsgEntry e5;
    Cmicro__Test__Kitchen__MStrMsgEntry *m_str_msg[1];
    Cmicro__Test__Kitchen__MBoolEntry e6;
    Cmicro__Test__Kitchen__MBoolEntry *m_bool[1];
    Cmicro__Test__Kitchen__MU64EnumEntry e7;
    Cmicro__Test__Kitchen__MU64EnumEntry *m_u64_enum[1];
    Google__Protobuf__Timestamp ts;
    Google__Protobuf__Duration dur;
    Google__Protobuf__Int64Value i64;
    Google__Protobuf__StringValue str;
    Google__Protobuf__BoolValue bv;
    Google__Protobuf__Struct st;
    Google__Protobuf__Struct__FieldsEntry fe1, fe2;
    Google__Protobuf__Struct__FieldsEntry *fields[2];
    Google__Protobuf__Value v1, v2, value, lv1, lv2;
    Google__Protobuf__ListValue list;
    Google__Protobuf__Value *list_values[2];
    Google__Protobuf__FieldMask mask;
    char *paths[2];
    Google__Protobuf__Empty empty;
} kitchen_store;

static inline void
kitchen_fill(kitchen_store *s)
{
    static uint8_t blob[] = {0, 1, 2, 0xfe, 0xff, '<', '>'};
    memset(s, 0, sizeof(*s));
    Cmicro__Test__Kitchen *k = &s->k;
    cmicro__test__kitchen__init(k);
    k->f_double = -1.25e-7;
    k->f_float = 3.14159f;
    k->f_int32 = INT32_MIN;
    k->f_int64 = INT64_MAX;
    k->f_uint32 = UINT32_MAX;
    k->f_uint64 = UINT64_MAX;
    k->f_sint32 = -42;
    k->f_sint64 = INT64_MIN;
    k->f_fixed32 = 7;
    k->f_fixed64 = 9007199254740993ULL; /* 2^53 + 1: not a double */
    k->f_sfixed32 = -7;
    k->f_sfixed64 = -9007199254740993LL;
    k->f_bool = 1;
    k->f_string = (char *) "h\xc3\xa9llo <&> \"q\" \\ \n\t\x01 \xe2\x80\xa8 \xf0\x9f\x98\x80";
    k->f_bytes.data = blob;
    k->f_bytes.len = sizeof(blob);
    k->f_enum = CMICRO__TEST__COLOR__GREEN;
    cmicro__test__kitchen__inner__init(&s->inner);
    cmicro__test__kitchen__inner__init(&s->child);
    s->child.name = (char *) "child";
    s->inner.name = (char *) "inner";
    s->inner.id = 5;
    s->inner.child = &s->child;
    s->tags[0] = (char *) "a";
    s->tags[1] = (char *) "";
    s->inner.n_tags = 2;
    s->inner.tags = s->tags;
    k->f_msg = &s->inner;
    cmicro__common__point__init(&s->point);
    s->point.x = -1;
    s->point.y = 2;
    k->f_point = &s->point;
    s->r_int32[0] = 1;
    s->r_int32[1] = -2;
    s->r_int32[2] = 0;
    k->n_r_int32 = 3;
    k->r_int32 = s->r_int32;
    s->r_int64[0] = INT64_MIN;
    s->r_int64[1] = 0;
    s->r_int64[2] = 1234567890123LL;
    k->n_r_int64 = 3;
    k->r_int64 = s->r_int64;
    s->r_string[0] = (char *) "x";
    s->r_string[1] = (char *) "";
    s->r_string[2] = (char *) "z z";
    k->n_r_string = 3;
    k->r_string = s->r_string;
    s->r_bytes[0].data = blob;
    s->r_bytes[0].len = 3;
    s->r_bytes[1].data = NULL;
    s->r_bytes[1].len = 0;
    k->n_r_bytes = 2;
    k->r_bytes = s->r_bytes;
    s->r_enum[0] = CMICRO__TEST__COLOR__RED;
    s->r_enum[1] = CMICRO__TEST__COLOR__COLOR_UNSPECIFIED;
    k->n_r_enum = 2;
    k->r_enum = s->r_enum;
    cmicro__test__kitchen__inner__init(&s->inner2);
    s->inner2.id = -9;
    s->r_msg[0] = &s->inner2;
    s->r_msg[1] = &s->child;
    k->n_r_msg = 2;
    k->r_msg = s->r_msg;
    s->r_double[0] = 0.1;
    s->r_double[1] = 1e21;
    s->r_double[2] = -0.0;
    k->n_r_double = 3;
    k->r_double = s->r_double;
    s->r_bool[0] = 1;
    s->r_bool[1] = 0;
    k->n_r_bool = 2;
    k->r_bool = s->r_bool;
    cmicro__test__kitchen__mstr_i64_entry__init(&s->e1);
    cmicro__test__kitchen__mstr_i64_entry__init(&s->e2);
    s->e1.key = (char *) "zeta";
    s->e1.value = -5;
    s->e2.key = (char *) "alpha";
    s->e2.value = INT64_MAX;
    s->m_str_i64[0] = &s->e1;
    s->m_str_i64[1] = &s->e2;
    k->n_m_str_i64 = 2;
    k->m_str_i64 = s->m_str_i64;
    cmicro__test__kitchen__mi32_str_entry__init(&s->e3);
    cmicro__test__kitchen__mi32_str_entry__init(&s->e4);
    s->e3.key = 10;
    s->e3.value = (char *) "ten";
    s->e4.key = -2;
    s->e4.value = (char *) "minus two";
    s->m_i32_str[0] = &s->e3;
    s->m_i32_str[1] = &s->e4;
    k->n_m_i32_str = 2;
    k->m_i32_str = s->m_i32_str;
    cmicro__test__kitchen__mstr_msg_entry__init(&s->e5);
    cmicro__test__kitchen__inner__init(&s->map_inner);
    s->map_inner.name = (char *) "in map";
    s->e5.key = (char *) "k";
    s->e5.value = &s->map_inner;
    s->m_str_msg[0] = &s->e5;
    k->n_m_str_msg = 1;
    k->m_str_msg = s->m_str_msg;
    cmicro__test__kitchen__mbool_entry__init(&s->e6);
    s->e6.key = 1;
    s->e6.value = 1;
    s->m_bool[0] = &s->e6;
    k->n_m_bool = 1;
    k->m_bool = s->m_bool;
    cmicro__test__kitchen__mu64_enum_entry__init(&s->e7);
    s->e7.key = UINT64_MAX;
    s->e7.value = CMICRO__TEST__COLOR__RED;
    s->m_u64_enum[0] = &s->e7;
    k->n_m_u64_enum = 1;
    k->m_u64_enum = s->m_u64_enum;
    cmicro__test__kitchen__inner__init(&s->o_msg);
    s->o_msg.name = (char *) "oneof";
    k->choice_case = CMICRO__TEST__KITCHEN__CHOICE_O_MSG;
    k->o_msg = &s->o_msg;
    google__protobuf__timestamp__init(&s->ts);
    s->ts.seconds = 1700000000;
    s->ts.nanos = 123000000;
    k->t_time = &s->ts;
    google__protobuf__duration__init(&s->dur);
    s->dur.seconds = -3;
    s->dur.nanos = -500000000;
    k->t_dur = &s->dur;
    google__protobuf__int64_value__init(&s->i64);
    s->i64.value = INT64_MIN;
    k->t_i64 = &s->i64;
    google__protobuf__string_value__init(&s->str);
    s->str.value = (char *) "";
    k->t_str = &s->str;
    google__protobuf__bool_value__init(&s->bv);
    s->bv.value = 1;
    k->t_bool = &s->bv;
    google__protobuf__value__init(&s->v1);
    s->v1.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
    s->v1.string_value = (char *) "s";
    google__protobuf__value__init(&s->v2);
    s->v2.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
    s->v2.number_value = 2.5;
    google__protobuf__struct__fields_entry__init(&s->fe1);
    google__protobuf__struct__fields_entry__init(&s->fe2);
    s->fe1.key = (char *) "str";
    s->fe1.value = &s->v1;
    s->fe2.key = (char *) "num";
    s->fe2.value = &s->v2;
    s->fields[0] = &s->fe1;
    s->fields[1] = &s->fe2;
    google__protobuf__struct__init(&s->st);
    s->st.n_fields = 2;
    s->st.fields = s->fields;
    k->t_struct = &s->st;
    google__protobuf__value__init(&s->value);
    s->value.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
    s->value.bool_value = 1;
    k->t_value = &s->value;
    google__protobuf__value__init(&s->lv1);
    s->lv1.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
    google__protobuf__value__init(&s->lv2);
    s->lv2.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
    s->lv2.struct_value = &s->st;
    s->list_values[0] = &s->lv1;
    s->list_values[1] = &s->lv2;
    google__protobuf__list_value__init(&s->list);
    s->list.n_values = 2;
    s->list.values = s->list_values;
    k->t_list = &s->list;
    google__protobuf__field_mask__init(&s->mask);
    s->paths[0] = (char *) "f_int32";
    s->paths[1] = (char *) "f_msg.name";
    s->mask.n_paths = 2;
    s->mask.paths = s->paths;
    k->t_mask = &s->mask;
    google__protobuf__empty__init(&s->empty);
    k->t_empty = &s->empty;
    k->snake_case_name = (char *) "snake";
}

/* The canonical text of m (protojson style with defaults: sorted maps,
 * every field), malloc'd. Two messages are equal iff these are. */
static inline char *
canon(const ProtobufCMessage *m)
{
    micro_buf b = {0};
    if (micro_pbjson_encode(m,
            MICRO_PBJSON_PROTOJSON | MICRO_PBJSON_EMIT_DEFAULTS, &b) != 0) {
        micro_buf_clear(&b);
        return NULL;
    }
    char *s = malloc(b.len + 1);
    memcpy(s, b.data, b.len);
    s[b.len] = '\0';
    micro_buf_clear(&b);
    return s;
}

#endif
