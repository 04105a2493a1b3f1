/*
 * view.c - the API thread's side of replication: every repl_* function the
 * API calls, answered from the published view or posted to the control
 * thread.
 *
 *   control thread                         API thread
 *   state changes -> repl_view_publish --> view (lock) -> gates, getters
 *   waitlists <---- mailbox to_ctl ------- repl_wait_* (a wait_req)
 *   cb(ok) -------- mailbox to_api ------> the caller's cb, exactly once
 *   absorb <------- kick (coalesced) ----- repl_on_committed, learned epochs
 *
 * Gates are decided here, from the view and the voter clock read now, with
 * the codes and messages the API has always given; the lease itself is
 * renewed on the control thread, which a busy API loop cannot delay. A
 * wait's completion runs on the API thread exactly once: reached, timed
 * out, or failed at shutdown; when the control thread cannot take it (its
 * mailbox full or closed) the answer is false at once (a timeout to the
 * caller, which maps it to replication_timeout / not_caught_up).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "failover/rules.h"
#include "replication/internal.h"

/* --- the view --- */

static void view_reset_forwarder(void *arg) /* API thread */
{
	repl *r = arg;
	forwarder_reset(r->fwd);
}

void repl_view_publish(repl *r)
{
	repl_view v = {
		.primary = r->primary,
		.switching = election_switching(r),
		.failover = election_failover_enabled(r),
		.peer_isolated = r->env.peer && election_isolated(r, r->env.peer->name),
		.has_subs = stream_has_subscriber(r),
		.isolation_ms = r->env.cfg->failover.isolation_ms,
		.epoch = r->epoch,
		.promised = election_promised(r),
		.lease_until = election_lease_until(r),
		.heard_mono = election_heard_mono(r),
		.fresh_mono = r->fresh_mono,
	};
	pthread_mutex_lock(&r->view_lock);
	bool became_primary = v.primary && !r->view.primary;
	r->view = v;
	pthread_mutex_unlock(&r->view_lock);
	/* forwards still waiting for the old primary are ended at once (as the
	 * applier's clients are), so their clients retry here now rather than
	 * after forward_timeout_ms (forward.c) */
	if (became_primary && r->to_api && mailbox_post(r->to_api, view_reset_forwarder, r) != 0)
		log_warn("primary now, but the API thread's mailbox is full: forwards still in flight end at "
			 "their timeout (forward_timeout_ms)");
	/* a primary's position also moves on the API thread (each commit):
	 * never back; a secondary's is the control thread's alone (a rejoin
	 * may lower it) */
	if (r->primary) {
		uint64_t p = atomic_load(&r->view_position);
		while (r->position > p && !atomic_compare_exchange_weak(&r->view_position, &p, r->position))
			;
	} else {
		atomic_store(&r->view_position, r->position);
	}
}

void repl_view_read(const repl *cr, repl_view *out)
{
	repl *r = (repl *)cr; /* the lock is the only thing written */
	pthread_mutex_lock(&r->view_lock);
	*out = r->view;
	pthread_mutex_unlock(&r->view_lock);
}

static void atomic_max_u64(_Atomic uint64_t *a, uint64_t v)
{
	uint64_t cur = atomic_load(a);
	while (v > cur && !atomic_compare_exchange_weak(a, &cur, v))
		;
}

/* A forwarded write from a newer epoch deposes this primary: the API stops
 * treating it as primary at once, before the control thread steps down. */
static bool view_primary(repl *r, const repl_view *v)
{
	return v->primary && atomic_load(&r->api_learned) <= v->epoch;
}

static bool view_lease_valid(repl *r, const repl_view *v, int64_t now)
{
	if (!view_primary(r, v))
		return false;
	if (!v->failover)
		return true;
	return now < v->lease_until;
}

static bool view_quorum_heard(const repl_view *v, int64_t now)
{
	if (!v->failover)
		return true; /* no other voter exists */
	return rules_quorum_heard(v->isolation_ms, now, v->heard_mono);
}

/* --- the kick: API -> control, coalesced --- */

static void repl_kick_run(void *arg)
{
	repl *r = arg;
	atomic_store(&r->kick_pending, false); /* before reading: a newer value kicks again */
	repl_absorb_api(r);
}

static void repl_kick(repl *r)
{
	if (!r->to_ctl || atomic_exchange(&r->kick_pending, true))
		return;
	r->kick.fn = repl_kick_run;
	r->kick.arg = r;
	mailbox_post_node(r->to_ctl, &r->kick);
}

void repl_absorb_api(repl *r)
{
	uint64_t committed = atomic_exchange(&r->api_committed, 0);
	if (committed > r->position) {
		r->position = committed;
		repl_view_publish(r);
	}
	if (committed) {
		waitlist_advance(&r->position_waiters, r->position);
		stream_on_committed(r);
	}
	/* no role change once stopping: the writer may be gone already */
	uint64_t learned = atomic_load(&r->api_learned);
	if (!r->stopping && (learned > r->epoch || learned > election_promised(r))) {
		election_learn(r, learned);
		repl_view_publish(r);
	}
}

void repl_on_committed(repl *r, uint64_t seq)
{
	atomic_max_u64(&r->view_position, seq); /* read-your-writes on this thread at once */
	atomic_max_u64(&r->api_committed, seq);
	repl_kick(r);
}

void repl_learn_epoch(repl *r, uint64_t e)
{
	repl_view v;
	repl_view_read(r, &v);
	if (e <= v.epoch && e <= v.promised)
		return;
	atomic_max_u64(&r->api_learned, e);
	repl_kick(r);
}

bool repl_forwarded_epoch_ok(repl *r, uint64_t e)
{
	repl_view v;
	repl_view_read(r, &v);
	if (e > v.epoch)
		repl_learn_epoch(r, e);
	/* only a primary refuses: a candidate answers not_primary anyway, and
	 * its mere promise must not spread (it would block its own votes) */
	return e == 0 || !v.primary || e >= v.epoch;
}

/* --- getters and gates --- */

bool repl_is_primary(const repl *cr)
{
	repl *r = (repl *)cr;
	repl_view v;
	repl_view_read(r, &v);
	return view_primary(r, &v);
}

uint64_t repl_epoch(const repl *r)
{
	repl_view v;
	repl_view_read(r, &v);
	return v.epoch;
}

uint64_t repl_position(const repl *cr)
{
	repl *r = (repl *)cr;
	return atomic_load(&r->view_position);
}

uint64_t repl_promised_epoch(const repl *r)
{
	repl_view v;
	repl_view_read(r, &v);
	return v.promised > v.epoch ? v.promised : v.epoch;
}

bool repl_lease_valid(repl *r)
{
	repl_view v;
	repl_view_read(r, &v);
	return view_lease_valid(r, &v, voter_clock_ms());
}

int64_t repl_primary_silence_ms(repl *r)
{
	repl_view v;
	repl_view_read(r, &v);
	int64_t now = voter_clock_ms();
	if (view_lease_valid(r, &v, now))
		return 0;
	if (!v.fresh_mono)
		return INT64_MAX;
	int64_t d = now - v.fresh_mono;
	return d > 0 ? d : 0;
}

/* The write gate; count: a refusal for no_quorum is counted (metrics). */
static int write_gate(repl *r, bool after_commit, bool count, const char **code, const char **message)
{
	repl_view v;
	repl_view_read(r, &v);
	int64_t now = voter_clock_ms();
	if (!after_commit && v.switching) {
		*code = "switchover_in_progress";
		*message = "the primary is moving to the other region; retry shortly";
		return ERR_AGAIN;
	}
	if (!view_lease_valid(r, &v, now)) {
		*code = "no_lease";
		*message = "this region cannot confirm it is still the primary (no lease from a majority); "
			   "retry shortly";
		return ERR_AGAIN;
	}
	if (!view_quorum_heard(&v, now)) {
		if (count)
			atomic_fetch_add(&r->no_quorum_refusals, 1);
		*code = "no_quorum";
		*message = "this region has heard from neither the other region nor the witness lately: it may "
			   "be cut off, and a write it took might be lost; retry shortly";
		return ERR_AGAIN;
	}
	return 0;
}

int repl_write_gate(repl *r, const char **code, const char **message)
{
	return write_gate(r, false, true, code, message);
}

int repl_write_gate_peek(repl *r, const char **code, const char **message)
{
	return write_gate(r, false, false, code, message);
}

int repl_ack_gate(repl *r, const char **code, const char **message)
{
	return write_gate(r, true, true, code, message);
}

void repl_write_started(repl *r)
{
	atomic_fetch_add(&r->writes_in_flight, 1);
	/* the count is visible before the caller reads the view (its gate);
	 * switchover_check publishes the view, fences, then reads the count */
	atomic_thread_fence(memory_order_seq_cst);
}

void repl_write_finished(repl *r)
{
	int n = atomic_load(&r->writes_in_flight);
	while (n > 0 && !atomic_compare_exchange_weak(&r->writes_in_flight, &n, n - 1))
		;
}

/* --- waits: posted to the control thread, answered on the API thread --- */

enum { WAIT_POSITION, WAIT_ACKED, WAIT_CONFIRMED, WAIT_LAG, WAIT_GLOBAL };

typedef struct wait_req {
	repl *r;
	int kind;
	uint64_t seq;
	int timeout_ms;
	repl_wait_cb cb;
	void *arg;
	bool ok;
	mailbox_node done;  /* the answer's way back: never refused */
} wait_req;

static void wait_req_answer(void *arg) /* API thread */
{
	wait_req *w = arg;
	repl_wait_cb cb = w->cb;
	void *cb_arg = w->arg;
	bool ok = w->ok;
	free(w);
	cb(cb_arg, ok);
}

static void wait_req_done(void *arg, bool ok) /* control thread */
{
	wait_req *w = arg;
	w->ok = ok;
	w->done.fn = wait_req_answer;
	w->done.arg = w;
	mailbox_post_node(w->r->to_api, &w->done);
}

static void wait_req_start(void *arg) /* control thread */
{
	wait_req *w = arg;
	repl *r = w->r;
	switch (w->kind) {
	case WAIT_POSITION:
		ctl_wait_position(r, w->seq, w->timeout_ms, wait_req_done, w);
		break;
	case WAIT_ACKED:
		ctl_wait_acked(r, w->seq, w->timeout_ms, wait_req_done, w);
		break;
	case WAIT_CONFIRMED:
		ctl_wait_confirmed(r, w->seq, w->timeout_ms, wait_req_done, w);
		break;
	case WAIT_LAG:
		ctl_wait_lag(r, w->timeout_ms, wait_req_done, w);
		break;
	default:
		applier_wait_global(r, w->timeout_ms, wait_req_done, w);
		break;
	}
}

static void wait_post(repl *r, int kind, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	wait_req *w = calloc(1, sizeof *w);
	if (!w) {
		cb(arg, false);
		return;
	}
	*w = (wait_req){.r = r, .kind = kind, .seq = seq, .timeout_ms = timeout_ms, .cb = cb, .arg = arg};
	if (!r->to_ctl || r->api_stopping || mailbox_post(r->to_ctl, wait_req_start, w) != 0) {
		free(w);
		cb(arg, false); /* the control thread is saturated or gone: a timeout */
	}
}

void repl_wait_position(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	if (seq <= repl_position(r)) {
		cb(arg, true);
		return;
	}
	if (timeout_ms <= 0) {
		cb(arg, false);
		return;
	}
	wait_post(r, WAIT_POSITION, seq, timeout_ms, cb, arg);
}

void repl_wait_acked(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	wait_post(r, WAIT_ACKED, seq, timeout_ms, cb, arg);
}

void repl_wait_confirmed(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg)
{
	wait_post(r, WAIT_CONFIRMED, seq, timeout_ms, cb, arg);
}

void repl_wait_lag(repl *r, int timeout_ms, repl_wait_cb cb, void *arg)
{
	repl_view v;
	repl_view_read(r, &v);
	/* only while the secondary is connected (as the control side checks
	 * again): most writes need no hop to the control thread */
	if (!v.primary || !v.has_subs) {
		cb(arg, true);
		return;
	}
	wait_post(r, WAIT_LAG, 0, timeout_ms, cb, arg);
}

void repl_wait_global(repl *r, int timeout_ms, repl_wait_cb cb, void *arg)
{
	repl_view v;
	repl_view_read(r, &v);
	if (v.primary) {
		cb(arg, true);
		return;
	}
	wait_post(r, WAIT_GLOBAL, 0, timeout_ms, cb, arg);
}
