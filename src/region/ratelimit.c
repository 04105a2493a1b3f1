/*
 * ratelimit.c - authentication throttling: attempts counted per key
 * ("a:<email>" per account, "i:<address>" per client address, "s:<address>"
 * for signups) in a fixed window, plus the attempts still in flight.
 *
 * An attempt is reserved before the expensive step (the argon2 hash) and
 * released after it, so N concurrent attempts cannot all pass a check made
 * when none of them had been counted yet: a reservation is refused when
 *     count + in_flight >= max_count    or    in_flight >= max_in_flight.
 *
 *   reserve --(refused)--> 429, nothing held
 *      |
 *      v  in_flight++
 *   [hashing]
 *      |
 *   release(outcome): in_flight--; COUNT: count++ (new window if it ended);
 *                     RESET: count = 0; NONE: nothing more
 *
 * Invariants: an entry with in_flight > 0 is never evicted or reused for
 * another key (its release must find it); in_flight >= 0.
 *
 * Table keys are HMAC-SHA256(secret, name) truncated to 16 bytes, the secret
 * derived from the secrets file: without it an attacker cannot compute which
 * names share a probe run with a victim's, so cannot aim evictions or
 * collisions at the victim's counter. An open-addressing table of fixed size:
 * memory is bounded whatever an attacker sends. When a slot is needed and
 * the probe run is full, the entry whose window ended longest ago (or,
 * failing that, the oldest idle one) is evicted. Counts are per region
 * process; a restart forgets them (documented).
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "region/internal.h"

#define RATELIMIT_PROBE 8

typedef struct rl_entry {
	unsigned char key_hash[RATELIMIT_KEY_BYTES]; /* zero = empty */
	int64_t window_start_ms;
	int count;
	int in_flight;
} rl_entry;

struct ratelimit {
	rl_entry *entries;
	size_t size;
	unsigned char secret[32];
};

ratelimit *ratelimit_new(int max_entries, const unsigned char secret[32])
{
	ratelimit *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->size = (size_t)max_entries;
	r->entries = calloc(r->size, sizeof *r->entries);
	if (!r->entries) {
		free(r);
		return NULL;
	}
	memcpy(r->secret, secret, sizeof r->secret);
	return r;
}

void ratelimit_free(ratelimit **pr)
{
	if (!*pr)
		return;
	explicit_bzero((*pr)->secret, sizeof (*pr)->secret);
	free((*pr)->entries);
	free(*pr);
	*pr = NULL;
}

void ratelimit_key_hash(const ratelimit *r, const char *name, unsigned char out[RATELIMIT_KEY_BYTES])
{
	unsigned char h[32];
	util_hmac_sha256(r->secret, sizeof r->secret, name, strlen(name), h);
	h[0] |= 1; /* never all zero: zero marks an empty slot */
	memcpy(out, h, RATELIMIT_KEY_BYTES);
}

static const unsigned char zero_key[RATELIMIT_KEY_BYTES];

static bool window_ended(const rl_entry *e, int window_s, int64_t now)
{
	return now - e->window_start_ms >= (int64_t)window_s * 1000;
}

/* The entry for name, or NULL when absent and create is false, or when
 * every slot of its probe run holds an attempt in flight (nothing evicted). */
static rl_entry *rl_find(ratelimit *r, const char *name, bool create, int window_s, int64_t now)
{
	unsigned char h[RATELIMIT_KEY_BYTES];
	ratelimit_key_hash(r, name, h);
	size_t start = 0;
	memcpy(&start, h + 4, sizeof start);
	rl_entry *victim = NULL;
	bool victim_free = false;
	for (size_t i = 0; i < RATELIMIT_PROBE; i++) {
		rl_entry *e = &r->entries[(start + i) % r->size];
		if (memcmp(e->key_hash, h, sizeof h) == 0)
			return e;
		if (e->in_flight > 0)
			continue; /* its release must find it */
		bool free_slot = memcmp(e->key_hash, zero_key, sizeof zero_key) == 0 ||
				 window_ended(e, window_s, now);
		if (free_slot) {
			if (!victim_free) {
				victim = e;
				victim_free = true;
			}
		} else if (!victim_free && (!victim || e->window_start_ms < victim->window_start_ms)) {
			victim = e; /* the oldest live window goes first */
		}
	}
	if (!create || !victim)
		return NULL;
	memcpy(victim->key_hash, h, sizeof h);
	victim->window_start_ms = now;
	victim->count = 0;
	victim->in_flight = 0;
	return victim;
}

/* Seconds until the window of e ends (at least 1). */
static int wait_for_window(const rl_entry *e, int window_s, int64_t now)
{
	int64_t end = e->window_start_ms + (int64_t)window_s * 1000;
	int wait = (int)((end - now + 999) / 1000);
	return wait > 0 ? wait : 1;
}

int ratelimit_reserve(ratelimit *r, const char *name, int max_count, int max_in_flight, int window_s,
		      int64_t now_ms)
{
	rl_entry *e = rl_find(r, name, true, window_s, now_ms);
	if (!e)
		return 1; /* the probe run is all in flight: refuse, hold nothing */
	if (window_ended(e, window_s, now_ms)) {
		e->window_start_ms = now_ms;
		e->count = 0;
	}
	if (e->count >= max_count)
		return wait_for_window(e, window_s, now_ms);
	if (e->in_flight >= max_in_flight || e->count + e->in_flight >= max_count)
		return 1; /* the attempts in flight may still fail: ask again soon */
	e->in_flight++;
	return 0;
}

void ratelimit_release(ratelimit *r, const char *name, ratelimit_outcome outcome, int window_s, int64_t now_ms)
{
	rl_entry *e = rl_find(r, name, false, window_s, now_ms);
	if (!e || e->in_flight <= 0) { /* cannot happen: reserve keeps it */
		log_error("BUG: ratelimit release without a reservation");
		return;
	}
	e->in_flight--;
	if (outcome == RATELIMIT_COUNT) {
		if (window_ended(e, window_s, now_ms)) {
			e->window_start_ms = now_ms;
			e->count = 0;
		}
		e->count++;
	} else if (outcome == RATELIMIT_RESET) {
		e->count = 0;
	}
}

int ratelimit_take(ratelimit *r, const char *name, int max_count, int window_s, int64_t now_ms)
{
	int wait = ratelimit_reserve(r, name, max_count, max_count, window_s, now_ms);
	if (wait == 0)
		ratelimit_release(r, name, RATELIMIT_COUNT, window_s, now_ms);
	return wait;
}

int ratelimit_in_flight(ratelimit *r, const char *name)
{
	rl_entry *e = rl_find(r, name, false, 1, 0);
	return e ? e->in_flight : 0;
}
