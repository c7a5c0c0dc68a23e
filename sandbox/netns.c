/*
 * The sandbox network's lifecycle: netns, veth, addresses, nft tables.
 *
 * Netlink sockets for the sandbox side are created inside the sandbox
 * netns (enter, socket, return) and then used from the host netns, so
 * this thread spends only a few syscalls inside. See docs/network.md.
 */
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/netlink.h>

#include <libmnl/libmnl.h>

#include "common/log.h"
#include "common/util.h"
#include "sandbox/net.h"

#define NETNS_DIR "/run/netns"
#define NAME_MAX_LEN 64

struct moat_net {
	char name[NAME_MAX_LEN + 1];
	char nsfile[NAME_MAX_LEN + 8]; /* "moat-NAME" in NETNS_DIR */
	char nspath[sizeof(NETNS_DIR) + NAME_MAX_LEN + 8]; /* bind mount */
	char host_if[IFNAMSIZ];
	char sb_if[IFNAMSIZ];
	char table[NAME_MAX_LEN + 8]; /* host table "moat-NAME" */
	char host_addr[INET_ADDRSTRLEN];
	char sb_addr[INET_ADDRSTRLEN];
	struct moat_net_addrs addrs;
	uint16_t port;
	uint16_t group;
	int netns_fd;
	/*
	 * NETNS_DIR (O_PATH) as it was when we mounted the netns there:
	 * teardown reaches our mount through it even if something has
	 * mounted over the directory since.
	 */
	int dir_fd;
	/* What exists, so that free() undoes exactly that. */
	bool mounted;
	bool veth;
	bool host_table;
};

static void net_destroy(struct moat_net *n, bool sync);

/*
 * One nftables socket for the host netns, kept open for the process's
 * life: closing a NETLINK_NETFILTER socket right after a table delete
 * waits for the kernel's deferred destroy (an RCU grace period, ~10 ms),
 * which would triple the cost of a whole sandbox start and stop. A
 * forked child opens its own rather than share the parent's replies.
 */
static struct {
	pthread_mutex_t lock;
	struct mnl_socket *nl;
	pid_t pid;
} host_nft = { PTHREAD_MUTEX_INITIALIZER, NULL, 0 };

/* Lock and return the host nft socket; host_nft_put() unlocks. */
static int
host_nft_get(struct mnl_socket **out, struct moat_cause *cause)
{
	int r;

	pthread_mutex_lock(&host_nft.lock);
	if (host_nft.nl != NULL && host_nft.pid != getpid()) {
		mnl_socket_close(host_nft.nl);
		host_nft.nl = NULL;
	}
	if (host_nft.nl == NULL) {
		if ((r = moat_nl_open(NETLINK_NETFILTER, &host_nft.nl,
		    cause)) != 0) {
			pthread_mutex_unlock(&host_nft.lock);
			return r;
		}
		host_nft.pid = getpid();
	}
	*out = host_nft.nl;
	return MOAT_OK;
}

/* After a failed exchange the socket may hold stray replies: drop it. */
static void
host_nft_put(int r)
{
	if (r != 0 && r != MOAT_ERR_EXISTS && r != MOAT_ERR_NOTFOUND) {
		mnl_socket_close(host_nft.nl);
		host_nft.nl = NULL;
	}
	pthread_mutex_unlock(&host_nft.lock);
}

/* Setup-time state: netlink sockets of both sides. */
struct net_ctx {
	struct moat_net *n;
	const struct moat_net_config *c;
	struct mnl_socket *host_rtnl;
	struct mnl_socket *sb_rtnl;
	struct mnl_socket *sb_nft;
	int sb_index;
	int lo_index;
};

/* This thread's netns (setns works per thread). */
static int
self_netns(void)
{
	return open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
}

int
moat_netns_run(int netns_fd, int (*fn)(void *, struct moat_cause *),
    void *arg, struct moat_cause *cause)
{
	int self, r;

	if ((self = self_netns()) == -1) {
		moat_cause_errno(cause, "open /proc/thread-self/ns/net");
		return MOAT_ERR_SYSTEM;
	}
	if (setns(netns_fd, CLONE_NEWNET) == -1) {
		moat_cause_errno(cause, "setns into the sandbox netns");
		close(self);
		return MOAT_ERR_SYSTEM;
	}
	r = fn(arg, cause);
	/* Staying in the sandbox netns would misdirect all later work. */
	if (setns(self, CLONE_NEWNET) == -1)
		log_fatal("setns back to the host netns: %s", strerror(errno));
	close(self);
	return r;
}

static bool
name_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > NAME_MAX_LEN || s[0] == '.' || s[0] == '-')
		return false;
	for (i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
		    ch == '-'))
			return false;
	}
	return true;
}

/* "mh-NAME", or "mh-" + 4 chars + 8 hex of a hash when NAME is long. */
static void
veth_name(char *out, const char *prefix, const char *name)
{
	size_t pl = strlen(prefix), nl = strlen(name);
	uint32_t h = 2166136261u; /* FNV-1a */
	const char *p;

	if (pl + nl < IFNAMSIZ) {
		memcpy(out, prefix, pl);
		memcpy(out + pl, name, nl + 1);
		return;
	}
	for (p = name; *p != '\0'; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	snprintf(out, IFNAMSIZ, "%s%.4s%08x", prefix, name, h);
}

/* The index-th /30 of pool: host .1, sandbox .2. */
static int
pool_slot(const char *pool, uint32_t index, struct moat_net_addrs *a,
    struct moat_cause *cause)
{
	char buf[INET_ADDRSTRLEN + 4], *slash, *end;
	struct in_addr ia;
	unsigned long plen;
	uint32_t base, mask;

	if (strlen(pool) >= sizeof(buf))
		goto bad;
	strcpy(buf, pool);
	if ((slash = strchr(buf, '/')) == NULL)
		goto bad;
	*slash++ = '\0';
	errno = 0;
	plen = strtoul(slash, &end, 10);
	if (errno != 0 || *end != '\0' || end == slash || plen < 8 ||
	    plen > 30 || inet_pton(AF_INET, buf, &ia) != 1)
		goto bad;
	mask = (uint32_t)(0xffffffffu << (32 - plen));
	base = ntohl(ia.s_addr);
	if ((base & ~mask) != 0)
		goto bad;
	if ((uint64_t)index >= (1ull << (30 - plen))) {
		moat_cause_set(cause, "subnet slot %u is outside pool %s "
		    "(%llu slots)", index, pool, 1ull << (30 - plen));
		return MOAT_ERR_INVALID;
	}
	base += index * 4;
	a->host = htonl(base + 1);
	a->sandbox = htonl(base + 2);
	a->plen = 30;
	return MOAT_OK;
bad:
	moat_cause_set(cause, "network pool %s: not an IPv4 prefix like "
	    "10.200.0.0/16 (/8 to /30)", pool);
	return MOAT_ERR_INVALID;
}

static int
net_init(struct moat_net *n, const struct moat_net_config *c,
    struct moat_cause *cause)
{
	int r;

	if (c->name == NULL || !name_ok(c->name)) {
		moat_cause_set(cause, "sandbox name \"%s\": use 1 to %d of "
		    "A-Z a-z 0-9 _ . -", c->name ? c->name : "",
		    NAME_MAX_LEN);
		return MOAT_ERR_INVALID;
	}
	if ((r = pool_slot(c->pool ? c->pool : MOAT_NET_DEFAULT_POOL,
	    c->index, &n->addrs, cause)) != 0)
		return r;
	strcpy(n->name, c->name);
	snprintf(n->nsfile, sizeof(n->nsfile), "moat-%s", c->name);
	snprintf(n->nspath, sizeof(n->nspath), "%s/%s", NETNS_DIR, n->nsfile);
	snprintf(n->table, sizeof(n->table), "moat-%s", c->name);
	veth_name(n->host_if, "mh-", c->name);
	veth_name(n->sb_if, "ms-", c->name);
	inet_ntop(AF_INET, &n->addrs.host, n->host_addr, sizeof(n->host_addr));
	inet_ntop(AF_INET, &n->addrs.sandbox, n->sb_addr, sizeof(n->sb_addr));
	n->port = c->proxy_port ? c->proxy_port : MOAT_NET_DEFAULT_PROXY_PORT;
	n->group = c->nflog_group ? c->nflog_group :
	    MOAT_NET_DEFAULT_NFLOG_GROUP;
	return MOAT_OK;
}

/* A new netns for this thread's caller, without staying in it. */
static int
netns_create(int *out, struct moat_cause *cause)
{
	int self = -1, fd = -1, r = MOAT_ERR_SYSTEM;

	if ((self = self_netns()) == -1) {
		moat_cause_errno(cause, "open /proc/thread-self/ns/net");
		return MOAT_ERR_SYSTEM;
	}
	if (unshare(CLONE_NEWNET) == -1) {
		moat_cause_errno(cause, "unshare(CLONE_NEWNET)");
		goto out;
	}
	fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		moat_cause_errno(cause, "open the new netns");
	if (setns(self, CLONE_NEWNET) == -1)
		log_fatal("setns back to the host netns: %s", strerror(errno));
	if (fd == -1)
		goto out;
	*out = fd;
	r = MOAT_OK;
out:
	close(self);
	return r;
}

/* NETNS_DIR as an O_PATH fd of the layer its path reaches now. */
static int
netns_dir_fd(void)
{
	return open(NETNS_DIR, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/*
 * Make NETNS_DIR a shared mount of itself, as `ip netns add` does before
 * its first mount there, and return an O_PATH fd of it. A netns file
 * mounted on a plain directory ends up under the bind mount the next
 * `ip netns add` makes, where its name reaches neither umount nor
 * unlink. Shared, so that an unmount in one mount namespace is one in
 * all of them. Serialised: two binds racing would stack two layers.
 */
static int
netns_dir_open(int *out, struct moat_cause *cause)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	bool bound = false;
	int fd, r = MOAT_ERR_SYSTEM;

	pthread_mutex_lock(&lock);
	if (mkdir(NETNS_DIR, 0755) == -1 && errno != EEXIST) {
		moat_cause_errno(cause, "mkdir %s", NETNS_DIR);
		goto out;
	}
	while (mount("", NETNS_DIR, "none", MS_SHARED | MS_REC, NULL) == -1) {
		/* EINVAL: not a mount point yet; make it one, once. */
		if (errno != EINVAL || bound) {
			moat_cause_errno(cause, "make %s a shared mount",
			    NETNS_DIR);
			goto out;
		}
		if (mount(NETNS_DIR, NETNS_DIR, "none", MS_BIND | MS_REC,
		    NULL) == -1) {
			moat_cause_errno(cause, "bind-mount %s on itself",
			    NETNS_DIR);
			goto out;
		}
		bound = true;
	}
	if ((fd = netns_dir_fd()) == -1) {
		moat_cause_errno(cause, "open %s", NETNS_DIR);
		goto out;
	}
	*out = fd;
	r = MOAT_OK;
out:
	pthread_mutex_unlock(&lock);
	return r;
}

/* "/proc/self/fd/DIR/FILE": FILE in the directory layer dir_fd holds. */
static void
at_dir(char *buf, size_t len, int dir_fd, const char *file)
{
	snprintf(buf, len, "/proc/self/fd/%d/%s", dir_fd, file);
}

/* /run/netns/moat-NAME, like `ip netns add`, so `ip netns` shows it. */
static int
netns_mount(struct moat_net *n, struct moat_cause *cause)
{
	char src[64], dst[sizeof(n->nsfile) + 32];
	int fd, r;

	if ((r = netns_dir_open(&n->dir_fd, cause)) != 0)
		return r;
	fd = openat(n->dir_fd, n->nsfile, O_RDONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC | O_NOFOLLOW, 0444);
	if (fd == -1) {
		moat_cause_errno(cause, "create %s%s", n->nspath,
		    errno == EEXIST ? " (a netns of that name exists)" : "");
		return errno == EEXIST ? MOAT_ERR_EXISTS : MOAT_ERR_SYSTEM;
	}
	close(fd);
	snprintf(src, sizeof(src), "/proc/self/fd/%d", n->netns_fd);
	at_dir(dst, sizeof(dst), n->dir_fd, n->nsfile);
	if (mount(src, dst, "none", MS_BIND, NULL) == -1) {
		moat_cause_errno(cause, "bind-mount the netns on %s",
		    n->nspath);
		unlinkat(n->dir_fd, n->nsfile, 0);
		return MOAT_ERR_SYSTEM;
	}
	n->mounted = true;
	return MOAT_OK;
}

static int
disable_ipv6(const char *ifname, struct moat_cause *cause)
{
	char path[96];
	int fd;

	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6",
	    ifname);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1) {
		/* A kernel without IPv6 has nothing to disable. */
		if (errno == ENOENT)
			return MOAT_OK;
		moat_cause_errno(cause, "open %s", path);
		return MOAT_ERR_SYSTEM;
	}
	if (write(fd, "1", 1) != 1) {
		moat_cause_errno(cause, "write %s", path);
		close(fd);
		return MOAT_ERR_SYSTEM;
	}
	close(fd);
	return MOAT_OK;
}

static int
step_netns(struct net_ctx *x, struct moat_cause *cause)
{
	struct moat_net *n = x->n;
	int r;

	if (x->c->netns_fd >= 0) {
		n->netns_fd = fcntl(x->c->netns_fd, F_DUPFD_CLOEXEC, 3);
		if (n->netns_fd == -1) {
			moat_cause_errno(cause, "dup the sandbox netns fd");
			return MOAT_ERR_SYSTEM;
		}
	} else if ((r = netns_create(&n->netns_fd, cause)) != 0)
		return r;
	return netns_mount(n, cause);
}

/*
 * A host end that exists but is down: a torn-down pair whose netns
 * lives on (moat_net_free sets the host end down; an orphaned TCP socket
 * in FIN_WAIT can keep a netns for a minute).
 */
static bool
link_is_down(const char *ifname)
{
	struct ifreq ifr;
	int fd;
	bool down = false;

	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return false;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, strnlen(ifname, IFNAMSIZ - 1));
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0)
		down = !(ifr.ifr_flags & IFF_UP);
	close(fd);
	return down;
}

static int
step_veth(struct net_ctx *x, struct moat_cause *cause)
{
	struct moat_net *n = x->n;
	int r;

	if ((r = moat_nl_open(NETLINK_ROUTE, &x->host_rtnl, cause)) != 0)
		return r;
	r = moat_rtnl_veth_create(x->host_rtnl, n->host_if, n->sb_if,
	    n->netns_fd, cause);
	/*
	 * We hold the /run/netns name, so a down host end of that name is
	 * a leftover of an earlier sandbox: reclaim it (synchronously, the
	 * slow delete that moat_net_free skipped).
	 */
	if (r == MOAT_ERR_EXISTS && link_is_down(n->host_if)) {
		log_verbose("sandbox %s: reclaiming leftover link %s", n->name,
		    n->host_if);
		if (moat_rtnl_link_del(x->host_rtnl, n->host_if, cause) == 0)
			r = moat_rtnl_veth_create(x->host_rtnl, n->host_if,
			    n->sb_if, n->netns_fd, cause);
	}
	if (r == MOAT_ERR_EXISTS)
		moat_cause_set(cause, "veth %s or %s already exists",
		    n->host_if, n->sb_if);
	if (r == 0)
		n->veth = true;
	return r;
}

/* The host table's parameters (the sandbox table: table "moat"). */
static void
host_params(const struct moat_net *n, struct moat_nft_params *p)
{
	memset(p, 0, sizeof(*p));
	p->table = n->table;
	p->veth = n->host_if;
	p->host_addr = n->addrs.host;
	p->proxy_port = n->port;
	p->nflog_group = n->group;
}

static int
step_host(struct net_ctx *x, struct moat_cause *cause)
{
	struct moat_net *n = x->n;
	struct moat_nft_params p;
	struct mnl_socket *nl = NULL;
	unsigned idx;
	int r;

	/* Before the link is up: no fe80:: address, no router solicits. */
	if ((r = disable_ipv6(n->host_if, cause)) != 0)
		return r;
	if ((idx = if_nametoindex(n->host_if)) == 0) {
		moat_cause_errno(cause, "ifindex of %s", n->host_if);
		return MOAT_ERR_SYSTEM;
	}
	if ((r = moat_rtnl_conf(x->host_rtnl, (int)idx, n->addrs.host,
	    n->addrs.plen, 0, 0, cause)) != 0)
		return r;
	host_params(n, &p);
	if ((r = host_nft_get(&nl, cause)) != 0)
		return r;
	r = moat_nft_host_rules(nl, &p, cause);
	host_nft_put(r);
	if (r == MOAT_ERR_EXISTS)
		moat_cause_set(cause, "nft table inet %s already exists",
		    n->table);
	if (r == 0)
		n->host_table = true;
	return r;
}

/* Runs inside the sandbox netns: only what must happen there. */
static int
in_sandbox_ns(void *arg, struct moat_cause *cause)
{
	struct net_ctx *x = arg;
	unsigned idx;
	int r;

	/* /proc/sys/net is the netns of whoever opens it: this one. */
	if ((r = disable_ipv6("all", cause)) != 0 ||
	    (r = disable_ipv6("default", cause)) != 0)
		return r;
	if ((r = moat_nl_open(NETLINK_ROUTE, &x->sb_rtnl, cause)) != 0 ||
	    (r = moat_nl_open(NETLINK_NETFILTER, &x->sb_nft, cause)) != 0)
		return r;
	if ((idx = if_nametoindex("lo")) == 0) {
		moat_cause_errno(cause, "ifindex of lo in the sandbox netns");
		return MOAT_ERR_SYSTEM;
	}
	x->lo_index = (int)idx;
	if ((idx = if_nametoindex(x->n->sb_if)) == 0) {
		moat_cause_errno(cause, "ifindex of %s", x->n->sb_if);
		return MOAT_ERR_SYSTEM;
	}
	x->sb_index = (int)idx;
	return MOAT_OK;
}

static int
step_sandbox(struct net_ctx *x, struct moat_cause *cause)
{
	struct moat_net *n = x->n;
	struct moat_nft_params p = {
		.table = "moat",
		.host_addr = n->addrs.host,
		.proxy_port = n->port,
		.nflog_group = n->group,
	};
	int r;

	if ((r = moat_netns_run(n->netns_fd, in_sandbox_ns, x, cause)) != 0)
		return r;
	p.lo_index = x->lo_index;
	/* Rules before the link is up: no packet leaves unfiltered. */
	if ((r = moat_nft_sandbox_rules(x->sb_nft, &p, cause)) != 0)
		return r;
	return moat_rtnl_conf(x->sb_rtnl, x->sb_index, n->addrs.sandbox,
	    n->addrs.plen, n->addrs.host, x->lo_index, cause);
}

struct net_step {
	const char *name;
	int (*run)(struct net_ctx *, struct moat_cause *);
};

/*
 * Order: the host end is filtered and addressed before the sandbox end
 * comes up, and the sandbox's rules exist before its link is up.
 */
static const struct net_step net_steps[] = {
	{ "netns", step_netns },     /* create or adopt; /run/netns mount */
	{ "veth", step_veth },       /* peer born inside the netns */
	{ "host", step_host },       /* host end: v6 off, addr, up, table */
	{ "sandbox", step_sandbox }, /* table inet moat, lo, addr, route */
};

int
moat_net_setup(const struct moat_net_config *c, struct moat_net **out,
    struct moat_cause *cause)
{
	struct net_ctx x = { .c = c };
	struct moat_net *n = NULL;
	size_t i;
	int r;

	if ((n = calloc(1, sizeof(*n))) == NULL) {
		moat_cause_set(cause, "network setup: out of memory");
		return MOAT_ERR_NOMEM;
	}
	n->netns_fd = -1;
	n->dir_fd = -1;
	x.n = n;
	if ((r = net_init(n, c, cause)) != 0)
		goto out;
	for (i = 0; i < MOAT_NELEM(net_steps); i++) {
		if ((r = net_steps[i].run(&x, cause)) != 0) {
			log_verbose("sandbox %s: network step %s failed",
			    n->name, net_steps[i].name);
			goto out;
		}
	}
	*out = n;
	n = NULL;
	r = MOAT_OK;
out:
	if (x.host_rtnl != NULL)
		mnl_socket_close(x.host_rtnl);
	if (x.sb_rtnl != NULL)
		mnl_socket_close(x.sb_rtnl);
	if (x.sb_nft != NULL)
		mnl_socket_close(x.sb_nft);
	/* A failed setup leaves nothing behind, not even a dying veth. */
	net_destroy(n, true);
	return r;
}

/* Is the bind mount at n->nspath the netns held in fd? */
static bool
same_netns(const char *path, int fd)
{
	struct stat a, b;

	return stat(path, &a) == 0 && fstat(fd, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int
adopt_tables(struct net_ctx *x, struct moat_cause *cause)
{
	struct moat_net *n = x->n;
	struct moat_nft_params p;
	struct mnl_socket *nl = NULL;
	int r;

	host_params(n, &p);
	p.replace = true;
	if ((r = host_nft_get(&nl, cause)) != 0)
		return r;
	r = moat_nft_host_rules(nl, &p, cause);
	host_nft_put(r);
	if (r != 0)
		return r;
	n->host_table = true;
	if ((r = moat_netns_run(n->netns_fd, in_sandbox_ns, x, cause)) != 0)
		return r;
	p.table = "moat";
	p.veth = NULL;
	p.lo_index = x->lo_index;
	return moat_nft_sandbox_rules(x->sb_nft, &p, cause);
}

int
moat_net_adopt(const struct moat_net_config *c, struct moat_net **out,
    struct moat_cause *cause)
{
	struct net_ctx x = { .c = c };
	struct moat_net *n = NULL;
	int r;

	if ((n = calloc(1, sizeof(*n))) == NULL)
		return MOAT_ERR_NOMEM;
	n->netns_fd = -1;
	n->dir_fd = -1;
	x.n = n;
	if ((r = net_init(n, c, cause)) != 0 ||
	    (r = netns_dir_open(&n->dir_fd, cause)) != 0)
		goto out;
	r = MOAT_ERR_NOTFOUND;
	if (c->netns_fd < 0 || (n->netns_fd = fcntl(c->netns_fd,
	    F_DUPFD_CLOEXEC, 3)) == -1) {
		moat_cause_set(cause, "sandbox %s: no netns to adopt", n->name);
		goto out;
	}
	if (!same_netns(n->nspath, n->netns_fd)) {
		moat_cause_set(cause, "sandbox %s: %s is not its netns",
		    n->name, n->nspath);
		goto out;
	}
	if (if_nametoindex(n->host_if) == 0 || link_is_down(n->host_if)) {
		moat_cause_set(cause, "sandbox %s: veth %s is missing or down",
		    n->name, n->host_if);
		goto out;
	}
	if ((r = adopt_tables(&x, cause)) != 0)
		goto out;
	/* Ours now: free() undoes all of it, as after moat_net_setup. */
	n->mounted = n->veth = true;
	*out = n;
	n = NULL;
	r = MOAT_OK;
out:
	if (x.sb_rtnl != NULL)
		mnl_socket_close(x.sb_rtnl);
	if (x.sb_nft != NULL)
		mnl_socket_close(x.sb_nft);
	/* A failed adoption changes nothing: the caller purges. */
	moat_net_release(n);
	return r;
}

/*
 * Host-side teardown: table, then the host end (down or deleted). The
 * first failure goes into cause (may be NULL); each is logged.
 */
static int
host_teardown(const char *name, const char *table, const char *host_if,
    bool del_link, struct moat_cause *cause)
{
	struct moat_cause why = { { 0 } };
	struct mnl_socket *nl = NULL;
	int r, ret = MOAT_OK;

	if (table != NULL) {
		if ((r = host_nft_get(&nl, &why)) == 0) {
			r = moat_nft_table_del(nl, table, &why);
			host_nft_put(r);
		}
		if (r != 0 && r != MOAT_ERR_NOTFOUND) {
			log_error("sandbox %s: %s", name, why.msg);
			moat_cause_set(cause, "%s", why.msg);
			ret = r;
		}
	}
	if (host_if != NULL) {
		if ((r = moat_nl_open(NETLINK_ROUTE, &nl, &why)) == 0) {
			r = del_link ? moat_rtnl_link_del(nl, host_if, &why) :
			    moat_rtnl_link_down(nl, host_if, &why);
			mnl_socket_close(nl);
		}
		if (r != 0 && r != MOAT_ERR_NOTFOUND) {
			log_error("sandbox %s: %s", name, why.msg);
			if (ret == MOAT_OK)
				moat_cause_set(cause, "%s", why.msg);
			ret = r;
		}
	}
	return ret;
}

/* Do fds a and b name the same directory? */
static bool
same_dir(int a, int b)
{
	struct stat sa, sb;

	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 &&
	    sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * Unmount and remove NETNS_DIR/file: our mount through dir_fd (the
 * layer we mounted it in), then any copy a later recursive bind of the
 * directory made at the visible path, then the file. mounted: we know
 * our mount is there, so its absence is worth a line in the log.
 */
static int
netns_unmount(const char *name, int dir_fd, const char *file, bool mounted)
{
	char path[sizeof(NETNS_DIR) + NAME_MAX_LEN + 32];
	int top, i, r = MOAT_OK;

	at_dir(path, sizeof(path), dir_fd, file);
	if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == -1 &&
	    (mounted || (errno != EINVAL && errno != ENOENT))) {
		log_error_errno("sandbox %s: umount %s/%s", name, NETNS_DIR,
		    file);
		r = MOAT_ERR_SYSTEM;
	}
	snprintf(path, sizeof(path), "%s/%s", NETNS_DIR, file);
	top = netns_dir_fd();
	for (i = 0; top != -1 && same_dir(top, dir_fd) && i < 8; i++)
		if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == -1)
			break;
	if (top != -1)
		close(top);
	if (unlinkat(dir_fd, file, 0) == -1 && (mounted || errno != ENOENT)) {
		/* EBUSY: mounted where no path of ours reaches it. */
		log_error_errno("sandbox %s: unlink %s%s", name, path,
		    errno == EBUSY ? " (still mounted below a later mount "
		    "of " NETNS_DIR ")" : "");
		r = MOAT_ERR_SYSTEM;
	}
	return r;
}

/* sync: delete the veth now (error paths), else just set it down. */
static void
net_destroy(struct moat_net *n, bool sync)
{
	struct moat_cause cause = { { 0 } };

	if (n == NULL)
		return;
	(void)host_teardown(n->name, n->host_table ? n->table : NULL,
	    n->veth ? n->host_if : NULL, sync, &cause);
	if (n->mounted)
		(void)netns_unmount(n->name, n->dir_fd, n->nsfile, true);
	moat_close(n->dir_fd);
	moat_close(n->netns_fd);
	free(n);
}

void
moat_net_free(struct moat_net *n)
{
	net_destroy(n, false);
}

void
moat_net_release(struct moat_net *n)
{
	if (n == NULL)
		return;
	moat_close(n->dir_fd);
	moat_close(n->netns_fd);
	free(n);
}

int
moat_net_purge(const char *name, struct moat_cause *cause)
{
	struct moat_net_config c = { .name = name, .netns_fd = -1 };
	struct moat_net n;
	int dir_fd, r, r2;

	memset(&n, 0, sizeof(n));
	if ((r = net_init(&n, &c, cause)) != 0)
		return r;
	r = host_teardown(name, n.table, n.host_if, true, cause);
	dir_fd = netns_dir_fd();
	if (dir_fd == -1 && errno != ENOENT && r == 0) {
		moat_cause_errno(cause, "open %s", NETNS_DIR);
		r = MOAT_ERR_SYSTEM;
	}
	if (dir_fd != -1 && (r2 = netns_unmount(name, dir_fd, n.nsfile,
	    false)) != 0 && r == 0) {
		moat_cause_set(cause, "cannot remove %s (see the log)",
		    n.nspath);
		r = r2;
	}
	moat_close(dir_fd);
	return r;
}

const char *
moat_net_host_addr(const struct moat_net *n)
{
	return n->host_addr;
}

const char *
moat_net_sandbox_addr(const struct moat_net *n)
{
	return n->sb_addr;
}

const char *
moat_net_host_ifname(const struct moat_net *n)
{
	return n->host_if;
}

const char *
moat_net_sandbox_ifname(const struct moat_net *n)
{
	return n->sb_if;
}

uint16_t
moat_net_proxy_port(const struct moat_net *n)
{
	return n->port;
}

uint16_t
moat_net_nflog_group(const struct moat_net *n)
{
	return n->group;
}

int
moat_net_netns_fd(const struct moat_net *n)
{
	return n->netns_fd;
}

struct sock_args {
	int domain;
	int type;
	int proto;
	int fd;
};

static int
in_ns_socket(void *arg, struct moat_cause *cause)
{
	struct sock_args *a = arg;

	if ((a->fd = socket(a->domain, a->type | SOCK_CLOEXEC,
	    a->proto)) == -1) {
		moat_cause_errno(cause, "socket in the sandbox netns");
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

int
moat_net_socket(const struct moat_net *n, int domain, int type, int proto,
    struct moat_cause *cause)
{
	struct sock_args a = { domain, type, proto, -1 };
	int r;

	if ((r = moat_netns_run(n->netns_fd, in_ns_socket, &a, cause)) != 0)
		return r;
	return a.fd;
}

static int
in_ns_nflog(void *arg, struct moat_cause *cause)
{
	return moat_nl_open(NETLINK_NETFILTER, arg, cause);
}

int
moat_net_nflog_open(const struct moat_net *n, int *fd,
    struct moat_cause *cause)
{
	struct mnl_socket *nl = NULL;
	int bufsz = 1 << 20, dfd = -1, r;

	if ((r = moat_netns_run(n->netns_fd, in_ns_nflog, &nl, cause)) != 0)
		return r;
	if ((r = moat_nflog_bind(nl, n->group, cause)) != 0)
		goto out;
	/* The fd outlives the mnl wrapper. */
	if ((dfd = fcntl(mnl_socket_get_fd(nl), F_DUPFD_CLOEXEC, 3)) == -1 ||
	    moat_fd_nonblock(dfd) != 0) {
		moat_cause_errno(cause, "nflog socket");
		r = MOAT_ERR_SYSTEM;
		goto out;
	}
	/* A burst of denials should not overflow the queue (best effort). */
	if (setsockopt(dfd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz,
	    sizeof(bufsz)) == -1)
		(void)setsockopt(dfd, SOL_SOCKET, SO_RCVBUF, &bufsz,
		    sizeof(bufsz));
	*fd = dfd;
	dfd = -1;
	r = MOAT_OK;
out:
	if (dfd >= 0)
		close(dfd);
	mnl_socket_close(nl);
	return r;
}
