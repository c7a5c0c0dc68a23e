/*
 * Who is calling. On the loop, bounded: with BPF attribution the
 * client's 4-tuple is looked up in the sandbox's map of connections to
 * the proxy (one syscall), which holds what the kernel recorded in the
 * socket hooks: the task that created the socket and the task that
 * connected it (common/attrib.h). Without it, the 4-tuple is looked up
 * with sock_diag in the sandbox's netns (diag.c), which gives the
 * socket's inode for the /proc scan.
 *
 * Then, on a worker (work.c, fair between sandboxes), or on the loop
 * for a recorded caller with a short parent chain (try_inline):
 *   attributed  the connecting process, pinned with a pidfd, must be the
 *               one recorded (same start time) still running the
 *               executable it connected with (same device and inode);
 *               the creator must have run that executable too, in the
 *               same sandbox;
 *   fallback    every fd table of the sandbox's processes is scanned for
 *               the inode (scan.c, in slices); each holder is pinned,
 *               must still hold it, and all must agree;
 * then the caller's parent chain (each parent pinned while read), the
 * binaries opened for hashing, and the per-caller checks (the table
 * caller_checks[] below; add a check there, before the last row, which
 * re-checks that the caller is still the same process running the same
 * file), and the code of the parents that grant what the caller asks
 * for (check_parents_code). The result goes back to the loop.
 *
 * Paths come from the kernel (/proc/PID/exe), never from argv.
 */
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include <bpf/bpf.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/attrib.h"
#include "common/util.h"
#include "proxy/internal.h"

/* A connection's client socket: connected (a half-close is fine). */
#define TCP_CONNECTED (1u << 1 | 1u << 4 | 1u << 5) /* ESTAB, FIN_WAIT1/2 */
#define IDENT_THREADS 2
#define IDENT_QUEUE 128 /* per sandbox, queued or running */
#define MAX_PINS (2 * (1 + PX_MAX_ANCESTORS)) /* a caller and one co-owner */
/*
 * A recorded caller with at most this many parents is described on the
 * loop (about 25 syscalls, tens of microseconds): a thread hand-off costs
 * more than the work. A longer chain goes to a worker, and so does one
 * whose maps checks would read more than PX_MAPS_LOOP_MAX of /proc.
 */
#define INLINE_PARENTS 6

struct ident_job {
	struct px_work w; /* first: the pool hands back this pointer */
	/* Inputs, copied: the sandbox may go away while the job runs. */
	bool attributed;  /* rec is the kernel's record (else: scan) */
	bool need_find;   /* no sock_diag: find the inode in /proc/net/tcp */
	bool bypass;
	struct moat_attrib rec;
	uint64_t cgroup_id;
	unsigned long inode;
	struct sockaddr_storage src;
	struct sockaddr_storage dst;
	pid_t init_pid;
	dev_t pidns_dev;  /* the sandbox's pid namespace; ino 0: none known */
	ino_t pidns_ino;
	char *procs_path;
	struct px_hasher *hasher;
	struct px_scan *scan;
	int pidfds[MAX_PINS]; /* the pinned caller and parents */
	size_t npidfds;
	size_t max_parents; /* on the loop: at most this many, else too_deep */
	bool too_deep;      /* (or /proc files too long for the loop) */
	bool nofd;          /* an open found no free fd: no verdict (PX_NOFD) */
	size_t budget;      /* /proc bytes the maps checks may still read */
	/* What the caller asks for: its granting parents' code is checked. */
	struct moat_policy *pol;
	char host[256];     /* normalised; "" none */
	uint16_t port;
	/* Output. */
	int rc;
	char why[512];
	struct px_identity id;
	px_identity_cb *cb;
	void *arg;
};

/* ---- reading /proc ---- */

/* After a failed open: was it for want of an fd? Then say so at the end. */
static void
note_fds(struct ident_job *j)
{
	if (px_out_of_fds(errno))
		j->nofd = true;
}

static int
pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Still the process the pidfd was opened for (not exited, not reaped)? */
static bool
alive(int pidfd)
{
	struct pollfd p = { pidfd, POLLIN, 0 };

	return poll(&p, 1, 0) == 0;
}

/* State, parent and start time (clock ticks) from /proc/PID/stat. */
static int
proc_stat(struct ident_job *j, pid_t pid, char *state, pid_t *ppid,
    unsigned long long *start)
{
	char path[64], buf[1024], *rp;
	ssize_t n;
	int fd, pp = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		note_fds(j);
		return -1;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* comm may hold ')' and spaces: parse after the last ')'. */
	if ((rp = strrchr(buf, ')')) == NULL ||
	    sscanf(rp + 1, " %c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u "
	    "%*u %*d %*d %*d %*d %*d %*d %llu", state, &pp, start) != 3)
		return -1;
	*ppid = (pid_t)pp;
	return 0;
}

/* uid and innermost NSpid from /proc/PID/status. */
static void
status_of(struct ident_job *j, pid_t pid, int *uid, int *nspid)
{
	char path[64], buf[4096], *l;
	ssize_t n;
	int fd;

	*uid = -1;
	*nspid = (int)pid;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		note_fds(j);
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	if ((l = strstr(buf, "\nUid:")) != NULL)
		*uid = atoi(l + 5);
	if ((l = strstr(buf, "\nNSpid:")) != NULL) {
		char *end = strchr(l + 1, '\n'), *sp;
		if (end != NULL)
			*end = '\0';
		/* The last field is the pid in the innermost namespace. */
		if ((sp = strrchr(l, '\t')) != NULL)
			*nspid = atoi(sp + 1);
	}
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/*
 * The executable pid runs, into b: its path (" (deleted)" stripped) and
 * the file's stat, taken before and after the readlink and required to
 * agree, so the path and the identity are of one file. checked_later:
 * the caller's final check stats it again (check_exe_unchanged), so the
 * second stat here is skipped.
 */
static int
exe_read(pid_t pid, struct px_bin *b, bool checked_later)
{
	char path[64], buf[4096];
	struct stat st1, st2;
	ssize_t n;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st1) == -1 ||
	    (n = readlink(path, buf, sizeof(buf) - 1)) <= 0)
		return -1;
	if (checked_later)
		st2 = st1;
	else if (stat(path, &st2) == -1 || !same_file(&st1, &st2))
		return -1;
	buf[n] = '\0';
	len = (size_t)n;
	if (len > 10 && strcmp(buf + len - 10, " (deleted)") == 0)
		buf[len - 10] = '\0';
	if ((b->path = strdup(buf)) == NULL)
		return -1;
	b->pid = pid;
	b->st = st2;
	b->have_st = true;
	return 0;
}

/* Is pid in the sandbox's pid namespace (when that is known)? */
static bool
in_sandbox_ns(const struct ident_job *j, pid_t pid)
{
	char path[64];
	struct stat st;

	if (j->pidns_ino == 0)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)pid);
	return stat(path, &st) == 0 && st.st_dev == j->pidns_dev &&
	    st.st_ino == j->pidns_ino;
}

static int
pin(struct ident_job *j, pid_t pid)
{
	int fd;

	if (j->npidfds == MAX_PINS)
		return -1;
	if ((fd = pidfd_open(pid)) < 0) {
		note_fds(j);
		return -1;
	}
	j->pidfds[j->npidfds++] = fd;
	return fd;
}

static void
unpin_all(struct ident_job *j)
{
	for (size_t i = 0; i < j->npidfds; i++)
		close(j->pidfds[i]);
	j->npidfds = 0;
}

/* ---- describing the caller ---- */

static struct px_bin *
new_bin(struct px_identity *id)
{
	struct px_bin *b = &id->bin[id->nbin++];

	memset(b, 0, sizeof(*b));
	b->fd = -1;
	return b;
}

/* Same start time (/proc's clock ticks) and file as the kernel recorded? */
static bool
is_recorded(unsigned long long start, const struct stat *st,
    uint64_t start_ns, uint64_t ino, uint32_t dev)
{
	long hz = sysconf(_SC_CLK_TCK);

	return hz > 0 && start == start_ns / (1000000000ULL /
	    (unsigned long long)hz) && st->st_ino == ino &&
	    major(st->st_dev) == MOAT_ATTRIB_DEV_MAJOR(dev) &&
	    minor(st->st_dev) == MOAT_ATTRIB_DEV_MINOR(dev);
}

/*
 * The parents of the caller: up to the sandbox init, the first parent
 * outside the sandbox (its pid namespace, else its process list), or
 * PX_MAX_ANCESTORS. Each is pinned while read; one that exits meanwhile
 * ends the chain (a shorter chain grants less, never more). With the
 * kernel's record (rec), only the parents it recorded as having spawned
 * the caller running what they run (common/attrib.h), each still that
 * process running that file: a process that exec'd an allowed binary
 * after it forked the caller, or since the connect, ends the chain.
 */
static void
ancestors(struct ident_job *j, pid_t caller, pid_t ppid,
    const struct moat_attrib *rec, struct px_identity *id)
{
	pid_t cur = ppid;

	if (caller == j->init_pid || caller <= 1)
		return;
	while (id->nbin < 1 + PX_MAX_ANCESTORS && cur > 0) {
		const struct moat_attrib_parent *rp = NULL;
		unsigned long long start;
		struct px_bin *b;
		pid_t next;
		char st;
		int fd;

		if (j->max_parents > 0 && id->nbin > j->max_parents) {
			j->too_deep = true;
			return;
		}
		if (rec != NULL) {
			if (id->nbin - 1 >= rec->nparents ||
			    id->nbin - 1 >= MOAT_ATTRIB_PARENTS)
				break;
			rp = &rec->parents[id->nbin - 1];
			if ((pid_t)rp->tgid != cur)
				break;
		}
		if (!in_sandbox_ns(j, cur) || (j->scan != NULL &&
		    j->procs_path != NULL && !px_scan_has_pid(j->scan, cur)))
			break;
		if ((fd = pin(j, cur)) < 0 ||
		    proc_stat(j, cur, &st, &next, &start) != 0)
			break;
		b = new_bin(id);
		if (exe_read(cur, b, false) != 0 || !alive(fd) ||
		    (rp != NULL && !is_recorded(start, &b->st, rp->start_ns,
		    rp->exe_ino, rp->exe_dev))) {
			free(b->path);
			id->nbin--;
			break;
		}
		if (cur == j->init_pid || cur <= 1)
			break;
		cur = next;
	}
}

/*
 * pid's exe, uid, pid in the sandbox and parents into id; pid is pinned
 * first (its pidfd is j->pidfds[0]). a, when given, is what the kernel
 * recorded for the socket: pid must be the process that connected it,
 * still running that executable, and its parents are the ones recorded.
 * caller: the final checks (caller_checks[]) will run on it.
 */
static int
describe(struct ident_job *j, pid_t pid, const struct moat_attrib *a,
    bool caller, struct px_identity *id, char *why, size_t whylen)
{
	const struct moat_attrib_task *rec = a != NULL ? &a->connected : NULL;
	unsigned long long start = 0;
	long hz = sysconf(_SC_CLK_TCK);
	struct px_bin *b;
	pid_t ppid = 0;
	char st = '?';
	int fd;

	memset(id, 0, sizeof(*id));
	id->pid = pid;
	if ((fd = pin(j, pid)) < 0 ||
	    proc_stat(j, pid, &st, &ppid, &start) != 0 ||
	    (rec != NULL && hz > 0 &&
	    start != rec->start_ns / (1000000000ULL / (unsigned long long)hz))) {
		snprintf(why, whylen, "the process that %s the socket has "
		    "exited", rec != NULL ? "connected" : "holds");
		return MOAT_ERR_NOTFOUND;
	}
	b = new_bin(id);
	if (exe_read(pid, b, caller) != 0) {
		id->nbin = 0;
		snprintf(why, whylen, "cannot read the calling process's "
		    "executable%s", st == 'Z' ? " (its main thread has exited: "
		    "a zombie thread group leader)" : "");
		return MOAT_ERR_DENIED;
	}
	if (rec != NULL && (b->st.st_ino != rec->exe_ino ||
	    major(b->st.st_dev) != MOAT_ATTRIB_DEV_MAJOR(rec->exe_dev) ||
	    minor(b->st.st_dev) != MOAT_ATTRIB_DEV_MINOR(rec->exe_dev))) {
		snprintf(why, whylen, "the calling process now runs %s, not "
		    "the executable it connected with (exec after connect)",
		    b->path);
		return MOAT_ERR_DENIED;
	}
	/* The kernel's record has them; only the scan reads them here. */
	if (rec != NULL && rec->nspid != 0) {
		id->uid = (int)rec->uid;
		id->nspid = (int)rec->nspid;
	} else {
		status_of(j, pid, &id->uid, &id->nspid);
	}
	ancestors(j, pid, ppid, a, id);
	for (size_t i = 1; i < id->nbin; i++)
		id->anc[i - 1] = id->bin[i].path;
	return MOAT_OK;
}

/*
 * Checks on a described caller, run on the worker while it is pinned
 * (c->pidfd): each may read /proc/<c->pid>/...; the caller is checked
 * again after all of them (same process, same executable), so what they
 * read belongs to the process that is decided on. A check returns 0, or
 * MOAT_ERR_DENIED with why filled: the connection is denied, stage
 * "identity".
 */
struct px_caller_check {
	const char *name;
	int (*run)(const struct px_caller *c, char *why, size_t whylen);
};

/* The caller still runs the file it was described with. */
static int
check_exe_unchanged(const struct px_caller *c, char *why, size_t whylen)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)c->pid);
	if (stat(path, &st) == 0 && same_file(&st, &c->id->bin[0].st) &&
	    alive(c->pidfd))
		return MOAT_OK;
	snprintf(why, whylen, "the calling process exited or ran another "
	    "executable while it was identified");
	return MOAT_ERR_DENIED;
}

/*
 * Code loaded into the caller does not inherit its rights: every
 * executable mapping from a read-only mount (maps.c). A sandbox without
 * an init has no filesystem view of its own to judge by (only the unit
 * tests' host callers); a bypass is denied anyway.
 */
static int
check_code(const struct px_caller *c, char *why, size_t whylen)
{
	int r;

	if (c->bypass || c->init_pid <= 0)
		return MOAT_OK;
	r = px_maps_check(c->pid, c->pidfd, c->id->bin[0].path,
	    c->id->bin[0].st.st_ino, c->budget, why, whylen);
	if (r == MOAT_ERR_NOMEM)
		snprintf(why, whylen, "out of memory");
	return r == MOAT_OK || r == MOAT_ERR_AGAIN ? r : MOAT_ERR_DENIED;
}

static const struct px_caller_check caller_checks[] = {
	{ "code from read-only mounts", check_code },
	/* Last: the re-check that covers every check above it. */
	{ "exe unchanged", check_exe_unchanged },
};

static int
run_checks(struct ident_job *j, char *why, size_t whylen)
{
	struct px_caller c = { j->id.pid, j->pidfds[0], &j->id, j->init_pid,
	    j->bypass, &j->budget };
	int r;

	for (size_t i = 0; i < MOAT_NELEM(caller_checks); i++)
		if ((r = caller_checks[i].run(&c, why, whylen)) != 0)
			return r;
	return MOAT_OK;
}

size_t
px_code_upto(const struct moat_policy *pol, const struct px_identity *id,
    const char *host, uint16_t port)
{
	struct moat_caller k = { id->bin[0].path, id->anc, 0, NULL, 0 };
	struct moat_decision d;
	size_t upto;

	if (pol == NULL || id->nbin < 2)
		return 0;
	k.nancestors = id->nbin - 1;
	if (moat_policy_decide(pol, &k, host, port, &d) != MOAT_OK ||
	    !d.allow || d.audit)
		return 0;
	for (upto = 0; upto + 1 < id->nbin; upto++) {
		k.nancestors = upto;
		if (moat_policy_decide(pol, &k, host, port, &d) == MOAT_OK &&
		    d.allow && !d.audit)
			break;
	}
	return upto;
}

/*
 * The parents that grant what the caller asks for (px_code_upto) run
 * code from read-only mounts only, each pinned (j->pidfds[i] is
 * bin[i]'s) while its files are read. The policy is kept with the
 * identity (code_pol): the decision uses this result under it.
 */
static int
check_parents_code(struct ident_job *j, char *why, size_t whylen)
{
	size_t upto;
	int r;

	if (j->pol == NULL || j->bypass || j->init_pid <= 0)
		return MOAT_OK;
	upto = px_code_upto(j->pol, &j->id, j->host, j->port);
	for (size_t i = 1; i <= upto; i++) {
		r = px_maps_check(j->id.bin[i].pid, i < j->npidfds ?
		    j->pidfds[i] : -1, j->id.bin[i].path,
		    j->id.bin[i].st.st_ino, &j->budget, why, whylen);
		if (r == MOAT_ERR_NOMEM)
			snprintf(why, whylen, "out of memory");
		if (r != MOAT_OK)
			return r == MOAT_ERR_AGAIN ? r : MOAT_ERR_DENIED;
	}
	j->id.code_pol = moat_policy_ref(j->pol);
	return MOAT_OK;
}

/*
 * Each binary is hashed from /proc/PID/exe (the running file, even if
 * the path now names another), unless the cache knows its fingerprint;
 * the file opened must be the one described.
 */
static int
open_bins(struct ident_job *j, char *why, size_t whylen)
{
	for (size_t i = 0; i < j->id.nbin; i++) {
		struct px_bin *b = &j->id.bin[i];
		char path[64];
		struct stat st;

		if (px_hasher_cached(j->hasher, &b->st, b->sha))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)b->pid);
		/* Unreadable: its sha stays empty and the caller is denied. */
		if ((b->fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
			note_fds(j);
			continue;
		}
		if (fstat(b->fd, &st) == -1 || !same_file(&st, &b->st) ||
		    !alive(j->pidfds[i < j->npidfds ? i : 0])) {
			snprintf(why, whylen, "%s changed while it was "
			    "identified", b->path);
			return MOAT_ERR_DENIED;
		}
		/* The hash is cached under what is read, not what was stat'ed. */
		b->st = st;
	}
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

/* The kernel's record: the caller is the task that connected. */
static int
from_record(struct ident_job *j)
{
	const struct moat_attrib *a = &j->rec;
	char *why = j->why;
	size_t len = sizeof(j->why);

	if ((a->flags & (MOAT_ATTRIB_CREATED | MOAT_ATTRIB_CONNECTED)) !=
	    (MOAT_ATTRIB_CREATED | MOAT_ATTRIB_CONNECTED)) {
		snprintf(why, len, "the socket was not created inside the "
		    "sandbox");
		return MOAT_ERR_DENIED;
	}
	if (j->cgroup_id != 0 && (a->connected.cgroup_id != j->cgroup_id ||
	    a->created.cgroup_id != j->cgroup_id)) {
		snprintf(why, len, "the socket was %s by a process outside the "
		    "sandbox", a->connected.cgroup_id != j->cgroup_id ?
		    "connected" : "created");
		return MOAT_ERR_DENIED;
	}
	/* A socket made by one program and handed to another (SCM_RIGHTS). */
	if (a->created.exe_dev != a->connected.exe_dev ||
	    a->created.exe_ino != a->connected.exe_ino) {
		snprintf(why, len, "the socket was created by another "
		    "executable than the one that connected it");
		return MOAT_ERR_DENIED;
	}
	return describe(j, (pid_t)a->connected.tgid, a, true,
	    &j->id, why, len);
}

/* The /proc fallback: every holder of the inode, and all must agree. */
static int
from_owners(struct ident_job *j)
{
	const pid_t *owners;
	size_t nown = px_scan_owners(j->scan, &owners);
	struct px_identity other;
	pid_t first;
	int r;

	if (nown == 0) {
		snprintf(j->why, sizeof(j->why), "no process of the sandbox "
		    "holds the socket");
		return MOAT_ERR_NOTFOUND;
	}
	/* The lowest pid speaks for owners that agree. */
	first = owners[0];
	for (size_t i = 1; i < nown; i++)
		if (owners[i] < first)
			first = owners[i];
	if ((r = describe(j, first, NULL, true, &j->id, j->why,
	    sizeof(j->why))) != 0)
		return r;
	if (!px_scan_holds(first, j->inode)) {
		note_fds(j);
		snprintf(j->why, sizeof(j->why), "the process holding the "
		    "socket let go of it while it was identified");
		return MOAT_ERR_DENIED;
	}
	for (size_t i = 0; i < nown; i++) {
		size_t pinned = j->npidfds;
		bool same;

		if (owners[i] == first)
			continue;
		/* An owner that cannot be described could be anyone. */
		if (describe(j, owners[i], NULL, false, &other, j->why,
		    sizeof(j->why)) != 0) {
			px_identity_clear(&other);
			snprintf(j->why, sizeof(j->why), "ambiguous shared "
			    "socket ownership: the socket is also held by a "
			    "process that cannot be identified");
			return MOAT_ERR_DENIED;
		}
		same = same_caller(&j->id, &other);
		if (!same)
			snprintf(j->why, sizeof(j->why), "ambiguous shared "
			    "socket ownership: the socket is held by %s and by "
			    "%s", j->id.bin[0].path, other.bin[0].path);
		px_identity_clear(&other);
		/* Only the first owner's pins are checked again at the end. */
		while (j->npidfds > pinned)
			close(j->pidfds[--j->npidfds]);
		if (!same)
			return MOAT_ERR_DENIED;
	}
	return MOAT_OK;
}

/*
 * The end of a job: an open that found no free fd anywhere on the way
 * voids the verdict (a chain cut short, a holder skipped, a binary left
 * unhashed would decide about the wrong caller): PX_NOFD instead.
 */
static int
ident_end(struct ident_job *j, int r)
{
	unpin_all(j);
	if (j->nofd || r == PX_NOFD) {
		snprintf(j->why, sizeof(j->why), "the proxy is out of file "
		    "descriptors");
		r = PX_NOFD;
	}
	if (r != 0)
		px_identity_clear(&j->id);
	j->rc = r;
	return PX_WORK_DONE;
}

static int
ident_run(struct px_work *w)
{
	struct ident_job *j = (struct ident_job *)w;
	struct px_sock so;
	int r;

	if (j->need_find) {
		j->need_find = false;
		if ((r = px_proc_find(j->init_pid, (struct sockaddr *)&j->src,
		    (struct sockaddr *)&j->dst, j->bypass ? ~0u : TCP_CONNECTED,
		    &so, j->why, sizeof(j->why))) != 0)
			return ident_end(j, r);
		j->inode = so.inode;
	}
	if (!j->attributed) {
		if (j->scan == NULL && (r = px_scan_new(j->procs_path, j->inode,
		    &j->scan)) != 0) {
			snprintf(j->why, sizeof(j->why), "cannot list the "
			    "sandbox's processes");
			return ident_end(j, r);
		}
		r = px_scan_step(j->scan, j->why, sizeof(j->why));
		if (r == MOAT_ERR_AGAIN)
			return PX_WORK_AGAIN;
		if (r == 0)
			r = from_owners(j);
	} else {
		r = from_record(j);
	}
	/* On the loop, a long chain: a worker does all of it. */
	if (r == 0 && j->too_deep)
		r = MOAT_ERR_AGAIN;
	if (r == 0 && !j->bypass)
		r = open_bins(j, j->why, sizeof(j->why));
	j->budget = j->max_parents > 0 ? PX_MAPS_LOOP_MAX : PX_MAPS_ANY;
	if (r == 0)
		r = run_checks(j, j->why, sizeof(j->why));
	if (r == 0)
		r = check_parents_code(j, j->why, sizeof(j->why));
	/* On the loop, and more to read than it may: a worker reads it. */
	if (r == MOAT_ERR_AGAIN && j->max_parents > 0) {
		j->too_deep = true;
		r = 0;
	}
	return ident_end(j, r);
}

static void
job_free(struct ident_job *j)
{
	unpin_all(j);
	px_identity_clear(&j->id);
	px_scan_free(j->scan);
	moat_policy_free(j->pol);
	free(j->procs_path);
	free(j);
}

static void
ident_done(struct px_work *w)
{
	struct ident_job *j = (struct ident_job *)w;

	if (!atomic_load(&w->cancelled))
		j->cb(j->arg, j->rc, j->why, &j->id);
	job_free(j);
}

void
px_identity_move(struct px_identity *dst, struct px_identity *src)
{
	memcpy(dst, src, sizeof(*dst));
	for (size_t i = 1; i < dst->nbin; i++)
		dst->anc[i - 1] = dst->bin[i].path;
	memset(src, 0, sizeof(*src));
}

void
px_identity_clear(struct px_identity *id)
{
	for (size_t i = 0; i < id->nbin; i++) {
		free(id->bin[i].path);
		moat_close(id->bin[i].fd);
		px_work_cancel(id->bin[i].job);
	}
	moat_policy_free(id->code_pol);
	memset(id, 0, sizeof(*id));
}

/*
 * The kernel's record of the connection local=src -> remote=dst, keyed
 * by its 4-tuple in map fd: true with *rec filled, or false.
 */
static bool
tuple_record(int fd, const struct sockaddr *src, const struct sockaddr *dst,
    struct moat_attrib *rec)
{
	struct moat_attrib_tuple key;

	memset(&key, 0, sizeof(key));
	key.family = src->sa_family;
	key.sport = px_addr_port(src);
	key.dport = px_addr_port(dst);
	if (src->sa_family == AF_INET) {
		memcpy(key.src, &((const struct sockaddr_in *)src)->sin_addr, 4);
		memcpy(key.dst, &((const struct sockaddr_in *)dst)->sin_addr, 4);
	} else {
		memcpy(key.src, &((const struct sockaddr_in6 *)src)->sin6_addr,
		    16);
		memcpy(key.dst, &((const struct sockaddr_in6 *)dst)->sin6_addr,
		    16);
	}
	return bpf_map_lookup_elem(fd, &key, rec) == 0;
}

/*
 * The kernel's record for the connection, when the sandbox has BPF: for
 * a client of the proxy, the one its SYN left in the connection map,
 * kept until its socket closes (no sock_diag: the 4-tuple is exact); for
 * a bypass, the rejected SYN's (MOAT_ERR_NOTFOUND: none).
 */
static int
lookup_record(struct px_sandbox *sb, struct ident_job *j, char *why,
    size_t whylen)
{
	const struct sockaddr *src = (const struct sockaddr *)&j->src;
	const struct sockaddr *dst = (const struct sockaddr *)&j->dst;

	if (!j->bypass) {
		if (tuple_record(sb->attrib_fd, src, dst, &j->rec)) {
			j->attributed = true;
			return MOAT_OK;
		}
		snprintf(why, whylen, "no record of the socket's creation "
		    "and connection (made outside the sandbox, or before "
		    "moat watched it)");
		return MOAT_ERR_DENIED;
	}
	if (sb->tuple_fd < 0 || !tuple_record(sb->tuple_fd, src, dst, &j->rec))
		return MOAT_ERR_NOTFOUND;
	j->attributed = true;
	return MOAT_OK;
}

static socklen_t
sa_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) :
	    sizeof(struct sockaddr_in6);
}

/*
 * A recorded caller with a short parent chain, on the loop: PX_IDENT_NOW
 * with *now filled, an identity failure with why, or MOAT_OK when the
 * chain is too long or its /proc files are longer than the loop may read
 * (PX_MAPS_LOOP_MAX): j is reset for a worker.
 */
static int
try_inline(struct ident_job *j, struct px_identity *now, char *why,
    size_t whylen)
{
	j->max_parents = INLINE_PARENTS;
	ident_run(&j->w);
	j->max_parents = 0;
	if (j->too_deep) {
		j->too_deep = false;
		j->nofd = false;
		j->rc = 0;
		j->why[0] = '\0';
		px_identity_clear(&j->id);
		return MOAT_OK;
	}
	if (j->rc != 0) {
		snprintf(why, whylen, "%s", j->why);
		return j->rc;
	}
	px_identity_move(now, &j->id);
	return PX_IDENT_NOW;
}

int
px_identity_start(struct px_sandbox *sb, const struct sockaddr *src,
    const struct sockaddr *dst, bool bypass, const char *host,
    uint16_t port, px_identity_cb *cb, void *arg, struct px_work **out,
    struct px_identity *now, char *why, size_t whylen)
{
	struct moat_proxy *p = sb->p;
	struct px_sock so = { 0, 0 };
	struct ident_job *j;
	int r;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		snprintf(why, whylen, "out of memory");
		return MOAT_ERR_NOMEM;
	}
	px_work_init(&j->w, ident_run, ident_done, sb);
	j->bypass = bypass;
	memcpy(&j->src, src, sa_len(src));
	memcpy(&j->dst, dst, sa_len(dst));
	j->cgroup_id = sb->cgroup_id;
	j->init_pid = sb->init_pid;
	j->pidns_dev = sb->pidns_dev;
	j->pidns_ino = sb->pidns_ino;
	j->hasher = p->hasher;
	j->cb = cb;
	j->arg = arg;
	if (!bypass && host != NULL && sb->policy != NULL &&
	    moat_host_normalize(host, j->host, sizeof(j->host))) {
		j->pol = moat_policy_ref(sb->policy);
		j->port = port;
	}
	if (sb->procs_path != NULL &&
	    (j->procs_path = strdup(sb->procs_path)) == NULL) {
		r = MOAT_ERR_NOMEM;
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	/* A bypass's socket may be gone: the tuple record comes first. */
	if (bypass && sb->attrib_fd >= 0 &&
	    lookup_record(sb, j, why, whylen) == 0)
		goto submit;
	if (!bypass && sb->attrib_fd >= 0) {
		if ((r = lookup_record(sb, j, why, whylen)) != 0)
			goto fail;
		goto submit;
	}
	if (sb->diag_fd < 0) {
		j->need_find = true;
		goto submit;
	}
	if ((r = px_diag_find(sb->diag_fd, src, dst, bypass ? ~0u :
	    TCP_CONNECTED, &so, why, whylen)) != 0)
		goto fail;
	j->inode = so.inode;
submit:
	if (j->attributed && (r = try_inline(j, now, why, whylen)) != 0)
		goto fail;
	if ((r = px_pool_submit(p->ident_pool, &j->w)) != 0) {
		snprintf(why, whylen, r == MOAT_ERR_AGAIN ? "too many "
		    "connections of this sandbox are being identified" :
		    "out of memory");
		goto fail;
	}
	*out = &j->w;
	return MOAT_OK;
fail:
	/* PX_IDENT_NOW included: the result is in *now. */
	job_free(j);
	return r;
}

int
px_identity_pool_new(struct moat_loop *l, struct px_pool **out,
    struct moat_cause *cause)
{
	return px_pool_new(l, IDENT_THREADS, IDENT_QUEUE, "identity",
	    out, cause);
}
