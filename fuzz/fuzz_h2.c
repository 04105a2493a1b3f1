/*
 * fuzz_h2.c - libFuzzer target for the HTTP/2 server side (src/http/h2.c
 * and its seam in src/http/server.c): whatever frames a client sends, the
 * server must neither crash nor leak, and its memory accounting must come
 * back to zero once the connection is gone.
 *
 * One HTTP server (http2 on, no TLS: h2c by prior knowledge) lives for the
 * whole run. Each input is the bytes a client sends after the connection
 * preface (which the target writes first): it goes to the server over a
 * socketpair (http_server_adopt) in pieces whose sizes come from the input
 * itself, the loop runs between pieces, and what the server writes back is
 * read and dropped. Handlers answer in three ways chosen by the path:
 * at once with a body, streaming (start, chunks, end), or later from a
 * timer (so requests outlive reads, resets and the peer's close); /up*
 * streams its body to the handler (http_request_stream_body), which pauses
 * after each piece and resumes from a timer (/up-early answers before the
 * body). Then the
 * client side closes; the loop runs until no connection is left, and
 * http_server_buffered() must be 0.
 */
#undef NDEBUG /* the checks below are the point of this file */
#include <assert.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/log.h"
#include "http/server.h"

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static struct event_base *base;
static http_server *srv;

/* An answer given from the loop, after the read that brought the request. */
static void later_cb(evutil_socket_t fd, short what, void *arg)
{
	http_request *req = arg;
	event_free(http_request_data(req));
	http_respond(req, 200, "later", 5);
}

/* A streamed body's handler state (the request's data). */
typedef struct upstate {
	struct event *resume;
	size_t bytes;
} upstate;

static void up_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	http_request_body_resume(arg);
}

static void up_data(http_request *req, void *arg, const char *data, size_t len)
{
	upstate *u = arg;
	assert(len > 0 && data);
	u->bytes += len;
	if (u->bytes & 1) { /* paused now and then, resumed from the loop */
		http_request_body_pause(req);
		struct timeval tv = {0, 0};
		evtimer_add(u->resume, &tv);
	}
}

static void up_end(http_request *req, void *arg, int rc)
{
	upstate *u = arg;
	event_free(u->resume);
	free(u);
	http_respond(req, rc == 0 ? 200 : 400, "up", 2);
}

static void on_head(http_request *req, void *arg)
{
	const http_message *m = http_request_message(req);
	if (strncmp(m->target, "/up", 3) != 0)
		return;
	upstate *u = calloc(1, sizeof *u);
	assert(u);
	u->resume = evtimer_new(base, up_resume_cb, req);
	assert(u->resume);
	if (http_request_stream_body(req, 100000, up_data, up_end, u) != 0) {
		event_free(u->resume);
		free(u);
		return;
	}
	http_request_set_data(req, u);
}

static void on_request(http_request *req, void *arg)
{
	const http_message *m = http_request_message(req);
	upstate *u = http_request_data(req);
	if (u && strncmp(m->target, "/up-early", 9) == 0) {
		/* answered before its body: on_end will not run */
		event_free(u->resume);
		free(u);
		http_respond(req, 413, NULL, 0);
		return;
	}
	if (u)
		return; /* up_end answers */
	assert(m && m->method && m->target);
	size_t blen = 0;
	const char *body = http_request_body(req, &blen);
	assert(blen == 0 || body);
	http_response_header(req, "X-Fuzz", "1");
	if (strncmp(m->target, "/stream", 7) == 0) {
		http_respond_start(req, 200);
		for (int i = 0; i < 3; i++)
			http_respond_chunk(req, "chunk-of-data", 13);
		http_respond_end(req);
	} else if (strncmp(m->target, "/later", 6) == 0) {
		struct event *ev = evtimer_new(base, later_cb, req);
		assert(ev);
		http_request_set_data(req, ev);
		struct timeval tv = {0, 0};
		evtimer_add(ev, &tv);
	} else if (strncmp(m->target, "/abort", 6) == 0) {
		http_request_abort(req);
	} else {
		http_respond(req, 200, body, blen);
	}
}

static void setup(void)
{
	log_setup("fuzz", LOG_ERROR);
	signal(SIGPIPE, SIG_IGN); /* the client side may be closed under the server, as in tandem itself */
	base = event_base_new();
	assert(base);
	http_server_config cfg = {
		.limits = {.max_header_bytes = 4096, .max_headers = 32, .max_body_bytes = 16384,
			   .max_target_bytes = 1024},
		.header_timeout_ms = 10000,
		.idle_timeout_ms = 10000,
		.write_timeout_ms = 10000,
		.max_unsent_bytes = 65536,
		.max_buffered_bytes = 1 << 20,
		.max_connections = 16,
		.http2 = true,
	};
	http_handlers h = {.on_head = on_head, .on_request = on_request};
	srv = http_server_new(base, &cfg, &h);
	assert(srv);
}

static void drain(int fd)
{
	char sink[65536];
	while (read(fd, sink, sizeof sink) > 0) {
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!base)
		setup();
	if (size > 65536)
		return 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		return 0;
	struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	assert(http_server_adopt(srv, sv[0], (struct sockaddr *)&peer, sizeof peer) == 0);
	ssize_t w = write(sv[1], preface, sizeof preface - 1);
	assert(w == (ssize_t)(sizeof preface - 1));
	size_t off = 0;
	unsigned step = size ? data[0] : 1;
	while (off < size) {
		size_t piece = 1 + (step * 131u + off) % 4096;
		if (piece > size - off)
			piece = size - off;
		ssize_t n = write(sv[1], data + off, piece);
		if (n <= 0) { /* the server stopped reading (or closed): let it run */
			event_base_loop(base, EVLOOP_NONBLOCK);
			drain(sv[1]);
			if (write(sv[1], "", 0) < 0)
				break;
			step++;
			if (step % 64 == 0)
				break;
			continue;
		}
		off += (size_t)n;
		event_base_loop(base, EVLOOP_NONBLOCK);
		drain(sv[1]);
	}
	for (int i = 0; i < 8; i++) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		drain(sv[1]);
	}
	close(sv[1]);
	for (int i = 0; i < 1000 && http_server_connections(srv) > 0; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	assert(http_server_connections(srv) == 0);
	assert(http_server_buffered(srv) == 0);
	return 0;
}
