/*
 * h2.h - HTTP/2 on a connection of the HTTP server (server.h), with
 * nghttp2 doing the framing, HPACK and flow control. Internal to src/http:
 * handlers never see it; they get the same http_request as over HTTP/1.1.
 *
 * Contract between server.c and h2.c:
 * - server.c owns the connection (socket, bufferevent, timers, accounting)
 *   and, once ALPN chose "h2", hands its input and output to an h2_session
 *   (h2_session_new). From then on the connection's bytes are the session's.
 * - h2.c turns each complete request stream into an http_request through
 *   http__request_new_h2, with an http_message parsed by the HTTP/1.1 parser
 *   from the stream's headers (so every rule and limit of parser.h applies),
 *   and runs the server's handlers on it (http__request_dispatch), never
 *   from inside an nghttp2 callback.
 * - Every http_request_* / http_respond* call on such a request lands in
 *   the h2_stream_* functions below (server.c forwards them).
 * - A request stays valid until answered, even if its stream was reset or
 *   the peer left (http_request_is_closed() then says so); the connection
 *   object stays allocated while h2_session_held() > 0, as for HTTP/1.1.
 */
#ifndef TANDEM_HTTP_H2_H
#define TANDEM_HTTP_H2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "http/server.h"

struct http_conn;
struct bufferevent;
typedef struct h2_session h2_session;
typedef struct h2_stream h2_stream;

/* Bounds (docs/SECURITY.md, "HTTP/2"). */
#define H2_MAX_CONCURRENT_STREAMS 100
/* streams a connection may have at once, counting those the client reset
 * while a handler still works on them (rapid reset): beyond, new ones are
 * refused with REFUSED_STREAM */
#define H2_MAX_STREAMS_HELD (2 * H2_MAX_CONCURRENT_STREAMS)
#define H2_INITIAL_WINDOW (256 * 1024)      /* per stream, for request bodies */
#define H2_CONNECTION_WINDOW (1024 * 1024) /* all streams of a connection */
#define H2_UPLOAD_WINDOW (1024 * 1024)     /* a stream whose body a handler streams */
#define H2_LINGER_MS 2000 /* a stream answered before its body's end: the rest dropped so long */
#define H2_OUTPUT_HIGH (128 * 1024) /* frames queued on the socket before we stop producing */
#define H2_OUTPUT_LOW (32 * 1024)   /* the write callback resumes below this */

/* --- for server.c: the connection side --- */

/* A session on connection c, whose bufferevent is bev (TLS done, ALPN h2);
 * queues the server's SETTINGS. NULL on allocation failure (nothing held). */
h2_session *h2_session_new(struct http_conn *c, struct bufferevent *bev, const http_server_config *cfg);
/* Input is available on the bufferevent: process it, run handlers of
 * complete requests, queue what can be sent. 0, or -1 when the connection
 * must close (protocol error, GOAWAY done). */
int h2_session_read(h2_session *s);
/* The socket drained (write watermark): queue more. 0 or -1 as above. */
int h2_session_write(h2_session *s);
/* Graceful shutdown: GOAWAY with the last stream seen; streams in progress
 * finish, new ones are refused; h2_session_finished() once all are done. */
void h2_session_goaway(h2_session *s);
/* Nothing left to receive or send: the connection may close. */
bool h2_session_finished(const h2_session *s);
/* No stream held by a handler and no answer waiting to be sent: the
 * connection is waiting for its client (the idle timer applies). */
bool h2_session_idle(const h2_session *s);
/* The socket is gone (the server drops it next): streams are closed, each
 * request a handler still holds says so (drain callbacks fire). */
void h2_session_peer_gone(h2_session *s);
/* Requests handlers still hold (not answered yet). */
int h2_session_held(const h2_session *s);
/* Free the session and every stream and request; no-op on NULL. */
void h2_session_free(h2_session **s);

/* --- for server.c: a request's calls, forwarded --- */
const http_message *h2_stream_message(const h2_stream *st);
const char *h2_stream_body(const h2_stream *st, size_t *len);
bool h2_stream_closed(const h2_stream *st);
size_t h2_stream_pending(const h2_stream *st);
void h2_stream_on_drain(h2_stream *st, http_drain_fn fn, void *arg);
/* A complete answer: head = the handler's header lines ("Name: v\r\n"...).
 * owned: body was malloc'd and is handed over, else NULL. */
void h2_stream_respond(h2_stream *st, int status, const char *head, size_t head_len, const char *body,
		       size_t len, char *owned);
/* A streaming answer; length < 0: unknown (ends with the stream). */
void h2_stream_start(h2_stream *st, int status, const char *head, size_t head_len, int64_t length);
/* owned as for h2_stream_respond. */
void h2_stream_chunk(h2_stream *st, const char *data, size_t len, char *owned);
void h2_stream_end(h2_stream *st);
/* RST_STREAM(INTERNAL_ERROR): the client sees an incomplete answer. */
void h2_stream_abort(h2_stream *st);
/* http_request_stream_body / body_pause / body_resume (server.h). */
int h2_stream_stream_body(h2_stream *st, uint64_t max, http_body_data_fn on_data, http_body_end_fn on_end,
			  void *arg);
void h2_stream_body_pause(h2_stream *st, bool pause);

/* --- in server.c, for h2.c --- */
http_request *http__request_new_h2(struct http_conn *c, h2_stream *st);
void http__request_free_h2(http_request *req);
/* Run the server's on_head (if any; not when head_done: it ran before the
 * body, http__request_on_head) then on_request, as for HTTP/1.1. */
void http__request_dispatch(http_request *req, bool head_done);
/* The server's on_head alone (a stream's head, before its body: the
 * handler may choose to stream the body), and on_request alone. */
void http__request_on_head(http_request *req);
void http__request_on_request(http_request *req);
bool http__server_has_on_head(struct http_conn *c);
/* The request's handler answered (after h2_stream_* above): frees the
 * connection when its socket is gone and nothing is held any more. Must be
 * the caller's last action on c. */
void http__conn_h2_answered(struct http_conn *c);
/* Bytes the session holds outside the bufferevent (request bodies,
 * answers waiting for flow control): counted in max_buffered_bytes. */
void http__conn_account(struct http_conn *c, ssize_t delta);
bool http__conn_over_budget(struct http_conn *c);
void http__conn_note_overload(struct http_conn *c, const char *what);
const char *http__conn_date(struct http_conn *c);
const char *http__conn_common_headers(struct http_conn *c);
const char *http__conn_peer(struct http_conn *c);
struct event_base *http__conn_base(struct http_conn *c);
/* The session cannot go on (the stall timer): close the connection now.
 * Must be the caller's last action on c. */
void http__conn_h2_close(struct http_conn *c);

#endif
