/*
 * Logging: one function behind thin macros that pass file, line and
 * function, so every line names where it came from. One event per line,
 * no trailing period. Never log credentials, keys or injected headers.
 * The message is moat_escape()d (common/escape.h): sandbox text in it
 * can neither drive the operator's terminal nor forge a line.
 */
#ifndef MOAT_COMMON_LOG_H
#define MOAT_COMMON_LOG_H

#include <stdbool.h>

enum moat_log_level {
	MOAT_LOG_FATAL = 0,
	MOAT_LOG_ERROR,
	MOAT_LOG_WARN,
	MOAT_LOG_INFO,
	MOAT_LOG_VERBOSE,
	MOAT_LOG_DEBUG,
};

/* Process-wide settings: the level, and a tag such as "moatd" or "proxy". */
void moat_log_init(const char *tag, enum moat_log_level level);
void moat_log_set_level(enum moat_log_level level);
bool moat_log_enabled(enum moat_log_level level);

/*
 * Send every line to fn instead of stderr (NULL: back to stderr). The
 * line is "function: message", without time, tag or level. For a
 * process that has no stderr of its own (the SSH session process logs
 * through its monitor).
 */
void moat_log_set_sink(void (*fn)(void *arg, enum moat_log_level level,
    const char *line), void *arg);

/* r != 0 appends moat_strerror(r); with_errno appends strerror(errno). */
void moat_log(enum moat_log_level level, const char *file, int line,
    const char *func, int r, bool with_errno, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
void moat_log_fatal(const char *file, int line, const char *func,
    const char *fmt, ...) __attribute__((format(printf, 4, 5), noreturn));

/*
 * Rate limiting for per-connection and per-packet logs: at most `burst`
 * lines per second per limiter; returns false when the line should be
 * dropped (and counts it, reporting the drop count on the next allowed
 * line).
 */
struct moat_ratelimit {
	long long window_start;
	unsigned count;
	unsigned burst;
	unsigned dropped;
};
bool moat_ratelimit_ok(struct moat_ratelimit *rl);

#define MOAT_LOG_(lvl, r, e, ...)                                          \
	do {                                                               \
		if (moat_log_enabled(lvl))                                 \
			moat_log((lvl), __FILE__, __LINE__, __func__, (r), \
			    (e), __VA_ARGS__);                             \
	} while (0)

#define log_error(...) MOAT_LOG_(MOAT_LOG_ERROR, 0, false, __VA_ARGS__)
#define log_warn(...) MOAT_LOG_(MOAT_LOG_WARN, 0, false, __VA_ARGS__)
#define log_info(...) MOAT_LOG_(MOAT_LOG_INFO, 0, false, __VA_ARGS__)
#define log_verbose(...) MOAT_LOG_(MOAT_LOG_VERBOSE, 0, false, __VA_ARGS__)
#define log_debug(...) MOAT_LOG_(MOAT_LOG_DEBUG, 0, false, __VA_ARGS__)
#define log_error_r(r, ...) MOAT_LOG_(MOAT_LOG_ERROR, (r), false, __VA_ARGS__)
#define log_warn_r(r, ...) MOAT_LOG_(MOAT_LOG_WARN, (r), false, __VA_ARGS__)
#define log_error_errno(...) MOAT_LOG_(MOAT_LOG_ERROR, 0, true, __VA_ARGS__)
#define log_warn_errno(...) MOAT_LOG_(MOAT_LOG_WARN, 0, true, __VA_ARGS__)
#define log_fatal(...) moat_log_fatal(__FILE__, __LINE__, __func__, __VA_ARGS__)

#endif
