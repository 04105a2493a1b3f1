/*
 * wire.c - reading DNS queries from untrusted bytes and writing answers
 * with name compression (wire.h has the contract).
 *
 * Reading: a cursor over [0, n) that checks every length before use; a
 * name's compression pointers must point strictly below the position they
 * are read at, which bounds the hops by the message length and rules out
 * loops without counting; a name is assembled into a fixed 255-byte buffer
 * and refused when it would exceed it.
 *
 * Writing: the compression table holds the offsets of the suffixes of every
 * name written (each suffix starts at a label); a name to write is looked
 * up suffix by suffix, longest first, by reading the candidate back from
 * the buffer (so the table needs no copies), and the first match becomes a
 * pointer. Only offsets below 0x4000 can be pointed at.
 */
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "dns/wire.h"

/* --- names --- */

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

int dns_name_read(const uint8_t *msg, size_t n, size_t *off, dns_name *out)
{
	size_t pos = *off;
	size_t end = 0;          /* where the cursor resumes: after the first pointer */
	bool jumped = false;
	size_t len = 0;
	int labels = 0;
	for (;;) {
		if (pos >= n)
			return ERR_PARSE;
		uint8_t b = msg[pos];
		if ((b & 0xc0) == 0xc0) {
			if (pos + 1 >= n)
				return ERR_PARSE;
			size_t target = ((size_t)(b & 0x3f) << 8) | msg[pos + 1];
			if (target >= pos) /* only backwards: no loop can exist */
				return ERR_PARSE;
			if (!jumped) {
				end = pos + 2;
				jumped = true;
			}
			pos = target;
			continue;
		}
		if (b & 0xc0) /* 01 and 10: extended and reserved label types */
			return ERR_PARSE;
		if (b == 0) {
			if (len + 1 > DNS_NAME_MAX)
				return ERR_PARSE;
			out->wire[len++] = 0;
			out->len = (uint8_t)len;
			*off = jumped ? end : pos + 1;
			return 0;
		}
		if (pos + 1 + b > n || len + 1 + b + 1 > DNS_NAME_MAX || ++labels > 127)
			return ERR_PARSE;
		memcpy(out->wire + len, msg + pos, 1 + (size_t)b);
		len += 1 + (size_t)b;
		pos += 1 + (size_t)b;
	}
}

int dns_name_from_text(const char *text, dns_name *out)
{
	size_t len = 0;
	const char *s = text;
	if (strcmp(s, ".") == 0 || s[0] == '\0') {
		out->wire[0] = 0;
		out->len = 1;
		return 0;
	}
	while (*s) {
		size_t at = len++; /* the label's length byte */
		if (at >= DNS_NAME_MAX - 1)
			return ERR_PARSE;
		size_t l = 0;
		while (*s && *s != '.') {
			uint8_t c = (uint8_t)*s++;
			if (c == '\\') {
				if (s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' &&
				    s[2] <= '9') {
					int v = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
					if (v > 255)
						return ERR_PARSE;
					c = (uint8_t)v;
					s += 3;
				} else if (*s) {
					c = (uint8_t)*s++;
				} else {
					return ERR_PARSE;
				}
			}
			if (++l > DNS_LABEL_MAX || len >= DNS_NAME_MAX - 1)
				return ERR_PARSE;
			out->wire[len++] = c;
		}
		if (l == 0) /* an empty label: ".." or a leading dot */
			return ERR_PARSE;
		out->wire[at] = (uint8_t)l;
		if (*s == '.')
			s++;
	}
	out->wire[len++] = 0;
	out->len = (uint8_t)len;
	return 0;
}

void dns_name_to_text(const dns_name *name, char *out, size_t cap)
{
	size_t o = 0;
	if (cap == 0)
		return;
	if (name->len <= 1) {
		snprintf(out, cap, ".");
		return;
	}
	for (size_t i = 0; i < name->len && name->wire[i];) {
		uint8_t l = name->wire[i++];
		for (uint8_t k = 0; k < l && i < name->len; k++, i++) {
			uint8_t c = name->wire[i];
			char tmp[5];
			int w;
			if (c == '.' || c == '\\')
				w = snprintf(tmp, sizeof tmp, "\\%c", c);
			else if (c < 0x21 || c > 0x7e)
				w = snprintf(tmp, sizeof tmp, "\\%03u", c);
			else
				w = snprintf(tmp, sizeof tmp, "%c", c);
			if (o + (size_t)w + 1 > cap)
				goto done;
			memcpy(out + o, tmp, (size_t)w);
			o += (size_t)w;
		}
		if (o + 2 > cap)
			goto done;
		out[o++] = '.';
	}
done:
	out[o] = '\0';
}

bool dns_name_equal(const dns_name *a, const dns_name *b)
{
	if (a->len != b->len)
		return false;
	for (size_t i = 0; i < a->len; i++)
		if (lower(a->wire[i]) != lower(b->wire[i]))
			return false;
	return true;
}

int dns_name_labels(const dns_name *name)
{
	int n = 0;
	for (size_t i = 0; i < name->len && name->wire[i]; i += 1 + (size_t)name->wire[i])
		n++;
	return n;
}

void dns_name_suffix(const dns_name *name, int skip, dns_name *out)
{
	size_t i = 0;
	for (int k = 0; k < skip && i < name->len && name->wire[i]; k++)
		i += 1 + (size_t)name->wire[i];
	out->len = (uint8_t)(name->len - i);
	memmove(out->wire, name->wire + i, out->len);
}

bool dns_name_within(const dns_name *name, const dns_name *zone)
{
	if (name->len < zone->len)
		return false;
	/* the zone must be a whole-label suffix: walk name's labels to where
	 * the remaining length equals the zone's */
	size_t i = 0;
	while (name->len - i > zone->len) {
		if (!name->wire[i])
			return false;
		i += 1 + (size_t)name->wire[i];
	}
	if (name->len - i != zone->len)
		return false;
	for (size_t k = 0; k < zone->len; k++)
		if (lower(name->wire[i + k]) != lower(zone->wire[k]))
			return false;
	return true;
}

/* --- reading a query --- */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

/* Skip one resource record at *off (name, fixed part, RDATA). */
static int skip_rr(const uint8_t *p, size_t n, size_t *off)
{
	dns_name scratch;
	if (dns_name_read(p, n, off, &scratch) != 0 || *off + 10 > n)
		return ERR_PARSE;
	size_t rdlen = get16(p + *off + 8);
	if (*off + 10 + rdlen > n)
		return ERR_PARSE;
	*off += 10 + rdlen;
	return 0;
}

/* The options of an OPT record's RDATA. */
static int read_options(const uint8_t *p, size_t n, dns_query *q)
{
	size_t off = 0;
	while (off < n) {
		if (off + 4 > n)
			return ERR_PARSE;
		uint16_t code = get16(p + off), len = get16(p + off + 2);
		const uint8_t *d = p + off + 4;
		if (off + 4 + len > n)
			return ERR_PARSE;
		if (code == 8) { /* Client Subnet */
			if (len < 4 || q->ecs)
				return ERR_PARSE;
			uint16_t family = get16(d);
			uint8_t source = d[2], scope = d[3];
			size_t max = family == 1 ? 32 : family == 2 ? 128 : 0;
			size_t bytes = (size_t)(source + 7) / 8;
			/* RFC 7871 7.1.2: a wrong family, a source beyond it, a
			 * non-zero scope in a query, or an address not exactly
			 * the source's bytes: FORMERR */
			if (!max || source > max || scope != 0 || (size_t)len - 4 != bytes)
				return ERR_PARSE;
			memset(q->ecs_addr, 0, sizeof q->ecs_addr);
			memcpy(q->ecs_addr, d + 4, bytes);
			if (source % 8 && (q->ecs_addr[bytes - 1] & (uint8_t)(0xff >> (source % 8))))
				return ERR_PARSE; /* bits past the prefix must be zero */
			q->ecs = true;
			q->ecs_family = family;
			q->ecs_source = source;
		} else if (code == 10) { /* cookie */
			if (q->cookie || !(len == 8 || (len >= 16 && len <= 40)))
				return ERR_PARSE;
			memcpy(q->client_cookie, d, 8);
			q->server_cookie_len = (uint8_t)(len - 8);
			memcpy(q->server_cookie, d + 8, q->server_cookie_len);
			q->cookie = true;
		}
		off += 4 + (size_t)len;
	}
	return 0;
}

dns_parse_result dns_parse_query(const uint8_t *p, size_t n, dns_query *q)
{
	memset(q, 0, sizeof *q);
	if (n < DNS_HEADER_BYTES)
		return DNS_PARSE_DROP;
	q->id = get16(p);
	q->flags = get16(p + 2);
	if (q->flags & DNS_F_QR)
		return DNS_PARSE_DROP; /* a response: answering it could start a loop */
	if (DNS_OPCODE(q->flags) != 0)
		return DNS_PARSE_NOTIMP;
	uint16_t qd = get16(p + 4), an = get16(p + 6), ns = get16(p + 8), ar = get16(p + 10);
	if (qd != 1 || an != 0) /* one question; a query carries no answers */
		return DNS_PARSE_FORMERR;
	size_t off = DNS_HEADER_BYTES;
	if (dns_name_read(p, n, &off, &q->qname) != 0 || off + 4 > n)
		return DNS_PARSE_FORMERR;
	q->qtype = get16(p + off);
	q->qclass = get16(p + off + 2);
	off += 4;
	for (unsigned i = 0; i < ns; i++) /* (an IXFR's SOA would be here: skipped) */
		if (skip_rr(p, n, &off) != 0)
			return DNS_PARSE_FORMERR;
	bool badvers = false;
	for (unsigned i = 0; i < ar; i++) {
		dns_name owner;
		size_t at = off;
		if (dns_name_read(p, n, &off, &owner) != 0 || off + 10 > n)
			return DNS_PARSE_FORMERR;
		uint16_t type = get16(p + off), rdlen = get16(p + off + 8);
		if (off + 10 + rdlen > n)
			return DNS_PARSE_FORMERR;
		if (type == DNS_T_TSIG) {
			/* the last record only (RFC 8945 5.1); what follows it is not signed */
			if (i != ar - 1u || off + 10 + rdlen != n || at > 0xffff)
				return DNS_PARSE_FORMERR;
			q->tsig = true;
			q->tsig_at = (uint16_t)at;
		} else if (type == DNS_T_OPT) {
			/* one OPT, owned by the root (RFC 6891 6.1.1) */
			if (q->edns || owner.len != 1)
				return DNS_PARSE_FORMERR;
			q->edns = true;
			q->udp_size = get16(p + off + 2);
			q->edns_version = p[off + 5];
			q->dnssec_ok = (p[off + 6] & 0x80) != 0;
			if (q->edns_version != 0)
				badvers = true;
			else if (read_options(p + off + 10, rdlen, q) != 0)
				return DNS_PARSE_FORMERR;
		}
		off += 10 + (size_t)rdlen;
	}
	/* trailing bytes after the last record are ignored (some stacks pad) */
	return badvers ? DNS_PARSE_BADVERS : DNS_PARSE_OK;
}

/* --- writing --- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void write_counts(dns_writer *w)
{
	for (int i = 0; i < 4; i++)
		put16(w->buf + 4 + 2 * i, w->counts[i]);
}

int dns_w_bytes(dns_writer *w, const void *p, size_t n)
{
	if (n > w->cap - w->len)
		return ERR_LIMIT;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

int dns_w_u8(dns_writer *w, uint8_t v)
{
	return dns_w_bytes(w, &v, 1);
}

int dns_w_u16(dns_writer *w, uint16_t v)
{
	uint8_t b[2];
	put16(b, v);
	return dns_w_bytes(w, b, 2);
}

int dns_w_u32(dns_writer *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	return dns_w_bytes(w, b, 4);
}

/* Does the name written at buffer offset at (possibly through pointers)
 * equal suffix[0..len)? Reads only what this writer wrote. */
static bool written_equals(const dns_writer *w, size_t at, const uint8_t *suffix, size_t len)
{
	dns_name n;
	size_t off = at;
	if (dns_name_read(w->buf, w->len, &off, &n) != 0 || n.len != len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (lower(n.wire[i]) != lower(suffix[i]))
			return false;
	return true;
}

int dns_w_name(dns_writer *w, const dns_name *name, bool compress)
{
	size_t i = 0;
	size_t start = w->len;
	uint16_t added[DNS_NAME_MAX / 2];
	int nadded = 0;
	while (i < name->len && name->wire[i]) {
		if (compress) {
			for (int k = 0; k < w->ncomp; k++)
				if (written_equals(w, w->comp_off[k], name->wire + i, name->len - i)) {
					int rc = dns_w_u16(w, (uint16_t)(0xc000u | w->comp_off[k]));
					if (rc != 0) {
						w->len = start;
						return rc;
					}
					goto remember;
				}
		}
		if (w->len < 0x4000 && nadded < (int)(sizeof added / sizeof added[0]))
			added[nadded++] = (uint16_t)w->len;
		uint8_t l = name->wire[i];
		if (dns_w_bytes(w, name->wire + i, 1 + (size_t)l) != 0) {
			w->len = start;
			return ERR_LIMIT;
		}
		i += 1 + (size_t)l;
	}
	if (dns_w_u8(w, 0) != 0) {
		w->len = start;
		return ERR_LIMIT;
	}
remember:
	for (int k = 0; k < nadded && w->ncomp < DNS_COMPRESS_MAX; k++)
		w->comp_off[w->ncomp++] = added[k];
	return 0;
}

int dns_w_begin(dns_writer *w, uint8_t *buf, size_t cap, const dns_query *q, int rcode, bool with_question)
{
	memset(w, 0, sizeof *w);
	w->buf = buf;
	w->cap = cap;
	w->section = 1;
	if (cap < DNS_HEADER_BYTES)
		return ERR_LIMIT;
	uint16_t flags = (uint16_t)(DNS_F_QR | (q->flags & (0xfu << 11)) | (q->flags & (DNS_F_RD | DNS_F_CD)) |
				    (rcode & 0xf));
	put16(buf, q->id);
	put16(buf + 2, flags);
	w->len = DNS_HEADER_BYTES;
	write_counts(w);
	if (!with_question)
		return 0;
	dns_mark m = dns_w_mark(w);
	if (dns_w_name(w, &q->qname, true) != 0 || dns_w_u16(w, q->qtype) != 0 || dns_w_u16(w, q->qclass) != 0) {
		dns_w_rollback(w, &m);
		return ERR_LIMIT;
	}
	w->counts[0] = 1;
	write_counts(w);
	return 0;
}

void dns_w_flags(dns_writer *w, uint16_t set, uint16_t clear)
{
	uint16_t f = get16(w->buf + 2);
	f = (uint16_t)((f & ~clear) | set);
	put16(w->buf + 2, f);
}

void dns_w_rcode(dns_writer *w, int rcode)
{
	uint16_t f = get16(w->buf + 2);
	put16(w->buf + 2, (uint16_t)((f & ~0xfu) | (rcode & 0xf)));
}

void dns_w_section(dns_writer *w, int section)
{
	if (section >= 1 && section <= 3)
		w->section = section;
}

dns_mark dns_w_mark(const dns_writer *w)
{
	dns_mark m = {.len = w->len, .ncomp = w->ncomp};
	memcpy(m.counts, w->counts, sizeof m.counts);
	return m;
}

void dns_w_rollback(dns_writer *w, const dns_mark *m)
{
	w->len = m->len;
	w->ncomp = m->ncomp;
	memcpy(w->counts, m->counts, sizeof w->counts);
	write_counts(w);
}

int dns_w_rr_begin(dns_writer *w, const dns_name *owner, uint16_t type, uint16_t cls, uint32_t ttl,
		   size_t *rdlen_at)
{
	int rc = dns_w_name(w, owner, true);
	if (rc == 0)
		rc = dns_w_u16(w, type);
	if (rc == 0)
		rc = dns_w_u16(w, cls);
	if (rc == 0)
		rc = dns_w_u32(w, ttl);
	*rdlen_at = w->len;
	if (rc == 0)
		rc = dns_w_u16(w, 0);
	return rc;
}

int dns_w_rr_end(dns_writer *w, size_t rdlen_at)
{
	if (rdlen_at + 2 > w->len || w->len - rdlen_at - 2 > 0xffff)
		return ERR_LIMIT;
	put16(w->buf + rdlen_at, (uint16_t)(w->len - rdlen_at - 2));
	if (w->counts[w->section] == 0xffff)
		return ERR_LIMIT;
	w->counts[w->section]++;
	write_counts(w);
	return 0;
}

int dns_w_opt_begin(dns_writer *w, uint16_t udp_size, int rcode, bool dnssec_ok, size_t *rdlen_at)
{
	static const dns_name root = {.len = 1, .wire = {0}};
	uint32_t ttl = (uint32_t)((rcode >> 4) & 0xff) << 24 | (dnssec_ok ? 0x8000u : 0);
	dns_w_section(w, 3);
	return dns_w_rr_begin(w, &root, DNS_T_OPT, udp_size, ttl, rdlen_at);
}

int dns_w_opt_option(dns_writer *w, uint16_t code, const void *data, uint16_t len)
{
	int rc = dns_w_u16(w, code);
	if (rc == 0)
		rc = dns_w_u16(w, len);
	if (rc == 0)
		rc = dns_w_bytes(w, data, len);
	return rc;
}

size_t dns_w_length(const dns_writer *w)
{
	return w->len;
}
