#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/escape.h"
#include "store/store.h"
#include "render/render.h"

/* The LCS table is (n+1)*(m+1) shorts past the common prefix/suffix. */
#define DIFF_MAX_CELLS (16u * 1024 * 1024)

char *
moat_render_json_pretty(const char *json)
{
	json_t *doc = NULL;
	char *s = NULL, *out = NULL;
	size_t n;

	if (json == NULL || (doc = json_loads(json, 0, NULL)) == NULL)
		return NULL;
	s = moat_render_dump(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(doc);
	if (s == NULL)
		return NULL;
	n = strlen(s);
	if ((out = malloc(n + 2)) != NULL) {
		memcpy(out, s, n);
		out[n] = '\n';
		out[n + 1] = '\0';
	}
	free(s);
	return out;
}

struct lines {
	const char **p; /* start of each line */
	size_t *len;    /* its length without '\n' */
	size_t n;
};

static int
split_lines(const char *s, struct lines *l)
{
	size_t cap = 16;
	const char *nl;

	l->n = 0;
	l->p = malloc(cap * sizeof(*l->p));
	l->len = malloc(cap * sizeof(*l->len));
	if (l->p == NULL || l->len == NULL)
		return -1;
	while (s != NULL && *s != '\0') {
		if (l->n == cap) {
			const char **np;
			size_t *nlen;

			cap *= 2;
			if ((np = realloc(l->p, cap * sizeof(*np))) == NULL)
				return -1;
			l->p = np;
			if ((nlen = realloc(l->len, cap * sizeof(*nlen))) ==
			    NULL)
				return -1;
			l->len = nlen;
		}
		nl = strchr(s, '\n');
		l->p[l->n] = s;
		l->len[l->n] = nl ? (size_t)(nl - s) : strlen(s);
		l->n++;
		s = nl ? nl + 1 : NULL;
	}
	return 0;
}

static int
line_eq(const struct lines *a, size_t i, const struct lines *b, size_t j)
{
	return a->len[i] == b->len[j] &&
	    memcmp(a->p[i], b->p[j], a->len[i]) == 0;
}

static void
put_line(FILE *f, const char *tag, const struct lines *l, size_t i)
{
	fputs(tag, f);
	fwrite(l->p[i], 1, l->len[i], f);
	fputc('\n', f);
}

/* LCS over a[lo_a, hi_a) and b[lo_b, hi_b), printed in order. */
static int
diff_middle(FILE *f, const struct lines *a, size_t lo_a, size_t hi_a,
    const struct lines *b, size_t lo_b, size_t hi_b)
{
	size_t n = hi_a - lo_a, m = hi_b - lo_b, i, j, w = m + 1;
	uint32_t *t = NULL;

	if (n == 0 || m == 0 || (n + 1) > DIFF_MAX_CELLS / (m + 1)) {
		for (i = lo_a; i < hi_a; i++)
			put_line(f, "- ", a, i);
		for (j = lo_b; j < hi_b; j++)
			put_line(f, "+ ", b, j);
		return 0;
	}
	if ((t = calloc((n + 1) * w, sizeof(*t))) == NULL)
		return -1;
	/* t[i][j]: LCS length of a[i..] and b[j..], filled from the end. */
	for (i = n; i-- > 0;)
		for (j = m; j-- > 0;)
			t[i * w + j] = line_eq(a, lo_a + i, b, lo_b + j) ?
			    t[(i + 1) * w + j + 1] + 1 :
			    (t[(i + 1) * w + j] >= t[i * w + j + 1] ?
			    t[(i + 1) * w + j] : t[i * w + j + 1]);
	for (i = 0, j = 0; i < n || j < m;) {
		if (i < n && j < m && line_eq(a, lo_a + i, b, lo_b + j)) {
			put_line(f, "  ", a, lo_a + i);
			i++;
			j++;
		} else if (i < n && (j == m ||
		    t[(i + 1) * w + j] >= t[i * w + j + 1])) {
			put_line(f, "- ", a, lo_a + i);
			i++;
		} else {
			put_line(f, "+ ", b, lo_b + j);
			j++;
		}
	}
	free(t);
	return 0;
}

char *
moat_render_line_diff(const char *a, const char *b)
{
	struct lines la = { 0 }, lb = { 0 };
	size_t pre = 0, suf = 0, i, sz = 0;
	char *buf = NULL;
	FILE *f = NULL;
	int r = -1;

	if (split_lines(a, &la) != 0 || split_lines(b, &lb) != 0)
		goto out;
	while (pre < la.n && pre < lb.n && line_eq(&la, pre, &lb, pre))
		pre++;
	while (suf < la.n - pre && suf < lb.n - pre &&
	    line_eq(&la, la.n - 1 - suf, &lb, lb.n - 1 - suf))
		suf++;
	if ((f = open_memstream(&buf, &sz)) == NULL)
		goto out;
	for (i = 0; i < pre; i++)
		put_line(f, "  ", &la, i);
	if (diff_middle(f, &la, pre, la.n - suf, &lb, pre, lb.n - suf) != 0)
		goto out;
	for (i = la.n - suf; i < la.n; i++)
		put_line(f, "  ", &la, i);
	r = 0;
out:
	if (f != NULL && fclose(f) != 0)
		r = -1;
	free(la.p);
	free(la.len);
	free(lb.p);
	free(lb.len);
	if (r != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

json_t *
moat_render_text(const char *s)
{
	char *e = moat_escape_str(s);
	json_t *j = e != NULL ? json_string(e) : NULL;

	free(e);
	return j;
}

char *
moat_render_dump(const json_t *o, size_t flags)
{
	char *s = json_dumps(o, flags), *safe;

	if (s == NULL)
		return NULL;
	safe = moat_escape_json(s);
	free(s);
	return safe;
}

/* The notes (a JSON array of strings) with each note escaped. */
static json_t *
notes_json(const char *text)
{
	json_t *in = NULL, *out = json_array(), *n;
	size_t i;

	if (text != NULL && text[0] != '\0')
		in = json_loads(text, 0, NULL);
	json_array_foreach(in, i, n)
		json_array_append_new(out, moat_render_text(json_is_string(n) ?
		    json_string_value(n) : ""));
	json_decref(in);
	return out;
}

json_t *
moat_render_proposal_json(const struct moat_store_proposal *p)
{
	json_t *o, *rule = NULL;

	rule = json_loads(p->rule_json ? p->rule_json : "", 0, NULL);
	o = json_pack("{s:I, s:o, s:o, s:o, s:s, s:o, s:o, s:i, s:I, s:f,"
	    " s:o, s:o, s:o, s:o, s:I, s:I, s:o, s:I, s:o, s:s}",
	    "id", (json_int_t)p->id, "sandbox", moat_render_text(p->sandbox),
	    "key", moat_render_text(p->key), "name", moat_render_text(p->name),
	    "rule_hash", p->rule_hash ? p->rule_hash : "",
	    "binary", moat_render_text(p->binary),
	    "host", moat_render_text(p->host),
	    "port", p->port, "hits", (json_int_t)p->hits,
	    "confidence", p->confidence, "notes", notes_json(p->notes),
	    "origin", moat_render_text(p->origin),
	    "reason", moat_render_text(p->reason),
	    "status", moat_render_text(p->status),
	    "first_ms", (json_int_t)p->first_ms,
	    "last_ms", (json_int_t)p->last_ms,
	    "decided_by", moat_render_text(p->decided_by),
	    "decided_ms", (json_int_t)p->decided_ms,
	    "decision_note", moat_render_text(p->decision_note),
	    "rule_json", p->rule_json ? p->rule_json : "");
	if (o != NULL && rule != NULL)
		json_object_set(o, "rule", rule);
	json_decref(rule);
	return o;
}
