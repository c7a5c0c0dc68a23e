#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/escape.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "proxy/ca.h"
#include "sandbox/net.h"
#include "sandbox/sandbox.h"
#include "sshd/sshd.h"
#include "store/store.h"
#include "moatd/daemon.h"
#include "moatd/proxychan.h"
#include "moatd/secrets.h"
#include "moatd/state.h"

/* Read a sandbox's policy file (or the embedded default). */
static int
read_policy_text(const struct moatd_sandbox_config *sc, char **out,
    struct moat_cause *cause)
{
	if (sc->policy_path == NULL)
		return (*out = strdup(moat_policy_default_json)) ? 0 :
		    MOAT_ERR_NOMEM;
	return moat_read_file(sc->policy_path, 4 << 20, out, NULL, cause);
}

/* Diagnostics quote the policy's text: escaped, as in moatd's log. */
static void
print_diags(const char *src, const struct moat_diags *dg)
{
	static const char *const lv[] = { "error", "warning", "note" };

	for (size_t i = 0; i < dg->n; i++) {
		char *s = moat_escape_str(src);
		char *path = moat_escape_str(dg->v[i].path);
		char *msg = moat_escape_str(dg->v[i].msg);

		fprintf(stderr, "%s: %s: %s: %s\n", s ? s : "?",
		    lv[dg->v[i].level], path ? path : "?", msg ? msg : "?");
		free(s);
		free(path);
		free(msg);
	}
}

int
moatd_check_policies(const struct moatd_config *c)
{
	int bad = 0;

	for (size_t i = 0; i < c->nsandboxes; i++) {
		const struct moatd_sandbox_config *sc = &c->sandboxes[i];
		struct moat_cause cause = { { 0 } };
		struct moat_policy *p = NULL;
		struct moat_diags dg;
		char *text = NULL;
		const char *src = sc->policy_path ? sc->policy_path :
		    "(embedded deny-all)";

		moat_diags_init(&dg);
		if (read_policy_text(sc, &text, &cause) != 0) {
			fprintf(stderr, "moatd: sandbox %s: %s\n", sc->name,
			    cause.msg);
			bad++;
		} else if (moatd_policy_validate(0, false, text, src, &p,
			       &dg) != 0) {
			bad++;
		}
		print_diags(src, &dg);
		moat_diags_free(&dg);
		moat_policy_free(p);
		free(text);
	}
	return bad ? MOAT_ERR_INVALID : MOAT_OK;
}

struct find_file_hash {
	const char *hash;
	bool found;
	int pending[16]; /* versions a stopped moatd never settled */
	size_t npending;
};

static int
match_file_version(const struct moat_store_policy *p, void *arg)
{
	struct find_file_hash *f = arg;

	if (strcmp(p->state, MOAT_STORE_POLICY_PENDING) == 0 &&
	    f->npending < MOAT_NELEM(f->pending))
		f->pending[f->npending++] = p->version;
	if (strcmp(p->state, MOAT_STORE_POLICY_ACTIVE) == 0 &&
	    strcmp(p->source, "file") == 0 && strcmp(p->hash, f->hash) == 0)
		f->found = true;
	return 0;
}

/*
 * The policy a sandbox starts with: the newest stored version, unless the
 * policy file changed since it was last stored (then the file wins and
 * becomes a new version). Approved rules so survive restarts.
 */
static int
init_policy(struct moatd *d, struct moatd_sandbox *s, struct moat_cause *cause)
{
	const char *src = s->cfg->policy_path ? s->cfg->policy_path :
	    "(embedded deny-all)";
	struct moat_store_policy *latest = NULL;
	struct find_file_hash f = { 0 };
	struct moat_policy *filep = NULL;
	struct moat_diags dg;
	char *text = NULL;
	int r;

	moat_diags_init(&dg);
	if ((r = read_policy_text(s->cfg, &text, cause)) != 0)
		goto out;
	if ((r = moatd_policy_validate(0, false, text, src, &filep, &dg)) != 0) {
		print_diags(src, &dg);
		moat_cause_set(cause, "sandbox %s: policy %s is invalid",
		    s->cfg->name, src);
		goto out;
	}
	print_diags(src, &dg);
	f.hash = moat_policy_hash(filep);
	if ((r = moat_store_policy_list(d->store, s->cfg->name,
		 match_file_version, &f, cause)) != 0)
		goto out;
	for (size_t i = 0; i < f.npending; i++)
		moat_store_policy_settle(d->store, s->cfg->name, f.pending[i],
		    false, "moatd stopped before the proxy answered", NULL);
	if (f.found && moat_store_policy_get(d->store, s->cfg->name, 0,
			   &latest, NULL) == 0) {
		moat_diags_free(&dg);
		moat_diags_init(&dg);
		r = moatd_policy_validate(0, false, latest->json, "store",
		    &s->policy, &dg);
		if (r == 0) {
			s->version = latest->version;
			log_info("sandbox %s: policy version %d from the store",
			    s->cfg->name, s->version);
			goto out;
		}
		log_warn("sandbox %s: stored version %d no longer loads; "
			 "using %s", s->cfg->name, latest->version, src);
	}
	if ((r = moat_store_policy_add(d->store, s->cfg->name,
		 moat_policy_json(filep), moat_policy_hash(filep), "file",
		 "moatd", src, &s->version, cause)) != 0)
		goto out;
	s->policy = moat_steal_ptr(&filep);
	log_info("sandbox %s: policy %s stored as version %d", s->cfg->name,
	    src, s->version);
	r = MOAT_OK;
out:
	moat_store_policy_free(latest);
	moat_policy_free(filep);
	moat_diags_free(&dg);
	free(text);
	return r;
}

/*
 * Make the workspace when it is missing. *made says whether the
 * sandbox should own it: a directory moatd just made, or an empty one
 * owned by root (made by an earlier start that failed before the chown).
 * An existing workspace is never chowned: the operator's files stay
 * theirs, and it must be writable by the sandbox's uid already.
 */
static int
workspace_ready(const char *path, bool *made, struct moat_cause *cause)
{
	struct stat st;
	DIR *dir;
	int r, n = 0;

	*made = false;
	if (stat(path, &st) == 0) {
		if (st.st_uid != 0 || !S_ISDIR(st.st_mode) ||
		    (dir = opendir(path)) == NULL)
			return MOAT_OK;
		while (n <= 2 && readdir(dir) != NULL)
			n++;
		closedir(dir);
		*made = n <= 2;
		return MOAT_OK;
	}
	if ((r = moat_mkdir_p(path, 0755, cause)) != 0)
		return r;
	*made = true;
	return MOAT_OK;
}

/*
 * Where the sandbox's CA is (its files: moat_ca_create, in
 * adopt_or_create), and its credentials: values read now, placeholders
 * for the sandbox's environment in *env.
 */
static int
sandbox_tls(struct moatd_sandbox *s, const char *sdir,
    struct moat_sandbox_config *sc, char ***env, struct moat_cause *cause)
{
	static char cert[4200], bundle[4200];
	int r;

	*env = NULL;
	/* Again after `moat sandboxes stop`: the values are read anew. */
	moatd_secrets_free(s->secrets, s->nsecrets);
	s->secrets = NULL;
	s->nsecrets = 0;
	if (s->ca_dir == NULL && (s->ca_dir = strdup(sdir)) == NULL)
		return MOAT_ERR_NOMEM;
	snprintf(cert, sizeof(cert), "%s/" MOAT_CA_CERT, sdir);
	snprintf(bundle, sizeof(bundle), "%s/" MOAT_CA_BUNDLE, sdir);
	sc->ca_cert = cert;
	sc->ca_bundle = bundle;
	if ((r = moatd_secrets_resolve(s->cfg->secrets, s->cfg->nsecrets,
	    &s->secrets, cause)) != 0)
		return r;
	s->nsecrets = s->cfg->nsecrets;
	if (s->nsecrets > 0 && (*env = moatd_secrets_env(s->secrets,
	    s->nsecrets)) == NULL)
		return MOAT_ERR_NOMEM;
	sc->env = (const char *const *)*env;
	return MOAT_OK;
}

/*
 * The bypass monitor's socket, read by the proxy (it goes with the
 * sandbox's line); moatd keeps it for a proxy it may have to start
 * again. One socket may hold a netns's NFLOG group: after a live
 * restore the adopted proxy holds the previous one and serves on with
 * it, so moatd has none until it must hand one to another proxy.
 */
void
moatd_sandbox_nflog(struct moatd *d, struct moatd_sandbox *s)
{
	struct moat_cause cause = { { 0 } };
	int r;

	(void)d;
	if (s->sb == NULL || s->nflog_fd >= 0)
		return;
	if ((r = moat_sandbox_nflog_open(s->sb, &s->nflog_fd, &cause)) == 0)
		return;
	s->nflog_fd = -1;
	if (r == MOAT_ERR_EXISTS && s->adopted && !s->nflog_warned)
		log_verbose("sandbox %s: its NFLOG group is held by the "
		    "proxy of the previous moatd", s->cfg->name);
	else if (!s->nflog_warned)
		log_warn("sandbox %s: no bypass monitor: %s", s->cfg->name,
		    cause.msg);
	s->nflog_warned = true;
}

static void
sandbox_dir(const struct moatd *d, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/sandboxes/%s", d->cfg->state_dir, name);
}

/*
 * Remove what a sandbox of this name left behind (a crash, a sandbox
 * that cannot be adopted, one no longer configured): its processes,
 * cgroups, network and state record.
 */
static void
purge_sandbox(const char *name, const char *sdir)
{
	struct moat_cause cause = { { 0 } };
	char rec[4200];

	if (moat_sandbox_purge(name, &cause) != 0)
		log_warn("sandbox %s: leftovers not purged: %s", name,
		    cause.msg);
	snprintf(rec, sizeof(rec), "%s/%s", sdir, MOAT_SANDBOX_STATE_FILE);
	if (unlink(rec) != 0 && errno != ENOENT)
		log_warn_errno("sandbox %s: remove %s", name, rec);
}

/*
 * With live restore, take over the sandbox a previous moatd left
 * running; anything else (no record, its init died, the config no
 * longer fits it) is purged, logged, and created anew.
 */
static int
adopt_or_create(struct moatd *d, struct moatd_sandbox *s,
    struct moat_sandbox_config *sc, struct moat_cause *cause)
{
	struct moat_cause why = { { 0 } };
	char rec[4200];
	int r;

	snprintf(rec, sizeof(rec), "%s/%s", sc->state_dir,
	    MOAT_SANDBOX_STATE_FILE);
	/* It trusts the CA it was made with: that one must still be there. */
	if (d->cfg->live_restore && (sc->ca_cert == NULL ||
	    access(sc->ca_cert, R_OK) == 0)) {
		if ((r = moat_sandbox_adopt(sc, &s->sb, &why)) == 0) {
			s->adopted = true;
			return MOAT_OK;
		}
		if (access(rec, F_OK) == 0 || r != MOAT_ERR_NOTFOUND)
			log_warn("sandbox %s: not adopted (%s); purging it and "
			    "starting a new one", s->cfg->name, why.msg);
	}
	/* A moatd killed with SIGKILL left its sandboxes behind: clear them. */
	purge_sandbox(s->cfg->name, sc->state_dir);
	/* A new sandbox, a new CA (its key root-only in the state dir). */
	if (sc->ca_cert != NULL && (r = moat_ca_create(sc->state_dir,
	    s->cfg->name, MOAT_SANDBOX_SYSTEM_ROOTS, cause)) != 0)
		return r;
	return moat_sandbox_create(sc, &s->sb, cause);
}

static int
start_sandbox(struct moatd *d, size_t i, struct moat_cause *cause)
{
	struct moatd_sandbox *s = &d->sandboxes[i];
	struct moat_sandbox_config sc = { 0 };
	char sdir[4096], **env = NULL;
	bool made;
	int r;

	s->cfg = &d->cfg->sandboxes[i];
	s->owner = d;
	s->nflog_fd = -1;
	s->nflog_warned = false;
	s->adopted = false;
	if (s->policy == NULL && (r = init_policy(d, s, cause)) != 0)
		return r;
	if ((r = workspace_ready(s->cfg->workspace, &made, cause)) != 0)
		return r;
	sandbox_dir(d, s->cfg->name, sdir, sizeof(sdir));
	if ((r = moat_mkdir_p(sdir, 0700, cause)) != 0)
		return r;
	sc.name = s->cfg->name;
	sc.policy = s->policy;
	sc.workspace = s->cfg->workspace;
	sc.net_index = (uint32_t)i;
	sc.net_pool = d->cfg->net_pool;
	sc.proxy_port = d->cfg->proxy_port;
	sc.state_dir = sdir;
	sc.attrib = (enum moat_attrib_mode)d->cfg->identity;
	sc.nofile_soft = d->nofile_soft;
	if ((r = sandbox_tls(s, sdir, &sc, &env, cause)) != 0)
		return r;
	sc.outlive_creator = d->cfg->live_restore;
	r = adopt_or_create(d, s, &sc, cause);
	moatd_secrets_env_free(env);
	if (r != 0)
		return r;
	/* An adopted one gets its attribution when a proxy needs it. */
	if (!s->adopted)
		moatd_log_identity(s->cfg->name, s->sb, sc.attrib);
	/* Its uid is known only now: each sandbox has its own. */
	if (made && chown(s->cfg->workspace, moat_sandbox_uid(s->sb),
	    moat_sandbox_gid(s->sb)) == -1) {
		moat_cause_errno(cause, "chown %s", s->cfg->workspace);
		return MOAT_ERR_SYSTEM;
	}
	s->init_pid = moat_sandbox_init_pid(s->sb);
	moatd_sandbox_nflog(d, s);
	moat_store_sandbox_upsert(d->store, s->cfg->name, moat_wall_ms(),
	    s->cfg->workspace, NULL);
	log_info("sandbox %s %s: proxy %s:%u, init pid %d, uid %u",
	    s->cfg->name, s->adopted ? "adopted" : "up",
	    moat_sandbox_host_addr(s->sb),
	    (unsigned)moat_sandbox_proxy_port(s->sb),
	    (int)moat_sandbox_init_pid(s->sb),
	    (unsigned)moat_sandbox_uid(s->sb));
	return MOAT_OK;
}

/*
 * Records in the state directory of sandboxes the config no longer
 * names: a live-restored moatd left them running; nobody will adopt
 * them, so they go.
 */
static void
purge_unconfigured(struct moatd *d)
{
	char dir[4096], sdir[4400];
	struct dirent *e;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/sandboxes", d->cfg->state_dir);
	if ((dp = opendir(dir)) == NULL)
		return;
	while ((e = readdir(dp)) != NULL) {
		if (e->d_name[0] == '.' || moatd_sandbox_find(d, e->d_name))
			continue;
		snprintf(sdir, sizeof(sdir), "%s/%s/%s", dir, e->d_name,
		    MOAT_SANDBOX_STATE_FILE);
		if (access(sdir, F_OK) != 0)
			continue;
		snprintf(sdir, sizeof(sdir), "%s/%s", dir, e->d_name);
		log_warn("sandbox %s is no longer in the config: purging it",
		    e->d_name);
		purge_sandbox(e->d_name, sdir);
	}
	closedir(dp);
}

int
moatd_sandbox_stop(struct moatd *d, struct moatd_sandbox *s, bool detach)
{
	if (s->sb == NULL)
		return MOAT_ERR_NOTFOUND;
	moat_close(s->nflog_fd);
	s->nflog_fd = -1;
	if (!detach)
		moatd_proxy_remove_sandbox(d, s->cfg->name);
	if (detach)
		moat_sandbox_detach(s->sb);
	else
		moat_sandbox_free(s->sb);
	s->sb = NULL;
	s->init_pid = 0;
	log_info("sandbox %s %s", s->cfg->name, detach ? "left running "
	    "(live restore)" : "stopped");
	return MOAT_OK;
}

int
moatd_sandbox_stop_named(struct moatd *d, const char *name,
    struct moat_cause *cause)
{
	struct moatd_sandbox *s = moatd_sandbox_find(d, name);
	int r;

	if (s == NULL || s->sb == NULL) {
		moat_cause_set(cause, s == NULL ? "no sandbox named '%s'" :
		    "sandbox '%s' is not running", name);
		return MOAT_ERR_NOTFOUND;
	}
	r = moatd_sandbox_stop(d, s, false);
	moatd_ssh_sandboxes_changed(d);
	return r;
}

int
moatd_sandbox_start_named(struct moatd *d, const char *name,
    struct moat_cause *cause)
{
	struct moatd_sandbox *s = moatd_sandbox_find(d, name);
	int r;

	if (s == NULL) {
		moat_cause_set(cause, "no sandbox named '%s'", name);
		return MOAT_ERR_NOTFOUND;
	}
	if ((r = moatd_sandbox_start(d, s, cause)) != 0 && s->sb == NULL)
		log_warn("sandbox %s: start failed: %s", name, cause->msg);
	if (r == 0)
		moatd_ssh_sandboxes_changed(d);
	return r;
}

bool
moatd_sandbox_running(const struct moatd *d, const char *name)
{
	struct moatd_sandbox *s = moatd_sandbox_find((struct moatd *)d, name);

	return s != NULL && s->sb != NULL;
}

void
moatd_shutdown(struct moatd *d)
{
	log_info("shutdown requested: tearing everything down");
	d->shutdown = true;
	d->stopping = true;
	moat_loop_stop(d->loop);
}

int
moatd_sandbox_start(struct moatd *d, struct moatd_sandbox *s,
    struct moat_cause *cause)
{
	int r;

	if (s->sb != NULL) {
		moat_cause_set(cause, "sandbox %s is running", s->cfg->name);
		return MOAT_ERR_EXISTS;
	}
	if ((r = start_sandbox(d, (size_t)(s - d->sandboxes), cause)) != 0)
		return r;
	moatd_proxy_add_sandbox(d, s);
	return MOAT_OK;
}

/*
 * One moatd per state directory: two would adopt and purge each other's
 * sandboxes. A POSIX record lock, because it belongs to this process
 * alone: the proxy and SSH processes it forks (which may outlive it,
 * with live restore) do not inherit it, so the next moatd can take it.
 */
static int
lock_state(struct moatd *d, struct moat_cause *cause)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/moatd.lock", d->cfg->state_dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) == -1) {
		moat_cause_errno(cause, "open %s", path);
		return MOAT_ERR_SYSTEM;
	}
	if (fcntl(fd, F_SETLK, &fl) == -1) {
		if (errno == EACCES || errno == EAGAIN) {
			fl.l_type = F_WRLCK;
			fcntl(fd, F_GETLK, &fl);
			moat_cause_set(cause, "another moatd (pid %d) runs with "
			    "state directory %s", (int)fl.l_pid,
			    d->cfg->state_dir);
		} else
			moat_cause_errno(cause, "lock %s", path);
		close(fd);
		return MOAT_ERR_EXISTS;
	}
	d->lock_fd = fd;
	return MOAT_OK;
}

/*
 * Every tunnel costs the proxy two fds or more: never run into a limit
 * that the shell which started moatd happened to have. Sessions get the
 * starting soft limit back (moat_sandbox_config.nofile_soft).
 */
static void
raise_nofile(struct moatd *d)
{
	struct moat_cause cause = { { 0 } };
	unsigned long soft = 0, hard = 0;

	if (moat_nofile_raise(d->cfg->max_open_files, &d->nofile_soft, &soft,
	    &hard, &cause) != 0) {
		log_warn("open files limit unchanged: %s", cause.msg);
		return;
	}
	if (hard < d->cfg->max_open_files)
		log_warn("open files limited to %lu, below max_open_files %lu "
		    "(the kernel's fs.nr_open, or no CAP_SYS_RESOURCE)", hard,
		    d->cfg->max_open_files);
	log_verbose("open files limit %lu (soft was %lu)", soft,
	    d->nofile_soft);
}

/*
 * "moatd is ready" means egress is served too, not only logins: wait
 * (bounded) until the proxy answered each running sandbox's active
 * policy, installed or refused. One that does not answer in time is
 * logged; moat sandboxes then says POLICY MISMATCH.
 */
static void
proxy_wait_served(struct moatd *d)
{
	int64_t deadline = moat_now_ms() + MOATD_PROXY_ACK_MS, left;

	for (;;) {
		size_t i;

		for (i = 0; i < d->nsandboxes; i++) {
			struct moatd_sandbox *s = &d->sandboxes[i];

			if (s->sb != NULL && s->policy != NULL &&
			    s->proxy_version != s->version &&
			    s->proxy_error[0] == '\0')
				break;
		}
		if (i == d->nsandboxes)
			return;
		if ((left = deadline - moat_now_ms()) <= 0 || d->proxy == NULL ||
		    moatd_proxychan_wait(d->proxy, (int)left) != 0) {
			log_warn("sandbox %s: the proxy did not answer its "
			    "policy in %d ms", d->sandboxes[i].cfg->name,
			    MOATD_PROXY_ACK_MS);
			return;
		}
	}
}

int
moatd_start(struct moatd *d, struct moat_cause *cause)
{
	int r;

	d->sess_fd = d->sess_wfd = -1;
	d->relay_fd = d->relay_tcp_fd = -1;
	d->install_policy = moatd_proxy_install_policy;
	d->send_trust = moatd_proxy_send_trust;
	d->lock_fd = -1;
	if ((r = moat_mkdir_p(d->cfg->state_dir, 0700, cause)) != 0 ||
	    (r = lock_state(d, cause)) != 0)
		return r;
	moat_sandbox_protect_self();
	raise_nofile(d);
	if ((r = moat_loop_new(&d->loop, cause)) != 0)
		return r;
	if ((r = moat_store_open(d->cfg->store_path, MOAT_STORE_CREATE,
		 &d->store, cause)) != 0)
		return r;
	if ((r = moatd_export_open(d->cfg->events_path, &d->exp, cause)) != 0)
		return r;
	if ((r = moatd_aggregator_new(d, 200, &d->agg, cause)) != 0)
		return r;
	if ((r = moatd_agentq_new(d, d->agg, moatd_proxy_agent_reply,
	    &d->agentq)) != 0) {
		moat_cause_set(cause, "agent queue: out of memory");
		return r;
	}
	if ((d->sandboxes = calloc(d->cfg->nsandboxes,
		 sizeof(*d->sandboxes))) == NULL)
		return MOAT_ERR_NOMEM;
	d->nsandboxes = d->cfg->nsandboxes;
	for (size_t i = 0; i < d->nsandboxes; i++) {
		d->sandboxes[i].cfg = &d->cfg->sandboxes[i];
		d->sandboxes[i].nflog_fd = -1;
	}
	purge_unconfigured(d);
	for (size_t i = 0; i < d->cfg->nsandboxes; i++)
		if ((r = start_sandbox(d, i, cause)) != 0)
			return r;
	if ((r = moatd_uid_unused(d, d->cfg->proxy_uid, "proxy.uid",
	    cause)) != 0)
		return r;
	if (d->cfg->proxy_uid == d->cfg->ssh_privsep_uid) {
		moat_cause_set(cause, "proxy.uid and ssh_privsep_uid must "
		    "differ (%u)", (unsigned)d->cfg->proxy_uid);
		return MOAT_ERR_INVALID;
	}
	if ((r = moatd_proxy_start(d, cause)) != 0)
		return r;
	proxy_wait_served(d);
	if ((r = moatd_control_new(d, d->cfg->control_path,
		 d->cfg->control_gid, &d->ctl, cause)) != 0)
		return r;
	if ((r = moatd_retention_new(d, (int64_t)d->cfg->retention_days * 86400,
		 60000, 5000, &d->ret, cause)) != 0)
		return r;
	return moatd_ssh_start(d, cause);
}

void
moatd_stop(struct moatd *d)
{
	/* Live restore leaves everything running, unless asked to end it. */
	bool detach = d->cfg->live_restore && !d->shutdown;

	d->stopping = true;
	d->detaching = detach;
	moatd_ssh_stop(d);
	moatd_control_free(d->ctl);
	d->ctl = NULL;
	moatd_proxy_stop(d);
	for (size_t i = 0; i < d->nsandboxes; i++) {
		struct moatd_sandbox *s = &d->sandboxes[i];

		moatd_sandbox_stop(d, s, detach);
		moat_policy_free(s->policy);
		free(s->file_hash);
		free(s->ca_dir);
		moatd_secrets_free(s->secrets, s->nsecrets);
	}
	if (detach && d->nsandboxes > 0)
		log_info("live restore: %zu sandboxes left running for the "
		    "next moatd", d->nsandboxes);
	free(d->sandboxes);
	d->sandboxes = NULL;
	d->nsandboxes = 0;
	moatd_retention_free(d->ret);
	d->ret = NULL;
	moatd_agentq_free(d->agentq);
	d->agentq = NULL;
	moatd_aggregator_free(d->agg);
	d->agg = NULL;
	moatd_export_close(d->exp);
	d->exp = NULL;
	moat_store_close(d->store);
	d->store = NULL;
	moat_loop_free(d->loop);
	d->loop = NULL;
	moat_close(d->lock_fd);
	d->lock_fd = -1;
}

void
moatd_reload_policies(struct moatd *d)
{
	for (size_t i = 0; i < d->nsandboxes; i++) {
		struct moatd_sandbox *s = &d->sandboxes[i];
		struct moat_cause cause = { { 0 } };
		struct moat_policy *p = NULL;
		struct moat_diags dg;
		char *text = NULL;

		if (s->cfg->policy_path == NULL)
			continue;
		moat_diags_init(&dg);
		if (read_policy_text(s->cfg, &text, &cause) != 0) {
			log_warn("sandbox %s: reload: %s; keeping version %d",
			    s->cfg->name, cause.msg, s->version);
		} else if (moatd_policy_validate(s->init_pid, false, text,
			       s->cfg->policy_path, &p, &dg) != 0) {
			print_diags(s->cfg->policy_path, &dg);
			log_warn("sandbox %s: %s is invalid; keeping version %d",
			    s->cfg->name, s->cfg->policy_path, s->version);
		} else if (strcmp(moat_policy_hash(p),
			       moat_policy_hash(s->policy)) != 0) {
			moat_diags_free(&dg);
			moat_diags_init(&dg);
			moatd_policy_apply(d, s->cfg->name, text, "file", "moatd",
			    s->cfg->policy_path, NULL, &dg, &cause);
		}
		moat_policy_free(p);
		moat_diags_free(&dg);
		free(text);
	}
}

void
moatd_child_exited(struct moatd *d, pid_t pid, int status)
{
	moatd_sessions_conn_ended(d, pid, status);
	for (size_t i = 0; i < d->nsandboxes; i++) {
		if (d->sandboxes[i].sb != NULL &&
		    moat_sandbox_init_pid(d->sandboxes[i].sb) == pid)
			log_error("sandbox %s: its init process ended (status "
				  "%d); sessions will fail until `moat sandboxes "
				  "start`", d->sandboxes[i].cfg->name, status);
	}
}

void
moatd_print_ready(const struct moatd *d)
{
	const char *su = getenv("SUDO_USER");
	char fp[128];

	printf("\nmoatd is ready (config: %s).\n", d->cfg->source);
	/* What `ssh` shows at first contact, to compare before saying yes. */
	if (moat_sshd_hostkey_fingerprint(d->cfg->hostkey_path, fp, sizeof(fp),
	    NULL) == 0)
		printf("Host key: ED25519 %s\n", fp);
	printf("\n");
	for (size_t i = 0; i < d->nsandboxes; i++) {
		const struct moatd_sandbox *s = &d->sandboxes[i];
		for (size_t l = 0; l < d->cfg->nlisten; l++)
			printf("  ssh -p %u %s@%s\n",
			    (unsigned)d->cfg->listen[l].port, s->cfg->name,
			    d->cfg->listen[l].addr);
		if (s->cfg->nkeys == 0)
			printf("  (sandbox %s has no authorized keys: nobody "
			       "can log in)\n", s->cfg->name);
	}
	if (d->nsandboxes > 0 && d->cfg->nlisten > 0) {
		printf("\nor put this in %s/.ssh/config and run `ssh %s`:\n\n",
		    su ? "~" : "~", d->sandboxes[0].cfg->name);
		printf("Host %s\n  HostName %s\n  Port %u\n  User %s\n"
		       "  UserKnownHostsFile ~/.ssh/known_hosts.moat\n\n",
		    d->sandboxes[0].cfg->name, d->cfg->listen[0].addr,
		    (unsigned)d->cfg->listen[0].port, d->sandboxes[0].cfg->name);
	}
	printf("Operator: build/rel/moat denials | proposals | approve ID "
	       "(MOAT_STORE=%s MOAT_CONTROL=%s)\nStop with Ctrl-C.\n\n",
	    d->cfg->store_path, d->cfg->control_path);
	fflush(stdout);
}
