/*
 * client.h - the HTTP/1.1 client side of the HTTP layer: one keep-alive
 * connection to one origin (host:port), TLS (verified, with SNI) or plain,
 * the same strict parser as the server (in response mode). Used by the
 * replication link and write forwarding (regions talk to each other over
 * it), the edge, the drill and the tests.
 *
 * Requests are queued and sent one at a time in order; the connection is
 * opened on first use and reopened when the server closed it between
 * requests. A request body can go out as-is (Content-Length), chunked, or
 * after an `Expect: 100-continue`.
 */
#ifndef TANDEM_HTTP_CLIENT_H
#define TANDEM_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "http/parser.h"

typedef struct http_client http_client;

enum {
	HTTP_CLIENT_CHUNKED = 1,         /* send the body with Transfer-Encoding: chunked */
	HTTP_CLIENT_EXPECT_CONTINUE = 2, /* send Expect: 100-continue, body after the 100 */
	HTTP_CLIENT_OWN_HOST = 4,        /* the caller's headers carry Host (a proxy passing the
					  * client's on): none added */
};

/*
 * Called once per request on the loop thread. rc 0: resp/body are the
 * answer (valid only during the call). rc < 0: ERR_IO (connection failed or
 * closed mid-answer), ERR_TLS (handshake or verification), ERR_AGAIN
 * (timeout), ERR_PARSE/ERR_LIMIT (bad answer); resp is NULL. cb may queue
 * requests on the same client: they are sent once the request that ended
 * is finished with (on the kept connection, or a new one after a close).
 */
typedef void (*http_client_cb)(int rc, const http_message *resp, const char *body, size_t len,
			       void *arg);

/* A client for host:port. ssl_ctx NULL: plain HTTP. sni: the name to send
 * and verify (NULL: host). timeout_ms bounds each request. NULL on failure. */
http_client *http_client_new(struct event_base *base, SSL_CTX *ssl_ctx, const char *host, int port,
			     const char *sni, const http_limits *limits, int timeout_ms);
/*
 * Queue a request. headers: extra header lines ("Name: value\r\n"...) or
 * NULL; Host, Content-Length / Transfer-Encoding are added. The body is
 * copied. 0, or ERR_NOMEM / ERR_INVAL (cb not called).
 */
int http_client_request(http_client *c, const char *method, const char *target, const char *headers,
			const char *body, size_t len, int flags, http_client_cb cb, void *arg);
/*
 * The same without copying the body: body (len bytes, lying within mem, a
 * malloc'd block) goes to the connection by reference, and the client owns
 * mem from this call on, whatever happens (freed once the bytes are sent or
 * the request ends; also when this fails). For large bodies (object
 * replication's 1 MiB segments).
 */
int http_client_request_take(http_client *c, const char *method, const char *target, const char *headers,
			     char *mem, const char *body, size_t len, int flags, http_client_cb cb, void *arg);
/*
 * A streaming request (a long-lived answer such as the replication stream):
 * when the answer is 2xx, its body bytes go to on_data as they arrive (the
 * timeout then bounds inactivity, not the whole answer) and cb runs when it
 * ends (rc 0, empty body) or fails. A non-2xx answer is collected and given
 * to cb as usual.
 */
typedef void (*http_client_data_cb)(void *arg, const char *data, size_t len);
int http_client_stream(http_client *c, const char *method, const char *target, const char *headers,
		       http_client_data_cb on_data, http_client_cb cb, void *arg);
/*
 * A request whose answer may be streamed (a proxy relaying it): on_head
 * runs when the answer's head is in (status >= 200), before any body byte;
 * when it returns true, the body's bytes go to on_data as they arrive (no
 * body limit: the caller bounds what it keeps) and cb ends it (rc 0 and an
 * empty body once complete, or the error that cut it); when false, the
 * body is collected for cb as with http_client_request. The fields of the
 * message given to on_head stay valid until cb returns.
 */
typedef bool (*http_client_head_cb)(void *arg, const http_message *resp);
int http_client_request_streamed(http_client *c, const char *method, const char *target, const char *headers,
				 const char *body, size_t len, int flags, http_client_head_cb on_head,
				 http_client_data_cb on_data, http_client_cb cb, void *arg);
/*
 * A request whose body comes in pieces (an upload relayed as it arrives):
 * the head goes with Content-Length: length (length >= 0) or
 * Transfer-Encoding: chunked (length < 0); once the request is in flight,
 * the producer writes with http_client_upload_write while
 * http_client_upload_room() > 0 and ends with http_client_upload_end (with
 * a length: after exactly length bytes). At most window bytes of the body
 * wait in the connection's output: on_room(arg) runs (from the event loop)
 * when the request starts and whenever what waits is down to half of it,
 * until the end. The answer is handled as for request_streamed, and may
 * come before the body's end (an early 413 or 401): the connection is then
 * not reused, and writes after cb are refused. While the body is being
 * sent, timeout_ms bounds the origin's taking no byte of what waits (an
 * empty output with the producer idle is not the origin's fault: no
 * timer); after the end, the answer. 0, or ERR_NOMEM / ERR_INVAL.
 */
typedef void (*http_client_room_cb)(void *arg);
int http_client_request_upload(http_client *c, const char *method, const char *target, const char *headers,
			       int64_t length, size_t window, int flags, http_client_head_cb on_head,
			       http_client_data_cb on_data, http_client_room_cb on_room, http_client_cb cb,
			       void *arg);
/* Bytes the producer may write now (0: wait for on_room; also when no
 * upload is in flight or its body ended). */
size_t http_client_upload_room(const http_client *c);
/* Queue body bytes (copied; chunked: one chunk). 0, ERR_INVAL (no upload
 * in flight, its body ended, or more than the announced length),
 * ERR_NOMEM. Never calls back. */
int http_client_upload_write(http_client *c, const char *data, size_t len);
/* The body is complete (chunked: the last chunk goes). 0 or ERR_INVAL
 * (no upload in flight, or short of the announced length). */
int http_client_upload_end(http_client *c);
/* Stop reading the answer in flight (its reader is slow: what is read
 * stays in the socket's buffers, and the origin is pushed back by TCP); the
 * timeout is suspended meanwhile. Resume reads again (at once from what was
 * read before the pause). A new connection starts unpaused. */
void http_client_pause(http_client *c);
void http_client_resume(http_client *c);
/* Give up the request in flight (its reader left): from the event loop,
 * soon after this returns, the connection is closed and the request ends
 * with ERR_IO ("abandoned by the caller"). Safe inside this client's own
 * callbacks. No effect when nothing is in flight. */
void http_client_abort(http_client *c);
/* Bound the making of a connection (TCP and TLS handshake) by ms, apart
 * from the answer's timeout_ms (which then starts once connected); a
 * connection not made in time fails the request with ERR_IO ("timeout: no
 * connection"), as a refused one: nothing was sent. 0: timeout_ms bounds
 * both (the default). */
void http_client_set_connect_timeout(http_client *c, int ms);
/* Bind the connection's local address to addr (a numeric IP) before
 * connecting, so that network rules can tell components apart. */
void http_client_set_source(http_client *c, const char *addr);
/*
 * Why the last failed request failed, for messages: the certificate's
 * verify result ("certificate verify failed: certificate has expired"), the
 * peer's TLS alert, the socket error ("connection refused"), or a timeout;
 * "" when the last request did not fail. Valid until the next request
 * starts (read it in the callback). *sys_errno (may be NULL) gets the
 * socket's errno (ECONNREFUSED, ETIMEDOUT...) or 0 for other causes.
 */
const char *http_client_error(const http_client *c, int *sys_errno);
/*
 * Watch connection attempts: cb runs, before the request's own callback,
 * each time a connection to the origin cannot be made (refused, no route,
 * timeout, TLS handshake or certificate failure, also when the peer's TLS
 * alert comes right after a TLS 1.3 handshake). why is http_client_error()'s
 * text, sys_errno its errno. cb NULL: stop watching.
 */
typedef void (*http_client_connect_failed_cb)(void *arg, const http_client *c, const char *why,
					      int sys_errno);
void http_client_on_connect_failed(http_client *c, http_client_connect_failed_cb cb, void *arg);
/* The origin, for messages: the name it verifies (SNI) and host:port. */
const char *http_client_name(const http_client *c);
const char *http_client_hostport(const http_client *c, char *out, size_t cap);
/* Close; queued requests get ERR_IO. No-op on NULL; resets *c. */
void http_client_free(http_client **c);

#endif
