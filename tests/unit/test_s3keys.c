/* test_s3keys.c - the S3 access keys of the secrets file
 * (src/objects/s3keys.c): parsing [s3] among the other sections, tenant
 * defaults, malformed entries refused with FILE:LINE and no secret, a
 * world-readable file refused, create/revoke keeping the file 0600, and a
 * running reader picking a changed file up (at most once a second of the
 * injected clock), keeping the old keys when the new file is bad. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/util.h"
#include "objects/s3keys.h"
#include "test.h"

static char dir[] = "/tmp/test_s3keys_XXXXXX";
static char path[256];

static void write_file(const char *text, unsigned mode)
{
	unlink(path);
	CHECK_EQ_INT(util_write_file(path, text, strlen(text), mode), 0);
}

static const char base[] = "[tokens]\nsigning_key_id = k1\nkey.k1 = abc\n[objects]\nkek_id = k1\n";

static void test_load_and_lookup(void)
{
	char text[1024];
	snprintf(text, sizeof text,
		 "%s[s3]\nkey.TKAAAAAAAAAAAAAAAAAA = secret-one-0123456789\nname.TKAAAAAAAAAAAAAAAAAA = alice\n"
		 "[s3]\nkey.TKBBBBBBBBBBBBBBBBBB = secret-two-0123456789\n", base);
	write_file(text, 0600);
	s3keys *k = NULL;
	char err[256], secret[128], tenant[S3KEYS_NAME_MAX + 1];
	CHECK_EQ_INT(s3keys_load(path, &k, err, sizeof err), 0);
	if (!k)
		return;
	CHECK_EQ_INT(s3keys_count(k), 2);
	CHECK_EQ_INT(s3keys_lookup(k, "TKAAAAAAAAAAAAAAAAAA", secret, sizeof secret, tenant), 0);
	CHECK_EQ_STR(secret, "secret-one-0123456789");
	CHECK_EQ_STR(tenant, "alice");
	CHECK_EQ_INT(s3keys_lookup(k, "TKBBBBBBBBBBBBBBBBBB", secret, sizeof secret, tenant), 0);
	CHECK_EQ_STR(tenant, "TKBBBBBBBBBBBBBBBBBB"); /* no name: the key id */
	CHECK_EQ_INT(s3keys_lookup(k, "TKCCCCCCCCCCCCCCCCCC", secret, sizeof secret, tenant), ERR_NOTFOUND);
	s3keys_free(&k);
	CHECK(k == NULL);
}

static void test_refused(void)
{
	static const char *const bad[] = {
		"[s3]\nkey.tklower000000000000 = secret-0123456789\n",        /* lower case id */
		"[s3]\nkey.TKAAAAAAAAAAAAAAAAAA = short\n",                  /* short secret */
		"[s3]\nname.TKAAAAAAAAAAAAAAAAAA = alice\n",                 /* a name without a key */
		"[s3]\nname.TKAAAAAAAAAAAAAAAAAA = a b\nkey.TKAAAAAAAAAAAAAAAAAA = secret-0123456789\n",
		"[s3]\nkey.TKAAAAAAAAAAAAAAAAAA = secret-0123456789\nkey.TKAAAAAAAAAAAAAAAAAA = secret-9876543210\n",
		"[s3]\nother = 1\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		write_file(bad[i], 0600);
		s3keys *k = NULL;
		char err[256] = "";
		CHECK_EQ_INT(s3keys_load(path, &k, err, sizeof err), ERR_CONFIG);
		CHECK(k == NULL);
		CHECK(strstr(err, path) == err); /* FILE:LINE: ... */
		CHECK(strstr(err, "secret-") == NULL); /* never the secret */
	}
	write_file("[s3]\nkey.TKAAAAAAAAAAAAAAAAAA = secret-0123456789\n", 0644);
	s3keys *k = NULL;
	char err[256];
	CHECK_EQ_INT(s3keys_load(path, &k, err, sizeof err), ERR_CONFIG);
	CHECK(strstr(err, "chmod 600") != NULL);
}

static void test_create_revoke_list(void)
{
	write_file(base, 0600);
	char id[S3KEYS_ID_LEN + 1], secret[S3KEYS_SECRET_LEN + 1], err[256];
	CHECK_EQ_INT(s3keys_create(path, "bad name", id, secret, err, sizeof err), ERR_INVAL);
	CHECK_EQ_INT(s3keys_create(path, "bob", id, secret, err, sizeof err), 0);
	CHECK_EQ_INT(strlen(id), 20);
	CHECK(id[0] == 'T' && id[1] == 'K');
	CHECK_EQ_INT(strlen(secret), 40);
	struct stat st;
	CHECK_EQ_INT(stat(path, &st), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0600);
	char id2[S3KEYS_ID_LEN + 1], secret2[S3KEYS_SECRET_LEN + 1];
	CHECK_EQ_INT(s3keys_create(path, "bob", id2, secret2, err, sizeof err), 0);
	CHECK(strcmp(id, id2) != 0 && strcmp(secret, secret2) != 0);
	char fid[S3KEYS_ID_LEN + 12], fsecret[S3KEYS_SECRET_LEN + 24];
	CHECK_EQ_INT(s3keys_find_tenant(path, "bob", fid, fsecret, err, sizeof err), 0);
	CHECK_EQ_STR(fid, id);
	CHECK_EQ_STR(fsecret, secret);
	CHECK_EQ_INT(s3keys_find_tenant(path, "nobody", fid, fsecret, err, sizeof err), ERR_NOTFOUND);
	/* the rest of the file is untouched */
	size_t len;
	char *text = util_read_file(path, 1 << 20, &len);
	CHECK(text && strncmp(text, base, strlen(base)) == 0);
	free(text);
	CHECK_EQ_INT(s3keys_revoke(path, id, err, sizeof err), 0);
	CHECK_EQ_INT(s3keys_revoke(path, id, err, sizeof err), ERR_NOTFOUND);
	s3keys *k = NULL;
	CHECK_EQ_INT(s3keys_load(path, &k, err, sizeof err), 0);
	if (k) {
		char sec[128];
		CHECK_EQ_INT(s3keys_count(k), 1);
		CHECK_EQ_INT(s3keys_lookup(k, id, sec, sizeof sec, NULL), ERR_NOTFOUND);
		CHECK_EQ_INT(s3keys_lookup(k, id2, sec, sizeof sec, NULL), 0);
	}
	s3keys_free(&k);
	CHECK_EQ_INT(stat(path, &st), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0600);
}

static void test_refresh(void)
{
	write_file("[s3]\nkey.TKAAAAAAAAAAAAAAAAAA = secret-one-0123456789\n", 0600);
	s3keys *k = NULL;
	char err[256], sec[128];
	CHECK_EQ_INT(s3keys_load(path, &k, err, sizeof err), 0);
	if (!k)
		return;
	s3keys_refresh(k, 100000); /* the first check: file unchanged */
	write_file("[s3]\nkey.TKBBBBBBBBBBBBBBBBBB = secret-two-0123456789\n", 0600);
	s3keys_refresh(k, 100500); /* within the second: not looked at */
	CHECK_EQ_INT(s3keys_lookup(k, "TKAAAAAAAAAAAAAAAAAA", sec, sizeof sec, NULL), 0);
	s3keys_refresh(k, 101001);
	CHECK_EQ_INT(s3keys_lookup(k, "TKAAAAAAAAAAAAAAAAAA", sec, sizeof sec, NULL), ERR_NOTFOUND);
	CHECK_EQ_INT(s3keys_lookup(k, "TKBBBBBBBBBBBBBBBBBB", sec, sizeof sec, NULL), 0);
	/* a broken file keeps the keys that work */
	write_file("[s3]\nkey.TKBBBBBBBBBBBBBBBBBB = x\n", 0600);
	s3keys_refresh(k, 102002);
	CHECK_EQ_INT(s3keys_lookup(k, "TKBBBBBBBBBBBBBBBBBB", sec, sizeof sec, NULL), 0);
	CHECK_EQ_STR(sec, "secret-two-0123456789");
	s3keys_free(&k);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof path, "%s/secrets.ini", dir);
	RUN(test_load_and_lookup);
	RUN(test_refused);
	RUN(test_create_revoke_list);
	RUN(test_refresh);
	unlink(path);
	char tmp[300];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	rmdir(dir);
	return TEST_SUMMARY();
}
