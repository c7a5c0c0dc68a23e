/*
 * `moat shutdown`: moatd tears everything down (sandboxes, their
 * sessions, the proxy) and exits, whether or not live restore is on.
 * A plain SIGTERM with live restore leaves them running instead.
 */
#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/control.h"

static int
shutdown_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_cause cause = { { 0 } };
	const char *control = NULL;
	json_t *req = NULL, *reply = NULL;
	int ch, r, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		if (ch != 'c')
			return moat_cli_usage(&moat_cmd_shutdown);
		control = optarg;
	}
	if (optind != argc)
		return moat_cli_usage(&moat_cmd_shutdown);
	req = json_pack("{s:s}", "cmd", "shutdown");
	if ((r = moat_cli_control_call(control, req, &reply, &cause)) != 0) {
		fprintf(stderr, "moat shutdown: %s\n", moat_cause_str(&cause,
		    r));
		rc = MOAT_EXIT_SYSTEM;
	} else if (json_is_true(json_object_get(reply, "ok"))) {
		printf("moatd is shutting down: every sandbox and session "
		    "ends\n");
		rc = 0;
	} else
		rc = moat_cli_control_report("shutdown", reply);
	json_decref(req);
	json_decref(reply);
	return rc;
}

const struct moat_cli_cmd moat_cmd_shutdown = {
	"shutdown",
	"shutdown [--control PATH]",
	"stop moatd and tear down every sandbox, live restore or not",
	shutdown_exec,
};
