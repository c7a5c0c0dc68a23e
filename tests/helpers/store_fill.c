/*
 * store_fill PATH: write a small known fixture for tests/e2e/store_cli.t
 * (denials in three sandboxes, two of them two days old; three sessions).
 * store_fill PATH --writer SECONDS: then keep adding batches of 100
 * denials for that long, so readers can be run against a live writer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event.h"
#include "common/util.h"
#include "store/store.h"

static void
ev(struct moat_denial_event *e, int64_t ts, const char *sb, const char *bin,
    const char *host, int port, const char *reason)
{
	memset(e, 0, sizeof(*e));
	e->ts_ms = ts;
	moat_strlcpy(e->sandbox, sb, sizeof(e->sandbox));
	moat_strlcpy(e->stage, "connect", sizeof(e->stage));
	moat_strlcpy(e->binary, bin, sizeof(e->binary));
	moat_strlcpy(e->host, host, sizeof(e->host));
	moat_strlcpy(e->protocol, "tcp", sizeof(e->protocol));
	moat_strlcpy(e->reason, reason, sizeof(e->reason));
	moat_strlcpy(e->ancestors[0], "/bin/bash", 256);
	e->nancestors = 1;
	e->port = port;
	e->pid = 7;
}

static int
fixture(struct moat_store *s, struct moat_cause *c)
{
	struct moat_denial_event v[8];
	int64_t now = moat_wall_ms(), id = 0;
	int r;

	ev(&v[0], now - 60000, "box", "/usr/bin/curl", "evil.test", 443,
	    "no policy has evil.test:443");
	ev(&v[1], now - 50000, "box", "/usr/bin/curl", "evil.test", 443,
	    "no policy has evil.test:443");
	ev(&v[2], now - 40000, "box", "/usr/bin/curl", "evil.test", 443,
	    "no policy has evil.test:443");
	ev(&v[3], now - 30000, "box", "/usr/bin/python3", "pypi.test", 443,
	    "endpoint pypi.test:443 is in policy pypi, but /usr/bin/python3 "
	    "is not one of its binaries; a long reason that the table cuts");
	ev(&v[4], now - 20000, "other", "/usr/bin/git", "git.test", 22,
	    "no policy has git.test:22");
	moat_strlcpy(v[4].stage, "bypass", sizeof(v[4].stage));
	ev(&v[5], now - 10000, "box", "", "10.9.9.9", 53, "bypass");
	ev(&v[6], now - 2 * 86400000LL, "old", "/usr/bin/wget", "old.test",
	    80, "no policy has old.test:80");
	ev(&v[7], now - 2 * 86400000LL + 1, "old", "/usr/bin/wget",
	    "old.test", 80, "no policy has old.test:80");
	if ((r = moat_store_denials_add(s, v, 8, c)) != 0)
		return r;
	if ((r = moat_store_session_start(s, "box", "SHA256:abc", "127.0.0.1:40000",
	    "shell", now - 3600000, &id, c)) != 0 ||
	    (r = moat_store_session_end(s, id, now - 3000000, 0, NULL, c)) != 0 ||
	    (r = moat_store_session_start(s, "box", "SHA256:abc",
	    "127.0.0.1:40001", "exec", now - 600000, &id, c)) != 0 ||
	    (r = moat_store_session_end(s, id, now - 590000, -1, "TERM",
	    c)) != 0 ||
	    (r = moat_store_session_start(s, "other", "relay:gw",
	    "127.0.0.1:40002", "pty-shell", now - 5000, &id, c)) != 0)
		return r;
	return 0;
}

int
main(int argc, char **argv)
{
	struct moat_denial_event v[100];
	struct moat_cause c = { { 0 } };
	struct moat_store *s = NULL;
	int64_t until;
	int r;

	if (argc != 2 && !(argc == 4 && strcmp(argv[2], "--writer") == 0)) {
		fprintf(stderr, "usage: store_fill PATH [--writer SECONDS]\n");
		return 100;
	}
	if ((r = moat_store_open(argv[1], MOAT_STORE_CREATE, &s, &c)) != 0 ||
	    (r = fixture(s, &c)) != 0) {
		fprintf(stderr, "store_fill: %s\n", moat_cause_str(&c, r));
		moat_store_close(s);
		return 111;
	}
	if (argc == 4) {
		until = moat_now_ms() + atoi(argv[3]) * 1000LL;
		while (moat_now_ms() < until) {
			for (int i = 0; i < 100; i++)
				ev(&v[i], moat_wall_ms(), "live", "/bin/w",
				    "live.test", 80, "load");
			if ((r = moat_store_denials_add(s, v, 100, &c)) != 0) {
				fprintf(stderr, "store_fill: %s\n", c.msg);
				break;
			}
			usleep(2000);
		}
	}
	moat_store_close(s);
	return r == 0 ? 0 : 111;
}
