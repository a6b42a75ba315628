/* libFuzzer target: proto-rpc netstring envelopes
 * (application/proto-rpc), both read paths. */
#include "codec_fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_codec_reads(&micro_codec_protorpc_ops, data, size);
    return 0;
}
