/*
 * Shared by the in-process proxy tests (test_proxy, test_policy_local):
 * the loop thread and calls into it, loading a policy, and the proxy
 * process on a socketpair with this test playing moatd on the channel.
 */
#ifndef MOAT_TESTS_PROXY_UTIL_H
#define MOAT_TESTS_PROXY_UTIL_H

#include <sys/socket.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/loop.h"
#include "common/util.h"
#include "policies/policy.h"
#include "proxy/proxy.h"
#include "tests/unit/tap.h"

static struct {
	int cmd[2];	/* a struct cmd * to run in the loop thread */
	int done[2];	/* a byte back when it has run */
	pthread_t th;
	pid_t ctl_child; /* the proxy process, 0 if it could not start */
	int ctl_fd;	/* this test's end of its control channel */
	int nflog[2];	/* a datagram pair the proxy process reads as NFLOG */
} PX;

/* ---- the loop thread and calls into it ---- */

struct cmd {
	void (*fn)(void *);
	void *arg;
};

static void
cmd_cb(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	struct cmd *c;
	char b = 1;

	if (read(fd, &c, sizeof(c)) != sizeof(c))
		return;
	if (c->fn == NULL)
		moat_loop_stop(l);
	else
		c->fn(c->arg);
	if (write(PX.done[1], &b, 1) != 1)
		abort();
}

/* Run fn(arg) in the loop thread and wait for it; fn NULL stops it. */
static __attribute__((unused)) void
in_loop(void (*fn)(void *), void *arg)
{
	struct cmd c = { fn, arg }, *cp = &c;
	char b;

	if (write(PX.cmd[1], &cp, sizeof(cp)) != sizeof(cp) ||
	    read(PX.done[0], &b, 1) != 1)
		abort();
}

static void *
loop_main(void *arg)
{
	moat_loop_run(arg);
	return NULL;
}

/* Run l in a new thread; 0, or -1 if the pipes cannot be made. */
static __attribute__((unused)) int
loop_start(struct moat_loop *l)
{
	if (pipe2(PX.cmd, O_CLOEXEC) != 0 || pipe2(PX.done, O_CLOEXEC) != 0)
		return -1;
	moat_loop_add_fd(l, PX.cmd[0], MOAT_EV_READ, cmd_cb, NULL);
	pthread_create(&PX.th, NULL, loop_main, l);
	return 0;
}

static __attribute__((unused)) void
loop_stop(void)
{
	in_loop(NULL, NULL);
	pthread_join(PX.th, NULL);
}

static __attribute__((unused)) struct moat_policy *
load(const char *json)
{
	struct moat_policy_opts o = { .no_fs = true };
	struct moat_policy *pol = NULL;
	struct moat_diags d;

	moat_diags_init(&d);
	if (moat_policy_load_string(json, strlen(json), "test", &o, &pol,
	    &d) != 0)
		for (size_t i = 0; i < d.n; i++)
			diag("policy: %s: %s", d.v[i].path, d.v[i].msg);
	moat_diags_free(&d);
	return pol;
}

/* ---- the proxy process (fork it before this process has threads) ---- */

static __attribute__((unused)) void
ctl_start(const struct moat_proxy_config *pc)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
	    socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, PX.nflog) != 0)
		return;
	if ((PX.ctl_child = fork()) == 0) {
		close(sv[0]);
		_exit(moat_proxy_process_main(sv[1], pc));
	}
	close(sv[1]);
	PX.ctl_fd = sv[0];
}

/* Read lines from the proxy process until one holds want; 5 s max. */
static __attribute__((unused)) bool
ctl_line(char *buf, size_t len, const char *want)
{
	int64_t deadline = moat_now_ms() + 5000;
	size_t n = 0;

	while (moat_now_ms() < deadline) {
		struct pollfd pf = { PX.ctl_fd, POLLIN, 0 };
		if (poll(&pf, 1, 200) <= 0)
			continue;
		if (read(PX.ctl_fd, buf + n, 1) != 1)
			return false;
		if (buf[n] == '\n') {
			buf[n] = '\0';
			if (strstr(buf, want) != NULL)
				return true;
			n = 0;
			continue;
		}
		if (n + 2 < len)
			n++;
	}
	return false;
}

static __attribute__((unused)) void
ctl_send(const char *s)
{
	if (write(PX.ctl_fd, s, strlen(s)) != (ssize_t)strlen(s))
		diag("ctl write failed");
}

/* One line with an fd attached to its first byte (as moatd sends them). */
static __attribute__((unused)) void
ctl_send_fd(const char *s, int fd)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} c;
	struct iovec iov = { (void *)s, strlen(s) };
	struct msghdr mh = { 0 };
	struct cmsghdr *cm;

	memset(&c, 0, sizeof(c));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = c.b;
	mh.msg_controllen = sizeof(c.b);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	if (sendmsg(PX.ctl_fd, &mh, 0) != (ssize_t)strlen(s))
		diag("ctl sendmsg failed");
}

#endif
