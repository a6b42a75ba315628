/*
 * A DNS message codec with just what mDNS needs (RFC 1035 §4, RFC 6762):
 * the header, questions, and records, with PTR, SRV, TXT, A and AAAA
 * decoded and any other type kept as opaque RDATA. Not installed.
 *
 * Names are exchanged in presentation form, "greeter.micro." (a trailing
 * dot; "." is the root), with the escapes ldns used, so names read and
 * compare as they did: '.', ';', '(', ')' and '\' inside a label as "\c",
 * any octet outside '!'..'~' as "\DDD". The text of a name is therefore
 * unambiguous and holds no NUL, and turning it back into a name gives the
 * same octets. Names compare case-insensitively (strcasecmp on this
 * form), and the codec never changes their case.
 */
#ifndef CMICRO_DNS_H
#define CMICRO_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MICRO_DNS_HEADER 12     /* octets */
#define MICRO_DNS_MSG_MAX 65535 /* octets: the 16-bit length of RFC 1035 */
#define MICRO_DNS_NAME_MAX 255  /* octets of a name in wire form */
/* Characters of the longest name in presentation form with its NUL: 250
 * octets in four labels (their length octets and the root make 255), each
 * octet written "\DDD", a dot after each label. */
#define MICRO_DNS_NAME_TEXT_MAX (250 * 4 + 4 + 1)

/* Types. */
#define MICRO_DNS_A 1
#define MICRO_DNS_PTR 12
#define MICRO_DNS_TXT 16
#define MICRO_DNS_AAAA 28
#define MICRO_DNS_SRV 33
#define MICRO_DNS_ANY 255 /* in questions */

#define MICRO_DNS_CLASS_IN 1
/* The top bit of a question's class asks for a unicast response (QU,
 * RFC 6762 §5.4); in a record's it is the cache-flush bit. */
#define MICRO_DNS_CLASS_QU 0x8000

/* Header flags. */
#define MICRO_DNS_QR 0x8000 /* a response */
#define MICRO_DNS_AA 0x0400
#define MICRO_DNS_TC 0x0200
#define MICRO_DNS_RD 0x0100
#define MICRO_DNS_OPCODE(flags) (((flags) >> 11) & 15) /* 0: QUERY */
#define MICRO_DNS_RCODE(flags) ((flags) & 15)          /* 0: NOERROR */

typedef enum micro_dns_section {
    MICRO_DNS_QUESTION,
    MICRO_DNS_ANSWER,
    MICRO_DNS_AUTHORITY,
    MICRO_DNS_ADDITIONAL,
} micro_dns_section;

/*
 * One question or record of a parsed message. Names are offsets into the
 * message (read them with micro__dns_name_text); RDATA is checked against
 * its type: A holds 4 octets, AAAA 16, PTR one name, SRV three numbers
 * and a name, TXT character-strings that fill it exactly.
 */
typedef struct micro_dns_rr {
    uint16_t name;   /* the owner name */
    uint16_t type;
    uint16_t rclass; /* with its top bit (QU, or cache-flush) */
    uint32_t ttl;    /* 0 in a question */
    uint16_t rdata;  /* offset of RDATA; rdlen octets (0 in a question) */
    uint16_t rdlen;
    uint16_t target; /* PTR, SRV: the target name */
    uint16_t priority, weight, port; /* SRV */
} micro_dns_rr;

typedef struct micro_dns_msg {
    const uint8_t *wire; /* the packet, borrowed: it must outlive this */
    size_t len;
    uint16_t id;
    uint16_t flags;
    uint16_t count[4];   /* per micro_dns_section */
    micro_dns_rr *rr;    /* every section in order: count[0] questions, ... */
    const char *why;     /* after a failed parse: what was wrong (static) */
} micro_dns_msg;

/*
 * Parse the DNS message wire[0..len) into m. Every name is decompressed
 * and checked once here: labels of at most 63 octets, names of at most
 * 255, compression pointers only to earlier names (which makes loops
 * impossible) and at most 128 of them per name. Octets after the last
 * record are ignored, as ldns did.
 *
 * Ownership: wire is borrowed for as long as m is used; m holds one
 *   allocation (none when the message has no record), released by
 *   micro__dns_msg_free. On failure m holds nothing and m->why says why.
 * Thread:   any.
 * Errors:   MICRO_EPROTO (malformed: truncated, counts larger than the
 *   data, a bad name, RDATA that does not fit its type), MICRO_ENOMEM.
 */
int micro__dns_parse(micro_dns_msg *m, const uint8_t *wire, size_t len);

/* Release what micro__dns_parse allocated; NULL-safe and idempotent. */
void micro__dns_msg_free(micro_dns_msg *m);

/* The records of section s of a parsed message, and their number. */
const micro_dns_rr *micro__dns_section(
    const micro_dns_msg *m, micro_dns_section s, size_t *n);

/*
 * The name at offset off of m (a micro_dns_rr's name or target) into
 * buf[0..cap) in presentation form, NUL-terminated; MICRO_DNS_NAME_TEXT_MAX
 * always suffices. Returns its length, MICRO_EMSGSIZE when cap is too
 * small, MICRO_EPROTO when off holds no valid name.
 */
int micro__dns_name_text(
    const micro_dns_msg *m, uint16_t off, char *buf, size_t cap);

/*
 * Walk the character-strings of a TXT record: *pos starts at 0; each call
 * gives the next string in *s (pointing into the message) and *len, and
 * false after the last one.
 */
bool micro__dns_txt_next(const micro_dns_msg *m, const micro_dns_rr *rr,
    size_t *pos, const uint8_t **s, size_t *len);

/*
 * The wire form of the name text (presentation form; the trailing dot is
 * optional) into out. Returns its length (1 to 255), or MICRO_EINVAL when
 * text is no name: empty, an empty label, a label over 63 octets, over
 * 255 octets in all, or a bad escape.
 */
int micro__dns_name_wire(const char *text, uint8_t out[MICRO_DNS_NAME_MAX]);

/*
 * Building a message: init, then questions, then records section by
 * section (sections may be skipped but not revisited), then finish.
 * Owner names, question names and PTR targets are compressed against the
 * names already written; an SRV target is written whole (RFC 2782).
 * Records get class IN. These are the record types mDNS sends; there is
 * no builder for other types.
 *
 * The first failure sticks: every later call returns it and adds nothing,
 * and finish reports it, so a caller may add a whole message and check
 * once. Errors: MICRO_EINVAL (a bad name, a TXT string over 255 octets,
 * an address that is neither 4 nor 16 octets, a section out of order),
 * MICRO_EMSGSIZE (over 65535 octets or 65535 records in a section),
 * MICRO_ENOMEM.
 *
 * Ownership: the builder owns a growing buffer until finish (which hands
 *   it over, or frees it on failure) or fini (which drops it). Names and
 *   data passed in are copied. Thread: any; one builder per thread.
 */
typedef struct micro_dns_builder {
    uint8_t *buf;
    size_t len;
    size_t cap;
    uint16_t id;
    uint16_t flags;
    uint16_t count[4];
    micro_dns_section sec; /* the section being written */
    int err;               /* the first failure, sticky */
    uint16_t comp[64];     /* where labels were written, for compression */
    size_t n_comp;
} micro_dns_builder;

/* Start a message with this ID and header flags. Allocates nothing. */
void micro__dns_builder_init(micro_dns_builder *b, uint16_t id, uint16_t flags);
/* Drop the message (after a failure, or instead of finish). Idempotent. */
void micro__dns_builder_fini(micro_dns_builder *b);
/* End the message: on success *wire is it (micro__free) and *len its
 * length; on failure *wire is NULL and the first error is returned. The
 * builder is empty afterwards either way. */
int micro__dns_builder_finish(
    micro_dns_builder *b, uint8_t **wire, size_t *len);

int micro__dns_add_question(
    micro_dns_builder *b, const char *name, uint16_t type, uint16_t qclass);
int micro__dns_add_ptr(micro_dns_builder *b, micro_dns_section s,
    const char *name, uint32_t ttl, const char *target);
int micro__dns_add_srv(micro_dns_builder *b, micro_dns_section s,
    const char *name, uint32_t ttl, uint16_t priority, uint16_t weight,
    uint16_t port, const char *target);
/* An A record for a 4-octet address, AAAA for a 16-octet one. */
int micro__dns_add_addr(micro_dns_builder *b, micro_dns_section s,
    const char *name, uint32_t ttl, const uint8_t *ip, size_t len);
/* A TXT record of n strings (n 0: empty RDATA, as Go's wildcard sends). */
int micro__dns_add_txt(micro_dns_builder *b, micro_dns_section s,
    const char *name, uint32_t ttl, const char *const *strs, size_t n);

#endif
