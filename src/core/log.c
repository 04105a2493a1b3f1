/* log.c - JSON-lines logger; see log.h. One write(2) per line, so lines from
 * several threads or processes never interleave. */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/util.h"

static char log_component[64] = "tandem";
static log_level log_min = LOG_INFO;
static char log_region[32] = "";
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(const char *component, log_level min)
{
	snprintf(log_component, sizeof log_component, "%s", component);
	log_min = min;
}

void log_set_region(const char *region)
{
	snprintf(log_region, sizeof log_region, "%s", region);
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

static void log_begin(buf *b, const char *level)
{
	char ts[32];
	util_iso8601(util_now_ms(), ts);
	buf_printf(b, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"", ts, level);
	buf_add_json_escaped(b, log_component, strlen(log_component));
	buf_adds(b, "\"");
}

/* request lines are buffered (one write per 32 KiB): the API thread appends,
 * any thread may flush (an event line flushes first, to keep the order) */
static buf request_lines;
static pthread_mutex_t request_lock = PTHREAD_MUTEX_INITIALIZER;
#define REQUEST_LINES_FLUSH (32 * 1024)

static void log_write_all(const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, data, len);
		if (n <= 0)
			return; /* nowhere left to report a failed log write */
		data += n;
		len -= (size_t)n;
	}
}

static void log_flush_locked(void)
{
	if (request_lines.len) {
		log_write_all(request_lines.data, request_lines.len);
		buf_reset(&request_lines);
	}
}

void log_flush(void)
{
	pthread_mutex_lock(&request_lock);
	log_flush_locked();
	pthread_mutex_unlock(&request_lock);
}

static void log_end(buf *b)
{
	if (buf_adds(b, "}\n") != 0) { /* truncated: still end the line */
		b->len = b->max > 2 ? b->max - 2 : 0;
		buf_adds(b, "}\n");
	}
	ssize_t unused = write(STDERR_FILENO, b->data, b->len);
	(void)unused; /* nowhere left to report a failed log write */
	buf_free(b);
}

/* A line up to its formatted "msg" field (the caller ends it). */
static void log_begin_msg(buf *b, log_level level, const char *fmt, va_list ap)
{
	char text[1024];
	vsnprintf(text, sizeof text, fmt, ap);
	buf_init(b, 4096);
	log_begin(b, level_names[level]);
	buf_adds(b, ",\"msg\":\"");
	buf_add_json_escaped(b, text, strlen(text));
	buf_adds(b, "\"");
}

void log_msg(log_level level, const char *fmt, ...)
{
	if (level < log_min)
		return;
	buf b;
	va_list ap;
	va_start(ap, fmt);
	log_begin_msg(&b, level, fmt, ap);
	va_end(ap);
	log_end(&b);
}

void log_event(log_level level, const char *event, const char *fields, const char *fmt, ...)
{
	buf b;
	va_list ap;
	va_start(ap, fmt);
	log_begin_msg(&b, level, fmt, ap);
	va_end(ap);
	buf_adds(&b, ",\"event\":\"");
	buf_add_json_escaped(&b, event, strlen(event));
	buf_adds(&b, "\"");
	if (log_region[0]) {
		buf_adds(&b, ",\"region\":\"");
		buf_add_json_escaped(&b, log_region, strlen(log_region));
		buf_adds(&b, "\"");
	}
	if (fields && *fields) {
		buf_addc(&b, ',');
		buf_adds(&b, fields);
	}
	log_flush(); /* keep request lines before it in order */
	log_end(&b);
}

void log_request(const char *method, const char *route, int status, int64_t duration_us,
		 const char *request_id)
{
	if (LOG_INFO < log_min)
		return;
	buf b;
	buf_init(&b, 2048);
	log_begin(&b, "info");
	buf_adds(&b, ",\"msg\":\"request\",\"region\":\"");
	buf_add_json_escaped(&b, log_region, strlen(log_region));
	buf_adds(&b, "\",\"method\":\"");
	buf_add_json_escaped(&b, method, strlen(method));
	buf_adds(&b, "\",\"route\":\"");
	buf_add_json_escaped(&b, route, strlen(route));
	buf_printf(&b, "\",\"status\":%d,\"duration_ms\":%.3f,\"request_id\":\"", status,
		   (double)duration_us / 1000.0);
	buf_add_json_escaped(&b, request_id, strlen(request_id));
	buf_adds(&b, "\"}\n");
	pthread_mutex_lock(&request_lock);
	if (request_lines.max == 0)
		buf_init(&request_lines, 4 * REQUEST_LINES_FLUSH);
	if (buf_add(&request_lines, b.data, b.len) != 0) {
		log_flush_locked();
		log_write_all(b.data, b.len);
	}
	if (request_lines.len >= REQUEST_LINES_FLUSH)
		log_flush_locked();
	pthread_mutex_unlock(&request_lock);
	buf_free(&b);
}
