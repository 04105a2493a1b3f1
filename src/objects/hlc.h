/*
 * hlc.h - a hybrid logical clock (Kulkarni et al., 2014): timestamps that
 * follow the wall clock in milliseconds but never go backwards and always
 * order a received event before what the receiver does next. Every object
 * version and delete marker carries one; the newest (HLC, then region name)
 * wins in both regions.
 *
 *   now():            l = max(l, wall); c = (l unchanged) ? c + 1 : 0
 *   update(received): l' = max(l, received.l, wall); c from whichever
 *                     parts equalled l'; refused when received.l is more
 *                     than max_drift_ms ahead of the local wall clock (a
 *                     peer with a runaway clock must not drag ours ahead)
 *
 * A logical counter at its maximum carries into the millisecond, so now()
 * cannot fail. Encoded as 21 fixed-width chars "%012llx-%08x" (48 bits of
 * ms, good past the year 10000; 32 bits of counter): byte order is time
 * order, so encoded timestamps sort in SQLite and in listings.
 *
 * Threads: an hlc is guarded by its own mutex; any thread may call.
 */
#ifndef TANDEM_OBJECTS_HLC_H
#define TANDEM_OBJECTS_HLC_H

#include <stddef.h>
#include <stdint.h>

#define HLC_STR_LEN 21
#define HLC_MAX_MS ((INT64_C(1) << 48) - 1)
/* default bound on how far ahead of our clock a received timestamp may be */
#define HLC_DEFAULT_MAX_DRIFT_MS 60000

typedef struct hlc_ts {
	int64_t ms;       /* physical part: ms since the epoch, 0..HLC_MAX_MS */
	uint32_t logical; /* counter within one ms */
} hlc_ts;

typedef struct hlc hlc;
/* The wall clock in ms since the epoch (injectable for tests). */
typedef int64_t (*hlc_clock_fn)(void *arg);

/* A clock reading `clock` (NULL: util_now_ms) that refuses received
 * timestamps more than max_drift_ms (> 0) ahead; NULL on allocation
 * failure or a bad bound. */
hlc *hlc_new(hlc_clock_fn clock, void *arg, int64_t max_drift_ms);
/* No-op on NULL; resets *h. */
void hlc_free(hlc **h);

/* A timestamp for a local event: greater than every timestamp this clock
 * gave or merged before. Cannot fail. */
hlc_ts hlc_now(hlc *h);
/* Merge a timestamp received from the other region and return one for the
 * receive event in *out (greater than both received and everything
 * before). 0, or ERR_LIMIT when received is more than max_drift_ms ahead
 * of the local wall clock, ERR_INVAL when it is out of range; the clock is
 * unchanged then. */
int hlc_update(hlc *h, hlc_ts received, hlc_ts *out);
/* The last timestamp given or merged (for status pages). */
hlc_ts hlc_last(hlc *h);

/* < 0, 0, > 0 as a is before, equal to, after b. */
int hlc_compare(hlc_ts a, hlc_ts b);
/* Encode into out (HLC_STR_LEN + 1 bytes). ts must be in range. */
void hlc_encode(hlc_ts ts, char out[HLC_STR_LEN + 1]);
/* Decode exactly HLC_STR_LEN chars of s (len must equal it; lowercase
 * hex); 0 or ERR_PARSE. */
int hlc_decode(const char *s, size_t len, hlc_ts *out);

#endif
