#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

void
moat_close(int fd)
{
	int saved = errno;

	if (fd >= 0)
		close(fd);
	errno = saved;
}

int64_t
moat_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
moat_now_ms(void)
{
	return moat_now_us() / 1000;
}

int64_t
moat_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
moat_fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		return MOAT_ERR_SYSTEM;
	return MOAT_OK;
}

int
moat_fd_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl == -1 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) == -1)
		return MOAT_ERR_SYSTEM;
	return MOAT_OK;
}

int
moat_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return MOAT_ERR_SYSTEM;
		}
		p += n;
		len -= (size_t)n;
	}
	return MOAT_OK;
}

int
moat_read_file(const char *path, size_t max, char **out, size_t *lenp,
    struct moat_cause *cause)
{
	char *buf = NULL;
	size_t len = 0, cap = 4096;
	int fd = -1, r = MOAT_ERR_SYSTEM;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		moat_cause_errno(cause, "%s", path);
		r = errno == ENOENT ? MOAT_ERR_NOTFOUND : MOAT_ERR_SYSTEM;
		goto out;
	}
	if ((buf = malloc(cap + 1)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n;
		if (len == cap) {
			char *nb;
			if (cap >= max) {
				moat_cause_set(cause, "%s: larger than %zu bytes",
				    path, max);
				r = MOAT_ERR_INVALID;
				goto out;
			}
			cap *= 2;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				r = MOAT_ERR_NOMEM;
				goto out;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			moat_cause_errno(cause, "read %s", path);
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		moat_cause_set(cause, "%s: larger than %zu bytes", path, max);
		r = MOAT_ERR_INVALID;
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	buf = NULL;
	if (lenp != NULL)
		*lenp = len;
	r = MOAT_OK;
out:
	free(buf);
	moat_close(fd);
	return r;
}

int
moat_write_file(const char *path, const char *s, struct moat_cause *cause)
{
	int fd, r = MOAT_OK;

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1) {
		moat_cause_errno(cause, "open %s", path);
		return MOAT_ERR_SYSTEM;
	}
	if (moat_write_all(fd, s, strlen(s)) != 0) {
		moat_cause_errno(cause, "write '%s' to %s", s, path);
		r = MOAT_ERR_SYSTEM;
	}
	close(fd);
	return r;
}

int
moat_mkdir_p(const char *path, unsigned mode, struct moat_cause *cause)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf)) {
		moat_cause_set(cause, "bad directory path '%s'", path);
		return MOAT_ERR_INVALID;
	}
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) == -1 && errno != EEXIST) {
			moat_cause_errno(cause, "mkdir %s", buf);
			return MOAT_ERR_SYSTEM;
		}
		*p = '/';
	}
	if (mkdir(buf, mode) == -1 && errno != EEXIST) {
		moat_cause_errno(cause, "mkdir %s", buf);
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

int
moat_parse_duration(const char *s, int64_t *secs)
{
	char *end = NULL;
	long long v;
	int64_t mul = 1;

	if (s == NULL || *s == '\0' || *s == '-')
		return MOAT_ERR_INVALID;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s)
		return MOAT_ERR_INVALID;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		mul = 60;
		break;
	case 'h':
		mul = 3600;
		break;
	case 'd':
		mul = 86400;
		break;
	default:
		return MOAT_ERR_INVALID;
	}
	if (*end != '\0' && end[1] != '\0')
		return MOAT_ERR_INVALID;
	if (v > INT64_MAX / mul)
		return MOAT_ERR_INVALID;
	*secs = v * mul;
	return MOAT_OK;
}

void
moat_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int
moat_signals_default(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
		return errno;
	return 0;
}

int
moat_proc_start_time(pid_t pid, uint64_t *ticks)
{
	char path[64], *s = NULL, *p;
	int field = 2, r;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (moat_read_file(path, 4096, &s, NULL, NULL) != 0)
		return MOAT_ERR_NOTFOUND;
	/* comm may hold spaces and ')': count from the last ')'. */
	if ((p = strrchr(s, ')')) == NULL) {
		free(s);
		return MOAT_ERR_NOTFOUND;
	}
	while (*p != '\0' && field < 22)
		if (*p++ == ' ')
			field++;
	r = sscanf(p, "%" SCNu64, ticks) == 1 ? MOAT_OK : MOAT_ERR_NOTFOUND;
	free(s);
	return r;
}

int
moat_nofile_raise(unsigned long want, unsigned long *old_soft,
    unsigned long *soft, unsigned long *hard, struct moat_cause *cause)
{
	struct rlimit rl;
	char *text = NULL;
	unsigned long nr_open;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		moat_cause_errno(cause, "getrlimit(RLIMIT_NOFILE)");
		return MOAT_ERR_SYSTEM;
	}
	if (old_soft != NULL)
		*old_soft = (unsigned long)rl.rlim_cur;
	if (want > rl.rlim_max) {
		/* The kernel's ceiling; setrlimit above it is EPERM. */
		if (moat_read_file("/proc/sys/fs/nr_open", 64, &text, NULL,
		    NULL) == 0 && (nr_open = strtoul(text, NULL, 10)) > 0 &&
		    want > nr_open)
			want = nr_open;
		free(text);
		if (want > rl.rlim_max) {
			struct rlimit up = { want, want };

			if (setrlimit(RLIMIT_NOFILE, &up) == 0)
				rl = up;
		}
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			moat_cause_errno(cause, "setrlimit(RLIMIT_NOFILE, %lu)",
			    (unsigned long)rl.rlim_max);
			return MOAT_ERR_SYSTEM;
		}
	}
	if (soft != NULL)
		*soft = (unsigned long)rl.rlim_cur;
	if (hard != NULL)
		*hard = (unsigned long)rl.rlim_max;
	return MOAT_OK;
}

void
moat_close_all_but(const int *keep, size_t n)
{
	unsigned lo = 0;

	for (;;) {
		unsigned next = ~0U;

		for (size_t i = 0; i < n; i++)
			if (keep[i] >= 0 && (unsigned)keep[i] >= lo &&
			    (unsigned)keep[i] < next)
				next = (unsigned)keep[i];
		if (next == ~0U) {
			(void)close_range(lo, ~0U, 0);
			return;
		}
		if (next > lo)
			(void)close_range(lo, next - 1, 0);
		lo = next + 1;
	}
}
