/* Levelled logging through a replaceable logger (nng style). */
#include "core/internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

/* Longest message text passed to a logger; longer ones are truncated. */
#define LOG_MSG_MAX 1024

static atomic_int log_level = MICRO_LOG_NOTICE;
static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static _Atomic(micro_logger_fn) log_fn = micro_log_stderr;
static _Atomic(void *) log_arg = NULL;

static void
log_init(void)
{
    static const struct {
        const char *name;
        micro_log_level lvl;
    } names[] = {
        {"err", MICRO_LOG_ERR},
        {"error", MICRO_LOG_ERR},
        {"warn", MICRO_LOG_WARN},
        {"warning", MICRO_LOG_WARN},
        {"notice", MICRO_LOG_NOTICE},
        {"info", MICRO_LOG_INFO},
        {"debug", MICRO_LOG_DEBUG},
        {"none", MICRO_LOG_NONE},
    };
    const char *env = getenv("MICRO_LOG_LEVEL");
    if (env == NULL) {
        return;
    }
    for (size_t i = 0; i < MICRO_ARRAY_LEN(names); i++) {
        if (strcasecmp(env, names[i].name) == 0) {
            atomic_store(&log_level, (int) names[i].lvl);
            return;
        }
    }
}

static void
log_ensure_init(void)
{
    pthread_once(&log_once, log_init);
}

void
micro_log_set_logger(micro_logger_fn fn, void *arg)
{
    if (fn == NULL) {
        fn = micro_log_stderr;
        arg = NULL;
    }
    atomic_store(&log_arg, arg);
    atomic_store(&log_fn, fn);
}

void
micro_log_set_level(micro_log_level lvl)
{
    /* Read the environment first so that it cannot override this later. */
    log_ensure_init();
    atomic_store(&log_level, (int) lvl);
}

bool
micro_log_enabled(micro_log_level lvl)
{
    log_ensure_init();
    return lvl != MICRO_LOG_NONE &&
        (int) lvl <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

static const char *
level_name(micro_log_level lvl)
{
    switch (lvl) {
    case MICRO_LOG_ERR:
        return "ERROR";
    case MICRO_LOG_WARN:
        return "WARN";
    case MICRO_LOG_NOTICE:
        return "NOTICE";
    case MICRO_LOG_INFO:
        return "INFO";
    case MICRO_LOG_DEBUG:
        return "DEBUG";
    default:
        return "LOG";
    }
}

void
micro_log_stderr(
    void *arg, micro_log_level lvl, const char *component, const char *msg)
{
    (void) arg;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    /* One buffer and one fwrite so that concurrent lines never mix. */
    char line[LOG_MSG_MAX + 256];
    int n = snprintf(line, sizeof(line),
        "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: %s\n", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
        (int) (ts.tv_nsec / 1000000), level_name(lvl),
        component != NULL ? component : "micro", msg != NULL ? msg : "");
    if (n < 0) {
        return;
    }
    size_t len = (size_t) n;
    if (len >= sizeof(line)) {
        len = sizeof(line) - 1;
        line[len - 1] = '\n';
    }
    fwrite(line, 1, len, stderr);
}

void
micro_log_null(
    void *arg, micro_log_level lvl, const char *component, const char *msg)
{
    (void) arg;
    (void) lvl;
    (void) component;
    (void) msg;
}

void
micro_log(micro_log_level lvl, const char *component, const char *fmt, ...)
{
    if (!micro_log_enabled(lvl) || fmt == NULL) {
        return;
    }
    char msg[LOG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    /* A message is one line: newlines from (possibly remote) data must
     * not forge extra log lines. */
    for (char *p = msg; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    micro_logger_fn fn = atomic_load(&log_fn);
    void *arg = atomic_load(&log_arg);
    fn(arg, lvl, component, msg);
}
