/*
 * test_dnssec.c - unit tests for src/dns/dnssec.c and the signed answers
 * of src/dns/zone.c: the RFC 6605 key vector (DNSKEY, key tag, DS), the
 * canonical form of RDATA (RFC 4034 6.2), the compact NSEC's type bitmap
 * (RFC 9824), RRSIGs verified with OpenSSL's EVP_DigestVerify over data
 * this test rebuilds on its own (sorted, lowercased), the signature cache
 * under an injected clock (hit, refresh after half the validity), the
 * all-or-nothing write when the buffer is full, compact denial answers
 * (NXDOMAIN becomes NOERROR + NSEC with NXNAME; NODATA's bitmap), and the
 * [dnssec] section of the secrets file (add, load, refusals).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "core/err.h"
#include "core/util.h"
#include "dns/dnssec.h"
#include "dns/zone.h"
#include "test.h"

/* RFC 6605 section 6.1: the P-256 example key of example.net. */
static const uint8_t rfc6605_priv[32] = {
	0x19, 0x4e, 0x92, 0x9d, 0x0f, 0xce, 0xbb, 0xec, 0x42, 0xe5, 0x1b, 0xa6, 0xb8, 0x85, 0x08, 0xb8,
	0x96, 0x6d, 0x79, 0x74, 0xf6, 0xcf, 0x43, 0xbf, 0xa2, 0x4d, 0x6c, 0xdf, 0xc1, 0x2d, 0xea, 0x64,
};

static dns_name name_of(const char *text)
{
	dns_name n;
	CHECK_EQ_INT(dns_name_from_text(text, &n), 0);
	return n;
}

static dnssec_keys *rfc_keys(const char *zone)
{
	dns_name origin = name_of(zone);
	bool active = true;
	dnssec_keys *k = NULL;
	CHECK_EQ_INT(dnssec_keys_from_raw(&origin, &rfc6605_priv, &active, 1, &k), 0);
	return k;
}

static void test_rfc6605_key_vector(void)
{
	dnssec_keys *k = rfc_keys("example.net");
	if (!k)
		return;
	/* DNSKEY 257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edb
	 * krSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA== */
	static const uint8_t pub_start[] = {0x1a, 0x88, 0xc8, 0x86, 0x15, 0xd4, 0x37, 0xfb};
	const uint8_t *rd = dnssec_key_dnskey(k, 0);
	CHECK(rd[0] == 1 && rd[1] == 1 && rd[2] == 3 && rd[3] == 13);
	CHECK(memcmp(rd + 4, pub_start, sizeof pub_start) == 0);
	CHECK_EQ_INT(dnssec_key_tag(k, 0), 55648);
	uint8_t d[32];
	CHECK_EQ_INT(dnssec_key_ds(k, 0, d), 0);
	static const uint8_t ds[32] = {0xb4, 0xc8, 0xc1, 0xfe, 0x2e, 0x74, 0x77, 0x12, 0x7b, 0x27, 0x11,
				       0x56, 0x56, 0xad, 0x62, 0x56, 0xf4, 0x24, 0x62, 0x5b, 0xf5, 0xc1,
				       0xe2, 0x77, 0x0c, 0xe6, 0xd6, 0xe3, 0x7d, 0xf6, 0x1d, 0x17};
	CHECK(memcmp(d, ds, 32) == 0);
	/* not a scalar of the curve: refused */
	uint8_t zero[32] = {0};
	bool active = true;
	dnssec_keys *bad = NULL;
	dns_name origin = name_of("example.net");
	CHECK(dnssec_keys_from_raw(&origin, (const uint8_t(*)[32])zero, &active, 1, &bad) != 0 && !bad);
	active = false; /* no active key */
	CHECK_EQ_INT(dnssec_keys_from_raw(&origin, &rfc6605_priv, &active, 1, &bad), ERR_INVAL);
	dnssec_keys_free(&k);
	dnssec_keys_free(&k); /* a no-op on NULL */
}

static void test_canonical_rdata(void)
{
	uint8_t out[300];
	/* MX 10 Mail.EXAMPLE.com. -> lowercased name */
	const uint8_t mx[] = {0, 10, 4, 'M', 'a', 'i', 'l', 7, 'E', 'X', 'A', 'M', 'P', 'L', 'E', 3, 'c', 'o', 'm', 0};
	const uint8_t mxl[] = {0, 10, 4, 'm', 'a', 'i', 'l', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0};
	CHECK_EQ_INT(dnssec_canonical_rdata(DNS_T_MX, mx, sizeof mx, out, sizeof out), sizeof mxl);
	CHECK(memcmp(out, mxl, sizeof mxl) == 0);
	/* SRV: the three numbers kept, the target lowercased */
	const uint8_t srv[] = {0, 1, 0, 2, 1, 0xbb, 3, 'A', 'P', 'I', 0};
	CHECK_EQ_INT(dnssec_canonical_rdata(DNS_T_SRV, srv, sizeof srv, out, sizeof out), sizeof srv);
	CHECK(memcmp(out, srv, 6) == 0 && memcmp(out + 6, "\3api", 4) == 0);
	/* TXT: bytes as they are (case matters in data) */
	const uint8_t txt[] = {3, 'A', 'b', 'C'};
	CHECK_EQ_INT(dnssec_canonical_rdata(DNS_T_TXT, txt, sizeof txt, out, sizeof out), 4);
	CHECK(memcmp(out, txt, 4) == 0);
	/* a name that does not parse, and no room */
	const uint8_t badns[] = {5, 'a', 'b'};
	CHECK_EQ_INT(dnssec_canonical_rdata(DNS_T_NS, badns, sizeof badns, out, sizeof out), -1);
	CHECK_EQ_INT(dnssec_canonical_rdata(DNS_T_MX, mx, sizeof mx, out, 5), -1);
}

static void test_nsec_bitmap(void)
{
	dns_name owner = name_of("NoPe.Example.net");
	uint8_t out[400];
	/* compact NXDOMAIN: RRSIG NSEC NXNAME(128) */
	uint16_t nx[] = {DNSSEC_T_NXNAME, DNS_T_RRSIG, DNS_T_NSEC};
	int n = dnssec_nsec_rdata(&owner, nx, 3, out, sizeof out);
	/* next: \000.nope.example.net (lowercased) */
	const uint8_t next[] = {1, 0, 4, 'n', 'o', 'p', 'e', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'n', 'e', 't', 0};
	CHECK(n > (int)sizeof next && memcmp(out, next, sizeof next) == 0);
	/* window 0, 17 bytes: 46 and 47 in byte 5 (0x03), 128 in byte 16 (0x80) */
	const uint8_t *b = out + sizeof next;
	CHECK_EQ_INT(n, (int)sizeof next + 2 + 17);
	CHECK(b[0] == 0 && b[1] == 17 && b[2 + 5] == 0x03 && b[2 + 16] == 0x80);
	/* A, CAA (257: window 1), duplicates collapse */
	uint16_t t[] = {DNS_T_CAA, DNS_T_A, DNS_T_A, DNS_T_RRSIG, DNS_T_NSEC};
	n = dnssec_nsec_rdata(&owner, t, 5, out, sizeof out);
	CHECK_EQ_INT(n, (int)sizeof next + 2 + 6 + 2 + 1);
	CHECK(b[0] == 0 && b[1] == 6 && b[2] == 0x40 && b[2 + 5] == 0x03);
	CHECK(b[8] == 1 && b[9] == 1 && b[10] == 0x40);
	CHECK_EQ_INT(dnssec_nsec_rdata(&owner, t, 5, out, 10), -1);
}

/* --- verifying an RRSIG as a validator does, with OpenSSL --- */

static EVP_PKEY *pub_of(const uint8_t *dnskey)
{
	uint8_t point[65];
	point[0] = 4;
	memcpy(point + 1, dnskey + 4, 64);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
	OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof point);
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *pkey = NULL;
	CHECK(ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
	      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

static bool verify(EVP_PKEY *pub, const uint8_t *data, size_t n, const uint8_t sig[64])
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	ECDSA_SIG_set0(s, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
	uint8_t der[80], *p = der;
	int dl = i2d_ECDSA_SIG(s, &p);
	ECDSA_SIG_free(s);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) == 1 &&
		  EVP_DigestVerify(ctx, der, (size_t)dl, data, n) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* A record of a message. */
typedef struct wrec {
	dns_name owner;
	uint16_t type;
	uint32_t ttl;
	size_t rd;      /* offset of its RDATA in the message */
	uint16_t rdlen;
	int section;
} wrec;

static int read_records(const uint8_t *msg, size_t len, wrec *r, int cap)
{
	size_t off = DNS_HEADER_BYTES;
	dns_name q;
	if (dns_name_read(msg, len, &off, &q) != 0)
		return -1;
	off += 4;
	int counts[3] = {msg[6] << 8 | msg[7], msg[8] << 8 | msg[9], msg[10] << 8 | msg[11]};
	int n = 0;
	for (int s = 0; s < 3; s++)
		for (int i = 0; i < counts[s] && n < cap; i++) {
			if (dns_name_read(msg, len, &off, &r[n].owner) != 0 || off + 10 > len)
				return -1;
			r[n].type = (uint16_t)(msg[off] << 8 | msg[off + 1]);
			r[n].ttl = (uint32_t)msg[off + 4] << 24 | (uint32_t)msg[off + 5] << 16 |
				   (uint32_t)msg[off + 6] << 8 | msg[off + 7];
			r[n].rdlen = (uint16_t)(msg[off + 8] << 8 | msg[off + 9]);
			r[n].rd = off + 10;
			r[n].section = s + 1;
			off += 10 + r[n].rdlen;
			n++;
		}
	return n;
}

static void lower_name(dns_name *n)
{
	for (size_t i = 0; i < n->len; i++)
		if (n->wire[i] >= 'A' && n->wire[i] <= 'Z')
			n->wire[i] = (uint8_t)(n->wire[i] + 32);
}

static int rd_cmp(const void *a, const void *b)
{
	const uint8_t *const *x = a, *const *y = b;
	/* each entry: 2 bytes of length, then the data */
	size_t lx = (size_t)((*x)[0] << 8 | (*x)[1]), ly = (size_t)((*y)[0] << 8 | (*y)[1]);
	int c = memcmp(*x + 2, *y + 2, lx < ly ? lx : ly);
	return c ? c : (int)lx - (int)ly;
}

/* Verify the RRSIG at r[i] over the records of its type and owner in its
 * section (types whose RDATA has no compressed names). */
static bool rrsig_valid(const uint8_t *msg, const wrec *r, int n, int i, EVP_PKEY *pub)
{
	const uint8_t *sig = msg + r[i].rd;
	uint16_t covered = (uint16_t)(sig[0] << 8 | sig[1]);
	size_t off = r[i].rd + 18;
	dns_name signer;
	if (dns_name_read(msg, r[i].rd + r[i].rdlen, &off, &signer) != 0)
		return false;
	size_t head = off - r[i].rd;
	if (r[i].rd + r[i].rdlen - off != 64)
		return false;
	static uint8_t data[65536];
	memcpy(data, sig, head);
	size_t dn = head;
	uint8_t *rds[64];
	int nrd = 0;
	for (int k = 0; k < n; k++)
		if (r[k].type == covered && r[k].section == r[i].section && dns_name_equal(&r[k].owner, &r[i].owner)) {
			rds[nrd] = malloc(2 + r[k].rdlen);
			rds[nrd][0] = (uint8_t)(r[k].rdlen >> 8);
			rds[nrd][1] = (uint8_t)r[k].rdlen;
			memcpy(rds[nrd] + 2, msg + r[k].rd, r[k].rdlen);
			nrd++;
		}
	qsort(rds, (size_t)nrd, sizeof rds[0], rd_cmp);
	dns_name owner = r[i].owner;
	lower_name(&owner);
	for (int k = 0; k < nrd; k++) {
		uint16_t l = (uint16_t)(rds[k][0] << 8 | rds[k][1]);
		memcpy(data + dn, owner.wire, owner.len);
		dn += owner.len;
		uint8_t fix[10] = {(uint8_t)(covered >> 8), (uint8_t)covered, 0, 1, sig[4], sig[5], sig[6], sig[7],
				   (uint8_t)(l >> 8), (uint8_t)l};
		memcpy(data + dn, fix, 10);
		dn += 10;
		memcpy(data + dn, rds[k] + 2, l);
		dn += l;
		free(rds[k]);
	}
	return nrd > 0 && verify(pub, data, dn, msg + off);
}

static void test_sign_verify_and_cache(void)
{
	dnssec_keys *k = rfc_keys("example.net");
	dnssec_signer *s = dnssec_signer_new(64);
	EVP_PKEY *pub = pub_of(dnssec_key_dnskey(k, 0));
	if (!k || !s || !pub)
		return;
	uint32_t now = 1800000000u;
	dnssec_signer_set_time(s, now);
	dns_query q;
	memset(&q, 0, sizeof q);
	q.qname = name_of("WWW.example.NET");
	q.qtype = DNS_T_A;
	q.qclass = DNS_C_IN;
	uint8_t buf[1024];
	dns_writer w;
	CHECK_EQ_INT(dns_w_begin(&w, buf, sizeof buf, &q, 0, true), 0);
	/* two addresses given out of order: the signature covers them sorted */
	const uint8_t a1[4] = {192, 0, 2, 9}, a2[4] = {192, 0, 2, 1};
	dnssec_rrset set = {.owner = &q.qname, .type = DNS_T_A, .ttl = 3600, .n = 2};
	set.rdata[0] = a1;
	set.rdata[1] = a2;
	set.rdlen[0] = set.rdlen[1] = 4;
	dns_w_section(&w, 1);
	for (int i = 0; i < 2; i++) {
		size_t at;
		CHECK_EQ_INT(dns_w_rr_begin(&w, &q.qname, DNS_T_A, DNS_C_IN, 3600, &at), 0);
		dns_w_bytes(&w, set.rdata[i], 4);
		dns_w_rr_end(&w, at);
	}
	CHECK_EQ_INT(dnssec_sign(s, k, &set, &w), 0);
	CHECK_EQ_INT(dnssec_signer_signed(s), 1);
	wrec r[8];
	int n = read_records(buf, dns_w_length(&w), r, 8);
	CHECK_EQ_INT(n, 3);
	CHECK(r[2].type == DNS_T_RRSIG && r[2].ttl == 3600);
	const uint8_t *sig = buf + r[2].rd;
	/* type A, algorithm 13, 3 labels, TTL 3600, expiration in
	 * [now + 7 d, now + 7 d + 7 d / 8), inception now - 1 h, tag 55648 */
	CHECK(sig[0] == 0 && sig[1] == 1 && sig[2] == 13 && sig[3] == 3);
	uint32_t exp = (uint32_t)sig[8] << 24 | (uint32_t)sig[9] << 16 | (uint32_t)sig[10] << 8 | sig[11];
	uint32_t inc = (uint32_t)sig[12] << 24 | (uint32_t)sig[13] << 16 | (uint32_t)sig[14] << 8 | sig[15];
	CHECK(inc == now - 3600);
	CHECK(exp >= now + DNSSEC_VALIDITY_S && exp < now + DNSSEC_VALIDITY_S + DNSSEC_VALIDITY_S / 8);
	CHECK_EQ_INT(sig[16] << 8 | sig[17], 55648);
	CHECK(rrsig_valid(buf, r, n, 2, pub));
	/* a flipped bit in the data: not valid (the check can fail) */
	buf[r[0].rd + 3] ^= 1;
	CHECK(!rrsig_valid(buf, r, n, 2, pub));
	buf[r[0].rd + 3] ^= 1;

	/* the same set again (other case, other order): from the cache */
	dns_name upper = name_of("www.EXAMPLE.net");
	dnssec_rrset again = set;
	again.owner = &upper;
	again.rdata[0] = a2;
	again.rdata[1] = a1;
	uint8_t buf2[1024];
	dns_writer w2;
	dns_w_begin(&w2, buf2, sizeof buf2, &q, 0, true);
	CHECK_EQ_INT(dnssec_sign(s, k, &again, &w2), 0);
	CHECK_EQ_INT(dnssec_signer_signed(s), 1);
	/* another TTL is another set */
	again.ttl = 60;
	CHECK_EQ_INT(dnssec_sign(s, k, &again, &w2), 0);
	CHECK_EQ_INT(dnssec_signer_signed(s), 2);
	/* half the validity later: made again */
	dnssec_signer_set_time(s, now + DNSSEC_VALIDITY_S / 2);
	CHECK_EQ_INT(dnssec_sign(s, k, &set, &w2), 0);
	CHECK_EQ_INT(dnssec_signer_signed(s), 3);
	/* no room: nothing written, ERR_LIMIT */
	dns_writer w3;
	uint8_t small[100];
	dns_w_begin(&w3, small, sizeof small, &q, 0, true);
	size_t before = dns_w_length(&w3);
	CHECK_EQ_INT(dnssec_sign(s, k, &set, &w3), ERR_LIMIT);
	CHECK_EQ_INT(dns_w_length(&w3), before);
	/* an RRset over the bound: refused, nothing signed */
	dnssec_rrset big = set;
	big.n = DNSSEC_RRSET_MAX + 1;
	CHECK_EQ_INT(dnssec_sign(s, k, &big, &w3), ERR_INVAL);
	EVP_PKEY_free(pub);
	dnssec_signer_free(&s);
	dnssec_keys_free(&k);
}

/* --- signed answers (zone.c) --- */

static size_t query_do(uint8_t *p, const char *qname, uint16_t qtype, bool dnssec_ok)
{
	const uint8_t head[] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1};
	memcpy(p, head, sizeof head);
	size_t n = sizeof head;
	dns_name q = name_of(qname);
	memcpy(p + n, q.wire, q.len);
	n += q.len;
	const uint8_t tail[] = {(uint8_t)(qtype >> 8), (uint8_t)qtype, 0, 1, 0, 0, 41, 0x04, 0xd0, 0, 0,
				(uint8_t)(dnssec_ok ? 0x80 : 0), 0, 0, 0};
	memcpy(p + n, tail, sizeof tail);
	return n + sizeof tail;
}

static void test_signed_answers_and_compact_denial(void)
{
	dns_name origin = name_of("example.net");
	dns_zone *z = dns_zone_new(&origin);
	char err[200];
	CHECK_EQ_INT(dns_zone_add(z, "@", "SOA", 3600, "ns1 hostmaster 1 3600 600 86400 30", err, sizeof err), 0);
	CHECK_EQ_INT(dns_zone_add(z, "@", "NS", 3600, "ns1", err, sizeof err), 0);
	CHECK_EQ_INT(dns_zone_add(z, "www", "A", 60, "192.0.2.1", err, sizeof err), 0);
	CHECK_EQ_INT(dns_zone_add(z, "www", "CAA", 60, "0 issue \"ca.example\"", err, sizeof err), 0);
	CHECK_EQ_INT(dns_zone_add(z, "a.ent", "A", 60, "192.0.2.2", err, sizeof err), 0);
	char txt[200];
	for (int i = 0; i < 3; i++) { /* 3 x 150 bytes: fits 512 bytes alone, not with its RRSIG */
		snprintf(txt, sizeof txt, "\"%c%0149d\"", 'a' + i, 0);
		CHECK_EQ_INT(dns_zone_add(z, "big", "TXT", 60, txt, err, sizeof err), 0);
	}
	dns_zone_set_dnssec(z, true);
	CHECK_EQ_INT(dns_zone_check_dnssec(z, err, sizeof err), 0);
	dns_zone_set_keys(z, rfc_keys("example.net"));
	dnssec_signer *s = dnssec_signer_new(64);
	EVP_PKEY *pub = pub_of(dnssec_key_dnskey(dns_zone_keys(z), 0));
	dns_route_env env = {.health = DNS_VIEW_ALL_HEALTHY, .signer = s};
	uint8_t qb[512], out[4096];
	dns_query q;
	wrec r[32];

	/* a name that does not exist: NOERROR, SOA + NSEC (NXNAME), each signed */
	size_t qn = query_do(qb, "Nope.example.net", DNS_T_A, true);
	CHECK_EQ_INT(dns_parse_query(qb, qn, &q), DNS_PARSE_OK);
	size_t len = dns_answer(&z, 1, &q, out, sizeof out, 1232, NULL, &env);
	CHECK_EQ_INT(out[3] & 0xf, DNS_R_NOERROR);
	int n = read_records(out, len, r, 32);
	CHECK_EQ_INT(n, 5); /* SOA, RRSIG, NSEC, RRSIG, OPT */
	int nsec = -1;
	for (int i = 0; i < n; i++) {
		if (r[i].type == DNS_T_NSEC)
			nsec = i;
		if (r[i].type == DNS_T_RRSIG)
			CHECK(r[i].section == 2 && (out[r[i].rd + 1] == DNS_T_NSEC ? rrsig_valid(out, r, n, i, pub) : 1));
	}
	CHECK(nsec >= 0 && r[nsec].ttl == 30); /* min(SOA TTL, minimum) */
	if (nsec >= 0) {
		dns_name next;
		size_t off = r[nsec].rd;
		CHECK_EQ_INT(dns_name_read(out, len, &off, &next), 0);
		CHECK(next.wire[0] == 1 && next.wire[1] == 0); /* \000.nope: covers nothing else */
		CHECK(out[off] == 0 && out[off + 1] == 17 && out[off + 2 + 16] == 0x80 && out[off + 2 + 5] == 0x03);
	}
	/* without DO: NXDOMAIN as before, nothing signed */
	qn = query_do(qb, "nope.example.net", DNS_T_A, false);
	dns_parse_query(qb, qn, &q);
	len = dns_answer(&z, 1, &q, out, sizeof out, 1232, NULL, &env);
	CHECK_EQ_INT(out[3] & 0xf, DNS_R_NXDOMAIN);
	CHECK_EQ_INT(read_records(out, len, r, 32), 2); /* SOA, OPT */

	/* NODATA: the NSEC lists A, CAA, RRSIG, NSEC (not the type asked) */
	qn = query_do(qb, "www.example.net", DNS_T_TXT, true);
	dns_parse_query(qb, qn, &q);
	len = dns_answer(&z, 1, &q, out, sizeof out, 1232, NULL, &env);
	n = read_records(out, len, r, 32);
	nsec = -1;
	for (int i = 0; i < n; i++)
		if (r[i].type == DNS_T_NSEC)
			nsec = i;
	CHECK(nsec >= 0);
	if (nsec >= 0) {
		const uint8_t *bm = out + r[nsec].rd + 2 + 17; /* past \000.www.example.net */
		CHECK(bm[0] == 0 && bm[1] == 6 && bm[2] == 0x40 && bm[7] == 0x03); /* A; RRSIG NSEC */
		CHECK(bm[8] == 1 && bm[9] == 1 && bm[10] == 0x40);                   /* CAA */
	}
	/* an empty non-terminal: only RRSIG and NSEC */
	qn = query_do(qb, "ent.example.net", DNS_T_A, true);
	dns_parse_query(qb, qn, &q);
	len = dns_answer(&z, 1, &q, out, sizeof out, 1232, NULL, &env);
	n = read_records(out, len, r, 32);
	for (int i = 0; i < n; i++)
		if (r[i].type == DNS_T_NSEC)
			CHECK(out[r[i].rd + r[i].rdlen - 8] == 0 && out[r[i].rd + r[i].rdlen - 7] == 6 &&
			      out[r[i].rd + r[i].rdlen - 1] == 0x03);

	/* DNSKEY at the apex, signed by itself; an A signed and valid */
	qn = query_do(qb, "example.net", DNS_T_DNSKEY, true);
	dns_parse_query(qb, qn, &q);
	len = dns_answer(&z, 1, &q, out, sizeof out, 1232, NULL, &env);
	n = read_records(out, len, r, 32);
	CHECK(n == 3 && r[0].type == DNS_T_DNSKEY && r[1].type == DNS_T_RRSIG && rrsig_valid(out, r, n, 1, pub));
	qn = query_do(qb, "WWW.example.net", DNS_T_A, true);
	dns_parse_query(qb, qn, &q);
	len = dns_answer(&z, 1, &q, out, sizeof out, 1232, NULL, &env);
	n = read_records(out, len, r, 32);
	CHECK(n == 3 && r[1].type == DNS_T_RRSIG && rrsig_valid(out, r, n, 1, pub));
	/* a 512-byte UDP answer without room for the RRSIG: TC (the client
	 * asks again over TCP); with room: the whole set and its RRSIG */
	qn = query_do(qb, "big.example.net", DNS_T_TXT, true);
	dns_parse_query(qb, qn, &q);
	len = dns_answer(&z, 1, &q, out, 512, 1232, NULL, &env);
	CHECK(len > 0 && len <= 512 && (out[2] & 0x02));
	n = read_records(out, len, r, 32);
	for (int i = 0; i < n; i++)
		CHECK(r[i].type != DNS_T_RRSIG);
	len = dns_answer(&z, 1, &q, out, 65535, 1232, NULL, &env);
	CHECK(len > 512 && !(out[2] & 0x02));
	n = read_records(out, len, r, 32);
	CHECK(n == 5 && r[3].type == DNS_T_RRSIG && rrsig_valid(out, r, n, 3, pub));

	/* a delegation cannot be signed: refused */
	CHECK_EQ_INT(dns_zone_add(z, "sub", "NS", 60, "ns.other.example.", err, sizeof err), 0);
	CHECK_EQ_INT(dns_zone_check_dnssec(z, err, sizeof err), ERR_INVAL);
	CHECK(strstr(err, "delegations") != NULL);
	EVP_PKEY_free(pub);
	dnssec_signer_free(&s);
	dns_zone_free(&z);
}

static void test_secrets_section(void)
{
	char path[] = "/tmp/test_dnssec_XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	const char *text = "[tokens]\nkey.k1 = x\n\n[s3]\nkey.A = B\n";
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
	char id[16], err[300];
	CHECK_EQ_INT(dnssec_secrets_add_key(path, "example.net", "active", id, sizeof id, err, sizeof err), 0);
	CHECK_EQ_STR(id, "k1");
	CHECK_EQ_INT(dnssec_secrets_add_key(path, "example.net", "publish", id, sizeof id, err, sizeof err), 0);
	CHECK_EQ_STR(id, "k2");
	CHECK_EQ_INT(dnssec_secrets_add_key(path, "other.test", "active", id, sizeof id, err, sizeof err), 0);
	CHECK_EQ_STR(id, "k3");
	/* the keys went into [dnssec], not the [s3] section that was last */
	size_t len;
	char *all = util_read_file(path, 1 << 16, &len);
	CHECK(all && strstr(all, "[dnssec]") && strstr(all, "key.k3") < strstr(all, "[s3]") + 1000);
	CHECK(all && strstr(all, "[s3]\nkey.A = B\n") != NULL);
	free(all);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	dns_name origin = name_of("example.net");
	dnssec_keys *k = NULL;
	CHECK_EQ_INT(dnssec_keys_load(path, &origin, &k, err, sizeof err), 0);
	CHECK(k && dnssec_keys_count(k) == 2 && dnssec_key_active(k, 0) && !dnssec_key_active(k, 1));
	dnssec_keys_free(&k);
	dns_name none = name_of("none.test");
	CHECK_EQ_INT(dnssec_keys_load(path, &none, &k, err, sizeof err), ERR_NOTFOUND);
	/* readable by others: refused */
	chmod(path, 0644);
	CHECK_EQ_INT(dnssec_keys_load(path, &origin, &k, err, sizeof err), ERR_CONFIG);
	chmod(path, 0600);
	/* a bad key line names the key, never echoes the value */
	FILE *f = fopen(path, "a");
	fputs("[dnssec]\nkey.k9 = example.net active c2VjcmV0\n", f);
	fclose(f);
	CHECK_EQ_INT(dnssec_keys_load(path, &origin, &k, err, sizeof err), ERR_CONFIG);
	CHECK(strstr(err, "key.k9") && !strstr(err, "c2VjcmV0"));
	unlink(path);
}

int main(void)
{
	RUN(test_rfc6605_key_vector);
	RUN(test_canonical_rdata);
	RUN(test_nsec_bitmap);
	RUN(test_sign_verify_and_cache);
	RUN(test_signed_answers_and_compact_denial);
	RUN(test_secrets_section);
	return TEST_SUMMARY();
}
