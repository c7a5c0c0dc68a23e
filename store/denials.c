#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/util.h"
#include "store/store-int.h"

/* Rows per prune transaction: a few ms of lock, then the writer runs. */
#define PRUNE_CHUNK 2000

int64_t
store_floor_minute(int64_t ms)
{
	return ms >= 0 ? ms / STORE_MINUTE_MS :
	    -((-ms + STORE_MINUTE_MS - 1) / STORE_MINUTE_MS);
}

/* Bind a fixed event field without reading past its array. */
#define BIND_FIELD(st, i, ev, f) \
	sqlite3_bind_text((st), (i), (ev)->f, \
	    (int)strnlen((ev)->f, sizeof((ev)->f)), SQLITE_STATIC)

static size_t
pack_ancestors(const struct moat_denial_event *ev, char *buf, size_t cap)
{
	size_t len = 0, l;
	int n = ev->nancestors;

	if (n < 0)
		n = 0;
	if (n > MOAT_EV_MAX_ANCESTORS)
		n = MOAT_EV_MAX_ANCESTORS;
	for (int i = 0; i < n; i++) {
		l = strnlen(ev->ancestors[i], sizeof(ev->ancestors[i]) - 1);
		if (len + l + 1 > cap)
			break;
		memcpy(buf + len, ev->ancestors[i], l);
		buf[len + l] = '\0';
		len += l + 1;
	}
	return len;
}

static void
unpack_ancestors(const char *p, size_t len, struct moat_denial_event *ev)
{
	size_t off = 0, l;

	ev->nancestors = 0;
	while (off < len && ev->nancestors < MOAT_EV_MAX_ANCESTORS) {
		l = strnlen(p + off, len - off);
		if (l > sizeof(ev->ancestors[0]) - 1)
			l = sizeof(ev->ancestors[0]) - 1;
		memcpy(ev->ancestors[ev->nancestors], p + off, l);
		ev->ancestors[ev->nancestors][l] = '\0';
		ev->nancestors++;
		off += strnlen(p + off, len - off) + 1;
	}
}

static int
insert_one(struct moat_store *s, sqlite3_stmt *ins, sqlite3_stmt *up,
    const struct moat_denial_event *ev, struct moat_cause *cause)
{
	char anc[MOAT_EV_MAX_ANCESTORS * 256];
	size_t alen = pack_ancestors(ev, anc, sizeof(anc));
	int r;

	sqlite3_reset(ins);
	sqlite3_bind_int64(ins, 1, ev->ts_ms);
	BIND_FIELD(ins, 2, ev, sandbox);
	BIND_FIELD(ins, 3, ev, stage);
	BIND_FIELD(ins, 4, ev, binary);
	BIND_FIELD(ins, 5, ev, sha256);
	sqlite3_bind_blob(ins, 6, anc, (int)alen, SQLITE_STATIC);
	sqlite3_bind_int(ins, 7, ev->pid);
	sqlite3_bind_int(ins, 8, ev->uid);
	BIND_FIELD(ins, 9, ev, host);
	BIND_FIELD(ins, 10, ev, ip);
	sqlite3_bind_int(ins, 11, ev->port);
	BIND_FIELD(ins, 12, ev, protocol);
	BIND_FIELD(ins, 13, ev, reason);
	sqlite3_bind_int(ins, 14, ev->policy_version);
	sqlite3_bind_int64(ins, 15, ev->cut);
	sqlite3_bind_int64(ins, 16, ev->escaped);
	BIND_FIELD(ins, 17, ev, method);
	BIND_FIELD(ins, 18, ev, path);
	if ((r = store_step_done(s, ins, "insert denial", cause)) != 0)
		return r;

	sqlite3_reset(up);
	sqlite3_bind_int64(up, 1, store_floor_minute(ev->ts_ms));
	BIND_FIELD(up, 2, ev, sandbox);
	BIND_FIELD(up, 3, ev, binary);
	BIND_FIELD(up, 4, ev, host);
	sqlite3_bind_int(up, 5, ev->port);
	sqlite3_bind_int(up, 6, 1);
	sqlite3_bind_int64(up, 7, ev->ts_ms);
	sqlite3_bind_int64(up, 8, ev->ts_ms);
	return store_step_done(s, up, "count denial", cause);
}

int
moat_store_denials_add(struct moat_store *s,
    const struct moat_denial_event *v, size_t n, struct moat_cause *cause)
{
	sqlite3_stmt *ins = NULL, *up = NULL;
	int r;

	if ((r = store_writable(s, "add denials", cause)) != 0)
		return r;
	if (n == 0)
		return 0;
	if ((r = store_stmt(s, ST_DENIAL_INSERT, &ins, cause)) != 0 ||
	    (r = store_stmt(s, ST_MINUTE_UPSERT, &up, cause)) != 0)
		return r;
	if ((r = store_begin(s, cause)) != 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if ((r = insert_one(s, ins, up, &v[i], cause)) != 0)
			goto fail;
	if ((r = store_commit(s, cause)) != 0)
		goto fail;
	return 0;
fail:
	store_rollback(s);
	return r;
}

void
store_where_keys(struct store_sql *q, const struct moat_store_denial_filter *f,
    bool with_stage)
{
	if (f->sandbox != NULL)
		store_sql_add(q, " AND sandbox = ?%d", P_SANDBOX);
	if (f->binary != NULL)
		store_sql_add(q, " AND binary = ?%d", P_BINARY);
	if (f->host != NULL)
		store_sql_add(q, " AND host = ?%d", P_HOST);
	if (f->port != 0)
		store_sql_add(q, " AND port = ?%d", P_PORT);
	if (with_stage && f->stage != NULL)
		store_sql_add(q, " AND stage = ?%d", P_STAGE);
}

void
store_where_time(struct store_sql *q, const struct moat_store_denial_filter *f)
{
	if (f->since_ms != 0)
		store_sql_add(q, " AND ts_ms >= ?%d", P_SINCE);
	if (f->until_ms != 0)
		store_sql_add(q, " AND ts_ms < ?%d", P_UNTIL);
}

static void
store_bind_filter(sqlite3_stmt *st, const struct moat_store_denial_filter *f)
{
	if (f->sandbox != NULL)
		store_bind_text(st, P_SANDBOX, f->sandbox);
	if (f->binary != NULL)
		store_bind_text(st, P_BINARY, f->binary);
	if (f->host != NULL)
		store_bind_text(st, P_HOST, f->host);
	if (f->stage != NULL)
		store_bind_text(st, P_STAGE, f->stage);
	if (f->port != 0)
		sqlite3_bind_int(st, P_PORT, f->port);
	if (f->since_ms != 0)
		sqlite3_bind_int64(st, P_SINCE, f->since_ms);
	if (f->until_ms != 0)
		sqlite3_bind_int64(st, P_UNTIL, f->until_ms);
	if (f->limit != 0)
		sqlite3_bind_int64(st, P_LIMIT, (int64_t)f->limit);
}

int
store_prepare_filtered(struct moat_store *s, struct store_sql *q,
    const struct moat_store_denial_filter *f, sqlite3_stmt **out,
    struct moat_cause *cause)
{
	int r;

	if (f->limit != 0)
		store_sql_add(q, " LIMIT ?%d", P_LIMIT);
	if (q->overflow) {
		moat_cause_set(cause, "denial query too long");
		return MOAT_ERR_INTERNAL;
	}
	if ((r = store_prepare(s, q->buf, out, cause)) != 0)
		return r;
	store_bind_filter(*out, f);
	return 0;
}

static void
row_to_event(sqlite3_stmt *st, struct moat_denial_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->ts_ms = sqlite3_column_int64(st, 1);
	moat_strlcpy(ev->sandbox, store_col_text(st, 2), sizeof(ev->sandbox));
	moat_strlcpy(ev->stage, store_col_text(st, 3), sizeof(ev->stage));
	moat_strlcpy(ev->binary, store_col_text(st, 4), sizeof(ev->binary));
	moat_strlcpy(ev->sha256, store_col_text(st, 5), sizeof(ev->sha256));
	unpack_ancestors(sqlite3_column_blob(st, 6),
	    (size_t)sqlite3_column_bytes(st, 6), ev);
	ev->pid = sqlite3_column_int(st, 7);
	ev->uid = sqlite3_column_int(st, 8);
	moat_strlcpy(ev->host, store_col_text(st, 9), sizeof(ev->host));
	moat_strlcpy(ev->ip, store_col_text(st, 10), sizeof(ev->ip));
	ev->port = sqlite3_column_int(st, 11);
	moat_strlcpy(ev->protocol, store_col_text(st, 12),
	    sizeof(ev->protocol));
	moat_strlcpy(ev->reason, store_col_text(st, 13), sizeof(ev->reason));
	ev->policy_version = sqlite3_column_int(st, 14);
	ev->cut = (uint32_t)sqlite3_column_int64(st, 15);
	ev->escaped = (uint32_t)sqlite3_column_int64(st, 16);
	moat_strlcpy(ev->method, store_col_text(st, 17), sizeof(ev->method));
	moat_strlcpy(ev->path, store_col_text(st, 18), sizeof(ev->path));
}

int
moat_store_denials_query(struct moat_store *s,
    const struct moat_store_denial_filter *f,
    int (*cb)(const struct moat_denial_event *ev, int64_t id, void *arg),
    void *arg, struct moat_cause *cause)
{
	static const struct moat_store_denial_filter none;
	struct moat_denial_event *ev = NULL;
	struct store_sql q = { .len = 0 };
	sqlite3_stmt *st = NULL;
	int r, rc;

	if (f == NULL)
		f = &none;
	store_sql_add(&q, "SELECT id, ts_ms, sandbox, stage, binary, sha256,"
	    " ancestors, pid, uid, host, ip, port, protocol, reason,"
	    " policy_version, text_cut, text_escaped, method, path"
	    " FROM denials WHERE 1");
	store_where_keys(&q, f, true);
	store_where_time(&q, f);
	store_sql_add(&q, " ORDER BY ts_ms DESC, id DESC");
	if ((r = store_prepare_filtered(s, &q, f, &st, cause)) != 0)
		return r;
	/* One event is 4.5 KB: keep it off the stack of deep callers. */
	if ((ev = malloc(sizeof(*ev))) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row_to_event(st, ev);
		if ((r = cb(ev, sqlite3_column_int64(st, 0), arg)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		r = store_err(s, rc, "query denials", cause);
		goto out;
	}
	r = 0;
out:
	free(ev);
	sqlite3_finalize(st);
	return r;
}

int
moat_store_denials_count(struct moat_store *s,
    const struct moat_store_denial_filter *f, int64_t *count,
    struct moat_cause *cause)
{
	static const struct moat_store_denial_filter none;
	struct moat_store_denial_filter nolimit;
	struct store_sql q = { .len = 0 };
	sqlite3_stmt *st = NULL;
	int r, rc;

	nolimit = f != NULL ? *f : none;
	nolimit.limit = 0;
	store_sql_add(&q, "SELECT count(*) FROM denials WHERE 1");
	store_where_keys(&q, &nolimit, true);
	store_where_time(&q, &nolimit);
	if ((r = store_prepare_filtered(s, &q, &nolimit, &st, cause)) != 0)
		return r;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = store_err(s, rc, "count denials", cause);
	} else {
		*count = sqlite3_column_int64(st, 0);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

/*
 * One prune transaction: up to chunk raw rows, then the rollup minutes
 * that no longer hold any raw row (older than the oldest one left and
 * than the cut), so a minute's count never outlives its rows.
 */
static int
prune_chunk(struct moat_store *s, sqlite3_stmt *del, sqlite3_stmt *oldest,
    sqlite3_stmt *delmin, int64_t cut, size_t chunk, size_t *n,
    struct moat_cause *cause)
{
	int64_t lim = cut / STORE_MINUTE_MS;
	int r, rc;

	if ((r = store_begin(s, cause)) != 0)
		return r;
	sqlite3_bind_int64(del, 1, cut);
	sqlite3_bind_int64(del, 2, (int64_t)chunk);
	if ((r = store_step_done(s, del, "prune denials", cause)) != 0)
		goto fail;
	*n = (size_t)sqlite3_changes(s->db);
	if ((rc = sqlite3_step(oldest)) != SQLITE_ROW) {
		r = store_err(s, rc, "prune denials", cause);
		goto fail;
	}
	if (sqlite3_column_type(oldest, 0) != SQLITE_NULL &&
	    store_floor_minute(sqlite3_column_int64(oldest, 0)) < lim)
		lim = store_floor_minute(sqlite3_column_int64(oldest, 0));
	sqlite3_reset(oldest);
	sqlite3_bind_int64(delmin, 1, lim);
	if ((r = store_step_done(s, delmin, "prune denial counts",
	    cause)) != 0)
		goto fail;
	if ((r = store_commit(s, cause)) != 0)
		goto fail;
	return 0;
fail:
	sqlite3_reset(oldest);
	store_rollback(s);
	return r;
}

int
moat_store_denials_prune(struct moat_store *s, int64_t before_ms,
    size_t max_rows, size_t *deleted, struct moat_cause *cause)
{
	sqlite3_stmt *del = NULL, *oldest = NULL, *delmin = NULL, *delsup = NULL;
	int64_t cut = store_floor_minute(before_ms) * STORE_MINUTE_MS;
	size_t total = 0, n = 0, chunk;
	int r;

	if ((r = store_writable(s, "prune denials", cause)) != 0)
		return r;
	if ((r = store_prepare(s, "DELETE FROM denials WHERE id IN"
	    " (SELECT id FROM denials WHERE ts_ms < ?1 ORDER BY ts_ms"
	    " LIMIT ?2)", &del, cause)) != 0 ||
	    (r = store_prepare(s, "SELECT min(ts_ms) FROM denials",
	    &oldest, cause)) != 0 ||
	    (r = store_prepare(s, "DELETE FROM denial_minutes"
	    " WHERE minute < ?1", &delmin, cause)) != 0)
		goto out;
	while (total < max_rows) {
		chunk = max_rows - total;
		if (chunk > PRUNE_CHUNK)
			chunk = PRUNE_CHUNK;
		if ((r = prune_chunk(s, del, oldest, delmin, cut, chunk, &n,
		    cause)) != 0)
			goto out;
		total += n;
		if (n < chunk)
			break;
	}
	/* One row per sandbox, kind and minute: a plain delete is small. */
	if ((r = store_prepare(s, "DELETE FROM suppressed WHERE minute_ms < ?1",
	    &delsup, cause)) != 0)
		goto out;
	sqlite3_bind_int64(delsup, 1, cut);
	if ((r = store_step_done(s, delsup, "prune suppressed", cause)) != 0)
		goto out;
	if (deleted != NULL)
		*deleted = total;
	r = 0;
out:
	sqlite3_finalize(delsup);
	sqlite3_finalize(del);
	sqlite3_finalize(oldest);
	sqlite3_finalize(delmin);
	return r;
}
