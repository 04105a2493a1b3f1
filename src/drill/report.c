/*
 * report.c - the drill's readable report and report.json, both from the one
 * JSON object check.c built (so they never disagree); timeline.c draws the
 * picture.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "drill/internal.h"

static const char *str(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : "";
}

static long long num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* "1.234 s" or "none" (never recovered / not measured). */
static const char *secs(json_t *v, char *out, size_t cap)
{
	if (json_is_number(v))
		snprintf(out, cap, "%.3f s", json_number_value(v));
	else
		snprintf(out, cap, "none");
	return out;
}

static void print_counts(FILE *f, json_t *m)
{
	const char *k;
	json_t *v;
	int first = 1;
	json_object_foreach(m, k, v) {
		fprintf(f, "%s%s %lld", first ? "" : ", ", k, (long long)json_integer_value(v));
		first = 0;
	}
	if (first)
		fprintf(f, "none");
}

typedef struct event_line {
	double t;
	char text[600];
} event_line;

static int event_line_cmp(const void *a, const void *b)
{
	const event_line *x = a, *y = b;
	return x->t < y->t ? -1 : x->t > y->t;
}

/* "0.250 s" for a number, "none" otherwise (a histogram past its last bound). */
static const char *secs_or(json_t *v, char *out, size_t cap, const char *otherwise)
{
	if (json_is_number(v))
		snprintf(out, cap, "%.3f s", json_number_value(v));
	else
		snprintf(out, cap, "%s", otherwise);
	return out;
}

/* The object workload's lines (objcheck.c built the section). */
static void print_objects(FILE *f, json_t *o)
{
	if (!json_is_true(json_object_get(o, "enabled"))) {
		fprintf(f, "\n  objects     %s\n", str(o, "note"));
		return;
	}
	json_t *w = json_object_get(o, "workload"), *fin = json_object_get(o, "final"),
	       *rpo = json_object_get(o, "rpo"), *lag = json_object_get(o, "lag");
	json_t *lat = json_object_get(w, "latency_ms");
	char a[32], b[32], c[32];
	fprintf(f, "\n  objects     %lld writes/s into bucket %s (%lld keys): %lld PUTs and %lld DELETEs scheduled, "
		   "%lld + %lld acknowledged (%.1f MiB), %lld refused, %lld unacknowledged at the end\n",
		num(w, "rate"), str(o, "bucket"), num(w, "keys"), num(w, "puts"), num(w, "deletes"),
		num(w, "acknowledged_puts"), num(w, "acknowledged_deletes"),
		(double)num(w, "bytes_acknowledged") / 1048576.0, num(w, "failed"), num(w, "unacknowledged"));
	fprintf(f, "              %lld attempts, %lld retried; latency from schedule p50 %.0f ms, p99 %.0f ms, "
		   "max %.0f ms\n",
		num(w, "attempts"), num(w, "retried"), json_number_value(json_object_get(lat, "p50")),
		json_number_value(json_object_get(lat, "p99")), json_number_value(json_object_get(lat, "max")));
	fprintf(f, "  obj final   %s; %lld keys differ between the regions; outboxes %s after %.1f s\n",
		json_is_true(json_object_get(fin, "all_read")) ? "both regions listed twice" : "NOT LISTED",
		num(fin, "differences"), json_is_true(json_object_get(fin, "drained")) ? "empty" : "NOT EMPTY",
		json_number_value(json_object_get(fin, "drain_s")));
	const char *name;
	json_t *v;
	fprintf(f, "              anti-entropy pass after the heal:");
	json_object_foreach(json_object_get(fin, "anti_entropy"), name, v)
		fprintf(f, " %s %s, %lld repaired;", name,
			json_is_true(json_object_get(v, "pass_ended")) ? "ran" : "DID NOT END", num(v, "repaired"));
	fputc('\n', f);
	size_t i;
	json_t *rb;
	json_array_foreach(json_object_get(fin, "readbacks"), i, rb) {
		if (!json_is_true(json_object_get(rb, "taken"))) {
			fprintf(f, "              round %lld %-6s not listed: %s\n", num(rb, "round"), str(rb, "region"),
				str(rb, "error"));
			continue;
		}
		fprintf(f, "              round %lld %-6s %lld keys; of %lld acknowledged writes %lld current, "
			   "%lld superseded, %lld missing, %lld reappeared, %lld unknown\n",
			num(rb, "round"), str(rb, "region"), num(rb, "keys_present"), num(rb, "judged"),
			num(rb, "current"), num(rb, "superseded"), num(rb, "missing"), num(rb, "reappeared"),
			num(rb, "unknown"));
	}
	fprintf(f, "  obj RPO     %s: %s (budget %lld s); %lld writes of the other region lacked right after "
		   "the fault\n",
		json_is_true(json_object_get(rpo, "ok")) ? "ok" : "NOT OK",
		secs(json_object_get(rpo, "rpo_s"), a, sizeof a), num(rpo, "budget_s"), num(rpo, "lacked"));
	json_array_foreach(json_object_get(rpo, "regions"), i, rb) {
		if (json_is_true(json_object_get(rb, "taken")))
			fprintf(f, "              %-6s listed at %.1f s: lacked %lld of %lld\n", str(rb, "region"),
				json_number_value(json_object_get(rb, "listed_s")), num(rb, "lacked"),
				num(rb, "judged"));
		else
			fprintf(f, "              %-6s not listed: %s\n", str(rb, "region"), str(rb, "error"));
	}
	json_object_foreach(json_object_get(lag, "status_lag_seconds"), name, v) {
		char d[32], e[32]; /* every figure of the line its own buffer */
		json_t *h = json_object_get(json_object_get(lag, "histogram"), name);
		fprintf(f, "  obj lag     %-6s oldest pending (status, %lld polls) p50 %s, p99 %s, max %s; shipped "
			   "(histogram, %lld) p50 <= %s, p99 <= %s\n",
			name, num(v, "samples"), secs(json_object_get(v, "p50"), a, sizeof a),
			secs(json_object_get(v, "p99"), b, sizeof b), secs(json_object_get(v, "max"), c, sizeof c),
			num(h, "count"), secs_or(json_object_get(h, "p50_le_s"), d, sizeof d, "inf"),
			secs_or(json_object_get(h, "p99_le_s"), e, sizeof e, "inf"));
	}
}

void report_print_text(const drill_run_state *s, FILE *f)
{
	json_t *r = s->report;
	json_t *wl = json_object_get(r, "workload"), *rpo = json_object_get(r, "rpo"),
	       *rto = json_object_get(r, "rto"), *fault = json_object_get(r, "fault");
	char a[32], b[32];
	int failed_checks = 0;
	size_t i;
	json_t *c;
	json_array_foreach(json_object_get(r, "checks"), i, c)
		failed_checks += strcmp(str(c, "status"), "fail") == 0;

	fprintf(f, "\ntandem drill: %s - %s\n\n", str(r, "scenario"), str(r, "summary"));
	fprintf(f, "  result      %s (exit %lld)", json_is_true(json_object_get(r, "ok")) ? "PASS" : "FAIL",
		num(r, "exit_code"));
	if (failed_checks)
		fprintf(f, "; %d check%s failed", failed_checks, failed_checks > 1 ? "s" : "");
	if (!json_is_true(json_object_get(rpo, "ok")))
		fprintf(f, "; RPO not within budget");
	if (!json_is_true(json_object_get(rto, "ok")))
		fprintf(f, "; RTO not within budget");
	if (num(r, "targets_missed"))
		fprintf(f, "; %lld target%s missed%s", num(r, "targets_missed"),
			num(r, "targets_missed") > 1 ? "s" : "",
			json_is_true(json_object_get(r, "strict")) ? "" : " (not failing: no --strict)");
	fputc('\n', f);
	json_t *dep = json_object_get(r, "deployment");
	fprintf(f, "  deployment  %s\n", str(dep, "config"));
	fprintf(f, "  partitions  %s (%s)\n", str(dep, "partition_method"), str(dep, "partition_method_note"));
	fprintf(f, "  workload    %lld writes/s over both regions (%lld%% global), %lld reads/s per region, "
		   "%lld s; run %s\n",
		num(wl, "rate"), num(wl, "global_percent"), num(wl, "read_rate_per_region"),
		num(wl, "duration_s"), str(r, "run_id"));
	fprintf(f, "  fault       at %s: %s [method: %s]\n", secs(json_object_get(fault, "at_s"), a, sizeof a),
		str(fault, "detail"), str(fault, "method"));
	fprintf(f, "  heal        at %s: %s\n", secs(json_object_get(fault, "healed_s"), b, sizeof b),
		str(fault, "heal"));

	json_t *lat = json_object_get(wl, "latency_ms"), *reads = json_object_get(wl, "reads");
	fprintf(f, "\n  writes      %lld scheduled, %lld acknowledged (%lld global), %lld refused, "
		   "%lld unacknowledged at the end\n",
		num(wl, "writes_scheduled"), num(wl, "acknowledged"), num(wl, "acknowledged_global"),
		num(wl, "failed"), num(wl, "unacknowledged"));
	fprintf(f, "              %lld attempts, %lld writes retried, %lld answers replayed; "
		   "latency from schedule p50 %lld ms, p99 %lld ms, max %lld ms\n",
		num(wl, "attempts"), num(wl, "retried"), num(wl, "replayed"), num(lat, "p50"),
		num(lat, "p99"), num(lat, "max"));
	fprintf(f, "  reads       %lld served, %lld of them not found, %lld failed\n", num(reads, "ok") + num(reads, "missing"),
		num(reads, "missing"), num(reads, "failed"));

	fprintf(f, "\n  RPO         %s: ", json_is_true(json_object_get(rpo, "ok")) ? "ok" : "NOT OK");
	if (json_is_true(json_object_get(rpo, "final_data_read")))
		fprintf(f, "of %lld acknowledged writes, %lld are in the final data, %lld only in quarantine "
			   "(lost by the new primary; %lld global), %lld missing\n"
			   "              lost writes cover %s (budget %lld s)%s%s%s%s\n",
			num(rpo, "acknowledged"), num(rpo, "in_final_data"), num(rpo, "only_in_quarantine"),
			num(rpo, "lost_global"), num(rpo, "missing"),
			secs(json_object_get(rpo, "lost_span_s"), a, sizeof a), num(rpo, "budget_s"),
			num(rpo, "only_in_quarantine") ? ", acknowledged " : "", str(rpo, "lost_first"),
			num(rpo, "only_in_quarantine") ? " to " : "", str(rpo, "lost_last"));
	else
		fprintf(f, "the final data could not be read: %s\n", str(rpo, "error"));
	fprintf(f, "              %lld quarantined transactions in %zu file(s); %lld unacknowledged writes "
		   "were executed anyway\n",
		num(rpo, "quarantined_transactions"), json_array_size(json_object_get(rpo, "quarantine_files")),
		num(rpo, "executed_unacknowledged"));
	char g[32];
	fprintf(f, "  RTO         %s: writes back after %s (budget %lld s); global writes after %s; reads after %s\n",
		json_is_true(json_object_get(rto, "ok")) ? "ok" : "NOT OK",
		secs(json_object_get(rto, "writes_s"), a, sizeof a), num(rto, "budget_s"),
		secs(json_object_get(rto, "global_writes_s"), g, sizeof g),
		secs(json_object_get(rto, "reads_s"), b, sizeof b));
	const char *name;
	json_t *reg;
	json_object_foreach(json_object_get(rto, "regions"), name, reg) {
		char c1[32], c2[32], c3[32];
		fprintf(f, "              %-8s writes %s, global %s, reads %s (failed attempts after the fault: "
			   "%lld local, %lld global, %lld reads)\n",
			name, secs(json_object_get(reg, "writes_s"), c1, sizeof c1),
			secs(json_object_get(reg, "global_writes_s"), c2, sizeof c2),
			secs(json_object_get(reg, "reads_s"), c3, sizeof c3), num(reg, "write_failures_after_fault"),
			num(reg, "global_write_failures_after_fault"), num(reg, "read_failures_after_fault"));
	}
	if (json_object_get(rto, "via")) { /* --via edge: the regions' rows are the clients near each */
		char c1[32], c2[32], c3[32];
		fprintf(f, "  clients     through the edges: every client's writes back after %s, reads after %s, "
			   "%lld failed reads in the run; the regions took writes again after %s\n",
			secs(json_object_get(rto, "client_writes_s"), c1, sizeof c1),
			secs(json_object_get(rto, "client_reads_s"), c2, sizeof c2), num(rto, "client_failed_reads"),
			secs(json_object_get(rto, "regions_writes_s"), c3, sizeof c3));
	}
	print_objects(f, json_object_get(r, "objects"));

	fprintf(f, "\n  checks\n");
	json_array_foreach(json_object_get(r, "checks"), i, c)
		fprintf(f, "    %-7s %-46s %s\n", strcmp(str(c, "status"), "pass") == 0 ? "pass"
					     : strcmp(str(c, "status"), "fail") == 0 ? "FAIL"
										  : "skipped",
			str(c, "name"), str(c, "detail"));
	if (json_array_size(json_object_get(r, "targets"))) {
		fprintf(f, "  targets of the scenario (set at 500 writes/s)\n");
		json_array_foreach(json_object_get(r, "targets"), i, c) {
			json_t *v = json_object_get(c, "value");
			char value[32];
			if (json_is_integer(v))
				snprintf(value, sizeof value, "%lld", (long long)json_integer_value(v));
			else if (json_is_number(v))
				snprintf(value, sizeof value, "%.3f", json_number_value(v));
			else
				snprintf(value, sizeof value, "none");
			fprintf(f, "    %-7s %-46s %s\n", json_is_true(json_object_get(c, "met")) ? "met" : "MISSED",
				str(c, "name"), value);
		}
	}

	fprintf(f, "\n  errors      ");
	int first = 1;
	json_object_foreach(json_object_get(r, "errors"), name, reg) {
		fprintf(f, "%s%s writes: ", first ? "" : "\n              ", name);
		print_counts(f, json_object_get(reg, "writes"));
		fprintf(f, "; reads: ");
		print_counts(f, json_object_get(reg, "reads"));
		first = 0;
	}
	fputc('\n', f);
	if (json_object_size(json_object_get(r, "undocumented_errors"))) {
		fprintf(f, "  undocumented errors: ");
		print_counts(f, json_object_get(r, "undocumented_errors"));
		fputc('\n', f);
	}
	json_t *prim = json_object_get(r, "primaries");
	fprintf(f, "  primaries   ");
	if (!json_array_size(json_object_get(prim, "intervals")))
		fprintf(f, "%s", str(prim, "evidence"));
	json_array_foreach(json_object_get(prim, "intervals"), i, c)
		fprintf(f, "%s%s epoch %lld from %.1f s to %.1f s (%s)", i ? "\n              " : "",
			str(c, "region"), num(c, "epoch"), json_number_value(json_object_get(c, "from_s")),
			json_number_value(json_object_get(c, "to_s")), str(c, "end"));
	fputc('\n', f);
	json_array_foreach(json_object_get(prim, "overlaps"), i, c)
		fprintf(f, "  TWO PRIMARIES: %s and %s from %s for %.3f s\n", str(c, "a"), str(c, "b"),
			str(c, "from"), json_number_value(json_object_get(c, "seconds")));
	json_t *lost = json_object_get(rpo, "lost_examples");
	if (json_array_size(lost)) {
		fprintf(f, "  lost (in quarantine only), first ones:\n");
		json_array_foreach(lost, i, c) {
			if (i >= 5)
				break;
			fprintf(f, "              %s %s %s acknowledged %s (%s)\n", str(c, "region"),
				str(c, "marker"), str(c, "lsn"), str(c, "acknowledged"), str(c, "durability"));
		}
	}
	json_t *miss = json_object_get(rpo, "missing_examples");
	if (json_array_size(miss)) {
		fprintf(f, "  MISSING (acknowledged, in neither the data nor quarantine), first ones:\n");
		json_array_foreach(miss, i, c) {
			if (i >= 5)
				break;
			fprintf(f, "              %s %s %s acknowledged %s (%s)\n", str(c, "region"),
				str(c, "marker"), str(c, "lsn"), str(c, "acknowledged"), str(c, "durability"));
		}
	}
	/* the drill's events and the logs' role and quarantine events, in time order */
	fprintf(f, "\n  events\n");
	size_t n = json_array_size(json_object_get(r, "events")) + json_array_size(json_object_get(r, "role_events"));
	event_line *lines = calloc(n ? n : 1, sizeof *lines);
	size_t k = 0;
	json_array_foreach(json_object_get(r, "events"), i, c) {
		if (!lines || strcmp(str(c, "kind"), "role") == 0 || strcmp(str(c, "kind"), "stop") == 0)
			continue; /* status polls and stops: in report.json; the list stays short */
		lines[k].t = json_number_value(json_object_get(c, "t_s"));
		snprintf(lines[k].text, sizeof lines[k].text, "%-10s %s", str(c, "kind"), str(c, "text"));
		k++;
	}
	json_array_foreach(json_object_get(r, "role_events"), i, c) {
		if (!lines)
			break;
		lines[k].t = json_number_value(json_object_get(c, "t_s"));
		if (strcmp(str(c, "event"), "role") == 0)
			snprintf(lines[k].text, sizeof lines[k].text, "%-10s %s becomes %s (epoch %lld, from its log)",
				 "role", str(c, "region"), str(c, "role"), num(c, "epoch"));
		else
			snprintf(lines[k].text, sizeof lines[k].text,
				 "%-10s %s quarantined %lld transaction(s) into %s", "quarantine", str(c, "region"),
				 num(c, "count"), str(c, "file"));
		k++;
	}
	if (lines)
		qsort(lines, k, sizeof *lines, event_line_cmp);
	for (size_t j = 0; j < k; j++)
		fprintf(f, "    %7.1f s  %s\n", lines[j].t, lines[j].text);
	free(lines);
	json_t *files = json_object_get(r, "files");
	fprintf(f, "\n  files       %s\n              %s\n              %s/\n\n", str(files, "report"),
		str(files, "timeline"), str(files, "logs"));
}

int report_write_files(drill_run_state *s, char *err, size_t errcap)
{
	char json_path[PATH_MAX], svg_path[PATH_MAX], dir[PATH_MAX];
	if (!realpath(s->opt->report_dir, dir))
		snprintf(dir, sizeof dir, "%s", s->opt->report_dir);
	snprintf(json_path, sizeof json_path, "%.*s/report.json", PATH_MAX - 32, dir);
	snprintf(svg_path, sizeof svg_path, "%.*s/timeline.svg", PATH_MAX - 32, dir);
	char logs[PATH_MAX];
	snprintf(logs, sizeof logs, "%.*s/logs", PATH_MAX - 32, dir);
	json_object_set_new(s->report, "files",
			    json_pack("{s:s, s:s, s:s}", "report", json_path, "timeline", svg_path, "logs", logs));
	char *text = json_dumps(s->report, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text) {
		snprintf(err, errcap, "cannot format report.json");
		return -1;
	}
	size_t len = strlen(text);
	int rc = util_write_file(json_path, text, len, 0644);
	free(text);
	if (rc != 0) {
		snprintf(err, errcap, "%s: %s", json_path, strerror(errno));
		return -1;
	}
	if (timeline_write_svg(s, svg_path) != 0) {
		snprintf(err, errcap, "%s: %s", svg_path, strerror(errno));
		return -1;
	}
	return 0;
}
