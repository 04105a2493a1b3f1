/*
 * test_budget.c - the query budget (src/store/budget.c): the deadline stops
 * a statement that never ends by itself (time injected, no sleeps), and a
 * scan at the first row past it (the bug the 70 x 1 MiB reproduction showed:
 * the progress handler alone fired once in 10 s), the row
 * cap counts the rows a scan visits (an index range scan too, which
 * SQLITE_STMTSTATUS_FULLSCAN_STEP would not count) and stops past the cap,
 * and outside a budget the counter changes nothing.
 */
#include "store/budget.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "test.h"

static int64_t fake_now_us;

/* Each look at the clock moves it 1 ms on. */
static int64_t fake_clock(void)
{
	fake_now_us += 1000;
	return fake_now_us;
}

static sqlite3 *open_db(void)
{
	sqlite3 *db = NULL;
	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		exit(2);
	CHECK_EQ_INT(budget_register(db), 0);
	CHECK_EQ_INT(sqlite3_exec(db,
	                          "CREATE TABLE t (id INTEGER PRIMARY KEY, g INTEGER, v TEXT);"
	                          "CREATE INDEX t_g ON t(g, id);"
	                          "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
	                          "WHERE x < 1000) INSERT INTO t SELECT x, x % 4, 'v' || x FROM c",
	                          NULL, NULL, NULL),
	             SQLITE_OK);
	return db;
}

/* Step sql to the end; the last sqlite3_step result, *value the first
 * column of the last row. */
static int run(sqlite3 *db, const char *sql, long long *value)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "prepare: %s\n", sqlite3_errmsg(db));
		return -1;
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (value)
			*value = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return rc;
}

static void test_rows_cap(void)
{
	sqlite3 *db = open_db();
	long long n = 0;
	query_budget b = {.deadline_us = INT64_MAX, .max_rows = 100};
	budget_begin(db, &b);
	CHECK_EQ_INT(run(db, "SELECT count(*) FROM t WHERE " BUDGET_EXAMINED_SQL " AND v != 'x'", &n),
	             SQLITE_ERROR);
	budget_end(db);
	CHECK_EQ_INT(b.exceeded, BUDGET_ROWS);
	CHECK_EQ_INT(b.rows, 101);

	/* an index range scan: every row of g = 1 is counted, no other */
	b.max_rows = 1000;
	budget_begin(db, &b);
	CHECK_EQ_INT(run(db, "SELECT count(*) FROM t WHERE g = 1 AND " BUDGET_EXAMINED_SQL
	                     " AND v LIKE '%1%'", &n),
	             SQLITE_DONE);
	budget_end(db);
	CHECK_EQ_INT(b.exceeded, BUDGET_OK);
	CHECK_EQ_INT(b.rows, 250);
	CHECK(n > 0 && n < 250);

	/* ORDER BY ... LIMIT along the index stops early: few rows examined */
	budget_begin(db, &b);
	CHECK_EQ_INT(run(db, "SELECT id FROM t WHERE g = 2 AND " BUDGET_EXAMINED_SQL
	                     " ORDER BY id LIMIT 3", &n),
	             SQLITE_DONE);
	budget_end(db);
	CHECK_EQ_INT(b.rows, 3);

	/* outside a budget the counter is just true */
	CHECK_EQ_INT(run(db, "SELECT count(*) FROM t WHERE " BUDGET_EXAMINED_SQL, &n), SQLITE_DONE);
	CHECK_EQ_INT(n, 1000);
	sqlite3_close(db);
}

static void test_deadline(void)
{
	sqlite3 *db = open_db();
	fake_now_us = 0;
	query_budget b = {.deadline_us = 50 * 1000, .max_rows = INT64_MAX, .clock_us = fake_clock};
	budget_begin(db, &b);
	CHECK_EQ_INT(run(db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
	                     "SELECT count(*) FROM c", NULL),
	             SQLITE_INTERRUPT);
	budget_end(db);
	CHECK_EQ_INT(b.exceeded, BUDGET_TIME);
	CHECK_EQ_INT(fake_now_us, 50 * 1000); /* stopped at the first look past the deadline */

	/* the counter looks at the clock for every row: a scan whose rows each
	 * cost few instructions (the progress handler would wait 1000 of them)
	 * stops at the first row past the deadline */
	fake_now_us = 0;
	b.deadline_us = 10 * 1000;
	b.max_rows = INT64_MAX;
	budget_begin(db, &b);
	sqlite3_progress_handler(db, 0, NULL, NULL); /* only the counter */
	CHECK_EQ_INT(run(db, "SELECT count(*) FROM t WHERE " BUDGET_EXAMINED_SQL, NULL), SQLITE_ERROR);
	budget_end(db);
	CHECK_EQ_INT(b.exceeded, BUDGET_TIME);
	CHECK_EQ_INT(b.rows, 10);
	b.deadline_us = 50 * 1000;

	/* a quick statement under the same budget runs to its end */
	fake_now_us = 0;
	budget_begin(db, &b);
	long long n = 0;
	CHECK_EQ_INT(run(db, "SELECT count(*) FROM t", &n), SQLITE_DONE);
	budget_end(db);
	CHECK_EQ_INT(b.exceeded, BUDGET_OK);
	CHECK_EQ_INT(n, 1000);
	/* and once ended, the handler is gone: no deadline any more */
	fake_now_us = 1000 * 1000 * 1000;
	CHECK_EQ_INT(run(db, "SELECT count(*) FROM t a, t b WHERE a.id < 30", &n), SQLITE_DONE);
	sqlite3_close(db);
}

int main(void)
{
	RUN(test_rows_cap);
	RUN(test_deadline);
	return TEST_SUMMARY();
}
