/*
 * query.h - the record list query language: filter, sort and cursor, compiled
 * to SQL over the records table.
 *
 * The records table has the columns
 *   id TEXT, owner TEXT, collection TEXT, version INTEGER,
 *   created_at TEXT, updated_at TEXT, data TEXT (a JSON object)
 * where created_at/updated_at are fixed-width ISO 8601 UTC texts
 * ("2026-11-27T05:08:01.123Z"), so text order is time order.
 *
 * Filter grammar (whitespace allowed between tokens):
 *   expr    := and ( "||" and )*
 *   and     := primary ( "&&" primary )*
 *   primary := "(" expr ")" | field op value
 *   field   := name ( "." name )*      name := [A-Za-z_][A-Za-z0-9_]*
 *   op      := "=" | "!=" | "<" | "<=" | ">" | ">=" | "~"
 *   value   := 'string' (with '' or \' for a quote, \\ for a backslash)
 *            | number (JSON number syntax) | true | false | null
 * A field's first name says what it names. The record's own fields: id,
 * created_at, updated_at (strings) and version (a number), bare only;
 * "data.PATH" is PATH inside data (the way to reach a data field named like
 * a record field); owner, collection, a bare data and a record field with a
 * path after it ("id.x") are 400 unknown_field. Any other first name starts
 * a path into data ("address.city" is data.address.city). Sort:
 * comma-separated fields, each with an optional leading '-' (descending) or
 * '+'; id is always the final tiebreaker.
 *
 * The cursor is opaque to clients: it carries the sort key values and the id
 * of the last row of a page, and the next page starts strictly after that row
 * in sort order (keyset paging), so pages stay stable while records are added.
 * A cursor belongs to one list: its scope (the collection), filter and sort;
 * given with any other, it is refused (invalid_cursor).
 */
#ifndef TANDEM_REGION_QUERY_H
#define TANDEM_REGION_QUERY_H

#include <sqlite3.h>
#include <stddef.h>

/* The longest cursor compile accepts and list_query_cursor makes. */
#define LIST_QUERY_MAX_CURSOR 4096

typedef struct query_error {
	const char *param; /* "filter", "sort" or "cursor" */
	/* the API error code: "invalid_filter", "invalid_sort", "invalid_cursor"
	 * (after param), or "unknown_field" for a field no list can use */
	const char *code;
	int pos;           /* 1-based character position in that parameter, 0 if none */
	char message[160]; /* human text, e.g. "expected a value after '>='" */
} query_error;

typedef struct list_query list_query;

/*
 * Compile. scope (the collection; may be NULL) goes into the fingerprint of
 * the cursors, with the filter and the sort. filter, sort and cursor may each
 * be NULL or "" (none). On success *out is set and 0 returned. On failure
 * returns ERR_PARSE (or ERR_LIMIT for too long / too deep input, ERR_NOMEM),
 * fills *err, and *out is NULL.
 */
int list_query_compile(const char *scope, const char *filter, const char *sort,
                       const char *cursor, list_query **out, query_error *err);
/* Free; no-op on NULL; resets *q. */
void list_query_free(list_query **q);

/* SQL boolean expression for filter AND cursor position ("1" when neither),
 * with '?' placeholders, to be ANDed into a WHERE clause. */
const char *list_query_where(const list_query *q);
/* "ORDER BY ..." ending with the id tiebreaker. */
const char *list_query_order(const list_query *q);
/* Comma-separated SQL expressions of the sort keys, to select after the record
 * columns so that list_query_cursor() can read them; "" when sorted by id only. */
const char *list_query_keys(const list_query *q);
size_t list_query_key_count(const list_query *q);
/* Bind the parameters of list_query_where() starting at index first (1-based).
 * Returns the next free index, or a negative ERR_* code. */
int list_query_bind(const list_query *q, sqlite3_stmt *st, int first);
/* Build the cursor for the row st is on: the key columns start at column
 * first_key_col, and id is at column id_col. *cursor is malloc'd (caller frees). */
int list_query_cursor(const list_query *q, sqlite3_stmt *st, int first_key_col,
                      int id_col, char **cursor);
/* The same from saved values: the key values vals[0..key_count) then the id
 * (protected values, e.g. from sqlite3_value_dup). ERR_INVAL when the id is
 * not text, ERR_UNSUPPORTED (a BLOB key), ERR_LIMIT (longer than
 * LIST_QUERY_MAX_CURSOR), ERR_NOMEM; *cursor NULL on failure. */
int list_query_cursor_values(const list_query *q, sqlite3_value *const *vals, char **cursor);

#endif
