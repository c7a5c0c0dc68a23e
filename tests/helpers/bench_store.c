/*
 * bench_store [ROWS] [BATCH] [DIR]: fill a temporary store with ROWS
 * denials (default 1,000,000) in batches of BATCH (default 1000), report
 * inserts per second, then time `moat denials --top --since 1h` (the
 * median of 9 runs) and a plain GROUP BY scan of the same window for
 * comparison. Two layouts: rows spread over 24 hours, and all of them
 * in the last hour. DIR defaults to /var/tmp (a real disk: fsync counts).
 * MOAT_BENCH_KEEP=1 keeps the databases for inspection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/event.h"
#include "common/util.h"
#include "store/store.h"

#define RUNS 9

static const char *const bins[] = { "/usr/bin/curl", "/usr/bin/git",
	"/usr/bin/python3.11", "/usr/local/bin/node", "/usr/bin/pip",
	"/usr/bin/wget", "/usr/bin/ssh", "/usr/bin/apt" };

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int
count_cb(const struct moat_store_denial_group *g, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

/* Skewed like real denials: a few (binary, host, port) dominate. */
static void
fill_event(struct moat_denial_event *ev, int64_t ts, unsigned *seed)
{
	unsigned r = (unsigned)rand_r(seed);
	unsigned hot = r % 100 < 80;

	memset(ev, 0, sizeof(*ev));
	ev->ts_ms = ts;
	snprintf(ev->sandbox, sizeof(ev->sandbox), "box%u", (r >> 8) % 4);
	moat_strlcpy(ev->stage, "connect", sizeof(ev->stage));
	moat_strlcpy(ev->binary, bins[(r >> 12) % (hot ? 3 : 8)],
	    sizeof(ev->binary));
	snprintf(ev->host, sizeof(ev->host), "host%u.example.com",
	    (r >> 16) % (hot ? 20 : 500));
	moat_strlcpy(ev->ancestors[0], "/usr/bin/bash", 256);
	ev->nancestors = 1;
	moat_strlcpy(ev->ip, "10.200.0.9", sizeof(ev->ip));
	ev->port = (r >> 28) % 4 == 0 ? 80 : 443;
	ev->pid = (int)(r % 30000);
	ev->uid = 1000;
	moat_strlcpy(ev->protocol, "tcp", sizeof(ev->protocol));
	moat_strlcpy(ev->reason, "no policy has this endpoint",
	    sizeof(ev->reason));
}

static int
run(const char *dir, const char *label, size_t rows, size_t batch,
    int64_t span_ms)
{
	struct moat_store_denial_filter f = { 0 };
	struct moat_denial_event *v = NULL;
	struct moat_cause c = { { 0 } };
	struct moat_store *s = NULL;
	int64_t now = moat_wall_ms(), t0, t[RUNS], scan[RUNS], n = 0;
	char path[512], p2[600];
	unsigned seed = 42;
	int groups = 0, r = 1;

	snprintf(path, sizeof(path), "%s/moat-bench-store-%d-%s.db", dir,
	    (int)getpid(), label);
	if ((v = calloc(batch, sizeof(*v))) == NULL ||
	    moat_store_open(path, MOAT_STORE_CREATE, &s, &c) != 0) {
		fprintf(stderr, "bench_store: %s\n", c.msg);
		goto out;
	}
	t0 = moat_now_us();
	for (size_t done = 0; done < rows; done += batch) {
		size_t k = rows - done < batch ? rows - done : batch;

		for (size_t i = 0; i < k; i++)
			fill_event(&v[i], now - span_ms + (int64_t)
			    ((done + i) * (uint64_t)span_ms / rows), &seed);
		if (moat_store_denials_add(s, v, k, &c) != 0) {
			fprintf(stderr, "bench_store: insert: %s\n", c.msg);
			goto out;
		}
	}
	t0 = moat_now_us() - t0;
	printf("store %s: inserted %zu denials in batches of %zu: "
	    "%.0f events/s (%.2f s, synchronous=FULL)\n", label, rows, batch,
	    rows / (t0 / 1e6), t0 / 1e6);

	f.since_ms = moat_wall_ms() - 3600 * 1000;
	moat_store_denials_count(s, &f, &n, &c);
	for (int i = 0; i < RUNS; i++) {
		groups = 0;
		t0 = moat_now_us();
		moat_store_denials_top(s, &f, count_cb, &groups, &c);
		t[i] = moat_now_us() - t0;
		/* A stage filter forces the plain GROUP BY over raw rows. */
		f.stage = "connect";
		t0 = moat_now_us();
		moat_store_denials_top(s, &f, count_cb, &(int){ 0 }, &c);
		scan[i] = moat_now_us() - t0;
		f.stage = NULL;
	}
	qsort(t, RUNS, sizeof(t[0]), cmp_i64);
	qsort(scan, RUNS, sizeof(scan[0]), cmp_i64);
	printf("store %s: top --since 1h over %lld rows in window "
	    "(%d groups): median %.1f ms (rollup), %.1f ms (plain GROUP BY)"
	    "\n", label, (long long)n, groups, t[RUNS / 2] / 1000.0,
	    scan[RUNS / 2] / 1000.0);
	r = 0;
out:
	moat_store_close(s);
	free(v);
	if (getenv("MOAT_BENCH_KEEP") != NULL) {
		printf("store %s: kept %s\n", label, path);
		return r;
	}
	unlink(path);
	snprintf(p2, sizeof(p2), "%s-wal", path);
	unlink(p2);
	snprintf(p2, sizeof(p2), "%s-shm", path);
	unlink(p2);
	return r;
}

int
main(int argc, char **argv)
{
	size_t rows = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
	size_t batch = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
	const char *dir = argc > 3 ? argv[3] : "/var/tmp";

	if (rows == 0 || batch == 0) {
		fprintf(stderr, "usage: bench_store [ROWS] [BATCH] [DIR]\n");
		return 100;
	}
	if (run(dir, "24h-spread", rows, batch, 24 * 3600 * 1000LL) != 0 ||
	    run(dir, "last-hour", rows, batch, 3600 * 1000LL - 60000) != 0)
		return 1;
	return 0;
}
