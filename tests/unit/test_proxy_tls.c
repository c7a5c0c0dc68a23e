/*
 * TLS interception, L7 rules and credential injection in the proxy,
 * in-process, against an HTTPS upstream (tests/helpers/tls_upstream.py)
 * in a network namespace this test creates, with a certificate from a
 * test CA it makes with openssl(1). Clients: the real curl, and this
 * binary (raw TLS for SNI and WebSocket).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proxy/ca.h"
#include "proxy/internal.h"
#include "tests/unit/own_cgroup.h"
#include "tests/unit/proxy_util.h"

#define SECRET "s3cr3t-V4lue/+="

static struct {
	char ns[32];
	char veth[16];
	char up_ip[32];
	char dir[64];
	char hosts[128];
	char self[512];
	char bundle[128];
	pid_t up[2];
	int port;
	struct moat_loop *l;
	struct moat_proxy *p;
	pthread_mutex_t mu;
	struct moat_denial_event ev[64];
	int nev;
	struct own_cgroup cg; /* the "sandbox" whose processes are read */
} T;

static void
on_event(void *arg, const struct moat_denial_event *ev)
{
	(void)arg;
	pthread_mutex_lock(&T.mu);
	if (T.nev < 64)
		T.ev[T.nev++] = *ev;
	pthread_mutex_unlock(&T.mu);
}

/* The newest event whose reason contains s, copied; false if none. */
static bool
find_event(const char *s, struct moat_denial_event *out)
{
	bool found = false;

	pthread_mutex_lock(&T.mu);
	for (int i = T.nev - 1; i >= 0 && !found; i--)
		if (strstr(T.ev[i].reason, s) != NULL) {
			*out = T.ev[i];
			found = true;
		}
	pthread_mutex_unlock(&T.mu);
	return found;
}

static int
sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int
sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if ((r = system(cmd)) != 0)
		diag("command failed (%d): %s", r, cmd);
	return r;
}

static void
cleanup(void)
{
	for (int i = 0; i < 2; i++)
		if (T.up[i] > 0) {
			kill(-T.up[i], SIGKILL);
			waitpid(T.up[i], NULL, 0);
			T.up[i] = 0;
		}
	if (T.ns[0] != '\0') {
		sh("ip netns del %s 2>/dev/null", T.ns);
		sh("ip link del %s 2>/dev/null || true", T.veth);
		T.ns[0] = '\0';
	}
	if (T.dir[0] != '\0') {
		sh("rm -rf %s", T.dir);
		T.dir[0] = '\0';
	}
	own_cgroup_leave(&T.cg);
}

/* The test CA, a server certificate for the upstream names, and an
 * untrusted self-signed one. */
static bool
make_certs(void)
{
	return sh("cd %s && openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:P-256 -nodes -keyout tca.key -out tca.pem "
	    "-days 2 -subj /CN=moat-test-upstream-CA >/dev/null 2>&1 && "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	    "-keyout up.key -out up.csr -subj /CN=upstream.test "
	    ">/dev/null 2>&1 && printf 'subjectAltName=DNS:upstream.test,"
	    "DNS:other.test\\n' > ext && openssl x509 -req -in up.csr -CA "
	    "tca.pem -CAkey tca.key -CAcreateserial -days 2 -extfile ext "
	    "-out up.pem >/dev/null 2>&1 && openssl req -x509 -newkey ec "
	    "-pkeyopt ec_paramgen_curve:P-256 -nodes -keyout bad.key -out "
	    "bad.pem -days 2 -subj /CN=bad.test -addext "
	    "subjectAltName=DNS:bad.test >/dev/null 2>&1", T.dir) == 0;
}

static pid_t
upstream(int port, const char *cert, const char *key)
{
	char src[600], c[128], k[128], ps[16];
	pid_t pid;

	snprintf(src, sizeof(src), "%s/tests/helpers/tls_upstream.py",
	    getenv("MOAT_SRC") ? getenv("MOAT_SRC") : ".");
	snprintf(c, sizeof(c), "%s/%s", T.dir, cert);
	snprintf(k, sizeof(k), "%s/%s", T.dir, key);
	snprintf(ps, sizeof(ps), "%d", port);
	if ((pid = fork()) == 0) {
		setpgid(0, 0);
		execl("/usr/sbin/ip", "ip", "netns", "exec", T.ns,
		    "/usr/bin/python3", src, T.up_ip, ps, c, k, T.dir,
		    (char *)NULL);
		_exit(127);
	}
	return pid;
}

static bool
setup_net(void)
{
	int n = (int)(getpid() % 250) + 1;

	snprintf(T.ns, sizeof(T.ns), "mtl%d", (int)getpid());
	snprintf(T.veth, sizeof(T.veth), "mtlh%d", (int)(getpid() % 100000));
	snprintf(T.up_ip, sizeof(T.up_ip), "10.97.%d.2", n);
	return sh("ip netns add %s && ip link add %s type veth peer name "
	    "mtln%d netns %s && ip addr add 10.97.%d.1/30 dev %s && ip link "
	    "set %s up && ip -n %s addr add %s/30 dev mtln%d && ip -n %s link "
	    "set mtln%d up && ip -n %s link set lo up", T.ns, T.veth,
	    (int)(getpid() % 100000), T.ns, n, T.veth, T.veth, T.ns, T.up_ip,
	    (int)(getpid() % 100000), T.ns, (int)(getpid() % 100000),
	    T.ns) == 0;
}

static char policy[4096];

static const char *
policy_json(void)
{
	snprintf(policy, sizeof(policy),
	    "{\"version\":1,\"network_policies\":{"
	    "\"api\":{\"endpoints\":[{\"host\":\"upstream.test\","
	    "\"port\":8443,\"protocol\":\"rest\",\"rules\":["
	    "{\"allow\":{\"method\":\"GET\",\"path\":\"/**\"}},"
	    "{\"allow\":{\"method\":\"POST\",\"path\":\"/inject/**\"}},"
	    "{\"allow\":{\"method\":\"GET\",\"path\":\"/ws\"}}],"
	    "\"deny_rules\":[{\"method\":\"GET\",\"path\":\"/secret/**\"}]},"
	    "{\"host\":\"other.test\",\"port\":8443,\"protocol\":\"rest\","
	    "\"access\":\"full\",\"deny_rules\":[{\"method\":\"DELETE\"},"
	    "{\"method\":\"GET\",\"path\":\"/admin/**\"}]},"
	    "{\"host\":\"bad.test\",\"port\":8444}],"
	    "\"binaries\":[{\"path\":\"/usr/bin/curl\"},{\"path\":\"%s\"}]}}}",
	    T.self);
	return policy;
}

static void
add_sandbox_fn(void *arg)
{
	char cert[128], key[128];
	struct moat_proxy_sandbox sb = { .name = "box", .listen_addr =
		"127.0.0.1", .netns_fd = -1, .ca_cert = cert, .ca_key = key };
	struct moat_cause cause = { { 0 } };
	const char *hosts[] = { "upstream.test" };
	struct moat_proxy_secret sec = { "TOKEN", SECRET, strlen(SECRET),
		hosts, 1 };

	snprintf(cert, sizeof(cert), "%s/" MOAT_CA_CERT, T.dir);
	snprintf(key, sizeof(key), "%s/" MOAT_CA_KEY, T.dir);
	sb.port = (uint16_t)T.port;
	sb.procs_path = T.cg.procs;
	*(int *)arg = moat_proxy_add_sandbox(T.p, &sb, &cause);
	if (*(int *)arg == 0)
		*(int *)arg = moat_proxy_set_secrets(T.p, "box", &sec, 1,
		    &cause);
	if (*(int *)arg != 0)
		diag("add sandbox: %s", cause.msg);
}

static void
setpol_fn(void *arg)
{
	struct moat_policy *pol = load(arg);

	if (pol != NULL)
		moat_proxy_set_policy(T.p, "box", pol, 1);
	moat_policy_free(pol);
}

static bool
start(void)
{
	struct moat_proxy_config cfg = { 0 };
	struct moat_cause cause = { { 0 } };
	char tca[128];
	int rc = -1, n;

	if (geteuid() != 0 || access("/usr/sbin/ip", X_OK) != 0 ||
	    access("/usr/bin/openssl", X_OK) != 0) {
		skip("needs root, ip(8) and openssl(1)");
		return false;
	}
	signal(SIGPIPE, SIG_IGN);
	n = (int)readlink("/proc/self/exe", T.self, sizeof(T.self) - 1);
	T.self[n > 0 ? n : 0] = '\0';
	atexit(cleanup);
	if (!own_cgroup_enter(&T.cg)) {
		skip("needs cgroup v2 for a cgroup of its own");
		return false;
	}
	snprintf(T.dir, sizeof(T.dir), "/tmp/moat-tlstest.XXXXXX");
	if (mkdtemp(T.dir) == NULL || !setup_net() || !make_certs())
		return false;
	ok(moat_ca_create(T.dir, "box", "/etc/ssl/certs/ca-certificates.crt",
	    &cause) == 0, "sandbox CA made (%s)", cause.msg);
	snprintf(T.bundle, sizeof(T.bundle), "%s/" MOAT_CA_BUNDLE, T.dir);
	snprintf(T.hosts, sizeof(T.hosts), "%s/hosts", T.dir);
	{
		FILE *f = fopen(T.hosts, "we");

		fprintf(f, "%s upstream.test other.test bad.test\n", T.up_ip);
		fclose(f);
	}

	T.up[0] = upstream(8443, "up.pem", "up.key");
	T.up[1] = upstream(8444, "bad.pem", "bad.key");
	snprintf(tca, sizeof(tca), "%s/tca.pem", T.dir);
	pthread_mutex_init(&T.mu, NULL);
	cfg.hosts_file = T.hosts;
	cfg.connect_timeout_ms = 3000;
	cfg.idle_timeout_ms = 5000;
	cfg.emit = on_event;
	cfg.upstream_ca_file = tca;
	if (moat_loop_new(&T.l, NULL) != 0 || moat_proxy_new(T.l, &cfg, &T.p,
	    &cause) != 0 || loop_start(T.l) != 0) {
		diag("proxy: %s", cause.msg);
		return false;
	}
	for (int i = 0; i < 20 && rc != 0; i++) {
		T.port = 30000 + (int)((getpid() * 11 + i * 131) % 20000);
		in_loop(add_sandbox_fn, &rc);
	}
	ok(rc == 0, "proxy with the sandbox CA on 127.0.0.1:%d", T.port);
	in_loop(setpol_fn, (void *)policy_json());
	/* The upstreams bind in their netns: wait, bounded. */
	for (int i = 0; i < 50; i++) {
		if (sh("ip netns exec %s bash -c 'exec 3<>/dev/tcp/%s/8443 && "
		    "exec 4<>/dev/tcp/%s/8444' 2>/dev/null", T.ns, T.up_ip,
		    T.up_ip) == 0)
			break;
		usleep(100 * 1000);
	}
	return rc == 0;
}

/* curl through the proxy trusting only the sandbox bundle. */
static int
curl(char *out, size_t outlen, const char *first, ...)
{
	char proxy[64], *argv[32];
	const char *a;
	int argc = 0, pfd[2], st = -1;
	size_t len = 0;
	ssize_t n;
	va_list ap;
	pid_t pid;

	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", T.port);
	argv[argc++] = "/usr/bin/curl";
	argv[argc++] = "-sS";
	argv[argc++] = "-m";
	argv[argc++] = "15";
	argv[argc++] = "--cacert";
	argv[argc++] = T.bundle;
	argv[argc++] = "-x";
	argv[argc++] = proxy;
	va_start(ap, first);
	for (a = first; a != NULL && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -1;
	if ((pid = fork()) == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
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

static void
test_rules(void)
{
	char out[65536];
	struct moat_denial_event ev;
	int rc;

	rc = curl(out, sizeof(out), "https://upstream.test:8443/hello?x=1",
	    NULL);
	ok(rc == 0 && strstr(out, "\"method\": \"GET\"") &&
	    strstr(out, "\"path\": \"/hello?x=1\""),
	    "GET through the terminated tunnel reaches the upstream (%d)", rc);
	if (rc != 0)
		diag("%s", out);
	rc = curl(out, sizeof(out), "-X", "DELETE",
	    "https://upstream.test:8443/hello", NULL);
	ok(strstr(out, "\"error\":\"policy_denied\"") &&
	    strstr(out, "\"method\":\"DELETE\"") &&
	    strstr(out, "\"path\":\"/hello\"") && strstr(out, "\"layer\":"
	    "\"l7\"") && !strstr(out, "\"method\": \"DELETE\""),
	    "DELETE (no rule) gets the 403 JSON naming method and path");
	ok(find_event("DELETE /hello is not allowed", &ev) &&
	    strcmp(ev.stage, "l7") == 0 && strcmp(ev.method, "DELETE") == 0 &&
	    strcmp(ev.path, "/hello") == 0, "... and is recorded with them");
	curl(out, sizeof(out), "https://upstream.test:8443/secret/k", NULL);
	ok(strstr(out, "matches a deny rule") != NULL,
	    "a deny rule beats the GET /** allow");
	curl(out, sizeof(out), "--path-as-is",
	    "https://upstream.test:8443/x/../secret/k", NULL);
	ok(strstr(out, "matches a deny rule") != NULL,
	    "dot segments do not dodge it");
	curl(out, sizeof(out), "https://upstream.test:8443/x%2f..%2fsecret",
	    NULL);
	ok(strstr(out, "policy_denied") || strstr(out, "bad_request"),
	    "an encoded slash never reaches an allowed path");
	/* Two requests on one kept-alive connection: the second denied. */
	rc = curl(out, sizeof(out), "https://upstream.test:8443/a",
	    "https://upstream.test:8443/secret/b", NULL);
	ok(strstr(out, "\"path\": \"/a\"") && strstr(out, "matches a deny "
	    "rule"), "kept-alive: each request decided on its own");
	rc = curl(out, sizeof(out), "-I", "https://upstream.test:8443/h",
	    NULL);
	ok(rc == 0 && strstr(out, "HTTP/1.1 200"), "HEAD follows GET");
}

static void
test_tls(void)
{
	char out[65536];
	struct moat_denial_event ev;
	int rc;

	rc = curl(out, sizeof(out), "https://bad.test:8444/", NULL);
	ok(strstr(out, "upstream_tls_failed") &&
	    strstr(out, "certificate verification failed"),
	    "an upstream failing verification is a 502 with the reason");
	ok(strstr(out, "HTTP/") == NULL || strstr(out, "502") != NULL,
	    "... never a silent downgrade (%d)", rc);
	ok(find_event("certificate verification failed", &ev) &&
	    strcmp(ev.stage, "tls") == 0, "... and is recorded");
	rc = curl(out, sizeof(out), "--connect-to",
	    "other.test:8443:upstream.test:8443",
	    "https://other.test:8443/", NULL);
	/* curl asks CONNECT upstream.test with SNI other.test. */
	ok(rc != 0 && find_event("is not the CONNECT host", &ev),
	    "a ClientHello whose SNI is not the CONNECT host is refused");
	if (rc == 0)
		diag("%s", out);
}

static void
test_inject(void)
{
	char out[65536];
	struct moat_denial_event ev;
	int rc;

	rc = curl(out, sizeof(out), "-H",
	    "Authorization: Bearer moat:resolve:env:TOKEN",
	    "https://upstream.test:8443/h", NULL);
	ok(strstr(out, "Bearer " SECRET) != NULL, "Bearer placeholder "
	    "replaced for its bound host");
	rc = curl(out, sizeof(out), "-H", "X-Key: openshell:resolve:env:TOKEN",
	    "https://upstream.test:8443/h", NULL);
	ok(strstr(out, "\"x-key\": \"" SECRET "\"") != NULL,
	    "OpenShell's placeholder too");
	rc = curl(out, sizeof(out),
	    "https://upstream.test:8443/q?k=moat%3Aresolve%3Aenv%3ATOKEN",
	    NULL);
	ok(strstr(out, "k=s3cr3t-V4lue%2F%2B%3D") != NULL,
	    "query placeholder replaced, percent-encoded");
	rc = curl(out, sizeof(out), "-u", "me:moat:resolve:env:TOKEN",
	    "https://upstream.test:8443/h", NULL);
	/* base64("me:s3cr3t-V4lue/+=") */
	ok(strstr(out, "Basic bWU6czNjcjN0LVY0bHVlLys9") != NULL,
	    "placeholder inside Basic replaced");
	rc = curl(out, sizeof(out), "-H", "Content-Type: application/json",
	    "-d", "{\"t\":\"moat:resolve:env:TOKEN\"}",
	    "https://upstream.test:8443/inject/j", NULL);
	ok(strstr(out, "{\\\"t\\\":\\\"" SECRET "\\\"}") != NULL,
	    "JSON body placeholder replaced");
	rc = curl(out, sizeof(out), "-d", "a=1&t=moat%3Aresolve%3Aenv%3ATOKEN",
	    "https://upstream.test:8443/inject/f", NULL);
	ok(strstr(out, "t=s3cr3t-V4lue%2F%2B%3D") != NULL,
	    "form body placeholder replaced");
	rc = curl(out, sizeof(out), "-H",
	    "Authorization: Bearer moat:resolve:env:TOKEN",
	    "https://other.test:8443/h", NULL);
	ok(strstr(out, "credential_endpoint_mismatch") &&
	    strstr(out, "\"method\": \"GET\"") == NULL &&
	    strstr(out, SECRET) == NULL,
	    "a placeholder for another host is refused, never forwarded");
	ok(find_event("credential TOKEN is not bound", &ev) &&
	    strcmp(ev.stage, "credential") == 0,
	    "... recorded with the secret's name");
	pthread_mutex_lock(&T.mu);
	rc = 0;
	for (int i = 0; i < T.nev; i++)
		if (strstr(T.ev[i].reason, SECRET) ||
		    strstr(T.ev[i].path, SECRET))
			rc++;
	pthread_mutex_unlock(&T.mu);
	ok(rc == 0, "no event holds the secret's value");
	(void)rc;
}

/* A raw TLS connection through the proxy (CONNECT host:8443), as this
 * binary, trusting the sandbox bundle; 3 s read timeout. */
struct raw {
	int fd;
	SSL_CTX *ctx;
	SSL *s;
};

static void
raw_close(struct raw *r)
{
	SSL_free(r->s);
	SSL_CTX_free(r->ctx);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

static bool
raw_open(struct raw *r, const char *host)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { 3, 0 };
	char head[512];
	size_t len = 0;

	memset(r, 0, sizeof(*r));
	sa.sin_port = htons((uint16_t)T.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(head, sizeof(head), "CONNECT %s:8443 HTTP/1.1\r\n"
	    "Host: %s:8443\r\n\r\n", host, host);
	if (connect(r->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    send(r->fd, head, strlen(head), 0) < 0)
		goto fail;
	while (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0)
		if (len + 1 >= sizeof(head) || recv(r->fd, head + len++, 1,
		    0) != 1)
			goto fail;
	if (strncmp(head, "HTTP/1.1 200", 12) != 0)
		goto fail;
	r->ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_load_verify_locations(r->ctx, T.bundle, NULL);
	SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, NULL);
	r->s = SSL_new(r->ctx);
	SSL_set_fd(r->s, r->fd);
	SSL_set_tlsext_host_name(r->s, host);
	SSL_set1_host(r->s, host);
	if (SSL_connect(r->s) != 1)
		goto fail;
	return true;
fail:
	raw_close(r);
	return false;
}

/* Send s (if any), then read until the peer closes, 3 s pass without a
 * byte, or stop appears; out is NUL-terminated. The bytes read. */
static size_t
raw_talk(struct raw *r, const char *s, const char *stop, char *out,
    size_t outlen)
{
	size_t len = 0;
	int n;

	out[0] = '\0';
	if (r->s == NULL)
		return 0;
	if (s != NULL && SSL_write(r->s, s, (int)strlen(s)) <= 0)
		return 0;
	while (len + 1 < outlen && (n = SSL_read(r->s, out + len,
	    (int)(outlen - 1 - len))) > 0) {
		len += (size_t)n;
		out[len] = '\0';
		if (stop != NULL && strstr(out, stop) != NULL)
			break;
	}
	return len;
}

/* One request on a new tunnel to host: the answer (until close). */
static const char *
raw_req(const char *host, const char *req)
{
	static char out[65536];
	struct raw r;

	out[0] = '\0';
	if (!raw_open(&r, host))
		return "(no tunnel)";
	raw_talk(&r, req, NULL, out, sizeof(out));
	raw_close(&r);
	return out;
}

/*
 * What a hostile client inside the sandbox tries: requests a server
 * reads differently from moat, bytes that make the tunnel a raw relay,
 * placeholders split where the scan must still see them.
 */
static void
test_differentials(void)
{
	char out[65536];
	const char *a;
	struct raw r;

	a = raw_req("other.test", "delete /x HTTP/1.1\r\nHost: other.test\r\n"
	    "Connection: close\r\n\r\n");
	ok(strstr(a, "\"method\": \"delete\"") == NULL &&
	    strstr(a, "HTTP/1.1 403") == a, "a lower-case method does not "
	    "dodge a deny rule (the server reads it as DELETE)");
	if (strstr(a, "HTTP/1.1 403") != a)
		diag("%.300s", a);
	a = raw_req("other.test", "GET /admin;x=1/k HTTP/1.1\r\nHost: "
	    "other.test\r\nConnection: close\r\n\r\n");
	ok(strstr(a, "HTTP/1.1 403") == a, "a path parameter does not dodge a "
	    "deny rule (Tomcat reads /admin;x=1/k as /admin/k)");
	a = raw_req("upstream.test", "POST /inject/x HTTP/1.1\r\nHost: "
	    "upstream.test\r\nX-HTTP-Method-Override: DELETE\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n");
	ok(strstr(a, "HTTP/1.1 403") == a && strstr(a, "DELETE"),
	    "X-HTTP-Method-Override is decided as the method it names");
	a = raw_req("upstream.test", "POST /inject/x?_method=DELETE HTTP/1.1\r\n"
	    "Host: upstream.test\r\nContent-Length: 0\r\nConnection: close\r\n"
	    "\r\n");
	ok(strstr(a, "HTTP/1.1 403") == a, "so is a _method query parameter");
	a = raw_req("upstream.test", "POST /inject/x HTTP/1.1\r\nHost: "
	    "upstream.test\r\nX-HTTP-Method-Override: PATCH\r\n"
	    "Content-Length: 0\r\nConnection: close\r\n\r\n");
	ok(strstr(a, "HTTP/1.1 403") == a, "... PATCH is not allowed either");

	/* h2c next to websocket: the server may pick h2c, then raw. */
	a = raw_req("upstream.test", "GET /switch HTTP/1.1\r\nHost: "
	    "upstream.test\r\nUpgrade: h2c, websocket\r\nConnection: Upgrade, "
	    "HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"
	    "\r\n");
	ok(strstr(a, "HTTP/1.1 400") == a, "Upgrade must be exactly websocket "
	    "(not h2c, websocket)");
	a = raw_req("upstream.test", "POST /inject/ws HTTP/1.1\r\nHost: "
	    "upstream.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Content-Length: 0\r\n\r\n");
	ok(strstr(a, "HTTP/1.1 400") == a, "a WebSocket upgrade is a GET");
	/* A 101 nobody asked for must not make the tunnel raw. */
	if (raw_open(&r, "upstream.test")) {
		raw_talk(&r, "GET /switch HTTP/1.1\r\nHost: upstream.test\r\n"
		    "\r\n", "\r\n\r\n", out, sizeof(out));
		raw_talk(&r, "DELETE /hello HTTP/1.1\r\nHost: upstream.test\r\n"
		    "\r\n", NULL, out, sizeof(out));
		ok(strstr(out, "DELETE /hello") == NULL, "a 101 to a request "
		    "that asked for no upgrade ends the tunnel");
		raw_close(&r);
	} else {
		ok(0, "a 101 to a request that asked for no upgrade ends the "
		    "tunnel (no tunnel)");
	}

	/* The longest placeholder prefix, split across two TLS records. */
	if (raw_open(&r, "upstream.test")) {
		const char *h = "POST /inject/c HTTP/1.1\r\nHost: upstream.test"
		    "\r\nContent-Type: application/octet-stream\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n"
		    "3a\r\nk=0123456789012345678901openshell%3Aresolve%3Aenv";

		SSL_write(r.s, h, (int)strlen(h));
		usleep(100 * 1000);
		raw_talk(&r, "%3ATOKEN&\r\n0\r\n\r\n", NULL, out, sizeof(out));
		ok(strstr(out, "uninspected_credentials") != NULL &&
		    strstr(out, "\"method\": \"POST\"") == NULL,
		    "a placeholder split across reads is found in a streamed "
		    "body");
		if (strstr(out, "uninspected_credentials") == NULL)
			diag("%.300s", out);
		raw_close(&r);
	} else {
		ok(0, "split placeholder (no tunnel)");
	}
}

/* An L4 tunnel made raw (bytes that do not look like HTTP), then a
 * policy that gives the endpoint L7 rules: it must not stay open. */
static void
test_swap_raw(void)
{
	char out[65536], pol[4096];
	struct raw r;
	bool open_;

	snprintf(pol, sizeof(pol), "{\"version\":1,\"network_policies\":{"
	    "\"api\":{\"endpoints\":[{\"host\":\"upstream.test\","
	    "\"port\":8443}],\"binaries\":[{\"path\":\"%s\"}]}}}", T.self);
	in_loop(setpol_fn, pol);
	open_ = raw_open(&r, "upstream.test");
	raw_talk(&r, "get /a HTTP/1.1\r\nHost: upstream.test\r\n\r\n",
	    "\"body\"", out, sizeof(out));
	ok(open_ && strstr(out, "\"method\": \"get\""), "L4 endpoint: bytes "
	    "that do not look like HTTP are relayed raw");
	in_loop(setpol_fn, (void *)policy_json());
	raw_talk(&r, "GET /secret/k HTTP/1.1\r\nHost: upstream.test\r\n\r\n",
	    "\"body\"", out, sizeof(out));
	ok(strstr(out, "/secret/k") == NULL, "after a swap to L7 rules the raw "
	    "tunnel is closed, not left undecided");
	raw_close(&r);
}

/* Raw TLS through the proxy, as this binary: the WebSocket upgrade. */
static void
test_websocket(void)
{
	char head[4096], buf[256];
	int fd = -1;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *s = NULL;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	size_t len = 0;
	int n;
	const char *req = "GET /ws HTTP/1.1\r\nHost: upstream.test:8443\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n";

	sa.sin_port = htons((uint16_t)T.port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(head, sizeof(head), "CONNECT upstream.test:8443 HTTP/1.1\r\n"
	    "Host: upstream.test:8443\r\n\r\n");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    send(fd, head, strlen(head), 0) < 0)
		goto fail;
	while (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0)
		if (recv(fd, head + len++, 1, 0) != 1)
			goto fail;
	SSL_CTX_load_verify_locations(ctx, T.bundle, NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	s = SSL_new(ctx);
	SSL_set_fd(s, fd);
	SSL_set_tlsext_host_name(s, "upstream.test");
	SSL_set1_host(s, "upstream.test");
	if (SSL_connect(s) != 1)
		goto fail;
	{
		X509 *x = SSL_get1_peer_certificate(s);

		ok(x != NULL && X509_check_host(x, "upstream.test", 0, 0,
		    NULL) == 1, "the leaf names the host and chains to the "
		    "sandbox CA");
		X509_free(x);
	}
	SSL_write(s, req, (int)strlen(req));
	len = 0;
	while (len + 1 < sizeof(head) && (n = SSL_read(s, head + len,
	    (int)(sizeof(head) - 1 - len))) > 0) {
		len += (size_t)n;
		head[len] = '\0';
		if (strstr(head, "\r\n\r\n") != NULL)
			break;
	}
	ok(strncmp(head, "HTTP/1.1 101", 12) == 0, "WebSocket upgrade "
	    "decided and answered 101");
	SSL_write(s, "\x81\x05hello-frame", 12);
	len = 0;
	while (len < 12 && (n = SSL_read(s, buf + len, (int)(12 - len))) > 0)
		len += (size_t)n;
	ok(len == 12 && memcmp(buf, "\x81\x05hello-frame", 12) == 0,
	    "then relayed both ways");
	SSL_free(s);
	SSL_CTX_free(ctx);
	close(fd);
	return;
fail:
	ok(0, "WebSocket tunnel set up");
	SSL_free(s);
	SSL_CTX_free(ctx);
	close(fd);
}

int
main(void)
{
	if (!start())
		return done_testing();
	test_rules();
	test_tls();
	test_inject();
	test_websocket();
	test_differentials();
	test_swap_raw();
	loop_stop();
	moat_proxy_free(T.p);
	moat_loop_free(T.l);
	cleanup();
	return done_testing();
}
