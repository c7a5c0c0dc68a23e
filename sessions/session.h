/*
 * The child-process side of an SSH session channel: PTYs, pipes, exit
 * status and signal names, and the environment allowlist. sshd/ drives
 * libssh and uses these for the process I/O; nothing here knows libssh.
 */
#ifndef MOAT_SESSIONS_SESSION_H
#define MOAT_SESSIONS_SESSION_H

#include <sys/types.h>

#include <stdbool.h>
#include <stdint.h>

#include "common/errors.h"

struct moat_winsize {
	uint16_t rows;
	uint16_t cols;
	uint16_t xpix;
	uint16_t ypix;
};

/*
 * Open a PTY pair, both ends close-on-exec, the master nonblocking, with
 * the window size set (ws may be NULL) and sane input modes (VERASE DEL,
 * ICRNL, IUTF8). The slave is for the child (its fds 0-2); the caller
 * closes its copy of the slave once the child runs.
 */
int moat_pty_open(const struct moat_winsize *ws, int *master, int *slave,
    struct moat_cause *cause);

/*
 * The same settings on a pair opened elsewhere (a sandbox's devpts):
 * close-on-exec, master nonblocking, window size, input modes. The fds
 * stay the caller's either way.
 */
int moat_pty_setup(int master, int slave, const struct moat_winsize *ws,
    struct moat_cause *cause);

/* TIOCSWINSZ on the master; the kernel sends SIGWINCH to the foreground. */
int moat_pty_resize(int master, const struct moat_winsize *ws);

/*
 * Three pipes for a child without a PTY: child[0..2] are its stdin,
 * stdout, stderr; parent[0] writes the child's stdin, parent[1] and
 * parent[2] read its stdout and stderr. All close-on-exec; the parent
 * ends are nonblocking. On failure nothing stays open.
 */
int moat_pipes_open(int child[3], int parent[3], struct moat_cause *cause);

/* Close every fd of an array of n (skipping -1) and set them to -1. */
void moat_fds_close(int *fds, int n);

/* A pollable fd that becomes readable when pid exits (pidfd_open). */
int moat_proc_pidfd(pid_t pid, int *fd, struct moat_cause *cause);

/* waitpid(WNOHANG): true and *status when pid was reaped. */
bool moat_proc_reap(pid_t pid, int *status);

/*
 * The SSH name of a signal, without "SIG" ("TERM", "SEGV"), for
 * exit-signal; "UNKNOWN@moat" for signals SSH has no name for.
 */
const char *moat_signal_name(int sig);

/*
 * The signal a client may send to a session with a `signal` request
 * (HUP INT KILL QUIT TERM USR1 USR2, as sshd allows); -1 otherwise.
 */
int moat_signal_from_name(const char *name);

/*
 * May a client-supplied environment variable reach the child? LANG,
 * LC_*, TERM, COLORTERM; never LD_*, PATH, BASH_ENV and the rest.
 */
bool moat_env_allowed(const char *name);

#endif
