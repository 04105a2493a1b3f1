/*
 * rejoin.h - this region's epoch history and the rejoin of a region whose
 * history parted from the primary's (rejoin.c owns this state: the history
 * rows, whether this secondary was checked against the current primary
 * (synced), whether a rejoin is in flight, and how many transactions went
 * to the quarantine). Control thread only; the other files read it through
 * the functions below. The pure rules on histories (the divergence point,
 * the rejoin plan) are in failover/history.h.
 */
#ifndef TANDEM_REPLICATION_REJOIN_H
#define TANDEM_REPLICATION_REJOIN_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct repl repl;
typedef struct repl_history repl_history;

/* A new, empty history (not synced, no rejoin). NULL when out of memory. */
repl_history *history_new(void);
/* Free it; *h becomes NULL. No-op on NULL. A rejoin in flight keeps its own
 * memory (it ends through its done callback). */
void history_free(repl_history **h);

/* Read the epoch history from the database (the newest 256 epochs). 0; or
 * ERR_AGAIN (the database was busy) / ERR_DB, logged, with the history in
 * memory unaltered: a failed read never leaves a truncated history. */
int history_load(repl *r);
/* Add (epoch, first_seq) to the history in memory (the database row is
 * written by the caller); an epoch not above the last only moves its
 * first_seq; past 256 rows the oldest goes. Cannot fail. */
void history_add(repl *r, uint64_t epoch, uint64_t first_seq);
/* Epoch of position seq in this region's log (0 for seq 0). Cannot fail. */
uint64_t history_epoch_at(const repl *r, uint64_t seq);
/* How many epochs the history holds (at most 256). */
int history_length(const repl *r);
/* The newest epoch of the history, 0 when it is empty. */
uint64_t history_last_epoch(const repl *r);
/* The history as JSON (GET /internal/v1/replication/history), appended to
 * out; cut at out's maximum. */
void history_json(repl *r, buf *out);

/* Secondary: has this region been checked against the current primary
 * (its history shares the primary's up to its position)? False after a
 * new primary is learned, a stale stream, a step-down: the next connect
 * rejoins first. */
bool history_synced(const repl *r);
void history_set_synced(repl *r, bool synced);
/* Transactions this region reverted into its quarantine (status). */
uint64_t history_quarantined_total(const repl *r);

/* Secondary: find the divergence point with the primary, quarantine what
 * must go, then call done(r, ok) exactly once (possibly before this returns).
 * ok false (the history unreadable: SQLITE_BUSY / IOERR, the primary
 * unreachable or deposed, out of memory, the revert's transaction failed):
 * logged, nothing reverted (the revert is one transaction whose quarantine
 * file is written before its COMMIT), and the region stays out of the
 * stream until the next rejoin. ok true after a revert whose history could
 * not be read back is never given: that is ok false, and the next rejoin
 * reads it. A revert that cannot be done entry by entry requires a
 * snapshot (snapshot_require) and gives ok true. While it runs,
 * rejoin_running is true. */
void rejoin_start(repl *r, void (*done)(repl *r, bool ok));
/* Is a rejoin in flight (started, done not yet called)? */
bool rejoin_running(const repl *r);
/* The applier stopped: a rejoin in flight no longer holds the next start
 * off (its done still comes, and finds the applier restarted or not).
 * Cannot fail. */
void rejoin_forget(repl *r);

#endif
