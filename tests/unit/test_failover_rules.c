/*
 * test_failover_rules.c - the pure timing and epoch rules of
 * src/failover/rules.c at their edges: the lease counted from the send with
 * the drift and the margin taken off, the isolation gate's bound (inclusive),
 * the early probe, fencing, the epoch a candidate stands for, the retry wait
 * after a refusal, and the majority of three; and the replication's lag and
 * reconnect arithmetic (moved here from stream.c, applier.c and repl.c).
 */
#include "test.h"

#include "core/config.h"
#include "failover/rules.h"

static void test_lease_end_from_the_send(void)
{
	config_failover f = {.lease_ms = 4000, .max_drift_ppm = 10000, .lease_margin_ms = 200};
	/* 4000 * (1 - 0.01) - 200 = 3760 ms after the send (FAILOVER.md: 3.76 s) */
	CHECK_EQ_INT(rules_lease_end(&f, 1000), 1000 + 3760);
	CHECK_EQ_INT(rules_lease_end(&f, 0), 3760);
	f.max_drift_ppm = 0;
	f.lease_margin_ms = 0;
	CHECK_EQ_INT(rules_lease_end(&f, 5), 4005);
}

static void test_quorum_heard_bound(void)
{
	CHECK(rules_quorum_heard(1000, 5000, 4000));  /* exactly the bound: still heard */
	CHECK(!rules_quorum_heard(1000, 5001, 4000)); /* one ms past it: isolated */
	CHECK(rules_quorum_heard(1000, 5000, 5000));
	CHECK(rules_quorum_heard(0, 1000000, 0));     /* the gate off */
	CHECK(rules_quorum_heard(-1, 1000000, 0));
}

static void test_probe_due(void)
{
	/* half the bound since anything was heard and since the last round */
	CHECK(rules_probe_due(1000, 10000, 9500, 9500));
	CHECK(!rules_probe_due(1000, 10000, 9501, 9000)); /* heard lately */
	CHECK(!rules_probe_due(1000, 10000, 9000, 9501)); /* a round just went out */
	CHECK(!rules_probe_due(0, 10000, 0, 0));          /* the gate off: no probes */
}

static void test_epoch_rules(void)
{
	CHECK(rules_epoch_stale(2, 3));
	CHECK(!rules_epoch_stale(3, 3));
	CHECK(!rules_epoch_stale(4, 3));
	CHECK_EQ_INT(rules_stand_epoch(5, 3), 6); /* above the promise */
	CHECK_EQ_INT(rules_stand_epoch(3, 5), 6); /* above the known epoch */
	CHECK_EQ_INT(rules_stand_epoch(0, 0), 1);
}

static void test_retry_and_majority(void)
{
	CHECK_EQ_INT(rules_retry_wait(0, 500), 500);
	CHECK_EQ_INT(rules_retry_wait(2300, 500), 2300); /* a binding grant's remaining time */
	CHECK_EQ_INT(rules_retry_wait(-5, 500), 500);
	CHECK(!rules_majority(0));
	CHECK(!rules_majority(1)); /* the own vote alone */
	CHECK(rules_majority(2));
	CHECK(rules_majority(3));
}

/* Lag in positions never wraps: a follower ahead (a primary that lost
 * entries to a revert, a stale acked position) is 0 behind, not 2^64 - 1. */
static void test_lag_positions(void)
{
	CHECK_EQ_INT(rules_lag_positions(10, 7), 3);
	CHECK_EQ_INT(rules_lag_positions(7, 7), 0);
	CHECK_EQ_INT(rules_lag_positions(7, 10), 0);
	CHECK_EQ_INT(rules_lag_positions(UINT64_MAX, 0), UINT64_MAX);
}

/* The secondary's lag: the oldest unapplied entry's age first; else the
 * outage, only while the link is down and the primary is ahead; never
 * negative (a primary whose clock is ahead of ours). */
static void test_applier_lag(void)
{
	CHECK_EQ_INT(rules_applier_lag_ms(10000, 9000, true, 0, 5, 5), 1000);
	CHECK_EQ_INT(rules_applier_lag_ms(10000, 9000, false, 2000, 9, 5), 1000); /* unapplied wins */
	CHECK_EQ_INT(rules_applier_lag_ms(10000, 0, false, 2000, 9, 5), 8000);   /* down, behind */
	CHECK_EQ_INT(rules_applier_lag_ms(10000, 0, false, 2000, 5, 5), 0);      /* down, caught up */
	CHECK_EQ_INT(rules_applier_lag_ms(10000, 0, true, 2000, 9, 5), 0);       /* streaming */
	CHECK_EQ_INT(rules_applier_lag_ms(10000, 0, false, 0, 9, 5), 0);         /* never down */
	CHECK_EQ_INT(rules_applier_lag_ms(10000, 12000, true, 0, 9, 5), 0);      /* clock skew */
}

/* The reconnect backoff doubles up to its bound and stays there (no
 * overflow at a large bound); the stream's idle bound is eight heartbeats,
 * at least 2 s. */
static void test_backoff_and_idle_timeout(void)
{
	CHECK_EQ_INT(rules_backoff_next(100, 5000), 200);
	CHECK_EQ_INT(rules_backoff_next(2500, 5000), 5000);
	CHECK_EQ_INT(rules_backoff_next(3000, 5000), 5000);
	CHECK_EQ_INT(rules_backoff_next(5000, 5000), 5000);
	CHECK_EQ_INT(rules_backoff_next(3, 5), 5);
	CHECK_EQ_INT(rules_backoff_next(2000000000, 2147483647), 2147483647);
	CHECK_EQ_INT(rules_stream_idle_timeout_ms(100), 2000);
	CHECK_EQ_INT(rules_stream_idle_timeout_ms(250), 2000);
	CHECK_EQ_INT(rules_stream_idle_timeout_ms(251), 2008);
	CHECK_EQ_INT(rules_stream_idle_timeout_ms(1000), 8000);
}

int main(void)
{
	RUN(test_lease_end_from_the_send);
	RUN(test_quorum_heard_bound);
	RUN(test_probe_due);
	RUN(test_epoch_rules);
	RUN(test_retry_and_majority);
	RUN(test_lag_positions);
	RUN(test_applier_lag);
	RUN(test_backoff_and_idle_timeout);
	return TEST_SUMMARY();
}
