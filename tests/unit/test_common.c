#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/escape.h"
#include "common/event.h"
#include "common/jsonl.h"
#include "common/loop.h"
#include "common/util.h"
#include "tests/unit/tap.h"

static void
fire(struct moat_loop *l, void *arg)
{
	(*(int *)arg)++;
	moat_loop_stop(l);
}

static void
on_read(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	char c;

	if (read(fd, &c, 1) == 1)
		*(char *)arg = c;
	moat_loop_del_fd(l, fd);
}

/* Sandbox text that does not fit or is not UTF-8: kept, and marked. */
static void
test_event_text(void)
{
	struct moat_denial_event ev, back;
	struct moat_cause cause = { { 0 } };
	char path[4200], marks[160], *js;
	size_t n;
	json_t *o;

	memset(&ev, 0, sizeof(ev));
	moat_strlcpy(ev.sandbox, "box", sizeof(ev.sandbox));
	moat_strlcpy(ev.stage, "connect", sizeof(ev.stage));
	/* A 4 KiB path of control bytes: six bytes each in JSON. */
	memcpy(path, "/sandbox/", 9);
	memset(path + 9, '\x01', 4080);
	memcpy(path + 4089, "/curl", 6);
	moat_denial_event_set(&ev, MOAT_EVF_BINARY, path);
	n = strlen(ev.binary);
	ok(n == sizeof(ev.binary) - 1, "a 4 KiB path fills the field (%zu)",
	    n);
	ok(strncmp(ev.binary, "/sandbox/", 9) == 0 &&
	    strcmp(ev.binary + n - 5, "/curl") == 0 &&
	    strstr(ev.binary, "...") != NULL,
	    "it keeps its start and its end around ...");
	ok(ev.cut == MOAT_EVF_BIT(MOAT_EVF_BINARY) && ev.escaped == 0,
	    "and is marked cut");
	moat_denial_event_set(&ev, MOAT_EVF_REASON, path);
	moat_denial_event_set(&ev, MOAT_EVF_HOST, "bad\xff\xfe.test");
	is_str(ev.host, "bad\\xff\\xfe.test", "bytes that are not UTF-8 "
	    "read \\xNN");
	ok(ev.escaped == MOAT_EVF_BIT(MOAT_EVF_HOST), "and are marked");
	/* Cut inside a multi-byte character: never half of one. */
	memset(path, 0, sizeof(path));
	for (int i = 0; i < 300; i++)
		memcpy(path + 2 * i, "\xc3\xa9", 2);
	moat_denial_event_set(&ev, MOAT_EVF_ANCESTORS, path);
	ok(moat_utf8_valid(ev.ancestors[0], strlen(ev.ancestors[0])),
	    "a cut ancestor is still UTF-8");
	for (int i = 1; i < MOAT_EV_MAX_ANCESTORS + 2; i++)
		moat_denial_event_set(&ev, MOAT_EVF_ANCESTORS, "/usr/bin/sh");
	ok(ev.nancestors == MOAT_EV_MAX_ANCESTORS &&
	    (ev.cut & MOAT_EVF_BIT(MOAT_EVF_ANCESTORS)),
	    "ancestors beyond the field are marked cut");
	moat_denial_event_marks(&ev, marks, sizeof(marks));
	is_str(marks, "cut: binary, ancestors, reason; not UTF-8: host",
	    "marks for the operator");

	/* The whole event fits one JSON line and keeps its marks. */
	o = moat_denial_event_json(&ev);
	js = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	n = js != NULL ? strlen(js) : 0;
	/* Escaped sixfold it outgrows a 4 KiB line; it still goes whole. */
	ok(n > 4096 && n <= MOAT_JSONL_MAX_LINE,
	    "its JSON is %zu bytes, under the line limit", n);
	ok(moat_denial_event_decode(js, n, &back, &cause) == 0, "decodes");
	free(js);
	ok(back.cut == ev.cut && back.escaped == ev.escaped,
	    "marks survive the channel");
	is_str(back.binary, ev.binary, "the cut path survives");

	/* A field filled without the setter is fixed on the way, marked. */
	memset(&ev, 0, sizeof(ev));
	moat_strlcpy(ev.sandbox, "box", sizeof(ev.sandbox));
	moat_strlcpy(ev.stage, "connect", sizeof(ev.stage));
	moat_strlcpy(ev.binary, "/tmp/\xff/curl", sizeof(ev.binary));
	o = moat_denial_event_json(&ev);
	js = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	ok(js != NULL && moat_denial_event_decode(js, strlen(js), &back,
	    &cause) == 0, "invalid UTF-8 never drops the event");
	free(js);
	is_str(back.binary, "/tmp/\\xff/curl", "the binary is escaped");
	ok(back.escaped == MOAT_EVF_BIT(MOAT_EVF_BINARY), "and marked");
}

/* A 0 ms timer that re-arms itself, next to an always-readable fd. */
struct relay {
	int turns;      /* fd callbacks */
	int fires;      /* timer callbacks */
	int seen[4];    /* turns when each of the first fires ran */
};

static void
count_turn(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	((struct relay *)arg)->turns++;
}

static void
rearm(struct moat_loop *l, void *arg)
{
	struct relay *r = arg;

	if (r->fires < 4)
		r->seen[r->fires] = r->turns;
	if (++r->fires < 4)
		moat_loop_timer(l, 0, rearm, r);
	else
		moat_loop_stop(l);
}

int
main(void)
{
	struct moat_denial_event ev = { 0 }, back;
	struct moat_cause cause = { { 0 } };
	struct moat_loop *l = NULL;
	char *js;
	json_t *o;
	int64_t secs = 0;
	int fired = 0, p[2];
	char got = 0;
	size_t n;

	/* errors */
	is_str(moat_strerror(MOAT_ERR_INVALID), "invalid input", "strerror");
	moat_cause_set(&cause, "x.y[%d]: bad", 2);
	is_str(moat_cause_str(&cause, MOAT_ERR_INVALID), "x.y[2]: bad",
	    "cause text wins over the code");

	/* durations */
	ok(moat_parse_duration("1h", &secs) == 0 && secs == 3600, "1h");
	ok(moat_parse_duration("15m", &secs) == 0 && secs == 900, "15m");
	ok(moat_parse_duration("7d", &secs) == 0 && secs == 604800, "7d");
	ok(moat_parse_duration("1x", &secs) != 0, "1x is refused");
	ok(moat_parse_duration("-1h", &secs) != 0, "negative is refused");
	ok(moat_parse_duration("1hh", &secs) != 0, "1hh is refused");

	/* events round trip */
	ev.ts_ms = 1700000000123;
	moat_strlcpy(ev.sandbox, "dev", sizeof(ev.sandbox));
	moat_strlcpy(ev.stage, "connect", sizeof(ev.stage));
	moat_strlcpy(ev.binary, "/usr/bin/curl", sizeof(ev.binary));
	moat_strlcpy(ev.ancestors[0], "/usr/bin/bash", 256);
	ev.nancestors = 1;
	moat_strlcpy(ev.host, "upstream.test", sizeof(ev.host));
	ev.port = 443;
	moat_strlcpy(ev.reason, "quote \" and\nnewline", sizeof(ev.reason));
	o = moat_denial_event_json(&ev);
	js = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	n = js != NULL ? strlen(js) : 0;
	ok(n > 0 && memchr(js, '\n', n) == NULL, "no newline inside the line");
	ok(moat_denial_event_decode(js, n, &back, &cause) == 0, "decode");
	free(js);
	is_str(back.reason, ev.reason, "reason survives escaping");
	is_str(back.ancestors[0], "/usr/bin/bash", "ancestors survive");
	ok(back.ts_ms == ev.ts_ms && back.port == 443, "numbers survive");
	ok(moat_denial_event_decode("{\"stage\":\"x\"}", 13, &back, &cause) ==
	    MOAT_ERR_INVALID, "missing sandbox is refused");
	ok(moat_denial_event_decode("{nope", 5, &back, &cause) ==
	    MOAT_ERR_INVALID, "bad JSON is refused");
	test_event_text();

	/* loop: fd callback, timer */
	ok(moat_loop_new(&l, NULL) == 0, "loop_new");
	ok(pipe2(p, O_CLOEXEC) == 0, "pipe");
	moat_loop_add_fd(l, p[0], MOAT_EV_READ, on_read, &got);
	ok(write(p[1], "x", 1) == 1, "write");
	moat_loop_timer(l, 20, fire, &fired);
	moat_loop_run(l);
	is_int(got, 'x', "fd callback ran before the timer stopped the loop");
	is_int(fired, 1, "timer fired once");
	close(p[0]);
	close(p[1]);

	/* A timer armed by a timer callback waits for the next turn. */
	{
		struct relay r = { 0 };

		ok(pipe2(p, O_CLOEXEC) == 0 && write(p[1], "x", 1) == 1,
		    "an always-readable pipe");
		moat_loop_add_fd(l, p[0], MOAT_EV_READ, count_turn, &r);
		moat_loop_timer(l, 0, rearm, &r);
		moat_loop_run(l);
		ok(r.seen[0] < r.seen[1] && r.seen[1] < r.seen[2] &&
		    r.seen[2] < r.seen[3], "each re-armed 0 ms timer ran on a "
		    "later turn, after the fds (turns %d %d %d %d)", r.seen[0],
		    r.seen[1], r.seen[2], r.seen[3]);
		moat_loop_del_fd(l, p[0]);
		close(p[0]);
		close(p[1]);
	}
	moat_loop_free(l);
	return done_testing();
}
