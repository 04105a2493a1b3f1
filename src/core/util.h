/*
 * util.h - small shared helpers: clocks, random bytes, identifiers, encodings.
 */
#ifndef TANDEM_UTIL_H
#define TANDEM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

/* Wall clock in milliseconds since the epoch. */
int64_t util_now_ms(void);
/* Monotonic clock in microseconds (for durations). */
int64_t util_mono_us(void);
/* A duration in ms as a normalized timeval (tv_usec < 1000000, as
 * libevent requires); a negative duration is 0. Cannot fail. */
struct timeval util_timeval_ms(int64_t ms);
/* Format ms-since-epoch as "2026-11-27T05:08:01.123Z" into out (>= 25 bytes). */
void util_iso8601(int64_t ms, char out[32]);

/* Fill with cryptographically secure random bytes; aborts if the CSPRNG fails
 * (nothing sensible can go on without it). */
void util_random(void *out, size_t len);
/* A new time-ordered identifier: 26 chars of Crockford base32 (48-bit ms time
 * + 80 random bits, like ULID), NUL-terminated. Sorts by creation time. */
void util_new_id(char out[27]);

/* A request identifier (32 hex chars): a random per-process prefix and a
 * counter. Unique without a CSPRNG call per request (ids are not secrets).
 * Not thread-safe: the event loop's. */
void util_request_id(char out[33]);

/* base64url without padding. Encode: out must hold 4*ceil(len/3)+1 bytes.
 * Decode: returns decoded length, or -1 on invalid input or when out
 * (capacity outcap) is too small. */
size_t util_b64url_encode(const void *in, size_t len, char *out);
long util_b64url_decode(const char *in, size_t len, void *out, size_t outcap);
/* Lowercase hex; out holds 2*len+1 bytes. */
void util_hex(const void *in, size_t len, char *out);
/* Lowercase hex text (NUL-terminated, NULL refused) back into at most max
 * bytes of out (not NUL-terminated). The byte count, or -1 for NULL, an odd
 * length, a non-hex character, or more than max bytes. */
long util_unhex(const char *hex, void *out, size_t max);
/* The value of parameter name in the query of a request target
 * ("/p?a=1&b=2"), as it is (not decoded), copied into out. false when
 * absent or longer than cap - 1. */
bool util_query_param(const char *target, const char *name, char *out, size_t cap);
/* SHA-256 of data into out (32 bytes). */
void util_sha256(const void *data, size_t len, unsigned char out[32]);
/* HMAC-SHA256. */
void util_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                      unsigned char out[32]);
/* Constant-time comparison. */
bool util_equal_ct(const void *a, const void *b, size_t len);

/* Parse a decimal integer in [min,max] from the whole of s; 0 or ERR_INVAL. */
int util_parse_int(const char *s, long long min, long long max, long long *out);
/* Split "host:port" (IPv4 or [IPv6]); 0 or ERR_INVAL. host gets up to hostcap-1 chars. */
int util_split_hostport(const char *s, char *host, size_t hostcap, int *port);
/* An address prefix: "10.1.0.0/16", "2001:db8::/32", or an address alone
 * (all its bits). addr gets the address (host bits cleared), *family 4 or
 * 6, *bits the length. 0 or ERR_INVAL. */
int util_parse_cidr(const char *s, unsigned char addr[16], int *family, int *bits);
/* Whether the textual address text (IPv4 or IPv6) is within the prefix. */
bool util_cidr_holds(const unsigned char prefix[16], int family, int bits, const char *text);
/* mkdir -p with the given mode for created directories; 0 or ERR_IO (errno kept). */
int util_mkdirs(const char *path, unsigned mode);
/* Write a whole file atomically (tmp + fsync + rename) with mode; 0 or ERR_IO. */
int util_write_file(const char *path, const void *data, size_t len, unsigned mode);
/* Read a whole file (max bytes); malloc'd, NUL-terminated; NULL on error (errno set). */
char *util_read_file(const char *path, size_t max, size_t *len);

#endif
