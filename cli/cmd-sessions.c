/* `moat sessions`: SSH sessions recorded in the store (read-only). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/util.h"
#include "store/store.h"
#include "cli/cli.h"
#include "cli/control.h"

#define DEFAULT_LIMIT 50
#define NCOL 8

struct sess_ctx {
	bool json;
	char *(*rows)[NCOL];
	size_t n;
	size_t cap;
};

static void
fmt_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)ms);
}

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
	json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:I, s:s}",
	    "id", (json_int_t)ss->id, "sandbox", ss->sandbox, "who", ss->who,
	    "from", ss->from, "kind", ss->kind,
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
			    json_string(ss->exit_signal));
	}
	return o;
}

static int
session_row(const struct moat_store_session *ss, void *arg)
{
	struct sess_ctx *c = arg;
	char id[24], start[24], dur[24], ex[48], *s;
	char *(*nv)[NCOL];
	const char *cells[NCOL];
	json_t *o;

	fmt_time(ss->start_ms, start, sizeof(start));
	if (c->json) {
		if ((o = session_json(ss, start)) != NULL &&
		    (s = json_dumps(o, JSON_COMPACT)) != NULL) {
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
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 32;
		if ((nv = realloc(c->rows, c->cap * sizeof(*nv))) == NULL)
			return MOAT_ERR_NOMEM;
		c->rows = nv;
	}
	for (int i = 0; i < NCOL; i++)
		c->rows[c->n][i] = strdup(cells[i]);
	c->n++;
	for (int i = 0; i < NCOL; i++)
		if (c->rows[c->n - 1][i] == NULL)
			return MOAT_ERR_NOMEM;
	return 0;
}

/* Pad every column but the last, so no line ends in blanks. */
static void
put_cell(const char *s, size_t w, bool last)
{
	if (last)
		printf("%s\n", s);
	else
		printf("%-*s  ", (int)w, s);
}

static void
print_table(const struct sess_ctx *c)
{
	static const char *const head[NCOL] = { "ID", "SANDBOX", "KIND",
		"WHO", "FROM", "START", "DURATION", "EXIT" };
	size_t w[NCOL];

	for (int i = 0; i < NCOL; i++) {
		w[i] = strlen(head[i]);
		for (size_t k = 0; k < c->n; k++)
			if (strlen(c->rows[k][i]) > w[i])
				w[i] = strlen(c->rows[k][i]);
	}
	for (int i = 0; i < NCOL; i++)
		put_cell(head[i], w[i], i == NCOL - 1);
	for (size_t k = 0; k < c->n; k++)
		for (int i = 0; i < NCOL; i++)
			put_cell(c->rows[k][i], w[i], i == NCOL - 1);
}

static int
sessions_exec(int argc, char **argv)
{
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
	if ((s = moat_cli_store_open("sessions", store)) == NULL)
		return MOAT_EXIT_SYSTEM;
	r = moat_store_session_list(s, sandbox, limit, session_row, &c,
	    &cause);
	moat_store_close(s);
	if (r == 0 && !c.json && c.n == 0)
		fprintf(stderr, "moat sessions: no sessions recorded\n");
	else if (r == 0 && !c.json)
		print_table(&c);
	for (size_t k = 0; k < c.n; k++)
		for (int i = 0; i < NCOL; i++)
			free(c.rows[k][i]);
	free(c.rows);
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
