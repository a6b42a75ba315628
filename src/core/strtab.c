/* A chained hash table of embedded nodes keyed by a string (strtab.h). */
#include "core/strtab.h"

#include <string.h>

#include "core/internal.h"

uint64_t
micro__strtab_hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t) s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

micro__strtab_node *
micro__strtab_find(
    const micro__strtab *t, const char *key, size_t len, uint64_t h)
{
    if (t->nslots == 0) {
        return NULL;
    }
    for (micro__strtab_node *n = t->slots[h & (t->nslots - 1)]; n != NULL;
         n = n->next) {
        if (n->hash == h && n->key_len == len &&
            memcmp(n->key, key, len) == 0) {
            return n;
        }
    }
    return NULL;
}

static void
grow(micro__strtab *t)
{
    size_t ns = t->nslots ? t->nslots * 2 : 16;
    micro__strtab_node **slots = micro__calloc(ns, sizeof(*slots));
    if (slots == NULL) {
        return;
    }
    for (size_t i = 0; i < t->nslots; i++) {
        micro__strtab_node *n = t->slots[i];
        while (n != NULL) {
            micro__strtab_node *next = n->next;
            n->next = slots[n->hash & (ns - 1)];
            slots[n->hash & (ns - 1)] = n;
            n = next;
        }
    }
    micro__free(t->slots);
    t->slots = slots;
    t->nslots = ns;
}

int
micro__strtab_insert(micro__strtab *t, micro__strtab_node *n,
    const char *key, size_t len, uint64_t h)
{
    n->key = key;
    n->key_len = len;
    n->hash = h;
    if (t->count >= t->nslots) {
        grow(t);
    }
    if (t->nslots == 0) {
        return MICRO_ENOMEM;
    }
    size_t i = n->hash & (t->nslots - 1);
    n->next = t->slots[i];
    t->slots[i] = n;
    t->count++;
    return 0;
}

void
micro__strtab_clear(micro__strtab *t,
    void (*fn)(micro__strtab_node *n, void *arg), void *arg)
{
    for (size_t i = 0; i < t->nslots; i++) {
        micro__strtab_node *n = t->slots[i];
        while (n != NULL) {
            micro__strtab_node *next = n->next;
            if (fn != NULL) {
                fn(n, arg);
            }
            n = next;
        }
    }
    micro__free(t->slots);
    t->slots = NULL;
    t->nslots = 0;
    t->count = 0;
}
