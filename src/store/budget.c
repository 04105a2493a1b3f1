/* budget.c - deadline and rows-examined cap of one query; see budget.h. */
#include "store/budget.h"

#include <stddef.h>

#include "core/err.h"
#include "core/util.h"

/* The budget of the query this thread is running. A connection belongs to
 * one thread (db.h), so the counter of a connection only ever sees its own
 * thread's budget; a thread-local needs no per-connection lookup. */
static _Thread_local query_budget *budget_current;

static int64_t budget_now(const query_budget *b)
{
	return b->clock_us ? b->clock_us() : util_mono_us();
}

static int budget_progress(void *arg)
{
	query_budget *b = arg;
	if (b->exceeded == BUDGET_OK && budget_now(b) >= b->deadline_us)
		b->exceeded = BUDGET_TIME;
	return b->exceeded == BUDGET_TIME; /* non-zero interrupts the statement */
}

/* Once per row visited, before the terms that read the row's data: counts
 * it against the cap and looks at the deadline, since the work on one row
 * can be one long instruction that the progress handler does not see. */
static void budget_examined(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	query_budget *b = budget_current;
	if (b && ++b->rows > b->max_rows) {
		b->exceeded = BUDGET_ROWS;
		sqlite3_result_error(ctx, "too many rows examined", -1);
		return;
	}
	if (b && budget_progress(b)) {
		sqlite3_result_error(ctx, "deadline passed", -1);
		return;
	}
	sqlite3_result_int(ctx, 1);
}

int budget_register(sqlite3 *db)
{
	/* not SQLITE_DETERMINISTIC: it must run for every row; DIRECTONLY:
	 * never from a schema object */
	int rc = sqlite3_create_function_v2(db, "tandem_examined", 1, SQLITE_UTF8 | SQLITE_DIRECTONLY,
					    NULL, budget_examined, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : ERR_DB;
}

void budget_begin(sqlite3 *db, query_budget *b)
{
	b->rows = 0;
	b->exceeded = BUDGET_OK;
	budget_current = b;
	sqlite3_progress_handler(db, BUDGET_PROGRESS_OPS, budget_progress, b);
}

void budget_end(sqlite3 *db)
{
	sqlite3_progress_handler(db, 0, NULL, NULL);
	budget_current = NULL;
}
