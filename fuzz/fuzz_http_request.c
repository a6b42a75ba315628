/* libFuzzer target: the HTTP/1.1 engine's request parser (http/h1.c), as
 * every server of cmicro runs it: whole messages buffered under the http
 * transport's default limits (1 MiB of header, 1000 fields, 4 MiB of
 * body), the input as one read of a new connection, then split at a
 * point the input chooses (a pause and resume after every message). */
#include "fuzz.h"

#include <stdlib.h>

#include "http/h1.h"

static int
on_head(void *arg, micro__h1_head *h)
{
    (void) arg;
    (void) h;
    return MICRO__H1_BUFFER;
}

static int
on_end(void *arg, micro_msg *msg, bool keep_alive)
{
    size_t *n = arg;
    (void) keep_alive;
    (*n)++;
    micro_msg_free(msg);
    return MICRO__H1_PAUSE; /* resume at once: exercises the pause path */
}

static const micro__h1_cbs cbs = {
    .on_head = on_head,
    .on_end = on_end,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const micro__h1_limits lim = {
        .max_header = 1u << 20, .max_fields = 1000, .max_body = 4u << 20};
    size_t n = 0;
    micro__h1_parser p;
    micro__h1_parser_init(&p, MICRO__H1_REQUEST, &lim, &cbs, &n);
    size_t split = size > 0 ? data[0] % (size + 1) : 0;
    const char *s = (const char *) data;
    size_t off = 0;
    int rc = 0;
    size_t parts[2] = {split, size - split};
    for (int i = 0; i < 2 && rc == 0; i++) {
        size_t left = parts[i];
        while (left > 0) {
            ssize_t used = micro__h1_parse(&p, s + off, left);
            if (used < 0) {
                rc = (int) used;
                break;
            }
            if (used == 0) {
                break;
            }
            off += (size_t) used;
            left -= (size_t) used;
        }
    }
    if (rc == 0) {
        rc = micro__h1_parse_eof(&p);
        if (rc == MICRO_ECONNRESET) {
            rc = 0; /* cut short: fine */
        }
    }
    micro__h1_parser_fini(&p);
    if (rc != 0 && rc != MICRO_EPROTO && rc != MICRO_EMSGSIZE &&
        rc != MICRO_ENOMEM) {
        abort();
    }
    return 0;
}
