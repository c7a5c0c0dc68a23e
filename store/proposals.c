#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/util.h"
#include "store/store-int.h"

#define PROPOSAL_COLS                                                      \
	"id, sandbox, key, name, rule_json, rule_hash, binary, host, port,"  \
	" hits, confidence, notes, origin, reason, status, first_ms,"        \
	" last_ms, decided_by, decided_ms, decision_note"

static int
insert_new(struct moat_store *s, const struct moat_store_proposal *p,
    int64_t hits, int64_t first, int64_t last, int64_t *id,
    struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_stmt(s, ST_PROPOSAL_INSERT, &st, cause)) != 0)
		return r;
	store_bind_text(st, 1, p->sandbox);
	store_bind_text(st, 2, p->key);
	store_bind_text(st, 3, p->name);
	store_bind_text(st, 4, p->rule_json);
	store_bind_text(st, 5, p->rule_hash);
	store_bind_text(st, 6, p->binary);
	store_bind_text(st, 7, p->host);
	sqlite3_bind_int(st, 8, p->port);
	sqlite3_bind_int64(st, 9, hits);
	sqlite3_bind_double(st, 10, p->confidence);
	store_bind_text(st, 11, p->notes);
	store_bind_text(st, 12, p->origin);
	store_bind_text(st, 13, p->reason);
	sqlite3_bind_int64(st, 14, first);
	sqlite3_bind_int64(st, 15, last);
	if ((r = store_step_done(s, st, "add proposal", cause)) != 0) {
		if (r == MOAT_ERR_EXISTS) /* a CHECK failed: bad origin */
			r = MOAT_ERR_INVALID;
		return r;
	}
	*id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

static int
bump(struct moat_store *s, const struct moat_store_proposal *p, int64_t id,
    bool pending, int64_t hits, int64_t last, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_stmt(s, pending ? ST_PROPOSAL_BUMP_PENDING :
	    ST_PROPOSAL_BUMP, &st, cause)) != 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, hits);
	sqlite3_bind_int64(st, 3, last);
	if (pending) {
		store_bind_text(st, 4, p->name);
		store_bind_text(st, 5, p->rule_json);
		store_bind_text(st, 6, p->rule_hash);
		sqlite3_bind_double(st, 7, p->confidence);
		store_bind_text(st, 8, p->notes);
		store_bind_text(st, 9, p->reason);
	}
	return store_step_done(s, st, "update proposal", cause);
}

int
moat_store_proposal_pending_count(struct moat_store *s, const char *sandbox,
    int64_t *count, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_stmt(s, ST_PROPOSAL_PENDING_COUNT, &st, cause)) != 0)
		return r;
	store_bind_text(st, 1, sandbox);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		r = store_err(s, rc, "count proposals", cause);
	else
		*count = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return r;
}

int
moat_store_proposal_upsert(struct moat_store *s,
    const struct moat_store_proposal *p, int64_t *id, bool *created,
    struct moat_cause *cause)
{
	return moat_store_proposal_upsert_capped(s, p, 0, id, created, cause);
}

int
moat_store_proposal_upsert_capped(struct moat_store *s,
    const struct moat_store_proposal *p, int64_t max_pending, int64_t *id,
    bool *created, struct moat_cause *cause)
{
	sqlite3_stmt *find = NULL;
	int64_t now = moat_wall_ms(), rid = 0, hits, npending = 0;
	int64_t first = p->first_ms != 0 ? p->first_ms : now;
	int64_t last = p->last_ms != 0 ? p->last_ms : first;
	bool isnew = false, pending;
	int r, rc;

	if ((r = store_writable(s, "add proposal", cause)) != 0)
		return r;
	if (p->key == NULL || *p->key == '\0' || p->sandbox == NULL ||
	    p->rule_json == NULL || p->origin == NULL) {
		moat_cause_set(cause, "add proposal: need sandbox, key, "
		    "rule_json and origin");
		return MOAT_ERR_INVALID;
	}
	hits = p->hits > 0 ? p->hits : 1;
	if ((r = store_stmt(s, ST_PROPOSAL_FIND, &find, cause)) != 0)
		return r;
	if ((r = store_begin(s, cause)) != 0)
		return r;
	store_bind_text(find, 1, p->key);
	rc = sqlite3_step(find);
	if (rc == SQLITE_ROW) {
		rid = sqlite3_column_int64(find, 0);
		pending = strcmp(store_col_text(find, 1),
		    MOAT_STORE_PENDING) == 0;
		sqlite3_reset(find);
		r = bump(s, p, rid, pending, hits, last, cause);
	} else if (rc == SQLITE_DONE) {
		sqlite3_reset(find);
		isnew = true;
		if (max_pending > 0 && (r = moat_store_proposal_pending_count(s,
		    p->sandbox, &npending, cause)) == 0 && npending >= max_pending) {
			moat_cause_set(cause, "sandbox %s has %lld pending "
			    "proposals (the cap is %lld)", p->sandbox,
			    (long long)npending, (long long)max_pending);
			r = MOAT_ERR_DENIED;
		}
		if (r == 0)
			r = insert_new(s, p, hits, first, last, &rid, cause);
	} else {
		r = store_err(s, rc, "find proposal", cause);
		sqlite3_reset(find);
	}
	if (r != 0 || (r = store_commit(s, cause)) != 0) {
		store_rollback(s);
		return r;
	}
	if (id != NULL)
		*id = rid;
	if (created != NULL)
		*created = isnew;
	return 0;
}

void
moat_store_proposal_free(struct moat_store_proposal *p)
{
	if (p == NULL)
		return;
	free(p->sandbox);
	free(p->key);
	free(p->name);
	free(p->rule_json);
	free(p->rule_hash);
	free(p->binary);
	free(p->host);
	free(p->notes);
	free(p->origin);
	free(p->reason);
	free(p->status);
	free(p->decided_by);
	free(p->decision_note);
	free(p);
}

/*
 * Fill p from a row: with copy, heap strings (false on ENOMEM, p then
 * partly filled and freed by the caller); without, views into st.
 */
static bool
row_fill(sqlite3_stmt *st, struct moat_store_proposal *p, bool copy)
{
	char **strs[] = { NULL, &p->sandbox, &p->key, &p->name, &p->rule_json,
		&p->rule_hash, &p->binary, &p->host, NULL, NULL, NULL,
		&p->notes, &p->origin, &p->reason, &p->status, NULL, NULL,
		&p->decided_by, NULL, &p->decision_note };

	p->id = sqlite3_column_int64(st, 0);
	p->port = sqlite3_column_int(st, 8);
	p->hits = sqlite3_column_int64(st, 9);
	p->confidence = sqlite3_column_double(st, 10);
	p->first_ms = sqlite3_column_int64(st, 15);
	p->last_ms = sqlite3_column_int64(st, 16);
	p->decided_ms = sqlite3_column_int64(st, 18);
	for (size_t i = 0; i < MOAT_NELEM(strs); i++) {
		if (strs[i] == NULL)
			continue;
		if (!copy)
			*strs[i] = (char *)store_col_text(st, (int)i);
		else if ((*strs[i] = store_col_dup(st, (int)i)) == NULL)
			return false;
	}
	return true;
}

int
moat_store_proposal_get(struct moat_store *s, int64_t id,
    struct moat_store_proposal **out, struct moat_cause *cause)
{
	struct moat_store_proposal *p = NULL;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_prepare(s, "SELECT " PROPOSAL_COLS " FROM proposals"
	    " WHERE id = ?1", &st, cause)) != 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		moat_cause_set(cause, "no proposal %lld", (long long)id);
		r = MOAT_ERR_NOTFOUND;
	} else if (rc != SQLITE_ROW) {
		r = store_err(s, rc, "get proposal", cause);
	} else if ((p = calloc(1, sizeof(*p))) == NULL ||
	    !row_fill(st, p, true)) {
		r = MOAT_ERR_NOMEM;
	} else {
		*out = p;
		p = NULL;
		r = 0;
	}
	moat_store_proposal_free(p);
	sqlite3_finalize(st);
	return r;
}

int
moat_store_proposal_list(struct moat_store *s, const char *sandbox,
    const char *status,
    int (*cb)(const struct moat_store_proposal *p, void *arg), void *arg,
    struct moat_cause *cause)
{
	struct moat_store_proposal p;
	struct store_sql q = { .len = 0 };
	sqlite3_stmt *st = NULL;
	int r, rc;

	store_sql_add(&q, "SELECT " PROPOSAL_COLS " FROM proposals WHERE 1");
	if (sandbox != NULL)
		store_sql_add(&q, " AND sandbox = ?1");
	if (status != NULL)
		store_sql_add(&q, " AND status = ?2");
	store_sql_add(&q, " ORDER BY last_ms DESC, id DESC");
	if ((r = store_prepare(s, q.buf, &st, cause)) != 0)
		return r;
	if (sandbox != NULL)
		store_bind_text(st, 1, sandbox);
	if (status != NULL)
		store_bind_text(st, 2, status);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row_fill(st, &p, false);
		if ((r = cb(&p, arg)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : store_err(s, rc, "list proposals", cause);
out:
	sqlite3_finalize(st);
	return r;
}

/* After an update that matched nothing: no such row, or decided. */
static int
why_not_pending(struct moat_store *s, int64_t id, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_prepare(s, "SELECT status, decided_by FROM proposals"
	    " WHERE id = ?1", &st, cause)) != 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		moat_cause_set(cause, "proposal %lld is already %s%s%s",
		    (long long)id, store_col_text(st, 0),
		    *store_col_text(st, 1) != '\0' ? " by " : "",
		    store_col_text(st, 1));
		r = MOAT_ERR_INVALID;
	} else if (rc == SQLITE_DONE) {
		moat_cause_set(cause, "no proposal %lld", (long long)id);
		r = MOAT_ERR_NOTFOUND;
	} else {
		r = store_err(s, rc, "decide proposal", cause);
	}
	sqlite3_finalize(st);
	return r;
}

int
moat_store_proposal_set_status(struct moat_store *s, int64_t id,
    const char *status, const char *who, const char *note,
    struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_writable(s, "decide proposal", cause)) != 0)
		return r;
	if (status == NULL || (strcmp(status, MOAT_STORE_APPROVED) != 0 &&
	    strcmp(status, MOAT_STORE_REJECTED) != 0)) {
		moat_cause_set(cause, "proposal %lld: status must be approved "
		    "or rejected", (long long)id);
		return MOAT_ERR_INVALID;
	}
	/*
	 * One statement decides and reports the previous status, so two
	 * operators approving at once cannot both win.
	 */
	if ((r = store_prepare(s, "UPDATE proposals SET status = ?2,"
	    " decided_by = ?3, decided_ms = ?4, decision_note = ?5"
	    " WHERE id = ?1 AND status = 'pending' RETURNING id", &st,
	    cause)) != 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	store_bind_text(st, 2, status);
	store_bind_text(st, 3, who);
	sqlite3_bind_int64(st, 4, moat_wall_ms());
	store_bind_text(st, 5, note);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		/* Run to the end so the implicit transaction commits. */
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
		r = rc == SQLITE_DONE ? 0 :
		    store_err(s, rc, "decide proposal", cause);
		sqlite3_finalize(st);
		return r;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_err(s, rc, "decide proposal", cause);
	return why_not_pending(s, id, cause);
}
