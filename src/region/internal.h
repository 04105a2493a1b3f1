/*
 * internal.h - what the region node's files share (not used elsewhere).
 *
 * api.c      routing, the per-request call object, errors, responses, logs
 * auth.c     signup, login, refresh, logout, me
 * records.c  the records API
 * list.c     record lists, on the reader threads, with a budget
 * idempotency.c  Idempotency-Key: replay and conflict detection
 * ratelimit.c    login and signup throttling
 * metrics.c      /metrics, on its own listener (metrics_listen)
 * cors.c         the CORS policy ([api] cors_origins), cors.h
 * filesapi.c     the mobile files API (/v1/files), over objects/files.h
 * node.c     process setup, signals, graceful shutdown
 */
#ifndef TANDEM_REGION_INTERNAL_H
#define TANDEM_REGION_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/secrets.h"
#include "core/workers.h"
#include "http/server.h"
#include "region/tokens.h"
#include "replication/replication.h"
#include "store/committer.h"
#include "store/db.h"
#include "store/readers.h"

typedef struct ratelimit ratelimit;
typedef struct metrics metrics;
typedef struct cors_policy cors_policy;
typedef struct files files;
typedef struct files_reader files_reader;

typedef struct region {
	const config *cfg;
	const config_region *self;
	secrets secrets;
	struct event_base *base;
	http_server *server;
	http_server *metrics_server; /* plain HTTP on metrics_listen; NULL without one */
	cors_policy *cors;     /* immutable after start */
	db_conn *reader;       /* loop thread only */
	committer *writer;
	workers *hashers;      /* argon2id: logins URGENT, signups BULK */
	readers *readers;      /* list queries (list.c) */
	ratelimit *login_limit;  /* failed and in-flight logins, per account and address */
	ratelimit *signup_limit; /* signups per address */
	unsigned char idem_key[32]; /* keys the scopes and request hashes of anonymous
				     * Idempotency-Keys (secrets_derive) */
	metrics *metrics;
	files *files;          /* the files API's store access; NULL without an object store */
	/* the object store while it serves (set after objects_run, cleared
	 * before objects_stop), for the link's thread: object replication
	 * requests reach it under store_lock */
	struct objects *store;
	pthread_mutex_t store_lock;
	unsigned char files_idem_key[32]; /* file ids from Idempotency-Keys (files_idempotent_id) */
	char files_key_id[24];     /* the internal S3 key pair presigned URLs are signed with */
	char files_secret[48];
	capture *capture;
	repl *repl;
	SSL_CTX *link_server_ctx, *link_client_ctx;
	struct event *sigterm, *sigint, *purge_timer, *shutdown_timer, *log_timer, *trim_timer;
	struct looplag *api_lag; /* the API loop's lag (tandem_api_loop_lag_seconds) */
	bool shutting_down;
	bool loop_done;        /* the main loop was told to end (node.c node_exit_loop) */
	char dummy_hash[160];  /* verified against for unknown emails (timing) */
} region;

/* The object store's replication figures (node.c; any thread). */
struct orepl_stats;
void node_objects_stats(region *rg, struct orepl_stats *st);

#define API_ID_MAX 40
#define API_PATH_SEGMENTS 8

typedef struct api_call api_call;
/* A write step run on the writer thread (see committer.h): fills the call's
 * response; returns 0 to keep its changes or < 0 to roll them back. */
typedef int (*api_write_fn)(db_conn *db, api_call *call);

struct api_call {
	region *rg;
	http_request *req;
	const http_message *msg;
	const char *route;             /* pattern, for logs and metrics */
	int route_index;
	char request_id[72];
	int64_t start_us;
	int64_t now_ms;
	/* target */
	const char *segments[API_PATH_SEGMENTS];
	size_t segment_lens[API_PATH_SEGMENTS];
	int segment_count;
	const char *query;             /* after '?', or NULL */
	/* caller */
	char user_id[API_ID_MAX];
	char session_id[API_ID_MAX];
	bool authenticated;
	bool via_link;                 /* forwarded by the other region */
	bool forward_retried;          /* re-forwarded once after a stale epoch */
	bool write_counted;            /* counted in the writes in flight */
	char client_addr[64];          /* the client's address (X-Forwarded-For over the link) */
	bool durability_global;
	bool session_revoked;
	bool read_txn;                 /* a read transaction is open on the reader */
	bool preflight;                /* an allowed CORS preflight: its headers are set */
	/* idempotency */
	char idem_key[256];
	char idem_owner[API_ID_MAX + 8]; /* the key's scope: user id, or "anon:<hash>" */
	bool has_idem;
	bool sealed;                   /* store the response encrypted */
	unsigned char request_hash[32];
	unsigned char seal_key[32];    /* derived from the request body itself */
	/* the response being built */
	int status;
	buf body;
	buf headers;                   /* "Name: value\r\n" lines */
	bool replayed;
	uint64_t seq;                  /* position of the committed write (0: none) */
	/* handler state */
	api_write_fn write;
	/* before a stored answer is replayed (writer thread): 0 to replay it, 1
	 * when the call was answered otherwise (error set), < 0 on error */
	api_write_fn replay_check;
	bool revocation;               /* the write ended a session: wait for the other
					* region's ack, say in X-Tandem-Durability */
	bool login_reserved;           /* holds a login attempt in ratelimit */
	json_t *json;                  /* parsed request body */
	char collection[72];
	char record_id[API_ID_MAX];
	char if_match[512];            /* If-Match (writes) or If-None-Match (GET), validated */
	char password_hash[160];
	char email[256];
	char created_at[32];
	char password[1025];
	char refresh_token[64];
	bool verified;
	int patch;                     /* 1 for PATCH (merge), 0 for PUT */
	char *data_text;               /* compact JSON of the record data, malloc'd */
	/* files API (filesapi.c) */
	bool cache_private;            /* Cache-Control: private instead of no-store */
	char file_id[40];
	files_reader *file_reader;     /* a GET being streamed */
	uint64_t file_remaining;       /* bytes of it still to send */
	bool file_reading;             /* a read is in flight */
};

/* api.c */
void api_on_request(http_request *req, void *arg);
/* Before the body: the files upload's own body limit, and its 413 from
 * Content-Length before any byte of the body is read. */
void api_on_head(http_request *req, void *arg);
/* The same, for API calls forwarded by the other region over the link. */
void api_on_link_request(http_request *req, void *arg);
void api_error(api_call *call, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void api_header(api_call *call, const char *name, const char *value);
void api_finish(api_call *call);
/* A streaming answer of length bytes (a file): the call's headers, its log
 * line, then the caller sends length bytes with http_respond_chunk (none
 * for HEAD) and ends with api_stream_end (complete false: the body could
 * not be finished, the connection is cut). */
void api_stream_begin(api_call *call, int status, uint64_t length);
void api_stream_end(api_call *call, bool complete);
/* Queue call->write on the writer thread; the answer goes out when durable. */
void api_submit_write(api_call *call);
/* Parse the body as a JSON object into call->json; on failure answers 400/415
 * and returns false. */
bool api_parse_json_object(api_call *call, bool merge_patch_ok);
/* Require a valid access token; on failure answers 401 and returns false. */
bool api_authenticate(api_call *call);
/* The same, but a token whose session is revoked is accepted with
 * call->session_revoked set (for idempotent retries of logout). */
bool api_authenticate_allow_revoked(api_call *call);
/* One read transaction for all the reads of a synchronous read handler
 * (token check and data see one snapshot, for one lock); api_finish ends it. */
void api_read_begin(api_call *call);
/* End that read transaction now (before handing the call to another thread,
 * so that the loop's connection holds no snapshot meanwhile). */
void api_read_end(api_call *call);
/* Value of a request header as a NUL-terminated copy (truncated to cap). */
bool api_request_header(api_call *call, const char *name, char *out, size_t cap);
/* Decoded value of a query parameter; NULL if absent. malloc'd. */
char *api_query_param(api_call *call, const char *name, bool *bad);
void api_json_string(buf *b, const char *s);

/* auth.c */
void auth_signup(api_call *call);
void auth_login(api_call *call);
void auth_refresh(api_call *call);
void auth_logout(api_call *call);
void auth_me(api_call *call);
/* Issue a session + tokens on the writer thread; fills the auth response. */
int auth_issue_session(db_conn *db, api_call *call, const char *user_id, const char *email,
		       const char *created_at, int status);

/* records.c */
#define RECORD_COLUMNS "id, owner, collection, version, created_at, updated_at, data"
void records_create(api_call *call);
void records_get(api_call *call);
void records_update(api_call *call);
void records_delete(api_call *call);
/* Authenticate and read the path ({collection}, and {id} when with_id);
 * answers (api_finish) and returns false on failure. */
bool records_begin(api_call *call, bool with_id);
/* Append the record on st's row (RECORD_COLUMNS order) as JSON. 0, or
 * ERR_LIMIT / ERR_NOMEM with b holding part of it (discard it then). */
int records_json(buf *b, sqlite3_stmt *st);

/* filesapi.c */
void files_upload(api_call *call);
void files_get(api_call *call);
void files_remove(api_call *call);
void files_index(api_call *call);
void files_url(api_call *call);
void files_presign_upload(api_call *call);
/* The 413 of api_on_head: the bound of an upload's body (form-data framing
 * included) and the file's own bound. */
size_t files_body_limit(const region *rg);

/* list.c */
void records_list(api_call *call);
/* The reader threads of list queries (config: query_threads); NULL with the
 * reason in err. */
readers *list_readers_new(region *rg, const char *db_path, char *err, size_t errcap);

/* idempotency.c */
/* Read Idempotency-Key and hash the request (loop thread). sealed: the answer
 * holds credentials and is stored encrypted under a key derived from the
 * request body. credential: NULL for a call authenticated by an access token
 * (the key is scoped by its user), else what an anonymous call presents
 * (email, refresh token): the key is scoped by a keyed hash of it. false
 * when the key is malformed (answered with 400 and finished). */
bool idempotency_prepare(api_call *call, bool sealed, const char *credential);
/* On the writer thread, before the write: 1 when the call was answered from
 * the stored response (or 422), 0 to go on, < 0 on error. */
int idempotency_check(db_conn *db, api_call *call);
/* After a successful write: remember the response. 0 or < 0. */
int idempotency_store(db_conn *db, api_call *call);
/* Delete keys older than the configured TTL (writer thread). */
int idempotency_purge(db_conn *db, int64_t older_than_ms);

/* ratelimit.c: counters of authentication attempts (see the design block
 * there). Names are "a:<email>", "i:<address>", "s:<address>". */
#define RATELIMIT_KEY_BYTES 16
typedef enum ratelimit_outcome {
	RATELIMIT_NONE,  /* the attempt ends without counting (a login that succeeded, per address) */
	RATELIMIT_COUNT, /* the attempt counts (a failed login, a signup) */
	RATELIMIT_RESET  /* the attempt clears the count (a login that succeeded, per account) */
} ratelimit_outcome;
/* secret: the table key (HMAC key of the names). NULL on allocation failure. */
ratelimit *ratelimit_new(int max_entries, const unsigned char secret[32]);
void ratelimit_free(ratelimit **r);
/* Reserve one attempt: 0 when reserved (release it exactly once), else the
 * seconds to wait (>= 1) and nothing is held: the count reached max_count in
 * the window, or in-flight attempts would let it (count + in_flight >=
 * max_count), or max_in_flight attempts are in flight. */
int ratelimit_reserve(ratelimit *r, const char *name, int max_count, int max_in_flight, int window_s,
		      int64_t now_ms);
/* End a reserved attempt with its outcome. */
void ratelimit_release(ratelimit *r, const char *name, ratelimit_outcome outcome, int window_s,
		       int64_t now_ms);
/* Reserve and count at once (an attempt that counts whatever its outcome):
 * 0, or the seconds to wait with nothing counted. */
int ratelimit_take(ratelimit *r, const char *name, int max_count, int window_s, int64_t now_ms);
/* Attempts of name in flight (tests, metrics). */
int ratelimit_in_flight(ratelimit *r, const char *name);
/* The table key of a name: HMAC-SHA256(secret, name), first bytes. */
void ratelimit_key_hash(const ratelimit *r, const char *name, unsigned char out[RATELIMIT_KEY_BYTES]);

/* metrics.c */
metrics *metrics_new(void);
void metrics_free(metrics **m);
void metrics_request(metrics *m, int route_index, int status, int64_t duration_us);
void metrics_idempotent_replay(metrics *m);
/* A list query refused: "timeout", "scan_limit" or "overloaded". */
void metrics_list_refused(metrics *m, const char *reason);
void metrics_render(region *rg, buf *out);
/* The handler of the metrics listener (arg: the region): GET or HEAD
 * /metrics answers the Prometheus text; any other path 404, any other
 * method 405, both with a JSON error body. Answers at once. */
void metrics_on_request(http_request *req, void *arg);

#endif
