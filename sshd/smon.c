/*
 * The session process's side of the monitor channel (sshd/monitor.h):
 * one call per request, each sent and answered before the next, so a
 * reply is always the answer to the request just sent. A channel that
 * fails (the monitor died or ended the connection) marks the connection
 * dead; conn_loop then ends it.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "sshd/internal.h"
#include "sshd/monitor.h"

/* Send q and read the reply into r (of type q's | MON_REPLY). */
static int
call(struct conn *c, struct mon_msg *q, uint32_t type, struct mon_msg *r)
{
	uint32_t got;
	int rc;

	r->buf = NULL;
	r->nfds = 0;
	if (c->mon_dead) {
		mon_msg_free(q);
		mon_msg_init(r, 0);
		return MOAT_ERR_SYSTEM;
	}
	rc = mon_send(c->mon, q);
	mon_msg_free(q);
	if (rc == 0)
		rc = mon_recv(c->mon, r, false);
	if (rc == 0 && (!mon_get_type(r, &got) || got != (type | MON_REPLY)))
		rc = MOAT_ERR_INVALID;
	if (rc != 0) {
		c->mon_dead = true;
		return rc;
	}
	return 0;
}

int
smon_hello(struct conn *c)
{
	struct mon_msg q;

	/* No reply: the kernel's SCM_CREDENTIALS tell the monitor our pid. */
	mon_msg_init(&q, MON_HELLO);
	if (mon_send(c->mon, &q) != 0)
		c->mon_dead = true;
	mon_msg_free(&q);
	return c->mon_dead ? MOAT_ERR_SYSTEM : 0;
}

int
smon_relay(struct conn *c, const char *line, char *out, size_t outlen)
{
	struct mon_msg q, r;
	const char *text = "";
	uint32_t ok = 0;
	int rc;

	mon_msg_init(&q, MON_RELAY);
	mon_put_str(&q, line);
	if ((rc = call(c, &q, MON_RELAY, &r)) == 0 &&
	    (!mon_get_u32(&r, &ok) || !mon_get_str(&r, &text, 256) ||
		!mon_msg_done(&r)))
		rc = MOAT_ERR_INVALID;
	snprintf(out, outlen, "%s", rc == 0 ? text : "monitor failed");
	mon_msg_free(&r);
	if (rc != 0)
		return rc;
	return ok == 1 ? 0 : MOAT_ERR_DENIED;
}

bool
smon_auth(struct conn *c, const char *user, const char *type,
    const char *b64, bool probe)
{
	struct mon_msg q, r;
	uint32_t ok = 0;

	mon_msg_init(&q, MON_AUTH);
	mon_put_u32(&q, probe ? 1 : 0);
	mon_put_str(&q, user);
	mon_put_str(&q, type);
	mon_put_str(&q, b64);
	if (call(c, &q, MON_AUTH, &r) == 0 &&
	    (!mon_get_u32(&r, &ok) || !mon_msg_done(&r)))
		ok = 0;
	mon_msg_free(&r);
	return ok == 1;
}

/* A reply of u32 rc, str cause and nfds fds. */
static int
rc_cause_fds(struct conn *c, struct mon_msg *r, int *fds, int nfds,
    struct moat_cause *cause)
{
	const char *text = "";
	uint32_t rc;

	if (!mon_get_u32(r, &rc) || !mon_get_str(r, &text, MOAT_CAUSE_LEN) ||
	    !mon_msg_done(r) || ((int)rc == 0 && r->nfds != nfds)) {
		moat_cause_set(cause, "bad reply from the monitor");
		c->mon_dead = true;
		return MOAT_ERR_INTERNAL;
	}
	if ((int)rc != 0) {
		moat_cause_set(cause, "%s", text);
		return (int)rc < 0 ? (int)rc : MOAT_ERR_INTERNAL;
	}
	for (int i = 0; i < nfds; i++)
		fds[i] = mon_take_fd(r, i);
	return 0;
}

int
smon_pty(struct conn *c, int *master, int *slave, struct moat_cause *cause)
{
	struct mon_msg q, r;
	int fds[2] = { -1, -1 }, rc;

	mon_msg_init(&q, MON_PTY);
	if ((rc = call(c, &q, MON_PTY, &r)) == 0)
		rc = rc_cause_fds(c, &r, fds, 2, cause);
	else
		moat_cause_set(cause, "monitor gone");
	mon_msg_free(&r);
	*master = fds[0];
	*slave = fds[1];
	return rc;
}

int
smon_spawn(struct conn *c, uint32_t kind, const char *command,
    char *const *env, const int *fds, int nfds, uint32_t *id, int *pidfd,
    struct moat_cause *cause)
{
	struct mon_msg q, r;
	const char *text = "";
	uint32_t rc32 = 0, n = 0;
	int rc;

	mon_msg_init(&q, MON_SPAWN);
	mon_put_u32(&q, kind);
	mon_put_str(&q, command != NULL ? command : "");
	while (env != NULL && env[n] != NULL)
		n++;
	mon_put_u32(&q, n);
	for (uint32_t i = 0; i < n; i++)
		mon_put_str(&q, env[i]);
	for (int i = 0; i < nfds; i++)
		mon_put_fd(&q, fds[i]);
	if (q.bad) {
		mon_msg_free(&q);
		moat_cause_set(cause, "request too large");
		return MOAT_ERR_INVALID;
	}
	if ((rc = call(c, &q, MON_SPAWN, &r)) != 0) {
		moat_cause_set(cause, "monitor gone");
		mon_msg_free(&r);
		return rc;
	}
	if (!mon_get_u32(&r, &rc32) || !mon_get_u32(&r, id) ||
	    !mon_get_str(&r, &text, MOAT_CAUSE_LEN) || !mon_msg_done(&r)) {
		c->mon_dead = true;
		rc32 = (uint32_t)MOAT_ERR_INTERNAL;
		text = "bad reply from the monitor";
	}
	rc = (int)rc32;
	if (rc != 0)
		moat_cause_set(cause, "%s", text);
	else
		*pidfd = mon_take_fd(&r, 0);
	mon_msg_free(&r);
	return rc;
}

int
smon_wait(struct conn *c, uint32_t id, int *status)
{
	struct mon_msg q, r;
	uint32_t rc = 0, st = 0;
	int ret;

	mon_msg_init(&q, MON_WAIT);
	mon_put_u32(&q, id);
	if ((ret = call(c, &q, MON_WAIT, &r)) == 0 &&
	    (!mon_get_u32(&r, &rc) || !mon_get_u32(&r, &st) ||
		!mon_msg_done(&r)))
		ret = MOAT_ERR_INVALID;
	mon_msg_free(&r);
	if (ret != 0)
		return ret;
	*status = (int)st;
	return (int)rc;
}

void
smon_signal(struct conn *c, uint32_t id, int sig)
{
	struct mon_msg q, r;

	mon_msg_init(&q, MON_SIGNAL);
	mon_put_u32(&q, id);
	mon_put_u32(&q, (uint32_t)sig);
	(void)call(c, &q, MON_SIGNAL, &r);
	mon_msg_free(&r);
}

int
smon_dial(struct conn *c, const char *host, uint16_t port, int *fd,
    struct moat_cause *cause)
{
	struct mon_msg q, r;
	int rc;

	mon_msg_init(&q, MON_DIAL);
	mon_put_str(&q, host);
	mon_put_u32(&q, port);
	if ((rc = call(c, &q, MON_DIAL, &r)) == 0)
		rc = rc_cause_fds(c, &r, fd, 1, cause);
	else
		moat_cause_set(cause, "monitor gone");
	mon_msg_free(&r);
	return rc;
}

/* The log sink of the session process: its lines go to the monitor. */
void
smon_log(void *arg, enum moat_log_level level, const char *line)
{
	struct conn *c = arg;
	char text[MON_LOG_LEN + 1];
	struct mon_msg q;

	if (c->mon_dead)
		return;
	/* Longer would be a malformed request: the monitor would end us. */
	snprintf(text, sizeof(text), "%s", line);
	mon_msg_init(&q, MON_LOG);
	mon_put_u32(&q, (uint32_t)level);
	mon_put_str(&q, text);
	if (!q.bad)
		(void)mon_send(c->mon, &q);
	mon_msg_free(&q);
}
