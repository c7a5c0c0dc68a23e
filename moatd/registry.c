#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "store/store.h"
#include "moatd/state.h"

struct moatd_sandbox *
moatd_sandbox_find(struct moatd *d, const char *name)
{
	for (size_t i = 0; i < d->nsandboxes; i++)
		if (strcmp(d->sandboxes[i].cfg->name, name) == 0)
			return &d->sandboxes[i];
	return NULL;
}

size_t
moatd_sandbox_count(const struct moatd *d)
{
	return d->nsandboxes;
}

const char *
moatd_sandbox_name(const struct moatd *d, size_t i)
{
	return i < d->nsandboxes ? d->sandboxes[i].cfg->name : NULL;
}

bool
moatd_sandbox_exists(const struct moatd *d, const char *name)
{
	return moatd_sandbox_find((struct moatd *)d, name) != NULL;
}

const struct moat_policy *
moatd_policy_current(const struct moatd *d, const char *sandbox, int *version)
{
	struct moatd_sandbox *s = moatd_sandbox_find((struct moatd *)d, sandbox);

	if (s == NULL)
		return NULL;
	if (version != NULL)
		*version = s->version;
	return s->policy;
}

struct moat_store *
moatd_store(struct moatd *d)
{
	return d->store;
}

struct moat_loop *
moatd_loop(struct moatd *d)
{
	return d->loop;
}

const struct moatd_config *
moatd_config(const struct moatd *d)
{
	return d->cfg;
}

struct moatd_export *
moatd_exporter(struct moatd *d)
{
	return d->exp;
}

int
moatd_policy_validate(pid_t init_pid, bool no_fs, const char *json,
    const char *source, struct moat_policy **out, struct moat_diags *diags)
{
	struct moat_policy_opts o = { 0 };
	char root[64] = "/";

	/* What proxy/ctl.c does with the same text: keep the two equal. */
	if (init_pid > 0)
		snprintf(root, sizeof(root), "/proc/%d/root", (int)init_pid);
	o.binary_root = root;
	o.no_fs = no_fs;
	return moat_policy_load_string(json, strlen(json), source, &o, out,
	    diags);
}

/*
 * Store p as a pending version, have the proxy install it, and settle
 * the version by the proxy's answer: active only once the proxy runs
 * it. On failure the proxy is left on (or sent back to) the sandbox's
 * active version, and the version is recorded as refused.
 */
static int
install(struct moatd *d, struct moatd_sandbox *s, const struct moat_policy *p,
    const char *source, const char *who, const char *note, int *vp,
    struct moat_cause *cause)
{
	const char *name = s->cfg->name, *cur = NULL;
	struct moat_cause why = { { 0 } }, c2 = { { 0 } };
	int r, v = 0;

	if ((r = moat_store_policy_add_pending(d->store, name,
	    moat_policy_json(p), moat_policy_hash(p), source, who, note, &v,
	    cause)) != 0)
		return r;
	cur = s->policy != NULL ? moat_policy_json(s->policy) : NULL;
	r = d->install_policy(d, name, v, moat_policy_json(p),
	    MOATD_PROXY_ACK_MS, &why);
	if (r == 0 && (r = moat_store_policy_settle(d->store, name, v, true,
	    NULL, &c2)) != 0)
		moat_cause_set(&why, "the store cannot record it: %s", c2.msg);
	if (r == 0) {
		*vp = v;
		return MOAT_OK;
	}
	if (moat_store_policy_settle(d->store, name, v, false, why.msg,
	    &c2) != 0)
		log_warn("sandbox %s: version %d: %s", name, v, c2.msg);
	/*
	 * The proxy may still take v late (it answers in order), or took it
	 * while the store could not record it: the active version goes
	 * after it, so the proxy ends where the store says.
	 */
	if (cur != NULL && r != MOAT_ERR_INVALID &&
	    d->install_policy(d, name, s->version, cur, 0, NULL) != 0)
		log_warn("sandbox %s: cannot resend version %d to the proxy",
		    name, s->version);
	log_warn("sandbox %s: version %d refused: %s; version %d stays "
	    "active", name, v, why.msg, s->version);
	moat_cause_set(cause, "policy version %d for '%s' not applied: %s; "
	    "version %d stays active", v, name, why.msg, s->version);
	return r == MOAT_ERR_INVALID || r == MOAT_ERR_AGAIN ? r :
	    MOAT_ERR_SYSTEM;
}

int
moatd_policy_apply(struct moatd *d, const char *sandbox, const char *json,
    const char *source, const char *who, const char *note, int *version,
    struct moat_diags *diags, struct moat_cause *cause)
{
	struct moatd_sandbox *s = moatd_sandbox_find(d, sandbox);
	struct moat_policy *p = NULL;
	int r, v = 0;

	if (s == NULL) {
		moat_cause_set(cause, "no sandbox named '%s'", sandbox);
		return MOAT_ERR_NOTFOUND;
	}
	if ((r = moatd_policy_validate(s->init_pid, d->for_test, json, source,
	    &p, diags)) != 0) {
		moat_cause_set(cause, "the new policy for '%s' is invalid; "
		    "version %d stays active", sandbox, s->version);
		return r;
	}
	/*
	 * The static sections (filesystem, landlock, process) are fixed when
	 * the sandbox starts: a change there is stored but takes effect on
	 * the next start. The network part takes effect now.
	 */
	if (d->install_policy != NULL)
		r = install(d, s, p, source, who ? who : "", note ? note : "",
		    &v, cause);
	else
		r = moat_store_policy_add(d->store, sandbox, moat_policy_json(p),
		    moat_policy_hash(p), source, who ? who : "",
		    note ? note : "", &v, cause);
	if (r != 0) {
		moat_policy_free(p);
		return r;
	}
	moat_policy_free(s->policy);
	s->policy = p;
	s->version = v;
	moatd_export_policy(d->exp, sandbox, v, source, who);
	log_info("sandbox %s: policy version %d active (source %s, by %s)",
	    sandbox, v, source, who ? who : "moatd");
	if (version != NULL)
		*version = v;
	return MOAT_OK;
}

void
moatd_policy_acked(struct moatd *d, const char *sandbox, int version,
    const char *error)
{
	struct moatd_sandbox *s = moatd_sandbox_find(d, sandbox);
	struct moat_cause cause = { { 0 } };

	if (s == NULL)
		return;
	if (error == NULL) {
		s->proxy_version = version;
		s->proxy_error[0] = '\0';
	} else {
		/* The proxy keeps what it had: only the refusal is new. */
		snprintf(s->proxy_error, sizeof(s->proxy_error), "version %d: "
		    "%s", version, error);
	}
	if (s->ack_wait == version && s->ack_wait != 0)
		s->ack_result = error == NULL ? 1 : -1;
	if (error != NULL && version == s->version)
		log_error("sandbox %s: MISMATCH: the proxy refused the active "
		    "policy version %d (%s); it enforces version %d", sandbox,
		    version, error, s->proxy_version);
	if (d->store != NULL && moat_store_sandbox_set_proxy(d->store, sandbox,
	    s->proxy_version, s->proxy_error, moat_wall_ms(), &cause) != 0 &&
	    !d->for_test)
		log_warn("sandbox %s: %s", sandbox, cause.msg);
}

void
moatd_policy_enforced(const struct moatd *d, const char *sandbox,
    int *version, const char **error)
{
	struct moatd_sandbox *s = moatd_sandbox_find((struct moatd *)d,
	    sandbox);

	*version = s != NULL ? s->proxy_version : 0;
	*error = s != NULL ? s->proxy_error : "";
}

void
moatd_policy_proxy_gone(struct moatd *d)
{
	for (size_t i = 0; i < d->nsandboxes; i++) {
		struct moatd_sandbox *s = &d->sandboxes[i];

		s->proxy_version = 0;
		s->proxy_error[0] = '\0';
		if (d->store != NULL)
			moat_store_sandbox_set_proxy(d->store, s->cfg->name, 0,
			    "", moat_wall_ms(), NULL);
	}
}

int
moatd_trust_binary(struct moatd *d, const char *sandbox, const char *binary,
    const char *sha256, struct moat_cause *cause)
{
	int r;

	if (moatd_sandbox_find(d, sandbox) == NULL) {
		moat_cause_set(cause, "no sandbox named '%s'", sandbox);
		return MOAT_ERR_NOTFOUND;
	}
	/* The store first: a proxy started later must get it too. */
	if (sha256 != NULL && *sha256 != '\0')
		r = moat_store_trust_put(d->store, sandbox, binary, sha256,
		    MOAT_STORE_TRUST_OPERATOR, moat_wall_ms(), cause);
	else if ((r = moat_store_trust_forget(d->store, sandbox, binary,
	    cause)) == MOAT_ERR_NOTFOUND)
		r = MOAT_OK;
	if (r != 0)
		return r;
	if (d->send_trust == NULL) {
		moat_cause_set(cause, "no proxy to tell");
		return MOAT_ERR_NOTFOUND;
	}
	return d->send_trust(d, sandbox, binary, sha256, cause);
}

int
moatd_new_for_test(struct moat_loop *l, struct moat_store *s,
    struct moatd **out)
{
	struct moatd *d;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return MOAT_ERR_NOMEM;
	if ((d->cfg = calloc(1, sizeof(*d->cfg))) == NULL) {
		free(d);
		return MOAT_ERR_NOMEM;
	}
	d->cfg->control_gid = -1;
	d->cfg->retention_days = 30;
	d->loop = l;
	d->store = s;
	d->sess_fd = -1;
	d->relay_fd = -1;
	d->relay_tcp_fd = -1;
	d->lock_fd = -1;
	d->for_test = true;
	*out = d;
	return MOAT_OK;
}

int
moatd_add_sandbox_for_test(struct moatd *d, const char *name,
    const char *policy_json, struct moat_cause *cause)
{
	struct moatd_sandbox_config *sc, *ncs;
	struct moatd_sandbox *ns;
	struct moat_store_policy *sp = NULL;
	struct moat_diags diags;
	int r;

	/* Tests add sandboxes one by one: grow both arrays in step. */
	ncs = realloc(d->cfg->sandboxes,
	    (d->cfg->nsandboxes + 1) * sizeof(*ncs));
	if (ncs == NULL)
		return MOAT_ERR_NOMEM;
	d->cfg->sandboxes = ncs;
	ns = realloc(d->sandboxes, (d->nsandboxes + 1) * sizeof(*ns));
	if (ns == NULL)
		return MOAT_ERR_NOMEM;
	d->sandboxes = ns;
	for (size_t i = 0; i < d->nsandboxes; i++)
		d->sandboxes[i].cfg = &d->cfg->sandboxes[i];
	sc = &d->cfg->sandboxes[d->cfg->nsandboxes++];
	memset(sc, 0, sizeof(*sc));
	if ((sc->name = strdup(name)) == NULL)
		return MOAT_ERR_NOMEM;
	memset(&d->sandboxes[d->nsandboxes], 0, sizeof(*ns));
	d->sandboxes[d->nsandboxes].cfg = sc;
	d->sandboxes[d->nsandboxes].nflog_fd = -1;
	d->nsandboxes++;
	moat_diags_init(&diags);
	if (moat_store_policy_get(d->store, name, 0, &sp, NULL) == 0) {
		r = moatd_policy_validate(0, true, sp->json, "store",
		    &d->sandboxes[d->nsandboxes - 1].policy, &diags);
		d->sandboxes[d->nsandboxes - 1].version = sp->version;
		moat_store_policy_free(sp);
	} else {
		r = moatd_policy_apply(d, name, policy_json, "file", "test",
		    NULL, NULL, &diags, cause);
	}
	if (r != 0 && diags.n > 0)
		moat_cause_set(cause, "%s: %s", diags.v[0].path, diags.v[0].msg);
	moat_diags_free(&diags);
	return r;
}

void
moatd_set_installer_for_test(struct moatd *d, moatd_installer_fn *fn)
{
	d->install_policy = fn;
}

void
moatd_set_limits_for_test(struct moatd *d, int denials_per_minute,
    int pending_proposals, int agent_proposals_per_minute)
{
	d->cfg->limits.denials_per_minute = denials_per_minute;
	d->cfg->limits.pending_proposals = pending_proposals;
	d->cfg->limits.agent_proposals_per_minute = agent_proposals_per_minute;
}

void
moatd_set_exporter_for_test(struct moatd *d, struct moatd_export *x)
{
	d->exp = x;
}

void
moatd_free_for_test(struct moatd *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nsandboxes; i++)
		moat_policy_free(d->sandboxes[i].policy);
	free(d->sandboxes);
	for (size_t i = 0; i < d->cfg->nsandboxes; i++)
		free(d->cfg->sandboxes[i].name);
	free(d->cfg->sandboxes);
	free(d->cfg);
	free(d);
}
