/*
 * The aggregator: the store's single writer for denials. Events from the
 * proxy and the bypass monitor are queued in memory and written every
 * window in ONE transaction (a transaction per event would cap us at a
 * few thousand per second on a WAL fsync). After a batch is durable it
 * is exported, grouped by (sandbox, binary, host, port) and fed to the
 * proposals engine.
 *
 * Nothing acknowledged is dropped: a full queue is flushed at once, and a
 * failed flush keeps its events for the next try. Only if the store stays
 * down long enough to fill MAX_QUEUED do we drop, loudly.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/store.h"
#include "moatd/moatd.h"
#include "moatd/proposals.h"

/* A queued event is ~3.3 KB: 16384 of them is ~54 MB at most. */
#define FLUSH_AT 16384
#define MAX_QUEUED (4 * FLUSH_AT)
#define DEFAULT_WINDOW_MS 200

struct moatd_aggregator {
	struct moatd *d;
	int window_ms;
	struct moat_denial_event *q;
	size_t n;
	size_t cap;
	struct moat_timer *timer;
	struct moatd_proposals *props;
	bool in_flush;         /* no re-entry from a callback */
	int64_t next_try_ms;   /* after a failed flush, wait a window */
	int64_t dropped;
	struct moat_ratelimit rl;
};

int
moatd_aggregator_new(struct moatd *d, int window_ms,
    struct moatd_aggregator **out, struct moat_cause *cause)
{
	struct moatd_aggregator *a = NULL;

	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    moatd_proposals_new(d, &a->props) != 0) {
		free(a);
		moat_cause_set(cause, "aggregator: out of memory");
		return MOAT_ERR_NOMEM;
	}
	a->d = d;
	a->window_ms = window_ms > 0 ? window_ms : DEFAULT_WINDOW_MS;
	a->rl.burst = 2;
	*out = a;
	return MOAT_OK;
}

void
moatd_aggregator_free(struct moatd_aggregator *a)
{
	if (a == NULL)
		return;
	moat_loop_timer_cancel(moatd_loop(a->d), a->timer);
	a->timer = NULL;
	if (a->n > 0 && moatd_aggregator_flush(a) != 0)
		log_error("%zu denial events could not be stored at exit",
		    a->n);
	moatd_proposals_free(a->props);
	free(a->q);
	free(a);
}

static void
flush_timer(struct moat_loop *l, void *arg)
{
	struct moatd_aggregator *a = arg;

	a->timer = NULL; /* the loop frees a fired timer */
	moatd_aggregator_flush(a);
}

static void
arm(struct moatd_aggregator *a)
{
	if (a->timer == NULL && a->n > 0)
		a->timer = moat_loop_timer(moatd_loop(a->d), a->window_ms,
		    flush_timer, a);
}

static bool
grow(struct moatd_aggregator *a)
{
	struct moat_denial_event *nq;
	size_t ncap = a->cap ? a->cap * 2 : 256;

	if (ncap > MAX_QUEUED)
		ncap = MAX_QUEUED;
	if (ncap <= a->cap)
		return false;
	if ((nq = realloc(a->q, ncap * sizeof(*nq))) == NULL)
		return false;
	a->q = nq;
	a->cap = ncap;
	return true;
}

void
moatd_aggregator_add(struct moatd_aggregator *a,
    const struct moat_denial_event *ev)
{
	if (a->n >= FLUSH_AT && !a->in_flush &&
	    (a->n == a->cap || moat_now_ms() >= a->next_try_ms))
		moatd_aggregator_flush(a);
	if (a->n == a->cap && !grow(a)) {
		a->dropped++;
		if (moat_ratelimit_ok(&a->rl))
			log_error("denial queue full (%zu events, store "
			    "unavailable): %lld dropped so far", a->n,
			    (long long)a->dropped);
		return;
	}
	a->q[a->n++] = *ev;
	arm(a);
}

/* ---- grouping ---- */

struct grouper {
	struct moatd_denial_group *g;
	size_t ng;
	size_t *slots; /* index + 1 into g, 0 = empty */
	size_t mask;
};

static bool
binary_changed(const struct moat_denial_event *ev)
{
	return strncmp(ev->reason, "binary changed", 14) == 0;
}

static uint64_t
fnv(uint64_t h, const char *s)
{
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return (h ^ 0xff) * 1099511628211ULL;
}

static uint64_t
group_hash(const struct moat_denial_event *ev)
{
	uint64_t h = 1469598103934665603ULL;

	h = fnv(h, ev->sandbox);
	h = fnv(h, ev->binary);
	h = fnv(h, ev->host);
	h = (h ^ (uint64_t)ev->port) * 1099511628211ULL;
	if (binary_changed(ev))
		h = fnv(h, ev->sha256);
	return h;
}

static bool
same_group(const struct moat_denial_event *a, const struct moat_denial_event *b)
{
	bool bca = binary_changed(a), bcb = binary_changed(b);

	return a->port == b->port && bca == bcb &&
	    strcmp(a->host, b->host) == 0 &&
	    strcmp(a->binary, b->binary) == 0 &&
	    strcmp(a->sandbox, b->sandbox) == 0 &&
	    (!bca || strcmp(a->sha256, b->sha256) == 0);
}

static int
group_events(const struct moat_denial_event *v, size_t n, struct grouper *gr)
{
	size_t size = 16, i, s;

	while (size < 2 * n)
		size *= 2;
	gr->g = calloc(n, sizeof(*gr->g));
	gr->slots = calloc(size, sizeof(*gr->slots));
	if (gr->g == NULL || gr->slots == NULL)
		return MOAT_ERR_NOMEM;
	gr->mask = size - 1;
	gr->ng = 0;
	for (i = 0; i < n; i++) {
		struct moatd_denial_group *g;

		for (s = group_hash(&v[i]) & gr->mask; gr->slots[s] != 0;
		    s = (s + 1) & gr->mask)
			if (same_group(gr->g[gr->slots[s] - 1].ev, &v[i]))
				break;
		if (gr->slots[s] == 0) {
			gr->slots[s] = ++gr->ng;
			g = &gr->g[gr->ng - 1];
			g->ev = &v[i];
			g->first_ms = g->last_ms = v[i].ts_ms;
		}
		g = &gr->g[gr->slots[s] - 1];
		g->count++;
		if (v[i].ts_ms < g->first_ms)
			g->first_ms = v[i].ts_ms;
		if (v[i].ts_ms >= g->last_ms) {
			g->last_ms = v[i].ts_ms;
			g->ev = &v[i];
		}
	}
	return MOAT_OK;
}

int
moatd_aggregator_flush(struct moatd_aggregator *a)
{
	struct moat_cause cause = { { 0 } };
	struct grouper gr = { 0 };
	struct moatd_export *x;
	int r;

	if (a->n == 0 || a->in_flush)
		return MOAT_OK;
	a->in_flush = true;
	if ((r = moat_store_denials_add(moatd_store(a->d), a->q, a->n,
	    &cause)) != 0) {
		if (moat_ratelimit_ok(&a->rl))
			log_warn_r(r, "storing %zu denials failed, will retry: "
			    "%s", a->n, cause.msg);
		a->next_try_ms = moat_now_ms() + a->window_ms;
		goto out;
	}
	x = moatd_exporter(a->d);
	for (size_t i = 0; x != NULL && i < a->n; i++)
		moatd_export_denial(x, &a->q[i]);
	if (group_events(a->q, a->n, &gr) == 0)
		moatd_proposals_feed(a->props, gr.g, gr.ng);
	else
		log_error("out of memory grouping %zu denials", a->n);
	a->n = 0;
	/* Give back a big burst's memory; keep a small queue warm. */
	if (a->cap > FLUSH_AT) {
		free(a->q);
		a->q = NULL;
		a->cap = 0;
	}
	r = MOAT_OK;
out:
	free(gr.g);
	free(gr.slots);
	a->in_flush = false;
	arm(a);
	return r;
}
