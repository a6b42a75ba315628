/* Shared by the broker tests: counting subscribers and waiting. */
#ifndef CMICRO_TESTS_BT_H
#define CMICRO_TESTS_BT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmicro/micro.h>

#define BT_MAX 20000

typedef struct bt_counter {
    atomic_long n;
    atomic_long errors;
    int sleep_ms;  /* slow handler */
    int fail;      /* return an error */
    _Atomic unsigned char *seen; /* shared across queue members, or NULL */
    atomic_long dups;
} bt_counter;

static inline void
bt_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline int64_t
bt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Body is the decimal index of the message. */
static inline int
bt_handler(micro_event *ev, void *arg)
{
    bt_counter *c = arg;
    size_t len = 0;
    const char *b = micro_event_body(ev, &len);
    char tmp[32] = "";
    memcpy(tmp, b, len < sizeof(tmp) - 1 ? len : sizeof(tmp) - 1);
    long i = strtol(tmp, NULL, 10);
    if (c->seen != NULL && i >= 0 && i < BT_MAX) {
        if (atomic_fetch_add(&c->seen[i], 1) != 0) {
            atomic_fetch_add(&c->dups, 1);
        }
    }
    atomic_fetch_add(&c->n, 1);
    if (c->sleep_ms > 0) {
        bt_sleep_ms(c->sleep_ms);
    }
    return c->fail ? MICRO_EIO : 0;
}

static inline int
bt_publish_i(micro_broker *b, const char *topic, long i)
{
    micro_msg *m = NULL;
    if (micro_msg_new(&m) != 0) {
        return MICRO_ENOMEM;
    }
    char body[32];
    int n = snprintf(body, sizeof(body), "%ld", i);
    micro_msg_set_header(m, "Content-Type", "text/plain");
    micro_msg_set_body(m, body, (size_t) n);
    int rc = micro_broker_publish(b, topic, m);
    micro_msg_free(m);
    return rc;
}

/* Wait up to ms for *v >= want. */
static inline bool
bt_wait(atomic_long *v, long want, int ms)
{
    int64_t until = bt_now_ms() + ms;
    while (atomic_load(v) < want) {
        if (bt_now_ms() > until) {
            return false;
        }
        bt_sleep_ms(2);
    }
    return true;
}

#endif
