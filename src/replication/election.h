/*
 * election.h - who may accept writes: leases, elections, role changes,
 * switchover, forced failover, the fault switch (election.c owns this
 * state: the voter, the clients to the other voters, the lease and its
 * timer, the rounds, the election state and its derived flags, the
 * candidacy (stand_*), the switchover, the admin request waiting for its
 * outcome, the isolated peers and the counters). Control thread only,
 * except election_source_host (set before the threads start, read-only
 * after). "What happens when the lease expires" is in election.c
 * (lease_timer_cb and the design block).
 *
 * Whatever fails inside the election (memory, the voter's file, the role's
 * database write), the region ends in a state of the diagram and never
 * accepts a write it could not acknowledge safely: a failed promotion
 * leaves a FOLLOWER, a failed step-down still stops writes and follows, and
 * a transition off the diagram is refused and logged.
 */
#ifndef TANDEM_REPLICATION_ELECTION_H
#define TANDEM_REPLICATION_ELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct repl repl;
typedef struct repl_election repl_election;
typedef struct http_request http_request;
typedef struct http_client http_client;

/* The election's state (election.c: the diagram, the one function that
 * changes it, and its mapping to model/failover.pml). */
typedef enum election_state {
	ELECTION_FOLLOWER,      /* secondary: follows the primary, or stands once it is silent */
	ELECTION_PRE_CANDIDATE, /* a pre-vote round in flight: nothing changed anywhere yet */
	ELECTION_DRAINING,      /* pre-vote won (or forced): applier stopped, writer queue draining */
	ELECTION_CANDIDATE,     /* own vote cast: the vote round in flight */
	ELECTION_PROMOTING,     /* elected: the new role is in the writer queue */
	ELECTION_PRIMARY,       /* primary: writes while the lease runs and a voter was heard */
	ELECTION_SWITCHING,     /* primary in a planned switchover: writes paused */
	ELECTION_DEMOTING,      /* stepped down (no writes): the demotion is in the writer queue */
	ELECTION_STATES
} election_state;

/* A new, empty election (FOLLOWER, no voter, no witness: failover off until
 * election_init). NULL when out of memory. */
repl_election *election_new(void);
/* Free the state: call election_free(r) first for what init/start made.
 * *e becomes NULL. No-op on NULL. */
void election_delete(repl_election **e);

/* Open the voter state (DIR/voter.json) and set the initial state from
 * r->primary. 0, or ERR_IO with the reason in err and nothing opened (the
 * caller fails the start). */
int election_init(repl *r, char *err, size_t errcap);
/* 0, or ERR_NOMEM (timers, clients, the reserve role job, the tick) with the
 * caller expected to fail the start; election_free releases what was made. */
int election_start(repl *r);
/* Stop the timers and clients, answer a waiting admin request (503). Cannot
 * fail. */
void election_stop(repl *r);
/* Release what election_init/start made; safe after a failed start, twice,
 * and without the state (repl_new failed early). Cannot fail. */
void election_free(repl *r);

/* A message from the primary of this epoch (or newer) arrived: it counts
 * as contact (no election while it lasts); an older epoch's does not.
 * Cannot fail (a newer epoch is learned as election_learn). */
void election_contact(repl *r, uint64_t epoch);
/* Stream data arrived from the primary we follow: that is contact now
 * (whatever the epoch of the entry). Cannot fail. */
void election_contact_now(repl *r);
/* A higher epoch is known: raise the promise (persisted; if that fails,
 * logged and taken in memory only); a primary steps down (PRIMARY or
 * SWITCHING -> DEMOTING), which cannot fail. */
void election_learn(repl *r, uint64_t epoch);
/* Primary: another voter answered (a lease answer, a stream ack). Cannot
 * fail. */
void election_heard(repl *r);

/* Link routes (peer = the verified certificate name). Each answers the
 * request exactly once: 400 for a ballot that does not parse, 409 for a
 * refusal or a stale epoch, 503 io when the voter cannot persist (nothing
 * granted). */
void election_handle_lease(repl *r, http_request *req, const char *peer);
void election_handle_vote(repl *r, http_request *req, const char *peer);
void election_handle_handover(repl *r, http_request *req, const char *peer);
/* POST /internal/v1/admin/{switchover,failover,fault}: answered exactly
 * once, at once for a refusal (400, 404, 405, 409), or with the outcome
 * (200, 409 election_failed / lease_held, 500, 503 shutting_down, 504
 * switchover_timeout). */
void election_handle_admin(repl *r, http_request *req, const char *peer);
/* Append the failover status fields to out (bounded by out's maximum: cut
 * there, never beyond). */
void election_status_json(repl *r, buf *out);

/* Getters (control thread; cannot fail). */
/* Is the fault switch cutting this region off from peer? */
bool election_isolated(const repl *r, const char *peer);
/* Does this region hold a valid lease (control thread's own state)? */
bool election_lease_valid(const repl *r);
bool election_failover_enabled(const repl *r);
/* SWITCHING: a planned switchover pauses writes. */
bool election_switching(const repl *r);
/* The voter's promise (0 before election_init). */
uint64_t election_promised(const repl *r);
/* Voter clock ms: the lease's end; another voter last heard. */
int64_t election_lease_until(const repl *r);
int64_t election_heard_mono(const repl *r);
/* "follower", "pre_candidate", ... (status, logs); "invalid" out of range. */
const char *election_state_name(election_state s);
/* Bind outgoing link connections to this address, or "" (any thread: set
 * by election_init before the threads start). */
const char *election_source_host(const repl *r);

/* A new link client to host:port named sni, bound to our source address;
 * its failed connections are logged (rate-limited, link_watch_connections).
 * NULL when host:port does not parse or memory is short. */
http_client *link_client_new(repl *r, const char *hostport, const char *sni, int timeout_ms, size_t max_body);

#endif
