/*
 * cookie.h - DNS server cookies (RFC 7873) in the interoperable format of
 * RFC 9018: version 1, three reserved bytes, a 32-bit timestamp (seconds),
 * and SipHash-2-4 over the client cookie, those 8 bytes and the client's
 * address, under a 16-byte secret. Every `tandem dns` instance of a
 * deployment derives the same secret from its secrets file, so a client
 * moving between them keeps a valid cookie.
 *
 * A server cookie is valid for one hour and up to five minutes ahead of
 * the clock (RFC 9018 section 4.3). A valid one proves the client received
 * our earlier answer at its address: the address is not forged, so its
 * answers need no rate limit (rrl.h).
 */
#ifndef TANDEM_DNS_COOKIE_H
#define TANDEM_DNS_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DNS_SERVER_COOKIE_BYTES 16

typedef struct dns_cookie_key {
	uint8_t k[16];
} dns_cookie_key;

/* The secret from deployment key material (HMAC-SHA256 under a fixed
 * label, first 16 bytes). 0, or ERR_TLS (OpenSSL failed: no key). */
int dns_cookie_key_derive(const uint8_t *material, size_t n, dns_cookie_key *out);
/* A fresh server cookie for client cookie cc from address from at now
 * (seconds). 0, or ERR_TLS / ERR_INVAL (an address family other than
 * IPv4/IPv6). */
int dns_cookie_make(const dns_cookie_key *k, const uint8_t cc[8], const struct sockaddr *from, uint32_t now,
		    uint8_t out[DNS_SERVER_COOKIE_BYTES]);
/* Is sc (len bytes, as the client sent it) a cookie we made for cc and
 * from, not older than an hour nor more than 5 minutes ahead of now? */
bool dns_cookie_valid(const dns_cookie_key *k, const uint8_t cc[8], const uint8_t *sc, size_t len,
		      const struct sockaddr *from, uint32_t now);

#endif
