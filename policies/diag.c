/*
 * Diagnostics: every problem a policy has, collected in order, so the
 * operator fixes them all in one round instead of one per `check`.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"

void
moat_diags_init(struct moat_diags *d)
{
	d->v = NULL;
	d->n = 0;
	d->cap = 0;
}

void
moat_diags_free(struct moat_diags *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].path);
		free(d->v[i].msg);
	}
	free(d->v);
	moat_diags_init(d);
}

void
moat_diags_add(struct moat_diags *d, enum moat_diag_level level,
    const char *path, const char *fmt, ...)
{
	struct moat_diag *nv = NULL;
	char *msg = NULL, *p = NULL;
	va_list ap;
	size_t ncap;
	int n;

	if (d == NULL)
		return;
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((p = strdup(path != NULL ? path : "")) == NULL)
		goto fail;
	if (d->n == d->cap) {
		ncap = d->cap ? d->cap * 2 : 8;
		if ((nv = reallocarray(d->v, ncap, sizeof(*nv))) == NULL)
			goto fail;
		d->v = nv;
		d->cap = ncap;
	}
	d->v[d->n].level = level;
	d->v[d->n].path = p;
	d->v[d->n].msg = msg;
	d->n++;
	return;
fail:
	/* Out of memory: the load itself will fail with MOAT_ERR_NOMEM. */
	free(p);
	free(msg);
}

size_t
moat_diags_count(const struct moat_diags *d, enum moat_diag_level lvl)
{
	size_t n = 0;

	if (d == NULL)
		return 0;
	for (size_t i = 0; i < d->n; i++)
		if (d->v[i].level == lvl)
			n++;
	return n;
}
