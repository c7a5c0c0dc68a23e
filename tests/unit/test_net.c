/*
 * The sandbox network: NFLOG parsing (no privileges), then, as root, a
 * real netns + veth + nft setup probed from inside, an "upstream" test
 * netns it must not reach, NFLOG delivery, two sandboxes side by side,
 * an adopted netns, failure cleanup and teardown. `ip` and `nft` only
 * inspect (and build the upstream host, whose `ip netns add` comes between
 * moat's setup and teardown); the library never runs them.
 *
 * The network tests run from a fresh machine's mount state (a private
 * mount namespace with a new /run, where /run/netns is a plain
 * directory), so the result never depends on what ran here before;
 * test_netns.c takes every order of moat and `ip netns`. Addresses come
 * from a /27 picked by pid, names carry the pid: runs in parallel do not
 * meet.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/net.h"
#include "tests/unit/net_fixture.h"
#include "tests/unit/nflog_util.h"

/* ---- NFLOG parser, on hand-made messages ---- */

struct pkts {
	int n;
	struct moat_nflog_pkt p[32];
};

static void
collect(const struct moat_nflog_pkt *p, void *arg)
{
	struct pkts *ps = arg;

	if (ps->n < (int)MOAT_NELEM(ps->p))
		ps->p[ps->n++] = *p;
}

static void
test_parse(void)
{
	uint8_t ip[40] = { 0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, IPPROTO_TCP,
		0, 0, 10, 1, 2, 3, 10, 9, 8, 7,
		0x9c, 0x40, 0x01, 0xbb };
	uint8_t buf[1024] __attribute__((aligned(4)));
	uint8_t *mis = NULL;
	struct pkts ps = { 0 };
	size_t len, i, bad;
	int r;

	len = make_nflog(buf, "moat-deny", 65534, ip, sizeof(ip));
	len += make_nflog(buf + len, "x", 7, ip, 10); /* short payload */
	r = moat_nflog_parse(buf, len, collect, &ps);
	is_int(r, 2, "parse: two packets");
	is_int(ps.p[0].family, AF_INET, "parse: family");
	is_int(ps.p[0].l4proto, IPPROTO_TCP, "parse: tcp");
	is_str(ps.p[0].src, "10.1.2.3", "parse: src");
	is_str(ps.p[0].dst, "10.9.8.7", "parse: dst");
	is_int(ps.p[0].sport, 40000, "parse: sport");
	is_int(ps.p[0].dport, 443, "parse: dport");
	is_int(ps.p[0].uid, 65534, "parse: uid");
	is_int(ps.p[0].gid, 65534, "parse: gid");
	is_str(ps.p[0].prefix, "moat-deny", "parse: prefix");
	ok(ps.p[1].dst[0] == '\0' && ps.p[1].dport == 0 &&
	    ps.p[1].uid == 7, "parse: cut payload gives no address");

	ps.n = 0;
	r = moat_nflog_parse(buf, len - 3, collect, &ps);
	ok(r == MOAT_ERR_INVALID && ps.n == 1, "parse: cut buffer is invalid "
	    "after the whole messages (%d, %d)", r, ps.n);

	/* Unaligned input is copied, not read in place. */
	if ((mis = malloc(len + 1)) != NULL) {
		memcpy(mis + 1, buf, len);
		ps.n = 0;
		is_int(moat_nflog_parse(mis + 1, len, collect, &ps), 2,
		    "parse: unaligned buffer");
		free(mis);
	}

	/*
	 * Garbage must not crash (ASan/UBSan builds check the reads), and
	 * the result must say what was delivered: the packet count, or
	 * MOAT_ERR_INVALID after at most as many packets as fit.
	 */
	srand(42);
	for (i = 0, bad = 0; i < 2000; i++) {
		size_t j, n = (size_t)rand() % sizeof(buf);

		len = make_nflog(buf, "p", 1, ip, sizeof(ip));
		for (j = 0; j < 8; j++)
			buf[(size_t)rand() % len] = (uint8_t)rand();
		ps.n = 0;
		r = moat_nflog_parse(buf, n < len ? n : len, collect, &ps);
		if (!(r == ps.n || (r == MOAT_ERR_INVALID && ps.n <= 1)))
			bad++;
	}
	is_int(bad, 0, "parse: 2000 corrupted buffers: each result is the "
	    "packet count or invalid");
}

/* ---- probes from inside a netns ---- */

enum probe_kind { P_TCP, P_UDP, P_LOOP /* listen and connect on lo */ };

struct probe {
	enum probe_kind kind;
	char addr[INET_ADDRSTRLEN];
	uint16_t port;
	int timeout_ms;
	/* results */
	int err;  /* 0 connected/sent, else errno (ETIMEDOUT on timeout) */
	int ms;
};

static int
listen_on(const char *addr, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd, one = 1;

	sa.sin_port = htons(port);
	inet_pton(AF_INET, addr, &sa.sin_addr);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(fd, 16) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
probe_one(struct probe *p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct pollfd pfd;
	socklen_t sl = sizeof(int);
	int fd, err = 0;

	sa.sin_port = htons(p->port);
	inet_pton(AF_INET, p->addr, &sa.sin_addr);
	if (p->kind == P_LOOP) {
		struct probe q = *p;
		int lfd = listen_on("127.0.0.1", 0);
		socklen_t al = sizeof(sa);

		if (lfd == -1 || getsockname(lfd, (struct sockaddr *)&sa,
		    &al) == -1)
			return errno;
		q.kind = P_TCP;
		q.port = ntohs(sa.sin_port);
		err = probe_one(&q);
		close(lfd);
		return err;
	}
	if (p->kind == P_UDP) {
		if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
			return errno;
		if (sendto(fd, "x", 1, 0, (struct sockaddr *)&sa,
		    sizeof(sa)) == -1)
			err = errno;
		close(fd);
		return err;
	}
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto out;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, p->timeout_ms) != 1) {
			err = ETIMEDOUT;
			goto out;
		}
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl);
	}
out:
	close(fd);
	return err;
}

/* Run probes in a child inside netns_fd (as uid when >= 0). */
static int
probe_in(int netns_fd, int uid, struct probe *ps, size_t n)
{
	int pfd[2], st;
	size_t i;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == 0) {
		close(pfd[0]);
		if (setns(netns_fd, CLONE_NEWNET) == -1)
			_exit(2);
		if (uid >= 0 && (setgid((gid_t)uid) == -1 ||
		    setuid((uid_t)uid) == -1))
			_exit(3);
		for (i = 0; i < n; i++) {
			int64_t t0 = moat_now_ms();

			ps[i].err = probe_one(&ps[i]);
			ps[i].ms = (int)(moat_now_ms() - t0);
		}
		(void)!write(pfd[1], ps, n * sizeof(*ps));
		_exit(0);
	}
	close(pfd[1]);
	if (pid == -1 || read(pfd[0], ps, n * sizeof(*ps)) !=
	    (ssize_t)(n * sizeof(*ps))) {
		close(pfd[0]);
		if (pid > 0)
			waitpid(pid, &st, 0);
		return -1;
	}
	close(pfd[0]);
	waitpid(pid, &st, 0);
	return 0;
}

static struct probe
tcp(const char *addr, uint16_t port, int timeout_ms)
{
	struct probe p = { .kind = P_TCP, .port = port,
		.timeout_ms = timeout_ms };

	snprintf(p.addr, sizeof(p.addr), "%s", addr);
	return p;
}

static struct probe
udp(const char *addr, uint16_t port)
{
	struct probe p = { .kind = P_UDP, .port = port };

	snprintf(p.addr, sizeof(p.addr), "%s", addr);
	return p;
}

/* ---- the upstream test host: a netns + veth built with `ip` ---- */

struct upstream {
	char ns[32];
	char hif[IFNAMSIZ];
	char addr[INET_ADDRSTRLEN];
	char host[INET_ADDRSTRLEN];
	pid_t listener;
	bool up;
};

static bool
upstream_start(struct upstream *u, uint16_t port)
{
	struct in_addr a;
	char path[64];
	int st = -1, nsfd, pfd[2];
	char c;

	snprintf(u->ns, sizeof(u->ns), "moatup-%d", (int)getpid());
	snprintf(u->hif, sizeof(u->hif), "uh%d", (int)getpid());
	a.s_addr = htonl(pool_base + UPSTREAM_SLOT * 4 + 1);
	inet_ntop(AF_INET, &a, u->host, sizeof(u->host));
	a.s_addr = htonl(pool_base + UPSTREAM_SLOT * 4 + 2);
	inet_ntop(AF_INET, &a, u->addr, sizeof(u->addr));
	run("ip netns add %s && ip link add %s type veth peer name uu "
	    "netns %s && ip addr add %s/30 dev %s && ip link set %s up && "
	    "ip -n %s addr add %s/30 dev uu && ip -n %s link set uu up && "
	    "ip -n %s link set lo up && echo ok", u->ns, u->hif, u->ns,
	    u->host, u->hif, u->hif, u->ns, u->addr, u->ns, u->ns);
	u->up = true;
	if (!has(out_buf, "ok"))
		return false;
	snprintf(path, sizeof(path), "/run/netns/%s", u->ns);
	if ((nsfd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    pipe2(pfd, O_CLOEXEC) == -1)
		return false;
	if ((u->listener = fork()) == 0) {
		int fd;

		alarm(30); /* bounded even if the parent dies */
		if (setns(nsfd, CLONE_NEWNET) == -1 ||
		    (fd = listen_on(u->addr, port)) == -1)
			_exit(1);
		(void)!write(pfd[1], "r", 1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	close(nsfd);
	if (u->listener > 0 && read(pfd[0], &c, 1) == 1)
		st = 0;
	close(pfd[0]);
	return st == 0;
}

static void
upstream_stop(struct upstream *u)
{
	int st;

	if (u->listener > 0) {
		kill(u->listener, SIGKILL);
		waitpid(u->listener, &st, 0);
	}
	if (u->up)
		run("ip link del %s 2>/dev/null; ip netns del %s 2>/dev/null",
		    u->hif, u->ns);
}

/* ---- one sandbox: shape, probes, NFLOG, teardown ---- */

struct nflog_want {
	const char *dst;
	uint16_t dport;
	int uid;
	bool seen;
};

/* Packets wanted: all of them must show up. */
struct nflog_wants {
	struct nflog_want w[4];
	size_t n;
};

static void
nflog_match(const struct moat_nflog_pkt *p, void *arg)
{
	struct nflog_wants *ws = arg;
	size_t i;

	if (getenv("TEST_NET_DEBUG"))
		diag("nflog: %s %d %s:%u -> %s:%u uid %d gid %d", p->prefix,
		    p->l4proto, p->src, p->sport, p->dst, p->dport, p->uid,
		    p->gid);
	for (i = 0; i < ws->n; i++) {
		struct nflog_want *w = &ws->w[i];

		if (strcmp(p->dst, w->dst) == 0 && p->dport == w->dport &&
		    p->uid == w->uid &&
		    strcmp(p->prefix, MOAT_NET_NFLOG_PREFIX) == 0)
			w->seen = true;
	}
}

static bool
all_seen(const struct nflog_wants *ws)
{
	size_t i;

	for (i = 0; i < ws->n; i++)
		if (!ws->w[i].seen)
			return false;
	return true;
}

static bool
nflog_wait(int fd, struct nflog_wants *w, int ms)
{
	char buf[65536] __attribute__((aligned(4)));
	int64_t end = moat_now_ms() + ms;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	ssize_t n;

	while (!all_seen(w) && moat_now_ms() < end) {
		if (poll(&pfd, 1, (int)(end - moat_now_ms())) != 1)
			break;
		if ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
			(void)moat_nflog_parse(buf, (size_t)n, nflog_match, w);
	}
	return all_seen(w);
}

static void
check_shape(struct moat_net *n, const char *name, uint16_t port)
{
	char want[128];

	like_str(run("ip netns list"), name, "shape: ip netns lists %s",
	    name);
	snprintf(want, sizeof(want), "inet %s/30", moat_net_sandbox_addr(n));
	like_str(run("ip -n %s -o addr show dev %s", name,
	    moat_net_sandbox_ifname(n)), want, "shape: sandbox address");
	ok(!has(out_buf, "inet6"), "shape: no IPv6 address on the "
	    "sandbox veth");
	ok(!has(run("ip -n %s -o addr", name), "inet6"), "shape: no IPv6 "
	    "anywhere in the sandbox netns");
	like_str(run("ip -n %s -o link show lo", name), "UP",
	    "shape: lo up");
	snprintf(want, sizeof(want), "default via %s dev %s",
	    moat_net_host_addr(n), moat_net_sandbox_ifname(n));
	like_str(run("ip -n %s route show", name), want,
	    "shape: default route via the host end");
	snprintf(want, sizeof(want), "inet %s/30", moat_net_host_addr(n));
	like_str(run("ip -o addr show dev %s", moat_net_host_ifname(n)), want,
	    "shape: host end address");
	ok(!has(out_buf, "inet6"), "shape: no IPv6 on the host end");

	run("ip netns exec %s nft list table inet moat", name);
	like_str(out_buf, "hook output priority filter; policy drop;",
	    "shape: sandbox output chain drops by default");
	like_str(out_buf, "oif \"lo\" accept", "shape: lo accepted");
	like_str(out_buf, "ct state established,related accept",
	    "shape: established accepted");
	snprintf(want, sizeof(want), "ip daddr %s tcp dport %u accept",
	    moat_net_host_addr(n), port);
	like_str(out_buf, want, "shape: proxy accepted");
	like_str(out_buf, "log prefix \"moat-deny\" group 7",
	    "shape: NFLOG group 7");
	like_str(out_buf, "meta l4proto tcp reject with tcp reset",
	    "shape: tcp reset");
	like_str(out_buf, "reject with icmpx admin-prohibited",
	    "shape: icmpx reject");

	run("nft list table inet moat-%s", name + 5);
	snprintf(want, sizeof(want), "iifname \"%s\" ip daddr %s tcp dport "
	    "%u accept", moat_net_host_ifname(n), moat_net_host_addr(n),
	    port);
	like_str(out_buf, want, "shape: host table accepts only the proxy");
	snprintf(want, sizeof(want), "iifname \"%s\" reject with icmpx "
	    "admin-prohibited", moat_net_host_ifname(n));
	like_str(out_buf, want, "shape: host table rejects the rest");
	snprintf(want, sizeof(want), "oifname \"%s\" drop",
	    moat_net_host_ifname(n));
	like_str(out_buf, want, "shape: host forward drops");
}

static void
test_one(void)
{
	char name[32], nsname[40];
	struct moat_net_config c = { .netns_fd = -1, .pool = POOL };
	struct moat_cause cause = { { 0 } };
	struct moat_net *n = NULL;
	struct upstream up = { 0 };
	struct nflog_wants w;
	struct probe ps[6];
	int lfd = -1, ofd = -1, nfd = -1, nfd2 = -1, r, fd;
	uint16_t port = free_port(), other = free_port(), upport = 8080;
	char hif[IFNAMSIZ];
	int64_t t0, t1, t2, setup_us;

	snprintf(name, sizeof(name), "t%d", (int)getpid());
	snprintf(nsname, sizeof(nsname), "moat-%s", name);
	c.name = name;
	c.index = 0;
	c.proxy_port = port;

	ok(!has(run("ip netns list; ip -o link; nft list tables"), name),
	    "before: nothing named %s", name);
	t0 = moat_now_us();
	r = moat_net_setup(&c, &n, &cause);
	t1 = moat_now_us();
	if (!ok(r == 0, "setup %s: %s", name, moat_cause_str(&cause, r)))
		return;
	setup_us = t1 - t0;
	diag("setup took %lld us", (long long)setup_us);
	snprintf(hif, sizeof(hif), "%s", moat_net_host_ifname(n));
	check_shape(n, nsname, port);

	/* Listeners on the host end: the proxy port and another one. */
	lfd = listen_on(moat_net_host_addr(n), port);
	ofd = listen_on(moat_net_host_addr(n), other);
	ok(lfd >= 0 && ofd >= 0, "listeners on %s:%u and :%u",
	    moat_net_host_addr(n), port, other);
	ok(upstream_start(&up, upport), "upstream test host %s in %s",
	    up.addr, up.ns);
	ps[0] = tcp(up.addr, upport, 1000);
	ps[0].err = probe_one(&ps[0]);
	ok(ps[0].err == 0, "upstream reachable from the host (err %d)",
	    ps[0].err);

	r = moat_net_nflog_open(n, &nfd, &cause);
	ok(r == 0, "nflog open: %s", moat_cause_str(&cause, r));
	r = moat_net_nflog_open(n, &nfd2, &cause);
	ok(r == MOAT_ERR_EXISTS, "second nflog open: group taken (%s)",
	    moat_cause_str(&cause, r));

	ps[0] = tcp(moat_net_host_addr(n), port, 2000);
	ps[1] = tcp(moat_net_host_addr(n), other, 2000);
	ps[2] = udp(moat_net_host_addr(n), other);
	ps[3] = tcp(up.addr, upport, 2000);
	ps[4] = udp(up.addr, 53);
	ps[5] = tcp("127.0.0.1", 0, 2000);
	ps[5].kind = P_LOOP;
	ok(probe_in(moat_net_netns_fd(n), 65534, ps, 6) == 0,
	    "probes ran inside the sandbox netns as nobody");
	ok(ps[0].err == 0, "inside: proxy port connects (err %d)", ps[0].err);
	ok(ps[1].err == ECONNREFUSED && ps[1].ms < 500, "inside: other "
	    "host port refused fast (err %d, %d ms)", ps[1].err, ps[1].ms);
	ok(ps[2].err == EPERM && ps[2].ms < 500, "inside: UDP to the host "
	    "fails at once (err %d, %d ms)", ps[2].err, ps[2].ms);
	ok(ps[3].err == ECONNREFUSED && ps[3].ms < 500, "inside: upstream "
	    "refused fast (err %d, %d ms)", ps[3].err, ps[3].ms);
	ok(ps[4].err == EPERM, "inside: UDP to upstream fails (err %d)",
	    ps[4].err);
	ok(ps[5].err == 0, "inside: loopback is allowed (err %d)",
	    ps[5].err);

	w.w[0] = (struct nflog_want){ up.addr, upport, 65534, false };
	w.w[1] = (struct nflog_want){ moat_net_host_addr(n), other, 65534,
	    false };
	w.n = 2;
	t1 = moat_now_us();
	nflog_wait(nfd, &w, 1000);
	ok(w.w[0].seen, "nflog: denied connect to %s:%u by uid 65534 logged",
	    up.addr, upport);
	ok(w.w[1].seen, "nflog: denied connect to the host port logged "
	    "(both within %lld ms)", (long long)(moat_now_us() - t1) / 1000);

	fd = moat_net_socket(n, AF_INET, SOCK_DGRAM, 0, &cause);
	if (ok(fd >= 0, "moat_net_socket: %s", fd >= 0 ? "an fd" :
	    moat_cause_str(&cause, fd))) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
			.sin_port = htons(53) };

		inet_pton(AF_INET, up.addr, &sa.sin_addr);
		ok(sendto(fd, "x", 1, 0, (struct sockaddr *)&sa,
		    sizeof(sa)) == -1 && errno == EPERM, "a socket from "
		    "moat_net_socket is filtered like the sandbox");
		close(fd);
	}

	moat_close(nfd);
	moat_close(nfd2);
	moat_close(lfd);
	moat_close(ofd);
	t1 = moat_now_us();
	moat_net_free(n);
	n = NULL;
	t2 = moat_now_us();
	diag("teardown took %lld us", (long long)(t2 - t1));
	/* Loose bound: a busy CI box; the figure itself is in the diag. */
	ok(setup_us + t2 - t1 < 100000, "setup + teardown under 100 ms "
	    "(%lld us)", (long long)(setup_us + t2 - t1));
	ok(!has(run("ip netns list; echo; nft list tables"), name) &&
	    !netns_left(name), "after free: no netns, mount or table at "
	    "once");
	run("ip -o link show dev %s 2>/dev/null", hif);
	ok(!has(out_buf, ",UP") && !has(out_buf, "<UP"), "after free: the "
	    "host end is down or gone at once");
	upstream_stop(&up);

	/* A leftover pair (its netns may linger) is reclaimed by setup. */
	t0 = moat_now_us();
	r = moat_net_setup(&c, &n, &cause);
	ok(r == 0, "setup again with the same name at once: %s (%lld us)",
	    r ? moat_cause_str(&cause, r) : "ok",
	    (long long)(moat_now_us() - t0));
	moat_net_free(n);
	n = NULL;
	r = moat_net_purge(name, &cause);
	ok(r == 0, "purge: %s", r ? cause.msg : "ok");
	ok(wait_gone(name, hif, 0), "after purge: nothing of ours in ip "
	    "netns, ip link, nft list tables");
}

/* ---- two sandboxes, and the host table on its own ---- */

static void
test_two(void)
{
	struct moat_net_config c = { .netns_fd = -1, .pool = POOL };
	struct moat_cause cause = { { 0 } };
	struct moat_net *a = NULL, *b = NULL;
	char na[32], nb[32], ha[IFNAMSIZ] = "", hb[IFNAMSIZ] = "";
	uint16_t port = free_port(), other = free_port();
	int la = -1, lb = -1, oa = -1, r;
	struct probe ps[4];

	snprintf(na, sizeof(na), "t%da", (int)getpid());
	snprintf(nb, sizeof(nb), "t%db", (int)getpid());
	c.proxy_port = port;
	c.name = na;
	c.index = 0;
	r = moat_net_setup(&c, &a, &cause);
	ok(r == 0, "two: setup %s: %s", na, moat_cause_str(&cause, r));
	c.name = nb;
	c.index++;
	r = moat_net_setup(&c, &b, &cause);
	ok(r == 0, "two: setup %s: %s", nb, moat_cause_str(&cause, r));
	if (a == NULL || b == NULL)
		goto out;
	snprintf(ha, sizeof(ha), "%s", moat_net_host_ifname(a));
	snprintf(hb, sizeof(hb), "%s", moat_net_host_ifname(b));
	ok(strcmp(moat_net_host_addr(a), moat_net_host_addr(b)) != 0,
	    "two: distinct subnets (%s, %s)", moat_net_host_addr(a),
	    moat_net_host_addr(b));
	la = listen_on(moat_net_host_addr(a), port);
	lb = listen_on(moat_net_host_addr(b), port);
	oa = listen_on(moat_net_host_addr(a), other);
	ok(la >= 0 && lb >= 0 && oa >= 0, "two: proxy listeners");

	ps[0] = tcp(moat_net_host_addr(a), port, 2000);
	ps[1] = tcp(moat_net_host_addr(b), port, 2000);
	ps[2] = tcp(moat_net_sandbox_addr(b), port, 2000);
	ok(probe_in(moat_net_netns_fd(a), 65534, ps, 3) == 0 &&
	    ps[0].err == 0, "two: a reaches its own proxy (err %d)",
	    ps[0].err);
	ok(ps[1].err == ECONNREFUSED && ps[1].ms < 500, "two: a cannot reach "
	    "b's proxy address (err %d, %d ms)", ps[1].err, ps[1].ms);
	ok(ps[2].err == ECONNREFUSED && ps[2].ms < 500, "two: a cannot reach "
	    "sandbox b (err %d)", ps[2].err);
	ps[0] = tcp(moat_net_host_addr(b), port, 2000);
	ok(probe_in(moat_net_netns_fd(b), 65534, ps, 1) == 0 &&
	    ps[0].err == 0, "two: b reaches its own proxy (err %d)",
	    ps[0].err);

	/* Without the sandbox table the host table must hold alone. */
	run("ip netns exec moat-%s nft delete table inet moat && echo ok", na);
	ok(has(out_buf, "ok"), "two: deleted a's sandbox table (test only)");
	ps[0] = tcp(moat_net_host_addr(a), port, 2000);
	ps[1] = tcp(moat_net_host_addr(b), port, 2000);
	ps[2] = tcp(moat_net_host_addr(a), other, 2000);
	ps[3] = tcp(moat_net_host_addr(b), 22, 2000);
	ok(probe_in(moat_net_netns_fd(a), 65534, ps, 4) == 0 &&
	    ps[0].err == 0, "host table: a still reaches its proxy (err %d)",
	    ps[0].err);
	ok(ps[1].err == ECONNREFUSED && ps[1].ms < 500, "host table: a to "
	    "b's proxy address refused fast (err %d, %d ms)", ps[1].err,
	    ps[1].ms);
	ok(ps[2].err == ECONNREFUSED && ps[2].ms < 500, "host table: a to "
	    "another host port refused fast (err %d)", ps[2].err);
	ok(ps[3].err == ECONNREFUSED && ps[3].ms < 500, "host table: a to "
	    "port 22 refused fast (err %d)", ps[3].err);
out:
	moat_close(la);
	moat_close(lb);
	moat_close(oa);
	moat_net_free(a);
	moat_net_free(b);
	/* TCP orphans may keep the netns (and the down pair) a while. */
	ok(moat_net_purge(na, &cause) == 0 && moat_net_purge(nb, &cause) == 0,
	    "two: purge");
	ok(wait_gone(na, ha, 0) && wait_gone(nb, hb, 0),
	    "two: both gone after free and purge");
}

/* ---- an adopted netns (a process's), bad input, failure cleanup ---- */

static void
test_adopt(void)
{
	struct moat_net_config c = { .netns_fd = -1, .pool = POOL };
	struct moat_cause cause = { { 0 } };
	struct moat_net *n = NULL;
	char name[32], path[64], hif[IFNAMSIZ] = "";
	int pfd[2], st, r;
	pid_t pid;
	char ch;

	snprintf(name, sizeof(name), "t%dadopt", (int)getpid());
	if (pipe2(pfd, O_CLOEXEC) == -1)
		return;
	if ((pid = fork()) == 0) {
		alarm(30);
		if (unshare(CLONE_NEWNET) == -1)
			_exit(1);
		(void)!write(pfd[1], "r", 1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	if (pid == -1 || read(pfd[0], &ch, 1) != 1) {
		ok(0, "adopt: child netns");
		close(pfd[0]);
		return;
	}
	close(pfd[0]);
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	c.netns_fd = open(path, O_RDONLY | O_CLOEXEC);
	c.name = name;
	c.index = 0;
	r = moat_net_setup(&c, &n, &cause);
	ok(r == 0, "adopt: setup in pid %d's netns: %s", (int)pid,
	    moat_cause_str(&cause, r));
	if (n != NULL) {
		snprintf(hif, sizeof(hif), "%s", moat_net_host_ifname(n));
		like_str(run("ip netns identify %d", (int)pid), name,
		    "adopt: the process's netns is moat-%s", name);
		like_str(run("ip -n moat-%s -o addr", name),
		    moat_net_sandbox_addr(n), "adopt: address inside");
	}
	moat_net_free(n);
	close(c.netns_fd);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	ok(wait_gone(name, hif, 3000), "adopt: gone once the process is");
}

static void
null_frees(void)
{
	moat_net_free(NULL);
	moat_net_release(NULL);
}

/* Does fn return normally in a child (no crash, no abort)? */
static bool
exits_zero(void (*fn)(void))
{
	pid_t pid;
	int st;

	if ((pid = fork()) == 0) {
		fn();
		_exit(0);
	}
	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0;
}

static void
test_bad_input(void)
{
	struct moat_net_config c = { .name = "ok", .netns_fd = -1 };
	struct moat_cause cause = { { 0 } };
	struct moat_net *n = NULL;

	c.name = "bad/name";
	is_int(moat_net_setup(&c, &n, &cause), MOAT_ERR_INVALID,
	    "bad name refused: %s", cause.msg);
	c.name = "this-name-is-much-longer-than-sixty-four-characters-so-it-"
	    "is-refused";
	is_int(moat_net_setup(&c, &n, &cause), MOAT_ERR_INVALID,
	    "long name refused");
	c.name = "ok";
	c.pool = "10.200.0.1/16";
	is_int(moat_net_setup(&c, &n, &cause), MOAT_ERR_INVALID,
	    "pool with host bits refused: %s", cause.msg);
	c.pool = "10.200.0.0/29";
	c.index = 2;
	is_int(moat_net_setup(&c, &n, &cause), MOAT_ERR_INVALID,
	    "index outside the pool refused: %s", cause.msg);
	ok(n == NULL, "out-param untouched on failure");
	ok(exits_zero(null_frees), "free and release take NULL");
}

/* Long names get a hashed, still unique, veth name. */
static void
test_long_name(void)
{
	struct moat_net_config c = { .netns_fd = -1, .pool = POOL };
	struct moat_cause cause = { { 0 } };
	struct moat_net *a = NULL, *b = NULL;
	char na[64], nb[64], ha[IFNAMSIZ] = "", hb[IFNAMSIZ] = "";
	int r;

	snprintf(na, sizeof(na), "long-sandbox-name-%d-one", (int)getpid());
	snprintf(nb, sizeof(nb), "long-sandbox-name-%d-two", (int)getpid());
	c.name = na;
	c.index = 0;
	r = moat_net_setup(&c, &a, &cause);
	ok(r == 0, "long name: setup: %s", moat_cause_str(&cause, r));
	c.name = nb;
	c.index++;
	r = moat_net_setup(&c, &b, &cause);
	ok(r == 0, "long name: second setup: %s", moat_cause_str(&cause, r));
	if (a != NULL && b != NULL) {
		snprintf(ha, sizeof(ha), "%s", moat_net_host_ifname(a));
		snprintf(hb, sizeof(hb), "%s", moat_net_host_ifname(b));
		ok(strlen(ha) < IFNAMSIZ && strcmp(ha, hb) != 0 &&
		    strncmp(ha, "mh-", 3) == 0, "long name: %s and %s", ha,
		    hb);
	}
	moat_net_free(a);
	moat_net_free(b);
	ok(wait_gone(na, ha, 3000) && wait_gone(nb, hb, 3000),
	    "long name: gone after free");
}

static void
test_fail_cleanup(void)
{
	struct moat_net_config c = { .netns_fd = -1, .pool = POOL };
	struct moat_cause cause = { { 0 } };
	struct moat_net *n = NULL, *n2 = NULL;
	char name[32], hif[48], ns[48];
	int r;

	c.index = 0;
	/* The host table exists: setup fails at its last host step. */
	snprintf(name, sizeof(name), "t%dfail", (int)getpid());
	c.name = name;
	run("nft add table inet moat-%s && echo ok", name);
	ok(has(out_buf, "ok"), "fail: pre-made table inet moat-%s", name);
	r = moat_net_setup(&c, &n, &cause);
	is_int(r, MOAT_ERR_EXISTS, "fail: setup reports the table exists "
	    "(%s)", moat_cause_str(&cause, r));
	ok(n == NULL, "fail: no object");
	snprintf(hif, sizeof(hif), "mh-%s@", name);
	snprintf(ns, sizeof(ns), "moat-%s ", name);
	ok(!has(run("ip -o link; ip netns list; echo"), hif) &&
	    !has(out_buf, ns), "fail: no veth, no netns left at once");
	like_str(run("nft list tables"), name, "fail: the table that was "
	    "not ours is still there");
	run("nft delete table inet moat-%s", name);

	/* Same name twice: the second fails, the first is intact. */
	r = moat_net_setup(&c, &n, &cause);
	ok(r == 0, "dup: first setup: %s", moat_cause_str(&cause, r));
	c.index++;
	r = moat_net_setup(&c, &n2, &cause);
	is_int(r, MOAT_ERR_EXISTS, "dup: second setup of %s refused (%s)",
	    name, moat_cause_str(&cause, r));
	if (n != NULL) {
		like_str(run("ip netns list"), name, "dup: first netns kept");
		like_str(run("nft list tables"), name, "dup: first table kept");
	}
	moat_net_free(n);
	hif[strlen(hif) - 1] = '\0';
	ok(wait_gone(name, hif, 3000), "dup: gone after free");
	is_int(moat_net_purge(name, &cause), 0, "purge with nothing left: %s",
	    cause.msg);
}

/* ---- /run/netns in every mount state, and with `ip netns` around ---- */

int
main(void)
{
	test_parse();
	test_bad_input();
	if (!net_tests_ready())
		return done_testing();
	if (!fresh_mount_state("network tests"))
		return done_testing();
	test_one();
	test_two();
	test_adopt();
	test_long_name();
	test_fail_cleanup();
	return done_testing();
}
