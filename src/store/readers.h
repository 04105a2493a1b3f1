/*
 * readers.h - a pool of reader threads, each with a read-only connection of
 * its own to the region's database, for queries that must never run on the
 * event loop (record lists: their cost depends on the caller's filter).
 *
 *   loop thread                          reader thread i (owns connection i)
 *   readers_submit(job) --bounded queue--> run(connection i, arg) -> rc
 *   done(arg, rc)  <--completion list--   (the job node moves over; no
 *                                          allocation after submit)
 *
 * Invariants: a connection is only ever used by its own thread (opened on
 * the creating thread before the threads start, closed after they are
 * joined); every accepted job gets exactly one done(), on the loop thread;
 * jobs start in submission order (with one thread they also finish in it).
 * In WAL mode the readers never wait for the writer nor it for them.
 * Requires evthread_use_pthreads() before the event base was created.
 */
#ifndef TANDEM_STORE_READERS_H
#define TANDEM_STORE_READERS_H

#include <stddef.h>

#include <event2/event.h>

#include "store/db.h"

typedef struct readers readers;

/* Runs on a reader thread with that thread's connection; must not touch
 * loop-owned state. Its return value reaches done(). */
typedef int (*readers_run_fn)(db_conn *db, void *arg);
/* Runs on the loop thread: rc from run(), or ERR_AGAIN when the job was
 * cancelled before it ran (the pool is stopping). */
typedef void (*readers_done_fn)(void *arg, int rc);
/* Prepares one new connection (registers SQL functions, say), on the
 * creating thread; 0 or a negative ERR_* that fails readers_new. */
typedef int (*readers_init_fn)(db_conn *db, void *arg);

/*
 * Open `threads` read-only connections to db_path (init, when not NULL, runs
 * on each), then start one thread per connection. queue_max bounds the jobs
 * waiting for a thread. NULL on failure with the reason in err (nothing left
 * running or open).
 */
readers *readers_new(struct event_base *base, const char *db_path, int threads, int queue_max,
		     readers_init_fn init, void *init_arg, char *err, size_t errcap);
/* Queue a job. 0; ERR_AGAIN when queue_max jobs are waiting or the pool is
 * stopping; ERR_NOMEM. On failure nothing is queued and done() will not run. */
int readers_submit(readers *r, readers_run_fn run, readers_done_fn done, void *arg);
/* Jobs waiting for a thread (for metrics). Thread-safe. */
int readers_queued(readers *r);
/*
 * Stop (loop thread): queued jobs are cancelled (done(arg, ERR_AGAIN)),
 * running ones are interrupted (sqlite3_interrupt, repeated until they
 * return, so a statement that had not started yet is caught too), the
 * threads joined, every completion delivered, the connections closed.
 * No-op on NULL; resets *r.
 */
void readers_free(readers **r);

#endif
