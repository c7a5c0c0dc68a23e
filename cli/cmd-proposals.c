/*
 * `moat proposals`: list proposals from the store (read-only). With the
 * pending ones come "N more suppressed" rows: proposals the pending cap
 * kept out and agent proposals the rate cap refused (limits.* in
 * moatd's config), summed per sandbox; in --json they are elements with
 * status "suppressed" and a count.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/escape.h"
#include "store/store.h"
#include "render/render.h"
#include "cli/cli.h"
#include "cli/control.h"

/* A string member of a rendered proposal ("" when absent). */
static const char *
jtext(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? s : "";
}

struct list_ctx {
	bool json;
	json_t *all;
	size_t n;
};

/* A "N more suppressed" row: one sandbox and kind, summed. */
static int
sup_row(const struct moat_store_suppressed *r, void *arg)
{
	struct list_ctx *l = arg;
	bool agent = strcmp(r->kind, MOAT_STORE_SUPPRESSED_AGENT) == 0;
	char text[256];

	if (strcmp(r->kind, MOAT_STORE_SUPPRESSED_DENIALS) == 0)
		return 0;
	if (agent)
		snprintf(text, sizeof(text), "%lld agent proposals from %s "
		    "refused (over limits.agent_proposals_per_minute or "
		    "limits.pending_proposals)", (long long)r->count,
		    r->sandbox);
	else
		snprintf(text, sizeof(text), "%lld more proposals for %s "
		    "suppressed (over limits.pending_proposals)",
		    (long long)r->count, r->sandbox);
	if (!l->json) {
		printf("+ %s\n", text);
		return 0;
	}
	json_array_append_new(l->all, json_pack("{s:i, s:s, s:s, s:s, s:s,"
	    " s:I, s:I, s:I, s:s}", "id", 0, "status", "suppressed",
	    "sandbox", r->sandbox, "kind", r->kind, "origin", agent ? "agent" :
	    "mechanistic", "count", (json_int_t)r->count, "first_ms",
	    (json_int_t)r->first_ms, "last_ms", (json_int_t)r->last_ms,
	    "reason", text));
	return 0;
}

/*
 * An agent's intent_summary may be up to 64 KiB: the text view shows its
 * start, so that a few proposals cannot drown the listing.
 */
#define REASON_SHOWN 512

static void
print_reason(const char *reason)
{
	char shown[REASON_SHOWN + 1];
	size_t n = strlen(reason);

	if (n == 0)
		return;
	if (moat_escape_buf(reason, n, shown, sizeof(shown)))
		printf("    reason: %s\n", shown);
	else
		printf("    reason: %s... (cut: %zu bytes in all, see moat "
		    "proposals --json)\n", shown, n);
}

/* One proposal as text; every string from the store is escaped. */
static void
print_text(const struct moat_store_proposal *p)
{
	json_t *o = moat_render_proposal_json(p), *n;
	const char *status, *note;
	char *rule = NULL;
	size_t i;

	if (o == NULL)
		return;
	/* The rule as JSON text: the same value approve merges. */
	if (p->rule_json != NULL)
		rule = moat_escape_json(p->rule_json);
	status = jtext(o, "status");
	printf("#%lld %s  %s  hits %lld  confidence %.2f  %s\n",
	    (long long)p->id, status, jtext(o, "sandbox"), (long long)p->hits,
	    p->confidence, jtext(o, "origin"));
	if (*jtext(o, "binary") != '\0')
		printf("    %s -> %s:%d\n", jtext(o, "binary"),
		    jtext(o, "host"), p->port);
	print_reason(p->reason != NULL ? p->reason : "");
	printf("    rule: %s\n", rule != NULL ? rule : "");
	printf("    hash: %s\n", jtext(o, "rule_hash"));
	json_array_foreach(json_object_get(o, "notes"), i, n)
		printf("    note: %s\n", json_string_value(n));
	note = jtext(o, "decision_note");
	if (*jtext(o, "decided_by") != '\0')
		printf("    %s by %s%s%s\n", status, jtext(o, "decided_by"),
		    *note != '\0' ? ": " : "", note);
	free(rule);
	json_decref(o);
}

static int
list_row(const struct moat_store_proposal *p, void *arg)
{
	struct list_ctx *c = arg;

	c->n++;
	if (c->json)
		json_array_append_new(c->all, moat_render_proposal_json(p));
	else
		print_text(p);
	return 0;
}

static int
proposals_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "status", required_argument, NULL, 's' },
		{ "sandbox", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "store", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	struct list_ctx c = { 0 };
	struct moat_cause cause = { { 0 } };
	struct moat_store *s;
	const char *status = MOAT_STORE_PENDING, *sandbox = NULL;
	const char *store = NULL;
	int ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "s:n:jS:", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			status = optarg;
			break;
		case 'n':
			sandbox = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 'S':
			store = optarg;
			break;
		default:
			return moat_cli_usage(&moat_cmd_proposals);
		}
	}
	if (optind != argc)
		return moat_cli_usage(&moat_cmd_proposals);
	if (strcmp(status, "all") == 0)
		status = NULL;
	else if (strcmp(status, MOAT_STORE_PENDING) != 0 &&
	    strcmp(status, MOAT_STORE_APPROVED) != 0 &&
	    strcmp(status, MOAT_STORE_REJECTED) != 0)
		return moat_cli_usage(&moat_cmd_proposals);
	if ((s = moat_cli_store_open("proposals", store)) == NULL)
		return MOAT_EXIT_SYSTEM;
	c.all = json_array();
	r = moat_store_proposal_list(s, sandbox, status, list_row, &c,
	    &cause);
	if (r == 0 && !c.json && c.n == 0)
		printf("no %s%sproposals\n", status ? status : "",
		    status ? " " : "");
	/* What the caps kept out would have been pending. */
	if (r == 0 && (status == NULL || strcmp(status,
	    MOAT_STORE_PENDING) == 0))
		r = moat_store_suppressed_totals(s, sandbox, NULL, 0, sup_row,
		    &c, &cause);
	moat_store_close(s);
	if (r != 0) {
		fprintf(stderr, "moat proposals: %s\n", moat_cause_str(&cause,
		    r));
		json_decref(c.all);
		return MOAT_EXIT_SYSTEM;
	}
	if (c.json) {
		char *out = moat_render_dump(c.all, JSON_INDENT(2));

		if (out != NULL)
			puts(out);
		free(out);
	}
	json_decref(c.all);
	return 0;
}

const struct moat_cli_cmd moat_cmd_proposals = {
	"proposals",
	"proposals [--status pending|approved|rejected|all] [--sandbox NAME]"
	" [--json] [--store PATH]",
	"list proposed rules (pending by default) with their rule and hash",
	proposals_exec,
};
