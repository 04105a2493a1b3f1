/*
 * looplag.h - how late an event loop runs its timers: a timer every
 * period_ms on the loop; each time it fires, lag = fire time - due time
 * (monotonic clock) goes into a Prometheus histogram (buckets 1 ms .. 10 s).
 * A loop busy with other work (a long callback, a slow statement) fires the
 * timer late by that much: the histogram shows how long the loop could not
 * react. The counts are atomics: the loop thread writes, any thread renders.
 *
 * An optional hook runs on every tick (the control thread publishes its view
 * there as a safety net).
 */
#ifndef TANDEM_LOOPLAG_H
#define TANDEM_LOOPLAG_H

#include <stdint.h>

#include <event2/event.h>

#include "core/buf.h"

typedef struct looplag looplag;

/* Start measuring base's lag (the timer is armed at once). NULL on
 * allocation failure. tick(arg), when given, runs on every tick. */
looplag *looplag_new(struct event_base *base, int period_ms, void (*tick)(void *arg), void *arg);
/* Stop and free (call on the loop's thread, or once it has stopped); no-op
 * on NULL; resets *l. */
void looplag_free(looplag **l);
/* Record one sample (tests; the timer calls it). */
void looplag_record(looplag *l, int64_t lag_us);
/* The histogram in Prometheus text: name with HELP/TYPE, one series with
 * region="...". Thread-safe. */
void looplag_metrics(looplag *l, buf *out, const char *name, const char *help, const char *region);
/* Samples so far and the largest lag seen, in us (thread-safe). */
uint64_t looplag_count(looplag *l);
int64_t looplag_max_us(looplag *l);

#endif
