/* db.c - SQLite connection setup, migrations, statement cache; see db.h. */
#include "store/db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/log.h"
#include "store/schema.h"

#define DB_STMT_CACHE 64

struct db_conn {
	sqlite3 *db;
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} cache[DB_STMT_CACHE];
	int cached;
};

/*
 * The database and its WAL and -shm files are for this process alone:
 * mode 0600. New files get it from the process's umask (077 in regions)
 * and SQLite gives the WAL and -shm the database file's mode; files left
 * with a wider mode by an older version are narrowed here. 0, or ERR_IO
 * with the reason in err.
 */
static int db_restrict_files(const char *path, char *err, size_t errcap)
{
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		char file[4096];
		snprintf(file, sizeof file, "%s%s", path, suffixes[i]);
		struct stat st;
		if (stat(file, &st) != 0)
			continue; /* not there (yet) */
		if ((st.st_mode & 077) && chmod(file, st.st_mode & 0700) != 0) {
			snprintf(err, errcap, "%s: cannot make it private (mode 0600): %s", file, strerror(errno));
			return ERR_IO;
		}
	}
	return 0;
}

db_conn *db_open(const char *path, bool readonly, char *err, size_t errcap)
{
	if (!readonly && db_restrict_files(path, err, errcap) != 0)
		return NULL;
	db_conn *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errcap, "%s: cannot open database: %s", path,
			 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, 10000);
	/* WAL: readers never block the writer nor the writer them.
	 * synchronous=FULL: in WAL mode every COMMIT fsyncs the WAL, so an
	 * acknowledged write survives power loss (NORMAL would not). */
	static const char *const pragmas =
		"PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
		"PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16000;";
	char *msg = NULL;
	if (sqlite3_exec(c->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errcap, "%s: cannot configure database: %s", path, msg ? msg : "?");
		sqlite3_free(msg);
		goto fail;
	}
	if (readonly && sqlite3_exec(c->db, "PRAGMA query_only=ON", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errcap, "%s: %s", path, sqlite3_errmsg(c->db));
		goto fail;
	}
	return c;
fail:
	db_close(&c);
	return NULL;
}

void db_close(db_conn **pc)
{
	db_conn *c = *pc;
	if (!c)
		return;
	for (int i = 0; i < c->cached; i++)
		sqlite3_finalize(c->cache[i].stmt);
	sqlite3_close_v2(c->db);
	free(c);
	*pc = NULL;
}

sqlite3 *db_handle(db_conn *c)
{
	return c->db;
}

int db_schema_latest(void)
{
	return schema_migration_count;
}

int db_schema_version(db_conn *c)
{
	sqlite3_stmt *st;
	int v = -1;
	if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	return v;
}

int db_migrate(db_conn *c, int (*on_migration)(db_conn *db, int version, const char *sql, void *arg),
	       void *arg, char *err, size_t errcap)
{
	char *msg = NULL;
	if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	int v = db_schema_version(c);
	if (v < 0) {
		msg = sqlite3_mprintf("cannot read the schema version");
		goto fail;
	}
	if (v > schema_migration_count) {
		msg = sqlite3_mprintf("database schema version %d is newer than this binary knows (%d)",
				      v, schema_migration_count);
		goto fail;
	}
	for (; v < schema_migration_count; v++) {
		if (sqlite3_exec(c->db, schema_migrations[v], NULL, NULL, &msg) != SQLITE_OK)
			goto fail;
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version=%d", v + 1);
		if (sqlite3_exec(c->db, bump, NULL, NULL, &msg) != SQLITE_OK)
			goto fail;
		if (on_migration && on_migration(c, v + 1, schema_migrations[v], arg) != 0) {
			msg = sqlite3_mprintf("cannot log migration %d for replication", v + 1);
			goto fail;
		}
		log_info("database schema migrated to version %d", v + 1);
	}
	if (sqlite3_exec(c->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK)
		goto fail;
	return 0;
fail:
	snprintf(err, errcap, "schema migration failed: %s", msg ? msg : sqlite3_errmsg(c->db));
	sqlite3_free(msg);
	sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return ERR_DB;
}

int db_apply_migration(db_conn *c, int version, const char *sql, size_t len)
{
	int current = db_schema_version(c);
	if (current < 0)
		return ERR_DB;
	if (current >= version)
		return 0; /* already applied */
	if (current != version - 1) {
		log_error("schema migration %d received at version %d", version, current);
		return ERR_CONFLICT;
	}
	char *text = sqlite3_mprintf("%.*s", (int)len, sql);
	if (!text)
		return ERR_NOMEM;
	char *msg = NULL;
	int rc = sqlite3_exec(c->db, text, NULL, NULL, &msg);
	sqlite3_free(text);
	if (rc == SQLITE_OK) {
		char bump[64];
		snprintf(bump, sizeof bump, "PRAGMA user_version=%d", version);
		rc = sqlite3_exec(c->db, bump, NULL, NULL, &msg);
	}
	if (rc != SQLITE_OK) {
		log_error("cannot apply schema migration %d: %s", version, msg ? msg : "?");
		sqlite3_free(msg);
		return ERR_DB;
	}
	log_info("database schema migrated to version %d (from the primary)", version);
	return 0;
}

sqlite3_stmt *db_stmt(db_conn *c, const char *sql)
{
	for (int i = 0; i < c->cached; i++) {
		if (c->cache[i].sql == sql) {
			sqlite3_stmt *st = c->cache[i].stmt;
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return st;
		}
	}
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		log_error("cannot prepare statement: %s", sqlite3_errmsg(c->db));
		return NULL;
	}
	if (c->cached < DB_STMT_CACHE) {
		c->cache[c->cached].sql = sql;
		c->cache[c->cached].stmt = st;
		c->cached++;
	} else {
		/* cannot happen with the project's fixed set of statements */
		log_error("BUG: statement cache full");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

int db_exec_int(db_conn *c, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st = db_stmt(c, sql);
	if (!st)
		return ERR_DB;
	sqlite3_bind_int64(st, 1, a);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, b);
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : ERR_DB;
}

int db_exec(db_conn *c, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("database: %s", msg ? msg : sqlite3_errmsg(c->db));
		sqlite3_free(msg);
		return ERR_DB;
	}
	return 0;
}
