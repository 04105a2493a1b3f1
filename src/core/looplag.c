/* looplag.c - an event loop's timer lateness as a histogram; see looplag.h. */
#include "core/looplag.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "core/util.h"

static const double looplag_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
#define LOOPLAG_BUCKETS (sizeof looplag_bounds / sizeof looplag_bounds[0])

struct looplag {
	struct event *timer;
	int period_ms;
	int64_t due_us;                       /* loop thread */
	void (*tick)(void *arg);
	void *arg;
	_Atomic uint64_t buckets[LOOPLAG_BUCKETS + 1]; /* the last one: +Inf only */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_us;
	_Atomic int64_t max_us;
};

static void looplag_arm(looplag *l)
{
	l->due_us = util_mono_us() + (int64_t)l->period_ms * 1000;
	struct timeval tv = util_timeval_ms(l->period_ms);
	evtimer_add(l->timer, &tv);
}

static void looplag_fire(evutil_socket_t fd, short what, void *arg)
{
	looplag *l = arg;
	int64_t lag = util_mono_us() - l->due_us;
	looplag_record(l, lag > 0 ? lag : 0);
	looplag_arm(l);
	if (l->tick)
		l->tick(l->arg);
}

looplag *looplag_new(struct event_base *base, int period_ms, void (*tick)(void *arg), void *arg)
{
	looplag *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->period_ms = period_ms > 0 ? period_ms : 50;
	l->tick = tick;
	l->arg = arg;
	l->timer = evtimer_new(base, looplag_fire, l);
	if (!l->timer) {
		free(l);
		return NULL;
	}
	looplag_arm(l);
	return l;
}

void looplag_free(looplag **pl)
{
	looplag *l = *pl;
	if (!l)
		return;
	event_free(l->timer);
	free(l);
	*pl = NULL;
}

void looplag_record(looplag *l, int64_t lag_us)
{
	double s = (double)lag_us / 1e6;
	size_t i = 0;
	while (i < LOOPLAG_BUCKETS && s > looplag_bounds[i])
		i++;
	atomic_fetch_add(&l->buckets[i], 1);
	atomic_fetch_add(&l->count, 1);
	atomic_fetch_add(&l->sum_us, (uint64_t)lag_us);
	int64_t m = atomic_load(&l->max_us);
	while (lag_us > m && !atomic_compare_exchange_weak(&l->max_us, &m, lag_us))
		;
}

void looplag_metrics(looplag *l, buf *out, const char *name, const char *help, const char *region)
{
	buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	uint64_t cum = 0;
	for (size_t i = 0; i < LOOPLAG_BUCKETS; i++) {
		cum += l ? atomic_load(&l->buckets[i]) : 0;
		buf_printf(out, "%s_bucket{region=\"%s\",le=\"%g\"} %llu\n", name, region, looplag_bounds[i],
			   (unsigned long long)cum);
	}
	uint64_t count = l ? atomic_load(&l->count) : 0;
	buf_printf(out, "%s_bucket{region=\"%s\",le=\"+Inf\"} %llu\n%s_sum{region=\"%s\"} %.6f\n"
			"%s_count{region=\"%s\"} %llu\n",
		   name, region, (unsigned long long)count, name, region,
		   l ? (double)atomic_load(&l->sum_us) / 1e6 : 0.0, name, region, (unsigned long long)count);
}

uint64_t looplag_count(looplag *l)
{
	return atomic_load(&l->count);
}

int64_t looplag_max_us(looplag *l)
{
	return atomic_load(&l->max_us);
}
