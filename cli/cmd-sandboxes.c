/*
 * `moat sandboxes`: sandboxes, their active policy version, the version
 * the proxy enforces (as moatd recorded it) and pending counts. A
 * disagreement between the two versions is printed loudly and makes the
 * exit status 1. `moat sandboxes stop|start NAME` asks moatd to tear a
 * sandbox down or create it again.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/escape.h"
#include "render/render.h"
#include "store/store.h"
#include "cli/cli.h"
#include "cli/control.h"

struct sb_ctx {
	struct moat_store *s;
	bool json;
	json_t *all;
	size_t n;
	size_t mismatches;
};

static int
count_row(const struct moat_store_proposal *p, void *arg)
{
	(*(long long *)arg)++;
	return 0;
}

static int
sandbox_row(const struct moat_store_sandbox *sb, void *arg)
{
	struct sb_ctx *c = arg;
	struct moat_store_policy *pol = NULL;
	long long pending = 0;
	char pv[16] = "-";
	char *name, *err;
	bool bad;
	int active;

	moat_store_policy_get(c->s, sb->name, 0, &pol, NULL);
	moat_store_proposal_list(c->s, sb->name, MOAT_STORE_PENDING,
	    count_row, &pending, NULL);
	active = pol ? pol->version : 0;
	bad = moat_store_proxy_mismatch(active, sb->proxy_version,
	    sb->proxy_error);
	c->mismatches += bad;
	if (c->json)
		json_array_append_new(c->all, json_pack("{s:o, s:i, s:s, s:i,"
		    " s:o, s:b, s:I, s:I}", "name", moat_render_text(sb->name),
		    "policy_version", active, "policy_hash",
		    pol ? pol->hash : "", "proxy_version", sb->proxy_version,
		    "proxy_error", moat_render_text(sb->proxy_error),
		    "policy_mismatch", bad,
		    "pending_proposals", (json_int_t)pending, "updated_ms",
		    (json_int_t)sb->updated_ms));
	else {
		if (c->n == 0)
			printf("%-20s %8s %8s  %-16s %s\n", "SANDBOX", "POLICY",
			    "PROXY", "HASH", "PENDING");
		if (sb->proxy_version > 0)
			snprintf(pv, sizeof(pv), "%d", sb->proxy_version);
		name = moat_escape_str(sb->name);
		printf("%-20s %8d %8s  %-16.16s %lld\n", name ? name : "?",
		    active, pv, pol ? pol->hash : "-", pending);
		free(name);
		if (bad) {
			/* The proxy's refusal may quote the policy's text. */
			err = moat_escape_str(sb->proxy_error);
			printf("  !! POLICY MISMATCH: the store's active "
			    "version is %d, the proxy enforces %s%s%s%s\n",
			    active,
			    sb->proxy_version > 0 ? "version " : "none",
			    sb->proxy_version > 0 ? pv : "",
			    *sb->proxy_error ? "; it refused " : "",
			    err ? err : "?");
			free(err);
		}
	}
	c->n++;
	moat_store_policy_free(pol);
	return 0;
}

/* `moat sandboxes stop|start NAME [--control PATH]` through moatd. */
static int
lifecycle(const char *verb, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_cause cause = { { 0 } };
	const char *control = NULL;
	json_t *req = NULL, *reply = NULL;
	char cmd[32], what[32];
	int ch, r, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (ch != 'c')
			return moat_cli_usage(&moat_cmd_sandboxes);
		control = optarg;
	}
	if (argc - optind != 1)
		return moat_cli_usage(&moat_cmd_sandboxes);
	snprintf(cmd, sizeof(cmd), "sandboxes.%s", verb);
	snprintf(what, sizeof(what), "sandboxes %s", verb);
	req = json_pack("{s:s, s:s}", "cmd", cmd, "sandbox", argv[optind]);
	if ((r = moat_cli_control_call(control, req, &reply, &cause)) != 0) {
		fprintf(stderr, "moat %s: %s\n", what, moat_cause_str(&cause,
		    r));
		rc = MOAT_EXIT_SYSTEM;
	} else if (json_is_true(json_object_get(reply, "ok"))) {
		char *name = moat_escape_str(argv[optind]);

		printf("sandbox %s %s\n", name ? name : "?",
		    strcmp(verb, "stop") == 0 ? "stopped" : "started");
		free(name);
		rc = 0;
	} else
		rc = moat_cli_control_report(what, reply);
	json_decref(req);
	json_decref(reply);
	return rc;
}

static int
sandboxes_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "store", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_cause cause = { { 0 } };
	struct sb_ctx c = { 0 };
	const char *store = NULL;
	int ch, r;

	if (argc > 1 && (strcmp(argv[1], "stop") == 0 ||
	    strcmp(argv[1], "start") == 0))
		return lifecycle(argv[1], argc - 1, argv + 1);
	optind = 0;
	while ((ch = getopt_long(argc, argv, "jS:", opts, NULL)) != -1) {
		if (ch == 'j')
			c.json = true;
		else if (ch == 'S')
			store = optarg;
		else
			return moat_cli_usage(&moat_cmd_sandboxes);
	}
	if (optind != argc)
		return moat_cli_usage(&moat_cmd_sandboxes);
	if ((c.s = moat_cli_store_open("sandboxes", store)) == NULL)
		return MOAT_EXIT_SYSTEM;
	c.all = json_array();
	r = moat_store_sandbox_list(c.s, sandbox_row, &c, &cause);
	moat_store_close(c.s);
	if (r != 0) {
		fprintf(stderr, "moat sandboxes: %s\n", moat_cause_str(&cause,
		    r));
		json_decref(c.all);
		return MOAT_EXIT_SYSTEM;
	}
	if (c.json) {
		char *out = moat_render_dump(c.all, JSON_INDENT(2));

		if (out != NULL)
			puts(out);
		free(out);
	} else if (c.n == 0)
		printf("no sandboxes\n");
	json_decref(c.all);
	if (c.mismatches > 0) {
		fprintf(stderr, "moat sandboxes: POLICY MISMATCH in %zu "
		    "sandbox%s: the proxy does not enforce the active version "
		    "(see moatd's log)\n", c.mismatches,
		    c.mismatches == 1 ? "" : "es");
		return MOAT_EXIT_NO;
	}
	return 0;
}

const struct moat_cli_cmd moat_cmd_sandboxes = {
	"sandboxes",
	"sandboxes [--json] [--store PATH]\n"
	"sandboxes stop|start NAME [--control PATH]",
	"list sandboxes: active policy version, the version the proxy "
	"enforces, pending proposals; stop or start one",
	sandboxes_exec,
};
