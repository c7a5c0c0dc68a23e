/*
 * Binary paths: validation, the '/'-delimited glob, and symlink
 * resolution under a root (the host's "/" or /proc/PID/root of a sandbox
 * with its own rootfs).
 *
 * The kernel reports /proc/PID/exe already resolved, so a policy that
 * lists /usr/bin/python3 would never match /usr/bin/python3.11 (OpenShell
 * issues #765/#770). moat resolves each listed path once at load and
 * matches both forms.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policies/internal.h"

#define MAX_LINKS 40

void
pol_binary_clear(struct pol_binary *b)
{
	free(b->path);
	free(b->segs);
	free(b->resolved);
	memset(b, 0, sizeof(*b));
}

/* Collapse "//", "/./" and a trailing "/" in place. */
static void
tidy(char *s)
{
	char *w = s, *r = s;

	while (*r != '\0') {
		if (r[0] == '/' && (r[1] == '/' || (r[1] == '.' &&
		    (r[2] == '/' || r[2] == '\0')))) {
			r += r[1] == '/' ? 1 : 2;
			continue;
		}
		*w++ = *r++;
	}
	if (w > s + 1 && w[-1] == '/')
		w--;
	*w = '\0';
	if (*s == '\0')
		strcpy(s, "/");
}

bool
pol_has_dotdot(const char *s)
{
	const char *p = s;

	while ((p = strstr(p, "..")) != NULL) {
		if ((p == s || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
			return true;
		p += 2;
	}
	return false;
}

bool
pol_segs_compile(const char *path, struct pol_seg **out, size_t *nout)
{
	const char *p, *slash;
	size_t n = 0;

	for (p = path; p != NULL; p = strchr(p, '/') ? strchr(p, '/') + 1 :
	    NULL)
		n++;
	if ((*out = calloc(n, sizeof(**out))) == NULL)
		return false;
	*nout = 0;
	for (p = path; p != NULL; p = slash != NULL ? slash + 1 : NULL) {
		struct pol_seg *sg = &(*out)[(*nout)++];

		slash = strchr(p, '/');
		sg->s = p;
		sg->len = slash != NULL ? (size_t)(slash - p) : strlen(p);
		sg->deep = sg->len == 2 && memcmp(p, "**", 2) == 0;
	}
	return true;
}

bool
pol_binary_compile(const char *raw, struct pol_binary *b, char *err,
    size_t errlen)
{
	memset(b, 0, sizeof(*b));
	if (raw[0] != '/') {
		snprintf(err, errlen, "'%s' is not an absolute path", raw);
		return false;
	}
	if (strlen(raw) > POL_MAX_PATH) {
		snprintf(err, errlen, "path is longer than %d characters",
		    POL_MAX_PATH);
		return false;
	}
	if (pol_has_dotdot(raw)) {
		snprintf(err, errlen, "'%s' has a '..' component", raw);
		return false;
	}
	if ((b->path = strdup(raw)) == NULL)
		goto oom;
	tidy(b->path);
	b->glob = strchr(b->path, '*') != NULL;
	if (!b->glob)
		return true;
	if (!pol_segs_compile(b->path, &b->segs, &b->nsegs))
		goto oom;
	return true;
oom:
	pol_binary_clear(b);
	snprintf(err, errlen, "out of memory");
	return false;
}

/*
 * Segment-level glob: "**" (a whole segment) matches zero or more
 * segments, any other segment matches one segment with '*' inside it.
 * The same one-backtrack-point scheme as pol_glob_segment, one level up,
 * so a hostile exe path cannot make it explode.
 */
bool
pol_segs_match(const struct pol_seg *segs, size_t nsegs, const char *text)
{
	size_t pi = 0, star_pi = SIZE_MAX, tl;
	const char *t = text, *star_t = NULL, *next;

	while (t != NULL) {
		tl = strcspn(t, "/");
		next = t[tl] == '/' ? t + tl + 1 : NULL;
		if (pi < nsegs && segs[pi].deep) {
			star_pi = ++pi;
			star_t = t;
		} else if (pi < nsegs && pol_glob_segment(segs[pi].s,
		    segs[pi].len, t, tl)) {
			pi++;
			t = next;
		} else if (star_pi != SIZE_MAX) {
			pi = star_pi;
			tl = strcspn(star_t, "/");
			star_t = star_t[tl] == '/' ? star_t + tl + 1 : NULL;
			t = star_t;
		} else {
			return false;
		}
	}
	while (pi < nsegs && segs[pi].deep)
		pi++;
	return pi == nsegs;
}

bool
pol_binary_match(const struct pol_binary *b, const char *exe)
{
	if (b->glob)
		return pol_segs_match(b->segs, b->nsegs, exe);
	if (strcmp(b->path, exe) == 0)
		return true;
	return b->resolved != NULL && strcmp(b->resolved, exe) == 0;
}

/* Relative form of an absolute path for the *at() calls on the root. */
static const char *
rel(const char *abs)
{
	return abs[0] == '\0' || abs[1] == '\0' ? "." : abs + 1;
}

/*
 * realpath(3) confined to rootfd: each component is looked at with
 * AT_SYMLINK_NOFOLLOW, links are expanded by hand, an absolute target
 * restarts at the root and ".." never climbs above it. The prefix being
 * walked never holds a symlink, so the kernel never follows one for us.
 */
enum pol_resolve
pol_binary_resolve(int rootfd, const char *path, char **out, char *err,
    size_t errlen)
{
	char res[PATH_MAX + 1] = "", todo[2 * PATH_MAX + 2], tmp[2 * PATH_MAX + 2];
	char target[PATH_MAX + 1];
	const char *p = NULL, *comp;
	size_t clen, rlen = 0;
	struct stat st;
	int links = 0;
	ssize_t tn;

	if (strlen(path) > PATH_MAX)
		return POL_RESOLVE_MISSING;
	strcpy(todo, path);
	p = todo;
	for (;;) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		comp = p;
		clen = strcspn(p, "/");
		p += clen;
		if (clen == 1 && comp[0] == '.')
			continue;
		if (clen == 2 && comp[0] == '.' && comp[1] == '.') {
			while (rlen > 0 && res[--rlen] != '/')
				;
			res[rlen] = '\0';
			continue;
		}
		if (rlen + 1 + clen > PATH_MAX)
			return POL_RESOLVE_MISSING;
		res[rlen] = '/';
		memcpy(res + rlen + 1, comp, clen);
		res[rlen + 1 + clen] = '\0';
		if (fstatat(rootfd, rel(res), &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				return POL_RESOLVE_MISSING;
			snprintf(err, errlen, "cannot look at %s: %s", res,
			    strerror(errno));
			return POL_RESOLVE_ERROR;
		}
		if (!S_ISLNK(st.st_mode)) {
			rlen += 1 + clen;
			continue;
		}
		if (++links > MAX_LINKS) {
			snprintf(err, errlen, "too many levels of symbolic "
			    "links at %s", res);
			return POL_RESOLVE_ERROR;
		}
		tn = readlinkat(rootfd, rel(res), target, sizeof(target) - 1);
		if (tn <= 0) {
			snprintf(err, errlen, "cannot read link %s: %s", res,
			    strerror(errno));
			return POL_RESOLVE_ERROR;
		}
		target[tn] = '\0';
		res[rlen] = '\0';
		if (target[0] == '/') {
			rlen = 0;
			res[0] = '\0';
		}
		snprintf(tmp, sizeof(tmp), "%s/%s", target, p);
		strcpy(todo, tmp);
		p = todo;
	}
	if (rlen == 0)
		strcpy(res, "/");
	if (strcmp(res, path) == 0)
		return POL_RESOLVE_SAME;
	if ((*out = strdup(res)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return POL_RESOLVE_ERROR;
	}
	return POL_RESOLVE_LINK;
}

/* ---- what a policy binary path risks ---- */

const char *const moat_policy_sandbox_writable[] = {
	"/sandbox", "/tmp", "/var/tmp", "/dev/shm", NULL,
};

/* Is path dir itself or below it? */
static bool
path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(path, dir, n) == 0 && (path[n] == '/' ||
	    path[n] == '\0');
}

/*
 * Could the glob match dir or something below it? dir's segments are
 * walked against the glob's: "**" reaches anywhere, a segment must
 * match, and a glob that ends above dir matches only its ancestors.
 */
static bool
glob_reaches(const struct pol_binary *b, const char *dir)
{
	const char *t = dir;
	size_t pi = 0;

	for (;;) {
		size_t tl = strcspn(t, "/");

		if (pi == b->nsegs)
			return false;
		if (b->segs[pi].deep)
			return true;
		if (!pol_glob_segment(b->segs[pi].s, b->segs[pi].len, t, tl))
			return false;
		pi++;
		if (t[tl] == '\0')
			return true;
		t += tl + 1;
	}
}

static bool
reaches(const struct pol_binary *b, const char *dir)
{
	if (b->glob)
		return glob_reaches(b, dir);
	return path_under(b->path, dir) ||
	    (b->resolved != NULL && path_under(b->resolved, dir));
}

bool
pol_binary_writable(const struct pol_binary *b, const char *const *rw,
    char *where, size_t len)
{
	for (size_t i = 0; moat_policy_sandbox_writable[i] != NULL; i++)
		if (reaches(b, moat_policy_sandbox_writable[i])) {
			snprintf(where, len, "%s%s", moat_policy_sandbox_writable[i],
			    i == 0 ? " (the workspace)" : "");
			return true;
		}
	for (size_t i = 0; rw != NULL && rw[i] != NULL; i++)
		if (reaches(b, rw[i])) {
			snprintf(where, len, "%s (a read_write path)", rw[i]);
			return true;
		}
	return false;
}

bool
moat_policy_binary_writable(const struct moat_policy *p, const char *path,
    char *where, size_t len)
{
	struct pol_binary b;
	char err[128];
	bool w;

	if (!pol_binary_compile(path, &b, err, sizeof(err)))
		return false;
	w = pol_binary_writable(&b, p != NULL ? moat_policy_read_write(p) :
	    NULL, where, len);
	pol_binary_clear(&b);
	return w;
}

bool
moat_binary_is_interpreter(const char *path)
{
	static const char *const pats[] = { "python*", "pypy*", "node",
		"nodejs", "ruby*", "perl*", "php*", "lua*", "luajit*", "bash",
		"sh", "dash", "zsh", "ksh*", "mksh", "fish", "busybox", "deno",
		"bun", "java", "tclsh*", "wish*", "pwsh", "R", "Rscript", "irb",
		"gawk", "awk", "mawk" };
	const char *base = strrchr(path, '/');

	base = base != NULL ? base + 1 : path;
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++)
		if (fnmatch(pats[i], base, 0) == 0)
			return true;
	return false;
}

bool
pol_binary_owned_by(int rootfd, const struct pol_binary *b, uid_t uid,
    char *which, size_t len)
{
	char buf[PATH_MAX + 1];
	struct stat st;
	char *slash;

	/* A resolved path holds no symlink: nothing is followed here. */
	if (rootfd == -1 || b->glob || strlen(b->resolved != NULL ?
	    b->resolved : b->path) > PATH_MAX)
		return false;
	strcpy(buf, b->resolved != NULL ? b->resolved : b->path);
	for (;;) {
		if (fstatat(rootfd, rel(buf), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_uid == uid) {
			snprintf(which, len, "%s", buf);
			return true;
		}
		if ((slash = strrchr(buf, '/')) == NULL || slash == buf)
			return false;
		*slash = '\0';
	}
}
