/* Registration records: metadata, copies, and Go's exact JSON bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmicro/micro.h"

/* The greeter record of spec §4, as Go's encoding/json writes it. */
static const char GREETER_JSON[] =
    "{\"name\":\"greeter\",\"version\":\"latest\",\"metadata\":null,"
    "\"endpoints\":[{\"request\":{\"name\":\"Request\",\"type\":\"Request\","
    "\"values\":[{\"name\":\"name\",\"type\":\"string\",\"values\":null}]},"
    "\"response\":{\"name\":\"Response\",\"type\":\"Response\","
    "\"values\":[{\"name\":\"msg\",\"type\":\"string\",\"values\":null}]},"
    "\"metadata\":{},\"name\":\"Greeter.Hello\"},"
    "{\"request\":{\"name\":\"Context\",\"type\":\"Context\",\"values\":null},"
    "\"response\":null,\"metadata\":{\"stream\":\"true\"},"
    "\"name\":\"Greeter.Stream\"}],"
    "\"nodes\":[{\"metadata\":{\"broker\":\"http\",\"protocol\":\"mucp\","
    "\"registry\":\"mdns\",\"server\":\"mucp\",\"transport\":\"http\"},"
    "\"id\":\"greeter-f47ac10b-58cc-4372-a567-0e02b2c3d479\","
    "\"address\":\"192.168.1.10:40123\"}]}";

static micro_value *
leaf(const char *name, const char *type)
{
    micro_value *v = calloc(1, sizeof(*v));
    v->name = strdup(name);
    v->type = strdup(type);
    return v;
}

static void
build_greeter(micro_registry_service *s)
{
    memset(s, 0, sizeof(*s));
    s->name = strdup("greeter");
    s->version = strdup("latest");
    s->n_endpoints = 2;
    s->endpoints = calloc(2, sizeof(micro_endpoint));

    micro_endpoint *e = &s->endpoints[0];
    e->name = strdup("Greeter.Hello");
    e->request = leaf("Request", "Request");
    e->request->n_values = 1;
    e->request->values = leaf("name", "string");
    e->response = leaf("Response", "Response");
    e->response->n_values = 1;
    e->response->values = leaf("msg", "string");
    /* {}: an empty but non-nil map. */
    e->metadata.items = calloc(1, sizeof(micro_kv));

    e = &s->endpoints[1];
    e->name = strdup("Greeter.Stream");
    e->request = leaf("Context", "Context");
    assert_int_equal(micro_metadata_set(&e->metadata, "stream", "true"), 0);

    s->n_nodes = 1;
    s->nodes = calloc(1, sizeof(micro_node));
    micro_node *n = &s->nodes[0];
    n->id = strdup("greeter-f47ac10b-58cc-4372-a567-0e02b2c3d479");
    n->address = strdup("192.168.1.10:40123");
    /* Inserted out of order: the encoder sorts. */
    assert_int_equal(micro_metadata_set(&n->metadata, "transport", "http"), 0);
    assert_int_equal(micro_metadata_set(&n->metadata, "broker", "http"), 0);
    assert_int_equal(micro_metadata_set(&n->metadata, "server", "mucp"), 0);
    assert_int_equal(micro_metadata_set(&n->metadata, "registry", "mdns"), 0);
    assert_int_equal(micro_metadata_set(&n->metadata, "protocol", "mucp"), 0);
}

static void
test_golden(void **state)
{
    (void) state;
    micro_registry_service s;
    build_greeter(&s);
    char *json = NULL;
    assert_int_equal(micro_registry_service_to_json(&s, &json), 0);
    assert_string_equal(json, GREETER_JSON);
    free(json);
    micro_registry_service_clear(&s);
    assert_null(s.name);
}

static void
test_round_trip(void **state)
{
    (void) state;
    micro_registry_service s;
    assert_int_equal(micro_registry_service_from_json(
                         GREETER_JSON, strlen(GREETER_JSON), &s),
        0);
    assert_string_equal(s.name, "greeter");
    assert_string_equal(s.version, "latest");
    assert_null(s.metadata.items);
    assert_int_equal(s.n_endpoints, 2);
    assert_string_equal(s.endpoints[0].name, "Greeter.Hello");
    assert_non_null(s.endpoints[0].metadata.items);
    assert_int_equal(s.endpoints[0].metadata.len, 0);
    assert_string_equal(s.endpoints[0].request->values[0].name, "name");
    assert_null(s.endpoints[1].response);
    assert_string_equal(
        micro_metadata_get(&s.endpoints[1].metadata, "stream"), "true");
    assert_int_equal(s.n_nodes, 1);
    assert_string_equal(s.nodes[0].address, "192.168.1.10:40123");
    assert_string_equal(
        micro_metadata_get(&s.nodes[0].metadata, "registry"), "mdns");

    char *json = NULL;
    assert_int_equal(micro_registry_service_to_json(&s, &json), 0);
    assert_string_equal(json, GREETER_JSON);
    free(json);

    /* A deep copy encodes the same, and outlives the original. */
    micro_registry_service c;
    assert_int_equal(micro_registry_service_copy(&c, &s), 0);
    micro_registry_service_clear(&s);
    assert_int_equal(micro_registry_service_to_json(&c, &json), 0);
    assert_string_equal(json, GREETER_JSON);
    free(json);
    micro_registry_service_clear(&c);
}

static void
test_null_vs_empty(void **state)
{
    (void) state;
    micro_registry_service s;
    memset(&s, 0, sizeof(s));
    char *json = NULL;
    /* Everything zero: empty strings and nulls, as Go writes a zero
     * Service. */
    assert_int_equal(micro_registry_service_to_json(&s, &json), 0);
    assert_string_equal(json,
        "{\"name\":\"\",\"version\":\"\",\"metadata\":null,"
        "\"endpoints\":null,\"nodes\":null}");
    free(json);

    s.metadata.items = calloc(1, sizeof(micro_kv));
    assert_int_equal(micro_registry_service_to_json(&s, &json), 0);
    assert_string_equal(json,
        "{\"name\":\"\",\"version\":\"\",\"metadata\":{},"
        "\"endpoints\":null,\"nodes\":null}");

    /* {} survives decoding and copying; null stays null. */
    micro_registry_service d;
    assert_int_equal(micro_registry_service_from_json(json, strlen(json), &d),
        0);
    assert_non_null(d.metadata.items);
    assert_int_equal(d.metadata.len, 0);
    micro_registry_service c;
    assert_int_equal(micro_registry_service_copy(&c, &d), 0);
    assert_non_null(c.metadata.items);
    micro_registry_service_clear(&c);
    micro_registry_service_clear(&d);
    free(json);
    micro_registry_service_clear(&s);

    const char *nulls = "{\"name\":null,\"metadata\":null,\"endpoints\":null,"
                        "\"nodes\":null}";
    assert_int_equal(
        micro_registry_service_from_json(nulls, strlen(nulls), &d), 0);
    assert_null(d.name);
    assert_null(d.metadata.items);
    assert_int_equal(d.n_nodes, 0);
    micro_registry_service_clear(&d);

    /* Missing fields are tolerated; a metadata null value becomes "". */
    const char *sparse =
        "{\"nodes\":[{\"id\":\"n1\",\"metadata\":{\"k\":null}}]}  \n";
    assert_int_equal(
        micro_registry_service_from_json(sparse, strlen(sparse), &d), 0);
    assert_null(d.name);
    assert_int_equal(d.n_nodes, 1);
    assert_string_equal(d.nodes[0].id, "n1");
    assert_null(d.nodes[0].address);
    assert_string_equal(micro_metadata_get(&d.nodes[0].metadata, "k"), "");
    micro_registry_service_clear(&d);
}

static void
test_malformed(void **state)
{
    (void) state;
    static const char *bad[] = {
        "",
        "{",
        "[]",
        "null",
        "\"x\"",
        "{\"name\":1}",
        "{\"version\":true}",
        "{\"metadata\":[]}",
        "{\"metadata\":{\"a\":1}}",
        "{\"endpoints\":{}}",
        "{\"endpoints\":[1]}",
        "{\"endpoints\":[{\"request\":\"x\"}]}",
        "{\"endpoints\":[{\"request\":{\"values\":{}}}]}",
        "{\"nodes\":[{\"id\":2}]}",
        "{\"nodes\":[null]}",
        "{\"name\":\"a\"} x",
        "{\"name\":\"a\"}{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        micro_registry_service s;
        int rc = micro_registry_service_from_json(bad[i], strlen(bad[i]), &s);
        if (rc != MICRO_ECODEC) {
            fail_msg("input %zu (%s): rc %d", i, bad[i], rc);
        }
        assert_null(s.name);
        assert_null(s.nodes);
    }

    /* Value trees deeper than 32 levels are refused; 32 are fine. */
    for (int depth = 31; depth <= 40; depth += 9) {
        char buf[4096];
        size_t o = 0;
        o += (size_t) snprintf(buf + o, sizeof(buf) - o,
            "{\"endpoints\":[{\"request\":");
        for (int i = 0; i < depth; i++) {
            o += (size_t) snprintf(buf + o, sizeof(buf) - o,
                "{\"name\":\"v\",\"values\":[");
        }
        o += (size_t) snprintf(buf + o, sizeof(buf) - o, "{}");
        for (int i = 0; i < depth; i++) {
            o += (size_t) snprintf(buf + o, sizeof(buf) - o, "]}");
        }
        o += (size_t) snprintf(buf + o, sizeof(buf) - o, "}]}");
        micro_registry_service s;
        int rc = micro_registry_service_from_json(buf, o, &s);
        assert_int_equal(rc, depth < 32 ? 0 : MICRO_ECODEC);
        micro_registry_service_clear(&s);
    }

    /* Not NUL-terminated: only len bytes are read. */
    const char *t = "{\"name\":\"abc\"}GARBAGE";
    micro_registry_service s;
    assert_int_equal(micro_registry_service_from_json(t, 14, &s), 0);
    assert_string_equal(s.name, "abc");
    micro_registry_service_clear(&s);
}

static void
test_key_sorting(void **state)
{
    (void) state;
    micro_registry_service s;
    memset(&s, 0, sizeof(s));
    s.name = strdup("x");
    const char *keys[] = { "z", "a", "M", "b", "aa", "_", "B" };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_int_equal(micro_metadata_set(&s.metadata, keys[i], keys[i]), 0);
    }
    char *json = NULL;
    assert_int_equal(micro_registry_service_to_json(&s, &json), 0);
    assert_string_equal(json,
        "{\"name\":\"x\",\"version\":\"\",\"metadata\":{\"B\":\"B\","
        "\"M\":\"M\",\"_\":\"_\",\"a\":\"a\",\"aa\":\"aa\",\"b\":\"b\","
        "\"z\":\"z\"},\"endpoints\":null,\"nodes\":null}");
    free(json);
    /* Insertion order is kept in the struct itself. */
    assert_string_equal(s.metadata.items[0].key, "z");
    micro_registry_service_clear(&s);
}

static void
test_escaping(void **state)
{
    (void) state;
    micro_registry_service s;
    memset(&s, 0, sizeof(s));
    s.name = strdup("a<b>&\"\\/\n\r\t\b\f\x01\x1f\x7f"
                    "\xc3\xa9\xe2\x80\xa8\xe2\x80\xa9\xf0\x9f\x98\x80"
                    "\xff\xe2\x82|\xed\xa0\x80");
    s.version = strdup("");
    assert_int_equal(micro_metadata_set(&s.metadata, "<k>", "&"), 0);
    char *json = NULL;
    assert_int_equal(micro_registry_service_to_json(&s, &json), 0);
    assert_string_equal(json,
        "{\"name\":\"a\\u003cb\\u003e\\u0026\\\"\\\\/\\n\\r\\t\\u0008\\u000c"
        "\\u0001\\u001f\x7f\xc3\xa9\\u2028\\u2029\xf0\x9f\x98\x80"
        "\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd\","
        "\"version\":\"\",\"metadata\":{\"\\u003ck\\u003e\":\"\\u0026\"},"
        "\"endpoints\":null,\"nodes\":null}");

    /* The escapes decode back to the original valid text. */
    micro_registry_service d;
    assert_int_equal(micro_registry_service_from_json(json, strlen(json), &d),
        0);
    assert_string_equal(micro_metadata_get(&d.metadata, "<k>"), "&");
    assert_memory_equal(d.name, "a<b>&\"\\/\n\r\t\b\f\x01\x1f\x7f", 16);
    micro_registry_service_clear(&d);
    free(json);
    micro_registry_service_clear(&s);
}

static void
test_metadata(void **state)
{
    (void) state;
    micro_metadata m = { 0 };
    assert_null(micro_metadata_get(&m, "a"));
    assert_null(micro_metadata_get(NULL, "a"));
    assert_int_equal(micro_metadata_set(&m, "a", "1"), 0);
    assert_int_equal(micro_metadata_set(&m, "b", "2"), 0);
    assert_int_equal(micro_metadata_set(&m, "a", "3"), 0);
    assert_int_equal(m.len, 2);
    assert_string_equal(micro_metadata_get(&m, "a"), "3");
    assert_string_equal(micro_metadata_get(&m, "b"), "2");
    assert_int_equal(micro_metadata_set(&m, NULL, "x"), MICRO_EINVAL);
    micro_metadata_clear(&m);
    assert_null(m.items);
    assert_int_equal(m.len, 0);
    micro_metadata_clear(&m);

    micro_node a = { 0 };
    a.id = strdup("n1");
    assert_int_equal(micro_metadata_set(&a.metadata, "k", "v"), 0);
    micro_node b;
    assert_int_equal(micro_node_copy(&b, &a), 0);
    micro_node_clear(&a);
    assert_string_equal(b.id, "n1");
    assert_null(b.address);
    assert_string_equal(micro_metadata_get(&b.metadata, "k"), "v");
    micro_node_clear(&b);

    micro_registry_service *h = calloc(1, sizeof(*h));
    h->name = strdup("x");
    micro_registry_service_free(h);
    micro_registry_service_free(NULL);
    micro_registry_services_free(NULL, 3);
}

int
main(void)
{
    micro_log_set_level(MICRO_LOG_ERR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_null_vs_empty),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_key_sorting),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
