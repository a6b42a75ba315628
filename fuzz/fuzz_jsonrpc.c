/* libFuzzer target: JSON-RPC 1.0 envelopes (application/json-rpc),
 * both read paths. */
#include "codec_fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_codec_reads(&micro_codec_jsonrpc_ops, data, size);
    return 0;
}
