#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <linux/netlink.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/jsonl.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "proxy/ca.h"
#include "proxy/proxy.h"
#include "sandbox/net.h"
#include "sandbox/sandbox.h"
#include "moatd/proxychan.h"

struct moatd_proxychan {
	struct moat_loop *loop;
	struct moatd_proxychan_cbs cbs;
	int fd;           /* our end of the channel, or -1 */
	struct moat_jsonl *j; /* its framing */
	unsigned events;  /* what the loop watches fd for */
	pid_t pid;        /* the proxy process, or 0 once reaped */
	bool child;       /* ours (forked), else adopted (connected to) */
	int pidfd;        /* the adopted proxy's, watched; or -1 */
	json_t *ready;    /* its "ready" line, once it came */
};

static void
chan_close(struct moatd_proxychan *ch)
{
	if (ch->fd < 0)
		return;
	moat_loop_del_fd(ch->loop, ch->fd);
	moat_close(ch->fd);
	ch->fd = -1;
	moat_jsonl_free(ch->j);
	ch->j = NULL;
}

/* Watch for writability exactly while output is queued. */
static void
chan_watch(struct moatd_proxychan *ch)
{
	unsigned want = MOAT_EV_READ | (moat_jsonl_pending(ch->j) > 0 ?
	    MOAT_EV_WRITE : 0);

	if (want != ch->events && moat_loop_mod_fd(ch->loop, ch->fd,
	    want) == 0)
		ch->events = want;
}

int
moatd_proxychan_send(struct moatd_proxychan *ch, json_t *o)
{
	int r;

	if (ch == NULL || ch->fd < 0 || o == NULL) {
		json_decref(o);
		return MOAT_ERR_NOTFOUND;
	}
	/* Never blocks: what the proxy has not read yet waits in order. */
	if ((r = moat_jsonl_send(ch->j, o)) != 0)
		log_warn_r(r, "%s to the proxy not sent",
		    moat_jsonl_type(o) ? moat_jsonl_type(o) : "line");
	json_decref(o);
	chan_watch(ch);
	return r;
}

/*
 * Send o with fds attached (moat_jsonl_send_fds): lines queued before
 * it go first, so wait (bounded) until the proxy took them.
 */
static int
send_fds(struct moatd_proxychan *ch, json_t *o, const int *fds, size_t n)
{
	int64_t deadline = moat_now_ms() + MOATD_PROXYCHAN_FLUSH_MS;
	struct pollfd pfd = { ch != NULL ? ch->fd : -1, POLLOUT, 0 };
	int r = MOAT_ERR_NOTFOUND;

	while (ch != NULL && ch->fd >= 0 && o != NULL &&
	    (r = moat_jsonl_flush(ch->j)) == MOAT_ERR_AGAIN &&
	    moat_now_ms() < deadline)
		poll(&pfd, 1, 50);
	if (r == 0)
		r = moat_jsonl_send_fds(ch->j, o, fds, n);
	if (r != 0)
		log_warn_r(r, "%s with fds to the proxy not sent",
		    moat_jsonl_type(o) ? moat_jsonl_type(o) : "line");
	json_decref(o);
	if (ch != NULL && ch->fd >= 0)
		chan_watch(ch);
	return r;
}

int
moatd_proxychan_sandbox(struct moatd_proxychan *ch, const char *name,
    struct moat_sandbox *sb, int nflog_fd, json_t *trust, const char *ca_dir)
{
	int fds[16], links[8];
	const char *names[16];
	int conns = -1, tuples = -1, diag, r;
	struct moat_cause dc = { { 0 } };
	uint64_t cg = 0;
	const char *why;
	char path[4200];
	size_t n = 0, nl;
	json_t *o, *a;

	if (ch == NULL || ch->fd < 0) {
		json_decref(trust);
		return MOAT_ERR_NOTFOUND;
	}
	/*
	 * The proxy holds no fd of ours: they travel with the line. Not
	 * the netns (the confined proxy may not enter it): a sock_diag
	 * socket made in it. Without one the proxy reads /proc/PID/net.
	 */
	if ((diag = moat_sandbox_socket(sb, AF_NETLINK, SOCK_DGRAM |
	    SOCK_CLOEXEC, NETLINK_SOCK_DIAG, &dc)) >= 0) {
		names[n] = "diag";
		fds[n++] = diag;
	} else {
		log_warn("sandbox %s: no sock_diag socket for the proxy: %s",
		    name, dc.msg);
	}
	if (moat_sandbox_attrib(sb, &conns, &tuples, &cg, &why) == 0) {
		names[n] = "attrib";
		fds[n++] = conns;
		if (tuples >= 0) {
			names[n] = "attrib_tuple";
			fds[n++] = tuples;
		}
		/* Its programs stay attached while the proxy holds these. */
		nl = moat_sandbox_attrib_links(sb, links, MOAT_NELEM(links));
		for (size_t i = 0; i < nl; i++) {
			names[n] = "keep";
			fds[n++] = links[i];
		}
	}
	if (nflog_fd >= 0) {
		names[n] = "nflog";
		fds[n++] = nflog_fd;
	}
	o = json_pack("{s:s, s:s, s:s, s:i, s:s, s:i, s:I, s:I}", "type",
	    "sandbox", "name", name, "listen", moat_sandbox_host_addr(sb),
	    "port", (int)moat_sandbox_proxy_port(sb), "procs",
	    moat_sandbox_procs_path(sb), "init_pid",
	    (int)moat_sandbox_init_pid(sb), "fd_seq",
	    (json_int_t)moat_jsonl_fd_seq(ch->j), "cgroup_id",
	    (json_int_t)cg);
	if (o != NULL)
		json_object_set_new(o, "trust", trust != NULL ? trust :
		    json_array());
	else
		json_decref(trust);
	if (o != NULL && ca_dir != NULL) {
		snprintf(path, sizeof(path), "%s/" MOAT_CA_CERT, ca_dir);
		json_object_set_new(o, "ca_cert", json_string(path));
		snprintf(path, sizeof(path), "%s/" MOAT_CA_KEY, ca_dir);
		json_object_set_new(o, "ca_key", json_string(path));
	}
	if (o != NULL && (a = json_array()) != NULL) {
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_string(names[i]));
		json_object_set_new(o, "fds", a);
	}
	r = send_fds(ch, o, fds, n);
	moat_close(diag);
	return r;
}

void
moatd_log_identity(const char *name, const struct moat_sandbox *sb,
    enum moat_attrib_mode mode)
{
	int conns, tuples;
	uint64_t cg;
	const char *why = "";

	if (moat_sandbox_attrib(sb, &conns, &tuples, &cg, &why) == 0)
		log_info("sandbox %s: caller identity from the kernel's records "
		    "(BPF on cgroup %llu)", name, (unsigned long long)cg);
	else if (mode == MOAT_ATTRIB_OFF)
		log_info("sandbox %s: caller identity by /proc scan (identity "
		    "\"proc\" in the config)", name);
	else
		log_warn("sandbox %s: caller identity by /proc scan, without "
		    "BPF: %s", name, why);
}

void
moatd_proxychan_secrets(struct moatd_proxychan *ch, const char *name,
    const struct moat_proxy_secret *v, size_t n)
{
	json_t *o = json_pack("{s:s, s:s, s:[]}", "type", "secrets",
	    "sandbox", name, "secrets"), *a;

	if (o == NULL)
		return;
	a = json_object_get(o, "secrets");
	for (size_t i = 0; i < n; i++) {
		json_t *h = json_array();

		for (size_t j = 0; j < v[i].nhosts; j++)
			json_array_append_new(h, json_string(v[i].hosts[j]));
		json_array_append_new(a, json_pack("{s:s, s:s%, s:o}", "name",
		    v[i].name, "value", v[i].value, v[i].vlen, "hosts", h));
	}
	moatd_proxychan_send(ch, o);
}

int
moatd_proxychan_policy(struct moatd_proxychan *ch, const char *sandbox,
    int version, const char *json)
{
	return moatd_proxychan_send(ch, json_pack("{s:s, s:s, s:i, s:s}", "type",
	    "policy", "sandbox", sandbox, "version", version, "json", json));
}

int
moatd_proxychan_trust(struct moatd_proxychan *ch, const char *sandbox,
    const char *binary, const char *sha256)
{
	/*
	 * The proxy trusts exactly the hash the operator approved; a file
	 * swapped in after the review is still "binary changed". Without
	 * a hash the proxy only forgets (the next use is trusted).
	 */
	if (sha256 == NULL || sha256[0] == '\0')
		return moatd_proxychan_send(ch, json_pack("{s:s, s:s, s:s}",
		    "type", "retrust", "sandbox", sandbox, "binary", binary));
	return moatd_proxychan_send(ch, json_pack("{s:s, s:s, s:s, s:s}",
	    "type", "retrust", "sandbox", sandbox, "binary", binary,
	    "sha256", sha256));
}

/* Decode, then route by type: denials to the event callback. */
static void
handle_line(void *arg, const char *line, size_t len)
{
	struct moatd_proxychan *ch = arg;
	struct moat_denial_event ev;
	struct moat_cause cause = { { 0 } };
	const char *type;
	json_t *o = NULL;

	if (line == NULL) {
		log_warn("proxy line over %u bytes discarded",
		    MOAT_JSONL_MAX_LINE);
		return;
	}
	if (moat_jsonl_decode(line, len, &o, &cause) != 0) {
		log_warn("bad line from the proxy: %s", cause.msg);
		return;
	}
	if ((type = moat_jsonl_type(o)) != NULL &&
	    strcmp(type, "ready") == 0 && ch->ready == NULL)
		ch->ready = json_incref(o);
	if (type != NULL && strcmp(type, "denial") == 0) {
		if (moat_denial_event_from_json(o, &ev, &cause) != 0)
			log_warn("bad denial from the proxy: %s", cause.msg);
		else if (ch->cbs.event != NULL)
			ch->cbs.event(ch->cbs.arg, &ev);
	} else if (type != NULL && ch->cbs.message != NULL) {
		ch->cbs.message(ch->cbs.arg, o);
	} else if (type == NULL) {
		log_warn("line from the proxy without a type");
	}
	json_decref(o);
}

static void
readable(struct moat_loop *l, int fd, unsigned events, void *arg)
{
	struct moatd_proxychan *ch = arg;
	struct moat_cause cause = { { 0 } };
	int r;

	if ((events & MOAT_EV_WRITE) &&
	    moat_jsonl_flush(ch->j) == MOAT_ERR_SYSTEM) {
		log_warn("the proxy stopped reading its channel");
		chan_close(ch);
		return;
	}
	chan_watch(ch);
	if (!(events & (MOAT_EV_READ | MOAT_EV_ERROR)))
		return;
	/* Bounded per turn so one busy proxy cannot starve the loop. */
	if ((r = moat_jsonl_pump(ch->j, 64, handle_line, ch, &cause)) ==
	    MOAT_ERR_AGAIN)
		return;
	if (r < 0)
		log_warn("proxy channel: %s", moat_cause_str(&cause, r));
	chan_close(ch);
}

int
moatd_proxychan_wait(struct moatd_proxychan *ch, int timeout_ms)
{
	struct pollfd pfd;
	unsigned ev = 0;
	int n;

	if (ch == NULL || ch->fd < 0)
		return MOAT_ERR_NOTFOUND;
	/* What we sent may still be queued: the loop is not flushing it. */
	pfd.fd = ch->fd;
	pfd.events = POLLIN | (moat_jsonl_pending(ch->j) > 0 ? POLLOUT : 0);
	pfd.revents = 0;
	if ((n = poll(&pfd, 1, timeout_ms < 0 ? 0 : timeout_ms)) > 0) {
		if (pfd.revents & POLLOUT)
			ev |= MOAT_EV_WRITE;
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
			ev |= MOAT_EV_READ;
		readable(ch->loop, ch->fd, ev, ch);
	}
	return ch->fd >= 0 ? MOAT_OK : MOAT_ERR_NOTFOUND;
}

/* The adopted proxy ended (its pidfd): tell the owner. */
static void
adopted_exited(struct moat_loop *l, int fd, unsigned events, void *arg)
{
	struct moatd_proxychan *ch = arg;

	(void)events;
	moat_loop_del_fd(l, fd);
	ch->pid = 0;
	log_error("the proxy (adopted) exited");
	if (ch->cbs.exited != NULL)
		ch->cbs.exited(ch->cbs.arg);
}

static int
chan_new(struct moat_loop *l, int fd, const struct moatd_proxychan_cbs *cbs,
    struct moatd_proxychan **out, struct moat_cause *cause)
{
	struct moatd_proxychan *ch;

	if ((ch = calloc(1, sizeof(*ch))) == NULL) {
		close(fd);
		return MOAT_ERR_NOMEM;
	}
	ch->loop = l;
	ch->cbs = *cbs;
	ch->fd = fd;
	ch->pidfd = -1;
	ch->events = MOAT_EV_READ;
	if ((ch->j = moat_jsonl_new(ch->fd)) == NULL ||
	    moat_loop_add_fd(l, ch->fd, MOAT_EV_READ, readable, ch) != 0) {
		moat_cause_set(cause, "cannot watch the proxy channel");
		moatd_proxychan_detach(ch);
		return MOAT_ERR_SYSTEM;
	}
	*out = ch;
	return MOAT_OK;
}

int
moatd_proxychan_start(struct moat_loop *l, const struct moat_proxy_config *pc,
    const struct moatd_proxychan_cbs *cbs, struct moatd_proxychan **out,
    struct moat_cause *cause)
{
	struct moatd_proxychan *ch = NULL;
	int sv[2], r;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1) {
		moat_cause_errno(cause, "socketpair for the proxy");
		return MOAT_ERR_SYSTEM;
	}
	if ((pid = fork()) == -1) {
		moat_cause_errno(cause, "fork the proxy");
		close(sv[0]);
		close(sv[1]);
		return MOAT_ERR_SYSTEM;
	}
	if (pid == 0) {
		sigset_t none;

		/*
		 * Nothing of the parent's but the channel (fd 3): not its
		 * listeners, store or sandboxes' fds (each sandbox's netns
		 * comes over the channel). A proxy holding them would keep
		 * a stopped sandbox's netns alive.
		 */
		if (sv[1] != 3 && (dup2(sv[1], 3) != 3 ||
		    fcntl(3, F_SETFD, FD_CLOEXEC) != 0))
			_exit(111);
		close_range(4, ~0U, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGHUP, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		signal(SIGTERM, SIG_DFL);
		prctl(PR_SET_NAME, "moat-proxy");
		/*
		 * Die with the parent rather than linger as an orphan;
		 * with a socket for the next moatd (live restore), live on.
		 */
		if (pc->ctl_path == NULL)
			prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* As talkative as the parent (moat run: warnings only). */
		moat_log_init("proxy", moat_log_enabled(MOAT_LOG_INFO) ?
		    MOAT_LOG_INFO : MOAT_LOG_WARN);
		_exit(moat_proxy_process_main(3, pc) == 0 ? 0 : 111);
	}
	close(sv[1]);
	if ((r = chan_new(l, sv[0], cbs, &ch, cause)) != 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return r;
	}
	ch->pid = pid;
	ch->child = true;
	*out = ch;
	return MOAT_OK;
}

int
moatd_proxychan_connect(struct moat_loop *l, const char *path, uid_t uid,
    const struct moatd_proxychan_cbs *cbs, struct moatd_proxychan **out,
    struct moat_cause *cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct moatd_proxychan *ch = NULL;
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	int fd, r;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		moat_cause_set(cause, "proxy socket path too long: %s", path);
		return MOAT_ERR_INVALID;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		moat_cause_errno(cause, "socket");
		return MOAT_ERR_SYSTEM;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		moat_cause_errno(cause, "no proxy answers on %s", path);
		close(fd);
		return MOAT_ERR_NOTFOUND;
	}
	/*
	 * Only the proxy moatd started (its uid, or root when unconfined)
	 * may have our sandboxes' traffic.
	 */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) != 0 ||
	    (uc.uid != 0 && uc.uid != uid) || uc.pid <= 0) {
		moat_cause_set(cause, "%s: the peer (uid %d) is neither root "
		    "nor the proxy's uid %u", path, ul == sizeof(uc) ?
		    (int)uc.uid : -1, (unsigned)uid);
		close(fd);
		return MOAT_ERR_DENIED;
	}
	moat_fd_nonblock(fd);
	if ((r = chan_new(l, fd, cbs, &ch, cause)) != 0)
		return r;
	ch->pid = uc.pid;
	ch->pidfd = (int)syscall(SYS_pidfd_open, uc.pid, 0);
	if (ch->pidfd < 0 || moat_loop_add_fd(l, ch->pidfd, MOAT_EV_READ,
	    adopted_exited, ch) != 0) {
		moat_cause_errno(cause, "pidfd of the proxy (pid %d)",
		    (int)uc.pid);
		moatd_proxychan_detach(ch);
		return MOAT_ERR_SYSTEM;
	}
	*out = ch;
	return MOAT_OK;
}

const json_t *
moatd_proxychan_ready(struct moatd_proxychan *ch, int timeout_ms)
{
	int64_t deadline = moat_now_ms() + timeout_ms;

	while (ch != NULL && ch->ready == NULL && ch->fd >= 0 &&
	    moat_now_ms() < deadline)
		moatd_proxychan_wait(ch, (int)(deadline - moat_now_ms()));
	return ch != NULL ? ch->ready : NULL;
}

bool
moatd_proxychan_adopted(const struct moatd_proxychan *ch)
{
	return ch != NULL && !ch->child;
}

void
moatd_proxychan_detach(struct moatd_proxychan *ch)
{
	if (ch == NULL)
		return;
	chan_close(ch);
	if (ch->pidfd >= 0) {
		moat_loop_del_fd(ch->loop, ch->pidfd);
		close(ch->pidfd);
	}
	json_decref(ch->ready);
	free(ch);
}

pid_t
moatd_proxychan_pid(const struct moatd_proxychan *ch)
{
	return ch != NULL ? ch->pid : 0;
}

void
moatd_proxychan_reaped(struct moatd_proxychan *ch)
{
	if (ch != NULL)
		ch->pid = 0;
}

void
moatd_proxychan_stop(struct moatd_proxychan *ch)
{
	struct pollfd p;

	if (ch == NULL)
		return;
	chan_close(ch);
	if (ch->pid > 0 && ch->child) {
		kill(ch->pid, SIGTERM);
		waitpid(ch->pid, NULL, 0);
	} else if (ch->pid > 0 && ch->pidfd >= 0) {
		/* Not our child: its pidfd says when it is gone (bounded). */
		syscall(SYS_pidfd_send_signal, ch->pidfd, SIGTERM, NULL, 0);
		p.fd = ch->pidfd;
		p.events = POLLIN;
		p.revents = 0;
		if (poll(&p, 1, MOATD_PROXYCHAN_STOP_MS) == 0) {
			log_warn("the proxy (pid %d) ignored SIGTERM; killing it",
			    (int)ch->pid);
			syscall(SYS_pidfd_send_signal, ch->pidfd, SIGKILL, NULL,
			    0);
		}
	}
	moatd_proxychan_detach(ch);
}
