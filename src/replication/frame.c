/* frame.c - encode and decode replication frames; see frame.h. */
#include "replication/frame.h"

#include <string.h>

#include "core/err.h"

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

int frame_encode(buf *out, int type, uint64_t epoch, uint64_t seq, int64_t time_ms,
		 const void *payload, uint32_t length)
{
	if (type < FRAME_CHANGESET || type > FRAME_HEARTBEAT || length > FRAME_MAX_PAYLOAD ||
	    (type == FRAME_HEARTBEAT && length != 0) || (type == FRAME_SCHEMA && length < 5))
		return ERR_INVAL;
	unsigned char h[FRAME_HEADER_BYTES];
	h[0] = 'T';
	h[1] = 'R';
	h[2] = 1;
	h[3] = (unsigned char)type;
	put_u64(h + 4, epoch);
	put_u64(h + 12, seq);
	put_u64(h + 20, (uint64_t)time_ms);
	h[28] = (unsigned char)(length >> 24);
	h[29] = (unsigned char)(length >> 16);
	h[30] = (unsigned char)(length >> 8);
	h[31] = (unsigned char)length;
	size_t mark = out->len;
	int rc = buf_add(out, h, sizeof h);
	if (rc == 0 && length)
		rc = buf_add(out, payload, length);
	if (rc != 0) {
		out->len = mark;
		if (out->data)
			out->data[mark] = '\0';
	}
	return rc;
}

int frame_decode(const unsigned char *data, size_t len, frame *f, size_t *used)
{
	*used = 0;
	/* check what is there as early as possible: a bad stream fails fast */
	if (len >= 1 && data[0] != 'T')
		return ERR_PARSE;
	if (len >= 2 && data[1] != 'R')
		return ERR_PARSE;
	if (len >= 3 && data[2] != 1)
		return ERR_PARSE;
	if (len >= 4 && (data[3] < FRAME_CHANGESET || data[3] > FRAME_HEARTBEAT))
		return ERR_PARSE;
	if (len < FRAME_HEADER_BYTES)
		return 0;
	uint32_t length = (uint32_t)data[28] << 24 | (uint32_t)data[29] << 16 |
			  (uint32_t)data[30] << 8 | data[31];
	if (length > FRAME_MAX_PAYLOAD)
		return ERR_LIMIT;
	if (data[3] == FRAME_HEARTBEAT && length != 0)
		return ERR_PARSE;
	if (data[3] == FRAME_SCHEMA && length < 5)
		return ERR_PARSE;
	if (len - FRAME_HEADER_BYTES < length)
		return 0;
	f->type = data[3];
	f->epoch = get_u64(data + 4);
	f->seq = get_u64(data + 12);
	f->time_ms = (int64_t)get_u64(data + 20);
	f->length = length;
	f->payload = data + FRAME_HEADER_BYTES;
	*used = FRAME_HEADER_BYTES + length;
	return 1;
}
