#ifndef CMICRO_MICRO_H
#define CMICRO_MICRO_H

#include "version.h"
#include "init.h"
#include "error.h"
#include "log.h"
#include "options.h"
#include "msg.h"
#include "codec.h"
#include "registry.h"
#include "selector.h"
#include "loop.h"
#include "transport.h"
#include "stream.h"
#include "broker.h"
#include "server.h"
#include "client.h"
#include "service.h"
#include "proto.h"

#endif
