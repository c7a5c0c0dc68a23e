/* `moat approve ID...`: approve proposals through moatd. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/escape.h"
#include "cli/cli.h"
#include "cli/control.h"

static void
print_results(json_t *reply)
{
	json_t *res = json_object_get(reply, "results"), *e;
	size_t i;

	json_array_foreach(res, i, e) {
		long long id = json_integer_value(json_object_get(e, "id"));
		int version = (int)json_integer_value(json_object_get(e,
		    "version"));
		char *err;

		if (json_is_true(json_object_get(e, "ok")) && version > 0) {
			printf("approved #%lld: policy version %d\n", id,
			    version);
		} else if (json_is_true(json_object_get(e, "ok"))) {
			printf("approved #%lld: new binary hash trusted\n",
			    id);
		} else {
			err = moat_escape_str(json_string_value(
			    json_object_get(e, "error")));
			fprintf(stderr, "moat approve: #%lld: %s\n", id,
			    err != NULL ? err : "?");
			free(err);
		}
	}
}

static int
approve_exec(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "hash", required_argument, NULL, 'h' },
		{ "control", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_cause cause = { { 0 } };
	const char *hash = NULL, *control = NULL;
	json_t *req = NULL, *ids, *reply = NULL;
	long long id;
	int ch, r, rc = MOAT_EXIT_USAGE;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "h:c:", opts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			hash = optarg;
			break;
		case 'c':
			control = optarg;
			break;
		default:
			return moat_cli_usage(&moat_cmd_approve);
		}
	}
	if (optind == argc || (hash != NULL && argc - optind != 1))
		return moat_cli_usage(&moat_cmd_approve);
	ids = json_array();
	for (int i = optind; i < argc; i++) {
		if (!moat_cli_parse_id(argv[i], &id)) {
			fprintf(stderr, "moat approve: '%s' is not a proposal "
			    "id\n", argv[i]);
			json_decref(ids);
			return MOAT_EXIT_USAGE;
		}
		json_array_append_new(ids, json_integer(id));
	}
	req = json_pack("{s:s, s:o}", "cmd", "proposals.approve", "ids", ids);
	if (hash != NULL)
		json_object_set_new(req, "hash", json_string(hash));
	if ((r = moat_cli_control_call(control, req, &reply, &cause)) != 0) {
		fprintf(stderr, "moat approve: %s\n", moat_cause_str(&cause,
		    r));
		rc = MOAT_EXIT_SYSTEM;
		goto out;
	}
	print_results(reply);
	if (json_is_true(json_object_get(reply, "ok")))
		rc = 0;
	else if (json_object_get(reply, "results") != NULL)
		rc = MOAT_EXIT_NO;
	else
		rc = moat_cli_control_report("approve", reply);
out:
	json_decref(req);
	json_decref(reply);
	return rc;
}

const struct moat_cli_cmd moat_cmd_approve = {
	"approve",
	"approve ID... [--control PATH]\n"
	"approve ID --hash SHA256 [--control PATH]",
	"approve proposals: merge exactly their shown rule (--hash insists)",
	approve_exec,
};
