/*
 * fuzz_ballot.c - libFuzzer target for the voter messages
 * (src/failover/ballot.c): lease requests, votes and handovers arrive as
 * JSON bodies from the link, and answers come back from other voters.
 *
 * The first byte picks the kind (lease, vote, handover) and the sender
 * ("eu" or "us"); the rest is the body. Checks: a parse succeeds only with
 * an epoch >= 1 and the sender's own name in the body, the name fits its
 * field, and a parsed ballot is fed through the voter rules on a scratch
 * voter without breaking their invariant (promised_epoch never decreases;
 * a grant is only given for an epoch >= the promise held before). The
 * answer parser is run on the same bytes and must not crash.
 */
#undef NDEBUG
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"
#include "failover/ballot.h"
#include "failover/voter.h"

static voter *scratch;

static voter *scratch_voter(void)
{
	if (scratch)
		return scratch;
	char dir[] = "/tmp/fuzz-ballot-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	char path[64];
	snprintf(path, sizeof path, "%s/voter.json", dir);
	config c;
	config_defaults(&c);
	char err[256];
	scratch = voter_open(path, &c.failover, err, sizeof err);
	assert(scratch);
	return scratch;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int kind = data[0] % 3;
	const char *peer = data[0] & 0x80 ? "us" : "eu";
	const char *body = (const char *)data + 1;
	size_t len = size - 1;
	ballot b;
	char err[160];
	int rc = ballot_parse(kind, body, len, peer, &b, err, sizeof err);
	assert(rc == 0 || rc == ERR_INVAL);
	if (rc == 0) {
		assert(b.epoch >= 1);
		assert(strcmp(b.who, peer) == 0);
		assert(strlen(b.boot_id) < sizeof b.boot_id);
		voter *v = scratch_voter();
		uint64_t before = voter_promised(v);
		voter_answer a;
		if (kind == BALLOT_LEASE) {
			voter_lease(v, b.epoch, b.who, &a);
			assert(!a.granted || b.epoch >= before);
		} else if (kind == BALLOT_VOTE) {
			/* pre-votes only: real votes would write the state file on
			 * every input and slow the fuzzer to a crawl */
			voter_vote(v, b.epoch, b.who, false, true, false, &a);
			assert(!a.granted || b.epoch > before);
			assert(voter_promised(v) == before);
		}
		assert(voter_promised(v) >= before);
	} else {
		assert(err[0]);
	}
	bool granted;
	uint64_t promised;
	int64_t remaining;
	char reason[32];
	ballot_parse_answer(body, len, &granted, &promised, &remaining, reason, sizeof reason);
	return 0;
}
