/*
 * The SSH monitor (sshd/monitor.c) driven over its socketpair directly:
 * a forked "session process" sends requests, a forked monitor answers.
 * Every request out of its state, and malformed ones, must end the
 * connection: the monitor exits with MOAT_ERR_DENIED and kills the
 * session process (once it knows its pid from HELLO).
 */
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "sshd/monitor.h"
#include "sshd/relay.h"
#include "sshd/sshd.h"
#include "tests/unit/tap.h"

#define KEYTYPE "ssh-ed25519"
#define KEY "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
#define OTHER "AAAAC3NzaC1lZDI1NTE5AAAAIBYjvl4bAF0I6Yq6OflEWoZiCJrCz2lvHZ3lJLaGxCk4"
#define SECRET "unit-secret"
#define DENIED_EXIT 42
#define EOF_EXIT 7

static int rec_fd = -1;		/* session records, written by the hooks */
static struct moat_sshd_config cfg;

static bool
h_authorized(void *arg, const char *sb, const char *type, const char *b64)
{
	return strcmp(sb, "box") == 0 && strcmp(type, KEYTYPE) == 0 &&
	    strcmp(b64, KEY) == 0;
}

static bool
h_exists(void *arg, const char *sb)
{
	return strcmp(sb, "box") == 0 || strcmp(sb, "other") == 0;
}

static int
h_spawn(void *arg, const char *sb, const struct moat_sshd_spawn *s,
    pid_t *pid, struct moat_cause *cause)
{
	pid_t p = fork();

	if (p < 0)
		return MOAT_ERR_SYSTEM;
	if (p == 0) {
		for (int i = 0; i < 3; i++)
			dup2(s->fds[i], i);
		execl("/bin/sh", "sh", "-c", s->command ? s->command : "exit 0",
		    (char *)NULL);
		_exit(127);
	}
	*pid = p;
	return 0;
}

static void
h_start(void *arg, const char *sb, const char *who, const char *from,
    const char *kind, int64_t *id)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "start %s %s %s\n", sb, who, kind);

	*id = 1;
	(void)!write(rec_fd, line, (size_t)n);
}

static void
h_end(void *arg, int64_t id, int status, const char *sig)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "end %d\n", status);

	(void)!write(rec_fd, line, (size_t)n);
}

static const struct moat_sshd_hooks hooks = {
	NULL, h_authorized, h_exists, h_spawn, NULL, h_start, h_end, NULL,
	NULL,
};

/* ---- the session side ---- */

static void
send_msg(int fd, struct mon_msg *m)
{
	if (mon_send(fd, m) != 0)
		_exit(90);
	mon_msg_free(m);
}

static void
hello(int fd)
{
	struct mon_msg m;

	mon_msg_init(&m, MON_HELLO);
	send_msg(fd, &m);
}

static void
auth(int fd, const char *user, const char *key, bool probe)
{
	struct mon_msg m;

	mon_msg_init(&m, MON_AUTH);
	mon_put_u32(&m, probe);
	mon_put_str(&m, user);
	mon_put_str(&m, KEYTYPE);
	mon_put_str(&m, key);
	send_msg(fd, &m);
}

/* The next reply's u32 after its type; exits EOF_EXIT at EOF. */
static uint32_t
reply_u32(int fd, struct mon_msg *r)
{
	uint32_t type, v = 99;

	if (mon_recv(fd, r, false) == MOAT_ERR_NOTFOUND)
		_exit(EOF_EXIT);
	if (!mon_get_type(r, &type) || !mon_get_u32(r, &v))
		_exit(91);
	return v;
}

static uint32_t
auth_ok(int fd, const char *user, const char *key, bool probe)
{
	struct mon_msg r;
	uint32_t v;

	auth(fd, user, key, probe);
	v = reply_u32(fd, &r);
	mon_msg_free(&r);
	return v;
}

static void
wait_end(int fd)
{
	struct mon_msg r;

	/* The monitor either kills us or closes the channel. */
	for (int i = 0; i < 100; i++)
		if (mon_recv(fd, &r, false) == MOAT_ERR_NOTFOUND)
			_exit(EOF_EXIT);
	_exit(92);
}

static void
simple(int fd, uint32_t type)
{
	struct mon_msg m;

	mon_msg_init(&m, type);
	send_msg(fd, &m);
}

static void
logged_in(int fd)
{
	hello(fd);
	if (auth_ok(fd, "box", KEY, false) != 1)
		_exit(93);
}

/* A spawn of `cmd` on three pipes; env entries as given. */
static void
spawn(int fd, const char *cmd, const char *env, int kinds)
{
	int p[2], s[2], fds[3];
	struct mon_msg m;

	if (pipe2(p, O_CLOEXEC) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) != 0)
		_exit(94);
	for (int i = 0; i < 3; i++)
		fds[i] = kinds == 0 ? p[i == 0 ? 0 : 1] : s[0];
	mon_msg_init(&m, MON_SPAWN);
	mon_put_u32(&m, MON_KIND_EXEC);
	mon_put_str(&m, cmd);
	mon_put_u32(&m, env != NULL);
	if (env != NULL)
		mon_put_str(&m, env);
	for (int i = 0; i < 3; i++)
		mon_put_fd(&m, fds[i]);
	send_msg(fd, &m);
}

/* ---- scripts: each is one session process ---- */

static void s_auth_before_hello(int fd) { auth(fd, "box", KEY, true);
	wait_end(fd); }
static void s_auth_in_preface(int fd) { hello(fd); auth(fd, "box", KEY,
	true); wait_end(fd); }
static void s_hello_twice(int fd) { hello(fd); hello(fd); wait_end(fd); }
static void s_spawn_preauth(int fd) { hello(fd); spawn(fd, "true", NULL, 0);
	wait_end(fd); }
static void s_pty_preauth(int fd) { hello(fd); simple(fd, MON_PTY);
	wait_end(fd); }
static void s_wait_preauth(int fd) { struct mon_msg m; hello(fd);
	mon_msg_init(&m, MON_WAIT); mon_put_u32(&m, 1); send_msg(fd, &m);
	wait_end(fd); }
static void s_dial_preauth(int fd) { struct mon_msg m; hello(fd);
	mon_msg_init(&m, MON_DIAL); mon_put_str(&m, "127.0.0.1");
	mon_put_u32(&m, 22); send_msg(fd, &m); wait_end(fd); }
static void s_relay_not_relay(int fd) { struct mon_msg m; hello(fd);
	mon_msg_init(&m, MON_RELAY); mon_put_str(&m, "MOAT1 x"); send_msg(fd, &m);
	wait_end(fd); }
static void s_auth_after_auth(int fd) { logged_in(fd);
	auth(fd, "box", KEY, false); wait_end(fd); }
static void s_unknown(int fd) { hello(fd); simple(fd, 77); wait_end(fd); }
static void s_trailing(int fd) { struct mon_msg m; hello(fd);
	mon_msg_init(&m, MON_AUTH); mon_put_u32(&m, 1); mon_put_str(&m, "box");
	mon_put_str(&m, KEYTYPE); mon_put_str(&m, KEY); mon_put_u32(&m, 5);
	send_msg(fd, &m); wait_end(fd); }
static void s_short(int fd) { struct mon_msg m; hello(fd);
	mon_msg_init(&m, MON_AUTH); mon_put_u32(&m, 1); mon_put_u32(&m, 4000);
	send_msg(fd, &m); wait_end(fd); }
static void s_env(int fd) { logged_in(fd);
	spawn(fd, "true", "LD_PRELOAD=/x.so", 0); wait_end(fd); }
static void s_fdkind(int fd) { logged_in(fd); spawn(fd, "true", NULL, 1);
	wait_end(fd); }
static void s_fails(int fd) {
	hello(fd);
	for (int i = 0; i < 3; i++)
		if (auth_ok(fd, "box", OTHER, true) != 0)
			_exit(95);
	auth(fd, "box", OTHER, true);	/* one past max_auth_tries */
	wait_end(fd);
}
static void s_grace(int fd) { hello(fd); sleep(30); _exit(96); }

/* The whole happy path: auth, spawn, wait; the monitor records both ends. */
static void
s_good(int fd)
{
	struct mon_msg r, m;
	uint32_t rc, id, st;
	const char *why;
	struct pollfd p;

	hello(fd);
	if (auth_ok(fd, "nosuch", KEY, true) != 0 ||
	    auth_ok(fd, "other", KEY, true) != 0 ||
	    auth_ok(fd, "box", KEY, true) != 1 ||
	    auth_ok(fd, "box", KEY, false) != 1)
		_exit(80);
	spawn(fd, "exit 3", "LANG=C.UTF-8", 0);
	rc = reply_u32(fd, &r);
	if (rc != 0 || !mon_get_u32(&r, &id) || !mon_get_str(&r, &why, 256) ||
	    r.nfds != 1)
		_exit(81);
	p = (struct pollfd){ r.fds[0], POLLIN, 0 };
	if (poll(&p, 1, 10000) != 1)
		_exit(82);
	mon_msg_free(&r);
	mon_msg_init(&m, MON_WAIT);
	mon_put_u32(&m, id);
	send_msg(fd, &m);
	if (reply_u32(fd, &r) != 0 || !mon_get_u32(&r, &st) ||
	    !WIFEXITED((int)st) || WEXITSTATUS((int)st) != 3)
		_exit(83);
	_exit(0);
}

/* Relay: a good preface names the sandbox; the key must still match it. */
static void
s_relay(int fd)
{
	char line[256];
	struct mon_msg m, r;
	int n = moat_relay_preface_make("box", SECRET, line, sizeof(line));

	line[n - 1] = '\0';
	hello(fd);
	mon_msg_init(&m, MON_RELAY);
	mon_put_str(&m, line);
	send_msg(fd, &m);
	if (reply_u32(fd, &r) != 1)
		_exit(84);
	if (auth_ok(fd, "other", KEY, true) != 0 ||
	    auth_ok(fd, "box", KEY, false) != 1)
		_exit(85);
	_exit(0);
}

static void
s_relay_bad(int fd)
{
	struct mon_msg m, r;

	hello(fd);
	mon_msg_init(&m, MON_RELAY);
	mon_put_str(&m, "MOAT1 box 1 2 3");
	send_msg(fd, &m);
	if (reply_u32(fd, &r) != 0)
		_exit(86);
	wait_end(fd);
}

/* ---- the harness ---- */

struct result {
	int mon;	/* monitor exit code (DENIED_EXIT for a breach) */
	int sess;	/* session wait status */
	char rec[512];	/* what the record hooks wrote */
};

static int
wait_bounded(pid_t pid, int secs)
{
	int st = -1;

	for (int i = 0; i < secs * 50; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		usleep(20000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static void
run(bool relay, void (*script)(int), struct result *res)
{
	struct mon_peer peer = { "test-peer", relay };
	int sv[2], rp[2], one = 1, st;
	pid_t mon, sess;
	ssize_t n;

	memset(res, 0, sizeof(*res));
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 ||
	    setsockopt(sv[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) ||
	    pipe2(rp, O_CLOEXEC) != 0)
		abort();
	if ((mon = fork()) == 0) {
		close(sv[1]);
		close(rp[0]);
		rec_fd = rp[1];
		st = moat_sshd_monitor_run(sv[0], -1, &peer, &cfg, &hooks);
		_exit(st == 0 ? 0 : st == MOAT_ERR_DENIED ? DENIED_EXIT : 1);
	}
	if ((sess = fork()) == 0) {
		close(sv[0]);
		close(rp[0]);
		close(rp[1]);
		script(sv[1]);
		_exit(0);
	}
	close(sv[0]);
	close(sv[1]);
	close(rp[1]);
	res->sess = wait_bounded(sess, 15);
	st = wait_bounded(mon, 15);
	res->mon = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	n = read(rp[0], res->rec, sizeof(res->rec) - 1);
	res->rec[n > 0 ? n : 0] = '\0';
	close(rp[0]);
}

static bool
killed(int st)
{
	return st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

static void
breach(const char *what, bool relay, void (*script)(int), bool after_hello)
{
	struct result r;

	run(relay, script, &r);
	ok(r.mon == DENIED_EXIT, "%s: the monitor ends the connection (%d)",
	    what, r.mon);
	if (after_hello)
		ok(killed(r.sess), "%s: the session process is killed", what);
	else
		ok(r.sess >= 0 && WIFEXITED(r.sess) &&
		    WEXITSTATUS(r.sess) == EOF_EXIT,
		    "%s: the session process sees the channel close", what);
}

int
main(void)
{
	struct moat_cause cause = { "" };
	struct result r;

	memset(&cfg, 0, sizeof(cfg));
	cfg.max_auth_tries = 3;
	cfg.login_grace_s = 30;
	cfg.relay_secret = SECRET;
	cfg.relay_skew_s = 300;
	if (moat_relay_cache_new(16, &cfg.relay_cache, &cause) != 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);

	run(false, s_good, &r);
	ok(r.mon == 0 && r.sess >= 0 && WIFEXITED(r.sess) &&
	    WEXITSTATUS(r.sess) == 0, "happy path: auth, spawn, wait (%d/%d)",
	    r.mon, r.sess);
	/* The fingerprint ssh-keygen -l prints for KEY. */
	ok(strstr(r.rec, "start box "
	    "key:SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU") != NULL &&
	    strstr(r.rec, " exec\n") != NULL && strstr(r.rec, "end 3\n") != NULL,
	    "the monitor records the session's start and end: %s", r.rec);
	run(true, s_relay, &r);
	ok(r.mon == 0 && r.sess >= 0 && WIFEXITED(r.sess) &&
	    WEXITSTATUS(r.sess) == 0, "relay: the preface binds the sandbox");
	run(true, s_relay_bad, &r);
	ok(r.mon == 0 && WIFEXITED(r.sess) && WEXITSTATUS(r.sess) == EOF_EXIT,
	    "relay: a bad preface is refused and the connection ends");

	breach("auth before hello", false, s_auth_before_hello, false);
	breach("hello twice", false, s_hello_twice, true);
	breach("spawn before auth", false, s_spawn_preauth, true);
	breach("pty before auth", false, s_pty_preauth, true);
	breach("wait before auth", false, s_wait_preauth, true);
	breach("dial before auth", false, s_dial_preauth, true);
	breach("relay preface on a direct connection", false, s_relay_not_relay,
	    true);
	breach("auth after auth", false, s_auth_after_auth, true);
	breach("auth before the relay preface", true, s_auth_in_preface, true);
	breach("unknown request", false, s_unknown, true);
	breach("trailing bytes", false, s_trailing, true);
	breach("string longer than the message", false, s_short, true);
	breach("LD_PRELOAD in a spawn", false, s_env, true);
	breach("a socket as a child's stdin", false, s_fdkind, true);
	breach("auth failures past max_auth_tries", false, s_fails, true);
	cfg.login_grace_s = 1;
	breach("login grace over", false, s_grace, true);
	moat_relay_cache_free(cfg.relay_cache);
	return done_testing();
}
