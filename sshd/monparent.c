/*
 * The monitor parent: a privileged process forked once from the
 * listener's process (moatd) that forks one monitor per connection.
 *
 * Why not fork monitors from moatd itself: a fork shares moatd's pages
 * copy-on-write, and every page moatd writes afterwards (its store,
 * its event buffers) becomes a private copy in each live monitor, so an
 * idle connection would cost more the busier moatd is. The monitor
 * parent is quiet: it keeps only what monitors need (the fds the hooks
 * name, stderr, its channel), closes the rest at once (OpenSSH's
 * close_startup_pipes), and does nothing but fork.
 *
 * Each monitor is double-forked: its parent exits at once, so the
 * monitor is reparented to the listener's process (a child subreaper),
 * which reaps it and sees how the connection ended.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "sshd/monitor.h"
#include "sshd/sshd.h"

#define KEEP_MAX 256

static void __attribute__((noreturn))
monitor_main(int ctl, struct mon_msg *m, const struct moat_sshd_config *cfg,
    const struct moat_sshd_hooks *h)
{
	struct mon_peer mp = { NULL, false };
	uint32_t relay;
	int chan, startup;

	moat_close(ctl);
	(void)prctl(PR_SET_NAME, "moat-ssh-mon", 0, 0, 0);
	if (!mon_get_u32(m, &relay) || !mon_get_str(m, &mp.text, 127) ||
	    !mon_msg_done(m) || m->nfds != 2)
		_exit(100);
	mp.relay = relay != 0;
	chan = mon_take_fd(m, 0);
	startup = mon_take_fd(m, 1);
	_exit(moat_sshd_monitor_run(chan, startup, &mp, cfg, h) == 0 ? 0 : 1);
}

static void
one_conn(int ctl, struct mon_msg *m, const struct moat_sshd_config *cfg,
    const struct moat_sshd_hooks *h)
{
	pid_t pid, mid;
	int st;

	if ((pid = fork()) < 0) {
		log_warn_errno("fork a monitor");
		return;
	}
	if (pid == 0) {
		if ((mid = fork()) == 0)
			monitor_main(ctl, m, cfg, h);
		_exit(mid < 0 ? 1 : 0);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
}

static void
no_op(int sig)
{
}

/*
 * Default dispositions and no blocked signals, whatever the listener
 * had (moatd blocks its signalfd set; a shell's background job starts
 * with SIGINT ignored): the monitors' children inherit what is ignored
 * across exec, and Ctrl-C must reach them. SIGPIPE gets a handler, not
 * SIG_IGN, so that it too is back to the default at exec.
 */
static void
reset_signals(void)
{
	struct sigaction sa;

	(void)moat_signals_default();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = no_op;
	(void)sigaction(SIGPIPE, &sa, NULL);
}

static void __attribute__((noreturn))
mparent_main(int ctl, const struct moat_sshd_config *cfg,
    const struct moat_sshd_hooks *h)
{
	int keep[KEEP_MAX];
	unsigned char buf[512];
	struct mon_msg m;
	uint32_t type;
	size_t n = 0;
	int rc;

	reset_signals();
	(void)prctl(PR_SET_NAME, "moat-ssh-monp", 0, 0, 0);
	keep[n++] = 0;
	keep[n++] = 1;
	keep[n++] = 2;
	keep[n++] = ctl;
	if (h->monitor_fds != NULL)
		n += h->monitor_fds(h->arg, keep + n, MOAT_NELEM(keep) - n);
	moat_close_all_but(keep, n);
	for (;;) {
		/* On the stack: a heap write here would copy pages in monitors. */
		rc = mon_recv_into(ctl, &m, buf, sizeof(buf));
		if (rc == MOAT_ERR_NOTFOUND || rc == MOAT_ERR_SYSTEM)
			_exit(0);	/* the listener is gone; monitors go on */
		if (rc == 0 && mon_get_type(&m, &type) && type == MPAR_CONN)
			one_conn(ctl, &m, cfg, h);
		mon_msg_free(&m);
	}
}

int
sshd_mparent_start(const struct moat_sshd_config *cfg,
    const struct moat_sshd_hooks *h, int *ctl, pid_t *pidp,
    struct moat_cause *cause)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		moat_cause_errno(cause, "ssh monitor parent channel");
		return MOAT_ERR_SYSTEM;
	}
	if ((pid = fork()) < 0) {
		moat_cause_errno(cause, "fork the ssh monitor parent");
		moat_close(sv[0]);
		moat_close(sv[1]);
		return MOAT_ERR_SYSTEM;
	}
	if (pid == 0) {
		close(sv[0]);
		mparent_main(sv[1], cfg, h);
	}
	close(sv[1]);
	*ctl = sv[0];
	*pidp = pid;
	return 0;
}

int
sshd_mparent_conn(int ctl, int chan, int startup, bool relay,
    const char *peer)
{
	struct mon_msg m;
	int rc;

	mon_msg_init(&m, MPAR_CONN);
	mon_put_u32(&m, relay);
	mon_put_str(&m, peer);
	mon_put_fd(&m, chan);
	mon_put_fd(&m, startup);
	rc = mon_send(ctl, &m);
	mon_msg_free(&m);
	return rc;
}
