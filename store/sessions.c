#include <string.h>

#include <sqlite3.h>

#include "store/store-int.h"

int
moat_store_session_start(struct moat_store *s, const char *sandbox,
    const char *who, const char *from, const char *kind, int64_t start_ms,
    int64_t *id, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_writable(s, "record session", cause)) != 0)
		return r;
	if (sandbox == NULL || *sandbox == '\0' || kind == NULL) {
		moat_cause_set(cause, "record session: need sandbox and kind");
		return MOAT_ERR_INVALID;
	}
	if ((r = store_stmt(s, ST_SESSION_INSERT, &st, cause)) != 0)
		return r;
	store_bind_text(st, 1, sandbox);
	store_bind_text(st, 2, who);
	store_bind_text(st, 3, from);
	store_bind_text(st, 4, kind);
	sqlite3_bind_int64(st, 5, start_ms);
	if ((r = store_step_done(s, st, "record session", cause)) != 0)
		return r;
	if (id != NULL)
		*id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

int
moat_store_session_end(struct moat_store *s, int64_t id, int64_t end_ms,
    int exit_status, const char *exit_signal, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_writable(s, "end session", cause)) != 0)
		return r;
	if ((r = store_stmt(s, ST_SESSION_END, &st, cause)) != 0)
		return r;
	sqlite3_bind_int64(st, 1, end_ms);
	sqlite3_bind_int(st, 2, exit_status);
	store_bind_text(st, 3, exit_signal);
	sqlite3_bind_int64(st, 4, id);
	if ((r = store_step_done(s, st, "end session", cause)) != 0)
		return r;
	if (sqlite3_changes(s->db) == 0) {
		moat_cause_set(cause, "no session %lld", (long long)id);
		return MOAT_ERR_NOTFOUND;
	}
	return 0;
}

int
moat_store_session_lost(struct moat_store *s, int64_t id, int64_t end_ms,
    const char *reason, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_writable(s, "close session", cause)) != 0)
		return r;
	if (reason == NULL || *reason == '\0') {
		moat_cause_set(cause, "close session %lld: need a reason",
		    (long long)id);
		return MOAT_ERR_INVALID;
	}
	if ((r = store_stmt(s, ST_SESSION_LOST, &st, cause)) != 0)
		return r;
	sqlite3_bind_int64(st, 1, end_ms);
	store_bind_text(st, 2, reason);
	sqlite3_bind_int64(st, 3, id);
	if ((r = store_step_done(s, st, "close session", cause)) != 0)
		return r;
	if (sqlite3_changes(s->db) == 0) {
		moat_cause_set(cause, "no running session %lld", (long long)id);
		return MOAT_ERR_NOTFOUND;
	}
	return 0;
}

int
moat_store_sessions_close_open(struct moat_store *s, int64_t end_ms,
    const char *reason, int64_t *closed, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_writable(s, "close sessions", cause)) != 0)
		return r;
	if (reason == NULL || *reason == '\0') {
		moat_cause_set(cause, "close sessions: need a reason");
		return MOAT_ERR_INVALID;
	}
	if ((r = store_prepare(s, "UPDATE sessions SET end_ms = ?1,"
	    " exit_status = -1, exit_signal = '', end_reason = ?2"
	    " WHERE end_ms = 0", &st, cause)) != 0)
		return r;
	sqlite3_bind_int64(st, 1, end_ms);
	store_bind_text(st, 2, reason);
	r = store_step_done(s, st, "close sessions", cause);
	if (r == 0 && closed != NULL)
		*closed = sqlite3_changes(s->db);
	sqlite3_finalize(st);
	return r;
}

int
moat_store_session_set_conn(struct moat_store *s, int64_t id, int64_t pid,
    uint64_t start, int64_t key, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_writable(s, "record session process", cause)) != 0)
		return r;
	if ((r = store_prepare(s, "UPDATE sessions SET conn_pid = ?1,"
	    " conn_start = ?2, conn_key = ?3 WHERE id = ?4 AND end_ms = 0",
	    &st, cause)) != 0)
		return r;
	sqlite3_bind_int64(st, 1, pid);
	sqlite3_bind_int64(st, 2, (int64_t)start);
	sqlite3_bind_int64(st, 3, key);
	sqlite3_bind_int64(st, 4, id);
	r = store_step_done(s, st, "record session process", cause);
	if (r == 0 && sqlite3_changes(s->db) == 0) {
		moat_cause_set(cause, "no running session %lld", (long long)id);
		r = MOAT_ERR_NOTFOUND;
	}
	sqlite3_finalize(st);
	return r;
}

int
moat_store_sessions_running(struct moat_store *s,
    int (*cb)(const struct moat_store_session *ss, void *arg), void *arg,
    struct moat_cause *cause)
{
	struct moat_store_session ss;
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_prepare(s, "SELECT id, sandbox, who, from_addr, kind,"
	    " start_ms, conn_pid, conn_start, conn_key FROM sessions"
	    " WHERE end_ms = 0 ORDER BY id", &st, cause)) != 0)
		return r;
	memset(&ss, 0, sizeof(ss));
	ss.exit_status = -1;
	ss.exit_signal = ss.end_reason = (char *)"";
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ss.id = sqlite3_column_int64(st, 0);
		ss.sandbox = (char *)store_col_text(st, 1);
		ss.who = (char *)store_col_text(st, 2);
		ss.from = (char *)store_col_text(st, 3);
		ss.kind = (char *)store_col_text(st, 4);
		ss.start_ms = sqlite3_column_int64(st, 5);
		ss.conn_pid = sqlite3_column_int64(st, 6);
		ss.conn_start = (uint64_t)sqlite3_column_int64(st, 7);
		ss.conn_key = sqlite3_column_int64(st, 8);
		if ((r = cb(&ss, arg)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : store_err(s, rc, "list running sessions",
	    cause);
out:
	sqlite3_finalize(st);
	return r;
}

int
moat_store_session_list(struct moat_store *s, const char *sandbox,
    size_t limit, int (*cb)(const struct moat_store_session *ss, void *arg),
    void *arg, struct moat_cause *cause)
{
	struct moat_store_session ss;
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = store_prepare(s, sandbox != NULL ?
	    "SELECT id, sandbox, who, from_addr, kind, start_ms, end_ms,"
	    " exit_status, exit_signal, end_reason FROM sessions"
	    " WHERE sandbox = ?1"
	    " ORDER BY start_ms DESC, id DESC LIMIT ?2" :
	    "SELECT id, sandbox, who, from_addr, kind, start_ms, end_ms,"
	    " exit_status, exit_signal, end_reason FROM sessions"
	    " ORDER BY start_ms DESC, id DESC LIMIT ?2", &st, cause);
	if (r != 0)
		return r;
	if (sandbox != NULL)
		store_bind_text(st, 1, sandbox);
	/* LIMIT -1 is no limit in SQLite. */
	sqlite3_bind_int64(st, 2, limit != 0 ? (int64_t)limit : -1);
	memset(&ss, 0, sizeof(ss));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ss.id = sqlite3_column_int64(st, 0);
		ss.sandbox = (char *)store_col_text(st, 1);
		ss.who = (char *)store_col_text(st, 2);
		ss.from = (char *)store_col_text(st, 3);
		ss.kind = (char *)store_col_text(st, 4);
		ss.start_ms = sqlite3_column_int64(st, 5);
		ss.end_ms = sqlite3_column_int64(st, 6);
		ss.exit_status = sqlite3_column_int(st, 7);
		ss.exit_signal = (char *)store_col_text(st, 8);
		ss.end_reason = (char *)store_col_text(st, 9);
		if ((r = cb(&ss, arg)) != 0)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : store_err(s, rc, "list sessions", cause);
out:
	sqlite3_finalize(st);
	return r;
}
