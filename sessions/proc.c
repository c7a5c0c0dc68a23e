#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "sessions/session.h"


int
moat_proc_pidfd(pid_t pid, int *fd, struct moat_cause *cause)
{
	/* pidfds are always close-on-exec. */
	long r = syscall(SYS_pidfd_open, pid, 0);

	if (r < 0) {
		moat_cause_errno(cause, "pidfd_open %d", (int)pid);
		return MOAT_ERR_SYSTEM;
	}
	*fd = (int)r;
	return MOAT_OK;
}

bool
moat_proc_reap(pid_t pid, int *status)
{
	int st;
	pid_t r;

	do {
		r = waitpid(pid, &st, WNOHANG);
	} while (r == -1 && errno == EINTR);
	if (r != pid)
		return false;
	*status = st;
	return true;
}

static const struct {
	int sig;
	const char *name;
	bool client_may_send; /* the list sshd accepts in `signal` requests */
} signals[] = {
	{ SIGABRT, "ABRT", false },
	{ SIGALRM, "ALRM", false },
	{ SIGFPE, "FPE", false },
	{ SIGHUP, "HUP", true },
	{ SIGILL, "ILL", false },
	{ SIGINT, "INT", true },
	{ SIGKILL, "KILL", true },
	{ SIGPIPE, "PIPE", false },
	{ SIGQUIT, "QUIT", true },
	{ SIGSEGV, "SEGV", false },
	{ SIGTERM, "TERM", true },
	{ SIGUSR1, "USR1", true },
	{ SIGUSR2, "USR2", true },
};

const char *
moat_signal_name(int sig)
{
	for (size_t i = 0; i < MOAT_NELEM(signals); i++)
		if (signals[i].sig == sig)
			return signals[i].name;
	return "UNKNOWN@moat";
}

int
moat_signal_from_name(const char *name)
{
	for (size_t i = 0; i < MOAT_NELEM(signals); i++)
		if (signals[i].client_may_send &&
		    strcmp(signals[i].name, name) == 0)
			return signals[i].sig;
	return -1;
}

bool
moat_env_allowed(const char *name)
{
	static const char *const exact[] = { "LANG", "TERM", "COLORTERM",
		"LANGUAGE" };

	for (size_t i = 0; i < MOAT_NELEM(exact); i++)
		if (strcmp(name, exact[i]) == 0)
			return true;
	if (strncmp(name, "LC_", 3) == 0 && name[3] != '\0') {
		for (const char *p = name + 3; *p != '\0'; p++)
			if (!(*p >= 'A' && *p <= 'Z') && *p != '_')
				return false;
		return true;
	}
	return false;
}
