/* rules.c - the pure timing and epoch rules; see rules.h. */
#include "failover/rules.h"

int64_t rules_lease_end(const config_failover *f, int64_t t_send)
{
	return t_send + (int64_t)((double)f->lease_ms * (1e6 - f->max_drift_ppm) / 1e6) - f->lease_margin_ms;
}

bool rules_quorum_heard(int isolation_ms, int64_t now, int64_t heard)
{
	return isolation_ms <= 0 || now - heard <= isolation_ms;
}

bool rules_probe_due(int isolation_ms, int64_t now, int64_t heard, int64_t last_renew)
{
	return isolation_ms > 0 && now - heard >= isolation_ms / 2 && now - last_renew >= isolation_ms / 2;
}

bool rules_epoch_stale(uint64_t msg_epoch, uint64_t ours)
{
	return msg_epoch < ours;
}

uint64_t rules_stand_epoch(uint64_t promised, uint64_t epoch)
{
	return (promised > epoch ? promised : epoch) + 1;
}

int64_t rules_retry_wait(int64_t retry_after_ms, int vote_retry_ms)
{
	return retry_after_ms > vote_retry_ms ? retry_after_ms : vote_retry_ms;
}

bool rules_majority(int yes)
{
	return yes >= RULES_MAJORITY;
}
