/*
 * The options of the NATS broker, in one place for its two users: the
 * module's ops table (src/broker/nats.c, libcmicro-nats.so) and its row in
 * src/plugins.c, so that libcmicro knows them (flags, env, --help) without
 * loading the module. Not installed.
 */
#ifndef CMICRO_NATS_OPTIONS_H
#define CMICRO_NATS_OPTIONS_H

#include "cmicro/options.h"

#define MICRO_NATS_URL "nats://127.0.0.1:4222"

static const micro_option_desc micro__nats_options[] = {
    {"broker_address", MICRO_OPT_STR, MICRO_NATS_URL,
        "NATS servers, comma-separated URLs"},
    MICRO_OPTION_END,
};

#endif
