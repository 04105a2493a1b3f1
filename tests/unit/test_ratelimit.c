/*
 * test_ratelimit.c - the authentication throttle table (src/region/ratelimit.c)
 * with injected time: attempts are reserved before the expensive step so
 * concurrent ones cannot all pass (the bug of issue 8: 100 concurrent logins
 * were all hashed), in-flight caps, windows, outcomes, and table keys that
 * depend on the secret (an attacker cannot aim collisions at a victim).
 */
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "region/internal.h"
#include "test.h"

static const unsigned char secret_a[32] = {1, 2, 3};
static const unsigned char secret_b[32] = {9, 8, 7};

#define T0 1000000000LL /* an arbitrary "now" in ms */

/* 100 attempts arrive before any has finished: only max_count can be in
 * flight (no more than could fail before the limit), the rest are refused. */
static void test_reservation_bounds_concurrent_attempts(void)
{
	ratelimit *r = ratelimit_new(1024, secret_a);
	int admitted = 0;
	for (int i = 0; i < 100; i++)
		if (ratelimit_reserve(r, "a:victim@example.com", 5, 1000, 900, T0) == 0)
			admitted++;
	CHECK_EQ_INT(admitted, 5);
	CHECK_EQ_INT(ratelimit_in_flight(r, "a:victim@example.com"), 5);
	/* all five fail: the account is now locked for the window */
	for (int i = 0; i < 5; i++)
		ratelimit_release(r, "a:victim@example.com", RATELIMIT_COUNT, 900, T0 + 10);
	CHECK_EQ_INT(ratelimit_in_flight(r, "a:victim@example.com"), 0);
	int wait = ratelimit_reserve(r, "a:victim@example.com", 5, 1000, 900, T0 + 20);
	CHECK(wait >= 899 && wait <= 900);
	/* the window ends: attempts again */
	CHECK_EQ_INT(ratelimit_reserve(r, "a:victim@example.com", 5, 1000, 900, T0 + 900 * 1000), 0);
	ratelimit_free(&r);
	CHECK(r == NULL);
}

static void test_in_flight_cap(void)
{
	ratelimit *r = ratelimit_new(1024, secret_a);
	CHECK_EQ_INT(ratelimit_reserve(r, "a:x", 5, 2, 900, T0), 0);
	CHECK_EQ_INT(ratelimit_reserve(r, "a:x", 5, 2, 900, T0), 0);
	/* a third in flight: refused for a second, nothing held */
	CHECK_EQ_INT(ratelimit_reserve(r, "a:x", 5, 2, 900, T0), 1);
	CHECK_EQ_INT(ratelimit_in_flight(r, "a:x"), 2);
	/* one ends without counting (a success per address): room again */
	ratelimit_release(r, "a:x", RATELIMIT_NONE, 900, T0 + 5);
	CHECK_EQ_INT(ratelimit_reserve(r, "a:x", 5, 2, 900, T0 + 6), 0);
	/* other keys are independent */
	CHECK_EQ_INT(ratelimit_reserve(r, "a:y", 5, 2, 900, T0), 0);
	ratelimit_free(&r);
}

/* count + in_flight: 3 failures and 2 in flight fill a limit of 5 */
static void test_failures_and_in_flight_add_up(void)
{
	ratelimit *r = ratelimit_new(1024, secret_a);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(ratelimit_reserve(r, "a:z", 5, 10, 900, T0), 0);
		ratelimit_release(r, "a:z", RATELIMIT_COUNT, 900, T0);
	}
	CHECK_EQ_INT(ratelimit_reserve(r, "a:z", 5, 10, 900, T0), 0);
	CHECK_EQ_INT(ratelimit_reserve(r, "a:z", 5, 10, 900, T0), 0);
	CHECK_EQ_INT(ratelimit_reserve(r, "a:z", 5, 10, 900, T0), 1); /* may succeed: retry soon */
	/* one succeeds: RESET clears the failures, the other is still in flight */
	ratelimit_release(r, "a:z", RATELIMIT_RESET, 900, T0 + 1);
	CHECK_EQ_INT(ratelimit_in_flight(r, "a:z"), 1);
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(ratelimit_reserve(r, "a:z", 5, 10, 900, T0 + 2), 0);
	CHECK_EQ_INT(ratelimit_reserve(r, "a:z", 5, 10, 900, T0 + 2), 1);
	ratelimit_free(&r);
}

/* ratelimit_take: counted at once (signups), per window */
static void test_take_counts_at_once(void)
{
	ratelimit *r = ratelimit_new(1024, secret_a);
	for (int i = 0; i < 3; i++)
		CHECK_EQ_INT(ratelimit_take(r, "s:10.0.0.1", 3, 3600, T0 + i), 0);
	int wait = ratelimit_take(r, "s:10.0.0.1", 3, 3600, T0 + 1000);
	CHECK_EQ_INT(wait, 3599);
	CHECK_EQ_INT(ratelimit_in_flight(r, "s:10.0.0.1"), 0);
	CHECK_EQ_INT(ratelimit_take(r, "s:10.0.0.2", 3, 3600, T0 + 1000), 0);
	CHECK_EQ_INT(ratelimit_take(r, "s:10.0.0.1", 3, 3600, T0 + 3600 * 1000), 0);
	ratelimit_free(&r);
}

/* The table key is keyed: another secret gives another key for the same
 * name, and the key is not the unkeyed SHA-256 of the name (what an
 * attacker could compute offline to aim probe-run collisions). */
static void test_table_key_depends_on_the_secret(void)
{
	ratelimit *a = ratelimit_new(64, secret_a), *a2 = ratelimit_new(64, secret_a);
	ratelimit *b = ratelimit_new(64, secret_b);
	unsigned char ka[RATELIMIT_KEY_BYTES], ka2[RATELIMIT_KEY_BYTES], kb[RATELIMIT_KEY_BYTES];
	const char *name = "a:victim@example.com";
	ratelimit_key_hash(a, name, ka);
	ratelimit_key_hash(a2, name, ka2);
	ratelimit_key_hash(b, name, kb);
	CHECK(memcmp(ka, ka2, sizeof ka) == 0);
	CHECK(memcmp(ka, kb, sizeof ka) != 0);
	unsigned char plain[32];
	util_sha256(name, strlen(name), plain);
	plain[0] |= 1;
	CHECK(memcmp(ka, plain, sizeof ka) != 0);
	CHECK(memcmp(kb, plain, sizeof kb) != 0);
	ratelimit_free(&a);
	ratelimit_free(&a2);
	ratelimit_free(&b);
}

/* An entry with attempts in flight is never evicted, even from a full
 * table; a reservation that finds no room is refused, holding nothing. */
static void test_in_flight_entries_are_not_evicted(void)
{
	ratelimit *r = ratelimit_new(8, secret_a); /* one probe run: the whole table */
	char name[32];
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof name, "i:10.0.0.%d", i);
		CHECK_EQ_INT(ratelimit_reserve(r, name, 5, 5, 900, T0), 0);
	}
	CHECK(ratelimit_reserve(r, "i:10.0.1.1", 5, 5, 900, T0) > 0);
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof name, "i:10.0.0.%d", i);
		CHECK_EQ_INT(ratelimit_in_flight(r, name), 1);
	}
	/* one ends: its slot may be reused once idle (window ended) */
	ratelimit_release(r, "i:10.0.0.3", RATELIMIT_NONE, 900, T0);
	CHECK_EQ_INT(ratelimit_reserve(r, "i:10.0.1.1", 5, 5, 900, T0 + 1), 0);
	CHECK_EQ_INT(ratelimit_in_flight(r, "i:10.0.1.1"), 1);
	for (int i = 0; i < 8; i++) {
		if (i == 3)
			continue;
		snprintf(name, sizeof name, "i:10.0.0.%d", i);
		CHECK_EQ_INT(ratelimit_in_flight(r, name), 1);
	}
	ratelimit_free(&r);
}

/* A failure released after its window ended starts a new window. */
static void test_release_after_the_window(void)
{
	ratelimit *r = ratelimit_new(64, secret_a);
	for (int i = 0; i < 4; i++) {
		CHECK_EQ_INT(ratelimit_reserve(r, "a:w", 5, 5, 10, T0), 0);
		ratelimit_release(r, "a:w", RATELIMIT_COUNT, 10, T0);
	}
	CHECK_EQ_INT(ratelimit_reserve(r, "a:w", 5, 5, 10, T0 + 9000), 0);
	/* released in the next window: counts 1 there, not 5 */
	ratelimit_release(r, "a:w", RATELIMIT_COUNT, 10, T0 + 10500);
	for (int i = 0; i < 4; i++)
		CHECK_EQ_INT(ratelimit_reserve(r, "a:w", 5, 5, 10, T0 + 10600), 0);
	CHECK(ratelimit_reserve(r, "a:w", 5, 5, 10, T0 + 10600) > 0);
	ratelimit_free(&r);
}

int main(void)
{
	RUN(test_reservation_bounds_concurrent_attempts);
	RUN(test_in_flight_cap);
	RUN(test_failures_and_in_flight_add_up);
	RUN(test_take_counts_at_once);
	RUN(test_table_key_depends_on_the_secret);
	RUN(test_in_flight_entries_are_not_evicted);
	RUN(test_release_after_the_window);
	return TEST_SUMMARY();
}
