/*
 * log.h - structured logging: one JSON object per line on stderr.
 *
 * Each line has "time", "level", "component" (e.g. "region:eu") and "msg",
 * plus optional fields. The message is a printf format. Rule: never pass
 * secrets (passwords, tokens, keys) or personal data (emails, record
 * contents) to the logger; request logs carry only the route pattern.
 */
#ifndef TANDEM_LOG_H
#define TANDEM_LOG_H

#include <stdint.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } log_level;

/* Set the component name (copied) and the minimum level. */
void log_setup(const char *component, log_level min);
/* The region this process serves (copied); request lines carry it. */
void log_set_region(const char *region);
/* Parse "debug"|"info"|"warn"|"error"; -1 if unknown. */
int log_level_parse(const char *s);
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* An event line for machines (drills, alerts): "event" and the region,
 * plus fields, a preformatted JSON fragment ("\"epoch\":3") from
 * trusted values; always written, whatever the minimum level. */
void log_event(log_level level, const char *event, const char *fields, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The access log line of one request (see the API docs for its fields).
 * Request lines are buffered (under a lock: the API thread appends, and an
 * event line of any thread flushes them first) and written
 * when 32 KiB accumulate or at log_flush(), which the region calls every
 * 100 ms and at exit: one write(2) for many requests, not one each. */
void log_request(const char *method, const char *route, int status, int64_t duration_us,
		 const char *request_id);
void log_flush(void);

#endif
