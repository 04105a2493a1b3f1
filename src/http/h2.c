/*
 * h2.c - HTTP/2 server sessions over nghttp2 (h2.h).
 *
 * Stream life (one h2_stream per client stream):
 *
 *   HEADERS --> RECEIVING --(END_STREAM)--> QUEUED --(dispatch)--> HELD
 *      |            |  (431/413/503: an error answer is QUEUED)    |
 *      |            v                                 handler answers
 *      |        (client resets: freed)                             v
 *      |                                                       ANSWERED
 *      v                                                           |
 *   (over H2_MAX_STREAMS_HELD: REFUSED_STREAM, no h2_stream)   nghttp2 closes
 *                                                                  v
 *                                                                freed
 *
 * The states are the flags queued / held / ng_closed: a stream is freed
 * (stream_release) exactly when it is neither queued nor held and nghttp2
 * no longer knows it. A stream nghttp2 closed while HELD (client reset,
 * peer gone) stays until the handler answers; its answer is dropped.
 *
 * Streamed request bodies (http_request_stream_body): a stream whose
 * HEADERS came without END_STREAM runs the server's on_head at once (its
 * head parsed alone, Content-Length as announced or chunked when none);
 * when the handler chooses streaming, on_request runs too and the DATA
 * that follow go to its on_data from session_deliver (outside nghttp2),
 * then on_end. Otherwise the body is collected and on_request runs at
 * END_STREAM as before (on_head is not run again, unless the length was
 * not announced: then it runs again with the length). Flow control is ours
 * (no automatic WINDOW_UPDATE): the connection's window is given back as
 * DATA arrive, a stream's once its bytes were handed on (collected, or
 * given to on_data while not paused), so a paused stream holds at most
 * one stream window (H2_UPLOAD_WINDOW for a streamed body: one of 256 KiB
 * held a fast upload to 256 KiB per turn of the loop, 47 MB/s; with 1 MiB,
 * 112 MB/s, about what HTTP/1.1 does).
 *
 * A stream answered before its body's end (in on_head, or early while
 * streamed) lingers: its DATA are dropped (windows given back) for
 * H2_LINGER_MS after the answer's END_STREAM, then RST_STREAM(NO_ERROR)
 * unless the client ended it meanwhile (a client still sending sees the
 * answer: curl 7.88 took an immediate reset as an error). A body that
 * failed (over the bound, too slow) is reset right after the answer.
 *
 * Invariants: handlers run only from session_dispatch and session_deliver, after
 * nghttp2_session_mem_recv returned, never inside an nghttp2 callback;
 * nghttp2_session_send runs only outside callbacks (s->in_ng guards it);
 * s->held == number of HELD streams; every byte of a request body or of
 * an answer waiting in st->out is counted in the server's buffered total
 * (http__conn_account), and released when the stream goes.
 *
 * Output is bounded twice: frames go to the socket's evbuffer only while
 * it holds less than H2_OUTPUT_HIGH (send callbacks answer WOULDBLOCK),
 * and answers wait in their stream (st->out) where a streaming producer
 * sees http_request_output_room(). A client that keeps its flow-control
 * window shut while answers wait is closed after write_timeout_ms (the
 * stall timer); one that does not read the socket at all meets the
 * bufferevent's write timeout, as over HTTP/1.1.
 */
#include "http/h2.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#define H2_SESSION_MAGIC 0x48325345u /* "H2SE" */
#define H2_STREAM_MAGIC 0x48325354u  /* "H2ST" */
#define H2_REQUEST_LINE_MAX 512      /* slack over max_header_bytes for the request line */

struct h2_stream {
	unsigned magic;
	h2_session *s;
	int32_t id;
	http_request *req;      /* from dispatch on */
	http_parser *parser;    /* the request, parsed */
	buf head;               /* "name: value\r\n" of regular fields */
	buf cookie;             /* cookie fields joined with "; " (RFC 9113 8.2.3) */
	char method[24];
	buf path;
	buf authority;
	buf host;               /* a host field, checked against :authority */
	buf body;
	size_t header_bytes;    /* RFC 9113 accounting: name + value + 32 each */
	bool had_content_length;
	int64_t announced_length; /* its value (-1: none, or not a number) */
	int error_status;       /* answer this instead of running the handler */
	const char *error_code, *error_message;
	bool head_method;
	bool queued, held, ng_closed, dispatched;
	bool in_dispatch;       /* its handler runs now: not freed meanwhile */
	bool responding;        /* a data provider is attached */
	bool ended;             /* the answer's last byte is in out */
	bool reset_after;       /* RST_STREAM(NO_ERROR) once the answer went (body unread) */
	bool linger;            /* answered before its body's end (the body is fine): the rest
				 * is read and dropped for H2_LINGER_MS after the answer, then
				 * RST_STREAM(NO_ERROR) (a client still sending sees the answer) */
	struct event *linger_timer;
	bool end_stream;        /* the request's END_STREAM came */
	bool head_dispatched;   /* on_head ran before the body */
	bool in_on_head;
	/* a streamed body */
	bool streaming, body_paused, body_reported;
	int body_error;         /* ERR_LIMIT, ERR_AGAIN: to report */
	uint64_t body_max, body_received;
	http_body_data_fn body_data;
	http_body_end_fn body_end;
	void *body_arg;
	struct event *body_timer;
	size_t unconsumed;      /* bytes of this stream's window to give back */
	struct evbuffer *out;   /* the answer's body not yet framed */
	size_t accounted;       /* body.len, the parsed body and out's length, as last counted */
	size_t out_accounted;   /* out's length, as last counted in s->pending */
	http_drain_fn drain_fn;
	void *drain_arg;
	struct event *drain_event;
	h2_stream *prev, *next; /* all streams of the session */
	h2_stream *queue_next;  /* the dispatch queue */
};

struct h2_session {
	unsigned magic;
	struct http_conn *c;
	struct bufferevent *bev; /* NULL once the peer is gone */
	const http_server_config *cfg;
	nghttp2_session *ng;     /* NULL once the peer is gone */
	h2_stream *streams;
	int nstreams;
	int held;
	h2_stream *queue_head, *queue_tail;
	bool in_ng;              /* inside nghttp2 (callbacks may run) */
	bool going_away;
	bool broken;             /* nghttp2 gave up (callback failure): close */
	bool data_sent;          /* a DATA frame went out during this flush */
	size_t pending;          /* bytes in the streams' out buffers */
	buf wbuf;                /* the frames of one flush, added to the socket's output
				  * in one piece (one TLS record where they fit, not one per
				  * frame) */
	struct event *stall_timer;
	struct event *deliver_ev; /* session_deliver from the loop (resume, peer gone) */
	size_t conn_unconsumed;  /* bytes of the connection's window to give back */
};

static void session_flush(h2_session *s);
static void deliver_cb(evutil_socket_t fd, short what, void *arg);
static void linger_cb(evutil_socket_t fd, short what, void *arg);

/* --- streams --- */

static size_t max_unsent(const h2_session *s)
{
	return s->cfg->max_unsent_bytes ? s->cfg->max_unsent_bytes : 1024 * 1024;
}

/* Keep the server's total (and the session's pending) in step with what st
 * holds. */
static void stream_account(h2_stream *st)
{
	size_t out_len = evbuffer_get_length(st->out), parsed = 0;
	if (st->parser) /* the request's body, once parsed, until the stream goes */
		http_parser_body(st->parser, &parsed);
	size_t now = st->body.len + parsed + out_len;
	http__conn_account(st->s->c, (ssize_t)now - (ssize_t)st->accounted);
	st->s->pending = st->s->pending - st->out_accounted + out_len;
	st->accounted = now;
	st->out_accounted = out_len;
}

/* evbuffer_add_reference's cleanup: a body handed over is sent or dropped. */
static void free_reference(const void *data, size_t len, void *extra)
{
	free((void *)data);
}

static void stream_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	h2_stream *st = arg;
	http_drain_fn fn = st->drain_fn;
	void *farg = st->drain_arg;
	st->drain_fn = NULL;
	st->drain_arg = NULL;
	if (fn && st->held)
		fn(st->req, farg);
}

static void stream_wake_producer(h2_stream *st)
{
	if (st->drain_fn && st->drain_event)
		event_active(st->drain_event, EV_TIMEOUT, 1);
}

static h2_stream *stream_new(h2_session *s, int32_t id)
{
	h2_stream *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	st->magic = H2_STREAM_MAGIC;
	st->s = s;
	st->id = id;
	size_t max_head = s->cfg->limits.max_header_bytes;
	buf_init(&st->head, max_head);
	buf_init(&st->cookie, max_head);
	buf_init(&st->path, max_head);
	buf_init(&st->authority, 256);
	buf_init(&st->host, 256);
	buf_init(&st->body, s->cfg->limits.max_body_bytes ? s->cfg->limits.max_body_bytes : 1);
	st->announced_length = -1;
	st->out = evbuffer_new();
	if (!st->out) {
		free(st);
		return NULL;
	}
	st->next = s->streams;
	if (s->streams)
		s->streams->prev = st;
	s->streams = st;
	s->nstreams++;
	return st;
}

/* Free st if nothing refers to it any more (see the design block). */
static void stream_release(h2_stream *st)
{
	if (st->queued || st->held || !st->ng_closed || st->in_dispatch)
		return;
	h2_session *s = st->s;
	s->pending -= st->out_accounted;
	http__conn_account(s->c, -(ssize_t)st->accounted);
	if (st->prev)
		st->prev->next = st->next;
	else
		s->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	s->nstreams--;
	if (st->drain_event)
		event_free(st->drain_event);
	if (st->body_timer)
		event_free(st->body_timer);
	if (st->linger_timer)
		event_free(st->linger_timer);
	if (st->req)
		http__request_free_h2(st->req);
	http_parser_free(&st->parser);
	buf_free(&st->head);
	buf_free(&st->cookie);
	buf_free(&st->path);
	buf_free(&st->authority);
	buf_free(&st->host);
	buf_free(&st->body);
	evbuffer_free(st->out);
	st->magic = 0;
	free(st);
}

static void stream_fail(h2_stream *st, int status, const char *code, const char *message)
{
	if (st->error_status)
		return;
	st->error_status = status;
	st->error_code = code;
	st->error_message = message;
}

static void queue_push(h2_session *s, h2_stream *st)
{
	if (st->queued || st->dispatched)
		return;
	st->queued = true;
	st->queue_next = NULL;
	if (s->queue_tail)
		s->queue_tail->queue_next = st;
	else
		s->queue_head = st;
	s->queue_tail = st;
}

/* --- nghttp2 callbacks: they only record --- */

/* What is queued for the socket: its output and this flush's frames. */
static size_t session_queued(const h2_session *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev)) + s->wbuf.len;
}

static ssize_t send_cb(nghttp2_session *ng, const uint8_t *data, size_t length, int flags, void *user_data)
{
	h2_session *s = user_data;
	if (!s->bev)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (session_queued(s) >= H2_OUTPUT_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	if (buf_add(&s->wbuf, data, length) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return (ssize_t)length;
}

/* A DATA frame of st->out (at most SETTINGS_MAX_FRAME_SIZE, 16 KiB by
 * default): its header and bytes join the flush's frames. */
static int send_data_cb(nghttp2_session *ng, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
			nghttp2_data_source *source, void *user_data)
{
	h2_session *s = user_data;
	h2_stream *st = source->ptr;
	if (!s->bev)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (session_queued(s) >= H2_OUTPUT_HIGH)
		return NGHTTP2_ERR_WOULDBLOCK;
	size_t mark = s->wbuf.len;
	unsigned char *bytes = length ? evbuffer_pullup(st->out, (ev_ssize_t)length) : NULL;
	if ((length && !bytes) || buf_add(&s->wbuf, framehd, 9) != 0 ||
	    (length && buf_add(&s->wbuf, bytes, length) != 0)) {
		s->wbuf.len = mark;
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	evbuffer_drain(st->out, length);
	s->data_sent = true;
	stream_account(st);
	if (st->drain_fn && evbuffer_get_length(st->out) <= max_unsent(s) / 2)
		stream_wake_producer(st);
	return 0;
}

static ssize_t data_read_cb(nghttp2_session *ng, int32_t stream_id, uint8_t *b, size_t length,
			    uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
	h2_stream *st = source->ptr;
	size_t avail = evbuffer_get_length(st->out);
	if (avail == 0 && !st->ended)
		return NGHTTP2_ERR_DEFERRED;
	size_t n = avail < length ? avail : length;
	*data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
	if (st->ended && n == avail)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int on_begin_headers_cb(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data)
{
	h2_session *s = user_data;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (s->nstreams >= H2_MAX_STREAMS_HELD || s->going_away) {
		/* streams reset by the client while handlers work on them count:
		 * a rapid-reset client cannot start unbounded work */
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
		return 0;
	}
	h2_stream *st = stream_new(s, frame->hd.stream_id);
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
	nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, st);
	return 0;
}

static bool name_is(const uint8_t *name, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(name, lit, len) == 0;
}

static int on_header_cb(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
			const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
	h2_session *s = user_data;
	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* trailers are dropped */
	h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
	if (!st || st->error_status)
		return 0;
	st->header_bytes += namelen + valuelen + 32;
	if (st->header_bytes > s->cfg->limits.max_header_bytes) {
		stream_fail(st, 431, "headers_too_large", "header section too large");
		return 0;
	}
	int rc = 0;
	if (namelen && name[0] == ':') {
		/* nghttp2 checked presence, order and duplicates (RFC 9113 8.3) */
		if (name_is(name, namelen, ":method")) {
			if (valuelen >= sizeof st->method)
				stream_fail(st, 501, "not_implemented", "unknown method");
			else
				snprintf(st->method, sizeof st->method, "%.*s", (int)valuelen, (const char *)value);
		} else if (name_is(name, namelen, ":path")) {
			rc = buf_add(&st->path, value, valuelen);
		} else if (name_is(name, namelen, ":authority")) {
			rc = buf_add(&st->authority, value, valuelen);
		}
		/* :scheme is not carried over: the server knows its own */
	} else if (name_is(name, namelen, "cookie")) {
		if (st->cookie.len)
			rc = buf_add(&st->cookie, "; ", 2);
		rc |= buf_add(&st->cookie, value, valuelen);
	} else if (name_is(name, namelen, "host")) {
		buf_reset(&st->host);
		rc = buf_add(&st->host, value, valuelen);
	} else if (name_is(name, namelen, "content-length")) {
		st->had_content_length = true; /* nghttp2 checks it against the DATA */
		int64_t v = 0;
		bool ok = valuelen > 0 && valuelen <= 18;
		for (size_t i = 0; ok && i < valuelen; i++) {
			ok = value[i] >= '0' && value[i] <= '9';
			v = v * 10 + (value[i] - '0');
		}
		st->announced_length = ok ? v : -1;
	} else if (name_is(name, namelen, "te")) {
		/* "trailers" only (nghttp2 checked): hop-by-hop, not passed on */
	} else {
		rc = buf_printf(&st->head, "%.*s: %.*s\r\n", (int)namelen, (const char *)name, (int)valuelen,
				(const char *)value);
	}
	if (rc != 0)
		stream_fail(st, 431, "headers_too_large", "header section too large");
	return 0;
}

static int on_data_chunk_cb(nghttp2_session *ng, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
			    void *user_data)
{
	h2_session *s = user_data;
	h2_stream *st = nghttp2_session_get_stream_user_data(ng, stream_id);
	s->conn_unconsumed += len;
	if (st)
		st->unconsumed += len; /* given back in session_deliver (a streamed one: once handed on) */
	if (st && st->streaming) {
		if (!st->held || st->body_error || st->body_reported)
			return 0; /* answered already, or failed: dropped */
		st->body_received += len;
		st->unconsumed -= len; /* not before on_data had them */
		if (st->body_received > st->body_max) {
			st->body_error = ERR_LIMIT;
			st->unconsumed += len;
		} else if (buf_add(&st->body, data, len) != 0) { /* cannot happen: flow control bounds it */
			log_error("HTTP/2 connection from %s: a streamed body passed its window", http__conn_peer(s->c));
			st->body_error = ERR_LIMIT;
			st->unconsumed += len;
		}
		stream_account(st);
		return 0;
	}
	if (!st || st->error_status || st->dispatched)
		return 0; /* discarded (its window is given back all the same) */
	if (http__conn_over_budget(s->c)) {
		http__conn_note_overload(s->c, "an HTTP/2 request body refused with 503");
		stream_fail(st, 503, "overloaded", "the server holds too much data for clients now; retry later");
	} else if (buf_add(&st->body, data, len) != 0) {
		stream_fail(st, 413, "payload_too_large", "request body too large");
	}
	if (st->error_status) {
		buf_free(&st->body);
		st->reset_after = true;
		queue_push(s, st);
	}
	stream_account(st);
	return 0;
}

static int on_frame_recv_cb(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data)
{
	h2_session *s = user_data;
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
	if (!st)
		return 0;
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
		st->end_stream = true;
		queue_push(s, st);
	} else if (st->error_status && frame->hd.type == NGHTTP2_HEADERS) {
		st->reset_after = true; /* answered before its body: reset it after */
		queue_push(s, st);
	} else if (frame->hd.type == NGHTTP2_HEADERS && http__server_has_on_head(s->c)) {
		queue_push(s, st); /* on_head before the body: it may stream it */
	}
	return 0;
}

static int on_frame_send_cb(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data)
{
	if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)) {
		h2_stream *st = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
		h2_session *s = user_data;
		if (st && st->reset_after) {
			nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
		} else if (st && st->linger && !st->ng_closed) {
			/* the rest of the body is dropped (its window given back) for a while */
			if (!st->linger_timer)
				st->linger_timer = evtimer_new(http__conn_base(s->c), linger_cb, st);
			struct timeval tv = util_timeval_ms(H2_LINGER_MS);
			if (!st->linger_timer || evtimer_add(st->linger_timer, &tv) != 0)
				nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
		}
	}
	return 0;
}

static int on_stream_close_cb(nghttp2_session *ng, int32_t stream_id, uint32_t error_code, void *user_data)
{
	h2_session *s = user_data;
	h2_stream *st = nghttp2_session_get_stream_user_data(ng, stream_id);
	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(ng, stream_id, NULL);
	st->ng_closed = true;
	if (st->held)
		stream_wake_producer(st); /* it sees http_request_is_closed() */
	if (st->held && st->streaming && !st->body_reported)
		event_active(s->deliver_ev, EV_TIMEOUT, 1); /* its on_end hears it */
	stream_release(st);
	return 0;
}

/* --- the session --- */

static void stall_cb(evutil_socket_t fd, short what, void *arg)
{
	h2_session *s = arg;
	log_debug("closing HTTP/2 connection from %s: its flow-control window stayed shut", http__conn_peer(s->c));
	http__conn_h2_close(s->c);
}

h2_session *h2_session_new(struct http_conn *c, struct bufferevent *bev, const http_server_config *cfg)
{
	h2_session *s = calloc(1, sizeof *s);
	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	if (!s)
		return NULL;
	s->magic = H2_SESSION_MAGIC;
	s->c = c;
	s->bev = bev;
	s->cfg = cfg;
	buf_init(&s->wbuf, H2_OUTPUT_HIGH + 64 * 1024);
	s->stall_timer = evtimer_new(http__conn_base(c), stall_cb, s);
	s->deliver_ev = event_new(http__conn_base(c), -1, 0, deliver_cb, s);
	if (!s->stall_timer || !s->deliver_ev || nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
		goto fail;
	nghttp2_session_callbacks_set_send_callback(cb, send_cb);
	nghttp2_session_callbacks_set_send_data_callback(cb, send_data_cb);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers_cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header_cb);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk_cb);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv_cb);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send_cb);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close_cb);
	/* the attacks of 2023-24 cost bounded work: rapid reset (at most a
	 * burst of 1000 then 33 resets/s, else GOAWAY), CONTINUATION floods
	 * (8 frames per header block), queued control frames (ACKs of PING and
	 * SETTINGS: 1000), SETTINGS entries (32) */
	nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
	nghttp2_option_set_max_continuations(opt, 8);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	nghttp2_option_set_max_settings(opt, 32);
	nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
	nghttp2_option_set_no_auto_window_update(opt, 1); /* ours: streamed bodies (design block) */
	if (nghttp2_session_server_new2(&s->ng, cb, s, opt) != 0)
		goto fail;
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	cb = NULL;
	opt = NULL;
	nghttp2_settings_entry settings[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_CONCURRENT_STREAMS},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_INITIAL_WINDOW},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)cfg->limits.max_header_bytes},
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	};
	if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, settings, sizeof settings / sizeof settings[0]) != 0)
		goto fail;
	/* the connection's window (65535 by default) would hold uploads on
	 * several streams to one window per round trip; what it lets in is
	 * bounded anyway by max_body_bytes per stream and max_buffered_bytes */
	if (nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, H2_CONNECTION_WINDOW) != 0)
		goto fail;
	bufferevent_setwatermark(bev, EV_WRITE, H2_OUTPUT_LOW, 0);
	return s;
fail:
	if (cb)
		nghttp2_session_callbacks_del(cb);
	if (opt)
		nghttp2_option_del(opt);
	h2_session_free(&s);
	return NULL;
}

void h2_session_free(h2_session **ps)
{
	h2_session *s = *ps;
	if (!s)
		return;
	if (s->ng)
		nghttp2_session_del(s->ng); /* calls no stream-close callback */
	s->ng = NULL;
	while (s->streams) {
		h2_stream *st = s->streams;
		st->queued = st->held = false;
		st->ng_closed = true;
		stream_release(st);
	}
	if (s->stall_timer)
		event_free(s->stall_timer);
	if (s->deliver_ev)
		event_free(s->deliver_ev);
	buf_free(&s->wbuf);
	s->magic = 0;
	free(s);
	*ps = NULL;
}

/* The HTTP/1.1 head of the request into head, framed by framing (a
 * Content-Length or Transfer-Encoding line, or ""). 0, or an error
 * recorded in st. */
static int stream_build_head(h2_session *s, h2_stream *st, buf *head, const char *framing)
{
	if (st->host.len && st->authority.len &&
	    (st->host.len != st->authority.len || strncasecmp(st->host.data, st->authority.data, st->host.len) != 0)) {
		stream_fail(st, 400, "bad_request", ":authority and host differ");
		return -1;
	}
	const buf *host = st->authority.len ? &st->authority : &st->host;
	buf_init(head, s->cfg->limits.max_header_bytes + H2_REQUEST_LINE_MAX);
	int rc = buf_printf(head, "%s %.*s HTTP/1.1\r\n", st->method, (int)st->path.len,
			    st->path.data ? st->path.data : "");
	if (host->len)
		rc |= buf_printf(head, "Host: %.*s\r\n", (int)host->len, host->data);
	if (st->head.len)
		rc |= buf_add(head, st->head.data, st->head.len);
	if (st->cookie.len)
		rc |= buf_printf(head, "cookie: %.*s\r\n", (int)st->cookie.len, st->cookie.data);
	rc |= buf_adds(head, framing);
	rc |= buf_add(head, "\r\n", 2);
	if (rc != 0) {
		buf_free(head);
		stream_fail(st, 431, "headers_too_large", "header section too large");
		return -1;
	}
	return 0;
}

/* The error recorded by a failed parse of st's request. */
static void stream_parse_failed(h2_stream *st)
{
	int status = http_parser_error_status(st->parser);
	stream_fail(st, status, status == 431 ? "headers_too_large" : status == 414 ? "uri_too_long"
				: status == 501 ? "not_implemented" : status == 413 ? "payload_too_large"
				: "bad_request",
		    http_parser_error(st->parser));
}

/* The head alone (its body to come, maybe streamed): parsed with the
 * server's limits, framed as announced (Content-Length, else chunked). 0,
 * or an error recorded in st. */
static int stream_parse_head(h2_session *s, h2_stream *st)
{
	char framing[64] = "Transfer-Encoding: chunked\r\n";
	if (st->announced_length >= 0)
		snprintf(framing, sizeof framing, "Content-Length: %lld\r\n", (long long)st->announced_length);
	buf head;
	if (stream_build_head(s, st, &head, framing) != 0)
		return -1;
	http_limits limits = s->cfg->limits;
	limits.max_header_bytes += H2_REQUEST_LINE_MAX;
	st->parser = http_parser_new(HTTP_REQUEST, &limits);
	if (!st->parser) {
		buf_free(&head);
		stream_fail(st, 503, "overloaded", "out of memory");
		return -1;
	}
	size_t used = 0;
	int prc = http_parser_feed(st->parser, head.data, head.len, &used);
	buf_free(&head);
	if (prc < 0) {
		stream_parse_failed(st);
		return -1;
	}
	if (prc != HTTP_PARSE_HEAD) {
		stream_fail(st, 400, "bad_request", "incomplete request");
		return -1;
	}
	return 0;
}

/* Build the HTTP/1.1 form of the request and parse it with the server's
 * parser and limits. 0, or an error recorded in st. */
static int stream_parse(h2_session *s, h2_stream *st)
{
	char framing[48] = "";
	if (st->body.len || st->had_content_length)
		snprintf(framing, sizeof framing, "Content-Length: %zu\r\n", st->body.len);
	buf head;
	if (stream_build_head(s, st, &head, framing) != 0)
		return -1;
	http_parser_free(&st->parser); /* the head's alone, parsed before the body */
	http_limits limits = s->cfg->limits;
	limits.max_header_bytes += H2_REQUEST_LINE_MAX;
	limits.max_body_bytes = st->body.len;
	st->parser = http_parser_new(HTTP_REQUEST, &limits);
	if (!st->parser) {
		buf_free(&head);
		stream_fail(st, 503, "overloaded", "out of memory");
		return -1;
	}
	const char *parts[2] = {head.data, st->body.data};
	size_t lens[2] = {head.len, st->body.len};
	int prc = HTTP_PARSE_MORE;
	for (int i = 0; i < 2 && prc >= 0 && prc != HTTP_PARSE_DONE; i++) {
		if (!parts[i])
			break; /* no body: the head alone must have been complete */
		size_t off = 0;
		do {
			size_t used = 0;
			prc = http_parser_feed(st->parser, parts[i] + off, lens[i] - off, &used);
			off += used;
		} while (prc == HTTP_PARSE_HEAD || (prc == HTTP_PARSE_MORE && off < lens[i]));
	}
	buf_free(&head);
	buf_free(&st->body); /* the parser holds its copy */
	stream_account(st);
	if (prc < 0) {
		stream_parse_failed(st);
		return -1;
	}
	if (prc != HTTP_PARSE_DONE) {
		stream_fail(st, 400, "bad_request", "incomplete request");
		return -1;
	}
	return 0;
}

/* An answer made here (parse errors, limits), never seen by handlers. */
static void stream_error_answer(h2_session *s, h2_stream *st)
{
	char rid[33];
	util_request_id(rid);
	buf body;
	buf_init(&body, 1024);
	buf_printf(&body, "{\"error\":{\"code\":\"%s\",\"message\":\"", st->error_code);
	buf_add_json_escaped(&body, st->error_message, strlen(st->error_message));
	buf_adds(&body, "\"}}");
	buf head;
	buf_init(&head, 4096);
	buf_printf(&head, "Content-Type: application/json\r\nX-Request-Id: %s\r\n", rid);
	if (st->error_status == 503)
		buf_adds(&head, "Retry-After: 1\r\n");
	const char *common = http__conn_common_headers(s->c);
	if (common)
		buf_adds(&head, common);
	log_request(st->method[0] ? st->method : "-", "(protocol error)", st->error_status, 0, rid);
	st->held = true; /* as if a handler held it, so h2_stream_respond applies */
	s->held++;
	size_t len = 0;
	char *owned = body.len ? buf_take(&body, &len) : NULL;
	h2_stream_respond(st, st->error_status, head.data ? head.data : "", head.len, owned, len, owned);
	buf_free(&head);
	buf_free(&body);
}

static int body_timeout_ms(const h2_session *s)
{
	return s->cfg->body_timeout_ms ? s->cfg->body_timeout_ms : s->cfg->idle_timeout_ms;
}

/* A stream's head came without its body: on_head now, which may stream the
 * body (then on_request too); else the body is collected and on_request
 * runs at its end (session_dispatch). A head that fails to parse is
 * answered at once, the stream reset after. */
static void stream_head_dispatch(h2_session *s, h2_stream *st)
{
	st->head_dispatched = true;
	bool bodiless = st->announced_length == 0 || strcmp(st->method, "GET") == 0 || strcmp(st->method, "HEAD") == 0;
	if (!bodiless && http__conn_over_budget(s->c)) {
		/* as a new HTTP/1.1 request with a body: refused before it holds more (a streamed
		 * body holds up to one H2_UPLOAD_WINDOW while paused, and a connection has many) */
		http__conn_note_overload(s->c, "an HTTP/2 request body refused with 503");
		stream_fail(st, 503, "overloaded", "the server holds too much data for clients now; retry later");
	} else if (stream_parse_head(s, st) == 0 && !(st->req = http__request_new_h2(s->c, st))) {
		stream_fail(st, 503, "overloaded", "out of memory");
	}
	if (st->error_status) {
		st->dispatched = true;
		st->reset_after = true;
		stream_error_answer(s, st);
		return;
	}
	st->head_method = strcmp(st->method, "HEAD") == 0;
	st->held = true;
	s->held++;
	st->in_dispatch = true;
	st->in_on_head = true;
	st->linger = true; /* answered here: the body is read and dropped for a while */
	http__request_on_head(st->req);
	st->in_on_head = false;
	if (!st->held) { /* answered */
		st->dispatched = true;
	} else if (st->streaming) {
		st->linger = false;
		st->dispatched = true;
		struct timeval tv = util_timeval_ms(body_timeout_ms(s));
		if (st->body_timer)
			evtimer_add(st->body_timer, &tv);
		http__request_on_request(st->req);
	} else { /* collected: the handler holds it from its end on */
		st->linger = false;
		st->held = false;
		s->held--;
	}
	st->in_dispatch = false;
	stream_release(st);
}

/* A streamed body's bytes to on_data (not while paused), then its end or
 * failure to on_end, once. */
static void stream_deliver(h2_stream *st)
{
	bool closed = h2_stream_closed(st);
	if (st->body.len && !st->body_paused && !st->body_error && !closed) {
		size_t n = st->body.len;
		st->body_data(st->req, st->body_arg, st->body.data, n);
		st->unconsumed += n;
		buf_reset(&st->body);
		stream_account(st);
		if (st->body_timer && !st->body_paused && st->held) {
			struct timeval tv = util_timeval_ms(body_timeout_ms(st->s));
			evtimer_add(st->body_timer, &tv); /* inactivity restarts */
		}
	}
	if (!st->held || st->body_reported)
		return;
	int rc;
	if (st->body_error)
		rc = st->body_error;
	else if (closed)
		rc = ERR_IO;
	else if (st->end_stream && st->body.len == 0)
		rc = 0;
	else
		return;
	st->body_reported = true;
	if (st->body_timer)
		evtimer_del(st->body_timer);
	if (rc != 0)
		st->reset_after = true; /* the rest is not read */
	buf_free(&st->body);
	stream_account(st);
	st->body_end(st->req, st->body_arg, rc);
}

/* Streamed bodies to their handlers; flow-control windows given back (a
 * paused stream's are withheld). The caller makes sure the session
 * survives (a pseudo-hold here: handlers answering do not free it). */
static void session_deliver(h2_session *s)
{
	s->held++;
	h2_stream *st = s->streams;
	while (st) {
		st->in_dispatch = true;
		if (st->streaming && st->held && !st->body_reported)
			stream_deliver(st);
		bool withheld = st->streaming && st->body_paused && st->held && !st->body_reported;
		if (s->ng && st->unconsumed && !withheld && !st->ng_closed) {
			nghttp2_session_consume_stream(s->ng, st->id, st->unconsumed);
			st->unconsumed = 0;
		}
		st->in_dispatch = false;
		h2_stream *next = st->next;
		stream_release(st);
		st = next;
	}
	if (s->ng && s->conn_unconsumed) {
		nghttp2_session_consume_connection(s->ng, s->conn_unconsumed);
		s->conn_unconsumed = 0;
	}
	s->held--;
	session_flush(s);
}

/* session_deliver from the loop (a resume, a peer gone, a stream reset). */
static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	h2_session *s = arg;
	struct http_conn *c = s->c;
	session_deliver(s);
	http__conn_h2_answered(c); /* last: may free the connection and s */
}

/* A lingering stream's time is up: reset (NO_ERROR), its body unread. */
static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
	h2_stream *st = arg;
	h2_session *s = st->s;
	struct http_conn *c = s->c;
	if (s->ng && !st->ng_closed)
		nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
	session_flush(s); /* may release st */
	http__conn_h2_answered(c); /* last: may free the connection and s */
}

static void body_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	h2_stream *st = arg;
	h2_session *s = st->s;
	struct http_conn *c = s->c;
	if (!st->body_reported && !st->body_error)
		st->body_error = ERR_AGAIN;
	session_deliver(s);
	http__conn_h2_answered(c); /* last: may free the connection and s */
}

/* Run the handlers of the streams that completed (outside nghttp2). */
static void session_dispatch(h2_session *s)
{
	while (s->queue_head && s->ng) {
		h2_stream *st = s->queue_head;
		s->queue_head = st->queue_next;
		if (!s->queue_head)
			s->queue_tail = NULL;
		st->queued = false;
		if (!st->ng_closed && !st->end_stream && !st->error_status) {
			if (!st->head_dispatched)
				stream_head_dispatch(s, st);
			continue;
		}
		st->dispatched = true;
		if (st->ng_closed) { /* reset by the client meanwhile */
			stream_release(st);
			continue;
		}
		if (!st->error_status)
			stream_parse(s, st);
		if (st->error_status) {
			stream_error_answer(s, st);
			continue;
		}
		st->head_method = strcmp(st->method, "HEAD") == 0;
		if (!st->req)
			st->req = http__request_new_h2(s->c, st);
		if (!st->req) {
			stream_fail(st, 503, "overloaded", "out of memory");
			stream_error_answer(s, st);
			continue;
		}
		st->held = true;
		s->held++;
		st->in_dispatch = true;
		/* on_head ran before the body; again when the length was not announced
		 * then (it saw chunked framing): now with the length */
		http__request_dispatch(st->req, st->head_dispatched && st->announced_length >= 0);
		st->in_dispatch = false;
		stream_release(st); /* if it was answered and closed meanwhile */
	}
}

/* Queue what nghttp2 has to send, as far as the socket's buffer allows;
 * arm the stall timer when answers wait on a shut window. */
static void session_flush(h2_session *s)
{
	if (!s->ng || !s->bev || s->in_ng)
		return;
	s->data_sent = false;
	s->in_ng = true;
	int rc = nghttp2_session_send(s->ng);
	s->in_ng = false;
	if (s->wbuf.len) {
		if (evbuffer_add(bufferevent_get_output(s->bev), s->wbuf.data, s->wbuf.len) != 0 && rc == 0)
			rc = NGHTTP2_ERR_NOMEM;
		buf_reset(&s->wbuf);
	}
	if (rc != 0) {
		log_debug("HTTP/2 connection from %s: %s", http__conn_peer(s->c), nghttp2_strerror(rc));
		s->broken = true;
		return;
	}
	if (s->data_sent)
		event_del(s->stall_timer);
	size_t queued = evbuffer_get_length(bufferevent_get_output(s->bev));
	if (s->pending && !s->data_sent && queued == 0 && !evtimer_pending(s->stall_timer, NULL)) {
		int ms = s->cfg->write_timeout_ms ? s->cfg->write_timeout_ms : s->cfg->idle_timeout_ms;
		struct timeval tv = util_timeval_ms(ms);
		evtimer_add(s->stall_timer, &tv);
	}
}

int h2_session_read(h2_session *s)
{
	assert(s->magic == H2_SESSION_MAGIC);
	struct evbuffer *in = bufferevent_get_input(s->bev);
	while (s->ng && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		s->in_ng = true;
		ssize_t n = nghttp2_session_mem_recv(s->ng, v.iov_base, v.iov_len);
		s->in_ng = false;
		if (n < 0) {
			log_debug("HTTP/2 connection from %s: %s", http__conn_peer(s->c), nghttp2_strerror((int)n));
			/* say why before closing (a no-op when nghttp2 queued its own) */
			nghttp2_session_terminate_session(s->ng, n == NGHTTP2_ERR_FLOODED ||
									 n == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
								 ? NGHTTP2_ENHANCE_YOUR_CALM
								 : NGHTTP2_PROTOCOL_ERROR);
			session_flush(s);
			return -1;
		}
		evbuffer_drain(in, (size_t)n);
		session_dispatch(s);
		session_deliver(s);
	}
	session_flush(s);
	return h2_session_finished(s) ? -1 : 0;
}

int h2_session_write(h2_session *s)
{
	assert(s->magic == H2_SESSION_MAGIC);
	session_flush(s);
	return h2_session_finished(s) ? -1 : 0;
}

void h2_session_goaway(h2_session *s)
{
	if (!s->ng || s->going_away)
		return;
	s->going_away = true;
	nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
			      NGHTTP2_NO_ERROR, NULL, 0);
	session_flush(s);
}

bool h2_session_finished(const h2_session *s)
{
	if (!s->ng || s->broken)
		return true;
	if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng))
		return true;
	/* after our GOAWAY: done once every stream is and the GOAWAY is out */
	return s->going_away && s->nstreams == 0 && !nghttp2_session_want_write(s->ng);
}

bool h2_session_idle(const h2_session *s)
{
	return s->held == 0 && s->pending == 0 && s->queue_head == NULL;
}

void h2_session_peer_gone(h2_session *s)
{
	assert(s->magic == H2_SESSION_MAGIC);
	s->bev = NULL;
	if (s->ng)
		nghttp2_session_del(s->ng);
	s->ng = NULL;
	event_del(s->stall_timer);
	/* every stream is closed now; those a handler holds stay until answered */
	h2_stream *st = s->streams;
	while (st) {
		h2_stream *next = st->next;
		st->ng_closed = true;
		st->queued = false;
		if (st->held)
			stream_wake_producer(st);
		stream_release(st);
		st = next;
	}
	s->queue_head = s->queue_tail = NULL;
	event_active(s->deliver_ev, EV_TIMEOUT, 1); /* streamed bodies' on_end hear it */
}

int h2_session_held(const h2_session *s)
{
	return s->held;
}

/* --- a request's calls --- */

const http_message *h2_stream_message(const h2_stream *st)
{
	assert(st->magic == H2_STREAM_MAGIC);
	return http_parser_message(st->parser);
}

const char *h2_stream_body(const h2_stream *st, size_t *len)
{
	return http_parser_body(st->parser, len);
}

bool h2_stream_closed(const h2_stream *st)
{
	assert(st->magic == H2_STREAM_MAGIC);
	return st->ng_closed || !st->s || !st->s->ng;
}

size_t h2_stream_pending(const h2_stream *st)
{
	return evbuffer_get_length(st->out);
}

void h2_stream_on_drain(h2_stream *st, http_drain_fn fn, void *arg)
{
	assert(st->magic == H2_STREAM_MAGIC);
	if (!st->drain_event &&
	    !(st->drain_event = event_new(http__conn_base(st->s->c), -1, 0, stream_drain_cb, st))) {
		log_error("cannot wait for an HTTP/2 stream to drain: out of memory; answer cut");
		h2_stream_abort(st);
		return;
	}
	st->drain_fn = fn;
	st->drain_arg = arg;
	if (h2_stream_closed(st) || evbuffer_get_length(st->out) <= max_unsent(st->s) / 2)
		event_active(st->drain_event, EV_TIMEOUT, 1);
}

/* The handler is done with st (answered or aborted). */
static void stream_unhold(h2_stream *st)
{
	h2_session *s = st->s;
	struct http_conn *c = s->c;
	if (!st->held)
		return;
	st->held = false;
	s->held--;
	st->drain_fn = NULL;
	if (st->drain_event)
		event_del(st->drain_event);
	stream_release(st);
	session_flush(s);
	http__conn_h2_answered(c); /* last: may free the connection and s */
}

static bool header_is_hop_by_hop(const char *name, size_t len)
{
	static const char *const hop[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
					  "upgrade", "te"};
	for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
		if (len == strlen(hop[i]) && strncasecmp(name, hop[i], len) == 0)
			return true;
	return false;
}

/* Submit the response head; with_body: a data provider reads st->out. */
static int stream_submit(h2_stream *st, int status, const char *head, size_t head_len, const char *length,
			 bool with_body)
{
	h2_session *s = st->s;
	size_t lines = 0;
	for (size_t i = 0; i < head_len; i++)
		lines += head[i] == '\n';
	nghttp2_nv *nv = calloc(lines + 3, sizeof *nv);
	char *lower = malloc(head_len + 1);
	if (!nv || !lower) {
		free(nv);
		free(lower);
		return -1;
	}
	if (head_len)
		memcpy(lower, head, head_len);
	char status_text[8];
	snprintf(status_text, sizeof status_text, "%d", status);
	size_t n = 0;
	nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status_text, 7, strlen(status_text),
			       NGHTTP2_NV_FLAG_NONE};
	const char *date = http__conn_date(s->c);
	nv[n++] = (nghttp2_nv){(uint8_t *)"date", (uint8_t *)date, 4, strlen(date), NGHTTP2_NV_FLAG_NONE};
	if (length)
		nv[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)length, 14, strlen(length),
				       NGHTTP2_NV_FLAG_NONE};
	/* "Name: value\r\n" lines, validated when added (http_response_header) */
	for (char *p = lower, *end = lower + head_len; p < end && n < lines + 3;) {
		char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			break;
		char *colon = memchr(p, ':', (size_t)(eol - p));
		char *vend = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
		if (colon && colon > p) {
			size_t nlen = (size_t)(colon - p);
			for (size_t i = 0; i < nlen; i++)
				p[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] - 'A' + 'a' : p[i]);
			char *v = colon + 1;
			while (v < vend && (*v == ' ' || *v == '\t'))
				v++;
			bool skip = header_is_hop_by_hop(p, nlen) || (length && nlen == 14 &&
								      memcmp(p, "content-length", 14) == 0);
			if (!skip)
				nv[n++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)v, nlen, (size_t)(vend - v),
						       NGHTTP2_NV_FLAG_NONE};
		}
		p = eol + 1;
	}
	if (st->streaming && !st->body_reported)
		st->linger = true; /* answered before the body's end: the rest is dropped a while */
	nghttp2_data_provider dp = {.source.ptr = st, .read_callback = data_read_cb};
	int rc = nghttp2_submit_response(s->ng, st->id, nv, n, with_body ? &dp : NULL); /* copies nv */
	free(nv);
	free(lower);
	st->responding = with_body && rc == 0;
	return rc == 0 ? 0 : -1;
}

static bool stream_can_answer(const h2_stream *st)
{
	return st->held && !h2_stream_closed(st);
}

void h2_stream_respond(h2_stream *st, int status, const char *head, size_t head_len, const char *body, size_t len,
		       char *owned)
{
	assert(st->magic == H2_STREAM_MAGIC && st->s->magic == H2_SESSION_MAGIC);
	if (!stream_can_answer(st)) {
		free(owned);
		stream_unhold(st);
		return;
	}
	bool no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
	char length[24];
	snprintf(length, sizeof length, "%zu", len);
	bool send_body = !no_body && !st->head_method && len > 0;
	int rc = 0;
	if (send_body) {
		if (owned)
			rc = evbuffer_add_reference(st->out, owned, len, free_reference, NULL);
		else
			rc = evbuffer_add(st->out, body, len);
		if (rc != 0)
			free(owned);
		owned = NULL;
		st->ended = true;
		stream_account(st);
	}
	free(owned);
	if (rc == 0)
		rc = stream_submit(st, status, head, head_len, no_body ? NULL : length, send_body);
	if (rc != 0) {
		log_error("cannot queue an HTTP/2 answer of %zu bytes: out of memory; stream reset", len);
		nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	}
	stream_unhold(st);
}

void h2_stream_start(h2_stream *st, int status, const char *head, size_t head_len, int64_t length)
{
	assert(st->magic == H2_STREAM_MAGIC);
	if (!stream_can_answer(st))
		return;
	char len_text[24];
	if (length >= 0)
		snprintf(len_text, sizeof len_text, "%lld", (long long)length);
	if (stream_submit(st, status, head, head_len, length >= 0 ? len_text : NULL, !st->head_method) != 0) {
		log_error("cannot queue an HTTP/2 answer: out of memory; stream reset");
		nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	}
	session_flush(st->s);
}

void h2_stream_chunk(h2_stream *st, const char *data, size_t len, char *owned)
{
	assert(st->magic == H2_STREAM_MAGIC);
	if (!stream_can_answer(st) || !st->responding || st->head_method || len == 0) {
		free(owned);
		return;
	}
	int rc = owned ? evbuffer_add_reference(st->out, owned, len, free_reference, NULL)
		       : evbuffer_add(st->out, data, len);
	if (rc != 0) {
		free(owned);
		log_error("an HTTP/2 answer lost %zu bytes: out of memory; stream reset", len);
		nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	stream_account(st);
	nghttp2_session_resume_data(st->s->ng, st->id);
	session_flush(st->s);
}

void h2_stream_end(h2_stream *st)
{
	assert(st->magic == H2_STREAM_MAGIC);
	if (stream_can_answer(st) && st->responding) {
		st->ended = true;
		nghttp2_session_resume_data(st->s->ng, st->id);
	}
	stream_unhold(st);
}

void h2_stream_abort(h2_stream *st)
{
	assert(st->magic == H2_STREAM_MAGIC);
	if (stream_can_answer(st))
		nghttp2_submit_rst_stream(st->s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
	stream_unhold(st);
}

int h2_stream_stream_body(h2_stream *st, uint64_t max, http_body_data_fn on_data, http_body_end_fn on_end,
			  void *arg)
{
	assert(st->magic == H2_STREAM_MAGIC);
	if (!st->in_on_head || st->end_stream)
		return ERR_INVAL; /* the body is here already: collected */
	if (!st->body_timer && !(st->body_timer = evtimer_new(http__conn_base(st->s->c), body_timer_cb, st)))
		return ERR_NOMEM;
	/* a larger window for this stream (a fast upload is not held to one 256 KiB window per
	 * round of the loop); at most that is held: it is given back once handed on. First: on
	 * failure nothing is chosen (the handler frees what arg points to) */
	if (nghttp2_session_set_local_window_size(st->s->ng, NGHTTP2_FLAG_NONE, st->id, H2_UPLOAD_WINDOW) != 0)
		return ERR_NOMEM;
	st->streaming = true;
	st->body_max = max;
	st->body_data = on_data;
	st->body_end = on_end;
	st->body_arg = arg;
	st->body_received = st->body.len; /* DATA that came with the head */
	if (st->body_received > max || (st->announced_length >= 0 && (uint64_t)st->announced_length > max))
		st->body_error = ERR_LIMIT; /* an announced length over it too: at once, as over HTTP/1.1 */
	/* (a client that had not acknowledged our SETTINGS yet gets INITIAL_WINDOW's change on
	 * top once it does: hence the sum) */
	size_t most = H2_UPLOAD_WINDOW + H2_INITIAL_WINDOW + 64 * 1024;
	st->body.max = most > st->body.len ? most : st->body.len;
	return 0;
}

void h2_stream_body_pause(h2_stream *st, bool pause)
{
	assert(st->magic == H2_STREAM_MAGIC);
	if (!st->streaming || st->body_reported || st->body_paused == pause)
		return;
	st->body_paused = pause;
	if (pause) {
		evtimer_del(st->body_timer); /* the handler is slow, not the client */
		return;
	}
	struct timeval tv = util_timeval_ms(body_timeout_ms(st->s));
	evtimer_add(st->body_timer, &tv);
	event_active(st->s->deliver_ev, EV_TIMEOUT, 1);
}
