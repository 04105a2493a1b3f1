/*
 * test_ratelog.c - unit tests for src/core/ratelog.c, on an injected clock:
 * once per interval per cause, the count of what was held back, causes kept
 * apart, and the least recently logged cause giving way to a new one.
 */
#include "test.h"

#include "core/ratelog.h"

static void test_once_per_interval_with_count(void)
{
	ratelog *rl = ratelog_new(10000);
	unsigned n = 99;
	CHECK(ratelog_allow(rl, "connection refused", 1000, &n));
	CHECK_EQ_INT(n, 0);
	/* every reconnect within the interval is held back */
	for (int i = 1; i <= 5; i++)
		CHECK(!ratelog_allow(rl, "connection refused", 1000 + i * 1000, &n));
	CHECK(!ratelog_allow(rl, "connection refused", 10999, &n));
	/* the interval is over: through, with the count of the held-back ones */
	CHECK(ratelog_allow(rl, "connection refused", 11000, &n));
	CHECK_EQ_INT(n, 6);
	CHECK(!ratelog_allow(rl, "connection refused", 12000, &n));
	CHECK(ratelog_allow(rl, "connection refused", 30000, &n));
	CHECK_EQ_INT(n, 1);
	ratelog_free(&rl);
	CHECK(rl == NULL);
	ratelog_free(&rl); /* no-op on NULL */
}

static void test_causes_are_apart(void)
{
	ratelog *rl = ratelog_new(10000);
	unsigned n;
	CHECK(ratelog_allow(rl, "connection refused", 0, &n));
	/* a new cause is news, even within the interval of another */
	CHECK(ratelog_allow(rl, "certificate verify failed: certificate has expired", 100, &n));
	CHECK(!ratelog_allow(rl, "connection refused", 200, &n));
	CHECK(!ratelog_allow(rl, "certificate verify failed: certificate has expired", 300, NULL));
	CHECK(ratelog_allow(rl, "connection refused", 10000, &n));
	CHECK_EQ_INT(n, 1);
	ratelog_free(&rl);
}

static void test_full_table_gives_way_to_new_causes(void)
{
	ratelog *rl = ratelog_new(10000);
	char cause[32];
	unsigned n;
	for (int i = 0; i < RATELOG_CAUSES; i++) {
		snprintf(cause, sizeof cause, "cause %d", i);
		CHECK(ratelog_allow(rl, cause, i, &n));
	}
	/* one more: it pushes out "cause 0", the least recently logged */
	CHECK(ratelog_allow(rl, "one more", 100, &n));
	CHECK_EQ_INT(n, 0);
	CHECK(!ratelog_allow(rl, "cause 1", 200, &n)); /* still tracked */
	CHECK(ratelog_allow(rl, "cause 0", 300, &n));  /* forgotten: news again */
	ratelog_free(&rl);
}

static void test_long_causes_compare_on_a_prefix(void)
{
	ratelog *rl = ratelog_new(1000);
	char a[400], b[400];
	memset(a, 'x', sizeof a - 1);
	a[sizeof a - 1] = '\0';
	memcpy(b, a, sizeof b);
	b[300] = 'y'; /* differs beyond the compared prefix */
	CHECK(ratelog_allow(rl, a, 0, NULL));
	CHECK(!ratelog_allow(rl, b, 1, NULL));
	ratelog_free(&rl);
}

int main(void)
{
	RUN(test_once_per_interval_with_count);
	RUN(test_causes_are_apart);
	RUN(test_full_table_gives_way_to_new_causes);
	RUN(test_long_causes_compare_on_a_prefix);
	return TEST_SUMMARY();
}
