/*
 * faultvfs.h - a SQLite test VFS that injects errors: a shim over the
 * default VFS, registered as the new default, that makes the Nth call of
 * one chosen method (from the moment it is armed) and the `count` calls
 * after it return a chosen code (SQLITE_BUSY, SQLITE_IOERR, SQLITE_FULL,
 * ...). Every other call goes to the real VFS unchanged.
 *
 * xSleep returns at once without sleeping while a fault is armed or
 * faultvfs_instant_sleep(true) is in force, so the busy handler of a
 * connection (sqlite3_busy_timeout) gives up after its whole schedule in
 * microseconds of real time: tests of SQLITE_BUSY never sleep. Otherwise it
 * sleeps as the real VFS does (SQLite's WAL retries need the time).
 *
 * Connections opened after faultvfs_install() use it (they name no VFS).
 * Thread-safe (the committer's writer thread calls it).
 */
#ifndef TANDEM_TEST_FAULTVFS_H
#define TANDEM_TEST_FAULTVFS_H

#include <stdbool.h>

typedef enum faultvfs_method {
	FAULTVFS_READ,
	FAULTVFS_WRITE,
	FAULTVFS_SYNC,
	FAULTVFS_LOCK,      /* xLock: SHARED for a read, RESERVED for a write */
	FAULTVFS_SHMLOCK,
	FAULTVFS_METHODS
} faultvfs_method;

/* Register the shim as the default VFS (once; later calls do nothing).
 * 0, or a SQLite error code. */
int faultvfs_install(void);
/* From now on: calls nth, nth+1, ..., nth+count-1 of method m (1 = the next
 * call) return rc; count < 0: every call from the nth on. Resets the
 * counters. */
void faultvfs_arm(faultvfs_method m, int nth, int rc, int count);
/* No more faults; counters kept. */
void faultvfs_disarm(void);
/* Calls of m since the last arm (or install). */
int faultvfs_calls(faultvfs_method m);
/* Faults injected since the last arm. */
int faultvfs_injected(void);
/* Sleep instantly even with no fault armed: for a test that makes a
 * connection busy by holding a lock on another one. */
void faultvfs_instant_sleep(bool on);

#endif
