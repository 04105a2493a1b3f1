/*
 * fuzz_edgeresolve.c - libFuzzer target for the edge's stub resolver
 * (src/edge/resolve.c): a DNS reply from the network, read as the answer
 * to the edge's query for api.tandem.test A (id from the input's first two
 * bytes, so that whole replies are reached). Must never crash or read out
 * of bounds; what it reports is bounded by max and holds addresses only.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "edge/resolve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint16_t id = (uint16_t)(data[0] << 8 | data[1]);
	char addrs[3][EDGE_RESOLVE_ADDR_TEXT];
	int n = -1;
	uint32_t ttl = 0;
	for (int t = 0; t < 2; t++) {
		uint16_t qtype = t ? 28 : 1;
		int rc = edge_resolve_reply(data, size, id, "api.tandem.test", qtype, addrs, 3, &n, &ttl);
		assert(rc == 0 || rc == -1 || rc == -2);
		if (rc != 0)
			continue;
		assert(n >= 0 && n <= 3);
		for (int i = 0; i < n; i++) {
			unsigned char a[16];
			assert(inet_pton(t ? AF_INET6 : AF_INET, addrs[i], a) == 1);
		}
	}
	/* the query writer too: a name from the input */
	char name[300];
	size_t len = size - 2 < sizeof name - 1 ? size - 2 : sizeof name - 1;
	memcpy(name, data + 2, len);
	name[len] = '\0';
	uint8_t q[600];
	uint8_t ecs[16] = {10, 1, 2, 3};
	int qn = edge_resolve_query(q, sizeof q, id, name, 1, 1 + (data[0] & 1), ecs, data[1] % 129);
	assert(qn == -1 || (qn > 12 && (size_t)qn <= sizeof q));
	return 0;
}
