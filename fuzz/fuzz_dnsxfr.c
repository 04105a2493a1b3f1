/*
 * fuzz_dnsxfr.c - libFuzzer target for the transfer path (src/dns/xfr.c):
 * a message from a configured secondary's address, read by the wire
 * parser, and when it parses, answered by dns_xfr_answer (its TSIG read
 * and checked; the zone sent, signed, when it verifies, which random
 * input does not: the check must then refuse cleanly). Checks: every
 * message handed out reads back (header, records inside it) and the
 * answer to anything but a verified request is one message without
 * answer records.
 */
#undef NDEBUG
#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "dns/xfr.h"

static int messages;

static int check(void *arg, const uint8_t *out, size_t len)
{
	assert(len >= DNS_HEADER_BYTES && len <= 65535);
	unsigned qd = (unsigned)(out[4] << 8 | out[5]), an = (unsigned)(out[6] << 8 | out[7]),
		 counts = an + (unsigned)(out[8] << 8 | out[9]) + (unsigned)(out[10] << 8 | out[11]);
	size_t off = DNS_HEADER_BYTES;
	dns_name n;
	if (qd == 1) {
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
	assert(an == 0); /* (no random input carries a valid MAC) */
	messages++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static dns_zone *zone;
	static dns_secondary list[1];
	static int nlist;
	if (!zone) {
		log_setup("fuzz", (log_level)(LOG_ERROR + 1)); /* refusal lines by the million */
		dns_name origin;
		char err[200];
		assert(dns_name_from_text("tandem.test", &origin) == 0);
		zone = dns_zone_new(&origin);
		assert(dns_zone_add(zone, "@", "SOA", 60, "ns1 hostmaster 1 2 3 4 5", err, sizeof err) == 0);
		assert(dns_zone_add(zone, "www", "A", 60, "127.0.0.1", err, sizeof err) == 0);
		assert(dns_xfr_parse_secondaries("127.0.0.1 key=xfr1", list, &nlist, err, sizeof err) == 0);
		list[0].key.name = list[0].key_name;
		memset(list[0].key.secret, 7, 32);
		list[0].key.len = 32;
	}
	dns_query q;
	if (size > 65535 || dns_parse_query(data, size, &q) != DNS_PARSE_OK)
		return 0;
	struct sockaddr_in a = {.sin_family = AF_INET};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	messages = 0;
	dns_zone *zones[] = {zone};
	int rc = dns_xfr_answer(zones, 1, list, nlist, &q, data, size, (struct sockaddr *)&a, 1800000000u, check, NULL);
	assert(rc == 0);
	assert(messages == 1);
	return 0;
}
