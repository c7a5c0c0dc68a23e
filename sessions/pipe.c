#include <fcntl.h>
#include <unistd.h>

#include "common/util.h"
#include "sessions/session.h"

void
moat_fds_close(int *fds, int n)
{
	for (int i = 0; i < n; i++) {
		moat_close(fds[i]);
		fds[i] = -1;
	}
}

int
moat_pipes_open(int child[3], int parent[3], struct moat_cause *cause)
{
	int c[3] = { -1, -1, -1 }, p[3] = { -1, -1, -1 };
	int fd[2];

	/* stdin: the child reads, we write. */
	if (pipe2(fd, O_CLOEXEC) == -1)
		goto fail;
	c[0] = fd[0];
	p[0] = fd[1];
	for (int i = 1; i < 3; i++) {
		if (pipe2(fd, O_CLOEXEC) == -1)
			goto fail;
		p[i] = fd[0];
		c[i] = fd[1];
	}
	for (int i = 0; i < 3; i++)
		if (moat_fd_nonblock(p[i]) != 0)
			goto fail;
	for (int i = 0; i < 3; i++) {
		child[i] = c[i];
		parent[i] = p[i];
	}
	return MOAT_OK;
fail:
	moat_cause_errno(cause, "session pipes");
	moat_fds_close(c, 3);
	moat_fds_close(p, 3);
	return MOAT_ERR_SYSTEM;
}
