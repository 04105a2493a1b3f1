/*
 * zone.h - an authoritative zone in memory and the answer to one query
 * (RFC 1034 section 4.3.2, as an authoritative-only server runs it):
 *
 *   the zone: the longest origin that holds the name; none: REFUSED
 *   the name exists:     its records of the type (AA); a CNAME instead is
 *                        given and followed inside the zone (at most 8);
 *                        no record of the type: NODATA (NOERROR, the SOA in
 *                        the authority section)
 *   only names below it: an empty non-terminal: NODATA
 *   neither:             the wildcard `*.` at the closest encloser answers
 *                        with the query's name as owner; else NXDOMAIN with
 *                        the SOA
 *
 * The SOA in a negative answer has the TTL min(SOA TTL, SOA minimum)
 * (RFC 2308). AXFR/IXFR are refused (transfers need TSIG: not built), a
 * class other than IN is REFUSED, ANY is answered with every record set of
 * the name (small zones; RFC 8482 allows less). Delegations below the apex
 * are not supported: every name of the zone is answered from it.
 *
 * A zone is built once (dns_zone_add) and then only read: lookups take no
 * lock, so any number of threads may answer from one zone at once.
 */
#ifndef TANDEM_DNS_ZONE_H
#define TANDEM_DNS_ZONE_H

#include <stddef.h>
#include <stdint.h>

#include "dns/dnssec.h"
#include "dns/route.h"
#include "dns/wire.h"

/* One record. rdata is in wire form with names uncompressed; for NS,
 * CNAME, PTR, MX and SOA the names inside it are compressed when written
 * (RFC 3597), SRV's never. */
typedef struct dns_rr {
	dns_name owner;
	uint16_t type;
	uint32_t ttl;
	uint16_t rdlen;
	uint8_t rdata[];
} dns_rr;

typedef struct dns_zone dns_zone;

/* A new, empty zone for origin (its SOA must be added before it answers).
 * NULL when out of memory. */
dns_zone *dns_zone_new(const dns_name *origin);
void dns_zone_free(dns_zone **z);
const dns_name *dns_zone_origin(const dns_zone *z);

/* Add a record given in presentation form ("A", "127.0.0.2"; "MX", "10
 * mail.example."; "TXT", "\"v=spf1 -all\""; "SOA", "ns1 hostmaster 1 3600
 * 600 86400 10"), names relative to the origin unless they end in a dot,
 * "@" the origin. The owner must be within the zone. 0, or ERR_PARSE with
 * the reason in err, ERR_INVAL (owner outside the zone, a CNAME beside
 * other data, a second SOA or an SOA not at the apex), ERR_NOMEM. */
int dns_zone_add(dns_zone *z, const char *owner, const char *type, uint32_t ttl, const char *rdata, char *err,
		 size_t errcap);
/* The same with names relative to origin (a zone file's $ORIGIN, within
 * or equal to the zone's) instead of the zone's; line is kept for
 * dns_zone_check_aliases' message. Type "ALIAS" (RDATA: one target name
 * within the zone) makes owner an alias, as Route 53's alias records: it
 * answers A and AAAA with the target's addresses (its routed answer with
 * its ECS scope, or its static records; a CNAME or alias at the target is
 * followed inside the zone), signed as owner's, never a CNAME, so it may
 * stand at the apex beside SOA and NS. An alias cannot stand beside A,
 * AAAA, CNAME, a route or another alias (ERR_INVAL). */
int dns_zone_add_at(dns_zone *z, const dns_name *origin, int line, const char *owner, const char *type, uint32_t ttl,
		    const char *rdata, char *err, size_t errcap);
/* After every record is added: each alias' target must be a name of the
 * zone. 0, or ERR_INVAL with the reason in err and the alias' line in
 * *line. */
int dns_zone_check_aliases(const dns_zone *z, int *line, char *err, size_t errcap);
/* Add a routed record set (route.h) at owner (relative as above): its A
 * and AAAA answers are chosen per query. 0, or ERR_PARSE (a bad name) /
 * ERR_INVAL (outside the zone; a CNAME, A or AAAA records or another route
 * at that name) with the reason in err, ERR_NOMEM. */
int dns_zone_add_route(dns_zone *z, const char *owner, const dns_route *route, char *err, size_t errcap);
/* The zone's routed names, for listing (certificates name them): the i-th
 * (0 <= i < dns_zone_routes) owner, and its record set in *route. */
size_t dns_zone_routes(const dns_zone *z);
const dns_name *dns_zone_route(const dns_zone *z, size_t i, const dns_route **route);
/* Does the zone have its SOA (it answers only then)? */
int dns_zone_ready(const dns_zone *z);

/* DNSSEC (dnssec.h, docs/DNS.md "DNSSEC"). `dnssec = on` in the config
 * marks the zone (dns_zone_set_dnssec); dns_zone_check_dnssec says why a
 * marked zone cannot be signed (an NS below the apex: delegations are not
 * supported; an RRset over DNSSEC_RRSET_MAX records or DNSSEC_SIGNED_MAX
 * bytes): 0, or ERR_INVAL with the reason in err. The server then gives
 * the zone its keys (dns_zone_set_keys takes them; freed with the zone).
 * A zone with keys publishes its DNSKEY RRset at the apex and, to a query
 * with DO=1 and a signer in the dns_route_env, signs every RRset it
 * answers and denies with compact NSEC answers (RFC 9824): a name that
 * does not exist gets NOERROR and an NSEC at the name with the types
 * RRSIG, NSEC and NXNAME; a type that does not exist gets an NSEC at the
 * name with the types that do. Without DO, answers are as unsigned. */
void dns_zone_set_dnssec(dns_zone *z, bool on);
bool dns_zone_dnssec(const dns_zone *z);
int dns_zone_check_dnssec(const dns_zone *z, char *err, size_t errcap);
void dns_zone_set_keys(dns_zone *z, dnssec_keys *keys);
const dnssec_keys *dns_zone_keys(const dns_zone *z);

/* What a routed answer depends on (route.h). */
typedef struct dns_route_env {
	dns_health_view health;         /* one load of the checker's view per answer */
	const dns_latency_map *map;     /* NULL: routes answer in their own order */
	const struct sockaddr *from;    /* the resolver (used without a Client Subnet); may be NULL */
	uint32_t rand;                  /* for weighted routes */
	dnssec_signer *signer;          /* this thread's (dnssec.h); NULL: answers are never signed */
} dns_route_env;

/* The answer to q from the zone among zones[0..n) that holds its name, in
 * buf[0..cap) (cap: the client's UDP size, or 65535 on TCP; at least 512).
 * Records that do not fit are left out and TC set (on UDP the client then
 * asks again over TCP). With EDNS, an OPT is added (our UDP size
 * udp_size, DO echoed; an ECS option echoed with scope 0 for a static
 * answer, which holds for every subnet; when the query had a client cookie and
 * server_cookie is given, the COOKIE option with both, RFC 7873).
 * A routed name answers with the addresses route.h's policy picks under
 * env (NULL: every region healthy, no latency map); a latency-routed
 * answer gives the ECS scope its latency map found (dns_prefs.scope).
 * Returns the message length (> 0), or 0 when nothing should be sent. */
size_t dns_answer(dns_zone *const *zones, int n, const dns_query *q, uint8_t *buf, size_t cap, uint16_t udp_size,
		  const uint8_t *server_cookie, const dns_route_env *env);

/* A zone transfer (RFC 5936) of the zone whose apex q asks for: the SOA,
 * every other record, each routed name as its configured record set (every
 * region's addresses), each alias as its target's addresses, the SOA
 * again; DNSSEC records are not transferred (soa_only: the SOA alone, an
 * IXFR's answer to a secondary that is up to date, RFC 1995 section 2). Built one message at a time
 * in buf[0..cap) (AA, the question in the first only) and handed to sink,
 * which may change buf past the message (it signs it) before the next one
 * is built. 0, ERR_INVAL (no SOA), ERR_LIMIT (cap too small), or the
 * sink's error (the transfer stops at once). */
int dns_zone_axfr(const dns_zone *z, const dns_query *q, bool soa_only, uint8_t *buf, size_t cap,
		  int (*sink)(void *arg, uint8_t *msg, size_t len), void *arg);
/* The SOA's serial (0 without an SOA). */
uint32_t dns_zone_serial(const dns_zone *z);

/* The answer to a query that did not parse (r from dns_parse_query):
 * FORMERR, NOTIMP or BADVERS with the id, no question for FORMERR; 0 for
 * DNS_PARSE_DROP. */
size_t dns_answer_error(const uint8_t *query, size_t qlen, dns_parse_result r, uint8_t *buf, size_t cap,
			uint16_t udp_size);

#endif
