#ifndef CMICRO_LOOP_H
#define CMICRO_LOOP_H

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * An event loop: one libuv loop run by one dedicated thread. Every handle
 * on the loop is touched only by that thread; other threads hand it work
 * with micro_loop_post (an MPSC queue plus uv_async_send).
 */
typedef struct micro_loop micro_loop;

typedef void (*micro_loop_fn)(void *arg);

/** Create and start a loop thread. Thread: any. */
MICRO_API int micro_loop_new(micro_loop **out);
/**
 * Stop the thread (after running every posted item) and free the loop.
 * Thread: any but the loop's own. NULL is a no-op.
 */
MICRO_API void micro_loop_free(micro_loop *l);
/**
 * Run fn(arg) on the loop thread soon. Never runs fn synchronously inside
 * this call. Thread: any. MICRO_ENOMEM or MICRO_ECLOSED (then fn never
 * runs).
 */
MICRO_API int micro_loop_post(micro_loop *l, micro_loop_fn fn, void *arg);
/** True when called on l's thread. */
MICRO_API int micro_loop_is_current(const micro_loop *l);
/** The underlying uv_loop_t * (for plugins). Loop thread only. */
MICRO_API void *micro_loop_uv(micro_loop *l);

#ifdef __cplusplus
}
#endif
#endif
