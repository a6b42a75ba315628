/* What every fuzz target defines, and what replay.c may call. */
#ifndef CMICRO_FUZZ_H
#define CMICRO_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry point: one input, borrowed. Returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional (fuzz_mdns): once, before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Optional: true when the target could not set itself up here (fuzz_mdns
 * without root for a network namespace); the replay then skips (77). */
bool micro_fuzz_skipped(void);

#endif
