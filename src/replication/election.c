/*
 * election.c - who may accept writes: leases, elections, role changes,
 * planned switchover, forced failover, and the fault switch. The protocol
 * and its proof are in docs/FAILOVER.md; the rules themselves are in
 * failover/voter.c, shared with the witness.
 *
 *   primary:   every renew_ms: own grant (voter rule), then LeaseRequest to
 *              the peer region and the witness; a grant from either makes a
 *              majority; the lease runs until t_send + L(1-rho) - m_p on the
 *              voter clock. Writes only while it runs (repl_write_gate).
 *   secondary: no message from a valid primary for election_timeout_ms:
 *              pre-vote (nothing changes anywhere unless a majority would
 *              vote), drain the applier, own vote, Vote to the others; one
 *              grant makes it primary of the new epoch.
 *
 *   isolation: a primary that has heard from no other voter (a lease
 *              answer from the peer or the witness, a stream ack from the
 *              secondary) for isolation_ms refuses writes (no_quorum) long
 *              before its lease runs out; when nothing else is heard it
 *              sends its lease round early, every isolation_ms / 2, as a
 *              probe. The gate only ever withholds acknowledgements: the
 *              lease alone carries the safety argument.
 *
 * Without a [witness] in the config there are two voters only: no
 * automatic failover, the primary keeps its role and needs no lease (the
 * v1 behaviour), and switchover/failover are refused: the state stays the
 * one read from the database (FOLLOWER or PRIMARY).
 *
 * THE STATE. Everything here is struct repl_election, defined below and
 * reached by the other files only through election.h. Its state (enum
 * election_state, election.h) changes in election_set() only, which logs
 * every transition at info (event "election": from, to, epoch, why),
 * refuses an edge that is not drawn here (logged as a bug at error; the
 * state stays: never a crash) and derives r->primary (PRIMARY or
 * SWITCHING, shared in struct repl) and switching (SWITCHING,
 * election_switching()), which the write gate and the other replication
 * files read.
 *
 *                         (a) pre-vote refused, out of memory
 *            +<-------------------------------------------+
 *            |                                            |
 *            |           (1) stand                +---------------+  (3) a majority
 *            |  ------------------------------->  | PRE_CANDIDATE |  ----------+  would vote
 *            |                                    +---------------+            |
 *            |                                                                 v
 *      +-----------+     (2) stand --force                              +------------+
 *      |           |  ------------------------------------------------> |  DRAINING  |
 *      |           |  <------------------------------------------------ |            |
 *      |           |     (b) own vote refused                           +------------+
 *      |           |                                                          | (4) writer queue
 *      |           |     (c) no majority, out of memory                       v     empty, own vote
 *      |           |  <------------------------------------------------ +------------+
 *      | FOLLOWER  |                                                    | CANDIDATE  |
 *      |           |     (d) role not recorded, stopping                +------------+
 *      |           |  <-------------------------------------+                 | (5) a majority voted
 *      |           |                                        |                 v
 *      |           |                                        +-------------+------------+
 *      |           |                                                      | PROMOTING  |
 *      |           |     (e) step-down without a role job                 +------------+
 *      |           |  <------------------------------+                          | (6) role recorded
 *      |           |                                 |                          v
 *      |           |     (11)    +------------+      |     (9) step-down  +------------+  (7)   +-----------+
 *      |           |  <--------- |  DEMOTING  | <----+------------------- |  PRIMARY   | -----> | SWITCHING |
 *      +-----------+             |            |                           |            | <----- |           |
 *                                +------------+ <------+                  +------------+  (8)   +-----------+
 *                                                      |   (10) caught up: step down, hand over       |
 *                                                      +----------------------------------------------+
 *                                (9) and (e) leave SWITCHING as they leave PRIMARY
 *
 *   (1)  stand()            no message from a valid primary for election_timeout_ms (tick_cb),
 *                           a handover that released our grant (election_handle_handover),
 *                           POST /internal/v1/admin/failover without --force
 *   (2)  stand()            the same with --force: no pre-vote (the voters' grants bind)
 *   (3)  round_finished()   pre-vote: a majority (own + one) would vote; applier_stop
 *   (4)  cast_votes()       pending_applies == 0 (tick_cb), own vote granted by the voter rule
 *   (5)  round_finished()   vote: own + one grant (a forced vote waits for every answer)
 *   (6)  role_done()        role, epoch and history row (E', S+1) committed; stream_start
 *   (7)  election_handle_admin()  POST /internal/v1/admin/switchover on a primary with a lease
 *   (8)  switchover_check() the target did not catch up within switchover_timeout_ms
 *   (9)  step_down()        a newer epoch (a lease refusal, a vote granted, a forced vote, a
 *                           lease request or a message of it: election_learn), the stream
 *                           cannot start; writes stop here, before the role is written
 *   (10) switchover_check() the target acked every position: step_down(handover)
 *   (11) role_done()        the demotion committed (or failed: it stands anyway); follow(),
 *                           then the handover is sent for (10)
 *   (a)  round_finished()   pre-vote: no majority would vote (refusals, no answer); stand():
 *                           no memory for the round
 *   (b)  cast_votes()       own vote refused (a newer promise, a binding grant), no memory
 *   (c)  stand_abort()      vote round without a majority (round_finished), no memory
 *   (d)  role_done()        the promotion could not be committed (ERR_DB, ERR_AGAIN: busy,
 *                           full queue) or the region is stopping; it follows again
 *   (e)  step_down()        neither a role job nor the reserve (cannot happen: one step-down
 *                           at a time, and the reserve comes back): follows, unrecorded
 *   At start the state is read from the database role (repl_new, election_init): PRIMARY or
 *   FOLLOWER; a crash loses every other state, as the model's "crash and restart".
 *
 * Lease expiry is no transition: a PRIMARY whose lease ran out (lease_timer_cb,
 * "what happens when the lease expires") or that heard no other voter for
 * isolation_ms (quorum_heard) stays PRIMARY and refuses writes (write_gate:
 * no_lease, no_quorum) until a renewal succeeds, or steps down (9) when a
 * voter tells it of a newer epoch.
 *
 * MAPPING TO model/failover.pml (proctype region(me); the options of its do
 * loop are named by their comments, the inlines by name):
 *
 *   state          model state of region me
 *   FOLLOWER       role[me] == SECONDARY && cand[me] == 0
 *   PRE_CANDIDATE  the same: a pre-vote changes no state (not modelled: FAILOVER.md)
 *   DRAINING       the same; the applier no longer takes the FRAME branch of region_receive
 *   CANDIDATE      role[me] == SECONDARY && cand[me] == m_e, promised[me] == cand[me]
 *   PROMOTING      the same (vote_reply() has not taken effect yet: a lost reply)
 *   PRIMARY        role[me] == PRIMARY, epoch[me] == promised[me]; writes need
 *                  ACCEPTING(me) && HEARD(me) (lease[me] > 0, heard[me] > 0)
 *   SWITCHING      role[me] == PRIMARY, not taking the "a write" option
 *   DEMOTING       role[me] == SECONDARY, epoch[me] == 0, lease[me] == 0, heard[me] == 0
 *
 *   edge           model step
 *   (1)(2)(3)      no model step: a pre-vote and stopping the applier change no
 *                  state the model has (role, cand, promised, lease, log)
 *   (4)            "stand for election, for any higher epoch, at any moment": promised[me] =
 *                  cand[me] = m_e under SELF_VOTE_OK(me), VREQ to 1 - me and W; a forced
 *                  one is the same option with x_force (-DFORCE)
 *   (5)(6)         vote_reply(): role[m_f] = PRIMARY, epoch[m_f] = m_e, heard[m_f] = ISO_TICKS
 *   (a)            no model step (as (1)); (b) the option's guard fails ("else -> skip")
 *   (c)(d)         a lost vote reply: cand[me] stays until learn() resets it
 *   (7)(8)         no state change: a primary may skip the "a write" option
 *   (9)            learn(v) ("steps down: epoch %d exists"), or the "step down" option's
 *                  silent branch ("steps down (epoch %d)")
 *   (10)           the "step down" option's handover branch (gholder[me] = NONE,
 *                  send(1 - me, HOVER, ...)); at the target: region_receive's HOVER branch
 *   (11)(e)        the same option: role[me] = SECONDARY in one atomic step (the C
 *                  stops writing first and records after, which the model's one step covers)
 *   restart        "crash and restart": lease, cand, heard lost; role from the database
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "failover/ballot.h"
#include "failover/history.h"
#include "failover/rules.h"
#include "replication/internal.h"

#define TICK_MS 50

/* The election's state (election.h). */
struct repl_election {
	voter *voter;
	char boot_id[33];
	const char *witness_addr;       /* "" = no witness */
	char source_host[64];           /* bind outgoing link connections here, or "" */
	http_client *to_peer, *to_witness; /* lease requests and votes */
	bool peer_busy, witness_busy;   /* a request in flight on each */
	struct event *tick;             /* every TICK_MS */
	struct event *lease_timer;      /* fires when the lease ends */
	int64_t lease_until;            /* voter_clock_ms; writes only before it */
	bool writes_on;                 /* as last logged */
	int64_t next_renew;
	int64_t last_renew;             /* when the last lease round was sent (voter clock) */
	int64_t heard_mono;             /* primary: last answer from another voter (voter clock) */
	uint64_t round;                 /* lease rounds and elections, to drop stale replies */
	int64_t contact_mono;           /* last message from a valid primary (voter clock) */
	election_state state;           /* changed by election_set() only */
	bool switching;                 /* derived: state SWITCHING (election_set only) */
	bool stand_force, stand_now;    /* forced failover; skip the pre-vote */
	uint64_t stand_epoch;
	int64_t next_stand;
	uint64_t handover_epoch;        /* a handover (of this epoch) came while a round of ours was in
					   flight: stand again once it ends (tick_cb; 0: none) */
	void *role_reserve;             /* a role job kept for a step-down without memory */
	bool follow_failed;             /* secondary: the applier could not start; the tick retries */
	int64_t switch_deadline;
	char switch_to[32];
	http_request *admin_req;        /* a switchover or failover waiting for its outcome */
	char isolated[4][32];           /* fault switch: peers cut off */
	int nisolated;
	uint64_t elections_won, step_downs, leases_lost;
};

repl_election *election_new(void)
{
	repl_election *e = calloc(1, sizeof *e);
	if (e)
		e->witness_addr = ""; /* failover off until election_init reads the config */
	return e;
}

void election_delete(repl_election **e)
{
	free(*e);
	*e = NULL;
}

bool election_switching(const repl *r)
{
	return r->election->switching;
}

uint64_t election_promised(const repl *r)
{
	return r->election->voter ? voter_promised(r->election->voter) : 0;
}

int64_t election_lease_until(const repl *r)
{
	return r->election->lease_until;
}

int64_t election_heard_mono(const repl *r)
{
	return r->election->heard_mono;
}

const char *election_source_host(const repl *r)
{
	return r->election->source_host;
}

static void stand(repl *r);
static void lease_renew(repl *r);
static void step_down(repl *r, uint64_t epoch, const char *why, bool handover);

static bool failover_enabled(const repl *r)
{
	return r->env.peer && r->election->witness_addr[0];
}

/* --- the state machine (the diagram above) --- */

#define EDGE(s) (1u << (s))

static const char *const state_names[ELECTION_STATES] = {
	[ELECTION_FOLLOWER] = "follower",   [ELECTION_PRE_CANDIDATE] = "pre_candidate",
	[ELECTION_DRAINING] = "draining",   [ELECTION_CANDIDATE] = "candidate",
	[ELECTION_PROMOTING] = "promoting", [ELECTION_PRIMARY] = "primary",
	[ELECTION_SWITCHING] = "switching", [ELECTION_DEMOTING] = "demoting",
};

/* For each state, the states it may go to: the edges of the diagram. */
static const unsigned state_edges[ELECTION_STATES] = {
	[ELECTION_FOLLOWER] = EDGE(ELECTION_PRE_CANDIDATE) | EDGE(ELECTION_DRAINING),        /* (1) (2) */
	[ELECTION_PRE_CANDIDATE] = EDGE(ELECTION_DRAINING) | EDGE(ELECTION_FOLLOWER),        /* (3) (a) */
	[ELECTION_DRAINING] = EDGE(ELECTION_CANDIDATE) | EDGE(ELECTION_FOLLOWER),            /* (4) (b) */
	[ELECTION_CANDIDATE] = EDGE(ELECTION_PROMOTING) | EDGE(ELECTION_FOLLOWER),           /* (5) (c) */
	[ELECTION_PROMOTING] = EDGE(ELECTION_PRIMARY) | EDGE(ELECTION_FOLLOWER),             /* (6) (d) */
	[ELECTION_PRIMARY] = EDGE(ELECTION_SWITCHING) | EDGE(ELECTION_DEMOTING) |
			     EDGE(ELECTION_FOLLOWER),                                        /* (7) (9) (e) */
	[ELECTION_SWITCHING] = EDGE(ELECTION_PRIMARY) | EDGE(ELECTION_DEMOTING) |
			       EDGE(ELECTION_FOLLOWER),                                      /* (8) (9,10) (e) */
	[ELECTION_DEMOTING] = EDGE(ELECTION_FOLLOWER),                                       /* (11) */
};

const char *election_state_name(election_state s)
{
	return (unsigned)s < ELECTION_STATES ? state_names[s] : "invalid";
}

/* May the election go from `from` to `to`? Only along the diagram's edges. */
static bool state_edge(election_state from, election_state to)
{
	return (unsigned)from < ELECTION_STATES && (unsigned)to < ELECTION_STATES &&
	       (state_edges[from] & EDGE(to)) != 0;
}

/*
 * The one function that changes r->election->state. Logs the transition at info
 * (from, to, epoch, why) and derives r->primary and r->election->switching from the
 * new state. An edge the diagram does not have is a bug in this file: it
 * is logged at error and refused, the state (and everything derived from
 * it) left as it was, and ERR_CONFLICT returned, so that the caller does
 * not go on as if it had moved. Never aborts: a refused transition keeps
 * the region in a state it already was in, which the write gate handles.
 */
static int election_set(repl *r, election_state to, const char *why)
{
	election_state from = r->election->state;
	if (!state_edge(from, to)) {
		log_error("election: transition %s -> %s (%s) is not in the state diagram: a bug; staying %s",
			  election_state_name(from), election_state_name(to), why, election_state_name(from));
		return ERR_CONFLICT;
	}
	r->election->state = to;
	r->primary = to == ELECTION_PRIMARY || to == ELECTION_SWITCHING;
	if (r->primary)
		r->election->handover_epoch = 0; /* elected: the deferred stand has happened */
	r->election->switching = to == ELECTION_SWITCHING;
	repl_view_publish(r); /* role and switchover are in the API thread's view */
	char f[128];
	snprintf(f, sizeof f, "\"from\":\"%s\",\"to\":\"%s\",\"epoch\":%llu", election_state_name(from),
		 election_state_name(to), (unsigned long long)r->epoch);
	log_event(LOG_INFO, "election", f, "election: %s -> %s in epoch %llu: %s", election_state_name(from),
		  election_state_name(to), (unsigned long long)r->epoch, why);
	return 0;
}

/* Standing for election in any of its steps (admin requests are refused as
 * busy, status "standing"). */
static bool standing(const repl *r)
{
	return r->election->state == ELECTION_PRE_CANDIDATE || r->election->state == ELECTION_DRAINING ||
	       r->election->state == ELECTION_CANDIDATE || r->election->state == ELECTION_PROMOTING;
}

static const char *self_name(const repl *r)
{
	return r->env.self->name;
}

bool election_isolated(const repl *r, const char *peer)
{
	for (int i = 0; peer && i < r->election->nisolated; i++)
		if (strcmp(r->election->isolated[i], peer) == 0)
			return true;
	return false;
}

http_client *link_client_new(repl *r, const char *hostport, const char *sni, int timeout_ms, size_t max_body)
{
	char host[64];
	int port;
	if (util_split_hostport(hostport, host, sizeof host, &port) != 0)
		return NULL;
	http_limits limits = {16384, 100, max_body, 0};
	http_client *c = http_client_new(r->env.base, r->env.link_client_ctx, host, port, sni, &limits, timeout_ms);
	if (c && r->election->source_host[0])
		http_client_set_source(c, r->election->source_host);
	link_watch_connections(r, c); /* failed connections are logged (rate-limited) */
	return c;
}

/* --- the lease and what is logged of it --- */

static bool lease_valid(const repl *r)
{
	if (!r->primary)
		return false;
	if (!failover_enabled(r))
		return true;
	return voter_clock_ms() < r->election->lease_until;
}

/* Has this primary heard from another voter within isolation_ms? Always
 * true without failover (no other voter exists) or with the gate off. */
static bool quorum_heard(const repl *r, int64_t now)
{
	if (!failover_enabled(r))
		return true;
	return rules_quorum_heard(r->env.cfg->failover.isolation_ms, now, r->election->heard_mono);
}

void election_heard(repl *r)
{
	r->election->heard_mono = voter_clock_ms();
	repl_view_publish(r);
}

static void writes_log(repl *r)
{
	bool quorum = quorum_heard(r, voter_clock_ms());
	bool on = lease_valid(r) && quorum && r->election->state == ELECTION_PRIMARY;
	if (on == r->election->writes_on)
		return;
	r->election->writes_on = on;
	char f[64];
	snprintf(f, sizeof f, "\"epoch\":%llu", (unsigned long long)r->epoch);
	if (on)
		log_event(LOG_INFO, "writes_on", f, "accepting writes: primary of epoch %llu with a lease",
			  (unsigned long long)r->epoch);
	else
		log_event(LOG_INFO, "writes_off", f, "not accepting writes (epoch %llu%s)", (unsigned long long)r->epoch,
			  r->election->state == ELECTION_SWITCHING ? ", switchover"
			  : !r->primary ? ", secondary"
			  : !lease_valid(r) ? ", no lease"
			  : !quorum ? ", no other voter heard from: isolated"
			  : ", role change");
}

static void role_log(repl *r, const char *why)
{
	char f[96];
	snprintf(f, sizeof f, "\"role\":\"%s\",\"epoch\":%llu,\"position\":%llu",
		 r->primary ? "primary" : "secondary", (unsigned long long)r->epoch,
		 (unsigned long long)r->position);
	log_event(LOG_INFO, "role", f, "%s of epoch %llu: %s", r->primary ? "primary" : "secondary",
		  (unsigned long long)r->epoch, why);
}

/* Arm the lease timer ms from now. A failure (libevent out of memory) only
 * delays the "writes_off" log line to the next tick: the write gate reads
 * the clock itself at every write, so no write is taken past the lease. */
static void lease_timer_arm(repl *r, int64_t ms)
{
	struct timeval tv = util_timeval_ms(ms);
	if (evtimer_add(r->election->lease_timer, &tv) != 0)
		log_error("cannot arm the lease timer; the lease end is logged by the next tick instead");
}

/*
 * What happens when the lease expires: the timer armed at each renewal
 * fires here. The state stays PRIMARY (no transition: the diagram has
 * none for it); writes_log turns "writes_off" with the reason "no lease",
 * and write_gate refuses every write with 503 no_lease from the moment the
 * voter clock passes lease_until (it reads the clock itself, this timer
 * only logs). A later renewal that wins a majority opens writes again
 * (msg_reply); a voter that tells of a newer epoch makes the region step
 * down (edge (9)).
 */
static void lease_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	repl *r = arg;
	int64_t left = r->election->lease_until - voter_clock_ms();
	if (r->primary && left >= 0) { /* fired early (timer clock): once more */
		lease_timer_arm(r, left + 1);
		return;
	}
	if (r->election->writes_on && !lease_valid(r)) {
		r->election->leases_lost++;
		log_warn("lease expired without renewal: writes refused until it is renewed");
	}
	writes_log(r);
}

bool election_lease_valid(const repl *r)
{
	return lease_valid(r);
}

bool election_failover_enabled(const repl *r)
{
	return failover_enabled(r);
}

/* (the write and ack gates, and the other repl_* functions of the API
 * thread, are view.c's: decided from the published view) */

/* --- messages to the other voters --- */

typedef struct round_ctx {
	repl *r;
	int kind;           /* BALLOT_LEASE or BALLOT_VOTE (pre or not) */
	bool pre;
	uint64_t round;
	uint64_t epoch;
	int64_t t_send;
	int yes;            /* own included */
	int pending;
	int64_t retry_after;/* the longest remaining binding time among refusals */
	char refusal[160];
	bool force;         /* a forced vote waits for every answer */
	bool decided;       /* round_finished ran already */
} round_ctx;

typedef struct msg_ctx {
	round_ctx *rc;
	bool witness;
} msg_ctx;

static void round_finished(round_ctx *c);

static void msg_reply(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	msg_ctx *m = arg;
	round_ctx *c = m->rc;
	repl *r = c->r;
	if (m->witness)
		r->election->witness_busy = false;
	else
		r->election->peer_busy = false;
	bool granted = false;
	uint64_t promised = 0;
	int64_t remaining = 0;
	char reason[32] = "";
	if (rc == 0 && !r->stopping &&
	    ballot_parse_answer(body, len, &granted, &promised, &remaining, reason, sizeof reason) == 0) {
		/* an answer, grant or refusal: that voter and this region can
		 * talk (the isolation gate) */
		election_heard(r);
		if (granted) {
			c->yes++;
		} else {
			if (remaining > c->retry_after)
				c->retry_after = remaining;
			snprintf(c->refusal, sizeof c->refusal, "%s refused: %s", m->witness ? "witness" : r->env.peer->name,
				 reason);
		}
		/* a refusal teaches a promise, not a primary: our next candidacy
		 * goes above it; a primary whose renewal meets it steps down */
		if (promised > voter_promised(r->election->voter) && voter_learn(r->election->voter, promised) != 0)
			log_error("cannot persist the promise of epoch %llu (I/O); learned again from the next "
				  "refusal", (unsigned long long)promised);
		repl_view_publish(r); /* the promise is in the view */
		if (!granted && r->primary && promised > r->epoch)
			step_down(r, promised, "a voter promised a newer epoch", false);
	} else if (rc != 0) {
		snprintf(c->refusal, sizeof c->refusal, "%s unreachable", m->witness ? "witness" : r->env.peer->name);
	}
	free(m);
	if (c->kind == BALLOT_LEASE && rules_majority(c->yes) && !r->stopping && r->primary && r->epoch == c->epoch) {
		int64_t until = rules_lease_end(&r->env.cfg->failover, c->t_send);
		if (until > r->election->lease_until) {
			r->election->lease_until = until;
			repl_view_publish(r);
			int64_t wait = until - voter_clock_ms() + 1;
			if (wait > 0)
				lease_timer_arm(r, wait);
			writes_log(r);
		}
	}
	/* a majority decides at once: an unreachable voter must not hold the
	 * election for its whole timeout. A forced vote waits for every
	 * answer, so that an old primary still reachable stops writing (it
	 * steps down when the forced vote reaches it) before we start */
	if (c->kind == BALLOT_VOTE && !c->decided && rules_majority(c->yes) && !c->force) {
		c->decided = true;
		round_finished(c);
	}
	if (--c->pending == 0) {
		if (!c->decided)
			round_finished(c);
		free(c);
	}
}

static void send_ballot(repl *r, round_ctx *c, bool to_witness, const char *path, const char *body)
{
	http_client *cl = to_witness ? r->election->to_witness : r->election->to_peer;
	bool *busy = to_witness ? &r->election->witness_busy : &r->election->peer_busy;
	const char *name = to_witness ? "witness" : r->env.peer->name;
	if (!cl || *busy || election_isolated(r, name))
		return;
	msg_ctx *m = calloc(1, sizeof *m);
	if (!m)
		return;
	m->rc = c;
	m->witness = to_witness;
	char headers[64];
	snprintf(headers, sizeof headers, "Content-Type: application/json\r\nX-Tandem-Epoch: %llu\r\n",
		 (unsigned long long)r->epoch);
	if (http_client_request(cl, "POST", path, headers, body, strlen(body), 0, msg_reply, m) != 0) {
		free(m);
		return;
	}
	*busy = true;
	c->pending++;
}

/* Send to both other voters; a round with nobody to ask finishes at once. */
static void send_round(repl *r, round_ctx *c, const char *path, const char *body)
{
	c->pending = 1; /* held while sending */
	send_ballot(r, c, false, path, body);
	send_ballot(r, c, true, path, body);
	if (--c->pending == 0) {
		if (!c->decided)
			round_finished(c);
		free(c);
	}
}

static void lease_renew(repl *r)
{
	/* a round later than due by more than a tenth of the lease: the
	 * control loop was held up (tandem_lease_renewals_late_total); rounds
	 * sent early (probes) and the first of a term (next_renew 0) are not */
	int64_t now = voter_clock_ms();
	if (r->election->next_renew && now - r->election->next_renew > r->env.cfg->failover.lease_ms / 10) {
		atomic_fetch_add(&r->renewals_late, 1);
		log_warn("lease round %lld ms late (the control loop was held up)", (long long)(now - r->election->next_renew));
	}
	r->election->last_renew = voter_clock_ms();
	r->election->next_renew = r->election->last_renew + r->env.cfg->failover.renew_ms;
	voter_answer a;
	/* own grant first, under the same rule as any voter */
	if (voter_lease(r->election->voter, r->epoch, self_name(r), &a) != 0 || !a.granted) {
		if (a.promised_epoch > r->epoch) {
			step_down(r, a.promised_epoch, "a newer epoch is known", false);
		} else if (a.reason && strcmp(a.reason, "lease_held") == 0) {
			log_warn("cannot renew: this region's own grant to %s still binds for %lld ms", a.holder,
				 (long long)a.remaining_ms);
		}
		return;
	}
	round_ctx *c = calloc(1, sizeof *c);
	if (!c) { /* the lease lapses unless a later round works: safe */
		log_error("cannot renew the lease: out of memory");
		return;
	}
	*c = (round_ctx){.r = r, .kind = BALLOT_LEASE, .round = ++r->election->round, .epoch = r->epoch,
			 .t_send = voter_clock_ms(), .yes = 1};
	char body[160];
	snprintf(body, sizeof body, "{\"epoch\":%llu,\"holder\":\"%s\",\"boot_id\":\"%s\"}",
		 (unsigned long long)r->epoch, self_name(r), r->election->boot_id);
	send_round(r, c, "/internal/v1/lease", body);
}

/* --- role changes --- */

typedef struct role_job {
	repl *r;
	uint64_t epoch;
	uint64_t start;     /* promote: the position S the epoch starts after */
	bool promote;
	bool handover;      /* demote for a switchover: hand over afterwards */
	bool reserve;       /* r->election->role_reserve: given back, not freed */
	char why[96];
} role_job;

/* Done with a role job: the reserve goes back, any other is freed. */
static void role_job_release(repl *r, role_job *j)
{
	if (j->reserve) {
		memset(j, 0, sizeof *j);
		j->reserve = true;
		r->election->role_reserve = j;
		return;
	}
	free(j);
}

/* Become a follower of the primary. If the applier cannot start (out of
 * memory) this region is a secondary that does not stream yet, which is
 * safe; it says so once and the tick tries again. */
static void follow(repl *r)
{
	if (applier_start(r) == 0) {
		if (r->election->follow_failed)
			log_info("replication from %s started", r->env.peer->name);
		r->election->follow_failed = false;
		return;
	}
	if (!r->election->follow_failed)
		log_error("cannot start replicating from %s (out of memory); a secondary that does not stream "
			  "yet, retrying", r->env.peer->name);
	r->election->follow_failed = true;
}

static int role_exec(db_conn *db, void *arg)
{
	role_job *j = arg;
	uint64_t applied = 0;
	if (capture_read_state(db, NULL, NULL, NULL, &applied) != 0)
		return ERR_DB;
	if (j->promote) {
		j->start = applied;
		int64_t e = (int64_t)j->epoch, at = (int64_t)applied;
		/* entries up to S are from an older era of this log: a peer that
		 * needs them takes a snapshot (no gaps in what we stream) */
		if (db_exec_int(db, "UPDATE repl_state SET role = 'primary', epoch = ?1, last_seq = ?2, "
				    "applied_seq = ?2 WHERE id = 1", e, at) != 0 ||
		    db_exec_int(db, "INSERT OR REPLACE INTO repl_epochs (epoch, first_seq) VALUES (?1, ?2)", e,
				at + 1) != 0 ||
		    db_exec_int(db, "DELETE FROM repl_log WHERE seq <= ?1", at, 0) != 0)
			return ERR_DB;
		return 0;
	}
	return db_exec_int(db, "UPDATE repl_state SET role = 'secondary', epoch = max(epoch, ?1) WHERE id = 1",
			   (int64_t)j->epoch, 0);
}

static void admin_answer(repl *r, int status, const char *json)
{
	if (!r->election->admin_req)
		return;
	http_request *req = r->election->admin_req;
	r->election->admin_req = NULL;
	http_response_header(req, "Content-Type", "application/json");
	http_respond(req, status, json, strlen(json));
}

static void admin_error(repl *r, int status, const char *code, const char *message)
{
	json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	admin_answer(r, status, text ? text : "{}");
	free(text);
}

static void send_handover(repl *r);

/* The writer ran a role job (rc: its result). PROMOTING: primary (6), or a
 * follower again when the role could not be committed (d); DEMOTING: a
 * follower (11), recorded or not. */
static void role_done(void *arg, int rc, uint64_t seq)
{
	role_job *j = arg;
	repl *r = j->r;
	if (r->stopping) {
		election_set(r, ELECTION_FOLLOWER, "stopping: the role change is not taken up");
		role_job_release(r, j);
		return;
	}
	if (rc != 0 && j->promote) {
		/* the state could not be written: stay a secondary, safely */
		log_error("cannot record the role change (%s): %s", err_str(rc), j->why);
		election_set(r, ELECTION_FOLLOWER, "the new role could not be recorded");
		r->election->next_stand = voter_clock_ms() + r->env.cfg->failover.vote_retry_ms;
		follow(r);
		admin_error(r, 500, "internal_error", "the new role could not be recorded");
		role_job_release(r, j);
		return;
	}
	if (rc != 0) {
		/* a demotion stands whether or not it is on disk (this region
		 * stopped writing already): follow the primary anyway; after a
		 * restart the old role meets a newer epoch and steps down again */
		log_error("cannot record the step-down (%s): %s; following the primary anyway", err_str(rc),
			  j->why);
	}
	if (j->promote) {
		r->epoch = j->epoch; /* known for certain now: it is ours (logged by the transition) */
		if (election_set(r, ELECTION_PRIMARY, j->why) != 0) {
			role_job_release(r, j);
			return;
		}
		r->position = j->start;
		stream_reset_acks(r);
		r->election->stand_force = r->election->stand_now = false;
		r->election->elections_won++;
		r->election->heard_mono = voter_clock_ms(); /* a majority just voted for us */
		history_add(r, j->epoch, j->start + 1);
		capture_set_enabled(r->env.capture, true);
		repl_view_publish(r);
		role_log(r, j->why);
		if (stream_start(r) != 0) {
			/* a primary nobody can follow: hand the role on rather than
			 * write alone (out of memory) */
			admin_error(r, 500, "internal_error", "the replication stream could not start");
			step_down(r, r->epoch, "cannot start the replication stream (out of memory)", false);
			role_job_release(r, j);
			return;
		}
		lease_renew(r);
		char json[160];
		snprintf(json, sizeof json, "{\"region\":\"%s\",\"role\":\"primary\",\"epoch\":%llu,\"position\":%llu}",
			 self_name(r), (unsigned long long)r->epoch, (unsigned long long)r->position);
		admin_answer(r, 200, json);
	} else {
		if (election_set(r, ELECTION_FOLLOWER, rc == 0 ? "step-down recorded" : "step-down not recorded") != 0) {
			role_job_release(r, j);
			return;
		}
		role_log(r, j->why);
		history_set_synced(r, false);
		r->election->contact_mono = voter_clock_ms(); /* give the new primary its time */
		follow(r);
		if (j->handover)
			send_handover(r);
	}
	writes_log(r);
	repl_view_publish(r);
	role_job_release(r, j);
}

/* Hand a role job to the writer (the state is PROMOTING or DEMOTING
 * already); role_done runs exactly once, at once with ERR_AGAIN when the
 * writer queue refuses it (full, stopping). */
static void role_submit(repl *r, role_job *j)
{
	writes_log(r);
	if (repl_submit(r, role_exec, role_done, j) != 0)
		role_done(j, ERR_AGAIN, 0);
}

/*
 * Stop being the primary (PRIMARY or SWITCHING -> DEMOTING, edges (9) and
 * (10)): no more writes, the stream and the global waiters end, the
 * demotion is recorded and the applier starts (role_done, (11)). Cannot
 * fail: the role job is allocated before anything changes, from the reserve
 * when memory is short; with neither (cannot happen: one step-down at a
 * time, and the reserve comes back with it) the region still stops writing
 * and follows, unrecorded (edge (e)).
 */
static void step_down(repl *r, uint64_t epoch, const char *why, bool handover)
{
	if (epoch > voter_promised(r->election->voter) && voter_learn(r->election->voter, epoch) != 0)
		log_error("cannot persist the promise of epoch %llu; stepping down anyway",
			  (unsigned long long)epoch);
	if (!r->primary)
		return;
	role_job *j = calloc(1, sizeof *j);
	if (!j && r->election->role_reserve) {
		j = r->election->role_reserve;
		r->election->role_reserve = NULL;
		log_warn("stepping down with the reserve role job: out of memory");
	}
	log_warn("stepping down as primary of epoch %llu: %s", (unsigned long long)r->epoch, why);
	if (election_set(r, j ? ELECTION_DEMOTING : ELECTION_FOLLOWER, why) != 0) {
		if (j)
			role_job_release(r, j);
		return;
	}
	r->election->lease_until = 0;
	r->election->next_renew = 0; /* a later term's first round is not late */
	r->election->step_downs++;
	repl_view_publish(r);
	capture_set_enabled(r->env.capture, false);
	stream_stop(r);
	/* global writes waiting for the ack cannot be confirmed by us any more */
	stream_fail_waiters(r);
	/* r->epoch stays ours until the new primary's own epoch is learned
	 * (from it: history, heartbeats, lease requests) */
	if (!j) {
		log_error("cannot record the step-down (out of memory): following the primary unrecorded");
		history_set_synced(r, false);
		r->election->contact_mono = voter_clock_ms();
		writes_log(r);
		follow(r);
		return;
	}
	bool reserve = j->reserve;
	*j = (role_job){.r = r, .epoch = r->epoch, .promote = false, .handover = handover, .reserve = reserve};
	snprintf(j->why, sizeof j->why, "%s", why);
	role_submit(r, j);
}

void election_learn(repl *r, uint64_t epoch)
{
	/* a promise that cannot be persisted is not taken (voter_learn); the
	 * epoch itself is still learned below: a primary steps down anyway */
	if (epoch > voter_promised(r->election->voter) && voter_learn(r->election->voter, epoch) != 0)
		log_error("cannot persist the promise of epoch %llu (I/O); learning it in memory only",
			  (unsigned long long)epoch);
	if (epoch <= r->epoch)
		return;
	if (r->primary) {
		step_down(r, epoch, "a newer epoch exists", false);
		return;
	}
	r->epoch = epoch;
	repl_view_publish(r);
	/* a new primary: check where our histories part before following it */
	history_set_synced(r, false);
}

void election_contact_now(repl *r)
{
	r->election->contact_mono = voter_clock_ms();
}

void election_contact(repl *r, uint64_t epoch)
{
	if (rules_epoch_stale(epoch, r->epoch))
		return; /* a deposed primary does not count */
	if (epoch > r->epoch)
		election_learn(r, epoch);
	r->election->contact_mono = voter_clock_ms();
}

/* --- standing for election --- */

/* The candidacy ends without a win (edges (b), (c); from DRAINING or
 * CANDIDATE): a follower again, the applier restarted, the next candidacy
 * after vote_retry_ms, a waiting admin request answered. */
static void stand_abort(repl *r, const char *why)
{
	int64_t wait = r->env.cfg->failover.vote_retry_ms;
	r->election->next_stand = voter_clock_ms() + wait;
	if (election_set(r, ELECTION_FOLLOWER, why) == 0)
		follow(r); /* the drain stopped the applier */
	if (r->election->admin_req) {
		char msg[256];
		snprintf(msg, sizeof msg, "the election was lost: %s", why);
		admin_error(r, 409, "election_failed", msg);
	}
	r->election->stand_force = r->election->stand_now = false;
	log_info("election for epoch %llu not won: %s", (unsigned long long)r->election->stand_epoch, why);
}

/* DRAINING, the writer queue empty: own vote under the voter rule, then the
 * Vote round (edge (4)); refused or out of memory: (b). */
static void cast_votes(repl *r)
{
	/* allocated before the own vote: out of memory changes no promise */
	round_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		stand_abort(r, "out of memory");
		return;
	}
	voter_answer a = {0};
	int rc = voter_vote(r->election->voter, r->election->stand_epoch, self_name(r), false, false, r->election->stand_force, &a);
	if (rc != 0 || !a.granted) {
		free(c);
		if (a.promised_epoch >= r->election->stand_epoch)
			r->election->stand_epoch = a.promised_epoch + 1;
		stand_abort(r, rc != 0 ? "own vote not persisted (I/O error)" : a.reason ? a.reason : "own vote refused");
		return;
	}
	if (election_set(r, ELECTION_CANDIDATE, "own vote cast") != 0) {
		free(c);
		return;
	}
	*c = (round_ctx){.r = r, .kind = BALLOT_VOTE, .round = ++r->election->round, .epoch = r->election->stand_epoch, .yes = 1,
			 .force = r->election->stand_force};
	char body[256];
	snprintf(body, sizeof body,
		 "{\"epoch\":%llu,\"candidate\":\"%s\",\"last_epoch\":%llu,\"last_seq\":%llu,\"pre\":false,"
		 "\"force\":%s}",
		 (unsigned long long)r->election->stand_epoch, self_name(r),
		 (unsigned long long)history_epoch_at(r, r->position), (unsigned long long)r->position,
		 r->election->stand_force ? "true" : "false");
	log_info("standing for election in epoch %llu at position %llu%s", (unsigned long long)r->election->stand_epoch,
		 (unsigned long long)r->position, r->election->stand_force ? " (forced)" : "");
	send_round(r, c, "/internal/v1/vote", body);
}

/* Edges (2), (3): stop applying; the tick casts the votes once what is in
 * the writer queue has landed (pending_applies == 0). */
static void begin_drain(repl *r, const char *why)
{
	if (election_set(r, ELECTION_DRAINING, why) != 0)
		return;
	applier_stop(r); /* what is in the writer queue still lands; tick waits for it */
}

static void round_finished(round_ctx *c)
{
	repl *r = c->r;
	if (r->stopping || c->kind == BALLOT_LEASE)
		return;
	if (c->round != r->election->round || r->primary)
		return;
	if (c->pre) {
		if (r->election->state != ELECTION_PRE_CANDIDATE)
			return;
		if (rules_majority(c->yes)) {
			begin_drain(r, "a majority would vote");
		} else {
			r->election->stand_now = false;
			r->election->next_stand = voter_clock_ms() + rules_retry_wait(c->retry_after, r->env.cfg->failover.vote_retry_ms);
			election_set(r, ELECTION_FOLLOWER, c->refusal[0] ? c->refusal : "pre-vote: no answer");
			if (r->election->admin_req) {
				char msg[512];
				snprintf(msg, sizeof msg,
					 "no majority would vote for %s now (%s%s%lld ms); nothing was changed; "
					 "--force overrides a lease (writes the primary accepts meanwhile may be lost)",
					 self_name(r), c->refusal[0] ? c->refusal : "no answer",
					 c->retry_after > 0 ? ", a lease binds for " : ", retry in ",
					 (long long)(c->retry_after > 0 ? c->retry_after : r->env.cfg->failover.vote_retry_ms));
				admin_error(r, 409, c->retry_after > 0 ? "lease_held" : "election_failed", msg);
			}
		}
		return;
	}
	if (r->election->state != ELECTION_CANDIDATE)
		return;
	if (rules_majority(c->yes)) {
		role_job *j = calloc(1, sizeof *j);
		if (!j) {
			stand_abort(r, "out of memory");
			return;
		}
		*j = (role_job){.r = r, .epoch = c->epoch, .promote = true};
		snprintf(j->why, sizeof j->why, "elected with %d of 3 votes%s", c->yes,
			 r->election->stand_force ? " (forced failover)" : "");
		if (election_set(r, ELECTION_PROMOTING, j->why) != 0) {
			free(j);
			return;
		}
		role_submit(r, j);
	} else {
		stand_abort(r, c->refusal[0] ? c->refusal : "no majority");
	}
}

/* FOLLOWER: stand for election now (edges (1), (2)), unless our own grant
 * to the primary still binds (then at its end). Out of memory: stays a
 * follower, retries after vote_retry_ms, an admin request is answered. */
static void stand(repl *r)
{
	if (r->election->state != ELECTION_FOLLOWER || r->stopping || !failover_enabled(r))
		return;
	int64_t now = voter_clock_ms();
	r->election->stand_epoch = rules_stand_epoch(voter_promised(r->election->voter), r->epoch);
	char holder[32];
	int64_t left = 0;
	if (!r->election->stand_force && voter_binds_other(r->election->voter, self_name(r), &left, holder)) {
		/* our own grant to the primary still binds: wait it out */
		r->election->next_stand = now + left + 1;
		if (r->election->admin_req) {
			char msg[200];
			snprintf(msg, sizeof msg,
				 "%s holds a lease: this region's grant to it binds for %lld ms more; "
				 "use --force to override (writes it accepts meanwhile may be lost)",
				 holder, (long long)left);
			admin_error(r, 409, "lease_held", msg);
			r->election->stand_now = false;
		}
		return;
	}
	if (r->election->stand_force) {
		/* forced: the voters' grants bind, a pre-vote would be refused */
		begin_drain(r, "forced failover: no pre-vote");
		return;
	}
	round_ctx *c = calloc(1, sizeof *c);
	if (!c) {
		log_error("cannot stand for election: out of memory; a follower still, retrying");
		r->election->next_stand = now + r->env.cfg->failover.vote_retry_ms;
		r->election->stand_now = false;
		admin_error(r, 503, "out_of_memory", "this region is out of memory; nothing was changed; retry");
		return;
	}
	if (election_set(r, ELECTION_PRE_CANDIDATE, r->election->stand_now ? "failover requested" : "no primary heard") != 0) {
		free(c);
		return;
	}
	*c = (round_ctx){.r = r, .kind = BALLOT_VOTE, .pre = true, .round = ++r->election->round, .epoch = r->election->stand_epoch,
			 .yes = 1};
	char body[256];
	snprintf(body, sizeof body,
		 "{\"epoch\":%llu,\"candidate\":\"%s\",\"last_epoch\":%llu,\"last_seq\":%llu,\"pre\":true,"
		 "\"force\":false}",
		 (unsigned long long)r->election->stand_epoch, self_name(r),
		 (unsigned long long)history_epoch_at(r, r->position), (unsigned long long)r->position);
	send_round(r, c, "/internal/v1/vote", body);
}

/* --- switchover --- */

typedef struct handover_ctx {
	repl *r;
} handover_ctx;

static void handover_reply(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	repl *r = arg;
	r->election->peer_busy = false;
	if (rc != 0 || resp->status != 200)
		log_warn("the handover to %s got no answer; it will win an election anyway once our grants expire",
			 r->env.peer->name);
}

static void send_handover(repl *r)
{
	/* our own grant goes first: the target needs our vote. If it cannot be
	 * dropped (I/O), the handover still goes: the target's pre-vote is
	 * then refused here until the grant expires, and it wins an election
	 * after that, as without a handover */
	if (voter_drop_grant(r->election->voter) != 0)
		log_error("handover: cannot drop this region's own grant (I/O); %s will be elected once it "
			  "expires", r->env.peer->name);
	char body[128];
	snprintf(body, sizeof body, "{\"epoch\":%llu,\"from\":\"%s\"}", (unsigned long long)r->epoch, self_name(r));
	char headers[96];
	snprintf(headers, sizeof headers, "Content-Type: application/json\r\nX-Tandem-Epoch: %llu\r\n",
		 (unsigned long long)r->epoch);
	/* the handover may wait behind a lease request in flight: fine */
	if (r->election->to_peer && http_client_request(r->election->to_peer, "POST", "/internal/v1/handover", headers, body,
					      strlen(body), 0, handover_reply, r) == 0)
		r->election->peer_busy = true;
	char json[192];
	snprintf(json, sizeof json,
		 "{\"from\":\"%s\",\"to\":\"%s\",\"epoch\":%llu,\"position\":%llu,\"state\":\"handed_over\"}",
		 self_name(r), r->election->switch_to, (unsigned long long)r->epoch, (unsigned long long)r->position);
	admin_answer(r, 200, json);
}

static void switchover_check(repl *r, int64_t now)
{
	if (r->election->state != ELECTION_SWITCHING)
		return;
	/* the API thread counts its writes and publishes their commits: with
	 * none in flight, every commit is in api_committed already (it is
	 * stored before the write's answer), so absorb it before comparing */
	/* the view says "switching" (published by election_set); the fence
	 * pairs with repl_write_started's: a write not counted yet is refused
	 * by its gate */
	atomic_thread_fence(memory_order_seq_cst);
	bool idle = atomic_load(&r->writes_in_flight) == 0;
	if (idle) {
		repl_absorb_api(r);
		if (!r->election->switching)
			return;
	}
	if (idle && stream_acked_seq(r) >= r->position && stream_has_subscriber(r)) {
		char why[96];
		snprintf(why, sizeof why, "planned switchover to %s at position %llu", r->election->switch_to,
			 (unsigned long long)r->position);
		step_down(r, r->epoch, why, true); /* edge (10) */
		return;
	}
	if (now > r->election->switch_deadline) {
		election_set(r, ELECTION_PRIMARY, "switchover abandoned: the target did not catch up"); /* (8) */
		writes_log(r);
		char msg[200];
		snprintf(msg, sizeof msg,
			 "%s did not catch up within %d ms (acked %llu of %llu); the switchover is abandoned, "
			 "writes resumed here",
			 r->election->switch_to, r->env.cfg->failover.switchover_timeout_ms, (unsigned long long)stream_acked_seq(r),
			 (unsigned long long)r->position);
		log_warn("%s", msg);
		admin_error(r, 504, "switchover_timeout", msg);
	}
}

/* --- the tick --- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	repl *r = arg;
	if (r->stopping || !failover_enabled(r))
		return;
	int64_t now = voter_clock_ms();
	if (r->primary) {
		/* nothing heard for half the isolation bound: ask the voters now
		 * (the lease round is the probe), not at the next renewal */
		bool probe = rules_probe_due(r->env.cfg->failover.isolation_ms, now, r->election->heard_mono, r->election->last_renew);
		if (now >= r->election->next_renew || probe)
			lease_renew(r);
		switchover_check(r, now);
		writes_log(r); /* isolation starts and ends without an event of its own */
		return;
	}
	if (r->election->state == ELECTION_DRAINING) {
		if (applier_pending(r) == 0)
			cast_votes(r);
		return;
	}
	if (r->election->state != ELECTION_FOLLOWER)
		return; /* a round or a role write in flight: its answer moves the state */
	if (!applier_running(r))
		follow(r); /* a secondary whose applier could not start */
	if (r->election->handover_epoch) {
		/* a handover came during a round: stand now, unless a newer
		 * epoch than the sender's has been learnt since */
		bool current = voter_promised(r->election->voter) <= r->election->handover_epoch + 1 &&
			       r->epoch <= r->election->handover_epoch;
		r->election->handover_epoch = 0;
		if (current) {
			log_info("standing for election: the handover's deferred stand");
			r->election->next_stand = 0;
			stand(r);
			return;
		}
	}
	if (now < r->election->next_stand)
		return;
	if (now - r->election->contact_mono >= r->env.cfg->failover.election_timeout_ms)
		stand(r);
}

/* --- link routes --- */

void election_handle_lease(repl *r, http_request *req, const char *peer)
{
	ballot b;
	if (ballot_read(req, BALLOT_LEASE, peer, &b) != 0)
		return;
	/* only an elected primary asks for a lease: its epoch exists */
	if (b.epoch > r->epoch)
		election_learn(r, b.epoch);
	voter_answer a;
	if (voter_lease(r->election->voter, b.epoch, b.who, &a) != 0) /* answered 503 io: nothing granted */
		log_error("refused a lease to %s in epoch %llu: the voter state cannot be persisted", b.who,
			  (unsigned long long)b.epoch);
	if (a.granted)
		election_contact(r, b.epoch);
	repl_view_publish(r);
	ballot_answer(req, &a, b.boot_id);
}

void election_handle_vote(repl *r, http_request *req, const char *peer)
{
	ballot b;
	if (ballot_read(req, BALLOT_VOTE, peer, &b) != 0)
		return;
	bool behind = history_behind(b.last_epoch, b.last_seq, history_epoch_at(r, r->position), r->position);
	voter_answer a;
	if (voter_vote(r->election->voter, b.epoch, b.who, behind, b.pre, b.force, &a) != 0) /* 503 io, not granted */
		log_error("refused a vote to %s in epoch %llu: the voter state cannot be persisted", b.who,
			  (unsigned long long)b.epoch);
	if (!b.pre)
		log_info("%s %s a vote in epoch %llu%s%s", a.granted ? "gave" : "refused", b.who,
			 (unsigned long long)b.epoch, a.granted ? "" : ": ", a.granted ? "" : a.reason);
	if (!b.pre && r->primary && b.epoch > r->epoch && (a.granted || b.force)) {
		/* we voted for another primary, or the operator forces one:
		 * stop writing now, before it can be elected (its election
		 * waits for our answer) */
		if (b.force && !a.granted && voter_learn(r->election->voter, b.epoch) != 0)
			log_error("cannot persist the promise of epoch %llu (I/O); stepping down anyway",
				  (unsigned long long)b.epoch);
		step_down(r, b.epoch, b.force ? "an operator forces a failover" : "voted for a new primary", false);
	}
	repl_view_publish(r);
	ballot_answer(req, &a, b.boot_id);
}

void election_handle_handover(repl *r, http_request *req, const char *peer)
{
	ballot b;
	if (ballot_read(req, BALLOT_HANDOVER, peer, &b) != 0)
		return;
	if (rules_epoch_stale(b.epoch, r->epoch)) {
		link_refuse_stale(r, req, b.epoch);
		return;
	}
	int hrc = voter_handover(r->election->voter, b.epoch, b.who);
	if (hrc < 0) /* the grant is kept: the sender is elected once it expires */
		log_error("handover from %s: cannot release the grant (I/O)", b.who);
	bool released = hrc == 1;
	/* the sender asks us to stand now: also when we held no grant of it
	 * (it had its lease from the witness alone), as long as no newer
	 * epoch than its own was promised here */
	bool current = hrc >= 0 && voter_promised(r->election->voter) <= b.epoch;
	if (current && r->election->state == ELECTION_FOLLOWER) {
		log_info("handover from %s (epoch %llu): standing for election now", b.who, (unsigned long long)b.epoch);
		r->election->next_stand = 0;
		stand(r);
	} else if (current && !r->primary) {
		/* a round of our own is in flight (a pre-vote sent before the
		 * sender let go of its grant is refused, and its refusal would
		 * make us wait out the witness's grant): stand again as soon as
		 * it ends (tick_cb), not after vote_retry_ms or the lease */
		log_info("handover from %s (epoch %llu): standing for election once the round in flight ends", b.who,
			 (unsigned long long)b.epoch);
		r->election->handover_epoch = b.epoch;
	}
	repl_answer(req, 200, NULL, released ? "{\"ok\":true,\"released\":true}" : "{\"ok\":true,\"released\":false}");
}

static void admin_fault(repl *r, http_request *req, json_t *o)
{
	json_t *list = json_object_get(o, "isolate");
	if (!json_is_array(list) || json_array_size(list) > 3) {
		repl_answer(req, 400, "bad_request", "body must be {\"isolate\": [peer names]}");
		return;
	}
	int n = 0;
	char names[4][32];
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v) {
		const char *s = json_string_value(v);
		if (!s || (strcmp(s, "witness") != 0 && !config_region_find(r->env.cfg, s)) ||
		    strcmp(s, self_name(r)) == 0) {
			repl_answer(req, 400, "bad_request", "isolate names the other region and/or witness");
			return;
		}
		snprintf(names[n++], 32, "%s", s);
	}
	memcpy(r->election->isolated, names, sizeof names);
	r->election->nisolated = n;
	repl_view_publish(r);
	buf b;
	buf_init(&b, 512);
	buf_adds(&b, "{\"isolated\":[");
	for (int k = 0; k < n; k++)
		buf_printf(&b, "%s\"%s\"", k ? "," : "", names[k]);
	buf_adds(&b, "]}");
	log_warn("fault switch: %s", n ? b.data : "healed");
	if (r->env.peer && election_isolated(r, r->env.peer->name)) {
		/* cut what is open: the stream, both ways */
		stream_drop(r, r->env.peer->name);
		applier_cut_stream(r);
	}
	repl_answer(req, 200, NULL, b.data);
	buf_free(&b);
}

void election_handle_admin(repl *r, http_request *req, const char *peer)
{
	const http_message *m = http_request_message(req);
	if (strcmp(m->method, "POST") != 0) {
		repl_answer(req, 405, "method_not_allowed", "admin actions are POST");
		return;
	}
	size_t len;
	const char *body = http_request_body(req, &len);
	json_t *o = json_loadb(body, len, 0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		repl_answer(req, 400, "bad_request", "the body must be a JSON object");
		return;
	}
	const char *t = m->target;
	if (strcmp(t, "/internal/v1/admin/fault") == 0) {
		admin_fault(r, req, o);
		json_decref(o);
		return;
	}
	if (!failover_enabled(r)) {
		json_decref(o);
		repl_answer(req, 409, "no_witness",
			    "switchover and failover need two regions and a [witness] in the config");
		return;
	}
	if (r->election->admin_req || r->election->state == ELECTION_SWITCHING || standing(r)) {
		json_decref(o);
		repl_answer(req, 409, "busy", "a switchover or election is already in progress here");
		return;
	}
	if (strcmp(t, "/internal/v1/admin/switchover") == 0) {
		const char *to = json_string_value(json_object_get(o, "to"));
		if (!to || strcmp(to, r->env.peer->name) != 0) {
			json_decref(o);
			repl_answer(req, 400, "bad_request", "to must name the other region");
			return;
		}
		if (!r->primary || !lease_valid(r)) {
			json_decref(o);
			repl_answer(req, 409, "not_primary", "ask the primary (holding a lease) to hand over");
			return;
		}
		if (!stream_has_subscriber(r)) {
			json_decref(o);
			repl_answer(req, 409, "target_not_streaming",
				    "the target is not replicating from this region: it could not catch up");
			return;
		}
		snprintf(r->election->switch_to, sizeof r->election->switch_to, "%s", to);
		if (election_set(r, ELECTION_SWITCHING, "planned switchover requested") != 0) { /* (7) */
			json_decref(o);
			repl_answer(req, 500, "internal_error", "the switchover could not start");
			return;
		}
		r->election->switch_deadline = voter_clock_ms() + r->env.cfg->failover.switchover_timeout_ms;
		r->election->admin_req = req;
		log_info("switchover to %s: writes paused until it has everything (position %llu)", to,
			 (unsigned long long)r->position);
		writes_log(r);
		switchover_check(r, voter_clock_ms());
		json_decref(o);
		return;
	}
	if (strcmp(t, "/internal/v1/admin/failover") == 0) {
		bool force = json_is_true(json_object_get(o, "force"));
		json_decref(o);
		if (r->primary) {
			repl_answer(req, 409, "already_primary", "this region is already the primary");
			return;
		}
		if (force)
			log_warn("forced failover requested: grants to %s are dropped; writes it accepted "
				 "after position %llu may be quarantined when it rejoins",
				 r->env.peer->name, (unsigned long long)r->position);
		r->election->admin_req = req;
		r->election->stand_force = force;
		r->election->stand_now = true;
		r->election->next_stand = 0;
		stand(r);
		return;
	}
	json_decref(o);
	repl_answer(req, 404, "not_found", "no such admin action");
}

void election_status_json(repl *r, buf *out)
{
	int64_t now = voter_clock_ms();
	char vs[512];
	voter_status(r->election->voter, vs, sizeof vs);
	int64_t left = r->primary ? (failover_enabled(r) ? r->election->lease_until - now : 1) : 0;
	buf_printf(out,
		   "\"failover\":{\"enabled\":%s,\"witness\":\"%s\",%s,\"state\":\"%s\",\"standing\":%s,\"switching\":%s,"
		   "\"elections_won\":%llu,\"step_downs\":%llu},"
		   "\"lease\":{\"valid\":%s,\"remaining_ms\":%lld},\"isolated\":[",
		   failover_enabled(r) ? "true" : "false", r->election->witness_addr, vs, election_state_name(r->election->state),
		   standing(r) ? "true" : "false", r->election->state == ELECTION_SWITCHING ? "true" : "false", (unsigned long long)r->election->elections_won,
		   (unsigned long long)r->election->step_downs, lease_valid(r) ? "true" : "false",
		   (long long)(lease_valid(r) && failover_enabled(r) ? left : 0));
	for (int i = 0; i < r->election->nisolated; i++)
		buf_printf(out, "%s\"%s\"", i ? "," : "", r->election->isolated[i]);
	buf_printf(out, "],\"quarantined_transactions\":%llu,", (unsigned long long)history_quarantined_total(r));
	bool gated = r->primary && failover_enabled(r) && r->env.cfg->failover.isolation_ms > 0;
	buf_printf(out, "\"quorum\":{\"gate\":%s,\"isolation_ms\":%d,\"heard\":%s,\"heard_ms_ago\":%lld,"
		   "\"refusals\":%llu},",
		   gated ? "true" : "false", r->env.cfg->failover.isolation_ms,
		   quorum_heard(r, now) ? "true" : "false", (long long)(gated ? now - r->election->heard_mono : -1),
		   (unsigned long long)atomic_load(&r->no_quorum_refusals));
}

/* --- lifecycle --- */

int election_init(repl *r, char *err, size_t errcap)
{
	char path[CONFIG_PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/voter.json", r->env.self->data_dir);
	r->election->voter = voter_open(path, &r->env.cfg->failover, err, errcap);
	if (!r->election->voter)
		return ERR_IO;
	/* the initial state is the role in the database (repl_new read it into
	 * r->primary): not a transition, the start of the diagram */
	r->election->state = r->primary ? ELECTION_PRIMARY : ELECTION_FOLLOWER;
	r->election->switching = false;
	unsigned char id[16];
	util_random(id, sizeof id);
	util_hex(id, sizeof id, r->election->boot_id);
	r->election->witness_addr = r->env.cfg->witness.listen;
	/* bind outgoing link connections to our own link address, when it is
	 * a specific one: network rules can then tell the components apart */
	char host[64];
	int port;
	unsigned char a[16];
	if (util_split_hostport(r->env.self->link_listen, host, sizeof host, &port) == 0 &&
	    (inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1) &&
	    strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0)
		snprintf(r->election->source_host, sizeof r->election->source_host, "%s", host);
	return 0;
}

int election_start(repl *r)
{
	r->election->contact_mono = voter_clock_ms();
	/* at start a primary has no lease yet (writes wait for it anyway) */
	r->election->heard_mono = r->election->contact_mono;
	r->election->tick = event_new(r->env.base, -1, EV_PERSIST, tick_cb, r);
	r->election->lease_timer = evtimer_new(r->env.base, lease_timer_cb, r);
	role_job *reserve = r->election->role_reserve ? NULL : calloc(1, sizeof *reserve);
	if (reserve) {
		reserve->reserve = true;
		r->election->role_reserve = reserve;
	}
	if (!r->election->tick || !r->election->lease_timer || !r->election->role_reserve)
		return ERR_NOMEM;
	if (failover_enabled(r)) {
		int timeout = r->env.cfg->failover.renew_ms;
		r->election->to_peer = link_client_new(r, r->env.peer->link_listen, r->env.peer->name, timeout, 65536);
		r->election->to_witness = link_client_new(r, r->election->witness_addr, "witness", timeout, 65536);
		if (!r->election->to_peer || !r->election->to_witness)
			return ERR_NOMEM;
		struct timeval tv = {0, TICK_MS * 1000};
		if (evtimer_add(r->election->tick, &tv) != 0)
			return ERR_NOMEM; /* no tick, no election: the start fails */
		if (r->primary)
			lease_renew(r);
	}
	writes_log(r);
	return 0;
}

void election_stop(repl *r)
{
	if (r->election->tick)
		event_del(r->election->tick);
	if (r->election->lease_timer)
		event_del(r->election->lease_timer);
	http_client_free(&r->election->to_peer);
	http_client_free(&r->election->to_witness);
	if (r->election->admin_req)
		admin_error(r, 503, "shutting_down", "the region is stopping");
	if (r->election->writes_on) {
		char f[64];
		snprintf(f, sizeof f, "\"epoch\":%llu", (unsigned long long)r->epoch);
		r->election->writes_on = false;
		log_event(LOG_INFO, "writes_off", f, "not accepting writes (stopping)");
	}
}

void election_free(repl *r)
{
	if (!r->election) /* repl_new failed before the parts were made */
		return;
	if (r->election->tick)
		event_free(r->election->tick);
	if (r->election->lease_timer)
		event_free(r->election->lease_timer);
	r->election->tick = r->election->lease_timer = NULL;
	free(r->election->role_reserve);
	r->election->role_reserve = NULL;
	voter_free(&r->election->voter);
}
