/*
 * The listening side (it runs in moatd): host key, listeners, and the
 * server object: the zygote that parents the session processes, the
 * MaxStartups gate, and per accepted connection the socketpair between
 * a new session process (the zygote's fork) and a new monitor (ours).
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "common/log.h"
#include "common/util.h"
#include "sshd/gate.h"
#include "sshd/monitor.h"
#include "sshd/sshd.h"

#define ZYGOTE_READY_MS 10000
#define ZYGOTE_RETRY_MS 5000

int
moat_sshd_hostkey_ensure(const char *path, struct moat_cause *cause)
{
	ssh_key key = NULL;
	char tmp[4096];
	int fd = -1, r = MOAT_ERR_SYSTEM;

	if (access(path, F_OK) == 0)
		return MOAT_OK;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >=
	    (int)sizeof(tmp)) {
		moat_cause_set(cause, "%s: path too long", path);
		return MOAT_ERR_INVALID;
	}
	/* Created 0600 first: the export below keeps the mode of the file. */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) ==
	    -1) {
		moat_cause_errno(cause, "create %s", tmp);
		goto out;
	}
	moat_close(fd);
	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK ||
	    ssh_pki_export_privkey_file(key, NULL, NULL, NULL, tmp) != SSH_OK) {
		moat_cause_set(cause, "%s: cannot generate an ed25519 key", path);
		r = MOAT_ERR_INTERNAL;
		goto out;
	}
	if (chmod(tmp, 0600) == -1 || rename(tmp, path) == -1) {
		moat_cause_errno(cause, "install %s", path);
		goto out;
	}
	r = MOAT_OK;
out:
	if (r != MOAT_OK)
		(void)unlink(tmp);
	ssh_key_free(key);
	return r;
}

int
moat_sshd_hostkey_fingerprint(const char *path, char *out, size_t len,
    struct moat_cause *cause)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL;
	int r = MOAT_ERR_INVALID;

	if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) !=
	    SSH_OK) {
		moat_cause_set(cause, "%s: not a private key libssh can read",
		    path);
		goto out;
	}
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash,
	    &hlen) != 0 || (fp = ssh_get_fingerprint_hash(
	    SSH_PUBLICKEY_HASH_SHA256, hash, hlen)) == NULL) {
		moat_cause_set(cause, "%s: cannot hash the key", path);
		goto out;
	}
	snprintf(out, len, "%s", fp);
	r = MOAT_OK;
out:
	ssh_string_free_char(fp);
	ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
	return r;
}

int
moat_sshd_listen(const char *addr, uint16_t port, int *fdp,
    struct moat_cause *cause)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl;
	int fd = -1, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		moat_cause_set(cause, "%s: not an IP address", addr);
		return MOAT_ERR_INVALID;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		moat_cause_errno(cause, "socket");
		return MOAT_ERR_SYSTEM;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) == -1 ||
	    listen(fd, 128) == -1) {
		moat_cause_errno(cause, "listen on %s port %u", addr,
		    (unsigned)port);
		moat_close(fd);
		return MOAT_ERR_SYSTEM;
	}
	*fdp = fd;
	return MOAT_OK;
}

static void
peer_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;
		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(out, len, "%s:%u", a, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		snprintf(out, len, "[%s]:%u", a, ntohs(s->sin6_port));
	} else {
		snprintf(out, len, "unix");
	}
}

struct moat_sshd_server {
	const struct moat_sshd_config *cfg;
	const struct moat_sshd_hooks *h;
	int ep;			/* epoll: zygote channel, startup pipes */
	int zctl;		/* our end of the zygote's channel */
	pid_t zpid;
	int64_t zstart_ms;	/* when the last zygote was started */
	int mctl;		/* our end of the monitor parent's channel */
	pid_t mpid;
	int64_t mstart_ms;
	struct sshd_gate *gate;
	struct moat_ratelimit droplog;
};

static int mp_start(struct moat_sshd_server *srv, struct moat_cause *cause);
static void mp_stop(struct moat_sshd_server *srv);

/* ---- the zygote ---- */

static void
zyg_stop(struct moat_sshd_server *srv)
{
	if (srv->zctl >= 0) {
		(void)epoll_ctl(srv->ep, EPOLL_CTL_DEL, srv->zctl, NULL);
		moat_close(srv->zctl);
		srv->zctl = -1;
	}
	/* It exits at EOF; a kill covers a zygote stuck before that. */
	if (srv->zpid > 0)
		(void)kill(srv->zpid, SIGKILL);
	srv->zpid = 0;
}

static int
zyg_config(struct moat_sshd_server *srv)
{
	const struct moat_sshd_config *c = srv->cfg;
	struct mon_msg m;
	uint32_t n = 0;
	int rc;

	while (c->hostkey_paths != NULL && c->hostkey_paths[n] != NULL)
		n++;
	mon_msg_init(&m, ZYG_CONFIG);
	mon_put_u32(&m, n);
	for (uint32_t i = 0; i < n; i++)
		mon_put_str(&m, c->hostkey_paths[i]);
	mon_put_u32(&m, (uint32_t)c->max_auth_tries);
	mon_put_u32(&m, (uint32_t)c->login_grace_s);
	mon_put_u32(&m, (uint32_t)c->bg_grace_ms);
	mon_put_u32(&m, c->relay_secret != NULL);
	mon_put_u32(&m, (uint32_t)c->privsep_uid);
	mon_put_u32(&m, (uint32_t)c->privsep_gid);
	mon_put_u32(&m, moat_log_enabled(MOAT_LOG_DEBUG) ? MOAT_LOG_DEBUG :
	    moat_log_enabled(MOAT_LOG_VERBOSE) ? MOAT_LOG_VERBOSE :
	    MOAT_LOG_INFO);
	mon_put_u32(&m, geteuid() == 0);
	mon_put_str(&m, c->privsep_dir != NULL ? c->privsep_dir : "");
	rc = mon_send(srv->zctl, &m);
	mon_msg_free(&m);
	return rc;
}

/* Wait (bounded) for the zygote's verdict on its own confinement. */
static int
zyg_wait_ready(struct moat_sshd_server *srv, struct moat_cause *cause)
{
	struct pollfd p = { srv->zctl, POLLIN, 0 };
	const char *why = "";
	uint32_t type, rc = (uint32_t)MOAT_ERR_SYSTEM;
	struct mon_msg m;

	if (poll(&p, 1, ZYGOTE_READY_MS) != 1 ||
	    mon_recv(srv->zctl, &m, true) != 0) {
		moat_cause_set(cause, "ssh zygote did not start");
		return MOAT_ERR_SYSTEM;
	}
	if (!mon_get_type(&m, &type) || type != ZYG_READY ||
	    !mon_get_u32(&m, &rc) || !mon_get_str(&m, &why, MOAT_CAUSE_LEN) ||
	    !mon_msg_done(&m))
		moat_cause_set(cause, "ssh zygote: bad answer");
	else if (rc != 0)
		moat_cause_set(cause, "ssh zygote: %s", why);
	mon_msg_free(&m);
	return (int)rc;
}

static int
zyg_start(struct moat_sshd_server *srv, struct moat_cause *cause)
{
	char *const argv[] = { "moatd", MOAT_SSHD_ZYGOTE_ARG, NULL };
	struct epoll_event ev = { .events = EPOLLIN };
	int sv[2], rc;
	pid_t pid;

	srv->zstart_ms = moat_now_ms();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		moat_cause_errno(cause, "ssh zygote channel");
		return MOAT_ERR_SYSTEM;
	}
	if ((pid = fork()) < 0) {
		moat_cause_errno(cause, "fork the ssh zygote");
		moat_close(sv[0]);
		moat_close(sv[1]);
		return MOAT_ERR_SYSTEM;
	}
	if (pid == 0) {
		/* Clean memory: a new image, not a copy of ours. */
		if (sv[1] == 3 ? fcntl(3, F_SETFD, 0) == 0 :
		    dup2(sv[1], 3) == 3)
			execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(sv[1]);
	srv->zctl = sv[0];
	srv->zpid = pid;
	if ((rc = zyg_config(srv)) != 0) {
		moat_cause_set(cause, "ssh zygote went away");
	} else if ((rc = zyg_wait_ready(srv, cause)) == 0) {
		ev.data.fd = srv->zctl;
		if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->zctl, &ev) != 0) {
			moat_cause_errno(cause, "epoll");
			rc = MOAT_ERR_SYSTEM;
		}
	}
	if (rc != 0)
		zyg_stop(srv);
	return rc;
}

int
moat_sshd_server_new(const struct moat_sshd_config *cfg,
    const struct moat_sshd_hooks *h, struct moat_sshd_server **out,
    struct moat_cause *cause)
{
	struct moat_sshd_server *srv;
	int rc;

	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return MOAT_ERR_NOMEM;
	srv->cfg = cfg;
	srv->h = h;
	srv->zctl = -1;
	srv->mctl = -1;
	srv->droplog.burst = 5;
	/*
	 * Monitors are double-forked by the monitor parent; as a subreaper
	 * we inherit them, so our waitpid() reaps them and learns how each
	 * connection ended.
	 */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
		moat_cause_errno(cause, "become a child subreaper");
		free(srv);
		return MOAT_ERR_SYSTEM;
	}
	if ((srv->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		moat_cause_errno(cause, "epoll");
		free(srv);
		return MOAT_ERR_SYSTEM;
	}
	if ((rc = sshd_gate_new(&cfg->startups, &srv->gate)) != 0 ||
	    (rc = mp_start(srv, cause)) != 0 ||
	    (rc = zyg_start(srv, cause)) != 0) {
		moat_sshd_server_free(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

void
moat_sshd_server_free(struct moat_sshd_server *srv)
{
	if (srv == NULL)
		return;
	zyg_stop(srv);
	mp_stop(srv);
	sshd_gate_free(srv->gate);
	moat_close(srv->ep);
	free(srv);
}

int
moat_sshd_server_fd(const struct moat_sshd_server *srv)
{
	return srv->ep;
}

int
moat_sshd_server_preauth(const struct moat_sshd_server *srv)
{
	return sshd_gate_count(srv->gate);
}

pid_t
moat_sshd_server_zygote_pid(const struct moat_sshd_server *srv)
{
	return srv->zpid;
}

/* At most one start per ZYGOTE_RETRY_MS: a zygote that dies at once must
 * not make us spin. In between, connections are closed at accept. */
static void
zyg_restart(struct moat_sshd_server *srv)
{
	struct moat_cause cause = { "" };

	if (srv->zctl >= 0 || moat_now_ms() - srv->zstart_ms < ZYGOTE_RETRY_MS)
		return;
	if (zyg_start(srv, &cause) != 0)
		log_error("%s; SSH connections are refused", cause.msg);
	else
		log_info("ssh zygote %d started", (int)srv->zpid);
}

static void
mp_stop(struct moat_sshd_server *srv)
{
	if (srv->mctl >= 0) {
		(void)epoll_ctl(srv->ep, EPOLL_CTL_DEL, srv->mctl, NULL);
		moat_close(srv->mctl);
		srv->mctl = -1;
	}
	/* It exits at EOF; its monitors carry on without it. */
	srv->mpid = 0;
}

static int
mp_start(struct moat_sshd_server *srv, struct moat_cause *cause)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int rc;

	srv->mstart_ms = moat_now_ms();
	if ((rc = sshd_mparent_start(srv->cfg, srv->h, &srv->mctl, &srv->mpid,
	    cause)) != 0)
		return rc;
	ev.data.fd = srv->mctl;
	if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->mctl, &ev) != 0) {
		moat_cause_errno(cause, "epoll");
		mp_stop(srv);
		return MOAT_ERR_SYSTEM;
	}
	return 0;
}

static void
mp_restart(struct moat_sshd_server *srv)
{
	struct moat_cause cause = { "" };

	if (srv->mctl >= 0 || moat_now_ms() - srv->mstart_ms < ZYGOTE_RETRY_MS)
		return;
	if (mp_start(srv, &cause) != 0)
		log_error("%s; SSH connections are refused", cause.msg);
	else
		log_info("ssh monitor parent %d started", (int)srv->mpid);
}

int
moat_sshd_server_monitors_refresh(struct moat_sshd_server *srv,
    struct moat_cause *cause)
{
	int rc;

	mp_stop(srv);
	if ((rc = mp_start(srv, cause)) == 0)
		log_info("ssh monitor parent %d started", (int)srv->mpid);
	return rc;
}

void
moat_sshd_server_step(struct moat_sshd_server *srv)
{
	struct epoll_event ev[64];
	int n;

	n = epoll_wait(srv->ep, ev, (int)MOAT_NELEM(ev), 0);
	for (int i = 0; i < n; i++) {
		int fd = ev[i].data.fd;

		if (fd == srv->mctl) {
			log_error("ssh monitor parent %d went away",
			    (int)srv->mpid);
			mp_stop(srv);
			mp_restart(srv);
			continue;
		}
		if (fd != srv->zctl) {
			/* EOF: that connection left pre-auth (or ended). */
			(void)epoll_ctl(srv->ep, EPOLL_CTL_DEL, fd, NULL);
			(void)sshd_gate_release(srv->gate, fd);
			continue;
		}
		log_error("ssh zygote %d went away", (int)srv->zpid);
		zyg_stop(srv);
		zyg_restart(srv);
	}
}

/* ---- per connection ---- */

/* Hand {sock, channel end} to the zygote; it forks the session process. */
static int
zyg_conn(struct moat_sshd_server *srv, int sock, int chan, bool relay,
    const char *peer)
{
	struct mon_msg m;
	int rc;

	if (srv->zctl < 0)
		return MOAT_ERR_SYSTEM;
	mon_msg_init(&m, ZYG_CONN);
	mon_put_u32(&m, relay);
	mon_put_str(&m, peer);
	mon_put_fd(&m, sock);
	mon_put_fd(&m, chan);
	rc = mon_send(srv->zctl, &m);
	mon_msg_free(&m);
	return rc;
}

static int
spawn_pair(struct moat_sshd_server *srv, int fd,
    const struct sockaddr_storage *ss, const char *peer, bool relay)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int sp[2] = { -1, -1 }, st[2] = { -1, -1 }, rc = MOAT_ERR_SYSTEM;
	int one = 1;

	/*
	 * SO_PASSCRED before the session process exists: its first message
	 * must carry the pid the kernel vouches for.
	 */
	if (pipe2(st, O_CLOEXEC) != 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0 ||
	    setsockopt(sp[0], SOL_SOCKET, SO_PASSCRED, &one,
		sizeof(one)) != 0 ||
	    zyg_conn(srv, fd, sp[1], relay, peer) != 0) {
		log_warn_errno("ssh connection from %s", peer);
		goto out;
	}
	moat_close(sp[1]);
	sp[1] = -1;
	if (srv->mctl < 0 ||
	    sshd_mparent_conn(srv->mctl, sp[0], st[1], relay, peer) != 0) {
		log_warn("ssh connection from %s: no monitor parent", peer);
		goto out;
	}
	ev.data.fd = st[0];
	if (sshd_gate_add(srv->gate, ss, st[0]) == 0) {
		if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, st[0], &ev) != 0)
			(void)sshd_gate_release(srv->gate, st[0]);
		st[0] = -1;
	}
	rc = 0;
out:
	moat_close(st[0]);
	moat_close(st[1]);
	moat_close(sp[0]);
	moat_close(sp[1]);
	return rc;
}

int
moat_sshd_server_accept(struct moat_sshd_server *srv, int listen_fd,
    bool relay)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char peer[128];
	int fd, one = 1, rc;

	memset(&ss, 0, sizeof(ss));
	fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
		    errno == ECONNABORTED)
			return MOAT_ERR_AGAIN;
		return MOAT_ERR_SYSTEM;
	}
	peer_text(&ss, peer, sizeof(peer));
	zyg_restart(srv);
	mp_restart(srv);
	if (!sshd_gate_admit(srv->gate, &ss)) {
		/* Closed before any process exists for it. */
		close(fd);
		if (moat_ratelimit_ok(&srv->droplog))
			log_info("max_startups: dropped a connection from %s "
			    "(%d in pre-auth)", peer,
			    sshd_gate_count(srv->gate));
		return MOAT_ERR_DENIED;
	}
	if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
		/* Keystrokes must not wait for delayed ACKs (notes-ssh §1.7). */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	}
	rc = spawn_pair(srv, fd, &ss, peer, relay);
	close(fd);
	return rc;
}
