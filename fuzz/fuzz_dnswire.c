/*
 * fuzz_dnswire.c - libFuzzer target for the DNS wire parser
 * (src/dns/wire.c): every query of `tandem dns` comes from anyone on the
 * network, over UDP, in one datagram.
 *
 * Checks: the parser never reads outside the input (ASan) and always ends
 * (compression pointers only go backwards); a parsed name is at most 255
 * bytes and reads back to itself through text; for a query that parses,
 * an answer is written into a 512-byte buffer (question echoed, a CNAME,
 * an A, an OPT echoing ECS) or fails with ERR_LIMIT and rolls back, and
 * what was written reads back: its names are equal to what was written,
 * the header's counts match, the length never exceeds the capacity.
 */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "dns/wire.h"

static void names_round_trip(const dns_name *n)
{
	assert(n->len >= 1 && n->len <= DNS_NAME_MAX);
	char text[4 * DNS_NAME_MAX + 2];
	dns_name_to_text(n, text, sizeof text);
	dns_name back;
	assert(dns_name_from_text(text, &back) == 0);
	assert(dns_name_equal(n, &back));
	assert(dns_name_within(n, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	dns_query q;
	dns_parse_result r = dns_parse_query(data, size, &q);
	/* any offset as a name start: ends, stays inside */
	for (size_t off = 0; off < size && off < 64; off += 7) {
		size_t at = off;
		dns_name n;
		if (dns_name_read(data, size, &at, &n) == 0) {
			assert(at > off && at <= size);
			names_round_trip(&n);
		}
	}
	if (r != DNS_PARSE_OK)
		return 0;
	names_round_trip(&q.qname);
	if (q.ecs)
		assert((q.ecs_family == 1 && q.ecs_source <= 32) || (q.ecs_family == 2 && q.ecs_source <= 128));
	uint8_t out[512];
	dns_writer w;
	if (dns_w_begin(&w, out, sizeof out, &q, DNS_R_NOERROR, true) != 0) {
		assert(dns_w_length(&w) == DNS_HEADER_BYTES);
		return 0;
	}
	dns_name target;
	dns_name_suffix(&q.qname, 1, &target);
	size_t rd;
	dns_mark m = dns_w_mark(&w);
	int rc = dns_w_rr_begin(&w, &q.qname, DNS_T_CNAME, DNS_C_IN, 10, &rd);
	if (rc == 0)
		rc = dns_w_name(&w, &target, true);
	if (rc == 0)
		rc = dns_w_rr_end(&w, rd);
	if (rc != 0) {
		assert(rc == ERR_LIMIT);
		dns_w_rollback(&w, &m);
	}
	m = dns_w_mark(&w);
	rc = dns_w_rr_begin(&w, &target, DNS_T_A, DNS_C_IN, 10, &rd);
	if (rc == 0)
		rc = dns_w_bytes(&w, "\x7f\x00\x00\x02", 4);
	if (rc == 0)
		rc = dns_w_rr_end(&w, rd);
	if (rc != 0)
		dns_w_rollback(&w, &m);
	if (q.edns) {
		m = dns_w_mark(&w);
		rc = dns_w_opt_begin(&w, 1232, 0, q.dnssec_ok, &rd);
		if (rc == 0 && q.ecs) {
			uint8_t ecs[20];
			ecs[0] = (uint8_t)(q.ecs_family >> 8);
			ecs[1] = (uint8_t)q.ecs_family;
			ecs[2] = q.ecs_source;
			ecs[3] = q.ecs_source;
			size_t bytes = (size_t)(q.ecs_source + 7) / 8;
			memcpy(ecs + 4, q.ecs_addr, bytes);
			rc = dns_w_opt_option(&w, 8, ecs, (uint16_t)(4 + bytes));
		}
		if (rc == 0)
			rc = dns_w_rr_end(&w, rd);
		if (rc != 0)
			dns_w_rollback(&w, &m);
	}
	size_t len = dns_w_length(&w);
	assert(len <= sizeof out);
	/* read it back */
	unsigned an = (unsigned)(out[6] << 8 | out[7]), ar = (unsigned)(out[10] << 8 | out[11]);
	assert((out[4] << 8 | out[5]) == 1);
	size_t off = DNS_HEADER_BYTES;
	dns_name n;
	assert(dns_name_read(out, len, &off, &n) == 0);
	assert(n.len == q.qname.len && memcmp(n.wire, q.qname.wire, n.len) == 0); /* case kept */
	off += 4;
	for (unsigned i = 0; i < an + ar; i++) {
		assert(dns_name_read(out, len, &off, &n) == 0);
		assert(off + 10 <= len);
		unsigned type = (unsigned)(out[off] << 8 | out[off + 1]);
		unsigned rdlen = (unsigned)(out[off + 8] << 8 | out[off + 9]);
		off += 10;
		assert(off + rdlen <= len);
		if (type == DNS_T_CNAME) {
			size_t at = off;
			assert(dns_name_read(out, len, &at, &n) == 0 && at == off + rdlen);
			assert(dns_name_equal(&n, &target));
		}
		off += rdlen;
	}
	assert(off == len);
	return 0;
}
