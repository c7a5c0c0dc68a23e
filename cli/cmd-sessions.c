/* `moat sessions`: SSH sessions recorded in the store (read-only). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "common/util.h"
#include "render/render.h"
#include "store/store.h"
#include "cli/cli.h"
#include "cli/control.h"
#include "cli/table.h"

#define DEFAULT_LIMIT 50
#define NCOL 8

struct sess_ctx {
	bool json;
	struct moat_cli_table *t;
};

static void
fmt_duration(int64_t ms, char *buf, size_t len)
{
	int64_t s = ms / 1000;

	if (s < 60)
		snprintf(buf, len, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", (long long)(s / 60),
		    (long long)(s % 60));
	else
		snprintf(buf, len, "%lldh%02lldm", (long long)(s / 3600),
		    (long long)(s / 60 % 60));
}

static void
fmt_exit(const struct moat_store_session *ss, char *buf, size_t len)
{
	if (ss->end_ms == 0)
		snprintf(buf, len, "running");
	else if (ss->end_reason[0] != '\0')
		snprintf(buf, len, "lost: %s", ss->end_reason);
	else if (ss->exit_signal[0] != '\0')
		snprintf(buf, len, "signal %s", ss->exit_signal);
	else if (ss->exit_status < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%d", ss->exit_status);
}

static json_t *
session_json(const struct moat_store_session *ss, const char *start)
{
	json_t *o = json_pack("{s:I, s:o, s:o, s:o, s:o, s:I, s:s}",
	    "id", (json_int_t)ss->id, "sandbox", moat_render_text(ss->sandbox),
	    "who", moat_render_text(ss->who),
	    "from", moat_render_text(ss->from),
	    "kind", moat_render_text(ss->kind),
	    "start_ms", (json_int_t)ss->start_ms, "start", start);

	if (o == NULL)
		return NULL;
	/* Absent fields mean "still running", not zero. */
	if (ss->end_ms != 0) {
		json_object_set_new(o, "end_ms", json_integer(ss->end_ms));
		if (ss->exit_status >= 0)
			json_object_set_new(o, "exit_status",
			    json_integer(ss->exit_status));
		if (ss->exit_signal[0] != '\0')
			json_object_set_new(o, "exit_signal",
			    moat_render_text(ss->exit_signal));
		/* Ended without an exit: how moatd learned it was over. */
		if (ss->end_reason[0] != '\0')
			json_object_set_new(o, "end_reason",
			    moat_render_text(ss->end_reason));
	}
	return o;
}

static int
session_row(const struct moat_store_session *ss, void *arg)
{
	struct sess_ctx *c = arg;
	char id[24], start[24], dur[24], ex[48], *s;
	const char *cells[NCOL];
	json_t *o;

	moat_cli_fmt_time(ss->start_ms, start, sizeof(start));
	if (c->json) {
		if ((o = session_json(ss, start)) != NULL &&
		    (s = moat_render_dump(o, JSON_COMPACT)) != NULL) {
			puts(s);
			free(s);
		}
		json_decref(o);
		return 0;
	}
	snprintf(id, sizeof(id), "%lld", (long long)ss->id);
	if (ss->end_ms != 0)
		fmt_duration(ss->end_ms - ss->start_ms, dur, sizeof(dur));
	else
		fmt_duration(moat_wall_ms() - ss->start_ms, dur, sizeof(dur));
	fmt_exit(ss, ex, sizeof(ex));
	cells[0] = id;
	cells[1] = ss->sandbox;
	cells[2] = ss->kind;
	cells[3] = ss->who;
	cells[4] = ss->from;
	cells[5] = start;
	cells[6] = dur;
	cells[7] = ex;
	return moat_cli_table_add(c->t, cells, NULL);
}

static int
sessions_exec(int argc, char **argv)
{
	static const char *const head[NCOL] = { "ID", "SANDBOX", "KIND",
		"WHO", "FROM", "START", "DURATION", "EXIT" };
	static const struct option opts[] = {
		{ "sandbox", required_argument, NULL, 'n' },
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "store", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	struct moat_cause cause = { { 0 } };
	struct sess_ctx c = { .json = false };
	struct moat_store *s = NULL;
	const char *sandbox = NULL, *store = NULL;
	size_t limit = DEFAULT_LIMIT;
	char *end;
	long v;
	int ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, "n:l:jS:", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			sandbox = optarg;
			break;
		case 'l':
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 0)
				return moat_cli_usage(&moat_cmd_sessions);
			limit = (size_t)v;
			break;
		case 'j':
			c.json = true;
			break;
		case 'S':
			store = optarg;
			break;
		default:
			return moat_cli_usage(&moat_cmd_sessions);
		}
	}
	if (optind != argc)
		return moat_cli_usage(&moat_cmd_sessions);
	if ((c.t = moat_cli_table_new(head, NCOL)) == NULL) {
		fprintf(stderr, "moat sessions: out of memory\n");
		return MOAT_EXIT_SYSTEM;
	}
	if ((s = moat_cli_store_open("sessions", store)) == NULL) {
		moat_cli_table_free(c.t);
		return MOAT_EXIT_SYSTEM;
	}
	r = moat_store_session_list(s, sandbox, limit, session_row, &c,
	    &cause);
	moat_store_close(s);
	if (r == 0 && !c.json && moat_cli_table_rows(c.t) == 0)
		fprintf(stderr, "moat sessions: no sessions recorded\n");
	else if (r == 0 && !c.json)
		moat_cli_table_print(c.t, stdout);
	moat_cli_table_free(c.t);
	if (r != 0) {
		fprintf(stderr, "moat sessions: %s\n", moat_cause_str(&cause,
		    r));
		return MOAT_EXIT_SYSTEM;
	}
	return 0;
}

const struct moat_cli_cmd moat_cmd_sessions = {
	"sessions",
	"sessions [--sandbox NAME] [--limit N] [--json] [--store PATH]",
	"SSH sessions, newest first (--limit 50; 0 = all): who, from, exit",
	sessions_exec,
};
