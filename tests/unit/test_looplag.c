/*
 * test_looplag.c - src/core/looplag.c: samples land in the right cumulative
 * buckets (1 ms .. 10 s, +Inf), sum and count add up, the maximum is kept;
 * and the timer really measures a loop held busy (a callback that spins
 * 120 ms makes the next tick at least 100 ms late). No sleeps but the
 * deliberate spin.
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/buf.h"
#include "core/looplag.h"
#include "core/util.h"
#include "test.h"

static long long series(const char *text, const char *le)
{
	char key[128];
	snprintf(key, sizeof key, "lag_bucket{region=\"eu\",le=\"%s\"} ", le);
	const char *p = strstr(text, key);
	return p ? atoll(p + strlen(key)) : -1;
}

static void test_buckets_sum_count_max(void)
{
	struct event_base *base = event_base_new();
	looplag *l = looplag_new(base, 50, NULL, NULL);
	CHECK(l != NULL);
	looplag_record(l, 500);        /* 0.5 ms: le 0.001 */
	looplag_record(l, 1000);       /* exactly 1 ms: le 0.001 (upper bounds are inclusive) */
	looplag_record(l, 30000);      /* 30 ms: le 0.05 */
	looplag_record(l, 2000000);    /* 2 s: le 2.5 */
	looplag_record(l, 20000000);   /* 20 s: +Inf only */
	buf out;
	buf_init(&out, 1 << 16);
	looplag_metrics(l, &out, "lag", "test", "eu");
	CHECK(strstr(out.data, "# TYPE lag histogram\n") != NULL);
	CHECK_EQ_INT(series(out.data, "0.001"), 2);
	CHECK_EQ_INT(series(out.data, "0.025"), 2);
	CHECK_EQ_INT(series(out.data, "0.05"), 3);
	CHECK_EQ_INT(series(out.data, "1"), 3);
	CHECK_EQ_INT(series(out.data, "2.5"), 4);
	CHECK_EQ_INT(series(out.data, "10"), 4);
	CHECK_EQ_INT(series(out.data, "+Inf"), 5);
	CHECK(strstr(out.data, "lag_count{region=\"eu\"} 5\n") != NULL);
	CHECK(strstr(out.data, "lag_sum{region=\"eu\"} 22.031500\n") != NULL);
	CHECK_EQ_INT(looplag_count(l), 5);
	CHECK_EQ_INT(looplag_max_us(l), 20000000);
	buf_free(&out);
	looplag_free(&l);
	CHECK(l == NULL);
	looplag_free(&l); /* no-op on NULL */
	event_base_free(base);
}

static void spin_120ms(evutil_socket_t fd, short what, void *arg)
{
	int64_t until = util_mono_us() + 120000;
	while (util_mono_us() < until)
		;
}

static int ticks;
static void on_tick(void *arg)
{
	ticks++;
}

static void test_a_busy_loop_is_measured(void)
{
	struct event_base *base = event_base_new();
	looplag *l = looplag_new(base, 10, on_tick, NULL);
	struct timeval at = {0, 1000};
	event_base_once(base, -1, EV_TIMEOUT, spin_120ms, NULL, &at); /* holds the loop before the tick */
	for (int i = 0; i < 100 && ticks < 3; i++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(ticks >= 3);
	CHECK(looplag_max_us(l) >= 100000);
	looplag_free(&l);
	event_base_free(base);
}

int main(void)
{
	evthread_use_pthreads();
	RUN(test_buckets_sum_count_max);
	RUN(test_a_busy_loop_is_measured);
	return TEST_SUMMARY();
}
