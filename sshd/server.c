/*
 * Listener, accept+fork, host key, and the per-connection process:
 * key exchange, public-key authentication, and the one ssh_event loop
 * that carries every channel of the connection.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "sshd/internal.h"
#include "sshd/relay.h"

#define LOOP_IDLE_MS 10000
#define HANGUP_WAIT_MS 2000

int
moat_sshd_hostkey_ensure(const char *path, struct moat_cause *cause)
{
	ssh_key key = NULL;
	char tmp[4096];
	int fd = -1, r = MOAT_ERR_SYSTEM;

	if (access(path, F_OK) == 0)
		return MOAT_OK;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >=
	    (int)sizeof(tmp)) {
		moat_cause_set(cause, "%s: path too long", path);
		return MOAT_ERR_INVALID;
	}
	/* Created 0600 first: the export below keeps the mode of the file. */
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) ==
	    -1) {
		moat_cause_errno(cause, "create %s", tmp);
		goto out;
	}
	moat_close(fd);
	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK ||
	    ssh_pki_export_privkey_file(key, NULL, NULL, NULL, tmp) != SSH_OK) {
		moat_cause_set(cause, "%s: cannot generate an ed25519 key", path);
		r = MOAT_ERR_INTERNAL;
		goto out;
	}
	if (chmod(tmp, 0600) == -1 || rename(tmp, path) == -1) {
		moat_cause_errno(cause, "install %s", path);
		goto out;
	}
	r = MOAT_OK;
out:
	if (r != MOAT_OK)
		(void)unlink(tmp);
	ssh_key_free(key);
	return r;
}

int
moat_sshd_hostkey_fingerprint(const char *path, char *out, size_t len,
    struct moat_cause *cause)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL;
	int r = MOAT_ERR_INVALID;

	if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &key) !=
	    SSH_OK) {
		moat_cause_set(cause, "%s: not a private key libssh can read",
		    path);
		goto out;
	}
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash,
	    &hlen) != 0 || (fp = ssh_get_fingerprint_hash(
	    SSH_PUBLICKEY_HASH_SHA256, hash, hlen)) == NULL) {
		moat_cause_set(cause, "%s: cannot hash the key", path);
		goto out;
	}
	snprintf(out, len, "%s", fp);
	r = MOAT_OK;
out:
	ssh_string_free_char(fp);
	ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
	return r;
}

int
moat_sshd_listen(const char *addr, uint16_t port, int *fdp,
    struct moat_cause *cause)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl;
	int fd = -1, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
	} else {
		moat_cause_set(cause, "%s: not an IP address", addr);
		return MOAT_ERR_INVALID;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		moat_cause_errno(cause, "socket");
		return MOAT_ERR_SYSTEM;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) == -1 ||
	    listen(fd, 128) == -1) {
		moat_cause_errno(cause, "listen on %s port %u", addr,
		    (unsigned)port);
		moat_close(fd);
		return MOAT_ERR_SYSTEM;
	}
	*fdp = fd;
	return MOAT_OK;
}

static void
peer_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;
		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		snprintf(out, len, "%s:%u", a, ntohs(s->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		snprintf(out, len, "[%s]:%u", a, ntohs(s->sin6_port));
	} else {
		snprintf(out, len, "unix");
	}
}

int
moat_sshd_accept_fork(int listen_fd, bool relay,
    const struct moat_sshd_config *c, const struct moat_sshd_hooks *h,
    pid_t *child)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char peer[128];
	int fd, one = 1, r;
	pid_t pid;

	memset(&ss, 0, sizeof(ss));
	fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
		    errno == ECONNABORTED)
			return MOAT_ERR_AGAIN;
		return MOAT_ERR_SYSTEM;
	}
	if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
		/* Keystrokes must not wait for delayed ACKs (notes-ssh §1.7). */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	}
	peer_text(&ss, peer, sizeof(peer));
	if ((pid = fork()) == -1) {
		moat_close(fd);
		return MOAT_ERR_SYSTEM;
	}
	if (pid == 0) {
		moat_close(listen_fd);
		r = moat_sshd_serve(fd, relay, peer, c, h);
		_exit(r == 0 ? 0 : 1);
	}
	moat_close(fd);
	*child = pid;
	return MOAT_OK;
}

/* ---- the connection process ---- */

static void
grace_expired(int sig)
{
	/* Login grace over (sshd does the same): no cleanup to race with. */
	_exit(2);
}

static void
ignore_sig(int sig)
{
}

/*
 * The parent (moatd) may have blocked signals for its signalfd; this
 * process needs SIGALRM for the login grace and EPIPE instead of SIGPIPE.
 * A handler, not SIG_IGN, so children get the default back at exec.
 */
static void
conn_signals(void)
{
	struct sigaction sa;
	sigset_t all;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = grace_expired;
	sigaction(SIGALRM, &sa, NULL);
	sa.sa_handler = ignore_sig;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
}

static bool
user_ok(struct conn *c, const char *user)
{
	if (user == NULL || user[0] == '\0' || strlen(user) >= sizeof(c->user))
		return false;
	if (c->relay_sandbox[0] != '\0' && strcmp(user, c->relay_sandbox) != 0)
		return false;
	return c->h->sandbox_exists(c->h->arg, user);
}

static bool
key_ok(struct conn *c, const char *user, ssh_key key)
{
	const char *type = ssh_key_type_to_char(ssh_key_type(key));
	char *b64 = NULL;
	bool ok = false;

	if (type == NULL || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK)
		return false;
	ok = c->h->authorized(c->h->arg, user, type, b64);
	ssh_string_free_char(b64);
	return ok;
}

static void
set_who(struct conn *c, ssh_key key)
{
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp = NULL;

	if (c->relay_sandbox[0] != '\0') {
		snprintf(c->who, sizeof(c->who), "relay:%s", c->relay_sandbox);
		return;
	}
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash,
	    &hlen) == 0 &&
	    (fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash,
		hlen)) != NULL)
		snprintf(c->who, sizeof(c->who), "key:%s", fp);
	else
		snprintf(c->who, sizeof(c->who), "key:?");
	ssh_string_free_char(fp);
	ssh_clean_pubkey_hash(&hash);
}

/*
 * The probe (STATE_NONE) gets PK_OK only for an authorized key, so
 * clients never sign (or ask a FIDO token) for a key we would refuse;
 * the signed attempt (STATE_VALID) is checked again. An unknown sandbox
 * looks exactly like a wrong key.
 */
static int
on_auth_pubkey(ssh_session s, const char *user, struct ssh_key_struct *key,
    char state, void *ud)
{
	struct conn *c = ud;
	bool ok;

	ok = (state == SSH_PUBLICKEY_STATE_NONE ||
	    state == SSH_PUBLICKEY_STATE_VALID) && !c->authed &&
	    user_ok(c, user) && key_ok(c, user, key);
	if (!ok) {
		c->auth_failures++;
		/* For the operator's log only; the client learns nothing. */
		snprintf(c->auth_why, sizeof(c->auth_why), "%s",
		    user == NULL || !user_ok(c, user) ? "no sandbox of that name" :
		    "no authorized key for that sandbox");
		snprintf(c->user, sizeof(c->user), "%s", user ? user : "?");
		log_verbose("auth refused for %s from %s (%d)",
		    user != NULL ? user : "?", c->peer, c->auth_failures);
		return SSH_AUTH_DENIED;
	}
	if (state == SSH_PUBLICKEY_STATE_NONE)
		return SSH_AUTH_SUCCESS;
	snprintf(c->user, sizeof(c->user), "%s", user);
	set_who(c, key);
	c->authed = true;
	log_info("%s authenticated for %s from %s", c->who, c->user, c->peer);
	return SSH_AUTH_SUCCESS;
}

static int
loop_timeout(struct conn *c)
{
	int64_t now = moat_now_ms();
	int t = LOOP_IDLE_MS, ct;

	for (struct chan *ch = c->chans; ch != NULL; ch = ch->next)
		if ((ct = chan_timeout_ms(ch, now)) >= 0 && ct < t)
			t = ct;
	return t;
}

/*
 * Any libssh call below may process packets re-entrantly (a flush polls
 * the session), which can open a new channel and push it on c->chans.
 * So the list is only walked forward while stepping, finished channels
 * are unlinked by pointer moves alone, and freed after that.
 */
static void
conn_step(struct conn *c)
{
	struct chan **pp, *ch, *dead = NULL;

	for (ch = c->chans; ch != NULL; ch = ch->next)
		chan_step(ch);
	pp = &c->chans;
	while ((ch = *pp) != NULL) {
		if (chan_done(ch)) {
			*pp = ch->next;
			ch->next = dead;
			dead = ch;
		} else {
			pp = &ch->next;
		}
	}
	while ((ch = dead) != NULL) {
		dead = ch->next;
		chan_free(ch);
	}
	for (ch = c->chans; ch != NULL; ch = ch->next)
		chan_sync_watches(ch);
}

static bool
conn_alive(struct conn *c)
{
	return (ssh_get_status(c->s) & (SSH_CLOSED | SSH_CLOSED_ERROR)) == 0 &&
	    ssh_is_connected(c->s);
}

/* Client gone: hang up every child, give them a moment to be reaped. */
static void
conn_teardown(struct conn *c)
{
	int64_t until = moat_now_ms() + HANGUP_WAIT_MS;
	struct chan *ch;

	c->closing = true;
	for (ch = c->chans; ch != NULL; ch = ch->next)
		chan_hangup(ch);
	while (c->chans != NULL && moat_now_ms() < until) {
		conn_step(c);
		if (c->chans != NULL)
			usleep(20000);
	}
	while ((ch = c->chans) != NULL) {
		c->chans = ch->next;
		chan_free(ch);
	}
}

static int
conn_loop(struct conn *c)
{
	bool grace_off = false;
	int r;

	for (;;) {
		r = ssh_event_dopoll(c->ev, loop_timeout(c));
		if (c->authed && !grace_off) {
			alarm(0);
			grace_off = true;
		}
		if (c->auth_failures >= (c->cfg->max_auth_tries > 0 ?
		    c->cfg->max_auth_tries : 6)) {
			log_info("too many authentication failures from %s",
			    c->peer);
			ssh_disconnect(c->s);
			return MOAT_ERR_DENIED;
		}
		conn_step(c);
		if (r == SSH_ERROR || !conn_alive(c))
			break;
	}
	return MOAT_OK;
}

static int
conn_setup(struct conn *c, ssh_bind *bindp, int fd)
{
	ssh_bind b = NULL;
	int verbosity = SSH_LOG_NOLOG;
	bool no = false;

	if ((b = ssh_bind_new()) == NULL || (c->s = ssh_new()) == NULL)
		goto fail;
	*bindp = b;
	ssh_bind_options_set(b, SSH_BIND_OPTIONS_LOG_VERBOSITY, &verbosity);
	ssh_bind_options_set(b, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no);
	for (const char *const *k = c->cfg->hostkey_paths; k && *k; k++)
		if (ssh_bind_options_set(b, SSH_BIND_OPTIONS_HOSTKEY, *k) < 0)
			goto fail;
	if (ssh_bind_accept_fd(b, c->s, fd) != SSH_OK)
		goto fail;
	c->scb.userdata = c;
	c->scb.auth_pubkey_function = on_auth_pubkey;
	c->scb.channel_open_request_session_function = chan_open_session;
	ssh_callbacks_init(&c->scb);
	ssh_set_server_callbacks(c->s, &c->scb);
	ssh_set_auth_methods(c->s, SSH_AUTH_METHOD_PUBLICKEY);
	/*
	 * direct-tcpip arrives only as a message; no global request
	 * callback, so libssh answers keepalive@openssh.com itself.
	 */
	ssh_set_message_callback(c->s, forward_message_cb, c);
	if (ssh_handle_key_exchange(c->s) != SSH_OK) {
		log_verbose("key exchange with %s: %s", c->peer,
		    ssh_get_error(c->s));
		return MOAT_ERR_INVALID;
	}
	ssh_set_blocking(c->s, 0);
	if ((c->ev = ssh_event_new()) == NULL ||
	    ssh_event_add_session(c->ev, c->s) != SSH_OK)
		goto fail;
	return MOAT_OK;
fail:
	log_error("ssh setup for %s: %s", c->peer,
	    c->s != NULL ? ssh_get_error(c->s) : "out of memory");
	return MOAT_ERR_INTERNAL;
}

int
moat_sshd_serve(int fd, bool relay, const char *peer,
    const struct moat_sshd_config *cfg, const struct moat_sshd_hooks *h)
{
	struct conn c;
	struct moat_cause cause = { "" };
	ssh_bind b = NULL;
	int r, one = 1;

	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	c.h = h;
	snprintf(c.peer, sizeof(c.peer), "%s", peer != NULL ? peer : "?");
	conn_signals();
	alarm(cfg->login_grace_s > 0 ? (unsigned)cfg->login_grace_s : 30);
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (relay && cfg->relay_secret != NULL) {
		r = moat_relay_preface_serve(fd, cfg->relay_secret,
		    cfg->relay_skew_s > 0 ? cfg->relay_skew_s : 300,
		    cfg->relay_cache, c.relay_sandbox, sizeof(c.relay_sandbox),
		    &cause);
		if (r != 0) {
			log_info("relay preface from %s refused: %s", c.peer,
			    cause.msg);
			moat_close(fd);
			return r;
		}
	}
	if ((r = conn_setup(&c, &b, fd)) == 0)
		r = conn_loop(&c);
	/* One line per failed login, not one per key a client offers. */
	if (!c.authed && c.auth_failures > 0)
		log_info("login failed for %s from %s: %s (%d attempt%s)",
		    c.user, c.peer, c.auth_why, c.auth_failures,
		    c.auth_failures == 1 ? "" : "s");
	conn_teardown(&c);
	if (c.ev != NULL) {
		ssh_event_remove_session(c.ev, c.s);
		ssh_event_free(c.ev);
	}
	if (c.s != NULL) {
		ssh_disconnect(c.s);
		ssh_free(c.s);
	} else {
		moat_close(fd);
	}
	ssh_bind_free(b);
	return r;
}
