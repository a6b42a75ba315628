/*
 * cmicro publish TOPIC '{json}', cmicro subscribe TOPIC and cmicro watch
 * [SERVICE]: the broker and the registry's watch from the command line, on
 * the public API only. The broker, registry and their addresses come from
 * Go Micro's flags and MICRO_* variables.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <cmicro/micro.h>

#include "pubsub.h"

int
cli_publish(micro_service *svc, const char *topic, const char *json,
    const char *content_type, const micro_header_kv *md, size_t n_md)
{
    micro_publish_opts o = {.size = sizeof(o),
        .content_type = content_type,
        .metadata = md,
        .n_metadata = n_md};
    int rc = micro_service_publish(svc, topic, json, strlen(json), &o);
    if (rc != 0) {
        fprintf(stderr, "cmicro: publish %s: %s\n", topic,
            micro_strerror(rc));
        return 2;
    }
    return 0;
}

static atomic_long seen;
static volatile sig_atomic_t stop_flag;

static void
on_sigint(int sig)
{
    (void) sig;
    stop_flag = 1;
}

/* SIGINT and SIGTERM end a subscribe or a watch. */
static void
catch_stop(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Until a signal, or count events (count <= 0: no limit). */
static void
wait_for(long count)
{
    while (!stop_flag && (count <= 0 || atomic_load(&seen) < count)) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
}

/* One JSON line per event: {"topic","header":{...},"body":<payload>}. */
static int
print_event(micro_event *ev, void *arg)
{
    (void) arg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "topic", micro_event_topic(ev));
    cJSON *h = cJSON_AddObjectToObject(o, "header");
    const micro_msg *m = micro_event_msg(ev);
    for (size_t i = 0; i < micro_msg_header_count(m); i++) {
        const char *k = NULL, *v = NULL;
        micro_msg_header_at(m, i, &k, &v);
        cJSON_AddStringToObject(h, k, v);
    }
    size_t len = 0;
    const char *body = micro_event_body(ev, &len);
    cJSON *parsed = cJSON_ParseWithLength(body, len);
    if (parsed != NULL) {
        cJSON_AddItemToObject(o, "body", parsed);
    } else {
        char *copy = malloc(len + 1);
        if (copy != NULL) {
            memcpy(copy, body, len);
            copy[len] = '\0';
            cJSON_AddStringToObject(o, "body", copy);
            free(copy);
        }
    }
    char *out = cJSON_PrintUnformatted(o);
    if (out != NULL) {
        printf("%s\n", out);
        fflush(stdout);
        free(out);
    }
    cJSON_Delete(o);
    atomic_fetch_add(&seen, 1);
    return 0;
}

int
cli_subscribe(micro_service *svc, const char *topic, const char *queue,
    long count)
{
    micro_broker *b = micro_service_broker(svc);
    if (b == NULL) {
        fprintf(stderr, "cmicro: no broker\n");
        return 2;
    }
    catch_stop();
    micro_sub_opts o = {.size = sizeof(o), .queue = queue};
    micro_sub *sub = NULL;
    int rc = micro_broker_subscribe(b, topic, &o, print_event, NULL, &sub);
    if (rc != 0) {
        fprintf(stderr, "cmicro: subscribe %s: %s\n", topic,
            micro_strerror(rc));
        return 2;
    }
    fprintf(stderr, "cmicro: subscribed to %s on %s broker %s\n", topic,
        micro_broker_name(b), micro_broker_address(b));
    wait_for(count);
    micro_broker_disconnect(b);
    return 0;
}

/* One JSON line per event: {"action":"create","service":{...}}. */
static void
print_change(void *arg, micro_registry_action action,
    const micro_registry_service *s)
{
    const char *only = arg;
    if (only != NULL && strcmp(only, s->name) != 0) {
        return;
    }
    static const char *const names[] = {"create", "update", "delete"};
    char *json = NULL;
    if (micro_registry_service_to_json(s, &json) == 0) {
        printf("{\"action\":\"%s\",\"service\":%s}\n",
            (unsigned) action < 3 ? names[action] : "unknown", json);
        fflush(stdout);
        free(json);
    }
    atomic_fetch_add(&seen, 1);
}

int
cli_watch(micro_service *svc, const char *service, long count)
{
    micro_registry *r = micro_service_registry(svc);
    if (r == NULL) {
        fprintf(stderr, "cmicro: no registry\n");
        return 2;
    }
    catch_stop();
    uint64_t tok = 0;
    int rc = micro_registry_watch(r, print_change, (void *) service, &tok);
    if (rc != 0) {
        fprintf(stderr, "cmicro: watch: %s\n", micro_strerror(rc));
        return 2;
    }
    fprintf(stderr, "cmicro: watching %s in registry %s\n",
        service != NULL ? service : "every service", micro_registry_name(r));
    wait_for(count);
    micro_registry_unwatch(r, tok);
    return 0;
}
