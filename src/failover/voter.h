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
 *
 * Failure contract: a function that changes durable state persists it
 * before it answers; when the write fails (ERR_IO, logged by the voter with
 * the path and errno) the state in memory is rolled back to what it was, so
 * memory and file never disagree and nothing is granted, promised or
 * released that is not on disk. Reads cannot fail.
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

/* Milliseconds of CLOCK_BOOTTIME (counts suspend, never steps). Cannot fail. */
int64_t voter_clock_ms(void);

/* Open (create) the state file. NULL with a reason in err (cannot read or
 * write it, not a voter file, out of memory): nothing allocated, an
 * existing file untouched. */
voter *voter_open(const char *path, const config_failover *f, char *err, size_t errcap);
/* Free *v and set it to NULL; a no-op when *v is NULL. Cannot fail. */
void voter_free(voter **v);

/* The promised epoch. Cannot fail. */
uint64_t voter_promised(const voter *v);
/* Does a grant bind to a holder other than who? (remaining time, holder;
 * either may be NULL.) Cannot fail. */
bool voter_binds_other(const voter *v, const char *who, int64_t *remaining_ms, char holder[32]);

/* LeaseRequest(epoch, holder). 0 with the answer in *a (granted or a
 * refusal with its reason), or ERR_IO when the state cannot be persisted:
 * nothing granted (a->reason "io"), the state as before. */
int voter_lease(voter *v, uint64_t epoch, const char *holder, voter_answer *a);
/*
 * Vote(epoch, candidate). behind: the candidate's data is behind this
 * voter's (regions only). pre: a pre-vote, answered without any change.
 * force: drop a binding grant first (operator's forced failover).
 * 0 with the answer in *a, or ERR_IO when the vote cannot be persisted:
 * not granted (a->reason "io"), promise and grant as before. A pre-vote
 * never fails.
 */
int voter_vote(voter *v, uint64_t epoch, const char *candidate, bool behind, bool pre, bool force,
	       voter_answer *a);
/* Raise promised_epoch to epoch (learned from a message). 0 (also when
 * not higher), or ERR_IO with the promise unchanged. */
int voter_learn(voter *v, uint64_t epoch);
/* Handover(epoch) from `from`: drop a grant to it unless a newer epoch is
 * known. 1 when a grant was released, 0 when not, ERR_IO with the grant
 * kept (it binds until it expires, as without a handover). */
int voter_handover(voter *v, uint64_t epoch, const char *from);
/* Drop this voter's grant (a primary stepping down in a switchover). 0
 * (also with no grant), or ERR_IO with the grant kept. */
int voter_drop_grant(voter *v);
/* Status JSON fields (no braces): "promised_epoch":..,"grant":{..}.
 * Cannot fail; cut at cap (always NUL-terminated). */
void voter_status(const voter *v, char *out, size_t cap);

#endif
