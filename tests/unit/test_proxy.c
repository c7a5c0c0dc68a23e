/*
 * The proxy in-process on 127.0.0.1, against an upstream (HTTP echo of
 * the request, TCP echo) that lives in a network namespace and veth pair
 * this test creates (10.99.N.2), named upstream.test through the
 * resolver's hosts-file override. Clients are this test binary and the
 * real /usr/bin/curl (and copies of it).
 */
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
#include "tests/unit/proxy_util.h"
#include "tests/unit/tap.h"

#define MAXEV 256

static struct {
	char ns[32];
	char veth[16];
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
} E;

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

static int
dial(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { 10, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
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

static void
test_connect(void)
{
	char head[4096], hp[64];
	int fd;

	snprintf(hp, sizeof(hp), "upstream.test:9000");
	fd = dial(E.port);
	ok(fd >= 0 && tunnel(fd, hp, head, sizeof(head)),
	    "allowed CONNECT gets 200");
	ok(echo_roundtrip(fd, 6 << 20), "6 MB through the tunnel both ways, "
	    "sha256 equal");
	close(fd);

	fd = dial(E.port);
	ok(!tunnel(fd, "upstream.test:9001", head, sizeof(head)) &&
	    has(head, "403"), "CONNECT to an unlisted port is 403");
	close(fd);
	{
		char *r = xfers("CONNECT upstream.test:9001 HTTP/1.1\r\n\r\n");
		ok(has(r, "Content-Type: application/json") &&
		    has(r, "Connection: close") && has(r, "Content-Length: ") &&
		    has(r, "\"error\":\"policy_denied\"") &&
		    has(r, "\"detail\":\"CONNECT upstream.test:9001 not "
		    "permitted by policy\""), "403 JSON in OpenShell's shape");
		ok(has(r, "\"next_steps\":[{") && has(r, "inspect_policy") &&
		    has(r, "http://policy.local/v1/denials?last=5") &&
		    has(r, "PolicyMergeOperation") && has(r, "agent_guidance"),
		    "403 body has next_steps and guidance");
		like_str(r, "\"binary\":\"", "403 body names the binary");
		diag("endpoint half: %s", strstr(r, "\"reason\"") ?
		    strstr(r, "\"reason\"") : r);
		free(r);
	}
	{
		char *r = xfers("CONNECT upstream.test:8081 HTTP/1.1\r\n\r\n");
		ok(has(r, "\"policy\":\"other\"") && has(r, "403"),
		    "binary half: the policy whose endpoint matched is named");
		diag("binary half: %s", strstr(r, "\"reason\"") ?
		    strstr(r, "\"reason\"") : r);
		free(r);
	}
	{
		/* A forward request pipelined after a denied CONNECT. */
		char *r = xfers("CONNECT upstream.test:9001 HTTP/1.1\r\n\r\n"
		    "GET http://upstream.test:8080/smuggled HTTP/1.1\r\n"
		    "Host: upstream.test\r\n\r\n");
		ok(has(r, "403") && !has(r, "HTTP/1.1 200") &&
		    !has(r, "smuggled"),
		    "bytes after a denied CONNECT are never forwarded");
		free(r);
	}
	{
		char *r = xfers("CONNECT loop.test:9000 HTTP/1.1\r\n\r\n");
		ok(has(r, "\"error\":\"ssrf_denied\"") &&
		    has(r, "blocked: internal address"),
		    "a name resolving to loopback is ssrf_denied");
		free(r);
	}
	{
		/* Exact hosts may reach internal addresses, but not these. */
		char *r = xfers("CONNECT hostself.test:9000 HTTP/1.1\r\n\r\n");
		ok(has(r, "\"error\":\"ssrf_denied\"") &&
		    has(r, "which is an address of this host"),
		    "an exact host resolving to an address of this host is "
		    "ssrf_denied");
		free(r);
		r = xfers("GET http://pool.test:9000/ HTTP/1.1\r\n\r\n");
		ok(has(r, "\"error\":\"ssrf_denied\"") &&
		    has(r, "10.98.7.7, which is an address of a sandbox"),
		    "an exact host resolving into the sandbox pool is "
		    "ssrf_denied");
		free(r);
		r = xfers("CONNECT pool6.test:9000 HTTP/1.1\r\n\r\n");
		ok(has(r, "\"error\":\"ssrf_denied\"") &&
		    has(r, "an address of a sandbox"),
		    "allowed_ips covering the sandbox pool still cannot reach "
		    "it");
		free(r);
	}
}

static void
test_forward(void)
{
	char *r, *r2;

	r = xfers("GET http://upstream.test:8080/a/b?x=1 HTTP/1.1\r\n"
	    "Host: evil.example\r\nProxy-Connection: keep-alive\r\n"
	    "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nX-Keep: 2\r\n\r\n");
	ok(has(r, "HTTP/1.1 200"), "forward GET allowed");
	ok(has(r, "GET /a/b?x=1 HTTP/1.1\r\n"), "origin-form target upstream");
	ok(has(r, "Host: upstream.test:8080\r\n") && !has(r, "evil.example"),
	    "Host comes from the URL that was decided");
	ok(!has(r, "Proxy-Connection") && !has(r, "X-Hop") &&
	    has(r, "X-Keep: 2") && has(r, "Via: 1.1 moat") &&
	    has(r, "Connection: close"), "hop-by-hop headers removed");
	free(r);

	r = xfers("POST http://upstream.test:8080/p HTTP/1.1\r\n"
	    "Content-Length: 5\r\n\r\nhelloGET http://upstream.test:8080/x "
	    "HTTP/1.1\r\n\r\n");
	ok(has(r, "\r\n\r\nhello") && !has(r, "GET http") &&
	    !has(r, "/x HTTP"), "CL body forwarded, nothing after it");
	free(r);

	r = xfers("POST http://upstream.test:8080/c HTTP/1.1\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	    "GET /smuggle HTTP/1.1\r\n\r\n");
	ok(has(r, "5\r\nhello\r\n0\r\n\r\n") && !has(r, "smuggle"),
	    "chunked body forwarded, nothing after it");
	free(r);

	r = xfers("GET http://upstream.test:8081/ HTTP/1.1\r\n\r\n");
	r2 = xfers("CONNECT upstream.test:8081 HTTP/1.1\r\n\r\n");
	ok(has(r, "403") && has(r, "\"detail\":\"GET upstream.test:8081"),
	    "forward GET denied with the method in the detail");
	ok(strstr(r, "\"reason\"") && strstr(r2, "\"reason\"") &&
	    strncmp(strstr(r, "\"reason\""), strstr(r2, "\"reason\""), 60) == 0,
	    "forward and CONNECT decide identically");
	free(r);
	free(r2);

	r = xfers("GET https://upstream.test/ HTTP/1.1\r\n\r\n");
	ok(has(r, "HTTP/1.1 400") && has(r, "Use CONNECT for HTTPS URLs"),
	    "https:// absolute form is 400 naming CONNECT");
	free(r);
	r = xfers("GET http://upstream.test:8080/ HTTP/1.1\r\nA: b\n\r\n");
	ok(has(r, "HTTP/1.1 400"), "bare LF is 400");
	free(r);
	r = xfers("GET http://upstream.test:8080/ HTTP/1.1\r\n"
	    "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx");
	ok(has(r, "HTTP/1.1 400") && !has(r, "200"), "duplicate CL is 400");
	free(r);
	{
		char *big = malloc(10000);
		memset(big, 'a', 10000);
		memcpy(big, "GET http://upstream.test:8080/ HTTP/1.1\r\nX: ", 44);
		r = xfer(big, 10000);
		ok(has(r, "HTTP/1.1 431"), "head over 8 KiB is 431");
		free(r);
		free(big);
	}
}

static void
test_curl(void)
{
	char out[65536], bin[256], url[128];
	int rc;

	if (access("/usr/bin/curl", X_OK) != 0) {
		skip("no /usr/bin/curl");
		return;
	}
	rc = curl("/usr/bin/curl", "http://upstream.test:8080/viacurl", false,
	    out, sizeof(out));
	ok(rc == 0 && has(out, "GET /viacurl HTTP/1.1"),
	    "curl forward through the proxy is allowed");
	rc = curl("/usr/bin/curl", "http://upstream.test:8080/tun", true, out,
	    sizeof(out));
	ok(rc == 0 && has(out, "GET /tun HTTP/1.1"),
	    "curl -p (CONNECT) through the proxy is allowed");
	rc = curl("/usr/bin/curl", "http://upstream.test:8081/", false, out,
	    sizeof(out));
	ok(has(out, "policy_denied"), "curl to an endpoint of another "
	    "policy is denied");

	/*
	 * Identity: a copy of curl is not /usr/bin/curl. Its parent (this
	 * test) must not be listed either, or it is allowed as an ancestor.
	 */
	set_policy("{\"version\":1,\"network_policies\":{\"up\":{"
	    "\"endpoints\":[{\"host\":\"upstream.test\",\"port\":8080}],"
	    "\"binaries\":[{\"path\":\"/usr/bin/curl\"}]}}}");
	rc = curl("/usr/bin/curl", "http://upstream.test:8080/only", false,
	    out, sizeof(out));
	ok(rc == 0 && has(out, "GET /only"), "curl allowed as itself");
	snprintf(bin, sizeof(bin), "%s/curl", E.dir);
	sh("cp /usr/bin/curl %s", bin);
	snprintf(url, sizeof(url), "http://upstream.test:8080/copy");
	rc = curl(bin, url, false, out, sizeof(out));
	if (!ok(rc != 0 || (has(out, "policy_denied") && has(out, bin)),
	    "a copy of curl is denied when the policy lists /usr/bin/curl"))
		diag("rc %d out %.300s", rc, out);
	set_policy(base_policy(NULL, false));
}

struct retrust {
	const char *path;
	char sha[65];
	int rc;
};

static void
retrust_fn(void *arg)
{
	struct retrust *rt = arg;

	rt->rc = moat_proxy_retrust(E.p, "box", rt->path,
	    rt->sha[0] ? rt->sha : NULL);
}

static void
test_tofu(void)
{
	struct retrust rt = { 0 };
	char out[65536], bin[256], extra[300], tmp[300], v2[300];
	int rc, n0;

	snprintf(bin, sizeof(bin), "%s/tcurl", E.dir);
	sh("cp /usr/bin/curl %s", bin);
	snprintf(extra, sizeof(extra), ",{\"path\":\"%s\"}", bin);
	ok(set_policy(base_policy(extra, false)) == 0, "policy with tcurl");
	rc = curl(bin, "http://upstream.test:8080/t1", false, out, sizeof(out));
	ok(rc == 0 && has(out, "GET /t1"), "tcurl allowed on first use");
	/* Same path, new content (an "upgrade" inside the sandbox). */
	snprintf(tmp, sizeof(tmp), "%s.new", bin);
	sh("cp /usr/bin/curl %s && printf upgrade >> %s && mv %s %s", tmp, tmp,
	    tmp, bin);
	n0 = nevents();
	rc = curl(bin, "http://upstream.test:8080/t2", false, out, sizeof(out));
	ok(has(out, "binary changed") && !has(out, "GET /t2"),
	    "changed binary at the same path is denied: binary changed");
	pthread_mutex_lock(&E.mu);
	ok(E.nev > n0 && strcmp(E.ev[E.nev - 1].stage, "identity") == 0 &&
	    strlen(E.ev[E.nev - 1].sha256) == 64 &&
	    strcmp(E.ev[E.nev - 1].binary, bin) == 0,
	    "binary changed event carries the new sha256");
	memcpy(rt.sha, E.ev[E.nev - 1].sha256, 65);
	pthread_mutex_unlock(&E.mu);

	/* The operator approves that hash; then the file is swapped. */
	snprintf(v2, sizeof(v2), "%s.v2", bin);
	sh("cp %s %s", bin, v2);
	rt.path = bin;
	in_loop(retrust_fn, &rt);
	ok(rt.rc == 0, "retrust with the approved sha256");
	sh("cp /usr/bin/curl %s && printf swapped >> %s && mv %s %s", tmp, tmp,
	    tmp, bin);
	rc = curl(bin, "http://upstream.test:8080/t3", false, out, sizeof(out));
	ok(has(out, "binary changed") && !has(out, "GET /t3"),
	    "a file swapped in after the approval is still binary changed");
	sh("cp %s %s && mv %s %s", v2, tmp, tmp, bin);
	rc = curl(bin, "http://upstream.test:8080/t4", false, out, sizeof(out));
	ok(rc == 0 && has(out, "GET /t4"), "the approved file is allowed");
	memcpy(rt.sha, "xyz", 4);
	in_loop(retrust_fn, &rt);
	ok(rt.rc == MOAT_ERR_INVALID, "retrust refuses a malformed sha256");
	/* Without a hash: forget, and trust the next use (old behaviour). */
	sh("cp /usr/bin/curl %s && printf third >> %s && mv %s %s", tmp, tmp,
	    tmp, bin);
	rt.sha[0] = '\0';
	in_loop(retrust_fn, &rt);
	rc = curl(bin, "http://upstream.test:8080/t5", false, out, sizeof(out));
	ok(rt.rc == 0 && rc == 0 && has(out, "GET /t5"),
	    "retrust without a hash forgets: the next use is trusted");
}

struct hsub {
	int fd;
	struct stat st;
	struct stat stale;
	char sha[65];
	atomic_int done;
	bool cached_stale;
	bool cached_now;
	char cached_sha[65];
};

static void
hsub_cb(void *arg, int idx, const char *sha)
{
	struct hsub *hs = arg;

	moat_strlcpy(hs->sha, sha != NULL ? sha : "", sizeof(hs->sha));
	atomic_store(&hs->done, 1);
}

static void
hsub_submit(void *arg)
{
	struct hsub *hs = arg;

	px_hasher_submit(E.p->hasher, hs->fd, &hs->stale, hsub_cb, hs, 0);
}

static void
hsub_check(void *arg)
{
	struct hsub *hs = arg;
	char sha[65];

	hs->cached_stale = px_hasher_cached(E.p->hasher, &hs->stale, sha);
	hs->cached_now = px_hasher_cached(E.p->hasher, &hs->st, hs->cached_sha);
}

/*
 * The fingerprint handed in no longer matches the file when the hash
 * is read (it changed in between): the hash must not be cached under
 * the old fingerprint, only under the one it was read with.
 */
static void
test_hash_fingerprint(void)
{
	struct hsub hs = { 0 };
	unsigned char md[32];
	char path[300], want[65];
	static const char body[] = "fingerprint test contents\n";

	snprintf(path, sizeof(path), "%s/fpfile", E.dir);
	sh("printf 'fingerprint test contents\\n' > %s", path);
	sha256(body, sizeof(body) - 1, md);
	for (int i = 0; i < 32; i++)
		snprintf(want + 2 * i, 3, "%02x", md[i]);
	hs.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (hs.fd < 0 || fstat(hs.fd, &hs.st) != 0) {
		skip("cannot open the test file");
		return;
	}
	hs.stale = hs.st;
	hs.stale.st_mtim.tv_sec -= 100;
	atomic_init(&hs.done, 0);
	in_loop(hsub_submit, &hs);
	for (int i = 0; i < 500 && !atomic_load(&hs.done); i++)
		usleep(10 * 1000);
	is_str(hs.sha, want, "hash of a file whose fingerprint moved");
	in_loop(hsub_check, &hs);
	ok(!hs.cached_stale, "not cached under the fingerprint taken before "
	    "the read");
	ok(hs.cached_now && strcmp(hs.cached_sha, want) == 0,
	    "cached under the fingerprint it was read with");
	unlink(path);
}

static void
test_big_hash(void)
{
	char bin[256], extra[300], out[4096], head[4096];
	char proxy[64], url[64];
	char *argv[] = { bin, "-sS", "-m", "30", "-o", "/dev/null", "-x",
		proxy, url, NULL };
	int64_t t0, t_small, t_big;
	int fd, st;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/bigcurl", E.dir);
	/* 100 MB of real (not sparse) bytes after the ELF image. */
	sh("cp /usr/bin/curl %s && head -c 100000000 /dev/urandom >> %s", bin,
	    bin);
	snprintf(extra, sizeof(extra), ",{\"path\":\"%s\"}", bin);
	set_policy(base_policy(extra, false));
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", E.port);
	snprintf(url, sizeof(url), "http://upstream.test:8080/big");
	sh("cat %s > /dev/null", bin); /* page cache: time the hash only */
	t0 = moat_now_ms();
	if ((pid = fork()) == 0) {
		int dn = open("/dev/null", O_WRONLY | O_CLOEXEC);
		dup2(dn, 2);
		execv(bin, argv);
		_exit(127);
	}
	usleep(100 * 1000);
	t_small = moat_now_ms();
	fd = dial(E.port);
	ok(fd >= 0 && tunnel(fd, "upstream.test:9000", head, sizeof(head)),
	    "an allowed CONNECT while a 100 MB binary is hashed");
	t_small = moat_now_ms() - t_small;
	close(fd);
	waitpid(pid, &st, 0);
	t_big = moat_now_ms() - t0;
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the 100 MB binary is "
	    "allowed after hashing");
	diag("small connection %lld ms, 100 MB binary's request %lld ms",
	    (long long)t_small, (long long)t_big);
	ok(t_small < 100 || t_small * 3 < t_big,
	    "hashing did not stall the other connection");
	(void)out;
}

static void
test_hot_swap(void)
{
	char head[4096], buf[16];
	int a, b, n0;
	ssize_t n;

	set_policy(base_policy(NULL, true));
	a = dial(E.port);
	b = dial(E.port);
	ok(tunnel(a, "upstream.test:9000", head, sizeof(head)) &&
	    tunnel(b, "upstream.test:9002", head, sizeof(head)),
	    "two tunnels open (9000, 9002)");
	n0 = nevents();
	set_policy(base_policy(NULL, false));
	n = recv(b, buf, sizeof(buf), 0);
	ok(n <= 0, "tunnel to 9002 closed after the swap removed it");
	ok(send(a, "ping", 4, MSG_NOSIGNAL) == 4 &&
	    recv(a, buf, 4, MSG_WAITALL) == 4 && memcmp(buf, "ping", 4) == 0,
	    "tunnel to 9000 still relays after the swap");
	pthread_mutex_lock(&E.mu);
	ok(E.nev > n0 && E.ev[E.nev - 1].port == 9002 &&
	    E.ev[E.nev - 1].policy_version == E.policy_version,
	    "the closed tunnel is a denial event under the new version");
	pthread_mutex_unlock(&E.mu);
	close(a);
	close(b);
}

static void
test_idle(void)
{
	char head[4096], buf[4];
	int64_t t0;
	ssize_t n;
	int fd = dial(E.port);

	ok(tunnel(fd, "upstream.test:9000", head, sizeof(head)),
	    "tunnel for the idle test");
	t0 = moat_now_ms();
	n = recv(fd, buf, sizeof(buf), 0);
	t0 = moat_now_ms() - t0;
	ok(n <= 0 && t0 >= 1500 && t0 < 5000,
	    "an idle tunnel is closed after idle_timeout_ms (%lld ms)",
	    (long long)t0);
	close(fd);
}

static void
test_cap(void)
{
	int fds[24], k = 0, n;
	char *r;

	for (int i = 0; i < 50 && conn_count() > 0; i++)
		usleep(20000);
	for (k = 0; k < 20; k++)
		fds[k] = dial(E.port);
	for (int i = 0; i < 100 && conn_count() < 20; i++)
		usleep(10000);
	r = xfers("CONNECT upstream.test:9000 HTTP/1.1\r\n\r\n");
	ok(has(r, "503"), "over the per-sandbox cap (20) is 503");
	free(r);
	for (int i = 0; i < k; i++)
		close(fds[i]);
	for (int i = 0; i < 100 && (n = conn_count()) > 0; i++)
		usleep(10000);
	ok(conn_count() == 0, "closed connections are freed");
}

struct bp {
	struct moat_proxy_bypass_pkt pkt;
};

static void
bypass_fn(void *arg)
{
	moat_proxy_bypass(E.p, "box", &((struct bp *)arg)->pkt);
}

static void
test_bypass(void)
{
	struct sockaddr_in local;
	socklen_t sl = sizeof(local);
	struct bp b = { 0 };
	int fd, n0;

	fd = dial(E.port);
	getsockname(fd, (struct sockaddr *)&local, &sl);
	b.pkt.family = AF_INET;
	b.pkt.l4proto = IPPROTO_TCP;
	b.pkt.src.v4 = local.sin_addr;
	inet_pton(AF_INET, "127.0.0.1", &b.pkt.dst.v4);
	b.pkt.sport = ntohs(local.sin_port);
	b.pkt.dport = (uint16_t)E.port;
	b.pkt.uid = -1;
	n0 = nevents();
	in_loop(bypass_fn, &b);
	pthread_mutex_lock(&E.mu);
	ok(E.nev == n0 + 1 && strcmp(E.ev[n0].stage, "bypass") == 0 &&
	    strcmp(E.ev[n0].binary, E.self) == 0 &&
	    strcmp(E.ev[n0].protocol, "tcp") == 0 && E.ev[n0].port == E.port,
	    "TCP bypass event names the owning binary");
	pthread_mutex_unlock(&E.mu);
	close(fd);
	b.pkt.l4proto = IPPROTO_UDP;
	b.pkt.dport = 53;
	in_loop(bypass_fn, &b);
	pthread_mutex_lock(&E.mu);
	ok(E.nev == n0 + 2 && strcmp(E.ev[n0 + 1].protocol, "udp") == 0 &&
	    E.ev[n0 + 1].port == 53 && has(E.ev[n0 + 1].reason, "bypassed"),
	    "UDP bypass event");
	pthread_mutex_unlock(&E.mu);
}

static void
test_events(void)
{
	int n0 = nevents();
	char *r = xfers("CONNECT upstream.test:9001 HTTP/1.1\r\n\r\n");
	struct moat_denial_event *ev;

	free(r);
	pthread_mutex_lock(&E.mu);
	ev = &E.ev[E.nev - 1];
	ok(E.nev == n0 + 1 && strcmp(ev->stage, "connect") == 0 &&
	    strcmp(ev->binary, E.self) == 0 && strlen(ev->sha256) == 64 &&
	    ev->nancestors > 0 && ev->pid > 0 && ev->uid >= 0 &&
	    strcmp(ev->host, "upstream.test") == 0 && ev->port == 9001 &&
	    strcmp(ev->protocol, "tcp") == 0 && ev->reason[0] != '\0' &&
	    ev->policy_version == E.policy_version,
	    "denial event has every field");
	pthread_mutex_unlock(&E.mu);
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
test_emfile(void)
{
	int fds[120], k, st, fd;
	char head[4096];
	int64_t t0;
	bool got = false;

	if (E.emfile_child <= 0) {
		skip("EMFILE child did not start");
		return;
	}
	for (k = 0; k < 120; k++)
		if ((fds[k] = dial(E.emfile_port)) < 0)
			break;
	usleep(300 * 1000);
	ok(waitpid(E.emfile_child, &st, WNOHANG) == 0,
	    "proxy alive with %d connections against a 64-fd limit", k);
	for (int i = 0; i < k; i++)
		close(fds[i]);
	t0 = moat_now_ms();
	while (!got && moat_now_ms() - t0 < 5000) {
		int save = E.port;
		E.port = E.emfile_port;
		fd = dial(E.port);
		got = fd >= 0 && tunnel(fd, "upstream.test:9000", head,
		    sizeof(head));
		E.port = save;
		if (fd >= 0)
			close(fd);
		if (!got)
			usleep(100 * 1000);
	}
	ok(got, "accepting resumes after fd exhaustion (%lld ms)",
	    (long long)(moat_now_ms() - t0));
}

static void
test_ctl(void)
{
	char line[8192], msg[4096];
	int port = E.emfile_port + 1, save = E.port;
	char *r;

	if (PX.ctl_child <= 0) {
		skip("proxy process did not start");
		return;
	}
	ok(ctl_line(line, sizeof(line), "\"type\":\"ready\""),
	    "proxy process says ready");
	snprintf(msg, sizeof(msg), "{\"type\":\"sandbox\",\"name\":\"box\","
	    "\"listen\":\"127.0.0.1\",\"port\":%d,\"netns_fd\":-1}\n", port);
	ctl_send(msg);
	if (!ok(ctl_line(line, sizeof(line), "sandbox"), "sandbox added") ||
	    strstr(line, "sandbox_ok") == NULL)
		diag("%s", line);
	ctl_send("{\"type\":\"policy\",\"sandbox\":\"box\",\"version\":7,"
	    "\"json\":\"{\\\"version\\\":1,\\\"network_policies\\\":{}}\"}\n");
	ok(ctl_line(line, sizeof(line), "\"type\":\"policy_ok\""),
	    "valid policy acknowledged");
	ctl_send("{\"type\":\"policy\",\"sandbox\":\"box\",\"version\":8,"
	    "\"json\":\"{\\\"bogus\\\":1}\"}\n");
	ok(ctl_line(line, sizeof(line), "\"type\":\"policy_error\"") &&
	    strstr(line, "bogus") != NULL,
	    "invalid policy refused with the field named");
	E.port = port;
	r = xfers("CONNECT upstream.test:9000 HTTP/1.1\r\n\r\n");
	E.port = save;
	ok(has(r, "403"), "the old policy (no network) still decides");
	free(r);
	ok(ctl_line(line, sizeof(line), "\"type\":\"denial\"") &&
	    strstr(line, "\"policy_version\":7") != NULL &&
	    strstr(line, "\"stage\":\"connect\"") != NULL,
	    "denial event written as a JSON line");
	ctl_send("{\"type\":\"bypass\",\"sandbox\":\"box\",\"family\":4,"
	    "\"proto\":17,\"src\":\"127.0.0.1\",\"dst\":\"10.1.2.3\","
	    "\"sport\":5000,\"dport\":53,\"uid\":1000}\n");
	ok(ctl_line(line, sizeof(line), "\"stage\":\"bypass\"") &&
	    strstr(line, "\"ip\":\"10.1.2.3\"") != NULL &&
	    strstr(line, "\"protocol\":\"udp\"") != NULL,
	    "bypass message becomes a bypass event");
}

/* Wait (bounded) until pid runs an executable whose path ends in tail. */
static bool
wait_exe(pid_t pid, const char *tail)
{
	char path[64], buf[512];

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	for (int i = 0; i < 200; i++) {
		ssize_t n = readlink(path, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			if (strlen(buf) >= strlen(tail) &&
			    strcmp(buf + strlen(buf) - strlen(tail), tail) == 0)
				return true;
		}
		usleep(10 * 1000);
	}
	return false;
}

/*
 * A socket held by the real caller and by many co-holders of another
 * binary (listed first, as a hostile cgroup.procs order could): the
 * owner scan must see them all and call it ambiguous, not name the
 * co-holders' binary.
 */
static void
test_owners(void)
{
	enum { NHOLD = 16 };
	struct sockaddr_in sa = { .sin_family = AF_INET }, cl;
	socklen_t len = sizeof(sa);
	struct px_sandbox sb;
	struct px_identity id;
	pid_t kids[NHOLD] = { 0 };
	char procs[128], why[256];
	int lfd, cfd, afd, rc, nk = 0;
	FILE *f;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* No CLOEXEC: the children keep the client socket across exec. */
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lfd, 4) != 0 || getsockname(lfd, (struct sockaddr *)&sa,
	    &len) != 0 || connect(cfd, (struct sockaddr *)&sa,
	    sizeof(sa)) != 0 || (afd = accept4(lfd, NULL, NULL,
	    SOCK_CLOEXEC)) < 0) {
		skip("loopback socket pair");
		return;
	}
	len = sizeof(cl);
	getsockname(cfd, (struct sockaddr *)&cl, &len);
	memset(&sb, 0, sizeof(sb));
	sb.diag_fd = -1;
	snprintf(procs, sizeof(procs), "%s/procs", E.dir);
	sb.procs_path = procs;

	/* Alone, this process is the caller. */
	f = fopen(procs, "we");
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
	rc = px_identity_lookup(&sb, (struct sockaddr *)&cl,
	    (struct sockaddr *)&sa, &id, why, sizeof(why));
	ok(rc == 0 && id.nbin > 0 && strcmp(id.bin[0].path, E.self) == 0,
	    "a socket held by one process names it");
	if (rc == 0)
		px_identity_clear(&id);

	for (nk = 0; nk < NHOLD; nk++) {
		if ((kids[nk] = fork()) == 0) {
			execl("/bin/sleep", "sleep", "30", (char *)NULL);
			_exit(127);
		}
		if (kids[nk] < 0 || !wait_exe(kids[nk], "/sleep"))
			break;
	}
	f = fopen(procs, "we");
	for (int i = 0; i < nk; i++)
		fprintf(f, "%d\n", (int)kids[i]);
	fprintf(f, "%d\n", (int)getpid());
	fclose(f);
	rc = px_identity_lookup(&sb, (struct sockaddr *)&cl,
	    (struct sockaddr *)&sa, &id, why, sizeof(why));
	ok(nk == NHOLD && rc == MOAT_ERR_DENIED &&
	    strstr(why, "ambiguous") != NULL,
	    "16 co-holders listed before the caller: ambiguous, not 'sleep'");
	if (rc == 0) {
		diag("identity: %s", id.bin[0].path);
		px_identity_clear(&id);
	} else
		diag("%s", why);

	for (int i = 0; i < nk; i++) {
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	}
	close(afd);
	close(cfd);
	close(lfd);
	unlink(procs);
}

static void
add_sandbox_fn(void *arg)
{
	struct moat_proxy_sandbox sb = { .name = "box", .listen_addr =
		"127.0.0.1", .netns_fd = -1 };
	struct moat_cause cause = { { 0 } };

	sb.port = (uint16_t)E.port;
	*(int *)arg = moat_proxy_add_sandbox(E.p, &sb, &cause);
	if (*(int *)arg != 0)
		diag("add sandbox: %s", cause.msg);
}

int
main(void)
{
	struct moat_proxy_config cfg = { 0 };
	int rc = -1, ready[2];
	ssize_t n;
	char b;

	if (geteuid() != 0 || access("/usr/sbin/ip", X_OK) != 0) {
		skip("needs root and ip(8) for the upstream netns");
		return done_testing();
	}
	signal(SIGPIPE, SIG_IGN);
	n = readlink("/proc/self/exe", E.self, sizeof(E.self) - 1);
	E.self[n > 0 ? n : 0] = '\0';
	atexit(cleanup);
	snprintf(E.dir, sizeof(E.dir), "/tmp/moat-pxtest.XXXXXX");
	if (mkdtemp(E.dir) == NULL || !setup_net()) {
		skip("cannot create the upstream netns");
		return done_testing();
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
	E.emfile_port = 20000 + (int)(getpid() % 20000) + 1;
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
	cfg.idle_timeout_ms = 2000;
	cfg.emit = on_event;
	cfg.deny_cidr = "10.98.0.0/16, fd98::/16";
	if (moat_loop_new(&E.l, NULL) != 0 || moat_proxy_new(E.l, &cfg, &E.p,
	    NULL) != 0 || loop_start(E.l) != 0)
		return 1;
	for (int i = 0; i < 20 && rc != 0; i++) {
		E.port = 30000 + (int)((getpid() * 7 + i * 131) % 20000);
		in_loop(add_sandbox_fn, &rc);
	}
	ok(rc == 0, "proxy listens on 127.0.0.1:%d", E.port);
	ok(set_policy(base_policy(NULL, false)) == 0, "policy installed");
	usleep(200 * 1000); /* the upstream binds in its netns */

	test_owners();
	test_connect();
	test_events();
	test_forward();
	test_curl();
	test_tofu();
	test_hash_fingerprint();
	test_big_hash();
	test_hot_swap();
	test_idle();
	test_cap();
	test_bypass();
	test_emfile();
	test_ctl();

	loop_stop();
	moat_proxy_free(E.p);
	moat_loop_free(E.l);
	cleanup();
	return done_testing();
}
