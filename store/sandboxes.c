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
moat_store_sandbox_set_proxy(struct moat_store *s, const char *name,
    int proxy_version, const char *proxy_error, int64_t ms,
    struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_writable(s, "record proxy state", cause)) != 0)
		return r;
	if ((r = store_stmt(s, ST_SANDBOX_PROXY, &st, cause)) != 0)
		return r;
	store_bind_text(st, 1, name);
	sqlite3_bind_int(st, 2, proxy_version);
	store_bind_text(st, 3, proxy_error);
	sqlite3_bind_int64(st, 4, ms);
	if ((r = store_step_done(s, st, "record proxy state", cause)) != 0)
		return r;
	if (sqlite3_changes(s->db) == 0) {
		moat_cause_set(cause, "no sandbox %s in the store", name);
		return MOAT_ERR_NOTFOUND;
	}
	return 0;
}

bool
moat_store_proxy_mismatch(int active_version, int proxy_version,
    const char *proxy_error)
{
	if (proxy_version != 0)
		return proxy_version != active_version;
	return proxy_error != NULL && *proxy_error != '\0';
}

int
moat_store_sandbox_list(struct moat_store *s,
    int (*cb)(const struct moat_store_sandbox *sb, void *arg), void *arg,
    struct moat_cause *cause)
{
	struct moat_store_sandbox sb;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_prepare(s, "SELECT name, created_ms, updated_ms, config,"
	    " proxy_version, proxy_error, proxy_ms FROM sandboxes ORDER BY name",
	    &st, cause)) != 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		sb.name = (char *)store_col_text(st, 0);
		sb.created_ms = sqlite3_column_int64(st, 1);
		sb.updated_ms = sqlite3_column_int64(st, 2);
		sb.config = (char *)store_col_text(st, 3);
		sb.proxy_version = sqlite3_column_int(st, 4);
		sb.proxy_error = (char *)store_col_text(st, 5);
		sb.proxy_ms = sqlite3_column_int64(st, 6);
		if ((r = cb(&sb, arg)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : store_err(s, rc, "list sandboxes", cause);
out:
	sqlite3_finalize(st);
	return r;
}
