/*
 * dnsconf.c - the [zone ...] and [dns ...] sections of a deployment's
 * config (dnsconf.h). Read with libinih as the core config is, through a
 * line-counting reader so that every error names its line; the other
 * sections are the core config's and are skipped here.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "core/buf.h"
#include "core/err.h"
#include "dns/dnsconf.h"
#include "dns/zonefile.h"

typedef struct reader {
	FILE *file;
	const char *path;
	int line;
	buf *errors;
	int error_count;
	dns_conf *c;
	char section[128];
	dns_zone *zone;            /* the [zone] being read, or NULL */
	int zone_line;
	uint32_t zone_ttl;
	int zone_has_soa;
	int dnssec_line;           /* where the zone's `dnssec = on` is */
	dns_server_conf *server;   /* the [dns] being read, or NULL */
	char config_regions[16][32]; /* the [region NAME] sections seen (routes must name one) */
	int nconfig_regions;
	char dir[512];             /* the config file's directory, for relative paths */
} reader;

static void error_at(reader *r, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void error_at(reader *r, int line, const char *fmt, ...)
{
	r->error_count++;
	if (r->error_count > 20)
		return;
	buf_printf(r->errors, "%s:%d: ", r->path, line);
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(r->errors, fmt, ap);
	va_end(ap);
	buf_addc(r->errors, '\n');
}

static char *read_line(char *str, int num, void *stream)
{
	reader *r = stream;
	char *s = fgets(str, num, r->file);
	if (s)
		r->line++;
	return s;
}

/* The end of a [zone]: it must have its SOA. */
static void zone_done(reader *r)
{
	if (r->zone && !dns_zone_ready(r->zone))
		error_at(r, r->zone_line, "[zone %s] needs soa = MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM",
			 r->section + 5);
	char err[300];
	int line = 0;
	if (r->zone && dns_zone_check_aliases(r->zone, &line, err, sizeof err) != 0)
		error_at(r, line ? line : r->zone_line, "[zone %s]: %s", r->section + 5, err);
	if (r->zone && dns_zone_dnssec(r->zone) && dns_zone_check_dnssec(r->zone, err, sizeof err) != 0)
		error_at(r, r->dnssec_line, "[zone %s] dnssec = on: %s", r->section + 5, err);
	r->zone = NULL;
}

static void section_start(reader *r, const char *section)
{
	zone_done(r);
	r->server = NULL;
	snprintf(r->section, sizeof r->section, "%s", section);
	if (strncmp(section, "zone ", 5) == 0) {
		dns_name origin;
		if (dns_name_from_text(section + 5, &origin) != 0) {
			error_at(r, r->line, "[%s]: '%s' is not a domain name", section, section + 5);
			return;
		}
		for (int i = 0; i < r->c->nzones; i++)
			if (dns_name_equal(dns_zone_origin(r->c->zones[i]), &origin)) {
				error_at(r, r->line, "zone %s is defined twice", section + 5);
				return;
			}
		if (r->c->nzones == DNSCONF_MAX_ZONES) {
			error_at(r, r->line, "too many zones (at most %d)", DNSCONF_MAX_ZONES);
			return;
		}
		r->zone = dns_zone_new(&origin);
		if (!r->zone) {
			error_at(r, r->line, "out of memory");
			return;
		}
		r->c->zones[r->c->nzones++] = r->zone;
		r->zone_line = r->line;
		r->zone_ttl = 3600;
		r->zone_has_soa = 0;
	} else if (strncmp(section, "dns ", 4) == 0) {
		const char *name = section + 4;
		size_t n = strlen(name);
		int ok = n > 0 && n < sizeof r->server->name && islower((unsigned char)name[0]);
		for (size_t i = 0; ok && i < n; i++)
			ok = islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]) || name[i] == '-';
		if (!ok) {
			error_at(r, r->line, "dns server name '%s' must match [a-z][a-z0-9-]{0,30}", name);
			return;
		}
		if (dnsconf_server(r->c, name)) {
			error_at(r, r->line, "[dns %s] is defined twice", name);
			return;
		}
		if (r->c->nservers == DNSCONF_MAX_SERVERS) {
			error_at(r, r->line, "too many [dns] sections (at most %d)", DNSCONF_MAX_SERVERS);
			return;
		}
		r->server = &r->c->servers[r->c->nservers++];
		memset(r->server, 0, sizeof *r->server);
		snprintf(r->server->name, sizeof r->server->name, "%s", name);
		r->server->threads = 2;
		r->server->rrl_rate = 20;
		r->server->rrl_slip = 2;
		r->server->health_interval_ms = 1000;
		r->server->health_timeout_ms = 1000;
		r->server->health_failures = 3;
		r->server->health_recoveries = 2;
		r->server->health_max_rtt_ms = 0;
		r->server->line = r->line;
	} else if (strncmp(section, "region ", 7) == 0 &&
		   r->nconfig_regions < (int)(sizeof r->config_regions / sizeof r->config_regions[0])) {
		snprintf(r->config_regions[r->nconfig_regions++], sizeof r->config_regions[0], "%s", section + 7);
	}
}

static int parse_uint(const char *s, long long max, long long *out)
{
	char *end;
	if (!isdigit((unsigned char)*s))
		return -1;
	long long v = strtoll(s, &end, 10);
	if (*end || v < 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

/* record = OWNER [TTL] TYPE RDATA */
static void zone_record(reader *r, const char *value)
{
	char owner[300], second[32];
	int used = 0;
	if (sscanf(value, "%299s %31s %n", owner, second, &used) != 2) {
		error_at(r, r->line, "record must be OWNER [TTL] TYPE RDATA, not '%.80s'", value);
		return;
	}
	uint32_t ttl = r->zone_ttl;
	const char *type = second, *rest = value + used;
	long long t;
	char typebuf[32];
	if (parse_uint(second, 0x7fffffff, &t) == 0) {
		ttl = (uint32_t)t;
		int used2 = 0;
		if (sscanf(rest, "%31s %n", typebuf, &used2) != 1) {
			error_at(r, r->line, "record must be OWNER [TTL] TYPE RDATA, not '%.80s'", value);
			return;
		}
		type = typebuf;
		rest += used2;
	}
	char err[200] = "";
	int rc = dns_zone_add_at(r->zone, dns_zone_origin(r->zone), r->line, owner, type, ttl, rest, err, sizeof err);
	if (rc != 0)
		error_at(r, r->line, "record '%.80s': %s", value, err[0] ? err : "cannot be added");
}

/* route = OWNER POLICY REGION=ADDR... [ttl=N] [weights=...] */
static void zone_route(reader *r, const char *value)
{
	char owner[300];
	int used = 0;
	if (sscanf(value, "%299s %n", owner, &used) != 1 || !value[used]) {
		error_at(r, r->line, "route must be OWNER POLICY REGION=ADDR..., not '%.80s'", value);
		return;
	}
	dns_route route;
	char err[200] = "";
	if (dns_route_parse(value + used, &r->c->regions, r->line, &route, err, sizeof err) != 0) {
		error_at(r, r->line, "route '%.80s': %s", value, err);
		return;
	}
	if (dns_zone_add_route(r->zone, owner, &route, err, sizeof err) != 0)
		error_at(r, r->line, "route '%.80s': %s", value, err[0] ? err : "cannot be added");
}

/* file = PATH (relative to the config's directory): its records join the
 * zone's; its errors are its own FILE:LINE lines. */
static void zone_file(reader *r, const char *value)
{
	char path[1024];
	int n = value[0] == '/' ? snprintf(path, sizeof path, "%s", value)
				: snprintf(path, sizeof path, "%s/%s", r->dir, value);
	if (!value[0] || n < 0 || (size_t)n >= sizeof path) {
		error_at(r, r->line, "file needs a PATH (at most %zu bytes)", sizeof path - 1);
		return;
	}
	char err[4096];
	int rc = dns_zonefile_load(r->zone, path, r->zone_ttl, err, sizeof err);
	if (rc == ERR_CONFIG) {
		/* the zone file's own lines, each counted as an error */
		for (char *line = err, *next; *line; line = next) {
			next = strchr(line, '\n');
			if (next)
				*next++ = '\0';
			else
				next = line + strlen(line);
			r->error_count++;
			if (r->error_count <= 20)
				buf_printf(r->errors, "%s\n", line);
		}
	} else if (rc != 0) {
		error_at(r, r->line, "file: %s", rc == ERR_NOMEM ? "out of memory" : err);
	} else {
		r->zone_has_soa = dns_zone_ready(r->zone);
	}
}

static void zone_key(reader *r, const char *name, const char *value)
{
	if (!r->zone)
		return; /* the section's problem is reported already */
	if (strcmp(name, "soa") == 0) {
		char err[200] = "";
		if (r->zone_has_soa)
			error_at(r, r->line, "[zone] has one soa");
		else if (dns_zone_add(r->zone, "@", "SOA", r->zone_ttl, value, err, sizeof err) != 0)
			error_at(r, r->line, "soa: %s", err);
		else
			r->zone_has_soa = 1;
	} else if (strcmp(name, "ttl") == 0) {
		long long v;
		if (parse_uint(value, 0x7fffffff, &v) != 0)
			error_at(r, r->line, "ttl must be an integer from 0 to 2147483647, not '%s'", value);
		else
			r->zone_ttl = (uint32_t)v;
	} else if (strcmp(name, "record") == 0) {
		zone_record(r, value);
	} else if (strcmp(name, "route") == 0) {
		zone_route(r, value);
	} else if (strcmp(name, "file") == 0) {
		zone_file(r, value);
	} else if (strcmp(name, "alias") == 0) {
		/* alias = OWNER TARGET: the same as record = OWNER ALIAS TARGET */
		char owner[300];
		int used = 0;
		char err[200] = "";
		if (sscanf(value, "%299s %n", owner, &used) != 1 || !value[used])
			error_at(r, r->line, "alias must be OWNER TARGET, not '%.80s'", value);
		else if (dns_zone_add_at(r->zone, dns_zone_origin(r->zone), r->line, owner, "ALIAS", 0, value + used, err,
					 sizeof err) != 0)
			error_at(r, r->line, "alias '%.80s': %s", value, err);
	} else if (strcmp(name, "dnssec") == 0) {
		/* the keys are in the secrets file ([dnssec]): the server loads them */
		if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
			error_at(r, r->line, "dnssec must be on or off, not '%s'", value);
		dns_zone_set_dnssec(r->zone, strcmp(value, "on") == 0);
		r->dnssec_line = r->line;
	} else {
		error_at(r, r->line, "unknown key '%s' in [%s] (soa, ttl, record, route, alias, dnssec, file)", name, r->section);
	}
}

static void server_key(reader *r, const char *name, const char *value)
{
	dns_server_conf *s = r->server;
	if (!s)
		return;
	if (strcmp(name, "listen") == 0) {
		char copy[512];
		snprintf(copy, sizeof copy, "%s", value);
		s->nlisten = 0;
		char *save = NULL;
		for (char *a = strtok_r(copy, ", ", &save); a; a = strtok_r(NULL, ", ", &save)) {
			const char *colon = strrchr(a, ':');
			long long port;
			if (s->nlisten == DNSCONF_MAX_LISTEN || strlen(a) >= sizeof s->listen[0] || !colon ||
			    colon == a || parse_uint(colon + 1, 65535, &port) != 0 || port == 0) {
				error_at(r, r->line, "listen must be up to %d HOST:PORT addresses, not '%s'",
					 DNSCONF_MAX_LISTEN, value);
				return;
			}
			snprintf(s->listen[s->nlisten++], sizeof s->listen[0], "%s", a);
		}
	} else if (strcmp(name, "threads") == 0) {
		long long v;
		if (parse_uint(value, 64, &v) != 0 || v < 1)
			error_at(r, r->line, "threads must be an integer from 1 to 64, not '%s'", value);
		else
			s->threads = (int)v;
	} else if (strcmp(name, "rrl_rate") == 0) {
		long long v;
		if (parse_uint(value, 1000000, &v) != 0)
			error_at(r, r->line, "rrl_rate must be an integer from 0 (off) to 1000000, not '%s'", value);
		else
			s->rrl_rate = (int)v;
	} else if (strcmp(name, "rrl_slip") == 0) {
		long long v;
		if (parse_uint(value, 10, &v) != 0)
			error_at(r, r->line, "rrl_slip must be an integer from 0 to 10, not '%s'", value);
		else
			s->rrl_slip = (int)v;
	} else if (strcmp(name, "latency_map") == 0) {
		/* several lines add up (a config line is at most 200 bytes) */
		char err[200] = "";
		if (!s->latency_map && !(s->latency_map = dns_latency_map_new()))
			error_at(r, r->line, "out of memory");
		else if (dns_latency_map_add(s->latency_map, value, &r->c->regions, r->line, err, sizeof err) != 0)
			error_at(r, r->line, "latency_map: %s", err);
	} else if (strcmp(name, "geoip_db") == 0) {
		int n = value[0] == '/' || !value[0]
				? snprintf(s->geoip_db, sizeof s->geoip_db, "%s", value)
				: snprintf(s->geoip_db, sizeof s->geoip_db, "%s/%s", r->dir, value);
		if (n < 0 || (size_t)n >= sizeof s->geoip_db)
			error_at(r, r->line, "geoip_db: the path is too long");
	} else if (strcmp(name, "secondaries") == 0) {
		/* several lines add up (a config line is at most 200 bytes) */
		char err[200] = "";
		if (dns_xfr_parse_secondaries(value, s->secondaries, &s->nsecondaries, err, sizeof err) != 0)
			error_at(r, r->line, "secondaries: %s", err);
	} else if (strcmp(name, "metrics_listen") == 0) {
		const char *colon = strrchr(value, ':');
		long long port;
		if (!colon || colon == value || strlen(value) >= sizeof s->metrics_listen ||
		    parse_uint(colon + 1, 65535, &port) != 0 || port == 0)
			error_at(r, r->line, "metrics_listen must be HOST:PORT, not '%s'", value);
		else
			snprintf(s->metrics_listen, sizeof s->metrics_listen, "%s", value);
	} else if (strcmp(name, "health_interval_ms") == 0 || strcmp(name, "health_timeout_ms") == 0 ||
		   strcmp(name, "health_failures") == 0 || strcmp(name, "health_recoveries") == 0 ||
		   strcmp(name, "health_max_rtt_ms") == 0) {
		static const struct {
			const char *name;
			size_t off;
			long long min, max;
		} keys[] = {
			{"health_interval_ms", offsetof(dns_server_conf, health_interval_ms), 50, 600000},
			{"health_timeout_ms", offsetof(dns_server_conf, health_timeout_ms), 50, 600000},
			{"health_failures", offsetof(dns_server_conf, health_failures), 1, 100},
			{"health_recoveries", offsetof(dns_server_conf, health_recoveries), 1, 100},
			{"health_max_rtt_ms", offsetof(dns_server_conf, health_max_rtt_ms), 0, 600000},
		};
		for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
			if (strcmp(name, keys[k].name) != 0)
				continue;
			long long v;
			if (parse_uint(value, keys[k].max, &v) != 0 || v < keys[k].min)
				error_at(r, r->line, "%s must be an integer from %lld to %lld, not '%s'", name, keys[k].min,
					 keys[k].max, value);
			else
				*(int *)((char *)s + keys[k].off) = (int)v;
		}
	} else {
		error_at(r, r->line,
			 "unknown key '%s' in [dns %s] (listen, threads, rrl_rate, rrl_slip, latency_map, geoip_db, "
			 "metrics_listen, secondaries, health_interval_ms, health_timeout_ms, health_failures, health_recoveries, "
			 "health_max_rtt_ms)",
			 name, s->name);
	}
}

/* After the file: what needs the whole of it. */
static void check_routing(reader *r)
{
	dns_conf *c = r->c;
	for (int i = 0; i < c->regions.n; i++) {
		bool found = false;
		for (int k = 0; k < r->nconfig_regions && !found; k++)
			found = strcmp(r->config_regions[k], c->regions.name[i]) == 0;
		if (!found)
			error_at(r, c->regions.line[i], "region '%s' has no [region %s] section (its api_listen is checked)",
				 c->regions.name[i], c->regions.name[i]);
	}
	for (int i = 0; i < c->nservers; i++) {
		dns_server_conf *s = &c->servers[i];
		char err[700] = "";
		if (s->geoip_db[0]) {
			if (!s->latency_map && !(s->latency_map = dns_latency_map_new()))
				error_at(r, s->line, "out of memory");
			else if (dns_latency_map_open_geo(s->latency_map, s->geoip_db, err, sizeof err) != 0)
				error_at(r, s->line, "[dns %s] geoip_db: %s", s->name, err);
		} else if (s->latency_map && dns_latency_map_wants_geo(s->latency_map)) {
			error_at(r, s->line, "[dns %s]: the latency map's country:/continent: entries need geoip_db = FILE",
				 s->name);
		}
		if (s->health_timeout_ms > 0 && s->health_timeout_ms > 10 * s->health_interval_ms)
			error_at(r, s->line, "[dns %s]: health_timeout_ms is at most 10 x health_interval_ms", s->name);
	}
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	reader *r = user;
	if (strcmp(section, r->section) != 0)
		section_start(r, section);
	if (!name)
		return 1;
	if (strncmp(section, "zone ", 5) == 0)
		zone_key(r, name, value);
	else if (strncmp(section, "dns ", 4) == 0)
		server_key(r, name, value);
	return 1; /* the other sections are the core config's */
}

int dnsconf_load(const char *path, dns_conf *out, char *err, size_t errcap)
{
	memset(out, 0, sizeof *out);
	buf errors;
	buf_init(&errors, errcap > 0 ? errcap : 1);
	reader r = {.path = path, .errors = &errors, .c = out};
	const char *slash = strrchr(path, '/');
	if (slash && slash != path)
		snprintf(r.dir, sizeof r.dir, "%.*s", (int)(slash - path), path);
	else
		snprintf(r.dir, sizeof r.dir, "%s", slash ? "/" : ".");
	r.file = fopen(path, "r");
	if (!r.file) {
		snprintf(err, errcap, "%s: cannot read: %m", path);
		buf_free(&errors);
		return ERR_IO;
	}
	int rc = ini_parse_stream(read_line, &r, handler, &r);
	fclose(r.file);
	zone_done(&r);
	if (rc < 0)
		error_at(&r, 0, "cannot read the file");
	else if (rc > 0 && r.error_count == 0)
		error_at(&r, rc, "syntax error");
	for (int i = 0; i < out->nservers; i++)
		if (out->servers[i].nlisten == 0)
			error_at(&r, out->servers[i].line, "[dns %s] needs listen = HOST:PORT", out->servers[i].name);
	if (rc >= 0)
		check_routing(&r);
	if (r.error_count) {
		snprintf(err, errcap, "%.*s", (int)errors.len, errors.data ? errors.data : "");
		buf_free(&errors);
		dnsconf_free(out);
		return ERR_CONFIG;
	}
	buf_free(&errors);
	if (errcap)
		err[0] = '\0';
	return 0;
}

void dnsconf_free(dns_conf *c)
{
	for (int i = 0; i < c->nzones; i++)
		dns_zone_free(&c->zones[i]);
	for (int i = 0; i < c->nservers; i++)
		dns_latency_map_free(&c->servers[i].latency_map);
	c->nzones = 0;
	c->nservers = 0;
	c->regions.n = 0;
}

const dns_server_conf *dnsconf_server(const dns_conf *c, const char *name)
{
	for (int i = 0; i < c->nservers; i++)
		if (strcmp(c->servers[i].name, name) == 0)
			return &c->servers[i];
	return NULL;
}
