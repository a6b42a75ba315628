/* HTTP/1.1 without I/O: the parser and the writers (h1.h). */
#include "http/h1.h"
#include "core/msg_internal.h"

#include <limits.h>
#include <pthread.h>

#define H1_FIELD_OVERHEAD 4 /* ": " and CRLF, counted against max_header */

/* ------------------------------------------------------------------ */
/* Characters.                                                          */

/* RFC 7230 tchar, as a table: this runs for every byte of every field
 * name parsed and written. */
static const unsigned char tchars[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
    ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

bool
micro__h1_token(const char *s, size_t n)
{
    if (n == 0) {
        return false;
    }
    unsigned char ok = 1;
    for (size_t i = 0; i < n; i++) {
        ok &= tchars[(unsigned char) s[i]];
    }
    return ok != 0;
}

bool
micro__h1_value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') {
            return false;
        }
    }
    return true;
}

/* A received value: no control byte but tab (Go's ValidHeaderFieldValue;
 * obs-text, bytes >= 0x80, is allowed). */
static bool
value_bytes_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* Eight bytes at a time (every value of every message passes here): a
 * word with no byte below 0x20 and none equal to 0x7f is fine as it is;
 * one that has (a tab, or a real control byte) is looked at bytewise. */
static bool
value_valid(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101u;
    const uint64_t highs = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t below = (x - 0x20 * ones) & ~x & highs;
        uint64_t y = x ^ (0x7f * ones);
        uint64_t del = (y - ones) & ~y & highs;
        if ((below | del) != 0 && !value_bytes_ok(s + i, 8)) {
            return false;
        }
    }
    return value_bytes_ok(s + i, n - i);
}

/* ------------------------------------------------------------------ */
/* Parser.                                                              */

static micro__h1_parser *
P(http_parser *hp)
{
    return hp->data;
}

static int
fail(micro__h1_parser *p, int rc)
{
    if (p->err == 0) {
        p->err = rc;
    }
    return -1;
}

static int
count_bytes(micro__h1_parser *p, size_t n)
{
    p->header_bytes += n;
    if (p->header_bytes > p->lim->max_header) {
        p->header_too_big = true;
        return fail(p, MICRO_EMSGSIZE);
    }
    return 0;
}

static int
on_message_begin(http_parser *hp)
{
    micro__h1_parser *p = P(hp);
    p->in_message = true;
    p->in_head = true;
    p->in_value = false;
    p->in_name = false;
    p->buffering = false;
    p->header_bytes = 0;
    p->fields = 0;
    p->field.len = 0;
    p->name_len = 0;
    p->borrowed = false;
    p->url.len = 0;
    if (p->msg == NULL && micro_msg_new(&p->msg) != 0) {
        return fail(p, MICRO_ENOMEM);
    }
    return 0;
}

static int
on_url(http_parser *hp, const char *at, size_t n)
{
    micro__h1_parser *p = P(hp);
    if (count_bytes(p, n) != 0) {
        return -1;
    }
    return micro_buf_append(&p->url, at, n) == 0 ? 0
                                                 : fail(p, MICRO_ENOMEM);
}

/* The borrowed field into p->field (its pieces are about to go away, or
 * another piece is coming). */
static int
unborrow(micro__h1_parser *p)
{
    if (!p->borrowed) {
        return 0;
    }
    p->borrowed = false;
    p->field.len = 0;
    if (micro_buf_append(&p->field, p->bname, p->bname_len) != 0) {
        return fail(p, MICRO_ENOMEM);
    }
    p->name_len = p->bname_len;
    if (p->in_value &&
        (micro_buf_append(&p->field, "", 1) != 0 ||
            micro_buf_append(&p->field, p->bvalue, p->bvalue_len) != 0)) {
        return fail(p, MICRO_ENOMEM);
    }
    return 0;
}

/* The field being parsed is complete: check it and append it. */
static int
flush_field(micro__h1_parser *p)
{
    const char *k, *v;
    size_t kl, vl;
    if (p->borrowed) {
        k = p->bname;
        kl = p->bname_len;
        v = p->in_value ? p->bvalue : "";
        vl = p->in_value ? p->bvalue_len : 0;
        p->borrowed = false;
    } else {
        if (!p->in_value) {
            /* A name without a value: only at headers complete, where
             * http_parser would have failed already. */
            p->name_len = p->field.len;
            if (micro_buf_append(&p->field, "", 1) != 0) {
                return fail(p, MICRO_ENOMEM);
            }
        }
        k = (const char *) p->field.data;
        kl = p->name_len;
        v = k + kl + 1;
        vl = p->field.len - kl - 1;
    }
    p->field.len = 0;
    p->name_len = 0;
    p->in_value = false;
    if (!micro__h1_token(k, kl) || !value_valid(v, vl)) {
        return fail(p, MICRO_EPROTO);
    }
    /* http_parser leaves trailing blanks of a value (before CRLF). */
    while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) {
        vl--;
    }
    if (micro__msg_add_header_n(p->msg, k, kl, v, vl) != 0) {
        return fail(p, MICRO_ENOMEM);
    }
    return 0;
}

/*
 * http_parser hands a name or a value over in as many pieces as the reads
 * cut it into, and a piece may be empty (a name whose ':' begins the next
 * read comes as a last, empty piece). So a field's overhead and count are
 * taken when it begins, and a name is judged by all of its pieces.
 */
static int
on_header_field(http_parser *hp, const char *at, size_t n)
{
    micro__h1_parser *p = P(hp);
    bool begins = !p->in_name;
    if (count_bytes(p, n + (begins ? H1_FIELD_OVERHEAD : 0)) != 0) {
        return -1;
    }
    if (begins && ++p->fields > p->lim->max_fields) {
        p->header_too_big = true;
        return fail(p, MICRO_EMSGSIZE);
    }
    p->in_name = true;
    if (!p->in_head) {
        /* A trailer: counted, checked, dropped (never carried over). */
        p->in_value = false;
        if (begins) {
            p->trailer_name_len = 0;
        }
        p->trailer_name_len += n;
        if (n > 0 && !micro__h1_token(at, n)) {
            return fail(p, MICRO_EPROTO);
        }
        return 0;
    }
    if (p->in_value) {
        if (flush_field(p) != 0) {
            return -1;
        }
    }
    if (begins) {
        p->borrowed = true;
        p->bname = at;
        p->bname_len = n;
        return 0;
    }
    if (unborrow(p) != 0 || micro_buf_append(&p->field, at, n) != 0) {
        return fail(p, MICRO_ENOMEM);
    }
    p->name_len = p->field.len;
    return 0;
}

static int
on_header_value(http_parser *hp, const char *at, size_t n)
{
    micro__h1_parser *p = P(hp);
    if (count_bytes(p, n) != 0) {
        return -1;
    }
    if (!p->in_head) {
        if (p->in_name && p->trailer_name_len == 0) {
            return fail(p, MICRO_EPROTO); /* an empty name */
        }
        p->in_name = false;
        return value_valid(at, n) ? 0 : fail(p, MICRO_EPROTO);
    }
    p->in_name = false;
    if (!p->in_value && p->borrowed) {
        p->in_value = true;
        p->bvalue = at;
        p->bvalue_len = n;
        return 0;
    }
    if (unborrow(p) != 0) {
        return -1;
    }
    if (!p->in_value) {
        if (micro_buf_append(&p->field, "", 1) != 0) {
            return fail(p, MICRO_ENOMEM);
        }
        p->in_value = true;
    }
    if (micro_buf_append(&p->field, at, n) != 0) {
        return fail(p, MICRO_ENOMEM);
    }
    return 0;
}

static int
on_status(http_parser *hp, const char *at, size_t n)
{
    return on_url(hp, at, n); /* the reason phrase shares the buffer */
}

static int
on_headers_complete(http_parser *hp)
{
    micro__h1_parser *p = P(hp);
    if ((p->field.len > 0 || p->borrowed) && flush_field(p) != 0) {
        return -1;
    }
    p->in_head = false;
    p->in_name = false;
    if (hp->upgrade) {
        /* No protocol switch (h2c, websockets) on these connections. */
        return fail(p, MICRO_EPROTO);
    }
    if (micro__msg_dedup(p->msg) != 0) {
        return fail(p, MICRO_ENOMEM);
    }
    if (micro_buf_append(&p->url, "", 1) != 0) {
        return fail(p, MICRO_ENOMEM);
    }
    micro__h1_head h;
    memset(&h, 0, sizeof(h));
    h.msg = p->msg;
    h.method = hp->method;
    h.status = hp->status_code;
    h.url = (const char *) p->url.data;
    h.reason = h.url;
    h.chunked = (hp->flags & F_CHUNKED) != 0;
    h.content_length = (!h.chunked && hp->content_length != ULLONG_MAX &&
                           hp->content_length <= INT64_MAX)
        ? (int64_t) hp->content_length
        : -1;
    if (hp->type == HTTP_REQUEST && h.content_length < 0 && !h.chunked) {
        h.content_length = 0; /* a request without either has no body */
    }
    h.keep_alive = http_should_keep_alive(hp) != 0;
    if (hp->type == HTTP_REQUEST) {
        const char *ex = micro_msg_header(p->msg, "Expect");
        h.expect_continue = ex != NULL && strcasecmp(ex, "100-continue") == 0;
    }
    int rc = p->cbs->on_head(p->arg, &h);
    if (rc < 0) {
        return fail(p, rc);
    }
    if (rc == MICRO__H1_BUFFER) {
        p->buffering = true;
        if (h.content_length > 0) {
            if ((uint64_t) h.content_length > p->lim->max_body) {
                return fail(p, MICRO_EMSGSIZE);
            }
            if (micro_buf_reserve(&p->msg->body, (size_t) h.content_length) !=
                0) {
                return fail(p, MICRO_ENOMEM);
            }
        }
    } else if (h.msg == NULL) {
        p->msg = NULL; /* taken by the callee */
    } else {
        micro_msg_free(p->msg);
        p->msg = NULL;
    }
    if (p->no_body) {
        p->no_body = false;
        return 1; /* http_parser: this response has no body (HEAD) */
    }
    return 0;
}

static int
on_body(http_parser *hp, const char *at, size_t n)
{
    micro__h1_parser *p = P(hp);
    if (p->buffering) {
        if (n > p->lim->max_body - p->msg->body.len) {
            return fail(p, MICRO_EMSGSIZE);
        }
        return micro_buf_append(&p->msg->body, at, n) == 0
            ? 0
            : fail(p, MICRO_ENOMEM);
    }
    if (p->cbs->on_body != NULL) {
        int rc = p->cbs->on_body(p->arg, at, n);
        if (rc < 0) {
            return fail(p, rc);
        }
    }
    return 0;
}

static int
on_message_complete(http_parser *hp)
{
    micro__h1_parser *p = P(hp);
    micro_msg *m = NULL;
    if (p->buffering) {
        m = p->msg;
        p->msg = NULL;
    } else {
        micro_msg_free(p->msg);
        p->msg = NULL;
    }
    p->in_message = false;
    p->in_head = false;
    p->buffering = false;
    p->field.len = 0;
    p->borrowed = false;
    p->in_value = false;
    p->in_name = false;
    int rc = p->cbs->on_end(p->arg, m, http_should_keep_alive(hp) != 0);
    if (rc < 0) {
        return fail(p, rc);
    }
    if (rc == MICRO__H1_PAUSE) {
        http_parser_pause(hp, 1);
    }
    return 0;
}

static const http_parser_settings h1_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* http_parser has one process-wide header limit (80 KiB as Debian builds
 * it); ours are per parser, so raise its own out of the way once. */
static void
raise_limit(void)
{
    http_parser_set_max_header_size(UINT32_MAX);
}

void
micro__h1_parser_init(micro__h1_parser *p, micro__h1_kind kind,
    const micro__h1_limits *lim, const micro__h1_cbs *cbs, void *arg)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, raise_limit);
    memset(p, 0, sizeof(*p));
    http_parser_init(&p->hp,
        kind == MICRO__H1_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE);
    p->hp.data = p;
    p->lim = lim;
    p->cbs = cbs;
    p->arg = arg;
}

void
micro__h1_parser_fini(micro__h1_parser *p)
{
    micro_msg_free(p->msg);
    p->msg = NULL;
    micro_buf_clear(&p->field);
    micro_buf_clear(&p->url);
}

ssize_t
micro__h1_parse(micro__h1_parser *p, const char *data, size_t n)
{
    if (p->err != 0) {
        return p->err;
    }
    if (HTTP_PARSER_ERRNO(&p->hp) == HPE_PAUSED) {
        http_parser_pause(&p->hp, 0);
    }
    if (n == 0) {
        return 0;
    }
    p->got_bytes = true;
    size_t used = http_parser_execute(&p->hp, &h1_settings, data, n);
    if (p->err == 0 && unborrow(p) != 0) {
        p->err = MICRO_ENOMEM;
    }
    if (p->err != 0) {
        return p->err;
    }
    enum http_errno he = HTTP_PARSER_ERRNO(&p->hp);
    if (he == HPE_PAUSED) {
        return (ssize_t) used;
    }
    if (he == HPE_HEADER_OVERFLOW) {
        p->header_too_big = true;
        p->err = MICRO_EMSGSIZE;
        return p->err;
    }
    if (he != HPE_OK || used != n) {
        MICRO_LOGF(MICRO_LOG_DEBUG, "http", "malformed HTTP: %s",
            http_errno_description(he));
        p->err = MICRO_EPROTO;
        return p->err;
    }
    return (ssize_t) used;
}

int
micro__h1_parse_eof(micro__h1_parser *p)
{
    if (p->err != 0) {
        return p->err;
    }
    if (!p->in_message) {
        return 0;
    }
    /* A body that runs until EOF ends here; anything else is cut short. */
    if (HTTP_PARSER_ERRNO(&p->hp) == HPE_PAUSED) {
        http_parser_pause(&p->hp, 0);
    }
    http_parser_execute(&p->hp, &h1_settings, NULL, 0);
    if (p->err != 0) {
        return p->err;
    }
    return p->in_message ? MICRO_ECONNRESET : 0;
}

int
micro__h1_parser_status(const micro__h1_parser *p, int rc)
{
    if (rc == MICRO_EMSGSIZE) {
        return p->header_too_big ? 431 : 413;
    }
    return 400;
}

void
micro__h1_parser_expect_no_body(micro__h1_parser *p)
{
    p->no_body = true; /* on_headers_complete tells http_parser */
}

/* ------------------------------------------------------------------ */
/* Writers.                                                             */

/* The trimmed span of a value, as Go writes it (TrimString after
 * headerNewlineToSpace). */
static void
value_span(const char *v, size_t n, size_t *start, size_t *len)
{
    size_t s = 0;
    size_t e = n;
    while (s < e && (v[s] == ' ' || v[s] == '\t' || v[s] == '\r' ||
                        v[s] == '\n' || v[s] == '\0')) {
        s++;
    }
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t' ||
                        v[e - 1] == '\r' || v[e - 1] == '\n' ||
                        v[e - 1] == '\0')) {
        e--;
    }
    *start = s;
    *len = e - s;
}

static char *
put_value(char *d, const char *v, size_t n)
{
    size_t s, l;
    value_span(v, n, &s, &l);
    for (size_t i = 0; i < l; i++) {
        char c = v[s + i];
        *d++ = (c == '\r' || c == '\n' || c == '\0') ? ' ' : c;
    }
    return d;
}

static size_t
value_len(const char *v, size_t n)
{
    size_t s, l;
    value_span(v, n, &s, &l);
    return l;
}

static char *
put(char *d, const char *s, size_t n)
{
    memcpy(d, s, n);
    return d + n;
}

#define PUT_LIT(d, s) put((d), (s), sizeof(s) - 1)

static bool
hdr_is(const struct micro_hdr *h, const char *name, size_t nl)
{
    return h->klen == nl && strncasecmp(h->key, name, nl) == 0;
}

/* Fields every writer sets itself (framing), skipped from hdrs; Host too
 * in requests. The length test first: this runs for every field of every
 * message. */
static bool
framing_field(const struct micro_hdr *h, bool request)
{
    switch (h->klen) {
    case 4:
        return request && hdr_is(h, "Host", 4);
    case 7:
        return hdr_is(h, "Trailer", 7);
    case 10:
        return hdr_is(h, "Connection", 10);
    case 14:
        return hdr_is(h, "Content-Length", 14);
    case 17:
        return hdr_is(h, "Transfer-Encoding", 17);
    default:
        return false;
    }
}

/* Decimal digits of v at the end of buf[0..cap); returns the start. */
static char *
fmt_u64(char *buf, size_t cap, uint64_t v)
{
    char *p = buf + cap;
    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return p;
}

/* Append one field; canon: write the name as Go canonicalises it. */
static int
append_field(micro_buf *out, const char *k, size_t kl, const char *v,
    size_t vl, bool canon)
{
    if (!micro__h1_token(k, kl)) {
        return MICRO_EINVAL;
    }
    size_t l = value_len(v, vl);
    int rc = micro_buf_reserve(out, kl + l + 5);
    if (rc != 0) {
        return rc;
    }
    char *d = (char *) out->data + out->len;
    if (canon) {
        int n = micro_canonical_header_key(k, d, kl + 1);
        if (n < 0 || (size_t) n != kl) {
            return MICRO_EINVAL;
        }
        d += kl;
    } else {
        d = put(d, k, kl);
    }
    d = PUT_LIT(d, ": ");
    d = put_value(d, v, vl);
    d = PUT_LIT(d, "\r\n");
    out->len = (size_t) ((uint8_t *) d - out->data);
    return 0;
}

static int
append_fields(micro_buf *out, const micro_msg *hdrs, bool canon)
{
    for (size_t i = 0; hdrs != NULL && i < hdrs->n; i++) {
        const struct micro_hdr *h = &hdrs->hdrs[i];
        if (framing_field(h, true)) {
            continue;
        }
        int rc = append_field(out, h->key, h->klen, h->value, h->vlen, canon);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
append_length(micro_buf *out, int64_t body_len)
{
    if (body_len < 0) {
        return micro_buf_append_str(out, "Transfer-Encoding: chunked\r\n");
    }
    char num[24];
    char *d = fmt_u64(num, sizeof(num), (uint64_t) body_len);
    int rc = micro_buf_append_str(out, "Content-Length: ");
    if (rc == 0) {
        rc = micro_buf_append(out, d, (size_t) (num + sizeof(num) - d));
    }
    if (rc == 0) {
        rc = micro_buf_append(out, "\r\n", 2);
    }
    return rc;
}

/* The end of a head: the caller's fields, the blank line; on failure out
 * is as it was at mark. */
static int
end_head(micro_buf *out, const micro_msg *hdrs, size_t mark, int rc)
{
    if (rc == 0) {
        rc = append_fields(out, hdrs, false);
    }
    if (rc == 0) {
        rc = micro_buf_append(out, "\r\n", 2);
    }
    if (rc != 0) {
        out->len = mark;
    }
    return rc;
}

int
micro__h1_write_request_head(micro_buf *out, const char *method,
    const char *target, const char *host, const micro_msg *hdrs,
    int64_t body_len)
{
    size_t mark = out->len;
    if (!micro__h1_token(method, strlen(method)) || target[0] == '\0' ||
        strpbrk(target, " \r\n") != NULL) {
        return MICRO_EINVAL;
    }
    int rc = micro_buf_append_str(out, method);
    if (rc == 0) {
        rc = micro_buf_append(out, " ", 1);
    }
    if (rc == 0) {
        rc = micro_buf_append_str(out, target);
    }
    if (rc == 0) {
        rc = micro_buf_append_str(out, " HTTP/1.1\r\n");
    }
    if (rc == 0) {
        rc = append_field(out, "Host", 4, host, strlen(host), false);
    }
    if (rc == 0) {
        rc = append_length(out, body_len);
    }
    return end_head(out, hdrs, mark, rc);
}

int
micro__h1_write_response_head(micro_buf *out, unsigned status,
    const char *reason, const micro_msg *hdrs, int64_t body_len, bool close)
{
    size_t mark = out->len;
    char line[96];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %u %s\r\n", status,
        reason != NULL ? reason : "");
    if (n < 0 || (size_t) n >= sizeof(line) || strpbrk(line, "\r\n") !=
            line + n - 2) {
        return MICRO_EINVAL;
    }
    int rc = micro_buf_append(out, line, (size_t) n);
    if (rc == 0) {
        rc = append_length(out, body_len);
    }
    if (rc == 0 && close) {
        rc = micro_buf_append_str(out, "Connection: close\r\n");
    }
    return end_head(out, hdrs, mark, rc);
}

int
micro__h1_write_chunk(micro_buf *out, const void *p, size_t n)
{
    size_t mark = out->len;
    char hex[24];
    int hl = snprintf(hex, sizeof(hex), "%zx\r\n", n);
    int rc = micro_buf_reserve(out, (size_t) hl + n + 4);
    if (rc == 0) {
        micro_buf_append(out, hex, (size_t) hl);
        if (n > 0) {
            micro_buf_append(out, p, n);
        }
        micro_buf_append(out, "\r\n", 2);
    }
    if (rc != 0) {
        out->len = mark;
    }
    return rc;
}

/* --- Go Micro's request, byte for byte. --------------------------- */

/* The User-Agent Go's client sends when none is set. */
#define UA_DEFAULT "Go-http-client/1.1"

typedef struct req_plan {
    const char *host;
    size_t host_len;
    const struct micro_hdr *ua; /* a User-Agent field, or NULL */
    size_t body_len;
    char clen[24];
    size_t clen_len;
    size_t head_size;
} req_plan;

static int
req_plan_make(req_plan *pl, const char *host, const micro_msg *req)
{
    pl->host = host;
    pl->host_len = strlen(host);
    pl->body_len = req->body.len;
    pl->ua = NULL;
    size_t n = sizeof("POST / HTTP/1.1\r\n") - 1;
    n += sizeof("Host: \r\n") - 1 + value_len(host, pl->host_len);
    for (size_t i = 0; i < req->n; i++) {
        const struct micro_hdr *h = &req->hdrs[i];
        if (hdr_is(h, "User-Agent", 10)) {
            if (pl->ua == NULL) {
                pl->ua = h;
            }
            continue;
        }
        if (framing_field(h, true)) {
            continue;
        }
        if (!micro__h1_token(h->key, h->klen)) {
            return MICRO_EINVAL;
        }
        n += h->klen + 2 + value_len(h->value, h->vlen) + 2;
    }
    if (pl->ua == NULL) {
        n += sizeof("User-Agent: " UA_DEFAULT "\r\n") - 1;
    } else {
        size_t l = value_len(pl->ua->value, pl->ua->vlen);
        if (l > 0) { /* Go omits the line for an empty User-Agent */
            n += sizeof("User-Agent: \r\n") - 1 + l;
        }
    }
    if (pl->body_len > 0) {
        char *d = fmt_u64(pl->clen, sizeof(pl->clen), pl->body_len);
        pl->clen_len = (size_t) (pl->clen + sizeof(pl->clen) - d);
        memmove(pl->clen, d, pl->clen_len);
        n += sizeof("Content-Length: \r\n") - 1 + pl->clen_len;
    } else {
        pl->clen_len = 0;
        n += sizeof("Transfer-Encoding: chunked\r\n") - 1 +
             sizeof("0\r\n\r\n") - 1;
    }
    n += 2; /* blank line */
    pl->head_size = n;
    return 0;
}

static void
req_plan_write(const req_plan *pl, const micro_msg *req, char *dst)
{
    char *d = dst;
    d = PUT_LIT(d, "POST / HTTP/1.1\r\nHost: ");
    d = put_value(d, pl->host, pl->host_len);
    d = PUT_LIT(d, "\r\n");
    if (pl->ua == NULL) {
        d = PUT_LIT(d, "User-Agent: " UA_DEFAULT "\r\n");
    } else if (value_len(pl->ua->value, pl->ua->vlen) > 0) {
        d = PUT_LIT(d, "User-Agent: ");
        d = put_value(d, pl->ua->value, pl->ua->vlen);
        d = PUT_LIT(d, "\r\n");
    }
    if (pl->body_len > 0) {
        d = PUT_LIT(d, "Content-Length: ");
        d = put(d, pl->clen, pl->clen_len);
        d = PUT_LIT(d, "\r\n");
    } else {
        d = PUT_LIT(d, "Transfer-Encoding: chunked\r\n");
    }
    for (size_t i = 0; i < req->n; i++) {
        const struct micro_hdr *h = &req->hdrs[i];
        if (hdr_is(h, "User-Agent", 10) || framing_field(h, true)) {
            continue;
        }
        /* Canonicalisation only changes letter case (the name is a
         * token), so the key keeps its length; the NUL lands where ':'
         * goes next. */
        micro_canonical_header_key(h->key, d, h->klen + 1);
        d += h->klen;
        d = PUT_LIT(d, ": ");
        d = put_value(d, h->value, h->vlen);
        d = PUT_LIT(d, "\r\n");
    }
    d = PUT_LIT(d, "\r\n");
    if (pl->body_len == 0) {
        d = PUT_LIT(d, "0\r\n\r\n");
    }
    MICRO_ASSERT((size_t) (d - dst) == pl->head_size);
}

int
micro__h1_mucp_request_head(const char *host, const micro_msg *req,
    char *dst, size_t size, size_t *head)
{
    req_plan pl;
    int rc = req_plan_make(&pl, host, req);
    *head = rc == 0 ? pl.head_size : 0;
    if (rc != 0) {
        return rc;
    }
    if (size < pl.head_size) {
        return MICRO_EMSGSIZE;
    }
    req_plan_write(&pl, req, dst);
    return 0;
}

int
micro__h1_write_mucp_request(micro_buf *out, const char *host,
    const micro_msg *req)
{
    req_plan pl;
    int rc = req_plan_make(&pl, host, req);
    if (rc != 0) {
        return rc;
    }
    rc = micro_buf_reserve(out, pl.head_size + pl.body_len);
    if (rc != 0) {
        return rc;
    }
    req_plan_write(&pl, req, (char *) out->data + out->len);
    out->len += pl.head_size;
    if (pl.body_len > 0) {
        memcpy(out->data + out->len, req->body.data, pl.body_len);
        out->len += pl.body_len;
    }
    return 0;
}

int
micro__h1_write_mucp_response(micro_buf *out, const micro_msg *rsp)
{
    static const char status[] = "HTTP/1.1 200 OK\r\nContent-Length: ";
    size_t mark = out->len;
    size_t blen = rsp->body.len;
    char num[24];
    char *d = fmt_u64(num, sizeof(num), blen);
    size_t dl = (size_t) (num + sizeof(num) - d);
    int rc = micro_buf_reserve(out, sizeof(status) + dl + 2 + blen + 256);
    if (rc != 0) {
        return rc;
    }
    micro_buf_append(out, status, sizeof(status) - 1);
    micro_buf_append(out, d, dl);
    micro_buf_append(out, "\r\n", 2);
    for (size_t i = 0; i < rsp->n; i++) {
        const struct micro_hdr *h = &rsp->hdrs[i];
        if (framing_field(h, false)) {
            continue;
        }
        rc = append_field(out, h->key, h->klen, h->value, h->vlen, true);
        if (rc != 0) {
            out->len = mark;
            return rc;
        }
    }
    rc = micro_buf_append(out, "\r\n", 2);
    if (rc == 0 && blen > 0) {
        rc = micro_buf_append(out, rsp->body.data, blen);
    }
    if (rc != 0) {
        out->len = mark;
    }
    return rc;
}

int
micro__h1_write_reject(micro_buf *out, int status)
{
    const char *reason = status == 431 ? "Request Header Fields Too Large"
        : status == 413                ? "Request Entity Too Large"
        : status == 503                ? "Service Unavailable"
        : status == 417                ? "Expectation Failed"
                                       : "Bad Request";
    char text[96];
    char head[256];
    snprintf(text, sizeof(text), "%d %s", status, reason);
    int n = snprintf(head, sizeof(head),
        "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
        text, strlen(text), text);
    return micro_buf_append(out, head, (size_t) n);
}
