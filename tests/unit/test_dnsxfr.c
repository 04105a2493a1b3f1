/*
 * test_dnsxfr.c - unit tests for src/dns/xfr.c: zone transfers with TSIG
 * (RFC 8945) checked against an HMAC-SHA256 computed here, independently:
 * a signed request gets the zone in messages whose MACs verify, the first
 * over the request's MAC and each next one over the MAC before it; no
 * TSIG, another address, a wrong secret, another key and a stale time are
 * refused with REFUSED or NOTAUTH and the TSIG error; the `secondaries`
 * syntax and its bounds. Time is injected (now), no sockets.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/hmac.h>

#include "core/err.h"
#include "dns/xfr.h"
#include "test.h"

#define NOW 1800000000u

static const uint8_t SECRET[32] = "tandem-tsig-test-secret-32-bytes";
static const uint8_t ALG[] = {11, 'h', 'm', 'a', 'c', '-', 's', 'h', 'a', '2', '5', '6', 0};

static dns_zone *zone;
static dns_secondary list[2];
static int nlist;

typedef struct sink {
	uint8_t msg[16][20000];
	size_t len[16];
	int n;
} sink;

static int collect(void *arg, const uint8_t *msg, size_t len)
{
	sink *s = arg;
	if (s->n == 16 || len > sizeof s->msg[0])
		return ERR_LIMIT;
	memcpy(s->msg[s->n], msg, len);
	s->len[s->n++] = len;
	return 0;
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put48(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 6; i++)
		p[i] = (uint8_t)(v >> (8 * (5 - i)));
}

/* An AXFR request for tandem.test, signed (when key) at time t with
 * secret; its MAC in mac. Returns its length. */
static size_t request(uint8_t *p, const char *key, const uint8_t *secret, uint64_t t, uint8_t mac[32])
{
	const uint8_t head[] = {0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
	memcpy(p, head, sizeof head);
	size_t n = sizeof head;
	dns_name q;
	CHECK_EQ_INT(dns_name_from_text("tandem.test", &q), 0);
	memcpy(p + n, q.wire, q.len);
	n += q.len;
	put16(p + n, DNS_T_AXFR);
	put16(p + n + 2, DNS_C_IN);
	n += 4;
	if (!key)
		return n;
	dns_name k;
	CHECK_EQ_INT(dns_name_from_text(key, &k), 0);
	/* the MAC: the message, then the variables */
	uint8_t data[1024];
	size_t d = 0;
	memcpy(data, p, n);
	d = n;
	memcpy(data + d, k.wire, k.len);
	d += k.len;
	put16(data + d, DNS_C_ANY);
	memset(data + d + 2, 0, 4);
	d += 6;
	memcpy(data + d, ALG, sizeof ALG);
	d += sizeof ALG;
	put48(data + d, t);
	put16(data + d + 6, 300);
	put16(data + d + 8, 0);
	put16(data + d + 10, 0);
	d += 12;
	unsigned ml = 0;
	HMAC(EVP_sha256(), secret, 32, data, d, mac, &ml);
	CHECK_EQ_INT(ml, 32);
	/* the TSIG RR */
	memcpy(p + n, k.wire, k.len);
	n += k.len;
	put16(p + n, DNS_T_TSIG);
	put16(p + n + 2, DNS_C_ANY);
	memset(p + n + 4, 0, 4);
	put16(p + n + 8, sizeof ALG + 10 + 32 + 6);
	n += 10;
	memcpy(p + n, ALG, sizeof ALG);
	n += sizeof ALG;
	put48(p + n, t);
	put16(p + n + 6, 300);
	put16(p + n + 8, 32);
	n += 10;
	memcpy(p + n, mac, 32);
	n += 32;
	put16(p + n, 0x1234);
	put16(p + n + 2, 0);
	put16(p + n + 4, 0);
	n += 6;
	put16(p + 10, 1);
	return n;
}

static int ask(const uint8_t *msg, size_t len, const char *from, sink *s)
{
	dns_query q;
	CHECK_EQ_INT(dns_parse_query(msg, len, &q), DNS_PARSE_OK);
	struct sockaddr_in a = {.sin_family = AF_INET};
	inet_pton(AF_INET, from, &a.sin_addr);
	memset(s, 0, sizeof *s);
	dns_zone *zones[] = {zone};
	return dns_xfr_answer(zones, 1, list, nlist, &q, msg, len, (struct sockaddr *)&a, NOW, collect, s);
}

/* The TSIG at the end of m: where it starts, its MAC and error. */
static size_t tsig_of(const uint8_t *m, size_t len, const uint8_t **mac, unsigned *error)
{
	/* key "xfr1." (6 bytes) + 10 + alg 13 + 10 + mac + 6: scan from the end */
	unsigned other = (unsigned)(m[len - 2] << 8 | m[len - 1]);
	*error = (unsigned)(m[len - 4 - other] << 8 | m[len - 3 - other]);
	size_t mac_end = len - 6 - other;
	for (size_t maclen = 0; maclen <= 32; maclen += 32) {
		size_t at = mac_end - maclen - 10 - sizeof ALG - 10 - 6;
		if ((unsigned)(m[mac_end - maclen - 2] << 8 | m[mac_end - maclen - 1]) == maclen &&
		    memcmp(m + at, "\4xfr1\0", 6) == 0) {
			*mac = m + mac_end - maclen;
			return at;
		}
	}
	return 0;
}

static void test_signed_transfer_verifies(void)
{
	uint8_t req[512], reqmac[32];
	size_t n = request(req, "xfr1", SECRET, NOW - 10, reqmac);
	sink *s = malloc(sizeof *s);
	CHECK_EQ_INT(ask(req, n, "127.0.0.1", s), 0);
	CHECK(s->n >= 2); /* 300 records of ~160 bytes: several messages */
	uint8_t prior[32];
	memcpy(prior, reqmac, 32);
	int records = 0;
	for (int i = 0; i < s->n; i++) {
		const uint8_t *m = s->msg[i], *mac;
		unsigned error;
		size_t at = tsig_of(m, s->len[i], &mac, &error);
		CHECK(at > 0);
		CHECK_EQ_INT(error, 0);
		CHECK_EQ_INT(m[3] & 0xf, DNS_R_NOERROR);
		CHECK(m[2] & 0x04); /* AA */
		records += m[6] << 8 | m[7];
		/* the MAC, as a secondary computes it */
		uint8_t data[20000 + 100];
		size_t d = 0;
		put16(data, 32);
		memcpy(data + 2, prior, 32);
		d = 34;
		memcpy(data + d, m, at);
		put16(data + d + 10, (unsigned)((m[10] << 8 | m[11]) - 1)); /* ARCOUNT without the TSIG */
		d += at;
		if (i == 0) {
			memcpy(data + d, "\4xfr1\0", 6);
			d += 6;
			put16(data + d, DNS_C_ANY);
			memset(data + d + 2, 0, 4);
			d += 6;
			memcpy(data + d, ALG, sizeof ALG);
			d += sizeof ALG;
			put48(data + d, NOW);
			put16(data + d + 6, 300);
			memset(data + d + 8, 0, 4);
			d += 12;
		} else {
			put48(data + d, NOW);
			put16(data + d + 6, 300);
			d += 8;
		}
		uint8_t want[32];
		unsigned ml = 0;
		HMAC(EVP_sha256(), SECRET, 32, data, d, want, &ml);
		CHECK(memcmp(want, mac, 32) == 0);
		memcpy(prior, mac, 32);
	}
	CHECK_EQ_INT(records, 300 + 2 + 1); /* the TXTs, the SOA twice, the NS */
	free(s);
}

static void test_refusals(void)
{
	uint8_t req[512], mac[32];
	sink *s = malloc(sizeof *s);
	const uint8_t *m, *tm;
	unsigned error;
	/* no TSIG */
	size_t n = request(req, NULL, NULL, 0, mac);
	CHECK_EQ_INT(ask(req, n, "127.0.0.1", s), 0);
	CHECK_EQ_INT(s->n, 1);
	CHECK_EQ_INT(s->msg[0][3] & 0xf, DNS_R_REFUSED);
	CHECK_EQ_INT(s->msg[0][6] << 8 | s->msg[0][7], 0);
	/* signed, from another address */
	n = request(req, "xfr1", SECRET, NOW, mac);
	CHECK_EQ_INT(ask(req, n, "127.0.0.2", s), 0);
	CHECK_EQ_INT(s->msg[0][3] & 0xf, DNS_R_REFUSED);
	/* a wrong secret: NOTAUTH, BADSIG, unsigned */
	uint8_t wrong[32];
	memcpy(wrong, SECRET, 32);
	wrong[31] ^= 1;
	n = request(req, "xfr1", wrong, NOW, mac);
	CHECK_EQ_INT(ask(req, n, "127.0.0.1", s), 0);
	m = s->msg[0];
	CHECK_EQ_INT(s->n, 1);
	CHECK_EQ_INT(m[3] & 0xf, DNS_R_NOTAUTH);
	CHECK(tsig_of(m, s->len[0], &tm, &error) > 0);
	CHECK_EQ_INT(error, 16);
	/* another key than the address': BADKEY */
	n = request(req, "other", SECRET, NOW, mac);
	CHECK_EQ_INT(ask(req, n, "127.0.0.1", s), 0);
	CHECK_EQ_INT(s->msg[0][3] & 0xf, DNS_R_NOTAUTH);
	CHECK_EQ_INT(s->msg[0][s->len[0] - 4] << 8 | s->msg[0][s->len[0] - 3], 17);
	/* 301 s off: BADTIME, signed, our time in other data */
	n = request(req, "xfr1", SECRET, NOW - 301, mac);
	CHECK_EQ_INT(ask(req, n, "127.0.0.1", s), 0);
	m = s->msg[0];
	CHECK_EQ_INT(m[3] & 0xf, DNS_R_NOTAUTH);
	{
		/* no records: the TSIG follows the question (12 + 13 + 4) */
		size_t at = 29 + 6 + 10 + sizeof ALG;
		CHECK(memcmp(m + 29, "\4xfr1\0", 6) == 0);
		CHECK_EQ_INT(m[at + 8] << 8 | m[at + 9], 32); /* signed */
		at += 10 + 32 + 2;
		CHECK_EQ_INT(m[at] << 8 | m[at + 1], 18);    /* BADTIME */
		CHECK_EQ_INT(m[at + 2] << 8 | m[at + 3], 6); /* our time */
		CHECK_EQ_INT((uint64_t)m[at + 6] << 24 | (uint64_t)m[at + 7] << 16 | m[at + 8] << 8 | m[at + 9], NOW);
		CHECK_EQ_INT(at + 10, s->len[0]);
	}
	/* the TSIG must be the last record: FORMERR from the parser */
	n = request(req, "xfr1", SECRET, NOW, mac);
	req[n] = 0; /* a root-owned A record after it */
	put16(req + n + 1, DNS_T_A);
	put16(req + n + 3, DNS_C_IN);
	memset(req + n + 5, 0, 6);
	put16(req + 10, 2);
	dns_query q;
	CHECK_EQ_INT(dns_parse_query(req, n + 11, &q), DNS_PARSE_FORMERR);
	free(s);
}

static void test_secondaries_syntax(void)
{
	dns_secondary l[DNS_XFR_MAX_SECONDARIES];
	int n = 0;
	char err[200];
	CHECK_EQ_INT(dns_xfr_parse_secondaries("10.0.0.0/8 key=a, ::1 key=b.example.", l, &n, err, sizeof err), 0);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(l[0].prefix, 8);
	CHECK_EQ_INT(l[1].family, 6);
	CHECK_EQ_INT(l[1].prefix, 128);
	CHECK_EQ_INT(dns_xfr_parse_secondaries("10.0.0.1", l, &n, err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(dns_xfr_parse_secondaries("10.0.0.1 key=a extra", l, &n, err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(dns_xfr_parse_secondaries("10.0.0.1/33 key=a", l, &n, err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(dns_xfr_parse_secondaries("example.com key=a", l, &n, err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_INT(dns_xfr_parse_secondaries("1.1.1.1 key=a,1.1.1.2 key=a,1.1.1.3 key=a,1.1.1.4 key=a,"
					       "1.1.1.5 key=a,1.1.1.6 key=a,1.1.1.7 key=a",
					       l, &n, err, sizeof err),
		     ERR_LIMIT);
}

int main(void)
{
	dns_name origin;
	dns_name_from_text("tandem.test", &origin);
	zone = dns_zone_new(&origin);
	char err[200];
	CHECK_EQ_INT(dns_zone_add(zone, "@", "SOA", 60, "ns1 hostmaster 7 3600 600 86400 30", err, sizeof err), 0);
	CHECK_EQ_INT(dns_zone_add(zone, "@", "NS", 60, "ns1", err, sizeof err), 0);
	for (int i = 0; i < 300; i++) {
		char owner[16], txt[200];
		snprintf(owner, sizeof owner, "t%d", i);
		snprintf(txt, sizeof txt, "\"%0150d\"", i);
		CHECK_EQ_INT(dns_zone_add(zone, owner, "TXT", 60, txt, err, sizeof err), 0);
	}
	CHECK_EQ_INT(dns_xfr_parse_secondaries("127.0.0.1 key=xfr1, 127.0.0.1 key=other", list, &nlist, err, sizeof err),
		     0);
	for (int i = 0; i < nlist; i++) {
		list[i].key.name = list[i].key_name;
		memcpy(list[i].key.secret, SECRET, 32);
		list[i].key.len = 32;
	}
	/* "other" is a key of 127.0.0.1 too: make it 127.0.0.3's so that it is not this address' */
	inet_pton(AF_INET, "127.0.0.3", list[1].addr);
	RUN(test_signed_transfer_verifies);
	RUN(test_refusals);
	RUN(test_secondaries_syntax);
	dns_zone_free(&zone);
	return TEST_SUMMARY();
}
