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

uint64_t rules_lag_positions(uint64_t ahead, uint64_t behind)
{
	return ahead > behind ? ahead - behind : 0;
}

int64_t rules_applier_lag_ms(int64_t now, int64_t oldest_unapplied_ms, bool streaming, int64_t down_since_ms,
			     uint64_t primary_seq, uint64_t position)
{
	int64_t lag = 0;
	if (oldest_unapplied_ms)
		lag = now - oldest_unapplied_ms;
	else if (!streaming && down_since_ms && primary_seq > position)
		lag = now - down_since_ms;
	return lag > 0 ? lag : 0;
}

int rules_backoff_next(int backoff_ms, int max_ms)
{
	return backoff_ms > max_ms / 2 ? max_ms : backoff_ms * 2;
}

int rules_stream_idle_timeout_ms(int heartbeat_ms)
{
	return heartbeat_ms > 250 ? heartbeat_ms * 8 : 2000;
}
