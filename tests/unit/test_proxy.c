/*
 * The proxy's relay paths: CONNECT tunnels, forward requests, real curl,
 * hot policy swaps, idle timeouts, connection caps, EMFILE, and the
 * moatd control channel (fixture in tests/unit/proxy_fixture.h).
 */
#include <dirent.h>

#include "tests/unit/nflog_util.h"
#include "tests/unit/proxy_fixture.h"

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
		char *r = xfers("CONNECT upstream.test:9001 HTTP/1.1\r\n"
		    "Host: upstream.test:9001\r\n\r\n");
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
		char *r = xfers("CONNECT upstream.test:8081 HTTP/1.1\r\n"
		    "Host: upstream.test:8081\r\n\r\n");
		ok(has(r, "\"policy\":\"other\"") && has(r, "403"),
		    "binary half: the policy whose endpoint matched is named");
		diag("binary half: %s", strstr(r, "\"reason\"") ?
		    strstr(r, "\"reason\"") : r);
		free(r);
	}
	{
		/* A forward request pipelined after a denied CONNECT. */
		char *r = xfers("CONNECT upstream.test:9001 HTTP/1.1\r\n"
		    "Host: upstream.test:9001\r\n\r\n"
		    "GET http://upstream.test:8080/smuggled HTTP/1.1\r\n"
		    "Host: upstream.test\r\n\r\n");
		ok(has(r, "403") && !has(r, "HTTP/1.1 200") &&
		    !has(r, "smuggled"),
		    "bytes after a denied CONNECT are never forwarded");
		free(r);
	}
	{
		/* Without a sandbox CA, L7 rules cannot be enforced inside
		 * CONNECT: fail closed. A forward request is decided. */
		char *r = xfers("CONNECT l7.test:9000 HTTP/1.1\r\n"
		    "Host: l7.test:9000\r\n\r\n");
		ok(has(r, "403") && has(r, "\"error\":\"policy_denied\"") &&
		    has(r, "this sandbox has no CA") &&
		    !has(r, "HTTP/1.1 200"),
		    "CONNECT to an L7 endpoint without a CA is denied, saying "
		    "why");
		free(r);
		r = xfers("POST http://l7.test:9000/x HTTP/1.1\r\n"
		    "Host: l7.test:9000\r\nContent-Length: 0\r\n\r\n");
		ok(has(r, "403") && has(r, "\"method\":\"POST\"") &&
		    has(r, "\"path\":\"/x\"") && has(r, "access read-only"),
		    "a forward POST to a read-only endpoint is an L7 denial");
		free(r);
		r = xfers("GET http://l7.test:9000/x/../y HTTP/1.1\r\n"
		    "Host: l7.test:9000\r\n\r\n");
		ok(!has(r, "policy_denied") && has(r, "dns_failed"),
		    "a forward GET to it passes L7 (and fails to resolve)");
		free(r);
	}
	{
		char *r = xfers("CONNECT loop.test:9000 HTTP/1.1\r\n"
		    "Host: loop.test:9000\r\n\r\n");
		ok(has(r, "\"error\":\"ssrf_denied\"") &&
		    has(r, "blocked: internal address"),
		    "a name resolving to loopback is ssrf_denied");
		free(r);
	}
	{
		/* Exact hosts may reach internal addresses, but not these. */
		char *r = xfers("CONNECT hostself.test:9000 HTTP/1.1\r\n"
		    "Host: hostself.test:9000\r\n\r\n");
		ok(has(r, "\"error\":\"ssrf_denied\"") &&
		    has(r, "which is an address of this host"),
		    "an exact host resolving to an address of this host is "
		    "ssrf_denied");
		free(r);
		r = xfers("GET http://pool.test:9000/ HTTP/1.1\r\n"
		    "Host: pool.test:9000\r\n\r\n");
		ok(has(r, "\"error\":\"ssrf_denied\"") &&
		    has(r, "10.98.7.7, which is an address of a sandbox"),
		    "an exact host resolving into the sandbox pool is "
		    "ssrf_denied");
		free(r);
		r = xfers("CONNECT pool6.test:9000 HTTP/1.1\r\n"
		    "Host: pool6.test:9000\r\n\r\n");
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
	    "Host: upstream.test:8080\r\n"
	    "Content-Length: 5\r\n\r\nhelloGET http://upstream.test:8080/x "
	    "HTTP/1.1\r\nHost: upstream.test:8080\r\n\r\n");
	ok(has(r, "\r\n\r\nhello") && !has(r, "GET http") &&
	    !has(r, "/x HTTP"), "CL body forwarded, nothing after it");
	free(r);

	r = xfers("POST http://upstream.test:8080/c HTTP/1.1\r\n"
	    "Host: upstream.test:8080\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
	    "GET /smuggle HTTP/1.1\r\nHost: upstream.test:8080\r\n\r\n");
	ok(has(r, "5\r\nhello\r\n0\r\n\r\n") && !has(r, "smuggle"),
	    "chunked body forwarded, nothing after it");
	free(r);

	r = xfers("GET http://upstream.test:8081/ HTTP/1.1\r\n"
	    "Host: upstream.test:8081\r\n\r\n");
	r2 = xfers("CONNECT upstream.test:8081 HTTP/1.1\r\n"
	    "Host: upstream.test:8081\r\n\r\n");
	ok(has(r, "403") && has(r, "\"detail\":\"GET upstream.test:8081"),
	    "forward GET denied with the method in the detail");
	ok(strstr(r, "\"reason\"") && strstr(r2, "\"reason\"") &&
	    strncmp(strstr(r, "\"reason\""), strstr(r2, "\"reason\""), 60) == 0,
	    "forward and CONNECT decide identically");
	free(r);
	free(r2);

	r = xfers("GET https://upstream.test/ HTTP/1.1\r\n"
	    "Host: upstream.test\r\n\r\n");
	ok(has(r, "HTTP/1.1 400") && has(r, "Use CONNECT for HTTPS URLs"),
	    "https:// absolute form is 400 naming CONNECT");
	free(r);
	r = xfers("GET http://upstream.test:8080/ HTTP/1.1\r\n"
	    "Host: upstream.test:8080\r\nA: b\n\r\n");
	ok(has(r, "HTTP/1.1 400"), "bare LF is 400");
	free(r);
	r = xfers("GET http://upstream.test:8080/ HTTP/1.1\r\n"
	    "Host: upstream.test:8080\r\n"
	    "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx");
	ok(has(r, "HTTP/1.1 400") && !has(r, "200"), "duplicate CL is 400");
	free(r);

	/* RFC 9112: Host required and single; one stray CRLF ignored. The
	 * upstream on 8080 echoes what reached it. */
	r = xfers("GET http://upstream.test:8080/nohost HTTP/1.1\r\n\r\n");
	ok(has(r, "HTTP/1.1 400") && has(r, "without Host") &&
	    !has(r, "/nohost"), "HTTP/1.1 without Host is 400, nothing sent");
	free(r);
	r = xfers("CONNECT upstream.test:9000 HTTP/1.1\r\nHost: a\r\n"
	    "Host: a\r\n\r\n");
	ok(has(r, "HTTP/1.1 400") && has(r, "more than one Host") &&
	    !has(r, "200"), "CONNECT with two Host headers is 400");
	free(r);
	r = xfers("\r\nGET http://upstream.test:8080/crlf HTTP/1.1\r\n"
	    "Host: upstream.test:8080\r\n\r\n");
	ok(has(r, "HTTP/1.1 200") && has(r, "\r\n\r\nGET /crlf HTTP/1.1\r\n"),
	    "a request after one stray CRLF is served (and sent without it)");
	free(r);
	r = xfers("\r\n\r\nGET http://upstream.test:8080/crlf2 HTTP/1.1\r\n"
	    "Host: upstream.test:8080\r\n\r\n");
	ok(has(r, "HTTP/1.1 400") && !has(r, "/crlf2"),
	    "two empty lines first are 400, nothing sent");
	free(r);
	{
		char *big = malloc(10000);
		memset(big, 'a', 10000);
		memcpy(big, "GET http://upstream.test:8080/ HTTP/1.1\r\n"
		    "Host: x\r\nX: ", 53);
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
box2_add_fn(void *arg)
{
	struct moat_proxy_sandbox sb = { .name = "box2", .listen_addr =
		"127.0.0.2", .netns_fd = -1 };

	sb.port = (uint16_t)E.port;
	sb.procs_path = E.cg.procs;
	*(int *)arg = moat_proxy_add_sandbox(E.p, &sb, NULL);
}

static void
box2_count_fn(void *arg)
{
	*(int *)arg = moat_proxy_conn_count(E.p, "box2");
}

static void
box2_remove_fn(void *arg)
{
	*(int *)arg = moat_proxy_remove_sandbox(E.p, "box2");
}

#define CONNECT_9000 "CONNECT upstream.test:9000 HTTP/1.1\r\n" \
	"Host: upstream.test:9000\r\n\r\n"

/* How many lines of file hold needle. */
static int
lines_with(const char *path, const char *needle)
{
	char line[1024];
	int n = 0;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/*
 * The fixture's caps: 20 per sandbox, 25 in all. Over a cap: 503 with
 * a JSON body naming the cap, and one log line for a burst.
 */
static void
test_cap(void)
{
	int fds[32], k = 0, n = 0, got503 = 0, logfd, saved, rc = -1;
	char *r, *first = NULL, logpath[300];

	for (int i = 0; i < 50 && conn_count() > 0; i++)
		usleep(20000);
	for (k = 0; k < 20; k++)
		fds[k] = dial(E.port);
	for (int i = 0; i < 100 && conn_count() < 20; i++)
		usleep(10000);
	/* stderr to a file for the burst: the refusals must log once. */
	snprintf(logpath, sizeof(logpath), "%s/cap.log", E.dir);
	logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	fflush(stderr);
	saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
	dup2(logfd, 2);
	for (int i = 0; i < 5; i++) {
		r = xfers(CONNECT_9000);
		got503 += has(r, "HTTP/1.1 503");
		if (first == NULL)
			first = r;
		else
			free(r);
	}
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(logfd);
	is_int(got503, 5, "over the per-sandbox cap (20): five tries, five "
	    "503s");
	ok(has(first, "\"error\":\"too_many_connections\"") &&
	    has(first, "\"cap\":\"proxy.max_conns_per_sandbox\"") &&
	    has(first, "\"limit\":20") &&
	    has(first, "Content-Type: application/json"), "the 503 is JSON "
	    "naming the cap and its value");
	if (!has(first, "\"cap\""))
		diag("%s", first);
	free(first);
	is_int(lines_with(logpath, "proxy.max_conns_per_sandbox = 20 "
	    "reached"), 1, "one log line for the burst, not one per "
	    "connection");

	/* A second sandbox fills the proxy's total (25) with 5 more. */
	in_loop(box2_add_fn, &rc);
	ok(rc == 0, "second sandbox on 127.0.0.2");
	for (int i = 0; i < 5; i++)
		fds[k++] = dial_at("127.0.0.2", E.port);
	for (int i = 0; i < 100 && n < 5; i++) {
		in_loop(box2_count_fn, &n);
		usleep(10000);
	}
	r = NULL;
	if ((fds[k] = dial_at("127.0.0.2", E.port)) >= 0) {
		(void)!send(fds[k], CONNECT_9000, strlen(CONNECT_9000),
		    MSG_NOSIGNAL);
		r = read_all(fds[k], NULL);
		k++;
	}
	ok(r != NULL && has(r, "HTTP/1.1 503") &&
	    has(r, "\"cap\":\"proxy.max_conns\"") &&
	    has(r, "\"limit\":25"), "over the total cap (25, with %d in the "
	    "second sandbox): 503 naming proxy.max_conns", n);
	free(r);
	for (int i = 0; i < k; i++)
		moat_close(fds[i]);
	in_loop(box2_remove_fn, &rc);
	for (int i = 0; i < 100 && conn_count() > 0; i++)
		usleep(10000);
	ok(conn_count() == 0, "closed connections are freed");
}

/* The fds below its limit (64) the EMFILE child holds now. */
static int
child_fds(void)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)E.emfile_child);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.' && atoi(e->d_name) < 64;
	closedir(d);
	return n;
}

/*
 * The EMFILE child (64 fds) with exactly one free: the next client
 * takes it, and identity has none left to read /proc. That is a 503
 * saying so, never a policy denial.
 */
static void
test_nofd(void)
{
	int fds[80], k = 0, have = 0, save = E.port;
	char *r;

	if (!ok(E.emfile_child > 0, "EMFILE child runs"))
		return;
	while (k < 80 && (have = child_fds()) >= 0 && have < 63) {
		if ((fds[k] = dial(E.emfile_port)) < 0)
			break;
		k++;
		for (int i = 0; i < 100 && child_fds() < have + 1; i++)
			usleep(5000);
	}
	is_int(child_fds(), 63, "the proxy holds 63 of its 64 fds (%d idle "
	    "clients)", k);
	E.port = E.emfile_port;
	r = xfers(CONNECT_9000);
	E.port = save;
	ok(has(r, "HTTP/1.1 503") && has(r, "\"error\":\"proxy_out_of_fds\"")
	    && !has(r, "policy_denied"), "no fd for identity: 503 "
	    "proxy_out_of_fds, not an identity denial");
	if (!has(r, "proxy_out_of_fds"))
		diag("%.300s", r);
	free(r);
	for (int i = 0; i < k; i++)
		close(fds[i]);
}

static void
test_emfile(void)
{
	int fds[120], k, st, fd;
	char head[4096];
	int64_t t0;
	bool got = false;

	if (!ok(E.emfile_child > 0, "EMFILE child runs"))
		return;
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
	/* 127.0.0.1:5000 -> 10.1.2.3:53, UDP */
	uint8_t udp[28] = { 0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, IPPROTO_UDP,
		0, 0, 127, 0, 0, 1, 10, 1, 2, 3, 0x13, 0x88, 0, 53 };
	uint8_t nl[512] __attribute__((aligned(4)));
	char line[8192], msg[4096];
	int port = E.emfile_port + 1, save = E.port;
	size_t nlen;
	char *r;

	if (PX.ctl_child <= 0) {
		skip("proxy process did not start");
		return;
	}
	ok(ctl_line(line, sizeof(line), "\"type\":\"ready\""),
	    "proxy process says ready");
	/* The NFLOG socket travels with the line (SCM_RIGHTS). */
	snprintf(msg, sizeof(msg), "{\"type\":\"sandbox\",\"name\":\"box\","
	    "\"listen\":\"127.0.0.1\",\"port\":%d,\"procs\":\"%s\","
	    "\"fds\":[\"nflog\"],\"fd_seq\":0}\n", port, E.cg.procs);
	ctl_send_fd(msg, PX.nflog[1]);
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
	r = xfers("CONNECT upstream.test:9000 HTTP/1.1\r\n"
	    "Host: upstream.test:9000\r\n\r\n");
	E.port = save;
	ok(has(r, "403"), "the old policy (no network) still decides");
	free(r);
	ok(ctl_line(line, sizeof(line), "\"type\":\"denial\"") &&
	    strstr(line, "\"policy_version\":7") != NULL &&
	    strstr(line, "\"stage\":\"connect\"") != NULL,
	    "denial event written as a JSON line");
	/* The sandbox's NFLOG socket, read by the proxy itself. */
	nlen = make_nflog(nl, "moat-deny", 1000, udp, sizeof(udp));
	if (send(PX.nflog[0], nl, nlen, 0) != (ssize_t)nlen)
		diag("send to the NFLOG pair failed");
	ok(ctl_line(line, sizeof(line), "\"stage\":\"bypass\"") &&
	    strstr(line, "\"ip\":\"10.1.2.3\"") != NULL &&
	    strstr(line, "\"protocol\":\"udp\"") != NULL &&
	    strstr(line, "\"port\":53") != NULL,
	    "a packet on the sandbox's NFLOG socket becomes a bypass event");
}


int
main(void)
{
	if (!fixture_start())
		return done_testing();
	test_connect();
	test_forward();
	test_curl();
	test_hot_swap();
	test_idle();
	test_cap();
	test_nofd();
	test_emfile();
	test_ctl();
	fixture_stop();
	return done_testing();
}
