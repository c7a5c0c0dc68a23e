/* `moat reject ID [--reason TEXT]`: reject a proposal through moatd. */
#include <getopt.h>
#include <stdio.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/control.h"

static int
reject_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ "control", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_cause cause = { { 0 } };
	const char *reason = NULL, *control = NULL;
	json_t *req = NULL, *reply = NULL;
	long long id;
	int ch, r, rc;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "r:c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			reason = optarg;
			break;
		case 'c':
			control = optarg;
			break;
		default:
			return moat_cli_usage(&moat_cmd_reject);
		}
	}
	if (argc - optind != 1 || !moat_cli_parse_id(argv[optind], &id))
		return moat_cli_usage(&moat_cmd_reject);
	req = json_pack("{s:s, s:I}", "cmd", "proposals.reject", "id",
	    (json_int_t)id);
	if (reason != NULL)
		json_object_set_new(req, "reason", json_string(reason));
	if ((r = moat_cli_control_call(control, req, &reply, &cause)) != 0) {
		fprintf(stderr, "moat reject: %s\n", moat_cause_str(&cause,
		    r));
		rc = MOAT_EXIT_SYSTEM;
	} else if (json_is_true(json_object_get(reply, "ok"))) {
		printf("rejected #%lld\n", id);
		rc = 0;
	} else
		rc = moat_cli_control_report("reject", reply);
	json_decref(req);
	json_decref(reply);
	return rc;
}

const struct moat_cli_cmd moat_cmd_reject = {
	"reject",
	"reject ID [--reason TEXT] [--control PATH]",
	"reject a proposal; the same denial will not propose it again",
	reject_exec,
};
