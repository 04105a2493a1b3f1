/*
 * test_dnswire.c - unit tests for src/dns/wire.c: names in text and wire
 * form, reading queries (what a real `dig` sends, EDNS with Client Subnet
 * and a cookie) and the malformed ones an attacker sends (compression
 * loops and forward pointers, oversized labels and names, truncation,
 * bad ECS), and writing answers (compression checked by reading the
 * message back, truncation rolling back whole records).
 */
#include <string.h>

#include "core/err.h"
#include "dns/wire.h"
#include "test.h"

static dns_name name(const char *text)
{
	dns_name n;
	CHECK_EQ_INT(dns_name_from_text(text, &n), 0);
	return n;
}

/* A query as dig 9.18 sends it: id 0x1234, RD, one question, an OPT with
 * UDP 1232, DO, and a cookie. */
static size_t dig_query(uint8_t *p, const char *qname, uint16_t qtype)
{
	size_t n = 0;
	const uint8_t head[] = {0x12, 0x34, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1};
	memcpy(p, head, sizeof head);
	n = sizeof head;
	dns_name q = name(qname);
	memcpy(p + n, q.wire, q.len);
	n += q.len;
	p[n++] = (uint8_t)(qtype >> 8);
	p[n++] = (uint8_t)qtype;
	p[n++] = 0;
	p[n++] = 1;
	const uint8_t opt[] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
	memcpy(p + n, opt, sizeof opt);
	return n + sizeof opt;
}

static void test_names_in_text_and_wire(void)
{
	dns_name a = name("Api.Tandem.TEST.");
	CHECK_EQ_INT(a.len, 17);
	CHECK_EQ_INT(dns_name_labels(&a), 3);
	char text[300];
	dns_name_to_text(&a, text, sizeof text);
	CHECK_EQ_STR(text, "Api.Tandem.TEST."); /* case kept */
	dns_name b = name("api.tandem.test");
	CHECK(dns_name_equal(&a, &b));
	dns_name zone = name("tandem.test");
	CHECK(dns_name_within(&a, &zone));
	CHECK(dns_name_within(&zone, &zone));
	dns_name other = name("xtandem.test");
	CHECK(!dns_name_within(&other, &zone)); /* a suffix of bytes, not of labels */
	dns_name root = name(".");
	CHECK_EQ_INT(root.len, 1);
	CHECK(dns_name_within(&a, &root));
	dns_name parent;
	dns_name_suffix(&a, 1, &parent);
	CHECK(dns_name_equal(&parent, &zone));
	dns_name esc = name("a\\.b\\065.test");
	CHECK_EQ_INT(esc.wire[0], 4); /* "a.bA" is one label */
	dns_name_to_text(&esc, text, sizeof text);
	CHECK_EQ_STR(text, "a\\.bA.test.");
	dns_name n;
	CHECK_EQ_INT(dns_name_from_text("a..b", &n), ERR_PARSE);
	char label[70];
	memset(label, 'x', 64);
	label[64] = '\0';
	CHECK_EQ_INT(dns_name_from_text(label, &n), ERR_PARSE); /* a 64-byte label */
	label[63] = '\0';
	CHECK_EQ_INT(dns_name_from_text(label, &n), 0);
	char longname[300] = "";
	for (int i = 0; i < 4; i++) /* 4 x 64 = 256 bytes with the root: one over */
		strcat(longname, i ? ".xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
				   : "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	CHECK_EQ_INT(dns_name_from_text(longname, &n), ERR_PARSE);
	longname[strlen(longname) - 2] = '\0'; /* 254 + root = 255: fits */
	CHECK_EQ_INT(dns_name_from_text(longname, &n), 0);
	CHECK_EQ_INT(n.len, 255);
}

static void test_a_dig_query_parses(void)
{
	uint8_t p[512];
	size_t n = dig_query(p, "Api.tandem.test", DNS_T_AAAA);
	dns_query q;
	CHECK_EQ_INT(dns_parse_query(p, n, &q), DNS_PARSE_OK);
	CHECK_EQ_INT(q.id, 0x1234);
	CHECK(q.flags & DNS_F_RD);
	CHECK_EQ_INT(q.qtype, DNS_T_AAAA);
	CHECK_EQ_INT(q.qclass, DNS_C_IN);
	char text[300];
	dns_name_to_text(&q.qname, text, sizeof text);
	CHECK_EQ_STR(text, "Api.tandem.test.");
	CHECK(q.edns);
	CHECK_EQ_INT(q.udp_size, 1232);
	CHECK(q.dnssec_ok);
	CHECK(q.cookie);
	CHECK_EQ_INT(q.server_cookie_len, 0);
	CHECK_EQ_INT(q.client_cookie[7], 8);
	CHECK(!q.ecs);
}

static void test_ecs_option(void)
{
	uint8_t p[512];
	size_t n = dig_query(p, "api.tandem.test", DNS_T_A);
	/* replace the cookie with ECS 10.1.2.0/24 */
	size_t opt_rdlen = n - 12 - 2;
	n -= 12;
	const uint8_t ecs[] = {0, 8, 0, 7, 0, 1, 24, 0, 10, 1, 2};
	memcpy(p + n, ecs, sizeof ecs);
	n += sizeof ecs;
	p[opt_rdlen] = 0;
	p[opt_rdlen + 1] = sizeof ecs;
	dns_query q;
	CHECK_EQ_INT(dns_parse_query(p, n, &q), DNS_PARSE_OK);
	CHECK(q.ecs);
	CHECK_EQ_INT(q.ecs_family, 1);
	CHECK_EQ_INT(q.ecs_source, 24);
	CHECK_EQ_INT(q.ecs_addr[0], 10);
	CHECK_EQ_INT(q.ecs_addr[2], 2);
	CHECK_EQ_INT(q.ecs_addr[3], 0);
	/* host bits set past the prefix: FORMERR (RFC 7871 7.1.2) */
	p[n - 1] = 3;
	p[n - 5] = 23; /* source /23: 10.1.3.0 has a bit past it */
	CHECK_EQ_INT(dns_parse_query(p, n, &q), DNS_PARSE_FORMERR);
	p[n - 5] = 24;
	p[n - 4] = 1; /* a scope in a query */
	CHECK_EQ_INT(dns_parse_query(p, n, &q), DNS_PARSE_FORMERR);
}

static void test_malformed_queries(void)
{
	uint8_t p[512];
	dns_query q;
	size_t n = dig_query(p, "a.test", DNS_T_A);
	/* every truncation: never OK past the question's end, never a crash */
	for (size_t k = 0; k < n; k++) {
		dns_parse_result r = dns_parse_query(p, k, &q);
		CHECK(k < DNS_HEADER_BYTES ? r == DNS_PARSE_DROP : r == DNS_PARSE_FORMERR);
	}
	/* a response is never answered */
	p[2] |= 0x80;
	CHECK_EQ_INT(dns_parse_query(p, n, &q), DNS_PARSE_DROP);
	p[2] &= 0x7f;
	/* opcode 2 (STATUS): NOTIMP */
	p[2] |= 2 << 3;
	CHECK_EQ_INT(dns_parse_query(p, n, &q), DNS_PARSE_NOTIMP);
	p[2] &= (uint8_t)~(0xf << 3);
	/* EDNS version 1: BADVERS */
	size_t opt = 12 + 8 + 4;
	p[opt + 6] = 1;
	CHECK_EQ_INT(dns_parse_query(p, n, &q), DNS_PARSE_BADVERS);
	p[opt + 6] = 0;
	CHECK_EQ_INT(dns_parse_query(p, n, &q), DNS_PARSE_OK);
	/* two questions */
	p[5] = 2;
	CHECK_EQ_INT(dns_parse_query(p, n, &q), DNS_PARSE_FORMERR);
	p[5] = 1;

	/* compression: a pointer to itself, a pointer forward, a loop of two */
	uint8_t m[64] = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
	m[12] = 0xc0;
	m[13] = 12; /* points at itself */
	m[14] = 0;
	m[15] = 1;
	m[16] = 0;
	m[17] = 1;
	CHECK_EQ_INT(dns_parse_query(m, 18, &q), DNS_PARSE_FORMERR);
	m[13] = 14; /* forward */
	CHECK_EQ_INT(dns_parse_query(m, 18, &q), DNS_PARSE_FORMERR);
	uint8_t loop[] = {1, 'a', 0xc0, 2, 0xc0, 0}; /* 0: "a" then a pointer to 2, which points at 0 */
	CHECK_EQ_INT(dns_name_read(loop, sizeof loop, &(size_t){4}, &(dns_name){0}), ERR_PARSE);
	/* a label type 01 */
	m[12] = 0x41;
	CHECK_EQ_INT(dns_parse_query(m, 18, &q), DNS_PARSE_FORMERR);

	/* a name over 255 bytes made of pointers to repeated labels: each
	 * pointer goes backwards, but the assembled name is too long */
	uint8_t big[1200];
	size_t b = 0;
	memset(big, 0, 12);
	big[5] = 1;
	b = 12;
	size_t prev = 0;
	for (int i = 0; i < 40; i++) {
		size_t here = b;
		big[b++] = 6;
		memcpy(big + b, "abcdef", 6);
		b += 6;
		if (i == 0) {
			big[b++] = 0;
		} else {
			big[b++] = (uint8_t)(0xc0 | (prev >> 8));
			big[b++] = (uint8_t)prev;
		}
		prev = here;
	}
	dns_name out;
	size_t at = prev;
	CHECK_EQ_INT(dns_name_read(big, b, &at, &out), ERR_PARSE); /* 40 x 7 > 255 */
	at = 12 + 8 + 9 * 20; /* the 22nd: 22 labels x 7 + 1 = 155 bytes: fine */
	CHECK_EQ_INT(dns_name_read(big, b, &at, &out), 0);
	CHECK_EQ_INT(out.len, 155);
	CHECK_EQ_INT(at, 12 + 8 + 9 * 21); /* the cursor moved past the first pointer only */
}

/* Read the name at *off of a written message (checks the writer's output
 * the way a resolver reads it). */
static dns_name read_back(const uint8_t *msg, size_t n, size_t *off)
{
	dns_name out = {0};
	CHECK_EQ_INT(dns_name_read(msg, n, off, &out), 0);
	return out;
}

static void test_writer_compresses_and_truncates(void)
{
	uint8_t p[512];
	size_t n = dig_query(p, "API.tandem.test", DNS_T_CNAME);
	dns_query q;
	CHECK_EQ_INT(dns_parse_query(p, n, &q), DNS_PARSE_OK);
	uint8_t out[512];
	dns_writer w;
	CHECK_EQ_INT(dns_w_begin(&w, out, sizeof out, &q, DNS_R_NOERROR, true), 0);
	dns_w_flags(&w, DNS_F_AA, 0);
	size_t rd;
	dns_name target = name("eu.api.tandem.test");
	CHECK_EQ_INT(dns_w_rr_begin(&w, &q.qname, DNS_T_CNAME, DNS_C_IN, 10, &rd), 0);
	CHECK_EQ_INT(dns_w_name(&w, &target, true), 0);
	CHECK_EQ_INT(dns_w_rr_end(&w, rd), 0);
	CHECK_EQ_INT(dns_w_rr_begin(&w, &target, DNS_T_A, DNS_C_IN, 10, &rd), 0);
	CHECK_EQ_INT(dns_w_bytes(&w, (uint8_t[]){127, 0, 0, 2}, 4), 0);
	CHECK_EQ_INT(dns_w_rr_end(&w, rd), 0);
	size_t len = dns_w_length(&w);
	/* header 12, question 17 + 4, answer 1: owner 2 (pointer), 10, rdata
	 * "eu" 3 + pointer 2 (to "api..." of the question? no: the question's
	 * "API" is a different label only by case; compression ignores case) */
	CHECK(len < 12 + 21 + (17 + 10 + 20) + (20 + 10 + 4)); /* shorter than uncompressed */
	CHECK_EQ_INT(out[2] & 0x84, 0x84);  /* QR, AA */
	CHECK_EQ_INT(out[3] & 0x0f, 0);
	CHECK_EQ_INT(out[7], 2);            /* ancount */
	/* read everything back as a client would */
	size_t off = 12;
	dns_name qn = read_back(out, len, &off);
	char text[300];
	dns_name_to_text(&qn, text, sizeof text);
	CHECK_EQ_STR(text, "API.tandem.test."); /* the question as asked */
	off += 4;
	dns_name owner = read_back(out, len, &off);
	CHECK(dns_name_equal(&owner, &q.qname));
	off += 10;
	dns_name t = read_back(out, len, &off);
	CHECK(dns_name_equal(&t, &target));
	dns_name owner2 = read_back(out, len, &off);
	CHECK(dns_name_equal(&owner2, &target));
	CHECK_EQ_INT(off + 10 + 4, len);

	/* truncation: a buffer of 60 bytes holds the header, the question and
	 * the CNAME, not the A: the A fails and rollback leaves 1 answer */
	CHECK_EQ_INT(dns_w_begin(&w, out, 60, &q, DNS_R_NOERROR, true), 0);
	CHECK_EQ_INT(dns_w_rr_begin(&w, &q.qname, DNS_T_CNAME, DNS_C_IN, 10, &rd), 0);
	CHECK_EQ_INT(dns_w_name(&w, &target, true), 0);
	CHECK_EQ_INT(dns_w_rr_end(&w, rd), 0);
	dns_mark m = dns_w_mark(&w);
	dns_name far = name("a-rather-long-name-that-does-not-compress.example");
	int rc = dns_w_rr_begin(&w, &far, DNS_T_A, DNS_C_IN, 10, &rd);
	if (rc == 0)
		rc = dns_w_bytes(&w, (uint8_t[]){127, 0, 0, 2}, 4);
	CHECK_EQ_INT(rc, ERR_LIMIT);
	dns_w_rollback(&w, &m);
	dns_w_flags(&w, DNS_F_TC, 0);
	CHECK_EQ_INT(out[7], 1);
	CHECK(dns_w_length(&w) <= 60);
	CHECK(out[2] & 0x02); /* TC */

	/* an OPT with BADVERS: rcode 16's low bits (0) in the header, its high
	 * bits (1) in the OPT's TTL, version 0 */
	CHECK_EQ_INT(dns_w_begin(&w, out, sizeof out, &q, DNS_R_BADVERS, true), 0);
	CHECK_EQ_INT(dns_w_opt_begin(&w, 1232, DNS_R_BADVERS, false, &rd), 0);
	CHECK_EQ_INT(dns_w_rr_end(&w, rd), 0);
	CHECK_EQ_INT(out[3] & 0xf, 0);
	CHECK_EQ_INT(out[11], 1);           /* arcount */
	size_t opt = 12 + 17 + 4;           /* after the question */
	CHECK_EQ_INT(out[opt], 0);          /* owner: the root */
	CHECK_EQ_INT(out[opt + 1] << 8 | out[opt + 2], DNS_T_OPT);
	CHECK_EQ_INT(out[opt + 3] << 8 | out[opt + 4], 1232);
	CHECK_EQ_INT(out[opt + 5], 1);      /* extended rcode: 16 >> 4 */
	CHECK_EQ_INT(out[opt + 6], 0);      /* version 0 */
	/* read back as a query (QR off): it parses, version 0 */
	uint8_t copy[512];
	memcpy(copy, out, dns_w_length(&w));
	copy[2] &= 0x7f;
	dns_query back;
	CHECK_EQ_INT(dns_parse_query(copy, dns_w_length(&w), &back), DNS_PARSE_OK);
	CHECK(back.edns && back.udp_size == 1232);
}

int main(void)
{
	RUN(test_names_in_text_and_wire);
	RUN(test_a_dig_query_parses);
	RUN(test_ecs_option);
	RUN(test_malformed_queries);
	RUN(test_writer_compresses_and_truncates);
	return TEST_SUMMARY();
}
