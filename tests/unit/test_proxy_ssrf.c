/*
 * The SSRF golden table (tests/fixtures/ssrf-verdicts.tsv) through the
 * real proxy, CONNECT and forward: the same verdict and the same text as
 * `moat policy explain` and the decision function give for every row
 * (fixture in tests/unit/proxy_fixture.h; @UP is its upstream).
 */
#include "tests/unit/proxy_fixture.h"
#include "tests/unit/ssrf_golden.h"

/* The stage of the newest event, "" when none came since *seen. */
static void
newest_stage(int *seen, char *out, size_t len)
{
	pthread_mutex_lock(&E.mu);
	moat_strlcpy(out, E.nev > *seen ? E.ev[E.nev - 1].stage : "", len);
	*seen = E.nev;
	pthread_mutex_unlock(&E.mu);
}

/* One answer (a CONNECT's or a forward's) against the row. */
static void
check(const struct golden_row *r, const char *how, const char *got,
    int *seen)
{
	char want[512], stage[32];

	newest_stage(seen, stage, sizeof(stage));
	if (strcmp(r->verdict, "allow") == 0) {
		if (!ok(has(got, "HTTP/1.1 200 OK") &&
		    has(got, "GET /golden HTTP/1.1"), "%s allowed: %s", how,
		    r->name))
			diag("  got: %.400s", got);
		return;
	}
	snprintf(want, sizeof(want), "\"error\":\"%s\"", r->verdict);
	if (!ok(strncmp(got, "HTTP/1.1 403 ", 13) == 0 && has(got, want),
	    "%s %s: %s", how, r->verdict, r->name))
		diag("  got: %.400s", got);
	snprintf(want, sizeof(want), "\"reason\":\"%s\"", r->reason);
	if (!ok(has(got, want), "%s text: %s", how, r->name))
		diag("  want %s\n#   got: %.600s", want, got);
	is_str(stage, strcmp(r->verdict, "ssrf_denied") == 0 ? "ssrf" :
	    strcmp(how, "CONNECT") == 0 ? "connect" : "forward",
	    "%s event stage: %s", how, r->name);
}

/* CONNECT, then (when it is 200) one request through the tunnel. */
static char *
via_connect(const char *hp)
{
	char head[4096], req[256], *rest, *all;
	int fd = dial(E.port);

	if (fd < 0)
		return strdup("");
	if (tunnel(fd, hp, head, sizeof(head))) {
		snprintf(req, sizeof(req), "GET /golden HTTP/1.1\r\nHost: %s"
		    "\r\n\r\n", hp);
		if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
			diag("send through the tunnel: %s", strerror(errno));
	}
	rest = read_all(fd, NULL);
	close(fd);
	if (asprintf(&all, "%s%s", head, rest) < 0)
		all = strdup("");
	free(rest);
	return all;
}

static void
test_golden(void)
{
	static struct golden_row rows[GOLDEN_MAX];
	size_t n = golden_load(rows, GOLDEN_MAX, E.up_ip);
	char json[1024], hp[128], req[512], *got;
	int seen = nevents();

	for (size_t i = 0; i < n; i++) {
		const struct golden_row *r = &rows[i];
		bool v6 = strchr(r->host, ':') != NULL;

		golden_policy(r, E.self, json, sizeof(json));
		if (!ok(set_policy(json) == 0, "golden policy installed: %s",
		    r->name))
			continue;
		snprintf(hp, sizeof(hp), "%s%s%s:%u", v6 ? "[" : "", r->host,
		    v6 ? "]" : "", r->port);
		got = via_connect(hp);
		check(r, "CONNECT", got, &seen);
		free(got);
		snprintf(req, sizeof(req), "GET http://%s/golden HTTP/1.1\r\n"
		    "Host: %s\r\n\r\n", hp, hp);
		got = xfers(req);
		check(r, "forward", got, &seen);
		free(got);
	}
	ok(set_policy(base_policy(NULL, false)) == 0, "base policy back");
}

int
main(void)
{
	if (!fixture_start())
		return done_testing();
	test_golden();
	fixture_stop();
	return done_testing();
}
