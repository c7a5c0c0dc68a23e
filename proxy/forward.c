/*
 * The forward path's request rewrite: origin-form target, Host from the
 * URL (the decision was made on it, so the upstream must see the same
 * name), hop-by-hop headers dropped, Via added, and "Connection: close"
 * because the proxy serves one request per client connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/internal.h"

#define TAIL "Via: 1.1 moat\r\nConnection: close\r\n\r\n"

static const char *const hop_by_hop[] = {
	"connection", "keep-alive", "proxy-connection", "proxy-authorization",
	"proxy-authenticate", "te", "trailer", "upgrade", "host", "via",
};

/* Is name listed in a Connection header (comma-separated tokens)? */
static bool
listed_in_connection(const struct moat_http_req *r, const char *buf,
    struct moat_http_span name)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct moat_http_header *h = &r->headers[i];
		const char *v = buf + h->value.off, *end = v + h->value.len;

		if (!moat_http_span_eq(buf, h->name, "connection"))
			continue;
		while (v < end) {
			const char *t, *comma;
			size_t tl;
			while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
				v++;
			comma = memchr(v, ',', (size_t)(end - v));
			t = comma != NULL ? comma : end;
			tl = (size_t)(t - v);
			while (tl > 0 && (v[tl - 1] == ' ' || v[tl - 1] == '\t'))
				tl--;
			if (tl == name.len &&
			    strncasecmp(v, buf + name.off, tl) == 0)
				return true;
			v = t;
		}
	}
	return false;
}

static bool
drop_header(const struct moat_http_req *r, const char *buf,
    const struct moat_http_header *h)
{
	/* Never drop framing: a body without its length is a new request. */
	if (moat_http_span_eq(buf, h->name, "content-length") ||
	    moat_http_span_eq(buf, h->name, "transfer-encoding"))
		return false;
	for (size_t i = 0; i < sizeof(hop_by_hop) / sizeof(hop_by_hop[0]); i++)
		if (moat_http_span_eq(buf, h->name, hop_by_hop[i]))
			return true;
	return listed_in_connection(r, buf, h->name);
}

static int
put(char **s, size_t *len, size_t *cap, const char *p, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t nc = (*len + n + 1) * 2;
		char *ns = realloc(*s, nc);
		if (ns == NULL)
			return -1;
		*s = ns;
		*cap = nc;
	}
	memcpy(*s + *len, p, n);
	*len += n;
	(*s)[*len] = '\0';
	return 0;
}

char *
px_forward_head(const struct moat_http_req *r, const char *buf, size_t *lenp)
{
	char *s = NULL, line[600];
	size_t len = 0, cap = 0;
	int n, e = 0;

	n = snprintf(line, sizeof(line), "%s ", r->method);
	e |= put(&s, &len, &cap, line, (size_t)n);
	if (r->path.len == 0 || buf[r->path.off] == '?')
		e |= put(&s, &len, &cap, "/", 1);
	e |= put(&s, &len, &cap, buf + r->path.off, r->path.len);
	n = snprintf(line, sizeof(line), " HTTP/1.%d\r\nHost: %s%s%s", r->minor,
	    r->host_is_ipv6 ? "[" : "", r->host, r->host_is_ipv6 ? "]" : "");
	e |= put(&s, &len, &cap, line, (size_t)n);
	if (r->port != 80) {
		n = snprintf(line, sizeof(line), ":%u", (unsigned)r->port);
		e |= put(&s, &len, &cap, line, (size_t)n);
	}
	e |= put(&s, &len, &cap, "\r\n", 2);
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct moat_http_header *h = &r->headers[i];
		if (drop_header(r, buf, h))
			continue;
		e |= put(&s, &len, &cap, buf + h->name.off, h->name.len);
		e |= put(&s, &len, &cap, ": ", 2);
		e |= put(&s, &len, &cap, buf + h->value.off, h->value.len);
		e |= put(&s, &len, &cap, "\r\n", 2);
	}
	e |= put(&s, &len, &cap, TAIL, sizeof(TAIL) - 1);
	if (e != 0) {
		free(s);
		return NULL;
	}
	*lenp = len;
	return s;
}
