/*
 * buf.h - a growable byte buffer with a hard maximum (after curl's dynbuf).
 *
 * Every buffer is created with the largest size it may ever reach; an append
 * that would pass it fails with ERR_LIMIT and leaves the buffer unaltered.
 * The content is always NUL-terminated (the NUL is not counted in len), so
 * text can be handed to C string functions.
 */
#ifndef TANDEM_BUF_H
#define TANDEM_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct buf {
	char *data;   /* NULL until the first append */
	size_t len;   /* bytes used, not counting the trailing NUL */
	size_t cap;   /* bytes allocated */
	size_t max;   /* hard maximum for len */
} buf;

void buf_init(buf *b, size_t max);
/* Free the content; the buffer is empty and reusable (same max). */
void buf_free(buf *b);
/* Forget the content but keep the allocation. */
void buf_reset(buf *b);
/* Append; 0, ERR_LIMIT or ERR_NOMEM (buffer unaltered on failure). */
int buf_add(buf *b, const void *data, size_t len);
int buf_adds(buf *b, const char *s);
int buf_addc(buf *b, char c);
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf *b, const char *fmt, va_list ap);
/* Append s as the inside of a JSON string (quotes not added). */
int buf_add_json_escaped(buf *b, const char *s, size_t len);
/* Hand the content over to the caller (who frees it); the buffer is empty. */
char *buf_take(buf *b, size_t *len);

#endif
