/*
 * repl.c - replication lifecycle, the control thread, the link server,
 * waits, and status.
 *
 * The control thread (its own event_base) runs everything of replication
 * and failover: the link server and its routes, the stream or the applier,
 * leases and elections (election.c), the witness client, rejoin, snapshots.
 * repl_start sets it all up and then starts the thread; repl_shutdown stops
 * it gracefully on that thread (posted, and waited for); repl_free joins
 * it. The API thread talks to it only through view.c (the published view,
 * the mailbox to_ctl) and forward.c; the control thread answers through
 * the mailbox to_api (wait completions, link requests for the API).
 *
 * The link is an HTTPS server with mutual TLS on link_listen. A peer is
 * accepted only with a certificate from the deployment's CA (the TLS layer
 * checks that) whose common name is a region of this deployment, or
 * "admin" (the command line), which may only read status. Routes:
 *
 *   GET  /internal/v1/replication/stream?from=SEQ   regions  (stream.c)
 *   POST /internal/v1/replication/ack               regions  (stream.c)
 *   GET  /internal/v1/position                      regions, admin
 *   GET  /internal/v1/status                        regions, admin
 *   GET  /internal/v1/verify                        regions, admin
 *   *    /v1/...                                    regions: forwarded API calls
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "core/err.h"
#include "core/looplag.h"
#include "core/ratelog.h"
#include "core/log.h"
#include "core/util.h"
#include "failover/rules.h"
#include "replication/internal.h"

/* the control loop's tick: its lag is measured, the view published */
#define REPL_CONTROL_TICK_MS 50
/* the longest the API loop may be stalled on purpose (test fault) */
#define REPL_STALL_MAX_MS 30000
/* repl_metrics waits this long for the control thread's lines */
#define REPL_METRICS_WAIT_MS 1000

int repl_submit(repl *r, commit_exec_fn exec, commit_done_fn done, void *arg)
{
	return committer_submit_to(r->env.writer, r->ctl_done, exec, done, arg);
}

int repl_submit_exclusive(repl *r, commit_exec_fn exec, commit_done_fn done, void *arg)
{
	return committer_submit_exclusive_to(r->env.writer, r->ctl_done, exec, done, arg);
}

/* --- waits --- */

static void waiter_fire(waiter *w, bool ok)
{
	/* unlink first: the callback may add new waiters */
	waiter **pp = w->list;
	while (*pp && *pp != w)
		pp = &(*pp)->next;
	if (*pp)
		*pp = w->next;
	if (w->timer)
		event_free(w->timer);
	repl_wait_cb cb = w->cb;
	void *arg = w->arg;
	free(w);
	cb(arg, ok);
}

static void waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	waiter_fire(arg, false);
}

void waitlist_add(repl *r, waiter **list, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	waiter *w = calloc(1, sizeof *w);
	if (!w) {
		cb(arg, false);
		return;
	}
	w->seq = seq;
	w->cb = cb;
	w->arg = arg;
	w->r = r;
	w->list = list;
	w->timer = evtimer_new(r->env.base, waiter_timeout, w);
	if (!w->timer) {
		free(w);
		cb(arg, false);
		return;
	}
	struct timeval tv = util_timeval_ms(timeout_ms);
	if (evtimer_add(w->timer, &tv) != 0) { /* out of memory: it could never time out */
		event_free(w->timer);
		free(w);
		cb(arg, false);
		return;
	}
	w->next = *list;
	*list = w;
}

void repl_position_reached(repl *r)
{
	waitlist_advance(&r->position_waiters, r->position);
}

void waitlist_advance(waiter **list, uint64_t reached)
{
	bool again = true;
	while (again) {
		again = false;
		for (waiter *w = *list; w; w = w->next) {
			if (w->seq <= reached) {
				waiter_fire(w, true);
				again = true; /* the list changed under us */
				break;
			}
		}
	}
}

void waitlist_fail_all(waiter **list)
{
	while (*list)
		waiter_fire(*list, false);
}

void ctl_wait_position(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	if (seq <= r->position) {
		cb(arg, true);
		return;
	}
	if (r->stopping || timeout_ms <= 0) {
		cb(arg, false);
		return;
	}
	waitlist_add(r, &r->position_waiters, seq, timeout_ms, cb, arg);
}

int repl_parse_lsn(const char *s, uint64_t *seq)
{
	const char *slash = strchr(s, '/');
	const char *num = slash ? slash + 1 : s;
	long long v;
	if (slash) {
		long long e;
		char epoch[24];
		size_t n = (size_t)(slash - s);
		if (n == 0 || n >= sizeof epoch)
			return ERR_INVAL;
		memcpy(epoch, s, n);
		epoch[n] = '\0';
		if (util_parse_int(epoch, 0, INT64_MAX, &e) != 0)
			return ERR_INVAL;
	}
	if (util_parse_int(num, 0, INT64_MAX, &v) != 0)
		return ERR_INVAL;
	*seq = (uint64_t)v;
	return 0;
}

/* --- answers on the link --- */

void repl_answer(http_request *req, int status, const char *code, const char *json_or_message)
{
	buf b;
	buf_init(&b, 1 << 20);
	if (code) {
		buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
		buf_add_json_escaped(&b, json_or_message, strlen(json_or_message));
		buf_adds(&b, "\"}}");
	} else {
		buf_adds(&b, json_or_message);
	}
	http_response_header(req, "Content-Type", "application/json");
	http_respond(req, status, b.data, b.len);
	buf_free(&b);
}

/* --- status --- */

static int64_t repl_lag_ms(repl *r)
{
	return r->primary ? stream_lag_ms(r) : applier_lag_ms(r);
}

void repl_status_json(repl *r, buf *out)
{
	int64_t now = util_now_ms();
	buf_printf(out, "{\"region\":\"%s\",\"role\":\"%s\",\"epoch\":%llu,", r->env.self->name,
		   r->primary ? "primary" : "secondary", (unsigned long long)r->epoch);
	if (r->primary) {
		stream_status_json(r, out);
	} else {
		applier_status_json(r, out);
	}
	election_status_json(r, out);
	if (r->env.status_extra)
		r->env.status_extra(out, r->env.objects_arg); /* "objects":{...}, */
	buf_printf(out, "\"time_ms\":%lld}", (long long)now);
}

/* The control thread's lines (control thread, or any once it has stopped). */
static void repl_metrics_ctl(repl *r, buf *out)
{
	const char *n = r->env.self->name;
	uint64_t acked = stream_acked_seq(r);
	uint64_t lag_pos = r->primary ? rules_lag_positions(r->position, acked)
				      : rules_lag_positions(applier_primary_seq(r), r->position);
	if (!r->env.peer)
		lag_pos = 0;
	const char *gate_code, *gate_message;
	int no_quorum = r->primary && repl_write_gate_peek(r, &gate_code, &gate_message) != 0 &&
			strcmp(gate_code, "no_quorum") == 0;
	buf_printf(out,
		   "# HELP tandem_replication_position Last committed (primary) or applied (secondary) position.\n"
		   "# TYPE tandem_replication_position gauge\n"
		   "tandem_replication_position{region=\"%s\"} %llu\n"
		   "# HELP tandem_replication_epoch The term of the current primary.\n"
		   "# TYPE tandem_replication_epoch gauge\n"
		   "tandem_replication_epoch{region=\"%s\"} %llu\n"
		   "# HELP tandem_replication_lag_positions Positions the secondary is behind.\n"
		   "# TYPE tandem_replication_lag_positions gauge\n"
		   "tandem_replication_lag_positions{region=\"%s\"} %llu\n"
		   "# HELP tandem_replication_lag_seconds Age of the oldest write the secondary lacks.\n"
		   "# TYPE tandem_replication_lag_seconds gauge\n"
		   "tandem_replication_lag_seconds{region=\"%s\"} %.3f\n"
		   "# HELP tandem_replication_applied_total Log entries applied (secondary).\n"
		   "# TYPE tandem_replication_applied_total counter\n"
		   "tandem_replication_applied_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_replication_degraded 1 while the other region is not replicating.\n"
		   "# TYPE tandem_replication_degraded gauge\n"
		   "tandem_replication_degraded{region=\"%s\"} %d\n"
		   "# HELP tandem_backpressure_waits_total Writes slowed down because the secondary lagged past the RPO budget.\n"
		   "# TYPE tandem_backpressure_waits_total counter\n"
		   "tandem_backpressure_waits_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_no_quorum_refusals_total Writes refused or not acknowledged because the primary heard from no other voter for isolation_ms.\n"
		   "# TYPE tandem_no_quorum_refusals_total counter\n"
		   "tandem_no_quorum_refusals_total{region=\"%s\"} %llu\n"
		   "# HELP tandem_no_quorum 1 while this primary refuses writes because it heard from no other voter (isolated).\n"
		   "# TYPE tandem_no_quorum gauge\n"
		   "tandem_no_quorum{region=\"%s\"} %d\n",
		   n, (unsigned long long)r->position, n, (unsigned long long)r->epoch, n,
		   (unsigned long long)lag_pos, n, r->env.peer ? (double)repl_lag_ms(r) / 1000.0 : 0.0, n,
		   (unsigned long long)applier_applied_entries(r), n,
		   r->env.peer && (r->primary ? stream_degraded_since_ms(r) != 0 : !applier_streaming(r)), n,
		   (unsigned long long)atomic_load(&r->backpressure_waits), n,
		   (unsigned long long)atomic_load(&r->no_quorum_refusals), n, no_quorum);
	buf_printf(out,
		   "# HELP tandem_replication_apply_failures_total Stream entries this secondary could not apply (the same entry again: the regions may have diverged).\n"
		   "# TYPE tandem_replication_apply_failures_total counter\n"
		   "tandem_replication_apply_failures_total{region=\"%s\"} %llu\n",
		   n, (unsigned long long)applier_apply_failures(r));
	buf_printf(out,
		   "# HELP tandem_lease_renewals_late_total Lease rounds sent more than lease_ms / 10 after they were due.\n"
		   "# TYPE tandem_lease_renewals_late_total counter\n"
		   "tandem_lease_renewals_late_total{region=\"%s\"} %llu\n",
		   n, (unsigned long long)atomic_load(&r->renewals_late));
	looplag_metrics(r->ctl_lag, out, "tandem_control_loop_lag_seconds",
			"How late the control thread's loop (leases, votes, stream) ran its 50 ms timer.", n);
}

typedef struct metrics_call {
	pthread_mutex_t lock;
	pthread_cond_t done_cond;
	bool done, abandoned;
	repl *r;
	buf out;
} metrics_call;

static void metrics_call_free(metrics_call *mc)
{
	buf_free(&mc->out);
	pthread_cond_destroy(&mc->done_cond);
	pthread_mutex_destroy(&mc->lock);
	free(mc);
}

static void metrics_call_run(void *arg) /* control thread */
{
	metrics_call *mc = arg;
	buf lines;
	buf_init(&lines, 1 << 20);
	repl_metrics_ctl(mc->r, &lines);
	pthread_mutex_lock(&mc->lock);
	if (mc->abandoned) { /* the API side gave up: ours to free */
		pthread_mutex_unlock(&mc->lock);
		buf_free(&lines);
		metrics_call_free(mc);
		return;
	}
	mc->out = lines;
	mc->done = true;
	pthread_cond_signal(&mc->done_cond);
	pthread_mutex_unlock(&mc->lock);
}

/*
 * API thread (the /metrics listener): the forwarding lines here, the
 * control thread's by a bounded synchronous call (post, wait up to
 * REPL_METRICS_WAIT_MS); on timeout or a full mailbox its lines are left
 * out of this scrape and a warning is logged.
 */
void repl_metrics(repl *r, buf *out)
{
	forwarder_metrics(r->fwd, out, r->env.self->name);
	if (!r->thread_running) { /* before the start or after the stop: ours */
		repl_metrics_ctl(r, out);
		return;
	}
	metrics_call *mc = calloc(1, sizeof *mc);
	if (!mc) {
		log_warn("metrics: out of memory; the replication lines are left out");
		return;
	}
	pthread_mutex_init(&mc->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&mc->done_cond, &ca);
	pthread_condattr_destroy(&ca);
	mc->r = r;
	buf_init(&mc->out, 1 << 20);
	if (mailbox_post(r->to_ctl, metrics_call_run, mc) != 0) {
		log_warn("metrics: the control thread's queue is full; the replication lines are left out");
		metrics_call_free(mc);
		return;
	}
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += REPL_METRICS_WAIT_MS / 1000;
	until.tv_nsec += (long)(REPL_METRICS_WAIT_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&mc->lock);
	while (!mc->done) {
		if (pthread_cond_timedwait(&mc->done_cond, &mc->lock, &until) == ETIMEDOUT)
			break;
	}
	if (!mc->done) {
		mc->abandoned = true; /* the control thread frees it when it gets there */
		pthread_mutex_unlock(&mc->lock);
		log_warn("metrics: the control thread did not answer within %d ms; the replication lines are left out",
			 REPL_METRICS_WAIT_MS);
		return;
	}
	pthread_mutex_unlock(&mc->lock);
	buf_add(out, mc->out.data ? mc->out.data : "", mc->out.len);
	metrics_call_free(mc);
}

/* --- verify: a digest per table, at a known position --- */

static const char *const verify_tables[] = {"users", "sessions", "refresh_tokens", "records",
					    "idempotency"};

/* Digest of every replicated table, in one read transaction together with
 * the position it reflects (the role read in the same transaction). */
static int repl_digest(db_conn *conn, const char *region, buf *out)
{
	sqlite3 *db = db_handle(conn);
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return ERR_DB;
	uint64_t pos = 0;
	char role[16];
	uint64_t last = 0, applied = 0;
	if (capture_read_state(conn, role, NULL, &last, &applied) == 0)
		pos = strcmp(role, "primary") == 0 ? last : applied;
	buf_printf(out, "{\"region\":\"%s\",\"position\":%llu,\"tables\":{", region,
		   (unsigned long long)pos);
	for (size_t i = 0; i < sizeof verify_tables / sizeof verify_tables[0]; i++) {
		char *sql = sqlite3_mprintf("SELECT * FROM \"%w\" ORDER BY 1, 2", verify_tables[i]);
		sqlite3_stmt *st = NULL;
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
			EVP_MD_CTX_free(md);
			sqlite3_free(sql);
			(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL); /* a read: nothing to undo */
			return ERR_NOMEM;
		}
		long long rows = 0;
		if (sql && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
			while (sqlite3_step(st) == SQLITE_ROW) {
				rows++;
				int cols = sqlite3_column_count(st);
				for (int c = 0; c < cols; c++) {
					unsigned char type = (unsigned char)sqlite3_column_type(st, c);
					const void *v = sqlite3_column_blob(st, c);
					uint32_t len = (uint32_t)sqlite3_column_bytes(st, c);
					EVP_DigestUpdate(md, &type, 1);
					EVP_DigestUpdate(md, &len, sizeof len);
					if (len)
						EVP_DigestUpdate(md, v, len);
				}
			}
		}
		sqlite3_finalize(st);
		sqlite3_free(sql);
		unsigned char d[32];
		unsigned int dl = 32;
		EVP_DigestFinal_ex(md, d, &dl);
		EVP_MD_CTX_free(md);
		char hex[65];
		util_hex(d, 32, hex);
		buf_printf(out, "%s\"%s\":{\"rows\":%lld,\"sha256\":\"%s\"}", i ? "," : "", verify_tables[i],
			   rows, hex);
	}
	buf_adds(out, "}}");
	/* a read transaction: a failed end means the reads are not known to be
	 * one snapshot, so the digest is not given */
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return ERR_DB;
	}
	return 0;
}

/*
 * The digest reads every table: far too long for the control thread (a
 * lease round could wait behind it). It runs as an exclusive job of the
 * writer thread (alone, outside any batch: the position it reads is the
 * one its data has), and the answer is written when it is done.
 */
typedef struct verify_wait {
	repl *r;
	http_request *req;
	const char *region;
	buf out;
	int rc;
} verify_wait;

static int verify_exec(db_conn *db, void *arg) /* writer thread */
{
	verify_wait *v = arg;
	v->rc = repl_digest(db, v->region, &v->out);
	return 0; /* nothing to keep or roll back: it only read */
}

static void verify_done(void *arg, int rc, uint64_t unused) /* control thread */
{
	verify_wait *v = arg;
	if (rc == 0 && v->rc == 0 && v->out.data)
		repl_answer(v->req, 200, NULL, v->out.data);
	else
		repl_answer(v->req, 500, "internal_error", "cannot compute the digest");
	buf_free(&v->out);
	free(v);
}

static void verify_ready(void *arg, bool ok)
{
	verify_wait *v = arg;
	if (repl_submit_exclusive(v->r, verify_exec, verify_done, v) != 0) {
		repl_answer(v->req, 503, "overloaded", "the writer queue is full; retry shortly");
		buf_free(&v->out);
		free(v);
	}
}

/* --- the link server --- */

static bool peer_is_region(repl *r, const char *peer)
{
	return peer && config_region_find(r->env.cfg, peer) != NULL;
}

static char *query_value(const char *target, const char *name)
{
	const char *q = strchr(target, '?');
	size_t n = strlen(name);
	while (q) {
		q++;
		if (strncmp(q, name, n) == 0 && q[n] == '=') {
			const char *v = q + n + 1;
			size_t len = strcspn(v, "&");
			return strndup(v, len);
		}
		q = strchr(q, '&');
	}
	return NULL;
}

/* --- API requests arriving over the link (writes forwarded to us) ---
 *
 * The link is the control thread's, the API code the API thread's: a
 * request for /v1/ is copied (http_request_detach), the copy handled by
 * env.api_request on the API thread, its answer posted back (never
 * dropped) and written here on the link request. A link connection closed
 * meanwhile discards the answer (the server drops what goes to a closed
 * request). At most REPL_LINK_CALLS_MAX at once: 503 overloaded beyond. */

struct link_call {
	repl *r;
	http_request *req;     /* the link request (control thread); NULL once orphaned */
	http_request *copy;    /* the detached copy (API thread) */
	bool discard;          /* never handed over: the copy's answer is dropped */
	int status;            /* the API's answer; 0: drop the connection */
	buf head, body;
	mailbox_node back;     /* the answer, to the control thread */
	link_call *prev, *next;
};

static void link_call_unlink(repl *r, link_call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else if (r->link_calls == c)
		r->link_calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	r->link_calls_n--;
}

static void link_call_free(link_call *c)
{
	buf_free(&c->head);
	buf_free(&c->body);
	free(c);
}

static void link_call_deliver(void *arg) /* control thread */
{
	link_call *c = arg;
	repl *r = c->r;
	link_call_unlink(r, c);
	if (c->req) {
		if (c->status == 0) {
			http_request_abort(c->req);
		} else {
			if (c->head.len && http_response_header_lines(c->req, c->head.data, c->head.len) != 0)
				log_warn("link: the headers of a forwarded write's answer are too long; sent without them");
			http_respond(c->req, c->status, c->body.data, c->body.len);
		}
	}
	link_call_free(c);
}

/* The API answered the copy (API thread; or the control thread, for a copy
 * never handed over). */
static void link_call_answered(void *arg, int status, const char *head, size_t head_len, const char *body,
			       size_t body_len)
{
	link_call *c = arg;
	if (c->discard)
		return; /* the control thread answered the link request itself */
	c->status = status;
	if (buf_add(&c->head, head, head_len) != 0 || buf_add(&c->body, body, body_len) != 0) {
		log_error("link: out of memory copying a forwarded write's answer; its connection is dropped");
		c->status = 0;
	}
	c->back.fn = link_call_deliver;
	c->back.arg = c;
	mailbox_post_node(c->r->to_ctl, &c->back);
}

static void link_call_run(void *arg) /* API thread */
{
	link_call *c = arg;
	c->r->env.api_request(c->copy, c->r->env.api_arg);
}

/* The copy goes to the API thread (a forwarded write) or, for
 * /internal/v1/objects/, to the object store's thread (env.objects_request). */
static void link_hand_over(repl *r, http_request *req, bool objects)
{
	if (r->link_calls_n >= REPL_LINK_CALLS_MAX) {
		repl_answer(req, 503, "overloaded", "too many forwarded writes in progress here; retry shortly");
		return;
	}
	link_call *c = calloc(1, sizeof *c);
	if (!c) {
		repl_answer(req, 503, "overloaded", "out of memory");
		return;
	}
	c->r = r;
	c->req = req;
	buf_init(&c->head, 256 * 1024);
	buf_init(&c->body, (size_t)64 << 20);
	/* an object segment (1 MiB) moves rather than being copied again */
	c->copy = objects ? http_request_detach_take(req, link_call_answered, c)
			  : http_request_detach(req, link_call_answered, c);
	if (!c->copy) {
		link_call_free(c);
		repl_answer(req, 503, "overloaded", "out of memory");
		return;
	}
	int posted = objects ? r->env.objects_request(c->copy, r->env.objects_arg)
			     : mailbox_post(r->to_api, link_call_run, c);
	if (posted != 0) {
		c->discard = true;
		http_request_abort(c->copy); /* frees the copy; its answer is dropped */
		link_call_free(c);
		repl_answer(req, 503, "overloaded", objects ? "the object store is not serving here"
						   : "the API thread is saturated; retry shortly");
		return;
	}
	c->next = r->link_calls;
	if (r->link_calls)
		r->link_calls->prev = c;
	r->link_calls = c;
	r->link_calls_n++;
}

/* --- test fault: stall the API loop --- */

static void api_stall_run(void *arg) /* API thread: busy, on purpose */
{
	int64_t ms = (int64_t)(intptr_t)arg;
	log_warn("fault: the API loop spins for %lld ms (admin stall)", (long long)ms);
	int64_t until = util_mono_us() + ms * 1000;
	volatile uint64_t spin = 0;
	while (util_mono_us() < until)
		spin++;
}

/* POST /internal/v1/admin/stall {"api_ms": N}: the API loop busy-spins for
 * N ms (1..REPL_STALL_MAX_MS), to show that leases do not depend on it. */
static void link_admin_stall(repl *r, http_request *req)
{
	size_t len;
	const char *body = http_request_body(req, &len);
	json_t *o = json_loadb(body, len, 0, NULL);
	json_t *ms = json_object_get(o, "api_ms");
	long long n = json_is_integer(ms) ? json_integer_value(ms) : -1;
	json_decref(o);
	if (n < 1 || n > REPL_STALL_MAX_MS) {
		repl_answer(req, 400, "bad_request", "body must be {\"api_ms\": 1..30000}");
		return;
	}
	if (mailbox_post(r->to_api, api_stall_run, (void *)(intptr_t)n) != 0) {
		repl_answer(req, 503, "overloaded", "the API thread's queue is full");
		return;
	}
	char json[64];
	snprintf(json, sizeof json, "{\"api_stall_ms\":%lld}", n);
	repl_answer(req, 200, NULL, json);
}

/* Object replication sends segments of object data: a larger body limit
 * on those routes (still bounded: env.objects_body_max). */
static void link_on_head(http_request *req, void *arg)
{
	repl *r = arg;
	const http_message *m = http_request_message(req);
	if (r->env.objects_body_max && strncmp(m->target, "/internal/v1/objects/", 21) == 0)
		http_request_set_body_limit(req, r->env.objects_body_max);
}

static void link_on_request(http_request *req, void *arg)
{
	repl *r = arg;
	const http_message *m = http_request_message(req);
	const char *peer = http_request_peer_name(req);
	bool region_peer = peer_is_region(r, peer);
	bool admin = peer && strcmp(peer, "admin") == 0;
	if (!region_peer && !admin) {
		log_warn("link: refused a peer without a known certificate name");
		repl_answer(req, 403, "forbidden", "unknown peer");
		return;
	}
	if (region_peer && election_isolated(r, peer)) {
		http_request_abort(req); /* fault switch: as if the network dropped it */
		return;
	}
	const char *t = m->target;
	if (strcmp(t, "/internal/v1/lease") == 0 || strcmp(t, "/internal/v1/vote") == 0 ||
	    strcmp(t, "/internal/v1/handover") == 0) {
		if (!region_peer || strcmp(m->method, "POST") != 0) {
			repl_answer(req, region_peer ? 405 : 403, region_peer ? "method_not_allowed" : "forbidden",
				    "voter messages are POSTs between regions");
			return;
		}
		if (t[13] == 'l')
			election_handle_lease(r, req, peer);
		else if (t[13] == 'v')
			election_handle_vote(r, req, peer);
		else
			election_handle_handover(r, req, peer);
		return;
	}
	if (strncmp(t, "/internal/v1/admin/", 19) == 0) {
		if (!admin) {
			repl_answer(req, 403, "forbidden", "admin actions need the admin certificate");
			return;
		}
		if (strcmp(t, "/internal/v1/admin/stall") == 0 && strcmp(m->method, "POST") == 0) {
			link_admin_stall(r, req);
			return;
		}
		election_handle_admin(r, req, peer);
		return;
	}
	if (strcmp(t, "/internal/v1/replication/history") == 0 && strcmp(m->method, "GET") == 0) {
		if (!link_epoch_check(r, req))
			return;
		buf b;
		buf_init(&b, 1 << 16);
		history_json(r, &b);
		repl_answer(req, 200, NULL, b.data);
		buf_free(&b);
		return;
	}
	if (strncmp(t, "/v1/", 4) == 0) {
		if (!region_peer) {
			repl_answer(req, 403, "forbidden", "only regions forward API calls");
			return;
		}
		link_hand_over(r, req, false);
		return;
	}
	if (strncmp(t, "/internal/v1/objects/", 21) == 0) {
		/* object replication (objects/orepl.h): multi-writer, so no
		 * epoch fencing; only regions */
		/* the admin certificate reads digests (tandem verify) and may
		 * start an anti-entropy pass */
		bool admin_ok = admin && (strcmp(m->method, "GET") == 0 ||
					  strcmp(t, "/internal/v1/objects/anti-entropy") == 0);
		if ((!region_peer && !admin_ok) || !r->env.objects_request) {
			repl_answer(req, region_peer || admin_ok ? 503 : 403,
				    region_peer || admin_ok ? "objects_unavailable" : "forbidden",
				    region_peer || admin_ok ? "no object store here" : "only regions replicate objects");
			return;
		}
		link_hand_over(r, req, true);
		return;
	}
	if (strncmp(t, "/internal/v1/replication/stream", 31) == 0 && strcmp(m->method, "GET") == 0) {
		if (!region_peer) {
			repl_answer(req, 403, "forbidden", "only regions stream");
			return;
		}
		stream_handle(r, req, peer);
		return;
	}
	if (strcmp(t, "/internal/v1/replication/snapshot") == 0 && strcmp(m->method, "GET") == 0) {
		if (!region_peer || !r->primary) {
			repl_answer(req, region_peer ? 409 : 403, region_peer ? "not_primary" : "forbidden",
				    "snapshots come from the primary, to regions");
			return;
		}
		snapshot_serve(r, req);
		return;
	}
	if (strcmp(t, "/internal/v1/replication/ack") == 0 && strcmp(m->method, "POST") == 0) {
		if (!region_peer) {
			repl_answer(req, 403, "forbidden", "only regions acknowledge");
			return;
		}
		stream_handle_ack(r, req, peer);
		return;
	}
	if (strcmp(t, "/internal/v1/position") == 0) {
		char json[256];
		snprintf(json, sizeof json, "{\"role\":\"%s\",\"epoch\":%llu,\"position\":%llu}",
			 r->primary ? "primary" : "secondary", (unsigned long long)r->epoch,
			 (unsigned long long)r->position);
		repl_answer(req, 200, NULL, json);
		return;
	}
	if (strcmp(t, "/internal/v1/status") == 0) {
		buf b;
		buf_init(&b, 1 << 16);
		repl_status_json(r, &b);
		repl_answer(req, 200, NULL, b.data);
		buf_free(&b);
		return;
	}
	if (strncmp(t, "/internal/v1/verify", 19) == 0) {
		/* ?at=SEQ: answer once this region has that position; a region
		 * already past it says so (the caller retries at a newer one) */
		char *at = query_value(t, "at");
		uint64_t seq = 0;
		if (at && repl_parse_lsn(at, &seq) != 0) {
			free(at);
			repl_answer(req, 400, "bad_request", "at must be a position");
			return;
		}
		free(at);
		verify_wait *v = calloc(1, sizeof *v);
		if (!v) {
			repl_answer(req, 503, "overloaded", "out of memory");
			return;
		}
		v->r = r;
		v->req = req;
		v->region = r->env.self->name;
		buf_init(&v->out, 1 << 20);
		ctl_wait_position(r, seq, r->env.cfg->replication.min_lsn_wait_ms, verify_ready, v);
		return;
	}
	repl_answer(req, 404, "not_found", "no such link route");
}

/* The control loop's tick (every REPL_CONTROL_TICK_MS, with its lag
 * measured): the view is published even where a publish point was missed,
 * and what the API side posted is absorbed even if its kick was lost. */
static void repl_control_tick(void *arg)
{
	repl *r = arg;
	repl_absorb_api(r);
	repl_view_publish(r);
}

static void *repl_thread_main(void *arg)
{
	repl *r = arg;
	event_base_loop(r->env.base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int repl_parts_new(repl *r)
{
	r->snapshot = snapshot_new();
	r->stream = stream_new();
	r->history = history_new();
	r->applier = applier_new();
	r->election = election_new();
	if (!r->snapshot || !r->stream || !r->history || !r->applier || !r->election) {
		repl_parts_free(r);
		return ERR_NOMEM;
	}
	return 0;
}

void repl_parts_free(repl *r)
{
	snapshot_free(&r->snapshot);
	stream_free(&r->stream);
	history_free(&r->history);
	applier_free(&r->applier);
	election_delete(&r->election);
}

/* Free what repl_new and repl_start made (single-threaded: before the
 * control thread starts or after it was joined). */
static void repl_release(repl *r)
{
	/* link requests still in the API's hands: their answers never come
	 * (the API loop has stopped); they are left to the process' end */
	for (link_call *c = r->link_calls; c; c = c->next)
		c->req = NULL;
	http_server_free(&r->link);
	election_free(r);
	looplag_free(&r->ctl_lag);
	forwarder_free(&r->fwd);
	mailbox_free(&r->to_ctl);
	mailbox_free(&r->to_api);
	loop_queue_free(&r->ctl_done);
	if (r->applier)
		link_delay_flush(r);
	repl_parts_free(r);
	db_close(&r->env.reader);
	if (r->env.base && r->env.base != r->api_base)
		event_base_free(r->env.base);
	pthread_mutex_destroy(&r->view_lock);
	free(r);
}

repl *repl_new(const repl_env *env, char *err, size_t errcap)
{
	repl *r = calloc(1, sizeof *r);
	if (!r) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	r->env = *env;
	r->api_base = env->base;
	r->env.reader = NULL; /* the API thread's: the control thread opens its own */
	pthread_mutex_init(&r->view_lock, NULL);
	/* the control loop; the artificial link delay needs timers more
	 * precise than libevent's default coarse clock */
	struct event_config *ecfg = event_config_new();
	if (ecfg && env->cfg->replication.link_delay_ms > 0)
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	r->env.base = ecfg ? event_base_new_with_config(ecfg) : NULL;
	event_config_free(ecfg);
	if (!r->env.base) {
		snprintf(err, errcap, "cannot create the control thread's event loop");
		goto fail;
	}
	r->env.reader = db_open(env->db_path, true, err, errcap);
	if (!r->env.reader)
		goto fail;
	r->to_ctl = mailbox_new(r->env.base, REPL_TO_CONTROL_MAX);
	r->to_api = mailbox_new(r->api_base, REPL_TO_API_MAX);
	r->ctl_done = loop_queue_new(r->env.base);
	r->fwd = forwarder_new(r);
	if (!r->to_ctl || !r->to_api || !r->ctl_done || !r->fwd || repl_parts_new(r) != 0) {
		snprintf(err, errcap, "out of memory");
		goto fail;
	}
	char role[16];
	uint64_t last = 0, applied = 0;
	if (capture_read_state(r->env.reader, role, &r->epoch, &last, &applied) != 0) {
		snprintf(err, errcap, "cannot read the replication state");
		goto fail;
	}
	r->primary = strcmp(role, "primary") == 0;
	r->position = r->primary ? last : applied;
	if (election_init(r, err, errcap) != 0 || history_load(r) != 0) {
		if (!err[0])
			snprintf(err, errcap, "cannot read the epoch history");
		goto fail;
	}
	capture_set_enabled(env->capture, r->primary);
	int delay = env->cfg->replication.link_delay_ms;
	if (link_delay_init(r, delay) != 0) {
		snprintf(err, errcap, "out of memory");
		goto fail;
	}
	if (delay > 0)
		log_warn("artificial link delay of %d ms each way (for tests and benchmarks only)", delay);
	repl_view_publish(r);
	return r;
fail:
	repl_release(r);
	return NULL;
}

int repl_start(repl *r, char *err, size_t errcap)
{
	if (r->env.self->link_listen[0]) {
		const config_limits *l = &r->env.cfg->limits;
		/* The link serves one peer region (mutual TLS), with long answers:
		 * the stream and snapshots are produced as the socket drains
		 * (max_unsent_bytes per connection); a peer that reads nothing is
		 * given idle_timeout_ms, not the clients' write_timeout_ms, since a
		 * region busy restoring a snapshot may pause reading; its own memory
		 * budget, so an API flood does not refuse the replication stream; a
		 * per-address cap well above the few connections a peer opens, so
		 * one address cannot take all 256 before the peer connects. */
		http_server_config scfg = {
			.limits = {.max_header_bytes = l->max_header_bytes, .max_headers = l->max_headers,
				   .max_body_bytes = l->max_body_bytes, .max_target_bytes = l->max_url_bytes},
			.header_timeout_ms = l->header_timeout_ms,
			.idle_timeout_ms = l->idle_timeout_ms,
			.body_timeout_ms = l->body_timeout_ms,
			.write_timeout_ms = l->idle_timeout_ms,
			.max_unsent_bytes = l->max_unsent_bytes,
			.max_buffered_bytes = l->max_buffered_bytes,
			.max_connections = 256,
			.max_connections_per_address = 64,
			.ssl_ctx = r->env.link_server_ctx,
		};
		http_handlers h = {.on_head = link_on_head, .on_request = link_on_request, .arg = r};
		r->link = http_server_new(r->env.base, &scfg, &h);
		if (!r->link || http_server_listen(r->link, r->env.self->link_listen) != 0) {
			snprintf(err, errcap, "cannot listen on the link address %s", r->env.self->link_listen);
			return ERR_IO;
		}
	}
	if (!r->primary && !r->env.peer) {
		snprintf(err, errcap, "a secondary needs a primary to replicate from");
		return ERR_CONFIG;
	}
	int rc = r->primary ? stream_start(r) : applier_start(r);
	if (rc == 0)
		rc = election_start(r);
	if (rc == 0) {
		r->ctl_lag = looplag_new(r->env.base, REPL_CONTROL_TICK_MS, repl_control_tick, r);
		if (!r->ctl_lag)
			rc = ERR_NOMEM;
	}
	if (rc != 0) {
		snprintf(err, errcap, "cannot start replication: %s", err_str(rc));
		return rc;
	}
	repl_view_publish(r);
	/* everything is set up on the control loop: from here on only the
	 * control thread touches it */
	if (pthread_create(&r->thread, NULL, repl_thread_main, r) != 0) {
		snprintf(err, errcap, "cannot start the control thread");
		return ERR_NOMEM;
	}
	r->thread_running = true;
	return 0;
}

static void repl_link_closed(void *arg)
{
}

/* Control thread (or the only thread left): the graceful stop. */
static void repl_stop_here(repl *r)
{
	r->stopping = true;
	election_stop(r);
	link_delay_flush(r);
	stream_stop(r);
	applier_stop(r);
	waitlist_fail_all(&r->position_waiters);
	stream_fail_waiters(r);
	if (r->link)
		http_server_shutdown(r->link, repl_link_closed, r);
	repl_view_publish(r);
}

typedef struct stop_call {
	repl *r;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	mailbox_node node;
} stop_call;

static void repl_stop_run(void *arg)
{
	stop_call *s = arg;
	repl_stop_here(s->r);
	pthread_mutex_lock(&s->lock);
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void repl_shutdown(repl *r)
{
	if (r->api_stopping)
		return;
	r->api_stopping = true; /* new waits answer false at once */
	if (r->thread_running) {
		/* on the control thread, and waited for: the control thread is
		 * never busy for long (that is its purpose), and the intrusive
		 * node is never refused */
		stop_call s = {.r = r, .done = false};
		pthread_mutex_init(&s.lock, NULL);
		pthread_cond_init(&s.cond, NULL);
		s.node.fn = repl_stop_run;
		s.node.arg = &s;
		mailbox_post_node(r->to_ctl, &s.node);
		pthread_mutex_lock(&s.lock);
		while (!s.done)
			pthread_cond_wait(&s.cond, &s.lock);
		pthread_mutex_unlock(&s.lock);
		pthread_cond_destroy(&s.cond);
		pthread_mutex_destroy(&s.lock);
	} else {
		repl_stop_here(r);
	}
	/* the waits failed by the stop answer now, here (the API loop may not
	 * run again); forwards in flight are answered as their clients go */
	mailbox_run(r->to_api);
	forwarder_free(&r->fwd);
}

void repl_free(repl **pr)
{
	repl *r = *pr;
	if (!r)
		return;
	repl_shutdown(r);
	if (r->thread_running) {
		mailbox_close(r->to_ctl);
		event_base_loopexit(r->env.base, NULL);
		pthread_join(r->thread, NULL);
		r->thread_running = false;
	}
	/* one thread from here: what is still queued either way runs now
	 * (answers of link requests, committer completions of our jobs, the
	 * completions they post) */
	mailbox_run(r->to_ctl);
	loop_queue_run(r->ctl_done);
	mailbox_run(r->to_api);
	mailbox_run(r->to_ctl);
	repl_release(r);
	*pr = NULL;
}
