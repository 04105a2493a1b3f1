/*
 * orepl.h - two-way replication of the object store (docs/OBJECTS.md,
 * "Replication"). Both regions take PUTs and DELETEs at all times; each
 * ships its own writes to the other over the link (mutual TLS, the
 * region's certificate) and applies the other's. Runs on the S3 thread.
 *
 * Shipper: the outbox (meta.h) is read in order; up to ORPL_SLOTS entries
 * travel at once, each on its own connection, each as the current state of
 * what it names:
 *   - a version with data: its bytes in segments of ORPL_SEGMENT bytes
 *     (POST /internal/v1/objects/segment, read from the blob store in a
 *     worker one segment at a time: an object never sits whole in memory),
 *     then its metadata (POST .../version, JSON) naming the transfer;
 *   - a delete marker: its metadata alone;
 *   - a version removed for good: its tombstone (POST .../remove);
 *   - a bucket: its configuration, or that it is gone (POST .../bucket).
 * A version that is now a replica (the other region's newer write replaced
 * it) is not sent back: no loops. On a 2xx the row leaves the outbox and
 * the version is COMPLETED; on a refusal for good (4xx) it is FAILED and
 * logged; on anything else (connection, timeout, 5xx) the slot retries
 * the same entry after a back-off (reconnect_min_ms doubling up to
 * reconnect_max_ms). Apply is idempotent and commutative (newest wins,
 * tombstones), so entries may overtake each other and be sent twice.
 *
 * Receiver: the link (control thread) hands each /internal/v1/objects/
 * request over as a detached copy (objects_link_request); segments go to
 * a transfer (at most ORPL_XFERS at once, each ended after ORPL_XFER_IDLE_MS
 * without a segment; its blobs then deleted), each part's blob written and
 * fsync'd by a worker as its segments arrive; the version applies in one
 * transaction (meta_replica_put), then answers. The received HLC is merged
 * into the region's clock, so what this region writes next is newer.
 *
 * Errors: the shipper never gives up on an entry except on a 4xx (FAILED);
 * the receiver answers 400 (malformed), 404 (unknown transfer: the sender
 * restarts it), 409 (a segment out of order), 503 (too many transfers,
 * stopping) with a JSON error body.
 */
#ifndef TANDEM_OBJECTS_OREPL_H
#define TANDEM_OBJECTS_OREPL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "core/buf.h"
#include "core/config.h"

#define ORPL_SLOTS 16
#define ORPL_DECIDE_SLOTS 4 /* conditional writes sent to the records' primary at once */
#define ORPL_SEGMENT (1024 * 1024)
#define ORPL_BODY_MAX (ORPL_SEGMENT + 65536) /* a segment, or a version's JSON */
#define ORPL_XFERS 32
#define ORPL_XFER_IDLE_MS 60000

typedef struct orepl orepl;
struct blobstore;
struct committer;
struct db_conn;
struct workers;
struct hlc;
typedef struct http_request http_request;

typedef struct orepl_env {
	struct event_base *base;    /* the S3 loop */
	const config *cfg;
	const config_region *self;
	const config_region *peer;  /* NULL: no peer (nothing journalled, nothing shipped) */
	SSL_CTX *client_ctx;        /* the link's client side (this region's certificate) */
	struct blobstore *blobs;
	struct committer *writer;   /* objects.db's */
	struct db_conn *reader;     /* the S3 loop's read-only connection */
	struct workers *pool;
	struct hlc *clock;
} orepl_env;

/* NULL when out of memory. Nothing runs until orepl_start. */
orepl *orepl_new(const orepl_env *env);
/* Start shipping (timers on the S3 loop). 0 or ERR_NOMEM. */
int orepl_start(orepl *r);
/* Stop: slots end (their entries stay in the outbox), transfers end (their
 * blobs deleted), waiters get false, requests in hand get 503. S3 thread. */
void orepl_stop(orepl *r);
/* Free (after orepl_stop); no-op on NULL; resets *r. */
void orepl_free(orepl **r);

/* Bind client's outgoing connections to this region's link_listen host
 * when it is a specific address (as the records' link does: network rules,
 * the drill's nftables partitions, can then tell the regions apart). No-op
 * for a wildcard or a name. Cannot fail. */
struct http_client;
void orepl_bind_source(const orepl_env *env, struct http_client *client);

/* A link request /internal/v1/objects/... (a detached copy, http/server.h);
 * answered exactly once. S3 thread. */
void orepl_handle(orepl *r, http_request *req);

/* Durability global: cb(arg, true) once the outbox row seq has been
 * shipped (or was superseded by the other region's newer write), false
 * after timeout_ms, on a refusal for good, or at the stop. Without a peer:
 * true at once. S3 thread; cb runs on it, possibly before this returns. */
typedef void (*orepl_wait_cb)(void *arg, bool ok);
void orepl_wait(orepl *r, int64_t seq, int timeout_ms, orepl_wait_cb cb, void *arg);

/* A local write committed: look at the outbox now (else within
 * ORPL_POLL_MS). S3 thread. */
void orepl_kick(orepl *r);

/* The records' primary decides conditional writes with
 * X-Tandem-Consistency: global: is_primary(arg) says whether this region
 * is it (any thread). Set before the S3 thread runs. */
void orepl_set_primary_fn(orepl *r, bool (*is_primary)(void *arg), void *arg);
/* Send o (a single-blob version written here, its blob stored, its HLC,
 * origin and version id set) with its condition to the other region, the
 * records' primary, for its decision; cb(arg, rc) on the S3 thread: 0
 * (decided and applied there: commit it here too), ERR_CONFLICT (412),
 * ERR_NOTFOUND (If-Match, no object there), ERR_AGAIN (the primary holds a
 * newer version: the clock was merged, take a new HLC and ask again),
 * ERR_LIMIT (every decide slot busy), ERR_IO (the primary could not be
 * asked or could not decide). */
struct meta_object;
typedef void (*orepl_decide_cb)(void *arg, int rc);
void orepl_decide(orepl *r, const struct meta_object *o, int cond, const char *etag, orepl_decide_cb cb, void *arg);

/* Any thread: figures for /metrics and the status. */
typedef struct orepl_stats {
	bool enabled;                 /* a peer is configured */
	int64_t pending, pending_bytes, oldest_pending_ms; /* the outbox, at the last look */
	uint64_t shipped, failed, applied, superseded, errors;
	uint64_t lag_buckets[12];     /* replication latency histogram (ORPL_LAG_BOUNDS) */
	uint64_t lag_count;
	double lag_sum_s;
	int64_t last_error_ms;
	int64_t lag_ms;               /* now - oldest pending (0 when none) */
	uint64_t ae_passes, repairs;  /* anti-entropy (oae.h): passes done, entries queued again */
	int64_t ae_last_ms;
} orepl_stats;
extern const double ORPL_LAG_BOUNDS[12];
void orepl_get_stats(orepl *r, orepl_stats *out);

#endif
