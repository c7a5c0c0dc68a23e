/*
 * moatd's use of the proxy channel: start the proxy with every sandbox,
 * the hashes it trusts (the store's trust table) and its policy, feed
 * its denial events to the aggregator, keep the hashes it trusts on
 * first use, answer the agent proposals it forwards from policy.local,
 * restart it if it dies.
 */
#include <sys/stat.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "proxy/proxy.h"
#include "store/store.h"
#include "sandbox/net.h"
#include "sandbox/sandbox.h"
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

static void on_exited(void *arg);

/*
 * The proxy's settings. The proxy dials from the host netns, which
 * routes to every sandbox: it must never dial the pool (the configured
 * one, and the default one the sandbox code falls back to).
 */
static void
proxy_config(struct moatd *d, struct moat_proxy_config *pc, char *deny,
    size_t dlen, char *path, size_t plen)
{
	memset(pc, 0, sizeof(*pc));
	pc->port = d->cfg->proxy_port;
	pc->hosts_file = d->cfg->hosts_file;
	pc->upstream_ca_file = d->cfg->upstream_ca_file;
	pc->max_conns_total = d->cfg->proxy_max_conns;
	pc->max_conns_per_sandbox = d->cfg->proxy_max_conns_per_sandbox;
	pc->max_open_files = d->cfg->max_open_files;
	pc->run_uid = (uid_t)d->cfg->proxy_uid;
	pc->run_gid = (gid_t)d->cfg->proxy_uid;
	snprintf(deny, dlen, "%s, %s", d->cfg->net_pool != NULL ?
	    d->cfg->net_pool : MOAT_NET_DEFAULT_POOL, MOAT_NET_DEFAULT_POOL);
	pc->deny_cidr = deny;
	snprintf(path, plen, "%s/proxy.sock", d->cfg->state_dir);
	pc->ctl_path = d->cfg->live_restore ? path : NULL;
}

static bool
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL &&
	    strcmp(a, b) == 0);
}

/* Is pid running the program this moatd runs (the same file)? */
static bool
same_program(pid_t pid)
{
	struct stat a, b;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	return stat(path, &a) == 0 && stat("/proc/self/exe", &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static bool
int_eq(const json_t *ready, const char *key, json_int_t want)
{
	const json_t *v = json_object_get(ready, key);

	return json_is_integer(v) && json_integer_value(v) == want;
}

/*
 * Does the running proxy fit this moatd: its "ready" (every setting the
 * proxy was started with) and its program (an upgraded moatd does not
 * keep the old proxy code serving)? NULL, or why not.
 */
static const char *
ready_misfit(const json_t *ready, pid_t pid,
    const struct moat_proxy_config *pc)
{
	if (ready == NULL)
		return "it did not say ready";
	if (!same_program(pid))
		return "another program (moatd was upgraded)";
	if (!int_eq(ready, "max_conns", pc->max_conns_total) ||
	    !int_eq(ready, "max_conns_per_sandbox", pc->max_conns_per_sandbox))
		return "other connection caps";
	if (!int_eq(ready, "max_open_files", (json_int_t)pc->max_open_files))
		return "another max_open_files";
	if (json_integer_value(json_object_get(ready, "proto")) !=
	    MOAT_PROXY_CTL_PROTO)
		return "another protocol version";
	if (json_integer_value(json_object_get(ready, "port")) != pc->port)
		return "another port";
	if (!str_eq(json_string_value(json_object_get(ready, "hosts_file")),
	    pc->hosts_file))
		return "another hosts_file";
	if (!str_eq(json_string_value(json_object_get(ready, "deny_cidr")),
	    pc->deny_cidr))
		return "another net_pool";
	if (!str_eq(json_string_value(json_object_get(ready,
	    "upstream_ca_file")), pc->upstream_ca_file))
		return "another upstream_ca_file";
	return NULL;
}

/*
 * Does the proxy serve this sandbox as it runs now (same address, port
 * and init)? A sandbox purged and made again while moatd was down is
 * served anew.
 */
static bool
served_as(const json_t *e, const struct moatd_sandbox *s)
{
	return s->sb != NULL && str_eq(json_string_value(json_object_get(e,
	    "listen")), moat_sandbox_host_addr(s->sb)) &&
	    json_integer_value(json_object_get(e, "port")) ==
	    moat_sandbox_proxy_port(s->sb) &&
	    json_integer_value(json_object_get(e, "init_pid")) ==
	    s->init_pid;
}

/*
 * Live restore: take over the proxy a previous moatd left running, with
 * its listeners and tunnels. Sandboxes it serves as they run now keep
 * their listener (the active policy is pushed again); the others are
 * served anew or dropped. MOAT_ERR_NOTFOUND when there is none to take
 * (or it does not fit and was ended): start one.
 */
static int
proxy_adopt(struct moatd *d, const struct moatd_proxychan_cbs *cbs,
    const struct moat_proxy_config *pc)
{
	struct moat_cause cause = { { 0 } };
	const json_t *ready, *sbs, *e;
	const char *why;
	size_t i, kept = 0;

	if (moatd_proxychan_connect(d->loop, pc->ctl_path, pc->run_uid, cbs,
	    &d->proxy, &cause) != 0) {
		log_verbose("no proxy to adopt: %s", cause.msg);
		return MOAT_ERR_NOTFOUND;
	}
	ready = moatd_proxychan_ready(d->proxy, MOATD_PROXY_ACK_MS);
	if ((why = ready_misfit(ready, moatd_proxychan_pid(d->proxy), pc)) !=
	    NULL) {
		log_warn("the running proxy (pid %d) does not fit (%s): "
		    "ending it", (int)moatd_proxychan_pid(d->proxy), why);
		moatd_proxychan_stop(d->proxy);
		d->proxy = NULL;
		return MOAT_ERR_NOTFOUND;
	}
	moatd_policy_proxy_gone(d);
	sbs = json_object_get(ready, "sandboxes");
	for (size_t k = 0; k < d->nsandboxes; k++)
		d->sandboxes[k].proxy_served = false;
	json_array_foreach(sbs, i, e) {
		const char *name = json_string_value(json_object_get(e,
		    "name"));
		struct moatd_sandbox *s = name ? moatd_sandbox_find(d, name) :
		    NULL;

		if (s != NULL && served_as(e, s)) {
			s->proxy_served = true;
			kept++;
		} else if (name != NULL)
			moatd_proxychan_send(d->proxy, json_pack("{s:s, s:s}",
			    "type", "sandbox_remove", "name", name));
	}
	for (size_t k = 0; k < d->nsandboxes; k++) {
		struct moatd_sandbox *s = &d->sandboxes[k];

		if (!s->proxy_served) {
			moatd_proxy_add_sandbox(d, s);
			continue;
		}
		/* What moatd read now wins: credentials, the active policy. */
		if (s->nsecrets > 0)
			moatd_proxychan_secrets(d->proxy, s->cfg->name,
			    s->secrets, s->nsecrets);
		if (s->policy != NULL)
			moatd_proxy_install_policy(d, s->cfg->name, s->version,
			    moat_policy_json(s->policy), 0, NULL);
	}
	log_info("proxy adopted (pid %d): %zu sandboxes kept with their "
	    "tunnels; %lld lines held while moatd was away, %lld dropped",
	    (int)moatd_proxychan_pid(d->proxy), kept, (long long)
	    json_integer_value(json_object_get(ready, "held")), (long long)
	    json_integer_value(json_object_get(ready, "dropped")));
	return MOAT_OK;
}

int
moatd_proxy_start(struct moatd *d, struct moat_cause *cause)
{
	struct moatd_proxychan_cbs cbs = { d, on_event, on_message,
		on_exited };
	struct moat_proxy_config pc;
	char deny[256], path[4200];
	int r;

	proxy_config(d, &pc, deny, sizeof(deny), path, sizeof(path));
	if (pc.ctl_path != NULL && proxy_adopt(d, &cbs, &pc) == 0)
		return MOAT_OK;
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
	/* Live restore: the proxy serves on; the next moatd adopts it. */
	bool had = d->proxy != NULL;
	char path[4200];

	if (d->detaching) {
		moatd_proxychan_detach(d->proxy);
	} else {
		moatd_proxychan_stop(d->proxy);
		/*
		 * The confined proxy cannot remove its socket from moatd's
		 * state dir; it is gone now, so nobody answers there.
		 */
		if (had && d->cfg->live_restore) {
			snprintf(path, sizeof(path), "%s/proxy.sock",
			    d->cfg->state_dir);
			unlink(path);
		}
	}
	d->proxy = NULL;
	moatd_policy_proxy_gone(d);
}

static void
restart_proxy(struct moat_loop *l, void *arg)
{
	struct moatd *d = arg;
	struct moat_cause cause = { { 0 } };

	(void)l;
	if (d->stopping)
		return;
	moatd_proxy_stop(d);
	if (moatd_proxy_start(d, &cause) != 0)
		log_error("proxy restart failed: %s", cause.msg);
}

/* An adopted proxy died: start another (from the loop, not its cb). */
static void
on_exited(void *arg)
{
	struct moatd *d = arg;

	if (!d->stopping && moat_loop_timer(d->loop, 0, restart_proxy,
	    d) == NULL)
		log_error("cannot restart the proxy");
}
