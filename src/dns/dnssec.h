/*
 * dnssec.h - DNSSEC online signing for `tandem dns` (issue 11 section 4):
 * the zone's keys, RRSIGs made at answer time over each RRset as it is
 * answered (routed sets included), and what compact denial needs.
 *
 * Keys: one CSK (combined signing key: DNSKEY flags 257, algorithm 13,
 * ECDSA P-256 with SHA-256) per zone, or two during a rollover, kept in
 * the deployment's secrets file (mode 0600):
 *
 *   [dnssec]
 *   key.ID = ZONE STATE PRIVATE      ; PRIVATE: the P-256 scalar, base64url of 32 bytes
 *   key.k1 = tandem.test active AbC...
 *   key.k2 = tandem.test publish XyZ...
 *
 * STATE `active`: in the DNSKEY RRset and signs every RRset; `publish`: in
 * the DNSKEY RRset only (announced before it signs). Why a CSK and not a
 * KSK/ZSK pair: an online signer must hold the key that signs answers on
 * every instance anyway, so the split (which exists to keep the KSK
 * offline) buys nothing; one key means one DS at the parent and one
 * signature per RRset (smaller answers). A rollover is a double signature:
 * both keys active, then the DS is changed, then the old key is removed
 * (docs/DNS.md "DNSSEC").
 *
 * Signing (dnssec_sign): RFC 4034 section 6 canonical form (owner and the
 * names inside NS, CNAME, SOA, PTR, MX and SRV data lowercased, records
 * sorted by their RDATA, duplicates dropped), inception an hour in the
 * past (clock skew), expiration DNSSEC_VALIDITY_S later plus up to an
 * eighth of it at random (so that cached signatures do not all expire at
 * once). Signatures are cached per (zone, owner, type, TTL, RDATA set) in
 * a bounded, direct-mapped cache owned by one thread (no lock) and made
 * again once half their validity has passed. The cache is keyed by a
 * SipHash under a random key: a client cannot aim at one entry.
 *
 * Bounds: an RRset has at most DNSSEC_RRSET_MAX records and its canonical
 * form at most DNSSEC_SIGNED_MAX bytes (zones are checked when loaded:
 * dns_zone_check_dnssec); names come from the wire parser (at most 255
 * bytes): the signer never reads unbounded input.
 */
#ifndef TANDEM_DNS_DNSSEC_H
#define TANDEM_DNS_DNSSEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/wire.h"

#define DNSSEC_ALGORITHM 13               /* ECDSAP256SHA256 (RFC 6605) */
#define DNSSEC_KEYS_MAX 4                 /* keys of one zone (two during a rollover) */
#define DNSSEC_RRSET_MAX 64               /* records of one signed RRset */
#define DNSSEC_SIGNED_MAX 16384           /* bytes of one RRset's canonical form */
#define DNSSEC_VALIDITY_S (7 * 86400)     /* a signature's validity, before jitter */
#define DNSSEC_SKEW_S 3600                /* inception this far in the past */
#define DNSSEC_CACHE_DEFAULT 4096         /* cached signatures per thread */
#define DNSSEC_DNSKEY_RDLEN (4 + 64)
#define DNSSEC_T_NXNAME 128               /* RFC 9824: "this name does not exist" in a compact NSEC */

/* --- keys --- */

typedef struct dnssec_keys dnssec_keys;

/* The keys of zone origin from the [dnssec] section of the secrets file
 * at path (which must be mode 0600). 0 with *out set; ERR_NOTFOUND when no
 * key names the zone or none is active; ERR_CONFIG (a malformed line, a
 * key that is not a P-256 scalar, more than DNSSEC_KEYS_MAX keys), ERR_IO,
 * ERR_TLS, with "FILE:LINE: message" in err (never key material). *out is
 * NULL on failure. */
int dnssec_keys_load(const char *path, const dns_name *origin, dnssec_keys **out, char *err, size_t errcap);
/* Keys from raw scalars (tests): n keys, active[i] says which sign. 0 or
 * ERR_INVAL (not a P-256 scalar, n out of 1..DNSSEC_KEYS_MAX, none active)
 * / ERR_NOMEM / ERR_TLS. */
int dnssec_keys_from_raw(const dns_name *origin, const uint8_t (*priv)[32], const bool *active, int n,
			 dnssec_keys **out);
void dnssec_keys_free(dnssec_keys **k);
int dnssec_keys_count(const dnssec_keys *k);
/* The i-th key's DNSKEY RDATA (DNSSEC_DNSKEY_RDLEN bytes), key tag
 * (RFC 4034 appendix B), whether it signs, and its DS digest (SHA-256 of
 * the owner in canonical form and the DNSKEY RDATA; 0 or ERR_TLS). */
const uint8_t *dnssec_key_dnskey(const dnssec_keys *k, int i);
uint16_t dnssec_key_tag(const dnssec_keys *k, int i);
bool dnssec_key_active(const dnssec_keys *k, int i);
int dnssec_key_ds(const dnssec_keys *k, int i, uint8_t digest[32]);

/* A fresh P-256 scalar, base64url (43 characters and a NUL). 0 or ERR_TLS. */
int dnssec_key_generate(char out[64]);
/* Add a key for zone (text, "tandem.test") with state "active" or
 * "publish" to the [dnssec] section of the secrets file at path (the
 * section is created; the file is rewritten atomically, mode 0600). The
 * new key's id ("k1", "k2", ...: the first free) goes to id. 0, or
 * ERR_IO / ERR_TLS / ERR_LIMIT with the reason in err; the file is
 * unchanged on failure. */
int dnssec_secrets_add_key(const char *path, const char *zone, const char *state, char *id, size_t idcap,
			   char *err, size_t errcap);

/* --- signing --- */

/* An RRset as answered: owner (as written; lowercased for signing), type,
 * TTL (the one written, signed as the original TTL), n RDATAs in
 * uncompressed wire form. */
typedef struct dnssec_rrset {
	const dns_name *owner;
	uint16_t type;
	uint32_t ttl;
	int n;
	const uint8_t *rdata[DNSSEC_RRSET_MAX];
	uint16_t rdlen[DNSSEC_RRSET_MAX];
} dnssec_rrset;

typedef struct dnssec_signer dnssec_signer;

/* A signer for one thread with a cache of `entries` signatures (rounded
 * up to a power of two; 0: no cache). NULL when out of memory. */
dnssec_signer *dnssec_signer_new(size_t entries);
void dnssec_signer_free(dnssec_signer **s);
/* Fix the signer's clock at now (seconds since 1970; tests); 0 goes back
 * to the system clock. */
void dnssec_signer_set_time(dnssec_signer *s, uint32_t now);
/* Signatures made (not taken from the cache) so far. */
uint64_t dnssec_signer_signed(const dnssec_signer *s);

/* Write the RRSIGs of set (one per active key of k) into w's current
 * section, owner as set->owner. 0; ERR_LIMIT (w is full: rolled back to
 * before the first RRSIG); ERR_INVAL (more than DNSSEC_RRSET_MAX records,
 * a canonical form over DNSSEC_SIGNED_MAX: nothing written); ERR_TLS
 * (OpenSSL failed: nothing written). */
int dnssec_sign(dnssec_signer *s, const dnssec_keys *k, const dnssec_rrset *set, dns_writer *w);

/* The canonical form of one record's RDATA of type (names inside NS,
 * CNAME, SOA, PTR, MX, SRV lowercased; RFC 4034 6.2 with RFC 6840 5.1)
 * into out[0..cap). Its length, or -1 (does not fit, or a name in it does
 * not parse). */
int dnssec_canonical_rdata(uint16_t type, const uint8_t *rdata, size_t n, uint8_t *out, size_t cap);

/* The RDATA of a compact NSEC (RFC 9824) at owner: the next name is the
 * owner's immediate successor ("\000.owner", lowercased), then the type
 * bitmap of types[0..ntypes) (any order; duplicates allowed). Its length,
 * or -1 (out too small). */
int dnssec_nsec_rdata(const dns_name *owner, const uint16_t *types, int ntypes, uint8_t *out, size_t cap);

#endif
