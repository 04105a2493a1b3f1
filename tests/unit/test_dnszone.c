/*
 * test_dnszone.c - unit tests for src/dns/zone.c: records from their
 * presentation form (and the refusals: a CNAME beside data, a name outside
 * the zone, bad addresses, a second SOA), and the authoritative answer of
 * RFC 1034 4.3.2 read back as a resolver reads it: exact answers with the
 * question's case, CNAME chains inside and out of the zone, NXDOMAIN and
 * NODATA (empty non-terminals too) with the SOA at the negative TTL,
 * wildcards at the closest encloser, REFUSED outside the zone and for
 * transfers and other classes, truncation with TC that keeps the OPT, ECS
 * echoed with scope 0, the error answers, and routed names (route.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "dns/zone.h"
#include "test.h"

static dns_zone *zone;
static const dns_route_env *ask_env; /* what routed answers see (NULL: all healthy, no map) */

/* --- a query, as dig sends it (optionally with EDNS and ECS) --- */

static size_t query(uint8_t *p, const char *qname, uint16_t qtype, uint16_t qclass, bool edns, bool ecs)
{
	const uint8_t head[] = {0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, (uint8_t)(edns ? 1 : 0)};
	memcpy(p, head, sizeof head);
	size_t n = sizeof head;
	dns_name q;
	CHECK_EQ_INT(dns_name_from_text(qname, &q), 0);
	memcpy(p + n, q.wire, q.len);
	n += q.len;
	p[n++] = (uint8_t)(qtype >> 8);
	p[n++] = (uint8_t)qtype;
	p[n++] = (uint8_t)(qclass >> 8);
	p[n++] = (uint8_t)qclass;
	if (edns) {
		const uint8_t opt[] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, (uint8_t)(ecs ? 11 : 0)};
		memcpy(p + n, opt, sizeof opt);
		n += sizeof opt;
		if (ecs) {
			const uint8_t e[] = {0, 8, 0, 7, 0, 1, 24, 0, 10, 2, 3};
			memcpy(p + n, e, sizeof e);
			n += sizeof e;
		}
	}
	return n;
}

/* --- the answer, read back --- */

typedef struct rec {
	int section;   /* 1 answer, 2 authority, 3 additional */
	char owner[300];
	uint16_t type;
	uint32_t ttl;
	char data[300]; /* a name in text, or the address, or hex */
} rec;

typedef struct reply {
	uint16_t flags;
	int rcode;
	int n;
	rec r[64];
	size_t len;
} reply;

static uint16_t u16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static reply ask(const char *qname, uint16_t qtype, uint16_t qclass, bool edns, bool ecs, size_t cap)
{
	uint8_t qb[512], out[65535];
	size_t qn = query(qb, qname, qtype, qclass, edns, ecs);
	dns_query q;
	CHECK_EQ_INT(dns_parse_query(qb, qn, &q), DNS_PARSE_OK);
	reply rp;
	memset(&rp, 0, sizeof rp);
	dns_zone *zones[] = {zone};
	rp.len = dns_answer(zones, 1, &q, out, cap, 1232, NULL, ask_env);
	CHECK(rp.len >= 12 && rp.len <= cap);
	CHECK_EQ_INT(u16(out), 0xabcd);
	rp.flags = u16(out + 2);
	rp.rcode = rp.flags & 0xf;
	CHECK_EQ_INT(u16(out + 4), 1);
	int counts[3] = {u16(out + 6), u16(out + 8), u16(out + 10)};
	size_t off = 12;
	dns_name n;
	CHECK_EQ_INT(dns_name_read(out, rp.len, &off, &n), 0);
	CHECK(n.len == q.qname.len && memcmp(n.wire, q.qname.wire, n.len) == 0); /* as asked */
	off += 4;
	for (int s = 0; s < 3; s++)
		for (int i = 0; i < counts[s]; i++) {
			CHECK(rp.n < 64);
			rec *r = &rp.r[rp.n < 63 ? rp.n++ : 63];
			r->section = s + 1;
			CHECK_EQ_INT(dns_name_read(out, rp.len, &off, &n), 0);
			dns_name_to_text(&n, r->owner, sizeof r->owner);
			r->type = u16(out + off);
			r->ttl = (uint32_t)u16(out + off + 4) << 16 | u16(out + off + 6);
			size_t rdlen = u16(out + off + 8);
			off += 10;
			CHECK(off + rdlen <= rp.len);
			size_t at = off;
			if (r->type == DNS_T_CNAME || r->type == DNS_T_NS || r->type == DNS_T_SOA) {
				CHECK_EQ_INT(dns_name_read(out, rp.len, &at, &n), 0);
				dns_name_to_text(&n, r->data, sizeof r->data);
			} else if (r->type == DNS_T_A && rdlen == 4) {
				snprintf(r->data, sizeof r->data, "%u.%u.%u.%u", out[off], out[off + 1], out[off + 2],
					 out[off + 3]);
			} else {
				for (size_t k = 0; k < rdlen && 2 * k + 2 < sizeof r->data; k++)
					snprintf(r->data + 2 * k, 3, "%02x", out[off + k]);
			}
			off += rdlen;
		}
	CHECK_EQ_INT(off, rp.len);
	return rp;
}

static int count(const reply *rp, int section, uint16_t type)
{
	int c = 0;
	for (int i = 0; i < rp->n; i++)
		if (rp->r[i].section == section && (!type || rp->r[i].type == type))
			c++;
	return c;
}

static void add(const char *owner, const char *type, uint32_t ttl, const char *rdata)
{
	char err[200] = "";
	int rc = dns_zone_add(zone, owner, type, ttl, rdata, err, sizeof err);
	if (rc != 0)
		fprintf(stderr, "add %s %s %s: %s\n", owner, type, rdata, err);
	CHECK_EQ_INT(rc, 0);
}

static void build_zone(void)
{
	dns_name origin;
	CHECK_EQ_INT(dns_name_from_text("tandem.test", &origin), 0);
	zone = dns_zone_new(&origin);
	CHECK(zone != NULL);
	CHECK(!dns_zone_ready(zone));
	add("@", "SOA", 3600, "ns1 hostmaster 2026120301 3600 600 86400 30");
	add("@", "NS", 3600, "ns1");
	add("ns1", "A", 3600, "127.0.0.5");
	add("api", "A", 10, "127.0.0.2");
	add("api", "AAAA", 10, "::1");
	add("www", "CNAME", 300, "api");
	add("ext", "CNAME", 300, "app.example.com.");
	add("@", "MX", 3600, "10 mail.example.com.");
	add("@", "TXT", 3600, "\"v=spf1 -all\" second");
	add("@", "CAA", 3600, "0 issue \"letsencrypt.org\"");
	add("_api._tcp", "SRV", 60, "0 5 443 api");
	add("*.wild", "A", 60, "127.0.0.9");
	add("a.b.ent", "A", 60, "127.0.0.10");
	add("loop1", "CNAME", 60, "loop2");
	add("loop2", "CNAME", 60, "loop1");
	CHECK(dns_zone_ready(zone));
}

static void test_records_and_refusals(void)
{
	char err[200];
	CHECK_EQ_INT(dns_zone_add(zone, "api", "CNAME", 60, "www", err, sizeof err), ERR_INVAL);
	CHECK(strstr(err, "CNAME") != NULL);
	CHECK_EQ_INT(dns_zone_add(zone, "www", "A", 60, "127.0.0.1", err, sizeof err), ERR_INVAL);
	CHECK_EQ_INT(dns_zone_add(zone, "host.example.org.", "A", 60, "127.0.0.1", err, sizeof err), ERR_INVAL);
	CHECK(strstr(err, "not within") != NULL);
	CHECK_EQ_INT(dns_zone_add(zone, "bad", "A", 60, "127.0.0.256", err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(dns_zone_add(zone, "bad", "AAAA", 60, "127.0.0.1", err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(dns_zone_add(zone, "@", "SOA", 60, "a b 1 2 3 4 5", err, sizeof err), ERR_INVAL);
	CHECK_EQ_INT(dns_zone_add(zone, "bad", "HINFO", 60, "x y", err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(dns_zone_add(zone, "bad", "MX", 60, "70000 mail", err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(dns_zone_add(zone, "bad", "A", 0x80000000u, "127.0.0.1", err, sizeof err), ERR_PARSE);
	char longtxt[400];
	memset(longtxt, 'x', 300);
	longtxt[300] = '\0';
	CHECK_EQ_INT(dns_zone_add(zone, "bad", "TXT", 60, longtxt, err, sizeof err), ERR_PARSE);
	CHECK_EQ_INT(dns_zone_add(zone, "bad", "CAA", 60, "0 is-sue \"x\"", err, sizeof err), ERR_PARSE);
}

static void test_exact_answers(void)
{
	reply r = ask("API.Tandem.Test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NOERROR);
	CHECK(r.flags & DNS_F_AA);
	CHECK(r.flags & DNS_F_QR);
	CHECK(r.flags & DNS_F_RD); /* echoed */
	CHECK(!(r.flags & DNS_F_RA)); /* no recursion here */
	CHECK_EQ_INT(count(&r, 1, DNS_T_A), 1);
	CHECK_EQ_STR(r.r[0].owner, "API.Tandem.Test."); /* the question's case */
	CHECK_EQ_STR(r.r[0].data, "127.0.0.2");
	CHECK_EQ_INT(r.r[0].ttl, 10);
	r = ask("api.tandem.test", DNS_T_ANY, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(count(&r, 1, DNS_T_A), 1);
	CHECK_EQ_INT(count(&r, 1, DNS_T_AAAA), 1);
	r = ask("tandem.test", DNS_T_MX, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(count(&r, 1, DNS_T_MX), 1);
	CHECK(strstr(r.r[0].data, "000a04") == r.r[0].data); /* preference 10, "mail" */
	r = ask("tandem.test", DNS_T_TXT, DNS_C_IN, false, false, 512);
	CHECK_EQ_STR(r.r[0].data, "0b763d73706631202d616c6c067365636f6e64"); /* two strings */
	r = ask("tandem.test", DNS_T_CAA, DNS_C_IN, false, false, 512);
	CHECK_EQ_STR(r.r[0].data, "00056973737565" "6c657473656e63727970742e6f7267");
	r = ask("_api._tcp.tandem.test", DNS_T_SRV, DNS_C_IN, false, false, 512);
	/* priority 0, weight 5, port 443, target uncompressed (RFC 2782) */
	CHECK_EQ_STR(r.r[0].data, "0000000501bb" "03617069" "0674616e64656d0474657374" "00");
	r = ask("tandem.test", DNS_T_SOA, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(count(&r, 1, DNS_T_SOA), 1);
	CHECK_EQ_STR(r.r[0].data, "ns1.tandem.test.");
}

static void test_cnames(void)
{
	reply r = ask("www.tandem.test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NOERROR);
	CHECK_EQ_INT(count(&r, 1, 0), 2);
	CHECK_EQ_INT(r.r[0].type, DNS_T_CNAME);
	CHECK_EQ_STR(r.r[0].data, "api.tandem.test.");
	CHECK_EQ_INT(r.r[1].type, DNS_T_A);
	CHECK_EQ_STR(r.r[1].owner, "api.tandem.test.");
	/* the CNAME itself when asked for */
	r = ask("www.tandem.test", DNS_T_CNAME, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(count(&r, 1, 0), 1);
	/* out of the zone: the CNAME only, the resolver follows it */
	r = ask("ext.tandem.test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NOERROR);
	CHECK_EQ_INT(count(&r, 1, 0), 1);
	CHECK_EQ_STR(r.r[0].data, "app.example.com.");
	/* a loop: each CNAME once, then the answer ends */
	r = ask("loop1.tandem.test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NOERROR);
	CHECK_EQ_INT(count(&r, 1, DNS_T_CNAME), 2);
	/* to a name with no such type: the CNAME, then NODATA */
	r = ask("www.tandem.test", DNS_T_MX, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NOERROR);
	CHECK_EQ_INT(count(&r, 1, DNS_T_CNAME), 1);
	CHECK_EQ_INT(count(&r, 2, DNS_T_SOA), 1);
}

static void test_negative_answers(void)
{
	reply r = ask("nothere.tandem.test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NXDOMAIN);
	CHECK(r.flags & DNS_F_AA);
	CHECK_EQ_INT(count(&r, 1, 0), 0);
	CHECK_EQ_INT(count(&r, 2, DNS_T_SOA), 1);
	CHECK_EQ_INT(r.r[0].ttl, 30); /* min(3600, minimum 30): RFC 2308 */
	r = ask("api.tandem.test", DNS_T_TXT, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NOERROR); /* NODATA */
	CHECK_EQ_INT(count(&r, 1, 0), 0);
	CHECK_EQ_INT(count(&r, 2, DNS_T_SOA), 1);
	/* b.ent has no records but a.b.ent does: NODATA, not NXDOMAIN */
	r = ask("b.ent.tandem.test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NOERROR);
	CHECK_EQ_INT(count(&r, 2, DNS_T_SOA), 1);
	r = ask("ent.tandem.test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NOERROR);
	/* below an existing name without a wildcard: NXDOMAIN */
	r = ask("x.api.tandem.test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NXDOMAIN);
}

static void test_wildcards(void)
{
	reply r = ask("Host1.wild.tandem.test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NOERROR);
	CHECK_EQ_INT(count(&r, 1, DNS_T_A), 1);
	CHECK_EQ_STR(r.r[0].owner, "Host1.wild.tandem.test."); /* synthesised with the query's name */
	CHECK_EQ_STR(r.r[0].data, "127.0.0.9");
	/* deeper: the closest encloser is still wild.tandem.test (RFC 4592) */
	r = ask("a.b.wild.tandem.test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(count(&r, 1, DNS_T_A), 1);
	/* the wildcard has no AAAA: NODATA */
	r = ask("h.wild.tandem.test", DNS_T_AAAA, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NOERROR);
	CHECK_EQ_INT(count(&r, 1, 0), 0);
	/* the wildcard does not cover names that exist elsewhere: api has no
	 * wildcard above it */
	r = ask("x.ent.tandem.test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_NXDOMAIN);
}

static void test_refused(void)
{
	reply r = ask("example.org", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_REFUSED);
	CHECK(!(r.flags & DNS_F_AA));
	CHECK_EQ_INT(r.n, 0);
	r = ask("tandem.test", DNS_T_AXFR, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_REFUSED);
	r = ask("api.tandem.test", DNS_T_A, DNS_C_CH, false, false, 512);
	CHECK_EQ_INT(r.rcode, DNS_R_REFUSED);
	/* a zone without its SOA does not answer */
	dns_name o;
	CHECK_EQ_INT(dns_name_from_text("empty.test", &o), 0);
	dns_zone *e = dns_zone_new(&o);
	char err[100];
	CHECK_EQ_INT(dns_zone_add(e, "x", "A", 1, "127.0.0.1", err, sizeof err), 0);
	uint8_t qb[512], out[512];
	size_t qn = query(qb, "x.empty.test", DNS_T_A, DNS_C_IN, false, false);
	dns_query q;
	CHECK_EQ_INT(dns_parse_query(qb, qn, &q), DNS_PARSE_OK);
	dns_zone *zones[] = {e};
	size_t len = dns_answer(zones, 1, &q, out, sizeof out, 1232, NULL, NULL);
	CHECK(len >= 12);
	CHECK_EQ_INT(out[3] & 0xf, DNS_R_REFUSED);
	dns_zone_free(&e);
	CHECK(e == NULL);
}

static void test_edns_ecs_and_truncation(void)
{
	reply r = ask("api.tandem.test", DNS_T_A, DNS_C_IN, true, true, 1232);
	CHECK_EQ_INT(count(&r, 1, DNS_T_A), 1);
	CHECK_EQ_INT(count(&r, 3, DNS_T_OPT), 1);
	/* the OPT's data: ECS family 1, source 24, scope 0, 10.2.3 */
	const rec *opt = &r.r[r.n - 1];
	CHECK_EQ_STR(opt->data, "000800070001180" "00a0203");
	/* a big answer: 40 TXT records of 200 bytes in 512 bytes: TC, what
	 * fits, and the OPT still there with EDNS */
	for (int i = 0; i < 40; i++) {
		char txt[260];
		memset(txt, 'a' + i % 26, 200);
		txt[200] = '\0';
		add("big", "TXT", 60, txt);
	}
	r = ask("big.tandem.test", DNS_T_TXT, DNS_C_IN, true, false, 512);
	CHECK(r.flags & DNS_F_TC);
	CHECK(count(&r, 1, DNS_T_TXT) < 40);
	CHECK_EQ_INT(count(&r, 3, DNS_T_OPT), 1);
	CHECK(r.len <= 512);
	/* over TCP (65535) everything fits */
	r = ask("big.tandem.test", DNS_T_TXT, DNS_C_IN, false, false, 65535);
	CHECK(!(r.flags & DNS_F_TC));
	CHECK_EQ_INT(count(&r, 1, DNS_T_TXT), 40);
}

static void test_error_answers(void)
{
	uint8_t qb[512], out[512];
	size_t qn = query(qb, "api.tandem.test", DNS_T_A, DNS_C_IN, false, false);
	qb[5] = 2; /* two questions */
	dns_query q;
	dns_parse_result pr = dns_parse_query(qb, qn, &q);
	CHECK_EQ_INT(pr, DNS_PARSE_FORMERR);
	size_t len = dns_answer_error(qb, qn, pr, out, sizeof out, 1232);
	CHECK_EQ_INT(len, 12);
	CHECK_EQ_INT(u16(out), 0xabcd);
	CHECK_EQ_INT(out[3] & 0xf, DNS_R_FORMERR);
	CHECK_EQ_INT(u16(out + 4), 0); /* no question */
	qb[5] = 1;
	qb[2] = (uint8_t)(qb[2] | (4 << 3)); /* opcode NOTIFY */
	pr = dns_parse_query(qb, qn, &q);
	CHECK_EQ_INT(pr, DNS_PARSE_NOTIMP);
	len = dns_answer_error(qb, qn, pr, out, sizeof out, 1232);
	CHECK_EQ_INT(out[3] & 0xf, DNS_R_NOTIMP);
	CHECK_EQ_INT((out[2] >> 3) & 0xf, 4); /* the opcode echoed */
	CHECK_EQ_INT(dns_answer_error(qb, 5, DNS_PARSE_DROP, out, sizeof out, 1232), 0);
}

/* Routed names (route.h) answered through the zone: the policy's pick
 * under the health view, the ECS scope of the latency map, NODATA for a
 * family the picked region lacks, a CNAME to a routed name, and the
 * refusals of addresses beside a route. */
static void test_routed_answers(void)
{
	dns_regions t = {.n = 0};
	dns_route r;
	char err[200] = "";
	CHECK_EQ_INT(dns_route_parse("latency eu=127.0.0.2 us=127.0.0.3,::3 ttl=7", &t, 1, &r, err, sizeof err), 0);
	CHECK_EQ_INT(dns_zone_add_route(zone, "geo", &r, err, sizeof err), 0);
	CHECK_EQ_INT(dns_zone_add_route(zone, "geo", &r, err, sizeof err), ERR_INVAL);   /* twice */
	CHECK_EQ_INT(dns_zone_add_route(zone, "api", &r, err, sizeof err), ERR_INVAL);   /* beside A records */
	CHECK_EQ_INT(dns_zone_add(zone, "geo", "A", 60, "1.2.3.4", err, sizeof err), ERR_INVAL);
	CHECK_EQ_INT(dns_zone_add(zone, "geo", "CNAME", 60, "api", err, sizeof err), ERR_INVAL);
	CHECK_EQ_INT(dns_zone_add_route(zone, "x.example.", &r, err, sizeof err), ERR_INVAL);
	add("geo", "TXT", 60, "\"other types stay static\"");
	add("www-geo", "CNAME", 60, "geo");
	dns_latency_map *m = dns_latency_map_new();
	CHECK_EQ_INT(dns_latency_map_add(m, "10.2.0.0/16 us eu, 10.1.0.0/16 eu us", &t, 2, err, sizeof err), 0);
	dns_route_env env = {.health = DNS_VIEW_ALL_HEALTHY, .map = m};
	ask_env = &env;
	/* the query's subnet is 10.2.3.0/24: us, scope /16 */
	reply rp = ask("GEO.tandem.test", DNS_T_A, DNS_C_IN, true, true, 1232);
	CHECK_EQ_INT(count(&rp, 1, DNS_T_A), 1);
	CHECK_EQ_STR(rp.r[0].data, "127.0.0.3");
	CHECK_EQ_INT(rp.r[0].ttl, 7);
	CHECK_EQ_STR(rp.r[0].owner, "GEO.tandem.test.");
	CHECK(strstr(rp.r[rp.n - 1].data, "00080007000118100a0203") != NULL); /* ECS scope 16 (0x10) */
	/* us withdrawn: eu, whatever the subnet prefers */
	env.health = 1u; /* only eu (index 0) healthy */
	rp = ask("geo.tandem.test", DNS_T_A, DNS_C_IN, true, true, 1232);
	CHECK_EQ_STR(rp.r[0].data, "127.0.0.2");
	/* eu has no IPv6 address: NODATA with the SOA */
	rp = ask("geo.tandem.test", DNS_T_AAAA, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(rp.rcode, DNS_R_NOERROR);
	CHECK_EQ_INT(count(&rp, 1, 0), 0);
	CHECK_EQ_INT(count(&rp, 2, DNS_T_SOA), 1);
	/* both down: fail open, both answer */
	env.health = 0;
	rp = ask("geo.tandem.test", DNS_T_A, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(count(&rp, 1, DNS_T_A), 2);
	rp = ask("geo.tandem.test", DNS_T_AAAA, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(count(&rp, 1, DNS_T_AAAA), 1);
	/* a CNAME to a routed name is followed; static types of the name stay */
	env.health = DNS_VIEW_ALL_HEALTHY;
	rp = ask("www-geo.tandem.test", DNS_T_A, DNS_C_IN, true, true, 1232);
	CHECK_EQ_INT(count(&rp, 1, DNS_T_CNAME), 1);
	CHECK_EQ_INT(count(&rp, 1, DNS_T_A), 1);
	rp = ask("geo.tandem.test", DNS_T_TXT, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(count(&rp, 1, DNS_T_TXT), 1);
	rp = ask("geo.tandem.test", DNS_T_ANY, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(count(&rp, 1, 0), 2); /* TXT, and eu's A (no client: the route's order) */
	/* a static name's ECS scope stays 0 */
	rp = ask("api.tandem.test", DNS_T_A, DNS_C_IN, true, true, 1232);
	CHECK(strstr(rp.r[rp.n - 1].data, "00080007000118000a0203") != NULL);
	/* an alias at the apex answers with its routed target's pick, under
	 * the apex's name, with the target's ECS scope; never a CNAME */
	CHECK_EQ_INT(dns_zone_add(zone, "@", "ALIAS", 0, "geo", err, sizeof err), 0);
	CHECK_EQ_INT(dns_zone_add(zone, "@", "ALIAS", 0, "api", err, sizeof err), ERR_INVAL);  /* one alias */
	CHECK_EQ_INT(dns_zone_add(zone, "api", "ALIAS", 0, "geo", err, sizeof err), ERR_INVAL); /* beside A */
	CHECK_EQ_INT(dns_zone_add(zone, "@", "A", 60, "1.2.3.4", err, sizeof err), ERR_INVAL);
	CHECK_EQ_INT(dns_zone_add(zone, "al2", "ALIAS", 0, "www", err, sizeof err), 0); /* -> CNAME -> api */
	rp = ask("Tandem.Test", DNS_T_A, DNS_C_IN, true, true, 1232);
	CHECK_EQ_INT(count(&rp, 1, DNS_T_A), 1);
	CHECK_EQ_INT(count(&rp, 1, DNS_T_CNAME), 0);
	CHECK_EQ_STR(rp.r[0].data, "127.0.0.3");
	CHECK_EQ_STR(rp.r[0].owner, "Tandem.Test.");
	CHECK_EQ_INT(rp.r[0].ttl, 7);
	CHECK(strstr(rp.r[rp.n - 1].data, "00080007000118100a0203") != NULL); /* the target's scope, 16 */
	rp = ask("tandem.test", DNS_T_MX, DNS_C_IN, false, false, 512); /* the apex's other types stay */
	CHECK_EQ_INT(count(&rp, 1, DNS_T_MX), 1);
	rp = ask("al2.tandem.test", DNS_T_AAAA, DNS_C_IN, false, false, 512);
	CHECK_EQ_INT(count(&rp, 1, DNS_T_AAAA), 1);
	CHECK_EQ_INT(count(&rp, 1, DNS_T_CNAME), 0);
	CHECK_EQ_STR(rp.r[0].data, "00000000000000000000000000000001"); /* ::1, api's */
	int line = -1;
	CHECK_EQ_INT(dns_zone_check_aliases(zone, &line, err, sizeof err), 0);
	CHECK_EQ_INT(dns_zone_add_at(zone, dns_zone_origin(zone), 42, "al3", "ALIAS", 0, "nosuch", err, sizeof err), 0);
	CHECK_EQ_INT(dns_zone_check_aliases(zone, &line, err, sizeof err), ERR_INVAL);
	CHECK_EQ_INT(line, 42);
	ask_env = NULL;
	dns_latency_map_free(&m);
}

int main(void)
{
	build_zone();
	RUN(test_records_and_refusals);
	RUN(test_exact_answers);
	RUN(test_cnames);
	RUN(test_negative_answers);
	RUN(test_wildcards);
	RUN(test_refused);
	RUN(test_edns_ecs_and_truncation);
	RUN(test_error_answers);
	RUN(test_routed_answers);
	dns_zone_free(&zone);
	return TEST_SUMMARY();
}
