/*
 * ballot.h - the messages between voters, as JSON bodies on the link
 * (HTTPS with mutual TLS; the sender is the peer's certificate name):
 *
 *   POST /internal/v1/lease     {"epoch","holder","boot_id"}
 *   POST /internal/v1/vote      {"epoch","candidate","last_epoch","last_seq","pre","force"}
 *   POST /internal/v1/handover  {"epoch","from"}
 *
 * Answers: 200 {"granted":true,"promised_epoch","boot_id"} or 409 with
 * {"granted":false,"promised_epoch","holder","remaining_ms","error":{"code","message"}}
 * where code is stale_epoch, lease_held or behind (503 io: the voter could
 * not persist its state, nothing was granted).
 */
#ifndef TANDEM_FAILOVER_BALLOT_H
#define TANDEM_FAILOVER_BALLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "failover/voter.h"
#include "http/server.h"

typedef struct ballot {
	uint64_t epoch;
	char who[32];          /* holder, candidate or from */
	char boot_id[40];
	uint64_t last_epoch, last_seq;
	bool pre, force;
} ballot;

enum { BALLOT_LEASE, BALLOT_VOTE, BALLOT_HANDOVER };

/* Parse a request body of the given kind; the sender (peer certificate name)
 * must be the one named in it. 0, or ERR_INVAL with a message in err and
 * *b not a valid ballot (the caller answers 400). */
int ballot_parse(int kind, const char *body, size_t len, const char *peer, ballot *b, char *err,
		 size_t errcap);
/* Parse the request's body as a ballot of this kind from peer; on failure
 * the request is answered 400 bad_request and ERR_INVAL returned (the
 * caller must not answer it again). */
int ballot_read(http_request *req, int kind, const char *peer, ballot *b);
/* Answer a ballot with the voter's answer (409 for a refusal, 503 for
 * "io"). Always answers exactly once: out of memory for the JSON, with an
 * empty body of the same status, which the sender reads as no answer (the
 * same as a lost message: nothing granted). */
void ballot_answer(http_request *req, const voter_answer *a, const char *boot_id);
/* Send a JSON error answer; exactly once, as ballot_answer. */
void ballot_error(http_request *req, int status, const char *code, const char *message);

/* Client side: parse an answer. granted, promised epoch, remaining ms, the
 * refusal's code (cut at reasoncap). 0, or ERR_PARSE (not a JSON object:
 * the caller treats it as no answer) with the outputs untouched. */
int ballot_parse_answer(const char *body, size_t len, bool *granted, uint64_t *promised,
			int64_t *remaining_ms, char *reason, size_t reasoncap);

#endif
