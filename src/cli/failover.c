/*
 * failover.c - the operator's failover commands:
 *
 *   tandem switchover --config FILE --to REGION        planned, RPO 0
 *   tandem failover --config FILE --to REGION [--force]
 *   tandem quarantine list|show --config FILE [NAME]
 *
 * The first two ask the regions over their links (admin certificate); the
 * protocol behind them is docs/FAILOVER.md. The quarantine is read from
 * the regions' data directories on this machine.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/admin.h"
#include "cli/cli.h"
#include "core/util.h"

static const char usage_switchover[] =
	"usage: tandem switchover --config FILE --to REGION\n"
	"\n"
	"Planned move of the primary to REGION, with no write lost (RPO 0): the\n"
	"primary stops taking writes (clients get 503 + Retry-After), waits until\n"
	"REGION has applied everything (at most [failover] switchover_timeout_ms,\n"
	"else it gives up and takes writes again), steps down and hands over;\n"
	"REGION is elected at once. Exit 0 once REGION accepts writes.\n";

static const char usage_failover[] =
	"usage: tandem failover --config FILE --to REGION [--force]\n"
	"\n"
	"Make REGION the primary now, without waiting for the automatic failover.\n"
	"Refused while the current primary still holds a valid lease (it may be\n"
	"alive): --force overrides that. With --force, writes the old primary\n"
	"acknowledged with local durability that REGION does not have, and any it\n"
	"accepts until its lease runs out (at most lease_ms), are taken out of the\n"
	"history: they are written to its quarantine when it rejoins, never\n"
	"silently dropped. Writes acknowledged with global durability are never lost.\n";

static const char usage_quarantine[] =
	"usage: tandem quarantine list --config FILE\n"
	"       tandem quarantine show --config FILE NAME\n"
	"\n"
	"Transactions a rejoining old primary took back because they never reached\n"
	"the new primary: one JSON line each (epoch, position, time, and per change\n"
	"the table and the rows before and after), in DATA/REGION/quarantine/.\n"
	"list: every file with its count; show: the lines of one file (its name as\n"
	"listed). Replaying them is the operator's decision.\n";

typedef struct target_opts {
	const char *to;
	int force;
} target_opts;

static int target_extra(admin *ad, int argc, char **argv, int *i)
{
	target_opts *o = ad->opts;
	if (strcmp(argv[*i], "--to") == 0 && *i + 1 < argc) {
		o->to = argv[++*i];
		return 0;
	}
	if (strcmp(argv[*i], "--force") == 0 && strcmp(argv[0], "failover") == 0) {
		o->force = 1;
		return 0;
	}
	return -1;
}

static json_t *region_status(admin *ad, const config_region *r, char *err, size_t cap)
{
	int status;
	json_t *j = admin_request(ad, r->link_listen, r->name, "GET", "/internal/v1/status", NULL, 3000, &status,
				  err, cap);
	if (j && status != 200) {
		snprintf(err, cap, "answered %d", status);
		json_decref(j);
		return NULL;
	}
	return j;
}

static int is_writable_primary(json_t *s)
{
	return s && json_is_true(json_object_get(json_object_get(s, "lease"), "valid")) &&
	       strcmp(json_string_value(json_object_get(s, "role")) ?: "", "primary") == 0;
}

static double mono_s(void)
{
	return (double)util_mono_us() / 1e6;
}

static const char *error_message(json_t *j)
{
	const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
	return m ? m : "no reason given";
}

int cmd_switchover(int argc, char **argv)
{
	static config cfg;
	target_opts o = {0};
	admin ad = {.extra_opts = target_extra, .opts = &o};
	int rc = admin_open(argc, argv, usage_switchover, &cfg, &ad, NULL);
	if (rc >= 0)
		return rc;
	rc = 1;
	const config_region *to = o.to ? config_region_find(&cfg, o.to) : NULL;
	if (!o.to) {
		cli_fail("switchover needs --to REGION");
		goto out;
	}
	if (!to) {
		cli_fail("no region '%s' in %s", o.to, cfg.path);
		goto out;
	}
	const config_region *from = NULL;
	char err[256];
	for (int i = 0; i < cfg.region_count; i++) {
		json_t *s = region_status(&ad, &cfg.regions[i], err, sizeof err);
		if (is_writable_primary(s))
			from = &cfg.regions[i];
		json_decref(s);
	}
	if (from == to) {
		printf("%s is already the primary\n", to->name);
		rc = 0;
		goto out;
	}
	if (!from) {
		cli_fail("no region is primary with a lease right now; nothing to switch over (see tandem status)");
		goto out;
	}
	char body[96];
	snprintf(body, sizeof body, "{\"to\":\"%s\"}", to->name);
	double t0 = mono_s();
	int status;
	json_t *j = admin_request(&ad, from->link_listen, from->name, "POST", "/internal/v1/admin/switchover", body,
				  cfg.failover.switchover_timeout_ms + 5000, &status, err, sizeof err);
	if (!j || status != 200) {
		cli_fail("switchover refused by %s: %s", from->name, j ? error_message(j) : err);
		json_decref(j);
		goto out;
	}
	long long position = json_integer_value(json_object_get(j, "position"));
	json_decref(j);
	/* the target stands at once and is elected in a round trip; had the
	 * handover been lost, it would stand after election_timeout_ms and
	 * win once the witness's grant to us ran out: wait for that bound
	 * (at least 10 s) until it takes writes */
	const config_failover *f = &cfg.failover;
	double wait_s = (2.0 * (f->lease_ms + f->grant_margin_ms) + f->election_timeout_ms) / 1000.0;
	if (wait_s < 10.0)
		wait_s = 10.0;
	double deadline = mono_s() + wait_s;
	json_t *s = NULL;
	while (mono_s() < deadline) {
		s = region_status(&ad, to, err, sizeof err);
		if (is_writable_primary(s))
			break;
		json_decref(s);
		s = NULL;
		struct timespec ts = {0, 20 * 1000000};
		nanosleep(&ts, NULL);
	}
	if (!s) {
		cli_fail("%s handed over at position %lld but %s did not take writes within %.0f s (see tandem status)",
			 from->name, position, to->name, wait_s);
		goto out;
	}
	printf("switchover %s -> %s done in %.2f s: %s is primary of epoch %lld; nothing lost (%s handed over at "
	       "position %lld, all applied by %s)\n",
	       from->name, to->name, mono_s() - t0, to->name, json_integer_value(json_object_get(s, "epoch")),
	       from->name, position, to->name);
	json_decref(s);
	rc = 0;
out:
	admin_close(&ad);
	return rc;
}

int cmd_failover(int argc, char **argv)
{
	static config cfg;
	target_opts o = {0};
	admin ad = {.extra_opts = target_extra, .opts = &o};
	int rc = admin_open(argc, argv, usage_failover, &cfg, &ad, NULL);
	if (rc >= 0)
		return rc;
	rc = 1;
	const config_region *to = o.to ? config_region_find(&cfg, o.to) : NULL;
	char err[256];
	if (!o.to) {
		cli_fail("failover needs --to REGION");
		goto out;
	}
	if (!to) {
		cli_fail("no region '%s' in %s", o.to, cfg.path);
		goto out;
	}
	json_t *ts = region_status(&ad, to, err, sizeof err);
	if (!ts) {
		cli_fail("%s is %s: it cannot take over", to->name, err);
		goto out;
	}
	if (strcmp(json_string_value(json_object_get(ts, "role")) ?: "", "primary") == 0) {
		printf("%s is already the primary\n", to->name);
		json_decref(ts);
		rc = 0;
		goto out;
	}
	long long applied = json_integer_value(json_object_get(ts, "applied_seq"));
	json_decref(ts);
	/* what the old primary has beyond the target, if it answers */
	for (int i = 0; i < cfg.region_count; i++) {
		if (&cfg.regions[i] == to)
			continue;
		json_t *s = region_status(&ad, &cfg.regions[i], err, sizeof err);
		long long last = s ? json_integer_value(json_object_get(s, "last_seq")) : -1;
		if (o.force) {
			if (last > applied)
				printf("warning: %s is at position %lld, %s at %lld: up to %lld transactions acknowledged "
				       "by %s with local durability will be taken out of the history (to its quarantine "
				       "when it rejoins), plus any it accepts until its lease ends\n",
				       cfg.regions[i].name, last, to->name, applied, last - applied, cfg.regions[i].name);
			else if (last < 0)
				printf("warning: %s does not answer (%s): writes it acknowledged with local durability "
				       "after position %lld may be taken out of the history (to its quarantine when it "
				       "rejoins); global writes are never lost\n",
				       cfg.regions[i].name, err, applied);
		}
		json_decref(s);
	}
	char body[64];
	snprintf(body, sizeof body, "{\"force\":%s}", o.force ? "true" : "false");
	int status;
	double t0 = mono_s();
	json_t *j = admin_request(&ad, to->link_listen, to->name, "POST", "/internal/v1/admin/failover", body,
				  30000, &status, err, sizeof err);
	if (!j || status != 200) {
		cli_fail("failover to %s refused: %s", to->name, j ? error_message(j) : err);
		json_decref(j);
		goto out;
	}
	printf("%s is primary of epoch %lld at position %lld (elected in %.2f s%s)\n", to->name,
	       json_integer_value(json_object_get(j, "epoch")), json_integer_value(json_object_get(j, "position")),
	       mono_s() - t0, o.force ? ", forced" : "");
	json_decref(j);
	rc = 0;
out:
	admin_close(&ad);
	return rc;
}

/* --- quarantine --- */

static int count_lines(const char *path, long long *bytes)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int n = 0, c;
	long long b = 0;
	while ((c = fgetc(f)) != EOF) {
		b++;
		if (c == '\n')
			n++;
	}
	fclose(f);
	*bytes = b;
	return n;
}

int cmd_quarantine(int argc, char **argv)
{
	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(usage_quarantine, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *action = argv[1];
	if (strcmp(action, "list") != 0 && strcmp(action, "show") != 0)
		return cli_fail("quarantine: unknown action '%s' (list or show)", action);
	const char *path = NULL, *name = NULL;
	for (int i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(usage_quarantine, stdout);
			return 0;
		}
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (argv[i][0] != '-' && !name && strcmp(action, "show") == 0)
			name = argv[i];
		else
			return cli_fail("quarantine: unexpected '%s' (see tandem quarantine --help)", argv[i]);
	}
	if (!path)
		return cli_fail("quarantine %s needs --config FILE", action);
	if (strcmp(action, "show") == 0 && !name)
		return cli_fail("quarantine show needs the NAME of a file (see tandem quarantine list)");
	if (name && (strchr(name, '/') || strcmp(name, "..") == 0 || strcmp(name, ".") == 0))
		return cli_fail("quarantine show takes a file name as listed, not a path");
	static config cfg;
	if (cli_load_config(path, &cfg) != 0)
		return 1;
	int total = 0, copies = 0;
	for (int i = 0; i < cfg.region_count; i++) {
		char dir[CONFIG_PATH_MAX + 16];
		snprintf(dir, sizeof dir, "%s/quarantine", cfg.regions[i].data_dir);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp"))
				continue;
			char file[CONFIG_PATH_MAX + 300];
			snprintf(file, sizeof file, "%s/%s", dir, e->d_name);
			if (name) {
				if (strcmp(name, e->d_name) != 0)
					continue;
				FILE *f = fopen(file, "r");
				if (!f) {
					closedir(d);
					return cli_fail("%s: cannot read: %s", file, strerror(errno));
				}
				if (strstr(e->d_name, ".db")) {
					fclose(f);
					printf("%s is a copy of %s's whole database (SQLite), kept because its "
					       "transactions could not be reverted one by one; open it with sqlite3\n",
					       file, cfg.regions[i].name);
				} else {
					char line[65536];
					while (fgets(line, sizeof line, f))
						fputs(line, stdout);
					fclose(f);
				}
				closedir(d);
				return 0;
			}
			long long bytes = 0;
			int n = strstr(e->d_name, ".db") ? -1 : count_lines(file, &bytes);
			if (n >= 0) {
				printf("%-6s %-40s %6d transactions  %lld bytes\n", cfg.regions[i].name, e->d_name, n, bytes);
				total += n;
			} else {
				printf("%-6s %-40s database copy (snapshot fallback)\n", cfg.regions[i].name, e->d_name);
				copies++;
			}
		}
		closedir(d);
	}
	if (name)
		return cli_fail("no quarantine file named '%s' (see tandem quarantine list --config %s)", name, path);
	printf("%d quarantined transactions in JSON lines files, %d whole-database copies\n", total, copies);
	return 0;
}
