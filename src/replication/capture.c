/* capture.c - replication log capture on the primary; see capture.h. */
#include "replication/capture.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "replication/frame.h"

struct capture {
	atomic_bool enabled;
	sqlite3_session *session; /* during a batch (writer thread) */
	bool batch_capturing;     /* capture was on when this batch began */
	uint64_t epoch;
	uint64_t pending_seq;
	void (*committed)(void *arg, uint64_t seq);
	void *committed_arg;
};

static const char bootstrap_sql[] =
	"CREATE TABLE IF NOT EXISTS repl_state ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  role TEXT NOT NULL,"
	"  epoch INTEGER NOT NULL,"
	"  last_seq INTEGER NOT NULL,"
	"  applied_seq INTEGER NOT NULL,"
	"  applied_epoch INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS repl_log ("
	"  seq INTEGER PRIMARY KEY,"
	"  epoch INTEGER NOT NULL,"
	"  kind INTEGER NOT NULL,"
	"  committed_at INTEGER NOT NULL,"
	"  payload BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS repl_epochs ("
	"  epoch INTEGER PRIMARY KEY,"
	"  first_seq INTEGER NOT NULL);"
	"INSERT OR IGNORE INTO repl_epochs VALUES (1, 1);";

int capture_bootstrap(db_conn *db, const char *initial_role, char *err, size_t errcap)
{
	char *msg = NULL;
	sqlite3 *h = db_handle(db);
	if (sqlite3_exec(h, bootstrap_sql, NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	char *ins = sqlite3_mprintf("INSERT OR IGNORE INTO repl_state VALUES (1, %Q, 1, 0, 0, 0)",
				    initial_role);
	int rc = sqlite3_exec(h, ins, NULL, NULL, &msg);
	sqlite3_free(ins);
	if (rc != SQLITE_OK)
		goto fail;
	return 0;
fail:
	snprintf(err, errcap, "cannot create the replication tables: %s", msg ? msg : sqlite3_errmsg(h));
	sqlite3_free(msg);
	return ERR_DB;
}

int capture_read_state(db_conn *db, char role[16], uint64_t *epoch, uint64_t *last_seq,
		       uint64_t *applied_seq)
{
	sqlite3_stmt *st = db_stmt(db, "SELECT role, epoch, last_seq, applied_seq FROM repl_state WHERE id = 1");
	if (!st)
		return ERR_DB;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (role)
			snprintf(role, 16, "%s", sqlite3_column_text(st, 0));
		if (epoch)
			*epoch = (uint64_t)sqlite3_column_int64(st, 1);
		if (last_seq)
			*last_seq = (uint64_t)sqlite3_column_int64(st, 2);
		if (applied_seq)
			*applied_seq = (uint64_t)sqlite3_column_int64(st, 3);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : ERR_DB;
}

capture *capture_new(void)
{
	capture *c = calloc(1, sizeof *c);
	if (c)
		atomic_init(&c->enabled, false);
	return c;
}

void capture_free(capture **c)
{
	if (!*c)
		return;
	if ((*c)->session)
		sqlite3session_delete((*c)->session);
	free(*c);
	*c = NULL;
}

void capture_set_enabled(capture *c, bool on)
{
	atomic_store(&c->enabled, on);
}

uint64_t capture_pending_seq(const capture *c)
{
	return c->pending_seq;
}

bool capture_batch_active(const capture *c)
{
	return c->batch_capturing && c->pending_seq != 0;
}

uint64_t capture_epoch(const capture *c)
{
	return c->epoch;
}

/* Every table but our own bookkeeping is replicated. */
static int capture_table_filter(void *arg, const char *table)
{
	return strncmp(table, "repl_", 5) != 0;
}

static void capture_batch_begin(db_conn *db, void *arg)
{
	capture *c = arg;
	c->batch_capturing = atomic_load(&c->enabled);
	c->pending_seq = 0;
	if (!c->batch_capturing)
		return;
	uint64_t last = 0;
	if (capture_read_state(db, NULL, &c->epoch, &last, NULL) != 0) {
		log_error("capture: cannot read the replication state");
		return;
	}
	c->pending_seq = last + 1;
	if (sqlite3session_create(db_handle(db), "main", &c->session) != SQLITE_OK) {
		log_error("capture: cannot create a session: %s", sqlite3_errmsg(db_handle(db)));
		c->session = NULL;
		return;
	}
	sqlite3session_table_filter(c->session, capture_table_filter, NULL);
	if (sqlite3session_attach(c->session, NULL) != SQLITE_OK) {
		log_error("capture: cannot attach the session");
		sqlite3session_delete(c->session);
		c->session = NULL;
	}
}

/* Append one log entry and move last_seq (writer connection, in a txn). */
static int capture_append(db_conn *db, uint64_t seq, uint64_t epoch, int kind, const void *payload,
			  int len)
{
	sqlite3_stmt *st = db_stmt(db, "INSERT INTO repl_log (seq, epoch, kind, committed_at, payload) "
				       "VALUES (?1, ?2, ?3, ?4, ?5)");
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)epoch);
	sqlite3_bind_int(st, 3, kind);
	sqlite3_bind_int64(st, 4, util_now_ms());
	sqlite3_bind_blob(st, 5, payload, len, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return ERR_DB;
	/* the primary's data is at its log's end: both positions move */
	st = db_stmt(db, "UPDATE repl_state SET last_seq = ?1, applied_seq = ?1, applied_epoch = ?2 WHERE id = 1");
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)epoch);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

static int capture_batch_end(db_conn *db, void *arg, uint64_t *seq)
{
	capture *c = arg;
	*seq = 0;
	if (!c->session) {
		/* a primary that cannot capture must not commit: the write would
		 * never reach the other region (whether capture is on is decided
		 * once per batch, at its beginning) */
		return c->batch_capturing ? ERR_DB : 0;
	}
	int n = 0;
	void *changes = NULL;
	int rc = sqlite3session_changeset(c->session, &n, &changes);
	sqlite3session_delete(c->session);
	c->session = NULL;
	if (rc != SQLITE_OK) {
		log_error("capture: cannot build the changeset: %s", sqlite3_errstr(rc));
		return ERR_DB;
	}
	if ((size_t)n > FRAME_MAX_PAYLOAD) {
		/* it could never be streamed: refuse the batch rather than stall
		 * replication (cannot happen within the configured body limits
		 * unless hundreds of maximal writes share one batch) */
		log_error("capture: a batch's changes (%d bytes) exceed the replication frame limit; "
			  "the batch is refused", n);
		sqlite3_free(changes);
		return ERR_LIMIT;
	}
	if (n > 0) {
		rc = capture_append(db, c->pending_seq, c->epoch, LOG_CHANGESET, changes, n);
		if (rc == 0)
			*seq = c->pending_seq;
	}
	sqlite3_free(changes);
	return rc;
}

static void capture_batch_committed(void *arg, uint64_t seq)
{
	capture *c = arg;
	if (seq && c->committed)
		c->committed(c->committed_arg, seq);
}

committer_hooks capture_hooks(capture *c, void (*committed)(void *arg, uint64_t seq), void *arg)
{
	c->committed = committed;
	c->committed_arg = arg;
	return (committer_hooks){capture_batch_begin, capture_batch_end, capture_batch_committed, c};
}

int capture_log_schema(db_conn *db, int version, const char *sql, void *arg)
{
	if (!sql || !*sql)
		return ERR_INVAL; /* a schema entry always carries its SQL */
	uint64_t epoch = 1, last = 0;
	if (capture_read_state(db, NULL, &epoch, &last, NULL) != 0)
		return ERR_DB;
	size_t len = strlen(sql);
	unsigned char *payload = malloc(len + 4);
	if (!payload)
		return ERR_NOMEM;
	payload[0] = (unsigned char)(version >> 24);
	payload[1] = (unsigned char)(version >> 16);
	payload[2] = (unsigned char)(version >> 8);
	payload[3] = (unsigned char)version;
	memcpy(payload + 4, sql, len);
	int rc = capture_append(db, last + 1, epoch, LOG_SCHEMA, payload, (int)(len + 4));
	free(payload);
	return rc;
}
