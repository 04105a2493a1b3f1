/*
 * test_election.c - the election state machine of src/replication/election.c
 * (every edge of its diagram, stale epochs, pre-vote refusals, the drain,
 * lease expiry, isolation) and its failure paths, driven without a peer and
 * without sleeping. The file is included (as h2o's unit tests do) so that
 * its static functions are reachable, with these seams put in by macros
 * around the #include (production code is unchanged):
 *
 *   - the clock: election.c's voter_clock_ms() is test_clock_ms(), a fake
 *     the tests move (fake_now); the voter (failover/voter.c, linked) keeps
 *     the real clock, so a grant it gives binds throughout a test;
 *   - an in-memory link: the requests election.c sends (lease rounds,
 *     votes, the handover) are queued in `outbox`, and the test answers
 *     each with a grant, a refusal or "unreachable" (reply()); the link
 *     routes it serves take a fake request (ballot_read, ballot_answer,
 *     repl_answer, the admin request's message and answer);
 *   - calloc() goes through an allocation-failure countdown (as
 *     test_parser.c counts down), libevent's allocations through another;
 *   - SQLite goes through the fault-injecting VFS (faultvfs.h): the role
 *     change is written by a real committer on a temporary database, and
 *     SQLITE_BUSY / SQLITE_IOERR can be injected into it;
 *   - what election.c reads of the stream (stream_has_subscriber,
 *     stream_acked_seq: stream.c's state, behind stream.h) is set by the
 *     switchover tests (fake_subscribed, fake_acked).
 *
 * The applier's first connect is held off (a snapshot fetch marked under
 * way: snapshot.c is included for that), so nothing streams. Each test
 * names the bug it pins, or the rule it checks.
 */
#include <stdlib.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "failover/ballot.h"
#include "failover/history.h"
#include "failover/rules.h"
#include "failover/voter.h"
#include "http/client.h"
#include "http/server.h"
#include "replication/internal.h"

static int alloc_countdown = -1; /* the Nth calloc from now fails (0: the next); -1: none */

static void *test_calloc(size_t n, size_t size)
{
	if (alloc_countdown == 0) {
		alloc_countdown = -1;
		return NULL;
	}
	if (alloc_countdown > 0)
		alloc_countdown--;
	return calloc(n, size);
}

/* libevent's allocations (event_new) count down too, separately */
static int ev_alloc_countdown = -1;

static void *ev_malloc(size_t size)
{
	if (ev_alloc_countdown == 0) {
		ev_alloc_countdown = -1;
		return NULL;
	}
	if (ev_alloc_countdown > 0)
		ev_alloc_countdown--;
	return malloc(size);
}

static void *ev_realloc(void *p, size_t size)
{
	return realloc(p, size);
}

/* --- the injected clock --- */

static int64_t fake_now = 1000000000;

static int64_t test_clock_ms(void)
{
	return fake_now;
}

/* --- the in-memory link: what election.c sends --- */

typedef struct sent_msg {
	http_client *client;
	char target[64];
	char body[512];
	http_client_cb cb;
	void *arg;
	bool open;
} sent_msg;

static sent_msg outbox[64];
static int noutbox;

static int fake_client_request(http_client *c, const char *method, const char *target, const char *headers,
			       const char *body, size_t len, int flags, http_client_cb cb, void *arg)
{
	if (noutbox == (int)(sizeof outbox / sizeof outbox[0]))
		return ERR_LIMIT;
	sent_msg *m = &outbox[noutbox++];
	*m = (sent_msg){.client = c, .cb = cb, .arg = arg, .open = true};
	snprintf(m->target, sizeof m->target, "%s", target);
	snprintf(m->body, sizeof m->body, "%.*s", (int)len, body ? body : "");
	return 0;
}

/* --- the in-memory link: the routes election.c serves --- */

typedef struct fake_req {
	ballot b;
	bool answered;
	voter_answer a;     /* ballot_answer */
	int status;         /* repl_answer, link_refuse_stale, the admin answer */
	char code[48];
	char text[600];
	http_message m;     /* an admin request: method, target */
	const char *body;
} fake_req;

static int fake_ballot_read(http_request *req, int kind, const char *peer, ballot *b)
{
	*b = ((fake_req *)req)->b;
	return 0;
}

static void fake_ballot_answer(http_request *req, const voter_answer *a, const char *boot_id)
{
	fake_req *f = (fake_req *)req;
	f->answered = true;
	f->a = *a;
	f->status = a->granted ? 200 : 409;
	snprintf(f->code, sizeof f->code, "%s", a->granted ? "" : a->reason ? a->reason : "refused");
}

static void fake_repl_answer(http_request *req, int status, const char *code, const char *json_or_message)
{
	fake_req *f = (fake_req *)req;
	f->answered = true;
	f->status = status;
	snprintf(f->code, sizeof f->code, "%s", code ? code : "");
	snprintf(f->text, sizeof f->text, "%s", json_or_message ? json_or_message : "");
}

static void fake_refuse_stale(repl *r, http_request *req, uint64_t e)
{
	fake_repl_answer(req, 409, "stale_epoch", "older epoch");
}

static const http_message *fake_request_message(http_request *req)
{
	return &((fake_req *)req)->m;
}

static const char *fake_request_body(http_request *req, size_t *len)
{
	fake_req *f = (fake_req *)req;
	*len = strlen(f->body);
	return f->body;
}

static int fake_response_header(http_request *req, const char *name, const char *value)
{
	return 0;
}

static void fake_respond(http_request *req, int status, const char *body, size_t len)
{
	fake_req *f = (fake_req *)req;
	f->answered = true;
	f->status = status;
	snprintf(f->text, sizeof f->text, "%.*s", (int)len, body);
}

/* the switchover tests say whether the target streams and what it acked
 * (stream.c's state, read by election.c through these getters) */
static bool fake_subscribed;
static uint64_t fake_acked;

static bool fake_has_subscriber(const repl *r)
{
	return fake_subscribed;
}

static uint64_t fake_acked_seq(const repl *r)
{
	return fake_acked;
}

static void fake_stream_stop(repl *r)
{
	fake_subscribed = false;
	stream_stop(r);
}

#define voter_clock_ms() test_clock_ms()
#define http_client_request fake_client_request
#define ballot_read fake_ballot_read
#define ballot_answer fake_ballot_answer
#define repl_answer fake_repl_answer
#define link_refuse_stale fake_refuse_stale
#define http_request_message fake_request_message
#define http_request_body fake_request_body
#define http_response_header fake_response_header
#define http_respond fake_respond
#define stream_stop fake_stream_stop
#define stream_has_subscriber fake_has_subscriber
#define stream_acked_seq fake_acked_seq
#define calloc test_calloc
#include "replication/election.c"
/* the API thread's gates (view.c) read the published view with the same
 * fake clock: included too, so its voter_clock_ms() is the fake one */
#include "replication/view.c"
#undef calloc
#undef stream_acked_seq
#undef stream_has_subscriber
#undef stream_stop
/* and snapshot.c, whose fetch state holds the applier's first connect off */
#include "replication/snapshot.c"
/* voter_clock_ms() stays the fake in the tests below */

#include <sys/time.h>
#include <unistd.h>

#include <event2/thread.h>

#include "faultvfs.h"
#include "replication/capture.h"
#include "store/committer.h"
#include "store/db.h"
#include "test.h"

static char dir[] = "/tmp/tandem-test-election-XXXXXX";
static char path[160];
static struct event_base *base;
static config cfg;
static db_conn *reader;
static committer *writer;
static capture *cap;
static int no_fetch; /* its address held as the snapshot fetch: no connect */

static const char *good_peer = "127.0.0.1:9";

static repl *open_repl(void)
{
	repl *r = calloc(1, sizeof *r);
	CHECK(r != NULL);
	CHECK_EQ_INT(repl_parts_new(r), 0);
	fake_subscribed = false;
	fake_acked = 0;
	r->env = (repl_env){.base = base, .cfg = &cfg, .self = &cfg.regions[0], .peer = &cfg.regions[1],
			    .reader = reader, .db_path = path, .writer = writer, .capture = cap};
	char err[256] = "";
	CHECK_EQ_INT(election_init(r, err, sizeof err), 0);
	CHECK_EQ_INT(history_load(r), 0);
	r->snapshot->fetch = (fetch *)&no_fetch;
	/* the voter file is shared by the tests: start at the epoch it knows */
	r->epoch = voter_promised(r->election->voter) > 1 ? voter_promised(r->election->voter) : 1;
	return r;
}

/* Put the election in state s without a transition (a test's starting
 * point), with what election_set derives from it. */
static void put(repl *r, election_state s)
{
	r->election->state = s;
	r->primary = s == ELECTION_PRIMARY || s == ELECTION_SWITCHING;
	r->election->switching = s == ELECTION_SWITCHING;
	repl_view_publish(r); /* the gates read the published view */
}

static bool role_change_pending(const repl *r)
{
	return r->election->state == ELECTION_PROMOTING || r->election->state == ELECTION_DEMOTING;
}

/* Run the loop until the role change is written and handled (each loop
 * round waits for an event: the committer's completion or the 50 ms tick). */
static void wait_role_change(repl *r)
{
	for (int i = 0; i < 400 && role_change_pending(r); i++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(!role_change_pending(r));
}

static void fail_all_open(void);

static void close_repl(repl *r)
{
	wait_role_change(r);
	r->stopping = true;
	fail_all_open(); /* frees the rounds still waiting */
	noutbox = 0;
	/* the voter file is shared by the tests: no grant binds into the next */
	CHECK_EQ_INT(voter_drop_grant(r->election->voter), 0);
	election_stop(r);
	applier_stop(r);
	stream_stop(r);
	r->snapshot->fetch = NULL;
	election_free(r);
	repl_parts_free(r);
	free(r);
}

static void db_role(char out[16])
{
	out[0] = '\0';
	CHECK_EQ_INT(capture_read_state(reader, out, NULL, NULL, NULL), 0);
}

/* The open message of election.c to the peer (witness false) or the
 * witness whose target starts with `target`; -1 when there is none. */
static int find_open(repl *r, const char *target, bool witness)
{
	for (int i = 0; i < noutbox; i++)
		if (outbox[i].open && outbox[i].client == (witness ? r->election->to_witness : r->election->to_peer) &&
		    strncmp(outbox[i].target, target, strlen(target)) == 0)
			return i;
	return -1;
}

static int count_open(void)
{
	int n = 0;
	for (int i = 0; i < noutbox; i++)
		n += outbox[i].open;
	return n;
}

/* Answer open message i: rc != 0 is "unreachable", else an HTTP status and
 * a JSON body as a voter sends it. */
static void reply(int i, int rc, int status, const char *json)
{
	CHECK(i >= 0 && i < noutbox);
	if (i < 0 || i >= noutbox || !outbox[i].open)
		return;
	sent_msg *m = &outbox[i];
	m->open = false;
	http_message resp = {.kind = HTTP_RESPONSE, .status = status};
	m->cb(rc, rc ? NULL : &resp, json, json ? strlen(json) : 0, m->arg);
}

static void grant(int i, uint64_t promised)
{
	char json[128];
	snprintf(json, sizeof json, "{\"granted\":true,\"promised_epoch\":%llu,\"boot_id\":\"\"}",
		 (unsigned long long)promised);
	reply(i, 0, 200, json);
}

static void refuse(int i, uint64_t promised, const char *code, int64_t remaining_ms)
{
	char json[256];
	snprintf(json, sizeof json,
		 "{\"granted\":false,\"promised_epoch\":%llu,\"holder\":\"us\",\"remaining_ms\":%lld,"
		 "\"error\":{\"code\":\"%s\",\"message\":\"test\"}}",
		 (unsigned long long)promised, (long long)remaining_ms, code);
	reply(i, 0, 409, json);
}

static void unreachable(int i)
{
	reply(i, ERR_IO, 0, NULL);
}

static void fail_all_open(void)
{
	for (int i = 0; i < noutbox; i++)
		if (outbox[i].open)
			unreachable(i);
}

/* A region that is primary of its epoch with a lease granted by the
 * witness (its own grant first, as lease_renew does). */
static void make_primary_with_lease(repl *r)
{
	put(r, ELECTION_PRIMARY);
	r->election->heard_mono = fake_now;
	lease_renew(r);
	int w = find_open(r, "/internal/v1/lease", true);
	CHECK(w >= 0);
	grant(w, r->epoch);
	unreachable(find_open(r, "/internal/v1/lease", false));
	CHECK(lease_valid(r));
	CHECK(r->election->writes_on);
}

/* Bug pinned: step_down stopped the stream and failed the waiters, then
 * allocated its role job; when that calloc failed it returned, leaving the
 * region neither primary nor follower (no applier, nothing recorded). Now
 * the job comes from the reserve: the step-down is recorded and the region
 * follows. */
static void test_step_down_without_memory_still_follows(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	put(r, ELECTION_PRIMARY);
	char role[16];
	for (int round = 0; round < 2; round++) { /* the reserve comes back for the next time */
		put(r, ELECTION_PRIMARY);
		alloc_countdown = 0; /* step_down's calloc fails */
		step_down(r, r->epoch, "stepping down (test)", false);
		alloc_countdown = -1;
		CHECK(!r->primary);
		CHECK(!lease_valid(r));
		CHECK(r->election->state == ELECTION_DEMOTING); /* the demotion is being recorded */
		wait_role_change(r);
		CHECK(applier_running(r));   /* following the primary */
		CHECK(r->election->role_reserve != NULL); /* given back */
		db_role(role);
		CHECK_EQ_STR(role, "secondary");
		applier_stop(r);
	}
	close_repl(r);
}

/* Bug pinned: applier_start could fail half set up (here: the peer's
 * address does not parse, so its clients cannot be made) and leave its
 * reconnect timer behind; the next call then said "already running" (0)
 * with nothing running. Now it fails cleanly every time, and works once it
 * can. */
static void test_applier_start_is_never_half_done(void)
{
	repl *r = open_repl();
	snprintf(cfg.regions[1].link_listen, sizeof cfg.regions[1].link_listen, "%s", "no port here");
	CHECK_EQ_INT(applier_start(r), ERR_NOMEM);
	CHECK(!applier_running(r) && applier_control_client(r) == NULL);
	CHECK_EQ_INT(applier_start(r), ERR_NOMEM); /* not "already running" */
	CHECK(!applier_running(r));
	snprintf(cfg.regions[1].link_listen, sizeof cfg.regions[1].link_listen, "%s", good_peer);
	CHECK_EQ_INT(applier_start(r), 0);
	CHECK(applier_running(r) && applier_control_client(r) != NULL);
	close_repl(r);
}

/* Bug pinned: the callers of applier_start (a lost election after the
 * drain, a role change that could not be recorded, a step-down) ignored its
 * result: a region whose applier did not start stayed a secondary that
 * never streams again. Now the tick starts it once it can. */
static void test_a_failed_follow_is_retried_by_the_tick(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	put(r, ELECTION_DRAINING); /* drained: the applier is stopped */
	snprintf(cfg.regions[1].link_listen, sizeof cfg.regions[1].link_listen, "%s", "no port here");
	stand_abort(r, "no majority (test)");
	CHECK(!applier_running(r));
	CHECK(r->election->follow_failed);
	tick_cb(-1, EV_TIMEOUT, r); /* still cannot */
	CHECK(!applier_running(r));
	snprintf(cfg.regions[1].link_listen, sizeof cfg.regions[1].link_listen, "%s", good_peer);
	r->election->contact_mono = voter_clock_ms(); /* a primary was heard: no candidacy now */
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK(applier_running(r));
	CHECK(!r->election->follow_failed);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	close_repl(r);
}

/* Bug pinned: lease_timer_cb re-armed itself with {0, (left + 1) * 1000}:
 * up to lease_ms x 1000 in tv_usec, which libevent requires below 1000000.
 * The timer must be due `left` ms from now, as a valid timeval. */
static void test_lease_timer_rearm_is_a_valid_timeval(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	put(r, ELECTION_PRIMARY);
	r->election->lease_until = voter_clock_ms() + 3000;
	lease_timer_cb(-1, EV_TIMEOUT, r); /* "fired early": once more */
	struct timeval due, now;
	CHECK(event_pending(r->election->lease_timer, EV_TIMEOUT, &due));
	gettimeofday(&now, NULL);
	CHECK(due.tv_usec >= 0 && due.tv_usec < 1000000);
	int64_t in_ms = ((int64_t)due.tv_sec - now.tv_sec) * 1000 + ((int64_t)due.tv_usec - now.tv_usec) / 1000;
	CHECK(in_ms > 2900 && in_ms <= 3100);
	put(r, ELECTION_FOLLOWER);
	close_repl(r);
}

/* Bug pinned: stream_start made its heartbeat timer, then failed to make
 * the trim timer and returned ERR_NOMEM with the heartbeat left behind; the
 * next call said "already running" (0) without a trim timer. Now it fails
 * with nothing started, and works once it can. */
static void test_stream_start_is_never_half_done(void)
{
	repl *r = open_repl();
	put(r, ELECTION_PRIMARY);
	ev_alloc_countdown = 1; /* the heartbeat is made, the trim timer not */
	CHECK_EQ_INT(stream_start(r), ERR_NOMEM);
	ev_alloc_countdown = -1;
	CHECK(!stream_running(r));
	CHECK_EQ_INT(stream_start(r), 0);
	CHECK(stream_running(r));
	stream_stop(r);
	put(r, ELECTION_FOLLOWER);
	close_repl(r);
}

/* The isolation gate: writes only while another voter was heard from
 * within isolation_ms; the check after the commit too; off without a
 * witness or with isolation_ms = 0. The clock is the voter clock: the test
 * moves heard_mono instead of waiting. */
static void test_isolation_gate(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	put(r, ELECTION_PRIMARY);
	r->election->lease_until = voter_clock_ms() + 3000;
	repl_view_publish(r); /* the gates read the published view */
	const char *code = NULL, *message = NULL;
	r->election->heard_mono = voter_clock_ms();
	repl_view_publish(r); /* the gates read the published view */
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	r->election->heard_mono = voter_clock_ms() - cfg.failover.isolation_ms - 1;
	repl_view_publish(r); /* the gates read the published view */
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), ERR_AGAIN);
	CHECK_EQ_STR(code, "no_quorum");
	CHECK_EQ_INT(repl_ack_gate(r, &code, &message), ERR_AGAIN);
	CHECK_EQ_STR(code, "no_quorum");
	CHECK_EQ_INT(r->no_quorum_refusals, 2);
	CHECK_EQ_INT(repl_write_gate_peek(r, &code, &message), ERR_AGAIN); /* not counted */
	CHECK_EQ_INT(r->no_quorum_refusals, 2);
	/* a lease answer or an ack opens it again */
	election_heard(r);
	repl_view_publish(r); /* the gates read the published view */
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	/* the lease comes first */
	r->election->heard_mono = voter_clock_ms() - cfg.failover.isolation_ms - 1;
	repl_view_publish(r); /* the gates read the published view */
	r->election->lease_until = 0;
	repl_view_publish(r); /* the gates read the published view */
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), ERR_AGAIN);
	CHECK_EQ_STR(code, "no_lease");
	/* off: isolation_ms = 0, or no witness (then no lease is needed) */
	r->election->lease_until = voter_clock_ms() + 3000;
	repl_view_publish(r); /* the gates read the published view */
	cfg.failover.isolation_ms = 0;
	repl_view_publish(r); /* the gates read the published view */
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	cfg.failover.isolation_ms = 1000;
	repl_view_publish(r); /* the gates read the published view */
	const char *witness = r->election->witness_addr;
	r->election->witness_addr = "";
	repl_view_publish(r); /* the gates read the published view */
	r->election->lease_until = 0;
	repl_view_publish(r); /* the gates read the published view */
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	r->election->witness_addr = witness;
	repl_view_publish(r); /* the gates read the published view */
	/* with nothing heard for half the bound, the tick probes early */
	r->election->heard_mono = voter_clock_ms() - cfg.failover.isolation_ms / 2;
	repl_view_publish(r); /* the gates read the published view */
	r->election->last_renew = voter_clock_ms() - cfg.failover.isolation_ms / 2;
	r->election->next_renew = voter_clock_ms() + 100000;
	r->election->peer_busy = r->election->witness_busy = false;
	int64_t before = voter_clock_ms();
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK(r->election->last_renew >= before); /* a lease round went out now */
	put(r, ELECTION_FOLLOWER);
	close_repl(r);
}

/* --- the state machine --- */

/* The diagram's edges, written out again here from the design block of
 * election.c: the table in the code must be exactly these. */
static bool diagram_edge(election_state from, election_state to)
{
	static const struct {
		election_state from, to;
	} edges[] = {
		{ELECTION_FOLLOWER, ELECTION_PRE_CANDIDATE},  /* (1) */
		{ELECTION_FOLLOWER, ELECTION_DRAINING},       /* (2) */
		{ELECTION_PRE_CANDIDATE, ELECTION_DRAINING},  /* (3) */
		{ELECTION_DRAINING, ELECTION_CANDIDATE},      /* (4) */
		{ELECTION_CANDIDATE, ELECTION_PROMOTING},     /* (5) */
		{ELECTION_PROMOTING, ELECTION_PRIMARY},       /* (6) */
		{ELECTION_PRIMARY, ELECTION_SWITCHING},       /* (7) */
		{ELECTION_SWITCHING, ELECTION_PRIMARY},       /* (8) */
		{ELECTION_PRIMARY, ELECTION_DEMOTING},        /* (9) */
		{ELECTION_SWITCHING, ELECTION_DEMOTING},      /* (9), (10) */
		{ELECTION_DEMOTING, ELECTION_FOLLOWER},       /* (11) */
		{ELECTION_PRE_CANDIDATE, ELECTION_FOLLOWER},  /* (a) */
		{ELECTION_DRAINING, ELECTION_FOLLOWER},       /* (b) */
		{ELECTION_CANDIDATE, ELECTION_FOLLOWER},      /* (c) */
		{ELECTION_PROMOTING, ELECTION_FOLLOWER},      /* (d) */
		{ELECTION_PRIMARY, ELECTION_FOLLOWER},        /* (e) */
		{ELECTION_SWITCHING, ELECTION_FOLLOWER},      /* (e) */
	};
	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
		if (edges[i].from == from && edges[i].to == to)
			return true;
	return false;
}

/* election_set takes every edge of the diagram, derives primary/switching
 * from the new state, and refuses every other pair (a bug: logged, the
 * state and what is derived from it left as they were, never a crash). */
static void test_every_edge_and_only_those(void)
{
	repl *r = open_repl();
	int taken = 0;
	for (int from = 0; from < ELECTION_STATES; from++)
		for (int to = 0; to < ELECTION_STATES; to++) {
			put(r, (election_state)from);
			int rc = election_set(r, (election_state)to, "test");
			if (diagram_edge((election_state)from, (election_state)to)) {
				taken++;
				CHECK_EQ_INT(rc, 0);
				CHECK_EQ_INT(r->election->state, to);
				CHECK_EQ_INT(r->primary, to == ELECTION_PRIMARY || to == ELECTION_SWITCHING);
				CHECK_EQ_INT(r->election->switching, to == ELECTION_SWITCHING);
			} else {
				CHECK_EQ_INT(rc, ERR_CONFLICT);
				CHECK_EQ_INT(r->election->state, from);
				CHECK_EQ_INT(r->primary, from == ELECTION_PRIMARY || from == ELECTION_SWITCHING);
			}
		}
	CHECK_EQ_INT(taken, 17);
	CHECK_EQ_STR(election_state_name(ELECTION_PRE_CANDIDATE), "pre_candidate");
	CHECK_EQ_STR(election_state_name((election_state)99), "invalid");
	put(r, ELECTION_FOLLOWER);
	close_repl(r);
}

/* Edges (1) (3) (4) (5) (6): a follower that hears no primary for
 * election_timeout_ms pre-votes, drains (the vote waits for the entries in
 * the writer queue), casts its own vote, is elected with the witness's,
 * records the role and becomes primary; it writes once the lease round it
 * starts at once wins. */
static void test_a_silent_primary_is_replaced(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	uint64_t promised = voter_promised(r->election->voter);
	uint64_t won = r->election->elections_won;
	/* a primary was heard just now: nothing */
	fake_now += cfg.failover.election_timeout_ms - 1;
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK_EQ_INT(count_open(), 0);
	/* (1): silent for the whole timeout */
	fake_now += 1;
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_PRE_CANDIDATE);
	CHECK_EQ_INT(r->election->stand_epoch, promised + 1);
	int pw = find_open(r, "/internal/v1/vote", true), pp = find_open(r, "/internal/v1/vote", false);
	CHECK(pw >= 0 && pp >= 0);
	CHECK(strstr(outbox[pw].body, "\"pre\":true") != NULL);
	CHECK_EQ_INT(voter_promised(r->election->voter), promised); /* a pre-vote changes nothing */
	CHECK(applier_running(r));                      /* still following meanwhile */
	/* (3): the witness would vote: drain; the applier stops */
	grant(pw, promised);
	CHECK_EQ_INT(r->election->state, ELECTION_DRAINING);
	CHECK(!applier_running(r));
	unreachable(pp);
	/* (4) waits for the writer queue: an entry still being applied */
	applier_hold(r);
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_DRAINING);
	CHECK_EQ_INT(count_open(), 0);
	CHECK_EQ_INT(voter_promised(r->election->voter), promised);
	applier_release(r);
	r->position = 0; /* what the drained log holds */
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_CANDIDATE);
	CHECK_EQ_INT(voter_promised(r->election->voter), promised + 1); /* own vote, persisted */
	int vw = find_open(r, "/internal/v1/vote", true), vp = find_open(r, "/internal/v1/vote", false);
	CHECK(vw >= 0 && vp >= 0);
	CHECK(strstr(outbox[vw].body, "\"pre\":false") != NULL);
	CHECK(strstr(outbox[vw].body, "\"last_seq\":0") != NULL);
	/* (5): the witness's vote makes a majority at once */
	grant(vw, promised + 1);
	CHECK_EQ_INT(r->election->state, ELECTION_PROMOTING);
	CHECK(!r->primary);
	const char *code = NULL, *message = NULL;
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), ERR_AGAIN); /* not yet */
	/* (6): recorded */
	wait_role_change(r);
	CHECK_EQ_INT(r->election->state, ELECTION_PRIMARY);
	CHECK(r->primary);
	CHECK_EQ_INT(r->epoch, promised + 1);
	CHECK_EQ_INT(r->election->elections_won, won + 1);
	CHECK_EQ_INT(history_epoch_at(r, 1), promised + 1);
	char role[16];
	db_role(role);
	CHECK_EQ_STR(role, "primary");
	/* no writes before a lease; the round went out on its own */
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), ERR_AGAIN);
	CHECK_EQ_STR(code, "no_lease");
	int lw = find_open(r, "/internal/v1/lease", true);
	CHECK(lw >= 0);
	grant(lw, promised + 1);
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	CHECK(r->election->writes_on);
	close_repl(r);
}

/* A follower that heard no primary for election_timeout_ms: it has sent
 * its pre-vote (PRE_CANDIDATE); *promised is its voter's promise before. */
static repl *open_pre_candidate(uint64_t *promised)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	*promised = voter_promised(r->election->voter);
	fake_now += cfg.failover.election_timeout_ms;
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_PRE_CANDIDATE);
	return r;
}

/* Edge (a), a pre-vote refusal: the witness's grant to the primary still
 * binds (lease_held, 2300 ms more), the peer is unreachable: back to
 * follower, no promise raised anywhere, the applier never stopped, and the
 * next candidacy waits for the binding time, not just vote_retry_ms. */
static void test_pre_vote_refused_changes_nothing(void)
{
	uint64_t promised;
	repl *r = open_pre_candidate(&promised);
	refuse(find_open(r, "/internal/v1/vote", true), promised, "lease_held", 2300);
	unreachable(find_open(r, "/internal/v1/vote", false));
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK_EQ_INT(voter_promised(r->election->voter), promised);
	CHECK(applier_running(r));
	CHECK_EQ_INT(r->election->next_stand, fake_now + (2300 > cfg.failover.vote_retry_ms ? 2300 : cfg.failover.vote_retry_ms));
	/* and not before then */
	fake_now = r->election->next_stand - 1;
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK_EQ_INT(count_open(), 0);
	close_repl(r);
}

/* A pre-vote while a valid primary is heard: this region granted the
 * primary (us) a lease, which binds on the voter's clock; however long the
 * election clock says the primary was silent, it does not stand (no round
 * goes out) until its own grant has expired. */
static void test_no_candidacy_while_our_grant_to_the_primary_binds(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	fake_req lease = {.b = {.epoch = r->epoch}};
	snprintf(lease.b.who, sizeof lease.b.who, "us");
	election_handle_lease(r, (http_request *)&lease, "us");
	CHECK(lease.answered && lease.a.granted);
	CHECK_EQ_INT(r->election->contact_mono, fake_now);
	fake_now += cfg.failover.election_timeout_ms;
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK_EQ_INT(count_open(), 0);
	CHECK(r->election->next_stand > fake_now);
	close_repl(r);
}

/* At a primary, a pre-vote and a vote from the other region are refused
 * (its own grant binds: lease_held) and change nothing: neither a promise
 * nor the role. Only a forced vote (the operator's --force) makes it step
 * down (edge (9)), at once, before the new primary can start. */
static void test_votes_at_a_primary(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	make_primary_with_lease(r);
	uint64_t e = r->epoch, promised = voter_promised(r->election->voter);
	fake_req pre = {.b = {.epoch = e + 1, .last_epoch = history_epoch_at(r, r->position),
			      .last_seq = r->position, .pre = true}};
	snprintf(pre.b.who, sizeof pre.b.who, "us");
	election_handle_vote(r, (http_request *)&pre, "us");
	CHECK(pre.answered && !pre.a.granted);
	CHECK_EQ_STR(pre.code, "lease_held");
	CHECK_EQ_INT(r->election->state, ELECTION_PRIMARY);
	CHECK_EQ_INT(voter_promised(r->election->voter), promised);
	fake_req vote = pre;
	vote.b.pre = false;
	vote.answered = false;
	election_handle_vote(r, (http_request *)&vote, "us");
	CHECK(vote.answered && !vote.a.granted);
	CHECK_EQ_INT(r->election->state, ELECTION_PRIMARY);
	CHECK(r->election->writes_on);
	fake_req forced = vote;
	forced.b.force = true;
	forced.answered = false;
	election_handle_vote(r, (http_request *)&forced, "us");
	CHECK(forced.answered);
	CHECK_EQ_INT(r->election->state, ELECTION_DEMOTING);
	CHECK(!r->election->writes_on);
	CHECK(voter_promised(r->election->voter) >= e + 1);
	wait_role_change(r);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	close_repl(r);
}

/* Edge (c): the vote round is refused (the witness knows a newer epoch;
 * the peer is unreachable): a follower again, following, and the next
 * candidacy goes above the promise it learned. */
static void test_lost_election(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	put(r, ELECTION_DRAINING);
	applier_stop(r);
	r->election->stand_epoch = voter_promised(r->election->voter) + 1;
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_CANDIDATE);
	uint64_t newer = r->election->stand_epoch + 3;
	refuse(find_open(r, "/internal/v1/vote", true), newer, "stale_epoch", 0);
	CHECK_EQ_INT(r->election->state, ELECTION_CANDIDATE); /* the peer may still vote */
	unreachable(find_open(r, "/internal/v1/vote", false));
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK(applier_running(r));
	CHECK_EQ_INT(voter_promised(r->election->voter), newer);
	CHECK_EQ_INT(r->election->next_stand, fake_now + cfg.failover.vote_retry_ms);
	CHECK_EQ_INT(rules_stand_epoch(voter_promised(r->election->voter), r->epoch), newer + 1);
	close_repl(r);
}

/* Edge (b): the own vote is refused (a newer epoch was promised here since
 * the pre-vote): a follower again, following, standing above it next. */
static void test_own_vote_refused_while_draining(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	put(r, ELECTION_DRAINING);
	applier_stop(r);
	uint64_t promised = voter_promised(r->election->voter);
	r->election->stand_epoch = promised; /* not above the promise: stale */
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK_EQ_INT(count_open(), 0);
	CHECK_EQ_INT(r->election->stand_epoch, promised + 1);
	CHECK(applier_running(r));
	close_repl(r);
}

/* Bug pinned: cast_votes persisted its own vote (promised_epoch raised)
 * and only then allocated the round; out of memory, the candidacy ended
 * with a promise raised for nothing, which refuses the next primary's
 * lease requests of the old epoch. Now the round is allocated first:
 * the promise is unchanged. */
static void test_out_of_memory_before_the_own_vote_changes_no_promise(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	put(r, ELECTION_DRAINING);
	applier_stop(r);
	uint64_t promised = voter_promised(r->election->voter);
	r->election->stand_epoch = promised + 1;
	alloc_countdown = 0;
	cast_votes(r);
	alloc_countdown = -1;
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK_EQ_INT(voter_promised(r->election->voter), promised);
	CHECK(applier_running(r));
	close_repl(r);
}

/* Out of memory when a follower stands: it stays a follower (nothing sent,
 * nothing promised) and tries again after vote_retry_ms. */
static void test_out_of_memory_when_standing(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	fake_now += cfg.failover.election_timeout_ms;
	alloc_countdown = 0;
	tick_cb(-1, EV_TIMEOUT, r);
	alloc_countdown = -1;
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK_EQ_INT(count_open(), 0);
	CHECK_EQ_INT(r->election->next_stand, fake_now + cfg.failover.vote_retry_ms);
	close_repl(r);
}

/* Edge (d): the writer cannot record the new role (SQLITE_BUSY on the
 * WAL's write lock; SQLITE_IOERR on a write): the region stays a follower
 * (not primary, no writes, the role in the database unchanged), follows
 * again and stands later. */
static void test_promotion_not_recorded_stays_a_follower(void)
{
	struct {
		faultvfs_method m;
		int code;
	} faults[] = {{FAULTVFS_SHMLOCK, SQLITE_BUSY}, {FAULTVFS_WRITE, SQLITE_IOERR}};
	for (int k = 0; k < 2; k++) {
		repl *r = open_repl();
		CHECK_EQ_INT(election_start(r), 0);
		char before[16];
		db_role(before);
		put(r, ELECTION_DRAINING);
		applier_stop(r);
		r->election->stand_epoch = voter_promised(r->election->voter) + 1;
		tick_cb(-1, EV_TIMEOUT, r);
		CHECK_EQ_INT(r->election->state, ELECTION_CANDIDATE);
		faultvfs_arm(faults[k].m, 1, faults[k].code, -1);
		grant(find_open(r, "/internal/v1/vote", true), r->election->stand_epoch);
		CHECK_EQ_INT(r->election->state, ELECTION_PROMOTING);
		wait_role_change(r);
		faultvfs_disarm();
		CHECK(faultvfs_injected() > 0);
		CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
		CHECK(!r->primary);
		CHECK(applier_running(r));
		CHECK_EQ_INT(r->election->next_stand, fake_now + cfg.failover.vote_retry_ms);
		const char *code = NULL, *message = NULL;
		CHECK_EQ_INT(repl_write_gate(r, &code, &message), ERR_AGAIN);
		char after[16];
		db_role(after);
		CHECK_EQ_STR(after, before);
		close_repl(r);
	}
}

/* Edges (9) (11) with the demotion not recorded (SQLITE_IOERR): the region
 * stopped writing at the step-down already; it follows anyway. */
static void test_step_down_not_recorded_still_follows(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	make_primary_with_lease(r);
	faultvfs_arm(FAULTVFS_WRITE, 1, SQLITE_IOERR, -1);
	election_learn(r, r->epoch + 1);
	CHECK_EQ_INT(r->election->state, ELECTION_DEMOTING);
	const char *code = NULL, *message = NULL;
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), ERR_AGAIN);
	wait_role_change(r);
	faultvfs_disarm();
	CHECK(faultvfs_injected() > 0);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK(applier_running(r));
	CHECK(!r->election->writes_on);
	close_repl(r);
}

/* Edge (e): a step-down with neither memory nor the reserve role job
 * (cannot happen: the reserve comes back with every step-down) goes
 * straight to follower, unrecorded, and follows: never half way. */
static void test_step_down_with_no_role_job_at_all(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	make_primary_with_lease(r);
	void *reserve = r->election->role_reserve;
	r->election->role_reserve = NULL;
	alloc_countdown = 0;
	step_down(r, r->epoch, "test", false);
	alloc_countdown = -1;
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK(!r->primary && !r->election->writes_on);
	CHECK(applier_running(r));
	r->election->role_reserve = reserve;
	close_repl(r);
}

/* Edge (2): a forced failover skips the pre-vote (the voters' grants bind;
 * the forced vote drops them): straight to draining, nothing sent yet. */
static void test_forced_failover_skips_the_pre_vote(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	r->election->stand_force = true;
	stand(r);
	CHECK_EQ_INT(r->election->state, ELECTION_DRAINING);
	CHECK_EQ_INT(count_open(), 0);
	CHECK(!applier_running(r));
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_CANDIDATE);
	int v = find_open(r, "/internal/v1/vote", true);
	CHECK(v >= 0 && strstr(outbox[v].body, "\"force\":true") != NULL);
	/* a forced vote waits for every answer: one grant does not decide */
	grant(v, r->election->stand_epoch);
	CHECK_EQ_INT(r->election->state, ELECTION_CANDIDATE);
	unreachable(find_open(r, "/internal/v1/vote", false));
	CHECK_EQ_INT(r->election->state, ELECTION_PROMOTING);
	wait_role_change(r);
	CHECK_EQ_INT(r->election->state, ELECTION_PRIMARY);
	close_repl(r);
}

/* A handover that releases our grant to the old primary starts a
 * candidacy at once (edge (1), through the pre-vote); one of an older
 * epoch is refused (stale_epoch) and starts nothing. */
static void test_handover(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	fake_req lease = {.b = {.epoch = r->epoch}};
	snprintf(lease.b.who, sizeof lease.b.who, "us");
	election_handle_lease(r, (http_request *)&lease, "us");
	CHECK(lease.a.granted);
	fake_req old = {.b = {.epoch = r->epoch - 1}};
	snprintf(old.b.who, sizeof old.b.who, "us");
	if (r->epoch > 1) {
		election_handle_handover(r, (http_request *)&old, "us");
		CHECK_EQ_INT(old.status, 409);
		CHECK_EQ_STR(old.code, "stale_epoch");
		CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	}
	fake_req ho = {.b = {.epoch = r->epoch}};
	snprintf(ho.b.who, sizeof ho.b.who, "us");
	election_handle_handover(r, (http_request *)&ho, "us");
	CHECK_EQ_INT(ho.status, 200);
	CHECK(strstr(ho.text, "\"released\":true") != NULL);
	CHECK_EQ_INT(r->election->state, ELECTION_PRE_CANDIDATE);
	CHECK(find_open(r, "/internal/v1/vote", true) >= 0);
	close_repl(r);
}

/* A handover from a primary that had its lease from the witness alone
 * (this region never granted it one: nothing to release) still makes this
 * region stand at once. Before, it waited out election_timeout_ms and the
 * witness's grant: CI's TSan run saw `tandem switchover` give up after
 * 10 s ("did not take writes"). A handover after a newer promise starts
 * nothing. */
static void test_handover_without_our_grant(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	fake_req late = {.b = {.epoch = r->epoch}};
	snprintf(late.b.who, sizeof late.b.who, "us");
	uint64_t promised = voter_promised(r->election->voter);
	CHECK_EQ_INT(voter_learn(r->election->voter, r->epoch + 1), 0); /* a newer epoch promised here */
	election_handle_handover(r, (http_request *)&late, "us");
	CHECK_EQ_INT(late.status, 200);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK_EQ_INT(count_open(), 0);
	close_repl(r);

	r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	promised = voter_promised(r->election->voter);
	fake_req ho = {.b = {.epoch = r->epoch}};
	snprintf(ho.b.who, sizeof ho.b.who, "us");
	election_handle_handover(r, (http_request *)&ho, "us");
	CHECK_EQ_INT(ho.status, 200);
	CHECK(strstr(ho.text, "\"released\":false") != NULL);
	CHECK_EQ_INT(r->election->state, ELECTION_PRE_CANDIDATE);
	CHECK_EQ_INT(voter_promised(r->election->voter), promised);
	CHECK(find_open(r, "/internal/v1/vote", true) >= 0);
	close_repl(r);
}

/* A handover while a pre-vote of ours is in flight (sent before the old
 * primary let go of its grant, so refused): once the round ends, the next
 * tick stands again at once, not after the refusal's remaining_ms (the
 * witness's grant) or vote_retry_ms. Only once: the tick after that waits
 * as usual. */
static void test_handover_during_a_round(void)
{
	uint64_t promised;
	repl *r = open_pre_candidate(&promised);
	int pw = find_open(r, "/internal/v1/vote", true), pp = find_open(r, "/internal/v1/vote", false);
	CHECK(pw >= 0 && pp >= 0);
	fake_req ho = {.b = {.epoch = r->epoch}};
	snprintf(ho.b.who, sizeof ho.b.who, "us");
	election_handle_handover(r, (http_request *)&ho, "us");
	CHECK_EQ_INT(ho.status, 200);
	CHECK_EQ_INT(r->election->state, ELECTION_PRE_CANDIDATE); /* the round in flight goes on */
	CHECK_EQ_INT(count_open(), 2);
	refuse(pw, promised, "lease_held", 2300);
	refuse(pp, promised, "lease_held", 2300);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK(r->election->next_stand > fake_now);
	tick_cb(-1, EV_TIMEOUT, r); /* the same instant: the deferred stand */
	CHECK_EQ_INT(r->election->state, ELECTION_PRE_CANDIDATE);
	pw = find_open(r, "/internal/v1/vote", true);
	pp = find_open(r, "/internal/v1/vote", false);
	CHECK(pw >= 0 && pp >= 0);
	/* refused again: now it waits as any refused pre-vote does */
	refuse(pw, promised, "lease_held", 2300);
	refuse(pp, promised, "lease_held", 2300);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK_EQ_INT(count_open(), 0);
	close_repl(r);
}

/* Edges (7) (8) (10) (11): a switchover pauses writes (SWITCHING); past
 * switchover_timeout_ms without the target's ack it is abandoned and
 * writes resume (PRIMARY, 504 to the operator); once the target has
 * acked everything, the primary steps down, records it, drops its own
 * grant and hands over (200 to the operator). */
static void test_switchover(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	make_primary_with_lease(r);
	fake_subscribed = true;
	r->position = 10;
	fake_acked = 5;
	fake_req sw = {.m = {.method = "POST", .target = "/internal/v1/admin/switchover"}, .body = "{\"to\":\"us\"}"};
	election_handle_admin(r, (http_request *)&sw, "admin");
	CHECK_EQ_INT(r->election->state, ELECTION_SWITCHING);
	CHECK(!sw.answered); /* answered with the outcome */
	const char *code = NULL, *message = NULL;
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), ERR_AGAIN);
	CHECK_EQ_STR(code, "switchover_in_progress");
	/* a second request meanwhile: busy */
	fake_req again = sw;
	election_handle_admin(r, (http_request *)&again, "admin");
	CHECK_EQ_INT(again.status, 409);
	CHECK_EQ_STR(again.code, "busy");
	/* (8) */
	fake_now += cfg.failover.switchover_timeout_ms + 1;
	r->election->heard_mono = fake_now;
	r->election->lease_until = fake_now + 3000;
	r->election->next_renew = fake_now + 100000;
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_PRIMARY);
	CHECK_EQ_INT(sw.status, 504);
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	/* (7) again, then (10): everything acked */
	fake_req sw2 = sw;
	sw2.answered = false;
	sw2.status = 0;
	fake_subscribed = true;
	election_handle_admin(r, (http_request *)&sw2, "admin");
	CHECK_EQ_INT(r->election->state, ELECTION_SWITCHING);
	fake_acked = 10;
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->state, ELECTION_DEMOTING);
	wait_role_change(r);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK_EQ_INT(sw2.status, 200);
	CHECK(strstr(sw2.text, "handed_over") != NULL);
	CHECK(find_open(r, "/internal/v1/handover", false) >= 0);
	char holder[32];
	CHECK(!voter_binds_other(r->election->voter, "us", NULL, holder)); /* own grant dropped */
	close_repl(r);
}

/* Stale epochs. An older epoch's primary does not count as contact, its
 * lease request and handover are refused; a newer epoch makes a primary
 * step down, whether it comes as a lease request or as a refusal of its
 * own renewal that carries a newer promise. */
static void test_stale_and_newer_epochs(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	r->epoch = voter_promised(r->election->voter) + 2;
	CHECK_EQ_INT(voter_learn(r->election->voter, r->epoch), 0);
	uint64_t e = r->epoch;
	int64_t contact = r->election->contact_mono;
	fake_now += 100;
	election_contact(r, e - 1); /* a deposed primary */
	CHECK_EQ_INT(r->election->contact_mono, contact);
	fake_req lease = {.b = {.epoch = e - 1}};
	snprintf(lease.b.who, sizeof lease.b.who, "us");
	election_handle_lease(r, (http_request *)&lease, "us");
	CHECK(lease.answered && !lease.a.granted);
	CHECK_EQ_STR(lease.code, "stale_epoch");
	CHECK_EQ_INT(r->election->contact_mono, contact);
	election_contact(r, e);
	CHECK_EQ_INT(r->election->contact_mono, fake_now);
	/* a primary meets a lease request of a newer epoch: steps down */
	make_primary_with_lease(r);
	fake_req newer = {.b = {.epoch = e + 1}};
	snprintf(newer.b.who, sizeof newer.b.who, "us");
	election_handle_lease(r, (http_request *)&newer, "us");
	CHECK_EQ_INT(r->election->state, ELECTION_DEMOTING);
	CHECK(!lease_valid(r));
	wait_role_change(r);
	CHECK_EQ_INT(r->election->state, ELECTION_FOLLOWER);
	CHECK_EQ_INT(voter_promised(r->election->voter), e + 1);
	CHECK_EQ_INT(voter_drop_grant(r->election->voter), 0);
	/* a primary whose renewal is refused with a newer promise steps down */
	r->epoch = e + 1;
	make_primary_with_lease(r);
	lease_renew(r);
	refuse(find_open(r, "/internal/v1/lease", true), e + 3, "stale_epoch", 0);
	CHECK_EQ_INT(r->election->state, ELECTION_DEMOTING);
	CHECK_EQ_INT(voter_promised(r->election->voter), e + 3);
	close_repl(r);
}

/* Lease expiry: the lease runs from the round's send (a grant that comes
 * back late does not lengthen it: the model's BROKEN_TSEND); when the
 * clock passes it, the timer logs writes off and counts a lost lease, the
 * gate refuses with no_lease, the state stays PRIMARY (no transition);
 * the next won round opens writes again. */
static void test_lease_expiry_refuses_writes(void)
{
	repl *r = open_repl();
	CHECK_EQ_INT(election_start(r), 0);
	put(r, ELECTION_PRIMARY);
	r->election->heard_mono = fake_now;
	int64_t t_send = fake_now;
	lease_renew(r);
	fake_now += 1000; /* the grant arrives a second later */
	r->election->heard_mono = fake_now;
	grant(find_open(r, "/internal/v1/lease", true), r->epoch);
	unreachable(find_open(r, "/internal/v1/lease", false));
	CHECK_EQ_INT(r->election->lease_until, rules_lease_end(&cfg.failover, t_send));
	const char *code = NULL, *message = NULL;
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	uint64_t lost = r->election->leases_lost;
	fake_now = r->election->lease_until; /* the last ms of it: still valid? no: until is exclusive */
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), ERR_AGAIN);
	CHECK_EQ_STR(code, "no_lease");
	fake_now = r->election->lease_until + 1;
	r->election->heard_mono = fake_now;
	lease_timer_cb(-1, EV_TIMEOUT, r);
	CHECK_EQ_INT(r->election->leases_lost, lost + 1);
	CHECK(!r->election->writes_on);
	CHECK_EQ_INT(r->election->state, ELECTION_PRIMARY);
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), ERR_AGAIN);
	CHECK_EQ_STR(code, "no_lease");
	/* renewed: writes again */
	lease_renew(r);
	grant(find_open(r, "/internal/v1/lease", false), r->epoch);
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	CHECK(r->election->writes_on);
	close_repl(r);
}

int main(void)
{
	event_set_mem_functions(ev_malloc, ev_realloc, free); /* before any libevent allocation */
	evthread_use_pthreads();
	base = event_base_new();
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/test.db", dir);
	config_defaults(&cfg);
	snprintf(cfg.witness.listen, sizeof cfg.witness.listen, "%s", "127.0.0.1:9");
	cfg.region_count = 2;
	snprintf(cfg.regions[0].name, sizeof cfg.regions[0].name, "eu");
	snprintf(cfg.regions[0].data_dir, sizeof cfg.regions[0].data_dir, "%s", dir);
	snprintf(cfg.regions[0].link_listen, sizeof cfg.regions[0].link_listen, "127.0.0.1:1");
	snprintf(cfg.regions[1].name, sizeof cfg.regions[1].name, "us");
	snprintf(cfg.regions[1].link_listen, sizeof cfg.regions[1].link_listen, "%s", good_peer);
	CHECK_EQ_INT(faultvfs_install(), SQLITE_OK); /* before any connection */
	char err[256];
	db_conn *w = db_open(path, false, err, sizeof err);
	CHECK(w != NULL);
	CHECK_EQ_INT(capture_bootstrap(w, "primary", err, sizeof err), 0);
	writer = committer_new(base, w, 16, 100);
	CHECK(writer != NULL);
	reader = db_open(path, true, err, sizeof err);
	CHECK(reader != NULL);
	cap = capture_new();
	CHECK(cap != NULL);
	RUN(test_step_down_without_memory_still_follows);
	RUN(test_applier_start_is_never_half_done);
	RUN(test_a_failed_follow_is_retried_by_the_tick);
	RUN(test_lease_timer_rearm_is_a_valid_timeval);
	RUN(test_stream_start_is_never_half_done);
	RUN(test_isolation_gate);
	RUN(test_every_edge_and_only_those);
	RUN(test_a_silent_primary_is_replaced);
	RUN(test_pre_vote_refused_changes_nothing);
	RUN(test_no_candidacy_while_our_grant_to_the_primary_binds);
	RUN(test_votes_at_a_primary);
	RUN(test_lost_election);
	RUN(test_own_vote_refused_while_draining);
	RUN(test_out_of_memory_before_the_own_vote_changes_no_promise);
	RUN(test_out_of_memory_when_standing);
	RUN(test_promotion_not_recorded_stays_a_follower);
	RUN(test_step_down_not_recorded_still_follows);
	RUN(test_step_down_with_no_role_job_at_all);
	RUN(test_forced_failover_skips_the_pre_vote);
	RUN(test_handover);
	RUN(test_handover_without_our_grant);
	RUN(test_handover_during_a_round);
	RUN(test_switchover);
	RUN(test_stale_and_newer_epochs);
	RUN(test_lease_expiry_refuses_writes);
	committer_free(&writer);
	db_close(&reader);
	capture_free(&cap);
	event_base_free(base);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TEST_SUMMARY();
}
