/*
 * test_readers.c - the reader pool (src/store/readers.c): jobs start in
 * submission order and each gets exactly one completion, on the loop thread;
 * a connection is only ever used by one thread; a full queue refuses
 * (ERR_AGAIN, no completion); stopping cancels what waits and interrupts
 * what runs, even a statement that never ends; every allocation may fail.
 * Threads are held and released with gates, never with sleeps.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "test.h"

/* Allocation fault injection (as in test_parser.c): the allocation at which
 * the countdown reaches zero fails; a negative countdown never fails. */
static atomic_long alloc_countdown = -1;

static bool alloc_should_fail(void)
{
	if (atomic_load(&alloc_countdown) < 0)
		return false;
	return atomic_fetch_sub(&alloc_countdown, 1) == 0;
}

static void *test_malloc(size_t size)
{
	return alloc_should_fail() ? NULL : malloc(size);
}

static void *test_calloc(size_t count, size_t size)
{
	return alloc_should_fail() ? NULL : calloc(count, size);
}

#define malloc(size) test_malloc(size)
#define calloc(count, size) test_calloc(count, size)
#include "store/readers.c"
#undef malloc
#undef calloc

#include <event2/thread.h>

#include "core/err.h"

static struct event_base *base;
static char dir[] = "/tmp/tandem-test-readers-XXXXXX";
static char path[128];
static pthread_t loop_thread;

enum { MAX_JOBS = 64 };

typedef struct job {
	int index;
	int done_calls;
	int rc;
	bool done_on_loop;
	atomic_bool started;
	pthread_t ran_on;
	db_conn *ran_with;
	int value;          /* read from the database by the job */
	atomic_bool *gate;  /* when set: wait until it is true */
} job;

static int run_order[MAX_JOBS], run_count;
static int done_order[MAX_JOBS], done_count;
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;

static void reset_orders(void)
{
	run_count = done_count = 0;
}

/* Read a value through the thread's connection, after the gate (if any). */
static int run_read(db_conn *db, void *arg)
{
	job *j = arg;
	atomic_store(&j->started, true);
	while (j->gate && !atomic_load(j->gate))
		sched_yield();
	pthread_mutex_lock(&order_lock);
	run_order[run_count++] = j->index;
	pthread_mutex_unlock(&order_lock);
	j->ran_on = pthread_self();
	j->ran_with = db;
	sqlite3_stmt *st = db_stmt(db, "SELECT v FROM t WHERE id = 1");
	if (!st || sqlite3_step(st) != SQLITE_ROW)
		return ERR_DB;
	j->value = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return 100 + j->index;
}

/* A statement that never ends on its own (until interrupted). */
static int run_forever(db_conn *db, void *arg)
{
	job *j = arg;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db_handle(db),
				    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
				    "SELECT count(*) FROM c",
				    -1, &st, NULL);
	if (rc != SQLITE_OK)
		return ERR_DB;
	atomic_store(&j->started, true);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_INTERRUPT ? ERR_AGAIN - 100 : ERR_DB;
}

static void on_done(void *arg, int rc)
{
	job *j = arg;
	j->done_calls++;
	j->rc = rc;
	j->done_on_loop = pthread_equal(pthread_self(), loop_thread);
	done_order[done_count++] = j->index;
}

static void wait_started(job *j)
{
	while (!atomic_load(&j->started))
		sched_yield();
}

/* Run the loop until n completions have arrived. */
static void wait_done(int n)
{
	while (done_count < n)
		event_base_loop(base, EVLOOP_ONCE);
}

static readers *open_pool(int threads, int queue_max)
{
	char err[256];
	readers *r = readers_new(base, path, threads, queue_max, NULL, NULL, err, sizeof err);
	if (!r)
		fprintf(stderr, "readers_new: %s\n", err);
	CHECK(r != NULL);
	return r;
}

static void test_order_and_exactly_once(void)
{
	readers *r = open_pool(1, MAX_JOBS);
	job jobs[40] = {0};
	reset_orders();
	for (int i = 0; i < 40; i++) {
		jobs[i].index = i;
		CHECK_EQ_INT(readers_submit(r, run_read, on_done, &jobs[i]), 0);
	}
	wait_done(40);
	for (int i = 0; i < 40; i++) {
		CHECK_EQ_INT(run_order[i], i);  /* one thread: started in order */
		CHECK_EQ_INT(done_order[i], i); /* and finished in order */
		CHECK_EQ_INT(jobs[i].done_calls, 1);
		CHECK_EQ_INT(jobs[i].rc, 100 + i);
		CHECK(jobs[i].done_on_loop);
		CHECK_EQ_INT(jobs[i].value, 42);
	}
	readers_free(&r);
	CHECK(r == NULL);
	for (int i = 0; i < 40; i++)
		CHECK_EQ_INT(jobs[i].done_calls, 1); /* nothing delivered twice */
}

/* With several threads, each connection stays with one thread. */
static void test_connection_per_thread(void)
{
	readers *r = open_pool(3, MAX_JOBS);
	job jobs[60] = {0};
	reset_orders();
	for (int i = 0; i < 60; i++) {
		jobs[i].index = i;
		CHECK_EQ_INT(readers_submit(r, run_read, on_done, &jobs[i]), 0);
	}
	wait_done(60);
	for (int i = 0; i < 60; i++) {
		CHECK_EQ_INT(jobs[i].done_calls, 1);
		CHECK(jobs[i].done_on_loop);
		for (int k = 0; k < i; k++) {
			bool same_db = jobs[k].ran_with == jobs[i].ran_with;
			bool same_thread = pthread_equal(jobs[k].ran_on, jobs[i].ran_on) != 0;
			CHECK(same_db == same_thread);
		}
	}
	readers_free(&r);
}

static void test_queue_full(void)
{
	readers *r = open_pool(1, 2);
	atomic_bool gate = false;
	job jobs[4] = {0};
	reset_orders();
	for (int i = 0; i < 4; i++)
		jobs[i].index = i;
	jobs[0].gate = &gate;
	CHECK_EQ_INT(readers_submit(r, run_read, on_done, &jobs[0]), 0);
	wait_started(&jobs[0]); /* the thread holds it: the queue is empty */
	CHECK_EQ_INT(readers_submit(r, run_read, on_done, &jobs[1]), 0);
	CHECK_EQ_INT(readers_submit(r, run_read, on_done, &jobs[2]), 0);
	CHECK_EQ_INT(readers_queued(r), 2);
	CHECK_EQ_INT(readers_submit(r, run_read, on_done, &jobs[3]), ERR_AGAIN);
	atomic_store(&gate, true);
	wait_done(3);
	CHECK_EQ_INT(done_order[0], 0);
	CHECK_EQ_INT(done_order[1], 1);
	CHECK_EQ_INT(done_order[2], 2);
	/* room again once the queue drained */
	CHECK_EQ_INT(readers_submit(r, run_read, on_done, &jobs[3]), 0);
	wait_done(4);
	readers_free(&r);
	CHECK_EQ_INT(jobs[3].done_calls, 1); /* the refused submit never completed */
}

/* Stopping with a never-ending statement running and jobs waiting: the
 * statement is interrupted, the waiting jobs are cancelled without running,
 * every completion arrives before readers_free returns. */
static void test_stop_with_jobs_queued(void)
{
	readers *r = open_pool(1, MAX_JOBS);
	job jobs[5] = {0};
	reset_orders();
	for (int i = 0; i < 5; i++)
		jobs[i].index = i;
	CHECK_EQ_INT(readers_submit(r, run_forever, on_done, &jobs[0]), 0);
	wait_started(&jobs[0]);
	for (int i = 1; i < 5; i++)
		CHECK_EQ_INT(readers_submit(r, run_read, on_done, &jobs[i]), 0);
	readers_free(&r);
	CHECK(r == NULL);
	CHECK_EQ_INT(jobs[0].done_calls, 1);
	CHECK_EQ_INT(jobs[0].rc, ERR_AGAIN - 100); /* it saw SQLITE_INTERRUPT */
	for (int i = 1; i < 5; i++) {
		CHECK_EQ_INT(jobs[i].done_calls, 1);
		CHECK_EQ_INT(jobs[i].rc, ERR_AGAIN);
		CHECK(!atomic_load(&jobs[i].started)); /* cancelled, never ran */
		CHECK(jobs[i].done_on_loop);
	}
	CHECK_EQ_INT(run_count, 0);
}

static readers *late_pool;

/* Start the never-ending statement only once the pool is stopping: by then
 * readers_free has sent its first interrupt (it holds the lock from setting
 * stopping to its first wait), which SQLite forgets, no statement running. */
static int run_forever_late(db_conn *db, void *arg)
{
	job *j = arg;
	atomic_store(&j->started, true);
	for (bool stopping = false; !stopping;) {
		pthread_mutex_lock(&late_pool->lock);
		stopping = late_pool->stopping;
		pthread_mutex_unlock(&late_pool->lock);
		sched_yield();
	}
	return run_forever(db, arg);
}

/* The interrupt may land before the statement starts (SQLite forgets it
 * then): the pool interrupts again until the job returns. With one
 * interrupt only, readers_free would wait forever here. */
static void test_stop_interrupts_a_statement_not_yet_started(void)
{
	readers *r = late_pool = open_pool(1, MAX_JOBS);
	job j = {0};
	reset_orders();
	CHECK_EQ_INT(readers_submit(r, run_forever_late, on_done, &j), 0);
	wait_started(&j);
	readers_free(&r);
	CHECK_EQ_INT(j.done_calls, 1);
	CHECK_EQ_INT(j.rc, ERR_AGAIN - 100); /* it ran, and was interrupted */
	for (int round = 0; round < 20; round++) { /* and at any other moment */
		r = open_pool(1, MAX_JOBS);
		job k = {0};
		CHECK_EQ_INT(readers_submit(r, run_forever, on_done, &k), 0);
		readers_free(&r);
		CHECK_EQ_INT(k.done_calls, 1);
		CHECK(k.rc == ERR_AGAIN || k.rc == ERR_AGAIN - 100);
	}
}

static void test_allocation_failures(void)
{
	char err[256];
	bool succeeded = false;
	for (long countdown = 0; countdown < 20 && !succeeded; countdown++) {
		atomic_store(&alloc_countdown, countdown);
		readers *r = readers_new(base, path, 2, 4, NULL, NULL, err, sizeof err);
		atomic_store(&alloc_countdown, -1);
		if (!r) {
			CHECK_EQ_STR(err, "out of memory");
			continue;
		}
		succeeded = true;
		readers_free(&r);
	}
	CHECK(succeeded);

	readers *r = open_pool(1, 4);
	job j = {0};
	reset_orders();
	atomic_store(&alloc_countdown, 0);
	CHECK_EQ_INT(readers_submit(r, run_read, on_done, &j), ERR_NOMEM);
	atomic_store(&alloc_countdown, -1);
	readers_free(&r);
	CHECK_EQ_INT(j.done_calls, 0); /* refused: no completion */
}

static int init_fails(db_conn *db, void *arg)
{
	int *calls = arg;
	return ++*calls == 2 ? ERR_DB : 0;
}

static void test_init_hook_failure(void)
{
	char err[256];
	int calls = 0;
	readers *r = readers_new(base, path, 3, 4, init_fails, &calls, err, sizeof err);
	CHECK(r == NULL);
	CHECK_EQ_INT(calls, 2);
	CHECK(strstr(err, "cannot prepare a reader connection") != NULL);
	r = readers_new(base, "/nonexistent-dir/x.db", 1, 4, NULL, NULL, err, sizeof err);
	CHECK(r == NULL);
	CHECK(strstr(err, "cannot open database") != NULL);
}

int main(void)
{
	evthread_use_pthreads();
	base = event_base_new();
	loop_thread = pthread_self();
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/test.db", dir);
	char err[256];
	db_conn *setup = db_open(path, false, err, sizeof err);
	db_exec(setup, "CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO t VALUES (1, 42)");
	db_close(&setup);
	RUN(test_order_and_exactly_once);
	RUN(test_connection_per_thread);
	RUN(test_queue_full);
	RUN(test_stop_with_jobs_queued);
	RUN(test_stop_interrupts_a_statement_not_yet_started);
	RUN(test_allocation_failures);
	RUN(test_init_hook_failure);
	event_base_free(base);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TEST_SUMMARY();
}
