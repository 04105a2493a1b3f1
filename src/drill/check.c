/*
 * check.c - what the drill checks, from what it recorded (the workload's
 * attempts and acknowledgements, its own events), the components' logs,
 * the final data and the quarantine files. Builds s->report and the exit
 * code. Definitions (docs/DRILL.md):
 *
 * RPO     every acknowledged write must be in the final primary's data
 *         (found by its marker) or in a quarantine file; those only in
 *         quarantine were lost by the new primary: their number, and the
 *         span of their acknowledgement times (last - first), which the
 *         budget bounds. A `global` one lost fails the drill.
 * RTO     per region, for `local` writes, `global` writes and reads apart:
 *         F the fault, L the send time of the last attempt that failed
 *         after F; recovery is the first success sent after L; RTO =
 *         recovery - F (0 without failures, none when it never recovered).
 *         Send times, not answer times: a request hanging in a partition
 *         must not hide the recovery. The service RTO is the earliest
 *         recovery of any region; the budget applies to `local` writes (a
 *         `global` write needs both regions, so it waits for the heal).
 * two primaries
 *         from the regions' logs: a region accepts writes from "writes_on"
 *         to the next "writes_off", its kill, or its exit; intervals of two
 *         regions must not overlap (one host clock).
 * duplicates
 *         a marker at most once among the final records.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "drill/internal.h"

/* "2026-11-27T05:08:01.123Z" -> ms since the epoch; -1 when it does not parse. */
static int64_t parse_time(const char *s)
{
	if (!s)
		return -1;
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	int ms = 0;
	if (sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &ms) < 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

static json_t *iso(int64_t ms)
{
	char t[32];
	util_iso8601(ms, t);
	return json_string(t);
}

static json_t *real_or_null(double v, int valid)
{
	return valid ? json_real(round(v * 1000.0) / 1000.0) : json_null();
}

/* ---- the logs ---- */

typedef struct log_item {
	int64_t t;
	int kind; /* 0 writes_on, 1 writes_off, 2 process end */
	int64_t epoch;
	char end[16];
} log_item;

static int item_cmp(const void *a, const void *b)
{
	const log_item *x = a, *y = b;
	return x->t < y->t ? -1 : x->t > y->t;
}

static void add_interval(drill_run_state *s, const char *region, int64_t epoch, int64_t from,
			 int64_t to, const char *end)
{
	primary_interval *n = realloc(s->intervals, (s->nintervals + 1) * sizeof *n);
	if (!n)
		return;
	s->intervals = n;
	primary_interval *iv = &s->intervals[s->nintervals++];
	memset(iv, 0, sizeof *iv);
	snprintf(iv->region, sizeof iv->region, "%s", region);
	iv->epoch = epoch;
	iv->from_ms = from;
	iv->to_ms = to;
	snprintf(iv->end, sizeof iv->end, "%s", end);
}

void check_parse_logs(drill_run_state *s)
{
	s->role_events = json_array();
	int64_t now = util_now_ms();
	for (int k = 0; k < DRILL_REGIONS; k++) {
		drill_component *c = &s->comps[s->region_comp[k]];
		log_item *items = NULL;
		size_t n = 0, cap = 0;
		size_t len;
		char *text = util_read_file(c->log_path, 1u << 30, &len);
		char *save = NULL;
		for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line;
		     line = strtok_r(NULL, "\n", &save)) {
			if (!strstr(line, "\"event\""))
				continue; /* most lines are requests: skip them unparsed */
			json_t *j = json_loads(line, 0, NULL);
			const char *ev = json_string_value(json_object_get(j, "event"));
			int64_t t = parse_time(json_string_value(json_object_get(j, "time")));
			if (!ev || t < 0) {
				json_decref(j);
				continue;
			}
			int64_t epoch = json_integer_value(json_object_get(j, "epoch"));
			if (strcmp(ev, "writes_on") == 0 || strcmp(ev, "writes_off") == 0) {
				s->log_events_seen++;
				if (n == cap) {
					cap = cap ? cap * 2 : 64;
					log_item *m = realloc(items, cap * sizeof *m);
					if (!m) {
						json_decref(j);
						break;
					}
					items = m;
				}
				items[n++] = (log_item){t, strcmp(ev, "writes_on") == 0 ? 0 : 1, epoch, ""};
			} else if (strcmp(ev, "role") == 0 || strcmp(ev, "quarantine") == 0) {
				json_t *e = json_pack("{s:o, s:f, s:s, s:s}", "time", iso(t), "t_s",
						      run_t(s, t), "region", c->name, "event", ev);
				if (json_object_get(j, "role"))
					json_object_set(e, "role", json_object_get(j, "role"));
				if (json_object_get(j, "epoch"))
					json_object_set(e, "epoch", json_object_get(j, "epoch"));
				if (json_object_get(j, "count"))
					json_object_set(e, "count", json_object_get(j, "count"));
				if (json_object_get(j, "file"))
					json_object_set(e, "file", json_object_get(j, "file"));
				json_array_append_new(s->role_events, e);
			}
			json_decref(j);
		}
		free(text);
		/* the process ends the drill caused: kill -9 and stops */
		for (size_t i = 0; i < s->nevents; i++) {
			const drill_event *e = &s->events[i];
			int kill = strcmp(e->kind, "kill") == 0, stop = strcmp(e->kind, "stop") == 0;
			if ((!kill && !stop) || strcmp(e->component, c->name) != 0)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				log_item *m = realloc(items, cap * sizeof *m);
				if (!m)
					break;
				items = m;
			}
			items[n] = (log_item){e->t_ms, 2, 0, ""};
			snprintf(items[n].end, sizeof items[n].end, "%s", kill ? "killed" : "stopped");
			n++;
		}
		qsort(items, n, sizeof *items, item_cmp); /* stable enough: equal times are rare */
		int open = 0;
		int64_t from = 0, epoch = 0;
		for (size_t i = 0; i < n; i++) {
			const log_item *it = &items[i];
			if (it->kind == 0) {
				if (open && it->epoch != epoch) /* a new term without an off: close the old */
					add_interval(s, c->name, epoch, from, it->t, "new_epoch");
				if (!open || it->epoch != epoch) {
					from = it->t;
					epoch = it->epoch;
				}
				open = 1;
			} else if (open) {
				add_interval(s, c->name, epoch, from, it->t,
					     it->kind == 1 ? "writes_off" : it->end);
				open = 0;
			}
		}
		if (open)
			add_interval(s, c->name, epoch, from, now, "running");
		free(items);
	}
}

/* Append {a, b, from, seconds} to out for every pair of intervals of two
 * different regions that overlap (touching ends do not); returns how many. */
static size_t find_overlaps(const primary_interval *iv, size_t n, json_t *out)
{
	size_t found = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++) {
			if (strcmp(iv[i].region, iv[j].region) == 0)
				continue;
			if (iv[i].from_ms < iv[j].to_ms && iv[j].from_ms < iv[i].to_ms) {
				int64_t a = iv[i].from_ms > iv[j].from_ms ? iv[i].from_ms : iv[j].from_ms;
				int64_t b = iv[i].to_ms < iv[j].to_ms ? iv[i].to_ms : iv[j].to_ms;
				json_array_append_new(out, json_pack("{s:s, s:s, s:o, s:f}", "a", iv[i].region,
								     "b", iv[j].region, "from", iso(a),
								     "seconds", (double)(b - a) / 1000.0));
				found++;
			}
		}
	return found;
}

/* ---- per-region numbers ---- */

typedef struct recovery {
	int failures;   /* failed attempts answered after the fault */
	int recovered;
	double rto_s;
	int64_t last_fail_send, recovery_ms;
} recovery;

/* Does op count for (region, kind, durability)? durability: -1 any, 0 local,
 * 1 global (writes only). */
static int op_matches(const drill_op *o, int region, int kind, int durability)
{
	return o->region == region && o->kind == kind &&
	       (durability < 0 || kind != OP_WRITE || o->global == durability);
}

static recovery compute_recovery(const drill_op *ops, size_t n, int region, int kind, int durability,
				 int64_t fault)
{
	recovery r = {0};
	int64_t last_fail = -1;
	for (size_t i = 0; i < n; i++) {
		const drill_op *o = &ops[i];
		if (!op_matches(o, region, kind, durability) || o->ok || o->done_ms < fault)
			continue;
		r.failures++;
		if (o->send_ms > last_fail)
			last_fail = o->send_ms;
	}
	if (!r.failures) {
		r.recovered = 1;
		r.rto_s = 0;
		r.recovery_ms = fault;
		return r;
	}
	r.last_fail_send = last_fail;
	int64_t best = -1;
	for (size_t i = 0; i < n; i++) {
		const drill_op *o = &ops[i];
		if (!op_matches(o, region, kind, durability) || !o->ok || o->send_ms <= last_fail)
			continue;
		if (best < 0 || o->done_ms < best)
			best = o->done_ms;
	}
	if (best >= 0) {
		r.recovered = 1;
		r.recovery_ms = best;
		r.rto_s = (double)(best - fault) / 1000.0;
	}
	return r;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static json_t *check_item(const char *name, const char *status, const char *detail)
{
	return json_pack("{s:s, s:s, s:s}", "name", name, "status", status, "detail", detail);
}

static void add_check(json_t *checks, int *failed, const char *name, int ok, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void add_check(json_t *checks, int *failed, const char *name, int ok, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	json_array_append_new(checks, check_item(name, ok ? "pass" : "fail", detail));
	if (!ok)
		(*failed)++;
}

static void add_target(json_t *targets, int *missed, const char *name, int ok, json_t *value,
		       double limit)
{
	json_array_append_new(targets, json_pack("{s:s, s:o, s:f, s:b}", "name", name, "value", value,
						 "limit", limit, "met", ok));
	if (!ok)
		(*missed)++;
}

/* The regions' own write RTO, from their logs: the primary at the fault
 * stopped taking writes at some point (killed, cut off, handed over); the
 * first term that began after that is when the deployment took writes
 * again. 0 when the primary at the fault kept taking them past the
 * workload's end; -1 when writes never came back. */
static double regions_write_rto(const drill_run_state *s, int64_t fault, int64_t end)
{
	int64_t gap = fault;
	for (size_t i = 0; i < s->nintervals; i++) {
		const primary_interval *iv = &s->intervals[i];
		if (iv->from_ms <= fault && fault < iv->to_ms) {
			if (iv->to_ms >= end)
				return 0;
			gap = iv->to_ms;
		}
	}
	int64_t back = -1;
	for (size_t i = 0; i < s->nintervals; i++)
		if (s->intervals[i].from_ms >= gap && (back < 0 || s->intervals[i].from_ms < back))
			back = s->intervals[i].from_ms;
	return back < 0 ? -1 : (double)(back - fault) / 1000.0;
}

/* ---- everything ---- */

void check_all(drill_run_state *s)
{
	const drill_options *o = s->opt;
	size_t nw, nops;
	const drill_write *writes = workload_writes(s->wl, &nw);
	const drill_op *ops = workload_ops(s->wl, &nops);
	const workload_config *wc = workload_config_of(s->wl);
	int64_t fault = s->fault_ms ? s->fault_ms : s->t0_ms;
	json_t *checks = json_array(), *targets = json_array();
	int failed = 0, missed = 0;

	/* the workload */
	long acked = 0, acked_global = 0, failed_w = 0, unacked = 0, attempts = 0, retried = 0,
	     replayed = 0;
	int64_t *lat = malloc((nw ? nw : 1) * sizeof *lat);
	size_t nlat = 0;
	for (size_t i = 0; i < nw; i++) {
		const drill_write *w = &writes[i];
		attempts += w->attempts;
		retried += w->attempts > 1;
		if (w->state == WRITE_ACKED) {
			acked++;
			acked_global += w->global;
			replayed += w->replayed;
			if (lat)
				lat[nlat++] = w->ack_ms - w->sched_ms;
		} else if (w->state == WRITE_FAILED) {
			failed_w++;
		} else {
			unacked++;
		}
	}
	if (lat)
		qsort(lat, nlat, sizeof *lat, cmp_i64);
	json_t *latency = json_pack("{s:I, s:I, s:I}", "p50", (json_int_t)(nlat ? lat[nlat / 2] : 0), "p99",
				    (json_int_t)(nlat ? lat[(nlat * 99) / 100] : 0), "max",
				    (json_int_t)(nlat ? lat[nlat - 1] : 0));
	free(lat);
	long reads_ok = 0, reads_missing = 0, reads_failed = 0;
	for (size_t i = 0; i < nops; i++)
		if (ops[i].kind == OP_READ) {
			if (!ops[i].ok)
				reads_failed++;
			else if (ops[i].missing)
				reads_missing++;
			else
				reads_ok++;
		}
	json_t *wl_json = json_pack(
		"{s:s, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:{s:I, s:I, s:I}}",
		"run_id", wc->run_id, "rate", wc->rate, "read_rate_per_region", wc->read_rate,
		"duration_s", wc->duration_s, "global_percent", wc->global_percent, "writes_scheduled",
		(json_int_t)nw, "acknowledged", (json_int_t)acked, "acknowledged_global",
		(json_int_t)acked_global, "failed", (json_int_t)failed_w, "unacknowledged",
		(json_int_t)unacked, "attempts", (json_int_t)attempts, "retried", (json_int_t)retried,
		"replayed", (json_int_t)replayed, "latency_ms", latency, "reads", "ok",
		(json_int_t)reads_ok, "missing", (json_int_t)reads_missing, "failed",
		(json_int_t)reads_failed);

	/* RPO */
	int have_final = s->final_records != NULL && !s->readback_error[0];
	long kept = 0, lost = 0, lost_global = 0, missing = 0, duplicates = 0, executed_unacked = 0;
	int64_t lost_first = 0, lost_last = 0;
	json_t *lost_examples = json_array(), *missing_examples = json_array(),
	       *duplicate_examples = json_array();
	for (size_t i = 0; i < nw && have_final; i++) {
		const drill_write *w = &writes[i];
		char marker[48];
		workload_marker(s->wl, w->index, marker);
		json_t *ids = json_object_get(s->final_records, marker);
		if (w->state != WRITE_ACKED) {
			executed_unacked += ids != NULL;
			continue;
		}
		json_t *q = json_object_get(s->quarantine, marker);
		json_t *example = json_pack("{s:s, s:s, s:s, s:o, s:s, s:i}", "marker", marker, "region",
					    wc->regions[w->region].name, "id", w->id, "acknowledged",
					    iso(w->ack_ms), "durability", w->global ? "global" : "local",
					    "attempts", w->attempts);
		if (w->lsn_epoch >= 0) {
			char lsn[48];
			snprintf(lsn, sizeof lsn, "%lld/%lld", (long long)w->lsn_epoch, (long long)w->lsn_seq);
			json_object_set_new(example, "lsn", json_string(lsn));
		}
		if (ids) {
			kept++;
			json_decref(example);
		} else if (q) {
			lost++;
			lost_global += w->global;
			if (!lost_first || w->ack_ms < lost_first)
				lost_first = w->ack_ms;
			if (w->ack_ms > lost_last)
				lost_last = w->ack_ms;
			json_object_set(example, "quarantine", q);
			if (json_array_size(lost_examples) < 20 || w->global)
				json_array_append(lost_examples, example);
			json_decref(example);
		} else {
			missing++;
			if (json_array_size(missing_examples) < 20)
				json_array_append(missing_examples, example);
			json_decref(example);
		}
	}
	if (have_final) {
		const char *marker;
		json_t *ids;
		json_object_foreach(s->final_records, marker, ids) {
			if (json_array_size(ids) > 1) {
				duplicates++;
				if (json_array_size(duplicate_examples) < 20)
					json_array_append_new(duplicate_examples,
							      json_pack("{s:s, s:O}", "marker", marker, "ids", ids));
			}
		}
	}
	double lost_span = lost ? (double)(lost_last - lost_first) / 1000.0 : 0.0;
	int rpo_ok = have_final && missing == 0 && lost_global == 0 && lost_span <= s->cfg.drill.rpo_budget_s;
	json_t *rpo = json_pack(
		"{s:b, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:i, s:b, s:I, s:I, s:o, s:o, s:o, s:o}",
		"final_data_read", have_final, "acknowledged", (json_int_t)acked, "in_final_data",
		(json_int_t)kept, "only_in_quarantine", (json_int_t)lost, "lost_global",
		(json_int_t)lost_global, "missing", (json_int_t)missing, "lost_span_s",
		real_or_null(lost_span, have_final), "lost_first", lost ? iso(lost_first) : json_null(),
		"lost_last", lost ? iso(lost_last) : json_null(), "budget_s", s->cfg.drill.rpo_budget_s,
		"ok", rpo_ok, "duplicates", (json_int_t)duplicates, "executed_unacknowledged",
		(json_int_t)executed_unacked, "lost_examples", lost_examples, "missing_examples",
		missing_examples, "duplicate_examples", duplicate_examples, "quarantine_files",
		json_copy(s->quarantine_files ? s->quarantine_files : json_array()));
	json_object_set_new(rpo, "quarantined_transactions", json_integer(s->quarantine_lines));
	if (s->readback_error[0])
		json_object_set_new(rpo, "error", json_string(s->readback_error));

	/* RTO: writes are the `local` ones (a `global` write also needs the
	 * other region: its own figure); all writes if none is local */
	json_t *rto_regions = json_object();
	int local_durability = 0;
	if (wc->global_percent >= 100)
		local_durability = -1;
	int64_t service_w = -1, service_g = -1, service_r = -1;
	for (int k = 0; k < DRILL_REGIONS; k++) {
		recovery w = compute_recovery(ops, nops, k, OP_WRITE, local_durability, fault);
		recovery g = compute_recovery(ops, nops, k, OP_WRITE, 1, fault);
		recovery r = compute_recovery(ops, nops, k, OP_READ, -1, fault);
		if (w.recovered && (service_w < 0 || w.recovery_ms < service_w))
			service_w = w.recovery_ms;
		if (g.recovered && (service_g < 0 || g.recovery_ms < service_g))
			service_g = g.recovery_ms;
		if (r.recovered && (service_r < 0 || r.recovery_ms < service_r))
			service_r = r.recovery_ms;
		json_t *reg = json_object();
		json_object_set_new(reg, "writes_s", real_or_null(w.rto_s, w.recovered));
		json_object_set_new(reg, "global_writes_s", real_or_null(g.rto_s, g.recovered));
		json_object_set_new(reg, "reads_s", real_or_null(r.rto_s, r.recovered));
		json_object_set_new(reg, "write_failures_after_fault", json_integer(w.failures));
		json_object_set_new(reg, "global_write_failures_after_fault", json_integer(g.failures));
		json_object_set_new(reg, "read_failures_after_fault", json_integer(r.failures));
		json_object_set_new(reg, "writes_back_at", w.recovered ? iso(w.recovery_ms) : json_null());
		json_object_set_new(rto_regions, wc->regions[k].name, reg);
	}
	double rto_w = service_w >= 0 ? (double)(service_w - fault) / 1000.0 : 0;
	double rto_g = service_g >= 0 ? (double)(service_g - fault) / 1000.0 : 0;
	double rto_r = service_r >= 0 ? (double)(service_r - fault) / 1000.0 : 0;
	int rto_ok = service_w >= 0 && rto_w <= s->cfg.drill.rto_budget_s;
	json_t *rto = json_object();
	json_object_set_new(rto, "writes_s", real_or_null(rto_w, service_w >= 0));
	json_object_set_new(rto, "global_writes_s", real_or_null(rto_g, service_g >= 0));
	json_object_set_new(rto, "reads_s", real_or_null(rto_r, service_r >= 0));
	json_object_set_new(rto, "budget_s", json_integer(s->cfg.drill.rto_budget_s));
	json_object_set_new(rto, "ok", json_boolean(rto_ok));
	json_object_set_new(rto, "regions", rto_regions);
	/* --via edge: what the clients saw (every population back: the latest
	 * recovery of the two edges' clients), next to the regions' own */
	double client_w = -1, client_r = -1, regions_w = -1;
	long failed_reads = 0;
	if (o->via_edge) {
		int64_t last_w = fault, last_r = fault;
		int all_w = 1, all_r = 1;
		for (int k = 0; k < DRILL_REGIONS; k++) {
			recovery w = compute_recovery(ops, nops, k, OP_WRITE, local_durability, fault);
			recovery r = compute_recovery(ops, nops, k, OP_READ, -1, fault);
			all_w &= w.recovered;
			all_r &= r.recovered;
			if (w.recovered && w.recovery_ms > last_w)
				last_w = w.recovery_ms;
			if (r.recovered && r.recovery_ms > last_r)
				last_r = r.recovery_ms;
		}
		for (size_t i = 0; i < nops; i++)
			failed_reads += ops[i].kind == OP_READ && !ops[i].ok;
		client_w = all_w ? (double)(last_w - fault) / 1000.0 : -1;
		client_r = all_r ? (double)(last_r - fault) / 1000.0 : -1;
		regions_w = regions_write_rto(s, fault, s->t0_ms + (int64_t)o->duration_s * 1000);
		json_object_set_new(rto, "via", json_string("edge"));
		json_object_set_new(rto, "client_writes_s", real_or_null(client_w, client_w >= 0));
		json_object_set_new(rto, "client_reads_s", real_or_null(client_r, client_r >= 0));
		json_object_set_new(rto, "client_failed_reads", json_integer(failed_reads));
		json_object_set_new(rto, "regions_writes_s", real_or_null(regions_w, regions_w >= 0));
	}

	/* errors by class and region, and the documented ones */
	json_t *errors = json_object();
	long undocumented = 0;
	json_t *undocumented_classes = json_object();
	for (int k = 0; k < DRILL_REGIONS; k++)
		json_object_set_new(errors, wc->regions[k].name, json_pack("{s:{}, s:{}}", "writes", "reads"));
	for (size_t i = 0; i < nops; i++) {
		const drill_op *op = &ops[i];
		if (op->ok)
			continue;
		const char *rname = wc->regions[op->region].name;
		json_t *m = json_object_get(json_object_get(errors, rname),
					    op->kind == OP_WRITE ? "writes" : "reads");
		json_object_set_new(m, op->cls, json_integer(json_integer_value(json_object_get(m, op->cls)) + 1));
		if (op->kind == OP_WRITE && s->sc->errors_primary) {
			int was_primary = strcmp(rname, s->primary_at_fault) == 0;
			const char *allowed = was_primary ? s->sc->errors_primary : s->sc->errors_secondary;
			if (!scenario_error_allowed(allowed, op->cls)) {
				undocumented++;
				char key[96];
				snprintf(key, sizeof key, "%s %s", rname, op->cls);
				json_object_set_new(undocumented_classes, key,
						    json_integer(json_integer_value(
									 json_object_get(undocumented_classes, key)) +
								 1));
			}
		}
	}

	/* two primaries */
	json_t *intervals = json_array(), *overlaps = json_array();
	for (size_t i = 0; i < s->nintervals; i++) {
		const primary_interval *iv = &s->intervals[i];
		json_array_append_new(intervals,
				      json_pack("{s:s, s:I, s:o, s:o, s:f, s:f, s:s}", "region", iv->region,
						"epoch", (json_int_t)iv->epoch, "from", iso(iv->from_ms), "to",
						iso(iv->to_ms), "from_s", run_t(s, iv->from_ms), "to_s",
						run_t(s, iv->to_ms), "end", iv->end));
	}
	find_overlaps(s->intervals, s->nintervals, overlaps);
	json_t *primaries = json_pack("{s:o, s:o, s:i, s:s}", "intervals", intervals, "overlaps", overlaps,
				      "log_events", s->log_events_seen, "evidence",
				      s->log_events_seen ? "writes_on/writes_off events in the regions' logs"
							 : "none: the logs have no writes_on/writes_off events");

	/* unexpected deaths */
	int deaths = 0;
	for (size_t i = 0; i < s->nevents; i++)
		if (strcmp(s->events[i].kind, "note") == 0 && strstr(s->events[i].text, "died on its own"))
			deaths++;

	/* the checks */
	add_check(checks, &failed, "fault injected", !s->fault_failed, "%s", s->fault_detail);
	if (s->sc->kind == SC_PARTITION && s->nft_counted)
		add_check(checks, &failed, "partition took effect", s->nft_dropped > 0,
			  "the drop rules matched %ld packets%s", s->nft_dropped,
			  s->nft_dropped ? ""
					 : ": the components' link traffic does not come from their own "
					   "addresses (outgoing connections must bind to link_listen's host)");
	if (s->converged)
		add_check(checks, &failed, "regions converged", 1, "same position %lld after %.1f s, primary %s",
			  (long long)s->final_position, s->converge_s, s->final_primary);
	else
		add_check(checks, &failed, "regions converged", 0, "not at the same position within 60 s");
	char verdict[200] = "not run";
	if (s->verify_output[0]) { /* its last line says identical / DIFFER */
		char copy[sizeof s->verify_output];
		snprintf(copy, sizeof copy, "%s", s->verify_output);
		size_t n = strlen(copy);
		while (n > 0 && copy[n - 1] == '\n')
			copy[--n] = '\0';
		char *nl = strrchr(copy, '\n');
		snprintf(verdict, sizeof verdict, "%.199s", nl ? nl + 1 : copy);
	}
	if (s->verify_code < 0)
		add_check(checks, &failed, "regions identical (tandem verify)", 0,
			  "not run: the regions did not converge");
	else
		add_check(checks, &failed, "regions identical (tandem verify)", s->verify_code == 0,
			  "exit %d: %s", s->verify_code, verdict);
	if (have_final)
		add_check(checks, &failed, "every acknowledged write kept or quarantined", missing == 0,
			  "%ld acknowledged: %ld in the final data, %ld only in quarantine, %ld missing", acked,
			  kept, lost, missing);
	else
		add_check(checks, &failed, "every acknowledged write kept or quarantined", 0,
			  "final data not read: %s", s->readback_error);
	if (have_final) {
		add_check(checks, &failed, "no global write lost", lost_global == 0,
			  "%ld global acknowledged, %ld lost", acked_global, lost_global);
		add_check(checks, &failed, "no duplicate from a retry", duplicates == 0,
			  "%ld markers more than once among the final records", duplicates);
	} else {
		add_check(checks, &failed, "no global write lost", 0, "final data not read");
		add_check(checks, &failed, "no duplicate from a retry", 0, "final data not read");
	}
	if (s->log_events_seen)
		add_check(checks, &failed, "never two primaries", json_array_size(overlaps) == 0,
			  "%zu write intervals from the logs, %zu overlaps", json_array_size(intervals),
			  json_array_size(overlaps));
	else
		json_array_append_new(checks,
				      check_item("never two primaries", "skipped",
						 "no writes_on/writes_off events in the regions' logs"));
	add_check(checks, &failed, "no component died on its own", deaths == 0, "%d unexpected exits",
		  deaths);

	/* scenario targets */
	const drill_scenario *sc = s->sc;
	if (sc->rto_target_s >= 0) {
		char name[64];
		snprintf(name, sizeof name, "write RTO <= %g s", sc->rto_target_s);
		add_target(targets, &missed, name, service_w >= 0 && rto_w <= sc->rto_target_s,
			   real_or_null(rto_w, service_w >= 0), sc->rto_target_s);
	}
	if (o->via_edge && (sc->kind == SC_CRASH || sc->kind == SC_PARTITION) && sc->target == SC_PRIMARY) {
		/* issue 12 section 4: a region's death costs the edge's clients no
		 * read, and writes no more than a second over the regions' own RTO */
		add_target(targets, &missed, "no failed read through the edges", failed_reads == 0,
			   json_integer(failed_reads), 0);
		add_target(targets, &missed, "client write RTO <= regions' write RTO + 1 s",
			   client_w >= 0 && regions_w >= 0 && client_w <= regions_w + 1.0,
			   real_or_null(client_w, client_w >= 0), regions_w >= 0 ? regions_w + 1.0 : -1);
	}
	if (sc->lost_span_target_s >= 0) {
		char name[80];
		snprintf(name, sizeof name, "lost local writes cover <= %g s", sc->lost_span_target_s);
		add_target(targets, &missed, name, have_final && lost_span <= sc->lost_span_target_s,
			   real_or_null(lost_span, have_final), sc->lost_span_target_s);
	}
	if (sc->rpo_zero)
		add_target(targets, &missed, "RPO 0: no acknowledged write lost", have_final && lost == 0,
			   json_integer(lost), 0);
	if (sc->kind == SC_CRASH && sc->target == SC_PRIMARY)
		add_target(targets, &missed, "no global write lost", have_final && lost_global == 0,
			   json_integer(lost_global), 0);
	if (sc->kind == SC_PARTITION && sc->target == SC_PRIMARY) {
		add_target(targets, &missed, "never two primaries",
			   s->log_events_seen > 0 && json_array_size(overlaps) == 0,
			   json_integer((json_int_t)json_array_size(overlaps)), 0);
		add_target(targets, &missed, "every write the new primary lacks is in quarantine",
			   have_final && missing == 0, json_integer(missing), 0);
	}
	if (sc->errors_primary)
		add_target(targets, &missed, "no write errors beyond the documented ones", undocumented == 0,
			   json_integer(undocumented), 0);

	json_t *objects;
	int objects_rpo_ok = check_objects(s, checks, &failed, &objects);
	int budgets_ok = rpo_ok && rto_ok && objects_rpo_ok;
	s->exit_code = (failed || !budgets_ok || (o->strict && missed)) ? 1 : 0;

	/* per second, per region */
	int64_t last = s->end_ms;
	for (size_t i = 0; i < nops; i++)
		if (ops[i].done_ms > last)
			last = ops[i].done_ms;
	size_t seconds = last > s->t0_ms ? (size_t)((last - s->t0_ms) / 1000 + 1) : 1;
	if (seconds > 100000)
		seconds = 100000;
	json_t *series = json_object();
	for (int k = 0; k < DRILL_REGIONS; k++) {
		long *v = calloc(seconds * 4, sizeof *v);
		if (!v)
			break;
		for (size_t i = 0; i < nops; i++) {
			const drill_op *op = &ops[i];
			if (op->region != k || op->done_ms < s->t0_ms)
				continue;
			size_t sec = (size_t)((op->done_ms - s->t0_ms) / 1000);
			if (sec >= seconds)
				continue;
			v[(op->kind == OP_WRITE ? 0 : 2) + !op->ok + sec * 4]++;
		}
		json_t *names[4] = {json_array(), json_array(), json_array(), json_array()};
		for (size_t sec = 0; sec < seconds; sec++)
			for (int j = 0; j < 4; j++)
				json_array_append_new(names[j], json_integer(v[sec * 4 + j]));
		free(v);
		json_object_set_new(series, wc->regions[k].name,
				    json_pack("{s:o, s:o, s:o, s:o}", "writes_ok", names[0], "write_errors",
					      names[1], "reads_ok", names[2], "read_errors", names[3]));
	}

	json_t *events = json_array();
	for (size_t i = 0; i < s->nevents; i++) {
		const drill_event *e = &s->events[i];
		json_array_append_new(events, json_pack("{s:o, s:f, s:s, s:s, s:s}", "time", iso(e->t_ms),
							 "t_s", run_t(s, e->t_ms), "kind", e->kind,
							 "component", e->component, "text", e->text));
	}
	json_t *components = json_object();
	for (int i = 0; i < s->ncomps; i++) {
		const drill_component *c = &s->comps[i];
		json_object_set_new(components, c->name,
				    json_pack("{s:s, s:s, s:s, s:i}", "address", c->is_witness ? c->link : c->api,
					      "link", c->link, "log", c->log_path, "starts", c->starts));
	}

	const char *method;
	switch (sc->kind) {
	case SC_CRASH:
		method = "kill";
		break;
	case SC_PARTITION:
		method = s->net_method;
		break;
	case SC_SWITCHOVER:
		method = "switchover";
		break;
	default:
		method = "restart";
	}
	char started[32];
	util_iso8601(s->t0_ms, started);
	json_t *r = json_object();
	json_object_set_new(r, "scenario", json_string(sc->name));
	json_object_set_new(r, "summary", json_string(sc->summary));
	json_object_set_new(r, "ok", json_boolean(s->exit_code == 0));
	json_object_set_new(r, "exit_code", json_integer(s->exit_code));
	json_object_set_new(r, "started_at", json_string(started));
	json_object_set_new(r, "run_id", json_string(wc->run_id));
	json_object_set_new(r, "deployment",
			    json_pack("{s:s, s:s, s:s, s:b, s:o}", "config", s->config_path,
				      "partition_method", s->net_method, "partition_method_note", s->net_note,
				      "network_namespace", s->netns, "components", components));
	json_t *f = json_object();
	json_object_set_new(f, "method", json_string(method));
	json_object_set_new(f, "partition_method", json_string(s->net_method));
	json_object_set_new(f, "target", json_string(s->fault_target));
	json_object_set_new(f, "primary_at_fault", json_string(s->primary_at_fault));
	json_object_set_new(f, "detail", json_string(s->fault_detail));
	json_object_set_new(f, "heal", json_string(s->heal_detail));
	json_object_set_new(f, "partition", json_string(s->partition_desc));
	json_object_set_new(f, "at", s->fault_ms ? iso(s->fault_ms) : json_null());
	json_object_set_new(f, "at_s", real_or_null(run_t(s, s->fault_ms), s->fault_ms != 0));
	json_object_set_new(f, "healed_at", s->heal_ms ? iso(s->heal_ms) : json_null());
	json_object_set_new(f, "healed_s", real_or_null(run_t(s, s->heal_ms), s->heal_ms != 0));
	json_object_set_new(f, "ok", json_boolean(!s->fault_failed));
	json_object_set_new(r, "fault", f);
	json_object_set_new(r, "workload", wl_json);
	json_object_set_new(r, "rpo", rpo);
	json_object_set_new(r, "rto", rto);
	json_object_set_new(r, "objects", objects);
	json_object_set_new(r, "checks", checks);
	json_object_set_new(r, "targets", targets);
	json_object_set_new(r, "targets_missed", json_integer(missed));
	json_object_set_new(r, "strict", json_boolean(o->strict));
	json_object_set_new(r, "errors", errors);
	json_object_set_new(r, "undocumented_errors", undocumented_classes);
	json_object_set_new(r, "primaries", primaries);
	json_object_set_new(r, "role_events", json_copy(s->role_events ? s->role_events : json_array()));
	json_object_set_new(r, "verify", json_pack("{s:i, s:s}", "exit_code", s->verify_code, "output",
						     s->verify_output));
	json_object_set_new(r, "convergence",
			    json_pack("{s:b, s:f, s:I, s:s}", "ok", s->converged, "seconds", s->converge_s,
				      "position", (json_int_t)s->final_position, "primary", s->final_primary));
	json_object_set_new(r, "events", events);
	s->report = r;
	json_object_set_new(s->report, "per_second", series);
}
