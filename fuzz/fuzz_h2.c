/*
 * libFuzzer target: the gRPC server's HTTP/2 input (src/http/h2.c and
 * src/rpc/grpc.c, served by the mucp server machinery), in process and
 * without sockets.
 *
 * nghttp2 parses frames; what we build on it is the point: request
 * headers (paths, methods, content types, metadata, timeouts), the gRPC
 * message framing inside DATA, ends, resets and flow control. So the input
 * is a small program of records that the harness turns into frames, with
 * nghttp2's HPACK encoder for the header blocks:
 *
 *   byte  op (low 3 bits) and a stream selector (high 5 bits: client
 *         stream ids 1, 3, 5, ... 63)
 *   byte  length L of the record's data, then L bytes (fewer at the end)
 *
 *   op 0  HEADERS: the data is "method\npath\ncontent-type\nk:v\n..." (each
 *         field optional, ":" splits metadata); END_STREAM when bit 0 of
 *         the data's last byte is set
 *   op 1  DATA with the data as is (gRPC framing fuzzed), no END_STREAM
 *   op 2  DATA with the data as is, END_STREAM
 *   op 3  RST_STREAM (code = data[0])
 *   op 4  WINDOW_UPDATE on the stream (increment from the data)
 *   op 5  raw bytes on the connection (frames nghttp2 must reject)
 *   op 6  PING / SETTINGS (data[0] chooses)
 *   op 7  trailers (HEADERS, END_STREAM) with the data as metadata
 *
 * The connection is a fake byte stream handed to the gRPC transport as an
 * accepted connection (micro__grpc_transport_accept); what the server
 * writes is counted and dropped. The whole input runs inside one task on
 * the loop thread, with the deferred work run by micro__loop_run_deferred
 * and every handler inline: deterministic.
 *
 * Failures: a crash, a sanitizer report, a leak, or the server not back
 * to idle (no request or stream in flight) once the connection is gone.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "core/loop_internal.h"
#include "io/stream.h"
#include "rpc/grpc.h"

#include <cmicro/micro.h>

/* ------------------------------------------------------------------ */
/* A fake byte stream.                                                  */

typedef struct fbs {
    micro__bs bs;
    bool closed;
    size_t written;
} fbs;

static void
f_read_start(micro__bs *s)
{
    (void) s;
}

static void
f_read_stop(micro__bs *s)
{
    (void) s;
}

static int
f_write(micro__bs *s, micro_buf *buf)
{
    ((fbs *) s)->written += buf->len;
    micro_buf_clear(buf);
    return 0;
}

static void
f_shutdown(micro__bs *s)
{
    (void) s;
}

static void
f_close(micro__bs *s)
{
    ((fbs *) s)->closed = true;
}

static const micro__bs_ops fake_ops = {
    .name = "fuzz",
    .read_start = f_read_start,
    .read_stop = f_read_stop,
    .write = f_write,
    .shutdown = f_shutdown,
    .close = f_close,
};

/* ------------------------------------------------------------------ */
/* The server, once.                                                    */

static micro_loop *g_loop;
static micro_transport *g_tr;
static micro_server *g_srv;
static micro_options *g_opts;

static int
h_hello(micro_request *req, micro_response *rsp, void *arg)
{
    (void) arg;
    size_t n = 0;
    const void *b = micro_request_body(req, &n);
    if (n > 0 && ((const char *) b)[0] == 'e') {
        return micro_response_error(rsp, NULL, 409, "asked to fail");
    }
    (void) micro_response_set_header(rsp, "X-Seen", "1");
    return micro_response_set_body(rsp, b, n);
}

static int
h_echo(micro_stream *s, const void *body, size_t len, void *arg)
{
    (void) arg;
    if (len > 0 && ((const char *) body)[0] == 'e') {
        return micro_stream_fail(s, NULL, 400, "asked to fail");
    }
    return micro_stream_send_async(s, body, len, NULL, NULL);
}

static void
h_end(micro_stream *s, int rc, void *arg)
{
    (void) arg;
    if (rc == MICRO_EOF) {
        (void) micro_stream_send_async(s, "end", 3, NULL, NULL);
        (void) micro_stream_close_send(s);
    }
}

static void
setup_once(void)
{
    if (g_loop != NULL) {
        return;
    }
    micro_log_set_logger(micro_log_null, NULL);
    if (micro_options_new(&g_opts) != 0 || micro_loop_new(&g_loop) != 0) {
        abort();
    }
    micro_options_set_bool(g_opts, "server_inline", true);
    micro_options_set_int(g_opts, "server_workers", 1);
    micro_options_set_str(g_opts, "server_name", "fuzz");
    micro_options_set_str(g_opts, "server_address", "127.0.0.1:0");
    /* small limits so that the input reaches them */
    micro_options_set_int(g_opts, "server_grpc_max_msg_size", 4096);
    micro_options_set_int(g_opts, "server_grpc_max_concurrent_streams", 8);
    micro_options_set_int(g_opts, "transport_window", 4096);
    if (micro_transport_new_by_name(&g_tr, "http", g_loop, g_opts) != 0 ||
        micro_server_new_with_ops(&g_srv, &micro_server_grpc_ops, g_loop,
            g_tr, g_opts) != 0) {
        abort();
    }
    micro_handler_desc d = {.size = sizeof(d), .endpoint = "F.Hello",
        .fn = h_hello, .flags = MICRO_HANDLER_INLINE};
    micro_stream_handler h = {.size = sizeof(h), .endpoint = "F.Echo",
        .on_msg = h_echo, .on_end = h_end, .flags = MICRO_HANDLER_INLINE};
    if (micro_server_handle(g_srv, &d) != 0 ||
        micro_server_handle_stream(g_srv, &h) != 0 ||
        micro_server_start(g_srv) != 0) {
        abort();
    }
}

/* ------------------------------------------------------------------ */
/* One input.                                                           */

typedef struct run {
    const uint8_t *p;
    size_t n;
    fbs *f;
    nghttp2_hd_deflater *def;
    micro_buf out; /* frames for the server */
} run;

static void
put_frame(run *r, uint8_t type, uint8_t flags, uint32_t sid, const void *p,
    size_t n)
{
    uint8_t h[9] = {(uint8_t) (n >> 16), (uint8_t) (n >> 8), (uint8_t) n,
        type, flags, (uint8_t) (sid >> 24), (uint8_t) (sid >> 16),
        (uint8_t) (sid >> 8), (uint8_t) sid};
    (void) micro_buf_append(&r->out, h, 9);
    if (n > 0) {
        (void) micro_buf_append(&r->out, p, n);
    }
}

/* A header block from "method\npath\nct\nk:v\n..." (request) or
 * "k:v\n..." (trailers). */
static void
put_headers(run *r, uint32_t sid, const uint8_t *d, size_t n, bool request,
    bool end)
{
    nghttp2_nv nv[16];
    size_t k = 0;
    char *text = malloc(n + 1);
    if (text == NULL) {
        return;
    }
    memcpy(text, d, n);
    text[n] = '\0';
    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    static const char *const pseudo[] = {":method", ":path", "content-type"};
    size_t field = request ? 0 : 3;
    if (request) {
        nv[k++] = (nghttp2_nv) {(uint8_t *) ":scheme", (uint8_t *) "http", 7,
            4, NGHTTP2_NV_FLAG_NONE};
        nv[k++] = (nghttp2_nv) {(uint8_t *) ":authority", (uint8_t *) "f",
            10, 1, NGHTTP2_NV_FLAG_NONE};
    }
    while (line != NULL && k < 16) {
        if (field < 3) {
            nv[k++] = (nghttp2_nv) {(uint8_t *) pseudo[field],
                (uint8_t *) line, strlen(pseudo[field]), strlen(line),
                NGHTTP2_NV_FLAG_NONE};
            field++;
        } else {
            char *colon = strchr(line, ':');
            if (colon != NULL && colon != line) {
                *colon = '\0';
                nv[k++] = (nghttp2_nv) {(uint8_t *) line,
                    (uint8_t *) colon + 1, strlen(line), strlen(colon + 1),
                    NGHTTP2_NV_FLAG_NONE};
            }
        }
        line = strtok_r(NULL, "\n", &save);
    }
    uint8_t buf[8192];
    ssize_t len = nghttp2_hd_deflate_hd(r->def, buf, sizeof(buf), nv, k);
    if (len >= 0) {
        put_frame(r, 1 /* HEADERS */,
            (uint8_t) (0x4 | (end ? 0x1 : 0)), sid, buf, (size_t) len);
    }
    free(text);
}

static void
build(run *r)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    (void) micro_buf_append(&r->out, preface, sizeof(preface) - 1);
    put_frame(r, 4 /* SETTINGS */, 0, 0, NULL, 0);
    size_t i = 0;
    while (i + 2 <= r->n) {
        uint8_t op = r->p[i] & 7u;
        uint32_t sid = 1u + 2u * (uint32_t) (r->p[i] >> 3);
        size_t len = r->p[i + 1];
        i += 2;
        if (len > r->n - i) {
            len = r->n - i;
        }
        const uint8_t *d = r->p + i;
        i += len;
        switch (op) {
        case 0:
            put_headers(r, sid, d, len, true, len > 0 && (d[len - 1] & 1));
            break;
        case 1:
        case 2:
            put_frame(r, 0 /* DATA */, op == 2 ? 0x1 : 0, sid, d, len);
            break;
        case 3: {
            uint8_t code[4] = {0, 0, 0, len > 0 ? d[0] : 8};
            put_frame(r, 3 /* RST_STREAM */, 0, sid, code, 4);
            break;
        }
        case 4: {
            uint8_t inc[4] = {0, 0, len > 0 ? d[0] : 1, len > 1 ? d[1] : 0};
            put_frame(r, 8 /* WINDOW_UPDATE */, 0, sid, inc, 4);
            break;
        }
        case 5:
            (void) micro_buf_append(&r->out, d, len);
            break;
        case 6: {
            uint8_t ping[8] = {0};
            if (len > 0 && (d[0] & 1)) {
                put_frame(r, 6 /* PING */, 0, 0, ping, 8);
            } else {
                put_frame(r, 4 /* SETTINGS */, 1 /* ACK */, 0, NULL, 0);
            }
            break;
        }
        default:
            put_headers(r, sid, d, len, false, true);
            break;
        }
    }
}

static int
run_input(void *arg)
{
    run *r = arg;
    fbs *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        abort();
    }
    f->bs.ops = &fake_ops;
    f->bs.loop = g_loop;
    snprintf(f->bs.remote, sizeof(f->bs.remote), "127.0.0.1:9");
    snprintf(f->bs.local, sizeof(f->bs.local), "127.0.0.1:8");
    r->f = f;
    micro__grpc_transport_accept(micro__server_grpc_transport(g_srv),
        &f->bs);
    micro__loop_run_deferred(g_loop);
    /* the bytes, in two pieces (a frame split across reads) */
    size_t half = r->out.len / 2;
    const micro__bs_cbs *cbs = f->bs.cbs;
    if (!f->closed && cbs != NULL) {
        cbs->on_read(f->bs.arg, &f->bs, (const char *) r->out.data, half);
        micro__loop_run_deferred(g_loop);
    }
    if (!f->closed && cbs != NULL && r->out.len > half) {
        cbs->on_read(f->bs.arg, &f->bs, (const char *) r->out.data + half,
            r->out.len - half);
        micro__loop_run_deferred(g_loop);
    }
    if (!f->closed && cbs != NULL) {
        cbs->on_eof(f->bs.arg, &f->bs, 0);
        micro__loop_run_deferred(g_loop);
    }
    if (!f->closed) {
        abort(); /* the engine must let go of its byte stream */
    }
    free(f);
    return 0;
}

static int
barrier(void *arg)
{
    (void) arg;
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_once();
    run r = {.p = data, .n = size};
    if (nghttp2_hd_deflate_new(&r.def, 4096) != 0) {
        abort();
    }
    build(&r);
    nghttp2_hd_deflate_del(r.def);
    if (micro__loop_call(g_loop, run_input, &r) != 0) {
        abort();
    }
    /* what the run posted to the loop (answers of the workers' path) */
    (void) micro__loop_call(g_loop, barrier, NULL);
    (void) micro__loop_call(g_loop, barrier, NULL);
    micro_buf_clear(&r.out);
    micro_server_stats st;
    micro_server_get_stats(g_srv, &st);
    if (st.inflight != 0) {
        fprintf(stderr, "fuzz_h2: %llu request(s) still in flight\n",
            (unsigned long long) st.inflight);
        abort();
    }
    return 0;
}
