/*
 * server.h - the HTTP/1.1 server every component uses (API, S3, edge, link):
 * libevent bufferevents, optional TLS (OpenSSL), the strict parser of
 * parser.h, keep-alive, pipelining, chunked bodies both ways,
 * Expect: 100-continue, hard limits and timeouts, graceful shutdown.
 *
 * One request per connection is handled at a time; pipelined requests wait
 * in the input buffer (reading pauses while a request is being handled, so a
 * client cannot make us buffer without bound). Handlers may answer at once or
 * later (after a database commit, say): the request stays valid until
 * answered, even if the client has gone away meanwhile.
 *
 * Memory is bounded per connection and in total (server.c's design block):
 * a total over what connections hold (max_buffered_bytes, 503 overloaded), a
 * deadline for request bodies (408), a write timeout for clients that do not
 * read, a cap on connections per client address, and streaming answers
 * produced as the socket drains (http_request_on_drain).
 */
#ifndef TANDEM_HTTP_SERVER_H
#define TANDEM_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "http/parser.h"

typedef struct http_server http_server;
typedef struct http_request http_request;

typedef struct http_server_config {
	http_limits limits;       /* max_body_bytes is the default body limit; max_target_bytes: 414 */
	int header_timeout_ms;    /* TLS handshake + request head, from its first byte */
	int idle_timeout_ms;      /* keep-alive wait (and body inactivity when body_timeout_ms is 0) */
	int body_timeout_ms;      /* the whole request body, from the end of the head: 408
				   * request_timeout beyond; 0: idle_timeout_ms of inactivity */
	int write_timeout_ms;     /* unsent output the peer does not drain at all for this long:
				   * the connection is closed; 0: idle_timeout_ms */
	size_t max_unsent_bytes;  /* per connection: what a streaming answer may queue
				   * (http_request_output_room); 0: 1 MiB */
	size_t max_buffered_bytes; /* input, unsent output and request bodies of all connections;
				    * over it, 503 overloaded (see server.c); 0: no bound */
	int max_connections;      /* beyond: new connections wait in the backlog */
	int max_connections_per_address; /* per IPv4 address / IPv6 /64 (http/peers.h); beyond:
					  * a new connection is closed at once; 0: no cap */
	SSL_CTX *ssl_ctx;         /* NULL: plain HTTP (tests, loopback only) */
	bool http2;               /* HTTP/2 (http/h2.h) on connections whose ALPN chose "h2"
				   * (the contexts offer it: tls_server_offer_h2), and without
				   * TLS on those that start with the client preface (h2c) */
	/* Header lines added to responses the server makes itself (parse errors),
	 * e.g. "X-Tandem-Region: eu\r\n"; may be NULL. */
	const char *common_headers;
} http_server_config;

typedef struct http_handlers {
	/* Optional. The head is complete, the body not read yet: may change the
	 * body limit, choose to stream the body (http_request_stream_body), or
	 * answer at once (the body is then not read, and the connection is
	 * closed after the answer). HTTP/2: runs when a stream's HEADERS come
	 * (a stream whose body is not announced by content-length reads as
	 * chunked then, and on_head runs again, once, when the body is
	 * complete and collected, with its length). */
	void (*on_head)(http_request *req, void *arg);
	/* The whole request is here. Must lead to exactly one http_respond*(). */
	void (*on_request)(http_request *req, void *arg);
	void *arg;
} http_handlers;

/* New server on base; NULL on allocation failure. The config is copied
 * (common_headers too). */
http_server *http_server_new(struct event_base *base, const http_server_config *cfg,
			     const http_handlers *handlers);
/* Listen on "host:port" (port 0 picks one; see http_server_port). 0, or
 * ERR_IO with errno set, ERR_INVAL for a bad address. */
int http_server_listen(http_server *srv, const char *hostport);
int http_server_port(const http_server *srv);
/* Serve a socket connected elsewhere as if accepted (peer address sa):
 * socket activation, tests and the fuzz target (over a socketpair). The
 * server owns fd from now on, even on failure. 0, ERR_AGAIN when shutting
 * down, ERR_IO. */
struct sockaddr;
int http_server_adopt(http_server *srv, evutil_socket_t fd, const struct sockaddr *sa, int salen);
/* Stop accepting; close idle connections; let requests in flight finish
 * (their connection closes after the answer). done() runs once no connection
 * is left (possibly before this returns). */
void http_server_shutdown(http_server *srv, void (*done)(void *arg), void *arg);
/* Close everything at once and free; no-op on NULL; resets *srv. */
void http_server_free(http_server **srv);
/* Open connections and requests being handled, for metrics. */
int http_server_connections(const http_server *srv);
/* Bytes held for all connections now (input, unsent output, request
 * bodies): what max_buffered_bytes bounds. */
size_t http_server_buffered(const http_server *srv);
/* Connections refused so far by max_connections_per_address, and requests
 * answered 503 overloaded by max_buffered_bytes, for metrics. */
unsigned long http_server_refused_per_address(const http_server *srv);
unsigned long http_server_overloaded(const http_server *srv);

/* --- the request being handled --- */
const http_message *http_request_message(const http_request *req);
const char *http_request_body(const http_request *req, size_t *len);
/* Client address as text ("127.0.0.1"). */
const char *http_request_peer(const http_request *req);
/* With mutual TLS: the common name of the client's verified certificate;
 * NULL without a client certificate. */
const char *http_request_peer_name(http_request *req);
/* The client is gone (the answer, if any, will be discarded). */
bool http_request_is_closed(const http_request *req);
/* Bytes of the answer queued but not yet sent (streaming flow control). */
size_t http_request_output_pending(const http_request *req);
/* What a streaming answer may still queue: max_unsent_bytes minus what is
 * pending (0 when over, or when the client is gone). */
size_t http_request_output_room(const http_request *req);
/* Streaming flow control: fn(req, arg) runs once, from the event loop (never
 * from inside this call), when the unsent output is down to half of
 * max_unsent_bytes (at once if it already is), or when the client is gone
 * (http_request_is_closed() then says so: end the answer). One registration
 * at a time, a new one replaces it; answering cancels it. A producer queues
 * while http_request_output_room() > 0, then registers and returns. */
typedef void (*http_drain_fn)(http_request *req, void *arg);
void http_request_on_drain(http_request *req, http_drain_fn fn, void *arg);
/* The server holds more than max_buffered_bytes now: a handler about to
 * build a large answer to a GET may refuse at once (503 overloaded, and
 * http_request_note_overloaded() so it is counted and logged with the
 * server's own) rather than build one that http_respond would replace. */
bool http_request_server_overloaded(const http_request *req);
void http_request_note_overloaded(http_request *req);
/* Close the connection after this request's answer (shedding load). */
void http_request_close_after(http_request *req);
/* Only in on_head: change this request's body limit. */
void http_request_set_body_limit(http_request *req, size_t max);
/*
 * Streamed request bodies (an upload relayed as it arrives, not collected).
 * Only in on_head, for a request with a body: its bytes then go to on_data
 * as they arrive (HTTP/1.1 Content-Length or chunked, decoded; HTTP/2 DATA
 * frames), up to max bytes (over it: on_end(ERR_LIMIT)); on_request runs
 * right after on_head returns, before any body byte (the request is the
 * handler's from then on, as usual: exactly one answer). on_end(req, arg,
 * rc) runs once when the body ends: 0 complete; ERR_LIMIT past max (answer
 * 413); ERR_PARSE bad framing (400); ERR_AGAIN no byte for body_timeout_ms
 * (idle_timeout_ms when 0) while not paused (408: for a streamed body the
 * timeout bounds inactivity, not the whole body); ERR_IO the client left or
 * reset the stream (http_request_is_closed() is then true; the answer is
 * discarded). After a failure the connection (HTTP/2: the stream) is closed
 * after the answer. A handler may answer before the end (the origin refused
 * early): the rest of the body is discarded (HTTP/1.1: read and dropped for
 * a while, then the connection closes; HTTP/2: its DATA dropped for
 * H2_LINGER_MS after the answer, then RST_STREAM(NO_ERROR)) and on_end is
 * not called. on_data must not answer (on_end
 * and other events may). 0, or ERR_INVAL (not in on_head, no body, or
 * a detached request): the body is then collected as usual.
 *
 * Back-pressure: http_request_body_pause() stops reading the body (HTTP/1.1:
 * the socket is not read, TCP pushes back; HTTP/2: the stream's
 * WINDOW_UPDATEs are withheld) and stops its timer; at most what was read
 * already (one socket read, or one HTTP/2 window) still comes to on_data.
 * http_request_body_resume() goes on (from the event loop). The server
 * holds no body byte itself beyond that: what the handler keeps is its own
 * to bound.
 */
typedef void (*http_body_data_fn)(http_request *req, void *arg, const char *data, size_t len);
typedef void (*http_body_end_fn)(http_request *req, void *arg, int rc);
int http_request_stream_body(http_request *req, uint64_t max, http_body_data_fn on_data, http_body_end_fn on_end,
			     void *arg);
void http_request_body_pause(http_request *req);
void http_request_body_resume(http_request *req);
/* Opaque pointer for the handler's own per-request state. */
void http_request_set_data(http_request *req, void *data);
void *http_request_data(const http_request *req);

/* Add a response header (before responding). 0, or ERR_LIMIT when the
 * response head passes max_header_bytes, ERR_INVAL for CR/LF in them. */
int http_response_header(http_request *req, const char *name, const char *value);
/* Add preformatted header lines ("Name: value\r\n"...), built by the
 * caller from validated parts. 0 or ERR_LIMIT. */
int http_response_header_lines(http_request *req, const char *lines, size_t len);
/* Answer with a complete body (copied; NULL/0 for none). Adds Date,
 * Content-Length, Connection. The request is finished.
 * A 2xx answer over 4 KiB to a GET while the server holds more than
 * max_buffered_bytes is replaced by 503 overloaded with Retry-After (and the
 * connection closes): the request changed nothing, and queueing it would
 * pass the bound. */
void http_respond(http_request *req, int status, const char *body, size_t len);
/* The same, handing the content of body over instead of copying it (the
 * server frees it once sent or dropped; body is left empty and reusable):
 * a large answer then exists once in memory, not twice. */
struct buf;
void http_respond_take(http_request *req, int status, struct buf *body);
/* Streaming answer: Transfer-Encoding: chunked (HTTP/1.1 clients; for 1.0
 * the body is sent until close). End with http_respond_end(). */
void http_respond_start(http_request *req, int status);
void http_respond_chunk(http_request *req, const char *data, size_t len);
/* The same, handing data (malloc'd) over instead of copying it: the server
 * frees it once sent or dropped, and at once when it cannot queue it. A
 * large piece is then not copied into a freshly allocated buffer (for a
 * 256 KiB piece, a 512 KiB mmap, its page faults and a munmap). */
void http_respond_chunk_take(http_request *req, char *data, size_t len);
/* A streaming answer of a known length (S3 GET): Content-Length instead of
 * chunked framing; http_respond_chunk then sends bytes as they are, and the
 * caller sends exactly length of them (none for HEAD) before
 * http_respond_end(). A producer that cannot finish (a damaged blob) calls
 * http_request_abort(): the client sees a short body and a closed
 * connection, never a complete-looking answer. */
void http_respond_start_length(http_request *req, int status, uint64_t length);
void http_respond_end(http_request *req);

/*
 * A detached copy of req, to be handled on another thread (a write
 * forwarded over the link is taken by the link's thread and handled by the
 * API's): its message, body, peer address and certificate name are copied;
 * it belongs to no connection and no server. Every http_request_* and
 * http_respond* call works on it from the thread that handles it; the
 * answer (status, the header lines added, the body; a streaming answer
 * gathered up to its end) goes to done(arg, ...) once, on that thread, and
 * the copy is freed right after done returns (the pointers passed to done
 * are valid only during the call). An abort gives status 0. req itself is
 * unchanged (it still needs its own answer). NULL on allocation failure.
 */
typedef void (*http_detached_done_fn)(void *arg, int status, const char *head, size_t head_len,
				      const char *body, size_t body_len);
http_request *http_request_detach(http_request *req, http_detached_done_fn done, void *arg);
/* The same, but the body moves to the copy instead of being copied (a
 * 1 MiB object replication segment is not copied again): req's body reads
 * as empty afterwards. NULL on allocation failure (req's body unaltered). */
http_request *http_request_detach_take(http_request *req, http_detached_done_fn done, void *arg);

/* Drop the connection without an answer (fault injection: a partition). */
void http_request_abort(http_request *req);

/* Reason phrase for a status code ("Not Found"); "" if unknown. */
const char *http_status_reason(int status);

#endif
