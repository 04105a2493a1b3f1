/* history.c - the pure rules on log histories; see history.h. */
#include "failover/history.h"

uint64_t history_epoch_of(const uint64_t *epochs, const uint64_t *firsts, int n, uint64_t seq)
{
	if (seq == 0)
		return 0;
	uint64_t e = 0;
	for (int i = 0; i < n; i++)
		if (firsts[i] <= seq)
			e = epochs[i];
	return e;
}

bool history_behind(uint64_t cand_epoch, uint64_t cand_seq, uint64_t my_epoch, uint64_t my_seq)
{
	return cand_epoch < my_epoch || (cand_epoch == my_epoch && cand_seq < my_seq);
}

uint64_t history_divergence(const uint64_t *ea, const uint64_t *fa, int na, uint64_t last_a,
			    const uint64_t *eb, const uint64_t *fb, int nb, uint64_t last_b)
{
	uint64_t limit = last_a < last_b ? last_a : last_b;
	uint64_t d = limit;
	/* both are step functions changing only at first_seq points: compare
	 * at position 1 and at every such point up to the limit */
	if (limit >= 1 && history_epoch_of(ea, fa, na, 1) != history_epoch_of(eb, fb, nb, 1))
		return 0;
	for (int side = 0; side < 2; side++) {
		const uint64_t *f = side ? fb : fa;
		int n = side ? nb : na;
		for (int i = 0; i < n; i++) {
			uint64_t k = f[i];
			if (k < 1 || k > limit)
				continue;
			if (history_epoch_of(ea, fa, na, k) != history_epoch_of(eb, fb, nb, k) && k - 1 < d)
				d = k - 1;
		}
	}
	return d;
}

history_rejoin_plan history_rejoin(uint64_t our_epoch, const uint64_t *our_epochs, const uint64_t *our_firsts,
				   int our_n, uint64_t our_last, uint64_t their_epoch,
				   const uint64_t *their_epochs, const uint64_t *their_firsts, int their_n,
				   uint64_t their_last)
{
	history_rejoin_plan p = {.action = HISTORY_REJOIN_DEPOSED};
	if (their_epoch < our_epoch)
		return p;
	p.d = history_divergence(our_epochs, our_firsts, our_n, our_last, their_epochs, their_firsts, their_n,
				 their_last);
	p.epoch_at_d = history_epoch_of(our_epochs, our_firsts, our_n, p.d);
	if (p.d >= our_last) {
		p.action = HISTORY_REJOIN_IN_SYNC;
		return p;
	}
	p.action = HISTORY_REJOIN_QUARANTINE;
	p.from = p.d + 1;
	p.to = our_last;
	return p;
}
