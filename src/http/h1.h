/*
 * Layer 2: HTTP/1.1, written once.
 *
 * h1.c is the protocol without I/O: a parser (http_parser underneath) that
 * turns bytes into message heads, bodies and ends, and writers that turn
 * messages into bytes. Every HTTP/1.1 user drives these same functions:
 * the connection driver on a loop (conn.c: the mucp transport's sockets,
 * the HTTP broker, the general client), and the blocking client of the
 * synchronous call path (transport/http.c), so all of them accept and
 * produce exactly the same bytes and enforce the same limits.
 *
 * The parser is linear in its input: header fields are appended (never
 * searched while parsing), counted (max_fields) and sized (max_header,
 * which covers the start line, fields and trailers); repeated names keep
 * their first value (Go Micro's transport takes v[0]), resolved in one
 * hashed pass per message. Trailers are counted and dropped. Field names
 * must be tokens (a space before the colon is refused, as Go's server
 * refuses it) and values free of control bytes other than tab.
 *
 * Not installed. Plain values: any thread, one user at a time.
 */
#ifndef CMICRO_HTTP_H1_H
#define CMICRO_HTTP_H1_H

#include "core/internal.h"

#include <http_parser.h>

typedef enum micro__h1_kind {
    MICRO__H1_REQUEST = 0,  /* parse requests (a server) */
    MICRO__H1_RESPONSE = 1, /* parse responses (a client) */
} micro__h1_kind;

typedef struct micro__h1_limits {
    size_t max_header; /* bytes of one header block (+ its trailers) */
    size_t max_fields; /* header fields (+ trailer fields) per message */
    size_t max_body;   /* bytes of a buffered body */
} micro__h1_limits;

/* A parsed head, for on_head. Pointers are valid during the call. */
typedef struct micro__h1_head {
    micro_msg *msg;     /* the header fields; see on_head for ownership */
    unsigned method;    /* enum http_method (requests) */
    const char *url;    /* request target (requests), NUL-terminated */
    unsigned status;    /* responses */
    const char *reason; /* responses: the reason phrase */
    int64_t content_length; /* -1 when absent (chunked or until EOF) */
    bool chunked;
    bool keep_alive;      /* the connection may carry another message */
    bool expect_continue; /* a request with Expect: 100-continue */
} micro__h1_head;

/* on_head's answer: have the body accumulated into the head's message
 * (up to max_body) and delivered with on_end. */
#define MICRO__H1_BUFFER 1
/* on_end's answer: stop parsing after this message (see micro__h1_parse). */
#define MICRO__H1_PAUSE 1

typedef struct micro__h1_cbs {
    /* A head. Return MICRO__H1_BUFFER (the message, body included, then
     * comes to on_end), or 0 (the body comes through on_body, and the
     * callee may take h->msg by setting it to NULL; otherwise it is freed
     * after the call), or a negative code, which fails the parse. */
    int (*on_head)(void *arg, micro__h1_head *h);
    /* Unbuffered body bytes, valid during the call. May be NULL. */
    int (*on_body)(void *arg, const char *p, size_t n);
    /* The message is complete: msg is the buffered message (transferred)
     * or NULL. Return 0, MICRO__H1_PAUSE, or a negative code. */
    int (*on_end)(void *arg, micro_msg *msg, bool keep_alive);
} micro__h1_cbs;

typedef struct micro__h1_parser {
    http_parser hp;
    const micro__h1_limits *lim;
    const micro__h1_cbs *cbs;
    void *arg;
    micro_msg *msg;   /* the message being parsed */
    micro_buf field;  /* name, NUL, value of the field being parsed */
    size_t name_len;
    /* The field being parsed while it is still a name and a value as
     * http_parser handed them over, in the input of this parse call (the
     * common case: no copy); copied into field before the call returns or
     * when a further piece comes. */
    const char *bname, *bvalue;
    size_t bname_len, bvalue_len;
    bool borrowed;
    micro_buf url;    /* request target, or reason phrase */
    size_t header_bytes;
    size_t fields;
    int err;          /* why the parse failed (set by a callback) */
    bool in_value;
    bool in_name;     /* a field name has begun (its value has not) */
    size_t trailer_name_len;
    bool in_head;     /* between message begin and headers complete */
    bool in_message;  /* a message has begun and not ended */
    bool buffering;
    bool header_too_big; /* the EMSGSIZE is a header block's (431) */
    bool got_bytes;
    bool no_body; /* the next response answers HEAD */
} micro__h1_parser;

/* lim is borrowed for the parser's life; cbs and arg too. */
void micro__h1_parser_init(micro__h1_parser *p, micro__h1_kind kind,
    const micro__h1_limits *lim, const micro__h1_cbs *cbs, void *arg);
void micro__h1_parser_fini(micro__h1_parser *p);

/*
 * Parse n bytes. Returns the number consumed: n, or fewer when on_end
 * asked to pause (the rest belongs to the next message; call again with
 * it to resume). A negative code when the input is refused:
 * MICRO_EPROTO (malformed: answer 400), MICRO_EMSGSIZE (over a limit:
 * micro__h1_parser_status says 431 or 413), MICRO_ENOMEM, or the code a
 * callback returned. After an error the parser is unusable.
 */
ssize_t micro__h1_parse(micro__h1_parser *p, const char *data, size_t n);

/* The peer closed: ends a response body that runs until EOF. 0 when no
 * message was cut short, MICRO_ECONNRESET when one was, or a callback's
 * code. */
int micro__h1_parse_eof(micro__h1_parser *p);

/* True while a message has begun and not ended (a read timeout applies). */
static inline bool
micro__h1_parser_busy(const micro__h1_parser *p)
{
    return p->in_message;
}

/* The HTTP status that answers the parse error rc: 400, 413 or 431. */
int micro__h1_parser_status(const micro__h1_parser *p, int rc);

/* The next response answers a HEAD request: it has no body. */
void micro__h1_parser_expect_no_body(micro__h1_parser *p);

/* ------------------------------------------------------------------ */
/* Writers. Each appends to out; MICRO_ENOMEM leaves out's length as it
 * was. Header names must be tokens (MICRO_EINVAL otherwise: nothing is
 * written); values are written with CR, LF and NUL turned into spaces
 * and surrounding blanks trimmed, as Go's net/http writes them.        */

/* True when s[0..n) is a non-empty HTTP token (a valid field name). */
bool micro__h1_token(const char *s, size_t n);
/* True when a value has no CR, LF or NUL (what APIs that set headers
 * accept, so that nothing is changed silently on the wire). */
bool micro__h1_value_ok(const char *s, size_t n);

/*
 * A general request head: "METHOD target HTTP/1.1", Host, the fields of
 * hdrs as given (none of Host, Content-Length, Transfer-Encoding,
 * Connection; those are the writer's), then Content-Length: body_len, or
 * Transfer-Encoding: chunked when body_len < 0 (the body then follows in
 * micro__h1_write_chunk pieces). hdrs may be NULL.
 */
int micro__h1_write_request_head(micro_buf *out, const char *method,
    const char *target, const char *host, const micro_msg *hdrs,
    int64_t body_len);
/* A general response head ("HTTP/1.1 status reason"), as above; close
 * adds Connection: close. */
int micro__h1_write_response_head(micro_buf *out, unsigned status,
    const char *reason, const micro_msg *hdrs, int64_t body_len, bool close);
/* One chunk of a chunked body; n == 0 writes the last chunk. */
int micro__h1_write_chunk(micro_buf *out, const void *p, size_t n);

/*
 * Go Micro's HTTP transport, byte for byte: a request as Go's http client
 * writes it ("POST / HTTP/1.1", Host, User-Agent unless hdrs has one,
 * Content-Length, or for an empty body Transfer-Encoding: chunked with its
 * "0\r\n\r\n", then every field with its name canonicalised, then the
 * body), and a response as Go Micro's server writes it ("HTTP/1.1 200 OK",
 * Content-Length first, canonical fields, body).
 */
int micro__h1_write_mucp_request(micro_buf *out, const char *host,
    const micro_msg *req);
int micro__h1_write_mucp_response(micro_buf *out, const micro_msg *rsp);
/* micro__h1_write_mucp_request's head (without the body) into dst, for
 * the blocking client's vectored send: *head is its exact size; when size
 * is smaller nothing is written and the result is MICRO_EMSGSIZE (call
 * again with a buffer of *head bytes). MICRO_EINVAL: a name is not a
 * token. */
int micro__h1_mucp_request_head(const char *host, const micro_msg *req,
    char *dst, size_t size, size_t *head);

/* A whole rejection answer as Go's net/http writes it: "HTTP/1.1 <status>
 * <text>", text/plain, Connection: close, body "<status> <text>". */
int micro__h1_write_reject(micro_buf *out, int status);

#endif
