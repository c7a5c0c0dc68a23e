/*
 * Decisions: the L4 cases of OpenShell's e2e policy tests, host wildcard
 * semantics, binaries (ancestors, globs, symlinks), deny reasons. Where
 * moat departs from OpenShell the test name says so.
 */
#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policies/policy.h"
#include "tests/unit/policy_util.h"

#define ONE(host, port, bin) "{'version':1,'network_policies':{'p':{" \
	"'endpoints':[{'host':'" host "','port':" #port "}],"             \
	"'binaries':[{'path':'" bin "'}]}}}"

static void
test_l4(void)
{
	struct moat_policy *p;
	struct moat_decision d;
	const char *cmd[] = { "/usr/bin/curl" };
	struct moat_caller c = { "/usr/bin/wget", NULL, 0, cmd, 1 };

	p = P("{'version':1}");
	d = decide(p, "/usr/bin/curl", "a.com", 443);
	ok(!d.allow && d.reason == MOAT_REASON_NO_POLICIES,
	    "no policy denies all");
	is_str(d.text, "network connections not allowed by policy",
	    "no-policy text");
	d = decide(NULL, "/usr/bin/curl", "a.com", 443);
	ok(!d.allow && d.reason == MOAT_REASON_NO_POLICIES, "NULL policy too");
	moat_policy_free(p);

	p = P(ONE("a.com", 443, "/**"));
	ok(decide(p, "/usr/bin/anything", "a.com", 443).allow,
	    "wildcard binary /** allows any");
	moat_policy_free(p);

	p = P(ONE("a.com", 443, "/usr/bin/curl"));
	d = decide(p, "/usr/bin/curl", "a.com", 443);
	ok(d.allow && d.reason == MOAT_REASON_ALLOWED, "right binary allowed");
	is_str(d.policy, "p", "matched policy key");
	ok(d.endpoint != NULL && !d.audit, "endpoint set, not audit");
	d = decide(p, "/usr/bin/wget", "a.com", 443);
	ok(!d.allow && d.reason == MOAT_REASON_BINARY, "wrong binary denied");
	is_str(d.text, "endpoint a.com:443 is in policy 'p' but binary "
	    "'/usr/bin/wget' is not one of its binaries", "binary text");
	is_str(d.policy, "p", "binary denial names the policy");
	d = decide(p, "/usr/bin/curl", "a.com", 80);
	ok(!d.allow && d.reason == MOAT_REASON_NO_ENDPOINT,
	    "wrong port denied");
	is_str(d.text, "endpoint a.com:80 is not allowed by any policy",
	    "endpoint text");
	ok(d.policy == NULL, "no policy named for NO_ENDPOINT");

	/* cmdline never grants, but shows in the message */
	memset(&d, 0, sizeof(d));
	moat_policy_decide(p, &c, "a.com", 443, &d);
	ok(!d.allow, "cmdline path never grants");
	like_str(d.text, "cmdline, never trusted: /usr/bin/curl",
	    "cmdline appears in the text");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{"
	    "'a':{'endpoints':[{'host':'a.com','port':443}],"
	    "'binaries':[{'path':'/usr/bin/git'}]},"
	    "'b':{'endpoints':[{'host':'b.com','port':443}],"
	    "'binaries':[{'path':'/usr/bin/curl'}]}}}");
	d = decide(p, "/usr/bin/curl", "a.com", 443);
	ok(!d.allow && d.reason == MOAT_REASON_BINARY,
	    "endpoint and binary in different policies denied (cross-policy)");
	moat_policy_free(p);

	/* ancestors grant: claude spawns node */
	p = P(ONE("api.anthropic.com", 443, "/usr/local/bin/claude"));
	ok(decide3(p, "/usr/bin/node", "/usr/local/bin/claude", "/bin/bash",
	    "api.anthropic.com", 443).allow, "ancestor grants (claude -> node)");
	d = decide3(p, "/usr/bin/node", "/bin/bash", "/sbin/init",
	    "api.anthropic.com", 443);
	ok(!d.allow, "unrelated ancestors do not");
	like_str(d.text, "(ancestors: /bin/bash -> /sbin/init)",
	    "ancestors in the text");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'p':{'endpoints':"
	    "[{'host':'a.com','ports':[80,443]}],'binaries':[{'path':'/b'}]}}}");
	ok(decide(p, "/b", "a.com", 80).allow &&
	    decide(p, "/b", "a.com", 443).allow, "multi-port allows listed");
	ok(!decide(p, "/b", "a.com", 8080).allow, "multi-port denies unlisted");
	moat_policy_free(p);
	p = P(ONE("a.com", 8443, "/b"));
	ok(decide(p, "/b", "a.com", 8443).allow &&
	    !decide(p, "/b", "a.com", 443).allow, "single port compat");
	moat_policy_free(p);
}

static void
test_hosts(void)
{
	struct moat_policy *p;
	struct moat_decision d;

	p = P(ONE("*.x.com", 443, "/b"));
	ok(decide(p, "/b", "api.x.com", 443).allow, "*.x.com: subdomain yes");
	ok(!decide(p, "/b", "x.com", 443).allow, "*.x.com: apex no");
	ok(!decide(p, "/b", "a.b.x.com", 443).allow, "*.x.com: deep no");
	ok(!decide(p, "/b", "api.y.com", 443).allow, "*.x.com: other no");
	ok(!decide(p, "/b", "apix.com", 443).allow, "*.x.com: suffix no");
	moat_policy_free(p);

	p = P(ONE("**.x.com", 443, "/b"));
	ok(decide(p, "/b", "api.x.com", 443).allow, "**.x.com: one label");
	ok(decide(p, "/b", "a.b.c.x.com", 443).allow, "**.x.com: deep yes");
	ok(!decide(p, "/b", "x.com", 443).allow, "**.x.com: apex no");
	moat_policy_free(p);

	p = P(ONE("*-aiplatform.googleapis.com", 443, "/b"));
	ok(decide(p, "/b", "us-central1-aiplatform.googleapis.com", 443).allow,
	    "intra-label wildcard matches");
	ok(!decide(p, "/b", "aiplatform.googleapis.com", 443).allow,
	    "intra-label wildcard needs its suffix");
	ok(!decide(p, "/b", "a.us-aiplatform.googleapis.com", 443).allow,
	    "intra-label wildcard stays in one label");
	moat_policy_free(p);

	p = P(ONE("*.s3.*.amazonaws.com", 443, "/b"));
	ok(decide(p, "/b", "bucket.s3.us-east-1.amazonaws.com", 443).allow,
	    "middle-label wildcard");
	ok(!decide(p, "/b", "bucket.s3.amazonaws.com", 443).allow,
	    "middle-label wildcard needs its label");
	moat_policy_free(p);

	p = P(ONE("GitHub.com", 443, "/b"));
	ok(decide(p, "/b", "GITHUB.COM", 443).allow, "case folding");
	d = decide(p, "/b", "github.com.", 443);
	ok(d.allow, "moat departs from OpenShell: trailing dot normalised");
	is_str(d.host, "github.com", "decision carries the normalised host");
	ok(!decide(p, "/b", "github.com..", 443).allow, "two dots is not a "
	    "name");
	d = decide(p, "/b", "git hub.com", 443);
	ok(!d.allow && d.reason == MOAT_REASON_BAD_HOST, "bad host refused");
	d = decide(p, "/b", "", 443);
	ok(!d.allow && d.reason == MOAT_REASON_BAD_HOST, "empty host refused");
	moat_policy_free(p);
	p = P(ONE("github.com.", 443, "/b"));
	ok(decide(p, "/b", "github.com", 443).allow,
	    "moat departs from OpenShell: trailing dot in the policy too");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'p':{'endpoints':["
	    "{'host':'203.0.113.7','port':80},{'host':'2001:db8::1','port':80}"
	    "],'binaries':[{'path':'/b'}]}}}");
	ok(decide(p, "/b", "203.0.113.7", 80).allow, "IPv4 literal host");
	ok(decide(p, "/b", "::ffff:203.0.113.7", 80).allow,
	    "IPv4-mapped form of the literal");
	ok(!decide(p, "/b", "203.0.113.8", 80).allow, "other IPv4 denied");
	ok(decide(p, "/b", "2001:DB8:0:0::1", 80).allow,
	    "IPv6 literal compared by address");
	ok(decide(p, "/b", "[2001:db8::1]", 80).allow, "IPv6 in brackets");
	d = decide(p, "/b", "2001:db8::2", 80);
	ok(!d.allow, "other IPv6 denied");
	is_str(d.text, "endpoint [2001:db8::2]:80 is not allowed by any "
	    "policy", "IPv6 text has brackets");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'p':{'endpoints':["
	    "{'port':5432,'allowed_ips':['10.0.0.0/8']}],"
	    "'binaries':[{'path':'/b'}]}}}");
	ok(decide(p, "/b", "db.internal", 5432).allow,
	    "hostless allowed_ips: any host on the port");
	ok(!decide(p, "/b", "db.internal", 5433).allow,
	    "hostless allowed_ips: only that port");
	moat_policy_free(p);
}

static void
test_order_audit(void)
{
	struct moat_policy *p;
	struct moat_decision d;

	p = P("{'version':1,'network_policies':{"
	    "'zeta':{'endpoints':[{'host':'a.com','port':443}],"
	    "'binaries':[{'path':'/b'}]},"
	    "'alpha':{'endpoints':[{'host':'a.com','port':443}],"
	    "'binaries':[{'path':'/b'}]},"
	    "'mid':{'endpoints':[{'host':'a.com','port':443}],"
	    "'binaries':[{'path':'/c'}]}}}");
	is_str(decide(p, "/b", "a.com", 443).policy, "alpha",
	    "lexicographically smallest policy reported");
	is_str(decide(p, "/c", "a.com", 443).policy, "mid",
	    "the policy that matched both halves");
	d = decide(p, "/x", "a.com", 443);
	is_str(d.policy, "alpha", "binary denial names the smallest key");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'p':{'endpoints':["
	    "{'host':'a.com','port':443},"
	    "{'host':'b.com','port':443,'enforcement':'audit'}],"
	    "'binaries':[{'path':'/b'}]}}}");
	d = decide(p, "/x", "a.com", 443);
	ok(!d.allow && !d.audit, "moat departs from OpenShell: enforcement "
	    "defaults to enforce");
	d = decide(p, "/x", "b.com", 443);
	ok(d.allow && d.audit, "audit endpoint: wrong binary allowed, audit");
	like_str(d.text, "audit", "audit text");
	d = decide(p, "/b", "b.com", 443);
	ok(d.allow && !d.audit, "audit endpoint, right binary: plain allow");
	ok(!decide(p, "/x", "b.com", 80).allow,
	    "audit never covers a missing endpoint");
	moat_policy_free(p);
}

static void
test_binaries(void)
{
	struct moat_policy *p;

	p = P("{'version':1,'network_policies':{'p':{'endpoints':"
	    "[{'host':'a.com','port':443}],'binaries':["
	    "{'path':'/usr/lib/node_modules/@openai/**'},"
	    "{'path':'/opt/*/bin/tool'},{'path':'/usr/bin/python3*'},"
	    "{'path':'/x/**/copilot'}]}}}");
	ok(decide(p, "/usr/lib/node_modules/@openai/codex/bin/codex",
	    "a.com", 443).allow, "** glob matches at depth");
	ok(decide(p, "/opt/v1/bin/tool", "a.com", 443).allow,
	    "* glob matches one segment");
	ok(!decide(p, "/opt/v1/v2/bin/tool", "a.com", 443).allow,
	    "* glob does not cross '/'");
	ok(decide(p, "/usr/bin/python3.11", "a.com", 443).allow,
	    "* inside a segment");
	ok(decide(p, "/x/copilot", "a.com", 443).allow &&
	    decide(p, "/x/a/b/copilot", "a.com", 443).allow,
	    "/x/**/copilot: zero or more segments");
	ok(!decide(p, "/x/a/b/copilotx", "a.com", 443).allow,
	    "/x/**/copilot: last segment exact");
	ok(decide(p, "/x/copilot/copilot", "a.com", 443).allow,
	    "/x/**/copilot: backtracks over a false start");
	ok(!decide(p, "/x", "a.com", 443).allow &&
	    !decide(p, "/opt/v1/bin/tool/x", "a.com", 443).allow,
	    "globs need their whole pattern");
	ok(decide3(p, "/bin/sh", "/opt/v2/bin/tool", NULL, "a.com", 443).allow,
	    "globs match ancestors too");
	moat_policy_free(p);
}

static int
mk(const char *root, const char *rel, const char *target)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (target != NULL)
		return symlink(target, path);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0755)) < 0)
		return -1;
	return close(fd);
}

static void
test_symlinks(void)
{
	char root[] = "/tmp/moat-policy-XXXXXX", path[600], json[1024];
	struct moat_policy_opts o = { root, false };
	struct moat_policy *p = NULL;
	struct moat_decision d;
	struct moat_diags dg;
	int r;

	if (mkdtemp(root) == NULL) {
		skip("mkdtemp failed");
		return;
	}
	snprintf(path, sizeof(path), "%s/usr", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/usr/bin", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/bin", root);
	ok(mk(root, "usr/bin/python3.11", NULL) == 0 &&
	    mk(root, "usr/bin/python3", "python3.11") == 0 &&
	    mk(root, "usr/bin/py", "/usr/bin/python3") == 0 &&
	    symlink("usr/bin", path) == 0 &&
	    mk(root, "usr/bin/escape", "../../../../../etc/passwd") == 0,
	    "fake root built");
	snprintf(json, sizeof(json), "{\"version\":1,\"network_policies\":"
	    "{\"pypi\":{\"endpoints\":[{\"host\":\"pypi.org\",\"port\":443}],"
	    "\"binaries\":[{\"path\":\"/usr/bin/python3\"},{\"path\":"
	    "\"/bin/py\"},{\"path\":\"/usr/bin/missing\"},{\"path\":"
	    "\"/usr/bin/escape\"}]}}}");
	moat_diags_init(&dg);
	r = moat_policy_load_string(json, strlen(json), "t", &o, &p, &dg);
	ok(r == 0, "loads with binary_root");
	ok(find_diag(&dg, MOAT_DIAG_NOTE, "network_policies.pypi.binaries[0]"
	    ".path", "/usr/bin/python3 is a symlink to /usr/bin/python3.11; "
	    "matches that executable") != NULL, "symlink note");
	ok(find_diag(&dg, MOAT_DIAG_NOTE, "network_policies.pypi.binaries[1]"
	    ".path", "/bin/py is a symlink to /usr/bin/python3.11") != NULL,
	    "chain through a symlinked directory, resolved in the root");
	ok(find_diag(&dg, MOAT_DIAG_WARNING, "network_policies.pypi."
	    "binaries[2].path", "/usr/bin/missing does not exist (yet)") !=
	    NULL, "missing binary warning");
	ok(find_diag(&dg, MOAT_DIAG_WARNING, "network_policies.pypi."
	    "binaries[3].path", "does not exist") != NULL,
	    "'..' in a link target stays inside the root");
	if (p != NULL) {
		ok(decide(p, "/usr/bin/python3.11", "pypi.org", 443).allow,
		    "symlink target matches");
		ok(decide(p, "/usr/bin/python3", "pypi.org", 443).allow,
		    "the listed path still matches");
		d = decide(p, "/usr/bin/python3.12", "pypi.org", 443);
		ok(!d.allow, "another python denied");
		like_str(d.text, "is a symlink and matches /usr/bin/python3.11",
		    "symlink hint in the denial");
	}
	moat_policy_free(p);
	moat_diags_free(&dg);
	for (const char *const *f = (const char *const[]){ "usr/bin/python3",
	    "usr/bin/python3.11", "usr/bin/py", "usr/bin/escape", "bin",
	    "usr/bin", "usr", "", NULL }; *f != NULL; f++) {
		snprintf(path, sizeof(path), "%s/%s", root, *f);
		if (unlink(path) != 0)
			rmdir(path);
	}
}

/*
 * Endpoints with fields moat cannot enforce (graphql, mcp, json-rpc,
 * sql, WebSocket frame rules) deny (fail closed), saying why, unless a
 * plain L4 endpoint of a policy that holds the caller allows the
 * connection anyway. REST endpoints allow the connection with l7 set.
 */
static void
test_l7_fail_closed(void)
{
	struct moat_policy *p;
	struct moat_decision d;

	p = P("{'version':1,'network_policies':{'gh':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'graphql',"
	    "'access':'read-only'},"
	    "{'host':'x.com','port':443,'protocol':'rest','rules':[{'allow':"
	    "{'method':'GET','path':'/**'}}]}],"
	    "'binaries':[{'path':'/usr/bin/curl'}]},"
	    "'z':{'endpoints':[{'host':'api.x.com','port':443}],"
	    "'binaries':[{'path':'/usr/bin/git'}]}}}");
	d = decide(p, "/usr/bin/curl", "api.x.com", 443);
	ok(!d.allow && d.reason == MOAT_REASON_L7_UNENFORCED,
	    "graphql endpoint denied (fail closed)");
	is_str(d.policy, "gh", "the fail-closed denial names its policy");
	like_str(d.text, "endpoint api.x.com:443 is in policy 'gh', but "
	    "protocol graphql is not enforced by moat; the connection is "
	    "denied rather than allowed unchecked", "... and says why");
	d = decide(p, "/usr/bin/curl", "x.com", 443);
	ok(d.allow && d.l7 && !d.tls_skip,
	    "a rest endpoint allows the connection, every request decided");
	d = decide(p, "/usr/bin/git", "api.x.com", 443);
	ok(d.allow && !d.l7 && strcmp(d.policy, "z") == 0,
	    "a plain L4 endpoint of another policy still allows its binary");
	d = decide(p, "/usr/bin/wget", "api.x.com", 443);
	ok(!d.allow && d.reason == MOAT_REASON_BINARY,
	    "another binary: the binary half is what failed");
	moat_policy_free(p);

	p = P("{'version':1,'network_policies':{'a':{'endpoints':["
	    "{'host':'api.x.com','port':443,'protocol':'mcp',"
	    "'access':'full'}],'binaries':[{'path':'/usr/bin/curl'}]},"
	    "'b':{'endpoints':[{'host':'api.x.com','port':443,'tls':'skip'}],"
	    "'binaries':[{'path':'/usr/bin/curl'}]}}}");
	d = decide(p, "/usr/bin/curl", "api.x.com", 443);
	ok(d.allow && strcmp(d.policy, "b") == 0 && d.tls_skip,
	    "L4 in a later policy allows what the L7 one cannot; tls skip");
	moat_policy_free(p);
}

int
main(void)
{
	test_l4();
	test_hosts();
	test_order_audit();
	test_binaries();
	test_symlinks();
	test_l7_fail_closed();
	return done_testing();
}
