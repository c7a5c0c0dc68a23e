/*
 * L7 rules: the canonical path (traversal and encoding tricks never
 * reach an allowed path), method and path globs, query matchers, access
 * presets, deny over allow, HEAD as GET, audit, WebSocket endpoints,
 * protocols moat does not enforce (fail closed), and what loading says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/policy.h"
#include "tests/unit/policy_util.h"

/* Canonicalise target; "" (and why) when refused. */
static const char *
canon(const char *target, bool *enc)
{
	static char out[8192], why[128];
	size_t pl;
	bool e = false;

	if (moat_l7_canon(target, strlen(target), out, sizeof(out), &pl, &e,
	    why, sizeof(why)) != MOAT_OK)
		return "";
	if (enc != NULL)
		*enc = e;
	return out;
}

static void
test_canon(void)
{
	static const char *const same[][2] = {
		{ "/", "/" },
		{ "/a/b", "/a/b" },
		{ "/a/b/", "/a/b/" },
		{ "//a///b", "/a/b" },
		{ "/a/./b", "/a/b" },
		{ "/a/b/.", "/a/b/" },
		{ "/a/../b", "/b" },
		{ "/a/b/..", "/a/" },
		{ "/../../etc/passwd", "/etc/passwd" },
		{ "/public/../admin", "/admin" },
		{ "/public/%2e%2e/admin", "/admin" },
		{ "/public/%2E%2e/admin", "/admin" },
		{ "/public/.%2e/admin", "/admin" },
		{ "/%61dmin", "/admin" },
		{ "/a%7eb", "/a~b" },
		{ "/a%20b", "/a%20b" },
		{ "/a%3bb", "/a%3Bb" },
		{ "/q?x=1&y=%2F", "/q?x=1&y=%2F" },
		{ "/a/..?x=/../", "/?x=/../" },
	};
	static const char *const refused[] = {
		"", "a/b", "http://x/", "/a\\b", "/a%", "/a%4", "/a%zz",
		"/a%00b", "/..;/admin", "/a/..;x/b", "/a/.;/b", "/q?x=%g0",
	};
	bool enc = false;

	for (size_t i = 0; i < sizeof(same) / sizeof(*same); i++)
		is_str(canon(same[i][0], NULL), same[i][1], "canon %s",
		    same[i][0]);
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++)
		is_str(canon(refused[i], NULL), "", "canon refuses '%s'",
		    refused[i]);
	is_str(canon("/a%2fb", &enc), "/a%2Fb", "encoded slash kept, "
	    "uppercase");
	ok(enc, "... and reported");
	enc = false;
	canon("/a%5Cb", &enc);
	ok(enc, "encoded backslash reported");
	enc = false;
	canon("/a/b", &enc);
	ok(!enc, "no encoded slash reported for /a/b");
	is_str(canon("/x/..%2f..%2fadmin", NULL), "", "a dot segment between "
	    "encoded slashes is refused");
	{
		const char *q = "a=1&b=x%20y&c&d=e+f&&a=2";
		char n[64], v[64];
		int k = 0;
		char got[256] = "";

		while (moat_l7_query_next(&q, n, sizeof(n), v, sizeof(v)) &&
		    k++ < 10) {
			strcat(got, n);
			strcat(got, "=");
			strcat(got, v);
			strcat(got, ";");
		}
		is_str(got, "a=1;b=x y;c=;d=e f;a=2;", "query decoded");
	}
}

/* Decide a request; ov: the value of its method-override header. */
static struct moat_decision
req_ov(const struct moat_policy *p, const char *exe, const char *host,
    const char *method, const char *target, bool ws, const char *ov)
{
	static char buf[8192];
	const char *ovs[] = { ov };
	struct moat_caller c = { exe, NULL, 0, NULL, 0 };
	struct moat_l7_request rq = { method, NULL, NULL, false, ws, ovs,
	    ov != NULL ? 1 : 0 };
	struct moat_decision d;
	size_t pl = 0;
	char why[128];

	memset(&d, 0, sizeof(d));
	if (moat_l7_canon(target, strlen(target), buf, sizeof(buf), &pl,
	    &rq.encoded_slash, why, sizeof(why)) != MOAT_OK) {
		d.allow = false;
		d.reason = MOAT_REASON_L7_BAD_REQUEST;
		snprintf(d.text, sizeof(d.text), "%s", why);
		return d;
	}
	if (buf[pl] == '?')
		rq.query = buf + pl + 1;
	buf[pl] = '\0';
	rq.path = buf;
	moat_policy_decide_request(p, &c, host, 443, &rq, &d);
	return d;
}

static struct moat_decision
req(const struct moat_policy *p, const char *exe, const char *host,
    const char *method, const char *target, bool ws)
{
	return req_ov(p, exe, host, method, target, ws, NULL);
}

#define A(p, m, t) req(p, "/usr/bin/curl", "api.x.com", m, t, false).allow

#define OV(p, m, t, ov) req_ov(p, "/usr/bin/curl", "api.x.com", m, t, \
    false, ov)

/*
 * Where servers read a request differently from the rules, it must pass
 * every reading: ";parameters" (Tomcat, Jetty, Spring drop them before
 * routing), lower-case methods (some servers upper-case them), methods
 * named by override headers or "_method" (Rack, Express, Symfony).
 */
static void
test_readings(void)
{
	struct moat_policy *p;
	struct moat_decision d;

	p = P("{'version':1,'network_policies':{'f':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'rest',"
	    "'access':'full','deny_rules':[{'method':'DELETE'},"
	    "{'method':'GET','path':'/admin/**'}]}],"
	    "'binaries':[{'path':'/usr/bin/curl'}]}}}");
	ok(A(p, "GET", "/x") && !A(p, "DELETE", "/x"), "full with a deny rule");
	d = req(p, "/usr/bin/curl", "api.x.com", "delete", "/x", false);
	ok(!d.allow, "a lower-case method is denied");
	like_str(d.text, "delete /x has a method in lower case", "... saying "
	    "why");
	ok(!A(p, "Get", "/x"), "... any lower-case letter");
	ok(!A(p, "GET", "/admin;x=1/k") && !A(p, "GET", "/admin;/k") &&
	    !A(p, "GET", "/a;b/../admin;c/k"), "path parameters do not dodge "
	    "a deny rule");
	ok(A(p, "GET", "/pub;jsessionid=1/k") && A(p, "GET", "/;x/k"),
	    "... and pass where no rule minds");
	ok(!A(p, "GET", "/x?_method=DELETE") &&
	    !A(p, "GET", "/x?a=1&_method=delete"),
	    "a _method parameter is decided as its method");
	ok(A(p, "POST", "/x?_method=PUT"), "... which may be allowed");
	d = OV(p, "POST", "/x", "DELETE");
	ok(!d.allow, "an override header is decided as its method");
	like_str(d.text, "named by a method-override header of a POST",
	    "... saying so");
	ok(!OV(p, "POST", "/x", "del ete").allow &&
	    !OV(p, "POST", "/x", "").allow,
	    "an override that is no method is denied");
	ok(OV(p, "POST", "/x", "patch").allow, "an allowed override "
	    "passes (upper-cased as servers do)");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'g':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'rest','rules':["
	    "{'allow':{'method':'GET','path':'/files/*.txt'}}]}],"
	    "'binaries':[{'path':'/usr/bin/curl'}]}}}");
	ok(A(p, "GET", "/files/a.txt"), "allow glob");
	ok(!A(p, "GET", "/files/k.key;.txt"), "an allow glob must match the "
	    "path without its parameters too");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'rw':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'rest',"
	    "'access':'read-write'}],'binaries':[{'path':'/usr/bin/curl'}]}}}");
	ok(!OV(p, "POST", "/a", "DELETE").allow &&
	    !A(p, "POST", "/a?_method=DELETE"), "read-write: no DELETE, "
	    "however it is named");
	moat_policy_free(p);
}

static void
test_rules(void)
{
	struct moat_policy *p;
	struct moat_decision d;

	p = P("{'version':1,'network_policies':{'ro':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'rest',"
	    "'access':'read-only'}],'binaries':[{'path':'/usr/bin/curl'}]}}}");
	d = decide(p, "/usr/bin/curl", "api.x.com", 443);
	ok(d.allow && d.l7, "read-only endpoint: connection allowed, L7 on");
	ok(A(p, "GET", "/repos/a"), "read-only: GET allowed");
	ok(A(p, "HEAD", "/repos/a"), "read-only: HEAD allowed");
	ok(A(p, "OPTIONS", "/"), "read-only: OPTIONS allowed");
	d = req(p, "/usr/bin/curl", "api.x.com", "POST", "/repos/a", false);
	ok(!d.allow && d.reason == MOAT_REASON_L7_NOT_ALLOWED,
	    "read-only: POST denied");
	is_str(d.text, "POST /repos/a is not allowed by the rules of endpoint "
	    "api.x.com:443 in policy 'ro' (access read-only)",
	    "the L7 denial names method, path, endpoint, policy");
	ok(!A(p, "DELETE", "/x"), "read-only: DELETE denied");
	ok(!req(p, "/usr/bin/wget", "api.x.com", "GET", "/", false).allow,
	    "another binary: denied even for GET");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'rw':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'rest',"
	    "'access':'read-write'}],'binaries':[{'path':'/usr/bin/curl'}]}}}");
	ok(A(p, "POST", "/a") && A(p, "PUT", "/a") && A(p, "PATCH", "/a"),
	    "read-write: POST, PUT, PATCH allowed");
	ok(!A(p, "DELETE", "/a"), "read-write: no DELETE");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'g':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'rest','rules':["
	    "{'allow':{'method':'GET','path':'/repos/*/issues'}},"
	    "{'allow':{'method':'POST','path':'/**/git-upload-pack'}},"
	    "{'allow':{'method':'GET','path':'/public/**'}},"
	    "{'allow':{'method':'*','path':'/any'}},"
	    "{'allow':{'method':'GET','path':'/search',"
	    "'query':{'per_page':'1*','q':{'any':['a*','b*']}}}}],"
	    "'deny_rules':[{'method':'GET','path':'/public/secret/**'},"
	    "{'method':'GET','path':'/search','query':{'q':'bad*'}}]}],"
	    "'binaries':[{'path':'/usr/bin/curl'}]}}}");
	ok(A(p, "GET", "/repos/o/issues"), "'*' matches one segment");
	ok(!A(p, "GET", "/repos/o/r/issues"), "'*' does not span segments");
	ok(!A(p, "POST", "/repos/o/issues"), "method must match");
	ok(A(p, "HEAD", "/repos/o/issues"), "HEAD follows GET");
	ok(A(p, "POST", "/o/r.git/git-upload-pack") &&
	    A(p, "POST", "/git-upload-pack"), "'/**/' matches any depth, even "
	    "none");
	ok(!A(p, "POST", "/o/r.git/git-receive-pack"), "receive-pack denied");
	ok(A(p, "DELETE", "/any"), "method '*' matches any");
	ok(A(p, "GET", "/public/a/b"), "'/**' matches below");
	d = req(p, "/usr/bin/curl", "api.x.com", "GET", "/public/secret/k",
	    false);
	ok(!d.allow && d.reason == MOAT_REASON_L7_DENY,
	    "a deny rule beats an allow rule");
	like_str(d.text, "matches a deny rule", "... saying so");
	ok(!A(p, "HEAD", "/public/secret/k"), "HEAD follows a denied GET too");
	ok(!A(p, "GET", "/public/../public/secret/k") &&
	    !A(p, "GET", "/public/./secret/x") &&
	    !A(p, "GET", "//public//secret//x") &&
	    !A(p, "GET", "/public/%73ecret/x") &&
	    !A(p, "GET", "/public/x/%2e%2e/secret/x"),
	    "dot segments, double slashes and escapes never dodge a deny");
	ok(!A(p, "GET", "/public/..%2fsecret/x") &&
	    !A(p, "GET", "/public%2fsecret/x") &&
	    !A(p, "GET", "/public/a%2F..%2F..%2Fadmin"),
	    "encoded slashes never match an allowed path");
	ok(!A(p, "GET", "/repos/o/../../admin/issues"),
	    "traversal out of an allowed prefix does not match it");
	ok(A(p, "GET", "/search?per_page=10&q=abc"), "query matchers match");
	ok(A(p, "GET", "/search?per_page=1&q=b&q=a2"), "... every value");
	ok(!A(p, "GET", "/search?per_page=10&q=abc&q=zzz"),
	    "allow: one value that does not match fails the rule");
	ok(!A(p, "GET", "/search?q=abc"), "allow: a listed key must be there");
	ok(!A(p, "GET", "/search?per_page=10&q=a&q=bad1"),
	    "deny query: one matching value fires");
	ok(A(p, "GET", "/search?per_page=1%30&q=%61x"), "query values are "
	    "decoded before matching");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'a':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'rest',"
	    "'enforcement':'audit','access':'read-only'}],"
	    "'binaries':[{'path':'/usr/bin/curl'}]}}}");
	d = req(p, "/usr/bin/curl", "api.x.com", "POST", "/x", false);
	ok(d.allow && d.audit, "audit: a denial is allowed, marked audit");
	like_str(d.text, "audit: POST /x is not allowed", "... with the "
	    "would-be denial");
	d = req(p, "/usr/bin/curl", "api.x.com", "GET", "/x", false);
	ok(d.allow && !d.audit, "audit: an allowed request is not an audit");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'e':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'rest',"
	    "'access':'full','allow_encoded_slash':true}],"
	    "'binaries':[{'path':'/usr/bin/curl'}]}}}");
	ok(A(p, "GET", "/@scope%2Fpkg"), "allow_encoded_slash lets %%2F pass");
	moat_policy_free(p);
}

static void
test_mix(void)
{
	struct moat_policy *p;
	struct moat_decision d;

	/* L4 for git, L7 read-only for curl on the same host. */
	p = P("{'version':1,'network_policies':{'a':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'rest',"
	    "'access':'read-only'}],'binaries':[{'path':'/usr/bin/curl'}]},"
	    "'b':{'endpoints':[{'host':'api.x.com','port':443}],"
	    "'binaries':[{'path':'/usr/bin/git'}]},"
	    "'c':{'endpoints':[{'host':'api.x.com','port':443,"
	    "'protocol':'rest','rules':[{'allow':{'method':'POST',"
	    "'path':'/ok'}}],'deny_rules':[{'method':'GET','path':'/x'}]}],"
	    "'binaries':[{'path':'/usr/bin/curl'}]}}}");
	d = decide(p, "/usr/bin/git", "api.x.com", 443);
	ok(d.allow && !d.l7, "L4 policy: no L7 for its binary");
	ok(req(p, "/usr/bin/git", "api.x.com", "DELETE", "/x", false).allow,
	    "L4 policy allows any request of its binary");
	ok(A(p, "POST", "/ok"), "an allow of one policy suffices");
	ok(!A(p, "GET", "/x"), "a deny rule of another policy still wins");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'w':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'websocket',"
	    "'rules':[{'allow':{'method':'GET','path':'/ws'}}]}],"
	    "'binaries':[{'path':'/usr/bin/curl'}]}}}");
	ok(req(p, "/usr/bin/curl", "api.x.com", "GET", "/ws", true).allow,
	    "websocket: the upgrade to an allowed path is allowed");
	ok(!req(p, "/usr/bin/curl", "api.x.com", "GET", "/other", true).allow,
	    "websocket: an upgrade elsewhere is denied");
	ok(!req(p, "/usr/bin/curl", "api.x.com", "GET", "/ws", false).allow,
	    "websocket: a plain request is denied");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'q':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'graphql',"
	    "'access':'read-only'}],'binaries':[{'path':'/usr/bin/curl'}]}}}");
	d = decide(p, "/usr/bin/curl", "api.x.com", 443);
	ok(!d.allow && d.reason == MOAT_REASON_L7_UNENFORCED,
	    "graphql is not enforced: the connection fails closed");
	like_str(d.text, "protocol graphql is not enforced by moat",
	    "... saying why");
	moat_policy_free(p);
}

static void
test_load(void)
{
	const char *e0 = "network_policies.n.endpoints[0]";
	char path[128];

#define EP(x) "{'version':1,'network_policies':{'n':{'endpoints':[" x \
	"],'binaries':[{'path':'/b'}]}}}"
	rejects("rules without protocol", EP("{'host':'a.com','port':1,"
	    "'rules':[{'allow':{'method':'GET'}}]}"), e0,
	    "need an L7 protocol");
	rejects("access without protocol", EP("{'host':'a.com','port':1,"
	    "'access':'full'}"), e0, "need an L7 protocol");
	rejects("tls skip with L7", EP("{'host':'a.com','port':1,"
	    "'protocol':'rest','access':'full','tls':'skip'}"), e0,
	    "cannot be enforced");
	snprintf(path, sizeof(path), "%s.rules[0].allow.path", e0);
	rejects("partial **", EP("{'host':'a.com','port':1,'protocol':'rest',"
	    "'rules':[{'allow':{'path':'/a**'}}]}"), path, "whole segment");
	rejects("query in a path", EP("{'host':'a.com','port':1,"
	    "'protocol':'rest','rules':[{'allow':{'path':'/a?x=1'}}]}"), path,
	    "query matchers");
	snprintf(path, sizeof(path), "%s.rules[0].allow.method", e0);
	rejects("bad method", EP("{'host':'a.com','port':1,'protocol':'rest',"
	    "'rules':[{'allow':{'method':'get it'}}]}"), path, "HTTP method");
	snprintf(path, sizeof(path), "%s.rules[0].allow.command", e0);
	rejects("sql field in rest", EP("{'host':'a.com','port':1,"
	    "'protocol':'rest','rules':[{'allow':{'command':'SELECT'}}]}"),
	    path, "not used by protocol rest");
	snprintf(path, sizeof(path), "%s.rules[0].allow.query.q", e0);
	rejects("bad query matcher", EP("{'host':'a.com','port':1,"
	    "'protocol':'rest','rules':[{'allow':{'query':{'q':1}}}]}"),
	    path, "glob string");
#undef EP
}

static struct moat_policy *
preset(const char *name)
{
	struct moat_policy_opts o = { NULL, true };
	struct moat_policy *p = NULL;
	struct moat_diags d;
	char path[512];

	snprintf(path, sizeof(path), "%s/policies/presets/%s.json",
	    getenv("MOAT_SRC") ? getenv("MOAT_SRC") : ".", name);
	moat_diags_init(&d);
	if (moat_policy_load_file(path, &o, &p, &d) != 0)
		dump_diags(&d);
	moat_diags_free(&d);
	return p;
}

static bool
git_req(const struct moat_policy *p, const char *method, const char *target)
{
	static char buf[4096];
	const char *anc[] = { "/usr/lib/git-core/git", "/usr/bin/git" };
	struct moat_caller c = { "/usr/lib/git-core/git-remote-https", anc, 2,
		NULL, 0 };
	struct moat_l7_request rq = { method, buf, NULL, false, false, NULL,
	    0 };
	struct moat_decision d;
	size_t pl = 0;
	char why[128];

	if (moat_l7_canon(target, strlen(target), buf, sizeof(buf), &pl,
	    &rq.encoded_slash, why, sizeof(why)) != MOAT_OK)
		return false;
	if (buf[pl] == '?')
		rq.query = buf + pl + 1;
	buf[pl] = '\0';
	moat_policy_decide_request(p, &c, "github.com", 443, &rq, &d);
	return d.allow;
}

/* Each preset's documented promise (docs/policy.md, "Presets"). */
static void
test_presets(void)
{
	static const char *const gh[] = { "github-readonly", "all-dev" };

	for (size_t i = 0; i < 2; i++) {
		struct moat_policy *p = preset(gh[i]);

		if (!ok(p != NULL, "preset %s loads", gh[i]))
			continue;
		ok(git_req(p, "GET", "/o/r.git/info/refs?service="
		    "git-upload-pack") && git_req(p, "POST",
		    "/o/r.git/git-upload-pack"), "%s: git clone and fetch",
		    gh[i]);
		ok(!git_req(p, "GET", "/o/r.git/info/refs?service="
		    "git-receive-pack") && !git_req(p, "POST",
		    "/o/r.git/git-receive-pack") && !git_req(p, "POST",
		    "/o/r.git/../r.git/git-receive-pack"),
		    "%s: no git push (git-receive-pack)", gh[i]);
		ok(req(p, "/usr/bin/curl", "api.github.com", "GET",
		    "/repos/o/r", false).allow, "%s: API reads", gh[i]);
		ok(!req(p, "/usr/bin/curl", "api.github.com", "POST",
		    "/repos/o/r/issues", false).allow &&
		    !req(p, "/usr/bin/curl", "api.github.com", "PUT",
		    "/repos/o/r/contents/x", false).allow &&
		    !req(p, "/usr/bin/curl", "api.github.com", "DELETE",
		    "/repos/o/r", false).allow &&
		    !req(p, "/usr/bin/curl", "api.github.com", "PATCH",
		    "/repos/o/r", false).allow, "%s: no API writes", gh[i]);
		ok(req(p, "/usr/bin/wget", "raw.githubusercontent.com", "GET",
		    "/o/r/main/x", false).allow && !req(p, "/usr/bin/wget",
		    "raw.githubusercontent.com", "POST", "/x", false).allow,
		    "%s: raw content read-only", gh[i]);
		ok(!decide(p, "/usr/bin/python3.11", "github.com", 443).allow,
		    "%s: other binaries get nothing from GitHub", gh[i]);
		moat_policy_free(p);
	}
	{
		struct moat_policy *p = preset("pypi");

		ok(p != NULL && decide(p, "/usr/bin/python3.11", "pypi.org",
		    443).allow && decide(p, "/usr/bin/python3.11",
		    "files.pythonhosted.org", 443).allow &&
		    !decide(p, "/usr/bin/curl", "pypi.org", 443).allow,
		    "pypi: Python reaches the index, curl does not");
		moat_policy_free(p);
		p = preset("npm");
		ok(p != NULL && decide(p, "/usr/bin/node", "registry.npmjs.org",
		    443).allow && !decide(p, "/usr/bin/curl",
		    "registry.npmjs.org", 443).allow,
		    "npm: node reaches the registry, curl does not");
		moat_policy_free(p);
		p = preset("agents");
		ok(p != NULL && decide3(p, "/usr/bin/node",
		    "/usr/local/bin/claude", NULL, "api.anthropic.com",
		    443).allow && !decide(p, "/usr/bin/curl",
		    "api.anthropic.com", 443).allow,
		    "agents: node under claude reaches Anthropic");
		moat_policy_free(p);
		p = preset("deny-all");
		ok(p != NULL && !decide(p, "/usr/bin/curl", "pypi.org",
		    443).allow, "deny-all denies");
		moat_policy_free(p);
	}
}

int
main(void)
{
	test_canon();
	test_rules();
	test_readings();
	test_mix();
	test_load();
	test_presets();
	return done_testing();
}
