/*
 * Code loaded into a caller (proxy/maps.c): px_maps_scan on maps and
 * mountinfo texts shaped like a sandbox's, then px_maps_check on this
 * very process in a private mount namespace where "/" is read-only and
 * a writable tmpfs holds a library it loads.
 */
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/internal.h"
#include "tests/unit/tap.h"

/* A sandbox's mounts: "/" and /usr read-only, /sandbox and /tmp not. */
static const char mountinfo[] =
    "600 500 0:50 / / ro,nosuid,nodev,relatime - tmpfs tmpfs ro\n"
    "601 600 254:0 /usr /usr ro,nosuid,nodev,relatime - ext4 /dev/vda rw\n"
    "602 600 254:0 /srv/ws /sandbox rw,nosuid,nodev,relatime - ext4 x rw\n"
    "603 602 254:0 /srv/vendor /sandbox/vendor ro,nosuid - ext4 x rw\n"
    "604 600 0:51 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw\n"
    "605 600 0:52 / /opt\\040tools ro,nosuid - tmpfs tmpfs ro\n"
    "606 604 0:53 / /tmp/ro ro - tmpfs tmpfs ro\n"
    "607 606 0:54 / /tmp/ro rw - tmpfs tmpfs rw\n";

#define LIBC "7f00-7f10 r-xp 00026000 fe:00 332835 " \
	"                    /usr/lib/x86_64-linux-gnu/libc.so.6\n"
#define CURL "5500-5510 r-xp 00002000 fe:00 248056 " \
	"                    /usr/bin/curl\n"

/* One maps text (plus libc and curl) under the mounts above. */
static int
scan(const char *extra, char *why, size_t len)
{
	char maps[4096], mi[sizeof(mountinfo)];

	snprintf(maps, sizeof(maps), CURL LIBC "%s", extra);
	memcpy(mi, mountinfo, sizeof(mi));
	why[0] = '\0';
	return px_maps_scan(maps, mi, "/usr/bin/curl", 248056, why, len);
}

static void
test_scan(void)
{
	static const struct {
		const char *line;
		const char *why; /* NULL: allowed */
	} cases[] = {
		{ "", NULL },
		{ "7f20-7f30 rwxp 00000000 00:00 0 \n", NULL },
		{ "7f20-7f30 r-xp 00000000 00:00 0                  [vdso]\n",
		    NULL },
		{ "7f20-7f30 r--p 00000000 fe:00 11 /sandbox/lib.so\n", NULL },
		{ "7f20-7f30 r-xp 00001000 fe:00 11            /sandbox/lib.so\n",
		    "code from /sandbox/lib.so loaded into /usr/bin/curl" },
		{ "7f20-7f30 r-xp 00001000 fe:00 11 /sandbox/vendor/lib.so\n",
		    NULL },
		{ "7f20-7f30 r-xp 00001000 fe:00 11 /sandbox/vendor\\057l.so\n",
		    "code from /sandbox/vendor\\057l.so loaded" },
		{ "7f20-7f30 r-xp 00001000 fe:00 11 /sandbox/vendorx/l.so\n",
		    "code from /sandbox/vendorx/l.so loaded" },
		{ "7f20-7f30 r-xp 00000000 00:01 9 /memfd:jit (deleted)\n",
		    "code from memfd:jit loaded into /usr/bin/curl" },
		{ "7f20-7f30 r-xp 00000000 00:01 9 /SYSV00001234 (deleted)\n",
		    "code from SYSV00001234 loaded" },
		{ "7f20-7f30 r-xp 00000000 00:01 9 /dev/zero (deleted)\n",
		    "code from /dev/zero loaded" },
		{ "7f20-7f30 r-xp 00000000 00:33 9 /tmp/x.so (deleted)\n",
		    "code from /tmp/x.so loaded" },
		{ "7f20-7f30 r-xp 00000000 00:33 9 /usr/lib/old.so (deleted)\n",
		    NULL },
		{ "7f20-7f30 r-xp 00000000 00:33 9 /opt tools/t.so\n", NULL },
		{ "7f20-7f30 r-xp 00000000 00:33 9 /tmp/ro/t.so\n",
		    "code from /tmp/ro/t.so" },
		{ "7f20-7f30 r-xp 00000000 00:0e 9 anon_inode:[x]\n",
		    "code from anon_inode:[x] loaded" },
		{ "7f20-7f30 r-xp 00000000 00:33 9 /sandbox/a (deleted) "
		    "(deleted)\n", "code from /sandbox/a (deleted) loaded" },
	};
	char why[512];
	int r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		r = scan(cases[i].line, why, sizeof(why));
		if (cases[i].why == NULL)
			is_int(r, MOAT_OK, "allowed: %.60s (%s)", cases[i].line,
			    why);
		else if (!ok(r == MOAT_ERR_DENIED && strstr(why,
		    cases[i].why) != NULL, "denied: %.60s", cases[i].line))
			diag("  got %d: %s", r, why);
	}
}

/* Whatever the mounts say, a mapping on no mount at all is refused. */
static void
test_no_mount(void)
{
	char maps[] = CURL "7f20-7f30 r-xp 00000000 00:33 9 /x/y.so\n";
	char mi[] = "2 1 254:0 /usr /usr ro - ext4 x rw\n";
	char why[256] = "";

	ok(px_maps_scan(maps, mi, "/usr/bin/curl", 248056, why,
	    sizeof(why)) ==
	    MOAT_ERR_DENIED && strstr(why, "/x/y.so") != NULL,
	    "a path under no listed mount: denied (%s)", why);
}

/*
 * A binary the policy allows from a writable place is exempt as its own
 * file (the inode it runs), not as its name: a file renamed over that
 * name after the start and then loaded is code from a writable place.
 */
static void
test_own_file(void)
{
	char mi[sizeof(mountinfo)], why[256] = "";
	char maps[] =
	    "5500-5510 r-xp 00002000 fe:00 77 /sandbox/tool (deleted)\n"
	    "7f20-7f30 r-xp 00001000 fe:00 78 /sandbox/tool\n" LIBC;
	char own[] = "5500-5510 r-xp 00002000 fe:00 77 /sandbox/tool\n" LIBC;

	memcpy(mi, mountinfo, sizeof(mi));
	is_int(px_maps_scan(own, mi, "/sandbox/tool", 77, why, sizeof(why)),
	    MOAT_OK, "the binary's own file in a writable place (%s)", why);
	memcpy(mi, mountinfo, sizeof(mi));
	ok(px_maps_scan(maps, mi, "/sandbox/tool", 77, why, sizeof(why)) ==
	    MOAT_ERR_DENIED && strstr(why, "code from /sandbox/tool loaded "
	    "into /sandbox/tool") != NULL, "another file with its name is "
	    "not its file (%s)", why);
}

/* Child: wait for the parent's byte on in, tell it on out. */
static int
step(int in, int out)
{
	char c = 0;

	return write(out, "s", 1) == 1 && read(in, &c, 1) == 1 ? 0 : -1;
}

/*
 * The real thing: a child in a mount namespace of its own ("/"
 * read-only, a writable tmpfs) loads a library from the tmpfs.
 */
static void
test_check_real(void)
{
	char dir[] = "/tmp/moat-maps-XXXXXX", lib[128], cmd[512], why[512];
	char exe[4096], c;
	size_t any = PX_MAPS_ANY, small = 100, big;
	struct stat est;
	int st, down[2], up[2], r;
	ssize_t n;
	pid_t pid;

	if (geteuid() != 0) {
		skip("a mount namespace needs root");
		return;
	}
	if (mkdtemp(dir) == NULL || pipe(down) != 0 || pipe(up) != 0) {
		ok(0, "mkdtemp, pipes: %s", strerror(errno));
		return;
	}
	snprintf(lib, sizeof(lib), "%s/l.so", dir);
	snprintf(cmd, sizeof(cmd), "printf 'int f(void){return 7;}' | "
	    "cc -shared -fPIC -x c -o %s - 2>/dev/null", lib);
	if ((pid = fork()) == 0) {
		close(down[1]);
		close(up[0]);
		if (unshare(CLONE_NEWNS) != 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
		    mount("tmpfs", dir, "tmpfs", 0, "size=4m") != 0 ||
		    system(cmd) != 0 ||
		    mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY,
		    NULL) != 0)
			_exit(2);
		if (step(down[0], up[1]) != 0 || dlopen(lib, RTLD_NOW) == NULL)
			_exit(3);
		if (step(down[0], up[1]) != 0)
			_exit(4);
		_exit(0);
	}
	close(down[0]);
	close(up[1]);
	snprintf(cmd, sizeof(cmd), "/proc/%d/exe", (int)pid);
	n = readlink(cmd, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	if (stat(cmd, &est) != 0)
		est.st_ino = 0;
	if (read(up[0], &c, 1) == 1) {
		r = px_maps_check(pid, -1, exe, est.st_ino, &any, why,
		    sizeof(why));
		is_int(r, MOAT_OK, "before dlopen: no code from a writable "
		    "mount (%s)", why);
		ok(any < PX_MAPS_ANY && PX_MAPS_ANY - any > 1000,
		    "the bytes read are taken from the budget (%zu)",
		    PX_MAPS_ANY - any);
		/* Where little may be spent: the caller tries elsewhere. */
		is_int(px_maps_check(pid, -1, exe, est.st_ino, &small, why,
		    sizeof(why)),
		    MOAT_ERR_AGAIN, "a budget smaller than the files: AGAIN");
		big = PX_MAPS_ANY - any;
		is_int(px_maps_check(pid, -1, exe, est.st_ino, &big, why,
		    sizeof(why)),
		    MOAT_OK, "a budget of exactly the files: checked");
		(void)!write(down[1], "g", 1);
	} else {
		ok(0, "the child set up its mount namespace");
	}
	if (read(up[0], &c, 1) == 1) {
		any = PX_MAPS_ANY;
		r = px_maps_check(pid, -1, exe, est.st_ino, &any, why,
		    sizeof(why));
		ok(r == MOAT_ERR_DENIED && strstr(why, lib) != NULL,
		    "after dlopen of %s: denied (%s)", lib, why);
		(void)!write(down[1], "g", 1);
	} else {
		ok(0, "the child loaded the library");
	}
	close(down[1]);
	close(up[0]);
	waitpid(pid, &st, 0);
	is_int(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0, "child ran");
	any = PX_MAPS_ANY;
	is_int(px_maps_check(pid, -1, exe, est.st_ino, &any, why,
	    sizeof(why)),
	    MOAT_ERR_NOTFOUND, "a reaped process: NOTFOUND");
	rmdir(dir);
}

int
main(void)
{
	test_scan();
	test_no_mount();
	test_own_file();
	test_check_real();
	return done_testing();
}
