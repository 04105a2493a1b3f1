/*
 * test_h2.c - HTTP/2 on the HTTP server (src/http/h2.c and its seam in
 * server.c), in one process: an nghttp2 client session talks h2c (prior
 * knowledge) to an http_server over a socketpair (http_server_adopt), and
 * the loop is run by hand between the two, so there is no sleep and no
 * port. Covered: a request as handlers see it (:authority as Host, cookies
 * joined, the body), response headers (lowercase, connection-specific ones
 * dropped), the header-list and body limits (431, 413), streaming answers,
 * requests that outlive a reset stream and a vanished peer, GOAWAY on
 * shutdown, streamed request bodies (the stream's window withheld while the
 * handler pauses, the bound, a reset mid-body, inactivity), and the memory
 * accounting back to 0 each time.
 */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "http/server.h"
#include "test.h"

#define MAX_STREAMS 16

static struct event_base *base;
static http_server *srv;
static http_request *held;   /* /hold: not answered yet */
static bool shutdown_done;

/* --- the server side --- */

static void on_request(http_request *req, void *arg)
{
	const http_message *m = http_request_message(req);
	if (strncmp(m->target, "/up", 3) == 0)
		return; /* its body streams: answered in up_end */
	if (strcmp(m->target, "/hold") == 0) {
		held = req;
		return;
	}
	if (strcmp(m->target, "/stream") == 0) {
		http_respond_start(req, 200);
		for (int i = 0; i < 3; i++)
			http_respond_chunk(req, "abc", 3);
		http_respond_end(req);
		return;
	}
	/* /echo: what the handler saw, in headers; the body back */
	size_t hlen = 0, clen = 0;
	const char *host = http_message_field(m, "Host", &hlen);
	const char *cookie = http_message_field(m, "cookie", &clen);
	char value[256];
	snprintf(value, sizeof value, "%.*s", host ? (int)hlen : 1, host ? host : "-");
	http_response_header(req, "X-Host", value);
	snprintf(value, sizeof value, "%.*s", cookie ? (int)clen : 1, cookie ? cookie : "-");
	http_response_header(req, "X-Cookie", value);
	http_response_header(req, "X-Method", m->method);
	http_response_header(req, "Connection", "keep-alive"); /* must not reach an h2 client */
	size_t len = 0;
	const char *body = http_request_body(req, &len);
	http_respond(req, 200, body, len);
}

/* /up*: the body streamed to the handler (http_request_stream_body) */
#define UP_MAX (4u << 20)
static struct {
	http_request *req;
	size_t bytes, during_pause;
	bool paused;
	int ends, end_rc, heads;
} up;

static void up_data(http_request *req, void *arg, const char *data, size_t len)
{
	up.bytes += len;
	if (up.paused)
		up.during_pause += len;
	if (strcmp(http_request_message(req)->target, "/up-pause") == 0 && !up.paused && up.bytes >= 1000) {
		up.paused = true; /* the test resumes */
		http_request_body_pause(req);
	}
}

static void up_end(http_request *req, void *arg, int rc)
{
	up.ends++;
	up.end_rc = rc;
	char out[32];
	int n = snprintf(out, sizeof out, "%zu", up.bytes);
	http_respond(req, rc == 0 ? 200 : rc == ERR_LIMIT ? 413 : 400, out, (size_t)n);
}

static void on_head(http_request *req, void *arg)
{
	const http_message *m = http_request_message(req);
	up.heads++;
	if (strcmp(m->target, "/early") == 0) { /* refused before its body */
		http_respond(req, 413, "no", 2);
		return;
	}
	if (strncmp(m->target, "/up", 3) == 0) {
		CHECK_EQ_INT(http_request_stream_body(req, UP_MAX, up_data, up_end, NULL), 0);
		up.req = req;
	}
}

static void on_shutdown(void *arg)
{
	shutdown_done = true;
}

/* --- the client side: an nghttp2 client session on the other end --- */

typedef struct client {
	int fd;
	nghttp2_session *ng;
	int status[MAX_STREAMS * 2 + 2];
	buf body[MAX_STREAMS * 2 + 2];
	char headers[MAX_STREAMS * 2 + 2][512]; /* "name: value\n"... */
	bool ended[MAX_STREAMS * 2 + 2];
	uint32_t reset[MAX_STREAMS * 2 + 2];
	bool was_reset[MAX_STREAMS * 2 + 2];
	bool goaway;
	bool eof;
} client;

static ssize_t c_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags, void *user)
{
	client *c = user;
	ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
	return n < 0 ? NGHTTP2_ERR_WOULDBLOCK : n;
}

static int c_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
		    const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
	client *c = user;
	int id = f->hd.stream_id;
	if (id <= 0 || id > MAX_STREAMS * 2 + 1)
		return 0;
	if (nlen == 7 && memcmp(name, ":status", 7) == 0)
		c->status[id] = atoi((const char *)value);
	size_t used = strlen(c->headers[id]);
	snprintf(c->headers[id] + used, sizeof c->headers[id] - used, "%.*s: %.*s\n", (int)nlen, name, (int)vlen,
		 value);
	return 0;
}

static int c_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	client *c = user;
	if (id > 0 && id <= MAX_STREAMS * 2 + 1)
		buf_add(&c->body[id], data, len);
	return 0;
}

static int c_frame(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	client *c = user;
	int id = f->hd.stream_id;
	if (f->hd.type == NGHTTP2_GOAWAY)
		c->goaway = true;
	if (f->hd.type == NGHTTP2_RST_STREAM && id <= MAX_STREAMS * 2 + 1) {
		c->reset[id] = f->rst_stream.error_code;
		c->was_reset[id] = true;
	}
	if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && id <= MAX_STREAMS * 2 + 1)
		c->ended[id] = true;
	return 0;
}

static void client_open(client *c)
{
	memset(c, 0, sizeof *c);
	for (int i = 0; i < MAX_STREAMS * 2 + 2; i++)
		buf_init(&c->body[i], 1 << 20);
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	CHECK_EQ_INT(http_server_adopt(srv, sv[0], (struct sockaddr *)&peer, sizeof peer), 0);
	c->fd = sv[1];
	nghttp2_session_callbacks *cb;
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_send_callback(cb, c_send);
	nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, c_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_frame);
	nghttp2_session_client_new(&c->ng, cb, c);
	nghttp2_session_callbacks_del(cb);
	/* the preface is sent by the session itself */
	nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, NULL, 0);
}

static void client_close(client *c)
{
	nghttp2_session_del(c->ng);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	for (int i = 0; i < MAX_STREAMS * 2 + 2; i++)
		buf_free(&c->body[i]);
}

/* Run both ends for a while: the client's frames out, the server's loop,
 * the server's frames in. */
static void pump(client *c, int rounds)
{
	for (int r = 0; r < rounds; r++) {
		if (c->fd >= 0)
			nghttp2_session_send(c->ng);
		event_base_loop(base, EVLOOP_NONBLOCK);
		if (c->fd < 0)
			continue;
		unsigned char in[65536];
		ssize_t n;
		while ((n = read(c->fd, in, sizeof in)) > 0)
			nghttp2_session_mem_recv(c->ng, in, (size_t)n);
		if (n == 0)
			c->eof = true;
	}
}

static int32_t request(client *c, const char *method, const char *path, const nghttp2_nv *extra, size_t nextra)
{
	nghttp2_nv nv[16] = {
		{(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
		{(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
		{(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
		{(uint8_t *)":authority", (uint8_t *)"a.test", 10, 6, 0},
	};
	size_t n = 4;
	for (size_t i = 0; i < nextra && n < 16; i++)
		nv[n++] = extra[i];
	return nghttp2_submit_request(c->ng, NULL, nv, n, NULL, NULL);
}

/* A request with a body: HEADERS then DATA with END_STREAM. */
static ssize_t body_read(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *user)
{
	buf *b = src->ptr;
	size_t n = b->len < len ? b->len : len;
	memcpy(out, b->data, n);
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	if (b->len == 0)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int32_t post_as(client *c, const char *method, const char *path, buf *body);

static int32_t post(client *c, const char *path, buf *body)
{
	return post_as(c, "POST", path, body);
}

static int32_t post_as(client *c, const char *method, const char *path, buf *body)
{
	nghttp2_nv nv[] = {
		{(uint8_t *)":method", (uint8_t *)method, 7, strlen(method), 0},
		{(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
		{(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
		{(uint8_t *)":authority", (uint8_t *)"a.test", 10, 6, 0},
	};
	nghttp2_data_provider dp = {.source.ptr = body, .read_callback = body_read};
	return nghttp2_submit_request(c->ng, NULL, nv, 4, &dp, NULL);
}

static size_t max_buffered = 1 << 24;

static void server_start(void)
{
	base = event_base_new();
	http_server_config cfg = {
		.limits = {.max_header_bytes = 4096, .max_headers = 50, .max_body_bytes = 16384},
		.header_timeout_ms = 10000,
		.idle_timeout_ms = 10000,
		.write_timeout_ms = 10000,
		.body_timeout_ms = 300, /* streamed bodies' inactivity (no other use over h2) */
		.max_buffered_bytes = max_buffered,
		.max_connections = 16,
		.http2 = true,
	};
	http_handlers h = {.on_head = on_head, .on_request = on_request};
	srv = http_server_new(base, &cfg, &h);
	held = NULL;
	shutdown_done = false;
}

static void server_stop(void)
{
	http_server_free(&srv);
	event_base_free(base);
}

static bool has_header(const client *c, int id, const char *line)
{
	return strstr(c->headers[id], line) != NULL;
}

static void test_request_as_handlers_see_it(void)
{
	server_start();
	client c;
	client_open(&c);
	nghttp2_nv cookies[] = {
		{(uint8_t *)"cookie", (uint8_t *)"a=1", 6, 3, 0},
		{(uint8_t *)"cookie", (uint8_t *)"b=2", 6, 3, 0},
	};
	int32_t get = request(&c, "GET", "/echo", cookies, 2);
	buf body;
	buf_init(&body, 1 << 20);
	buf_adds(&body, "hello body");
	int32_t p = post(&c, "/echo", &body);
	int32_t st = request(&c, "GET", "/stream", NULL, 0);
	pump(&c, 10);
	CHECK_EQ_INT(c.status[get], 200);
	CHECK(has_header(&c, get, "x-host: a.test\n"));        /* :authority is the Host */
	CHECK(has_header(&c, get, "x-cookie: a=1; b=2\n"));    /* RFC 9113 8.2.3 */
	CHECK(has_header(&c, get, "content-length: 0\n"));
	CHECK(has_header(&c, get, "date: "));
	CHECK(!strstr(c.headers[get], "connection"));          /* connection-specific: dropped */
	CHECK(c.ended[get]);
	CHECK_EQ_INT(c.status[p], 200);
	CHECK(has_header(&c, p, "x-method: POST\n"));
	CHECK_EQ_INT(c.body[p].len, 10);
	CHECK(c.body[p].data && memcmp(c.body[p].data, "hello body", 10) == 0);
	CHECK_EQ_INT(c.status[st], 200);
	CHECK(c.body[st].data && strcmp(c.body[st].data, "abcabcabc") == 0 && c.ended[st]);
	CHECK(!strstr(c.headers[st], "transfer-encoding"));
	CHECK_EQ_INT(http_server_connections(srv), 1);
	client_close(&c);
	pump(&c, 5);
	CHECK_EQ_INT(http_server_connections(srv), 0);
	CHECK_EQ_INT(http_server_buffered(srv), 0);
	buf_free(&body);
	server_stop();
}

static void test_limits(void)
{
	server_start();
	client c;
	client_open(&c);
	static char big[5000];
	memset(big, 'b', sizeof big - 1);
	nghttp2_nv large[] = {{(uint8_t *)"x-big", (uint8_t *)big, 5, sizeof big - 1, 0}};
	int32_t h = request(&c, "GET", "/echo", large, 1);
	buf body;
	buf_init(&body, 1 << 20);
	for (int i = 0; i < 2000; i++)
		buf_adds(&body, "0123456789");
	int32_t p = post(&c, "/echo", &body);
	int32_t ok = request(&c, "GET", "/echo", NULL, 0);
	pump(&c, 20);
	CHECK_EQ_INT(c.status[h], 431);
	CHECK(c.body[h].data && strstr(c.body[h].data, "headers_too_large"));
	CHECK_EQ_INT(c.status[p], 413);
	CHECK(c.body[p].data && strstr(c.body[p].data, "payload_too_large"));
	CHECK_EQ_INT(c.status[ok], 200); /* the connection goes on */
	client_close(&c);
	pump(&c, 5);
	CHECK_EQ_INT(http_server_connections(srv), 0);
	CHECK_EQ_INT(http_server_buffered(srv), 0);
	buf_free(&body);
	server_stop();
}

static void test_requests_outlive_a_reset_and_the_peer(void)
{
	server_start();
	client c;
	client_open(&c);
	int32_t id = request(&c, "GET", "/hold", NULL, 0);
	pump(&c, 5);
	CHECK(held != NULL);
	CHECK(!http_request_is_closed(held));
	nghttp2_submit_rst_stream(c.ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
	pump(&c, 5);
	CHECK(http_request_is_closed(held));
	CHECK_EQ_INT(http_request_output_room(held), 0);
	http_respond(held, 200, "late", 4); /* dropped, no harm */
	held = NULL;
	int32_t again = request(&c, "GET", "/hold", NULL, 0);
	pump(&c, 5);
	CHECK(held != NULL && again > id);
	client_close(&c); /* the peer goes while the request is held */
	pump(&c, 5);
	CHECK(http_request_is_closed(held));
	CHECK_EQ_INT(http_server_connections(srv), 1); /* kept for the handler */
	http_respond(held, 200, "late", 4);
	held = NULL;
	pump(&c, 2);
	CHECK_EQ_INT(http_server_connections(srv), 0);
	CHECK_EQ_INT(http_server_buffered(srv), 0);
	server_stop();
}

static void test_goaway_on_shutdown(void)
{
	server_start();
	client c;
	client_open(&c);
	int32_t id = request(&c, "GET", "/hold", NULL, 0);
	pump(&c, 5);
	CHECK(held != NULL);
	http_server_shutdown(srv, on_shutdown, NULL);
	pump(&c, 5);
	CHECK(c.goaway);
	CHECK(!shutdown_done); /* the stream in progress finishes first */
	http_respond(held, 200, "finished", 8);
	held = NULL;
	pump(&c, 5);
	CHECK_EQ_INT(c.status[id], 200);
	CHECK(c.body[id].data && strcmp(c.body[id].data, "finished") == 0);
	client_close(&c); /* the client closes on GOAWAY once its streams are done */
	pump(&c, 5);
	CHECK(shutdown_done);
	CHECK_EQ_INT(http_server_buffered(srv), 0);
	server_stop();
}

/* A streamed body over HTTP/2: 2 MiB in DATA frames (no content-length:
 * chunked to the handler) to a handler that pauses early: while paused the
 * client's window for the stream runs out (it is not given back), the
 * server holds at most one stream window (1 MiB for a streamed body), and on resume the rest arrives;
 * on_end(0) once. Then: past the handler's max, on_end(ERR_LIMIT) and 413
 * (the stream reset after); a client resetting mid-body, on_end(ERR_IO). */
static void test_streamed_body(void)
{
	server_start();
	client c;
	client_open(&c);
	memset(&up, 0, sizeof up);
	buf body;
	buf_init(&body, 8 << 20);
	for (int i = 0; i < (2 << 20) / 8; i++)
		buf_adds(&body, "01234567");
	int32_t id = post(&c, "/up-pause", &body);
	pump(&c, 40);
	CHECK(up.paused);
	CHECK_EQ_INT(up.ends, 0);
	CHECK(up.bytes < 300 * 1024);
	CHECK_EQ_INT(nghttp2_session_get_stream_remote_window_size(c.ng, id), 0); /* held back */
	CHECK(http_server_buffered(srv) <= (1 << 20) + 256 * 1024 + 64 * 1024); /* one stream window */
	CHECK(http_server_buffered(srv) >= 512 * 1024);                          /* (a large one) */
	CHECK(up.during_pause == 0); /* nothing handed on while paused */
	size_t before = up.bytes;
	pump(&c, 20);
	CHECK_EQ_INT(up.bytes, before); /* nothing while paused */
	http_request_body_resume(up.req);
	for (int i = 0; i < 400 && up.ends == 0; i++)
		pump(&c, 1);
	CHECK_EQ_INT(up.ends, 1);
	CHECK_EQ_INT(up.end_rc, 0);
	CHECK_EQ_INT(up.bytes, 2 << 20);
	pump(&c, 5);
	CHECK_EQ_INT(c.status[id], 200);
	CHECK(c.body[id].data && strcmp(c.body[id].data, "2097152") == 0);
	/* over the handler's max */
	memset(&up, 0, sizeof up);
	buf_reset(&body);
	for (int i = 0; i < (5 << 20) / 8; i++)
		buf_adds(&body, "01234567");
	int32_t big = post_as(&c, "PUT", "/up", &body);
	for (int i = 0; i < 800 && !c.ended[big] && !c.reset[big]; i++)
		pump(&c, 1);
	CHECK_EQ_INT(up.ends, 1);
	CHECK_EQ_INT(up.end_rc, ERR_LIMIT);
	CHECK(up.bytes <= UP_MAX);
	CHECK_EQ_INT(c.status[big], 413);
	/* reset mid-body */
	memset(&up, 0, sizeof up);
	buf_reset(&body);
	for (int i = 0; i < (1 << 20) / 8; i++)
		buf_adds(&body, "01234567");
	int32_t gone = post(&c, "/up-pause", &body);
	pump(&c, 20);
	CHECK(up.paused && up.ends == 0);
	nghttp2_submit_rst_stream(c.ng, NGHTTP2_FLAG_NONE, gone, NGHTTP2_CANCEL);
	pump(&c, 10);
	CHECK_EQ_INT(up.ends, 1);
	CHECK_EQ_INT(up.end_rc, ERR_IO);
	/* the connection goes on, with a collected body too */
	buf_reset(&body);
	buf_adds(&body, "small");
	int32_t small = post(&c, "/echo", &body);
	pump(&c, 10);
	CHECK_EQ_INT(c.status[small], 200);
	CHECK(c.body[small].data && strcmp(c.body[small].data, "small") == 0);
	client_close(&c);
	pump(&c, 5);
	CHECK_EQ_INT(http_server_connections(srv), 0);
	CHECK_EQ_INT(http_server_buffered(srv), 0);
	buf_free(&body);
	server_stop();
}

/* A body that stops arriving: 100 bytes, then nothing (the client's data
 * provider defers): after body_timeout_ms of inactivity, on_end(ERR_AGAIN),
 * the answer, and the stream reset after it. */
static ssize_t trickle_read(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len, uint32_t *flags,
			    nghttp2_data_source *src, void *user)
{
	int *calls = src->ptr;
	if ((*calls)++ > 0)
		return NGHTTP2_ERR_DEFERRED;
	memset(out, 't', 100);
	return 100;
}

static void test_streamed_body_inactivity(void)
{
	server_start();
	client c;
	client_open(&c);
	memset(&up, 0, sizeof up);
	int calls = 0;
	nghttp2_nv nv[] = {
		{(uint8_t *)":method", (uint8_t *)"PUT", 7, 3, 0},
		{(uint8_t *)":path", (uint8_t *)"/up", 5, 3, 0},
		{(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
		{(uint8_t *)":authority", (uint8_t *)"a.test", 10, 6, 0},
	};
	nghttp2_data_provider dp = {.source.ptr = &calls, .read_callback = trickle_read};
	int32_t id = nghttp2_submit_request(c.ng, NULL, nv, 4, &dp, NULL);
	pump(&c, 10);
	CHECK_EQ_INT(up.bytes, 100);
	CHECK_EQ_INT(up.ends, 0);
	struct timeval start, now;
	gettimeofday(&start, NULL);
	long ms = 0;
	while (up.ends == 0 && ms < 3000) { /* the server's timer is real time: wait it out */
		pump(&c, 1);
		usleep(10000);
		gettimeofday(&now, NULL);
		ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_usec - start.tv_usec) / 1000;
	}
	CHECK_EQ_INT(up.ends, 1);
	CHECK_EQ_INT(up.end_rc, ERR_AGAIN);
	CHECK(ms >= 250);
	pump(&c, 10);
	CHECK_EQ_INT(c.status[id], 400);
	CHECK(c.ended[id]);
	CHECK(c.was_reset[id] && c.reset[id] == NGHTTP2_NO_ERROR); /* the rest is not read */
	client_close(&c);
	pump(&c, 5);
	CHECK_EQ_INT(http_server_connections(srv), 0);
	CHECK_EQ_INT(http_server_buffered(srv), 0);
	server_stop();
}

/* A streamed body's bounds from its head on: an announced content-length
 * over the handler's max ends it with ERR_LIMIT before any byte (as over
 * HTTP/1.1), not after max bytes were relayed; a new streamed stream while
 * the server holds more than max_buffered_bytes is refused with 503 (each
 * streamed stream may hold one 1 MiB window: 100 streams a connection). */
static void test_streamed_body_bounds(void)
{
	server_start();
	client c;
	client_open(&c);
	memset(&up, 0, sizeof up);
	int calls = 0;
	nghttp2_nv nv[] = {
		{(uint8_t *)":method", (uint8_t *)"PUT", 7, 3, 0},
		{(uint8_t *)":path", (uint8_t *)"/up", 5, 3, 0},
		{(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
		{(uint8_t *)":authority", (uint8_t *)"a.test", 10, 6, 0},
		{(uint8_t *)"content-length", (uint8_t *)"5242880", 14, 7, 0}, /* over UP_MAX */
	};
	nghttp2_data_provider dp = {.source.ptr = &calls, .read_callback = trickle_read};
	int32_t id = nghttp2_submit_request(c.ng, NULL, nv, 5, &dp, NULL);
	pump(&c, 10);
	CHECK_EQ_INT(up.ends, 1);
	CHECK_EQ_INT(up.end_rc, ERR_LIMIT);
	CHECK_EQ_INT(up.bytes, 0);
	CHECK_EQ_INT(c.status[id], 413);
	client_close(&c);
	pump(&c, 5);
	server_stop();

	max_buffered = 512 * 1024;
	server_start();
	client_open(&c);
	memset(&up, 0, sizeof up);
	buf body, body2;
	buf_init(&body, 4 << 20);
	buf_init(&body2, 4 << 20);
	for (int i = 0; i < (2 << 20) / 8; i++) {
		buf_adds(&body, "01234567");
		buf_adds(&body2, "01234567");
	}
	int32_t first = post(&c, "/up-pause", &body);
	pump(&c, 40);
	CHECK(up.paused && up.ends == 0);
	CHECK(http_server_buffered(srv) > max_buffered); /* one paused stream's window */
	/* its HEADERS alone (the body's DATA would be refused by the collected path) */
	calls = 1; /* trickle_read defers from the start */
	nv[1] = (nghttp2_nv){(uint8_t *)":path", (uint8_t *)"/up-pause", 5, 9, 0};
	int32_t second = nghttp2_submit_request(c.ng, NULL, nv, 4, &dp, NULL);
	pump(&c, 20);
	CHECK_EQ_INT(up.heads, 1); /* the second never reached the handler */
	CHECK_EQ_INT(c.status[second], 503);
	CHECK_EQ_INT(c.status[first], 0);
	client_close(&c);
	pump(&c, 5);
	CHECK_EQ_INT(http_server_connections(srv), 0);
	CHECK_EQ_INT(http_server_buffered(srv), 0);
	buf_free(&body);
	buf_free(&body2);
	server_stop();
	max_buffered = 1 << 24;
}

/* An answer before the body (in on_head): the rest of the body is read and
 * dropped for a while, not reset at once (curl 7.88 takes a reset while it
 * still sends as an error and never shows the answer), so a client sending
 * on sees the answer and ends its stream; one that stops sending is reset
 * (NO_ERROR) after the linger. */
static void test_early_answer_lingers(void)
{
	server_start();
	client c;
	client_open(&c);
	buf body;
	buf_init(&body, 1 << 20);
	for (int i = 0; i < (600 << 10) / 8; i++)
		buf_adds(&body, "01234567");
	int32_t id = post(&c, "/early", &body);
	for (int i = 0; i < 400 && !(c.ended[id] && body.len == 0) && !c.was_reset[id]; i++)
		pump(&c, 1);
	CHECK_EQ_INT(c.status[id], 413);
	CHECK(c.ended[id]);
	CHECK(!c.was_reset[id]);      /* not reset while the client sends */
	CHECK_EQ_INT(body.len, 0);    /* all of it went (read and dropped) */
	int calls = 1;                /* trickle_read defers from the start: a client that stops */
	nghttp2_nv nv[] = {
		{(uint8_t *)":method", (uint8_t *)"PUT", 7, 3, 0},
		{(uint8_t *)":path", (uint8_t *)"/early", 5, 6, 0},
		{(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
		{(uint8_t *)":authority", (uint8_t *)"a.test", 10, 6, 0},
	};
	nghttp2_data_provider dp = {.source.ptr = &calls, .read_callback = trickle_read};
	int32_t stuck = nghttp2_submit_request(c.ng, NULL, nv, 4, &dp, NULL);
	pump(&c, 10);
	CHECK_EQ_INT(c.status[stuck], 413);
	CHECK(!c.was_reset[stuck]);
	struct timeval start, now;
	gettimeofday(&start, NULL);
	long ms = 0;
	while (!c.was_reset[stuck] && ms < 4000) { /* the linger is real time: wait it out */
		pump(&c, 1);
		usleep(10000);
		gettimeofday(&now, NULL);
		ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_usec - start.tv_usec) / 1000;
	}
	CHECK(c.was_reset[stuck] && c.reset[stuck] == NGHTTP2_NO_ERROR);
	CHECK(ms >= 1000);
	client_close(&c);
	pump(&c, 5);
	CHECK_EQ_INT(http_server_connections(srv), 0);
	buf_free(&body);
	server_stop();
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	log_setup("test", LOG_ERROR);
	RUN(test_request_as_handlers_see_it);
	RUN(test_limits);
	RUN(test_requests_outlive_a_reset_and_the_peer);
	RUN(test_goaway_on_shutdown);
	RUN(test_streamed_body);
	RUN(test_streamed_body_inactivity);
	RUN(test_streamed_body_bounds);
	RUN(test_early_answer_lingers);
	return TEST_SUMMARY();
}
