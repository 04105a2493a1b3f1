/*
 * objects.h - the object store of a region, as the region node sees it:
 * start it (its own thread, event loop, listener, blob store and metadata
 * database), let it run, stop it. The S3 API itself is s3.c; the design is
 * in docs/OBJECTS.md ("S3 API").
 *
 *   objects_start   (as root if so started) open DATA_DIR/blobs and
 *                   DATA_DIR/objects.db, recover and sweep, bind s3_listen
 *   objects_run     start the S3 thread (after privileges were dropped, so
 *                   that nothing it creates belongs to root)
 *   objects_stop    graceful: requests in flight finish (bounded by
 *                   shutdown_timeout_ms), then everything is freed
 */
#ifndef TANDEM_OBJECTS_OBJECTS_H
#define TANDEM_OBJECTS_OBJECTS_H

#include <stddef.h>

#include "core/config.h"
#include "core/secrets.h"

typedef struct objects objects;

/* Everything up to a bound listener. 0, or ERR_* with the reason in err
 * (*out NULL, nothing left open). The region must have s3_listen. */
int objects_start(const config *cfg, const config_region *self, const secrets *sec, objects **out,
		  char *err, size_t errcap);
/* Start serving on the S3 thread. 0 or ERR_IO (thread creation). */
int objects_run(objects *o);
/* Stop gracefully and free; no-op on NULL; resets *o. */
void objects_stop(objects **o);

/* What the files API (files.h) shares with the S3 server: the blob store
 * (thread-safe), the writer of objects.db (committer_submit_to from the
 * API loop), the region's hybrid logical clock (thread-safe), the path of
 * objects.db (files opens its own read-only connection). Valid until
 * objects_stop. */
struct blobstore;
struct committer;
struct hlc;
struct blobstore *objects_blobs(objects *o);
struct committer *objects_writer(objects *o);
struct hlc *objects_clock(objects *o);
const char *objects_db_path(objects *o);

/* Two-way replication (orepl.h). A link request /internal/v1/objects/...
 * (a detached copy, http/server.h), from the link's thread: handed to the
 * S3 thread, which answers it. 0, or ERR_NOMEM (not taken: the caller
 * answers). */
typedef struct http_request http_request;
int objects_link_request(objects *o, http_request *req);
/* Replication figures, any thread (zeroed when o is NULL). */
struct orepl_stats;
void objects_repl_stats(objects *o, struct orepl_stats *out);

#endif
