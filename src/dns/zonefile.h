/*
 * zonefile.h - a zone file in RFC 1035 master format (section 5), read into
 * a zone (zone.h), for `[zone ORIGIN] file = PATH` (docs/DNS.md, "Zone
 * files"):
 *
 *   $ORIGIN tandem.test.         ; relative names below are relative to it
 *   $TTL 1h                      ; the TTL of records without one
 *   @   IN SOA ns1 hostmaster (
 *           2026120301 3600 600 86400 30 )   ; parentheses join lines
 *       IN NS  ns1               ; no owner: the previous one
 *   api 10 IN A 127.0.0.2        ; TTL and class in either order, both optional
 *   dkim TXT "v=DKIM1; k=rsa; " "p=MIIB..."
 *
 * Types: those of zone.h (SOA NS A AAAA CNAME MX TXT CAA SRV PTR, and
 * ALIAS); class IN only. TTLs as numbers or with the units s m h d w
 * (1h30m). $INCLUDE and $GENERATE are refused (one file is the whole zone).
 * A record without a TTL and before any $TTL gets the [zone]'s `ttl`.
 *
 * Bounded (the file comes from an operator, but a mistake must be an error,
 * never a crash or an unbounded allocation): at most ZONEFILE_MAX_BYTES,
 * ZONEFILE_MAX_RECORDS records, ZONEFILE_MAX_LINE bytes a line and
 * ZONEFILE_MAX_ENTRY bytes an entry (its lines joined by parentheses).
 */
#ifndef TANDEM_DNS_ZONEFILE_H
#define TANDEM_DNS_ZONEFILE_H

#include <stddef.h>
#include <stdint.h>

#include "dns/zone.h"

#define ZONEFILE_MAX_BYTES (8u << 20)
#define ZONEFILE_MAX_RECORDS 10000 /* (zone.c scans its records: an index would allow more) */
#define ZONEFILE_MAX_LINE 16384
#define ZONEFILE_MAX_ENTRY 65536
#define ZONEFILE_MAX_ERRORS 10

/* Add the records of text[0..len) to z (names relative to the zone's
 * origin until a $ORIGIN), ttl the default TTL. path names the file in
 * errors. 0, or ERR_CONFIG with up to ZONEFILE_MAX_ERRORS lines
 * "PATH:LINE: message" in err (the zone holds the records read before
 * them: the caller discards it), ERR_NOMEM. */
int dns_zonefile_parse(dns_zone *z, const char *text, size_t len, const char *path, uint32_t ttl, char *err,
		       size_t errcap);
/* The same for the file at path: ERR_IO ("cannot read: ..." in err) when
 * it cannot be read, ERR_LIMIT when it is over ZONEFILE_MAX_BYTES. */
int dns_zonefile_load(dns_zone *z, const char *path, uint32_t ttl, char *err, size_t errcap);

#endif
