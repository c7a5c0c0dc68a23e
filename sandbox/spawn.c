/*
 * Starting a process in a sandbox: THE table of steps. The order is the
 * security argument (style.md, "Spawn steps are a table"):
 *
 *   cgroup, namespaces, environment, fds, Landlock, seccomp, privilege
 *   drop, exec.
 *
 * How the child ends up in the sandbox's pid namespace and still a child
 * of the caller: the caller points its own pid_for_children at the
 * sandbox's namespace (setns(CLONE_NEWPID) changes only where the next
 * fork lands, not the caller itself), forks, and points it back at once.
 * The child's parent is the caller, so the caller can waitpid() it, and
 * nothing depends on state of the process that created the sandbox: any
 * process holding the struct (a forked SSH connection) can do this.
 *
 * The child is born in the sandbox's v2 cgroup (clone3 with
 * CLONE_INTO_CGROUP) and joins the v1 groups itself (cgroup.c says why:
 * a parent writing the child's pid costs an RCU grace period, 10-40 ms).
 * So every row runs in the child; the parent only follows it. A failing
 * row writes {row, errno} to a close-on-exec status pipe and exits; EOF
 * there means exec worked.
 */
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/sched.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "sandbox/internal.h"

extern char **environ;

struct spawn_ctx {
	struct moat_sandbox *sb;
	const struct moat_spawn *s;
	bool in_v2;		/* born in the v2 cgroup */
	int landlock_fd;	/* moved above 2 before the fds step */
	char **envp;		/* built before fork: no allocation after */
	const char *file;	/* what to exec */
	char *const *argv;
};

struct spawn_msg {
	int step;
	int err;		/* errno of the failed step */
};

/* A row runs in the child after fork and returns 0 or an errno value. */
struct spawn_step {
	const char *name;
	int (*run)(struct spawn_ctx *);
};

int
sandbox_reset_signals(void)
{
	/* An ignored signal stays ignored across exec (moatd's SIGPIPE). */
	return moat_signals_default();
}

static int
step_signals(struct spawn_ctx *x)
{
	return sandbox_reset_signals();
}

static int
step_setns(struct spawn_ctx *x)
{
	static const int types[SB_NS_PID] = {
		CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNS,
	};

	/* pid is already done (see the top); mnt last: it moves our root. */
	for (int i = 0; i < SB_NS_PID; i++)
		if (setns(x->sb->nsfd[i], types[i]) != 0)
			return errno;
	if (chdir("/") != 0)
		return errno;
	return 0;
}

static int
step_cgroup(struct spawn_ctx *x)
{
	int fd, e;

	if ((e = sandbox_cgroup_join(x->sb->cg, x->in_v2)) != 0)
		return e;
	/* Raising is always allowed; we may run at -900 (protect_self). */
	if ((fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC)) < 0)
		return errno;
	e = write(fd, SANDBOX_OOM_ADJ, strlen(SANDBOX_OOM_ADJ)) < 0 ? errno : 0;
	close(fd);
	return e;
}

/*
 * The daemon's raised soft limit is not the session's: programs that
 * close every fd up to it, or select() past FD_SETSIZE, expect the
 * usual one. The hard limit stays, so `ulimit -n` can raise it.
 */
static int
step_limits(struct spawn_ctx *x)
{
	struct rlimit rl;

	if (x->sb->nofile_soft == 0)
		return 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return errno;
	if (x->sb->nofile_soft < rl.rlim_max)
		rl.rlim_cur = x->sb->nofile_soft;
	return setrlimit(RLIMIT_NOFILE, &rl) != 0 ? errno : 0;
}

static int
step_env(struct spawn_ctx *x)
{
	environ = x->envp;
	/* A login's umask, not the daemon's 077. */
	umask(022);
	return 0;
}

static int
step_fds(struct spawn_ctx *x)
{
	int tmp[3];

	/* A daemon with 0-2 closed may hold the ruleset there. */
	if (x->landlock_fd >= 0 && x->landlock_fd < 3 &&
	    (x->landlock_fd = fcntl(x->landlock_fd, F_DUPFD_CLOEXEC, 3)) < 0)
		return errno;
	/* Copies above 2 first, so fds[] may name 0-2 in any order. */
	for (int i = 0; i < 3; i++) {
		int fd = x->s->fds[i];

		if (fd < 0)
			fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd < 0 || (tmp[i] = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
			return errno;
	}
	for (int i = 0; i < 3; i++)
		if (dup3(tmp[i], i, 0) < 0)
			return errno;
	/*
	 * Always a session of its own: else the child keeps the caller's
	 * controlling terminal (moatd in the foreground holds the
	 * operator's), reachable through /dev/tty. It also makes the child
	 * a group leader, so a hangup by killpg() reaches it.
	 */
	if (setsid() < 0)
		return errno;
	if (x->s->pty && ioctl(0, TIOCSCTTY, 0) != 0)
		return errno;
	/* Whatever the caller's libraries opened never reaches exec. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
		return errno;
	return 0;
}

static int
step_landlock(struct spawn_ctx *x)
{
	return sandbox_landlock_apply(x->landlock_fd);
}

static int
step_seccomp(struct spawn_ctx *x)
{
	/* Installing a filter needs NO_NEW_PRIVS or CAP_SYS_ADMIN. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return errno;
	return sandbox_seccomp_apply(&x->sb->seccomp);
}

static int
step_drop_privs(struct spawn_ctx *x)
{
	return sandbox_privs_drop(x->sb->user.uid, x->sb->user.gid);
}

static int
step_exec(struct spawn_ctx *x)
{
	/* As the user: a directory they cannot enter fails here. */
	if (chdir(x->s->cwd != NULL ? x->s->cwd : SANDBOX_HOME) != 0)
		return errno;
	execvpe(x->file, x->argv, x->envp);
	return errno;
}

/* Order: cgroup, namespaces, Landlock, seccomp, privilege drop. */
static const struct spawn_step spawn_steps[] = {
	{ "signals",	step_signals },
	/* before setns: the sandbox's /proc is read-only (oom_score_adj) */
	{ "cgroup",	step_cgroup },
	{ "setns",	step_setns },
	{ "limits",	step_limits },
	{ "env",	step_env },
	{ "fds",	step_fds },
	{ "landlock",	step_landlock },
	/* the filter allows what drop-privs needs (set*id, capset, prctl) */
	{ "seccomp",	step_seccomp },
	{ "drop-privs",	step_drop_privs },
	{ "exec",	step_exec },
};

static void __attribute__((noreturn))
child_main(struct spawn_ctx *x, int status_fd)
{
	struct spawn_msg m = { 0, 0 };

	/* The fds step must not overwrite our report channel. */
	if (status_fd < 3 &&
	    (status_fd = fcntl(status_fd, F_DUPFD_CLOEXEC, 3)) < 0)
		_exit(127);
	for (size_t i = 0; i < MOAT_NELEM(spawn_steps); i++) {
		m.step = (int)i;
		if ((m.err = spawn_steps[i].run(x)) != 0) {
			(void)!write(status_fd, &m, sizeof(m));
			_exit(127);
		}
	}
	_exit(127);
}

/*
 * Raw clone3/clone: glibc's fork() would not take CLONE_INTO_CGROUP.
 * The child skips glibc's atfork handling, so callers must be
 * single-threaded (moatd's processes are), and the child must not use
 * raise() or abort(): glibc still holds the parent's tid.
 */
pid_t
sandbox_clone(const struct sandbox_cgroup *cg, unsigned long flags,
    bool *in_v2)
{
	struct clone_args a;
	int fd = sandbox_cgroup_clone_fd(cg);
	long pid;

	*in_v2 = false;
	if (fd >= 0) {
		memset(&a, 0, sizeof(a));
		a.flags = flags | CLONE_INTO_CGROUP;
		a.exit_signal = SIGCHLD;
		a.cgroup = (uint64_t)fd;
		if ((pid = syscall(SYS_clone3, &a, sizeof(a))) >= 0) {
			*in_v2 = true;
			return (pid_t)pid;
		}
		if (errno != ENOSYS && errno != E2BIG && errno != EINVAL)
			return -1;
	}
	return (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
}

/* Fork with pid_for_children pointed at the sandbox (see the top). */
static pid_t
fork_inside(struct moat_sandbox *sb, bool *in_v2, struct moat_cause *cause)
{
	const char *own = "/proc/thread-self/ns/pid_for_children";
	int self = open(own, O_RDONLY | O_CLOEXEC);
	pid_t pid;

	if (self < 0) {
		moat_cause_errno(cause, "spawn: open own pid namespace");
		return -1;
	}
	if (setns(sb->nsfd[SB_NS_PID], CLONE_NEWPID) != 0) {
		moat_cause_errno(cause, "spawn: enter pid namespace of %s",
		    sb->name);
		close(self);
		return -1;
	}
	pid = sandbox_clone(sb->cg, 0, in_v2);
	if (pid == 0)
		return 0;
	if (pid < 0)
		moat_cause_errno(cause, "spawn: fork into %s", sb->name);
	if (setns(self, CLONE_NEWPID) != 0)
		log_error_errno("cannot restore our pid namespace");
	close(self);
	return pid;
}

static void
kill_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/*
 * Follow the child through the table until exec (EOF) or a failure.
 * A child killed between rows (SIGKILL from inside the sandbox, the OOM
 * killer) also gives EOF and counts as started: the pipe cannot tell a
 * death before exec from one right after it. Nothing is lost: the
 * caller's waitpid() reports the signal, like a command killed at once.
 */
static int
parent_main(int status_fd, struct moat_cause *cause)
{
	struct spawn_msg m;
	const char *name;
	ssize_t n;

	while ((n = read(status_fd, &m, sizeof(m))) < 0 && errno == EINTR)
		;
	if (n == 0)
		return 0;
	if (n != sizeof(m) || m.step < 0 ||
	    (size_t)m.step >= MOAT_NELEM(spawn_steps)) {
		moat_cause_set(cause, "spawn: lost the child");
		return MOAT_ERR_SYSTEM;
	}
	name = spawn_steps[m.step].name;
	moat_cause_set(cause, "spawn step '%s' failed: %s", name,
	    strerror(m.err));
	if (strcmp(name, "exec") != 0)
		return MOAT_ERR_SYSTEM;
	if (m.err == ENOENT || m.err == ENOTDIR)
		return MOAT_ERR_NOTFOUND;
	return m.err == EACCES ? MOAT_ERR_DENIED : MOAT_ERR_SYSTEM;
}

static int
prepare(struct moat_sandbox *sb, const struct moat_spawn *s,
    struct spawn_ctx *x, char **argv0, const char *shargv[2])
{
	const char *base;
	struct sandbox_env_in ein = {
		.user = &sb->user,
		.home = SANDBOX_HOME,
		.proxy_addr = sb->host_addr,
		.proxy_port = sb->proxy_port,
		.ca = sb->ca,
		.fixed = (const char *const *)sb->env,
		.pty = s->pty,
		.extra = s->env,
	};

	memset(x, 0, sizeof(*x));
	x->sb = sb;
	x->landlock_fd = sb->landlock_fd;
	x->s = s;
	if ((x->envp = sandbox_env_build(&ein)) == NULL)
		return MOAT_ERR_NOMEM;
	if (s->argv != NULL && s->argv[0] != NULL) {
		x->file = s->argv[0];
		x->argv = (char *const *)s->argv;
		return 0;
	}
	/* The login shell: argv[0] "-bash" tells bash to read profiles. */
	x->file = sb->user.shell;
	base = strrchr(sb->user.shell, '/');
	base = base != NULL ? base + 1 : sb->user.shell;
	if (asprintf(argv0, "%s%s", s->login ? "-" : "", base) < 0) {
		*argv0 = NULL;
		return MOAT_ERR_NOMEM;
	}
	shargv[0] = *argv0;
	shargv[1] = NULL;
	x->argv = (char *const *)shargv;
	return 0;
}

int
moat_sandbox_spawn(struct moat_sandbox *sb, const struct moat_spawn *s,
    pid_t *pidp, struct moat_cause *cause)
{
	const char *shargv[2] = { NULL, NULL };
	int status[2] = { -1, -1 }, r;
	struct spawn_ctx x;
	char *argv0 = NULL;
	pid_t pid;

	if ((r = prepare(sb, s, &x, &argv0, shargv)) != 0)
		goto out;
	if (pipe2(status, O_CLOEXEC) != 0) {
		moat_cause_errno(cause, "spawn: pipe");
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	if ((pid = fork_inside(sb, &x.in_v2, cause)) < 0) {
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	if (pid == 0) {
		close(status[0]);
		child_main(&x, status[1]);
	}
	close(status[1]);
	status[1] = -1;
	if ((r = parent_main(status[0], cause)) != 0) {
		kill_reap(pid);
		goto out;
	}
	*pidp = pid;
out:
	moat_close(status[0]);
	moat_close(status[1]);
	free(x.envp);
	free(argv0);
	return r;
}
