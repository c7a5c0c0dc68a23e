/*
 * What the store tests share: a temporary directory for databases, a
 * denial event, and the brute-force check of `denials --top` groups.
 */
#ifndef MOAT_TESTS_STORE_UTIL_H
#define MOAT_TESTS_STORE_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/event.h"
#include "common/util.h"
#include "store/store.h"

static char dir[64]; /* the test's temporary directory */

static __attribute__((unused)) void
db_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static __attribute__((unused)) void
rm_db(const char *path)
{
	char p[256];

	unlink(path);
	snprintf(p, sizeof(p), "%s-wal", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", path);
	unlink(p);
}

static __attribute__((unused)) void
mkev(struct moat_denial_event *ev, int64_t ts, const char *sb,
    const char *bin, const char *host, int port)
{
	memset(ev, 0, sizeof(*ev));
	ev->ts_ms = ts;
	moat_strlcpy(ev->sandbox, sb, sizeof(ev->sandbox));
	moat_strlcpy(ev->stage, "connect", sizeof(ev->stage));
	moat_strlcpy(ev->binary, bin, sizeof(ev->binary));
	moat_strlcpy(ev->host, host, sizeof(ev->host));
	moat_strlcpy(ev->protocol, "tcp", sizeof(ev->protocol));
	ev->port = port;
}


/* Brute-force groups for a sandbox and a since, to check top against. */
struct bgroup {
	int bin, host, port;
	int64_t count, first, last;
};

#define TOP_N 4000
static const char *const tbins[] = { "/usr/bin/curl", "/usr/bin/git",
	"/usr/bin/python3", "/usr/bin/node", "/usr/bin/pip" };
static const char *const thosts[] = { "a.com", "b.com", "c.org", "d.net",
	"e.io", "f.dev" };

struct topcheck {
	struct bgroup *want;
	int nwant;
	int n;
	int bad;
	int64_t prev_count;
	int64_t sum;
	char first_bad[160];
};

static __attribute__((unused)) int
top_cb(const struct moat_store_denial_group *g, void *arg)
{
	struct topcheck *t = arg;
	bool found = false;

	if (t->n > 0 && g->count > t->prev_count) {
		t->bad++;
		snprintf(t->first_bad, sizeof(t->first_bad), "order at %d", t->n);
	}
	t->prev_count = g->count;
	t->n++;
	t->sum += g->count;
	for (int i = 0; t->want != NULL && i < t->nwant; i++) {
		struct bgroup *w = &t->want[i];

		if (strcmp(tbins[w->bin], g->binary) != 0 ||
		    strcmp(thosts[w->host], g->host) != 0 || w->port != g->port)
			continue;
		found = true;
		if (w->count != g->count || w->first != g->first_ms ||
		    w->last != g->last_ms) {
			if (t->bad++ == 0)
				snprintf(t->first_bad, sizeof(t->first_bad),
				    "%s %s %d: got %lld/%lld/%lld want "
				    "%lld/%lld/%lld", g->binary, g->host,
				    g->port, (long long)g->count,
				    (long long)g->first_ms, (long long)g->last_ms,
				    (long long)w->count, (long long)w->first,
				    (long long)w->last);
		}
	}
	if (t->want != NULL && !found && t->bad++ == 0)
		snprintf(t->first_bad, sizeof(t->first_bad), "unexpected %s %s",
		    g->binary, g->host);
	return 0;
}

#endif
