#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/event.h"
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
	moat_loop_free(l);
	return done_testing();
}
