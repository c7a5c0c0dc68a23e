/*
 * The sandbox's PID 1. Cloned by moat_sandbox_create() into new pid,
 * mount, uts, ipc and net namespaces and the v2 cgroup, it joins the v1
 * cgroups, builds the filesystem view (fs.c) while the parent wires the
 * network,
 * reports, drops its capabilities and then only reaps: orphans of the
 * sandbox are re-parented to it. When it dies the kernel kills every
 * process of the pid namespace, which is how a sandbox ends.
 */
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/capability.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/internal.h"

static void
drop_caps(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	memset(d, 0, sizeof(d));
	syscall(SYS_capset, &h, d);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* Reap forever; SIGCHLD stays blocked so none is lost between waits. */
static void __attribute__((noreturn))
reap_loop(void)
{
	sigset_t chld;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		sigwaitinfo(&chld, NULL);
	}
}

int
sandbox_init_main(struct sandbox_init_args *a)
{
	struct moat_cause cause = { { 0 } };
	int keep[2] = { a->go_fd, a->status_fd };
	struct pollfd hup = { a->go_fd, 0, 0 };
	int fd, e;

	(void)sandbox_reset_signals();
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if ((e = sandbox_cgroup_join(a->cg, a->in_v2)) != 0) {
		snprintf(cause.msg, sizeof(cause.msg), "init: join cgroup: %s",
		    strerror(e));
		moat_write_all(a->status_fd, cause.msg, strlen(cause.msg));
		_exit(1);
	}
	moat_close_all_but(keep, MOAT_NELEM(keep));
	if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
		dup3(fd, 0, 0);
		dup3(fd, 1, 0);
		dup3(fd, 2, 0);
		if (fd > 2)
			close(fd);
	}
	/*
	 * The parent holds the other end until we are ready: a hangup now
	 * means it died before PDEATHSIG was armed. We do not wait for it:
	 * the view is built while the parent wires the network.
	 */
	if (poll(&hup, 1, 0) != 0)
		_exit(1);
	if (sandbox_fs_setup(&a->fs, &cause) != 0) {
		moat_write_all(a->status_fd, cause.msg, strlen(cause.msg));
		_exit(1);
	}
	drop_caps();
	/* Live restore: from now on the sandbox outlives its creator. */
	if (a->outlive)
		prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	moat_write_all(a->status_fd, "", 1);
	close(a->status_fd);
	close(a->go_fd);
	reap_loop();
}
