#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sessions/session.h"
#include "sshd/relay.h"
#include "sshd/sshd.h"
#include "tests/unit/tap.h"

#define SECRET "unit-secret"

static void
test_relay(void)
{
	struct moat_relay_cache *rc = NULL;
	struct moat_cause cause = { "" };
	char line[2048], sb[128], copy[2048];
	int n, st;
	pid_t p;

	ok(moat_relay_cache_new(4, &rc, &cause) == 0, "nonce cache made");
	n = moat_relay_preface_make("box", SECRET, line, sizeof(line));
	ok(n > 0 && line[n - 1] == '\n', "preface made with newline");
	line[n - 1] = '\0';
	strcpy(copy, line);
	/* A forked connection uses the nonce first: the parent must refuse it. */
	if ((p = fork()) == 0)
		_exit(moat_relay_preface_verify(line, SECRET, 300, time(NULL),
		    rc, sb, sizeof(sb), NULL) == 0 ? 0 : 1);
	waitpid(p, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child accepts the preface");
	is_int(moat_relay_preface_verify(copy, SECRET, 300, time(NULL), rc, sb,
	    sizeof(sb), &cause), MOAT_ERR_DENIED, "replay in another process refused");
	is_str(cause.msg, "nonce replayed", "cause says replayed");

	n = moat_relay_preface_make("box", SECRET, line, sizeof(line));
	line[n - 1] = '\0';
	is_int(moat_relay_preface_verify(line, "other", 300, time(NULL), rc, sb,
	    sizeof(sb), &cause), MOAT_ERR_DENIED, "wrong secret refused");
	is_int(moat_relay_preface_verify(line, SECRET, 300, time(NULL) + 301,
	    rc, sb, sizeof(sb), &cause), MOAT_ERR_DENIED, "stale timestamp refused");
	ok(moat_relay_preface_verify(line, SECRET, 300, time(NULL), rc, sb,
	    sizeof(sb), &cause) == 0, "fresh preface accepted");
	is_str(sb, "box", "sandbox name returned");
	is_int(moat_relay_preface_verify("MOAT1 box 1 2", SECRET, 300,
	    time(NULL), rc, sb, sizeof(sb), &cause), MOAT_ERR_INVALID,
	    "malformed line refused");
	/*
	 * A fresh, well-formed preface whose only fault is its HMAC: one
	 * hex digit changed to another hex digit.
	 */
	n = moat_relay_preface_make("box", SECRET, line, sizeof(line));
	line[n - 1] = '\0';
	strcpy(copy, line);
	line[n - 2] = line[n - 2] == '0' ? '1' : '0';
	is_int(moat_relay_preface_verify(line, SECRET, 300, time(NULL), rc, sb,
	    sizeof(sb), &cause), MOAT_ERR_DENIED, "tampered hmac refused");
	is_str(cause.msg, "bad signature", "cause says bad signature");
	ok(moat_relay_preface_verify(copy, SECRET, 300, time(NULL), rc, sb,
	    sizeof(sb), &cause) == 0, "the same line with its own hmac is "
	    "accepted (its nonce was fresh)");
	ok(moat_relay_preface_make("bad name", SECRET, line, sizeof(line)) < 0,
	    "sandbox names with spaces are not signed");
	/* Fill the 4 slots: the fifth fresh nonce is refused, not evicted. */
	for (int i = 0; i < 1; i++) {
		n = moat_relay_preface_make("box", SECRET, line, sizeof(line));
		line[n - 1] = '\0';
		(void)moat_relay_preface_verify(line, SECRET, 300, time(NULL),
		    rc, sb, sizeof(sb), NULL);
	}
	n = moat_relay_preface_make("box", SECRET, line, sizeof(line));
	line[n - 1] = '\0';
	is_int(moat_relay_preface_verify(line, SECRET, 300, time(NULL), rc, sb,
	    sizeof(sb), &cause), MOAT_ERR_AGAIN, "full cache refuses");
	moat_relay_cache_free(rc);
}

static void
test_sessions(void)
{
	struct moat_winsize ws = { .rows = 40, .cols = 132 };
	struct winsize w;
	int m = -1, s = -1, c[3], p[3];

	ok(moat_env_allowed("LANG") && moat_env_allowed("LC_ALL") &&
	    moat_env_allowed("TERM") && moat_env_allowed("COLORTERM"),
	    "LANG, LC_*, TERM, COLORTERM allowed");
	ok(!moat_env_allowed("LD_PRELOAD") && !moat_env_allowed("PATH") &&
	    !moat_env_allowed("BASH_ENV") && !moat_env_allowed("LC_") &&
	    !moat_env_allowed("LC_x"), "LD_PRELOAD, PATH, BASH_ENV refused");
	is_int(moat_signal_from_name("INT"), SIGINT, "INT maps to SIGINT");
	is_int(moat_signal_from_name("SEGV"), -1, "SEGV cannot be sent");
	is_str(moat_signal_name(SIGTERM), "TERM", "exit-signal name has no SIG");
	ok(moat_pty_open(&ws, &m, &s, NULL) == 0, "pty opened");
	ok((fcntl(m, F_GETFD) & FD_CLOEXEC) && (fcntl(s, F_GETFD) & FD_CLOEXEC),
	    "pty fds close-on-exec");
	ws.cols = 99;
	ok(moat_pty_resize(m, &ws) == 0 && ioctl(s, TIOCGWINSZ, &w) == 0 &&
	    w.ws_col == 99 && w.ws_row == 40, "pty resize visible on the slave");
	close(m);
	close(s);
	ok(moat_pipes_open(c, p, NULL) == 0, "pipes opened");
	ok(write(p[0], "x", 1) == 1, "parent writes the child's stdin");
	ok((fcntl(p[1], F_GETFL) & O_NONBLOCK) && (fcntl(c[1], F_GETFD) &
	    FD_CLOEXEC), "parent ends nonblocking, all close-on-exec");
	moat_fds_close(c, 3);
	moat_fds_close(p, 3);
	is_int(c[0] + p[2], -2, "fds reset to -1");
}

static void
test_hostkey(void)
{
	char dir[] = "/tmp/moat-hk.XXXXXX", path[256];
	struct stat st1, st2;

	if (mkdtemp(dir) == NULL) {
		skip("mkdtemp failed");
		return;
	}
	snprintf(path, sizeof(path), "%s/key", dir);
	ok(moat_sshd_hostkey_ensure(path, NULL) == 0 && stat(path, &st1) == 0,
	    "host key generated");
	is_int(st1.st_mode & 0777, 0600, "host key mode 0600");
	ok(moat_sshd_hostkey_ensure(path, NULL) == 0 && stat(path, &st2) == 0 &&
	    st1.st_ino == st2.st_ino && st1.st_mtime == st2.st_mtime,
	    "existing host key kept");
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	test_relay();
	test_sessions();
	test_hostkey();
	return done_testing();
}
