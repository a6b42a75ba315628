/*
 * bench_codec: encode and decode cost per message of cmicro's protobuf
 * codec (protobuf-c pack; validate + unpack) and its JSON mapping for
 * protobuf messages (micro_pbjson_encode/decode, Go Micro v4 style), on a
 * message of about 1 KB (bench/codec.proto, bench.Order).
 *
 *   bench_codec [--iterations N]      (default 200000)
 *
 * Single thread, in process, no I/O. Prints one line per operation:
 *   <op> <bytes> bytes  <ns/op> ns/op  <MB/s> MB/s
 * and a final JSON line with the same numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.pb-c.h"
#include <cmicro/micro.h>

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static Bench__Order order = BENCH__ORDER__INIT;
static Bench__Item items[9];
static Bench__Item *item_ptrs[9];
static char *tags[9][2];
static Bench__Order__LabelsEntry labels[4];
static Bench__Order__LabelsEntry *label_ptrs[4];
static uint8_t sig[64];

static void
build(void)
{
    static const char *titles[] = {"Mechanical keyboard, brown switches",
        "USB-C cable 2 m", "27-inch monitor, 1440p, IPS",
        "Laptop stand, aluminium", "Noise-cancelling headphones",
        "Webcam 1080p with privacy shutter", "Desk lamp, warm white LED",
        "Ergonomic mouse, wireless", "Cable management kit"};
    static char skus[9][16];
    for (int i = 0; i < 9; i++) {
        bench__item__init(&items[i]);
        snprintf(skus[i], sizeof(skus[i]), "SKU-%06d", 100000 + i * 7919);
        items[i].sku = skus[i];
        items[i].title = (char *) titles[i];
        items[i].quantity = i + 1;
        items[i].price_micros = 19990000LL * (i + 1);
        tags[i][0] = (char *) "electronics";
        tags[i][1] = (char *) (i % 2 ? "sale" : "new");
        items[i].n_tags = 2;
        items[i].tags = tags[i];
        item_ptrs[i] = &items[i];
    }
    static const char *kv[4][2] = {{"channel", "web"},
        {"region", "eu-west-1"}, {"campaign", "spring-2024-newsletter"},
        {"warehouse", "AMS-3"}};
    for (int i = 0; i < 4; i++) {
        bench__order__labels_entry__init(&labels[i]);
        labels[i].key = (char *) kv[i][0];
        labels[i].value = (char *) kv[i][1];
        label_ptrs[i] = &labels[i];
    }
    for (size_t i = 0; i < sizeof(sig); i++) {
        sig[i] = (uint8_t) (i * 37 + 11);
    }
    order.id = (char *) "ord_01HV5T3K9Q2W8E7R6Y5U4I3O2P";
    order.created_unix_ms = 1712345678901LL;
    order.customer = (char *) "Jane Q. Public";
    order.email = (char *) "jane.public@example.com";
    order.total = 4197.9;
    order.paid = 1;
    order.n_items = 9;
    order.items = item_ptrs;
    order.n_labels = 4;
    order.labels = label_ptrs;
    order.signature.data = sig;
    order.signature.len = sizeof(sig);
    order.sequence = 18446744073709551557ULL;
}

typedef struct result {
    const char *op;
    size_t bytes;
    double ns;
} result;

int
main(int argc, char **argv)
{
    long iters = 200000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
            iters = strtol(argv[++i], NULL, 10);
        }
    }
    if (iters <= 0) {
        iters = 1;
    }
    build();
    const ProtobufCMessageDescriptor *d = &bench__order__descriptor;
    micro_buf bin = {0};
    micro_buf json = {0};
    if (micro_proto_pack(&order.base, &bin) != 0 ||
        micro_pbjson_encode(&order.base, 0, &json) != 0) {
        fprintf(stderr, "bench_codec: encode failed\n");
        return 1;
    }
    result r[5];
    int nr = 0;
    double t0;
    volatile size_t sink = 0;

    t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        bin.len = 0;
        micro_proto_pack(&order.base, &bin);
        sink += bin.len;
    }
    r[nr++] = (result){"protobuf encode", bin.len, (now_ns() - t0) / iters};

    t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        ProtobufCMessage *m = NULL;
        if (micro_proto_unpack(d, bin.data, bin.len, &m) != 0) {
            return 1;
        }
        micro_proto_free(m);
    }
    r[nr++] = (result){"protobuf decode", bin.len, (now_ns() - t0) / iters};

    t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        ProtobufCMessage *m =
            protobuf_c_message_unpack(d, NULL, bin.len, bin.data);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    r[nr++] = (result){"protobuf decode, no validation (protobuf-c)",
        bin.len, (now_ns() - t0) / iters};

    t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        json.len = 0;
        micro_pbjson_encode(&order.base, 0, &json);
        sink += json.len;
    }
    r[nr++] = (result){"json encode", json.len, (now_ns() - t0) / iters};

    t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        ProtobufCMessage *m = NULL;
        if (micro_pbjson_decode(d, json.data, json.len, 0, &m, NULL, 0) !=
            0) {
            return 1;
        }
        micro_proto_free(m);
    }
    r[nr++] = (result){"json decode", json.len, (now_ns() - t0) / iters};
    (void) sink;

    printf("bench_codec: bench.Order, %ld iterations, one thread\n", iters);
    for (int i = 0; i < nr; i++) {
        printf("%-44s %5zu bytes %8.0f ns/op %8.1f MB/s\n", r[i].op,
            r[i].bytes, r[i].ns, (double) r[i].bytes / r[i].ns * 1e3);
    }
    printf("{\"protobuf_bytes\":%zu,\"json_bytes\":%zu,"
           "\"pb_encode_ns\":%.0f,\"pb_decode_ns\":%.0f,"
           "\"pb_decode_novalidate_ns\":%.0f,"
           "\"json_encode_ns\":%.0f,\"json_decode_ns\":%.0f}\n",
        bin.len, json.len, r[0].ns, r[1].ns, r[2].ns, r[3].ns, r[4].ns);
    micro_buf_clear(&bin);
    micro_buf_clear(&json);
    return 0;
}
