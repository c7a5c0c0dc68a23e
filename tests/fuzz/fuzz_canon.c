/*
 * Fuzz a request inside a tunnel as the L7 engine reads it: the
 * origin-form head parser, the canonicaliser of its target, and the
 * query walk. Invariants: the canonical path starts with '/', holds no
 * "//", no "." or ".." segment and no raw backslash, and is never
 * longer than the target plus one; canonicalising it again changes
 * nothing (an encoded slash in a segment that ".." removed is still
 * reported the first time: denying it is the safe side). The path
 * without ";parameters" (the second reading the rules must pass) keeps
 * those properties and holds no ';'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policies/internal.h"
#include "proxy/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_path(const char *p, size_t n)
{
	if (n == 0 || p[0] != '/' || memchr(p, '\\', n) != NULL)
		abort();
	for (size_t i = 0; i + 1 < n; i++)
		if (p[i] == '/' && p[i + 1] == '/')
			abort();
	for (size_t i = 0; i < n; i++) {
		size_t j = i + 1;

		if (p[i] != '/')
			continue;
		while (j < n && p[j] != '/')
			j++;
		if ((j - i - 1 == 1 && p[i + 1] == '.') || (j - i - 1 == 2 &&
		    p[i + 1] == '.' && p[i + 2] == '.'))
			abort();
	}
}

static void
canon(const char *t, size_t n)
{
	char out[MOAT_HTTP_HEAD_MAX + 16], again[MOAT_HTTP_HEAD_MAX + 16];
	char why[128], name[256], value[256], plain[MOAT_HTTP_HEAD_MAX + 16];
	size_t pl = 0, pl2 = 0;
	bool enc = false, enc2 = false;
	const char *q;
	int k = 0;

	if (moat_l7_canon(t, n, out, sizeof(out), &pl, &enc, why,
	    sizeof(why)) != MOAT_OK)
		return;
	if (strlen(out) > n + 1 || pl > strlen(out))
		abort();
	check_path(out, pl);
	{
		char save = out[pl];

		out[pl] = '\0';
		if (pol_l7_plain_path(out, plain, sizeof(plain)) < 0 ||
		    strchr(plain, ';') != NULL || strlen(plain) > pl + 1)
			abort();
		check_path(plain, strlen(plain));
		out[pl] = save;
	}
	if (moat_l7_canon(out, strlen(out), again, sizeof(again), &pl2, &enc2,
	    why, sizeof(why)) != MOAT_OK || strcmp(out, again) != 0 ||
	    (enc2 && !enc))
		abort();
	q = out[pl] == '?' ? out + pl + 1 : "";
	while (moat_l7_query_next(&q, name, sizeof(name), value,
	    sizeof(value)) && k++ < 10000)
		;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct moat_http_req r;
	struct moat_cause cause;
	int status = 0;
	char *buf;

	if ((buf = malloc(size ? size : 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	/* The bytes as a target on their own, and as a request head. */
	canon(buf, size);
	if (moat_http_parse_origin(buf, size, &r, &status, &cause) ==
	    MOAT_OK) {
		if (r.kind != MOAT_HTTP_ORIGIN || r.path.off + r.path.len >
		    r.head_len || buf[r.path.off] != '/')
			abort();
		canon(buf + r.path.off, r.path.len);
	}
	free(buf);
	return 0;
}
