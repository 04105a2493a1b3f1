/*
 * peers.h - open connections per client address, for the per-address cap of
 * the HTTP server (max_connections_per_address).
 *
 * An address is counted by the block one client usually holds: IPv4 per
 * address (/32), IPv6 per /64 (a home or mobile network gets a whole /64, so
 * counting per /128 would let one client open 2^64 "addresses"), and an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it is.
 *
 * The table has a fixed capacity set at creation (the server's
 * max_connections), so it never allocates after http_peers_new() and an
 * attacker cannot make it grow: one entry per distinct address with an open
 * connection, and there are never more of those than connections.
 */
#ifndef TANDEM_HTTP_PEERS_H
#define TANDEM_HTTP_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

typedef struct http_peers http_peers;

/* The block an address is counted in. */
typedef struct http_peer_key {
	uint64_t prefix; /* IPv4: the address; IPv6: the first 64 bits */
	bool ipv6;
} http_peer_key;

/* Key of a client address; false for a family that is not counted (AF_UNIX). */
bool http_peer_key_of(const struct sockaddr *sa, http_peer_key *key);
/* The block as text for logs, shortened so that it does not name one person:
 * "203.0.113.0/24", "2001:db8:1::/48". */
void http_peer_key_text(const http_peer_key *key, char *out, size_t cap);

/* Table for up to max_keys distinct blocks; NULL on allocation failure. */
http_peers *http_peers_new(size_t max_keys);
/* No-op on NULL; resets *t. */
void http_peers_free(http_peers **t);
/* Count one more connection from key unless it already has `cap` (then
 * ERR_LIMIT, table unaltered) or the table is full (ERR_LIMIT too: more
 * distinct blocks than max_keys cannot happen while the server keeps to
 * max_connections). 0 on success. */
int http_peers_add(http_peers *t, const http_peer_key *key, int cap);
/* One connection from key is gone (a key not counted is ignored). */
void http_peers_remove(http_peers *t, const http_peer_key *key);
/* Open connections counted for key (0 if none). */
int http_peers_count(const http_peers *t, const http_peer_key *key);

#endif
