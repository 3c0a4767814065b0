/* log: one line per event on stderr (the journal under systemd), with a
 * timestamp and level. Never pass secrets or confidential notes.
 * Layer: core (src/core/); includes nothing. */
#ifndef TB_LOG_H
#define TB_LOG_H

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARN, LOGL_ERROR };

void log_set_level(enum log_level level);
/* Returns 0 and sets *level for "debug", "info", "warn", "error"; else -1. */
int log_level_parse(const char *name, enum log_level *level) __attribute__((warn_unused_result));
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line someone outside can make the daemon repeat (a stranger's
 * connections, a failing accept): each call site keeps one of these, and
 * prints at most LOG_BURST lines a minute; the first line of the next
 * minute says how many were left out. */
#define LOG_BURST 10
struct log_limit {
	long window; /* the minute counted, as time()/60 */
	unsigned printed, suppressed;
};
void log_limited(struct log_limit *limit, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Lines left out so far, by every limit: for metrics. */
unsigned long long log_suppressed_total(void);

/* For start-up failures only: logs and exits with status 1. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)

#endif
