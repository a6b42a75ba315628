/* Buffers, message headers and Go's header-key canonicalisation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cmicro/micro.h"
#include "core/msg_internal.h"

static void
test_buf(void **state)
{
    (void) state;
    micro_buf b = {0};
    assert_int_equal(micro_buf_append(&b, "abc", 3), 0);
    assert_int_equal(b.len, 3);
    assert_true(b.cap >= 64);
    assert_memory_equal(b.data, "abc", 3);
    assert_int_equal(micro_buf_append(&b, NULL, 0), 0);
    assert_int_equal(micro_buf_append_str(&b, "de"), 0);
    assert_memory_equal(b.data, "abcde", 5);
    size_t cap = b.cap;
    char big[200];
    memset(big, 'z', sizeof(big));
    assert_int_equal(micro_buf_append(&b, big, sizeof(big)), 0);
    assert_int_equal(b.len, 205);
    assert_true(b.cap >= 205 && b.cap >= 2 * cap);
    assert_int_equal(micro_buf_reserve(&b, 0), 0);
    assert_int_equal(micro_buf_reserve(&b, SIZE_MAX), MICRO_ENOMEM);
    assert_int_equal(b.len, 205);
    micro_buf_clear(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
}

static void
test_headers(void **state)
{
    (void) state;
    micro_msg *m = NULL;
    assert_int_equal(micro_msg_new(&m), 0);
    assert_int_equal(micro_msg_header_count(m), 0);
    assert_null(micro_msg_header(m, "Micro-Id"));
    assert_int_equal(micro_msg_set_header(m, "Micro-Id", "1"), 0);
    assert_int_equal(micro_msg_set_header(m, "Content-Type", "a/b"), 0);
    assert_int_equal(micro_msg_set_header(m, "X-Empty", ""), 0);
    assert_string_equal(micro_msg_header(m, "micro-id"), "1");
    assert_string_equal(micro_msg_header(m, "CONTENT-TYPE"), "a/b");
    assert_string_equal(micro_msg_header(m, "x-empty"), "");

    /* Replacing keeps the position and takes the new spelling. */
    assert_int_equal(micro_msg_set_header(m, "micro-ID", "2"), 0);
    assert_int_equal(micro_msg_header_count(m), 3);
    const char *k = NULL;
    const char *v = NULL;
    assert_int_equal(micro_msg_header_at(m, 0, &k, &v), 0);
    assert_string_equal(k, "micro-ID");
    assert_string_equal(v, "2");
    assert_int_equal(micro_msg_header_at(m, 3, &k, &v), MICRO_EINVAL);

    /* Internal view: one allocation holds key and value. */
    assert_ptr_equal(m->hdrs[0].value, m->hdrs[0].key + m->hdrs[0].klen + 1);
    assert_int_equal(m->hdrs[1].klen, strlen("Content-Type"));
    assert_int_equal(m->hdrs[1].vlen, 3);

    micro_msg_del_header(m, "MICRO-id");
    micro_msg_del_header(m, "absent");
    assert_int_equal(micro_msg_header_count(m), 2);
    assert_int_equal(micro_msg_header_at(m, 0, &k, &v), 0);
    assert_string_equal(k, "Content-Type");
    assert_null(micro_msg_header(m, "Micro-Id"));

    /* The parser fast path appends without a duplicate check and takes
     * unterminated input. */
    assert_int_equal(
        micro__msg_add_header_n(m, "Micro-Endpoint: x", 14, "Foo.Bar!", 7), 0);
    assert_string_equal(micro_msg_header(m, "micro-endpoint"), "Foo.Bar");
    for (int i = 0; i < 100; i++) {
        assert_int_equal(micro__msg_add_header_n(m, "K", 1, "v", 1), 0);
    }
    assert_int_equal(micro_msg_header_count(m), 103);
    micro_msg_free(m);
    micro_msg_free(NULL);
}

static void
test_body(void **state)
{
    (void) state;
    micro_msg *m = NULL;
    assert_int_equal(micro_msg_new(&m), 0);
    size_t n = 99;
    micro_msg_body(m, &n);
    assert_int_equal(n, 0);
    assert_int_equal(micro_msg_set_body(m, "hello", 5), 0);
    const char *p = micro_msg_body(m, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "hello", 5);
    assert_int_equal(micro_msg_set_body(m, "hi", 2), 0);
    p = micro_msg_body(m, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "hi", 2);

    micro_buf b = {0};
    assert_int_equal(micro_buf_append_str(&b, "taken"), 0);
    uint8_t *data = b.data;
    micro_msg_take_body(m, &b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    p = micro_msg_body(m, &n);
    assert_ptr_equal(p, data);
    assert_int_equal(n, 5);
    assert_int_equal(micro_msg_set_body(m, NULL, 0), 0);
    micro_msg_body(m, &n);
    assert_int_equal(n, 0);
    micro_msg_free(m);
}

static void
expect_canon(const char *in, const char *want)
{
    char out[64];
    int n = micro_canonical_header_key(in, out, sizeof(out));
    assert_int_equal(n, (int) strlen(want));
    assert_string_equal(out, want);
}

static void
test_canonical(void **state)
{
    (void) state;
    expect_canon("micro-id", "Micro-Id");
    expect_canon("content-type", "Content-Type");
    expect_canon("CONTENT-TYPE", "Content-Type");
    expect_canon("micro-ENDPOINT", "Micro-Endpoint");
    expect_canon("x_y", "X_y");
    expect_canon("Micro-Id", "Micro-Id");
    expect_canon("a--b", "A--B");
    expect_canon("-foo", "-Foo");
    expect_canon("1abc-2def", "1abc-2def");
    expect_canon("www-authenticate", "Www-Authenticate");
    expect_canon("", "");
    /* Not token characters: unchanged. */
    expect_canon("micro id", "micro id");
    expect_canon("content-type ", "content-type ");
    expect_canon("foo:bar", "foo:bar");
    expect_canon("caf\xc3\xa9-x", "caf\xc3\xa9-x");
    expect_canon(":path", ":path");

    char small[8];
    assert_int_equal(micro_canonical_header_key("content-type", small,
                         sizeof(small)),
        MICRO_EMSGSIZE);
    assert_int_equal(micro_canonical_header_key("1234567", small, 8), 7);
    assert_int_equal(micro_canonical_header_key("12345678", small, 8),
        MICRO_EMSGSIZE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_body),
        cmocka_unit_test(test_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
