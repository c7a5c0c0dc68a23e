/*
 * The proposals engine (moatd/proposals.c): turns grouped denials into
 * suggested rules (the mechanistic mapper), stores agent proposals, and
 * approves or rejects them. Internal to moatd/.
 *
 * A proposal stores its rule as exact JSON text plus the SHA-256 of those
 * bytes; approving merges exactly that text, so what the operator
 * reviewed is what gets applied.
 */
#ifndef MOAT_MOATD_PROPOSALS_H
#define MOAT_MOATD_PROPOSALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/errors.h"
#include "common/event.h"
#include "policies/policy.h"

struct moatd;

#define MOATD_ORIGIN_MECHANISTIC "mechanistic"
#define MOATD_ORIGIN_AGENT "agent"
#define MOATD_ORIGIN_BINARY_CHANGED "binary-changed"

/* Denials of one (sandbox, binary, host, port) within one flush. */
struct moatd_denial_group {
	const struct moat_denial_event *ev; /* the latest of the group */
	int64_t count;
	int64_t first_ms;
	int64_t last_ms;
};

/* What the mapper suggests for one denial. */
struct moatd_suggestion {
	char key[640];     /* dedup key: "sandbox|binary|host|port" */
	char name[160];    /* network_policies key, allow_HOST_PORT */
	char host[256];    /* normalised */
	char *rule_json;   /* exact JSON of {"name": {rule}}; owned */
	char rule_hash[65];
	char *notes;       /* JSON array text; owned */
	size_t nnotes;     /* warnings among the notes (confidence) */
	bool public_only;  /* the rule's endpoint is public_only */
	const char *origin;
};

/*
 * Build the suggestion for ev; cur (may be NULL) is the sandbox's
 * current policy, whose read_write paths the notes consider.
 * MOAT_ERR_DENIED (with why in cause) when no rule could ever fix it:
 * loopback, link-local or metadata destinations, unknown callers, bypass
 * and identity stages.
 */
int moatd_proposal_suggest(const struct moat_denial_event *ev,
    const struct moat_policy *cur, struct moatd_suggestion *out,
    struct moat_cause *cause);
/*
 * Append to the JSON array notes what granting binary risks under cur
 * (may be NULL): a place the sandbox can write, an interpreter.
 */
void moatd_binary_notes(const struct moat_policy *cur, const char *binary,
    json_t *notes);
/*
 * Append the note that a rule for host (a name) is public_only; resolved
 * (may be NULL) is the private address a denial saw it resolve to.
 */
void moatd_public_only_note(const char *host, const char *resolved,
    json_t *notes);
void moatd_suggestion_clear(struct moatd_suggestion *s);

/* More hits give more confidence; each warning note takes some away. */
double moatd_proposal_confidence(int64_t hits, size_t nnotes);

/* Lowercase hex SHA-256 of len bytes. */
void moatd_sha256_hex(const void *data, size_t len, char out[65]);

/* The engine keeps a small cache of total hits per proposal key. */
struct moatd_proposals;
struct moatd_aggregator;
/* agg (may be NULL) hears of proposals the pending cap kept out. */
int moatd_proposals_new(struct moatd *d, struct moatd_aggregator *agg,
    struct moatd_proposals **out);
void moatd_proposals_free(struct moatd_proposals *p);
/*
 * Upsert one proposal per group that a rule could fix and the current
 * policy does not already allow. Errors are logged; returns the number
 * of proposals created or updated.
 */
size_t moatd_proposals_feed(struct moatd_proposals *p,
    const struct moatd_denial_group *g, size_t n);

/*
 * Approve pending proposal id as `who`: merge its stored rule JSON onto
 * the sandbox's CURRENT policy and apply it (or, for "binary-changed",
 * trust the new hash). want_hash (may be NULL) must equal the stored
 * rule hash, so an operator approves exactly what was reviewed.
 * *version (may be NULL) gets the new policy version (0 for a trust).
 * MOAT_ERR_NOTFOUND, MOAT_ERR_INVALID (not pending, hash differs, the
 * rule no longer merges: diags say why) or the store's error.
 */
int moatd_proposal_approve(struct moatd *d, int64_t id, const char *who,
    const char *want_hash, int *version, struct moat_diags *diags,
    struct moat_cause *cause);

/* Reject pending proposal id; reason may be NULL. */
int moatd_proposal_reject(struct moatd *d, int64_t id, const char *who,
    const char *reason, struct moat_cause *cause);

#endif
