/*
 * `moat policy show|set|history|diff`: versions are read from the store
 * directly; `set` goes through moatd, the store's only writer.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/escape.h"
#include "common/util.h"
#include "store/store.h"
#include "render/render.h"
#include "cli/cli.h"
#include "cli/control.h"

#define POLICY_FILE_MAX (4u * 1024 * 1024)

static const struct moat_cli_cmd policy_ctl_cmd = {
	"policy",
	"policy show NAME [--version N] [--store PATH]\n"
	"policy set NAME FILE [--note TEXT] [--control PATH]\n"
	"policy history NAME [--store PATH]\n"
	"policy diff NAME V1 [V2] [--store PATH]",
	"show, set and compare a sandbox's policy versions",
	NULL,
};

struct opts {
	const char *store;
	const char *control;
	const char *note;
	int version;
};

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "store", required_argument, NULL, 'S' },
		{ "control", required_argument, NULL, 'c' },
		{ "note", required_argument, NULL, 'm' },
		{ "version", required_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	long long v;
	int ch;

	memset(o, 0, sizeof(*o));
	optind = 0;
	while ((ch = getopt_long(argc, argv, "S:c:m:v:", lo, NULL)) != -1) {
		switch (ch) {
		case 'S':
			o->store = optarg;
			break;
		case 'c':
			o->control = optarg;
			break;
		case 'm':
			o->note = optarg;
			break;
		case 'v':
			if (!moat_cli_parse_id(optarg, &v) || v > 1000000000)
				return -1;
			o->version = (int)v;
			break;
		default:
			return -1;
		}
	}
	return optind;
}

static int
get_version(const char *cmd, struct moat_store *s, const char *sb, int v,
    struct moat_store_policy **out)
{
	struct moat_cause cause = { { 0 } };
	int r;

	if ((r = moat_store_policy_get(s, sb, v, out, &cause)) != 0) {
		fprintf(stderr, "moat policy %s: %s\n", cmd,
		    moat_cause_str(&cause, r));
		return r == MOAT_ERR_NOTFOUND ? MOAT_EXIT_NO : MOAT_EXIT_SYSTEM;
	}
	return 0;
}

static int
do_show(const char *sb, const struct opts *o)
{
	struct moat_store_policy *p = NULL;
	struct moat_store *s;
	char *pretty, *src, *who, *note;
	int rc;

	if ((s = moat_cli_store_open("policy show", o->store)) == NULL)
		return MOAT_EXIT_SYSTEM;
	if ((rc = get_version("show", s, sb, o->version, &p)) == 0) {
		/* Not JSON (it always is): still never raw. */
		if ((pretty = moat_render_json_pretty(p->json)) == NULL)
			pretty = moat_escape_json(p->json);
		src = moat_escape_str(p->source);
		who = moat_escape_str(*p->who ? p->who : "-");
		printf("# %s version %d, sha256 %s, %s by %s\n", sb,
		    p->version, p->hash, src ? src : "?", who ? who : "?");
		if (strcmp(p->state, MOAT_STORE_POLICY_ACTIVE) != 0) {
			note = moat_escape_str(p->state_note);
			printf("# NOT ACTIVE (%s)%s%s\n", p->state,
			    *p->state_note ? ": " : "", note ? note : "?");
			free(note);
		}
		fputs(pretty ? pretty : "", stdout);
		free(pretty);
		free(src);
		free(who);
	}
	moat_store_policy_free(p);
	moat_store_close(s);
	return rc;
}

static int
history_row(const struct moat_store_policy *p, void *arg)
{
	time_t t = (time_t)(p->created_ms / 1000);
	char when[32], state[320] = "", *src, *who, *note;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* The note of an approval may quote an agent's words. */
	src = moat_escape_str(p->source);
	who = moat_escape_str(*p->who ? p->who : "-");
	note = moat_escape_str(p->state_note);
	/* Only active versions were ever enforced: say so of the others. */
	if (strcmp(p->state, MOAT_STORE_POLICY_ACTIVE) != 0)
		snprintf(state, sizeof(state), "%s[%s%s%s]", *p->note ? "  " :
		    "", strcmp(p->state, MOAT_STORE_POLICY_REFUSED) == 0 ?
		    "REFUSED" : p->state, *p->state_note ? ": " : "",
		    note ? note : "?");
	free(note);
	note = moat_escape_str(p->note);
	printf("%4d  %s  %-9s %-12s %.16s  %s%s\n", p->version, when,
	    src ? src : "?", who ? who : "?", p->hash, note ? note : "?",
	    state);
	free(src);
	free(who);
	free(note);
	(*(int *)arg)++;
	return 0;
}

static int
do_history(const char *sb, const struct opts *o)
{
	struct moat_cause cause = { { 0 } };
	struct moat_store *s;
	int r, n = 0;

	if ((s = moat_cli_store_open("policy history", o->store)) == NULL)
		return MOAT_EXIT_SYSTEM;
	r = moat_store_policy_list(s, sb, history_row, &n, &cause);
	moat_store_close(s);
	if (r != 0) {
		fprintf(stderr, "moat policy history: %s\n",
		    moat_cause_str(&cause, r));
		return MOAT_EXIT_SYSTEM;
	}
	if (n == 0) {
		fprintf(stderr, "moat policy history: no versions for %s\n",
		    sb);
		return MOAT_EXIT_NO;
	}
	return 0;
}

static int
do_diff(const char *sb, const char *v1, const char *v2, const struct opts *o)
{
	struct moat_store_policy *a = NULL, *b = NULL;
	struct moat_store *s;
	char *pa = NULL, *pb = NULL, *d = NULL;
	long long x, y = 0;
	int rc;

	if (!moat_cli_parse_id(v1, &x) || x > 1000000000 ||
	    (v2 != NULL && (!moat_cli_parse_id(v2, &y) || y > 1000000000)))
		return moat_cli_usage(&policy_ctl_cmd);
	if ((s = moat_cli_store_open("policy diff", o->store)) == NULL)
		return MOAT_EXIT_SYSTEM;
	if ((rc = get_version("diff", s, sb, (int)x, &a)) != 0 ||
	    (rc = get_version("diff", s, sb, (int)y, &b)) != 0)
		goto out;
	pa = moat_render_json_pretty(a->json);
	pb = moat_render_json_pretty(b->json);
	if (pa == NULL || pb == NULL || (d = moat_render_line_diff(pa, pb)) ==
	    NULL) {
		fprintf(stderr, "moat policy diff: cannot diff\n");
		rc = MOAT_EXIT_SYSTEM;
		goto out;
	}
	printf("--- %s version %d\n+++ %s version %d\n", sb, a->version, sb,
	    b->version);
	fputs(d, stdout);
	rc = 0;
out:
	free(pa);
	free(pb);
	free(d);
	moat_store_policy_free(a);
	moat_store_policy_free(b);
	moat_store_close(s);
	return rc;
}

static int
do_set(const char *sb, const char *file, const struct opts *o)
{
	struct moat_cause cause = { { 0 } };
	json_t *req = NULL, *reply = NULL;
	char *text = NULL;
	size_t len = 0;
	int r, rc;

	if ((r = moat_read_file(file, POLICY_FILE_MAX, &text, &len,
	    &cause)) != 0) {
		fprintf(stderr, "moat policy set: %s\n", moat_cause_str(&cause,
		    r));
		return MOAT_EXIT_USAGE;
	}
	req = json_pack("{s:s, s:s, s:s%}", "cmd", "policy.set", "sandbox",
	    sb, "policy", text, len);
	if (o->note != NULL)
		json_object_set_new(req, "note", json_string(o->note));
	free(text);
	if (req == NULL) {
		fprintf(stderr, "moat policy set: %s is not UTF-8 text\n",
		    file);
		return MOAT_EXIT_USAGE;
	}
	if ((r = moat_cli_control_call(o->control, req, &reply, &cause)) !=
	    0) {
		fprintf(stderr, "moat policy set: %s\n", moat_cause_str(&cause,
		    r));
		rc = MOAT_EXIT_SYSTEM;
	} else if (json_is_true(json_object_get(reply, "ok"))) {
		printf("%s: policy version %lld is active\n", sb,
		    (long long)json_integer_value(json_object_get(reply,
		    "version")));
		rc = 0;
	} else
		rc = moat_cli_control_report("policy set", reply);
	json_decref(req);
	json_decref(reply);
	return rc;
}

int
moat_cli_policy_ctl(int argc, char **argv)
{
	struct opts o;
	const char *sub;
	int i, n;

	if (argc > 0 && strcmp(argv[0], "policy") == 0) {
		argc--;
		argv++;
	}
	if (argc < 1)
		return moat_cli_usage(&policy_ctl_cmd);
	sub = argv[0];
	if ((i = parse_opts(argc, argv, &o)) < 0)
		return moat_cli_usage(&policy_ctl_cmd);
	n = argc - i;
	if (strcmp(sub, "show") == 0 && n == 1)
		return do_show(argv[i], &o);
	if (strcmp(sub, "history") == 0 && n == 1)
		return do_history(argv[i], &o);
	if (strcmp(sub, "diff") == 0 && (n == 2 || n == 3))
		return do_diff(argv[i], argv[i + 1], n == 3 ? argv[i + 2] :
		    NULL, &o);
	if (strcmp(sub, "set") == 0 && n == 2)
		return do_set(argv[i], argv[i + 1], &o);
	return moat_cli_usage(&policy_ctl_cmd);
}
