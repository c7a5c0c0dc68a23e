/*
 * Private to the store module. sqlite3.h stays out of headers: the opaque
 * sqlite types are forward-declared here (sqlite3.h typedefs these very
 * struct tags), and only the .c files include sqlite3.h.
 */
#ifndef MOAT_STORE_STORE_INT_H
#define MOAT_STORE_STORE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

struct sqlite3;
struct sqlite3_stmt;

/* Statements prepared once per connection and reused (store_stmt()). */
enum store_stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_DENIAL_INSERT,
	ST_MINUTE_UPSERT,
	ST_POLICY_NEXT,
	ST_POLICY_INSERT,
	ST_SESSION_INSERT,
	ST_SESSION_END,
	ST_SESSION_LOST,
	ST_SANDBOX_UPSERT,
	ST_SANDBOX_PROXY,
	ST_SUPPRESSED_UPSERT,
	ST_PROPOSAL_PENDING_COUNT,
	ST_PROPOSAL_FIND,
	ST_PROPOSAL_INSERT,
	ST_PROPOSAL_BUMP,
	ST_PROPOSAL_BUMP_PENDING,
	ST_MAX
};

struct moat_store {
	struct sqlite3 *db;
	char *path;
	bool rdonly;
	int version;	/* schema version after open */
	struct sqlite3_stmt *st[ST_MAX];
};

/* Migrations (store/migrations.c). */
int store_migrate(struct moat_store *s, struct moat_cause *cause);
int store_latest_version(void);

/*
 * Map the connection's last SQLite error to a MOAT_ERR_* and say
 * "what: sqlite message" in the cause.
 */
int store_err(struct moat_store *s, int rc, const char *what,
    struct moat_cause *cause);

/* The cached statement id, reset and with bindings cleared. */
int store_stmt(struct moat_store *s, enum store_stmt_id id,
    struct sqlite3_stmt **out, struct moat_cause *cause);

/* Prepare a one-off statement (dynamic SQL); caller finalizes. */
int store_prepare(struct moat_store *s, const char *sql,
    struct sqlite3_stmt **out, struct moat_cause *cause);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK (rollback never fails loudly). */
int store_begin(struct moat_store *s, struct moat_cause *cause);
int store_commit(struct moat_store *s, struct moat_cause *cause);
void store_rollback(struct moat_store *s);

/* MOAT_ERR_DENIED with a cause when s is read-only. */
int store_writable(struct moat_store *s, const char *what,
    struct moat_cause *cause);

/* Step a statement that returns no rows; 0 or store_err(). */
int store_step_done(struct moat_store *s, struct sqlite3_stmt *st,
    const char *what, struct moat_cause *cause);

/* Bind NULL-as-"" text (transient copy not needed: caller keeps it). */
int store_bind_text(struct sqlite3_stmt *st, int idx, const char *v);

/* Column as text, "" for NULL; column as heap copy (NULL on ENOMEM). */
const char *store_col_text(struct sqlite3_stmt *st, int col);
char *store_col_dup(struct sqlite3_stmt *st, int col);

/* A tiny growable SQL builder for filtered queries. */
struct store_sql {
	char buf[1024];
	size_t len;
	bool overflow;
};
void store_sql_add(struct store_sql *q, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- denial filters (store/denials.c), shared with store/top.c ---- */

#define STORE_MINUTE_MS 60000

/* Numbered parameters shared by every filtered denial query. */
enum {
	P_SANDBOX = 1,
	P_BINARY,
	P_HOST,
	P_STAGE,
	P_PORT,
	P_SINCE,
	P_UNTIL,
	P_LIMIT,
	P_MINUTE,	/* first whole minute served by the rollup */
	P_EDGE,		/* ms where that minute starts */
};


/* The minute holding ms (floor, also for negative times). */
int64_t store_floor_minute(int64_t ms);

/* " AND col = ?N" for each key field of f set; stage only if asked. */
void store_where_keys(struct store_sql *q,
    const struct moat_store_denial_filter *f, bool with_stage);
/* " AND ts_ms >= ?since" / " AND ts_ms < ?until" as set. */
void store_where_time(struct store_sql *q,
    const struct moat_store_denial_filter *f);
/* Append LIMIT if set, prepare, bind every filter field set. */
int store_prepare_filtered(struct moat_store *s, struct store_sql *q,
    const struct moat_store_denial_filter *f, struct sqlite3_stmt **out,
    struct moat_cause *cause);

#endif
