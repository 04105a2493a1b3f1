/*
 * s3.c - the S3 API of a region: its own thread, event loop and TLS
 * listener; routing (path-style and virtual-host style), SigV4, and the
 * bucket and object operations of docs/OBJECTS.md ("S3 API").
 *
 *   S3 thread (event loop)                 worker pool            writer thread
 *   on_request: parse, SigV4, route
 *     reads: meta lookups (short, indexed)
 *     PUT:   body (in memory, bounded) ---> blob put + commit
 *                                          (fsyncs), checksums
 *            <-- done ----------------------'
 *            meta row ------------------------------------------> committer
 *            <-- done: answer, old blob deleted (worker) ---------'
 *     GET:   meta lookup; open blob ------> get_open (+ the first piece)
 *            head (Content-Length); pieces of 128 KiB read as the socket
 *            drains: on the loop when cached (RWF_NOWAIT, never waiting
 *            for the disk), else in the pool ---> get_read
 *            each handed to the connection (no copy); a large
 *            GET refused (503) while the listener is over max_buffered_bytes
 *     multipart: each part is a PUT's blob (same worker path) and a part
 *            row; Complete writes the object row and its manifest (the
 *            ordered part blobs) in one write, copying no data; GET and
 *            copies read across the parts (s3_source)
 *
 * Invariants:
 * - A row (object, manifest part, upload part) names only a committed
 *   blob: the blob is committed (durable) before its row is written. A blob is deleted only after the row that
 *   named it is gone (delete) or replaced (overwrite), in that order; a
 *   crash between leaves an orphan blob that the start-up sweep removes.
 * - Unverified data is never visible: an aws-chunked body is decoded into a
 *   blob that is committed only after the decoder verified the last chunk,
 *   the trailer and its checksum; a body whose SHA-256, Content-MD5 or
 *   x-amz-checksum-* does not match has its blob deleted before any row
 *   could name it.
 * - Every request gets exactly one answer; a damaged blob found after the
 *   head of a GET was sent closes the connection (a short body, never a
 *   complete-looking one).
 * - Operations and sub-resources not implemented answer 501 NotImplemented:
 *   nothing unknown succeeds silently.
 * - An unsigned request reaches only route_anonymous: GET/HEAD of
 *   public-read objects, HEAD/List of public-read buckets (q->anonymous,
 *   checked by those operations); a CORS preflight (OPTIONS) only reads the
 *   bucket's rules. No write path is reachable without a signature.
 * - Versions: every write names the version it made or removed
 *   (x-amz-version-id) once the bucket was ever versioned; which version
 *   is current is meta.c's rule (meta_version_newer), never decided here.
 *
 * Per-request state (s3_req) lives from on_request to the answer; requests
 * still held at stop (a shutdown timeout) are freed by objects_stop.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "core/tls.h"
#include "core/util.h"
#include "core/workers.h"
#include "http/server.h"
#include "objects/blobstore.h"
#include "objects/chunked.h"
#include "objects/files.h"
#include "objects/hlc.h"
#include "objects/manifest.h"
#include "objects/meta.h"
#include "objects/objects.h"
#include "objects/orepl.h"
#include "objects/s3cors.h"
#include "objects/s3keys.h"
#include "objects/s3xml.h"
#include "objects/sigv4.h"
#include "store/committer.h"
#include "store/db.h"

#define S3_NS "http://s3.amazonaws.com/doc/2006-03-01/"
#define S3_XML_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
/* one read job of a GET: 2 chunks, read by one preadv and decrypted in
 * the piece (blobstore_get_read), handed to the connection without a copy;
 * 256 KiB measured no better (the piece is colder in the cache when TLS
 * reads it) */
#define S3_READ_PIECE (128 * 1024)
#define S3_COPY_PIECE (256 * 1024) /* one read of a CopyObject's source */
/* at most this many pieces read on the loop per turn (the default
 * max_unsent_bytes, 1 MiB, allows 8): the rest goes to the pool */
#define S3_LOOP_PIECES 8
/* GET bodies up to this size are sent even over max_buffered_bytes, as the
 * HTTP server's own small answers are (HTTP_SMALL_ANSWER in http/server.c) */
#define S3_SMALL_BODY 4096
#define S3_WORKERS 4               /* blob I/O threads (BULK puts use 3, GET reads take any) */
#define S3_WORKER_QUEUE 4096
#define S3_PARAMS_MAX 64
#define S3_ANSWER_MAX (8 * 1024 * 1024) /* an XML answer (a list page of 1000 long keys fits) */
#define S3_MAX_KEYS 1000
#define S3_DEFAULT_CONTENT_TYPE "binary/octet-stream"

typedef struct s3_param {
	char *name;  /* decoded, NUL-terminated (in s3_req.query) */
	char *value; /* decoded; "" for a bare name */
} s3_param;

typedef struct s3_req s3_req;

struct objects {
	const config *cfg;
	const config_region *self;
	struct event_base *base;
	pthread_t thread;
	bool thread_started;
	http_server *srv;
	SSL_CTX *ssl;
	blobstore *blobs;
	committer *writer;
	db_conn *reader;
	workers *pool;
	s3keys *keys;
	sigv4_verifier *verifier;
	hlc *clock;
	struct event *stop_ev;
	struct event *timeout_ev;
	struct event *expiry_ev; /* the multipart expiry sweep (periodic) */
	bool expiry_busy;        /* a sweep's write is queued */
	s3_req *live; /* requests not yet answered and freed */
	/* the files API's internal key pair (files.h): presigned URLs of
	 * FILES_BUCKET only, see files_key_allows() */
	char files_key_id[FILES_KEY_ID_LEN + 1];
	char files_secret[FILES_SECRET_LEN + 1];
	char db_path[CONFIG_PATH_MAX + 32];
	/* two-way replication (orepl.h): its link client context, and the
	 * queue the link's requests arrive by (objects_link_request) */
	orepl *repl;
	SSL_CTX *link_client;
	loop_queue *inbox;
	bool (*is_primary)(void *arg); /* the records' primary is this region? (NULL: unknown) */
	void *primary_arg;
};

/* What a GET or a copy reads: the parts (one for a single-blob object)
 * overlapping a range of the object, opened one after the other in a
 * worker. Loaded on the S3 loop from the metadata; a manifest's id is its
 * upload's, never reused, so a multipart object replaced meanwhile shows
 * as missing parts (404), never as a mix of old and new. */
typedef struct s3_part_ref {
	char blob[BLOBSTORE_ID_LEN + 1];
	uint64_t pos, size; /* where the part lies in the object */
} s3_part_ref;

typedef struct s3_source {
	s3_part_ref *parts;
	size_t count, cap;
	uint64_t offset, length; /* the range read, in object bytes */
	size_t next;             /* the next part to open */
	blobstore_reader *reader; /* the part being read */
} s3_source;

struct s3_req {
	objects *o;
	http_request *http;
	int64_t start_us;  /* for the access log line */
	char method[16];   /* copied: the message is gone once answered */
	int log_status;    /* the status answered (0: the connection was cut) */
	s3_req *prev, *next;
	char rid[33];
	const http_message *m;
	bool head;
	/* the resource */
	char bucket[META_BUCKET_MAX + 1];
	bool has_bucket;
	char *key; /* decoded, NUL-terminated; NULL when the path names no object */
	size_t key_len;
	char *query; /* decoded copies of the parameters */
	s3_param params[S3_PARAMS_MAX];
	size_t nparams;
	/* the caller */
	sigv4_result auth;
	char tenant[S3KEYS_NAME_MAX + 1];
	/* PUT / copy */
	meta_object *obj;
	meta_cond cond;
	char cond_etag[80];
	const char *body;
	size_t body_len;
	s3_source src; /* copy (object or part) and GET: what is read */
	bool is_copy;
	bool has_md5;
	unsigned char want_md5[16];
	char want_sum_name[32]; /* x-amz-checksum-ALG header given */
	unsigned char want_sum[32];
	size_t want_sum_len;
	int job_rc;
	sigv4_error job_err;
	blob_sums sums;
	char trailer_name[40];
	char trailer_value[96];
	meta_blobs old; /* blobs a committed write dropped: deleted after the commit */
	/* multipart */
	char upload_id[META_UPLOAD_ID_LEN + 1];
	meta_upload *upload;
	bool is_part;
	int part_number;
	meta_complete_part *cparts;
	size_t ncparts;
	int bad_part;
	/* GET */
	int status;            /* 200 or 206 */
	uint64_t range_offset; /* where the answer starts in the object */
	uint64_t remaining;    /* bytes of the answer not yet queued */
	char *piece;
	size_t piece_len;
	/* bucket create/delete, object delete(s) */
	meta_bucket brow, existing;
	s3xml_delete *del;
	struct s3_del_result *del_rc;
	/* versions */
	bool versioned;   /* the bucket's versioning is not OFF: answers carry x-amz-version-id */
	bool marker;      /* DELETE: a delete marker was written, or the version removed was one */
	char version_id[META_VERSION_ID_LEN + 1];  /* DELETE ?versionId */
	char src_version[META_VERSION_ID_LEN + 1]; /* copy: the source's version */
	bool src_version_named;                    /* copy: x-amz-copy-source named it */
	meta_versioning new_versioning;
	char *query_xml; /* PutBucketCors: the configuration to store (NULL: delete it) */
	bool anonymous;  /* no authentication: only reads of public-read resources (route_anonymous) */
	bool durable_global; /* PUT/DELETE answered once the other region has it (orepl_wait) */
	bool decide_global;  /* a conditional PUT decided by the records' primary (orepl_decide) */
	int decide_tries;
	meta_versioning bucket_versioning;
	meta_acl new_acl;
};

/* DeleteObjects: what happened to each entry. */
typedef struct s3_del_result {
	int rc;      /* 0, or ERR_INVAL: a version id that cannot be one */
	bool marker; /* a delete marker was written (or the version removed was one) */
	char marker_version[META_VERSION_ID_LEN + 1];
} s3_del_result;

/* ------------------------------------------------------------ helpers */

static void req_free(s3_req *q)
{
	objects *o = q->o;
	if (q->prev)
		q->prev->next = q->next;
	else if (o->live == q)
		o->live = q->next;
	if (q->next)
		q->next->prev = q->prev;
	sigv4_result_clear(&q->auth);
	blobstore_get_close(&q->src.reader);
	free(q->src.parts);
	meta_blobs_free(&q->old);
	free(q->upload);
	free(q->cparts);
	s3xml_delete_free(&q->del);
	free(q->del_rc);
	free(q->piece);
	free(q->obj);
	free(q->key);
	free(q->query);
	free(q->query_xml);
	free(q);
}

/* The access log's route of a request: the kind of resource and its
 * sub-resource, never the bucket's or the key's name (keys can carry
 * personal data; docs/SECURITY.md "Logs"). */
static void log_route(const s3_req *q, char *out, size_t cap)
{
	static const char *const subs[] = {"uploads", "uploadId", "versioning", "versions", "delete", "acl",
					   "cors", "location", "tagging", "list-type"};
	const char *sub = "";
	for (size_t i = 0; i < sizeof subs / sizeof subs[0] && !sub[0]; i++)
		for (size_t k = 0; k < q->nparams; k++)
			if (strcmp(q->params[k].name, subs[i]) == 0) {
				sub = subs[i];
				break;
			}
	snprintf(out, cap, "s3 %s%s%s", q->key ? "/{bucket}/{key}" : q->has_bucket ? "/{bucket}" : "/",
		 sub[0] ? "?" : "", sub);
}

/* The request is answered: one access log line, then forget it. */
static void req_done(s3_req *q)
{
	char route[64];
	log_route(q, route, sizeof route);
	log_request(q->method[0] ? q->method : "?", route, q->log_status, util_mono_us() - q->start_us, q->rid);
	req_free(q);
}

static const char *field(const s3_req *q, const char *name, size_t *len)
{
	size_t n;
	const char *v = http_message_field(q->m, name, &n);
	if (len)
		*len = v ? n : 0;
	return v;
}

/* A header's value as a string in out; NULL when absent or too long. */
static const char *field_str(const s3_req *q, const char *name, char *out, size_t cap)
{
	size_t n;
	const char *v = field(q, name, &n);
	if (!v || n >= cap)
		return NULL;
	memcpy(out, v, n);
	out[n] = '\0';
	return out;
}

static const char *param(const s3_req *q, const char *name)
{
	for (size_t i = 0; i < q->nparams; i++)
		if (strcmp(q->params[i].name, name) == 0)
			return q->params[i].value;
	return NULL;
}

static void resource(const s3_req *q, buf *b)
{
	buf_addc(b, '/');
	if (q->has_bucket)
		buf_adds(b, q->bucket);
	if (q->key) {
		buf_addc(b, '/');
		buf_add(b, q->key, q->key_len);
	}
}

/* An S3 error answer (XML; no body for HEAD), and the request is done. */
static void s3_error(s3_req *q, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void s3_error(s3_req *q, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	buf b, res;
	buf_init(&b, 16384);
	buf_init(&res, 4096);
	resource(q, &res);
	buf_adds(&b, S3_XML_HEAD "<Error>");
	s3xml_elem(&b, "Code", code);
	s3xml_elem(&b, "Message", msg);
	if (res.len)
		s3xml_elem_n(&b, "Resource", res.data, res.len);
	s3xml_elem(&b, "RequestId", q->rid);
	buf_adds(&b, "</Error>");
	buf_free(&res);
	http_response_header(q->http, "Content-Type", "application/xml");
	http_respond_take(q->http, status, &b);
	buf_free(&b);
	q->log_status = status;
	req_done(q);
}

static void s3_error_sig(s3_req *q, const sigv4_error *e)
{
	s3_error(q, e->status, e->code, "%s", e->message[0] ? e->message : e->code);
}

static void s3_internal(s3_req *q, int rc)
{
	if (rc == ERR_AGAIN || rc == ERR_LIMIT)
		s3_error(q, 503, "SlowDown", "Please reduce your request rate.");
	else
		s3_error(q, 500, "InternalError", "We encountered an internal error. Please try again.");
}

static void s3_not_implemented(s3_req *q, const char *what)
{
	s3_error(q, 501, "NotImplemented", "A header or parameter you provided implies functionality "
		 "that is not implemented: %s", what);
}

static void s3_xml(s3_req *q, int status, buf *b)
{
	http_response_header(q->http, "Content-Type", "application/xml");
	http_respond_take(q->http, status, b);
	buf_free(b);
	q->log_status = status;
	req_done(q);
}

static void s3_empty(s3_req *q, int status)
{
	http_respond(q->http, status, NULL, 0);
	q->log_status = status;
	req_done(q);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decode s[0..len) into out (at least len + 1 bytes), plus_space:
 * '+' is a space (query). Returns the decoded length, or -1 for a bad escape
 * or a NUL byte. */
static long pct_decode(const char *s, size_t len, char *out, bool plus_space)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= len)
				return -1;
			int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = (char)(h * 16 + l);
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		if (c == '\0')
			return -1;
		out[n++] = c;
	}
	out[n] = '\0';
	return (long)n;
}

/* Append s URL-encoded as S3's encoding-type=url does (all but unreserved
 * characters and '/'). */
static void url_encode(buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/')
			buf_addc(b, (char)c);
		else {
			buf_addc(b, '%');
			buf_addc(b, hex[c >> 4]);
			buf_addc(b, hex[c & 15]);
		}
	}
}

static void http_date(int64_t ms, char out[40])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* An HTTP date (RFC 9110 IMF-fixdate) to seconds; -1 when it does not parse. */
static int64_t parse_http_date(const char *s)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return -1;
	return (int64_t)timegm(&tm);
}

/* Does an If-Match / If-None-Match list hold etag ("*" matches any)? */
static bool etag_matches(const char *list, size_t len, const char *etag)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && (list[i] == ' ' || list[i] == ','))
			i++;
		size_t start = i;
		while (i < len && list[i] != ',')
			i++;
		size_t end = i;
		while (end > start && list[end - 1] == ' ')
			end--;
		if (end - start >= 2 && list[start] == 'W' && list[start + 1] == '/')
			start += 2;
		if (end - start >= 2 && list[start] == '"' && list[end - 1] == '"') {
			start++;
			end--;
		}
		if (end - start == 1 && list[start] == '*')
			return true;
		if (end - start == strlen(etag) && memcmp(list + start, etag, end - start) == 0)
			return true;
	}
	return false;
}

/* S3's bucket naming rules (general purpose buckets). */
static bool valid_bucket_name(const char *s)
{
	size_t n = strlen(s);
	if (n < 3 || n > 63)
		return false;
	if (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	int dots = 0, digits_only_parts = 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(islower(c) || isdigit(c) || c == '.' || c == '-'))
			return false;
		if (c == '.' && (s[i + 1] == '.' || s[i + 1] == '-' || (i && s[i - 1] == '-')))
			return false;
		if (c == '.')
			dots++;
		else if (!isdigit(c))
			digits_only_parts = 0;
	}
	if (dots == 3 && digits_only_parts) /* formatted as an IP address */
		return false;
	if (strncmp(s, "xn--", 4) == 0 || strncmp(s, "sthree-", 7) == 0 ||
	    (n > 8 && strcmp(s + n - 8, "-s3alias") == 0) || (n > 6 && strcmp(s + n - 6, "--ol-s3") == 0))
		return false;
	return true;
}

static long b64_decode(const char *s, size_t len, unsigned char *out, size_t cap)
{
	if (len == 0 || len % 4 || len / 4 * 3 > cap + 2)
		return -1;
	unsigned char tmp[96];
	if (len / 4 * 3 > sizeof tmp)
		return -1;
	int n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)len);
	if (n < 0)
		return -1;
	if (len >= 1 && s[len - 1] == '=')
		n--;
	if (len >= 2 && s[len - 2] == '=')
		n--;
	if ((size_t)n > cap)
		return -1;
	memcpy(out, tmp, (size_t)n);
	return n;
}

static void b64_encode(const unsigned char *in, size_t len, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* ------------------------------------------------- blob deletion (pool) */

typedef struct blob_delete_job {
	objects *o;
	char id[BLOBSTORE_ID_LEN + 1];
} blob_delete_job;

static void blob_delete_work(void *arg)
{
	blob_delete_job *j = arg;
	int rc = blobstore_delete(j->o->blobs, j->id);
	if (rc != 0 && rc != ERR_NOTFOUND) /* logged by the store; the sweep retries it */
		log_warn("s3: blob %s left for the orphan sweep (%s)", j->id, err_str(rc));
}

static void blob_delete_done(void *arg)
{
	free(arg);
}

/* Delete a blob no row names any more, in the pool. Cannot fail: on a full
 * queue it is deleted here (rare, and the pool is the bottleneck then). */
static void blob_delete_async(objects *o, const char *id)
{
	if (!id || !id[0])
		return;
	blob_delete_job *j = malloc(sizeof *j);
	if (!j || !o->pool) { /* no pool: objects_stop is running the last completions */
		free(j);
		blobstore_delete(o->blobs, id);
		return;
	}
	j->o = o;
	snprintf(j->id, sizeof j->id, "%s", id);
	if (workers_submit(o->pool, WORKERS_BULK, blob_delete_work, blob_delete_done, j) != 0) {
		blob_delete_work(j);
		free(j);
	}
}

typedef struct blobs_delete_job {
	objects *o;
	meta_blobs list;
} blobs_delete_job;

static void blobs_delete_work(void *arg)
{
	blobs_delete_job *j = arg;
	for (size_t i = 0; i < j->list.count; i++) {
		int rc = blobstore_delete(j->o->blobs, j->list.ids[i]);
		if (rc != 0 && rc != ERR_NOTFOUND)
			log_warn("s3: blob %s left for the orphan sweep (%s)", j->list.ids[i], err_str(rc));
	}
}

static void blobs_delete_done(void *arg)
{
	blobs_delete_job *j = arg;
	meta_blobs_free(&j->list);
	free(j);
}

/* Delete the blobs of l (a committed write dropped every row naming them:
 * a multipart object's parts, an aborted upload's) in one pool job. l is
 * taken (left empty). Cannot fail: without memory, pool or queue slot they
 * are deleted here. */
static void blobs_delete_async(objects *o, meta_blobs *l)
{
	if (!l->count)
		return;
	blobs_delete_job *j = calloc(1, sizeof *j);
	if (j) {
		j->o = o;
		j->list = *l;
		*l = (meta_blobs){0};
	}
	if (j && o->pool && workers_submit(o->pool, WORKERS_BULK, blobs_delete_work, blobs_delete_done, j) == 0)
		return;
	if (j) {
		blobs_delete_work(j);
		blobs_delete_done(j);
	} else {
		for (size_t i = 0; i < l->count; i++)
			blobstore_delete(o->blobs, l->ids[i]);
		meta_blobs_free(l);
	}
}

/* ------------------------------------------------------------ sources */

static int source_add(void *arg, const char *blob, uint64_t pos, uint64_t size)
{
	s3_source *s = arg;
	if (s->count == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4;
		if (cap > MANIFEST_MAX_PARTS)
			cap = MANIFEST_MAX_PARTS;
		if (s->count == cap) /* cannot happen: a manifest has at most that many */
			return ERR_LIMIT;
		void *p = realloc(s->parts, cap * sizeof *s->parts);
		if (!p)
			return ERR_NOMEM;
		s->parts = p;
		s->cap = cap;
	}
	s3_part_ref *r = &s->parts[s->count++];
	snprintf(r->blob, sizeof r->blob, "%s", blob ? blob : "");
	r->pos = pos;
	r->size = size;
	return 0;
}

/* Load the parts of ob overlapping [offset, offset + length) into s (on
 * the S3 loop; at most the manifest's parts, 10,000 refs of 48 bytes). 0,
 * ERR_NOTFOUND (the manifest does not cover the range: the object was
 * replaced meanwhile), ERR_DB, ERR_NOMEM. */
static int source_load(objects *o, const meta_object *ob, uint64_t offset, uint64_t length, s3_source *s)
{
	blobstore_get_close(&s->reader);
	free(s->parts);
	*s = (s3_source){.offset = offset, .length = length};
	if (length == 0)
		return 0;
	if (!ob->parts)
		return source_add(s, ob->blob, 0, ob->size);
	int rc = meta_manifest_parts(o->reader, ob->manifest, offset, length, source_add, s);
	if (rc != 0)
		return rc;
	uint64_t at = offset;
	for (size_t i = 0; i < s->count; i++) {
		if (s->parts[i].pos > at)
			return ERR_NOTFOUND;
		at = s->parts[i].pos + s->parts[i].size;
	}
	return s->count && at >= offset + length ? 0 : ERR_NOTFOUND;
}

/* Worker: up to cap bytes of the source's range into out; *n = 0 at its
 * end. Each part is opened when reached and must have the size the
 * metadata says. 0, or the blob store's errors (ERR_NOTFOUND: a part
 * deleted meanwhile; ERR_CORRUPT, logged), sticky for the open part. */
static int source_read(blobstore *bs, s3_source *s, char *out, size_t cap, size_t *n)
{
	*n = 0;
	for (;;) {
		if (!s->reader) {
			if (s->next == s->count)
				return 0;
			const s3_part_ref *p = &s->parts[s->next++];
			uint64_t in_off, in_len;
			if (!manifest_slice(p->pos, p->size, s->offset, s->length, &in_off, &in_len))
				continue;
			int rc = blobstore_get_open(bs, p->blob, &s->reader);
			if (rc != 0)
				return rc;
			if (blobstore_reader_size(s->reader) != p->size) {
				log_error("s3: blob %s: its size does not match its metadata", p->blob);
				blobstore_get_close(&s->reader);
				return ERR_CORRUPT;
			}
			rc = blobstore_get_range(s->reader, in_off, in_len);
			if (rc != 0) {
				blobstore_get_close(&s->reader);
				return rc;
			}
		}
		int rc = blobstore_get_read(s->reader, out, cap, n);
		if (rc != 0 || *n)
			return rc;
		blobstore_get_close(&s->reader);
	}
}

/* ------------------------------------------------------------ buckets */

/* The bucket of the request, owned by the caller: 0, or answered (404/403)
 * and -1. */
static int need_bucket(s3_req *q, meta_bucket *b)
{
	int rc = meta_bucket_get(q->o->reader, q->bucket, b);
	if (rc == ERR_NOTFOUND) {
		if (q->head)
			s3_empty(q, 404);
		else
			s3_error(q, 404, "NoSuchBucket", "The specified bucket does not exist");
		return -1;
	}
	if (rc != 0) {
		s3_internal(q, rc);
		return -1;
	}
	/* anonymous: only op_get_object, op_list and op_head_bucket get here
	 * (route_anonymous), and each checks the public-read ACLs itself */
	if (!q->anonymous && strcmp(b->owner, q->tenant) != 0) {
		if (q->head)
			s3_empty(q, 403);
		else
			s3_error(q, 403, "AccessDenied", "Access Denied");
		return -1;
	}
	return 0;
}

static void access_denied(s3_req *q)
{
	if (q->head)
		s3_empty(q, 403);
	else
		s3_error(q, 403, "AccessDenied", "Access Denied");
}

/* x-amz-acl: absent or "private" (META_ACL_PRIVATE), "public-read"; any
 * other canned ACL, and grants, NotImplemented. 0, or answered -1. */
static int canned_acl(s3_req *q, meta_acl *out)
{
	*out = META_ACL_PRIVATE;
	static const char *const grants[] = {"x-amz-grant-full-control", "x-amz-grant-read", "x-amz-grant-write",
					     "x-amz-grant-read-acp", "x-amz-grant-write-acp"};
	for (size_t i = 0; i < sizeof grants / sizeof grants[0]; i++)
		if (field(q, grants[i], NULL)) {
			s3_not_implemented(q, "grants (x-amz-grant-*): only the canned ACLs private and public-read");
			return -1;
		}
	if (!field(q, "x-amz-acl", NULL))
		return 0;
	char v[32];
	const char *acl = field_str(q, "x-amz-acl", v, sizeof v);
	if (acl && strcmp(acl, "private") == 0)
		return 0;
	if (acl && strcmp(acl, "public-read") == 0) {
		*out = META_ACL_PUBLIC_READ;
		return 0;
	}
	s3_not_implemented(q, "x-amz-acl other than private and public-read");
	return -1;
}

typedef struct list_buckets_ctx {
	buf *b;
} list_buckets_ctx;

static void list_buckets_one(void *arg, const meta_bucket *mb)
{
	list_buckets_ctx *c = arg;
	char when[32];
	util_iso8601(mb->created_ms, when);
	buf_adds(c->b, "<Bucket>");
	s3xml_elem(c->b, "Name", mb->name);
	s3xml_elem(c->b, "CreationDate", when);
	buf_adds(c->b, "</Bucket>");
}

static void owner_xml(buf *b, const char *tenant)
{
	buf_adds(b, "<Owner>");
	s3xml_elem(b, "ID", tenant);
	s3xml_elem(b, "DisplayName", tenant);
	buf_adds(b, "</Owner>");
}

static void op_list_buckets(s3_req *q)
{
	buf b;
	buf_init(&b, S3_ANSWER_MAX);
	buf_adds(&b, S3_XML_HEAD "<ListAllMyBucketsResult xmlns=\"" S3_NS "\">");
	owner_xml(&b, q->tenant);
	buf_adds(&b, "<Buckets>");
	list_buckets_ctx c = {.b = &b};
	int rc = meta_bucket_list(q->o->reader, q->tenant, list_buckets_one, &c);
	buf_adds(&b, "</Buckets></ListAllMyBucketsResult>");
	if (rc != 0) {
		buf_free(&b);
		s3_internal(q, rc);
		return;
	}
	s3_xml(q, 200, &b);
}

static int bucket_create_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	return meta_bucket_create(db, &q->brow, &q->existing);
}

static void bucket_create_done(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	if (rc == ERR_EXISTS && strcmp(q->existing.owner, q->tenant) == 0)
		s3_error(q, 409, "BucketAlreadyOwnedByYou",
			 "Your previous request to create the named bucket succeeded and you already own it.");
	else if (rc == ERR_EXISTS)
		s3_error(q, 409, "BucketAlreadyExists",
			 "The requested bucket name is not available. The bucket namespace is shared by "
			 "all users of the system. Please select a different name and try again.");
	else if (rc != 0)
		s3_internal(q, rc);
	else {
		char loc[80];
		snprintf(loc, sizeof loc, "/%s", q->bucket);
		http_response_header(q->http, "Location", loc);
		s3_empty(q, 200);
	}
}

/* The body of a request other than an object PUT, checked against the
 * signed payload (x-amz-content-sha256 or aws-chunked, decoded into out).
 * 0, or answered and -1. */
static int decode_sink(void *arg, const char *data, size_t len)
{
	return buf_add(arg, data, len) == 0 ? 0 : ERR_LIMIT;
}

static int small_body(s3_req *q, buf *out)
{
	size_t len;
	const char *body = http_request_body(q->http, &len);
	sigv4_error e;
	if (q->auth.payload == SIGV4_PAYLOAD_SHA256) {
		unsigned char h[32];
		util_sha256(body, len, h);
		if (sigv4_payload_check(&q->auth, h, &e) != 0) {
			s3_error_sig(q, &e);
			return -1;
		}
		return buf_add(out, body, len) == 0 ? 0 : (s3_internal(q, ERR_NOMEM), -1);
	}
	if (q->auth.payload == SIGV4_PAYLOAD_UNSIGNED)
		return buf_add(out, body, len) == 0 ? 0 : (s3_internal(q, ERR_NOMEM), -1);
	char trailer[128];
	awschunked_config cfg = {
		.mode = q->auth.payload,
		.chain = &q->auth.chain,
		.decoded_length = q->auth.decoded_length,
		.trailer = field_str(q, "x-amz-trailer", trailer, sizeof trailer),
		.sink = decode_sink,
		.sink_arg = out,
	};
	awschunked *d = awschunked_new(&cfg, &e);
	if (!d) {
		s3_error_sig(q, &e);
		return -1;
	}
	size_t used;
	int rc = awschunked_feed(d, body, len, &used);
	if (rc == AWSCHUNKED_MORE)
		rc = awschunked_finish(d);
	if (rc != AWSCHUNKED_DONE) {
		const sigv4_error *de = awschunked_error(d);
		if (de->code)
			s3_error_sig(q, de);
		else
			s3_internal(q, rc);
		awschunked_free(&d);
		return -1;
	}
	awschunked_free(&d);
	return 0;
}

/* An XML request body (DeleteObjects, PutBucketCors): small_body, then its
 * Content-MD5 when given (BadDigest). 0 with *body initialised (the caller
 * frees it), or answered -1 with nothing to free. */
static int xml_body(s3_req *q, buf *body)
{
	buf_init(body, S3XML_MAX_BODY);
	if (small_body(q, body) != 0) {
		buf_free(body);
		return -1;
	}
	size_t len;
	const char *md5 = field(q, "Content-MD5", &len);
	if (md5) {
		unsigned char want[16], got[16];
		unsigned int n = 0;
		if (b64_decode(md5, len, want, sizeof want) != 16 ||
		    EVP_Digest(body->data ? body->data : "", body->len, got, &n, EVP_md5(), NULL) != 1 ||
		    memcmp(want, got, 16) != 0) {
			buf_free(body);
			s3_error(q, 400, "BadDigest", "The Content-MD5 you specified did not match what we received.");
			return -1;
		}
	}
	return 0;
}

static void op_create_bucket(s3_req *q)
{
	objects *o = q->o;
	meta_acl acl;
	if (canned_acl(q, &acl) != 0)
		return;
	if (field(q, "x-amz-bucket-object-lock-enabled", NULL) || field(q, "x-amz-object-ownership", NULL)) {
		s3_not_implemented(q, "object lock and object ownership settings");
		return;
	}
	if (!valid_bucket_name(q->bucket)) {
		s3_error(q, 400, "InvalidBucketName", "The specified bucket is not valid.");
		return;
	}
	buf body;
	buf_init(&body, S3XML_MAX_BODY);
	if (small_body(q, &body) != 0) {
		buf_free(&body);
		return;
	}
	char loc[64], xerr[160];
	int rc = s3xml_parse_create_bucket(body.data ? body.data : "", body.len, loc, sizeof loc, xerr,
					   sizeof xerr);
	buf_free(&body);
	if (rc != 0) {
		s3_error(q, 400, "MalformedXML",
			 "The XML you provided was not well-formed or did not validate against our published "
			 "schema (%s)", xerr);
		return;
	}
	/* s3cmd upper-cases a constraint ("EU", S3's old name of eu-west-1) */
	if (loc[0] && strcasecmp(loc, o->self->name) != 0) {
		s3_error(q, 400, "IllegalLocationConstraintException",
			 "The %s location constraint is incompatible for the region specific endpoint this "
			 "request was sent to (%s).", loc, o->self->name);
		return;
	}
	memset(&q->brow, 0, sizeof q->brow);
	snprintf(q->brow.name, sizeof q->brow.name, "%s", q->bucket);
	snprintf(q->brow.owner, sizeof q->brow.owner, "%s", q->tenant);
	snprintf(q->brow.region, sizeof q->brow.region, "%s", loc[0] ? o->self->name : "");
	q->brow.created_ms = util_now_ms();
	q->brow.acl = acl;
	meta_stamp_make(q->brow.acl_stamp, hlc_now(o->clock), o->self->name);
	rc = committer_submit(o->writer, bucket_create_exec, bucket_create_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

static int bucket_delete_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	return meta_bucket_delete(db, q->bucket);
}

static void bucket_delete_done(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	if (rc == ERR_CONFLICT)
		s3_error(q, 409, "BucketNotEmpty", "The bucket you tried to delete is not empty");
	else if (rc == ERR_NOTFOUND)
		s3_error(q, 404, "NoSuchBucket", "The specified bucket does not exist");
	else if (rc != 0)
		s3_internal(q, rc);
	else
		s3_empty(q, 204);
}

static void op_delete_bucket(s3_req *q)
{
	meta_bucket b;
	if (need_bucket(q, &b) != 0)
		return;
	int rc = committer_submit(q->o->writer, bucket_delete_exec, bucket_delete_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

static void op_head_bucket(s3_req *q)
{
	meta_bucket b;
	if (need_bucket(q, &b) != 0)
		return;
	if (q->anonymous && b.acl != META_ACL_PUBLIC_READ) {
		access_denied(q);
		return;
	}
	http_response_header(q->http, "x-amz-bucket-region", q->o->self->name);
	s3_empty(q, 200);
}

static void op_bucket_location(s3_req *q)
{
	meta_bucket b;
	if (need_bucket(q, &b) != 0)
		return;
	buf x;
	buf_init(&x, 4096);
	buf_adds(&x, S3_XML_HEAD "<LocationConstraint xmlns=\"" S3_NS "\">");
	s3xml_escape(&x, b.region, strlen(b.region));
	buf_adds(&x, "</LocationConstraint>");
	s3_xml(q, 200, &x);
}

static void op_bucket_versioning(s3_req *q)
{
	meta_bucket b;
	if (need_bucket(q, &b) != 0)
		return;
	buf x;
	buf_init(&x, 4096);
	if (b.versioning == META_VERSIONING_OFF) /* never enabled: S3 answers an empty configuration */
		buf_adds(&x, S3_XML_HEAD "<VersioningConfiguration xmlns=\"" S3_NS "\"/>");
	else
		buf_printf(&x, S3_XML_HEAD "<VersioningConfiguration xmlns=\"" S3_NS "\"><Status>%s</Status>"
			   "</VersioningConfiguration>",
			   b.versioning == META_VERSIONING_ENABLED ? "Enabled" : "Suspended");
	s3_xml(q, 200, &x);
}

/* The stamp of a bucket configuration change made now (meta_bucket). */
static void bucket_stamp(s3_req *q, char stamp[META_STAMP_LEN + 1])
{
	meta_stamp_make(stamp, hlc_now(q->o->clock), q->o->self->name);
}

static int versioning_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	char stamp[META_STAMP_LEN + 1];
	bucket_stamp(q, stamp);
	return meta_bucket_set_versioning(db, q->bucket, q->new_versioning, stamp);
}

static void versioning_done(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	if (rc == ERR_NOTFOUND)
		s3_error(q, 404, "NoSuchBucket", "The specified bucket does not exist");
	else if (rc != 0)
		s3_internal(q, rc);
	else
		s3_empty(q, 200);
}

static void malformed_xml(s3_req *q, const char *why)
{
	s3_error(q, 400, "MalformedXML", "The XML you provided was not well-formed or did not validate against "
		 "our published schema (%s)", why);
}

/* PutBucketVersioning: Enabled or Suspended; MFA Delete is not offered. */
static void op_put_versioning(s3_req *q)
{
	meta_bucket b;
	if (need_bucket(q, &b) != 0)
		return;
	if (field(q, "x-amz-mfa", NULL)) {
		s3_not_implemented(q, "MFA Delete (x-amz-mfa)");
		return;
	}
	buf body;
	buf_init(&body, S3XML_MAX_BODY);
	if (small_body(q, &body) != 0) {
		buf_free(&body);
		return;
	}
	s3xml_versioning_status st;
	s3xml_mfa_delete mfa;
	char xerr[160];
	int rc = s3xml_parse_versioning(body.data ? body.data : "", body.len, &st, &mfa, xerr, sizeof xerr);
	buf_free(&body);
	if (rc != 0) {
		malformed_xml(q, xerr);
		return;
	}
	if (mfa == S3XML_MFA_ENABLED) {
		s3_not_implemented(q, "MFA Delete");
		return;
	}
	if (st == S3XML_VERSIONING_NONE) {
		malformed_xml(q, "no Status");
		return;
	}
	q->new_versioning = st == S3XML_VERSIONING_ENABLED ? META_VERSIONING_ENABLED : META_VERSIONING_SUSPENDED;
	rc = committer_submit(q->o->writer, versioning_exec, versioning_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

static void acl_xml(s3_req *q, meta_acl acl)
{
	buf x;
	buf_init(&x, 4096);
	buf_adds(&x, S3_XML_HEAD "<AccessControlPolicy xmlns=\"" S3_NS "\">");
	owner_xml(&x, q->tenant);
	buf_adds(&x, "<AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
		      "xsi:type=\"CanonicalUser\">");
	s3xml_elem(&x, "ID", q->tenant);
	s3xml_elem(&x, "DisplayName", q->tenant);
	buf_adds(&x, "</Grantee><Permission>FULL_CONTROL</Permission></Grant>");
	if (acl == META_ACL_PUBLIC_READ)
		buf_adds(&x, "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
			      "xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI>"
			      "</Grantee><Permission>READ</Permission></Grant>");
	buf_adds(&x, "</AccessControlList></AccessControlPolicy>");
	s3_xml(q, 200, &x);
}

/* ------------------------------------------------------------ listing */

typedef struct list_opts {
	const char *prefix;
	size_t prefix_len;
	const char *delim;
	size_t delim_len;
	const char *start; /* exclusive: keys and common prefixes <= start are skipped */
	size_t start_len;
	long max_keys;
	bool url;
	bool versions;
	bool owner;
	bool v2;
} list_opts;

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static void xml_key(buf *b, const char *tag, const char *s, size_t len, bool url)
{
	buf_printf(b, "<%s>", tag);
	if (url) {
		buf tmp;
		buf_init(&tmp, 4 * len + 16);
		url_encode(&tmp, s, len);
		s3xml_escape(b, tmp.data ? tmp.data : "", tmp.len);
		buf_free(&tmp);
	} else
		s3xml_escape(b, s, len);
	buf_printf(b, "</%s>", tag);
}

/* The prefix cp (cp_len bytes, in cur of META_KEY_MAX + 2) with its last
 * byte incremented, carrying over 0xff bytes: the first key after every
 * key under cp. false when nothing sorts after. */
static bool seek_past(char *cur, size_t *cur_len, const char *cp, size_t cp_len)
{
	memcpy(cur, cp, cp_len);
	*cur_len = cp_len;
	while (*cur_len && (unsigned char)cur[*cur_len - 1] == 0xff)
		(*cur_len)--;
	if (!*cur_len)
		return false;
	cur[*cur_len - 1] = (char)((unsigned char)cur[*cur_len - 1] + 1);
	return true;
}

/*
 * Walk the bucket's keys in order from after opts->start with the prefix,
 * folding keys that hold the delimiter after the prefix into common
 * prefixes, up to max_keys entries. Writes <Contents>/<Version> and
 * <CommonPrefixes> into b; last gets the last entry written (key or
 * prefix) and *truncated whether more follow. One indexed seek per entry
 * (a common prefix skips its keys with one seek). 0 or ERR_DB.
 */
static int list_walk(s3_req *q, const list_opts *op, buf *b, buf *last, bool *truncated, long *count)
{
	meta_object *ob = malloc(sizeof *ob);
	if (!ob)
		return ERR_NOMEM;
	char *cur = malloc(META_KEY_MAX + 2);
	if (!cur) {
		free(ob);
		return ERR_NOMEM;
	}
	size_t cur_len = 0;
	bool inclusive = true;
	if (op->start && bytes_cmp(op->start, op->start_len, op->prefix, op->prefix_len) >= 0) {
		memcpy(cur, op->start, op->start_len);
		cur_len = op->start_len;
		inclusive = false;
	} else {
		memcpy(cur, op->prefix, op->prefix_len);
		cur_len = op->prefix_len;
	}
	*truncated = false;
	*count = 0;
	int rc = 0;
	for (;;) {
		rc = meta_object_next(q->o->reader, q->bucket, cur, cur_len, inclusive, ob);
		if (rc == ERR_NOTFOUND) {
			rc = 0;
			break;
		}
		if (rc != 0)
			break;
		if (ob->key_len < op->prefix_len || memcmp(ob->key, op->prefix, op->prefix_len) != 0)
			break;
		const char *cp = NULL;
		size_t cp_len = 0;
		if (op->delim_len) {
			const char *rest = ob->key + op->prefix_len;
			const char *d = memmem(rest, ob->key_len - op->prefix_len, op->delim, op->delim_len);
			if (d) {
				cp = ob->key;
				cp_len = (size_t)(d - ob->key) + op->delim_len;
			}
		}
		if (cp && op->start && bytes_cmp(cp, cp_len, op->start, op->start_len) <= 0) {
			/* this prefix was returned on an earlier page */
		} else {
			if (*count >= op->max_keys) {
				*truncated = true;
				break;
			}
			(*count)++;
			buf_reset(last);
			if (cp) {
				buf_add(last, cp, cp_len);
				buf_adds(b, "<CommonPrefixes>");
				xml_key(b, "Prefix", cp, cp_len, op->url);
				buf_adds(b, "</CommonPrefixes>");
			} else {
				buf_add(last, ob->key, ob->key_len);
				char when[32];
				util_iso8601(ob->mtime_ms, when);
				buf_adds(b, "<Contents>");
				xml_key(b, "Key", ob->key, ob->key_len, op->url);
				s3xml_elem(b, "LastModified", when);
				buf_printf(b, "<ETag>&quot;%s&quot;</ETag><Size>%llu</Size>", ob->etag,
					   (unsigned long long)ob->size);
				if (op->owner)
					owner_xml(b, ob->owner);
				buf_adds(b, "<StorageClass>STANDARD</StorageClass>");
				buf_adds(b, "</Contents>");
			}
		}
		if (cp) {
			/* skip every key under the prefix: seek to the first key
			 * after all of them (the prefix with its last byte
			 * incremented, carrying over 0xff bytes) */
			if (!seek_past(cur, &cur_len, cp, cp_len))
				break; /* nothing sorts after */
			inclusive = true;
		} else {
			memcpy(cur, ob->key, ob->key_len);
			cur_len = ob->key_len;
			inclusive = false;
		}
	}
	free(cur);
	free(ob);
	return rc;
}

/*
 * ListObjectVersions' walk: as list_walk, over every version and delete
 * marker (meta_version_next: keys ascending, each key's versions newest
 * first), from after (opts->start, vid_marker) when given. last gets the
 * last entry's key (or common prefix) and last_vid its version id ("" for
 * a prefix). 0, ERR_DB, ERR_NOMEM.
 */
static int list_versions_walk(s3_req *q, const list_opts *op, const char *vid_marker, buf *b, buf *last,
			      char last_vid[META_VERSION_ID_LEN + 1], bool *truncated, long *count)
{
	meta_object *ob = malloc(sizeof *ob);
	char *cur = malloc(META_KEY_MAX + 2);
	char vid[META_VERSION_ID_LEN + 1];
	if (!ob || !cur) {
		free(ob);
		free(cur);
		return ERR_NOMEM;
	}
	size_t cur_len;
	bool inclusive = true;
	const char *at_vid = NULL;
	if (op->start && bytes_cmp(op->start, op->start_len, op->prefix, op->prefix_len) >= 0) {
		memcpy(cur, op->start, op->start_len);
		cur_len = op->start_len;
		inclusive = false;
		if (vid_marker) {
			snprintf(vid, sizeof vid, "%s", vid_marker);
			at_vid = vid;
		}
	} else {
		memcpy(cur, op->prefix, op->prefix_len);
		cur_len = op->prefix_len;
	}
	*truncated = false;
	*count = 0;
	last_vid[0] = '\0';
	int rc = 0;
	for (;;) {
		rc = meta_version_next(q->o->reader, q->bucket, cur, cur_len, inclusive, at_vid, ob);
		if (rc == ERR_NOTFOUND) {
			rc = 0;
			break;
		}
		if (rc != 0)
			break;
		if (ob->key_len < op->prefix_len || memcmp(ob->key, op->prefix, op->prefix_len) != 0)
			break;
		const char *cp = NULL;
		size_t cp_len = 0;
		if (op->delim_len) {
			const char *d = memmem(ob->key + op->prefix_len, ob->key_len - op->prefix_len, op->delim,
					       op->delim_len);
			if (d) {
				cp = ob->key;
				cp_len = (size_t)(d - ob->key) + op->delim_len;
			}
		}
		if (!(cp && op->start && bytes_cmp(cp, cp_len, op->start, op->start_len) <= 0)) {
			if (*count >= op->max_keys) {
				*truncated = true;
				break;
			}
			(*count)++;
			buf_reset(last);
			if (cp) {
				buf_add(last, cp, cp_len);
				last_vid[0] = '\0';
				buf_adds(b, "<CommonPrefixes>");
				xml_key(b, "Prefix", cp, cp_len, op->url);
				buf_adds(b, "</CommonPrefixes>");
			} else {
				buf_add(last, ob->key, ob->key_len);
				snprintf(last_vid, META_VERSION_ID_LEN + 1, "%s", ob->version_id);
				char when[32];
				util_iso8601(ob->mtime_ms, when);
				buf_adds(b, ob->delete_marker ? "<DeleteMarker>" : "<Version>");
				xml_key(b, "Key", ob->key, ob->key_len, op->url);
				s3xml_elem(b, "VersionId", ob->version_id);
				buf_printf(b, "<IsLatest>%s</IsLatest>", ob->latest ? "true" : "false");
				s3xml_elem(b, "LastModified", when);
				if (!ob->delete_marker)
					buf_printf(b, "<ETag>&quot;%s&quot;</ETag><Size>%llu</Size>", ob->etag,
						   (unsigned long long)ob->size);
				owner_xml(b, ob->owner);
				if (!ob->delete_marker)
					buf_adds(b, "<StorageClass>STANDARD</StorageClass>");
				buf_adds(b, ob->delete_marker ? "</DeleteMarker>" : "</Version>");
			}
		}
		if (cp) {
			if (!seek_past(cur, &cur_len, cp, cp_len))
				break;
			inclusive = true;
			at_vid = NULL;
		} else {
			memcpy(cur, ob->key, ob->key_len);
			cur_len = ob->key_len;
			inclusive = false;
			snprintf(vid, sizeof vid, "%s", ob->version_id);
			at_vid = vid;
		}
	}
	free(cur);
	free(ob);
	return rc;
}

static bool parse_max_keys(s3_req *q, long *out)
{
	const char *mk = param(q, "max-keys");
	*out = S3_MAX_KEYS;
	if (!mk)
		return true;
	long long v;
	if (util_parse_int(mk, 0, INT32_MAX, &v) != 0) {
		s3_error(q, 400, "InvalidArgument", "Provided max-keys not an integer or within integer range");
		return false;
	}
	*out = v > S3_MAX_KEYS ? S3_MAX_KEYS : (long)v;
	return true;
}

static void op_list(s3_req *q, int kind /* 1: v1, 2: v2, 3: versions */)
{
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0)
		return;
	if (q->anonymous && (kind == 3 || mb.acl != META_ACL_PUBLIC_READ)) {
		access_denied(q);
		return;
	}
	list_opts op = {.versions = kind == 3, .v2 = kind == 2, .owner = kind != 2};
	const char *enc = param(q, "encoding-type");
	if (enc && strcmp(enc, "url") != 0) {
		s3_error(q, 400, "InvalidArgument", "Invalid Encoding Method specified in Request");
		return;
	}
	op.url = enc != NULL;
	op.prefix = param(q, "prefix");
	op.prefix = op.prefix ? op.prefix : "";
	op.prefix_len = strlen(op.prefix);
	op.delim = param(q, "delimiter");
	op.delim = op.delim ? op.delim : "";
	op.delim_len = strlen(op.delim);
	if (!parse_max_keys(q, &op.max_keys))
		return;
	const char *fo = param(q, "fetch-owner");
	if (kind == 2 && fo && strcmp(fo, "true") == 0)
		op.owner = true;
	unsigned char token[META_KEY_MAX + 8];
	const char *ct = param(q, "continuation-token");
	const char *sa = param(q, "start-after");
	const char *marker = kind == 3 ? param(q, "key-marker") : param(q, "marker");
	const char *vid_marker = kind == 3 ? param(q, "version-id-marker") : NULL;
	if (vid_marker && !vid_marker[0])
		vid_marker = NULL;
	if (vid_marker && !marker) {
		s3_error(q, 400, "InvalidArgument", "A version-id marker cannot be specified without a key marker.");
		return;
	}
	if (vid_marker && !meta_version_id_valid(vid_marker)) {
		s3_error(q, 400, "InvalidArgument", "Invalid version id specified");
		return;
	}
	if (kind == 2 && ct) {
		long n = util_b64url_decode(ct, strlen(ct), token, sizeof token);
		if (n < 1 || token[0] != 'k') {
			s3_error(q, 400, "InvalidArgument", "The continuation token provided is incorrect");
			return;
		}
		op.start = (const char *)token + 1;
		op.start_len = (size_t)n - 1;
	} else if (kind == 2 && sa) {
		op.start = sa;
		op.start_len = strlen(sa);
	} else if (kind != 2 && marker) {
		op.start = marker;
		op.start_len = strlen(marker);
	}
	buf b, entries, last;
	buf_init(&b, S3_ANSWER_MAX);
	buf_init(&entries, S3_ANSWER_MAX);
	buf_init(&last, META_KEY_MAX + 8);
	bool truncated;
	long count;
	char last_vid[META_VERSION_ID_LEN + 1] = "";
	int rc = kind == 3 ? list_versions_walk(q, &op, vid_marker, &entries, &last, last_vid, &truncated, &count)
			   : list_walk(q, &op, &entries, &last, &truncated, &count);
	if (rc != 0) {
		buf_free(&b);
		buf_free(&entries);
		buf_free(&last);
		s3_internal(q, rc);
		return;
	}
	const char *root = kind == 3 ? "ListVersionsResult" : "ListBucketResult";
	buf_printf(&b, S3_XML_HEAD "<%s xmlns=\"" S3_NS "\">", root);
	s3xml_elem(&b, "Name", q->bucket);
	xml_key(&b, "Prefix", op.prefix, op.prefix_len, op.url);
	if (kind == 1)
		xml_key(&b, "Marker", marker ? marker : "", marker ? strlen(marker) : 0, op.url);
	if (kind == 3) {
		xml_key(&b, "KeyMarker", marker ? marker : "", marker ? strlen(marker) : 0, op.url);
		s3xml_elem(&b, "VersionIdMarker", vid_marker ? vid_marker : "");
	}
	if (kind == 2) {
		if (ct)
			s3xml_elem(&b, "ContinuationToken", ct);
		if (sa)
			xml_key(&b, "StartAfter", sa, strlen(sa), op.url);
		buf_printf(&b, "<KeyCount>%ld</KeyCount>", count);
	}
	buf_printf(&b, "<MaxKeys>%ld</MaxKeys>", op.max_keys);
	if (op.delim_len)
		xml_key(&b, "Delimiter", op.delim, op.delim_len, op.url);
	if (op.url)
		buf_adds(&b, "<EncodingType>url</EncodingType>");
	buf_printf(&b, "<IsTruncated>%s</IsTruncated>", truncated ? "true" : "false");
	if (truncated && kind == 2) {
		buf tok;
		buf_init(&tok, 2 * META_KEY_MAX + 16);
		buf_addc(&tok, 'k');
		buf_add(&tok, last.data, last.len);
		char *enc64 = malloc(tok.len * 4 / 3 + 8);
		if (enc64) {
			util_b64url_encode(tok.data, tok.len, enc64);
			s3xml_elem(&b, "NextContinuationToken", enc64);
			free(enc64);
		}
		buf_free(&tok);
	}
	if (truncated && kind == 1 && op.delim_len) /* S3 gives NextMarker only with a delimiter */
		xml_key(&b, "NextMarker", last.data ? last.data : "", last.len, op.url);
	if (truncated && kind == 3) {
		xml_key(&b, "NextKeyMarker", last.data ? last.data : "", last.len, op.url);
		if (last_vid[0]) /* a common prefix ends the page: the next starts after its keys */
			s3xml_elem(&b, "NextVersionIdMarker", last_vid);
	}
	if (entries.len)
		buf_add(&b, entries.data, entries.len);
	buf_printf(&b, "</%s>", root);
	buf_free(&entries);
	buf_free(&last);
	if (b.len >= b.max - 1) { /* cannot happen within 1000 keys of 1 KiB */
		buf_free(&b);
		s3_internal(q, ERR_LIMIT);
		return;
	}
	s3_xml(q, 200, &b);
}

/* ------------------------------------------------------------ objects */

/* Stored response headers of a PUT: the representation headers S3 keeps
 * and the user metadata, as "Name: value\r\n" lines. 0, or answered and
 * -1 (MetadataTooLarge, InvalidArgument for a CR/LF or control byte). */
static int collect_headers(s3_req *q, meta_object *ob)
{
	static const char *const kept[] = {"Cache-Control", "Content-Disposition", "Content-Language",
					   "Expires"};
	buf b;
	buf_init(&b, sizeof ob->headers - 1);
	size_t meta_bytes = 0;
	int rc = 0;
	for (size_t i = 0; i < q->m->field_count && rc == 0; i++) {
		const http_field *f = &q->m->fields[i];
		const char *name = NULL;
		bool user = f->name_len > 11 && strncasecmp(f->name, "x-amz-meta-", 11) == 0;
		for (size_t k = 0; k < sizeof kept / sizeof kept[0]; k++)
			if (strlen(kept[k]) == f->name_len && strncasecmp(f->name, kept[k], f->name_len) == 0)
				name = kept[k];
		bool encoding = f->name_len == 16 && strncasecmp(f->name, "Content-Encoding", 16) == 0;
		if (!name && !user && !encoding)
			continue;
		const char *v = f->value;
		size_t vlen = f->value_len;
		if (encoding) {
			/* aws-chunked is the transfer of this request, not the object's */
			if (vlen >= 11 && strncasecmp(v, "aws-chunked", 11) == 0) {
				v += 11;
				vlen -= 11;
				while (vlen && (*v == ',' || *v == ' ')) {
					v++;
					vlen--;
				}
			}
			if (!vlen)
				continue;
			name = "Content-Encoding";
		}
		for (size_t k = 0; k < vlen; k++)
			if ((unsigned char)v[k] < 0x20 && v[k] != '\t')
				rc = -2;
		if (user) {
			meta_bytes += f->name_len - 11 + vlen;
			if (meta_bytes > q->o->cfg->objects.max_metadata_bytes)
				rc = -1;
			/* lower-cased, as S3 returns them */
			for (size_t k = 0; k < f->name_len && rc == 0; k++)
				if (buf_addc(&b, (char)tolower((unsigned char)f->name[k])) != 0)
					rc = -1;
		} else if (rc == 0 && buf_adds(&b, name) != 0)
			rc = -1;
		if (rc == 0 && (buf_add(&b, ": ", 2) != 0 || buf_add(&b, v, vlen) != 0 || buf_add(&b, "\r\n", 2) != 0))
			rc = -1;
	}
	if (rc == -1)
		s3_error(q, 400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata "
			 "size (%zu bytes).", q->o->cfg->objects.max_metadata_bytes);
	else if (rc != 0)
		s3_error(q, 400, "InvalidArgument", "A header value holds a control character.");
	else {
		memcpy(ob->headers, b.data ? b.data : "", b.len);
		ob->headers[b.len] = '\0';
	}
	buf_free(&b);
	return rc == 0 ? 0 : -1;
}

/* Headers that ask for what this slice does not do (x-amz-acl: see
 * canned_acl). 0, or answered -1. */
static int refuse_unsupported_put(s3_req *q)
{
	static const char *const refused[] = {
		"x-amz-tagging", "x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date",
		"x-amz-object-lock-legal-hold", "x-amz-website-redirect-location",
		"x-amz-server-side-encryption-customer-algorithm", "x-amz-server-side-encryption-aws-kms-key-id",
		"x-amz-grant-full-control", "x-amz-grant-read", "x-amz-grant-read-acp", "x-amz-grant-write-acp",
		"x-amz-copy-source-range",
		"x-amz-copy-source-if-match", "x-amz-copy-source-if-none-match",
		"x-amz-copy-source-if-modified-since", "x-amz-copy-source-if-unmodified-since",
		"x-amz-tagging-directive",
	};
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
		if (field(q, refused[i], NULL)) {
			s3_not_implemented(q, refused[i]);
			return -1;
		}
	char v[64];
	const char *sc = field_str(q, "x-amz-storage-class", v, sizeof v);
	if (field(q, "x-amz-storage-class", NULL) && (!sc || strcmp(sc, "STANDARD") != 0)) {
		s3_not_implemented(q, "x-amz-storage-class other than STANDARD");
		return -1;
	}
	/* data is always encrypted at rest (AES-256-GCM): AES256 asks for no more */
	const char *sse = field_str(q, "x-amz-server-side-encryption", v, sizeof v);
	if (field(q, "x-amz-server-side-encryption", NULL) && (!sse || strcmp(sse, "AES256") != 0)) {
		s3_not_implemented(q, "x-amz-server-side-encryption other than AES256");
		return -1;
	}
	return 0;
}

/* The integrity headers of a PUT: Content-MD5, x-amz-checksum-*. 0 or
 * answered -1. */
static int integrity_headers(s3_req *q)
{
	size_t len;
	const char *md5 = field(q, "Content-MD5", &len);
	if (md5) {
		if (b64_decode(md5, len, q->want_md5, sizeof q->want_md5) != 16) {
			s3_error(q, 400, "InvalidDigest", "The Content-MD5 you specified is not valid.");
			return -1;
		}
		q->has_md5 = true;
	}
	static const struct {
		const char *name;
		size_t bytes;
	} algs[] = {{"x-amz-checksum-crc32", 4}, {"x-amz-checksum-crc32c", 4}, {"x-amz-checksum-sha1", 20},
		    {"x-amz-checksum-sha256", 32}, {"x-amz-checksum-crc64nvme", 8}};
	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
		const char *v = field(q, algs[i].name, &len);
		if (!v)
			continue;
		if (q->want_sum_name[0]) {
			s3_error(q, 400, "InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple "
				 "checksum Types are not allowed.");
			return -1;
		}
		if (b64_decode(v, len, q->want_sum, sizeof q->want_sum) != (long)algs[i].bytes) {
			s3_error(q, 400, "InvalidRequest", "Value for %s header is invalid.", algs[i].name);
			return -1;
		}
		q->want_sum_len = algs[i].bytes;
		snprintf(q->want_sum_name, sizeof q->want_sum_name, "%s", algs[i].name);
	}
	return 0;
}

typedef struct put_sink_ctx {
	blobstore_writer *w;
	EVP_MD_CTX *sha1;
	bool crc64;        /* x-amz-checksum-crc64nvme given: computed here */
	uint64_t crc64v;
} put_sink_ctx;

static int put_sink(void *arg, const char *data, size_t len)
{
	put_sink_ctx *c = arg;
	if (c->sha1 && EVP_DigestUpdate(c->sha1, data, len) != 1)
		return ERR_TLS;
	if (c->crc64)
		c->crc64v = awschunked_crc64nvme(c->crc64v, data, len);
	return blobstore_put_write(c->w, data, len);
}

static void job_fail(s3_req *q, int status, const char *code, const char *msg)
{
	q->job_err.status = status;
	q->job_err.code = code;
	snprintf(q->job_err.message, sizeof q->job_err.message, "%s", msg);
	q->job_rc = ERR_AUTH;
}

/* Worker: the blob of a PUT or a copy, committed and verified. On failure
 * q->job_rc (ERR_AUTH: job_err says what to answer) and no blob is left. */
static void put_work(void *arg)
{
	s3_req *q = arg;
	objects *o = q->o;
	put_sink_ctx sink = {0};
	awschunked *dec = NULL;
	char *piece = NULL;
	bool want_sha1 = strcmp(q->want_sum_name, "x-amz-checksum-sha1") == 0;
	sink.crc64 = strcmp(q->want_sum_name, "x-amz-checksum-crc64nvme") == 0;
	/* Only the checksums something uses (each is a pass over the bytes):
	 * MD5 always (the ETag, the part's ETag); SHA-256 for an object (the
	 * row keeps it: replication's end-to-end check, anti-entropy, the files
	 * API) and for a part only when the signature or a header covers it;
	 * CRC32 / CRC32C only when the request's header asks (a trailer's sum
	 * is the aws-chunked decoder's own). */
	unsigned sums = BLOBHASH_MD5;
	if (!q->is_part || (!q->is_copy && q->auth.payload == SIGV4_PAYLOAD_SHA256) ||
	    strcmp(q->want_sum_name, "x-amz-checksum-sha256") == 0)
		sums |= BLOBHASH_SHA256;
	if (strcmp(q->want_sum_name, "x-amz-checksum-crc32") == 0)
		sums |= BLOBHASH_CRC32;
	if (strcmp(q->want_sum_name, "x-amz-checksum-crc32c") == 0)
		sums |= BLOBHASH_CRC32C;
	q->job_rc = blobstore_put_begin_sums(o->blobs, sums, &sink.w);
	if (q->job_rc != 0)
		return;
	snprintf(q->obj->blob, sizeof q->obj->blob, "%s", blobstore_writer_id(sink.w));
	if (want_sha1) {
		sink.sha1 = EVP_MD_CTX_new();
		if (!sink.sha1 || EVP_DigestInit_ex(sink.sha1, EVP_sha1(), NULL) != 1) {
			q->job_rc = ERR_TLS;
			goto fail;
		}
	}
	if (q->is_copy) {
		piece = malloc(S3_COPY_PIECE);
		q->job_rc = piece ? 0 : ERR_NOMEM;
		while (q->job_rc == 0) {
			size_t n;
			q->job_rc = source_read(o->blobs, &q->src, piece, S3_COPY_PIECE, &n);
			if (q->job_rc != 0 || n == 0)
				break;
			q->job_rc = put_sink(&sink, piece, n);
		}
		if (q->job_rc != 0)
			goto fail;
	} else if (q->auth.payload == SIGV4_PAYLOAD_SHA256 || q->auth.payload == SIGV4_PAYLOAD_UNSIGNED) {
		q->job_rc = put_sink(&sink, q->body, q->body_len);
		if (q->job_rc != 0)
			goto fail;
	} else {
		char trailer[128];
		awschunked_config cfg = {
			.mode = q->auth.payload,
			.chain = &q->auth.chain,
			.decoded_length = q->auth.decoded_length,
			.trailer = field_str(q, "x-amz-trailer", trailer, sizeof trailer),
			.sink = put_sink,
			.sink_arg = &sink,
		};
		dec = awschunked_new(&cfg, &q->job_err);
		if (!dec) {
			q->job_rc = ERR_AUTH;
			goto fail;
		}
		size_t used;
		int rc = awschunked_feed(dec, q->body, q->body_len, &used);
		if (rc == AWSCHUNKED_MORE)
			rc = awschunked_finish(dec);
		if (rc == AWSCHUNKED_DONE && used != q->body_len)
			rc = ERR_PARSE; /* bytes after the final chunk */
		if (rc != AWSCHUNKED_DONE) {
			const sigv4_error *e = awschunked_error(dec);
			if (e->code)
				q->job_err = *e;
			else
				q->job_err = (sigv4_error){.status = 400, .code = "IncompleteBody",
							  .message = "The request body holds data after its end."};
			q->job_rc = ERR_AUTH;
			goto fail;
		}
		const char *tname = NULL;
		const char *tval = awschunked_checksum(dec, &tname);
		if (tval && tname) {
			snprintf(q->trailer_name, sizeof q->trailer_name, "%s", tname);
			snprintf(q->trailer_value, sizeof q->trailer_value, "%s", tval);
		}
	}
	q->job_rc = blobstore_put_commit(&sink.w, &q->sums);
	if (q->job_rc != 0)
		goto fail;
	/* the blob is durable but no row names it: on a mismatch it goes again */
	sigv4_error e;
	unsigned char want[32];
	if (!q->is_copy && sigv4_payload_check(&q->auth, q->sums.sha256, &e) != 0) {
		q->job_err = e;
		q->job_rc = ERR_AUTH;
	} else if (q->has_md5 && memcmp(q->want_md5, q->sums.md5, 16) != 0) {
		job_fail(q, 400, "BadDigest", "The Content-MD5 you specified did not match what we received.");
	} else if (q->want_sum_name[0]) {
		const char *alg = q->want_sum_name + strlen("x-amz-checksum-");
		bool ok;
		if (strcmp(alg, "crc32") == 0 || strcmp(alg, "crc32c") == 0) {
			uint32_t c = strcmp(alg, "crc32") == 0 ? q->sums.crc32 : q->sums.crc32c;
			want[0] = (unsigned char)(c >> 24);
			want[1] = (unsigned char)(c >> 16);
			want[2] = (unsigned char)(c >> 8);
			want[3] = (unsigned char)c;
			ok = memcmp(want, q->want_sum, 4) == 0;
		} else if (strcmp(alg, "sha256") == 0) {
			ok = memcmp(q->sums.sha256, q->want_sum, 32) == 0;
		} else if (strcmp(alg, "crc64nvme") == 0) {
			for (int i = 0; i < 8; i++)
				want[i] = (unsigned char)(sink.crc64v >> (56 - 8 * i));
			ok = memcmp(want, q->want_sum, 8) == 0;
		} else {
			unsigned int n = 0;
			ok = EVP_DigestFinal_ex(sink.sha1, want, &n) == 1 && n == 20 &&
			     memcmp(want, q->want_sum, 20) == 0;
		}
		if (!ok) {
			char msg[128];
			snprintf(msg, sizeof msg, "The %s you specified did not match the calculated checksum.",
				 q->want_sum_name);
			job_fail(q, 400, "BadDigest", msg);
		}
	}
	if (q->job_rc != 0)
		blobstore_delete(o->blobs, q->obj->blob);
	goto done;
fail:
	blobstore_put_abort(&sink.w);
done:
	if (sink.w) /* cannot happen: commit and abort consume it */
		blobstore_put_abort(&sink.w);
	awschunked_free(&dec);
	blobstore_get_close(&q->src.reader);
	free(piece);
	EVP_MD_CTX_free(sink.sha1);
}

static int put_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	q->old.count = 0;
	return meta_object_put(db, q->obj, q->cond, q->cond_etag, &q->old);
}

/* The answer to a stored PUT or UploadPart: ETag and checksum headers, or
 * for a copy the XML result (CopyObjectResult / CopyPartResult). */
static void put_answer(s3_req *q, const char *copy_root)
{
	char etag[48];
	snprintf(etag, sizeof etag, "\"%s\"", q->obj->etag);
	/* a bucket never versioned: S3 sends no version id */
	if (q->versioned && !q->is_part)
		http_response_header(q->http, "x-amz-version-id", q->obj->version_id);
	if (q->is_copy && q->src_version[0] && (q->src_version_named || strcmp(q->src_version, "null") != 0))
		http_response_header(q->http, "x-amz-copy-source-version-id", q->src_version);
	if (q->is_copy) {
		buf x;
		buf_init(&x, 4096);
		char when[32];
		util_iso8601(q->obj->mtime_ms, when);
		buf_printf(&x, S3_XML_HEAD "<%s xmlns=\"" S3_NS "\">", copy_root);
		s3xml_elem(&x, "LastModified", when);
		s3xml_elem(&x, "ETag", etag);
		buf_printf(&x, "</%s>", copy_root);
		s3_xml(q, 200, &x);
		return;
	}
	http_response_header(q->http, "ETag", etag);
	if (q->trailer_name[0])
		http_response_header(q->http, q->trailer_name, q->trailer_value);
	else if (q->want_sum_name[0]) {
		char v[64];
		b64_encode(q->want_sum, q->want_sum_len, v);
		http_response_header(q->http, q->want_sum_name, v);
	}
	s3_empty(q, 200);
}

static void put_durable(void *arg, bool ok);

static void put_committed(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	objects *o = q->o;
	if (rc != 0) {
		blob_delete_async(o, q->obj->blob); /* no row names it */
		if (rc == ERR_CONFLICT)
			s3_error(q, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
		else if (rc == ERR_NOTFOUND && q->cond == META_COND_ETAG)
			s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
		else if (rc == ERR_NOTFOUND)
			s3_error(q, 404, "NoSuchBucket", "The specified bucket does not exist");
		else
			s3_internal(q, rc);
		return;
	}
	blobs_delete_async(o, &q->old);
	orepl_kick(o->repl); /* ship it now rather than at the next poll */
	if (q->durable_global) {
		orepl_wait(o->repl, q->obj->journal_seq, o->cfg->replication.global_ack_wait_ms, put_durable, q);
		return;
	}
	put_answer(q, "CopyObjectResult");
}

static void no_such_upload(s3_req *q)
{
	s3_error(q, 404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, "
		 "or the upload may have been aborted or completed.");
}

static int part_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	meta_part p = {.number = q->part_number, .size = q->obj->size, .mtime_ms = q->obj->mtime_ms};
	snprintf(p.blob, sizeof p.blob, "%s", q->obj->blob);
	memcpy(p.etag, q->obj->etag, 32); /* a part's ETag: MD5 hex (put_done) */
	p.etag[32] = '\0';
	q->old.count = 0;
	return meta_part_put(db, q->upload_id, &p, &q->old);
}

static void part_committed(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	objects *o = q->o;
	if (rc != 0) {
		blob_delete_async(o, q->obj->blob); /* no row names it */
		if (rc == ERR_NOTFOUND) /* completed, aborted or expired meanwhile */
			no_such_upload(q);
		else
			s3_internal(q, rc);
		return;
	}
	blobs_delete_async(o, &q->old); /* the part this one replaced */
	put_answer(q, "CopyPartResult");
}

/* Worker done: the blob is committed and verified, or the request failed. */
static void put_decided(void *arg, int rc);

static void put_done(void *arg)
{
	s3_req *q = arg;
	objects *o = q->o;
	if (q->job_rc == ERR_AUTH) {
		s3_error_sig(q, &q->job_err);
		return;
	}
	if (q->job_rc == ERR_CORRUPT || q->job_rc == ERR_NOTFOUND) {
		/* the copy's source: damaged (logged by the store) or deleted meanwhile */
		if (q->job_rc == ERR_NOTFOUND)
			s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
		else
			s3_internal(q, q->job_rc);
		return;
	}
	if (q->job_rc != 0) {
		log_error("s3: storing an object failed: %s", err_str(q->job_rc));
		s3_internal(q, q->job_rc);
		return;
	}
	meta_object *ob = q->obj;
	ob->size = q->sums.size;
	util_hex(q->sums.md5, 16, ob->etag);
	util_hex(q->sums.sha256, 32, ob->sha256);
	ob->crc32 = q->sums.crc32;
	ob->crc32c = q->sums.crc32c;
	ob->mtime_ms = util_now_ms();
	hlc_encode(hlc_now(o->clock), ob->hlc);
	snprintf(ob->origin, sizeof ob->origin, "%s", o->self->name);
	snprintf(ob->owner, sizeof ob->owner, "%s", q->tenant);
	if (q->decide_global && q->cond != META_COND_NONE && !q->is_part && !q->is_copy) {
		/* the version id both regions will know it by */
		if (q->bucket_versioning == META_VERSIONING_ENABLED) {
			unsigned char rnd[META_VERSION_ID_LEN / 2];
			util_random(rnd, sizeof rnd);
			util_hex(rnd, sizeof rnd, ob->version_id);
			ob->version_id[META_VERSION_ID_LEN] = '\0';
		} else {
			snprintf(ob->version_id, sizeof ob->version_id, "null");
		}
		orepl_decide(o->repl, ob, q->cond, q->cond_etag, put_decided, q);
		return;
	}
	int rc = q->is_part ? committer_submit(o->writer, part_exec, part_committed, q)
			    : committer_submit(o->writer, put_exec, put_committed, q);
	if (rc != 0) {
		blob_delete_async(o, ob->blob);
		s3_internal(q, rc);
	}
}

/* The records' primary decided a conditional PUT (X-Tandem-Consistency:
 * global): applied there, so it is written here too, unconditionally;
 * refused; or to be asked again with a newer HLC (it holds a newer
 * version). */
static void put_decided(void *arg, int rc)
{
	s3_req *q = arg;
	objects *o = q->o;
	if (rc == ERR_AGAIN && ++q->decide_tries < 4) {
		hlc_encode(hlc_now(o->clock), q->obj->hlc); /* the clock merged the primary's */
		orepl_decide(o->repl, q->obj, q->cond, q->cond_etag, put_decided, q);
		return;
	}
	if (rc == 0) {
		q->cond = META_COND_NONE;
		rc = committer_submit(o->writer, put_exec, put_committed, q);
		if (rc == 0)
			return;
	}
	blob_delete_async(o, q->obj->blob);
	if (rc == ERR_CONFLICT)
		s3_error(q, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold "
			 "(decided by the records' primary)");
	else if (rc == ERR_NOTFOUND)
		s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
	else if (rc == ERR_LIMIT)
		s3_error(q, 503, "SlowDown", "Too many conditional writes are waiting for the records' primary; retry");
	else
		s3_error(q, 503, "ServiceUnavailable", "The records' primary could not decide this conditional write "
			 "(X-Tandem-Consistency: global); nothing was written, retry");
}

/* The preconditions of a conditional PUT, checked early against the current
 * row (and again, authoritatively, in the write transaction). 0 or answered. */
static int put_conditions(s3_req *q, const meta_object *cur, bool exists)
{
	size_t len;
	const char *inm = field(q, "If-None-Match", &len);
	if (inm) {
		if (!(len == 1 && inm[0] == '*')) {
			s3_not_implemented(q, "If-None-Match on PUT other than *");
			return -1;
		}
		q->cond = META_COND_ABSENT;
		if (exists) {
			s3_error(q, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
			return -1;
		}
	}
	const char *im = field(q, "If-Match", &len);
	if (im) {
		if (q->cond != META_COND_NONE) {
			s3_not_implemented(q, "If-Match together with If-None-Match on PUT");
			return -1;
		}
		if (len >= 2 && im[0] == '"' && im[len - 1] == '"') {
			im++;
			len -= 2;
		}
		if (len >= sizeof q->cond_etag) {
			s3_error(q, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
			return -1;
		}
		memcpy(q->cond_etag, im, len);
		q->cond_etag[len] = '\0';
		q->cond = META_COND_ETAG;
		if (!exists) {
			s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
			return -1;
		}
		if (strcmp(q->cond_etag, "*") != 0 && strcmp(q->cond_etag, cur->etag) != 0) {
			s3_error(q, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
			return -1;
		}
	}
	return 0;
}

/* x-amz-copy-source ("/bucket/key" or "bucket/key", URL-encoded, maybe
 * "?versionId=ID", in src_spec, which is changed): the source object (that
 * version, or the current one) into
 * cur, its bucket (NUL-terminated) in dec (2048 bytes) and its key at
 * *skey. 0, or answered (InvalidArgument, NoSuchBucket, AccessDenied,
 * NoSuchKey) and -1. */
static int copy_source(s3_req *q, char *src_spec, char dec[2048], const char **skey_out, size_t *skey_len_out,
		       meta_object *cur)
{
	objects *o = q->o;
	int rc;
	char *qm = strchr(src_spec, '?');
	const char *vid = NULL;
	if (qm) {
		if (strncmp(qm, "?versionId=", 11) != 0 || !meta_version_id_valid(qm + 11)) {
			s3_error(q, 400, "InvalidArgument", "Invalid version id specified");
			return -1;
		}
		*qm = '\0';
		vid = qm + 11;
	}
	char *spec = src_spec[0] == '/' ? src_spec + 1 : src_spec;
	long n = pct_decode(spec, strlen(spec), dec, false);
	char *slash = n > 0 ? memchr(dec, '/', (size_t)n) : NULL;
	if (!slash || slash == dec || (size_t)(slash - dec) > META_BUCKET_MAX || slash + 1 == dec + n) {
		s3_error(q, 400, "InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey");
		return -1;
	}
	*slash = '\0';
	const char *skey = slash + 1;
	size_t skey_len = (size_t)(dec + n - skey);
	meta_bucket sb;
	rc = meta_bucket_get(o->reader, dec, &sb);
	if (rc == ERR_NOTFOUND || (rc == 0 && strcmp(sb.owner, q->tenant) != 0)) {
		if (rc == 0)
			s3_error(q, 403, "AccessDenied", "Access Denied");
		else
			s3_error(q, 404, "NoSuchBucket", "The specified bucket does not exist");
		return -1;
	}
	if (rc == 0)
		rc = vid ? meta_object_version(o->reader, dec, skey, skey_len, vid, cur)
			 : meta_object_get(o->reader, dec, skey, skey_len, cur);
	if (rc == 0 && cur->delete_marker) {
		s3_error(q, 400, "InvalidRequest", "The source of a copy request may not specifically refer to a "
			 "delete marker by version id.");
		return -1;
	}
	if (rc != 0) {
		if (rc == ERR_NOTFOUND && vid)
			s3_error(q, 404, "NoSuchVersion", "The specified version does not exist.");
		else if (rc == ERR_NOTFOUND)
			s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
		else
			s3_internal(q, rc);
		return -1;
	}
	snprintf(q->src_version, sizeof q->src_version, "%s", cur->version_id);
	q->src_version_named = vid != NULL;
	*skey_out = skey;
	*skey_len_out = skey_len;
	return 0;
}

/* X-Tandem-Durability (else the deployment's [replication]
 * write_durability): "global" answers a PUT or DELETE only once the other
 * region has it durably. 0, or -1 when malformed (answered 400). */
static int durability(s3_req *q)
{
	char v[16];
	const char *h = field_str(q, "x-tandem-durability", v, sizeof v);
	if (field(q, "x-tandem-durability", NULL) && (!h || (strcmp(h, "local") != 0 && strcmp(h, "global") != 0))) {
		s3_error(q, 400, "InvalidArgument", "X-Tandem-Durability must be local or global");
		return -1;
	}
	q->durable_global = h ? strcmp(h, "global") == 0
			      : strcmp(q->o->cfg->replication.write_durability, "global") == 0;
	return 0;
}

/* X-Tandem-Consistency: global on a conditional PUT: the condition is
 * decided by the records' primary (the other region, when this one is not
 * it) rather than here. "local" (the default) decides here. 0, or -1 when
 * malformed (answered 400). */
static int consistency(s3_req *q)
{
	char v[16];
	const char *h = field_str(q, "x-tandem-consistency", v, sizeof v);
	if (field(q, "x-tandem-consistency", NULL) && (!h || (strcmp(h, "local") != 0 && strcmp(h, "global") != 0))) {
		s3_error(q, 400, "InvalidArgument", "X-Tandem-Consistency must be local or global");
		return -1;
	}
	q->decide_global = h && strcmp(h, "global") == 0 && q->o->is_primary && !q->o->is_primary(q->o->primary_arg);
	return 0;
}

/* The other region confirmed the write (or did not in time: the write
 * stays here, and is shipped when it can be). */
static void durable_answer(s3_req *q, bool ok, void (*answer)(s3_req *q))
{
	if (ok) {
		answer(q);
		return;
	}
	s3_error(q, 503, "ReplicationTimeout", "The write is stored in this region, but the other region did not "
		 "confirm it within %d ms (X-Tandem-Durability: global); it is replicated when the link allows",
		 q->o->cfg->replication.global_ack_wait_ms);
}

static void put_answer_object(s3_req *q)
{
	put_answer(q, "CopyObjectResult");
}

static void put_durable(void *arg, bool ok)
{
	durable_answer(arg, ok, put_answer_object);
}

static void op_put_object(s3_req *q)
{
	objects *o = q->o;
	meta_bucket mb;
	meta_acl acl;
	if (need_bucket(q, &mb) != 0 || refuse_unsupported_put(q) != 0 || canned_acl(q, &acl) != 0 ||
	    integrity_headers(q) != 0 || durability(q) != 0 || consistency(q) != 0)
		return;
	q->versioned = mb.versioning != META_VERSIONING_OFF;
	q->bucket_versioning = mb.versioning;
	q->obj = calloc(1, sizeof *q->obj);
	if (q->obj)
		q->obj->acl = acl; /* a copy does not take its source's ACL, as S3 */
	meta_object *cur = malloc(sizeof *cur);
	if (!q->obj || !cur) {
		free(cur);
		s3_internal(q, ERR_NOMEM);
		return;
	}
	int rc = meta_object_get(o->reader, q->bucket, q->key, q->key_len, cur);
	if (rc != 0 && rc != ERR_NOTFOUND) {
		free(cur);
		s3_internal(q, rc);
		return;
	}
	bool exists = rc == 0;
	char src_spec[2048];
	const char *copy = field_str(q, "x-amz-copy-source", src_spec, sizeof src_spec);
	if (field(q, "x-amz-copy-source", NULL) && !copy) {
		free(cur);
		s3_error(q, 400, "InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey");
		return;
	}
	if (put_conditions(q, cur, exists) != 0) {
		free(cur);
		return;
	}
	meta_object *ob = q->obj;
	snprintf(ob->bucket, sizeof ob->bucket, "%s", q->bucket);
	memcpy(ob->key, q->key, q->key_len);
	ob->key_len = q->key_len;
	char ct[256];
	const char *ctype = field_str(q, "Content-Type", ct, sizeof ct);
	if (copy) {
		/* "/bucket/key" or "bucket/key", URL-encoded, maybe "?versionId=null" */
		q->is_copy = true;
		char dec[2048];
		const char *skey;
		size_t skey_len;
		if (copy_source(q, src_spec, dec, &skey, &skey_len, cur) != 0) {
			free(cur);
			return;
		}
		char dir[16];
		const char *directive = field_str(q, "x-amz-metadata-directive", dir, sizeof dir);
		if (field(q, "x-amz-metadata-directive", NULL) &&
		    (!directive || (strcmp(directive, "COPY") && strcmp(directive, "REPLACE")))) {
			free(cur);
			s3_error(q, 400, "InvalidArgument", "Unknown metadata directive.");
			return;
		}
		bool replace = directive && strcmp(directive, "REPLACE") == 0;
		/* copying a named (older) version onto its key is how S3 users
		 * restore it: only a copy of the current object onto itself is
		 * refused */
		if (!replace && !q->src_version_named && strcmp(dec, q->bucket) == 0 && skey_len == q->key_len &&
		    memcmp(skey, q->key, skey_len) == 0) {
			free(cur);
			s3_error(q, 400, "InvalidRequest", "This copy request is illegal because it is trying to copy "
				 "an object to itself without changing the object's metadata, storage class, website "
				 "redirect location or encryption attributes.");
			return;
		}
		rc = source_load(o, cur, 0, cur->size, &q->src);
		if (rc != 0) {
			free(cur);
			if (rc == ERR_NOTFOUND) /* replaced meanwhile */
				s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
			else
				s3_internal(q, rc);
			return;
		}
		if (replace) {
			if (collect_headers(q, ob) != 0) {
				free(cur);
				return;
			}
			snprintf(ob->content_type, sizeof ob->content_type, "%s", ctype ? ctype : S3_DEFAULT_CONTENT_TYPE);
		} else {
			memcpy(ob->headers, cur->headers, sizeof ob->headers);
			memcpy(ob->content_type, cur->content_type, sizeof ob->content_type);
		}
		q->has_md5 = false; /* S3 ignores them on a copy */
		q->want_sum_name[0] = '\0';
	} else {
		if (collect_headers(q, ob) != 0) {
			free(cur);
			return;
		}
		snprintf(ob->content_type, sizeof ob->content_type, "%s", ctype ? ctype : S3_DEFAULT_CONTENT_TYPE);
		q->body = http_request_body(q->http, &q->body_len);
		if ((q->auth.payload == SIGV4_PAYLOAD_SHA256 || q->auth.payload == SIGV4_PAYLOAD_UNSIGNED) &&
		    q->body_len > o->cfg->objects.max_put_bytes) {
			free(cur);
			s3_error(q, 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size");
			return;
		}
	}
	free(cur);
	rc = workers_submit(o->pool, WORKERS_BULK, put_work, put_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

/* ?versionId: absent (NULL), or a valid id; or answered (400
 * InvalidArgument, as S3 for an id that cannot be one) and false. */
static bool version_param(s3_req *q, const char **vid)
{
	*vid = param(q, "versionId");
	if (*vid && !meta_version_id_valid(*vid)) {
		if (q->head)
			s3_empty(q, 400);
		else
			s3_error(q, 400, "InvalidArgument", "Invalid version id specified");
		return false;
	}
	return true;
}

/* --- GET / HEAD --- */

static void get_pump(s3_req *q);
static void get_headers(s3_req *q);

static void get_read_work(void *arg)
{
	s3_req *q = arg;
	size_t want = q->remaining < S3_READ_PIECE ? (size_t)q->remaining : S3_READ_PIECE;
	q->piece_len = 0;
	q->job_rc = 0;
	/* the previous piece was handed to the connection */
	if (!q->piece && !(q->piece = malloc(want))) {
		q->job_rc = ERR_NOMEM;
		return;
	}
	while (q->piece_len < want) {
		size_t n;
		q->job_rc = source_read(q->o->blobs, &q->src, q->piece + q->piece_len, want - q->piece_len, &n);
		if (q->job_rc != 0 || n == 0)
			break;
		q->piece_len += n;
	}
	if (q->job_rc == 0 && q->piece_len < want)
		q->job_rc = ERR_CORRUPT; /* cannot happen: the size is authenticated */
}

/* Hand the piece just read to the connection (no copy); the next read
 * allocates another. */
static void send_piece(s3_req *q)
{
	http_respond_chunk_take(q->http, q->piece, q->piece_len);
	q->piece = NULL;
	q->remaining -= q->piece_len;
}

/* A read failed after the head was sent: the only honest end is a short
 * body. What was queued goes out, then the connection closes short of the
 * announced Content-Length: the client sees a truncated body, never a
 * complete-looking answer. */
static void get_read_failed(s3_req *q)
{
	log_error("s3: GET of blob %s failed mid-body (%s): connection closed",
		  q->src.next && q->src.next <= q->src.count ? q->src.parts[q->src.next - 1].blob : "?",
		  err_str(q->job_rc));
	http_request_close_after(q->http);
	http_respond_end(q->http);
	req_done(q);
}

static void get_read_done(void *arg)
{
	s3_req *q = arg;
	if (q->job_rc != 0) {
		get_read_failed(q);
		return;
	}
	send_piece(q);
	get_pump(q);
}

static void get_drained(http_request *http, void *arg)
{
	get_pump(arg);
}

/* Loop thread: up to cap bytes of the open part from the page cache. 0
 * (*n > 0), ERR_AGAIN when the pool must do it (not cached, or the part is
 * finished and the next one must be opened: opening reads the disk), or
 * the store's error (sticky). */
static int source_read_cached(s3_source *s, char *out, size_t cap, size_t *n)
{
	*n = 0;
	if (!s->reader)
		return ERR_AGAIN;
	int rc = blobstore_get_read_cached(s->reader, out, cap, n);
	if (rc == 0 && *n == 0) {
		blobstore_get_close(&s->reader); /* the next part opens in the pool */
		return ERR_AGAIN;
	}
	return rc;
}

/* Loop thread: the next piece from the page cache into q->piece. 0 with
 * q->piece_len > 0 (maybe less than a piece: what was cached), ERR_AGAIN
 * (nothing read), or an error (ERR_CORRUPT, ERR_IO, ERR_NOMEM). */
static int get_read_cached(s3_req *q)
{
	size_t want = q->remaining < S3_READ_PIECE ? (size_t)q->remaining : S3_READ_PIECE;
	int rc = 0;
	q->piece_len = 0;
	if (!q->piece && !(q->piece = malloc(want)))
		return ERR_NOMEM;
	while (q->piece_len < want) {
		size_t n;
		rc = source_read_cached(&q->src, q->piece + q->piece_len, want - q->piece_len, &n);
		if (rc != 0)
			break;
		q->piece_len += n;
	}
	return rc == ERR_AGAIN && q->piece_len > 0 ? 0 : rc;
}

/* Queue the answer's next pieces while the connection has room: from the
 * page cache on the loop itself (no hop to the pool; never waits for the
 * disk), else in the pool (get_read_work), one piece per job. */
static void get_pump(s3_req *q)
{
	for (unsigned i = 0;; i++) {
		if (http_request_is_closed(q->http) || q->remaining == 0) {
			if (q->remaining)
				http_request_abort(q->http);
			else
				http_respond_end(q->http);
			q->log_status = q->remaining ? 0 : q->status;
			req_done(q);
			return;
		}
		if (http_request_output_room(q->http) == 0) {
			http_request_on_drain(q->http, get_drained, q);
			return;
		}
		if (i == S3_LOOP_PIECES)
			break; /* enough for one turn of the loop: the rest in the pool */
		int rc = get_read_cached(q);
		if (rc == ERR_AGAIN)
			break;
		if (rc != 0) {
			q->job_rc = rc;
			get_read_failed(q);
			return;
		}
		send_piece(q);
	}
	if (workers_submit(q->o->pool, WORKERS_URGENT, get_read_work, get_read_done, q) != 0) {
		log_warn("s3: GET stopped: the read queue is full");
		http_request_abort(q->http);
		req_done(q);
	}
}

typedef struct get_plan {
	int status;
	uint64_t offset, length;
} get_plan;

/* Worker: open the (first) blob and read the first piece before any byte
 * of the answer is sent, so that a damaged small object (one piece) is a
 * clean 500 and a damaged large one is caught at its first piece too. */
static void get_open_work(void *arg)
{
	get_read_work(arg);
}

static void get_open_done(void *arg)
{
	s3_req *q = arg;
	if (q->job_rc != 0) {
		if (q->job_rc == ERR_NOTFOUND) /* deleted or replaced meanwhile */
			s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
		else
			s3_internal(q, q->job_rc); /* damaged: logged by the store, never served */
		return;
	}
	/* A streaming answer escapes http_respond's max_buffered_bytes check,
	 * and each one may queue up to max_unsent_bytes: 1,000 slow readers of
	 * 1 MiB objects held 1 GiB against a 128 MiB bound (bench/objects.py).
	 * So a large one is refused here, before its head, while the server is
	 * over the bound, as http_respond refuses a large GET answer. */
	if (q->remaining > S3_SMALL_BODY && http_request_server_overloaded(q->http)) {
		http_request_note_overloaded(q->http);
		http_request_close_after(q->http);
		http_response_header(q->http, "Retry-After", "1");
		s3_error(q, 503, "SlowDown", "Please reduce your request rate: the region holds too much "
			 "unsent data for clients now.");
		return;
	}
	get_headers(q);
	http_respond_start_length(q->http, q->status, q->remaining);
	send_piece(q);
	get_pump(q);
}

/* Range: bytes=a-b | a- | -n. 1 when it applies (offset, length set), 0 to
 * send the whole object (absent or not understood: ignored, as RFC 9110
 * allows), -1 unsatisfiable. */
static int parse_range(const char *v, size_t len, uint64_t size, uint64_t *off, uint64_t *n)
{
	char s[128];
	if (!v || len >= sizeof s || len < 7 || strncmp(v, "bytes=", 6) != 0)
		return 0;
	memcpy(s, v + 6, len - 6);
	s[len - 6] = '\0';
	if (strchr(s, ','))
		return 0; /* several ranges: S3 serves the whole object too */
	char *dash = strchr(s, '-');
	if (!dash)
		return 0;
	*dash = '\0';
	const char *a = s, *b = dash + 1;
	long long x, y;
	if (!*a) {
		if (util_parse_int(b, 0, INT64_MAX, &y) != 0)
			return 0;
		if (y == 0 || size == 0)
			return -1;
		*n = (uint64_t)y > size ? size : (uint64_t)y;
		*off = size - *n;
		return 1;
	}
	if (util_parse_int(a, 0, INT64_MAX, &x) != 0)
		return 0;
	if (*b && (util_parse_int(b, 0, INT64_MAX, &y) != 0 || y < x))
		return 0;
	if ((uint64_t)x >= size)
		return -1;
	uint64_t last = *b ? (uint64_t)y : size - 1;
	if (last >= size)
		last = size - 1;
	*off = (uint64_t)x;
	*n = last - (uint64_t)x + 1;
	return 1;
}

/* If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since (RFC 9110
 * section 13.2.2 order). 0 to go on, or the status (412, 304). */
static int get_conditions(s3_req *q, const meta_object *ob)
{
	size_t len;
	char d[64];
	int64_t mtime_s = ob->mtime_ms / 1000;
	const char *im = field(q, "If-Match", &len);
	if (im && !etag_matches(im, len, ob->etag))
		return 412;
	if (!im && field_str(q, "If-Unmodified-Since", d, sizeof d)) {
		int64_t t = parse_http_date(d);
		if (t >= 0 && mtime_s > t)
			return 412;
	}
	const char *inm = field(q, "If-None-Match", &len);
	if (inm && etag_matches(inm, len, ob->etag))
		return 304;
	if (!inm && field_str(q, "If-Modified-Since", d, sizeof d)) {
		int64_t t = parse_http_date(d);
		if (t >= 0 && mtime_s <= t)
			return 304;
	}
	return 0;
}

/* The stored headers, each unless a response-* parameter overrides it. */
static void add_object_headers(s3_req *q, const meta_object *ob)
{
	static const struct {
		const char *param, *header;
	} over[] = {{"response-content-type", "Content-Type"},
		    {"response-content-language", "Content-Language"},
		    {"response-expires", "Expires"},
		    {"response-cache-control", "Cache-Control"},
		    {"response-content-disposition", "Content-Disposition"},
		    {"response-content-encoding", "Content-Encoding"}};
	const char *p = ob->headers;
	while (*p) {
		const char *eol = strstr(p, "\r\n");
		if (!eol)
			break;
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		bool skip = false;
		for (size_t i = 0; colon && i < sizeof over / sizeof over[0]; i++)
			if (strlen(over[i].header) == (size_t)(colon - p) &&
			    strncasecmp(p, over[i].header, (size_t)(colon - p)) == 0 && param(q, over[i].param))
				skip = true;
		if (!skip)
			http_response_header_lines(q->http, p, (size_t)(eol + 2 - p));
		p = eol + 2;
	}
	static const char *const repl_status[] = {[META_REPL_PENDING] = "PENDING",
						   [META_REPL_COMPLETED] = "COMPLETED",
						   [META_REPL_FAILED] = "FAILED",
						   [META_REPL_REPLICA] = "REPLICA"};
	if (ob->repl > META_REPL_NONE && ob->repl <= META_REPL_REPLICA)
		http_response_header(q->http, "x-amz-replication-status", repl_status[ob->repl]);
	const char *ct = param(q, "response-content-type");
	http_response_header(q->http, "Content-Type", ct ? ct : ob->content_type);
	for (size_t i = 1; i < sizeof over / sizeof over[0]; i++) {
		const char *v = param(q, over[i].param);
		if (v)
			http_response_header(q->http, over[i].header, v);
	}
}

/* The headers of a 200/206 answer (added only once it is sure: an error
 * found while opening the blob must not carry them). The range is
 * q->range_offset and q->remaining, the status q->status. */
static void get_headers(s3_req *q)
{
	const meta_object *ob = q->obj;
	char etag[48], lm[40];
	snprintf(etag, sizeof etag, "\"%s\"", ob->etag);
	http_date(ob->mtime_ms, lm);
	http_response_header(q->http, "ETag", etag);
	http_response_header(q->http, "Last-Modified", lm);
	http_response_header(q->http, "Accept-Ranges", "bytes");
	http_response_header(q->http, "x-amz-version-id", ob->version_id);
	add_object_headers(q, ob);
	if (q->status == 206) {
		char cr[96];
		snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)q->range_offset,
			 (unsigned long long)(q->range_offset + q->remaining - 1), (unsigned long long)ob->size);
		http_response_header(q->http, "Content-Range", cr);
	}
}

static void op_get_object(s3_req *q)
{
	objects *o = q->o;
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0)
		return;
	const char *vid;
	if (!version_param(q, &vid))
		return;
	q->obj = malloc(sizeof *q->obj);
	if (!q->obj) {
		s3_internal(q, ERR_NOMEM);
		return;
	}
	meta_object *ob = q->obj;
	int rc = vid ? meta_object_version(o->reader, q->bucket, q->key, q->key_len, vid, ob)
		     : meta_object_latest(o->reader, q->bucket, q->key, q->key_len, ob);
	/* anonymous: a public-read object, or any object of a public-read
	 * bucket; else 403, also for what does not exist (a private bucket's
	 * keys are nobody's business) */
	if (q->anonymous && mb.acl != META_ACL_PUBLIC_READ &&
	    (rc != 0 || ob->delete_marker || ob->acl != META_ACL_PUBLIC_READ)) {
		access_denied(q);
		return;
	}
	if (rc == 0 && ob->delete_marker) {
		/* S3: the key's current version is a marker: 404 NoSuchKey; a
		 * marker named by id: 405 (a marker has no data) */
		char lm[40];
		http_date(ob->mtime_ms, lm);
		http_response_header(q->http, "x-amz-delete-marker", "true");
		http_response_header(q->http, "x-amz-version-id", ob->version_id);
		if (vid)
			http_response_header(q->http, "Last-Modified", lm);
		int status = vid ? 405 : 404;
		if (q->head)
			s3_empty(q, status);
		else if (vid)
			s3_error(q, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
		else
			s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
		return;
	}
	if (rc == ERR_NOTFOUND) {
		if (q->head)
			s3_empty(q, 404);
		else if (vid)
			s3_error(q, 404, "NoSuchVersion", "The specified version does not exist.");
		else
			s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
		return;
	}
	if (rc != 0) {
		s3_internal(q, rc);
		return;
	}
	char etag[48], lm[40];
	snprintf(etag, sizeof etag, "\"%s\"", ob->etag);
	http_date(ob->mtime_ms, lm);
	int cond = get_conditions(q, ob);
	if (cond == 304) {
		http_response_header(q->http, "ETag", etag);
		http_response_header(q->http, "Last-Modified", lm);
		s3_empty(q, 304);
		return;
	}
	if (cond == 412) {
		if (q->head)
			s3_empty(q, 412);
		else
			s3_error(q, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
		return;
	}
	size_t rlen;
	const char *range = field(q, "Range", &rlen);
	uint64_t off = 0, n = ob->size;
	int r = parse_range(range, rlen, ob->size, &off, &n);
	if (r < 0) {
		char cr[64];
		snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)ob->size);
		http_response_header(q->http, "Content-Range", cr);
		s3_error(q, 416, "InvalidRange", "The requested range is not satisfiable");
		return;
	}
	q->remaining = n;
	q->range_offset = off;
	q->status = r > 0 ? 206 : 200;
	if (q->head || n == 0) {
		get_headers(q);
		http_respond_start_length(q->http, q->status, n);
		http_respond_end(q->http);
		q->log_status = q->status;
		req_done(q);
		return;
	}
	/* no bigger than the answer: a 256 KiB buffer per small GET was an
	 * mmap, page faults and a munmap (node.c's M_MMAP_THRESHOLD) each time */
	q->piece = malloc(n < S3_READ_PIECE ? (size_t)n : S3_READ_PIECE);
	if (!q->piece) {
		s3_internal(q, ERR_NOMEM);
		return;
	}
	rc = source_load(o, ob, off, n, &q->src);
	if (rc == ERR_NOTFOUND) { /* a multipart object replaced meanwhile */
		s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
		return;
	}
	if (rc != 0) {
		s3_internal(q, rc);
		return;
	}
	rc = workers_submit(o->pool, WORKERS_URGENT, get_open_work, get_open_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

/* --- DELETE --- */

/* A delete marker written at this region now, for q's key (q->obj). 0 or
 * ERR_NOMEM. */
static int new_marker(s3_req *q)
{
	objects *o = q->o;
	meta_object *m = q->obj = calloc(1, sizeof *q->obj);
	if (!m)
		return ERR_NOMEM;
	snprintf(m->bucket, sizeof m->bucket, "%s", q->bucket);
	if (q->key) {
		memcpy(m->key, q->key, q->key_len);
		m->key_len = q->key_len;
	}
	m->mtime_ms = util_now_ms();
	hlc_encode(hlc_now(o->clock), m->hlc);
	snprintf(m->origin, sizeof m->origin, "%s", o->self->name);
	snprintf(m->owner, sizeof m->owner, "%s", q->tenant);
	snprintf(m->content_type, sizeof m->content_type, "%s", S3_DEFAULT_CONTENT_TYPE);
	return 0;
}

static int delete_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	q->old.count = 0;
	q->marker = false;
	if (q->version_id[0]) {
		int rc = meta_object_delete_version(db, q->obj, q->version_id, &q->marker, &q->old);
		return rc == ERR_NOTFOUND ? 0 : rc; /* deleting a version that is not there: 204, as S3 */
	}
	return meta_object_remove(db, q->obj, &q->marker, &q->old);
}

static void delete_answer(s3_req *q);

static void delete_durable(void *arg, bool ok)
{
	durable_answer(arg, ok, delete_answer);
}

static void delete_committed(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	if (rc == ERR_NOTFOUND) {
		s3_error(q, 404, "NoSuchBucket", "The specified bucket does not exist");
		return;
	}
	if (rc != 0) {
		s3_internal(q, rc);
		return;
	}
	blobs_delete_async(q->o, &q->old);
	orepl_kick(q->o->repl);
	if (q->durable_global) {
		orepl_wait(q->o->repl, q->obj->journal_seq, q->o->cfg->replication.global_ack_wait_ms, delete_durable, q);
		return;
	}
	delete_answer(q);
}

static void delete_answer(s3_req *q)
{
	if (q->version_id[0])
		http_response_header(q->http, "x-amz-version-id", q->version_id);
	else if (q->marker)
		http_response_header(q->http, "x-amz-version-id", q->obj->version_id);
	if (q->marker)
		http_response_header(q->http, "x-amz-delete-marker", "true");
	s3_empty(q, 204);
}

/* DeleteObject: with versionId that version goes for good; without, by the
 * bucket's versioning, the object goes (never versioned) or a delete
 * marker hides it (meta_object_remove). */
static void op_delete_object(s3_req *q)
{
	meta_bucket mb;
	const char *vid;
	if (need_bucket(q, &mb) != 0 || !version_param(q, &vid) || durability(q) != 0)
		return;
	if (field(q, "x-amz-mfa", NULL)) {
		s3_not_implemented(q, "MFA Delete (x-amz-mfa)");
		return;
	}
	if (vid)
		snprintf(q->version_id, sizeof q->version_id, "%s", vid);
	/* a marker, or the remove's HLC and origin (its tombstone) */
	int rc = new_marker(q);
	if (rc == 0)
		rc = committer_submit(q->o->writer, delete_exec, delete_committed, q);
	if (rc != 0)
		s3_internal(q, rc);
}

static int delete_many_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	q->old.count = 0;
	for (size_t i = 0; i < q->del->count; i++) {
		s3xml_delete_entry *e = &q->del->entries[i];
		s3_del_result *r = &q->del_rc[i];
		*r = (s3_del_result){0};
		int rc;
		if (e->version_id && !meta_version_id_valid(e->version_id)) {
			r->rc = ERR_INVAL;
			continue;
		}
		/* one marker template, its key changed per entry (q->obj's
		 * HLC is shared: the keys differ) */
		meta_object *m = q->obj;
		memcpy(m->key, e->key, e->key_len);
		m->key_len = e->key_len;
		m->version_id[0] = '\0';
		if (e->version_id) {
			rc = meta_object_delete_version(db, m, e->version_id, &r->marker, &q->old);
			if (rc == 0 && r->marker)
				snprintf(r->marker_version, sizeof r->marker_version, "%s", e->version_id);
		} else {
			rc = meta_object_remove(db, m, &r->marker, &q->old);
			if (rc == 0 && r->marker)
				snprintf(r->marker_version, sizeof r->marker_version, "%s", m->version_id);
		}
		if (rc != 0 && rc != ERR_NOTFOUND)
			return rc; /* the whole batch fails: nothing deleted */
	}
	return 0;
}

static void delete_many_committed(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	if (rc != 0) {
		s3_internal(q, rc);
		return;
	}
	buf x;
	buf_init(&x, S3_ANSWER_MAX);
	buf_adds(&x, S3_XML_HEAD "<DeleteResult xmlns=\"" S3_NS "\">");
	blobs_delete_async(q->o, &q->old);
	for (size_t i = 0; i < q->del->count; i++) {
		s3xml_delete_entry *e = &q->del->entries[i];
		if (q->del_rc[i].rc == 0 && q->del->quiet)
			continue;
		const s3_del_result *r = &q->del_rc[i];
		buf_adds(&x, r->rc == 0 ? "<Deleted>" : "<Error>");
		s3xml_elem_n(&x, "Key", e->key, e->key_len);
		if (e->version_id)
			s3xml_elem(&x, "VersionId", e->version_id);
		if (r->rc != 0) {
			s3xml_elem(&x, "Code", "NoSuchVersion");
			s3xml_elem(&x, "Message", "The specified version does not exist.");
		} else if (r->marker) {
			buf_adds(&x, "<DeleteMarker>true</DeleteMarker>");
			s3xml_elem(&x, "DeleteMarkerVersionId", r->marker_version);
		}
		buf_adds(&x, r->rc == 0 ? "</Deleted>" : "</Error>");
	}
	buf_adds(&x, "</DeleteResult>");
	s3_xml(q, 200, &x);
}

static void op_delete_objects(s3_req *q)
{
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0)
		return;
	buf body;
	if (xml_body(q, &body) != 0)
		return;
	char xerr[160];
	int rc = s3xml_parse_delete(body.data ? body.data : "", body.len, &q->del, xerr, sizeof xerr);
	buf_free(&body);
	if (rc != 0) {
		s3_error(q, 400, "MalformedXML", "The XML you provided was not well-formed or did not validate "
			 "against our published schema (%s)", xerr);
		return;
	}
	for (size_t i = 0; i < q->del->count; i++)
		if (q->del->entries[i].key_len > q->o->cfg->objects.max_key_bytes || !q->del->entries[i].key_len) {
			s3_error(q, 400, "KeyTooLongError", "Your key is too long");
			return;
		}
	q->del_rc = calloc(q->del->count, sizeof *q->del_rc);
	if (!q->del_rc || new_marker(q) != 0) {
		s3_internal(q, ERR_NOMEM);
		return;
	}
	rc = committer_submit(q->o->writer, delete_many_exec, delete_many_committed, q);
	if (rc != 0)
		s3_internal(q, rc);
}

/* ------------------------------------------------------------ multipart */

/* Ids sort in creation order (12 hex of ms first), which is the order S3
 * lists one key's uploads in; 80 random bits make them unguessable. */
static void new_upload_id(char out[META_UPLOAD_ID_LEN + 1])
{
	unsigned char r[10];
	util_random(r, sizeof r);
	snprintf(out, 13, "%012llx", (unsigned long long)util_now_ms() & 0xffffffffffffULL);
	util_hex(r, sizeof r, out + 12);
}

/* The upload ?uploadId names, for this request's bucket and key, into
 * q->upload: 0, or answered (404 NoSuchUpload) and -1. The write that
 * follows checks again inside its transaction. */
static int need_upload(s3_req *q)
{
	const char *id = param(q, "uploadId");
	if (!id || strlen(id) != META_UPLOAD_ID_LEN) {
		no_such_upload(q);
		return -1;
	}
	snprintf(q->upload_id, sizeof q->upload_id, "%s", id);
	q->upload = malloc(sizeof *q->upload);
	int rc = q->upload ? meta_upload_get(q->o->reader, id, q->upload) : ERR_NOMEM;
	if (rc == 0 && (strcmp(q->upload->bucket, q->bucket) != 0 || q->upload->key_len != q->key_len ||
			memcmp(q->upload->key, q->key, q->key_len) != 0))
		rc = ERR_NOTFOUND;
	if (rc == ERR_NOTFOUND)
		no_such_upload(q);
	else if (rc != 0)
		s3_internal(q, rc);
	return rc == 0 ? 0 : -1;
}

static int upload_create_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	return meta_upload_create(db, q->upload, q->o->cfg->objects.max_uploads);
}

static void upload_create_done(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	if (rc == ERR_LIMIT) {
		log_warn("s3: multipart upload refused: %d uploads in progress ([objects] max_uploads)",
			 q->o->cfg->objects.max_uploads);
		s3_error(q, 503, "SlowDown", "Please reduce your request rate: too many multipart uploads in "
			 "progress; complete or abort some first.");
		return;
	}
	if (rc == ERR_NOTFOUND) {
		s3_error(q, 404, "NoSuchBucket", "The specified bucket does not exist");
		return;
	}
	if (rc != 0) {
		s3_internal(q, rc);
		return;
	}
	buf x;
	buf_init(&x, 8192);
	buf_adds(&x, S3_XML_HEAD "<InitiateMultipartUploadResult xmlns=\"" S3_NS "\">");
	s3xml_elem(&x, "Bucket", q->bucket);
	s3xml_elem_n(&x, "Key", q->key, q->key_len);
	s3xml_elem(&x, "UploadId", q->upload->upload_id);
	buf_adds(&x, "</InitiateMultipartUploadResult>");
	s3_xml(q, 200, &x);
}

/* CreateMultipartUpload: the object's headers are taken now, as S3 does,
 * and stored with the object at Complete. */
static void op_create_upload(s3_req *q)
{
	objects *o = q->o;
	meta_bucket mb;
	meta_acl acl;
	if (need_bucket(q, &mb) != 0 || refuse_unsupported_put(q) != 0 || canned_acl(q, &acl) != 0)
		return;
	if (acl != META_ACL_PRIVATE) {
		/* an upload keeps no ACL until Complete: set it with PutObjectAcl then */
		s3_not_implemented(q, "x-amz-acl public-read on CreateMultipartUpload (use PutObjectAcl after "
				      "CompleteMultipartUpload)");
		return;
	}
	q->obj = calloc(1, sizeof *q->obj);
	q->upload = calloc(1, sizeof *q->upload);
	if (!q->obj || !q->upload) {
		s3_internal(q, ERR_NOMEM);
		return;
	}
	if (collect_headers(q, q->obj) != 0)
		return;
	meta_upload *u = q->upload;
	char ct[256];
	const char *ctype = field_str(q, "Content-Type", ct, sizeof ct);
	new_upload_id(u->upload_id);
	snprintf(u->bucket, sizeof u->bucket, "%s", q->bucket);
	memcpy(u->key, q->key, q->key_len);
	u->key_len = q->key_len;
	snprintf(u->content_type, sizeof u->content_type, "%s", ctype ? ctype : S3_DEFAULT_CONTENT_TYPE);
	memcpy(u->headers, q->obj->headers, sizeof u->headers);
	snprintf(u->owner, sizeof u->owner, "%s", q->tenant);
	u->created_ms = util_now_ms();
	int rc = committer_submit(o->writer, upload_create_exec, upload_create_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

/* x-amz-copy-source-range "bytes=first-last" within a source of size
 * bytes. 1 (set), 0 (absent), or answered -1. */
static int copy_range(s3_req *q, uint64_t size, uint64_t *off, uint64_t *len)
{
	char v[96];
	const char *r = field_str(q, "x-amz-copy-source-range", v, sizeof v);
	if (!field(q, "x-amz-copy-source-range", NULL))
		return 0;
	long long a = -1, b = -1;
	char *dash = r && strncmp(r, "bytes=", 6) == 0 ? strchr(v + 6, '-') : NULL;
	if (dash) {
		*dash = '\0';
		if (util_parse_int(v + 6, 0, INT64_MAX, &a) != 0 || util_parse_int(dash + 1, 0, INT64_MAX, &b) != 0)
			a = b = -1;
	}
	if (a < 0 || b < a) {
		s3_error(q, 400, "InvalidArgument", "The x-amz-copy-source-range value must be of the form "
			 "bytes=first-last where first and last are the zero-based offsets of the first and last "
			 "bytes to copy");
		return -1;
	}
	if ((uint64_t)b >= size) {
		s3_error(q, 400, "InvalidArgument", "Range specified is not valid for source object of size: %llu",
			 (unsigned long long)size);
		return -1;
	}
	*off = (uint64_t)a;
	*len = (uint64_t)(b - a + 1);
	return 1;
}

/* UploadPart and UploadPartCopy: the part is written through the same
 * worker path as a PUT (checksums, aws-chunked, Content-MD5; a copy reads
 * its source across parts), then recorded (part_exec). */
static void op_upload_part(s3_req *q)
{
	objects *o = q->o;
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0)
		return;
	long long pn;
	const char *p = param(q, "partNumber");
	if (!p || util_parse_int(p, 1, MANIFEST_MAX_PARTS, &pn) != 0) {
		s3_error(q, 400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive");
		return;
	}
	q->part_number = (int)pn;
	q->is_part = true;
	if (field(q, "x-amz-server-side-encryption-customer-algorithm", NULL)) {
		s3_not_implemented(q, "x-amz-server-side-encryption-customer-algorithm");
		return;
	}
	if (need_upload(q) != 0)
		return;
	q->obj = calloc(1, sizeof *q->obj);
	if (!q->obj) {
		s3_internal(q, ERR_NOMEM);
		return;
	}
	size_t max_part = o->cfg->objects.max_put_bytes;
	if (field(q, "x-amz-copy-source", NULL)) {
		char src_spec[2048], dec[2048];
		const char *skey;
		size_t skey_len;
		meta_object *cur = malloc(sizeof *cur);
		if (!cur) {
			s3_internal(q, ERR_NOMEM);
			return;
		}
		if (!field_str(q, "x-amz-copy-source", src_spec, sizeof src_spec)) {
			free(cur);
			s3_error(q, 400, "InvalidArgument", "Copy Source must mention the source bucket and key: "
				 "sourcebucket/sourcekey");
			return;
		}
		if (copy_source(q, src_spec, dec, &skey, &skey_len, cur) != 0) {
			free(cur);
			return;
		}
		uint64_t off = 0, len = cur->size;
		if (copy_range(q, cur->size, &off, &len) < 0) {
			free(cur);
			return;
		}
		if (len > max_part) {
			free(cur);
			s3_error(q, 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size");
			return;
		}
		int rc = source_load(o, cur, off, len, &q->src);
		free(cur);
		if (rc == ERR_NOTFOUND) {
			s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
			return;
		}
		if (rc != 0) {
			s3_internal(q, rc);
			return;
		}
		q->is_copy = true;
	} else {
		if (field(q, "x-amz-copy-source-range", NULL)) {
			s3_error(q, 400, "InvalidArgument", "x-amz-copy-source-range needs x-amz-copy-source");
			return;
		}
		if (integrity_headers(q) != 0)
			return;
		q->body = http_request_body(q->http, &q->body_len);
		if ((q->auth.payload == SIGV4_PAYLOAD_SHA256 || q->auth.payload == SIGV4_PAYLOAD_UNSIGNED) &&
		    q->body_len > max_part) {
			s3_error(q, 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size");
			return;
		}
	}
	int rc = workers_submit(o->pool, WORKERS_BULK, put_work, put_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

static int complete_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	q->old.count = 0;
	return meta_upload_complete(db, q->upload_id, q->cparts, q->ncparts, MANIFEST_MIN_PART,
				    q->o->cfg->objects.max_object_bytes, q->obj, &q->bad_part, &q->old);
}

static void complete_done(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	if (rc == ERR_NOTFOUND) {
		no_such_upload(q);
		return;
	}
	if (rc == ERR_INVAL) {
		s3_error(q, 400, "InvalidPart", "One or more of the specified parts could not be found. The part "
			 "may not have been uploaded, or the specified entity tag may not match the part's entity "
			 "tag. (part %d)", q->bad_part);
		return;
	}
	if (rc == ERR_CONFLICT) {
		s3_error(q, 400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object "
			 "size. (part %d is under 5 MiB and not the last)", q->bad_part);
		return;
	}
	if (rc == ERR_LIMIT) {
		s3_error(q, 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size "
			 "(%llu bytes, [objects] max_object_bytes)",
			 (unsigned long long)q->o->cfg->objects.max_object_bytes);
		return;
	}
	if (rc != 0) {
		s3_internal(q, rc);
		return;
	}
	/* the replaced object's blobs and the upload's unlisted parts */
	blobs_delete_async(q->o, &q->old);
	if (q->versioned)
		http_response_header(q->http, "x-amz-version-id", q->obj->version_id);
	char etag[48], host[256];
	snprintf(etag, sizeof etag, "\"%s\"", q->obj->etag);
	const char *h = field_str(q, "Host", host, sizeof host);
	buf x;
	buf_init(&x, 16384);
	buf_adds(&x, S3_XML_HEAD "<CompleteMultipartUploadResult xmlns=\"" S3_NS "\">");
	buf loc;
	buf_init(&loc, 8192);
	buf_printf(&loc, "https://%s/%s/", h ? h : q->o->self->s3_listen, q->bucket);
	url_encode(&loc, q->key, q->key_len);
	s3xml_elem_n(&x, "Location", loc.data ? loc.data : "", loc.len);
	buf_free(&loc);
	s3xml_elem(&x, "Bucket", q->bucket);
	s3xml_elem_n(&x, "Key", q->key, q->key_len);
	s3xml_elem(&x, "ETag", etag);
	buf_adds(&x, "</CompleteMultipartUploadResult>");
	s3_xml(q, 200, &x);
}

/* CompleteMultipartUpload: the XML list of parts, checked for order here
 * and against the upload's parts in the write (meta_upload_complete). */
static void op_complete(s3_req *q)
{
	objects *o = q->o;
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0)
		return;
	if (field(q, "If-None-Match", NULL) || field(q, "If-Match", NULL)) {
		s3_not_implemented(q, "conditional CompleteMultipartUpload");
		return;
	}
	q->versioned = mb.versioning != META_VERSIONING_OFF;
	if (need_upload(q) != 0)
		return;
	buf body;
	buf_init(&body, S3XML_MAX_BODY);
	if (small_body(q, &body) != 0) {
		buf_free(&body);
		return;
	}
	s3xml_complete *c = NULL;
	char xerr[160];
	int rc = s3xml_parse_complete(body.data ? body.data : "", body.len, &c, xerr, sizeof xerr);
	buf_free(&body);
	if (rc == ERR_NOMEM) {
		s3_internal(q, rc);
		return;
	}
	if (rc != 0) {
		s3_error(q, 400, "MalformedXML", "The XML you provided was not well-formed or did not validate "
			 "against our published schema (%s)", xerr);
		return;
	}
	for (size_t i = 1; i < c->count; i++)
		if (c->parts[i].number <= c->parts[i - 1].number) {
			s3xml_complete_free(&c);
			s3_error(q, 400, "InvalidPartOrder", "The list of parts was not in ascending order. Parts "
				 "must be ordered by part number.");
			return;
		}
	q->cparts = calloc(c->count, sizeof *q->cparts);
	q->obj = calloc(1, sizeof *q->obj);
	if (!q->cparts || !q->obj) {
		s3xml_complete_free(&c);
		s3_internal(q, ERR_NOMEM);
		return;
	}
	q->ncparts = c->count;
	for (size_t i = 0; i < c->count; i++) {
		q->cparts[i].number = c->parts[i].number;
		snprintf(q->cparts[i].etag, sizeof q->cparts[i].etag, "%s", c->parts[i].etag);
	}
	s3xml_complete_free(&c);
	meta_object *ob = q->obj;
	snprintf(ob->bucket, sizeof ob->bucket, "%s", q->bucket);
	memcpy(ob->key, q->key, q->key_len);
	ob->key_len = q->key_len;
	ob->mtime_ms = util_now_ms();
	hlc_encode(hlc_now(o->clock), ob->hlc);
	snprintf(ob->origin, sizeof ob->origin, "%s", o->self->name);
	rc = committer_submit(o->writer, complete_exec, complete_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

static int abort_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	q->old.count = 0;
	return meta_upload_abort(db, q->upload_id, &q->old);
}

static void abort_done(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	if (rc == ERR_NOTFOUND)
		no_such_upload(q);
	else if (rc != 0)
		s3_internal(q, rc);
	else {
		blobs_delete_async(q->o, &q->old);
		s3_empty(q, 204);
	}
}

static void op_abort(s3_req *q)
{
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0 || need_upload(q) != 0)
		return;
	int rc = committer_submit(q->o->writer, abort_exec, abort_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

/* An integer query parameter in [min, max] (default def when absent). true,
 * or answered (InvalidArgument) and false. */
static bool int_param(s3_req *q, const char *name, long long min, long long max, long long def, long long *out)
{
	const char *v = param(q, name);
	*out = def;
	if (!v)
		return true;
	if (util_parse_int(v, min, max, out) != 0) {
		s3_error(q, 400, "InvalidArgument", "Provided %s not an integer or within integer range", name);
		return false;
	}
	return true;
}

static void op_list_parts(s3_req *q)
{
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0 || need_upload(q) != 0)
		return;
	long long marker, max;
	if (!int_param(q, "part-number-marker", 0, INT32_MAX, 0, &marker) ||
	    !int_param(q, "max-parts", 0, INT32_MAX, S3_MAX_KEYS, &max))
		return;
	if (max > S3_MAX_KEYS)
		max = S3_MAX_KEYS;
	if (marker > MANIFEST_MAX_PARTS)
		marker = MANIFEST_MAX_PARTS;
	buf x, parts;
	buf_init(&x, S3_ANSWER_MAX);
	buf_init(&parts, S3_ANSWER_MAX);
	int after = (int)marker, last = 0, rc = 0;
	long long count = 0;
	bool truncated = false;
	meta_part p;
	while ((rc = meta_part_next(q->o->reader, q->upload_id, after, &p)) == 0) {
		if (count == max) {
			truncated = true;
			break;
		}
		char when[32];
		util_iso8601(p.mtime_ms, when);
		buf_printf(&parts, "<Part><PartNumber>%d</PartNumber>", p.number);
		s3xml_elem(&parts, "LastModified", when);
		buf_printf(&parts, "<ETag>&quot;%s&quot;</ETag><Size>%llu</Size></Part>", p.etag,
			   (unsigned long long)p.size);
		after = last = p.number;
		count++;
	}
	if (rc != ERR_NOTFOUND && rc != 0) {
		buf_free(&x);
		buf_free(&parts);
		s3_internal(q, rc);
		return;
	}
	const meta_upload *u = q->upload;
	buf_adds(&x, S3_XML_HEAD "<ListPartsResult xmlns=\"" S3_NS "\">");
	s3xml_elem(&x, "Bucket", q->bucket);
	s3xml_elem_n(&x, "Key", q->key, q->key_len);
	s3xml_elem(&x, "UploadId", u->upload_id);
	buf_adds(&x, "<Initiator>");
	s3xml_elem(&x, "ID", u->owner);
	s3xml_elem(&x, "DisplayName", u->owner);
	buf_adds(&x, "</Initiator>");
	owner_xml(&x, u->owner);
	buf_adds(&x, "<StorageClass>STANDARD</StorageClass>");
	buf_printf(&x, "<PartNumberMarker>%lld</PartNumberMarker><NextPartNumberMarker>%d</NextPartNumberMarker>"
		       "<MaxParts>%lld</MaxParts><IsTruncated>%s</IsTruncated>",
		   marker, last, max, truncated ? "true" : "false");
	if (parts.len)
		buf_add(&x, parts.data, parts.len);
	buf_adds(&x, "</ListPartsResult>");
	buf_free(&parts);
	s3_xml(q, 200, &x);
}

/* ListMultipartUploads: uploads in (key, upload id) order from after the
 * markers, with the prefix; keys holding the delimiter after the prefix
 * fold into common prefixes (one seek skips each), as list_walk does. */
static void op_list_uploads(s3_req *q)
{
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0)
		return;
	const char *enc = param(q, "encoding-type");
	if (enc && strcmp(enc, "url") != 0) {
		s3_error(q, 400, "InvalidArgument", "Invalid Encoding Method specified in Request");
		return;
	}
	bool url = enc != NULL;
	const char *prefix = param(q, "prefix"), *delim = param(q, "delimiter");
	const char *kmark = param(q, "key-marker"), *umark = param(q, "upload-id-marker");
	prefix = prefix ? prefix : "";
	delim = delim ? delim : "";
	size_t plen = strlen(prefix), dlen = strlen(delim);
	long long max;
	if (!int_param(q, "max-uploads", 0, INT32_MAX, S3_MAX_KEYS, &max))
		return;
	if (max > S3_MAX_KEYS)
		max = S3_MAX_KEYS;
	if (kmark && !kmark[0])
		kmark = NULL;
	meta_upload *u = malloc(sizeof *u);
	char *cur = malloc(META_KEY_MAX + 2), cur_id[META_UPLOAD_ID_LEN + 2];
	buf x, entries, last_key;
	buf_init(&x, S3_ANSWER_MAX);
	buf_init(&entries, S3_ANSWER_MAX);
	buf_init(&last_key, META_KEY_MAX + 8);
	char last_id[META_UPLOAD_ID_LEN + 1] = "";
	int rc = u && cur ? 0 : ERR_NOMEM;
	size_t cur_len = 0;
	if (rc == 0 && kmark && strlen(kmark) <= META_KEY_MAX && bytes_cmp(kmark, strlen(kmark), prefix, plen) >= 0) {
		cur_len = strlen(kmark);
		memcpy(cur, kmark, cur_len);
		/* after the marker's uploads ("g" sorts after every hex id), or
		 * after one of them */
		snprintf(cur_id, sizeof cur_id, "%s", umark && umark[0] ? umark : "g");
	} else if (rc == 0) {
		cur_len = plen <= META_KEY_MAX ? plen : META_KEY_MAX;
		memcpy(cur, prefix, cur_len);
		cur_id[0] = '\0';
	}
	long long count = 0;
	bool truncated = false;
	while (rc == 0) {
		rc = meta_upload_next(q->o->reader, q->bucket, cur, cur_len, cur_id, u);
		if (rc == ERR_NOTFOUND) {
			rc = 0;
			break;
		}
		if (rc != 0 || u->key_len < plen || memcmp(u->key, prefix, plen) != 0)
			break;
		const char *cp = NULL;
		size_t cp_len = 0;
		if (dlen) {
			const char *d = memmem(u->key + plen, u->key_len - plen, delim, dlen);
			if (d) {
				cp = u->key;
				cp_len = (size_t)(d - u->key) + dlen;
			}
		}
		if (!(cp && kmark && bytes_cmp(cp, cp_len, kmark, strlen(kmark)) <= 0)) {
			if (count == max) {
				truncated = true;
				break;
			}
			count++;
			buf_reset(&last_key);
			if (cp) {
				buf_add(&last_key, cp, cp_len);
				last_id[0] = '\0';
				buf_adds(&entries, "<CommonPrefixes>");
				xml_key(&entries, "Prefix", cp, cp_len, url);
				buf_adds(&entries, "</CommonPrefixes>");
			} else {
				buf_add(&last_key, u->key, u->key_len);
				snprintf(last_id, sizeof last_id, "%s", u->upload_id);
				char when[32];
				util_iso8601(u->created_ms, when);
				buf_adds(&entries, "<Upload>");
				xml_key(&entries, "Key", u->key, u->key_len, url);
				s3xml_elem(&entries, "UploadId", u->upload_id);
				buf_adds(&entries, "<Initiator>");
				s3xml_elem(&entries, "ID", u->owner);
				s3xml_elem(&entries, "DisplayName", u->owner);
				buf_adds(&entries, "</Initiator>");
				owner_xml(&entries, u->owner);
				buf_adds(&entries, "<StorageClass>STANDARD</StorageClass>");
				s3xml_elem(&entries, "Initiated", when);
				buf_adds(&entries, "</Upload>");
			}
		}
		if (cp) { /* past every key under the prefix, as list_walk */
			memcpy(cur, cp, cp_len);
			cur_len = cp_len;
			while (cur_len && (unsigned char)cur[cur_len - 1] == 0xff)
				cur_len--;
			if (!cur_len)
				break;
			cur[cur_len - 1] = (char)((unsigned char)cur[cur_len - 1] + 1);
			cur_id[0] = '\0';
		} else {
			memcpy(cur, u->key, u->key_len);
			cur_len = u->key_len;
			snprintf(cur_id, sizeof cur_id, "%s", u->upload_id);
		}
	}
	free(u);
	free(cur);
	if (rc != 0) {
		buf_free(&x);
		buf_free(&entries);
		buf_free(&last_key);
		s3_internal(q, rc);
		return;
	}
	buf_adds(&x, S3_XML_HEAD "<ListMultipartUploadsResult xmlns=\"" S3_NS "\">");
	s3xml_elem(&x, "Bucket", q->bucket);
	xml_key(&x, "KeyMarker", kmark ? kmark : "", kmark ? strlen(kmark) : 0, url);
	s3xml_elem(&x, "UploadIdMarker", umark && kmark ? umark : "");
	if (truncated) {
		xml_key(&x, "NextKeyMarker", last_key.data ? last_key.data : "", last_key.len, url);
		s3xml_elem(&x, "NextUploadIdMarker", last_id);
	}
	xml_key(&x, "Prefix", prefix, plen, url);
	if (dlen)
		xml_key(&x, "Delimiter", delim, dlen, url);
	buf_printf(&x, "<MaxUploads>%lld</MaxUploads><IsTruncated>%s</IsTruncated>", max,
		   truncated ? "true" : "false");
	if (url)
		buf_adds(&x, "<EncodingType>url</EncodingType>");
	if (entries.len)
		buf_add(&x, entries.data, entries.len);
	buf_adds(&x, "</ListMultipartUploadsResult>");
	buf_free(&entries);
	buf_free(&last_key);
	s3_xml(q, 200, &x);
}

/* --- the expiry sweep --- */

#define S3_EXPIRY_BATCH 1000 /* uploads aborted per sweep (one write) */

typedef struct expiry_job {
	objects *o;
	int64_t cutoff_ms;
	meta_blobs old;
	int aborted;
} expiry_job;

static int expiry_exec(db_conn *db, void *arg)
{
	expiry_job *j = arg;
	j->old.count = 0;
	return meta_upload_expire(db, j->cutoff_ms, S3_EXPIRY_BATCH, &j->old, &j->aborted);
}

static void expiry_done(void *arg, int rc, uint64_t seq)
{
	expiry_job *j = arg;
	objects *o = j->o;
	if (rc != 0)
		log_warn("s3: the multipart expiry sweep failed (%s); the next one retries", err_str(rc));
	else if (j->aborted) {
		log_info("s3: aborted %d multipart upload(s) older than %d s ([objects] multipart_expiry_s)",
			 j->aborted, o->cfg->objects.multipart_expiry_s);
		blobs_delete_async(o, &j->old);
	}
	meta_blobs_free(&j->old);
	o->expiry_busy = false;
	free(j);
}

/* Periodic: abort the uploads older than multipart_expiry_s (a batch per
 * tick; one sweep's write at a time). */
static void expiry_tick(evutil_socket_t fd, short what, void *arg)
{
	objects *o = arg;
	if (o->expiry_busy)
		return;
	expiry_job *j = calloc(1, sizeof *j);
	if (!j)
		return; /* the next tick retries */
	j->o = o;
	j->cutoff_ms = util_now_ms() - (int64_t)o->cfg->objects.multipart_expiry_s * 1000;
	if (committer_submit(o->writer, expiry_exec, expiry_done, j) != 0) {
		free(j);
		return;
	}
	o->expiry_busy = true;
}

/* ------------------------------------------------------------ routing */

static int acl_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	if (!q->key) {
		char stamp[META_STAMP_LEN + 1];
		bucket_stamp(q, stamp);
		return meta_bucket_set_acl(db, q->bucket, q->new_acl, stamp);
	}
	return meta_object_set_acl(db, q->bucket, q->key, q->key_len, q->version_id[0] ? q->version_id : NULL,
				   q->new_acl);
}

static void acl_done(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	if (rc == ERR_NOTFOUND && q->key && q->version_id[0])
		s3_error(q, 404, "NoSuchVersion", "The specified version does not exist.");
	else if (rc == ERR_NOTFOUND && q->key)
		s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
	else if (rc == ERR_NOTFOUND)
		s3_error(q, 404, "NoSuchBucket", "The specified bucket does not exist");
	else if (rc != 0)
		s3_internal(q, rc);
	else
		s3_empty(q, 200);
}

/* PutBucketAcl / PutObjectAcl with a canned ACL (x-amz-acl); an
 * AccessControlPolicy body (grants) is not offered. */
static void op_put_acl(s3_req *q)
{
	meta_bucket mb;
	const char *vid;
	if (need_bucket(q, &mb) != 0 || !version_param(q, &vid))
		return;
	size_t len;
	http_request_body(q->http, &len);
	if (len) {
		s3_not_implemented(q, "an AccessControlPolicy body (grants): only the canned ACLs private and "
				      "public-read, in x-amz-acl");
		return;
	}
	if (canned_acl(q, &q->new_acl) != 0)
		return;
	if (vid)
		snprintf(q->version_id, sizeof q->version_id, "%s", vid);
	int rc = committer_submit(q->o->writer, acl_exec, acl_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

static void op_get_acl(s3_req *q)
{
	meta_bucket mb;
	const char *vid;
	if (need_bucket(q, &mb) != 0 || !version_param(q, &vid))
		return;
	meta_acl acl = mb.acl;
	if (q->key) {
		meta_object *ob = malloc(sizeof *ob);
		int rc = !ob ? ERR_NOMEM
			 : vid ? meta_object_version(q->o->reader, q->bucket, q->key, q->key_len, vid, ob)
			       : meta_object_get(q->o->reader, q->bucket, q->key, q->key_len, ob);
		if (rc == 0 && ob->delete_marker)
			rc = ERR_NOTFOUND;
		if (rc == 0)
			acl = ob->acl;
		free(ob);
		if (rc == ERR_NOTFOUND) {
			if (vid)
				s3_error(q, 404, "NoSuchVersion", "The specified version does not exist.");
			else
				s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
			return;
		}
		if (rc != 0) {
			s3_internal(q, rc);
			return;
		}
	}
	acl_xml(q, acl);
}

/* The bucket exists and is the caller's (true), or the error is answered
 * (false). */
static bool need_bucket_exists(s3_req *q)
{
	meta_bucket mb;
	return need_bucket(q, &mb) == 0;
}

/* GetObjectTagging: this store keeps no tags (x-amz-tagging and
 * PutObjectTagging answer NotImplemented), so an existing object's tag set
 * is empty; said as S3 says it. awscli's S3-to-S3 `cp` reads it by default
 * to copy the tags along. */
static void op_get_tagging(s3_req *q)
{
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0)
		return;
	meta_object *ob = malloc(sizeof *ob);
	int rc = ob ? meta_object_get(q->o->reader, q->bucket, q->key, q->key_len, ob) : ERR_NOMEM;
	free(ob);
	if (rc == ERR_NOTFOUND) {
		s3_error(q, 404, "NoSuchKey", "The specified key does not exist.");
		return;
	}
	if (rc != 0) {
		s3_internal(q, rc);
		return;
	}
	buf x;
	buf_init(&x, 256);
	buf_adds(&x, S3_XML_HEAD "<Tagging xmlns=\"" S3_NS "\"><TagSet></TagSet></Tagging>");
	s3_xml(q, 200, &x);
}

/* ------------------------------------------------------------ CORS */

/* The bucket's CORS rules, parsed (stored already validated, so a parse
 * failure here cannot happen and is logged). 0, ERR_NOTFOUND (no bucket:
 * *bucket_found false; or no configuration), ERR_DB, ERR_NOMEM. */
static int load_cors(objects *o, const char *bucket, bool *bucket_found, s3cors **out)
{
	*out = NULL;
	*bucket_found = false;
	meta_bucket b;
	int rc = meta_bucket_get(o->reader, bucket, &b);
	if (rc != 0)
		return rc;
	*bucket_found = true;
	if (!b.has_cors)
		return ERR_NOTFOUND;
	char *xml = malloc(META_CORS_MAX + 1);
	if (!xml)
		return ERR_NOMEM;
	rc = meta_bucket_cors(o->reader, bucket, xml, META_CORS_MAX + 1);
	if (rc == 0) {
		char err[160];
		rc = s3xml_parse_cors(xml, strlen(xml), out, err, sizeof err);
		if (rc != 0)
			log_error("s3: bucket %s: its stored CORS configuration does not parse (%s)", bucket, err);
	}
	free(xml);
	return rc;
}

static void cors_refused(s3_req *q, const char *why)
{
	s3_error(q, 403, "AccessForbidden", "CORSResponse: %s", why);
}

/* OPTIONS: a browser's preflight, answered from the bucket's rules without
 * authentication (a preflight carries none), as S3. */
static void op_preflight(s3_req *q)
{
	char origin[1024], meth[16], hdrs[4096];
	const char *org = field_str(q, "Origin", origin, sizeof origin);
	const char *rm = field_str(q, "Access-Control-Request-Method", meth, sizeof meth);
	const char *rh = field_str(q, "Access-Control-Request-Headers", hdrs, sizeof hdrs);
	if (!field(q, "Origin", NULL) || !field(q, "Access-Control-Request-Method", NULL)) {
		s3_error(q, 400, "BadRequest", "Insufficient information. Origin request header needed.");
		return;
	}
	if (!q->has_bucket || !org || !rm || (field(q, "Access-Control-Request-Headers", NULL) && !rh)) {
		cors_refused(q, "This CORS request is not allowed.");
		return;
	}
	s3cors *c = NULL;
	bool found;
	int rc = load_cors(q->o, q->bucket, &found, &c);
	if (rc == ERR_NOTFOUND) {
		cors_refused(q, found ? "CORS is not enabled for this bucket." : "Bucket not found");
		return;
	}
	if (rc != 0) {
		s3_internal(q, rc);
		return;
	}
	const s3cors_rule *r = s3cors_match(c, org, s3cors_method(rm), rh);
	buf lines;
	buf_init(&lines, 16384);
	if (!r || s3cors_headers(r, org, true, rh, &lines) != 0) {
		buf_free(&lines);
		s3cors_free(&c);
		cors_refused(q, "This CORS request is not allowed. This is usually because the evalution of Origin, "
			     "request method / Access-Control-Request-Method or Access-Control-Request-Headers are "
			     "not whitelisted by the resource's CORS spec.");
		return;
	}
	http_response_header_lines(q->http, lines.data, lines.len);
	buf_free(&lines);
	s3cors_free(&c);
	s3_empty(q, 200);
}

/* An actual cross-origin request (Origin given): the Access-Control-*
 * headers of the first rule allowing its origin and method join whatever
 * answer follows (errors too, so a page can read why). No rule, no
 * header: the browser then withholds the answer from the page. */
static void cors_actual(s3_req *q)
{
	char origin[1024];
	const char *org = field_str(q, "Origin", origin, sizeof origin);
	if (!org || !q->has_bucket)
		return;
	s3cors *c = NULL;
	bool found;
	if (load_cors(q->o, q->bucket, &found, &c) != 0)
		return;
	const s3cors_rule *r = s3cors_match(c, org, s3cors_method(q->m->method), NULL);
	buf lines;
	buf_init(&lines, 16384);
	if (r && s3cors_headers(r, org, false, NULL, &lines) == 0)
		http_response_header_lines(q->http, lines.data, lines.len);
	buf_free(&lines);
	s3cors_free(&c);
}

static int cors_exec(db_conn *db, void *arg)
{
	s3_req *q = arg;
	char stamp[META_STAMP_LEN + 1];
	bucket_stamp(q, stamp);
	return meta_bucket_set_cors(db, q->bucket, q->query_xml, q->query_xml ? strlen(q->query_xml) : 0, stamp);
}

static void cors_done(void *arg, int rc, uint64_t seq)
{
	s3_req *q = arg;
	bool put = q->query_xml != NULL;
	if (rc == ERR_NOTFOUND)
		s3_error(q, 404, "NoSuchBucket", "The specified bucket does not exist");
	else if (rc != 0)
		s3_internal(q, rc);
	else
		s3_empty(q, put ? 200 : 204);
}

/* PutBucketCors: the rules are checked (s3xml_parse_cors) and stored as S3
 * would return them. */
static void op_put_cors(s3_req *q)
{
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0)
		return;
	buf body;
	if (xml_body(q, &body) != 0)
		return;
	s3cors *c = NULL;
	char xerr[160];
	int rc = s3xml_parse_cors(body.data ? body.data : "", body.len, &c, xerr, sizeof xerr);
	buf_free(&body);
	if (rc == ERR_NOMEM) {
		s3_internal(q, rc);
		return;
	}
	if (rc == ERR_INVAL) {
		s3_error(q, 400, "InvalidRequest", "%s", xerr);
		return;
	}
	if (rc != 0) {
		malformed_xml(q, xerr);
		return;
	}
	buf x;
	buf_init(&x, META_CORS_MAX);
	rc = s3cors_to_xml(c, &x);
	s3cors_free(&c);
	if (rc == 0)
		rc = buf_addc(&x, '\0');
	if (rc != 0) {
		buf_free(&x);
		malformed_xml(q, "the configuration is too large");
		return;
	}
	q->query_xml = x.data; /* taken: freed with the request */
	x.data = NULL;
	buf_free(&x);
	rc = committer_submit(q->o->writer, cors_exec, cors_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

static void op_get_cors(s3_req *q)
{
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0)
		return;
	s3cors *c = NULL;
	bool found;
	int rc = load_cors(q->o, q->bucket, &found, &c);
	if (rc == ERR_NOTFOUND) {
		s3_error(q, 404, "NoSuchCORSConfiguration", "The CORS configuration does not exist");
		return;
	}
	if (rc != 0) {
		s3_internal(q, rc);
		return;
	}
	buf x;
	buf_init(&x, META_CORS_MAX + 4096);
	rc = s3cors_to_xml(c, &x);
	s3cors_free(&c);
	if (rc != 0) {
		buf_free(&x);
		s3_internal(q, rc);
		return;
	}
	s3_xml(q, 200, &x);
}

static void op_delete_cors(s3_req *q)
{
	meta_bucket mb;
	if (need_bucket(q, &mb) != 0)
		return;
	int rc = committer_submit(q->o->writer, cors_exec, cors_done, q);
	if (rc != 0)
		s3_internal(q, rc);
}

/* Query parameters this slice understands; every other one names a
 * sub-resource or an option we do not have: NotImplemented. */
static bool param_known(const char *name)
{
	static const char *const known[] = {
		"prefix", "delimiter", "marker", "max-keys", "list-type", "continuation-token", "start-after",
		"fetch-owner", "encoding-type", "key-marker", "version-id-marker", "versionId", "x-id",
		"location", "versions", "delete", "acl", "versioning",
		"uploads", "uploadId", "partNumber", "part-number-marker", "max-parts", "upload-id-marker",
		"max-uploads", "tagging", "cors",
	};
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(name, known[i]) == 0)
			return true;
	return strncmp(name, "response-", 9) == 0 || strncmp(name, "X-Amz-", 6) == 0;
}

static void route(s3_req *q)
{
	const char *meth = q->m->method;
	bool get = strcmp(meth, "GET") == 0, put = strcmp(meth, "PUT") == 0, del = strcmp(meth, "DELETE") == 0,
	     post = strcmp(meth, "POST") == 0;
	for (size_t i = 0; i < q->nparams; i++)
		if (!param_known(q->params[i].name)) {
			char what[96];
			snprintf(what, sizeof what, "'%.60s' (see docs/OBJECTS.md, not yet)", q->params[i].name);
			s3_not_implemented(q, what);
			return;
		}
	bool acl = param(q, "acl"), versioning = param(q, "versioning"), location = param(q, "location"),
	     versions = param(q, "versions"), delete = param(q, "delete"), uploads = param(q, "uploads"),
	     upload_id = param(q, "uploadId"), part_number = param(q, "partNumber");
	if (!get && !q->head && !put && !del && !post) {
		s3_error(q, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
		return;
	}
	if (!q->has_bucket) {
		if (get)
			op_list_buckets(q);
		else
			s3_error(q, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
		return;
	}
	if (q->key && q->key_len > q->o->cfg->objects.max_key_bytes) {
		s3_error(q, 400, "KeyTooLongError", "Your key is too long");
		return;
	}
	if (param(q, "cors")) {
		if (q->key)
			s3_not_implemented(q, "?cors on an object (CORS is a bucket's configuration)");
		else if (put)
			op_put_cors(q);
		else if (get)
			op_get_cors(q);
		else if (del)
			op_delete_cors(q);
		else
			s3_error(q, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
		return;
	}
	if (!q->key && param(q, "tagging")) {
		/* no bucket keeps tags here: GetBucketTagging says so as S3 does */
		if (get && need_bucket_exists(q))
			s3_error(q, 404, "NoSuchTagSet", "The TagSet does not exist");
		else if (!get)
			s3_not_implemented(q, "bucket tags (PutBucketTagging, DeleteBucketTagging)");
		return;
	}
	if (!q->key) {
		if (uploads || upload_id || part_number) {
			/* only ListMultipartUploads is a bucket's; the rest name an object */
			if (get && uploads && !upload_id && !part_number)
				op_list_uploads(q);
			else
				s3_error(q, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
			return;
		}
		if (put && acl)
			op_put_acl(q);
		else if (put && versioning)
			op_put_versioning(q);
		else if (put && !location && !versions && !delete)
			op_create_bucket(q);
		else if (q->head)
			op_head_bucket(q);
		else if (get && location)
			op_bucket_location(q);
		else if (get && versioning)
			op_bucket_versioning(q);
		else if (get && acl)
			op_get_acl(q);
		else if (get && versions)
			op_list(q, 3);
		else if (get && !delete) {
			const char *lt = param(q, "list-type");
			if (lt && strcmp(lt, "2") != 0)
				s3_error(q, 400, "InvalidArgument", "Invalid List Type specified in Request");
			else
				op_list(q, lt ? 2 : 1);
		} else if (del && !acl && !versioning && !location && !versions && !delete)
			op_delete_bucket(q);
		else if (post && delete)
			op_delete_objects(q);
		else
			s3_error(q, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
		return;
	}
	if (versioning || location || versions || delete) {
		s3_not_implemented(q, "this sub-resource on an object");
		return;
	}
	if (param(q, "tagging")) {
		if (get)
			op_get_tagging(q);
		else
			s3_not_implemented(q, "object tags (PutObjectTagging, DeleteObjectTagging); "
					      "GetObjectTagging answers the empty tag set");
		return;
	}
	if (uploads || upload_id || part_number) {
		if (post && uploads && !upload_id && !part_number)
			op_create_upload(q);
		else if (post && upload_id && !uploads && !part_number)
			op_complete(q);
		else if (put && upload_id && part_number && !uploads)
			op_upload_part(q);
		else if (put && part_number && !upload_id)
			s3_error(q, 400, "InvalidRequest", "partNumber needs an uploadId (UploadPart).");
		else if (get && upload_id && !uploads && !part_number)
			op_list_parts(q);
		else if (del && upload_id && !uploads && !part_number)
			op_abort(q);
		else if ((get || q->head) && part_number)
			s3_not_implemented(q, "partNumber on GET/HEAD (read with Range instead)");
		else
			s3_error(q, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
		return;
	}
	if (put && acl)
		op_put_acl(q);
	else if (put)
		op_put_object(q);
	else if (get && acl)
		op_get_acl(q);
	else if (get || q->head)
		op_get_object(q);
	else if (del && !acl)
		op_delete_object(q);
	else if (post)
		s3_not_implemented(q, "POST on an object (browser form uploads: not yet)");
	else
		s3_error(q, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
}

/*
 * An unsigned request: only reads of what is public-read (docs/SECURITY.md
 * "S3 anonymous access"): GET/HEAD of an object whose ACL or whose
 * bucket's ACL is public-read (versionId allowed), and HEAD/ListObjects
 * (v1, v2) of a public-read bucket. Everything else is 403 AccessDenied,
 * decided before any write path is reached; the operations themselves
 * check the ACLs (q->anonymous).
 */
static void route_anonymous(s3_req *q)
{
	static const char *const list_params[] = {"prefix", "delimiter", "marker", "max-keys", "list-type",
						  "continuation-token", "start-after", "fetch-owner", "encoding-type"};
	bool get = strcmp(q->m->method, "GET") == 0;
	if ((!get && !q->head) || !q->has_bucket) {
		access_denied(q);
		return;
	}
	for (size_t i = 0; i < q->nparams; i++) {
		const char *name = q->params[i].name;
		bool ok = false;
		if (q->key) {
			if (strncmp(name, "response-", 9) == 0) {
				s3_error(q, 400, "InvalidRequest", "Request specific response headers cannot be used "
					 "for anonymous GET requests.");
				return;
			}
			ok = strcmp(name, "versionId") == 0 || strcmp(name, "x-id") == 0;
		} else {
			for (size_t k = 0; k < sizeof list_params / sizeof list_params[0]; k++)
				ok = ok || strcmp(name, list_params[k]) == 0;
		}
		if (!ok) {
			access_denied(q);
			return;
		}
	}
	q->anonymous = true;
	if (q->key) {
		if (q->key_len > q->o->cfg->objects.max_key_bytes)
			s3_error(q, 400, "KeyTooLongError", "Your key is too long");
		else
			op_get_object(q);
	} else if (q->head) {
		op_head_bucket(q);
	} else {
		const char *lt = param(q, "list-type");
		if (lt && strcmp(lt, "2") != 0)
			s3_error(q, 400, "InvalidArgument", "Invalid List Type specified in Request");
		else
			op_list(q, lt ? 2 : 1);
	}
}

/* Split the target into bucket, key and parameters (path-style, or the
 * bucket from Host under [objects] domain). 0, or answered -1. */
static int parse_target(s3_req *q)
{
	const char *t = q->m->target;
	if (t[0] != '/') {
		s3_error(q, 400, "InvalidURI", "Couldn't parse the specified URI.");
		return -1;
	}
	const char *qm = strchr(t, '?');
	size_t plen = qm ? (size_t)(qm - t) : strlen(t);
	char *path = malloc(plen + 1);
	if (!path) {
		s3_internal(q, ERR_NOMEM);
		return -1;
	}
	long n = pct_decode(t, plen, path, false);
	if (n < 0) {
		free(path);
		s3_error(q, 400, "InvalidURI", "Couldn't parse the specified URI.");
		return -1;
	}
	if (qm && qm[1]) {
		size_t qlen = strlen(qm + 1);
		q->query = malloc(qlen + 1);
		if (!q->query) {
			free(path);
			s3_internal(q, ERR_NOMEM);
			return -1;
		}
		memcpy(q->query, qm + 1, qlen + 1);
		for (char *p = q->query, *next; p; p = next) {
			next = strchr(p, '&');
			if (next)
				*next++ = '\0';
			if (!*p)
				continue;
			if (q->nparams == S3_PARAMS_MAX) {
				free(path);
				s3_error(q, 400, "InvalidArgument", "Too many query parameters.");
				return -1;
			}
			char *eq = strchr(p, '=');
			if (eq)
				*eq = '\0';
			char *val = eq ? eq + 1 : p + strlen(p);
			if (pct_decode(p, strlen(p), p, true) < 0 || pct_decode(val, strlen(val), val, true) < 0) {
				free(path);
				s3_error(q, 400, "InvalidURI", "Couldn't parse the specified URI.");
				return -1;
			}
			q->params[q->nparams++] = (s3_param){.name = p, .value = val};
		}
	}
	/* virtual-host style: Host BUCKET.DOMAIN[:port] */
	const char *domain = q->o->cfg->objects.domain;
	char host[300];
	const char *h = field_str(q, "Host", host, sizeof host);
	const char *rest = path + 1;
	if (h && domain[0]) {
		char *colon = strrchr(host, ':');
		if (colon && !strchr(host, ']'))
			*colon = '\0';
		size_t hl = strlen(host), dl = strlen(domain);
		if (hl > dl + 1 && host[hl - dl - 1] == '.' && strcasecmp(host + hl - dl, domain) == 0) {
			host[hl - dl - 1] = '\0';
			if (strlen(host) > META_BUCKET_MAX) {
				free(path);
				s3_error(q, 400, "InvalidBucketName", "The specified bucket is not valid.");
				return -1;
			}
			memcpy(q->bucket, host, strlen(host) + 1); /* length checked above */
			q->has_bucket = true;
			bool want_key = *rest != '\0';
			if (want_key) {
				q->key_len = strlen(rest);
				q->key = strdup(rest);
			}
			free(path);
			if (want_key && !q->key) {
				s3_internal(q, ERR_NOMEM);
				return -1;
			}
			return 0;
		}
	}
	if (*rest) {
		const char *slash = strchr(rest, '/');
		size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
		if (blen > META_BUCKET_MAX || blen == 0) {
			free(path);
			s3_error(q, 400, "InvalidBucketName", "The specified bucket is not valid.");
			return -1;
		}
		memcpy(q->bucket, rest, blen);
		q->bucket[blen] = '\0';
		q->has_bucket = true;
		if (slash && slash[1]) {
			q->key_len = strlen(slash + 1);
			q->key = strdup(slash + 1);
			if (!q->key) {
				free(path);
				s3_internal(q, ERR_NOMEM);
				return -1;
			}
		}
	}
	free(path);
	return 0;
}

static bool files_key_allows(const s3_req *q);

static void s3_on_request(http_request *http, void *arg)
{
	objects *o = arg;
	s3_req *q = calloc(1, sizeof *q);
	if (!q) {
		http_respond(http, 503, NULL, 0);
		return;
	}
	q->o = o;
	q->http = http;
	q->start_us = util_mono_us();
	q->next = o->live;
	if (o->live)
		o->live->prev = q;
	o->live = q;
	q->m = http_request_message(http);
	snprintf(q->method, sizeof q->method, "%s", q->m->method);
	q->head = strcmp(q->m->method, "HEAD") == 0;
	util_request_id(q->rid);
	http_response_header(http, "x-amz-request-id", q->rid);
	if (parse_target(q) != 0)
		return;
	if (strcmp(q->m->method, "OPTIONS") == 0) {
		op_preflight(q);
		return;
	}
	cors_actual(q);
	s3keys_refresh(o->keys, util_now_ms());
	int rc = sigv4_verify(o->verifier, q->m, &q->auth);
	if (rc == ERR_NOTFOUND) {
		route_anonymous(q);
		return;
	}
	if (rc != 0) {
		s3_error_sig(q, &q->auth.error);
		return;
	}
	if (strcmp(q->auth.access_key_id, o->files_key_id) == 0) {
		if (!files_key_allows(q)) {
			s3_error(q, 403, "AccessDenied", "Access Denied");
			return;
		}
		snprintf(q->tenant, sizeof q->tenant, "%s", FILES_TENANT);
		route(q);
		return;
	}
	char secret[SIGV4_SECRET_MAX + 1];
	rc = s3keys_lookup(o->keys, q->auth.access_key_id, secret, sizeof secret, q->tenant);
	OPENSSL_cleanse(secret, sizeof secret);
	if (rc != 0) { /* cannot happen: the verifier just found it */
		s3_error(q, 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.");
		return;
	}
	route(q);
}

/* Before the body: its bound (a single PUT's, or an XML body's), and an
 * early EntityTooLarge that spares the upload. */
static void s3_on_head(http_request *http, void *arg)
{
	objects *o = arg;
	const http_message *m = http_request_message(http);
	size_t max_put = o->cfg->objects.max_put_bytes;
	size_t len;
	const char *sha = http_message_field(m, "x-amz-content-sha256", &len);
	bool streaming = sha && len > 10 && strncmp(sha, "STREAMING-", 10) == 0;
	if (strcmp(m->method, "PUT") == 0 && !http_message_field(m, "x-amz-copy-source", NULL)) {
		int64_t decoded = m->content_length;
		if (streaming) {
			const char *d = http_message_field(m, "x-amz-decoded-content-length", &len);
			char tmp[24];
			long long v = -1;
			if (d && len < sizeof tmp) {
				memcpy(tmp, d, len);
				tmp[len] = '\0';
				if (util_parse_int(tmp, 0, INT64_MAX, &v) != 0)
					v = -1;
			}
			decoded = v;
		}
		if (decoded > (int64_t)max_put) {
			char rid[33];
			util_request_id(rid);
			buf b;
			buf_init(&b, 4096);
			buf_adds(&b, S3_XML_HEAD "<Error><Code>EntityTooLarge</Code><Message>Your proposed upload "
				      "exceeds the maximum allowed size</Message>");
			buf_printf(&b, "<MaxSizeAllowed>%zu</MaxSizeAllowed>", max_put);
			s3xml_elem(&b, "RequestId", rid);
			buf_adds(&b, "</Error>");
			http_response_header(http, "x-amz-request-id", rid);
			http_response_header(http, "Content-Type", "application/xml");
			http_respond_take(http, 400, &b);
			buf_free(&b);
			return;
		}
		/* aws-chunked framing: a size line and a signature per chunk (of
		 * at least 8 KiB when signed); unsigned chunks may be smaller */
		http_request_set_body_limit(http, streaming ? max_put + max_put / 4 + 65536 : max_put);
	} else if (strcmp(m->method, "POST") == 0 || strcmp(m->method, "PUT") == 0) {
		http_request_set_body_limit(http, S3XML_MAX_BODY + (streaming ? S3XML_MAX_BODY / 4 : 0));
	}
}

/* ------------------------------------------------------------ lifecycle */

static int key_lookup(void *arg, const char *id, char secret[SIGV4_SECRET_MAX + 1])
{
	objects *o = arg;
	if (strcmp(id, o->files_key_id) == 0) {
		memcpy(secret, o->files_secret, sizeof o->files_secret);
		return 0;
	}
	return s3keys_lookup(o->keys, id, secret, SIGV4_SECRET_MAX + 1, NULL);
}

/* The files API's key signs presigned URLs for one thing: a GET, HEAD or
 * PUT of an object of FILES_BUCKET, with no sub-resource. Anything else
 * signed with it (a list, a delete, another bucket) is refused, so a
 * leaked URL reaches at most the one file it names. */
static bool files_key_allows(const s3_req *q)
{
	const char *m = q->m->method;
	if (!q->auth.presigned || !q->key || strcmp(q->bucket, FILES_BUCKET) != 0)
		return false;
	if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 && strcmp(m, "PUT") != 0)
		return false;
	for (size_t i = 0; i < q->nparams; i++)
		if (strncmp(q->params[i].name, "X-Amz-", 6) != 0)
			return false;
	return strcmp(m, "PUT") != 0 || !http_message_field(q->m, "x-amz-copy-source", NULL);
}

static int sweep_known(void *arg, const char *id)
{
	return meta_blob_known(arg, id);
}

static void shutdown_done(void *arg)
{
	objects *o = arg;
	event_base_loopexit(o->base, NULL);
}

static void shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
	objects *o = arg;
	log_warn("s3: shutdown timeout: closing the remaining connections");
	event_base_loopexit(o->base, NULL);
}

static void stop_requested(evutil_socket_t fd, short what, void *arg)
{
	objects *o = arg;
	int ms = o->cfg->limits.shutdown_timeout_ms;
	struct timeval tv = util_timeval_ms(ms);
	evtimer_add(o->timeout_ev, &tv);
	orepl_stop(o->repl);
	http_server_shutdown(o->srv, shutdown_done, o);
}

static void *s3_thread(void *arg)
{
	objects *o = arg;
	event_base_dispatch(o->base);
	return NULL;
}

int objects_start(const config *cfg, const config_region *self, const secrets *sec, objects **out,
		  char *err, size_t errcap)
{
	*out = NULL;
	objects *o = calloc(1, sizeof *o);
	if (!o) {
		snprintf(err, errcap, "out of memory");
		return ERR_NOMEM;
	}
	o->cfg = cfg;
	o->self = self;
	char path[CONFIG_PATH_MAX + 32];
	db_conn *wdb = NULL;
	int rc;
	snprintf(path, sizeof path, "%s/blobs", self->data_dir);
	rc = blobstore_new(path, sec, &o->blobs, err, errcap);
	if (rc != 0)
		goto fail;
	int removed = 0;
	rc = blobstore_recover(o->blobs, &removed);
	if (rc != 0) {
		snprintf(err, errcap, "%s: cannot remove unfinished uploads", path);
		goto fail;
	}
	if (removed)
		log_info("s3: removed %d unfinished upload(s) left by a crash", removed);
	snprintf(path, sizeof path, "%s/objects.db", self->data_dir);
	wdb = db_open(path, false, err, errcap);
	if (!wdb) {
		rc = ERR_DB;
		goto fail;
	}
	rc = meta_init(wdb);
	if (rc == 0)
		rc = files_init_bucket(wdb, self->name);
	if (rc != 0) {
		snprintf(err, errcap, "%s: cannot create the object tables", path);
		goto fail;
	}
	snprintf(o->db_path, sizeof o->db_path, "%s", path);
	files_s3_key(sec, self->name, o->files_key_id, o->files_secret);
	/* before any write is accepted: every blob no row names is an orphan
	 * (a crash between a blob's commit and its row, or between a row's
	 * delete and its blob's) */
	removed = 0;
	rc = blobstore_sweep(o->blobs, util_now_ms() + 1, sweep_known, wdb, &removed);
	if (rc != 0) {
		snprintf(err, errcap, "the orphan sweep of the blob store failed (%s)", err_str(rc));
		goto fail;
	}
	if (removed)
		log_info("s3: removed %d orphaned blob(s)", removed);
	rc = s3keys_load(cfg->secrets_file, &o->keys, err, errcap);
	if (rc != 0)
		goto fail;
	rc = ERR_NOMEM;
	o->clock = hlc_new(NULL, NULL, HLC_DEFAULT_MAX_DRIFT_MS);
	o->base = event_base_new();
	if (!o->clock || !o->base) {
		snprintf(err, errcap, "out of memory");
		goto fail;
	}
	o->writer = committer_new(o->base, wdb, cfg->limits.write_batch_max, cfg->limits.write_queue_max);
	if (!o->writer) {
		snprintf(err, errcap, "cannot start the object store's writer thread");
		goto fail;
	}
	wdb = NULL; /* the committer owns it */
	o->reader = db_open(path, true, err, errcap);
	if (!o->reader) {
		rc = ERR_DB;
		goto fail;
	}
	o->pool = workers_new(o->base, S3_WORKERS, S3_WORKER_QUEUE);
	o->inbox = loop_queue_new(o->base);
	if (!o->pool || !o->inbox) {
		snprintf(err, errcap, "out of memory");
		goto fail;
	}
	{
		/* two-way replication with the other region, over its link */
		const config_region *peer = NULL;
		for (int i = 0; i < cfg->region_count; i++)
			if (&cfg->regions[i] != self && cfg->regions[i].link_listen[0] && self->link_listen[0])
				peer = &cfg->regions[i];
		if (peer) {
			o->link_client = tls_client_new(cfg->ca_file, self->tls_cert, self->tls_key, err, errcap);
			if (!o->link_client) {
				rc = ERR_TLS;
				goto fail;
			}
		}
		orepl_env env = {.base = o->base, .cfg = cfg, .self = self, .peer = peer,
				 .client_ctx = o->link_client, .blobs = o->blobs, .writer = o->writer,
				 .reader = o->reader, .pool = o->pool, .clock = o->clock};
		o->repl = orepl_new(&env);
		if (!o->repl) {
			snprintf(err, errcap, "out of memory");
			goto fail;
		}
		/* journal local writes only when someone will read the journal */
		meta_set_journal(peer != NULL);
	}
	/* the deployment's other regions too: a client that signed for us is
	 * served by eu when an edge sends it there (both hold the same keys) */
	char also[256] = "";
	for (int i = 0; i < o->cfg->region_count; i++)
		if (strcmp(o->cfg->regions[i].name, self->name) != 0) {
			size_t n = strlen(also);
			snprintf(also + n, sizeof also - n, "%s%s", n ? "," : "", o->cfg->regions[i].name);
		}
	sigv4_config vc = {.region = self->name, .also = also, .lookup = key_lookup, .lookup_arg = o};
	o->verifier = sigv4_verifier_new(&vc);
	o->stop_ev = event_new(o->base, -1, 0, stop_requested, o);
	o->timeout_ev = evtimer_new(o->base, shutdown_timeout, o);
	o->expiry_ev = event_new(o->base, -1, EV_PERSIST, expiry_tick, o);
	if (!o->pool || !o->verifier || !o->stop_ev || !o->timeout_ev || !o->expiry_ev) {
		snprintf(err, errcap, "out of memory");
		goto fail;
	}
	{
		/* often enough that an upload outlives its expiry by at most
		 * half of it (a minute at most; a test's 2 s expiry: 1 s) */
		int64_t tick_ms = (int64_t)cfg->objects.multipart_expiry_s * 500;
		tick_ms = tick_ms < 1000 ? 1000 : tick_ms > 60000 ? 60000 : tick_ms;
		struct timeval tv = util_timeval_ms((int)tick_ms);
		evtimer_add(o->expiry_ev, &tv);
	}
	o->ssl = tls_server_new(self->tls_cert, self->tls_key, NULL, err, errcap);
	if (!o->ssl) {
		rc = ERR_TLS;
		goto fail;
	}
	char common[128];
	snprintf(common, sizeof common, "X-Tandem-Region: %s\r\n", self->name);
	http_server_config scfg = {
		.limits = {.max_header_bytes = cfg->limits.max_header_bytes,
			   .max_headers = cfg->limits.max_headers,
			   .max_body_bytes = cfg->limits.max_body_bytes,
			   .max_target_bytes = cfg->limits.max_url_bytes},
		.header_timeout_ms = cfg->limits.header_timeout_ms,
		.idle_timeout_ms = cfg->limits.idle_timeout_ms,
		.body_timeout_ms = cfg->limits.body_timeout_ms,
		.write_timeout_ms = cfg->limits.write_timeout_ms,
		/* a GET queues at most this much per connection: 1,000 slow
		 * readers hold at most 1 GiB, not their objects */
		.max_unsent_bytes = 1024 * 1024,
		.max_buffered_bytes = cfg->limits.max_buffered_bytes,
		.max_connections = cfg->limits.max_connections,
		.max_connections_per_address = cfg->limits.max_connections_per_address,
		.ssl_ctx = o->ssl,
		.common_headers = common,
	};
	http_handlers handlers = {.on_head = s3_on_head, .on_request = s3_on_request, .arg = o};
	o->srv = http_server_new(o->base, &scfg, &handlers);
	if (!o->srv) {
		snprintf(err, errcap, "out of memory");
		goto fail;
	}
	if (http_server_listen(o->srv, self->s3_listen) != 0) {
		snprintf(err, errcap, "cannot listen on %s (s3_listen): %s", self->s3_listen, strerror(errno));
		rc = ERR_IO;
		goto fail;
	}
	log_info("s3: serving https://%s (%zu access key(s))", self->s3_listen, s3keys_count(o->keys));
	*out = o;
	return 0;
fail:
	db_close(&wdb);
	objects_stop(&o);
	return rc ? rc : ERR_IO;
}

blobstore *objects_blobs(objects *o)
{
	return o->blobs;
}

committer *objects_writer(objects *o)
{
	return o->writer;
}

hlc *objects_clock(objects *o)
{
	return o->clock;
}

const char *objects_db_path(objects *o)
{
	return o->db_path;
}

typedef struct link_msg {
	objects *o;
	http_request *req;
} link_msg;

static void link_request_run(void *arg) /* S3 thread */
{
	link_msg *m = arg;
	orepl_handle(m->o->repl, m->req);
	free(m);
}

int objects_link_request(objects *o, http_request *req)
{
	link_msg *m = malloc(sizeof *m);
	if (!m)
		return ERR_NOMEM;
	*m = (link_msg){o, req};
	int rc = loop_queue_post(o->inbox, link_request_run, m);
	if (rc != 0)
		free(m);
	return rc;
}

void objects_set_primary_fn(objects *o, bool (*is_primary)(void *arg), void *arg)
{
	o->is_primary = is_primary;
	o->primary_arg = arg;
	orepl_set_primary_fn(o->repl, is_primary, arg);
}

void objects_repl_stats(objects *o, orepl_stats *out)
{
	orepl_get_stats(o ? o->repl : NULL, out);
}

int objects_run(objects *o)
{
	if (orepl_start(o->repl) != 0)
		return ERR_NOMEM;
	if (pthread_create(&o->thread, NULL, s3_thread, o) != 0)
		return ERR_IO;
	o->thread_started = true;
	return 0;
}

void objects_stop(objects **op)
{
	objects *o = *op;
	if (!o)
		return;
	if (o->thread_started) {
		event_active(o->stop_ev, EV_TIMEOUT, 1);
		pthread_join(o->thread, NULL);
	}
	/* completions still due run here, on this thread, now that the loop
	 * is gone: the pool first (its completions may submit writes), then
	 * the writer (its completions answer), then the server */
	if (o->inbox)
		loop_queue_run(o->inbox); /* link requests that came too late: 503 */
	workers_free(&o->pool);
	committer_free(&o->writer);
	orepl_free(&o->repl); /* after its jobs' completions, before the blob store */
	loop_queue_free(&o->inbox);
	http_server_free(&o->srv);
	while (o->live)
		req_free(o->live);
	db_close(&o->reader);
	sigv4_verifier_free(&o->verifier);
	s3keys_free(&o->keys);
	hlc_free(&o->clock);
	blobstore_free(&o->blobs);
	OPENSSL_cleanse(o->files_secret, sizeof o->files_secret);
	SSL_CTX_free(o->ssl);
	SSL_CTX_free(o->link_client);
	if (o->stop_ev)
		event_free(o->stop_ev);
	if (o->timeout_ev)
		event_free(o->timeout_ev);
	if (o->expiry_ev)
		event_free(o->expiry_ev);
	if (o->base)
		event_base_free(o->base);
	free(o);
	*op = NULL;
}
