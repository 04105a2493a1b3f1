/*
 * zonefile.c - RFC 1035 master files (zonefile.h). The file is read whole
 * (bounded), split into physical lines, and each entry (lines joined while
 * a parenthesis is open; comments and the parentheses themselves become
 * spaces, quoted text is kept as is) is split into owner, TTL, class and
 * type; its RDATA text goes to dns_zone_add_at, the same parser the
 * config's `record =` lines use, with the current $ORIGIN for relative
 * names.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "dns/zonefile.h"

typedef struct zf {
	dns_zone *z;
	const char *path;
	dns_name origin;           /* $ORIGIN */
	uint32_t default_ttl;      /* $TTL, else the [zone]'s ttl */
	dns_name owner;            /* the previous entry's owner */
	bool have_owner;
	int records;
	char *err;
	size_t errcap, errlen;
	int errors;
} zf;

static void zf_error(zf *f, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void zf_error(zf *f, int line, const char *fmt, ...)
{
	f->errors++;
	if (f->errors > ZONEFILE_MAX_ERRORS || f->errlen + 1 >= f->errcap)
		return;
	int w = snprintf(f->err + f->errlen, f->errcap - f->errlen, "%s:%d: ", f->path, line);
	if (w > 0)
		f->errlen += (size_t)w < f->errcap - f->errlen ? (size_t)w : f->errcap - f->errlen - 1;
	va_list ap;
	va_start(ap, fmt);
	w = vsnprintf(f->err + f->errlen, f->errcap - f->errlen, fmt, ap);
	va_end(ap);
	if (w > 0)
		f->errlen += (size_t)w < f->errcap - f->errlen ? (size_t)w : f->errcap - f->errlen - 1;
	if (f->errlen + 2 <= f->errcap) {
		f->err[f->errlen++] = '\n';
		f->err[f->errlen] = '\0';
	}
}

/* The next token of *s (up to whitespace; quoted text kept whole) into
 * tok. false at the end of s, or when it does not fit. */
static bool take_token(const char **s, char *tok, size_t cap)
{
	const char *p = *s;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return false;
	size_t n = 0;
	bool quoted = false;
	while (*p && (quoted || (*p != ' ' && *p != '\t'))) {
		if (*p == '\\' && p[1]) {
			if (n + 2 >= cap)
				goto too_long;
			tok[n++] = *p++;
		} else if (*p == '"') {
			quoted = !quoted;
		}
		if (n + 1 >= cap)
			goto too_long;
		tok[n++] = *p++;
	}
	tok[n] = '\0';
	*s = p;
	return true;
too_long:
	tok[n] = '\0'; /* (what was read, for an error message) */
	return false;
}

/* A TTL: seconds, or numbers with units s m h d w ("1h30m"). 0 or
 * ERR_PARSE (also over 2^31 - 1, RFC 2181). */
static int parse_ttl(const char *s, uint32_t *out)
{
	uint64_t total = 0, v = 0;
	bool digits = false, unit = false;
	if (!*s || *s < '0' || *s > '9')
		return ERR_PARSE;
	for (; *s; s++) {
		if (*s >= '0' && *s <= '9') {
			v = v * 10 + (uint64_t)(*s - '0');
			digits = true;
			if (v > 0x7fffffff)
				return ERR_PARSE;
			continue;
		}
		uint64_t mult;
		switch (*s | 0x20) {
		case 's': mult = 1; break;
		case 'm': mult = 60; break;
		case 'h': mult = 3600; break;
		case 'd': mult = 86400; break;
		case 'w': mult = 604800; break;
		default: return ERR_PARSE;
		}
		if (!digits)
			return ERR_PARSE;
		total += v * mult;
		v = 0;
		digits = false;
		unit = true;
		if (total > 0x7fffffff)
			return ERR_PARSE;
	}
	if (digits && unit)
		return ERR_PARSE; /* "1h30": a number after a unit needs its own */
	total += v;
	if (total > 0x7fffffff)
		return ERR_PARSE;
	*out = (uint32_t)total;
	return 0;
}

/* name (absolute, "@", or relative to $ORIGIN) into out. */
static int name_of(const zf *f, const char *text, dns_name *out)
{
	if (strcmp(text, "@") == 0) {
		*out = f->origin;
		return 0;
	}
	size_t n = strlen(text);
	if (n > 0 && text[n - 1] == '.' && (n < 2 || text[n - 2] != '\\'))
		return dns_name_from_text(text, out);
	char origin[4 * DNS_NAME_MAX + 2], full[4 * DNS_NAME_MAX + 300];
	dns_name_to_text(&f->origin, origin, sizeof origin);
	int w = snprintf(full, sizeof full, "%s.%s", text, strcmp(origin, ".") == 0 ? "" : origin);
	if (w < 0 || (size_t)w >= sizeof full)
		return ERR_PARSE;
	return dns_name_from_text(full, out);
}

static void directive(zf *f, int line, const char *e)
{
	char word[32], arg[1024], extra[8];
	const char *s = e;
	if (!take_token(&s, word, sizeof word)) {
		zf_error(f, line, "unknown directive");
		return;
	}
	bool have_arg = take_token(&s, arg, sizeof arg);
	bool more = take_token(&s, extra, sizeof extra) || *s;
	if (strcasecmp(word, "$ORIGIN") == 0) {
		dns_name o;
		if (!have_arg || more || name_of(f, arg, &o) != 0)
			zf_error(f, line, "$ORIGIN needs one domain name");
		else if (!dns_name_within(&o, dns_zone_origin(f->z)))
			zf_error(f, line, "$ORIGIN %.200s is not within the zone", arg);
		else
			f->origin = o;
	} else if (strcasecmp(word, "$TTL") == 0) {
		if (!have_arg || more || parse_ttl(arg, &f->default_ttl) != 0)
			zf_error(f, line, "$TTL needs one TTL (seconds, or with units s m h d w; at most 2147483647)");
	} else if (strcasecmp(word, "$INCLUDE") == 0) {
		zf_error(f, line, "$INCLUDE is not supported: the zone is one file");
	} else {
		zf_error(f, line, "unknown directive %.40s ($ORIGIN, $TTL)", word);
	}
}

/* One entry: [OWNER] [TTL] [CLASS] TYPE RDATA (TTL and class either way
 * round); blank_owner when its first line began with a space. */
static void entry(zf *f, int line, const char *e, bool blank_owner)
{
	const char *s = e;
	char tok[1024] = "";
	if (!blank_owner && *s == '$') {
		directive(f, line, e);
		return;
	}
	if (!blank_owner) {
		if (!take_token(&s, tok, sizeof tok) || name_of(f, tok, &f->owner) != 0) {
			zf_error(f, line, "'%.80s' is not a valid owner name", tok);
			f->have_owner = false;
			return;
		}
		f->have_owner = true;
	} else if (!f->have_owner) {
		zf_error(f, line, "a record without an owner needs a previous one (the line starts with a space)");
		return;
	}
	uint32_t ttl = f->default_ttl;
	bool have_ttl = false, have_class = false;
	char type[32] = "";
	while (take_token(&s, tok, sizeof tok)) {
		if (!have_ttl && tok[0] >= '0' && tok[0] <= '9') {
			if (parse_ttl(tok, &ttl) != 0) {
				zf_error(f, line, "'%.40s' is not a TTL (seconds, or with units s m h d w)", tok);
				return;
			}
			have_ttl = true;
		} else if (!have_class && (strcasecmp(tok, "IN") == 0 || strcasecmp(tok, "CH") == 0 ||
					   strcasecmp(tok, "HS") == 0 || strcasecmp(tok, "CS") == 0 ||
					   strncasecmp(tok, "CLASS", 5) == 0)) {
			if (strcasecmp(tok, "IN") != 0) {
				zf_error(f, line, "class %.20s is not supported (IN only)", tok);
				return;
			}
			have_class = true;
		} else {
			snprintf(type, sizeof type, "%.31s", tok);
			break;
		}
	}
	if (!type[0]) {
		zf_error(f, line, "a record needs a type and its data");
		return;
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if (++f->records > ZONEFILE_MAX_RECORDS) {
		if (f->records == ZONEFILE_MAX_RECORDS + 1)
			zf_error(f, line, "too many records (at most %d in a zone file)", ZONEFILE_MAX_RECORDS);
		return;
	}
	char owner[4 * DNS_NAME_MAX + 2];
	dns_name_to_text(&f->owner, owner, sizeof owner);
	char err[256] = "";
	int rc = dns_zone_add_at(f->z, &f->origin, line, owner, type, ttl, s, err, sizeof err);
	if (rc == ERR_NOMEM)
		zf_error(f, line, "out of memory");
	else if (rc != 0)
		zf_error(f, line, "%s %s: %s", owner, type, err[0] ? err : "cannot be added");
}

int dns_zonefile_parse(dns_zone *z, const char *text, size_t len, const char *path, uint32_t ttl, char *err,
		       size_t errcap)
{
	zf f = {.z = z, .path = path, .origin = *dns_zone_origin(z), .default_ttl = ttl, .err = err,
		.errcap = errcap};
	if (errcap)
		err[0] = '\0';
	if (len > ZONEFILE_MAX_BYTES) {
		zf_error(&f, 0, "the file is over %u bytes", ZONEFILE_MAX_BYTES);
		return ERR_CONFIG;
	}
	char *e = malloc(ZONEFILE_MAX_ENTRY + 1);
	if (!e)
		return ERR_NOMEM;
	size_t elen = 0;
	int depth = 0, entry_line = 0, line = 0;
	bool blank_owner = false, overflow = false, drop = false;
	size_t pos = 0;
	while (pos < len && f.errors <= ZONEFILE_MAX_ERRORS) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len;
		const char *p = text + pos;
		size_t n = end - pos;
		pos = nl ? end + 1 : len;
		line++;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n > ZONEFILE_MAX_LINE) {
			zf_error(&f, line, "the line is over %d bytes", ZONEFILE_MAX_LINE);
			continue;
		}
		if (memchr(p, '\0', n)) {
			zf_error(&f, line, "a NUL byte");
			continue;
		}
		if (depth == 0) {
			elen = 0;
			entry_line = line;
			blank_owner = n > 0 && (p[0] == ' ' || p[0] == '\t');
			overflow = false;
			drop = false;
		}
		bool quoted = false;
		for (size_t i = 0; i < n; i++) {
			char c = p[i];
			if (!quoted && c == ';')
				break; /* a comment to the end of the line */
			if (c == '\\' && i + 1 < n) {
				if (elen + 2 <= ZONEFILE_MAX_ENTRY) {
					e[elen++] = c;
					e[elen++] = p[++i];
				} else {
					overflow = true;
				}
				continue;
			}
			if (c == '"')
				quoted = !quoted;
			else if (!quoted && c == '(') {
				depth++, c = ' ';
			} else if (!quoted && c == ')') {
				if (depth == 0) {
					zf_error(&f, line, "')' without '('");
					drop = true;
				}
				depth = depth > 0 ? depth - 1 : 0;
				c = ' ';
			}
			if (elen + 1 <= ZONEFILE_MAX_ENTRY)
				e[elen++] = c == '\t' ? ' ' : c;
			else
				overflow = true;
		}
		if (quoted) {
			zf_error(&f, line, "a quoted string does not end on its line");
			depth = 0;
			continue;
		}
		if (depth > 0) {
			if (elen + 1 <= ZONEFILE_MAX_ENTRY)
				e[elen++] = ' ';
			continue;
		}
		if (overflow)
			zf_error(&f, entry_line, "the entry is over %d bytes", ZONEFILE_MAX_ENTRY);
		if (overflow || drop)
			continue;
		e[elen] = '\0';
		size_t k = 0;
		while (k < elen && e[k] == ' ')
			k++;
		if (k < elen)
			entry(&f, entry_line, e + k, blank_owner);
	}
	if (depth > 0)
		zf_error(&f, entry_line, "'(' is never closed");
	free(e);
	return f.errors ? ERR_CONFIG : 0;
}

int dns_zonefile_load(dns_zone *z, const char *path, uint32_t ttl, char *err, size_t errcap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errcap, "cannot read %s: %s", path, strerror(errno));
		return ERR_IO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errcap, "cannot read %s: not a regular file", path);
		close(fd);
		return ERR_IO;
	}
	if (st.st_size > (off_t)ZONEFILE_MAX_BYTES) {
		snprintf(err, errcap, "%s is over %u bytes", path, ZONEFILE_MAX_BYTES);
		close(fd);
		return ERR_LIMIT;
	}
	size_t size = (size_t)st.st_size;
	char *text = malloc(size + 1);
	if (!text) {
		close(fd);
		return ERR_NOMEM;
	}
	size_t got = 0;
	while (got < size) {
		ssize_t r = read(fd, text + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, errcap, "cannot read %s: %s", path, r < 0 ? strerror(errno) : "it shrank");
			free(text);
			close(fd);
			return ERR_IO;
		}
		got += (size_t)r;
	}
	close(fd);
	int rc = dns_zonefile_parse(z, text, size, path, ttl, err, errcap);
	free(text);
	return rc;
}
