/*
 * parser.h - strict, incremental HTTP/1.1 message parser (RFC 9112).
 *
 * One parser per connection direction; it parses requests (server side) or
 * responses (client side). Bytes are fed as they arrive, in pieces of any
 * size; the parser copies the head (start line + fields) into its own buffer,
 * bounded by limits->max_header_bytes, so every pointer in http_message stays
 * valid until http_parser_reset() or http_parser_free(). The body is decoded
 * (Content-Length or chunked) into a second bounded buffer.
 *
 * States:
 *
 *   HEAD --(blank line)--> [returns HTTP_PARSE_HEAD] --> BODY --(complete)--> DONE
 *     |                                                    |                     |
 *     +----------------- error (sticky) <------------------+     http_parser_reset()
 *                                                                          -> HEAD
 *
 * After HTTP_PARSE_HEAD the caller looks at the message (route, Expect, ...),
 * may change the body limit, and keeps feeding; HTTP_PARSE_DONE comes when the
 * body is complete (at once when there is none). Bytes after the end of the
 * message (a pipelined next request) are never consumed. An error is sticky
 * until reset: http_parser_error_status() tells which status to answer with.
 */
#ifndef TANDEM_HTTP_PARSER_H
#define TANDEM_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum http_kind { HTTP_REQUEST = 0, HTTP_RESPONSE = 1 } http_kind;

typedef struct http_limits {
	size_t max_header_bytes; /* start line + all field lines (+ trailers) */
	size_t max_headers;      /* number of field lines */
	size_t max_body_bytes;   /* decoded body size */
	size_t max_target_bytes; /* request-target of a request line; 414 beyond (0: no limit
				  * but max_header_bytes) */
} http_limits;

typedef struct http_field {
	const char *name;  /* not NUL-terminated */
	size_t name_len;
	const char *value; /* leading/trailing whitespace removed; not NUL-terminated */
	size_t value_len;
} http_field;

typedef struct http_message {
	http_kind kind;
	/* request line (HTTP_REQUEST) */
	const char *method; /* NUL-terminated token */
	const char *target; /* NUL-terminated request-target, as received */
	/* status line (HTTP_RESPONSE) */
	int status;         /* 100..999 */
	const char *reason; /* NUL-terminated, may be empty */
	int version_minor;  /* 0 or 1 (HTTP/1.0 or HTTP/1.1) */
	const http_field *fields;
	size_t field_count;
	/* derived from the fields */
	int64_t content_length; /* -1 when absent */
	bool chunked;           /* Transfer-Encoding: chunked */
	bool keep_alive;        /* persistent connection per version + Connection */
	bool expect_continue;   /* Expect: 100-continue */
	bool until_close;       /* response body delimited by connection close */
} http_message;

enum {
	HTTP_PARSE_MORE = 0, /* all bytes consumed, feed more */
	HTTP_PARSE_HEAD = 1, /* head complete; http_parser_message() is valid */
	HTTP_PARSE_DONE = 2, /* message complete, body available */
};

typedef struct http_parser http_parser;

/* New parser; NULL on allocation failure. limits are copied. */
http_parser *http_parser_new(http_kind kind, const http_limits *limits);
/* Free; no-op on NULL; resets *p to NULL. */
void http_parser_free(http_parser **p);
/* Forget the current message (and any error); ready for the next one. */
void http_parser_reset(http_parser *p);

/*
 * Feed len bytes. *consumed is set to how many were used (never past the end
 * of the current message). Returns HTTP_PARSE_MORE, HTTP_PARSE_HEAD (once per
 * message, then call again to continue with the body), HTTP_PARSE_DONE, or a
 * negative ERR_* code (ERR_PARSE, ERR_LIMIT, ERR_UNSUPPORTED, ERR_NOMEM), after
 * which http_parser_error_status() and http_parser_error() describe it and
 * every further feed returns the same error.
 */
int http_parser_feed(http_parser *p, const char *data, size_t len, size_t *consumed);

/*
 * The peer closed the connection. Returns HTTP_PARSE_DONE when that ends the
 * message (a response body delimited by close), HTTP_PARSE_MORE when no byte
 * of a new message had arrived (a clean close between messages), or ERR_PARSE
 * when a message was cut short.
 */
int http_parser_finish(http_parser *p);

/* The message; NULL until the head is complete. */
const http_message *http_parser_message(const http_parser *p);
/* The decoded body (NUL-terminated, len without the NUL); "" when none. */
const char *http_parser_body(const http_parser *p, size_t *len);
/* The decoded body moves to the caller (free() it; NULL when there is none,
 * *len 0): no copy. The parser's body reads as empty afterwards, until the
 * next message. Cannot fail. */
char *http_parser_take_body(http_parser *p, size_t *len);
/* True once any byte of the current message has been consumed. */
bool http_parser_started(const http_parser *p);

/* Streaming: for the current message (call after HTTP_PARSE_HEAD), decoded
 * body bytes are handed to sink as they arrive instead of being collected
 * (http_parser_body() stays empty). The body limit becomes unbounded (the
 * sink bounds what it keeps: long-lived streams, replication); a limit set
 * afterwards (http_parser_set_body_limit) counts the bytes handed to the
 * sink (a streamed upload's max_upload_bytes: 413 as for a collected body). */
typedef void (*http_body_sink)(void *arg, const char *data, size_t len);
void http_parser_set_body_sink(http_parser *p, http_body_sink sink, void *arg);

/* Change the body limit for the current message (call after HTTP_PARSE_HEAD). */
void http_parser_set_body_limit(http_parser *p, size_t max_body_bytes);
/* The response has no body whatever its fields say (answer to HEAD, or 1xx/204/304
 * which the parser recognises itself). Call after HTTP_PARSE_HEAD. */
void http_parser_set_no_body(http_parser *p);

/* After an error: the status code to answer (400, 413, 414, 431, 501, 505) and a
 * short human text ("header section too large", ...). */
int http_parser_error_status(const http_parser *p);
const char *http_parser_error(const http_parser *p);

/* First field with this name (case-insensitive); NULL if none. *len gets the value length. */
const char *http_message_field(const http_message *m, const char *name, size_t *len);

#endif
