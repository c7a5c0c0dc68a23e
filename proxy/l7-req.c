/*
 * One request of a tunnel the proxy looks into (and a forward request
 * to an L7 endpoint): its target canonicalised and decided with the
 * sandbox's current policy, its Host checked, its credential
 * placeholders replaced (inject.c), its head rebuilt; the answers the
 * proxy writes itself (400, 403, 502) and the events that record them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "proxy/l7.h"

/* The tunnel's host, decided (a forward request's before its relay). */
static const char *
conn_host(const struct px_conn *c)
{
	return c->who != NULL ? c->who->host : c->s->host;
}

static void
caller_of(const struct px_conn *c, struct moat_caller *out)
{
	memset(out, 0, sizeof(*out));
	if (c->who != NULL) {
		out->exe = c->who->exe;
		out->ancestors = c->who->anc;
		out->nancestors = c->who->nanc;
	} else {
		out->exe = c->s->id.bin[0].path;
		out->ancestors = c->s->id.anc;
		out->nancestors = c->s->id.nbin - 1;
	}
}

/* Answer in a tunnel (then end it) or on a forward request. */
static void
answer(struct px_conn *c, char *resp, size_t len)
{
	if (c->l7 != NULL)
		px_l7_finish(c, resp, len);
	else
		px_conn_respond(c, resp, len);
}

void
px_l7_error(struct px_conn *c, int status, const char *error, const char *why)
{
	size_t len = 0;

	char *r = px_simple_response(status, error, why, &len);

	answer(c, r, len);
}

/* Record an event about the current request (stage, reason). */
void
px_l7_event(struct px_conn *c, const char *stage, const char *reason,
    const char *method, const char *path)
{
	struct moat_denial_event ev;

	px_conn_event(c, &ev, stage, reason, NULL);
	if (method != NULL)
		moat_strlcpy(ev.method, method, sizeof(ev.method));
	if (path != NULL)
		moat_strlcpy(ev.path, path, sizeof(ev.path));
	px_emit(c->p, &ev);
}

/* A 403 in OpenShell's shape, recorded under stage (and the request). */
static void
deny_with(struct px_conn *c, const char *stage, const char *why,
    const char *policy, const char *method, const char *path)
{
	struct px_deny dn = { 0 };
	struct moat_caller who;
	size_t len = 0;
	char *r;

	px_l7_event(c, stage, why, path != NULL ? method : NULL, path);
	caller_of(c, &who);
	dn.error = "policy_denied";
	dn.method = method;
	dn.path = path;
	dn.host = conn_host(c);
	dn.port = c->port;
	dn.reason = why;
	dn.binary = who.exe;
	dn.ancestors = who.ancestors;
	dn.nancestors = who.nancestors;
	dn.policy = policy;
	r = px_deny_response(&dn, &len);
	answer(c, r, len);
}

/* Does any header called name list tok (Connection: upgrade)? */
static bool
headers_list(const char *buf, const struct moat_http_req *r, const char *name,
    const char *tok)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (moat_http_span_eq(buf, r->headers[i].name, name) &&
		    moat_http_list_has(buf + r->headers[i].value.off,
		    r->headers[i].value.len, tok))
			return true;
	return false;
}

/*
 * An Upgrade header: only a WebSocket handshake as RFC 6455 has it (GET,
 * HTTP/1.1, one Upgrade of exactly "websocket", Connection: upgrade) is
 * relayed. Anything else could switch to a protocol nobody decides
 * (h2c offered next to websocket), or be a plain request the server
 * runs while moat took it for an upgrade. 1 an upgrade, 0 none, -1 not
 * one we relay.
 */
static int
upgrade_of(const char *buf, const struct moat_http_req *r)
{
	const struct moat_http_header *up = NULL;

	for (size_t i = 0; i < r->nheaders; i++)
		if (moat_http_span_eq(buf, r->headers[i].name, "upgrade")) {
			if (up != NULL)
				return -1;
			up = &r->headers[i];
		}
	if (up == NULL)
		return 0;
	return moat_http_span_eq(buf, up->value, "websocket") &&
	    strcmp(r->method, "GET") == 0 && r->minor == 1 &&
	    headers_list(buf, r, "connection", "upgrade") ? 1 : -1;
}

/* Host must name the host that was decided (and its port, if any). */
static bool
host_ok(struct px_conn *c, const char *buf, const struct moat_http_req *r)
{
	const struct moat_http_header *h = moat_http_header_get(r, buf,
	    "host");
	char name[MOAT_HTTP_HOST_MAX], norm[MOAT_HTTP_HOST_MAX];
	const char *v, *colon;
	size_t n;
	bool v6;

	if (h == NULL)
		return r->minor == 0;
	v = buf + h->value.off;
	n = h->value.len;
	if (n > 0 && v[0] == '[') {
		const char *rb = memchr(v, ']', n);

		if (rb == NULL)
			return false;
		colon = rb + 1 < v + n ? rb + 1 : NULL;
		snprintf(name, sizeof(name), "%.*s", (int)(rb - v - 1), v + 1);
	} else {
		colon = memchr(v, ':', n);
		snprintf(name, sizeof(name), "%.*s", (int)(colon != NULL ?
		    (size_t)(colon - v) : n), v);
	}
	if (colon != NULL) {
		char port[8];

		if (*colon != ':' || (size_t)(v + n - colon - 1) >=
		    sizeof(port))
			return false;
		snprintf(port, sizeof(port), "%.*s", (int)(v + n - colon - 1),
		    colon + 1);
		if (atoi(port) != c->port)
			return false;
	}
	return moat_http_host_ok(name, strlen(name), norm, sizeof(norm),
	    &v6) && strcmp(norm, c->who->host) == 0;
}

static enum px_ictx
body_ctx(const char *buf, const struct moat_http_req *r, bool *ok_)
{
	const struct moat_http_header *h = moat_http_header_get(r, buf,
	    "content-type");
	const char *v = h != NULL ? buf + h->value.off : "";
	size_t n = h != NULL ? h->value.len : 0;

	*ok_ = true;
	if (n >= 16 && strncasecmp(v, "application/json", 16) == 0)
		return PX_I_JSON;
	if (n >= 33 && strncasecmp(v, "application/x-www-form-urlencoded",
	    33) == 0)
		return PX_I_PCT;
	if (n >= 5 && strncasecmp(v, "text/", 5) == 0)
		return PX_I_RAW;
	*ok_ = false;
	return PX_I_RAW;
}

static void
refuse_credential(struct px_conn *c, const struct px_inject_err *e,
    const char *method, const char *path)
{
	char why[512], *r;
	size_t len = 0;

	if (strcmp(e->why, "credential_endpoint_mismatch") == 0)
		snprintf(why, sizeof(why), "credential %s is not bound to "
		    "host %s; the request was not sent", e->name,
		    conn_host(c));
	else
		snprintf(why, sizeof(why), "no credential named '%s' for "
		    "this sandbox; the request was not sent", e->name);
	px_l7_event(c, "credential", why, method, path);
	r = px_simple_response(403, e->why, why, &len);
	answer(c, r, len);
}

static int
head_parts(struct px_conn *c, const char *buf, const struct moat_http_req *r,
    const char *target, size_t tlen, bool keep_cl, struct px_ibuf *out,
    const char *path)
{
	struct px_secrets *s = c->sb->secrets;
	struct px_inject_err e = { "", "" };
	struct px_ibuf t = { NULL, 0, 0 };
	char line[64];
	int k;

	if ((k = px_inject(s, conn_host(c), target, tlen, PX_I_PCT, &t,
	    &e)) == -1) {
		refuse_credential(c, &e, r->method, path);
		return -1;
	}
	snprintf(line, sizeof(line), " HTTP/1.%d\r\n", r->minor);
	if (k < 0 || px_ibuf_put(out, r->method, strlen(r->method)) != 0 ||
	    px_ibuf_put(out, " ", 1) != 0 ||
	    px_ibuf_put(out, k > 0 ? t.p : target, k > 0 ? t.len : tlen) !=
	    0 || px_ibuf_put(out, line, strlen(line)) != 0) {
		px_ibuf_free(&t);
		return -2;
	}
	px_ibuf_free(&t);
	for (size_t i = 0; i < r->nheaders; i++) {
		const struct moat_http_header *h = &r->headers[i];
		const char *v = buf + h->value.off;
		size_t vn = h->value.len, skip = 0;

		if (!keep_cl && moat_http_span_eq(buf, h->name,
		    "content-length"))
			continue;
		if ((moat_http_span_eq(buf, h->name, "authorization") ||
		    moat_http_span_eq(buf, h->name, "proxy-authorization")) &&
		    vn > 6 && strncasecmp(v, "basic ", 6) == 0)
			skip = 6;
		if (skip > 0)
			k = px_inject_basic(s, conn_host(c), v + skip,
			    vn - skip, &t, &e);
		else
			k = px_inject(s, conn_host(c), v, vn, PX_I_RAW, &t, &e);
		if (k == -1) {
			px_ibuf_free(&t);
			refuse_credential(c, &e, r->method, path);
			return -1;
		}
		if (k < 0 || px_ibuf_put(out, buf + h->name.off,
		    h->name.len) != 0 || px_ibuf_put(out, ": ", 2) != 0 ||
		    px_ibuf_put(out, v, skip) != 0 ||
		    px_ibuf_put(out, k > 0 ? t.p : v + skip, k > 0 ? t.len :
		    vn - skip) != 0 || px_ibuf_put(out, "\r\n", 2) != 0) {
			px_ibuf_free(&t);
			return -2;
		}
		px_ibuf_free(&t);
	}
	return keep_cl && px_ibuf_put(out, "\r\n", 2) != 0 ? -2 : 0;
}

/*
 * The head to send into *out: request line with the canonical target
 * (placeholders replaced), every header as sent but with placeholders
 * replaced (Basic decoded for it), and the blank line; when keep_cl is
 * false, without Content-Length and the blank line (the caller adds
 * them with the rewritten body). 0, or -1 answered (out freed).
 */
static int
build_head(struct px_conn *c, const char *buf, const struct moat_http_req *r,
    const char *target, size_t tlen, bool keep_cl, struct px_ibuf *out,
    const char *path)
{
	int rc = head_parts(c, buf, r, target, tlen, keep_cl, out, path);

	if (rc == -2)
		px_l7_error(c, 503, "out_of_memory", "out of memory");
	if (rc != 0)
		px_ibuf_free(out);
	return rc == 0 ? 0 : -1;
}

/* Header names servers take a method from (Google APIs, Rack, Express,
 * Symfony). */
static const char *const override_headers[] = { "x-http-method-override",
	"x-http-method", "x-method-override" };
#define MAX_OVERRIDES 8

/* The values of the request's method-override headers into v (-1: too
 * many to decide). */
static int
overrides_of(const char *buf, const struct moat_http_req *r,
    char v[MAX_OVERRIDES][40], const char **pv)
{
	int n = 0;

	for (size_t i = 0; i < r->nheaders; i++) {
		const struct moat_http_header *h = &r->headers[i];

		for (size_t k = 0; k < MOAT_NELEM(override_headers); k++) {
			if (!moat_http_span_eq(buf, h->name,
			    override_headers[k]))
				continue;
			if (n == MAX_OVERRIDES)
				return -1;
			/* Longer than any method: refused as not one. */
			snprintf(v[n], sizeof(v[n]), "%.*s", h->value.len > 39 ?
			    39 : (int)h->value.len, buf + h->value.off);
			pv[n] = v[n];
			n++;
		}
	}
	return n;
}

/* The decision for one request: 0 allowed, -1 answered (denied). */
static int
decide_request(struct px_conn *c, const struct moat_http_req *r,
    const char *buf, char *tbuf, size_t plen, bool enc)
{
	struct moat_caller caller;
	struct moat_l7_request rq = { r->method, tbuf, NULL, enc, false, NULL,
	    0 };
	char ov[MAX_OVERRIDES][40];
	const char *pov[MAX_OVERRIDES];
	struct moat_decision d;
	char save = tbuf[plen];
	int up = upgrade_of(buf, r), nov = overrides_of(buf, r, ov, pov);

	if (up < 0) {
		px_l7_error(c, 400, "bad_request", "only WebSocket upgrades "
		    "(GET, HTTP/1.1, Upgrade: websocket, Connection: upgrade) "
		    "are relayed");
		return -1;
	}
	if (nov < 0) {
		px_l7_error(c, 400, "bad_request", "too many method-override "
		    "headers");
		return -1;
	}
	rq.websocket = up > 0;
	rq.overrides = pov;
	rq.noverrides = (size_t)nov;
	caller_of(c, &caller);
	if (save == '?')
		rq.query = tbuf + plen + 1;
	tbuf[plen] = '\0';
	memset(&d, 0, sizeof(d));
	if (c->sb->policy == NULL) {
		snprintf(d.text, sizeof(d.text), "no policy is loaded for "
		    "sandbox %s", c->sb->name);
	} else {
		moat_policy_decide_request(c->sb->policy, &caller,
		    conn_host(c), c->port, &rq, &d);
	}
	if (!d.allow) {
		deny_with(c, "l7", d.text, d.policy, r->method, tbuf);
		return -1;
	}
	if (d.audit)
		px_l7_event(c, "audit", d.text, r->method, tbuf);
	tbuf[plen] = save;
	return 0;
}

/* Start forwarding the body of the request just sent (or kept). */
static void
body_begin(struct px_l7 *x, const struct moat_http_req *r, bool scan)
{
	x->chunked = r->chunked;
	x->left = r->content_length > 0 ? (uint64_t)r->content_length : 0;
	if (x->chunked)
		moat_http_chunked_init(&x->ch);
	x->scan = scan;
	x->nhold = 0;
	x->up = x->chunked || x->left > 0 ? U_BODY : U_WAIT;
}

int
px_l7_request(struct px_conn *c, const struct moat_http_req *r)
{
	struct px_l7 *x = c->l7;
	char tbuf[MOAT_HTTP_HEAD_MAX + 16], why[128];
	size_t plen = 0, tl;
	bool enc = false, secrets = px_secrets_any(c->sb->secrets), ctx_ok;
	bool keep;
	struct px_ibuf h = { NULL, 0, 0 };

	if (moat_l7_canon(x->head + r->path.off, r->path.len, tbuf,
	    sizeof(tbuf), &plen, &enc, why, sizeof(why)) != MOAT_OK) {
		px_l7_event(c, "l7", why, r->method, NULL);
		px_l7_error(c, 400, "bad_request", why);
		return -1;
	}
	tl = strlen(tbuf);
	if (!host_ok(c, x->head, r)) {
		px_l7_error(c, 400, "bad_request", "the Host header does not "
		    "name the host of the CONNECT");
		return -1;
	}
	if (decide_request(c, r, x->head, tbuf, plen, enc) != 0)
		return -1;
	x->bctx = body_ctx(x->head, r, &ctx_ok);
	/* A short body of a type we can rewrite is kept whole first; its
	 * head waits for the new Content-Length. */
	keep = secrets && !r->chunked && r->content_length > 0 &&
	    r->content_length <= BODY_REWRITE_MAX && ctx_ok;
	if (build_head(c, x->head, r, tbuf, tl, !keep, &h, tbuf) != 0)
		return -1;
	if (!keep && px_l7_out(&x->u, h.p, h.len) != 0) {
		px_ibuf_free(&h);
		px_l7_error(c, 503, "out_of_memory", "out of memory");
		return -1;
	}
	px_resp_start(&x->resp, strcmp(r->method, "HEAD") == 0,
	    upgrade_of(x->head, r) > 0);
	x->resp_on = true;
	body_begin(x, r, secrets);
	if (keep) {
		x->bhead = h;
		x->up = U_BODYBUF;
	} else {
		px_ibuf_free(&h);
	}
	return 0;
}

/* A kept body is complete: rewrite it and send head and body. */
int
px_l7_send_kept(struct px_conn *c)
{
	struct px_l7 *x = c->l7;
	struct px_inject_err e = { "", "" };
	struct px_ibuf nb = { NULL, 0, 0 };
	char cl[48];
	int k;

	k = px_inject(c->sb->secrets, c->who->host, x->body.p, x->body.len,
	    x->bctx, &nb, &e);
	if (k == -1) {
		px_ibuf_free(&nb);
		refuse_credential(c, &e, NULL, NULL);
		return 0;
	}
	if (k < 0) {
		px_ibuf_free(&nb);
		return -1;
	}
	snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n\r\n", k > 0 ?
	    nb.len : x->body.len);
	if (px_l7_out(&x->u, x->bhead.p, x->bhead.len) != 0 ||
	    px_l7_out(&x->u, cl, strlen(cl)) != 0 ||
	    px_l7_out(&x->u, k > 0 ? nb.p : x->body.p, k > 0 ? nb.len :
	    x->body.len) != 0) {
		px_ibuf_free(&nb);
		return -1;
	}
	px_ibuf_free(&nb);
	px_ibuf_free(&x->body);
	px_ibuf_free(&x->bhead);
	x->up = x->resp_on ? U_WAIT : U_HEAD;
	return 0;
}

int
px_l7_forward(struct px_conn *c)
{
	const struct moat_http_req *r = &c->s->req;
	char tbuf[MOAT_HTTP_HEAD_MAX + 16], why[128], *fh;
	struct px_ibuf h = { NULL, 0, 0 };
	struct moat_cause cause = { { 0 } };
	struct moat_http_req r2;
	size_t plen = 0, fl = 0, n = r->path.len;
	const char *t = c->s->head + r->path.off;
	bool enc = false;
	int status, rc;

	/* "http://h" and "http://h?q" mean the path "/". */
	char raw[MOAT_HTTP_HEAD_MAX + 16];

	snprintf(raw, sizeof(raw), "%s%.*s", n == 0 || t[0] == '?' ? "/" :
	    "", (int)n, t);
	if (moat_l7_canon(raw, strlen(raw), tbuf, sizeof(tbuf), &plen, &enc,
	    why, sizeof(why)) != MOAT_OK) {
		px_l7_event(c, "l7", why, r->method, NULL);
		px_l7_error(c, 400, "bad_request", why);
		return -1;
	}
	if (c->s->dec.l7 && decide_request(c, r, c->s->head, tbuf, plen,
	    enc) != 0)
		return -1;
	/* The head as forwarded, then its target and placeholders. */
	if ((fh = px_forward_head(r, c->s->head, &fl)) == NULL ||
	    moat_http_parse_origin(fh, fl, &r2, &status, &cause) != MOAT_OK) {
		free(fh);
		px_l7_error(c, 503, "out_of_memory", "out of memory");
		return -1;
	}
	rc = build_head(c, fh, &r2, tbuf, strlen(tbuf), true, &h, tbuf);
	free(fh);
	if (rc != 0)
		return -1;
	c->s->fhead = h.p;
	c->s->fhlen = h.len;
	return 0;
}

int
px_l7_decided(struct px_conn *c)
{
	if (c->kind == MOAT_HTTP_FORWARD && (c->s->dec.l7 ||
	    px_secrets_any(c->sb->secrets)))
		return px_l7_forward(c);
	if (c->kind == MOAT_HTTP_CONNECT && c->s->dec.l7 && c->sb->ca == NULL) {
		deny_with(c, "connect", "the endpoint has L7 rules, which need "
		    "TLS termination, and this sandbox has no CA",
		    c->s->dec.policy, "CONNECT", NULL);
		return -1;
	}
	return 0;
}
