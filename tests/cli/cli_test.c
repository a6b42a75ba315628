/*
 * The cmicro CLI's argument checks, run as a process against a plain TCP
 * listener that stands in for a server: a port above 65535 is refused (it
 * used to wrap modulo 65536 in the resolver and dial another port), and
 * timeouts too long for the nanosecond Timeout header saturate instead of
 * overflowing it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmicro/micro.h"
#include "support/support.h"
#include "support/tlscerts.h"

/* A listener on 127.0.0.1 with an ephemeral port. */
static int
listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

typedef struct run {
    pid_t pid;
    int err_fd;       /* the child's stderr */
    char err[4096];   /* what it wrote there */
    int status;       /* exit status, or -1 */
} run;

/* Start cmicro with args (NULL-terminated, without argv[0]). */
static void
cli_start(run *r, const char *const *args)
{
    char path[512];
    t_bin("cmicro", path, sizeof(path));
    const char *argv[32] = {path};
    size_t n = 1;
    for (; args[n - 1] != NULL && n < 31; n++) {
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    memset(r, 0, sizeof(*r));
    r->status = -1;
    r->pid = fork();
    assert_true(r->pid >= 0);
    if (r->pid == 0) {
        dup2(p[1], 2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        setenv("MICRO_REGISTRY", "memory", 1);
        execv(path, (char *const *) argv);
        _exit(127);
    }
    close(p[1]);
    r->err_fd = p[0];
}

/* Wait for the process (up to 20 s) and collect its stderr. */
static void
cli_wait(run *r)
{
    size_t have = 0;
    for (;;) {
        struct pollfd pf = {r->err_fd, POLLIN, 0};
        if (poll(&pf, 1, 20000) <= 0) {
            break;
        }
        ssize_t got = read(r->err_fd, r->err + have,
            sizeof(r->err) - 1 - have);
        if (got <= 0) {
            break;
        }
        have += (size_t) got;
    }
    r->err[have] = '\0';
    close(r->err_fd);
    int st = 0;
    for (int i = 0; i < 200; i++) {
        pid_t w = waitpid(r->pid, &st, WNOHANG);
        if (w == r->pid) {
            r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            return;
        }
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &st, 0);
}

/* Whether a connection is waiting on the listener (0 ms). */
static bool
pending(int lfd)
{
    struct pollfd pf = {lfd, POLLIN, 0};
    return poll(&pf, 1, 0) == 1;
}

/* Read from fd into buf until the request (head and Content-Length body)
 * is complete; its length, or 0. */
static size_t
read_request(int fd, char *buf, size_t cap)
{
    size_t have = 0;
    size_t want = 0; /* head + body, once the head is in */
    while (have < cap - 1 && (want == 0 || have < want)) {
        struct pollfd cp = {fd, POLLIN, 0};
        if (poll(&cp, 1, 20000) != 1) {
            return 0;
        }
        ssize_t got = read(fd, buf + have, cap - 1 - have);
        if (got <= 0) {
            return 0;
        }
        have += (size_t) got;
        buf[have] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        if (want == 0 && end != NULL) {
            const char *cl = strcasestr(buf, "\r\nContent-Length: ");
            size_t body = cl != NULL && cl < end
                ? (size_t) strtoul(cl + 18, NULL, 10)
                : 0;
            want = (size_t) (end + 4 - buf) + body;
        }
    }
    return have;
}

/* Accept one request (up to 20 s), return its Timeout header in tmo,
 * answer 200 with {}, and close gracefully (the whole request read, our
 * side shut down first, the client's close awaited), so that the client
 * never sees a reset. False when nothing came. */
static bool
serve_one(int lfd, char *tmo, size_t cap)
{
    struct pollfd pf = {lfd, POLLIN, 0};
    if (poll(&pf, 1, 20000) != 1) {
        return false;
    }
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    char req[8192];
    size_t have = read_request(fd, req, sizeof(req));
    req[have] = '\0';
    tmo[0] = '\0';
    const char *h = strcasestr(req, "\r\nTimeout: ");
    if (h != NULL) {
        h += 11;
        size_t n = strcspn(h, "\r\n");
        snprintf(tmo, cap, "%.*s", (int) n, h);
    }
    static const char rsp[] = "HTTP/1.1 200 OK\r\nContent-Type: "
                              "application/json\r\nContent-Length: 2\r\n"
                              "\r\n{}";
    ssize_t w = write(fd, rsp, sizeof(rsp) - 1);
    (void) w;
    shutdown(fd, SHUT_WR);
    char sink[256];
    for (;;) {
        struct pollfd cp = {fd, POLLIN, 0};
        if (poll(&cp, 1, 20000) != 1 || read(fd, sink, sizeof(sink)) <= 0) {
            break;
        }
    }
    close(fd);
    return have > 0;
}

static void
test_address_port_range(void **state)
{
    (void) state;
    int port = 0;
    int lfd = listen_any(&port);
    /* port + 65536 named the listener's port once the resolver kept only
     * the low 16 bits. */
    char wrapped[64];
    snprintf(wrapped, sizeof(wrapped), "127.0.0.1:%d", port + 65536);
    const char *bad[] = {wrapped, "127.0.0.1:0", "127.0.0.1:65536",
        "127.0.0.1:99999999999999999999", "[::1]:70000", "127.0.0.1:",
        "127.0.0.1:80x", "127.0.0.1", "[::1]x:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        run r;
        const char *args[] = {"call", "--address", bad[i], "--timeout", "2s",
            "greeter", "Greeter.Hello", "{}", NULL};
        cli_start(&r, args);
        cli_wait(&r);
        print_message("%s: status %d: %s", bad[i], r.status, r.err);
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, "bad --address"));
        assert_false(pending(lfd));
    }
    /* The right port works, and health checks it too. */
    char ok[64];
    snprintf(ok, sizeof(ok), "127.0.0.1:%d", port);
    run r;
    const char *args[] = {"call", "--address", ok, "--timeout", "5s",
        "greeter", "Greeter.Hello", "{}", NULL};
    cli_start(&r, args);
    char tmo[64];
    assert_true(serve_one(lfd, tmo, sizeof(tmo)));
    cli_wait(&r);
    assert_int_equal(r.status, 0);
    assert_string_equal(tmo, "5000000000");
    const char *hargs[] = {"health", "--address", wrapped, "greeter", NULL};
    cli_start(&r, hargs);
    cli_wait(&r);
    assert_int_equal(r.status, 2);
    assert_non_null(strstr(r.err, "bad --address"));
    assert_false(pending(lfd));
    close(lfd);
}

static void
test_timeout_saturates(void **state)
{
    (void) state;
    int port = 0;
    int lfd = listen_any(&port);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    char want[32];
    snprintf(want, sizeof(want), "%lld",
        (long long) MICRO_DURATION_MAX_MS * 1000000LL);

    /* 10^13 seconds: far beyond what fits in int64 nanoseconds. The
     * request's Timeout (ns) is the saturated maximum, not a wrapped
     * (negative) number. */
    run r;
    const char *args[] = {"call", "--address", addr, "--timeout",
        "10000000000000", "greeter", "Greeter.Hello", "{}", NULL};
    cli_start(&r, args);
    char tmo[64];
    bool served = serve_one(lfd, tmo, sizeof(tmo));
    cli_wait(&r);
    print_message("--timeout 10000000000000: status %d, Timeout %s: %s",
        r.status, served ? tmo : "-", r.err);
    assert_true(served);
    assert_int_equal(r.status, 0);
    assert_string_equal(tmo, want);

    /* The same through Go Micro's flags (MICRO_OPT_MS options): an
     * attempt's budget is what is left of the call's, so a few ms under
     * the maximum. */
    const char *flags[] = {"10000000000000", "99999999999999999999h"};
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        const char *fargs[] = {"call", "--address", addr,
            "--client_request_timeout", flags[i], "--client_conn_timeout",
            flags[i], "greeter", "Greeter.Hello", "{}", NULL};
        cli_start(&r, fargs);
        served = serve_one(lfd, tmo, sizeof(tmo));
        cli_wait(&r);
        print_message("flags %s: status %d, Timeout %s: %s", flags[i],
            r.status, served ? tmo : "-", r.err);
        assert_true(served);
        assert_int_equal(r.status, 0);
        long long ns = strtoll(tmo, NULL, 10);
        assert_true(ns <= (long long) MICRO_DURATION_MAX_MS * 1000000LL);
        assert_true(ns >= (long long) (MICRO_DURATION_MAX_MS - 60000) *
                1000000LL);
    }
    /* Not a duration: refused before anything is sent. */
    const char *bad[] = {"1e13", "-5s", "0", "inf", "5 parsecs"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *bargs[] = {"call", "--address", addr, "--timeout",
            bad[i], "greeter", "Greeter.Hello", "{}", NULL};
        cli_start(&r, bargs);
        cli_wait(&r);
        assert_int_equal(r.status, 2);
        assert_non_null(strstr(r.err, "bad --timeout"));
        assert_false(pending(lfd));
    }
    close(lfd);
}

/* cmicro call --tls --ca_file/--cert_file/--key_file against a
 * greeter-server requiring client certificates (mTLS). */
static void
test_tls_flags(void **state)
{
    (void) state;
    t_certs c;
    t_certs_make(&c);
    char cert[256], key[256], ca[256];
    snprintf(cert, sizeof(cert), "--transport_tls_cert_file=%s", c.srv);
    snprintf(key, sizeof(key), "--transport_tls_key_file=%s", c.srv_key);
    snprintf(ca, sizeof(ca), "--transport_tls_ca_file=%s", c.ca);
    const char *extra[] = {"--transport_secure=true", cert, key, ca,
        "--transport_tls_client_auth=true", NULL};
    t_proc g;
    char addr[64];
    assert_int_equal(t_start_greeter(&g, addr, sizeof(addr), extra), 0);
    run r;
    const char *ok[] = {"call", "--tls", "--ca_file", c.ca, "--cert_file",
        c.cli, "--key_file", c.cli_key, "--address", addr, "greeter",
        "Greeter.Hello", "{\"name\":\"tls\"}", NULL};
    cli_start(&r, ok);
    cli_wait(&r);
    print_message("  with a client certificate: status %d %s\n", r.status,
        r.err);
    assert_int_equal(r.status, 0);
    const char *nocert[] = {"call", "--tls", "--ca_file", c.ca, "--address",
        addr, "greeter", "Greeter.Hello", "{}", NULL};
    cli_start(&r, nocert);
    cli_wait(&r);
    print_message("  without: status %d %s\n", r.status, r.err);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "certificate"));
    const char *noca[] = {"call", "--tls", "--cert_file", c.cli,
        "--key_file", c.cli_key, "--address", addr, "greeter",
        "Greeter.Hello", "{}", NULL};
    cli_start(&r, noca);
    cli_wait(&r);
    print_message("  unknown CA: status %d %s\n", r.status, r.err);
    assert_int_not_equal(r.status, 0);
    assert_non_null(strstr(r.err, "certificate"));
    t_proc_stop(&g, SIGTERM, 10000);
    t_certs_free(&c);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_port_range),
        cmocka_unit_test(test_timeout_saturates),
        cmocka_unit_test(test_tls_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
