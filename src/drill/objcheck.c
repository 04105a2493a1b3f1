/*
 * objcheck.c - what the drill checks of the object workload (objload.c),
 * and the report's "objects" section. Definitions (docs/DRILL.md, "Objects"):
 *
 * Order. Object writes of one key race across regions; the regions settle
 * them by HLC, which the drill cannot see from outside. What it can tell: a
 * write A acknowledged before write B was first sent (more than
 * OBJ_ORDER_SLACK_MS before) is *strictly before* B, and then B's HLC is
 * newer (one host clock; an HLC is at least the physical time). Writes that
 * overlap may settle either way.
 *
 * Verdicts, for an acknowledged write W of key K against a state (a
 * listing of one region: per key an ETag or nothing):
 *
 *   K holds W's ETag                         W current
 *   K holds the ETag of PUT X, X not < W     W superseded (X won or raced)
 *   K holds the ETag of PUT X, X < W         W missing (a PUT) or
 *                                            reappeared (a DELETE: an
 *                                            object written before it is back)
 *   K absent, W a DELETE                     W current
 *   K absent, W a PUT, some sent DELETE D of K with D not < W
 *                                            W superseded
 *   K absent, W a PUT, otherwise             W missing
 *   K holds an ETag no write of K made       unknown
 *
 * Final state: both regions are listed twice, ~1 s apart, after the
 * convergence; every acknowledged write must be current or superseded in
 * all four listings ("kept", "no resurrection"), and the two regions'
 * listings must be equal each time.
 *
 * Object RPO: right after the fault, every region still running is
 * listed; the acknowledged writes of the *other* region (acknowledged
 * before the fault) that are missing there are what it would lack if it
 * had to go on alone. RPO = fault time - the oldest such acknowledgement;
 * within [drill] rpo_budget_s.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "drill/internal.h"

/* ---- pure logic ---- */

static int strictly_before(const obj_write *a, const obj_write *b)
{
	return a->state == WRITE_ACKED && b->send_ms > 0 && a->ack_ms + OBJ_ORDER_SLACK_MS < b->send_ms;
}

static const obj_write *sort_writes; /* qsort has no argument: single-threaded use */

static int by_key(const void *a, const void *b)
{
	const obj_write *x = &sort_writes[*(const uint32_t *)a], *y = &sort_writes[*(const uint32_t *)b];
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static obj_verdict judge_one(const obj_write *writes, const uint32_t *group, size_t ng,
			     const obj_write *w, const obj_state *st)
{
	const char *etag = w->key < st->nkeys ? st->etag[w->key] : "";
	if (etag[0]) {
		const obj_write *x = NULL;
		for (size_t i = 0; i < ng && !x; i++) {
			const obj_write *c = &writes[group[i]];
			if (c->kind == OBJ_PUT && c->etag[0] && strcmp(c->etag, etag) == 0)
				x = c;
		}
		if (!x)
			return OBJ_VERDICT_UNKNOWN;
		if (x == w)
			return OBJ_VERDICT_CURRENT;
		if (strictly_before(x, w))
			return w->kind == OBJ_PUT ? OBJ_VERDICT_MISSING : OBJ_VERDICT_REAPPEARED;
		return OBJ_VERDICT_SUPERSEDED;
	}
	if (w->kind == OBJ_DELETE)
		return OBJ_VERDICT_CURRENT;
	for (size_t i = 0; i < ng; i++) {
		const obj_write *d = &writes[group[i]];
		/* a DELETE sent before the listing ended may be why the key is gone */
		if (d->kind == OBJ_DELETE && d->send_ms > 0 && d->send_ms <= st->done_ms &&
		    !strictly_before(d, w))
			return OBJ_VERDICT_SUPERSEDED;
	}
	return OBJ_VERDICT_MISSING;
}

void objcheck_judge(const obj_write *writes, size_t n, const obj_state *st, int64_t cutoff_ms,
		    int skip_region, obj_verdict *verdict, obj_tally *t)
{
	memset(t, 0, sizeof *t);
	if (verdict)
		for (size_t i = 0; i < n; i++)
			verdict[i] = OBJ_VERDICT_NONE;
	uint32_t *order = malloc((n ? n : 1) * sizeof *order);
	if (!order) { /* cannot judge: say every write is missing, never "ok" */
		t->missing = (long)n;
		return;
	}
	for (size_t i = 0; i < n; i++)
		order[i] = (uint32_t)i;
	sort_writes = writes;
	qsort(order, n, sizeof *order, by_key);
	for (size_t from = 0; from < n;) {
		size_t to = from;
		while (to < n && writes[order[to]].key == writes[order[from]].key)
			to++;
		for (size_t i = from; i < to; i++) {
			const obj_write *w = &writes[order[i]];
			if (w->state != WRITE_ACKED || w->ack_ms > cutoff_ms || w->region == skip_region)
				continue;
			obj_verdict v = judge_one(writes, order + from, to - from, w, st);
			t->judged++;
			switch (v) {
			case OBJ_VERDICT_CURRENT:
				t->current++;
				break;
			case OBJ_VERDICT_SUPERSEDED:
				t->superseded++;
				break;
			case OBJ_VERDICT_UNKNOWN:
				t->unknown++;
				break;
			default:
				if (v == OBJ_VERDICT_MISSING)
					t->missing++;
				else
					t->reappeared++;
				if (!t->missing_first_ack || w->ack_ms < t->missing_first_ack)
					t->missing_first_ack = w->ack_ms;
				if (w->ack_ms > t->missing_last_ack)
					t->missing_last_ack = w->ack_ms;
			}
			if (verdict)
				verdict[order[i]] = v;
		}
		from = to;
	}
	free(order);
}

long objcheck_differences(const obj_state *a, const obj_state *b, uint32_t *first_key)
{
	if (!a->taken || !b->taken)
		return -1;
	long diff = 0;
	uint32_t n = a->nkeys > b->nkeys ? a->nkeys : b->nkeys;
	for (uint32_t k = 0; k < n; k++) {
		const char *x = k < a->nkeys ? a->etag[k] : "", *y = k < b->nkeys ? b->etag[k] : "";
		if (strcmp(x, y) != 0) {
			if (!diff && first_key)
				*first_key = k;
			diff++;
		}
	}
	return diff;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double objcheck_quantile(double *v, size_t n, double q)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof *v, cmp_double);
	size_t i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* ---- the report section ---- */

static json_t *num3(double v)
{
	return json_real(round(v * 1000.0) / 1000.0);
}

static json_t *iso_or_null(int64_t ms)
{
	if (!ms)
		return json_null();
	char t[32];
	util_iso8601(ms, t);
	return json_string(t);
}

static void obj_check(json_t *checks, int *failed, const char *name, int ok, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void obj_check(json_t *checks, int *failed, const char *name, int ok, const char *fmt, ...)
{
	char detail[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	json_array_append_new(checks, json_pack("{s:s, s:s, s:s}", "name", name, "status",
						 ok ? "pass" : "fail", "detail", detail));
	if (!ok)
		(*failed)++;
}

static json_t *tally_json(const obj_tally *t)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "judged", (json_int_t)t->judged, "current",
			 (json_int_t)t->current, "superseded", (json_int_t)t->superseded, "missing",
			 (json_int_t)t->missing, "reappeared", (json_int_t)t->reappeared, "unknown",
			 (json_int_t)t->unknown);
}

static long present_keys(const obj_state *st)
{
	long n = 0;
	for (uint32_t k = 0; k < st->nkeys; k++)
		n += st->etag[k][0] != 0;
	return n;
}

/* An acknowledged write the checks found wrong, for the report. */
static json_t *write_example(const drill_run_state *s, const obj_write *w, const char *region,
			     obj_verdict v)
{
	char key[OBJ_KEY_NAME_MAX];
	objload_key_name(w->key, key);
	static const char *const names[] = {"none", "current", "superseded", "missing", "reappeared",
					    "unknown"};
	const objload_config *oc = objload_config_of(s->ol);
	return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:f, s:f, s:s}", "write", (json_int_t)w->index,
			 "kind", w->kind == OBJ_PUT ? "PUT" : "DELETE", "key", key, "from",
			 oc->region[w->region], "etag", w->etag, "seen_in", region, "sent_s",
			 run_t(s, w->send_ms), "acknowledged_s", run_t(s, w->ack_ms), "verdict", names[v]);
}

int check_objects(drill_run_state *s, json_t *checks, int *failed, json_t **section)
{
	json_t *o = json_object();
	*section = o;
	int failed_before = *failed;
	if (!s->ol) {
		json_object_set_new(o, "enabled", json_false());
		json_object_set_new(o, "note", json_string(s->obj_note));
		return 1;
	}
	const objload_config *oc = objload_config_of(s->ol);
	size_t nw, nops;
	const obj_write *writes = objload_writes(s->ol, &nw);
	const obj_op *ops = objload_ops(s->ol, &nops);
	uint32_t nkeys = objload_key_count(s->ol);

	/* the workload */
	long puts = 0, deletes = 0, acked_put[DRILL_REGIONS] = {0}, acked_del = 0, failed_w = 0,
	     unacked = 0, attempts = 0, retried = 0;
	long long bytes = 0;
	double *lat = malloc((nw ? nw : 1) * sizeof *lat);
	size_t nlat = 0;
	for (size_t i = 0; i < nw; i++) {
		const obj_write *w = &writes[i];
		puts += w->kind == OBJ_PUT;
		deletes += w->kind == OBJ_DELETE;
		attempts += w->attempts;
		retried += w->attempts > 1;
		if (w->state == WRITE_ACKED) {
			if (w->kind == OBJ_PUT) {
				acked_put[w->region]++;
				bytes += w->size;
			} else {
				acked_del++;
			}
			if (lat)
				lat[nlat++] = (double)(w->ack_ms - w->sched_ms);
		} else if (w->state == WRITE_FAILED) {
			failed_w++;
		} else {
			unacked++;
		}
	}
	/* (sorted by the first quantile, before the maximum is read) */
	double lat50 = lat ? objcheck_quantile(lat, nlat, 0.5) : 0, lat99 = lat ? objcheck_quantile(lat, nlat, 0.99) : 0;
	double latmax = lat && nlat ? lat[nlat - 1] : 0;
	json_t *latency = json_pack("{s:o, s:o, s:o}", "p50", num3(lat50), "p99", num3(lat99), "max", num3(latmax));
	free(lat);
	json_t *errors = json_object();
	for (int k = 0; k < DRILL_REGIONS; k++)
		json_object_set_new(errors, oc->region[k], json_object());
	for (size_t i = 0; i < nops; i++) {
		if (ops[i].ok)
			continue;
		json_t *m = json_object_get(errors, oc->region[ops[i].region]);
		json_object_set_new(m, ops[i].cls,
				    json_integer(json_integer_value(json_object_get(m, ops[i].cls)) + 1));
	}
	json_object_set_new(o, "enabled", json_true());
	json_object_set_new(o, "bucket", json_string(oc->bucket));
	json_object_set_new(
		o, "workload",
		json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "rate",
			  oc->rate, "keys", (json_int_t)nkeys, "scheduled", (json_int_t)nw, "puts",
			  (json_int_t)puts, "deletes", (json_int_t)deletes, "acknowledged",
			  (json_int_t)(acked_put[0] + acked_put[1] + acked_del), "acknowledged_puts",
			  (json_int_t)(acked_put[0] + acked_put[1]), "acknowledged_deletes",
			  (json_int_t)acked_del, "failed", (json_int_t)failed_w, "unacknowledged",
			  (json_int_t)unacked, "attempts", (json_int_t)attempts, "retried",
			  (json_int_t)retried, "bytes_acknowledged", (json_int_t)bytes, "latency_ms", latency,
			  "errors", errors));
	obj_check(checks, failed, "objects: PUTs acknowledged in both regions",
		  acked_put[0] > 0 && acked_put[1] > 0, "%ld in %s, %ld in %s (%ld DELETEs acknowledged)",
		  acked_put[0], oc->region[0], acked_put[1], oc->region[1], acked_del);

	/* the final state: both regions, twice */
	obj_verdict *verdict = calloc(nw ? nw : 1, sizeof *verdict);
	json_t *readbacks = json_array(), *examples = json_array();
	obj_tally sum = {0};
	int all_taken = 1;
	long differences = 0;
	for (int round = 0; round < 2; round++) {
		for (int k = 0; k < DRILL_REGIONS; k++) {
			const obj_state *st = &s->obj_final[k][round];
			json_t *rb = json_pack("{s:i, s:s, s:b}", "round", round + 1, "region", oc->region[k],
					       "taken", st->taken);
			if (!st->taken) {
				all_taken = 0;
				json_object_set_new(rb, "error",
						    json_string(st->error[0] ? st->error : "not read"));
				json_array_append_new(readbacks, rb);
				continue;
			}
			obj_tally t;
			objcheck_judge(writes, nw, st, INT64_MAX, -1, verdict, &t);
			sum.judged += t.judged;
			sum.current += t.current;
			sum.superseded += t.superseded;
			sum.missing += t.missing;
			sum.reappeared += t.reappeared;
			sum.unknown += t.unknown;
			for (size_t i = 0; verdict && i < nw && json_array_size(examples) < 20; i++)
				if (verdict[i] >= OBJ_VERDICT_MISSING)
					json_array_append_new(examples,
							      write_example(s, &writes[i], oc->region[k], verdict[i]));
			json_object_set_new(rb, "t_s", json_real(run_t(s, st->at_ms)));
			json_object_set_new(rb, "keys_present", json_integer(present_keys(st)));
			json_object_set_new(rb, "foreign_keys", json_integer(st->foreign));
			json_object_update_missing_new(rb, tally_json(&t));
			json_array_append_new(readbacks, rb);
		}
		uint32_t first = 0;
		long d = objcheck_differences(&s->obj_final[0][round], &s->obj_final[1][round], &first);
		if (d > 0) {
			char key[OBJ_KEY_NAME_MAX];
			objload_key_name(first, key);
			json_array_append_new(examples,
					      json_pack("{s:i, s:s, s:s, s:s}", "round", round + 1, "key", key,
							oc->region[0], s->obj_final[0][round].etag[first],
							oc->region[1], s->obj_final[1][round].etag[first]));
		}
		if (d > 0)
			differences += d;
	}
	json_t *ae = json_object();
	for (int k = 0; k < DRILL_REGIONS; k++)
		json_object_set_new(ae, oc->region[k], json_pack("{s:b, s:I}", "pass_ended", s->obj_ae_ran[k],
								  "repaired", (json_int_t)s->obj_ae_repairs[k]));
	json_object_set_new(o, "final", json_pack("{s:o, s:b, s:I, s:b, s:o, s:o, s:o}", "readbacks", readbacks,
						    "all_read", all_taken, "differences",
						    (json_int_t)differences, "drained", s->obj_drained,
						    "drain_s", num3(s->obj_drain_s), "anti_entropy", ae,
						    "examples", examples));
	if (all_taken) {
		obj_check(checks, failed, "objects: acknowledged PUTs kept or superseded",
			  sum.missing == 0 && sum.unknown == 0,
			  "%ld acknowledged writes judged in 4 listings: %ld current, %ld superseded, %ld "
			  "missing, %ld unknown content",
			  sum.judged, sum.current, sum.superseded, sum.missing, sum.unknown);
		obj_check(checks, failed, "objects: no deleted object reappears", sum.reappeared == 0,
			  "%ld acknowledged DELETEs undone in 2 listings of each region ~1 s apart",
			  sum.reappeared);
		obj_check(checks, failed, "objects: both regions list the same objects", differences == 0,
			  "%ld keys differ in 2 rounds of listings (%u keys in the pool)", differences, nkeys);
	} else {
		const char *why = "the final listings could not be made";
		obj_check(checks, failed, "objects: acknowledged PUTs kept or superseded", 0,
			  "%s", why);
		obj_check(checks, failed, "objects: no deleted object reappears", 0, "%s", why);
		obj_check(checks, failed, "objects: both regions list the same objects", 0, "%s", why);
	}

	/* object RPO: what each region still running lacked right after the fault */
	json_t *at_fault = json_array(), *rpo_examples = json_array();
	long rpo_missing = 0;
	int64_t first_ack = 0, last_ack = 0;
	int measured = 0, attempted = 0;
	int64_t fault = s->fault_ms ? s->fault_ms : s->t0_ms;
	for (int k = 0; k < DRILL_REGIONS; k++) {
		const obj_state *st = &s->obj_at_fault[k];
		if (!st->taken && !st->error[0])
			continue; /* not running at the fault: nothing to ask */
		attempted++;
		json_t *a = json_pack("{s:s, s:b}", "region", oc->region[k], "taken", st->taken);
		if (!st->taken) {
			json_object_set_new(a, "error", json_string(st->error));
			json_array_append_new(at_fault, a);
			continue;
		}
		measured++;
		obj_tally t;
		/* the other region's writes acknowledged before the fault */
		objcheck_judge(writes, nw, st, fault, k, verdict, &t);
		long lacked = t.missing + t.reappeared + t.unknown;
		rpo_missing += lacked;
		if (t.missing_first_ack && (!first_ack || t.missing_first_ack < first_ack))
			first_ack = t.missing_first_ack;
		if (t.missing_last_ack > last_ack)
			last_ack = t.missing_last_ack;
		for (size_t i = 0; verdict && i < nw && json_array_size(rpo_examples) < 20; i++)
			if (verdict[i] >= OBJ_VERDICT_MISSING)
				json_array_append_new(rpo_examples,
						      write_example(s, &writes[i], oc->region[k], verdict[i]));
		json_object_set_new(a, "listed_s", json_real(run_t(s, st->at_ms)));
		json_object_set_new(a, "listing_ms", json_integer(st->done_ms - st->at_ms));
		json_object_set_new(a, "lacked", json_integer(lacked));
		json_object_update_missing_new(a, tally_json(&t));
		json_array_append_new(at_fault, a);
	}
	free(verdict);
	double rpo_s = first_ack ? (double)(fault - first_ack) / 1000.0 : 0.0;
	double span_s = first_ack ? (double)(last_ack - first_ack) / 1000.0 : 0.0;
	int rpo_ok = measured == attempted && measured > 0 && rpo_s <= s->cfg.drill.rpo_budget_s;
	json_object_set_new(
		o, "rpo",
		json_pack("{s:s, s:o, s:I, s:o, s:o, s:o, s:o, s:i, s:b, s:o}", "measured",
			  "each region still running, listed right after the fault: the other region's "
			  "writes acknowledged before it that it lacked",
			  "regions", at_fault, "lacked", (json_int_t)rpo_missing, "rpo_s",
			  measured ? num3(rpo_s) : json_null(), "lacked_span_s", num3(span_s),
			  "oldest_lacked_ack", iso_or_null(first_ack), "newest_lacked_ack",
			  iso_or_null(last_ack), "budget_s", s->cfg.drill.rpo_budget_s, "ok", rpo_ok,
			  "examples", rpo_examples));

	/* replication lag: the status polls, the regions' histograms */
	json_t *lag = json_object(), *status = json_object();
	for (int k = 0; k < DRILL_REGIONS; k++) {
		size_t n = s->obj_nlag[k];
		double *v = s->obj_lag[k];
		double p50 = objcheck_quantile(v, n, 0.5), p99 = objcheck_quantile(v, n, 0.99);
		double max = n ? v[n - 1] : 0; /* sorted by objcheck_quantile */
		json_object_set_new(status, oc->region[k],
				    json_pack("{s:I, s:o, s:o, s:o}", "samples", (json_int_t)n, "p50", num3(p50),
					      "p99", num3(p99), "max", num3(max)));
	}
	json_object_set_new(lag, "status_lag_seconds", status);
	json_object_set_new(lag, "histogram", json_copy(s->obj_histogram ? s->obj_histogram : json_object()));
	json_object_set_new(o, "lag", lag);
	json_object_set_new(o, "ok", json_boolean(rpo_ok && *failed == failed_before));
	return rpo_ok;
}
