/*
 * applier.c - the secondary's side of replication: stream the primary's
 * log, apply each entry, acknowledge, reconnect (on the control thread;
 * forwarding writes is forward.c's, on the API thread). Its state (struct
 * repl_applier, below) is this file's alone; the other files use applier.h.
 *
 *   DOWN --connect--> STREAMING --stream ends / error--> DOWN (backoff, doubling
 *    ^                    |                                   from reconnect_min_ms
 *    +--------------------+                                   to reconnect_max_ms)
 *
 * Each changeset or schema entry becomes one job for the writer thread,
 * which applies it and records applied_seq in the same transaction (group
 * commit batches several entries into one fsync). A job applies only the
 * entry that directly follows the database's applied_seq, so a crash, a
 * reconnect or a duplicate can neither skip nor repeat an entry; after a
 * restart the stream resumes from applied_seq + 1.
 *
 * Conflicts cannot happen on a faithful replica; if one does (someone wrote
 * to the secondary's database by hand, say), the entry is refused, logged,
 * and streaming stops until an operator acts, rather than diverge silently.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/ratelog.h"
#include "core/util.h"
#include "failover/rules.h"
#include "replication/internal.h"

typedef struct apply_job {
	repl *r;
	int type;
	uint64_t epoch;
	uint64_t seq;
	int64_t time_ms;
	unsigned char *payload;
	uint32_t length;
} apply_job;

typedef struct pending_frame {
	uint64_t seq;
	int64_t time_ms;
	struct pending_frame *next;
} pending_frame;

/* The secondary's replication state (applier.h). */
struct repl_applier {
	http_client *stream_client;
	http_client *control_client; /* acks, position queries, the rejoin's history */
	buf frames;                  /* undecoded stream bytes */
	bool streaming;
	bool apply_failed;
	bool replacing_stream;       /* freeing the stream client on purpose */
	uint64_t stream_generation;  /* bumped at every new stream */
	uint64_t received_seq;       /* last entry handed to the writer */
	int pending_applies;         /* position-moving jobs in the writer queue */
	pending_frame *unapplied, *unapplied_tail; /* received, not yet applied */
	uint64_t primary_seq;        /* from heartbeats */
	int64_t primary_time_ms;
	/* freshness (repl_primary_silence_ms): a heartbeat says the primary
	 * was at claim_seq at claim_mono (voter clock, when it arrived); this
	 * region is as fresh as that only once it has applied claim_seq. The
	 * oldest claim not yet met waits here (claim_mono 0: none), so a
	 * steady lag still moves freshness on, a heartbeat period at a time */
	uint64_t claim_seq;
	int64_t claim_mono;
	int64_t link_down_since_ms;
	int64_t last_contact_ms;
	struct event *reconnect;
	int backoff_ms;
	struct ratelog *connect_log; /* failed link connections, logged once per 10 s per cause */
	bool ack_in_flight;
	uint64_t ack_sent;
	delay_line delay;            /* artificial link delay (tests, benchmarks) */
	uint64_t applied_entries;
	/* an entry that does not apply (a divergence, a damaged database):
	 * the same one again backs off (doubling to reconnect_max_ms) instead
	 * of restarting the stream at once for ever; logged at 1, 2, 4, 8 ...
	 * failures; cleared when it (or a later entry) applies */
	uint64_t fail_seq;
	uint64_t fail_count;
	int fail_rc;
	uint64_t apply_failures;     /* all failed applies (metrics) */
};

repl_applier *applier_new(void)
{
	repl_applier *a = calloc(1, sizeof *a);
	if (a)
		buf_init(&a->frames, (size_t)FRAME_MAX_PAYLOAD + FRAME_HEADER_BYTES + 1);
	return a;
}

void applier_free(repl_applier **pa)
{
	repl_applier *a = *pa;
	if (!a)
		return;
	buf_free(&a->frames);
	ratelog_free(&a->connect_log);
	free(a);
	*pa = NULL;
}

bool applier_running(const repl *r)
{
	return r->applier->reconnect != NULL;
}

int applier_pending(const repl *r)
{
	return r->applier->pending_applies;
}

void applier_hold(repl *r)
{
	r->applier->pending_applies++;
}

void applier_release(repl *r)
{
	r->applier->pending_applies--;
}

http_client *applier_control_client(const repl *r)
{
	return r->applier->control_client;
}

bool applier_streaming(const repl *r)
{
	return r->applier->streaming;
}

uint64_t applier_primary_seq(const repl *r)
{
	return r->applier->primary_seq;
}

uint64_t applier_apply_failures(const repl *r)
{
	return r->applier ? r->applier->apply_failures : 0;
}

uint64_t applier_applied_entries(const repl *r)
{
	return r->applier->applied_entries;
}

void applier_reset_position(repl *r, uint64_t seq)
{
	r->position = seq;
	r->applier->received_seq = seq;
	r->applier->claim_mono = 0; /* a claim of the old history may never be met */
	if (seq > r->applier->primary_seq)
		r->applier->primary_seq = seq;
	repl_view_publish(r);
	repl_position_reached(r);
}

void applier_status_json(repl *r, buf *out)
{
	repl_applier *a = r->applier;
	uint64_t lag_pos = rules_lag_positions(a->primary_seq, r->position);
	buf_printf(out,
		   "\"last_seq\":%llu,\"applied_seq\":%llu,\"primary_seq\":%llu,"
		   "\"lag\":{\"positions\":%llu,\"seconds\":%.3f},\"link\":{\"state\":\"%s\"",
		   (unsigned long long)a->primary_seq, (unsigned long long)r->position,
		   (unsigned long long)a->primary_seq, (unsigned long long)lag_pos,
		   (double)applier_lag_ms(r) / 1000.0, a->streaming ? "up" : "down");
	if (!a->streaming && a->link_down_since_ms) {
		char iso[32];
		util_iso8601(a->link_down_since_ms, iso);
		buf_printf(out, ",\"down_since\":\"%s\"", iso);
	}
	buf_printf(out, "},\"snapshot\":\"");
	const char *snap = snapshot_status(r);
	buf_add_json_escaped(out, snap, strlen(snap));
	buf_printf(out, "\",\"degraded\":%s,", a->streaming ? "false" : "true");
	if (a->fail_count)
		buf_printf(out, "\"apply_error\":{\"seq\":%llu,\"attempts\":%llu,\"error\":\"%s\"},",
			   (unsigned long long)a->fail_seq, (unsigned long long)a->fail_count, err_str(a->fail_rc));
}

/* Arm the reconnect timer ms from now. libevent refuses only without
 * memory; then this secondary does not reconnect until something else arms
 * the timer (a stream end, a restart, a new start), which is logged rather
 * than left silent: a secondary, not serving writes, either way. */
static void applier_arm(repl *r, int64_t ms)
{
	struct timeval tv = util_timeval_ms(ms);
	if (evtimer_add(r->applier->reconnect, &tv) != 0)
		log_error("replication: cannot arm the reconnect timer (out of memory); "
			  "the link stays down until the next event re-arms it");
}

void applier_cut_stream(repl *r)
{
	repl_applier *a = r->applier;
	if (r->primary || !a->reconnect || !a->stream_client)
		return;
	a->replacing_stream = true;
	http_client_free(&a->stream_client);
	a->replacing_stream = false;
	a->streaming = false;
	a->link_down_since_ms = util_now_ms();
	applier_arm(r, 200);
}

static void applier_connect(repl *r);

/* --- the delay line (internal.h) --- */

typedef struct delayed {
	int64_t due_us;
	void (*fn)(void *);
	void *arg;
	struct delayed *next;
} delayed;

static void delay_line_arm(delay_line *l)
{
	if (!l->head)
		return;
	int64_t wait = l->head->due_us - util_mono_us();
	if (wait < 0)
		wait = 0;
	struct timeval tv = {(time_t)(wait / 1000000), (suseconds_t)(wait % 1000000)};
	if (evtimer_add(l->timer, &tv) != 0)
		log_error("link delay: cannot arm its timer (out of memory); what waits in the line goes at "
			  "the next post or at the stop");
}

static void delay_line_fire(evutil_socket_t fd, short what, void *arg)
{
	delay_line *l = arg;
	int64_t now = util_mono_us();
	while (l->head && l->head->due_us <= now) {
		delayed *d = l->head;
		l->head = d->next;
		if (!l->head)
			l->tail = NULL;
		d->fn(d->arg);
		free(d);
	}
	delay_line_arm(l);
}

void delay_line_post(delay_line *l, void (*fn)(void *), void *arg)
{
	delayed *d = l->delay_ms > 0 && !l->stopping && l->timer ? malloc(sizeof *d) : NULL;
	if (!d) {
		fn(arg);
		return;
	}
	d->due_us = util_mono_us() + (int64_t)l->delay_ms * 1000;
	d->fn = fn;
	d->arg = arg;
	d->next = NULL;
	bool was_empty = l->head == NULL;
	if (l->tail)
		l->tail->next = d;
	else
		l->head = d;
	l->tail = d;
	if (was_empty)
		delay_line_arm(l);
}

void delay_line_flush(delay_line *l)
{
	l->stopping = true;
	while (l->head) {
		delayed *d = l->head;
		l->head = d->next;
		if (!l->head)
			l->tail = NULL;
		d->fn(d->arg);
		free(d);
	}
	if (l->timer) {
		event_free(l->timer);
		l->timer = NULL;
	}
}

int delay_line_init(delay_line *l, struct event_base *base, int delay_ms)
{
	*l = (delay_line){.base = base, .delay_ms = delay_ms};
	if (delay_ms <= 0)
		return 0;
	l->timer = evtimer_new(base, delay_line_fire, l);
	return l->timer ? 0 : ERR_NOMEM;
}

void link_delay(repl *r, void (*fn)(void *), void *arg)
{
	if (r->stopping)
		r->applier->delay.stopping = true;
	delay_line_post(&r->applier->delay, fn, arg);
}

/* Shutdown: everything in the line happens now (the callbacks see
 * r->stopping and wind down). */
void link_delay_flush(repl *r)
{
	delay_line_flush(&r->applier->delay);
}

int link_delay_init(repl *r, int delay_ms)
{
	return delay_line_init(&r->applier->delay, r->env.base, delay_ms);
}

/* Drop the stream and connect again soon (deferred: callers may be inside
 * the stream client's own callbacks). */
static void applier_restart(repl *r)
{
	if (r->stopping || !r->applier->reconnect)
		return;
	applier_arm(r, 0);
}

int64_t applier_lag_ms(repl *r)
{
	repl_applier *a = r->applier;
	return rules_applier_lag_ms(util_now_ms(), a->unapplied ? a->unapplied->time_ms : 0, a->streaming,
				    a->link_down_since_ms, a->primary_seq, r->position);
}

static int apply_conflict(void *arg, int reason, sqlite3_changeset_iter *it)
{
	int *conflicts = arg;
	(*conflicts)++;
	return SQLITE_CHANGESET_ABORT;
}

/* Writer thread: apply one entry and move applied_seq, or refuse. */
static int apply_exec(db_conn *db, void *arg)
{
	apply_job *j = arg;
	uint64_t applied = 0;
	if (capture_read_state(db, NULL, NULL, NULL, &applied) != 0)
		return ERR_DB;
	if (j->seq <= applied)
		return ERR_EXISTS; /* a duplicate: already there */
	if (j->seq != applied + 1)
		return ERR_CONFLICT; /* a gap: never apply out of order */
	if (j->type == FRAME_CHANGESET) {
		int conflicts = 0;
		int rc = sqlite3changeset_apply(db_handle(db), (int)j->length, j->payload, NULL,
						apply_conflict, &conflicts);
		if (rc != SQLITE_OK || conflicts) {
			log_error("replication: entry %llu does not apply (%s, %d conflicts)",
				  (unsigned long long)j->seq, sqlite3_errstr(rc), conflicts);
			return ERR_CONFLICT;
		}
	} else {
		int version = (int)((uint32_t)j->payload[0] << 24 | (uint32_t)j->payload[1] << 16 |
				    (uint32_t)j->payload[2] << 8 | j->payload[3]);
		int rc = db_apply_migration(db, version, (const char *)j->payload + 4, j->length - 4);
		if (rc != 0)
			return rc;
	}
	/* the first entry of a newer epoch starts a row of the history */
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO repl_epochs (epoch, first_seq) SELECT ?1, ?2 "
				       "WHERE ?1 > (SELECT coalesce(max(epoch), 0) FROM repl_epochs)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)j->epoch);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)j->seq);
	int hrc = sqlite3_step(st);
	sqlite3_reset(st);
	if (hrc != SQLITE_DONE)
		return ERR_DB;
	st = db_stmt(db, "UPDATE repl_state SET applied_seq = ?1, applied_epoch = ?2, "
			 "last_seq = ?1, epoch = max(epoch, ?2) WHERE id = 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)j->seq);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)j->epoch);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

static void ack_done(int rc, const http_message *resp, const char *body, size_t len, void *arg);

static void applier_ack_out(void *arg)
{
	repl *r = arg;
	char body[96], headers[96];
	/* the ack names the entry (seq and its epoch): the primary counts it
	 * only if its own entry there is the same */
	int n = snprintf(body, sizeof body, "{\"seq\":%llu,\"epoch\":%llu}", (unsigned long long)r->applier->ack_sent,
			 (unsigned long long)history_epoch_at(r, r->applier->ack_sent));
	snprintf(headers, sizeof headers, "Content-Type: application/json\r\nX-Tandem-Epoch: %llu\r\n",
		 (unsigned long long)r->epoch);
	if (r->stopping || !r->applier->control_client || election_isolated(r, r->env.peer->name) ||
	    http_client_request(r->applier->control_client, "POST", "/internal/v1/replication/ack", headers, body,
				(size_t)n, 0, ack_done, r) != 0)
		r->applier->ack_in_flight = false;
}

static void applier_send_ack(repl *r)
{
	if (r->applier->ack_in_flight || r->position <= r->applier->ack_sent || r->stopping)
		return;
	r->applier->ack_in_flight = true;
	r->applier->ack_sent = r->position;
	link_delay(r, applier_ack_out, r);
}

static void ack_retry(evutil_socket_t fd, short what, void *arg)
{
	repl *r = arg;
	r->applier->ack_in_flight = false;
	applier_send_ack(r);
}

static void ack_done(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	repl *r = arg;
	if (rc != 0 || resp->status != 200) {
		/* say it again, after a pause: a link that fails at once (a
		 * refused or locally dropped connection) must not spin */
		r->applier->ack_sent = 0;
		struct timeval tv = {0, 200000};
		if (!r->stopping && event_base_once(r->env.base, -1, EV_TIMEOUT, ack_retry, r, &tv) == 0)
			return; /* still "in flight" until the retry */
	}
	r->applier->ack_in_flight = false;
	applier_send_ack(r);
}

static void applier_schedule(repl *r);

/* A heartbeat's claim (the primary was at seq when it arrived), or the
 * position moved (seq 0, now 0): freshness moves to the claim once what it
 * names is applied. Before, any frame or heartbeat that arrived made the
 * region fresh, so right after a partition healed a secondary answered
 * tokens from its old state while the logouts of the cut were still in
 * its writer queue (CI's ASan run: a logged-out token 200 at us). */
static void freshness_claim(repl *r, uint64_t seq, int64_t now)
{
	repl_applier *a = r->applier;
	if (a->claim_mono && r->position >= a->claim_seq) { /* the waiting claim is met */
		r->fresh_mono = a->claim_mono;
		a->claim_mono = 0;
	}
	if (now && !a->claim_mono) {
		if (r->position >= seq) {
			r->fresh_mono = now;
		} else {
			a->claim_seq = seq;
			a->claim_mono = now;
		}
	}
}

static void apply_done(void *arg, int rc, uint64_t seq)
{
	apply_job *j = arg;
	repl *r = j->r;
	r->applier->pending_applies--;
	/* this entry is no longer waiting to be applied */
	if (r->applier->unapplied && r->applier->unapplied->seq <= j->seq) {
		pending_frame *f = r->applier->unapplied;
		r->applier->unapplied = f->next;
		if (!r->applier->unapplied)
			r->applier->unapplied_tail = NULL;
		free(f);
	}
	if (rc == 0) {
		r->position = j->seq;
		r->applier->applied_entries++;
		freshness_claim(r, 0, 0);
		if (r->applier->fail_count && j->seq >= r->applier->fail_seq) {
			log_info("replication: entry %llu applied after %llu failed attempts",
				 (unsigned long long)j->seq, (unsigned long long)r->applier->fail_count);
			r->applier->fail_count = 0;
			r->applier->fail_seq = 0;
		}
		if (j->epoch > history_last_epoch(r) || history_last_epoch(r) == 0)
			history_add(r, j->epoch, j->seq);
		r->applier->backoff_ms = r->env.cfg->replication.reconnect_min_ms;
		if (j->epoch > r->epoch)
			r->epoch = j->epoch;
		repl_view_publish(r);
		repl_position_reached(r);
		applier_send_ack(r);
	} else if (rc != ERR_EXISTS && !r->applier->apply_failed) {
		repl_applier *a = r->applier;
		a->apply_failed = true;
		a->apply_failures++;
		if (a->fail_count && a->fail_seq == j->seq) {
			a->fail_count++;
		} else {
			a->fail_seq = j->seq;
			a->fail_count = 1;
		}
		a->fail_rc = rc;
		if ((a->fail_count & (a->fail_count - 1)) == 0) /* 1, 2, 4, 8, ... */
			log_error("replication: applying entry %llu failed (%s), %llu time%s; %s",
				  (unsigned long long)j->seq, err_str(rc), (unsigned long long)a->fail_count,
				  a->fail_count == 1 ? "" : "s",
				  a->fail_count == 1 ? "restarting the stream"
						     : "the stream restarts after a backoff (the regions may have diverged: "
						       "see docs/REPLICATION.md, \"An entry that does not apply\")");
		if (a->fail_count == 1) {
			applier_restart(r); /* at once: a busy database, a one-off */
		} else {
			/* the same entry again: not a one-off; back off */
			if (a->stream_client) {
				a->replacing_stream = true;
				http_client_free(&a->stream_client);
				a->replacing_stream = false;
			}
			if (a->streaming) { /* (the stream's end callback may have said so already) */
				a->streaming = false;
				a->link_down_since_ms = util_now_ms();
			}
			applier_schedule(r);
		}
	}
	free(j->payload);
	free(j);
}

/* Decode what arrived; hand complete entries to the writer. */
static void applier_data(void *arg, const char *data, size_t len)
{
	repl *r = arg;
	r->applier->last_contact_ms = util_now_ms();
	if (r->applier->apply_failed)
		return; /* the stream is being restarted */
	if (buf_add(&r->applier->frames, data, len) != 0) {
		log_error("replication: frame buffer overflow; reconnecting");
		buf_reset(&r->applier->frames);
		return;
	}
	size_t off = 0;
	for (;;) {
		frame f;
		size_t used;
		int rc = frame_decode((const unsigned char *)r->applier->frames.data + off, r->applier->frames.len - off, &f, &used);
		if (rc == 0)
			break;
		if (rc < 0) {
			log_error("replication: malformed frame from the primary (%s); reconnecting", err_str(rc));
			buf_reset(&r->applier->frames);
			r->applier->apply_failed = true;
			applier_restart(r);
			return;
		}
		off += used;
		if (f.type == FRAME_HEARTBEAT && f.epoch < r->epoch) {
			/* a deposed primary still streaming: refuse it */
			log_warn("replication: the stream comes from epoch %llu but epoch %llu exists; dropping it",
				 (unsigned long long)f.epoch, (unsigned long long)r->epoch);
			buf_reset(&r->applier->frames);
			r->applier->apply_failed = true;
			history_set_synced(r, false);
			applier_restart(r);
			return;
		}
		if (f.type == FRAME_HEARTBEAT) {
			election_contact(r, f.epoch);
			freshness_claim(r, f.seq, voter_clock_ms()); /* repl_primary_silence_ms */
			if (!r->applier->apply_failed && !r->applier->fail_count)
				r->applier->backoff_ms = r->env.cfg->replication.reconnect_min_ms;
			if (f.seq > r->applier->primary_seq)
				r->applier->primary_seq = f.seq;
			r->applier->primary_time_ms = f.time_ms;
			if (f.epoch > r->epoch)
				r->epoch = f.epoch;
			repl_view_publish(r);
			continue;
		}
		election_contact_now(r); /* received is not applied: freshness waits (freshness_claim) */
		if (f.seq <= r->applier->received_seq)
			continue; /* already have it */
		apply_job *j = calloc(1, sizeof *j);
		pending_frame *pf = calloc(1, sizeof *pf);
		unsigned char *copy = malloc(f.length ? f.length : 1);
		if (!j || !pf || !copy) {
			free(j);
			free(pf);
			free(copy);
			log_error("replication: out of memory; reconnecting");
			r->applier->apply_failed = true;
			applier_restart(r);
			break;
		}
		memcpy(copy, f.payload, f.length);
		*j = (apply_job){r, f.type, f.epoch, f.seq, f.time_ms, copy, f.length};
		pf->seq = f.seq;
		pf->time_ms = f.time_ms;
		if (repl_submit(r, apply_exec, apply_done, j) != 0) {
			free(copy);
			free(j);
			free(pf);
			log_error("replication: the writer queue is full; reconnecting");
			r->applier->apply_failed = true;
			applier_restart(r);
			break;
		}
		if (r->applier->unapplied_tail)
			r->applier->unapplied_tail->next = pf;
		else
			r->applier->unapplied = pf;
		r->applier->unapplied_tail = pf;
		r->applier->pending_applies++;
		r->applier->received_seq = f.seq;
		if (f.seq > r->applier->primary_seq)
			r->applier->primary_seq = f.seq;
	}
	/* keep the undecoded tail */
	if (off) {
		memmove(r->applier->frames.data, r->applier->frames.data + off, r->applier->frames.len - off);
		r->applier->frames.len -= off;
		r->applier->frames.data[r->applier->frames.len] = '\0';
	}
}

/*
 * A connection of the link could not be made: say why, at warn (the
 * operator's first question when a secondary does not catch up or a
 * primary loses its lease), once per 10 s per target and cause, with how
 * many more attempts failed the same way meanwhile.
 */
static void link_connect_failed(void *arg, const http_client *c, const char *why, int sys_errno)
{
	repl *r = arg;
	if (r->stopping)
		return;
	if (!r->applier->connect_log)
		r->applier->connect_log = ratelog_new(10000); /* NULL: every attempt is logged */
	char where[300], cause[512];
	http_client_hostport(c, where, sizeof where);
	snprintf(cause, sizeof cause, "%s %s", where, why);
	unsigned held = 0;
	if (r->applier->connect_log && !ratelog_allow(r->applier->connect_log, cause, util_mono_us() / 1000, &held))
		return;
	if (held)
		log_warn("link: cannot connect to %s at %s: %s (and %u more times since the last report)",
			 http_client_name(c), where, why, held);
	else
		log_warn("link: cannot connect to %s at %s: %s", http_client_name(c), where, why);
}

void link_watch_connections(repl *r, http_client *c)
{
	if (c)
		http_client_on_connect_failed(c, link_connect_failed, r);
}

/* A client to the peer's link (its failed connections are logged). */
static http_client *applier_link_client(repl *r, int timeout_ms, size_t max_body)
{
	return link_client_new(r, r->env.peer->link_listen, r->env.peer->name, timeout_ms, max_body);
}

static void applier_schedule(repl *r)
{
	if (r->stopping)
		return;
	applier_arm(r, r->applier->backoff_ms);
	int max = r->env.cfg->replication.reconnect_max_ms;
	r->applier->backoff_ms = rules_backoff_next(r->applier->backoff_ms, max);
}

static void applier_stream_done(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	repl *r = arg;
	bool replaced = r->applier->replacing_stream;
	if (r->applier->streaming) {
		r->applier->streaming = false;
		r->applier->link_down_since_ms = util_now_ms();
		log_warn("replication link to %s is down (%s)", r->env.peer->name,
			 rc ? err_str(rc) : "stream ended");
	}
	if (rc == 0 && resp && resp->status != 200) {
		log_warn("replication: the primary answered %d: %.*s", resp->status, (int)(len > 200 ? 200 : len), body);
		if (resp->status == 410)
			snapshot_require(r);
		if (resp->status == 409) {
			/* diverged, stale epoch or not the primary: look again first */
			history_set_synced(r, false);
			json_t *o = json_loadb(body, len, 0, NULL);
			json_t *p = json_object_get(o, "promised_epoch");
			if (json_is_integer(p) && json_integer_value(p) > 0)
				election_learn(r, (uint64_t)json_integer_value(p));
			json_decref(o);
		}
	}
	if (!replaced)
		applier_schedule(r);
}

static void applier_stream_head(repl *r)
{
	if (!r->applier->streaming) {
		r->applier->streaming = true;
		/* the backoff is reset by progress (an applied entry or a
		 * heartbeat), not by connecting: a stream that connects and then
		 * fails at once must not reconnect in a tight loop */
		log_info("replication link to %s is up (from %llu)", r->env.peer->name,
			 (unsigned long long)(r->applier->received_seq + 1));
	}
}

typedef struct delayed_data {
	repl *r;
	uint64_t generation;
	size_t len;
	char bytes[];
} delayed_data;

static void applier_delayed_data(void *arg)
{
	delayed_data *d = arg;
	/* bytes of a stream that was replaced meanwhile are stale */
	if (d->generation == d->r->applier->stream_generation && !d->r->stopping)
		applier_data(d->r, d->bytes, d->len);
	free(d);
}

static void applier_on_data(void *arg, const char *data, size_t len)
{
	repl *r = arg;
	applier_stream_head(r);
	if (r->applier->delay.delay_ms <= 0) {
		applier_data(r, data, len);
		return;
	}
	delayed_data *d = malloc(sizeof *d + len);
	if (!d) {
		/* dropping these bytes would cut a frame in two: start over */
		log_error("replication: out of memory delaying stream data; reconnecting");
		r->applier->apply_failed = true;
		applier_restart(r);
		return;
	}
	d->r = r;
	d->generation = r->applier->stream_generation;
	d->len = len;
	memcpy(d->bytes, data, len);
	link_delay(r, applier_delayed_data, d);
}

void applier_resume(repl *r, bool ok)
{
	if (r->stopping || !r->applier->reconnect)
		return; /* stopped meanwhile (a drain, the end): the next start connects */
	if (ok)
		applier_restart(r);
	else
		applier_schedule(r); /* the next attempt, after the backoff */
}

static void rejoin_done(repl *r, bool ok)
{
	if (r->stopping || r->primary || !r->applier->reconnect)
		return;
	if (ok) {
		history_set_synced(r, true);
		r->applier->received_seq = r->position;
		applier_arm(r, 0);
	} else {
		applier_schedule(r);
	}
}

static void applier_connect(repl *r)
{
	if (r->stopping || snapshot_busy(r) || rejoin_running(r) || r->primary)
		return;
	if (election_isolated(r, r->env.peer->name)) { /* fault switch: as if unreachable */
		applier_schedule(r);
		return;
	}
	if (r->applier->pending_applies > 0) { /* let the writer settle first */
		applier_arm(r, 20);
		return;
	}
	if (r->applier->apply_failed) {
		/* resume after the last entry that is really there */
		r->applier->received_seq = r->position;
		r->applier->apply_failed = false;
	}
	if (!history_synced(r) && !snapshot_required(r)) {
		/* first, where do our histories part? (rejoin.c) */
		r->applier->replacing_stream = true;
		http_client_free(&r->applier->stream_client);
		r->applier->replacing_stream = false;
		rejoin_start(r, rejoin_done);
		return;
	}
	if (snapshot_required(r)) {
		/* the primary's log no longer reaches back to us */
		r->applier->replacing_stream = true;
		http_client_free(&r->applier->stream_client);
		r->applier->replacing_stream = false;
		if (snapshot_fetch(r) == 0)
			return;
		applier_schedule(r);
		return;
	}
	buf_reset(&r->applier->frames);
	r->applier->stream_generation++;
	r->applier->claim_mono = 0; /* a new stream's heartbeats make their own claims */
	r->applier->replacing_stream = true; /* its end callback must not schedule again */
	http_client_free(&r->applier->stream_client);
	r->applier->replacing_stream = false;
	const config_replication *p = &r->env.cfg->replication;
	/* inactivity bound: several heartbeats missed means the link is gone */
	int timeout = rules_stream_idle_timeout_ms(p->heartbeat_ms);
	r->applier->stream_client = applier_link_client(r, timeout, 1 << 20);
	char target[128], headers[64];
	snprintf(target, sizeof target, "/internal/v1/replication/stream?from=%llu&prev_epoch=%llu",
		 (unsigned long long)(r->applier->received_seq + 1), (unsigned long long)history_epoch_at(r, r->applier->received_seq));
	snprintf(headers, sizeof headers, "X-Tandem-Epoch: %llu\r\n", (unsigned long long)r->epoch);
	if (!r->applier->stream_client ||
	    http_client_stream(r->applier->stream_client, "GET", target, headers, applier_on_data, applier_stream_done, r) != 0)
		applier_schedule(r);
}

static void applier_reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	applier_connect(arg);
}

int applier_start(repl *r)
{
	if (r->applier->reconnect) /* already running */
		return 0;
	r->applier->control_client = applier_link_client(r, 5000, 64 * 1024 * 1024);
	r->applier->streaming = false;
	r->applier->apply_failed = false;
	r->applier->ack_in_flight = false;
	r->applier->ack_sent = 0;
	r->applier->received_seq = r->position;
	buf_reset(&r->applier->frames);
	r->applier->reconnect = evtimer_new(r->env.base, applier_reconnect_cb, r);
	bool ok = r->applier->control_client && r->applier->reconnect;
	if (!ok) {
		/* never half started: a later call must not see "already running" */
		applier_stop(r);
		return ERR_NOMEM;
	}
	r->applier->backoff_ms = r->env.cfg->replication.reconnect_min_ms;
	r->applier->link_down_since_ms = util_now_ms();
	applier_connect(r);
	return 0;
}

void applier_stop(repl *r)
{
	if (r->applier->reconnect) {
		event_free(r->applier->reconnect);
		r->applier->reconnect = NULL;
	}
	/* detach each client before freeing it: the callbacks of what was
	 * queued run during the free and must not queue anything on it */
	r->applier->replacing_stream = true;
	http_client *c = r->applier->stream_client;
	r->applier->stream_client = NULL;
	http_client_free(&c);
	r->applier->replacing_stream = false;
	r->applier->streaming = false;
	rejoin_forget(r);
	c = r->applier->control_client;
	r->applier->control_client = NULL;
	http_client_free(&c);
	while (r->applier->unapplied) {
		pending_frame *f = r->applier->unapplied;
		r->applier->unapplied = f->next;
		free(f);
	}
	r->applier->unapplied_tail = NULL;
}

/* --- waiting for the primary's position (global reads) --- */

typedef struct global_wait {
	repl *r;
	int timeout_ms;
	repl_wait_cb cb;
	void *arg;
} global_wait;

static void position_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	global_wait *g = arg;
	uint64_t seq = 0;
	bool ok = rc == 0 && resp->status == 200;
	if (ok) {
		const char *p = strstr(body, "\"position\":");
		ok = p && repl_parse_lsn(p + 11, &seq) == 0;
		if (!ok && p) { /* the number ends at '}' */
			char num[24];
			snprintf(num, sizeof num, "%.*s", (int)strcspn(p + 11, "},"), p + 11);
			ok = repl_parse_lsn(num, &seq) == 0;
		}
	}
	if (!ok)
		g->cb(g->arg, false);
	else
		ctl_wait_position(g->r, seq, g->timeout_ms, g->cb, g->arg);
	free(g);
}

void applier_wait_global(repl *r, int timeout_ms, repl_wait_cb cb, void *arg)
{
	if (r->primary) {
		cb(arg, true);
		return;
	}
	global_wait *g = malloc(sizeof *g);
	if (!g || !r->applier->control_client) {
		free(g);
		cb(arg, false);
		return;
	}
	*g = (global_wait){r, timeout_ms, cb, arg};
	if (http_client_request(r->applier->control_client, "GET", "/internal/v1/position", NULL, NULL, 0, 0,
				position_answer, g) != 0) {
		free(g);
		cb(arg, false);
	}
}
