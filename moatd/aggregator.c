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
 *
 * Floods are bounded per sandbox: past limits.denials_per_minute events
 * in a minute a sandbox's denials are counted, not queued, and the count
 * is stored as one "suppressed" row per minute (the proposals engine and
 * the agent queue report theirs here too), so a loop over a million
 * names costs the store a row a minute.
 */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/store.h"
#include "moatd/config.h"
#include "moatd/moatd.h"
#include "moatd/proposals.h"

/* A queued event is ~3.3 KB: 16384 of them is ~54 MB at most. */
#define FLUSH_AT 16384
#define MAX_QUEUED (4 * FLUSH_AT)
#define DEFAULT_WINDOW_MS 200
#define MAX_FLOODS 4096 /* sandboxes tracked by the denial cap */
#define MAX_HELD 4096   /* suppressed counts waiting for a flush */
#define MINUTE_MS 60000

/* What the denial cap let through for one sandbox this minute. */
struct flood {
	char sandbox[sizeof(((struct moat_denial_event *)0)->sandbox)];
	int64_t minute; /* ms / MINUTE_MS of the window */
	int64_t stored; /* events queued in it */
};

/* A suppressed count not written yet: one per sandbox, kind, minute. */
struct held {
	char sandbox[sizeof(((struct moat_denial_event *)0)->sandbox)];
	const char *kind; /* a MOAT_STORE_SUPPRESSED_* constant */
	int64_t minute;
	int64_t count;
	int64_t first_ms;
	int64_t last_ms;
};

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
	int64_t per_minute;    /* limits.denials_per_minute; 0: none */
	struct flood *fl;
	size_t nfl;
	struct held *held;
	size_t nheld;
};

int
moatd_aggregator_new(struct moatd *d, int window_ms,
    struct moatd_aggregator **out, struct moat_cause *cause)
{
	struct moatd_aggregator *a = NULL;

	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->fl = calloc(MAX_FLOODS, sizeof(*a->fl))) == NULL ||
	    (a->held = calloc(MAX_HELD, sizeof(*a->held))) == NULL ||
	    moatd_proposals_new(d, a, &a->props) != 0) {
		if (a != NULL) {
			free(a->fl);
			free(a->held);
		}
		free(a);
		moat_cause_set(cause, "aggregator: out of memory");
		return MOAT_ERR_NOMEM;
	}
	a->d = d;
	a->per_minute = moatd_config(d)->limits.denials_per_minute;
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
	if ((a->n > 0 || a->nheld > 0) && moatd_aggregator_flush(a) != 0)
		log_error("%zu denial events could not be stored at exit",
		    a->n);
	moatd_proposals_free(a->props);
	free(a->q);
	free(a->fl);
	free(a->held);
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
	if (a->timer == NULL && (a->n > 0 || a->nheld > 0))
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

static int64_t
minute_of(int64_t ms)
{
	return ms >= 0 ? ms / MINUTE_MS : -((-ms + MINUTE_MS - 1) / MINUTE_MS);
}

void
moatd_aggregator_suppressed(struct moatd_aggregator *a, const char *sandbox,
    const char *kind, int64_t ts_ms, int64_t count)
{
	int64_t minute = minute_of(ts_ms);
	struct held *h = NULL;

	if (a == NULL || count <= 0)
		return;
	for (size_t i = 0; i < a->nheld && h == NULL; i++)
		if (a->held[i].minute == minute &&
		    strcmp(a->held[i].kind, kind) == 0 &&
		    strcmp(a->held[i].sandbox, sandbox) == 0)
			h = &a->held[i];
	if (h == NULL) {
		if (a->nheld == MAX_HELD) {
			/* Only a store down for minutes with thousands of
			 * sandboxes gets here. */
			if (moat_ratelimit_ok(&a->rl))
				log_error("suppressed counts not stored: %zu "
				    "waiting", a->nheld);
			return;
		}
		h = &a->held[a->nheld++];
		memset(h, 0, sizeof(*h));
		moat_strlcpy(h->sandbox, sandbox, sizeof(h->sandbox));
		h->kind = kind;
		h->minute = minute;
		h->first_ms = ts_ms;
		h->last_ms = ts_ms;
	}
	h->count += count;
	if (ts_ms < h->first_ms)
		h->first_ms = ts_ms;
	if (ts_ms > h->last_ms)
		h->last_ms = ts_ms;
	arm(a);
}

/* Over its cap this minute: count the event instead of queueing it. */
static bool
over_cap(struct moatd_aggregator *a, const struct moat_denial_event *ev)
{
	int64_t minute = minute_of(ev->ts_ms);
	struct flood *f = NULL;

	if (a->per_minute <= 0)
		return false;
	for (size_t i = 0; i < a->nfl && f == NULL; i++)
		if (strcmp(a->fl[i].sandbox, ev->sandbox) == 0)
			f = &a->fl[i];
	if (f == NULL) {
		/* The proxy only names configured sandboxes. */
		if (a->nfl == MAX_FLOODS)
			return false;
		f = &a->fl[a->nfl++];
		moat_strlcpy(f->sandbox, ev->sandbox, sizeof(f->sandbox));
		f->minute = minute;
	}
	/* A late event of an earlier minute counts in the current one. */
	if (minute > f->minute) {
		f->minute = minute;
		f->stored = 0;
	}
	if (f->stored >= a->per_minute) {
		moatd_aggregator_suppressed(a, ev->sandbox,
		    MOAT_STORE_SUPPRESSED_DENIALS, ev->ts_ms, 1);
		return true;
	}
	f->stored++;
	return false;
}

void
moatd_aggregator_add(struct moatd_aggregator *a,
    const struct moat_denial_event *ev)
{
	if (over_cap(a, ev))
		return;
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
	h = fnv(h, ev->method);
	h = fnv(h, ev->path);
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
	    strcmp(a->method, b->method) == 0 &&
	    strcmp(a->path, b->path) == 0 &&
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

/* Write the suppressed counts held so far; kept for a retry on failure. */
static void
flush_held(struct moatd_aggregator *a)
{
	struct moat_store_suppressed v[64];
	struct moat_cause cause = { { 0 } };
	size_t done = 0, n;
	int r;

	while (done < a->nheld) {
		n = a->nheld - done < MOAT_NELEM(v) ? a->nheld - done :
		    MOAT_NELEM(v);
		for (size_t i = 0; i < n; i++) {
			const struct held *h = &a->held[done + i];

			v[i].sandbox = h->sandbox;
			v[i].kind = h->kind;
			v[i].minute_ms = h->minute * MINUTE_MS;
			v[i].count = h->count;
			v[i].first_ms = h->first_ms;
			v[i].last_ms = h->last_ms;
		}
		if ((r = moat_store_suppressed_add(moatd_store(a->d), v, n,
		    &cause)) != 0) {
			if (moat_ratelimit_ok(&a->rl))
				log_warn_r(r, "storing suppressed counts failed,"
				    " will retry: %s", cause.msg);
			break;
		}
		for (size_t i = 0; i < n; i++)
			moatd_export_suppressed(moatd_exporter(a->d),
			    v[i].sandbox, v[i].kind, v[i].count, v[i].first_ms,
			    v[i].last_ms);
		done += n;
	}
	memmove(a->held, a->held + done, (a->nheld - done) * sizeof(*a->held));
	a->nheld -= done;
}

int
moatd_aggregator_flush(struct moatd_aggregator *a)
{
	struct moat_cause cause = { { 0 } };
	struct grouper gr = { 0 };
	struct moatd_export *x;
	int r;

	if ((a->n == 0 && a->nheld == 0) || a->in_flush)
		return MOAT_OK;
	a->in_flush = true;
	if (a->n == 0) {
		r = MOAT_OK;
		goto out;
	}
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
	/* After the proposals engine, which reports what it suppressed. */
	flush_held(a);
	free(gr.g);
	free(gr.slots);
	a->in_flush = false;
	arm(a);
	return r;
}
