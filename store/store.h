/*
 * The store: moat's SQLite database (WAL mode), the only user of
 * sqlite3 (docs/store.md). moatd's aggregator is the single writer; the
 * `moat` CLI opens it with MOAT_STORE_RDONLY and reads while moatd
 * writes.
 *
 * Conventions:
 * - Every call returns 0 or a negative MOAT_ERR_*; a cause (may be NULL)
 *   says what failed. MOAT_ERR_AGAIN means the database stayed busy
 *   past the busy timeout.
 * - List functions call cb once per row. Strings in the row passed to a
 *   callback are valid only during that call. cb returns 0 to go on;
 *   any other value stops the walk and is returned by the list function
 *   (so a callback can pass a negative MOAT_ERR_* through).
 * - "get" functions hand out a heap copy the caller frees with the
 *   matching _free function (NULL is fine).
 * - Times are wall-clock milliseconds since the epoch.
 * - A struct moat_store is not thread-safe and must not be used across
 *   fork(): open it again in the child.
 */
#ifndef MOAT_STORE_STORE_H
#define MOAT_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"
#include "common/event.h"

struct moat_store; /* opaque */

/* ---- open, close, check ---- */

#define MOAT_STORE_RDONLY 0x1u /* SQLITE_OPEN_READONLY; no migrations */
#define MOAT_STORE_CREATE 0x2u /* create the file if missing (writers) */

/*
 * Open the database at path. A writable open sets WAL mode and runs the
 * numbered migrations not applied yet (each in its own transaction). A
 * read-only open refuses a database whose schema is newer than this
 * build knows, and one that has never been migrated. A missing file
 * without MOAT_STORE_CREATE is MOAT_ERR_NOTFOUND with the path named.
 */
int moat_store_open(const char *path, unsigned flags, struct moat_store **out,
    struct moat_cause *cause);

/* Finalize cached statements and close; NULL is fine. */
void moat_store_close(struct moat_store *s);

/* PRAGMA integrity_check; MOAT_ERR_INVALID with its first message. */
int moat_store_check(struct moat_store *s, struct moat_cause *cause);

/* The schema version (number of migrations applied). */
int moat_store_schema_version(struct moat_store *s);

/* ---- sandboxes ---- */

struct moat_store_sandbox {
	char *name;
	int64_t created_ms; /* first upsert; later upserts keep it */
	int64_t updated_ms; /* last upsert */
	char *config;       /* summary of its config (JSON text), may be "" */
	int proxy_version;  /* policy version the proxy last acknowledged;
	                     * 0: no proxy serves the sandbox */
	char *proxy_error;  /* the proxy's last refusal, or "" */
	int64_t proxy_ms;   /* when moatd last heard from the proxy */
};

int moat_store_sandbox_upsert(struct moat_store *s, const char *name,
    int64_t created_ms, const char *config, struct moat_cause *cause);
/*
 * What the proxy enforces for sandbox name (moatd records each
 * acknowledgement and refusal). MOAT_ERR_NOTFOUND for no such row.
 */
int moat_store_sandbox_set_proxy(struct moat_store *s, const char *name,
    int proxy_version, const char *proxy_error, int64_t ms,
    struct moat_cause *cause);
/*
 * Does what the proxy enforces disagree with the active version? True
 * when it acknowledged another version, or refused the active one and
 * holds none. proxy_version 0 without an error is a proxy not (yet)
 * serving the sandbox: nothing is let through, no disagreement.
 */
bool moat_store_proxy_mismatch(int active_version, int proxy_version,
    const char *proxy_error);
int moat_store_sandbox_list(struct moat_store *s,
    int (*cb)(const struct moat_store_sandbox *sb, void *arg), void *arg,
    struct moat_cause *cause);

/* ---- policy versions ---- */

struct moat_store_policy {
	char *sandbox;
	int version;        /* 1, 2, ... per sandbox */
	char *json;         /* the whole policy document */
	char *hash;         /* sha256 hex of json, as the caller computed it */
	char *source;       /* "file", "operator", "proposal", "agent" */
	char *who;          /* operator or key fingerprint, may be "" */
	char *note;         /* may be "" */
	int64_t created_ms;
	char *state;        /* MOAT_STORE_POLICY_PENDING, _ACTIVE, _REFUSED */
	char *state_note;   /* why it was refused, or "" */
};

/*
 * A version is "pending" from the moment moatd stores it until the
 * proxy acknowledges it ("active") or does not ("refused"); only active
 * versions are ever the sandbox's policy. Versions added before this
 * state existed are active.
 */
#define MOAT_STORE_POLICY_PENDING "pending"
#define MOAT_STORE_POLICY_ACTIVE "active"
#define MOAT_STORE_POLICY_REFUSED "refused"

/*
 * Add a new version for sandbox: max(version) + 1 inside one IMMEDIATE
 * transaction, so two writers never get the same number. *version gets
 * the number on success. source must be one of the four above
 * (MOAT_ERR_INVALID otherwise); who and note may be NULL.
 */
int moat_store_policy_add(struct moat_store *s, const char *sandbox,
    const char *json, const char *hash, const char *source, const char *who,
    const char *note, int *version, struct moat_cause *cause);
/* The same, as a pending version (numbered like any other). */
int moat_store_policy_add_pending(struct moat_store *s, const char *sandbox,
    const char *json, const char *hash, const char *source, const char *who,
    const char *note, int *version, struct moat_cause *cause);
/*
 * Settle a pending version: active, or refused with why (stored in
 * state_note). MOAT_ERR_NOTFOUND when that version is not pending.
 */
int moat_store_policy_settle(struct moat_store *s, const char *sandbox,
    int version, bool active, const char *why, struct moat_cause *cause);

/*
 * Version 0 is the active one: the newest version whose state is
 * active. Any other number is that version, whatever its state.
 * MOAT_ERR_NOTFOUND when there is none.
 */
int moat_store_policy_get(struct moat_store *s, const char *sandbox,
    int version, struct moat_store_policy **out, struct moat_cause *cause);
void moat_store_policy_free(struct moat_store_policy *p);

/* History of sandbox, newest first (json included). */
int moat_store_policy_list(struct moat_store *s, const char *sandbox,
    int (*cb)(const struct moat_store_policy *p, void *arg), void *arg,
    struct moat_cause *cause);

/* ---- denials ---- */

/* Every field is optional: NULL / 0 means "any". */
struct moat_store_denial_filter {
	const char *sandbox;
	const char *binary;  /* exact path */
	const char *host;    /* exact, as stored */
	const char *stage;
	int port;
	int64_t since_ms;    /* ts_ms >= since_ms */
	int64_t until_ms;    /* ts_ms < until_ms */
	size_t limit;        /* rows (query) or groups (top) */
};

/*
 * Insert n events in ONE transaction with a cached prepared statement:
 * when this returns 0 the whole batch is durable, otherwise none of it
 * is there.
 */
int moat_store_denials_add(struct moat_store *s,
    const struct moat_denial_event *v, size_t n, struct moat_cause *cause);

/* Matching denials, newest first; id is the row id (increasing). */
int moat_store_denials_query(struct moat_store *s,
    const struct moat_store_denial_filter *f,
    int (*cb)(const struct moat_denial_event *ev, int64_t id, void *arg),
    void *arg, struct moat_cause *cause);

struct moat_store_denial_group {
	const char *binary;
	const char *host;
	int port;
	int64_t count;
	int64_t first_ms;
	int64_t last_ms;
};

/*
 * Denials grouped by (binary, host, port), count descending (then last
 * seen descending). Served from per-minute rollups plus the raw rows of
 * the partial minute at since_ms, so it stays fast over millions of rows
 * and is exact. A filter on stage or until_ms falls back to a scan.
 */
int moat_store_denials_top(struct moat_store *s,
    const struct moat_store_denial_filter *f,
    int (*cb)(const struct moat_store_denial_group *g, void *arg), void *arg,
    struct moat_cause *cause);

int moat_store_denials_count(struct moat_store *s,
    const struct moat_store_denial_filter *f, int64_t *count,
    struct moat_cause *cause);

/*
 * Delete at most max_rows of the oldest denials older than before_ms
 * (rounded down to a whole minute, so rollups stay consistent), in
 * transactions of a few thousand rows so readers and the writer's next
 * batch are never held up long. *deleted (may be NULL) gets the number;
 * call again while it equals max_rows.
 */
int moat_store_denials_prune(struct moat_store *s, int64_t before_ms,
    size_t max_rows, size_t *deleted, struct moat_cause *cause);

/* ---- proposals ---- */

#define MOAT_STORE_PENDING "pending"
#define MOAT_STORE_APPROVED "approved"
#define MOAT_STORE_REJECTED "rejected"

struct moat_store_proposal {
	int64_t id;
	char *sandbox;
	char *key;           /* dedup key: "sandbox|binary|host|port", ... */
	char *name;          /* suggested network_policies key */
	char *rule_json;     /* exact JSON of the network_policies entry */
	char *rule_hash;     /* sha256 hex of rule_json */
	char *binary;
	char *host;
	int port;
	int64_t hits;
	double confidence;
	char *notes;         /* JSON array text, may be "" */
	char *origin;        /* "mechanistic", "agent", "binary-changed" */
	char *reason;        /* the agent's reason, may be "" */
	char *status;        /* pending, approved, rejected */
	int64_t first_ms;
	int64_t last_ms;
	char *decided_by;    /* "" while pending */
	int64_t decided_ms;  /* 0 while pending */
	char *decision_note;
};

/*
 * Insert p by p->key, or when the key exists add p->hits (0 counts as 1)
 * and move last_ms forward; while the row is still pending also replace
 * name, rule_json, rule_hash, confidence, notes and reason. A decided
 * row keeps its status and rule. Fields read: sandbox, key, name,
 * rule_json, rule_hash, binary, host, port, hits, confidence, notes,
 * origin, reason, first_ms, last_ms (0 = now); NULL strings are "".
 * *id (may be NULL) gets the row id, *created (may be NULL) whether
 * it was new.
 */
int moat_store_proposal_upsert(struct moat_store *s,
    const struct moat_store_proposal *p, int64_t *id, bool *created,
    struct moat_cause *cause);

int moat_store_proposal_get(struct moat_store *s, int64_t id,
    struct moat_store_proposal **out, struct moat_cause *cause);
void moat_store_proposal_free(struct moat_store_proposal *p);

/* sandbox and status NULL mean any; newest (last_ms) first. */
int moat_store_proposal_list(struct moat_store *s, const char *sandbox,
    const char *status,
    int (*cb)(const struct moat_store_proposal *p, void *arg), void *arg,
    struct moat_cause *cause);

/*
 * Decide a pending proposal: status is "approved" or "rejected".
 * MOAT_ERR_NOTFOUND for no such id; MOAT_ERR_INVALID for a bad status or
 * a proposal that is no longer pending (the cause says its status).
 */
int moat_store_proposal_set_status(struct moat_store *s, int64_t id,
    const char *status, const char *who, const char *note,
    struct moat_cause *cause);

/*
 * The same with a cap: a key not stored yet is added only while the
 * sandbox has fewer than max_pending pending proposals (0: no cap);
 * otherwise nothing is written and the result is MOAT_ERR_DENIED, with
 * the count in the cause. Checked inside the upsert's transaction.
 */
int moat_store_proposal_upsert_capped(struct moat_store *s,
    const struct moat_store_proposal *p, int64_t max_pending, int64_t *id,
    bool *created, struct moat_cause *cause);

/* Number of pending proposals of sandbox. */
int moat_store_proposal_pending_count(struct moat_store *s,
    const char *sandbox, int64_t *count, struct moat_cause *cause);

/* ---- suppressed: what the flood caps kept out ---- */

#define MOAT_STORE_SUPPRESSED_DENIALS "denials"     /* limits.denials_per_minute */
#define MOAT_STORE_SUPPRESSED_PROPOSALS "proposals" /* limits.pending_proposals */
#define MOAT_STORE_SUPPRESSED_AGENT "agent_proposals" /* policy.local requests */

struct moat_store_suppressed {
	const char *sandbox;
	const char *kind;    /* one of MOAT_STORE_SUPPRESSED_* */
	int64_t minute_ms;   /* the minute (rounded down when added) */
	int64_t count;       /* how many were kept out (> 0) */
	int64_t first_ms;    /* the first and last of them */
	int64_t last_ms;
};

/*
 * Add n counts in one transaction, each to its (sandbox, kind, minute)
 * row: count adds up, first/last widen. MOAT_ERR_INVALID for an unknown
 * kind or a count <= 0 (nothing is written then).
 */
int moat_store_suppressed_add(struct moat_store *s,
    const struct moat_store_suppressed *v, size_t n,
    struct moat_cause *cause);

/*
 * Rows whose last_ms >= since_ms, newest minute first; sandbox and kind
 * NULL mean any. Pruned with the denials (moat_store_denials_prune).
 */
int moat_store_suppressed_list(struct moat_store *s, const char *sandbox,
    const char *kind, int64_t since_ms,
    int (*cb)(const struct moat_store_suppressed *row, void *arg), void *arg,
    struct moat_cause *cause);
/*
 * The same rows summed per (sandbox, kind), by sandbox then kind:
 * minute_ms is the first minute, first_ms/last_ms span them all.
 */
int moat_store_suppressed_totals(struct moat_store *s, const char *sandbox,
    const char *kind, int64_t since_ms,
    int (*cb)(const struct moat_store_suppressed *row, void *arg), void *arg,
    struct moat_cause *cause);

/* ---- trusted binary hashes ---- */

#define MOAT_STORE_TRUST_TOFU "tofu"         /* first use, reported */
#define MOAT_STORE_TRUST_OPERATOR "operator" /* approved by an operator */

struct moat_store_trust {
	char *sandbox;
	char *binary;   /* the path as the proxy saw it (/proc/PID/exe) */
	char *sha256;   /* 64 lowercase hex digits */
	char *source;   /* MOAT_STORE_TRUST_TOFU or _OPERATOR */
	int64_t created_ms;
	int64_t updated_ms;
};

/*
 * Record that sandbox trusts sha256 for binary. A "tofu" row never
 * replaces one already there (the first hash seen stays trusted); an
 * "operator" row does. MOAT_ERR_INVALID for a relative path, a hash that
 * is not 64 lowercase hex digits or another source.
 */
int moat_store_trust_put(struct moat_store *s, const char *sandbox,
    const char *binary, const char *sha256, const char *source, int64_t ms,
    struct moat_cause *cause);
/* Forget binary's hash in sandbox; MOAT_ERR_NOTFOUND when none. */
int moat_store_trust_forget(struct moat_store *s, const char *sandbox,
    const char *binary, struct moat_cause *cause);
/* sandbox NULL means any; ordered by sandbox, then binary. */
int moat_store_trust_list(struct moat_store *s, const char *sandbox,
    int (*cb)(const struct moat_store_trust *t, void *arg), void *arg,
    struct moat_cause *cause);

/* ---- sessions ---- */

struct moat_store_session {
	int64_t id;
	char *sandbox;
	char *who;           /* key fingerprint or relay identity */
	char *from;          /* client address */
	char *kind;          /* shell, exec, sftp, pty-shell, forward */
	int64_t start_ms;
	int64_t end_ms;      /* 0 while running */
	int exit_status;     /* -1 while running or when killed */
	char *exit_signal;   /* "TERM", ... or "" */
	char *end_reason;    /* "" when the session ended by itself; else
	                      * why moatd closed it ("connection killed
	                      * (KILL)", "moatd restarted") */
	int64_t conn_pid;    /* the connection process (0: unknown); only */
	uint64_t conn_start; /* filled by moat_store_sessions_running */
	int64_t conn_key;
};

int moat_store_session_start(struct moat_store *s, const char *sandbox,
    const char *who, const char *from, const char *kind, int64_t start_ms,
    int64_t *id, struct moat_cause *cause);
/* exit_signal may be NULL. MOAT_ERR_NOTFOUND for no such id. */
int moat_store_session_end(struct moat_store *s, int64_t id, int64_t end_ms,
    int exit_status, const char *exit_signal, struct moat_cause *cause);
/*
 * Close running session id whose end was never reported (its connection
 * process died, moatd stopped): end_ms, exit_status -1, no signal, and
 * reason (required) in end_reason. MOAT_ERR_NOTFOUND when no such
 * session is running.
 */
int moat_store_session_lost(struct moat_store *s, int64_t id, int64_t end_ms,
    const char *reason, struct moat_cause *cause);
/* Close every running session the same way (moatd starting); *closed
 * (may be NULL) gets how many. */
int moat_store_sessions_close_open(struct moat_store *s, int64_t end_ms,
    const char *reason, int64_t *closed, struct moat_cause *cause);
/*
 * Which process holds running session id: pid, its start time (ticks
 * after boot, /proc/PID/stat field 22) and the key that process names
 * the session by. MOAT_ERR_NOTFOUND when no such session is running.
 */
int moat_store_session_set_conn(struct moat_store *s, int64_t id,
    int64_t pid, uint64_t start, int64_t key, struct moat_cause *cause);
/* Every running session, conn_* fields filled, oldest first. */
int moat_store_sessions_running(struct moat_store *s,
    int (*cb)(const struct moat_store_session *ss, void *arg), void *arg,
    struct moat_cause *cause);
/* sandbox NULL means any; limit 0 means all; newest first. */
int moat_store_session_list(struct moat_store *s, const char *sandbox,
    size_t limit, int (*cb)(const struct moat_store_session *ss, void *arg),
    void *arg, struct moat_cause *cause);

#endif
