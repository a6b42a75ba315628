/* Test support: processes, ports, waiting with deadlines. */
#ifndef CMICRO_TEST_SUPPORT_H
#define CMICRO_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmicro/micro.h>

/* A free TCP port on 127.0.0.1 (bound then released). */
int t_free_port(void);

/* A spawned child process with its stdout captured. */
typedef struct t_proc {
    pid_t pid;
    int out_fd;
    char line[256]; /* the first line it printed (after t_proc_wait_line) */
} t_proc;

/* Spawn path with argv (NULL-terminated; argv[0] included). */
int t_proc_spawn(t_proc *p, const char *path, char *const argv[]);
/* Wait up to ms for a stdout line containing needle; 0 when seen. */
int t_proc_wait_line(t_proc *p, const char *needle, int ms);
/* Send sig; wait up to ms for exit; returns the exit status or -1. */
int t_proc_stop(t_proc *p, int sig, int ms);

/* Path of a built program: $MICRO_BIN_DIR/name (or the compiled-in dir). */
const char *t_bin(const char *name, char *buf, size_t cap);

/* Start greeter-server on a free port; addr receives "127.0.0.1:PORT". */
int t_start_greeter(t_proc *p, char *addr, size_t cap,
    const char *const extra[]);

/* Wait until a TCP connect to addr succeeds (up to ms). */
int t_wait_port(const char *addr, int ms);

int64_t t_now_ms(void);

/* The etcd binary (Debian's etcd-server), or NULL when not installed. */
const char *t_etcd_bin(void);
/* The Consul agent scripts/consul.sh builds: MICRO_CONSUL_BIN, else
 * $XDG_CACHE_HOME (or ~/.cache)/cmicro/consul-1.14.8/consul; NULL when it
 * is not there (the path tried is in *tried, static). */
const char *t_consul_bin(const char **tried);

/* Apply "name=value" pairs (NULL-terminated) to o as --name=value flags,
 * the path the command line takes (asserts each is known). */
void t_opts_flags(micro_options *o, const char *const *kv);
/* "name=value" in one of 16 rotating static buffers. */
char *t_kv(const char *name, const char *value);

/* This process's resident set in KiB (/proc/self/statm), 0 if unknown. */
long t_rss_kib(void);

/* 1 when this build runs under a sanitizer whose allocator makes resident
 * memory meaningless as a bound (ASan's quarantine keeps freed memory;
 * TSan maps shadow memory): memory-bound tests then check their logical
 * bounds only, and say so. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_SANITIZED_RSS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define T_SANITIZED_RSS 1
#endif
#endif
#ifndef T_SANITIZED_RSS
#define T_SANITIZED_RSS 0
#endif

/*
 * A watchdog for tests that would hang on a deadlock: after seconds, the
 * process prints "watchdog: <what> still running after N s" to stderr and
 * exits 1, so that a regression fails with a message instead of running
 * into ctest's timeout. t_watchdog(0, NULL) disarms it. Uses SIGALRM
 * (alarm); one watchdog per process.
 */
void t_watchdog(unsigned seconds, const char *what);

#endif
