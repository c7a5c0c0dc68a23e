/*
 * The session process: one per connection, forked from the zygote and
 * already confined by it (no root, no capabilities, an empty root,
 * seccomp, only its socket and its monitor channel). It reads the relay
 * preface, runs key exchange and public-key authentication, and then
 * the one ssh_event loop that carries every channel of the connection.
 * Whatever needs privilege (the key check, a pty, a spawn, a dial) it
 * asks of its monitor (smon.c); its log lines go there too.
 */
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
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
 * This process needs SIGALRM for the login grace and EPIPE instead of
 * SIGPIPE; it runs nothing, so nothing inherits these.
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
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
}

/*
 * The probe (STATE_NONE) gets PK_OK only for an authorized key, so
 * clients never sign (or ask a FIDO token) for a key we would refuse;
 * the signed attempt (STATE_VALID) is checked again. The monitor
 * decides both; an unknown sandbox looks exactly like a wrong key.
 */
static int
on_auth_pubkey(ssh_session s, const char *user, struct ssh_key_struct *key,
    char state, void *ud)
{
	struct conn *c = ud;
	const char *type = ssh_key_type_to_char(ssh_key_type(key));
	char *b64 = NULL;
	bool ok = false;

	if ((state == SSH_PUBLICKEY_STATE_NONE ||
	    state == SSH_PUBLICKEY_STATE_VALID) && !c->authed && user != NULL &&
	    type != NULL && ssh_pki_export_pubkey_base64(key, &b64) == SSH_OK)
		ok = smon_auth(c, user, type, b64,
		    state == SSH_PUBLICKEY_STATE_NONE);
	ssh_string_free_char(b64);
	if (!ok) {
		c->auth_failures++;
		return SSH_AUTH_DENIED;
	}
	if (state == SSH_PUBLICKEY_STATE_NONE)
		return SSH_AUTH_SUCCESS;
	snprintf(c->user, sizeof(c->user), "%s", user);
	c->authed = true;
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
	    ssh_is_connected(c->s) && !c->mon_dead;
}

/*
 * The client is gone: close every channel's fds (children see EOF or a
 * hangup). The monitor then sends SIGHUP to what is left and waits for
 * it; the children are not ours to signal or reap.
 */
static void
conn_teardown(struct conn *c)
{
	struct chan *ch;

	c->closing = true;
	while ((ch = c->chans) != NULL) {
		c->chans = ch->next;
		chan_hangup(ch);
		chan_free(ch);
	}
}

/* Readable outside a call: the monitor ended the connection (EOF). */
static int
mon_cb(socket_t fd, int revents, void *ud)
{
	((struct conn *)ud)->mon_dead = true;
	return 0;
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
conn_setup(struct conn *c, ssh_bind b, int fd)
{
	if ((c->s = ssh_new()) == NULL)
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
	    ssh_event_add_session(c->ev, c->s) != SSH_OK ||
	    ssh_event_add_fd(c->ev, c->mon, POLLIN, mon_cb, c) != SSH_OK)
		goto fail;
	return MOAT_OK;
fail:
	log_error("ssh setup for %s: %s", c->peer,
	    c->s != NULL ? ssh_get_error(c->s) : "out of memory");
	return MOAT_ERR_INTERNAL;
}

/* The preface line goes to the monitor, which holds the secret. */
static int
relay_preface(struct conn *c, int fd)
{
	char line[MOAT_RELAY_LINE_MAX + 1], why[256], out[280];
	struct moat_cause cause = { "" };
	int r;

	if ((r = moat_relay_preface_read(fd, line, sizeof(line), &cause)) !=
	    0) {
		log_info("relay preface from %s refused: %s", c->peer,
		    cause.msg);
		return r;
	}
	r = smon_relay(c, line, why, sizeof(why));
	if (r == 0) {
		memcpy(c->relay_sandbox, why, sizeof(c->relay_sandbox) - 1);
		return moat_write_all(fd, "OK\n", 3);
	}
	/* The reason is safe to tell: it names no secret material. */
	snprintf(out, sizeof(out), "ERR %s\n", why);
	(void)moat_write_all(fd, out, strlen(out));
	return r;
}

int
sess_serve(int fd, int mon, bool relay, const char *peer,
    const struct sess_config *cfg, ssh_bind b)
{
	struct conn c;
	int r;

	memset(&c, 0, sizeof(c));
	c.cfg = cfg;
	c.mon = mon;
	snprintf(c.peer, sizeof(c.peer), "%s", peer != NULL ? peer : "?");
	moat_log_set_sink(smon_log, &c);
	conn_signals();
	alarm(cfg->login_grace_s > 0 ? (unsigned)cfg->login_grace_s : 30);
	if ((r = smon_hello(&c)) != 0)
		goto out;
	if (relay && cfg->relay_preface &&
	    (r = relay_preface(&c, fd)) != 0)
		goto out;
	if ((r = conn_setup(&c, b, fd)) == 0)
		r = conn_loop(&c);
	conn_teardown(&c);
out:
	if (c.ev != NULL) {
		ssh_event_remove_fd(c.ev, c.mon);
		if (c.s != NULL)
			ssh_event_remove_session(c.ev, c.s);
		ssh_event_free(c.ev);
	}
	if (c.s != NULL) {
		ssh_disconnect(c.s);
		ssh_free(c.s);
	} else {
		moat_close(fd);
	}
	moat_close(mon);
	return r;
}
