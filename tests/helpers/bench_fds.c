/*
 * Identity benchmark load: a sandbox that holds many open files.
 *
 *	bench_fds PROCS FDS -- CMD [ARGS...]
 *	    fork PROCS processes that each hold FDS open fds (dups of one
 *	    socket), wait until all of them do, run CMD, then end them all.
 *	    Exits with CMD's status (111 when the load cannot be set up).
 *
 * Prints "ready" on stderr once the load is in place.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
hold(int nfds, int ready)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char b = 1;

	if (s < 0)
		_exit(111);
	for (int i = 1; i < nfds; i++)
		if (fcntl(s, F_DUPFD_CLOEXEC, 3) < 0)
			_exit(111);
	if (write(ready, &b, 1) != 1)
		_exit(111);
	for (;;)
		pause();
}

int
main(int argc, char **argv)
{
	struct rlimit rl;
	int procs, nfds, p[2], st = 0;
	pid_t *kids, cmd;
	char b;

	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "usage: bench_fds PROCS FDS -- CMD [ARGS...]\n");
		return 100;
	}
	procs = atoi(argv[1]);
	nfds = atoi(argv[2]);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)nfds + 16) {
		rl.rlim_cur = (rlim_t)nfds + 16;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			fprintf(stderr, "bench_fds: RLIMIT_NOFILE %llu is below "
			    "%d\n", (unsigned long long)rl.rlim_max, nfds + 16);
			return 111;
		}
	}
	if ((kids = calloc((size_t)procs, sizeof(*kids))) == NULL ||
	    pipe2(p, O_CLOEXEC) != 0)
		return 111;
	for (int i = 0; i < procs; i++) {
		if ((kids[i] = fork()) == 0)
			hold(nfds, p[1]);
		if (kids[i] < 0) {
			perror("bench_fds: fork");
			procs = i;
			break;
		}
	}
	close(p[1]);
	for (int i = 0; i < procs; i++)
		if (read(p[0], &b, 1) != 1) {
			fprintf(stderr, "bench_fds: a holder failed\n");
			st = 111 << 8;
			goto out;
		}
	fprintf(stderr, "ready\n");
	if ((cmd = fork()) == 0) {
		execvp(argv[4], argv + 4);
		_exit(127);
	}
	while (cmd > 0 && waitpid(cmd, &st, 0) < 0 && errno == EINTR)
		;
out:
	for (int i = 0; i < procs; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 111;
}
