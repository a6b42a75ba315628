/* Shared by the broker front end and its implementations. Not installed. */
#ifndef CMICRO_BROKER_INTERNAL_H
#define CMICRO_BROKER_INTERNAL_H

#include "core/internal.h"

/* Go Micro's JSON envelope into a message, as Go's json.Unmarshal reads
 * it (field names case-insensitive, the last duplicate key wins), linear
 * and bounded: more than 1024 header keys is refused (MICRO_ECODEC). *why (may be
 * NULL) names the reason of a refusal, for the bad-message counter. */
int micro__broker_envelope_decode(
    const void *p, size_t len, micro_msg **out, const char **why);

/* A deep copy of src (headers in order, body). */
int micro__msg_copy(const micro_msg *src, micro_msg **out);

/* The broker's own copy of its options (borrowed). */
const micro_options *micro__broker_options(const micro_broker *b);
/* The ops table and the implementation's state (for test hooks). */
const micro_broker_ops *micro__broker_ops(const micro_broker *b);
void *micro__broker_state(micro_broker *b);

/* For tests: seed the memory broker's queue-group picks (every seed but 0
 * gives a fixed sequence). A no-op for other brokers. */
void micro__broker_memory_seed(micro_broker *b, uint64_t seed);

#endif
