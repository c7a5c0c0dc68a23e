#include <stdio.h>

#include <sqlite3.h>

#include "common/log.h"
#include "common/util.h"
#include "store/store-int.h"

/*
 * Numbered schema migrations. Row i brings the schema from version i to
 * i + 1; PRAGMA user_version holds the number applied. Never edit a
 * row that has shipped: append a new one (docs/store.md).
 */
static const char *const migrations[] = {
	/* 1: the first schema */
	"CREATE TABLE sandboxes ("
	"  name TEXT PRIMARY KEY,"
	"  created_ms INTEGER NOT NULL,"
	"  updated_ms INTEGER NOT NULL,"
	"  config TEXT NOT NULL DEFAULT '');"

	"CREATE TABLE policies ("
	"  id INTEGER PRIMARY KEY,"
	"  sandbox TEXT NOT NULL,"
	"  version INTEGER NOT NULL,"
	"  json TEXT NOT NULL,"
	"  hash TEXT NOT NULL,"
	"  source TEXT NOT NULL CHECK (source IN"
	"    ('file', 'operator', 'proposal', 'agent')),"
	"  who TEXT NOT NULL DEFAULT '',"
	"  note TEXT NOT NULL DEFAULT '',"
	"  created_ms INTEGER NOT NULL,"
	"  UNIQUE (sandbox, version));"

	/*
	 * ancestors: NUL-terminated paths back to back (a BLOB), nearest
	 * first; exact for any path and needs no JSON in the store.
	 */
	"CREATE TABLE denials ("
	"  id INTEGER PRIMARY KEY,"
	"  ts_ms INTEGER NOT NULL,"
	"  sandbox TEXT NOT NULL,"
	"  stage TEXT NOT NULL,"
	"  binary TEXT NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  ancestors BLOB,"
	"  pid INTEGER NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  host TEXT NOT NULL,"
	"  ip TEXT NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  protocol TEXT NOT NULL,"
	"  reason TEXT NOT NULL,"
	"  policy_version INTEGER NOT NULL);"
	"CREATE INDEX denials_ts ON denials (ts_ms);"
	"CREATE INDEX denials_sandbox_ts ON denials (sandbox, ts_ms);"

	/*
	 * Per-minute counts kept by moat_store_denials_add in the same
	 * transaction as the rows, so `moat denials --top` reads at most
	 * (keys x minutes) rows instead of every denial in the window.
	 */
	"CREATE TABLE denial_minutes ("
	"  minute INTEGER NOT NULL,"
	"  sandbox TEXT NOT NULL,"
	"  binary TEXT NOT NULL,"
	"  host TEXT NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  count INTEGER NOT NULL,"
	"  first_ms INTEGER NOT NULL,"
	"  last_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (minute, sandbox, binary, host, port)"
	") WITHOUT ROWID;"

	"CREATE TABLE proposals ("
	"  id INTEGER PRIMARY KEY,"
	"  sandbox TEXT NOT NULL,"
	"  key TEXT NOT NULL UNIQUE,"
	"  name TEXT NOT NULL,"
	"  rule_json TEXT NOT NULL,"
	"  rule_hash TEXT NOT NULL,"
	"  binary TEXT NOT NULL,"
	"  host TEXT NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  hits INTEGER NOT NULL,"
	"  confidence REAL NOT NULL,"
	"  notes TEXT NOT NULL DEFAULT '',"
	"  origin TEXT NOT NULL CHECK (origin IN"
	"    ('mechanistic', 'agent', 'binary-changed')),"
	"  reason TEXT NOT NULL DEFAULT '',"
	"  status TEXT NOT NULL CHECK (status IN"
	"    ('pending', 'approved', 'rejected')),"
	"  first_ms INTEGER NOT NULL,"
	"  last_ms INTEGER NOT NULL,"
	"  decided_by TEXT NOT NULL DEFAULT '',"
	"  decided_ms INTEGER NOT NULL DEFAULT 0,"
	"  decision_note TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX proposals_sandbox_status ON proposals (sandbox, status);"

	"CREATE TABLE sessions ("
	"  id INTEGER PRIMARY KEY,"
	"  sandbox TEXT NOT NULL,"
	"  who TEXT NOT NULL,"
	"  from_addr TEXT NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  start_ms INTEGER NOT NULL,"
	"  end_ms INTEGER NOT NULL DEFAULT 0,"
	"  exit_status INTEGER NOT NULL DEFAULT -1,"
	"  exit_signal TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX sessions_sandbox_start ON sessions (sandbox, start_ms);",

	/*
	 * 2: why a session ended when it did not end by itself: its
	 * connection process died, or moatd restarted ("" for a normal end).
	 */
	"ALTER TABLE sessions ADD COLUMN end_reason TEXT NOT NULL DEFAULT '';"
	"CREATE INDEX sessions_open ON sessions (id) WHERE end_ms = 0;",

	/*
	 * 3: the active policy is the version the proxy acknowledged. A
	 * new version is "pending" until the proxy installs it ("active")
	 * or does not ("refused", state_note says why). The sandbox row
	 * holds what the proxy last acknowledged, for `moat sandboxes`.
	 */
	"ALTER TABLE policies ADD COLUMN state TEXT NOT NULL DEFAULT 'active'"
	"  CHECK (state IN ('pending', 'active', 'refused'));"
	"ALTER TABLE policies ADD COLUMN state_note TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE sandboxes ADD COLUMN proxy_version INTEGER NOT NULL"
	"  DEFAULT 0;"
	"ALTER TABLE sandboxes ADD COLUMN proxy_error TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE sandboxes ADD COLUMN proxy_ms INTEGER NOT NULL DEFAULT 0;",

	/*
	 * 4: a denial whose text did not arrive whole says so: bit i of
	 * text_cut / text_escaped is field i of enum moat_ev_field (cut to
	 * fit; bytes that were not UTF-8 now read \xNN).
	 */
	"ALTER TABLE denials ADD COLUMN text_cut INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE denials ADD COLUMN text_escaped INTEGER NOT NULL"
	"  DEFAULT 0;",

	/*
	 * 5: what moatd's flood caps (limits.* in its config) kept out of
	 * the store, counted per sandbox, kind and minute.
	 */
	"CREATE TABLE suppressed ("
	"  sandbox TEXT NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN"
	"    ('denials', 'proposals', 'agent_proposals')),"
	"  minute_ms INTEGER NOT NULL,"
	"  count INTEGER NOT NULL,"
	"  first_ms INTEGER NOT NULL,"
	"  last_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (sandbox, kind, minute_ms)"
	") WITHOUT ROWID;"
	"CREATE INDEX suppressed_minute ON suppressed (minute_ms);",

	/* 6: trusted binary hashes (TOFU and approved) outlive the proxy */
	"CREATE TABLE trust ("
	"  sandbox TEXT NOT NULL,"
	"  binary TEXT NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  source TEXT NOT NULL CHECK (source IN ('tofu', 'operator')),"
	"  created_ms INTEGER NOT NULL,"
	"  updated_ms INTEGER NOT NULL,"
	"  PRIMARY KEY (sandbox, binary)"
	") WITHOUT ROWID;",

	/*
	 * 7: L7 denials name the request: its method and canonical path
	 * (never the query). "" for connection-level denials.
	 */
	"ALTER TABLE denials ADD COLUMN method TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE denials ADD COLUMN path TEXT NOT NULL DEFAULT '';",

	/*
	 * 8: the process that holds a running session, so that a moatd
	 * restarted with live restore can tell a session that runs on
	 * from one whose process is gone: the connection process's pid,
	 * its start time (clock ticks after boot) and the key it names the
	 * session by in its records (0: not known).
	 */
	"ALTER TABLE sessions ADD COLUMN conn_pid INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE sessions ADD COLUMN conn_start INTEGER NOT NULL"
	"  DEFAULT 0;"
	"ALTER TABLE sessions ADD COLUMN conn_key INTEGER NOT NULL DEFAULT 0;",
};

int
store_latest_version(void)
{
	return (int)MOAT_NELEM(migrations);
}

static int
exec_sql(struct moat_store *s, const char *sql, const char *what,
    struct moat_cause *cause)
{
	int rc;

	if ((rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
		return store_err(s, rc, what, cause);
	return 0;
}

static int
current_version(struct moat_store *s, int *v, struct moat_cause *cause)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	if ((r = store_prepare(s, "PRAGMA user_version", &st, cause)) != 0)
		return r;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		r = store_err(s, rc, "read schema version", cause);
	} else {
		*v = sqlite3_column_int(st, 0);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

/*
 * Apply one migration: the version is re-read inside the IMMEDIATE
 * transaction, so two processes migrating at once apply it once.
 */
static int
migrate_one(struct moat_store *s, int to, bool *applied,
    struct moat_cause *cause)
{
	char what[64], pragma[64];
	int r, v = 0;

	*applied = false;
	if ((r = store_begin(s, cause)) != 0)
		return r;
	if ((r = current_version(s, &v, cause)) != 0)
		goto out;
	if (v >= to) {
		r = 0;
		goto out;
	}
	snprintf(what, sizeof(what), "store %s: migration %d", s->path, to);
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", to);
	if ((r = exec_sql(s, migrations[to - 1], what, cause)) != 0 ||
	    (r = exec_sql(s, pragma, what, cause)) != 0)
		goto out;
	if ((r = store_commit(s, cause)) != 0)
		goto out;
	*applied = true;
	return 0;
out:
	store_rollback(s);
	return r;
}

int
store_migrate(struct moat_store *s, struct moat_cause *cause)
{
	bool applied;
	int r, v = 0;

	if ((r = current_version(s, &v, cause)) != 0)
		return r;
	for (int to = v + 1; to <= store_latest_version(); to++) {
		if ((r = migrate_one(s, to, &applied, cause)) != 0)
			return r;
		if (applied)
			log_info("store %s: migrated to schema %d", s->path,
			    to);
	}
	return 0;
}
