/*
 * capture.h - change capture on the primary: every committed write batch
 * becomes one entry of the replication log, written in the same transaction
 * as the data (so an entry exists if and only if its changes do).
 *
 * The replication tables live beside the data in each region's database:
 *
 *   repl_state(id=1, role, epoch, last_seq, applied_seq, applied_epoch)
 *   repl_log(seq PRIMARY KEY, epoch, kind, committed_at, payload)
 *
 * Capture uses SQLite's session extension: a session attached to every
 * table but the repl_ ones for the length of a batch; its changeset holds
 * the net effect of the batch (rolled-back savepoints leave nothing, since a
 * changeset is the difference between the recorded original rows and the
 * current ones). Schema migrations are logged as entries of their own (kind
 * 2, the SQL), since changesets carry no DDL.
 */
#ifndef TANDEM_REPLICATION_CAPTURE_H
#define TANDEM_REPLICATION_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "store/committer.h"
#include "store/db.h"

typedef struct capture capture;

enum { LOG_CHANGESET = 1, LOG_SCHEMA = 2 };

/* Create the replication tables if missing, with the initial role and
 * epoch 1. 0 or ERR_DB (reason in err). */
int capture_bootstrap(db_conn *db, const char *initial_role, char *err, size_t errcap);
/* Read the region's role (out: "primary"/"secondary"), epoch and positions
 * (any out pointer may be NULL). 0, or ERR_DB (a busy or failing database,
 * no state row) with the outputs unaltered. */
int capture_read_state(db_conn *db, char role[16], uint64_t *epoch, uint64_t *last_seq,
		       uint64_t *applied_seq);

/* A new capture, off. NULL when out of memory. */
capture *capture_new(void);
/* Free *c and set it to NULL; no-op on NULL. Cannot fail. */
void capture_free(capture **c);
/* Capture on or off (only a primary captures). Thread-safe; cannot fail. */
void capture_set_enabled(capture *c, bool on);
/* Hooks for the committer; committed(arg, seq) is called on the loop thread
 * for each batch that produced an entry. Whether a batch is captured is
 * decided when it begins. A batch whose changes exceed FRAME_MAX_PAYLOAD is
 * refused (ERR_LIMIT): it could never be streamed. */
committer_hooks capture_hooks(capture *c, void (*committed)(void *arg, uint64_t seq), void *arg);
/* Writer thread, inside a batch: the position this batch will have if it
 * changes anything, and the epoch. Cannot fail. */
uint64_t capture_pending_seq(const capture *c);
uint64_t capture_epoch(const capture *c);
/* Writer thread, inside a batch: is this batch captured, i.e. was the
 * region the primary when the batch began? A write of the API (and any
 * other change to replicated tables) must not commit in a batch that is
 * not: it would exist here and never reach the other region (the
 * divergence a step-down racing a queued write used to cause). */
bool capture_batch_active(const capture *c);
/* Log a schema migration (writer connection, inside the migration's
 * transaction): matches db_migrate's on_migration callback. 0, or
 * ERR_INVAL (no SQL) / ERR_NOMEM / ERR_DB, and the caller rolls the
 * migration back (nothing logged). */
int capture_log_schema(db_conn *db, int version, const char *sql, void *arg);

#endif
