/*
 * test_history.c - the epoch history of src/replication/rejoin.c: loaded
 * from repl_epochs as a whole or not at all. Faults come from the
 * fault-injecting VFS (faultvfs.h): a read that fails half way must leave
 * the history in memory as it was, and say so, never a truncated one.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "faultvfs.h"
#include "replication/internal.h"
#include "store/db.h"
#include "test.h"

static char dir[] = "/tmp/tandem-test-history-XXXXXX";
static char path[128];
static db_conn *w; /* the writer */

static repl *new_repl(db_conn *reader)
{
	repl *r = calloc(1, sizeof *r);
	CHECK(r != NULL);
	CHECK_EQ_INT(repl_parts_new(r), 0);
	r->env.reader = reader;
	return r;
}

static void test_load_and_epoch_at(void)
{
	char err[256];
	db_conn *reader = db_open(path, true, err, sizeof err);
	repl *r = new_repl(reader);
	CHECK_EQ_INT(history_load(r), 0);
	CHECK_EQ_INT(history_length(r), 3);
	CHECK_EQ_INT(history_epoch_at(r, 0), 0);
	CHECK_EQ_INT(history_epoch_at(r, 1), 1);
	CHECK_EQ_INT(history_epoch_at(r, 10), 2);
	CHECK_EQ_INT(history_epoch_at(r, 25), 4);
	repl_parts_free(r);
	free(r);
	db_close(&reader);
}

/* Bug pinned: history_load treated SQLITE_BUSY (or any error) from
 * sqlite3_step as the end of the rows and returned 0 with a truncated (here:
 * empty) history, which later gives a wrong divergence point. Now: an
 * error, and the history loaded before is kept. */
static void test_busy_or_io_error_keeps_the_history(void)
{
	char err[256];
	db_conn *reader = db_open(path, true, err, sizeof err);
	repl *r = new_repl(reader);
	CHECK_EQ_INT(history_load(r), 0); /* statement prepared, 3 epochs */
	CHECK_EQ_INT(history_length(r), 3);
	/* a WAL reader's lock on the WAL index stays busy (the step ends
	 * with SQLITE_PROTOCOL after SQLite's retries), a page read fails
	 * (SQLITE_IOERR), the disk is full (a read does not write: only to
	 * show the read still works under that fault) */
	struct {
		faultvfs_method m;
		int code;
		bool fails;
	} faults[] = {{FAULTVFS_SHMLOCK, SQLITE_BUSY, true}, {FAULTVFS_READ, SQLITE_IOERR, true},
		      {FAULTVFS_WRITE, SQLITE_FULL, false}};
	for (int k = 0; k < 3; k++) {
		/* the writer changed the database: the reader drops its cache and
		 * reads pages again, in a new read transaction whose lock or read
		 * fails */
		CHECK_EQ_INT(db_exec(w, "INSERT INTO other VALUES (1)"), 0);
		faultvfs_arm(faults[k].m, 1, faults[k].code, -1);
		int rc = history_load(r);
		faultvfs_disarm();
		if (faults[k].fails) {
			CHECK(faultvfs_injected() > 0);
			CHECK(rc == ERR_AGAIN || rc == ERR_DB);
		} else {
			CHECK_EQ_INT(rc, 0);
		}
		CHECK_EQ_INT(history_length(r), 3);
		CHECK_EQ_INT(history_epoch_at(r, 25), 4);
		/* and the next read works */
		CHECK_EQ_INT(history_load(r), 0);
		CHECK_EQ_INT(history_length(r), 3);
	}
	repl_parts_free(r);
	free(r);
	db_close(&reader);
}

int main(void)
{
	CHECK_EQ_INT(faultvfs_install(), SQLITE_OK);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/test.db", dir);
	char err[256];
	w = db_open(path, false, err, sizeof err);
	CHECK(w != NULL);
	CHECK_EQ_INT(db_exec(w, "CREATE TABLE repl_epochs (epoch INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL);"
				"INSERT INTO repl_epochs VALUES (1, 1), (2, 5), (4, 20);"
				"CREATE TABLE other (x);"), 0);
	RUN(test_load_and_epoch_at);
	RUN(test_busy_or_io_error_keeps_the_history);
	db_close(&w);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TEST_SUMMARY();
}
