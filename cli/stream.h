/* cmicro stream (stream.c). */
#ifndef CMICRO_CLI_STREAM_H
#define CMICRO_CLI_STREAM_H

#include <cmicro/micro.h>

int cli_stream(micro_service *svc, const char *service, const char *endpoint,
    const micro_call_opts *opts, const char *descriptor_set);

#endif
