/*
 * stream.c - the primary's side of replication: stream the log to the
 * secondary, take its acknowledgements, measure its lag, trim the log. Its
 * state (struct repl_stream, below) is this file's alone; the other files
 * use stream.h.
 *
 * A subscriber is one long chunked answer to GET .../stream?from=SEQ. The
 * pump sends log entries from next_seq on, in order, while less than
 * STREAM_OUTPUT_MAX bytes wait in the connection's output (so a slow link
 * holds back reading from the log, not memory); it runs after every commit
 * and on the heartbeat timer, which also sends a heartbeat frame carrying
 * the primary's position and clock.
 *
 * Invariants: entries go out in seq order without gaps (the log is read by
 * seq >= next_seq, and next_seq moves past exactly what was sent); an entry
 * is deleted from the log only once acknowledged (or past the size/age
 * bound, after which the secondary needs a snapshot and is told so: 410).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "failover/rules.h"
#include "replication/internal.h"

#define STREAM_OUTPUT_MAX (4u * 1024 * 1024)
#define STREAM_BATCH_ROWS 256

typedef struct subscriber {
	struct repl *r;
	http_request *req;
	uint64_t next_seq;       /* next log entry to send */
	char peer[72];
	struct subscriber *next;
} subscriber;

/* The primary's replication state (stream.h). */
struct repl_stream {
	subscriber *subs;
	uint64_t acked_seq;          /* the secondary's highest acknowledged position */
	int64_t acked_at_ms;
	int64_t degraded_since_ms;   /* no secondary streaming since (wall ms); 0 = fine */
	waiter *ack_waiters;
	waiter *lag_waiters;
	struct event *heartbeat;
	struct event *trim_timer;
	bool trim_running;
	uint64_t trimmed_through;
};

repl_stream *stream_new(void)
{
	return calloc(1, sizeof(repl_stream));
}

void stream_free(repl_stream **s)
{
	free(*s);
	*s = NULL;
}

uint64_t stream_acked_seq(const repl *r)
{
	return r->stream->acked_seq;
}

bool stream_running(const repl *r)
{
	return r->stream->heartbeat != NULL;
}

bool stream_has_subscriber(const repl *r)
{
	return r->stream->subs != NULL;
}

int64_t stream_degraded_since_ms(const repl *r)
{
	return r->stream->degraded_since_ms;
}

void stream_reset_acks(repl *r)
{
	r->stream->acked_seq = 0;
}

void stream_fail_waiters(repl *r)
{
	waitlist_fail_all(&r->stream->ack_waiters);
	waitlist_fail_all(&r->stream->lag_waiters);
}

/* --- waits on the secondary's acks and lag --- */

void ctl_wait_acked(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	if (seq <= r->stream->acked_seq) {
		cb(arg, true);
		return;
	}
	if (r->stopping) {
		cb(arg, false);
		return;
	}
	waitlist_add(r, &r->stream->ack_waiters, seq, timeout_ms, cb, arg);
}

void ctl_wait_confirmed(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	if (seq > r->stream->acked_seq && (!r->primary || !r->stream->subs)) {
		cb(arg, false);
		return;
	}
	ctl_wait_acked(r, seq, timeout_ms, cb, arg);
}

void ctl_wait_lag(repl *r, int timeout_ms, repl_wait_cb cb, void *arg)
{
	/* only while the secondary is connected: a lost region must not stop
	 * the surviving one from taking writes */
	if (!r->primary || !r->stream->subs || stream_lag_ms(r) <= r->env.cfg->replication.rpo_budget_ms) {
		cb(arg, true);
		return;
	}
	atomic_fetch_add(&r->backpressure_waits, 1);
	waitlist_add(r, &r->stream->lag_waiters, 0, timeout_ms, cb, arg);
}

void stream_status_json(repl *r, buf *out)
{
	repl_stream *st = r->stream;
	uint64_t lag_pos = rules_lag_positions(r->position, st->acked_seq);
	buf_printf(out,
		   "\"last_seq\":%llu,\"applied_seq\":%llu,\"peer_acked_seq\":%llu,"
		   "\"lag\":{\"positions\":%llu,\"seconds\":%.3f},"
		   "\"link\":{\"state\":\"%s\",\"subscribers\":%d},",
		   (unsigned long long)r->position, (unsigned long long)r->position,
		   (unsigned long long)st->acked_seq, (unsigned long long)(r->env.peer ? lag_pos : 0),
		   r->env.peer ? (double)stream_lag_ms(r) / 1000.0 : 0.0,
		   st->subs ? "up" : (r->env.peer ? "down" : "none"), st->subs ? 1 : 0);
	if (st->degraded_since_ms) {
		char iso[32];
		util_iso8601(st->degraded_since_ms, iso);
		buf_printf(out, "\"degraded\":true,\"degraded_since\":\"%s\",", iso);
	} else {
		buf_adds(out, "\"degraded\":false,");
	}
}

/* No stream left: the deployment is degraded from now on. */
static void stream_check_degraded(repl *r)
{
	if (!r->stream->subs && !r->stream->degraded_since_ms && r->env.peer) {
		r->stream->degraded_since_ms = util_now_ms();
		log_warn("degraded: region %s is not replicating (since now)", r->env.peer->name);
	}
}

static void stream_end(repl *r, subscriber *s)
{
	subscriber **pp = &r->stream->subs;
	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (*pp)
		*pp = s->next;
	http_respond_end(s->req);
	log_info("replication stream to %s ended", s->peer);
	free(s);
	stream_check_degraded(r);
	repl_view_publish(r);
}

/* Cut the stream of a peer at once, unanswered (fault switch). */
void stream_drop(repl *r, const char *peer)
{
	subscriber **pp = &r->stream->subs;
	while (*pp) {
		subscriber *s = *pp;
		if (strcmp(s->peer, peer) != 0) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		http_request_abort(s->req);
		log_info("replication stream to %s cut", s->peer);
		free(s);
	}
	stream_check_degraded(r);
	repl_view_publish(r);
}

static void stream_pump(repl *r, subscriber *s);

/* The link drained (or the secondary went away) while entries wait. */
static void stream_drained(http_request *req, void *arg)
{
	subscriber *s = arg;
	if (http_request_is_closed(req))
		stream_end(s->r, s);
	else
		stream_pump(s->r, s);
}

/* Send what the subscriber has not seen, within the output bound (and the
 * connection's max_unsent_bytes); when entries are left over, go on as soon
 * as the link drains rather than at the next commit or heartbeat. */
static void stream_pump(repl *r, subscriber *s)
{
	buf out;
	buf_init(&out, STREAM_OUTPUT_MAX + FRAME_MAX_PAYLOAD + FRAME_HEADER_BYTES);
	while (s->next_seq <= r->position && http_request_output_pending(s->req) < STREAM_OUTPUT_MAX &&
	       http_request_output_room(s->req) > 0) {
		sqlite3_stmt *st = db_stmt(r->env.reader, "SELECT seq, epoch, kind, committed_at, payload "
							  "FROM repl_log WHERE seq >= ?1 ORDER BY seq LIMIT 256");
		if (!st)
			break;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)s->next_seq);
		int sent = 0;
		while (sqlite3_step(st) == SQLITE_ROW) {
			uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
			if (seq != s->next_seq) {
				/* a gap: trimmed under us; the secondary must resync */
				log_warn("replication: entry %llu is gone from the log; the stream to %s ends",
					 (unsigned long long)s->next_seq, s->peer);
				sqlite3_reset(st);
				buf_free(&out);
				stream_end(r, s);
				return;
			}
			int kind = sqlite3_column_int(st, 2);
			int rc = frame_encode(&out, kind == LOG_SCHEMA ? FRAME_SCHEMA : FRAME_CHANGESET,
					      (uint64_t)sqlite3_column_int64(st, 1), seq,
					      sqlite3_column_int64(st, 3), sqlite3_column_blob(st, 4),
					      (uint32_t)sqlite3_column_bytes(st, 4));
			if (rc != 0) {
				/* cannot happen: capture refuses what could not be framed */
				log_error("replication: entry %llu cannot be framed (%s); the stream to %s ends",
					  (unsigned long long)seq, err_str(rc), s->peer);
				sqlite3_reset(st);
				buf_free(&out);
				stream_end(r, s);
				return;
			}
			s->next_seq = seq + 1;
			sent++;
			if (out.len >= STREAM_OUTPUT_MAX)
				break;
		}
		sqlite3_reset(st);
		if (out.len) {
			http_respond_chunk(s->req, out.data, out.len);
			buf_reset(&out);
		}
		if (sent == 0)
			break;
	}
	buf_free(&out);
	if (s->next_seq <= r->position && !http_request_is_closed(s->req))
		http_request_on_drain(s->req, stream_drained, s);
}

void stream_on_committed(repl *r)
{
	subscriber *s = r->stream->subs;
	while (s) {
		subscriber *next = s->next;
		if (http_request_is_closed(s->req))
			stream_end(r, s);
		else
			stream_pump(r, s);
		s = next;
	}
}

/* A heartbeat frame: this primary's epoch and position now. The secondary
 * counts itself fresh as of it once it has applied that position
 * (applier.c freshness_claim). */
static void send_heartbeat(repl *r, subscriber *s, int64_t now)
{
	buf hb;
	buf_init(&hb, 64);
	/* only out of memory can fail it: that heartbeat is skipped
	 * (the next one comes in heartbeat_ms), logged */
	if (frame_encode(&hb, FRAME_HEARTBEAT, r->epoch, r->position, now, NULL, 0) == 0)
		http_respond_chunk(s->req, hb.data, hb.len);
	else
		log_error("replication: out of memory for a heartbeat to %s; skipped", s->peer);
	buf_free(&hb);
}

static void stream_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	repl *r = arg;
	int64_t now = util_now_ms();
	if (election_lease_valid(r)) { /* authoritative now; kept if it steps down */
		r->fresh_mono = voter_clock_ms();
		repl_view_publish(r);
	}
	subscriber *s = r->stream->subs;
	while (s) {
		subscriber *next = s->next;
		if (http_request_is_closed(s->req)) {
			stream_end(r, s);
		} else {
			stream_pump(r, s);
			send_heartbeat(r, s, now);
		}
		s = next;
	}
	/* the lag may have dropped below the budget without a new ack */
	if (stream_lag_ms(r) <= r->env.cfg->replication.rpo_budget_ms)
		waitlist_advance(&r->stream->lag_waiters, UINT64_MAX);
}

/* The epoch a link message carries (X-Tandem-Epoch), 0 if none. */
uint64_t link_request_epoch(http_request *req)
{
	const http_message *m = http_request_message(req);
	for (size_t i = 0; i < m->field_count; i++)
		if (m->fields[i].name_len == 14 && strncasecmp(m->fields[i].name, "x-tandem-epoch", 14) == 0) {
			char v[24];
			long long e;
			snprintf(v, sizeof v, "%.*s", (int)m->fields[i].value_len, m->fields[i].value);
			if (util_parse_int(v, 0, INT64_MAX, &e) == 0)
				return (uint64_t)e;
		}
	return 0;
}

/* Fencing by epoch: a message from an older epoch is refused (409
 * stale_epoch with ours); one from a newer epoch deposes us. True when the
 * message may go on. */
bool link_epoch_check(repl *r, http_request *req)
{
	uint64_t e = link_request_epoch(req);
	if (e > r->epoch) {
		election_learn(r, e);
		return true;
	}
	if (e && e < r->epoch) {
		link_refuse_stale(r, req, e);
		return false;
	}
	return true;
}

void link_refuse_stale(repl *r, http_request *req, uint64_t e)
{
	char json[200];
	snprintf(json, sizeof json,
		 "{\"error\":{\"code\":\"stale_epoch\",\"message\":\"epoch %llu is over: epoch %llu exists\"},"
		 "\"promised_epoch\":%llu}",
		 (unsigned long long)e, (unsigned long long)r->epoch, (unsigned long long)r->epoch);
	http_response_header(req, "Content-Type", "application/json");
	http_respond(req, 409, json, strlen(json));
}

void stream_handle(repl *r, http_request *req, const char *peer)
{
	if (!link_epoch_check(r, req))
		return;
	if (!r->primary) {
		repl_answer(req, 409, "not_primary", "this region is not the primary");
		return;
	}
	const char *t = http_request_message(req)->target;
	const char *from = strstr(t, "from=");
	long long v;
	char num[24] = "";
	if (from)
		snprintf(num, sizeof num, "%.*s", (int)strcspn(from + 5, "&"), from + 5);
	if (!from || util_parse_int(num, 1, INT64_MAX, &v) != 0) {
		repl_answer(req, 400, "bad_request", "from must be a position >= 1");
		return;
	}
	uint64_t from_seq = (uint64_t)v;
	const char *pe = strstr(t, "prev_epoch=");
	if (pe && from_seq > 1) {
		/* the entry before what it asks for must be ours too */
		char ptext[24];
		long long prev;
		snprintf(ptext, sizeof ptext, "%.*s", (int)strcspn(pe + 11, "&"), pe + 11);
		if (util_parse_int(ptext, 0, INT64_MAX, &prev) != 0) {
			repl_answer(req, 400, "bad_request", "prev_epoch must be an epoch");
			return;
		}
		if (from_seq - 1 <= r->position && history_epoch_at(r, from_seq - 1) != (uint64_t)prev) {
			log_warn("replication: %s's entry %llu is from epoch %lld, ours from epoch %llu: it must rejoin",
				 peer, (unsigned long long)(from_seq - 1), prev,
				 (unsigned long long)history_epoch_at(r, from_seq - 1));
			repl_answer(req, 409, "diverged", "the histories part before that position: rejoin first");
			return;
		}
	}
	if (from_seq > r->position + 1) {
		/* the peer has entries we never wrote: histories diverged */
		log_error("replication: %s asks from %llu but the log ends at %llu", peer,
			  (unsigned long long)from_seq, (unsigned long long)r->position);
		repl_answer(req, 409, "diverged", "the secondary is ahead of the primary");
		return;
	}
	if (from_seq <= r->position) {
		sqlite3_stmt *st = db_stmt(r->env.reader, "SELECT min(seq) FROM repl_log");
		uint64_t oldest = 0;
		if (st && sqlite3_step(st) == SQLITE_ROW)
			oldest = (uint64_t)sqlite3_column_int64(st, 0);
		if (st)
			sqlite3_reset(st);
		/* and no gap from there on (a log of an older era was dropped) */
		bool present = false;
		sqlite3_stmt *one = db_stmt(r->env.reader, "SELECT 1 FROM repl_log WHERE seq = ?1");
		if (one) {
			sqlite3_bind_int64(one, 1, (sqlite3_int64)from_seq);
			present = sqlite3_step(one) == SQLITE_ROW;
			sqlite3_reset(one);
		}
		if (oldest == 0 || from_seq < oldest || !present) {
			repl_answer(req, 410, "snapshot_required",
				    "the log no longer holds that position; catch up from a snapshot");
			return;
		}
	}
	subscriber *s = calloc(1, sizeof *s);
	if (!s) {
		repl_answer(req, 503, "overloaded", "out of memory");
		return;
	}
	/* one stream per secondary: a reconnecting peer replaces its old one */
	for (subscriber *o = r->stream->subs; o; o = o->next)
		if (strcmp(o->peer, peer) == 0) {
			stream_end(r, o);
			break;
		}
	s->r = r;
	s->req = req;
	s->next_seq = from_seq;
	snprintf(s->peer, sizeof s->peer, "%s", peer);
	s->next = r->stream->subs;
	r->stream->subs = s;
	repl_view_publish(r);
	if (r->stream->degraded_since_ms) {
		log_info("region %s is replicating again (degraded for %.1f s)", peer,
			 (double)(util_now_ms() - r->stream->degraded_since_ms) / 1000.0);
		r->stream->degraded_since_ms = 0;
	}
	/* what the peer has applied is what it asks after */
	if (from_seq - 1 > r->stream->acked_seq) {
		r->stream->acked_seq = from_seq - 1;
		waitlist_advance(&r->stream->ack_waiters, r->stream->acked_seq);
	}
	log_info("replication stream to %s from %llu", peer, (unsigned long long)from_seq);
	http_response_header(req, "Content-Type", "application/x-tandem-replication");
	http_respond_start(req, 200);
	stream_pump(r, s);
	/* one at once: the secondary is fresh as soon as it has applied what
	 * this primary has now, not a heartbeat period later */
	send_heartbeat(r, s, util_now_ms());
}

/* Delete acknowledged entries, and entries past the size/age bound. */
typedef struct trim_job {
	repl *r;
	uint64_t through;
	int64_t min_time_ms;
	int64_t max_bytes;
} trim_job;

static int trim_exec(db_conn *db, void *arg)
{
	trim_job *t = arg;
	sqlite3_stmt *st = db_stmt(db, "DELETE FROM repl_log WHERE seq <= ?1 OR committed_at < ?2");
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)t->through);
	sqlite3_bind_int64(st, 2, t->min_time_ms);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	/* size bound: keep the newest entries that fit (at least the newest
	 * one, even when it alone is larger) */
	st = db_stmt(db, "DELETE FROM repl_log WHERE seq < (SELECT coalesce(min(seq), (SELECT max(seq) FROM repl_log)) "
			 "FROM (SELECT seq, sum(length(payload)) OVER (ORDER BY seq DESC) AS total FROM repl_log) "
			 "WHERE total <= ?1)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, t->max_bytes);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

static void trim_done(void *arg, int rc, uint64_t seq)
{
	trim_job *t = arg;
	t->r->stream->trim_running = false;
	if (rc == 0)
		t->r->stream->trimmed_through = t->through;
	else /* busy or failing database: nothing deleted, the next tick tries again */
		log_warn("replication: the log trim failed (%s); retried in a second", err_str(rc));
	free(t);
}

static void stream_trim(evutil_socket_t fd, short what, void *arg)
{
	repl *r = arg;
	if (r->stream->trim_running || !r->primary)
		return;
	trim_job *t = calloc(1, sizeof *t);
	if (!t) {
		log_warn("replication: out of memory for the log trim; it runs at the next tick");
		return;
	}
	t->r = r;
	/* with no secondary configured there is nobody to wait for */
	t->through = r->env.peer ? r->stream->acked_seq : r->position;
	t->min_time_ms = util_now_ms() - (int64_t)r->env.cfg->replication.log_max_age_s * 1000;
	t->max_bytes = r->env.cfg->replication.log_max_bytes;
	r->stream->trim_running = true;
	if (repl_submit(r, trim_exec, trim_done, t) != 0) { /* queue full: the next tick tries again */
		r->stream->trim_running = false;
		free(t);
	}
}

void stream_handle_ack(repl *r, http_request *req, const char *peer)
{
	if (!link_epoch_check(r, req))
		return;
	if (!r->primary) {
		repl_answer(req, 409, "not_primary", "this region is not the primary");
		return;
	}
	size_t len;
	const char *body = http_request_body(req, &len);
	json_t *j = json_loadb(body, len, 0, NULL);
	json_t *seq = json_object_get(j, "seq");
	if (!json_is_integer(seq) || json_integer_value(seq) < 0) {
		json_decref(j);
		repl_answer(req, 400, "bad_request", "body must be {\"seq\": N}");
		return;
	}
	uint64_t acked = (uint64_t)json_integer_value(seq);
	json_t *ep = json_object_get(j, "epoch");
	int64_t entry_epoch = json_is_integer(ep) ? (int64_t)json_integer_value(ep) : -1;
	json_decref(j);
	if (acked > r->position) {
		repl_answer(req, 409, "diverged", "acknowledged a position the primary never had");
		return;
	}
	if (entry_epoch >= 0 && acked > 0 && (uint64_t)entry_epoch != history_epoch_at(r, acked)) {
		/* not the same entry: it does not count */
		repl_answer(req, 409, "diverged", "the acknowledged entry is not the primary's");
		return;
	}
	election_heard(r); /* the secondary is there: the isolation gate */
	if (acked > r->stream->acked_seq) {
		r->stream->acked_seq = acked;
		r->stream->acked_at_ms = util_now_ms();
		waitlist_advance(&r->stream->ack_waiters, acked);
		if (stream_lag_ms(r) <= r->env.cfg->replication.rpo_budget_ms)
			waitlist_advance(&r->stream->lag_waiters, UINT64_MAX);
	}
	repl_answer(req, 200, NULL, "{\"ok\":true}");
}

int64_t stream_lag_ms(repl *r)
{
	if (!r->env.peer || r->stream->acked_seq >= r->position)
		return 0;
	sqlite3_stmt *st = db_stmt(r->env.reader, "SELECT committed_at FROM repl_log WHERE seq > ?1 "
						  "ORDER BY seq LIMIT 1");
	if (!st)
		return 0;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)r->stream->acked_seq);
	int64_t lag = 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		lag = util_now_ms() - sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return lag > 0 ? lag : 0;
}

int stream_start(repl *r)
{
	if (r->stream->heartbeat) /* already running */
		return 0;
	int hb = r->env.cfg->replication.heartbeat_ms;
	struct timeval tv = {hb / 1000, (hb % 1000) * 1000};
	r->stream->heartbeat = event_new(r->env.base, -1, EV_PERSIST, stream_heartbeat, r);
	r->stream->trim_timer = event_new(r->env.base, -1, EV_PERSIST, stream_trim, r);
	if (!r->stream->heartbeat || !r->stream->trim_timer) {
		/* never half started: a later call must not see "already running" */
		stream_stop(r);
		return ERR_NOMEM;
	}
	struct timeval one = {1, 0};
	if (evtimer_add(r->stream->heartbeat, &tv) != 0 || evtimer_add(r->stream->trim_timer, &one) != 0) {
		stream_stop(r); /* never half started, as above */
		return ERR_NOMEM;
	}
	if (r->env.peer)
		r->stream->degraded_since_ms = util_now_ms(); /* until the secondary streams */
	return 0;
}

void stream_stop(repl *r)
{
	while (r->stream->subs)
		stream_end(r, r->stream->subs);
	if (r->stream->heartbeat) {
		event_free(r->stream->heartbeat);
		r->stream->heartbeat = NULL;
	}
	if (r->stream->trim_timer) {
		event_free(r->stream->trim_timer);
		r->stream->trim_timer = NULL;
	}
}
