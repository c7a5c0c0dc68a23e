/*
 * Shared by the policy unit tests: load a policy written with single
 * quotes (J("{'version':1}")), find a diagnostic, decide in one call.
 */
#ifndef MOAT_TESTS_POLICY_UTIL_H
#define MOAT_TESTS_POLICY_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"
#include "tests/unit/tap.h"

static __attribute__((unused)) char *
J(const char *s)
{
	char *r = strdup(s);

	for (char *p = r; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return r;
}

static __attribute__((unused)) int
load_q(const char *quoted, struct moat_policy **out, struct moat_diags *d)
{
	struct moat_policy_opts o = { NULL, true };
	char *s = J(quoted);
	int r;

	r = moat_policy_load_string(s, strlen(s), "test", &o, out, d);
	free(s);
	return r;
}

static __attribute__((unused)) const struct moat_diag *
find_diag(const struct moat_diags *d, enum moat_diag_level lvl,
    const char *path, const char *substr)
{
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].level == lvl && strcmp(d->v[i].path, path) == 0 &&
		    strstr(d->v[i].msg, substr) != NULL)
			return &d->v[i];
	return NULL;
}

static __attribute__((unused)) void
dump_diags(const struct moat_diags *d)
{
	static const char *lv[] = { "error", "warning", "note" };

	for (size_t i = 0; i < d->n; i++)
		diag("  %s: %s: %s", lv[d->v[i].level], d->v[i].path,
		    d->v[i].msg);
}

/* A policy written with single quotes that must load (else diag). */
static __attribute__((unused)) struct moat_policy *
P(const char *quoted)
{
	struct moat_policy *p = NULL;
	struct moat_diags d;

	moat_diags_init(&d);
	if (load_q(quoted, &p, &d) != 0) {
		diag("policy did not load: %s", quoted);
		dump_diags(&d);
	}
	moat_diags_free(&d);
	return p;
}

/* The policy must be refused with an error at path containing substr. */
static __attribute__((unused)) void
rejects(const char *name, const char *quoted, const char *path,
    const char *substr)
{
	struct moat_policy *p = NULL;
	struct moat_diags d;
	int r;

	moat_diags_init(&d);
	r = load_q(quoted, &p, &d);
	if (!ok(r == MOAT_ERR_INVALID && p == NULL &&
	    find_diag(&d, MOAT_DIAG_ERROR, path, substr) != NULL,
	    "rejects %s (%s: %s)", name, path, substr))
		dump_diags(&d);
	moat_policy_free(p);
	moat_diags_free(&d);
}

static __attribute__((unused)) void
accepts(const char *name, const char *quoted)
{
	struct moat_policy *p = NULL;
	struct moat_diags d;

	moat_diags_init(&d);
	if (!ok(load_q(quoted, &p, &d) == MOAT_OK && p != NULL &&
	    moat_diags_count(&d, MOAT_DIAG_ERROR) == 0, "accepts %s", name))
		dump_diags(&d);
	moat_policy_free(p);
	moat_diags_free(&d);
}

/* The policy must load, with a warning at path containing substr. */
static __attribute__((unused)) void
warns(const char *name, const char *quoted, const char *path,
    const char *substr)
{
	struct moat_policy *p = NULL;
	struct moat_diags d;

	moat_diags_init(&d);
	if (!ok(load_q(quoted, &p, &d) == MOAT_OK && p != NULL &&
	    moat_diags_count(&d, MOAT_DIAG_ERROR) == 0 &&
	    find_diag(&d, MOAT_DIAG_WARNING, path, substr) != NULL,
	    "loads %s with a warning (%s: %s)", name, path, substr))
		dump_diags(&d);
	moat_policy_free(p);
	moat_diags_free(&d);
}

/* Decide for exe with up to 3 ancestors (NULL-terminated). */
static __attribute__((unused)) struct moat_decision
decide3(const struct moat_policy *p, const char *exe, const char *a1,
    const char *a2, const char *host, uint16_t port)
{
	const char *anc[2] = { a1, a2 };
	struct moat_caller c = { exe, anc, a1 ? (a2 ? 2 : 1) : 0, NULL, 0 };
	struct moat_decision d;

	memset(&d, 0, sizeof(d));
	moat_policy_decide(p, &c, host, port, &d);
	return d;
}

#define decide(p, exe, host, port) decide3(p, exe, NULL, NULL, host, port)

#endif
