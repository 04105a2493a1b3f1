/*
 * config.h - the deployment's configuration: one INI file (read with libinih)
 * that describes every region and component, so the same file is given to
 * every process of the deployment.
 *
 *   [deployment]   name, data_dir, secrets_file, ca_file, log_level
 *   [limits]       HTTP and storage hard limits
 *   [auth]         token lifetimes, argon2id parameters, login and signup throttling
 *   [api]          CORS origins
 *   [region NAME]  api_listen, data_dir, tls_cert, tls_key, role, link_listen,
 *                  metrics_listen, s3_listen
 *   [replication]  cross-region replication
 *   [witness]      listen, data_dir, tls_cert, tls_key (the third voter)
 *   [failover]     lease and election timings
 *   [drill]        RPO and RTO budgets of `tandem drill`
 *   [objects]      limits of the S3 API (single PUT size, key, metadata), its domain
 *   [files]        the mobile files API (its size limit)
 *
 * Relative paths are resolved against the directory of the config file.
 * Every error is reported as "FILE:LINE: message".
 */
#ifndef TANDEM_CONFIG_H
#define TANDEM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_REGIONS 8
#define CONFIG_PATH_MAX 512

typedef struct config_region {
	char name[32];
	char api_listen[128]; /* host:port */
	char data_dir[CONFIG_PATH_MAX];
	char tls_cert[CONFIG_PATH_MAX];
	char tls_key[CONFIG_PATH_MAX];
	char role[16];        /* initial role: "primary" or "secondary" */
	char link_listen[128];/* host:port of the inter-region link (mutual TLS); "" = none */
	char metrics_listen[128]; /* host:port of /metrics (plain HTTP, loopback by default); "" = none */
	char s3_listen[128];  /* host:port of the S3 API (TLS, the region's certificate); "" = none */
	int line;             /* where the section starts, for messages */
} config_region;

/* Cross-region replication (see docs/REPLICATION.md). */
typedef struct config_replication {
	char read_consistency[16];  /* default: eventual | session | global */
	char write_durability[16];  /* default: local | global */
	int rpo_budget_ms;          /* lag above which the primary slows writes (<= 30 s) */
	int backpressure_wait_ms;   /* how long a write waits for the lag to drop, then 503 */
	int min_lsn_wait_ms;        /* bound for reads waiting on a position */
	int global_ack_wait_ms;     /* bound for global durability */
	int heartbeat_ms;
	int reconnect_min_ms, reconnect_max_ms;
	int64_t log_max_bytes;      /* trim bound of the replication log */
	int log_max_age_s;
	int link_delay_ms;          /* artificial one-way delay on the link (tests, benchmarks) */
	int forward_timeout_ms;
} config_replication;

/* The witness: the third voter, in a third location (docs/FAILOVER.md). */
typedef struct config_witness {
	char listen[128];           /* host:port (mutual TLS); "" = no witness */
	char data_dir[CONFIG_PATH_MAX];
	char tls_cert[CONFIG_PATH_MAX];
	char tls_key[CONFIG_PATH_MAX];
	int line;
} config_witness;

/* Leases and elections (docs/FAILOVER.md, "Parameters"). */
typedef struct config_failover {
	int lease_ms;               /* L: how long a grant lasts on the voter's clock */
	int renew_ms;               /* the primary renews this often */
	int election_timeout_ms;    /* no primary for this long: stand for election */
	int max_drift_ppm;          /* rho: bound on every clock's rate error */
	int lease_margin_ms;        /* m_p, primary side */
	int grant_margin_ms;        /* m_v, voter side */
	int vote_retry_ms;
	int switchover_timeout_ms;  /* planned switchover: bound on the catch-up */
	int isolation_ms;           /* primary heard from no other voter this long: 503 no_quorum; 0 = off */
	int isolation_line;         /* where isolation_ms was set, for messages (0: default) */
	int line;
} config_failover;

/* The object store ([objects], docs/OBJECTS.md "S3 API"). */
typedef struct config_objects {
	size_t max_put_bytes;       /* a single PUT's body; EntityTooLarge beyond */
	size_t max_key_bytes;       /* object key length; KeyTooLongError beyond (S3: 1024) */
	size_t max_metadata_bytes;  /* user metadata (x-amz-meta-*) names and values (S3: 2 KiB) */
	char domain[128];           /* virtual-host style: BUCKET.domain; "" = path-style only */
	uint64_t max_object_bytes;  /* a completed multipart object; EntityTooLarge beyond (S3: 5 TiB) */
	int max_uploads;            /* multipart uploads in progress per region; SlowDown beyond */
	int multipart_expiry_s;     /* an upload not completed this long is aborted by a sweep */
	int anti_entropy_s;         /* replication: compare with the other region this often; 0 = never */
	int tombstone_days;         /* replication: a removed version's tombstone is kept this long */
} config_objects;

/* The mobile files API ([files], docs/OBJECTS.md "Files API"). */
typedef struct config_files {
	size_t max_file_bytes;      /* one file's bytes (raw body or form-data part); 413 beyond */
} config_files;

/* The DR drill's budgets. */
typedef struct config_drill {
	int rpo_budget_s;
	int rto_budget_s;
} config_drill;

typedef struct config_limits {
	size_t max_header_bytes;  /* 431 beyond */
	size_t max_headers;       /* 431 beyond */
	size_t max_body_bytes;    /* JSON bodies; 413 beyond */
	int header_timeout_ms;    /* from the first byte of a request to the end of its head */
	int idle_timeout_ms;      /* keep-alive connection without a request */
	int max_connections;
	int shutdown_timeout_ms;  /* graceful shutdown bound */
	int write_batch_max;      /* most writes in one group commit */
	int write_queue_max;      /* most writes waiting; 503 beyond */
	/* bounded work per request (docs/SECURITY.md) */
	int query_timeout_ms;     /* deadline of one list query; 400 query_too_expensive beyond */
	int64_t query_max_scan_rows; /* rows one list query may examine; 400 beyond */
	size_t page_max_bytes;    /* a list page ends here too (next_cursor) */
	int query_threads;        /* reader threads running list queries */
	int query_queue_max;      /* lists waiting for a reader thread; 503 overloaded beyond */
	/* bounded memory per connection and in total */
	size_t max_unsent_bytes;  /* unsent answer bytes per connection */
	int write_timeout_ms;     /* a connection over max_unsent_bytes that reads nothing for this long is closed */
	size_t max_buffered_bytes; /* unsent output + request bodies of all connections; 503 overloaded beyond */
	int body_timeout_ms;      /* a request body must be complete within this */
	int max_connections_per_address; /* per client address (IPv6: per /64) */
	size_t max_url_bytes;     /* request target; 414 beyond */
} config_limits;

typedef struct config_auth {
	int access_token_ttl_s;
	int refresh_token_ttl_s;
	uint32_t argon2_t_cost;
	uint32_t argon2_m_cost_kib;
	uint32_t argon2_parallelism;
	int login_max_failures_account; /* per account in window */
	int login_max_failures_address; /* per client address in window */
	int login_window_s;
	int idempotency_ttl_s;         /* at least 24 h */
	int hash_threads;              /* threads hashing passwords */
	int signup_max_per_address;    /* signups per client address in signup_window_s */
	int signup_window_s;
	int login_max_in_flight_account; /* login attempts being hashed at once, per account */
	int login_max_in_flight_address; /* ... per client address */
	int auth_max_staleness_s;      /* a secondary that has not heard from the primary for this long
					* refuses token-authenticated requests (503 region_isolated); 0: off */
} config_auth;

/* What web and mobile clients need of the API ([api]). */
#define CONFIG_MAX_PROXIES 16
typedef struct config_api {
	char cors_origins[1024];       /* "" (no CORS), "*", or origins separated by commas/spaces */
	/* trusted_proxies: the edges' addresses (prefixes). A request from one
	 * of them is taken to come from its Forwarded: for= address, for the
	 * per-address limits; from anyone else, Forwarded is ignored. */
	unsigned char proxy_addr[CONFIG_MAX_PROXIES][16];
	int proxy_family[CONFIG_MAX_PROXIES], proxy_bits[CONFIG_MAX_PROXIES];
	int nproxies;
} config_api;

/* Whether the textual address peer is one of api's trusted proxies. */
bool config_trusted_proxy(const config_api *api, const char *peer);

typedef struct config {
	char path[CONFIG_PATH_MAX]; /* the file it was read from */
	char name[64];
	char data_dir[CONFIG_PATH_MAX];
	char secrets_file[CONFIG_PATH_MAX];
	char ca_file[CONFIG_PATH_MAX];
	char certs_dir[CONFIG_PATH_MAX]; /* where `tandem certs` writes */
	char log_level[16];
	char user[32];              /* drop to this user after binding (started as root); "" = stay */
	int user_given;             /* user set in the file, maybe empty (else: "tandem" when that
				     * user exists); see core/privdrop.h */
	config_limits limits;
	config_api api;
	config_auth auth;
	config_replication replication;
	config_witness witness;
	config_failover failover;
	config_drill drill;
	config_objects objects;
	config_files files;
	config_region regions[CONFIG_MAX_REGIONS];
	int region_count;
} config;

/* Defaults for everything (no regions). */
void config_defaults(config *c);
/*
 * Load and validate FILE. Returns 0, or ERR_CONFIG with every problem written
 * to errbuf as "FILE:LINE: message" lines (the first ones, up to errcap), or
 * ERR_IO when the file cannot be read. *c is fully written either way.
 */
int config_load(const char *path, config *c, char *errbuf, size_t errcap);
/* The region with this name, or NULL. */
const config_region *config_region_find(const config *c, const char *name);

#endif
