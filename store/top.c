#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store-int.h"

/*
 * `moat denials --top`. The rows come from the per-minute rollups
 * (denial_minutes) for whole minutes and from raw denials for the
 * partial minute at since_ms, and are summed here in a hash table:
 * SQLite's GROUP BY over text sorts every input row, which for a
 * million denials in the last hour with a long tail of hosts (220,000
 * rollup rows) cost 160 ms; the hash costs a fraction of that.
 */

struct group {
	char *binary;
	char *host;
	int port;
	uint64_t hash;
	int64_t count;
	int64_t first_ms;
	int64_t last_ms;
};

struct groups {
	struct group *v;   /* dense array of groups */
	size_t n;
	size_t cap;
	uint32_t *slot;    /* index + 1 into v; 0 is empty */
	size_t nslot;      /* power of two */
};

static uint64_t
hash_key(const char *b, const char *h, int port)
{
	uint64_t x = 1469598103934665603ULL; /* FNV-1a */

	for (; *b != '\0'; b++)
		x = (x ^ (unsigned char)*b) * 1099511628211ULL;
	x = (x ^ 0xff) * 1099511628211ULL;
	for (; *h != '\0'; h++)
		x = (x ^ (unsigned char)*h) * 1099511628211ULL;
	return (x ^ (uint64_t)(unsigned)port) * 1099511628211ULL;
}

static int
rehash(struct groups *g)
{
	size_t ns = g->nslot != 0 ? g->nslot * 2 : 1024, j;
	uint32_t *slot = calloc(ns, sizeof(*slot));

	if (slot == NULL)
		return MOAT_ERR_NOMEM;
	for (size_t i = 0; i < g->n; i++) {
		for (j = g->v[i].hash & (ns - 1); slot[j] != 0;
		    j = (j + 1) & (ns - 1))
			;
		slot[j] = (uint32_t)(i + 1);
	}
	free(g->slot);
	g->slot = slot;
	g->nslot = ns;
	return 0;
}

static int
add_new(struct groups *g, const char *b, const char *h, int port,
    uint64_t x, size_t j, struct group **out)
{
	struct group *nv, *e;

	if (g->n == g->cap) {
		g->cap = g->cap != 0 ? g->cap * 2 : 256;
		if ((nv = realloc(g->v, g->cap * sizeof(*nv))) == NULL)
			return MOAT_ERR_NOMEM;
		g->v = nv;
	}
	e = &g->v[g->n];
	memset(e, 0, sizeof(*e));
	if ((e->binary = strdup(b)) == NULL ||
	    (e->host = strdup(h)) == NULL) {
		free(e->binary);
		return MOAT_ERR_NOMEM;
	}
	e->port = port;
	e->hash = x;
	g->slot[j] = (uint32_t)++g->n;
	*out = e;
	return 0;
}

static int
groups_add(struct groups *g, const char *b, const char *h, int port,
    int64_t count, int64_t first, int64_t last)
{
	uint64_t x = hash_key(b, h, port);
	struct group *e = NULL;
	size_t j;
	int r;

	/* Keep the load under 1/2 so probes stay short. */
	if ((g->n + 1) * 2 > g->nslot && (r = rehash(g)) != 0)
		return r;
	for (j = x & (g->nslot - 1); g->slot[j] != 0;
	    j = (j + 1) & (g->nslot - 1)) {
		e = &g->v[g->slot[j] - 1];
		if (e->hash == x && e->port == port &&
		    strcmp(e->binary, b) == 0 && strcmp(e->host, h) == 0)
			break;
		e = NULL;
	}
	if (e == NULL) {
		if ((r = add_new(g, b, h, port, x, j, &e)) != 0)
			return r;
		e->first_ms = first;
		e->last_ms = last;
	}
	e->count += count;
	if (first < e->first_ms)
		e->first_ms = first;
	if (last > e->last_ms)
		e->last_ms = last;
	return 0;
}

static void
groups_free(struct groups *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->v[i].binary);
		free(g->v[i].host);
	}
	free(g->v);
	free(g->slot);
}

/* Count descending, then last seen descending, then the key. */
static int
cmp_group(const void *a, const void *b)
{
	const struct group *x = a, *y = b;
	int c;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	if (x->last_ms != y->last_ms)
		return x->last_ms > y->last_ms ? -1 : 1;
	if ((c = strcmp(x->binary, y->binary)) != 0)
		return c;
	if ((c = strcmp(x->host, y->host)) != 0)
		return c;
	return x->port < y->port ? -1 : x->port > y->port;
}

static void
build_sql(struct store_sql *q, const struct moat_store_denial_filter *f,
    bool rollup)
{
	if (!rollup) {
		store_sql_add(q, "SELECT binary, host, port, count(*),"
		    " min(ts_ms), max(ts_ms) FROM denials WHERE 1");
		store_where_keys(q, f, true);
		store_where_time(q, f);
		store_sql_add(q, " GROUP BY binary, host, port");
		return;
	}
	store_sql_add(q, "SELECT binary, host, port, count, first_ms,"
	    " last_ms FROM denial_minutes WHERE 1");
	if (f->since_ms != 0)
		store_sql_add(q, " AND minute >= ?%d", P_MINUTE);
	store_where_keys(q, f, false);
	if (f->since_ms != 0) {
		/* The partial minute at since_ms, from raw rows. */
		store_sql_add(q, " UNION ALL SELECT binary, host, port, 1,"
		    " ts_ms, ts_ms FROM denials WHERE ts_ms >= ?%d AND"
		    " ts_ms < ?%d", P_SINCE, P_EDGE);
		store_where_keys(q, f, false);
	}
}

static int
collect(struct moat_store *s, const struct moat_store_denial_filter *f,
    struct groups *g, struct moat_cause *cause)
{
	struct moat_store_denial_filter nolimit = *f;
	struct store_sql q = { .len = 0 };
	sqlite3_stmt *st = NULL;
	bool rollup = f->stage == NULL && f->until_ms == 0;
	int64_t m0;
	int r, rc;

	/* The limit applies to groups, after summing. */
	nolimit.limit = 0;
	build_sql(&q, &nolimit, rollup);
	if ((r = store_prepare_filtered(s, &q, &nolimit, &st, cause)) != 0)
		return r;
	if (rollup && f->since_ms != 0) {
		m0 = store_floor_minute(f->since_ms);
		if (m0 * STORE_MINUTE_MS < f->since_ms)
			m0++;
		sqlite3_bind_int64(st, P_MINUTE, m0);
		sqlite3_bind_int64(st, P_EDGE, m0 * STORE_MINUTE_MS);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = groups_add(g, store_col_text(st, 0),
		    store_col_text(st, 1), sqlite3_column_int(st, 2),
		    sqlite3_column_int64(st, 3), sqlite3_column_int64(st, 4),
		    sqlite3_column_int64(st, 5))) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : store_err(s, rc, "top denials", cause);
out:
	sqlite3_finalize(st);
	return r;
}

int
moat_store_denials_top(struct moat_store *s,
    const struct moat_store_denial_filter *f,
    int (*cb)(const struct moat_store_denial_group *g, void *arg), void *arg,
    struct moat_cause *cause)
{
	static const struct moat_store_denial_filter none;
	struct moat_store_denial_group out;
	struct groups g = { .n = 0 };
	size_t n;
	int r;

	if (f == NULL)
		f = &none;
	if ((r = collect(s, f, &g, cause)) != 0)
		goto out;
	qsort(g.v, g.n, sizeof(*g.v), cmp_group);
	n = f->limit != 0 && f->limit < g.n ? f->limit : g.n;
	for (size_t i = 0; i < n; i++) {
		out.binary = g.v[i].binary;
		out.host = g.v[i].host;
		out.port = g.v[i].port;
		out.count = g.v[i].count;
		out.first_ms = g.v[i].first_ms;
		out.last_ms = g.v[i].last_ms;
		if ((r = cb(&out, arg)) != 0)
			goto out;
	}
	r = 0;
out:
	groups_free(&g);
	return r;
}
