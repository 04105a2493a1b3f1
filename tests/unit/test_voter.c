/*
 * test_voter.c - unit tests for the voter rules (src/failover/voter.c), the
 * pieces of docs/FAILOVER.md that decide safety: a binding grant refuses
 * other holders, promises never go back, a restarted voter counts a
 * recorded grant in full, a forced vote drops the grant, a late handover
 * does not release a newer epoch's grant. (The divergence point of two
 * logs is tested with the other history rules: test_failover_history.c.)
 */
#include "test.h"

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "failover/voter.h"

static char dir[64];

static voter *open_voter(const char *name, int lease_ms, int margin_ms)
{
	config c;
	config_defaults(&c);
	c.failover.lease_ms = lease_ms;
	c.failover.grant_margin_ms = margin_ms;
	char path[128], err[256];
	snprintf(path, sizeof path, "%s/%s.json", dir, name);
	voter *v = voter_open(path, &c.failover, err, sizeof err);
	CHECK(v != NULL);
	return v;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static void test_lease_grants_bind(void)
{
	voter *v = open_voter("bind", 300, 50);
	voter_answer a;
	CHECK_EQ_INT(voter_lease(v, 1, "eu", &a), 0);
	CHECK(a.granted);
	/* another holder is refused while the grant binds, with the time left */
	voter_lease(v, 1, "us", &a);
	CHECK(!a.granted);
	CHECK_EQ_STR(a.reason, "lease_held");
	CHECK_EQ_STR(a.holder, "eu");
	CHECK(a.remaining_ms > 0 && a.remaining_ms <= 350);
	/* so is a vote for it, even in a newer epoch */
	voter_vote(v, 2, "us", false, false, false, &a);
	CHECK(!a.granted);
	CHECK_EQ_STR(a.reason, "lease_held");
	CHECK_EQ_INT(voter_promised(v), 1); /* a refused vote changes nothing */
	/* the holder renews */
	voter_lease(v, 1, "eu", &a);
	CHECK(a.granted);
	/* once lease + margin have passed, it no longer binds */
	sleep_ms(400);
	CHECK(!voter_binds_other(v, "us", NULL, NULL));
	voter_vote(v, 2, "us", false, false, false, &a);
	CHECK(a.granted);
	CHECK_EQ_INT(voter_promised(v), 2);
	/* an older epoch is refused from now on, leases included */
	voter_lease(v, 1, "eu", &a);
	CHECK(!a.granted);
	CHECK_EQ_STR(a.reason, "stale_epoch");
	CHECK_EQ_INT(a.promised_epoch, 2);
	voter_free(&v);
}

static void test_votes_need_a_newer_epoch_and_data(void)
{
	voter *v = open_voter("votes", 300, 50);
	voter_answer a;
	voter_vote(v, 3, "us", false, false, false, &a);
	CHECK(a.granted);
	voter_vote(v, 3, "eu", false, false, false, &a); /* one vote per epoch */
	CHECK(!a.granted);
	CHECK_EQ_STR(a.reason, "stale_epoch");
	voter_vote(v, 4, "eu", true, false, false, &a); /* behind */
	CHECK(!a.granted);
	CHECK_EQ_STR(a.reason, "behind");
	/* a pre-vote answers without promising anything */
	voter_vote(v, 4, "eu", false, true, false, &a);
	CHECK(a.granted);
	CHECK_EQ_INT(voter_promised(v), 3);
	voter_free(&v);
}

static void test_restart_counts_a_grant_in_full(void)
{
	voter *v = open_voter("restart", 300, 50);
	voter_answer a;
	voter_lease(v, 5, "eu", &a);
	CHECK(a.granted);
	sleep_ms(200);
	voter_free(&v);
	/* the clock did not survive: the grant binds a full lease from now */
	v = open_voter("restart", 300, 50);
	CHECK_EQ_INT(voter_promised(v), 5);
	int64_t left = 0;
	CHECK(voter_binds_other(v, "us", &left, NULL));
	CHECK(left > 250);
	voter_vote(v, 6, "us", false, false, false, &a);
	CHECK(!a.granted);
	/* the file is private */
	char path[128];
	struct stat st;
	snprintf(path, sizeof path, "%s/restart.json", dir);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
	voter_free(&v);
}

static void test_force_and_handover(void)
{
	voter *v = open_voter("force", 5000, 200);
	voter_answer a;
	voter_lease(v, 1, "eu", &a);
	/* forced: the binding grant is dropped, the vote given */
	voter_vote(v, 2, "us", false, false, true, &a);
	CHECK(a.granted);
	CHECK(!voter_binds_other(v, "us", NULL, NULL));
	/* the old primary can no longer renew in its epoch */
	voter_lease(v, 1, "eu", &a);
	CHECK(!a.granted);
	voter_free(&v);

	v = open_voter("handover", 5000, 200);
	voter_lease(v, 3, "eu", &a);
	/* a handover of an older epoch (overtaken by epoch 3) releases nothing */
	CHECK_EQ_INT(voter_handover(v, 1, "eu"), 0);
	CHECK(voter_binds_other(v, "us", NULL, NULL));
	/* nor one from someone who is not the holder */
	voter_handover(v, 3, "us");
	CHECK(voter_binds_other(v, "us", NULL, NULL));
	/* the holder's own handover in its epoch does */
	voter_handover(v, 3, "eu");
	CHECK(!voter_binds_other(v, "us", NULL, NULL));
	voter_vote(v, 4, "us", false, false, false, &a);
	CHECK(a.granted);
	voter_free(&v);
}

int main(void)
{
	snprintf(dir, sizeof dir, "/tmp/tandem-test-voter-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	RUN(test_lease_grants_bind);
	RUN(test_votes_need_a_newer_epoch_and_data);
	RUN(test_restart_counts_a_grant_in_full);
	RUN(test_force_and_handover);
	char cmd[96];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TEST_SUMMARY();
}
