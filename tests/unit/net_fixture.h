/*
 * What the sandbox network tests share (test_net.c, test_netns.c): this
 * run's address pool, shell inspection (`ip`, `nft` only look), a fresh
 * machine's mount state, and checks that nothing of a name is left.
 */
#ifndef MOAT_TESTS_NET_FIXTURE_H
#define MOAT_TESTS_NET_FIXTURE_H

#include <sys/mount.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/net.h"
#include "tests/unit/tap.h"

/*
 * This run's pool: the pid-th /27 of 10.64.0.0/10. Slots 0-6 are for
 * sandboxes, slot 7 for the upstream test host.
 */
static char pool[32];
static uint32_t pool_base; /* host order */
#define POOL pool
#define UPSTREAM_SLOT 7

static void
pool_init(void)
{
	struct in_addr a;
	char dotted[INET_ADDRSTRLEN];

	pool_base = (10u << 24 | 64u << 16) +
	    ((uint32_t)getpid() % (1u << 17)) * 32;
	a.s_addr = htonl(pool_base);
	inet_ntop(AF_INET, &a, dotted, sizeof(dotted));
	snprintf(pool, sizeof(pool), "%s/27", dotted);
}

static char out_buf[65536];

/* Output of a shell command (inspection only); "" on failure. */
static const char *
run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *
run(const char *fmt, ...)
{
	char cmd[512];
	size_t n = 0, k;
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	out_buf[0] = '\0';
	if ((f = popen(cmd, "r")) == NULL)
		return out_buf;
	while (n < sizeof(out_buf) - 1 &&
	    (k = fread(out_buf + n, 1, sizeof(out_buf) - 1 - n, f)) > 0)
		n += k;
	out_buf[n] = '\0';
	pclose(f);
	return out_buf;
}

static bool
has(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

/* A TCP port nobody uses right now on this host. */
static uint16_t
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	uint16_t port = 0;
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/*
 * Is anything of netns moat-NAME left in /run/netns: the file, or a
 * mount of it in any layer (mountinfo lists even those hidden below a
 * later mount of the directory, which `ip netns list` cannot see)?
 */
static bool
netns_left(const char *name)
{
	char path[96], line[1024];
	struct stat st;
	bool left;
	FILE *f;

	snprintf(path, sizeof(path), "/run/netns/moat-%s", name);
	left = lstat(path, &st) == 0;
	strcat(path, " ");
	if ((f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return true;
	while (!left && fgets(line, sizeof(line), f) != NULL)
		left = has(line, path);
	fclose(f);
	return left;
}

/* Nothing named after `tag` left in netns, links, nft tables. */
static bool
wait_gone(const char *name, const char *host_if, int ms)
{
	int64_t end = moat_now_ms() + ms;
	char ns[96], tbl[96];

	snprintf(ns, sizeof(ns), "moat-%s ", name);
	snprintf(tbl, sizeof(tbl), "inet moat-%s\n", name);
	do {
		bool left = has(run("ip netns list; echo"), ns) ||
		    has(run("nft list tables; echo"), tbl) ||
		    netns_left(name);
		char lk[32];

		snprintf(lk, sizeof(lk), ": %s@", host_if);
		left = left || has(run("ip -o link 2>/dev/null"), lk);
		if (!left)
			return true;
		usleep(20000);
	} while (moat_now_ms() < end);
	return false;
}

/* Is /run/netns a mount point (the root of a mount) here? */
static bool
netns_dir_mounted(void)
{
	struct statx stx;

	if (statx(AT_FDCWD, "/run/netns", AT_SYMLINK_NOFOLLOW,
	    STATX_BASIC_STATS, &stx) != 0 ||
	    !(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return true;
	return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

/*
 * A fresh machine's mount state for what follows: a new private mount
 * namespace whose /run is a new tmpfs holding /run/netns as a plain
 * directory, as before moat or `ip netns add` ever ran. Each call
 * starts afresh; the mounts vanish with this process.
 */
static bool
fresh_mount_state(const char *why)
{
	bool fresh = unshare(CLONE_NEWNS) == 0 &&
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
	    mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV,
	    "mode=0755,size=1m") == 0 && mkdir("/run/netns", 0755) == 0 &&
	    !netns_dir_mounted();

	return ok(fresh, "%s: fresh mount state, /run/netns a plain "
	    "directory (%s)", why, fresh ? "yes" : strerror(errno));
}

/* Root, ip and nft there, this run's pool picked: else say why not. */
static bool
net_tests_ready(void)
{
	if (geteuid() != 0) {
		skip("network setup needs root");
		return false;
	}
	if (!has(run("ip -V 2>&1; nft -v 2>&1"), "nftables")) {
		skip("needs ip and nft to inspect the result");
		return false;
	}
	pool_init();
	diag("pool %s", pool);
	return true;
}

#endif
