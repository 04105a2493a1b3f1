/*
 * drill.h - `tandem drill`: a disaster-recovery drill against a real local
 * deployment (docs/DRILL.md).
 *
 * The drill starts the deployment's processes (two regions and the witness)
 * as its children, runs an open-loop client workload against both regions,
 * injects one fault (a crash, a partition, a planned switchover), heals it,
 * waits until the regions converge, and checks what the failover design
 * promises: every acknowledged write kept or quarantined (RPO), service
 * back within the budget (RTO), no duplicate from a retry, never two
 * primaries at once, both regions identical at the end; and, with an object
 * workload (S3 PUT/DELETE in both regions), every acknowledged object write
 * kept or superseded in both, no deleted object back, object RPO and
 * replication lag. With --via edge the workload goes through two `tandem
 * edge` processes (one in front of each region) and the report gives the
 * RTO the clients saw next to the regions' own. It writes a readable
 * report, report.json, timeline.svg and every component's log.
 *
 * The module is the library side; src/cli/drill.c parses the command line.
 */
#ifndef TANDEM_DRILL_H
#define TANDEM_DRILL_H

#include <limits.h>

/* How partitions are made. */
typedef enum drill_net_method {
	DRILL_NET_AUTO = 0,   /* nftables in a namespace when root, else the fault switch */
	DRILL_NET_NFTABLES,   /* require nftables (root) */
	DRILL_NET_SWITCH,     /* the regions' fault switch (POST /internal/v1/admin/fault) */
} drill_net_method;

typedef struct drill_options {
	char scenario[32];
	int rate;                /* writes per second, both regions together */
	int read_rate;           /* reads per second per region; -1: rate / 10 (at least 2) */
	int duration_s;          /* the workload's length, fault and heal inside it */
	double fault_at_s;       /* < 0: duration / 3 */
	double heal_at_s;        /* < 0: 2 * duration / 3 */
	int global_percent;      /* share of writes with X-Tandem-Durability: global */
	int object_rate;         /* S3 PUT/DELETE per second, both regions; -1: rate / 20
				  * (at least 2); 0: no object workload */
	int port_base;           /* 0: random */
	char data_dir[PATH_MAX]; /* "" : REPORT/deployment */
	char config_path[PATH_MAX]; /* "" : a fresh deployment */
	char report_dir[PATH_MAX]; /* "" : PARENT/drill-report of --data or --config,
				    * else a new /tmp/tandem-drill-XXXXXX (mode 0700) */
	drill_net_method net;
	int json;                /* print report.json instead of the text report */
	int strict;              /* missed scenario targets fail the drill too */
	int quiet;               /* no progress lines on stderr */
	int via_edge;            /* --via edge: the workload goes through two edges
				  * (tandem edge), one in front of each region */
} drill_options;

/* Defaults for every option. */
void drill_options_defaults(drill_options *o);
/* The scenario names, NULL-terminated (for help and validation). */
const char *const *drill_scenario_names(void);
/* 1 if name is a known scenario. */
int drill_scenario_known(const char *name);
/*
 * Run the drill. Returns the process exit code: 0 when every check passed
 * and RPO and RTO are within budget, 1 otherwise (reasons in the report; a
 * drill that could not run says why on stderr). Every process it started
 * is stopped before it returns.
 */
int drill_run(const drill_options *o);

#endif
