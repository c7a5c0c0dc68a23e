/*
 * L7 rules of an endpoint: loading `rules` and `deny_rules` into the
 * snapshot's form, and judging one request against one endpoint.
 *
 * Paths are globs on the canonical path (policies/canon.c): `*` matches
 * within one segment, `**` as a whole segment any number of segments.
 * Methods match exactly or `*`; an allowed GET allows HEAD (and a denied
 * GET denies it). Query matchers map a decoded parameter name to a glob
 * or {"any": [globs]}: in an allow rule the parameter must be present and
 * every value must match; in a deny rule one matching value fires, and a
 * missing parameter means the rule does not apply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/internal.h"

#define QBUF 8192 /* a request head is at most 8 KiB */

static void
rule_clear(struct pol_l7rule *r)
{
	free(r->method);
	free(r->path);
	free(r->segs);
	for (size_t i = 0; i < r->nquery; i++) {
		free(r->query[i].name);
		for (size_t j = 0; j < r->query[i].nglobs; j++)
			free(r->query[i].globs[j]);
		free(r->query[i].globs);
	}
	free(r->query);
}

void
pol_l7_clear(struct pol_endpoint *ep)
{
	for (size_t i = 0; i < ep->nallow; i++)
		rule_clear(&ep->allow[i]);
	for (size_t i = 0; i < ep->ndeny; i++)
		rule_clear(&ep->deny[i]);
	free(ep->allow);
	free(ep->deny);
	free(ep->psel);
	ep->allow = ep->deny = NULL;
	ep->nallow = ep->ndeny = 0;
}

bool
pol_l7_path_compile(const char *raw, char **path, struct pol_seg **segs,
    size_t *nsegs, char *err, size_t errlen)
{
	char buf[4200], why[128];
	size_t plen;
	bool enc;
	int r;

	*path = NULL;
	*segs = NULL;
	if (strcmp(raw, "**") == 0 || strcmp(raw, "*") == 0)
		raw = "/**";
	if (raw[0] != '/') {
		snprintf(err, errlen, "'%s' must start with '/'", raw);
		return false;
	}
	if (strchr(raw, '?') != NULL) {
		snprintf(err, errlen, "'%s': a path glob has no query (use "
		    "query matchers)", raw);
		return false;
	}
	r = moat_l7_canon(raw, strlen(raw), buf, sizeof(buf), &plen, &enc,
	    why, sizeof(why));
	if (r != MOAT_OK) {
		snprintf(err, errlen, "'%s': %s", raw, why);
		return false;
	}
	for (const char *p = buf; (p = strstr(p, "**")) != NULL; p += 2)
		if (p[-1] != '/' || (p[2] != '/' && p[2] != '\0')) {
			snprintf(err, errlen, "'%s': '**' must be a whole "
			    "segment ('/**/', or '/**' at the end); use '*' "
			    "within a segment", raw);
			return false;
		}
	if ((*path = strdup(buf)) == NULL ||
	    !pol_segs_compile(*path, segs, nsegs)) {
		free(*path);
		*path = NULL;
		snprintf(err, errlen, "out of memory");
		return false;
	}
	return true;
}

static bool
method_ok(const char *m)
{
	if (strcmp(m, "*") == 0)
		return true;
	if (*m == '\0' || strlen(m) > 32)
		return false;
	for (; *m != '\0'; m++)
		if (!((*m >= 'A' && *m <= 'Z') || *m == '_' || *m == '-'))
			return false;
	return true;
}

static void
load_query(struct pol_ctx *c, json_t *q, const char *path,
    struct pol_l7rule *r)
{
	char p[POL_JPATH];
	const char *k;
	json_t *v, *g;
	size_t i;

	if ((r->query = pol_calloc(c, json_object_size(q) + 1,
	    sizeof(*r->query))) == NULL)
		return;
	json_object_foreach(q, k, v) {
		struct pol_qmatch *m = &r->query[r->nquery];
		json_t *any = json_is_object(v) ? json_object_get(v, "any") :
		    NULL;

		pol_pathf(p, sizeof(p), "%s.%s", path, k);
		if (json_is_object(v)) {
			static const char *const keys[] = { "any", NULL };

			pol_check_keys(c, v, p, keys);
			if (!json_is_array(any) || json_array_size(any) == 0) {
				pol_err(c, p, "expected a glob string or "
				    "{\"any\": [globs]}");
				continue;
			}
		} else if (!json_is_string(v)) {
			pol_err(c, p, "expected a glob string or {\"any\": "
			    "[globs]}");
			continue;
		}
		m->name = pol_strdup(c, k);
		m->globs = pol_calloc(c, any != NULL ? json_array_size(any) :
		    1, sizeof(char *));
		if (m->name == NULL || m->globs == NULL)
			return;
		r->nquery++;
		if (any == NULL) {
			m->globs[m->nglobs++] = pol_strdup(c,
			    json_string_value(v));
			continue;
		}
		json_array_foreach(any, i, g) {
			if (!json_is_string(g)) {
				pol_pathf(p, sizeof(p), "%s.%s.any[%zu]", path,
				    k, i);
				pol_err(c, p, "expected a glob string");
				continue;
			}
			m->globs[m->nglobs++] = pol_strdup(c,
			    json_string_value(g));
		}
	}
}

/* The L7 kind of an endpoint is known; can this rule be enforced? */
static void
load_rule(struct pol_ctx *c, json_t *m, const char *q, struct pol_l7rule *r,
    struct pol_endpoint *ep)
{
	static const char *const other[] = { "command", "operation_type",
		"operation_name", "fields", "params", NULL };
	char p[POL_JPATH], err[512];
	json_t *v;

	if ((v = pol_get(c, m, "method", q, JSON_STRING)) != NULL) {
		const char *s = json_string_value(v);

		pol_path(p, sizeof(p), q, "method");
		if (ep->l7 == POL_L7_WEBSOCKET &&
		    strcmp(s, "WEBSOCKET_TEXT") == 0) {
			ep->l7 = POL_L7_UNENFORCED;
			ep->l7why = "WebSocket frames (WEBSOCKET_TEXT) are not "
			    "inspected";
		} else if (!method_ok(s)) {
			pol_err(c, p, "'%s' is not an HTTP method (upper case) "
			    "or '*'", s);
		} else if (strcmp(s, "*") != 0) {
			r->method = pol_strdup(c, s);
		}
	}
	if ((v = pol_get(c, m, "path", q, JSON_STRING)) != NULL) {
		pol_path(p, sizeof(p), q, "path");
		if (!pol_l7_path_compile(json_string_value(v), &r->path,
		    &r->segs, &r->nsegs, err, sizeof(err)))
			pol_err(c, p, "%s", err);
	}
	if ((v = pol_get(c, m, "query", q, JSON_OBJECT)) != NULL) {
		pol_path(p, sizeof(p), q, "query");
		load_query(c, v, p, r);
	}
	for (size_t i = 0; other[i] != NULL; i++)
		if (json_object_get(m, other[i]) != NULL &&
		    (ep->l7 == POL_L7_REST || ep->l7 == POL_L7_WEBSOCKET)) {
			pol_path(p, sizeof(p), q, other[i]);
			pol_err(c, p, "not used by protocol %s (it matches "
			    "method, path and query)", ep->protocol);
		}
}

void
pol_l7_load(struct pol_ctx *c, json_t *arr, const char *path, bool allow,
    struct pol_endpoint *ep)
{
	static const char *const match_keys[] = { "method", "path", "query",
		"command", "operation_type", "operation_name", "fields",
		"params", NULL };
	struct pol_l7rule *v;
	char p[POL_JPATH], q[POL_JPATH];
	json_t *e, *m;
	size_t i;

	if ((v = pol_calloc(c, json_array_size(arr) + 1, sizeof(*v))) == NULL)
		return;
	if (allow)
		ep->allow = v;
	else
		ep->deny = v;
	json_array_foreach(arr, i, e) {
		pol_pathf(p, sizeof(p), "%s[%zu]", path, i);
		if (!json_is_object(e)) {
			pol_err(c, p, "expected an object");
			continue;
		}
		m = e;
		pol_pathf(q, sizeof(q), "%s", p);
		if (allow) {
			static const char *const k[] = { "allow", NULL };

			pol_check_keys(c, e, p, k);
			pol_pathf(q, sizeof(q), "%s.allow", p);
			if ((m = json_object_get(e, "allow")) == NULL) {
				pol_err(c, p, "a rule needs an \"allow\" "
				    "object");
				continue;
			}
			if (!json_is_object(m)) {
				pol_err(c, q, "expected an object");
				continue;
			}
		}
		pol_check_keys(c, m, q, match_keys);
		load_rule(c, m, q, &v[allow ? ep->nallow++ : ep->ndeny++], ep);
	}
}

static bool
method_match(const char *rule, const char *req)
{
	if (rule == NULL)
		return true;
	if (strcmp(rule, req) == 0)
		return true;
	/* HEAD is a GET without the body. */
	return strcmp(rule, "GET") == 0 && strcmp(req, "HEAD") == 0;
}

static bool
glob_any(const struct pol_qmatch *m, const char *v)
{
	for (size_t i = 0; i < m->nglobs; i++)
		if (m->globs[i] != NULL && pol_glob_segment(m->globs[i],
		    strlen(m->globs[i]), v, strlen(v)))
			return true;
	return false;
}

/*
 * allow: the parameter is present and all its values match. deny: one
 * of its values matches.
 */
static bool
query_match(const struct pol_qmatch *m, const char *query, bool allow)
{
	static __thread char name[QBUF], value[QBUF];
	const char *q = query != NULL ? query : "";
	bool seen = false;

	while (moat_l7_query_next(&q, name, sizeof(name), value,
	    sizeof(value))) {
		if (strcmp(name, m->name) != 0)
			continue;
		seen = true;
		if (glob_any(m, value) != allow)
			return !allow;
	}
	return allow && seen;
}

static bool
rule_match(const struct pol_l7rule *r, const struct moat_l7_request *rq,
    const char *path, bool allow)
{
	if (!method_match(r->method, rq->method))
		return false;
	if (r->path != NULL && !pol_segs_match(r->segs, r->nsegs, path))
		return false;
	for (size_t i = 0; i < r->nquery; i++)
		if (!query_match(&r->query[i], rq->query, allow))
			return false;
	return true;
}

static bool
access_allows(enum pol_access a, const char *m)
{
	static const char *const ro[] = { "GET", "HEAD", "OPTIONS", NULL };
	static const char *const rw[] = { "POST", "PUT", "PATCH", NULL };

	if (a == POL_ACCESS_FULL)
		return true;
	for (size_t i = 0; a >= POL_ACCESS_READ_ONLY && ro[i] != NULL; i++)
		if (strcmp(ro[i], m) == 0)
			return true;
	for (size_t i = 0; a >= POL_ACCESS_READ_WRITE && rw[i] != NULL; i++)
		if (strcmp(rw[i], m) == 0)
			return true;
	return false;
}

static enum pol_l7verdict
judge_path(const struct pol_endpoint *ep, const struct moat_l7_request *rq,
    const char *path)
{
	if (ep->psel != NULL && !pol_segs_match(ep->psel, ep->npsel, path))
		return POL_L7_SKIP;
	for (size_t i = 0; i < ep->ndeny; i++)
		if (rule_match(&ep->deny[i], rq, path, false))
			return POL_L7_DENIED;
	if (ep->access != POL_ACCESS_NONE && access_allows(ep->access,
	    rq->method))
		return POL_L7_ALLOW;
	for (size_t i = 0; i < ep->nallow; i++)
		if (rule_match(&ep->allow[i], rq, path, true))
			return POL_L7_ALLOW;
	return POL_L7_NOMATCH;
}

enum pol_l7verdict
pol_l7_judge(const struct pol_endpoint *ep, const struct moat_l7_request *rq,
    const char *plain)
{
	enum pol_l7verdict a = judge_path(ep, rq, rq->path), b;

	if (plain == NULL)
		return a;
	b = judge_path(ep, rq, plain);
	if (a == POL_L7_DENIED || b == POL_L7_DENIED)
		return POL_L7_DENIED;
	return a == b ? a : POL_L7_NOMATCH;
}
