/*
 * test_dnshealth.c - unit tests for the health state machine of
 * src/dns/health.c on an injected clock: withdrawal after exactly
 * `failures` failed checks in a row (an isolated failure resets the count),
 * recovery after `recoveries` passes, the times of the transitions, the
 * withdrawal time bound of docs/DNS.md (interval x failures), and the view
 * the answers read (healthy mask, the primary with the newest epoch).
 */
#include <string.h>

#include "dns/health.h"
#include "test.h"

static const dns_health_params params = {.failures = 3, .recoveries = 2};

static void test_starts_healthy(void)
{
	dns_health_state s;
	dns_health_state_init(&s, 1000);
	CHECK(s.healthy);
	CHECK_EQ_INT(s.since_ms, 1000);
	CHECK_EQ_INT(s.checks, 0);
}

static void test_failures_then_recovery(void)
{
	dns_health_state s;
	dns_health_state_init(&s, 0);
	int64_t t = 0;
	CHECK(!dns_health_observe(&s, &params, false, t += 1000));
	CHECK(!dns_health_observe(&s, &params, false, t += 1000));
	CHECK(!dns_health_observe(&s, &params, true, t += 1000)); /* one pass: the streak starts over */
	CHECK(s.healthy);
	CHECK(!dns_health_observe(&s, &params, false, t += 1000));
	CHECK(!dns_health_observe(&s, &params, false, t += 1000));
	CHECK(dns_health_observe(&s, &params, false, t += 1000)); /* the third in a row */
	CHECK(!s.healthy);
	CHECK_EQ_INT(s.since_ms, 6000);
	CHECK_EQ_INT(s.transitions, 1);
	CHECK(!dns_health_observe(&s, &params, false, t += 1000)); /* stays down */
	CHECK(!dns_health_observe(&s, &params, true, t += 1000));
	CHECK(!dns_health_observe(&s, &params, false, t += 1000)); /* a pass, then a failure: no recovery */
	CHECK(!dns_health_observe(&s, &params, true, t += 1000));
	CHECK(dns_health_observe(&s, &params, true, t += 1000));
	CHECK(s.healthy);
	CHECK_EQ_INT(s.since_ms, 11000);
	CHECK_EQ_INT(s.transitions, 2);
	CHECK_EQ_INT(s.checks, 11);
	CHECK_EQ_INT(s.failed, 7);
}

/* A region dying between two checks at interval 1 s is out of the answers
 * at most interval x failures later (the bound the functional test allows
 * one more second for). */
static void test_withdrawal_bound(void)
{
	for (int64_t death = 1; death < 1000; death += 111) {
		dns_health_state s;
		dns_health_state_init(&s, 0);
		int64_t t = 0, withdrawn = -1;
		for (int k = 1; k <= 10 && withdrawn < 0; k++) {
			t = k * 1000;
			if (dns_health_observe(&s, &params, t < death, t))
				withdrawn = t;
		}
		CHECK(withdrawn > 0);
		CHECK(withdrawn - death <= 3 * 1000);
	}
}

static void test_single_threshold(void)
{
	const dns_health_params one = {.failures = 1, .recoveries = 1};
	dns_health_state s;
	dns_health_state_init(&s, 0);
	CHECK(dns_health_observe(&s, &one, false, 1));
	CHECK(dns_health_observe(&s, &one, true, 2));
	CHECK(!dns_health_observe(&s, &one, true, 3));
}

static void test_view(void)
{
	dns_health_state s[3];
	bool primary[3] = {true, true, false};
	uint64_t epoch[3] = {4, 5, 0};
	for (int i = 0; i < 3; i++)
		dns_health_state_init(&s[i], 0);
	/* both say primary during a switchover: the newer epoch wins */
	dns_health_view v = dns_health_make_view(s, primary, epoch, 3);
	CHECK_EQ_INT(DNS_VIEW_HEALTHY(v), 7);
	CHECK_EQ_INT(DNS_VIEW_PRIMARY(v), 2);
	/* the newer one unhealthy: the other primary is followed */
	s[1].healthy = false;
	v = dns_health_make_view(s, primary, epoch, 3);
	CHECK_EQ_INT(DNS_VIEW_HEALTHY(v), 5);
	CHECK_EQ_INT(DNS_VIEW_PRIMARY(v), 1);
	primary[0] = false;
	v = dns_health_make_view(s, primary, epoch, 3);
	CHECK_EQ_INT(DNS_VIEW_PRIMARY(v), 0);
	s[0].healthy = s[2].healthy = false;
	CHECK_EQ_INT(dns_health_make_view(s, primary, epoch, 3), 0);
	CHECK_EQ_INT(dns_health_make_view(s, primary, epoch, 0), 0);
	/* no checker: every region healthy */
	CHECK_EQ_INT(dns_health_current(NULL), DNS_VIEW_ALL_HEALTHY);
}

int main(void)
{
	RUN(test_starts_healthy);
	RUN(test_failures_then_recovery);
	RUN(test_withdrawal_bound);
	RUN(test_single_threshold);
	RUN(test_view);
	return TEST_SUMMARY();
}
