/*
 * privdrop.h - running as an unprivileged user: a region or witness started
 * as root drops to [deployment] user (default "tandem" when that user
 * exists) once it has done what needs root, so that a flaw in the code
 * that parses network input cannot read other users' files, the keys it
 * has already loaded on disk, or take the machine.
 *
 * The order, in the process that drops (docs/SECURITY.md):
 *
 *   privdrop_plan       decide (as early as the config is read)
 *   privdrop_make_dir   its data directory, reachable by the user
 *   ... read the secrets and TLS keys, open the database, bind the ports ...
 *   privdrop_own        hand the data directory (and what was created in
 *                       it as root: database, WAL, -shm) over to the user
 *   privdrop_apply      setgroups, setgid, setuid; checked not undoable
 *   privdrop_check_dir  the data directory is usable after the drop
 *
 * Every function leaves the process as it was on failure, except
 * privdrop_apply, after whose failure the process must exit.
 */
#ifndef TANDEM_PRIVDROP_H
#define TANDEM_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* What to do; filled by privdrop_plan. */
typedef struct privdrop {
	bool drop;      /* false: stay as started */
	char user[32];
	uid_t uid;
	gid_t gid;
	char why[160];  /* when not dropping: why not, for the log */
} privdrop;

#define PRIVDROP_DEFAULT_USER "tandem"

/*
 * Decide from [deployment] user (user, user_given): not started as root ->
 * nothing to drop; user given empty -> stay root (said so in why); user
 * given -> that user, which must exist; not given -> "tandem" when it
 * exists, else stay (why says so). 0, or ERR_CONFIG with the reason in err
 * (a named user that does not exist, or that is root itself).
 */
int privdrop_plan(const char *user, bool user_given, privdrop *p, char *err, size_t errcap);
/*
 * mkdir -p dir. When dropping, the directories it creates above dir are
 * mode 0711 (the user may pass, not list) and dir itself 0700, whatever
 * the umask; otherwise all 0700. 0, or ERR_IO with errno set.
 */
int privdrop_make_dir(const privdrop *p, const char *dir);
/*
 * When dropping: dir and everything under it owned by the user (symbolic
 * links are not followed). 0, or ERR_IO with the path and reason in err.
 */
int privdrop_own(const privdrop *p, const char *dir, char *err, size_t errcap);
/*
 * When dropping: supplementary groups = the user's group only, then
 * real/effective/saved gid and uid; then checks that every id is the
 * user's and that regaining root fails. 0, or ERR_IO with the reason in
 * err: the process may be half-dropped and must exit.
 */
int privdrop_apply(const privdrop *p, char *err, size_t errcap);
/*
 * Can this process (after the drop) read, write and search dir? 0, or
 * ERR_IO with err naming the first directory on the way that it cannot
 * search, or dir itself.
 */
int privdrop_check_dir(const char *dir, char *err, size_t errcap);
/*
 * Could the planned user reach dir (search every directory on the way to
 * it, and dir)? Asked of a child process that drops and tries. 1 yes, 0
 * no, ERR_IO when it cannot be asked. For `tandem init`.
 */
int privdrop_can_reach(const privdrop *p, const char *dir);
/*
 * Create the system user name (with its own group, no home, no login
 * shell) with useradd, unless it exists. 0; 1 when it was created now; or
 * ERR_IO with the reason in err (not root, no useradd, useradd failed).
 */
int privdrop_create_user(const char *name, char *err, size_t errcap);

#endif
