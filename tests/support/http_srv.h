/* A tiny HTTP/1.1 server on threads, for tests of the http transport's
 * client side: it answers each request as its mode says (echo, canned
 * bytes, silence, a close at a chosen moment) and counts connections and
 * requests. */
#ifndef CMICRO_TEST_HTTP_SRV_H
#define CMICRO_TEST_HTTP_SRV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <cmicro/micro.h>

typedef enum t_srv_mode {
    T_SRV_ECHO,         /* 200, Content-Length, body echoed; keep-alive */
    T_SRV_CANNED,       /* send canned bytes per request; keep-alive */
    T_SRV_CANNED_CLOSE, /* send canned bytes, then close */
    T_SRV_SILENT,       /* read requests, never answer */
    T_SRV_ECHO_CLOSE,   /* echo, then close the connection at once */
    T_SRV_DROP_REUSE,   /* echo; on the first connection, close without an
                           answer when the second request arrives */
    T_SRV_CLOSE_NOW,    /* read a request, close without an answer */
    T_SRV_ECHO_HUSH,    /* echo, but never answer a body of "hush" */
} t_srv_mode;

#define T_SRV_MAX_CONNS 64

typedef struct t_srv t_srv;

typedef struct t_srv_conn {
    t_srv *s;
    int fd;
    int index; /* accept order */
    pthread_t thr;
} t_srv_conn;

struct t_srv {
    int lfd;
    char addr[64];
    t_srv_mode mode;
    const char *canned;
    size_t canned_len;
    atomic_int accepts;
    atomic_int requests;
    atomic_bool stop;
    pthread_t acceptor;
    pthread_mutex_t mu;
    t_srv_conn *conns[T_SRV_MAX_CONNS];
    int nconns;
    micro_buf first_req; /* raw bytes of the first request (under mu) */
    bool have_first;
};

/* Listen on loopback of the given family (AF_INET or AF_INET6); NULL
 * when it is unavailable (IPv6 may be disabled in a container). canned is
 * borrowed for the server's life. */
t_srv *t_srv_start_family(int family, t_srv_mode mode, const char *canned);
/* The same on 127.0.0.1; fails the test when it cannot listen. */
t_srv *t_srv_start(t_srv_mode mode, const char *canned);
/* Stop accepting, close every connection, join the threads, free. */
void t_srv_stop(t_srv *s);

#endif
