/*
 * faultvfs.c - the fault-injecting SQLite test VFS; see faultvfs.h.
 *
 * Each file opened through the shim is a shim_file followed by the real
 * VFS's file object; every io method checks the fault plan, then calls the
 * real method on the real file.
 */
#include "faultvfs.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include <sqlite3.h>

typedef struct shim_file {
	sqlite3_file base;
	sqlite3_file *real; /* right after this struct */
} shim_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	faultvfs_method method;
	int nth, count, rc;
	bool armed;
	int calls[FAULTVFS_METHODS];
	int injected;
} plan;

/* The code call of method m returns instead of the real one, or 0. */
static int fault_check(faultvfs_method m)
{
	pthread_mutex_lock(&plan_lock);
	int n = ++plan.calls[m];
	int rc = 0;
	if (plan.armed && plan.method == m && n >= plan.nth && (plan.count < 0 || n < plan.nth + plan.count)) {
		rc = plan.rc;
		plan.injected++;
	}
	pthread_mutex_unlock(&plan_lock);
	return rc;
}

void faultvfs_arm(faultvfs_method m, int nth, int rc, int count)
{
	pthread_mutex_lock(&plan_lock);
	memset(plan.calls, 0, sizeof plan.calls);
	plan.method = m;
	plan.nth = nth;
	plan.rc = rc;
	plan.count = count;
	plan.injected = 0;
	plan.armed = true;
	pthread_mutex_unlock(&plan_lock);
}

void faultvfs_disarm(void)
{
	pthread_mutex_lock(&plan_lock);
	plan.armed = false;
	pthread_mutex_unlock(&plan_lock);
}

int faultvfs_calls(faultvfs_method m)
{
	pthread_mutex_lock(&plan_lock);
	int n = plan.calls[m];
	pthread_mutex_unlock(&plan_lock);
	return n;
}

int faultvfs_injected(void)
{
	pthread_mutex_lock(&plan_lock);
	int n = plan.injected;
	pthread_mutex_unlock(&plan_lock);
	return n;
}

/* --- io methods --- */

#define REAL(f) (((shim_file *)(f))->real)

static int shim_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int shim_read(sqlite3_file *f, void *out, int n, sqlite3_int64 off)
{
	int rc = fault_check(FAULTVFS_READ);
	return rc ? rc : REAL(f)->pMethods->xRead(REAL(f), out, n, off);
}

static int shim_write(sqlite3_file *f, const void *in, int n, sqlite3_int64 off)
{
	int rc = fault_check(FAULTVFS_WRITE);
	return rc ? rc : REAL(f)->pMethods->xWrite(REAL(f), in, n, off);
}

static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int shim_sync(sqlite3_file *f, int flags)
{
	int rc = fault_check(FAULTVFS_SYNC);
	return rc ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int shim_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int shim_lock(sqlite3_file *f, int level)
{
	int rc = fault_check(FAULTVFS_LOCK);
	return rc ? rc : REAL(f)->pMethods->xLock(REAL(f), level);
}

static int shim_unlock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int shim_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int shim_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int shim_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int shim_device_characteristics(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int shim_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **out)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, out);
}

static int shim_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	int rc = fault_check(FAULTVFS_SHMLOCK);
	return rc ? rc : REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void shim_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int shim_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int shim_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **out)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, n, out);
}

static int shim_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

/* version 3 for files whose real methods have it (the unix VFS's), 1
 * otherwise: the shim never claims what the real file lacks */
static const sqlite3_io_methods methods3 = {
	3, shim_close, shim_read, shim_write, shim_truncate, shim_sync, shim_file_size, shim_lock, shim_unlock,
	shim_check_reserved, shim_file_control, shim_sector_size, shim_device_characteristics, shim_shm_map,
	shim_shm_lock, shim_shm_barrier, shim_shm_unmap, shim_fetch, shim_unfetch,
};
static const sqlite3_io_methods methods1 = {
	1, shim_close, shim_read, shim_write, shim_truncate, shim_sync, shim_file_size, shim_lock, shim_unlock,
	shim_check_reserved, shim_file_control, shim_sector_size, shim_device_characteristics, NULL, NULL, NULL,
	NULL, NULL, NULL,
};

/* --- the VFS: open wraps, everything else passes through --- */

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
	shim_file *s = (shim_file *)f;
	s->real = (sqlite3_file *)(s + 1);
	s->base.pMethods = NULL;
	int rc = real_vfs->xOpen(real_vfs, name, s->real, flags, out_flags);
	if (rc != SQLITE_OK)
		return rc;
	s->base.pMethods = s->real->pMethods && s->real->pMethods->iVersion >= 3 ? &methods3 : &methods1;
	return SQLITE_OK;
}

static int shim_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int shim_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int shim_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *shim_dlopen(sqlite3_vfs *vfs, const char *name)
{
	return real_vfs->xDlOpen(real_vfs, name);
}

static void shim_dlerror(sqlite3_vfs *vfs, int n, char *out)
{
	real_vfs->xDlError(real_vfs, n, out);
}

static void (*shim_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
	return real_vfs->xDlSym(real_vfs, h, sym);
}

static void shim_dlclose(sqlite3_vfs *vfs, void *h)
{
	real_vfs->xDlClose(real_vfs, h);
}

static int shim_randomness(sqlite3_vfs *vfs, int n, char *out)
{
	return real_vfs->xRandomness(real_vfs, n, out);
}

/* Instant while a fault is armed or instant_sleep is on: the busy handler's
 * schedule then passes at once. Otherwise a real sleep: SQLite's own WAL
 * retries (a reader racing a checkpoint, ~100 tries with growing sleeps)
 * need time to pass, and made instant they gave up with SQLITE_PROTOCOL in
 * microseconds whenever a test's reader thread and writer met (a flaky
 * test_committer under load, not a behaviour of the real VFS). */
static bool instant_sleep;

void faultvfs_instant_sleep(bool on)
{
	pthread_mutex_lock(&plan_lock);
	instant_sleep = on;
	pthread_mutex_unlock(&plan_lock);
}

static int shim_sleep(sqlite3_vfs *vfs, int us)
{
	pthread_mutex_lock(&plan_lock);
	bool instant = plan.armed || instant_sleep;
	pthread_mutex_unlock(&plan_lock);
	if (instant)
		return us;
	return real_vfs->xSleep(real_vfs, us);
}

static int shim_current_time(sqlite3_vfs *vfs, double *out)
{
	return real_vfs->xCurrentTime(real_vfs, out);
}

static int shim_get_last_error(sqlite3_vfs *vfs, int n, char *out)
{
	return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}

static int shim_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
	return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

int faultvfs_install(void)
{
	if (real_vfs)
		return SQLITE_OK;
	sqlite3_vfs *d = sqlite3_vfs_find(NULL);
	if (!d)
		return SQLITE_ERROR;
	shim_vfs = (sqlite3_vfs){
		.iVersion = 2,
		.szOsFile = (int)sizeof(shim_file) + d->szOsFile,
		.mxPathname = d->mxPathname,
		.zName = "faultvfs",
		.xOpen = shim_open,
		.xDelete = shim_delete,
		.xAccess = shim_access,
		.xFullPathname = shim_full_pathname,
		.xDlOpen = shim_dlopen,
		.xDlError = shim_dlerror,
		.xDlSym = shim_dlsym,
		.xDlClose = shim_dlclose,
		.xRandomness = shim_randomness,
		.xSleep = shim_sleep,
		.xCurrentTime = shim_current_time,
		.xGetLastError = shim_get_last_error,
		.xCurrentTimeInt64 = shim_current_time64,
	};
	real_vfs = d;
	int rc = sqlite3_vfs_register(&shim_vfs, 1);
	if (rc != SQLITE_OK)
		real_vfs = NULL;
	return rc;
}
