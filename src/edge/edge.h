/*
 * edge.h - `tandem edge`: the TLS edge in front of the regions (issue 12,
 * docs/EDGE.md). This slice: an HTTP/1.1 reverse proxy (TLS or plain to
 * clients, TLS verified against the deployment's CA to the origins) with
 * pooled keep-alive connections per origin, active probes of each origin
 * (probe_path, every probe_interval_ms) and passive ones (connection
 * failures, timeouts, 502/503/504), and failover inside one request:
 *
 *   a GET, HEAD or OPTIONS, or a write carrying an Idempotency-Key, that
 *   fails at one origin (no connection, a timeout, a 502/503/504) is sent
 *   once more, to the next origin, at once; a write without a key never is
 *   (the client gets the error: it may have been done).
 *
 * Origins are tried in their configured order, skipping those marked
 * unhealthy (until a probe succeeds); when every origin is unhealthy, all
 * are tried (fail open). Answers carry Via, X-Tandem-Edge: NAME and
 * X-Cache: hit|miss|stale|revalidated (and Age from the cache); requests
 * carry Forwarded (for=, proto=) and Via. Bodies are buffered, bounded by
 * max_body_bytes both ways. GET and HEAD go through an RFC 9111 shared
 * cache (cache.h) of cache_bytes; POST /_edge/purge removes stored answers
 * (bearer token: edge_purge_token).
 *
 * Errors a client can cause or see: 502 bad_gateway (no origin answered),
 * 504 gateway_timeout (the origin's answer timed out), 504 not_cached
 * (only-if-cached on a miss), and from /_edge/purge 401 unauthenticated,
 * 403 forbidden, 400 bad_request, as JSON bodies.
 */
#ifndef TANDEM_EDGE_EDGE_H
#define TANDEM_EDGE_EDGE_H

#include "core/config.h"
#include "edge/edgeconf.h"

/* The bearer token of POST /_edge/purge: the hex of
 * secrets_derive(response_key, "tandem edge purge v1") from cfg's secrets
 * file, into out. 0, or ERR_CONFIG / ERR_IO with the reason in err. */
int edge_purge_token(const config *cfg, char out[65], char *err, size_t errcap);

/* Run edge `name` of ec until SIGTERM/SIGINT (graceful). ready_fd >= 0:
 * "ready\n" is written there once it listens. Returns the exit status (1
 * with a line on stderr when it cannot start). */
int edge_main(const config *cfg, const edge_confs *ec, const char *name, int ready_fd);

#endif
