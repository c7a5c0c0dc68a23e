/*
 * The zygote: the parent of every session process. moatd (or any program
 * using moat_sshd_server_new) re-executes itself with
 * MOAT_SSHD_ZYGOTE_ARG, so the zygote starts from a clean address space
 * that never held the store, the relay secret or a sandbox's keys. It
 * then, in this order:
 *
 *   1. reads its settings from the channel (fd 3),
 *   2. loads the host key and warms libssh/OpenSSL up, so nothing is
 *      opened lazily later,
 *   3. opens /dev/null for the children's 0-2,
 *   4. chroots into the empty directory,
 *   5. drops to the privsep uid/gid: no groups, no capabilities (the
 *      bounding set too), no_new_privs, not dumpable,
 *   6. installs the seccomp allowlist (confine.c),
 * and says "ready". For each connection it receives {socket, monitor
 * channel} and forks: the child keeps those two fds (as 3 and 4) and
 * /dev/null, installs a second filter that forbids fork and new filters,
 * and serves the connection (session.c).
 *
 * Forking a confined, initialised zygote is cheap in time and memory
 * (children share its pages); the price is that every session process
 * shares one address-space layout, like Android's zygote.
 */
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/capability.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "sshd/confine.h"
#include "sshd/internal.h"
#include "sshd/monitor.h"

#define ZYG_CTL_FD 3
#define SESS_SOCK_FD 3
#define SESS_MON_FD 4
#define KEYS_MAX 4

struct zygote {
	int ctl;
	int devnull;
	ssh_bind bind;
	struct sess_config scfg;
	struct moat_sshd_confine conf;
};

/* ---- settings from the parent (zyg_config_msg in server.c) ---- */

static int
read_config(struct zygote *z, struct moat_cause *cause)
{
	const char *keys[KEYS_MAX], *dir;
	uint32_t type, nkeys, v[8];
	struct mon_msg m;
	int rc = MOAT_ERR_INVALID;

	if (mon_recv(z->ctl, &m, false) != 0 || !mon_get_type(&m, &type) ||
	    type != ZYG_CONFIG || !mon_get_u32(&m, &nkeys) || nkeys == 0 ||
	    nkeys > KEYS_MAX)
		goto out;
	for (uint32_t i = 0; i < nkeys; i++)
		if (!mon_get_str(&m, &keys[i], 4096))
			goto out;
	for (size_t i = 0; i < MOAT_NELEM(v); i++)
		if (!mon_get_u32(&m, &v[i]))
			goto out;
	if (!mon_get_str(&m, &dir, 4096) || !mon_msg_done(&m))
		goto out;
	z->scfg.max_auth_tries = (int)v[0];
	z->scfg.login_grace_s = (int)v[1];
	z->scfg.bg_grace_ms = (int)v[2];
	z->scfg.relay_preface = v[3] != 0;
	z->conf.uid = (uid_t)v[4];
	z->conf.gid = (gid_t)v[5];
	moat_log_set_level((enum moat_log_level)v[6]);
	z->conf.privileged = v[7] != 0;
	snprintf(z->conf.dir, sizeof(z->conf.dir), "%s", dir);
	rc = 0;
	for (uint32_t i = 0; i < nkeys && rc == 0; i++) {
		ssh_key key = NULL;
		if (ssh_pki_import_privkey_file(keys[i], NULL, NULL, NULL,
		    &key) != SSH_OK ||
		    ssh_bind_options_set(z->bind, SSH_BIND_OPTIONS_IMPORT_KEY,
			key) < 0) {
			moat_cause_set(cause, "%s: not a host key libssh can "
			    "use", keys[i]);
			ssh_key_free(key);
			rc = MOAT_ERR_INVALID;
		}
	}
out:
	if (rc == MOAT_ERR_INVALID && cause->msg[0] == '\0')
		moat_cause_set(cause, "bad settings from the parent");
	mon_msg_free(&m);
	return rc;
}

static void
say_ready(struct zygote *z, int rc, const char *why)
{
	struct mon_msg m;

	mon_msg_init(&m, ZYG_READY);
	mon_put_u32(&m, (uint32_t)rc);
	mon_put_str(&m, why);
	(void)mon_send(z->ctl, &m);
	mon_msg_free(&m);
}

/* ---- one connection ---- */

/* Put fd at want (which may be taken by another fd we keep: moved first). */
static int
place_fd(int fd, int want)
{
	if (fd == want)
		return fcntl(fd, F_SETFD, 0) == 0 ? want : -1;
	return dup3(fd, want, 0);
}

static void __attribute__((noreturn))
child_main(struct zygote *z, int sock, int mon, bool relay, const char *peer)
{
	int tmp_sock, tmp_mon;

	moat_close(z->ctl);
	/* Above every slot we fill, so no dup3 below clobbers a kept fd. */
	if ((tmp_sock = fcntl(sock, F_DUPFD_CLOEXEC, 16)) < 0 ||
	    (tmp_mon = fcntl(mon, F_DUPFD_CLOEXEC, 16)) < 0 ||
	    dup3(z->devnull, 0, 0) < 0 || dup3(z->devnull, 1, 0) < 0 ||
	    dup3(z->devnull, 2, 0) < 0 ||
	    place_fd(tmp_sock, SESS_SOCK_FD) < 0 ||
	    place_fd(tmp_mon, SESS_MON_FD) < 0)
		_exit(111);
	/* Only the socket, the monitor channel and /dev/null on 0-2. */
	if (syscall(SYS_close_range, SESS_MON_FD + 1, ~0U, 0) != 0)
		_exit(111);
	(void)prctl(PR_SET_NAME, "moat-ssh-sess", 0, 0, 0);
	if (moat_sshd_confine_child(&z->conf) != 0)
		_exit(111);
	_exit(sess_serve(SESS_SOCK_FD, SESS_MON_FD, relay, peer, &z->scfg,
	    z->bind) == 0 ? 0 : 1);
}

static void
serve_one(struct zygote *z, struct mon_msg *m)
{
	const char *peer;
	uint32_t relay;
	pid_t pid;

	if (!mon_get_u32(m, &relay) || !mon_get_str(m, &peer, 127) ||
	    !mon_msg_done(m) || m->nfds != 2) {
		log_warn("bad connection message from the parent");
		return;
	}
	if ((pid = fork()) < 0) {
		log_warn_errno("fork for %s", peer);
		return;
	}
	if (pid == 0)
		child_main(z, m->fds[0], m->fds[1], relay != 0, peer);
}

int
moat_sshd_zygote_main(int argc, char **argv)
{
	struct moat_cause cause = { "" };
	unsigned char buf[512];
	struct zygote z;
	struct mon_msg m;
	uint32_t type;
	sigset_t none;
	bool no = false;
	int verbosity = SSH_LOG_NOLOG, rc;

	(void)argc;
	(void)argv;
	memset(&z, 0, sizeof(z));
	z.ctl = ZYG_CTL_FD;
	/* Only 0-2 and the channel: anything else the parent leaked goes. */
	(void)syscall(SYS_close_range, ZYG_CTL_FD + 1, ~0U, 0);
	/* The parent's signalfd mask must not leak into the sessions. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	moat_log_init("ssh-zygote", MOAT_LOG_INFO);
	(void)prctl(PR_SET_NAME, "moat-ssh-zygote", 0, 0, 0);
	signal(SIGCHLD, SIG_IGN);	/* children reap themselves */
	signal(SIGPIPE, SIG_IGN);
	if ((z.bind = ssh_bind_new()) == NULL) {
		say_ready(&z, MOAT_ERR_NOMEM, "out of memory");
		return 111;
	}
	ssh_bind_options_set(z.bind, SSH_BIND_OPTIONS_LOG_VERBOSITY,
	    &verbosity);
	ssh_bind_options_set(z.bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no);
	if ((rc = read_config(&z, &cause)) != 0 ||
	    (rc = moat_sshd_confine_warm(z.bind, &cause)) != 0 ||
	    (rc = moat_sshd_confine_self(&z.conf, &z.devnull, &cause)) != 0) {
		say_ready(&z, rc, cause.msg);
		_exit(111);
	}
	say_ready(&z, 0, "");
	for (;;) {
		/* On the stack: a heap write here would copy pages in children. */
		rc = mon_recv_into(z.ctl, &m, buf, sizeof(buf));
		if (rc == MOAT_ERR_NOTFOUND || rc == MOAT_ERR_SYSTEM) {
			/*
			 * The parent is gone: sessions go on without us.
			 * _exit: nothing at exit may run under the allowlist
			 * (LeakSanitizer's would be killed).
			 */
			mon_msg_free(&m);
			_exit(0);
		}
		if (rc == 0 && mon_get_type(&m, &type) && type == ZYG_CONN)
			serve_one(&z, &m);
		mon_msg_free(&m);
	}
}
