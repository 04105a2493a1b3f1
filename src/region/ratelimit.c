/*
 * ratelimit.c - login throttling: failures counted per key ("a:<email>" per
 * account, "i:<address>" per client address) in a fixed window.
 *
 * An open-addressing table of fixed size: memory is bounded whatever an
 * attacker sends. When a slot is needed and the probe run is full, the entry
 * whose window ended longest ago (or, failing that, the oldest) is evicted.
 * Counts are per region process; a restart forgets them (documented).
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "region/internal.h"

#define RATELIMIT_PROBE 8

typedef struct rl_entry {
	unsigned char key_hash[16]; /* first bytes of SHA-256(key); zero = empty */
	int64_t window_start_ms;
	int failures;
} rl_entry;

struct ratelimit {
	rl_entry *entries;
	size_t size;
};

ratelimit *ratelimit_new(int max_entries)
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
	return r;
}

void ratelimit_free(ratelimit **pr)
{
	if (!*pr)
		return;
	free((*pr)->entries);
	free(*pr);
	*pr = NULL;
}

static const unsigned char zero16[16];

/* The entry for key, or NULL when absent and create is false. */
static rl_entry *rl_find(ratelimit *r, const char *key, bool create, int window_s, int64_t now)
{
	unsigned char h[32];
	util_sha256(key, strlen(key), h);
	h[0] |= 1; /* never all zero */
	size_t start = 0;
	memcpy(&start, h + 16, sizeof start);
	rl_entry *victim = NULL;
	bool victim_free = false;
	for (size_t i = 0; i < RATELIMIT_PROBE; i++) {
		rl_entry *e = &r->entries[(start + i) % r->size];
		if (memcmp(e->key_hash, h, 16) == 0)
			return e;
		bool free_slot = memcmp(e->key_hash, zero16, 16) == 0 ||
				 now - e->window_start_ms >= (int64_t)window_s * 1000;
		if (free_slot) {
			if (!victim_free) {
				victim = e;
				victim_free = true;
			}
		} else if (!victim_free && (!victim || e->window_start_ms < victim->window_start_ms)) {
			victim = e; /* the oldest live window goes first */
		}
	}
	if (!create)
		return NULL;
	memcpy(victim->key_hash, h, 16);
	victim->window_start_ms = now;
	victim->failures = 0;
	return victim;
}

int ratelimit_blocked(ratelimit *r, const char *key, int max, int window_s, int64_t now_ms)
{
	rl_entry *e = rl_find(r, key, false, window_s, now_ms);
	if (!e)
		return 0;
	int64_t end = e->window_start_ms + (int64_t)window_s * 1000;
	if (now_ms >= end || e->failures < max)
		return 0;
	int wait = (int)((end - now_ms + 999) / 1000);
	return wait > 0 ? wait : 1;
}

void ratelimit_fail(ratelimit *r, const char *key, int window_s, int64_t now_ms)
{
	rl_entry *e = rl_find(r, key, true, window_s, now_ms);
	if (now_ms - e->window_start_ms >= (int64_t)window_s * 1000) {
		e->window_start_ms = now_ms;
		e->failures = 0;
	}
	e->failures++;
}

void ratelimit_clear(ratelimit *r, const char *key)
{
	rl_entry *e = rl_find(r, key, false, 1, 0);
	if (e)
		memset(e, 0, sizeof *e);
}
