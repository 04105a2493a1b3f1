/*
 * forwarded.h - the client address a proxy passed in a Forwarded field
 * (RFC 7239), read by a region from its trusted proxies (the edges).
 *
 * Contract: pure, bounded by the value's length (one pass), never reads
 * past len, never writes more than cap bytes. The address is the last
 * for= of the value (the one the nearest proxy added), taken only when it
 * is an IP address: for=192.0.2.1, for="192.0.2.1:4711" (the port
 * dropped), for="[2001:db8::1]" and for="[2001:db8::1]:4711". Anything
 * else (unknown, an obfuscated "_name", a bare IPv6 without brackets,
 * garbage) gives nothing, so the caller keeps the proxy's own address.
 */
#ifndef TANDEM_HTTP_FORWARDED_H
#define TANDEM_HTTP_FORWARDED_H

#include <stdbool.h>
#include <stddef.h>

/* The address of value[0..len) into out (cap >= 46 holds any) as text
 * (IPv6 without brackets), true; false when there is none (out unchanged). */
bool http_forwarded_for(const char *value, size_t len, char *out, size_t cap);

#endif
