#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/errors.h"

const char *
moat_strerror(int r)
{
	switch (r) {
	case MOAT_OK:
		return "success";
	case MOAT_ERR_INTERNAL:
		return "internal error";
	case MOAT_ERR_NOMEM:
		return "out of memory";
	case MOAT_ERR_INVALID:
		return "invalid input";
	case MOAT_ERR_SYSTEM:
		return "system call failed";
	case MOAT_ERR_UNSUPPORTED:
		return "not supported by this kernel";
	case MOAT_ERR_NOTFOUND:
		return "not found";
	case MOAT_ERR_DENIED:
		return "denied";
	case MOAT_ERR_AGAIN:
		return "try again";
	case MOAT_ERR_EXISTS:
		return "already exists";
	default:
		return "unknown error";
	}
}

void
moat_cause_set(struct moat_cause *c, const char *fmt, ...)
{
	va_list ap;

	if (c == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
}

void
moat_cause_errno(struct moat_cause *c, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;
	size_t n;

	if (c == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	n = strlen(c->msg);
	snprintf(c->msg + n, sizeof(c->msg) - n, ": %s", strerror(saved));
	errno = saved;
}

const char *
moat_cause_str(const struct moat_cause *c, int r)
{
	if (c != NULL && c->msg[0] != '\0')
		return c->msg;
	return moat_strerror(r);
}
