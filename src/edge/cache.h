/*
 * cache.h - the edge's shared HTTP cache (RFC 9111), pure logic: no
 * sockets, no event loop, no clock of its own (every call that needs the
 * time takes `now`, in seconds), so that tests drive it with an injected
 * clock. edge.c does the I/O around it (docs/EDGE.md, "Cache").
 *
 * What it decides:
 *   - whether an answer may be stored (cache_store: RFC 9111 section 3,
 *     plus: no Set-Cookie unless public, no 206, no Vary: *);
 *   - how long it is fresh (s-maxage, max-age, Expires, or the heuristic of
 *     4.2.2: 10% of Date - Last-Modified, capped, for the statuses that are
 *     cacheable by default), with CDN-Cache-Control (RFC 9213) taking the
 *     place of Cache-Control and Expires when present;
 *   - its Age (4.2.3), and what a lookup may do with it (cache_lookup):
 *     serve it, serve it stale and refresh it in the background
 *     (stale-while-revalidate), or revalidate it first; whether it may be
 *     served stale when every origin fails (cache_entry_usable_on_error);
 *   - Vary: secondary keys from the request's values of the named fields
 *     (Accept-Encoding normalised: codings lowercased, q=0 dropped, sorted);
 *   - invalidation after unsafe methods (4.4) and purges;
 *   - request coalescing bookkeeping: one fetch per key, bounded waiters.
 *
 * Storage: memory, an LRU bounded by bytes (key + headers + body + a fixed
 * overhead per entry), and optionally a disk tier below it
 * (cache_set_disk). An entry is reference counted: one reference from
 * the table while it is in it, one per holder (cache_lookup's result); it is
 * freed when the last goes, so an entry being revalidated or served survives
 * its eviction or purge.
 */
#ifndef TANDEM_EDGE_CACHE_H
#define TANDEM_EDGE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/parser.h"

#define CACHE_HEURISTIC_MAX_S 86400    /* the 10% rule's cap (RFC 9111 4.2.2 suggests a day) */
#define CACHE_STALE_ON_ERROR_MAX_S 86400 /* serving stale with every origin down, without
					   * stale-if-error: at most this stale */
#define CACHE_MAX_WAITERS 64           /* requests waiting on one coalesced fetch */
#define CACHE_MAX_PENDING 4096         /* keys being fetched at once */
#define CACHE_KEY_MAX 8448             /* host + target */

/* Cache-Control (or CDN-Cache-Control) directives, request or response.
 * Delta-seconds are -1 when absent. */
typedef struct cache_control {
	int64_t max_age, s_maxage, stale_while_revalidate, stale_if_error, max_stale, min_fresh;
	bool no_store, no_cache, private_, public_, must_revalidate, proxy_revalidate, only_if_cached;
	bool any; /* at least one directive was seen */
} cache_control;

void cache_control_init(cache_control *cc);
/* Parse one field value into cc (directives of several lines accumulate:
 * call once per line). Unknown directives are ignored; a malformed
 * delta-seconds makes its directive count as 0 for max-age/s-maxage (the
 * conservative reading, RFC 9111 1.2.2) and as absent for the others.
 * Cannot fail. */
void cache_control_parse(cache_control *cc, const char *value, size_t len);

/* An HTTP-date (IMF-fixdate, RFC 850 or asctime) into seconds since the
 * epoch; -1 when it does not parse. */
int64_t cache_parse_http_date(const char *value, size_t len);

/* Normalise an Accept-Encoding value into out (lowercased codings without
 * parameters, q=0 ones dropped, sorted, deduplicated, comma separated).
 * Returns the length, or -1 when it does not fit (out is then ""). */
int cache_normalize_accept_encoding(const char *value, size_t len, char *out, size_t cap);

/* The primary key of a request, "host target" (host lowercased, from
 * Host), into out; -1 when it does not fit or the request has no target. */
int cache_request_key(const http_message *req, char *out, size_t cap);

typedef struct cache cache;
typedef struct cache_entry cache_entry;

/* A cache of at most max_bytes, objects at most max_object_bytes. NULL on
 * allocation failure. */
cache *cache_new(size_t max_bytes, size_t max_object_bytes);
/*
 * The disk tier: what the memory LRU evicts is kept in files under dir
 * (created 0700; files 0600, one per entry), at most max_bytes of them
 * (an LRU of their own), and comes back into memory when a lookup finds
 * it there. The files of an earlier run in dir are removed (the tier does
 * not survive a restart). 0, or ERR_IO / ERR_INVAL / ERR_NOMEM with the
 * reason in err.
 */
int cache_set_disk(cache *c, const char *dir, size_t max_bytes, char *err, size_t errcap);
/* Free the table (entries still held elsewhere live until released);
 * waiters of pending fetches are dropped without a call. No-op on NULL;
 * resets *c. */
void cache_free(cache **c);

/* --- storing --- */
enum {
	CACHE_STORED = 0,
	CACHE_NOT_STORABLE = 1, /* the rules say no (not an error) */
};
/*
 * Store the answer resp (body, len) to the GET req, sent at request_time
 * and received at response_time. CACHE_STORED, CACHE_NOT_STORABLE, or
 * ERR_LIMIT (larger than max_object_bytes) / ERR_NOMEM: nothing stored and
 * nothing else changed, except that an older variant of the same request
 * is always replaced or removed (it is stale by definition).
 */
int cache_store(cache *c, const http_message *req, const http_message *resp, const char *body, size_t len,
		int64_t request_time, int64_t response_time);
/* What the head of resp (to req) says before its body is in: false when
 * cache_store would certainly refuse it (not a GET, no-store, private, a
 * status or Vary not stored...); true: it may be stored once complete. */
bool cache_response_may_store(const cache *c, const http_message *req, const http_message *resp);
/* A newer answer to req was seen and not stored (too large to keep): its
 * stored variant, in either tier, goes (it is stale by definition).
 * Returns how many were removed. */
int cache_forget(cache *c, const http_message *req);
/* Why the last cache_store did not store (a static string; "" if it did). */
const char *cache_store_reason(const cache *c);

/* --- looking up --- */
typedef enum cache_verdict {
	CACHE_MISS = 0,     /* nothing usable: fetch */
	CACHE_FRESH,        /* serve it (X-Cache: hit) */
	CACHE_STALE_OK,     /* serve it stale: the client allowed it (max-stale) */
	CACHE_STALE_REFRESH, /* serve it stale, refresh it in the background (stale-while-revalidate) */
	CACHE_VALIDATE,     /* send a conditional request first (or a plain one without validators) */
} cache_verdict;

/*
 * The stored answer for req (GET or HEAD) at time now, with what may be
 * done with it. On a verdict other than CACHE_MISS, *out holds a reference
 * (cache_entry_release when done). Touches the LRU. Cannot fail.
 */
cache_verdict cache_lookup(cache *c, const http_message *req, int64_t now, cache_entry **out);
/* The request's Cache-Control says only-if-cached (answer 504 on a miss). */
bool cache_request_only_if_cached(const http_message *req);

/* Another reference to e (released with cache_entry_release). */
cache_entry *cache_entry_hold(cache_entry *e);
void cache_entry_release(cache_entry **e);
int cache_entry_status(const cache_entry *e);
/* Stored header lines ("Name: value\r\n"...; no hop-by-hop fields, no
 * Content-Length, Date or Age). */
const char *cache_entry_headers(const cache_entry *e, size_t *len);
/* The stored body (NUL-terminated, len without the NUL). */
const char *cache_entry_body(const cache_entry *e, size_t *len);
/* Current age (RFC 9111 4.2.3) at now, in seconds. */
int64_t cache_entry_age(const cache_entry *e, int64_t now);
int64_t cache_entry_lifetime(const cache_entry *e);
/* The stored validators (NULL when none), for If-None-Match /
 * If-Modified-Since. */
const char *cache_entry_etag(const cache_entry *e);
const char *cache_entry_last_modified(const cache_entry *e);
/* May e be served stale to req now that every origin failed (or answered
 * 5xx)? Within stale-if-error (response or request), or, without it, for
 * at most CACHE_STALE_ON_ERROR_MAX_S unless the answer forbids serving it
 * stale (must-revalidate, proxy-revalidate, s-maxage, no-cache). */
bool cache_entry_usable_on_error(const cache_entry *e, const http_message *req, int64_t now);
/* req's own conditionals (If-None-Match, weak comparison; else
 * If-Modified-Since against Last-Modified) hold for e, a 200: the client
 * already has it, a 304 answers (RFC 9110 13.1). */
bool cache_entry_not_modified_for(const cache_entry *e, const http_message *req);
/* The entry is still in the table (not evicted, purged or replaced). */
bool cache_entry_current(const cache_entry *e);

/*
 * A 304 to the revalidation of e: its header fields replace the stored
 * ones of the same name (RFC 9111 3.2: not Content-Length), and the
 * freshness is recomputed with the new times. 0, or ERR_NOMEM /
 * ERR_LIMIT (e is then removed from the table: it would be wrong).
 */
int cache_update_304(cache *c, cache_entry *e, const http_message *resp, int64_t request_time,
		     int64_t response_time);

/* --- invalidation --- */
/* After an unsafe request req answered with status (RFC 9111 4.4): on a
 * 2xx or 3xx, every variant of the target URI and of Location and
 * Content-Location when they are on the same host. Returns the number of
 * entries removed. */
int cache_invalidate_after(cache *c, const http_message *req, const http_message *resp);
/* Remove every variant of one key ("host target"), or, with host NULL, of
 * target on every host. Returns the number removed. */
int cache_purge_url(cache *c, const char *host, const char *target);
/* Remove every entry whose target starts with prefix (host NULL: any
 * host). Returns the number removed. */
int cache_purge_prefix(cache *c, const char *host, const char *prefix);

/* --- request coalescing --- */
typedef void (*cache_wake_fn)(void *arg);
/*
 * A miss for key: 1 when the caller should fetch (no fetch of key is
 * pending; one is now, until cache_fetch_done), 0 when one is pending and
 * wake(arg) has been queued to run at its end, ERR_LIMIT when too many
 * wait (CACHE_MAX_WAITERS) or too many keys are pending, ERR_NOMEM: the
 * caller fetches on its own without coalescing.
 */
int cache_fetch_begin(cache *c, const char *key, cache_wake_fn wake, void *arg);
/* The fetch of key ended (stored or not): each waiter's wake runs once,
 * in order, after the key is no longer pending (a waiter may begin a new
 * fetch of it). */
void cache_fetch_done(cache *c, const char *key);
/* Forget a waiter (its request was abandoned): wake will not run. */
void cache_fetch_cancel(cache *c, const char *key, void *arg);

/* --- figures --- */
typedef struct cache_stats {
	size_t bytes, entries, pending;
	unsigned long stored, evicted, invalidated;
	size_t disk_bytes, disk_entries;                 /* the disk tier */
	unsigned long disk_written, disk_promoted, disk_errors;
} cache_stats;
void cache_get_stats(const cache *c, cache_stats *out);

#endif
