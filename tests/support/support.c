#include "support/support.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *volatile watchdog_what;

static void
watchdog_say(const char *s)
{
    ssize_t r = write(2, s, strlen(s));
    (void) r;
}

static void
watchdog_fire(int sig)
{
    (void) sig;
    /* Only async-signal-safe calls here (write, strlen, _exit). */
    watchdog_say("watchdog: ");
    watchdog_say(watchdog_what != NULL ? watchdog_what : "test");
    watchdog_say(" still running when its watchdog fired (deadlock?)\n");
    _exit(1);
}

void
t_watchdog(unsigned seconds, const char *what)
{
    if (seconds == 0) {
        alarm(0);
        return;
    }
    watchdog_what = what;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watchdog_fire;
    sigaction(SIGALRM, &sa, NULL);
    alarm(seconds);
}

int64_t
t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
t_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *) &a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *) &a, &len) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* Children still running when the test exits (an assertion failed before
 * its cleanup, say) are killed, so no server outlives its test and keeps
 * ctest waiting on the inherited output pipe. */
#define T_MAX_CHILDREN 64
static pid_t t_children[T_MAX_CHILDREN];

static void
t_kill_children(void)
{
    for (int i = 0; i < T_MAX_CHILDREN; i++) {
        if (t_children[i] > 0) {
            kill(t_children[i], SIGKILL);
            waitpid(t_children[i], NULL, 0);
            t_children[i] = 0;
        }
    }
}

static void
t_track(pid_t pid, bool add)
{
    static bool registered;
    if (!registered) {
        registered = true;
        atexit(t_kill_children);
    }
    for (int i = 0; i < T_MAX_CHILDREN; i++) {
        if (add ? t_children[i] == 0 : t_children[i] == pid) {
            t_children[i] = add ? pid : 0;
            return;
        }
    }
}

int
t_proc_spawn(t_proc *p, const char *path, char *const argv[])
{
    int fds[2];
    memset(p, 0, sizeof(*p));
    if (pipe(fds) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        /* Die with the test, whatever happens to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(path, argv);
        _exit(127);
    }
    close(fds[1]);
    t_track(pid, true);
    p->pid = pid;
    p->out_fd = fds[0];
    return 0;
}

int
t_proc_wait_line(t_proc *p, const char *needle, int ms)
{
    char buf[4096];
    size_t len = 0;
    int64_t until = t_now_ms() + ms;
    while (t_now_ms() < until) {
        struct pollfd pfd = {p->out_fd, POLLIN, 0};
        int left = (int) (until - t_now_ms());
        if (poll(&pfd, 1, left > 0 ? left : 0) <= 0) {
            continue;
        }
        ssize_t n = read(p->out_fd, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0) {
            return -1;
        }
        len += (size_t) n;
        buf[len] = '\0';
        char *hit = strstr(buf, needle);
        if (hit != NULL) {
            char *nl = strchr(hit, '\n');
            size_t l = nl ? (size_t) (nl - hit) : strlen(hit);
            if (l >= sizeof(p->line)) {
                l = sizeof(p->line) - 1;
            }
            memcpy(p->line, hit, l);
            p->line[l] = '\0';
            return 0;
        }
        if (len == sizeof(buf) - 1) {
            len = 0;
        }
    }
    return -1;
}

int
t_proc_stop(t_proc *p, int sig, int ms)
{
    if (p->pid <= 0) {
        return -1;
    }
    kill(p->pid, sig);
    t_track(p->pid, false);
    int64_t until = t_now_ms() + ms;
    int status = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            break;
        }
        if (t_now_ms() > until) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            close(p->out_fd);
            p->pid = 0;
            return -1;
        }
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    close(p->out_fd);
    p->pid = 0;
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return 128 + WTERMSIG(status);
}

const char *
t_bin(const char *name, char *buf, size_t cap)
{
    const char *dir = getenv("MICRO_BIN_DIR");
    snprintf(buf, cap, "%s/%s", dir ? dir : MICRO_BIN_DIR, name);
    return buf;
}

int
t_wait_port(const char *addr, int ms)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL) {
        return -1;
    }
    char host[64];
    snprintf(host, sizeof(host), "%.*s", (int) (colon - addr), addr);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t) strtol(colon + 1, NULL, 10));
    inet_pton(AF_INET, host, &a.sin_addr);
    int64_t until = t_now_ms() + ms;
    while (t_now_ms() < until) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *) &a, sizeof(a)) == 0) {
            close(fd);
            return 0;
        }
        close(fd);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

int
t_start_greeter(t_proc *p, char *addr, size_t cap, const char *const extra[])
{
    char path[512];
    char flag[64];
    int port = t_free_port();
    snprintf(addr, cap, "127.0.0.1:%d", port);
    snprintf(flag, sizeof(flag), "--server_address=%s", addr);
    char *argv[16] = {"greeter-server", flag, "--registry=memory"};
    int n = 3;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 15; i++) {
        argv[n++] = (char *) extra[i];
    }
    argv[n] = NULL;
    if (t_proc_spawn(p, t_bin("greeter-server", path, sizeof(path)), argv) !=
        0) {
        return -1;
    }
    if (t_proc_wait_line(p, "listening on", 10000) != 0) {
        t_proc_stop(p, SIGKILL, 1000);
        return -1;
    }
    return 0;
}

long
t_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

const char *
t_etcd_bin(void)
{
    static const char *const cands[] = {"/usr/bin/etcd",
        "/usr/local/bin/etcd", "/usr/sbin/etcd"};
    for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++) {
        if (access(cands[i], X_OK) == 0) {
            return cands[i];
        }
    }
    return NULL;
}

const char *
t_consul_bin(const char **tried)
{
    static char path[512];
    const char *env = getenv("MICRO_CONSUL_BIN");
    const char *home = getenv("HOME");
    const char *cache = getenv("XDG_CACHE_HOME");
    if (env != NULL && env[0] != '\0') {
        snprintf(path, sizeof(path), "%s", env);
    } else if (cache != NULL && cache[0] != '\0') {
        snprintf(path, sizeof(path), "%s/cmicro/consul-1.14.8/consul", cache);
    } else {
        snprintf(path, sizeof(path), "%s/.cache/cmicro/consul-1.14.8/consul",
            home ? home : "");
    }
    if (tried != NULL) {
        *tried = path;
    }
    return access(path, X_OK) == 0 ? path : NULL;
}

void
t_opts_flags(micro_options *o, const char *const *kv)
{
    for (size_t i = 0; kv != NULL && kv[i] != NULL; i++) {
        char flag[512];
        snprintf(flag, sizeof(flag), "--%s", kv[i]);
        char *argv[] = {(char *) "t", flag, NULL};
        int argc = 2;
        if (micro_options_parse_args(o, &argc, argv, NULL) != 0 ||
            argc != 1) {
            fprintf(stderr, "t_opts_flags: %s not taken\n", flag);
            abort();
        }
    }
}

char *
t_kv(const char *name, const char *value)
{
    static char buf[16][400];
    static int next;
    char *b = buf[next++ % 16];
    snprintf(b, 400, "%s=%s", name, value);
    return b;
}
