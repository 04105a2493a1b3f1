/*
 * forwarded.c - the for= address of a Forwarded field (forwarded.h).
 */
#include "http/forwarded.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

bool http_forwarded_for(const char *value, size_t len, char *out, size_t cap)
{
	const char *end = value + len, *found = NULL;
	/* the last for= that starts a pair (start, or after ';' ',' or space) */
	for (const char *p = value; end - p >= 4; p++)
		if (strncasecmp(p, "for=", 4) == 0 && (p == value || p[-1] == ';' || p[-1] == ',' || p[-1] == ' '))
			found = p + 4;
	if (!found)
		return false;
	char text[64];
	size_t n = 0;
	const char *p = found;
	bool quoted = p < end && *p == '"';
	if (quoted)
		p++;
	bool bracket = p < end && *p == '[';
	if (bracket)
		p++;
	/* up to the end of the node name: a ':' starts the port of an IPv4
	 * address or a name (IPv6 needs its brackets, RFC 7239 section 6) */
	while (p < end && *p != '"' && *p != ';' && *p != ',' && *p != ' ' && !(bracket && *p == ']') &&
	       !(!bracket && *p == ':')) {
		if (n == sizeof text - 1)
			return false; /* longer than any address */
		text[n++] = *p++;
	}
	if (bracket && (p == end || *p != ']'))
		return false;
	text[n] = '\0';
	unsigned char a[16];
	if (!n || (bracket ? inet_pton(AF_INET6, text, a) : inet_pton(AF_INET, text, a)) != 1)
		return false;
	if (n >= cap)
		return false;
	memcpy(out, text, n + 1);
	return true;
}
