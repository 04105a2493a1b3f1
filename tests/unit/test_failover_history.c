/*
 * test_failover_history.c - the pure history rules of src/failover/history.c:
 * the epoch of a position, the vote rule's "behind", the divergence point D
 * of two logs and the rejoin decision (docs/FAILOVER.md "Rejoin"), on the
 * cases of the model's counterexamples (model/failover.pml, FAILOVER.md
 * "Changes made by the model check"), and exhaustively against the model's
 * own definition of D on every pair of small logs.
 */
#include "test.h"

#include <stdint.h>

#include "failover/history.h"

static void test_epoch_of(void)
{
	uint64_t e[] = {1, 2, 4}, f[] = {1, 10, 20};
	CHECK_EQ_INT(history_epoch_of(e, f, 3, 0), 0); /* the empty prefix */
	CHECK_EQ_INT(history_epoch_of(e, f, 3, 1), 1);
	CHECK_EQ_INT(history_epoch_of(e, f, 3, 9), 1);
	CHECK_EQ_INT(history_epoch_of(e, f, 3, 10), 2);
	CHECK_EQ_INT(history_epoch_of(e, f, 3, 19), 2);
	CHECK_EQ_INT(history_epoch_of(e, f, 3, 20), 4);
	CHECK_EQ_INT(history_epoch_of(e, f, 3, 1000), 4); /* past the end: the last epoch */
	CHECK_EQ_INT(history_epoch_of(e, f, 0, 5), 0);    /* an empty (unknown) history */
	/* an epoch elected that wrote nothing shares first_seq with the next
	 * one: the later row wins */
	uint64_t e2[] = {1, 2, 3}, f2[] = {1, 1, 2};
	CHECK_EQ_INT(history_epoch_of(e2, f2, 3, 1), 2);
	CHECK_EQ_INT(history_epoch_of(e2, f2, 3, 2), 3);
	/* a history that starts above 1 (the oldest rows dropped) */
	uint64_t e3[] = {7}, f3[] = {50};
	CHECK_EQ_INT(history_epoch_of(e3, f3, 1, 49), 0);
	CHECK_EQ_INT(history_epoch_of(e3, f3, 1, 50), 7);
}

/* The vote rule: epoch first, then position; equal is not behind. */
static void test_behind(void)
{
	CHECK(!history_behind(3, 10, 3, 10));
	CHECK(history_behind(3, 9, 3, 10));
	CHECK(!history_behind(3, 11, 3, 10));
	CHECK(history_behind(2, 1000, 3, 10)); /* more entries of an older epoch: behind */
	CHECK(!history_behind(4, 1, 3, 10));   /* a newer epoch wins with fewer entries */
	CHECK(!history_behind(0, 0, 0, 0));    /* two empty logs */
	CHECK(history_behind(0, 0, 1, 1));
}

static void test_divergence_point(void)
{
	/* same history, different lengths: the shorter end */
	uint64_t e1[] = {1}, f1[] = {1};
	CHECK_EQ_INT(history_divergence(e1, f1, 1, 100, e1, f1, 1, 90), 90);
	/* the usual failover: eu wrote 91..100 in epoch 1 that us never got;
	 * us was elected in epoch 2 at 90 */
	uint64_t e2[] = {1, 2}, f2[] = {1, 91};
	CHECK_EQ_INT(history_divergence(e1, f1, 1, 100, e2, f2, 2, 150), 90);
	CHECK_EQ_INT(history_divergence(e2, f2, 2, 150, e1, f1, 1, 100), 90);
	/* us elected before writing anything: still 90 */
	CHECK_EQ_INT(history_divergence(e1, f1, 1, 100, e2, f2, 2, 90), 90);
	/* the model's counterexample (broken-rejoin): eu wrote 1 in epoch 1;
	 * us wrote 1 in epoch 2, then 2 in epoch 3: D is 0, not 1 */
	uint64_t e3[] = {1, 2, 3}, f3[] = {1, 1, 2};
	CHECK_EQ_INT(history_divergence(e1, f1, 1, 1, e3, f3, 3, 2), 0);
	/* nothing at all yet */
	CHECK_EQ_INT(history_divergence(e1, f1, 1, 0, e2, f2, 2, 0), 0);
	/* agreement across several epochs, parting in the last */
	uint64_t ea[] = {1, 2, 4}, fa[] = {1, 10, 20}, eb[] = {1, 2, 5}, fb[] = {1, 10, 18};
	CHECK_EQ_INT(history_divergence(ea, fa, 3, 30, eb, fb, 3, 25), 17);
}

/* A deposed primary with writes of its own epoch: eu, primary of epoch 1,
 * wrote 1..100; us was elected in epoch 2 at 90 (its epoch starts at 91)
 * and wrote 91..120. eu's 91..100 never reached us: they, and only they,
 * go to the quarantine; the stream resumes at 91 with prev_epoch 1. */
static void test_rejoin_deposed_primary_with_its_own_writes(void)
{
	uint64_t eu_e[] = {1}, eu_f[] = {1}, us_e[] = {1, 2}, us_f[] = {1, 91};
	history_rejoin_plan p = history_rejoin(1, eu_e, eu_f, 1, 100, 2, us_e, us_f, 2, 120);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_QUARANTINE);
	CHECK_EQ_INT(p.d, 90);
	CHECK_EQ_INT(p.from, 91);
	CHECK_EQ_INT(p.to, 100);
	CHECK_EQ_INT(p.epoch_at_d, 1);
	/* the deposed one asks a region that is still of its own old epoch:
	 * same epoch, so it is not "deposed"; asked by a region of a NEWER
	 * epoch, the old primary's history is not to be followed */
	p = history_rejoin(2, us_e, us_f, 2, 120, 1, eu_e, eu_f, 1, 100);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_DEPOSED);
	CHECK_EQ_INT(p.from, 0);
	CHECK_EQ_INT(p.to, 0);
}

/* The model's broken-rejoin counterexample: "revert above the new epoch's
 * start S = 1" would revert nothing and leave eu's epoch-1 entry under
 * us's epoch-3 entry 2 (a silent divergence, P3). D is 0: position 1 is
 * quarantined. */
static void test_rejoin_broken_rejoin_counterexample(void)
{
	uint64_t eu_e[] = {1}, eu_f[] = {1}, us_e[] = {1, 2, 3}, us_f[] = {1, 1, 2};
	history_rejoin_plan p = history_rejoin(1, eu_e, eu_f, 1, 1, 3, us_e, us_f, 3, 2);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_QUARANTINE);
	CHECK_EQ_INT(p.d, 0);
	CHECK_EQ_INT(p.from, 1);
	CHECK_EQ_INT(p.to, 1);
	CHECK_EQ_INT(p.epoch_at_d, 0);
}

/* Equal epochs, different lengths: a prefix follows as it is, a longer log
 * of the same epochs loses only its tail. */
static void test_rejoin_equal_epochs_different_lengths(void)
{
	uint64_t e[] = {1, 2}, f[] = {1, 41};
	history_rejoin_plan p = history_rejoin(2, e, f, 2, 50, 2, e, f, 2, 60);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_IN_SYNC);
	CHECK_EQ_INT(p.d, 50);
	CHECK_EQ_INT(p.epoch_at_d, 2);
	p = history_rejoin(2, e, f, 2, 60, 2, e, f, 2, 50);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_QUARANTINE);
	CHECK_EQ_INT(p.d, 50);
	CHECK_EQ_INT(p.from, 51);
	CHECK_EQ_INT(p.to, 60);
	p = history_rejoin(2, e, f, 2, 60, 2, e, f, 2, 60);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_IN_SYNC);
}

/* Several failovers in a row while eu was away: the divergence point is in
 * an epoch long past (below the current primary's start), and a region
 * that was briefly primary of an epoch nobody followed loses exactly that
 * epoch's entries. */
static void test_rejoin_several_failovers_in_a_row(void)
{
	uint64_t us_e[] = {1, 2, 3, 4}, us_f[] = {1, 41, 61, 71};
	/* eu stopped in epoch 1 at 50; us was elected at 40 (epoch 2) */
	uint64_t eu_e[] = {1}, eu_f[] = {1};
	history_rejoin_plan p = history_rejoin(1, eu_e, eu_f, 1, 50, 4, us_e, us_f, 4, 80);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_QUARANTINE);
	CHECK_EQ_INT(p.d, 40);
	CHECK_EQ_INT(p.from, 41);
	CHECK_EQ_INT(p.to, 50);
	/* eu followed epochs 2 and was primary of epoch 3 (61..65), which us
	 * never got: us was elected in epoch 4 at 60 */
	uint64_t eu2_e[] = {1, 2, 3}, eu2_f[] = {1, 41, 61}, us2_e[] = {1, 2, 4}, us2_f[] = {1, 41, 61};
	p = history_rejoin(3, eu2_e, eu2_f, 3, 65, 4, us2_e, us2_f, 3, 80);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_QUARANTINE);
	CHECK_EQ_INT(p.d, 60);
	CHECK_EQ_INT(p.from, 61);
	CHECK_EQ_INT(p.to, 65);
	CHECK_EQ_INT(p.epoch_at_d, 2);
	/* and one that followed every epoch is in sync */
	p = history_rejoin(4, us_e, us_f, 4, 75, 4, us_e, us_f, 4, 80);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_IN_SYNC);
	CHECK_EQ_INT(p.d, 75);
}

/* Empty logs: nothing to quarantine on an empty log, everything when the
 * primary's log is empty. */
static void test_rejoin_empty_logs(void)
{
	uint64_t e[] = {1}, f[] = {1}, e2[] = {2}, f2[] = {1};
	history_rejoin_plan p = history_rejoin(1, NULL, NULL, 0, 0, 1, e, f, 1, 10);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_IN_SYNC);
	CHECK_EQ_INT(p.d, 0);
	p = history_rejoin(1, NULL, NULL, 0, 0, 2, NULL, NULL, 0, 0);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_IN_SYNC);
	/* the new primary (epoch 2, elected on an empty log) has nothing yet */
	p = history_rejoin(1, e, f, 1, 5, 2, e2, f2, 1, 0);
	CHECK_EQ_INT(p.action, HISTORY_REJOIN_QUARANTINE);
	CHECK_EQ_INT(p.d, 0);
	CHECK_EQ_INT(p.from, 1);
	CHECK_EQ_INT(p.to, 5);
}

/* Build the history of a log given as epoch tags (the model's lg[x].e[]:
 * tags[k] = epoch of position k, k = 1..len, non-decreasing); an elected
 * epoch that wrote nothing adds a row at len + 1 (empty_epoch, 0 = none). */
static int history_of(const uint64_t *tags, int len, uint64_t empty_epoch, uint64_t *e, uint64_t *f)
{
	int n = 0;
	for (int k = 1; k <= len; k++)
		if (n == 0 || e[n - 1] != tags[k]) {
			e[n] = tags[k];
			f[n] = (uint64_t)k;
			n++;
		}
	if (empty_epoch) {
		e[n] = empty_epoch;
		f[n] = (uint64_t)len + 1;
		n++;
	}
	return n;
}

/* Every pair of logs of up to 3 positions with epochs 1..3 (non-decreasing,
 * as a log's epochs are), with or without an empty epoch after them: D from
 * the histories is the model's D (rejoin step of region(): advance while
 * lg[me].e[x_d + 1] == lg[x_o].e[x_d + 1]), and the plan never quarantines
 * a position at or below it. */
static void test_divergence_matches_the_model_exhaustively(void)
{
	enum { MAXLEN = 3, MAXE = 3 };
	/* all non-decreasing tag sequences of length 0..MAXLEN over 1..MAXE */
	uint64_t logs[128][MAXLEN + 1];
	int lens[128], nlogs = 0;
	for (int len = 0; len <= MAXLEN; len++) {
		int total = 1;
		for (int i = 0; i < len; i++)
			total *= MAXE;
		for (int code = 0; code < total; code++) {
			uint64_t t[MAXLEN + 1] = {0};
			int c = code, ok = 1;
			for (int k = 1; k <= len; k++) {
				t[k] = (uint64_t)(c % MAXE) + 1;
				c /= MAXE;
				if (k > 1 && t[k] < t[k - 1])
					ok = 0;
			}
			if (!ok)
				continue;
			memcpy(logs[nlogs], t, sizeof t);
			lens[nlogs++] = len;
		}
	}
	int pairs = 0, mismatches = 0;
	for (int a = 0; a < nlogs; a++)
		for (int b = 0; b < nlogs; b++)
			for (uint64_t ea_extra = 0; ea_extra <= MAXE + 1; ea_extra += MAXE + 1)
				for (uint64_t eb_extra = 0; eb_extra <= MAXE + 1; eb_extra += MAXE + 1) {
					uint64_t he_a[8], hf_a[8], he_b[8], hf_b[8];
					int na = history_of(logs[a], lens[a], ea_extra, he_a, hf_a);
					int nb = history_of(logs[b], lens[b], eb_extra, he_b, hf_b);
					uint64_t model_d = 0;
					while ((int)model_d < lens[a] && (int)model_d < lens[b] &&
					       logs[a][model_d + 1] == logs[b][model_d + 1])
						model_d++;
					uint64_t d = history_divergence(he_a, hf_a, na, (uint64_t)lens[a], he_b, hf_b, nb,
									(uint64_t)lens[b]);
					history_rejoin_plan p = history_rejoin(0, he_a, hf_a, na, (uint64_t)lens[a], 0, he_b,
									       hf_b, nb, (uint64_t)lens[b]);
					pairs++;
					if (d != model_d || p.d != model_d ||
					    (p.action == HISTORY_REJOIN_QUARANTINE) != ((int)model_d < lens[a]) ||
					    (p.action == HISTORY_REJOIN_QUARANTINE && (p.from != model_d + 1 ||
										      p.to != (uint64_t)lens[a]))) {
						if (mismatches++ < 5)
							fprintf(stderr, "log %d (len %d) vs %d (len %d): D %llu, model %llu\n", a,
								lens[a], b, lens[b], (unsigned long long)d,
								(unsigned long long)model_d);
					}
				}
	CHECK(pairs > 1000);
	CHECK_EQ_INT(mismatches, 0);
}

int main(void)
{
	RUN(test_epoch_of);
	RUN(test_behind);
	RUN(test_divergence_point);
	RUN(test_rejoin_deposed_primary_with_its_own_writes);
	RUN(test_rejoin_broken_rejoin_counterexample);
	RUN(test_rejoin_equal_epochs_different_lengths);
	RUN(test_rejoin_several_failovers_in_a_row);
	RUN(test_rejoin_empty_logs);
	RUN(test_divergence_matches_the_model_exhaustively);
	return TEST_SUMMARY();
}
