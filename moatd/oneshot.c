#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "policies/policy.h"
#include "proxy/ca.h"
#include "proxy/proxy.h"
#include "sandbox/net.h"
#include "sandbox/sandbox.h"
#include "store/store.h"
#include "moatd/config.h"
#include "moatd/oneshot.h"
#include "moatd/proxychan.h"

struct moatd_oneshot {
	struct moat_loop *loop;
	struct moatd_proxychan *proxy;
	char name[64];
	int nflog_fd;
	int pidfd;
	pid_t child;
	int status;
	bool exited;
	bool synced;      /* the proxy answered our ping */
	struct moat_denial_event *ev; /* the run's denials */
	size_t nev;
	size_t cap;
};

static void
on_event(void *arg, const struct moat_denial_event *ev)
{
	struct moatd_oneshot *o = arg;

	if (o->nev == o->cap) {
		size_t nc = o->cap ? o->cap * 2 : 64;
		struct moat_denial_event *nv;
		/* A runaway command cannot grow this without bound. */
		if (nc > 100000 || (nv = realloc(o->ev, nc * sizeof(*nv))) ==
		    NULL)
			return;
		o->ev = nv;
		o->cap = nc;
	}
	o->ev[o->nev++] = *ev;
}

/* A one-shot run has no operator: refuse agent proposals at once. */
static void
on_message(void *arg, json_t *msg)
{
	struct moatd_oneshot *o = arg;
	const char *type = json_string_value(json_object_get(msg, "type"));

	if (type != NULL && strcmp(type, "pong") == 0) {
		o->synced = true;
		moat_loop_stop(o->loop);
		return;
	}
	if (type == NULL || strcmp(type, "proposal") != 0)
		return;
	moatd_proxychan_send(o->proxy, json_pack("{s:s, s:s, s:O, s:b, s:i, s:s}",
	    "type", "proposal_result", "sandbox", o->name, "req",
	    json_object_get(msg, "req"), "ok", 0, "id", 0, "error",
	    "moat run is one-shot: proposals need a running moatd"));
}

static void
child_exited(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	struct moatd_oneshot *o = arg;

	(void)ev;
	/* An exited process's pidfd stays readable: stop watching it. */
	moat_loop_del_fd(l, fd);
	while (waitpid(o->child, &o->status, 0) < 0 && errno == EINTR)
		;
	o->exited = true;
	moat_loop_stop(l);
}

static void
drain_timeout(struct moat_loop *l, void *arg)
{
	(void)arg;
	moat_loop_stop(l);
}

/* Ping the proxy and wait (bounded) for the pong: it answered all before. */
static bool
sync_proxy(struct moatd_oneshot *o)
{
	struct moat_timer *t;

	o->synced = false;
	if (moatd_proxychan_send(o->proxy, json_pack("{s:s, s:i}", "type",
	    "ping", "seq", 1)) != 0)
		return false;
	t = moat_loop_timer(o->loop, 5000, drain_timeout, NULL);
	moat_loop_run(o->loop);
	moat_loop_timer_cancel(o->loop, t);
	return o->synced;
}

int
moatd_oneshot_ca(const char *name, char **dir, struct moat_cause *cause)
{
	char tmpl[] = "/tmp/moat-run-ca-XXXXXX";
	int r;

	if (mkdtemp(tmpl) == NULL) {
		moat_cause_errno(cause, "mkdtemp %s", tmpl);
		return MOAT_ERR_SYSTEM;
	}
	if ((r = moat_ca_create(tmpl, name, MOAT_SANDBOX_SYSTEM_ROOTS,
	    cause)) != 0 || (*dir = strdup(tmpl)) == NULL) {
		moatd_oneshot_ca_remove(tmpl[0] ? strdup(tmpl) : NULL);
		return r != 0 ? r : MOAT_ERR_NOMEM;
	}
	return MOAT_OK;
}

void
moatd_oneshot_ca_remove(char *dir)
{
	static const char *const files[] = { MOAT_CA_KEY, MOAT_CA_CERT,
		MOAT_CA_BUNDLE };
	char path[4200];

	if (dir == NULL)
		return;
	for (size_t i = 0; i < MOAT_NELEM(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
	free(dir);
}

int
moatd_oneshot_start(struct moat_sandbox *sb, const char *name,
    const struct moat_policy *p, const char *hosts_file,
    const struct moatd_oneshot_tls *tls, struct moatd_oneshot **out,
    struct moat_cause *cause)
{
	struct moatd_proxychan_cbs cbs = { NULL, on_event, on_message, NULL };
	struct moat_proxy_config pc = { 0 };
	struct moatd_oneshot *o;
	struct passwd *pw;
	int r;

	/* The proxy's uid must be nobody's (who could signal it). */
	if ((pw = getpwuid(MOATD_PROXY_UID)) != NULL) {
		moat_cause_set(cause, "uid %u, which the proxy runs as, belongs "
		    "to host user '%s'", (unsigned)MOATD_PROXY_UID,
		    pw->pw_name);
		return MOAT_ERR_INVALID;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return MOAT_ERR_NOMEM;
	o->nflog_fd = o->pidfd = -1;
	moat_strlcpy(o->name, name, sizeof(o->name));
	cbs.arg = o;
	pc.port = moat_sandbox_proxy_port(sb);
	pc.run_uid = MOATD_PROXY_UID;
	pc.run_gid = MOATD_PROXY_UID;
	pc.hosts_file = hosts_file;
	pc.upstream_ca_file = tls != NULL ? tls->upstream_ca : NULL;
	pc.lazy_trust_store = true;
	/* Never dial another sandbox (moat run uses the default pool). */
	pc.deny_cidr = MOAT_NET_DEFAULT_POOL;
	/* It travels to the proxy with the sandbox's line. No bypass
	 * monitor is a degraded run, not a failed one. */
	if (moat_sandbox_nflog_open(sb, &o->nflog_fd, NULL) != 0)
		o->nflog_fd = -1;
	if ((r = moat_loop_new(&o->loop, cause)) != 0 ||
	    (r = moatd_proxychan_start(o->loop, &pc, &cbs, &o->proxy,
		 cause)) != 0) {
		moatd_oneshot_finish(o, NULL, NULL);
		return r;
	}
	moatd_proxychan_sandbox(o->proxy, name, sb, o->nflog_fd, NULL,
	    tls != NULL ?
	    tls->ca_dir : NULL);
	if (tls != NULL && tls->nsecrets > 0)
		moatd_proxychan_secrets(o->proxy, name, tls->secrets,
		    tls->nsecrets);
	moatd_proxychan_policy(o->proxy, name, 0, moat_policy_json(p));
	/* The command must find the proxy listening: wait for its answer. */
	if (!sync_proxy(o))
		log_warn("the proxy did not answer; the command may find it "
			 "not yet listening");
	*out = o;
	return MOAT_OK;
}

int
moatd_oneshot_wait(struct moatd_oneshot *o, pid_t child, int *status)
{
	o->child = child;
	o->pidfd = (int)syscall(SYS_pidfd_open, child, 0);
	if (o->pidfd < 0) {
		/* Old kernel: no events while the command runs. */
		while (waitpid(child, status, 0) < 0)
			if (errno != EINTR)
				return MOAT_ERR_SYSTEM;
		return MOAT_OK;
	}
	moat_fd_cloexec(o->pidfd);
	moat_loop_add_fd(o->loop, o->pidfd, MOAT_EV_READ, child_exited, o);
	while (!o->exited)
		if (moat_loop_run(o->loop) != 0)
			return MOAT_ERR_SYSTEM;
	/*
	 * The last denials (a bypass just before exit) may still be on the
	 * way: the proxy's pong comes after it read what NFLOG holds and
	 * named those packets' senders. Bounded by a timeout.
	 */
	if (!sync_proxy(o))
		log_warn("the proxy did not answer; some denials of this run "
			 "may be missing");
	*status = o->status;
	return MOAT_OK;
}

int
moatd_oneshot_finish(struct moatd_oneshot *o, const char *store_path,
    struct moat_cause *cause)
{
	struct moat_store *s = NULL;
	int r = MOAT_OK;

	if (o == NULL)
		return MOAT_OK;
	if (o->pidfd >= 0) {
		moat_loop_del_fd(o->loop, o->pidfd);
		close(o->pidfd);
	}
	moat_close(o->nflog_fd);
	moatd_proxychan_stop(o->proxy);
	if (store_path != NULL && o->nev > 0) {
		char dir[4096], *slash;
		moat_strlcpy(dir, store_path, sizeof(dir));
		if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
			*slash = '\0';
			moat_mkdir_p(dir, 0700, NULL);
		}
		if ((r = moat_store_open(store_path, MOAT_STORE_CREATE, &s,
			 cause)) == 0)
			r = moat_store_denials_add(s, o->ev, o->nev, cause);
		moat_store_close(s);
	}
	moat_loop_free(o->loop);
	free(o->ev);
	free(o);
	return r;
}
