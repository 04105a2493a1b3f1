/*
 * client.c - HTTP/1.1 client connection; see client.h.
 *
 * States of the connection:
 *
 *   CLOSED --request queued--> CONNECTING --connected--> SENDING
 *   SENDING --(Expect: wait for 100)--> AWAIT_CONTINUE --100--> (body sent) --> READING
 *   SENDING --(head + body written)--> READING --response complete--> IDLE | CLOSED
 *   any --error/timeout--> CLOSED (the request in flight fails; the queue goes on
 *                                  with a new connection)
 *
 * An upload (http_client_request_upload) goes to READING at once, its
 * body written by the producer while the answer may already come; the
 * write low-watermark (half the window) calls the producer back.
 *
 * Invariant: at most one request is in flight; its callback runs exactly
 * once. A request that was sent on a reused keep-alive connection which the
 * server had already closed is not retried automatically (the server may
 * have executed it); callers retry with an Idempotency-Key.
 */
#include "http/client.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

typedef struct client_req {
	char *head;          /* the serialized head */
	size_t head_len;
	const char *body;    /* within body_mem */
	char *body_mem;      /* ours to free; NULL once the output evbuffer holds it */
	size_t body_len;
	int flags;
	bool no_body_answer; /* HEAD */
	http_client_cb cb;
	http_client_data_cb on_data; /* streaming */
	http_client_head_cb on_head; /* the answer's head: stream its body? */
	/* an upload: the body comes from the producer */
	bool upload;
	bool upload_ended;
	int64_t upload_length;       /* -1: chunked */
	uint64_t upload_written;
	size_t upload_window;
	http_client_room_cb on_room;
	void *arg;
	struct client_req *next;
} client_req;

typedef enum { CLIENT_CLOSED, CLIENT_CONNECTING, CLIENT_AWAIT_CONTINUE, CLIENT_READING, CLIENT_IDLE } client_state;

struct http_client {
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	char host[256];
	char sni[256];
	int port;
	http_limits limits;
	int timeout_ms;
	int connect_timeout_ms;         /* 0: timeout_ms bounds the connection too */
	struct bufferevent *bev;
	struct event *timer;
	http_parser *parser;
	client_state state;
	client_req *queue, *queue_tail; /* queue head is the request in flight */
	bool in_flight;
	bool connected;                 /* the connection (and its handshake) is up */
	char source[64];                /* local address to bind, or "" */
	char error[192];                /* why the last request failed ("" : it did not) */
	int error_errno;                /* its socket errno, 0 when not a socket error */
	http_client_connect_failed_cb on_connect_failed;
	void *on_connect_failed_arg;
	bool paused;                    /* http_client_pause: not reading the answer */
	struct event *abort_ev;         /* http_client_abort, run from the loop */
	struct event *room_ev;          /* an upload's on_room, run from the loop */
	bool completing;                /* in a request's callback: a request queued from
					 * there starts once the one that ended is finished
					 * with (its connection closed or made idle) */
};

static void client_start_next(http_client *c);
static void client_write_cb(struct bufferevent *bev, void *arg);
static void client_read_cb(struct bufferevent *bev, void *arg);
static void client_event_cb(struct bufferevent *bev, short what, void *arg);
static client_req *client_uploading(const http_client *c);
static void client_arm_timer(http_client *c);
static void client_room_cb(evutil_socket_t fd, short what, void *arg);

/* The write callback on or off. On only while an upload's body is sent: a
 * bufferevent with a write callback schedules it as a deferred callback
 * (holding a reference) whenever its output drains, and a connection freed
 * with one pending is only released when the loop runs again; a command
 * line process freeing its base right after its last answer (tandem
 * verify under LeakSanitizer) would leak the whole TLS connection. */
static void client_watch_writes(http_client *c, bool on)
{
	if (c->bev)
		bufferevent_setcb(c->bev, client_read_cb, on ? client_write_cb : NULL, client_event_cb, c);
}

static void client_close_connection(http_client *c)
{
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->state = CLIENT_CLOSED;
	c->connected = false;
	c->paused = false; /* a new connection reads */
}

static void client_set_error(http_client *c, int sys_errno, const char *fmt, const char *detail)
{
	snprintf(c->error, sizeof c->error, fmt, detail);
	c->error_errno = sys_errno;
}

/*
 * Why the connection failed, in words an operator can act on (the
 * certificate's verify result, the peer's TLS alert, or the socket's
 * errno), into c->error. Returns ERR_TLS for a TLS failure, else ERR_IO.
 * The OpenSSL bufferevent also queues SSL_get_error() codes (such as
 * SSL_ERROR_SYSCALL for a refused connection) among its errors: those
 * carry no library and are not TLS failures.
 */
static int client_diagnose(http_client *c, struct bufferevent *bev, short what, int sys_errno)
{
	unsigned long e, tls_error = 0;
	bool queued = false;
	while ((e = bufferevent_get_openssl_error(bev))) {
		queued = true;
		if (ERR_GET_LIB(e) != 0 && !tls_error)
			tls_error = e;
	}
	SSL *ssl = c->ssl_ctx ? bufferevent_openssl_get_ssl(bev) : NULL;
	long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	int dns = bufferevent_socket_get_dns_error(bev);
	if (verify != X509_V_OK) {
		client_set_error(c, 0, "certificate verify failed: %s", X509_verify_cert_error_string(verify));
		return ERR_TLS;
	}
	if (tls_error) {
		const char *reason = ERR_reason_error_string(tls_error);
		client_set_error(c, 0, "TLS: %s", reason ? reason : "handshake failed");
		return ERR_TLS;
	}
	if (dns) {
		client_set_error(c, 0, "cannot resolve the name: %s", gai_strerror(dns));
		return ERR_IO;
	}
	if (sys_errno) {
		client_set_error(c, sys_errno, "%s", strerror(sys_errno));
		c->error[0] = (char)tolower((unsigned char)c->error[0]);
		return ERR_IO;
	}
	if (what & BEV_EVENT_EOF)
		client_set_error(c, 0, "%s", c->connected ? "connection closed by the peer"
							 : "connection closed by the peer during the handshake");
	else
		client_set_error(c, 0, "%s", queued ? "TLS: handshake failed" : "connection failed");
	return ERR_IO;
}

static void client_req_free(client_req *r)
{
	free(r->head);
	free(r->body_mem);
	free(r);
}

/* Finish the request in flight with rc (and the answer when rc == 0). */
static void client_complete(http_client *c, int rc)
{
	client_req *r = c->queue;
	if (!r || !c->in_flight)
		return;
	c->queue = r->next;
	if (!c->queue)
		c->queue_tail = NULL;
	c->in_flight = false;
	evtimer_del(c->timer);
	if (c->abort_ev) /* an abandonment still pending was this request's, not the next's */
		evtimer_del(c->abort_ev);
	if (c->room_ev)
		event_del(c->room_ev);
	if (r->upload && c->bev)
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	if (c->paused) { /* paused by its reader: the next request on this connection reads */
		c->paused = false;
		if (c->bev)
			bufferevent_enable(c->bev, EV_READ);
	}
	c->completing = true;
	if (rc == 0) {
		size_t len;
		const char *body = http_parser_body(c->parser, &len);
		r->cb(0, http_parser_message(c->parser), body, len, r->arg);
	} else {
		r->cb(rc, NULL, NULL, 0, r->arg);
	}
	c->completing = false;
	client_req_free(r);
}

/* A failure of the connection itself (not of a request on it): before it
 * was up, or a TLS failure (alerts can follow a TLS 1.3 handshake). */
static void client_report_connect_failure(http_client *c, int rc, bool was_connected)
{
	if (c->on_connect_failed && c->in_flight && (!was_connected || rc == ERR_TLS))
		c->on_connect_failed(c->on_connect_failed_arg, c, c->error[0] ? c->error : err_str(rc),
				     c->error_errno);
}

static void client_fail(http_client *c, int rc)
{
	client_report_connect_failure(c, rc, c->connected);
	client_close_connection(c);
	client_complete(c, rc);
	client_start_next(c);
}

static void body_release(const void *data, size_t len, void *mem)
{
	free(mem);
}

static void client_send_body(http_client *c, client_req *r)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	if (r->flags & HTTP_CLIENT_CHUNKED) {
		if (r->body_len) {
			evbuffer_add_printf(out, "%zx\r\n", r->body_len);
			evbuffer_add(out, r->body, r->body_len);
			evbuffer_add(out, "\r\n", 2);
		}
		evbuffer_add(out, "0\r\n\r\n", 5);
	} else if (r->body_len) {
		/* by reference: the body is not copied again (1 MiB segments);
		 * on failure (out of memory) copied after all */
		if (evbuffer_add_reference(out, r->body, r->body_len, body_release, r->body_mem) == 0)
			r->body_mem = NULL; /* the evbuffer frees it once sent or dropped */
		else
			evbuffer_add(out, r->body, r->body_len);
	}
}

/* Streaming body bytes: to the request's on_data; activity restarts the
 * timeout. */
static void client_sink(void *arg, const char *data, size_t len)
{
	http_client *c = arg;
	client_req *r = c->queue;
	struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
	if (!c->paused) /* paused by on_data (below): the timer waits for the resume */
		evtimer_add(c->timer, &tv);
	if (r && r->on_data)
		r->on_data(r->arg, data, len);
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	http_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (c->in_flight && !c->paused) {
		struct evbuffer_iovec v = {NULL, 0};
		evbuffer_peek(in, -1, NULL, &v, 1);
		size_t used = 0;
		int rc = http_parser_feed(c->parser, v.iov_base, v.iov_len, &used);
		evbuffer_drain(in, used);
		if (rc < 0) {
			client_fail(c, rc);
			return;
		}
		if (rc == HTTP_PARSE_HEAD) {
			const http_message *m = http_parser_message(c->parser);
			if (c->queue->no_body_answer)
				http_parser_set_no_body(c->parser);
			if (c->queue->on_head && m->status >= 200) {
				if (c->queue->on_head(c->queue->arg, m))
					http_parser_set_body_sink(c->parser, client_sink, c);
			} else if (c->queue->on_data && m->status >= 200 && m->status < 300) {
				http_parser_set_body_sink(c->parser, client_sink, c);
			}
			continue;
		}
		if (rc == HTTP_PARSE_DONE) {
			const http_message *m = http_parser_message(c->parser);
			if (m->status >= 100 && m->status < 200) {
				/* interim answer: 100 Continue releases the body */
				if (m->status == 100 && c->state == CLIENT_AWAIT_CONTINUE) {
					client_send_body(c, c->queue);
					c->state = CLIENT_READING;
				}
				http_parser_reset(c->parser);
				continue;
			}
			bool keep = m->keep_alive;
			if (c->state == CLIENT_AWAIT_CONTINUE || (c->queue->upload && !c->queue->upload_ended))
				keep = false; /* answered without reading our body */
			client_complete(c, 0);
			http_parser_reset(c->parser);
			if (keep) {
				c->state = CLIENT_IDLE;
			} else {
				client_close_connection(c);
			}
			client_start_next(c);
			return;
		}
		if (used == 0 || evbuffer_get_length(in) == 0)
			break;
	}
}

/*
 * The errno that explains a failed connection, or 0. errno is only
 * meaningful when the last socket call failed: the OpenSSL bufferevent
 * reports a refused connection as an end of file (a "dirty shutdown")
 * with errno ECONNREFUSED, while a plain end of file may leave a stale
 * EAGAIN there. So an end of file keeps only errors of the connection.
 */
static int client_socket_errno(int e, short what)
{
	switch (e) {
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENETDOWN:
	case EPIPE:
		return e;
	case 0:
	case EAGAIN:
	case EINPROGRESS:
	case EINTR:
		return 0;
	default:
		return (what & BEV_EVENT_EOF) ? 0 : e;
	}
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	http_client *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		c->connected = true;
		if (client_uploading(c)) { /* the body's progress arms it (client_write_cb) */
			if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
				evtimer_del(c->timer);
			else
				client_arm_timer(c);
		} else if (c->connect_timeout_ms && c->in_flight) { /* from now on the answer's own timeout */
			struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
			evtimer_add(c->timer, &tv);
		}
		return;
	}
	if ((what & BEV_EVENT_EOF) && c->in_flight) {
		int rc = http_parser_finish(c->parser);
		if (rc == HTTP_PARSE_DONE) { /* body delimited by close */
			client_complete(c, 0);
			client_close_connection(c);
			client_start_next(c);
			return;
		}
	}
	int sys_errno = client_socket_errno(EVUTIL_SOCKET_ERROR(), what);
	int rc = client_diagnose(c, bev, what, sys_errno);
	log_debug("client %s:%d: %s", c->host, c->port, c->error);
	if (c->in_flight)
		client_fail(c, rc);
	else
		client_close_connection(c); /* idle connection closed by the server */
}

static void client_arm_timer(http_client *c)
{
	struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
	evtimer_add(c->timer, &tv);
}

/* An upload in flight whose body has not ended, or NULL. */
static client_req *client_uploading(const http_client *c)
{
	client_req *r = c->queue;
	return c->in_flight && r && r->upload && !r->upload_ended && c->bev ? r : NULL;
}

/* The output drained (to the write low-watermark): an upload's producer
 * may write more; the timer follows the origin's progress. */
static void client_write_cb(struct bufferevent *bev, void *arg)
{
	http_client *c = arg;
	client_req *r = client_uploading(c);
	if (!r)
		return;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		evtimer_del(c->timer); /* all taken: waiting for the producer, not the origin */
	else if (!c->paused)
		client_arm_timer(c);
	if (r->on_room)
		r->on_room(r->arg);
}

static void client_room_cb(evutil_socket_t fd, short what, void *arg)
{
	http_client *c = arg;
	client_req *r = client_uploading(c);
	if (r && r->on_room)
		r->on_room(r->arg);
}

static void client_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	http_client *c = arg;
	char what_timed_out[96];
	bool connecting = !c->connected && c->connect_timeout_ms;
	snprintf(what_timed_out, sizeof what_timed_out, "%s within %d ms",
		 c->connected ? "no answer" : "timeout: no connection",
		 connecting ? c->connect_timeout_ms : c->timeout_ms);
	client_set_error(c, ETIMEDOUT, "%s", what_timed_out);
	/* connecting: nothing was sent, a connection failure, not an answer's timeout */
	client_fail(c, connecting ? ERR_IO : ERR_AGAIN);
}

void http_client_set_source(http_client *c, const char *addr)
{
	snprintf(c->source, sizeof c->source, "%s", addr ? addr : "");
}

/* Connect from c->source (numeric addresses only: the link's are). */
static int client_connect_from(http_client *c)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *to = NULL, *from = NULL;
	char port[16];
	snprintf(port, sizeof port, "%d", c->port);
	int rc = ERR_IO;
	if (getaddrinfo(c->host, port, &hints, &to) != 0 || getaddrinfo(c->source, "0", &hints, &from) != 0)
		goto done;
	evutil_socket_t fd = socket(to->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto done;
	if (from->ai_family != to->ai_family || bind(fd, from->ai_addr, from->ai_addrlen) != 0 ||
	    bufferevent_setfd(c->bev, fd) != 0) {
		close(fd);
		goto done;
	}
	if (bufferevent_socket_connect(c->bev, to->ai_addr, (int)to->ai_addrlen) == 0)
		rc = 0;
done:
	if (to)
		freeaddrinfo(to);
	if (from)
		freeaddrinfo(from);
	return rc;
}

static int client_connect(http_client *c)
{
	if (c->ssl_ctx) {
		SSL *ssl = SSL_new(c->ssl_ctx);
		if (!ssl)
			return ERR_TLS;
		SSL_set_tlsext_host_name(ssl, c->sni);
		/* verify the peer's name: IP SAN for addresses, DNS otherwise */
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
		if (X509_VERIFY_PARAM_set1_ip_asc(param, c->sni) != 1)
			SSL_set1_host(ssl, c->sni);
		c->bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
							BEV_OPT_CLOSE_ON_FREE);
		if (!c->bev) {
			SSL_free(ssl);
			return ERR_NOMEM;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	} else {
		c->bev = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
		if (!c->bev)
			return ERR_NOMEM;
	}
	/* no write callback but while an upload is sent (client_watch_writes) */
	bufferevent_setcb(c->bev, client_read_cb, NULL, client_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	if (c->source[0]) {
		if (client_connect_from(c) != 0) {
			client_close_connection(c);
			return ERR_IO;
		}
		c->state = CLIENT_CONNECTING;
		return 0;
	}
	if (bufferevent_socket_connect_hostname(c->bev, NULL, AF_UNSPEC, c->host, c->port) != 0) {
		client_close_connection(c);
		return ERR_IO;
	}
	c->state = CLIENT_CONNECTING;
	return 0;
}

/* Every caller of client_complete calls this after it, once the connection
 * is settled (idle, or closed): a request the callback queued is not sent
 * on a connection about to be closed or reset. */
static void client_start_next(http_client *c)
{
	if (c->completing)
		return;
	while (c->queue && !c->in_flight) {
		client_req *r = c->queue;
		if (!c->bev) {
			int rc = client_connect(c);
			if (rc != 0) {
				client_set_error(c, errno, "cannot connect: %s", strerror(errno));
				c->in_flight = true;
				client_report_connect_failure(c, rc, false);
				client_complete(c, rc);
				continue;
			}
		}
		c->in_flight = true;
		c->error[0] = '\0';
		c->error_errno = 0;
		http_parser_reset(c->parser);
		int ms = !c->connected && c->connect_timeout_ms && c->connect_timeout_ms < c->timeout_ms
				 ? c->connect_timeout_ms
				 : c->timeout_ms;
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
		evtimer_add(c->timer, &tv);
		struct evbuffer *out = bufferevent_get_output(c->bev);
		evbuffer_add(out, r->head, r->head_len);
		if (r->upload) {
			/* the body follows from the producer; the answer may come meanwhile */
			c->state = CLIENT_READING;
			evtimer_del(c->timer); /* armed as the body's bytes wait in the output */
			if (!c->connected)
				evtimer_add(c->timer, &tv); /* the connection's */
			bufferevent_setwatermark(c->bev, EV_WRITE, r->upload_window / 2, 0);
			client_watch_writes(c, true);
			if (c->room_ev)
				event_active(c->room_ev, EV_TIMEOUT, 1);
		} else if (r->flags & HTTP_CLIENT_EXPECT_CONTINUE) {
			c->state = CLIENT_AWAIT_CONTINUE;
		} else {
			client_send_body(c, r);
			c->state = CLIENT_READING;
		}
	}
}

http_client *http_client_new(struct event_base *base, SSL_CTX *ssl_ctx, const char *host, int port,
			     const char *sni, const http_limits *limits, int timeout_ms)
{
	http_client *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->base = base;
	c->ssl_ctx = ssl_ctx;
	snprintf(c->host, sizeof c->host, "%s", host);
	snprintf(c->sni, sizeof c->sni, "%s", sni ? sni : host);
	c->port = port;
	c->limits = *limits;
	c->timeout_ms = timeout_ms;
	c->parser = http_parser_new(HTTP_RESPONSE, limits);
	c->timer = evtimer_new(base, client_timeout_cb, c);
	if (!c->parser || !c->timer) {
		http_client_free(&c);
		return NULL;
	}
	return c;
}

/* r joins the end of the queue; sent when its turn comes. */
static void client_queue(http_client *c, client_req *r)
{
	if (c->queue_tail)
		c->queue_tail->next = r;
	else
		c->queue = r;
	c->queue_tail = r;
	client_start_next(c);
}

/* mem: the body's block, owned from here on (NULL: body is copied). */
static int client_enqueue(http_client *c, const char *method, const char *target, const char *headers,
			  char *mem, const char *body, size_t len, int flags, http_client_cb cb,
			  http_client_data_cb on_data, http_client_head_cb on_head, void *arg)
{
	if (strpbrk(method, " \r\n") || strpbrk(target, " \r\n") || !*target) {
		free(mem);
		return ERR_INVAL;
	}
	client_req *r = calloc(1, sizeof *r);
	if (!r) {
		free(mem);
		return ERR_NOMEM;
	}
	r->body_mem = mem;
	r->body = mem ? body : NULL;
	buf head;
	buf_init(&head, 1 << 20);
	int rc = (flags & HTTP_CLIENT_OWN_HOST)
			 ? buf_printf(&head, "%s %s HTTP/1.1\r\n%s", method, target, headers ? headers : "")
			 : buf_printf(&head, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%s", method, target, c->sni, c->port,
				      headers ? headers : "");
	if (rc == 0 && (flags & HTTP_CLIENT_CHUNKED))
		rc = buf_adds(&head, "Transfer-Encoding: chunked\r\n");
	else if (rc == 0 && (len || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
			     strcmp(method, "PATCH") == 0))
		rc = buf_printf(&head, "Content-Length: %zu\r\n", len);
	if (rc == 0 && (flags & HTTP_CLIENT_EXPECT_CONTINUE))
		rc = buf_adds(&head, "Expect: 100-continue\r\n");
	if (rc == 0)
		rc = buf_adds(&head, "\r\n");
	if (rc == 0 && len && !mem) {
		r->body_mem = malloc(len);
		if (!r->body_mem)
			rc = ERR_NOMEM;
		else
			memcpy(r->body_mem, body, len);
		r->body = r->body_mem;
	}
	if (rc != 0) {
		buf_free(&head);
		client_req_free(r);
		return rc;
	}
	r->head = buf_take(&head, &r->head_len);
	r->body_len = len;
	r->flags = flags;
	r->no_body_answer = strcmp(method, "HEAD") == 0;
	r->cb = cb;
	r->on_data = on_data;
	r->on_head = on_head;
	r->arg = arg;
	client_queue(c, r);
	return 0;
}

/* An upload's request: head with the caller's framing line (in headers),
 * no body of its own. */
static int client_enqueue_upload(http_client *c, const char *method, const char *target, const char *headers,
				 int64_t length, size_t window, http_client_head_cb on_head,
				 http_client_data_cb on_data, http_client_room_cb on_room, http_client_cb cb, void *arg,
				 int flags)
{
	if (strpbrk(method, " \r\n") || strpbrk(target, " \r\n") || !*target)
		return ERR_INVAL;
	client_req *r = calloc(1, sizeof *r);
	if (!r)
		return ERR_NOMEM;
	buf head;
	buf_init(&head, 1 << 20);
	int rc = (flags & HTTP_CLIENT_OWN_HOST)
			 ? buf_printf(&head, "%s %s HTTP/1.1\r\n%s\r\n", method, target, headers)
			 : buf_printf(&head, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", method, target, c->sni, c->port,
				      headers);
	if (rc != 0) {
		buf_free(&head);
		free(r);
		return rc;
	}
	r->head = buf_take(&head, &r->head_len);
	r->flags = flags;
	r->no_body_answer = strcmp(method, "HEAD") == 0;
	r->cb = cb;
	r->on_data = on_data;
	r->on_head = on_head;
	r->on_room = on_room;
	r->upload = true;
	r->upload_length = length;
	r->upload_window = window;
	r->arg = arg;
	client_queue(c, r);
	return 0;
}

int http_client_request(http_client *c, const char *method, const char *target, const char *headers,
			const char *body, size_t len, int flags, http_client_cb cb, void *arg)
{
	return client_enqueue(c, method, target, headers, NULL, body, len, flags, cb, NULL, NULL, arg);
}

int http_client_request_take(http_client *c, const char *method, const char *target, const char *headers,
			     char *mem, const char *body, size_t len, int flags, http_client_cb cb, void *arg)
{
	if (!mem && len)
		return ERR_INVAL;
	return client_enqueue(c, method, target, headers, mem, body, len, flags, cb, NULL, NULL, arg);
}

int http_client_stream(http_client *c, const char *method, const char *target, const char *headers,
		       http_client_data_cb on_data, http_client_cb cb, void *arg)
{
	return client_enqueue(c, method, target, headers, NULL, NULL, 0, 0, cb, on_data, NULL, arg);
}

int http_client_request_streamed(http_client *c, const char *method, const char *target, const char *headers,
				 const char *body, size_t len, int flags, http_client_head_cb on_head,
				 http_client_data_cb on_data, http_client_cb cb, void *arg)
{
	return client_enqueue(c, method, target, headers, NULL, body, len, flags, cb, on_data, on_head, arg);
}

int http_client_request_upload(http_client *c, const char *method, const char *target, const char *headers,
			       int64_t length, size_t window, int flags, http_client_head_cb on_head,
			       http_client_data_cb on_data, http_client_room_cb on_room, http_client_cb cb,
			       void *arg)
{
	if (!c->room_ev && !(c->room_ev = event_new(c->base, -1, 0, client_room_cb, c)))
		return ERR_NOMEM;
	char framing[64] = "Transfer-Encoding: chunked\r\n";
	if (length >= 0)
		snprintf(framing, sizeof framing, "Content-Length: %lld\r\n", (long long)length);
	buf lines;
	buf_init(&lines, 1 << 20);
	if (buf_adds(&lines, headers ? headers : "") != 0 || buf_adds(&lines, framing) != 0) {
		buf_free(&lines);
		return ERR_NOMEM;
	}
	/* the framing is ours (no Content-Length added, no body of the request's own) */
	int rc = client_enqueue_upload(c, method, target, lines.data, length, window ? window : 1 << 20, on_head,
				       on_data, on_room, cb, arg, flags & HTTP_CLIENT_OWN_HOST);
	buf_free(&lines);
	return rc;
}

size_t http_client_upload_room(const http_client *c)
{
	client_req *r = client_uploading(c);
	if (!r)
		return 0;
	size_t pending = evbuffer_get_length(bufferevent_get_output(c->bev));
	return pending < r->upload_window ? r->upload_window - pending : 0;
}

int http_client_upload_write(http_client *c, const char *data, size_t len)
{
	client_req *r = client_uploading(c);
	if (!r || (r->upload_length >= 0 && r->upload_written + len > (uint64_t)r->upload_length))
		return ERR_INVAL;
	if (len == 0)
		return 0;
	struct evbuffer *out = bufferevent_get_output(c->bev);
	int rc = 0;
	if (r->upload_length < 0)
		rc |= evbuffer_add_printf(out, "%zx\r\n", len) < 0;
	rc |= evbuffer_add(out, data, len);
	if (r->upload_length < 0)
		rc |= evbuffer_add(out, "\r\n", 2);
	if (rc != 0)
		return ERR_NOMEM;
	r->upload_written += len;
	if (!c->paused && c->connected)
		client_arm_timer(c); /* the origin has this long to take some of it */
	return 0;
}

int http_client_upload_end(http_client *c)
{
	client_req *r = client_uploading(c);
	if (!r || (r->upload_length >= 0 && r->upload_written != (uint64_t)r->upload_length))
		return ERR_INVAL;
	if (r->upload_length < 0 && evbuffer_add(bufferevent_get_output(c->bev), "0\r\n\r\n", 5) != 0)
		return ERR_NOMEM;
	r->upload_ended = true;
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	client_watch_writes(c, false);
	if (!c->paused)
		client_arm_timer(c); /* now the answer's */
	return 0;
}

void http_client_pause(http_client *c)
{
	if (c->paused || !c->bev)
		return;
	c->paused = true;
	bufferevent_disable(c->bev, EV_READ);
	evtimer_del(c->timer); /* the reader is slow, not the origin */
}

void http_client_resume(http_client *c)
{
	if (!c->paused)
		return;
	c->paused = false;
	if (!c->bev)
		return;
	if (c->in_flight) {
		struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
		evtimer_add(c->timer, &tv);
	}
	bufferevent_enable(c->bev, EV_READ);
	/* what was read before the pause is still in the input buffer: from the loop */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)))
		bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void client_abort_cb(evutil_socket_t fd, short what, void *arg)
{
	http_client *c = arg;
	if (!c->in_flight)
		return;
	client_set_error(c, 0, "%s", "abandoned by the caller");
	c->paused = false;
	client_close_connection(c);
	client_complete(c, ERR_IO);
	client_start_next(c);
}

void http_client_abort(http_client *c)
{
	if (!c->in_flight)
		return;
	http_client_pause(c);
	if (!c->abort_ev)
		c->abort_ev = evtimer_new(c->base, client_abort_cb, c);
	if (c->abort_ev) {
		struct timeval now = {0, 0};
		evtimer_add(c->abort_ev, &now);
	}
}

void http_client_set_connect_timeout(http_client *c, int ms)
{
	c->connect_timeout_ms = ms > 0 ? ms : 0;
}

void http_client_on_connect_failed(http_client *c, http_client_connect_failed_cb cb, void *arg)
{
	c->on_connect_failed = cb;
	c->on_connect_failed_arg = arg;
}

const char *http_client_name(const http_client *c)
{
	return c->sni;
}

const char *http_client_hostport(const http_client *c, char *out, size_t cap)
{
	snprintf(out, cap, strchr(c->host, ':') ? "[%s]:%d" : "%s:%d", c->host, c->port);
	return out;
}

const char *http_client_error(const http_client *c, int *sys_errno)
{
	if (sys_errno)
		*sys_errno = c->error_errno;
	return c->error;
}

void http_client_free(http_client **pc)
{
	http_client *c = *pc;
	if (!c)
		return;
	client_close_connection(c);
	if (c->in_flight)
		client_complete(c, ERR_IO);
	while (c->queue) {
		c->in_flight = true;
		client_complete(c, ERR_IO);
	}
	if (c->timer)
		event_free(c->timer);
	if (c->abort_ev)
		event_free(c->abort_ev);
	if (c->room_ev)
		event_free(c->room_ev);
	http_parser_free(&c->parser);
	free(c);
	*pc = NULL;
}
