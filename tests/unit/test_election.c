/*
 * test_election.c - the failure paths of src/replication/election.c, driven
 * without a peer: the file is included (as h2o's unit tests do) so that its
 * static functions are reachable and its calloc() goes through an
 * allocation-failure countdown (as test_parser.c counts down). The writer is
 * a real committer on a temporary database; the applier's first connect is
 * held off (snapshot_fetch set), so nothing streams; the lease requests of a
 * primary go to a closed local port and fail.
 *
 * Each test names the bug it pins.
 */
#include <stdlib.h>

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

#define calloc test_calloc
#include "replication/election.c"
#undef calloc

#include <sys/time.h>
#include <unistd.h>

#include <event2/thread.h>

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
static int no_fetch; /* its address held in snapshot_fetch: no connect */

static const char *good_peer = "127.0.0.1:9";

static repl *open_repl(void)
{
	repl *r = calloc(1, sizeof *r);
	CHECK(r != NULL);
	r->env = (repl_env){.base = base, .cfg = &cfg, .self = &cfg.regions[0], .peer = &cfg.regions[1],
			    .reader = reader, .db_path = path, .writer = writer, .capture = cap};
	buf_init(&r->frames, 1 << 16);
	char err[256] = "";
	CHECK_EQ_INT(election_init(r, err, sizeof err), 0);
	CHECK_EQ_INT(history_load(r), 0);
	r->snapshot_fetch = &no_fetch;
	/* the voter file is shared by the tests: start at the epoch it knows */
	r->epoch = voter_promised(r->voter) > 1 ? voter_promised(r->voter) : 1;
	return r;
}

static void close_repl(repl *r)
{
	r->stopping = true;
	election_stop(r);
	applier_stop(r);
	stream_stop(r);
	r->snapshot_fetch = NULL;
	election_free(r);
	buf_free(&r->frames);
	free(r);
}

/* Put the election in state s without a transition (a test's starting
 * point), with what election_set derives from it. */
static void put(repl *r, election_state s)
{
	r->state = s;
	r->primary = s == ELECTION_PRIMARY || s == ELECTION_SWITCHING;
	r->switching = s == ELECTION_SWITCHING;
}

static bool role_change_pending(const repl *r)
{
	return r->state == ELECTION_PROMOTING || r->state == ELECTION_DEMOTING;
}

/* Run the loop until the role change is written and handled (each loop
 * round waits for an event: the committer's completion or the 50 ms tick). */
static void wait_role_change(repl *r)
{
	for (int i = 0; i < 400 && role_change_pending(r); i++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(!role_change_pending(r));
}

static void db_role(char out[16])
{
	out[0] = '\0';
	CHECK_EQ_INT(capture_read_state(reader, out, NULL, NULL, NULL), 0);
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
		CHECK(r->state == ELECTION_DEMOTING); /* the demotion is being recorded */
		wait_role_change(r);
		CHECK(r->reconnect != NULL);   /* following the primary */
		CHECK(r->role_reserve != NULL); /* given back */
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
	CHECK(r->reconnect == NULL && r->control_client == NULL);
	CHECK_EQ_INT(applier_start(r), ERR_NOMEM); /* not "already running" */
	CHECK(r->reconnect == NULL);
	snprintf(cfg.regions[1].link_listen, sizeof cfg.regions[1].link_listen, "%s", good_peer);
	CHECK_EQ_INT(applier_start(r), 0);
	CHECK(r->reconnect != NULL && r->control_client != NULL);
	for (int i = 0; i < REPL_FORWARD_CLIENTS; i++)
		CHECK(r->fwd[i].client != NULL);
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
	CHECK(r->reconnect == NULL);
	CHECK(r->follow_failed);
	tick_cb(-1, EV_TIMEOUT, r); /* still cannot */
	CHECK(r->reconnect == NULL);
	snprintf(cfg.regions[1].link_listen, sizeof cfg.regions[1].link_listen, "%s", good_peer);
	r->contact_mono = voter_clock_ms(); /* a primary was heard: no candidacy now */
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK(r->reconnect != NULL);
	CHECK(!r->follow_failed);
	CHECK_EQ_INT(r->state, ELECTION_FOLLOWER);
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
	r->lease_until = voter_clock_ms() + 3000;
	lease_timer_cb(-1, EV_TIMEOUT, r); /* "fired early": once more */
	struct timeval due, now;
	CHECK(event_pending(r->lease_timer, EV_TIMEOUT, &due));
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
	CHECK(r->heartbeat == NULL && r->trim_timer == NULL);
	CHECK_EQ_INT(stream_start(r), 0);
	CHECK(r->heartbeat != NULL && r->trim_timer != NULL);
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
	r->lease_until = voter_clock_ms() + 3000;
	const char *code = NULL, *message = NULL;
	r->heard_mono = voter_clock_ms();
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	r->heard_mono = voter_clock_ms() - cfg.failover.isolation_ms - 1;
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), ERR_AGAIN);
	CHECK_EQ_STR(code, "no_quorum");
	CHECK_EQ_INT(repl_ack_gate(r, &code, &message), ERR_AGAIN);
	CHECK_EQ_STR(code, "no_quorum");
	CHECK_EQ_INT(r->no_quorum_refusals, 2);
	CHECK_EQ_INT(repl_write_gate_peek(r, &code, &message), ERR_AGAIN); /* not counted */
	CHECK_EQ_INT(r->no_quorum_refusals, 2);
	/* a lease answer or an ack opens it again */
	election_heard(r);
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	/* the lease comes first */
	r->heard_mono = voter_clock_ms() - cfg.failover.isolation_ms - 1;
	r->lease_until = 0;
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), ERR_AGAIN);
	CHECK_EQ_STR(code, "no_lease");
	/* off: isolation_ms = 0, or no witness (then no lease is needed) */
	r->lease_until = voter_clock_ms() + 3000;
	cfg.failover.isolation_ms = 0;
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	cfg.failover.isolation_ms = 1000;
	const char *witness = r->witness_addr;
	r->witness_addr = "";
	r->lease_until = 0;
	CHECK_EQ_INT(repl_write_gate(r, &code, &message), 0);
	r->witness_addr = witness;
	/* with nothing heard for half the bound, the tick probes early */
	r->heard_mono = voter_clock_ms() - cfg.failover.isolation_ms / 2;
	r->last_renew = voter_clock_ms() - cfg.failover.isolation_ms / 2;
	r->next_renew = voter_clock_ms() + 100000;
	r->peer_busy = r->witness_busy = false;
	int64_t before = voter_clock_ms();
	tick_cb(-1, EV_TIMEOUT, r);
	CHECK(r->last_renew >= before); /* a lease round went out now */
	put(r, ELECTION_FOLLOWER);
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
