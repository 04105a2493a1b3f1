/*
 * objects_load.c - the write side of bench/objects.py: durable PUTs of
 * objects over TLS with N concurrent clients, and the baseline they are
 * compared with, a plain loop of what a durable file write costs.
 *
 *   put    N threads, each with one keep-alive TLS connection to the S3
 *          listener, PUT a SIZE-byte object under a new key (BUCKET/tT/N)
 *          again and again for SECONDS, each request signed with SigV4
 *          (src/objects/sigv4.c's signer, x-amz-content-sha256 = the body's
 *          SHA-256). An answer counts when it is a 200 (the blob and its
 *          row are durable by then).
 *   fsync  N threads, each writing a SIZE-byte file the way the blob store
 *          commits a blob (blobstore.c): open DIR/tmp/X.tmp O_EXCL, write,
 *          fsync, close, rename into one of 256 fan-out directories
 *          DIR/data/ab/X, fsync that directory. No encryption, no checksums,
 *          no metadata, no network: the floor of a durable file write.
 *
 * Each prints one JSON line: operations, errors, seconds, operations and
 * MB (10^6 bytes) per second, latency p50/p99/max in microseconds.
 * The access key comes from the environment (S3_ACCESS_KEY_ID,
 * S3_SECRET_ACCESS_KEY), never from the command line. Built by the Makefile
 * (build/bench/objects_load, linked with libtandem.a for the signer).
 *
 *   objects_load put HOST PORT CAFILE REGION BUCKET SIZE THREADS SECONDS
 *   objects_load fsync DIR SIZE THREADS SECONDS
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "core/buf.h"
#include "objects/sigv4.h"

#define THREADS_MAX 1024
#define SAMPLES_MAX 200000 /* latencies kept per thread (the first ones) */
#define HEAD_MAX 16384     /* an answer's head */

typedef struct shared {
	/* put */
	const char *host, *port, *region, *bucket, *akid, *secret;
	SSL_CTX *ctx;
	char body_sha[65];
	/* fsync */
	const char *dir;
	/* both */
	const char *body;
	size_t size;
	int64_t deadline_us;
} shared;

typedef struct worker {
	const shared *sh;
	int id;
	pthread_t thread;
	uint64_t ops, errors;
	int64_t *lat;
	size_t nlat;
	char last_error[160];
} worker;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void note(worker *w, int64_t t0)
{
	w->ops++;
	if (w->nlat < SAMPLES_MAX)
		w->lat[w->nlat++] = now_us() - t0;
}

static void note_error(worker *w, const char *what)
{
	w->errors++;
	snprintf(w->last_error, sizeof w->last_error, "%s", what);
}

/* ------------------------------------------------------------------ put */

typedef struct tls_conn {
	int fd;
	SSL *ssl;
} tls_conn;

static void tls_close(tls_conn *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

/* 0, or -1 with c closed. */
static int tls_open(const shared *sh, tls_conn *c)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
	c->fd = -1;
	c->ssl = NULL;
	if (getaddrinfo(sh->host, sh->port, &hints, &ai) != 0 || !ai)
		return -1;
	c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		freeaddrinfo(ai);
		tls_close(c);
		return -1;
	}
	freeaddrinfo(ai);
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	c->ssl = SSL_new(sh->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1) {
		tls_close(c);
		return -1;
	}
	return 0;
}

static int tls_write_all(tls_conn *c, const char *p, size_t n)
{
	while (n > 0) {
		size_t done = 0;
		if (SSL_write_ex(c->ssl, p, n, &done) != 1)
			return -1;
		p += done;
		n -= done;
	}
	return 0;
}

/* Reads one answer (head and Content-Length body). Its status, or -1. */
static int read_answer(tls_conn *c)
{
	char head[HEAD_MAX + 1];
	size_t len = 0;
	char *end = NULL;
	while (!end) {
		size_t got = 0;
		if (len == HEAD_MAX || SSL_read_ex(c->ssl, head + len, HEAD_MAX - len, &got) != 1)
			return -1;
		len += got;
		head[len] = '\0';
		end = strstr(head, "\r\n\r\n");
	}
	int status = 0;
	if (sscanf(head, "HTTP/1.1 %d", &status) != 1)
		return -1;
	long long clen = 0;
	for (char *line = strstr(head, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
		if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
			clen = strtoll(line + 17, NULL, 10);
	}
	long long have = (long long)(len - (size_t)(end + 4 - head));
	char sink[4096];
	while (have < clen) {
		size_t got = 0;
		if (SSL_read_ex(c->ssl, sink, sizeof sink, &got) != 1)
			return -1;
		have += (long long)got;
	}
	return status;
}

static void *put_thread(void *arg)
{
	worker *w = arg;
	const shared *sh = w->sh;
	tls_conn c = {.fd = -1};
	buf auth, req;
	buf_init(&auth, 1024);
	buf_init(&req, HEAD_MAX);
	char hosthdr[300];
	snprintf(hosthdr, sizeof hosthdr, "%s:%s", sh->host, sh->port);
	for (uint64_t n = 0; now_us() < sh->deadline_us; n++) {
		if (c.ssl == NULL && tls_open(sh, &c) != 0) {
			note_error(w, "cannot connect");
			usleep(10000);
			continue;
		}
		char path[512], amz_date[17];
		snprintf(path, sizeof path, "/%s/t%d/%" PRIu64, sh->bucket, w->id, n);
		int64_t t0 = now_us();
		int64_t now_s = (int64_t)time(NULL);
		sigv4_amz_date(now_s, amz_date);
		sigv4_param headers[] = {
			{"host", hosthdr}, {"x-amz-date", amz_date}, {"x-amz-content-sha256", sh->body_sha}};
		sigv4_sign_params p = {.method = "PUT", .path = path, .headers = headers,
				       .header_count = 3, .payload_hash = sh->body_sha,
				       .access_key_id = sh->akid, .secret_access_key = sh->secret,
				       .region = sh->region, .now_s = now_s};
		buf_reset(&auth);
		buf_reset(&req);
		if (sigv4_sign(&p, &auth) != 0 ||
		    buf_printf(&req, "PUT %s HTTP/1.1\r\nHost: %s\r\nx-amz-date: %s\r\n"
				     "x-amz-content-sha256: %s\r\nAuthorization: %s\r\n"
				     "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
			       path, hosthdr, amz_date, sh->body_sha, auth.data, sh->size) != 0) {
			note_error(w, "cannot sign");
			break;
		}
		int status = -1;
		if (tls_write_all(&c, req.data, req.len) == 0 && tls_write_all(&c, sh->body, sh->size) == 0)
			status = read_answer(&c);
		if (status == 200) {
			note(w, t0);
		} else {
			char e[64];
			snprintf(e, sizeof e, status < 0 ? "connection lost" : "status %d", status);
			note_error(w, e);
			tls_close(&c); /* the server may close after an error answer */
		}
	}
	tls_close(&c);
	buf_free(&auth);
	buf_free(&req);
	return NULL;
}

/* ---------------------------------------------------------------- fsync */

static void *fsync_thread(void *arg)
{
	worker *w = arg;
	const shared *sh = w->sh;
	char tmp[4200], dst[4200], dir[4000];
	for (uint64_t n = 0; now_us() < sh->deadline_us; n++) {
		int64_t t0 = now_us();
		unsigned fan = (unsigned)((w->id * 2654435761u + n * 40503u) & 0xff);
		snprintf(tmp, sizeof tmp, "%.3900s/tmp/%d-%" PRIu64 ".tmp", sh->dir, w->id, n);
		snprintf(dir, sizeof dir, "%.3900s/data/%02x", sh->dir, fan);
		snprintf(dst, sizeof dst, "%s/%d-%" PRIu64, dir, w->id, n);
		int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			note_error(w, "open");
			continue;
		}
		size_t off = 0;
		while (off < sh->size) {
			ssize_t k = write(fd, sh->body + off, sh->size - off);
			if (k <= 0)
				break;
			off += (size_t)k;
		}
		int bad = off != sh->size || fsync(fd) != 0;
		bad |= close(fd) != 0;
		bad = bad || rename(tmp, dst) != 0;
		if (!bad) {
			int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			bad = dfd < 0 || fsync(dfd) != 0;
			if (dfd >= 0)
				close(dfd);
		}
		if (bad)
			note_error(w, strerror(errno));
		else
			note(w, t0);
	}
	return NULL;
}

static int fsync_prepare(const char *root)
{
	char path[4096];
	if (mkdir(root, 0700) != 0 && errno != EEXIST)
		return -1;
	snprintf(path, sizeof path, "%s/tmp", root);
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -1;
	snprintf(path, sizeof path, "%s/data", root);
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return -1;
	for (int i = 0; i < 256; i++) {
		snprintf(path, sizeof path, "%s/data/%02x", root, i);
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- main */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int usage(void)
{
	fprintf(stderr, "usage: objects_load put HOST PORT CAFILE REGION BUCKET SIZE THREADS SECONDS\n"
			"       objects_load fsync DIR SIZE THREADS SECONDS\n"
			"(put: S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY in the environment)\n");
	return 2;
}

int main(int argc, char **argv)
{
	shared sh = {0};
	int put;
	long size, threads, seconds;
	if (argc == 10 && strcmp(argv[1], "put") == 0) {
		put = 1;
		sh.host = argv[2];
		sh.port = argv[3];
		sh.region = argv[5];
		sh.bucket = argv[6];
		size = atol(argv[7]);
		threads = atol(argv[8]);
		seconds = atol(argv[9]);
		sh.akid = getenv("S3_ACCESS_KEY_ID");
		sh.secret = getenv("S3_SECRET_ACCESS_KEY");
		if (!sh.akid || !sh.secret)
			return usage();
		sh.ctx = SSL_CTX_new(TLS_client_method());
		if (!sh.ctx || SSL_CTX_load_verify_locations(sh.ctx, argv[4], NULL) != 1) {
			fprintf(stderr, "objects_load: cannot load the CA file %s\n", argv[4]);
			return 1;
		}
		SSL_CTX_set_verify(sh.ctx, SSL_VERIFY_PEER, NULL);
	} else if (argc == 6 && strcmp(argv[1], "fsync") == 0) {
		put = 0;
		sh.dir = argv[2];
		size = atol(argv[3]);
		threads = atol(argv[4]);
		seconds = atol(argv[5]);
		if (fsync_prepare(sh.dir) != 0) {
			fprintf(stderr, "objects_load: cannot make the directories under %s: %s\n", sh.dir,
				strerror(errno));
			return 1;
		}
	} else {
		return usage();
	}
	if (size < 1 || size > 64L * 1024 * 1024 || threads < 1 || threads > THREADS_MAX || seconds < 1)
		return usage();
	sh.size = (size_t)size;
	char *body = malloc(sh.size);
	worker *ws = calloc((size_t)threads, sizeof *ws);
	if (!body || !ws) {
		fprintf(stderr, "objects_load: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < sh.size; i++)
		body[i] = (char)('a' + (i * 7919) % 26); /* not all zeros: nothing compresses it away */
	sh.body = body;
	if (put) {
		unsigned char md[32];
		EVP_Digest(body, sh.size, md, NULL, EVP_sha256(), NULL);
		for (int i = 0; i < 32; i++)
			snprintf(sh.body_sha + 2 * i, 3, "%02x", md[i]);
	}
	int64_t t0 = now_us();
	sh.deadline_us = t0 + (int64_t)seconds * 1000000;
	for (long i = 0; i < threads; i++) {
		ws[i].sh = &sh;
		ws[i].id = (int)i;
		ws[i].lat = malloc(SAMPLES_MAX * sizeof *ws[i].lat);
		if (!ws[i].lat || pthread_create(&ws[i].thread, NULL, put ? put_thread : fsync_thread, &ws[i]) != 0) {
			fprintf(stderr, "objects_load: cannot start thread %ld\n", i);
			return 1;
		}
	}
	uint64_t ops = 0, errors = 0;
	size_t nlat = 0;
	const char *last_error = "";
	for (long i = 0; i < threads; i++) {
		pthread_join(ws[i].thread, NULL);
		ops += ws[i].ops;
		errors += ws[i].errors;
		nlat += ws[i].nlat;
		if (ws[i].last_error[0])
			last_error = ws[i].last_error;
	}
	double secs = (double)(now_us() - t0) / 1e6;
	int64_t *all = malloc((nlat ? nlat : 1) * sizeof *all);
	if (!all) {
		fprintf(stderr, "objects_load: out of memory\n");
		return 1;
	}
	size_t k = 0;
	for (long i = 0; i < threads; i++) {
		memcpy(all + k, ws[i].lat, ws[i].nlat * sizeof *all);
		k += ws[i].nlat;
	}
	qsort(all, nlat, sizeof *all, cmp_i64);
	int64_t p50 = nlat ? all[nlat / 2] : 0, p99 = nlat ? all[(nlat * 99) / 100] : 0;
	int64_t max = nlat ? all[nlat - 1] : 0;
	printf("{\"ops\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"seconds\":%.3f,\"per_second\":%.1f,"
	       "\"mb_per_second\":%.2f,\"p50_us\":%" PRId64 ",\"p99_us\":%" PRId64 ",\"max_us\":%" PRId64
	       ",\"last_error\":\"%s\"}\n",
	       ops, errors, secs, (double)ops / secs, (double)ops * (double)sh.size / secs / 1e6, p50, p99,
	       max, last_error);
	for (long i = 0; i < threads; i++)
		free(ws[i].lat);
	free(all);
	free(ws);
	free(body);
	SSL_CTX_free(sh.ctx);
	return 0;
}
