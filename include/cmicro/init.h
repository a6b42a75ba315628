#ifndef CMICRO_INIT_H
#define CMICRO_INIT_H

#include <stddef.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Library initialisation: optional, and only needed to replace the memory
 * allocator (nng's nng_init_params; libuv's uv_replace_allocator).
 *
 * size comes first and must be sizeof(micro_init_params), so that fields
 * can be added without breaking programs built against this version.
 * The four hooks are all given or all NULL (NULL: the C library's). They
 * must behave as their C namesakes (cmicro never asks for 0 bytes; realloc
 * may be given NULL, and must then allocate). They may be called from any
 * thread at once, and must stay valid until the process exits.
 */
typedef struct micro_init_params {
    size_t size; /* sizeof(micro_init_params) */
    void *(*malloc_fn)(size_t n);
    void *(*calloc_fn)(size_t n, size_t m);
    void *(*realloc_fn)(void *p, size_t n);
    void (*free_fn)(void *p);
} micro_init_params;

/**
 * Install params (NULL: the defaults). Call it before any other cmicro
 * call (and before the program's own first libuv call, if it makes any:
 * the hooks are forwarded to libuv with uv_replace_allocator, and to
 * cJSON with cJSON_InitHooks, which are process-wide; protobuf-c and
 * zlib get them per call). Every allocation of cmicro goes through the
 * hooks, except the strings documented to be freed with free()
 * (micro_error_to_json).
 *
 * Returns 0; again 0 when called once more with the same hooks. Errors:
 * MICRO_EINVAL when params->size is too small, when only some hooks are
 * given, or when the hooks differ from those in force and cmicro has
 * already allocated (or micro_init installed others). Thread: call it
 * once, before other threads use cmicro.
 */
MICRO_API int micro_init(const micro_init_params *params);

/**
 * The hooks in force (all NULL when the C library's are), with size set:
 * for plugins built as modules of their own, so that their memory comes
 * from the same allocator. Thread: any.
 */
MICRO_API void micro_init_get(micro_init_params *out);

#ifdef __cplusplus
}
#endif
#endif
