/*
 * internal.h - what the files of src/drill/ share (not for other modules).
 *
 *   drill.c      the script: deployment, workload, fault, heal, converge, check
 *   scenario.c   the scenarios: what each injects and heals, its targets
 *   component.c  child processes (regions, witness, commands) and their logs
 *   call.c       blocking HTTPS calls of the drill's own thread (admin, API)
 *   workload.c   the client workload, on its own thread and event loop
 *   fault.c      network namespace, nftables, fault switch, kill, switchover
 *   check.c      RPO, RTO, duplicates, two primaries, documented errors
 *   report.c     the readable report and report.json
 *   timeline.c   timeline.svg
 *
 * Times are wall-clock milliseconds since the epoch (util_now_ms), the clock
 * the regions' logs use, so both can be compared on one host.
 */
#ifndef TANDEM_DRILL_INTERNAL_H
#define TANDEM_DRILL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "core/buf.h"
#include "core/config.h"
#include "drill/drill.h"

#define DRILL_REGIONS 2           /* the workload and the checks compare two regions */
#define DRILL_MAX_COMPONENTS 3    /* two regions and the witness */
#define DRILL_READY_TIMEOUT_MS 30000

/* ---- scenarios (scenario.c) ---- */

typedef enum { SC_CRASH, SC_PARTITION, SC_SWITCHOVER, SC_RESTART } scenario_kind;
typedef enum { SC_PRIMARY, SC_SECONDARY, SC_WITNESS, SC_LINK, SC_ALL } scenario_target;

typedef struct drill_scenario {
	const char *name;
	const char *summary;     /* one line for --help and the report */
	scenario_kind kind;
	scenario_target target;
	double rto_target_s;     /* service write RTO target; < 0: none */
	double lost_span_target_s; /* span of lost `local` acknowledged writes; < 0: none */
	int rpo_zero;            /* no acknowledged write may be lost at all */
	/* Documented write errors, when the scenario promises "no others":
	 * space-separated classes ("connection", "timeout", "503:*",
	 * "503:replication_timeout", "*"), for the region that was primary and
	 * secondary at the fault. NULL: no such target. */
	const char *errors_primary;
	const char *errors_secondary;
} drill_scenario;

const drill_scenario *scenario_find(const char *name);
/* 1 if the error class is in the space-separated list of patterns. */
int scenario_error_allowed(const char *patterns, const char *cls);

/* ---- child processes (component.c) ---- */

typedef struct drill_component {
	char name[32];        /* "eu", "us", "witness" */
	int is_witness;
	char api[128];        /* regions: api_listen */
	char link[128];       /* regions: link_listen; witness: listen */
	char data_dir[CONFIG_PATH_MAX];
	char log_path[PATH_MAX];
	pid_t pid;
	int alive;
	int starts;
	int killed;           /* killed by the drill (not an unexpected death) */
	int last_status;      /* wait status of the last exit */
} drill_component;

/* The path of this executable (for children). 0 or -1. */
int component_self(char *out, size_t cap);
/*
 * Start the component (`tandem region` or `tandem witness`) with the config,
 * stderr and stdout appended to its log, and wait until it writes "ready"
 * on TANDEM_READY_FD (timeout_ms). Safe while other threads run (only
 * async-signal-safe calls between fork and exec). 0, or -1 with the reason
 * (and the log's last line) in err; the child is reaped on failure.
 */
int component_start(drill_component *c, const char *config_path, int timeout_ms, char *err,
		    size_t errcap);
/* Send sig; SIGKILL also waits for the exit. 0 or -1 (not running). */
int component_signal(drill_component *c, int sig);
/* SIGTERM, wait up to timeout_ms, then SIGKILL. Returns the wait status, -1 if not running. */
int component_stop(drill_component *c, int timeout_ms);
/* Has it died on its own? Reaps it (WNOHANG); 1 if it is no longer running. */
int component_reap(drill_component *c);
/*
 * Run a command (argv[0] a path or a name in PATH) to completion, stdin
 * from `input` (NULL: /dev/null), stdout and stderr collected into out
 * (bounded by its max) and appended to log_path when not NULL. Waits at most
 * timeout_ms, then kills it. Returns its exit code (0..255), 124 on timeout,
 * 127 when it could not run.
 */
int command_run(char *const argv[], const char *input, buf *out, const char *log_path,
		int timeout_ms);

/* ---- blocking HTTPS calls of the drill's thread (call.c) ---- */

typedef struct drill_reply {
	int rc;          /* 0, or ERR_* (connection, TLS, timeout) */
	int status;
	json_t *json;    /* parsed body, or NULL */
	char lsn[48];    /* X-Tandem-LSN */
} drill_reply;

/* One request to hostport (SNI/verified name sni); waits for the answer.
 * Always fills out (free with reply_free). */
void drill_call(struct event_base *base, SSL_CTX *ctx, const char *hostport, const char *sni,
		const char *method, const char *target, const char *headers, const char *body,
		int timeout_ms, drill_reply *out);
void reply_free(drill_reply *r);

/* ---- the workload (workload.c) ---- */

typedef enum { WRITE_PENDING = 0, WRITE_ACKED, WRITE_FAILED, WRITE_UNACKED } write_state;

typedef struct drill_write {
	int64_t sched_ms;   /* when it was due (open loop) */
	int64_t ack_ms;     /* when the 2xx arrived; 0 without one */
	int64_t lsn_epoch;  /* from X-Tandem-LSN; -1 without */
	int64_t lsn_seq;
	uint32_t index;
	uint16_t attempts;
	uint8_t region;     /* index into the deployment's regions */
	uint8_t global;     /* X-Tandem-Durability: global */
	uint8_t state;      /* write_state */
	uint8_t replayed;   /* Idempotent-Replayed: true */
	int16_t status;     /* last HTTP status; 0: no answer */
	char id[32];        /* the record's id */
	char error[40];     /* last error class */
} drill_write;

typedef enum { OP_WRITE = 0, OP_READ = 1 } op_kind;

/* One attempt: a write try or a read sample. */
typedef struct drill_op {
	int64_t send_ms;
	int64_t done_ms;
	uint32_t write_index; /* writes */
	uint8_t region;
	uint8_t kind;         /* op_kind */
	uint8_t ok;           /* 2xx (reads: 200 or 404) */
	uint8_t missing;      /* read: 404 of an acknowledged record */
	uint8_t global;       /* write with X-Tandem-Durability: global */
	int16_t status;       /* 0: no answer */
	char cls[40];         /* error class: "connection", "timeout", "503:no_lease", ... */
} drill_op;

typedef struct workload_region {
	char name[32];
	char api[128];        /* host:port */
	char token[1024];     /* access token of the region's drill user */
	char user_id[64];
	char collection[64];
} workload_region;

typedef struct workload_config {
	workload_region regions[DRILL_REGIONS];
	SSL_CTX *api_ctx;     /* verifies the regions' certificates (not owned) */
	char run_id[16];
	int rate;             /* writes/s, both regions */
	int read_rate;        /* reads/s per region */
	int duration_s;
	int global_percent;
	int pool_max;         /* connections per region for writes */
} workload_config;

typedef struct workload workload;

/* Prepare (no thread yet). NULL with err on failure. */
workload *workload_new(const workload_config *wc, char *err, size_t errcap);
/* Start the thread; the schedule's time 0 is now. 0 or -1. */
int workload_start(workload *w);
/* Wall time of schedule 0. */
int64_t workload_start_ms(const workload *w);
/* Live counters (any thread): acknowledged writes, failed attempts. */
void workload_progress(const workload *w, long *acked, long *errors, long *pending);
/*
 * End the workload: no new writes or reads; writes not yet acknowledged keep
 * being retried for up to drain_ms, then everything stops and the thread is
 * joined. Afterwards the results below are stable.
 */
void workload_stop(workload *w, int drain_ms);
const drill_write *workload_writes(const workload *w, size_t *n);
const drill_op *workload_ops(const workload *w, size_t *n);
const workload_config *workload_config_of(const workload *w);
/* The marker written into write i's data. */
void workload_marker(const workload *w, uint32_t index, char out[48]);
void workload_free(workload **w);

/* ---- the run: everything check, report and timeline need ---- */

typedef struct drill_event {
	int64_t t_ms;
	char kind[16];        /* fault, heal, kill, start, stop, role, switchover, note */
	char component[32];
	char text[200];
} drill_event;

typedef struct primary_interval {
	char region[32];
	int64_t epoch;
	int64_t from_ms, to_ms;   /* to_ms: writes_off, kill, or stop */
	char end[16];             /* "writes_off", "killed", "stopped", "running" */
} primary_interval;

/* A region as its status endpoint shows it. */
typedef struct region_view {
	int reachable;
	char role[16];
	long long epoch, last_seq, applied_seq;
} region_view;

typedef struct drill_run_state {
	const drill_options *opt;
	const drill_scenario *sc;
	config cfg;
	char config_path[PATH_MAX];
	char self[PATH_MAX];
	char logs_dir[PATH_MAX];
	drill_component comps[DRILL_MAX_COMPONENTS];
	int ncomps;
	int witness;              /* index in comps, -1 when none */
	int region_comp[DRILL_REGIONS]; /* comps index of each workload region */
	int netns;                /* running in a private network namespace */
	char net_method[32];      /* "nftables" or "fault-switch" */
	char net_note[256];       /* why, when not the one asked */
	SSL_CTX *admin_ctx;
	SSL_CTX *api_ctx;
	struct event_base *base;
	workload *wl;
	int64_t t0_ms;            /* schedule time 0 */
	region_view last_view[DRILL_REGIONS]; /* last status poll */
	int have_view;
	int64_t next_poll_ms, next_progress_ms;
	int64_t fault_ms, heal_ms, end_ms;
	char primary_at_fault[32];
	char fault_target[32];
	char fault_detail[1024];
	char heal_detail[1024];
	int fault_failed;         /* the fault could not be injected */
	int nft_active;           /* the drop rules are in place */
	int switch_active;        /* some region's fault switch isolates peers */
	char partition_desc[128]; /* which traffic is dropped */
	long nft_dropped;         /* packets the drop rules matched, read at the heal */
	int nft_counted;          /* nft_dropped is known */
	drill_event *events;
	size_t nevents, capevents;
	/* after the run */
	int converged;
	double converge_s;
	int64_t final_position;
	char final_primary[32];
	int verify_code;
	char verify_output[4096];
	json_t *final_records;    /* marker -> array of ids (final primary) */
	json_t *quarantine_before; /* quarantine file -> size before the run */
	json_t *quarantine;       /* marker -> {"id","epoch","position","file"} */
	json_t *quarantine_files; /* array of paths */
	long quarantine_lines;
	primary_interval *intervals;
	size_t nintervals;
	json_t *role_events;      /* from the logs */
	int log_events_seen;      /* writes_on / writes_off lines found */
	char readback_error[256];
	json_t *report;           /* built by check + report */
	int exit_code;
} drill_run_state;

void run_event(drill_run_state *s, const char *kind, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Seconds since schedule 0. */
double run_t(const drill_run_state *s, int64_t ms);

/* ---- faults (fault.c) ---- */

/* Enter a private network namespace with loopback up (root). 0 or -1 (reason in err). */
int fault_enter_netns(char *err, size_t errcap);
/* Inject the scenario's fault / heal it. 0, or -1 with s->fault_detail saying why. */
int fault_inject(drill_run_state *s);
int fault_heal(drill_run_state *s);
/* Undo whatever is still in place (end of the run, interrupted runs). */
void fault_cleanup(drill_run_state *s);

/* ---- checks and report (check.c, report.c, timeline.c) ---- */

/* Parse the components' logs into intervals and role events. */
void check_parse_logs(drill_run_state *s);
/* Build s->report (everything but the file names) and s->exit_code. */
void check_all(drill_run_state *s);
/* Print the readable report on f. */
void report_print_text(const drill_run_state *s, FILE *f);
/* Write REPORT/report.json and REPORT/timeline.svg. 0 or -1 (errno). */
int report_write_files(drill_run_state *s, char *err, size_t errcap);
int timeline_write_svg(const drill_run_state *s, const char *path);

#endif
