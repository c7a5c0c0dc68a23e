/*
 * Who is calling: the client's TCP 4-tuple is looked up with sock_diag
 * in the sandbox's netns (falling back to /proc/<init>/net/tcp{,6}) to
 * get the socket inode; the sandbox's processes are scanned for an fd
 * on that inode; each owner's /proc/PID/exe and parent chain name the
 * caller. Owners that disagree make the socket ambiguous: denied.
 *
 * Paths come from the kernel (/proc/PID/exe), never from argv.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "proxy/internal.h"

#define MAX_OWNERS 16
/*
 * /proc and cgroup files are seq_files: a read fills the buffer unless
 * the records run out (it stops short by less than one record when the
 * next does not fit). A read that leaves more room than SEQ_SLACK is
 * therefore the end, and the closing zero-length read is skipped: each
 * connection reads several of these files, and syscalls are its cost.
 */
#define SEQ_SLACK 512

/*
 * Read path into buf (NUL-terminated); when it does not fit and max
 * allows, into a malloc'd buffer instead (*heap set, caller frees).
 * The text's length, or -1.
 */
static ssize_t
read_seq(const char *path, char *buf, size_t cap, size_t max, char **heap)
{
	size_t len = 0;
	int fd;

	*heap = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	for (;;) {
		size_t room = cap - 1 - len;
		ssize_t n;

		if (room == 0) {
			char *nb;
			if (cap * 2 > max || (nb = malloc(cap * 2)) == NULL)
				goto fail;
			memcpy(nb, buf, len);
			free(*heap);
			*heap = buf = nb;
			cap *= 2;
			continue;
		}
		n = read(fd, buf + len, room);
		if (n == -1 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		len += (size_t)n;
		if (n == 0 || (size_t)n + SEQ_SLACK < room)
			break;
	}
	close(fd);
	buf[len] = '\0';
	return (ssize_t)len;
fail:
	close(fd);
	free(*heap);
	*heap = NULL;
	return -1;
}

int
px_identity_diag_open(int netns_fd, struct moat_cause *cause)
{
	int self = -1, fd = -1;

	if (netns_fd >= 0) {
		self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (self == -1 || setns(netns_fd, CLONE_NEWNET) == -1) {
			moat_cause_errno(cause, "enter the sandbox netns");
			moat_close(self);
			return -1;
		}
	}
	/* A netlink socket stays in the netns it was created in. */
	fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (fd == -1)
		moat_cause_errno(cause, "socket(NETLINK_SOCK_DIAG)");
	if (self >= 0) {
		if (setns(self, CLONE_NEWNET) == -1)
			log_fatal("cannot return to the proxy's netns");
		close(self);
	}
	return fd;
}

/* The inode of the TCP socket src:sport -> dst:dport; 0 when none. */
static unsigned long
diag_inode(int fd, const struct sockaddr *src, const struct sockaddr *dst)
{
	struct {
		struct nlmsghdr nlh;
		struct inet_diag_req_v2 r;
	} req;
	union {
		struct nlmsghdr nlh;
		char buf[8192];
	} resp;
	struct inet_diag_msg *m;
	ssize_t n;

	memset(&req, 0, sizeof(req));
	req.nlh.nlmsg_len = sizeof(req);
	req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	req.nlh.nlmsg_flags = NLM_F_REQUEST;
	req.r.sdiag_family = (uint8_t)src->sa_family;
	req.r.sdiag_protocol = IPPROTO_TCP;
	req.r.idiag_states = ~0U;
	req.r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (src->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)src;
		const struct sockaddr_in *d = (const void *)dst;
		req.r.id.idiag_sport = s->sin_port;
		req.r.id.idiag_dport = d->sin_port;
		memcpy(req.r.id.idiag_src, &s->sin_addr, 4);
		memcpy(req.r.id.idiag_dst, &d->sin_addr, 4);
	} else {
		const struct sockaddr_in6 *s = (const void *)src;
		const struct sockaddr_in6 *d = (const void *)dst;
		req.r.id.idiag_sport = s->sin6_port;
		req.r.id.idiag_dport = d->sin6_port;
		memcpy(req.r.id.idiag_src, &s->sin6_addr, 16);
		memcpy(req.r.id.idiag_dst, &d->sin6_addr, 16);
	}
	if (send(fd, &req, sizeof(req), 0) != (ssize_t)sizeof(req))
		return 0;
	do
		n = recv(fd, &resp, sizeof(resp), 0);
	while (n == -1 && errno == EINTR);
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(*m)) ||
	    resp.nlh.nlmsg_type != SOCK_DIAG_BY_FAMILY)
		return 0;
	m = NLMSG_DATA(&resp.nlh);
	return m->idiag_inode;
}

static void
hexaddr(const struct sockaddr *sa, char *out, size_t len)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)sa;
		snprintf(out, len, "%08X:%04X", s->sin_addr.s_addr,
		    ntohs(s->sin_port));
	} else {
		const struct sockaddr_in6 *s = (const void *)sa;
		const uint32_t *w = (const uint32_t *)&s->sin6_addr;
		snprintf(out, len, "%08X%08X%08X%08X:%04X", w[0], w[1], w[2],
		    w[3], ntohs(s->sin6_port));
	}
}

/* /proc/<pid>/net/tcp{,6}: "sl local rem st ... uid timeout inode". */
static unsigned long
proc_inode(pid_t init_pid, const struct sockaddr *src,
    const struct sockaddr *dst)
{
	char path[64], want_l[64], want_r[64], line[512];
	unsigned long inode = 0;
	FILE *f;

	hexaddr(src, want_l, sizeof(want_l));
	hexaddr(dst, want_r, sizeof(want_r));
	if (init_pid > 0)
		snprintf(path, sizeof(path), "/proc/%d/net/tcp%s", (int)init_pid,
		    src->sa_family == AF_INET6 ? "6" : "");
	else
		snprintf(path, sizeof(path), "/proc/self/net/tcp%s",
		    src->sa_family == AF_INET6 ? "6" : "");
	if ((f = fopen(path, "re")) == NULL)
		return 0;
	while (inode == 0 && fgets(line, sizeof(line), f) != NULL) {
		char l[64], r[64];
		unsigned long ino;
		if (sscanf(line, "%*d: %63s %63s %*x %*s %*s %*s %*d %*d %lu",
		    l, r, &ino) == 3 && strcmp(l, want_l) == 0 &&
		    strcmp(r, want_r) == 0)
			inode = ino;
	}
	fclose(f);
	return inode;
}

/* pids to scan: the sandbox's cgroup.procs, or every pid in /proc. */
static pid_t *
list_pids(const char *procs_path, size_t *np)
{
	pid_t *v = NULL;
	size_t n = 0, cap = 0;

	if (procs_path != NULL) {
		char sbuf[4096], *heap, *p, *end;
		if (read_seq(procs_path, sbuf, sizeof(sbuf), 1 << 22, &heap) < 0)
			return NULL;
		for (p = heap != NULL ? heap : sbuf; *p != '\0'; p = end) {
			long pid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (n == cap) {
				pid_t *nv;
				cap = cap ? cap * 2 : 64;
				if ((nv = realloc(v, cap * sizeof(*v))) == NULL)
					break;
				v = nv;
			}
			v[n++] = (pid_t)pid;
		}
		free(heap);
	} else {
		DIR *d = opendir("/proc");
		struct dirent *de;
		if (d == NULL)
			return NULL;
		while ((de = readdir(d)) != NULL) {
			long pid = strtol(de->d_name, NULL, 10);
			if (pid <= 0)
				continue;
			if (n == cap) {
				pid_t *nv;
				cap = cap ? cap * 2 : 256;
				if ((nv = realloc(v, cap * sizeof(*v))) == NULL)
					break;
				v = nv;
			}
			v[n++] = (pid_t)pid;
		}
		closedir(d);
	}
	*np = n;
	return v;
}

/* Does pid hold an fd whose link reads want ("socket:[N]")? */
static bool
holds_inode(pid_t pid, const char *want)
{
	char path[64], link[64], buf[8192];
	bool found = false;
	ssize_t n = 0;
	int dfd;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return false;
	/* A short batch is the end of the directory (see SEQ_SLACK). */
	while (!found && (n == 0 || (size_t)n + SEQ_SLACK >= sizeof(buf)) &&
	    (n = getdents64(dfd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; !found && off < n;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);
			ssize_t k;

			off += de->d_reclen;
			if (de->d_name[0] == '.')
				continue; /* "." and "..": fds are digits */
			k = readlinkat(dfd, de->d_name, link, sizeof(link) - 1);
			if (k <= 0)
				continue;
			link[k] = '\0';
			found = strcmp(link, want) == 0;
		}
	}
	close(dfd);
	return found;
}

static char *
exe_of(pid_t pid)
{
	char path[64], buf[4096];
	ssize_t n;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if ((n = readlink(path, buf, sizeof(buf) - 1)) <= 0)
		return NULL;
	buf[n] = '\0';
	len = (size_t)n;
	if (len > 10 && strcmp(buf + len - 10, " (deleted)") == 0)
		buf[len - 10] = '\0';
	return strdup(buf);
}

static pid_t
ppid_of(pid_t pid)
{
	char path[64], buf[1024], *heap, *rp;
	int ppid = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_seq(path, buf, sizeof(buf), 4096, &heap) < 0)
		return 0;
	/* comm may hold ')' and spaces: parse after the last ')'. */
	if ((rp = strrchr(heap != NULL ? heap : buf, ')')) == NULL ||
	    sscanf(rp + 1, " %*c %d", &ppid) != 1)
		ppid = 0;
	free(heap);
	return (pid_t)ppid;
}

/* uid, innermost NSpid and parent from one read of /proc/PID/status. */
static void
status_of(pid_t pid, int *uid, int *nspid, pid_t *ppid)
{
	char path[64], buf[4096], *heap, *s, *l;

	*uid = -1;
	*nspid = (int)pid;
	*ppid = -1; /* unknown: read stat */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (read_seq(path, buf, sizeof(buf), 1 << 16, &heap) < 0)
		return;
	s = heap != NULL ? heap : buf;
	if ((l = strstr(s, "\nPPid:")) != NULL)
		*ppid = (pid_t)atoi(l + 6);
	if ((l = strstr(s, "\nUid:")) != NULL)
		*uid = atoi(l + 5);
	if ((l = strstr(s, "\nNSpid:")) != NULL) {
		char *end = strchr(l + 1, '\n'), *sp;
		if (end != NULL)
			*end = '\0';
		/* The last field is the pid in the innermost namespace. */
		if ((sp = strrchr(l, '\t')) != NULL)
			*nspid = atoi(sp + 1);
	}
	free(heap);
}

static bool
in_list(const pid_t *v, size_t n, pid_t pid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == pid)
			return true;
	return false;
}

void
px_identity_clear(struct px_identity *id)
{
	for (size_t i = 0; i < id->nbin; i++) {
		free(id->bin[i].path);
		px_hasher_cancel(id->bin[i].job);
	}
	memset(id, 0, sizeof(*id));
}

/*
 * The fingerprint of the file pid runs (the link is followed to it even
 * when replaced or deleted): enough to find a cached hash; the file is
 * opened only when it must be hashed (px_bin_open).
 */
static void
stat_bin(struct px_bin *b)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)b->pid);
	b->have_st = stat(path, &b->st) == 0;
}

int
px_bin_open(struct px_bin *b)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)b->pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	/* The hash is cached under what was read, not what was stat'ed. */
	if (fstat(fd, &b->st) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * exe and parent chain of pid: up to the sandbox init, the first
 * parent outside the sandbox's process list, or 64 levels.
 */
static int
describe(struct px_sandbox *sb, pid_t pid, const pid_t *pids, size_t npids,
    struct px_identity *id)
{
	pid_t cur = pid, ppid;

	memset(id, 0, sizeof(*id));
	id->pid = pid;
	status_of(pid, &id->uid, &id->nspid, &ppid);
	while (id->nbin < 1 + PX_MAX_ANCESTORS) {
		struct px_bin *b = &id->bin[id->nbin];
		if ((b->path = exe_of(cur)) == NULL) {
			if (id->nbin == 0)
				return MOAT_ERR_NOTFOUND;
			break;
		}
		b->pid = cur;
		id->nbin++;
		if (cur == sb->init_pid || cur <= 1)
			break;
		/* The owner's parent came with its status. */
		cur = id->nbin == 1 && ppid >= 0 ? ppid : ppid_of(cur);
		if (cur <= 0 || (sb->procs_path != NULL && pids != NULL &&
		    !in_list(pids, npids, cur)))
			break;
	}
	for (size_t i = 1; i < id->nbin; i++)
		id->anc[i - 1] = id->bin[i].path;
	return MOAT_OK;
}

static bool
same_caller(const struct px_identity *a, const struct px_identity *b)
{
	if (a->nbin != b->nbin)
		return false;
	for (size_t i = 0; i < a->nbin; i++)
		if (strcmp(a->bin[i].path, b->bin[i].path) != 0)
			return false;
	return true;
}

int
px_identity_lookup(struct px_sandbox *sb, const struct sockaddr *src,
    const struct sockaddr *dst, struct px_identity *out, char *why,
    size_t whylen)
{
	unsigned long inode = 0;
	pid_t *pids = NULL, owners[MAX_OWNERS];
	size_t npids = 0, nown = 0;
	struct px_identity other;
	char want[64];
	int rc = MOAT_ERR_NOTFOUND;

	if (sb->diag_fd >= 0)
		inode = diag_inode(sb->diag_fd, src, dst);
	if (inode == 0)
		inode = proc_inode(sb->init_pid, src, dst);
	if (inode == 0) {
		snprintf(why, whylen, "no socket found for the connection");
		return MOAT_ERR_NOTFOUND;
	}
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	if ((pids = list_pids(sb->procs_path, &npids)) == NULL) {
		snprintf(why, whylen, "cannot list the sandbox's processes");
		return MOAT_ERR_NOTFOUND;
	}
	/*
	 * Every pid is scanned: stopping at MAX_OWNERS would let that many
	 * co-holders of an allowed binary hide the real caller.
	 */
	for (size_t i = 0; i < npids; i++) {
		if (!holds_inode(pids[i], want))
			continue;
		if (nown == MAX_OWNERS) {
			snprintf(why, whylen, "ambiguous shared socket "
			    "ownership: inode %lu is held by more than %d "
			    "processes", inode, MAX_OWNERS);
			rc = MOAT_ERR_DENIED;
			goto out;
		}
		owners[nown++] = pids[i];
	}
	if (nown == 0) {
		snprintf(why, whylen, "no process holds socket inode %lu",
		    inode);
		goto out;
	}
	/* The lowest pid speaks for owners that agree. */
	for (size_t i = 1; i < nown; i++)
		if (owners[i] < owners[0]) {
			pid_t t = owners[0];
			owners[0] = owners[i];
			owners[i] = t;
		}
	if ((rc = describe(sb, owners[0], pids, npids, out)) != 0) {
		snprintf(why, whylen, "pid %d exited", (int)owners[0]);
		goto out;
	}
	for (size_t i = 1; i < nown; i++) {
		bool same;

		/* An owner that cannot be described could be anyone. */
		if (describe(sb, owners[i], pids, npids, &other) != 0) {
			snprintf(why, whylen, "ambiguous shared socket "
			    "ownership: inode %lu is also held by PID %d, "
			    "which cannot be identified", inode,
			    (int)owners[i]);
			px_identity_clear(out);
			rc = MOAT_ERR_DENIED;
			goto out;
		}
		same = same_caller(out, &other);
		px_identity_clear(&other);
		if (!same) {
			snprintf(why, whylen, "ambiguous shared socket ownership: "
			    "inode %lu is held by PIDs %d and %d with different "
			    "binaries", inode, (int)owners[0], (int)owners[i]);
			px_identity_clear(out);
			rc = MOAT_ERR_DENIED;
			goto out;
		}
	}
	for (size_t i = 0; i < out->nbin; i++)
		stat_bin(&out->bin[i]);
	rc = MOAT_OK;
out:
	free(pids);
	return rc;
}
