/*
 * The sandbox's filesystem view, built by the sandbox init in its own
 * mount namespace (docs/sandbox.md, "Filesystem view"):
 *
 *   /             a small read-only tmpfs holding the entries below
 *   /usr, /etc... each top-level entry of the host's / (or the rootfs),
 *                 bound recursively, read-only, nosuid, nodev
 *   /sandbox      the workspace, read-write (HOME)
 *   /tmp /run     private tmpfs
 *   /dev          tmpfs with null zero full random urandom tty bound from
 *                 the host, devpts (newinstance) at /dev/pts, /dev/shm
 *   /proc         a fresh proc of the sandbox's pid namespace
 *   /sys          a fresh sysfs (the sandbox's netns), read-only
 *   /etc/passwd, /etc/group, /etc/hosts  generated files bound on top
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

#include "common/util.h"
#include "sandbox/internal.h"

#define SCRATCH "/tmp"
#define NEWROOT "/newroot"
#define OLDROOT "/oldroot"

/* Top-level entries the sandbox gets from us, not from the host. */
static const char *const own_entries[] = {
	"dev", "proc", "sys", "tmp", "run", "sandbox", "lost+found",
	"oldroot", "newroot",
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
is_own(const char *name)
{
	for (size_t i = 0; i < MOAT_NELEM(own_entries); i++)
		if (strcmp(name, own_entries[i]) == 0)
			return true;
	return false;
}

/* Each top-level entry of the source root, bound or re-linked. */
static int
bind_top(const char *src, struct moat_cause *cause)
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
		if (is_own(e->d_name) ||
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
setup_dev(struct moat_cause *cause)
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
	    MS_NOSUID | MS_NODEV, "mode=1777", cause);
}

/* Write a generated file into the scratch tmpfs and bind it on dst. */
static int
overlay_file(const char *name, const char *content, const char *dst,
    struct moat_cause *cause)
{
	char src[64];
	int r;

	if (content == NULL || access(dst, F_OK) != 0)
		return 0;
	snprintf(src, sizeof(src), "/%s", name);
	if ((r = write_new(src, content, 0644, cause)) != 0)
		return r;
	return do_mount(src, dst, NULL, MS_BIND, NULL, cause);
}

/* Places the sandbox has its own copy of: never bound from the host. */
static bool
is_provided(const char *path)
{
	static const char *const own[] = {
		SANDBOX_HOME, "/tmp", "/var/tmp", "/dev", "/proc", "/sys",
		"/run",
	};

	for (size_t i = 0; i < MOAT_NELEM(own); i++) {
		size_t n = strlen(own[i]);

		if (strncmp(path, own[i], n) == 0 &&
		    (path[n] == '\0' || path[n] == '/'))
			return true;
	}
	return strcmp(path, "/") == 0;
}

static int
bind_rw_paths(const char *const *rw, struct moat_cause *cause)
{
	char from[4200], to[4200];
	struct stat st;
	int r;

	for (size_t i = 0; rw != NULL && rw[i] != NULL; i++) {
		snprintf(from, sizeof(from), OLDROOT "%s", rw[i]);
		snprintf(to, sizeof(to), NEWROOT "%s", rw[i]);
		/* Paths the sandbox provides itself, or absent: Landlock only. */
		if (is_provided(rw[i]) || stat(from, &st) != 0 ||
		    lstat(to, &st) != 0 ||
		    S_ISLNK(st.st_mode))
			continue;
		if ((r = do_mount(from, to, NULL, MS_BIND | MS_REC, NULL,
		    cause)) != 0)
			return r;
	}
	return 0;
}

/* /var/tmp is private like /tmp (sandboxes must not share a dir). */
static int
var_tmp(struct moat_cause *cause)
{
	struct stat st;

	if (lstat(NEWROOT "/var/tmp", &st) != 0 || !S_ISDIR(st.st_mode))
		return 0;
	return do_mount("tmpfs", NEWROOT "/var/tmp", "tmpfs",
	    MS_NOSUID | MS_NODEV, "mode=1777", cause);
}

static int
build(const struct sandbox_fs *f, struct moat_cause *cause)
{
	char src[4200], hosts[512];
	int r;

	snprintf(src, sizeof(src), OLDROOT "%s",
	    strcmp(f->root, "/") == 0 ? "" : f->root);
	if ((r = do_mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV,
	    "mode=0755,size=64k", cause)) != 0 ||
	    (r = bind_top(src, cause)) != 0)
		return r;
	for (size_t i = 0; i < 6; i++) {
		snprintf(src, sizeof(src), NEWROOT "/%s", own_entries[i]);
		if ((r = make_mountpoint(src, true, cause)) != 0)
			return r;
	}
	snprintf(src, sizeof(src), OLDROOT "%s", f->workspace);
	snprintf(hosts, sizeof(hosts), "127.0.0.1\tlocalhost\n"
	    "127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n",
	    f->hostname);
	if ((r = do_mount(src, NEWROOT SANDBOX_HOME, NULL, MS_BIND | MS_REC,
	    NULL, cause)) != 0 ||
	    (r = do_mount(NULL, NEWROOT SANDBOX_HOME, NULL, MS_BIND |
	    MS_REMOUNT | MS_NOSUID | MS_NODEV, NULL, cause)) != 0 ||
	    (r = do_mount("tmpfs", NEWROOT "/tmp", "tmpfs",
	    MS_NOSUID | MS_NODEV, "mode=1777", cause)) != 0 ||
	    (r = var_tmp(cause)) != 0 ||
	    (r = do_mount("tmpfs", NEWROOT "/run", "tmpfs",
	    MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755", cause)) != 0 ||
	    (r = setup_dev(cause)) != 0 ||
	    (r = do_mount("proc", NEWROOT "/proc", "proc",
	    MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, cause)) != 0 ||
	    (r = do_mount("sysfs", NEWROOT "/sys", "sysfs", MS_RDONLY |
	    MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, cause)) != 0 ||
	    (r = overlay_file("passwd", f->passwd, NEWROOT "/etc/passwd",
	    cause)) != 0 ||
	    (r = overlay_file("group", f->group, NEWROOT "/etc/group",
	    cause)) != 0 ||
	    (r = overlay_file("hosts", hosts, NEWROOT "/etc/hosts",
	    cause)) != 0 ||
	    (r = bind_rw_paths(f->rw, cause)) != 0)
		return r;
	return 0;
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
