/*
 * moatd's internal interface: the orchestrator state that its parts
 * (config, sandbox registry, aggregator, proposals, control socket,
 * export) share. Only moatd/ includes this header.
 */
#ifndef MOAT_MOATD_MOATD_H
#define MOAT_MOATD_MOATD_H

#include <sys/types.h>

#include <stdbool.h>
#include <stdint.h>

#include "common/errors.h"
#include "common/event.h"
#include "policies/policy.h"

struct moat_loop;
struct moat_store;
struct moatd;
struct moatd_config;

/* ---- sandbox registry (moatd/registry.c) ---- */

/* Number of configured sandboxes and their names (index 0..n-1). */
size_t moatd_sandbox_count(const struct moatd *d);
const char *moatd_sandbox_name(const struct moatd *d, size_t i);
bool moatd_sandbox_exists(const struct moatd *d, const char *name);

/*
 * The sandbox's current policy snapshot and version (borrowed; take a
 * ref with moat_policy_ref to keep it). NULL when the sandbox is unknown.
 */
const struct moat_policy *moatd_policy_current(const struct moatd *d,
    const char *sandbox, int *version);

/*
 * Validate `json` as the sandbox's new policy (moatd_policy_validate);
 * store it as a pending version (source: "file", "operator", "proposal",
 * "agent"; who: the operator's name or "moatd"; note: free text or
 * NULL), have the proxy install it, and only then record it as active
 * and make it current. On failure the active version stays, in the store
 * and in the proxy: MOAT_ERR_INVALID (the policy is invalid, diags say
 * why, and nothing is stored; or the proxy refused it), MOAT_ERR_AGAIN
 * (the proxy did not answer within MOATD_PROXY_ACK_MS), MOAT_ERR_SYSTEM
 * (no proxy, or the store failed); a version the proxy did not take is
 * stored as refused, with why. cause says which.
 */
int moatd_policy_apply(struct moatd *d, const char *sandbox,
    const char *json, const char *source, const char *who, const char *note,
    int *version, struct moat_diags *diags, struct moat_cause *cause);

/*
 * The one validation of a policy text. moatd checks every version with
 * it before the store or the proxy sees it, with the options the proxy
 * installs it with (binary paths resolved in the sandbox's root,
 * /proc/PID/root of its init, or the host's before the sandbox runs;
 * no_fs skips that pass, for tests). MOAT_ERR_INVALID, diags say why.
 */
int moatd_policy_validate(pid_t init_pid, bool no_fs, const char *json,
    const char *source, struct moat_policy **out, struct moat_diags *diags);

/* How long moatd waits for the proxy to install a new version. */
#define MOATD_PROXY_ACK_MS 5000

/*
 * The proxy answered a policy push: installed `version` (error NULL) or
 * refused it (error says why; it keeps what it had). Recorded for
 * `moat sandboxes`; a refused active version is logged as a mismatch.
 */
void moatd_policy_acked(struct moatd *d, const char *sandbox, int version,
    const char *error);
/* No proxy serves any sandbox now (it died, moatd stops). */
void moatd_policy_proxy_gone(struct moatd *d);
/* What the proxy acknowledged for sandbox (0: nothing) and its last
 * refusal ("" if none); borrowed. */
void moatd_policy_enforced(const struct moatd *d, const char *sandbox,
    int *version, const char **error);

/*
 * The operator's lifecycle requests (moatd/daemon.c). Stop tears the
 * sandbox down (processes, cgroups, network; sessions in it end) and
 * the proxy stops serving it; start creates it again. MOAT_ERR_NOTFOUND
 * (no such sandbox, or stop of one not running), MOAT_ERR_EXISTS (start
 * of a running one), else what the sandbox's creation failed with.
 * Shutdown ends moatd after this loop turn and tears down everything,
 * live restore or not.
 */
int moatd_sandbox_stop_named(struct moatd *d, const char *name,
    struct moat_cause *cause);
int moatd_sandbox_start_named(struct moatd *d, const char *name,
    struct moat_cause *cause);
bool moatd_sandbox_running(const struct moatd *d, const char *name);
void moatd_shutdown(struct moatd *d);

/* ---- shared handles ---- */

struct moat_store *moatd_store(struct moatd *d);
struct moat_loop *moatd_loop(struct moatd *d);
const struct moatd_config *moatd_config(const struct moatd *d);

/* ---- aggregator (moatd/aggregator.c): the store's single writer ---- */

struct moatd_aggregator;
/* window_ms: how long denials are grouped before a flush (e.g. 200). */
int moatd_aggregator_new(struct moatd *d, int window_ms,
    struct moatd_aggregator **out, struct moat_cause *cause);
void moatd_aggregator_free(struct moatd_aggregator *a); /* flushes first */
/* Queue one denial event (from the proxy or the bypass monitor). */
void moatd_aggregator_add(struct moatd_aggregator *a,
    const struct moat_denial_event *ev);
/* Write everything queued now (one transaction); called on timer/exit. */
int moatd_aggregator_flush(struct moatd_aggregator *a);
/*
 * Count `count` things a flood cap kept out of the store (kind: one of
 * MOAT_STORE_SUPPRESSED_*, a constant; ts_ms: when), to be written with
 * the next flush as one row per sandbox, kind and minute. a may be NULL.
 */
void moatd_aggregator_suppressed(struct moatd_aggregator *a,
    const char *sandbox, const char *kind, int64_t ts_ms, int64_t count);

/* ---- control socket (moatd/control.c, moatd/ctl-*.c) ---- */

struct moatd_control;
/* Listen on path (mode 0600, or 0660 with group gid when gid >= 0). */
int moatd_control_new(struct moatd *d, const char *path, int gid,
    struct moatd_control **out, struct moat_cause *cause);
void moatd_control_free(struct moatd_control *c);

/* ---- event export (moatd/export.c): OCSF-style JSON lines ---- */

struct moatd_export;
/* path "-" is stdout; NULL disables export (the functions are no-ops). */
int moatd_export_open(const char *path, struct moatd_export **out,
    struct moat_cause *cause);
void moatd_export_close(struct moatd_export *x);
struct moatd_export *moatd_exporter(struct moatd *d);
void moatd_export_denial(struct moatd_export *x,
    const struct moat_denial_event *ev);
void moatd_export_session(struct moatd_export *x, bool start,
    const char *sandbox, const char *who, const char *from, const char *kind,
    int exit_status, const char *exit_signal);
void moatd_export_policy(struct moatd_export *x, const char *sandbox,
    int version, const char *source, const char *who);
void moatd_export_proposal(struct moatd_export *x, int64_t id,
    const char *sandbox, const char *status, const char *who);
/* count events of kind (a MOAT_STORE_SUPPRESSED_*) kept out by a cap. */
void moatd_export_suppressed(struct moatd_export *x, const char *sandbox,
    const char *kind, int64_t count, int64_t first_ms, int64_t last_ms);

/* ---- proposals from policy.local (agent) requests ---- */

/*
 * An agent in `sandbox` asked for a rule (the POST /v1/proposals body).
 * Validates and stores it as a pending proposal with origin "agent";
 * *id is its id. MOAT_ERR_INVALID with a cause naming what is wrong.
 */
int moatd_proposal_from_agent(struct moatd *d, const char *sandbox,
    const char *body, size_t len, int64_t *id, struct moat_cause *cause);

/*
 * The queue in front of it (moatd/proposals-agent.c): the proxy hands
 * each policy.local request to moatd_agentq_submit, which never merges
 * a policy itself. Requests wait (a few per sandbox) and are checked one
 * per loop turn; over limits.agent_proposals_per_minute, or with too
 * many waiting, the answer comes at once: MOAT_ERR_AGAIN with a cause
 * starting "rate_limited: ", counted in agg as suppressed. Every request
 * is answered exactly once through reply (r: 0, or the MOAT_ERR_* of
 * moatd_proposal_from_agent; error "" on success), also when the queue
 * is freed.
 */
struct moatd_agentq;
typedef void moatd_agent_reply_fn(struct moatd *d, const char *sandbox,
    int64_t req, int r, int64_t id, const char *error);
int moatd_agentq_new(struct moatd *d, struct moatd_aggregator *agg,
    moatd_agent_reply_fn *reply, struct moatd_agentq **out);
void moatd_agentq_free(struct moatd_agentq *q);
void moatd_agentq_submit(struct moatd_agentq *q, const char *sandbox,
    int64_t req, const char *body, size_t len);


/* ---- added by the ops helper (issue 7); implemented where noted ---- */

/*
 * Accept a new SHA-256 for `binary` in `sandbox` (an approved
 * "binary-changed" proposal): keep it in the store (source "operator"),
 * then tell the proxy to trust it from now on; sha256 NULL forgets it.
 * Implemented in moatd/registry.c. MOAT_ERR_NOTFOUND for an unknown
 * sandbox; the store's error; MOAT_ERR_SYSTEM with a cause when the
 * proxy cannot be told.
 */
int moatd_trust_binary(struct moatd *d, const char *sandbox,
    const char *binary, const char *sha256, struct moat_cause *cause);

/*
 * Test hooks (moatd/registry.c): a moatd around an existing loop and
 * store (both stay owned by the caller), with no proxy, no sandboxes set
 * up in the kernel, and no exporter; sandboxes added with a policy only.
 * moatd_free_for_test frees what moatd_new_for_test made.
 */
int moatd_new_for_test(struct moat_loop *l, struct moat_store *s,
    struct moatd **out);
int moatd_add_sandbox_for_test(struct moatd *d, const char *name,
    const char *policy_json, struct moat_cause *cause);
void moatd_free_for_test(struct moatd *d);
/*
 * Stand in for the proxy (fault injection): fn is called as moatd would
 * call the proxy channel to install a policy version (see
 * moatd_policy_apply for what its answers mean). NULL: no proxy.
 */
typedef int moatd_installer_fn(struct moatd *d, const char *sandbox,
    int version, const char *json, int wait_ms, struct moat_cause *cause);
void moatd_set_installer_for_test(struct moatd *d, moatd_installer_fn *fn);
/* Flood caps for a test moatd (none by default); set before creating
 * the aggregator, which reads them once. */
void moatd_set_limits_for_test(struct moatd *d, int denials_per_minute,
    int pending_proposals, int agent_proposals_per_minute);
/* The event exporter of a test moatd (NULL: none); the caller frees it. */
void moatd_set_exporter_for_test(struct moatd *d, struct moatd_export *x);

/* ---- retention (moatd/retention.c) ---- */

struct moatd_retention;
/*
 * Every interval_ms, delete denials older than max_age_s from the store,
 * at most `batch` rows per step, yielding to the loop between steps so
 * writers are never blocked for long. max_age_s <= 0 disables pruning.
 */
int moatd_retention_new(struct moatd *d, int64_t max_age_s, int interval_ms,
    int batch, struct moatd_retention **out, struct moat_cause *cause);
void moatd_retention_free(struct moatd_retention *r);
/* Rows deleted so far (for tests and the "status" reply). */
int64_t moatd_retention_deleted(const struct moatd_retention *r);

#endif
