/*
 * test_edgeresolve.c - the edge's stub resolver codec (src/edge/resolve.c):
 * the query it sends (read back with the DNS server's own parser: the ECS
 * option as tandem dns sees it) and what it believes of a reply: only the
 * reply to its query (id, QR, question), the addresses of the question's
 * name or of its CNAME target, the smallest TTL, errors apart from
 * NXDOMAIN/NODATA, and nothing past a malformed record.
 */
#include <arpa/inet.h>
#include <string.h>

#include "dns/wire.h"
#include "edge/resolve.h"
#include "test.h"

typedef struct msg {
	uint8_t b[1024];
	size_t n;
} msg;

static void put16(msg *m, unsigned v)
{
	m->b[m->n++] = (uint8_t)(v >> 8);
	m->b[m->n++] = (uint8_t)v;
}

static void put32(msg *m, uint32_t v)
{
	put16(m, v >> 16);
	put16(m, v & 0xffff);
}

/* A reply to the query q (its header and question, without the OPT), with
 * rcode and ancount answers to be appended. */
static void reply_begin(msg *m, const uint8_t *q, int qlen, unsigned rcode, unsigned ancount)
{
	dns_query pq;
	CHECK(dns_parse_query(q, (size_t)qlen, &pq) == DNS_PARSE_OK);
	size_t qend = DNS_HEADER_BYTES + pq.qname.len + 4;
	memcpy(m->b, q, qend);
	m->n = qend;
	m->b[2] = 0x84; /* QR, AA */
	m->b[3] = (uint8_t)rcode;
	m->b[6] = (uint8_t)(ancount >> 8);
	m->b[7] = (uint8_t)ancount;
	m->b[10] = m->b[11] = 0; /* no additional records */
}

/* An answer record owned by the question's name (a pointer to offset 12). */
static void rr_a(msg *m, const char *addr, uint32_t ttl)
{
	put16(m, 0xc00c);
	put16(m, DNS_T_A);
	put16(m, DNS_C_IN);
	put32(m, ttl);
	put16(m, 4);
	CHECK(inet_pton(AF_INET, addr, m->b + m->n) == 1);
	m->n += 4;
}

static void test_query_carries_ecs(void)
{
	uint8_t q[512];
	uint8_t addr[16] = {10, 1, 2, 3};
	int n = edge_resolve_query(q, sizeof q, 0x1234, "api.tandem.test", DNS_T_A, 1, addr, 20);
	CHECK(n > 0);
	dns_query pq;
	CHECK(dns_parse_query(q, (size_t)n, &pq) == DNS_PARSE_OK);
	CHECK_EQ_INT(pq.id, 0x1234);
	CHECK_EQ_INT(pq.qtype, DNS_T_A);
	CHECK(!(pq.flags & DNS_F_RD)); /* asking an authoritative server */
	CHECK(pq.edns && pq.ecs);
	CHECK_EQ_INT(pq.ecs_family, 1);
	CHECK_EQ_INT(pq.ecs_source, 20);
	CHECK(pq.ecs_addr[0] == 10 && pq.ecs_addr[1] == 1 && pq.ecs_addr[2] == 0); /* past /20: zero */
	dns_name want;
	CHECK(dns_name_from_text("api.tandem.test.", &want) == 0 && dns_name_equal(&pq.qname, &want));
	/* IPv6, no ECS, a buffer too small, a bad name */
	uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0xff, 0xff};
	n = edge_resolve_query(q, sizeof q, 7, "api.tandem.test", DNS_T_AAAA, 2, a6, 56);
	CHECK(n > 0 && dns_parse_query(q, (size_t)n, &pq) == DNS_PARSE_OK);
	CHECK(pq.ecs && pq.ecs_family == 2 && pq.ecs_source == 56 && pq.ecs_addr[6] == 0xff && pq.ecs_addr[7] == 0);
	n = edge_resolve_query(q, sizeof q, 7, "api.tandem.test", DNS_T_A, 0, a6, -1);
	CHECK(n > 0 && dns_parse_query(q, (size_t)n, &pq) == DNS_PARSE_OK && pq.edns && !pq.ecs);
	CHECK_EQ_INT(edge_resolve_query(q, 20, 7, "api.tandem.test", DNS_T_A, 1, addr, 32), -1);
	CHECK_EQ_INT(edge_resolve_query(q, sizeof q, 7, "a..b", DNS_T_A, 1, addr, 32), -1);
}

static void test_reply_addresses_and_ttl(void)
{
	uint8_t q[512];
	uint8_t addr[16] = {127, 0, 0, 8};
	int qn = edge_resolve_query(q, sizeof q, 99, "api.tandem.test", DNS_T_A, 1, addr, 32);
	msg m;
	reply_begin(&m, q, qn, 0, 2);
	rr_a(&m, "127.0.0.3", 10);
	rr_a(&m, "127.0.0.2", 7);
	char addrs[EDGE_RESOLVE_MAX_ADDRS][EDGE_RESOLVE_ADDR_TEXT];
	int n;
	uint32_t ttl;
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 99, "api.tandem.test", DNS_T_A, addrs, 8, &n, &ttl), 0);
	CHECK_EQ_INT(n, 2);
	CHECK_EQ_STR(addrs[0], "127.0.0.3");
	CHECK_EQ_STR(addrs[1], "127.0.0.2");
	CHECK_EQ_INT(ttl, 7);
	/* at most max reported */
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 99, "api.tandem.test", DNS_T_A, addrs, 1, &n, &ttl), 0);
	CHECK_EQ_INT(n, 1);
	/* not the reply to this query: another id, no QR, another name or type */
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 98, "api.tandem.test", DNS_T_A, addrs, 8, &n, &ttl), -1);
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 99, "www.tandem.test", DNS_T_A, addrs, 8, &n, &ttl), -1);
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 99, "api.tandem.test", DNS_T_AAAA, addrs, 8, &n, &ttl), -1);
	m.b[2] &= 0x7f;
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 99, "api.tandem.test", DNS_T_A, addrs, 8, &n, &ttl), -1);
	m.b[2] |= 0x80;
	/* every truncation of it is refused, never read past */
	for (size_t cut = 0; cut < m.n; cut++)
		CHECK(edge_resolve_reply(m.b, cut, 99, "api.tandem.test", DNS_T_A, addrs, 8, &n, &ttl) == -1);
}

static void test_reply_errors_and_negative(void)
{
	uint8_t q[512];
	uint8_t addr[16] = {127, 0, 0, 7};
	int qn = edge_resolve_query(q, sizeof q, 5, "api.tandem.test", DNS_T_A, 1, addr, 32);
	char addrs[EDGE_RESOLVE_MAX_ADDRS][EDGE_RESOLVE_ADDR_TEXT];
	int n;
	uint32_t ttl;
	msg m;
	reply_begin(&m, q, qn, DNS_R_SERVFAIL, 0);
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 5, "api.tandem.test", DNS_T_A, addrs, 8, &n, &ttl), -2);
	reply_begin(&m, q, qn, DNS_R_REFUSED, 0);
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 5, "api.tandem.test", DNS_T_A, addrs, 8, &n, &ttl), -2);
	reply_begin(&m, q, qn, DNS_R_NXDOMAIN, 0);
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 5, "api.tandem.test", DNS_T_A, addrs, 8, &n, &ttl), 0);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(ttl, 30);
	reply_begin(&m, q, qn, 0, 0); /* NODATA */
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 5, "api.tandem.test", DNS_T_A, addrs, 8, &n, &ttl), 0);
	CHECK_EQ_INT(n, 0);
	/* an A record of the wrong length */
	reply_begin(&m, q, qn, 0, 1);
	rr_a(&m, "127.0.0.2", 10);
	m.b[m.n - 5] = 5; /* rdlength 5 */
	m.b[m.n++] = 0;
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 5, "api.tandem.test", DNS_T_A, addrs, 8, &n, &ttl), -1);
	/* an owner that is a pointer to itself: refused, no loop */
	reply_begin(&m, q, qn, 0, 1);
	size_t at = m.n;
	put16(&m, 0xc000 | (unsigned)at);
	put16(&m, DNS_T_A);
	put16(&m, DNS_C_IN);
	put32(&m, 10);
	put16(&m, 4);
	put32(&m, 0x7f000002);
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 5, "api.tandem.test", DNS_T_A, addrs, 8, &n, &ttl), -1);
}

static void test_reply_follows_a_cname(void)
{
	uint8_t q[512];
	uint8_t addr[16] = {127, 0, 0, 7};
	int qn = edge_resolve_query(q, sizeof q, 6, "www.tandem.test", DNS_T_A, 1, addr, 32);
	msg m;
	reply_begin(&m, q, qn, 0, 3);
	/* www CNAME api (api written as "api" + a pointer to "tandem.test" at 16) */
	put16(&m, 0xc00c);
	put16(&m, DNS_T_CNAME);
	put16(&m, DNS_C_IN);
	put32(&m, 60);
	put16(&m, 6);
	size_t api_at = m.n;
	m.b[m.n++] = 3;
	memcpy(m.b + m.n, "api", 3);
	m.n += 3;
	put16(&m, 0xc000 | 16);
	/* an A at www itself, beside its CNAME: not believed (the target's is) */
	rr_a(&m, "10.9.9.9", 60);
	/* api A 127.0.0.2 */
	put16(&m, 0xc000 | (unsigned)api_at);
	put16(&m, DNS_T_A);
	put16(&m, DNS_C_IN);
	put32(&m, 10);
	put16(&m, 4);
	put32(&m, 0x7f000002);
	char addrs[EDGE_RESOLVE_MAX_ADDRS][EDGE_RESOLVE_ADDR_TEXT];
	int n;
	uint32_t ttl;
	CHECK_EQ_INT(edge_resolve_reply(m.b, m.n, 6, "www.tandem.test", DNS_T_A, addrs, 8, &n, &ttl), 0);
	CHECK_EQ_INT(n, 1);
	CHECK_EQ_STR(addrs[0], "127.0.0.2");
	CHECK_EQ_INT(ttl, 10);
}

int main(void)
{
	RUN(test_query_carries_ecs);
	RUN(test_reply_addresses_and_ttl);
	RUN(test_reply_errors_and_negative);
	RUN(test_reply_follows_a_cname);
	return TEST_SUMMARY();
}
