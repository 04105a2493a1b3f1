/*
 * applier.h - the secondary's side of replication (applier.c owns this
 * state: the stream and control clients, the undecoded frames, streaming
 * and failure flags, what was received and is not applied yet, the
 * primary's position and clock from its heartbeats, since when the link is
 * down, the reconnect timer and its backoff, the acks, the artificial link
 * delay, and the count of applied entries). Control thread only; the other
 * files reach it through the functions below.
 */
#ifndef TANDEM_REPLICATION_APPLIER_H
#define TANDEM_REPLICATION_APPLIER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "replication/replication.h"

typedef struct repl repl;
typedef struct repl_applier repl_applier;
typedef struct http_client http_client;

/* A new, stopped applier (its frame buffer bounded to one frame). NULL
 * when out of memory. */
repl_applier *applier_new(void);
/* Free it: call applier_stop and link_delay_flush first. *a becomes NULL.
 * No-op on NULL. */
void applier_free(repl_applier **a);

/* Start following the primary (clients, reconnect timer, first connect). 0
 * (also when already running), or ERR_NOMEM with everything it set up
 * released again (as after applier_stop): never half started; the caller
 * is a secondary that does not stream (election.c retries at its tick). */
int applier_start(repl *r);
/* Stop following: free the clients and the timer; what is in the writer
 * queue still lands (applier_pending counts it). Cannot fail. */
void applier_stop(repl *r);
/* Is the applier started (its reconnect timer exists)? */
bool applier_running(const repl *r);
/* A snapshot attempt is over (snapshot.c): ok (restored), go on streaming
 * now; failed, the next attempt after the reconnect backoff. Nothing when
 * the applier was stopped meanwhile. Cannot fail. */
void applier_resume(repl *r, bool ok);
/* Fault switch: cut the stream now, as if the link dropped it; the
 * reconnect tries again in 200 ms (and finds the peer isolated). Nothing
 * on a primary or a stopped applier. Cannot fail. */
void applier_cut_stream(repl *r);

/* Jobs in the writer queue that move the secondary's position: the
 * applier's own entries, and a restore (snapshot.c) or a revert (rejoin.c)
 * held with applier_hold / applier_release (in pairs). While any is
 * pending the applier does not connect and a drain (election.c) waits. */
int applier_pending(const repl *r);
void applier_hold(repl *r);
void applier_release(repl *r);
/* The database's applied position is now seq (a snapshot restored, a
 * revert committed): the position, the next entry to ask for and the
 * position waiters follow. Cannot fail. */
void applier_reset_position(repl *r, uint64_t seq);

/* The client for acks and position queries (rejoin.c asks the history on
 * it); NULL while stopped. */
http_client *applier_control_client(const repl *r);
/* Is the stream up? */
bool applier_streaming(const repl *r);
/* The primary's position as last heard (heartbeats, entries). */
uint64_t applier_primary_seq(const repl *r);
/* Entries that failed to apply since the start (metrics: a divergence or
 * a damaged database when it keeps growing; status `apply_error`). */
uint64_t applier_apply_failures(const repl *r);
/* Entries applied since the start (metrics). */
uint64_t applier_applied_entries(const repl *r);
/* Age of the oldest entry received and not applied, or of the link's
 * outage while the primary is ahead; 0 when caught up. */
int64_t applier_lag_ms(repl *r);
/* The secondary's replication fields of the status (last_seq .. degraded,
 * with the snapshot state), appended to out; cut at out's maximum. */
void applier_status_json(repl *r, buf *out);

/* Ask the primary for its position, then wait until applied here; cb runs
 * on the control thread exactly once (false: no answer, timeout, out of
 * memory, stopped). True at once on a primary. */
void applier_wait_global(repl *r, int timeout_ms, repl_wait_cb cb, void *arg);

/* Run fn(arg) after the artificial one-way link delay (at once without one),
 * in order. Every byte of the link passes through here on the secondary,
 * which opens every link connection, so both directions are delayed (the
 * forwarded writes through forward.c's own line on the API thread). */
void link_delay(repl *r, void (*fn)(void *), void *arg);
/* 0, or ERR_NOMEM (its timer) with no delay line to use: the start fails. */
int link_delay_init(repl *r, int delay_ms);
/* Everything in the line happens now (the callbacks see r->stopping and
 * wind down); the timer is freed. Cannot fail. */
void link_delay_flush(repl *r);
/* Log c's failed connections at warn with their cause, once per 10 s per
 * target and cause (every link client should be watched). Cannot fail
 * (without memory for the rate limit, every failure is logged). */
void link_watch_connections(repl *r, http_client *c);

#endif
