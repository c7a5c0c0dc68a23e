/*
 * Trusted binary hashes per sandbox: the first hash the proxy saw for a
 * path (trust on first use) and hashes an operator approved. Kept here so
 * that neither a proxy nor a moatd restart trusts a changed binary anew.
 */
#include <string.h>

#include <sqlite3.h>

#include "store/store-int.h"

static bool
source_ok(const char *s)
{
	return s != NULL && (strcmp(s, MOAT_STORE_TRUST_TOFU) == 0 ||
	    strcmp(s, MOAT_STORE_TRUST_OPERATOR) == 0);
}

static bool
sha_ok(const char *s)
{
	size_t i;

	for (i = 0; s != NULL && s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s != NULL && i == 64;
}

int
moat_store_trust_put(struct moat_store *s, const char *sandbox,
    const char *binary, const char *sha256, const char *source, int64_t ms,
    struct moat_cause *cause)
{
	/*
	 * First use never replaces a hash already recorded: a restarted
	 * proxy learns the old hash before it serves, and a late report
	 * of a first use must not undo an operator's approval.
	 */
	static const char tofu[] =
	    "INSERT INTO trust (sandbox, binary, sha256, source, created_ms,"
	    " updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"
	    " ON CONFLICT (sandbox, binary) DO NOTHING";
	static const char replace[] =
	    "INSERT INTO trust (sandbox, binary, sha256, source, created_ms,"
	    " updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"
	    " ON CONFLICT (sandbox, binary) DO UPDATE SET"
	    " sha256 = excluded.sha256, source = excluded.source,"
	    " updated_ms = excluded.updated_ms";
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_writable(s, "record trusted hash", cause)) != 0)
		return r;
	if (sandbox == NULL || *sandbox == '\0' || binary == NULL ||
	    binary[0] != '/' || !sha_ok(sha256) || !source_ok(source)) {
		moat_cause_set(cause, "record trusted hash: needs a sandbox, an "
		    "absolute path, 64 lowercase hex digits and a source "
		    "(tofu, operator)");
		return MOAT_ERR_INVALID;
	}
	if ((r = store_prepare(s, strcmp(source, MOAT_STORE_TRUST_TOFU) == 0 ?
	    tofu : replace, &st, cause)) != 0)
		return r;
	store_bind_text(st, 1, sandbox);
	store_bind_text(st, 2, binary);
	store_bind_text(st, 3, sha256);
	store_bind_text(st, 4, source);
	sqlite3_bind_int64(st, 5, ms);
	r = store_step_done(s, st, "record trusted hash", cause);
	sqlite3_finalize(st);
	return r;
}

int
moat_store_trust_forget(struct moat_store *s, const char *sandbox,
    const char *binary, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_writable(s, "forget trusted hash", cause)) != 0)
		return r;
	if ((r = store_prepare(s, "DELETE FROM trust WHERE sandbox = ?1 AND"
	    " binary = ?2", &st, cause)) != 0)
		return r;
	store_bind_text(st, 1, sandbox);
	store_bind_text(st, 2, binary);
	if ((r = store_step_done(s, st, "forget trusted hash", cause)) == 0 &&
	    sqlite3_changes(s->db) == 0) {
		moat_cause_set(cause, "sandbox %s trusts no hash for %s",
		    sandbox, binary);
		r = MOAT_ERR_NOTFOUND;
	}
	sqlite3_finalize(st);
	return r;
}

int
moat_store_trust_list(struct moat_store *s, const char *sandbox,
    int (*cb)(const struct moat_store_trust *t, void *arg), void *arg,
    struct moat_cause *cause)
{
	struct moat_store_trust t;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_prepare(s, "SELECT sandbox, binary, sha256, source,"
	    " created_ms, updated_ms FROM trust WHERE ?1 IS NULL OR"
	    " sandbox = ?1 ORDER BY sandbox, binary", &st, cause)) != 0)
		return r;
	if (sandbox != NULL)
		store_bind_text(st, 1, sandbox);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		t.sandbox = (char *)store_col_text(st, 0);
		t.binary = (char *)store_col_text(st, 1);
		t.sha256 = (char *)store_col_text(st, 2);
		t.source = (char *)store_col_text(st, 3);
		t.created_ms = sqlite3_column_int64(st, 4);
		t.updated_ms = sqlite3_column_int64(st, 5);
		if ((r = cb(&t, arg)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : store_err(s, rc, "list trusted hashes",
	    cause);
out:
	sqlite3_finalize(st);
	return r;
}
