/*
 * scenario.c - the drill's scenarios: what each one injects and heals, and
 * the targets it is held to (docs/DRILL.md). The fault lands at about a
 * third of the run and is healed at about two thirds.
 *
 * Targets are the goals at 500 writes/s; the budgets of [drill]
 * (RPO, RTO) and the hard checks apply to every scenario.
 */
#include <string.h>

#include "drill/internal.h"

static const drill_scenario scenarios[] = {
	{"crash-primary", "kill -9 the primary region; heal: restart it", SC_CRASH, SC_PRIMARY, 10.0,
	 1.0, 0, NULL, NULL},
	{"crash-secondary", "kill -9 the secondary region; heal: restart it", SC_CRASH, SC_SECONDARY,
	 -1, -1, 0,
	 /* the primary: `global` writes cannot be confirmed while the secondary is down */
	 "503:replication_timeout",
	 /* the secondary itself is down, then catching up */
	 "connection timeout 503:*"},
	{"crash-witness", "kill -9 the witness; heal: restart it", SC_CRASH,
	 SC_WITNESS, -1, -1, 0, "", ""},
	{"partition-primary", "cut the primary off from the secondary and the witness; heal: reconnect",
	 SC_PARTITION, SC_PRIMARY, 10.0,
	 /* the cut-off primary stops acknowledging isolation_ms (1 s) after it
	  * last heard from a voter */
	 1.2, 0, NULL, NULL},
	{"partition-link", "cut only the link between the two regions; heal: reconnect", SC_PARTITION,
	 SC_LINK, -1, -1, 0,
	 /* global writes need the other region's ack */
	 "503:replication_timeout",
	 /* writes reaching the secondary cannot be forwarded */
	 "503:* timeout"},
	{"switchover", "planned switchover to the secondary (tandem switchover); no heal", SC_SWITCHOVER,
	 SC_SECONDARY, 2.0, -1, 1, NULL, NULL},
	{"restart-all", "graceful restart of every component in turn: witness, secondary, primary",
	 SC_RESTART, SC_ALL, -1, -1, 0, NULL, NULL},
};

#define SCENARIO_COUNT (sizeof scenarios / sizeof scenarios[0])

const drill_scenario *scenario_find(const char *name)
{
	for (size_t i = 0; i < SCENARIO_COUNT; i++)
		if (strcmp(scenarios[i].name, name) == 0)
			return &scenarios[i];
	return NULL;
}

const char *const *drill_scenario_names(void)
{
	static const char *names[SCENARIO_COUNT + 1];
	for (size_t i = 0; i < SCENARIO_COUNT; i++)
		names[i] = scenarios[i].name;
	return names;
}

int drill_scenario_known(const char *name)
{
	return scenario_find(name) != NULL;
}

int scenario_error_allowed(const char *patterns, const char *cls)
{
	if (!patterns)
		return 1;
	const char *p = patterns;
	while (*p) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		if (n == 0)
			break;
		if (n == 1 && p[0] == '*')
			return 1;
		if (p[n - 1] == '*') { /* prefix pattern: "503:*" */
			if (strncmp(cls, p, n - 1) == 0)
				return 1;
		} else if (strlen(cls) == n && strncmp(cls, p, n) == 0) {
			return 1;
		}
		p += n;
	}
	return 0;
}
