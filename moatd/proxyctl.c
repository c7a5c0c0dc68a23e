/*
 * moatd's use of the proxy channel: start the proxy with every sandbox,
 * the hashes it trusts (the store's trust table) and its policy, feed
 * its denial events to the aggregator, keep the hashes it trusts on
 * first use, answer the agent proposals it forwards from policy.local,
 * restart it if it dies.
 */
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "proxy/proxy.h"
#include "store/store.h"
#include "sandbox/net.h"
#include "common/util.h"
#include "moatd/daemon.h"
#include "moatd/proxychan.h"
#include "moatd/state.h"

int
moatd_proxy_install_policy(struct moatd *d, const char *sandbox, int version,
    const char *json, int wait_ms, struct moat_cause *cause)
{
	struct moatd_sandbox *s = moatd_sandbox_find(d, sandbox);
	int64_t deadline = moat_now_ms() + wait_ms;
	int r = MOAT_OK;

	if (s == NULL || d->proxy == NULL) {
		moat_cause_set(cause, s == NULL ? "no sandbox %s" :
		    "the proxy is not running", sandbox);
		return MOAT_ERR_SYSTEM;
	}
	s->ack_wait = wait_ms > 0 ? version : 0;
	s->ack_result = 0;
	if (moatd_proxychan_policy(d->proxy, sandbox, version, json) != 0) {
		moat_cause_set(cause, "cannot reach the proxy");
		r = MOAT_ERR_SYSTEM;
	}
	/* The proxy answers each policy line in order; others are handled. */
	while (r == 0 && s->ack_wait != 0 && s->ack_result == 0) {
		int64_t left = deadline - moat_now_ms();

		if (left <= 0) {
			moat_cause_set(cause, "the proxy did not answer within "
			    "%d ms", wait_ms);
			r = MOAT_ERR_AGAIN;
		} else if (moatd_proxychan_wait(d->proxy, (int)left) != 0) {
			moat_cause_set(cause, "the proxy went away");
			r = MOAT_ERR_SYSTEM;
		}
	}
	if (r == 0 && s->ack_result < 0) {
		moat_cause_set(cause, "the proxy refused it: %s", s->proxy_error);
		r = MOAT_ERR_INVALID;
	}
	s->ack_wait = 0;
	return r;
}

int
moatd_proxy_send_trust(struct moatd *d, const char *sandbox,
    const char *binary, const char *sha256, struct moat_cause *cause)
{
	if (moatd_proxychan_trust(d->proxy, sandbox, binary, sha256) != 0) {
		moat_cause_set(cause, "cannot reach the proxy process");
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

static int
trust_row(const struct moat_store_trust *t, void *arg)
{
	json_t *a = arg;

	return json_array_append_new(a, json_pack("{s:s, s:s}", "binary",
	    t->binary, "sha256", t->sha256)) == 0 ? 0 : MOAT_ERR_NOMEM;
}

/* The hashes sandbox trusts, for the proxy (NULL: none could be read). */
static json_t *
kept_trust(struct moatd *d, const char *sandbox)
{
	struct moat_cause cause = { { 0 } };
	json_t *a = json_array();
	int r;

	if (a == NULL)
		return NULL;
	if ((r = moat_store_trust_list(moatd_store(d), sandbox, trust_row, a,
	    &cause)) != 0) {
		/* Serving anyway would trust changed binaries anew. */
		log_error("sandbox %s: cannot read its trusted hashes: %s",
		    sandbox, moat_cause_str(&cause, r));
		json_decref(a);
		return NULL;
	}
	return a;
}

/* A first use the proxy trusted: keep it for the next proxy. */
static void
on_trusted(struct moatd *d, json_t *o)
{
	const char *sandbox = json_string_value(json_object_get(o, "sandbox"));
	const char *bin = json_string_value(json_object_get(o, "binary"));
	const char *sha = json_string_value(json_object_get(o, "sha256"));
	struct moat_cause cause = { { 0 } };
	int r;

	if (sandbox == NULL || !moatd_sandbox_exists(d, sandbox)) {
		log_warn("trusted hash for an unknown sandbox");
		return;
	}
	if ((r = moat_store_trust_put(moatd_store(d), sandbox, bin, sha,
	    MOAT_STORE_TRUST_TOFU, moat_wall_ms(), &cause)) != 0)
		log_error("sandbox %s: cannot keep the trusted hash of %s: %s",
		    sandbox, bin ? bin : "?", moat_cause_str(&cause, r));
}

static void
on_event(void *arg, const struct moat_denial_event *ev)
{
	struct moatd *d = arg;

	moatd_aggregator_add(d->agg, ev);
}

/*
 * The answer to an agent's proposal (moatd_agentq_submit); it carries
 * the request id so the proxy can answer the agent's HTTP request.
 */
void
moatd_proxy_agent_reply(struct moatd *d, const char *sandbox, int64_t req,
    int r, int64_t id, const char *error)
{
	moatd_proxychan_send(d->proxy, json_pack("{s:s, s:s, s:I, s:b, s:I,"
	    " s:s}", "type", "proposal_result", "sandbox", sandbox, "req",
	    (json_int_t)req, "ok", r == 0, "id", (json_int_t)id, "error",
	    error != NULL ? error : ""));
}

/* Lines from the proxy other than denials. */
static void
on_message(void *arg, json_t *o)
{
	struct moatd *d = arg;
	const char *type = json_string_value(json_object_get(o, "type"));
	const char *sandbox = json_string_value(json_object_get(o, "sandbox"));
	const char *body = json_string_value(json_object_get(o, "body"));
	json_int_t req = json_integer_value(json_object_get(o, "req"));

	if (type != NULL && (strcmp(type, "ready") == 0 ||
	    strcmp(type, "sandbox_ok") == 0))
		return;
	if (type != NULL && strcmp(type, "policy_ok") == 0 && sandbox != NULL) {
		moatd_policy_acked(d, sandbox, (int)json_integer_value(
		    json_object_get(o, "version")), NULL);
		return;
	}
	if (type != NULL && strcmp(type, "sandbox_error") == 0) {
		log_error("the proxy cannot serve sandbox %s: %s",
		    json_string_value(json_object_get(o, "name")) ?: "?",
		    json_string_value(json_object_get(o, "error")) ?: "?");
		return;
	}
	if (type != NULL && strcmp(type, "trusted") == 0) {
		on_trusted(d, o);
		return;
	}
	if (type != NULL && strcmp(type, "policy_error") == 0 &&
	    sandbox != NULL) {
		moatd_policy_acked(d, sandbox, (int)json_integer_value(
		    json_object_get(o, "version")), json_string_value(
		    json_object_get(o, "error")) ?: "no reason given");
		return;
	}
	if (type == NULL || strcmp(type, "proposal") != 0 || sandbox == NULL ||
	    body == NULL || !moatd_sandbox_exists(d, sandbox)) {
		log_warn("unexpected message from the proxy");
		return;
	}
	/* Never merged here: the queue takes its turn from the loop. */
	moatd_agentq_submit(d->agentq, sandbox, req, body, strlen(body));
}

void
moatd_proxy_add_sandbox(struct moatd *d, struct moatd_sandbox *s)
{
	enum moat_attrib_mode mode = (enum moat_attrib_mode)d->cfg->identity;
	struct moat_cause cause = { { 0 } };
	json_t *trust;
	uint64_t cg;
	const char *why;
	int a, b;

	if (s->sb == NULL || d->proxy == NULL)
		return;
	/*
	 * An adopted sandbox's attribution programs are held by the proxy
	 * that served it; a proxy that did not gets a set of its own.
	 */
	if (s->adopted && moat_sandbox_attrib(s->sb, &a, &b, &cg, &why) != 0) {
		if (moat_sandbox_attrib_attach(s->sb, mode, &cause) != 0)
			log_error("%s", cause.msg);
		moatd_log_identity(s->cfg->name, s->sb, mode);
	}
	/* Not served without its trusted hashes (they say "changed"). */
	if ((trust = kept_trust(d, s->cfg->name)) == NULL)
		return;
	moatd_sandbox_nflog(d, s);
	moatd_proxychan_sandbox(d->proxy, s->cfg->name, s->sb, s->nflog_fd,
	    trust, s->ca_dir);
	if (s->nsecrets > 0)
		moatd_proxychan_secrets(d->proxy, s->cfg->name, s->secrets,
		    s->nsecrets);
	if (s->policy != NULL)
		moatd_proxy_install_policy(d, s->cfg->name, s->version,
		    moat_policy_json(s->policy), 0, NULL);
}

void
moatd_proxy_remove_sandbox(struct moatd *d, const char *name)
{
	struct moatd_sandbox *s = moatd_sandbox_find(d, name);

	if (d->proxy != NULL)
		moatd_proxychan_send(d->proxy, json_pack("{s:s, s:s}", "type",
		    "sandbox_remove", "name", name));
	if (s != NULL) {
		s->proxy_version = 0;
		s->proxy_error[0] = '\0';
		moat_store_sandbox_set_proxy(d->store, name, 0, "",
		    moat_wall_ms(), NULL);
	}
}

int
moatd_proxy_start(struct moatd *d, struct moat_cause *cause)
{
	struct moatd_proxychan_cbs cbs = { d, on_event, on_message };
	struct moat_proxy_config pc = { 0 };
	char deny[256];
	int r;

	pc.port = d->cfg->proxy_port;
	pc.hosts_file = d->cfg->hosts_file;
	pc.upstream_ca_file = d->cfg->upstream_ca_file;
	/*
	 * The proxy dials from the host netns, which routes to every
	 * sandbox: it must never dial the pool (the configured one, and
	 * the default one the sandbox code falls back to).
	 */
	snprintf(deny, sizeof(deny), "%s, %s", d->cfg->net_pool != NULL ?
	    d->cfg->net_pool : MOAT_NET_DEFAULT_POOL, MOAT_NET_DEFAULT_POOL);
	pc.deny_cidr = deny;
	if ((r = moatd_proxychan_start(d->loop, &pc, &cbs, &d->proxy,
	    cause)) != 0)
		return r;
	/* Nothing is enforced until the new proxy acknowledges it. */
	moatd_policy_proxy_gone(d);
	for (size_t i = 0; i < d->nsandboxes; i++)
		moatd_proxy_add_sandbox(d, &d->sandboxes[i]);
	log_info("proxy started (pid %d, port %u)",
	    (int)moatd_proxychan_pid(d->proxy), (unsigned)pc.port);
	return MOAT_OK;
}

void
moatd_proxy_stop(struct moatd *d)
{
	moatd_proxychan_stop(d->proxy);
	d->proxy = NULL;
	moatd_policy_proxy_gone(d);
}
