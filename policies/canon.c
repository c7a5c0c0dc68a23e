/*
 * Request targets as the L7 rules see them. The proxy matches the
 * canonical form and forwards exactly that form, so the rule and the
 * upstream read the same path:
 *
 *   - percent-encoded unreserved characters are decoded (%61 -> a, %2E
 *     -> .), other encodings kept with uppercase hex (%2f -> %2F);
 *   - empty segments ("//") and "." segments are dropped, ".." removes
 *     the segment before it (never above the root);
 *   - a segment that still reads as a dot segment to some server is
 *     refused: "..;x" (Tomcat), and with encoded slashes allowed, a
 *     "."/".." between %2F or %5C;
 *   - a raw backslash, %00, bad or truncated escapes are refused;
 *   - an encoded slash (%2F) or backslash (%5C) is reported, so the
 *     decision denies it unless the endpoint says allow_encoded_slash.
 *
 * The query is kept as sent (validated); moat_l7_query_next() decodes
 * its names and values for the query matchers.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "policies/internal.h"

static int
hexv(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool
unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int
refuse(char *why, size_t whylen, const char *msg)
{
	snprintf(why, whylen, "%s", msg);
	return MOAT_ERR_INVALID;
}

/* A segment's name up to a ';' parameter: "." or ".."? */
static bool
dotlike(const char *s, size_t n)
{
	size_t k = 0;

	while (k < n && s[k] != ';')
		k++;
	return (k == 1 && s[0] == '.') || (k == 2 && s[0] == '.' &&
	    s[1] == '.');
}

/* With encoded slashes allowed, the pieces between them must not be
 * dot segments either: an upstream that decodes them would climb. */
static bool
dot_between_encoded(const char *s, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i <= n; i++) {
		bool sep = i + 3 <= n && s[i] == '%' && (memcmp(s + i, "%2F",
		    3) == 0 || memcmp(s + i, "%5C", 3) == 0);

		if (i < n && !sep)
			continue;
		if (dotlike(s + start, i - start) && (start > 0 || i < n))
			return true;
		if (sep) {
			i += 2;
			start = i + 1;
		}
	}
	return false;
}

/*
 * Decode one segment [s, s+n) into out (unreserved escapes decoded,
 * the others kept uppercase). Returns the length or -1 with why.
 */
static long
segment(const char *s, size_t n, char *out, size_t room, bool *encslash,
    char *why, size_t whylen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int h, l;

		if (o + 3 > room)
			return refuse(why, whylen, "path too long"), -1;
		if (c == '\\')
			return refuse(why, whylen, "backslash in path"), -1;
		if (c <= 0x20 || c >= 0x7f || c == '#' || c == '?')
			return refuse(why, whylen, "bad byte in path"), -1;
		if (c != '%') {
			out[o++] = (char)c;
			continue;
		}
		if (i + 2 >= n)
			return refuse(why, whylen, "truncated %-escape in "
			    "path"), -1;
		if ((h = hexv((unsigned char)s[i + 1])) < 0 ||
		    (l = hexv((unsigned char)s[i + 2])) < 0)
			return refuse(why, whylen, "bad %-escape in path"), -1;
		c = (unsigned char)(h * 16 + l);
		i += 2;
		if (c == 0)
			return refuse(why, whylen, "%00 in path"), -1;
		if (unreserved(c)) {
			out[o++] = (char)c;
			continue;
		}
		if (c == '/' || c == '\\')
			*encslash = true;
		o += (size_t)snprintf(out + o, room - o, "%%%02X", c);
	}
	return (long)o;
}

int
moat_l7_canon(const char *target, size_t len, char *out, size_t outlen,
    size_t *pathlen, bool *encoded_slash, char *why, size_t whylen)
{
	const char *q = memchr(target, '?', len);
	size_t plen = q != NULL ? (size_t)(q - target) : len, o = 0, i;
	size_t stack[512], depth = 0;

	*encoded_slash = false;
	if (outlen < 2)
		return refuse(why, whylen, "no room");
	if (len == 0 || target[0] != '/')
		return refuse(why, whylen, "request target is not a path "
		    "(origin form)");
	if (memchr(target, '\0', len) != NULL)
		return refuse(why, whylen, "NUL in request target");
	for (i = 1; i <= plen; i++) {
		size_t start = i, n, at;
		bool last;
		long w;

		while (i < plen && target[i] != '/')
			i++;
		n = i - start;
		last = i == plen;
		if (n == 0 && !last)
			continue; /* "//" */
		if (o + 2 > outlen)
			return refuse(why, whylen, "request target too long");
		at = o;
		out[o++] = '/';
		if ((w = segment(target + start, n, out + o, outlen - o - 1,
		    encoded_slash, why, whylen)) < 0)
			return MOAT_ERR_INVALID;
		if (w == 1 && out[o] == '.') {
			o = at;
			if (last)
				out[o++] = '/'; /* "/a/." is "/a/" */
			continue;
		}
		if (w == 2 && out[o] == '.' && out[o + 1] == '.') {
			o = depth > 0 ? stack[--depth] : 0;
			if (last)
				out[o++] = '/';
			continue;
		}
		if (dotlike(out + o, (size_t)w))
			return refuse(why, whylen, "a dot segment with "
			    "parameters (\"..;\") in path");
		if (dot_between_encoded(out + o, (size_t)w))
			return refuse(why, whylen, "a dot segment between "
			    "encoded slashes in path");
		if (depth == sizeof(stack) / sizeof(*stack))
			return refuse(why, whylen, "path too deep");
		stack[depth++] = at;
		o += (size_t)w;
	}
	if (o == 0)
		out[o++] = '/';
	*pathlen = o;
	if (q != NULL) {
		size_t qn = len - plen;

		for (size_t k = 1; k < qn; k++) {
			unsigned char c = (unsigned char)q[k];

			if (c <= 0x20 || c >= 0x7f || c == '#')
				return refuse(why, whylen, "bad byte in query");
			if (c == '%' && (k + 2 >= qn ||
			    hexv((unsigned char)q[k + 1]) < 0 ||
			    hexv((unsigned char)q[k + 2]) < 0))
				return refuse(why, whylen, "bad %-escape in "
				    "query");
		}
		if (o + qn + 1 > outlen)
			return refuse(why, whylen, "request target too long");
		memcpy(out + o, q, qn);
		o += qn;
	}
	out[o] = '\0';
	return MOAT_OK;
}

int
pol_l7_plain_path(const char *path, char *out, size_t outlen)
{
	size_t o = 0, plen = strlen(path);
	const char *p = path[0] == '/' ? path + 1 : path;
	bool differs = false;

	for (;;) {
		size_t n = strcspn(p, "/"), k = strcspn(p, ";/");

		differs |= k < n;
		/* An empty segment ("/;x/") is dropped, as "//" is. */
		if (k > 0) {
			if (o + k + 2 > outlen)
				return -1;
			out[o++] = '/';
			memcpy(out + o, p, k);
			o += k;
		}
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	if ((plen > 1 && path[plen - 1] == '/') || o == 0) {
		if (o + 2 > outlen)
			return -1;
		out[o++] = '/';
	}
	out[o] = '\0';
	return differs ? 1 : 0;
}

/* Percent-decode (and '+' as space) [s, s+n) into out (NUL-ended). */
static size_t
qdecode(const char *s, size_t n, char *out, size_t room)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 1 < room; i++) {
		int h, l;

		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%' && i + 2 < n &&
		    (h = hexv((unsigned char)s[i + 1])) >= 0 &&
		    (l = hexv((unsigned char)s[i + 2])) >= 0) {
			out[o++] = (char)(h * 16 + l);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return o;
}

bool
moat_l7_query_next(const char **q, char *name, size_t nlen, char *value,
    size_t vlen)
{
	const char *p = *q, *amp, *eq;
	size_t n;

	while (*p == '&')
		p++;
	if (*p == '\0')
		return false;
	amp = strchr(p, '&');
	n = amp != NULL ? (size_t)(amp - p) : strlen(p);
	eq = memchr(p, '=', n);
	qdecode(p, eq != NULL ? (size_t)(eq - p) : n, name, nlen);
	if (eq != NULL)
		qdecode(eq + 1, n - (size_t)(eq + 1 - p), value, vlen);
	else
		value[0] = '\0';
	*q = p + n;
	return true;
}
