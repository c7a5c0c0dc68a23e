/*
 * The proxy tests' shared fixture (tests/unit/test_proxy*.c): the proxy
 * in-process on 127.0.0.1, against an upstream (HTTP echo of the request,
 * TCP echo) in a network namespace and veth pair the test creates
 * (10.99.N.2), named upstream.test through the hosts-file override.
 * Clients are the test binary and the real /usr/bin/curl (and copies).
 */
#ifndef MOAT_TESTS_PROXY_FIXTURE_H
#define MOAT_TESTS_PROXY_FIXTURE_H

/* Each test file uses a different part of this fixture. */
#pragma GCC diagnostic ignored "-Wunused-function"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/loop.h"
#include "common/util.h"
#include "policies/policy.h"
#include "proxy/internal.h"
#include "proxy/proxy.h"
#include "tests/unit/own_cgroup.h"
#include "tests/unit/proxy_util.h"
#include "tests/unit/tap.h"

#define MAXEV 256

static struct {
	char ns[32];
	char veth[16];
	struct own_cgroup cg; /* the "sandbox" the scan reads (own_cgroup.h) */
	char up_ip[32];
	char host_ip[32];
	char dir[64];
	char hosts[128];
	char self[512];
	pid_t upstream;
	pid_t emfile_child;
	int emfile_port;
	int port;
	struct moat_loop *l;
	struct moat_proxy *p;
	pthread_mutex_t mu;
	struct moat_denial_event ev[MAXEV];
	int nev;
	int policy_version;
	char trusted_path[256]; /* the last first use reported */
	char trusted_sha[65];
	bool trust_fails;   /* on_trusted says it cannot keep the hash */
	int ntrusted;
} E;

static int
on_trusted(void *arg, const char *sandbox, const char *path,
    const char *sha256)
{
	int r;

	pthread_mutex_lock(&E.mu);
	snprintf(E.trusted_path, sizeof(E.trusted_path), "%s", path);
	snprintf(E.trusted_sha, sizeof(E.trusted_sha), "%s", sha256);
	E.ntrusted++;
	r = E.trust_fails ? -1 : 0;
	pthread_mutex_unlock(&E.mu);
	return r;
}

static void
on_event(void *arg, const struct moat_denial_event *ev)
{
	pthread_mutex_lock(&E.mu);
	if (E.nev < MAXEV)
		E.ev[E.nev++] = *ev;
	pthread_mutex_unlock(&E.mu);
}

static int
nevents(void)
{
	int n;

	pthread_mutex_lock(&E.mu);
	n = E.nev;
	pthread_mutex_unlock(&E.mu);
	return n;
}

struct setpol {
	const char *json;
	int rc;
};

static void
setpol_fn(void *arg)
{
	struct setpol *s = arg;
	struct moat_policy *pol = load(s->json);

	s->rc = pol == NULL ? -1 :
	    moat_proxy_set_policy(E.p, "box", pol, ++E.policy_version);
	moat_policy_free(pol);
}

static int
set_policy(const char *json)
{
	struct setpol s = { json, 0 };

	in_loop(setpol_fn, &s);
	return s.rc;
}

static void
count_fn(void *arg)
{
	*(int *)arg = moat_proxy_conn_count(E.p, "box");
}

static int
conn_count(void)
{
	int n;

	in_loop(count_fn, &n);
	return n;
}

/* ---- clients ---- */

/* A client of ip:port, with 10 s timeouts; -1 when it cannot connect. */
static int
dial_at(const char *ip, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { 10, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
dial(int port)
{
	return dial_at("127.0.0.1", port);
}

/* Read until EOF (or timeout); NUL-terminated, caller frees. */
static char *
read_all(int fd, size_t *lenp)
{
	size_t len = 0, cap = 65536;
	char *b = malloc(cap + 1);
	ssize_t n;

	while ((n = recv(fd, b + len, cap - len, 0)) > 0) {
		len += (size_t)n;
		if (len == cap)
			b = realloc(b, (cap *= 2) + 1);
	}
	b[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return b;
}

static char *
xfer(const char *req, size_t rlen)
{
	int fd = dial(E.port);
	char *r;

	if (fd < 0)
		return strdup("");
	if (send(fd, req, rlen, MSG_NOSIGNAL) != (ssize_t)rlen) {
		close(fd);
		return strdup("");
	}
	r = read_all(fd, NULL);
	close(fd);
	return r;
}

static char *
xfers(const char *req)
{
	return xfer(req, strlen(req));
}

/* CONNECT on fd; true on 200, with the head (at most 4 KiB) in out. */
static bool
tunnel(int fd, const char *hostport, char *out, size_t outlen)
{
	char req[300];
	size_t len = 0;
	ssize_t n;

	snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
	    hostport, hostport);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
		return false;
	/* Byte by byte: do not eat tunnel bytes past the head. */
	while (len + 1 < outlen && (n = recv(fd, out + len, 1, 0)) == 1) {
		len++;
		out[len] = '\0';
		if (len >= 4 && memcmp(out + len - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	out[len] = '\0';
	return strncmp(out, "HTTP/1.1 200", 12) == 0;
}

static int
run(char *const argv[], char *out, size_t outlen)
{
	int pfd[2], st = -1;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == 0) {
		dup2(pfd[1], 1);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	while (len + 1 < outlen && (n = read(pfd[0], out + len,
	    outlen - len - 1)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(pfd[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
curl(const char *bin, const char *url, bool tunnel_, char *out,
    size_t outlen)
{
	char proxy[64];
	char *argv[] = { (char *)bin, "-sS", "-m", "10", "-x", proxy,
		(char *)url, tunnel_ ? "-p" : NULL, NULL };

	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", E.port);
	return run(argv, out, outlen);
}

/* ---- the upstream, inside its own netns ---- */

static int
listen_at(const char *ip, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    listen(fd, 128) == -1)
		_exit(2);
	return fd;
}

static void
serve_echo(int fd)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (moat_write_all(fd, buf, (size_t)n) != 0)
			break;
}

/* Answers 200 with the exact request bytes it received as the body. */
static void
serve_http(int fd)
{
	static char buf[1 << 20];
	size_t len = 0, need = 0;
	char *end = NULL, *cl, head[256];
	ssize_t n;

	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len,
	    sizeof(buf) - 1 - len)) > 0) {
		len += (size_t)n;
		buf[len] = '\0';
		if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
			need = (size_t)(end + 4 - buf);
			if ((cl = strcasestr(buf, "\ncontent-length:")) != NULL &&
			    cl < end)
				need += strtoul(cl + 16, NULL, 10);
		}
		if (end != NULL && strcasestr(buf, "transfer-encoding: chunked")
		    != NULL) {
			if (strstr(end, "\r\n0\r\n\r\n") != NULL ||
			    strncmp(end + 4, "0\r\n\r\n", 5) == 0)
				break;
		} else if (end != NULL && len >= need) {
			break;
		}
	}
	snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu"
	    "\r\nConnection: close\r\n\r\n", len);
	moat_write_all(fd, head, strlen(head));
	moat_write_all(fd, buf, len);
}

static void
upstream_main(void)
{
	char path[64];
	int nsfd, fds[4];
	int ports[4] = { 8080, 9000, 9002, 8081 };

	setpgid(0, 0);
	snprintf(path, sizeof(path), "/run/netns/%s", E.ns);
	if ((nsfd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    setns(nsfd, CLONE_NEWNET) == -1)
		_exit(3);
	for (int i = 0; i < 4; i++)
		fds[i] = listen_at(E.up_ip, ports[i]);
	signal(SIGCHLD, SIG_IGN);
	for (;;) {
		struct pollfd pf[4];
		for (int i = 0; i < 4; i++)
			pf[i] = (struct pollfd){ fds[i], POLLIN, 0 };
		if (poll(pf, 4, -1) <= 0)
			continue;
		for (int i = 0; i < 4; i++) {
			int c;
			if (!(pf[i].revents & POLLIN))
				continue;
			if ((c = accept4(fds[i], NULL, NULL, SOCK_CLOEXEC)) < 0)
				continue;
			if (fork() == 0) {
				if (ports[i] == 8080 || ports[i] == 8081)
					serve_http(c);
				else
					serve_echo(c);
				_exit(0);
			}
			close(c);
		}
	}
}

static void
sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		diag("command failed: %s", cmd);
}

/* Is TCP port p free on 127.0.0.1 (nobody bound to it)? */
static bool
port_free(int p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons((uint16_t)p) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/*
 * Two free ports p, p + 1 below the ephemeral range (the EMFILE proxy
 * and the one after it), from start; at most 200 tries.
 */
static int
free_port_pair(int start)
{
	for (int i = 0; i < 200; i++) {
		int p = 20000 + (start - 20000 + i * 37) % 12000;

		if (port_free(p) && port_free(p + 1))
			return p;
	}
	return start;
}

static void
cleanup(void)
{
	if (E.upstream > 0) {
		kill(-E.upstream, SIGKILL);
		waitpid(E.upstream, NULL, 0);
		E.upstream = 0;
	}
	if (PX.ctl_child > 0) {
		kill(PX.ctl_child, SIGKILL);
		waitpid(PX.ctl_child, NULL, 0);
		PX.ctl_child = 0;
	}
	if (E.emfile_child > 0) {
		kill(E.emfile_child, SIGKILL);
		waitpid(E.emfile_child, NULL, 0);
		E.emfile_child = 0;
	}
	if (E.ns[0] != '\0') {
		sh("ip netns del %s 2>/dev/null", E.ns);
		sh("ip link del %s 2>/dev/null || true", E.veth);
		E.ns[0] = '\0';
	}
	if (E.dir[0] != '\0') {
		sh("rm -rf %s", E.dir);
		E.dir[0] = '\0';
	}
	own_cgroup_leave(&E.cg);
}

static bool
setup_net(void)
{
	int n = (int)(getpid() % 250) + 1;
	char cmd[512];

	snprintf(E.ns, sizeof(E.ns), "mpx%d", (int)getpid());
	snprintf(E.veth, sizeof(E.veth), "mpxh%d", (int)(getpid() % 100000));
	snprintf(E.up_ip, sizeof(E.up_ip), "10.99.%d.2", n);
	snprintf(E.host_ip, sizeof(E.host_ip), "10.99.%d.1", n);
	snprintf(cmd, sizeof(cmd),
	    "ip netns add %s && ip link add %s type veth peer name mpxn%d "
	    "netns %s && ip addr add 10.99.%d.1/30 dev %s && ip link set %s up "
	    "&& ip -n %s addr add %s/30 dev mpxn%d && ip -n %s link set mpxn%d "
	    "up && ip -n %s link set lo up",
	    E.ns, E.veth, (int)(getpid() % 100000), E.ns, n, E.veth, E.veth,
	    E.ns, E.up_ip, (int)(getpid() % 100000), E.ns,
	    (int)(getpid() % 100000), E.ns);
	return system(cmd) == 0;
}

static char policy_buf[4096];

/* The base policy: this binary and curl to upstream.test 8080, 9000. */
static const char *
base_policy(const char *extra_bins, bool with_9002)
{
	snprintf(policy_buf, sizeof(policy_buf),
	    "{\"version\":1,\"network_policies\":{"
	    "\"up\":{\"name\":\"up\",\"endpoints\":["
	    "{\"host\":\"upstream.test\",\"port\":8080},"
	    "{\"host\":\"upstream.test\",\"port\":9000}%s,"
	    "{\"host\":\"loop.test\",\"port\":9000},"
	    "{\"host\":\"hostself.test\",\"port\":9000},"
	    "{\"host\":\"pool.test\",\"port\":9000},"
	    "{\"host\":\"l7.test\",\"port\":9000,\"protocol\":\"rest\","
	    "\"access\":\"read-only\"},"
	    "{\"host\":\"pool6.test\",\"port\":9000,"
	    "\"allowed_ips\":[\"fd98::/16\"]}],"
	    "\"binaries\":[{\"path\":\"%s\"},{\"path\":\"/usr/bin/curl\"}%s]},"
	    "\"other\":{\"name\":\"other\",\"endpoints\":["
	    "{\"host\":\"upstream.test\",\"port\":8081}],"
	    "\"binaries\":[{\"path\":\"/nonexistent/tool\"}]}}}",
	    with_9002 ? ",{\"host\":\"upstream.test\",\"port\":9002}" : "",
	    E.self, extra_bins ? extra_bins : "");
	return policy_buf;
}

static bool
has(const char *hay, const char *needle)
{
	return hay != NULL && strstr(hay, needle) != NULL;
}

static void
sha256(const void *b, size_t n, unsigned char out[32])
{
	unsigned len = 32;

	EVP_Digest(b, n, out, &len, EVP_sha256(), NULL);
}

/* Push n bytes through an echo tunnel, reading back concurrently. */
static bool
echo_roundtrip(int fd, size_t n)
{
	unsigned char *out = malloc(n), *in = malloc(n), h1[32], h2[32];
	size_t sent = 0, got = 0;
	int64_t deadline = moat_now_ms() + 20000;
	bool ok_ = false;

	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)(i * 2654435761u >> 13);
	moat_fd_nonblock(fd);
	while (got < n && moat_now_ms() < deadline) {
		struct pollfd pf = { fd, POLLIN | (sent < n ? POLLOUT : 0), 0 };
		ssize_t k;
		if (poll(&pf, 1, 1000) <= 0)
			continue;
		if ((pf.revents & POLLOUT) && sent < n &&
		    (k = send(fd, out + sent, n - sent > 65536 ? 65536 : n - sent,
		    MSG_NOSIGNAL)) > 0)
			sent += (size_t)k;
		if ((pf.revents & (POLLIN | POLLHUP)) &&
		    (k = recv(fd, in + got, n - got, 0)) >= 0) {
			if (k == 0)
				break;
			got += (size_t)k;
		}
	}
	if (got == n) {
		sha256(out, n, h1);
		sha256(in, n, h2);
		ok_ = memcmp(h1, h2, 32) == 0;
	}
	free(out);
	free(in);
	fcntl(fd, F_SETFL, 0);
	return ok_;
}


/* A proxy in a child with RLIMIT_NOFILE 64: it must survive EMFILE. */
static void
emfile_child_main(int port, int ready)
{
	struct moat_proxy_config cfg = { .hosts_file = E.hosts };
	struct moat_proxy_sandbox sb = { .name = "box", .listen_addr =
		"127.0.0.1", .netns_fd = -1 };
	struct rlimit rl = { 64, 64 };
	struct moat_loop *l = NULL;
	struct moat_proxy *p = NULL;
	struct moat_policy *pol;
	char b = 1;

	sb.port = (uint16_t)port;
	sb.procs_path = E.cg.procs;
	if (moat_loop_new(&l, NULL) != 0 || moat_proxy_new(l, &cfg, &p,
	    NULL) != 0 || moat_proxy_add_sandbox(p, &sb, NULL) != 0)
		_exit(1);
	if ((pol = load(base_policy(NULL, false))) == NULL)
		_exit(1);
	moat_proxy_set_policy(p, "box", pol, 1);
	moat_policy_free(pol);
	setrlimit(RLIMIT_NOFILE, &rl);
	if (write(ready, &b, 1) != 1)
		_exit(1);
	moat_loop_run(l);
	_exit(0);
}


static void
add_sandbox_fn(void *arg)
{
	struct moat_proxy_sandbox sb = { .name = "box", .listen_addr =
		"127.0.0.1", .netns_fd = -1 };
	struct moat_cause cause = { { 0 } };

	sb.port = (uint16_t)E.port;
	sb.procs_path = E.cg.procs;
	*(int *)arg = moat_proxy_add_sandbox(E.p, &sb, &cause);
	if (*(int *)arg != 0)
		diag("add sandbox: %s", cause.msg);
}


/*
 * Everything the proxy tests share: the upstream netns, a hosts file, the
 * EMFILE child, the control-channel proxy and the in-process proxy on
 * 127.0.0.1 with policy installed. false: the caller prints its skip.
 */
static bool
fixture_start(void)
{
	struct moat_proxy_config cfg = { 0 };
	int rc = -1, ready[2];
	ssize_t n;
	char b;

	if (geteuid() != 0 || access("/usr/sbin/ip", X_OK) != 0) {
		skip("needs root and ip(8) for the upstream netns");
		return false;
	}
	signal(SIGPIPE, SIG_IGN);
	n = readlink("/proc/self/exe", E.self, sizeof(E.self) - 1);
	E.self[n > 0 ? n : 0] = '\0';
	atexit(cleanup);
	if (!own_cgroup_enter(&E.cg)) {
		skip("needs cgroup v2 for a cgroup of its own");
		return false;
	}
	snprintf(E.dir, sizeof(E.dir), "/tmp/moat-pxtest.XXXXXX");
	if (mkdtemp(E.dir) == NULL || !setup_net()) {
		skip("cannot create the upstream netns");
		return false;
	}
	snprintf(E.hosts, sizeof(E.hosts), "%s/hosts", E.dir);
	{
		FILE *f = fopen(E.hosts, "we");
		fprintf(f, "# test names\n%s upstream.test\n127.0.0.1 loop.test\n"
		    "%s hostself.test\n10.98.7.7 pool.test\n"
		    "fd98::7 pool6.test\n", E.up_ip, E.host_ip);
		fclose(f);
	}
	if ((E.upstream = fork()) == 0) {
		upstream_main();
		_exit(0);
	}
	/* Fork the EMFILE proxy before this process has threads. */
	E.emfile_port = free_port_pair(20000 + (int)(getpid() % 12000));
	if (pipe2(ready, O_CLOEXEC) == 0) {
		if ((E.emfile_child = fork()) == 0)
			emfile_child_main(E.emfile_port, ready[1]);
		close(ready[1]);
		if (read(ready[0], &b, 1) != 1) {
			waitpid(E.emfile_child, NULL, 0);
			E.emfile_child = 0;
		}
		close(ready[0]);
	}
	{
		struct moat_proxy_config pc = { .hosts_file = E.hosts };
		ctl_start(&pc);
	}
	pthread_mutex_init(&E.mu, NULL);
	cfg.hosts_file = E.hosts;
	cfg.connect_timeout_ms = 3000;
	cfg.max_conns_per_sandbox = 20;
	cfg.max_conns_total = 25;
	cfg.idle_timeout_ms = 2000;
	cfg.emit = on_event;
	cfg.trusted = on_trusted;
	cfg.deny_cidr = "10.98.0.0/16, fd98::/16";
	if (moat_loop_new(&E.l, NULL) != 0 || moat_proxy_new(E.l, &cfg, &E.p,
	    NULL) != 0 || loop_start(E.l) != 0)
		return false;
	for (int i = 0; i < 20 && rc != 0; i++) {
		E.port = 30000 + (int)((getpid() * 7 + i * 131) % 20000);
		in_loop(add_sandbox_fn, &rc);
	}
	ok(rc == 0, "proxy listens on 127.0.0.1:%d", E.port);
	ok(set_policy(base_policy(NULL, false)) == 0, "policy installed");
	usleep(200 * 1000); /* the upstream binds in its netns */
	return true;
}

static void
fixture_stop(void)
{
	loop_stop();
	moat_proxy_free(E.p);
	moat_loop_free(E.l);
	cleanup();
}

#endif
