/*
 * Code loaded into a caller: an allowed binary that runs code from a file
 * the sandbox could write (LD_PRELOAD, LD_LIBRARY_PATH, a dlopen'd
 * module in the workspace, a memfd) does what that code says, with the
 * binary's rights. Every executable mapping of the process must come
 * from a mount its own mount namespace has read-only (the system
 * directories and the policy's read_only paths: docs/proxy.md, "Code
 * loaded into a caller"); anonymous memory (a JIT's) and the kernel's
 * [vdso] are not code from a path.
 *
 * Both files are read through /proc/PID: maps names each mapping as the
 * sandbox sees it (its mount namespace's root), and mountinfo lists the
 * mount points relative to the process's root, so the two compare as
 * text. The path decides, never the device: an overlay root shows the
 * real file's device in maps and the overlay's in mountinfo. A name
 * cannot lie: the sandbox's "/" is read-only, so "/memfd:x" and
 * "/SYSV00001234" can only be the kernel's names for memory, and any
 * file the sandbox made lies on a writable mount.
 */
#include <sys/syscall.h>

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "proxy/internal.h"

#define MAPS_MAX (8u << 20)
#define MOUNTINFO_MAX (1u << 20)
#define MAX_MOUNTS 10000

struct mnt {
	char *point; /* in maps' form (maps_form), in the mountinfo text */
	size_t len;
	bool ro;
};

/*
 * Read a /proc file whole into a NUL-terminated heap buffer (*out), at
 * most max bytes and no more than *budget: MOAT_OK (*budget less what
 * was read), MOAT_ERR_AGAIN when *budget is too small for it (the
 * caller may try again where it can spend more), MOAT_ERR_INVALID
 * when it exceeds max, MOAT_ERR_NOTFOUND (unreadable), MOAT_ERR_NOMEM.
 */
static int
slurp(const char *path, size_t max, size_t *budget, char **out)
{
	size_t len = 0, cap = 16384, want, lim = max < *budget ? max : *budget;
	char *buf = NULL, *nb;
	ssize_t n;
	int fd, r = MOAT_ERR_NOMEM;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return MOAT_ERR_NOTFOUND;
	if ((buf = malloc(cap)) == NULL)
		goto fail;
	for (;;) {
		if (cap - len < 4096) {
			if ((nb = realloc(buf, cap * 2)) == NULL)
				goto fail;
			buf = nb;
			cap *= 2;
		}
		/* One byte past lim tells it is larger. */
		want = cap - len - 1;
		if (want > lim - len + 1)
			want = lim - len + 1;
		n = read(fd, buf + len, want);
		if (n == -1 && errno == EINTR)
			continue;
		if (n < 0) {
			r = MOAT_ERR_NOTFOUND;
			goto fail;
		}
		if (n == 0)
			break;
		if ((len += (size_t)n) > lim) {
			r = lim == max ? MOAT_ERR_INVALID : MOAT_ERR_AGAIN;
			goto fail;
		}
	}
	close(fd);
	buf[len] = '\0';
	*budget -= len;
	*out = buf;
	return MOAT_OK;
fail:
	close(fd);
	free(buf);
	return r;
}

/*
 * mountinfo escapes space, tab, newline and backslash as octal ("\040");
 * maps escapes only a newline ("\012") and shows a backslash as is. So a
 * mount point is brought to maps' form (unescaped, its newlines escaped
 * again) and compared with the maps text untouched: unescaping maps
 * would let a workspace file named "vendor\057lib.so" pass for
 * "vendor/lib.so" under a read-only mount. In place: the result is never
 * longer. Returns the new length.
 */
static size_t
maps_form(char *s, size_t n)
{
	size_t r = 0, w = 0;

	while (r < n) {
		char c = s[r];

		if (c == '\\' && r + 3 < n && s[r + 1] >= '0' &&
		    s[r + 1] <= '3' && s[r + 2] >= '0' && s[r + 2] <= '7' &&
		    s[r + 3] >= '0' && s[r + 3] <= '7') {
			c = (char)((s[r + 1] - '0') * 64 + (s[r + 2] - '0') *
			    8 + (s[r + 3] - '0'));
			r += 4;
		} else {
			r++;
		}
		if (c == '\n') {
			memcpy(s + w, "\\012", 4);
			w += 4;
		} else {
			s[w++] = c;
		}
	}
	s[w] = '\0';
	return w;
}

/* The n-th space-separated field of line (0-based), its length in *len. */
static char *
field(char *line, int n, size_t *len)
{
	char *p = line;

	for (int i = 0; i < n; i++) {
		p += strcspn(p, " ");
		if (*p != ' ')
			return NULL;
		p++;
	}
	*len = strcspn(p, " ");
	return p;
}

/* "… ro,nosuid …": is ro among the comma-separated options? */
static bool
has_ro(const char *opts, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t k = i;

		while (k < len && opts[k] != ',')
			k++;
		if (k - i == 2 && opts[i] == 'r' && opts[i + 1] == 'o')
			return true;
		i = k + 1;
	}
	return false;
}

/*
 * mountinfo lines: "id parent maj:min root mountpoint options ...", cut
 * in place: the points stay valid while the text does. The options are
 * read before the point is rewritten (that ends it with a NUL).
 */
static int
parse_mounts(char *text, struct mnt *v, size_t max, size_t *np)
{
	size_t n = 0, len, olen;
	char *line = text, *next, *mp, *opts;

	for (; *line != '\0'; line = next) {
		next = line + strcspn(line, "\n");
		if (*next == '\n')
			*next++ = '\0';
		if ((mp = field(line, 4, &len)) == NULL ||
		    (opts = field(line, 5, &olen)) == NULL)
			continue;
		if (n == max)
			return MOAT_ERR_INVALID;
		v[n].ro = has_ro(opts, olen);
		v[n].point = mp;
		v[n].len = maps_form(mp, len);
		n++;
	}
	*np = n;
	return MOAT_OK;
}

/* The mount path lies on: the longest mount point, the last of equals. */
static const struct mnt *
mount_of(const struct mnt *v, size_t n, const char *path)
{
	const struct mnt *best = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct mnt *m = &v[i];
		bool in = m->len == 1 ? path[0] == '/' :
		    strncmp(path, m->point, m->len) == 0 &&
		    (path[m->len] == '/' || path[m->len] == '\0');

		if (in && (best == NULL || m->len >= best->len))
			best = m;
	}
	return best;
}

static int
loaded(char *why, size_t len, const char *what, const char *exe)
{
	snprintf(why, len, "code from %s loaded into %s", what, exe);
	return MOAT_ERR_DENIED;
}

int
px_maps_scan(char *maps, char *mountinfo, const char *exe,
    unsigned long long exe_ino, char *why, size_t whylen)
{
	static const char deleted[] = " (deleted)";
	struct mnt *mounts = NULL;
	size_t nm = 0, dl = sizeof(deleted) - 1;
	char *line, *next;
	int r;

	if (whylen > 0)
		why[0] = '\0';

	for (const char *c = mountinfo; (c = strchr(c, '\n')) != NULL; c++)
		nm++;
	if (nm > MAX_MOUNTS)
		nm = MAX_MOUNTS;
	if ((mounts = calloc(nm + 1, sizeof(*mounts))) == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = parse_mounts(mountinfo, mounts, nm + 1, &nm)) != 0) {
		snprintf(why, whylen, "%s runs with more than %d mounts: its "
		    "code cannot be checked", exe, MAX_MOUNTS);
		r = MOAT_ERR_DENIED;
		goto out;
	}
	/* "start-end perms offset dev inode     path" */
	for (line = maps; *line != '\0'; line = next) {
		char *perms, *path, *p;
		const struct mnt *m;
		unsigned long long ino;
		size_t len, plen;
		bool gone;

		next = line + strcspn(line, "\n");
		if (*next == '\n')
			*next++ = '\0';
		if ((perms = field(line, 1, &len)) == NULL || len != 4 ||
		    perms[2] != 'x')
			continue;
		/* The path starts after the inode and its padding. */
		if ((p = field(line, 4, &len)) == NULL)
			continue;
		ino = strtoull(p, NULL, 10);
		path = p + len;
		path += strspn(path, " ");
		if (*path == '\0' || *path == '[')
			continue; /* anonymous (a JIT's), [vdso], [vsyscall] */
		plen = strlen(path);
		gone = plen > dl && strcmp(path + plen - dl, deleted) == 0;
		if (gone)
			path[plen -= dl] = '\0';
		/*
		 * Memory the kernel names like files: memfd and SysV segments
		 * at "/" (where the sandbox can make no file), shared
		 * anonymous memory as "/dev/zero (deleted)".
		 */
		if (strncmp(path, "/memfd:", 7) == 0 ||
		    strncmp(path, "/SYSV", 5) == 0 ||
		    (gone && strcmp(path, "/dev/zero") == 0)) {
			r = loaded(why, whylen, path + (path[1] != 'd'), exe);
			goto out;
		}
		/*
		 * The binary itself is what the policy named and TOFU hashed:
		 * that file, not whatever now has its name.
		 */
		if (strcmp(path, exe) == 0 && ino == exe_ino)
			continue;
		if (path[0] != '/' || (m = mount_of(mounts, nm, path)) == NULL ||
		    !m->ro) {
			r = loaded(why, whylen, path, exe);
			goto out;
		}
	}
	r = MOAT_OK;
out:
	free(mounts);
	return r;
}

int
px_maps_check(pid_t pid, int pidfd, const char *exe,
    unsigned long long exe_ino, size_t *budget, char *why, size_t whylen)
{
	char path[64], *maps = NULL, *mi = NULL;
	int r;

	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)pid);
	if ((r = slurp(path, MOUNTINFO_MAX, budget, &mi)) != 0) {
		snprintf(why, whylen, "cannot read the mounts of %s (pid %d)",
		    exe, (int)pid);
		goto out;
	}
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	if ((r = slurp(path, MAPS_MAX, budget, &maps)) != 0) {
		snprintf(why, whylen, "cannot read the mappings of %s (pid "
		    "%d)%s", exe, (int)pid, r == MOAT_ERR_INVALID ? ": more "
		    "than 8 MiB of them" : "");
		goto out;
	}
	/*
	 * Still the process the caller pinned: the pid was not reused. A
	 * poll, not a signal 0: the proxy may not signal the sandbox's
	 * processes (docs/proxy.md, "Privileges").
	 */
	if (pidfd >= 0 && poll(&(struct pollfd){ pidfd, POLLIN, 0 }, 1, 0) !=
	    0) {
		snprintf(why, whylen, "pid %d exited", (int)pid);
		r = MOAT_ERR_NOTFOUND;
		goto out;
	}
	r = px_maps_scan(maps, mi, exe, exe_ino, why, whylen);
out:
	if (r == MOAT_ERR_INVALID)
		r = MOAT_ERR_DENIED;
	free(maps);
	free(mi);
	return r;
}
