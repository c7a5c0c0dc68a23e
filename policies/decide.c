/*
 * The decision: one function for `moat policy check`, `moat policy
 * explain` and the proxy. It never allocates: hosts were lowercased and
 * split, addresses parsed and binary paths resolved when the policy was
 * loaded, and the request's host is normalised into a stack buffer.
 */
#include <stdarg.h>
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

static void
l7_fields(struct moat_decision *d, size_t *off, const struct pol_endpoint *ep)
{
	static const char *const access[] = { "", "read-only", "read-write",
		"full" };
	const char *sep = "";

	if (ep->protocol != NULL && ep->protocol[0] != '\0') {
		text_add(d->text, sizeof(d->text), off, "protocol %s",
		    ep->protocol);
		sep = ", ";
	}
	if (ep->access != POL_ACCESS_NONE) {
		text_add(d->text, sizeof(d->text), off, "%saccess %s", sep,
		    access[ep->access]);
		sep = ", ";
	}
	if (ep->has_rules) {
		text_add(d->text, sizeof(d->text), off, "%srules", sep);
		sep = ", ";
	}
	if (ep->path != NULL)
		text_add(d->text, sizeof(d->text), off, "%spath %s", sep,
		    ep->path);
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
		text_add(d->text, sizeof(d->text), &off, " is in policy '%s' "
		    "with L7 rules (", d->policy);
		l7_fields(d, &off, ep);
		text_add(d->text, sizeof(d->text), &off, "); L7 rules are "
		    "not enforced yet, so the connection is denied rather "
		    "than allowed unchecked");
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

int
moat_policy_decide(const struct moat_policy *p, const struct moat_caller *c,
    const char *host, uint16_t port, struct moat_decision *out)
{
	const struct pol_endpoint *first = NULL, *audit = NULL, *l7 = NULL;
	char buf[POL_HOST_MAX + 1];
	struct pol_req req;

	out->allow = false;
	out->audit = false;
	out->text[0] = '\0';
	out->port = port;
	moat_strlcpy(out->host, host != NULL ? host : "", sizeof(out->host));
	if (p == NULL || p->nrules == 0)
		return verdict(out, MOAT_REASON_NO_POLICIES, NULL, c);
	if (!pol_req_init(&req, host, buf, sizeof(buf)))
		return verdict(out, MOAT_REASON_BAD_HOST, NULL, c);
	moat_strlcpy(out->host, req.name, sizeof(out->host));
	/* Rules are sorted by key: the first full match is the smallest. */
	for (size_t i = 0; i < p->nrules; i++) {
		const struct pol_rule *r = &p->rules[i];
		const struct pol_endpoint *hit = NULL, *hit7 = NULL;

		for (size_t j = 0; j < r->neps; j++) {
			const struct pol_endpoint *ep = &r->eps[j];

			if (!port_in(ep, port) || !pol_host_match(&ep->host,
			    &req))
				continue;
			if (ep->l7) {
				if (hit7 == NULL)
					hit7 = ep;
				continue;
			}
			if (hit == NULL)
				hit = ep;
			if (audit == NULL && ep->audit)
				audit = ep;
		}
		if (hit == NULL && hit7 == NULL)
			continue;
		if (caller_in(r, c)) {
			if (hit != NULL)
				return allowed(out, hit, c, &req);
			/* An L4 endpoint of a later policy may still allow. */
			if (l7 == NULL)
				l7 = hit7;
			continue;
		}
		if (first == NULL)
			first = hit != NULL ? hit : hit7;
	}
	if (audit != NULL) {
		out->audit = true;
		return allowed(out, audit, c, &req);
	}
	if (l7 != NULL)
		return verdict(out, MOAT_REASON_L7_UNENFORCED, l7, c);
	if (first != NULL)
		return verdict(out, MOAT_REASON_BINARY, first, c);
	return verdict(out, MOAT_REASON_NO_ENDPOINT, NULL, c);
}
