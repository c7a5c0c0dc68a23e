/*
 * The `moat` command: one file per command (cli/cmd-NAME.c), each
 * exporting one struct moat_cli_cmd, listed in cli/main.c. Exit codes:
 * 0 success, 1 a "no" answer (policy invalid, denied), 100 usage or bad
 * input, 111 a system failure.
 */
#ifndef MOAT_CLI_CLI_H
#define MOAT_CLI_CLI_H

struct moat_cli_cmd {
	const char *name;  /* "policy", "run", "denials", ... */
	const char *usage; /* one or more lines, without "usage: moat " */
	const char *help;  /* one line for `moat --help` */
	int (*exec)(int argc, char **argv); /* argv[0] is the command name */
};

#define MOAT_EXIT_NO 1
#define MOAT_EXIT_USAGE 100
#define MOAT_EXIT_SYSTEM 111

/* Print the usage of cmd to stderr and return MOAT_EXIT_USAGE. */
int moat_cli_usage(const struct moat_cli_cmd *cmd);

/* Default paths (store, control socket); overridable by env MOAT_STORE,
 * MOAT_CONTROL. */
const char *moat_cli_store_path(void);
const char *moat_cli_control_path(void);

extern const struct moat_cli_cmd moat_cmd_policy;
extern const struct moat_cli_cmd moat_cmd_run;
extern const struct moat_cli_cmd moat_cmd_denials;
extern const struct moat_cli_cmd moat_cmd_sessions;

extern const struct moat_cli_cmd moat_cmd_proposals;
extern const struct moat_cli_cmd moat_cmd_approve;
extern const struct moat_cli_cmd moat_cmd_reject;
extern const struct moat_cli_cmd moat_cmd_sandboxes;
extern const struct moat_cli_cmd moat_cmd_shutdown;

/* `moat policy show|set|history|diff` (cli/cmd-policy-ctl.c); argv[0]
 * is the subcommand ("show", ...). */
int moat_cli_policy_ctl(int argc, char **argv);

extern const struct moat_cli_cmd moat_cmd_ssh_config;
extern const struct moat_cli_cmd moat_cmd_ssh_proxy;

#endif
