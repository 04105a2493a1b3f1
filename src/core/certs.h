/*
 * certs.h - the development certificate authority.
 *
 * Creates, with the OpenSSL 3 API, a CA and one certificate per component,
 * all under one directory. Idempotent: what exists and is valid (parses, key
 * matches, signed by the current CA, not expiring within 30 days) is kept;
 * anything else is (re)created. Files are written to a temporary name and
 * renamed into place; key files are mode 0600.
 *
 *   DIR/ca.pem, DIR/ca.key          the CA (ECDSA P-256, 10 years)
 *   DIR/NAME.pem, DIR/NAME.key      per component (ECDSA P-256, 825 days),
 *                                   SAN: DNS:NAME, DNS:localhost, IP:127.0.0.1
 *                                   (and the extra names certs_ensure_sans gives),
 *                                   extended key usage serverAuth + clientAuth
 *                                   (regions authenticate each other with them)
 */
#ifndef TANDEM_CERTS_H
#define TANDEM_CERTS_H

#include <stddef.h>

/*
 * Ensure the CA and a certificate for each of names[0..n-1] exist in dir
 * (created with mode 0700 if missing). Returns 0, or a negative ERR_* code
 * with a one-line reason in err. Files already valid are left untouched; on
 * failure, no half-written file is left in place.
 */
int certs_ensure(const char *dir, const char *const *names, size_t n, char *err, size_t errlen);
/*
 * The same, each certificate also naming sans[i] (NULL or "": nothing
 * more): "DNS:api.tandem.test,IP:127.0.0.2", at most 1024 bytes. A
 * certificate that lacks one of them is issued again. ERR_INVAL for an
 * entry that is not DNS:NAME ([a-z0-9.-], optionally after "*.") or
 * IP:ADDRESS.
 */
int certs_ensure_sans(const char *dir, const char *const *names, const char *const *sans, size_t n, char *err,
		      size_t errlen);

#endif
