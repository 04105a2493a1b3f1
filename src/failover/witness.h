/*
 * witness.h - the witness: the third voter, meant for a third location.
 * It holds no data: only its voter state (DIR/voter.json). It answers lease
 * requests and votes from the regions over HTTPS with mutual TLS (its own
 * certificate name is "witness"; peers must be regions of the deployment,
 * or "admin" for status):
 *
 *   POST /internal/v1/lease   POST /internal/v1/vote   GET /internal/v1/status
 */
#ifndef TANDEM_FAILOVER_WITNESS_H
#define TANDEM_FAILOVER_WITNESS_H

#include "core/config.h"

/* Run until SIGTERM/SIGINT; ready_fd as region_main. Exit code: 0 after a
 * clean stop; 1 when it cannot start (voter state, TLS, listen address,
 * privilege drop; the reason on stderr), before it answers anything. A
 * voter state it cannot persist later refuses that request (503 io) and the
 * witness goes on. */
int witness_main(const config *cfg, int ready_fd);

#endif
