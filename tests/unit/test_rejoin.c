/*
 * test_rejoin.c - the revert of src/replication/rejoin.c (docs/FAILOVER.md
 * "Rejoin", step 2) on a real database: the entries above the divergence
 * point are reverted newest first, written to the quarantine file, and
 * taken out of the log, in one transaction; and what a read error during
 * it does. The file is included (as test_election.c does) to reach the
 * static revert_exec; faults come from the fault-injecting VFS.
 */
#include "replication/rejoin.c"

#include <unistd.h>

#include "failover/voter.h"
#include "faultvfs.h"
#include "replication/capture.h"
#include "store/db.h"
#include "test.h"

static char dir[] = "/tmp/tandem-test-rejoin-XXXXXX";
static char path[160];
static config cfg;

/* Log entry seq of epoch 1: the changeset of sql run on db (recorded by a
 * session on table t), appended to repl_log as the capture does. */
static void log_entry(db_conn *db, uint64_t seq, const char *sql)
{
	sqlite3 *h = db_handle(db);
	sqlite3_session *s = NULL;
	CHECK_EQ_INT(sqlite3session_create(h, "main", &s), SQLITE_OK);
	CHECK_EQ_INT(sqlite3session_attach(s, "t"), SQLITE_OK);
	CHECK_EQ_INT(db_exec(db, sql), 0);
	int n = 0;
	void *p = NULL;
	CHECK_EQ_INT(sqlite3session_changeset(s, &n, &p), SQLITE_OK);
	sqlite3session_delete(s);
	sqlite3_stmt *st = NULL;
	CHECK_EQ_INT(sqlite3_prepare_v2(h, "INSERT INTO repl_log VALUES (?1, 1, ?2, 0, ?3)", -1, &st, NULL),
		     SQLITE_OK);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	sqlite3_bind_int(st, 2, LOG_CHANGESET);
	sqlite3_bind_blob(st, 3, p, n, SQLITE_TRANSIENT);
	CHECK_EQ_INT(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_free(p);
}

static int64_t count(db_conn *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;
	if (sqlite3_prepare_v2(db_handle(db), sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* Bug pinned: revert_exec took any failure to read a log entry (here an
 * I/O error; SQLITE_BUSY the same) for "the entry is gone or a
 * migration", and the rejoin then copied the whole database away and
 * replaced it with a snapshot of the primary. Now a read error fails the
 * revert as a whole (ERR_DB, no snapshot): nothing is reverted, and the
 * next rejoin tries again. */
static void test_a_read_error_is_not_a_missing_entry(void)
{
	char err[256];
	db_conn *c = db_open(path, false, err, sizeof err); /* a cold page cache */
	CHECK(c != NULL);
	repl r = {.env = {.self = &cfg.regions[0], .cfg = &cfg}};
	CHECK_EQ_INT(repl_parts_new(&r), 0);
	revert_job j = {.r = &r, .from_last = 2, .d = 0, .new_epoch = 2, .epoch_at_d = 0};
	CHECK_EQ_INT(count(c, "SELECT count(*) FROM sqlite_schema"), 4); /* the schema is loaded */
	CHECK_EQ_INT(db_exec(c, "BEGIN IMMEDIATE"), 0);
	faultvfs_arm(FAULTVFS_READ, 1, SQLITE_IOERR, -1);
	int rc = revert_exec(c, &j);
	faultvfs_disarm();
	CHECK(faultvfs_injected() > 0);
	CHECK_EQ_INT(rc, ERR_DB);
	CHECK(!j.need_snapshot);
	CHECK(strstr(j.error, "cannot read entry 2") != NULL);
	if (!sqlite3_get_autocommit(db_handle(c))) /* an I/O error may have rolled it back already */
		CHECK_EQ_INT(db_exec(c, "ROLLBACK"), 0);
	CHECK_EQ_INT(count(c, "SELECT count(*) FROM repl_log"), 2);
	CHECK_EQ_INT(count(c, "SELECT count(*) FROM t"), 2);
	repl_parts_free(&r);
	db_close(&c);
}

/* Bug pinned: read_row, which records each reverted row before and after
 * in the quarantine, turned a failed read (an I/O error here) into JSON
 * null, "no such row"; the inverse changeset then failed on the same
 * error and the entry was taken for one that "does not revert cleanly":
 * the whole database copied away and replaced by a snapshot. Now the
 * failed read fails the revert as a whole (ERR_DB, no snapshot), and
 * nothing is reverted. */
static void test_a_row_that_cannot_be_read_fails_the_revert(void)
{
	char err[256];
	db_conn *c = db_open(path, false, err, sizeof err);
	CHECK(c != NULL);
	repl r = {.env = {.self = &cfg.regions[0], .cfg = &cfg}};
	CHECK_EQ_INT(repl_parts_new(&r), 0);
	revert_job j = {.r = &r, .from_last = 2, .d = 0, .new_epoch = 2, .epoch_at_d = 0};
	/* the log's pages in the cache: the first page read is table t's */
	CHECK(count(c, "SELECT sum(length(payload)) FROM repl_log") > 0);
	CHECK_EQ_INT(db_exec(c, "BEGIN IMMEDIATE"), 0);
	faultvfs_arm(FAULTVFS_READ, 1, SQLITE_IOERR, -1);
	int rc = revert_exec(c, &j);
	faultvfs_disarm();
	CHECK(faultvfs_injected() > 0);
	CHECK_EQ_INT(rc, ERR_DB);
	CHECK(!j.need_snapshot);
	if (!sqlite3_get_autocommit(db_handle(c)))
		CHECK_EQ_INT(db_exec(c, "ROLLBACK"), 0);
	CHECK_EQ_INT(count(c, "SELECT count(*) FROM repl_log"), 2);
	CHECK_EQ_INT(count(c, "SELECT count(*) FROM t"), 2);
	repl_parts_free(&r);
	db_close(&c);
}

/* The quarantine decision carried out: entries 1..2 above D = 0 are
 * reverted (the rows are gone again), written one JSON line each in
 * position order with the row before and after, and removed from the log
 * with the applied position set to D, in one transaction. */
static void test_revert_writes_the_quarantine_and_cuts_the_log(void)
{
	char err[256];
	db_conn *c = db_open(path, false, err, sizeof err);
	CHECK(c != NULL);
	repl r = {.env = {.self = &cfg.regions[0], .cfg = &cfg}};
	CHECK_EQ_INT(repl_parts_new(&r), 0);
	revert_job j = {.r = &r, .from_last = 2, .d = 0, .new_epoch = 2, .epoch_at_d = 0};
	CHECK_EQ_INT(db_exec(c, "BEGIN IMMEDIATE"), 0);
	CHECK_EQ_INT(revert_exec(c, &j), 0);
	CHECK_EQ_INT(db_exec(c, "COMMIT"), 0);
	CHECK_EQ_INT(j.count, 2);
	CHECK_EQ_INT(count(c, "SELECT count(*) FROM t"), 0);
	CHECK_EQ_INT(count(c, "SELECT count(*) FROM repl_log"), 0);
	CHECK_EQ_INT(count(c, "SELECT applied_seq FROM repl_state"), 0);
	size_t len = 0;
	char *text = util_read_file(j.path, 1 << 20, &len);
	CHECK(text != NULL);
	if (text) {
		char *second = strchr(text, '\n');
		CHECK(strstr(text, "\"position\":1") != NULL && second && strstr(second, "\"position\":2") != NULL);
		CHECK(strstr(text, "\"before\":null") != NULL);
		CHECK(strstr(text, "\"after\":{\"id\":1,\"v\":\"a\"}") != NULL);
	}
	free(text);
	CHECK(strstr(j.path, "/quarantine/eu-e1-to-e2.jsonl") != NULL);
	repl_parts_free(&r);
	db_close(&c);
}

static int done_calls;
static bool done_ok;

static void rejoin_finished(repl *r, bool ok)
{
	done_calls++;
	done_ok = ok;
}

/* Bug pinned: history_answer took the primary's answer on trust: an epoch
 * or a history row that is not a non-negative integer became a number
 * anyway (-1 as 2^64 - 1, "x" as 0), was learned as an epoch (a promise
 * raised for good, refusing every real primary after) and used for the
 * divergence point. Now a malformed answer is refused (logged, done(false),
 * nothing learned, nothing reverted). */
static void test_a_malformed_history_answer_is_refused(void)
{
	char err[256];
	repl r = {.env = {.self = &cfg.regions[0], .peer = &cfg.regions[1], .cfg = &cfg}};
	CHECK_EQ_INT(repl_parts_new(&r), 0);
	CHECK_EQ_INT(election_init(&r, err, sizeof err), 0); /* the voter at DIR/voter.json */
	r.epoch = 1;
	const char *answers[] = {
		"{\"role\":\"primary\",\"epoch\":-1,\"last_seq\":0,\"history\":[]}",
		"{\"role\":\"primary\",\"epoch\":2,\"last_seq\":-5,\"history\":[]}",
		"{\"role\":\"primary\",\"epoch\":2,\"last_seq\":3,\"history\":[[\"x\",1]]}",
		"{\"role\":\"primary\",\"epoch\":2,\"last_seq\":3,\"history\":[[1]]}",
		"{\"role\":\"primary\",\"epoch\":2,\"last_seq\":3,\"history\":{}}",
		"not json",
	};
	http_message resp = {.kind = HTTP_RESPONSE, .status = 200};
	for (size_t k = 0; k < sizeof answers / sizeof answers[0]; k++) {
		rejoin_ctx *c = calloc(1, sizeof *c);
		CHECK(c != NULL);
		c->r = &r;
		c->done = rejoin_finished;
		done_calls = 0;
		history_answer(0, &resp, answers[k], strlen(answers[k]), c);
		CHECK_EQ_INT(done_calls, 1);
		CHECK(!done_ok);
		CHECK_EQ_INT(election_promised(&r), 0);
		CHECK_EQ_INT(r.epoch, 1);
		CHECK_EQ_INT(applier_pending(&r), 0);
	}
	election_free(&r);
	repl_parts_free(&r);
}

int main(void)
{
	CHECK_EQ_INT(faultvfs_install(), SQLITE_OK);
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/test.db", dir);
	config_defaults(&cfg);
	snprintf(cfg.regions[0].name, sizeof cfg.regions[0].name, "eu");
	snprintf(cfg.regions[0].data_dir, sizeof cfg.regions[0].data_dir, "%s", dir);
	char err[256];
	db_conn *w = db_open(path, false, err, sizeof err);
	CHECK(w != NULL);
	CHECK_EQ_INT(capture_bootstrap(w, "secondary", err, sizeof err), 0);
	CHECK_EQ_INT(db_exec(w, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"), 0);
	log_entry(w, 1, "INSERT INTO t VALUES (1, 'a')");
	log_entry(w, 2, "INSERT INTO t VALUES (2, 'b')");
	CHECK_EQ_INT(db_exec(w, "UPDATE repl_state SET last_seq = 2, applied_seq = 2, applied_epoch = 1"), 0);
	db_close(&w);
	RUN(test_a_read_error_is_not_a_missing_entry);
	RUN(test_a_row_that_cannot_be_read_fails_the_revert);
	RUN(test_revert_writes_the_quarantine_and_cuts_the_log);
	RUN(test_a_malformed_history_answer_is_refused);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TEST_SUMMARY();
}
