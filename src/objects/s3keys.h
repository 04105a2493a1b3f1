/*
 * s3keys.h - the S3 access keys of the deployment: section [s3] of the
 * secrets file, shared by every region, so a key works in both.
 *
 *   [s3]
 *   key.TK0123456789ABCDEFGH = <40-char secret>
 *   name.TK0123456789ABCDEFGH = alice        ; the key's tenant (optional:
 *                                            ; the key id itself when absent)
 *
 * A tenant owns the buckets it creates (BucketAlreadyOwnedByYou vs
 * BucketAlreadyExists); every key of a tenant sees the same buckets. A
 * running region notices an edited file (s3keys_refresh: stat at most once
 * a second) so `tandem keys create|revoke` takes effect at once, without a
 * restart. The section may appear several times (each `keys create`
 * appends one); a revoked key's lines are removed from the file.
 *
 * Threads: an s3keys belongs to one thread (the S3 loop); the file
 * functions (create, revoke, list) are for the command line.
 */
#ifndef TANDEM_OBJECTS_S3KEYS_H
#define TANDEM_OBJECTS_S3KEYS_H

#include <stddef.h>
#include <stdint.h>

#define S3KEYS_ID_LEN 20     /* "TK" + 18 uppercase letters and digits */
#define S3KEYS_SECRET_LEN 40 /* base64url of 30 random bytes */
#define S3KEYS_NAME_MAX 63   /* a tenant name: [A-Za-z0-9._-]{1,63} */
#define S3KEYS_MAX 4096      /* keys in one file */

typedef struct s3keys s3keys;

/* Read the [s3] keys of the secrets file at path (which must be mode 0600,
 * as secrets_load checks). 0, or ERR_IO / ERR_CONFIG with "FILE:LINE:
 * message" in err (never a secret); *out NULL then. A file without [s3]
 * gives an empty key set. */
int s3keys_load(const char *path, s3keys **out, char *err, size_t errcap);
/* Wipe the secrets and free; no-op on NULL; resets *k. */
void s3keys_free(s3keys **k);

/* Re-read the file when its mtime, size or inode changed, at most once per
 * second of now_ms. A file that no longer loads keeps the old keys (logged
 * once per change). Cannot fail. */
void s3keys_refresh(s3keys *k, int64_t now_ms);

/* The secret (NUL-terminated, up to cap) and tenant (up to S3KEYS_NAME_MAX
 * + 1) of an access key: 0 or ERR_NOTFOUND. tenant may be NULL. */
int s3keys_lookup(const s3keys *k, const char *id, char *secret, size_t cap, char *tenant);
size_t s3keys_count(const s3keys *k);

/* --- the command line (tandem keys) --- */

/* Append a fresh pair for tenant name to the file (rewritten through a
 * temporary file, fsync'd, renamed; mode 0600 kept). id gets the key id,
 * secret the secret. 0, ERR_INVAL (bad name), ERR_IO/ERR_CONFIG with err. */
int s3keys_create(const char *path, const char *name, char id[S3KEYS_ID_LEN + 1],
		  char secret[S3KEYS_SECRET_LEN + 1], char *err, size_t errcap);
/* Remove a key's lines. 0, ERR_NOTFOUND (no such key), ERR_IO with err. */
int s3keys_revoke(const char *path, const char *id, char *err, size_t errcap);
/* The first key of tenant in the file (the development pair that
 * endpoints.json shows): 0, ERR_NOTFOUND, or a load error with err. */
int s3keys_find_tenant(const char *path, const char *tenant, char id[S3KEYS_ID_LEN + 12],
		       char secret[S3KEYS_SECRET_LEN + 24], char *err, size_t errcap);
/* Call fn for each key: id and tenant, never the secret. */
int s3keys_list(const char *path, void (*fn)(void *arg, const char *id, const char *tenant), void *arg,
		char *err, size_t errcap);

#endif
