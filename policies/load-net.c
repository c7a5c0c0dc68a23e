/*
 * network_policies: named rules, their endpoints and binaries. Every
 * check happens while compiling into the snapshot's form, with the
 * endpoint's JSON path in each message.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "policies/internal.h"

static const char *const rule_keys[] = { "name", "endpoints", "binaries",
	NULL };

static const char *const ep_keys[] = { "host", "port", "ports", "protocol",
	"tls", "enforcement", "access", "rules", "deny_rules", "allowed_ips",
	"path", "allow_encoded_slash", "websocket_credential_rewrite",
	"request_body_credential_rewrite", "allow_uninspected_credentials",
	"public_only",
	/* OpenShell-only features moat does not implement: ignored */
	"credential_signing", "signing_service", "signing_region",
	"credential_binding", "persisted_queries", "graphql_persisted_queries",
	"graphql_max_body_bytes", "json_rpc", "mcp", NULL };
#define EP_FIRST_IGNORED 16

static const char *const l7_protocols[] = { "rest", "websocket", "graphql",
	"mcp", "json-rpc", "sql", NULL };

static bool
in_list(const char *const *l, const char *s)
{
	for (size_t i = 0; l[i] != NULL; i++)
		if (strcmp(l[i], s) == 0)
			return true;
	return false;
}

void
pol_rule_clear(struct pol_rule *r)
{
	for (size_t i = 0; i < r->neps; i++) {
		struct pol_endpoint *ep = &r->eps[i];

		pol_host_clear(&ep->host);
		free(ep->ports);
		free(ep->protocol);
		free(ep->path);
		free(ep->allowed);
		pol_l7_clear(ep);
	}
	for (size_t i = 0; i < r->nbins; i++)
		pol_binary_clear(&r->bins[i]);
	free(r->eps);
	free(r->bins);
	free(r->key);
	free(r->name);
	memset(r, 0, sizeof(*r));
}

static bool
port_ok(struct pol_ctx *c, json_t *v, const char *path, uint16_t *out)
{
	if (!json_is_integer(v)) {
		pol_err(c, path, "expected an integer port");
		return false;
	}
	if (json_integer_value(v) < 1 || json_integer_value(v) > 65535) {
		pol_err(c, path, "has invalid port %lld; expected 1..=65535",
		    (long long)json_integer_value(v));
		return false;
	}
	*out = (uint16_t)json_integer_value(v);
	return true;
}

static void
load_ports(struct pol_ctx *c, json_t *obj, struct pol_endpoint *ep,
    const char *path, const char *host)
{
	json_t *port = json_object_get(obj, "port");
	json_t *ports = json_object_get(obj, "ports"), *v;
	char p[POL_JPATH];
	size_t i;

	if (port != NULL && ports != NULL) {
		pol_err(c, path, "port and ports are mutually exclusive");
		return;
	}
	if (ports != NULL && !json_is_array(ports)) {
		pol_path(p, sizeof(p), path, "ports");
		pol_err(c, p, "expected an array of ports");
		return;
	}
	if (port == NULL && json_array_size(ports) == 0) {
		pol_err(c, path, "endpoint '%s' must declare at least one "
		    "port", host);
		return;
	}
	if (port != NULL) {
		if ((ep->ports = pol_calloc(c, 1, sizeof(uint16_t))) == NULL)
			return;
		pol_path(p, sizeof(p), path, "port");
		if (port_ok(c, port, p, &ep->ports[0]))
			ep->nports = 1;
		return;
	}
	ep->ports = pol_calloc(c, json_array_size(ports), sizeof(uint16_t));
	if (ep->ports == NULL)
		return;
	json_array_foreach(ports, i, v) {
		pol_pathf(p, sizeof(p), "%s.ports[%zu]", path, i);
		if (port_ok(c, v, p, &ep->ports[ep->nports]))
			ep->nports++;
	}
}

static void
load_allowed_ips(struct pol_ctx *c, json_t *obj, struct pol_endpoint *ep,
    const char *path)
{
	json_t *arr = pol_get(c, obj, "allowed_ips", path, JSON_ARRAY), *v;
	const char *s, *over;
	char p[POL_JPATH];
	size_t i;

	if (arr == NULL || json_array_size(arr) == 0)
		return;
	ep->allowed = pol_calloc(c, json_array_size(arr), sizeof(*ep->allowed));
	if (ep->allowed == NULL)
		return;
	json_array_foreach(arr, i, v) {
		struct pol_cidr *cidr = &ep->allowed[ep->nallowed];

		pol_pathf(p, sizeof(p), "%s.allowed_ips[%zu]", path, i);
		if ((s = json_string_value(v)) == NULL) {
			pol_err(c, p, "expected a string");
			continue;
		}
		if (!pol_cidr_parse(s, cidr)) {
			pol_err(c, p, "'%s' is not an IP address or CIDR", s);
			continue;
		}
		/* OpenShell issue #814: such entries load and never work. */
		if ((over = pol_cidr_blocked_overlap(cidr)) != NULL) {
			pol_err(c, p, "'%s' overlaps %s, which moat always "
			    "blocks; this entry can never work as written", s,
			    over);
			continue;
		}
		if (cidr->prefix < 96 + 16 && strchr(s, ':') == NULL)
			pol_warn(c, p, "'%s' is very broad (shorter than /16)",
			    s);
		ep->nallowed++;
	}
}

/* The L7 kind of a protocol; unenforced ones say why in *why. */
static enum pol_l7kind
l7_kind(const char *proto, const char **why)
{
	static const char *const unenforced[][2] = {
		{ "graphql", "protocol graphql is not enforced by moat" },
		{ "mcp", "protocol mcp is not enforced by moat" },
		{ "json-rpc", "protocol json-rpc is not enforced by moat" },
		{ "sql", "protocol sql is not enforced by moat" },
	};

	if (strcmp(proto, "rest") == 0)
		return POL_L7_REST;
	if (strcmp(proto, "websocket") == 0)
		return POL_L7_WEBSOCKET;
	for (size_t i = 0; i < sizeof(unenforced) / sizeof(*unenforced); i++)
		if (strcmp(proto, unenforced[i][0]) == 0) {
			*why = unenforced[i][1];
			return POL_L7_UNENFORCED;
		}
	return POL_L7_NONE;
}

static void
load_tls_enforcement(struct pol_ctx *c, json_t *obj, struct pol_endpoint *ep,
    const char *path)
{
	char p[POL_JPATH];
	const char *s;
	json_t *v;

	if ((v = pol_get(c, obj, "tls", path, JSON_STRING)) != NULL) {
		s = json_string_value(v);
		pol_path(p, sizeof(p), path, "tls");
		if (strcmp(s, "skip") == 0)
			ep->tls_skip = true;
		else if (strcmp(s, "terminate") == 0 ||
		    strcmp(s, "passthrough") == 0)
			pol_warn(c, p, "'%s' is deprecated and has no effect "
			    "(TLS is detected per connection; only 'skip' "
			    "changes anything)", s);
		else
			pol_err(c, p, "'%s' is not one of skip, terminate, "
			    "passthrough", s);
	}
	/* moat departs from OpenShell: enforce unless audit is asked for. */
	if ((v = pol_get(c, obj, "enforcement", path, JSON_STRING)) != NULL) {
		s = json_string_value(v);
		pol_path(p, sizeof(p), path, "enforcement");
		if (strcmp(s, "audit") == 0)
			ep->audit = true;
		else if (strcmp(s, "enforce") != 0)
			pol_err(c, p, "'%s' is not one of enforce, audit", s);
	}
}

static void
load_access(struct pol_ctx *c, json_t *obj, struct pol_endpoint *ep,
    const char *path)
{
	char p[POL_JPATH];
	const char *s;
	json_t *v;

	if ((v = pol_get(c, obj, "access", path, JSON_STRING)) == NULL)
		return;
	s = json_string_value(v);
	pol_path(p, sizeof(p), path, "access");
	if (strcmp(s, "read-only") == 0)
		ep->access = POL_ACCESS_READ_ONLY;
	else if (strcmp(s, "read-write") == 0)
		ep->access = POL_ACCESS_READ_WRITE;
	else if (strcmp(s, "full") == 0)
		ep->access = POL_ACCESS_FULL;
	else
		pol_err(c, p, "'%s' is not one of read-only, read-write, full",
		    s);
	/* OpenShell's websocket presets limit frames, which moat relays. */
	if (ep->l7 == POL_L7_WEBSOCKET && (ep->access == POL_ACCESS_READ_ONLY ||
	    ep->access == POL_ACCESS_READ_WRITE)) {
		ep->l7 = POL_L7_UNENFORCED;
		ep->l7why = "access read-only/read-write on a websocket "
		    "endpoint limits frames, which moat does not inspect";
	}
}

static void
load_l7(struct pol_ctx *c, json_t *obj, struct pol_endpoint *ep,
    const char *path)
{
	json_t *v, *rules, *deny;
	const char *s;
	char p[POL_JPATH], err[512];

	ep->protocol = pol_strdup(c, "");
	if ((v = pol_get(c, obj, "protocol", path, JSON_STRING)) != NULL) {
		s = json_string_value(v);
		pol_path(p, sizeof(p), path, "protocol");
		if (*s != '\0' && strcmp(s, "tcp") != 0 &&
		    !in_list(l7_protocols, s))
			pol_err(c, p, "unknown protocol '%s'; expected tcp, "
			    "rest, websocket, graphql, mcp, json-rpc or sql", s);
		free(ep->protocol);
		ep->protocol = pol_strdup(c, s);
	}
	if (ep->protocol != NULL)
		ep->l7 = l7_kind(ep->protocol, &ep->l7why);
	load_tls_enforcement(c, obj, ep, path);
	load_access(c, obj, ep, path);
	rules = pol_get(c, obj, "rules", path, JSON_ARRAY);
	deny = pol_get(c, obj, "deny_rules", path, JSON_ARRAY);
	pol_path(p, sizeof(p), path, "rules");
	if (rules != NULL && json_array_size(rules) == 0)
		pol_err(c, p, "rules must not be empty; list at least one "
		    "allow rule or use access");
	if (rules != NULL) {
		ep->has_rules = true;
		pol_l7_load(c, rules, p, true, ep);
	}
	if (json_object_get(obj, "rules") != NULL &&
	    json_object_get(obj, "access") != NULL)
		pol_err(c, path, "rules and access are mutually exclusive");
	pol_path(p, sizeof(p), path, "deny_rules");
	if (deny != NULL && json_array_size(deny) == 0)
		pol_err(c, p, "deny_rules must not be empty; remove it");
	if (deny != NULL) {
		pol_l7_load(c, deny, p, false, ep);
		if (ep->l7 == POL_L7_NONE)
			pol_err(c, p, "deny_rules require protocol (L7 "
			    "inspection must be enabled)");
		else if (rules == NULL && ep->access == POL_ACCESS_NONE)
			pol_err(c, p, "deny_rules require rules or access");
	}
	if (ep->l7 != POL_L7_NONE && rules == NULL &&
	    json_object_get(obj, "access") == NULL)
		pol_err(c, path, "protocol requires rules or access to define "
		    "allowed traffic");
	if (ep->l7 == POL_L7_NONE && (rules != NULL ||
	    json_object_get(obj, "access") != NULL))
		pol_err(c, path, "rules and access need an L7 protocol (rest "
		    "or websocket); without one they would have no effect");
	if ((v = pol_get(c, obj, "path", path, JSON_STRING)) != NULL) {
		char *sel = NULL;

		pol_path(p, sizeof(p), path, "path");
		if (ep->l7 == POL_L7_NONE)
			pol_err(c, p, "a path selector needs an L7 protocol");
		else if (!pol_l7_path_compile(json_string_value(v), &sel,
		    &ep->psel, &ep->npsel, err, sizeof(err)))
			pol_err(c, p, "%s", err);
		ep->path = sel;
	}
	if (ep->tls_skip && ep->l7 != POL_L7_NONE)
		pol_err(c, path, "tls 'skip' relays TLS untouched, so L7 rules "
		    "cannot be enforced; drop one of them");
	if (ep->l7 == POL_L7_UNENFORCED)
		pol_warn(c, path, "%s: every connection this endpoint matches "
		    "is denied (fail closed)", ep->l7why);
}

/*
 * An endpoint that can never pass the SSRF checks (a loopback or metadata
 * host, a literal outside its own allowed_ips, a control-plane port)
 * loads, as in OpenShell, so the rest of the policy works; check says
 * which part is dead.
 */
static void
lint_endpoint(struct pol_ctx *c, json_t *obj, const struct pol_endpoint *ep,
    const char *path)
{
	char p[POL_JPATH], why[512];
	const char *what;

	pol_path(p, sizeof(p), path, "host");
	if (pol_endpoint_never(ep, why, sizeof(why)))
		pol_warn(c, p, "%s; the endpoint loads, but every connection "
		    "to it is denied", why);
	for (size_t i = 0; i < ep->nports; i++) {
		if ((what = pol_endpoint_port_refused(ep, ep->ports[i])) ==
		    NULL)
			continue;
		if (json_object_get(obj, "port") != NULL)
			pol_path(p, sizeof(p), path, "port");
		else
			pol_pathf(p, sizeof(p), "%s.ports[%zu]", path, i);
		pol_warn(c, p, "%u is a blocked control-plane port (%s); "
		    "connections to it are always denied", (unsigned)
		    ep->ports[i], what);
	}
}

static void
load_endpoint(struct pol_ctx *c, json_t *obj, struct pol_endpoint *ep,
    const char *path)
{
	char p[POL_JPATH], err[512];
	const char *host = "";
	bool host_ok;
	json_t *v;

	if (!json_is_object(obj)) {
		pol_err(c, path, "expected an object");
		return;
	}
	pol_check_keys(c, obj, path, ep_keys);
	for (size_t i = EP_FIRST_IGNORED; ep_keys[i] != NULL; i++)
		if (json_object_get(obj, ep_keys[i]) != NULL) {
			pol_path(p, sizeof(p), path, ep_keys[i]);
			pol_warn(c, p, "not supported by moat; ignored");
		}
	if ((v = pol_get(c, obj, "host", path, JSON_STRING)) != NULL)
		host = json_string_value(v);
	load_allowed_ips(c, obj, ep, path);
	pol_path(p, sizeof(p), path, "host");
	if (!(host_ok = pol_host_compile(host, &ep->host, err, sizeof(err))))
		pol_err(c, p, "%s", err);
	else if (ep->host.kind == POL_HOST_ANY &&
	    json_array_size(json_object_get(obj, "allowed_ips")) == 0)
		pol_err(c, p, "endpoint host must not be empty unless "
		    "allowed_ips is set");
	load_ports(c, obj, ep, path, host);
	if (host_ok)
		lint_endpoint(c, obj, ep, path);
	load_l7(c, obj, ep, path);
	if ((v = pol_get(c, obj, "allow_encoded_slash", path, JSON_TRUE)))
		ep->allow_encoded_slash = json_is_true(v);
	if ((v = pol_get(c, obj, "public_only", path, JSON_TRUE)) != NULL &&
	    (ep->public_only = json_is_true(v)) &&
	    ep->host.kind != POL_HOST_EXACT) {
		pol_path(p, sizeof(p), path, "public_only");
		pol_warn(c, p, "has no effect here: it narrows exact host "
		    "names (wildcards already reach public addresses only, "
		    "an IP-literal host is its own address)");
	}
	pol_get(c, obj, "websocket_credential_rewrite", path, JSON_TRUE);
	pol_get(c, obj, "request_body_credential_rewrite", path, JSON_TRUE);
	pol_get(c, obj, "allow_uninspected_credentials", path, JSON_TRUE);
}

static void
resolve_binary(struct pol_ctx *c, struct pol_rule *r, struct pol_binary *b,
    const char *path)
{
	char err[512];

	if (c->rootfd == -1 || b->glob)
		return;
	switch (pol_binary_resolve(c->rootfd, b->path, &b->resolved, err,
	    sizeof(err))) {
	case POL_RESOLVE_SAME:
		break;
	case POL_RESOLVE_LINK:
		r->any_symlink = true;
		pol_note(c, path, "%s is a symlink to %s; matches that "
		    "executable", b->path, b->resolved);
		break;
	case POL_RESOLVE_MISSING:
		pol_warn(c, path, "%s does not exist (yet)", b->path);
		break;
	case POL_RESOLVE_ERROR:
		pol_warn(c, path, "%s", err);
		break;
	}
}

/*
 * What a binary path risks: a place the sandbox can write (whatever is
 * put there gets the access), an owner that is the sandbox's own user,
 * an interpreter (every script it runs gets the access).
 */
static void
binary_risks(struct pol_ctx *c, const struct pol_binary *b,
    const char *path)
{
	const char *uid = c->p->run_as_user;
	char where[POL_MAX_PATH + 32];
	char *end = NULL;
	unsigned long long n = 0;

	if (uid != NULL && strcmp(uid, "sandbox") != 0)
		n = strtoull(uid, &end, 10);
	if (pol_binary_writable(b, (const char *const *)c->p->rw, where,
	    sizeof(where)))
		pol_warn(c, path, "%s is in %s, which the sandbox can write: "
		    "whatever a process puts there gets this policy's access "
		    "(trust on first use trusts it too)", b->path, where);
	else if (n > 0 && pol_binary_owned_by(c->rootfd, b, (uid_t)n, where,
	    sizeof(where)))
		pol_warn(c, path, "%s is owned by uid %s, the policy's "
		    "run_as_user: processes of that user can replace %s",
		    where, uid, b->path);
	if (moat_binary_is_interpreter(b->path) || (b->resolved != NULL &&
	    moat_binary_is_interpreter(b->resolved)))
		pol_note(c, path, "%s is an interpreter: every script it runs "
		    "gets this policy's access (moat sees the interpreter, not "
		    "the script)", b->path);
}

static void
load_binaries(struct pol_ctx *c, json_t *arr, struct pol_rule *r,
    const char *parent)
{
	static const char *const keys[] = { "path", "harness", NULL };
	char p[POL_JPATH], q[POL_JPATH], err[512];
	json_t *v, *pv;
	size_t i;

	if ((r->bins = pol_calloc(c, json_array_size(arr), sizeof(*r->bins))) ==
	    NULL)
		return;
	json_array_foreach(arr, i, v) {
		struct pol_binary *b = &r->bins[r->nbins];

		pol_pathf(p, sizeof(p), "%s.binaries[%zu]", parent, i);
		if (!json_is_object(v)) {
			pol_err(c, p, "expected an object");
			continue;
		}
		pol_check_keys(c, v, p, keys);
		pol_get(c, v, "harness", p, JSON_TRUE); /* legacy, ignored */
		pol_path(q, sizeof(q), p, "path");
		if ((pv = json_object_get(v, "path")) == NULL) {
			pol_err(c, p, "a binary needs a path");
			continue;
		}
		if (!json_is_string(pv)) {
			pol_err(c, q, "expected a string");
			continue;
		}
		if (!pol_binary_compile(json_string_value(pv), b, err,
		    sizeof(err))) {
			pol_err(c, q, "%s", err);
			continue;
		}
		r->nbins++;
		resolve_binary(c, r, b, q);
		binary_risks(c, b, q);
	}
}

static bool
key_ok(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)k[i]) && strchr("_.-", k[i]) ==
		    NULL)
			return false;
	return true;
}

static void
load_rule(struct pol_ctx *c, const char *key, json_t *obj, struct pol_rule *r)
{
	char p[POL_JPATH], q[POL_JPATH];
	json_t *eps, *bins, *v;
	size_t i;

	pol_pathf(p, sizeof(p), "network_policies.%s", key);
	r->key = pol_strdup(c, key);
	if (!key_ok(key))
		pol_err(c, p, "a policy key is 1..128 letters, digits, '_', "
		    "'.' or '-'");
	if (!json_is_object(obj)) {
		pol_err(c, p, "expected an object");
		return;
	}
	pol_check_keys(c, obj, p, rule_keys);
	v = pol_get(c, obj, "name", p, JSON_STRING);
	r->name = pol_strdup(c, v != NULL ? json_string_value(v) : key);
	eps = pol_get(c, obj, "endpoints", p, JSON_ARRAY);
	bins = pol_get(c, obj, "binaries", p, JSON_ARRAY);
	if (json_array_size(eps) == 0)
		pol_warn(c, p, "no endpoints; this policy allows nothing");
	else if (json_array_size(bins) == 0)
		pol_warn(c, p, "no binaries; no program can use this policy");
	r->eps = pol_calloc(c, json_array_size(eps), sizeof(*r->eps));
	if (r->eps == NULL)
		return;
	json_array_foreach(eps, i, v) {
		struct pol_endpoint *ep = &r->eps[r->neps++];

		ep->rule = r;
		ep->index = i;
		pol_pathf(q, sizeof(q), "%s.endpoints[%zu]", p, i);
		load_endpoint(c, v, ep, q);
	}
	load_binaries(c, bins, r, p);
}

static int
rule_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pol_rule *)a)->key,
	    ((const struct pol_rule *)b)->key);
}

void
pol_load_network(struct pol_ctx *c, json_t *obj)
{
	struct moat_policy *p = c->p;
	const char *key;
	json_t *v;

	if (obj == NULL)
		return;
	if (!json_is_object(obj)) {
		pol_err(c, "network_policies", "expected an object");
		return;
	}
	p->rules = pol_calloc(c, json_object_size(obj), sizeof(*p->rules));
	if (p->rules == NULL)
		return;
	json_object_foreach(obj, key, v) {
		load_rule(c, key, v, &p->rules[p->nrules]);
		p->nrules++;
	}
	for (size_t i = 0; i < p->nrules; i++) {
		if (p->rules[i].key == NULL) {
			c->oom = true;
			return;
		}
		p->nendpoints += p->rules[i].neps;
	}
	/* The first match is then the lexicographically smallest key. */
	qsort(p->rules, p->nrules, sizeof(*p->rules), rule_cmp);
	for (size_t i = 0; i < p->nrules; i++)
		for (size_t j = 0; j < p->rules[i].neps; j++)
			p->rules[i].eps[j].rule = &p->rules[i];
}
