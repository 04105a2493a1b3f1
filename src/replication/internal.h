/*
 * internal.h - what the replication files share.
 *
 *   repl.c     lifecycle, the control thread, waits, the link server and its
 *              routes, status
 *   view.c     the published view and every repl_* function the API thread
 *              calls (gates, getters, waits posted to the control thread)
 *   stream.c   primary: stream subscribers, acks, lag, log trimming
 *   applier.c  secondary: consume the stream, apply, acknowledge, reconnect
 *   forward.c  secondary: forward writes to the primary (API thread)
 *   frame.c    the wire format; capture.c the log capture
 *
 * Threads (docs/ARCHITECTURE.md): everything here runs on the control
 * thread (its own event_base, r->env.base once repl_new returns) except
 * view.c's API functions and forward.c, which run on the API thread
 * (r->api_base). They share only what struct repl marks "both": the view
 * (under view_lock), atomics, and the two mailboxes.
 */
#ifndef TANDEM_REPLICATION_INTERNAL_H
#define TANDEM_REPLICATION_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "core/mailbox.h"
#include "core/workers.h"
#include "failover/voter.h"
#include "http/client.h"
#include "replication/frame.h"
#include "replication/replication.h"
#include "replication/applier.h"
#include "replication/election.h"
#include "replication/rejoin.h"
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
/* 0 (nothing to set up without a delay), or ERR_NOMEM. */
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
	bool thread_running;        /* API thread: start/stop only */
	mailbox *to_ctl;            /* API -> control: waits, kicks, metrics */
	mailbox *to_api;            /* control -> API: completions, link requests */
	loop_queue *ctl_done;       /* committer completions of the control thread's jobs */
	pthread_mutex_t view_lock;
	repl_view view;             /* under view_lock */
	_Atomic uint64_t view_position; /* position for the API: max of both sides on a primary */
	_Atomic uint64_t api_committed; /* API: highest committed batch not yet seen by control */
	_Atomic uint64_t api_learned;   /* API: highest epoch learned from forwarded writes */
	_Atomic bool kick_pending;      /* the kick node is queued on to_ctl */
	mailbox_node kick;              /* coalesced API -> control notice */
	_Atomic int writes_in_flight;   /* API writes between submit and answer */
	_Atomic uint64_t no_quorum_refusals; /* writes refused or not acknowledged: isolated */
	_Atomic uint64_t renewals_late; /* lease rounds sent > lease_ms / 10 after due */
	_Atomic uint64_t backpressure_waits;

	/* API thread only */
	bool api_stopping;
	forwarder *fwd;             /* write forwarding (forward.c) */

	/* control thread only (everything below; the API reads none of it,
	 * except source_host, written by election_init before the threads
	 * start; after repl_free joined the thread, the API thread owns it) */
	looplag *ctl_lag;           /* the control loop's lag, and the view's safety-net publish */
	link_call *link_calls;      /* link requests in the API thread's hands */
	int link_calls_n;
	http_server *link;
	bool primary;               /* derived: state PRIMARY or SWITCHING (election_set only) */
	bool stopping;
	uint64_t epoch;
	uint64_t position;          /* committed (primary) or applied (secondary) */
	waiter *position_waiters;

	/* primary (control thread) */
	repl_stream *stream;        /* stream.c's: subscribers, acks, lag, trim */

	/* secondary (control thread) */
	repl_applier *applier;          /* applier.c's: clients, frames, acks, backoff, delay */
	int64_t fresh_mono;          /* voter clock: when this region last knew it had every
				      * write of the primary (stream data or heartbeat from it;
				      * as a primary with a lease, its own heartbeat tick); 0 never
				      * (written by applier.c and stream.c, read by view.c) */
	repl_snapshot *snapshot;        /* catching up from a snapshot (snapshot.c) */
	delay_line delay;               /* artificial link delay (tests, benchmarks) */

	/* failover (election.c, control thread): leases, elections, role changes */
	repl_election *election;        /* election.c's: voter, leases, rounds, state */

	/* epoch history (rejoin.c, control thread) */
	repl_history *history;          /* rejoin.c's: the history, synced, rejoining */

};

/* repl.c: allocate the state each module owns (stream.c, applier.c,
 * election.c, rejoin.c's history, snapshot.c) in a zeroed repl, as repl_new
 * does (tests build a repl by hand with it). 0, or ERR_NOMEM with nothing
 * allocated. repl_parts_free releases them (each pointer reset; safe on a
 * repl whose parts are missing, and twice). */
int repl_parts_new(repl *r);
void repl_parts_free(repl *r);

/* view.c: publish the view (control thread; cheap: a lock and a copy).
 * Call after changing anything repl_view holds. */
void repl_view_publish(repl *r);
/* A copy of the view (any thread). */
void repl_view_read(const repl *r, repl_view *out);

/* waits (repl.c), control thread; cb runs on the control thread */
void ctl_wait_position(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg);
/* view.c: the API-side kick (committed positions, learned epochs), run on
 * the control thread; also called by the control tick as a safety net */
void repl_absorb_api(repl *r);
/* Submit a control-thread job to the writer: its done() runs on the control
 * thread. Same contract as committer_submit. */
int repl_submit(repl *r, commit_exec_fn exec, commit_done_fn done, void *arg);
int repl_submit_exclusive(repl *r, commit_exec_fn exec, commit_done_fn done, void *arg);
void waitlist_add(repl *r, waiter **list, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg);
/* The position moved (up, or down after a revert): fire the position
 * waiters it reached. Cannot fail. */
void repl_position_reached(repl *r);
/* Fire every waiter with seq <= reached (ok = true). */
void waitlist_advance(waiter **list, uint64_t reached);
/* Fire every waiter (ok = false): shutdown. */
void waitlist_fail_all(waiter **list);


/* forward.c (API thread): write forwarding to the primary */
forwarder *forwarder_new(repl *r);
/* Free the clients: forwards in flight are answered (rc < 0). No-op on NULL. */
void forwarder_free(forwarder **f);
/* API thread: this region became primary. Every forward still in flight
 * goes to a region that is primary no more (deposed, perhaps cut off): end
 * them now with an error (their clients answer 503 primary_unavailable and
 * retry here, with their Idempotency-Key) instead of after
 * forward_timeout_ms. The connections are made again at the next forward. */
void forwarder_reset(forwarder *f);
/* Prometheus lines of the forwarded writes. */
void forwarder_metrics(forwarder *f, buf *out, const char *region);


/* Send a small JSON answer on the link. */
void repl_answer(http_request *req, int status, const char *code, const char *json_or_message);

#endif
