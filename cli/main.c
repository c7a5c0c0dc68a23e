#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "cli/cli.h"

/*
 * The command table. A command is added by writing cli/cmd-NAME.c with
 * its struct moat_cli_cmd, declaring it in cli/cli.h and adding a row here.
 */
static const struct moat_cli_cmd *const commands[] = {
	&moat_cmd_policy,
	&moat_cmd_run,
	&moat_cmd_ssh_config,
	&moat_cmd_ssh_proxy,
	&moat_cmd_proposals,
	&moat_cmd_approve,
	&moat_cmd_reject,
	&moat_cmd_sandboxes,
	&moat_cmd_denials, &moat_cmd_sessions,
	&moat_cmd_shutdown,
};

static void
usage_all(FILE *f)
{
	fprintf(f, "usage: moat COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i]->name, commands[i]->help);
	fprintf(f, "\n`moat COMMAND --help` shows a command's usage.\n");
}

static void
print_usage(FILE *f, const struct moat_cli_cmd *cmd)
{
	const char *p = cmd->usage, *nl;

	/* Every usage line starts with "usage: moat ". */
	while (p != NULL && *p != '\0') {
		nl = strchr(p, '\n');
		fprintf(f, "%s moat %.*s\n", p == cmd->usage ? "usage:" :
		    "      ", nl ? (int)(nl - p) : (int)strlen(p), p);
		p = nl ? nl + 1 : NULL;
	}
}

int
moat_cli_usage(const struct moat_cli_cmd *cmd)
{
	print_usage(stderr, cmd);
	return MOAT_EXIT_USAGE;
}

const char *
moat_cli_store_path(void)
{
	const char *s = getenv("MOAT_STORE");

	return s != NULL && *s != '\0' ? s : "var/moat.db";
}

const char *
moat_cli_control_path(void)
{
	const char *s = getenv("MOAT_CONTROL");

	return s != NULL && *s != '\0' ? s : "var/moatd.sock";
}

int
main(int argc, char **argv)
{
	moat_log_init("moat", MOAT_LOG_WARN);
	if (argc < 2) {
		usage_all(stderr);
		return MOAT_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage_all(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++) {
		if (strcmp(argv[1], commands[i]->name) != 0)
			continue;
		if (argc > 2 && (strcmp(argv[2], "--help") == 0 ||
		    strcmp(argv[2], "-h") == 0)) {
			/* Asked for: stdout, so `| less` works. */
			print_usage(stdout, commands[i]);
			return 0;
		}
		return commands[i]->exec(argc - 1, argv + 1);
	}
	fprintf(stderr, "moat: unknown command '%s'\n\n", argv[1]);
	usage_all(stderr);
	return MOAT_EXIT_USAGE;
}
