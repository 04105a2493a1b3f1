/*
 * cache.c - the edge's shared cache (cache.h has the contract, docs/EDGE.md
 * "Cache" the rules as a user sees them).
 *
 * Design:
 *
 *   table: buckets[hash(primary key)] -> entries (variants of one key differ
 *          by their secondary key, built from the request fields their Vary
 *          names)
 *   lru:   head (most recently used) <-> ... <-> tail (evicted first)
 *   bytes: the sum of entry_bytes() of the entries in the table <= max_bytes
 *
 * Invariants: an entry is in the table iff e->in_table, and then it is in
 * exactly one bucket chain and in the LRU list, and holds one reference;
 * every other reference is a holder's (cache_lookup's result). An entry is
 * freed when its last reference goes, never while in the table.
 *
 * An entry keeps its header lines as one block of "Name: value\r\n" text;
 * its freshness is derived from that block (entry_derive), at store time
 * and again after a 304 replaced some of its fields, so both paths apply
 * the same rules.
 *
 * Pending fetches (coalescing) live in a second, small table: key -> the
 * waiters to wake when the fetch ends.
 */
#include "edge/cache.h"

#include <assert.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"

#define CACHE_MAGIC 0x45434348u /* "ECCH" */
#define ENTRY_OVERHEAD 256      /* bytes charged per entry beyond its strings */
#define MAX_FIELDS 256          /* stored header fields per entry */
#define HEADERS_MAX 65536       /* stored header block */
#define VARY_MAX 16384          /* a secondary key */
#define PENDING_BUCKETS 256
#define DISK_MAGIC 0x31434454u  /* "TDC1": a disk tier file */
#define DISK_SUFFIX ".tdc"


struct cache_entry {
	unsigned magic;
	int refs;
	bool in_table;
	cache_entry *chain;       /* bucket chain */
	cache_entry *prev, *next; /* LRU */
	uint32_t hash;
	char *key;                /* "host target" */
	size_t key_len, host_len;
	char *vary_names;         /* "a,b" lowercased; NULL: no Vary */
	char *vary_key;           /* the secondary key for vary_names; NULL: no Vary */
	int status;
	buf headers;
	char *body;
	size_t body_len;
	size_t bytes;
	/* freshness (RFC 9111 4.2), seconds */
	int64_t request_time, response_time, date_value, age_value, corrected_initial_age;
	int64_t lifetime;
	int64_t stale_while_revalidate, stale_if_error; /* -1: absent */
	bool no_cache;        /* always revalidate */
	bool must_revalidate; /* never serve stale (must-/proxy-revalidate, s-maxage) */
	char *etag, *last_modified;
};

typedef struct waiter {
	cache_wake_fn wake;
	void *arg;
} waiter;

typedef struct pending {
	struct pending *next;
	uint32_t hash;
	char *key;
	waiter waiters[CACHE_MAX_WAITERS];
	int count;
} pending;

/* An entry of the disk tier: where it is and what matches it; the rest
 * is in its file (disk_demote's format). */
typedef struct disk_rec {
	struct disk_rec *chain, *prev, *next; /* bucket chain, disk LRU */
	uint32_t hash;
	char *key;
	size_t key_len, host_len;
	char *vary_names, *vary_key;          /* NULL: no Vary */
	int64_t response_time;
	uint64_t id;
	size_t bytes;                         /* the file's size */
	size_t cost;                          /* what it counts against disk_max: disk_cost() */
} disk_rec;

/* What a file of size bytes counts against the disk bound: its size in
 * whole 4 KiB blocks (what a file system spends on it), plus its share of
 * the in-memory index (the record, its key and Vary strings). So the
 * number of files, and the index's memory, are bounded by the disk bound
 * too: many tiny answers cannot grow the index without limit (at most
 * disk_max / 4 KiB records). */
static size_t disk_cost(size_t bytes, size_t index_bytes)
{
	return ((bytes + 4095) & ~(size_t)4095) + index_bytes;
}

struct cache {
	unsigned magic;
	size_t max_bytes, max_object_bytes;
	/* the disk tier (cache_set_disk): what the memory LRU evicts */
	char disk_dir[512];
	size_t disk_max, disk_bytes, disk_entries;
	disk_rec **dbuckets;                  /* nbuckets of them */
	disk_rec *dhead, *dtail;
	uint64_t disk_next_id;
	unsigned long disk_written, disk_promoted, disk_errors;
	cache_entry **buckets;
	size_t nbuckets; /* a power of two */
	cache_entry *head, *tail;
	size_t bytes, entries;
	pending *pend[PENDING_BUCKETS];
	size_t npending;
	unsigned long stored, evicted, invalidated;
	const char *reason;
};

/* ---------------------------------------------------------------- parsing */

static bool is_ws(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool eq_ci(const char *a, size_t alen, const char *b)
{
	size_t n = strlen(b);
	return alen == n && strncasecmp(a, b, n) == 0;
}

/* delta-seconds (RFC 9111 1.2.2): digits, clamped at 2^31; -1 if not. */
static int64_t delta_seconds(const char *v, size_t len)
{
	if (!v || len == 0)
		return -1;
	int64_t d = 0;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (d < 2147483648LL)
			d = d * 10 + (v[i] - '0');
	}
	return d > 2147483648LL ? 2147483648LL : d;
}

void cache_control_init(cache_control *cc)
{
	*cc = (cache_control){.max_age = -1, .s_maxage = -1, .stale_while_revalidate = -1, .stale_if_error = -1,
			      .max_stale = -1, .min_fresh = -1};
}

/* A duplicated directive is invalid (RFC 9111 4.2.1): the smaller wins. */
static void set_min(int64_t *slot, int64_t v)
{
	if (*slot < 0 || v < *slot)
		*slot = v;
}

static void directive(cache_control *cc, const char *name, size_t nlen, bool has_value, const char *val,
		      size_t vlen)
{
	cc->any = true;
	int64_t d = has_value ? delta_seconds(val, vlen) : -1;
	if (eq_ci(name, nlen, "max-age"))
		set_min(&cc->max_age, d < 0 ? 0 : d); /* malformed: stale, the safe reading */
	else if (eq_ci(name, nlen, "s-maxage"))
		set_min(&cc->s_maxage, d < 0 ? 0 : d);
	else if (eq_ci(name, nlen, "stale-while-revalidate")) {
		if (d >= 0)
			set_min(&cc->stale_while_revalidate, d);
	} else if (eq_ci(name, nlen, "stale-if-error")) {
		if (d >= 0)
			set_min(&cc->stale_if_error, d);
	} else if (eq_ci(name, nlen, "min-fresh")) {
		if (d >= 0)
			set_min(&cc->min_fresh, d);
	} else if (eq_ci(name, nlen, "max-stale")) {
		if (!has_value)
			cc->max_stale = 2147483648LL; /* any staleness */
		else if (d >= 0)
			set_min(&cc->max_stale, d);
	} else if (eq_ci(name, nlen, "no-store"))
		cc->no_store = true;
	else if (eq_ci(name, nlen, "no-cache"))
		cc->no_cache = true; /* with field names too: revalidating always is the safe reading */
	else if (eq_ci(name, nlen, "private"))
		cc->private_ = true; /* with field names too: not stored at all, the safe reading */
	else if (eq_ci(name, nlen, "public"))
		cc->public_ = true;
	else if (eq_ci(name, nlen, "must-revalidate"))
		cc->must_revalidate = true;
	else if (eq_ci(name, nlen, "proxy-revalidate"))
		cc->proxy_revalidate = true;
	else if (eq_ci(name, nlen, "only-if-cached"))
		cc->only_if_cached = true;
}

void cache_control_parse(cache_control *cc, const char *v, size_t len)
{
	size_t i = 0;
	while (i < len) {
		while (i < len && (is_ws(v[i]) || v[i] == ','))
			i++;
		if (i >= len)
			break;
		size_t ns = i;
		while (i < len && v[i] != '=' && v[i] != ',' && !is_ws(v[i]))
			i++;
		size_t nl = i - ns;
		while (i < len && is_ws(v[i]))
			i++;
		const char *val = NULL;
		size_t vl = 0;
		bool has_value = false;
		if (i < len && v[i] == '=') {
			has_value = true;
			i++;
			while (i < len && is_ws(v[i]))
				i++;
			if (i < len && v[i] == '"') {
				i++;
				val = v + i;
				while (i < len && v[i] != '"')
					i += (v[i] == '\\' && i + 1 < len) ? 2 : 1;
				vl = (size_t)((v + (i < len ? i : len)) - val);
				if (i < len)
					i++;
			} else {
				val = v + i;
				while (i < len && v[i] != ',' && !is_ws(v[i]))
					i++;
				vl = (size_t)(v + i - val);
			}
		}
		while (i < len && v[i] != ',')
			i++; /* junk after a directive: ignored */
		if (nl > 0)
			directive(cc, v + ns, nl, has_value, val, vl);
	}
}

static int month_index(const char *m)
{
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	for (int i = 0; i < 12; i++)
		if (strcmp(months[i], m) == 0)
			return i;
	return -1;
}

int64_t cache_parse_http_date(const char *value, size_t len)
{
	char s[64];
	if (!value || len == 0 || len >= sizeof s)
		return -1;
	memcpy(s, value, len);
	s[len] = '\0';
	char mon[4] = "";
	int day = 0, year = 0, hh = 0, mm = 0, ss = 0, n = 0;
	/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
	if (sscanf(s, "%*3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n", &day, mon, &year, &hh, &mm, &ss, &n) == 6 &&
	    s[n] == '\0') {
	} else if (n = 0, sscanf(s, "%*[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d GMT%n", &day, mon, &year, &hh, &mm,
				 &ss, &n) == 6 &&
			      s[n] == '\0') {
		/* RFC 850, two-digit year: this century unless that is far ahead */
		year += year < 70 ? 2000 : 1900;
	} else if (n = 0, sscanf(s, "%*3[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n", mon, &day, &hh, &mm, &ss, &year,
				 &n) == 6 &&
			      s[n] == '\0') {
		/* asctime */
	} else {
		return -1;
	}
	int m = month_index(mon);
	if (m < 0 || day < 1 || day > 31 || year < 1900 || year > 9999 || hh > 23 || mm > 59 || ss > 60 || hh < 0 ||
	    mm < 0 || ss < 0)
		return -1;
	struct tm tm = {.tm_year = year - 1900, .tm_mon = m, .tm_mday = day, .tm_hour = hh, .tm_min = mm, .tm_sec = ss};
	time_t t = timegm(&tm);
	return t == (time_t)-1 ? -1 : (int64_t)t;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cache_normalize_accept_encoding(const char *v, size_t len, char *out, size_t cap)
{
	enum { CODINGS = 16, CODING_MAX = 32 };
	char store[CODINGS][CODING_MAX];
	char *list[CODINGS];
	int n = 0;
	if (cap == 0)
		return -1;
	out[0] = '\0';
	size_t i = 0;
	while (i < len) {
		size_t start = i;
		while (i < len && v[i] != ',')
			i++;
		size_t end = i;
		i++; /* past the comma */
		/* the element: coding *( ; param ) */
		size_t a = start;
		while (a < end && is_ws(v[a]))
			a++;
		size_t b = a;
		while (b < end && v[b] != ';' && !is_ws(v[b]))
			b++;
		if (b == a)
			continue;
		bool zero = false;
		for (size_t p = b; p < end; p++) {
			if (v[p] != ';')
				continue;
			size_t q = p + 1;
			while (q < end && is_ws(v[q]))
				q++;
			if (q + 1 < end && (v[q] == 'q' || v[q] == 'Q') && v[q + 1] == '=') {
				/* q=0, 0.0, 0.00, 0.000: dropped */
				size_t r = q + 2;
				zero = r < end && v[r] == '0';
				for (r++; r < end && zero && !is_ws(v[r]) && v[r] != ';'; r++)
					if (v[r] != '0' && v[r] != '.')
						zero = false;
			}
		}
		if (zero)
			continue;
		if (b - a >= CODING_MAX || n == CODINGS)
			return -1;
		for (size_t k = 0; k < b - a; k++)
			store[n][k] = (char)tolower((unsigned char)v[a + k]);
		store[n][b - a] = '\0';
		list[n] = store[n];
		n++;
	}
	qsort(list, (size_t)n, sizeof list[0], cmp_str);
	size_t used = 0;
	for (int k = 0; k < n; k++) {
		if (k > 0 && strcmp(list[k], list[k - 1]) == 0)
			continue;
		size_t l = strlen(list[k]);
		if (used + l + 2 > cap) {
			out[0] = '\0';
			return -1;
		}
		if (used)
			out[used++] = ',';
		memcpy(out + used, list[k], l);
		used += l;
		out[used] = '\0';
	}
	return (int)used;
}

static bool field_is(const http_field *f, const char *name)
{
	return eq_ci(f->name, f->name_len, name);
}

int cache_request_key(const http_message *req, char *out, size_t cap)
{
	if (!req->target || !req->target[0])
		return -1;
	size_t hl = 0;
	const char *host = http_message_field(req, "Host", &hl);
	if (!host)
		hl = 0;
	size_t tl = strlen(req->target);
	if (hl + 1 + tl + 1 > cap)
		return -1;
	for (size_t i = 0; i < hl; i++)
		out[i] = (char)tolower((unsigned char)host[i]);
	out[hl] = ' ';
	memcpy(out + hl + 1, req->target, tl + 1);
	return (int)(hl + 1 + tl);
}

/* Request fields of this name, joined by "," (several lines of one field
 * are one list, RFC 9110 5.3). false when absent. */
static bool joined_field(const http_message *m, const char *name, size_t nlen, buf *out)
{
	bool found = false;
	for (size_t i = 0; i < m->field_count; i++) {
		const http_field *f = &m->fields[i];
		if (f->name_len != nlen || strncasecmp(f->name, name, nlen) != 0)
			continue;
		if (found)
			buf_addc(out, ',');
		buf_add(out, f->value, f->value_len);
		found = true;
	}
	return found;
}

/* The secondary key of req for the Vary names "a,b" into out: per name,
 * "name=value\n" (normalised), or "name\n" when the request lacks it.
 * 0 or ERR_LIMIT / ERR_NOMEM. */
static int vary_key(const http_message *req, const char *names, buf *out)
{
	const char *p = names;
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t nl = comma ? (size_t)(comma - p) : strlen(p);
		buf val;
		buf_init(&val, VARY_MAX);
		bool present = joined_field(req, p, nl, &val);
		buf_add(out, p, nl);
		if (present) {
			buf_addc(out, '=');
			char norm[1024];
			if (nl == 15 && strncmp(p, "accept-encoding", 15) == 0 &&
			    cache_normalize_accept_encoding(val.data ? val.data : "", val.len, norm, sizeof norm) >= 0)
				buf_adds(out, norm);
			else
				buf_add(out, val.data ? val.data : "", val.len);
		}
		int rc = buf_addc(out, '\n');
		buf_free(&val);
		if (rc != 0)
			return rc;
		p += nl + (comma ? 1 : 0);
	}
	return 0;
}

/* The Vary names of a response, lowercased, deduplicated, in order, into
 * out ("a,b"; "" without Vary). 1 for Vary: *, 0, or ERR_LIMIT. */
static int vary_names(const http_field *fields, size_t n, buf *out)
{
	for (size_t i = 0; i < n; i++) {
		if (!field_is(&fields[i], "vary"))
			continue;
		const char *v = fields[i].value;
		size_t len = fields[i].value_len, k = 0;
		while (k < len) {
			while (k < len && (is_ws(v[k]) || v[k] == ','))
				k++;
			size_t s = k;
			while (k < len && v[k] != ',' && !is_ws(v[k]))
				k++;
			if (k == s)
				continue;
			if (k - s == 1 && v[s] == '*')
				return 1;
			char name[128];
			if (k - s >= sizeof name)
				return ERR_LIMIT;
			for (size_t j = s; j < k; j++)
				name[j - s] = (char)tolower((unsigned char)v[j]);
			name[k - s] = '\0';
			/* already listed? */
			bool dup = false;
			for (const char *q = out->data; q && *q;) {
				const char *c = strchr(q, ',');
				size_t ql = c ? (size_t)(c - q) : strlen(q);
				if (ql == k - s && strncmp(q, name, ql) == 0)
					dup = true;
				q += ql + (c ? 1 : 0);
			}
			if (dup)
				continue;
			if ((out->len && buf_addc(out, ',') != 0) || buf_adds(out, name) != 0)
				return ERR_LIMIT;
		}
	}
	return 0;
}

/* ------------------------------------------------------- the stored block */

/* Fields that describe a connection, or that the edge writes itself when it
 * serves an entry: never stored. */
static bool not_stored(const char *name, size_t len)
{
	static const char *const names[] = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
					    "transfer-encoding", "upgrade", "proxy-authenticate",
					    "proxy-authorization", "content-length", "date", "age", "x-cache"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (eq_ci(name, len, names[i]))
			return true;
	return false;
}

/* Split a block of "Name: value\r\n" lines into fields pointing into it.
 * Returns the count (at most max). */
static size_t block_fields(const char *blk, size_t len, http_field *out, size_t max)
{
	size_t n = 0, i = 0;
	while (i < len && n < max) {
		const char *line = blk + i;
		const char *end = memchr(line, '\n', len - i);
		size_t ll = end ? (size_t)(end - line) : len - i;
		i += ll + 1;
		if (ll && line[ll - 1] == '\r')
			ll--;
		const char *colon = memchr(line, ':', ll);
		if (!colon)
			continue;
		const char *v = colon + 1;
		const char *ve = line + ll;
		while (v < ve && is_ws(*v))
			v++;
		out[n++] = (http_field){.name = line, .name_len = (size_t)(colon - line), .value = v,
					.value_len = (size_t)(ve - v)};
	}
	return n;
}

static const char *fields_get(const http_field *f, size_t n, const char *name, size_t *len)
{
	for (size_t i = 0; i < n; i++)
		if (field_is(&f[i], name)) {
			*len = f[i].value_len;
			return f[i].value;
		}
	return NULL;
}

static void fields_cache_control(const http_field *f, size_t n, const char *name, cache_control *cc)
{
	cache_control_init(cc);
	for (size_t i = 0; i < n; i++)
		if (field_is(&f[i], name))
			cache_control_parse(cc, f[i].value, f[i].value_len);
}

/* Statuses cacheable by default (RFC 9110 15.1): heuristic freshness is
 * allowed for them. */
static bool heuristic_status(int status)
{
	switch (status) {
	case 200: case 203: case 204: case 206: case 300: case 301: case 308:
	case 404: case 405: case 410: case 414: case 501:
		return true;
	default:
		return false;
	}
}

/* What the response's fields say, as the cache reads them. */
typedef struct derived {
	cache_control cc; /* CDN-Cache-Control when present, else Cache-Control */
	bool explicit_;   /* s-maxage, max-age or Expires */
	int64_t lifetime;
	bool has_validator;
} derived;

static derived derive(const http_field *f, size_t n, int status, int64_t date_value)
{
	derived d = {0};
	cache_control cdn;
	fields_cache_control(f, n, "cdn-cache-control", &cdn);
	bool use_cdn = cdn.any; /* RFC 9213 2.1: then Cache-Control and Expires are ignored */
	if (use_cdn)
		d.cc = cdn;
	else
		fields_cache_control(f, n, "cache-control", &d.cc);
	size_t len;
	const char *v;
	if (d.cc.s_maxage >= 0) {
		d.explicit_ = true;
		d.lifetime = d.cc.s_maxage;
	} else if (d.cc.max_age >= 0) {
		d.explicit_ = true;
		d.lifetime = d.cc.max_age;
	} else if (!use_cdn && (v = fields_get(f, n, "expires", &len))) {
		d.explicit_ = true;
		int64_t exp = cache_parse_http_date(v, len);
		d.lifetime = exp < 0 || exp <= date_value ? 0 : exp - date_value; /* invalid: in the past */
	} else if ((heuristic_status(status) || d.cc.public_) && (v = fields_get(f, n, "last-modified", &len))) {
		int64_t lm = cache_parse_http_date(v, len);
		if (lm >= 0 && lm < date_value) {
			int64_t h = (date_value - lm) / 10;
			d.lifetime = h > CACHE_HEURISTIC_MAX_S ? CACHE_HEURISTIC_MAX_S : h;
		}
	}
	d.has_validator = fields_get(f, n, "etag", &len) || fields_get(f, n, "last-modified", &len);
	return d;
}

static char *dup_field(const http_field *f, size_t n, const char *name)
{
	size_t len;
	const char *v = fields_get(f, n, name, &len);
	return v ? strndup(v, len) : NULL;
}

/* Recompute e's freshness and validators from its header block and times.
 * 0 or ERR_NOMEM (e's validators then NULL: it is not revalidated, only
 * refetched). */
static int entry_derive(cache_entry *e)
{
	http_field f[MAX_FIELDS];
	size_t n = block_fields(e->headers.data ? e->headers.data : "", e->headers.len, f, MAX_FIELDS);
	derived d = derive(f, n, e->status, e->date_value);
	e->lifetime = d.lifetime;
	e->no_cache = d.cc.no_cache;
	e->must_revalidate = d.cc.must_revalidate || d.cc.proxy_revalidate || d.cc.s_maxage >= 0;
	e->stale_while_revalidate = d.cc.stale_while_revalidate;
	e->stale_if_error = d.cc.stale_if_error;
	/* RFC 9111 4.2.3 */
	int64_t apparent_age = e->response_time - e->date_value;
	if (apparent_age < 0)
		apparent_age = 0;
	int64_t delay = e->response_time - e->request_time;
	int64_t corrected_age_value = e->age_value + (delay > 0 ? delay : 0);
	e->corrected_initial_age = apparent_age > corrected_age_value ? apparent_age : corrected_age_value;
	free(e->etag);
	free(e->last_modified);
	e->etag = dup_field(f, n, "etag");
	e->last_modified = dup_field(f, n, "last-modified");
	size_t len;
	if ((fields_get(f, n, "etag", &len) && !e->etag) || (fields_get(f, n, "last-modified", &len) && !e->last_modified))
		return ERR_NOMEM;
	return 0;
}

/* Times from a response: Date (else when it arrived) and Age. */
static void response_times(cache_entry *e, const http_message *resp, int64_t request_time, int64_t response_time)
{
	size_t len;
	const char *v = http_message_field(resp, "Date", &len);
	int64_t date = v ? cache_parse_http_date(v, len) : -1;
	e->request_time = request_time;
	e->response_time = response_time;
	e->date_value = date >= 0 ? date : response_time;
	v = http_message_field(resp, "Age", &len);
	int64_t age = v ? delta_seconds(v, len) : -1;
	e->age_value = age > 0 ? age : 0;
}

/* ---------------------------------------------------------------- entries */

static uint32_t hash_key(const char *s, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static size_t entry_bytes(const cache_entry *e)
{
	return ENTRY_OVERHEAD + e->key_len + (e->vary_names ? strlen(e->vary_names) : 0) +
	       (e->vary_key ? strlen(e->vary_key) : 0) + e->headers.len + e->body_len +
	       (e->etag ? strlen(e->etag) : 0) + (e->last_modified ? strlen(e->last_modified) : 0);
}

static void entry_free(cache_entry *e)
{
	assert(e->magic == CACHE_MAGIC && e->refs == 0 && !e->in_table);
	e->magic = 0;
	free(e->key);
	free(e->vary_names);
	free(e->vary_key);
	buf_free(&e->headers);
	free(e->body);
	free(e->etag);
	free(e->last_modified);
	free(e);
}

cache_entry *cache_entry_hold(cache_entry *e)
{
	assert(e->magic == CACHE_MAGIC && e->refs > 0);
	e->refs++;
	return e;
}

void cache_entry_release(cache_entry **ep)
{
	cache_entry *e = *ep;
	if (!e)
		return;
	*ep = NULL;
	assert(e->magic == CACHE_MAGIC && e->refs > 0);
	if (--e->refs == 0)
		entry_free(e);
}

static void lru_unlink(cache *c, cache_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_front(cache *c, cache_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

/* Take e out of the table (its reference from the table goes). */
static void entry_remove(cache *c, cache_entry *e)
{
	assert(e->in_table);
	cache_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
	while (*pp && *pp != e)
		pp = &(*pp)->chain;
	if (*pp == NULL)
		abort(); /* cannot happen: an entry in the table is in its chain */
	*pp = e->chain;
	e->chain = NULL;
	lru_unlink(c, e);
	c->bytes -= e->bytes;
	c->entries--;
	e->in_table = false;
	cache_entry_release(&e);
}

/* ---------------------------------------------------------- the disk tier
 *
 * What the memory LRU evicts goes to a file of its own in disk_dir (mode
 * 0600, the directory 0700), named by a counter, when it fits the disk
 * bound (disk_max bytes, an LRU of its own); a lookup that misses memory
 * looks there, and a match comes back into memory (its file removed: an
 * entry lives in one tier). The index is in memory; the directory is
 * emptied when the cache starts (cache_set_disk), so the tier extends the
 * capacity, it does not survive a restart. Purges and invalidations reach
 * both tiers. A file that cannot be written or read back (short, damaged,
 * another version) is dropped and counted (disk_errors), never served.
 *
 * File: u32 magic, u32 status, i64 request_time, response_time,
 * date_value, age_value, then u32 lengths of key, vary names, vary key
 * (0xffffffff: none), headers, body, then those bytes.
 */
static void disk_path(const cache *c, uint64_t id, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%016llx" DISK_SUFFIX, c->disk_dir, (unsigned long long)id);
}

static void disk_unlink_lru(cache *c, disk_rec *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		c->dhead = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		c->dtail = r->prev;
	r->prev = r->next = NULL;
}

/* Forget r and remove its file. */
static void disk_remove(cache *c, disk_rec *r)
{
	disk_rec **pp = &c->dbuckets[r->hash & (c->nbuckets - 1)];
	while (*pp && *pp != r)
		pp = &(*pp)->chain;
	if (*pp)
		*pp = r->chain;
	disk_unlink_lru(c, r);
	char path[640];
	disk_path(c, r->id, path, sizeof path);
	unlink(path);
	c->disk_bytes -= r->cost;
	c->disk_entries--;
	free(r->key);
	free(r->vary_names);
	free(r->vary_key);
	free(r);
}

/* The disk record of req's variant of key (the most recent), or NULL. */
static disk_rec *disk_find(cache *c, const http_message *req, const char *key, size_t key_len, uint32_t h)
{
	if (!c->dbuckets)
		return NULL;
	disk_rec *best = NULL;
	for (disk_rec *r = c->dbuckets[h & (c->nbuckets - 1)]; r; r = r->chain) {
		if (r->hash != h || r->key_len != key_len || memcmp(r->key, key, key_len) != 0)
			continue;
		if (r->vary_names) {
			buf vk;
			buf_init(&vk, VARY_MAX);
			bool match = vary_key(req, r->vary_names, &vk) == 0 && strcmp(vk.data ? vk.data : "", r->vary_key) == 0;
			buf_free(&vk);
			if (!match)
				continue;
		}
		if (!best || r->response_time > best->response_time)
			best = r;
	}
	return best;
}

static void put32(buf *b, uint32_t v)
{
	buf_add(b, (const char *)&v, sizeof v);
}

static void put64(buf *b, int64_t v)
{
	buf_add(b, (const char *)&v, sizeof v);
}

/* e leaves memory: keep it on disk when the tier is on and it fits. */
static void disk_demote(cache *c, const cache_entry *e)
{
	if (!c->disk_max)
		return;
	size_t vnl = e->vary_names ? strlen(e->vary_names) : 0, vkl = e->vary_key ? strlen(e->vary_key) : 0;
	size_t size = 4 * 2 + 8 * 4 + 4 * 5 + e->key_len + vnl + vkl + e->headers.len + e->body_len;
	size_t cost = disk_cost(size, sizeof(disk_rec) + e->key_len + vnl + vkl + 3);
	if (cost > c->disk_max)
		return;
	buf b;
	buf_init(&b, size + 16);
	put32(&b, DISK_MAGIC);
	put32(&b, (uint32_t)e->status);
	put64(&b, e->request_time);
	put64(&b, e->response_time);
	put64(&b, e->date_value);
	put64(&b, e->age_value);
	put32(&b, (uint32_t)e->key_len);
	put32(&b, e->vary_names ? (uint32_t)vnl : 0xffffffffu);
	put32(&b, e->vary_key ? (uint32_t)vkl : 0xffffffffu);
	put32(&b, (uint32_t)e->headers.len);
	put32(&b, (uint32_t)e->body_len);
	buf_add(&b, e->key, e->key_len);
	if (vnl)
		buf_add(&b, e->vary_names, vnl);
	if (vkl)
		buf_add(&b, e->vary_key, vkl);
	if (e->headers.len)
		buf_add(&b, e->headers.data, e->headers.len);
	if (e->body_len)
		buf_add(&b, e->body, e->body_len);
	disk_rec *r = calloc(1, sizeof *r);
	if (b.len != size || !r || !(r->key = strndup(e->key, e->key_len)) ||
	    (e->vary_names && !(r->vary_names = strdup(e->vary_names))) ||
	    (e->vary_key && !(r->vary_key = strdup(e->vary_key)))) {
		if (r) {
			free(r->key);
			free(r->vary_names);
			free(r->vary_key);
			free(r);
		}
		buf_free(&b);
		c->disk_errors++;
		return;
	}
	/* the same variant on disk already is older: it goes */
	for (disk_rec *o = c->dbuckets[e->hash & (c->nbuckets - 1)], *next; o; o = next) {
		next = o->chain;
		if (o->hash == e->hash && o->key_len == e->key_len && memcmp(o->key, e->key, e->key_len) == 0 &&
		    ((!o->vary_key && !e->vary_key) || (o->vary_key && e->vary_key && strcmp(o->vary_key, e->vary_key) == 0)))
			disk_remove(c, o);
	}
	while (c->dtail && c->disk_bytes + cost > c->disk_max)
		disk_remove(c, c->dtail);
	r->id = c->disk_next_id++;
	char path[640];
	disk_path(c, r->id, path, sizeof path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	bool ok = fd >= 0 && write(fd, b.data, b.len) == (ssize_t)b.len; /* no fsync: a cache */
	if (fd >= 0 && close(fd) != 0)
		ok = false;
	buf_free(&b);
	if (!ok) {
		unlink(path);
		free(r->key);
		free(r->vary_names);
		free(r->vary_key);
		free(r);
		c->disk_errors++;
		return;
	}
	r->hash = e->hash;
	r->key_len = e->key_len;
	r->host_len = e->host_len;
	r->response_time = e->response_time;
	r->bytes = size;
	r->cost = cost;
	r->chain = c->dbuckets[r->hash & (c->nbuckets - 1)];
	c->dbuckets[r->hash & (c->nbuckets - 1)] = r;
	r->next = c->dhead;
	if (c->dhead)
		c->dhead->prev = r;
	c->dhead = r;
	if (!c->dtail)
		c->dtail = r;
	c->disk_bytes += cost;
	c->disk_entries++;
	c->disk_written++;
}

static bool take(const unsigned char **p, const unsigned char *end, void *out, size_t n)
{
	if ((size_t)(end - *p) < n)
		return false;
	memcpy(out, *p, n);
	*p += n;
	return true;
}

/* A string of n bytes (0xffffffff: none, *out NULL) from the file. */
static bool take_str(const unsigned char **p, const unsigned char *end, uint32_t n, char **out)
{
	*out = NULL;
	if (n == 0xffffffffu)
		return true;
	if ((size_t)(end - *p) < n || !(*out = malloc((size_t)n + 1)))
		return false;
	memcpy(*out, *p, n);
	(*out)[n] = '\0';
	*p += n;
	return true;
}

static void evict_for(cache *c, size_t need);

/* Bring r's entry back into memory (its file goes). NULL when the file is
 * unusable (dropped, counted) or memory is short. */
static cache_entry *disk_promote(cache *c, disk_rec *r)
{
	char path[640];
	disk_path(c, r->id, path, sizeof path);
	size_t len = 0;
	unsigned char *data = (unsigned char *)util_read_file(path, r->bytes + 1, &len);
	cache_entry *e = calloc(1, sizeof *e);
	const unsigned char *p = data, *end = data ? data + len : NULL;
	uint32_t magic = 0, status = 0, kl = 0, vnl = 0, vkl = 0, hl = 0, bl = 0;
	char *headers = NULL;
	bool ok = data && e && len == r->bytes && take(&p, end, &magic, 4) && magic == DISK_MAGIC &&
		  take(&p, end, &status, 4) && take(&p, end, &e->request_time, 8) &&
		  take(&p, end, &e->response_time, 8) && take(&p, end, &e->date_value, 8) &&
		  take(&p, end, &e->age_value, 8) && take(&p, end, &kl, 4) && take(&p, end, &vnl, 4) &&
		  take(&p, end, &vkl, 4) && take(&p, end, &hl, 4) && take(&p, end, &bl, 4) &&
		  kl == r->key_len && hl != 0xffffffffu && bl != 0xffffffffu && take_str(&p, end, kl, &e->key) &&
		  memcmp(e->key, r->key, kl) == 0 && take_str(&p, end, vnl, &e->vary_names) &&
		  take_str(&p, end, vkl, &e->vary_key) && take_str(&p, end, hl, &headers) &&
		  take_str(&p, end, bl, &e->body) && p == end;
	free(data);
	if (e) {
		e->magic = CACHE_MAGIC;
		e->refs = 1;
		buf_init(&e->headers, HEADERS_MAX);
	}
	if (ok) {
		e->status = (int)status;
		e->key_len = kl;
		e->host_len = r->host_len;
		e->hash = r->hash;
		e->body_len = bl;
		ok = buf_add(&e->headers, headers ? headers : "", hl) == 0 && entry_derive(e) == 0;
	}
	free(headers);
	disk_remove(c, r); /* one tier at a time; a bad file is not kept either */
	if (!ok) {
		c->disk_errors++;
		if (e) {
			e->refs = 0;
			entry_free(e);
		}
		return NULL;
	}
	e->bytes = entry_bytes(e);
	if (e->bytes > c->max_bytes) {
		e->refs = 0;
		entry_free(e);
		return NULL;
	}
	evict_for(c, e->bytes);
	e->in_table = true;
	e->chain = c->buckets[e->hash & (c->nbuckets - 1)];
	c->buckets[e->hash & (c->nbuckets - 1)] = e;
	lru_front(c, e);
	c->bytes += e->bytes;
	c->entries++;
	c->disk_promoted++;
	return e;
}

int cache_set_disk(cache *c, const char *dir, size_t max_bytes, char *err, size_t errcap)
{
	if (snprintf(c->disk_dir, sizeof c->disk_dir, "%s", dir) >= (int)sizeof c->disk_dir) {
		snprintf(err, errcap, "%s: path too long", dir);
		return ERR_INVAL;
	}
	if (util_mkdirs(dir, 0700) != 0 || chmod(dir, 0700) != 0) {
		snprintf(err, errcap, "%s: cannot create: %s", dir, strerror(errno));
		return ERR_IO;
	}
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, errcap, "%s: cannot open: %s", dir, strerror(errno));
		return ERR_IO;
	}
	struct dirent *de;
	while ((de = readdir(d))) { /* an earlier run's files: stale, and not indexed */
		size_t n = strlen(de->d_name);
		if (n == 16 + strlen(DISK_SUFFIX) && strcmp(de->d_name + 16, DISK_SUFFIX) == 0) {
			char path[800];
			snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
			unlink(path);
		}
	}
	closedir(d);
	if (!c->dbuckets && !(c->dbuckets = calloc(c->nbuckets, sizeof *c->dbuckets))) {
		snprintf(err, errcap, "out of memory");
		return ERR_NOMEM;
	}
	c->disk_max = max_bytes;
	return 0;
}

static void evict_for(cache *c, size_t need)
{
	while (c->tail && c->bytes + need > c->max_bytes) {
		c->evicted++;
		disk_demote(c, c->tail);
		entry_remove(c, c->tail);
	}
}

/* ------------------------------------------------------------- the cache */

cache *cache_new(size_t max_bytes, size_t max_object_bytes)
{
	cache *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->magic = CACHE_MAGIC;
	c->max_bytes = max_bytes;
	c->max_object_bytes = max_object_bytes;
	/* about one bucket per 4 KiB of budget */
	size_t want = max_bytes / 4096;
	c->nbuckets = 256;
	while (c->nbuckets < want && c->nbuckets < (1u << 20))
		c->nbuckets <<= 1;
	c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->reason = "";
	return c;
}

void cache_free(cache **cp)
{
	cache *c = *cp;
	if (!c)
		return;
	*cp = NULL;
	assert(c->magic == CACHE_MAGIC);
	while (c->head)
		entry_remove(c, c->head);
	while (c->dhead)
		disk_remove(c, c->dhead);
	free(c->dbuckets);
	for (int i = 0; i < PENDING_BUCKETS; i++)
		while (c->pend[i]) {
			pending *p = c->pend[i];
			c->pend[i] = p->next;
			free(p->key);
			free(p);
		}
	free(c->buckets);
	c->magic = 0;
	free(c);
}

static bool request_cc(const http_message *req, cache_control *cc)
{
	cache_control_init(cc);
	bool seen = false;
	for (size_t i = 0; i < req->field_count; i++)
		if (field_is(&req->fields[i], "cache-control")) {
			cache_control_parse(cc, req->fields[i].value, req->fields[i].value_len);
			seen = true;
		}
	if (!seen) {
		/* Pragma: no-cache, only without Cache-Control (RFC 9111 5.4) */
		size_t len;
		const char *p = http_message_field(req, "Pragma", &len);
		if (p) {
			cache_control pr;
			cache_control_init(&pr);
			cache_control_parse(&pr, p, len);
			cc->no_cache = pr.no_cache;
		}
	}
	return seen;
}

/* The variant of key matching req, or NULL. */
static cache_entry *find_variant(cache *c, const http_message *req, const char *key, size_t key_len, uint32_t h)
{
	cache_entry *best = NULL;
	for (cache_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->chain) {
		if (e->hash != h || e->key_len != key_len || memcmp(e->key, key, key_len) != 0)
			continue;
		if (e->vary_names) {
			buf vk;
			buf_init(&vk, VARY_MAX);
			bool match = vary_key(req, e->vary_names, &vk) == 0 && strcmp(vk.data ? vk.data : "", e->vary_key) == 0;
			buf_free(&vk);
			if (!match)
				continue;
		}
		if (!best || e->response_time > best->response_time)
			best = e; /* the most recent (RFC 9111 4.1) */
	}
	return best;
}

const char *cache_store_reason(const cache *c)
{
	return c->reason;
}

bool cache_response_may_store(const cache *c, const http_message *req, const http_message *resp)
{
	assert(c->magic == CACHE_MAGIC);
	cache_control rq;
	request_cc(req, &rq);
	if (c->max_bytes == 0 || strcmp(req->method, "GET") != 0 || rq.no_store)
		return false;
	int st = resp->status;
	size_t vlen;
	if (!(heuristic_status(st) && st != 206) && st != 302 && st != 307)
		return false;
	if (http_message_field(resp, "Content-Range", &vlen))
		return false;
	derived d = derive(resp->fields, resp->field_count, st, 0);
	if (d.cc.no_store || d.cc.private_)
		return false;
	if (http_message_field(req, "Authorization", &vlen) && !d.cc.public_ && d.cc.s_maxage < 0 &&
	    !d.cc.must_revalidate)
		return false;
	if (http_message_field(resp, "Set-Cookie", &vlen) && !d.cc.public_)
		return false;
	if (!d.explicit_ && !d.cc.public_ && !heuristic_status(st))
		return false;
	buf names;
	buf_init(&names, 2048);
	int vn = vary_names(resp->fields, resp->field_count, &names);
	buf_free(&names);
	return vn == 0;
}

#define NOT_STORABLE(why)                    \
	do {                                 \
		c->reason = why;             \
		rc = CACHE_NOT_STORABLE;     \
		goto fail;                   \
	} while (0)

int cache_store(cache *c, const http_message *req, const http_message *resp, const char *body, size_t len,
		int64_t request_time, int64_t response_time)
{
	assert(c->magic == CACHE_MAGIC);
	int rc = CACHE_STORED;
	char key[CACHE_KEY_MAX];
	cache_entry *e = NULL;
	buf names;
	buf_init(&names, 2048);
	int kl = cache_request_key(req, key, sizeof key);
	uint32_t h = kl > 0 ? hash_key(key, (size_t)kl) : 0;
	/* whatever happens, an older matching variant is replaced or goes */
	cache_entry *old = kl > 0 ? find_variant(c, req, key, (size_t)kl, h) : NULL;
	if (old)
		entry_remove(c, old);
	for (disk_rec *r; kl > 0 && (r = disk_find(c, req, key, (size_t)kl, h));)
		disk_remove(c, r);
	if (c->max_bytes == 0)
		NOT_STORABLE("the cache is off");
	if (kl <= 0)
		NOT_STORABLE("no key");
	if (strcmp(req->method, "GET") != 0)
		NOT_STORABLE("not a GET");
	cache_control rq;
	request_cc(req, &rq);
	if (rq.no_store)
		NOT_STORABLE("request no-store");
	if (len > c->max_object_bytes) {
		c->reason = "larger than cache_max_object_bytes";
		rc = ERR_LIMIT;
		goto fail;
	}
	e = calloc(1, sizeof *e);
	if (!e)
		goto nomem;
	e->magic = CACHE_MAGIC;
	e->refs = 1;
	e->status = resp->status;
	buf_init(&e->headers, HEADERS_MAX);
	for (size_t i = 0; i < resp->field_count; i++) {
		const http_field *f = &resp->fields[i];
		if (not_stored(f->name, f->name_len))
			continue;
		if (buf_add(&e->headers, f->name, f->name_len) || buf_adds(&e->headers, ": ") ||
		    buf_add(&e->headers, f->value, f->value_len) || buf_adds(&e->headers, "\r\n"))
			NOT_STORABLE("headers too large");
	}
	response_times(e, resp, request_time, response_time);
	http_field f[MAX_FIELDS];
	size_t n = block_fields(e->headers.data ? e->headers.data : "", e->headers.len, f, MAX_FIELDS);
	derived d = derive(f, n, resp->status, e->date_value);
	size_t vlen;
	bool default_status = heuristic_status(resp->status) && resp->status != 206;
	bool other_status = resp->status == 302 || resp->status == 307;
	if (!default_status && !other_status)
		NOT_STORABLE("status not cacheable");
	if (resp->status == 206 || fields_get(f, n, "content-range", &vlen))
		NOT_STORABLE("partial content");
	if (d.cc.no_store)
		NOT_STORABLE("no-store");
	if (d.cc.private_)
		NOT_STORABLE("private");
	if (http_message_field(req, "Authorization", &vlen) && !d.cc.public_ && d.cc.s_maxage < 0 &&
	    !d.cc.must_revalidate)
		NOT_STORABLE("Authorization without public, s-maxage or must-revalidate");
	if (fields_get(f, n, "set-cookie", &vlen) && !d.cc.public_)
		NOT_STORABLE("Set-Cookie without public");
	if (!d.explicit_ && !d.cc.public_ && !default_status)
		NOT_STORABLE("no explicit freshness");
	if (d.lifetime == 0 && !d.has_validator)
		NOT_STORABLE("neither fresh nor revalidatable");
	int vn = vary_names(f, n, &names);
	if (vn == 1)
		NOT_STORABLE("Vary: *");
	if (vn < 0)
		NOT_STORABLE("Vary too long");
	if (!(e->key = strndup(key, (size_t)kl)))
		goto nomem;
	e->key_len = (size_t)kl;
	e->host_len = (size_t)(strchr(e->key, ' ') - e->key);
	e->hash = h;
	if (names.len) {
		buf vk;
		buf_init(&vk, VARY_MAX);
		if (vary_key(req, names.data, &vk) != 0) {
			buf_free(&vk);
			NOT_STORABLE("Vary key too long");
		}
		e->vary_key = buf_take(&vk, NULL);
		e->vary_names = buf_take(&names, NULL);
		if (!e->vary_key)
			e->vary_key = strdup("");
		if (!e->vary_key || !e->vary_names)
			goto nomem;
	}
	if (len) {
		if (!(e->body = malloc(len + 1)))
			goto nomem;
		memcpy(e->body, body, len);
		e->body[len] = '\0'; /* for callers that treat it as text */
		e->body_len = len;
	}
	if (entry_derive(e) != 0)
		goto nomem;
	e->bytes = entry_bytes(e);
	if (e->bytes > c->max_bytes) {
		c->reason = "larger than the cache";
		rc = ERR_LIMIT;
		goto fail;
	}
	evict_for(c, e->bytes);
	e->in_table = true;
	e->chain = c->buckets[h & (c->nbuckets - 1)];
	c->buckets[h & (c->nbuckets - 1)] = e;
	lru_front(c, e);
	c->bytes += e->bytes;
	c->entries++;
	c->stored++;
	c->reason = "";
	buf_free(&names);
	return CACHE_STORED;
nomem:
	c->reason = "out of memory";
	rc = ERR_NOMEM;
fail:
	if (e) {
		e->refs = 0;
		entry_free(e);
	}
	buf_free(&names);
	return rc;
}

int cache_forget(cache *c, const http_message *req)
{
	char key[CACHE_KEY_MAX];
	int kl = cache_request_key(req, key, sizeof key);
	if (kl <= 0)
		return 0;
	uint32_t h = hash_key(key, (size_t)kl);
	int n = 0;
	for (cache_entry *e; (e = find_variant(c, req, key, (size_t)kl, h)); n++)
		entry_remove(c, e);
	for (disk_rec *r; (r = disk_find(c, req, key, (size_t)kl, h)); n++)
		disk_remove(c, r);
	return n;
}

bool cache_request_only_if_cached(const http_message *req)
{
	cache_control cc;
	request_cc(req, &cc);
	return cc.only_if_cached;
}

cache_verdict cache_lookup(cache *c, const http_message *req, int64_t now, cache_entry **out)
{
	assert(c->magic == CACHE_MAGIC);
	*out = NULL;
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
		return CACHE_MISS;
	char key[CACHE_KEY_MAX];
	int kl = cache_request_key(req, key, sizeof key);
	if (kl <= 0 || (c->entries == 0 && c->disk_entries == 0))
		return CACHE_MISS;
	uint32_t h = hash_key(key, (size_t)kl);
	cache_entry *e = find_variant(c, req, key, (size_t)kl, h);
	if (!e) { /* the disk tier: back into memory */
		disk_rec *r = disk_find(c, req, key, (size_t)kl, h);
		if (r)
			e = disk_promote(c, r);
	}
	if (!e)
		return CACHE_MISS;
	lru_unlink(c, e);
	lru_front(c, e);
	e->refs++;
	*out = e;
	cache_control rq;
	request_cc(req, &rq);
	int64_t age = cache_entry_age(e, now);
	if (e->no_cache || rq.no_cache)
		return CACHE_VALIDATE;
	bool fresh = e->lifetime > age;
	if (fresh && rq.max_age >= 0 && age > rq.max_age)
		return CACHE_VALIDATE;
	if (fresh && rq.min_fresh >= 0 && e->lifetime - age < rq.min_fresh)
		return CACHE_VALIDATE;
	if (fresh)
		return CACHE_FRESH;
	int64_t staleness = age - e->lifetime;
	if (e->must_revalidate)
		return CACHE_VALIDATE;
	if (rq.max_stale >= 0 && staleness <= rq.max_stale)
		return CACHE_STALE_OK;
	if (e->stale_while_revalidate >= 0 && staleness <= e->stale_while_revalidate)
		return CACHE_STALE_REFRESH;
	return CACHE_VALIDATE;
}

int cache_entry_status(const cache_entry *e)
{
	return e->status;
}

const char *cache_entry_headers(const cache_entry *e, size_t *len)
{
	*len = e->headers.len;
	return e->headers.data ? e->headers.data : "";
}

const char *cache_entry_body(const cache_entry *e, size_t *len)
{
	*len = e->body_len;
	return e->body ? e->body : "";
}

int64_t cache_entry_age(const cache_entry *e, int64_t now)
{
	int64_t resident = now - e->response_time;
	return e->corrected_initial_age + (resident > 0 ? resident : 0);
}

int64_t cache_entry_lifetime(const cache_entry *e)
{
	return e->lifetime;
}

const char *cache_entry_etag(const cache_entry *e)
{
	return e->etag;
}

const char *cache_entry_last_modified(const cache_entry *e)
{
	return e->last_modified;
}

/* One entity-tag of a list at *p (weak prefix kept), advancing *p. */
static bool next_etag(const char **p, const char *end, const char **tag, size_t *len)
{
	const char *s = *p;
	while (s < end && (is_ws(*s) || *s == ','))
		s++;
	if (s >= end)
		return false;
	const char *t = s;
	if (end - s >= 2 && s[0] == 'W' && s[1] == '/')
		s += 2;
	if (s < end && *s == '"') {
		const char *q = memchr(s + 1, '"', (size_t)(end - s - 1));
		s = q ? q + 1 : end;
	} else {
		while (s < end && *s != ',' && !is_ws(*s))
			s++;
	}
	*tag = t;
	*len = (size_t)(s - t);
	*p = s;
	return true;
}

/* Weak comparison (RFC 9110 8.8.3.2): equal once W/ is ignored. */
static bool etag_weak_eq(const char *a, size_t al, const char *b, size_t bl)
{
	if (al >= 2 && a[0] == 'W' && a[1] == '/') {
		a += 2;
		al -= 2;
	}
	if (bl >= 2 && b[0] == 'W' && b[1] == '/') {
		b += 2;
		bl -= 2;
	}
	return al == bl && al > 0 && memcmp(a, b, al) == 0;
}

bool cache_entry_not_modified_for(const cache_entry *e, const http_message *req)
{
	if (e->status != 200)
		return false;
	size_t len;
	const char *inm = http_message_field(req, "If-None-Match", &len);
	if (inm) {
		if (!e->etag)
			return len == 1 && inm[0] == '*';
		for (size_t i = 0; i < req->field_count; i++) {
			if (!field_is(&req->fields[i], "if-none-match"))
				continue;
			const char *p = req->fields[i].value, *end = p + req->fields[i].value_len, *tag;
			size_t tl;
			while (next_etag(&p, end, &tag, &tl))
				if ((tl == 1 && tag[0] == '*') || etag_weak_eq(tag, tl, e->etag, strlen(e->etag)))
					return true;
		}
		return false; /* If-Modified-Since is ignored with If-None-Match */
	}
	const char *ims = http_message_field(req, "If-Modified-Since", &len);
	if (!ims || !e->last_modified)
		return false;
	int64_t since = cache_parse_http_date(ims, len);
	int64_t lm = cache_parse_http_date(e->last_modified, strlen(e->last_modified));
	return since >= 0 && lm >= 0 && lm <= since;
}

bool cache_entry_current(const cache_entry *e)
{
	return e->in_table;
}

bool cache_entry_usable_on_error(const cache_entry *e, const http_message *req, int64_t now)
{
	if (e->no_cache || e->must_revalidate)
		return false;
	cache_control rq;
	request_cc(req, &rq);
	int64_t staleness = cache_entry_age(e, now) - e->lifetime;
	int64_t limit = CACHE_STALE_ON_ERROR_MAX_S;
	if (e->stale_if_error >= 0 || rq.stale_if_error >= 0)
		limit = e->stale_if_error > rq.stale_if_error ? e->stale_if_error : rq.stale_if_error;
	return staleness <= limit;
}

int cache_update_304(cache *c, cache_entry *e, const http_message *resp, int64_t request_time,
		     int64_t response_time)
{
	assert(c->magic == CACHE_MAGIC && e->magic == CACHE_MAGIC);
	buf merged;
	buf_init(&merged, HEADERS_MAX);
	http_field f[MAX_FIELDS];
	size_t n = block_fields(e->headers.data ? e->headers.data : "", e->headers.len, f, MAX_FIELDS);
	int rc = 0;
	/* the stored fields the 304 does not replace, then the 304's */
	for (size_t i = 0; i < n && rc == 0; i++) {
		bool replaced = false;
		for (size_t k = 0; k < resp->field_count; k++)
			if (resp->fields[k].name_len == f[i].name_len &&
			    strncasecmp(resp->fields[k].name, f[i].name, f[i].name_len) == 0 &&
			    !not_stored(f[i].name, f[i].name_len))
				replaced = true;
		if (!replaced)
			rc = buf_add(&merged, f[i].name, f[i].name_len) || buf_adds(&merged, ": ") ||
			     buf_add(&merged, f[i].value, f[i].value_len) || buf_adds(&merged, "\r\n");
	}
	for (size_t k = 0; k < resp->field_count && rc == 0; k++) {
		const http_field *r = &resp->fields[k];
		if (not_stored(r->name, r->name_len))
			continue;
		rc = buf_add(&merged, r->name, r->name_len) || buf_adds(&merged, ": ") ||
		     buf_add(&merged, r->value, r->value_len) || buf_adds(&merged, "\r\n");
	}
	if (rc != 0) {
		buf_free(&merged);
		if (e->in_table)
			entry_remove(c, e);
		return ERR_LIMIT;
	}
	buf_free(&e->headers);
	e->headers = merged;
	response_times(e, resp, request_time, response_time);
	rc = entry_derive(e);
	if (e->in_table) {
		c->bytes -= e->bytes;
		e->bytes = entry_bytes(e);
		c->bytes += e->bytes;
		if (rc != 0) {
			entry_remove(c, e);
			return rc;
		}
		/* grown past the bound: make room, this entry first in line to stay */
		lru_unlink(c, e);
		lru_front(c, e);
		if (e->bytes > c->max_bytes) {
			entry_remove(c, e); /* alone larger than the cache */
			return ERR_LIMIT;
		}
		if (c->bytes > c->max_bytes) {
			c->bytes -= e->bytes;
			lru_unlink(c, e);
			evict_for(c, e->bytes);
			lru_front(c, e);
			c->bytes += e->bytes;
		}
	} else {
		e->bytes = entry_bytes(e);
	}
	return rc;
}

/* ----------------------------------------------------------- invalidation */

static int remove_matching(cache *c, const char *host, size_t host_len, const char *target, bool prefix)
{
	int removed = 0;
	size_t tl = strlen(target);
	cache_entry *e = c->head;
	while (e) {
		cache_entry *next = e->next;
		const char *et = e->key + e->host_len + 1;
		size_t etl = e->key_len - e->host_len - 1;
		bool host_ok = !host || (e->host_len == host_len && strncasecmp(e->key, host, host_len) == 0);
		bool target_ok = prefix ? (etl >= tl && memcmp(et, target, tl) == 0) : (etl == tl && memcmp(et, target, tl) == 0);
		if (host_ok && target_ok) {
			entry_remove(c, e);
			removed++;
		}
		e = next;
	}
	for (disk_rec *r = c->dhead, *next; r; r = next) {
		next = r->next;
		const char *rt = r->key + r->host_len + 1;
		size_t rtl = r->key_len - r->host_len - 1;
		bool host_ok = !host || (r->host_len == host_len && strncasecmp(r->key, host, host_len) == 0);
		bool target_ok = prefix ? (rtl >= tl && memcmp(rt, target, tl) == 0) : (rtl == tl && memcmp(rt, target, tl) == 0);
		if (host_ok && target_ok) {
			disk_remove(c, r);
			removed++;
		}
	}
	c->invalidated += (unsigned long)removed;
	return removed;
}

int cache_purge_url(cache *c, const char *host, const char *target)
{
	return remove_matching(c, host, host ? strlen(host) : 0, target, false);
}

int cache_purge_prefix(cache *c, const char *host, const char *prefix)
{
	return remove_matching(c, host, host ? strlen(host) : 0, prefix, true);
}

/* A Location / Content-Location on the request's host: its target. */
static int invalidate_reference(cache *c, const char *host, size_t hl, const char *v, size_t len)
{
	char target[CACHE_KEY_MAX];
	const char *path = NULL;
	size_t pl = 0;
	if (len && v[0] == '/' && !(len > 1 && v[1] == '/')) {
		path = v;
		pl = len;
	} else {
		size_t skip = len >= 8 && strncasecmp(v, "https://", 8) == 0 ? 8
			      : len >= 7 && strncasecmp(v, "http://", 7) == 0 ? 7
									 : 0;
		if (!skip)
			return 0; /* relative forms other than absolute paths: left alone */
		const char *auth = v + skip;
		const char *slash = memchr(auth, '/', len - skip);
		size_t al = slash ? (size_t)(slash - auth) : len - skip;
		if (al != hl || strncasecmp(auth, host, hl) != 0)
			return 0; /* another host: not ours to invalidate (RFC 9111 4.4) */
		path = slash ? slash : "/";
		pl = slash ? len - skip - al : 1;
	}
	const char *hash = memchr(path, '#', pl);
	if (hash)
		pl = (size_t)(hash - path);
	if (pl == 0 || pl >= sizeof target)
		return 0;
	memcpy(target, path, pl);
	target[pl] = '\0';
	return remove_matching(c, host, hl, target, false);
}

int cache_invalidate_after(cache *c, const http_message *req, const http_message *resp)
{
	static const char *const safe[] = {"GET", "HEAD", "OPTIONS", "TRACE"};
	for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
		if (strcmp(req->method, safe[i]) == 0)
			return 0;
	if (resp->status < 200 || resp->status > 399 || !req->target)
		return 0;
	size_t hl = 0, len;
	const char *host = http_message_field(req, "Host", &hl);
	if (!host) {
		host = "";
		hl = 0;
	}
	int removed = remove_matching(c, host, hl, req->target, false);
	const char *v;
	if ((v = http_message_field(resp, "Location", &len)))
		removed += invalidate_reference(c, host, hl, v, len);
	if ((v = http_message_field(resp, "Content-Location", &len)))
		removed += invalidate_reference(c, host, hl, v, len);
	return removed;
}

/* ------------------------------------------------------------- coalescing */

static pending **pending_find(cache *c, const char *key, uint32_t h)
{
	pending **pp = &c->pend[h % PENDING_BUCKETS];
	while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->next;
	return pp;
}

int cache_fetch_begin(cache *c, const char *key, cache_wake_fn wake, void *arg)
{
	uint32_t h = hash_key(key, strlen(key));
	pending **pp = pending_find(c, key, h);
	if (*pp) {
		pending *p = *pp;
		if (p->count == CACHE_MAX_WAITERS)
			return ERR_LIMIT;
		p->waiters[p->count++] = (waiter){.wake = wake, .arg = arg};
		return 0;
	}
	if (c->npending >= CACHE_MAX_PENDING)
		return ERR_LIMIT;
	pending *p = calloc(1, sizeof *p);
	if (!p || !(p->key = strdup(key))) {
		free(p);
		return ERR_NOMEM;
	}
	p->hash = h;
	p->next = c->pend[h % PENDING_BUCKETS];
	c->pend[h % PENDING_BUCKETS] = p;
	c->npending++;
	return 1;
}

void cache_fetch_done(cache *c, const char *key)
{
	uint32_t h = hash_key(key, strlen(key));
	pending **pp = pending_find(c, key, h);
	pending *p = *pp;
	if (!p)
		return;
	*pp = p->next;
	c->npending--;
	/* unlinked first: a waiter may begin a new fetch of the same key */
	for (int i = 0; i < p->count; i++)
		p->waiters[i].wake(p->waiters[i].arg);
	free(p->key);
	free(p);
}

void cache_fetch_cancel(cache *c, const char *key, void *arg)
{
	uint32_t h = hash_key(key, strlen(key));
	pending *p = *pending_find(c, key, h);
	if (!p)
		return;
	for (int i = 0; i < p->count; i++)
		if (p->waiters[i].arg == arg) {
			memmove(&p->waiters[i], &p->waiters[i + 1], (size_t)(p->count - i - 1) * sizeof p->waiters[0]);
			p->count--;
			return;
		}
}

void cache_get_stats(const cache *c, cache_stats *out)
{
	*out = (cache_stats){.bytes = c->bytes, .entries = c->entries, .pending = c->npending, .stored = c->stored,
			     .evicted = c->evicted, .invalidated = c->invalidated, .disk_bytes = c->disk_bytes,
			     .disk_entries = c->disk_entries, .disk_written = c->disk_written,
			     .disk_promoted = c->disk_promoted, .disk_errors = c->disk_errors};
}
