/* voter.c - the voter rules; see voter.h and docs/FAILOVER.md. */
#include "failover/voter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

struct voter {
	char path[CONFIG_PATH_MAX];
	config_failover f;
	uint64_t promised_epoch;
	char holder[32];
	uint64_t grant_epoch;
	int64_t granted_until;      /* voter_clock_ms */
	int64_t granted_until_wall; /* for display */
};

int64_t voter_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int voter_persist(voter *v)
{
	json_t *o = json_pack("{s:I,s:s,s:I}", "promised_epoch", (json_int_t)v->promised_epoch, "holder",
			      v->holder, "grant_epoch", (json_int_t)v->grant_epoch);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!text)
		return ERR_NOMEM;
	int rc = util_write_file(v->path, text, strlen(text), 0600);
	free(text);
	if (rc != 0)
		log_error("voter: cannot persist %s: %s", v->path, strerror(errno));
	return rc;
}

voter *voter_open(const char *path, const config_failover *f, char *err, size_t errcap)
{
	voter *v = calloc(1, sizeof *v);
	if (!v) {
		snprintf(err, errcap, "out of memory");
		return NULL;
	}
	snprintf(v->path, sizeof v->path, "%s", path);
	v->f = *f;
	size_t len;
	char *text = util_read_file(path, 65536, &len);
	if (!text) {
		if (errno != ENOENT) {
			snprintf(err, errcap, "%s: cannot read: %s", path, strerror(errno));
			free(v);
			return NULL;
		}
		if (voter_persist(v) != 0) {
			snprintf(err, errcap, "%s: cannot write: %s", path, strerror(errno));
			free(v);
			return NULL;
		}
		return v;
	}
	json_error_t je;
	json_t *o = json_loads(text, 0, &je);
	free(text);
	json_int_t promised = 0, ge = 0;
	const char *holder = "";
	if (!o || json_unpack(o, "{s:I,s:s,s:I}", "promised_epoch", &promised, "holder", &holder,
			      "grant_epoch", &ge) != 0 || promised < 0 || ge < 0) {
		snprintf(err, errcap, "%s: not a voter state file (remove it only if this voter never voted)",
			 path);
		json_decref(o);
		free(v);
		return NULL;
	}
	v->promised_epoch = (uint64_t)promised;
	v->grant_epoch = (uint64_t)ge;
	snprintf(v->holder, sizeof v->holder, "%s", holder);
	json_decref(o);
	if (v->holder[0]) {
		/* the restart rule: the clock did not survive; count it in full */
		v->granted_until = voter_clock_ms() + v->f.lease_ms;
		v->granted_until_wall = util_now_ms() + v->f.lease_ms;
		log_info("voter: a grant to %s (epoch %llu) is recorded; it binds for %d ms from now",
			 v->holder, (unsigned long long)v->grant_epoch, v->f.lease_ms + v->f.grant_margin_ms);
	}
	return v;
}

void voter_free(voter **v)
{
	free(*v);
	*v = NULL;
}

uint64_t voter_promised(const voter *v)
{
	return v->promised_epoch;
}

bool voter_binds_other(const voter *v, const char *who, int64_t *remaining_ms, char holder[32])
{
	if (!v->holder[0] || strcmp(v->holder, who) == 0)
		return false;
	int64_t left = v->granted_until + v->f.grant_margin_ms - voter_clock_ms();
	if (left < 0)
		return false;
	if (remaining_ms)
		*remaining_ms = left;
	if (holder)
		snprintf(holder, 32, "%s", v->holder);
	return true;
}

static void answer_init(const voter *v, voter_answer *a)
{
	memset(a, 0, sizeof *a);
	a->promised_epoch = v->promised_epoch;
}

int voter_lease(voter *v, uint64_t epoch, const char *holder, voter_answer *a)
{
	answer_init(v, a);
	if (epoch < v->promised_epoch) {
		a->reason = "stale_epoch";
		return 0;
	}
	if (voter_binds_other(v, holder, &a->remaining_ms, a->holder)) {
		a->reason = "lease_held";
		return 0;
	}
	bool changed = epoch > v->promised_epoch || strcmp(v->holder, holder) != 0 || v->grant_epoch != epoch;
	uint64_t old_promised = v->promised_epoch, old_epoch = v->grant_epoch;
	char old_holder[32];
	memcpy(old_holder, v->holder, sizeof old_holder);
	int64_t now = voter_clock_ms();
	if (strcmp(v->holder, holder) != 0)
		v->granted_until = 0; /* a new holder's grant starts now */
	if (epoch > v->promised_epoch)
		v->promised_epoch = epoch;
	snprintf(v->holder, sizeof v->holder, "%s", holder);
	v->grant_epoch = epoch;
	if (changed && voter_persist(v) != 0) {
		v->promised_epoch = old_promised;
		v->grant_epoch = old_epoch;
		memcpy(v->holder, old_holder, sizeof old_holder);
		a->reason = "io";
		return ERR_IO;
	}
	/* renewals never move it back */
	if (now + v->f.lease_ms > v->granted_until) {
		v->granted_until = now + v->f.lease_ms;
		v->granted_until_wall = util_now_ms() + v->f.lease_ms;
	}
	a->granted = true;
	a->promised_epoch = v->promised_epoch;
	return 0;
}

int voter_vote(voter *v, uint64_t epoch, const char *candidate, bool behind, bool pre, bool force,
	       voter_answer *a)
{
	answer_init(v, a);
	if (epoch <= v->promised_epoch) {
		a->reason = "stale_epoch";
		return 0;
	}
	if (!force && voter_binds_other(v, candidate, &a->remaining_ms, a->holder)) {
		a->reason = "lease_held";
		return 0;
	}
	if (behind) {
		a->reason = "behind";
		return 0;
	}
	a->granted = true;
	if (pre)
		return 0;
	uint64_t old_promised = v->promised_epoch;
	char old_holder[32];
	memcpy(old_holder, v->holder, sizeof old_holder);
	v->promised_epoch = epoch;
	if (force && voter_binds_other(v, candidate, NULL, NULL)) {
		log_warn("voter: forced vote for %s in epoch %llu drops a binding grant to %s", candidate,
			 (unsigned long long)epoch, v->holder);
		v->holder[0] = '\0';
		v->granted_until = 0;
	}
	if (voter_persist(v) != 0) {
		v->promised_epoch = old_promised;
		memcpy(v->holder, old_holder, sizeof old_holder);
		a->granted = false;
		a->reason = "io";
		return ERR_IO;
	}
	a->promised_epoch = v->promised_epoch;
	return 0;
}

int voter_learn(voter *v, uint64_t epoch)
{
	if (epoch <= v->promised_epoch)
		return 0;
	uint64_t old = v->promised_epoch;
	v->promised_epoch = epoch;
	if (voter_persist(v) != 0) {
		v->promised_epoch = old;
		return ERR_IO;
	}
	return 0;
}

int voter_handover(voter *v, uint64_t epoch, const char *from)
{
	/* a handover overtaken by a later epoch must not release a grant that
	 * epoch's lease relies on (docs/FAILOVER.md, change 5) */
	if (v->promised_epoch > epoch || strcmp(v->holder, from) != 0)
		return 0;
	int rc = voter_drop_grant(v);
	return rc == 0 ? 1 : rc;
}

int voter_drop_grant(voter *v)
{
	if (!v->holder[0])
		return 0;
	char old[32];
	memcpy(old, v->holder, sizeof old);
	v->holder[0] = '\0';
	if (voter_persist(v) != 0) {
		memcpy(v->holder, old, sizeof old);
		return ERR_IO;
	}
	v->granted_until = 0;
	return 0;
}

void voter_status(const voter *v, char *out, size_t cap)
{
	int64_t left = v->holder[0] ? v->granted_until + v->f.grant_margin_ms - voter_clock_ms() : 0;
	char iso[32] = "";
	if (v->holder[0])
		util_iso8601(v->granted_until_wall, iso);
	snprintf(out, cap, "\"promised_epoch\":%llu,\"grant\":{\"holder\":\"%s\",\"epoch\":%llu,"
			   "\"binding\":%s,\"remaining_ms\":%lld,\"until\":\"%s\"}",
		 (unsigned long long)v->promised_epoch, v->holder, (unsigned long long)v->grant_epoch,
		 left > 0 ? "true" : "false", (long long)(left > 0 ? left : 0), iso);
}
