/*
 * Credential injection: a sandbox sees NAME=moat:resolve:env:NAME (or
 * OpenShell's openshell:resolve:env:NAME), never the secret. The proxy
 * replaces a placeholder by the value only in a request to a host the
 * secret is bound to; anywhere else the request is refused and the
 * denial names the secret, never its value.
 *
 * A placeholder is the prefix followed by NAME ([A-Za-z_][A-Za-z0-9_]*,
 * at most 128 characters); the colons may be percent-encoded (%3A), as
 * URL and form encoders write them. The value is written in the form of
 * where the placeholder stood: as is in a header, percent-encoded in a
 * request target or form body, escaped in a JSON body.
 *
 * Values live only in this process's memory (zeroed when freed).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/util.h"
#include "proxy/internal.h"

#define NAME_MAX_LEN 128

struct px_secret {
	char *name;
	char *value;
	size_t vlen;
	char **hosts; /* lowercase; "*.x.com" covers every name below x.com */
	size_t nhosts;
};

struct px_secrets {
	struct px_secret *v;
	size_t n;
};

static const char *const prefixes[] = { "moat", "openshell" };

void
px_secrets_free(struct px_secrets *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++) {
		struct px_secret *x = &s->v[i];

		free(x->name);
		if (x->value != NULL) {
			explicit_bzero(x->value, x->vlen);
			free(x->value);
		}
		for (size_t j = 0; j < x->nhosts; j++)
			free(x->hosts[j]);
		free(x->hosts);
	}
	free(s->v);
	free(s);
}

static bool
name_char(unsigned char c, bool first)
{
	return isalpha(c) || c == '_' || (!first && isdigit(c));
}

bool
px_secret_name_ok(const char *n)
{
	size_t i = 0;

	for (; n[i] != '\0'; i++)
		if (i >= NAME_MAX_LEN || !name_char((unsigned char)n[i], i == 0))
			return false;
	return i > 0;
}

int
px_secrets_new(const struct moat_proxy_secret *v, size_t n,
    struct px_secrets **out, struct moat_cause *cause)
{
	struct px_secrets *s;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (n > 0 && (s->v = calloc(n, sizeof(*s->v))) == NULL)) {
		free(s);
		return MOAT_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct px_secret *x = &s->v[s->n++];

		if (!px_secret_name_ok(v[i].name)) {
			moat_cause_set(cause, "secret '%.64s': a name is letters, "
			    "digits and '_'", v[i].name);
			goto invalid;
		}
		/* A value is written into headers as is. */
		if (memchr(v[i].value, '\r', v[i].vlen) != NULL ||
		    memchr(v[i].value, '\n', v[i].vlen) != NULL ||
		    memchr(v[i].value, '\0', v[i].vlen) != NULL) {
			moat_cause_set(cause, "secret %s: the value holds a "
			    "line break or NUL", v[i].name);
			goto invalid;
		}
		x->name = strdup(v[i].name);
		x->value = malloc(v[i].vlen + 1);
		x->hosts = calloc(v[i].nhosts + 1, sizeof(char *));
		if (x->name == NULL || x->value == NULL || x->hosts == NULL)
			goto nomem;
		memcpy(x->value, v[i].value, v[i].vlen);
		x->value[v[i].vlen] = '\0';
		x->vlen = v[i].vlen;
		for (size_t j = 0; j < v[i].nhosts; j++) {
			char *h = strdup(v[i].hosts[j]);

			if (h == NULL)
				goto nomem;
			for (char *p = h; *p != '\0'; p++)
				*p = (char)tolower((unsigned char)*p);
			x->hosts[x->nhosts++] = h;
		}
	}
	*out = s;
	return MOAT_OK;
nomem:
	px_secrets_free(s);
	return MOAT_ERR_NOMEM;
invalid:
	px_secrets_free(s);
	return MOAT_ERR_INVALID;
}

bool
px_secrets_any(const struct px_secrets *s)
{
	return s != NULL && s->n > 0;
}

static bool
bound(const struct px_secret *x, const char *host)
{
	size_t hl = strlen(host);

	for (size_t i = 0; i < x->nhosts; i++) {
		const char *h = x->hosts[i];
		size_t l = strlen(h);

		if (strcmp(h, host) == 0)
			return true;
		if (l > 2 && h[0] == '*' && h[1] == '.' && hl > l - 1 &&
		    strcmp(host + hl - (l - 1), h + 1) == 0)
			return true;
	}
	return false;
}

/* Is there "PREFIX:resolve:env:" at p (colons raw or %3A)? Its length. */
static size_t
marker_at(const char *p, size_t n)
{
	static const char *const parts[] = { "resolve", "env" };

	for (size_t k = 0; k < MOAT_NELEM(prefixes); k++) {
		size_t pl = strlen(prefixes[k]), i = pl;
		bool ok_ = n >= pl && memcmp(p, prefixes[k], pl) == 0;

		for (size_t j = 0; ok_ && j <= MOAT_NELEM(parts); j++) {
			if (i < n && p[i] == ':')
				i++;
			else if (i + 3 <= n && p[i] == '%' && p[i + 1] == '3' &&
			    (p[i + 2] == 'A' || p[i + 2] == 'a'))
				i += 3;
			else
				ok_ = false;
			if (ok_ && j < MOAT_NELEM(parts)) {
				size_t ql = strlen(parts[j]);

				if (i + ql > n || memcmp(p + i, parts[j], ql) != 0)
					ok_ = false;
				i += ql;
			}
		}
		if (ok_)
			return i;
	}
	return 0;
}

bool
px_inject_marker(const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((buf[i] == 'm' || buf[i] == 'o') && marker_at(buf + i,
		    n - i) > 0)
			return true;
	return false;
}

int
px_ibuf_put(struct px_ibuf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t nc = (b->len + n + 1) * 2;
		char *p = realloc(b->p, nc);

		if (p == NULL)
			return -1;
		b->p = p;
		b->cap = nc;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int
put_value(struct px_ibuf *b, const struct px_secret *x, enum px_ictx ctx)
{
	char esc[8];

	if (ctx == PX_I_RAW)
		return px_ibuf_put(b, x->value, x->vlen);
	for (size_t i = 0; i < x->vlen; i++) {
		unsigned char c = (unsigned char)x->value[i];
		int r;

		if (ctx == PX_I_PCT) {
			if (isalnum(c) || strchr("-._~", c) != NULL)
				r = px_ibuf_put(b, &x->value[i], 1);
			else
				r = px_ibuf_put(b, esc, (size_t)snprintf(esc,
				    sizeof(esc), "%%%02X", c));
		} else if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			r = px_ibuf_put(b, esc, 2);
		} else if (c < 0x20) {
			r = px_ibuf_put(b, esc, (size_t)snprintf(esc, sizeof(esc),
			    "\\u%04x", c));
		} else {
			r = px_ibuf_put(b, &x->value[i], 1);
		}
		if (r != 0)
			return r;
	}
	return 0;
}

int
px_inject(const struct px_secrets *s, const char *host, const char *in,
    size_t n, enum px_ictx ctx, struct px_ibuf *out,
    struct px_inject_err *err)
{
	size_t i = 0, from = 0;
	int done = 0;

	while (i < n) {
		size_t m, k, nl;
		const struct px_secret *x = NULL;

		if ((in[i] != 'm' && in[i] != 'o') ||
		    (m = marker_at(in + i, n - i)) == 0) {
			i++;
			continue;
		}
		for (k = i + m; k < n && k - i - m < NAME_MAX_LEN + 1 &&
		    name_char((unsigned char)in[k], k == i + m); k++)
			;
		nl = k - i - m;
		snprintf(err->name, sizeof(err->name), "%.*s", (int)nl,
		    in + i + m);
		for (size_t j = 0; s != NULL && j < s->n && nl > 0; j++)
			if (strlen(s->v[j].name) == nl &&
			    memcmp(s->v[j].name, in + i + m, nl) == 0)
				x = &s->v[j];
		if (nl == 0 || nl > NAME_MAX_LEN || x == NULL) {
			err->why = "invalid_credential_placeholder";
			return -1;
		}
		if (!bound(x, host)) {
			err->why = "credential_endpoint_mismatch";
			return -1;
		}
		if (px_ibuf_put(out, in + from, i - from) != 0 ||
		    put_value(out, x, ctx) != 0)
			return -2;
		done++;
		i = from = k;
	}
	if (done > 0 && px_ibuf_put(out, in + from, n - from) != 0)
		return -2;
	return done;
}

int
px_inject_basic(const struct px_secrets *s, const char *host, const char *b64,
    size_t n, struct px_ibuf *out, struct px_inject_err *err)
{
	struct px_ibuf dec = { NULL, 0, 0 }, rew = { NULL, 0, 0 };
	int len, r = 0;

	/* Decoding needs the whole text; a non-Basic value is left alone. */
	if (n == 0 || n % 4 != 0 || n > 4096)
		return 0;
	if ((dec.p = malloc(n / 4 * 3 + 1)) == NULL)
		return -2;
	if ((len = EVP_DecodeBlock((unsigned char *)dec.p,
	    (const unsigned char *)b64, (int)n)) < 0)
		goto out;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (b64[n - 1] == '=')
		len -= b64[n - 2] == '=' ? 2 : 1;
	dec.len = (size_t)len;
	if ((r = px_inject(s, host, dec.p, dec.len, PX_I_RAW, &rew, err)) <= 0)
		goto out;
	if (out->cap < rew.len / 3 * 4 + 8) {
		char *p = realloc(out->p, rew.len / 3 * 4 + 8);

		if (p == NULL) {
			r = -2;
			goto out;
		}
		out->p = p;
		out->cap = rew.len / 3 * 4 + 8;
	}
	out->len = (size_t)EVP_EncodeBlock((unsigned char *)out->p,
	    (const unsigned char *)rew.p, (int)rew.len);
out:
	if (rew.p != NULL)
		explicit_bzero(rew.p, rew.cap);
	explicit_bzero(dec.p, n / 4 * 3 + 1);
	free(rew.p);
	free(dec.p);
	return r;
}

void
px_ibuf_free(struct px_ibuf *b)
{
	if (b->p != NULL)
		explicit_bzero(b->p, b->cap);
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}
