#include <arpa/inet.h>

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "proxy/http.h"

/* RFC 9110 tchar. */
static bool
is_tchar(unsigned char c)
{
	if (isalnum(c))
		return true;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
bad(int *status, int code, struct moat_cause *cause, const char *msg)
{
	*status = code;
	moat_cause_set(cause, "%s", msg);
	return MOAT_ERR_INVALID;
}

bool
moat_http_span_eq(const char *buf, struct moat_http_span sp, const char *s)
{
	return strlen(s) == sp.len && strncasecmp(buf + sp.off, s, sp.len) == 0;
}

bool
moat_http_list_has(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok);

	for (size_t i = 0; i < n;) {
		size_t st, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		st = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > st && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - st == tl && strncasecmp(v + st, tok, tl) == 0)
			return true;
	}
	return false;
}

const struct moat_http_header *
moat_http_header_get(const struct moat_http_req *r, const char *buf,
    const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (moat_http_span_eq(buf, r->headers[i].name, name))
			return &r->headers[i];
	return NULL;
}

static bool
all_digits(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

bool
moat_http_host_ok(const char *in, size_t n, char *out, size_t outlen,
    bool *is_ipv6)
{
	unsigned char a6[16];
	size_t label = 0, last = 0;

	*is_ipv6 = false;
	if (n == 0 || n + 1 > outlen || memchr(in, '\0', n) != NULL)
		return false;
	memcpy(out, in, n);
	out[n] = '\0';
	if (memchr(out, ':', n) != NULL) {
		/* Zone ids ("%25eth0") name host interfaces: refuse. */
		if (inet_pton(AF_INET6, out, a6) != 1)
			return false;
		*is_ipv6 = true;
		return true;
	}
	if (out[n - 1] == '.')
		out[--n] = '\0';
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			last = i + 1;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
		if (++label > 63)
			return false;
		out[i] = (char)tolower(c);
	}
	if (label == 0)
		return false;
	/*
	 * No real top-level label is numeric: such a name is an IPv4 form,
	 * and only the plain dotted quad is accepted, so "127.1" and
	 * "0x7f.0.0.1" never reach a resolver that reads them as loopback.
	 */
	if (all_digits(out + last, n - last) ||
	    strncmp(out + last, "0x", 2) == 0) {
		unsigned char a4[4];
		if (inet_pton(AF_INET, out, a4) != 1)
			return false;
	}
	return true;
}

/* host[:port] or [v6]:port into r; port required unless defport != 0. */
static bool
parse_authority(const char *s, size_t n, uint16_t defport,
    struct moat_http_req *r)
{
	const char *h = s, *p = NULL;
	size_t hn = 0, pn = 0;
	unsigned long port = 0;

	if (memchr(s, '@', n) != NULL)
		return false;
	if (n > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', n);
		if (rb == NULL)
			return false;
		h = s + 1;
		hn = (size_t)(rb - h);
		if (rb + 1 < s + n) {
			if (rb[1] != ':')
				return false;
			p = rb + 2;
			pn = (size_t)(s + n - p);
		}
		if (memchr(h, ':', hn) == NULL)
			return false;
	} else {
		const char *c = memchr(s, ':', n);
		hn = c != NULL ? (size_t)(c - s) : n;
		if (c != NULL) {
			p = c + 1;
			pn = (size_t)(s + n - p);
		}
	}
	if (p != NULL) {
		if (!all_digits(p, pn) || pn > 5)
			return false;
		for (size_t i = 0; i < pn; i++)
			port = port * 10 + (unsigned long)(p[i] - '0');
		if (port < 1 || port > 65535)
			return false;
	} else {
		if (defport == 0)
			return false;
		port = defport;
	}
	if (!moat_http_host_ok(h, hn, r->host, sizeof(r->host),
	    &r->host_is_ipv6))
		return false;
	if (s[0] == '[' && !r->host_is_ipv6)
		return false;
	r->port = (uint16_t)port;
	return true;
}

static bool
target_chars_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || c == '#')
			return false;
	}
	return true;
}

static int
parse_target(const char *buf, size_t off, size_t n, struct moat_http_req *r,
    int *status, struct moat_cause *cause)
{
	const char *t = buf + off, *auth, *slash;
	size_t an;

	if (!target_chars_ok(t, n))
		return bad(status, 400, cause, "request target has bad bytes");
	if (r->kind == MOAT_HTTP_ORIGIN) {
		/* Inside a tunnel: a server's request, origin form only. */
		if (t[0] != '/' || strcmp(r->method, "CONNECT") == 0)
			return bad(status, 400, cause,
			    "request target is not a path");
		r->path.off = (uint16_t)off;
		r->path.len = (uint16_t)n;
		return MOAT_OK;
	}
	if (strcmp(r->method, "CONNECT") == 0) {
		r->kind = MOAT_HTTP_CONNECT;
		if (!parse_authority(t, n, 0, r))
			return bad(status, 400, cause,
			    "CONNECT target is not host:port");
		return MOAT_OK;
	}
	r->kind = MOAT_HTTP_FORWARD;
	if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
		return bad(status, 400, cause, "Use CONNECT for HTTPS URLs");
	if (n < 7 || strncasecmp(t, "http://", 7) != 0)
		return bad(status, 400, cause,
		    "forward requests need an absolute http:// URL");
	auth = t + 7;
	slash = auth;
	while (slash < t + n && *slash != '/' && *slash != '?')
		slash++;
	an = (size_t)(slash - auth);
	if (an == 0 || !parse_authority(auth, an, 80, r))
		return bad(status, 400, cause, "URL authority is not host[:port]");
	r->path.off = (uint16_t)(off + 7 + an);
	r->path.len = (uint16_t)(n - 7 - an);
	return MOAT_OK;
}

/* The request line: n bytes at buf + off (spans stay offsets into buf). */
static int
parse_request_line(const char *buf, size_t off, size_t n,
    struct moat_http_req *r, int *status, struct moat_cause *cause)
{
	const char *l = buf + off, *sp1, *sp2;
	size_t mlen;

	if ((sp1 = memchr(l, ' ', n)) == NULL)
		return bad(status, 400, cause, "malformed request line");
	mlen = (size_t)(sp1 - l);
	if (mlen == 0 || mlen >= sizeof(r->method))
		return bad(status, 400, cause, "malformed method");
	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar((unsigned char)l[i]))
			return bad(status, 400, cause, "malformed method");
	memcpy(r->method, l, mlen);
	r->method[mlen] = '\0';
	sp2 = memchr(sp1 + 1, ' ', n - mlen - 1);
	if (sp2 == NULL || sp2 == sp1 + 1)
		return bad(status, 400, cause, "malformed request line");
	if ((size_t)(l + n - sp2) != 9 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    (sp2[8] != '0' && sp2[8] != '1'))
		return bad(status, 400, cause, "only HTTP/1.0 and 1.1 are served");
	r->minor = sp2[8] - '0';
	return parse_target(buf, (size_t)(sp1 + 1 - buf),
	    (size_t)(sp2 - sp1 - 1), r, status, cause);
}

static int
check_framing(const char *buf, struct moat_http_req *r, int *status,
    struct moat_cause *cause)
{
	int ncl = 0, nte = 0;

	for (size_t i = 0; i < r->nheaders; i++) {
		const struct moat_http_header *h = &r->headers[i];
		const char *v = buf + h->value.off;

		if (moat_http_span_eq(buf, h->name, "content-length")) {
			int64_t cl = 0;
			if (++ncl > 1)
				return bad(status, 400, cause,
				    "duplicate Content-Length");
			if (!all_digits(v, h->value.len) || h->value.len > 18)
				return bad(status, 400, cause,
				    "invalid Content-Length");
			for (size_t k = 0; k < h->value.len; k++)
				cl = cl * 10 + (v[k] - '0');
			r->content_length = cl;
		} else if (moat_http_span_eq(buf, h->name,
		    "transfer-encoding")) {
			/* Only plain "chunked": other codings hide the end. */
			if (++nte > 1 ||
			    !moat_http_span_eq(buf, h->value, "chunked"))
				return bad(status, 400, cause,
				    "unsupported Transfer-Encoding");
			r->chunked = true;
		}
	}
	if (ncl > 0 && nte > 0)
		return bad(status, 400, cause,
		    "Content-Length with Transfer-Encoding");
	if (r->chunked && r->minor == 0)
		return bad(status, 400, cause, "chunked in HTTP/1.0");
	return MOAT_OK;
}

/*
 * A Host value's syntax (RFC 9110 7.2: uri-host [":" port]): a bracketed
 * IP literal or reg-name characters, no userinfo. Empty is valid (a
 * request whose target has no authority sends it empty).
 */
static bool
host_value_ok(const char *v, size_t n)
{
	const char *rb;
	size_t i = 0;

	if (n > 0 && v[0] == '[') {
		if ((rb = memchr(v, ']', n)) == NULL)
			return false;
		for (i = 1; v + i < rb; i++)
			if (!isxdigit((unsigned char)v[i]) && v[i] != ':' &&
			    v[i] != '.')
				return false;
		i++;
	} else {
		for (; i < n && v[i] != ':'; i++)
			if (!isalnum((unsigned char)v[i]) &&
			    strchr("-._~!$&'()*+,;=%", v[i]) == NULL)
				return false;
	}
	if (i == n)
		return true;
	if (v[i] != ':')
		return false;
	while (++i < n)
		if (!isdigit((unsigned char)v[i]))
			return false;
	return true;
}

/*
 * RFC 9112 3.2 says MUST: 400 for an HTTP/1.1 request without Host, and
 * for any request with more than one Host or an invalid one. The proxy
 * decides on the request target and gives a forwarded request the Host
 * of that target, so the value itself is only checked for its syntax.
 */
static int
check_host(const char *buf, const struct moat_http_req *r, int *status,
    struct moat_cause *cause)
{
	const struct moat_http_header *h = NULL;
	size_t n = 0;

	for (size_t i = 0; i < r->nheaders; i++)
		if (moat_http_span_eq(buf, r->headers[i].name, "host")) {
			h = &r->headers[i];
			n++;
		}
	if (n > 1)
		return bad(status, 400, cause, "more than one Host header");
	if (n == 0 && r->minor == 1)
		return bad(status, 400, cause, "HTTP/1.1 request without Host");
	if (h != NULL && !host_value_ok(buf + h->value.off, h->value.len))
		return bad(status, 400, cause, "invalid Host header");
	return MOAT_OK;
}

static int
parse_header(const char *buf, size_t off, size_t n, struct moat_http_req *r,
    int *status, struct moat_cause *cause)
{
	const char *l = buf + off, *colon;
	size_t nlen, vs, ve;
	struct moat_http_header *h;

	if (l[0] == ' ' || l[0] == '\t')
		return bad(status, 400, cause, "obsolete line folding");
	if ((colon = memchr(l, ':', n)) == NULL || colon == l)
		return bad(status, 400, cause, "malformed header line");
	nlen = (size_t)(colon - l);
	for (size_t i = 0; i < nlen; i++)
		if (!is_tchar((unsigned char)l[i]))
			return bad(status, 400, cause, "bad header name");
	for (size_t i = nlen + 1; i < n; i++) {
		unsigned char c = (unsigned char)l[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return bad(status, 400, cause,
			    "control byte in header value");
	}
	vs = nlen + 1;
	while (vs < n && (l[vs] == ' ' || l[vs] == '\t'))
		vs++;
	ve = n;
	while (ve > vs && (l[ve - 1] == ' ' || l[ve - 1] == '\t'))
		ve--;
	if (r->nheaders == MOAT_HTTP_MAX_HEADERS)
		return bad(status, 431, cause, "too many header fields");
	h = &r->headers[r->nheaders++];
	h->name = (struct moat_http_span){ (uint16_t)off, (uint16_t)nlen };
	h->value = (struct moat_http_span){ (uint16_t)(off + vs),
		(uint16_t)(ve - vs) };
	return MOAT_OK;
}

/*
 * Find the end of the head, which starts at start (after the one empty
 * line that is ignored). Any LF not preceded by CR is refused at once,
 * before the rest arrives: a bare-LF head is read differently by
 * different servers.
 */
static int
find_end(const char *buf, size_t len, size_t start, size_t *end, int *status,
    struct moat_cause *cause)
{
	size_t lim = len < MOAT_HTTP_HEAD_MAX ? len : MOAT_HTTP_HEAD_MAX;

	for (size_t i = start; i < lim; i++) {
		if (buf[i] != '\n')
			continue;
		if (i == 0 || buf[i - 1] != '\r')
			return bad(status, 400, cause, "bare LF in request head");
		if (i == start + 1)
			return bad(status, 400, cause, "more than one empty "
			    "line before the request line");
		if (i >= start + 3 && buf[i - 2] == '\n') {
			*end = i + 1;
			return MOAT_OK;
		}
	}
	if (len >= MOAT_HTTP_HEAD_MAX)
		return bad(status, 431, cause, "request head over 8 KiB");
	return MOAT_ERR_AGAIN;
}

static int
parse(const char *buf, size_t len, struct moat_http_req *r, int *status,
    struct moat_cause *cause, enum moat_http_kind kind)
{
	size_t end = 0, off, eol, start;
	int rc;

	*status = 0;
	/*
	 * RFC 9112 2.2: a server SHOULD ignore at least one empty line
	 * before the request line (some clients send CRLF after a body).
	 * One is ignored; a second is an error, so the wait is bounded.
	 */
	start = len >= 2 && buf[0] == '\r' && buf[1] == '\n' ? 2 : 0;
	if ((rc = find_end(buf, len, start, &end, status, cause)) != MOAT_OK)
		return rc;
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->content_length = -1;
	r->head_len = end;
	/* A NUL anywhere in the head is refused (also covers the target). */
	if (memchr(buf, '\0', end) != NULL)
		return bad(status, 400, cause, "NUL byte in request head");
	eol = (size_t)((const char *)memchr(buf + start, '\r', end - start) -
	    buf);
	if (buf[eol + 1] != '\n')
		return bad(status, 400, cause, "bare CR in request line");
	if ((rc = parse_request_line(buf, start, eol - start, r, status,
	    cause)) != MOAT_OK)
		return rc;
	for (off = eol + 2; off < end - 2; off = eol + 2) {
		const char *cr = memchr(buf + off, '\r', end - off);
		eol = (size_t)(cr - buf);
		if (buf[eol + 1] != '\n')
			return bad(status, 400, cause, "bare CR in header");
		if ((rc = parse_header(buf, off, eol - off, r, status,
		    cause)) != MOAT_OK)
			return rc;
	}
	if ((rc = check_host(buf, r, status, cause)) != MOAT_OK)
		return rc;
	return check_framing(buf, r, status, cause);
}

int
moat_http_parse(const char *buf, size_t len, struct moat_http_req *r,
    int *status, struct moat_cause *cause)
{
	return parse(buf, len, r, status, cause, 0);
}

int
moat_http_parse_origin(const char *buf, size_t len, struct moat_http_req *r,
    int *status, struct moat_cause *cause)
{
	return parse(buf, len, r, status, cause, MOAT_HTTP_ORIGIN);
}

enum {
	CH_SIZE = 0,
	CH_EXT,
	CH_SIZE_LF,
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER,    /* at the start of a trailer line */
	CH_TRAILER_LN, /* inside a trailer line */
	CH_TRAILER_LF,
	CH_END_LF,
	CH_DONE,
};

void
moat_http_chunked_init(struct moat_http_chunked *c)
{
	memset(c, 0, sizeof(*c));
}

bool
moat_http_chunked_done(const struct moat_http_chunked *c)
{
	return c->state == CH_DONE;
}

static int
hexval(unsigned char ch)
{
	if (isdigit(ch))
		return ch - '0';
	ch = (unsigned char)tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int
moat_http_chunked_feed(struct moat_http_chunked *c, const char *buf,
    size_t len, size_t *used)
{
	size_t i = 0;

	while (i < len && c->state != CH_DONE) {
		unsigned char ch = (unsigned char)buf[i];
		int hv;

		switch (c->state) {
		case CH_SIZE:
			if ((hv = hexval(ch)) >= 0) {
				if (++c->ndigits > 15)
					return MOAT_ERR_INVALID;
				c->remaining = c->remaining * 16 + (uint64_t)hv;
			} else if (c->ndigits == 0) {
				return MOAT_ERR_INVALID;
			} else if (ch == ';') {
				c->state = CH_EXT;
			} else if (ch == '\r') {
				c->state = CH_SIZE_LF;
			} else {
				return MOAT_ERR_INVALID;
			}
			i++;
			break;
		case CH_EXT:
			if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if (ch == '\n' || ++c->linelen > 4096)
				return MOAT_ERR_INVALID;
			i++;
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				return MOAT_ERR_INVALID;
			c->ndigits = 0;
			c->linelen = 0;
			c->state = c->remaining == 0 ? CH_TRAILER : CH_DATA;
			i++;
			break;
		case CH_DATA: {
			size_t take = len - i;
			if (take > c->remaining)
				take = (size_t)c->remaining;
			c->remaining -= take;
			i += take;
			if (c->remaining == 0)
				c->state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
		case CH_TRAILER_LF:
		case CH_END_LF:
		case CH_DATA_LF:
			if (c->state == CH_DATA_CR) {
				if (ch != '\r')
					return MOAT_ERR_INVALID;
				c->state = CH_DATA_LF;
			} else if (ch != '\n') {
				return MOAT_ERR_INVALID;
			} else {
				c->state = c->state == CH_DATA_LF ? CH_SIZE :
				    c->state == CH_END_LF ? CH_DONE : CH_TRAILER;
			}
			i++;
			break;
		case CH_TRAILER:
			if (ch == '\r')
				c->state = CH_END_LF;
			else if (ch == '\n' || ch == ' ' || ch == '\t')
				return MOAT_ERR_INVALID;
			else
				c->state = CH_TRAILER_LN;
			c->linelen = 0;
			i++;
			break;
		case CH_TRAILER_LN:
			if (ch == '\r')
				c->state = CH_TRAILER_LF;
			else if (ch == '\n' || ++c->linelen > 4096)
				return MOAT_ERR_INVALID;
			i++;
			break;
		}
	}
	*used = i;
	return MOAT_OK;
}
