/* Test support for registry tests (reg.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support/reg.h"
#include "support/support.h"

void
t_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

void
t_svc_make(micro_registry_service *s, const char *name, const char *v,
    size_t n, const char *id_prefix)
{
    memset(s, 0, sizeof(*s));
    s->name = strdup(name);
    s->version = strdup(v);
    assert_int_equal(micro_metadata_set(&s->metadata, "owner", "test"), 0);
    s->endpoints = calloc(1, sizeof(micro_endpoint));
    s->endpoints[0].name = strdup("Greeter.Hello");
    assert_int_equal(
        micro_metadata_set(&s->endpoints[0].metadata, "stream", "false"), 0);
    s->n_endpoints = 1;
    s->nodes = calloc(n ? n : 1, sizeof(micro_node));
    s->n_nodes = n;
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s%zu", id_prefix, i);
        s->nodes[i].id = strdup(buf);
        snprintf(buf, sizeof(buf), "10.0.%zu.%zu:%zu", i / 250, i % 250,
            8000 + i % 1000);
        s->nodes[i].address = strdup(buf);
        assert_int_equal(
            micro_metadata_set(&s->nodes[i].metadata, "n", "v"), 0);
    }
}

size_t
t_count_nodes(micro_registry *r, const char *name, int *rc_out)
{
    micro_registry_service *out = NULL;
    size_t n = 0, total = 0;
    int rc = micro_registry_get_service(r, name, &out, &n);
    for (size_t i = 0; i < n; i++) {
        total += out[i].n_nodes;
    }
    micro_registry_services_free(out, n);
    if (rc_out != NULL) {
        *rc_out = rc;
    }
    return total;
}

bool
t_wait_nodes(micro_registry *r, const char *name, size_t want, int ms)
{
    int64_t deadline = t_now_ms() + ms;
    while (t_now_ms() < deadline) {
        if (t_count_nodes(r, name, NULL) == want) {
            return true;
        }
        t_sleep_ms(50);
    }
    return t_count_nodes(r, name, NULL) == want;
}

void
t_on_event(void *arg, micro_registry_action a, const micro_registry_service *s)
{
    t_recorder *rc = arg;
    pthread_mutex_lock(&rc->mu);
    if (rc->n < T_REC_MAX) {
        t_rec_ev *e = &rc->ev[rc->n++];
        e->a = a;
        snprintf(e->name, sizeof(e->name), "%s", s->name);
        snprintf(e->node, sizeof(e->node), "%s",
            s->n_nodes > 0 ? s->nodes[0].id : "");
        e->n_nodes = s->n_nodes;
    }
    pthread_mutex_unlock(&rc->mu);
}

long
t_wait_event(t_recorder *rc, micro_registry_action a, const char *name,
    const char *node, int ms)
{
    int64_t deadline = t_now_ms() + ms;
    for (;;) {
        pthread_mutex_lock(&rc->mu);
        for (size_t i = 0; i < rc->n; i++) {
            t_rec_ev *e = &rc->ev[i];
            if (e->a == a && strcmp(e->name, name) == 0 &&
                (node == NULL || strcmp(e->node, node) == 0)) {
                long n = (long) e->n_nodes;
                pthread_mutex_unlock(&rc->mu);
                return n;
            }
        }
        pthread_mutex_unlock(&rc->mu);
        if (t_now_ms() > deadline) {
            return -1;
        }
        t_sleep_ms(20);
    }
}

size_t
t_count_events(t_recorder *rc, micro_registry_action a, const char *name)
{
    size_t k = 0;
    pthread_mutex_lock(&rc->mu);
    for (size_t i = 0; i < rc->n; i++) {
        k += rc->ev[i].a == a && strcmp(rc->ev[i].name, name) == 0;
    }
    pthread_mutex_unlock(&rc->mu);
    return k;
}

void
t_rec_reset(t_recorder *rc)
{
    pthread_mutex_lock(&rc->mu);
    rc->n = 0;
    pthread_mutex_unlock(&rc->mu);
}

micro_registry *
t_reg_new_kv(const char *reg, const char *const *kv)
{
    micro_options *o = NULL;
    assert_int_equal(micro_options_new(&o), 0);
    assert_int_equal(micro_options_set_ms(o, "registry_timeout", 3000), 0);
    t_opts_flags(o, kv);
    micro_registry *r = NULL;
    assert_int_equal(micro_registry_new_by_name(&r, reg, o), 0);
    micro_options_free(o);
    return r;
}

void
t_svc_one(micro_registry_service *s, micro_node *nd, const char *name)
{
    memset(s, 0, sizeof(*s));
    memset(nd, 0, sizeof(*nd));
    s->name = (char *) name;
    s->version = (char *) "1.0";
    nd->id = (char *) name;
    nd->address = (char *) "10.0.0.1:8080";
    s->nodes = nd;
    s->n_nodes = 1;
}

int
t_reg_register_one(micro_registry *r, const char *name)
{
    micro_registry_service s;
    micro_node nd;
    t_svc_one(&s, &nd, name);
    int64_t until = t_now_ms() + 60000;
    int rc;
    while ((rc = micro_registry_register(r, &s, 60000)) != 0 &&
        t_now_ms() < until && rc != MICRO_ECERT && rc != MICRO_ETLS) {
        t_sleep_ms(100);
    }
    return rc;
}

micro_registry *
t_rec_watch(t_recorder *rc, micro_registry *w, uint64_t *tok)
{
    t_rec_reset(rc);
    assert_int_equal(micro_registry_watch(w, t_on_event, rc, tok), 0);
    return w;
}

void
t_rec_unwatch(micro_registry *w, uint64_t tok)
{
    micro_registry_unwatch(w, tok);
    micro_registry_free(w);
}

int
t_reg_child(const char *name, const char *addr, int64_t ttl_ms)
{
    micro_registry *r = NULL;
    micro_options *o = NULL;
    micro_options_new(&o);
    micro_options_set_str(o, "registry_address", addr);
    if (micro_registry_new_by_name(&r, name, o) != 0) {
        return 1;
    }
    micro_registry_service s = {.name = "doomed", .version = "1"};
    micro_node node = {.id = "doomed-1", .address = "127.0.0.1:1"};
    s.nodes = &node;
    s.n_nodes = 1;
    if (micro_registry_register(r, &s, ttl_ms) != 0) {
        return 1;
    }
    printf("registered\n");
    fflush(stdout);
    for (;;) {
        pause();
    }
}

/* The names list_services gives, against want (sorted). */
static void
check_list(micro_registry *r, const char *const *want, size_t n_want)
{
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_list_services(r, &out, &n), 0);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(out[i].name, want[i]);
    }
    micro_registry_services_free(out, n);
}

static int
str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

void
t_reg_crud(micro_registry *r, micro_registry_service *s,
    const char *const *base, size_t n_base)
{
    const char *name = s->name;
    micro_registry_service *out = NULL;
    size_t n = 0;
    micro_registry_service s2;
    t_svc_make(&s2, name, "2.0", 1, "v2-");
    assert_int_equal(micro_registry_register(r, &s2, 10000), 0);
    assert_int_equal(micro_registry_get_service(r, name, &out, &n), 0);
    assert_int_equal(n, 2);
    micro_registry_services_free(out, n);

    /* Records are per node: a record without one is refused, as Go's
     * plugins do. */
    micro_registry_service none = {.name = "nodeless", .version = "1"};
    assert_int_equal(micro_registry_register(r, &none, 10000), MICRO_EINVAL);
    assert_int_equal(micro_registry_deregister(r, &none), MICRO_EINVAL);

    micro_registry_service s3;
    t_svc_make(&s3, "other", "1", 1, "o-");
    assert_int_equal(micro_registry_register(r, &s3, 0), 0);
    const char *want[16];
    assert_true(n_base + 2 <= 16);
    for (size_t i = 0; i < n_base; i++) {
        want[i] = base[i];
    }
    want[n_base] = name;
    want[n_base + 1] = "other";
    qsort(want, n_base + 2, sizeof(*want), str_cmp);
    check_list(r, want, n_base + 2);

    /* Re-registering the same record only keeps it alive. */
    assert_int_equal(micro_registry_register(r, s, 10000), 0);
    assert_int_equal(t_count_nodes(r, name, NULL), 3);

    assert_int_equal(micro_registry_deregister(r, &s2), 0);
    assert_int_equal(micro_registry_deregister(r, &s3), 0);
    assert_int_equal(t_count_nodes(r, name, NULL), 2);
    assert_int_equal(micro_registry_deregister(r, s), 0);
    int rc = 0;
    assert_int_equal(t_count_nodes(r, name, &rc), 0);
    assert_int_equal(rc, MICRO_ENOSERVICE);
    check_list(r, base, n_base);

    micro_registry_service c;
    t_svc_make(&c, "churn", "1", 1, "c-");
    int64_t t0 = t_now_ms();
    for (int i = 0; i < 100; i++) {
        assert_int_equal(micro_registry_register(r, &c, 10000), 0);
        assert_int_equal(micro_registry_deregister(r, &c), 0);
    }
    int64_t dt = t_now_ms() - t0;
    print_message("100 register + deregister cycles: %lld ms (%.0f/s)\n",
        (long long) dt, dt > 0 ? 100000.0 / (double) dt : 0.0);
    assert_int_equal(t_count_nodes(r, "churn", NULL), 0);
    micro_registry_service_clear(&c);
    micro_registry_service_clear(s);
    micro_registry_service_clear(&s2);
    micro_registry_service_clear(&s3);
}

void
t_reg_unreachable(micro_registry *(*mk)(const char *addr), const char *good)
{
    char addr[300];
    int dead = t_free_port();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", dead);
    micro_registry *bad = mk(addr);
    micro_registry_service *out = NULL;
    size_t n = 0;
    assert_int_equal(micro_registry_get_service(bad, "x", &out, &n),
        MICRO_ECONNREFUSED);
    micro_registry_free(bad);
    snprintf(addr, sizeof(addr), "http://127.0.0.1:%d, %s", dead, good);
    micro_registry *r = mk(addr);
    micro_registry_service s;
    t_svc_make(&s, "failover", "1", 1, "f-");
    assert_int_equal(micro_registry_register(r, &s, 10000), 0);
    assert_int_equal(t_count_nodes(r, "failover", NULL), 1);
    assert_int_equal(micro_registry_deregister(r, &s), 0);
    micro_registry_service_clear(&s);
    micro_registry_free(r);
}
