/*
 * server.c - HTTP/1.1 server over libevent bufferevents; see server.h.
 *
 * Connection states:
 *
 *   accept --> HEAD --(head parsed)--> BODY --(body complete)--> HANDLING
 *     |         ^                                                    |
 *     |         |                                         http_respond*()
 *     |         |                                                    v
 *     |         +------(keep-alive, next request)-------------- WRITING
 *     |                                                              |
 *     | over the per-address cap:                (close after answer)|
 *     | closed at once                                               v
 *     v                                                           CLOSING --> freed
 *   (refused)
 *
 * A streamed body (http_request_stream_body in on_head): the head goes
 * from BODY to STREAMING, where on_request has run already and the body's
 * bytes go to the handler as they are read (the parser's sink); its end
 * (or failure) moves to HANDLING. An answer in STREAMING (before the body
 * ended) closes the connection after it, lingering to drop the rest:
 *
 *   BODY --(on_head chose streaming; on_request)--> STREAMING --(end/error: on_end)--> HANDLING
 *                                                      |
 *                                                      +--(answered early)--> CLOSING (linger)
 *
 * In STREAMING reading is enabled unless the handler paused it
 * (http_request_body_pause); the timer is the body's inactivity
 * (body_timeout_ms, else idle_timeout_ms), stopped while paused.
 *
 * HTTP/2: when the TLS handshake chose "h2" by ALPN (cfg.http2), the first
 * read moves the connection from HEAD to H2 for good, and its bytes belong
 * to an h2_session (h2.h) that runs many requests at once; the connection
 * goes to CLOSING when the session is finished (GOAWAY done, or a protocol
 * error), once its output is flushed. In H2 the timer is the idle timeout,
 * armed while no request is being handled or answered (h2_session_idle).
 *
 * Timers: one per connection. HEAD: header_timeout from the first byte of
 * the request (from accept for the first one, so it covers the TLS
 * handshake); idle_timeout when no byte of a next request has come. BODY:
 * body_timeout from the end of the head, not restarted by activity (a body
 * trickled a byte at a time must not hold a connection and its memory for
 * ever), then 408. HANDLING: none (the handler owns the time).
 * All states: the bufferevent's write timeout (write_timeout_ms) closes a
 * connection whose unsent output the peer does not drain at all for that
 * long, whatever its size.
 *
 * Memory. Every connection accounts the bytes it holds: its input and output
 * evbuffers (through evbuffer callbacks, so each add and drain is counted
 * exactly) and the request body its parser collected. srv->buffered is the
 * sum. Over max_buffered_bytes: a new request with a body is answered 503
 * overloaded (Retry-After) by the server itself once its head is in, then
 * the connection closes; a body that grows is cut the same way; a 2xx
 * answer over HTTP_SMALL_ANSWER to a GET is replaced by that 503 (see
 * http_respond). Small answers (/healthz, errors) still go out, so a region
 * under memory pressure still says it is alive. So the total passes the
 * bound by at most one answer or one read (plus HTTP_SMALL_ANSWER per
 * connection), and goes back under it as clients read or leave. Per connection, output is bounded by what the handlers queue: one
 * complete answer (list pages end at page_max_bytes) or, for streaming
 * answers, max_unsent_bytes: the producer queues while
 * http_request_output_room() > 0 and is woken by http_request_on_drain()
 * (the bufferevent's write low-watermark, half of max_unsent_bytes) to queue
 * the next piece. Pipelined input waits in the input buffer, at most
 * HTTP_PIPELINE_MAX.
 *
 * Invariants: reading is disabled in HANDLING, WRITING and CLOSING, so a
 * pipelining client is held back by TCP flow control; a connection whose
 * peer vanished while HANDLING stays allocated (conn->bev == NULL) until the
 * handler answers, then is freed; srv->buffered == the sum over connections
 * of io_bytes + body_bytes; a connection counted in srv->peers is counted
 * exactly once and removed in conn_free.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "http/h2.h"
#include "http/peers.h"

#define HTTP_CONN_MAGIC 0x48434f4eu /* "HCON" */
#define HTTP_OUTPUT_HIGH (256 * 1024) /* pause pipelining above this much unsent output */
/* Lingering close after an error answer: a client still sending its body
 * would get a reset instead of our answer if we closed at once (RFC 9112
 * 9.6). We read and discard for a while, bounded in time and bytes. */
#define HTTP_LINGER_MS 2000
#define HTTP_LINGER_MAX_BYTES (64 * 1024 * 1024)
/* Unparsed input a connection may hold (pipelined requests waiting while
 * one is handled); past it libevent stops reading the socket. */
#define HTTP_PIPELINE_MAX (256 * 1024)
/* Answers up to this size are never replaced by 503 overloaded: they cost
 * little (at most this much per connection), and /healthz must keep
 * answering under load. */
#define HTTP_SMALL_ANSWER 4096
/* Bodies up to this size are copied into the head's buffer (one TLS record
 * for the whole answer); larger ones are added to the output on their own. */
#define HTTP_COPY_BODY_MAX (16 * 1024)
#define HTTP_UNSENT_DEFAULT (1024 * 1024) /* max_unsent_bytes when the config says 0 */
#define HTTP_RETRY_AFTER_S 1              /* Retry-After of 503 overloaded */
#define HTTP_REFUSAL_LOG_S 10             /* at most one log line this often per kind */

typedef enum conn_state {
	CONN_HEAD,
	CONN_BODY,
	CONN_HANDLING,
	CONN_WRITING,
	CONN_CLOSING,
	CONN_H2,       /* an h2_session owns the connection's bytes */
	CONN_STREAMING, /* the handler holds the request; its body streams to it */
} conn_state;

/* A detached request (http_request_detach): a copy, answered into done(). */
typedef struct http_detached {
	http_parser *parser;     /* holds the copied message and body */
	char *body;              /* the body taken (detach_take), else NULL */
	size_t body_len;
	char peer[INET6_ADDRSTRLEN];
	char peer_name[72];
	buf stream;              /* a streaming answer, gathered until its end */
	int stream_status;
	http_detached_done_fn done;
	void *arg;
} http_detached;

struct http_request {
	struct http_conn *conn;  /* NULL for a detached request */
	http_detached *det;
	h2_stream *h2;           /* a request of an HTTP/2 stream (h2.c), else NULL */
	buf response_head;      /* header lines added by the handler */
	void *data;
	bool responded;
	bool chunked_response;  /* streaming with chunked encoding */
	bool close_after;       /* close the connection after this answer */
	bool head_method;
	/* a streamed body (http_request_stream_body) */
	http_body_data_fn body_data;
	http_body_end_fn body_end;
	void *body_arg;
	uint64_t body_max;
	bool body_streamed;     /* chosen in on_head */
	bool body_paused;
};

typedef struct http_conn {
	unsigned magic;
	http_server *srv;
	struct bufferevent *bev; /* NULL once the peer is gone */
	struct event *timer;
	http_parser *parser;
	conn_state state;
	http_request req;
	char peer[INET6_ADDRSTRLEN];
	char peer_name[72];      /* CN of the verified client certificate */
	bool peer_name_known;
	bool request_started;    /* header timer armed for the current request */
	bool in_on_head;         /* the on_head handler is running */
	bool linger;             /* CLOSING: read and discard until the peer stops sending */
	bool body_cut;           /* a streamed body failed: linger after the answer */
	size_t discarded;
	size_t io_bytes;         /* in the input and output evbuffers */
	size_t body_bytes;       /* request body held by the parser */
	struct evbuffer_cb_entry *in_cb, *out_cb;
	http_peer_key peer_key;
	bool peer_counted;       /* counted in srv->peers */
	http_drain_fn drain_fn;  /* a streaming producer waits for the output to drain */
	void *drain_arg;
	struct event *drain_event; /* runs drain_fn from the loop */
	h2_session *h2;          /* CONN_H2 (and CLOSING after it) */
	bool alpn_checked;
	bool h2_idle_armed;      /* the idle timer runs (h2_session_idle) */
	size_t h2_bytes;         /* what the session holds outside the buffers */
	struct http_conn *prev, *next;
} http_conn;

struct http_server {
	struct event_base *base;
	http_server_config cfg;
	char *common_headers;
	http_handlers handlers;
	struct evconnlistener *listeners[4];
	int listener_count;
	bool listening_paused;
	int port;
	http_conn *conns;
	int conn_count;
	bool shutting_down;
	void (*shutdown_done)(void *);
	void *shutdown_arg;
	char date[64];          /* cached Date header value */
	buf scratch;            /* where answers are assembled (loop thread) */
	time_t date_second;
	size_t buffered;        /* sum of io_bytes + body_bytes over connections */
	http_peers *peers;      /* per-address counts; NULL without a cap */
	unsigned long refused_per_address, overloaded;
	time_t refused_logged_at, overload_logged_at;
	unsigned long refused_unlogged;
};

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_process(http_conn *c);

const char *http_status_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "";
	}
}

static const char *server_date(http_server *srv)
{
	time_t now = time(NULL);
	if (now != srv->date_second) {
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(srv->date, sizeof srv->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
		srv->date_second = now;
	}
	return srv->date;
}

static void timer_arm(http_conn *c, int ms)
{
	struct timeval tv = util_timeval_ms(ms);
	evtimer_add(c->timer, &tv);
}

static bool server_over_budget(const http_server *srv)
{
	return srv->cfg.max_buffered_bytes && srv->buffered > srv->cfg.max_buffered_bytes;
}

static size_t server_max_unsent(const http_server *srv)
{
	return srv->cfg.max_unsent_bytes ? srv->cfg.max_unsent_bytes : HTTP_UNSENT_DEFAULT;
}

/* A request refused by max_buffered_bytes: count it, and log now and then
 * (one line per HTTP_REFUSAL_LOG_S, not one per request of a flood). */
static void server_note_overload(http_server *srv, const char *what)
{
	srv->overloaded++;
	time_t now = time(NULL);
	if (now - srv->overload_logged_at >= HTTP_REFUSAL_LOG_S) {
		srv->overload_logged_at = now;
		log_warn("overloaded: %zu bytes held for clients, over max_buffered_bytes (%zu): %s "
			 "(%lu refused so far)",
			 srv->buffered, srv->cfg.max_buffered_bytes, what, srv->overloaded);
	}
}

/* evbuffer callback on a connection's input and output: every byte added
 * and drained is accounted, whoever adds or drains it. */
static void conn_buffer_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	http_conn *c = arg;
	c->io_bytes += info->n_added;
	c->io_bytes -= info->n_deleted;
	c->srv->buffered += info->n_added;
	c->srv->buffered -= info->n_deleted;
}

/* Re-read the size of the request body the parser holds (after a feed or a
 * reset). */
static void conn_account_body(http_conn *c)
{
	size_t len = 0;
	if (c->parser)
		http_parser_body(c->parser, &len);
	c->srv->buffered = c->srv->buffered - c->body_bytes + len;
	c->body_bytes = len;
}

/* The parser is ready for the next request; the body it held is released. */
static void conn_reset_parser(http_conn *c)
{
	http_parser_reset(c->parser);
	conn_account_body(c);
}

/* Stop waiting for the output to drain (the answer ended). */
static void conn_cancel_drain(http_conn *c)
{
	c->drain_fn = NULL;
	c->drain_arg = NULL;
	if (c->drain_event)
		event_del(c->drain_event);
	if (c->bev)
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
}

/* Run the producer waiting for the output to drain, once. */
static void conn_fire_drain(http_conn *c)
{
	http_drain_fn fn = c->drain_fn;
	void *arg = c->drain_arg;
	if (!fn)
		return;
	conn_cancel_drain(c);
	fn(&c->req, arg);
}

static void conn_drain_event_cb(evutil_socket_t fd, short what, void *arg)
{
	conn_fire_drain(arg);
}

static void server_maybe_resume_accept(http_server *srv)
{
	if (srv->listening_paused && !srv->shutting_down &&
	    srv->conn_count < srv->cfg.max_connections) {
		for (int i = 0; i < srv->listener_count; i++)
			evconnlistener_enable(srv->listeners[i]);
		srv->listening_paused = false;
	}
}

static void server_check_shutdown_done(http_server *srv)
{
	if (srv->shutting_down && srv->conn_count == 0 && srv->shutdown_done) {
		void (*done)(void *) = srv->shutdown_done;
		srv->shutdown_done = NULL;
		done(srv->shutdown_arg);
	}
}

/* Release the socket side of a connection (peer gone or we are done). */
static void conn_drop_socket(http_conn *c)
{
	if (c->bev) {
		/* what the buffers hold goes with them */
		if (c->in_cb)
			evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
		if (c->out_cb)
			evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
		c->in_cb = c->out_cb = NULL;
		c->srv->buffered -= c->io_bytes;
		c->io_bytes = 0;
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
}

/* Free the connection entirely. Called only when no handler holds it. */
static void conn_free(http_conn *c)
{
	http_server *srv = c->srv;
	h2_session_free(&c->h2); /* its streams' bytes leave srv->buffered */
	conn_drop_socket(c);
	if (c->timer)
		event_free(c->timer);
	if (c->drain_event)
		event_free(c->drain_event);
	srv->buffered -= c->body_bytes;
	c->body_bytes = 0;
	if (c->peer_counted)
		http_peers_remove(srv->peers, &c->peer_key);
	http_parser_free(&c->parser);
	buf_free(&c->req.response_head);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->magic = 0;
	free(c);
	srv->conn_count--;
	server_maybe_resume_accept(srv);
	server_check_shutdown_done(srv);
}

/* A streamed body ends (rc 0) or fails: the connection moves to HANDLING
 * (reading on again for what follows, a failure closes after the answer),
 * then the handler's on_end runs. Must be the caller's last action on c
 * (the handler may answer, which may free c). */
static void conn_stream_end(http_conn *c, int rc)
{
	http_request *req = &c->req;
	c->state = CONN_HANDLING;
	if (c->timer)
		evtimer_del(c->timer);
	if (rc != 0) {
		req->close_after = true;
		c->body_cut = c->bev != NULL;
	}
	if (req->body_paused) {
		req->body_paused = false;
		if (c->bev && rc == 0)
			bufferevent_enable(c->bev, EV_READ);
	}
	if (c->bev && rc != 0)
		bufferevent_disable(c->bev, EV_READ); /* what follows is not read: closed after the answer */
	http_body_end_fn end = req->body_end;
	req->body_end = NULL;
	req->body_data = NULL;
	if (end && !req->responded)
		end(req, req->body_arg, rc);
}

/* The parser's sink in STREAMING: decoded body bytes to the handler. */
static void conn_sink(void *arg, const char *data, size_t len)
{
	http_conn *c = arg;
	if (c->req.body_data && !c->req.responded)
		c->req.body_data(&c->req, c->req.body_arg, data, len);
}

static int conn_body_timeout(const http_conn *c)
{
	return c->srv->cfg.body_timeout_ms ? c->srv->cfg.body_timeout_ms : c->srv->cfg.idle_timeout_ms;
}

/* Close now, unless a handler still owns the request: then only drop the
 * socket, and free when it answers. */
static void conn_close(http_conn *c)
{
	if (c->h2 && h2_session_held(c->h2) > 0) {
		/* handlers still hold requests: they are told, and the
		 * connection is freed when the last one answers */
		h2_session_peer_gone(c->h2);
		conn_drop_socket(c);
		evtimer_del(c->timer);
		return;
	}
	if (c->state == CONN_STREAMING) {
		/* the client left mid-body: the handler hears it (last: it may answer, and the
		 * connection is freed then) */
		conn_drop_socket(c);
		evtimer_del(c->timer);
		conn_stream_end(c, ERR_IO);
		return;
	}
	if (c->state == CONN_HANDLING) {
		conn_drop_socket(c);
		evtimer_del(c->timer);
		if (c->drain_fn) /* a producer waits: tell it, from the loop */
			event_active(c->drain_event, EV_TIMEOUT, 1);
		return;
	}
	conn_free(c);
}

static void conn_error_response(http_conn *c, int status, const char *code, const char *message,
				const char *extra_headers);
static void conn_h2_finish(http_conn *c);

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	http_conn *c = arg;
	if (c->state == CONN_STREAMING) {
		log_debug("connection from %s: no byte of the streamed body for %d ms", c->peer, conn_body_timeout(c));
		conn_stream_end(c, ERR_AGAIN);
		return;
	}
	if (c->state == CONN_BODY && c->bev && c->srv->cfg.body_timeout_ms) {
		char message[96];
		snprintf(message, sizeof message, "the request body did not arrive within %d ms",
			 c->srv->cfg.body_timeout_ms);
		conn_error_response(c, 408, "request_timeout", message, NULL);
		return;
	}
	log_debug("closing connection from %s: timeout in state %d", c->peer, c->state);
	if (c->state == CONN_H2 && c->bev) { /* idle: say so (GOAWAY) before closing */
		h2_session_goaway(c->h2);
		conn_h2_finish(c);
		return;
	}
	conn_close(c);
}

/* Write a complete response made by the server itself (parse errors,
 * timeouts, overload), then close. extra_headers: more header lines, or
 * NULL. A request body held so far is released at once. */
static void conn_error_response(http_conn *c, int status, const char *code, const char *message,
				const char *extra_headers)
{
	http_server *srv = c->srv;
	char rid[33];
	util_request_id(rid);
	buf body;
	buf_init(&body, 1024);
	buf_printf(&body, "{\"error\":{\"code\":\"%s\",\"message\":\"", code);
	buf_add_json_escaped(&body, message, strlen(message));
	buf_adds(&body, "\"}}");
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add_printf(out,
			    "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\nX-Request-Id: %s\r\n%s%s\r\n",
			    status, http_status_reason(status), server_date(srv), body.len, rid,
			    extra_headers ? extra_headers : "", srv->common_headers ? srv->common_headers : "");
	evbuffer_add(out, body.data, body.len);
	buf_free(&body);
	log_request("-", status == 503 ? "(overloaded)" : "(protocol error)", status, 0, rid);
	conn_reset_parser(c);
	c->state = CONN_CLOSING;
	c->linger = true;
	evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	timer_arm(c, HTTP_LINGER_MS);
}

static const char *parse_error_code(int status)
{
	switch (status) {
	case 413: return "payload_too_large";
	case 414: return "uri_too_long";
	case 431: return "headers_too_large";
	case 501: return "not_implemented";
	case 505: return "http_version_not_supported";
	default: return "bad_request";
	}
}

/* The head is complete: give the handler its look, answer 100-continue. */
static void conn_on_head(http_conn *c)
{
	http_server *srv = c->srv;
	const http_message *m = http_parser_message(c->parser);
	http_request *req = &c->req;
	buf_reset(&req->response_head);
	req->data = NULL;
	req->responded = false;
	req->chunked_response = false;
	req->close_after = !m->keep_alive || srv->shutting_down;
	req->head_method = strcmp(m->method, "HEAD") == 0;
	req->body_data = NULL;
	req->body_end = NULL;
	req->body_arg = NULL;
	req->body_streamed = false;
	req->body_paused = false;
	c->state = CONN_BODY;
	evtimer_del(c->timer);
	if (srv->handlers.on_head) {
		/* the handler may answer now; the body is then never read */
		c->state = CONN_HANDLING;
		c->in_on_head = true;
		srv->handlers.on_head(req, srv->handlers.arg);
		c->in_on_head = false;
		if (req->responded)
			return;
		c->state = CONN_BODY;
	}
	/* the body's deadline runs from here, whatever arrives meanwhile */
	timer_arm(c, srv->cfg.body_timeout_ms ? srv->cfg.body_timeout_ms : srv->cfg.idle_timeout_ms);
	if (req->body_streamed) { /* its limit, before 100-continue looks at it */
		http_parser_set_body_sink(c->parser, conn_sink, c);
		http_parser_set_body_limit(c->parser, req->body_max > SIZE_MAX / 2 ? SIZE_MAX / 2 : (size_t)req->body_max);
	}
	if (m->expect_continue && m->version_minor == 1) {
		/* A body the parser will refuse (too large) gets its 413 without
		 * the 100: an empty feed makes it check the announced length. */
		size_t none = 0;
		if (http_parser_feed(c->parser, "", 0, &none) >= 0)
			evbuffer_add(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n",
				     25);
	}
	if (req->body_streamed) {
		/* the handler takes the request now; the body follows to its on_data */
		c->state = CONN_STREAMING;
		timer_arm(c, conn_body_timeout(c));
		srv->handlers.on_request(req, srv->handlers.arg);
	}
}

/* Feed buffered input to the parser until a request is complete, more bytes
 * are needed, or an error. */
static void conn_process(http_conn *c)
{
	http_server *srv = c->srv;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	while (c->state == CONN_HEAD || c->state == CONN_BODY ||
	       (c->state == CONN_STREAMING && !c->req.body_paused && c->bev)) {
		struct evbuffer_iovec v = {NULL, 0};
		evbuffer_peek(in, -1, NULL, &v, 1);
		if (v.iov_len == 0 && c->state == CONN_HEAD)
			break;
		if (c->state == CONN_HEAD && !c->request_started) {
			c->request_started = true;
			timer_arm(c, srv->cfg.header_timeout_ms);
		}
		size_t used = 0;
		int rc = http_parser_feed(c->parser, v.iov_base, v.iov_len, &used);
		if (used)
			evbuffer_drain(in, used);
		size_t body_before = c->body_bytes;
		conn_account_body(c);
		if (c->state == CONN_STREAMING) {
			if (rc < 0 || rc == HTTP_PARSE_DONE) {
				conn_stream_end(c, rc < 0 ? rc : 0);
				return;
			}
			if (c->state != CONN_STREAMING || !c->bev) /* cannot happen: on_data answered */
				return;
			if (used && !c->req.body_paused)
				timer_arm(c, conn_body_timeout(c)); /* inactivity restarts */
			if (used < v.iov_len || evbuffer_get_length(in) == 0)
				break;
			continue;
		}
		if (rc < 0) {
			int status = http_parser_error_status(c->parser);
			conn_error_response(c, status, parse_error_code(status),
					    http_parser_error(c->parser), NULL);
			return;
		}
		const http_message *m = rc == HTTP_PARSE_HEAD ? http_parser_message(c->parser) : NULL;
		bool new_body = m && (m->content_length > 0 || m->chunked);
		if ((new_body || c->body_bytes > body_before) && server_over_budget(srv)) {
			/* a request with a body, or a body growing, while the
			 * server holds more than it may: refuse before holding
			 * more (a request without one is looked at when it is
			 * answered, see respond_over_budget) */
			server_note_overload(srv, "a request body refused with 503");
			char retry[48];
			snprintf(retry, sizeof retry, "Retry-After: %d\r\n", HTTP_RETRY_AFTER_S);
			conn_error_response(c, 503, "overloaded",
					    "the server holds too much data for clients now; retry later", retry);
			return;
		}
		if (rc == HTTP_PARSE_HEAD) {
			conn_on_head(c);
			if (c->req.responded) /* answered in on_head (body unread), or on_request */
				return;
			if (c->state != CONN_BODY && c->state != CONN_STREAMING)
				return;
			continue;
		}
		if (rc == HTTP_PARSE_DONE) {
			c->state = CONN_HANDLING;
			evtimer_del(c->timer);
			/* reading stays enabled (toggling costs two epoll_ctl per
			 * request); the read high-watermark holds back a client
			 * that pipelines more than HTTP_PIPELINE_MAX meanwhile */
			srv->handlers.on_request(&c->req, srv->handlers.arg);
			return;
		}
		if (c->state == CONN_BODY && !srv->cfg.body_timeout_ms)
			timer_arm(c, srv->cfg.idle_timeout_ms); /* inactivity restarts */
		if (used < v.iov_len || evbuffer_get_length(in) == 0)
			break;
	}
}

/* The HTTP/2 session is done: close once its last frames (GOAWAY) are out. */
static void conn_h2_finish(http_conn *c)
{
	if (h2_session_held(c->h2) > 0 || !c->bev) {
		conn_close(c);
		return;
	}
	/* lingering close, as after an HTTP/1.1 error answer: closing with
	 * unread input would reset the connection, and the client could lose
	 * our last frames (GOAWAY); it closes once it has read them */
	c->state = CONN_CLOSING;
	c->linger = true;
	evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	timer_arm(c, HTTP_LINGER_MS);
}

/* The idle timer of an HTTP/2 connection: armed (not restarted) while it
 * waits for its client, stopped while requests are handled or answered. */
static void conn_h2_timer(http_conn *c)
{
	if (!c->bev || c->state != CONN_H2)
		return;
	if (h2_session_idle(c->h2)) {
		if (!c->h2_idle_armed)
			timer_arm(c, c->srv->cfg.idle_timeout_ms);
		c->h2_idle_armed = true;
	} else if (c->h2_idle_armed) {
		evtimer_del(c->timer);
		c->h2_idle_armed = false;
	}
}

/* The first bytes of an HTTP/2 client (RFC 9113 3.4). */
static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof h2_preface - 1)

/* Does this connection speak HTTP/2 (cfg.http2)? Over TLS: did ALPN choose
 * h2 (asked once, after the handshake). In clear (h2c, behind a balancer,
 * and the fuzz target): does the input start with the client preface
 * ("prior knowledge", RFC 9113 3.3)? Then the connection is the session's.
 * false: HTTP/1.1 goes on, or (*wait) not enough bytes to tell yet, or
 * (*closed) the connection was closed: out of memory. */
static bool conn_maybe_h2(http_conn *c, bool *wait, bool *closed)
{
	if (!c->srv->cfg.http2) {
		c->alpn_checked = true;
		return false;
	}
	if (c->srv->cfg.ssl_ctx) {
		c->alpn_checked = true;
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
		const unsigned char *proto = NULL;
		unsigned int len = 0;
		if (ssl)
			SSL_get0_alpn_selected(ssl, &proto, &len);
		if (len != 2 || memcmp(proto, "h2", 2) != 0)
			return false;
	} else {
		struct evbuffer *in = bufferevent_get_input(c->bev);
		char head[H2_PREFACE_LEN];
		size_t have = evbuffer_get_length(in);
		size_t n = have < H2_PREFACE_LEN ? have : H2_PREFACE_LEN;
		if (evbuffer_copyout(in, head, n) != (ev_ssize_t)n || memcmp(head, h2_preface, n) != 0) {
			c->alpn_checked = true;
			return false;
		}
		if (n < H2_PREFACE_LEN) {
			*wait = true; /* a prefix of the preface: more bytes tell */
			return false;
		}
		c->alpn_checked = true;
	}
	c->h2 = h2_session_new(c, c->bev, &c->srv->cfg);
	if (!c->h2) {
		log_error("cannot start an HTTP/2 session: out of memory");
		*closed = true;
		conn_free(c);
		return false;
	}
	c->state = CONN_H2;
	evtimer_del(c->timer);
	c->h2_idle_armed = false;
	return true;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	http_conn *c = arg;
	if (c->state == CONN_HEAD && !c->alpn_checked) {
		bool wait = false, closed = false;
		conn_maybe_h2(c, &wait, &closed);
		if (wait || closed)
			return;
	}
	if (c->state == CONN_H2) {
		if (h2_session_read(c->h2) != 0)
			conn_h2_finish(c);
		else
			conn_h2_timer(c);
		return;
	}
	if (c->state == CONN_HEAD || c->state == CONN_BODY || c->state == CONN_STREAMING) {
		conn_process(c);
	} else if (c->state == CONN_CLOSING && c->linger) {
		struct evbuffer *in = bufferevent_get_input(bev);
		c->discarded += evbuffer_get_length(in);
		evbuffer_drain(in, evbuffer_get_length(in));
		if (c->discarded > HTTP_LINGER_MAX_BYTES)
			conn_free(c);
	}
}

/* The answer is queued: go on with the next request or close. */
static void conn_after_response(http_conn *c)
{
	http_server *srv = c->srv;
	if (!c->bev) { /* peer went away while we were handling */
		conn_free(c);
		return;
	}
	conn_cancel_drain(c);
	bool body_unread = c->state == CONN_STREAMING || c->body_cut; /* the body did not end */
	c->body_cut = false;
	conn_reset_parser(c); /* the request is finished: its body goes now */
	if (body_unread) {
		/* the rest of the body is read and dropped for a while (a client
		 * still sending would otherwise get a reset instead of the answer) */
		c->req.close_after = true;
		c->req.body_paused = false;
		c->state = CONN_CLOSING;
		c->linger = true;
		evbuffer_drain(bufferevent_get_input(c->bev), evbuffer_get_length(bufferevent_get_input(c->bev)));
		bufferevent_enable(c->bev, EV_READ | EV_WRITE);
		timer_arm(c, HTTP_LINGER_MS);
		return;
	}
	if (c->req.close_after || srv->shutting_down) {
		c->state = CONN_CLOSING;
		bufferevent_enable(c->bev, EV_WRITE);
		/* conn_write_cb closes once the output is flushed */
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_free(c);
		return;
	}
	c->state = CONN_WRITING;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) < HTTP_OUTPUT_HIGH) {
		/* small answer: start on the next pipelined request right away;
		 * deferred, so pipelines do not recurse through the handler */
		c->state = CONN_HEAD;
		c->request_started = false;
		timer_arm(c, srv->cfg.idle_timeout_ms);
		if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
			bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
	}
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	http_conn *c = arg;
	if (c->state == CONN_H2) {
		if (h2_session_write(c->h2) != 0)
			conn_h2_finish(c);
		else
			conn_h2_timer(c);
		return;
	}
	if (c->state == CONN_CLOSING) {
		if (!c->linger) /* lingering ends with the peer's close or the timer */
			conn_free(c);
	} else if (c->state == CONN_HANDLING || c->state == CONN_STREAMING) {
		conn_fire_drain(c); /* the write low-watermark is set only while a producer waits */
	} else if (c->state == CONN_WRITING) {
		c->state = CONN_HEAD;
		conn_reset_parser(c);
		c->request_started = false;
		timer_arm(c, c->srv->cfg.idle_timeout_ms);
		conn_process(c);
	}
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	http_conn *c = arg;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_ERROR) {
		unsigned long e;
		char reason[160] = "";
		while ((e = bufferevent_get_openssl_error(bev)) != 0)
			ERR_error_string_n(e, reason, sizeof reason);
		log_debug("connection from %s failed: %s", c->peer,
			  reason[0] ? reason : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	}
	if ((what & BEV_EVENT_EOF) && c->state == CONN_BODY) {
		/* peer closed mid-body: nothing to answer */
	}
	conn_close(c);
}

/* A connection over max_connections_per_address: closed at once, without
 * a TLS handshake or an answer (they would cost us more than the client),
 * and logged now and then with the address shortened (peers.h). */
static void server_refuse_per_address(http_server *srv, evutil_socket_t fd, const http_peer_key *key)
{
	evutil_closesocket(fd);
	srv->refused_per_address++;
	srv->refused_unlogged++;
	time_t now = time(NULL);
	if (now - srv->refused_logged_at >= HTTP_REFUSAL_LOG_S) {
		char block[64];
		http_peer_key_text(key, block, sizeof block);
		log_warn("refused %lu connection(s) over max_connections_per_address (%d), the last from %s",
			 srv->refused_unlogged, srv->cfg.max_connections_per_address, block);
		srv->refused_logged_at = now;
		srv->refused_unlogged = 0;
	}
}

static void server_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
			     int salen, void *arg)
{
	http_server *srv = arg;
	http_peer_key key;
	bool counted = srv->peers && http_peer_key_of(sa, &key);
	if (counted && http_peers_add(srv->peers, &key, srv->cfg.max_connections_per_address) != 0) {
		server_refuse_per_address(srv, fd, &key);
		return;
	}
	http_conn *c = calloc(1, sizeof *c);
	if (!c) {
		if (counted)
			http_peers_remove(srv->peers, &key);
		evutil_closesocket(fd);
		return;
	}
	c->peer_counted = counted;
	if (counted)
		c->peer_key = key;
	c->magic = HTTP_CONN_MAGIC;
	c->srv = srv;
	c->req.conn = c;
	buf_init(&c->req.response_head, srv->cfg.limits.max_header_bytes);
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, c->peer, sizeof c->peer);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, c->peer, sizeof c->peer);
	c->parser = http_parser_new(HTTP_REQUEST, &srv->cfg.limits);
	c->timer = evtimer_new(srv->base, conn_timer_cb, c);
	c->drain_event = event_new(srv->base, -1, 0, conn_drain_event_cb, c);
	if (srv->cfg.ssl_ctx) {
		SSL *ssl = SSL_new(srv->cfg.ssl_ctx);
		if (ssl)
			c->bev = bufferevent_openssl_socket_new(srv->base, fd, ssl,
								BUFFEREVENT_SSL_ACCEPTING,
								BEV_OPT_CLOSE_ON_FREE);
		if (!c->bev)
			SSL_free(ssl);
		else
			bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	/* link first so conn_free can unlink */
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->conn_count++;
	if (c->bev) {
		c->in_cb = evbuffer_add_cb(bufferevent_get_input(c->bev), conn_buffer_cb, c);
		c->out_cb = evbuffer_add_cb(bufferevent_get_output(c->bev), conn_buffer_cb, c);
	}
	if (!c->bev || !c->parser || !c->timer || !c->drain_event || !c->in_cb || !c->out_cb) {
		if (!c->bev)
			evutil_closesocket(fd);
		log_error("cannot set up a connection: out of memory");
		conn_free(c);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	/* a peer that drains nothing of what we queued for this long goes */
	int write_ms = srv->cfg.write_timeout_ms ? srv->cfg.write_timeout_ms : srv->cfg.idle_timeout_ms;
	struct timeval wt = {write_ms / 1000, (write_ms % 1000) * 1000};
	bufferevent_set_timeouts(c->bev, NULL, &wt);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, HTTP_PIPELINE_MAX);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->state = CONN_HEAD;
	c->request_started = true; /* handshake + first head share the header timeout */
	timer_arm(c, srv->cfg.header_timeout_ms);
	if (srv->conn_count >= srv->cfg.max_connections) {
		for (int i = 0; i < srv->listener_count; i++)
			evconnlistener_disable(srv->listeners[i]);
		srv->listening_paused = true;
	}
}

int http_server_adopt(http_server *srv, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
	if (srv->shutting_down) {
		evutil_closesocket(fd);
		return ERR_AGAIN;
	}
	if (evutil_make_socket_nonblocking(fd) != 0) {
		evutil_closesocket(fd);
		return ERR_IO;
	}
	server_accept_cb(NULL, fd, (struct sockaddr *)sa, salen, srv);
	return 0;
}

static void server_accept_error_cb(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	log_warn("accept failed: %s", evutil_socket_error_to_string(err));
}

http_server *http_server_new(struct event_base *base, const http_server_config *cfg,
			     const http_handlers *handlers)
{
	http_server *srv = calloc(1, sizeof *srv);
	if (!srv)
		return NULL;
	srv->base = base;
	srv->cfg = *cfg;
	srv->handlers = *handlers;
	if (cfg->common_headers) {
		srv->common_headers = strdup(cfg->common_headers);
		if (!srv->common_headers) {
			free(srv);
			return NULL;
		}
	}
	srv->cfg.common_headers = srv->common_headers;
	if (cfg->max_connections_per_address > 0) {
		/* at most max_connections blocks at once; a little slack for
		 * connections accepted in the same burst as the one that reached it */
		srv->peers = http_peers_new((size_t)cfg->max_connections + 64);
		if (!srv->peers) {
			free(srv->common_headers);
			free(srv);
			return NULL;
		}
	}
	buf_init(&srv->scratch, 64 * 1024 * 1024);
	return srv;
}

int http_server_listen(http_server *srv, const char *hostport)
{
	char host[64];
	int port;
	if (srv->listener_count == (int)(sizeof srv->listeners / sizeof srv->listeners[0]))
		return ERR_LIMIT;
	if (strcmp(hostport + strlen(hostport) - 2, ":0") == 0) {
		/* port 0: let the kernel choose */
		snprintf(host, sizeof host, "%.*s", (int)(strlen(hostport) - 2), hostport);
		port = 0;
	} else if (util_split_hostport(hostport, host, sizeof host, &port) != 0) {
		return ERR_INVAL;
	}
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	socklen_t sslen;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		sslen = sizeof *sin;
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		sslen = sizeof *sin6;
	} else {
		return ERR_INVAL;
	}
	struct evconnlistener *l = evconnlistener_new_bind(
		srv->base, server_accept_cb, srv,
		LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024,
		(struct sockaddr *)&ss, (int)sslen);
	if (!l)
		return ERR_IO;
	evconnlistener_set_error_cb(l, server_accept_error_cb);
	struct sockaddr_storage bound;
	socklen_t blen = sizeof bound;
	if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &blen) == 0)
		srv->port = ntohs(bound.ss_family == AF_INET
					  ? ((struct sockaddr_in *)&bound)->sin_port
					  : ((struct sockaddr_in6 *)&bound)->sin6_port);
	srv->listeners[srv->listener_count++] = l;
	return 0;
}

int http_server_port(const http_server *srv)
{
	return srv->port;
}

int http_server_connections(const http_server *srv)
{
	return srv->conn_count;
}

size_t http_server_buffered(const http_server *srv)
{
	return srv->buffered;
}

unsigned long http_server_refused_per_address(const http_server *srv)
{
	return srv->refused_per_address;
}

unsigned long http_server_overloaded(const http_server *srv)
{
	return srv->overloaded;
}

void http_server_shutdown(http_server *srv, void (*done)(void *arg), void *arg)
{
	srv->shutting_down = true;
	srv->shutdown_done = done;
	srv->shutdown_arg = arg;
	for (int i = 0; i < srv->listener_count; i++)
		evconnlistener_free(srv->listeners[i]);
	srv->listener_count = 0;
	http_conn *c = srv->conns;
	while (c) {
		http_conn *next = c->next;
		if (c->state == CONN_H2) {
			/* GOAWAY: streams in progress finish, no new one starts */
			h2_session_goaway(c->h2);
			if (h2_session_finished(c->h2))
				conn_h2_finish(c);
			c = next;
			continue;
		}
		/* idle keep-alive connections (no byte of a request yet) go now */
		if (c->state == CONN_HEAD && !http_parser_started(c->parser))
			conn_free(c);
		else
			c->req.close_after = true;
		c = next;
	}
	server_check_shutdown_done(srv);
}

void http_server_free(http_server **psrv)
{
	http_server *srv = *psrv;
	if (!srv)
		return;
	srv->shutdown_done = NULL;
	for (int i = 0; i < srv->listener_count; i++)
		evconnlistener_free(srv->listeners[i]);
	srv->listener_count = 0;
	while (srv->conns) {
		srv->conns->state = CONN_CLOSING; /* handlers are gone too */
		conn_free(srv->conns);
	}
	free(srv->common_headers);
	buf_free(&srv->scratch);
	http_peers_free(&srv->peers);
	free(srv);
	*psrv = NULL;
}

/* --- detached requests --- */

/* Hand the answer of a detached request to its owner and free it: the
 * request is finished (a second answer is a bug, as on a connection). */
static void detached_finish(http_request *req, int status, const char *body, size_t len)
{
	http_detached *d = req->det;
	if (req->responded) {
		log_error("BUG: second answer to one request ignored");
		return;
	}
	req->responded = true;
	d->done(d->arg, status, req->response_head.data ? req->response_head.data : "", req->response_head.len,
		body ? body : "", body ? len : 0);
	http_parser_free(&d->parser);
	free(d->body);
	buf_free(&d->stream);
	buf_free(&req->response_head);
	free(d);
	free(req);
}

static http_request *detach(http_request *req, http_detached_done_fn done, void *arg, bool take);

http_request *http_request_detach(http_request *req, http_detached_done_fn done, void *arg)
{
	return detach(req, done, arg, false);
}

http_request *http_request_detach_take(http_request *req, http_detached_done_fn done, void *arg)
{
	return detach(req, done, arg, true);
}

static http_request *detach(http_request *req, http_detached_done_fn done, void *arg, bool take)
{
	const http_message *m = http_request_message(req);
	size_t blen = 0;
	const char *body = http_request_body(req, &blen);
	if (req->h2) /* an HTTP/2 stream's body is the session's: copied */
		take = false;
	if (take) /* the copy's parser sees no body: it comes along below */
		blen = 0;
	http_request *copy = calloc(1, sizeof *copy);
	http_detached *d = calloc(1, sizeof *d);
	buf head;
	buf_init(&head, (size_t)64 << 20);
	if (!copy || !d)
		goto fail;
	/* the message again, in its canonical form, parsed by a parser of its
	 * own: every accessor then works as on a connection */
	int brc = buf_printf(&head, "%s %s HTTP/1.%d\r\n", m->method, m->target, m->version_minor);
	for (size_t i = 0; i < m->field_count; i++) {
		const http_field *f = &m->fields[i];
		if ((f->name_len == 14 && strncasecmp(f->name, "content-length", 14) == 0) ||
		    (f->name_len == 17 && strncasecmp(f->name, "transfer-encoding", 17) == 0))
			continue;
		brc |= buf_printf(&head, "%.*s: %.*s\r\n", (int)f->name_len, f->name, (int)f->value_len, f->value);
	}
	brc |= buf_printf(&head, "Content-Length: %zu\r\n\r\n", blen);
	size_t head_len = head.len;
	if (brc != 0 || (blen && buf_add(&head, body, blen) != 0))
		goto fail;
	http_limits limits = {.max_header_bytes = head_len + 1, .max_headers = m->field_count + 1,
			      .max_body_bytes = blen, .max_target_bytes = 0};
	d->parser = http_parser_new(HTTP_REQUEST, &limits);
	if (!d->parser)
		goto fail;
	size_t off = 0;
	int rc;
	do {
		size_t used = 0;
		rc = http_parser_feed(d->parser, head.data + off, head.len - off, &used);
		off += used;
	} while (rc == HTTP_PARSE_HEAD || (rc == HTTP_PARSE_MORE && off < head.len));
	if (rc != HTTP_PARSE_DONE)
		goto fail;
	buf_free(&head);
	snprintf(d->peer, sizeof d->peer, "%s", http_request_peer(req));
	const char *name = http_request_peer_name(req);
	snprintf(d->peer_name, sizeof d->peer_name, "%s", name ? name : "");
	if (take && req->det) {
		d->body = req->det->body; /* a copy of a copy: move it on */
		d->body_len = req->det->body_len;
		req->det->body = NULL;
		req->det->body_len = 0;
		if (!d->body)
			d->body = http_parser_take_body(req->det->parser, &d->body_len);
	} else if (take) {
		d->body = http_parser_take_body(req->conn->parser, &d->body_len);
	}
	buf_init(&d->stream, (size_t)64 << 20);
	buf_init(&copy->response_head, req->conn ? req->conn->srv->cfg.limits.max_header_bytes : 65536);
	d->done = done;
	d->arg = arg;
	copy->det = d;
	copy->head_method = req->head_method;
	return copy;
fail:
	buf_free(&head);
	if (d)
		http_parser_free(&d->parser);
	free(d);
	free(copy);
	return NULL;
}

/* --- request side --- */

const http_message *http_request_message(const http_request *req)
{
	if (req->h2)
		return h2_stream_message(req->h2);
	return http_parser_message(req->det ? req->det->parser : req->conn->parser);
}

const char *http_request_body(const http_request *req, size_t *len)
{
	if (req->h2)
		return h2_stream_body(req->h2, len);
	if (req->det && req->det->body) {
		if (len)
			*len = req->det->body_len;
		return req->det->body;
	}
	return http_parser_body(req->det ? req->det->parser : req->conn->parser, len);
}

const char *http_request_peer(const http_request *req)
{
	return req->det ? req->det->peer : req->conn->peer;
}

const char *http_request_peer_name(http_request *req)
{
	if (req->det)
		return req->det->peer_name[0] ? req->det->peer_name : NULL;
	http_conn *c = req->conn;
	if (!c->peer_name_known && c->bev && c->srv->cfg.ssl_ctx) {
		c->peer_name_known = true;
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
		X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
		/* only a certificate that passed verification counts */
		if (cert && SSL_get_verify_result(ssl) == X509_V_OK) {
			X509_NAME *subject = X509_get_subject_name(cert);
			if (X509_NAME_get_text_by_NID(subject, NID_commonName, c->peer_name,
						      sizeof c->peer_name) <= 0)
				c->peer_name[0] = '\0';
		}
	}
	return c->peer_name[0] ? c->peer_name : NULL;
}

bool http_request_is_closed(const http_request *req)
{
	if (req->h2)
		return h2_stream_closed(req->h2);
	return req->det ? false : req->conn->bev == NULL;
}

size_t http_request_output_pending(const http_request *req)
{
	if (req->det)
		return 0;
	if (req->h2)
		return h2_stream_pending(req->h2);
	return req->conn->bev ? evbuffer_get_length(bufferevent_get_output(req->conn->bev)) : 0;
}

size_t http_request_output_room(const http_request *req)
{
	if (req->det) /* gathered in memory, bounded by what the handler produces */
		return req->det->stream.len < HTTP_UNSENT_DEFAULT ? HTTP_UNSENT_DEFAULT - req->det->stream.len : 0;
	if (http_request_is_closed(req))
		return 0;
	size_t max = server_max_unsent(req->conn->srv);
	size_t pending = http_request_output_pending(req);
	return pending < max ? max - pending : 0;
}

void http_request_on_drain(http_request *req, http_drain_fn fn, void *arg)
{
	if (req->det) {
		log_error("BUG: a detached request cannot wait for output to drain; ignored");
		return;
	}
	http_conn *c = req->conn;
	if (req->h2 && !req->responded) {
		h2_stream_on_drain(req->h2, fn, arg);
		return;
	}
	if (req->responded || (c->state != CONN_HANDLING && c->state != CONN_STREAMING)) {
		log_error("BUG: waiting for the output of a finished answer ignored");
		return;
	}
	c->drain_fn = fn;
	c->drain_arg = arg;
	size_t low = server_max_unsent(c->srv) / 2;
	if (!c->bev || http_request_output_pending(req) <= low) {
		event_active(c->drain_event, EV_TIMEOUT, 1);
		return;
	}
	/* conn_write_cb runs once the output is down to `low` */
	bufferevent_setwatermark(c->bev, EV_WRITE, low, 0);
}

bool http_request_server_overloaded(const http_request *req)
{
	return req->det ? false : server_over_budget(req->conn->srv);
}

void http_request_note_overloaded(http_request *req)
{
	if (req->det)
		return;
	server_note_overload(req->conn->srv, "a large answer refused with 503 before it was built");
}

void http_request_close_after(http_request *req)
{
	req->close_after = true;
}

void http_request_set_body_limit(http_request *req, size_t max)
{
	if (req->det || req->h2)
		return; /* the body is here already (HTTP/2: bounded by the server's limit) */
	http_parser_set_body_limit(req->conn->parser, max);
}

int http_request_stream_body(http_request *req, uint64_t max, http_body_data_fn on_data, http_body_end_fn on_end,
			     void *arg)
{
	if (req->det || !on_data || !on_end)
		return ERR_INVAL;
	if (req->h2)
		return h2_stream_stream_body(req->h2, max, on_data, on_end, arg);
	http_conn *c = req->conn;
	const http_message *m = http_parser_message(c->parser);
	if (!c->in_on_head || !m || (m->content_length <= 0 && !m->chunked))
		return ERR_INVAL;
	req->body_data = on_data;
	req->body_end = on_end;
	req->body_arg = arg;
	req->body_max = max;
	req->body_streamed = true;
	return 0;
}

void http_request_body_pause(http_request *req)
{
	if (req->h2) {
		h2_stream_body_pause(req->h2, true);
		return;
	}
	if (req->det || req->body_paused || !req->body_streamed)
		return;
	http_conn *c = req->conn;
	if (c->state != CONN_STREAMING)
		return;
	req->body_paused = true;
	evtimer_del(c->timer); /* the handler is slow, not the client */
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ);
}

void http_request_body_resume(http_request *req)
{
	if (req->h2) {
		h2_stream_body_pause(req->h2, false);
		return;
	}
	if (req->det || !req->body_paused)
		return;
	http_conn *c = req->conn;
	req->body_paused = false;
	if (c->state != CONN_STREAMING || !c->bev)
		return;
	timer_arm(c, conn_body_timeout(c));
	bufferevent_enable(c->bev, EV_READ);
	/* what was read before the pause waits in the input buffer: from the loop */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)))
		bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void http_request_set_data(http_request *req, void *data)
{
	req->data = data;
}

void *http_request_data(const http_request *req)
{
	return req->data;
}

int http_response_header(http_request *req, const char *name, const char *value)
{
	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return ERR_INVAL;
	size_t mark = req->response_head.len;
	int rc = buf_printf(&req->response_head, "%s: %s\r\n", name, value);
	if (rc) {
		req->response_head.len = mark;
		if (req->response_head.data)
			req->response_head.data[mark] = '\0';
	}
	return rc;
}

int http_response_header_lines(http_request *req, const char *lines, size_t len)
{
	return buf_add(&req->response_head, lines, len);
}

/* evbuffer_add_reference cleanup: the body handed over is sent (or dropped). */
static void free_reference(const void *data, size_t len, void *extra)
{
	free((void *)data);
}

/* Write the status line, the headers and (when given) the body to the
 * output: a small body in one piece with the head (one evbuffer_add, so TLS
 * makes one record of it), a large one added on its own. owned: body was
 * malloc'd and is handed over (added by reference, freed once sent), else
 * NULL. On allocation failure the connection is dropped (the head may be out
 * already). */
static void respond_head(http_request *req, int status, const char *framing, const char *body,
			 size_t len, char *owned)
{
	http_conn *c = req->conn;
	http_server *srv = c->srv;
	if (srv->shutting_down)
		req->close_after = true;
	buf *b = &srv->scratch;
	buf_reset(b);
	char line[96];
	int n = snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\nDate: ", status, http_status_reason(status));
	buf_add(b, line, (size_t)n);
	buf_adds(b, server_date(srv));
	buf_add(b, "\r\n", 2);
	buf_adds(b, framing);
	if (req->close_after)
		buf_add(b, "Connection: close\r\n", 19);
	const http_message *m = http_parser_message(c->parser);
	if (!req->close_after && m && m->version_minor == 0)
		buf_add(b, "Connection: keep-alive\r\n", 24);
	if (req->response_head.len)
		buf_add(b, req->response_head.data, req->response_head.len);
	buf_add(b, "\r\n", 2);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	int rc;
	if (len && len <= HTTP_COPY_BODY_MAX && buf_add(b, body, len) == 0) {
		rc = evbuffer_add(out, b->data, b->len);
		free(owned);
	} else if (len && owned) {
		rc = evbuffer_add(out, b->data, b->len);
		if (rc == 0)
			rc = evbuffer_add_reference(out, owned, len, free_reference, NULL);
		if (rc != 0)
			free(owned);
	} else {
		rc = evbuffer_add(out, b->data, b->len);
		if (rc == 0 && len)
			rc = evbuffer_add(out, body, len);
		free(owned);
	}
	if (b->cap > 256 * 1024) /* do not keep a huge scratch around */
		buf_free(b);
	if (rc != 0) {
		log_error("cannot queue an answer of %zu bytes: out of memory; connection dropped", len);
		conn_drop_socket(c);
	}
}

/* A large 2xx answer to a GET while the server holds more than
 * max_buffered_bytes: queueing it would pass the bound further, and a GET
 * changed nothing, so the client is told to come back (503 overloaded). */
static bool respond_over_budget(http_request *req, int status, size_t len)
{
	http_conn *c = req->conn;
	if (len <= HTTP_SMALL_ANSWER || status < 200 || status > 299 || !server_over_budget(c->srv))
		return false;
	const http_message *m = http_request_message(req);
	return m && strcmp(m->method, "GET") == 0;
}

/* http_respond and http_respond_take; owned as for respond_head. */
static void respond_full(http_request *req, int status, const char *body, size_t len, char *owned)
{
	if (req->det) {
		detached_finish(req, status, body, len);
		free(owned);
		return;
	}
	http_conn *c = req->conn;
	if (req->responded) {
		log_error("BUG: second answer to one request ignored");
		free(owned);
		return;
	}
	req->responded = true;
	if (c->state != CONN_HANDLING && c->state != CONN_STREAMING && !req->h2) {
		log_error("BUG: answer outside of a request ignored");
		free(owned);
		return;
	}
	if ((c->bev || req->h2) && respond_over_budget(req, status, len)) {
		server_note_overload(c->srv, "a large answer to a GET replaced by 503");
		free(owned);
		owned = NULL;
		static const char overloaded[] =
			"{\"error\":{\"code\":\"overloaded\",\"message\":"
			"\"the server holds too much data for clients now; retry later\"}}";
		body = overloaded;
		len = sizeof overloaded - 1;
		status = 503;
		req->close_after = true; /* shed the client too, as the server's own 503s do */
		/* the handler's headers described the answer that is not sent */
		char rid[33];
		util_request_id(rid);
		char lines[160];
		int n = snprintf(lines, sizeof lines,
				 "Content-Type: application/json\r\nRetry-After: %d\r\nX-Request-Id: %s\r\n",
				 HTTP_RETRY_AFTER_S, rid);
		buf_reset(&req->response_head);
		buf_add(&req->response_head, lines, (size_t)n);
		if (c->srv->common_headers)
			buf_adds(&req->response_head, c->srv->common_headers);
		log_request("GET", "(overloaded)", 503, 0, rid);
	}
	if (req->h2) {
		h2_stream_respond(req->h2, status, req->response_head.data, req->response_head.len, body, len,
				  owned);
		return; /* req may be gone */
	}
	if (c->bev) {
		/* answered from on_head: the body was not read, so the connection
		 * cannot be reused */
		if (c->in_on_head)
			req->close_after = true;
		char framing[64];
		bool no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
		if (no_body)
			framing[0] = '\0';
		else
			snprintf(framing, sizeof framing, "Content-Length: %zu\r\n", len);
		bool send_body = !no_body && !req->head_method;
		respond_head(req, status, framing, send_body ? body : NULL, send_body ? len : 0,
			     send_body ? owned : NULL);
		if (!send_body)
			free(owned);
	} else {
		free(owned);
	}
	conn_after_response(c);
}

void http_respond(http_request *req, int status, const char *body, size_t len)
{
	respond_full(req, status, body, len, NULL);
}

void http_respond_take(http_request *req, int status, buf *body)
{
	size_t len = 0;
	char *data = body->len ? buf_take(body, &len) : NULL;
	respond_full(req, status, data, len, data);
}

void http_respond_start(http_request *req, int status)
{
	if (req->det) {
		req->det->stream_status = status;
		return;
	}
	http_conn *c = req->conn;
	if (req->h2) {
		h2_stream_start(req->h2, status, req->response_head.data, req->response_head.len, -1);
		return;
	}
	const http_message *m = http_parser_message(c->parser);
	req->chunked_response = m->version_minor >= 1;
	if (!req->chunked_response)
		req->close_after = true;
	if (c->bev)
		respond_head(req, status, req->chunked_response ? "Transfer-Encoding: chunked\r\n" : "", NULL,
			     0, NULL);
}

void http_respond_start_length(http_request *req, int status, uint64_t length)
{
	http_conn *c = req->conn;
	req->chunked_response = false; /* chunks go out as they are: the length frames them */
	if (req->h2) {
		h2_stream_start(req->h2, status, req->response_head.data, req->response_head.len, (int64_t)length);
		return;
	}
	if (c->bev) {
		char framing[48];
		snprintf(framing, sizeof framing, "Content-Length: %llu\r\n", (unsigned long long)length);
		respond_head(req, status, framing, NULL, 0, NULL);
	}
}

void http_respond_chunk(http_request *req, const char *data, size_t len)
{
	if (req->det) {
		if (buf_add(&req->det->stream, data, len) != 0)
			log_error("a detached streaming answer passed its bound; its end is cut");
		return;
	}
	if (req->h2) {
		h2_stream_chunk(req->h2, data, len, NULL);
		return;
	}
	http_conn *c = req->conn;
	if (!c->bev || len == 0 || req->head_method)
		return;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (req->chunked_response)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, data, len);
	if (req->chunked_response)
		evbuffer_add(out, "\r\n", 2);
}

void http_respond_chunk_take(http_request *req, char *data, size_t len)
{
	if (req->h2) {
		h2_stream_chunk(req->h2, data, len, data);
		return;
	}
	if (req->det || req->chunked_response) { /* (not the S3 GET's path) */
		http_respond_chunk(req, data, len);
		free(data);
		return;
	}
	http_conn *c = req->conn;
	if (!c->bev || len == 0 || req->head_method) {
		free(data);
		return;
	}
	if (evbuffer_add_reference(bufferevent_get_output(c->bev), data, len, free_reference, NULL) != 0)
		free(data); /* as http_respond_chunk: the answer is cut short, the client sees it */
}

void http_request_abort(http_request *req)
{
	if (req->det) {
		detached_finish(req, 0, NULL, 0);
		return;
	}
	http_conn *c = req->conn;
	if (req->responded)
		return;
	req->responded = true;
	if (req->h2) {
		h2_stream_abort(req->h2);
		return;
	}
	conn_cancel_drain(c);
	conn_drop_socket(c);
	conn_after_response(c);
}

void http_respond_end(http_request *req)
{
	if (req->det) {
		detached_finish(req, req->det->stream_status, req->det->stream.data, req->det->stream.len);
		return;
	}
	http_conn *c = req->conn;
	if (req->responded)
		return;
	req->responded = true;
	if (req->h2) {
		h2_stream_end(req->h2);
		return;
	}
	conn_cancel_drain(c);
	if (c->bev && req->chunked_response && !req->head_method)
		evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5);
	conn_after_response(c);
}

/* --- for h2.c (h2.h) --- */

http_request *http__request_new_h2(struct http_conn *c, h2_stream *st)
{
	http_request *req = calloc(1, sizeof *req);
	if (!req)
		return NULL;
	req->conn = c;
	req->h2 = st;
	buf_init(&req->response_head, c->srv->cfg.limits.max_header_bytes);
	const http_message *m = h2_stream_message(st);
	req->head_method = m && strcmp(m->method, "HEAD") == 0;
	return req;
}

void http__request_free_h2(http_request *req)
{
	buf_free(&req->response_head);
	free(req);
}

void http__request_on_head(http_request *req)
{
	http_server *srv = req->conn->srv;
	if (srv->handlers.on_head)
		srv->handlers.on_head(req, srv->handlers.arg);
}

bool http__server_has_on_head(struct http_conn *c)
{
	return c->srv->handlers.on_head != NULL;
}

void http__request_on_request(http_request *req)
{
	http_server *srv = req->conn->srv;
	srv->handlers.on_request(req, srv->handlers.arg);
}

void http__request_dispatch(http_request *req, bool head_done)
{
	http_server *srv = req->conn->srv;
	if (srv->handlers.on_head && !head_done) {
		srv->handlers.on_head(req, srv->handlers.arg);
		if (req->responded)
			return;
	}
	srv->handlers.on_request(req, srv->handlers.arg);
}

void http__conn_h2_answered(struct http_conn *c)
{
	if (!c->bev) {
		if (h2_session_held(c->h2) == 0)
			conn_free(c);
		return;
	}
	conn_h2_timer(c);
}

void http__conn_h2_close(struct http_conn *c)
{
	conn_close(c);
}

void http__conn_account(struct http_conn *c, ssize_t delta)
{
	c->h2_bytes = (size_t)((ssize_t)c->h2_bytes + delta);
	c->srv->buffered = (size_t)((ssize_t)c->srv->buffered + delta);
}

bool http__conn_over_budget(struct http_conn *c)
{
	return server_over_budget(c->srv);
}

void http__conn_note_overload(struct http_conn *c, const char *what)
{
	server_note_overload(c->srv, what);
}

const char *http__conn_date(struct http_conn *c)
{
	return server_date(c->srv);
}

const char *http__conn_common_headers(struct http_conn *c)
{
	return c->srv->common_headers;
}

const char *http__conn_peer(struct http_conn *c)
{
	return c->peer;
}

struct event_base *http__conn_base(struct http_conn *c)
{
	return c->srv->base;
}
