/*
 * edgeconf.h - the [edge NAME] sections of a deployment's config file
 * (docs/EDGE.md, "Config"). The core config (core/config.h) leaves them to
 * this module, which reads the same file on its own:
 *
 *   [edge eu-pop]
 *   listen = 127.0.0.7:8450           ; host:port
 *   metrics_listen = 127.0.0.7:8457   ; /metrics and /health, plain HTTP (optional)
 *   origins = eu=https://127.0.0.2:8443, us=https://127.0.0.3:8444
 *                                     ; in order of preference; NAME= optional
 *   host_origins = s3.app.tandem.test eu=https://127.0.0.2:8450, us=https://127.0.0.3:8451
 *                                     ; requests for that host (or below it) go there,
 *                                     ; with the client's Host (S3 signs it); repeatable
 *   tls = on                          ; on (tls_cert, tls_key) | off (tests, behind a balancer)
 *   tls_cert = certs/edge.pem
 *   tls_key = certs/edge.key         ; the default certificate
 *   cert = app.example.com certs/app.pem certs/app.key
 *   cert = *.example.com certs/wild.pem certs/wild.key
 *                                     ; more certificates, chosen by SNI
 *                                     ; (edge/sni.h); repeated, at most 16
 *   http2 = on                        ; h2 by ALPN (tls = on), h2c by prior
 *                                     ; knowledge (tls = off)
 *   server_names = app.tandem.test    ; the names its certificate holds (tandem up / certs)
 *   connect_timeout_ms = 1000         ; a connection to an origin (then: the next origin)
 *   response_timeout_ms = 10000       ; an origin's answer, from the request
 *   max_origin_connections = 1024     ; per origin: one request at a time on each
 *   resolve = api.tandem.test         ; order the origins by what tandem dns answers for
 *   resolvers = 127.0.0.5:8452, 127.0.0.6:8453 ; ... asked with ECS = ecs
 *   ecs = 127.0.0.7/32                ; default: the listen address (/32, /56 for IPv6)
 *   probe_interval_ms = 1000          ; active health probes of each origin (0: none)
 *   probe_path = /readyz
 *   max_body_bytes = 16777216         ; request and response bodies (buffered)
 *   stream_upload_bytes = 1048576     ; request bodies larger (or chunked): streamed to the origin
 *   max_upload_bytes = 5368709120     ; the bound of a streamed request body (413 beyond)
 *   retry_buffer_bytes = 1048576      ; a streamed body's first bytes kept for one replay
 *   max_upload_memory_bytes = 268435456 ; what all streamed uploads may hold at once (503 beyond)
 *   cache_bytes = 67108864            ; the memory cache's bound (0: no cache)
 *   cache_max_object_bytes = 1048576  ; the largest body stored
 *   disk_cache_dir = cache/eu-pop     ; the disk tier (what memory evicts); "" none
 *   disk_cache_bytes = 1073741824     ; its bound
 *
 * Origins are verified against the deployment's CA ([deployment] ca_file)
 * when https. Errors are "FILE:LINE: message" lines.
 */
#ifndef TANDEM_EDGE_EDGECONF_H
#define TANDEM_EDGE_EDGECONF_H

#include <stdbool.h>
#include <stddef.h>

#define EDGECONF_MAX_EDGES 8
#define EDGECONF_MAX_ORIGINS 16   /* every group together */
#define EDGECONF_MAX_GROUP 4      /* origins of one group */
#define EDGECONF_MAX_GROUPS 4     /* `origins` (group 0) and up to 3 `host_origins` */
#define EDGECONF_PATH_MAX 512
#define EDGECONF_MAX_CERTS 16 /* = EDGE_SNI_MAX */
#define EDGECONF_MAX_RESOLVERS 4

typedef struct edge_origin_conf {
	char name[32];     /* "eu", or the host when not named */
	char host[128];
	int port;
	bool https;
	int group;         /* 0: `origins`; k: the k-th `host_origins` */
} edge_origin_conf;

typedef struct edge_cert_conf {
	char name[254];    /* "app.example.com" or "*.example.com" */
	char cert[EDGECONF_PATH_MAX];
	char key[EDGECONF_PATH_MAX];
	int line;
} edge_cert_conf;

typedef struct edge_conf {
	char name[32];
	char listen[128];
	char metrics_listen[128];      /* /metrics and /health, plain HTTP ("": none) */
	edge_origin_conf origins[EDGECONF_MAX_ORIGINS];
	int norigins;
	char group_host[EDGECONF_MAX_GROUPS][128]; /* [0] "": the default group */
	int ngroups;
	bool tls;
	char tls_cert[EDGECONF_PATH_MAX];
	char tls_key[EDGECONF_PATH_MAX];
	edge_cert_conf certs[EDGECONF_MAX_CERTS];
	int ncerts;
	bool http2;
	char server_names[256];        /* space separated */
	int connect_timeout_ms;
	int response_timeout_ms;
	int max_origin_connections;    /* per origin, opened as requests need them */
	char resolve[256];             /* "": no resolution, the configured order */
	char resolvers[EDGECONF_MAX_RESOLVERS][128]; /* host:port */
	int nresolvers;
	unsigned char ecs_addr[16];
	int ecs_family;                /* 1 IPv4, 2 IPv6 (RFC 7871 family numbers) */
	int ecs_prefix;                /* -1: from listen */
	int probe_interval_ms;
	char probe_path[128];
	size_t max_body_bytes;
	size_t stream_upload_bytes;    /* bodies over it, or chunked, are streamed (not collected) */
	unsigned long long max_upload_bytes; /* a streamed body's bound */
	size_t retry_buffer_bytes;     /* kept of a streamed body so it can go to another origin */
	size_t max_upload_memory_bytes; /* all streamed uploads' buffers at once: beyond, 503 */
	size_t cache_bytes;            /* 0: no cache */
	size_t cache_max_object_bytes;
	char disk_cache_dir[EDGECONF_PATH_MAX]; /* "": no disk tier */
	size_t disk_cache_bytes;
	int line;
} edge_conf;

typedef struct edge_confs {
	edge_conf edges[EDGECONF_MAX_EDGES];
	int count;
} edge_confs;

/* Read the [edge ...] sections of path (relative paths against its
 * directory). 0, or ERR_CONFIG / ERR_IO with every problem in err, one
 * "FILE:LINE: message" per line. */
int edgeconf_load(const char *path, edge_confs *out, char *err, size_t errcap);
/* The edge named name, or NULL. */
const edge_conf *edgeconf_find(const edge_confs *c, const char *name);

#endif
