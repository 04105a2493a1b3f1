/*
 * fuzz_zonefile.c - libFuzzer target for the RFC 1035 zone-file parser
 * (src/dns/zonefile.c) and the answers built from what it reads. A zone
 * file is written by an operator, but a mistake there must be a FILE:LINE
 * error, never a crash, an unbounded allocation or a malformed answer.
 *
 * Input: the text of a zone file for `fuzz.test`. Checks: the parser
 * returns 0 or ERR_CONFIG (with an error message that names a line);
 * when the zone has its SOA, answers to the apex and to the first owner
 * read back and fit their buffer.
 */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "dns/zonefile.h"

static void check_answer(const uint8_t *out, size_t len, size_t cap)
{
	assert(len >= DNS_HEADER_BYTES && len <= cap);
	unsigned counts = (unsigned)(out[6] << 8 | out[7]) + (unsigned)(out[8] << 8 | out[9]) +
			  (unsigned)(out[10] << 8 | out[11]);
	size_t off = DNS_HEADER_BYTES;
	dns_name n;
	if ((out[4] << 8 | out[5]) == 1) {
		assert(dns_name_read(out, len, &off, &n) == 0);
		off += 4;
	}
	for (unsigned i = 0; i < counts; i++) {
		assert(dns_name_read(out, len, &off, &n) == 0);
		assert(off + 10 <= len);
		off += 10 + (size_t)(out[off + 8] << 8 | out[off + 9]);
		assert(off <= len);
	}
	assert(off == len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	dns_name origin;
	assert(dns_name_from_text("fuzz.test", &origin) == 0);
	dns_zone *z = dns_zone_new(&origin);
	assert(z);
	char err[2048];
	int rc = dns_zonefile_parse(z, (const char *)data, size, "f.zone", 300, err, sizeof err);
	assert(rc == 0 || rc == ERR_CONFIG);
	assert(rc == 0 || strncmp(err, "f.zone:", 7) == 0);
	if (rc == 0 && dns_zone_ready(z)) {
		static const uint16_t types[] = {DNS_T_A, DNS_T_AAAA, DNS_T_TXT, DNS_T_ANY, DNS_T_SOA, DNS_T_MX};
		const char *names[] = {"fuzz.test", "a.fuzz.test", "www.fuzz.test"};
		uint8_t out[65535];
		for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
			dns_query q;
			memset(&q, 0, sizeof q);
			assert(dns_name_from_text(names[k], &q.qname) == 0);
			q.qclass = DNS_C_IN;
			for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
				q.qtype = types[i];
				dns_zone *zones[] = {z};
				size_t cap = i % 2 ? 512 : sizeof out;
				size_t len = dns_answer(zones, 1, &q, out, cap, 1232, NULL, NULL);
				check_answer(out, len, cap);
			}
		}
	}
	dns_zone_free(&z);
	return 0;
}
