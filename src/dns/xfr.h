/*
 * xfr.h - zone transfers (AXFR, and IXFR answered with the whole zone as
 * RFC 1995 section 4 allows, or the SOA alone when the secondary's serial
 * is current) to the configured secondaries only, each
 * request and every message of the answer authenticated with TSIG
 * (RFC 8945, HMAC-SHA256):
 *
 *   [dns ns1]
 *   secondaries = 127.0.0.9 key=xfr1, 10.0.0.0/24 key=xfr2   ; ADDR[/LEN] key=NAME
 *
 *   secrets file:
 *   [tsig]
 *   key.xfr1 = BASE64-SECRET       ; 16 to 64 bytes (as `tsig-keygen` / `keymgr` print)
 *
 * Over TCP only (a transfer over UDP is REFUSED by zone.c). The request
 * must come from an address of the list and carry a TSIG with the key
 * named for that address; else:
 *
 *   not a zone's apex, not in the list, no TSIG:  REFUSED (no TSIG)
 *   a key not the address', another algorithm:     NOTAUTH, TSIG error BADKEY (unsigned)
 *   a MAC that does not verify:                    NOTAUTH, TSIG error BADSIG (unsigned)
 *   a time outside its fudge of ours:              NOTAUTH, TSIG error BADTIME (signed,
 *                                                  our time in other data)
 *
 * A transfer is the static zone (zone.h dns_zone_axfr: routed names as
 * their configured record sets), one message per ~16 KiB, each signed
 * (its MAC chained to the one before, RFC 8945 5.3.1).
 */
#ifndef TANDEM_DNS_XFR_H
#define TANDEM_DNS_XFR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns/zone.h"

#define DNS_XFR_MAX_SECONDARIES 8
#define DNS_TSIG_SECRET_MAX 64
#define DNS_TSIG_FUDGE 300

typedef struct dns_tsig_key {
	dns_name name;
	uint8_t secret[DNS_TSIG_SECRET_MAX];
	size_t len;
} dns_tsig_key;

/* One `secondaries` entry: a prefix and the key it must sign with. */
typedef struct dns_secondary {
	int family;                 /* 4 or 6 */
	uint8_t addr[16];
	int prefix;
	char key_text[256];         /* the key's name, as written */
	dns_name key_name;
	dns_tsig_key key;           /* its secret (dns_xfr_load_keys) */
} dns_secondary;

/* Parse one `secondaries` value (entries "ADDR[/LEN] key=NAME" separated
 * by commas) and add them to list[*n..DNS_XFR_MAX_SECONDARIES). 0, or
 * ERR_PARSE / ERR_LIMIT with the reason in err (list unaltered past *n
 * as it was). */
int dns_xfr_parse_secondaries(const char *value, dns_secondary *list, int *n, char *err, size_t errcap);

/* Read each entry's key secret from the secrets file's [tsig] section
 * (key.NAME = BASE64). 0, or ERR_CONFIG / ERR_IO with "FILE:LINE: message"
 * or the name of the missing key in err (a secret is never echoed). */
int dns_xfr_load_keys(const char *secrets_path, dns_secondary *list, int n, char *err, size_t errcap);

/* The answer to a transfer request q (msg[0..len) as received over TCP)
 * from peer, as one or more messages handed to out (each message whole,
 * without the TCP length prefix; out returns 0, or an error that stops
 * the transfer). now: the wall clock in seconds. Returns 0, or the error
 * out returned / ERR_NOMEM (the connection should then be closed). Each
 * transfer is logged as an event (dns_xfr) with the peer's address, each
 * refusal of a configured secondary's request as a warning (a stranger's:
 * at debug level, so that no one can fill the log); never a key. */
int dns_xfr_answer(dns_zone *const *zones, int nzones, const dns_secondary *list, int n, const dns_query *q,
		   const uint8_t *msg, size_t len, const struct sockaddr *peer, uint64_t now,
		   int (*out)(void *arg, const uint8_t *msg, size_t len), void *arg);

#endif
