/*
 * A tiny TAP producer for unit tests, read by prove(1).
 *
 *	plan_no_plan();            or plan(N);
 *	ok(cond, "name %d", i);
 *	is_int(got, want, "name");
 *	is_str(got, want, "name");
 *	skip("needs CAP_NET_ADMIN");   one "ok N # SKIP reason"
 *	return done_testing();
 */
#ifndef MOAT_TESTS_TAP_H
#define MOAT_TESTS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n;
static int tap_failed;
static int tap_last_failed; /* diag goes to stderr after a failure */
static int tap_planned = -1;

static inline void
plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline void
plan_no_plan(void)
{
}

static inline void
tap_vresult(int pass, const char *fmt, va_list ap)
{
	va_list ap2;

	tap_n++;
	if (!pass)
		tap_failed++;
	tap_last_failed = !pass;
	va_copy(ap2, ap);
	printf("%sok %d - ", pass ? "" : "not ", tap_n);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	if (!pass) {
		fprintf(stderr, "#   Failed test %d - ", tap_n);
		vfprintf(stderr, fmt, ap2);
		fprintf(stderr, "\n");
	}
	va_end(ap2);
}

static inline int
ok(int pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int
ok(int pass, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vresult(pass, fmt, ap);
	va_end(ap);
	return pass;
}

static inline void
diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void
diag(const char *fmt, ...)
{
	/* After a failure to stderr, which prove shows without -v. */
	FILE *f = tap_last_failed ? stderr : stdout;
	va_list ap;

	fflush(stdout);
	fprintf(f, "# ");
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fprintf(f, "\n");
	fflush(f);
}

#define is_int(got, want, ...)                                           \
	do {                                                             \
		long long g_ = (long long)(got), w_ = (long long)(want); \
		if (!ok(g_ == w_, __VA_ARGS__))                          \
			diag("  got: %lld, expected: %lld", g_, w_);    \
	} while (0)

#define is_str(got, want, ...)                                          \
	do {                                                            \
		const char *g_ = (got), *w_ = (want);                   \
		int p_ = (g_ == NULL && w_ == NULL) ||                  \
		    (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0);  \
		if (!ok(p_, __VA_ARGS__))                               \
			diag("  got: '%s', expected: '%s'",             \
			    g_ ? g_ : "(null)", w_ ? w_ : "(null)");     \
	} while (0)

#define like_str(got, needle, ...)                                       \
	do {                                                             \
		const char *g_ = (got), *n_ = (needle);                  \
		if (!ok(g_ != NULL && strstr(g_, n_) != NULL, __VA_ARGS__)) \
			diag("  '%s' does not contain '%s'",             \
			    g_ ? g_ : "(null)", n_);                     \
	} while (0)

static inline void
skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void
skip(const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("ok %d # SKIP ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static inline int
done_testing(void)
{
	if (tap_planned < 0)
		printf("1..%d\n", tap_n);
	fflush(stdout);
	return tap_failed != 0 || (tap_planned >= 0 && tap_planned != tap_n);
}

#endif
