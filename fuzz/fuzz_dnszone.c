/*
 * fuzz_dnszone.c - libFuzzer target for the zone's record parser and the
 * answer built from it (src/dns/zone.c). Records come from the
 * deployment's config, written by an operator, but a mistake there must be
 * an error message, never a crash or a malformed answer.
 *
 * Input: lines "OWNER TYPE TTL RDATA..." added to a zone `fuzz.test` (with
 * an SOA first); TYPE ROUTE adds a routed name (RDATA: a route line,
 * route.h) and TYPE MAP a latency map line; the first line's owner is also
 * asked for, with every type of the types a zone holds, from a client
 * subnet, under a health view taken from the input's size. When the
 * input's size has bit 1 set the zone is signed (dnssec.h, a fixed key)
 * if dns_zone_check_dnssec accepts it, and the queries carry DO: every
 * RRset is signed, denials are compact NSECs. Checks: every answer reads
 * back (header, the question as asked, each record inside the message),
 * fits its buffer, and is authoritative unless REFUSED.
 */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "dns/zone.h"

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
		size_t rdlen = (size_t)(out[off + 8] << 8 | out[off + 9]);
		off += 10 + rdlen;
		assert(off <= len);
	}
	assert(off == len);
	int rcode = out[3] & 0xf;
	assert(rcode == DNS_R_REFUSED || (out[2] & 0x04)); /* AA */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	dns_name origin;
	assert(dns_name_from_text("fuzz.test", &origin) == 0);
	dns_zone *z = dns_zone_new(&origin);
	char err[256];
	assert(dns_zone_add(z, "@", "SOA", 60, "ns hostmaster 1 2 3 4 5", err, sizeof err) == 0);
	char first_owner[300] = "";
	dns_regions regions = {.n = 0};
	dns_latency_map *map = dns_latency_map_new();
	assert(map);
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char owner[300], type[16];
		unsigned ttl;
		int used = 0;
		if (sscanf(line, "%299s %15s %u %n", owner, type, &ttl, &used) != 3)
			continue;
		int rc;
		err[0] = '\0';
		if (strcmp(type, "ROUTE") == 0) {
			dns_route r;
			rc = dns_route_parse(line + used, &regions, 1, &r, err, sizeof err);
			assert(rc == 0 || rc == ERR_PARSE);
			if (rc == 0) {
				assert(r.n >= 1 && r.n <= DNS_REGIONS_MAX);
				rc = dns_zone_add_route(z, owner, &r, err, sizeof err);
			}
		} else if (strcmp(type, "MAP") == 0) {
			rc = dns_latency_map_add(map, line + used, &regions, 1, err, sizeof err);
			assert(rc == 0 || rc == ERR_PARSE || rc == ERR_LIMIT);
			rc = rc == ERR_LIMIT ? ERR_INVAL : rc;
		} else {
			rc = dns_zone_add(z, owner, type, ttl, line + used, err, sizeof err);
		}
		assert(rc == 0 || rc == ERR_PARSE || rc == ERR_INVAL);
		assert(rc == 0 || err[0]);
		if (!first_owner[0])
			snprintf(first_owner, sizeof first_owner, "%s", owner);
	}
	/* signed (a fixed key, the signer's cache kept across inputs) */
	static dnssec_signer *signer;
	bool sign = (size & 2) && dns_zone_check_dnssec(z, err, sizeof err) == 0;
	if (sign) {
		static const uint8_t priv[1][32] = {{0x19, 0x4e, 0x92, 0x9d, 0x0f, 0xce, 0xbb, 0xec, 0x42, 0xe5, 0x1b,
						      0xa6, 0xb8, 0x85, 0x08, 0xb8, 0x96, 0x6d, 0x79, 0x74, 0xf6, 0xcf,
						      0x43, 0xbf, 0xa2, 0x4d, 0x6c, 0xdf, 0xc1, 0x2d, 0xea, 0x64}};
		static const bool active[1] = {true};
		dnssec_keys *keys = NULL;
		assert(dnssec_keys_from_raw(&origin, priv, active, 1, &keys) == 0);
		dns_zone_set_dnssec(z, true);
		dns_zone_set_keys(z, keys);
		if (!signer) {
			signer = dnssec_signer_new(256);
			assert(signer);
			dnssec_signer_set_time(signer, 1800000000u);
		}
	}
	/* ask for the first owner (relative to the zone) */
	char qtext[700];
	snprintf(qtext, sizeof qtext, "%s.fuzz.test", first_owner[0] ? first_owner : "x");
	dns_query q;
	memset(&q, 0, sizeof q);
	if (dns_name_from_text(qtext, &q.qname) == 0) {
		static const uint16_t types[] = {DNS_T_A,   DNS_T_AAAA, DNS_T_CNAME, DNS_T_MX,  DNS_T_TXT,   DNS_T_SRV,
						 DNS_T_CAA, DNS_T_NS,   DNS_T_SOA,   DNS_T_ANY, DNS_T_DNSKEY, DNS_T_NSEC};
		q.id = 7;
		q.qclass = DNS_C_IN;
		q.edns = (size & 1) || sign;
		q.dnssec_ok = sign;
		q.udp_size = 1232;
		uint8_t out[65535];
		for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
			q.qtype = types[i];
			dns_zone *zones[] = {z};
			size_t cap = i % 2 ? 512 : sizeof out;
			dns_route_env env = {.health = (dns_health_view)(size * 2654435761u), .map = map, .rand = (uint32_t)i,
					     .signer = sign ? signer : NULL};
			q.ecs = i % 3 == 0;
			q.ecs_family = (uint16_t)(i % 2 ? 1 : 2);
			q.ecs_source = (uint8_t)(size % (q.ecs_family == 1 ? 33 : 129));
			memcpy(q.ecs_addr, data, size < 16 ? size : 16);
			size_t len = dns_answer(zones, 1, &q, out, cap, 1232, NULL, &env);
			check_answer(out, len, cap);
			assert(!sign || (out[3] & 0xf) != DNS_R_NXDOMAIN); /* compact denial */
		}
	}
	dns_latency_map_free(&map);
	dns_zone_free(&z);
	free(text);
	return 0;
}
