/*
 * A chained hash table of nodes keyed by a string, for the HTTP
 * transport's connection pools (one bucket of idle connections per
 * address). Nodes are embedded, first, in the caller's structs and own
 * their key; the table only links them. Not thread-safe: callers lock.
 * Not installed.
 */
#ifndef CMICRO_CORE_STRTAB_H
#define CMICRO_CORE_STRTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct micro__strtab_node {
    struct micro__strtab_node *next; /* chain */
    uint64_t hash;                   /* micro__strtab_hash of the key */
    size_t key_len;
    const char *key; /* owned by the embedding struct */
} micro__strtab_node;

typedef struct micro__strtab {
    micro__strtab_node **slots;
    size_t nslots; /* a power of two; 0 until the first insert */
    size_t count;
} micro__strtab;

/* FNV-1a of the n bytes at s. */
uint64_t micro__strtab_hash(const char *s, size_t n);

/* The node with this key (h its hash), or NULL. */
micro__strtab_node *micro__strtab_find(
    const micro__strtab *t, const char *key, size_t len, uint64_t h);

/* Set n's key (len bytes, owned by n's embedding struct, not yet in the
 * table) and hash h, and link it. The slot array doubles when the table
 * is as full as it is long; a failed doubling only leaves the chains
 * longer. MICRO_ENOMEM when there is no slot array yet and none could be
 * allocated (n is not linked). */
int micro__strtab_insert(micro__strtab *t, micro__strtab_node *n,
    const char *key, size_t len, uint64_t h);

/* Unlink every node, passing each to fn (which may free it), and free the
 * slot array: the table is empty and reusable. */
void micro__strtab_clear(micro__strtab *t,
    void (*fn)(micro__strtab_node *n, void *arg), void *arg);

#endif
