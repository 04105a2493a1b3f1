/*
 * test_drillobj.c - the drill's object checks (src/drill/objcheck.c) on
 * made-up writes and listings: which acknowledged PUT/DELETE is current,
 * superseded, missing, reappeared or unknown; the cut-off and region filter
 * of the object RPO; listings compared; quantiles. Includes objcheck.c to
 * reach its static functions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "test.h"

#include "drill/objcheck.c"

#define KEYS 4

static obj_write put(uint32_t index, uint32_t key, int region, int64_t send, int64_t ack, const char *etag)
{
	obj_write w;
	memset(&w, 0, sizeof w);
	w.index = index;
	w.key = key;
	w.kind = OBJ_PUT;
	w.region = (uint8_t)region;
	w.send_ms = send;
	w.ack_ms = ack;
	w.attempts = send ? 1 : 0;
	w.state = ack ? WRITE_ACKED : WRITE_UNACKED;
	snprintf(w.etag, sizeof w.etag, "%s", etag);
	return w;
}

static obj_write del(uint32_t index, uint32_t key, int region, int64_t send, int64_t ack)
{
	obj_write w = put(index, key, region, send, ack, "");
	w.kind = OBJ_DELETE;
	return w;
}

/* A listing: etags[k] for each key ("" absent). */
static obj_state listing(const char *const etags[KEYS], int64_t at)
{
	obj_state st;
	memset(&st, 0, sizeof st);
	st.taken = 1;
	st.at_ms = at;
	st.done_ms = at + 5;
	st.nkeys = KEYS;
	st.etag = calloc(KEYS, sizeof *st.etag);
	for (int k = 0; k < KEYS; k++)
		snprintf(st.etag[k], sizeof st.etag[k], "%s", etags[k]);
	return st;
}

/* Write 1 (us) is sent after write 0 (eu) was acknowledged: it must win. */
static void test_a_later_put_must_win(void)
{
	obj_write w[2] = {put(0, 0, 0, 100, 150, "aa"), put(1, 0, 1, 200, 260, "bb")};
	obj_verdict v[2];
	obj_tally t;
	const char *ok[KEYS] = {"bb", "", "", ""};
	obj_state st = listing(ok, 1000);
	objcheck_judge(w, 2, &st, INT64_MAX, -1, v, &t);
	CHECK_EQ_INT(v[0], OBJ_VERDICT_SUPERSEDED);
	CHECK_EQ_INT(v[1], OBJ_VERDICT_CURRENT);
	CHECK_EQ_INT(t.judged, 2);
	CHECK_EQ_INT(t.missing, 0);
	obj_state_free(&st);
	/* the older one back: the newer acknowledged PUT is missing */
	const char *old[KEYS] = {"aa", "", "", ""};
	st = listing(old, 1000);
	objcheck_judge(w, 2, &st, INT64_MAX, -1, v, &t);
	CHECK_EQ_INT(v[0], OBJ_VERDICT_CURRENT);
	CHECK_EQ_INT(v[1], OBJ_VERDICT_MISSING);
	CHECK_EQ_INT(t.missing, 1);
	CHECK_EQ_INT(t.missing_first_ack, 260);
	obj_state_free(&st);
	/* nothing at all: both missing */
	const char *none[KEYS] = {"", "", "", ""};
	st = listing(none, 1000);
	objcheck_judge(w, 2, &st, INT64_MAX, -1, v, &t);
	CHECK_EQ_INT(t.missing, 2);
	CHECK_EQ_INT(t.missing_first_ack, 150);
	CHECK_EQ_INT(t.missing_last_ack, 260);
	obj_state_free(&st);
}

/* Overlapping PUTs in both regions: either may win (HLC decides). */
static void test_concurrent_puts_either_wins(void)
{
	obj_write w[2] = {put(0, 1, 0, 100, 180, "aa"), put(1, 1, 1, 120, 170, "bb")};
	obj_verdict v[2];
	obj_tally t;
	for (int winner = 0; winner < 2; winner++) {
		const char *e[KEYS] = {"", winner ? "bb" : "aa", "", ""};
		obj_state st = listing(e, 1000);
		objcheck_judge(w, 2, &st, INT64_MAX, -1, v, &t);
		CHECK_EQ_INT(t.missing, 0);
		CHECK_EQ_INT(t.current, 1);
		CHECK_EQ_INT(t.superseded, 1);
		obj_state_free(&st);
	}
	/* within the slack: still "overlapping" (one host, two clocks read) */
	obj_write near[2] = {put(0, 1, 0, 100, 150, "aa"), put(1, 1, 1, 150 + OBJ_ORDER_SLACK_MS, 200, "bb")};
	const char *e[KEYS] = {"", "aa", "", ""};
	obj_state st = listing(e, 1000);
	objcheck_judge(near, 2, &st, INT64_MAX, -1, v, &t);
	CHECK_EQ_INT(v[1], OBJ_VERDICT_SUPERSEDED);
	obj_state_free(&st);
}

/* A DELETE after a PUT: the key must be absent, or rewritten after. */
static void test_deleted_object_must_not_reappear(void)
{
	obj_write w[3] = {put(0, 2, 0, 100, 150, "aa"), del(1, 2, 1, 200, 220), put(2, 2, 0, 300, 340, "cc")};
	obj_verdict v[3];
	obj_tally t;
	/* the first PUT back after its delete: the delete is undone */
	const char *back[KEYS] = {"", "", "aa", ""};
	obj_state st = listing(back, 1000);
	objcheck_judge(w, 2, &st, INT64_MAX, -1, v, &t); /* the PUT and the DELETE only */
	CHECK_EQ_INT(v[1], OBJ_VERDICT_REAPPEARED);
	CHECK_EQ_INT(t.reappeared, 1);
	obj_state_free(&st);
	/* absent: the PUT superseded by the delete, the delete current */
	const char *gone[KEYS] = {"", "", "", ""};
	st = listing(gone, 1000);
	objcheck_judge(w, 2, &st, INT64_MAX, -1, v, &t);
	CHECK_EQ_INT(v[0], OBJ_VERDICT_SUPERSEDED);
	CHECK_EQ_INT(v[1], OBJ_VERDICT_CURRENT);
	CHECK_EQ_INT(t.missing + t.reappeared, 0);
	/* with the later PUT acknowledged, absent is wrong: it is missing */
	objcheck_judge(w, 3, &st, INT64_MAX, -1, v, &t);
	CHECK_EQ_INT(v[2], OBJ_VERDICT_MISSING);
	obj_state_free(&st);
	/* rewritten after the delete: all fine */
	const char *again[KEYS] = {"", "", "cc", ""};
	st = listing(again, 1000);
	objcheck_judge(w, 3, &st, INT64_MAX, -1, v, &t);
	CHECK_EQ_INT(v[0], OBJ_VERDICT_SUPERSEDED);
	CHECK_EQ_INT(v[1], OBJ_VERDICT_SUPERSEDED);
	CHECK_EQ_INT(v[2], OBJ_VERDICT_CURRENT);
	CHECK_EQ_INT(t.missing + t.reappeared + t.unknown, 0);
	obj_state_free(&st);
}

/* A DELETE that was never acknowledged may still have removed the key, but
 * only one sent before the listing ended; one never sent cannot. */
static void test_unacknowledged_delete(void)
{
	obj_write w[2] = {put(0, 3, 0, 100, 150, "aa"), del(1, 3, 1, 200, 0)};
	obj_verdict v[2];
	obj_tally t;
	const char *gone[KEYS] = {"", "", "", ""};
	obj_state st = listing(gone, 1000);
	objcheck_judge(w, 2, &st, INT64_MAX, -1, v, &t);
	CHECK_EQ_INT(v[0], OBJ_VERDICT_SUPERSEDED);
	CHECK_EQ_INT(v[1], OBJ_VERDICT_NONE); /* not acknowledged: not judged */
	CHECK_EQ_INT(t.judged, 1);
	w[1].send_ms = 0; /* never sent */
	objcheck_judge(w, 2, &st, INT64_MAX, -1, v, &t);
	CHECK_EQ_INT(v[0], OBJ_VERDICT_MISSING);
	w[1].send_ms = 2000; /* sent after the listing */
	objcheck_judge(w, 2, &st, INT64_MAX, -1, v, &t);
	CHECK_EQ_INT(v[0], OBJ_VERDICT_MISSING);
	obj_state_free(&st);
}

static void test_unknown_content(void)
{
	obj_write w[1] = {put(0, 0, 0, 100, 150, "aa")};
	obj_verdict v[1];
	obj_tally t;
	const char *e[KEYS] = {"ff", "", "", ""};
	obj_state st = listing(e, 1000);
	objcheck_judge(w, 1, &st, INT64_MAX, -1, v, &t);
	CHECK_EQ_INT(v[0], OBJ_VERDICT_UNKNOWN);
	CHECK_EQ_INT(t.unknown, 1);
	obj_state_free(&st);
}

/* Object RPO: only the other region's writes acknowledged before the fault. */
static void test_rpo_cutoff_and_region(void)
{
	obj_write w[4] = {
		put(0, 0, 0, 100, 150, "aa"),   /* eu, before the fault: us lacks it */
		put(1, 1, 1, 110, 160, "bb"),   /* us's own: not judged at us */
		put(2, 2, 0, 120, 900, "cc"),   /* eu, acknowledged after the fault */
		put(3, 3, 0, 130, 170, "dd"),   /* eu, before the fault, us has it */
	};
	obj_verdict v[4];
	obj_tally t;
	const char *at_us[KEYS] = {"", "bb", "", "dd"};
	obj_state st = listing(at_us, 500);
	objcheck_judge(w, 4, &st, 500, 1, v, &t);
	CHECK_EQ_INT(t.judged, 2);
	CHECK_EQ_INT(t.missing, 1);
	CHECK_EQ_INT(v[0], OBJ_VERDICT_MISSING);
	CHECK_EQ_INT(v[1], OBJ_VERDICT_NONE);
	CHECK_EQ_INT(v[2], OBJ_VERDICT_NONE);
	CHECK_EQ_INT(v[3], OBJ_VERDICT_CURRENT);
	CHECK_EQ_INT(t.missing_first_ack, 150);
	obj_state_free(&st);
}

static void test_differences(void)
{
	const char *a[KEYS] = {"aa", "", "cc", ""}, *b[KEYS] = {"aa", "bb", "cc", ""};
	obj_state x = listing(a, 0), y = listing(b, 0);
	uint32_t first = 99;
	CHECK_EQ_INT(objcheck_differences(&x, &x, &first), 0);
	CHECK_EQ_INT(objcheck_differences(&x, &y, &first), 1);
	CHECK_EQ_INT(first, 1);
	y.taken = 0;
	CHECK_EQ_INT(objcheck_differences(&x, &y, &first), -1);
	obj_state_free(&x);
	obj_state_free(&y);
}

static void test_quantile(void)
{
	double v[5] = {5, 1, 4, 2, 3};
	CHECK(objcheck_quantile(v, 5, 0.5) == 3);
	CHECK(objcheck_quantile(v, 5, 0.99) == 5);
	CHECK(v[4] == 5); /* sorted in place: the maximum last */
	CHECK(objcheck_quantile(v, 0, 0.5) == 0);
}

static void test_key_names(void)
{
	char name[OBJ_KEY_NAME_MAX];
	objload_key_name(42, name);
	CHECK_EQ_STR(name, "k00042");
	CHECK_EQ_INT(objload_key_parse(name), 42);
	CHECK_EQ_INT(objload_key_parse("k99999"), 99999);
	CHECK_EQ_INT(objload_key_parse("x00001"), -1);
	CHECK_EQ_INT(objload_key_parse("k12"), -1);
	CHECK_EQ_INT(objload_key_parse("k0000a"), -1);
	CHECK_EQ_INT(objload_key_parse("k100000"), -1);
}

int main(void)
{
	RUN(test_a_later_put_must_win);
	RUN(test_concurrent_puts_either_wins);
	RUN(test_deleted_object_must_not_reappear);
	RUN(test_unacknowledged_delete);
	RUN(test_unknown_content);
	RUN(test_rpo_cutoff_and_region);
	RUN(test_differences);
	RUN(test_quantile);
	RUN(test_key_names);
	return TEST_SUMMARY();
}
