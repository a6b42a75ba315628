/*
 * libFuzzer target: the mDNS registry's packet handler
 * (micro__mdns_handle_packet), on an initialised registry with one
 * registered service (so queries reach the answering code) and a watcher
 * (so responses go all the way through TXT decoding). Inputs alternate
 * between an IPv4 and an IPv6 sender, chosen by the first byte.
 *
 * The registry opens its multicast sockets, so it runs in a private
 * network namespace with only lo up, entered in LLVMFuzzerInitialize;
 * without root (no namespace) the target skips: the replay ctest exits 77
 * and libFuzzer runs inputs through nothing.
 */
#include "fuzz.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cmicro/micro.h"
#include "registry/mdns_internal.h"
#include "support/netns.h"

static void *st;            /* the registry's state, for the whole run */
static bool skipped = true; /* until set up */
static struct sockaddr_in from4;
static struct sockaddr_in6 from6;

static void
on_event(void *arg, micro_registry_action action,
    const micro_registry_service *svc)
{
    (void) arg;
    (void) action;
    (void) svc;
}

bool
micro_fuzz_skipped(void)
{
    return skipped;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    if (t_enter_netns() != 0) {
        fprintf(stderr, "fuzz_mdns: skipped: cannot create a private "
                        "network namespace with lo up (needs root)\n");
        return 0;
    }
    const micro_registry_ops *ops = &micro_registry_mdns_ops;
    st = calloc(1, ops->state_size);
    uint64_t tok = 0;
    if (st == NULL || ops->init(st, NULL) != 0 ||
        ops->watch(st, on_event, NULL, &tok) != 0) {
        fprintf(stderr, "fuzz_mdns: cannot start the registry\n");
        abort();
    }
    micro_registry_service svc = { 0 };
    micro_node node = { 0 };
    svc.name = "greeter";
    svc.version = "latest";
    svc.nodes = &node;
    svc.n_nodes = 1;
    node.id = "greeter-1";
    node.address = "127.0.0.1:4321";
    if (ops->register_service(st, &svc, 0) != 0) {
        fprintf(stderr, "fuzz_mdns: cannot register\n");
        abort();
    }
    /* Answers go to the discard port on loopback: nowhere. */
    from4.sin_family = AF_INET;
    from4.sin_port = htons(9);
    from4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    from6.sin6_family = AF_INET6;
    from6.sin6_port = htons(9);
    from6.sin6_addr = in6addr_loopback;
    skipped = false;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (skipped) {
        return 0;
    }
    const struct sockaddr *from = size > 0 && (data[0] & 1) != 0
        ? (const struct sockaddr *) &from6
        : (const struct sockaddr *) &from4;
    int rc = micro__mdns_handle_packet(st, data, size, from);
    if (rc != 0 && rc != MICRO_EPROTO) {
        abort();
    }
    return 0;
}
