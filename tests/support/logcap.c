#include "support/logcap.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "support/support.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char logbuf[32768];

static void
capture(void *arg, micro_log_level lvl, const char *component,
    const char *msg)
{
    (void) arg;
    (void) lvl;
    pthread_mutex_lock(&log_mu);
    size_t l = strlen(logbuf);
    if (l + strlen(msg) + 64 < sizeof(logbuf)) {
        snprintf(logbuf + l, sizeof(logbuf) - l, "[%s] %s\n", component, msg);
    }
    pthread_mutex_unlock(&log_mu);
}

void
t_logcap_install(micro_log_level lvl)
{
    micro_log_set_logger(capture, NULL);
    micro_log_set_level(lvl);
}

void
t_logcap_uninstall(void)
{
    micro_log_set_logger(NULL, NULL);
}

void
t_logcap_reset(void)
{
    pthread_mutex_lock(&log_mu);
    logbuf[0] = '\0';
    pthread_mutex_unlock(&log_mu);
}

const char *
t_logcap_text(void)
{
    return logbuf;
}

bool
t_logcap_has(const char *a, const char *b)
{
    int64_t until = t_now_ms() + 10000;
    for (;;) {
        bool found = false;
        pthread_mutex_lock(&log_mu);
        for (const char *p = logbuf; p != NULL && *p != '\0';) {
            const char *e = strchr(p, '\n');
            size_t n = e ? (size_t) (e - p) : strlen(p);
            char line[1024];
            snprintf(line, sizeof(line), "%.*s", (int) n, p);
            if (strstr(line, a) != NULL && (b == NULL || strstr(line, b))) {
                found = true;
                break;
            }
            p = e ? e + 1 : NULL;
        }
        pthread_mutex_unlock(&log_mu);
        if (found || t_now_ms() > until) {
            if (!found) {
                print_message("log so far:\n%s", logbuf);
            }
            return found;
        }
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
}
