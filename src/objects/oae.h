/*
 * oae.h - anti-entropy of the object store's replication (docs/OBJECTS.md,
 * "Anti-entropy"): each region, every [objects] anti_entropy_s, compares
 * its buckets with the other region's and queues again (meta_outbox_repair)
 * what the other region lacks or has older: a version, a delete marker, a
 * tombstone, a bucket. The outbox is the normal path; this pass repairs
 * what it missed (a version marked FAILED, a row lost to a bug, an outbox
 * dropped by a restore). Each region sends its own side; together the two
 * passes converge.
 *
 * The comparison is Merkle-style on demand: a digest (SHA-256 of the rows,
 * meta_digest_range) of a key range on each side; equal ranges stop there,
 * different ones are split at a middle key until at most OAE_LEAF rows,
 * whose entries are compared one by one. Work per request is bounded
 * (OAE_MAX_ROWS rows per digest, OAE_MAX_ENTRIES per list).
 *
 * The link routes it serves (GET, regions and the admin certificate; the
 * admin's `tandem verify` uses them too):
 *   /internal/v1/objects/buckets                    {"buckets": [names]}
 *   /internal/v1/objects/digest?bucket=&from=&to=   {"rows","sha256","truncated","split"}
 *   /internal/v1/objects/entries?bucket=&from=&to=  {"entries": [...], "truncated"}
 * from/to/split/key are hex (keys are bytes); to absent: to the end.
 *
 * Runs on the S3 thread. Errors: a pass that fails (the link, the other
 * region down) is logged and tried again at the next interval.
 */
#ifndef TANDEM_OBJECTS_OAE_H
#define TANDEM_OBJECTS_OAE_H

#include <stdbool.h>
#include <stdint.h>

#include "objects/orepl.h"

#define OAE_MAX_ROWS 10000
#define OAE_LEAF 256
#define OAE_MAX_ENTRIES 1000

typedef struct oae oae;

/* NULL when out of memory. */
oae *oae_new(const orepl_env *env);
/* Start the periodic pass (none without a peer or with anti_entropy_s 0).
 * 0 or ERR_NOMEM. */
int oae_start(oae *a);
/* Run a pass now (tests: POST /internal/v1/objects/anti-entropy). */
void oae_run_now(oae *a);
void oae_stop(oae *a);
void oae_free(oae **a);

/* Serve a GET route above (the request is answered here). */
void oae_serve(const orepl_env *env, http_request *req);

/* Figures: passes done, repairs queued, the last pass's end (wall ms). */
void oae_stats(oae *a, uint64_t *passes, uint64_t *repairs, int64_t *last_ms);

#endif
