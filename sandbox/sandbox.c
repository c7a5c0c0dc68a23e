/*
 * Creating and ending a sandbox (sandbox/sandbox.h).
 *
 * create: make the cgroup; clone the sandbox init into it and into new
 * pid, mnt, uts, ipc and net namespaces; wire its netns (sandbox/net.h)
 * while it builds the filesystem view and reports on the status pipe;
 * then build the Landlock ruleset against that view. The seccomp program
 * is compiled before any of it, so a failure there leaves nothing to
 * undo.
 *
 * free: cgroup.kill (v2) and SIGKILL to init, which takes the whole pid
 * namespace with it; reap init; wait for the cgroups to empty and remove
 * them leaf-first; release the network.
 */
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "policies/policy.h"
#include "sandbox/internal.h"
#include "sandbox/net.h"

#define INIT_EXIT_WAIT_MS 5000

static const char *const ns_names[SB_NS_COUNT] = {
	"net", "uts", "ipc", "mnt", "pid",
};

static bool
name_ok(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > 40 || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

struct moat_sandbox *
sandbox_alloc(const char *name)
{
	struct moat_sandbox *sb = calloc(1, sizeof(*sb));

	if (sb == NULL)
		return NULL;
	sb->creator = getpid();
	sb->init_pid = -1;
	sb->init_pidfd = -1;
	sb->landlock_fd = -1;
	for (int i = 0; i < SB_NS_COUNT; i++)
		sb->nsfd[i] = -1;
	if ((sb->name = strdup(name)) == NULL) {
		free(sb);
		return NULL;
	}
	return sb;
}

/* Reap init, bounded: it exits only once every process of its pid
 * namespace is reaped, some by their parents outside it. */
static void
reap_init(struct moat_sandbox *sb)
{
	int64_t deadline = moat_now_ms() + INIT_EXIT_WAIT_MS;

	for (;;) {
		pid_t r = waitpid(sb->init_pid, NULL, WNOHANG);
		struct pollfd p = { sb->init_pidfd, POLLIN, 0 };
		int e = errno;

		if (r == sb->init_pid || (r < 0 && e != EINTR && e != ECHILD))
			return;
		/* Adopted: not our child; its pidfd says when it is gone. */
		if (r < 0 && e == ECHILD && (sb->init_pidfd < 0 ||
		    poll(&p, 1, 0) != 0))
			return;
		if (moat_now_ms() >= deadline) {
			log_warn("sandbox %s: init %d did not exit (a "
			    "spawned child not reaped by its parent?)",
			    sb->name, (int)sb->init_pid);
			return;
		}
		if (sb->init_pidfd >= 0)
			poll(&p, 1, 50);
		else
			usleep(1000);
	}
}

static void
sandbox_close(struct moat_sandbox *sb, bool mine)
{
	if (mine && sb->init_pid > 0) {
		sandbox_cgroup_kill(sb->cg);
		if (sb->init_pidfd >= 0)
			syscall(SYS_pidfd_send_signal, sb->init_pidfd, SIGKILL,
			    NULL, 0);
		else
			kill(sb->init_pid, SIGKILL);
		reap_init(sb);
	}
	for (int i = 0; i < SB_NS_COUNT; i++)
		moat_close(sb->nsfd[i]);
	moat_close(sb->init_pidfd);
	moat_close(sb->landlock_fd);
	sandbox_attrib_free(sb->attrib);
	if (mine) {
		sandbox_cgroup_destroy(sb->cg);
		moat_net_free(sb->net);
		if (sb->state_path != NULL)
			unlink(sb->state_path);
	} else {
		sandbox_cgroup_release(sb->cg);
		moat_net_release(sb->net);
	}
	free(sb->seccomp.filter);
	for (size_t i = 0; sb->env != NULL && sb->env[i] != NULL; i++)
		free(sb->env[i]);
	free(sb->env);
	free(sb->state_path);
	free(sb->name);
	free(sb);
}

void
moat_sandbox_free(struct moat_sandbox *sb)
{
	if (sb != NULL)
		sandbox_close(sb, sb->creator == getpid());
}

void
moat_sandbox_detach(struct moat_sandbox *sb)
{
	if (sb != NULL)
		sandbox_close(sb, false);
}

int
sandbox_open_ns(struct moat_sandbox *sb, struct moat_cause *cause)
{
	char path[64];

	for (int i = 0; i < SB_NS_COUNT; i++) {
		snprintf(path, sizeof(path), "/proc/%d/ns/%s",
		    (int)sb->init_pid, ns_names[i]);
		if ((sb->nsfd[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
			moat_cause_errno(cause, "open %s", path);
			return MOAT_ERR_SYSTEM;
		}
	}
	if (sb->init_pidfd < 0)
		sb->init_pidfd = (int)syscall(SYS_pidfd_open, sb->init_pid, 0);
	return 0;
}

static int
setup_net(struct moat_sandbox *sb, const struct moat_sandbox_config *c,
    struct moat_cause *cause)
{
	struct moat_net_config nc = {
		.name = sb->name,
		.netns_fd = sb->nsfd[SB_NS_NET],
		.index = c->net_index,
		.pool = c->net_pool,
		.proxy_port = sb->proxy_port,
		.nflog_group = 0,
	};
	int r;

	if ((r = moat_net_setup(&nc, &sb->net, cause)) != 0)
		return r;
	snprintf(sb->host_addr, sizeof(sb->host_addr), "%s",
	    moat_net_host_addr(sb->net));
	sb->proxy_port = moat_net_proxy_port(sb->net);
	return 0;
}

/*
 * Before any process but init runs in the sandbox: every TCP socket of
 * the sandbox gets its record. Optional unless required.
 */
static int
attach_attrib(struct moat_sandbox *sb, enum moat_attrib_mode mode,
    struct moat_cause *cause)
{
	struct moat_cause ac = { { 0 } };
	int r;

	if (mode == MOAT_ATTRIB_OFF) {
		snprintf(sb->attrib_why, sizeof(sb->attrib_why), "turned off");
		return 0;
	}
	r = sandbox_attrib_attach(sandbox_cgroup_clone_fd(sb->cg),
	    sb->host_addr, sb->proxy_port, &sb->attrib, &ac);
	if (r == 0)
		return 0;
	snprintf(sb->attrib_why, sizeof(sb->attrib_why), "%s",
	    moat_cause_str(&ac, r));
	if (mode != MOAT_ATTRIB_REQUIRE)
		return 0;
	moat_cause_set(cause, "sandbox %s: caller attribution: %s", sb->name,
	    sb->attrib_why);
	return r;
}

/*
 * Did init write why it failed (and exit)? Only what is already in the
 * pipe: a live init is still building its view. true: cause says it.
 */
static bool
init_failed(struct moat_sandbox *sb, int status_fd, struct moat_cause *cause)
{
	struct pollfd p = { status_fd, POLLIN, 0 };
	char msg[MOAT_CAUSE_LEN];
	ssize_t n;

	if (poll(&p, 1, 0) != 1 || (p.revents & POLLIN) == 0 ||
	    (n = read(status_fd, msg, sizeof(msg) - 1)) <= 0 ||
	    msg[0] == '\0')
		return false;
	msg[n] = '\0';
	moat_cause_set(cause, "sandbox %s: %s", sb->name, msg);
	return true;
}

/*
 * Parent side after clone: the network and caller attribution (the BPF
 * load overlaps init building its view), then wait for init's view.
 */
static int
wire_init(struct moat_sandbox *sb, const struct moat_sandbox_config *c,
    int status_fd, struct moat_cause *cause)
{
	char path[64], msg[MOAT_CAUSE_LEN];
	size_t len = 0;
	ssize_t n;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj",
	    (int)sb->init_pid);
	if ((r = sandbox_open_ns(sb, cause)) != 0 ||
	    (r = setup_net(sb, c, cause)) != 0 ||
	    (r = moat_write_file(path, SANDBOX_OOM_ADJ, cause)) != 0 ||
	    (r = attach_attrib(sb, c->attrib, cause)) != 0) {
		/*
		 * Init may have failed first (its namespaces went with it):
		 * then its reason is the one to tell, if it wrote one.
		 */
		if (init_failed(sb, status_fd, cause))
			return MOAT_ERR_SYSTEM;
		return r;
	}
	while (len < sizeof(msg) - 1 &&
	    ((n = read(status_fd, msg + len, sizeof(msg) - 1 - len)) > 0 ||
	    (n < 0 && errno == EINTR)))
		len += n > 0 ? (size_t)n : 0;
	msg[len] = '\0';
	if (len == 1 && msg[0] == '\0')
		return 0;
	moat_cause_set(cause, "sandbox %s: %s", sb->name,
	    len > 0 ? msg : "init died during setup");
	return MOAT_ERR_SYSTEM;
}

struct create_in {
	struct moat_resources res;
	char *workspace;	/* realpath */
	char *rootfs;		/* realpath, or "/" */
	char *passwd;
	char *group;
	char **binds;		/* sandbox_fs_policy_binds() */
};

/* The fixed variables: K=V each, K a shell name; copied. */
int
sandbox_copy_env(struct moat_sandbox *sb, const char *const *env,
    struct moat_cause *cause)
{
	size_t n = 0;

	while (env != NULL && env[n] != NULL)
		n++;
	if (n == 0)
		return 0;
	if ((sb->env = calloc(n + 1, sizeof(*sb->env))) == NULL)
		return MOAT_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		size_t k = strcspn(env[i], "=");

		if (k == 0 || env[i][k] != '=' ||
		    strspn(env[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789_") != k) {
			moat_cause_set(cause, "sandbox variable '%.*s' is not "
			    "NAME=VALUE", (int)k, env[i]);
			return MOAT_ERR_INVALID;
		}
		if ((sb->env[i] = strdup(env[i])) == NULL)
			return MOAT_ERR_NOMEM;
	}
	return 0;
}

static int
prepare(struct moat_sandbox *sb, const struct moat_sandbox_config *c,
    struct create_in *in, struct moat_cause *cause)
{
	struct stat st;
	int r;

	if (c->workspace == NULL ||
	    (in->workspace = realpath(c->workspace, NULL)) == NULL ||
	    stat(in->workspace, &st) != 0 || !S_ISDIR(st.st_mode)) {
		moat_cause_set(cause, "workspace %s: not a directory",
		    c->workspace ? c->workspace : "(none)");
		return MOAT_ERR_INVALID;
	}
	if (c->rootfs != NULL &&
	    ((in->rootfs = realpath(c->rootfs, NULL)) == NULL ||
	    stat(in->rootfs, &st) != 0 || !S_ISDIR(st.st_mode))) {
		moat_cause_set(cause, "rootfs %s: not a directory", c->rootfs);
		return MOAT_ERR_INVALID;
	}
	if (in->rootfs == NULL && (in->rootfs = strdup("/")) == NULL)
		return MOAT_ERR_NOMEM;
	memset(&in->res, 0, sizeof(in->res));
	if (c->policy != NULL)
		moat_policy_resources(c->policy, &in->res);
	if (in->res.pids_max == 0)
		in->res.pids_max = SANDBOX_DEFAULT_PIDS;
	sb->proxy_port = c->proxy_port ? c->proxy_port : SANDBOX_DEFAULT_PORT;
	sb->nofile_soft = c->nofile_soft;
	sb->ca = c->ca_cert != NULL && c->ca_bundle != NULL;
	if ((r = sandbox_copy_env(sb, c->env, cause)) != 0)
		return r;
	if ((r = sandbox_user_resolve(c->policy, c->net_index, "/",
	    &sb->user, cause)) != 0 ||
	    (r = sandbox_user_passwd(&sb->user, in->rootfs, &in->passwd,
	    cause)) != 0 ||
	    (r = sandbox_user_group(&sb->user, in->rootfs, &in->group,
	    cause)) != 0 ||
	    (r = sandbox_fs_policy_binds(c->policy, in->rootfs,
	    &in->binds)) != 0)
		return r;
	return sandbox_seccomp_prepare(&sb->seccomp, cause);
}

int
moat_sandbox_create(const struct moat_sandbox_config *c,
    struct moat_sandbox **out, struct moat_cause *cause)
{
	struct create_in in = { .workspace = NULL };
	struct sandbox_init_args ia;
	struct moat_sandbox *sb = NULL;
	int go[2] = { -1, -1 }, st[2] = { -1, -1 }, r;
	char root[64];
	long pid;

	if (!name_ok(c->name)) {
		moat_cause_set(cause, "sandbox name '%s': use 1-40 of "
		    "[a-z0-9-], not starting with '-'", c->name ? c->name : "");
		return MOAT_ERR_INVALID;
	}
	if ((sb = sandbox_alloc(c->name)) == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = prepare(sb, c, &in, cause)) != 0)
		goto out;
	if ((r = sandbox_cgroup_create(sb->name, &in.res, &sb->cg,
	    cause)) != 0)
		goto out;
	if (pipe2(go, O_CLOEXEC) != 0 || pipe2(st, O_CLOEXEC) != 0) {
		moat_cause_errno(cause, "sandbox %s: pipe", sb->name);
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	memset(&ia, 0, sizeof(ia));
	ia.fs.root = in.rootfs;
	ia.fs.workspace = in.workspace;
	ia.fs.hostname = sb->name;
	ia.fs.passwd = in.passwd;
	ia.fs.group = in.group;
	ia.fs.binds = (const char *const *)in.binds;
	ia.fs.tmpfs_mb = in.res.memory_mb;
	ia.fs.ca_cert = c->ca_cert;
	ia.fs.ca_bundle = c->ca_bundle;
	ia.go_fd = go[0];
	ia.status_fd = st[1];
	ia.cg = sb->cg;
	ia.outlive = c->outlive_creator;
	/* Born in the v2 group; it joins the v1 groups itself. */
	pid = sandbox_clone(sb->cg, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS |
	    CLONE_NEWIPC | CLONE_NEWNET, &ia.in_v2);
	if (pid == 0)
		_exit(sandbox_init_main(&ia));
	if (pid < 0) {
		moat_cause_errno(cause, "sandbox %s: clone", sb->name);
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	sb->init_pid = (pid_t)pid;
	close(go[0]);
	close(st[1]);
	go[0] = st[1] = -1;
	if ((r = wire_init(sb, c, st[0], cause)) != 0)
		goto out;
	snprintf(root, sizeof(root), "/proc/%d/root", (int)sb->init_pid);
	if ((r = sandbox_landlock_prepare(root, c->policy, &sb->landlock_fd,
	    cause)) != 0)
		goto out;
	if (c->state_dir != NULL &&
	    (r = sandbox_state_write(sb, c, cause)) != 0)
		goto out;
	*out = sb;
	sb = NULL;
	r = 0;
out:
	for (int i = 0; i < 2; i++) {
		moat_close(go[i]);
		moat_close(st[i]);
	}
	moat_sandbox_free(sb);
	free(in.workspace);
	free(in.rootfs);
	free(in.passwd);
	free(in.group);
	sandbox_fs_binds_free(in.binds);
	return r;
}

int
moat_sandbox_openpty(struct moat_sandbox *sb, int *masterp, int *slavep,
    struct moat_cause *cause)
{
	char path[64];
	int m = -1, s = -1, unlock = 0;

	snprintf(path, sizeof(path), "/proc/%d/root/dev/pts/ptmx",
	    (int)sb->init_pid);
	if ((m = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
		moat_cause_errno(cause, "sandbox %s: open %s", sb->name, path);
		return MOAT_ERR_SYSTEM;
	}
	/* TIOCGPTPEER: the slave without a path lookup anyone could race. */
	if (ioctl(m, TIOCSPTLCK, &unlock) != 0 ||
	    (s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0 ||
	    fchown(s, sb->user.uid, sb->user.gid) != 0 ||
	    fchmod(s, 0620) != 0) {
		moat_cause_errno(cause, "sandbox %s: pty", sb->name);
		moat_close(s);
		close(m);
		return MOAT_ERR_SYSTEM;
	}
	*masterp = m;
	*slavep = s;
	return 0;
}

int
moat_sandbox_purge(const char *name, struct moat_cause *cause)
{
	int r, r2;

	if (!name_ok(name)) {
		moat_cause_set(cause, "sandbox name '%s' is not valid", name);
		return MOAT_ERR_INVALID;
	}
	r = sandbox_cgroup_purge(name, cause);
	if ((r2 = moat_net_purge(name, r == 0 ? cause : NULL)) != 0 && r == 0)
		r = r2;
	return r;
}

void
moat_sandbox_protect_self(void)
{
	/* Lowering needs CAP_SYS_RESOURCE, which containers often drop. */
	if (moat_write_file("/proc/self/oom_score_adj", "-900", NULL) != 0)
		log_verbose("cannot lower our oom_score_adj: %s",
		    strerror(errno));
}

const char *
moat_sandbox_name(const struct moat_sandbox *sb)
{
	return sb->name;
}

const char *
moat_sandbox_home(const struct moat_sandbox *sb)
{
	return SANDBOX_HOME;
}

uid_t
moat_sandbox_uid(const struct moat_sandbox *sb)
{
	return sb->user.uid;
}

gid_t
moat_sandbox_gid(const struct moat_sandbox *sb)
{
	return sb->user.gid;
}

pid_t
moat_sandbox_init_pid(const struct moat_sandbox *sb)
{
	return sb->init_pid;
}

const char *
moat_sandbox_host_addr(const struct moat_sandbox *sb)
{
	return sb->host_addr;
}

uint16_t
moat_sandbox_proxy_port(const struct moat_sandbox *sb)
{
	return sb->proxy_port;
}

int
moat_sandbox_netns_fd(const struct moat_sandbox *sb)
{
	return sb->nsfd[SB_NS_NET];
}

size_t
moat_sandbox_fds(const struct moat_sandbox *sb, int *fds, size_t max)
{
	int own[SB_NS_COUNT + 3];
	size_t n = 0, k = 0;

	own[k++] = sb->init_pidfd;
	own[k++] = sb->landlock_fd;
	own[k++] = sb->net != NULL ? moat_net_netns_fd(sb->net) : -1;
	for (int i = 0; i < SB_NS_COUNT; i++)
		own[k++] = sb->nsfd[i];
	for (size_t i = 0; i < k && n < max; i++)
		if (own[i] >= 0)
			fds[n++] = own[i];
	return n + sandbox_cgroup_fds(sb->cg, fds + n, max - n);
}

const char *
moat_sandbox_procs_path(const struct moat_sandbox *sb)
{
	return sandbox_cgroup_procs_path(sb->cg);
}

int
moat_sandbox_attrib_attach(struct moat_sandbox *sb, enum moat_attrib_mode mode,
    struct moat_cause *cause)
{
	if (sb->attrib != NULL)
		return 0;
	return attach_attrib(sb, mode, cause);
}

size_t
moat_sandbox_attrib_links(const struct moat_sandbox *sb, int *fds, size_t max)
{
	return sandbox_attrib_links(sb->attrib, fds, max);
}

int
moat_sandbox_attrib(const struct moat_sandbox *sb, int *conns_fd,
    int *tuples_fd, uint64_t *cgroup_id, const char **why)
{
	*why = sb->attrib_why;
	if (sb->attrib == NULL)
		return MOAT_ERR_NOTFOUND;
	*conns_fd = sandbox_attrib_conns_fd(sb->attrib);
	*tuples_fd = sandbox_attrib_tuples_fd(sb->attrib);
	*cgroup_id = sandbox_attrib_cgroup_id(sb->attrib);
	return 0;
}

int
moat_sandbox_socket(struct moat_sandbox *sb, int domain, int type, int proto,
    struct moat_cause *cause)
{
	return moat_net_socket(sb->net, domain, type, proto, cause);
}

int
moat_sandbox_nflog_open(struct moat_sandbox *sb, int *fd,
    struct moat_cause *cause)
{
	return moat_net_nflog_open(sb->net, fd, cause);
}
