/*
 * hlc.c - the hybrid logical clock; see hlc.h.
 *
 * Invariant: (last.ms, last.logical) only grows, and last.ms is never
 * more than max_drift_ms ahead of any wall clock reading taken when it was
 * set (a merge that would break it is refused), so one bad peer cannot push
 * this region's versions arbitrarily far into the future.
 */
#include "objects/hlc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/util.h"

struct hlc {
	pthread_mutex_t lock;
	hlc_clock_fn clock;
	void *arg;
	int64_t max_drift_ms;
	hlc_ts last;
};

static int64_t hlc_wall_default(void *arg)
{
	return util_now_ms();
}

hlc *hlc_new(hlc_clock_fn clock, void *arg, int64_t max_drift_ms)
{
	if (max_drift_ms <= 0)
		return NULL;
	hlc *h = calloc(1, sizeof *h);
	if (!h)
		return NULL;
	if (pthread_mutex_init(&h->lock, NULL) != 0) {
		free(h);
		return NULL;
	}
	h->clock = clock ? clock : hlc_wall_default;
	h->arg = arg;
	h->max_drift_ms = max_drift_ms;
	return h;
}

void hlc_free(hlc **h)
{
	if (!h || !*h)
		return;
	pthread_mutex_destroy(&(*h)->lock);
	free(*h);
	*h = NULL;
}

/* The wall clock clamped into the encodable range. */
static int64_t hlc_wall(hlc *h)
{
	int64_t w = h->clock(h->arg);
	if (w < 0)
		return 0;
	return w > HLC_MAX_MS ? HLC_MAX_MS : w;
}

/* The successor of (ms, logical): the counter, or the next ms when the
 * counter is full. */
static hlc_ts hlc_tick(int64_t ms, uint32_t logical)
{
	if (logical == UINT32_MAX)
		return (hlc_ts){.ms = ms + 1, .logical = 0};
	return (hlc_ts){.ms = ms, .logical = logical + 1};
}

hlc_ts hlc_now(hlc *h)
{
	pthread_mutex_lock(&h->lock);
	int64_t wall = hlc_wall(h);
	if (wall > h->last.ms)
		h->last = (hlc_ts){.ms = wall, .logical = 0};
	else
		h->last = hlc_tick(h->last.ms, h->last.logical);
	hlc_ts out = h->last;
	pthread_mutex_unlock(&h->lock);
	return out;
}

int hlc_update(hlc *h, hlc_ts received, hlc_ts *out)
{
	if (received.ms < 0 || received.ms > HLC_MAX_MS)
		return ERR_INVAL;
	pthread_mutex_lock(&h->lock);
	int64_t wall = hlc_wall(h);
	if (received.ms > wall + h->max_drift_ms) {
		pthread_mutex_unlock(&h->lock);
		return ERR_LIMIT;
	}
	hlc_ts prev = h->last;
	int64_t ms = wall;
	if (prev.ms > ms)
		ms = prev.ms;
	if (received.ms > ms)
		ms = received.ms;
	if (ms == prev.ms && ms == received.ms)
		h->last = hlc_tick(ms, prev.logical > received.logical ? prev.logical
								      : received.logical);
	else if (ms == prev.ms)
		h->last = hlc_tick(ms, prev.logical);
	else if (ms == received.ms)
		h->last = hlc_tick(ms, received.logical);
	else
		h->last = (hlc_ts){.ms = ms, .logical = 0};
	*out = h->last;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

hlc_ts hlc_last(hlc *h)
{
	pthread_mutex_lock(&h->lock);
	hlc_ts out = h->last;
	pthread_mutex_unlock(&h->lock);
	return out;
}

int hlc_compare(hlc_ts a, hlc_ts b)
{
	if (a.ms != b.ms)
		return a.ms < b.ms ? -1 : 1;
	if (a.logical != b.logical)
		return a.logical < b.logical ? -1 : 1;
	return 0;
}

void hlc_encode(hlc_ts ts, char out[HLC_STR_LEN + 1])
{
	if (ts.ms < 0 || ts.ms > HLC_MAX_MS)
		abort(); /* cannot happen: every hlc_ts made here is in range */
	snprintf(out, HLC_STR_LEN + 1, "%012llx-%08x", (unsigned long long)ts.ms,
		 (unsigned)ts.logical);
}

static int hex_digits(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return ERR_PARSE; /* uppercase too: one spelling, one order */
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 0;
}

int hlc_decode(const char *s, size_t len, hlc_ts *out)
{
	uint64_t ms, logical;
	if (len != HLC_STR_LEN || s[12] != '-' || hex_digits(s, 12, &ms) != 0 ||
	    hex_digits(s + 13, 8, &logical) != 0)
		return ERR_PARSE;
	out->ms = (int64_t)ms;
	out->logical = (uint32_t)logical;
	return 0;
}
