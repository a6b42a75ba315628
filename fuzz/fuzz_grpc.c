/* libFuzzer target: gRPC frames (application/grpc), both read paths. */
#include "codec_fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_codec_reads(&micro_codec_grpc_ops, data, size);
    return 0;
}
