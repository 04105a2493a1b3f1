/*
 * budget.h - a budget for the statements of one query on a SQLite
 * connection: a deadline and a cap on the rows examined. Past either, the
 * running statement fails (sqlite3_step gives SQLITE_INTERRUPT for the
 * deadline, SQLITE_ERROR for the cap) and budget->exceeded says which.
 *
 * Rows examined are counted by the SQL function BUDGET_EXAMINED_SQL, which
 * the query puts first in its WHERE clause (after the terms an index
 * answers): SQLite evaluates it once for every row the scan visits, whether
 * the rest of the WHERE then keeps the row or not, and before the terms that
 * need the row's data. (SQLITE_STMTSTATUS_FULLSCAN_STEP would miss index
 * range scans, and VM steps are not rows.)
 *
 * The deadline is checked by that function for every row (SQLITE_ERROR then)
 * and by a progress handler every BUDGET_PROGRESS_OPS virtual machine
 * instructions (sorting, and anything else between rows). The work on one
 * row can be a few instructions that each run long (instr() of a 4 KiB
 * needle over a 1 MiB string: ~100 ms), too few for the progress handler to
 * fire within a row (measured: 70 such rows ran 10 s between two checks); so
 * the deadline can be passed by the work on one row, never by more.
 */
#ifndef TANDEM_STORE_BUDGET_H
#define TANDEM_STORE_BUDGET_H

#include <stdint.h>

#include <sqlite3.h>

#define BUDGET_PROGRESS_OPS 1000
/* The row counter, to AND into a WHERE clause: true, or an error past the cap. */
#define BUDGET_EXAMINED_SQL "tandem_examined(rowid)"

typedef enum budget_exceeded {
	BUDGET_OK = 0,
	BUDGET_TIME,   /* the deadline passed (SQLITE_INTERRUPT or SQLITE_ERROR) */
	BUDGET_ROWS,   /* more than max_rows rows examined */
} budget_exceeded;

typedef struct query_budget {
	int64_t deadline_us;       /* on clock_us() */
	int64_t max_rows;          /* rows the query may examine */
	int64_t rows;              /* examined so far */
	budget_exceeded exceeded;  /* why the statement was stopped */
	int64_t (*clock_us)(void); /* monotonic microseconds; NULL: util_mono_us (tests inject one) */
} query_budget;

/* Register the row counter on a connection (once, before its first budgeted
 * query). 0 or ERR_DB. Outside a budget the counter is always true. */
int budget_register(sqlite3 *db);
/* Apply b to the statements run on db by this thread until budget_end. */
void budget_begin(sqlite3 *db, query_budget *b);
void budget_end(sqlite3 *db);

#endif
