/*
 * filesapi.c - the mobile files API on the region's API port (docs/API.md
 * "Files"): upload (raw body or multipart/form-data), download (Range,
 * ETag = SHA-256, If-None-Match), delete, list one's own files, and
 * presigned S3 URLs to download or upload directly. Files are objects of
 * the region's object store (objects/files.h); nothing here touches a blob
 * or waits on another thread: every store operation completes on this
 * loop.
 *
 * Owner-only as records: a file's key is OWNER/FILEID, so another user's id
 * is simply not found (404, never 403). Idempotency-Key: the file id is
 * derived from (user, key), and the request hash stored with the file, so a
 * retry stores nothing new and gets the same answer, and another request
 * under the same key is 422 idempotency_key_reused.
 *
 * Memory: an upload's body is bounded by files_body_limit() (the server
 * counts it in max_buffered_bytes, and refuses a Content-Length over it
 * before reading: api_on_head); a download holds one piece (FILES_PIECE)
 * and queues at most max_unsent_bytes, reading on as the socket drains.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "http/formdata.h"
#include "objects/files.h"
#include "objects/sigv4.h"
#include "region/internal.h"

#define FILES_FORM_OVERHEAD (64 * 1024) /* boundaries and part headers around a file */
#define FILES_LIST_DEFAULT 50
#define FILES_LIST_MAX 1000
#define FILES_URL_DEFAULT_S 900
#define FILES_DEFAULT_TYPE "application/octet-stream"

size_t files_body_limit(const region *rg)
{
	return rg->cfg->files.max_file_bytes + FILES_FORM_OVERHEAD;
}

/* Authenticated, and the store is there; answers (finished) otherwise. */
static bool files_begin(api_call *call)
{
	if (!api_authenticate(call)) {
		api_finish(call);
		return false;
	}
	api_read_end(call); /* nothing else reads tandem.db for this call */
	if (!call->rg->files) {
		api_header(call, "Retry-After", "5");
		api_error(call, 503, "files_unavailable",
			  "this region serves no object store (s3_listen, [objects] KEK): files are unavailable");
		api_finish(call);
		return false;
	}
	return true;
}

/* The {id} segment (index 2); an id that cannot exist is not found. */
static bool files_read_id(api_call *call)
{
	if (call->segment_count < 3 || !files_valid_id(call->segments[2], call->segment_lens[2])) {
		api_error(call, 404, "file_not_found", "no such file");
		api_finish(call);
		return false;
	}
	memcpy(call->file_id, call->segments[2], FILES_ID_LEN);
	call->file_id[FILES_ID_LEN] = '\0';
	return true;
}

static void files_json(buf *b, const files_info *fi)
{
	char created[32];
	util_iso8601(fi->created_ms, created);
	buf_printf(b, "{\"id\":\"%s\",\"size\":%llu,\"sha256\":\"%s\",\"content_type\":", fi->id,
		   (unsigned long long)fi->size, fi->sha256);
	api_json_string(b, fi->content_type);
	if (fi->name[0]) {
		buf_adds(b, ",\"name\":");
		api_json_string(b, fi->name);
	}
	buf_printf(b, ",\"created_at\":\"%s\"}", created);
}

static void files_store_error(api_call *call, int rc)
{
	if (rc == ERR_AGAIN || rc == ERR_NOMEM) {
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "overloaded", "too many file operations waiting; retry shortly");
	} else if (rc == ERR_CORRUPT) {
		api_error(call, 500, "file_damaged", "the stored file failed its integrity check");
	} else if (rc == ERR_IO || rc == ERR_DB || rc == ERR_TLS) {
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "storage_unavailable", "the file store failed; nothing was changed, retry");
	} else {
		api_error(call, 500, "internal_error", "the file operation failed (%s)", err_str(rc));
	}
}

/* --------------------------------------------------------------- upload */

static void upload_done(void *arg, int rc, const files_info *info, bool replayed)
{
	api_call *call = arg;
	if (rc == 0) {
		call->status = 201;
		call->replayed = replayed;
		buf_reset(&call->body);
		files_json(&call->body, info);
		char location[64];
		snprintf(location, sizeof location, "/v1/files/%s", info->id);
		api_header(call, "Location", location);
	} else if (rc == ERR_CONFLICT) {
		api_error(call, 422, "idempotency_key_reused",
			  "this Idempotency-Key was used with another upload (other bytes, type or name)");
	} else {
		files_store_error(call, rc);
	}
	api_finish(call);
}

/* A Content-Type value we store and give back: visible ASCII, bounded. */
static bool files_valid_type(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= FILES_TYPE_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

void files_upload(api_call *call)
{
	if (!files_begin(call))
		return;
	region *rg = call->rg;
	size_t len = 0;
	const char *body = http_request_body(call->req, &len);
	char type[FILES_TYPE_MAX] = "", name[FILES_NAME_MAX] = "";
	size_t tlen = 0;
	const char *ct = http_message_field(call->msg, "Content-Type", &tlen);
	char boundary[FORMDATA_BOUNDARY_MAX + 1];
	int rc = ct ? formdata_boundary(ct, tlen, boundary, sizeof boundary) : ERR_NOTFOUND;
	if (rc == ERR_INVAL) {
		api_error(call, 400, "invalid_multipart",
			  "multipart/form-data needs a boundary parameter of 1 to 70 characters");
		api_finish(call);
		return;
	}
	if (rc == 0) {
		formdata_file part;
		rc = formdata_find_file(body ? body : "", len, boundary, &part);
		if (rc != 0) {
			api_error(call, 400, rc == ERR_NOTFOUND ? "no_file_part" : rc == ERR_CONFLICT ? "too_many_files" : "invalid_multipart",
				  "%s", rc == ERR_NOTFOUND ? "the form has no file part (a part with a filename)"
				  : rc == ERR_CONFLICT   ? "the form has more than one file part; upload one file per request"
							 : "the multipart/form-data body is malformed or exceeds its limits");
			api_finish(call);
			return;
		}
		body = part.data;
		len = part.len;
		snprintf(type, sizeof type, "%s", part.content_type[0] ? part.content_type : FILES_DEFAULT_TYPE);
		snprintf(name, sizeof name, "%s", part.filename);
	} else if (ct) {
		if (tlen >= sizeof type) {
			api_error(call, 400, "invalid_content_type", "Content-Type is too long");
			api_finish(call);
			return;
		}
		memcpy(type, ct, tlen);
		type[tlen] = '\0';
	} else {
		snprintf(type, sizeof type, "%s", FILES_DEFAULT_TYPE);
	}
	if (!files_valid_type(type)) {
		api_error(call, 400, "invalid_content_type", "the file's Content-Type must be visible ASCII");
		api_finish(call);
		return;
	}
	if (len > rg->cfg->files.max_file_bytes) {
		api_error(call, 413, "file_too_large", "a file may have at most %zu bytes ([files] max_file_bytes)",
			  rg->cfg->files.max_file_bytes);
		api_finish(call);
		return;
	}
	char id[FILES_ID_LEN + 1];
	size_t klen = 0;
	const char *key = http_message_field(call->msg, "Idempotency-Key", &klen);
	if (key) {
		bool ok = klen > 0 && klen < sizeof call->idem_key;
		for (size_t i = 0; ok && i < klen; i++)
			ok = key[i] > 0x20 && key[i] < 0x7f;
		if (!ok) {
			api_error(call, 400, "invalid_idempotency_key",
				  "Idempotency-Key must be 1 to 255 visible ASCII characters");
			api_finish(call);
			return;
		}
		memcpy(call->idem_key, key, klen);
		call->idem_key[klen] = '\0';
		files_idempotent_id(rg->files_idem_key, call->user_id, call->idem_key, id);
	} else {
		files_new_id(id);
	}
	/* the body stays valid until the call is answered (server.h) */
	rc = files_put(rg->files, call->user_id, id, key != NULL, body ? body : "", len, type, name, upload_done,
		       call);
	if (rc != 0) {
		files_store_error(call, rc);
		api_finish(call);
	}
}

/* ----------------------------------------------------------------- get */

/* Is etag among the entity tags of an If-None-Match value ("*" too)? */
static bool etag_listed(const char *v, size_t len, const char *etag)
{
	size_t el = strlen(etag);
	const char *p = v, *end = v + len;
	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		const char *s = p;
		while (p < end && *p != ',')
			p++;
		const char *e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e - s >= 2 && strncmp(s, "W/", 2) == 0)
			s += 2; /* weak comparison, as If-None-Match asks */
		if ((e - s == 1 && *s == '*') || ((size_t)(e - s) == el && memcmp(s, etag, el) == 0))
			return true;
	}
	return false;
}

/*
 * A single byte range of a file of size bytes: 1 with [*off, *off + *n)
 * set; 0 when the header is absent, not a bytes range, or a list of ranges
 * (served whole, as RFC 9110 allows); -1 when unsatisfiable (416).
 */
static int files_range(const char *v, size_t len, uint64_t size, uint64_t *off, uint64_t *n)
{
	char tmp[64];
	if (!v || len < 7 || len >= sizeof tmp || strncmp(v, "bytes=", 6) != 0)
		return 0;
	memcpy(tmp, v + 6, len - 6);
	tmp[len - 6] = '\0';
	if (strchr(tmp, ','))
		return 0;
	char *dash = strchr(tmp, '-');
	if (!dash)
		return 0;
	*dash = '\0';
	long long a = -1, b = -1;
	if (tmp[0] && util_parse_int(tmp, 0, INT64_MAX, &a) != 0)
		return 0;
	if (dash[1] && util_parse_int(dash + 1, 0, INT64_MAX, &b) != 0)
		return 0;
	if (a < 0 && b < 0)
		return 0;
	if (a < 0) { /* the last b bytes */
		if (b == 0 || size == 0)
			return -1;
		*n = (uint64_t)b < size ? (uint64_t)b : size;
		*off = size - *n;
		return 1;
	}
	if (b >= 0 && b < a)
		return 0; /* invalid: ignored */
	if ((uint64_t)a >= size)
		return -1;
	uint64_t last = b < 0 || (uint64_t)b >= size ? size - 1 : (uint64_t)b;
	*off = (uint64_t)a;
	*n = last - (uint64_t)a + 1;
	return 1;
}

static void get_pump(api_call *call);

/* Files up to this size are sent even over max_buffered_bytes (S3_SMALL_BODY). */
#define FILES_SMALL_BODY 4096

static void get_finish(api_call *call, bool complete)
{
	files_reader_close(&call->file_reader);
	api_stream_end(call, complete);
}

static void get_drained(http_request *req, void *arg)
{
	get_pump(arg);
}

static void get_piece(void *arg, int rc, const char *data, size_t n)
{
	api_call *call = arg;
	call->file_reading = false;
	if (rc == 0 && n == 0 && call->file_remaining > 0)
		rc = ERR_CORRUPT; /* shorter than its row says: cannot happen */
	if (rc != 0) {
		/* the head is out: cut the connection, never a complete-looking body */
		log_warn("request %s: file %s could not be read to its end (%s)", call->request_id, call->file_id,
			 err_str(rc));
		get_finish(call, false);
		return;
	}
	if (n > call->file_remaining)
		n = (size_t)call->file_remaining;
	if (!http_request_is_closed(call->req))
		http_respond_chunk(call->req, data, n);
	call->file_remaining -= n;
	get_pump(call);
}

static void get_pump(api_call *call)
{
	if (call->file_reading)
		return;
	if (http_request_is_closed(call->req)) {
		get_finish(call, false);
		return;
	}
	if (call->file_remaining == 0) {
		get_finish(call, true);
		return;
	}
	if (http_request_output_room(call->req) == 0) {
		http_request_on_drain(call->req, get_drained, call);
		return;
	}
	call->file_reading = true;
	int rc = files_read(call->file_reader, get_piece, call);
	if (rc != 0) {
		call->file_reading = false;
		log_warn("request %s: file %s: reading refused (%s)", call->request_id, call->file_id, err_str(rc));
		get_finish(call, false);
	}
}

/* The headers of a file's 200/206/304: type, validator, ranges. */
static void get_headers(api_call *call, const files_info *fi)
{
	char etag[72];
	snprintf(etag, sizeof etag, "\"%s\"", fi->sha256);
	api_header(call, "ETag", etag);
	api_header(call, "Accept-Ranges", "bytes");
	call->cache_private = true;
}

static void get_opened(void *arg, int rc, files_reader *r)
{
	api_call *call = arg;
	if (rc != 0) {
		if (rc == ERR_NOTFOUND || rc == ERR_INVAL) /* deleted or replaced meanwhile */
			api_error(call, 404, "file_not_found", "no such file");
		else
			files_store_error(call, rc);
		buf_reset(&call->headers);
		call->cache_private = false;
		api_finish(call);
		return;
	}
	/* A streaming answer queues up to max_unsent_bytes per connection,
	 * outside what http_respond bounds: while the server already holds more
	 * than max_buffered_bytes (slow readers), a large file is refused before
	 * its head, as the S3 API does (a small one is still served). */
	if (call->file_remaining > FILES_SMALL_BODY && http_request_server_overloaded(call->req)) {
		files_reader_close(&r);
		http_request_note_overloaded(call->req);
		http_request_close_after(call->req);
		buf_reset(&call->headers);
		call->cache_private = false;
		api_header(call, "Retry-After", "1");
		api_error(call, 503, "overloaded", "the region holds too much unsent data for clients now; retry shortly");
		api_finish(call);
		return;
	}
	call->file_reader = r;
	api_stream_begin(call, call->status, call->file_remaining);
	get_pump(call);
}

void files_get(api_call *call)
{
	if (!files_begin(call) || !files_read_id(call))
		return;
	files_info fi;
	int rc = files_stat(call->rg->files, call->user_id, call->file_id, &fi);
	if (rc == ERR_NOTFOUND || rc == ERR_UNSUPPORTED) {
		api_error(call, 404, "file_not_found", "no such file");
		api_finish(call);
		return;
	}
	if (rc != 0) {
		files_store_error(call, rc);
		api_finish(call);
		return;
	}
	char etag[72];
	snprintf(etag, sizeof etag, "\"%s\"", fi.sha256);
	size_t vlen = 0;
	const char *inm = http_message_field(call->msg, "If-None-Match", &vlen);
	if (inm && etag_listed(inm, vlen, etag)) {
		get_headers(call, &fi);
		call->status = 304;
		api_finish(call);
		return;
	}
	uint64_t off = 0, n = fi.size;
	const char *range = http_message_field(call->msg, "Range", &vlen);
	int r = files_range(range, range ? vlen : 0, fi.size, &off, &n);
	if (r < 0) {
		char cr[48];
		snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)fi.size);
		api_header(call, "Content-Range", cr);
		api_error(call, 416, "range_not_satisfiable", "the range lies outside the file's %llu bytes",
			  (unsigned long long)fi.size);
		api_finish(call);
		return;
	}
	get_headers(call, &fi);
	api_header(call, "Content-Type", fi.content_type);
	if (r > 0) {
		char cr[96];
		snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)off,
			 (unsigned long long)(off + n - 1), (unsigned long long)fi.size);
		api_header(call, "Content-Range", cr);
	}
	call->status = r > 0 ? 206 : 200;
	call->file_remaining = n;
	if (strcmp(call->msg->method, "HEAD") == 0 || n == 0) {
		/* nothing to read: the head says it all */
		api_stream_begin(call, call->status, n);
		call->file_remaining = 0;
		api_stream_end(call, true);
		return;
	}
	rc = files_open(call->rg->files, call->user_id, call->file_id, off, n, get_opened, call);
	if (rc != 0) {
		buf_reset(&call->headers);
		call->cache_private = false;
		if (rc == ERR_NOTFOUND)
			api_error(call, 404, "file_not_found", "no such file");
		else
			files_store_error(call, rc);
		api_finish(call);
	}
}

/* -------------------------------------------------------------- delete */

static void remove_done(void *arg, int rc)
{
	api_call *call = arg;
	if (rc == 0)
		call->status = 204;
	else if (rc == ERR_NOTFOUND)
		api_error(call, 404, "file_not_found", "no such file");
	else
		files_store_error(call, rc);
	api_finish(call);
}

void files_remove(api_call *call)
{
	if (!files_begin(call) || !files_read_id(call))
		return;
	int rc = files_delete(call->rg->files, call->user_id, call->file_id, remove_done, call);
	if (rc != 0) {
		files_store_error(call, rc);
		api_finish(call);
	}
}

/* ---------------------------------------------------------------- list */

typedef struct index_ctx {
	api_call *call;
	int count;
	files_info last;
} index_ctx;

static void index_one(void *arg, const files_info *fi)
{
	index_ctx *x = arg;
	if (x->count++)
		buf_addc(&x->call->body, ',');
	files_json(&x->call->body, fi);
	x->last = *fi;
}

/* "MS.ID": the created_at (ms) and id of the last file of a page. */
static bool index_cursor(const char *s, int64_t *ms, char id[FILES_ID_LEN + 1])
{
	const char *dot = strchr(s, '.');
	if (!dot || dot - s > 15 || !files_valid_id(dot + 1, strlen(dot + 1)))
		return false;
	char num[16];
	memcpy(num, s, (size_t)(dot - s));
	num[dot - s] = '\0';
	long long v;
	if (util_parse_int(num, 0, INT64_MAX, &v) != 0)
		return false;
	*ms = v;
	memcpy(id, dot + 1, FILES_ID_LEN + 1);
	return true;
}

void files_index(api_call *call)
{
	if (!files_begin(call))
		return;
	bool bad_l = false, bad_c = false;
	char *limit_text = api_query_param(call, "limit", &bad_l);
	char *cursor = api_query_param(call, "cursor", &bad_c);
	long long limit = FILES_LIST_DEFAULT;
	int64_t before_ms = 0;
	char before_id[FILES_ID_LEN + 1];
	bool has_cursor = cursor && cursor[0];
	if (bad_l || (limit_text && util_parse_int(limit_text, 1, FILES_LIST_MAX, &limit) != 0)) {
		api_error(call, 400, "invalid_limit", "limit must be an integer from 1 to %d", FILES_LIST_MAX);
		goto done;
	}
	if (bad_c || (has_cursor && !index_cursor(cursor, &before_ms, before_id))) {
		api_error(call, 400, "invalid_cursor", "cursor must be a next_cursor of an earlier page");
		goto done;
	}
	index_ctx x = {.call = call};
	bool more = false;
	buf_reset(&call->body);
	buf_adds(&call->body, "{\"items\":[");
	int rc = files_list(call->rg->files, call->user_id, before_ms, has_cursor ? before_id : NULL, (int)limit,
			    index_one, &x, &more);
	if (rc != 0) {
		files_store_error(call, rc);
		goto done;
	}
	buf_adds(&call->body, "],\"next_cursor\":");
	if (more)
		buf_printf(&call->body, "\"%lld.%s\"}", (long long)x.last.created_ms, x.last.id);
	else
		buf_adds(&call->body, "null}");
	call->status = 200;
done:
	free(limit_text);
	free(cursor);
	api_finish(call);
}

/* ------------------------------------------------------ presigned URLs */

/* expires_in of the JSON body (call->json, may be NULL): 1..604800, default
 * 900. false when answered 400. */
static bool presign_expiry(api_call *call, long long *out)
{
	*out = FILES_URL_DEFAULT_S;
	json_t *v = call->json ? json_object_get(call->json, "expires_in") : NULL;
	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > SIGV4_EXPIRES_MAX) {
		api_error(call, 400, "invalid_expires_in", "expires_in must be an integer from 1 to %d (seconds)",
			  SIGV4_EXPIRES_MAX);
		return false;
	}
	*out = json_integer_value(v);
	return true;
}

/* An optional JSON body: none (or empty) is {}. false when answered. */
static bool presign_body(api_call *call)
{
	size_t len = 0;
	http_request_body(call->req, &len);
	if (len == 0)
		return true;
	return api_parse_json_object(call, false);
}

/* Sign method on owner's file id at this region's S3 endpoint into
 * call->body's "url" and "expires_at". headers: the signed headers besides
 * host. 0 or an ERR_*. */
static int presign(api_call *call, const char *method, const char *id, const sigv4_param *extra, size_t nextra,
		   long long expires, buf *url, char expires_at[32])
{
	region *rg = call->rg;
	char path[FILES_OWNER_MAX + FILES_ID_LEN + 32];
	snprintf(path, sizeof path, "/%s/%s/%s", FILES_BUCKET, call->user_id, id);
	sigv4_param headers[4] = {{"host", rg->self->s3_listen}};
	size_t nh = 1;
	for (size_t i = 0; i < nextra && nh < 4; i++)
		headers[nh++] = extra[i];
	int64_t now = call->now_ms / 1000;
	sigv4_sign_params p = {
		.method = method,
		.path = path,
		.headers = headers,
		.header_count = nh,
		.access_key_id = rg->files_key_id,
		.secret_access_key = rg->files_secret,
		.region = rg->self->name,
		.now_s = now,
		.expires_s = expires,
	};
	buf_printf(url, "https://%s", rg->self->s3_listen);
	int rc = sigv4_presign(&p, url);
	util_iso8601((now + expires) * 1000, expires_at);
	return rc;
}

void files_url(api_call *call)
{
	if (!files_begin(call) || !files_read_id(call))
		return;
	files_info fi;
	int rc = files_stat(call->rg->files, call->user_id, call->file_id, &fi);
	long long expires;
	if (rc == ERR_NOTFOUND || rc == ERR_UNSUPPORTED) {
		api_error(call, 404, "file_not_found", "no such file");
	} else if (rc != 0) {
		files_store_error(call, rc);
	} else if (presign_body(call) && presign_expiry(call, &expires)) {
		buf url;
		buf_init(&url, 8192);
		char expires_at[32];
		if (presign(call, "GET", call->file_id, NULL, 0, expires, &url, expires_at) != 0) {
			api_error(call, 500, "internal_error", "cannot sign the URL");
		} else {
			call->status = 200;
			buf_reset(&call->body);
			buf_adds(&call->body, "{\"url\":");
			api_json_string(&call->body, url.data);
			buf_printf(&call->body, ",\"expires_at\":\"%s\"}", expires_at);
		}
		buf_free(&url);
	}
	api_finish(call);
}

void files_presign_upload(api_call *call)
{
	if (!files_begin(call))
		return;
	if (!api_parse_json_object(call, false)) {
		api_finish(call);
		return;
	}
	region *rg = call->rg;
	json_t *t = json_object_get(call->json, "content_type"), *s = json_object_get(call->json, "size");
	const char *type = t ? json_string_value(t) : FILES_DEFAULT_TYPE;
	long long expires;
	if (!type || !files_valid_type(type)) {
		api_error(call, 400, "invalid_content_type", "content_type must be a string of visible ASCII");
	} else if (!s || !json_is_integer(s) || json_integer_value(s) < 0) {
		api_error(call, 400, "invalid_size", "size (the file's exact length in bytes) is required");
	} else if ((unsigned long long)json_integer_value(s) > rg->cfg->files.max_file_bytes) {
		api_error(call, 413, "file_too_large", "a file may have at most %zu bytes ([files] max_file_bytes)",
			  rg->cfg->files.max_file_bytes);
	} else if (presign_expiry(call, &expires)) {
		char id[FILES_ID_LEN + 1], size[24], expires_at[32];
		files_new_id(id);
		snprintf(size, sizeof size, "%lld", (long long)json_integer_value(s));
		/* the length and type are signed: the upload is exactly what was
		 * announced, within max_file_bytes */
		sigv4_param extra[2] = {{"content-length", size}, {"content-type", type}};
		buf url;
		buf_init(&url, 8192);
		if (presign(call, "PUT", id, extra, 2, expires, &url, expires_at) != 0) {
			api_error(call, 500, "internal_error", "cannot sign the URL");
		} else {
			call->status = 200;
			buf_reset(&call->body);
			buf_printf(&call->body, "{\"id\":\"%s\",\"url\":", id);
			api_json_string(&call->body, url.data);
			buf_adds(&call->body, ",\"method\":\"PUT\",\"headers\":{\"Content-Type\":");
			api_json_string(&call->body, type);
			buf_printf(&call->body, ",\"Content-Length\":\"%s\"},\"expires_at\":\"%s\"}", size, expires_at);
		}
		buf_free(&url);
	}
	api_finish(call);
}
