/*
 * test_drill.c - the drill's checks (src/drill/check.c, scenario.c) on
 * made-up inputs: RTO from attempts, write intervals from logs and their
 * overlaps ("never two primaries"), times, documented error classes.
 * Includes check.c to reach its static functions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

#include "drill/check.c"

static void test_parse_time(void)
{
	CHECK_EQ_INT(parse_time("1970-01-01T00:00:01.250Z"), 1250);
	CHECK_EQ_INT(parse_time("2026-11-27T05:08:01.123Z"), 1795756081123LL);
	CHECK_EQ_INT(parse_time("yesterday"), -1);
	CHECK_EQ_INT(parse_time(NULL), -1);
}

static void test_error_classes(void)
{
	CHECK(scenario_error_allowed("503:* connection", "503:no_lease"));
	CHECK(scenario_error_allowed("503:* connection", "connection"));
	CHECK(!scenario_error_allowed("503:* connection", "timeout"));
	CHECK(!scenario_error_allowed("503:replication_timeout", "503:no_lease"));
	CHECK(scenario_error_allowed("503:replication_timeout", "503:replication_timeout"));
	CHECK(!scenario_error_allowed("503:replication_timeout", "503:replication_timeouts"));
	CHECK(!scenario_error_allowed("", "connection"));
	CHECK(scenario_error_allowed("*", "422:idempotency_key_reused"));
	CHECK(scenario_error_allowed(NULL, "anything")); /* no target: everything goes */
	CHECK(scenario_find("crash-witness") != NULL);
	CHECK(scenario_find("crash") == NULL);
}

static drill_op op(int64_t send, int64_t done, int region, int ok)
{
	drill_op o;
	memset(&o, 0, sizeof o);
	o.send_ms = send;
	o.done_ms = done;
	o.region = (uint8_t)region;
	o.kind = OP_WRITE;
	o.ok = (uint8_t)ok;
	return o;
}

static void test_recovery(void)
{
	drill_op ops[] = {
		op(900, 910, 0, 1),     /* before the fault */
		op(1100, 1150, 0, 0),   /* fails */
		op(1300, 1320, 0, 1),   /* a success between failures */
		op(1400, 9000, 0, 0),   /* hangs in a partition, fails late */
		op(1500, 1510, 0, 1),   /* sent after the last failure: recovery */
		op(1600, 1605, 0, 1),
		op(900, 1200, 1, 0),    /* region 1: sent before, failed after the fault */
		op(2000, 2100, 1, 0),   /* and never comes back */
	};
	size_t n = sizeof ops / sizeof ops[0];
	recovery r = compute_recovery(ops, n, 0, OP_WRITE, -1, 1000);
	CHECK(r.recovered);
	CHECK_EQ_INT(r.failures, 2);
	CHECK_EQ_INT(r.last_fail_send, 1400);
	CHECK_EQ_INT(r.recovery_ms, 1510); /* not 9000: send times, not answer times */
	CHECK(r.rto_s > 0.509 && r.rto_s < 0.511);
	r = compute_recovery(ops, n, 1, OP_WRITE, -1, 1000);
	CHECK(!r.recovered);
	CHECK_EQ_INT(r.failures, 2);
	r = compute_recovery(ops, n, 0, OP_READ, -1, 1000); /* no reads: nothing failed */
	CHECK(r.recovered);
	CHECK_EQ_INT(r.failures, 0);
	CHECK(r.rto_s == 0);
	/* durability apart: the hanging attempt was a global write; the local
	 * writes are back after the first failure's recovery */
	ops[3].global = 1;
	r = compute_recovery(ops, n, 0, OP_WRITE, 0, 1000);
	CHECK(r.recovered);
	CHECK_EQ_INT(r.failures, 1);
	CHECK_EQ_INT(r.recovery_ms, 1320);
	r = compute_recovery(ops, n, 0, OP_WRITE, 1, 1000);
	CHECK(!r.recovered); /* no global write succeeded after it */
}

static void write_log(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

/* eu accepts writes in epoch 1 and is killed; us takes over in epoch 2 a
 * second before the kill: one overlap. A restarted eu that logs writes_on
 * again after us's writes_off does not overlap. */
static void test_intervals_and_overlaps(void)
{
	char dir[] = "/tmp/tandem-test-drill-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	drill_options o;
	drill_options_defaults(&o);
	o.quiet = 1;
	drill_run_state *s = calloc(1, sizeof *s);
	s->opt = &o;
	s->ncomps = 2;
	s->region_comp[0] = 0;
	s->region_comp[1] = 1;
	snprintf(s->comps[0].name, sizeof s->comps[0].name, "eu");
	snprintf(s->comps[1].name, sizeof s->comps[1].name, "us");
	snprintf(s->comps[0].log_path, sizeof s->comps[0].log_path, "%s/eu.log", dir);
	snprintf(s->comps[1].log_path, sizeof s->comps[1].log_path, "%s/us.log", dir);
	write_log(s->comps[0].log_path,
		  "{\"time\":\"2026-01-01T00:00:00.000Z\",\"level\":\"info\",\"msg\":\"x\",\"event\":\"role\",\"role\":\"primary\",\"epoch\":1}\n"
		  "{\"time\":\"2026-01-01T00:00:00.100Z\",\"event\":\"writes_on\",\"epoch\":1,\"region\":\"eu\"}\n"
		  "not json at all\n"
		  "{\"time\":\"2026-01-01T00:00:01.000Z\",\"msg\":\"request\",\"status\":201}\n"
		  "{\"time\":\"2026-01-01T00:00:20.000Z\",\"event\":\"writes_on\",\"epoch\":3,\"region\":\"eu\"}\n"
		  "{\"time\":\"2026-01-01T00:00:25.000Z\",\"event\":\"writes_off\",\"epoch\":3,\"region\":\"eu\"}\n");
	write_log(s->comps[1].log_path,
		  "{\"time\":\"2026-01-01T00:00:04.000Z\",\"event\":\"writes_on\",\"epoch\":2,\"region\":\"us\"}\n"
		  "{\"time\":\"2026-01-01T00:00:10.000Z\",\"event\":\"writes_off\",\"epoch\":2,\"region\":\"us\"}\n"
		  "{\"time\":\"2026-01-01T00:00:25.000Z\",\"event\":\"writes_on\",\"epoch\":4,\"region\":\"us\"}\n");
	int64_t t0 = parse_time("2026-01-01T00:00:00.000Z");
	s->t0_ms = t0;
	run_event(s, "kill", "eu", "kill -9 eu");
	s->events[0].t_ms = t0 + 5000;
	check_parse_logs(s);
	CHECK_EQ_INT(s->log_events_seen, 6);
	CHECK_EQ_INT(s->nintervals, 4);
	CHECK_EQ_INT(json_array_size(s->role_events), 1);
	int eu1 = -1, us2 = -1;
	for (size_t i = 0; i < s->nintervals; i++) {
		if (strcmp(s->intervals[i].region, "eu") == 0 && s->intervals[i].epoch == 1)
			eu1 = (int)i;
		if (strcmp(s->intervals[i].region, "us") == 0 && s->intervals[i].epoch == 2)
			us2 = (int)i;
	}
	CHECK(eu1 >= 0 && us2 >= 0);
	if (eu1 >= 0) {
		CHECK_EQ_INT(s->intervals[eu1].from_ms, t0 + 100);
		CHECK_EQ_INT(s->intervals[eu1].to_ms, t0 + 5000);
		CHECK_EQ_STR(s->intervals[eu1].end, "killed");
	}
	json_t *overlaps = json_array();
	CHECK_EQ_INT(find_overlaps(s->intervals, s->nintervals, overlaps), 1);
	json_t *first = json_array_get(overlaps, 0);
	CHECK(json_number_value(json_object_get(first, "seconds")) > 0.999 &&
	      json_number_value(json_object_get(first, "seconds")) < 1.001);
	json_decref(overlaps);
	/* the same run without the overlap: eu killed at 4 s exactly (touching) */
	free(s->intervals);
	s->intervals = NULL;
	s->nintervals = 0;
	json_decref(s->role_events);
	s->log_events_seen = 0;
	s->events[0].t_ms = t0 + 4000;
	check_parse_logs(s);
	overlaps = json_array();
	CHECK_EQ_INT(find_overlaps(s->intervals, s->nintervals, overlaps), 0);
	json_decref(overlaps);
	json_decref(s->role_events);
	free(s->intervals);
	free(s->events);
	free(s);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/eu.log", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/us.log", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	RUN(test_parse_time);
	RUN(test_error_classes);
	RUN(test_recovery);
	RUN(test_intervals_and_overlaps);
	return TEST_SUMMARY();
}
