#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static enum log_level min_level = LOGL_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
	min_level = level;
}

int log_level_parse(const char *name, enum log_level *level)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void vlog(enum log_level level, const char *fmt, va_list ap)
{
	struct timeval tv;
	struct tm tm;
	char stamp[32];

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s: ", stamp, (long)(tv.tv_usec / 1000), names[level]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < min_level)
		return;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

static unsigned long long suppressed_total;

void log_limited(struct log_limit *limit, enum log_level level, const char *fmt, ...)
{
	long minute = (long)(time(NULL) / 60);
	unsigned left_out = 0;
	char line[1024];
	va_list ap;

	if (level < min_level)
		return;
	if (limit->window != minute) {
		left_out = limit->suppressed;
		limit->window = minute;
		limit->printed = limit->suppressed = 0;
	}
	if (limit->printed == LOG_BURST) {
		limit->suppressed++;
		suppressed_total++;
		return;
	}
	limit->printed++;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (left_out > 0)
		log_msg(level, "%s (%u more like it were left out of the log before this)", line,
		        left_out);
	else if (limit->printed == LOG_BURST)
		log_msg(level, "%s (more like it this minute are left out of the log)", line);
	else
		log_msg(level, "%s", line);
}

unsigned long long log_suppressed_total(void)
{
	return suppressed_total;
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOGL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
