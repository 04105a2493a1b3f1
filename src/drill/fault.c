/*
 * fault.c - injecting and healing the scenarios' faults.
 *
 *   crash      kill -9 the component; heal: start it again (same data)
 *   partition  as root: the drill runs in its own network namespace (every
 *              component is its child, so they share it) where each
 *              component has its own loopback address; an nftables table
 *              drops the traffic between the cut-off addresses, both ways.
 *              Otherwise: each region's fault switch
 *              (POST /internal/v1/admin/fault {"isolate": [...]}).
 *              Heal: delete the table / clear the switches.
 *   switchover `tandem switchover --to SECONDARY`; no heal.
 *   restart    SIGTERM and start again, every component in turn.
 *
 * The drill's own traffic (the workload, status polls) comes from
 * 127.0.0.1, which no rule matches: clients keep reaching every region, so
 * a cut-off primary is seen refusing (or quarantining) writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"
#include "drill/internal.h"

#define NFT_TABLE "tandem_drill"

int fault_enter_netns(char *err, size_t errcap)
{
	/* keep the way back: when the namespace turns out unusable (no nft
	 * support in the kernel, a container without it), the drill returns to
	 * the original one and uses the fault switch */
	int orig = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (orig < 0) {
		snprintf(err, errcap, "cannot open /proc/self/ns/net: %s", strerror(errno));
		return -1;
	}
	if (unshare(CLONE_NEWNET) != 0) {
		snprintf(err, errcap, "cannot create a network namespace: %s", strerror(errno));
		close(orig);
		return -1;
	}
	buf out;
	buf_init(&out, 4096);
	char *up[] = {"ip", "link", "set", "lo", "up", NULL};
	char *probe[] = {"nft", "add", "table", "inet", NFT_TABLE, NULL};
	char *unprobe[] = {"nft", "delete", "table", "inet", NFT_TABLE, NULL};
	int rc = command_run(up, NULL, &out, NULL, 10000);
	if (rc != 0)
		snprintf(err, errcap, "ip link set lo up: exit %d: %.200s", rc, out.data ? out.data : "");
	if (rc == 0) {
		rc = command_run(probe, NULL, &out, NULL, 10000);
		if (rc != 0)
			snprintf(err, errcap, "nftables unusable in a network namespace: exit %d: %.200s", rc,
				 out.data ? out.data : "");
		else
			rc = command_run(unprobe, NULL, &out, NULL, 10000);
	}
	buf_free(&out);
	if (rc != 0) {
		if (setns(orig, CLONE_NEWNET) != 0) { /* cannot happen: we came from there */
			fprintf(stderr, "tandem: cannot return to the original network namespace: %s\n",
				strerror(errno));
			abort();
		}
		close(orig);
		return -1;
	}
	close(orig);
	return 0;
}

static drill_component *comp_by_name(drill_run_state *s, const char *name)
{
	for (int i = 0; i < s->ncomps; i++)
		if (strcmp(s->comps[i].name, name) == 0)
			return &s->comps[i];
	return NULL;
}

/* The other region's name. */
static const char *other_region(drill_run_state *s, const char *name)
{
	for (int k = 0; k < DRILL_REGIONS; k++) {
		const char *n = s->comps[s->region_comp[k]].name;
		if (strcmp(n, name) != 0)
			return n;
	}
	return "";
}

static void comp_host(const drill_component *c, char *host, size_t cap)
{
	int port;
	if (util_split_hostport(c->link, host, cap, &port) != 0)
		snprintf(host, cap, "?");
}

/* ---- crash and restart ---- */

static int crash(drill_run_state *s, const char *name)
{
	drill_component *c = comp_by_name(s, name);
	if (!c || !c->alive) {
		snprintf(s->fault_detail, sizeof s->fault_detail, "%s is not running", name);
		return -1;
	}
	pid_t pid = c->pid;
	component_signal(c, SIGKILL);
	run_event(s, "kill", name, "kill -9 %s (pid %d)", name, (int)pid);
	snprintf(s->fault_detail, sizeof s->fault_detail, "kill -9 %s (pid %d)", name, (int)pid);
	return 0;
}

static int start_again(drill_run_state *s, const char *name, char *detail, size_t cap)
{
	drill_component *c = comp_by_name(s, name);
	if (!c)
		return -1;
	char err[512];
	int64_t t = util_now_ms();
	if (component_start(c, s->config_path, DRILL_READY_TIMEOUT_MS, err, sizeof err) != 0) {
		run_event(s, "note", name, "restart failed: %s", err);
		snprintf(detail, cap, "restart of %s failed: %s", name, err);
		return -1;
	}
	run_event(s, "start", name, "%s started again (pid %d), ready after %.1f s", name, (int)c->pid,
		  (double)(util_now_ms() - t) / 1000.0);
	snprintf(detail, cap, "%s started again (pid %d)", name, (int)c->pid);
	return 0;
}

static int restart_gracefully(drill_run_state *s, const char *name)
{
	drill_component *c = comp_by_name(s, name);
	if (!c)
		return -1;
	int status = component_stop(c, 15000);
	run_event(s, "stop", name, "%s stopped (SIGTERM; exit status %d)", name,
		  status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	char detail[600];
	return start_again(s, name, detail, sizeof detail);
}

/* ---- partitions ---- */

static int nft_apply(drill_run_state *s, const char *ruleset, const char *what)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%.*s/nft-%s.nft", PATH_MAX - 64, s->opt->report_dir, what);
	util_write_file(path, ruleset, strlen(ruleset), 0644); /* for the reader of the report */
	buf out;
	buf_init(&out, 8192);
	char log[PATH_MAX];
	snprintf(log, sizeof log, "%.*s/nft.log", PATH_MAX - 16, s->logs_dir);
	char *argv[] = {"nft", "-f", "-", NULL};
	int rc = command_run(argv, ruleset, &out, log, 10000);
	if (rc != 0)
		snprintf(s->fault_detail, sizeof s->fault_detail, "nft -f %.400s: exit %d: %.150s", path, rc,
			 out.data ? out.data : "");
	buf_free(&out);
	return rc == 0 ? 0 : -1;
}

/* Drop everything between the address `a` and each address of `others`. */
static int partition_nft(drill_run_state *s, const char *a, char others[][64], int n)
{
	buf rules;
	buf_init(&rules, 8192);
	buf_adds(&rules, "table inet " NFT_TABLE " {\n  chain output {\n"
			 "    type filter hook output priority 0; policy accept;\n");
	for (int i = 0; i < n; i++) {
		buf_printf(&rules, "    ip saddr %s ip daddr %s counter drop\n", a, others[i]);
		buf_printf(&rules, "    ip saddr %s ip daddr %s counter drop\n", others[i], a);
	}
	buf_adds(&rules, "  }\n}\n");
	int rc = nft_apply(s, rules.data, "partition");
	buf_free(&rules);
	if (rc == 0)
		s->nft_active = 1;
	return rc;
}

/* Set region's fault switch to isolate peers (none: heal). 0, or -1 with
 * the reason in detail. */
static int switch_set(drill_run_state *s, const char *region, const char *const *peers, int n,
		      char *detail, size_t cap)
{
	drill_component *c = comp_by_name(s, region);
	buf body;
	buf_init(&body, 1024);
	buf_adds(&body, "{\"isolate\":[");
	for (int i = 0; i < n; i++)
		buf_printf(&body, "%s\"%s\"", i ? "," : "", peers[i]);
	buf_adds(&body, "]}");
	drill_reply r;
	drill_call(s->base, s->admin_ctx, c->link, c->name, "POST", "/internal/v1/admin/fault",
		   "Content-Type: application/json\r\n", body.data, 5000, &r);
	int ok = r.rc == 0 && r.status == 200;
	if (!ok)
		snprintf(detail, cap, "fault switch of %s: %s %d (POST /internal/v1/admin/fault %s)", region,
			 r.rc ? "unreachable" : "answered", r.rc ? r.rc : r.status, body.data);
	reply_free(&r);
	buf_free(&body);
	return ok ? 0 : -1;
}

static int partition(drill_run_state *s)
{
	const char *victim_names[2];
	int nv = 0;
	const char *cut_names[3];
	int nc = 0;
	if (s->sc->target == SC_LINK) {
		victim_names[nv++] = s->primary_at_fault;
		cut_names[nc++] = other_region(s, s->primary_at_fault);
	} else {
		victim_names[nv++] = s->primary_at_fault;
		cut_names[nc++] = other_region(s, s->primary_at_fault);
		if (s->witness >= 0)
			cut_names[nc++] = s->comps[s->witness].name;
	}
	snprintf(s->fault_target, sizeof s->fault_target, "%s", victim_names[0]);
	char desc[128];
	int n = snprintf(desc, sizeof desc, "%s <-/-> ", victim_names[0]);
	for (int i = 0; i < nc && n < (int)sizeof desc; i++)
		n += snprintf(desc + n, sizeof desc - (size_t)n, "%s%s", i ? ", " : "", cut_names[i]);
	snprintf(s->partition_desc, sizeof s->partition_desc, "%s", desc);
	if (strcmp(s->net_method, "nftables") == 0) {
		char a[64], others[3][64];
		comp_host(comp_by_name(s, victim_names[0]), a, sizeof a);
		for (int i = 0; i < nc; i++)
			comp_host(comp_by_name(s, cut_names[i]), others[i], sizeof others[i]);
		if (partition_nft(s, a, others, nc) != 0)
			return -1;
		run_event(s, "fault", victim_names[0], "partition %s (nftables drop rules)", desc);
		snprintf(s->fault_detail, sizeof s->fault_detail, "partition %s: nftables drop rules", desc);
		return 0;
	}
	/* the fault switch: the victim drops the cut peers, each cut region drops the victim */
	s->switch_active = 1;
	if (switch_set(s, victim_names[0], cut_names, nc, s->fault_detail, sizeof s->fault_detail) != 0)
		return -1;
	for (int i = 0; i < nc; i++) {
		drill_component *c = comp_by_name(s, cut_names[i]);
		if (c->is_witness)
			continue; /* the witness has no switch; the victim drops its traffic */
		if (switch_set(s, cut_names[i], victim_names, 1, s->fault_detail,
			       sizeof s->fault_detail) != 0)
			return -1;
	}
	run_event(s, "fault", victim_names[0], "partition %s (fault switch)", desc);
	snprintf(s->fault_detail, sizeof s->fault_detail, "partition %s: fault switch", desc);
	return 0;
}

static int heal_partition(drill_run_state *s, char *detail, size_t cap)
{
	int rc = 0;
	if (s->nft_active) {
		buf out;
		buf_init(&out, 4096);
		char log[PATH_MAX];
		snprintf(log, sizeof log, "%.*s/nft.log", PATH_MAX - 16, s->logs_dir);
		/* first the counters: a partition that dropped nothing did not happen */
		char *list[] = {"nft", "list", "table", "inet", NFT_TABLE, NULL};
		if (command_run(list, NULL, &out, log, 10000) == 0 && out.data) {
			s->nft_dropped = 0;
			for (const char *p = strstr(out.data, "packets "); p; p = strstr(p + 8, "packets "))
				s->nft_dropped += strtol(p + 8, NULL, 10);
			s->nft_counted = 1;
		}
		buf_reset(&out);
		char *argv[] = {"nft", "delete", "table", "inet", NFT_TABLE, NULL};
		int code = command_run(argv, NULL, &out, log, 10000);
		if (code != 0) {
			snprintf(detail, cap, "nft delete table: exit %d: %.150s", code, out.data ? out.data : "");
			rc = -1;
		} else {
			s->nft_active = 0;
			snprintf(detail, cap, "nftables drop rules deleted (they dropped %ld packets)",
				 s->nft_dropped);
		}
		buf_free(&out);
	}
	if (s->switch_active) {
		for (int k = 0; k < DRILL_REGIONS; k++) {
			const char *name = s->comps[s->region_comp[k]].name;
			if (!s->comps[s->region_comp[k]].alive)
				continue;
			if (switch_set(s, name, NULL, 0, detail, cap) != 0)
				rc = -1;
		}
		if (rc == 0) {
			s->switch_active = 0;
			snprintf(detail, cap, "fault switches cleared");
		}
	}
	return rc;
}

/* ---- the scenario's fault ---- */

static const char *target_name(drill_run_state *s)
{
	switch (s->sc->target) {
	case SC_PRIMARY:
		return s->primary_at_fault;
	case SC_SECONDARY:
		return other_region(s, s->primary_at_fault);
	case SC_WITNESS:
		return s->witness >= 0 ? s->comps[s->witness].name : "";
	default:
		return s->primary_at_fault;
	}
}

int fault_inject(drill_run_state *s)
{
	const char *target = target_name(s);
	snprintf(s->fault_target, sizeof s->fault_target, "%s", target);
	switch (s->sc->kind) {
	case SC_CRASH:
		if (!target[0]) {
			snprintf(s->fault_detail, sizeof s->fault_detail,
				 "this deployment has no witness (no [witness] section in %.400s)", s->config_path);
			return -1;
		}
		if (crash(s, target) != 0)
			return -1;
		run_event(s, "fault", target, "%s", s->fault_detail);
		return 0;
	case SC_PARTITION:
		return partition(s);
	case SC_SWITCHOVER: {
		buf out;
		buf_init(&out, 8192);
		char log[PATH_MAX];
		snprintf(log, sizeof log, "%.*s/switchover.log", PATH_MAX - 32, s->logs_dir);
		char *argv[] = {s->self, "switchover", "--config", s->config_path, "--to", (char *)target, NULL};
		run_event(s, "fault", target, "tandem switchover --to %s", target);
		int64_t t = util_now_ms();
		int rc = command_run(argv, NULL, &out, log, 60000);
		char first[160] = "";
		if (out.data)
			snprintf(first, sizeof first, "%.*s", (int)strcspn(out.data, "\n"), out.data);
		run_event(s, "switchover", target, "switchover --to %s: exit %d after %.2f s%s%s", target, rc,
			  (double)(util_now_ms() - t) / 1000.0, first[0] ? ": " : "", first);
		snprintf(s->fault_detail, sizeof s->fault_detail,
			 "tandem switchover --to %s: exit %d after %.2f s%s%s", target, rc,
			 (double)(util_now_ms() - t) / 1000.0, first[0] ? ": " : "", first);
		buf_free(&out);
		return rc == 0 ? 0 : -1;
	}
	case SC_RESTART: {
		/* witness, then the secondary, then the primary */
		const char *order[3];
		int n = 0;
		if (s->witness >= 0)
			order[n++] = s->comps[s->witness].name;
		order[n++] = other_region(s, s->primary_at_fault);
		order[n++] = s->primary_at_fault;
		run_event(s, "fault", "all", "graceful restart of every component in turn");
		int rc = 0;
		for (int i = 0; i < n; i++) {
			if (restart_gracefully(s, order[i]) != 0)
				rc = -1;
			if (i + 1 < n)
				usleep(1000000); /* a second of service between two restarts */
		}
		snprintf(s->fault_detail, sizeof s->fault_detail, "SIGTERM and start again: %s%s%s%s%s",
			 order[0], n > 1 ? ", " : "", n > 1 ? order[1] : "", n > 2 ? ", " : "",
			 n > 2 ? order[2] : "");
		return rc;
	}
	}
	return -1;
}

int fault_heal(drill_run_state *s)
{
	switch (s->sc->kind) {
	case SC_CRASH: {
		int rc = start_again(s, s->fault_target, s->heal_detail, sizeof s->heal_detail);
		run_event(s, "heal", s->fault_target, "%s", s->heal_detail);
		return rc;
	}
	case SC_PARTITION: {
		int rc = heal_partition(s, s->heal_detail, sizeof s->heal_detail);
		run_event(s, "heal", s->fault_target, "%s", s->heal_detail);
		return rc;
	}
	case SC_SWITCHOVER:
		snprintf(s->heal_detail, sizeof s->heal_detail,
			 "none: the new primary stays (no switch back)");
		run_event(s, "heal", s->fault_target, "%s", s->heal_detail);
		return 0;
	case SC_RESTART:
		snprintf(s->heal_detail, sizeof s->heal_detail, "none: every restart healed itself");
		run_event(s, "heal", "all", "%s", s->heal_detail);
		return 0;
	}
	return -1;
}

void fault_cleanup(drill_run_state *s)
{
	char detail[256];
	if (s->nft_active || s->switch_active)
		heal_partition(s, detail, sizeof detail);
}
