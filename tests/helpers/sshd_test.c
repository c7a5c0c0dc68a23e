/*
 * A tiny host for sshd/ in tests: serves 127.0.0.1:<free port> with
 * hooks that run commands on the host itself (no sandbox), so the SSH
 * behaviour can be tested with real clients apart from the sandbox code.
 * Privilege separation is the real one: session processes from the
 * zygote (confined when run as root), hooks in per-connection monitors.
 *
 *	sshd_test -d DIR -s SANDBOX [-r SECRET] [-g GRACE_MS] [-m START:RATE:FULL]
 *	    [-p PER_SOURCE]
 *
 * DIR holds hostkey (made if missing), authorized_keys (OpenSSH lines),
 * and receives port, relay_port (with -r), records (session start/end
 * lines), empty/ (the session processes' root) and zygote (its pid).
 * Runs until SIGTERM.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "sshd/relay.h"
#include "sshd/sshd.h"

struct host {
	const char *dir;
	const char *sandbox;
};

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	stop = 1;
}

static bool
h_authorized(void *arg, const char *sandbox, const char *type,
    const char *b64)
{
	struct host *hs = arg;
	char path[4096], line[16384], t[64], k[16000];
	bool ok = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/authorized_keys", hs->dir);
	if ((f = fopen(path, "re")) == NULL)
		return false;
	while (!ok && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "%63s %15999s", t, k) == 2 &&
		    strcmp(t, type) == 0 && strcmp(k, b64) == 0)
			ok = true;
	fclose(f);
	return ok;
}

static bool
h_exists(void *arg, const char *sandbox)
{
	return strcmp(((struct host *)arg)->sandbox, sandbox) == 0;
}

static void
child_exec(const struct moat_sshd_spawn *s)
{
	const char *home = getenv("HOME"), *path = getenv("PATH");
	char *h = NULL, *p = NULL;
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	if (s->pty)
		ioctl(s->fds[0], TIOCSCTTY, 0);
	for (int i = 0; i < 3; i++)
		if (dup2(s->fds[i], i) == -1)
			_exit(126);
	if (asprintf(&h, "HOME=%s", home ? home : "/") < 0 ||
	    asprintf(&p, "PATH=%s", path ? path : "/usr/bin:/bin") < 0)
		_exit(126);
	clearenv();
	putenv(h);
	putenv(p);
	putenv("SHELL=/bin/bash");
	putenv("USER=root");
	for (const char *const *e = s->env; e && *e; e++)
		putenv((char *)*e);
	if (s->subsystem != NULL)
		execl("/usr/lib/openssh/sftp-server", "sftp-server", NULL);
	else if (s->argv != NULL)
		execvp(s->argv[0], (char *const *)s->argv);
	else
		execl("/bin/bash", s->login ? "-bash" : "bash", NULL);
	_exit(127);
}

static int
h_spawn(void *arg, const char *sandbox, const struct moat_sshd_spawn *s,
    pid_t *pid, struct moat_cause *cause)
{
	pid_t p = fork();

	if (p == -1) {
		moat_cause_errno(cause, "fork");
		return MOAT_ERR_SYSTEM;
	}
	if (p == 0)
		child_exec(s);
	*pid = p;
	return MOAT_OK;
}

static int
h_connect(void *arg, const char *sandbox, const char *host, uint16_t port,
    int *fd, struct moat_cause *cause)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	struct sockaddr *sa;
	socklen_t sl;
	int s, fam;

	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, host, &s4.sin_addr) == 1) {
		s4.sin_family = fam = AF_INET;
		s4.sin_port = htons(port);
		sa = (struct sockaddr *)&s4;
		sl = sizeof(s4);
	} else if (inet_pton(AF_INET6, host, &s6.sin6_addr) == 1) {
		s6.sin6_family = fam = AF_INET6;
		s6.sin6_port = htons(port);
		sa = (struct sockaddr *)&s6;
		sl = sizeof(s6);
	} else {
		moat_cause_set(cause, "%s: not an address", host);
		return MOAT_ERR_INVALID;
	}
	if ((s = socket(fam, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    (connect(s, sa, sl) == -1 && errno != EINPROGRESS)) {
		moat_cause_errno(cause, "connect %s:%u", host, port);
		if (s >= 0)
			close(s);
		return MOAT_ERR_SYSTEM;
	}
	*fd = s;
	return MOAT_OK;
}

static void
record(struct host *hs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
record(struct host *hs, const char *fmt, ...)
{
	char path[4096];
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), "%s/records", hs->dir);
	if ((f = fopen(path, "ae")) == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
}

static void
h_start(void *arg, const char *sandbox, const char *who, const char *from,
    const char *kind, int64_t *id)
{
	*id = (int64_t)getpid() * 1000 + (moat_now_ms() % 1000);
	/* The last field is the connection's monitor, for kill tests. */
	record(arg, "start %lld %s %s %s %s %d\n", (long long)*id, sandbox,
	    who, from, kind, (int)getpid());
}

static void
h_end(void *arg, int64_t id, int status, const char *sig)
{
	record(arg, "end %lld %d %s\n", (long long)id, status,
	    sig ? sig : "-");
}

static int
write_port(const char *dir, const char *name, int fd)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char path[4096];
	FILE *f;

	if (getsockname(fd, (struct sockaddr *)&sa, &sl) == -1)
		return -1;
	snprintf(path, sizeof(path), "%s/%s.tmp", dir, name);
	if ((f = fopen(path, "we")) == NULL)
		return -1;
	fprintf(f, "%u\n", ntohs(sa.sin_port));
	fclose(f);
	char final[4096];
	snprintf(final, sizeof(final), "%s/%s", dir, name);
	return rename(path, final);
}

static int
write_zygote(const char *dir, pid_t pid)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/zygote", dir);
	if ((f = fopen(path, "we")) == NULL)
		return -1;
	fprintf(f, "%d\n", (int)pid);
	return fclose(f);
}

static void
serve(struct moat_sshd_server *srv, int lfd, int rfd)
{
	while (!stop) {
		struct pollfd p[3] = { { lfd, POLLIN, 0 }, { rfd, POLLIN, 0 },
			{ moat_sshd_server_fd(srv), POLLIN, 0 } };

		if (poll(p, 3, 200) > 0) {
			if (p[0].revents & POLLIN)
				(void)moat_sshd_server_accept(srv, lfd, false);
			if (rfd >= 0 && (p[1].revents & POLLIN))
				(void)moat_sshd_server_accept(srv, rfd, true);
			if (p[2].revents & POLLIN)
				moat_sshd_server_step(srv);
		}
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
	}
}

int
main(int argc, char **argv)
{
	struct moat_sshd_startups st = MOAT_SSHD_STARTUPS_DEFAULT;
	struct host hs = { NULL, NULL };
	struct moat_cause cause = { "" };
	struct moat_sshd_server *srv = NULL;
	struct moat_sshd_config cfg;
	struct moat_sshd_hooks h;
	const char *secret = NULL;
	char key[4096], empty[4096];
	const char *keys[2] = { key, NULL };
	int lfd = -1, rfd = -1, opt, grace = 0;

	if (argc > 1 && strcmp(argv[1], MOAT_SSHD_ZYGOTE_ARG) == 0)
		return moat_sshd_zygote_main(argc, argv);
	while ((opt = getopt(argc, argv, "d:s:r:g:m:p:")) != -1) {
		switch (opt) {
		case 'd': hs.dir = optarg; break;
		case 's': hs.sandbox = optarg; break;
		case 'r': secret = optarg; break;
		case 'g': grace = atoi(optarg); break;
		case 'm':
			if (sscanf(optarg, "%d:%d:%d", &st.start, &st.rate,
			    &st.full) != 3)
				return 100;
			break;
		case 'p': st.per_source = atoi(optarg); break;
		default: return 100;
		}
	}
	if (hs.dir == NULL || hs.sandbox == NULL)
		return 100;
	moat_log_init("sshd_test", getenv("SSHD_TEST_DEBUG") ?
	    MOAT_LOG_DEBUG : MOAT_LOG_INFO);
	snprintf(key, sizeof(key), "%s/hostkey", hs.dir);
	snprintf(empty, sizeof(empty), "%s/empty", hs.dir);
	(void)mkdir(empty, 0555);
	memset(&cfg, 0, sizeof(cfg));
	cfg.hostkey_paths = keys;
	cfg.max_auth_tries = 6;
	cfg.login_grace_s = 30;
	cfg.relay_secret = secret;
	cfg.relay_skew_s = 300;
	cfg.bg_grace_ms = grace;
	cfg.privsep_uid = 59999;
	cfg.privsep_gid = 59999;
	cfg.privsep_dir = empty;
	cfg.startups = st;
	memset(&h, 0, sizeof(h));
	h.arg = &hs;
	h.authorized = h_authorized;
	h.sandbox_exists = h_exists;
	h.spawn = h_spawn;
	h.connect = h_connect;
	h.session_start = h_start;
	h.session_end = h_end;
	if (moat_sshd_hostkey_ensure(key, &cause) != 0 ||
	    moat_sshd_listen("127.0.0.1", 0, &lfd, &cause) != 0 ||
	    (secret != NULL &&
		(moat_sshd_listen("127.0.0.1", 0, &rfd, &cause) != 0 ||
		    moat_relay_cache_new(0, &cfg.relay_cache, &cause) != 0)) ||
	    moat_sshd_server_new(&cfg, &h, &srv, &cause) != 0) {
		fprintf(stderr, "sshd_test: %s\n", cause.msg);
		return 111;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	if (write_zygote(hs.dir, moat_sshd_server_zygote_pid(srv)) != 0 ||
	    write_port(hs.dir, "port", lfd) != 0 ||
	    (rfd >= 0 && write_port(hs.dir, "relay_port", rfd) != 0))
		return 111;
	serve(srv, lfd, rfd);
	moat_sshd_server_free(srv);
	moat_relay_cache_free(cfg.relay_cache);
	return 0;
}
