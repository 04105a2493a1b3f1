/* util.c - small shared helpers; see util.h. */
#include "core/util.h"

#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "core/err.h"

int64_t util_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct timeval util_timeval_ms(int64_t ms)
{
	if (ms < 0)
		ms = 0;
	return (struct timeval){(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
}

void util_iso8601(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	/* fields are bounded by gmtime_r; the casts tell the compiler so */
	snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
		 (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
		 (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
		 (unsigned)tm.tm_sec % 100u, (unsigned)(ms % 1000));
}

void util_random(void *out, size_t len)
{
	if (RAND_bytes(out, (int)len) != 1) {
		/* Cannot happen with a working OpenSSL; continuing would hand out
		 * predictable tokens. */
		fprintf(stderr, "fatal: the CSPRNG failed\n");
		abort();
	}
}

void util_new_id(char out[27])
{
	static const char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	unsigned char raw[16];
	uint64_t ms = (uint64_t)util_now_ms();
	for (int i = 5; i >= 0; i--) {
		raw[i] = (unsigned char)(ms & 0xff);
		ms >>= 8;
	}
	util_random(raw + 6, 10);
	/* 128 bits -> 26 base32 digits, most significant first (2 pad bits). */
	unsigned bits = 0, acc = 0, n = 0;
	int first = 1;
	for (int i = 0; i < 16; i++) {
		acc = (acc << 8) | raw[i];
		bits += 8;
		if (first) { /* the first digit carries only the top 3 bits */
			out[n++] = alphabet[(acc >> (bits - 3)) & 31];
			bits -= 3;
			first = 0;
		}
		while (bits >= 5) {
			out[n++] = alphabet[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
		acc &= (1u << bits) - 1;
	}
	out[n] = '\0';
}

/* request ids are made on two loop threads (the API's and the S3 API's):
 * the prefix is drawn once, the counter is atomic */
static unsigned char request_id_prefix[8];
static pthread_once_t request_id_once = PTHREAD_ONCE_INIT;

static void request_id_init(void)
{
	util_random(request_id_prefix, sizeof request_id_prefix);
}

void util_request_id(char out[33])
{
	static _Atomic uint64_t counter;
	pthread_once(&request_id_once, request_id_init);
	unsigned char raw[16];
	memcpy(raw, request_id_prefix, 8);
	uint64_t n = atomic_fetch_add(&counter, 1) + 1;
	for (int i = 15; i >= 8; i--) {
		raw[i] = (unsigned char)(n & 0xff);
		n >>= 8;
	}
	util_hex(raw, sizeof raw, out);
}

size_t util_b64url_encode(const void *in, size_t len, char *out)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *p = in;
	size_t o = 0, i = 0;
	for (; i + 2 < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
		out[o++] = tbl[v >> 18];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = tbl[(v >> 6) & 63];
		out[o++] = tbl[v & 63];
	}
	if (len - i == 1) {
		unsigned v = (unsigned)p[i] << 16;
		out[o++] = tbl[v >> 18];
		out[o++] = tbl[(v >> 12) & 63];
	} else if (len - i == 2) {
		unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
		out[o++] = tbl[v >> 18];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = tbl[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '-') return 62;
	if (c == '_') return 63;
	return -1;
}

long util_b64url_decode(const char *in, size_t len, void *out, size_t outcap)
{
	unsigned char *o = out;
	size_t n = 0;
	unsigned acc = 0;
	int bits = 0;
	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_value((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n >= outcap)
				return -1;
			o[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0) /* non-canonical trailing bits */
		return -1;
	return (long)n;
}

void util_hex(const void *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = in;
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[p[i] >> 4];
		out[2 * i + 1] = hex[p[i] & 15];
	}
	out[2 * len] = '\0';
}

long util_unhex(const char *hex, void *out, size_t max)
{
	size_t n = hex ? strlen(hex) : 0;
	if (!hex || n % 2 || n / 2 > max)
		return -1;
	unsigned char *o = out;
	for (size_t i = 0; i < n / 2; i++) {
		int a = hex[2 * i], b = hex[2 * i + 1];
		a = a >= '0' && a <= '9' ? a - '0' : a >= 'a' && a <= 'f' ? a - 'a' + 10 : -1;
		b = b >= '0' && b <= '9' ? b - '0' : b >= 'a' && b <= 'f' ? b - 'a' + 10 : -1;
		if (a < 0 || b < 0)
			return -1;
		o[i] = (unsigned char)(a * 16 + b);
	}
	return (long)(n / 2);
}

bool util_query_param(const char *target, const char *name, char *out, size_t cap)
{
	const char *q = strchr(target, '?');
	size_t nl = strlen(name);
	while (q) {
		q++;
		if (strncmp(q, name, nl) == 0 && q[nl] == '=') {
			const char *v = q + nl + 1;
			size_t n = strcspn(v, "&");
			if (n >= cap)
				return false;
			memcpy(out, v, n);
			out[n] = '\0';
			return true;
		}
		q = strchr(q, '&');
	}
	return false;
}

void util_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int outlen = 32;
	if (EVP_Digest(data, len, out, &outlen, EVP_sha256(), NULL) != 1)
		abort(); /* cannot happen: SHA-256 is always available */
}

void util_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
		      unsigned char out[32])
{
	unsigned int outlen = 32;
	if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen))
		abort(); /* cannot happen */
}

bool util_equal_ct(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

int util_parse_int(const char *s, long long min, long long max, long long *out)
{
	if (!s || !*s)
		return ERR_INVAL;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return ERR_INVAL;
	*out = v;
	return 0;
}

int util_split_hostport(const char *s, char *host, size_t hostcap, int *port)
{
	const char *colon;
	const char *h = s;
	size_t hlen;
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return ERR_INVAL;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return ERR_INVAL;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= hostcap)
		return ERR_INVAL;
	long long p;
	if (util_parse_int(colon + 1, 1, 65535, &p))
		return ERR_INVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (int)p;
	return 0;
}

int util_parse_cidr(const char *s, unsigned char addr[16], int *family, int *bits)
{
	char text[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	if (n == 0 || n >= sizeof text)
		return ERR_INVAL;
	memcpy(text, s, n);
	text[n] = '\0';
	memset(addr, 0, 16);
	int fam = strchr(text, ':') ? 6 : 4;
	if (inet_pton(fam == 6 ? AF_INET6 : AF_INET, text, addr) != 1)
		return ERR_INVAL;
	int max = fam == 6 ? 128 : 32;
	long long len = max;
	if (slash && util_parse_int(slash + 1, 0, max, &len) != 0)
		return ERR_INVAL;
	for (int b = (int)len; b < max; b++) /* keep the prefix's bits only */
		addr[b / 8] &= (unsigned char)~(0x80u >> (b % 8));
	*family = fam;
	*bits = (int)len;
	return 0;
}

bool util_cidr_holds(const unsigned char prefix[16], int family, int bits, const char *text)
{
	unsigned char a[16];
	if (inet_pton(family == 6 ? AF_INET6 : AF_INET, text, a) != 1)
		return false;
	int whole = bits / 8;
	if (memcmp(prefix, a, (size_t)whole) != 0)
		return false;
	if (bits % 8) {
		unsigned char mask = (unsigned char)(0xff00u >> (bits % 8));
		if ((prefix[whole] & mask) != (a[whole] & mask))
			return false;
	}
	return true;
}

int util_mkdirs(const char *path, unsigned mode)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return ERR_IO;
	}
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return ERR_IO;
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return ERR_IO;
	return 0;
}

int util_write_file(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return ERR_IO;
	}
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return ERR_IO;
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		p += n;
		left -= (size_t)n;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0)
		goto fail;
	/* the rename itself must survive a crash: fsync the directory */
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof dir, ".");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
fail:;
	int saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved;
	return ERR_IO;
}

char *util_read_file(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *data = malloc(max + 1);
	if (!data) {
		fclose(f);
		errno = ENOMEM;
		return NULL;
	}
	size_t n = fread(data, 1, max + 1, f);
	int bad = ferror(f);
	fclose(f);
	if (bad || n > max) {
		free(data);
		errno = bad ? EIO : EFBIG;
		return NULL;
	}
	data[n] = '\0';
	if (len)
		*len = n;
	return data;
}
