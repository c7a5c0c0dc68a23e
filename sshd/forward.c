/*
 * direct-tcpip (ssh -L, -W, -D, VS Code's forwarded ports). libssh 0.10
 * has no server callback for it, so it arrives as an ssh_message. The
 * target is connected first, inside the sandbox netns, by the monitor
 * (which checks the loopback rule again); only a working connection is
 * accepted, anything else is an open failure. Only loopback targets are
 * allowed: the sandbox's own services, never a way around the egress
 * proxy.
 */
#include <sys/socket.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "sshd/internal.h"
#include "sshd/monitor.h"

/*
 * Wait for the nonblocking connect. XXX this blocks the connection's
 * other channels for up to CONNECT_WAIT_MS, because libssh 0.10 frees
 * the message when the callback returns, so the reply cannot be
 * deferred; loopback connects finish (or fail) at once in practice.
 */
static int
connect_wait(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int err = 0, r;
	socklen_t len = sizeof(err);

	do {
		r = poll(&p, 1, CONNECT_WAIT_MS);
	} while (r == -1 && errno == EINTR);
	if (r <= 0)
		return r == 0 ? ETIMEDOUT : errno;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		return errno;
	return err;
}

static int
open_direct(struct conn *c, ssh_message msg)
{
	const char *host = ssh_message_channel_request_open_destination(msg);
	int port = ssh_message_channel_request_open_destination_port(msg);
	const char *target = mon_loopback_target(host);
	struct moat_cause cause = { "" };
	struct chan *ch = NULL;
	ssh_channel sc = NULL;
	int fd = -1, err;

	/* originator_port is not checked: sshj sends 65536 (notes-ssh.md §3). */
	if (target == NULL || port <= 0 || port > 65535) {
		log_info("direct-tcpip to %s:%d refused: not loopback",
		    host != NULL ? host : "?", port);
		return 1;
	}
	if (smon_dial(c, target, (uint16_t)port, &fd, &cause) != 0) {
		log_info("direct-tcpip to %s:%d: %s", target, port, cause.msg);
		return 1;
	}
	if ((err = connect_wait(fd)) != 0) {
		log_info("direct-tcpip to %s:%d: %s", target, port,
		    strerror(err));
		moat_close(fd);
		return 1;
	}
	if (moat_fd_nonblock(fd) != 0 ||
	    (sc = ssh_message_channel_request_open_reply_accept(msg)) == NULL) {
		moat_close(fd);
		return 0;	/* a failed accept already answered the peer */
	}
	if ((ch = chan_new(c, sc, CHAN_TCP)) == NULL) {
		moat_close(fd);
		ssh_channel_close(sc);
		ssh_channel_free(sc);
		return 0;
	}
	ch->in_fd = ch->out_fd[0] = fd;
	log_verbose("chan %d: direct-tcpip to %s:%d", ch->id, target, port);
	return 0;
}

/* Return 1 for libssh's default reply (a refusal or failure). */
int
forward_message_cb(ssh_session s, ssh_message msg, void *ud)
{
	struct conn *c = ud;

	if (c->authed && ssh_message_type(msg) == SSH_REQUEST_CHANNEL_OPEN &&
	    ssh_message_subtype(msg) == SSH_CHANNEL_DIRECT_TCPIP)
		return open_direct(c, msg);
	/* tcpip-forward (-R), x11, agent and unknown requests: refused. */
	return 1;
}
