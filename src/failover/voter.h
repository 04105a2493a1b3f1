/*
 * voter.h - the voter rules of docs/FAILOVER.md, shared by the two regions
 * and the witness: lease grants, votes, handovers, and the durable state
 * they rest on.
 *
 * Durable state (persisted before any answer that depends on it, in
 * DIR/voter.json: temporary file, fsync, rename, directory fsync):
 *   promised_epoch   highest epoch voted for or learned; never decreases
 *   holder, epoch    the current lease grant ("" = none)
 * Volatile: granted_until, on CLOCK_BOOTTIME. Renewals only extend it, so
 * it is not persisted: a restarted voter that finds a grant recorded counts
 * it as binding for a full lease_ms + grant_margin_ms from its restart.
 *
 * "A grant binds" while its holder is set and the clock has not passed
 * granted_until + grant_margin_ms. A binding grant stops the voter from
 * granting a lease to, or voting for, anyone else.
 */
#ifndef TANDEM_FAILOVER_VOTER_H
#define TANDEM_FAILOVER_VOTER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"

typedef struct voter voter;

typedef struct voter_answer {
	bool granted;
	uint64_t promised_epoch;  /* after the call */
	char holder[32];          /* the binding grant's holder on refusal, or "" */
	int64_t remaining_ms;     /* how long that grant still binds */
	const char *reason;       /* on refusal: stale_epoch, lease_held, behind, io */
} voter_answer;

/* Milliseconds of CLOCK_BOOTTIME (counts suspend, never steps). */
int64_t voter_clock_ms(void);

/* Open (create) the state file. NULL with a reason in err. */
voter *voter_open(const char *path, const config_failover *f, char *err, size_t errcap);
void voter_free(voter **v);

uint64_t voter_promised(const voter *v);
/* Does a grant bind to a holder other than who? (remaining time, holder) */
bool voter_binds_other(const voter *v, const char *who, int64_t *remaining_ms, char holder[32]);

/* LeaseRequest(epoch, holder). 0, or ERR_IO when the state cannot be
 * persisted (then nothing is granted). */
int voter_lease(voter *v, uint64_t epoch, const char *holder, voter_answer *a);
/*
 * Vote(epoch, candidate). behind: the candidate's data is behind this
 * voter's (regions only). pre: a pre-vote, answered without any change.
 * force: drop a binding grant first (operator's forced failover).
 */
int voter_vote(voter *v, uint64_t epoch, const char *candidate, bool behind, bool pre, bool force,
	       voter_answer *a);
/* Raise promised_epoch to epoch (learned from a message). */
int voter_learn(voter *v, uint64_t epoch);
/* Handover(epoch) from `from`: drop a grant to it unless a newer epoch is
 * known. 1 when a grant was released, 0 when not, ERR_IO. */
int voter_handover(voter *v, uint64_t epoch, const char *from);
/* Drop this voter's grant (a primary stepping down in a switchover). */
int voter_drop_grant(voter *v);
/* Status JSON fields (no braces): "promised_epoch":..,"grant":{..} */
void voter_status(const voter *v, char *out, size_t cap);

#endif
