/*
 * The decision: one function for `moat policy check`, `moat policy
 * explain` and the proxy. It never allocates: hosts were lowercased and
 * split, addresses parsed and binary paths resolved when the policy was
 * loaded, and the request's host is normalised into a stack buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "common/event.h"
#include "policies/internal.h"

static bool
port_in(const struct pol_endpoint *ep, uint16_t port)
{
	for (size_t i = 0; i < ep->nports; i++)
		if (ep->ports[i] == port)
			return true;
	return false;
}

/*
 * The caller's own exe, or any ancestor's, must match. Command lines are
 * never looked at here: argv[0] is whatever the process says it is.
 */
static bool
caller_in(const struct pol_rule *r, const struct moat_caller *c)
{
	if (c == NULL)
		return false;
	for (size_t i = 0; i < r->nbins; i++) {
		const struct pol_binary *b = &r->bins[i];

		if (c->exe != NULL && pol_binary_match(b, c->exe))
			return true;
		for (size_t j = 0; j < c->nancestors; j++)
			if (c->ancestors[j] != NULL &&
			    pol_binary_match(b, c->ancestors[j]))
				return true;
	}
	return false;
}

static void text_add(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void
text_add(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= len - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t)n < len - *off ? (size_t)n : len - 1 - *off;
}

static void
where(struct moat_decision *d, size_t *off)
{
	if (strchr(d->host, ':') != NULL)
		text_add(d->text, sizeof(d->text), off, "endpoint [%s]:%u",
		    d->host, d->port);
	else
		text_add(d->text, sizeof(d->text), off, "endpoint %s:%u",
		    d->host, d->port);
}

static void
who(struct moat_decision *d, size_t *off, const struct moat_caller *c)
{
	const char *exe = c != NULL && c->exe != NULL ? c->exe : "(unknown)";

	text_add(d->text, sizeof(d->text), off, "binary '%s'", exe);
}

static void
lineage(struct moat_decision *d, size_t *off, const struct moat_caller *c)
{
	if (c == NULL)
		return;
	if (c->nancestors > 0) {
		text_add(d->text, sizeof(d->text), off, " (ancestors: ");
		for (size_t i = 0; i < c->nancestors; i++)
			text_add(d->text, sizeof(d->text), off, "%s%s",
			    i ? " -> " : "", c->ancestors[i] ? c->ancestors[i] :
			    "?");
		text_add(d->text, sizeof(d->text), off, ")");
	}
	if (c->ncmdline > 0) {
		text_add(d->text, sizeof(d->text), off, " (cmdline, never "
		    "trusted: ");
		for (size_t i = 0; i < c->ncmdline; i++)
			text_add(d->text, sizeof(d->text), off, "%s%s",
			    i ? " " : "", c->cmdline_paths[i] ?
			    c->cmdline_paths[i] : "?");
		text_add(d->text, sizeof(d->text), off, ")");
	}
}

static void
symlink_hint(struct moat_decision *d, size_t *off, const struct pol_rule *r)
{
	if (!r->any_symlink)
		return;
	for (size_t i = 0; i < r->nbins; i++)
		if (r->bins[i].resolved != NULL) {
			text_add(d->text, sizeof(d->text), off, "; note: the "
			    "policy's %s is a symlink and matches %s",
			    r->bins[i].path, r->bins[i].resolved);
			return;
		}
}

static int
verdict(struct moat_decision *d, enum moat_verdict_reason why,
    const struct pol_endpoint *ep, const struct moat_caller *c)
{
	size_t off = 0;

	d->reason = why;
	d->endpoint = ep;
	d->policy = ep != NULL ? ep->rule->key : NULL;
	d->allow = why == MOAT_REASON_ALLOWED;
	switch (why) {
	case MOAT_REASON_NO_POLICIES:
		text_add(d->text, sizeof(d->text), &off,
		    "network connections not allowed by policy");
		break;
	case MOAT_REASON_BAD_HOST:
		text_add(d->text, sizeof(d->text), &off, "host '%s' is not a "
		    "valid host name or IP address", d->host);
		break;
	case MOAT_REASON_NO_ENDPOINT:
		where(d, &off);
		text_add(d->text, sizeof(d->text), &off, " is not allowed by "
		    "any policy");
		break;
	case MOAT_REASON_BINARY:
		where(d, &off);
		text_add(d->text, sizeof(d->text), &off, " is in policy '%s' "
		    "but ", d->policy);
		who(d, &off, c);
		text_add(d->text, sizeof(d->text), &off, " is not one of its "
		    "binaries");
		lineage(d, &off, c);
		symlink_hint(d, &off, ep->rule);
		break;
	case MOAT_REASON_L7_UNENFORCED:
		where(d, &off);
		text_add(d->text, sizeof(d->text), &off, " is in policy '%s', "
		    "but %s; the connection is denied rather than allowed "
		    "unchecked", d->policy, ep->l7why);
		break;
	default:
		if (d->audit) {
			text_add(d->text, sizeof(d->text), &off, "audit: ");
			where(d, &off);
			text_add(d->text, sizeof(d->text), &off, " is in "
			    "policy '%s' (enforcement audit) but ", d->policy);
			who(d, &off, c);
			text_add(d->text, sizeof(d->text), &off, " is not one "
			    "of its binaries; allowed and logged");
			lineage(d, &off, c);
		} else {
			text_add(d->text, sizeof(d->text), &off, "allowed by "
			    "policy '%s'", d->policy);
		}
		break;
	}
	return MOAT_OK;
}

/*
 * Allowed by policy: now the SSRF checks that need no resolution, so
 * `explain` gives the proxy's verdict on every IP literal, blocked name
 * and control-plane port.
 */
static int
allowed(struct moat_decision *d, const struct pol_endpoint *ep,
    const struct moat_caller *c, const struct pol_req *req)
{
	verdict(d, MOAT_REASON_ALLOWED, ep, c);
	pol_ssrf_request(d, req);
	return MOAT_OK;
}

/* The endpoints of one policy that hold (host, port), by kind. */
struct hits {
	const struct pol_endpoint *l4;  /* plain L4 */
	const struct pol_endpoint *l7;  /* rest or websocket */
	const struct pol_endpoint *unf; /* fail closed */
	const struct pol_endpoint *audit;
};

static bool
rule_hits(const struct pol_rule *r, const struct pol_req *req, uint16_t port,
    struct hits *h)
{
	memset(h, 0, sizeof(*h));
	for (size_t j = 0; j < r->neps; j++) {
		const struct pol_endpoint *ep = &r->eps[j];
		const struct pol_endpoint **slot;

		if (!port_in(ep, port) || !pol_host_match(&ep->host, req))
			continue;
		slot = ep->l7 == POL_L7_NONE ? &h->l4 :
		    ep->l7 == POL_L7_UNENFORCED ? &h->unf : &h->l7;
		if (*slot == NULL)
			*slot = ep;
		if (h->audit == NULL && ep->audit && ep->l7 != POL_L7_UNENFORCED)
			h->audit = ep;
	}
	return h->l4 != NULL || h->l7 != NULL || h->unf != NULL;
}

static int
begin(const struct moat_policy *p, const char *host, uint16_t port,
    struct pol_req *req, char *buf, size_t blen, struct moat_decision *out,
    const struct moat_caller *c)
{
	memset(out, 0, offsetof(struct moat_decision, text));
	out->text[0] = '\0';
	out->port = port;
	moat_strlcpy(out->host, host != NULL ? host : "", sizeof(out->host));
	if (p == NULL || p->nrules == 0)
		return verdict(out, MOAT_REASON_NO_POLICIES, NULL, c);
	if (!pol_req_init(req, host, buf, blen))
		return verdict(out, MOAT_REASON_BAD_HOST, NULL, c);
	moat_strlcpy(out->host, req->name, sizeof(out->host));
	return 1;
}

/*
 * Nothing allowed the caller outright: an audit endpoint lets it pass,
 * else the most telling reason (unenforced, binary, no endpoint).
 */
static int
fallback(struct moat_decision *out, const struct pol_endpoint *audit,
    const struct pol_endpoint *unf, const struct pol_endpoint *first,
    const struct moat_caller *c, const struct pol_req *req)
{
	if (audit != NULL) {
		out->audit = true;
		out->l7 = audit->l7 != POL_L7_NONE;
		out->tls_skip = audit->tls_skip;
		return allowed(out, audit, c, req);
	}
	if (unf != NULL)
		return verdict(out, MOAT_REASON_L7_UNENFORCED, unf, c);
	if (first != NULL)
		return verdict(out, MOAT_REASON_BINARY, first, c);
	return verdict(out, MOAT_REASON_NO_ENDPOINT, NULL, c);
}

int
moat_policy_decide(const struct moat_policy *p, const struct moat_caller *c,
    const char *host, uint16_t port, struct moat_decision *out)
{
	const struct pol_endpoint *first = NULL, *audit = NULL, *l7 = NULL;
	const struct pol_endpoint *unf = NULL;
	char buf[POL_HOST_MAX + 1];
	struct pol_req req;
	struct hits h;
	int r;

	if ((r = begin(p, host, port, &req, buf, sizeof(buf), out, c)) != 1)
		return r;
	/* Rules are sorted by key: the first full match is the smallest. */
	for (size_t i = 0; i < p->nrules; i++) {
		const struct pol_rule *ru = &p->rules[i];

		if (!rule_hits(ru, &req, port, &h))
			continue;
		if (audit == NULL)
			audit = h.audit;
		if (!caller_in(ru, c)) {
			if (first == NULL)
				first = h.l4 ? h.l4 : h.l7 ? h.l7 : h.unf;
			continue;
		}
		/* L4 allows every request: nothing to look at. */
		if (h.l4 != NULL) {
			out->tls_skip = h.l4->tls_skip;
			return allowed(out, h.l4, c, &req);
		}
		if (l7 == NULL)
			l7 = h.l7;
		if (unf == NULL)
			unf = h.unf;
	}
	if (l7 != NULL) {
		out->l7 = true;
		return allowed(out, l7, c, &req);
	}
	return fallback(out, audit, unf, first, c, &req);
}

/* What the L7 endpoints of the caller's policies said of a request. */
struct l7hits {
	const struct pol_endpoint *allow;
	const struct pol_endpoint *deny;
	const struct pol_endpoint *miss;
	const struct pol_endpoint *encslash;
	const struct pol_endpoint *wsonly;
	const struct pol_endpoint *lower;
};

/* Some servers upper-case the method ("delete" runs as DELETE), others
 * do not: rules cannot say what such a request does. */
static bool
lower_case_method(const char *m)
{
	for (; *m != '\0'; m++)
		if (*m >= 'a' && *m <= 'z')
			return true;
	return false;
}

static void
judge(const struct pol_endpoint *ep, const struct moat_l7_request *rq,
    const char *plain, struct l7hits *x)
{
	const struct pol_endpoint **slot = NULL;

	if (rq->encoded_slash && !ep->allow_encoded_slash) {
		slot = &x->encslash;
	} else if (lower_case_method(rq->method)) {
		slot = &x->lower;
	} else if (ep->l7 == POL_L7_WEBSOCKET && !rq->websocket) {
		slot = &x->wsonly;
	} else {
		switch (pol_l7_judge(ep, rq, plain)) {
		case POL_L7_ALLOW:
			slot = &x->allow;
			break;
		case POL_L7_DENIED:
			slot = &x->deny;
			break;
		case POL_L7_NOMATCH:
			slot = &x->miss;
			break;
		case POL_L7_SKIP:
			return;
		}
	}
	if (*slot == NULL)
		*slot = ep;
}

static int
l7_verdict(struct moat_decision *d, enum moat_verdict_reason why,
    const struct pol_endpoint *ep, const struct moat_l7_request *rq,
    const char *what)
{
	static const char *const access[] = { "", "read-only", "read-write",
		"full" };
	size_t off = 0;

	d->reason = why == MOAT_REASON_ALLOWED || ep->audit ?
	    MOAT_REASON_ALLOWED : why;
	d->allow = d->reason == MOAT_REASON_ALLOWED;
	d->audit = why != MOAT_REASON_ALLOWED && ep->audit;
	d->endpoint = ep;
	d->policy = ep->rule->key;
	d->l7 = true;
	if (why == MOAT_REASON_ALLOWED) {
		text_add(d->text, sizeof(d->text), &off, "%s %s allowed by "
		    "policy '%s'", rq->method, rq->path, d->policy);
		return MOAT_OK;
	}
	if (d->audit)
		text_add(d->text, sizeof(d->text), &off, "audit: ");
	text_add(d->text, sizeof(d->text), &off, "%s %s %s of ", rq->method,
	    rq->path, what);
	where(d, &off);
	text_add(d->text, sizeof(d->text), &off, " in policy '%s'",
	    d->policy);
	if (why == MOAT_REASON_L7_NOT_ALLOWED && ep->access != POL_ACCESS_NONE)
		text_add(d->text, sizeof(d->text), &off, " (access %s)",
		    access[ep->access]);
	if (d->audit)
		text_add(d->text, sizeof(d->text), &off, "; allowed and "
		    "logged (enforcement audit)");
	return MOAT_OK;
}

static int
decide_one(const struct moat_policy *p, const struct moat_caller *c,
    const char *host, uint16_t port, const struct moat_l7_request *rq,
    const char *plain, struct moat_decision *out)
{
	const struct pol_endpoint *first = NULL, *audit = NULL, *unf = NULL;
	struct l7hits x = { NULL, NULL, NULL, NULL, NULL, NULL };
	char buf[POL_HOST_MAX + 1];
	struct pol_req req;
	struct hits h;
	int r;

	if ((r = begin(p, host, port, &req, buf, sizeof(buf), out, c)) != 1)
		return r;
	for (size_t i = 0; i < p->nrules; i++) {
		const struct pol_rule *ru = &p->rules[i];

		if (!rule_hits(ru, &req, port, &h))
			continue;
		if (audit == NULL)
			audit = h.audit;
		if (!caller_in(ru, c)) {
			if (first == NULL)
				first = h.l4 ? h.l4 : h.l7 ? h.l7 : h.unf;
			continue;
		}
		if (h.l4 != NULL)
			return verdict(out, MOAT_REASON_ALLOWED, h.l4, c);
		if (unf == NULL)
			unf = h.unf;
		/* Every L7 endpoint of this policy on host:port. */
		for (size_t j = 0; j < ru->neps; j++) {
			const struct pol_endpoint *ep = &ru->eps[j];

			if ((ep->l7 == POL_L7_REST ||
			    ep->l7 == POL_L7_WEBSOCKET) && port_in(ep, port) &&
			    pol_host_match(&ep->host, &req))
				judge(ep, rq, plain, &x);
		}
	}
	/* A deny rule wins over every allow. */
	if (x.deny != NULL)
		return l7_verdict(out, MOAT_REASON_L7_DENY, x.deny, rq,
		    "matches a deny rule");
	if (x.encslash != NULL)
		return l7_verdict(out, MOAT_REASON_L7_DENY, x.encslash, rq,
		    "has an encoded slash (%2F or %5C), which is not allowed "
		    "(allow_encoded_slash)");
	if (x.lower != NULL)
		return l7_verdict(out, MOAT_REASON_L7_DENY, x.lower, rq,
		    "has a method in lower case, which some servers run as "
		    "its upper-case form; not allowed by the rules");
	if (x.allow != NULL)
		return l7_verdict(out, MOAT_REASON_ALLOWED, x.allow, rq, "");
	if (x.miss != NULL)
		return l7_verdict(out, MOAT_REASON_L7_NOT_ALLOWED, x.miss, rq,
		    "is not allowed by the rules");
	if (x.wsonly != NULL)
		return l7_verdict(out, MOAT_REASON_L7_NOT_ALLOWED, x.wsonly, rq,
		    "is not a WebSocket upgrade, the only request allowed");
	return fallback(out, audit, unf, first, c, &req);
}

/* The method a request names besides its own, upper-cased as servers
 * do (Rack, Express, Symfony); false when it is no HTTP method. */
static bool
override_method(const char *v, char *m, size_t mlen)
{
	size_t n = strlen(v);

	if (n == 0 || n >= mlen)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char ch = v[i] >= 'a' && v[i] <= 'z' ? (char)(v[i] - 32) : v[i];

		if (i < n && !((ch >= 'A' && ch <= 'Z') || ch == '-' ||
		    ch == '_'))
			return false;
		m[i] = ch;
	}
	return true;
}

/* Turn out into a denial of the request that says why. */
static void
refuse(struct moat_decision *out, const struct moat_l7_request *rq,
    const char *why)
{
	size_t off = 0;

	out->allow = false;
	out->audit = false;
	out->reason = MOAT_REASON_L7_NOT_ALLOWED;
	out->text[0] = '\0';
	text_add(out->text, sizeof(out->text), &off, "%s %s %s", rq->method,
	    rq->path, why);
}

/*
 * Decide the request as another method it names (an override header or
 * "_method"): 0 allowed (out may now carry an audit), 1 denied (out is
 * the denial).
 */
static int
decide_as(const struct moat_policy *p, const struct moat_caller *c,
    const char *host, uint16_t port, const struct moat_l7_request *rq,
    const char *plain, const char *value, const char *where_,
    struct moat_decision *out)
{
	struct moat_l7_request r2 = *rq;
	struct moat_decision d2;
	char m[33], why[128];
	size_t off;

	if (!override_method(value, m, sizeof(m))) {
		snprintf(why, sizeof(why), "names the method '%.32s' in %s, "
		    "which is not an HTTP method", value, where_);
		refuse(out, rq, why);
		return 1;
	}
	r2.method = m;
	memset(&d2, 0, sizeof(d2));
	decide_one(p, c, host, port, &r2, plain, &d2);
	if (!d2.allow || (d2.audit && !out->audit)) {
		*out = d2;
		off = strlen(out->text);
		text_add(out->text, sizeof(out->text), &off, " (named by %s "
		    "of a %s, which servers run as %s)", where_, rq->method, m);
	}
	return d2.allow ? 0 : 1;
}

int
moat_policy_decide_request(const struct moat_policy *p,
    const struct moat_caller *c, const char *host, uint16_t port,
    const struct moat_l7_request *rq, struct moat_decision *out)
{
	char plain[8192 + 16], name[16], value[64];
	const char *q = rq->query, *pl = plain;
	int r, k;

	/* A server may route on the path without its ";parameters". */
	k = pol_l7_plain_path(rq->path, plain, sizeof(plain));
	if ((r = decide_one(p, c, host, port, rq, k > 0 ? pl : NULL,
	    out)) != MOAT_OK || !out->allow || !out->l7)
		return r;
	if (k < 0) {
		refuse(out, rq, "is too long to be decided");
		return MOAT_OK;
	}
	/*
	 * Servers honour a method named elsewhere (X-HTTP-Method-Override
	 * and its kin, Rails' and Laravel's "_method"): the request must be
	 * allowed as that method too.
	 */
	for (size_t i = 0; i < rq->noverrides; i++)
		if (decide_as(p, c, host, port, rq, pl, rq->overrides[i],
		    "a method-override header", out) != 0)
			return MOAT_OK;
	while (q != NULL && moat_l7_query_next(&q, name, sizeof(name), value,
	    sizeof(value)))
		if (strcmp(name, "_method") == 0 && decide_as(p, c, host, port,
		    rq, pl, value, "the _method parameter", out) != 0)
			return MOAT_OK;
	return MOAT_OK;
}
