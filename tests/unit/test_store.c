#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event.h"
#include "common/util.h"
#include "store/store.h"
#include "tests/unit/store_util.h"
#include "tests/unit/tap.h"

/* ---- open and migrations ---- */

static void
test_open(void)
{
	struct moat_cause c = { { 0 } };
	struct moat_store *s = NULL;
	char p[256];
	int r, v;

	db_path(p, sizeof(p), "missing.db");
	r = moat_store_open(p, MOAT_STORE_RDONLY, &s, &c);
	is_int(r, MOAT_ERR_NOTFOUND, "missing store is NOTFOUND");
	like_str(c.msg, "missing.db", "cause names the path");
	ok(s == NULL, "out untouched on failure");

	db_path(p, sizeof(p), "open.db");
	r = moat_store_open(p, MOAT_STORE_CREATE, &s, &c);
	is_int(r, 0, "create and migrate (%s)", c.msg);
	v = s != NULL ? moat_store_schema_version(s) : -1;
	ok(v >= 1, "schema version %d", v);
	is_int(moat_store_check(s, &c), 0, "integrity ok");
	moat_store_close(s);
	s = NULL;
	r = moat_store_open(p, MOAT_STORE_CREATE, &s, &c);
	is_int(r, 0, "second open migrates nothing (%s)", c.msg);
	is_int(s != NULL ? moat_store_schema_version(s) : -1, v,
	    "same schema version");
	moat_store_close(s);
	s = NULL;
	r = moat_store_open(p, 0, &s, &c);
	is_int(r, 0, "writable open without CREATE of an existing store");
	moat_store_close(s);
	s = NULL;
	r = moat_store_open(p, MOAT_STORE_RDONLY, &s, &c);
	is_int(r, 0, "read-only open (%s)", c.msg);
	r = moat_store_sandbox_upsert(s, "x", 1, "", &c);
	is_int(r, MOAT_ERR_DENIED, "read-only store refuses writes");
	moat_store_close(s);
	moat_store_close(NULL);
	rm_db(p);
}

/* ---- sandboxes, policies, sessions ---- */

static int
sb_cb(const struct moat_store_sandbox *sb, void *arg)
{
	char *out = arg;

	snprintf(out + strlen(out), 256 - strlen(out), "%s:%lld:%lld:%s;",
	    sb->name, (long long)sb->created_ms, (long long)sb->updated_ms,
	    sb->config);
	return 0;
}

static int
pol_cb(const struct moat_store_policy *p, void *arg)
{
	char *out = arg;

	snprintf(out + strlen(out), 256 - strlen(out), "%d:%s:%s;",
	    p->version, p->source, p->json);
	return 0;
}

static int
stop_cb(const struct moat_store_policy *p, void *arg)
{
	(*(int *)arg)++;
	return 42;
}

static void
test_sandboxes_policies(struct moat_store *s)
{
	struct moat_cause c = { { 0 } };
	struct moat_store_policy *p = NULL;
	char out[256] = "";
	int v = 0, n = 0, r;

	is_int(moat_store_sandbox_upsert(s, "b", 100, "{}", &c), 0,
	    "sandbox b");
	is_int(moat_store_sandbox_upsert(s, "a", 200, "{\"x\":1}", &c), 0,
	    "sandbox a");
	is_int(moat_store_sandbox_upsert(s, "a", 300, "{\"x\":2}", &c), 0,
	    "sandbox a again");
	is_int(moat_store_sandbox_list(s, sb_cb, out, &c), 0, "list sandboxes");
	is_str(out, "a:200:300:{\"x\":2};b:100:100:{};",
	    "upsert keeps created, updates config");

	is_int(moat_store_policy_add(s, "a", "{\"v\":1}", "h1", "file", NULL,
	    NULL, &v, &c), 0, "policy v1");
	is_int(v, 1, "first version is 1");
	moat_store_policy_add(s, "a", "{\"v\":2}", "h2", "operator", "op",
	    "why", &v, &c);
	is_int(v, 2, "second version is 2");
	moat_store_policy_add(s, "b", "{\"b\":1}", "hb", "agent", NULL, NULL,
	    &v, &c);
	is_int(v, 1, "versions count per sandbox");
	r = moat_store_policy_add(s, "a", "{}", "h", "email", NULL, NULL, &v,
	    &c);
	is_int(r, MOAT_ERR_INVALID, "unknown source refused");

	is_int(moat_store_policy_get(s, "a", 0, &p, &c), 0, "get latest");
	ok(p != NULL && p->version == 2 && strcmp(p->json, "{\"v\":2}") == 0 &&
	    strcmp(p->who, "op") == 0 && strcmp(p->note, "why") == 0 &&
	    strcmp(p->hash, "h2") == 0 && p->created_ms > 0,
	    "latest is v2 with all fields");
	moat_store_policy_free(p);
	p = NULL;
	is_int(moat_store_policy_get(s, "a", 1, &p, &c), 0, "get v1");
	ok(p != NULL && p->version == 1 && strcmp(p->source, "file") == 0 &&
	    strcmp(p->who, "") == 0, "v1 fields");
	moat_store_policy_free(p);
	p = NULL;
	is_int(moat_store_policy_get(s, "a", 9, &p, &c), MOAT_ERR_NOTFOUND,
	    "missing version");
	is_int(moat_store_policy_get(s, "zz", 0, &p, &c), MOAT_ERR_NOTFOUND,
	    "no policy for sandbox");
	ok(p == NULL, "out untouched");
	out[0] = '\0';
	moat_store_policy_list(s, "a", pol_cb, out, &c);
	is_str(out, "2:operator:{\"v\":2};1:file:{\"v\":1};",
	    "history newest first");
	is_int(moat_store_policy_list(s, "a", stop_cb, &n, &c), 42,
	    "callback value stops the walk and is returned");
	is_int(n, 1, "walk stopped after one row");
	moat_store_policy_free(NULL);
}

static int
proxy_cb(const struct moat_store_sandbox *sb, void *arg)
{
	char *out = arg;

	if (strcmp(sb->name, "pend") == 0)
		snprintf(out + strlen(out), 256 - strlen(out), "%d/%s/%lld;",
		    sb->proxy_version, sb->proxy_error, (long long)sb->proxy_ms);
	return 0;
}

static int
state_cb(const struct moat_store_policy *p, void *arg)
{
	char *out = arg;

	snprintf(out + strlen(out), 256 - strlen(out), "%d:%s:%s;", p->version,
	    p->state, p->state_note);
	return 0;
}

/* Pending versions never count as the active one until settled. */
static void
test_policy_states(struct moat_store *s)
{
	struct moat_cause c = { { 0 } };
	struct moat_store_policy *p = NULL;
	char out[256] = "";
	int v1 = 0, v2 = 0, v3 = 0, got;

	moat_store_sandbox_upsert(s, "pend", 1, "", &c);
	moat_store_policy_add(s, "pend", "{\"v\":1}", "h1", "file", NULL,
	    NULL, &v1, &c);
	is_int(moat_store_policy_add_pending(s, "pend", "{\"v\":2}", "h2",
	    "operator", "op", NULL, &v2, &c), 0, "add a pending version");
	is_int(v2, v1 + 1, "numbered like any other");
	got = moat_store_policy_get(s, "pend", 0, &p, &c) == 0 ? p->version :
	    -1;
	is_int(got, v1, "while pending, the active version is the old one");
	moat_store_policy_free(p);
	p = NULL;
	is_int(moat_store_policy_settle(s, "pend", v2, false,
	    "proxy refused it", &c), 0, "settle as refused");
	is_int(moat_store_policy_settle(s, "pend", v2, true, NULL, &c),
	    MOAT_ERR_NOTFOUND, "a settled version stays settled");
	got = moat_store_policy_get(s, "pend", 0, &p, &c) == 0 ? p->version :
	    -1;
	is_int(got, v1, "a refused version never becomes active");
	moat_store_policy_free(p);
	p = NULL;
	moat_store_policy_add_pending(s, "pend", "{\"v\":3}", "h3",
	    "operator", "op", NULL, &v3, &c);
	is_int(v3, v2 + 1, "a refused number is not reused");
	is_int(moat_store_policy_settle(s, "pend", v3, true, NULL, &c), 0,
	    "settle as active");
	got = moat_store_policy_get(s, "pend", 0, &p, &c) == 0 ? p->version :
	    -1;
	is_int(got, v3, "the acknowledged version is active");
	moat_store_policy_free(p);
	p = NULL;
	is_int(moat_store_policy_get(s, "pend", v2, &p, &c), 0,
	    "a refused version is still readable by number");
	is_str(p ? p->state : NULL, "refused", "with its state");
	moat_store_policy_free(p);
	moat_store_policy_list(s, "pend", state_cb, out, &c);
	is_str(out, "3:active:;2:refused:proxy refused it;1:active:;",
	    "history shows every state and why");

	out[0] = '\0';
	moat_store_sandbox_list(s, proxy_cb, out, &c);
	is_str(out, "0//0;", "no proxy state recorded yet");
	is_int(moat_store_sandbox_set_proxy(s, "pend", 1, "refused v2", 77,
	    &c), 0, "record what the proxy enforces");
	out[0] = '\0';
	moat_store_sandbox_list(s, proxy_cb, out, &c);
	is_str(out, "1/refused v2/77;", "and read it back");
	is_int(moat_store_sandbox_set_proxy(s, "nosuch", 1, "", 1, &c),
	    MOAT_ERR_NOTFOUND, "for an unknown sandbox: not found");
}

static int
sup_cb(const struct moat_store_suppressed *r, void *arg)
{
	char *out = arg;

	snprintf(out + strlen(out), 256 - strlen(out), "%s/%s/%lld/%lld/%lld/"
	    "%lld;", r->sandbox, r->kind, (long long)r->minute_ms,
	    (long long)r->count, (long long)r->first_ms, (long long)r->last_ms);
	return 0;
}

/* Flood counts: one row per sandbox, kind and minute, adding up. */
static void
test_suppressed(struct moat_store *s)
{
	struct moat_store_suppressed v[3] = {
		{ "sup", MOAT_STORE_SUPPRESSED_DENIALS, 60000 + 5, 10, 60005,
		  60100 },
		{ "sup", MOAT_STORE_SUPPRESSED_DENIALS, 60000 + 900, 5, 60001,
		  60900 },
		{ "sup", MOAT_STORE_SUPPRESSED_PROPOSALS, 120000, 2, 120000,
		  120500 },
	};
	struct moat_store_suppressed bad = { "sup", "email", 0, 1, 0, 0 };
	struct moat_cause c = { { 0 } };
	char out[256] = "";

	is_int(moat_store_suppressed_add(s, v, 3, &c), 0, "add counts");
	moat_store_suppressed_list(s, "sup", NULL, 0, sup_cb, out, &c);
	is_str(out, "sup/proposals/120000/2/120000/120500;"
	    "sup/denials/60000/15/60001/60900;",
	    "one row per minute and kind, counts added, first/last widened");
	out[0] = '\0';
	moat_store_suppressed_totals(s, "sup", NULL, 0, sup_cb, out, &c);
	is_str(out, "sup/denials/60000/15/60001/60900;"
	    "sup/proposals/120000/2/120000/120500;", "totals per kind");
	out[0] = '\0';
	moat_store_suppressed_list(s, "sup", MOAT_STORE_SUPPRESSED_DENIALS,
	    60950, sup_cb, out, &c);
	is_str(out, "", "since_ms after a row's last: not listed");
	is_int(moat_store_suppressed_add(s, &bad, 1, &c), MOAT_ERR_INVALID,
	    "an unknown kind is refused");
	bad.kind = MOAT_STORE_SUPPRESSED_AGENT;
	bad.count = 0;
	is_int(moat_store_suppressed_add(s, &bad, 1, &c), MOAT_ERR_INVALID,
	    "so is a count of 0");
	is_int(moat_store_denials_prune(s, 120000, 10, NULL, &c), 0,
	    "prune before minute 2");
	out[0] = '\0';
	moat_store_suppressed_list(s, "sup", NULL, 0, sup_cb, out, &c);
	is_str(out, "sup/proposals/120000/2/120000/120500;",
	    "retention prunes counts with the denials");
}

static int
sess_cb(const struct moat_store_session *ss, void *arg)
{
	char *out = arg;

	snprintf(out + strlen(out), 256 - strlen(out), "%s/%s/%s/%s/%lld/%lld"
	    "/%d/%s;", ss->sandbox, ss->who, ss->from, ss->kind,
	    (long long)ss->start_ms, (long long)ss->end_ms, ss->exit_status,
	    ss->exit_signal);
	return 0;
}

static void
test_sessions(struct moat_store *s)
{
	struct moat_cause c = { { 0 } };
	int64_t id1 = 0, id2 = 0, id3 = 0;
	char out[256] = "";

	is_int(moat_store_session_start(s, "a", "SHA256:k", "127.0.0.1:5",
	    "shell", 1000, &id1, &c), 0, "session 1");
	moat_store_session_start(s, "a", "relay:x", "::1", "exec", 2000, &id2,
	    &c);
	moat_store_session_start(s, "b", "k", "h", "sftp", 3000, &id3, &c);
	ok(id1 > 0 && id2 > id1 && id3 > id2, "ids increase");
	is_int(moat_store_session_end(s, id1, 1500, 0, NULL, &c), 0, "end 1");
	is_int(moat_store_session_end(s, id2, 2500, -1, "TERM", &c), 0,
	    "end 2 by signal");
	is_int(moat_store_session_end(s, 9999, 1, 0, NULL, &c),
	    MOAT_ERR_NOTFOUND, "end of unknown session");
	moat_store_session_list(s, "a", 0, sess_cb, out, &c);
	is_str(out, "a/relay:x/::1/exec/2000/2500/-1/TERM;"
	    "a/SHA256:k/127.0.0.1:5/shell/1000/1500/0/;",
	    "sessions of a, newest first");
	out[0] = '\0';
	moat_store_session_list(s, NULL, 1, sess_cb, out, &c);
	is_str(out, "b/k/h/sftp/3000/0/-1/;", "limit 1, any sandbox, running");
}

static int
reason_cb(const struct moat_store_session *ss, void *arg)
{
	char *out = arg;

	snprintf(out + strlen(out), 256 - strlen(out), "%lld/%lld/%d/%s/%s;",
	    (long long)ss->id, (long long)ss->end_ms, ss->exit_status,
	    ss->exit_signal, ss->end_reason);
	return 0;
}

/* Sessions whose end never came: closed by moatd with a reason. */
static void
test_sessions_lost(struct moat_store *s)
{
	struct moat_cause c = { { 0 } };
	int64_t a = 0, b = 0, d = 0, n = -1;
	char out[256] = "", want[256];

	moat_store_session_start(s, "lost", "k", "h", "exec", 10, &a, &c);
	moat_store_session_start(s, "lost", "k", "h", "shell", 20, &b, &c);
	moat_store_session_start(s, "lost", "k", "h", "sftp", 30, &d, &c);
	is_int(moat_store_session_end(s, d, 35, 0, NULL, &c), 0,
	    "one ends by itself");
	is_int(moat_store_session_lost(s, a, 40, "connection killed (KILL)",
	    &c), 0, "a running session closed as lost");
	is_int(moat_store_session_lost(s, a, 50, "again", &c),
	    MOAT_ERR_NOTFOUND, "an ended session is not closed twice");
	is_int(moat_store_session_lost(s, d, 50, "late", &c),
	    MOAT_ERR_NOTFOUND, "nor one that ended by itself");
	is_int(moat_store_session_lost(s, b, 50, "", &c), MOAT_ERR_INVALID,
	    "a reason is required");
	is_int(moat_store_sessions_close_open(s, 60, "moatd restarted", &n,
	    &c), 0, "close every running session");
	/* Other tests' running sessions are closed too: count ours only. */
	ok(n >= 1, "at least the one left running (%lld)", (long long)n);
	moat_store_session_list(s, "lost", 0, reason_cb, out, &c);
	snprintf(want, sizeof(want), "%lld/35/0//;%lld/60/-1//moatd restarted;"
	    "%lld/40/-1//connection killed (KILL);", (long long)d,
	    (long long)b, (long long)a);
	is_str(out, want, "each row says how it ended");
	n = -1;
	moat_store_sessions_close_open(s, 70, "x", &n, &c);
	is_int(n, 0, "nothing left running");
}

/* ---- proposals ---- */

/* ---- trusted hashes ---- */

static int
trust_cb(const struct moat_store_trust *t, void *arg)
{
	char *out = arg;
	size_t n = strlen(out);

	snprintf(out + n, 1024 - n, "%s %s %.4s %s;", t->sandbox, t->binary,
	    t->sha256, t->source);
	return 0;
}

static void
test_trust(struct moat_store *s)
{
	char a[65], b[65], out[1024] = "";
	struct moat_cause c = { { 0 } };

	memset(a, 'a', 64);
	a[64] = '\0';
	memset(b, 'b', 64);
	b[64] = '\0';
	is_int(moat_store_trust_put(s, "box", "/usr/bin/curl", a,
	    MOAT_STORE_TRUST_TOFU, 10, &c), 0, "trust: first use recorded");
	is_int(moat_store_trust_put(s, "box", "/usr/bin/curl", b,
	    MOAT_STORE_TRUST_TOFU, 11, &c), 0, "trust: a second first use");
	is_int(moat_store_trust_put(s, "other", "/usr/bin/curl", b,
	    MOAT_STORE_TRUST_TOFU, 12, &c), 0, "trust: per sandbox");
	moat_store_trust_list(s, "box", trust_cb, out, &c);
	is_str(out, "box /usr/bin/curl aaaa tofu;", "trust: the first hash "
	    "seen stays trusted");
	is_int(moat_store_trust_put(s, "box", "/usr/bin/curl", b,
	    MOAT_STORE_TRUST_OPERATOR, 13, &c), 0, "trust: operator approval");
	out[0] = '\0';
	moat_store_trust_list(s, NULL, trust_cb, out, &c);
	is_str(out, "box /usr/bin/curl bbbb operator;other /usr/bin/curl "
	    "bbbb tofu;", "trust: an approval replaces it; list all");
	is_int(moat_store_trust_put(s, "box", "/usr/bin/curl", a,
	    MOAT_STORE_TRUST_TOFU, 14, &c), 0, "trust: a late first use");
	out[0] = '\0';
	moat_store_trust_list(s, "box", trust_cb, out, &c);
	is_str(out, "box /usr/bin/curl bbbb operator;", "trust: does not undo "
	    "the approval");
	is_int(moat_store_trust_put(s, "box", "curl", a, MOAT_STORE_TRUST_TOFU,
	    15, &c), MOAT_ERR_INVALID, "trust: a relative path refused");
	is_int(moat_store_trust_put(s, "box", "/x", "ABCD",
	    MOAT_STORE_TRUST_TOFU, 15, &c), MOAT_ERR_INVALID,
	    "trust: a malformed hash refused");
	is_int(moat_store_trust_put(s, "box", "/x", a, "guess", 15, &c),
	    MOAT_ERR_INVALID, "trust: an unknown source refused");
	is_int(moat_store_trust_forget(s, "box", "/usr/bin/curl", &c), 0,
	    "trust: forget");
	is_int(moat_store_trust_forget(s, "box", "/usr/bin/curl", &c),
	    MOAT_ERR_NOTFOUND, "trust: forget twice is NOTFOUND");
	out[0] = '\0';
	moat_store_trust_list(s, "box", trust_cb, out, &c);
	is_str(out, "", "trust: forgotten");
}

static void
test_proposals(struct moat_store *s)
{
	struct moat_store_proposal in = { 0 }, *p = NULL;
	struct moat_cause c = { { 0 } };
	int64_t id = 0, id2 = 0;
	bool created = false;
	int r;

	in.sandbox = "a";
	in.key = "a|/usr/bin/curl|x.com|443";
	in.name = "allow_x";
	in.rule_json = "{\"r\":1}";
	in.rule_hash = "h1";
	in.binary = "/usr/bin/curl";
	in.host = "x.com";
	in.port = 443;
	in.confidence = 0.5;
	in.notes = "[]";
	in.origin = "mechanistic";
	in.first_ms = 100;
	is_int(moat_store_proposal_upsert(s, &in, &id, &created, &c), 0,
	    "new proposal (%s)", c.msg);
	ok(created && id > 0, "created");
	in.rule_json = "{\"r\":2}";
	in.rule_hash = "h2";
	in.hits = 3;
	in.first_ms = 50;
	in.last_ms = 900;
	in.confidence = 0.75;
	is_int(moat_store_proposal_upsert(s, &in, &id2, &created, &c), 0,
	    "same key again");
	ok(!created && id2 == id, "same row");
	is_int(moat_store_proposal_get(s, id, &p, &c), 0, "get");
	ok(p != NULL && p->hits == 4 && p->last_ms == 900 && p->first_ms == 100 &&
	    strcmp(p->rule_json, "{\"r\":2}") == 0 &&
	    strcmp(p->rule_hash, "h2") == 0 && p->confidence == 0.75 &&
	    strcmp(p->status, "pending") == 0 && p->port == 443 &&
	    strcmp(p->origin, "mechanistic") == 0,
	    "hits bumped, rule replaced while pending");
	moat_store_proposal_free(p);
	p = NULL;

	r = moat_store_proposal_set_status(s, id, "maybe", "op", NULL, &c);
	is_int(r, MOAT_ERR_INVALID, "bad status");
	r = moat_store_proposal_set_status(s, 777, "approved", "op", NULL, &c);
	is_int(r, MOAT_ERR_NOTFOUND, "unknown id");
	c.msg[0] = '\0';
	r = moat_store_proposal_set_status(s, id, "approved", "op", "ok", &c);
	is_int(r, 0, "approve %s", c.msg);
	r = moat_store_proposal_set_status(s, id, "rejected", "op2", NULL, &c);
	is_int(r, MOAT_ERR_INVALID, "decided proposal cannot change");
	like_str(c.msg, "already approved", "cause says its status");

	in.rule_json = "{\"r\":3}";
	in.hits = 1;
	in.last_ms = 1000;
	moat_store_proposal_upsert(s, &in, NULL, NULL, &c);
	moat_store_proposal_get(s, id, &p, &c);
	ok(p != NULL && p->hits == 5 && p->last_ms == 1000 &&
	    strcmp(p->rule_json, "{\"r\":2}") == 0 &&
	    strcmp(p->status, "approved") == 0 &&
	    strcmp(p->decided_by, "op") == 0 && p->decided_ms > 0 &&
	    strcmp(p->decision_note, "ok") == 0,
	    "decided row counts hits but keeps the approved rule");
	moat_store_proposal_free(p);
	p = NULL;

	in.key = "a|hash|/usr/bin/python3";
	in.origin = "binary-changed";
	moat_store_proposal_upsert(s, &in, &id2, NULL, &c);
	in.key = "b|x";
	in.sandbox = "b";
	in.origin = "agent";
	in.reason = "needs pypi";
	moat_store_proposal_upsert(s, &in, NULL, NULL, &c);
	in.key = "b|y";
	in.origin = "telepathy";
	r = moat_store_proposal_upsert(s, &in, NULL, NULL, &c);
	is_int(r, MOAT_ERR_INVALID, "unknown origin refused");
	moat_store_proposal_free(NULL);
}

struct plist {
	int n;
	char names[256];
};

static int
prop_cb(const struct moat_store_proposal *p, void *arg)
{
	struct plist *l = arg;

	l->n++;
	snprintf(l->names + strlen(l->names), sizeof(l->names) -
	    strlen(l->names), "%s;", p->key);
	return 0;
}

static void
test_proposal_list(struct moat_store *s)
{
	struct moat_cause c = { { 0 } };
	struct plist l = { 0 };

	moat_store_proposal_list(s, NULL, NULL, prop_cb, &l, &c);
	is_int(l.n, 3, "three proposals");
	memset(&l, 0, sizeof(l));
	moat_store_proposal_list(s, "a", "pending", prop_cb, &l, &c);
	is_str(l.names, "a|hash|/usr/bin/python3;", "pending of a");
	memset(&l, 0, sizeof(l));
	moat_store_proposal_list(s, NULL, "approved", prop_cb, &l, &c);
	is_str(l.names, "a|/usr/bin/curl|x.com|443;", "approved");
}

/* ---- denials ---- */

struct evlist {
	int n;
	int64_t ids[64];
	struct moat_denial_event ev[64];
};

static int
ev_cb(const struct moat_denial_event *ev, int64_t id, void *arg)
{
	struct evlist *l = arg;

	if (l->n < 64) {
		l->ev[l->n] = *ev;
		l->ids[l->n] = id;
	}
	l->n++;
	return 0;
}

static int
query_n(struct moat_store *s, const struct moat_store_denial_filter *f,
    struct evlist *l)
{
	memset(l, 0, sizeof(*l));
	if (moat_store_denials_query(s, f, ev_cb, l, NULL) != 0)
		return -1;
	return l->n;
}

static void
test_denials(struct moat_store *s)
{
	struct moat_denial_event v[6];
	struct moat_store_denial_filter f = { 0 };
	struct moat_cause c = { { 0 } };
	static struct evlist l;
	int64_t n = 0;
	bool sorted = true;

	mkev(&v[0], 1000, "a", "/usr/bin/curl", "x.com", 443);
	moat_strlcpy(v[0].sha256, "ab12", sizeof(v[0].sha256));
	moat_strlcpy(v[0].ancestors[0], "/usr/bin/bash", 256);
	moat_strlcpy(v[0].ancestors[1], "/usr/sbin/sshd", 256);
	v[0].nancestors = 2;
	v[0].pid = 42;
	v[0].uid = 1000;
	moat_strlcpy(v[0].ip, "10.0.0.1", sizeof(v[0].ip));
	moat_strlcpy(v[0].reason, "no policy has x.com:443",
	    sizeof(v[0].reason));
	v[0].policy_version = 3;
	v[0].cut = MOAT_EVF_BIT(MOAT_EVF_BINARY) |
	    MOAT_EVF_BIT(MOAT_EVF_ANCESTORS);
	v[0].escaped = MOAT_EVF_BIT(MOAT_EVF_REASON);
	mkev(&v[1], 2000, "a", "/usr/bin/curl", "y.com", 80);
	mkev(&v[2], 3000, "b", "/usr/bin/git", "x.com", 443);
	mkev(&v[3], 4000, "a", "/usr/bin/git", "x.com", 22);
	moat_strlcpy(v[3].stage, "bypass", sizeof(v[3].stage));
	mkev(&v[4], 4000, "a", "", "10.1.1.1", 53);
	moat_strlcpy(v[4].protocol, "udp", sizeof(v[4].protocol));
	mkev(&v[5], 5000, "b", "/usr/bin/curl", "x.com", 443);

	is_int(moat_store_denials_add(s, v, 0, &c), 0, "empty batch");
	is_int(moat_store_denials_add(s, v, 6, &c), 0, "batch of 6 (%s)",
	    c.msg);
	is_int(query_n(s, NULL, &l), 6, "all six back");
	for (int i = 1; i < l.n; i++)
		if (l.ev[i].ts_ms > l.ev[i - 1].ts_ms ||
		    (l.ev[i].ts_ms == l.ev[i - 1].ts_ms &&
		    l.ids[i] > l.ids[i - 1]))
			sorted = false;
	ok(sorted, "newest first");
	ok(memcmp(&l.ev[5], &v[0], sizeof(v[0])) == 0,
	    "every field round-trips (ancestors, sha256, ip, reason, the "
	    "cut and escaped marks, ...)");
	ok(memcmp(&l.ev[1], &v[4], sizeof(v[0])) == 0 && l.ids[1] > l.ids[2],
	    "equal times: later insert first");

	f.sandbox = "a";
	is_int(query_n(s, &f, &l), 4, "sandbox a");
	f.binary = "/usr/bin/curl";
	is_int(query_n(s, &f, &l), 2, "sandbox a, curl");
	f.host = "y.com";
	is_int(query_n(s, &f, &l), 1, "sandbox a, curl, y.com");
	memset(&f, 0, sizeof(f));
	f.since_ms = 3000;
	is_int(query_n(s, &f, &l), 4, "since 3000 (inclusive)");
	f.until_ms = 5000;
	is_int(query_n(s, &f, &l), 3, "since 3000 until 5000 (exclusive)");
	memset(&f, 0, sizeof(f));
	f.stage = "bypass";
	is_int(query_n(s, &f, &l), 1, "stage bypass");
	memset(&f, 0, sizeof(f));
	f.port = 443;
	f.limit = 2;
	is_int(query_n(s, &f, &l), 2, "port 443, limit 2");
	ok(l.ev[0].ts_ms == 5000 && l.ev[1].ts_ms == 3000,
	    "limit keeps the newest");
	memset(&f, 0, sizeof(f));
	f.host = "x.com";
	is_int(moat_store_denials_count(s, &f, &n, &c), 0, "count");
	is_int(n, 4, "four denials to x.com");
	is_int(moat_store_denials_count(s, NULL, &n, &c), 0, "count all");
	is_int(n, 6, "six in all");
}


static int
brute(const struct moat_denial_event *v, const int (*key)[3], int n,
    const char *sb, int64_t since, struct bgroup *out)
{
	int ng = 0, j;

	for (int i = 0; i < n; i++) {
		if (strcmp(v[i].sandbox, sb) != 0 || v[i].ts_ms < since)
			continue;
		for (j = 0; j < ng; j++)
			if (out[j].bin == key[i][0] &&
			    out[j].host == key[i][1] && out[j].port == key[i][2])
				break;
		if (j == ng) {
			out[ng] = (struct bgroup){ key[i][0], key[i][1],
				key[i][2], 0, v[i].ts_ms, v[i].ts_ms };
			ng++;
		}
		out[j].count++;
		if (v[i].ts_ms < out[j].first)
			out[j].first = v[i].ts_ms;
		if (v[i].ts_ms > out[j].last)
			out[j].last = v[i].ts_ms;
	}
	return ng;
}

static void
test_top_exact(struct moat_store *s)
{
	static struct moat_denial_event v[TOP_N];
	static int key[TOP_N][3];
	static struct bgroup want[64];
	struct moat_store_denial_filter f = { 0 };
	struct moat_cause c = { { 0 } };
	struct topcheck t;
	int64_t base = 1700000000000LL + 12345, since;
	int bad = 0, r;

	for (int i = 0; i < TOP_N; i++) {
		/* Skewed keys so counts differ; 3 hours of spread. */
		key[i][0] = (rand() % 5) * (rand() % 2);
		key[i][1] = rand() % 6;
		key[i][2] = rand() % 3 == 0 ? 80 : 443;
		mkev(&v[i], base + rand() % (3 * 3600 * 1000),
		    i % 7 == 0 ? "other" : "t", tbins[key[i][0]],
		    thosts[key[i][1]], key[i][2]);
	}
	r = moat_store_denials_add(s, v, TOP_N, &c);
	is_int(r, 0, "add %d spread denials (%s)", TOP_N, c.msg);
	for (int k = 0; k < 8; k++) {
		since = k == 0 ? 0 : k == 1 ? base + 3600 * 1000 -
		    (base % 60000) : base + rand() % (3 * 3600 * 1000);
		memset(&f, 0, sizeof(f));
		f.sandbox = "t";
		f.since_ms = since;
		memset(&t, 0, sizeof(t));
		t.want = want;
		t.nwant = brute(v, key, TOP_N, "t", since, want);
		r = moat_store_denials_top(s, &f, top_cb, &t, &c);
		if (r != 0 || t.bad != 0 || t.n != t.nwant) {
			bad++;
			diag("since %lld: r=%d groups %d want %d: %s",
			    (long long)since, r, t.n, t.nwant, t.first_bad);
		}
		/* The stage filter takes the plain scan: same answer. */
		f.stage = "connect";
		memset(&t, 0, sizeof(t));
		t.want = want;
		t.nwant = brute(v, key, TOP_N, "t", since, want);
		r = moat_store_denials_top(s, &f, top_cb, &t, &c);
		if (r != 0 || t.bad != 0 || t.n != t.nwant) {
			bad++;
			diag("scan since %lld: %s", (long long)since,
			    t.first_bad);
		}
	}
	is_int(bad, 0, "top equals brute force (8 windows, rollup and scan)");
	memset(&f, 0, sizeof(f));
	f.limit = 3;
	memset(&t, 0, sizeof(t));
	moat_store_denials_top(s, &f, top_cb, &t, &c);
	is_int(t.n, 3, "top limit 3");
	ok(t.bad == 0, "count descending");
}

static void
test_prune(struct moat_store *s)
{
	struct moat_store_denial_filter f = { 0 };
	struct moat_cause c = { { 0 } };
	struct topcheck t = { 0 };
	int64_t before, after, cut, older;
	size_t del = 0, total = 0;
	int calls = 0, r;

	moat_store_denials_count(s, NULL, &before, &c);
	cut = 1700000000000LL + 90 * 60 * 1000 + 30000;
	f.until_ms = cut - cut % 60000; /* prune rounds down to the minute */
	moat_store_denials_count(s, &f, &older, &c);
	ok(older > 100, "%lld rows to prune", (long long)older);
	do {
		r = moat_store_denials_prune(s, cut, 100, &del, &c);
		total += del;
	} while (r == 0 && del == 100 && ++calls < 1000);
	is_int(r, 0, "prune (%s)", c.msg);
	is_int((int64_t)total, older, "pruned exactly the older rows");
	moat_store_denials_count(s, NULL, &after, &c);
	is_int(after, before - older, "the rest stays");
	moat_store_denials_top(s, NULL, top_cb, &t, &c);
	is_int(t.sum, after, "rollups agree with rows after prune");
	r = moat_store_denials_prune(s, cut, 100, &del, &c);
	ok(r == 0 && del == 0, "second prune finds nothing");
}

int
main(void)
{
	struct moat_cause c = { { 0 } };
	struct moat_store *s = NULL;
	char p[256];

	snprintf(dir, sizeof(dir), "/tmp/moat-test-store-XXXXXX");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_open();
	db_path(p, sizeof(p), "main.db");
	if (moat_store_open(p, MOAT_STORE_CREATE, &s, &c) != 0) {
		ok(0, "open %s: %s", p, c.msg);
		return done_testing();
	}
	test_sandboxes_policies(s);
	test_sessions(s);
	test_sessions_lost(s);
	test_policy_states(s);
	test_suppressed(s);
	test_trust(s);
	test_proposals(s);
	test_proposal_list(s);
	test_denials(s);
	test_top_exact(s);
	test_prune(s);
	moat_store_close(s);
	rm_db(p);
	rmdir(dir);
	return done_testing();
}
