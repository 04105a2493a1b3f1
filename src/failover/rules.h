/*
 * rules.h - the pure timing and epoch rules a region applies as primary or
 * candidate (docs/FAILOVER.md, "Leases", "Election", "Fencing by epoch"),
 * and the replication's lag and reconnect arithmetic (docs/REPLICATION.md),
 * next to the voter rules (voter.h) and the history rules (history.h).
 * replication/election.c calls them with its clock readings and config;
 * tests/unit/test_failover_rules.c checks them at their edges.
 *
 * Times are milliseconds of the voter clock (voter_clock_ms). No state, no
 * I/O: every function is defined for every input and cannot fail.
 */
#ifndef TANDEM_FAILOVER_RULES_H
#define TANDEM_FAILOVER_RULES_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

/* Voters in a deployment with a witness, and the majority of them. */
enum { RULES_VOTERS = 3, RULES_MAJORITY = 2 };

/* The end of a lease from a round whose request left at t_send and won a
 * majority: t_send + lease_ms * (1 - max_drift_ppm / 1e6) - lease_margin_ms.
 * Counted from the send, never from the reply (the model's BROKEN_TSEND). */
int64_t rules_lease_end(const config_failover *f, int64_t t_send);

/* The isolation gate: has a primary that last heard from another voter at
 * `heard` done so within isolation_ms at `now`? Always true when the gate
 * is off (isolation_ms <= 0). */
bool rules_quorum_heard(int isolation_ms, int64_t now, int64_t heard);

/* Should a primary send its lease round now as a probe, before renew_ms
 * is up? When nothing was heard, nor sent, for half the isolation bound. */
bool rules_probe_due(int isolation_ms, int64_t now, int64_t heard, int64_t last_renew);

/* Fencing: is a message of epoch msg_epoch from an older epoch than ours
 * (refused: stale_epoch; a deposed primary's contact does not count)? */
bool rules_epoch_stale(uint64_t msg_epoch, uint64_t ours);

/* The epoch a candidate stands for: one above both its promise and the
 * epoch it knows. */
uint64_t rules_stand_epoch(uint64_t promised, uint64_t epoch);

/* How long a refused candidate waits before it stands again: the longest
 * binding time a refusal named, at least vote_retry_ms. */
int64_t rules_retry_wait(int64_t retry_after_ms, int vote_retry_ms);

/* Do `yes` grants (the own one included) make a majority of the voters? */
bool rules_majority(int yes);

/* --- replication (stream.c, applier.c, repl.c) --- */

/* Positions the follower is behind: ahead - behind, 0 when it is not
 * behind (never wraps). */
uint64_t rules_lag_positions(uint64_t ahead, uint64_t behind);

/* The secondary's lag in ms at `now` (wall clock): the age of the oldest
 * entry received and not yet applied (oldest_unapplied_ms, 0 if none);
 * else, while the link is down (not streaming) and the primary is known to
 * be ahead, how long the link has been down (down_since_ms, 0 unknown);
 * else 0. Never negative. */
int64_t rules_applier_lag_ms(int64_t now, int64_t oldest_unapplied_ms, bool streaming, int64_t down_since_ms,
			     uint64_t primary_seq, uint64_t position);

/* The reconnect backoff after a failed attempt: doubled, at most max_ms. */
int rules_backoff_next(int backoff_ms, int max_ms);

/* How long a stream may be silent before it counts as gone: eight
 * heartbeats, at least 2 s. */
int rules_stream_idle_timeout_ms(int heartbeat_ms);

#endif
