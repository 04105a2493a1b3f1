/* err.c - messages for the project-wide error codes. */
#include "core/err.h"

static const char *const messages[ERR__COUNT] = {
	[0] = "ok",
	[-ERR_NOMEM] = "out of memory",
	[-ERR_INVAL] = "invalid argument",
	[-ERR_IO] = "input/output error",
	[-ERR_LIMIT] = "limit exceeded",
	[-ERR_PARSE] = "parse error",
	[-ERR_NOTFOUND] = "not found",
	[-ERR_EXISTS] = "already exists",
	[-ERR_TLS] = "TLS or crypto error",
	[-ERR_CONFIG] = "invalid configuration",
	[-ERR_AGAIN] = "temporarily unavailable",
	[-ERR_DB] = "database error",
	[-ERR_CONFLICT] = "precondition failed",
	[-ERR_AUTH] = "authentication failed",
	[-ERR_UNSUPPORTED] = "not supported",
	[-ERR_CORRUPT] = "stored data is corrupt",
};

const char *err_str(int err)
{
	if (err > 0 || err <= -ERR__COUNT || messages[-err] == 0)
		return "unknown error";
	return messages[-err];
}
