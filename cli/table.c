/* Aligned text tables for the CLI (cli/table.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/errors.h"
#include "common/escape.h"
#include "cli/table.h"

struct moat_cli_table {
	const char *const *head;
	size_t ncol;
	char **cells;	/* nrow * ncol, row after row */
	size_t nrow;
	size_t cap;	/* rows */
};

struct moat_cli_table *
moat_cli_table_new(const char *const head[], size_t ncol)
{
	struct moat_cli_table *t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->head = head;
	t->ncol = ncol;
	return t;
}

/*
 * Copy s escaped (common/escape.h: cells hold sandbox text), cut to max
 * bytes with "..." (never inside an escape or a UTF-8 character).
 */
static char *
cell(const char *s, size_t max)
{
	size_t n = strlen(s);
	char *c;

	if (max == 0)
		return moat_escape(s, n);
	if ((c = malloc(max + 1)) == NULL)
		return NULL;
	if (!moat_escape_buf(s, n, c, max + 1)) {
		moat_escape_buf(s, n, c, max - 3 + 1);
		strcat(c, "...");
	}
	return c;
}

int
moat_cli_table_add(struct moat_cli_table *t, const char *const cells[],
    const size_t max[])
{
	char **nv, **row;
	size_t cap, i;

	if (t->nrow == t->cap) {
		cap = t->cap ? t->cap * 2 : 32;
		if ((nv = reallocarray(t->cells, cap, t->ncol *
		    sizeof(*nv))) == NULL)
			return MOAT_ERR_NOMEM;
		t->cells = nv;
		t->cap = cap;
	}
	row = &t->cells[t->nrow * t->ncol];
	for (i = 0; i < t->ncol; i++) {
		if ((row[i] = cell(cells[i], max ? max[i] : 0)) == NULL) {
			while (i > 0)
				free(row[--i]);
			return MOAT_ERR_NOMEM;
		}
	}
	t->nrow++;
	return 0;
}

size_t
moat_cli_table_rows(const struct moat_cli_table *t)
{
	return t->nrow;
}

static void
put_line(FILE *f, const char *const *row, const size_t *w, size_t ncol)
{
	/* Pad every column but the last, so no line ends in blanks. */
	for (size_t i = 0; i + 1 < ncol; i++)
		fprintf(f, "%-*s  ", (int)w[i], row[i]);
	fprintf(f, "%s\n", row[ncol - 1]);
}

void
moat_cli_table_print(const struct moat_cli_table *t, FILE *f)
{
	size_t *w, len;

	if (t->ncol == 0 || (w = calloc(t->ncol, sizeof(*w))) == NULL)
		return;
	for (size_t i = 0; i < t->ncol; i++) {
		w[i] = strlen(t->head[i]);
		for (size_t k = 0; k < t->nrow; k++)
			if ((len = strlen(t->cells[k * t->ncol + i])) > w[i])
				w[i] = len;
	}
	put_line(f, t->head, w, t->ncol);
	for (size_t k = 0; k < t->nrow; k++)
		put_line(f, (const char *const *)&t->cells[k * t->ncol], w,
		    t->ncol);
	free(w);
}

void
moat_cli_table_free(struct moat_cli_table *t)
{
	if (t == NULL)
		return;
	for (size_t k = 0; k < t->nrow * t->ncol; k++)
		free(t->cells[k]);
	free(t->cells);
	free(t);
}

void
moat_cli_fmt_time(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;

	if (localtime_r(&s, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)ms);
}
