/*
 * micro_init (include/cmicro/init.h): the allocator hooks, when they may
 * be installed, and that cmicro, libuv and cJSON all allocate through
 * them. micro_init's state is process-wide and one-way, so each case runs
 * in a child process of its own and reports through its exit status.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmicro/micro.h"

static atomic_long calls[4]; /* malloc, calloc, realloc, free */

static void *
h_malloc(size_t n)
{
    atomic_fetch_add(&calls[0], 1);
    return malloc(n);
}

static void *
h_calloc(size_t n, size_t m)
{
    atomic_fetch_add(&calls[1], 1);
    return calloc(n, m);
}

static void *
h_realloc(void *p, size_t n)
{
    atomic_fetch_add(&calls[2], 1);
    return realloc(p, n);
}

static void
h_free(void *p)
{
    atomic_fetch_add(&calls[3], 1);
    free(p);
}

static void *
other_malloc(size_t n)
{
    return malloc(n);
}

static const micro_init_params hooks = {.size = sizeof(micro_init_params),
    .malloc_fn = h_malloc,
    .calloc_fn = h_calloc,
    .realloc_fn = h_realloc,
    .free_fn = h_free};

static long
allocs(void)
{
    return atomic_load(&calls[0]) + atomic_load(&calls[1]) +
        atomic_load(&calls[2]);
}

#define CHECK(x)                                                               \
    do {                                                                       \
        if (!(x)) {                                                            \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #x);           \
            _exit(1);                                                          \
        }                                                                      \
    } while (0)

/* Run fn in a child; it must exit 0. */
static void
in_child(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn();
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* Bad parameters change nothing; good ones are taken, once. */
static void
child_params(void)
{
    micro_init_params p = hooks;
    p.size = sizeof(p) - 1;
    CHECK(micro_init(&p) == MICRO_EINVAL);
    p = hooks;
    p.free_fn = NULL; /* some but not all */
    CHECK(micro_init(&p) == MICRO_EINVAL);
    CHECK(micro_init(&hooks) == 0);
    CHECK(micro_init(&hooks) == 0); /* the same again */
    p = hooks;
    p.malloc_fn = other_malloc;
    CHECK(micro_init(&p) == MICRO_EINVAL); /* different */
    CHECK(micro_init(NULL) == MICRO_EINVAL); /* the defaults differ too */
    /* A struct from a newer version (larger) is fine. */
    struct {
        micro_init_params p;
        void *future;
    } bigger = {hooks, NULL};
    bigger.p.size = sizeof(bigger);
    CHECK(micro_init(&bigger.p) == 0);
    micro_init_params got;
    micro_init_get(&got);
    CHECK(got.size == sizeof(got) && got.malloc_fn == h_malloc &&
        got.free_fn == h_free);
}

/* Everything goes through the hooks: cmicro, libuv, cJSON. */
static void
child_used(void)
{
    CHECK(micro_init(&hooks) == 0);
    long before = allocs();
    micro_msg *m = NULL;
    CHECK(micro_msg_new(&m) == 0);
    CHECK(allocs() > before);
    micro_msg_free(m);
    CHECK(atomic_load(&calls[3]) > 0);

    /* libuv: the loop's own allocations (uv_loop_init, the async handle
     * queue) besides cmicro's struct. */
    before = allocs();
    micro_loop *l = NULL;
    CHECK(micro_loop_new(&l) == 0);
    long loop_allocs = allocs() - before;
    micro_loop_free(l);
    CHECK(loop_allocs >= 2);

    /* cJSON: a json-rpc read parses the envelope with it. */
    const micro_codec_ops *c = micro_codec_lookup("application/json-rpc");
    micro_codec_info info = {0};
    micro_buf p = {0};
    const char req[] = "{\"method\":\"A.B\",\"params\":[{\"x\":[1,2,3]}]}";
    long m0 = atomic_load(&calls[0]);
    CHECK(c->read_request(req, sizeof(req) - 1, &info, &p) == 0);
    CHECK(atomic_load(&calls[0]) - m0 >= 5); /* cJSON's nodes */
    micro_codec_info_clear(&info);
    micro_buf_clear(&p);
}

/* Once cmicro has allocated, other hooks are refused; the ones in force
 * (the defaults) are accepted. */
static void
child_too_late(void)
{
    micro_msg *m = NULL;
    CHECK(micro_msg_new(&m) == 0);
    micro_msg_free(m);
    CHECK(micro_init(&hooks) == MICRO_EINVAL);
    CHECK(micro_init(NULL) == 0);
    micro_init_params got;
    micro_init_get(&got);
    CHECK(got.malloc_fn == NULL);
    CHECK(allocs() == 0);
}

static void
child_defaults_first(void)
{
    CHECK(micro_init(NULL) == 0);
    CHECK(micro_init(&hooks) == MICRO_EINVAL);
}

static void
test_params(void **state)
{
    (void) state;
    in_child(child_params);
}

static void
test_hooks_used(void **state)
{
    (void) state;
    in_child(child_used);
}

static void
test_too_late(void **state)
{
    (void) state;
    in_child(child_too_late);
    in_child(child_defaults_first);
}

int
main(void)
{
    /* No cmicro call here: each child starts clean. */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_hooks_used),
        cmocka_unit_test(test_too_late),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
