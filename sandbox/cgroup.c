/*
 * The sandbox's cgroup: one interface, two backends chosen at runtime
 * (notes-kernel.md section 2).
 *
 *   pure v2  a cgroup2 mount offers memory, pids and cpu: one group
 *            <v2>/moat/NAME with memory.max, memory.swap.max=0,
 *            memory.oom.group=1, pids.max, cpu.max.
 *   hybrid   the controllers live on v1 hierarchies: the limits go to
 *            <memory|pids|cpu>/moat/NAME, and a controller-less group
 *            <v2>/moat/NAME (when a cgroup2 mount exists) gives
 *            cgroup.kill and cgroup.events for teardown.
 *
 * How a process joins without an RCU grace period: moving a process by
 * pid (cgroup.procs) takes the global cgroup_threadgroup_rwsem for
 * writing, which waits for a grace period: 10-40 ms on this kernel, per
 * sandbox. Instead a process is born in the v2 group (clone3 with
 * CLONE_INTO_CGROUP) and moves its own single thread into each v1 group
 * by writing "0" to `tasks`, which the kernel does without that lock.
 * The files are opened at create, so a forked holder needs no paths.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "policies/policy.h"
#include "sandbox/internal.h"

#define CG_MAX 4
#define CG_WAIT_MS 3000

enum cg_mode {
	CG_V2,
	CG_HYBRID,
};

struct sandbox_cgroup {
	enum cg_mode mode;
	size_t n;
	char *dir[CG_MAX];	/* leaf dirs, created by us */
	int procs_fd[CG_MAX];	/* O_WRONLY: v1 tasks, v2 cgroup.procs */
	int v2;			/* index of the cgroup2 leaf, or -1 */
	int v2_dirfd;		/* the v2 leaf, for CLONE_INTO_CGROUP */
	char *procs_path;	/* the listing for moat_sandbox_procs_path */
};

struct cg_mounts {
	char v2[256];
	char memory[256];
	char pids[256];
	char cpu[256];
};

static bool
has_word(const char *list, const char *w, const char *sep)
{
	size_t n = strlen(w);
	const char *p = list;

	while ((p = strstr(p, w)) != NULL) {
		if ((p == list || strchr(sep, p[-1]) != NULL) &&
		    (p[n] == '\0' || strchr(sep, p[n]) != NULL))
			return true;
		p += n;
	}
	return false;
}

/* Find the cgroup2 mount and the v1 memory, pids and cpu mounts. */
static int
find_mounts(struct cg_mounts *m, struct moat_cause *cause)
{
	char *buf = NULL, *line, *save = NULL;
	int r;

	memset(m, 0, sizeof(*m));
	if ((r = moat_read_file("/proc/self/mountinfo", 1 << 20, &buf, NULL,
	    cause)) != 0)
		return r;
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		char mnt[256], fstype[32], opts[256];
		const char *dash = strstr(line, " - ");

		if (dash == NULL || sscanf(line, "%*s %*s %*s %*s %255s", mnt) != 1 ||
		    sscanf(dash, " - %31s %*s %255s", fstype, opts) != 2)
			continue;
		if (strcmp(fstype, "cgroup2") == 0 && m->v2[0] == '\0')
			snprintf(m->v2, sizeof(m->v2), "%s", mnt);
		if (strcmp(fstype, "cgroup") != 0)
			continue;
		if (has_word(opts, "memory", ",") && m->memory[0] == '\0')
			snprintf(m->memory, sizeof(m->memory), "%s", mnt);
		if (has_word(opts, "pids", ",") && m->pids[0] == '\0')
			snprintf(m->pids, sizeof(m->pids), "%s", mnt);
		if (has_word(opts, "cpu", ",") && m->cpu[0] == '\0')
			snprintf(m->cpu, sizeof(m->cpu), "%s", mnt);
	}
	free(buf);
	return 0;
}

static bool
v2_has_controllers(const char *v2)
{
	char path[300], *s = NULL;
	bool ok;

	snprintf(path, sizeof(path), "%s/cgroup.controllers", v2);
	if (moat_read_file(path, 4096, &s, NULL, NULL) != 0)
		return false;
	ok = has_word(s, "memory", " \n") && has_word(s, "pids", " \n") &&
	    has_word(s, "cpu", " \n");
	free(s);
	return ok;
}

static int
knob(const char *dir, const char *file, const char *val, bool optional,
    struct moat_cause *cause)
{
	char path[1024];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >=
	    sizeof(path)) {
		moat_cause_set(cause, "cgroup path too long: %s", dir);
		return MOAT_ERR_INVALID;
	}
	if (moat_write_file(path, val, cause) == 0)
		return 0;
	if (optional && errno == ENOENT)
		return 0;
	return MOAT_ERR_SYSTEM;
}

/*
 * Record the leaf dir and open what joining needs: its tasks (v1) or
 * cgroup.procs (v2) file, and the v2 dir for CLONE_INTO_CGROUP. A new
 * leaf (made) is removed again when it cannot be recorded.
 */
static int
leaf_add(struct sandbox_cgroup *cg, const char *dir, bool v2, bool made,
    struct moat_cause *cause)
{
	char path[600];

	if ((cg->dir[cg->n] = strdup(dir)) == NULL) {
		if (made)
			rmdir(dir);
		return MOAT_ERR_NOMEM;
	}
	snprintf(path, sizeof(path), "%s/%s", cg->dir[cg->n],
	    v2 ? "cgroup.procs" : "tasks");
	if (v2) {
		cg->v2 = (int)cg->n;
		cg->v2_dirfd = open(cg->dir[cg->n], O_DIRECTORY | O_CLOEXEC);
	}
	cg->procs_fd[cg->n] = open(path, O_WRONLY | O_CLOEXEC);
	cg->n++;
	if (cg->procs_fd[cg->n - 1] < 0 || (v2 && cg->v2_dirfd < 0)) {
		moat_cause_errno(cause, "open %s", path);
		return MOAT_ERR_SYSTEM;
	}
	return 0;
}

/* mkdir the leaf; a leftover empty leaf (a crash) is removed first. */
static int
make_leaf(struct sandbox_cgroup *cg, const char *base, const char *name,
    bool v2, struct moat_cause *cause)
{
	char path[512];
	int r;

	snprintf(path, sizeof(path), "%s/moat", base);
	if ((r = moat_mkdir_p(path, 0755, cause)) != 0)
		return r;
	snprintf(path, sizeof(path), "%s/moat/%s", base, name);
	if (mkdir(path, 0755) != 0 && (errno != EEXIST || rmdir(path) != 0 ||
	    mkdir(path, 0755) != 0)) {
		if (errno == EBUSY || errno == EEXIST) {
			moat_cause_set(cause, "cgroup %s is in use (is a "
			    "sandbox named %s running?)", path, name);
			return MOAT_ERR_EXISTS;
		}
		moat_cause_errno(cause, "mkdir %s", path);
		return MOAT_ERR_SYSTEM;
	}
	return leaf_add(cg, path, v2, true, cause);
}

static int
limits_v2(const char *dir, const struct moat_resources *res,
    struct moat_cause *cause)
{
	char v[64];
	int r = 0;

	if (res->memory_mb > 0) {
		snprintf(v, sizeof(v), "%llu",
		    (unsigned long long)res->memory_mb << 20);
		if ((r = knob(dir, "memory.max", v, false, cause)) != 0 ||
		    (r = knob(dir, "memory.swap.max", "0", true, cause)) != 0)
			return r;
	}
	if ((r = knob(dir, "memory.oom.group", "1", true, cause)) != 0)
		return r;
	if (res->pids_max > 0) {
		snprintf(v, sizeof(v), "%llu",
		    (unsigned long long)res->pids_max);
		if ((r = knob(dir, "pids.max", v, false, cause)) != 0)
			return r;
	}
	if (res->cpu_percent > 0) {
		snprintf(v, sizeof(v), "%u 100000", res->cpu_percent * 1000);
		r = knob(dir, "cpu.max", v, false, cause);
	}
	return r;
}

static int
limits_v1(const struct cg_mounts *m, const char *name,
    const struct moat_resources *res, struct moat_cause *cause)
{
	char dir[512], v[64];
	int r = 0;

	if (res->memory_mb > 0) {
		snprintf(dir, sizeof(dir), "%s/moat/%s", m->memory, name);
		snprintf(v, sizeof(v), "%llu",
		    (unsigned long long)res->memory_mb << 20);
		/* The limit first: memsw may never be below it. */
		if ((r = knob(dir, "memory.limit_in_bytes", v, false,
		    cause)) != 0 ||
		    (r = knob(dir, "memory.memsw.limit_in_bytes", v, true,
		    cause)) != 0)
			return r;
	}
	if (res->pids_max > 0) {
		snprintf(dir, sizeof(dir), "%s/moat/%s", m->pids, name);
		snprintf(v, sizeof(v), "%llu",
		    (unsigned long long)res->pids_max);
		if ((r = knob(dir, "pids.max", v, false, cause)) != 0)
			return r;
	}
	if (res->cpu_percent > 0) {
		snprintf(dir, sizeof(dir), "%s/moat/%s", m->cpu, name);
		snprintf(v, sizeof(v), "%u", res->cpu_percent * 1000);
		if ((r = knob(dir, "cpu.cfs_period_us", "100000", false,
		    cause)) != 0 ||
		    (r = knob(dir, "cpu.cfs_quota_us", v, false, cause)) != 0)
			return r;
	}
	return r;
}

static int
create_v2(struct sandbox_cgroup *cg, const struct cg_mounts *m,
    const char *name, const struct moat_resources *res,
    struct moat_cause *cause)
{
	char dir[300];
	int r;

	/* Controllers must be enabled on the way down to the leaf. */
	if ((r = knob(m->v2, "cgroup.subtree_control", "+memory +pids +cpu",
	    false, cause)) != 0)
		return r;
	snprintf(dir, sizeof(dir), "%s/moat", m->v2);
	if ((r = moat_mkdir_p(dir, 0755, cause)) != 0 ||
	    (r = knob(dir, "cgroup.subtree_control", "+memory +pids +cpu",
	    false, cause)) != 0)
		return r;
	if ((r = make_leaf(cg, m->v2, name, true, cause)) != 0)
		return r;
	return limits_v2(cg->dir[0], res, cause);
}

static int
create_hybrid(struct sandbox_cgroup *cg, const struct cg_mounts *m,
    const char *name, const struct moat_resources *res,
    struct moat_cause *cause)
{
	const char *v1[] = { m->memory, m->pids, m->cpu };
	int r;

	if (m->v2[0] != '\0' &&
	    (r = make_leaf(cg, m->v2, name, true, cause)) != 0)
		return r;
	for (size_t i = 0; i < MOAT_NELEM(v1); i++) {
		if (v1[i][0] == '\0')
			continue;
		if ((r = make_leaf(cg, v1[i], name, false, cause)) != 0)
			return r;
	}
	if ((res->memory_mb > 0 && m->memory[0] == '\0') ||
	    (res->pids_max > 0 && m->pids[0] == '\0') ||
	    (res->cpu_percent > 0 && m->cpu[0] == '\0')) {
		moat_cause_set(cause, "cgroup: a resource limit is set but "
		    "its controller (memory, pids or cpu) is not mounted");
		return MOAT_ERR_UNSUPPORTED;
	}
	return limits_v1(m, name, res, cause);
}

static struct sandbox_cgroup *
cg_alloc(void)
{
	struct sandbox_cgroup *cg = calloc(1, sizeof(*cg));

	if (cg == NULL)
		return NULL;
	cg->v2 = -1;
	cg->v2_dirfd = -1;
	for (size_t i = 0; i < CG_MAX; i++)
		cg->procs_fd[i] = -1;
	return cg;
}

/* Every leaf lists every member; the v2 one comes first. */
static int
cg_procs_path(struct sandbox_cgroup *cg)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dir[0]);
	return (cg->procs_path = strdup(path)) == NULL ? MOAT_ERR_NOMEM : 0;
}

int
sandbox_cgroup_create(const char *name, const struct moat_resources *res,
    struct sandbox_cgroup **out, struct moat_cause *cause)
{
	struct sandbox_cgroup *cg = NULL;
	struct cg_mounts m;
	int r;

	if ((r = find_mounts(&m, cause)) != 0)
		return r;
	if ((cg = cg_alloc()) == NULL)
		return MOAT_ERR_NOMEM;
	if (m.v2[0] != '\0' && v2_has_controllers(m.v2)) {
		cg->mode = CG_V2;
		r = create_v2(cg, &m, name, res, cause);
	} else if (m.v2[0] != '\0' || m.pids[0] != '\0') {
		cg->mode = CG_HYBRID;
		r = create_hybrid(cg, &m, name, res, cause);
	} else {
		moat_cause_set(cause, "no cgroup hierarchy found (is cgroup2 "
		    "or cgroup v1 mounted under /sys/fs/cgroup?)");
		r = MOAT_ERR_UNSUPPORTED;
	}
	if (r == 0)
		r = cg_procs_path(cg);
	if (r != 0) {
		sandbox_cgroup_destroy(cg);
		return r;
	}
	*out = cg;
	return 0;
}

size_t
sandbox_cgroup_fds(const struct sandbox_cgroup *cg, int *fds, size_t max)
{
	size_t n = 0;

	if (cg == NULL)
		return 0;
	for (size_t i = 0; i < cg->n && n < max; i++)
		if (cg->procs_fd[i] >= 0)
			fds[n++] = cg->procs_fd[i];
	if (cg->v2_dirfd >= 0 && n < max)
		fds[n++] = cg->v2_dirfd;
	return n;
}

/* Open an existing leaf as make_leaf() made it (adoption). */
static int
open_leaf(struct sandbox_cgroup *cg, const char *base, const char *name,
    bool v2, struct moat_cause *cause)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/moat/%s", base, name);
	if (access(path, F_OK) != 0) {
		moat_cause_set(cause, "cgroup %s is missing", path);
		return MOAT_ERR_NOTFOUND;
	}
	return leaf_add(cg, path, v2, false, cause);
}

int
sandbox_cgroup_open(const char *name, struct sandbox_cgroup **out,
    struct moat_cause *cause)
{
	struct sandbox_cgroup *cg = NULL;
	struct cg_mounts m;
	const char *v1[3];
	int r = 0;

	if ((r = find_mounts(&m, cause)) != 0)
		return r;
	if ((cg = cg_alloc()) == NULL)
		return MOAT_ERR_NOMEM;
	/* The same choice as sandbox_cgroup_create, on the same mounts. */
	cg->mode = m.v2[0] != '\0' && v2_has_controllers(m.v2) ? CG_V2 :
	    CG_HYBRID;
	if (m.v2[0] != '\0')
		r = open_leaf(cg, m.v2, name, true, cause);
	v1[0] = m.memory;
	v1[1] = m.pids;
	v1[2] = m.cpu;
	for (size_t i = 0; r == 0 && cg->mode == CG_HYBRID &&
	    i < MOAT_NELEM(v1); i++)
		if (v1[i][0] != '\0')
			r = open_leaf(cg, v1[i], name, false, cause);
	if (r == 0 && cg->n == 0) {
		moat_cause_set(cause, "no cgroup hierarchy found");
		r = MOAT_ERR_NOTFOUND;
	}
	if (r == 0)
		r = cg_procs_path(cg);
	if (r != 0) {
		sandbox_cgroup_release(cg);
		return r;
	}
	*out = cg;
	return 0;
}

bool
sandbox_cgroup_has(const struct sandbox_cgroup *cg, pid_t pid)
{
	char path[600], *s = NULL, *p, *save = NULL;
	char want[32];
	bool found = false;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cg->dir[0]);
	if (moat_read_file(path, 1 << 20, &s, NULL, NULL) != 0)
		return false;
	snprintf(want, sizeof(want), "%d", (int)pid);
	for (p = strtok_r(s, "\n", &save); p != NULL && !found;
	    p = strtok_r(NULL, "\n", &save))
		found = strcmp(p, want) == 0;
	free(s);
	return found;
}

int
sandbox_cgroup_clone_fd(const struct sandbox_cgroup *cg)
{
	return cg != NULL ? cg->v2_dirfd : -1;
}

int
sandbox_cgroup_join(const struct sandbox_cgroup *cg, bool in_v2)
{
	for (size_t i = 0; i < cg->n; i++) {
		if ((int)i == cg->v2 && in_v2)
			continue;
		if (write(cg->procs_fd[i], "0", 1) != 1)
			return errno;
	}
	return 0;
}

bool
sandbox_cgroup_kill(const struct sandbox_cgroup *cg)
{
	if (cg == NULL || cg->v2 < 0)
		return false;
	return knob(cg->dir[cg->v2], "cgroup.kill", "1", false, NULL) == 0;
}

static bool
is_empty(const char *dir)
{
	char path[600], *s = NULL;
	bool empty;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	if (moat_read_file(path, 1 << 16, &s, NULL, NULL) != 0)
		return true;
	empty = s[0] == '\0';
	free(s);
	return empty;
}

/* Poll the v2 group's populated flag, else read the v1 lists. */
static void
wait_empty(const struct sandbox_cgroup *cg)
{
	int64_t deadline = moat_now_ms() + CG_WAIT_MS;
	char path[600], buf[256];
	int fd = -1;

	if (cg->v2 >= 0) {
		snprintf(path, sizeof(path), "%s/cgroup.events",
		    cg->dir[cg->v2]);
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	for (;;) {
		bool empty = true;

		if (fd >= 0) {
			ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

			buf[n > 0 ? n : 0] = '\0';
			empty = strstr(buf, "populated 0") != NULL;
		}
		for (size_t i = 0; empty && i < cg->n; i++)
			empty = is_empty(cg->dir[i]);
		if (empty || moat_now_ms() >= deadline)
			break;
		if (fd >= 0) {
			struct pollfd p = { fd, POLLPRI, 0 };

			poll(&p, 1, 20);
		} else
			usleep(2000);
	}
	if (fd >= 0)
		close(fd);
}

void
sandbox_cgroup_release(struct sandbox_cgroup *cg)
{
	if (cg == NULL)
		return;
	for (size_t i = 0; i < cg->n; i++) {
		moat_close(cg->procs_fd[i]);
		free(cg->dir[i]);
	}
	moat_close(cg->v2_dirfd);
	free(cg->procs_path);
	free(cg);
}

void
sandbox_cgroup_destroy(struct sandbox_cgroup *cg)
{
	if (cg == NULL)
		return;
	wait_empty(cg);
	for (size_t i = cg->n; i-- > 0;) {
		int64_t deadline = moat_now_ms() + 500;

		moat_close(cg->procs_fd[i]);
		cg->procs_fd[i] = -1;
		/* EBUSY right after the last exit settles within ms. */
		while (rmdir(cg->dir[i]) != 0 && errno == EBUSY &&
		    moat_now_ms() < deadline)
			usleep(1000);
		if (access(cg->dir[i], F_OK) == 0)
			log_warn_errno("cgroup %s left behind", cg->dir[i]);
	}
	sandbox_cgroup_release(cg);
}

int
sandbox_cgroup_purge(const char *name, struct moat_cause *cause)
{
	struct cg_mounts m;
	const char *bases[4];
	char dir[600];
	int r;

	if ((r = find_mounts(&m, cause)) != 0)
		return r;
	bases[0] = m.v2;
	bases[1] = m.memory;
	bases[2] = m.pids;
	bases[3] = m.cpu;
	for (size_t i = 0; i < MOAT_NELEM(bases); i++) {
		int64_t deadline = moat_now_ms() + 500;

		if (bases[i][0] == '\0')
			continue;
		snprintf(dir, sizeof(dir), "%s/moat/%s", bases[i], name);
		if (i == 0)
			knob(dir, "cgroup.kill", "1", true, NULL);
		while (rmdir(dir) != 0 && errno == EBUSY &&
		    moat_now_ms() < deadline)
			usleep(2000);
		if (access(dir, F_OK) == 0) {
			moat_cause_errno(cause, "cgroup %s still in use", dir);
			return MOAT_ERR_AGAIN;
		}
	}
	return 0;
}

const char *
sandbox_cgroup_procs_path(const struct sandbox_cgroup *cg)
{
	return cg->procs_path;
}
