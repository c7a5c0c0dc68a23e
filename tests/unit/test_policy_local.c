/*
 * policy.local served by the proxy itself: two sandboxes on two listen
 * addresses (127.0.0.1 and 127.0.0.2, same port) of one in-process
 * proxy, a second proxy without a propose callback (moat run), and the
 * proxy process with this test playing moatd on the control channel.
 * Only loopback traffic; no upstream is ever dialled.
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/loop.h"
#include "common/util.h"
#include "policies/policy.h"
#include "proxy/proxy.h"
#include "tests/unit/proxy_util.h"
#include "tests/unit/tap.h"

enum mode { M_OK, M_ERR_LATER, M_SILENT, M_FAIL };

static struct {
	struct moat_loop *l;
	struct moat_proxy *p;  /* sandboxes a, b; propose callback */
	struct moat_proxy *p0; /* sandbox c; no callback */
	int port;
	int port0;
	int ctl_port;
	enum mode mode;
	char got_sandbox[64];
	char got_body[1024];
	int calls;
	char policy_hash[80];
} E;

static void
answer_err(struct moat_loop *l, void *arg)
{
	moat_proxy_proposal_result(E.p, (uint64_t)(uintptr_t)arg, false, 0,
	    "invalid_proposal: endpoint.host is required");
}

/* Plays moatd in-process (loop thread). */
static int
fake_propose(void *arg, const char *sandbox, uint64_t req, const char *body,
    size_t len)
{
	E.calls++;
	moat_strlcpy(E.got_sandbox, sandbox, sizeof(E.got_sandbox));
	snprintf(E.got_body, sizeof(E.got_body), "%.*s", (int)len, body);
	switch (E.mode) {
	case M_OK:
		/* Answered from inside the callback: must be safe. */
		moat_proxy_proposal_result(E.p, req, true, 42, "");
		return 0;
	case M_ERR_LATER:
		moat_loop_timer(E.l, 50, answer_err, (void *)(uintptr_t)req);
		return 0;
	case M_SILENT:
		return 0;
	default:
		return -1;
	}
}

/* ---- clients ---- */

static int
dial(const char *ip, int port)
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

static char *
read_all(int fd)
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
	return b;
}

struct resp {
	int status;
	char *raw;
	json_t *body;
};

static void
resp_free(struct resp *r)
{
	free(r->raw);
	json_decref(r->body);
	memset(r, 0, sizeof(*r));
}

static void
parse_resp(struct resp *r)
{
	char *b;

	r->status = 0;
	sscanf(r->raw, "HTTP/1.1 %d", &r->status);
	if ((b = strstr(r->raw, "\r\n\r\n")) != NULL)
		r->body = json_loads(b + 4, 0, NULL);
}

static struct resp
http_at(const char *ip, int port, const char *req)
{
	struct resp r = { 0 };
	int fd = dial(ip, port);

	if (fd < 0 || send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		r.raw = strdup("");
		if (fd >= 0)
			close(fd);
		return r;
	}
	r.raw = read_all(fd);
	close(fd);
	parse_resp(&r);
	return r;
}

static struct resp
http_a(const char *req)
{
	return http_at("127.0.0.1", E.port, req);
}

static const char *
jerr(const struct resp *r)
{
	const char *s = json_string_value(json_object_get(r->body, "error"));

	return s != NULL ? s : "";
}

static bool
well_formed(const struct resp *r)
{
	const char *b = strstr(r->raw, "\r\n\r\n");
	char want[64];

	if (b == NULL)
		return false;
	snprintf(want, sizeof(want), "Content-Length: %zu\r\n", strlen(b + 4));
	return strstr(r->raw, "Content-Type: application/json\r\n") != NULL &&
	    strstr(r->raw, "Connection: close\r\n") != NULL &&
	    strstr(r->raw, want) != NULL && r->body != NULL;
}

/* ---- setup on the loop ---- */

struct setup {
	int rc;
};

static void
setup_fn(void *arg)
{
	struct setup *s = arg;
	struct moat_proxy_sandbox a = { .name = "a", .listen_addr =
		"127.0.0.1", .netns_fd = -1 };
	struct moat_proxy_sandbox b = a, c = a;
	struct moat_policy *pol;

	b.name = "b";
	b.listen_addr = "127.0.0.2";
	c.name = "c";
	a.port = b.port = (uint16_t)E.port;
	c.port = (uint16_t)E.port0;
	s->rc = -1;
	if (moat_proxy_add_sandbox(E.p, &a, NULL) != 0 ||
	    moat_proxy_add_sandbox(E.p, &b, NULL) != 0 ||
	    moat_proxy_add_sandbox(E.p0, &c, NULL) != 0) {
		/* A port in use: the caller tries others. */
		moat_proxy_remove_sandbox(E.p, "a");
		moat_proxy_remove_sandbox(E.p, "b");
		moat_proxy_remove_sandbox(E.p0, "c");
		return;
	}
	pol = load("{\"version\":1,\"network_policies\":{\"gh\":{"
	    "\"name\":\"gh\",\"endpoints\":[{\"host\":\"api.github.com\","
	    "\"port\":443}],\"binaries\":[{\"path\":\"/usr/bin/gh\"}]}}}");
	if (pol == NULL)
		return;
	moat_strlcpy(E.policy_hash, moat_policy_hash(pol),
	    sizeof(E.policy_hash));
	moat_proxy_set_policy(E.p, "a", pol, 5);
	moat_policy_free(pol);
	s->rc = 0;
}

struct bp {
	const char *sandbox;
	int from;
	int count;
};

/* UDP bypass packets with dport from..from+count-1, in that order. */
static void
bypass_fn(void *arg)
{
	struct bp *b = arg;
	struct moat_proxy_bypass_pkt pkt = { 0 };

	pkt.family = AF_INET;
	pkt.l4proto = IPPROTO_UDP;
	inet_pton(AF_INET, "10.200.0.2", &pkt.src.v4);
	inet_pton(AF_INET, "93.184.216.34", &pkt.dst.v4);
	pkt.sport = 5000;
	pkt.uid = -1;
	for (int i = 0; i < b->count; i++) {
		pkt.dport = (uint16_t)(b->from + i);
		moat_proxy_bypass(E.p, b->sandbox, &pkt);
	}
}

/* ---- tests ---- */

static void
test_policy_current(void)
{
	struct resp r = http_a("GET http://policy.local/v1/policy/current "
	    "HTTP/1.1\r\nHost: policy.local\r\n\r\n");
	json_t *pol = json_object_get(r.body, "policy");

	ok(r.status == 200 && well_formed(&r), "policy/current is 200 JSON "
	    "with Content-Length and Connection: close");
	ok(json_integer_value(json_object_get(r.body, "version")) == 5 &&
	    strcmp(json_string_value(json_object_get(r.body, "format")) ?: "",
	    "json") == 0, "it carries the format and the version");
	ok(json_object_get(json_object_get(pol, "network_policies"), "gh") !=
	    NULL, "it carries the sandbox's policy object");
	is_str(json_string_value(json_object_get(r.body, "hash")) ?: "",
	    E.policy_hash, "and its hash");
	resp_free(&r);

	r = http_at("127.0.0.2", E.port, "GET http://policy.local/v1/policy/"
	    "current HTTP/1.1\r\nHost: policy.local\r\n\r\n");
	ok(r.status == 404 && strcmp(jerr(&r), "policy_unavailable") == 0,
	    "sandbox b (no policy) gets 404 policy_unavailable, not a's "
	    "policy and not a 403");
	resp_free(&r);

	r = http_a("GET http://POLICY.Local.:80/v1/policy/current?x=1 "
	    "HTTP/1.0\r\n\r\n");
	ok(r.status == 200, "host is case-insensitive, with a trailing dot "
	    "and an explicit port 80");
	resp_free(&r);
}

static json_t *
denials(const char *ip, const char *query, int *status)
{
	char req[256];
	struct resp r;
	json_t *d;

	snprintf(req, sizeof(req), "GET http://policy.local/v1/denials%s "
	    "HTTP/1.1\r\nHost: policy.local\r\n\r\n", query);
	r = http_at(ip, E.port, req);
	*status = r.status;
	if (!well_formed(&r) || !json_is_true(json_object_get(r.body,
	    "log_available")))
		*status = -r.status;
	d = json_incref(json_object_get(r.body, "denials"));
	resp_free(&r);
	return d;
}

static int
dport_at(json_t *a, size_t i)
{
	return (int)json_integer_value(json_object_get(json_array_get(a, i),
	    "port"));
}

static void
test_denials(void)
{
	struct bp ba = { "a", 1001, 15 }, bb = { "b", 2001, 3 };
	json_t *d;
	int st;
	bool all_a = true;

	d = denials("127.0.0.1", "", &st);
	ok(st == 200 && json_is_array(d) && json_array_size(d) == 0,
	    "no denials yet: an empty list");
	json_decref(d);
	in_loop(bypass_fn, &ba);
	in_loop(bypass_fn, &bb);

	d = denials("127.0.0.1", "", &st);
	ok(st == 200 && json_array_size(d) == 10, "default last is 10 "
	    "(got %zu)", json_array_size(d));
	ok(dport_at(d, 0) == 1015 && dport_at(d, 9) == 1006,
	    "newest first (%d .. %d)", dport_at(d, 0), dport_at(d, 9));
	{
		json_t *e = json_array_get(d, 0);
		ok(strcmp(json_string_value(json_object_get(e, "stage")) ?: "",
		    "bypass") == 0 && strcmp(json_string_value(json_object_get(
		    e, "protocol")) ?: "", "udp") == 0 &&
		    json_is_integer(json_object_get(e, "ts_ms")) &&
		    strcmp(json_string_value(json_object_get(e, "ip")) ?: "",
		    "93.184.216.34") == 0 && json_is_string(json_object_get(e,
		    "reason")) && json_is_integer(json_object_get(e,
		    "policy_version")) && json_is_string(json_object_get(e,
		    "binary")) && json_is_string(json_object_get(e, "host")),
		    "a denial carries the event's fields");
	}
	json_decref(d);

	d = denials("127.0.0.1", "?last=3", &st);
	ok(json_array_size(d) == 3 && dport_at(d, 0) == 1015, "last=3");
	json_decref(d);
	d = denials("127.0.0.1", "?foo=bar&last=0", &st);
	ok(json_array_size(d) == 1, "last=0 is clamped to 1");
	json_decref(d);
	d = denials("127.0.0.1", "?last=1000", &st);
	ok(json_array_size(d) == 15, "last=1000 returns all 15 kept");
	for (size_t i = 0; i < json_array_size(d); i++)
		all_a = all_a && dport_at(d, i) > 1000 && dport_at(d, i) < 2000;
	ok(all_a, "sandbox a sees only its own denials");
	json_decref(d);

	d = denials("127.0.0.2", "?last=100", &st);
	ok(st == 200 && json_array_size(d) == 3 && dport_at(d, 0) == 2003 &&
	    dport_at(d, 2) == 2001, "sandbox b (other listen address) sees "
	    "only its own three");
	json_decref(d);

	/* The ring keeps the last 100, and last= is clamped to 100. */
	ba.from = 3001;
	ba.count = 120;
	in_loop(bypass_fn, &ba);
	d = denials("127.0.0.1", "?last=500", &st);
	ok(json_array_size(d) == 100 && dport_at(d, 0) == 3120 &&
	    dport_at(d, 99) == 3021, "ring keeps the newest 100; last clamps "
	    "to 100");
	json_decref(d);

	/* A denial the proxy decides itself (no policy: denied) lands too. */
	{
		struct resp r = http_at("127.0.0.2", E.port, "CONNECT "
		    "evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n"
		    "\r\n");
		ok(r.status == 403, "a normal request of b is still decided "
		    "(403)");
		resp_free(&r);
		d = denials("127.0.0.2", "?last=1", &st);
		is_str(json_string_value(json_object_get(json_array_get(d, 0),
		    "host")) ?: "", "evil.example",
		    "the proxy's own 403 is b's newest denial");
		json_decref(d);
	}
}

static char *
post(const char *body)
{
	char *req;

	if (asprintf(&req, "POST http://policy.local/v1/proposals HTTP/1.1\r\n"
	    "Host: policy.local\r\nContent-Type: application/json\r\n"
	    "Content-Length: %zu\r\n\r\n%s", strlen(body), body) < 0)
		abort();
	return req;
}

static const char PROPOSAL[] = "{\"intent_summary\":\"fetch\",\"operations\":"
    "[{\"addRule\":{\"ruleName\":\"r\",\"rule\":{\"endpoints\":[{\"host\":"
    "\"example.com\",\"port\":443}],\"binaries\":[{\"path\":"
    "\"/usr/bin/curl\"}]}}}]}";

static void
test_proposals(void)
{
	char *req = post(PROPOSAL);
	struct resp r;
	json_t *ids;

	E.mode = M_OK;
	r = http_a(req);
	ids = json_object_get(r.body, "accepted_chunk_ids");
	ok(r.status == 202 && well_formed(&r) && strcmp(json_string_value(
	    json_object_get(r.body, "status")) ?: "", "submitted") == 0 &&
	    json_integer_value(json_object_get(r.body, "accepted_chunks")) ==
	    1 && strcmp(json_string_value(json_array_get(ids, 0)) ?: "",
	    "42") == 0, "accepted proposal is 202 with chunk id 42");
	if (r.status != 202)
		diag("%s", r.raw);
	is_str(E.got_sandbox, "a", "the callback is told the sandbox");
	is_str(E.got_body, PROPOSAL, "and gets the body unchanged");
	resp_free(&r);

	/* The same, from b, with the body arriving after the head. */
	{
		int fd = dial("127.0.0.2", E.port);
		size_t hl = strlen(req) - strlen(PROPOSAL);
		char *raw;

		ok(fd >= 0 && send(fd, req, hl, MSG_NOSIGNAL) == (ssize_t)hl,
		    "head of a proposal sent alone");
		usleep(200 * 1000);
		if (send(fd, PROPOSAL, strlen(PROPOSAL), MSG_NOSIGNAL) < 0)
			diag("send body failed");
		raw = read_all(fd);
		close(fd);
		ok(strncmp(raw, "HTTP/1.1 202", 12) == 0 &&
		    strcmp(E.got_sandbox, "b") == 0, "a body read after the "
		    "head is forwarded for sandbox b");
		free(raw);
	}

	E.mode = M_ERR_LATER;
	r = http_a(req);
	ok(r.status == 400 && strcmp(jerr(&r), "invalid_proposal") == 0 &&
	    strcmp(json_string_value(json_object_get(r.body, "detail")) ?: "",
	    "endpoint.host is required") == 0,
	    "a refused proposal is 400 invalid_proposal with moatd's detail");
	resp_free(&r);

	E.mode = M_SILENT;
	r = http_a(req);
	ok(r.status == 503 && strcmp(jerr(&r), "gateway_unavailable") == 0,
	    "no answer within the timeout is 503 gateway_unavailable");
	resp_free(&r);

	E.mode = M_FAIL;
	r = http_a(req);
	ok(r.status == 503 && strcmp(jerr(&r), "gateway_unavailable") == 0,
	    "a callback that cannot hand it on is 503");
	resp_free(&r);

	r = http_at("127.0.0.1", E.port0, req);
	ok(r.status == 503 && strcmp(jerr(&r), "gateway_unavailable") == 0 &&
	    well_formed(&r), "no propose callback (moat run) is 503 "
	    "gateway_unavailable");
	resp_free(&r);
	free(req);

	E.mode = M_OK;
	E.calls = 0;
	r = http_a("POST http://policy.local/v1/proposals HTTP/1.1\r\n"
	    "Host: policy.local\r\nContent-Length: 70000\r\n\r\n");
	ok(r.status == 413 && E.calls == 0, "a body over 64 KiB is 413 and "
	    "never forwarded");
	resp_free(&r);
	r = http_a("POST http://policy.local/v1/proposals HTTP/1.1\r\n"
	    "Host: policy.local\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
	ok(r.status == 411 && E.calls == 0, "no Content-Length is 411");
	resp_free(&r);
	r = http_a("POST http://policy.local/v1/proposals HTTP/1.1\r\n"
	    "Host: policy.local\r\n"
	    "Content-Length: 3\r\n\r\n\xff\xfe{");
	ok(r.status == 400 && strcmp(jerr(&r), "invalid_proposal") == 0 &&
	    E.calls == 0, "a body that is not UTF-8 is 400");
	resp_free(&r);
}

static void
test_routes(void)
{
	struct resp r;
	int64_t t0;

	r = http_a("GET https://policy.local/v1/policy/current HTTP/1.1\r\n"
	    "Host: policy.local\r\n\r\n");
	ok(r.status == 400 && strcmp(jerr(&r), "invalid_policy_local_scheme")
	    == 0 && well_formed(&r), "https://policy.local is 400 "
	    "invalid_policy_local_scheme");
	resp_free(&r);
	r = http_a("CONNECT policy.local:443 HTTP/1.1\r\n"
	    "Host: policy.local:443\r\n\r\n");
	ok(r.status == 400 && strcmp(jerr(&r), "invalid_policy_local_scheme")
	    == 0, "CONNECT policy.local:443 is 400 invalid_policy_local_scheme");
	resp_free(&r);
	r = http_a("GET https://upstream.example/ HTTP/1.1\r\n"
	    "Host: upstream.example\r\n\r\n");
	ok(r.status == 400 && strstr(r.raw, "Use CONNECT for HTTPS URLs"),
	    "other https:// URLs keep their answer");
	resp_free(&r);
	r = http_a("GET http://policy.local/v1/nothing HTTP/1.1\r\n"
	    "Host: policy.local\r\n\r\n");
	ok(r.status == 404 && strcmp(jerr(&r), "not_found") == 0 &&
	    well_formed(&r), "unknown path is 404 not_found");
	resp_free(&r);
	r = http_a("GET http://policy.local/v1/proposals/42 HTTP/1.1\r\n"
	    "Host: policy.local\r\n\r\n");
	ok(r.status == 404, "proposal status is not served (404)");
	resp_free(&r);
	r = http_a("DELETE http://policy.local/v1/denials HTTP/1.1\r\n"
	    "Host: policy.local\r\n\r\n");
	ok(r.status == 405 && well_formed(&r), "wrong method is 405");
	resp_free(&r);
	r = http_a("GET http://policy.local/v1/proposals HTTP/1.1\r\n"
	    "Host: policy.local\r\n\r\n");
	ok(r.status == 405, "GET on /v1/proposals is 405");
	resp_free(&r);

	/* policy.local answers at once: nothing is resolved or dialled. */
	t0 = moat_now_ms();
	r = http_at("127.0.0.2", E.port, "GET http://policy.local/v1/denials "
	    "HTTP/1.1\r\nHost: policy.local\r\n\r\n");
	ok(r.status == 200 && moat_now_ms() - t0 < 1000,
	    "b (no policy) is answered without a decision");
	resp_free(&r);
}

/* ---- the proxy process, with this test as moatd ---- */

/* POST a proposal, read it on the channel, answer it; the HTTP reply. */
static struct resp
ctl_roundtrip(bool ok_, int id, const char *error, json_t **line_out)
{
	char *req = post(PROPOSAL), line[8192], *msg;
	struct resp r = { 0 };
	json_t *o = NULL;
	int fd = dial("127.0.0.3", E.ctl_port);

	if (fd < 0 || send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		r.raw = strdup("");
		goto out;
	}
	if (ctl_line(line, sizeof(line), "\"type\":\"proposal\"") &&
	    (o = json_loads(line, 0, NULL)) != NULL) {
		json_t *a = json_pack("{s:s,s:s,s:O,s:b,s:i,s:s}", "type",
		    "proposal_result", "sandbox", "dev", "req",
		    json_object_get(o, "req"), "ok", ok_, "id", id, "error",
		    error);
		if (a != NULL && (msg = json_dumps(a, JSON_COMPACT)) != NULL) {
			ctl_send(msg);
			ctl_send("\n");
			free(msg);
		}
		json_decref(a);
	}
	r.raw = read_all(fd);
	parse_resp(&r);
out:
	if (fd >= 0)
		close(fd);
	free(req);
	*line_out = o;
	return r;
}

static void
test_ctl(void)
{
	char line[8192], msg[512];
	struct resp r;
	json_t *o;

	if (PX.ctl_child <= 0) {
		skip("proxy process did not start");
		return;
	}
	ok(ctl_line(line, sizeof(line), "\"type\":\"ready\""),
	    "proxy process says ready");
	snprintf(msg, sizeof(msg), "{\"type\":\"sandbox\",\"name\":\"dev\","
	    "\"listen\":\"127.0.0.3\",\"port\":%d,\"netns_fd\":-1}\n",
	    E.ctl_port);
	ctl_send(msg);
	ok(ctl_line(line, sizeof(line), "\"type\":\"sandbox_ok\""),
	    "sandbox dev added");

	r = ctl_roundtrip(true, 7, "", &o);
	ok(o != NULL && strcmp(json_string_value(json_object_get(o,
	    "sandbox")) ?: "", "dev") == 0 && strcmp(json_string_value(
	    json_object_get(o, "body")) ?: "", PROPOSAL) == 0 &&
	    json_integer_value(json_object_get(o, "req")) > 0,
	    "the proposal line names the sandbox, a req id and the body");
	ok(r.status == 202 && strstr(r.raw, "\"accepted_chunk_ids\":[\"7\"]"),
	    "moatd's ok answer becomes 202 with its id");
	json_decref(o);
	resp_free(&r);

	r = ctl_roundtrip(false, 0, "invalid_proposal: L7 allow paths must "
	    "not include query strings", &o);
	ok(r.status == 400 && strcmp(jerr(&r), "invalid_proposal") == 0 &&
	    strstr(r.raw, "must not include query strings"),
	    "moatd's refusal becomes 400 invalid_proposal");
	json_decref(o);
	resp_free(&r);

	/* A stale or unknown result is ignored; the proxy stays up. */
	ctl_send("{\"type\":\"proposal_result\",\"sandbox\":\"dev\","
	    "\"req\":999999,\"ok\":true,\"id\":1}\n");
	r = http_at("127.0.0.3", E.ctl_port, "GET http://policy.local/v1/"
	    "denials HTTP/1.1\r\nHost: policy.local\r\n\r\n");
	ok(r.status == 200, "an unknown proposal_result is ignored");
	resp_free(&r);
}

int
main(void)
{
	struct moat_proxy_config cfg = { 0 }, cfg0 = { 0 };
	struct moat_proxy_config pc = { .proposal_timeout_ms = 3000 };
	struct setup s = { -1 };

	signal(SIGPIPE, SIG_IGN);
	/* Fork the proxy process before this process has threads. */
	E.ctl_port = 20000 + (int)(getpid() % 20000) + 7;
	ctl_start(&pc);
	cfg.propose = fake_propose;
	cfg.proposal_timeout_ms = 500;
	if (moat_loop_new(&E.l, NULL) != 0 || moat_proxy_new(E.l, &cfg, &E.p,
	    NULL) != 0 || moat_proxy_new(E.l, &cfg0, &E.p0, NULL) != 0 ||
	    loop_start(E.l) != 0)
		return 1;
	for (int i = 0; i < 20 && s.rc != 0; i++) {
		E.port = 30000 + (int)((getpid() * 7 + i * 131) % 20000);
		E.port0 = E.port + 1;
		in_loop(setup_fn, &s);
	}
	if (!ok(s.rc == 0, "sandboxes a (127.0.0.1:%d), b (127.0.0.2) and c "
	    "(no callback)", E.port))
		goto out;

	test_policy_current();
	test_denials();
	test_proposals();
	test_routes();
	test_ctl();
out:
	loop_stop();
	moat_proxy_free(E.p);
	moat_proxy_free(E.p0);
	moat_loop_free(E.l);
	if (PX.ctl_child > 0) {
		/* EOF on its channel stops it; bounded, then killed. */
		close(PX.ctl_fd);
		for (int i = 0; i < 30 && waitpid(PX.ctl_child, NULL, WNOHANG) ==
		    0; i++)
			usleep(100 * 1000);
		kill(PX.ctl_child, SIGKILL);
		waitpid(PX.ctl_child, NULL, 0);
	}
	return done_testing();
}
