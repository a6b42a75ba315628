/* The string-keyed table behind the connection pools (src/core/strtab.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strtab.h"

typedef struct item {
    micro__strtab_node node;
    char key[32];
    uint64_t hash;
} item;

static int
insert(micro__strtab *t, item *it)
{
    return micro__strtab_insert(t, &it->node, it->key, strlen(it->key),
        it->hash);
}

static item *
item_new(const char *key, uint64_t hash)
{
    item *it = calloc(1, sizeof(*it));
    assert_non_null(it);
    snprintf(it->key, sizeof(it->key), "%s", key);
    it->hash = hash;
    return it;
}

static void
free_item(micro__strtab_node *n, void *arg)
{
    (*(int *) arg)++;
    free(n);
}

static void
test_grow_find_clear(void **state)
{
    (void) state;
    micro__strtab t = {0};
    assert_null(micro__strtab_find(&t, "x", 1, micro__strtab_hash("x", 1)));
    for (int i = 0; i < 1000; i++) {
        char k[32];
        snprintf(k, sizeof(k), "127.0.0.1:%d", 1000 + i);
        item *it = item_new(k, micro__strtab_hash(k, strlen(k)));
        assert_int_equal(insert(&t, it), 0);
    }
    assert_int_equal(t.count, 1000);
    assert_true(t.nslots >= 1000 && (t.nslots & (t.nslots - 1)) == 0);
    for (int i = 0; i < 1000; i++) {
        char k[32];
        snprintf(k, sizeof(k), "127.0.0.1:%d", 1000 + i);
        uint64_t h = micro__strtab_hash(k, strlen(k));
        micro__strtab_node *n = micro__strtab_find(&t, k, strlen(k), h);
        assert_non_null(n);
        assert_string_equal(((item *) n)->key, k);
    }
    /* A prefix of a key is another key. */
    assert_null(micro__strtab_find(&t, "127.0.0.1:100", 13,
        micro__strtab_hash("127.0.0.1:100", 13)));
    int freed = 0;
    micro__strtab_clear(&t, free_item, &freed);
    assert_int_equal(freed, 1000);
    assert_int_equal(t.count, 0);
    assert_null(t.slots);
    assert_null(micro__strtab_find(&t, "127.0.0.1:1000", 14,
        micro__strtab_hash("127.0.0.1:1000", 14)));
}

/* Equal hashes, different keys: both are found, each as itself. */
static void
test_collisions(void **state)
{
    (void) state;
    micro__strtab t = {0};
    item *a = item_new("a:1", 42);
    item *b = item_new("b:2", 42);
    assert_int_equal(insert(&t, a), 0);
    assert_int_equal(insert(&t, b), 0);
    assert_ptr_equal(micro__strtab_find(&t, "a:1", 3, 42), &a->node);
    assert_ptr_equal(micro__strtab_find(&t, "b:2", 3, 42), &b->node);
    assert_null(micro__strtab_find(&t, "c:3", 3, 42));
    assert_null(micro__strtab_find(&t, "a:1", 3, 43));
    int freed = 0;
    micro__strtab_clear(&t, free_item, &freed);
    assert_int_equal(freed, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_find_clear),
        cmocka_unit_test(test_collisions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
