/*
 * Small helpers shared by every module: cleanup attributes, ownership
 * hand-off, fd helpers that keep every fd close-on-exec, monotonic time.
 */
#ifndef MOAT_COMMON_UTIL_H
#define MOAT_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/errors.h"

#define MOAT_NELEM(a) (sizeof(a) / sizeof((a)[0]))

static inline void
moat_freep(void *p)
{
	free(*(void **)p);
}
static inline void
moat_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _moat_autofree __attribute__((cleanup(moat_freep)))
#define _moat_autoclose __attribute__((cleanup(moat_closep)))

/* Hand a pointer or fd to a new owner and clear the old copy. */
static inline void *
moat_steal_ptr_(void **pp)
{
	void *p = *pp;
	*pp = NULL;
	return p;
}
#define moat_steal_ptr(pp) moat_steal_ptr_((void **)(pp))
static inline int
moat_steal_fd(int *fdp)
{
	int fd = *fdp;
	*fdp = -1;
	return fd;
}

/* close() that keeps errno and ignores -1. */
void moat_close(int fd);

/* Monotonic clock in microseconds and milliseconds; wall clock in ms. */
int64_t moat_now_us(void);
int64_t moat_now_ms(void);
int64_t moat_wall_ms(void);

/* Set O_NONBLOCK / FD_CLOEXEC on an fd; 0 or MOAT_ERR_SYSTEM. */
int moat_fd_nonblock(int fd);
int moat_fd_cloexec(int fd);

/*
 * Close every fd of the process except keep[0..n-1] (-1 entries are
 * ignored): for a forked child that must hold only what it needs
 * (OpenSSH's close_startup_pipes). No allocation; safe after fork.
 */
void moat_close_all_but(const int *keep, size_t n);

/*
 * Every signal back to its default disposition and none blocked: for a
 * process about to run code that inherits what its parent ignored or
 * blocked (a signalfd set, a shell's ignored SIGINT). 0 or an errno.
 */
int moat_signals_default(void);

/* Write all of buf (retrying EINTR and short writes); 0 or MOAT_ERR_SYSTEM. */
int moat_write_all(int fd, const void *buf, size_t len);

/*
 * Read a whole small file (at most max bytes) into a NUL-terminated heap
 * buffer; the caller frees *out. MOAT_ERR_SYSTEM with errno in the cause.
 */
int moat_read_file(const char *path, size_t max, char **out, size_t *lenp,
    struct moat_cause *cause);

/* Write a string to a file (O_WRONLY|O_CLOEXEC, no create), e.g. cgroup knobs. */
int moat_write_file(const char *path, const char *s, struct moat_cause *cause);

/* mkdir -p with mode; existing directories are fine. */
int moat_mkdir_p(const char *path, unsigned mode, struct moat_cause *cause);

/*
 * Raise this process's RLIMIT_NOFILE: the hard limit to want when that
 * is higher (bounded by /proc/sys/fs/nr_open; raising needs
 * CAP_SYS_RESOURCE, so as root; 0: leave it), then the soft limit to
 * the hard one. *old_soft (may be NULL) gets the soft limit as it was,
 * *soft and *hard (may be NULL) the limits now. A hard limit that could
 * not be raised is not an error (the soft one still rises to it);
 * MOAT_ERR_SYSTEM when no limit could be set (the cause says why).
 */
int moat_nofile_raise(unsigned long want, unsigned long *old_soft,
    unsigned long *soft, unsigned long *hard, struct moat_cause *cause);

/* Parse a duration like "90", "15s", "10m", "1h", "7d" into seconds. */
int moat_parse_duration(const char *s, int64_t *secs);

/*
 * When process pid started, in clock ticks after boot (field 22 of
 * /proc/PID/stat): with the pid it names one process, even after the
 * pid is reused. MOAT_ERR_NOTFOUND when there is no such process.
 */
int moat_proc_start_time(pid_t pid, uint64_t *ticks);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void moat_hex(const unsigned char *in, size_t n, char *out);

#endif
