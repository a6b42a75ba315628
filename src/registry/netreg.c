/* Helpers of the HTTP-based registries (netreg.h). */
#include "core/internal.h"
#include "registry/netreg.h"

#include <time.h>

#define MAX_ANSWER ((size_t) 256 << 20)

int
micro__netreg_addrs(const char *list, const char *port, const char *comp,
    const char *server, char ***eps, size_t *n, bool *tls)
{
    *eps = NULL;
    *n = 0;
    const char *p = list;
    while (*p != '\0') {
        while (*p == ',' || *p == ' ') {
            p++;
        }
        size_t len = strcspn(p, ", ");
        if (len == 0) {
            break;
        }
        const char *s = p;
        p += len;
        if (len > 8 && strncmp(s, "https://", 8) == 0) {
            if (tls == NULL) {
                MICRO_LOGF(MICRO_LOG_ERR, comp,
                    "registry_address %.*s: TLS to %s is not supported in "
                    "this version; use http:// addresses", (int) len, s,
                    server);
                return MICRO_EINVAL;
            }
            *tls = true;
            s += 8;
            len -= 8;
        } else if (len > 7 && strncmp(s, "http://", 7) == 0) {
            s += 7;
            len -= 7;
        }
        while (len > 0 && s[len - 1] == '/') {
            len--;
        }
        bool bracket = len > 0 && s[0] == '[';
        bool has_port = bracket
            ? memchr(s, ']', len) != NULL && s[len - 1] != ']'
            : memchr(s, ':', len) != NULL;
        size_t cap = len + strlen(port) + 2;
        char *ep = micro__malloc(cap);
        if (ep == NULL) {
            return MICRO_ENOMEM;
        }
        snprintf(ep, cap, "%.*s%s%s", (int) len, s, has_port ? "" : ":",
            has_port ? "" : port);
        char **grown = micro__realloc(*eps, (*n + 1) * sizeof(*grown));
        if (grown == NULL) {
            micro__free(ep);
            return MICRO_ENOMEM;
        }
        *eps = grown;
        (*eps)[(*n)++] = ep;
    }
    if (*n == 0) {
        MICRO_LOGF(MICRO_LOG_ERR, comp, "registry_address \"%s\": no address",
            list);
        return MICRO_EINVAL;
    }
    return 0;
}

int
micro__netreg_collect(void *arg, micro__http_call *call, const char *p,
    size_t n)
{
    (void) call;
    micro_buf *b = arg;
    if (n > MAX_ANSWER - b->len) {
        return MICRO_EMSGSIZE;
    }
    return micro_buf_append(b, p, n);
}

void
micro__netreg_timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

const char *
micro__netreg_opt_or_env(const micro_options *opts, const char *opt,
    const char *env)
{
    const char *v = micro_options_get_str(opts, opt);
    if (v == NULL || v[0] == '\0') {
        v = getenv(env);
    }
    return v != NULL && v[0] != '\0' ? v : NULL;
}

bool
micro__netreg_fail(micro__netreg_log *l, pthread_mutex_t *mu, uint64_t *n)
{
    pthread_mutex_lock(mu);
    *n = ++l->n_fail;
    int64_t now = micro__now_ms();
    bool log = !l->down || now - l->last_log >= MICRO__NETREG_LOG_EVERY_MS;
    l->down = true;
    if (log) {
        l->last_log = now;
    }
    pthread_mutex_unlock(mu);
    return log;
}

bool
micro__netreg_ok(micro__netreg_log *l, pthread_mutex_t *mu, uint64_t *n)
{
    pthread_mutex_lock(mu);
    bool was = l->down;
    *n = l->n_fail;
    l->down = false;
    pthread_mutex_unlock(mu);
    return was;
}

bool
micro__netreg_bad(micro__netreg_log *l, pthread_mutex_t *mu, uint64_t *n)
{
    pthread_mutex_lock(mu);
    *n = ++l->n_bad;
    int64_t now = micro__now_ms();
    bool log = l->last_bad_log == 0 ||
        now - l->last_bad_log >= MICRO__NETREG_LOG_EVERY_MS;
    if (log) {
        l->last_bad_log = now;
    }
    pthread_mutex_unlock(mu);
    return log;
}

void
micro__netreg_fuzz_event(void *arg, micro_registry_action a,
    const micro_registry_service *s)
{
    size_t *seen = arg;
    *seen += (size_t) a + s->n_nodes + strlen(s->name);
    for (size_t i = 0; i < s->n_nodes; i++) {
        *seen += strlen(s->nodes[i].id ? s->nodes[i].id : "");
    }
}

int
micro__netreg_watch(micro__watchers *ws, pthread_mutex_t *mu,
    micro__netreg_wthread *wt, void *(*main)(void *), void *st,
    micro_registry_watch_fn fn, void *arg, uint64_t *token)
{
    int rc = micro__watchers_add(ws, fn, arg, token);
    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(mu);
    if (!wt->on) {
        wt->on = pthread_create(&wt->th, NULL, main, st) == 0;
        if (!wt->on) {
            micro__watchers_remove(ws, *token);
            pthread_mutex_unlock(mu);
            return MICRO_ENOMEM;
        }
    }
    while (!wt->listed) {
        pthread_cond_wait(&wt->ready, mu);
    }
    pthread_mutex_unlock(mu);
    return 0;
}

void
micro__netreg_listed(micro__netreg_wthread *wt, pthread_mutex_t *mu)
{
    pthread_mutex_lock(mu);
    wt->listed = true;
    pthread_cond_broadcast(&wt->ready);
    pthread_mutex_unlock(mu);
}

void
micro__netreg_unwatch(micro__watchers *ws, pthread_mutex_t *mu,
    uint64_t token)
{
    pthread_mutex_lock(mu);
    micro__watchers_remove(ws, token);
    pthread_mutex_unlock(mu);
}
