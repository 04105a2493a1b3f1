/*
 * err.h - the project-wide error codes.
 *
 * Functions return 0 on success or one of these negative codes. err_str()
 * gives a short, stable, human text for each; callers add context once, where
 * the error is reported (log line, HTTP body, CLI message).
 */
#ifndef TANDEM_ERR_H
#define TANDEM_ERR_H

enum {
	ERR_OK = 0,
	ERR_NOMEM = -1,     /* allocation failed */
	ERR_INVAL = -2,     /* invalid argument or input */
	ERR_IO = -3,        /* read/write/fsync failed (see errno in the log) */
	ERR_LIMIT = -4,     /* a configured hard limit was reached */
	ERR_PARSE = -5,     /* input does not parse */
	ERR_NOTFOUND = -6,  /* no such object */
	ERR_EXISTS = -7,    /* object already exists */
	ERR_TLS = -8,       /* TLS or crypto library failure */
	ERR_CONFIG = -9,    /* configuration is invalid */
	ERR_AGAIN = -10,    /* try again later (busy, shutting down) */
	ERR_DB = -11,       /* the database failed */
	ERR_CONFLICT = -12, /* a precondition did not hold */
	ERR_AUTH = -13,     /* authentication failed */
	ERR_UNSUPPORTED = -14,
	ERR_CORRUPT = -15,  /* stored data failed its integrity check */
	ERR__COUNT = 16
};

/* Text for an error code; never NULL, "unknown error" for unknown codes. */
const char *err_str(int err);

#endif
