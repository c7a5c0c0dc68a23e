/*
 * The sandbox's filesystem view, built by the sandbox init in its own
 * mount namespace (docs/sandbox.md, "Filesystem view"):
 *
 *   /             a small read-only tmpfs holding the entries below
 *   /usr, /lib... the system's top-level entries of the host's / (every
 *                 entry of a rootfs), bound recursively, read-only,
 *                 nosuid, nodev; not /home, /root, /srv, /mnt, ...
 *   /etc          a read-only tmpfs: moat's own passwd, group, hosts,
 *                 hostname, and for every other entry of the host's /etc
 *                 a symlink into /run/host/etc, so host updates are
 *                 followed (setup_etc)
 *   /run/host/etc the host's /etc (a rootfs's), bound read-only
 *   /var          tmp (private tmpfs), lib/dpkg and lib/apt (read-only)
 *   policy paths  read_only and read_write paths bound at their place
 *   /sandbox      the workspace, read-write (HOME)
 *   /tmp /run     private tmpfs
 *   /dev          tmpfs with null zero full random urandom tty bound from
 *                 the host, devpts (newinstance) at /dev/pts, /dev/shm
 *   /proc         a fresh proc of the sandbox's pid namespace, read-only:
 *                 no /proc/PID/mem, attr or oom_score_adj write (a write
 *                 into another process's memory would make its code ours)
 *   /sys          a fresh sysfs (the sandbox's netns), read-only
 *   /run/moat     the sandbox CA and the bundle of roots plus it (read-
 *                 only binds of moatd's files); the bundle is also bound
 *                 on the system trust store when the view has one
 *
 * The sources are reached through a first pivot_root into a scratch
 * tmpfs, with the host's root at /oldroot: so nothing we mount can hide a
 * source (a workspace under /tmp stays reachable). A second pivot_root
 * makes the new root final and the scratch tree is detached.
 */
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "policies/policy.h"
#include "sandbox/internal.h"

#define SCRATCH "/tmp"
#define NEWROOT "/newroot"
#define OLDROOT "/oldroot"
#define HOST_ETC "/run/host/etc"

/* Top-level entries the sandbox gets from us, not from the host. */
static const char *const own_entries[] = {
	"dev", "proc", "sys", "tmp", "run", "sandbox", "etc", "lost+found",
	"oldroot", "newroot",
};

/*
 * The host's top-level entries a sandbox sees: the system, never the
 * users' files (/home, /root, /srv, /mnt, /media, /opt, /boot, ...);
 * a policy's read_only and read_write lists add those it needs.
 */
static const char *const system_entries[] = {
	"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc",
};

/* Package metadata under /var (dpkg -l, apt list); the rest stays out. */
static const char *const var_binds[] = {
	"/var/lib/dpkg", "/var/lib/apt",
};

static const char *const dev_nodes[] = {
	"null", "zero", "full", "random", "urandom", "tty",
};

static int
fail(struct moat_cause *cause, const char *what, const char *path)
{
	moat_cause_errno(cause, "sandbox filesystem: %s %s", what, path);
	return MOAT_ERR_SYSTEM;
}

static int
do_mount(const char *src, const char *dst, const char *type,
    unsigned long flags, const char *data, struct moat_cause *cause)
{
	if (mount(src, dst, type, flags, data) != 0)
		return fail(cause, "mount", dst);
	return 0;
}

static int
write_new(const char *path, const char *s, mode_t mode,
    struct moat_cause *cause)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd < 0)
		return fail(cause, "create", path);
	/* Exactly mode: the caller's umask (moatd's is 077) must not apply. */
	if (fchmod(fd, mode) != 0 || moat_write_all(fd, s, strlen(s)) != 0) {
		close(fd);
		return fail(cause, "write", path);
	}
	close(fd);
	return 0;
}

static int
make_mountpoint(const char *path, bool dir, struct moat_cause *cause)
{
	int fd;

	if (dir) {
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return fail(cause, "mkdir", path);
		return 0;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return fail(cause, "create", path);
	close(fd);
	return 0;
}

/* Bind src on dst (recursively) and make the whole tree read-only. */
static int
bind_ro(const char *src, const char *dst, struct moat_cause *cause)
{
	struct mount_attr a = {
		.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
		    MOUNT_ATTR_NODEV,
	};
	int r;

	if ((r = do_mount(src, dst, NULL, MS_BIND | MS_REC, NULL, cause)) != 0)
		return r;
	if (mount_setattr(AT_FDCWD, dst, AT_RECURSIVE, &a, sizeof(a)) != 0)
		return fail(cause, "make read-only", dst);
	return 0;
}

static bool
in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

/* Is path one of the prefixes, or below one? */
static bool
under(const char *path, const char *const *prefixes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(prefixes[i]);

		if (strncmp(path, prefixes[i], len) == 0 &&
		    (path[len] == '\0' || path[len] == '/'))
			return true;
	}
	return false;
}

/*
 * The top-level entries of the source root, bound or re-linked: every
 * one of a rootfs (an image), only the system's of the host's /.
 */
static int
bind_top(const char *src, bool all, struct moat_cause *cause)
{
	char from[4400], to[300], link[4096];
	struct dirent *e;
	struct stat st;
	DIR *d = NULL;
	int r = 0;

	if ((d = opendir(src)) == NULL)
		return fail(cause, "open", src);
	while (r == 0 && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' && (e->d_name[1] == '\0' ||
		    (e->d_name[1] == '.' && e->d_name[2] == '\0')))
			continue;
		if (in_list(e->d_name, own_entries, MOAT_NELEM(own_entries)) ||
		    (!all && !in_list(e->d_name, system_entries,
		    MOAT_NELEM(system_entries))) ||
		    (size_t)snprintf(from, sizeof(from), "%s/%s", src,
		    e->d_name) >= sizeof(from) ||
		    (size_t)snprintf(to, sizeof(to), NEWROOT "/%s",
		    e->d_name) >= sizeof(to))
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlinkat(dirfd(d), e->d_name, link,
			    sizeof(link) - 1);

			if (n < 0)
				continue;
			link[n] = '\0';
			if (symlink(link, to) != 0)
				r = fail(cause, "symlink", to);
		} else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
			if ((r = make_mountpoint(to, S_ISDIR(st.st_mode),
			    cause)) == 0)
				r = bind_ro(from, to, cause);
		}
	}
	closedir(d);
	return r;
}

static int
setup_dev(const char *tmpfs_opts, struct moat_cause *cause)
{
	static const char *const links[][2] = {
		{ "pts/ptmx", NEWROOT "/dev/ptmx" },
		{ "/proc/self/fd", NEWROOT "/dev/fd" },
		{ "/proc/self/fd/0", NEWROOT "/dev/stdin" },
		{ "/proc/self/fd/1", NEWROOT "/dev/stdout" },
		{ "/proc/self/fd/2", NEWROOT "/dev/stderr" },
	};
	char from[64], to[64];
	int r;

	if ((r = do_mount("tmpfs", NEWROOT "/dev", "tmpfs",
	    MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k", cause)) != 0)
		return r;
	for (size_t i = 0; i < MOAT_NELEM(dev_nodes); i++) {
		snprintf(from, sizeof(from), OLDROOT "/dev/%s", dev_nodes[i]);
		snprintf(to, sizeof(to), NEWROOT "/dev/%s", dev_nodes[i]);
		if ((r = make_mountpoint(to, false, cause)) != 0 ||
		    (r = do_mount(from, to, NULL, MS_BIND, NULL, cause)) != 0)
			return r;
	}
	for (size_t i = 0; i < MOAT_NELEM(links); i++)
		if (symlink(links[i][0], links[i][1]) != 0)
			return fail(cause, "symlink", links[i][1]);
	if ((r = make_mountpoint(NEWROOT "/dev/pts", true, cause)) != 0 ||
	    (r = do_mount("devpts", NEWROOT "/dev/pts", "devpts",
	    MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620",
	    cause)) != 0)
		return r;
	if ((r = make_mountpoint(NEWROOT "/dev/shm", true, cause)) != 0)
		return r;
	return do_mount("tmpfs", NEWROOT "/dev/shm", "tmpfs",
	    MS_NOSUID | MS_NODEV, tmpfs_opts, cause);
}


/* One entry of the source /etc in ours: see setup_etc. */
static int
etc_entry(DIR *d, const char *name, unsigned char type,
    struct moat_cause *cause)
{
	char from[300], to[300], link[4096];
	struct stat st;
	ssize_t n;

	if ((size_t)snprintf(from, sizeof(from), NEWROOT HOST_ETC "/%s",
	    name) >= sizeof(from) || (size_t)snprintf(to, sizeof(to),
	    NEWROOT "/etc/%s", name) >= sizeof(to))
		return 0;
	if (type == DT_UNKNOWN) {
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			return 0;
		type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ?
		    DT_REG : S_ISLNK(st.st_mode) ? DT_LNK : DT_UNKNOWN;
	}
	switch (type) {
	case DT_DIR:
	case DT_REG:
		/* Absolute: the link is read in the sandbox's root. */
		if (symlink(from + strlen(NEWROOT), to) != 0)
			return fail(cause, "symlink", to);
		return 0;
	case DT_LNK:
		/* As it is: relative ones (os-release, mtab) resolve alike. */
		if ((n = readlinkat(dirfd(d), name, link, sizeof(link) - 1)) < 0)
			return 0;
		link[n] = '\0';
		if (symlink(link, to) != 0)
			return fail(cause, "symlink", to);
		return 0;
	default:
		return 0; /* sockets, fifos: nothing a sandbox needs */
	}
}

/*
 * /etc: a tmpfs with moat's own files (passwd, group, hosts, hostname)
 * and, for every other entry of the source /etc (bound whole, read-only,
 * at /run/host/etc), a symlink into /run/host/etc (files, directories)
 * or a copy (symlinks). Never a bind over one host file: the host
 * replaces those by rename (useradd, passwd, ldconfig, package
 * installs), which drops a bind on them in every namespace or leaves one
 * on the old inode; a symlink reaches the new file. Not a bind per
 * directory either: the proxy reads the caller's mountinfo for every
 * connection (proxy/maps.c), and 80 more mounts would make that cost
 * half as much again. An entry the host adds later is in /run/host/etc
 * only, until the sandbox restarts. The tmpfs is made read-only once the
 * policy's paths are bound (etc_seal).
 */
static int
setup_etc(const char *src, const struct sandbox_fs *f,
    struct moat_cause *cause)
{
	char path[300], hosts[512], hostname[128];
	const char *const own[][2] = {
		{ "passwd", f->passwd }, { "group", f->group },
		{ "hosts", hosts }, { "hostname", hostname },
	};
	struct dirent *e;
	struct stat st;
	DIR *d = NULL;
	int r = 0;

	snprintf(hosts, sizeof(hosts), "127.0.0.1\tlocalhost\n"
	    "127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n",
	    f->hostname);
	snprintf(hostname, sizeof(hostname), "%s\n", f->hostname);
	/* Exactly 0755: moatd's umask is 077, and users must pass. */
	if ((r = make_mountpoint(NEWROOT "/run/host", true, cause)) != 0 ||
	    (chmod(NEWROOT "/run/host", 0755) != 0 &&
	    (r = fail(cause, "chmod", "/run/host")) != 0) ||
	    (r = make_mountpoint(NEWROOT HOST_ETC, true, cause)) != 0 ||
	    (r = make_mountpoint(NEWROOT "/etc", true, cause)) != 0 ||
	    (r = do_mount("tmpfs", NEWROOT "/etc", "tmpfs", MS_NOSUID |
	    MS_NODEV | MS_NOEXEC, "mode=0755,size=16m", cause)) != 0)
		return r;
	if (stat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
		if ((r = bind_ro(src, NEWROOT HOST_ETC, cause)) != 0)
			return r;
		if ((d = opendir(NEWROOT HOST_ETC)) == NULL)
			return fail(cause, "open", src);
	}
	while (r == 0 && d != NULL && (e = readdir(d)) != NULL) {
		bool mine = false;

		if (e->d_name[0] == '.' && (e->d_name[1] == '\0' ||
		    (e->d_name[1] == '.' && e->d_name[2] == '\0')))
			continue;
		for (size_t i = 0; i < MOAT_NELEM(own); i++)
			mine |= own[i][1] != NULL &&
			    strcmp(e->d_name, own[i][0]) == 0;
		if (!mine)
			r = etc_entry(d, e->d_name, e->d_type, cause);
	}
	if (d != NULL)
		closedir(d);
	for (size_t i = 0; r == 0 && i < MOAT_NELEM(own); i++) {
		if (own[i][1] == NULL)
			continue;
		snprintf(path, sizeof(path), NEWROOT "/etc/%s", own[i][0]);
		r = write_new(path, own[i][1], 0644, cause);
	}
	return r;
}

/*
 * Where a host path is in the view while it is built: below /etc, at its
 * place under /run/host/etc, which our /etc links to (an absolute link
 * is not followed from the scratch root we build in).
 */
static void
etc_view(const char *path, char *out, size_t len)
{
	bool etc = strncmp(path, "/etc/", 5) == 0;

	snprintf(out, len, "%s%s", etc ? HOST_ETC : "", path + (etc ? 4 : 0));
}

/* After the policy's binds: nothing in /etc may change from inside. */
static int
etc_seal(struct moat_cause *cause)
{
	return do_mount(NULL, NEWROOT "/etc", NULL, MS_REMOUNT | MS_BIND |
	    MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, cause);
}

/* Places the sandbox has its own copy of: never bound from the host. */
static const char *const provided[] = {
	SANDBOX_HOME, "/tmp", "/var/tmp", "/dev", "/proc", "/sys", "/run",
};

/*
 * Private scratch dirs: "/tmp" in a policy means the sandbox's own, but a
 * host path below one (/tmp/build/bin) is named on purpose and is bound
 * on top of the private tmpfs (the binds come after it).
 */
static const char *const scratch[] = { "/tmp", "/var/tmp" };

static bool
not_bindable(const char *p)
{
	for (size_t i = 0; i < MOAT_NELEM(scratch); i++)
		if (under(p, &scratch[i], 1))
			return strcmp(p, scratch[i]) == 0;
	return under(p, provided, MOAT_NELEM(provided));
}

/* mkdir -p below NEWROOT for path's parents; the last one may exist. */
static int
make_parents(const char *path)
{
	char buf[4200];

	snprintf(buf, sizeof(buf), NEWROOT "%s", path);
	for (char *p = buf + strlen(NEWROOT) + 1; (p = strchr(p, '/'));
	    p++) {
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return errno;
		*p = '/';
	}
	return 0;
}

/*
 * One policy path ("r/path" or "w/path", from sandbox_fs_policy_binds)
 * at the same place: read-only, or read-write; nosuid, nodev either way.
 * A path this view cannot hold (below a read-only rootfs entry that
 * lacks it) is left to Landlock, which warns or fails as the policy says.
 */
static int
bind_policy_path(const char *spec, struct moat_cause *cause)
{
	struct mount_attr a = {
		.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
		    (spec[0] == 'r' ? MOUNT_ATTR_RDONLY : 0),
	};
	const char *path = spec + 1;
	char from[4200], to[4200], view[4096];
	struct stat st;
	bool dir;
	int e, fd;

	etc_view(path, view, sizeof(view));
	snprintf(from, sizeof(from), OLDROOT "%s", path);
	snprintf(to, sizeof(to), NEWROOT "%s", view);
	if (stat(from, &st) != 0 || (!S_ISDIR(st.st_mode) &&
	    !S_ISREG(st.st_mode)))
		return 0;
	dir = S_ISDIR(st.st_mode);
	if ((e = make_parents(view)) == 0 && lstat(to, &st) != 0) {
		if (dir)
			e = mkdir(to, 0755) == 0 ? 0 : errno;
		else if ((fd = open(to, O_WRONLY | O_CREAT | O_CLOEXEC,
		    0644)) >= 0)
			close(fd);
		else
			e = errno;
	}
	if (e == EROFS || e == ENOENT || e == ENOTDIR)
		return 0;
	if (e != 0) {
		errno = e;
		return fail(cause, "make a mount point for", path);
	}
	if (lstat(to, &st) != 0 || S_ISLNK(st.st_mode))
		return 0;
	if (do_mount(from, to, NULL, MS_BIND | MS_REC, NULL, cause) != 0)
		return MOAT_ERR_SYSTEM;
	if (mount_setattr(AT_FDCWD, to, AT_RECURSIVE, &a, sizeof(a)) != 0)
		return fail(cause, "set attributes of", to);
	return 0;
}

/*
 * Our /var for the host's /: a directory of the root tmpfs with a
 * private tmp, the package metadata, and run and lock links into /run.
 * A rootfs's /var is bound whole; only its tmp is made private.
 */
static int
setup_var(bool host, const char *tmpfs_opts, struct moat_cause *cause)
{
	struct stat st;
	int r;

	if (host) {
		if ((r = make_mountpoint(NEWROOT "/var", true, cause)) != 0 ||
		    (r = make_mountpoint(NEWROOT "/var/tmp", true,
		    cause)) != 0)
			return r;
		for (size_t i = 0; i < MOAT_NELEM(var_binds); i++) {
			char spec[64];

			snprintf(spec, sizeof(spec), "r%s", var_binds[i]);
			if ((r = bind_policy_path(spec, cause)) != 0)
				return r;
		}
		if (symlink("/run", NEWROOT "/var/run") != 0 ||
		    symlink("/run/lock", NEWROOT "/var/lock") != 0)
			return fail(cause, "symlink in", "/var");
	}
	/* Sandboxes must not share a /var/tmp either. */
	if (lstat(NEWROOT "/var/tmp", &st) != 0 || !S_ISDIR(st.st_mode))
		return 0;
	return do_mount("tmpfs", NEWROOT "/var/tmp", "tmpfs",
	    MS_NOSUID | MS_NODEV, tmpfs_opts, cause);
}

/* Bind one host file read-only on a new or existing file dst. */
static int
bind_file_ro(const char *host, const char *dst, struct moat_cause *cause)
{
	char src[4200];
	int r;

	snprintf(src, sizeof(src), OLDROOT "%s", host);
	/* A host file that is not there is named as the host knows it. */
	if (access(src, F_OK) != 0)
		return fail(cause, "bind", host);
	/* The system store exists (below a read-only bind): mount on it. */
	if ((access(dst, F_OK) != 0 &&
	    (r = make_mountpoint(dst, false, cause)) != 0) ||
	    (r = do_mount(src, dst, NULL, MS_BIND, NULL, cause)) != 0)
		return r;
	return do_mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY |
	    MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, cause);
}

/*
 * The sandbox CA: its certificate and the bundle at fixed places (the
 * CA variables name them), and the bundle over the system store too,
 * so tools that read only that trust the proxy's certificates.
 */
static int
setup_ca(const struct sandbox_fs *f, struct moat_cause *cause)
{
	char roots[256], dst[300];
	int r;

	if (f->ca_cert == NULL || f->ca_bundle == NULL)
		return 0;
	/* Exactly 0755: moatd's umask (077) must not apply. */
	if ((mkdir(NEWROOT "/run/moat", 0755) != 0 && errno != EEXIST) ||
	    chmod(NEWROOT "/run/moat", 0755) != 0)
		return fail(cause, "mkdir", "/run/moat");
	if ((r = bind_file_ro(f->ca_cert, NEWROOT MOAT_SANDBOX_CA_CERT,
	    cause)) != 0 ||
	    (r = bind_file_ro(f->ca_bundle, NEWROOT MOAT_SANDBOX_CA_BUNDLE,
	    cause)) != 0)
		return r;
	/*
	 * Where /etc links to (setup_etc). The one host file bound over: a
	 * host update that replaces it drops the bind (docs/sandbox.md).
	 */
	etc_view(MOAT_SANDBOX_SYSTEM_ROOTS, roots, sizeof(roots));
	snprintf(dst, sizeof(dst), NEWROOT "%s", roots);
	if (access(dst, F_OK) != 0)
		return 0;
	return bind_file_ro(f->ca_bundle, dst, cause);
}

static int
build(const struct sandbox_fs *f, struct moat_cause *cause)
{
	bool host = strcmp(f->root, "/") == 0;
	char src[4200], tmpfs_opts[64];
	int r;

	/*
	 * The writable tmpfs (/tmp, /var/tmp, /dev/shm) live in RAM: each
	 * gets a size, or one sandbox could fill the host's memory. Their
	 * pages are also charged to the writer's memory cgroup, so with
	 * memory_mb all of them together stay within that limit.
	 */
	snprintf(tmpfs_opts, sizeof(tmpfs_opts), "mode=1777,size=%llum",
	    (unsigned long long)(f->tmpfs_mb ? f->tmpfs_mb :
	    SANDBOX_TMPFS_MB));

	snprintf(src, sizeof(src), OLDROOT "%s",
	    strcmp(f->root, "/") == 0 ? "" : f->root);
	if ((r = do_mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV,
	    "mode=0755,size=64k", cause)) != 0 ||
	    (r = bind_top(src, !host, cause)) != 0)
		return r;
	for (size_t i = 0; i < 6; i++) {
		snprintf(src, sizeof(src), NEWROOT "/%s", own_entries[i]);
		if ((r = make_mountpoint(src, true, cause)) != 0)
			return r;
	}
	snprintf(src, sizeof(src), OLDROOT "%s", f->workspace);
	if ((r = do_mount(src, NEWROOT SANDBOX_HOME, NULL, MS_BIND | MS_REC,
	    NULL, cause)) != 0 ||
	    (r = do_mount(NULL, NEWROOT SANDBOX_HOME, NULL, MS_BIND |
	    MS_REMOUNT | MS_NOSUID | MS_NODEV, NULL, cause)) != 0 ||
	    (r = do_mount("tmpfs", NEWROOT "/tmp", "tmpfs",
	    MS_NOSUID | MS_NODEV, tmpfs_opts, cause)) != 0 ||
	    (r = setup_var(host, tmpfs_opts, cause)) != 0 ||
	    (r = do_mount("tmpfs", NEWROOT "/run", "tmpfs",
	    MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755", cause)) != 0 ||
	    (r = setup_dev(tmpfs_opts, cause)) != 0 ||
	    (r = do_mount("proc", NEWROOT "/proc", "proc", MS_RDONLY |
	    MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, cause)) != 0 ||
	    (r = do_mount("sysfs", NEWROOT "/sys", "sysfs", MS_RDONLY |
	    MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, cause)) != 0)
		return r;
	snprintf(src, sizeof(src), OLDROOT "%s/etc", host ? "" : f->root);
	if ((r = setup_etc(src, f, cause)) != 0 ||
	    (r = setup_ca(f, cause)) != 0)
		return r;
	for (size_t i = 0; f->binds != NULL && f->binds[i] != NULL; i++)
		if ((r = bind_policy_path(f->binds[i], cause)) != 0)
			return r;
	return etc_seal(cause);
}

static int
by_length(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	size_t lx = strlen(x), ly = strlen(y);

	/* Parents first; for one path, read-write on top of read-only. */
	if (lx != ly)
		return lx < ly ? -1 : 1;
	return x[0] == y[0] ? 0 : x[0] == 'r' ? -1 : 1;
}

/* Add the paths of list to v as "<kind>path", filtered (see below). */
static int
add_binds(char **v, size_t *n, const char *const *list, char kind,
    bool host)
{
	char *real;

	for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
		const char *p = list[i];

		if (p[0] != '/' || not_bindable(p) || strcmp(p, "/") == 0)
			continue;
		/* Read-only system paths: already there. */
		if (kind == 'r' && host) {
			char top[64];

			snprintf(top, sizeof(top), "%.*s",
			    (int)strcspn(p + 1, "/"), p + 1);
			if (in_list(top, system_entries,
			    MOAT_NELEM(system_entries)) ||
			    under(p, var_binds, MOAT_NELEM(var_binds)))
				continue;
		}
		if ((real = realpath(p, NULL)) == NULL)
			continue; /* missing: Landlock warns or fails */
		if (strcmp(real, p) != 0) {
			log_warn("filesystem_policy path %s is not bound: it "
			    "resolves to %s (name that instead)", p, real);
			free(real);
			continue;
		}
		free(real);
		if (asprintf(&v[*n], "%c%s", kind, p) < 0)
			return MOAT_ERR_NOMEM;
		(*n)++;
	}
	return 0;
}

int
sandbox_fs_policy_binds(const struct moat_policy *p, const char *root,
    char ***out)
{
	const char *const *ro = p != NULL ? moat_policy_read_only(p) : NULL;
	const char *const *rw = p != NULL ? moat_policy_read_write(p) : NULL;
	bool host = strcmp(root, "/") == 0;
	size_t n = 0, cap = 1;
	char **v;
	int r;

	for (size_t i = 0; ro != NULL && ro[i] != NULL; i++)
		cap++;
	for (size_t i = 0; rw != NULL && rw[i] != NULL; i++)
		cap++;
	if ((v = calloc(cap, sizeof(*v))) == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = add_binds(v, &n, ro, 'r', host)) != 0 ||
	    (r = add_binds(v, &n, rw, 'w', host)) != 0) {
		sandbox_fs_binds_free(v);
		return r;
	}
	qsort(v, n, sizeof(*v), by_length);
	*out = v;
	return 0;
}

void
sandbox_fs_binds_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

int
sandbox_fs_setup(const struct sandbox_fs *f, struct moat_cause *cause)
{
	int r;

	if (sethostname(f->hostname, strlen(f->hostname)) != 0)
		return fail(cause, "sethostname", f->hostname);
	/* Nothing we do may propagate back to the host. */
	if ((r = do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL,
	    cause)) != 0 ||
	    (r = do_mount("tmpfs", SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV,
	    "mode=0700,size=1m", cause)) != 0)
		return r;
	if (mkdir(SCRATCH OLDROOT, 0700) != 0 ||
	    mkdir(SCRATCH NEWROOT, 0755) != 0)
		return fail(cause, "mkdir", SCRATCH);
	if (chdir(SCRATCH) != 0 ||
	    syscall(SYS_pivot_root, ".", "." OLDROOT) != 0)
		return fail(cause, "pivot_root", SCRATCH);
	if (chdir("/") != 0)
		return fail(cause, "chdir", "/");
	if ((r = build(f, cause)) != 0)
		return r;
	/* Stack the old root on the new one, then detach it. */
	if (chdir(NEWROOT) != 0 || syscall(SYS_pivot_root, ".", ".") != 0)
		return fail(cause, "pivot_root", NEWROOT);
	if (umount2(".", MNT_DETACH) != 0)
		return fail(cause, "detach", "old root");
	if (chdir("/") != 0)
		return fail(cause, "chdir", "/");
	return do_mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY |
	    MS_NOSUID | MS_NODEV, NULL, cause);
}
