/*
 * schema.c - the versioned schema. Migration N (1-based) moves the database
 * from version N-1 to N; they are applied in order, each exactly once, in one
 * transaction with the version bump. Never edit a shipped migration: add one.
 *
 * Every table has an explicit PRIMARY KEY: replication (SQLite sessions and
 * changesets) identifies rows by it.
 */
#include "store/schema.h"

const char *const schema_migrations[] = {
	/* 1: users, sessions, refresh tokens, records, idempotency */
	"CREATE TABLE users ("
	"  id TEXT PRIMARY KEY,"
	"  email TEXT NOT NULL UNIQUE,"
	"  password_hash TEXT NOT NULL,"
	"  created_at TEXT NOT NULL);"
	"CREATE TABLE sessions ("
	"  id TEXT PRIMARY KEY,"
	"  user_id TEXT NOT NULL REFERENCES users(id),"
	"  created_at TEXT NOT NULL,"
	"  expires_at INTEGER NOT NULL,"    /* ms since epoch */
	"  revoked_at INTEGER,"
	"  revoke_reason TEXT);"
	"CREATE INDEX sessions_user ON sessions(user_id);"
	"CREATE TABLE refresh_tokens ("
	"  hash BLOB PRIMARY KEY,"          /* SHA-256 of the token; never the token */
	"  session_id TEXT NOT NULL REFERENCES sessions(id),"
	"  created_at INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL,"
	"  used_at INTEGER) WITHOUT ROWID;"
	"CREATE INDEX refresh_tokens_session ON refresh_tokens(session_id);"
	"CREATE TABLE records ("
	"  id TEXT PRIMARY KEY,"
	"  owner TEXT NOT NULL,"
	"  collection TEXT NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  created_at TEXT NOT NULL,"
	"  updated_at TEXT NOT NULL,"
	"  data TEXT NOT NULL);"
	"CREATE INDEX records_owner_collection ON records(owner, collection, id);"
	"CREATE TABLE idempotency ("
	"  owner TEXT NOT NULL,"            /* user id, or '' for anonymous auth calls */
	"  key TEXT NOT NULL,"
	"  request_hash BLOB NOT NULL,"
	"  status INTEGER NOT NULL,"
	"  headers TEXT NOT NULL,"          /* response header lines */
	"  body BLOB NOT NULL,"
	"  sealed INTEGER NOT NULL DEFAULT 0," /* body encrypted (holds credentials) */
	"  created_at INTEGER NOT NULL,"
	"  PRIMARY KEY (owner, key)) WITHOUT ROWID;"
	"CREATE INDEX idempotency_created ON idempotency(created_at);",
};

const int schema_migration_count = sizeof schema_migrations / sizeof schema_migrations[0];
