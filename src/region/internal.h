/*
 * internal.h - what the region node's files share (not used elsewhere).
 *
 * api.c      routing, the per-request call object, errors, responses, logs
 * auth.c     signup, login, refresh, logout, me
 * records.c  the records API
 * list.c     record lists, on the reader threads, with a budget
 * idempotency.c  Idempotency-Key: replay and conflict detection
 * ratelimit.c    login throttling
 * metrics.c      /metrics
 * node.c     process setup, signals, graceful shutdown
 */
#ifndef TANDEM_REGION_INTERNAL_H
#define TANDEM_REGION_INTERNAL_H

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

typedef struct region {
	const config *cfg;
	const config_region *self;
	secrets secrets;
	struct event_base *base;
	http_server *server;
	db_conn *reader;       /* loop thread only */
	committer *writer;
	workers *hashers;      /* argon2id */
	readers *readers;      /* list queries (list.c) */
	ratelimit *login_limit;
	metrics *metrics;
	capture *capture;
	repl *repl;
	SSL_CTX *link_server_ctx, *link_client_ctx;
	struct event *sigterm, *sigint, *purge_timer, *shutdown_timer, *log_timer;
	bool shutting_down;
	char dummy_hash[160];  /* verified against for unknown emails (timing) */
} region;

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
	/* idempotency */
	char idem_key[256];
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
	json_t *json;                  /* parsed request body */
	char collection[72];
	char record_id[API_ID_MAX];
	char if_match[80];
	char password_hash[160];
	char email[256];
	char created_at[32];
	char password[1025];
	char refresh_token[64];
	bool verified;
	int patch;                     /* 1 for PATCH (merge), 0 for PUT */
	char *data_text;               /* compact JSON of the record data, malloc'd */
};

/* api.c */
void api_on_request(http_request *req, void *arg);
/* The same, for API calls forwarded by the other region over the link. */
void api_on_link_request(http_request *req, void *arg);
void api_error(api_call *call, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void api_header(api_call *call, const char *name, const char *value);
void api_finish(api_call *call);
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

/* list.c */
void records_list(api_call *call);
/* The reader threads of list queries (config: query_threads); NULL with the
 * reason in err. */
readers *list_readers_new(region *rg, const char *db_path, char *err, size_t errcap);

/* idempotency.c */
/* Read Idempotency-Key and hash the request (loop thread). sealed: the answer
 * holds credentials and is stored encrypted under a key derived from the
 * request body. false when the key is malformed (answered with 400). */
bool idempotency_prepare(api_call *call, bool sealed);
/* On the writer thread, before the write: 1 when the call was answered from
 * the stored response (or 422), 0 to go on, < 0 on error. */
int idempotency_check(db_conn *db, api_call *call);
/* After a successful write: remember the response. 0 or < 0. */
int idempotency_store(db_conn *db, api_call *call);
/* Delete keys older than the configured TTL (writer thread). */
int idempotency_purge(db_conn *db, int64_t older_than_ms);

/* ratelimit.c */
ratelimit *ratelimit_new(int max_entries);
void ratelimit_free(ratelimit **r);
/* Seconds to wait if key has max or more failures in the window, else 0. */
int ratelimit_blocked(ratelimit *r, const char *key, int max, int window_s, int64_t now_ms);
void ratelimit_fail(ratelimit *r, const char *key, int window_s, int64_t now_ms);
void ratelimit_clear(ratelimit *r, const char *key);

/* metrics.c */
metrics *metrics_new(void);
void metrics_free(metrics **m);
void metrics_request(metrics *m, int route_index, int status, int64_t duration_us);
void metrics_idempotent_replay(metrics *m);
/* A list query refused: "timeout", "scan_limit" or "overloaded". */
void metrics_list_refused(metrics *m, const char *reason);
void metrics_render(region *rg, buf *out);

#endif
