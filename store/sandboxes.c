#include <sqlite3.h>

#include "store/store-int.h"

int
moat_store_sandbox_upsert(struct moat_store *s, const char *name,
    int64_t created_ms, const char *config, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_writable(s, "record sandbox", cause)) != 0)
		return r;
	if (name == NULL || *name == '\0') {
		moat_cause_set(cause, "record sandbox: empty name");
		return MOAT_ERR_INVALID;
	}
	if ((r = store_stmt(s, ST_SANDBOX_UPSERT, &st, cause)) != 0)
		return r;
	store_bind_text(st, 1, name);
	sqlite3_bind_int64(st, 2, created_ms);
	store_bind_text(st, 3, config);
	return store_step_done(s, st, "record sandbox", cause);
}

int
moat_store_sandbox_list(struct moat_store *s,
    int (*cb)(const struct moat_store_sandbox *sb, void *arg), void *arg,
    struct moat_cause *cause)
{
	struct moat_store_sandbox sb;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_prepare(s, "SELECT name, created_ms, updated_ms, config"
	    " FROM sandboxes ORDER BY name", &st, cause)) != 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sb.name = (char *)store_col_text(st, 0);
		sb.created_ms = sqlite3_column_int64(st, 1);
		sb.updated_ms = sqlite3_column_int64(st, 2);
		sb.config = (char *)store_col_text(st, 3);
		if ((r = cb(&sb, arg)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : store_err(s, rc, "list sandboxes", cause);
out:
	sqlite3_finalize(st);
	return r;
}
