/*
 * secrets.h - the deployment's secrets file (INI, mode 0600, shared by every
 * region so that tokens issued in one are accepted in the other).
 *
 *   [tokens]
 *   signing_key_id = k1            ; kid of the key that signs new tokens
 *   key.k1 = <base64url, >= 32 bytes>
 *   key.k0 = <...>                 ; older keys: still verify, never sign
 *   [crypto]
 *   response_key = <base64url, 32 bytes>  ; seals stored auth responses
 *   [objects]                      ; optional: only the object store needs it
 *   kek_id = k1                    ; the KEK that wraps new data keys
 *   kek.k1 = <base64url, 32 bytes> ; older KEKs: still unwrap, never wrap
 *   [s3]                           ; S3 access keys: objects/s3keys.h reads them
 *   key.AKID = SECRET
 *   name.AKID = TENANT
 *   [dnssec], [tsig]               ; DNS keys: dns/dnssec.c and dns/xfr.c read them
 *
 * The file is refused when group or others may read it. A file without
 * [objects] loads (kek_current = -1); the object store refuses to open then.
 */
#ifndef TANDEM_SECRETS_H
#define TANDEM_SECRETS_H

#include <stddef.h>

#define SECRETS_MAX_KEYS 8
#define SECRETS_KEY_MAX 64

typedef struct secrets_key {
	char id[32];
	unsigned char key[SECRETS_KEY_MAX];
	size_t len;
} secrets_key;

typedef struct secrets {
	secrets_key keys[SECRETS_MAX_KEYS];
	int key_count;
	int signing;                      /* index into keys */
	unsigned char response_key[32];
	/* [objects]: key-encryption keys of the blob store (each exactly 32
	 * bytes); kek_current indexes keks[], -1 when the section is absent */
	secrets_key keks[SECRETS_MAX_KEYS];
	int kek_count;
	int kek_current;
} secrets;

/* Load and check; 0, or ERR_CONFIG/ERR_IO with "FILE:LINE: message" in err. */
int secrets_load(const char *path, secrets *s, char *err, size_t errcap);
/* Create a new secrets file with fresh random keys (mode 0600) unless one
 * exists; 0 or ERR_IO (errno kept). */
int secrets_create(const char *path);
/* The key with this id, or NULL. */
const secrets_key *secrets_find(const secrets *s, const char *id);
/* The [objects] key-encryption key with this id, or NULL. */
const secrets_key *secrets_find_kek(const secrets *s, const char *id);
/* A 32-byte key for one purpose, derived from response_key:
 * HKDF-Expand(PRK = response_key, info = label, L = 32), i.e.
 * HMAC-SHA256(response_key, label || 0x01). Distinct labels give unrelated
 * keys, so a key used for throttling or idempotency scopes never equals one
 * that seals answers or signs tokens. Cannot fail. */
void secrets_derive(const secrets *s, const char *label, unsigned char out[32]);
/* Wipe from memory. */
void secrets_clear(secrets *s);

#endif
