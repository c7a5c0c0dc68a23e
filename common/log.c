#include <sys/time.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/errors.h"
#include "common/escape.h"
#include "common/log.h"

/* The process's own logging config: the only mutable global here. */
static struct {
	char tag[32];
	enum moat_log_level level;
	void (*sink)(void *, enum moat_log_level, const char *);
	void *sink_arg;
} logcfg = { "moat", MOAT_LOG_INFO, NULL, NULL };

static const char *const level_names[] = {
	"fatal", "error", "warn", "info", "verbose", "debug",
};

void
moat_log_init(const char *tag, enum moat_log_level level)
{
	const char *env;

	snprintf(logcfg.tag, sizeof(logcfg.tag), "%s", tag);
	logcfg.level = level;
	if ((env = getenv("MOAT_LOG_LEVEL")) != NULL) {
		for (size_t i = 0; i < sizeof(level_names) / sizeof(*level_names);
		     i++)
			if (strcmp(env, level_names[i]) == 0)
				logcfg.level = (enum moat_log_level)i;
	}
}

void
moat_log_set_level(enum moat_log_level level)
{
	logcfg.level = level;
}

void
moat_log_set_sink(void (*fn)(void *arg, enum moat_log_level level,
    const char *line), void *arg)
{
	logcfg.sink = fn;
	logcfg.sink_arg = arg;
}

bool
moat_log_enabled(enum moat_log_level level)
{
	return level <= logcfg.level;
}

static void
vlog(enum moat_log_level level, const char *file, int line, const char *func,
    int r, bool with_errno, const char *fmt, va_list ap)
{
	char msg[1024];
	char esc[sizeof(msg) * MOAT_ESCAPE_RATIO];
	char ts[32];
	struct timeval tv;
	struct tm tm;
	int saved = errno;
	size_t n;

	(void)file;
	(void)line;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	if (r != 0 && n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", moat_strerror(r));
	else if (with_errno && n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	if (logcfg.sink != NULL) {
		char out[sizeof(msg) + 64];

		snprintf(out, sizeof(out), "%s: %s", func, msg);
		logcfg.sink(logcfg.sink_arg, level, out);
		errno = saved;
		return;
	}
	/* Sandbox text in a message must not drive the operator's terminal
	 * or forge a log line. */
	moat_escape_buf(msg, strlen(msg), esc, sizeof(esc));
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One write per line so lines of several processes do not mix. */
	dprintf(STDERR_FILENO, "%s.%03ldZ %s[%d] %s %s: %s\n", ts,
	    (long)(tv.tv_usec / 1000), logcfg.tag, (int)getpid(),
	    level_names[level], func, esc);
	errno = saved;
}

void
moat_log(enum moat_log_level level, const char *file, int line,
    const char *func, int r, bool with_errno, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(level, file, line, func, r, with_errno, fmt, ap);
	va_end(ap);
}

void
moat_log_fatal(const char *file, int line, const char *func, const char *fmt,
    ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(MOAT_LOG_FATAL, file, line, func, 0, false, fmt, ap);
	va_end(ap);
	exit(111);
}

bool
moat_ratelimit_ok(struct moat_ratelimit *rl)
{
	struct timespec now;
	long long sec;

	clock_gettime(CLOCK_MONOTONIC, &now);
	sec = now.tv_sec;
	if (rl->burst == 0)
		rl->burst = 10;
	if (sec != rl->window_start) {
		rl->window_start = sec;
		rl->count = 0;
	}
	if (rl->count >= rl->burst) {
		rl->dropped++;
		return false;
	}
	rl->count++;
	return true;
}
