/*
 * Client publish (Go Micro's client.Publish): the event shape, the codec,
 * publish wrappers, then the broker.
 */
#include "client/publish_internal.h"
#include "broker/broker_internal.h"

#include <pthread.h>

typedef struct pwrapper {
    micro_publish_wrapper_fn fn;
    void *arg;
} pwrapper;

struct micro__publish {
    micro_broker *broker;
    pwrapper *wrappers;
    size_t n_wrappers;
    char *content_type;
};

struct micro_publish_chain {
    micro_client *c;
    const struct micro__publish *p;
    size_t idx;
};

void
micro__publish_free(struct micro__publish *p)
{
    if (p == NULL) {
        return;
    }
    micro__free(p->wrappers);
    micro__free(p->content_type);
    micro__free(p);
}

static struct micro__publish *
pub_get(micro_client *c)
{
    struct micro__publish **slot = micro__client_pub(c);
    if (*slot == NULL) {
        *slot = micro__calloc(1, sizeof(**slot));
    }
    return *slot;
}

int
micro_client_set_broker(micro_client *c, micro_broker *b)
{
    if (c == NULL) {
        return MICRO_EINVAL;
    }
    struct micro__publish *p = pub_get(c);
    if (p == NULL) {
        return MICRO_ENOMEM;
    }
    p->broker = b;
    micro__free(p->content_type);
    p->content_type = NULL;
    if (b != NULL) {
        const char *ct = micro_options_get_str(micro__broker_options(b),
            "client_content_type");
        if (ct != NULL && ct[0] != '\0') {
            p->content_type = micro__strdup(ct);
        }
    }
    return 0;
}

int
micro_client_wrap_publish(micro_client *c, micro_publish_wrapper_fn fn,
    void *arg)
{
    if (c == NULL || fn == NULL) {
        return MICRO_EINVAL;
    }
    struct micro__publish *p = pub_get(c);
    if (p == NULL) {
        return MICRO_ENOMEM;
    }
    pwrapper *w = micro__realloc(p->wrappers,
        (p->n_wrappers + 1) * sizeof(*w));
    if (w == NULL) {
        return MICRO_ENOMEM;
    }
    p->wrappers = w;
    w[p->n_wrappers].fn = fn;
    w[p->n_wrappers].arg = arg;
    p->n_wrappers++;
    return 0;
}

/* The end of the chain: build Go Micro's event and hand it to the broker. */
static int
publish_final(const struct micro__publish *p, micro_publication *pb)
{
    if (p->broker == NULL) {
        micro_log(MICRO_LOG_ERR, "client", "publish %s: no broker",
            pb->topic);
        return MICRO_EINVAL;
    }
    const char *ct = pb->opts.content_type;
    if (ct == NULL || ct[0] == '\0') {
        ct = p->content_type ? p->content_type : "application/json";
    }
    const micro_codec_ops *codec = micro_codec_lookup(ct);
    if (codec == NULL) {
        return MICRO_ECONTENTTYPE;
    }
    micro_msg *m = NULL;
    int rc = micro_msg_new(&m);
    for (size_t i = 0; rc == 0 && i < pb->opts.n_metadata; i++) {
        const micro_header_kv *kv = &pb->opts.metadata[i];
        if (kv->key != NULL && kv->value != NULL &&
            strcasecmp(kv->key, "Micro-Topic") != 0) {
            rc = micro_msg_set_header(m, kv->key, kv->value);
        }
    }
    char uuid[37];
    micro__uuid(uuid);
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Content-Type", ct);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Topic", pb->topic);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-ID", uuid);
    }
    micro_buf wire = {0};
    if (rc == 0) {
        micro_codec_info info = {0};
        rc = codec->write_request(&info, pb->body, pb->len, &wire);
    }
    if (rc == 0) {
        micro_msg_take_body(m, &wire);
        rc = micro_broker_publish(p->broker, pb->topic, m);
    }
    micro_buf_clear(&wire);
    micro_msg_free(m);
    return rc;
}

int
micro_publish_next(micro_publish_chain *next, micro_publication *pb)
{
    if (next->idx < next->p->n_wrappers) {
        const pwrapper *w = &next->p->wrappers[next->idx];
        micro_publish_chain n2 = {next->c, next->p, next->idx + 1};
        return w->fn(pb, &n2, w->arg);
    }
    return publish_final(next->p, pb);
}

int
micro_client_publish(micro_client *c, const char *topic, const void *payload,
    size_t len, const micro_publish_opts *opts)
{
    if (c == NULL || topic == NULL || topic[0] == '\0' ||
        (payload == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    const struct micro__publish *p = *micro__client_pub(c);
    if (p == NULL) {
        return MICRO_EINVAL;
    }
    micro_publication pb = {.topic = topic, .body = payload, .len = len};
    MICRO__SIZED_COPY(&pb.opts, opts, micro_publish_opts, n_metadata);
    micro_publish_chain chain = {c, p, 0};
    return micro_publish_next(&chain, &pb);
}
