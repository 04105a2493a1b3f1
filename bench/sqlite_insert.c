/*
 * sqlite_insert.c - baseline (e) of `make bench`: what one durable write costs
 * without group commit.
 *
 * Opens a fresh SQLite database with the same durability settings as a tandem
 * region (WAL, synchronous=FULL), creates a table shaped like tandem's records
 * table, and for a fixed time runs one transaction at a time:
 *
 *     BEGIN IMMEDIATE; INSERT one row; COMMIT   (COMMIT fsyncs the WAL)
 *
 * It prints one JSON line: transactions per second and the p50/p99 latency of
 * one transaction in microseconds.
 *
 * Build: cc -O2 -std=c17 bench/sqlite_insert.c $(pkg-config --cflags --libs sqlite3)
 * Usage: sqlite_insert DB_PATH SECONDS
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int64_t percentile(const int64_t *sorted, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)n);
	if (i >= n)
		i = n - 1;
	return sorted[i];
}

static void die(sqlite3 *db, const char *what)
{
	fprintf(stderr, "sqlite_insert: %s: %s\n", what, db ? sqlite3_errmsg(db) : "?");
	exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "sqlite_insert: %s: %s\n", sql, msg ? msg : "?");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s DB_PATH SECONDS\n", argv[0]);
		return 2;
	}
	const char *path = argv[1];
	double seconds = atof(argv[2]);
	if (seconds <= 0) {
		fprintf(stderr, "sqlite_insert: SECONDS must be > 0\n");
		return 2;
	}
	/* a fresh database each run */
	char extra[4096];
	unlink(path);
	snprintf(extra, sizeof extra, "%s-wal", path);
	unlink(extra);
	snprintf(extra, sizeof extra, "%s-shm", path);
	unlink(extra);

	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
		die(db, "open");
	/* the durability of a tandem region (src/store/db.c) */
	exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
		 "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16000;");
	/* shaped like tandem's records table (src/store/schema.c) */
	exec(db, "CREATE TABLE records ("
		 "  id TEXT PRIMARY KEY,"
		 "  owner TEXT NOT NULL,"
		 "  collection TEXT NOT NULL,"
		 "  version INTEGER NOT NULL,"
		 "  created_at TEXT NOT NULL,"
		 "  updated_at TEXT NOT NULL,"
		 "  data TEXT NOT NULL);"
		 "CREATE INDEX records_owner_collection ON records(owner, collection, id);");

	sqlite3_stmt *begin, *insert, *commit;
	if (sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO records (id, owner, collection, version, created_at,"
				   " updated_at, data) VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5)",
			       -1, &insert, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL) != SQLITE_OK)
		die(db, "prepare");

	size_t cap = 1 << 16, n = 0;
	int64_t *lat = malloc(cap * sizeof *lat);
	if (!lat)
		die(NULL, "out of memory");
	const char *data = "{\"title\":\"bench\",\"done\":false,\"priority\":2}";
	const char *owner = "01BENCHOWNER00000000000000";
	int64_t start = now_us(), deadline = start + (int64_t)(seconds * 1e6), end = start;
	while (end < deadline) {
		char id[32], ts[32];
		snprintf(id, sizeof id, "%026zu", n);
		snprintf(ts, sizeof ts, "2026-01-01T00:00:00.%03zuZ", n % 1000);
		int64_t t0 = now_us();
		if (sqlite3_step(begin) != SQLITE_DONE)
			die(db, "BEGIN");
		sqlite3_reset(begin);
		sqlite3_bind_text(insert, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(insert, 2, owner, -1, SQLITE_STATIC);
		sqlite3_bind_text(insert, 3, "bench", -1, SQLITE_STATIC);
		sqlite3_bind_text(insert, 4, ts, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(insert, 5, data, -1, SQLITE_STATIC);
		if (sqlite3_step(insert) != SQLITE_DONE)
			die(db, "INSERT");
		sqlite3_reset(insert);
		if (sqlite3_step(commit) != SQLITE_DONE)
			die(db, "COMMIT");
		sqlite3_reset(commit);
		end = now_us();
		if (n == cap) {
			cap *= 2;
			int64_t *grown = realloc(lat, cap * sizeof *lat);
			if (!grown)
				die(NULL, "out of memory");
			lat = grown;
		}
		lat[n++] = end - t0;
	}
	double elapsed = (double)(end - start) / 1e6;
	qsort(lat, n, sizeof *lat, cmp_i64);
	printf("{\"transactions\":%zu,\"seconds\":%.3f,\"per_second\":%.1f,"
	       "\"p50_us\":%" PRId64 ",\"p99_us\":%" PRId64 ",\"sqlite\":\"%s\"}\n",
	       n, elapsed, (double)n / elapsed, percentile(lat, n, 50), percentile(lat, n, 99),
	       sqlite3_libversion());
	free(lat);
	sqlite3_finalize(begin);
	sqlite3_finalize(insert);
	sqlite3_finalize(commit);
	if (sqlite3_close(db) != SQLITE_OK)
		die(db, "close");
	return 0;
}
