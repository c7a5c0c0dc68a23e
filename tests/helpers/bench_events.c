/*
 * bench_events [N] [DB]: push N denial events (default 500000) through
 * moatd's aggregator into a temporary store, in bursts as the proxy would
 * send them, and report the sustained rate and whether every row is
 * there. Issue 7's goal: 50,000 events/s with nothing lost. Exit 0 when
 * nothing was lost, 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/store.h"
#include "moatd/moatd.h"

#define BURST 1000

static const char *hosts[] = { "a.example.test", "b.example.test",
	"c.example.test", "d.example.test", "e.example.test" };
static const char *bins[] = { "/usr/bin/curl", "/usr/bin/wget",
	"/usr/bin/python3", "/usr/local/bin/tool" };

struct bench {
	struct moatd_aggregator *a;
	struct moat_denial_event ev;
	long n;
	long sent;
};

static void
burst(struct moat_loop *l, void *arg)
{
	struct bench *b = arg;

	for (int i = 0; i < BURST && b->sent < b->n; i++, b->sent++) {
		b->ev.ts_ms = moat_wall_ms();
		b->ev.port = 443 + (int)(b->sent % 7);
		moat_strlcpy(b->ev.host, hosts[b->sent % 5],
		    sizeof(b->ev.host));
		moat_strlcpy(b->ev.binary, bins[b->sent % 4],
		    sizeof(b->ev.binary));
		moatd_aggregator_add(b->a, &b->ev);
	}
	if (b->sent < b->n)
		moat_loop_timer(l, 0, burst, b);
	else
		moat_loop_stop(l);
}

int
main(int argc, char **argv)
{
	char dir[] = "/tmp/moat-bench-XXXXXX", path[256], cmd[300];
	struct moat_store_denial_filter f = { .sandbox = "bench" };
	struct moat_cause c = { { 0 } };
	struct moat_loop *l = NULL;
	struct moat_store *s = NULL;
	struct moatd *d = NULL;
	struct bench b = { 0 };
	int64_t t0, t1, count = 0;
	int rc = 1;

	moat_log_init("bench_events", MOAT_LOG_WARN);
	b.n = argc > 1 ? atol(argv[1]) : 500000;
	if (argc > 2)
		snprintf(path, sizeof(path), "%s", argv[2]);
	else if (mkdtemp(dir) == NULL)
		return 111;
	else
		snprintf(path, sizeof(path), "%s/bench.db", dir);
	if (moat_loop_new(&l, &c) != 0 ||
	    moat_store_open(path, MOAT_STORE_CREATE, &s, &c) != 0 ||
	    moatd_new_for_test(l, s, &d) != 0 ||
	    moatd_add_sandbox_for_test(d, "bench", "{\"version\":1}", &c) != 0 ||
	    moatd_aggregator_new(d, 200, &b.a, &c) != 0) {
		fprintf(stderr, "bench_events: setup: %s\n", c.msg);
		return 111;
	}
	moat_strlcpy(b.ev.sandbox, "bench", sizeof(b.ev.sandbox));
	moat_strlcpy(b.ev.stage, "connect", sizeof(b.ev.stage));
	moat_strlcpy(b.ev.ip, "203.0.113.7", sizeof(b.ev.ip));
	moat_strlcpy(b.ev.protocol, "tcp", sizeof(b.ev.protocol));
	moat_strlcpy(b.ev.reason, "no policy has this endpoint",
	    sizeof(b.ev.reason));
	t0 = moat_now_us();
	moat_loop_timer(l, 0, burst, &b);
	moat_loop_run(l);
	moatd_aggregator_free(b.a); /* the final flush */
	t1 = moat_now_us();
	moat_store_denials_count(s, &f, &count, NULL);
	printf("events %ld stored %lld lost %lld in %.3f s: %.0f events/s"
	    " (goal 50000)\n", b.n, (long long)count,
	    (long long)(b.n - count), (double)(t1 - t0) / 1e6,
	    (double)b.n * 1e6 / (double)(t1 - t0 > 0 ? t1 - t0 : 1));
	rc = count == b.n ? 0 : 1;
	moatd_free_for_test(d);
	moat_store_close(s);
	moat_loop_free(l);
	if (argc <= 2) {
		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_events: could not remove %s\n",
			    dir);
	}
	return rc;
}
