/* Go Micro's address rules shared by everything that registers a node. */
#include "core/internal.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

void
micro__advertise_host(char *out, size_t cap)
{
    struct ifaddrs *ifs = NULL;
    snprintf(out, cap, "127.0.0.1");
    if (getifaddrs(&ifs) != 0) {
        return;
    }
    char priv[INET_ADDRSTRLEN] = "", other[INET_ADDRSTRLEN] = "";
    for (struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET ||
            (i->ifa_flags & IFF_LOOPBACK) != 0 ||
            (i->ifa_flags & IFF_UP) == 0) {
            continue;
        }
        struct sockaddr_in *a = (struct sockaddr_in *) i->ifa_addr;
        uint32_t ip = ntohl(a->sin_addr.s_addr);
        bool is_priv = (ip >> 24) == 10 || (ip >> 20) == 0xac1 ||
            (ip >> 16) == 0xc0a8;
        char *dst = is_priv ? priv : other;
        if (dst[0] == '\0') {
            inet_ntop(AF_INET, &a->sin_addr, dst, INET_ADDRSTRLEN);
        }
    }
    if (priv[0] != '\0' || other[0] != '\0') {
        snprintf(out, cap, "%s", priv[0] != '\0' ? priv : other);
    }
    freeifaddrs(ifs);
}

bool
micro__host_unspecified(const char *host)
{
    return host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
        strcmp(host, "::") == 0 || strcmp(host, "[::]") == 0;
}

int
micro__split_host_port(const char *addr, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL) {
        return MICRO_EINVAL;
    }
    size_t hl = (size_t) (colon - addr);
    const char *h = addr;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= cap) {
        return MICRO_EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || p < 0 || p > 65535) {
        return MICRO_EINVAL;
    }
    *port = (int) p;
    return 0;
}

int
micro__hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}
