/*
 * cmicro-pbjson-tool MODE TYPE: the JSON mapping on stdin/stdout, for the
 * Go interop test (tests/interop/pbjson_test.go), which feeds it messages
 * made by real Go (protoc-gen-go types) and checks what comes back.
 *   MODE  bin2json | bin2protojson | json2bin | bin2bin
 *   TYPE  kitchen (cmicro.test.Kitchen) | legacy (cmicro.legacy.Old)
 * Exit 0 on success; 1 with a message on stderr when the input is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kitchen.micro.h"
#include "legacy.pb-c.h"

int
main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s bin2json|bin2protojson|json2bin|bin2bin "
                        "kitchen|legacy\n", argv[0]);
        return 2;
    }
    const ProtobufCMessageDescriptor *d = strcmp(argv[2], "legacy") == 0
        ? &cmicro__legacy__old__descriptor
        : &cmicro__test__kitchen__descriptor;
    micro_buf in = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        if (micro_buf_append(&in, chunk, n) != 0) {
            return 2;
        }
    }
    ProtobufCMessage *m = NULL;
    char err[256] = "";
    int rc;
    const char *mode = argv[1];
    if (strcmp(mode, "json2bin") == 0) {
        rc = micro_pbjson_decode(d, in.data, in.len, 0, &m, err, sizeof(err));
    } else {
        rc = micro_proto_unpack(d, in.data, in.len, &m);
        if (rc != 0) {
            micro_proto_validate(d, in.data, in.len, err, sizeof(err));
        }
    }
    micro_buf out = {0};
    if (rc == 0) {
        if (strcmp(mode, "bin2json") == 0) {
            rc = micro_pbjson_encode(m, 0, &out);
        } else if (strcmp(mode, "bin2protojson") == 0) {
            rc = micro_pbjson_encode(m, MICRO_PBJSON_PROTOJSON, &out);
        } else {
            rc = micro_proto_pack(m, &out);
        }
    }
    if (rc != 0) {
        fprintf(stderr, "cmicro-pbjson-tool: %s: %s\n", micro_strerror(rc),
            err);
    } else if (out.len > 0) {
        fwrite(out.data, 1, out.len, stdout);
    }
    micro_proto_free(m);
    micro_buf_clear(&in);
    micro_buf_clear(&out);
    return rc == 0 ? 0 : 1;
}
