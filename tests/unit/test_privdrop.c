/*
 * test_privdrop.c - unit tests for src/core/privdrop.c that need no user
 * switch: the plan's decisions, the modes of the directories made for a
 * user that will drop, and the reason given for an unreachable directory.
 * (Dropping itself is tested on the real binary: test_cli.py.)
 */
#include "test.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/privdrop.h"

static void test_plan(void)
{
	privdrop p;
	char err[256] = "";
	/* empty user: stay as started, whoever we are */
	CHECK_EQ_INT(privdrop_plan("", true, &p, err, sizeof err), 0);
	CHECK(!p.drop && p.why[0]);
	if (geteuid() == 0) {
		/* a named user must exist; root is not a user to drop to */
		CHECK_EQ_INT(privdrop_plan("no-such-user-xq7", true, &p, err, sizeof err), ERR_CONFIG);
		CHECK(strstr(err, "no-such-user-xq7") != NULL);
		CHECK_EQ_INT(privdrop_plan("root", true, &p, err, sizeof err), ERR_CONFIG);
		CHECK(strstr(err, "is root") != NULL);
		/* nobody exists on Debian: a plan to drop to it */
		CHECK_EQ_INT(privdrop_plan("nobody", true, &p, err, sizeof err), 0);
		CHECK(p.drop && p.uid != 0 && strcmp(p.user, "nobody") == 0);
	} else {
		CHECK_EQ_INT(privdrop_plan("no-such-user-xq7", true, &p, err, sizeof err), 0);
		CHECK(!p.drop && strstr(p.why, "not started as root") != NULL);
	}
	/* nothing to drop: the other steps do nothing */
	privdrop none = {.drop = false};
	CHECK_EQ_INT(privdrop_own(&none, "/nonexistent", err, sizeof err), 0);
	CHECK_EQ_INT(privdrop_apply(&none, err, sizeof err), 0);
	CHECK_EQ_INT(privdrop_can_reach(&none, "/nonexistent"), 1);
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (st.st_mode & 07777) : (mode_t)-1;
}

static void test_make_dir_modes(void)
{
	char top[] = "/tmp/test-privdrop-XXXXXX";
	CHECK(mkdtemp(top) != NULL);
	char path[256], mid[256];
	mode_t old = umask(077); /* as in a region: the modes must not depend on it */
	privdrop p = {.drop = true};
	snprintf(mid, sizeof mid, "%s/data", top);
	snprintf(path, sizeof path, "%s/data/eu", top);
	CHECK_EQ_INT(privdrop_make_dir(&p, path), 0);
	CHECK_EQ_INT(mode_of(mid), 0711);  /* the user passes, cannot list */
	CHECK_EQ_INT(mode_of(path), 0700); /* its own */
	CHECK_EQ_INT(privdrop_make_dir(&p, path), 0); /* exists: fine */
	/* without a drop: everything private */
	privdrop stay = {.drop = false};
	snprintf(mid, sizeof mid, "%s/other", top);
	snprintf(path, sizeof path, "%s/other/us", top);
	CHECK_EQ_INT(privdrop_make_dir(&stay, path), 0);
	CHECK_EQ_INT(mode_of(mid), 0700);
	CHECK_EQ_INT(mode_of(path), 0700);
	umask(old);
	char err[512] = "";
	CHECK_EQ_INT(privdrop_check_dir(path, err, sizeof err), 0);
	CHECK_EQ_INT(privdrop_check_dir("/nonexistent/x", err, sizeof err), ERR_IO);
	CHECK(strstr(err, "/nonexistent/x") != NULL);
	snprintf(path, sizeof path, "rm -rf %s", top);
	CHECK_EQ_INT(system(path), 0);
}

/* As root: a child drops to nobody (privdrop_apply, its checks) and tries
 * to reach directories; a 0700 directory of root's stops it. */
static void test_reach_after_drop(void)
{
	if (geteuid() != 0)
		return;
	privdrop p;
	char err[256];
	CHECK_EQ_INT(privdrop_plan("nobody", true, &p, err, sizeof err), 0);
	char top[] = "/tmp/test-privdrop-XXXXXX", inner[64];
	CHECK(mkdtemp(top) != NULL); /* 0700, root's */
	snprintf(inner, sizeof inner, "%s/in", top);
	CHECK_EQ_INT(mkdir(inner, 0755), 0);
	CHECK_EQ_INT(privdrop_can_reach(&p, inner), 0);
	CHECK_EQ_INT(chmod(top, 0711), 0);
	CHECK_EQ_INT(privdrop_can_reach(&p, inner), 1);
	CHECK_EQ_INT(rmdir(inner), 0);
	CHECK_EQ_INT(rmdir(top), 0);
}

int main(void)
{
	RUN(test_plan);
	RUN(test_make_dir_modes);
	RUN(test_reach_after_drop);
	return TEST_SUMMARY();
}
