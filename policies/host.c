/*
 * Host names: normalisation and the wildcard matcher. The validator and
 * the decider both go through pol_host_compile and pol_host_match, so a
 * pattern the loader accepts is exactly a pattern the proxy can match
 * (OpenShell issue #1303 came from the two disagreeing).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/internal.h"

/*
 * No real top-level label is numeric: a name that ends in one is an IPv4
 * form, and only the dotted quad is one (the proxy's parser refuses
 * "127.1" and "0x7f.0.0.1" too, which a resolver would read as loopback),
 * so explain and the proxy agree on every literal.
 */
static bool
numeric_tld(const char *s, size_t n)
{
	const char *last = memrchr(s, '.', n);
	struct pol_ip ip;
	size_t k;

	last = last != NULL ? last + 1 : s;
	k = (size_t)(s + n - last);
	if (!(k > 1 && last[0] == '0' && last[1] == 'x')) {
		for (size_t i = 0; i < k; i++)
			if (last[i] < '0' || last[i] > '9')
				return false;
	}
	return !pol_ip_parse(s, &ip);
}

/*
 * Lowercase, drop one trailing dot, check the label syntax. IPv6 (with or
 * without brackets) comes out in its canonical text form. With wild,
 * '*' is allowed in labels (its placement is checked by the caller).
 */
static bool
normalize(const char *in, char *out, size_t outlen, bool wild)
{
	char tmp[64];
	struct pol_ip ip;
	size_t n, lab = 0;

	if (in == NULL || *in == '\0' || outlen == 0)
		return false;
	n = strlen(in);
	if (strchr(in, ':') != NULL) {
		if (in[0] == '[') {
			if (n < 3 || in[n - 1] != ']')
				return false;
			in++;
			n -= 2;
		}
		if (n >= sizeof(tmp))
			return false;
		memcpy(tmp, in, n);
		tmp[n] = '\0';
		if (!pol_ip_parse(tmp, &ip))
			return false;
		pol_ip_format(&ip, out, outlen);
		return true;
	}
	if (in[n - 1] == '.')
		n--;
	if (n == 0 || n > POL_HOST_MAX || n >= outlen)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch == '.') {
			if (lab == 0)
				return false;
			lab = 0;
		} else if (isalnum(ch) || ch == '-' || ch == '_' ||
		    (wild && ch == '*')) {
			if (++lab > 63)
				return false;
		} else {
			return false;
		}
		out[i] = (char)tolower(ch);
	}
	if (lab == 0)
		return false;
	out[n] = '\0';
	return !numeric_tld(out, n);
}

bool
moat_host_normalize(const char *in, char *out, size_t outlen)
{
	return normalize(in, out, outlen, false);
}

bool
moat_host_is_ip_literal(const char *host)
{
	char buf[POL_HOST_MAX + 1];
	struct pol_ip ip;

	return normalize(host, buf, sizeof(buf), false) &&
	    pol_ip_parse(buf, &ip);
}

static size_t
split_labels(const char *s, struct pol_label *v, size_t max)
{
	size_t n = 0;
	const char *dot;

	for (;;) {
		if (n == max)
			return 0;
		dot = strchr(s, '.');
		v[n].s = s;
		v[n].len = dot != NULL ? (size_t)(dot - s) : strlen(s);
		n++;
		if (dot == NULL)
			return n;
		s = dot + 1;
	}
}

void
pol_host_clear(struct pol_host *h)
{
	free(h->name);
	free(h->labels);
	memset(h, 0, sizeof(*h));
}

static const char wild_hint[] = "middle DNS label wildcards must be the "
    "entire label '*' and recursive '**' is only allowed as the entire "
    "first label";

static bool
check_wild(const char *name, const struct pol_label *l, size_t n, char *err,
    size_t errlen)
{
	if (n == 1 && (strcmp(name, "*") == 0 || strcmp(name, "**") == 0)) {
		snprintf(err, errlen, "bare wildcard '%s' is not allowed; use "
		    "subdomain wildcards like '*.example.com' instead", name);
		return false;
	}
	if (n <= 2 || memchr(l[n - 1].s, '*', l[n - 1].len) != NULL) {
		snprintf(err, errlen, "TLD wildcard '%s' is not allowed; use "
		    "subdomain wildcards like '*.example.com' instead", name);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		bool has = memchr(l[i].s, '*', l[i].len) != NULL;
		bool whole_deep = l[i].len == 2 && memcmp(l[i].s, "**", 2) == 0;
		bool has_deep = memmem(l[i].s, l[i].len, "**", 2) != NULL;

		if (!has)
			continue;
		if (i == 0 ? (has_deep && !whole_deep) :
		    !(l[i].len == 1 && l[i].s[0] == '*')) {
			snprintf(err, errlen, "invalid host wildcard '%s'; %s",
			    name, wild_hint);
			return false;
		}
	}
	return true;
}

bool
pol_host_compile(const char *raw, struct pol_host *h, char *err,
    size_t errlen)
{
	char buf[POL_HOST_MAX + 1];
	struct pol_label tmp[POL_MAX_LABELS];
	size_t n;

	memset(h, 0, sizeof(*h));
	if (*raw == '\0') {
		h->kind = POL_HOST_ANY;
		if ((h->name = strdup("")) == NULL)
			goto oom;
		return true;
	}
	if (!normalize(raw, buf, sizeof(buf), true)) {
		snprintf(err, errlen, "'%s' is not a valid host name or IP "
		    "address", raw);
		return false;
	}
	if ((h->name = strdup(buf)) == NULL)
		goto oom;
	h->len = strlen(buf);
	if (pol_ip_parse(buf, &h->ip)) {
		h->kind = POL_HOST_IP;
		return true;
	}
	if (strchr(buf, '*') == NULL) {
		h->kind = POL_HOST_EXACT;
		return true;
	}
	n = split_labels(h->name, tmp, POL_MAX_LABELS);
	if (!check_wild(h->name, tmp, n, err, errlen)) {
		pol_host_clear(h);
		return false;
	}
	if ((h->labels = calloc(n, sizeof(*h->labels))) == NULL)
		goto oom;
	memcpy(h->labels, tmp, n * sizeof(*tmp));
	h->nlabels = n;
	h->deep = tmp[0].len == 2 && memcmp(tmp[0].s, "**", 2) == 0;
	h->kind = POL_HOST_WILD;
	return true;
oom:
	pol_host_clear(h);
	snprintf(err, errlen, "out of memory");
	return false;
}

bool
pol_req_init(struct pol_req *r, const char *host, char *buf, size_t buflen)
{
	if (!normalize(host, buf, buflen, false))
		return false;
	r->name = buf;
	r->len = strlen(buf);
	r->is_ip = pol_ip_parse(buf, &r->ip);
	r->nlabels = 0;
	if (!r->is_ip &&
	    (r->nlabels = split_labels(buf, r->labels, POL_MAX_LABELS)) == 0)
		return false;
	return true;
}

/*
 * '*' matches any run of characters within one segment (a path segment
 * or a DNS label). The classic two-pointer match with one backtrack
 * point: linear in practice, O(n*m) at worst, no recursion.
 */
bool
pol_glob_segment(const char *p, size_t pl, const char *t, size_t tl)
{
	size_t pi = 0, ti = 0, star_p = SIZE_MAX, star_t = 0;

	while (ti < tl) {
		if (pi < pl && p[pi] == '*') {
			star_p = ++pi;
			star_t = ti;
		} else if (pi < pl && p[pi] == t[ti]) {
			pi++;
			ti++;
		} else if (star_p != SIZE_MAX) {
			pi = star_p;
			ti = ++star_t;
		} else {
			return false;
		}
	}
	while (pi < pl && p[pi] == '*')
		pi++;
	return pi == pl;
}

static bool
label_match(const struct pol_label *p, const struct pol_label *t)
{
	if (memchr(p->s, '*', p->len) != NULL)
		return pol_glob_segment(p->s, p->len, t->s, t->len);
	return p->len == t->len && memcmp(p->s, t->s, p->len) == 0;
}

/*
 * "*.x.com" is exactly one label in front of x.com; "**.x.com" one or
 * more. Neither ever matches the apex x.com itself.
 */
bool
pol_host_match(const struct pol_host *h, const struct pol_req *r)
{
	size_t n, off;

	switch (h->kind) {
	case POL_HOST_ANY:
		return true;
	case POL_HOST_EXACT:
		return !r->is_ip && r->len == h->len &&
		    memcmp(r->name, h->name, h->len) == 0;
	case POL_HOST_IP:
		return r->is_ip && memcmp(r->ip.a, h->ip.a, 16) == 0;
	case POL_HOST_WILD:
		break;
	}
	if (r->is_ip)
		return false;
	if (h->deep) {
		n = h->nlabels - 1;
		if (r->nlabels < n + 1)
			return false;
		off = r->nlabels - n;
		for (size_t i = 0; i < n; i++)
			if (!label_match(&h->labels[i + 1], &r->labels[off + i]))
				return false;
		return true;
	}
	if (r->nlabels != h->nlabels)
		return false;
	for (size_t i = 0; i < h->nlabels; i++)
		if (!label_match(&h->labels[i], &r->labels[i]))
			return false;
	return true;
}
