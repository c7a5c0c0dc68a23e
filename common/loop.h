/*
 * One epoll loop per process (redis ae-sized): fd callbacks with a
 * void *arg, one-shot timers, a before-sleep hook, and signals through a
 * signalfd. Whoever registers deregisters, in its own _free.
 */
#ifndef MOAT_COMMON_LOOP_H
#define MOAT_COMMON_LOOP_H

#include <stdint.h>

#include "common/errors.h"

struct moat_loop;
struct moat_timer;

enum {
	MOAT_EV_READ = 1,
	MOAT_EV_WRITE = 2,
	MOAT_EV_ERROR = 4, /* EPOLLERR/EPOLLHUP, reported with READ */
};

typedef void moat_fd_cb(struct moat_loop *l, int fd, unsigned events,
    void *arg);
typedef void moat_timer_cb(struct moat_loop *l, void *arg);
typedef void moat_signal_cb(struct moat_loop *l, int signo, void *arg);

int moat_loop_new(struct moat_loop **out, struct moat_cause *cause);
void moat_loop_free(struct moat_loop *l);

/* Register fd for events (MOAT_EV_READ|MOAT_EV_WRITE); one cb per fd. */
int moat_loop_add_fd(struct moat_loop *l, int fd, unsigned events,
    moat_fd_cb *cb, void *arg);
/* Change the event mask of a registered fd. */
int moat_loop_mod_fd(struct moat_loop *l, int fd, unsigned events);
/* Deregister; call before close(fd). Unknown fds are ignored. */
void moat_loop_del_fd(struct moat_loop *l, int fd);

/*
 * A one-shot timer after ms; returns NULL on allocation failure. One armed
 * from a timer callback runs on a later turn of the loop, after its fds,
 * even with ms 0.
 */
struct moat_timer *moat_loop_timer(struct moat_loop *l, int64_t ms,
    moat_timer_cb *cb, void *arg);
/* Cancel a pending timer (NULL is fine); a fired timer is freed by the loop. */
void moat_loop_timer_cancel(struct moat_loop *l, struct moat_timer *t);

/*
 * Route signo through a signalfd: it is blocked in the process mask and
 * cb runs from the loop. Several signals may share one cb.
 */
int moat_loop_signal(struct moat_loop *l, int signo, moat_signal_cb *cb,
    void *arg);

/* Called once per iteration before epoll_wait. */
void moat_loop_before_sleep(struct moat_loop *l, void (*cb)(void *),
    void *arg);

/* Run until moat_loop_stop(); 0, or MOAT_ERR_SYSTEM if epoll fails. */
int moat_loop_run(struct moat_loop *l);
void moat_loop_stop(struct moat_loop *l);

#endif
