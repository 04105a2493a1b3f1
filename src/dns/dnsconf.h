/*
 * dnsconf.h - the DNS part of a deployment's config file: the zones tandem
 * serves and its DNS server instances (docs/DNS.md, "Config"). The core
 * config (core/config.h) leaves [zone ...] and [dns ...] sections to this
 * module, which reads the same file on its own:
 *
 *   [zone tandem.test]
 *   soa = ns1 hostmaster 2026120301 3600 600 86400 30
 *   ttl = 3600                       ; default TTL of the records below
 *   record = @ NS ns1                ; OWNER [TTL] TYPE RDATA, as in a zone file
 *   record = api 10 A 127.0.0.2
 *
 *   [dns ns1]
 *   listen = 127.0.0.5:53, [::1]:53  ; UDP and TCP on each
 *   threads = 2                      ; one socket of each per thread (SO_REUSEPORT)
 *   rrl_rate = 20                    ; UDP answers/s per source /24 or /56 (0: off)
 *   rrl_slip = 2                     ; every 2nd limited answer sent truncated
 *   latency_map = 10.1.0.0/16 eu us, default eu us   ; route.h
 *   geoip_db = GeoLite2-Country.mmdb ; optional, for country:/continent: entries
 *   metrics_listen = 127.0.0.1:9153  ; /metrics and /health (health.h)
 *   secondaries = 127.0.0.9 key=xfr1 ; who may transfer the zones (TSIG: xfr.h)
 *   health_interval_ms = 1000        ; and health_timeout_ms, health_failures (3),
 *                                    ; health_recoveries (2), health_max_rtt_ms (0)
 *
 * and in a [zone], routed names: `route = api latency eu=127.0.0.2 us=127.0.0.3`,
 * and `dnssec = on` (the zone is signed with its keys from the secrets
 * file's [dnssec] section, dnssec.h; a zone that cannot be signed, with NS
 * below its apex, is refused here).
 * Every region a route or a latency map names must have its [region NAME]
 * section in the same file (its api_listen is what the checks call).
 *
 * Errors are "FILE:LINE: message" lines, as the core config's.
 */
#ifndef TANDEM_DNS_DNSCONF_H
#define TANDEM_DNS_DNSCONF_H

#include <stddef.h>

#include "dns/route.h"
#include "dns/xfr.h"
#include "dns/zone.h"

#define DNSCONF_MAX_ZONES 16
#define DNSCONF_MAX_SERVERS 8
#define DNSCONF_MAX_LISTEN 4

typedef struct dns_server_conf {
	char name[32];
	char listen[DNSCONF_MAX_LISTEN][64];
	int nlisten;
	int threads;
	int rrl_rate;    /* UDP answers per second per source prefix (0: no limit; rrl.h) */
	int rrl_slip;    /* every n-th limited answer goes out truncated (0: none) */
	/* routing (route.h) and health checks (health.h) */
	dns_latency_map *latency_map; /* owned; NULL: none (routes answer in their own order) */
	char geoip_db[512];           /* the MaxMind DB of the map's country:/continent: entries ("" none) */
	char metrics_listen[128];     /* /metrics and /health, plain HTTP ("" none) */
	int health_interval_ms;       /* 1000 */
	int health_timeout_ms;        /* 1000 */
	int health_failures;          /* 3 */
	int health_recoveries;        /* 2 */
	int health_max_rtt_ms;        /* a slower check fails (0: only the timeout) */
	/* zone transfers (xfr.h): who may ask, with which TSIG key (their
	 * secrets: dns_xfr_load_keys, at start) */
	dns_secondary secondaries[DNS_XFR_MAX_SECONDARIES];
	int nsecondaries;
	int line;
} dns_server_conf;

typedef struct dns_conf {
	dns_zone *zones[DNSCONF_MAX_ZONES];
	int nzones;
	dns_regions regions;          /* every region a route or latency map names */
	dns_server_conf servers[DNSCONF_MAX_SERVERS];
	int nservers;
} dns_conf;

/* Read the zones and servers of FILE into *out (which owns the zones:
 * dnsconf_free). 0 (also when the file has none), ERR_CONFIG with every
 * problem in err as FILE:LINE lines (the first ones, up to errcap; *out is
 * freed), or ERR_IO when the file cannot be read. */
int dnsconf_load(const char *path, dns_conf *out, char *err, size_t errcap);
void dnsconf_free(dns_conf *c);
/* The server named name, or NULL. */
const dns_server_conf *dnsconf_server(const dns_conf *c, const char *name);

#endif
