/*
 * The SSH front door as moatd wires it: TCP listeners and the relay
 * socket on moatd's loop, and per connection an unprivileged session
 * process (sshd's zygote forks it) plus a monitor forked from moatd. The
 * hooks run in that monitor: key checks against the sandbox's keys,
 * spawn into the sandbox, connect inside its netns, session records
 * (sent to moatd as datagrams to STATE/sessions.sock, since only moatd
 * writes the store; by path, so monitors that outlive moatd reach the
 * next one).
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "sandbox/sandbox.h"
#include "sessions/session.h"
#include "sshd/relay.h"
#include "sshd/sshd.h"
#include "store/store.h"
#include "moatd/daemon.h"
#include "moatd/state.h"

struct moatd_sessmap {
	int64_t key;   /* the connection process's id for the session */
	int64_t row;   /* the store's */
	pid_t pid;     /* the connection process (kernel-checked sender) */
	int pidfd;     /* watched when it is not our child (adopted), or -1 */
	char sandbox[64];
	char who[160];
	char from[64];
	char kind[16];
	struct moatd_sessmap *next;
};

/* Records a monitor could not hand over while no moatd listened. */
#define SESS_HELD_MAX 64
/* How long a monitor retries a session's end while no moatd listens. */
#define SESS_END_RETRY_MS 10000
#define SESS_START_RETRY_MS 2000

/* Per-process SSH settings; filled once before the first fork. */
static struct {
	struct moat_sshd_config cfg;
	struct moat_sshd_hooks hooks;
	const char *hostkeys[2];
	char *secret;
	char *privsep_dir;
	struct moat_sshd_server *srv;
	int64_t next_key;
	struct sockaddr_un sess_addr; /* STATE/sessions.sock */
	char *held[SESS_HELD_MAX];    /* in a monitor: not yet delivered */
	size_t nheld;
} sshw;

/* ---- hooks: these run in the connection's monitor ---- */

static bool
hook_authorized(void *arg, const char *sandbox, const char *type,
    const char *b64)
{
	struct moatd_sandbox *s = moatd_sandbox_find(arg, sandbox);
	size_t tl = strlen(type);

	if (s == NULL)
		return false;
	for (size_t i = 0; i < s->cfg->nkeys; i++) {
		const char *k = s->cfg->keys[i];
		if (strncmp(k, type, tl) == 0 && k[tl] == ' ' &&
		    strcmp(k + tl + 1, b64) == 0)
			return true;
	}
	return false;
}

static bool
hook_exists(void *arg, const char *sandbox)
{
	return moatd_sandbox_find(arg, sandbox) != NULL;
}

static int
hook_spawn(void *arg, const char *sandbox, const struct moat_sshd_spawn *ss,
    pid_t *pid, struct moat_cause *cause)
{
	static const char *const sftp[] = { "/usr/lib/openssh/sftp-server",
		NULL };
	struct moatd_sandbox *s = moatd_sandbox_find(arg, sandbox);
	struct moat_spawn sp = { 0 };

	if (s == NULL || s->sb == NULL) {
		moat_cause_set(cause, "no sandbox named '%s'", sandbox);
		return MOAT_ERR_NOTFOUND;
	}
	sp.argv = ss->subsystem != NULL ? sftp : ss->argv;
	sp.env = ss->env;
	memcpy(sp.fds, ss->fds, sizeof(sp.fds));
	sp.pty = ss->pty;
	sp.login = ss->login;
	return moat_sandbox_spawn(s->sb, &sp, pid, cause);
}

static int
hook_openpty(void *arg, const char *sandbox, int *master, int *slave,
    struct moat_cause *cause)
{
	struct moatd_sandbox *s = moatd_sandbox_find(arg, sandbox);

	if (s == NULL || s->sb == NULL) {
		moat_cause_set(cause, "no sandbox named '%s'", sandbox);
		return MOAT_ERR_NOTFOUND;
	}
	return moat_sandbox_openpty(s->sb, master, slave, cause);
}

static int
hook_connect(void *arg, const char *sandbox, const char *host, uint16_t port,
    int *fdp, struct moat_cause *cause)
{
	struct moatd_sandbox *s = moatd_sandbox_find(arg, sandbox);
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl;
	int fd, r;

	if (s == NULL || s->sb == NULL) {
		moat_cause_set(cause, "no sandbox named '%s'", sandbox);
		return MOAT_ERR_NOTFOUND;
	}
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		moat_cause_set(cause, "'%s' is not a loopback address", host);
		return MOAT_ERR_INVALID;
	}
	fd = moat_sandbox_socket(s->sb, ss.ss_family,
	    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, cause);
	if (fd < 0)
		return MOAT_ERR_SYSTEM;
	r = connect(fd, (struct sockaddr *)&ss, sl);
	if (r == -1 && errno != EINPROGRESS) {
		moat_cause_errno(cause, "connect %s:%u in sandbox %s", host,
		    (unsigned)port, sandbox);
		close(fd);
		return MOAT_ERR_SYSTEM;
	}
	*fdp = fd;
	return MOAT_OK;
}

/* What a monitor keeps of moatd's fds: the sandboxes' and the records'. */
static size_t
hook_monitor_fds(void *arg, int *fds, size_t max)
{
	struct moatd *d = arg;
	size_t n = 0;

	if (d->sess_wfd >= 0 && n < max)
		fds[n++] = d->sess_wfd;
	for (size_t i = 0; i < d->nsandboxes; i++)
		if (d->sandboxes[i].sb != NULL)
			n += moat_sandbox_fds(d->sandboxes[i].sb, fds + n,
			    max - n);
	return n;
}

/* One datagram to whichever moatd listens on the records' socket. */
static bool
sess_put(struct moatd *d, const char *s)
{
	return d->sess_wfd >= 0 && sendto(d->sess_wfd, s, strlen(s),
	    MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sshw.sess_addr,
	    sizeof(sshw.sess_addr)) != -1;
}

/* Hand over what was held, in order; true when nothing is left. */
static bool
sess_flush(struct moatd *d)
{
	size_t i;

	for (i = 0; i < sshw.nheld && sess_put(d, sshw.held[i]); i++)
		free(sshw.held[i]);
	memmove(sshw.held, sshw.held + i, (sshw.nheld - i) *
	    sizeof(*sshw.held));
	sshw.nheld -= i;
	return sshw.nheld == 0;
}

/*
 * Runs in a monitor, which outlives moatd (live restore): the records
 * go to the socket's path, so the next moatd gets them. While none
 * listens they are held. A full queue (a burst of sessions: moatd takes
 * a few datagrams at a time) is retried for a while, a start briefly and
 * an end longer, since the monitor may exit right after it; with no
 * moatd listening and no live restore, nobody comes to take them.
 */
static void
send_sess(struct moatd *d, json_t *o, bool end)
{
	int64_t deadline = moat_now_ms() + (end ? SESS_END_RETRY_MS :
	    SESS_START_RETRY_MS);
	char *s = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	if (s == NULL)
		return;
	if (sshw.nheld < SESS_HELD_MAX)
		sshw.held[sshw.nheld++] = s;
	else {
		log_warn("session record to moatd dropped: %zu held already",
		    sshw.nheld);
		free(s);
	}
	while (!sess_flush(d) && moat_now_ms() < deadline) {
		if (errno != EAGAIN && errno != EWOULDBLOCK &&
		    (!end || !d->cfg->live_restore))
			break;
		usleep(20 * 1000);
	}
	if (sshw.nheld > 0 && end)
		log_warn_errno("session records to moatd: %zu not delivered",
		    sshw.nheld);
}

static void
hook_session_start(void *arg, const char *sandbox, const char *who,
    const char *from, const char *kind, int64_t *id)
{
	/* Unique across monitors: pid, then a counter. */
	*id = (int64_t)getpid() * 100000 + ++sshw.next_key;
	send_sess(arg, json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "t",
	    "start", "key", (json_int_t)*id, "sandbox", sandbox, "who", who,
	    "from", from, "kind", kind), false);
}

static void
hook_session_end(void *arg, int64_t id, int status, const char *sig)
{
	send_sess(arg, json_pack("{s:s, s:I, s:i, s:s}", "t", "end", "key",
	    (json_int_t)id, "status", status, "signal", sig ? sig : ""), true);
}

/* ---- moatd's side ---- */

static int
ensure_secret(const char *path, struct moat_cause *cause)
{
	unsigned char raw[32];
	char hex[65];
	int fd;

	if (access(path, F_OK) == 0)
		return MOAT_OK;
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		moat_cause_set(cause, "no randomness for %s", path);
		return MOAT_ERR_SYSTEM;
	}
	moat_hex(raw, sizeof(raw), hex);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1 || moat_write_all(fd, hex, 64) != 0 ||
	    moat_write_all(fd, "\n", 1) != 0) {
		moat_cause_errno(cause, "write %s", path);
		moat_close(fd);
		return MOAT_ERR_SYSTEM;
	}
	close(fd);
	explicit_bzero(raw, sizeof(raw));
	return MOAT_OK;
}


/* Forget one entry: its pidfd watch too. */
static void
sessmap_free(struct moatd *d, struct moatd_sessmap *m)
{
	if (m->pidfd >= 0) {
		moat_loop_del_fd(d->loop, m->pidfd);
		moat_close(m->pidfd);
	}
	free(m);
}

static void
sess_record(struct moatd *d, json_t *o, pid_t pid)
{
	const char *t = json_string_value(json_object_get(o, "t"));
	int64_t key = json_integer_value(json_object_get(o, "key"));
	struct moatd_sessmap *m, **pp;
	uint64_t st = 0;

	if (t == NULL)
		return;
	if (strcmp(t, "start") == 0) {
		if ((m = calloc(1, sizeof(*m))) == NULL)
			return;
		m->key = key;
		m->pid = pid;
		moat_strlcpy(m->sandbox, json_string_value(json_object_get(o,
		    "sandbox")) ?: "", sizeof(m->sandbox));
		moat_strlcpy(m->who, json_string_value(json_object_get(o,
		    "who")) ?: "", sizeof(m->who));
		moat_strlcpy(m->from, json_string_value(json_object_get(o,
		    "from")) ?: "", sizeof(m->from));
		moat_strlcpy(m->kind, json_string_value(json_object_get(o,
		    "kind")) ?: "", sizeof(m->kind));
		m->pidfd = -1;
		if (moat_store_session_start(d->store, m->sandbox, m->who,
			m->from, m->kind, moat_wall_ms(), &m->row, NULL) != 0)
			log_warn("session record for %s not stored", m->sandbox);
		else if (moat_proc_start_time(pid, &st) == 0)
			moat_store_session_set_conn(d->store, m->row, pid, st,
			    key, NULL);
		moatd_export_session(d->exp, true, m->sandbox, m->who, m->from,
		    m->kind, 0, NULL);
		m->next = d->sessions;
		d->sessions = m;
		return;
	}
	for (pp = &d->sessions; (m = *pp) != NULL; pp = &m->next) {
		if (m->key != key || m->pid != pid)
			continue;
		const char *sig = json_string_value(json_object_get(o,
		    "signal"));
		int es = (int)json_integer_value(json_object_get(o, "status"));
		moat_store_session_end(d->store, m->row, moat_wall_ms(), es,
		    sig && *sig ? sig : NULL, NULL);
		moatd_export_session(d->exp, false, m->sandbox, m->who,
		    m->from, m->kind, es, sig);
		*pp = m->next;
		sessmap_free(d, m);
		return;
	}
}

/*
 * Read at most max session records. The sender's pid comes from the
 * kernel (SCM_CREDENTIALS), not from the record, so one connection
 * process cannot end another's sessions. Returns how many were read.
 */
static int
sess_read(struct moatd *d, int max)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	char buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh;
	struct cmsghdr *cm;
	struct ucred uc;
	ssize_t n;
	int i;

	for (i = 0; i < max; i++) {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		n = recvmsg(d->sess_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n <= 0)
			break;
		uc.pid = 0;
		for (cm = CMSG_FIRSTHDR(&mh); cm != NULL;
		    cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET &&
			    cm->cmsg_type == SCM_CREDENTIALS &&
			    cm->cmsg_len == CMSG_LEN(sizeof(uc)))
				memcpy(&uc, CMSG_DATA(cm), sizeof(uc));
		json_t *o = json_loadb(buf, (size_t)n, 0, NULL);
		if (o != NULL && uc.pid > 0)
			sess_record(d, o, uc.pid);
		json_decref(o);
	}
	return i;
}

static void
sess_readable(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	(void)l;
	(void)fd;
	(void)ev;
	sess_read(arg, 64);
}

/*
 * The one place a session row is closed for a dead connection process:
 * every row that process still had open ends now, with why. Keyed by
 * the pid moatd forked, whatever the process did before it died.
 */
static void
conn_gone(struct moatd *d, pid_t pid, const char *why)
{
	struct moatd_sessmap *m, **pp;
	struct moat_cause cause = { { 0 } };

	/* Its last records are queued already: read them first. */
	if (d->sess_fd >= 0)
		while (sess_read(d, 256) == 256)
			;
	for (pp = &d->sessions; (m = *pp) != NULL;) {
		if (m->pid != pid) {
			pp = &m->next;
			continue;
		}
		if (moat_store_session_lost(d->store, m->row, moat_wall_ms(),
		    why, &cause) != 0)
			log_warn("session %lld of %s: %s", (long long)m->row,
			    m->sandbox, cause.msg);
		else
			log_info("session %lld of %s closed: %s",
			    (long long)m->row, m->sandbox, why);
		moatd_export_session(d->exp, false, m->sandbox, m->who,
		    m->from, m->kind, -1, NULL);
		*pp = m->next;
		sessmap_free(d, m);
	}
}

void
moatd_sessions_conn_ended(struct moatd *d, pid_t pid, int status)
{
	char why[64];

	if (WIFSIGNALED(status))
		snprintf(why, sizeof(why), "connection killed (%s)",
		    moat_signal_name(WTERMSIG(status)));
	else
		snprintf(why, sizeof(why), "connection exited (%d)",
		    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	conn_gone(d, pid, why);
}

/* A connection process a previous moatd forked ended (its pidfd). */
static void
adopted_conn_ended(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	struct moatd *d = arg;
	struct moatd_sessmap *m;

	(void)l;
	(void)ev;
	for (m = d->sessions; m != NULL; m = m->next)
		if (m->pidfd == fd)
			break;
	if (m != NULL)
		conn_gone(d, m->pid, "connection ended (its end was not "
		    "reported)");
}

/*
 * Live restore: a running row whose connection process still runs is
 * taken over (its later records, or its death, end it); any other is
 * closed. The start time tells a live process from a reused pid.
 */
static int
adopt_row(const struct moat_store_session *ss, void *arg)
{
	struct moatd *d = arg;
	struct moat_cause cause = { { 0 } };
	struct moatd_sessmap *m = NULL;
	uint64_t st = 0;
	int pidfd = -1;

	if (ss->conn_pid > 0 && moat_proc_start_time((pid_t)ss->conn_pid,
	    &st) == 0 && st == ss->conn_start)
		pidfd = (int)syscall(SYS_pidfd_open, (pid_t)ss->conn_pid, 0);
	/* The pidfd first, the start time again: then it is that process. */
	if (pidfd >= 0 && (moat_proc_start_time((pid_t)ss->conn_pid,
	    &st) != 0 || st != ss->conn_start)) {
		close(pidfd);
		pidfd = -1;
	}
	if (pidfd >= 0 && (m = calloc(1, sizeof(*m))) != NULL) {
		m->key = ss->conn_key;
		m->row = ss->id;
		m->pid = (pid_t)ss->conn_pid;
		m->pidfd = pidfd;
		moat_strlcpy(m->sandbox, ss->sandbox, sizeof(m->sandbox));
		moat_strlcpy(m->who, ss->who, sizeof(m->who));
		moat_strlcpy(m->from, ss->from, sizeof(m->from));
		moat_strlcpy(m->kind, ss->kind, sizeof(m->kind));
		if (moat_loop_add_fd(d->loop, pidfd, MOAT_EV_READ,
		    adopted_conn_ended, d) == 0) {
			m->next = d->sessions;
			d->sessions = m;
			return 0;
		}
		free(m);
	}
	moat_close(pidfd);
	if (moat_store_session_lost(d->store, ss->id, moat_wall_ms(),
	    "moatd restarted; its connection is gone", &cause) != 0)
		log_warn("session %lld: %s", (long long)ss->id, cause.msg);
	return 0;
}

/* moatd stops, or starts after a crash: no row may stay "running". */
static void
sess_close_all(struct moatd *d, const char *why)
{
	struct moat_cause cause = { { 0 } };
	int64_t n = 0;

	if (moat_store_sessions_close_open(d->store, moat_wall_ms(), why, &n,
	    &cause) != 0)
		log_warn("closing running sessions: %s", cause.msg);
	else if (n > 0)
		log_info("%lld session rows closed: %s", (long long)n, why);
}

static void
accept_ready(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	struct moatd *d = arg;
	bool relay = fd == d->relay_fd || fd == d->relay_tcp_fd;
	int r;

	(void)l;
	(void)ev;
	/* One connection per readiness: the loop calls again if more wait. */
	r = moat_sshd_server_accept(sshw.srv, fd, relay);
	if (r != 0 && r != MOAT_ERR_AGAIN && r != MOAT_ERR_DENIED)
		log_warn_r(r, "accept on fd %d", fd);
}

static void
server_ready(struct moat_loop *l, int fd, unsigned ev, void *arg)
{
	(void)l;
	(void)fd;
	(void)ev;
	(void)arg;
	moat_sshd_server_step(sshw.srv);
}

/*
 * The session processes' empty root: a directory of root's, writable by
 * nobody else and empty (sshd checks all three before it chroots).
 */
static int
privsep_dir(struct moatd *d, struct moat_cause *cause)
{
	if (asprintf(&sshw.privsep_dir, "%s/empty", d->cfg->state_dir) < 0) {
		sshw.privsep_dir = NULL;
		return MOAT_ERR_NOMEM;
	}
	if (mkdir(sshw.privsep_dir, 0555) != 0 && errno != EEXIST) {
		moat_cause_errno(cause, "mkdir %s", sshw.privsep_dir);
		return MOAT_ERR_SYSTEM;
	}
	if (chown(sshw.privsep_dir, 0, 0) != 0 ||
	    chmod(sshw.privsep_dir, 0555) != 0) {
		moat_cause_errno(cause, "privsep directory %s",
		    sshw.privsep_dir);
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

static int
listen_unix(const char *path, int *fdp, struct moat_cause *cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		moat_cause_set(cause, "relay socket path too long: %s", path);
		return MOAT_ERR_INVALID;
	}
	strcpy(sun.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    chmod(path, 0600) == -1 || listen(fd, 64) == -1) {
		moat_cause_errno(cause, "relay socket %s", path);
		moat_close(fd);
		return MOAT_ERR_SYSTEM;
	}
	*fdp = fd;
	return MOAT_OK;
}

/*
 * An id moatd runs a confined process as must be nobody else's: not a
 * host user's (who could signal the process) and not a sandbox's.
 */
int
moatd_uid_unused(struct moatd *d, uint32_t id, const char *field,
    struct moat_cause *cause)
{
	struct passwd *pw = getpwuid((uid_t)id);

	if (pw != NULL) {
		moat_cause_set(cause, "%s %u belongs to host user '%s'; choose "
		    "an unused id in the config", field, (unsigned)id,
		    pw->pw_name);
		return MOAT_ERR_INVALID;
	}
	for (size_t i = 0; i < d->nsandboxes; i++)
		if (d->sandboxes[i].sb != NULL &&
		    (moat_sandbox_uid(d->sandboxes[i].sb) == (uid_t)id ||
			moat_sandbox_gid(d->sandboxes[i].sb) == (gid_t)id)) {
			moat_cause_set(cause, "%s %u is sandbox %s's id; choose "
			    "another in the config", field, (unsigned)id,
			    d->sandboxes[i].cfg->name);
			return MOAT_ERR_INVALID;
		}
	return MOAT_OK;
}

/*
 * Session records: monitors send datagrams to STATE/sessions.sock (0600
 * in the 0700 state dir), from a socket they inherit; moatd reads them
 * with the sender's pid from the kernel (SO_PASSCRED). A path, not a
 * socketpair, so that monitors that outlive moatd (live restore) reach
 * the next one.
 */
static int
sess_socket(struct moatd *d, struct moat_cause *cause)
{
	struct sockaddr_un *sun = &sshw.sess_addr;
	int one = 1;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if ((size_t)snprintf(sun->sun_path, sizeof(sun->sun_path),
	    "%s/sessions.sock", d->cfg->state_dir) >= sizeof(sun->sun_path)) {
		moat_cause_set(cause, "state_dir %s: too long for a unix "
		    "socket path", d->cfg->state_dir);
		return MOAT_ERR_INVALID;
	}
	unlink(sun->sun_path);
	d->sess_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	d->sess_wfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (d->sess_fd == -1 || d->sess_wfd == -1 ||
	    setsockopt(d->sess_fd, SOL_SOCKET, SO_PASSCRED, &one,
	    sizeof(one)) == -1 || bind(d->sess_fd, (struct sockaddr *)sun,
	    sizeof(*sun)) == -1 || chmod(sun->sun_path, 0600) == -1) {
		moat_cause_errno(cause, "session record socket %s",
		    sun->sun_path);
		return MOAT_ERR_SYSTEM;
	}
	return MOAT_OK;
}

int
moatd_ssh_start(struct moatd *d, struct moat_cause *cause)
{
	int r;

	if ((r = moatd_uid_unused(d, d->cfg->ssh_privsep_uid,
	    "ssh_privsep_uid", cause)) != 0)
		return r;
	if ((r = moat_sshd_hostkey_ensure(d->cfg->hostkey_path, cause)) != 0)
		return r;
	if ((r = ensure_secret(d->cfg->relay_secret_path, cause)) != 0)
		return r;
	if ((r = moat_read_file(d->cfg->relay_secret_path, 4096, &sshw.secret,
		 NULL, cause)) != 0)
		return r;
	sshw.secret[strcspn(sshw.secret, "\r\n")] = '\0';
	sshw.hostkeys[0] = d->cfg->hostkey_path;
	sshw.cfg.hostkey_paths = sshw.hostkeys;
	sshw.cfg.max_auth_tries = d->cfg->max_auth_tries;
	sshw.cfg.login_grace_s = d->cfg->login_grace_s;
	sshw.cfg.relay_secret = sshw.secret;
	sshw.cfg.relay_skew_s = 300;
	if ((r = moat_relay_cache_new(0, &d->relay_cache, cause)) != 0)
		return r;
	sshw.cfg.relay_cache = d->relay_cache;
	sshw.cfg.privsep_uid = (uid_t)d->cfg->ssh_privsep_uid;
	sshw.cfg.privsep_gid = (gid_t)d->cfg->ssh_privsep_uid;
	sshw.cfg.startups = (struct moat_sshd_startups){
		d->cfg->max_startups[0], d->cfg->max_startups[1],
		d->cfg->max_startups[2], d->cfg->max_startups_per_source };
	sshw.hooks = (struct moat_sshd_hooks){ d, hook_authorized, hook_exists,
		hook_spawn, hook_connect, hook_session_start,
		hook_session_end, hook_openpty, hook_monitor_fds };
	if ((r = privsep_dir(d, cause)) != 0)
		return r;
	sshw.cfg.privsep_dir = sshw.privsep_dir;
	if ((r = sess_socket(d, cause)) != 0)
		return r;
	/* Rows left running by a moatd that did not stop cleanly. */
	if (!d->cfg->live_restore)
		sess_close_all(d, "moatd restarted");
	else if (moat_store_sessions_running(d->store, adopt_row, d,
	    cause) != 0)
		return MOAT_ERR_SYSTEM;
	moat_loop_add_fd(d->loop, d->sess_fd, MOAT_EV_READ, sess_readable, d);
	if ((r = moat_sshd_server_new(&sshw.cfg, &sshw.hooks, &sshw.srv,
	    cause)) != 0)
		return r;
	moat_loop_add_fd(d->loop, moat_sshd_server_fd(sshw.srv), MOAT_EV_READ,
	    server_ready, d);
	for (size_t i = 0; i < d->cfg->nlisten && i < MOAT_NELEM(d->listen_fds);
	     i++) {
		if ((r = moat_sshd_listen(d->cfg->listen[i].addr,
			 d->cfg->listen[i].port, &d->listen_fds[i], cause)) != 0)
			return r;
		d->nlisten++;
		moat_loop_add_fd(d->loop, d->listen_fds[i], MOAT_EV_READ,
		    accept_ready, d);
	}
	if (d->cfg->relay_socket != NULL) {
		if ((r = listen_unix(d->cfg->relay_socket, &d->relay_fd,
			 cause)) != 0)
			return r;
		moat_loop_add_fd(d->loop, d->relay_fd, MOAT_EV_READ,
		    accept_ready, d);
	}
	if (d->cfg->relay_tcp.port != 0) {
		if ((r = moat_sshd_listen(d->cfg->relay_tcp.addr,
			 d->cfg->relay_tcp.port, &d->relay_tcp_fd, cause)) != 0)
			return r;
		moat_loop_add_fd(d->loop, d->relay_tcp_fd, MOAT_EV_READ,
		    accept_ready, d);
	}
	return MOAT_OK;
}

void
moatd_ssh_sandboxes_changed(struct moatd *d)
{
	struct moat_cause cause = { { 0 } };

	(void)d;
	/* New monitors must hold the sandboxes as they are now. */
	if (sshw.srv != NULL &&
	    moat_sshd_server_monitors_refresh(sshw.srv, &cause) != 0)
		log_error("ssh monitors: %s", cause.msg);
}

void
moatd_ssh_stop(struct moatd *d)
{
	if (sshw.srv != NULL) {
		moat_loop_del_fd(d->loop, moat_sshd_server_fd(sshw.srv));
		moat_sshd_server_free(sshw.srv);
		sshw.srv = NULL;
	}
	free(sshw.privsep_dir);
	sshw.privsep_dir = NULL;
	for (size_t i = 0; i < d->nlisten; i++) {
		moat_loop_del_fd(d->loop, d->listen_fds[i]);
		moat_close(d->listen_fds[i]);
	}
	d->nlisten = 0;
	if (d->relay_fd >= 0) {
		moat_loop_del_fd(d->loop, d->relay_fd);
		moat_close(d->relay_fd);
		if (d->cfg->relay_socket != NULL)
			unlink(d->cfg->relay_socket);
		d->relay_fd = -1;
	}
	if (d->relay_tcp_fd >= 0) {
		moat_loop_del_fd(d->loop, d->relay_tcp_fd);
		moat_close(d->relay_tcp_fd);
		d->relay_tcp_fd = -1;
	}
	if (d->sess_fd >= 0) {
		moat_loop_del_fd(d->loop, d->sess_fd);
		moat_close(d->sess_fd);
		d->sess_fd = -1;
		/* With live restore monitors send on; the next moatd binds. */
		if (!d->detaching)
			unlink(sshw.sess_addr.sun_path);
	}
	moat_close(d->sess_wfd);
	d->sess_wfd = -1;
	while (d->sessions != NULL) {
		struct moatd_sessmap *m = d->sessions;
		d->sessions = m->next;
		sessmap_free(d, m);
	}
	/* With live restore the sessions run on: the next moatd ends them. */
	if (d->store != NULL && !d->detaching)
		sess_close_all(d, "moatd stopped");
	moat_relay_cache_free(d->relay_cache);
	d->relay_cache = NULL;
	if (sshw.secret != NULL)
		explicit_bzero(sshw.secret, strlen(sshw.secret));
	free(sshw.secret);
	sshw.secret = NULL;
}
