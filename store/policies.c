#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/util.h"
#include "store/store-int.h"

static const char *const sources[] = { "file", "operator", "proposal",
	"agent" };

static bool
known_source(const char *src)
{
	for (size_t i = 0; i < MOAT_NELEM(sources); i++)
		if (src != NULL && strcmp(src, sources[i]) == 0)
			return true;
	return false;
}

static int
policy_insert(struct moat_store *s, const char *sandbox, const char *json,
    const char *hash, const char *source, const char *who, const char *note,
    const char *state, int *version, struct moat_cause *cause)
{
	sqlite3_stmt *next = NULL, *ins = NULL;
	int r, rc, v;

	if ((r = store_writable(s, "add policy", cause)) != 0)
		return r;
	if (sandbox == NULL || *sandbox == '\0' || json == NULL ||
	    hash == NULL || !known_source(source)) {
		moat_cause_set(cause, "add policy: need sandbox, json, hash "
		    "and a source of file, operator, proposal or agent");
		return MOAT_ERR_INVALID;
	}
	if ((r = store_stmt(s, ST_POLICY_NEXT, &next, cause)) != 0 ||
	    (r = store_stmt(s, ST_POLICY_INSERT, &ins, cause)) != 0)
		return r;
	/* IMMEDIATE: the max() and the insert see the same database. */
	if ((r = store_begin(s, cause)) != 0)
		return r;
	store_bind_text(next, 1, sandbox);
	if ((rc = sqlite3_step(next)) != SQLITE_ROW) {
		r = store_err(s, rc, "add policy", cause);
		goto fail;
	}
	v = sqlite3_column_int(next, 0);
	sqlite3_reset(next);
	store_bind_text(ins, 1, sandbox);
	sqlite3_bind_int(ins, 2, v);
	store_bind_text(ins, 3, json);
	store_bind_text(ins, 4, hash);
	store_bind_text(ins, 5, source);
	store_bind_text(ins, 6, who);
	store_bind_text(ins, 7, note);
	sqlite3_bind_int64(ins, 8, moat_wall_ms());
	store_bind_text(ins, 9, state);
	if ((r = store_step_done(s, ins, "add policy", cause)) != 0 ||
	    (r = store_commit(s, cause)) != 0)
		goto fail;
	if (version != NULL)
		*version = v;
	return 0;
fail:
	sqlite3_reset(next);
	store_rollback(s);
	return r;
}

int
moat_store_policy_add(struct moat_store *s, const char *sandbox,
    const char *json, const char *hash, const char *source, const char *who,
    const char *note, int *version, struct moat_cause *cause)
{
	return policy_insert(s, sandbox, json, hash, source, who, note,
	    MOAT_STORE_POLICY_ACTIVE, version, cause);
}

int
moat_store_policy_add_pending(struct moat_store *s, const char *sandbox,
    const char *json, const char *hash, const char *source, const char *who,
    const char *note, int *version, struct moat_cause *cause)
{
	return policy_insert(s, sandbox, json, hash, source, who, note,
	    MOAT_STORE_POLICY_PENDING, version, cause);
}

int
moat_store_policy_settle(struct moat_store *s, const char *sandbox,
    int version, bool active, const char *why, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_writable(s, "settle policy", cause)) != 0)
		return r;
	if ((r = store_prepare(s, "UPDATE policies SET state = ?3,"
	    " state_note = ?4 WHERE sandbox = ?1 AND version = ?2"
	    " AND state = 'pending'", &st, cause)) != 0)
		return r;
	store_bind_text(st, 1, sandbox);
	sqlite3_bind_int(st, 2, version);
	store_bind_text(st, 3, active ? MOAT_STORE_POLICY_ACTIVE :
	    MOAT_STORE_POLICY_REFUSED);
	store_bind_text(st, 4, why);
	if ((r = store_step_done(s, st, "settle policy", cause)) == 0 &&
	    sqlite3_changes(s->db) == 0) {
		moat_cause_set(cause, "sandbox %s has no pending policy version "
		    "%d", sandbox, version);
		r = MOAT_ERR_NOTFOUND;
	}
	sqlite3_finalize(st);
	return r;
}

void
moat_store_policy_free(struct moat_store_policy *p)
{
	if (p == NULL)
		return;
	free(p->sandbox);
	free(p->json);
	free(p->hash);
	free(p->source);
	free(p->who);
	free(p->note);
	free(p->state);
	free(p->state_note);
	free(p);
}

#define POLICY_COLS "sandbox, version, json, hash, source, who, note," \
	" created_ms, state, state_note"

/* Row to a struct whose strings point into the statement. */
static void
row_view(sqlite3_stmt *st, struct moat_store_policy *p)
{
	p->sandbox = (char *)store_col_text(st, 0);
	p->version = sqlite3_column_int(st, 1);
	p->json = (char *)store_col_text(st, 2);
	p->hash = (char *)store_col_text(st, 3);
	p->source = (char *)store_col_text(st, 4);
	p->who = (char *)store_col_text(st, 5);
	p->note = (char *)store_col_text(st, 6);
	p->created_ms = sqlite3_column_int64(st, 7);
	p->state = (char *)store_col_text(st, 8);
	p->state_note = (char *)store_col_text(st, 9);
}

static int
row_copy(sqlite3_stmt *st, struct moat_store_policy **out)
{
	struct moat_store_policy *p = NULL;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return MOAT_ERR_NOMEM;
	p->version = sqlite3_column_int(st, 1);
	p->created_ms = sqlite3_column_int64(st, 7);
	if ((p->sandbox = store_col_dup(st, 0)) == NULL ||
	    (p->json = store_col_dup(st, 2)) == NULL ||
	    (p->hash = store_col_dup(st, 3)) == NULL ||
	    (p->source = store_col_dup(st, 4)) == NULL ||
	    (p->who = store_col_dup(st, 5)) == NULL ||
	    (p->note = store_col_dup(st, 6)) == NULL ||
	    (p->state = store_col_dup(st, 8)) == NULL ||
	    (p->state_note = store_col_dup(st, 9)) == NULL) {
		moat_store_policy_free(p);
		return MOAT_ERR_NOMEM;
	}
	*out = p;
	return 0;
}

int
moat_store_policy_get(struct moat_store *s, const char *sandbox,
    int version, struct moat_store_policy **out, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = store_prepare(s, version > 0 ?
	    "SELECT " POLICY_COLS " FROM policies"
	    " WHERE sandbox = ?1 AND version = ?2" :
	    "SELECT " POLICY_COLS " FROM policies"
	    " WHERE sandbox = ?1 AND state = 'active'"
	    " ORDER BY version DESC LIMIT 1", &st, cause);
	if (r != 0)
		return r;
	store_bind_text(st, 1, sandbox);
	if (version > 0)
		sqlite3_bind_int(st, 2, version);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = row_copy(st, out);
	} else if (rc == SQLITE_DONE) {
		if (version > 0)
			moat_cause_set(cause, "sandbox %s has no policy "
			    "version %d", sandbox, version);
		else
			moat_cause_set(cause, "sandbox %s has no active "
			    "policy", sandbox);
		r = MOAT_ERR_NOTFOUND;
	} else {
		r = store_err(s, rc, "get policy", cause);
	}
	sqlite3_finalize(st);
	return r;
}

int
moat_store_policy_list(struct moat_store *s, const char *sandbox,
    int (*cb)(const struct moat_store_policy *p, void *arg), void *arg,
    struct moat_cause *cause)
{
	struct moat_store_policy p;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_prepare(s, "SELECT " POLICY_COLS " FROM policies"
	    " WHERE sandbox = ?1 ORDER BY version DESC", &st, cause)) != 0)
		return r;
	store_bind_text(st, 1, sandbox);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		row_view(st, &p);
		if ((r = cb(&p, arg)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : store_err(s, rc, "list policies", cause);
out:
	sqlite3_finalize(st);
	return r;
}
