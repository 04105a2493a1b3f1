/*
 * snapshot.h - catching up from a copy of the primary (snapshot.c owns
 * this state: whether a snapshot is needed, the fetch in progress, the
 * restore in the writer queue, and the status line that tells which).
 * Control thread only.
 *
 *   ""  --require-->  "required"  --fetch-->  "fetching"  --body ok-->  "restoring"  --ok-->  ""
 *                        ^                        | fails                   | fails
 *                        +-- next attempt <-- "failed: REASON" <------------+
 *
 * A failed attempt leaves the snapshot required, the status "failed:
 * REASON" until the next attempt starts, and hands the applier its retry
 * (applier_resume(r, false): its reconnect backoff), so the next attempt is
 * always scheduled and the status never stays "fetching".
 */
#ifndef TANDEM_REPLICATION_SNAPSHOT_H
#define TANDEM_REPLICATION_SNAPSHOT_H

#include <stdbool.h>

typedef struct repl repl;
typedef struct repl_snapshot repl_snapshot;
typedef struct http_request http_request;

/* A new, idle state ("" status, nothing required). NULL when out of memory. */
repl_snapshot *snapshot_new(void);
/* Free the state (a fetch still in flight keeps its own memory and ends on
 * its own); *s becomes NULL. No-op on NULL. */
void snapshot_free(repl_snapshot **s);

/* Primary: answer GET .../snapshot with a consistent copy of the database,
 * streamed as the link drains. Answers exactly once: 500 internal_error when
 * the copy cannot be made or read, 503 overloaded when the writer queue is
 * full; a read error or a peer gone half way cuts the answer (never a short
 * copy that looks complete). */
void snapshot_serve(repl *r, http_request *req);

/* Secondary: the primary's log no longer reaches back to us (410
 * snapshot_required, or a rejoin that cannot revert): the next connect
 * fetches a snapshot instead of streaming. Cannot fail. */
void snapshot_require(repl *r);
/* Is a snapshot needed before streaming again? */
bool snapshot_required(const repl *r);
/* A fetch or a restore is under way (the applier does not connect). */
bool snapshot_busy(const repl *r);
/* The status line: "", "required", "fetching", "restoring" or "failed:
 * REASON" (the last attempt's; kept until the next one starts). */
const char *snapshot_status(const repl *r);

/* Fetch the primary's snapshot and restore it; applier_resume(r, ok)
 * follows exactly once when it is over (ok: restored). 0 with the fetch
 * under way; ERR_IO when it cannot start (the file, the client), with
 * nothing under way, the status "failed: REASON" and the snapshot still
 * required: the caller schedules the next attempt. */
int snapshot_fetch(repl *r);

#endif
