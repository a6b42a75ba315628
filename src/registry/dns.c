/*
 * The DNS message codec of dns.h. It replaces libldns, of which mDNS used
 * a small part, and which made every process load libcrypto and libssl
 * for DNSSEC.
 *
 * Parsing reads nothing outside the packet: every offset is checked
 * against the length before the octet under it is read. A name is read
 * by one function (name_read) for both checking and printing, and it
 * stops because each compression pointer must point before the place the
 * current run of labels began, so the runs move strictly backwards, and
 * it gives up after 128 pointers, so that a chain of pointers cannot make
 * one short name cost thousands of steps.
 */
#include "core/internal.h"
#include "registry/dns.h"

#define PTR_MAX 128 /* a 255-octet name has at most 127 labels */

static uint16_t
rd16(const uint8_t *p)
{
    return (uint16_t) (p[0] << 8 | p[1]);
}

static uint32_t
rd32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 |
           (uint32_t) p[2] << 8 | p[3];
}

/* ------------------------------------------------------------------ */
/* Names                                                                */

/* Decompress the name at off of p[0..n) into out (wire form, ending with
 * the root label). *end is the offset just past the name where it sits
 * (after its first pointer, or its root label). Returns the wire length,
 * or MICRO_EPROTO with *why set. */
static int
name_read(const uint8_t *p, size_t n, size_t off,
    uint8_t out[MICRO_DNS_NAME_MAX], size_t *end, const char **why)
{
    size_t len = 0;
    size_t limit = off; /* a pointer must point before this */
    size_t ptrs = 0;
    *end = 0;
    for (;;) {
        if (off >= n) {
            *why = "name runs past the end";
            return MICRO_EPROTO;
        }
        uint8_t c = p[off];
        if ((c & 0xc0) == 0xc0) {
            if (off + 1 >= n) {
                *why = "name runs past the end";
                return MICRO_EPROTO;
            }
            size_t to = (size_t) (c & 0x3f) << 8 | p[off + 1];
            if (*end == 0) {
                *end = off + 2;
            }
            if (to < MICRO_DNS_HEADER || to >= limit) {
                *why = "compression pointer not to an earlier name";
                return MICRO_EPROTO;
            }
            if (++ptrs > PTR_MAX) {
                *why = "over 128 compression pointers in a name";
                return MICRO_EPROTO;
            }
            off = limit = to;
            continue;
        }
        if (c > 63) {
            *why = "label type 01 or 10, or a label over 63 octets";
            return MICRO_EPROTO;
        }
        if (len + 1 + c > MICRO_DNS_NAME_MAX) {
            *why = "name over 255 octets";
            return MICRO_EPROTO;
        }
        if (c >= n - off) {
            *why = "name runs past the end";
            return MICRO_EPROTO;
        }
        memcpy(out + len, p + off, (size_t) c + 1);
        len += (size_t) c + 1;
        off += (size_t) c + 1;
        if (c == 0) {
            if (*end == 0) {
                *end = off;
            }
            return (int) len;
        }
    }
}

static bool
special(uint8_t c)
{
    return c == '.' || c == ';' || c == '(' || c == ')' || c == '\\';
}

/* Wire form (as name_read leaves it) to presentation form. */
static int
name_print(const uint8_t *w, char *buf, size_t cap)
{
    size_t o = 0;
    if (w[0] == 0) {
        if (cap < 2) {
            return MICRO_EMSGSIZE;
        }
        memcpy(buf, ".", 2);
        return 1;
    }
    for (size_t i = 0; w[i] != 0; i += (size_t) w[i] + 1) {
        for (size_t j = 1; j <= w[i]; j++) {
            uint8_t c = w[i + j];
            char e[4] = { '\\', (char) c };
            size_t el = 2;
            if (c < '!' || c > '~') {
                e[1] = (char) ('0' + c / 100);
                e[2] = (char) ('0' + c / 10 % 10);
                e[3] = (char) ('0' + c % 10);
                el = 4;
            } else if (!special(c)) {
                e[0] = (char) c;
                el = 1;
            }
            if (o + el + 2 > cap) { /* then a dot, then NUL */
                return MICRO_EMSGSIZE;
            }
            memcpy(buf + o, e, el);
            o += el;
        }
        buf[o++] = '.';
    }
    buf[o] = '\0';
    return (int) o;
}

int
micro__dns_name_wire(const char *text, uint8_t out[MICRO_DNS_NAME_MAX])
{
    const char *s = text;
    size_t len = 0;
    if (strcmp(s, ".") == 0) {
        out[0] = 0;
        return 1;
    }
    while (*s != '\0') {
        /* Keep room for the root label: len stays below 254 here. */
        if (len >= MICRO_DNS_NAME_MAX - 1) {
            return MICRO_EINVAL;
        }
        size_t at = len++; /* this label's length octet */
        while (*s != '\0' && *s != '.') {
            unsigned c = (unsigned char) *s++;
            if (c == '\\') {
                if (s[0] >= '0' && s[0] <= '9') {
                    if (s[1] < '0' || s[1] > '9' || s[2] < '0' ||
                        s[2] > '9') {
                        return MICRO_EINVAL;
                    }
                    c = (unsigned) (s[0] - '0') * 100 +
                        (unsigned) (s[1] - '0') * 10 + (unsigned) (s[2] - '0');
                    s += 3;
                    if (c > 255) {
                        return MICRO_EINVAL;
                    }
                } else if (*s != '\0') {
                    c = (unsigned char) *s++;
                } else {
                    return MICRO_EINVAL;
                }
            }
            if (len - at > 63 || len >= MICRO_DNS_NAME_MAX - 1) {
                return MICRO_EINVAL;
            }
            out[len++] = (uint8_t) c;
        }
        if (len - at == 1) {
            return MICRO_EINVAL; /* an empty label: "a..b", ".a" */
        }
        out[at] = (uint8_t) (len - at - 1);
        if (*s == '.') {
            s++;
        }
    }
    if (len == 0) {
        return MICRO_EINVAL;
    }
    out[len++] = 0;
    return (int) len;
}

/* ------------------------------------------------------------------ */
/* Parsing                                                              */

static int
parse_fail(micro_dns_msg *m, int rc, const char *why)
{
    micro__free(m->rr);
    m->rr = NULL;
    memset(m->count, 0, sizeof(m->count)); /* no section to read */
    m->why = why;
    return rc;
}

/* The name at *off, checked; *off moves past it. */
static int
skip_name(micro_dns_msg *m, size_t *off)
{
    uint8_t w[MICRO_DNS_NAME_MAX];
    size_t end;
    int rc = name_read(m->wire, m->len, *off, w, &end, &m->why);
    if (rc < 0) {
        return rc;
    }
    *off = end;
    return 0;
}

/* RDATA of rr at rr->rdata, against its type. */
static int
parse_rdata(micro_dns_msg *m, micro_dns_rr *rr)
{
    size_t off = rr->rdata;
    size_t end = off + rr->rdlen;
    switch (rr->type) {
    case MICRO_DNS_A:
    case MICRO_DNS_AAAA:
        if (rr->rdlen != (rr->type == MICRO_DNS_A ? 4 : 16)) {
            m->why = "address record of the wrong length";
            return MICRO_EPROTO;
        }
        return 0;
    case MICRO_DNS_SRV:
    case MICRO_DNS_PTR:
        if (rr->type == MICRO_DNS_SRV) {
            if (rr->rdlen < 7) {
                m->why = "SRV record too short";
                return MICRO_EPROTO;
            }
            rr->priority = rd16(m->wire + off);
            rr->weight = rd16(m->wire + off + 2);
            rr->port = rd16(m->wire + off + 4);
            off += 6;
        }
        rr->target = (uint16_t) off;
        if (skip_name(m, &off) < 0) {
            return MICRO_EPROTO;
        }
        if (off != end) {
            m->why = "name does not fill its RDATA";
            return MICRO_EPROTO;
        }
        return 0;
    case MICRO_DNS_TXT:
        while (off < end) {
            off += (size_t) m->wire[off] + 1;
        }
        if (off != end) {
            m->why = "TXT string runs past its RDATA";
            return MICRO_EPROTO;
        }
        return 0;
    default:
        return 0; /* opaque */
    }
}

static int
parse_rr(micro_dns_msg *m, size_t *off, bool question, micro_dns_rr *rr)
{
    rr->name = (uint16_t) *off;
    if (skip_name(m, off) < 0) {
        return MICRO_EPROTO;
    }
    size_t fixed = question ? 4 : 10;
    if (m->len - *off < fixed) {
        m->why = "record runs past the end";
        return MICRO_EPROTO;
    }
    const uint8_t *p = m->wire + *off;
    rr->type = rd16(p);
    rr->rclass = rd16(p + 2);
    *off += fixed;
    if (question) {
        return 0;
    }
    rr->ttl = rd32(p + 4);
    rr->rdlen = rd16(p + 8);
    rr->rdata = (uint16_t) *off;
    if (m->len - *off < rr->rdlen) {
        m->why = "RDATA runs past the end";
        return MICRO_EPROTO;
    }
    *off += rr->rdlen;
    return parse_rdata(m, rr);
}

int
micro__dns_parse(micro_dns_msg *m, const uint8_t *wire, size_t len)
{
    memset(m, 0, sizeof(*m));
    m->wire = wire;
    m->len = len;
    if (len < MICRO_DNS_HEADER) {
        return parse_fail(m, MICRO_EPROTO, "shorter than a header");
    }
    if (len > MICRO_DNS_MSG_MAX) {
        return parse_fail(m, MICRO_EPROTO, "longer than 65535 octets");
    }
    m->id = rd16(wire);
    m->flags = rd16(wire + 2);
    size_t total = 0;
    for (size_t s = 0; s < 4; s++) {
        m->count[s] = rd16(wire + 4 + 2 * s);
        total += m->count[s];
    }
    /* A question takes at least 5 octets (root name, type, class), a
     * record 11: this bounds the allocation by the packet's size. */
    if ((size_t) m->count[0] * 5 + (total - m->count[0]) * 11 >
        len - MICRO_DNS_HEADER) {
        return parse_fail(m, MICRO_EPROTO, "counts larger than the packet");
    }
    if (total == 0) {
        return 0;
    }
    m->rr = micro__calloc(total, sizeof(*m->rr));
    if (m->rr == NULL) {
        return parse_fail(m, MICRO_ENOMEM, "out of memory");
    }
    size_t off = MICRO_DNS_HEADER;
    for (size_t i = 0; i < total; i++) {
        if (parse_rr(m, &off, i < m->count[0], &m->rr[i]) < 0) {
            return parse_fail(m, MICRO_EPROTO, m->why);
        }
    }
    return 0;
}

void
micro__dns_msg_free(micro_dns_msg *m)
{
    if (m != NULL) {
        micro__free(m->rr);
        m->rr = NULL;
    }
}

const micro_dns_rr *
micro__dns_section(const micro_dns_msg *m, micro_dns_section s, size_t *n)
{
    size_t first = 0;
    for (size_t i = 0; i < (size_t) s; i++) {
        first += m->count[i];
    }
    *n = m->count[s];
    return *n > 0 ? m->rr + first : NULL;
}

int
micro__dns_name_text(
    const micro_dns_msg *m, uint16_t off, char *buf, size_t cap)
{
    uint8_t w[MICRO_DNS_NAME_MAX];
    size_t end;
    const char *why;
    int rc = name_read(m->wire, m->len, off, w, &end, &why);
    return rc < 0 ? rc : name_print(w, buf, cap);
}

bool
micro__dns_txt_next(const micro_dns_msg *m, const micro_dns_rr *rr,
    size_t *pos, const uint8_t **s, size_t *len)
{
    const uint8_t *d = m->wire + rr->rdata;
    if (*pos >= rr->rdlen || d[*pos] >= rr->rdlen - *pos) {
        return false; /* the end (parsing checked the strings fit) */
    }
    *len = d[*pos];
    *s = d + *pos + 1;
    *pos += *len + 1;
    return true;
}

/* ------------------------------------------------------------------ */
/* Building                                                             */

static int
build_fail(micro_dns_builder *b, int rc)
{
    if (b->err == 0) {
        b->err = rc;
    }
    return b->err;
}

/* Room for n more octets; false (and the error kept) when there is none. */
static bool
room(micro_dns_builder *b, size_t n)
{
    if (b->err != 0) {
        return false;
    }
    if (n > MICRO_DNS_MSG_MAX - b->len) {
        build_fail(b, MICRO_EMSGSIZE);
        return false;
    }
    if (b->len + n <= b->cap) {
        return true;
    }
    size_t cap = b->cap != 0 ? b->cap : 512;
    while (cap < b->len + n) {
        cap *= 2;
    }
    if (cap > MICRO_DNS_MSG_MAX) {
        cap = MICRO_DNS_MSG_MAX;
    }
    uint8_t *p = micro__realloc(b->buf, cap);
    if (p == NULL) {
        build_fail(b, MICRO_ENOMEM);
        return false;
    }
    b->buf = p;
    b->cap = cap;
    return true;
}

static void
put(micro_dns_builder *b, const void *d, size_t n)
{
    if (room(b, n)) {
        memcpy(b->buf + b->len, d, n);
        b->len += n;
    }
}

static void
put16(micro_dns_builder *b, uint16_t v)
{
    uint8_t x[2] = { (uint8_t) (v >> 8), (uint8_t) v };
    put(b, x, 2);
}

static void
put32(micro_dns_builder *b, uint32_t v)
{
    put16(b, (uint16_t) (v >> 16));
    put16(b, (uint16_t) v);
}

/* Does the name at off of the message being built, which starts with a
 * label (compression targets always do), equal w[0..wl)? The first label
 * is compared in place, which rules out nearly every candidate cheaply;
 * the rest through name_read, like any name. */
static bool
name_at(const micro_dns_builder *b, size_t off, const uint8_t *w, size_t wl)
{
    if (b->buf[off] != w[0] || memcmp(b->buf + off + 1, w + 1, w[0]) != 0) {
        return false;
    }
    uint8_t have[MICRO_DNS_NAME_MAX];
    size_t end;
    const char *why;
    int hl = name_read(b->buf, b->len, off, have, &end, &why);
    return hl == (int) wl && memcmp(have, w, wl) == 0;
}

/* The name text, ending with a pointer to the longest suffix already in
 * the message when compress is set. Each label written whole becomes a
 * target for later names once the whole name is written (until then its
 * tail is not in the buffer). Octets are compared exactly, so a name
 * always reads back as it was given, case included. */
static void
put_name(micro_dns_builder *b, const char *text, bool compress)
{
    uint8_t w[MICRO_DNS_NAME_MAX];
    int wl = micro__dns_name_wire(text, w);
    if (wl < 0) {
        build_fail(b, wl);
        return;
    }
    uint16_t mine[MICRO_DNS_NAME_MAX / 2];
    size_t n_mine = 0;
    size_t i = 0;
    while (w[i] != 0 && b->err == 0) {
        for (size_t k = 0; compress && k < b->n_comp; k++) {
            if (name_at(b, b->comp[k], w + i, (size_t) wl - i)) {
                put16(b, (uint16_t) (0xc000 | b->comp[k]));
                goto done;
            }
        }
        if (b->len < 0x4000) {
            mine[n_mine++] = (uint16_t) b->len;
        }
        put(b, w + i, (size_t) w[i] + 1);
        i += (size_t) w[i] + 1;
    }
    put(b, w + i, 1); /* the root label */
done:
    for (size_t k = 0; k < n_mine && b->err == 0 &&
                       b->n_comp < MICRO_ARRAY_LEN(b->comp);
         k++) {
        b->comp[b->n_comp++] = mine[k];
    }
}

/* Open a record of section s: the header on the first one, the section
 * order, the count. */
static bool
begin(micro_dns_builder *b, micro_dns_section s)
{
    if (b->err != 0) {
        return false;
    }
    if (s < b->sec) {
        build_fail(b, MICRO_EINVAL);
        return false;
    }
    if (b->count[s] == UINT16_MAX) {
        build_fail(b, MICRO_EMSGSIZE);
        return false;
    }
    b->sec = s;
    if (b->len == 0) {
        static const uint8_t zero[MICRO_DNS_HEADER];
        put(b, zero, sizeof(zero));
    }
    return b->err == 0;
}

/* Owner, type, class, TTL, and RDLENGTH 0 for rr_end to fill in. The
 * offset of RDLENGTH, or 0 on failure. */
static size_t
rr_head(micro_dns_builder *b, micro_dns_section s, const char *name,
    uint16_t type, uint32_t ttl)
{
    if (s == MICRO_DNS_QUESTION) {
        build_fail(b, MICRO_EINVAL);
        return 0;
    }
    if (!begin(b, s)) {
        return 0;
    }
    put_name(b, name, true);
    put16(b, type);
    put16(b, MICRO_DNS_CLASS_IN);
    put32(b, ttl);
    size_t at = b->len;
    put16(b, 0);
    return b->err == 0 ? at : 0;
}

static int
rr_end(micro_dns_builder *b, micro_dns_section s, size_t at)
{
    if (at == 0 || b->err != 0) {
        return b->err;
    }
    size_t rdlen = b->len - at - 2; /* the message is at most 65535 */
    b->buf[at] = (uint8_t) (rdlen >> 8);
    b->buf[at + 1] = (uint8_t) rdlen;
    b->count[s]++;
    return 0;
}

void
micro__dns_builder_init(micro_dns_builder *b, uint16_t id, uint16_t flags)
{
    memset(b, 0, sizeof(*b));
    b->id = id;
    b->flags = flags;
}

void
micro__dns_builder_fini(micro_dns_builder *b)
{
    micro__free(b->buf);
    memset(b, 0, sizeof(*b));
}

int
micro__dns_builder_finish(micro_dns_builder *b, uint8_t **wire, size_t *len)
{
    *wire = NULL;
    *len = 0;
    if (b->err == 0 && b->len == 0) {
        (void) begin(b, MICRO_DNS_QUESTION); /* a header alone */
    }
    int rc = b->err;
    if (rc == 0) {
        uint8_t *h = b->buf;
        h[0] = (uint8_t) (b->id >> 8);
        h[1] = (uint8_t) b->id;
        h[2] = (uint8_t) (b->flags >> 8);
        h[3] = (uint8_t) b->flags;
        for (size_t s = 0; s < 4; s++) {
            h[4 + 2 * s] = (uint8_t) (b->count[s] >> 8);
            h[5 + 2 * s] = (uint8_t) b->count[s];
        }
        *wire = b->buf;
        *len = b->len;
        b->buf = NULL;
    }
    micro__dns_builder_fini(b);
    return rc;
}

int
micro__dns_add_question(
    micro_dns_builder *b, const char *name, uint16_t type, uint16_t qclass)
{
    if (!begin(b, MICRO_DNS_QUESTION)) {
        return b->err;
    }
    put_name(b, name, true);
    put16(b, type);
    put16(b, qclass);
    if (b->err == 0) {
        b->count[MICRO_DNS_QUESTION]++;
    }
    return b->err;
}

int
micro__dns_add_ptr(micro_dns_builder *b, micro_dns_section s,
    const char *name, uint32_t ttl, const char *target)
{
    size_t at = rr_head(b, s, name, MICRO_DNS_PTR, ttl);
    if (at != 0) {
        put_name(b, target, true);
    }
    return rr_end(b, s, at);
}

int
micro__dns_add_srv(micro_dns_builder *b, micro_dns_section s,
    const char *name, uint32_t ttl, uint16_t priority, uint16_t weight,
    uint16_t port, const char *target)
{
    size_t at = rr_head(b, s, name, MICRO_DNS_SRV, ttl);
    if (at != 0) {
        put16(b, priority);
        put16(b, weight);
        put16(b, port);
        put_name(b, target, false);
    }
    return rr_end(b, s, at);
}

int
micro__dns_add_addr(micro_dns_builder *b, micro_dns_section s,
    const char *name, uint32_t ttl, const uint8_t *ip, size_t len)
{
    if (len != 4 && len != 16) {
        return build_fail(b, MICRO_EINVAL);
    }
    size_t at = rr_head(
        b, s, name, len == 4 ? MICRO_DNS_A : MICRO_DNS_AAAA, ttl);
    if (at != 0) {
        put(b, ip, len);
    }
    return rr_end(b, s, at);
}

int
micro__dns_add_txt(micro_dns_builder *b, micro_dns_section s,
    const char *name, uint32_t ttl, const char *const *strs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(strs[i]) > 255) {
            return build_fail(b, MICRO_EINVAL);
        }
    }
    size_t at = rr_head(b, s, name, MICRO_DNS_TXT, ttl);
    for (size_t i = 0; i < n && at != 0; i++) {
        uint8_t l = (uint8_t) strlen(strs[i]);
        put(b, &l, 1);
        put(b, strs[i], l);
    }
    return rr_end(b, s, at);
}
