/*
 * resolve.h - the edge's stub resolver for its regions' latency-routed name
 * (issue 12, "Origins"; docs/EDGE.md "Origins from tandem dns").
 *
 * The design record's edge does not pick a region itself: it resolves the
 * regions' latency-routed name (`api.tandem.test`) and goes where DNS
 * says. An edge_resolver asks the configured servers (tandem dns) for the
 * name's A and AAAA records over UDP, with an EDNS Client Subnet option
 * (RFC 7871) carrying the edge's own subnet, so that the answer is the one
 * for the edge's location, not for wherever its queries leave from. The
 * addresses answered are reported to the caller, which puts the origins at
 * those addresses first (the others stay as failover targets).
 *
 *   asked --answer--> reported; asked again at its TTL (1..300 s)
 *   asked --no answer in 1 s / SERVFAIL / a mismatched id--> the next server;
 *         all failed: the last answer is kept, asked again in 1 s
 *
 * A reply is believed only from the server asked, with the query's id and
 * question (a spoofed or stray datagram is dropped). The query and reply
 * codecs are pure functions (unit-tested, fuzzed: fuzz/fuzz_edgeresolve.c).
 */
#ifndef TANDEM_EDGE_RESOLVE_H
#define TANDEM_EDGE_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "edge/edgeconf.h"

struct event_base;

#define EDGE_RESOLVE_MAX_ADDRS 8
#define EDGE_RESOLVE_ADDR_TEXT 46 /* INET6_ADDRSTRLEN */

typedef struct edge_resolver edge_resolver;

/* The addresses answered for the name (n may be 0: the name has none) and
 * the TTL they hold for; called after every successful resolution. */
typedef void (*edge_resolve_cb)(void *arg, const char addrs[][EDGE_RESOLVE_ADDR_TEXT], int n, uint32_t ttl);

/* Start resolving ec->resolve through ec->resolvers (the first query at
 * once). NULL when out of memory or ec names no resolver. */
edge_resolver *edge_resolver_new(struct event_base *base, const edge_conf *ec, edge_resolve_cb cb, void *arg);
void edge_resolver_free(edge_resolver **r);

/* A query for name (text, final dot optional) of type qtype (A: 1, AAAA:
 * 28) with id, RD clear, an OPT record of udp size 1232 and, when
 * ecs_family is 1 or 2, an ECS option of ecs_prefix bits of ecs_addr.
 * Returns its length, or -1 (a bad name, cap too small). */
int edge_resolve_query(uint8_t *out, size_t cap, uint16_t id, const char *name, uint16_t qtype, int ecs_family,
		       const uint8_t ecs_addr[16], int ecs_prefix);

/* Read a reply to that query: 0 with the qtype addresses of the answer
 * section owned by the question's name (or by the target of a CNAME
 * chain within the answer) in addrs (at most max; *n of them) and the
 * smallest of their TTLs in *ttl (NODATA and NXDOMAIN: 0 addresses, the
 * TTL 30); -1 when it is not a reply to this query (id, QR, question) or
 * is malformed; -2 for SERVFAIL, REFUSED and the other error codes. */
int edge_resolve_reply(const uint8_t *msg, size_t len, uint16_t id, const char *name, uint16_t qtype,
		       char addrs[][EDGE_RESOLVE_ADDR_TEXT], int max, int *n, uint32_t *ttl);

#endif
