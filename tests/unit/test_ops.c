/*
 * moatd's operator loop: aggregator, proposals engine, agent proposals,
 * control protocol, retention, export and the line diff. Runs against a
 * temporary store and moatd_new_for_test (no kernel state).
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/jsonl.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/store.h"
#include "moatd/moatd.h"
#include "moatd/ctl.h"
#include "moatd/proposals.h"
#include "render/render.h"
#include "cli/control.h"
#include "tests/unit/tap.h"

#define POLICY "{\"version\":1,\"network_policies\":{\"gh\":{\"name\":\"gh\"," \
	"\"endpoints\":[{\"host\":\"api.github.com\",\"port\":443}]," \
	"\"binaries\":[{\"path\":\"/usr/bin/git\"}]}}}"

static char tmpdir[] = "/tmp/moat-ops-XXXXXX";

/* cli/main.c defines these for the real `moat`; the test stands in. */
const char *
moat_cli_control_path(void)
{
	return "/nonexistent/moatd.sock";
}

const char *
moat_cli_store_path(void)
{
	return "/nonexistent/moat.db";
}

static void
mkev(struct moat_denial_event *ev, const char *sb, const char *bin,
    const char *host, const char *ip, int port, const char *stage)
{
	memset(ev, 0, sizeof(*ev));
	ev->ts_ms = moat_wall_ms();
	moat_strlcpy(ev->sandbox, sb, sizeof(ev->sandbox));
	moat_strlcpy(ev->binary, bin, sizeof(ev->binary));
	moat_strlcpy(ev->host, host, sizeof(ev->host));
	moat_strlcpy(ev->ip, ip, sizeof(ev->ip));
	ev->port = port;
	moat_strlcpy(ev->stage, stage, sizeof(ev->stage));
	moat_strlcpy(ev->protocol, "tcp", sizeof(ev->protocol));
	moat_strlcpy(ev->reason, "no policy has this endpoint",
	    sizeof(ev->reason));
}

static void
test_diff(void)
{
	char *d;

	d = moat_render_line_diff("a\nb\nc\n", "a\nx\nc\n");
	is_str(d, "  a\n- b\n+ x\n  c\n", "diff: one changed line");
	free(d);
	d = moat_render_line_diff("a\nb\n", "a\nb\n");
	is_str(d, "  a\n  b\n", "diff: equal texts");
	free(d);
	d = moat_render_line_diff("", "x\ny\n");
	is_str(d, "+ x\n+ y\n", "diff: from empty");
	free(d);
	d = moat_render_line_diff("1\n2\n3\n4\n", "0\n1\n3\n4\n5\n");
	is_str(d, "+ 0\n  1\n- 2\n  3\n  4\n+ 5\n", "diff: LCS keeps order");
	free(d);
	d = moat_render_json_pretty("{\"b\":1,\"a\":[1]}");
	is_str(d, "{\n  \"a\": [\n    1\n  ],\n  \"b\": 1\n}\n",
	    "pretty JSON sorts keys and indents 2");
	free(d);
}

static void
test_suggest(void)
{
	struct moatd_suggestion s;
	struct moat_denial_event ev;
	struct moat_cause c = { { 0 } };
	char hash2[65];
	int r;

	mkev(&ev, "box", "/usr/bin/curl", "API.github.com.", "140.82.1.1", 443,
	    "connect");
	r = moatd_proposal_suggest(&ev, NULL, &s, &c);
	is_int(r, 0, "suggest: public host");
	is_str(s.name, "allow_api_github_com_443", "suggest: stable name");
	is_str(s.key, "box|/usr/bin/curl|api.github.com|443", "suggest: key");
	is_str(s.rule_json, "{\"allow_api_github_com_443\":{\"binaries\":[{"
	    "\"path\":\"/usr/bin/curl\"}],\"endpoints\":[{\"host\":"
	    "\"api.github.com\",\"port\":443,\"public_only\":true}],"
	    "\"name\":\"allow_api_github_com_443\"}}",
	    "suggest: exact rule JSON, the name's endpoint public_only");
	is_str(s.rule_hash, "39320cf603ce803cc5a076eef19812a14d959a5e27726bca"
	    "6ae4eaeaa2418dba", "suggest: rule hash is sha256 of the bytes");
	is_int(s.nnotes, 0, "suggest: no warnings for curl to 443");
	like_str(s.notes, "api.github.com is a host name: the rule is "
	    "public_only", "suggest: the notes say it reaches public "
	    "addresses only");
	moatd_sha256_hex(s.rule_json, strlen(s.rule_json), hash2);
	is_str(hash2, s.rule_hash, "hash stable");
	moatd_suggestion_clear(&s);

	/* An L7 denial suggests the request's method and path. */
	mkev(&ev, "box", "/usr/bin/git", "github.com", "", 443, "l7");
	moat_strlcpy(ev.method, "POST", sizeof(ev.method));
	moat_strlcpy(ev.path, "/o/r.git/git-receive-pack", sizeof(ev.path));
	is_int(moatd_proposal_suggest(&ev, NULL, &s, &c), 0, "suggest: L7 denial");
	is_str(s.key, "box|/usr/bin/git|github.com|443|POST|"
	    "/o/r.git/git-receive-pack", "suggest: L7 key has method+path");
	is_str(s.rule_json, "{\"allow_github_com_post_o_r_git_git_receive_"
	    "pack\":{\"binaries\":[{\"path\":\"/usr/bin/git\"}],"
	    "\"endpoints\":[{\"host\":\"github.com\",\"port\":443,"
	    "\"protocol\":\"rest\",\"public_only\":true,\"rules\":[{"
	    "\"allow\":{\"method\":"
	    "\"POST\",\"path\":\"/o/r.git/git-receive-pack\"}}]}],"
	    "\"name\":\"allow_github_com_post_o_r_git_git_receive_pack\"}}",
	    "suggest: a method+path rule, not the whole host");
	moatd_suggestion_clear(&s);
	mkev(&ev, "box", "/usr/bin/curl", "a.test", "", 443, "credential");
	is_int(moatd_proposal_suggest(&ev, NULL, &s, &c), MOAT_ERR_DENIED,
	    "suggest: a credential refusal is not fixed by a rule");

	mkev(&ev, "box", "/usr/bin/curl", "localhost", "127.0.0.1", 8080,
	    "connect");
	is_int(moatd_proposal_suggest(&ev, NULL, &s, &c), MOAT_ERR_DENIED,
	    "suggest: never loopback (%s)", c.msg);
	mkev(&ev, "box", "/usr/bin/curl", "db.test", "127.0.0.2", 5432,
	    "ssrf");
	is_int(moatd_proposal_suggest(&ev, NULL, &s, &c), MOAT_ERR_DENIED,
	    "suggest: never a name resolving to loopback");
	mkev(&ev, "box", "/usr/bin/curl", "169.254.169.254", "169.254.169.254",
	    80, "connect");
	is_int(moatd_proposal_suggest(&ev, NULL, &s, &c), MOAT_ERR_DENIED,
	    "suggest: never metadata (%s)", c.msg);
	mkev(&ev, "box", "/usr/bin/curl", "fe.test", "169.254.7.7", 80,
	    "ssrf");
	is_int(moatd_proposal_suggest(&ev, NULL, &s, &c), MOAT_ERR_DENIED,
	    "suggest: never link-local");
	mkev(&ev, "box", "/usr/bin/curl", "x.test", "1.2.3.4", 443,
	    "identity");
	is_int(moatd_proposal_suggest(&ev, NULL, &s, &c), MOAT_ERR_DENIED,
	    "suggest: identity stage cannot be fixed by a rule");
	mkev(&ev, "box", "", "x.test", "1.2.3.4", 443, "connect");
	is_int(moatd_proposal_suggest(&ev, NULL, &s, &c), MOAT_ERR_DENIED,
	    "suggest: unknown caller");

	mkev(&ev, "box", "/sandbox/venv/bin/python3", "db.internal",
	    "10.1.2.3", 5432, "ssrf");
	r = moatd_proposal_suggest(&ev, NULL, &s, &c);
	is_int(r, 0, "suggest: private address is proposed");
	is_int(s.nnotes, 3, "suggest: port, path, interpreter warnings");
	like_str(s.notes, "db.internal resolved to private address 10.1.2.3: "
	    "the rule is public_only, so approving it does not open that "
	    "address", "note: private, and not opened by approving");
	like_str(s.rule_json, "\"public_only\":true", "the rule is public_only");
	like_str(s.notes, "port 5432 is unusual", "note: port");
	like_str(s.notes, "/sandbox/venv/bin/python3 is in /sandbox (the "
	    "workspace), which the sandbox can write", "note: writable path");
	like_str(s.notes, "interpreter", "note: interpreter");
	moatd_suggestion_clear(&s);
	mkev(&ev, "box", "/srv/tools/fetch", "api.github.com", "140.82.1.1",
	    443, "connect");
	r = moatd_proposal_suggest(&ev, NULL, &s, &c);
	is_int(s.nnotes, 0, "suggest: /srv/tools/fetch is not writable "
	    "without read_write");
	moatd_suggestion_clear(&s);
	{
		static const char pj[] = "{\"version\":1,\"filesystem_policy\":"
		    "{\"read_write\":[\"/srv/tools\"]}}";
		const struct moat_policy_opts o = { .no_fs = true };
		struct moat_policy *pol = NULL;

		is_int(moat_policy_load_string(pj, strlen(pj), "t", &o, &pol,
		    NULL), 0, "a policy with read_write /srv/tools");
		r = moatd_proposal_suggest(&ev, pol, &s, &c);
		like_str(s.notes, "/srv/tools/fetch is in /srv/tools (a "
		    "read_write path)", "suggest: a read_write path is "
		    "writable");
		moatd_suggestion_clear(&s);
		moat_policy_free(pol);
	}
	mkev(&ev, "box", "/usr/bin/curl", "10.1.2.3", "10.1.2.3", 80,
	    "connect");
	r = moatd_proposal_suggest(&ev, NULL, &s, &c);
	is_int(r, 0, "suggest: a private IP literal is proposed");
	like_str(s.notes, "10.1.2.3 is a private address (internal): allowing "
	    "it opens the internal network", "note: a literal is its own "
	    "address");
	ok(strstr(s.rule_json, "public_only") == NULL, "a literal host's "
	    "rule is not public_only (it names the address)");
	is_int(s.nnotes, 1, "the private literal is a warning");
	moatd_suggestion_clear(&s);
	ok(moatd_proposal_confidence(1, 0) < moatd_proposal_confidence(64, 0),
	    "more hits, more confidence");
	ok(moatd_proposal_confidence(64, 4) < moatd_proposal_confidence(64, 0),
	    "notes lower confidence");

	/* The proxy's changed-binary denials are identity-stage events. */
	mkev(&ev, "box", "/usr/bin/node", "registry.npmjs.org", "104.16.1.1",
	    443, "identity");
	moat_strlcpy(ev.reason, "binary changed: sha256 differs",
	    sizeof(ev.reason));
	moat_strlcpy(ev.sha256, "ab12", sizeof(ev.sha256));
	r = moatd_proposal_suggest(&ev, NULL, &s, &c);
	is_int(r, 0, "suggest: binary changed");
	is_str(s.origin, MOATD_ORIGIN_BINARY_CHANGED, "origin binary-changed");
	is_str(s.rule_json, "{\"trust\":{\"binary\":\"/usr/bin/node\","
	    "\"sha256\":\"ab12\"}}", "trust rule JSON");
	moatd_suggestion_clear(&s);
}

struct plist {
	int n;
	int64_t id[16];
	int64_t hits[16];
	char key[16][128];
};

static int
plist_row(const struct moat_store_proposal *p, void *arg)
{
	struct plist *l = arg;

	if (l->n < 16) {
		l->id[l->n] = p->id;
		l->hits[l->n] = p->hits;
		moat_strlcpy(l->key[l->n], p->key, sizeof(l->key[0]));
	}
	l->n++;
	return 0;
}

static int
find_key(const struct plist *l, const char *key)
{
	for (int i = 0; i < l->n && i < 16; i++)
		if (strcmp(l->key[i], key) == 0)
			return i;
	return -1;
}

static bool
allowed(struct moatd *d, const char *bin, const char *host, int port)
{
	const struct moat_policy *p = moatd_policy_current(d, "box", NULL);
	struct moat_caller c = { .exe = bin };
	struct moat_decision dec;

	return p != NULL && moat_policy_decide(p, &c, host, (uint16_t)port,
	    &dec) == 0 && dec.allow;
}

static void
test_aggregator(struct moatd *d, struct moat_store *s)
{
	struct moatd_aggregator *a = NULL;
	struct moat_store_denial_filter f = { .sandbox = "box" };
	struct moat_denial_event ev[4];
	struct plist l = { 0 };
	int64_t count = 0, t0;
	const int N = 200000;
	int i, w, r;

	r = moatd_aggregator_new(d, 50, &a, NULL);
	is_int(r, 0, "aggregator_new");
	mkev(&ev[0], "box", "/usr/bin/curl", "example.com", "93.184.216.34",
	    443, "connect");
	mkev(&ev[1], "box", "/usr/bin/wget", "example.com", "93.184.216.34",
	    443, "connect");
	mkev(&ev[2], "box", "/usr/bin/curl", "127.0.0.1", "127.0.0.1", 80,
	    "connect");
	/* Allowed by the policy: denied earlier, must not be proposed. */
	mkev(&ev[3], "box", "/usr/bin/git", "api.github.com", "140.82.1.1",
	    443, "connect");
	t0 = moat_now_ms();
	for (i = 0; i < N; i++) {
		ev[i % 4].ts_ms = 1700000000000LL + i;
		moatd_aggregator_add(a, &ev[i % 4]);
	}
	is_int(moatd_aggregator_flush(a), 0, "flush");
	w = (int)(moat_now_ms() - t0);
	diag("%d events through the aggregator in %d ms", N, w);
	moat_store_denials_count(s, &f, &count, NULL);
	is_int(count, N, "every event stored (nothing lost)");
	moat_store_proposal_list(s, "box", NULL, plist_row, &l, NULL);
	is_int(l.n, 2, "two proposals: no loopback, no already allowed");
	i = find_key(&l, "box|/usr/bin/curl|example.com|443");
	ok(i >= 0 && l.hits[i] == N / 4, "curl group hits %lld",
	    (long long)(i >= 0 ? l.hits[i] : -1));
	/* The same denial again updates, never duplicates. */
	for (i = 0; i < 10; i++)
		moatd_aggregator_add(a, &ev[0]);
	moatd_aggregator_free(a);
	memset(&l, 0, sizeof(l));
	moat_store_proposal_list(s, "box", NULL, plist_row, &l, NULL);
	i = find_key(&l, "box|/usr/bin/curl|example.com|443");
	is_int(l.n, 2, "repeat: still two proposals");
	ok(i >= 0 && l.hits[i] == N / 4 + 10, "repeat: hits updated");
}

static void
test_approve(struct moatd *d, struct moat_store *s)
{
	struct moat_cause c = { { 0 } };
	struct moat_diags dg;
	struct plist l = { 0 };
	struct moat_store_proposal *p = NULL;
	int curl, wget, v1 = 0, v2 = 0, v0 = 0, r;

	moat_diags_init(&dg);
	moat_store_proposal_list(s, "box", "pending", plist_row, &l, NULL);
	curl = find_key(&l, "box|/usr/bin/curl|example.com|443");
	wget = find_key(&l, "box|/usr/bin/wget|example.com|443");
	if (!ok(curl >= 0 && wget >= 0, "the curl and wget proposals are "
	    "there to approve"))
		return;
	moatd_policy_current(d, "box", &v0);
	ok(!allowed(d, "/usr/bin/curl", "example.com", 443),
	    "before approve: curl denied");
	r = moatd_proposal_approve(d, l.id[curl], "alice", "deadbeef", &v1,
	    &dg, &c);
	is_int(r, MOAT_ERR_INVALID, "approve with another hash refused");
	like_str(c.msg, "changed since it was reviewed", "hash cause");
	moat_store_proposal_get(s, l.id[curl], &p, NULL);
	memset(&c, 0, sizeof(c));
	r = moatd_proposal_approve(d, l.id[curl], "alice", p->rule_hash, &v1,
	    &dg, &c);
	is_int(r, 0, "approve with the reviewed hash (%s)", c.msg);
	is_int(v1, v0 + 1, "approve made a new version");
	ok(allowed(d, "/usr/bin/curl", "example.com", 443),
	    "after approve: curl allowed");
	ok(allowed(d, "/usr/bin/git", "api.github.com", 443),
	    "after approve: earlier rule kept");
	ok(!allowed(d, "/usr/bin/wget", "example.com", 443),
	    "only the approved binary");
	moat_store_proposal_free(p);
	p = NULL;
	r = moatd_proposal_approve(d, l.id[wget], "bob", NULL, &v2, &dg, &c);
	is_int(r, 0, "second approve");
	is_int(v2, v1 + 1, "second approve: next version, none lost");
	ok(allowed(d, "/usr/bin/curl", "example.com", 443) &&
	    allowed(d, "/usr/bin/wget", "example.com", 443),
	    "both approvals in force");
	r = moatd_proposal_approve(d, l.id[curl], "alice", NULL, NULL, &dg, &c);
	is_int(r, MOAT_ERR_INVALID, "approve twice refused");
	like_str(c.msg, "already approved", "cause says approved");
	moat_store_proposal_get(s, l.id[curl], &p, NULL);
	is_str(p ? p->decided_by : NULL, "alice", "decided_by recorded");
	moat_store_proposal_free(p);
	moat_diags_free(&dg);
}

static void
test_agent(struct moatd *d, struct moat_store *s)
{
	struct moat_cause c = { { 0 } };
	struct moat_store_proposal *p = NULL;
	int64_t id = 0;
	const char *good = "{\"intent_summary\":\"fetch crates\","
	    "\"operations\":[{\"addRule\":{\"ruleName\":\"crates\",\"rule\":"
	    "{\"name\":\"crates\",\"endpoints\":[{\"host\":\"crates.io\","
	    "\"port\":443}],\"binaries\":[{\"path\":\"/usr/bin/cargo\"}]}}}]}";
	static const struct {
		const char *body;
		const char *msg;
	} bad[] = {
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"port\":443}],\"binaries\":[{\"path\":"
		  "\"/b\"}]}}}]}", "endpoint.host is required" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"a.b\"}],\"binaries\":[{\"path\":"
		  "\"/b\"}]}}}]}", "endpoint.port or endpoint.ports" },
		{ "{\"operations\":[{\"addRule\":{\"rule\":{\"endpoints\":[{"
		  "\"host\":\"a.b\",\"port\":1}],\"binaries\":[{\"path\":"
		  "\"/b\"}]}}}]}", "ruleName or rule.name is required" },
		{ "{\"operations\":[{\"removeRule\":{\"ruleName\":\"x\"}}]}",
		  "only addRule" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"a.b\",\"port\":443,\"rules\":[{"
		  "\"allow\":{\"method\":\"GET\",\"path\":\"/a?b=1\"}}]}],"
		  "\"binaries\":[{\"path\":\"/b\"}]}}}]}", "query strings" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"127.0.0.1\",\"port\":80}],"
		  "\"binaries\":[{\"path\":\"/b\"}]}}}]}", "can never be allowed" },
		/* the same names the proxy refuses, in any spelling */
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"LocalHost.\",\"port\":80}],"
		  "\"binaries\":[{\"path\":\"/b\"}]}}}]}", "can never be allowed" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"api.localhost\",\"port\":80}],"
		  "\"binaries\":[{\"path\":\"/b\"}]}}}]}", "can never be allowed" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"**.x.localhost\",\"port\":80}],"
		  "\"binaries\":[{\"path\":\"/b\"}]}}}]}", "can never be allowed" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"metadata.google.internal.\","
		  "\"port\":80}],\"binaries\":[{\"path\":\"/b\"}]}}}]}",
		  "can never be allowed" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"a.b\",\"port\":70000}],"
		  "\"binaries\":[{\"path\":\"/b\"}]}}}]}", "port" },
		{ "not json", "not a JSON object" },
		/* agents propose host:port and binaries, nothing wider */
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"a.b\",\"port\":443,"
		  "\"enforcement\":\"audit\"}],\"binaries\":[{\"path\":"
		  "\"/b\"}]}}}]}", "endpoint.enforcement is not allowed" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"a.b\",\"port\":443,"
		  "\"allowed_ips\":[\"10.0.0.0/8\"]}],\"binaries\":[{\"path\":"
		  "\"/b\"}]}}}]}", "endpoint.allowed_ips is not allowed" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"a.b\",\"port\":443,"
		  "\"protocol\":\"rest\",\"access\":\"full\"}],"
		  "\"binaries\":[{\"path\":\"/b\"}]}}}]}",
		  "is not allowed in an agent proposal" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"a.b\",\"port\":443,"
		  "\"rules\":[{\"allow\":{\"method\":\"GET\",\"path\":\"/\"}}],"
		  "\"deny_rules\":[{\"method\":\"POST\"}]}],"
		  "\"binaries\":[{\"path\":\"/b\"}]}}}]}",
		  "is not allowed in an agent proposal" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"10.0.0.5\",\"port\":443}],"
		  "\"binaries\":[{\"path\":\"/b\"}]}}}]}",
		  "is an IP address; agents may propose host names only" },
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"x\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"a.b\",\"port\":443}],"
		  "\"binaries\":[{\"path\":\"/b\"}],\"extra\":1}}}]}",
		  "rule.extra is not allowed" },
		/* gh exists: the agent would widen the operator's rule */
		{ "{\"operations\":[{\"addRule\":{\"ruleName\":\"gh\",\"rule\":"
		  "{\"endpoints\":[{\"host\":\"api.github.com\",\"port\":443}],"
		  "\"binaries\":[{\"path\":\"/usr/bin/curl\"}]}}}]}",
		  "ruleName 'gh' already exists" },
	};

	is_int(moatd_proposal_from_agent(d, "box", good, strlen(good), &id, &c),
	    0, "agent proposal accepted (%s)", c.msg);
	/* Accepted but not stored is a lost proposal: a failure. */
	if (ok(moat_store_proposal_get(s, id, &p, NULL) == 0 && p != NULL,
	    "accepted agent proposal %lld is in the store", (long long)id)) {
		is_str(p->origin, "agent", "agent origin");
		ok(p->confidence > 0.74 && p->confidence < 0.76,
		    "agent confidence 0.75");
		is_str(p->reason, "fetch crates", "reason is intent_summary");
		is_str(p->status, "pending", "agent proposal pending");
		like_str(p->rule_json, "\"public_only\":true",
		    "the agent's endpoint is made public_only");
		like_str(p->notes, "the rule is public_only",
		    "and the notes say so");
	}
	moat_store_proposal_free(p);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		memset(&c, 0, sizeof(c));
		is_int(moatd_proposal_from_agent(d, "box", bad[i].body,
		    strlen(bad[i].body), &id, &c), MOAT_ERR_INVALID,
		    "agent: invalid %zu refused", i);
		like_str(c.msg, bad[i].msg, "agent: invalid %zu says why", i);
	}
}

static char *
handle(struct ctl_peer *p, const char *line)
{
	return moatd_control_handle(p, line, strlen(line));
}

static void
test_ctl_handle(struct moatd *d)
{
	struct ctl_peer p = { .d = d, .uid = 1000, .can_change = false };
	char *r;

	strcpy(p.who, "mallory");
	r = handle(&p, "{\"cmd\":");
	like_str(r, "\"ok\":false", "malformed line: error reply");
	like_str(r, "malformed request", "malformed line: says so");
	free(r);
	r = handle(&p, "[1,2]");
	like_str(r, "not a JSON object", "array refused");
	free(r);
	r = handle(&p, "{\"cmd\":\"nope\"}");
	like_str(r, "unknown command", "unknown command");
	free(r);
	r = handle(&p, "{\"cmd\":\"ping\",\"tag\":7}");
	like_str(r, "\"pong\":true", "ping");
	like_str(r, "\"tag\":7", "tag echoed");
	free(r);
	r = handle(&p, "{\"cmd\":\"proposals.approve\",\"ids\":[1]}");
	like_str(r, "permission denied", "approve needs permission");
	free(r);
	r = handle(&p, "{\"cmd\":\"policy.set\",\"sandbox\":\"box\","
	    "\"policy\":\"{}\"}");
	like_str(r, "\"code\":\"denied\"", "policy.set needs permission");
	free(r);
	p.can_change = true;
	r = handle(&p, "{\"cmd\":\"policy.set\",\"sandbox\":\"box\","
	    "\"policy\":\"{\\\"version\\\":1,\\\"bogus\\\":1}\"}");
	like_str(r, "\"diags\":[", "invalid policy: diags");
	like_str(r, "bogus", "invalid policy: names the field");
	free(r);
	r = handle(&p, "{\"cmd\":\"policy.set\",\"sandbox\":\"box\","
	    "\"policy\":" POLICY "}");
	like_str(r, "\"ok\":true", "policy.set accepted");
	free(r);
	r = handle(&p, "{\"cmd\":\"policy.history\",\"sandbox\":\"box\"}");
	like_str(r, "\"source\":\"operator\"", "history lists the set");
	like_str(r, "\"who\":\"mallory\"", "who from the peer");
	free(r);
	r = handle(&p, "{\"cmd\":\"policy.diff\",\"sandbox\":\"box\","
	    "\"from\":3}");
	like_str(r, "\"diff\":\"", "policy.diff");
	like_str(r, "- ", "diff has a removed line");
	free(r);
	r = handle(&p, "{\"cmd\":\"proposals.list\",\"status\":\"all\"}");
	like_str(r, "\"rule_hash\":", "proposals.list shows hashes");
	free(r);
	r = handle(&p, "{\"cmd\":\"sandboxes\"}");
	like_str(r, "\"name\":\"box\"", "sandboxes");
	free(r);
}

/* Child: talk to the socket; exit code has one bit per failed check. */
static int
ctl_client(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct moat_cause c = { { 0 } };
	json_t *req = json_pack("{s:s}", "cmd", "ping"), *rep = NULL;
	char buf[4096], *big;
	int fd, fails = 0;
	ssize_t n;
	size_t got = 0, bigsz;

	if (moat_cli_control_call(path, req, &rep, &c) != 0 ||
	    !json_is_true(json_object_get(rep, "pong")))
		fails |= 1;
	json_decref(rep);
	json_decref(req);
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		return fails | 2 | 4;
	/* Two requests in one write; one malformed. */
	moat_write_all(fd, "garbage\n{\"cmd\":\"ping\"}\n", 24);
	while (got < sizeof(buf) - 1 && (n = read(fd, buf + got,
	    sizeof(buf) - 1 - got)) > 0) {
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "pong") != NULL)
			break;
	}
	buf[got] = '\0';
	if (strstr(buf, "malformed") == NULL || strstr(buf, "pong") == NULL)
		fails |= 2;
	/* Over the line limit: refused, and the next request is served. */
	bigsz = MOAT_JSONL_MAX_LINE + 4096;
	big = malloc(bigsz);
	memset(big, 'x', bigsz);
	big[bigsz - 1] = '\n';
	moat_write_all(fd, big, bigsz);
	free(big);
	moat_write_all(fd, "{\"cmd\":\"ping\"}\n", 16);
	shutdown(fd, SHUT_WR);
	got = 0;
	while (got < sizeof(buf) - 1 && (n = read(fd, buf + got,
	    sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	if (strstr(buf, "larger than 16 MiB") == NULL ||
	    strstr(buf, "pong") == NULL)
		fails |= 4;
	close(fd);
	return fails;
}

struct waitctx {
	pid_t pid;
	int status;
	int ticks;
};

static void
wait_tick(struct moat_loop *l, void *arg)
{
	struct waitctx *w = arg;

	if (waitpid(w->pid, &w->status, WNOHANG) == w->pid ||
	    ++w->ticks > 1000) {
		moat_loop_stop(l);
		return;
	}
	moat_loop_timer(l, 10, wait_tick, w);
}

static void
test_ctl_socket(struct moatd *d, struct moat_loop *l)
{
	struct moatd_control *ctl = NULL;
	struct moat_cause c = { { 0 } };
	struct waitctx w = { 0 };
	json_t *req, *rep = NULL;
	char path[128];
	int r, st;

	snprintf(path, sizeof(path), "%s/ctl.sock", tmpdir);
	r = moatd_control_new(d, path, -1, &ctl, &c);
	is_int(r, 0, "control socket listens (%s)", c.msg);
	if (r != 0)
		return;
	if ((w.pid = fork()) == 0) {
		/* A server gone early must not kill the client silently. */
		signal(SIGPIPE, SIG_IGN);
		_exit(ctl_client(path));
	}
	w.status = -1;
	moat_loop_timer(l, 10, wait_tick, &w);
	moat_loop_run(l);
	if (w.ticks > 1000) {
		kill(w.pid, SIGKILL);
		waitpid(w.pid, NULL, 0);
	}
	st = WIFEXITED(w.status) ? WEXITSTATUS(w.status) : 255;
	ok(st != 255, "client finished in time");
	ok(!(st & 1), "socket: ping via the CLI client");
	ok(!(st & 2), "socket: malformed line answered, next line served");
	ok(!(st & 4), "socket: oversize request refused, the next served");
	moatd_control_free(ctl);
	ok(access(path, F_OK) != 0, "socket removed on free");
	memset(&c, 0, sizeof(c));
	req = json_pack("{s:s}", "cmd", "ping");
	r = moat_cli_control_call(path, req, &rep, &c);
	is_int(r, MOAT_ERR_SYSTEM, "CLI: moatd down is a system error");
	like_str(c.msg, "(is moatd running?)", "CLI: clear error when down");
	json_decref(req);
}

static void
test_retention(struct moatd *d, struct moat_store *s, struct moat_loop *l)
{
	struct moatd_retention *ret = NULL;
	struct moat_store_denial_filter f = { .sandbox = "old" };
	struct moat_denial_event *v = calloc(3000, sizeof(*v));
	struct waitctx w = { .pid = -1 };
	int64_t count = -1, now = moat_wall_ms();
	int i;

	for (i = 0; i < 3000; i++) {
		mkev(&v[i], "old", "/usr/bin/curl", "a.test", "", 443,
		    "connect");
		v[i].ts_ms = i < 2500 ? now - 10 * 86400000LL - i : now;
	}
	moat_store_denials_add(s, v, 3000, NULL);
	free(v);
	is_int(moatd_retention_new(d, 86400, 20, 5000, &ret, NULL), 0,
	    "retention_new");
	/*
	 * Old: the 2500 above and every aggregator test row (2023 dates).
	 * The wait ctx has no child: each run lasts a few ticks.
	 */
	for (i = 0; i < 500 && moatd_retention_deleted(ret) < 202510; i++) {
		w.ticks = 995;
		moat_loop_timer(l, 10, wait_tick, &w);
		moat_loop_run(l);
	}
	is_int(moatd_retention_deleted(ret), 202510,
	    "retention: every old row deleted, in batches");
	moat_store_denials_count(s, &f, &count, NULL);
	is_int(count, 500, "retention: recent rows kept");
	moatd_retention_free(ret);
}

/*
 * The export may go to moatd's stdout, a terminal: a C1 control (which
 * terminals act on even UTF-8 encoded), DEL and a bidi override in a
 * sandbox's binary path stand as JSON escapes, meaning the same text.
 */
static void
test_export_escaped(void)
{
	static const char bin[] = "/w/a\xc2\x9b" "2J\x7f\xe2\x80\xae" "b";
	struct moatd_export *x = NULL;
	struct moat_denial_event ev;
	char path[128], *text = NULL;
	const unsigned char *u;
	bool raw = false;
	size_t len = 0;
	json_t *o;

	snprintf(path, sizeof(path), "%s/events-esc.jsonl", tmpdir);
	is_int(moatd_export_open(path, &x, NULL), 0, "export open (escapes)");
	mkev(&ev, "box", bin, "example.com", "93.184.216.34", 443, "connect");
	moatd_export_denial(x, &ev);
	moatd_export_close(x);
	if (moat_read_file(path, 1 << 20, &text, &len, NULL) != 0) {
		ok(false, "export file unreadable");
		return;
	}
	u = (const unsigned char *)text;
	for (size_t i = 0; i < len; i++)
		if ((u[i] < 0x20 && u[i] != '\n') || u[i] == 0x7f ||
		    (u[i] == 0xc2 && i + 1 < len && u[i + 1] >= 0x80 &&
		    u[i + 1] <= 0x9f) || (u[i] == 0xe2 && i + 2 < len &&
		    u[i + 1] == 0x80 && u[i + 2] == 0xae))
			raw = true;
	ok(!raw, "export: no raw C1, DEL or bidi control on the line");
	o = json_loadb(text, len, JSON_DISABLE_EOF_CHECK, NULL);
	is_str(json_string_value(json_object_get(json_object_get(
	    json_object_get(json_object_get(o, "actor"), "process"), "file"),
	    "path")), bin, "export: the escapes mean the same path");
	json_decref(o);
	free(text);
}

static void
test_export(void)
{
	struct moatd_export *x = NULL;
	struct moat_denial_event ev;
	char path[128], *text = NULL, *nl;
	size_t len;
	json_t *o;

	snprintf(path, sizeof(path), "%s/events.jsonl", tmpdir);
	is_int(moatd_export_open(path, &x, NULL), 0, "export open");
	mkev(&ev, "box", "/usr/bin/curl", "example.com", "93.184.216.34", 443,
	    "connect");
	moatd_export_denial(x, &ev);
	moatd_export_policy(x, "box", 3, "operator", "alice");
	moatd_export_proposal(x, 4, "box", "approved", "alice");
	moatd_export_session(x, true, "box", "SHA256:k", "10.0.0.1", "shell",
	    0, NULL);
	moatd_export_close(x);
	if (!ok(moat_read_file(path, 1 << 20, &text, &len, NULL) == 0,
	    "export file %s readable", path))
		return;
	nl = strchr(text, '\n');
	o = json_loadb(text, nl ? (size_t)(nl - text) : len, 0, NULL);
	is_int(json_integer_value(json_object_get(o, "class_uid")), 4001,
	    "denial: Network Activity 4001");
	is_str(json_string_value(json_object_get(json_object_get(json_object_get(
	    o, "metadata"), "product"), "name")), "moat", "metadata.product");
	is_str(json_string_value(json_object_get(json_object_get(o,
	    "dst_endpoint"), "hostname")), "example.com", "dst_endpoint");
	json_decref(o);
	like_str(text, "\"class_uid\":5019", "policy/proposal: 5019");
	like_str(text, "\"state\":\"APPROVED\"", "proposal state APPROVED");
	like_str(text, "\"class_uid\":4007", "session: SSH Activity 4007");
	free(text);
	test_export_escaped();
}

int
main(void)
{
	struct moat_loop *l = NULL;
	struct moat_store *s = NULL;
	struct moatd *d = NULL;
	struct moat_cause c = { { 0 } };
	char path[128];
	int r;

	moat_log_init("test_ops", MOAT_LOG_ERROR);
	if (!ok(mkdtemp(tmpdir) != NULL, "temporary directory: %s",
	    strerror(errno)))
		return done_testing();
	test_diff();
	test_suggest();
	test_export();
	snprintf(path, sizeof(path), "%s/moat.db", tmpdir);
	if (moat_loop_new(&l, &c) != 0 ||
	    moat_store_open(path, MOAT_STORE_CREATE, &s, &c) != 0 ||
	    moatd_new_for_test(l, s, &d) != 0) {
		ok(0, "test moatd: %s", c.msg);
		return done_testing();
	}
	r = moatd_add_sandbox_for_test(d, "box", POLICY, &c);
	is_int(r, 0, "test sandbox (%s)", c.msg);
	test_aggregator(d, s);
	test_approve(d, s);
	test_agent(d, s);
	test_ctl_handle(d);
	test_ctl_socket(d, l);
	test_retention(d, s, l);
	moatd_free_for_test(d);
	moat_store_close(s);
	moat_loop_free(l);
	snprintf(path, sizeof(path), "rm -rf -- '%s'", tmpdir);
	if (system(path) != 0)
		diag("could not remove %s", tmpdir);
	return done_testing();
}
