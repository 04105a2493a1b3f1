/*
 * manifest.c - multipart ETag, size rules and range slicing; see
 * manifest.h.
 */
#include "objects/manifest.h"

#include <stdio.h>

#include <openssl/evp.h>

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int manifest_md5_from_hex(const char *hex, unsigned char out[16])
{
	for (int i = 0; i < 16; i++) {
		int h = hexval((unsigned char)hex[2 * i]);
		int l = h < 0 ? -1 : hexval((unsigned char)hex[2 * i + 1]);
		if (h < 0 || l < 0)
			return -1;
		out[i] = (unsigned char)(h * 16 + l);
	}
	return hex[32] == '\0' ? 0 : -1;
}

int manifest_etag(const unsigned char *md5s, size_t n, char out[MANIFEST_ETAG_MAX])
{
	out[0] = '\0';
	if (n == 0 || n > MANIFEST_MAX_PARTS)
		return -1;
	unsigned char d[16];
	unsigned int dn = 0;
	if (EVP_Digest(md5s, n * 16, d, &dn, EVP_md5(), NULL) != 1 || dn != 16)
		return -1; /* cannot happen: MD5 of a bounded buffer */
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	snprintf(out + 32, MANIFEST_ETAG_MAX - 32, "-%zu", n);
	return 0;
}

manifest_size_check manifest_check_sizes(const uint64_t *sizes, size_t n, uint64_t min_part,
					 uint64_t max_total, size_t *bad, uint64_t *total)
{
	*bad = 0;
	*total = 0;
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && sizes[i] < min_part) {
			*bad = i;
			return MANIFEST_PART_TOO_SMALL;
		}
		if (sizes[i] > max_total - *total) /* also catches a wrapping sum */
			return MANIFEST_TOO_LARGE;
		*total += sizes[i];
	}
	return MANIFEST_SIZES_OK;
}

bool manifest_slice(uint64_t part_pos, uint64_t part_size, uint64_t offset, uint64_t length,
		    uint64_t *inner_offset, uint64_t *inner_length)
{
	*inner_offset = 0;
	*inner_length = 0;
	if (part_size == 0 || length == 0)
		return false;
	uint64_t part_end = part_pos + part_size, end = offset + length;
	uint64_t a = offset > part_pos ? offset : part_pos;
	uint64_t b = end < part_end ? end : part_end;
	if (a >= b)
		return false;
	*inner_offset = a - part_pos;
	*inner_length = b - a;
	return true;
}
