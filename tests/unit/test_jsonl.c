/*
 * common/jsonl: partial reads, overlong lines, the bounded write queue,
 * fds along lines.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/jsonl.h"
#include "common/util.h"
#include "tests/unit/tap.h"

/* Read until a line, an overlong report or EOF (bounded); 1, 0 or r. */
static int
next_line(struct moat_jsonl *j, const char **line, size_t *len)
{
	int r;

	for (int i = 0; i < 100000; i++) {
		if ((r = moat_jsonl_next(j, line, len)) != 0)
			return r;
		if (moat_jsonl_eof(j))
			return 0;
		if ((r = moat_jsonl_read(j, NULL)) < 0 && r != MOAT_ERR_AGAIN)
			return r;
	}
	return 0;
}

/* A child writes buf to fd (blocking), then exits. */
static pid_t
writer(int fd, const char *buf, size_t n, int close_fd)
{
	pid_t pid = fork();

	if (pid == 0) {
		close(close_fd);
		_exit(moat_write_all(fd, buf, n) == 0 ? 0 : 1);
	}
	return pid;
}

static void
test_partial(void)
{
	struct moat_jsonl *j;
	const char *line = NULL;
	size_t len = 0;
	int sv[2];

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	moat_fd_nonblock(sv[0]);
	j = moat_jsonl_new(sv[0]);
	moat_write_all(sv[1], "{\"a\"", 4);
	is_int(moat_jsonl_read(j, NULL), 1, "a partial line is read");
	is_int(moat_jsonl_next(j, &line, &len), 0, "and is not a line yet");
	is_int(moat_jsonl_read(j, NULL), MOAT_ERR_AGAIN,
	    "nothing more: MOAT_ERR_AGAIN");
	moat_write_all(sv[1], ":1}\n\n{\"b\":2}\n{\"c\"", 17);
	moat_jsonl_read(j, NULL);
	ok(moat_jsonl_next(j, &line, &len) == 1 && len == 7 &&
	    memcmp(line, "{\"a\":1}", 7) == 0, "joined across reads");
	ok(moat_jsonl_next(j, &line, &len) == 1 && len == 7 &&
	    memcmp(line, "{\"b\":2}", 7) == 0, "empty line skipped");
	is_int(moat_jsonl_next(j, &line, &len), 0, "the rest waits");
	moat_write_all(sv[1], ":3}", 3);
	close(sv[1]);
	moat_jsonl_read(j, NULL);
	is_int(moat_jsonl_read(j, NULL), 0, "EOF");
	ok(moat_jsonl_eof(j), "eof is remembered");
	ok(moat_jsonl_next(j, &line, &len) == 1 && len == 7 &&
	    memcmp(line, "{\"c\":3}", 7) == 0, "a last line needs no newline");
	is_int(moat_jsonl_next(j, &line, &len), 0, "then nothing");
	moat_jsonl_free(j);
	close(sv[0]);
}

static void
test_overlong(void)
{
	size_t big = MOAT_JSONL_MAX_LINE + 1, n = 0;
	char *buf = malloc(2 * big + 64);
	struct moat_jsonl *j;
	const char *line = NULL;
	size_t len = 0;
	int sv[2], st = -1;
	pid_t pid;

	/* One line of exactly the limit, one over it, then a normal one. */
	memset(buf, 'x', big - 1);
	buf[big - 1] = '\n';
	n = big;
	memset(buf + n, 'y', big);
	n += big;
	memcpy(buf + n, "\n{\"after\":1}\n", 13);
	n += 13;
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	pid = writer(sv[1], buf, n, sv[0]);
	close(sv[1]);
	j = moat_jsonl_new(sv[0]);
	ok(next_line(j, &line, &len) == 1 && len == MOAT_JSONL_MAX_LINE &&
	    line[0] == 'x' && line[len - 1] == 'x',
	    "a line of exactly the limit is a line");
	is_int(next_line(j, &line, &len), MOAT_ERR_INVALID,
	    "a line over the limit is reported");
	ok(next_line(j, &line, &len) == 1 && len == 11 &&
	    memcmp(line, "{\"after\":1}", 11) == 0,
	    "the line after it is read as usual");
	is_int(next_line(j, &line, &len), 0, "then EOF");
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the writer wrote it all");
	moat_jsonl_free(j);
	close(sv[0]);

	/* Over the limit at EOF, without a newline: reported once. */
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	pid = writer(sv[1], buf + big, big, sv[0]);
	close(sv[1]);
	j = moat_jsonl_new(sv[0]);
	is_int(next_line(j, &line, &len), MOAT_ERR_INVALID,
	    "an overlong last line is reported");
	is_int(next_line(j, &line, &len), 0, "once");
	waitpid(pid, NULL, 0);
	moat_jsonl_free(j);
	close(sv[0]);
	free(buf);
}

static void
test_queue(void)
{
	size_t linelen = 1u << 20, sent = 0, got = 0;
	char *big = malloc(linelen + 1);
	struct moat_jsonl *w, *rd;
	const char *line = NULL;
	size_t len = 0;
	json_t *o;
	bool order = true;
	int sv[2], r = 0;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	moat_fd_nonblock(sv[0]);
	moat_fd_nonblock(sv[1]);
	w = moat_jsonl_new(sv[0]);
	rd = moat_jsonl_new(sv[1]);
	memset(big, 'q', linelen);
	big[linelen] = '\0';
	/* Nobody reads: lines queue until the bound, whole or not at all. */
	for (int i = 0; i < 100; i++) {
		o = json_pack("{s:i, s:s}", "n", i, "pad", big);
		r = moat_jsonl_send(w, o);
		json_decref(o);
		if (r != 0)
			break;
		sent++;
	}
	is_int(r, MOAT_ERR_AGAIN, "a full queue refuses the next line");
	ok(moat_jsonl_pending(w) <= MOAT_JSONL_MAX_QUEUE,
	    "queued bytes stay under the bound (%zu)", moat_jsonl_pending(w));
	ok(sent > 2 && sent < 100, "%zu lines were taken", sent);
	is_int(moat_jsonl_flush(w), MOAT_ERR_AGAIN, "flush would block");
	/* Now read everything, flushing as room appears. */
	for (int i = 0; i < 1000000 && got < sent; i++) {
		moat_jsonl_flush(w);
		moat_jsonl_read(rd, NULL);
		while (moat_jsonl_next(rd, &line, &len) == 1) {
			o = json_loadb(line, len, 0, NULL);
			if (json_integer_value(json_object_get(o, "n")) !=
			    (json_int_t)got || strlen(json_string_value(
			    json_object_get(o, "pad"))) != linelen)
				order = false;
			json_decref(o);
			got++;
		}
	}
	is_int((int)got, (int)sent, "every queued line arrives");
	ok(order, "whole and in order");
	is_int(moat_jsonl_flush(w), MOAT_OK, "the queue is empty");
	is_int((int)moat_jsonl_pending(w), 0, "nothing pending");

	/* Refused outright: a line over the limit, a line with '\n'. */
	is_int(moat_jsonl_send_line(w, "a\nb", 3), MOAT_ERR_INVALID,
	    "a line holding a newline is refused");
	big = realloc(big, MOAT_JSONL_MAX_LINE + 2);
	memset(big, 'z', MOAT_JSONL_MAX_LINE + 1);
	big[MOAT_JSONL_MAX_LINE + 1] = '\0';
	o = json_pack("{s:s}", "z", big);
	is_int(moat_jsonl_send(w, o), MOAT_ERR_INVALID,
	    "a line over the limit is refused");
	json_decref(o);
	is_int((int)moat_jsonl_pending(w), 0, "and leaves nothing queued");

	/* The peer is gone: an error, not SIGPIPE. */
	moat_jsonl_free(rd);
	close(sv[1]);
	o = json_pack("{s:s}", "type", "x");
	is_int(moat_jsonl_send(w, o), MOAT_ERR_SYSTEM, "peer gone: an error");
	json_decref(o);
	moat_jsonl_free(w);
	close(sv[0]);
	free(big);
}

struct pumped {
	int lines;
	int overlong;
	size_t bytes;
};

static void
on_line(void *arg, const char *line, size_t len)
{
	struct pumped *p = arg;

	if (line == NULL)
		p->overlong++;
	else
		p->lines++;
	p->bytes += len;
}

static void
test_pump(void)
{
	struct pumped p = { 0 };
	struct moat_jsonl *j;
	int sv[2], r;

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	moat_fd_nonblock(sv[0]);
	j = moat_jsonl_new(sv[0]);
	moat_write_all(sv[1], "{}\n{\"a\":1}\n{", 13);
	r = moat_jsonl_pump(j, 64, on_line, &p, NULL);
	ok(r == MOAT_ERR_AGAIN && p.lines == 2 && p.bytes == 9,
	    "pump hands over complete lines, then waits");
	moat_write_all(sv[1], "}", 1);
	close(sv[1]);
	r = moat_jsonl_pump(j, 64, on_line, &p, NULL);
	ok(r == 0 && p.lines == 3 && p.overlong == 0,
	    "at EOF the last line is handed over and pump says 0");
	moat_jsonl_free(j);
	close(sv[0]);
}

static void
test_decode(void)
{
	struct moat_cause c = { { 0 } };
	json_t *o = NULL;

	is_int(moat_jsonl_decode("{\"type\":\"ping\",\"seq\":1}", 23, &o, &c),
	    0, "an object decodes");
	is_str(moat_jsonl_type(o), "ping", "its type");
	json_decref(o);
	o = NULL;
	is_int(moat_jsonl_decode("[1]", 3, &o, &c), MOAT_ERR_INVALID,
	    "an array is not a message");
	like_str(c.msg, "not a JSON object", "cause says so");
	is_int(moat_jsonl_decode("{\"a\":1,\"a\":2}", 13, &o, &c),
	    MOAT_ERR_INVALID, "duplicate keys are refused");
	is_int(moat_jsonl_decode("{nope", 5, &o, &c), MOAT_ERR_INVALID,
	    "garbage is refused");
	like_str(c.msg, "column", "cause names the column");
	ok(o == NULL, "nothing returned on error");
	ok(moat_jsonl_type(NULL) == NULL, "no type for no message");
}

/* Is fd open on the pipe whose other end is w (write, read back)? */
static bool
same_pipe(int fd, int w)
{
	char c = 0;

	return write(w, "x", 1) == 1 && read(fd, &c, 1) == 1 && c == 'x';
}

/*
 * fds that cannot all arrive (the receiver is at its open-files limit):
 * the kernel drops them and says MSG_CTRUNC; the read fails rather than
 * counting on and giving a later line an earlier line's fds.
 */
static void
test_fds_truncated(void)
{
	struct moat_jsonl *tx, *rx;
	struct rlimit old, low;
	int sv[2], p[2], r;
	json_t *o;

	if (!ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0 &&
	    pipe2(p, O_CLOEXEC) == 0 && getrlimit(RLIMIT_NOFILE, &old) == 0,
	    "setup (truncated fds)"))
		return;
	tx = moat_jsonl_new(sv[0]);
	rx = moat_jsonl_new(sv[1]);
	moat_jsonl_recv_fds(rx);
	o = json_pack("{s:s, s:i}", "type", "two", "fd_seq", 0);
	is_int(moat_jsonl_send_fds(tx, o, (int[]){ p[0], p[1] }, 2), 0,
	    "a line with two fds");
	json_decref(o);
	/* Room for one more fd only: the lowest free one is the last. */
	if ((r = dup(sv[0])) >= 0)
		close(r);
	low = old;
	low.rlim_cur = (rlim_t)r + 1;
	ok(r > 0 && setrlimit(RLIMIT_NOFILE, &low) == 0,
	    "open files limited to %d", r + 1);
	r = moat_jsonl_read(rx, NULL);
	setrlimit(RLIMIT_NOFILE, &old);
	is_int(r, MOAT_ERR_SYSTEM, "fds dropped on the way: the read fails");
	moat_jsonl_free(tx);
	moat_jsonl_free(rx);
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
}

static void
test_fds(void)
{
	struct moat_jsonl *tx, *rx;
	int sv[2], p1[2], p2[2], got[2] = { -1, -1 };
	unsigned long long seq;
	const char *line;
	size_t len;
	json_t *o;

	ok(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0 &&
	    pipe2(p1, O_CLOEXEC) == 0 && pipe2(p2, O_CLOEXEC) == 0, "setup");
	tx = moat_jsonl_new(sv[0]);
	rx = moat_jsonl_new(sv[1]);
	moat_jsonl_recv_fds(rx);
	/* A plain line, a line with two fds, a line with one. */
	o = json_pack("{s:s}", "type", "plain");
	is_int(moat_jsonl_send(tx, o), 0, "plain line");
	json_decref(o);
	seq = moat_jsonl_fd_seq(tx);
	is_int((int)seq, 0, "first fd is number 0");
	o = json_pack("{s:s, s:I}", "type", "two", "fd_seq", (json_int_t)seq);
	is_int(moat_jsonl_send_fds(tx, o, (int[]){ p1[0], p2[0] }, 2), 0,
	    "a line with two fds");
	json_decref(o);
	is_int((int)moat_jsonl_fd_seq(tx), 2, "two fds counted");
	o = json_pack("{s:s, s:i}", "type", "one", "fd_seq", 2);
	is_int(moat_jsonl_send_fds(tx, o, (int[]){ p1[0] }, 1), 0,
	    "a line with one fd");
	json_decref(o);
	is_int(next_line(rx, &line, &len), 1, "plain arrives");
	is_int(next_line(rx, &line, &len), 1, "the line with fds arrives");
	ok(len > 0 && memmem(line, len, "\"two\"", 5) != NULL, "in order");
	is_int(moat_jsonl_take_fds(rx, 0, got, 2), 0, "its fds are there");
	ok(same_pipe(got[0], p1[1]) && same_pipe(got[1], p2[1]),
	    "and they are the pipes sent, in order");
	close(got[0]);
	close(got[1]);
	is_int(moat_jsonl_take_fds(rx, 0, got, 1), MOAT_ERR_NOTFOUND,
	    "taken fds are gone");
	is_int(next_line(rx, &line, &len), 1, "the third line");
	is_int(moat_jsonl_take_fds(rx, 2, got, 2), MOAT_ERR_NOTFOUND,
	    "more fds than arrived: none taken");
	is_int(moat_jsonl_take_fds(rx, 2, got, 1), 0, "its one fd");
	ok(same_pipe(got[0], p1[1]), "the first pipe again");
	close(got[0]);
	/* Something queued: fds must not overtake it. */
	{
		size_t big = 4 << 20;
		char *b = malloc(big);

		moat_fd_nonblock(sv[0]);
		memset(b, 'a', big);
		b[0] = '"';
		b[big - 1] = '"';
		is_int(moat_jsonl_send_line(tx, b, big), 0, "a big line");
		ok(moat_jsonl_pending(tx) > 0, "is partly queued");
		o = json_pack("{s:s, s:i}", "type", "late", "fd_seq", 3);
		is_int(moat_jsonl_send_fds(tx, o, (int[]){ p1[0] }, 1),
		    MOAT_ERR_AGAIN, "a line with fds waits for the queue");
		is_int((int)moat_jsonl_fd_seq(tx), 3, "and spends no number");
		json_decref(o);
		free(b);
	}
	moat_jsonl_free(tx);
	moat_jsonl_free(rx);
	close(sv[0]);
	close(sv[1]);
	for (int i = 0; i < 2; i++) {
		close(p1[i]);
		close(p2[i]);
	}
}

int
main(void)
{
	signal(SIGPIPE, SIG_DFL);
	test_partial();
	test_overlong();
	test_queue();
	test_pump();
	test_decode();
	test_fds();
	test_fds_truncated();
	return done_testing();
}
