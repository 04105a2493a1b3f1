/*
 * rrl.h - response rate limiting for UDP answers (the scheme of BIND's and
 * Knot's RRL): a DNS server must not be usable as an amplifier against a
 * forged source address. Each source prefix (IPv4 /24, IPv6 /56) has a
 * token bucket of `rate` answers per second (burst: one second's worth);
 * over it, answers are dropped, except every `slip`-th one, which is sent
 * truncated (TC, no records: a real client retries over TCP, which a
 * forged source cannot complete; a victim gets a small packet, not the
 * answer).
 *
 * The table is a fixed array of `size` buckets indexed by a keyed hash of
 * the prefix (a key random per table, so an attacker cannot aim at one
 * bucket); a collision shares a bucket, which can only limit more, never
 * less. Time is given by the caller (milliseconds, monotonic): no clock
 * here, so tests inject it. One table per thread: no lock.
 */
#ifndef TANDEM_DNS_RRL_H
#define TANDEM_DNS_RRL_H

#include <stdint.h>
#include <sys/socket.h>

typedef struct dns_rrl dns_rrl;

typedef enum dns_rrl_verdict {
	DNS_RRL_SEND,     /* within the rate */
	DNS_RRL_SLIP,     /* over it: send a truncated answer (TC, no records) */
	DNS_RRL_DROP,     /* over it: send nothing */
} dns_rrl_verdict;

/* A table of size buckets (rounded up to a power of two, at least 64),
 * rate answers per second per prefix (0: no limit), every slip-th limited
 * answer slips (0: none, 1: all). NULL when out of memory. */
dns_rrl *dns_rrl_new(unsigned size, unsigned rate, unsigned slip);
void dns_rrl_free(dns_rrl **r);
/* The verdict for one answer to from at now_ms; counts it. */
dns_rrl_verdict dns_rrl_check(dns_rrl *r, const struct sockaddr *from, int64_t now_ms);
/* Answers limited so far (dropped + slipped). */
uint64_t dns_rrl_limited(const dns_rrl *r);

#endif
