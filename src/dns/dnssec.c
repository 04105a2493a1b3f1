/*
 * dnssec.c - DNSSEC keys and online signing (dnssec.h has the contract).
 * OpenSSL 3 EVP does the cryptography: P-256 keys are rebuilt from their
 * 32-byte scalar through a SEC1 DER wrapper (d2i_PrivateKey computes the
 * public point), signatures are made with EVP_DigestSign and turned from
 * DER into the r||s form of RFC 6605.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <ini.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/err.h"
#include "core/util.h"
#include "dns/dnssec.h"

typedef struct dnssec_key {
	EVP_PKEY *pkey;
	uint8_t dnskey[DNSSEC_DNSKEY_RDLEN]; /* flags 257, protocol 3, algorithm 13, x || y */
	uint16_t tag;
	bool active;
} dnssec_key;

struct dnssec_keys {
	dns_name origin;        /* lowercased: the signer name */
	dnssec_key key[DNSSEC_KEYS_MAX];
	int n;
};

/* --- small helpers --- */

static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* The name in canonical form (RFC 4034 6.2: ASCII lowercased). */
static void name_lower(const dns_name *in, dns_name *out)
{
	out->len = in->len;
	for (size_t i = 0; i < in->len;) {
		uint8_t l = in->wire[i];
		out->wire[i] = l;
		for (size_t k = 1; k <= l && i + k < in->len; k++)
			out->wire[i + k] = lower(in->wire[i + k]);
		i += (size_t)l + 1;
	}
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* SipHash-2-4 (64-bit output): the cache's keyed hash. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                                   \
	do {                                                                                                       \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                            \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                               \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                               \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                            \
	} while (0)

static uint64_t rd64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t siphash24(const uint8_t key[16], const uint8_t *in, size_t n)
{
	uint64_t k0 = rd64le(key), k1 = rd64le(key + 8);
	uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	size_t end = n - n % 8;
	for (size_t i = 0; i < end; i += 8) {
		uint64_t m = rd64le(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	uint64_t b = (uint64_t)n << 56;
	for (size_t i = 0; i < n % 8; i++)
		b |= (uint64_t)in[end + i] << (8 * i);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* --- keys --- */

static uint16_t key_tag(const uint8_t *rdata, size_t n)
{
	uint32_t ac = 0;
	for (size_t i = 0; i < n; i++)
		ac += (i & 1) ? rdata[i] : (uint32_t)rdata[i] << 8;
	ac += (ac >> 16) & 0xffff;
	return (uint16_t)(ac & 0xffff);
}

/* The EVP key of a P-256 scalar, and its DNSKEY RDATA. 0, ERR_INVAL (not
 * a valid scalar) or ERR_TLS. */
static int key_from_scalar(const uint8_t priv[32], dnssec_key *k)
{
	/* SEC1 ECPrivateKey { version 1, privateKey, [0] prime256v1 }, no
	 * public key: d2i_PrivateKey computes it */
	static const uint8_t head[] = {0x30, 0x31, 0x02, 0x01, 0x01, 0x04, 0x20};
	static const uint8_t tail[] = {0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
	uint8_t der[sizeof head + 32 + sizeof tail];
	memcpy(der, head, sizeof head);
	memcpy(der + sizeof head, priv, 32);
	memcpy(der + sizeof head + 32, tail, sizeof tail);
	const unsigned char *p = der;
	EVP_PKEY *pkey = d2i_PrivateKey(EVP_PKEY_EC, NULL, &p, (long)sizeof der);
	OPENSSL_cleanse(der, sizeof der);
	if (!pkey)
		return ERR_INVAL;
	uint8_t pub[65];
	size_t publen = 0;
	if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub, &publen) != 1 ||
	    publen != 65 || pub[0] != 0x04) {
		EVP_PKEY_free(pkey);
		return ERR_INVAL;
	}
	k->pkey = pkey;
	put16(k->dnskey, 257); /* zone key + secure entry point: a CSK */
	k->dnskey[2] = 3;
	k->dnskey[3] = DNSSEC_ALGORITHM;
	memcpy(k->dnskey + 4, pub + 1, 64);
	k->tag = key_tag(k->dnskey, sizeof k->dnskey);
	return 0;
}

int dnssec_keys_from_raw(const dns_name *origin, const uint8_t (*priv)[32], const bool *active, int n,
			 dnssec_keys **out)
{
	*out = NULL;
	if (n < 1 || n > DNSSEC_KEYS_MAX)
		return ERR_INVAL;
	dnssec_keys *k = calloc(1, sizeof *k);
	if (!k)
		return ERR_NOMEM;
	name_lower(origin, &k->origin);
	bool any = false;
	for (int i = 0; i < n; i++) {
		int rc = key_from_scalar(priv[i], &k->key[i]);
		if (rc != 0) {
			dnssec_keys_free(&k);
			return rc;
		}
		k->key[i].active = active[i];
		any = any || active[i];
		k->n = i + 1;
	}
	if (!any) {
		dnssec_keys_free(&k);
		return ERR_INVAL;
	}
	*out = k;
	return 0;
}

void dnssec_keys_free(dnssec_keys **k)
{
	if (!*k)
		return;
	for (int i = 0; i < (*k)->n; i++)
		EVP_PKEY_free((*k)->key[i].pkey);
	free(*k);
	*k = NULL;
}

int dnssec_keys_count(const dnssec_keys *k)
{
	return k->n;
}

const uint8_t *dnssec_key_dnskey(const dnssec_keys *k, int i)
{
	return k->key[i].dnskey;
}

uint16_t dnssec_key_tag(const dnssec_keys *k, int i)
{
	return k->key[i].tag;
}

bool dnssec_key_active(const dnssec_keys *k, int i)
{
	return k->key[i].active;
}

int dnssec_key_ds(const dnssec_keys *k, int i, uint8_t digest[32])
{
	uint8_t in[DNS_NAME_MAX + DNSSEC_DNSKEY_RDLEN];
	memcpy(in, k->origin.wire, k->origin.len);
	memcpy(in + k->origin.len, k->key[i].dnskey, DNSSEC_DNSKEY_RDLEN);
	unsigned int len = 0;
	if (EVP_Digest(in, k->origin.len + DNSSEC_DNSKEY_RDLEN, digest, &len, EVP_sha256(), NULL) != 1 || len != 32)
		return ERR_TLS;
	return 0;
}

int dnssec_key_generate(char out[64])
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!pkey)
		return ERR_TLS;
	BIGNUM *bn = NULL;
	uint8_t raw[32];
	int rc = ERR_TLS;
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &bn) == 1 && BN_bn2binpad(bn, raw, 32) == 32) {
		util_b64url_encode(raw, 32, out);
		rc = 0;
	}
	OPENSSL_cleanse(raw, sizeof raw);
	BN_clear_free(bn);
	EVP_PKEY_free(pkey);
	return rc;
}

/* --- the [dnssec] section of the secrets file --- */

typedef struct key_reader {
	FILE *file;
	const char *path;
	int line;
	const dns_name *origin;
	uint8_t priv[DNSSEC_KEYS_MAX][32];
	bool active[DNSSEC_KEYS_MAX];
	int n;
	int rc;
	char *err;
	size_t errcap;
} key_reader;

static char *key_read_line(char *str, int num, void *stream)
{
	key_reader *r = stream;
	char *s = fgets(str, num, r->file);
	if (s)
		r->line++;
	return s;
}

static void key_fail(key_reader *r, int rc, const char *msg, const char *name)
{
	if (r->rc == 0) /* key material is never echoed: only the key's name */
		snprintf(r->err, r->errcap, "%s:%d: %s %s", r->path, r->line, name, msg);
	if (r->rc == 0)
		r->rc = rc;
}

static int key_handler(void *user, const char *section, const char *name, const char *value)
{
	key_reader *r = user;
	if (strcmp(section, "dnssec") != 0 || !name)
		return 1;
	if (strncmp(name, "key.", 4) != 0 || !name[4] || strlen(name) > 36) {
		key_fail(r, ERR_CONFIG, "is not key.ID (ID: at most 32 characters)", name);
		return 1;
	}
	char zone[300], state[16], b64[64];
	if (sscanf(value, "%299s %15s %63s", zone, state, b64) != 3) {
		key_fail(r, ERR_CONFIG, "must be ZONE active|publish PRIVATE-KEY", name);
		return 1;
	}
	dns_name z;
	if (dns_name_from_text(zone, &z) != 0) {
		key_fail(r, ERR_CONFIG, "does not name a zone", name);
		return 1;
	}
	if (!dns_name_equal(&z, r->origin))
		return 1;
	bool active = strcmp(state, "active") == 0;
	if (!active && strcmp(state, "publish") != 0) {
		key_fail(r, ERR_CONFIG, "state must be active or publish", name);
		return 1;
	}
	if (r->n == DNSSEC_KEYS_MAX) {
		key_fail(r, ERR_CONFIG, "is one key too many for the zone (at most 4)", name);
		return 1;
	}
	uint8_t raw[48];
	long len = util_b64url_decode(b64, strlen(b64), raw, sizeof raw);
	if (len != 32) {
		OPENSSL_cleanse(raw, sizeof raw);
		key_fail(r, ERR_CONFIG, "is not base64url of a 32-byte P-256 private key", name);
		return 1;
	}
	memcpy(r->priv[r->n], raw, 32);
	OPENSSL_cleanse(raw, sizeof raw);
	OPENSSL_cleanse(b64, sizeof b64);
	r->active[r->n++] = active;
	return 1;
}

int dnssec_keys_load(const char *path, const dns_name *origin, dnssec_keys **out, char *err, size_t errcap)
{
	*out = NULL;
	struct stat st;
	if (stat(path, &st) != 0) {
		snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
		return ERR_IO;
	}
	if (st.st_mode & 077) {
		snprintf(err, errcap, "%s:1: secrets file may be read by others (mode %03o); chmod 600 it", path,
			 (unsigned)(st.st_mode & 0777));
		return ERR_CONFIG;
	}
	key_reader r = {.path = path, .origin = origin, .err = err, .errcap = errcap};
	r.file = fopen(path, "r");
	if (!r.file) {
		snprintf(err, errcap, "%s: cannot open: %s", path, strerror(errno));
		return ERR_IO;
	}
	int prc = ini_parse_stream(key_read_line, &r, key_handler, &r);
	fclose(r.file);
	char zone[4 * DNS_NAME_MAX + 2];
	dns_name_to_text(origin, zone, sizeof zone);
	if (r.rc == 0 && prc != 0) {
		snprintf(err, errcap, "%s:%d: syntax error", path, prc);
		r.rc = ERR_CONFIG;
	}
	bool any_active = false;
	for (int i = 0; i < r.n; i++)
		any_active = any_active || r.active[i];
	if (r.rc == 0 && !any_active) {
		snprintf(err, errcap,
			 "%s: [dnssec] has no active key for %s (tandem dns key --config FILE --zone ZONE adds one)", path,
			 zone);
		r.rc = ERR_NOTFOUND;
	}
	if (r.rc == 0) {
		r.rc = dnssec_keys_from_raw(origin, (const uint8_t(*)[32])r.priv, r.active, r.n, out);
		if (r.rc != 0)
			snprintf(err, errcap, "%s: a [dnssec] key of %s is not a valid P-256 private key", path, zone);
	}
	OPENSSL_cleanse(r.priv, sizeof r.priv);
	return r.rc;
}

/* Does line (up to its end) start a section? Its name in name. */
static bool section_line(const char *line, size_t len, char *name, size_t cap)
{
	while (len && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	if (!len || *line != '[')
		return false;
	const char *close = memchr(line, ']', len);
	if (!close)
		return false;
	snprintf(name, cap, "%.*s", (int)(close - line - 1), line + 1);
	return true;
}

int dnssec_secrets_add_key(const char *path, const char *zone, const char *state, char *id, size_t idcap,
			   char *err, size_t errcap)
{
	dns_name z;
	if (dns_name_from_text(zone, &z) != 0 || (strcmp(state, "active") != 0 && strcmp(state, "publish") != 0)) {
		snprintf(err, errcap, "'%s' is not a zone name", zone);
		return ERR_INVAL;
	}
	size_t len = 0;
	char *text = util_read_file(path, 1 << 20, &len);
	if (!text) {
		snprintf(err, errcap, "%s: cannot read: %s", path, strerror(errno));
		return ERR_IO;
	}
	/* where the [dnssec] section ends (after its last non-blank line),
	 * and the ids taken */
	bool in = false, found = false;
	size_t insert = len;
	unsigned used = 0; /* bit i: key.k(i+1) is taken */
	for (size_t off = 0; off < len;) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t end = nl ? (size_t)(nl - text) + 1 : len;
		char sec[64];
		if (section_line(text + off, end - off, sec, sizeof sec)) {
			in = strcmp(sec, "dnssec") == 0;
			if (in) {
				found = true;
				insert = end;
			}
		} else if (in) {
			const char *p = text + off;
			while (p < text + end && (*p == ' ' || *p == '\t'))
				p++;
			if (p < text + end && *p != '\n' && *p != '\r')
				insert = end; /* a key or a comment: the section goes on */
			unsigned k;
			if (sscanf(p, "key.k%u", &k) == 1 && k >= 1 && k <= 32)
				used |= 1u << (k - 1);
		}
		off = end;
	}
	int free_id = 0;
	for (int k = 0; k < 32 && !free_id; k++)
		if (!(used >> k & 1u))
			free_id = k + 1;
	if (!free_id) {
		free(text);
		snprintf(err, errcap, "%s: [dnssec] has no free key id (k1..k32)", path);
		return ERR_LIMIT;
	}
	char b64[64];
	if (dnssec_key_generate(b64) != 0) {
		free(text);
		snprintf(err, errcap, "cannot generate a P-256 key (OpenSSL)");
		return ERR_TLS;
	}
	size_t cap = len + 512;
	char *out = malloc(cap);
	if (!out) {
		OPENSSL_cleanse(b64, sizeof b64);
		OPENSSL_cleanse(text, len);
		free(text);
		snprintf(err, errcap, "out of memory");
		return ERR_NOMEM;
	}
	size_t n = 0;
	memcpy(out, text, insert);
	n = insert;
	if (n && out[n - 1] != '\n')
		out[n++] = '\n';
	if (!found)
		n += (size_t)snprintf(out + n, cap - n,
				      "\n; DNSSEC keys (docs/DNS.md \"DNSSEC\"): key.ID = ZONE active|publish P-256-SCALAR\n"
				      "[dnssec]\n");
	n += (size_t)snprintf(out + n, cap - n, "key.k%d = %s %s %s\n", free_id, zone, state, b64);
	memcpy(out + n, text + insert, len - insert);
	n += len - insert;
	int rc = util_write_file(path, out, n, 0600);
	if (rc != 0)
		snprintf(err, errcap, "%s: cannot write: %s", path, strerror(errno));
	else
		snprintf(id, idcap, "k%d", free_id);
	OPENSSL_cleanse(b64, sizeof b64);
	OPENSSL_cleanse(out, n);
	OPENSSL_cleanse(text, len);
	free(out);
	free(text);
	return rc;
}

/* --- canonical form --- */

/* Copy the (uncompressed) name at rdata[*off] lowercased. */
static int canon_name(const uint8_t *rdata, size_t n, size_t *off, uint8_t *out, size_t cap, size_t *w)
{
	dns_name name, lc;
	if (dns_name_read(rdata, n, off, &name) != 0 || cap - *w < name.len)
		return -1;
	name_lower(&name, &lc);
	memcpy(out + *w, lc.wire, lc.len);
	*w += lc.len;
	return 0;
}

int dnssec_canonical_rdata(uint16_t type, const uint8_t *rdata, size_t n, uint8_t *out, size_t cap)
{
	size_t off = 0, w = 0, fixed = 0;
	int names = 0;
	switch (type) {
	case DNS_T_NS:
	case DNS_T_CNAME:
	case DNS_T_PTR:
		names = 1;
		break;
	case DNS_T_SOA:
		names = 2;
		break;
	case DNS_T_MX:
		fixed = 2;
		names = 1;
		break;
	case DNS_T_SRV:
		fixed = 6;
		names = 1;
		break;
	default:
		break;
	}
	if (fixed > n || fixed > cap)
		return -1;
	memcpy(out, rdata, fixed);
	off = w = fixed;
	for (int i = 0; i < names; i++)
		if (canon_name(rdata, n, &off, out, cap, &w) != 0)
			return -1;
	if (n - off > cap - w)
		return -1;
	memcpy(out + w, rdata + off, n - off);
	w += n - off;
	return (int)w;
}

int dnssec_nsec_rdata(const dns_name *owner, const uint16_t *types, int ntypes, uint8_t *out, size_t cap)
{
	dns_name lc;
	name_lower(owner, &lc);
	size_t w = 0;
	if (lc.len + 2 <= DNS_NAME_MAX) {
		/* "\000.owner": the immediate successor (RFC 4034 6.1 order) */
		if (cap < (size_t)lc.len + 2)
			return -1;
		out[0] = 1;
		out[1] = 0;
		memcpy(out + 2, lc.wire, lc.len);
		w = (size_t)lc.len + 2;
	} else {
		/* no room for a label: the owner itself (a name this long
		 * has no successor that fits; the NSEC still says "nothing
		 * here") */
		if (cap < lc.len)
			return -1;
		memcpy(out, lc.wire, lc.len);
		w = lc.len;
	}
	/* the bitmap: per window (high byte), up to 32 bytes of bits */
	uint8_t bits[256][32];
	int maxbyte[256];
	for (int i = 0; i < 256; i++)
		maxbyte[i] = -1;
	memset(bits, 0, sizeof bits);
	for (int i = 0; i < ntypes; i++) {
		int win = types[i] >> 8, lo = types[i] & 0xff;
		bits[win][lo / 8] |= (uint8_t)(0x80 >> (lo % 8));
		if (lo / 8 > maxbyte[win])
			maxbyte[win] = lo / 8;
	}
	for (int win = 0; win < 256; win++) {
		if (maxbyte[win] < 0)
			continue;
		size_t blen = (size_t)maxbyte[win] + 1;
		if (cap - w < 2 + blen)
			return -1;
		out[w++] = (uint8_t)win;
		out[w++] = (uint8_t)blen;
		memcpy(out + w, bits[win], blen);
		w += blen;
	}
	return (int)w;
}

/* --- signing --- */

typedef struct cache_sig {
	uint16_t tag;
	uint32_t inception, expiration;
	uint8_t sig[64];
} cache_sig;

typedef struct cache_entry {
	uint64_t hash;           /* 0: empty */
	const dnssec_keys *keys;
	uint16_t type;
	uint32_t refresh_at;     /* made again from then on */
	int nsig;
	cache_sig sig[DNSSEC_KEYS_MAX];
} cache_entry;

struct dnssec_signer {
	cache_entry *cache;
	size_t mask;             /* entries - 1 (0 with no cache) */
	uint8_t hash_key[16];
	uint32_t fixed_now;
	uint32_t rand;
	uint64_t made;
	/* scratch: the canonical RDATAs, then the records to sign */
	uint8_t canon[DNSSEC_SIGNED_MAX];
	uint8_t data[sizeof(uintptr_t) + DNSSEC_SIGNED_MAX];
};

dnssec_signer *dnssec_signer_new(size_t entries)
{
	dnssec_signer *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	if (entries) {
		size_t n = 1;
		while (n < entries && n < ((size_t)1 << 24))
			n <<= 1;
		s->cache = calloc(n, sizeof *s->cache);
		if (!s->cache) {
			free(s);
			return NULL;
		}
		s->mask = n - 1;
	}
	util_random(s->hash_key, sizeof s->hash_key);
	util_random(&s->rand, sizeof s->rand);
	if (!s->rand)
		s->rand = 1;
	return s;
}

void dnssec_signer_free(dnssec_signer **s)
{
	if (!*s)
		return;
	free((*s)->cache);
	free(*s);
	*s = NULL;
}

void dnssec_signer_set_time(dnssec_signer *s, uint32_t now)
{
	s->fixed_now = now;
}

uint64_t dnssec_signer_signed(const dnssec_signer *s)
{
	return s->made;
}

/* ECDSA P-256 over SHA-256 of head || body, as r || s (RFC 6605). */
static int sign_bytes(EVP_PKEY *pkey, const uint8_t *head, size_t hlen, const uint8_t *body, size_t blen,
		      uint8_t out[64])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t der[80];
	size_t dlen = sizeof der;
	ECDSA_SIG *sig = NULL;
	int rc = ERR_TLS;
	if (!ctx || EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) != 1 ||
	    EVP_DigestSignUpdate(ctx, head, hlen) != 1 || EVP_DigestSignUpdate(ctx, body, blen) != 1 ||
	    EVP_DigestSignFinal(ctx, der, &dlen) != 1)
		goto done;
	const unsigned char *p = der;
	sig = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
	const BIGNUM *r, *sv;
	if (!sig)
		goto done;
	ECDSA_SIG_get0(sig, &r, &sv);
	if (BN_bn2binpad(r, out, 32) != 32 || BN_bn2binpad(sv, out + 32, 32) != 32)
		goto done;
	rc = 0;
done:
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* Labels of the owner for the RRSIG (RFC 4034 3.1.3: without the root and
 * a leading wildcard label). */
static uint8_t rrsig_labels(const dns_name *owner)
{
	int n = dns_name_labels(owner);
	if (owner->len >= 2 && owner->wire[0] == 1 && owner->wire[1] == '*')
		n--;
	return (uint8_t)n;
}

/* The RRSIG RDATA before its signature into out (18 bytes + signer). */
static size_t rrsig_head(uint8_t *out, uint16_t type, uint8_t labels, uint32_t ttl, const cache_sig *cs,
			 const dns_name *signer)
{
	put16(out, type);
	out[2] = DNSSEC_ALGORITHM;
	out[3] = labels;
	put32(out + 4, ttl);
	put32(out + 8, cs->expiration);
	put32(out + 12, cs->inception);
	put16(out + 16, cs->tag);
	memcpy(out + 18, signer->wire, signer->len);
	return 18 + (size_t)signer->len;
}

typedef struct canon_ref {
	uint16_t off, len;
} canon_ref;

/* RFC 4034 6.3 order: RDATA as left-justified octet strings, a prefix
 * first. */
static int canon_cmp(const uint8_t *base, const canon_ref *x, const canon_ref *y)
{
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(base + x->off, base + y->off, n);
	if (c)
		return c;
	return (int)x->len - (int)y->len;
}

int dnssec_sign(dnssec_signer *s, const dnssec_keys *k, const dnssec_rrset *set, dns_writer *w)
{
	if (set->n < 1 || set->n > DNSSEC_RRSET_MAX)
		return ERR_INVAL;
	/* 1. each RDATA in canonical form, sorted, duplicates dropped */
	canon_ref ref[DNSSEC_RRSET_MAX];
	size_t used = 0;
	for (int i = 0; i < set->n; i++) {
		int len = dnssec_canonical_rdata(set->type, set->rdata[i], set->rdlen[i], s->canon + used,
						 sizeof s->canon - used);
		if (len < 0)
			return ERR_INVAL;
		ref[i].off = (uint16_t)used;
		ref[i].len = (uint16_t)len;
		used += (size_t)len;
	}
	for (int i = 1; i < set->n; i++) /* insertion sort: at most 64, usually 1 to 4 */
		for (int j = i; j > 0 && canon_cmp(s->canon, &ref[j - 1], &ref[j]) > 0; j--) {
			canon_ref t = ref[j];
			ref[j] = ref[j - 1];
			ref[j - 1] = t;
		}
	/* 2. the records to sign: owner | type | class | TTL | RDLENGTH | RDATA,
	 * after the keys' address (the cache key covers which zone signs) */
	dns_name owner;
	name_lower(set->owner, &owner);
	uintptr_t kp = (uintptr_t)k;
	memcpy(s->data, &kp, sizeof kp);
	size_t n = sizeof kp;
	for (int i = 0; i < set->n; i++) {
		if (i > 0 && canon_cmp(s->canon, &ref[i - 1], &ref[i]) == 0)
			continue; /* a duplicate RR (RFC 4034 6.3) */
		if (sizeof s->data - n < (size_t)owner.len + 10 + ref[i].len)
			return ERR_INVAL;
		memcpy(s->data + n, owner.wire, owner.len);
		n += owner.len;
		put16(s->data + n, set->type);
		put16(s->data + n + 2, DNS_C_IN);
		put32(s->data + n + 4, set->ttl);
		put16(s->data + n + 8, ref[i].len);
		n += 10;
		memcpy(s->data + n, s->canon + ref[i].off, ref[i].len);
		n += ref[i].len;
	}
	/* 3. the signatures: from the cache, else made (one per active key) */
	uint32_t now = s->fixed_now ? s->fixed_now : (uint32_t)time(NULL);
	uint64_t h = siphash24(s->hash_key, s->data, n) | 1; /* (never 0: empty) */
	cache_entry fresh, *e = s->cache ? &s->cache[h & s->mask] : &fresh;
	bool hit = s->cache && e->hash == h && e->keys == k && e->type == set->type && now < e->refresh_at &&
		   e->nsig > 0 && now >= e->sig[0].inception;
	uint8_t labels = rrsig_labels(&owner);
	if (!hit) {
		cache_entry made = {.hash = h, .keys = k, .type = set->type, .refresh_at = now + DNSSEC_VALIDITY_S / 2};
		s->rand ^= s->rand << 13;
		s->rand ^= s->rand >> 17;
		s->rand ^= s->rand << 5;
		uint32_t jitter = s->rand % (DNSSEC_VALIDITY_S / 8);
		for (int i = 0; i < k->n; i++) {
			if (!k->key[i].active)
				continue;
			cache_sig *cs = &made.sig[made.nsig];
			cs->tag = k->key[i].tag;
			cs->inception = now - DNSSEC_SKEW_S;
			cs->expiration = now + DNSSEC_VALIDITY_S + jitter;
			uint8_t head[18 + DNS_NAME_MAX];
			size_t hl = rrsig_head(head, set->type, labels, set->ttl, cs, &k->origin);
			if (sign_bytes(k->key[i].pkey, head, hl, s->data + sizeof kp, n - sizeof kp, cs->sig) != 0)
				return ERR_TLS;
			s->made++;
			made.nsig++;
		}
		*e = made;
	}
	/* 4. the RRSIG records, all or none */
	dns_mark m = dns_w_mark(w);
	for (int i = 0; i < e->nsig; i++) {
		uint8_t head[18 + DNS_NAME_MAX];
		size_t hl = rrsig_head(head, set->type, labels, set->ttl, &e->sig[i], &k->origin);
		size_t at;
		if (dns_w_rr_begin(w, set->owner, DNS_T_RRSIG, DNS_C_IN, set->ttl, &at) != 0 ||
		    dns_w_bytes(w, head, hl) != 0 || dns_w_bytes(w, e->sig[i].sig, 64) != 0 ||
		    dns_w_rr_end(w, at) != 0) {
			dns_w_rollback(w, &m);
			return ERR_LIMIT;
		}
	}
	return 0;
}
