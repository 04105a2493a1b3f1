/*
 * route.c - routed record sets, the choice among their regions, and the
 * latency map (route.h has the rules).
 *
 * The latency map is a list of prefixes scanned in full (at most 256: a
 * deployment names its resolvers' or its clients' networks, not the
 * internet's routing table), then the MaxMind DB when one is configured.
 * The ECS scope of an answer is the longest of: the matched prefix's
 * length (or the MaxMind network's), and for every configured prefix that
 * does not hold the client, one bit past what the client shares with it,
 * so that the scope never covers a prefix that would be answered
 * differently (RFC 7871: a scope too wide poisons the resolver's
 * cache for the other subnet).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <maxminddb.h>

#include "core/err.h"
#include "dns/route.h"

static bool region_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= 32 || !islower((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)name[i]) && !isdigit((unsigned char)name[i]) && name[i] != '-')
			return false;
	return true;
}

int dns_regions_index(dns_regions *t, const char *name, int line)
{
	if (!region_name_ok(name))
		return -1;
	for (int i = 0; i < t->n; i++)
		if (strcmp(t->name[i], name) == 0)
			return i;
	if (t->n == DNS_REGIONS_MAX)
		return -1;
	snprintf(t->name[t->n], sizeof t->name[0], "%s", name);
	t->line[t->n] = line;
	return t->n++;
}

/* --- record sets --- */

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	if (!*s)
		return ERR_PARSE;
	uint64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return ERR_PARSE;
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return ERR_PARSE;
	}
	*out = (uint32_t)v;
	return 0;
}

static dns_route_region *route_region(dns_route *r, int region)
{
	for (int i = 0; i < r->n; i++)
		if (r->r[i].region == region)
			return &r->r[i];
	return NULL;
}

/* REGION=ADDR[,ADDR...] */
static int route_addresses(dns_route *r, char *tok, dns_regions *t, int line, char *err, size_t errcap)
{
	char *eq = strchr(tok, '=');
	*eq = '\0';
	int idx = dns_regions_index(t, tok, line);
	if (idx < 0) {
		snprintf(err, errcap, "'%.40s' is not a region name ([a-z][a-z0-9-]{0,30}, at most %d regions)", tok,
			 DNS_REGIONS_MAX);
		return ERR_PARSE;
	}
	if (route_region(r, idx)) {
		snprintf(err, errcap, "region %s is given twice", tok);
		return ERR_PARSE;
	}
	dns_route_region *rr = &r->r[r->n++];
	memset(rr, 0, sizeof *rr);
	rr->region = (uint8_t)idx;
	rr->weight = 1;
	char *save = NULL;
	for (char *a = strtok_r(eq + 1, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
		if (strchr(a, ':')) {
			if (rr->n6 == DNS_ROUTE_ADDRS_MAX || inet_pton(AF_INET6, a, rr->a6[rr->n6]) != 1)
				goto bad;
			rr->n6++;
		} else {
			if (rr->n4 == DNS_ROUTE_ADDRS_MAX || inet_pton(AF_INET, a, rr->a4[rr->n4]) != 1)
				goto bad;
			rr->n4++;
		}
	}
	if (rr->n4 + rr->n6 == 0)
		goto bad;
	return 0;
bad:
	snprintf(err, errcap, "region %s: addresses must be 1 to %d IPv4 and %d IPv6 addresses separated by commas",
		 t->name[idx], DNS_ROUTE_ADDRS_MAX, DNS_ROUTE_ADDRS_MAX);
	return ERR_PARSE;
}

/* weights=REGION:W,... (after every REGION=: the regions must be known) */
static int route_weights(dns_route *r, char *list, dns_regions *t, char *err, size_t errcap)
{
	char *save = NULL;
	for (char *w = strtok_r(list, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(w, ':');
		uint32_t v;
		if (!colon) {
			snprintf(err, errcap, "weights must be REGION:WEIGHT,..., not '%.40s'", w);
			return ERR_PARSE;
		}
		*colon = '\0';
		dns_route_region *rr = NULL;
		for (int i = 0; i < r->n && !rr; i++)
			if (strcmp(t->name[r->r[i].region], w) == 0)
				rr = &r->r[i];
		if (!rr) {
			snprintf(err, errcap, "weights: region '%.40s' has no addresses in this record set", w);
			return ERR_PARSE;
		}
		if (parse_u32(colon + 1, 255, &v) != 0) {
			snprintf(err, errcap, "weights: a weight is an integer from 0 to 255, not '%.20s'", colon + 1);
			return ERR_PARSE;
		}
		rr->weight = (uint16_t)v;
	}
	return 0;
}

int dns_route_parse(const char *text, dns_regions *t, int line, dns_route *out, char *err, size_t errcap)
{
	char copy[512];
	if (strlen(text) >= sizeof copy) {
		snprintf(err, errcap, "route is too long");
		return ERR_PARSE;
	}
	snprintf(copy, sizeof copy, "%s", text);
	memset(out, 0, sizeof *out);
	out->ttl = DNS_ROUTE_TTL_DEFAULT;
	char *save = NULL;
	char *policy = strtok_r(copy, " \t", &save);
	if (!policy || (strcmp(policy, "latency") && strcmp(policy, "failover") && strcmp(policy, "weighted"))) {
		snprintf(err, errcap, "a route's policy is latency, failover or weighted, not '%.40s'",
			 policy ? policy : "");
		return ERR_PARSE;
	}
	out->policy = strcmp(policy, "latency") == 0    ? DNS_POLICY_LATENCY
		      : strcmp(policy, "failover") == 0 ? DNS_POLICY_FAILOVER
							: DNS_POLICY_WEIGHTED;
	char *weights = NULL;
	for (char *tok = strtok_r(NULL, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (strncmp(tok, "ttl=", 4) == 0) {
			if (parse_u32(tok + 4, 0x7fffffff, &out->ttl) != 0) {
				snprintf(err, errcap, "ttl must be an integer from 0 to 2147483647, not '%.20s'", tok + 4);
				return ERR_PARSE;
			}
		} else if (strncmp(tok, "weights=", 8) == 0) {
			weights = tok + 8;
		} else if (strchr(tok, '=')) {
			if (out->n == DNS_REGIONS_MAX) {
				snprintf(err, errcap, "at most %d regions in a route", DNS_REGIONS_MAX);
				return ERR_PARSE;
			}
			int rc = route_addresses(out, tok, t, line, err, errcap);
			if (rc != 0)
				return rc;
		} else {
			snprintf(err, errcap, "'%.40s' is not REGION=ADDR, ttl=N or weights=REGION:W,...", tok);
			return ERR_PARSE;
		}
	}
	if (out->n == 0 || (out->policy == DNS_POLICY_FAILOVER && out->n < 2)) {
		snprintf(err, errcap, "route needs %s REGION=ADDR", out->policy == DNS_POLICY_FAILOVER ? "two" : "one");
		return ERR_PARSE;
	}
	if (weights && out->policy != DNS_POLICY_WEIGHTED) {
		snprintf(err, errcap, "weights= belongs to weighted routes");
		return ERR_PARSE;
	}
	return weights ? route_weights(out, weights, t, err, errcap) : 0;
}

uint32_t dns_route_choose(const dns_route *r, dns_health_view v, const dns_prefs *p, uint32_t rand,
			  bool *fail_open)
{
	uint32_t healthy = 0;
	for (int i = 0; i < r->n; i++)
		if (DNS_VIEW_HEALTHY(v) >> r->r[i].region & 1u)
			healthy |= 1u << i;
	*fail_open = healthy == 0;
	if (!healthy)
		return (1u << r->n) - 1; /* fail open: every region */
	switch (r->policy) {
	case DNS_POLICY_LATENCY:
		for (int k = 0; p && k < p->n; k++)
			for (int i = 0; i < r->n; i++)
				if (r->r[i].region == p->region[k] && (healthy >> i & 1u))
					return 1u << i;
		break; /* none of the preferred: the record set's order */
	case DNS_POLICY_FAILOVER:
		for (int i = 0; i < r->n; i++)
			if ((healthy >> i & 1u) && (DNS_VIEW_PRIMARY(v) >> r->r[i].region & 1u))
				return 1u << i;
		break; /* no healthy primary known: the first healthy one */
	case DNS_POLICY_WEIGHTED: {
		uint32_t total = 0, zero = 0;
		for (int i = 0; i < r->n; i++)
			if (healthy >> i & 1u) {
				total += r->r[i].weight;
				zero += r->r[i].weight == 0;
			}
		/* weight 0 answers only when nothing else can: among those, evenly */
		uint32_t x = total ? rand % total : rand % zero;
		for (int i = 0; i < r->n; i++) {
			if (!(healthy >> i & 1u))
				continue;
			uint32_t w = total ? r->r[i].weight : (r->r[i].weight == 0);
			if (x < w)
				return 1u << i;
			x -= w;
		}
		break; /* cannot happen: x < the sum */
	}
	}
	for (int i = 0; i < r->n; i++)
		if (healthy >> i & 1u)
			return 1u << i;
	return (1u << r->n) - 1; /* cannot happen: healthy != 0 */
}

/* --- the latency map --- */

typedef enum entry_kind { ENTRY_PREFIX, ENTRY_COUNTRY, ENTRY_CONTINENT, ENTRY_DEFAULT } entry_kind;

typedef struct map_entry {
	entry_kind kind;
	uint8_t family;      /* prefixes: 4 or 6 */
	uint8_t len;
	uint8_t addr[16];
	char code[3];        /* country or continent, upper case */
	uint8_t region[DNS_REGIONS_MAX];
	int n;
} map_entry;

struct dns_latency_map {
	map_entry e[DNS_LATENCY_MAP_MAX];
	int n;
	bool geo_open;
	MMDB_s geo;
};

dns_latency_map *dns_latency_map_new(void)
{
	return calloc(1, sizeof(dns_latency_map));
}

void dns_latency_map_free(dns_latency_map **m)
{
	if (!*m)
		return;
	if ((*m)->geo_open)
		MMDB_close(&(*m)->geo);
	free(*m);
	*m = NULL;
}

static bool prefix_holds(const uint8_t *prefix, int len, const uint8_t *addr)
{
	int bytes = len / 8, bits = len % 8;
	if (memcmp(prefix, addr, (size_t)bytes) != 0)
		return false;
	if (bits) {
		uint8_t mask = (uint8_t)(0xff << (8 - bits));
		if ((prefix[bytes] & mask) != (addr[bytes] & mask))
			return false;
	}
	return true;
}

static int common_prefix(const uint8_t *a, const uint8_t *b, int maxbits)
{
	int n = 0;
	for (int i = 0; i < maxbits / 8; i++) {
		uint8_t x = a[i] ^ b[i];
		if (!x) {
			n += 8;
			continue;
		}
		while (!(x & 0x80)) {
			x <<= 1;
			n++;
		}
		return n;
	}
	return n;
}

/* One entry: "CIDR REGION...", "country:CC REGION...", ... */
static int map_entry_parse(dns_latency_map *m, char *text, dns_regions *t, int line, char *err, size_t errcap)
{
	char *save = NULL;
	char *key = strtok_r(text, " \t", &save);
	if (!key)
		return 0; /* an empty entry (a trailing comma) */
	if (m->n == DNS_LATENCY_MAP_MAX) {
		snprintf(err, errcap, "a latency map has at most %d entries", DNS_LATENCY_MAP_MAX);
		return ERR_LIMIT;
	}
	map_entry *e = &m->e[m->n];
	memset(e, 0, sizeof *e);
	if (strcmp(key, "default") == 0) {
		e->kind = ENTRY_DEFAULT;
	} else if (strncmp(key, "country:", 8) == 0 || strncmp(key, "continent:", 10) == 0) {
		e->kind = strncmp(key, "country:", 8) == 0 ? ENTRY_COUNTRY : ENTRY_CONTINENT;
		const char *c = strchr(key, ':') + 1;
		if (strlen(c) != 2 || !isalpha((unsigned char)c[0]) || !isalpha((unsigned char)c[1])) {
			snprintf(err, errcap, "'%.40s': a country or continent is a two-letter code (DE, EU)", key);
			return ERR_PARSE;
		}
		e->code[0] = (char)toupper((unsigned char)c[0]);
		e->code[1] = (char)toupper((unsigned char)c[1]);
	} else {
		char *slash = strchr(key, '/');
		uint32_t len;
		bool v6 = strchr(key, ':') != NULL;
		if (slash)
			*slash = '\0';
		if (!slash || inet_pton(v6 ? AF_INET6 : AF_INET, key, e->addr) != 1 ||
		    parse_u32(slash + 1, v6 ? 128 : 32, &len) != 0) {
			if (slash)
				*slash = '/';
			snprintf(err, errcap, "'%.60s' is not ADDRESS/LENGTH, country:CC, continent:CC or default", key);
			return ERR_PARSE;
		}
		e->kind = ENTRY_PREFIX;
		e->family = v6 ? 6 : 4;
		e->len = (uint8_t)len;
		uint8_t probe[16];
		memcpy(probe, e->addr, 16);
		memset(e->addr, 0, 16);
		for (uint32_t b = 0; b < len; b++) /* keep the prefix's bits only */
			e->addr[b / 8] |= (uint8_t)(probe[b / 8] & (0x80 >> (b % 8)));
	}
	for (char *name = strtok_r(NULL, " \t", &save); name; name = strtok_r(NULL, " \t", &save)) {
		int idx = dns_regions_index(t, name, line);
		if (idx < 0 || e->n == DNS_REGIONS_MAX) {
			snprintf(err, errcap, "'%.40s' is not a region name ([a-z][a-z0-9-]{0,30})", name);
			return ERR_PARSE;
		}
		for (int k = 0; k < e->n; k++)
			if (e->region[k] == idx) {
				snprintf(err, errcap, "region %s is listed twice in one entry", name);
				return ERR_PARSE;
			}
		e->region[e->n++] = (uint8_t)idx;
	}
	if (e->n == 0) {
		snprintf(err, errcap, "'%.40s' needs the regions in order of preference", key);
		return ERR_PARSE;
	}
	for (int k = 0; k < m->n; k++) {
		const map_entry *o = &m->e[k];
		if (o->kind == e->kind && o->family == e->family && o->len == e->len && memcmp(o->addr, e->addr, 16) == 0 &&
		    strcmp(o->code, e->code) == 0) {
			snprintf(err, errcap, "'%.40s' is in the latency map twice", key);
			return ERR_PARSE;
		}
	}
	m->n++;
	return 0;
}

int dns_latency_map_add(dns_latency_map *m, const char *text, dns_regions *t, int line, char *err, size_t errcap)
{
	char copy[1024];
	if (strlen(text) >= sizeof copy) {
		snprintf(err, errcap, "latency_map line is too long");
		return ERR_PARSE;
	}
	snprintf(copy, sizeof copy, "%s", text);
	char *save = NULL;
	for (char *entry = strtok_r(copy, ",", &save); entry; entry = strtok_r(NULL, ",", &save)) {
		int rc = map_entry_parse(m, entry, t, line, err, errcap);
		if (rc != 0)
			return rc;
	}
	return 0;
}

int dns_latency_map_open_geo(dns_latency_map *m, const char *path, char *err, size_t errcap)
{
	MMDB_s db;
	int rc = MMDB_open(path, MMDB_MODE_MMAP, &db);
	if (rc != MMDB_SUCCESS) {
		snprintf(err, errcap, "%s: cannot open the MaxMind DB: %s", path, MMDB_strerror(rc));
		return ERR_IO;
	}
	if (m->geo_open)
		MMDB_close(&m->geo);
	m->geo = db;
	m->geo_open = true;
	return 0;
}

bool dns_latency_map_wants_geo(const dns_latency_map *m)
{
	for (int i = 0; i < m->n; i++)
		if (m->e[i].kind == ENTRY_COUNTRY || m->e[i].kind == ENTRY_CONTINENT)
			return true;
	return false;
}

/* A two-letter string of the entry at path (country iso_code, continent
 * code) into code; false when the DB has none. */
static bool geo_code(MMDB_entry_s *entry, const char *a, const char *b, char code[3])
{
	MMDB_entry_data_s d;
	if (MMDB_get_value(entry, &d, a, b, NULL) != MMDB_SUCCESS || !d.has_data ||
	    d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
		return false;
	code[0] = (char)toupper((unsigned char)d.utf8_string[0]);
	code[1] = (char)toupper((unsigned char)d.utf8_string[1]);
	code[2] = '\0';
	return true;
}

/* The geo entry for addr, and in *len the length of the DB's network
 * holding it; NULL when the DB knows nothing of it or no entry names its
 * country/continent. */
static const map_entry *geo_lookup(const dns_latency_map *m, int family, const uint8_t *addr, int *len)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	if (family == 4) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, addr, 4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, addr, 16);
	}
	int mmdb_error = 0;
	MMDB_lookup_result_s res = MMDB_lookup_sockaddr(&m->geo, (struct sockaddr *)&ss, &mmdb_error);
	if (mmdb_error != MMDB_SUCCESS)
		return NULL;
	/* the DB's network around addr, found or not (every address of it gets
	 * the same answer); an IPv4 address in an IPv6 DB: its netmask counts
	 * the 96 bits of ::/96 */
	int n = res.netmask;
	if (family == 4 && m->geo.metadata.ip_version == 6)
		n -= 96;
	*len = n < 0 ? 0 : n;
	if (!res.found_entry)
		return NULL;
	char country[3] = "", continent[3] = "";
	bool has_country = geo_code(&res.entry, "country", "iso_code", country);
	bool has_continent = geo_code(&res.entry, "continent", "code", continent);
	const map_entry *by_continent = NULL;
	for (int i = 0; i < m->n; i++) {
		const map_entry *e = &m->e[i];
		if (e->kind == ENTRY_COUNTRY && has_country && strcmp(e->code, country) == 0)
			return e;
		if (e->kind == ENTRY_CONTINENT && has_continent && strcmp(e->code, continent) == 0)
			by_continent = e;
	}
	return by_continent;
}

void dns_latency_lookup(const dns_latency_map *m, int family, const uint8_t *addr, dns_prefs *out)
{
	memset(out, 0, sizeof *out);
	if (!m)
		return;
	int maxbits = family == 4 ? 32 : 128;
	const map_entry *best = NULL, *dflt = NULL;
	for (int i = 0; i < m->n; i++) {
		const map_entry *e = &m->e[i];
		if (e->kind == ENTRY_DEFAULT)
			dflt = e;
		else if (e->kind == ENTRY_PREFIX && e->family == family && prefix_holds(e->addr, e->len, addr) &&
			 (!best || e->len > best->len))
			best = e;
	}
	int scope = best ? best->len : 0;
	if (!best && m->geo_open) {
		int len = 0;
		best = geo_lookup(m, family, addr, &len);
		scope = len;
	}
	if (!best)
		best = dflt;
	/* the scope must leave out every prefix that would answer otherwise */
	for (int i = 0; i < m->n; i++) {
		const map_entry *e = &m->e[i];
		if (e->kind != ENTRY_PREFIX || e->family != family || prefix_holds(e->addr, e->len, addr))
			continue;
		int need = common_prefix(e->addr, addr, maxbits) + 1;
		if (need > scope)
			scope = need;
	}
	out->scope = scope > maxbits ? maxbits : scope;
	if (best) {
		memcpy(out->region, best->region, (size_t)best->n);
		out->n = best->n;
	}
}
