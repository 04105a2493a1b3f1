/*
 * wire.h - the DNS message format (RFC 1035 section 4; EDNS0, RFC 6891;
 * Client Subnet, RFC 7871; cookies, RFC 7873) for an authoritative server:
 * reading a query from untrusted bytes, and writing an answer with name
 * compression into a bounded buffer.
 *
 * Reading never trusts a length: every name is read with compression
 * pointers that must point strictly backwards (so no loop can exist), at
 * most 255 bytes and 127 labels, labels of at most 63 bytes; a count in the
 * header is believed only as far as the bytes carry it. A query is one
 * question; its additional section may hold one OPT record, whose options
 * are read (ECS, cookie) or skipped. Names keep their case as sent (answers
 * echo the question's case, RFC 4343); comparisons ignore ASCII case.
 *
 * Writing goes into a caller's buffer of fixed capacity (the client's UDP
 * size, or 65535 for TCP): a record that does not fit fails with ERR_LIMIT
 * and leaves the message as it was before that record (dns_w_mark /
 * dns_w_rollback), so the caller can set TC and send what fits. Names are
 * compressed against every name written before (a table of at most
 * DNS_COMPRESS_MAX suffixes; past it, names are written whole: still
 * correct, only longer).
 */
#ifndef TANDEM_DNS_WIRE_H
#define TANDEM_DNS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX 255   /* a name in wire form, its length bytes and the root included */
#define DNS_LABEL_MAX 63
#define DNS_HEADER_BYTES 12
#define DNS_UDP_MIN 512    /* every client takes this much (RFC 1035) */
#define DNS_COMPRESS_MAX 128

enum { /* types and classes used here (the others pass through as numbers) */
	DNS_T_A = 1, DNS_T_NS = 2, DNS_T_CNAME = 5, DNS_T_SOA = 6, DNS_T_PTR = 12, DNS_T_MX = 15,
	DNS_T_TXT = 16, DNS_T_AAAA = 28, DNS_T_SRV = 33, DNS_T_OPT = 41, DNS_T_DS = 43, DNS_T_RRSIG = 46,
	DNS_T_NSEC = 47, DNS_T_DNSKEY = 48, DNS_T_TSIG = 250, DNS_T_IXFR = 251, DNS_T_AXFR = 252, DNS_T_ANY = 255,
	DNS_T_CAA = 257,
	DNS_C_IN = 1, DNS_C_CH = 3, DNS_C_ANY = 255,
};

enum { /* response codes (the low 4 bits; BADVERS is extended, 16) */
	DNS_R_NOERROR = 0, DNS_R_FORMERR = 1, DNS_R_SERVFAIL = 2, DNS_R_NXDOMAIN = 3, DNS_R_NOTIMP = 4,
	DNS_R_REFUSED = 5, DNS_R_NOTAUTH = 9, DNS_R_BADVERS = 16, DNS_R_BADCOOKIE = 23,
};

/* Header flag bits (the second 16-bit word). */
#define DNS_F_QR 0x8000u
#define DNS_F_AA 0x0400u
#define DNS_F_TC 0x0200u
#define DNS_F_RD 0x0100u
#define DNS_F_RA 0x0080u
#define DNS_F_AD 0x0020u
#define DNS_F_CD 0x0010u
#define DNS_OPCODE(flags) (((flags) >> 11) & 0xfu)

/* A name in uncompressed wire form: length-prefixed labels ending with the
 * root's zero byte. len counts every byte (1 for the root). */
typedef struct dns_name {
	uint8_t len;
	uint8_t wire[DNS_NAME_MAX];
} dns_name;

/* What a query says. */
typedef struct dns_query {
	uint16_t id;
	uint16_t flags;          /* as sent (RD and CD are echoed) */
	dns_name qname;
	uint16_t qtype, qclass;
	/* EDNS (an OPT record in the additional section) */
	bool edns;
	uint16_t udp_size;       /* as advertised (the caller bounds it) */
	uint8_t edns_version;
	bool dnssec_ok;          /* the DO bit */
	/* Client Subnet (RFC 7871): family 1 (IPv4) or 2 (IPv6), the source
	 * prefix length, and the address with the bits past it zero */
	bool ecs;
	uint16_t ecs_family;
	uint8_t ecs_source;
	uint8_t ecs_addr[16];
	/* cookie (RFC 7873): the client's 8 bytes, and a server cookie (8-32)
	 * when the client sent one back */
	bool cookie;
	uint8_t client_cookie[8];
	uint8_t server_cookie[32];
	uint8_t server_cookie_len;
	/* TSIG (RFC 8945): the last record of the additional section; where
	 * its owner starts in the message (tsig.h verifies it) */
	bool tsig;
	uint16_t tsig_at;
} dns_query;

/* The outcome of reading a query. */
typedef enum dns_parse_result {
	DNS_PARSE_OK,
	DNS_PARSE_DROP,     /* no answer at all: shorter than a header, or a response (QR set) */
	DNS_PARSE_FORMERR,  /* malformed after the header: answer FORMERR with the id */
	DNS_PARSE_NOTIMP,   /* an opcode other than QUERY: answer NOTIMP */
	DNS_PARSE_BADVERS,  /* EDNS version > 0: answer BADVERS with an OPT of version 0 */
} dns_parse_result;

/* Read a query. On anything but DNS_PARSE_DROP, q->id and q->flags are
 * set; on OK everything is. Never reads past p + n. */
dns_parse_result dns_parse_query(const uint8_t *p, size_t n, dns_query *q);

/* Read the (possibly compressed) name at *off of message msg[0..n) into
 * out; *off moves past the name's bytes at that place. 0, or ERR_PARSE
 * (truncated, a pointer that does not point strictly backwards, a label
 * type other than 0 and 3, a label over 63, a name over 255 bytes).
 * Cannot loop: each pointer goes strictly backwards. */
int dns_name_read(const uint8_t *msg, size_t n, size_t *off, dns_name *out);

/* Names in text, "api.tandem.test" or "api.tandem.test." ("." or "" is
 * the root); \DDD and \X escapes as in zone files. 0, or ERR_PARSE (an
 * empty label, a label over 63 bytes, over 255 bytes in all). */
int dns_name_from_text(const char *text, dns_name *out);
/* The name in text with a final dot ("." for the root); dots and bytes
 * outside printable ASCII are escaped. Cut at cap (always terminated). */
void dns_name_to_text(const dns_name *name, char *out, size_t cap);
/* Equal ignoring ASCII case. */
bool dns_name_equal(const dns_name *a, const dns_name *b);
/* Is name at or below zone (ignoring ASCII case)? */
bool dns_name_within(const dns_name *name, const dns_name *zone);
/* Number of labels (0 for the root). */
int dns_name_labels(const dns_name *name);
/* The name with its first `skip` labels removed (its parent for 1). */
void dns_name_suffix(const dns_name *name, int skip, dns_name *out);

/* --- writing --- */

typedef struct dns_writer {
	uint8_t *buf;
	size_t cap;             /* never written past */
	size_t len;
	uint16_t counts[4];     /* question, answer, authority, additional */
	int section;            /* where dns_w_rr counts: 1 answer, 2 authority, 3 additional */
	int ncomp;
	uint16_t comp_off[DNS_COMPRESS_MAX]; /* offsets of name suffixes written so far */
} dns_writer;

/* A position to roll back to (the length, the counts and the compression
 * table's size). */
typedef struct dns_mark {
	size_t len;
	uint16_t counts[4];
	int ncomp;
} dns_mark;

/* Start a response to q in buf[0..cap) (cap >= DNS_HEADER_BYTES): the
 * header (id, QR, the opcode, RD and CD echoed, rcode) and, when
 * with_question, the question as asked. 0, or ERR_LIMIT (cap too small for
 * the question: the header alone is written, qdcount 0). */
int dns_w_begin(dns_writer *w, uint8_t *buf, size_t cap, const dns_query *q, int rcode, bool with_question);
/* Set or clear header flag bits (AA, TC, ...) and the rcode's low 4 bits. */
void dns_w_flags(dns_writer *w, uint16_t set, uint16_t clear);
void dns_w_rcode(dns_writer *w, int rcode);
/* The section the following records count in (1..3). */
void dns_w_section(dns_writer *w, int section);
dns_mark dns_w_mark(const dns_writer *w);
void dns_w_rollback(dns_writer *w, const dns_mark *m);

/* One record: owner, type, class, TTL, then its RDATA written with the
 * dns_w_* functions below between dns_w_rr_begin and dns_w_rr_end (which
 * sets RDLENGTH and counts the record). Each returns 0 or ERR_LIMIT (the
 * buffer is full: roll back to a mark taken before the record). */
int dns_w_rr_begin(dns_writer *w, const dns_name *owner, uint16_t type, uint16_t cls, uint32_t ttl,
		   size_t *rdlen_at);
int dns_w_rr_end(dns_writer *w, size_t rdlen_at);
int dns_w_u8(dns_writer *w, uint8_t v);
int dns_w_u16(dns_writer *w, uint16_t v);
int dns_w_u32(dns_writer *w, uint32_t v);
int dns_w_bytes(dns_writer *w, const void *p, size_t n);
/* A name, compressed against earlier names when compress (RFC 3597: only
 * in the owner and in NS, CNAME, SOA, PTR and MX RDATA; never in SRV's). */
int dns_w_name(dns_writer *w, const dns_name *name, bool compress);
/* The OPT record (additional section): our UDP size, the extended rcode's
 * high bits, version 0, DO echoed; options follow with dns_w_opt_option
 * until dns_w_rr_end(rdlen_at). */
int dns_w_opt_begin(dns_writer *w, uint16_t udp_size, int rcode, bool dnssec_ok, size_t *rdlen_at);
int dns_w_opt_option(dns_writer *w, uint16_t code, const void *data, uint16_t len);
/* The finished message's length (the counts are in the header already). */
size_t dns_w_length(const dns_writer *w);

#endif
