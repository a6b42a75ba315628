/*
 * Broker "memory": in-process publish/subscribe within one broker object
 * (share the object to connect services in one process). Broadcast
 * subscriptions each get a copy; a queue group gets one copy, delivered to
 * a random member (as Go Micro's memory broker picks one). A publish
 * delivers to all of them or, when a copy cannot be made, to none.
 */
#include "broker/broker_internal.h"

#include <pthread.h>

typedef struct mem {
    pthread_rwlock_t lock;
    micro_sub **subs;
    size_t n, cap;
    bool connected;
    pthread_mutex_t rng_mu; /* publishers share the lock's read side */
    micro__rng rng;         /* queue-group picks */
} mem;

static int
mem_init(void *st, micro_broker *b, micro_loop *loop, micro_registry *reg,
    const micro_options *opts)
{
    (void) b;
    (void) loop;
    (void) reg;
    (void) opts;
    mem *m = st;
    if (pthread_rwlock_init(&m->lock, NULL) != 0) {
        return MICRO_ENOMEM;
    }
    if (pthread_mutex_init(&m->rng_mu, NULL) != 0) {
        pthread_rwlock_destroy(&m->lock);
        return MICRO_ENOMEM;
    }
    micro__rng_seed(&m->rng, 0);
    return 0;
}

void
micro__broker_memory_seed(micro_broker *b, uint64_t seed)
{
    if (b == NULL || micro__broker_ops(b) != &micro_broker_memory_ops) {
        return;
    }
    mem *m = micro__broker_state(b);
    pthread_mutex_lock(&m->rng_mu);
    micro__rng_seed(&m->rng, seed);
    pthread_mutex_unlock(&m->rng_mu);
}

static int
mem_connect(void *st)
{
    mem *m = st;
    pthread_rwlock_wrlock(&m->lock);
    m->connected = true;
    pthread_rwlock_unlock(&m->lock);
    return 0;
}

static int
mem_disconnect(void *st)
{
    mem *m = st;
    pthread_rwlock_wrlock(&m->lock);
    m->connected = false;
    pthread_rwlock_unlock(&m->lock);
    return 0;
}

/* One delivery of a publish: a subscription and its copy. */
typedef struct target {
    micro_sub *sub;
    micro_msg *copy;
} target;

/*
 * The subscriptions msg goes to: every broadcast one, and one member of
 * each queue group (a random one, as Go Micro's memory broker picks).
 * Lock held. Returns how many, up to cap (more are counted, not stored).
 */
static size_t
pick_targets(mem *m, const char *topic, target *t, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++) {
        micro_sub *s = m->subs[i];
        if (strcmp(micro_sub_topic(s), topic) != 0) {
            continue;
        }
        const char *q = micro_sub_queue(s);
        if (q[0] == '\0') {
            if (n < cap) {
                t[n].sub = s;
            }
            n++;
            continue;
        }
        /* First member of its group: pick one member for the group. */
        bool seen = false;
        uint32_t members = 0;
        for (size_t j = 0; j < m->n; j++) {
            micro_sub *o = m->subs[j];
            if (strcmp(micro_sub_topic(o), topic) == 0 &&
                strcmp(micro_sub_queue(o), q) == 0) {
                seen = seen || j < i;
                members++;
            }
        }
        if (seen) {
            continue;
        }
        pthread_mutex_lock(&m->rng_mu);
        uint32_t pick = micro__rng_below(&m->rng, members);
        pthread_mutex_unlock(&m->rng_mu);
        for (size_t j = i; j < m->n; j++) {
            micro_sub *o = m->subs[j];
            if (strcmp(micro_sub_topic(o), topic) == 0 &&
                strcmp(micro_sub_queue(o), q) == 0 && pick-- == 0) {
                if (n < cap) {
                    t[n].sub = o;
                }
                n++;
                break;
            }
        }
    }
    return n;
}

/*
 * All or nothing: every copy is made before any is delivered, so a
 * publish that fails for memory delivers nothing (and can be retried
 * without duplicates). A full subscription queue drops its copy (counted
 * by micro_broker_deliver); that is not a publish error.
 */
static int
mem_publish(void *st, const char *topic, const micro_msg *msg)
{
    mem *m = st;
    pthread_rwlock_rdlock(&m->lock);
    if (!m->connected) {
        pthread_rwlock_unlock(&m->lock);
        return MICRO_ECLOSED;
    }
    target small[16];
    target *t = small;
    size_t n = pick_targets(m, topic, small, MICRO_ARRAY_LEN(small));
    int rc = 0;
    if (n > MICRO_ARRAY_LEN(small)) {
        t = micro__calloc(n, sizeof(*t));
        if (t == NULL) {
            rc = MICRO_ENOMEM;
        } else {
            size_t again = pick_targets(m, topic, t, n);
            MICRO_ASSERT(again == n); /* the lock is held */
        }
    }
    size_t copied = 0;
    for (; rc == 0 && copied < n; copied++) {
        rc = micro__msg_copy(msg, &t[copied].copy);
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            (void) micro_broker_deliver(t[i].sub, &t[i].copy);
            micro_msg_free(t[i].copy); /* NULL when taken */
        }
    } else {
        for (size_t i = 0; i + 1 < copied; i++) {
            micro_msg_free(t[i].copy);
        }
    }
    pthread_rwlock_unlock(&m->lock);
    if (t != small) {
        micro__free(t);
    }
    return rc;
}

static int
mem_subscribe(void *st, micro_sub *sub)
{
    mem *m = st;
    pthread_rwlock_wrlock(&m->lock);
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        micro_sub **p = micro__realloc(m->subs, cap * sizeof(*p));
        if (p == NULL) {
            pthread_rwlock_unlock(&m->lock);
            return MICRO_ENOMEM;
        }
        m->subs = p;
        m->cap = cap;
    }
    m->subs[m->n++] = sub;
    pthread_rwlock_unlock(&m->lock);
    return 0;
}

static int
mem_unsubscribe(void *st, micro_sub *sub)
{
    mem *m = st;
    pthread_rwlock_wrlock(&m->lock);
    for (size_t i = 0; i < m->n; i++) {
        if (m->subs[i] == sub) {
            memmove(&m->subs[i], &m->subs[i + 1],
                (m->n - i - 1) * sizeof(*m->subs));
            m->n--;
            break;
        }
    }
    pthread_rwlock_unlock(&m->lock);
    return 0;
}

static const char *
mem_address(void *st)
{
    (void) st;
    return "memory";
}

static void
mem_fini(void *st)
{
    mem *m = st;
    micro__free(m->subs);
    pthread_mutex_destroy(&m->rng_mu);
    pthread_rwlock_destroy(&m->lock);
}

const micro_broker_ops micro_broker_memory_ops = {
    .abi = MICRO_BROKER_ABI,
    .name = "memory",
    .state_size = sizeof(mem),
    .init = mem_init,
    .connect = mem_connect,
    .disconnect = mem_disconnect,
    .publish = mem_publish,
    .subscribe = mem_subscribe,
    .unsubscribe = mem_unsubscribe,
    .address = mem_address,
    .fini = mem_fini,
};
