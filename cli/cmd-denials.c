/*
 * `moat denials`: recent denials from the store (read-only), as an
 * aligned table, as JSON lines, or grouped by (binary, host, port).
 * Denials the flood cap kept out (limits.denials_per_minute) follow as
 * "N more suppressed" lines: their count is all the store has of them.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/util.h"
#include "render/render.h"
#include "store/store.h"
#include "cli/cli.h"
#include "cli/control.h"
#include "cli/table.h"

#define DEFAULT_LIMIT 100
#define W_BINARY 40	/* widest BINARY and HOST columns before "..." */
#define W_HOST 40

struct opts {
	struct moat_store_denial_filter f;
	const char *store;
	bool json;
	bool top;
};

static void
print_json(json_t *o)
{
	char *s = moat_render_dump(o, JSON_COMPACT);

	if (s != NULL)
		puts(s);
	free(s);
	json_decref(o);
}

static void
denial_json(const struct moat_denial_event *ev, int64_t id, const char *t)
{
	json_t *anc = json_array(), *row;

	for (int i = 0; i < ev->nancestors; i++)
		json_array_append_new(anc, moat_render_text(ev->ancestors[i]));
	row = json_pack("{s:I, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:i,"
	    " s:i, s:o, s:o, s:i, s:o, s:o, s:i, s:o, s:o}",
	    "id", (json_int_t)id, "ts_ms", (json_int_t)ev->ts_ms, "time", t,
	    "sandbox", moat_render_text(ev->sandbox),
	    "stage", moat_render_text(ev->stage),
	    "binary", moat_render_text(ev->binary),
	    "sha256", moat_render_text(ev->sha256), "ancestors", anc,
	    "pid", ev->pid, "uid", ev->uid,
	    "host", moat_render_text(ev->host),
	    "ip", moat_render_text(ev->ip), "port", ev->port,
	    "protocol", moat_render_text(ev->protocol),
	    "reason", moat_render_text(ev->reason),
	    "policy_version", ev->policy_version,
	    "cut", moat_denial_event_marks_json(ev->cut),
	    "escaped", moat_denial_event_marks_json(ev->escaped));
	/* An L7 denial: the request's method and path. */
	if (row != NULL && ev->method[0] != '\0') {
		json_object_set_new(row, "method", moat_render_text(ev->method));
		json_object_set_new(row, "path", moat_render_text(ev->path));
	}
	print_json(row);
}

static int
denial_row(const struct moat_denial_event *ev, int64_t id, void *arg)
{
	/* The reason is the last column: never cut (it says which half). */
	static const size_t max[7] = { 0, 64, 16, W_BINARY, W_HOST, 8, 0 };
	struct opts *o = ((void **)arg)[0];
	struct moat_cli_table *t = ((void **)arg)[1];
	char tbuf[24], port[16], marks[160], reason[sizeof(ev->reason) + 200];
	const char *cells[7];

	moat_cli_fmt_time(ev->ts_ms, tbuf, sizeof(tbuf));
	if (o->json) {
		denial_json(ev, id, tbuf);
		return 0;
	}
	snprintf(port, sizeof(port), "%d", ev->port);
	/* Text that did not arrive whole says so, first thing. */
	moat_denial_event_marks(ev, marks, sizeof(marks));
	snprintf(reason, sizeof(reason), "%s%s%s%s", marks[0] ? "[" : "",
	    marks, marks[0] ? "] " : "", ev->reason);
	cells[0] = tbuf;
	cells[1] = ev->sandbox;
	cells[2] = ev->stage;
	cells[3] = ev->binary[0] != '\0' ? ev->binary : "?";
	cells[4] = ev->host;
	cells[5] = port;
	cells[6] = reason;
	return moat_cli_table_add(t, cells, max);
}

static int
group_row(const struct moat_store_denial_group *g, void *arg)
{
	static const size_t max[6] = { 0, W_BINARY, W_HOST, 8, 24, 24 };
	struct opts *o = ((void **)arg)[0];
	struct moat_cli_table *t = ((void **)arg)[1];
	char last[24], first[24], count[24], port[16];
	const char *cells[6];

	moat_cli_fmt_time(g->last_ms, last, sizeof(last));
	moat_cli_fmt_time(g->first_ms, first, sizeof(first));
	if (o->json) {
		print_json(json_pack("{s:I, s:o, s:o, s:i, s:I, s:I, s:s, s:s}",
		    "count", (json_int_t)g->count,
		    "binary", moat_render_text(g->binary),
		    "host", moat_render_text(g->host), "port", g->port,
		    "first_ms", (json_int_t)g->first_ms,
		    "last_ms", (json_int_t)g->last_ms, "first", first,
		    "last", last));
		return 0;
	}
	snprintf(count, sizeof(count), "%lld", (long long)g->count);
	snprintf(port, sizeof(port), "%d", g->port);
	cells[0] = count;
	cells[1] = g->binary[0] != '\0' ? g->binary : "?";
	cells[2] = g->host;
	cells[3] = port;
	cells[4] = last;
	cells[5] = first;
	return moat_cli_table_add(t, cells, max);
}

static int
count_sup(const struct moat_store_suppressed *r, void *arg)
{
	*(int64_t *)arg += r->count;
	return 0;
}

/* A suppressed count: a JSON line per minute, or a text line per sandbox. */
static int
sup_row(const struct moat_store_suppressed *r, void *arg)
{
	bool json = *(bool *)arg;
	char why[128], first[24], last[24];

	snprintf(why, sizeof(why), "%lld more denials suppressed (over "
	    "limits.denials_per_minute)", (long long)r->count);
	if (json) {
		print_json(json_pack("{s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:s}",
		    "sandbox", moat_render_text(r->sandbox), "stage",
		    "suppressed", "count", (json_int_t)r->count, "ts_ms",
		    (json_int_t)r->last_ms, "minute_ms",
		    (json_int_t)r->minute_ms, "first_ms",
		    (json_int_t)r->first_ms, "last_ms",
		    (json_int_t)r->last_ms, "reason", why));
		return 0;
	}
	moat_cli_fmt_time(r->first_ms, first, sizeof(first));
	moat_cli_fmt_time(r->last_ms, last, sizeof(last));
	printf("+ %lld more denials of %s suppressed from %s to %s (over "
	    "limits.denials_per_minute)\n", (long long)r->count, r->sandbox,
	    first, last);
	return 0;
}

static int
parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{ "sandbox", required_argument, NULL, 'n' },
		{ "since", required_argument, NULL, 's' },
		{ "binary", required_argument, NULL, 'b' },
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "stage", required_argument, NULL, 'g' },
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ "top", no_argument, NULL, 't' },
		{ "store", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t secs;
	char *end;
	long v;
	int ch;

	o->f.limit = DEFAULT_LIMIT;
	optind = 0;
	while ((ch = getopt_long(argc, argv, "n:s:b:H:p:g:l:jtS:", lopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'n': o->f.sandbox = optarg; break;
		case 'b': o->f.binary = optarg; break;
		case 'H': o->f.host = optarg; break;
		case 'g': o->f.stage = optarg; break;
		case 'j': o->json = true; break;
		case 't': o->top = true; break;
		case 'S': o->store = optarg; break;
		case 's':
			if (moat_parse_duration(optarg, &secs) != 0) {
				fprintf(stderr, "moat denials: --since %s: not "
				    "a duration (90, 15s, 10m, 1h, 7d)\n",
				    optarg);
				return -1;
			}
			o->f.since_ms = moat_wall_ms() - secs * 1000;
			break;
		case 'p':
		case 'l':
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 0 ||
			    (ch == 'p' && v > 65535)) {
				fprintf(stderr, "moat denials: %s: not a "
				    "number\n", optarg);
				return -1;
			}
			if (ch == 'p')
				o->f.port = (int)v;
			else
				o->f.limit = (size_t)v;
			break;
		default:
			return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

static int
denials_exec(int argc, char **argv)
{
	static const char *const head[7] = { "TIME", "SANDBOX", "STAGE",
		"BINARY", "HOST", "PORT", "REASON" };
	static const char *const thead[6] = { "COUNT", "BINARY", "HOST",
		"PORT", "LAST SEEN", "FIRST SEEN" };
	struct moat_cause cause = { { 0 } };
	struct moat_store *s = NULL;
	struct moat_cli_table *t;
	struct opts o = { .json = false };
	int64_t nsup = 0;
	void *ctx[2] = { &o, NULL };
	int r;

	if (parse_opts(argc, argv, &o) != 0)
		return moat_cli_usage(&moat_cmd_denials);
	t = o.top ? moat_cli_table_new(thead, 6) : moat_cli_table_new(head, 7);
	if (t == NULL) {
		fprintf(stderr, "moat denials: out of memory\n");
		return MOAT_EXIT_SYSTEM;
	}
	ctx[1] = t;
	if ((s = moat_cli_store_open("denials", o.store)) == NULL) {
		moat_cli_table_free(t);
		return MOAT_EXIT_SYSTEM;
	}
	if (o.top)
		r = moat_store_denials_top(s, &o.f, group_row, ctx, &cause);
	else
		r = moat_store_denials_query(s, &o.f, denial_row, ctx, &cause);
	if (r == 0)
		r = moat_store_suppressed_totals(s, o.f.sandbox,
		    MOAT_STORE_SUPPRESSED_DENIALS, o.f.since_ms, count_sup,
		    &nsup, &cause);
	if (r != 0) {
		fprintf(stderr, "moat denials: %s\n", moat_cause_str(&cause, r));
		moat_store_close(s);
		moat_cli_table_free(t);
		return MOAT_EXIT_SYSTEM;
	}
	if (!o.json && moat_cli_table_rows(t) == 0 && nsup == 0)
		fprintf(stderr, "moat denials: no denials match\n");
	else if (!o.json && moat_cli_table_rows(t) > 0)
		moat_cli_table_print(t, stdout);
	moat_cli_table_free(t);
	/* After the rows: per minute in JSON, per sandbox in text. */
	if (nsup > 0 && o.json)
		moat_store_suppressed_list(s, o.f.sandbox,
		    MOAT_STORE_SUPPRESSED_DENIALS, o.f.since_ms, sup_row, &o.json,
		    NULL);
	else if (nsup > 0)
		moat_store_suppressed_totals(s, o.f.sandbox,
		    MOAT_STORE_SUPPRESSED_DENIALS, o.f.since_ms, sup_row, &o.json,
		    NULL);
	moat_store_close(s);
	return 0;
}

const struct moat_cli_cmd moat_cmd_denials = {
	"denials",
	"denials [--sandbox NAME] [--since 1h] [--binary PATH] [--host H]"
	" [--port N] [--stage S] [--limit N] [--json] [--store PATH]\n"
	"denials --top [the same options]",
	"recent denials, newest first (--limit 100; 0 = all), or grouped "
	"counts with --top",
	denials_exec,
};
