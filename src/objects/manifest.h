/*
 * manifest.h - the arithmetic of multipart objects, kept pure so that it
 * can be tested on its own: the ETag S3 gives a completed upload, the size
 * rules a Complete checks, and which slice of which part a byte range of
 * the object reads.
 *
 * A multipart object is not copied together at Complete: its row names a
 * manifest, the ordered list of its part blobs (meta.h), and readers walk
 * the parts. Nothing here allocates or fails other than as said.
 */
#ifndef TANDEM_OBJECTS_MANIFEST_H
#define TANDEM_OBJECTS_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MANIFEST_MAX_PARTS 10000                /* S3's bound on parts and part numbers */
#define MANIFEST_MIN_PART (5ULL * 1024 * 1024)  /* S3: every part but the last */
#define MANIFEST_ETAG_MAX 40                    /* 32 hex, "-10000", NUL */

/* The 16 bytes of a 32-char hex MD5 (either case). 0 or -1 (not one). */
int manifest_md5_from_hex(const char *hex, unsigned char out[16]);

/* S3's ETag of a multipart object from its parts' binary MD5s (n of them,
 * 16 bytes each, in part order): hex(md5(md5_1 || ... || md5_n)) "-n".
 * 0, or -1 when n is 0 or above MANIFEST_MAX_PARTS (out set to ""). */
int manifest_etag(const unsigned char *md5s, size_t n, char out[MANIFEST_ETAG_MAX]);

typedef enum manifest_size_check {
	MANIFEST_SIZES_OK = 0,
	MANIFEST_PART_TOO_SMALL, /* *bad: the first part under min_part that is not the last */
	MANIFEST_TOO_LARGE,      /* the sum exceeds max_total (or overflows) */
} manifest_size_check;

/* Check the sizes of the parts a Complete names, in order: every part but
 * the last at least min_part bytes, the sum at most max_total. *total gets
 * the sum (as far as it was computed). */
manifest_size_check manifest_check_sizes(const uint64_t *sizes, size_t n, uint64_t min_part,
					 uint64_t max_total, size_t *bad, uint64_t *total);

/* The part at [part_pos, part_pos + part_size) of the object and the range
 * [offset, offset + length) requested: true when they overlap, with the
 * overlap's offset inside the part and its length. false (outputs 0) when
 * they do not (an empty part or range never overlaps). */
bool manifest_slice(uint64_t part_pos, uint64_t part_size, uint64_t offset, uint64_t length,
		    uint64_t *inner_offset, uint64_t *inner_length);

#endif
