#include <sys/epoll.h>
#include <sys/signalfd.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/loop.h"

struct loop_fd {
	moat_fd_cb *cb;
	void *arg;
	unsigned events;
	bool used;
};

struct moat_timer {
	int64_t when_ms;
	uint64_t born;    /* the loop's timer turn when it was armed */
	moat_timer_cb *cb;
	void *arg;
	struct moat_timer *next; /* sorted by when_ms */
};

struct loop_sig {
	moat_signal_cb *cb;
	void *arg;
};

struct moat_loop {
	int epfd;
	int sigfd;
	sigset_t sigs;
	struct loop_sig sighandlers[65];
	struct loop_fd *fds; /* indexed by fd */
	int nfds;
	struct moat_timer *timers;
	uint64_t turn;        /* run_timers calls so far */
	void (*before_sleep)(void *);
	void *before_arg;
	bool stop;
};

int
moat_loop_new(struct moat_loop **out, struct moat_cause *cause)
{
	struct moat_loop *l = NULL;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return MOAT_ERR_NOMEM;
	l->sigfd = -1;
	sigemptyset(&l->sigs);
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		moat_cause_errno(cause, "epoll_create1");
		free(l);
		return MOAT_ERR_SYSTEM;
	}
	*out = l;
	return MOAT_OK;
}

void
moat_loop_free(struct moat_loop *l)
{
	struct moat_timer *t, *next;

	if (l == NULL)
		return;
	for (t = l->timers; t != NULL; t = next) {
		next = t->next;
		free(t);
	}
	moat_close(l->sigfd);
	moat_close(l->epfd);
	free(l->fds);
	free(l);
}

static uint32_t
to_epoll(unsigned ev)
{
	return ((ev & MOAT_EV_READ) ? EPOLLIN | EPOLLRDHUP : 0) |
	    ((ev & MOAT_EV_WRITE) ? EPOLLOUT : 0);
}

int
moat_loop_add_fd(struct moat_loop *l, int fd, unsigned events,
    moat_fd_cb *cb, void *arg)
{
	struct epoll_event ee = { .events = to_epoll(events), .data.fd = fd };

	if (fd < 0)
		return MOAT_ERR_INVALID;
	if (fd >= l->nfds) {
		int n = l->nfds ? l->nfds : 64;
		struct loop_fd *nf;
		while (n <= fd)
			n *= 2;
		if ((nf = realloc(l->fds, (size_t)n * sizeof(*nf))) == NULL)
			return MOAT_ERR_NOMEM;
		memset(nf + l->nfds, 0, (size_t)(n - l->nfds) * sizeof(*nf));
		l->fds = nf;
		l->nfds = n;
	}
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ee) == -1)
		return MOAT_ERR_SYSTEM;
	l->fds[fd] = (struct loop_fd){ cb, arg, events, true };
	return MOAT_OK;
}

int
moat_loop_mod_fd(struct moat_loop *l, int fd, unsigned events)
{
	struct epoll_event ee = { .events = to_epoll(events), .data.fd = fd };

	if (fd < 0 || fd >= l->nfds || !l->fds[fd].used)
		return MOAT_ERR_NOTFOUND;
	if (l->fds[fd].events == events)
		return MOAT_OK;
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ee) == -1)
		return MOAT_ERR_SYSTEM;
	l->fds[fd].events = events;
	return MOAT_OK;
}

void
moat_loop_del_fd(struct moat_loop *l, int fd)
{
	if (l == NULL || fd < 0 || fd >= l->nfds || !l->fds[fd].used)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(&l->fds[fd], 0, sizeof(l->fds[fd]));
}

struct moat_timer *
moat_loop_timer(struct moat_loop *l, int64_t ms, moat_timer_cb *cb, void *arg)
{
	struct moat_timer *t, **pp;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->when_ms = moat_now_ms() + ms;
	t->born = l->turn;
	t->cb = cb;
	t->arg = arg;
	for (pp = &l->timers; *pp != NULL && (*pp)->when_ms <= t->when_ms;
	     pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
	return t;
}

void
moat_loop_timer_cancel(struct moat_loop *l, struct moat_timer *t)
{
	struct moat_timer **pp;

	if (t == NULL)
		return;
	for (pp = &l->timers; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			free(t);
			return;
		}
	}
}

static void
signal_ready(struct moat_loop *l, int fd, unsigned events, void *arg)
{
	struct signalfd_siginfo si;

	(void)events;
	(void)arg;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo < MOAT_NELEM(l->sighandlers) &&
		    l->sighandlers[si.ssi_signo].cb != NULL)
			l->sighandlers[si.ssi_signo].cb(l, (int)si.ssi_signo,
			    l->sighandlers[si.ssi_signo].arg);
	}
}

int
moat_loop_signal(struct moat_loop *l, int signo, moat_signal_cb *cb,
    void *arg)
{
	int fd;

	if (signo <= 0 || signo >= (int)MOAT_NELEM(l->sighandlers))
		return MOAT_ERR_INVALID;
	sigaddset(&l->sigs, signo);
	if (sigprocmask(SIG_BLOCK, &l->sigs, NULL) == -1)
		return MOAT_ERR_SYSTEM;
	fd = signalfd(l->sigfd, &l->sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd == -1)
		return MOAT_ERR_SYSTEM;
	if (l->sigfd == -1) {
		l->sigfd = fd;
		if (moat_loop_add_fd(l, fd, MOAT_EV_READ, signal_ready, NULL) !=
		    0)
			return MOAT_ERR_SYSTEM;
	}
	l->sighandlers[signo] = (struct loop_sig){ cb, arg };
	return MOAT_OK;
}

void
moat_loop_before_sleep(struct moat_loop *l, void (*cb)(void *), void *arg)
{
	l->before_sleep = cb;
	l->before_arg = arg;
}

static void
run_timers(struct moat_loop *l)
{
	int64_t now = moat_now_ms();

	/*
	 * A timer armed by a callback of this turn waits for the next one,
	 * after the fds: a 0 ms timer is "come back after the loop has
	 * looked at everything else". It sorts after every timer due now,
	 * so the first one met ends the turn.
	 */
	l->turn++;
	while (l->timers != NULL && l->timers->when_ms <= now &&
	    l->timers->born != l->turn) {
		struct moat_timer *t = l->timers;
		l->timers = t->next;
		t->cb(l, t->arg);
		free(t);
	}
}

int
moat_loop_run(struct moat_loop *l)
{
	struct epoll_event evs[64];

	l->stop = false;
	while (!l->stop) {
		int timeout = -1, n;

		if (l->before_sleep != NULL)
			l->before_sleep(l->before_arg);
		if (l->stop)
			break;
		if (l->timers != NULL) {
			int64_t d = l->timers->when_ms - moat_now_ms();
			timeout = d < 0 ? 0 : (d > 60000 ? 60000 : (int)d);
		}
		n = epoll_wait(l->epfd, evs, (int)MOAT_NELEM(evs), timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			log_error_errno("epoll_wait");
			return MOAT_ERR_SYSTEM;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			unsigned ev = 0;
			struct loop_fd *lf;

			/* An earlier callback in this batch may have removed fd. */
			if (fd >= l->nfds || !l->fds[fd].used)
				continue;
			lf = &l->fds[fd];
			if (evs[i].events & (EPOLLIN | EPOLLRDHUP))
				ev |= MOAT_EV_READ;
			if (evs[i].events & EPOLLOUT)
				ev |= MOAT_EV_WRITE;
			if (evs[i].events & (EPOLLERR | EPOLLHUP))
				ev |= MOAT_EV_ERROR | MOAT_EV_READ;
			lf->cb(l, fd, ev, lf->arg);
		}
		run_timers(l);
	}
	return MOAT_OK;
}

void
moat_loop_stop(struct moat_loop *l)
{
	l->stop = true;
}
