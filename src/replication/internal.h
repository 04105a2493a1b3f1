/*
 * internal.h - what the replication files share: struct repl (only what is
 * truly shared: the environment, the mailboxes, the view, the epoch, the
 * position, the primary and stopping flags, each field saying who writes
 * it) and one pointer to each module's own state, which is defined in the
 * module's .c file and reached by the other files only through the
 * functions of the module's header.
 *
 *   file        state            header       what it does
 *   repl.c      struct repl      internal.h   lifecycle, the control thread, waits on the
 *                                             position, the link server and its routes, status
 *   view.c      repl->view       internal.h   the published view and every repl_* function
 *                                             the API thread calls (gates, getters, waits)
 *   election.c  repl_election    election.h   leases (and what happens when one expires),
 *                                             elections, role changes, switchover, failover,
 *                                             the fault switch
 *   stream.c    repl_stream      stream.h     primary: stream subscribers, acks, lag, trim
 *   applier.c   repl_applier     applier.h    secondary: consume the stream, apply, ack,
 *                                             reconnect; the link delay
 *   snapshot.c  repl_snapshot    snapshot.h   catch-up from a copy of the primary
 *   rejoin.c    repl_history     rejoin.h     the epoch history; the rejoin of a diverged region
 *   forward.c   forwarder        internal.h   secondary: forward writes to the primary (API thread)
 *   frame.c, capture.c           frame.h, capture.h   the wire format; the log capture
 *
 * The pure rules (no I/O: the voter's grant rules, quorum and lease
 * arithmetic, history divergence, lag) are in src/failover/, unit-tested on
 * their own.
 *
 * Threads (docs/ARCHITECTURE.md): everything here runs on the control
 * thread (its own event_base, r->env.base once repl_new returns) except
 * view.c's API functions and forward.c, which run on the API thread
 * (r->api_base). They share only what struct repl marks "both" or "API
 * writes": the view (under view_lock), atomics, and the two mailboxes.
 */
#ifndef TANDEM_REPLICATION_INTERNAL_H
#define TANDEM_REPLICATION_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/mailbox.h"
#include "core/workers.h"
#include "failover/voter.h"
#include "http/client.h"
#include "replication/applier.h"
#include "replication/election.h"
#include "replication/frame.h"
#include "replication/rejoin.h"
#include "replication/replication.h"
#include "replication/snapshot.h"
#include "replication/stream.h"

#define REPL_FORWARD_CLIENTS 16
/* API requests forwarded to this primary over the link, in the API thread's
 * hands at once (beyond: 503 overloaded); as many as link connections. */
#define REPL_LINK_CALLS_MAX 256
/* closures the API thread may have queued for the control thread (waits,
 * metrics); beyond, a wait answers false at once (a timeout to the caller) */
#define REPL_TO_CONTROL_MAX 65536
/* closures the control thread may have queued for the API thread beyond the
 * completions (which are never refused): handed-over link requests */
#define REPL_TO_API_MAX 4096

typedef struct waiter {
	uint64_t seq;
	repl_wait_cb cb;
	void *arg;
	struct event *timer;
	struct repl *r;
	struct waiter **list;
	struct waiter *next;
} waiter;

/* The delay line: a FIFO (every item waits the same delay, so arrival order
 * is due order) drained by one timer on its loop (tests, benchmarks). */
typedef struct delay_line {
	struct event_base *base;
	int delay_ms;
	bool stopping;
	struct event *timer;
	struct delayed *head, *tail;
} delay_line;
/* 0 (nothing to set up without a delay), or ERR_NOMEM with no timer (the
 * line then runs everything at once). */
int delay_line_init(delay_line *d, struct event_base *base, int delay_ms);
/* Run fn(arg) after the delay (at once without one, or when stopping or out
 * of memory), in order. */
void delay_line_post(delay_line *d, void (*fn)(void *), void *arg);
/* Everything in the line happens now; the timer is freed. Cannot fail. */
void delay_line_flush(delay_line *d);

/*
 * The published view: what the API thread needs to decide on its own (gates,
 * getters). Written by the control thread only, whole, under view_lock
 * (repl_view_publish), at every point that changes one of these and on every
 * control tick; read by the API thread under the same lock (a copy).
 */
typedef struct repl_view {
	bool primary;
	bool switching;          /* planned switchover: writes refused */
	bool failover;           /* a peer and a witness: leases are needed */
	bool peer_isolated;      /* fault switch: the peer is cut off */
	bool has_subs;           /* primary: a secondary streams */
	int isolation_ms;
	uint64_t epoch;
	uint64_t promised;       /* the voter's promise (>= epoch or 0) */
	int64_t lease_until;     /* voter clock ms */
	int64_t heard_mono;      /* voter clock ms: another voter last heard */
	int64_t fresh_mono;      /* voter clock ms: see struct repl */
} repl_view;

typedef struct forwarder forwarder;
typedef struct link_call link_call;
typedef struct looplag looplag;

struct repl {
	/* set before the threads start, read-only afterwards (both threads) */
	repl_env env;               /* env.base: the control loop; env.reader: its connection */
	struct event_base *api_base;/* the API thread's loop (the base given to repl_new) */

	/* threads and the queues between them (both; each is thread-safe) */
	pthread_t thread;
	bool thread_running;        /* written by the API thread (start/stop) only */
	mailbox *to_ctl;            /* API -> control: waits, kicks, metrics */
	mailbox *to_api;            /* control -> API: completions, link requests */
	loop_queue *ctl_done;       /* committer completions of the control thread's jobs */
	pthread_mutex_t view_lock;
	repl_view view;             /* written by the control thread (view.c), under view_lock */
	_Atomic uint64_t view_position; /* both: position for the API, max of both sides on a primary */
	_Atomic uint64_t api_committed; /* API writes: highest committed batch not yet seen by control */
	_Atomic uint64_t api_learned;   /* API writes: highest epoch learned from forwarded writes */
	_Atomic bool kick_pending;      /* both: the kick node is queued on to_ctl */
	mailbox_node kick;              /* coalesced API -> control notice */
	_Atomic int writes_in_flight;   /* API writes: writes between submit and answer */
	_Atomic uint64_t no_quorum_refusals; /* API writes: refused or not acknowledged, isolated */
	_Atomic uint64_t renewals_late; /* control writes (election.c): lease rounds sent late */
	_Atomic uint64_t backpressure_waits; /* control writes (stream.c): writes slowed for lag */

	/* API thread only */
	bool api_stopping;
	forwarder *fwd;             /* write forwarding (forward.c) */

	/* control thread only (everything below; the API thread reads none of
	 * it; after repl_free joined the thread, the API thread owns it) */
	looplag *ctl_lag;           /* repl.c: the control loop's lag, the view's safety-net publish */
	link_call *link_calls;      /* repl.c: link requests in the API thread's hands */
	int link_calls_n;
	http_server *link;          /* repl.c: the link server */
	bool primary;               /* election.c (election_set) only: state PRIMARY or SWITCHING */
	bool stopping;              /* repl.c (the stop) only */
	uint64_t epoch;             /* the newest epoch known: election.c (learn, promotion),
				     * applier.c (entries, heartbeats), snapshot.c (restore) */
	uint64_t position;          /* committed (primary: view.c's absorb, election.c at a
				     * promotion) or applied (secondary: applier.c, and
				     * applier_reset_position for snapshot.c and rejoin.c) */
	waiter *position_waiters;   /* repl.c's waits (ctl_wait_position, repl_position_reached) */
	int64_t fresh_mono;         /* voter clock: the latest time at which this region is
				     * known to have applied every write the primary had then
				     * (a heartbeat's position once applied: applier.c
				     * freshness_claim; as a primary with a lease, its own
				     * heartbeat tick: stream.c); 0 never. Read by view.c's publish */

	/* each module's own state, defined in its .c file and reached by the
	 * others only through the functions of its header */
	repl_stream *stream;        /* stream.h: primary: subscribers, acks, lag, trim */
	repl_applier *applier;      /* applier.h: secondary: clients, frames, acks, backoff, delay */
	repl_snapshot *snapshot;    /* snapshot.h: catching up from a snapshot */
	repl_election *election;    /* election.h: voter, leases, rounds, state, switchover */
	repl_history *history;      /* rejoin.h: epoch history, synced, rejoining, quarantined */
};

/* repl.c: allocate the state each module owns (stream.c, applier.c,
 * election.c, rejoin.c's history, snapshot.c) in a zeroed repl, as repl_new
 * does (tests build a repl by hand with it). 0, or ERR_NOMEM with nothing
 * allocated. repl_parts_free releases them (each pointer reset; safe on a
 * repl whose parts are missing, and twice). */
int repl_parts_new(repl *r);
void repl_parts_free(repl *r);

/* view.c: publish the view (control thread; cheap: a lock and a copy).
 * Call after changing anything repl_view holds. Cannot fail (a full API
 * mailbox only delays the forwarder's reset: logged). */
void repl_view_publish(repl *r);
/* A copy of the view (any thread). Cannot fail. */
void repl_view_read(const repl *r, repl_view *out);

/* waits (repl.c), control thread: until the position reaches seq; cb runs
 * on the control thread exactly once (true: reached; false: timeout,
 * stopping, out of memory). */
void ctl_wait_position(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg);
/* view.c: the API-side kick (committed positions, learned epochs), run on
 * the control thread; also called by the control tick as a safety net.
 * Cannot fail (a learned epoch is election_learn's). */
void repl_absorb_api(repl *r);
/* Submit a control-thread job to the writer: its done() runs on the control
 * thread exactly once. Same contract as committer_submit: 0, or a negative
 * code (queue full, stopping) with done() never called and the job the
 * caller's to free. */
int repl_submit(repl *r, commit_exec_fn exec, commit_done_fn done, void *arg);
int repl_submit_exclusive(repl *r, commit_exec_fn exec, commit_done_fn done, void *arg);
/* Wait on list until waitlist_advance reaches seq: cb(arg, ok) runs exactly
 * once (true: reached; false: timeout_ms passed, waitlist_fail_all). Out of
 * memory: cb(arg, false) at once, nothing added. */
void waitlist_add(repl *r, waiter **list, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg);
/* The position moved (up, or down after a revert): fire the position
 * waiters it reached. Cannot fail. */
void repl_position_reached(repl *r);
/* Fire every waiter with seq <= reached (ok = true). Cannot fail. */
void waitlist_advance(waiter **list, uint64_t reached);
/* Fire every waiter (ok = false): shutdown, step-down. Cannot fail. */
void waitlist_fail_all(waiter **list);

/* forward.c (API thread): write forwarding to the primary. NULL when out
 * of memory (repl_new fails then). */
forwarder *forwarder_new(repl *r);
/* Free the clients: forwards in flight are answered (rc < 0). No-op on NULL. */
void forwarder_free(forwarder **f);
/* API thread: this region became primary. Every forward still in flight
 * goes to a region that is primary no more (deposed, perhaps cut off): end
 * them now with an error (their clients answer 503 primary_unavailable and
 * retry here, with their Idempotency-Key) instead of after
 * forward_timeout_ms. The connections are made again at the next forward. */
void forwarder_reset(forwarder *f);
/* Prometheus lines of the forwarded writes (cut at out's maximum). */
void forwarder_metrics(forwarder *f, buf *out, const char *region);

/* Send a small JSON answer on the link: an error body {"error":{code,
 * message}} when code is set, else json_or_message as it is. Answers req
 * exactly once; cannot fail (a body past 1 MiB is cut). */
void repl_answer(http_request *req, int status, const char *code, const char *json_or_message);

#endif
