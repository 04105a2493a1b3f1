/*
 * history.h - the pure rules on a region's log history (docs/FAILOVER.md,
 * "Election" and "Rejoin"), next to the voter rules: which epoch wrote a
 * position, whether a candidate's data is behind a voter's, where two logs
 * part, and what a rejoining region must quarantine.
 *
 * A history is two arrays of n rows, ascending by epoch: each epoch and the
 * first position it wrote (repl_epochs(epoch, first_seq)). n may be 0 (an
 * empty log, or one whose history is unknown: every position has epoch 0).
 * Positions start at 1; position 0 is the empty prefix, of epoch 0.
 *
 * No state, no I/O, no allocation: every function here is defined for every
 * input (empty histories, positions past the end) and cannot fail. The
 * callers (replication/rejoin.c, replication/election.c) own the I/O.
 */
#ifndef TANDEM_FAILOVER_HISTORY_H
#define TANDEM_FAILOVER_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

/* The epoch of position seq: that of the last row with first_seq <= seq;
 * 0 for seq 0 or when no row starts at or below seq. */
uint64_t history_epoch_of(const uint64_t *epochs, const uint64_t *firsts, int n, uint64_t seq);

/* The vote rule's "behind": is a candidate whose last entry is (epoch
 * cand_epoch, position cand_seq) behind a voter whose last entry is
 * (my_epoch, my_seq)? Compared epoch first, then position; equal is not
 * behind. */
bool history_behind(uint64_t cand_epoch, uint64_t cand_seq, uint64_t my_epoch, uint64_t my_seq);

/* The divergence point D of two logs, each given by its history and its
 * last position: the last position, at most both last positions, up to
 * which both give the same epoch at every position (0 when they differ at
 * position 1 or either log is empty). */
uint64_t history_divergence(const uint64_t *ea, const uint64_t *fa, int na, uint64_t last_a,
			    const uint64_t *eb, const uint64_t *fb, int nb, uint64_t last_b);

/* What a secondary that learned a new primary does before following it. */
typedef enum history_rejoin_action {
	HISTORY_REJOIN_DEPOSED,    /* the "primary" has an older epoch than ours: not ours to follow */
	HISTORY_REJOIN_IN_SYNC,    /* our whole log is a prefix of the primary's: follow from last + 1 */
	HISTORY_REJOIN_QUARANTINE, /* revert positions d + 1 .. our last into the quarantine first */
} history_rejoin_action;

typedef struct history_rejoin_plan {
	history_rejoin_action action;
	uint64_t d;               /* the divergence point (IN_SYNC, QUARANTINE) */
	uint64_t from, to;        /* QUARANTINE: positions to revert, d + 1 .. our last; else 0, 0 */
	uint64_t epoch_at_d;      /* our epoch at d: the stream resumes with prev_epoch = it */
} history_rejoin_plan;

/* The rejoin decision (docs/FAILOVER.md "Rejoin", step 1): ours is our
 * epoch, history and last position; theirs the primary's. Never quarantines
 * a position at or below the divergence point, nor anything when our log is
 * a prefix of theirs. */
history_rejoin_plan history_rejoin(uint64_t our_epoch, const uint64_t *our_epochs, const uint64_t *our_firsts,
				   int our_n, uint64_t our_last, uint64_t their_epoch,
				   const uint64_t *their_epochs, const uint64_t *their_firsts, int their_n,
				   uint64_t their_last);

#endif
