/*
 * db.h - one region's SQLite database: open with the project's settings
 * (WAL, synchronous=FULL so a commit is on disk, foreign keys), versioned
 * schema migrations, and a per-connection cache of prepared statements.
 *
 * A connection belongs to one thread: the writer thread owns the single
 * writing connection (see committer.h); the event loop owns a read-only one.
 * In WAL mode readers never wait for the writer.
 */
#ifndef TANDEM_STORE_DB_H
#define TANDEM_STORE_DB_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include <sqlite3.h>

typedef struct db_conn db_conn;

/*
 * Open path (created if missing when writable). readonly: PRAGMA query_only.
 * Returns NULL with a reason in err.
 */
db_conn *db_open(const char *path, bool readonly, char *err, size_t errcap);
void db_close(db_conn **c);
sqlite3 *db_handle(db_conn *c);

/* Apply pending schema migrations in one transaction. on_migration (may be
 * NULL) runs after each one inside that transaction (replication logs them
 * there). 0, or ERR_DB with the reason in err (database unaltered). */
int db_migrate(db_conn *c, int (*on_migration)(db_conn *db, int version, const char *sql, void *arg),
	       void *arg, char *err, size_t errcap);
/* Apply one migration received from the primary (a secondary's schema comes
 * from the replication stream): runs sql and sets the version, when the
 * database is at version - 1; a no-op when it is already there. Call inside
 * a transaction. 0 or ERR_DB / ERR_CONFLICT (a gap in versions). */
int db_apply_migration(db_conn *c, int version, const char *sql, size_t len);
/* The schema version the database is at, and the one this binary knows. */
int db_schema_version(db_conn *c);
int db_schema_latest(void);

/*
 * A prepared statement for sql, reset and with bindings cleared, from the
 * connection's cache. sql must be a string literal or otherwise outlive the
 * connection (the cache keys on its address). NULL on error (logged).
 */
sqlite3_stmt *db_stmt(db_conn *c, const char *sql);
/* Run SQL without results; 0 or ERR_DB (logged with context). */
int db_exec(db_conn *c, const char *sql);
/* Run one cached statement without results, binding ?1 = a and, when it
 * has a second parameter, ?2 = b. 0 or ERR_DB. */
int db_exec_int(db_conn *c, const char *sql, int64_t a, int64_t b);

#endif
