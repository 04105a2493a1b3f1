/* committer.c - the writer thread and its group commit; see committer.h. */
#include "store/committer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "core/workers.h"

typedef struct commit_job {
	commit_exec_fn exec;
	commit_done_fn done;
	void *arg;
	int rc;
	uint64_t seq;
	bool exclusive;       /* runs alone, outside any transaction */
	loop_queue *target;   /* where done() runs: the submitter's loop */
	struct commit_job *next;
} commit_job;

struct committer {
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	commit_job *head, *tail;
	int queued, queue_max, batch_max;
	bool stopping;
	db_conn *db;
	loop_queue *completions;
	committer_stats stats;
	committer_hooks hooks;
};

typedef struct batch_done {
	committer *c;
	uint64_t seq;
} batch_done;

static void committer_deliver_batch(void *arg)
{
	batch_done *b = arg;
	if (b->c->hooks.batch_committed)
		b->c->hooks.batch_committed(b->c->hooks.arg, b->seq);
	free(b);
}

void committer_set_hooks(committer *c, const committer_hooks *hooks)
{
	c->hooks = *hooks;
}

static void committer_deliver(void *arg)
{
	commit_job *j = arg;
	j->done(j->arg, j->rc, j->seq);
	free(j);
}

/* A refusal that says "not now" rather than "broken": the busy timeout ran
 * out (SQLITE_BUSY, SQLITE_LOCKED), or a WAL reader could not take a
 * consistent snapshot of the wal-index in SQLite's own ~100 tries while
 * other connections were checkpointing or opening (SQLITE_PROTOCOL; with
 * the real VFS those tries sleep about 10 s in all, so it is rare: it was
 * seen with the unit tests' VFS when its sleeps were instant). Nothing of
 * the statement took effect. */
static bool committer_transient(int code)
{
	code &= 0xff;
	return code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_PROTOCOL;
}

/* What a failed statement of the batch means for its jobs: a transient
 * refusal is ERR_AGAIN (nothing kept, retry), anything else ERR_IO. */
static int committer_batch_error(committer *c)
{
	return committer_transient(sqlite3_errcode(db_handle(c->db))) ? ERR_AGAIN : ERR_IO;
}

/* BEGIN IMMEDIATE, tried again on a transient refusal: a failed BEGIN holds
 * no lock and changed nothing, so trying again is safe, and it spares a
 * whole batch of users an error for a wal-index race that may well be over
 * by the next try. BUSY already waited out the busy timeout (10 s) inside
 * SQLite, so it is not tried again; PROTOCOL is, BEGIN_ATTEMPTS times in
 * all, sleeping 1, 2, 4, ... ms between (sqlite3_sleep: the VFS's xSleep,
 * which the unit tests' VFS makes instant while it injects faults). */
enum { BEGIN_ATTEMPTS = 6 };

static int committer_begin(committer *c)
{
	int rc = 0;
	for (int attempt = 0; attempt < BEGIN_ATTEMPTS; attempt++) {
		if (attempt > 0) {
			pthread_mutex_lock(&c->lock);
			c->stats.begin_retries++;
			pthread_mutex_unlock(&c->lock);
			sqlite3_sleep(1 << (attempt - 1));
		}
		rc = db_exec(c->db, "BEGIN IMMEDIATE");
		if (rc == 0)
			return 0;
		int code = sqlite3_errcode(db_handle(c->db)) & 0xff;
		if (code != SQLITE_PROTOCOL)
			return rc;
	}
	return rc;
}

/* Run one batch: jobs[0..n) in one transaction. If any statement of the
 * batch itself fails (BEGIN, a ROLLBACK TO or RELEASE of a job's savepoint,
 * the end hook, COMMIT) the whole batch is rolled back and every job of it
 * gets the error: a savepoint that cannot be undone would otherwise leave a
 * failed job's changes in the commit. */
static void committer_run_batch(committer *c, commit_job *batch)
{
	int rc = committer_begin(c);
	int fail_rc = rc != 0 ? committer_batch_error(c) : 0;
	uint64_t seq = 0;
	if (rc == 0) {
		if (c->hooks.batch_begin)
			c->hooks.batch_begin(c->db, c->hooks.arg);
		for (commit_job *j = batch; j; j = j->next) {
			if (db_exec(c->db, "SAVEPOINT job") != 0) {
				j->rc = ERR_DB; /* nothing of it ran */
				continue;
			}
			j->rc = j->exec(c->db, j->arg);
			if (j->rc < 0 && db_exec(c->db, "ROLLBACK TO job") != 0) {
				log_error("group commit: a failed write cannot be rolled back alone; failing the batch");
				rc = ERR_DB;
				break;
			}
			if (db_exec(c->db, "RELEASE job") != 0) {
				log_error("group commit: cannot release a write's savepoint; failing the batch");
				rc = ERR_DB;
				break;
			}
		}
		if (rc == 0 && c->hooks.batch_end)
			rc = c->hooks.batch_end(c->db, c->hooks.arg, &seq);
		int64_t t0 = util_mono_us();
		if (rc == 0) {
			rc = db_exec(c->db, "COMMIT");
			if (rc != 0)
				fail_rc = committer_batch_error(c);
		}
		int64_t t1 = util_mono_us();
		pthread_mutex_lock(&c->lock);
		c->stats.commit_us_total += (uint64_t)(t1 - t0);
		pthread_mutex_unlock(&c->lock);
	}
	if (rc != 0) {
		/* nothing of this batch is on disk: no job may be acknowledged */
		if (!sqlite3_get_autocommit(db_handle(c->db)) &&
		    sqlite3_exec(db_handle(c->db), "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
			log_error("group commit: ROLLBACK failed too: %s", sqlite3_errmsg(db_handle(c->db)));
		if (fail_rc == 0)
			fail_rc = ERR_IO;
		log_error("group commit failed (%s); every write of the batch is answered with an error",
			  fail_rc == ERR_AGAIN ? "the database is busy" : "storage error");
		for (commit_job *j = batch; j; j = j->next)
			j->rc = fail_rc;
		seq = 0;
	}
	if (c->hooks.batch_committed) {
		batch_done *b = malloc(sizeof *b);
		if (b) {
			b->c = c;
			b->seq = seq;
		}
		if (!b || loop_queue_post(c->completions, committer_deliver_batch, b) != 0) {
			log_error("cannot deliver a batch notification: out of memory");
			abort(); /* answers could otherwise overtake what replication knows */
		}
	}
	int n = 0;
	for (commit_job *j = batch; j;) {
		commit_job *next = j->next;
		j->seq = seq;
		n++;
		if (loop_queue_post(j->target, committer_deliver, j) != 0) {
			log_error("cannot deliver a write completion: out of memory");
			abort(); /* losing an answer silently is worse */
		}
		j = next;
	}
	pthread_mutex_lock(&c->lock);
	c->stats.batches++;
	c->stats.writes += (uint64_t)n;
	if (rc != 0)
		c->stats.failed_batches++;
	pthread_mutex_unlock(&c->lock);
}

static void *committer_main(void *arg)
{
	committer *c = arg;
	for (;;) {
		pthread_mutex_lock(&c->lock);
		while (!c->head && !c->stopping)
			pthread_cond_wait(&c->wake, &c->lock);
		if (!c->head) {
			pthread_mutex_unlock(&c->lock);
			return NULL;
		}
		/* take up to batch_max jobs; an exclusive job goes alone */
		commit_job *batch = c->head, *last = c->head;
		int n = 1;
		while (!batch->exclusive && last->next && !last->next->exclusive && n < c->batch_max) {
			last = last->next;
			n++;
		}
		c->head = last->next;
		if (!c->head)
			c->tail = NULL;
		last->next = NULL;
		c->queued -= n;
		pthread_mutex_unlock(&c->lock);
		if (batch->exclusive) {
			batch->rc = batch->exec(c->db, batch->arg);
			batch->seq = 0;
			if (loop_queue_post(batch->target, committer_deliver, batch) != 0)
				abort(); /* never lose an answer */
			continue;
		}
		committer_run_batch(c, batch);
	}
}

committer *committer_new(struct event_base *base, db_conn *db, int batch_max, int queue_max)
{
	committer *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	c->batch_max = batch_max;
	c->queue_max = queue_max;
	c->db = db;
	c->completions = loop_queue_new(base);
	if (!c->completions)
		goto fail;
	if (pthread_create(&c->thread, NULL, committer_main, c) != 0)
		goto fail;
	c->thread_started = true;
	return c;
fail:
	c->db = NULL; /* caller keeps it */
	committer_free(&c);
	return NULL;
}

static int committer_queue(committer *c, loop_queue *target, commit_exec_fn exec, commit_done_fn done,
			   void *arg, bool exclusive)
{
	commit_job *j = malloc(sizeof *j);
	if (!j)
		return ERR_NOMEM;
	*j = (commit_job){exec, done, arg, 0, 0, exclusive, target ? target : c->completions, NULL};
	pthread_mutex_lock(&c->lock);
	if (c->stopping || c->queued >= c->queue_max) {
		pthread_mutex_unlock(&c->lock);
		free(j);
		return ERR_AGAIN;
	}
	if (c->tail)
		c->tail->next = j;
	else
		c->head = j;
	c->tail = j;
	c->queued++;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

int committer_submit(committer *c, commit_exec_fn exec, commit_done_fn done, void *arg)
{
	return committer_queue(c, NULL, exec, done, arg, false);
}

int committer_submit_exclusive(committer *c, commit_exec_fn exec, commit_done_fn done, void *arg)
{
	return committer_queue(c, NULL, exec, done, arg, true);
}

int committer_submit_to(committer *c, loop_queue *done_on, commit_exec_fn exec, commit_done_fn done, void *arg)
{
	return committer_queue(c, done_on, exec, done, arg, false);
}

int committer_submit_exclusive_to(committer *c, loop_queue *done_on, commit_exec_fn exec, commit_done_fn done,
				  void *arg)
{
	return committer_queue(c, done_on, exec, done, arg, true);
}

void committer_get_stats(committer *c, committer_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = c->stats;
	out->queued = c->queued;
	pthread_mutex_unlock(&c->lock);
}

void committer_free(committer **pc)
{
	committer *c = *pc;
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);
	if (c->thread_started)
		pthread_join(c->thread, NULL);
	if (c->completions)
		loop_queue_free(&c->completions); /* runs pending completions */
	db_close(&c->db);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
	*pc = NULL;
}
