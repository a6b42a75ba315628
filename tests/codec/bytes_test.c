/* application/octet-stream: raw passthrough. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cmicro/micro.h"

static const uint8_t raw[] = {0x00, 0xff, '\n', 0x7b, 0x00, 0x01};

static void
test_passthrough(void **state)
{
    (void) state;
    const micro_codec_ops *c = &micro_codec_bytes_ops;
    micro_codec_info info = {0};
    micro_buf wire = {0};
    micro_buf out = {0};

    assert_int_equal(c->write_request(&info, raw, sizeof(raw), &wire), 0);
    assert_int_equal(wire.len, sizeof(raw));
    assert_memory_equal(wire.data, raw, sizeof(raw));
    assert_int_equal(c->read_request(wire.data, wire.len, &info, &out), 0);
    assert_int_equal(out.len, sizeof(raw));
    assert_memory_equal(out.data, raw, sizeof(raw));
    assert_null(info.endpoint);
    assert_null(info.id);
    micro_buf_clear(&wire);
    micro_buf_clear(&out);

    assert_int_equal(c->write_response(&info, raw, sizeof(raw), &wire), 0);
    assert_memory_equal(wire.data, raw, sizeof(raw));
    assert_int_equal(c->read_response(wire.data, wire.len, &info, &out), 0);
    assert_int_equal(out.len, sizeof(raw));
    assert_memory_equal(out.data, raw, sizeof(raw));
    assert_null(info.error);
    micro_buf_clear(&wire);
    micro_buf_clear(&out);

    /* Empty stays empty; output is appended to what is there. */
    assert_int_equal(c->write_request(&info, NULL, 0, &wire), 0);
    assert_int_equal(wire.len, 0);
    assert_int_equal(micro_buf_append_str(&out, "pre"), 0);
    assert_int_equal(c->read_request("xy", 2, &info, &out), 0);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "prexy", 5);
    micro_buf_clear(&wire);
    micro_buf_clear(&out);
}

static void
test_error_response(void **state)
{
    (void) state;
    micro_codec_info info = {0};
    info.error = "boom";
    micro_buf wire = {0};
    assert_int_equal(
        micro_codec_bytes_ops.write_response(&info, raw, sizeof(raw), &wire),
        0);
    assert_int_equal(wire.len, 0);
    micro_buf_clear(&wire);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_passthrough),
        cmocka_unit_test(test_error_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
