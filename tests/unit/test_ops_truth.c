/*
 * One source of truth for the active policy: a version is active in the
 * store only once the proxy installed it. A stand-in proxy (the test
 * installer hook) refuses, stays silent or accepts; the store, moatd's
 * current policy and the `sandboxes` control reply must agree with what
 * it did. Runs against a temporary store (no kernel state).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/store.h"
#include "moatd/ctl.h"
#include "moatd/moatd.h"
#include "moatd/proposals.h"
#include "tests/unit/ops_fixture.h"
#include "tests/unit/tap.h"

#define POL(host) "{\"version\":1,\"network_policies\":{\"r\":{\"name\":" \
	"\"r\",\"endpoints\":[{\"host\":\"" host "\",\"port\":443}]," \
	"\"binaries\":[{\"path\":\"/usr/bin/git\"}]}}}"

enum answer { ACCEPT, REFUSE, SILENT };

static enum answer answer;
static char calls[512];	/* "version/wait_ms " per call */

static int
fake_proxy(struct moatd *d, const char *sandbox, int version,
    const char *json, int wait_ms, struct moat_cause *cause)
{
	snprintf(calls + strlen(calls), sizeof(calls) - strlen(calls),
	    "%d/%d ", version, wait_ms);
	if (wait_ms == 0)
		return MOAT_OK; /* a resend nobody waits for */
	switch (answer) {
	case ACCEPT:
		moatd_policy_acked(d, sandbox, version, NULL);
		return MOAT_OK;
	case REFUSE:
		moatd_policy_acked(d, sandbox, version, "unknown sandbox");
		moat_cause_set(cause, "the proxy refused it: unknown sandbox");
		return MOAT_ERR_INVALID;
	case SILENT:
		break;
	}
	moat_cause_set(cause, "the proxy did not answer within %d ms",
	    wait_ms);
	return MOAT_ERR_AGAIN;
}

static int
store_active(struct moat_store *s)
{
	struct moat_store_policy *p = NULL;
	int v = -1;

	if (moat_store_policy_get(s, "box", 0, &p, NULL) == 0)
		v = p->version;
	moat_store_policy_free(p);
	return v;
}

static const char *
state_of(struct moat_store *s, int version, char *buf, size_t len)
{
	struct moat_store_policy *p = NULL;

	snprintf(buf, len, "none");
	if (moat_store_policy_get(s, "box", version, &p, NULL) == 0)
		snprintf(buf, len, "%s:%s", p->state, p->state_note);
	moat_store_policy_free(p);
	return buf;
}

static int
moatd_version(struct moatd *d)
{
	int v = -1;

	moatd_policy_current(d, "box", &v);
	return v;
}

/* The `sandboxes` control reply for box, as "policy/proxy/mismatch". */
static void
ctl_view(struct moatd *d, char *buf, size_t len)
{
	struct ctl_peer p = { .d = d, .uid = 0, .can_change = true };
	const char *req = "{\"cmd\":\"sandboxes\"}";
	char *r = moatd_control_handle(&p, req, strlen(req));
	json_t *o = r ? json_loads(r, 0, NULL) : NULL;
	json_t *sb = json_array_get(json_object_get(o, "sandboxes"), 0);

	snprintf(buf, len, "%lld/%lld/%s/%s",
	    (long long)json_integer_value(json_object_get(sb,
	    "policy_version")),
	    (long long)json_integer_value(json_object_get(sb,
	    "proxy_version")),
	    json_is_true(json_object_get(sb, "policy_mismatch")) ? "MISMATCH" :
	    "agree", json_string_value(json_object_get(sb, "proxy_error")) ?:
	    "?");
	json_decref(o);
	free(r);
}

static int
row_view(const struct moat_store_sandbox *sb, void *arg)
{
	char *out = arg;

	snprintf(out, 128, "%d/%s", sb->proxy_version, sb->proxy_error);
	return 0;
}

static void
test_install(struct moatd *d, struct moat_store *s)
{
	struct moat_cause c = { { 0 } };
	struct moat_diags dg;
	char buf[256], view[256];
	int v = 0, r;

	moat_diags_init(&dg);
	moatd_set_installer_for_test(d, fake_proxy);

	answer = REFUSE;
	r = moatd_policy_apply(d, "box", POL("b.test"), "operator", "alice",
	    NULL, &v, &dg, &c);
	is_int(r, MOAT_ERR_INVALID, "a policy the proxy refuses is refused");
	like_str(c.msg, "refused it: unknown sandbox", "the cause says the "
	    "proxy refused it and why");
	like_str(c.msg, "version 1 stays active", "and what stays active");
	is_int(store_active(s), 1, "the store's active version is unchanged");
	is_int(moatd_version(d), 1, "moatd's current version too");
	is_str(state_of(s, 2, buf, sizeof(buf)),
	    "refused:the proxy refused it: unknown sandbox",
	    "the attempt is recorded as refused, with why");
	is_str(calls, "2/5000 ", "asked once; nothing resent after a refusal");

	calls[0] = '\0';
	r = moatd_policy_apply(d, "box", "{\"version\":1,\"network_policies\":"
	    "{\"x\":{\"endpoints\":[{\"host\":\"*\",\"port\":80}]}}}",
	    "operator", "alice", NULL, &v, &dg, &c);
	is_int(r, MOAT_ERR_INVALID, "an invalid policy is refused");
	is_str(calls, "", "validated once, before the proxy sees it");
	is_str(state_of(s, 3, buf, sizeof(buf)), "none",
	    "and before the store does");

	answer = SILENT;
	r = moatd_policy_apply(d, "box", POL("c.test"), "operator", "alice",
	    NULL, &v, &dg, &c);
	is_int(r, MOAT_ERR_AGAIN, "a proxy that does not answer: refused");
	like_str(c.msg, "did not answer", "the cause says so");
	is_int(store_active(s), 1, "the store's active version is unchanged");
	is_int(moatd_version(d), 1, "moatd's current version too");
	like_str(state_of(s, 3, buf, sizeof(buf)), "refused:", "recorded "
	    "as refused");
	is_str(calls, "3/5000 1/0 ", "then the active version is resent, "
	    "so a late install of 3 is undone in order");

	answer = ACCEPT;
	calls[0] = '\0';
	r = moatd_policy_apply(d, "box", POL("d.test"), "operator", "alice",
	    NULL, &v, &dg, &c);
	is_int(r, 0, "a policy the proxy installs is applied (%s)", c.msg);
	is_int(v, 4, "as version 4");
	is_int(store_active(s), 4, "the store's active version is 4");
	is_int(moatd_version(d), 4, "moatd's current version is 4");
	is_str(state_of(s, 4, buf, sizeof(buf)), "active:", "state active");
	ctl_view(d, view, sizeof(view));
	is_str(view, "4/4/agree/", "sandboxes: store and proxy agree");
	moat_diags_free(&dg);
}

static void
test_mismatch(struct moatd *d, struct moat_store *s)
{
	char view[256], row[128] = "";

	/* The proxy restarts and refuses the active version. */
	moatd_policy_proxy_gone(d);
	ctl_view(d, view, sizeof(view));
	is_str(view, "4/0/agree/", "no proxy yet: nothing enforced, no "
	    "disagreement");
	moatd_policy_acked(d, "box", 4, "unknown sandbox");
	ctl_view(d, view, sizeof(view));
	is_str(view, "4/0/MISMATCH/version 4: unknown sandbox",
	    "the active version refused: the reply says MISMATCH");
	moat_store_sandbox_list(s, row_view, row, NULL);
	is_str(row, "0/version 4: unknown sandbox", "and the store says so "
	    "for the CLI");
	ok(moat_store_proxy_mismatch(store_active(s), 0,
	    "version 4: unknown sandbox"), "moat_store_proxy_mismatch agrees");
	moatd_policy_acked(d, "box", 3, NULL);
	ctl_view(d, view, sizeof(view));
	is_str(view, "4/3/MISMATCH/", "the proxy on another version: "
	    "MISMATCH");
	moatd_policy_acked(d, "box", 4, NULL);
	ctl_view(d, view, sizeof(view));
	is_str(view, "4/4/agree/", "acknowledged again: they agree");
}

/* An approval goes through the same path: refused, it stays pending. */
static void
test_approve(struct moatd *d, struct moat_store *s)
{
	struct moat_cause c = { { 0 } };
	struct moat_store_proposal *p = NULL;
	struct moat_diags dg;
	const char *body = "{\"operations\":[{\"addRule\":{\"ruleName\":"
	    "\"crates\",\"rule\":{\"endpoints\":[{\"host\":\"crates.io\","
	    "\"port\":443}],\"binaries\":[{\"path\":\"/usr/bin/cargo\"}]}}}]}";
	int64_t id = 0;
	int v = 0, r;

	moat_diags_init(&dg);
	answer = ACCEPT;
	r = moatd_proposal_from_agent(d, "box", body, strlen(body), &id, &c);
	is_int(r, 0, "an agent proposal (%s)", c.msg);
	answer = REFUSE;
	r = moatd_proposal_approve(d, id, "alice", NULL, &v, &dg, &c);
	is_int(r, MOAT_ERR_INVALID, "approving it while the proxy refuses "
	    "fails");
	moat_store_proposal_get(s, id, &p, NULL);
	is_str(p ? p->status : NULL, "pending", "the proposal stays pending");
	moat_store_proposal_free(p);
	is_int(store_active(s), 4, "and the active version stays");
	answer = ACCEPT;
	r = moatd_proposal_approve(d, id, "alice", NULL, &v, &dg, &c);
	is_int(r, 0, "approved once the proxy installs it (%s)", c.msg);
	is_int(store_active(s), v, "its version is the active one");
	moat_diags_free(&dg);
}

int
main(void)
{
	struct ops_fixture f;
	struct moat_cause c = { { 0 } };

	moat_log_init("test_ops_truth", MOAT_LOG_FATAL);
	if (!ops_fixture_open(&f, "truth"))
		return done_testing();
	moat_store_sandbox_upsert(f.s, "box", 1, "", NULL);
	is_int(moatd_add_sandbox_for_test(f.d, "box", POL("a.test"), &c), 0,
	    "sandbox box at version 1 (%s)", c.msg);
	test_install(f.d, f.s);
	test_mismatch(f.d, f.s);
	test_approve(f.d, f.s);
	ops_fixture_close(&f);
	return done_testing();
}
