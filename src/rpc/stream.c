/*
 * Streams over transport sockets: Go Micro v4's mucp streams (one
 * connection per stream, every message one transport message carrying
 * Micro-Stream, the end as Micro-Error: EOS), both sides.
 *
 * Threads. The socket and the timer are the loop's; users call from any
 * thread. Shared state sits under the stream's mutex; work for the loop
 * (flush queued messages, resume reading, close) is flagged under it and
 * run by one task posted to the loop (coalesced). Server callbacks run in
 * order from an event queue, one at a time per stream, on the worker pool
 * or inline on the loop; a stream waiting for its next message holds no
 * thread.
 *
 * Memory. Outgoing messages wait in the stream's queue until the socket's
 * unsent output is under the window, so a stream holds at most about two
 * windows of output; a sender blocks (or is told MICRO_EAGAIN on the
 * loop) while its queue is full. Incoming messages that no one takes are
 * kept up to the window, then the socket stops being read.
 *
 * Lifetime. References: the owner's (the user's on a client stream, the
 * framework's on a server stream until on_close has run), the loop's
 * (until the socket is gone), one for a posted loop task and one for a
 * scheduled event run. The stream is freed when the last goes.
 */
#include "rpc/mucp.h"
#include "core/msg_internal.h"
#include "server/server_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <time.h>

#define ST_COMPONENT "stream"
#define LINGER_MS 5000 /* after our end, wait this long for the peer's */

enum { EV_OPEN = 1, EV_MSG, EV_END, EV_CLOSE };
enum { LW_FLUSH = 1, LW_RESUME = 2, LW_CLOSE = 4, LW_RECV = 8, LW_ABORT = 16 };

typedef struct sitem sitem;
struct sitem {
    sitem *next;
    int kind;
    micro_msg *m;   /* outgoing: a whole message (an end), or NULL: */
    micro_buf buf;  /* the encoded body of an outgoing message sent with
                       the stream's headers; an event's or a received
                       payload */
    size_t size;    /* counted against the window: what it holds */
    int rc;
    micro_stream_cb cb;
    void *arg;
};

typedef struct squeue {
    sitem *head, *tail;
    size_t bytes;
} squeue;

/* What a queued item costs beyond its payload (the item and two heap
 * blocks' overhead): the window bounds memory, not payloads, so that
 * small messages cannot queue ten times the window. */
#define ITEM_COST (sizeof(sitem) + 48)

struct micro_stream {
    /* Set at creation, then read-only. */
    bool server;
    micro_loop *loop;
    micro__stream_host *host;   /* server */
    void *conn;                 /* server: the connection (host's) */
    const micro__handler *h;    /* server */
    bool inline_cb;
    const micro_codec_ops *codec;
    char *ct;
    char *endpoint;
    char *service;
    char *id;
    char remote[64];
    micro_msg *base;  /* the headers of every message we send */
    micro_msg *scratch; /* loop: base (+ Content-Type) around each body */
    micro_msg *hdrs;  /* server: the opening request's; client: set once */
    size_t window;
    int64_t deadline;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    void *data;

    /* Loop thread (sock is also read under mu; it is set to NULL only on
     * the loop thread, with mu held). */
    micro_socket *sock;
    micro__timer timer;
    bool paused;         /* under mu; changed on the loop thread */
    bool discard_first;  /* server: the placeholder is still to come */
    bool lingering;
    bool closing;        /* close once the output is written */

    /* Under mu. */
    int end;             /* the abnormal end status, 0 while none */
    bool send_ended;     /* our direction ended (EOS or error queued) */
    bool peer_ended;     /* the peer ended its direction cleanly */
    bool end_delivered;  /* server: on_end ran (or is queued) */
    bool close_queued;   /* server: on_close queued */
    bool owner_gone;     /* client: micro_stream_free was called */
    micro_error *err;
    squeue out;          /* to send */
    size_t sock_unsent;  /* the socket's unsent bytes, as of the loop */
    unsigned lwork;
    bool lposted;
    micro__task ltask;
    squeue in;           /* client: received payloads */
    micro_stream_recv_cb rcb;
    void *rarg;
    squeue ev;           /* server: handler events */
    /* Server: the items of on_open, on_end and on_close, made with the
     * stream, so that these always run (a stream whose on_close could not
     * be queued would hold the server's drain for ever). */
    sitem *ev_open, *ev_end, *ev_close;
    bool ev_running;
    bool ev_blocked;     /* server: messages wait for the output to drain */
    micro__task ev_task;
    bool got_first;      /* client: a first message arrived (hdrs) */
    bool bypassed;       /* server: a wrapper answered for the handler
                            (event thread only) */
    int abort_rc;        /* LW_ABORT's status: MICRO_ECANCELED unless set */
};

static const micro_socket_handler client_sock_handler;

/* ------------------------------------------------------------------ */
/* Queues and references.                                               */

static void
q_push(squeue *q, sitem *it)
{
    it->next = NULL;
    if (q->tail != NULL) {
        q->tail->next = it;
    } else {
        q->head = it;
    }
    q->tail = it;
    q->bytes += it->size;
}

static sitem *
q_pop(squeue *q)
{
    sitem *it = q->head;
    if (it != NULL) {
        q->head = it->next;
        if (q->head == NULL) {
            q->tail = NULL;
        }
        q->bytes -= it->size;
        it->next = NULL;
    }
    return it;
}

static void
item_free(sitem *it)
{
    micro_msg_free(it->m);
    micro_buf_clear(&it->buf);
    micro__free(it);
}

static void
stream_free(micro_stream *s)
{
    sitem *it;
    while ((it = q_pop(&s->out)) != NULL) {
        item_free(it);
    }
    while ((it = q_pop(&s->in)) != NULL) {
        item_free(it);
    }
    while ((it = q_pop(&s->ev)) != NULL) {
        item_free(it);
    }
    micro__free(s->ev_open);
    micro__free(s->ev_end);
    micro__free(s->ev_close);
    micro_msg_free(s->base);
    micro_msg_free(s->scratch);
    micro_msg_free(s->hdrs);
    micro_error_free(s->err);
    micro__free(s->ct);
    micro__free(s->endpoint);
    micro__free(s->service);
    micro__free(s->id);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    micro__free(s);
}

/* Drop a reference; s->mu held on entry, released. */
static void
unref_locked(micro_stream *s)
{
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&s->mu);
    if (last) {
        stream_free(s);
    }
}

/* ------------------------------------------------------------------ */
/* Loop work.                                                           */

static void loop_work(micro__task *t);

/* Ask the loop to run work w (mu held). */
static void
post_work(micro_stream *s, unsigned w)
{
    s->lwork |= w;
    if (s->lposted) {
        return;
    }
    s->lposted = true;
    s->refs++;
    s->ltask.fn = loop_work;
    if (micro_loop_is_current(s->loop)) {
        micro__loop_defer(s->loop, &s->ltask);
        return;
    }
    if (micro__loop_post_task(s->loop, &s->ltask) != 0) {
        /* The loop is closing: it will not run this; nothing else will
         * either, since the socket goes with the loop. */
        s->lposted = false;
        s->refs--;
    }
}

static int64_t
local_code(int rc)
{
    switch (rc) {
    case MICRO_ETIMEDOUT:
        return 408;
    case MICRO_ECANCELED:
        return 499;
    case MICRO_ECLOSED:
        return 503;
    default:
        return 500;
    }
}

static const char *
local_detail(int rc)
{
    switch (rc) {
    case MICRO_ETIMEDOUT:
        return "stream deadline exceeded";
    case MICRO_ECANCELED:
        return "stream canceled";
    case MICRO_ECLOSED:
        return "server is shutting down";
    case MICRO_ECONNRESET:
        return "stream connection lost";
    default:
        return micro_strerror(rc);
    }
}

/* The stream's own error for an abnormal end (mu held). */
static void
set_local_error(micro_stream *s, int rc)
{
    if (s->err == NULL) {
        s->err = micro_error_new(s->server ? "go.micro.server"
                                           : "go.micro.client",
            (int32_t) local_code(rc), local_detail(rc));
    }
}

/* Queue an event for the server's handler (mu held). */
static void schedule_events(micro_stream *s);

static int
queue_event(micro_stream *s, int kind, int rc, micro_buf *payload)
{
    /* Each of these is queued once at most: from its own item. */
    sitem **own = kind == EV_OPEN ? &s->ev_open
        : kind == EV_END          ? &s->ev_end
        : kind == EV_CLOSE        ? &s->ev_close
                                  : NULL;
    sitem *it = NULL;
    if (own != NULL && *own != NULL) {
        it = *own;
        *own = NULL;
    } else {
        it = micro__calloc(1, sizeof(*it));
    }
    if (it == NULL) {
        if (payload != NULL) {
            micro_buf_clear(payload);
        }
        return MICRO_ENOMEM;
    }
    it->kind = kind;
    it->rc = rc;
    if (payload != NULL) {
        it->buf = *payload;
        it->size = payload->len + ITEM_COST;
        memset(payload, 0, sizeof(*payload));
    }
    q_push(&s->ev, it);
    schedule_events(s);
    return 0;
}

/* Out items that will never be sent: their callbacks hear why. */
static void
fail_out(micro_stream *s, int rc)
{
    squeue dead = s->out;
    memset(&s->out, 0, sizeof(s->out));
    pthread_mutex_unlock(&s->mu);
    sitem *it;
    while ((it = q_pop(&dead)) != NULL) {
        if (it->cb != NULL) {
            it->cb(it->arg, s, rc);
        }
        item_free(it);
    }
    pthread_mutex_lock(&s->mu);
}

/* The end status a caller sees (mu held): MICRO_EREMOTE when the peer
 * ended with an error. */
static int
end_status(const micro_stream *s)
{
    return s->end;
}

/* ------------------------------------------------------------------ */
/* Ending (loop thread).                                                */

static void close_socket_now(micro_stream *s);

/*
 * The stream ended abnormally with rc (loop thread, mu held). Senders and
 * receivers wake; a server queues on_end and on_close; the socket closes
 * (after a final error message to the peer when one is given).
 */
static void
end_abnormal(micro_stream *s, int rc, bool tell_peer)
{
    if (s->end != 0) {
        return;
    }
    s->end = rc;
    if (rc != MICRO_EREMOTE) {
        set_local_error(s, rc);
    }
    s->ev_blocked = false; /* what is queued runs; its sends fail */
    pthread_cond_broadcast(&s->cv);
    micro__timer_stop(s->loop, &s->timer);
    if (s->server) {
        if (!s->end_delivered) {
            s->end_delivered = true;
            queue_event(s, EV_END, rc, NULL);
        }
        if (!s->close_queued) {
            s->close_queued = true;
            queue_event(s, EV_CLOSE, rc, NULL);
        }
    } else if (s->rcb != NULL && s->in.head == NULL) {
        post_work(s, LW_RECV);
    }
    bool send_error = tell_peer && s->sock != NULL && !s->send_ended &&
        s->server;
    fail_out(s, rc);
    if (send_error && s->err != NULL) {
        /* The client learns why (408 deadline, 503 stopping). */
        micro_msg *m = NULL;
        char *json = micro_error_to_json(s->err);
        static const char *const skip[] = {"Host", "Remote", NULL};
        if (json != NULL && micro_msg_new(&m) == 0 &&
            micro__msg_copy_headers(m, s->hdrs, skip) == 0 &&
            micro_msg_set_header(m, "Micro-Error", json) == 0 &&
            micro_msg_set_header(m, "X-Micro-Error", json) == 0) {
            s->send_ended = true;
            (void) micro_socket_send(s->sock, m);
        }
        micro_msg_free(m);
        free(json);
    }
    s->send_ended = true;
    if (s->sock != NULL) {
        s->closing = true;
        if (micro_socket_unsent(s->sock) == 0 || !send_error) {
            close_socket_now(s);
        }
    }
}

/* Close the socket (loop thread, mu held) and give up the loop's
 * reference. */
static void
close_socket_now(micro_stream *s)
{
    micro_socket *sock = s->sock;
    if (sock == NULL) {
        return;
    }
    s->sock = NULL;
    micro__timer_stop(s->loop, &s->timer);
    pthread_mutex_unlock(&s->mu);
    micro_socket_close(sock);
    if (s->server && s->host->on_done != NULL) {
        s->host->on_done(s->host, s->conn, sock);
    }
    pthread_mutex_lock(&s->mu);
    s->refs--; /* the loop's; another reference is held by the caller */
}

/* The socket went away under the stream (its owner frees it): drop it
 * and the loop's reference, and with them the timer, which is the loop's
 * too. A stream over both ways cleanly has no end to raise, so nothing
 * else stops its deadline or linger timer, and the stream is freed once
 * its events have run while the timer would stay in the loop's heap
 * (found by fuzz_stream). Loop thread, mu held. */
static void
sock_gone(micro_stream *s)
{
    s->sock = NULL;
    micro__timer_stop(s->loop, &s->timer);
    s->refs--; /* the loop's; the caller holds another */
}

/* Server: both directions are over cleanly (loop thread, mu held). */
static void
server_check_done(micro_stream *s)
{
    if (!s->server || s->sock == NULL || !s->send_ended || s->out.head) {
        return;
    }
    if (!s->peer_ended) {
        /* Our end is queued; the peer's EOS (Go's Close sends one) or its
         * close finishes the stream, within LINGER_MS. */
        if (!s->lingering) {
            s->lingering = true;
            micro__timer_stop(s->loop, &s->timer);
            (void) micro__timer_start(s->loop, &s->timer,
                micro__now_ms() + LINGER_MS, s->timer.fn);
        }
        return;
    }
    if (!s->close_queued) {
        s->close_queued = true;
        queue_event(s, EV_CLOSE, 0, NULL);
    }
    s->closing = true;
    if (micro_socket_unsent(s->sock) == 0) {
        close_socket_now(s);
    }
}

/* ------------------------------------------------------------------ */
/* Sending (loop side).                                                 */

/* Send body with the stream's headers (loop thread): one message kept
 * for the purpose, its body swapped in and out (a socket's send borrows
 * the message and is done with it when it returns), so that a queued
 * message costs its body only, and no headers are copied per message.
 * Go Micro's server messages carry a Content-Type only with a body. */
static int
send_body(micro_stream *s, micro_socket *sock, micro_buf *body)
{
    bool ct = s->server && body->len > 0;
    if (s->scratch == NULL) {
        if (micro_msg_new(&s->scratch) != 0) {
            return MICRO_ENOMEM;
        }
        if (micro__msg_copy_headers(s->scratch, s->base, NULL) != 0) {
            micro_msg_free(s->scratch);
            s->scratch = NULL;
            return MICRO_ENOMEM;
        }
    }
    micro_msg *m = s->scratch;
    bool has_ct = micro_msg_header(m, "Content-Type") != NULL;
    if (ct && !has_ct && micro_msg_set_header(m, "Content-Type", s->ct) != 0) {
        return MICRO_ENOMEM;
    }
    if (!ct && has_ct && s->server) {
        micro_msg_del_header(m, "Content-Type");
    }
    m->body = *body;
    int rc = micro_socket_send(sock, m);
    *body = m->body;
    memset(&m->body, 0, sizeof(m->body));
    return rc;
}

/* Hand queued messages to the socket while it is under the window: at
 * most those queued when the flush began, so that senders on other threads
 * cannot keep the loop here while its sockets wait to be read. */
static void
flush(micro_stream *s)
{
    /* Take the batch under the lock once, send it unlocked (senders on
     * other threads keep queueing meanwhile), put back what the window
     * did not let through. */
    micro_socket *sock = s->sock;
    if (sock == NULL || s->out.head == NULL) {
        goto done;
    }
    squeue batch = s->out;
    memset(&s->out, 0, sizeof(s->out));
    pthread_mutex_unlock(&s->mu);
    bool corked = batch.head->next != NULL; /* several: one write */
    if (corked) {
        micro_socket_cork(sock, true);
    }
    int rc = 0;
    while (batch.head != NULL && rc == 0 &&
        micro_socket_unsent(sock) < s->window) {
        sitem *it = q_pop(&batch);
        rc = it->m != NULL ? micro_socket_send(sock, it->m)
                           : send_body(s, sock, &it->buf);
        if (it->cb != NULL) {
            it->cb(it->arg, s, rc);
        }
        item_free(it);
    }
    if (corked && rc == 0) {
        micro_socket_cork(sock, false);
    }
    pthread_mutex_lock(&s->mu);
    if (batch.head != NULL) {
        /* Back in front of what was queued meanwhile, in order. */
        batch.tail->next = s->out.head;
        if (s->out.tail == NULL) {
            s->out.tail = batch.tail;
        }
        s->out.head = batch.head;
        s->out.bytes += batch.bytes;
    }
    if (rc != 0 && s->end == 0) {
        end_abnormal(s, rc == MICRO_ECLOSED ? MICRO_ECONNRESET : rc, false);
    }
done:
    s->sock_unsent = s->sock != NULL ? micro_socket_unsent(s->sock) : 0;
    if (s->ev_blocked &&
        (s->out.bytes + s->sock_unsent <= s->window / 2 || s->end != 0)) {
        s->ev_blocked = false;
        schedule_events(s);
    }
    if (s->out.bytes + s->sock_unsent <= s->window / 2 || s->sock == NULL) {
        /* Senders waiting for room: only once half the window is free,
         * so that they do not wake for every message (each wake-up would
         * cost a flush and two context switches per message). */
        pthread_cond_broadcast(&s->cv);
    }

    if (s->closing && s->sock != NULL && s->out.head == NULL &&
        micro_socket_unsent(s->sock) == 0 &&
        (!s->server || s->peer_ended || s->end != 0)) {
        close_socket_now(s);
        return;
    }
    server_check_done(s);
}

static void deliver_recv(micro_stream *s);

static void
loop_work(micro__task *t)
{
    micro_stream *s = (micro_stream *) ((char *) t -
        offsetof(micro_stream, ltask));
    pthread_mutex_lock(&s->mu);
    s->lposted = false;
    unsigned w = s->lwork;
    s->lwork = 0;
    if ((w & LW_FLUSH) != 0) {
        flush(s);
    }
    if ((w & LW_RESUME) != 0 && s->paused && s->sock != NULL) {
        s->paused = false;
        micro_socket *sock = s->sock;
        pthread_mutex_unlock(&s->mu);
        micro_socket_pause(sock, false); /* may deliver messages */
        pthread_mutex_lock(&s->mu);
    }
    if ((w & LW_RECV) != 0) {
        deliver_recv(s);
    }
    if ((w & LW_ABORT) != 0 && s->end == 0) {
        int rc = s->abort_rc != 0 ? s->abort_rc : MICRO_ECANCELED;
        end_abnormal(s, rc, rc != MICRO_ECANCELED);
    }
    if ((w & LW_CLOSE) != 0) {
        /* The client is done with the stream: end its side as Go's
         * Close does (EOS), then close the connection. */
        if (s->sock != NULL && !s->send_ended && !s->peer_ended &&
            s->end == 0) {
            micro_msg *m = NULL;
            if (micro_msg_new(&m) == 0 &&
                micro__msg_copy_headers(m, s->base, NULL) == 0 &&
                micro_msg_set_header(m, "Micro-Error", "EOS") == 0) {
                flush(s); /* what was queued goes first */
                if (s->sock != NULL) {
                    (void) micro_socket_send(s->sock, m);
                }
            }
            micro_msg_free(m);
            s->send_ended = true;
        }
        if (s->end == 0) {
            s->end = MICRO_ECANCELED;
            set_local_error(s, MICRO_ECANCELED);
        }
        fail_out(s, MICRO_ECANCELED);
        if (s->rcb != NULL) {
            deliver_recv(s);
        }
        close_socket_now(s);
    }
    unref_locked(s);
}

/* ------------------------------------------------------------------ */
/* Sending (any thread).                                                */

/* The encoded body of a message to send (any thread). */
static int
encode_body(micro_stream *s, const void *body, size_t len, micro_buf *out)
{
    micro_codec_info info = {s->endpoint, s->id, NULL};
    int rc = s->server ? s->codec->write_response(&info, body, len, out)
                       : s->codec->write_request(&info, body, len, out);
    if (rc != 0) {
        micro_buf_clear(out);
        return rc == MICRO_ENOMEM ? rc : MICRO_ECODEC;
    }
    return 0;
}

/* Queue a whole message m (an end), or the encoded body *b (taken) of a
 * message with the stream's headers (mu held). */
static int
queue_out(micro_stream *s, micro_msg *m, micro_buf *b, micro_stream_cb cb,
    void *arg, bool last)
{
    sitem *it = micro__calloc(1, sizeof(*it));
    if (it == NULL) {
        micro_msg_free(m);
        if (b != NULL) {
            micro_buf_clear(b);
        }
        return MICRO_ENOMEM;
    }
    if (m != NULL) {
        it->m = m;
        it->size = sizeof(*m) + ITEM_COST;
    } else {
        it->buf = *b;
        memset(b, 0, sizeof(*b));
        it->size = it->buf.len + ITEM_COST;
    }
    it->cb = cb;
    it->arg = arg;
    q_push(&s->out, it);
    if (last) {
        s->send_ended = true;
    }
    post_work(s, LW_FLUSH);
    return 0;
}

/* Why this side cannot send (mu held), or 0. */
static int
send_refusal(const micro_stream *s)
{
    if (s->end != 0) {
        return end_status(s);
    }
    if (s->send_ended || s->owner_gone) {
        return MICRO_ECLOSED;
    }
    return 0;
}

static int
send_common(micro_stream *s, const void *body, size_t len, bool wait,
    micro_stream_cb cb, void *arg)
{
    if (s == NULL || (body == NULL && len > 0)) {
        return MICRO_EINVAL;
    }
    micro_buf enc = {0};
    int rc = encode_body(s, body, len, &enc);
    if (rc != 0) {
        return rc;
    }
    bool on_loop = micro_loop_is_current(s->loop);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        rc = send_refusal(s);
        if (rc != 0 || !wait) {
            break;
        }
        if (s->out.bytes + s->sock_unsent < s->window || s->out.head == NULL) {
            break;
        }
        if (on_loop) {
            rc = MICRO_EAGAIN;
            break;
        }
        pthread_cond_wait(&s->cv, &s->mu);
    }
    if (rc == 0) {
        rc = queue_out(s, NULL, &enc, cb, arg, false);
    }
    pthread_mutex_unlock(&s->mu);
    micro_buf_clear(&enc);
    return rc;
}

int
micro_stream_send(micro_stream *s, const void *body, size_t len)
{
    return send_common(s, body, len, true, NULL, NULL);
}

int
micro_stream_send_async(micro_stream *s, const void *body, size_t len,
    micro_stream_cb cb, void *arg)
{
    return send_common(s, body, len, false, cb, arg);
}

/* Queue our end: EOS, or the error json (mu held). */
static int
queue_end(micro_stream *s, const char *error_json)
{
    micro_msg *m = NULL;
    int rc = micro_msg_new(&m);
    if (rc == 0) {
        rc = micro__msg_copy_headers(m, s->base, NULL);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(m, "Micro-Error",
            error_json != NULL ? error_json : "EOS");
    }
    if (rc == 0 && s->server) {
        rc = micro_msg_set_header(m, "X-Micro-Error",
            error_json != NULL ? error_json : "EOS");
        /* Go's end message carries the request's headers only. */
        micro_msg_del_header(m, "X-Micro-Endpoint");
        micro_msg_del_header(m, "X-Micro-Method");
        micro_msg_del_header(m, "X-Micro-Service");
    }
    if (rc != 0) {
        micro_msg_free(m);
        return rc;
    }
    return queue_out(s, m, NULL, NULL, NULL, true);
}

int
micro_stream_close_send(micro_stream *s)
{
    if (s == NULL) {
        return MICRO_EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (s->end != 0) {
        rc = end_status(s);
    } else if (!s->send_ended) {
        rc = queue_end(s, NULL);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int
micro_stream_fail(micro_stream *s, const char *id, int32_t code,
    const char *fmt, ...)
{
    if (s == NULL) {
        return MICRO_EINVAL;
    }
    if (!s->server) {
        micro_stream_abort(s);
        return MICRO_EREMOTE;
    }
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    micro_error *e = micro_error_new(
        id != NULL ? id : micro_server_name(s->host->srv), code, detail);
    char *json = e != NULL ? micro_error_to_json(e) : NULL;
    micro_error_free(e);
    pthread_mutex_lock(&s->mu);
    if (s->end == 0 && !s->send_ended) {
        if (queue_end(s, json != NULL ? json : "{\"code\":500}") == 0) {
            atomic_fetch_add(&s->host->srv->errors, 1);
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(json);
    return MICRO_EREMOTE;
}

/* ------------------------------------------------------------------ */
/* Receiving (client).                                                  */

/* A pending recv_async gets the next item (loop thread, mu held). */
static void
deliver_recv(micro_stream *s)
{
    while (s->rcb != NULL) {
        sitem *it = q_pop(&s->in);
        int rc;
        if (it == NULL) {
            if (s->end != 0) {
                rc = end_status(s);
            } else if (s->peer_ended) {
                rc = MICRO_EOF;
            } else {
                return; /* nothing yet */
            }
        } else {
            rc = 0;
        }
        micro_stream_recv_cb cb = s->rcb;
        void *arg = s->rarg;
        s->rcb = NULL;
        micro_socket *resume = NULL;
        if (s->paused && s->in.bytes < s->window / 2 && s->sock != NULL) {
            s->paused = false;
            resume = s->sock;
        }
        pthread_mutex_unlock(&s->mu);
        if (resume != NULL) {
            micro_socket_pause(resume, false);
        }
        cb(arg, s, rc, it ? it->buf.data : NULL, it ? it->buf.len : 0);
        if (it != NULL) {
            item_free(it);
        }
        pthread_mutex_lock(&s->mu);
    }
}

int
micro_stream_recv(micro_stream *s, micro_buf *out)
{
    if (s == NULL || out == NULL || s->server ||
        micro_loop_is_current(s->loop)) {
        return MICRO_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    for (;;) {
        if (s->rcb != NULL) {
            rc = MICRO_EBUSY;
            break;
        }
        sitem *it = q_pop(&s->in);
        if (it != NULL) {
            *out = it->buf;
            memset(&it->buf, 0, sizeof(it->buf));
            item_free(it);
            if (s->paused && s->in.bytes < s->window / 2) {
                post_work(s, LW_RESUME);
            }
            break;
        }
        if (s->end != 0) {
            rc = end_status(s);
            break;
        }
        if (s->peer_ended) {
            rc = MICRO_EOF;
            break;
        }
        /* The loop's timer ends the stream at its deadline. */
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int
micro_stream_recv_async(micro_stream *s, micro_stream_recv_cb cb, void *arg)
{
    if (s == NULL || cb == NULL || s->server) {
        return MICRO_EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (s->rcb != NULL) {
        rc = MICRO_EBUSY;
    } else if (s->owner_gone) {
        rc = MICRO_ECLOSED;
    } else {
        s->rcb = cb;
        s->rarg = arg;
        if (s->in.head != NULL || s->end != 0 || s->peer_ended) {
            post_work(s, LW_RECV); /* never inside this call */
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Server events.                                                       */

static void run_events(micro_stream *s);

static void
ev_task_fn(micro__task *t)
{
    run_events((micro_stream *) ((char *) t -
        offsetof(micro_stream, ev_task)));
}

/* Make sure the events get run (mu held). */
static void
schedule_events(micro_stream *s)
{
    if (s->ev_running || s->ev.head == NULL || s->ev_blocked) {
        return;
    }
    s->ev_running = true;
    s->refs++;
    s->host->work(s->host, 1);
    s->ev_task.fn = ev_task_fn;
    if (!s->inline_cb && micro__pool_submit(s->host->pool, &s->ev_task) == 0) {
        return;
    }
    /* Inline, or no worker: on the loop, rather than lose them. */
    if (micro_loop_is_current(s->loop)) {
        micro__loop_defer(s->loop, &s->ev_task);
    } else if (micro__loop_post_task(s->loop, &s->ev_task) != 0) {
        s->ev_running = false;
        s->refs--;
        s->host->work(s->host, -1);
    }
}

/* Server, any thread: our end could not be queued (out of memory): end
 * the stream on the loop instead (an error to the peer if one can be
 * made, and the connection closes), rather than leave the peer waiting
 * for an end that never comes. Posting allocates nothing. */
static void
end_unsent(micro_stream *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->send_ended && s->end == 0) {
        MICRO_LOGF(MICRO_LOG_ERR, ST_COMPONENT,
            "%s %s: out of memory for the end of the stream; it is aborted",
            s->remote, s->endpoint);
        s->abort_rc = MICRO_ENOMEM;
        post_work(s, LW_ABORT);
    }
    pthread_mutex_unlock(&s->mu);
}

/* A callback's non-zero return ends the stream with an error. */
static void
callback_failed(micro_stream *s, int rc)
{
    pthread_mutex_lock(&s->mu);
    bool done = s->send_ended || s->end != 0;
    pthread_mutex_unlock(&s->mu);
    if (!done) {
        micro_stream_fail(s, NULL, rc == MICRO_ETIMEDOUT ? 408 : 500, "%s",
            micro_strerror(rc));
        end_unsent(s); /* when even that could not be queued */
    }
}

/* The first event: the server's wrappers, then on_open. A wrapper that
 * does not reach the handler ends the stream in its place: with its error,
 * else with the handler's clean end (EOS), as a Go Micro wrapper that
 * returns without calling its handler; the handler's callbacks never run
 * for it, and the client's messages are let go. */
static int
open_through_wrappers(micro_stream *s, const micro__handler *h)
{
    micro_request req = {.s = s->host->srv,
        .msg = s->hdrs,
        .endpoint = s->endpoint,
        .service = s->service,
        .ct = s->ct,
        .deadline = s->deadline};
    bool reached = false;
    micro_error *err = NULL;
    int rc = micro__server_stream_open(s->host->srv, h, s, &req, &reached,
        &err);
    s->bypassed = !reached;
    if (err != NULL) {
        micro_stream_fail(s, err->id, err->code, "%s",
            err->detail != NULL ? err->detail : "");
        micro_error_free(err);
        end_unsent(s); /* when even that could not be queued */
    } else if (!reached && rc == 0 && micro_stream_close_send(s) != 0) {
        end_unsent(s);
    }
    return rc;
}

/* Worker (or loop): run the queued callbacks of s in order. */
static void
run_events(micro_stream *s)
{
    const micro__handler *h = s->h;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->ev.head != NULL && s->ev.head->kind == EV_MSG &&
            s->end == 0 && s->out.bytes + s->sock_unsent >= s->window) {
            /* The output is full: the next message waits until it drains
             * (flush resumes the events), so a handler that answers each
             * message cannot queue answers without bound, and no worker
             * waits meanwhile. */
            s->ev_blocked = true;
            break;
        }
        sitem *it = q_pop(&s->ev);
        if (it == NULL) {
            break;
        }
        if (it->kind == EV_MSG && s->paused && s->ev.bytes < s->window / 2) {
            post_work(s, LW_RESUME);
        }
        pthread_mutex_unlock(&s->mu);
        int rc = 0;
        switch (it->kind) {
        case EV_OPEN:
            rc = open_through_wrappers(s, h);
            break;
        case EV_MSG:
            if (s->bypassed) {
                break;
            }
            rc = h->on_msg(s, it->buf.data ? (const void *) it->buf.data
                                           : (const void *) "",
                it->buf.len, h->arg);
            break;
        case EV_END:
            if (s->bypassed) {
                break;
            }
            if (h->on_end != NULL) {
                h->on_end(s, it->rc, h->arg);
            } else if (it->rc == MICRO_EOF &&
                micro_stream_close_send(s) != 0) {
                end_unsent(s);
            }
            break;
        case EV_CLOSE:
            if (!s->bypassed && h->on_close != NULL) {
                h->on_close(s, it->rc, h->arg);
            }
            break;
        default:
            break;
        }
        if (rc != 0) {
            callback_failed(s, rc);
        }
        bool closed = it->kind == EV_CLOSE;
        item_free(it);
        pthread_mutex_lock(&s->mu);
        if (closed) {
            /* The framework's reference: the stream is the user's no
             * more; and the server's count of live streams. */
            s->refs--;
            s->host->work(s->host, -1);
        }
    }
    s->ev_running = false;
    micro__stream_host *host = s->host;
    unref_locked(s);
    host->work(host, -1);
}

/* ------------------------------------------------------------------ */
/* The deadline and the linger (loop thread).                           */

static void
on_timer(micro__timer *t)
{
    micro_stream *s = (micro_stream *) ((char *) t -
        offsetof(micro_stream, timer));
    pthread_mutex_lock(&s->mu);
    s->refs++;
    if (s->lingering && s->end == 0) {
        /* Our end went out and the peer never sent its own. */
        s->peer_ended = true;
        server_check_done(s);
        if (s->sock != NULL) {
            close_socket_now(s);
        }
    } else if (s->end == 0) {
        MICRO_LOGF(MICRO_LOG_INFO, ST_COMPONENT, "%s %s: deadline exceeded",
            s->remote, s->endpoint);
        end_abnormal(s, MICRO_ETIMEDOUT, true);
    }
    unref_locked(s);
}

/* ------------------------------------------------------------------ */
/* Server side.                                                         */

/* Go's server messages carry the opening request's headers plus these. */
static int
server_base(micro_stream *s)
{
    static const char *const skip[] = {"Host", "Remote", "Content-Length",
        "Transfer-Encoding", "Connection", NULL};
    int rc = micro_msg_new(&s->base);
    if (rc == 0) {
        rc = micro__msg_copy_headers(s->base, s->hdrs, skip);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(s->base, "X-Micro-Endpoint", s->endpoint);
    }
    const char *m = micro__mucp_hdr2(s->hdrs, "Micro-Method",
        "X-Micro-Method");
    if (rc == 0) {
        rc = micro_msg_set_header(s->base, "X-Micro-Method",
            m != NULL ? m : s->endpoint);
    }
    if (rc == 0) {
        rc = micro_msg_set_header(s->base, "X-Micro-Service", s->service);
    }
    return rc;
}

int
micro__stream_accept(micro__stream_host *host, void *conn,
    micro_socket *sock, micro_msg *first, const micro__handler *h,
    const micro_codec_ops *codec, const char *ct, micro_stream **out)
{
    *out = NULL;
    micro_stream *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        micro_msg_free(first);
        return MICRO_ENOMEM;
    }
    s->server = true;
    s->loop = micro_socket_loop(sock);
    s->host = host;
    s->conn = conn;
    s->h = h;
    s->inline_cb = (h->flags & MICRO_HANDLER_INLINE) != 0;
    s->codec = codec;
    s->window = host->window;
    s->hdrs = first; /* headers from here on: the body is the placeholder */
    s->discard_first = strncasecmp(ct, "application/grpc", 16) != 0;
    snprintf(s->remote, sizeof(s->remote), "%s", micro_socket_remote(sock));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    const char *sid = micro__mucp_hdr2(first, "Micro-Stream",
        "X-Micro-Stream");
    const char *svc = micro__mucp_hdr2(first, "Micro-Service",
        "X-Micro-Service");
    s->ct = micro__strdup(ct);
    s->endpoint = micro__strdup(h->endpoint);
    s->service = micro__strdup(svc != NULL ? svc
                                           : micro_server_name(host->srv));
    s->id = micro__strdup(sid != NULL ? sid : "");
    s->deadline = micro__mucp_deadline(first);
    s->refs = 2; /* the framework's (until on_close), the loop's */
    s->timer.fn = on_timer;
    s->ev_open = micro__calloc(1, sizeof(sitem));
    s->ev_end = micro__calloc(1, sizeof(sitem));
    s->ev_close = micro__calloc(1, sizeof(sitem));
    if (s->ct == NULL || s->endpoint == NULL || s->service == NULL ||
        s->id == NULL || s->ev_open == NULL || s->ev_end == NULL ||
        s->ev_close == NULL || server_base(s) != 0 ||
        (s->deadline != 0 &&
            micro__timer_start(s->loop, &s->timer, s->deadline, on_timer) !=
                0)) {
        stream_free(s);
        return MICRO_ENOMEM;
    }
    s->sock = sock;
    micro_socket_set_busy(sock, true); /* no idle timeout: it is a stream */
    /* The opening message's body: the placeholder, or (gRPC) the first
     * message itself. */
    micro_buf body = first->body;
    memset(&first->body, 0, sizeof(first->body));
    pthread_mutex_lock(&s->mu);
    queue_event(s, EV_OPEN, 0, NULL);
    const char *e = micro_msg_header(first, "Micro-Error");
    if (e != NULL && e[0] != '\0') {
        /* The opening message is already the client's end (a gRPC-coded
         * stream has no placeholder, so a client that sends nothing opens
         * with its EOS). */
        s->peer_ended = true;
        s->end_delivered = true;
        queue_event(s, EV_END, MICRO_EOF, NULL);
    }
    pthread_mutex_unlock(&s->mu);
    *out = s;
    if (!s->discard_first && body.len > 0) {
        micro_msg *m = NULL;
        if (micro_msg_new(&m) == 0) {
            micro_msg_take_body(m, &body);
            micro__stream_deliver(s, m);
        }
    }
    s->discard_first = false;
    micro_buf_clear(&body);
    return 0;
}

void
micro__stream_deliver(micro_stream *s, micro_msg *m)
{
    pthread_mutex_lock(&s->mu);
    s->refs++;
    const char *e = micro_msg_header(m, "Micro-Error");
    if (e != NULL && e[0] != '\0') {
        /* The client's end: Go Micro's client sends EOS (also after our
         * own end, from Close); anything else is taken as its end too. */
        if (!s->peer_ended && s->end == 0) {
            s->peer_ended = true;
            if (!s->send_ended && !s->end_delivered) {
                s->end_delivered = true;
                queue_event(s, EV_END, MICRO_EOF, NULL);
            }
            server_check_done(s);
        }
        micro_msg_free(m);
        unref_locked(s);
        return;
    }
    if (s->peer_ended || s->send_ended || s->end != 0) {
        /* After an end: dropped (Go starts a new handler here, which is a
         * bug we do not copy). */
        MICRO_LOGF(MICRO_LOG_INFO, ST_COMPONENT,
            "%s %s: message after the end of the stream dropped", s->remote,
            s->endpoint);
        atomic_fetch_add(&s->host->srv->dropped, 1);
        micro_msg_free(m);
        unref_locked(s);
        return;
    }
    micro_buf payload = {0};
    micro_codec_info info = {0};
    size_t len = 0;
    const void *body = micro_msg_body(m, &len);
    int rc = s->codec->read_request(body, len, &info, &payload);
    micro_codec_info_clear(&info);
    micro_msg_free(m);
    if (rc == MICRO_ENOMEM) {
        /* Not the peer's fault, and the message cannot be dropped
         * silently: the stream ends (500, or the connection closes). */
        micro_buf_clear(&payload);
        end_abnormal(s, MICRO_ENOMEM, true);
        unref_locked(s);
        return;
    }
    if (rc != 0) {
        micro_buf_clear(&payload);
        atomic_fetch_add(&s->host->srv->codec_errors, 1);
        pthread_mutex_unlock(&s->mu);
        micro_stream_fail(s, NULL, 400,
            "decode error: the %s body is malformed", s->ct);
        pthread_mutex_lock(&s->mu);
        unref_locked(s);
        return;
    }
    if (queue_event(s, EV_MSG, 0, &payload) != 0) {
        end_abnormal(s, MICRO_ENOMEM, true); /* a message lost ends it */
        unref_locked(s);
        return;
    }
    if (s->ev.bytes >= s->window && !s->paused && s->sock != NULL) {
        /* The handler is behind: stop reading until it catches up. */
        s->paused = true;
        micro_socket *sock = s->sock;
        pthread_mutex_unlock(&s->mu);
        micro_socket_pause(sock, true);
        pthread_mutex_lock(&s->mu);
    }
    unref_locked(s);
}

void
micro__stream_gone(micro_stream *s, int rc, bool gone)
{
    pthread_mutex_lock(&s->mu);
    s->refs++;
    if (gone && s->sock != NULL) {
        /* The socket is being freed by its owner: never touch it again. */
        sock_gone(s);
    }
    if (s->end == 0 && !(s->peer_ended && s->send_ended)) {
        int why = (rc == 0 || rc == MICRO_EOF) ? MICRO_ECANCELED
                                                : MICRO_ECONNRESET;
        /* A client whose deadline passed closes: its deadline and ours are
         * the same one, ours a little later (the request's transit and the
         * rounding up to the millisecond). */
        if (rc == MICRO_ETIMEDOUT ||
            (s->deadline != 0 && micro__now_ms() + 100 >= s->deadline)) {
            why = MICRO_ETIMEDOUT;
        }
        end_abnormal(s, why, false);
    } else if (!s->close_queued) {
        s->close_queued = true;
        queue_event(s, EV_CLOSE, 0, NULL);
    }
    if (s->sock != NULL) {
        close_socket_now(s);
    }
    unref_locked(s);
}

void
micro__stream_drain(micro_stream *s)
{
    pthread_mutex_lock(&s->mu);
    s->refs++;
    flush(s);
    unref_locked(s);
}

void
micro__stream_stop(micro_stream *s)
{
    pthread_mutex_lock(&s->mu);
    s->refs++;
    end_abnormal(s, MICRO_ECLOSED, true);
    unref_locked(s);
}

/* ------------------------------------------------------------------ */
/* Client side.                                                         */

static void
cl_on_msg(void *arg, micro_socket *sock, micro_msg *m)
{
    micro_stream *s = arg;
    (void) sock;
    pthread_mutex_lock(&s->mu);
    s->refs++;
    if (s->hdrs == NULL) {
        micro_msg *hd = NULL;
        if (micro_msg_new(&hd) == 0 &&
            micro__msg_copy_headers(hd, m, NULL) == 0) {
            s->hdrs = hd;
        } else {
            micro_msg_free(hd);
        }
    }
    if (s->peer_ended || s->end != 0) {
        micro_msg_free(m);
        unref_locked(s);
        return;
    }
    micro_buf payload = {0};
    micro_error *err = NULL;
    int rc = micro__mucp_read_answer(m, s->codec, &payload, &err);
    micro_msg_free(m);
    if (rc == MICRO_EOF) {
        s->peer_ended = true;
        micro__timer_stop(s->loop, &s->timer);
        pthread_cond_broadcast(&s->cv);
    } else if (rc == MICRO_EREMOTE) {
        micro_error_free(s->err);
        s->err = err;
        end_abnormal(s, MICRO_EREMOTE, false);
    } else if (rc != 0) {
        micro_buf_clear(&payload);
        if (rc == MICRO_ECODEC && s->err == NULL) {
            s->err = micro_error_new("go.micro.client.codec", 500,
                "failed to decode a stream message");
        }
        end_abnormal(s, rc, false);
    } else {
        sitem *it = micro__calloc(1, sizeof(*it));
        if (it == NULL) {
            micro_buf_clear(&payload);
            end_abnormal(s, MICRO_ENOMEM, false);
        } else {
            it->buf = payload;
            it->size = payload.len + ITEM_COST;
            q_push(&s->in, it);
            pthread_cond_broadcast(&s->cv);
            if (s->in.bytes >= s->window && !s->paused && s->sock != NULL) {
                s->paused = true; /* the receiver is behind */
                micro_socket_pause(s->sock, true);
            }
        }
    }
    if (s->rcb != NULL) {
        deliver_recv(s);
    }
    unref_locked(s);
}

static void
cl_on_drain(void *arg, micro_socket *sock)
{
    micro_stream *s = arg;
    (void) sock;
    pthread_mutex_lock(&s->mu);
    s->refs++;
    flush(s);
    unref_locked(s);
}

static void
cl_on_close(void *arg, micro_socket *sock, int rc)
{
    micro_stream *s = arg;
    (void) sock;
    pthread_mutex_lock(&s->mu);
    s->refs++;
    if (s->sock != NULL) {
        sock_gone(s); /* the front end frees it after this */
    }
    if (s->end == 0 && !s->peer_ended) {
        end_abnormal(s, rc == MICRO_ETIMEDOUT ? MICRO_ETIMEDOUT
                                              : MICRO_ECONNRESET, false);
    } else if (s->end == 0 && !s->send_ended) {
        /* The server ended and closed: our sends cannot go anywhere. */
        s->send_ended = true;
        fail_out(s, MICRO_ECONNRESET);
    }
    if (s->rcb != NULL) {
        deliver_recv(s);
    }
    pthread_cond_broadcast(&s->cv);
    unref_locked(s);
}

static const micro_socket_handler client_sock_handler = {
    .on_msg = cl_on_msg,
    .on_drain = cl_on_drain,
    .on_close = cl_on_close,
};

int
micro__stream_client_new(micro_socket *sock, micro__stream_client_cfg *cfg,
    micro_stream **out)
{
    *out = NULL;
    micro_stream *s = micro__calloc(1, sizeof(*s));
    if (s == NULL) {
        return MICRO_ENOMEM;
    }
    s->loop = micro_socket_loop(sock);
    s->codec = cfg->codec;
    s->window = cfg->window;
    s->deadline = cfg->deadline;
    s->base = cfg->base;
    cfg->base = NULL;
    snprintf(s->remote, sizeof(s->remote), "%s", micro_socket_remote(sock));
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->ct = micro__strdup(cfg->content_type);
    s->endpoint = micro__strdup(cfg->endpoint);
    s->service = micro__strdup(cfg->service);
    s->id = micro__strdup(cfg->id);
    s->refs = 2; /* the user's, the loop's */
    s->timer.fn = on_timer;
    /* The opening message: Go Micro's client sends the request it was
     * given, which its server reads and discards. The placeholder here is
     * an empty payload, which every codec frames ({} for JSON). */
    micro_buf first = {0};
    int rc = (s->ct && s->endpoint && s->service && s->id) ? 0 : MICRO_ENOMEM;
    /* With application/grpc Go's server keeps the opening body as the
     * first message: then there is no placeholder, and the first send is
     * the first message. */
    bool placeholder = strncasecmp(cfg->content_type, "application/grpc",
                           16) != 0;
    if (rc == 0 && placeholder) {
        rc = encode_body(s, "", 0, &first);
    }
    if (rc == 0 && s->deadline != 0) {
        rc = micro__timer_start(s->loop, &s->timer, s->deadline, on_timer);
    }
    if (rc == 0 && placeholder) {
        rc = send_body(s, sock, &first);
    }
    micro_buf_clear(&first);
    if (rc != 0) {
        micro__timer_stop(s->loop, &s->timer);
        stream_free(s);
        return rc;
    }
    s->sock = sock;
    micro_socket_set_handler(sock, &client_sock_handler, s);
    micro_socket_set_busy(sock, true);
    *out = s;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Accessors and the end of a client stream.                            */

const micro_error *
micro_stream_error(const micro_stream *s)
{
    if (s == NULL) {
        return NULL;
    }
    micro_stream *w = (micro_stream *) s;
    pthread_mutex_lock(&w->mu);
    const micro_error *e = w->err;
    pthread_mutex_unlock(&w->mu);
    return e;
}

const char *
micro_stream_header(const micro_stream *s, const char *key)
{
    if (s == NULL || key == NULL) {
        return NULL;
    }
    micro_stream *w = (micro_stream *) s;
    pthread_mutex_lock(&w->mu);
    const char *v = w->hdrs != NULL ? micro_msg_header(w->hdrs, key) : NULL;
    pthread_mutex_unlock(&w->mu);
    return v;
}

const char *
micro_stream_endpoint(const micro_stream *s)
{
    return s->endpoint;
}

const char *
micro_stream_content_type(const micro_stream *s)
{
    return s->ct;
}

const char *
micro_stream_id(const micro_stream *s)
{
    return s->id;
}

const char *
micro_stream_remote(const micro_stream *s)
{
    return s->remote;
}

int64_t
micro_stream_remaining_ms(const micro_stream *s)
{
    if (s->deadline == 0) {
        return INT64_MAX;
    }
    return s->deadline - micro__now_ms();
}

micro_loop *
micro_stream_loop(const micro_stream *s)
{
    return s->loop;
}

void
micro_stream_set_data(micro_stream *s, void *data)
{
    s->data = data;
}

void *
micro_stream_data(const micro_stream *s)
{
    return s->data;
}

void
micro_stream_abort(micro_stream *s)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->end == 0) {
        post_work(s, LW_ABORT);
    }
    pthread_mutex_unlock(&s->mu);
}

void
micro_stream_free(micro_stream *s)
{
    if (s == NULL || s->server) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->owner_gone) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->owner_gone = true;
    post_work(s, LW_CLOSE);
    unref_locked(s); /* the user's */
}
