/*
 * Floods are bounded per sandbox: the denial cap, the pending-proposal
 * cap and the agent queue (limits.* in moatd's config), each leaving a
 * count of what it kept out. Runs against a temporary store and
 * moatd_new_for_test (no kernel state).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/store.h"
#include "moatd/moatd.h"
#include "tests/unit/ops_fixture.h"
#include "tests/unit/tap.h"

#define POLICY "{\"version\":1,\"network_policies\":{}}"
#define MINUTE 60000LL
#define T0 (1700000000000LL / MINUTE * MINUTE) /* a minute's start */

static void
mkev(struct moat_denial_event *ev, const char *sb, int i, int64_t ts)
{
	memset(ev, 0, sizeof(*ev));
	ev->ts_ms = ts;
	moat_strlcpy(ev->sandbox, sb, sizeof(ev->sandbox));
	moat_strlcpy(ev->binary, "/usr/bin/curl", sizeof(ev->binary));
	snprintf(ev->host, sizeof(ev->host), "h%d.flood.test", i);
	ev->port = 443;
	moat_strlcpy(ev->stage, "connect", sizeof(ev->stage));
	moat_strlcpy(ev->protocol, "tcp", sizeof(ev->protocol));
	moat_strlcpy(ev->reason, "no policy has this endpoint",
	    sizeof(ev->reason));
}

static int64_t
rows(struct moat_store *s, const char *sb)
{
	struct moat_store_denial_filter f = { .sandbox = sb };
	int64_t n = -1;

	moat_store_denials_count(s, &f, &n, NULL);
	return n;
}

static int64_t
pending(struct moat_store *s, const char *sb)
{
	int64_t n = -1;

	moat_store_proposal_pending_count(s, sb, &n, NULL);
	return n;
}

struct sum {
	int64_t count;
	size_t rows;
	char minutes[128];
};

static int
sum_row(const struct moat_store_suppressed *r, void *arg)
{
	struct sum *m = arg;

	m->count += r->count;
	m->rows++;
	snprintf(m->minutes + strlen(m->minutes), sizeof(m->minutes) -
	    strlen(m->minutes), "%lld:%lld;", (long long)((r->minute_ms - T0) /
	    MINUTE), (long long)r->count);
	return 0;
}

static struct sum
suppressed(struct moat_store *s, const char *sb, const char *kind)
{
	struct sum m = { 0 };

	moat_store_suppressed_list(s, sb, kind, 0, sum_row, &m, NULL);
	return m;
}

static int
pending_id(const struct moat_store_proposal *p, void *arg)
{
	int64_t *ids = arg;

	for (int i = 0; i < 5; i++)
		if (ids[i] == 0) {
			ids[i] = p->id;
			return 0;
		}
	return 1;
}

/* The export after the flood: box's counts of what the caps kept out. */
static void
exported_suppressed(const char *path)
{
	const char *stage, *kind;
	json_t *o, *u;
	char line[4096];
	int n = 0, den = 0, props = 0;
	FILE *fp;

	if (!ok((fp = fopen(path, "r")) != NULL, "export file %s", path))
		return;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if ((o = json_loads(line, 0, NULL)) == NULL)
			continue;
		u = json_object_get(o, "unmapped");
		stage = json_string_value(json_object_get(u, "stage"));
		kind = json_string_value(json_object_get(u, "kind"));
		if (stage != NULL && strcmp(stage, "connect") == 0)
			n++;
		if (stage == NULL || strcmp(stage, "suppressed") != 0 ||
		    kind == NULL) {
			json_decref(o);
			continue;
		}
		if (strcmp(kind, MOAT_STORE_SUPPRESSED_DENIALS) == 0) {
			den++;
			is_str(json_string_value(json_object_get(u, "sandbox")),
			    "box", "export: the suppressed denials are box's");
			is_int((int)json_integer_value(json_object_get(o,
			    "count")), 9900, "export: the denials kept out");
			is_int((int)json_integer_value(json_object_get(o,
			    "class_uid")), 4001, "export: as Network Activity");
			ok(json_integer_value(json_object_get(o, "start_time")) ==
			    T0 + 100 && json_integer_value(json_object_get(o,
			    "end_time")) == T0 + 9999,
			    "export: first and last of them");
		} else if (strcmp(kind, MOAT_STORE_SUPPRESSED_PROPOSALS) == 0) {
			props++;
			ok(json_integer_value(json_object_get(o, "count")) > 0 &&
			    json_integer_value(json_object_get(o, "class_uid")) ==
			    5019 && strcmp(json_string_value(json_object_get(o,
			    "state")), "SUPPRESSED") == 0,
			    "export: proposals kept out, as a config change");
		}
		json_decref(o);
	}
	fclose(fp);
	is_int(n, 150, "export: the 150 stored denials");
	is_int(den, 1, "export: one line of suppressed denials");
	is_int(props, 2, "export: proposals kept out of box and other");
}

static void
test_denials(struct ops_fixture *f, struct moatd_aggregator *a,
    struct moat_store *s)
{
	struct moat_denial_event ev;
	struct moatd_export *x;
	struct sum m;
	char path[128];
	int i;

	/* A loop over 10,000 names in one minute, and a quiet sandbox. */
	for (i = 0; i < 10000; i++) {
		mkev(&ev, "box", i, T0 + i);
		moatd_aggregator_add(a, &ev);
	}
	for (i = 0; i < 50; i++) {
		mkev(&ev, "other", i, T0 + i);
		moatd_aggregator_add(a, &ev);
	}
	/* The flush stores them and exports the count (a SIEM sees floods). */
	snprintf(path, sizeof(path), "%s/events.jsonl", f->dir);
	x = NULL;
	ok(moatd_export_open(path, &x, NULL) == 0, "export open");
	moatd_set_exporter_for_test(f->d, x);
	is_int(moatd_aggregator_flush(a), 0, "flush");
	moatd_set_exporter_for_test(f->d, NULL);
	moatd_export_close(x);
	exported_suppressed(path);
	is_int(rows(s, "box"), 100, "the flooding sandbox: 100 rows (its cap)");
	is_int(rows(s, "other"), 50, "the other sandbox is not held back");
	m = suppressed(s, "box", MOAT_STORE_SUPPRESSED_DENIALS);
	is_int(m.count, 9900, "the rest is counted as suppressed");
	is_str(m.minutes, "0:9900;", "in one row for that minute");
	is_int((int)suppressed(s, "other", MOAT_STORE_SUPPRESSED_DENIALS).rows,
	    0, "nothing suppressed for the quiet sandbox");
	/* The next minute has its own allowance. */
	for (i = 0; i < 130; i++) {
		mkev(&ev, "box", 20000 + i, T0 + MINUTE + i);
		moatd_aggregator_add(a, &ev);
	}
	/* A late event of the first minute counts in the current one. */
	mkev(&ev, "box", 30000, T0 + 5);
	moatd_aggregator_add(a, &ev);
	moatd_aggregator_flush(a);
	is_int(rows(s, "box"), 200, "the next minute: 100 more rows");
	m = suppressed(s, "box", MOAT_STORE_SUPPRESSED_DENIALS);
	is_str(m.minutes, "1:30;0:9901;", "and its own suppressed count");
}

static void
test_proposals(struct moatd_aggregator *a, struct moat_store *s)
{
	struct moat_denial_event ev;
	struct moat_cause c = { { 0 } };
	int64_t ids[5] = { 0 };
	int i;

	/* 200 distinct keys reached the store above; the cap is 20. */
	is_int(pending(s, "box"), 20, "pending proposals of box: its cap");
	is_int(suppressed(s, "box", MOAT_STORE_SUPPRESSED_PROPOSALS).count,
	    180, "the other 180 keys are counted once each");
	is_int(pending(s, "other"), 20, "the other sandbox has its own cap");
	for (i = 0; i < 100; i++) {
		mkev(&ev, "box", i, T0 + 2 * MINUTE + i);
		moatd_aggregator_add(a, &ev);
	}
	moatd_aggregator_flush(a);
	is_int(pending(s, "box"), 20, "repeats: still at the cap");
	is_int(suppressed(s, "box", MOAT_STORE_SUPPRESSED_PROPOSALS).count,
	    180, "and a suppressed key is not counted again");
	/* The operator rejects five: five new keys fit again. */
	moat_store_proposal_list(s, "box", MOAT_STORE_PENDING, pending_id,
	    ids, NULL);
	for (i = 0; i < 5; i++)
		moat_store_proposal_set_status(s, ids[i], MOAT_STORE_REJECTED,
		    "alice", NULL, &c);
	is_int(pending(s, "box"), 15, "five rejected");
	for (i = 0; i < 8; i++) {
		mkev(&ev, "box", 40000 + i, T0 + 3 * MINUTE + i);
		moatd_aggregator_add(a, &ev);
	}
	moatd_aggregator_flush(a);
	is_int(pending(s, "box"), 20, "room for five: back at the cap");
	is_int(suppressed(s, "box", MOAT_STORE_SUPPRESSED_PROPOSALS).count,
	    183, "the three over it are suppressed");
}

/* ---- the agent queue ---- */

static int turn;            /* loop turns seen by an always-ready fd */
static int nreplies;
static int reply_turn[8];
static int reply_r[8];
static char reply_err[8][256];

static void
on_ready(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	turn++;
}

static void
on_reply(struct moatd *d, const char *sandbox, int64_t req, int r,
    int64_t id, const char *error)
{
	if (nreplies < 8) {
		reply_turn[nreplies] = turn;
		reply_r[nreplies] = r;
		moat_strlcpy(reply_err[nreplies], error,
		    sizeof(reply_err[nreplies]));
	}
	nreplies++;
}

static void
stop_loop(struct moat_loop *l, void *arg)
{
	moat_loop_stop(l);
}

/* Submit agent request i for sandbox sb. */
static void
submit(struct moatd_agentq *q, const char *sb, int i)
{
	char buf[512];

	snprintf(buf, sizeof(buf), "{\"intent_summary\":\"x\",\"operations\":[{"
	    "\"addRule\":{\"ruleName\":\"r%d\",\"rule\":{\"endpoints\":[{"
	    "\"host\":\"a%d.agent.test\",\"port\":443}],\"binaries\":[{"
	    "\"path\":\"/usr/bin/curl\"}]}}}]}", i, i);
	moatd_agentq_submit(q, sb, i, buf, strlen(buf));
}

static void
test_agent(struct moatd *d, struct moat_store *s, struct moat_loop *l)
{
	struct moatd_aggregator *a = NULL;
	struct moatd_agentq *q = NULL;
	int pfd[2] = { -1, -1 };
	int i;

	moatd_aggregator_new(d, 50, &a, NULL);
	is_int(moatd_agentq_new(d, a, on_reply, &q), 0, "agent queue");
	if (pipe2(pfd, O_CLOEXEC) != 0 || write(pfd[1], "x", 1) != 1 ||
	    moat_loop_add_fd(l, pfd[0], MOAT_EV_READ, on_ready, NULL) != 0) {
		ok(0, "an always-readable fd");
		goto out;
	}
	/* Cap 3 a minute: three wait, the fourth is refused at once. */
	for (i = 0; i < 4; i++)
		submit(q, "agent", i);
	is_int(nreplies, 1, "submitting merges nothing inline: only the "
	    "refusal is answered at once");
	is_int(reply_r[0], MOAT_ERR_AGAIN, "the fourth is over the rate");
	like_str(reply_err[0], "rate_limited: at most 3 proposals a minute",
	    "rate_limited, naming the cap");
	/* box is at its pending cap: queued, then refused when checked. */
	submit(q, "box", 9);
	moat_loop_timer(l, 300, stop_loop, NULL);
	moat_loop_run(l);
	is_int(nreplies, 5, "every request answered once");
	ok(reply_r[1] == 0 && reply_r[2] == 0 && reply_r[3] == 0,
	    "the three within the rate are accepted (%s|%s|%s)", reply_err[1],
	    reply_err[2], reply_err[3]);
	ok(reply_turn[1] < reply_turn[2] && reply_turn[2] < reply_turn[3] &&
	    reply_turn[3] < reply_turn[4], "one per loop turn (turns %d %d %d "
	    "%d): the loop reads its fds in between", reply_turn[1],
	    reply_turn[2], reply_turn[3], reply_turn[4]);
	is_int(reply_r[4], MOAT_ERR_AGAIN, "an agent over the pending cap");
	like_str(reply_err[4], "limits.pending_proposals", "is told why");
	is_int(pending(s, "agent"), 3, "three agent proposals pending");
	is_int(pending(s, "box"), 20, "box stays at its cap");
	moatd_aggregator_flush(a);
	is_int(suppressed(s, "agent", MOAT_STORE_SUPPRESSED_AGENT).count, 1,
	    "the rate refusal is counted");
	is_int(suppressed(s, "box", MOAT_STORE_SUPPRESSED_AGENT).count, 1,
	    "and the pending-cap refusal");
	submit(q, "other", 20);
	is_int(nreplies, 5, "a new request waits for its turn");
	moatd_agentq_free(q);
	q = NULL;
	is_int(nreplies, 6, "a request still waiting is answered at free");
out:
	moatd_agentq_free(q);
	moatd_aggregator_free(a);
	if (pfd[0] >= 0)
		moat_loop_del_fd(l, pfd[0]);
	moat_close(pfd[0]);
	moat_close(pfd[1]);
}

int
main(void)
{
	struct ops_fixture f;
	struct moat_cause c = { { 0 } };
	struct moatd_aggregator *a = NULL;

	moat_log_init("test_ops_floods", MOAT_LOG_FATAL);
	if (!ops_fixture_open(&f, "floods"))
		return done_testing();
	moatd_set_limits_for_test(f.d, 100, 20, 3);
	ok(moatd_add_sandbox_for_test(f.d, "box", POLICY, &c) == 0 &&
	    moatd_add_sandbox_for_test(f.d, "other", POLICY, &c) == 0 &&
	    moatd_add_sandbox_for_test(f.d, "agent", POLICY, &c) == 0,
	    "sandboxes (%s)", c.msg);
	if (moatd_aggregator_new(f.d, 50, &a, &c) == 0) {
		test_denials(&f, a, f.s);
		test_proposals(a, f.s);
	} else
		ok(0, "aggregator: %s", c.msg);
	moatd_aggregator_free(a);
	test_agent(f.d, f.s, f.l);
	ops_fixture_close(&f);
	return done_testing();
}
