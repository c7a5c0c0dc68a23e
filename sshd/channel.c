/*
 * Channels of one connection: session channels (shell, exec, sftp, with
 * or without a PTY) and direct-tcpip sockets share the same byte pumps.
 *
 * Wire order at the end of a session (notes-ssh.md §2): all output read
 * to EOF and handed to libssh (which only ever gets what fits the peer's
 * window, so it is sent at once), then exit-status or exit-signal, then
 * EOF, then CLOSE. A background job that keeps the output open after the
 * main child exited gets an idle grace (bg_grace_ms, default 2 s, reset
 * by every byte it writes and while the peer's window is closed); then
 * we stop reading and end the channel, as the issue asks instead of
 * holding it open forever as sshd does.
 */
#include <sys/socket.h>
#include <sys/wait.h>

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
#include "sshd/monitor.h"

#define ENV_MAX_LEN 4096
#define READS_PER_STEP 8

/* ---- fd registrations ---- */

static int
fd_cb(socket_t fd, int revents, void *ud)
{
	struct chan *ch = ud;

	for (int i = 0; i < CHAN_MAX_WATCH; i++)
		if (ch->w[i].fd == fd)
			ch->w[i].revents |= (short)revents;
	return 0;
}

static struct watch *
watch_find(struct chan *ch, int fd, bool create)
{
	for (int i = 0; i < CHAN_MAX_WATCH; i++)
		if (ch->w[i].fd == fd)
			return &ch->w[i];
	if (!create)
		return NULL;
	for (int i = 0; i < CHAN_MAX_WATCH; i++)
		if (ch->w[i].fd == -1) {
			ch->w[i].fd = fd;
			ch->w[i].want = ch->w[i].reg = ch->w[i].revents = 0;
			return &ch->w[i];
		}
	return NULL;
}

static short
revents_of(struct chan *ch, int fd)
{
	struct watch *w = watch_find(ch, fd, false);

	return w != NULL ? w->revents : 0;
}

/* Deregister (if needed) and close; fds shared by roles close once. */
static void
close_fd(struct chan *ch, int fd)
{
	struct watch *w;

	if (fd < 0)
		return;
	if ((w = watch_find(ch, fd, false)) != NULL) {
		if (w->reg != 0)
			ssh_event_remove_fd(ch->conn->ev, fd);
		w->fd = -1;
	}
	moat_close(fd);
	if (ch->in_fd == fd)
		ch->in_fd = -1;
	for (int i = 0; i < 2; i++)
		if (ch->out_fd[i] == fd)
			ch->out_fd[i] = -1;
	if (ch->pidfd == fd)
		ch->pidfd = -1;
}

static void
want(struct chan *ch, int fd, short ev)
{
	struct watch *w;

	if (fd >= 0 && (w = watch_find(ch, fd, true)) != NULL)
		w->want |= ev;
}

void
chan_sync_watches(struct chan *ch)
{
	uint32_t win = 0;

	for (int i = 0; i < CHAN_MAX_WATCH; i++) {
		ch->w[i].want = 0;
		ch->w[i].revents = 0;
	}
	if (ch->ch != NULL && !ch->finished)
		win = ssh_channel_window_size(ch->ch);
	if (!ch->finished) {
		if (ch->in_fd >= 0 && !ch->in_done && ch->in_len > 0)
			want(ch, ch->in_fd, POLLOUT);
		/*
		 * libssh 0.10 reports no WINDOW_ADJUST to us, so the window
		 * is looked at after every poll and the fd re-armed here.
		 */
		for (int i = 0; i < 2; i++)
			if (ch->out_fd[i] >= 0 && !ch->out_eof[i] && win > 0)
				want(ch, ch->out_fd[i], POLLIN);
	}
	if (ch->pidfd >= 0 && !ch->exited)
		want(ch, ch->pidfd, POLLIN);
	for (int i = 0; i < CHAN_MAX_WATCH; i++) {
		struct watch *w = &ch->w[i];

		if (w->fd < 0 || w->reg == w->want)
			goto next;
		if (w->reg != 0)
			ssh_event_remove_fd(ch->conn->ev, w->fd);
		w->reg = 0;
		if (w->want != 0 &&
		    ssh_event_add_fd(ch->conn->ev, w->fd, w->want, fd_cb,
			ch) == SSH_OK)
			w->reg = w->want;
next:
		if (w->fd >= 0 && w->reg == 0 && w->want == 0)
			w->fd = -1;
	}
}

/* ---- libssh channel callbacks (run inside ssh_event_dopoll) ---- */

static int
on_data(ssh_session s, ssh_channel c, void *data, uint32_t len,
    int is_stderr, void *ud)
{
	struct chan *ch = ud;
	ssize_t n;

	if (is_stderr || ch->in_done || ch->remote_closed)
		return (int)len;	/* nobody will read it */
	if (ch->in_fd < 0 || ch->in_len > 0) {
		/* Not started, or older bytes first: libssh keeps these. */
		ch->in_pending = true;
		return 0;
	}
	n = write(ch->in_fd, data, len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		n = 0;
	if (n < 0) {
		/* The child closed its stdin: drop what it will never read. */
		ch->in_done = true;
		return (int)len;
	}
	if ((uint32_t)n < len)
		ch->in_pending = true;
	return (int)n;
}

static void
on_eof(ssh_session s, ssh_channel c, void *ud)
{
	((struct chan *)ud)->remote_eof = true;
}

static void
on_close(ssh_session s, ssh_channel c, void *ud)
{
	struct chan *ch = ud;

	ch->remote_closed = true;
	ch->remote_eof = true;
}

static void
on_signal(ssh_session s, ssh_channel c, const char *name, void *ud)
{
	struct chan *ch = ud;
	int sig = moat_signal_from_name(name);

	/* sshd refuses signals for subsystems; so do we. */
	if (sig < 0 || !ch->started || ch->exited ||
	    strcmp(ch->kindname, "sftp") == 0) {
		log_verbose("chan %d: signal %s ignored", ch->id, name);
		return;
	}
	/* The child is the sandbox user's: only the monitor may signal it. */
	smon_signal(ch->conn, ch->mid, sig);
}

static int
on_pty_req(ssh_session s, ssh_channel c, const char *term, int w, int h,
    int pw, int ph, void *ud)
{
	struct chan *ch = ud;

	if (ch->started || ch->pty)
		return -1;
	ch->pty = true;
	snprintf(ch->term, sizeof(ch->term), "%s", term != NULL ? term : "");
	ch->ws.cols = (uint16_t)(w > 0 && w < 65536 ? w : 80);
	ch->ws.rows = (uint16_t)(h > 0 && h < 65536 ? h : 24);
	ch->ws.xpix = (uint16_t)(pw > 0 && pw < 65536 ? pw : 0);
	ch->ws.ypix = (uint16_t)(ph > 0 && ph < 65536 ? ph : 0);
	return 0;
}

static int
on_window_change(ssh_session s, ssh_channel c, int w, int h, int pw, int ph,
    void *ud)
{
	struct chan *ch = ud;

	if (!ch->pty || w <= 0 || h <= 0 || w > 65535 || h > 65535)
		return -1;
	ch->ws.cols = (uint16_t)w;
	ch->ws.rows = (uint16_t)h;
	ch->ws.xpix = (uint16_t)(pw > 0 && pw < 65536 ? pw : 0);
	ch->ws.ypix = (uint16_t)(ph > 0 && ph < 65536 ? ph : 0);
	if (ch->started && ch->in_fd >= 0)
		(void)moat_pty_resize(ch->in_fd, &ch->ws);
	return 0;
}

static int
env_set(struct chan *ch, const char *name, const char *value)
{
	size_t nl = strlen(name);
	char *kv = NULL;

	if (nl + strlen(value) + 2 > ENV_MAX_LEN)
		return -1;
	if (asprintf(&kv, "%s=%s", name, value) == -1)
		return -1;
	for (int i = 0; i < ch->nenv; i++)
		if (strncmp(ch->env[i], kv, nl + 1) == 0) {
			free(ch->env[i]);
			ch->env[i] = kv;
			return 0;
		}
	if (ch->nenv >= CHAN_MAX_ENV) {
		free(kv);
		return -1;
	}
	ch->env[ch->nenv++] = kv;
	ch->env[ch->nenv] = NULL;
	return 0;
}

static int
on_env(ssh_session s, ssh_channel c, const char *name, const char *value,
    void *ud)
{
	struct chan *ch = ud;

	if (ch->started)
		return -1;
	/* Others are answered but ignored (DESIGN.md), like sshd's AcceptEnv. */
	if (!moat_env_allowed(name)) {
		log_verbose("chan %d: env %s ignored", ch->id, name);
		return 0;
	}
	return env_set(ch, name, value) == 0 ? 0 : -1;
}

/* A pty from the monitor (the sandbox's devpts); modes and size here. */
static int
open_pty(struct chan *ch, int *master, int *slave, struct moat_cause *cause)
{
	int m = -1, s = -1, r;

	if ((r = smon_pty(ch->conn, &m, &s, cause)) != 0)
		return r;
	if ((r = moat_pty_setup(m, s, &ch->ws, cause)) != 0) {
		moat_close(m);
		moat_close(s);
		return r;
	}
	*master = m;
	*slave = s;
	return 0;
}

static int
start(struct chan *ch, const char *command, const char *subsystem)
{
	struct conn *c = ch->conn;
	struct moat_cause cause = { "" };
	int child[3] = { -1, -1, -1 }, parent[3] = { -1, -1, -1 };
	int master = -1, slave = -1, r;
	uint32_t kind;

	if (ch->started)
		return -1;
	kind = subsystem != NULL ? MON_KIND_SFTP : command != NULL ?
	    MON_KIND_EXEC : MON_KIND_SHELL;
	ch->kindname = subsystem != NULL ? "sftp" : command != NULL ? "exec" :
	    "shell";
	if (ch->pty && subsystem == NULL) {
		if (ch->term[0] != '\0')
			(void)env_set(ch, "TERM", ch->term);
		if ((r = open_pty(ch, &master, &slave, &cause)) != 0)
			goto fail;
		r = smon_spawn(c, kind, command, ch->env, &slave, 1, &ch->mid,
		    &ch->pidfd, &cause);
	} else {
		if ((r = moat_pipes_open(child, parent, &cause)) != 0)
			goto fail;
		r = smon_spawn(c, kind, command, ch->env, child, 3, &ch->mid,
		    &ch->pidfd, &cause);
	}
	moat_close(slave);
	moat_fds_close(child, 3);
	if (r != 0)
		goto fail;
	ch->started = true;
	if (ch->pidfd < 0)
		log_warn("chan %d: no pidfd; exit noticed late", ch->id);
	if (master >= 0) {
		ch->in_fd = ch->out_fd[0] = master;
	} else {
		ch->in_fd = parent[0];
		ch->out_fd[0] = parent[1];
		ch->out_fd[1] = parent[2];
	}
	log_verbose("chan %d: %s%s started for %s", ch->id, ch->kindname,
	    ch->pty ? " (pty)" : "", c->user);
	return 0;
fail:
	log_warn_r(r, "chan %d: spawn %s for %s: %s", ch->id, ch->kindname,
	    c->user, cause.msg);
	moat_close(master);
	moat_close(slave);
	moat_fds_close(child, 3);
	moat_fds_close(parent, 3);
	return -1;
}

static int
on_shell(ssh_session s, ssh_channel c, void *ud)
{
	return start(ud, NULL, NULL);
}

static int
on_exec(ssh_session s, ssh_channel c, const char *command, void *ud)
{
	return start(ud, command, NULL);
}

static int
on_subsystem(ssh_session s, ssh_channel c, const char *name, void *ud)
{
	if (strcmp(name, "sftp") != 0)
		return -1;
	return start(ud, NULL, "sftp");
}

/* ---- setup and teardown ---- */

struct chan *
chan_new(struct conn *c, ssh_channel sc, enum chan_kind kind)
{
	struct chan *ch = NULL;

	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		return NULL;
	if ((ch->inbuf = malloc(CHAN_BUF)) == NULL ||
	    (ch->outbuf = malloc(CHAN_BUF)) == NULL) {
		free(ch->inbuf);
		free(ch);
		return NULL;
	}
	ch->conn = c;
	ch->ch = sc;
	ch->kind = kind;
	ch->id = ++c->next_id;
	ch->pidfd = ch->in_fd = ch->out_fd[0] = ch->out_fd[1] = -1;
	ch->kindname = kind == CHAN_TCP ? "direct-tcpip" : NULL;
	for (int i = 0; i < CHAN_MAX_WATCH; i++)
		ch->w[i].fd = -1;
	ch->cb.userdata = ch;
	ch->cb.channel_data_function = on_data;
	ch->cb.channel_eof_function = on_eof;
	ch->cb.channel_close_function = on_close;
	if (kind == CHAN_SESSION) {
		ch->cb.channel_signal_function = on_signal;
		ch->cb.channel_pty_request_function = on_pty_req;
		ch->cb.channel_pty_window_change_function = on_window_change;
		ch->cb.channel_shell_request_function = on_shell;
		ch->cb.channel_exec_request_function = on_exec;
		ch->cb.channel_env_request_function = on_env;
		ch->cb.channel_subsystem_request_function = on_subsystem;
	}
	ssh_callbacks_init(&ch->cb);
	if (ssh_set_channel_callbacks(sc, &ch->cb) != SSH_OK) {
		free(ch->outbuf);
		free(ch->inbuf);
		free(ch);
		return NULL;
	}
	ch->next = c->chans;
	c->chans = ch;
	return ch;
}

ssh_channel
chan_open_session(ssh_session s, void *ud)
{
	struct conn *c = ud;
	ssh_channel sc = NULL;

	if (!c->authed || c->closing || (sc = ssh_channel_new(s)) == NULL)
		return NULL;
	if (chan_new(c, sc, CHAN_SESSION) == NULL) {
		ssh_channel_free(sc);
		return NULL;
	}
	return sc;
}

/* Give the libssh channel back: libssh frees it once both sides closed. */
static void
release_channel(struct chan *ch)
{
	if (ch->ch == NULL)
		return;
	ssh_remove_channel_callbacks(ch->ch, &ch->cb);
	ssh_channel_free(ch->ch);
	ch->ch = NULL;
}

static void
close_all_fds(struct chan *ch)
{
	close_fd(ch, ch->in_fd);
	close_fd(ch, ch->out_fd[0]);
	close_fd(ch, ch->out_fd[1]);
}

void
chan_free(struct chan *ch)
{
	if (ch == NULL)
		return;
	close_all_fds(ch);
	close_fd(ch, ch->pidfd);
	release_channel(ch);
	for (int i = 0; i < ch->nenv; i++)
		free(ch->env[i]);
	free(ch->inbuf);
	free(ch->outbuf);
	free(ch);
}

bool
chan_done(const struct chan *ch)
{
	return ch->finished && (!ch->started || ch->exited);
}

/*
 * The connection is going away: close our ends (the child sees EOF,
 * EPIPE or a hangup). The monitor sends SIGHUP to what is left once we
 * are gone: the child is the sandbox user's, not ours to signal.
 */
void
chan_hangup(struct chan *ch)
{
	close_all_fds(ch);
	release_channel(ch);
	ch->finished = true;
}

/* ---- pumps (run in conn_step, outside ssh_event_dopoll) ---- */

static void
input_done(struct chan *ch)
{
	ch->in_done = true;
	ch->in_len = ch->in_off = 0;
	if (ch->in_fd < 0)
		return;
	if (ch->kind == CHAN_TCP)
		(void)shutdown(ch->in_fd, SHUT_WR);
	else if (ch->in_fd != ch->out_fd[0])
		close_fd(ch, ch->in_fd);
	/* A PTY has no half-close: we just stop writing to it. */
}

static void
pump_in(struct chan *ch)
{
	ssize_t n;
	int r;

	for (int i = 0; i < READS_PER_STEP && !ch->in_done; i++) {
		if (ch->in_len == 0) {
			if (!ch->in_pending || ch->ch == NULL)
				break;
			r = ssh_channel_read_nonblocking(ch->ch, ch->inbuf,
			    CHAN_BUF, 0);
			if (r <= 0) {
				ch->in_pending = false;
				break;
			}
			if (r < CHAN_BUF)
				ch->in_pending = false;
			ch->in_off = 0;
			ch->in_len = (size_t)r;
		}
		n = write(ch->in_fd, ch->inbuf + ch->in_off, ch->in_len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0) {
			input_done(ch);
			break;
		}
		ch->in_off += (size_t)n;
		ch->in_len -= (size_t)n;
	}
	if (ch->in_done && ch->in_pending && ch->ch != NULL) {
		/* Discard what the child will never read; it reopens the window. */
		for (int i = 0; i < READS_PER_STEP; i++)
			if (ssh_channel_read_nonblocking(ch->ch, ch->inbuf,
			    CHAN_BUF, 0) < CHAN_BUF)
				break;
		ch->in_pending = false;
	}
	if (!ch->in_done && ch->remote_eof && !ch->in_pending &&
	    ch->in_len == 0)
		input_done(ch);
}

/* Hand the held bytes to libssh; 1 when some remain, -1 on error. */
static int
flush_out(struct chan *ch)
{
	int w;

	while (ch->out_len > 0) {
		w = ch->out_idx == 0 ?
		    ssh_channel_write(ch->ch, ch->outbuf + ch->out_off,
			(uint32_t)ch->out_len) :
		    ssh_channel_write_stderr(ch->ch, ch->outbuf + ch->out_off,
			(uint32_t)ch->out_len);
		if (w < 0) {
			log_verbose("chan %d: write to channel failed: %s",
			    ch->id, ssh_get_error(ch->conn->s));
			return -1;
		}
		if (w == 0)
			return 1;	/* rekey in progress or window shut */
		ch->out_off += (size_t)w;
		ch->out_len -= (size_t)w;
	}
	ch->out_off = 0;
	return 0;
}

/* Returns bytes read from this fd, or -1 when the channel broke. */
static ssize_t
pump_out_fd(struct chan *ch, int i)
{
	ssize_t total = 0, n;
	uint32_t win;
	int r;

	for (int k = 0; k < READS_PER_STEP; k++) {
		if (ch->ch == NULL || ch->out_fd[i] < 0 || ch->out_eof[i])
			break;
		if ((r = flush_out(ch)) != 0)
			return r < 0 ? -1 : total;
		if ((win = ssh_channel_window_size(ch->ch)) == 0)
			break;
		n = read(ch->out_fd[i], ch->outbuf, win < CHAN_BUF ? win :
		    CHAN_BUF);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			/* EOF, or EIO once a PTY's last slave fd closed. */
			log_debug("chan %d: output %d at EOF", ch->id, i);
			ch->out_eof[i] = true;
			break;
		}
		ch->out_idx = i;
		ch->out_len = (size_t)n;
		ch->out_off = 0;
		total += n;
	}
	if (ch->ch != NULL && flush_out(ch) < 0)
		return -1;
	return total;
}

static bool
outputs_eof(const struct chan *ch)
{
	if (ch->out_len > 0)
		return false;
	for (int i = 0; i < 2; i++)
		if (ch->out_fd[i] >= 0 && !ch->out_eof[i])
			return false;
	return true;
}

static void
send_exit(struct chan *ch)
{
	int st = ch->status;

	if (WIFSIGNALED(st))
		(void)ssh_channel_request_send_exit_signal(ch->ch,
		    moat_signal_name(WTERMSIG(st)), WCOREDUMP(st) ? 1 : 0, "",
		    "");
	else
		(void)ssh_channel_request_send_exit_status(ch->ch,
		    WEXITSTATUS(st));
}

/* drain -> exit-status/exit-signal -> EOF -> CLOSE, then hand back. */
static void
finish(struct chan *ch, bool with_exit)
{
	log_debug("chan %d: finish%s%s", ch->id, with_exit ? " with exit" : "",
	    ch->remote_closed ? " (peer closed)" : "");
	close_all_fds(ch);
	if (ch->ch != NULL && !ch->remote_closed) {
		if (with_exit)
			send_exit(ch);
		(void)ssh_channel_send_eof(ch->ch);
		(void)ssh_channel_close(ch->ch);
	}
	release_channel(ch);
	ch->finished = true;
}

static int
grace_ms(const struct chan *ch)
{
	int g = ch->conn->cfg->bg_grace_ms;

	return g > 0 ? g : 2000;
}

static void
step_session(struct chan *ch, int64_t now)
{
	ssize_t got = 0, n;

	if (!ch->exited && ch->started &&
	    (ch->pidfd < 0 || revents_of(ch, ch->pidfd) != 0) &&
	    smon_wait(ch->conn, ch->mid, &ch->status) == 0) {
		ch->exited = true;
		log_debug("chan %d: child %u exited, status %#x", ch->id,
		    ch->mid, ch->status);
		ch->grace_until_ms = now + grace_ms(ch);
		close_fd(ch, ch->pidfd);
	}
	if (ch->finished || !ch->started)
		return;
	if (ch->remote_closed) {
		/* Like sshd: the child sees EOF/EPIPE, a PTY a hangup. */
		finish(ch, false);
		return;
	}
	if (!ch->in_done && ch->in_fd >= 0)
		pump_in(ch);
	if (ch->out_len > 0 && ch->ch != NULL && flush_out(ch) < 0) {
		finish(ch, false);
		return;
	}
	for (int i = 0; i < 2; i++) {
		if (ch->out_fd[i] < 0 || revents_of(ch, ch->out_fd[i]) == 0)
			continue;
		if ((n = pump_out_fd(ch, i)) < 0) {
			finish(ch, false);
			return;
		}
		got += n;
	}
	if (!ch->exited)
		return;
	if (got > 0 || ch->out_len > 0 ||
	    (ch->ch != NULL && ssh_channel_window_size(ch->ch) == 0))
		ch->grace_until_ms = now + grace_ms(ch);
	if (outputs_eof(ch)) {
		finish(ch, true);
	} else if (now >= ch->grace_until_ms) {
		log_verbose("chan %d: output still open %d ms after exit; "
		    "ending the channel", ch->id, grace_ms(ch));
		finish(ch, true);
	}
}

static void
step_tcp(struct chan *ch)
{
	bool sent_eof;

	if (ch->finished)
		return;
	if (ch->remote_closed) {
		finish(ch, false);
		return;
	}
	if (!ch->in_done && ch->in_fd >= 0)
		pump_in(ch);
	sent_eof = ch->out_eof[0] && ch->out_len == 0;
	if (ch->out_len > 0 && ch->ch != NULL && flush_out(ch) < 0) {
		finish(ch, false);
		return;
	}
	if (ch->out_fd[0] >= 0 && revents_of(ch, ch->out_fd[0]) != 0 &&
	    pump_out_fd(ch, 0) < 0) {
		finish(ch, false);
		return;
	}
	if (ch->out_eof[0] && ch->out_len == 0 && !sent_eof && ch->ch != NULL)
		(void)ssh_channel_send_eof(ch->ch);
	if (ch->out_eof[0] && ch->out_len == 0 && ch->in_done)
		finish(ch, false);
}

void
chan_step(struct chan *ch)
{
	if (ch->kind == CHAN_TCP)
		step_tcp(ch);
	else
		step_session(ch, moat_now_ms());
}

int
chan_timeout_ms(const struct chan *ch, int64_t now)
{
	if (ch->kind != CHAN_SESSION || ch->finished || !ch->exited)
		return -1;
	if (ch->grace_until_ms <= now)
		return 0;
	return (int)(ch->grace_until_ms - now);
}
