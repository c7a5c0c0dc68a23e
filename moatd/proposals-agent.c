/*
 * Proposals from agents (policy.local's POST /v1/proposals): OpenShell's
 * body shape, only addRule operations, its invalid_proposal messages.
 * An agent may only add a new rule of plain host:port endpoints and
 * binaries (docs/policy.md, "Merging approved rules"); each endpoint is
 * made public_only.
 * Each rule is checked against the sandbox's current policy by merging
 * it, so a pending agent proposal is always one that could be applied.
 *
 * A merge costs a whole policy load, so requests never run inline with
 * what moatd's loop reads: they wait in a small queue and are handled
 * one per loop turn, at most limits.agent_proposals_per_minute per
 * sandbox; over that, or over limits.pending_proposals, the agent is
 * told at once (rate_limited) and the refusal is counted as suppressed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/store.h"
#include "moatd/config.h"
#include "moatd/moatd.h"
#include "moatd/proposals.h"

#define AGENT_BODY_MAX (64 * 1024)
#define AGENT_CONFIDENCE 0.75
#define AGENT_MAX_OPS 16         /* operations in one request */
#define AGENTQ_PER_SANDBOX 4     /* requests waiting per sandbox */
#define AGENTQ_MAX 64            /* requests waiting in all */
#define AGENTQ_SANDBOXES 1024    /* sandboxes whose rate is tracked */

static int bad(struct moat_cause *cause, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
bad(struct moat_cause *cause, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	moat_cause_set(cause, "invalid_proposal: %s", msg);
	return MOAT_ERR_INVALID;
}

/*
 * An agent may ask for host:port and binaries, nothing that widens a
 * rule beyond that (audit mode, address ranges, L7 access): an operator
 * can widen by hand. Fields outside these lists are refused by name.
 */
static const char *const agent_ep_fields[] = { "host", "port", "ports",
	"public_only" };
static const char *const agent_rule_fields[] = { "name", "endpoints",
	"binaries" };
static const char *const agent_bin_fields[] = { "path", "harness" };

static const char *
unknown_field(json_t *o, const char *const *allowed, size_t n)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		size_t i;

		for (i = 0; i < n; i++)
			if (strcmp(k, allowed[i]) == 0)
				break;
		if (i == n)
			return k;
	}
	return NULL;
}

/* OpenShell's checks on one endpoint, and moat's narrower agent shape. */
static int
check_endpoint(json_t *ep, struct moat_cause *cause)
{
	json_t *host = json_object_get(ep, "host"), *rules, *r;
	const char *f;
	size_t i;

	if (!json_is_object(ep))
		return bad(cause, "endpoint must be an object");
	if (!json_is_string(host) || json_string_length(host) == 0)
		return bad(cause, "endpoint.host is required");
	if (moat_host_always_refused(json_string_value(host)))
		return bad(cause, "endpoint.host %s is a loopback, link-local "
		    "or metadata address and can never be allowed",
		    json_string_value(host));
	if (moat_host_is_ip_literal(json_string_value(host)))
		return bad(cause, "endpoint.host %s is an IP address; agents "
		    "may propose host names only (an operator can add an "
		    "address by hand)", json_string_value(host));
	if (json_object_get(ep, "port") == NULL &&
	    json_object_get(ep, "ports") == NULL)
		return bad(cause, "endpoint.port or endpoint.ports is "
		    "required");
	rules = json_object_get(ep, "rules");
	json_array_foreach(rules, i, r) {
		const char *path = NULL;

		json_unpack(r, "{s:{s:s}}", "allow", "path", &path);
		if (path != NULL && strchr(path, '?') != NULL)
			return bad(cause, "L7 allow paths must not include "
			    "query strings");
	}
	if ((f = unknown_field(ep, agent_ep_fields,
	    MOAT_NELEM(agent_ep_fields))) != NULL)
		return bad(cause, "endpoint.%s is not allowed in an agent "
		    "proposal: agents may propose host and port only (an "
		    "operator can widen the rule by hand)", f);
	return MOAT_OK;
}

/* The rule's own fields and its binaries: plain paths only. */
static int
check_rule_shape(json_t *rule, json_t *bins, struct moat_cause *cause)
{
	const char *f;
	json_t *b;
	size_t i;

	if ((f = unknown_field(rule, agent_rule_fields,
	    MOAT_NELEM(agent_rule_fields))) != NULL)
		return bad(cause, "rule.%s is not allowed in an agent "
		    "proposal: agents may propose endpoints and binaries "
		    "only", f);
	json_array_foreach(bins, i, b) {
		if (!json_is_object(b))
			return bad(cause, "binary must be an object");
		if ((f = unknown_field(b, agent_bin_fields,
		    MOAT_NELEM(agent_bin_fields))) != NULL)
			return bad(cause, "binary.%s is not allowed in an agent "
			    "proposal", f);
	}
	return MOAT_OK;
}

/* Does the sandbox's policy already have a rule under this key? */
static bool
key_exists(const struct moat_policy *cur, const char *key)
{
	json_t *doc = json_loads(moat_policy_json(cur), 0, NULL);
	bool found;

	found = doc == NULL || json_object_get(json_object_get(doc,
	    "network_policies"), key) != NULL;
	json_decref(doc);
	return found;
}

/* Validate one addRule; on success *rule_json is {"NAME": rule}. */
static int
check_add_rule(struct moatd *d, const char *sandbox, json_t *op,
    char **rule_json, char *name, size_t namelen, struct moat_cause *cause)
{
	const struct moat_policy_opts opts = { .no_fs = true };
	const struct moat_policy *cur;
	struct moat_policy *merged = NULL;
	struct moat_diags diags;
	json_t *add, *rule, *eps, *bins, *ep, *wrap = NULL;
	const char *rname;
	size_t i;
	int r, ver = 0;

	if (!json_is_object(op) || json_object_size(op) != 1 ||
	    (add = json_object_get(op, "addRule")) == NULL)
		return bad(cause, "only addRule operations are supported");
	rule = json_object_get(add, "rule");
	if (!json_is_object(rule))
		return bad(cause, "addRule.rule is required");
	rname = json_string_value(json_object_get(add, "ruleName"));
	if (rname == NULL || *rname == '\0')
		rname = json_string_value(json_object_get(rule, "name"));
	if (rname == NULL || *rname == '\0')
		return bad(cause, "addRule.ruleName or rule.name is required");
	eps = json_object_get(rule, "endpoints");
	if (!json_is_array(eps) || json_array_size(eps) == 0)
		return bad(cause, "rule.endpoints must list at least one "
		    "endpoint");
	json_array_foreach(eps, i, ep) {
		if ((r = check_endpoint(ep, cause)) != 0)
			return r;
		/* A name the agent chose may later resolve into the LAN. */
		if (json_object_set_new(ep, "public_only", json_true()) != 0)
			return MOAT_ERR_NOMEM;
	}
	bins = json_object_get(rule, "binaries");
	if (!json_is_array(bins) || json_array_size(bins) == 0)
		return bad(cause, "rule.binaries must list at least one "
		    "binary");
	if ((r = check_rule_shape(rule, bins, cause)) != 0)
		return r;
	if ((cur = moatd_policy_current(d, sandbox, &ver)) == NULL) {
		moat_cause_set(cause, "sandbox_name_unavailable: %s", sandbox);
		return MOAT_ERR_NOTFOUND;
	}
	/* An agent adds rules; it never changes one (the operator's). */
	if (key_exists(cur, rname))
		return bad(cause, "ruleName '%s' already exists in the "
		    "sandbox's policy; propose the rule under a new name",
		    rname);
	if ((wrap = json_object()) == NULL)
		return MOAT_ERR_NOMEM;
	json_object_set(wrap, rname, rule);
	*rule_json = json_dumps(wrap, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(wrap);
	if (*rule_json == NULL)
		return MOAT_ERR_NOMEM;
	moat_diags_init(&diags);
	r = moat_policy_merge_rule(cur, *rule_json, &opts, &merged, &diags);
	if (r != 0) {
		for (i = 0; i < diags.n; i++)
			if (diags.v[i].level == MOAT_DIAG_ERROR)
				break;
		moat_cause_set(cause, "invalid_proposal: %s: %s",
		    i < diags.n ? diags.v[i].path : rname,
		    i < diags.n ? diags.v[i].msg : "does not merge");
		free(*rule_json);
		*rule_json = NULL;
		r = MOAT_ERR_INVALID;
	}
	moat_strlcpy(name, rname, namelen);
	moat_diags_free(&diags);
	moat_policy_free(merged);
	return r;
}

/* The notes an operator reads before approving: what the rule risks. */
static char *
agent_notes(struct moatd *d, const char *sandbox, json_t *rule)
{
	const struct moat_policy *cur;
	json_t *notes = json_array(), *b;
	char *text;
	size_t i;
	int ver = 0;

	if (notes == NULL)
		return NULL;
	cur = moatd_policy_current(d, sandbox, &ver);
	json_array_foreach(json_object_get(rule, "endpoints"), i, b) {
		const char *host = json_string_value(json_object_get(b,
		    "host"));

		if (host != NULL)
			moatd_public_only_note(host, NULL, notes);
	}
	json_array_foreach(json_object_get(rule, "binaries"), i, b) {
		const char *path = json_string_value(json_object_get(b,
		    "path"));

		if (path != NULL)
			moatd_binary_notes(cur, path, notes);
	}
	text = json_dumps(notes, JSON_COMPACT);
	json_decref(notes);
	return text;
}

static int
store_agent_rule(struct moatd *d, const char *sandbox, json_t *op,
    const char *rule_json, const char *name, const char *intent,
    int64_t *id, struct moat_cause *cause)
{
	struct moat_store_proposal sp = { 0 };
	json_t *rule = json_object_get(json_object_get(op, "addRule"), "rule");
	json_t *ep = json_array_get(json_object_get(rule, "endpoints"), 0);
	json_t *bin = json_array_get(json_object_get(rule, "binaries"), 0);
	char hash[65], key[160], *notes = NULL;
	bool created = false;
	int r;

	moatd_sha256_hex(rule_json, strlen(rule_json), hash);
	snprintf(key, sizeof(key), "%.63s|agent|%s", sandbox, hash);
	sp.sandbox = (char *)sandbox;
	sp.key = key;
	sp.name = (char *)name;
	sp.rule_json = (char *)rule_json;
	sp.rule_hash = hash;
	sp.binary = (char *)json_string_value(json_object_get(bin, "path"));
	sp.host = (char *)json_string_value(json_object_get(ep, "host"));
	sp.port = (int)json_integer_value(json_object_get(ep, "port"));
	sp.hits = 1;
	sp.confidence = AGENT_CONFIDENCE;
	if ((notes = agent_notes(d, sandbox, rule)) == NULL)
		return MOAT_ERR_NOMEM;
	sp.notes = notes;
	sp.origin = MOATD_ORIGIN_AGENT;
	sp.reason = (char *)intent;
	r = moat_store_proposal_upsert(moatd_store(d), &sp, id, &created,
	    cause);
	free(notes);
	if (r != 0)
		return r;
	if (created)
		moatd_export_proposal(moatd_exporter(d), *id, sandbox,
		    MOAT_STORE_PENDING, "agent");
	return MOAT_OK;
}

/* Would n more pending proposals stay within limits.pending_proposals? */
static int
pending_room(struct moatd *d, const char *sandbox, size_t n,
    struct moat_cause *cause)
{
	int64_t cap = moatd_config(d)->limits.pending_proposals, have = 0;
	int r;

	if (cap <= 0)
		return MOAT_OK;
	if ((r = moat_store_proposal_pending_count(moatd_store(d), sandbox,
	    &have, cause)) != 0)
		return r;
	if (have + (int64_t)n <= cap)
		return MOAT_OK;
	moat_cause_set(cause, "rate_limited: %lld proposals of this sandbox "
	    "are pending, at most %lld may be (limits.pending_proposals); "
	    "the operator must review them first", (long long)have,
	    (long long)cap);
	return MOAT_ERR_AGAIN;
}

int
moatd_proposal_from_agent(struct moatd *d, const char *sandbox,
    const char *body, size_t len, int64_t *id, struct moat_cause *cause)
{
	json_t *doc = NULL, *ops, *op;
	json_error_t jerr;
	char **rules = NULL, (*names)[160] = NULL;
	const char *intent;
	int64_t first = 0, one = 0;
	size_t i, n = 0;
	int r = MOAT_ERR_INVALID;

	if (len > AGENT_BODY_MAX) {
		bad(cause, "body larger than 64 KiB");
		goto out;
	}
	if ((doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL || !json_is_object(doc)) {
		bad(cause, "body is not a JSON object");
		goto out;
	}
	intent = json_string_value(json_object_get(doc, "intent_summary"));
	ops = json_object_get(doc, "operations");
	if (!json_is_array(ops) || (n = json_array_size(ops)) == 0) {
		bad(cause, "operations must list at least one operation");
		goto out;
	}
	if (n > AGENT_MAX_OPS) {
		bad(cause, "at most %d operations in one proposal",
		    AGENT_MAX_OPS);
		goto out;
	}
	if ((r = pending_room(d, sandbox, n, cause)) != 0)
		goto out;
	rules = calloc(n, sizeof(*rules));
	names = calloc(n, sizeof(*names));
	if (rules == NULL || names == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	/* Check every operation before storing any: all or nothing. */
	json_array_foreach(ops, i, op)
		if ((r = check_add_rule(d, sandbox, op, &rules[i], names[i],
		    sizeof(names[i]), cause)) != 0)
			goto out;
	json_array_foreach(ops, i, op) {
		if ((r = store_agent_rule(d, sandbox, op, rules[i], names[i],
		    intent ? intent : "", &one, cause)) != 0)
			goto out;
		if (i == 0)
			first = one;
	}
	*id = first;
	r = MOAT_OK;
out:
	for (i = 0; rules != NULL && i < n; i++)
		free(rules[i]);
	free(rules);
	free(names);
	json_decref(doc);
	return r;
}

/* ---- the queue in front of moatd_proposal_from_agent ---- */

struct agent_req {
	struct agent_req *next;
	char sandbox[64];
	int64_t req;   /* the proxy's id of the waiting HTTP request */
	size_t len;
	char body[];
};

/* Requests one sandbox had handled in the current minute. */
struct agent_rate {
	char sandbox[64];
	int64_t minute;
	int64_t used;
	int waiting;   /* its requests in the queue */
};

struct moatd_agentq {
	struct moatd *d;
	struct moatd_aggregator *agg;
	moatd_agent_reply_fn *reply;
	struct agent_req *head;
	struct agent_req **tail;
	size_t n;
	struct moat_timer *timer;
	struct agent_rate *rates;
	size_t nrates;
};

int
moatd_agentq_new(struct moatd *d, struct moatd_aggregator *agg,
    moatd_agent_reply_fn *reply, struct moatd_agentq **out)
{
	struct moatd_agentq *q;

	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->rates = calloc(AGENTQ_SANDBOXES, sizeof(*q->rates))) == NULL) {
		free(q);
		return MOAT_ERR_NOMEM;
	}
	q->d = d;
	q->agg = agg;
	q->reply = reply;
	q->tail = &q->head;
	*out = q;
	return MOAT_OK;
}

void
moatd_agentq_free(struct moatd_agentq *q)
{
	struct agent_req *r, *next;

	if (q == NULL)
		return;
	moat_loop_timer_cancel(moatd_loop(q->d), q->timer);
	for (r = q->head; r != NULL; r = next) {
		next = r->next;
		q->reply(q->d, r->sandbox, r->req, MOAT_ERR_AGAIN, 0,
		    "moatd is stopping");
		free(r);
	}
	free(q->rates);
	free(q);
}

static struct agent_rate *
rate_of(struct moatd_agentq *q, const char *sandbox)
{
	int64_t minute = moat_wall_ms() / 60000;
	struct agent_rate *a = NULL;

	for (size_t i = 0; i < q->nrates && a == NULL; i++)
		if (strcmp(q->rates[i].sandbox, sandbox) == 0)
			a = &q->rates[i];
	if (a == NULL) {
		/* The proxy only names configured sandboxes. */
		if (q->nrates == AGENTQ_SANDBOXES)
			return NULL;
		a = &q->rates[q->nrates++];
		moat_strlcpy(a->sandbox, sandbox, sizeof(a->sandbox));
	}
	if (a->minute != minute) {
		a->minute = minute;
		a->used = 0;
	}
	return a;
}

static void agentq_turn(struct moat_loop *l, void *arg);

static void
agentq_arm(struct moatd_agentq *q)
{
	/* 0 ms: the loop reads its fds before the next request is handled. */
	if (q->timer == NULL && q->head != NULL)
		q->timer = moat_loop_timer(moatd_loop(q->d), 0, agentq_turn, q);
}

static void
agentq_turn(struct moat_loop *l, void *arg)
{
	struct moatd_agentq *q = arg;
	struct agent_req *r = q->head;
	struct agent_rate *a;
	struct moat_cause cause = { { 0 } };
	int64_t id = 0;
	int rc;

	(void)l;
	q->timer = NULL; /* the loop frees a fired timer */
	if (r == NULL)
		return;
	if ((q->head = r->next) == NULL)
		q->tail = &q->head;
	q->n--;
	if ((a = rate_of(q, r->sandbox)) != NULL && a->waiting > 0)
		a->waiting--;
	rc = moatd_proposal_from_agent(q->d, r->sandbox, r->body, r->len, &id,
	    &cause);
	if (rc == MOAT_ERR_AGAIN)
		moatd_aggregator_suppressed(q->agg, r->sandbox,
		    MOAT_STORE_SUPPRESSED_AGENT, moat_wall_ms(), 1);
	q->reply(q->d, r->sandbox, r->req, rc, id, rc == 0 ? "" :
	    moat_cause_str(&cause, rc));
	free(r);
	agentq_arm(q);
}

void
moatd_agentq_submit(struct moatd_agentq *q, const char *sandbox, int64_t req,
    const char *body, size_t len)
{
	int64_t cap = moatd_config(q->d)->limits.agent_proposals_per_minute;
	struct agent_rate *a = rate_of(q, sandbox);
	struct agent_req *r = NULL;
	char why[200];

	if (a == NULL || (cap > 0 && a->used >= cap)) {
		snprintf(why, sizeof(why), "rate_limited: at most %lld "
		    "proposals a minute from one sandbox "
		    "(limits.agent_proposals_per_minute); try again later",
		    (long long)cap);
		goto refuse;
	}
	if (a->waiting >= AGENTQ_PER_SANDBOX || q->n >= AGENTQ_MAX) {
		snprintf(why, sizeof(why), "rate_limited: %d proposals of "
		    "this sandbox are waiting to be checked; try again later",
		    a->waiting);
		goto refuse;
	}
	if (len > AGENT_BODY_MAX) {
		q->reply(q->d, sandbox, req, MOAT_ERR_INVALID, 0,
		    "invalid_proposal: body larger than 64 KiB");
		return;
	}
	if ((r = calloc(1, sizeof(*r) + len + 1)) == NULL) {
		snprintf(why, sizeof(why), "rate_limited: moatd is out of "
		    "memory; try again later");
		goto refuse;
	}
	moat_strlcpy(r->sandbox, sandbox, sizeof(r->sandbox));
	r->req = req;
	r->len = len;
	memcpy(r->body, body, len);
	*q->tail = r;
	q->tail = &r->next;
	q->n++;
	a->used++;
	a->waiting++;
	agentq_arm(q);
	return;
refuse:
	moatd_aggregator_suppressed(q->agg, sandbox,
	    MOAT_STORE_SUPPRESSED_AGENT, moat_wall_ms(), 1);
	q->reply(q->d, sandbox, req, MOAT_ERR_AGAIN, 0, why);
}
