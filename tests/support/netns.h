/* Header-only: a private network namespace for tests, fuzzers and
 * benchmarks that use multicast, so nothing they send leaves the machine.
 * Root only (unshare(CLONE_NEWNET)). */
#ifndef CMICRO_TEST_NETNS_H
#define CMICRO_TEST_NETNS_H

#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Bring lo up in the current namespace. 0, or -1 with errno. */
static inline int
t_lo_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
    return rc;
}

/* Move this process into a new network namespace holding only lo, up. */
static inline int
t_enter_netns(void)
{
    if (unshare(CLONE_NEWNET) != 0) {
        return -1;
    }
    return t_lo_up();
}

#endif
