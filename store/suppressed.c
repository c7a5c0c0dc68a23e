/*
 * Counts of what moatd's flood caps kept out of the store: one row per
 * (sandbox, kind, minute), so a flood of any size costs a row a minute.
 */
#include <string.h>

#include <sqlite3.h>

#include "common/util.h"
#include "store/store-int.h"

static const char *const kinds[] = { MOAT_STORE_SUPPRESSED_DENIALS,
	MOAT_STORE_SUPPRESSED_PROPOSALS, MOAT_STORE_SUPPRESSED_AGENT };

static bool
known_kind(const char *k)
{
	for (size_t i = 0; i < MOAT_NELEM(kinds); i++)
		if (k != NULL && strcmp(k, kinds[i]) == 0)
			return true;
	return false;
}

int
moat_store_suppressed_add(struct moat_store *s,
    const struct moat_store_suppressed *v, size_t n, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_writable(s, "count suppressed", cause)) != 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (v[i].sandbox == NULL || !known_kind(v[i].kind) ||
		    v[i].count <= 0) {
			moat_cause_set(cause, "count suppressed: need a "
			    "sandbox, a kind of denials, proposals or "
			    "agent_proposals, and a count");
			return MOAT_ERR_INVALID;
		}
	if (n == 0)
		return 0;
	if ((r = store_stmt(s, ST_SUPPRESSED_UPSERT, &st, cause)) != 0 ||
	    (r = store_begin(s, cause)) != 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		sqlite3_reset(st);
		store_bind_text(st, 1, v[i].sandbox);
		store_bind_text(st, 2, v[i].kind);
		sqlite3_bind_int64(st, 3, store_floor_minute(v[i].minute_ms) *
		    STORE_MINUTE_MS);
		sqlite3_bind_int64(st, 4, v[i].count);
		sqlite3_bind_int64(st, 5, v[i].first_ms);
		sqlite3_bind_int64(st, 6, v[i].last_ms);
		if ((r = store_step_done(s, st, "count suppressed", cause)) !=
		    0) {
			store_rollback(s);
			return r;
		}
	}
	if ((r = store_commit(s, cause)) != 0)
		store_rollback(s);
	return r;
}

static int
list(struct moat_store *s, const char *sandbox, const char *kind,
    int64_t since_ms, bool totals,
    int (*cb)(const struct moat_store_suppressed *row, void *arg), void *arg,
    struct moat_cause *cause)
{
	struct moat_store_suppressed row;
	sqlite3_stmt *st = NULL;
	int r, rc;

	/* A minute that ends after since_ms may hold rows after it. */
	r = store_prepare(s, totals ?
	    "SELECT sandbox, kind, min(minute_ms), sum(count), min(first_ms),"
	    " max(last_ms) FROM suppressed"
	    " WHERE (?1 IS NULL OR sandbox = ?1) AND (?2 IS NULL OR kind = ?2)"
	    " AND last_ms >= ?3 GROUP BY sandbox, kind ORDER BY sandbox, kind" :
	    "SELECT sandbox, kind, minute_ms, count,"
	    " first_ms, last_ms FROM suppressed"
	    " WHERE (?1 IS NULL OR sandbox = ?1) AND (?2 IS NULL OR kind = ?2)"
	    " AND last_ms >= ?3 ORDER BY minute_ms DESC, sandbox, kind", &st,
	    cause);
	if (r != 0)
		return r;
	if (sandbox != NULL)
		store_bind_text(st, 1, sandbox);
	if (kind != NULL)
		store_bind_text(st, 2, kind);
	sqlite3_bind_int64(st, 3, since_ms);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row.sandbox = store_col_text(st, 0);
		row.kind = store_col_text(st, 1);
		row.minute_ms = sqlite3_column_int64(st, 2);
		row.count = sqlite3_column_int64(st, 3);
		row.first_ms = sqlite3_column_int64(st, 4);
		row.last_ms = sqlite3_column_int64(st, 5);
		if ((r = cb(&row, arg)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : store_err(s, rc, "list suppressed", cause);
out:
	sqlite3_finalize(st);
	return r;
}

int
moat_store_suppressed_list(struct moat_store *s, const char *sandbox,
    const char *kind, int64_t since_ms,
    int (*cb)(const struct moat_store_suppressed *row, void *arg), void *arg,
    struct moat_cause *cause)
{
	return list(s, sandbox, kind, since_ms, false, cb, arg, cause);
}

int
moat_store_suppressed_totals(struct moat_store *s, const char *sandbox,
    const char *kind, int64_t since_ms,
    int (*cb)(const struct moat_store_suppressed *row, void *arg), void *arg,
    struct moat_cause *cause)
{
	return list(s, sandbox, kind, since_ms, true, cb, arg, cause);
}
