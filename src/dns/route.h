/*
 * route.h - routed record sets (issue 11 section 2): one name answered
 * with one region's addresses, chosen per query by a policy and by the
 * regions' health, as Route 53's latency, failover and weighted records:
 *
 *   [zone tandem.test]
 *   route = api latency eu=127.0.0.2 us=127.0.0.3 ttl=10
 *   route = db failover eu=127.0.0.2 us=127.0.0.3
 *   route = img weighted eu=127.0.0.2,::2 us=127.0.0.3 weights=eu:3,us:1
 *
 *   [dns ns1]
 *   latency_map = 10.1.0.0/16 eu us, 127.0.0.2/32 eu us, default eu us
 *   latency_map = country:DE eu us, continent:NA us eu   ; with geoip_db
 *   geoip_db = GeoLite2-Country.mmdb                      ; optional (libmaxminddb)
 *
 * Policies (dns_route_choose), over the regions whose health is good:
 *   latency   the first region of the client's preference list (the
 *             latency map: the longest configured prefix holding the
 *             client's subnet, else its country, else its continent, else
 *             `default`; regions the list leaves out follow in the record
 *             set's order)
 *   failover  the current primary (learned from each region's /readyz:
 *             the healthy one saying "primary" with the highest epoch),
 *             else the first healthy region in the record set's order
 *   weighted  one region at random in proportion to its weight (weight 0:
 *             only when no region of weight > 0 is healthy)
 * and when no region is healthy, every region's addresses (fail open, as
 * Route 53 does: a health checker cut off from every region must not take
 * the name down).
 *
 * The health of the regions comes as a dns_health_view: a 32-bit word
 * (healthy mask, primary mask) that the health checker publishes
 * atomically (health.h), so the answer path reads it with one load and no
 * lock. Everything here is read-only once built: any thread may choose.
 */
#ifndef TANDEM_DNS_ROUTE_H
#define TANDEM_DNS_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_REGIONS_MAX 8        /* regions a deployment's DNS knows */
#define DNS_ROUTE_ADDRS_MAX 4    /* addresses per region and family in one record set */
#define DNS_LATENCY_MAP_MAX 256  /* entries of one latency map */
#define DNS_ROUTE_TTL_DEFAULT 10

/* The region names used by routes and latency maps, by index (a region
 * index is < DNS_REGIONS_MAX). */
typedef struct dns_regions {
	char name[DNS_REGIONS_MAX][32];
	int line[DNS_REGIONS_MAX];   /* where each was first named (config messages) */
	int n;
} dns_regions;

/* The index of region name, added when new (at line). -1 when the name is
 * not [a-z][a-z0-9-]{0,30} or the table is full. */
int dns_regions_index(dns_regions *t, const char *name, int line);

/* The health of every region as the answer path sees it: bit i of the low
 * byte: region i is healthy; bit i of the second byte: region i is the
 * current primary (at most one). */
typedef uint32_t dns_health_view;
#define DNS_VIEW_HEALTHY(v) ((v) & 0xffu)
#define DNS_VIEW_PRIMARY(v) (((v) >> 8) & 0xffu)
#define DNS_VIEW_ALL_HEALTHY 0xffu

typedef enum dns_policy { DNS_POLICY_LATENCY, DNS_POLICY_FAILOVER, DNS_POLICY_WEIGHTED } dns_policy;

typedef struct dns_route_region {
	uint8_t region;              /* index into dns_regions */
	uint16_t weight;             /* weighted only (default 1) */
	uint8_t n4, n6;
	uint8_t a4[DNS_ROUTE_ADDRS_MAX][4];
	uint8_t a6[DNS_ROUTE_ADDRS_MAX][16];
} dns_route_region;

typedef struct dns_route {
	dns_policy policy;
	uint32_t ttl;
	int n;                       /* regions, in the record set's order */
	dns_route_region r[DNS_REGIONS_MAX];
} dns_route;

/* Read "POLICY REGION=ADDR[,ADDR...]... [ttl=N] [weights=REGION:W,...]"
 * (what follows the owner of a `route =` line). Regions are named into t.
 * 0, or ERR_PARSE with the reason in err (out is then undefined). */
int dns_route_parse(const char *text, dns_regions *t, int line, dns_route *out, char *err, size_t errcap);

/* A client's ordered region preference and the ECS scope it holds for:
 * the prefix length around the client's address within which every
 * address gets the same list. */
typedef struct dns_prefs {
	uint8_t region[DNS_REGIONS_MAX];
	int n;
	int scope;
} dns_prefs;

/* Which of r's regions (bits of indexes into r->r) answer, for health
 * view v, preference p (latency only; NULL or empty: the record set's
 * order) and a random number (weighted only). *fail_open: no region was
 * healthy, so all answer. Never 0 for a route with regions. */
uint32_t dns_route_choose(const dns_route *r, dns_health_view v, const dns_prefs *p, uint32_t rand,
			  bool *fail_open);

/* --- the latency map --- */

typedef struct dns_latency_map dns_latency_map;

/* An empty map. NULL when out of memory. */
dns_latency_map *dns_latency_map_new(void);
void dns_latency_map_free(dns_latency_map **m);
/* Add the entries of one `latency_map =` value: comma-separated
 * "CIDR REGION...", "country:CC REGION...", "continent:CC REGION...",
 * "default REGION...". 0, or ERR_PARSE / ERR_LIMIT with the reason in err
 * (entries before the bad one stay added). */
int dns_latency_map_add(dns_latency_map *m, const char *text, dns_regions *t, int line, char *err,
			size_t errcap);
/* Open the MaxMind DB at path for the country:/continent: entries. 0, or
 * ERR_IO with the reason in err (the map is unchanged). */
int dns_latency_map_open_geo(dns_latency_map *m, const char *path, char *err, size_t errcap);
/* Does the map have country: or continent: entries (which need a DB)? */
bool dns_latency_map_wants_geo(const dns_latency_map *m);
/* The preference for address addr (4 or 16 bytes by family 4 or 6; the
 * bits past a client subnet's source length are zero). A NULL map: no
 * preference, scope 0. */
void dns_latency_lookup(const dns_latency_map *m, int family, const uint8_t *addr, dns_prefs *out);

#endif
