/*
 * test_capture.c - unit tests for src/replication/capture.c driven by the
 * group committer (src/store/committer.c), as a primary runs them: each
 * committed batch that changes data becomes exactly one repl_log entry, at
 * the next position, in the same transaction; its changeset is the net
 * effect of the batch (a rolled-back write leaves nothing), holds no repl_
 * table, and rebuilds the same rows on an empty replica. Schema migrations
 * are logged as entries of their own and apply once, in order, elsewhere.
 *
 * The writer connection belongs to the committer; the checks read through a
 * separate read-only connection, as the event loop does.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "replication/capture.h"
#include "store/committer.h"
#include "store/db.h"
#include "store/schema.h"
#include "test.h"

static struct event_base *base;
static char dir[] = "/tmp/tandem-test-capture-XXXXXX";
static char path[128];
static db_conn *reader;     /* read-only connection to the primary's database */
static committer *writer;   /* owns the writer connection */
static capture *cap;
static sqlite3 *replica;    /* an empty database the log is applied to */
static uint64_t replica_upto; /* last log position applied to the replica */

/* what the committed() callback saw */
static int committed_calls;
static uint64_t committed_last;

static void on_committed(void *arg, uint64_t seq)
{
	CHECK(arg == &committed_calls);
	committed_calls++;
	committed_last = seq;
}

typedef struct job {
	const char *sql;   /* run by exec; NULL: nothing */
	int fail;          /* exec returns ERR_CONFLICT after running sql */
	bool disable_first;/* exec turns capture off before its sql (a step-down mid-batch) */
	int active;        /* capture_batch_active() as exec saw it: 1, 0; -1 not run */
	int done_calls;
	int rc;
	uint64_t seq;
	int committed_calls_at_done; /* committed() calls seen when done() ran */
} job;

static int exec_sql(db_conn *db, void *arg)
{
	job *j = arg;
	if (j->disable_first)
		capture_set_enabled(cap, false);
	j->active = capture_batch_active(cap);
	if (j->sql && sqlite3_exec(db_handle(db), j->sql, NULL, NULL, NULL) != SQLITE_OK)
		return ERR_DB;
	return j->fail ? ERR_CONFLICT : 0;
}

static void on_done(void *arg, int rc, uint64_t seq)
{
	job *j = arg;
	j->done_calls++;
	j->rc = rc;
	j->seq = seq;
	j->committed_calls_at_done = committed_calls;
}

/* A job that holds the writer thread until the test opens the gate, so that
 * the jobs submitted meanwhile all queue up and form the next batch. */
static atomic_int gate_entered, gate_open;

static int exec_gate(db_conn *db, void *arg)
{
	atomic_store(&gate_entered, 1);
	while (!atomic_load(&gate_open))
		usleep(100);
	return 0;
}

static bool all_done(const job *jobs, int n)
{
	for (int i = 0; i < n; i++)
		if (jobs[i].done_calls == 0)
			return false;
	return true;
}

static void pump_until_done(const job *jobs, int n)
{
	for (int i = 0; i < 50000 && !all_done(jobs, n); i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(100);
	}
	CHECK(all_done(jobs, n));
}

/* Run jobs[0..n) as one batch (behind a gate batch that changes nothing)
 * and wait for every completion. */
static void run_one_batch(job *jobs, int n)
{
	committer_stats before, after;
	committer_get_stats(writer, &before);
	job gate = {0};
	atomic_store(&gate_entered, 0);
	atomic_store(&gate_open, 0);
	CHECK_EQ_INT(committer_submit(writer, exec_gate, on_done, &gate), 0);
	for (int i = 0; i < 100000 && !atomic_load(&gate_entered); i++)
		usleep(100);
	CHECK(atomic_load(&gate_entered));
	for (int i = 0; i < n; i++)
		CHECK_EQ_INT(committer_submit(writer, exec_sql, on_done, &jobs[i]), 0);
	atomic_store(&gate_open, 1);
	pump_until_done(&gate, 1);
	pump_until_done(jobs, n);
	CHECK_EQ_INT(gate.done_calls, 1);
	CHECK_EQ_INT(gate.rc, 0);
	CHECK_EQ_INT(gate.seq, 0); /* the gate's batch changed nothing */
	committer_get_stats(writer, &after);
	CHECK_EQ_INT(after.batches - before.batches, 2);
	CHECK_EQ_INT(after.failed_batches, before.failed_batches);
	for (int i = 0; i < n; i++)
		CHECK_EQ_INT(jobs[i].done_calls, 1);
}

static int64_t query_int(sqlite3 *h, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int64_t log_rows(void)
{
	return query_int(db_handle(reader), "SELECT count(*) FROM repl_log");
}

static uint64_t last_seq(db_conn *db)
{
	uint64_t last = 0, epoch = 0;
	char role[16];
	CHECK_EQ_INT(capture_read_state(db, role, &epoch, &last, NULL), 0);
	CHECK_EQ_STR(role, "primary");
	CHECK_EQ_INT(epoch, 1);
	return last;
}

typedef struct log_entry {
	int found;
	uint64_t epoch;
	int kind;
	int64_t committed_at;
	unsigned char *payload; /* malloc'd, exactly len bytes */
	int len;
} log_entry;

static log_entry read_entry(db_conn *db, uint64_t seq)
{
	log_entry e = {0};
	sqlite3_stmt *st = NULL;
	sqlite3_prepare_v2(db_handle(db),
			   "SELECT epoch, kind, committed_at, payload FROM repl_log WHERE seq = ?1", -1,
			   &st, NULL);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	if (sqlite3_step(st) == SQLITE_ROW) {
		e.found = 1;
		e.epoch = (uint64_t)sqlite3_column_int64(st, 0);
		e.kind = sqlite3_column_int(st, 1);
		e.committed_at = sqlite3_column_int64(st, 2);
		e.len = sqlite3_column_bytes(st, 3);
		e.payload = malloc(e.len ? (size_t)e.len : 1);
		if (e.len)
			memcpy(e.payload, sqlite3_column_blob(st, 3), (size_t)e.len);
	}
	sqlite3_finalize(st);
	return e;
}

/* The tables a changeset touches, as "name,name,..." (one per change), and
 * the number of changes. */
static int changeset_tables(const log_entry *e, char *out, size_t cap_out)
{
	sqlite3_changeset_iter *it = NULL;
	int changes = 0;
	out[0] = '\0';
	CHECK_EQ_INT(sqlite3changeset_start(&it, e->len, e->payload), SQLITE_OK);
	while (sqlite3changeset_next(it) == SQLITE_ROW) {
		const char *table = NULL;
		int columns = 0, op = 0, indirect = 0;
		CHECK_EQ_INT(sqlite3changeset_op(it, &table, &columns, &op, &indirect), SQLITE_OK);
		size_t used = strlen(out);
		snprintf(out + used, cap_out - used, "%s%s", changes ? "," : "", table ? table : "?");
		changes++;
	}
	CHECK_EQ_INT(sqlite3changeset_finalize(it), SQLITE_OK);
	return changes;
}

static int count_conflict(void *arg, int reason, sqlite3_changeset_iter *it)
{
	(*(int *)arg)++;
	return SQLITE_CHANGESET_ABORT;
}

/* Apply every changeset entry after replica_upto to the replica, in order;
 * each must apply without conflict and name no repl_ table. */
static void replicate(void)
{
	uint64_t last = last_seq(reader);
	for (uint64_t seq = replica_upto + 1; seq <= last; seq++) {
		log_entry e = read_entry(reader, seq);
		CHECK(e.found);
		if (e.found && e.kind == LOG_CHANGESET) {
			char tables[1024];
			changeset_tables(&e, tables, sizeof tables);
			CHECK(strstr(tables, "repl_") == NULL);
			int conflicts = 0;
			CHECK_EQ_INT(sqlite3changeset_apply(replica, e.len, e.payload, NULL, count_conflict,
							    &conflicts),
				     SQLITE_OK);
			CHECK_EQ_INT(conflicts, 0);
		}
		free(e.payload);
	}
	replica_upto = last;
}

/* Every row of t, as text. */
static void dump_t(sqlite3 *h, buf *out)
{
	sqlite3_stmt *st = NULL;
	CHECK_EQ_INT(sqlite3_prepare_v2(h, "SELECT id, v FROM t ORDER BY id", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 1);
		CHECK_EQ_INT(buf_printf(out, "%lld=%s\n", (long long)sqlite3_column_int64(st, 0),
					v ? (const char *)v : "NULL"),
			     0);
	}
	sqlite3_finalize(st);
}

static void check_replica_matches(void)
{
	buf src, dst;
	buf_init(&src, 1 << 20);
	buf_init(&dst, 1 << 20);
	dump_t(db_handle(reader), &src);
	dump_t(replica, &dst);
	CHECK(src.len > 0);
	CHECK_EQ_STR(dst.data ? dst.data : "", src.data ? src.data : "");
	buf_free(&src);
	buf_free(&dst);
}

static void check_row(const char *sql_count, int64_t expect)
{
	CHECK_EQ_INT(query_int(db_handle(reader), sql_count), expect);
}

/* (a) a batch of writes: one entry, at the next position, reported to
 * committed() and to every done(), committed() first */
static void test_batch_makes_one_entry(void)
{
	uint64_t last = last_seq(reader);
	int64_t rows = log_rows();
	int calls = committed_calls;
	job jobs[5] = {
		{.sql = "INSERT INTO t VALUES (1, 'a1')"}, {.sql = "INSERT INTO t VALUES (2, 'a2')"},
		{.sql = "INSERT INTO t VALUES (3, 'a3')"}, {.sql = "INSERT INTO t VALUES (4, 'a4')"},
		{.sql = "INSERT INTO t VALUES (5, 'a5')"},
	};
	int64_t t0 = util_now_ms();
	run_one_batch(jobs, 5);
	int64_t t1 = util_now_ms();
	CHECK_EQ_INT(log_rows(), rows + 1);
	CHECK_EQ_INT(last_seq(reader), last + 1);
	CHECK_EQ_INT(committed_calls, calls + 1);
	CHECK_EQ_INT(committed_last, last + 1);
	for (int i = 0; i < 5; i++) {
		CHECK_EQ_INT(jobs[i].rc, 0);
		CHECK_EQ_INT(jobs[i].seq, last + 1);
		CHECK_EQ_INT(jobs[i].committed_calls_at_done, calls + 1);
	}
	log_entry e = read_entry(reader, last + 1);
	CHECK(e.found);
	CHECK_EQ_INT(e.kind, LOG_CHANGESET);
	CHECK_EQ_INT(e.epoch, 1);
	CHECK(e.committed_at >= t0 && e.committed_at <= t1);
	char tables[1024];
	CHECK_EQ_INT(changeset_tables(&e, tables, sizeof tables), 5);
	CHECK_EQ_STR(tables, "t,t,t,t,t");
	free(e.payload);
	check_row("SELECT count(*) FROM t", 5);
	replicate();
	check_replica_matches();
}

/* (b) a write that fails (its savepoint rolled back) leaves nothing in the
 * changeset, even where it touched rows other writes of the batch touch */
static void test_failed_write_leaves_no_trace(void)
{
	uint64_t last = last_seq(reader);
	int64_t rows = log_rows();
	job jobs[] = {
		{.sql = "INSERT INTO t VALUES (10, 'ten')"},
		{.sql = "INSERT INTO t VALUES (11, 'eleven')", .fail = 1},
		{.sql = "UPDATE t SET v = 'ONE' WHERE id = 1"},
		{.sql = "DELETE FROM t WHERE id = 2"},
		{.sql = "UPDATE t SET v = 'changed' WHERE id = 3; DELETE FROM t WHERE id = 4;"
			"INSERT INTO t VALUES (12, 'twelve')",
		 .fail = 1},
		{.sql = "INSERT INTO t VALUES (13, 'thirteen'); UPDATE t SET v = 'THIRTEEN' WHERE id = 13"},
		{.sql = "INSERT INTO t VALUES (14, 'lost')", .fail = 1},
		{.sql = "INSERT INTO t VALUES (14, 'kept')"},
		{.sql = "UPDATE t SET v = 'lost' WHERE id = 5", .fail = 1},
		{.sql = "INSERT INTO t VALUES (10, 'duplicate')"}, /* fails in SQLite: ERR_DB */
	};
	const int n = (int)(sizeof jobs / sizeof jobs[0]);
	run_one_batch(jobs, n);
	CHECK_EQ_INT(log_rows(), rows + 1);
	CHECK_EQ_INT(last_seq(reader), last + 1);
	for (int i = 0; i < n; i++) {
		CHECK_EQ_INT(jobs[i].seq, last + 1); /* failed writes too: same batch */
		CHECK_EQ_INT(jobs[i].rc, jobs[i].fail ? ERR_CONFLICT : i == n - 1 ? ERR_DB : 0);
	}
	log_entry e = read_entry(reader, last + 1);
	CHECK(e.found && e.kind == LOG_CHANGESET);
	/* net effect: insert 10, 13, 14; update 1; delete 2 */
	char tables[1024];
	CHECK_EQ_INT(changeset_tables(&e, tables, sizeof tables), 5);
	free(e.payload);
	replicate();
	check_replica_matches();
	static const char *const replica_rows[] = {
		"SELECT count(*) FROM t WHERE id = 11", "SELECT count(*) FROM t WHERE id = 12",
		"SELECT count(*) FROM t WHERE id = 3 AND v = 'a3'",
		"SELECT count(*) FROM t WHERE id = 4", "SELECT count(*) FROM t WHERE id = 5 AND v = 'a5'",
		"SELECT count(*) FROM t WHERE id = 14 AND v = 'kept'",
		"SELECT count(*) FROM t WHERE id = 10 AND v = 'ten'",
	};
	static const int expect[] = {0, 0, 1, 1, 1, 1, 1};
	for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
		CHECK_EQ_INT(query_int(replica, replica_rows[i]), expect[i]);
		check_row(replica_rows[i], expect[i]);
	}
}

/* (e) the repl_ tables are never captured, even when a write touches one */
static void test_repl_tables_not_captured(void)
{
	uint64_t last = last_seq(reader);
	int64_t rows = log_rows();
	int calls = committed_calls;
	/* a batch that writes only a repl_ table is a batch that changed nothing */
	job only[] = {{.sql = "INSERT INTO repl_extra VALUES (1, 'x')"}};
	run_one_batch(only, 1);
	CHECK_EQ_INT(only[0].rc, 0);
	CHECK_EQ_INT(only[0].seq, 0);
	CHECK_EQ_INT(log_rows(), rows);
	CHECK_EQ_INT(committed_calls, calls);
	check_row("SELECT count(*) FROM repl_extra", 1);
	job mixed[] = {
		{.sql = "INSERT INTO repl_extra VALUES (2, 'y')"},
		{.sql = "INSERT INTO t VALUES (20, 'twenty')"},
		{.sql = "UPDATE repl_extra SET v = 'z' WHERE id = 1"},
	};
	run_one_batch(mixed, 3);
	CHECK_EQ_INT(log_rows(), rows + 1);
	CHECK_EQ_INT(last_seq(reader), last + 1);
	log_entry e = read_entry(reader, last + 1);
	char tables[1024];
	CHECK_EQ_INT(changeset_tables(&e, tables, sizeof tables), 1);
	CHECK_EQ_STR(tables, "t");
	free(e.payload);
	/* no entry so far names a repl_ table (replicate() checks each) */
	replicate();
	check_replica_matches();
	CHECK_EQ_INT(query_int(replica, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'repl%'"), 0);
}

/* (c) a batch that changes nothing makes no entry and has position 0 */
static void test_no_change_no_entry(void)
{
	uint64_t last = last_seq(reader);
	int64_t rows = log_rows();
	int calls = committed_calls;
	job jobs[] = {
		{.sql = "SELECT count(*) FROM t"},
		{.sql = "UPDATE t SET v = v WHERE id = 999"}, /* matches no row */
		{.sql = NULL},
	};
	run_one_batch(jobs, 3);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_INT(jobs[i].rc, 0);
		CHECK_EQ_INT(jobs[i].seq, 0);
	}
	CHECK_EQ_INT(log_rows(), rows);
	CHECK_EQ_INT(last_seq(reader), last);
	CHECK_EQ_INT(committed_calls, calls);
}

/* (d) capture off: writes commit, nothing is logged; back on, the log goes
 * on at the next position */
static void test_disabled_logs_nothing(void)
{
	uint64_t last = last_seq(reader);
	int64_t rows = log_rows();
	int calls = committed_calls;
	capture_set_enabled(cap, false);
	job off[] = {{.sql = "INSERT INTO t VALUES (30, 'unlogged')"},
		     {.sql = "UPDATE t SET v = 'unlogged' WHERE id = 1"}};
	run_one_batch(off, 2);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ_INT(off[i].rc, 0);
		CHECK_EQ_INT(off[i].seq, 0);
		CHECK_EQ_INT(off[i].active, 0); /* the API refuses its writes in such a batch */
	}
	CHECK_EQ_INT(log_rows(), rows);
	CHECK_EQ_INT(last_seq(reader), last);
	CHECK_EQ_INT(committed_calls, calls);
	check_row("SELECT count(*) FROM t WHERE id = 30", 1);
	capture_set_enabled(cap, true);
	job on[] = {{.sql = "INSERT INTO t VALUES (31, 'logged')"}};
	run_one_batch(on, 1);
	CHECK_EQ_INT(on[0].rc, 0);
	CHECK_EQ_INT(on[0].active, 1);
	CHECK_EQ_INT(on[0].seq, last + 1);
	CHECK_EQ_INT(log_rows(), rows + 1);
	CHECK_EQ_INT(committed_last, last + 1);
	/* the replica gets 31 but never 30 nor the update of 1 */
	replicate();
	CHECK_EQ_INT(query_int(replica, "SELECT count(*) FROM t WHERE id = 31"), 1);
	CHECK_EQ_INT(query_int(replica, "SELECT count(*) FROM t WHERE id = 30"), 0);
	CHECK_EQ_INT(query_int(replica, "SELECT count(*) FROM t WHERE v = 'unlogged'"), 0);
}

/* (d2) capture turned off while a batch runs (a step-down on the control
 * thread): the batch began captured and stays so, to its end: every write
 * of it is logged (none commits unlogged), and the next batch is not
 * captured */
static void test_disabled_mid_batch(void)
{
	uint64_t last = last_seq(reader);
	capture_set_enabled(cap, true);
	job mid[] = {{.sql = "INSERT INTO t VALUES (40, 'before')"},
		     {.sql = "INSERT INTO t VALUES (41, 'after')", .disable_first = true}};
	run_one_batch(mid, 2);
	for (int i = 0; i < 2; i++) {
		CHECK_EQ_INT(mid[i].rc, 0);
		CHECK_EQ_INT(mid[i].active, 1);
		CHECK_EQ_INT(mid[i].seq, last + 1);
	}
	CHECK_EQ_INT(last_seq(reader), last + 1);
	replicate();
	CHECK_EQ_INT(query_int(replica, "SELECT count(*) FROM t WHERE id IN (40, 41)"), 2);
	job next[] = {{.sql = NULL}};
	run_one_batch(next, 1);
	CHECK_EQ_INT(next[0].active, 0);
	capture_set_enabled(cap, true);
}

static db_conn *open_fresh(const char *name)
{
	char p[200], err[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	db_conn *db = db_open(p, false, err, sizeof err);
	if (!db)
		fprintf(stderr, "%s\n", err);
	CHECK(db != NULL);
	return db;
}

/* The schema objects of a database (not the replication tables), as text. */
static void dump_schema(db_conn *db, buf *out)
{
	sqlite3_stmt *st = NULL;
	CHECK_EQ_INT(sqlite3_prepare_v2(db_handle(db),
					"SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE "
					"'repl\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE "
					"'\\' ORDER BY name",
					-1, &st, NULL),
		     SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		buf_printf(out, "%s %s %s\n", sqlite3_column_text(st, 0), sqlite3_column_text(st, 1),
			   sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "");
	sqlite3_finalize(st);
}

/* Apply log entry e (kind 2) with db_apply_migration inside a transaction. */
static int apply_schema_entry(db_conn *db, const log_entry *e)
{
	CHECK(e->len >= 5);
	int version = (int)((uint32_t)e->payload[0] << 24 | (uint32_t)e->payload[1] << 16 |
			    (uint32_t)e->payload[2] << 8 | e->payload[3]);
	CHECK_EQ_INT(db_exec(db, "BEGIN IMMEDIATE"), 0);
	/* the SQL is not NUL-terminated: the payload is exactly e->len bytes */
	int rc = db_apply_migration(db, version, (const char *)e->payload + 4, (size_t)e->len - 4);
	CHECK_EQ_INT(db_exec(db, rc == 0 ? "COMMIT" : "ROLLBACK"), 0);
	return rc;
}

static int apply_sql(db_conn *db, int version, const char *sql)
{
	CHECK_EQ_INT(db_exec(db, "BEGIN IMMEDIATE"), 0);
	int rc = db_apply_migration(db, version, sql, strlen(sql));
	CHECK_EQ_INT(db_exec(db, rc == 0 ? "COMMIT" : "ROLLBACK"), 0);
	return rc;
}

/* (f) schema entries: kind 2, big-endian version then the SQL; they apply
 * on a fresh database once, in order, and a gap is refused */
static void test_schema_entries(void)
{
	char err[256];
	const int count = db_schema_latest();
	CHECK(count >= 1);
	db_conn *a = open_fresh("schema-a.db");
	CHECK_EQ_INT(capture_bootstrap(a, "primary", err, sizeof err), 0);
	CHECK_EQ_INT(db_migrate(a, capture_log_schema, NULL, err, sizeof err), 0);
	CHECK_EQ_INT(db_schema_version(a), count);
	CHECK_EQ_INT(last_seq(a), count);
	CHECK_EQ_INT(query_int(db_handle(a), "SELECT count(*) FROM repl_log"), count);
	for (int v = 1; v <= count; v++) {
		log_entry e = read_entry(a, (uint64_t)v);
		const char *sql = schema_migrations[v - 1];
		CHECK(e.found);
		CHECK_EQ_INT(e.kind, LOG_SCHEMA);
		CHECK_EQ_INT(e.epoch, 1);
		CHECK_EQ_INT(e.len, 4 + (int)strlen(sql));
		CHECK(e.len >= 4 && e.payload[0] == 0 && e.payload[1] == 0 && e.payload[2] == 0 &&
		      e.payload[3] == v);
		CHECK(e.len >= 4 && memcmp(e.payload + 4, sql, (size_t)e.len - 4) == 0);
		free(e.payload);
	}
	/* logged directly, inside the caller's transaction */
	static const char later[] = "CREATE TABLE later (a INTEGER PRIMARY KEY)";
	CHECK_EQ_INT(db_exec(a, "BEGIN IMMEDIATE"), 0);
	CHECK_EQ_INT(capture_log_schema(a, 0x01020304, later, NULL), 0);
	CHECK_EQ_INT(db_exec(a, "COMMIT"), 0);
	CHECK_EQ_INT(last_seq(a), count + 1);
	log_entry e = read_entry(a, (uint64_t)count + 1);
	CHECK(e.found && e.kind == LOG_SCHEMA);
	CHECK_EQ_INT(e.len, 4 + (int)strlen(later));
	CHECK(e.len >= 4 && memcmp(e.payload, "\x01\x02\x03\x04", 4) == 0);
	CHECK(e.len >= 4 && memcmp(e.payload + 4, later, strlen(later)) == 0);
	free(e.payload);

	/* the logged migrations rebuild the same schema on a fresh database */
	db_conn *b = open_fresh("schema-b.db");
	CHECK_EQ_INT(db_schema_version(b), 0);
	for (int pass = 0; pass < 2; pass++) { /* the second pass is a no-op */
		for (int v = 1; v <= count; v++) {
			log_entry m = read_entry(a, (uint64_t)v);
			CHECK_EQ_INT(apply_schema_entry(b, &m), 0);
			free(m.payload);
		}
		CHECK_EQ_INT(db_schema_version(b), count);
		buf sa, sb;
		buf_init(&sa, 1 << 20);
		buf_init(&sb, 1 << 20);
		dump_schema(a, &sa);
		dump_schema(b, &sb);
		CHECK(sa.len > 0);
		CHECK_EQ_STR(sb.data ? sb.data : "", sa.data ? sa.data : "");
		buf_free(&sa);
		buf_free(&sb);
	}

	/* versions apply in order only */
	db_conn *c = open_fresh("schema-c.db");
	CHECK_EQ_INT(apply_sql(c, 1, "CREATE TABLE one (a INTEGER PRIMARY KEY)"), 0);
	CHECK_EQ_INT(db_schema_version(c), 1);
	CHECK_EQ_INT(apply_sql(c, 3, "CREATE TABLE three (a INTEGER PRIMARY KEY)"), ERR_CONFLICT);
	CHECK_EQ_INT(db_schema_version(c), 1);
	CHECK_EQ_INT(query_int(db_handle(c), "SELECT count(*) FROM sqlite_master WHERE name = 'three'"), 0);
	/* a migration that does not run leaves the version where it was */
	CHECK_EQ_INT(apply_sql(c, 2, "CREATE TABLE broken ("), ERR_DB);
	CHECK_EQ_INT(db_schema_version(c), 1);
	CHECK_EQ_INT(apply_sql(c, 2, "CREATE TABLE two (a INTEGER PRIMARY KEY)"), 0);
	CHECK_EQ_INT(apply_sql(c, 3, "CREATE TABLE three (a INTEGER PRIMARY KEY)"), 0);
	CHECK_EQ_INT(db_schema_version(c), 3);
	CHECK_EQ_INT(apply_sql(c, 2, "CREATE TABLE two_again (a INTEGER PRIMARY KEY)"), 0); /* old */
	CHECK_EQ_INT(query_int(db_handle(c), "SELECT count(*) FROM sqlite_master WHERE name = 'two_again'"),
		     0);
	db_close(&a);
	db_close(&b);
	db_close(&c);
}

int main(void)
{
	char err[256];
	evthread_use_pthreads();
	base = event_base_new();
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof path, "%s/primary.db", dir);
	db_conn *w = db_open(path, false, err, sizeof err);
	CHECK(w != NULL);
	if (!w)
		return 1;
	CHECK_EQ_INT(capture_bootstrap(w, "primary", err, sizeof err), 0);
	CHECK_EQ_INT(db_exec(w, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
				"CREATE TABLE repl_extra (id INTEGER PRIMARY KEY, v TEXT)"),
		     0);
	reader = db_open(path, true, err, sizeof err);
	CHECK(reader != NULL);
	CHECK_EQ_INT(last_seq(reader), 0);
	CHECK_EQ_INT(sqlite3_open(":memory:", &replica), SQLITE_OK);
	CHECK_EQ_INT(sqlite3_exec(replica, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", NULL, NULL,
				  NULL),
		     SQLITE_OK);
	cap = capture_new();
	CHECK(cap != NULL);
	capture_set_enabled(cap, true);
	writer = committer_new(base, w, 64, 1000);
	CHECK(writer != NULL);
	committer_hooks hooks = capture_hooks(cap, on_committed, &committed_calls);
	committer_set_hooks(writer, &hooks);

	RUN(test_batch_makes_one_entry);
	RUN(test_failed_write_leaves_no_trace);
	RUN(test_repl_tables_not_captured);
	RUN(test_no_change_no_entry);
	RUN(test_disabled_logs_nothing);
	RUN(test_disabled_mid_batch);
	RUN(test_schema_entries);

	committer_free(&writer); /* closes the writer connection */
	capture_free(&cap);
	CHECK(cap == NULL);
	db_close(&reader);
	sqlite3_close(replica);
	event_base_free(base);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return TEST_SUMMARY();
}
