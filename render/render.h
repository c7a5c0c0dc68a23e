/*
 * Renderings shared by moatd's control socket and the `moat` CLI (which
 * reads the store directly for read-only commands): pretty JSON, a line
 * diff of two policy versions, and a proposal as JSON. A module of its
 * own so that the CLI links no daemon code: it uses no moatd state.
 */
#ifndef MOAT_RENDER_RENDER_H
#define MOAT_RENDER_RENDER_H

#include <stddef.h>

#include <jansson.h>

struct moat_store_proposal;

/*
 * Re-indent JSON text (2 spaces, keys sorted, trailing newline), safe
 * for a terminal (moat_render_dump); NULL when the text is not JSON or
 * memory ran out. Caller frees.
 */
char *moat_render_json_pretty(const char *json);

/*
 * Line diff of a and b (a longest-common-subsequence diff): every line
 * of the result starts with "  " (in both), "- " (only in a) or "+ "
 * (only in b) and ends with '\n'. Caller frees; NULL on allocation
 * failure. Inputs above ~4000 changed lines fall back to "all of a's
 * middle removed, all of b's added" rather than using quadratic memory.
 */
char *moat_render_line_diff(const char *a, const char *b);

/*
 * A proposal as a JSON object (notes parsed into an array). Its text
 * fields (binary, host, reason: an agent's intent_summary, notes, ...)
 * are moat_render_text(); "rule" and "rule_json" are exactly the rule
 * approve merges. New ref.
 */
json_t *moat_render_proposal_json(const struct moat_store_proposal *p);

/*
 * Text from a sandbox as a JSON string for the operator: moat_escape()d
 * (common/escape.h), so that even `jq -r` prints it safely. NULL s gives
 * "". New ref; NULL when out of memory.
 */
json_t *moat_render_text(const char *s);

/*
 * json_dumps(o, flags) made safe for a terminal without changing its
 * meaning (moat_escape_json): what every JSON output for the operator
 * goes through. Caller frees; NULL when out of memory.
 */
char *moat_render_dump(const json_t *o, size_t flags);

#endif
