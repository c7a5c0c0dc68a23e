/*
 * The monitor: the privileged half of one connection (OpenSSH's
 * monitor.c in moat's terms). It runs forked from moatd, as root, and
 * answers its session process's requests through one table: each row
 * names the request, the states it is allowed in, and its handler. A
 * request in any other state, or a malformed one, is logged, the session
 * process is killed and the connection ends.
 *
 *   start --HELLO--> preface --RELAY--> preauth --AUTH(signed, ok)--> authed
 *                 \__________(not a relay)__/
 *
 * What the session process cannot forge: the sandbox is the one whose
 * authorized key matched; session records are written here, from the
 * children this process spawned and reaped; the environment allowlist
 * and the loopback rule for direct-tcpip are checked again here.
 *
 * What it can (libssh 0.10 limits, docs/ssh.md): libssh checks the
 * client's signature in the session process, so the monitor trusts the
 * session's word that a signed request verified; an exploited session
 * process can therefore log in with any authorized *public* key.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
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

#include <openssl/evp.h>

#include "common/log.h"
#include "common/util.h"
#include "sessions/session.h"
#include "sshd/monitor.h"
#include "sshd/relay.h"
#include "sshd/sshd.h"

#define HANGUP_WAIT_MS 2000
#define GRACE_MARGIN_S 2
#define USER_MAX 127
#define KEYTYPE_MAX 64
#define KEYB64_MAX 16384
#define HOST_MAX 255
#define KEYBLOB_MAX 2048	/* the longest key we fingerprint (RSA 8192) */

enum mon_state {
	ST_START = 1 << 0,
	ST_PREFACE = 1 << 1,
	ST_PREAUTH = 1 << 2,
	ST_AUTHED = 1 << 3,
};
#define ST_ANY (ST_START | ST_PREFACE | ST_PREAUTH | ST_AUTHED)

struct mchild {
	uint32_t id;
	pid_t pid;
	int pidfd;		/* ours; -1 once reaped */
	bool exited;
	int status;
	bool sftp;
	bool rec_open;
	int64_t rec;
};

struct mon {
	int fd;
	int startup_fd;
	const struct mon_peer *peer;
	const struct moat_sshd_config *cfg;
	const struct moat_sshd_hooks *h;
	enum mon_state state;
	pid_t spid;		/* the session process */
	int spidfd;
	int64_t deadline_ms;	/* login grace; 0 once authenticated */
	char relay_sandbox[128];
	char user[USER_MAX + 1];	/* the sandbox, once authenticated */
	char who[160];
	int failures;
	char why[96];
	char tried[USER_MAX + 1];	/* last user name tried, log-safe */
	struct mchild *kids;		/* grows to MON_CHILDREN_MAX */
	int nkids;
	int capkids;
	uint32_t next_id;
	struct moat_ratelimit logrl;
};

/* A handler's verdict besides 0 (go on). */
#define MON_FINISH 1		/* replied; the connection ends normally */

struct mon_row {
	uint32_t type;
	const char *name;
	unsigned states;	/* where the request is allowed */
	int (*fn)(struct mon *, struct mon_msg *);
};

static const char *
state_name(enum mon_state s)
{
	switch (s) {
	case ST_START:
		return "start";
	case ST_PREFACE:
		return "preface";
	case ST_PREAUTH:
		return "preauth";
	case ST_AUTHED:
		return "authed";
	}
	return "?";
}

static int
reply(struct mon *m, struct mon_msg *r)
{
	int rc = mon_send(m->fd, r);

	mon_msg_free(r);
	return rc == 0 ? 0 : MON_FINISH;
}

static int
reply_rc(struct mon *m, uint32_t type, int rc)
{
	struct mon_msg r;

	mon_msg_init(&r, type | MON_REPLY);
	mon_put_u32(&r, (uint32_t)rc);
	return reply(m, &r);
}

/* ---- start and preface ---- */

static int
req_hello(struct mon *m, struct mon_msg *q)
{
	/* The kernel's word, not the message's: SCM_CREDENTIALS. */
	if (!mon_msg_done(q) || q->pid <= 0)
		return MOAT_ERR_INVALID;
	m->spid = q->pid;
	m->spidfd = (int)syscall(SYS_pidfd_open, m->spid, 0);
	m->state = m->peer->relay && m->cfg->relay_secret != NULL ?
	    ST_PREFACE : ST_PREAUTH;
	return 0;
}

static int
req_relay(struct mon *m, struct mon_msg *q)
{
	struct moat_cause why = { "" };
	struct mon_msg r;
	const char *line;
	int rc;

	if (!mon_get_str(q, &line, MOAT_RELAY_LINE_MAX) || !mon_msg_done(q))
		return MOAT_ERR_INVALID;
	rc = moat_relay_preface_verify(line, m->cfg->relay_secret,
	    m->cfg->relay_skew_s > 0 ? m->cfg->relay_skew_s : 300,
	    (int64_t)time(NULL), m->cfg->relay_cache, m->relay_sandbox,
	    sizeof(m->relay_sandbox), &why);
	mon_msg_init(&r, MON_RELAY | MON_REPLY);
	mon_put_u32(&r, rc == 0);
	mon_put_str(&r, rc == 0 ? m->relay_sandbox : why.msg);
	if (rc != 0) {
		log_info("relay preface from %s refused: %s", m->peer->text,
		    why.msg);
		m->relay_sandbox[0] = '\0';
		(void)reply(m, &r);
		return MON_FINISH;
	}
	m->state = ST_PREAUTH;
	return reply(m, &r);
}

/* ---- authentication ---- */

static bool
key_authorized(struct mon *m, const char *user, const char *type,
    const char *b64)
{
	if (user[0] == '\0' || strlen(user) > USER_MAX) {
		snprintf(m->why, sizeof(m->why), "no sandbox of that name");
		return false;
	}
	if ((m->relay_sandbox[0] != '\0' &&
	    strcmp(user, m->relay_sandbox) != 0) ||
	    !m->h->sandbox_exists(m->h->arg, user)) {
		snprintf(m->why, sizeof(m->why), "no sandbox of that name");
		return false;
	}
	if (!m->h->authorized(m->h->arg, user, type, b64)) {
		snprintf(m->why, sizeof(m->why),
		    "no authorized key for that sandbox");
		return false;
	}
	return true;
}

/*
 * "key:SHA256:..." (as OpenSSH prints it: unpadded base64 of the SHA-256
 * of the key blob) of a key that matched an authorized one exactly.
 * Stack buffers only: this process shares its pages with its parent.
 */
static void
set_who(struct mon *m, const char *b64)
{
	unsigned char blob[KEYBLOB_MAX], md[EVP_MAX_MD_SIZE];
	char fp[EVP_MAX_MD_SIZE * 2];
	unsigned int mdlen = 0;
	size_t len = strlen(b64), pad = 0;
	int n;

	if (m->relay_sandbox[0] != '\0') {
		snprintf(m->who, sizeof(m->who), "relay:%s", m->relay_sandbox);
		return;
	}
	snprintf(m->who, sizeof(m->who), "key:?");
	while (pad < 2 && len > pad && b64[len - 1 - pad] == '=')
		pad++;
	if (len % 4 != 0 || len / 4 * 3 > sizeof(blob) ||
	    (n = EVP_DecodeBlock(blob, (const unsigned char *)b64,
		(int)len)) < 0 ||
	    EVP_Digest(blob, (size_t)n - pad, md, &mdlen, EVP_sha256(),
		NULL) != 1)
		return;
	n = EVP_EncodeBlock((unsigned char *)fp, md, (int)mdlen);
	while (n > 0 && fp[n - 1] == '=')
		fp[--n] = '\0';
	snprintf(m->who, sizeof(m->who), "key:SHA256:%s", fp);
}

static int
req_auth(struct mon *m, struct mon_msg *q)
{
	const char *user, *type, *b64;
	uint32_t probe;
	int max = m->cfg->max_auth_tries > 0 ? m->cfg->max_auth_tries : 6;
	bool ok;

	if (!mon_get_u32(q, &probe) || probe > 1 ||
	    !mon_get_str(q, &user, USER_MAX + 64) ||
	    !mon_get_str(q, &type, KEYTYPE_MAX) ||
	    !mon_get_str(q, &b64, KEYB64_MAX) || !mon_msg_done(q))
		return MOAT_ERR_INVALID;
	mon_log_safe(user, m->tried, sizeof(m->tried));
	ok = key_authorized(m, user, type, b64);
	if (!ok) {
		/* The session process stops at max; one more is a breach. */
		if (++m->failures > max)
			return MOAT_ERR_DENIED;
		log_verbose("auth refused for %s from %s (%d)", m->tried,
		    m->peer->text, m->failures);
		return reply_rc(m, MON_AUTH, 0);
	}
	if (probe == 0) {
		snprintf(m->user, sizeof(m->user), "%s", user);
		set_who(m, b64);
		m->state = ST_AUTHED;
		m->deadline_ms = 0;
		/* Out of the listener's pre-auth count (MaxStartups). */
		moat_close(m->startup_fd);
		m->startup_fd = -1;
		log_info("%s authenticated for %s from %s", m->who, m->user,
		    m->peer->text);
	}
	return reply_rc(m, MON_AUTH, 1);
}

/* ---- after authentication ---- */

static int
req_pty(struct mon *m, struct mon_msg *q)
{
	struct moat_cause cause = { "" };
	struct mon_msg r;
	int master = -1, slave = -1, rc;

	if (!mon_msg_done(q))
		return MOAT_ERR_INVALID;
	if (m->h->openpty != NULL)
		rc = m->h->openpty(m->h->arg, m->user, &master, &slave, &cause);
	else
		rc = moat_pty_open(NULL, &master, &slave, &cause);
	mon_msg_init(&r, MON_PTY | MON_REPLY);
	mon_put_u32(&r, (uint32_t)rc);
	mon_put_str(&r, cause.msg);
	if (rc == 0) {
		mon_put_fd(&r, master);
		mon_put_fd(&r, slave);
	}
	rc = reply(m, &r);
	moat_close(master);
	moat_close(slave);
	return rc;
}

/* A pipe for a pipe session, a pty slave for a pty session. */
static bool
fd_kind_ok(int fd, bool pty)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return false;
	if (!pty)
		return S_ISFIFO(st.st_mode);
	/* UNIX98 pty slaves: majors 136-143. */
	return S_ISCHR(st.st_mode) && major(st.st_rdev) >= 136 &&
	    major(st.st_rdev) <= 143;
}

/* The env entries: "NAME=value", NAME on the allowlist, each checked here. */
static bool
read_env(struct mon_msg *q, const char **env, uint32_t *nenv)
{
	char name[MON_ENV_LEN];

	if (!mon_get_u32(q, nenv) || *nenv > MON_ENV_MAX)
		return false;
	for (uint32_t i = 0; i < *nenv; i++) {
		const char *eq;
		if (!mon_get_str(q, &env[i], MON_ENV_LEN - 1) ||
		    (eq = strchr(env[i], '=')) == NULL || eq == env[i])
			return false;
		memcpy(name, env[i], (size_t)(eq - env[i]));
		name[eq - env[i]] = '\0';
		if (!moat_env_allowed(name))
			return false;
	}
	env[*nenv] = NULL;
	return true;
}

static void
record_start(struct mon *m, struct mchild *k, const char *kind)
{
	if (m->h->session_start == NULL)
		return;
	m->h->session_start(m->h->arg, m->user, m->who, m->peer->text, kind,
	    &k->rec);
	k->rec_open = true;
}

static void
record_end(struct mon *m, struct mchild *k)
{
	if (!k->rec_open || m->h->session_end == NULL)
		return;
	k->rec_open = false;
	if (WIFSIGNALED(k->status))
		m->h->session_end(m->h->arg, k->rec, -1,
		    moat_signal_name(WTERMSIG(k->status)));
	else
		m->h->session_end(m->h->arg, k->rec, WEXITSTATUS(k->status),
		    NULL);
}

static int
spawn_reply(struct mon *m, int rc, uint32_t id, const char *cause, int pidfd)
{
	struct mon_msg r;

	mon_msg_init(&r, MON_SPAWN | MON_REPLY);
	mon_put_u32(&r, (uint32_t)rc);
	mon_put_u32(&r, id);
	mon_put_str(&r, cause);
	if (pidfd >= 0)
		mon_put_fd(&r, pidfd);
	return reply(m, &r);
}

static bool
kids_room(struct mon *m)
{
	struct mchild *k;
	int cap;

	if (m->nkids < m->capkids)
		return true;
	cap = m->capkids != 0 ? m->capkids * 2 : 4;
	if ((k = realloc(m->kids, (size_t)cap * sizeof(*k))) == NULL)
		return false;
	m->kids = k;
	m->capkids = cap;
	return true;
}

static int
req_spawn(struct mon *m, struct mon_msg *q)
{
	static const char *const kinds[] = { "shell", "exec", "sftp" };
	const char *env[MON_ENV_MAX + 1], *cmd, *argv[4] = { "/bin/bash", "-c",
		NULL, NULL };
	struct moat_cause cause = { "" };
	struct moat_sshd_spawn sp;
	struct mchild *k;
	uint32_t kind, nenv;
	int pidfd = -1, rc;
	bool pty = q->nfds == 1;
	pid_t pid;

	if (!mon_get_u32(q, &kind) || kind > MON_KIND_SFTP ||
	    !mon_get_str(q, &cmd, MON_CMD_MAX) || !read_env(q, env, &nenv) ||
	    !mon_msg_done(q) || (q->nfds != 1 && q->nfds != 3) ||
	    (pty && kind == MON_KIND_SFTP) ||
	    (kind != MON_KIND_EXEC && cmd[0] != '\0'))
		return MOAT_ERR_INVALID;
	for (int i = 0; i < q->nfds; i++)
		if (!fd_kind_ok(q->fds[i], pty))
			return MOAT_ERR_INVALID;
	if (m->nkids >= MON_CHILDREN_MAX || !kids_room(m))
		return spawn_reply(m, MOAT_ERR_AGAIN, 0, "too many sessions",
		    -1);
	memset(&sp, 0, sizeof(sp));
	argv[2] = cmd;
	sp.argv = kind == MON_KIND_EXEC ? argv : NULL;
	sp.command = kind == MON_KIND_EXEC ? cmd : NULL;
	sp.env = env;
	for (int i = 0; i < 3; i++)
		sp.fds[i] = q->fds[pty ? 0 : i];
	sp.pty = pty;
	sp.login = kind == MON_KIND_SHELL;
	sp.subsystem = kind == MON_KIND_SFTP ? "sftp" : NULL;
	if ((rc = m->h->spawn(m->h->arg, m->user, &sp, &pid, &cause)) != 0) {
		log_warn_r(rc, "spawn %s for %s: %s", kinds[kind], m->user,
		    cause.msg);
		return spawn_reply(m, rc, 0, cause.msg, -1);
	}
	k = &m->kids[m->nkids++];
	memset(k, 0, sizeof(*k));
	k->id = ++m->next_id;
	k->pid = pid;
	k->sftp = kind == MON_KIND_SFTP;
	k->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (k->pidfd >= 0)
		pidfd = fcntl(k->pidfd, F_DUPFD_CLOEXEC, 3);
	record_start(m, k, kinds[kind]);
	log_info("%s%s started pid %d for %s", kinds[kind], pty ? " (pty)" :
	    "", (int)pid, m->user);
	rc = spawn_reply(m, 0, k->id, "", pidfd);
	moat_close(pidfd);
	return rc;
}

static struct mchild *
kid_find(struct mon *m, uint32_t id)
{
	for (int i = 0; i < m->nkids; i++)
		if (m->kids[i].id == id)
			return &m->kids[i];
	return NULL;
}

static void
kid_reap(struct mon *m, struct mchild *k)
{
	if (k->exited || !moat_proc_reap(k->pid, &k->status))
		return;
	k->exited = true;
	moat_close(k->pidfd);
	k->pidfd = -1;
	record_end(m, k);
}

static void
kid_drop(struct mon *m, struct mchild *k)
{
	moat_close(k->pidfd);
	*k = m->kids[--m->nkids];
}

static int
req_wait(struct mon *m, struct mon_msg *q)
{
	struct mchild *k;
	struct mon_msg r;
	uint32_t id;

	if (!mon_get_u32(q, &id) || !mon_msg_done(q) ||
	    (k = kid_find(m, id)) == NULL)
		return MOAT_ERR_INVALID;
	kid_reap(m, k);
	mon_msg_init(&r, MON_WAIT | MON_REPLY);
	mon_put_u32(&r, k->exited ? 0 : (uint32_t)MOAT_ERR_AGAIN);
	mon_put_u32(&r, k->exited ? (uint32_t)k->status : 0);
	if (k->exited)
		kid_drop(m, k);
	return reply(m, &r);
}

static int
req_signal(struct mon *m, struct mon_msg *q)
{
	uint32_t id, sig;
	struct mchild *k;

	if (!mon_get_u32(q, &id) || !mon_get_u32(q, &sig) ||
	    !mon_msg_done(q) || (k = kid_find(m, id)) == NULL ||
	    sig > 64 || moat_signal_from_name(moat_signal_name((int)sig)) !=
	    (int)sig)
		return MOAT_ERR_INVALID;
	/* As sshd: no signals to subsystems. */
	if (k->exited || k->sftp)
		return reply_rc(m, MON_SIGNAL, MOAT_ERR_DENIED);
	if (killpg(k->pid, (int)sig) == -1)
		(void)kill(k->pid, (int)sig);
	return reply_rc(m, MON_SIGNAL, 0);
}

static int
req_dial(struct mon *m, struct mon_msg *q)
{
	struct moat_cause cause = { "" };
	const char *host, *target;
	struct mon_msg r;
	uint32_t port;
	int fd = -1, rc;

	if (!mon_get_str(q, &host, HOST_MAX) || !mon_get_u32(q, &port) ||
	    !mon_msg_done(q))
		return MOAT_ERR_INVALID;
	if ((target = mon_loopback_target(host)) == NULL || port == 0 ||
	    port > 65535) {
		rc = MOAT_ERR_DENIED;
		moat_cause_set(&cause, "not a loopback target");
	} else if (m->h->connect == NULL) {
		rc = MOAT_ERR_UNSUPPORTED;
		moat_cause_set(&cause, "no forwarding here");
	} else {
		rc = m->h->connect(m->h->arg, m->user, target, (uint16_t)port,
		    &fd, &cause);
	}
	mon_msg_init(&r, MON_DIAL | MON_REPLY);
	mon_put_u32(&r, (uint32_t)rc);
	mon_put_str(&r, cause.msg);
	if (rc == 0)
		mon_put_fd(&r, fd);
	rc = reply(m, &r);
	moat_close(fd);
	return rc;
}

static int
req_log(struct mon *m, struct mon_msg *q)
{
	char safe[MON_LOG_LEN + 1];
	const char *text;
	uint32_t level;

	if (!mon_get_u32(q, &level) || !mon_get_str(q, &text, MON_LOG_LEN) ||
	    !mon_msg_done(q))
		return MOAT_ERR_INVALID;
	if (level < MOAT_LOG_ERROR)
		level = MOAT_LOG_ERROR;
	if (level > MOAT_LOG_DEBUG)
		level = MOAT_LOG_DEBUG;
	if (!moat_log_enabled((enum moat_log_level)level) ||
	    !moat_ratelimit_ok(&m->logrl))
		return 0;
	mon_log_safe(text, safe, sizeof(safe));
	moat_log((enum moat_log_level)level, __FILE__, __LINE__, "session", 0,
	    false, "[%d] %s", (int)m->spid, safe);
	return 0;
}

/* The table: every request the session process may make, and when. */
static const struct mon_row mon_table[] = {
	{ MON_HELLO,	"hello",	ST_START,	req_hello },
	{ MON_RELAY,	"relay",	ST_PREFACE,	req_relay },
	{ MON_AUTH,	"auth",		ST_PREAUTH,	req_auth },
	{ MON_PTY,	"pty",		ST_AUTHED,	req_pty },
	{ MON_SPAWN,	"spawn",	ST_AUTHED,	req_spawn },
	{ MON_WAIT,	"wait",		ST_AUTHED,	req_wait },
	{ MON_SIGNAL,	"signal",	ST_AUTHED,	req_signal },
	{ MON_DIAL,	"dial",		ST_AUTHED,	req_dial },
	{ MON_LOG,	"log",		ST_ANY & ~ST_START, req_log },
};

/* One request: 0 go on, MON_FINISH done, < 0 a breach. */
static int
dispatch(struct mon *m, struct mon_msg *q)
{
	const struct mon_row *row = NULL;
	uint32_t type = 0;
	int rc;

	if (mon_get_type(q, &type))
		for (size_t i = 0; i < MOAT_NELEM(mon_table); i++)
			if (mon_table[i].type == type)
				row = &mon_table[i];
	if (row == NULL) {
		log_warn("ssh monitor for %s: unknown request %u in state %s; "
		    "ending the connection", m->peer->text, type,
		    state_name(m->state));
		return MOAT_ERR_DENIED;
	}
	if ((row->states & m->state) == 0) {
		log_warn("ssh monitor for %s: request %s not allowed in state "
		    "%s; ending the connection", m->peer->text, row->name,
		    state_name(m->state));
		return MOAT_ERR_DENIED;
	}
	if ((rc = row->fn(m, q)) < 0)
		log_warn("ssh monitor for %s: malformed or refused %s request "
		    "in state %s; ending the connection", m->peer->text,
		    row->name, state_name(m->state));
	return rc;
}

static bool
fz_false(void *arg, const char *a, const char *b, const char *c)
{
	return strcmp(a, "box") == 0 && strcmp(b, "ssh-ed25519") == 0;
}

static bool
fz_exists(void *arg, const char *a)
{
	return strcmp(a, "box") == 0;
}

static int
fz_spawn(void *arg, const char *sb, const struct moat_sshd_spawn *s,
    pid_t *pid, struct moat_cause *cause)
{
	return MOAT_ERR_UNSUPPORTED;
}

int
mon_fuzz_one(const uint8_t *data, size_t len, unsigned state)
{
	static const struct moat_sshd_hooks h = { NULL, fz_false, fz_exists,
		fz_spawn, NULL, NULL, NULL, NULL, NULL };
	static const struct moat_sshd_config cfg = { .max_auth_tries = 6 };
	static const struct mon_peer peer = { "fuzz", false };
	struct mon m = { 0 };
	struct mon_msg q;
	int rc;

	memset(&q, 0, sizeof(q));
	for (int i = 0; i < MON_FDS_MAX; i++)
		q.fds[i] = -1;
	if ((q.buf = malloc(len > 0 ? len : 1)) == NULL)
		return 0;
	memcpy(q.buf, data, len);
	q.len = q.cap = len;
	q.pid = 1;
	m.fd = m.startup_fd = m.spidfd = -1;
	m.peer = &peer;
	m.cfg = &cfg;
	m.h = &h;
	m.state = 1u << (state % 4);
	rc = dispatch(&m, &q);
	mon_msg_free(&q);
	moat_close(m.spidfd);
	while (m.nkids > 0)
		kid_drop(&m, &m.kids[m.nkids - 1]);
	free(m.kids);
	return rc;
}

/* ---- the loop ---- */

static int
poll_timeout(const struct mon *m)
{
	int64_t left;

	if (m->deadline_ms == 0)
		return -1;
	left = m->deadline_ms - moat_now_ms();
	return left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
}

static void
reap_ready(struct mon *m, const struct pollfd *p, int n)
{
	for (int i = 0; i < n; i++) {
		if (p[i].revents == 0)
			continue;
		for (int j = 0; j < m->nkids; j++)
			if (m->kids[j].pidfd == p[i].fd)
				kid_reap(m, &m->kids[j]);
	}
}

static int
serve(struct mon *m)
{
	struct pollfd p[1 + MON_CHILDREN_MAX];
	struct mon_msg q;
	int n, rc;

	for (;;) {
		n = 0;
		p[n++] = (struct pollfd){ m->fd, POLLIN, 0 };
		for (int i = 0; i < m->nkids; i++)
			if (m->kids[i].pidfd >= 0)
				p[n++] = (struct pollfd){ m->kids[i].pidfd,
					POLLIN, 0 };
		rc = poll(p, (nfds_t)n, poll_timeout(m));
		if (rc < 0 && errno != EINTR)
			return MOAT_ERR_SYSTEM;
		if (m->deadline_ms != 0 && moat_now_ms() >= m->deadline_ms) {
			log_info("login grace over for %s", m->peer->text);
			return MOAT_ERR_DENIED;
		}
		reap_ready(m, p + 1, n - 1);
		if (rc <= 0 || p[0].revents == 0)
			continue;
		rc = mon_recv(m->fd, &q, false);
		if (rc == MOAT_ERR_NOTFOUND) {
			mon_msg_free(&q);
			return 0;
		}
		if (rc == 0)
			rc = dispatch(m, &q);
		else if (rc == MOAT_ERR_INVALID)
			log_warn("ssh monitor for %s: truncated request; ending "
			    "the connection", m->peer->text);
		mon_msg_free(&q);
		if (rc == MON_FINISH)
			return 0;
		if (rc < 0)
			return rc == MOAT_ERR_INVALID ? MOAT_ERR_DENIED : rc;
	}
}

/* The session is over: hang up what is left and wait for it, bounded. */
static void
hang_up(struct mon *m)
{
	int64_t until = moat_now_ms() + HANGUP_WAIT_MS;
	struct pollfd p[MON_CHILDREN_MAX];
	int n;

	for (int i = 0; i < m->nkids; i++) {
		struct mchild *k = &m->kids[i];
		kid_reap(m, k);
		if (!k->exited && killpg(k->pid, SIGHUP) == -1 &&
		    errno == ESRCH)
			(void)kill(k->pid, SIGHUP);
	}
	for (;;) {
		n = 0;
		for (int i = 0; i < m->nkids; i++)
			if (m->kids[i].pidfd >= 0)
				p[n++] = (struct pollfd){ m->kids[i].pidfd,
					POLLIN, 0 };
		if (n == 0 || moat_now_ms() >= until)
			break;
		(void)poll(p, (nfds_t)n, (int)(until - moat_now_ms()));
		reap_ready(m, p, n);
	}
	while (m->nkids > 0)
		kid_drop(m, &m->kids[m->nkids - 1]);
}

int
moat_sshd_monitor_run(int fd, int startup_fd, const struct mon_peer *peer,
    const struct moat_sshd_config *cfg, const struct moat_sshd_hooks *h)
{
	struct mon *m;
	int rc;

	if ((m = calloc(1, sizeof(*m))) == NULL)
		return MOAT_ERR_NOMEM;
	m->fd = fd;
	m->startup_fd = startup_fd;
	m->peer = peer;
	m->cfg = cfg;
	m->h = h;
	m->state = ST_START;
	m->spidfd = -1;
	m->logrl.burst = 20;
	m->deadline_ms = moat_now_ms() + 1000LL * ((cfg->login_grace_s > 0 ?
	    cfg->login_grace_s : 30) + GRACE_MARGIN_S);
	rc = serve(m);
	if (rc < 0 && m->spidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, m->spidfd, SIGKILL, NULL,
		    0);
	moat_close(m->fd);
	moat_close(m->startup_fd);
	if (m->state != ST_AUTHED && m->failures > 0)
		log_info("login failed for %s from %s: %s (%d attempt%s)",
		    m->tried, peer->text, m->why, m->failures,
		    m->failures == 1 ? "" : "s");
	hang_up(m);
	moat_close(m->spidfd);
	free(m->kids);
	free(m);
	return rc;
}
