/*
 * failalloc: out-of-memory torture for tests (STYLE.md §9; curl's
 * "runtests -t", libuv's loop_init_oom).
 *
 * It installs counting allocator hooks with micro_init, so it must run
 * before any other cmicro call of the test process:
 *
 *     int main(void) {
 *         if (failalloc_install() != 0) return 1;
 *         ...
 *     }
 *
 * The hooks also reach libuv, cJSON, protobuf-c (through cmicro's
 * allocator) and zlib (in the mDNS registry). Counting and failing are per
 * thread: only the thread that armed failalloc sees its allocations
 * counted or failed, so a loop thread, a delivery thread or a worker pool
 * running meanwhile never makes a count unstable. (To torture what another
 * thread allocates, arm failalloc on that thread, for example from inside
 * a handler.)
 *
 * The driver, failalloc_run, does the usual pattern for one operation:
 *
 *   1. setup, then op with nothing failing: op must succeed; its N
 *      allocations (on this thread) are counted; check, teardown.
 *   2. for i = 1..N, twice (only the i-th allocation fails; then the i-th
 *      and every later one fail): setup, op with that failure armed, then,
 *      with the allocator healthy again, check(rc), teardown.
 *
 * and asserts, with cmocka, that op returned 0 (the failure was absorbed,
 * e.g. a best-effort cache) or one of the codes in allowed (by default
 * only MICRO_ENOMEM), never something else; check then asserts whatever
 * makes "the object keeps working" concrete (typically: the same operation
 * now succeeds, and the failed one left nothing half-done). Leaks are
 * caught by LeakSanitizer in the ASan+UBSan tier, at the latest when the
 * test process exits, since every iteration frees what it built.
 *
 * Writing a case for the transport team's unary calls and streams is the
 * same: setup builds the client/server pair (not counted), op makes one
 * call or sends one stream message on this thread, check makes another
 * call and compares, teardown frees the pair. Operations that move their
 * work to another thread should be tortured on that thread (arm there) or
 * split so that the part on this thread is what op does.
 */
#ifndef CMICRO_TEST_FAILALLOC_H
#define CMICRO_TEST_FAILALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* Install the counting hooks (micro_init). 0, or micro_init's error.
 * Idempotent. */
int failalloc_install(void);

/* This thread's allocations from now on are counted; the n-th (from 1)
 * fails, and with every_after also every one after it. n 0: count only. */
void failalloc_arm(size_t n, bool every_after);
/* Shorthands: fail only the n-th; fail the n-th and all later ones. */
void failalloc_fail_at(size_t n);
void failalloc_fail_from(size_t n);
/* Stop counting and failing on this thread; returns the count. */
size_t failalloc_disarm(void);

/* Allocations this thread made since it armed (malloc, calloc and
 * realloc calls, failed ones included), and how many of them failed. */
size_t failalloc_count(void);
size_t failalloc_failed(void);

/*
 * Groups, for operations that run on several threads (a server's loop
 * thread and its worker, a client stream's caller and its loop): every
 * thread that called failalloc_join counts into one shared counter while
 * the group is armed, and the n-th allocation among them fails (with
 * every_after, also every later one). Arm and disarm from any thread
 * (typically the test's, which need not be a member). A thread stays a
 * member until failalloc_leave (or its end). The order of allocations
 * across members is what the operation makes it: deterministic when the
 * threads hand work to each other, as a loop and a worker do.
 */
void failalloc_join(void);
void failalloc_leave(void);
void failalloc_group_arm(size_t n, bool every_after);
/* Stop; returns the group's count. */
size_t failalloc_group_disarm(void);
size_t failalloc_group_count(void);
size_t failalloc_group_failed(void);

/* One operation to torture; see the top of this file. */
typedef struct failalloc_case {
    const char *name; /* in messages */
    void *arg;        /* passed to every callback */
    /* Optional. Builds what op works on (not counted, not failed); 0 or
     * a test failure. */
    int (*setup)(void *arg);
    /* Required. The operation: 0, or an error code. */
    int (*op)(void *arg);
    /* Required. With the allocator healthy: given op's result, assert
     * (cmocka) that the object still works and that a failed op left no
     * half-done state; return 0. */
    int (*check)(void *arg, int rc);
    /* Optional. Frees what setup (and op) built. */
    void (*teardown)(void *arg);
    /* Codes op may return when an allocation fails, 0-terminated; NULL:
     * MICRO_ENOMEM only. */
    const int *allowed;
    /* Arm the group (failalloc_join) instead of the calling thread. */
    bool group;
} failalloc_case;

/* Run the pattern above. Returns N, the allocations op made when nothing
 * failed (so a case can assert that it tortured something). */
size_t failalloc_run(const failalloc_case *c);

#endif
