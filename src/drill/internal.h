/*
 * internal.h - what the files of src/drill/ share (not for other modules).
 *
 *   drill.c      the script: deployment, workload, fault, heal, converge, check
 *   scenario.c   the scenarios: what each injects and heals, its targets
 *   component.c  child processes (regions, witness, commands) and their logs
 *   call.c       blocking HTTPS calls of the drill's own thread (admin, API)
 *   workload.c   the client workload, on its own thread and event loop
 *   objload.c    the object workload (S3 PUT/DELETE), its own thread and loop;
 *                the drill thread's S3 calls (bucket, listings)
 *   objcheck.c   the object checks: final state, resurrection, object RPO, lag
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
#include "objects/sigv4.h"
#include "drill/drill.h"

#define DRILL_REGIONS 2           /* the workload and the checks compare two regions */
#define DRILL_MAX_COMPONENTS 5    /* two regions, the witness, two edges (--via edge) */
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
	int is_edge;          /* `tandem edge --name NAME` (--via edge) */
	char api[128];        /* regions: api_listen; edges: listen */
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
	char *body;      /* the raw body (NUL-terminated; S3 answers are XML), or NULL */
	size_t body_len;
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
	char tls_name[64];    /* the name its certificate is verified against ("": name) */
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

/* ---- the object workload (objload.c) ---- */

typedef enum { OBJ_PUT = 0, OBJ_DELETE = 1 } obj_kind;

#define OBJ_KEY_NAME_MAX 16      /* "k00042" */
#define OBJ_MIN_BYTES (16 * 1024)
#define OBJ_MAX_BYTES (1024 * 1024)

/* One object write (a PUT of fresh content or a DELETE), retried until
 * acknowledged or the end of the run, like a drill_write. */
typedef struct obj_write {
	int64_t sched_ms;   /* when it was due */
	int64_t send_ms;    /* its first attempt; 0: never sent */
	int64_t ack_ms;     /* the 2xx; 0 without one */
	uint32_t index;
	uint32_t key;       /* index of the key (objload_key_name) */
	uint32_t size;      /* PUT: body bytes */
	uint16_t attempts;
	uint8_t kind;       /* obj_kind */
	uint8_t region;
	uint8_t state;      /* write_state */
	int16_t status;     /* last HTTP status; 0: no answer */
	char etag[33];      /* PUT: hex MD5 of the body (the ETag), which names the write */
	char error[40];     /* last error class */
} obj_write;

/* One attempt of an object write. */
typedef struct obj_op {
	int64_t send_ms, done_ms;
	uint32_t write_index;
	uint8_t region;
	uint8_t ok;
	int16_t status;
	char cls[40];
} obj_op;

typedef struct objload_config {
	char region[DRILL_REGIONS][32];  /* names: TLS name and SigV4 region */
	char s3[DRILL_REGIONS][128];     /* s3_listen host:port */
	SSL_CTX *ctx;                    /* verifies the regions' certificates (not owned) */
	char run_id[16];
	char bucket[64];
	char access_key_id[136];
	char secret[136];
	int rate;                        /* object writes/s over both regions */
	int duration_s;
} objload_config;

typedef struct objload objload;

/* Prepare (no thread). NULL with err on failure. */
objload *objload_new(const objload_config *oc, char *err, size_t errcap);
/* Start the thread at schedule 0 = now. 0 or -1. */
int objload_start(objload *o);
/* No new writes; unacknowledged ones retried until drain_ms has passed. Does not wait. */
void objload_drain(objload *o, int drain_ms);
/* objload_drain if not yet, then wait for the thread. Results stable afterwards. */
void objload_stop(objload *o, int drain_ms);
void objload_progress(const objload *o, long *acked, long *errors);
const obj_write *objload_writes(const objload *o, size_t *n);
const obj_op *objload_ops(const objload *o, size_t *n);
const objload_config *objload_config_of(const objload *o);
/* Keys the workload may write: 0 .. objload_key_count - 1. */
uint32_t objload_key_count(const objload *o);
void objload_key_name(uint32_t key, char out[OBJ_KEY_NAME_MAX]);
/* The key index of a name, -1 when it is not one of the workload's. */
long objload_key_parse(const char *name);
void objload_free(objload **o);

/*
 * One signed S3 request with an empty body from the drill's thread
 * (blocking, drill_call). region: index into oc's regions; path from '/'
 * (the workload's names need no escaping); query parameters unencoded.
 * Always fills out (free with reply_free).
 */
void objs3_call(struct event_base *base, const objload_config *oc, int region, const char *method,
		const char *path, const sigv4_param *query, size_t nquery, int timeout_ms,
		drill_reply *out);

/* A region's objects as a listing shows them: per key its ETag or absent. */
typedef struct obj_state {
	int taken;          /* 1: listed; 0: not (error says why, or not attempted) */
	int64_t at_ms;      /* when the listing started */
	int64_t done_ms;    /* when it ended */
	uint32_t nkeys;
	char (*etag)[33];   /* etag[key]; "" when absent */
	uint32_t foreign;   /* keys in the bucket that are not the workload's */
	char error[160];
} obj_state;

/* Create the bucket in region 0 and wait (up to timeout_ms) until region 1
 * has it too. 0, or -1 with the reason in err. */
int objs3_create_bucket(struct event_base *base, const objload_config *oc, int timeout_ms, char *err,
			size_t errcap);
/* List the bucket in region into st (allocated for nkeys; freed with
 * obj_state_free). 0, or -1 with st->taken 0 and st->error set. */
int objs3_list(struct event_base *base, const objload_config *oc, int region, uint32_t nkeys,
	       obj_state *st);
void obj_state_free(obj_state *st);

/* ---- the object checks (objcheck.c; pure: unit-tested) ---- */

typedef enum {
	OBJ_VERDICT_NONE = 0,   /* not judged (not acknowledged, or after the cut-off) */
	OBJ_VERDICT_CURRENT,    /* the state is this write (PUT: its ETag; DELETE: absent) */
	OBJ_VERDICT_SUPERSEDED, /* the state comes from a write not strictly before it */
	OBJ_VERDICT_MISSING,    /* PUT: the state is older than it (or absent) */
	OBJ_VERDICT_REAPPEARED, /* DELETE: an object written strictly before it is there */
	OBJ_VERDICT_UNKNOWN,    /* the key holds content no write of the workload made */
} obj_verdict;

/* Slack (ms) of "strictly before": A is before B when A was acknowledged
 * more than this before B's first attempt. */
#define OBJ_ORDER_SLACK_MS 5

typedef struct obj_tally {
	long judged, current, superseded, missing, reappeared, unknown;
	int64_t missing_first_ack, missing_last_ack; /* of missing and reappeared ones */
} obj_tally;

/*
 * Judge every write acknowledged at or before cutoff_ms (INT64_MAX: all),
 * and not made in skip_region (-1: none), against the state st: verdict[i]
 * for writes[i] (may be NULL), the counts in *t. Cannot fail.
 */
void objcheck_judge(const obj_write *writes, size_t n, const obj_state *st, int64_t cutoff_ms,
		    int skip_region, obj_verdict *verdict, obj_tally *t);
/* Keys whose ETag differs between two states; -1 when one was not taken. */
long objcheck_differences(const obj_state *a, const obj_state *b, uint32_t *first_key);
/* The q-quantile (0..1) of n values (sorted in place); 0 when n is 0. */
double objcheck_quantile(double *v, size_t n, double q);

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
	long long objects_pending;   /* object writes not yet at the other region; -1: unknown */
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
	int edge_comp[DRILL_REGIONS];   /* --via edge: comps index of the edge in front of each region */
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
	/* objects (objload.c, objcheck.c) */
	objload *ol;              /* NULL when --object-rate 0 or the regions have no S3 */
	char obj_note[256];       /* why there is no object workload */
	obj_state obj_at_fault[DRILL_REGIONS]; /* read right after the fault (survivors) */
	obj_state obj_final[DRILL_REGIONS][2]; /* after convergence, twice ~1 s apart */
	double obj_drain_s;       /* until no object write was pending in either region */
	int obj_drained;
	int obj_ae_ran[DRILL_REGIONS];     /* the anti-entropy pass the drill asked for ended */
	long obj_ae_repairs[DRILL_REGIONS]; /* what anti-entropy queued again (from the logs) */
	double *obj_lag[DRILL_REGIONS]; /* objects.lag_seconds of each status poll */
	size_t obj_nlag[DRILL_REGIONS];
	json_t *obj_histogram;    /* region -> {"le": [...], "count": [...]} from /metrics */
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
/* The object section of the report; adds its checks to checks (failures
 * counted in *failed). Returns 1 when object RPO is within the budget (or
 * there is no object workload). */
int check_objects(drill_run_state *s, json_t *checks, int *failed, json_t **section);
/* Print the readable report on f. */
void report_print_text(const drill_run_state *s, FILE *f);
/* Write REPORT/report.json and REPORT/timeline.svg. 0 or -1 (errno). */
int report_write_files(drill_run_state *s, char *err, size_t errcap);
int timeline_write_svg(const drill_run_state *s, const char *path);

#endif
