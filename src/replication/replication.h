/*
 * replication.h - cross-region replication, write forwarding and read
 * consistency (see docs/REPLICATION.md for the design and its invariants).
 *
 * One `repl` per region process. It owns the inter-region link: a mutually
 * authenticated TLS server on link_listen (peers must present a certificate
 * from the deployment's CA whose name is a region of the config, or
 * "admin" for the command line), and, on a secondary, the client side that
 * streams the primary's log, applies it and acknowledges it.
 *
 *   primary                                   secondary
 *   write batch -> repl_log (same txn)        GET /internal/v1/replication/stream?from=N
 *   stream frames (chunked, heartbeats) ----> decode -> apply job (writer thread,
 *                                             changeset + applied_seq, one txn)
 *   acked_seq <--- POST .../ack {"seq"} ----- after each durable apply
 *   API writes <-- forwarded over the link --- a client write at the secondary
 *
 * Threads: replication runs on its own control thread (started by
 * repl_start). Every function below is for the API thread (the thread of
 * env.base) unless it says otherwise; the gates and getters answer from a
 * view the control thread publishes, the waits are posted to the control
 * thread and their callbacks run back on the API thread, exactly once.
 */
#ifndef TANDEM_REPLICATION_H
#define TANDEM_REPLICATION_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/buf.h"
#include "core/config.h"
#include "http/server.h"
#include "replication/capture.h"
#include "store/committer.h"
#include "store/db.h"

typedef struct repl repl;

typedef struct repl_env {
	struct event_base *base;    /* the API thread's loop (callbacks run there) */
	const config *cfg;
	const config_region *self;
	const config_region *peer;  /* the other region; NULL when alone */
	db_conn *reader;            /* unused: the control thread opens its own from db_path */
	const char *db_path;        /* the database file (snapshots) */
	committer *writer;
	capture *capture;
	SSL_CTX *link_server_ctx;   /* mTLS: requires client certificates */
	SSL_CTX *link_client_ctx;   /* presents this region's certificate */
	/* API requests arriving over the link (forwarded writes) go here */
	void (*api_request)(http_request *req, void *arg);
	void *api_arg;
	/* object replication requests (/internal/v1/objects/...) go here, from
	 * the control thread (a detached copy: 0 when taken, else the link
	 * answers 503); NULL: none. Their body limit: objects_body_max. */
	int (*objects_request)(http_request *req, void *arg);
	void *objects_arg;
	size_t objects_body_max;
	/* more fields of the status (the object store's replication), each
	 * ending in a comma, appended from the control thread; NULL: none */
	void (*status_extra)(buf *out, void *arg);
} repl_env;

/* Set up from the database state (the control loop and its connection
 * are made, nothing runs yet). NULL with a reason in err, nothing left. */
repl *repl_new(const repl_env *env, char *err, size_t errcap);
/* Listen on the link, set up the stream or the applier and the election,
 * then start the control thread. 0 or ERR_* with err (the thread is not
 * started; repl_free cleans up). */
int repl_start(repl *r, char *err, size_t errcap);
/* Stop the link, on the control thread, and wait for it (graceful:
 * streams end, waiters are answered here before it returns, forwarded
 * writes in flight are answered). Idempotent. */
void repl_shutdown(repl *r);
/* Shut down if not yet, join the control thread, run what is still
 * queued, free; no-op on NULL; resets *r. Call after committer_free. */
void repl_free(repl **r);

/* Getters of the published view (any thread; cannot fail). */
bool repl_is_primary(const repl *r);
uint64_t repl_epoch(const repl *r);
/* The last position this region has: committed (primary) or applied. */
uint64_t repl_position(const repl *r);

/* The primary committed a batch with this position (capture hook, API
 * thread). Cannot fail: the control thread is kicked through an intrusive
 * node that is never refused. */
void repl_on_committed(repl *r, uint64_t seq);

/* Callbacks of the waits below: ok is true when the condition was reached,
 * false on timeout (or shutdown, or when the control thread's queue is
 * full: the caller treats it as a timeout). Always called exactly once, on
 * the API thread, possibly before the wait function returns. */
typedef void (*repl_wait_cb)(void *arg, bool ok);
/* Wait until this region has position seq (committed or applied). */
void repl_wait_position(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg);
/* Primary: wait until the secondary has acknowledged seq (durably applied). */
void repl_wait_acked(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg);
/* Primary: wait while the secondary is connected and lags more than the RPO
 * budget (backpressure). Calls cb at once when there is nothing to wait for. */
void repl_wait_lag(repl *r, int timeout_ms, repl_wait_cb cb, void *arg);
/* Secondary: ask the primary for its position, then wait until applied. */
void repl_wait_global(repl *r, int timeout_ms, repl_wait_cb cb, void *arg);

/*
 * Secondary: forward a request to the primary. cb runs exactly once (API
 * thread) with the primary's answer (rc 0) or an error (rc < 0: the
 * primary could not be reached, out of memory, stopping, or this region
 * became primary meanwhile); nothing is retried here.
 */
typedef void (*repl_forward_cb)(void *arg, int rc, int status, const char *headers,
				size_t headers_len, const char *body, size_t body_len);
void repl_forward(repl *r, http_request *req, const char *request_id, repl_forward_cb cb, void *arg);

/*
 * Failover (election.c). May this primary take a write now? 0, or ERR_AGAIN
 * with an API error code (switchover_in_progress, no_lease, no_quorum) and
 * message; nothing else changes (a no_quorum refusal is counted).
 */
int repl_write_gate(repl *r, const char **code, const char **message);
/* The same answer, for display (/readyz): nothing is counted. */
int repl_write_gate_peek(repl *r, const char **code, const char **message);
/* May a write that just committed be acknowledged? The lease must still be
 * valid and (with a witness) another voter heard from within isolation_ms:
 * 0, or ERR_AGAIN with no_lease / no_quorum; the write stays committed
 * either way (it is quarantined on rejoin if the next primary lacks it). */
int repl_ack_gate(repl *r, const char **code, const char **message);
/*
 * How long this region may have been missing revocations (logouts) made at
 * the primary, in ms: 0 on a primary holding its lease (every write is made
 * here); on a secondary, the time since it last received stream data or a
 * heartbeat from the primary; on a primary without a lease (it may have
 * been deposed unawares), the time since it last held one. INT64_MAX when
 * the region has never been in either state since it started.
 */
int64_t repl_primary_silence_ms(repl *r);
/* Primary: wait until the secondary acknowledged seq, but only while one is
 * streaming: cb(arg, false) at once when none is (nothing can confirm). */
void repl_wait_confirmed(repl *r, uint64_t seq, int timeout_ms, repl_wait_cb cb, void *arg);
/* Does this region hold a valid lease (always true without a witness)? */
bool repl_lease_valid(repl *r);
/* API writes between submission and answer (a switchover waits for them).
 * Cannot fail; every started write must be finished once. */
void repl_write_started(repl *r);
void repl_write_finished(repl *r);
/* The highest epoch this region knows of. */
uint64_t repl_promised_epoch(const repl *r);
/* A forwarded write carries epoch e: learn a newer one (a primary steps
 * down); false when e is older than an epoch we know (refuse it). */
bool repl_forwarded_epoch_ok(repl *r, uint64_t e);
/* Epoch e was seen on the API thread: the control thread learns it (a
 * primary steps down). Cannot fail (the kick is never refused). */
void repl_learn_epoch(repl *r, uint64_t e);

/* Parse "EPOCH/SEQ" or "SEQ"; 0 or ERR_INVAL. */
int repl_parse_lsn(const char *s, uint64_t *seq);
/* Status JSON (for /internal/v1/status and `tandem status`; control
 * thread), appended to out; cut at out's maximum. */
void repl_status_json(repl *r, buf *out);
/* Prometheus lines: the forwarding ones from this thread, the control
 * thread's by a bounded synchronous call (1 s; on timeout they are left out
 * and a warning is logged). */
void repl_metrics(repl *r, buf *out);

#endif
