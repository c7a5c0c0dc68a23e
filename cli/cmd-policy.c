/*
 * `moat policy SUBCOMMAND`: one row per subcommand. check and explain
 * work on a file with the same loader and decider as the proxy, so what
 * the operator checks is what the proxy does; show, set, history and diff
 * (cli/cmd-policy-ctl.c) work on a sandbox's stored versions.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/escape.h"
#include "policies/policy.h"
#include "cli/cli.h"

#define MAX_ANCESTORS 64

static const char *const level_names[] = { "error", "warning", "note" };

/*
 * Diagnostics quote the policy's text (hosts, binary paths, where a
 * symlink in the sandbox's root points), which may come from a sandbox:
 * escaped like all sandbox text (common/escape.h).
 */
static void
print_diags(const char *file, const struct moat_diags *d, bool all)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct moat_diag *g = &d->v[i];

		if (!all && g->level != MOAT_DIAG_ERROR)
			continue;
		const char *msg = g->msg;
		size_t n = strlen(file);
		char *f, *path, *m;

		/* A read error already names the file. */
		if (strncmp(msg, file, n) == 0 && msg[n] == ':' &&
		    msg[n + 1] == ' ')
			msg += n + 2;
		f = moat_escape_str(file);
		path = moat_escape_str(g->path);
		m = moat_escape_str(msg);
		if (path != NULL && path[0] != '\0')
			printf("%s: %s: %s: %s\n", f ? f : "?",
			    level_names[g->level], path, m ? m : "?");
		else
			printf("%s: %s: %s\n", f ? f : "?",
			    level_names[g->level], m ? m : "?");
		free(f);
		free(path);
		free(m);
	}
}

/* Load for the CLI: 0, or the exit code to return. */
static int
load(const char *file, const char *root, bool all_diags,
    struct moat_policy **out)
{
	struct moat_policy_opts o = { root, false };
	struct moat_diags d;
	size_t nerr;
	int r;

	moat_diags_init(&d);
	r = moat_policy_load_file(file, &o, out, &d);
	print_diags(file, &d, all_diags);
	nerr = moat_diags_count(&d, MOAT_DIAG_ERROR);
	moat_diags_free(&d);
	if (r == MOAT_OK)
		return 0;
	if (r == MOAT_ERR_INVALID) {
		printf("%s: %zu error%s\n", file, nerr, nerr == 1 ? "" : "s");
		return MOAT_EXIT_NO;
	}
	return r == MOAT_ERR_NOTFOUND ? MOAT_EXIT_USAGE : MOAT_EXIT_SYSTEM;
}

static int
policy_check(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "binary-root", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_policy *p = NULL;
	const char *root = NULL;
	int ch, r = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "r:", lo, NULL)) != -1) {
		if (ch != 'r')
			return moat_cli_usage(&moat_cmd_policy);
		root = optarg;
	}
	if (argc - optind < 1) {
		fprintf(stderr, "moat policy check: which file? (one or more)\n");
		return moat_cli_usage(&moat_cmd_policy);
	}
	/* Every file is checked; the worst result is the exit code. */
	for (int i = optind; i < argc; i++) {
		int fr = load(argv[i], root, true, &p);

		if (fr != 0) {
			if (fr > r)
				r = fr;
			continue;
		}
		printf("%s: ok, %zu network polic%s, %zu endpoint%s\n", argv[i],
		    moat_policy_count(p), moat_policy_count(p) == 1 ? "y" : "ies",
		    moat_policy_endpoint_count(p),
		    moat_policy_endpoint_count(p) == 1 ? "" : "s");
		moat_policy_free(p);
		p = NULL;
	}
	return r;
}

/* The request's decision, as the proxy makes it for each request. */
static int
explain_request(const struct moat_policy *p, const struct moat_caller *c,
    const char *host, uint16_t port, const char *method, const char *target,
    struct moat_decision *d)
{
	struct moat_l7_request rq = { method, NULL, NULL, false, false, NULL,
	    0 };
	char buf[8200], why[128];
	size_t pl = 0;

	if (moat_l7_canon(target, strlen(target), buf, sizeof(buf), &pl,
	    &rq.encoded_slash, why, sizeof(why)) != MOAT_OK) {
		char *m = moat_escape_str(method), *t = moat_escape_str(target);

		printf("deny: %s %s: %s (the proxy answers 400)\n",
		    m ? m : "?", t ? t : "?", why);
		free(m);
		free(t);
		return MOAT_EXIT_NO;
	}
	if (buf[pl] == '?')
		rq.query = buf + pl + 1;
	buf[pl] = '\0';
	rq.path = buf;
	return moat_policy_decide_request(p, c, host, port, &rq, d) == 0 ?
	    0 : MOAT_EXIT_SYSTEM;
}

static int
policy_explain(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "binary", required_argument, NULL, 'b' },
		{ "ancestor", required_argument, NULL, 'a' },
		{ "host", required_argument, NULL, 'h' },
		{ "port", required_argument, NULL, 'p' },
		{ "binary-root", required_argument, NULL, 'r' },
		{ "method", required_argument, NULL, 'm' },
		{ "path", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *anc[MAX_ANCESTORS], *host = NULL, *root = NULL;
	const char *method = NULL, *target = NULL;
	struct moat_caller c = { NULL, anc, 0, NULL, 0 };
	struct moat_policy *p = NULL;
	struct moat_decision d;
	long port = 0;
	char *end = NULL, *text, *pol;
	int ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "b:a:h:p:r:m:t:", lo,
	    NULL)) != -1) {
		switch (ch) {
		case 'b':
			c.exe = optarg;
			break;
		case 'a':
			if (c.nancestors == MAX_ANCESTORS)
				return moat_cli_usage(&moat_cmd_policy);
			anc[c.nancestors++] = optarg;
			break;
		case 'h':
			host = optarg;
			break;
		case 'p':
			port = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || port < 1 ||
			    port > 65535) {
				fprintf(stderr, "moat policy explain: --port "
				    "%s: expected 1..65535\n", optarg);
				return MOAT_EXIT_USAGE;
			}
			break;
		case 'r':
			root = optarg;
			break;
		case 'm':
			method = optarg;
			break;
		case 't':
			target = optarg;
			break;
		default:
			return moat_cli_usage(&moat_cmd_policy);
		}
	}
	if (argc - optind != 1 || c.exe == NULL || host == NULL || port == 0) {
		fprintf(stderr, "moat policy explain: needs one FILE, --binary, "
				"--host and --port\n");
		return moat_cli_usage(&moat_cmd_policy);
	}
	if ((method == NULL) != (target == NULL)) {
		fprintf(stderr, "moat policy explain: --method and --path go "
		    "together (one request)\n");
		return MOAT_EXIT_USAGE;
	}
	if ((r = load(argv[optind], root, false, &p)) != 0)
		return r == MOAT_EXIT_NO ? MOAT_EXIT_USAGE : r;
	moat_policy_decide(p, &c, host, (uint16_t)port, &d);
	if (d.allow && method != NULL &&
	    (r = explain_request(p, &c, host, (uint16_t)port, method, target,
	    &d)) != 0) {
		moat_policy_free(p);
		return r;
	}
	/* The text quotes the policy and the arguments: never raw. */
	text = moat_escape_str(d.text);
	pol = moat_escape_str(d.policy);
	if (d.allow && d.audit)
		printf("allow (policy %s), audit: %s\n", pol ? pol : "?",
		    text ? text : "?");
	else if (d.allow)
		printf("allow (policy %s)\n", pol ? pol : "?");
	else
		printf("deny: %s\n", text ? text : "?");
	free(text);
	free(pol);
	moat_policy_free(p);
	return d.allow ? 0 : MOAT_EXIT_NO;
}

static int
policy_ctl(int argc, char **argv)
{
	return moat_cli_policy_ctl(argc, argv);
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the subcommand */
} subcommands[] = {
	{ "check", policy_check },
	{ "explain", policy_explain },
	{ "show", policy_ctl },
	{ "set", policy_ctl },
	{ "history", policy_ctl },
	{ "diff", policy_ctl },
};

static int
policy_exec(int argc, char **argv)
{
	if (argc < 2)
		return moat_cli_usage(&moat_cmd_policy);
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(*subcommands); i++)
		if (strcmp(argv[1], subcommands[i].name) == 0)
			return subcommands[i].run(argc - 1, argv + 1);
	return moat_cli_usage(&moat_cmd_policy);
}

const struct moat_cli_cmd moat_cmd_policy = {
	"policy",
	"policy check FILE... [--binary-root DIR]\n"
	"policy explain FILE --binary PATH [--ancestor PATH]... --host H "
	"--port N [--method M --path /P?Q]\n"
	"policy show NAME [--version N] [--store PATH]\n"
	"policy set NAME FILE [--note TEXT] [--control PATH]\n"
	"policy history NAME [--store PATH]\n"
	"policy diff NAME V1 [V2] [--store PATH]",
	"check or explain a policy file; show, set and compare versions",
	policy_exec,
};
