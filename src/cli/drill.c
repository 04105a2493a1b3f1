/*
 * drill.c - `tandem drill`: the command line of the DR drill; the drill
 * itself is src/drill/ (docs/DRILL.md).
 *
 * Exit codes: 0 every check passed and RPO and RTO are within budget;
 * 1 a check failed, a budget was exceeded, or the drill could not run;
 * 2 the command line is wrong (one line on stderr says why).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/util.h"
#include "drill/drill.h"

static const char usage_drill[] =
	"usage: tandem drill --scenario NAME [--rate N] [--duration S] [--data DIR]\n"
	"                    [--config FILE] [--report DIR] [--json] [options]\n"
	"\n"
	"Run a disaster-recovery drill: start a fresh local deployment (or the one of\n"
	"--config), run a client workload against both regions, inject a fault, heal\n"
	"it, wait until the regions converge, and check RPO (every acknowledged write\n"
	"kept or quarantined), RTO (writes and reads back), no duplicate from a retry,\n"
	"never two primaries, both regions identical. Prints a report and writes\n"
	"report.json, timeline.svg and every component's log (logs/) to --report DIR.\n"
	"\n"
	"scenarios:\n"
	"  crash-primary      kill -9 the primary region; heal: restart it\n"
	"  crash-secondary    kill -9 the secondary region; heal: restart it\n"
	"  crash-witness      kill -9 the witness; heal: restart it\n"
	"  partition-primary  cut the primary off from the secondary and the witness\n"
	"  partition-link     cut only the link between the two regions\n"
	"  switchover         planned switchover to the secondary (no switch back)\n"
	"  restart-all        graceful restart of every component in turn\n"
	"\n"
	"options:\n"
	"  --scenario NAME    the scenario (required)\n"
	"  --rate N           writes per second over both regions (default 500)\n"
	"  --duration S       seconds of workload; fault at S/3, heal at 2S/3 (default 30)\n"
	"  --fault-at S       fault time in seconds from the start (default duration/3)\n"
	"  --heal-at S        heal time (default 2*duration/3)\n"
	"  --read-rate N      reads per second per region (default rate/10, at least 2)\n"
	"  --object-rate N    S3 PUTs and DELETEs per second over both regions (default\n"
	"                     rate/20, at least 2; 0: no object workload)\n"
	"  --global-percent P share of writes with global durability (default 20)\n"
	"  --data DIR         where the fresh deployment goes (default REPORT/deployment;\n"
	"                     emptied first if an earlier drill made it)\n"
	"  --config FILE      drill the deployment of FILE instead (its processes are\n"
	"                     started by the drill; none of them may be running)\n"
	"  --port-base N      ports of the fresh deployment (default: random, 20000-29000)\n"
	"  --report DIR       where the report goes (mode 0700: it holds the deployment's\n"
	"                     keys and logs); default: drill-report beside the directory\n"
	"                     of --data or --config, else a new /tmp/tandem-drill-XXXXXX\n"
	"  --net METHOD       partitions: auto (nftables in a network namespace when\n"
	"                     root, else the fault switch), nftables, switch\n"
	"  --via WHERE        direct (default): the workload calls each region;\n"
	"                     edge: it goes through two edges (tandem edge), one per\n"
	"                     region, and the report gives the RTO the clients saw\n"
	"                     next to the regions' own (a fresh deployment only)\n"
	"  --json             print report.json instead of the readable report\n"
	"  --strict           a missed scenario target fails the drill too\n"
	"  --quiet            no progress lines on stderr\n"
	"\n"
	"Budgets come from the config's [drill] section (rpo_budget_s = 30,\n"
	"rto_budget_s = 60). Exit 0 when every check passed within budget, 1 when\n"
	"not (or when the drill could not run), 2 on a bad command line.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("tandem: drill: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see tandem drill --help)\n", stderr);
	return 2;
}

static int parse_seconds(const char *v, double max, double *out)
{
	char *end;
	double d = strtod(v, &end);
	if (end == v || *end || !(d >= 0) || d > max)
		return -1;
	*out = d;
	return 0;
}

int cmd_drill(int argc, char **argv)
{
	drill_options o;
	drill_options_defaults(&o);
	int have_scenario = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (cli_is_help(a)) {
			fputs(usage_drill, stdout);
			return 0;
		}
		if (strcmp(a, "--json") == 0) {
			o.json = 1;
			continue;
		}
		if (strcmp(a, "--strict") == 0) {
			o.strict = 1;
			continue;
		}
		if (strcmp(a, "--quiet") == 0) {
			o.quiet = 1;
			continue;
		}
		if (strncmp(a, "--", 2) != 0)
			return usage_error("unexpected argument '%s'", a);
		int known = 0;
		static const char *const with_value[] = {
			"--scenario", "--rate",   "--duration", "--fault-at", "--heal-at", "--read-rate",
			"--object-rate", "--global-percent", "--data", "--config", "--port-base", "--report", "--net",
			"--via", NULL};
		for (int k = 0; with_value[k]; k++)
			known |= strcmp(a, with_value[k]) == 0;
		if (!known)
			return usage_error("unknown option '%s'", a);
		if (i + 1 >= argc)
			return usage_error("%s needs a value", a);
		const char *v = argv[++i];
		long long n;
		if (strcmp(a, "--scenario") == 0) {
			if (!drill_scenario_known(v))
				return usage_error("unknown scenario '%s' (crash-primary, crash-secondary, "
						   "crash-witness, partition-primary, partition-link, switchover, "
						   "restart-all)",
						   v);
			snprintf(o.scenario, sizeof o.scenario, "%s", v);
			have_scenario = 1;
		} else if (strcmp(a, "--rate") == 0) {
			if (util_parse_int(v, 1, 10000, &n) != 0)
				return usage_error("--rate must be a whole number of writes per second from 1 to "
						   "10000, not '%s'",
						   v);
			o.rate = (int)n;
		} else if (strcmp(a, "--duration") == 0) {
			if (util_parse_int(v, 6, 600, &n) != 0)
				return usage_error("--duration must be a whole number of seconds from 6 to 600, "
						   "not '%s'",
						   v);
			o.duration_s = (int)n;
		} else if (strcmp(a, "--fault-at") == 0) {
			if (parse_seconds(v, 600, &o.fault_at_s) != 0)
				return usage_error("--fault-at must be seconds from 0 to 600, not '%s'", v);
		} else if (strcmp(a, "--heal-at") == 0) {
			if (parse_seconds(v, 600, &o.heal_at_s) != 0)
				return usage_error("--heal-at must be seconds from 0 to 600, not '%s'", v);
		} else if (strcmp(a, "--read-rate") == 0) {
			if (util_parse_int(v, 0, 10000, &n) != 0)
				return usage_error("--read-rate must be a whole number from 0 to 10000, not '%s'", v);
			o.read_rate = (int)n;
		} else if (strcmp(a, "--object-rate") == 0) {
			if (util_parse_int(v, 0, 1000, &n) != 0)
				return usage_error("--object-rate must be a whole number from 0 to 1000, not '%s'", v);
			o.object_rate = (int)n;
		} else if (strcmp(a, "--global-percent") == 0) {
			if (util_parse_int(v, 0, 100, &n) != 0)
				return usage_error("--global-percent must be from 0 to 100, not '%s'", v);
			o.global_percent = (int)n;
		} else if (strcmp(a, "--port-base") == 0) {
			if (util_parse_int(v, 1024, 65000, &n) != 0)
				return usage_error("--port-base must be from 1024 to 65000, not '%s'", v);
			o.port_base = (int)n;
		} else if (strcmp(a, "--via") == 0) {
			if (strcmp(v, "edge") != 0 && strcmp(v, "direct") != 0)
				return usage_error("--via must be direct or edge, not '%s'", v);
			o.via_edge = strcmp(v, "edge") == 0;
		} else if (strcmp(a, "--net") == 0) {
			if (strcmp(v, "auto") == 0)
				o.net = DRILL_NET_AUTO;
			else if (strcmp(v, "nftables") == 0)
				o.net = DRILL_NET_NFTABLES;
			else if (strcmp(v, "switch") == 0)
				o.net = DRILL_NET_SWITCH;
			else
				return usage_error("--net must be auto, nftables or switch, not '%s'", v);
		} else {
			char *dst = strcmp(a, "--data") == 0     ? o.data_dir
				    : strcmp(a, "--config") == 0 ? o.config_path
								 : o.report_dir;
			if (!v[0] || strlen(v) >= sizeof o.data_dir - 64)
				return usage_error("%s needs a path (at most %zu bytes)", a, sizeof o.data_dir - 65);
			snprintf(dst, sizeof o.data_dir, "%s", v);
		}
	}
	if (!have_scenario)
		return usage_error("--scenario NAME is required");
	if (o.config_path[0] && o.data_dir[0])
		return usage_error("--data and --config exclude each other");
	if (o.config_path[0] && o.via_edge)
		return usage_error("--via edge drills a fresh deployment (the drill writes its edges): drop --config");
	double fault_at = o.fault_at_s >= 0 ? o.fault_at_s : o.duration_s / 3.0;
	double heal_at = o.heal_at_s >= 0 ? o.heal_at_s : 2.0 * o.duration_s / 3.0;
	if (fault_at < 1 || heal_at < fault_at || heal_at > o.duration_s)
		return usage_error("need 1 <= fault time (%.1f s) <= heal time (%.1f s) <= duration (%d s)",
				   fault_at, heal_at, o.duration_s);
	if ((long long)o.rate * o.duration_s > 2000000)
		return usage_error("--rate times --duration must stay under 2,000,000 writes");
	return drill_run(&o);
}
