/* mDNS registry internals, for its tests (mdns.c). Not installed. */
#ifndef CMICRO_MDNS_INTERNAL_H
#define CMICRO_MDNS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cmicro/registry.h"

/*
 * Handle one received datagram exactly as the registry's thread does:
 * answer a query (responses go to from), or feed a response to the
 * watchers. st is the state of an initialised micro_registry_mdns_ops.
 * 0 when handled or ignored; MICRO_EPROTO when the packet was malformed
 * (it is then dropped and counted). Thread: any.
 */
int micro__mdns_handle_packet(
    void *st, const uint8_t *p, size_t n, const struct sockaddr *from);

/* Malformed packets (and undecodable TXT payloads) dropped so far. */
uint64_t micro__mdns_malformed(void *st);

/*
 * The caps on what announcements can make the registry hold (mdns.c's
 * header comment has the defaults and why). Tests lower them to exercise
 * them with little traffic. Thread: any.
 */
typedef struct micro__mdns_limits {
    size_t max_txt;         /* inflated TXT JSON bytes of one record */
    size_t max_nodes;       /* cached nodes, tombstones included */
    size_t max_per_service; /* cached nodes of one service; also the nodes
                               one lookup collects */
    size_t max_bytes;       /* cache bytes in all */
    uint32_t max_ttl_s;     /* longest record TTL believed, seconds */
} micro__mdns_limits;

void micro__mdns_get_limits(void *st, micro__mdns_limits *out);
/* Zero fields keep their value. Applies to what is heard from now on. */
void micro__mdns_set_limits(void *st, const micro__mdns_limits *l);

/* The watch cache and what the caps refused so far. */
typedef struct micro__mdns_cache_stats {
    size_t nodes;           /* cached nodes, tombstones included */
    size_t bytes;           /* their cost against max_bytes */
    size_t max_service;     /* nodes of the most cached service */
    uint64_t refused_txt;   /* records whose TXT inflates beyond max_txt */
    uint64_t refused_nodes; /* nodes not kept: max_nodes, max_per_service */
    uint64_t refused_bytes; /* nodes (or updates) not kept: max_bytes */
    uint64_t ttl_clamped;   /* records whose TTL was cut to max_ttl_s */
    int64_t longest_ttl_ms; /* of the cached live nodes */
} micro__mdns_cache_stats;

void micro__mdns_get_cache_stats(void *st, micro__mdns_cache_stats *out);

/* The TXT payload of §5.5: zlib, lower-case hex, 255-character strings.
 * *chunks is an array of n malloc'd strings; free with
 * micro__mdns_txt_free. */
int micro__mdns_txt_encode(
    const char *json, size_t len, char ***chunks, size_t *n);
void micro__mdns_txt_free(char **chunks, size_t n);
/* Concatenate, hex-decode and inflate (any zlib stream, at most the
 * default max_txt, 256 KiB). *json is malloc'd and NUL-terminated
 * (micro__free). MICRO_ECODEC when malformed, MICRO_EMSGSIZE when it
 * inflates beyond that. */
int micro__mdns_txt_decode(
    const char *const *chunks, size_t n, char **json, size_t *len);

/* The response a responder sends for node i of svc (one instance: PTR,
 * SRV, A or AAAA, TXT), with host name host ("h.") and the given TTL, no
 * question, ID 0. *wire is malloc'd (micro__free). MICRO_EINVAL when the
 * node's address is not ip:port or a name is not a valid DNS name. */
int micro__mdns_build_response(const micro_registry_service *svc, size_t i,
    const char *host, uint32_t ttl, uint8_t **wire, size_t *len);

#endif
