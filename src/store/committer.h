/*
 * committer.h - group commit: every write of a region goes through one
 * writer thread that runs all waiting writes in one transaction and makes
 * them durable with one fsync.
 *
 * A write is a function run on the writer thread inside the batch
 * transaction, in a savepoint of its own, so one failing write rolls back
 * only itself. The completion runs on the event loop thread after the batch
 * is committed and on disk: that is the moment a write may be acknowledged.
 *
 *   loop thread                 writer thread
 *   submit(job) --queue--> [wait for jobs] -> BEGIN
 *                           for each: SAVEPOINT; exec(); RELEASE | ROLLBACK TO
 *                           COMMIT (fsync of the WAL)
 *   done(job, rc) <--loop queue--
 *
 * Batches form by themselves: while one commit is being fsync'd, new jobs
 * queue up and become the next batch. No timer delays a lone write.
 */
#ifndef TANDEM_STORE_COMMITTER_H
#define TANDEM_STORE_COMMITTER_H

#include <stdint.h>

#include <event2/event.h>

#include "core/workers.h"
#include "store/db.h"

typedef struct committer committer;

/* Runs on the writer thread inside the batch; returns 0 to keep its changes,
 * a negative ERR_* to roll them back (that value reaches done()). */
typedef int (*commit_exec_fn)(db_conn *db, void *arg);
/* Runs on the loop thread once the batch is durable (rc from exec), or,
 * when the batch could not be committed (nothing of it was kept), with
 * ERR_AGAIN (the database was busy, or its WAL index contended past a few
 * tries of the BEGIN: retry) or ERR_IO (a storage error, a
 * savepoint that could not be rolled back or released, the end hook
 * failed). Always called exactly once per accepted job. seq: the position
 * of the batch (see committer_hooks), 0 when there is none. */
typedef void (*commit_done_fn)(void *arg, int rc, uint64_t seq);

/*
 * Hooks around each batch (replication capture, see replication/capture.h):
 * batch_begin and batch_end run on the writer thread inside the batch
 * transaction (after BEGIN, before COMMIT); batch_end may write rows and
 * returns the batch's position in *seq (0: it changed nothing), or a
 * negative ERR_* to fail the whole batch. batch_committed runs on the loop
 * thread once the batch is durable, before the completions of its jobs;
 * seq is also handed to every done().
 */
typedef struct committer_hooks {
	void (*batch_begin)(db_conn *db, void *arg);
	int (*batch_end)(db_conn *db, void *arg, uint64_t *seq);
	void (*batch_committed)(void *arg, uint64_t seq);
	void *arg;
} committer_hooks;

typedef struct committer_stats {
	uint64_t batches;
	uint64_t writes;
	uint64_t failed_batches;
	uint64_t begin_retries;   /* BEGINs tried again after SQLITE_PROTOCOL */
	uint64_t commit_us_total; /* time in COMMIT (fsync) */
	int queued;
} committer_stats;

/* Start the writer thread on the given (writable, migrated) connection,
 * which it then owns. NULL on failure. */
committer *committer_new(struct event_base *base, db_conn *db, int batch_max, int queue_max);
/* Install hooks; call before the first submit. */
void committer_set_hooks(committer *c, const committer_hooks *hooks);
/* Queue a write. 0, or ERR_AGAIN when the queue is full or stopping (nothing
 * queued; done() will not run), ERR_NOMEM. */
int committer_submit(committer *c, commit_exec_fn exec, commit_done_fn done, void *arg);
/* Queue a job that runs alone, outside any transaction and without the
 * hooks (restoring a snapshot with the backup API needs that), in order
 * with the other jobs. Same return values. */
int committer_submit_exclusive(committer *c, commit_exec_fn exec, commit_done_fn done, void *arg);
/*
 * The same two, with done() run on another loop than the committer's: the
 * thread of done_on (the control thread's queue, for the jobs replication
 * submits). The batch_committed hook still runs on the committer's loop.
 * done_on must outlive every job submitted to it: its owner frees it after
 * committer_free, or after draining it once the committer has nothing of
 * its jobs left (loop_queue_free runs what is pending).
 */
int committer_submit_to(committer *c, loop_queue *done_on, commit_exec_fn exec, commit_done_fn done, void *arg);
int committer_submit_exclusive_to(committer *c, loop_queue *done_on, commit_exec_fn exec, commit_done_fn done,
				  void *arg);
void committer_get_stats(committer *c, committer_stats *out);
/* Commit everything queued, stop the thread, deliver completions, close the
 * connection, free; no-op on NULL; resets *c. */
void committer_free(committer **c);

#endif
