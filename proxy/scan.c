/*
 * The /proc fallback of caller identity (no BPF attribution): which
 * processes of the sandbox hold a socket inode. Every fd table counts:
 * the leader's (/proc/P/fd) and that of every thread that does not share
 * it (a thread cloned without CLONE_FILES, or the live threads of a
 * zombie leader, whose /proc/P/fd is empty), compared with kcmp(2).
 *
 * Runs on a worker, in slices of at most SCAN_SLICE entries (fd links,
 * tasks), and gives up after SCAN_MAX: the work per connection is
 * bounded, and the pool runs other sandboxes' work between slices.
 */
#include <sys/syscall.h>

#include <linux/kcmp.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "proxy/internal.h"

#define SCAN_SLICE 2048
#define SCAN_MAX (8L << 20)
#define SCAN_MAX_TABLES 64 /* distinct fd tables per process; more: denied */
/* A short getdents batch is the end of the directory (see SEQ_SLACK). */
#define DENTS_SLACK 512

struct px_scan {
	char want[48];           /* "socket:[N]" */
	pid_t *pids;
	size_t npids;
	size_t next;             /* the pid being scanned */
	int dfd;                 /* the fd directory being read, or -1 */
	pid_t tables[SCAN_MAX_TABLES]; /* tids whose fd tables to read */
	size_t ntables;
	size_t table;            /* the one being read */
	bool listed;             /* tables[] is filled for pids[next] */
	long work;               /* entries read so far */
	pid_t owners[PX_MAX_OWNERS + 1];
	size_t nown;
};

static int
kcmp_files(pid_t a, pid_t b)
{
	return (int)syscall(SYS_kcmp, a, b, KCMP_FILES, 0, 0);
}

/*
 * The tids of pid whose fd tables differ from each other: the leader
 * first, then each thread whose table is none of those seen. *work
 * counts the tasks and comparisons. More than max distinct tables: 0
 * (none of them can be said to be all, and a table left out could hide
 * the caller).
 */
static size_t
list_tables(pid_t pid, pid_t *out, size_t max, long *work)
{
	char path[64], buf[4096];
	size_t n = 0;
	ssize_t got;
	int dfd;

	out[n++] = pid;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return n;
	while ((got = getdents64(dfd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < got;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);
			pid_t tid = (pid_t)strtol(de->d_name, NULL, 10);
			bool seen = false;

			off += de->d_reclen;
			if (tid <= 0 || tid == pid)
				continue;
			(*work)++;
			for (size_t i = 0; i < n && !seen; i++, (*work)++)
				seen = kcmp_files(out[i], tid) == 0;
			if (seen)
				continue;
			if (n == max) {
				close(dfd);
				return 0;
			}
			out[n++] = tid;
		}
	}
	close(dfd);
	return n;
}

static int
open_table(pid_t pid, pid_t tid)
{
	char path[64];

	if (tid == pid)
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/%d/task/%d/fd", (int)pid,
		    (int)tid);
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/*
 * Read up to *budget links of the open fd directory dfd: 1 found,
 * 0 directory done, -1 budget spent (dfd keeps its position).
 */
static int
read_links(int dfd, const char *want, long *budget, long *work)
{
	char buf[8192], link[64];
	ssize_t n;

	while (*budget > 0) {
		/* Small batches: the budget is checked per batch. */
		size_t ask = *budget < 64 ? 1024 : sizeof(buf);

		if ((n = getdents64(dfd, buf, ask)) <= 0)
			return 0;
		for (ssize_t off = 0; off < n;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);
			ssize_t k;

			off += de->d_reclen;
			if (de->d_name[0] == '.')
				continue; /* "." and "..": fds are digits */
			(*budget)--;
			(*work)++;
			k = readlinkat(dfd, de->d_name, link, sizeof(link) - 1);
			if (k <= 0)
				continue;
			link[k] = '\0';
			if (strcmp(link, want) == 0)
				return 1;
		}
		if ((size_t)n + DENTS_SLACK < ask)
			return 0;
	}
	return -1;
}

/* pids to scan: the sandbox's cgroup.procs, or every pid in /proc. */
static pid_t *
list_pids(const char *procs_path, size_t *np)
{
	pid_t *v = NULL;
	size_t n = 0, cap = 0;
	FILE *f = NULL;
	DIR *d = NULL;

	if (procs_path != NULL && (f = fopen(procs_path, "re")) == NULL)
		return NULL;
	if (procs_path == NULL && (d = opendir("/proc")) == NULL)
		return NULL;
	for (;;) {
		long pid = 0;
		struct dirent *de;

		if (f != NULL && fscanf(f, "%ld", &pid) != 1)
			break;
		if (d != NULL) {
			if ((de = readdir(d)) == NULL)
				break;
			if ((pid = strtol(de->d_name, NULL, 10)) <= 0)
				continue;
		}
		if (n == cap) {
			pid_t *nv;
			cap = cap ? cap * 2 : 256;
			if ((nv = realloc(v, cap * sizeof(*v))) == NULL)
				break;
			v = nv;
		}
		v[n++] = (pid_t)pid;
	}
	if (f != NULL)
		fclose(f);
	if (d != NULL)
		closedir(d);
	if (v == NULL)
		v = calloc(1, sizeof(*v));
	*np = n;
	return v;
}

int
px_scan_new(const char *procs_path, unsigned long inode, struct px_scan **out)
{
	struct px_scan *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return MOAT_ERR_NOMEM;
	s->dfd = -1;
	snprintf(s->want, sizeof(s->want), "socket:[%lu]", inode);
	if ((s->pids = list_pids(procs_path, &s->npids)) == NULL) {
		bool nofd = px_out_of_fds(errno);

		free(s);
		return nofd ? PX_NOFD : MOAT_ERR_NOTFOUND;
	}
	*out = s;
	return MOAT_OK;
}

void
px_scan_free(struct px_scan *s)
{
	if (s == NULL)
		return;
	moat_close(s->dfd);
	free(s->pids);
	free(s);
}

/* The current pid holds the inode, or is done: on to the next pid. */
static void
next_pid(struct px_scan *s)
{
	moat_close(s->dfd);
	s->dfd = -1;
	s->listed = false;
	s->table = 0;
	s->next++;
}

int
px_scan_step(struct px_scan *s, char *why, size_t whylen)
{
	long budget = SCAN_SLICE;

	while (s->next < s->npids) {
		pid_t pid = s->pids[s->next];
		int r;

		if (s->work > SCAN_MAX) {
			snprintf(why, whylen, "the sandbox holds too many open "
			    "files to identify the caller (more than %ld "
			    "looked at)", SCAN_MAX);
			return MOAT_ERR_DENIED;
		}
		if (budget <= 0)
			return MOAT_ERR_AGAIN;
		if (!s->listed) {
			long w0 = s->work;

			s->ntables = list_tables(pid, s->tables,
			    SCAN_MAX_TABLES, &s->work);
			if (s->ntables == 0) {
				snprintf(why, whylen, "ambiguous shared socket "
				    "ownership: process %d of the sandbox has "
				    "more than %d file tables", (int)pid,
				    SCAN_MAX_TABLES);
				return MOAT_ERR_DENIED;
			}
			budget -= s->work - w0;
			s->listed = true;
		}
		if (s->table >= s->ntables) {
			next_pid(s);
			continue;
		}
		if (s->dfd < 0 && (s->dfd = open_table(pid,
		    s->tables[s->table])) < 0) {
			/* Skipping it for want of an fd could hide the caller. */
			if (px_out_of_fds(errno))
				return PX_NOFD;
			s->table++;
			continue;
		}
		r = read_links(s->dfd, s->want, &budget, &s->work);
		if (r < 0)
			return MOAT_ERR_AGAIN;
		moat_close(s->dfd);
		s->dfd = -1;
		s->table++;
		if (r == 0)
			continue;
		/* Every pid is scanned: co-holders must not hide the caller. */
		s->owners[s->nown++] = pid;
		if (s->nown > PX_MAX_OWNERS) {
			snprintf(why, whylen, "ambiguous shared socket "
			    "ownership: the socket is held by more than %d "
			    "processes", PX_MAX_OWNERS);
			return MOAT_ERR_DENIED;
		}
		next_pid(s);
	}
	return MOAT_OK;
}

size_t
px_scan_owners(const struct px_scan *s, const pid_t **owners)
{
	*owners = s->owners;
	return s->nown;
}

bool
px_scan_has_pid(const struct px_scan *s, pid_t pid)
{
	for (size_t i = 0; i < s->npids; i++)
		if (s->pids[i] == pid)
			return true;
	return false;
}

bool
px_scan_holds(pid_t pid, unsigned long inode)
{
	pid_t tables[SCAN_MAX_TABLES];
	char want[48];
	long work = 0, budget = SCAN_MAX;
	size_t n;

	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	n = list_tables(pid, tables, SCAN_MAX_TABLES, &work);
	for (size_t i = 0; i < n; i++) {
		int dfd = open_table(pid, tables[i]), r;

		if (dfd < 0)
			continue;
		r = read_links(dfd, want, &budget, &work);
		close(dfd);
		if (r == 1)
			return true;
	}
	return false;
}
