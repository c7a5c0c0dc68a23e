/*
 * The SSRF golden table (tests/fixtures/ssrf-verdicts.tsv): read once,
 * with @UP replaced by the caller's private address, so the decision
 * function (test_policy_addr) and the real proxy (test_proxy) are held to
 * the same rows as `moat policy explain` (tests/e2e/policy-cli.t).
 */
#ifndef MOAT_TESTS_SSRF_GOLDEN_H
#define MOAT_TESTS_SSRF_GOLDEN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/tap.h"

#define GOLDEN_MAX 64

struct golden_row {
	char name[128];
	char host[64];
	unsigned port;
	char endpoints[512];
	char verdict[16]; /* allow, ssrf_denied, policy_denied */
	char reason[256];
};

/* Copy src into dst (of len) with every "@UP" replaced by up. */
static __attribute__((unused)) void
golden_subst(char *dst, size_t len, const char *src, const char *up)
{
	size_t o = 0;

	while (*src != '\0' && o + 1 < len) {
		if (strncmp(src, "@UP", 3) == 0) {
			o += (size_t)snprintf(dst + o, len - o, "%s", up);
			if (o >= len)
				o = len - 1;
			src += 3;
		} else {
			dst[o++] = *src++;
		}
	}
	dst[o] = '\0';
}

/*
 * Read the table (from $MOAT_SRC, else the current directory, where make
 * and prove run) into rows; the count, or 0 after a failed test line: a
 * missing table must fail, never skip.
 */
static __attribute__((unused)) size_t
golden_load(struct golden_row *rows, size_t max, const char *up)
{
	const char *src = getenv("MOAT_SRC");
	char path[512], line[2048];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/fixtures/ssrf-verdicts.tsv",
	    src != NULL ? src : ".");
	if ((f = fopen(path, "re")) == NULL) {
		ok(0, "golden table %s opens (run from the source tree or set "
		    "MOAT_SRC)", path);
		return 0;
	}
	while (fgets(line, sizeof(line), f) != NULL && n < max) {
		char *col[6], *save = NULL, *s = line;
		int k = 0;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		for (; k < 6 && (col[k] = strtok_r(s, "\t", &save)) != NULL;
		     k++)
			s = NULL;
		if (k != 6) {
			ok(0, "golden row '%s' has 6 columns", line);
			fclose(f);
			return 0;
		}
		golden_subst(rows[n].name, sizeof(rows[n].name), col[0], up);
		golden_subst(rows[n].host, sizeof(rows[n].host), col[1], up);
		rows[n].port = (unsigned)strtoul(col[2], NULL, 10);
		golden_subst(rows[n].endpoints, sizeof(rows[n].endpoints),
		    col[3], up);
		golden_subst(rows[n].verdict, sizeof(rows[n].verdict), col[4],
		    up);
		golden_subst(rows[n].reason, sizeof(rows[n].reason), col[5],
		    up);
		n++;
	}
	fclose(f);
	ok(n >= 20, "golden table: %zu rows", n);
	return n;
}

/* The row's policy: one network policy "g" for binary bin. */
static __attribute__((unused)) void
golden_policy(const struct golden_row *r, const char *bin, char *out,
    size_t len)
{
	snprintf(out, len, "{\"version\":1,\"network_policies\":{\"g\":{"
	    "\"endpoints\":[%s],\"binaries\":[{\"path\":\"%s\"}]}}}",
	    r->endpoints, bin);
}

#endif
