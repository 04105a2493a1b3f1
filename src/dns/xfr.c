/*
 * xfr.c - zone transfers with TSIG (xfr.h has the rules). The TSIG of the
 * request is checked before anything of the zone is written; every message
 * of the answer is then signed, the first over the request's MAC, each
 * next one over the MAC before it (RFC 8945 4.3 and 5.3.1), so a secondary
 * can tell a message cut out or replayed from another transfer.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "core/err.h"
#include "core/log.h"
#include "dns/xfr.h"

#define XFR_MESSAGE 16384      /* records per message: what fits this much */
#define TSIG_ROOM 600          /* a TSIG RR: two names, the MAC, fixed fields */
#define MAC_BYTES 32

enum { TSIG_BADSIG = 16, TSIG_BADKEY = 17, TSIG_BADTIME = 18 };

/* "hmac-sha256." in wire form */
static const uint8_t HMAC_SHA256[] = {11, 'h', 'm', 'a', 'c', '-', 's', 'h', 'a', '2', '5', '6', 0};

/* --- config --- */

int dns_xfr_parse_secondaries(const char *value, dns_secondary *list, int *n, char *err, size_t errcap)
{
	char copy[1024];
	if (snprintf(copy, sizeof copy, "%s", value) >= (int)sizeof copy) {
		snprintf(err, errcap, "the value is too long");
		return ERR_PARSE;
	}
	int count = *n;
	char *save = NULL;
	for (char *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
		char addr[64], key[256], extra[4];
		if (sscanf(e, " %63s key=%255s %3s", addr, key, extra) != 2) {
			snprintf(err, errcap, "each secondary is ADDR[/LEN] key=NAME, not '%.80s'", e);
			return ERR_PARSE;
		}
		if (count == DNS_XFR_MAX_SECONDARIES) {
			snprintf(err, errcap, "at most %d secondaries", DNS_XFR_MAX_SECONDARIES);
			return ERR_LIMIT;
		}
		dns_secondary s;
		memset(&s, 0, sizeof s);
		char *slash = strchr(addr, '/');
		if (slash)
			*slash++ = '\0';
		if (inet_pton(AF_INET, addr, s.addr) == 1)
			s.family = 4;
		else if (inet_pton(AF_INET6, addr, s.addr) == 1)
			s.family = 6;
		else {
			snprintf(err, errcap, "'%.60s' is not an IPv4 or IPv6 address", addr);
			return ERR_PARSE;
		}
		int max = s.family == 4 ? 32 : 128;
		s.prefix = max;
		if (slash) {
			char *end;
			long p = strtol(slash, &end, 10);
			if (!isdigit((unsigned char)*slash) || *end || p < 0 || p > max) {
				snprintf(err, errcap, "'/%.10s' is not a prefix length of 0 to %d", slash, max);
				return ERR_PARSE;
			}
			s.prefix = (int)p;
		}
		if (dns_name_from_text(key, &s.key_name) != 0 || s.key_name.len <= 1) {
			snprintf(err, errcap, "key=%.60s is not a key name (a domain name)", key);
			return ERR_PARSE;
		}
		snprintf(s.key_text, sizeof s.key_text, "%s", key);
		list[count++] = s;
	}
	if (count == *n) {
		snprintf(err, errcap, "no secondary given");
		return ERR_PARSE;
	}
	*n = count;
	return 0;
}

typedef struct key_reader {
	dns_secondary *list;
	int n;
	const char *path;
	int line;
	FILE *file;
	char *err;
	size_t errcap;
	int rc;
} key_reader;

static char *key_read_line(char *str, int num, void *stream)
{
	key_reader *r = stream;
	char *s = fgets(str, num, r->file);
	if (s)
		r->line++;
	return s;
}

static int key_handler(void *user, const char *section, const char *name, const char *value)
{
	key_reader *r = user;
	if (strcmp(section, "tsig") != 0 || !name || r->rc)
		return 1;
	dns_name kn;
	if (strncmp(name, "key.", 4) != 0 || dns_name_from_text(name + 4, &kn) != 0) {
		snprintf(r->err, r->errcap, "%s:%d: %.80s is not key.NAME", r->path, r->line, name);
		r->rc = ERR_CONFIG;
		return 1;
	}
	uint8_t raw[3 * 128 / 4 + 4];
	size_t vlen = strlen(value);
	int len = vlen > 0 && vlen <= 128 && vlen % 4 == 0 ? EVP_DecodeBlock(raw, (const unsigned char *)value, (int)vlen)
							   : -1;
	if (len > 0) /* (EVP_DecodeBlock counts the padding's bytes too) */
		len -= (value[vlen - 1] == '=') + (value[vlen - 2] == '=');
	if (len < 16 || len > DNS_TSIG_SECRET_MAX) {
		snprintf(r->err, r->errcap, "%s:%d: %.80s is not base64 of a 16- to 64-byte secret", r->path, r->line,
			 name);
		r->rc = ERR_CONFIG;
		OPENSSL_cleanse(raw, sizeof raw);
		return 1;
	}
	for (int i = 0; i < r->n; i++)
		if (dns_name_equal(&r->list[i].key_name, &kn)) {
			r->list[i].key.name = kn;
			memcpy(r->list[i].key.secret, raw, (size_t)len);
			r->list[i].key.len = (size_t)len;
		}
	OPENSSL_cleanse(raw, sizeof raw);
	return 1;
}

int dns_xfr_load_keys(const char *secrets_path, dns_secondary *list, int n, char *err, size_t errcap)
{
	if (n == 0)
		return 0;
	key_reader r = {.list = list, .n = n, .path = secrets_path, .err = err, .errcap = errcap};
	r.file = fopen(secrets_path, "r");
	if (!r.file) {
		snprintf(err, errcap, "%s: cannot open: %s", secrets_path, strerror(errno));
		return ERR_IO;
	}
	int rc = ini_parse_stream(key_read_line, &r, key_handler, &r);
	fclose(r.file);
	if (r.rc)
		return r.rc;
	if (rc != 0) {
		snprintf(err, errcap, "%s:%d: syntax error", secrets_path, rc);
		return ERR_CONFIG;
	}
	for (int i = 0; i < n; i++)
		if (list[i].key.len == 0) {
			snprintf(err, errcap,
				 "%s: no [tsig] key.%s = BASE64 for the secondaries (make one: openssl rand -base64 32)",
				 secrets_path, list[i].key_text);
			return ERR_CONFIG;
		}
	return 0;
}

/* --- TSIG --- */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put48(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 6; i++)
		p[i] = (uint8_t)(v >> (8 * (5 - i)));
}

/* A name in canonical form (lowercase, RFC 8945 4.3.3). */
static void canon(const dns_name *n, dns_name *out)
{
	*out = *n;
	for (size_t i = 0; i < out->len;) {
		uint8_t l = out->wire[i++];
		for (uint8_t k = 0; k < l && i < out->len; k++, i++)
			out->wire[i] = (uint8_t)tolower(out->wire[i]);
	}
}

/* The request's TSIG, as read. */
typedef struct tsig_rr {
	dns_name key, alg;
	uint64_t time;
	uint16_t fudge, mac_len, orig_id, error, other_len;
	const uint8_t *mac, *other;
} tsig_rr;

static int tsig_read(const uint8_t *msg, size_t len, size_t at, tsig_rr *t)
{
	size_t off = at;
	if (dns_name_read(msg, len, &off, &t->key) != 0 || off + 10 > len)
		return ERR_PARSE;
	uint16_t cls = get16(msg + off + 2), rdlen = get16(msg + off + 8);
	off += 10;
	size_t end = off + rdlen;
	if (cls != DNS_C_ANY || end != len || dns_name_read(msg, end, &off, &t->alg) != 0 || off + 10 > end)
		return ERR_PARSE;
	t->time = 0;
	for (int i = 0; i < 6; i++)
		t->time = t->time << 8 | msg[off + i];
	t->fudge = get16(msg + off + 6);
	t->mac_len = get16(msg + off + 8);
	off += 10;
	if (off + t->mac_len + 6 > end)
		return ERR_PARSE;
	t->mac = msg + off;
	off += t->mac_len;
	t->orig_id = get16(msg + off);
	t->error = get16(msg + off + 2);
	t->other_len = get16(msg + off + 4);
	off += 6;
	if (off + t->other_len != end)
		return ERR_PARSE;
	t->other = msg + off;
	return 0;
}

typedef struct mac {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx;
	const dns_tsig_key *key;
} mac;

static int mac_begin(mac *m)
{
	OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
			       OSSL_PARAM_construct_end()};
	if (!m->ctx)
		return ERR_TLS;
	return EVP_MAC_init(m->ctx, m->key->secret, m->key->len, params) == 1 ? 0 : ERR_TLS;
}

static void mac_add(mac *m, const void *p, size_t n)
{
	(void)EVP_MAC_update(m->ctx, p, n); /* (an update of HMAC cannot fail; final says if anything did) */
}

static int mac_end(mac *m, uint8_t out[MAC_BYTES])
{
	size_t n = 0;
	return EVP_MAC_final(m->ctx, out, &n, MAC_BYTES) == 1 && n == MAC_BYTES ? 0 : ERR_TLS;
}

/* The TSIG variables (RFC 8945 4.3.3): key name, class, TTL, algorithm,
 * time, fudge, error, other data. */
static void mac_variables(mac *m, uint64_t time, uint16_t fudge, uint16_t error, const uint8_t *other,
			  uint16_t other_len)
{
	dns_name k;
	canon(&m->key->name, &k);
	uint8_t b[16];
	mac_add(m, k.wire, k.len);
	put16(b, DNS_C_ANY);
	memset(b + 2, 0, 4); /* TTL */
	mac_add(m, b, 6);
	mac_add(m, HMAC_SHA256, sizeof HMAC_SHA256);
	put48(b, time);
	put16(b + 6, fudge);
	put16(b + 8, error);
	put16(b + 10, other_len);
	mac_add(m, b, 12);
	if (other_len)
		mac_add(m, other, other_len);
}

/* Append a TSIG RR to msg[0..*len) (room: TSIG_ROOM past it) and count
 * it in ARCOUNT. */
static void tsig_append(uint8_t *msg, size_t *len, const dns_name *key, uint64_t time, const uint8_t *macv,
			uint16_t mac_len, uint16_t orig_id, uint16_t error, const uint8_t *other, uint16_t other_len)
{
	uint8_t *p = msg + *len;
	memcpy(p, key->wire, key->len);
	p += key->len;
	put16(p, DNS_T_TSIG);
	put16(p + 2, DNS_C_ANY);
	memset(p + 4, 0, 4);
	uint8_t *rdlen = p + 8;
	p += 10;
	uint8_t *rd = p;
	memcpy(p, HMAC_SHA256, sizeof HMAC_SHA256);
	p += sizeof HMAC_SHA256;
	put48(p, time);
	put16(p + 6, DNS_TSIG_FUDGE);
	put16(p + 8, mac_len);
	p += 10;
	if (mac_len) /* (an unsigned error answer has none: macv NULL) */
		memcpy(p, macv, mac_len);
	p += mac_len;
	put16(p, orig_id);
	put16(p + 2, error);
	put16(p + 4, other_len);
	p += 6;
	if (other_len)
		memcpy(p, other, other_len);
	p += other_len;
	put16(rdlen, (uint16_t)(p - rd));
	*len = (size_t)(p - msg);
	put16(msg + 10, (uint16_t)(get16(msg + 10) + 1));
}

/* --- the transfer --- */

typedef struct xfr {
	mac m;
	const dns_query *q;
	uint64_t now;
	uint8_t prior[MAC_BYTES];   /* the request's MAC, then each message's */
	uint16_t prior_len;
	bool first;
	uint16_t error;             /* TSIG error of this answer (0, or BADTIME) */
	int messages;
	size_t bytes;
	int (*out)(void *arg, const uint8_t *msg, size_t len);
	void *arg;
} xfr;

/* Sign msg[0..len) (room past it for the TSIG) and hand it out. */
static int sign_and_send(void *arg, uint8_t *msg, size_t len)
{
	xfr *x = arg;
	uint8_t b[8], macv[MAC_BYTES];
	int rc = mac_begin(&x->m);
	if (rc != 0)
		return rc;
	put16(b, x->prior_len);
	mac_add(&x->m, b, 2);
	mac_add(&x->m, x->prior, x->prior_len);
	mac_add(&x->m, msg, len);
	uint8_t other[6];
	uint16_t other_len = 0;
	if (x->error == TSIG_BADTIME) {
		put48(other, x->now);
		other_len = 6;
	}
	if (x->first) {
		mac_variables(&x->m, x->now, DNS_TSIG_FUDGE, x->error, other, other_len);
	} else {
		put48(b, x->now);
		put16(b + 6, DNS_TSIG_FUDGE);
		mac_add(&x->m, b, 8);
	}
	if ((rc = mac_end(&x->m, macv)) != 0)
		return rc;
	x->first = false;
	memcpy(x->prior, macv, MAC_BYTES);
	x->prior_len = MAC_BYTES;
	tsig_append(msg, &len, &x->m.key->name, x->now, macv, MAC_BYTES, x->q->id, x->error, other, other_len);
	x->messages++;
	x->bytes += len;
	return x->out(x->arg, msg, len);
}

/* The serial of an IXFR's SOA (the secondary's version, in the authority
 * section) in msg[0..end). false when there is none. */
static bool ixfr_serial(const uint8_t *msg, size_t end, uint32_t *serial)
{
	size_t off = DNS_HEADER_BYTES;
	dns_name n;
	if (get16(msg + 8) < 1 || dns_name_read(msg, end, &off, &n) != 0 || off + 4 > end)
		return false;
	off += 4; /* the question */
	if (dns_name_read(msg, end, &off, &n) != 0 || off + 10 > end || get16(msg + off) != DNS_T_SOA)
		return false;
	off += 10;
	if (dns_name_read(msg, end, &off, &n) != 0 || dns_name_read(msg, end, &off, &n) != 0 || off + 4 > end)
		return false;
	*serial = (uint32_t)msg[off] << 24 | (uint32_t)msg[off + 1] << 16 | (uint32_t)msg[off + 2] << 8 | msg[off + 3];
	return true;
}

static void peer_text(const struct sockaddr *peer, char *out, size_t cap)
{
	snprintf(out, cap, "?");
	if (peer && peer->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, out, (socklen_t)cap);
	else if (peer && peer->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, out, (socklen_t)cap);
}

static bool prefix_match(const dns_secondary *s, const struct sockaddr *peer)
{
	uint8_t a[16];
	int family;
	if (!peer)
		return false;
	if (peer->sa_family == AF_INET) {
		family = 4;
		memcpy(a, &((const struct sockaddr_in *)peer)->sin_addr, 4);
	} else if (peer->sa_family == AF_INET6) {
		const uint8_t *b = ((const struct sockaddr_in6 *)peer)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(b, mapped, 12) == 0) {
			family = 4;
			memcpy(a, b + 12, 4);
		} else {
			family = 6;
			memcpy(a, b, 16);
		}
	} else {
		return false;
	}
	if (family != s->family)
		return false;
	int full = s->prefix / 8, rest = s->prefix % 8;
	if (memcmp(a, s->addr, (size_t)full) != 0)
		return false;
	return rest == 0 || ((a[full] ^ s->addr[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* An error answer: the question, rcode, and a TSIG with tsig_error
 * (unsigned: MAC size 0) when tsig_key is given. */
static int send_error(const dns_query *q, int rcode, const dns_name *tsig_key, uint16_t tsig_error, uint64_t now,
		      int (*out)(void *arg, const uint8_t *msg, size_t len), void *arg)
{
	uint8_t buf[DNS_HEADER_BYTES + DNS_NAME_MAX + 4 + TSIG_ROOM];
	dns_writer w;
	if (dns_w_begin(&w, buf, sizeof buf - TSIG_ROOM, q, rcode, true) != 0)
		return ERR_LIMIT; /* cannot happen: the question fits */
	size_t len = dns_w_length(&w);
	if (tsig_key)
		tsig_append(buf, &len, tsig_key, now, NULL, 0, q->id, tsig_error, NULL, 0);
	return out(arg, buf, len);
}

int dns_xfr_answer(dns_zone *const *zones, int nzones, const dns_secondary *list, int n, const dns_query *q,
		   const uint8_t *msg, size_t len, const struct sockaddr *peer, uint64_t now,
		   int (*out)(void *arg, const uint8_t *msg, size_t len), void *arg)
{
	char who[INET6_ADDRSTRLEN + 1], zname[4 * DNS_NAME_MAX + 2], fields[128];
	peer_text(peer, who, sizeof who);
	dns_name_to_text(&q->qname, zname, sizeof zname);
	snprintf(fields, sizeof fields, "\"peer\":\"%s\"", who); /* (inet_ntop's text: no escaping) */
	const char *type = q->qtype == DNS_T_IXFR ? "IXFR" : "AXFR";
	dns_zone *z = NULL;
	for (int i = 0; i < nzones && q->qclass == DNS_C_IN; i++)
		if (dns_zone_ready(zones[i]) && dns_name_equal(dns_zone_origin(zones[i]), &q->qname))
			z = zones[i];
	const dns_secondary *allowed = NULL; /* an entry for this address (and, below, this key) */
	for (int i = 0; i < n && !allowed; i++)
		if (prefix_match(&list[i], peer))
			allowed = &list[i];
	if (!z || !allowed || !q->tsig) {
		/* a stranger's request is logged at debug level only: anyone can
		 * connect, and a line per refusal would let them fill the log */
		log_msg(allowed ? LOG_WARN : LOG_DEBUG, "%s of %.200s from %s refused: %s", type, zname, who,
			!z ? "not a zone's apex" : !allowed ? "not a configured secondary" : "the request has no TSIG");
		return send_error(q, DNS_R_REFUSED, NULL, 0, now, out, arg);
	}
	tsig_rr t;
	if (tsig_read(msg, len, q->tsig_at, &t) != 0) {
		log_warn("%s of %.200s from %s: a malformed TSIG", type, zname, who);
		return send_error(q, DNS_R_FORMERR, NULL, 0, now, out, arg);
	}
	const dns_secondary *s = NULL;
	for (int i = 0; i < n && !s; i++)
		if (prefix_match(&list[i], peer) && dns_name_equal(&list[i].key_name, &t.key))
			s = &list[i];
	dns_name alg_canon;
	canon(&t.alg, &alg_canon);
	if (!s || alg_canon.len != sizeof HMAC_SHA256 || memcmp(alg_canon.wire, HMAC_SHA256, sizeof HMAC_SHA256) != 0) {
		log_warn("%s of %.200s from %s refused: %s (TSIG BADKEY)", type, zname, who,
			 !s ? "not the key of this secondary" : "an algorithm other than hmac-sha256");
		return send_error(q, DNS_R_NOTAUTH, &t.key, TSIG_BADKEY, now, out, arg);
	}
	xfr x = {.q = q, .now = now, .first = true, .out = out, .arg = arg};
	x.m.key = &s->key;
	x.m.mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	x.m.ctx = x.m.mac ? EVP_MAC_CTX_new(x.m.mac) : NULL;
	uint8_t *buf = NULL;
	int rc = mac_begin(&x.m);
	if (rc != 0)
		goto fail;
	/* the request as signed: its TSIG taken out, ARCOUNT one less, the
	 * original id (RFC 8945 4.3.2) */
	uint8_t head[DNS_HEADER_BYTES];
	memcpy(head, msg, DNS_HEADER_BYTES);
	put16(head, t.orig_id);
	put16(head + 10, (uint16_t)(get16(msg + 10) - 1));
	mac_add(&x.m, head, sizeof head);
	mac_add(&x.m, msg + DNS_HEADER_BYTES, q->tsig_at - DNS_HEADER_BYTES);
	mac_variables(&x.m, t.time, t.fudge, t.error, t.other, t.other_len);
	uint8_t want[MAC_BYTES];
	if ((rc = mac_end(&x.m, want)) != 0)
		goto fail;
	if (t.mac_len != MAC_BYTES || CRYPTO_memcmp(want, t.mac, MAC_BYTES) != 0) {
		log_warn("%s of %.200s from %s refused: the TSIG does not verify (BADSIG)", type, zname, who);
		rc = send_error(q, DNS_R_NOTAUTH, &t.key, TSIG_BADSIG, now, out, arg);
		goto done;
	}
	memcpy(x.prior, t.mac, MAC_BYTES);
	x.prior_len = MAC_BYTES;
	uint64_t skew = now > t.time ? now - t.time : t.time - now;
	if (skew > t.fudge) {
		log_warn("%s of %.200s from %s refused: its TSIG time is %llu s off ours (BADTIME)", type, zname, who,
			 (unsigned long long)skew);
		uint8_t ebuf[DNS_HEADER_BYTES + DNS_NAME_MAX + 4 + TSIG_ROOM];
		dns_writer w;
		x.error = TSIG_BADTIME;
		if (dns_w_begin(&w, ebuf, sizeof ebuf - TSIG_ROOM, q, DNS_R_NOTAUTH, true) != 0) {
			rc = ERR_LIMIT;
			goto fail;
		}
		rc = sign_and_send(&x, ebuf, dns_w_length(&w));
		goto done;
	}
	buf = malloc(XFR_MESSAGE + TSIG_ROOM);
	if (!buf) {
		rc = ERR_NOMEM;
		goto fail;
	}
	uint32_t theirs;
	bool current = q->qtype == DNS_T_IXFR && ixfr_serial(msg, q->tsig_at, &theirs) &&
		       (int32_t)(theirs - dns_zone_serial(z)) >= 0; /* (serial arithmetic, RFC 1982) */
	rc = dns_zone_axfr(z, q, current, buf, XFR_MESSAGE, sign_and_send, &x);
	if (rc == 0) {
		char f2[200];
		snprintf(f2, sizeof f2, "%s,\"messages\":%d,\"bytes\":%zu", fields, x.messages, x.bytes);
		log_event(LOG_INFO, "dns_xfr", f2, "%s of %.200s (serial %u) to %s: %d messages, %zu bytes", type, zname,
			  dns_zone_serial(z), who, x.messages, x.bytes);
	}
	goto done;
fail:
	log_warn("%s of %.200s to %s failed: %s", type, zname, who, err_str(rc));
done:
	free(buf);
	EVP_MAC_CTX_free(x.m.ctx);
	EVP_MAC_free(x.m.mac);
	return rc;
}
