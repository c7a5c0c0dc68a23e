/*
 * Shared between the files of sshd/: one connection (struct conn) and its
 * channels (struct chan). Not for other modules.
 *
 * Loop discipline: libssh callbacks and fd callbacks run inside
 * ssh_event_dopoll and only record what happened (flags, revents) or do
 * nonblocking I/O that touches no registration. Everything that adds or
 * removes an fd from the ssh_event, closes an fd, or frees a channel runs
 * in conn_step() after ssh_event_dopoll returns, so libssh never polls a
 * closed fd and a callback never frees what the poll loop still holds.
 */
#ifndef MOAT_SSHD_INTERNAL_H
#define MOAT_SSHD_INTERNAL_H

#include <sys/types.h>

#include <stdbool.h>
#include <stdint.h>

#include <libssh/libssh.h>
#include <libssh/callbacks.h>
#include <libssh/server.h>

#include "common/log.h"
#include "sessions/session.h"
#include "sshd/sshd.h"

#define CHAN_MAX_ENV 32
#define CHAN_BUF (64 * 1024)
#define CHAN_MAX_WATCH 4
#define CONNECT_WAIT_MS 5000

struct conn;

/* One fd of a channel as registered in the connection's ssh_event. */
struct watch {
	int fd;
	short want;	/* events wanted after this step */
	short reg;	/* events registered now (0: not registered) */
	short revents;	/* what poll reported since the last step */
};

enum chan_kind {
	CHAN_SESSION,
	CHAN_TCP,
};

struct chan {
	struct chan *next;
	struct conn *conn;
	ssh_channel ch;			/* NULL once handed back to libssh */
	struct ssh_channel_callbacks_struct cb;
	enum chan_kind kind;
	int id;				/* for logs */

	/* Requests before the process starts. */
	bool pty;
	char term[64];
	struct moat_winsize ws;
	char *env[CHAN_MAX_ENV + 1];
	int nenv;
	const char *kindname;		/* "shell", "exec", "sftp", ... */

	/* The process (the monitor's child; we hold a pidfd of it). */
	bool started;
	uint32_t mid;			/* the monitor's id for it */
	int pidfd;
	bool exited;
	int status;

	/*
	 * fds: in_fd is where client data goes (child's stdin, pty master,
	 * socket), out_fd[0..1] what we send (stdout/stderr; for a pty or a
	 * socket out_fd[0] == in_fd and out_fd[1] == -1).
	 */
	int in_fd;
	int out_fd[2];
	bool out_eof[2];
	/* child -> client: bytes libssh did not take (it refuses writes
	 * while a key re-exchange runs); sent before anything else is read */
	unsigned char *outbuf;
	size_t out_off;
	size_t out_len;
	int out_idx;			/* 0 stdout, 1 stderr */
	struct watch w[CHAN_MAX_WATCH];

	/* client -> child: bytes read from libssh but not yet written */
	unsigned char *inbuf;
	size_t in_off;
	size_t in_len;
	bool in_pending;		/* libssh still holds bytes we refused */
	bool remote_eof;
	bool in_done;			/* child's input side closed */

	bool remote_closed;
	bool finished;			/* exit/EOF/CLOSE sent (or channel gone) */
	int64_t grace_until_ms;		/* bg-job grace after the child exited */
};

/* What the session process needs to know (the zygote hands it over). */
struct sess_config {
	int max_auth_tries;		/* 6 */
	int login_grace_s;		/* 30 */
	int bg_grace_ms;		/* 0: 2000 */
	bool relay_preface;		/* relay connections start with one */
};

struct conn {
	ssh_session s;
	ssh_event ev;
	const struct sess_config *cfg;
	struct ssh_server_callbacks_struct scb;
	int mon;			/* the monitor channel */
	bool mon_dead;			/* it failed: end the connection */
	char user[128];			/* sandbox name (the SSH user) */
	char peer[128];
	char relay_sandbox[128];	/* sandbox named by the preface, or "" */
	bool authed;
	int auth_failures;
	struct chan *chans;
	int next_id;
	bool closing;
};

/* channel.c */
ssh_channel chan_open_session(ssh_session s, void *ud);
struct chan *chan_new(struct conn *c, ssh_channel ch, enum chan_kind kind);
void chan_step(struct chan *ch);
bool chan_done(const struct chan *ch);
void chan_free(struct chan *ch);
void chan_hangup(struct chan *ch);
int chan_timeout_ms(const struct chan *ch, int64_t now);
void chan_sync_watches(struct chan *ch);

/* forward.c */
int forward_message_cb(ssh_session s, ssh_message msg, void *ud);

/* session.c: serve one connection (the zygote's child calls it). */
int sess_serve(int fd, int mon, bool relay, const char *peer,
    const struct sess_config *cfg, ssh_bind bind);

/* smon.c: requests to the monitor (sshd/monitor.h says what each does). */
int smon_hello(struct conn *c);
int smon_relay(struct conn *c, const char *line, char *out, size_t outlen);
bool smon_auth(struct conn *c, const char *user, const char *type,
    const char *b64, bool probe);
int smon_pty(struct conn *c, int *master, int *slave,
    struct moat_cause *cause);
int smon_spawn(struct conn *c, uint32_t kind, const char *command,
    char *const *env, const int *fds, int nfds, uint32_t *id, int *pidfd,
    struct moat_cause *cause);
/* 0 and *status once the child exited; MOAT_ERR_AGAIN while it runs. */
int smon_wait(struct conn *c, uint32_t id, int *status);
void smon_signal(struct conn *c, uint32_t id, int sig);
int smon_dial(struct conn *c, const char *host, uint16_t port, int *fd,
    struct moat_cause *cause);
void smon_log(void *arg, enum moat_log_level level, const char *line);

#endif
