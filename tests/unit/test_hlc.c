/* test_hlc.c - the hybrid logical clock (src/objects/hlc.c) with an injected
 * wall clock: monotonic when the wall clock steps back, merges, ties,
 * encoding order and round trip, the drift refusal. */
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "objects/hlc.h"
#include "test.h"

static int64_t fake_ms;
static int64_t fake_clock(void *arg)
{
	return fake_ms;
}

static void test_follows_wall_clock(void)
{
	fake_ms = 1000;
	hlc *h = hlc_new(fake_clock, NULL, HLC_DEFAULT_MAX_DRIFT_MS);
	hlc_ts a = hlc_now(h);
	CHECK_EQ_INT(a.ms, 1000);
	CHECK_EQ_INT(a.logical, 0);
	hlc_ts b = hlc_now(h); /* same ms: the counter */
	CHECK_EQ_INT(b.ms, 1000);
	CHECK_EQ_INT(b.logical, 1);
	fake_ms = 1005;
	hlc_ts c = hlc_now(h); /* the wall clock moved: counter resets */
	CHECK_EQ_INT(c.ms, 1005);
	CHECK_EQ_INT(c.logical, 0);
	CHECK(hlc_compare(a, b) < 0 && hlc_compare(b, c) < 0);
	hlc_free(&h);
	CHECK(h == NULL);
	hlc_free(&h); /* no-op */
}

static void test_monotonic_when_clock_goes_back(void)
{
	fake_ms = 50000;
	hlc *h = hlc_new(fake_clock, NULL, HLC_DEFAULT_MAX_DRIFT_MS);
	hlc_ts prev = hlc_now(h);
	/* an NTP step back by 10 s, then a clock that jitters */
	int64_t walls[] = {40000, 40000, 39999, 45000, 50000, 50001, 10, 50002};
	for (size_t i = 0; i < sizeof walls / sizeof walls[0]; i++) {
		fake_ms = walls[i];
		hlc_ts t = hlc_now(h);
		CHECK(hlc_compare(prev, t) < 0);
		CHECK(t.ms >= 50000); /* never below what was already given */
		prev = t;
	}
	CHECK_EQ_INT(prev.ms, 50002);
	CHECK_EQ_INT(prev.logical, 0);
	/* a negative wall clock reads as 0: still monotonic, still encodable */
	fake_ms = -5;
	hlc_ts t = hlc_now(h);
	CHECK(hlc_compare(prev, t) < 0);
	hlc_free(&h);
}

static void test_merge(void)
{
	fake_ms = 1000;
	hlc *h = hlc_new(fake_clock, NULL, HLC_DEFAULT_MAX_DRIFT_MS);
	hlc_ts out;
	/* a peer slightly ahead: we jump to its time, one past its counter */
	CHECK_EQ_INT(hlc_update(h, (hlc_ts){.ms = 1500, .logical = 7}, &out), 0);
	CHECK_EQ_INT(out.ms, 1500);
	CHECK_EQ_INT(out.logical, 8);
	/* the next local event is after the received one though the wall
	 * clock is still at 1000 */
	hlc_ts n = hlc_now(h);
	CHECK_EQ_INT(n.ms, 1500);
	CHECK_EQ_INT(n.logical, 9);
	/* a peer behind us: our time, our counter + 1 */
	CHECK_EQ_INT(hlc_update(h, (hlc_ts){.ms = 900, .logical = 99}, &out), 0);
	CHECK_EQ_INT(out.ms, 1500);
	CHECK_EQ_INT(out.logical, 10);
	/* same ms on both sides: the larger counter + 1 */
	CHECK_EQ_INT(hlc_update(h, (hlc_ts){.ms = 1500, .logical = 40}, &out), 0);
	CHECK_EQ_INT(out.logical, 41);
	CHECK_EQ_INT(hlc_update(h, (hlc_ts){.ms = 1500, .logical = 3}, &out), 0);
	CHECK_EQ_INT(out.logical, 42);
	/* the wall clock ahead of both: wall time, counter 0 */
	fake_ms = 2000;
	CHECK_EQ_INT(hlc_update(h, (hlc_ts){.ms = 1999, .logical = 5}, &out), 0);
	CHECK_EQ_INT(out.ms, 2000);
	CHECK_EQ_INT(out.logical, 0);
	CHECK(hlc_compare(hlc_last(h), out) == 0);
	hlc_free(&h);
}

static void test_counter_carries(void)
{
	fake_ms = 7000;
	hlc *h = hlc_new(fake_clock, NULL, HLC_DEFAULT_MAX_DRIFT_MS);
	hlc_ts out;
	CHECK_EQ_INT(hlc_update(h, (hlc_ts){.ms = 7000, .logical = UINT32_MAX - 1}, &out), 0);
	CHECK_EQ_INT(out.logical, UINT32_MAX);
	hlc_ts t = hlc_now(h);
	CHECK_EQ_INT(t.ms, 7001);
	CHECK_EQ_INT(t.logical, 0);
	CHECK(hlc_compare(out, t) < 0);
	hlc_free(&h);
}

static void test_drift_refused(void)
{
	fake_ms = 1000000;
	hlc *h = hlc_new(fake_clock, NULL, 60000);
	hlc_ts before = hlc_now(h), out = {0};
	CHECK_EQ_INT(hlc_update(h, (hlc_ts){.ms = 1000000 + 60001, .logical = 0}, &out),
		     ERR_LIMIT);
	CHECK_EQ_INT(out.ms, 0); /* untouched */
	CHECK(hlc_compare(hlc_last(h), before) == 0); /* clock unchanged */
	/* exactly at the bound: accepted */
	CHECK_EQ_INT(hlc_update(h, (hlc_ts){.ms = 1000000 + 60000, .logical = 0}, &out), 0);
	CHECK_EQ_INT(out.ms, 1060000);
	CHECK_EQ_INT(hlc_update(h, (hlc_ts){.ms = -1, .logical = 0}, &out), ERR_INVAL);
	CHECK_EQ_INT(hlc_update(h, (hlc_ts){.ms = HLC_MAX_MS + 1, .logical = 0}, &out), ERR_INVAL);
	CHECK(hlc_new(fake_clock, NULL, 0) == NULL);
	hlc_free(&h);
}

static void test_compare_ties(void)
{
	hlc_ts a = {.ms = 5, .logical = 1}, b = {.ms = 5, .logical = 1}, c = {.ms = 5, .logical = 2},
	       d = {.ms = 6, .logical = 0};
	CHECK_EQ_INT(hlc_compare(a, b), 0);
	CHECK(hlc_compare(a, c) < 0 && hlc_compare(c, a) > 0);
	CHECK(hlc_compare(c, d) < 0); /* ms before counter */
	CHECK(hlc_compare((hlc_ts){.ms = 5, .logical = UINT32_MAX}, d) < 0);
}

static void test_encode(void)
{
	char s[HLC_STR_LEN + 1];
	hlc_encode((hlc_ts){.ms = 0x18c2b3a4f10, .logical = 0x2a}, s);
	CHECK_EQ_STR(s, "018c2b3a4f10-0000002a");
	hlc_ts samples[] = {{0, 0}, {0, 1}, {1, 0}, {255, UINT32_MAX}, {256, 0},
			    {1764740000000, 3}, {1764740000000, 17}, {HLC_MAX_MS, UINT32_MAX}};
	size_t n = sizeof samples / sizeof samples[0];
	char prev[HLC_STR_LEN + 1] = "";
	for (size_t i = 0; i < n; i++) {
		hlc_encode(samples[i], s);
		CHECK_EQ_INT(strlen(s), HLC_STR_LEN);
		hlc_ts back;
		CHECK_EQ_INT(hlc_decode(s, strlen(s), &back), 0);
		CHECK(hlc_compare(back, samples[i]) == 0);
		/* string order is time order */
		if (i > 0)
			CHECK(strcmp(prev, s) < 0);
		memcpy(prev, s, sizeof prev);
	}
	hlc_ts t;
	CHECK_EQ_INT(hlc_decode("018c2b3a4f10-0000002", 20, &t), ERR_PARSE);
	CHECK_EQ_INT(hlc_decode("018c2b3a4f10_0000002a", 21, &t), ERR_PARSE);
	CHECK_EQ_INT(hlc_decode("018C2B3A4F10-0000002A", 21, &t), ERR_PARSE);
	CHECK_EQ_INT(hlc_decode("018c2b3a4f1g-0000002a", 21, &t), ERR_PARSE);
	CHECK_EQ_INT(hlc_decode("018c2b3a4f10-0000002a0", 22, &t), ERR_PARSE);
}

int main(void)
{
	RUN(test_follows_wall_clock);
	RUN(test_monotonic_when_clock_goes_back);
	RUN(test_merge);
	RUN(test_counter_carries);
	RUN(test_drift_refused);
	RUN(test_compare_ties);
	RUN(test_encode);
	return TEST_SUMMARY();
}
