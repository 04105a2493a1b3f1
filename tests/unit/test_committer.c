/*
 * test_committer.c - group commit: concurrent writes share batches, each
 * write is answered exactly once and only after its batch committed, a
 * failing write rolls back alone, and a closed committer drains its queue.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/err.h"
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

static int count_value(int v)
{
	sqlite3_stmt *st = db_stmt(reader, "SELECT count(*) FROM t WHERE v = ?1");
	sqlite3_bind_int(st, 1, v);
	sqlite3_step(st);
	int n = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
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

int main(void)
{
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
	db_close(&reader);
	event_base_free(base);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TEST_SUMMARY();
}
