/*
 * test_http.c - the HTTP server and client together, in one process, on
 * loopback: keep-alive, chunked bodies both ways, Expect: 100-continue,
 * Connection: close and reconnection, TLS with verification (and its
 * failure), request timeouts, graceful shutdown; and the memory bounds:
 * streaming answers produced as the socket drains, the accounting of what
 * connections hold and 503 overloaded over max_buffered_bytes, the body
 * deadline (408), the per-address cap; streamed request bodies
 * (http_request_stream_body: pause/resume, chunked, the bound, an early
 * answer, inactivity, the client gone) fed by the client's uploads in
 * pieces (http_client_request_upload, through a window).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/buf.h"
#include "core/certs.h"
#include "core/err.h"
#include "core/tls.h"
#include "core/util.h"
#include "http/client.h"
#include "http/server.h"
#include "test.h"

static struct event_base *base;
static http_limits limits = {16384, 100, 1 << 20, 0};
static http_request *parked; /* a request the handler did not answer yet */
static int requests_seen;

/* /stream: STREAM_TOTAL bytes in STREAM_PIECE pieces, queued only while
 * http_request_output_room() allows, the rest as the socket drains. */
#define STREAM_TOTAL (4 * 1024 * 1024)
#define STREAM_PIECE (16 * 1024)
#define BIG_ANSWER (3 * 1024 * 1024)
static size_t stream_sent;
static size_t stream_max_pending;
static int stream_waits;
static bool stream_take; /* Content-Length framing, pieces handed over (the S3 GET's way) */

static void stream_more(http_request *req, void *arg)
{
	char piece[STREAM_PIECE];
	while (!http_request_is_closed(req) && http_request_output_room(req) > 0 && stream_sent < STREAM_TOTAL) {
		for (size_t i = 0; i < sizeof piece; i++)
			piece[i] = (char)('a' + (stream_sent + i) % 26);
		if (stream_take) {
			char *owned = malloc(sizeof piece);
			CHECK(owned != NULL);
			memcpy(owned, piece, sizeof piece);
			http_respond_chunk_take(req, owned, sizeof piece);
		} else {
			http_respond_chunk(req, piece, sizeof piece);
		}
		stream_sent += sizeof piece;
		size_t pending = http_request_output_pending(req);
		if (pending > stream_max_pending)
			stream_max_pending = pending;
	}
	if (stream_sent >= STREAM_TOTAL || http_request_is_closed(req)) {
		http_respond_end(req);
		return;
	}
	stream_waits++;
	http_request_on_drain(req, stream_more, NULL);
}

/* Detached requests: the copy is handled on another thread, its answer
 * captured by detached_done, then written on the original request here. */
typedef struct detached_answer {
	int calls;
	int status;
	char head[512];
	char body[2048];
	char peer[64];
} detached_answer;
static detached_answer det;

static void detached_done(void *arg, int status, const char *head, size_t head_len, const char *body,
			  size_t body_len)
{
	det.calls++;
	det.status = status;
	snprintf(det.head, sizeof det.head, "%.*s", (int)head_len, head);
	snprintf(det.body, sizeof det.body, "%.*s", (int)body_len, body);
}

static void *handle_detached(void *arg) /* another thread, as the API thread would be */
{
	http_request *copy = arg;
	const http_message *m = http_request_message(copy);
	size_t len, hl = 0;
	const char *body = http_request_body(copy, &len);
	const char *h = http_message_field(m, "X-Test", &hl);
	snprintf(det.peer, sizeof det.peer, "%s", http_request_peer(copy));
	CHECK(!http_request_is_closed(copy));
	http_response_header(copy, "X-Detached", "yes");
	if (strcmp(m->target, "/detach-chunked") == 0) {
		http_respond_start(copy, 201);
		http_respond_chunk(copy, "in ", 3);
		http_respond_chunk(copy, "pieces", 6);
		http_respond_end(copy); /* frees the copy */
		return NULL;
	}
	char out[2048];
	int n = snprintf(out, sizeof out, "%s|%.*s|%.*s", m->method, (int)len, body, (int)hl, h ? h : "");
	http_respond(copy, 202, out, (size_t)n); /* frees the copy */
	return NULL;
}

static void answer_detached(http_request *req)
{
	memset(&det, 0, sizeof det);
	size_t before = 0;
	http_request_body(req, &before);
	bool take = strcmp(http_request_message(req)->target, "/detach-take") == 0;
	http_request *copy = take ? http_request_detach_take(req, detached_done, NULL)
				  : http_request_detach(req, detached_done, NULL);
	CHECK(copy != NULL);
	size_t after = 99;
	http_request_body(req, &after);
	CHECK_EQ_INT(after, take ? 0 : before); /* taken: moved, not copied */
	pthread_t t;
	CHECK_EQ_INT(pthread_create(&t, NULL, handle_detached, copy), 0);
	pthread_join(t, NULL);
	CHECK_EQ_INT(det.calls, 1);
	http_response_header_lines(req, det.head, strlen(det.head));
	http_respond(req, det.status, det.body, strlen(det.body));
}

/* The test server: /echo answers the method, body and a header as JSON-ish
 * text; /chunked streams three chunks; /close answers with Connection:
 * close; /park does not answer (until the test says); /stream see above;
 * /big answers BIG_ANSWER bytes, handed over. */
static void on_request(http_request *req, void *arg)
{
	const http_message *m = http_request_message(req);
	requests_seen++;
	if (strcmp(m->target, "/stream") == 0) {
		stream_sent = stream_max_pending = 0;
		stream_waits = 0;
		if (stream_take)
			http_respond_start_length(req, 200, STREAM_TOTAL);
		else
			http_respond_start(req, 200);
		stream_more(req, NULL);
		return;
	}
	if (strcmp(m->target, "/big") == 0) {
		buf b;
		buf_init(&b, BIG_ANSWER);
		char fill[4096];
		memset(fill, 'z', sizeof fill);
		while (b.len < BIG_ANSWER)
			buf_add(&b, fill, sizeof fill);
		http_respond_take(req, 200, &b);
		CHECK(b.data == NULL && b.len == 0); /* handed over */
		return;
	}
	if (strcmp(m->target, "/chunked") == 0) {
		http_respond_start(req, 200);
		http_respond_chunk(req, "one,", 4);
		http_respond_chunk(req, "two,", 4);
		http_respond_chunk(req, "three", 5);
		http_respond_end(req);
		return;
	}
	if (strcmp(m->target, "/park") == 0) {
		parked = req;
		return;
	}
	if (strncmp(m->target, "/detach", 7) == 0) {
		answer_detached(req);
		return;
	}
	size_t len;
	const char *body = http_request_body(req, &len);
	char out[2048];
	size_t hl = 0;
	const char *h = http_message_field(m, "X-Test", &hl);
	int n = snprintf(out, sizeof out, "%s|%.*s|%.*s", m->method, (int)len, body, (int)hl, h ? h : "");
	if (strcmp(m->target, "/close") == 0)
		http_response_header(req, "Connection", "close");
	http_respond(req, 200, out, (size_t)n);
}

typedef struct result {
	int done;
	int rc;
	int status;
	char body[2048];
} result;

static void on_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	result *r = arg;
	r->done = 1;
	r->rc = rc;
	if (rc == 0) {
		r->status = resp->status;
		snprintf(r->body, sizeof r->body, "%.*s", (int)len, body);
	}
}

/* /stream's answer: its length and whether the bytes are the pattern. */
static void on_stream_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	struct { int done, rc; size_t len; bool in_order; } *sr = arg;
	sr->done = 1;
	sr->rc = rc;
	sr->len = len;
	sr->in_order = true;
	for (size_t i = 0; rc == 0 && i < len; i++)
		if (body[i] != (char)('a' + i % 26)) {
			sr->in_order = false;
			break;
		}
}

static void run_until(result *r, int count)
{
	for (int i = 0; i < 2000; i++) {
		int done = 0;
		for (int k = 0; k < count; k++)
			done += r[k].done;
		if (done == count)
			return;
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static http_server *start_server_with(http_server_config *cfg, int *port)
{
	http_handlers h = {.on_request = on_request};
	http_server *srv = http_server_new(base, cfg, &h);
	CHECK(srv != NULL);
	CHECK_EQ_INT(http_server_listen(srv, "127.0.0.1:0"), 0);
	*port = http_server_port(srv);
	CHECK(*port > 0);
	return srv;
}

static http_server *start_server(SSL_CTX *ctx, int *port)
{
	http_server_config cfg = {.limits = limits, .header_timeout_ms = 5000, .idle_timeout_ms = 5000,
				  .max_connections = 100, .ssl_ctx = ctx, .common_headers = "X-Common: 1\r\n"};
	http_handlers h = {.on_request = on_request};
	http_server *srv = http_server_new(base, &cfg, &h);
	CHECK(srv != NULL);
	CHECK_EQ_INT(http_server_listen(srv, "127.0.0.1:0"), 0);
	*port = http_server_port(srv);
	CHECK(*port > 0);
	return srv;
}

static void test_keep_alive_and_bodies(void)
{
	int port;
	http_server *srv = start_server(NULL, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 5000);
	result r[5];
	memset(r, 0, sizeof r);
	CHECK_EQ_INT(http_client_request(c, "GET", "/echo", "X-Test: a\r\n", NULL, 0, 0, on_answer, &r[0]), 0);
	CHECK_EQ_INT(http_client_request(c, "POST", "/echo", NULL, "hello", 5, 0, on_answer, &r[1]), 0);
	CHECK_EQ_INT(http_client_request(c, "POST", "/echo", NULL, "chunky body", 11, HTTP_CLIENT_CHUNKED,
					 on_answer, &r[2]), 0);
	CHECK_EQ_INT(http_client_request(c, "PUT", "/echo", NULL, "after 100", 9,
					 HTTP_CLIENT_EXPECT_CONTINUE, on_answer, &r[3]), 0);
	CHECK_EQ_INT(http_client_request(c, "GET", "/chunked", NULL, NULL, 0, 0, on_answer, &r[4]), 0);
	run_until(r, 5);
	CHECK_EQ_STR(r[0].body, "GET||a");
	CHECK_EQ_STR(r[1].body, "POST|hello|");
	CHECK_EQ_STR(r[2].body, "POST|chunky body|");
	CHECK_EQ_STR(r[3].body, "PUT|after 100|");
	CHECK_EQ_STR(r[4].body, "one,two,three");
	for (int i = 0; i < 5; i++) {
		CHECK_EQ_INT(r[i].rc, 0);
		CHECK_EQ_INT(r[i].status, 200);
	}
	CHECK_EQ_INT(http_server_connections(srv), 1); /* all on one keep-alive connection */
	http_client_free(&c);
	http_server_free(&srv);
	CHECK(c == NULL && srv == NULL);
}

/* A detached copy (what the link's thread hands to the API thread) carries
 * the method, target, headers, body and peer; handled on another thread,
 * its answer (status, headers, body; a streamed one gathered) reaches the
 * callback once, and the original request is answered with it. */
static void test_detached_request_round_trip(void)
{
	int port;
	http_server *srv = start_server(NULL, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 5000);
	result r[2];
	memset(r, 0, sizeof r);
	CHECK_EQ_INT(http_client_request(c, "POST", "/detach", "X-Test: forwarded\r\n", "hello", 5,
					 HTTP_CLIENT_CHUNKED, on_answer, &r[0]), 0);
	run_until(r, 1);
	CHECK_EQ_INT(r[0].rc, 0);
	CHECK_EQ_INT(r[0].status, 202);
	CHECK_EQ_STR(r[0].body, "POST|hello|forwarded");
	CHECK(strstr(det.head, "X-Detached: yes\r\n") != NULL);
	CHECK_EQ_STR(det.peer, "127.0.0.1");
	CHECK_EQ_INT(http_client_request(c, "GET", "/detach-chunked", NULL, NULL, 0, 0, on_answer, &r[1]), 0);
	run_until(r, 2);
	CHECK_EQ_INT(r[1].status, 201);
	CHECK_EQ_STR(r[1].body, "in pieces");
	/* the body moved to the copy (detach_take), sent by the client from a
	 * block it owns (request_take: the body lies after 16 bytes of room) */
	result t[1];
	memset(t, 0, sizeof t);
	char *mem = malloc(16 + 200000);
	for (int i = 0; i < 200000; i++)
		mem[16 + i] = (char)('a' + i % 26);
	CHECK_EQ_INT(http_client_request_take(c, "POST", "/detach-take", NULL, mem, mem + 16, 200000, 0, on_answer,
					      &t[0]),
		     0);
	run_until(t, 1);
	CHECK_EQ_INT(t[0].status, 202);
	CHECK(strncmp(t[0].body, "POST|abcdefghijklmnopqrstuvwxyzabc", 34) == 0);
	http_client_free(&c);
	http_server_free(&srv);
}

static void test_connection_close_then_reconnect(void)
{
	int port;
	http_server *srv = start_server(NULL, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 5000);
	result r[2];
	memset(r, 0, sizeof r);
	http_client_request(c, "GET", "/close", NULL, NULL, 0, 0, on_answer, &r[0]);
	http_client_request(c, "GET", "/echo", "X-Test: again\r\n", NULL, 0, 0, on_answer, &r[1]);
	run_until(r, 2);
	CHECK_EQ_INT(r[0].rc, 0);
	CHECK_EQ_STR(r[0].body, "GET||");
	CHECK_EQ_INT(r[1].rc, 0);
	CHECK_EQ_STR(r[1].body, "GET||again");
	http_client_free(&c);
	http_server_free(&srv);
}

static void test_timeout_and_refused(void)
{
	int port;
	http_server *srv = start_server(NULL, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 300);
	result r;
	memset(&r, 0, sizeof r);
	parked = NULL;
	http_client_request(c, "GET", "/park", NULL, NULL, 0, 0, on_answer, &r);
	run_until(&r, 1);
	CHECK_EQ_INT(r.rc, ERR_AGAIN);
	CHECK(parked != NULL);
	if (parked)
		http_respond(parked, 200, "late", 4); /* the peer is gone: discarded safely */
	http_client_free(&c);
	http_server_free(&srv);
	/* nothing listens there any more */
	c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 2000);
	memset(&r, 0, sizeof r);
	http_client_request(c, "GET", "/echo", NULL, NULL, 0, 0, on_answer, &r);
	run_until(&r, 1);
	CHECK_EQ_INT(r.rc, ERR_IO);
	http_client_free(&c);
}

/* connect_timeout_ms bounds the making of a connection apart from the
 * answer's timeout: a TLS handshake that never comes (a listener that never
 * accepts) fails with ERR_IO, a connection failure, long before the answer's
 * 10 s; once connected, the answer's own timeout applies (ERR_AGAIN), not
 * the connect timeout. */
static void test_connect_timeout(void)
{
	char dir[] = "/tmp/tandem-test-http-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	const char *names[] = {"eu"};
	char err[512], ca[256];
	CHECK_EQ_INT(certs_ensure(dir, names, 1, err, sizeof err), 0);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	SSL_CTX *cctx = tls_client_new(ca, NULL, NULL, err, sizeof err);
	CHECK(cctx != NULL);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	CHECK_EQ_INT(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
	CHECK_EQ_INT(listen(ls, 8), 0); /* never accepted: the kernel completes TCP, nobody answers TLS */
	socklen_t sl = sizeof sa;
	CHECK_EQ_INT(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
	http_client *c = http_client_new(base, cctx, "127.0.0.1", ntohs(sa.sin_port), NULL, &limits, 10000);
	http_client_set_connect_timeout(c, 100);
	result r;
	memset(&r, 0, sizeof r);
	int64_t t0 = util_mono_us();
	http_client_request(c, "GET", "/echo", NULL, NULL, 0, 0, on_answer, &r);
	run_until(&r, 1);
	CHECK_EQ_INT(r.rc, ERR_IO);
	CHECK(util_mono_us() - t0 < 9000000); /* not the answer's 10 s timeout */
	CHECK(strstr(http_client_error(c, NULL), "no connection") != NULL);
	http_client_free(&c);
	close(ls);
	/* connected: a parked request times out as an answer, after the connect timeout passed */
	int port;
	http_server *srv = start_server(NULL, &port);
	c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 300);
	http_client_set_connect_timeout(c, 50);
	memset(&r, 0, sizeof r);
	parked = NULL;
	http_client_request(c, "GET", "/park", NULL, NULL, 0, 0, on_answer, &r);
	run_until(&r, 1);
	CHECK_EQ_INT(r.rc, ERR_AGAIN);
	CHECK(parked != NULL);
	if (parked)
		http_respond(parked, 200, "late", 4);
	http_client_free(&c);
	http_server_free(&srv);
	SSL_CTX_free(cctx);
}

/* http_client_request_streamed: on_head decides (true: body bytes to
 * on_data as they come; false: collected as usual); a paused client
 * delivers nothing until resumed, then the rest, in order, and the
 * connection serves the next request; an abandoned request ends with
 * ERR_IO and the next one works on a new connection. */
typedef struct streamed {
	result r;
	int heads;
	bool want_stream;
	size_t got;
	bool in_order;
	http_client *pause_me; /* paused after the first piece */
} streamed;

static bool streamed_head(void *arg, const http_message *resp)
{
	streamed *s = arg;
	s->heads++;
	return s->want_stream;
}

static void streamed_data(void *arg, const char *data, size_t len)
{
	streamed *s = arg;
	for (size_t i = 0; i < len; i++)
		if (data[i] != (char)('a' + (s->got + i) % 26))
			s->in_order = false;
	s->got += len;
	if (s->pause_me) {
		http_client_pause(s->pause_me);
		s->pause_me = NULL;
	}
}

static void test_client_streamed_pause_abort(void)
{
	int port;
	http_server *srv = start_server(NULL, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 5000);
	/* streamed: every byte through on_data, in order, nothing collected */
	streamed s = {.want_stream = true, .in_order = true};
	stream_take = false;
	CHECK_EQ_INT(http_client_request_streamed(c, "GET", "/stream", NULL, NULL, 0, 0, streamed_head, streamed_data,
						  on_answer, &s.r),
		     0);
	run_until(&s.r, 1);
	CHECK_EQ_INT(s.r.rc, 0);
	CHECK_EQ_INT(s.heads, 1);
	CHECK_EQ_INT(s.got, STREAM_TOTAL);
	CHECK(s.in_order);
	CHECK_EQ_INT(strlen(s.r.body), 0);
	/* declined: collected for the callback as usual */
	streamed d = {.want_stream = false, .in_order = true};
	http_client_request_streamed(c, "GET", "/chunked", NULL, NULL, 0, 0, streamed_head, streamed_data, on_answer,
				     &d.r);
	run_until(&d.r, 1);
	CHECK_EQ_INT(d.r.rc, 0);
	CHECK_EQ_INT(d.heads, 1);
	CHECK_EQ_INT(d.got, 0);
	CHECK_EQ_STR(d.r.body, "one,two,three");
	/* paused after the first piece: nothing more arrives until resumed */
	streamed ps = {.want_stream = true, .in_order = true, .pause_me = c};
	http_client_request_streamed(c, "GET", "/stream", NULL, NULL, 0, 0, streamed_head, streamed_data, on_answer,
				     &ps.r);
	for (int i = 0; i < 300 && !ps.got; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	size_t at_pause = ps.got;
	CHECK(at_pause > 0 && at_pause < STREAM_TOTAL);
	for (int i = 0; i < 200; i++) { /* 200 ms of the loop: the answer waits */
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	CHECK_EQ_INT(ps.got, at_pause);
	CHECK(!ps.r.done);
	http_client_resume(c);
	run_until(&ps.r, 1);
	CHECK_EQ_INT(ps.r.rc, 0);
	CHECK_EQ_INT(ps.got, STREAM_TOTAL);
	CHECK(ps.in_order);
	/* the same connection serves the next request (it reads again) */
	result after;
	memset(&after, 0, sizeof after);
	http_client_request(c, "POST", "/echo", NULL, "x", 1, 0, on_answer, &after);
	run_until(&after, 1);
	CHECK_EQ_INT(after.rc, 0);
	CHECK_EQ_STR(after.body, "POST|x|");
	/* abandoned: ERR_IO, and the client goes on with a new connection */
	streamed ab = {.want_stream = true, .in_order = true, .pause_me = c};
	http_client_request_streamed(c, "GET", "/stream", NULL, NULL, 0, 0, streamed_head, streamed_data, on_answer,
				     &ab.r);
	for (int i = 0; i < 300 && !ab.got; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	http_client_abort(c);
	run_until(&ab.r, 1);
	CHECK_EQ_INT(ab.r.rc, ERR_IO);
	CHECK(strstr(http_client_error(c, NULL), "abandoned") != NULL);
	memset(&after, 0, sizeof after);
	http_client_request(c, "POST", "/echo", NULL, "y", 1, 0, on_answer, &after);
	run_until(&after, 1);
	CHECK_EQ_INT(after.rc, 0);
	CHECK_EQ_STR(after.body, "POST|y|");
	http_client_free(&c);
	http_server_free(&srv);
}

/* Re-entrancy: a callback that sends the next request on the same client
 * (the edge's waiters do: the connection just answered is the idle one). It
 * goes out once the answer that woke it is finished with, on a connection
 * that stays open: after a Connection: close answer, on a new one; after an
 * answer whose reader abandoned it while its last bytes were arriving, not
 * killed by that abandonment. */
typedef struct chained {
	result first, second;
	http_client *c;
	const char *next_target;
	int next_flags;
} chained;

static void chained_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	chained *ch = arg;
	on_answer(rc, resp, body, len, &ch->first);
	CHECK_EQ_INT(http_client_request(ch->c, "POST", ch->next_target, NULL, "z", 1, ch->next_flags, on_answer,
					 &ch->second),
		     0);
}

static void abort_on_data(void *arg, const char *data, size_t len)
{
	http_client_abort(((chained *)arg)->c);
}

static bool stream_it(void *arg, const http_message *resp)
{
	return true;
}

static void chained_run(chained *ch)
{
	for (int i = 0; i < 3000 && !ch->second.done; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static void test_client_reentrant_callbacks(void)
{
	int port;
	http_server *srv = start_server(NULL, &port);
	/* a short timeout: a request stranded on a closed connection fails in 1 s */
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 1000);
	/* after Connection: close */
	chained ch = {.c = c, .next_target = "/echo"};
	CHECK_EQ_INT(http_client_request(c, "GET", "/close", NULL, NULL, 0, 0, chained_answer, &ch), 0);
	chained_run(&ch);
	CHECK_EQ_INT(ch.first.rc, 0);
	CHECK_EQ_INT(ch.second.rc, 0);
	CHECK_EQ_STR(ch.second.body, "POST|z|");
	/* after a keep-alive answer, with Expect: 100-continue (its body goes after the 100) */
	memset(&ch, 0, sizeof ch);
	ch.c = c;
	ch.next_target = "/echo";
	ch.next_flags = HTTP_CLIENT_EXPECT_CONTINUE;
	CHECK_EQ_INT(http_client_request(c, "GET", "/echo", NULL, NULL, 0, 0, chained_answer, &ch), 0);
	chained_run(&ch);
	CHECK_EQ_INT(ch.first.rc, 0);
	CHECK_EQ_INT(ch.second.rc, 0);
	CHECK_EQ_STR(ch.second.body, "POST|z|");
	/* abandoned by its reader as its last bytes came in: it completes, and the
	 * abandonment does not reach the next request */
	memset(&ch, 0, sizeof ch);
	ch.c = c;
	ch.next_target = "/echo";
	CHECK_EQ_INT(http_client_request_streamed(c, "GET", "/chunked", NULL, NULL, 0, 0, stream_it, abort_on_data,
						  chained_answer, &ch),
		     0);
	chained_run(&ch);
	CHECK(ch.first.done);
	CHECK_EQ_INT(ch.second.rc, 0);
	CHECK_EQ_STR(ch.second.body, "POST|z|");
	http_client_free(&c);
	http_server_free(&srv);
}

static void shutdown_done(void *arg)
{
	*(int *)arg = 1;
}

static void test_graceful_shutdown_waits_for_parked_request(void)
{
	int port;
	http_server *srv = start_server(NULL, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 5000);
	result r;
	memset(&r, 0, sizeof r);
	parked = NULL;
	http_client_request(c, "GET", "/park", NULL, NULL, 0, 0, on_answer, &r);
	for (int i = 0; i < 500 && !parked; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	CHECK(parked != NULL);
	int stopped = 0;
	http_server_shutdown(srv, shutdown_done, &stopped);
	CHECK_EQ_INT(stopped, 0); /* a request is in flight */
	http_respond(parked, 200, "finished", 8);
	run_until(&r, 1);
	for (int i = 0; i < 200 && !stopped; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	CHECK_EQ_INT(r.rc, 0);
	CHECK_EQ_STR(r.body, "finished");
	CHECK_EQ_INT(stopped, 1);
	http_client_free(&c);
	http_server_free(&srv);
}

static void test_tls_verified_and_refused(void)
{
	char dir[] = "/tmp/tandem-test-http-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	const char *names[] = {"eu"};
	char err[512], cert[256], key[256], ca[256];
	CHECK_EQ_INT(certs_ensure(dir, names, 1, err, sizeof err), 0);
	snprintf(cert, sizeof cert, "%s/eu.pem", dir);
	snprintf(key, sizeof key, "%s/eu.key", dir);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	SSL_CTX *sctx = tls_server_new(cert, key, NULL, err, sizeof err);
	SSL_CTX *cctx = tls_client_new(ca, NULL, NULL, err, sizeof err);
	SSL_CTX *wrong = tls_client_new(cert, NULL, NULL, err, sizeof err); /* not a CA */
	CHECK(sctx && cctx && wrong);
	int port;
	http_server *srv = start_server(sctx, &port);
	http_client *c = http_client_new(base, cctx, "127.0.0.1", port, NULL, &limits, 5000);
	result r[2];
	memset(r, 0, sizeof r);
	http_client_request(c, "POST", "/echo", NULL, "secret", 6, 0, on_answer, &r[0]);
	run_until(r, 1);
	CHECK_EQ_INT(r[0].rc, 0);
	CHECK_EQ_STR(r[0].body, "POST|secret|");
	http_client_free(&c);
	/* the name must match too: "eu" is in the certificate, "us" is not */
	http_client *bad = http_client_new(base, wrong, "127.0.0.1", port, NULL, &limits, 5000);
	http_client_request(bad, "GET", "/echo", NULL, NULL, 0, 0, on_answer, &r[1]);
	run_until(&r[1], 1);
	CHECK_EQ_INT(r[1].rc, ERR_TLS);
	http_client_free(&bad);
	result r3 = {0};
	http_client *misnamed = http_client_new(base, cctx, "127.0.0.1", port, "us", &limits, 5000);
	http_client_request(misnamed, "GET", "/echo", NULL, NULL, 0, 0, on_answer, &r3);
	run_until(&r3, 1);
	CHECK_EQ_INT(r3.rc, ERR_TLS);
	http_client_free(&misnamed);
	http_server_free(&srv);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	SSL_CTX_free(wrong);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	CHECK_EQ_INT(system(cmd), 0);
}

/* --- raw clients (a peer that reads nothing, or trickles) --- */

/* A connected non-blocking socket from `source` (a loopback address);
 * rcvbuf > 0: a small receive buffer, so unread answers stay in the server. */
static int raw_connect(int port, const char *source, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(fd >= 0);
	if (rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
	struct sockaddr_in a = {.sin_family = AF_INET};
	inet_pton(AF_INET, source, &a.sin_addr);
	CHECK_EQ_INT(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	CHECK_EQ_INT(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static void raw_send(int fd, const char *s)
{
	CHECK_EQ_INT(write(fd, s, strlen(s)), (long long)strlen(s));
}

/* Run the loop for about ms milliseconds. */
static void spin(int ms)
{
	for (int i = 0; i < ms; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

/* Read what has arrived (the loop runs meanwhile) until `want` is seen or
 * the peer closes; returns bytes read into out (NUL-terminated); *closed
 * tells whether the peer closed. */
static size_t raw_read(int fd, char *out, size_t cap, const char *want, bool *closed)
{
	size_t len = 0;
	*closed = false;
	out[0] = '\0';
	for (int i = 0; i < 3000 && !*closed && !(want && strstr(out, want)); i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		ssize_t n = read(fd, out + len, cap - 1 - len);
		if (n > 0) {
			len += (size_t)n;
			out[len] = '\0';
		} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			*closed = true;
		} else {
			usleep(1000);
		}
	}
	return len;
}

/* A streaming answer far larger than max_unsent_bytes is produced as the
 * socket drains: the producer never queues much more than the bound, waits
 * on http_request_on_drain, and the client gets every byte in order. */
static void streaming_waits_for_drain(void)
{
	http_server_config cfg = {.limits = limits, .header_timeout_ms = 5000, .idle_timeout_ms = 5000,
				  .max_connections = 100, .max_unsent_bytes = 64 * 1024};
	int port;
	http_server *srv = start_server_with(&cfg, &port);
	http_limits big = limits;
	big.max_body_bytes = STREAM_TOTAL + 1;
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &big, 10000);
	typedef struct { int done, rc; size_t len; bool in_order; } stream_result;
	static stream_result sr;
	memset(&sr, 0, sizeof sr);
	CHECK_EQ_INT(http_client_request(c, "GET", "/stream", NULL, NULL, 0, 0, on_stream_answer, &sr), 0);
	for (int i = 0; i < 10000 && !sr.done; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		if (i % 16 == 0)
			usleep(100);
	}
	CHECK_EQ_INT(sr.rc, 0);
	CHECK_EQ_INT(sr.len, STREAM_TOTAL);
	CHECK(sr.in_order);
	CHECK(stream_waits > 10);                                 /* it did wait */
	CHECK(stream_max_pending <= 64 * 1024 + STREAM_PIECE + 32); /* within the bound + a piece */
	http_client_free(&c);
	spin(20);
	CHECK_EQ_INT(http_server_buffered(srv), 0);
	http_server_free(&srv);
}

static void test_streaming_waits_for_drain(void)
{
	stream_take = false;
	streaming_waits_for_drain();
}

/* The same with pieces handed over (http_respond_chunk_take) under a
 * Content-Length: same bytes in order, same bound, every byte accounted
 * (the server's total back to 0, so each handed piece was released). */
static void test_streaming_pieces_handed_over(void)
{
	stream_take = true;
	streaming_waits_for_drain();
	stream_take = false;
}

/* Clients that do not read hold their answers in the server: accounted
 * exactly; over max_buffered_bytes a large GET answer becomes 503
 * overloaded (Retry-After, connection closed) and so does a new request
 * with a body, while a small answer still goes out; everything is released
 * when the holders go. */
#define BUFFERED_MAX (4 * 1024 * 1024)
static void test_buffered_bound_and_overloaded(void)
{
	http_server_config cfg = {.limits = limits, .header_timeout_ms = 5000, .idle_timeout_ms = 5000,
				  .write_timeout_ms = 5000, .max_connections = 100,
				  .max_buffered_bytes = BUFFERED_MAX};
	int port;
	http_server *srv = start_server_with(&cfg, &port);
	int holders[8];
	int held = 0;
	/* the kernel's socket buffers take part of each answer: enough holders
	 * to get over the bound with what stays in the server */
	while (held < 8 && http_server_buffered(srv) <= BUFFERED_MAX) {
		holders[held] = raw_connect(port, "127.0.0.1", 2048);
		raw_send(holders[held], "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
		held++;
		spin(30);
	}
	CHECK(http_server_buffered(srv) > BUFFERED_MAX);
	CHECK(http_server_buffered(srv) < BUFFERED_MAX + BIG_ANSWER + 64 * 1024); /* one answer past */
	static char out[8192];
	bool closed;
	int fd = raw_connect(port, "127.0.0.1", 0);
	raw_send(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
	raw_read(fd, out, sizeof out, NULL, &closed);
	CHECK(strncmp(out, "HTTP/1.1 503 ", 13) == 0);
	CHECK(strstr(out, "Retry-After: 1\r\n") != NULL);
	CHECK(strstr(out, "Connection: close\r\n") != NULL);
	CHECK(strstr(out, "\"code\":\"overloaded\"") != NULL);
	CHECK(closed);
	close(fd);
	fd = raw_connect(port, "127.0.0.1", 0);
	raw_send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
	raw_read(fd, out, sizeof out, NULL, &closed);
	CHECK(strncmp(out, "HTTP/1.1 503 ", 13) == 0);
	CHECK(closed);
	close(fd);
	fd = raw_connect(port, "127.0.0.1", 0);
	raw_send(fd, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	raw_read(fd, out, sizeof out, "GET||", &closed);
	CHECK(strncmp(out, "HTTP/1.1 200 ", 13) == 0); /* small answers go out */
	close(fd);
	CHECK(http_server_overloaded(srv) >= 2);
	for (int i = 0; i < held; i++)
		close(holders[i]);
	for (int i = 0; i < 2000 && http_server_connections(srv) > 0; i++) {
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	CHECK_EQ_INT(http_server_connections(srv), 0);
	CHECK_EQ_INT(http_server_buffered(srv), 0); /* the accounting is exact */
	http_server_free(&srv);
}

/* A body trickled a byte at a time is cut at body_timeout_ms from the end of
 * the head (activity does not restart it): 408 request_timeout. */
static void test_body_deadline(void)
{
	http_server_config cfg = {.limits = limits, .header_timeout_ms = 5000, .idle_timeout_ms = 5000,
				  .body_timeout_ms = 200, .max_connections = 100};
	int port;
	http_server *srv = start_server_with(&cfg, &port);
	int fd = raw_connect(port, "127.0.0.1", 0);
	raw_send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n");
	static char out[4096];
	size_t len = 0;
	for (int i = 0; i < 60 && len == 0; i++) { /* a byte each 10 ms, for up to 600 ms */
		raw_send(fd, "a");
		spin(10);
		ssize_t n = read(fd, out, sizeof out - 1);
		if (n > 0)
			len = (size_t)n;
	}
	out[len] = '\0';
	CHECK(strncmp(out, "HTTP/1.1 408 ", 13) == 0);
	CHECK(strstr(out, "\"code\":\"request_timeout\"") != NULL);
	CHECK_EQ_INT(http_server_buffered(srv) < 4096, 1); /* the body was released */
	close(fd);
	http_server_free(&srv);
}

/* max_connections_per_address: the connection over the cap is closed at
 * once; another address gets in; the count goes down when one closes. */
static void test_per_address_cap(void)
{
	http_server_config cfg = {.limits = limits, .header_timeout_ms = 5000, .idle_timeout_ms = 5000,
				  .max_connections = 100, .max_connections_per_address = 2};
	int port;
	http_server *srv = start_server_with(&cfg, &port);
	int a = raw_connect(port, "127.0.0.1", 0), b = raw_connect(port, "127.0.0.1", 0);
	spin(20);
	int over = raw_connect(port, "127.0.0.1", 0);
	static char out[4096];
	bool closed;
	raw_read(over, out, sizeof out, NULL, &closed);
	CHECK(closed);
	CHECK_EQ_INT(out[0], '\0');
	CHECK_EQ_INT(http_server_refused_per_address(srv), 1);
	int other = raw_connect(port, "127.0.0.2", 0);
	raw_send(other, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	raw_read(other, out, sizeof out, "GET||", &closed);
	CHECK(strncmp(out, "HTTP/1.1 200 ", 13) == 0);
	close(a);
	spin(20);
	int again = raw_connect(port, "127.0.0.1", 0);
	raw_send(again, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
	raw_read(again, out, sizeof out, "GET||", &closed);
	CHECK(strncmp(out, "HTTP/1.1 200 ", 13) == 0);
	CHECK_EQ_INT(http_server_refused_per_address(srv), 1);
	close(b);
	close(over);
	close(other);
	close(again);
	http_server_free(&srv);
}


/* --- streamed request bodies (http_request_stream_body) and uploads in
 * pieces (http_client_request_upload) --- */

#define UP_MAX (8u << 20)
typedef struct upload_seen {
	http_request *req;
	uint64_t bytes;
	uint32_t sum;           /* a position-dependent checksum of what arrived */
	int ends, end_rc;
	bool pause;             /* pause after each piece, resume from the loop */
	bool paused;
	size_t while_paused, max_while_paused; /* bytes that came after a pause, before its resume */
	int pauses;
} upload_seen;
static upload_seen up;

static bool watchdog_fired;

static void watchdog(evutil_socket_t fd, short what, void *arg)
{
	watchdog_fired = true;
}

/* Run the loop (blocking on its events, not spinning) until *flag, or 10 s. */
static void run_while_zero(const int *flag)
{
	watchdog_fired = false;
	struct event *w = evtimer_new(base, watchdog, NULL);
	struct timeval tv = {10, 0};
	evtimer_add(w, &tv);
	while (*flag == 0 && !watchdog_fired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(w);
}

static uint32_t up_mix(uint32_t sum, uint64_t pos, unsigned char b)
{
	return sum * 31 + (uint32_t)(pos % 251) * b + 1;
}

static void up_resume(evutil_socket_t fd, short what, void *arg)
{
	up.paused = false;
	up.while_paused = 0;
	http_request_body_resume(up.req);
}

static void up_data(http_request *req, void *arg, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		up.sum = up_mix(up.sum, up.bytes + i, (unsigned char)data[i]);
	up.bytes += len;
	if (up.paused) {
		up.while_paused += len;
		if (up.while_paused > up.max_while_paused)
			up.max_while_paused = up.while_paused;
		return;
	}
	if (up.pause) {
		up.paused = true;
		up.pauses++;
		http_request_body_pause(req);
		struct timeval now = {0, 0};
		event_base_once(base, -1, EV_TIMEOUT, up_resume, NULL, &now);
	}
}

static void up_end(http_request *req, void *arg, int rc)
{
	up.ends++;
	up.end_rc = rc;
	size_t len = 99;
	http_request_body(req, &len);
	CHECK_EQ_INT(len, 0); /* nothing collected */
	if (rc == 0) {
		char out[64];
		int n = snprintf(out, sizeof out, "%llu %08x", (unsigned long long)up.bytes, up.sum);
		http_respond(req, 200, out, (size_t)n);
	} else {
		http_respond(req, rc == ERR_LIMIT ? 413 : rc == ERR_AGAIN ? 408 : 400, NULL, 0);
	}
}

static void up_on_head(http_request *req, void *arg)
{
	const http_message *m = http_request_message(req);
	if (strncmp(m->target, "/up", 3) == 0)
		CHECK_EQ_INT(http_request_stream_body(req, UP_MAX, up_data, up_end, NULL), 0);
	else if (m->content_length <= 0 && !m->chunked) /* no body: refused (nothing to stream) */
		CHECK_EQ_INT(http_request_stream_body(req, UP_MAX, up_data, up_end, NULL), ERR_INVAL);
}

static void up_on_request(http_request *req, void *arg)
{
	const http_message *m = http_request_message(req);
	if (strncmp(m->target, "/up", 3) != 0) {
		on_request(req, arg);
		return;
	}
	up.req = req;
	CHECK_EQ_INT(http_request_stream_body(req, UP_MAX, up_data, up_end, NULL), ERR_INVAL); /* only in on_head */
	if (strcmp(m->target, "/up-early") == 0)
		http_respond(req, 413, "no", 2); /* before the body: the rest is dropped */
}

/* The producer of an upload: TOTAL bytes of a pattern, written while the
 * client has room. */
typedef struct producer {
	http_client *c;
	uint64_t total, written;
	uint32_t sum;
	size_t max_room;
	int rooms;
	bool ended;
} producer;

static void produce(void *arg)
{
	producer *pr = arg;
	pr->rooms++;
	size_t room;
	char piece[40000];
	while (!pr->ended && (room = http_client_upload_room(pr->c)) > 0) {
		if (room > pr->max_room)
			pr->max_room = room;
		size_t n = sizeof piece;
		if (n > room)
			n = room;
		if (n > pr->total - pr->written)
			n = (size_t)(pr->total - pr->written);
		for (size_t i = 0; i < n; i++) {
			piece[i] = (char)((pr->written + i) * 7 % 253);
			pr->sum = up_mix(pr->sum, pr->written + i, (unsigned char)piece[i]);
		}
		if (n && http_client_upload_write(pr->c, piece, n) != 0)
			return;
		pr->written += n;
		if (pr->written == pr->total) {
			CHECK_EQ_INT(http_client_upload_end(pr->c), 0);
			pr->ended = true;
		}
	}
}

static http_server *start_upload_server(int body_timeout_ms, int *port)
{
	http_server_config cfg = {.limits = limits, .header_timeout_ms = 5000, .idle_timeout_ms = 5000,
				  .body_timeout_ms = body_timeout_ms, .max_connections = 100};
	http_handlers h = {.on_head = up_on_head, .on_request = up_on_request};
	http_server *srv = http_server_new(base, &cfg, &h);
	CHECK(srv != NULL);
	CHECK_EQ_INT(http_server_listen(srv, "127.0.0.1:0"), 0);
	*port = http_server_port(srv);
	return srv;
}

/* Uploads of 4 MiB (Content-Length) and 1 MiB + 3 (chunked) through a
 * window of 64 KiB to a handler that pauses after every piece: every byte
 * arrives in order; the producer never had more room than the window; what
 * came during a pause is at most one read; the server held no body. Then
 * the bounds: past max (announced, or chunked) 413; an early answer ends
 * the request (later writes refused) and the client goes on with a new
 * connection. */
static void test_streamed_upload(void)
{
	int port;
	http_server *srv = start_upload_server(5000, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 5000);
	CHECK(c != NULL);
	uint64_t sizes[2] = {4u << 20, (1u << 20) + 3};
	for (int k = 0; k < 2; k++) {
		memset(&up, 0, sizeof up);
		up.pause = true;
		producer pr = {.c = c, .total = sizes[k]};
		result r = {0};
		CHECK_EQ_INT(http_client_request_upload(c, "PUT", "/up", NULL, k == 0 ? (int64_t)sizes[k] : -1,
							64 * 1024, 0, NULL, NULL, produce, on_answer, &pr),
			     0);
		/* the producer is in the request's on_room, also as r's arg: keep them apart */
		(void)r;
		run_while_zero(&up.ends);
		CHECK_EQ_INT(up.ends, 1);
		CHECK_EQ_INT(up.end_rc, 0);
		CHECK_EQ_INT(up.bytes, sizes[k]);
		CHECK_EQ_INT(up.sum, pr.sum);
		CHECK(pr.max_room <= 64 * 1024);
		CHECK(pr.rooms > 10); /* written as the window drained, not at once */
		CHECK(up.pauses > 2);
		CHECK(up.max_while_paused <= 256 * 1024); /* at most one read after a pause */
		CHECK_EQ_INT(http_server_buffered(srv) < 512 * 1024, 1);
		spin(20);
	}
	http_client_free(&c);
	http_server_free(&srv);
}

typedef struct up_result {
	result r;
	producer pr;
} up_result;

static void on_up_answer(int rc, const http_message *resp, const char *body, size_t len, void *arg)
{
	up_result *u = arg;
	on_answer(rc, resp, body, len, &u->r);
}

static void produce_u(void *arg)
{
	up_result *u = arg;
	produce(&u->pr);
}

static void upload_and_wait(http_client *c, const char *target, int64_t length, uint64_t total, up_result *u)
{
	memset(u, 0, sizeof *u);
	u->pr.c = c;
	u->pr.total = total;
	CHECK_EQ_INT(http_client_request_upload(c, "PUT", target, NULL, length, 64 * 1024, 0, NULL, NULL, produce_u,
						on_up_answer, u),
		     0);
	run_while_zero(&u->r.done);
	CHECK_EQ_INT(u->r.done, 1);
}

static void test_streamed_upload_bounds(void)
{
	int port;
	http_server *srv = start_upload_server(5000, &port);
	http_client *c = http_client_new(base, NULL, "127.0.0.1", port, NULL, &limits, 5000);
	up_result u;
	/* announced over max: refused before any byte reaches the handler */
	memset(&up, 0, sizeof up);
	upload_and_wait(c, "/up", UP_MAX + 1, UP_MAX + 1, &u);
	CHECK_EQ_INT(u.r.rc, 0);
	CHECK_EQ_INT(u.r.status, 413);
	CHECK_EQ_INT(up.end_rc, ERR_LIMIT);
	CHECK_EQ_INT(up.bytes, 0);
	CHECK(!u.pr.ended);
	CHECK_EQ_INT(http_client_upload_write(c, "x", 1), ERR_INVAL); /* the request is over */
	/* chunked, passing max: cut there */
	memset(&up, 0, sizeof up);
	upload_and_wait(c, "/up", -1, UP_MAX + 100000, &u);
	CHECK_EQ_INT(u.r.status, 413);
	CHECK_EQ_INT(up.end_rc, ERR_LIMIT);
	CHECK(up.bytes <= UP_MAX);
	/* answered early: 413 while the body is being sent */
	memset(&up, 0, sizeof up);
	upload_and_wait(c, "/up-early", 1 << 20, 1 << 20, &u);
	CHECK_EQ_INT(u.r.status, 413);
	CHECK_EQ_INT(strcmp(u.r.body, "no"), 0);
	CHECK_EQ_INT(up.ends, 0); /* answered: on_end is not called */
	/* the client goes on, on a new connection */
	memset(&up, 0, sizeof up);
	upload_and_wait(c, "/up", 70000, 70000, &u);
	CHECK_EQ_INT(u.r.status, 200);
	CHECK_EQ_INT(up.bytes, 70000);
	/* a small body: collected as usual when on_head does not stream it */
	result r = {0};
	CHECK_EQ_INT(http_client_request(c, "POST", "/echo", NULL, "abc", 3, 0, on_answer, &r), 0);
	run_until(&r, 1);
	CHECK_EQ_INT(r.status, 200);
	CHECK_EQ_INT(strcmp(r.body, "POST|abc|"), 0);
	http_client_free(&c);
	http_server_free(&srv);
}

/* A streamed body that stops arriving: on_end(ERR_AGAIN) after
 * body_timeout_ms of inactivity (not of the whole body), 408; a client
 * leaving mid-body: on_end(ERR_IO). */
static void test_streamed_body_timeout_and_gone(void)
{
	int port;
	http_server *srv = start_upload_server(200, &port);
	memset(&up, 0, sizeof up);
	int fd = raw_connect(port, "127.0.0.1", 0);
	raw_send(fd, "PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n");
	for (int i = 0; i < 30; i++) { /* 300 ms of a byte each 10 ms: activity restarts it */
		raw_send(fd, "a");
		spin(10);
	}
	CHECK_EQ_INT(up.ends, 0);
	static char out[4096];
	bool closed;
	raw_read(fd, out, sizeof out, "\r\n\r\n", &closed);
	CHECK(strncmp(out, "HTTP/1.1 408 ", 13) == 0);
	CHECK_EQ_INT(up.ends, 1);
	CHECK_EQ_INT(up.end_rc, ERR_AGAIN);
	CHECK_EQ_INT(up.bytes, 30);
	close(fd);
	memset(&up, 0, sizeof up);
	fd = raw_connect(port, "127.0.0.1", 0);
	raw_send(fd, "PUT /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
	spin(20);
	CHECK_EQ_INT(up.bytes, 5);
	close(fd);
	run_while_zero(&up.ends);
	CHECK_EQ_INT(up.ends, 1);
	CHECK_EQ_INT(up.end_rc, ERR_IO);
	spin(20);
	CHECK_EQ_INT(http_server_connections(srv), 0);
	http_server_free(&srv);
}

int main(void)
{
	evthread_use_pthreads();
	base = event_base_new();
	RUN(test_keep_alive_and_bodies);
	RUN(test_detached_request_round_trip);
	RUN(test_connection_close_then_reconnect);
	RUN(test_timeout_and_refused);
	RUN(test_connect_timeout);
	RUN(test_client_streamed_pause_abort);
	RUN(test_client_reentrant_callbacks);
	RUN(test_graceful_shutdown_waits_for_parked_request);
	RUN(test_tls_verified_and_refused);
	RUN(test_streaming_waits_for_drain);
	RUN(test_streaming_pieces_handed_over);
	RUN(test_buffered_bound_and_overloaded);
	RUN(test_body_deadline);
	RUN(test_per_address_cap);
	RUN(test_streamed_upload);
	RUN(test_streamed_upload_bounds);
	RUN(test_streamed_body_timeout_and_gone);
	event_base_free(base);
	return TEST_SUMMARY();
}
