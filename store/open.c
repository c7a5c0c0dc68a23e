#include <sys/stat.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/log.h"
#include "store/store-int.h"

/*
 * How long a statement waits for another connection's lock before
 * giving up with MOAT_ERR_AGAIN. Writers hold locks for one batch (a few
 * ms), so this is only reached when something is wrong.
 */
#define STORE_BUSY_MS 5000

/* Keep the WAL file from staying huge after a burst (bytes). */
#define STORE_WAL_LIMIT (64 * 1024 * 1024)

static const char *const stmt_sql[ST_MAX] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_DENIAL_INSERT] =
	    "INSERT INTO denials (ts_ms, sandbox, stage, binary, sha256,"
	    " ancestors, pid, uid, host, ip, port, protocol, reason,"
	    " policy_version, text_cut, text_escaped, method, path)"
	    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[ST_MINUTE_UPSERT] =
	    "INSERT INTO denial_minutes (minute, sandbox, binary, host, port,"
	    " count, first_ms, last_ms) VALUES (?,?,?,?,?,?,?,?)"
	    " ON CONFLICT DO UPDATE SET count = count + excluded.count,"
	    " first_ms = min(first_ms, excluded.first_ms),"
	    " last_ms = max(last_ms, excluded.last_ms)",
	[ST_POLICY_NEXT] =
	    "SELECT coalesce(max(version), 0) + 1 FROM policies"
	    " WHERE sandbox = ?",
	[ST_POLICY_INSERT] =
	    "INSERT INTO policies (sandbox, version, json, hash, source, who,"
	    " note, created_ms, state) VALUES (?,?,?,?,?,?,?,?,?)",
	[ST_SESSION_INSERT] =
	    "INSERT INTO sessions (sandbox, who, from_addr, kind, start_ms)"
	    " VALUES (?,?,?,?,?)",
	[ST_SESSION_END] =
	    "UPDATE sessions SET end_ms = ?, exit_status = ?,"
	    " exit_signal = ? WHERE id = ?",
	[ST_SESSION_LOST] =
	    "UPDATE sessions SET end_ms = ?1, exit_status = -1,"
	    " exit_signal = '', end_reason = ?2 WHERE id = ?3 AND end_ms = 0",
	[ST_SUPPRESSED_UPSERT] =
	    "INSERT INTO suppressed (sandbox, kind, minute_ms, count,"
	    " first_ms, last_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
	    " ON CONFLICT (sandbox, kind, minute_ms) DO UPDATE SET"
	    " count = count + excluded.count,"
	    " first_ms = min(first_ms, excluded.first_ms),"
	    " last_ms = max(last_ms, excluded.last_ms)",
	[ST_PROPOSAL_PENDING_COUNT] =
	    "SELECT count(*) FROM proposals WHERE sandbox = ?1"
	    " AND status = 'pending'",
	[ST_SANDBOX_PROXY] =
	    "UPDATE sandboxes SET proxy_version = ?2, proxy_error = ?3,"
	    " proxy_ms = ?4 WHERE name = ?1",
	[ST_SANDBOX_UPSERT] =
	    "INSERT INTO sandboxes (name, created_ms, updated_ms, config)"
	    " VALUES (?1, ?2, ?2, ?3) ON CONFLICT (name) DO UPDATE SET"
	    " updated_ms = excluded.updated_ms, config = excluded.config",
	[ST_PROPOSAL_FIND] = "SELECT id, status FROM proposals WHERE key = ?",
	[ST_PROPOSAL_INSERT] =
	    "INSERT INTO proposals (sandbox, key, name, rule_json, rule_hash,"
	    " binary, host, port, hits, confidence, notes, origin, reason,"
	    " status, first_ms, last_ms)"
	    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,'pending',?,?)",
	[ST_PROPOSAL_BUMP] =
	    "UPDATE proposals SET hits = hits + ?2,"
	    " last_ms = max(last_ms, ?3) WHERE id = ?1",
	[ST_PROPOSAL_BUMP_PENDING] =
	    "UPDATE proposals SET hits = hits + ?2,"
	    " last_ms = max(last_ms, ?3), name = ?4, rule_json = ?5,"
	    " rule_hash = ?6, confidence = ?7, notes = ?8, reason = ?9"
	    " WHERE id = ?1 AND status = 'pending'",
};

int
store_err(struct moat_store *s, int rc, const char *what,
    struct moat_cause *cause)
{
	const char *msg = s != NULL && s->db != NULL ? sqlite3_errmsg(s->db) :
	    sqlite3_errstr(rc);

	moat_cause_set(cause, "%s: %s", what, msg);
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return MOAT_ERR_AGAIN;
	case SQLITE_NOMEM:
		return MOAT_ERR_NOMEM;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return MOAT_ERR_DENIED;
	case SQLITE_CONSTRAINT:
		return MOAT_ERR_EXISTS;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
		return MOAT_ERR_INVALID;
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
		return MOAT_ERR_SYSTEM;
	default:
		return MOAT_ERR_INTERNAL;
	}
}

int
store_prepare(struct moat_store *s, const char *sql, sqlite3_stmt **out,
    struct moat_cause *cause)
{
	int rc;

	if ((rc = sqlite3_prepare_v2(s->db, sql, -1, out, NULL)) != SQLITE_OK)
		return store_err(s, rc, "prepare", cause);
	return 0;
}

int
store_stmt(struct moat_store *s, enum store_stmt_id id, sqlite3_stmt **out,
    struct moat_cause *cause)
{
	int rc;

	if (s->st[id] == NULL) {
		rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1,
		    SQLITE_PREPARE_PERSISTENT, &s->st[id], NULL);
		if (rc != SQLITE_OK)
			return store_err(s, rc, "prepare", cause);
	} else {
		sqlite3_reset(s->st[id]);
		sqlite3_clear_bindings(s->st[id]);
	}
	*out = s->st[id];
	return 0;
}

int
store_step_done(struct moat_store *s, sqlite3_stmt *st, const char *what,
    struct moat_cause *cause)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		rc = store_err(s, rc, what, cause);
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_reset(st);
	return 0;
}

int
store_begin(struct moat_store *s, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_stmt(s, ST_BEGIN, &st, cause)) != 0)
		return r;
	return store_step_done(s, st, "begin transaction", cause);
}

int
store_commit(struct moat_store *s, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_stmt(s, ST_COMMIT, &st, cause)) != 0)
		return r;
	return store_step_done(s, st, "commit", cause);
}

void
store_rollback(struct moat_store *s)
{
	sqlite3_stmt *st = NULL;

	/* Nothing to undo when a failed COMMIT already ended it. */
	if (sqlite3_get_autocommit(s->db))
		return;
	if (store_stmt(s, ST_ROLLBACK, &st, NULL) == 0)
		(void)store_step_done(s, st, "rollback", NULL);
}

int
store_writable(struct moat_store *s, const char *what,
    struct moat_cause *cause)
{
	if (!s->rdonly)
		return 0;
	moat_cause_set(cause, "%s: store %s is open read-only", what,
	    s->path);
	return MOAT_ERR_DENIED;
}

int
store_bind_text(sqlite3_stmt *st, int idx, const char *v)
{
	return sqlite3_bind_text(st, idx, v != NULL ? v : "", -1,
	    SQLITE_STATIC);
}

const char *
store_col_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return t != NULL ? (const char *)t : "";
}

char *
store_col_dup(sqlite3_stmt *st, int col)
{
	return strdup(store_col_text(st, col));
}

void
store_sql_add(struct store_sql *q, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (q->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(q->buf + q->len, sizeof(q->buf) - q->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(q->buf) - q->len)
		q->overflow = true;
	else
		q->len += (size_t)n;
}

static int
exec_pragma(struct moat_store *s, const char *sql, struct moat_cause *cause)
{
	int rc;

	if ((rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
		return store_err(s, rc, sql, cause);
	return 0;
}

static int
read_user_version(struct moat_store *s, int *v, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r;

	if ((r = store_prepare(s, "PRAGMA user_version", &st, cause)) != 0)
		return r;
	if ((r = sqlite3_step(st)) != SQLITE_ROW) {
		r = store_err(s, r, "read schema version", cause);
	} else {
		*v = sqlite3_column_int(st, 0);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

/*
 * Connection settings. Durability: synchronous=FULL in WAL mode fsyncs
 * the WAL at every commit, so a batch whose commit returned survives a
 * power loss too, not only a moatd crash (for a SIGKILL, NORMAL would
 * already do: the WAL sits in the page cache). Events come in batches,
 * so the fsync is paid once per batch, not per event (docs/store.md).
 */
static int
configure(struct moat_store *s, struct moat_cause *cause)
{
	int r, on = 1;

	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	sqlite3_extended_result_codes(s->db, 1);
	if (s->rdonly)
		return exec_pragma(s, "PRAGMA query_only = ON", cause);
	/*
	 * Keep the -wal and -shm files after the last close, so read-only
	 * readers (the CLI, maybe another user) never need to create them.
	 */
	sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
	if ((r = exec_pragma(s, "PRAGMA journal_mode = WAL", cause)) != 0 ||
	    (r = exec_pragma(s, "PRAGMA synchronous = FULL", cause)) != 0 ||
	    (r = exec_pragma(s, "PRAGMA journal_size_limit = "
	    "67108864", cause)) != 0)
		return r;
	return 0;
}

int
moat_store_open(const char *path, unsigned flags, struct moat_store **out,
    struct moat_cause *cause)
{
	struct moat_store *s = NULL;
	struct stat sb;
	int r, rc, oflags;

	if ((flags & MOAT_STORE_RDONLY) && (flags & MOAT_STORE_CREATE)) {
		moat_cause_set(cause, "store %s: read-only and create", path);
		return MOAT_ERR_INVALID;
	}
	if (!(flags & MOAT_STORE_CREATE) && stat(path, &sb) == -1) {
		if (errno != ENOENT) {
			moat_cause_errno(cause, "store %s", path);
			return MOAT_ERR_SYSTEM;
		}
		moat_cause_set(cause, "store %s does not exist (has moatd "
		    "run? MOAT_STORE or --store name another path)", path);
		return MOAT_ERR_NOTFOUND;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->path = strdup(path)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	s->rdonly = (flags & MOAT_STORE_RDONLY) != 0;
	/* NOMUTEX: one connection per thread by contract (store.h). */
	oflags = SQLITE_OPEN_NOMUTEX | (s->rdonly ? SQLITE_OPEN_READONLY :
	    SQLITE_OPEN_READWRITE | ((flags & MOAT_STORE_CREATE) ?
	    SQLITE_OPEN_CREATE : 0));
	if ((rc = sqlite3_open_v2(path, &s->db, oflags, NULL)) != SQLITE_OK) {
		r = store_err(s, rc, path, cause);
		goto out;
	}
	if ((r = configure(s, cause)) != 0)
		goto out;
	if (!s->rdonly && (r = store_migrate(s, cause)) != 0)
		goto out;
	if ((r = read_user_version(s, &s->version, cause)) != 0)
		goto out;
	if (s->version > store_latest_version()) {
		moat_cause_set(cause, "store %s: schema version %d is newer "
		    "than this build knows (%d)", path, s->version,
		    store_latest_version());
		r = MOAT_ERR_UNSUPPORTED;
		goto out;
	}
	if (s->version < store_latest_version()) {
		moat_cause_set(cause, "store %s: schema version %d, expected "
		    "%d (start moatd once to migrate it)", path, s->version,
		    store_latest_version());
		r = MOAT_ERR_INVALID;
		goto out;
	}
	*out = s;
	s = NULL;
	r = 0;
out:
	moat_store_close(s);
	return r;
}

void
moat_store_close(struct moat_store *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < ST_MAX; i++)
		sqlite3_finalize(s->st[i]);
	if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
		log_warn("store %s: close: %s", s->path,
		    sqlite3_errmsg(s->db));
	free(s->path);
	free(s);
}

int
moat_store_check(struct moat_store *s, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	const char *msg;
	int r, rc;

	if ((r = store_prepare(s, "PRAGMA integrity_check", &st, cause)) != 0)
		return r;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = store_err(s, rc, "integrity_check", cause);
		goto out;
	}
	msg = store_col_text(st, 0);
	if (strcmp(msg, "ok") != 0) {
		moat_cause_set(cause, "store %s: integrity_check: %s",
		    s->path, msg);
		r = MOAT_ERR_INVALID;
		goto out;
	}
	r = 0;
out:
	sqlite3_finalize(st);
	return r;
}

int
moat_store_schema_version(struct moat_store *s)
{
	return s->version;
}
