/*
 * One error space for moat: 0 is success, failures are negative
 * MOAT_ERR_* codes. When a caller needs more than a code, a function
 * takes a struct moat_cause (which may be NULL) and fills it with one
 * sentence that says what failed and where, in the user's terms.
 */
#ifndef MOAT_COMMON_ERRORS_H
#define MOAT_COMMON_ERRORS_H

enum {
	MOAT_OK = 0,
	MOAT_ERR_INTERNAL = -1,
	MOAT_ERR_NOMEM = -2,
	MOAT_ERR_INVALID = -3,     /* bad input: policy, request, packet, key */
	MOAT_ERR_SYSTEM = -4,      /* a syscall failed; the cause names it */
	MOAT_ERR_UNSUPPORTED = -5, /* this kernel lacks the feature */
	MOAT_ERR_NOTFOUND = -6,    /* no such sandbox, policy, row, file */
	MOAT_ERR_DENIED = -7,      /* refused by policy or permission */
	MOAT_ERR_AGAIN = -8,       /* try again later (busy, would block) */
	MOAT_ERR_EXISTS = -9,      /* already there */
};

#define MOAT_CAUSE_LEN 256

struct moat_cause {
	char msg[MOAT_CAUSE_LEN];
};

/* Text for a code; never NULL. */
const char *moat_strerror(int r);

/* Format into c (a no-op when c is NULL). */
void moat_cause_set(struct moat_cause *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Like moat_cause_set, then appends ": " and strerror(errno). */
void moat_cause_errno(struct moat_cause *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The cause's text, or moat_strerror(r) when the cause is empty. */
const char *moat_cause_str(const struct moat_cause *c, int r);

#endif
