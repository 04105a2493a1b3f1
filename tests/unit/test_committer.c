/*
 * test_committer.c - group commit: concurrent writes share batches, each
 * write is answered exactly once and only after its batch committed, a
 * failing write rolls back alone, and a closed committer drains its queue.
 * Storage faults come from the fault-injecting VFS (faultvfs.h): a busy
 * database, a full disk, a savepoint that cannot be rolled back.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/err.h"
#include "faultvfs.h"
#include "store/committer.h"
#include "store/db.h"
#include "test.h"

static struct event_base *base;
static char dir[] = "/tmp/tandem-test-commit-XXXXXX";
static char path[128];

typedef struct job {
	int value;
	int fail;       /* exec returns an error after inserting */
	int done_calls;
	int rc;
	int visible_at_done; /* was the row readable from another connection at done()? */
} job;

static db_conn *reader;

static int exec_insert(db_conn *db, void *arg)
{
	job *j = arg;
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO t (v) VALUES (?1)");
	sqlite3_bind_int(st, 1, j->value);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	return j->fail ? ERR_CONFLICT : 0;
}

/* The reader's count, -1 if it cannot be read. A WAL reader may be told
 * SQLITE_BUSY or SQLITE_PROTOCOL while the writer checkpoints under heavy
 * contention (CI's ASan run, the functional tests beside it): it tries
 * again, as the region's reader pool would be retried by its client. The
 * step's result was ignored before, and such a refusal read as "0 rows",
 * i.e. a write answered before it was visible. */
static int count_value(int v)
{
	sqlite3_stmt *st = db_stmt(reader, "SELECT count(*) FROM t WHERE v = ?1");
	int n = -1;
	for (int attempt = 0; attempt < 200 && n < 0; attempt++) {
		sqlite3_bind_int(st, 1, v);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			n = sqlite3_column_int(st, 0);
		sqlite3_reset(st);
		if (n < 0 && rc != SQLITE_BUSY && rc != SQLITE_PROTOCOL && rc != SQLITE_LOCKED)
			break;
		if (n < 0)
			usleep(1000);
	}
	CHECK(n >= 0);
	return n;
}

static void on_done(void *arg, int rc, uint64_t seq)
{
	job *j = arg;
	j->done_calls++;
	j->rc = rc;
	j->visible_at_done = count_value(j->value);
}

static committer *open_committer(int batch_max)
{
	char err[256];
	db_conn *w = db_open(path, false, err, sizeof err);
	CHECK(w != NULL);
	CHECK_EQ_INT(db_exec(w, "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v INTEGER)"), 0);
	committer *c = committer_new(base, w, batch_max, 100000);
	CHECK(c != NULL);
	return c;
}

static void wait_all(job *jobs, int n)
{
	for (int i = 0; i < 5000; i++) {
		int done = 0;
		for (int k = 0; k < n; k++)
			done += jobs[k].done_calls;
		if (done == n)
			return;
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(200);
	}
}

static void test_batches_and_exactly_once(void)
{
	committer *c = open_committer(64);
	enum { N = 500 };
	job *jobs = calloc(N, sizeof *jobs);
	for (int i = 0; i < N; i++) {
		jobs[i].value = 1000 + i;
		CHECK_EQ_INT(committer_submit(c, exec_insert, on_done, &jobs[i]), 0);
	}
	wait_all(jobs, N);
	committer_stats s;
	committer_get_stats(c, &s);
	for (int i = 0; i < N; i++) {
		CHECK_EQ_INT(jobs[i].done_calls, 1);
		CHECK_EQ_INT(jobs[i].rc, 0);
		CHECK_EQ_INT(jobs[i].visible_at_done, 1); /* committed before answered */
	}
	CHECK_EQ_INT(s.writes, N);
	CHECK(s.batches < N / 4);           /* 500 writes submitted at once share batches */
	CHECK(s.batches >= N / 64);         /* never more than batch_max per batch */
	committer_free(&c);
	CHECK(c == NULL);
	free(jobs);
}

static void test_failing_write_rolls_back_alone(void)
{
	committer *c = open_committer(16);
	job jobs[6];
	memset(jobs, 0, sizeof jobs);
	for (int i = 0; i < 6; i++) {
		jobs[i].value = 5000 + i;
		jobs[i].fail = (i == 2 || i == 4);
		committer_submit(c, exec_insert, on_done, &jobs[i]);
	}
	wait_all(jobs, 6);
	for (int i = 0; i < 6; i++) {
		CHECK_EQ_INT(jobs[i].done_calls, 1);
		CHECK_EQ_INT(jobs[i].rc, jobs[i].fail ? ERR_CONFLICT : 0);
		CHECK_EQ_INT(count_value(jobs[i].value), jobs[i].fail ? 0 : 1);
	}
	committer_free(&c);
}

static void test_free_drains_the_queue(void)
{
	committer *c = open_committer(8);
	job jobs[40];
	memset(jobs, 0, sizeof jobs);
	for (int i = 0; i < 40; i++) {
		jobs[i].value = 7000 + i;
		committer_submit(c, exec_insert, on_done, &jobs[i]);
	}
	committer_free(&c); /* commits what is queued and delivers every completion */
	for (int i = 0; i < 40; i++) {
		CHECK_EQ_INT(jobs[i].done_calls, 1);
		CHECK_EQ_INT(count_value(jobs[i].value), 1);
	}
}

static void test_queue_bound(void)
{
	char err[256];
	db_conn *w = db_open(path, false, err, sizeof err);
	committer *c = committer_new(base, w, 1, 2);
	job jobs[50];
	memset(jobs, 0, sizeof jobs);
	int accepted = 0, refused = 0;
	for (int i = 0; i < 50; i++) {
		jobs[i].value = 9000 + i;
		int rc = committer_submit(c, exec_insert, on_done, &jobs[i]);
		if (rc == 0)
			accepted++;
		else if (rc == ERR_AGAIN)
			refused++;
	}
	CHECK(refused > 0);
	CHECK_EQ_INT(accepted + refused, 50);
	committer_free(&c);
	int delivered = 0;
	for (int i = 0; i < 50; i++)
		delivered += jobs[i].done_calls;
	CHECK_EQ_INT(delivered, accepted); /* refused jobs never get a completion */
}

/* A write that fails after releasing its own savepoint: the committer's
 * ROLLBACK TO then fails ("no such savepoint"), and its row must not be
 * committed anyway. */
static int exec_insert_release_fail(db_conn *db, void *arg)
{
	if (exec_insert(db, arg) != 0)
		return ERR_DB;
	db_exec(db, "RELEASE job");
	return ERR_CONFLICT;
}

/* Bug pinned: the results of ROLLBACK TO / RELEASE were ignored, so a write
 * that failed but whose savepoint could not be rolled back was committed
 * with the batch (and the other writes acknowledged). Now the whole batch
 * fails: nothing of it is kept, every job gets an error. */
static void test_savepoint_that_cannot_roll_back_fails_the_batch(void)
{
	committer *c = open_committer(16);
	job jobs[3];
	memset(jobs, 0, sizeof jobs);
	for (int i = 0; i < 3; i++)
		jobs[i].value = 11000 + i;
	/* the three may or may not share a batch (the writer may wake between
	 * the submits): check per job what its batch did */
	committer_submit(c, exec_insert, on_done, &jobs[0]);
	committer_submit(c, exec_insert_release_fail, on_done, &jobs[1]);
	committer_submit(c, exec_insert, on_done, &jobs[2]);
	wait_all(jobs, 3);
	CHECK_EQ_INT(jobs[1].done_calls, 1);
	CHECK(jobs[1].rc < 0);
	CHECK_EQ_INT(count_value(jobs[1].value), 0); /* the failed write is not kept */
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(jobs[i].done_calls, 1);
		/* what is acknowledged is there; what is not, is not */
		CHECK_EQ_INT(count_value(jobs[i].value), jobs[i].rc == 0 ? 1 : 0);
	}
	committer_free(&c);
}

/* Bug pinned: a busy database (BEGIN IMMEDIATE gets SQLITE_BUSY after the
 * busy timeout) was reported as ERR_IO, a storage failure. Now ERR_AGAIN:
 * nothing was kept, retry. The VFS's xSleep returns at once (instant_sleep):
 * no sleeping. */
static void test_busy_database_is_err_again(void)
{
	committer *c = open_committer(16);
	job jobs[1];
	memset(jobs, 0, sizeof jobs);
	jobs[0].value = 12000;
	/* another connection holds the write lock for the whole test */
	char err[256];
	db_conn *other = db_open(path, false, err, sizeof err);
	CHECK(other != NULL);
	CHECK_EQ_INT(db_exec(other, "BEGIN IMMEDIATE"), 0);
	faultvfs_instant_sleep(true); /* the busy timeout passes at once */
	committer_submit(c, exec_insert, on_done, &jobs[0]);
	wait_all(jobs, 1);
	faultvfs_instant_sleep(false);
	CHECK_EQ_INT(jobs[0].done_calls, 1);
	CHECK_EQ_INT(jobs[0].rc, ERR_AGAIN);
	CHECK_EQ_INT(count_value(jobs[0].value), 0);
	CHECK_EQ_INT(db_exec(other, "ROLLBACK"), 0);
	db_close(&other);
	/* and the committer goes on once the database is free */
	memset(jobs, 0, sizeof jobs);
	jobs[0].value = 12001;
	committer_submit(c, exec_insert, on_done, &jobs[0]);
	wait_all(jobs, 1);
	CHECK_EQ_INT(jobs[0].rc, 0);
	CHECK_EQ_INT(count_value(jobs[0].value), 1);
	committer_free(&c);
}

/* A full disk or an I/O error at the commit: ERR_IO, nothing kept, and the
 * next batch works again. */
static void test_full_disk_and_io_error_at_commit(void)
{
	int codes[] = {SQLITE_FULL, SQLITE_IOERR};
	for (int k = 0; k < 2; k++) {
		committer *c = open_committer(16);
		job jobs[1];
		memset(jobs, 0, sizeof jobs);
		jobs[0].value = 13000 + k * 10;
		faultvfs_arm(FAULTVFS_WRITE, 1, codes[k], -1);
		committer_submit(c, exec_insert, on_done, &jobs[0]);
		wait_all(jobs, 1);
		faultvfs_disarm();
		CHECK(faultvfs_injected() > 0);
		CHECK_EQ_INT(jobs[0].done_calls, 1);
		CHECK_EQ_INT(jobs[0].rc, ERR_IO);
		CHECK_EQ_INT(count_value(jobs[0].value), 0);
		memset(jobs, 0, sizeof jobs);
		jobs[0].value = 13001 + k * 10;
		committer_submit(c, exec_insert, on_done, &jobs[0]);
		wait_all(jobs, 1);
		CHECK_EQ_INT(jobs[0].rc, 0);
		CHECK_EQ_INT(count_value(jobs[0].value), 1);
		committer_free(&c);
	}
}

/* done() without the reader's look: for faults armed on every connection */
static void on_done_blind(void *arg, int rc, uint64_t seq)
{
	(void)seq;
	job *j = arg;
	j->done_calls++;
	j->rc = rc;
}

/* Bug pinned: a BEGIN IMMEDIATE refused with SQLITE_PROTOCOL (a WAL reader
 * that could not take its read lock in SQLite's ~100 tries) made the
 * committer answer the whole batch ERR_IO, a "storage error" (503
 * storage_unavailable), though nothing was wrong with the storage. Now the
 * BEGIN, which changed nothing, is tried again. The faults: xShmLock says
 * SQLITE_BUSY, which SQLite's WAL code turns into SQLITE_PROTOCOL after its
 * tries (xSleep is instant while a fault is armed). */
static void test_wal_protocol_refusal_at_begin_is_tried_again(void)
{
	committer *c = open_committer(16);
	committer_stats before, after;
	committer_get_stats(c, &before);
	job jobs[1];
	memset(jobs, 0, sizeof jobs);
	jobs[0].value = 15000;
	/* enough refusals for one BEGIN to give up with SQLITE_PROTOCOL, not
	 * for all of its attempts */
	faultvfs_arm(FAULTVFS_SHMLOCK, 1, SQLITE_BUSY, 150);
	committer_submit(c, exec_insert, on_done_blind, &jobs[0]);
	wait_all(jobs, 1);
	int injected = faultvfs_injected();
	faultvfs_disarm();
	committer_get_stats(c, &after);
	CHECK(injected > 100);
	CHECK_EQ_INT(jobs[0].done_calls, 1);
	CHECK_EQ_INT(jobs[0].rc, 0);
	CHECK(after.begin_retries > before.begin_retries);
	CHECK_EQ_INT((int)(after.failed_batches - before.failed_batches), 0);
	CHECK_EQ_INT(count_value(jobs[0].value), 1);

	/* a refusal that does not end: the batch is answered ERR_AGAIN (retry),
	 * not ERR_IO, after a bounded number of tries; nothing kept */
	memset(jobs, 0, sizeof jobs);
	jobs[0].value = 15001;
	committer_get_stats(c, &before);
	faultvfs_arm(FAULTVFS_SHMLOCK, 1, SQLITE_BUSY, -1);
	committer_submit(c, exec_insert, on_done_blind, &jobs[0]);
	wait_all(jobs, 1);
	faultvfs_disarm();
	committer_get_stats(c, &after);
	CHECK_EQ_INT(jobs[0].done_calls, 1);
	CHECK_EQ_INT(jobs[0].rc, ERR_AGAIN);
	CHECK_EQ_INT((int)(after.begin_retries - before.begin_retries), 5);
	CHECK_EQ_INT((int)(after.failed_batches - before.failed_batches), 1);
	CHECK_EQ_INT(count_value(jobs[0].value), 0);
	committer_free(&c);
}

/* The control thread's jobs (committer_submit_to) complete on its own loop:
 * running the committer's loop delivers nothing of them, running the
 * target's loop delivers each exactly once; a job submitted the usual way
 * beside them still completes on the committer's loop. */
static pthread_t done_thread;
static void on_done_where(void *arg, int rc, uint64_t seq)
{
	done_thread = pthread_self();
	on_done(arg, rc, seq);
}

static void test_completion_on_another_loop(void)
{
	committer *c = open_committer(16);
	struct event_base *other = event_base_new();
	loop_queue *q = loop_queue_new(other);
	CHECK(q != NULL);
	job jobs[3] = {{.value = 97001}, {.value = 97002}, {.value = 97003}};
	CHECK_EQ_INT(committer_submit_to(c, q, exec_insert, on_done, &jobs[0]), 0);
	CHECK_EQ_INT(committer_submit_exclusive_to(c, q, exec_insert, on_done, &jobs[1]), 0);
	CHECK_EQ_INT(committer_submit(c, exec_insert, on_done_where, &jobs[2]), 0);
	wait_all(&jobs[2], 1); /* runs only the committer's loop */
	CHECK_EQ_INT(jobs[2].done_calls, 1);
	CHECK(pthread_equal(done_thread, pthread_self()));
	for (int i = 0; i < 5000 && jobs[0].done_calls + jobs[1].done_calls < 2; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(200);
	}
	CHECK_EQ_INT(jobs[0].done_calls + jobs[1].done_calls, 0); /* not on the committer's loop */
	for (int i = 0; i < 5000 && jobs[0].done_calls + jobs[1].done_calls < 2; i++) {
		event_base_loop(other, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(200);
	}
	CHECK_EQ_INT(jobs[0].done_calls, 1);
	CHECK_EQ_INT(jobs[1].done_calls, 1);
	CHECK_EQ_INT(jobs[0].rc, 0);
	CHECK_EQ_INT(jobs[0].visible_at_done, 1);
	committer_free(&c);
	loop_queue_free(&q);
	event_base_free(other);
}

int main(void)
{
	CHECK_EQ_INT(faultvfs_install(), SQLITE_OK); /* before any connection */
	evthread_use_pthreads();
	base = event_base_new();
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/test.db", dir);
	char err[256];
	db_conn *setup = db_open(path, false, err, sizeof err);
	db_exec(setup, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)");
	db_close(&setup);
	reader = db_open(path, true, err, sizeof err);
	RUN(test_batches_and_exactly_once);
	RUN(test_failing_write_rolls_back_alone);
	RUN(test_free_drains_the_queue);
	RUN(test_queue_bound);
	RUN(test_savepoint_that_cannot_roll_back_fails_the_batch);
	RUN(test_busy_database_is_err_again);
	RUN(test_full_disk_and_io_error_at_commit);
	RUN(test_wal_protocol_refusal_at_begin_is_tried_again);
	RUN(test_completion_on_another_loop);
	db_close(&reader);
	event_base_free(base);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TEST_SUMMARY();
}
