/*
 * zone.c - a zone in memory and the authoritative answer (zone.h has the
 * rules). Records live in one array, in the order added; a lookup scans
 * it (zones of tens to hundreds of records; an index comes with the
 * benchmark against Knot if the scan shows). Record data is kept in wire
 * form so that answering is copying, except for the names inside NS, CNAME,
 * PTR, MX and SOA data, which are read back and written with compression.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "dns/zone.h"

#define CNAME_CHAIN_MAX 8
#define ROUTES_MAX 256 /* routed names per zone */

typedef struct zone_route {
	dns_name owner;
	dns_route route;
} zone_route;

/* An alias (Route 53's alias record, `record = @ ALIAS api`): owner
 * answers A and AAAA with target's addresses, as target answers them. */
typedef struct zone_alias {
	dns_name owner;
	dns_name target;
	int line;                  /* for dns_zone_check_aliases' message (0: unknown) */
} zone_alias;

struct dns_zone {
	dns_name origin;
	char origin_text[4 * DNS_NAME_MAX + 2];
	dns_rr **rrs;
	size_t n, cap;
	const dns_rr *soa;
	zone_route *routes;        /* routed names (route.h), few: scanned */
	size_t nroutes;
	zone_alias *aliases;       /* few: scanned */
	size_t naliases;
	bool dnssec;               /* `dnssec = on`: signed once it has keys */
	dnssec_keys *keys;         /* owned; NULL: not signed */
};

dns_zone *dns_zone_new(const dns_name *origin)
{
	dns_zone *z = calloc(1, sizeof *z);
	if (!z)
		return NULL;
	z->origin = *origin;
	dns_name_to_text(origin, z->origin_text, sizeof z->origin_text);
	return z;
}

void dns_zone_free(dns_zone **z)
{
	if (!*z)
		return;
	for (size_t i = 0; i < (*z)->n; i++)
		free((*z)->rrs[i]);
	free((*z)->rrs);
	free((*z)->routes);
	free((*z)->aliases);
	dnssec_keys_free(&(*z)->keys);
	free(*z);
	*z = NULL;
}

const dns_name *dns_zone_origin(const dns_zone *z)
{
	return &z->origin;
}

int dns_zone_ready(const dns_zone *z)
{
	return z->soa != NULL;
}

void dns_zone_set_dnssec(dns_zone *z, bool on)
{
	z->dnssec = on;
}

bool dns_zone_dnssec(const dns_zone *z)
{
	return z->dnssec;
}

void dns_zone_set_keys(dns_zone *z, dnssec_keys *keys)
{
	dnssec_keys_free(&z->keys);
	z->keys = keys;
}

const dnssec_keys *dns_zone_keys(const dns_zone *z)
{
	return z->keys;
}

int dns_zone_check_dnssec(const dns_zone *z, char *err, size_t errcap)
{
	for (size_t i = 0; i < z->n; i++) {
		const dns_rr *rr = z->rrs[i];
		char name[4 * DNS_NAME_MAX + 2];
		if (rr->type == DNS_T_NS && !dns_name_equal(&rr->owner, &z->origin)) {
			dns_name_to_text(&rr->owner, name, sizeof name);
			snprintf(err, errcap,
				 "%.200s has NS records: delegations below the apex cannot be signed (not supported with "
				 "dnssec = on)",
				 name);
			return ERR_INVAL;
		}
		/* the first record of each RRset: its size bounds the signer's work */
		bool first = true;
		for (size_t k = 0; k < i && first; k++)
			first = !(z->rrs[k]->type == rr->type && dns_name_equal(&z->rrs[k]->owner, &rr->owner));
		if (!first)
			continue;
		size_t count = 0, bytes = 0;
		for (size_t k = i; k < z->n; k++)
			if (z->rrs[k]->type == rr->type && dns_name_equal(&z->rrs[k]->owner, &rr->owner)) {
				count++;
				bytes += (size_t)rr->owner.len + 10 + z->rrs[k]->rdlen;
			}
		if (count > DNSSEC_RRSET_MAX || bytes > DNSSEC_SIGNED_MAX - 64) {
			dns_name_to_text(&rr->owner, name, sizeof name);
			snprintf(err, errcap, "%.200s: an RRset of %zu records (%zu bytes) is too large to sign (at most %d, "
				 "%d bytes)", name, count, bytes, DNSSEC_RRSET_MAX, DNSSEC_SIGNED_MAX - 64);
			return ERR_INVAL;
		}
	}
	return 0;
}

/* --- presentation form --- */

static const struct {
	const char *name;
	uint16_t type;
} type_names[] = {
	{"A", DNS_T_A},     {"NS", DNS_T_NS},   {"CNAME", DNS_T_CNAME}, {"SOA", DNS_T_SOA},
	{"PTR", DNS_T_PTR}, {"MX", DNS_T_MX},   {"TXT", DNS_T_TXT},     {"AAAA", DNS_T_AAAA},
	{"SRV", DNS_T_SRV}, {"CAA", DNS_T_CAA},
};

/* A name of the zone file: "@" (origin), relative to origin, or absolute
 * (a final dot). */
static int name_at(const dns_name *origin, const char *text, dns_name *out)
{
	if (strcmp(text, "@") == 0) {
		*out = *origin;
		return 0;
	}
	size_t n = strlen(text);
	if (n > 0 && text[n - 1] == '.' && (n < 2 || text[n - 2] != '\\'))
		return dns_name_from_text(text, out);
	char origin_text[4 * DNS_NAME_MAX + 2];
	dns_name_to_text(origin, origin_text, sizeof origin_text);
	char full[4 * DNS_NAME_MAX + 8];
	int w = snprintf(full, sizeof full, "%s.%s", text, strcmp(origin_text, ".") == 0 ? "" : origin_text);
	if (w < 0 || (size_t)w >= sizeof full)
		return ERR_PARSE;
	return dns_name_from_text(full, out);
}

static int zone_name(const dns_zone *z, const char *text, dns_name *out)
{
	return name_at(&z->origin, text, out);
}

static const dns_route *route_at(const dns_zone *z, const dns_name *name);
static bool node_exists(const dns_zone *z, const dns_name *name);

/* The next whitespace-separated token of *s into tok (a quoted string
 * without its quotes, \" and \\ unescaped when quoted). 0 at the end. */
static int next_token(const char **s, char *tok, size_t cap, int *quoted)
{
	const char *p = *s;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return 0;
	size_t n = 0;
	*quoted = *p == '"';
	if (*quoted) {
		p++;
		while (*p && *p != '"') {
			char c = *p++;
			if (c == '\\' && (*p == '"' || *p == '\\'))
				c = *p++;
			if (n + 1 >= cap)
				return -1;
			tok[n++] = c;
		}
		if (*p != '"')
			return -1;
		p++;
	} else {
		while (*p && *p != ' ' && *p != '\t') {
			if (n + 1 >= cap)
				return -1;
			tok[n++] = *p++;
		}
	}
	tok[n] = '\0';
	*s = p;
	return 1;
}

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

typedef struct rdbuf {
	uint8_t b[65535];
	size_t n;
} rdbuf;

static int rd_bytes(rdbuf *r, const void *p, size_t n)
{
	if (n > sizeof r->b - r->n)
		return ERR_PARSE;
	memcpy(r->b + r->n, p, n);
	r->n += n;
	return 0;
}

static int rd_u16(rdbuf *r, uint32_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	return rd_bytes(r, b, 2);
}

static int rd_u32(rdbuf *r, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	return rd_bytes(r, b, 4);
}

static int rd_name(const dns_name *origin, rdbuf *r, const char *text)
{
	dns_name n;
	if (name_at(origin, text, &n) != 0)
		return ERR_PARSE;
	return rd_bytes(r, n.wire, n.len);
}

/* The RDATA of type from its presentation form. */
static int parse_rdata(const dns_name *z, uint16_t type, const char *text, rdbuf *r, char *err, size_t errcap)
{
	char tok[8][512];
	int quoted[8] = {0};
	int nt = 0;
	const char *s = text;
	if (type == DNS_T_TXT) {
		/* one or more character-strings of at most 255 bytes */
		char t[1024];
		int q, rc;
		while ((rc = next_token(&s, t, sizeof t, &q)) == 1) {
			size_t len = strlen(t);
			if (len > 255) {
				snprintf(err, errcap, "a TXT string is longer than 255 bytes");
				return ERR_PARSE;
			}
			uint8_t l = (uint8_t)len;
			if (rd_bytes(r, &l, 1) != 0 || rd_bytes(r, t, len) != 0)
				return ERR_PARSE;
		}
		if (rc < 0 || r->n == 0) {
			snprintf(err, errcap, "TXT needs one or more strings (quote those with spaces)");
			return ERR_PARSE;
		}
		return 0;
	}
	int rc;
	while (nt < 8 && (rc = next_token(&s, tok[nt], sizeof tok[nt], &quoted[nt])) == 1)
		nt++;
	if (nt == 8 || rc < 0) {
		snprintf(err, errcap, "cannot read the record data '%.80s'", text);
		return ERR_PARSE;
	}
	uint32_t v[5];
	switch (type) {
	case DNS_T_A:
	case DNS_T_AAAA: {
		uint8_t a[16];
		if (nt != 1 || inet_pton(type == DNS_T_A ? AF_INET : AF_INET6, tok[0], a) != 1) {
			snprintf(err, errcap, "'%.80s' is not an %s address", text, type == DNS_T_A ? "IPv4" : "IPv6");
			return ERR_PARSE;
		}
		return rd_bytes(r, a, type == DNS_T_A ? 4 : 16);
	}
	case DNS_T_NS:
	case DNS_T_CNAME:
	case DNS_T_PTR:
		if (nt != 1 || rd_name(z, r, tok[0]) != 0)
			break;
		return 0;
	case DNS_T_MX:
		if (nt != 2 || parse_u32(tok[0], 65535, &v[0]) != 0 || rd_u16(r, v[0]) != 0 ||
		    rd_name(z, r, tok[1]) != 0)
			break;
		return 0;
	case DNS_T_SRV:
		if (nt != 4)
			break;
		for (int i = 0; i < 3; i++)
			if (parse_u32(tok[i], 65535, &v[i]) != 0 || rd_u16(r, v[i]) != 0)
				goto bad;
		if (rd_name(z, r, tok[3]) != 0)
			break;
		return 0;
	case DNS_T_CAA: {
		/* flags tag "value" (RFC 8659) */
		size_t tl = strlen(tok[1]);
		if (nt != 3 || parse_u32(tok[0], 255, &v[0]) != 0 || tl == 0 || tl > 15)
			break;
		for (size_t i = 0; i < tl; i++)
			if (!isalnum((unsigned char)tok[1][i]))
				goto bad;
		uint8_t f = (uint8_t)v[0], l = (uint8_t)tl;
		if (rd_bytes(r, &f, 1) != 0 || rd_bytes(r, &l, 1) != 0 || rd_bytes(r, tok[1], tl) != 0 ||
		    rd_bytes(r, tok[2], strlen(tok[2])) != 0)
			break;
		return 0;
	}
	case DNS_T_SOA:
		if (nt != 7 || rd_name(z, r, tok[0]) != 0 || rd_name(z, r, tok[1]) != 0)
			break;
		for (int i = 0; i < 5; i++)
			if (parse_u32(tok[2 + i], UINT32_MAX, &v[i]) != 0 || rd_u32(r, v[i]) != 0)
				goto bad;
		return 0;
	default:
		snprintf(err, errcap, "record type not supported");
		return ERR_PARSE;
	}
bad:
	snprintf(err, errcap, "cannot read the record data '%.80s'", text);
	return ERR_PARSE;
}

static uint16_t type_of(const char *name)
{
	for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
		if (strcasecmp(name, type_names[i].name) == 0)
			return type_names[i].type;
	return 0;
}

static const zone_alias *alias_at(const dns_zone *z, const dns_name *name)
{
	for (size_t i = 0; i < z->naliases; i++)
		if (dns_name_equal(&z->aliases[i].owner, name))
			return &z->aliases[i];
	return NULL;
}

/* owner ALIAS target: checked against the records already there (and
 * they against it as they come: dns_zone_add). */
static int add_alias(dns_zone *z, const dns_name *origin, const char *owner, const char *rdata, int line, char *err,
		     size_t errcap)
{
	dns_name own, target;
	char tok[300];
	int quoted = 0;
	const char *s = rdata;
	if (name_at(origin, owner, &own) != 0) {
		snprintf(err, errcap, "'%.80s' is not a valid name", owner);
		return ERR_PARSE;
	}
	char extra[8];
	if (next_token(&s, tok, sizeof tok, &quoted) != 1 || quoted || next_token(&s, extra, sizeof extra, &quoted) != 0 ||
	    name_at(origin, tok, &target) != 0) {
		snprintf(err, errcap, "ALIAS needs one target name, not '%.80s'", rdata);
		return ERR_PARSE;
	}
	if (!dns_name_within(&own, &z->origin) || !dns_name_within(&target, &z->origin)) {
		snprintf(err, errcap, "an alias and its target must be within the zone %s", z->origin_text);
		return ERR_INVAL;
	}
	if (dns_name_equal(&own, &target)) {
		snprintf(err, errcap, "an alias cannot point at itself");
		return ERR_INVAL;
	}
	for (size_t i = 0; i < z->n; i++) {
		uint16_t t = z->rrs[i]->type;
		if ((t == DNS_T_CNAME || t == DNS_T_A || t == DNS_T_AAAA) && dns_name_equal(&z->rrs[i]->owner, &own)) {
			snprintf(err, errcap, "'%.80s' has %s records: an alias gives its addresses", owner,
				 t == DNS_T_CNAME ? "CNAME" : "address");
			return ERR_INVAL;
		}
	}
	if (route_at(z, &own) || alias_at(z, &own)) {
		snprintf(err, errcap, "'%.80s' is a routed name or has an alias already", owner);
		return ERR_INVAL;
	}
	if (z->naliases == ROUTES_MAX) {
		snprintf(err, errcap, "at most %d aliases in a zone", ROUTES_MAX);
		return ERR_INVAL;
	}
	zone_alias *g = realloc(z->aliases, (z->naliases + 1) * sizeof *g);
	if (!g)
		return ERR_NOMEM;
	z->aliases = g;
	g[z->naliases] = (zone_alias){.owner = own, .target = target, .line = line};
	z->naliases++;
	return 0;
}

int dns_zone_add(dns_zone *z, const char *owner, const char *type, uint32_t ttl, const char *rdata, char *err,
		 size_t errcap)
{
	return dns_zone_add_at(z, &z->origin, 0, owner, type, ttl, rdata, err, errcap);
}

int dns_zone_add_at(dns_zone *z, const dns_name *origin, int line, const char *owner, const char *type, uint32_t ttl,
		    const char *rdata, char *err, size_t errcap)
{
	if (strcasecmp(type, "ALIAS") == 0)
		return add_alias(z, origin, owner, rdata, line, err, errcap);
	uint16_t t = type_of(type);
	if (!t) {
		snprintf(err, errcap, "record type '%.20s' is not supported (A AAAA CNAME MX TXT CAA SRV NS PTR SOA)",
			 type);
		return ERR_PARSE;
	}
	dns_name own;
	if (name_at(origin, owner, &own) != 0) {
		snprintf(err, errcap, "'%.80s' is not a valid name", owner);
		return ERR_PARSE;
	}
	if (!dns_name_within(&own, &z->origin)) {
		snprintf(err, errcap, "'%.80s' is not within the zone %s", owner, z->origin_text);
		return ERR_INVAL;
	}
	if ((t == DNS_T_CNAME || t == DNS_T_A || t == DNS_T_AAAA) && alias_at(z, &own)) {
		snprintf(err, errcap, "'%.80s' has an alias: its addresses come from the alias' target", owner);
		return ERR_INVAL;
	}
	if (ttl > 0x7fffffffu) {
		snprintf(err, errcap, "a TTL is at most 2147483647 (RFC 2181)");
		return ERR_PARSE;
	}
	for (size_t i = 0; i < z->nroutes; i++)
		if ((t == DNS_T_CNAME || t == DNS_T_A || t == DNS_T_AAAA) && dns_name_equal(&z->routes[i].owner, &own)) {
			snprintf(err, errcap, "'%.80s' is a routed name: its addresses come from its route", owner);
			return ERR_INVAL;
		}
	for (size_t i = 0; i < z->n; i++) {
		const dns_rr *o = z->rrs[i];
		if (!dns_name_equal(&o->owner, &own))
			continue;
		if ((t == DNS_T_CNAME) != (o->type == DNS_T_CNAME)) {
			snprintf(err, errcap, "a CNAME cannot stand beside other records of '%.80s' (RFC 1034)", owner);
			return ERR_INVAL;
		}
		if (t == DNS_T_CNAME) {
			snprintf(err, errcap, "'%.80s' has a CNAME already", owner);
			return ERR_INVAL;
		}
	}
	if (t == DNS_T_SOA && (z->soa || !dns_name_equal(&own, &z->origin))) {
		snprintf(err, errcap, z->soa ? "the zone has an SOA already" : "the SOA belongs at the apex (@)");
		return ERR_INVAL;
	}
	rdbuf *r = malloc(sizeof *r);
	if (!r)
		return ERR_NOMEM;
	r->n = 0;
	int rc = parse_rdata(origin, t, rdata, r, err, errcap);
	if (rc != 0) {
		free(r);
		return rc;
	}
	if (z->n == z->cap) {
		size_t nc = z->cap ? z->cap * 2 : 16;
		dns_rr **g = realloc(z->rrs, nc * sizeof *g);
		if (!g) {
			free(r);
			return ERR_NOMEM;
		}
		z->rrs = g;
		z->cap = nc;
	}
	dns_rr *rr = malloc(sizeof *rr + r->n);
	if (!rr) {
		free(r);
		return ERR_NOMEM;
	}
	rr->owner = own;
	rr->type = t;
	rr->ttl = ttl;
	rr->rdlen = (uint16_t)r->n;
	memcpy(rr->rdata, r->b, r->n);
	free(r);
	z->rrs[z->n++] = rr;
	if (t == DNS_T_SOA)
		z->soa = rr;
	return 0;
}

int dns_zone_add_route(dns_zone *z, const char *owner, const dns_route *route, char *err, size_t errcap)
{
	dns_name own;
	if (zone_name(z, owner, &own) != 0) {
		snprintf(err, errcap, "'%.80s' is not a valid name", owner);
		return ERR_PARSE;
	}
	if (!dns_name_within(&own, &z->origin)) {
		snprintf(err, errcap, "'%.80s' is not within the zone %s", owner, z->origin_text);
		return ERR_INVAL;
	}
	for (size_t i = 0; i < z->n; i++) {
		uint16_t t = z->rrs[i]->type;
		if ((t == DNS_T_CNAME || t == DNS_T_A || t == DNS_T_AAAA) && dns_name_equal(&z->rrs[i]->owner, &own)) {
			snprintf(err, errcap, "'%.80s' has %s records: a routed name gets its addresses from its route only",
				 owner, t == DNS_T_CNAME ? "CNAME" : "address");
			return ERR_INVAL;
		}
	}
	if (alias_at(z, &own)) {
		snprintf(err, errcap, "'%.80s' has an alias: a name gets its addresses from one of them", owner);
		return ERR_INVAL;
	}
	for (size_t i = 0; i < z->nroutes; i++)
		if (dns_name_equal(&z->routes[i].owner, &own)) {
			snprintf(err, errcap, "'%.80s' has a route already", owner);
			return ERR_INVAL;
		}
	if (z->nroutes == ROUTES_MAX) {
		snprintf(err, errcap, "at most %d routed names in a zone", ROUTES_MAX);
		return ERR_INVAL;
	}
	zone_route *g = realloc(z->routes, (z->nroutes + 1) * sizeof *g);
	if (!g)
		return ERR_NOMEM;
	z->routes = g;
	g[z->nroutes].owner = own;
	g[z->nroutes].route = *route;
	z->nroutes++;
	return 0;
}

size_t dns_zone_routes(const dns_zone *z)
{
	return z->nroutes;
}

const dns_name *dns_zone_route(const dns_zone *z, size_t i, const dns_route **route)
{
	*route = &z->routes[i].route;
	return &z->routes[i].owner;
}

/* --- answering --- */

static const dns_route *route_at(const dns_zone *z, const dns_name *name)
{
	for (size_t i = 0; i < z->nroutes; i++)
		if (dns_name_equal(&z->routes[i].owner, name))
			return &z->routes[i].route;
	return NULL;
}

/* One record whose RDATA is copied as is. 0 or ERR_LIMIT (rolled back). */
static int write_raw(dns_writer *w, const dns_name *owner, uint16_t type, uint32_t ttl, const uint8_t *rdata,
		     size_t rdlen)
{
	dns_mark m = dns_w_mark(w);
	size_t at;
	if (dns_w_rr_begin(w, owner, type, DNS_C_IN, ttl, &at) != 0 || dns_w_bytes(w, rdata, rdlen) != 0 ||
	    dns_w_rr_end(w, at) != 0) {
		dns_w_rollback(w, &m);
		return ERR_LIMIT;
	}
	return 0;
}

/* How one answer is signed (dnssec.h). */
typedef struct answer_sign {
	dnssec_signer *signer;     /* NULL: not signed */
	const dnssec_keys *keys;
	bool failed;               /* the signer failed: the answer becomes SERVFAIL */
	/* the RRset being written */
	dnssec_rrset set;
} answer_sign;

static void set_begin(answer_sign *as, const dns_name *owner, uint16_t type, uint32_t ttl)
{
	as->set.owner = owner;
	as->set.type = type;
	as->set.ttl = ttl;
	as->set.n = 0;
}

static void set_add(answer_sign *as, const uint8_t *rdata, uint16_t rdlen)
{
	if (as->set.n < DNSSEC_RRSET_MAX) { /* (signed zones are checked to stay within it) */
		as->set.rdata[as->set.n] = rdata;
		as->set.rdlen[as->set.n] = rdlen;
	}
	as->set.n++;
}

/* The RRSIGs of the RRset just written. 0, or ERR_LIMIT (no room: the
 * answer is truncated); a signing failure marks the answer failed. */
static int set_sign(dns_writer *w, answer_sign *as)
{
	if (!as->signer || as->set.n == 0)
		return 0;
	int rc = dnssec_sign(as->signer, as->keys, &as->set, w);
	if (rc == ERR_LIMIT)
		return ERR_LIMIT;
	if (rc != 0) {
		as->failed = true;
		return ERR_LIMIT;
	}
	return 0;
}

/* The client a latency map looks up: the query's subnet (RFC 7871), else
 * the resolver's address. false when there is neither. */
static bool route_client(const dns_query *q, const struct sockaddr *from, int *family, uint8_t addr[16])
{
	memset(addr, 0, 16);
	if (q->ecs && q->ecs_source > 0) { /* (source 0: the resolver asks us not to use it) */
		*family = q->ecs_family == 1 ? 4 : 6;
		memcpy(addr, q->ecs_addr, *family == 4 ? 4 : 16);
		return true;
	}
	if (from && from->sa_family == AF_INET) {
		*family = 4;
		memcpy(addr, &((const struct sockaddr_in *)from)->sin_addr, 4);
		return true;
	}
	if (from && from->sa_family == AF_INET6) {
		*family = 6;
		memcpy(addr, &((const struct sockaddr_in6 *)from)->sin6_addr, 16);
		return true;
	}
	return false;
}

/* The routed answer of r for qtype (A, AAAA or ANY) with owner. Returns
 * the records written (0: NODATA for that type); *truncated when they did
 * not all fit; *scope: the ECS scope the answer holds for. */
static int write_route(dns_writer *w, const dns_route *r, const dns_name *owner, const dns_query *q,
		       const dns_route_env *env, answer_sign *as, bool *truncated, int *scope)
{
	static const dns_route_env none = {.health = DNS_VIEW_ALL_HEALTHY};
	if (!env)
		env = &none;
	dns_prefs prefs = {.n = 0, .scope = 0};
	int family;
	uint8_t addr[16];
	if (r->policy == DNS_POLICY_LATENCY && env->map && route_client(q, env->from, &family, addr)) {
		dns_latency_lookup(env->map, family, addr, &prefs);
		if (q->ecs && q->ecs_source > 0)
			*scope = prefs.scope; /* (a source of 0 gets scope 0: RFC 7871) */
	}
	bool fail_open;
	uint32_t chosen = dns_route_choose(r, env->health, &prefs, env->rand, &fail_open);
	int written = 0;
	for (int pass = 0; pass < 2; pass++) {
		uint16_t type = pass == 0 ? DNS_T_A : DNS_T_AAAA;
		if (q->qtype != type && q->qtype != DNS_T_ANY)
			continue;
		set_begin(as, owner, type, r->ttl);
		for (int i = 0; i < r->n; i++) {
			if (!(chosen >> i & 1u))
				continue;
			const dns_route_region *rr = &r->r[i];
			int count = type == DNS_T_A ? rr->n4 : rr->n6;
			for (int k = 0; k < count; k++) {
				const uint8_t *a = type == DNS_T_A ? rr->a4[k] : rr->a6[k];
				uint16_t alen = type == DNS_T_A ? 4 : 16;
				if (write_raw(w, owner, type, r->ttl, a, alen) != 0) {
					*truncated = true;
					return written;
				}
				set_add(as, a, alen);
				written++;
			}
		}
		if (set_sign(w, as) != 0) { /* the set as answered: these regions' addresses */
			*truncated = true;
			return written;
		}
	}
	return written;
}

/* Write rr with owner (the query's name for a wildcard) into the current
 * section. 0 or ERR_LIMIT (rolled back). */
static int write_rr(dns_writer *w, const dns_rr *rr, const dns_name *owner, uint32_t ttl)
{
	dns_mark m = dns_w_mark(w);
	size_t at;
	int rc = dns_w_rr_begin(w, owner, rr->type, DNS_C_IN, ttl, &at);
	size_t off = 0;
	dns_name n;
	if (rc == 0) {
		switch (rr->type) {
		case DNS_T_NS:
		case DNS_T_CNAME:
		case DNS_T_PTR:
			rc = dns_name_read(rr->rdata, rr->rdlen, &off, &n) == 0 ? dns_w_name(w, &n, true) : ERR_PARSE;
			break;
		case DNS_T_MX:
			rc = dns_w_bytes(w, rr->rdata, 2);
			off = 2;
			if (rc == 0)
				rc = dns_name_read(rr->rdata, rr->rdlen, &off, &n) == 0 ? dns_w_name(w, &n, true) : ERR_PARSE;
			break;
		case DNS_T_SOA:
			for (int k = 0; k < 2 && rc == 0; k++)
				rc = dns_name_read(rr->rdata, rr->rdlen, &off, &n) == 0 ? dns_w_name(w, &n, true) : ERR_PARSE;
			if (rc == 0)
				rc = dns_w_bytes(w, rr->rdata + off, rr->rdlen - off);
			break;
		default:
			rc = dns_w_bytes(w, rr->rdata, rr->rdlen);
		}
	}
	if (rc == 0)
		rc = dns_w_rr_end(w, at);
	if (rc != 0) {
		dns_w_rollback(w, &m);
		return ERR_LIMIT;
	}
	return 0;
}

/* Every record of type at node source, with owner, as one RRset (one
 * TTL: the smallest, RFC 2181 5.2), then its RRSIGs. Adds to *found.
 * 0 or ERR_LIMIT (truncated). */
static int write_set(dns_writer *w, const dns_zone *z, const dns_name *source, uint16_t type,
		     const dns_name *owner, answer_sign *as, int *found)
{
	uint32_t ttl = UINT32_MAX;
	for (size_t i = 0; i < z->n; i++)
		if (z->rrs[i]->type == type && z->rrs[i]->ttl < ttl && dns_name_equal(&z->rrs[i]->owner, source))
			ttl = z->rrs[i]->ttl;
	if (ttl == UINT32_MAX)
		return 0;
	set_begin(as, owner, type, ttl);
	for (size_t i = 0; i < z->n; i++) {
		const dns_rr *rr = z->rrs[i];
		if (rr->type != type || !dns_name_equal(&rr->owner, source))
			continue;
		(*found)++;
		if (write_rr(w, rr, owner, ttl) != 0)
			return ERR_LIMIT;
		set_add(as, rr->rdata, rr->rdlen);
	}
	return set_sign(w, as);
}

/* The DNSKEY RRset at the apex (TTL: the SOA's). 0 or ERR_LIMIT. */
static int write_dnskey(dns_writer *w, const dns_zone *z, const dns_name *owner, answer_sign *as, int *found)
{
	set_begin(as, owner, DNS_T_DNSKEY, z->soa->ttl);
	for (int i = 0; i < dnssec_keys_count(z->keys); i++) {
		(*found)++;
		if (write_raw(w, owner, DNS_T_DNSKEY, z->soa->ttl, dnssec_key_dnskey(z->keys, i),
			      DNSSEC_DNSKEY_RDLEN) != 0)
			return ERR_LIMIT;
		set_add(as, dnssec_key_dnskey(z->keys, i), DNSSEC_DNSKEY_RDLEN);
	}
	return set_sign(w, as);
}

/* The addresses of alias a for q (A, AAAA or ANY), with owner: the
 * target's routed answer (with its ECS scope), or its static A and AAAA
 * RRsets, each signed as owner's; a CNAME or another alias at the target is
 * followed inside the zone (CNAME_CHAIN_MAX links; a loop or a name without
 * addresses gives nothing: NODATA). Returns the records written;
 * *truncated when they did not all fit. */
static int write_alias(dns_writer *w, const dns_zone *z, const zone_alias *a, const dns_name *owner,
		       const dns_query *q, const dns_route_env *env, answer_sign *as, bool *truncated, int *scope)
{
	dns_name target = a->target;
	for (int hop = 0; hop <= CNAME_CHAIN_MAX; hop++) {
		const dns_route *route = route_at(z, &target);
		if (route)
			return write_route(w, route, owner, q, env, as, truncated, scope);
		const zone_alias *next = alias_at(z, &target);
		const dns_rr *cname = NULL;
		for (size_t i = 0; i < z->n && !next; i++)
			if (z->rrs[i]->type == DNS_T_CNAME && dns_name_equal(&z->rrs[i]->owner, &target))
				cname = z->rrs[i];
		if (next) {
			target = next->target;
			continue;
		}
		if (cname) {
			size_t off = 0;
			if (dns_name_read(cname->rdata, cname->rdlen, &off, &target) != 0 ||
			    !dns_name_within(&target, &z->origin))
				return 0; /* out of the zone: we do not resolve */
			continue;
		}
		int found = 0;
		if ((q->qtype == DNS_T_A || q->qtype == DNS_T_ANY) &&
		    write_set(w, z, &target, DNS_T_A, owner, as, &found) != 0) {
			*truncated = true;
			return found;
		}
		if ((q->qtype == DNS_T_AAAA || q->qtype == DNS_T_ANY) &&
		    write_set(w, z, &target, DNS_T_AAAA, owner, as, &found) != 0)
			*truncated = true;
		return found;
	}
	return 0; /* a chain too long (or a loop) */
}

int dns_zone_check_aliases(const dns_zone *z, int *line, char *err, size_t errcap)
{
	for (size_t i = 0; i < z->naliases; i++) {
		const zone_alias *a = &z->aliases[i];
		if (node_exists(z, &a->target))
			continue;
		char name[4 * DNS_NAME_MAX + 2];
		dns_name_to_text(&a->target, name, sizeof name);
		snprintf(err, errcap, "the alias target %.200s is not a name of the zone", name);
		*line = a->line;
		return ERR_INVAL;
	}
	return 0;
}

/* The types at node (for an NSEC's bitmap), at most cap. */
static int node_types(const dns_zone *z, const dns_name *node, uint16_t *types, int cap)
{
	int n = 0;
	for (size_t i = 0; i < z->n && n < cap; i++) {
		if (!dns_name_equal(&z->rrs[i]->owner, node))
			continue;
		bool dup = false;
		for (int k = 0; k < n && !dup; k++)
			dup = types[k] == z->rrs[i]->type;
		if (!dup)
			types[n++] = z->rrs[i]->type;
	}
	const dns_route *r = route_at(z, node);
	for (int i = 0; r && i < r->n && n + 2 <= cap; i++) {
		if (r->r[i].n4)
			types[n++] = DNS_T_A; /* (duplicates are harmless in a bitmap) */
		if (r->r[i].n6)
			types[n++] = DNS_T_AAAA;
	}
	if (alias_at(z, node) && n + 2 <= cap) {
		types[n++] = DNS_T_A; /* (what the target has; the type asked is taken out) */
		types[n++] = DNS_T_AAAA;
	}
	if (z->keys && dns_name_equal(node, &z->origin) && n < cap)
		types[n++] = DNS_T_DNSKEY;
	return n;
}

static bool node_exists(const dns_zone *z, const dns_name *name)
{
	for (size_t i = 0; i < z->n; i++)
		if (dns_name_equal(&z->rrs[i]->owner, name))
			return true;
	return route_at(z, name) != NULL || alias_at(z, name) != NULL;
}

/* An empty non-terminal: no records, but names below it. */
static bool has_descendants(const dns_zone *z, const dns_name *name)
{
	for (size_t i = 0; i < z->n; i++)
		if (z->rrs[i]->owner.len > name->len && dns_name_within(&z->rrs[i]->owner, name))
			return true;
	for (size_t i = 0; i < z->nroutes; i++)
		if (z->routes[i].owner.len > name->len && dns_name_within(&z->routes[i].owner, name))
			return true;
	for (size_t i = 0; i < z->naliases; i++)
		if (z->aliases[i].owner.len > name->len && dns_name_within(&z->aliases[i].owner, name))
			return true;
	return false;
}

static const dns_zone *zone_for(dns_zone *const *zones, int n, const dns_name *name)
{
	const dns_zone *best = NULL;
	for (int i = 0; i < n; i++)
		if (zones[i] && dns_zone_ready(zones[i]) && dns_name_within(name, &zones[i]->origin) &&
		    (!best || zones[i]->origin.len > best->origin.len))
			best = zones[i];
	return best;
}

static uint32_t soa_u32(const dns_rr *soa, int k)
{
	size_t off = 0;
	dns_name n;
	for (int i = 0; i < 2; i++)
		if (dns_name_read(soa->rdata, soa->rdlen, &off, &n) != 0)
			return 0;
	const uint8_t *p = soa->rdata + off + 4 * (size_t)k;
	if (off + 4 * (size_t)k + 4 > soa->rdlen)
		return 0;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reserve room for the OPT so that it always fits: its size. */
static size_t opt_size(const dns_query *q, const uint8_t *sc)
{
	if (!q->edns)
		return 0;
	return 11 + (q->ecs ? 4 + 4 + (size_t)(q->ecs_source + 7) / 8 : 0) + (q->cookie && sc ? 4 + 8 + 16 : 0);
}

static void finish_opt(dns_writer *w, const dns_query *q, uint16_t udp_size, int rcode, const uint8_t *sc,
		       int scope)
{
	if (!q->edns)
		return;
	size_t at;
	if (dns_w_opt_begin(w, udp_size, rcode, q->dnssec_ok, &at) != 0)
		return; /* reserved: cannot happen */
	if (q->ecs) {
		uint8_t e[20];
		size_t bytes = (size_t)(q->ecs_source + 7) / 8;
		e[0] = (uint8_t)(q->ecs_family >> 8);
		e[1] = (uint8_t)q->ecs_family;
		e[2] = q->ecs_source;
		e[3] = (uint8_t)scope; /* 0: the same answer for every subnet */
		memcpy(e + 4, q->ecs_addr, bytes);
		dns_w_opt_option(w, 8, e, (uint16_t)(4 + bytes));
	}
	if (q->cookie && sc) {
		uint8_t c[8 + 16];
		memcpy(c, q->client_cookie, 8);
		memcpy(c + 8, sc, 16);
		dns_w_opt_option(w, 10, c, sizeof c);
	}
	dns_w_rr_end(w, at);
}

size_t dns_answer(dns_zone *const *zones, int n, const dns_query *q, uint8_t *buf, size_t cap, uint16_t udp_size,
		  const uint8_t *server_cookie, const dns_route_env *env)
{
	dns_writer w;
	bool truncated = false;
	int scope = 0;
	size_t reserve = opt_size(q, server_cookie);
	if (cap < DNS_UDP_MIN || cap < reserve + DNS_HEADER_BYTES)
		return 0;
	int rcode = DNS_R_NOERROR;
	answer_sign as = {.signer = NULL, .failed = false}; /* (before any goto done) */
	dns_mark start = {0};
	const dns_zone *z = q->qclass == DNS_C_IN ? zone_for(zones, n, &q->qname) : NULL;
	if (!z || q->qtype == DNS_T_AXFR || q->qtype == DNS_T_IXFR)
		rcode = DNS_R_REFUSED;
	if (dns_w_begin(&w, buf, cap - reserve, q, rcode, true) != 0) {
		/* the question alone does not fit (cannot happen at 512 bytes) */
		w.cap = cap;
		finish_opt(&w, q, udp_size, DNS_R_SERVFAIL, server_cookie, 0);
		return dns_w_length(&w);
	}
	if (rcode != DNS_R_NOERROR)
		goto done;
	dns_w_flags(&w, DNS_F_AA, 0);
	start = dns_w_mark(&w);
	if (z->keys && q->edns && q->dnssec_ok && env && env->signer) {
		as.signer = env->signer;
		as.keys = z->keys;
	}
	enum { NEG_NODATA, NEG_EMPTY, NEG_NXDOMAIN } neg = NEG_NODATA;
	const dns_name *neg_node = NULL; /* the node a NODATA's types come from */
	dns_name wild;
	dns_name name = q->qname;
	dns_name seen[CNAME_CHAIN_MAX + 1]; /* the chain's names: a loop ends it */
	int nseen = 0;
	for (int hop = 0; hop <= CNAME_CHAIN_MAX; hop++) {
		for (int k = 0; k < nseen; k++)
			if (dns_name_equal(&seen[k], &name))
				goto done; /* a CNAME loop: what was written stands */
		seen[nseen++] = name;
		const dns_name *source = &name; /* the node answered from */
		if (!node_exists(z, &name)) {
			if (has_descendants(z, &name)) {
				rcode = DNS_R_NOERROR; /* an empty non-terminal: NODATA */
				neg = NEG_EMPTY;
				goto negative;
			}
			/* the closest encloser (the longest ancestor that exists,
			 * with records or names below it: the apex at least), then
			 * its wildcard */
			int labels = dns_name_labels(&name) - dns_name_labels(&z->origin);
			dns_name enc;
			bool have = false;
			for (int skip = 1; skip <= labels && !have; skip++) {
				dns_name_suffix(&name, skip, &enc);
				have = node_exists(z, &enc) || has_descendants(z, &enc);
			}
			if (have && enc.len + 2 <= DNS_NAME_MAX) {
				wild.wire[0] = 1;
				wild.wire[1] = '*';
				memcpy(wild.wire + 2, enc.wire, enc.len);
				wild.len = (uint8_t)(enc.len + 2);
				if (node_exists(z, &wild))
					source = &wild;
			}
			if (source != &wild) {
				rcode = DNS_R_NXDOMAIN;
				neg = NEG_NXDOMAIN;
				goto negative;
			}
		}
		/* a CNAME answers every type but CNAME itself (and ANY) */
		const dns_rr *cname = NULL;
		for (size_t i = 0; i < z->n; i++)
			if (z->rrs[i]->type == DNS_T_CNAME && dns_name_equal(&z->rrs[i]->owner, source))
				cname = z->rrs[i];
		if (cname && q->qtype != DNS_T_CNAME && q->qtype != DNS_T_ANY) {
			int unused = 0;
			if (write_set(&w, z, source, DNS_T_CNAME, &name, &as, &unused) != 0) {
				truncated = true;
				goto done;
			}
			size_t off = 0;
			dns_name target;
			if (dns_name_read(cname->rdata, cname->rdlen, &off, &target) != 0 ||
			    !dns_name_within(&target, &z->origin))
				goto done; /* out of the zone: the resolver follows it */
			name = target;
			continue;
		}
		int found = 0;
		if (q->qtype != DNS_T_ANY) {
			if (write_set(&w, z, source, q->qtype, &name, &as, &found) != 0) {
				truncated = true;
				goto done;
			}
		} else {
			for (size_t i = 0; i < z->n; i++) { /* each RRset once, in the order first added */
				const dns_rr *rr = z->rrs[i];
				if (!dns_name_equal(&rr->owner, source))
					continue;
				bool seen_type = false;
				for (size_t k = 0; k < i && !seen_type; k++)
					seen_type = z->rrs[k]->type == rr->type && dns_name_equal(&z->rrs[k]->owner, source);
				if (!seen_type && write_set(&w, z, source, rr->type, &name, &as, &found) != 0) {
					truncated = true;
					goto done;
				}
			}
		}
		if (z->keys && (q->qtype == DNS_T_DNSKEY || q->qtype == DNS_T_ANY) && dns_name_equal(source, &z->origin) &&
		    write_dnskey(&w, z, &name, &as, &found) != 0) {
			truncated = true;
			goto done;
		}
		const dns_route *route = route_at(z, source);
		if (route && (q->qtype == DNS_T_A || q->qtype == DNS_T_AAAA || q->qtype == DNS_T_ANY)) {
			found += write_route(&w, route, &name, q, env, &as, &truncated, &scope);
			if (truncated)
				goto done;
		}
		const zone_alias *alias = alias_at(z, source);
		if (alias && (q->qtype == DNS_T_A || q->qtype == DNS_T_AAAA || q->qtype == DNS_T_ANY)) {
			found += write_alias(&w, z, alias, &name, q, env, &as, &truncated, &scope);
			if (truncated)
				goto done;
		}
		if (found)
			goto done;
		rcode = DNS_R_NOERROR; /* NODATA */
		neg = NEG_NODATA;
		neg_node = source;
		goto negative;
	}
	goto done; /* a chain longer than CNAME_CHAIN_MAX: what was written stands */
negative:
	if (as.signer && rcode == DNS_R_NXDOMAIN)
		rcode = DNS_R_NOERROR; /* compact denial (RFC 9824): the NSEC says NXNAME */
	dns_w_rcode(&w, rcode);
	dns_w_section(&w, 2);
	{
		uint32_t ttl = z->soa->ttl, min = soa_u32(z->soa, 4);
		ttl = min < ttl ? min : ttl;
		set_begin(&as, &z->soa->owner, DNS_T_SOA, ttl);
		set_add(&as, z->soa->rdata, z->soa->rdlen);
		if (write_rr(&w, z->soa, &z->soa->owner, ttl) != 0 || set_sign(&w, &as) != 0) {
			truncated = true;
			goto done;
		}
		if (as.signer) {
			/* an NSEC at the name that covers nothing else: no walking.
			 * Its types: NXNAME for no such name; none for an empty
			 * non-terminal; else those of the node, but the one asked */
			uint16_t types[40];
			int nt = 0;
			if (neg == NEG_NXDOMAIN)
				types[nt++] = DNSSEC_T_NXNAME;
			else if (neg == NEG_NODATA && neg_node)
				nt = node_types(z, neg_node, types, 36);
			for (int i = 0; i < nt; i++)
				if (types[i] == q->qtype)
					types[i--] = types[--nt];
			types[nt++] = DNS_T_RRSIG;
			types[nt++] = DNS_T_NSEC;
			uint8_t rd[DNS_NAME_MAX + 2 + 2 * (2 + 32)];
			int len = dnssec_nsec_rdata(&name, types, nt, rd, sizeof rd);
			set_begin(&as, &name, DNS_T_NSEC, ttl);
			set_add(&as, rd, (uint16_t)(len > 0 ? len : 0));
			if (len < 0)
				as.failed = true; /* cannot happen: rd holds the largest */
			else if (write_raw(&w, &name, DNS_T_NSEC, ttl, rd, (size_t)len) != 0 || set_sign(&w, &as) != 0)
				truncated = true;
		}
	}
done:
	if (as.failed) {
		/* a signed zone's answer without its signatures would be bogus:
		 * say the server failed instead */
		dns_w_rollback(&w, &start);
		truncated = false;
		rcode = DNS_R_SERVFAIL;
		dns_w_rcode(&w, rcode);
	}
	if (truncated)
		dns_w_flags(&w, DNS_F_TC, 0);
	w.cap = cap; /* the reserved room: the OPT always fits */
	finish_opt(&w, q, udp_size, rcode, server_cookie, scope);
	return dns_w_length(&w);
}

size_t dns_answer_error(const uint8_t *query, size_t qlen, dns_parse_result r, uint8_t *buf, size_t cap,
			uint16_t udp_size)
{
	if (r == DNS_PARSE_DROP || r == DNS_PARSE_OK || qlen < DNS_HEADER_BYTES || cap < DNS_UDP_MIN)
		return 0;
	dns_query q;
	memset(&q, 0, sizeof q);
	q.id = (uint16_t)(query[0] << 8 | query[1]);
	q.flags = (uint16_t)(query[2] << 8 | query[3]);
	dns_writer w;
	int rcode = r == DNS_PARSE_NOTIMP ? DNS_R_NOTIMP : r == DNS_PARSE_BADVERS ? DNS_R_BADVERS : DNS_R_FORMERR;
	if (dns_w_begin(&w, buf, cap, &q, rcode, false) != 0)
		return 0;
	if (r == DNS_PARSE_BADVERS) {
		size_t at;
		if (dns_w_opt_begin(&w, udp_size, DNS_R_BADVERS, false, &at) == 0)
			dns_w_rr_end(&w, at);
	}
	return dns_w_length(&w);
}

/* --- zone transfers --- */

typedef struct axfr {
	const dns_query *q;
	uint8_t *buf;
	size_t cap;
	dns_writer w;
	bool begun, first;
	int (*sink)(void *arg, uint8_t *msg, size_t len);
	void *arg;
	int rc;
} axfr;

static int axfr_begin(axfr *x)
{
	if (dns_w_begin(&x->w, x->buf, x->cap, x->q, DNS_R_NOERROR, x->first) != 0)
		return ERR_LIMIT;
	dns_w_flags(&x->w, DNS_F_AA, 0);
	x->first = false;
	x->begun = true;
	return 0;
}

static int axfr_flush(axfr *x)
{
	if (!x->begun)
		return 0;
	x->begun = false;
	return x->sink(x->arg, x->buf, dns_w_length(&x->w));
}

/* One record into the current message, or into a new one when it is full.
 * The first failure sticks in x->rc. */
static void axfr_put(axfr *x, const dns_rr *rr, const dns_name *owner, uint16_t type, uint32_t ttl,
		     const uint8_t *rdata, size_t rdlen)
{
	for (int attempt = 0; attempt < 2 && x->rc == 0; attempt++) {
		if (!x->begun && (x->rc = axfr_begin(x)) != 0)
			return;
		int rc = rr ? write_rr(&x->w, rr, owner, ttl) : write_raw(&x->w, owner, type, ttl, rdata, rdlen);
		if (rc == 0)
			return;
		if (attempt == 1 || dns_w_length(&x->w) == 0) {
			x->rc = ERR_LIMIT; /* one record larger than a message: cannot happen below 64 KiB */
			return;
		}
		x->rc = axfr_flush(x);
	}
}

/* The configured addresses of a routed record set (every region's). */
static void axfr_route(axfr *x, const dns_name *owner, const dns_route *r)
{
	for (int i = 0; i < r->n; i++) {
		for (int k = 0; k < r->r[i].n4; k++)
			axfr_put(x, NULL, owner, DNS_T_A, r->ttl, r->r[i].a4[k], 4);
		for (int k = 0; k < r->r[i].n6; k++)
			axfr_put(x, NULL, owner, DNS_T_AAAA, r->ttl, r->r[i].a6[k], 16);
	}
}

int dns_zone_axfr(const dns_zone *z, const dns_query *q, bool soa_only, uint8_t *buf, size_t cap,
		  int (*sink)(void *arg, uint8_t *msg, size_t len), void *arg)
{
	if (!z->soa)
		return ERR_INVAL;
	axfr x = {.q = q, .buf = buf, .cap = cap, .first = true, .sink = sink, .arg = arg};
	axfr_put(&x, z->soa, &z->soa->owner, 0, z->soa->ttl, NULL, 0);
	if (soa_only) {
		if (x.rc == 0)
			x.rc = axfr_flush(&x);
		return x.rc;
	}
	for (size_t i = 0; i < z->n && x.rc == 0; i++)
		if (z->rrs[i] != z->soa)
			axfr_put(&x, z->rrs[i], &z->rrs[i]->owner, 0, z->rrs[i]->ttl, NULL, 0);
	for (size_t i = 0; i < z->nroutes && x.rc == 0; i++)
		axfr_route(&x, &z->routes[i].owner, &z->routes[i].route);
	/* an alias is transferred as the addresses its target has in this
	 * static view (a secondary knows no ALIAS type) */
	for (size_t i = 0; i < z->naliases && x.rc == 0; i++) {
		dns_name target = z->aliases[i].target;
		for (int hop = 0; hop <= CNAME_CHAIN_MAX; hop++) {
			const zone_alias *next = alias_at(z, &target);
			if (!next)
				break;
			target = next->target;
		}
		const dns_route *r = route_at(z, &target);
		if (r)
			axfr_route(&x, &z->aliases[i].owner, r);
		for (size_t k = 0; k < z->n && x.rc == 0; k++) {
			const dns_rr *rr = z->rrs[k];
			if ((rr->type == DNS_T_A || rr->type == DNS_T_AAAA) && dns_name_equal(&rr->owner, &target))
				axfr_put(&x, rr, &z->aliases[i].owner, 0, rr->ttl, NULL, 0);
		}
	}
	axfr_put(&x, z->soa, &z->soa->owner, 0, z->soa->ttl, NULL, 0);
	if (x.rc == 0)
		x.rc = axfr_flush(&x);
	return x.rc;
}

uint32_t dns_zone_serial(const dns_zone *z)
{
	return z->soa ? soa_u32(z->soa, 0) : 0;
}
