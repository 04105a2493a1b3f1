/*
 * privdrop.c - dropping root for the configured user; see privdrop.h.
 *
 * The ids are changed with setresgid/setresuid so that the saved ids go
 * too (a plain seteuid would let the process switch back). glibc applies
 * setgroups and setres[ug]id to every thread of the process (the region
 * has its writer and hashing threads by then), not only the caller.
 */
#include "core/privdrop.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"

int privdrop_plan(const char *user, bool user_given, privdrop *p, char *err, size_t errcap)
{
	memset(p, 0, sizeof *p);
	if (geteuid() != 0) {
		snprintf(p->why, sizeof p->why, "not started as root");
		return 0;
	}
	if (user_given && !user[0]) {
		snprintf(p->why, sizeof p->why, "[deployment] user is empty: staying root");
		return 0;
	}
	const char *name = user_given ? user : PRIVDROP_DEFAULT_USER;
	char buffer[4096];
	struct passwd pw, *found = NULL;
	int rc = getpwnam_r(name, &pw, buffer, sizeof buffer, &found);
	if (!found) {
		if (!user_given) {
			snprintf(p->why, sizeof p->why,
				 "no user '%s' (tandem init creates it; or set [deployment] user): staying root", name);
			return 0;
		}
		snprintf(err, errcap, "[deployment] user = %s: %s (create it, e.g. useradd --system %s, or set "
			 "user = (empty) to stay root)", name, rc ? strerror(rc) : "no such user", name);
		return ERR_CONFIG;
	}
	if (pw.pw_uid == 0) {
		snprintf(err, errcap, "[deployment] user = %s is root: nothing would be dropped (set user = "
			 "(empty) to stay root knowingly)", name);
		return ERR_CONFIG;
	}
	p->drop = true;
	snprintf(p->user, sizeof p->user, "%s", name);
	p->uid = pw.pw_uid;
	p->gid = pw.pw_gid;
	return 0;
}

/* mkdir with exactly this mode (the umask would narrow it); EEXIST is fine. */
static int privdrop_mkdir_mode(const char *path, mode_t mode)
{
	if (mkdir(path, mode) != 0)
		return errno == EEXIST ? 0 : ERR_IO;
	return chmod(path, mode) == 0 ? 0 : ERR_IO;
}

int privdrop_make_dir(const privdrop *p, const char *dir)
{
	char tmp[PATH_MAX];
	size_t len = strlen(dir);
	if (len == 0 || len >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return ERR_IO;
	}
	memcpy(tmp, dir, len + 1);
	mode_t above = p->drop ? 0711 : 0700;
	for (char *s = tmp + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		int rc = privdrop_mkdir_mode(tmp, above);
		*s = '/';
		if (rc != 0)
			return rc;
	}
	return privdrop_mkdir_mode(tmp, 0700);
}

/* nftw's callback has no argument: the ids of the walk in progress (one
 * walk at a time, at start-up, on the main thread). */
static uid_t own_uid;
static gid_t own_gid;
static char own_failed[PATH_MAX];
static int own_errno;

static int privdrop_own_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (lchown(path, own_uid, own_gid) != 0) {
		snprintf(own_failed, sizeof own_failed, "%s", path);
		own_errno = errno;
		return 1; /* stop the walk */
	}
	return 0;
}

int privdrop_own(const privdrop *p, const char *dir, char *err, size_t errcap)
{
	if (!p->drop)
		return 0;
	own_uid = p->uid;
	own_gid = p->gid;
	own_failed[0] = '\0';
	own_errno = 0;
	int rc = nftw(dir, privdrop_own_entry, 16, FTW_PHYS);
	if (rc != 0) {
		snprintf(err, errcap, "%s: cannot hand over to user %s: %s", own_failed[0] ? own_failed : dir,
			 p->user, strerror(own_errno ? own_errno : errno));
		return ERR_IO;
	}
	return 0;
}

int privdrop_apply(const privdrop *p, char *err, size_t errcap)
{
	if (!p->drop)
		return 0;
	if (setgroups(1, &p->gid) != 0 || setresgid(p->gid, p->gid, p->gid) != 0 ||
	    setresuid(p->uid, p->uid, p->uid) != 0) {
		snprintf(err, errcap, "cannot become user %s: %s", p->user, strerror(errno));
		return ERR_IO;
	}
	/* check rather than trust: every id changed, and no way back */
	uid_t ru, eu, su;
	gid_t rg, eg, sg, groups[4];
	int n = getgroups(4, groups);
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != p->uid || eu != p->uid ||
	    su != p->uid || rg != p->gid || eg != p->gid || sg != p->gid || n != 1 || groups[0] != p->gid) {
		snprintf(err, errcap, "dropping to user %s left other ids in place", p->user);
		return ERR_IO;
	}
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0) {
		snprintf(err, errcap, "dropping to user %s can be undone", p->user);
		return ERR_IO;
	}
	return 0;
}

int privdrop_check_dir(const char *dir, char *err, size_t errcap)
{
	if (access(dir, R_OK | W_OK | X_OK) == 0)
		return 0;
	int why = errno;
	/* which directory on the way stops us? */
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s", dir);
	for (char *s = tmp + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		int blocked = access(tmp, X_OK) != 0;
		struct stat st;
		if (blocked && stat(tmp, &st) == 0) {
			snprintf(err, errcap,
				 "%s is not reachable: %s (mode %04o, owner uid %d) may not be searched by uid %d",
				 dir, tmp, (unsigned)(st.st_mode & 07777), (int)st.st_uid, (int)getuid());
			return ERR_IO;
		}
		*s = '/';
	}
	snprintf(err, errcap, "%s: %s for uid %d", dir, strerror(why), (int)getuid());
	return ERR_IO;
}

int privdrop_can_reach(const privdrop *p, const char *dir)
{
	if (!p->drop)
		return 1;
	pid_t pid = fork();
	if (pid < 0)
		return ERR_IO;
	if (pid == 0) {
		char err[256];
		_exit(privdrop_apply(p, err, sizeof err) == 0 && access(dir, X_OK) == 0 ? 0 : 1);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return ERR_IO;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int privdrop_create_user(const char *name, char *err, size_t errcap)
{
	char buffer[4096];
	struct passwd pw, *found = NULL;
	getpwnam_r(name, &pw, buffer, sizeof buffer, &found);
	if (found)
		return 0;
	if (geteuid() != 0) {
		snprintf(err, errcap, "only root can create user %s", name);
		return ERR_IO;
	}
	static const char useradd[] = "/usr/sbin/useradd";
	if (access(useradd, X_OK) != 0) {
		snprintf(err, errcap, "cannot create user %s: no %s", name, useradd);
		return ERR_IO;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errcap, "cannot create user %s: fork: %s", name, strerror(errno));
		return ERR_IO;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, STDOUT_FILENO); /* its notes; errors stay on stderr */
		execl(useradd, "useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
		      "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "tandem services", name,
		      (char *)NULL);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(err, errcap, "cannot create user %s: %s", name, strerror(errno));
			return ERR_IO;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errcap, "cannot create user %s: useradd failed (status %d)", name,
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return ERR_IO;
	}
	return 1;
}
