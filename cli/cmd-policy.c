#include <stdio.h>

#include "cli/cli.h"

/* Placeholder until the policy helper lands `policy check|explain`. */
static int
policy_exec(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return moat_cli_usage(&moat_cmd_policy);
}

const struct moat_cli_cmd moat_cmd_policy = {
	"policy",
	"policy check FILE\n"
	"policy explain FILE --binary PATH [--ancestor PATH]... --host H --port N",
	"check a policy file, or explain its decision for one connection",
	policy_exec,
};
