/*
 * Privilege separation inside sshd/ (docs/ssh.md, "Privilege
 * separation"): the session process, which speaks SSH to the client,
 * runs without root, capabilities, files or moatd's fds; everything that
 * needs privilege it asks of its connection's monitor over one
 * SOCK_SEQPACKET socketpair. Each request is one message; the monitor
 * answers every request but MON_LOG with exactly one reply, so the
 * channel never carries anything the session did not ask for.
 *
 * A message is a u32 type followed by fields: u32 (native order, the
 * peers share a host) or str (u32 length, the bytes, a NUL that the
 * reader checks). File descriptors travel as SCM_RIGHTS with it. The
 * monitor's reader (mon_get_*) treats every byte as hostile: a short,
 * long or otherwise malformed message ends the connection.
 *
 * Not for modules outside sshd/ (the unit and fuzz tests include it).
 */
#ifndef MOAT_SSHD_MONITOR_H
#define MOAT_SSHD_MONITOR_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/errors.h"

struct moat_sshd_config;
struct moat_sshd_hooks;

/* Requests, session process -> monitor. The reply's type is req|REPLY. */
enum mon_type {
	MON_HELLO = 1,	/* first message; the kernel stamps our pid */
	MON_RELAY,	/* str line -> u32 ok, str sandbox or reason */
	MON_AUTH,	/* u32 probe, str user, str keytype, str b64 -> u32 ok */
	MON_PTY,	/* -> u32 rc, str cause; fds master, slave */
	MON_SPAWN,	/* u32 kind, str command, u32 nenv, str env...;
			 * fds stdin, stdout, stderr (or one pty slave)
			 * -> u32 rc, u32 id, str cause; fd pidfd */
	MON_WAIT,	/* u32 id -> u32 rc, u32 wait status */
	MON_SIGNAL,	/* u32 id, u32 signal -> u32 rc */
	MON_DIAL,	/* str host, u32 port -> u32 rc, str cause; fd */
	MON_LOG,	/* u32 level, str text; no reply */
	MON_TYPE_MAX,
};
#define MON_REPLY 0x100u

/* Parent <-> zygote, on the zygote's channel (server.c, zygote.c). */
enum zyg_type {
	ZYG_CONFIG = 0x200,	/* u32 nkeys, str key paths, u32 x8, str dir */
	ZYG_READY,		/* u32 rc, str cause */
	ZYG_CONN,		/* u32 relay, str peer; fds socket, channel */
	MPAR_CONN = 0x300,	/* to the monitor parent: u32 relay, str peer;
				 * fds channel, startup pipe */
};

/* What a session channel runs (MON_SPAWN kind). */
enum mon_kind {
	MON_KIND_SHELL = 0,	/* the user's login shell */
	MON_KIND_EXEC = 1,	/* bash -c command */
	MON_KIND_SFTP = 2,	/* the sftp subsystem */
};

#define MON_MSG_MAX (160 * 1024)	/* a whole message, with fields */
#define MON_CMD_MAX (128 * 1024 - 1)	/* exec text: the kernel's per-arg cap */
#define MON_ENV_MAX 32			/* env entries per spawn */
#define MON_ENV_LEN 4096		/* one "NAME=value" */
#define MON_FDS_MAX 3
#define MON_LOG_LEN 1024
#define MON_CHILDREN_MAX 256		/* spawned, not yet waited for */

struct mon_msg {
	unsigned char *buf;
	size_t len;		/* bytes in buf */
	size_t cap;
	size_t off;		/* read cursor */
	int fds[MON_FDS_MAX];	/* received or to send; -1 when unused */
	int nfds;
	pid_t pid;		/* sender, from SCM_CREDENTIALS (0: none) */
	bool bad;		/* a put overflowed or a get ran short */
	bool ext;		/* buf is the caller's (mon_recv_into) */
};

/* An empty message of this type; mon_msg_free releases it and its fds. */
void mon_msg_init(struct mon_msg *m, uint32_t type);
void mon_msg_free(struct mon_msg *m);
void mon_put_u32(struct mon_msg *m, uint32_t v);
void mon_put_str(struct mon_msg *m, const char *s);
/* Attach an fd to send (the message does not own it). */
void mon_put_fd(struct mon_msg *m, int fd);

/*
 * Readers: false (and m->bad) when the field is missing or malformed. A
 * str points into the message, NUL-terminated, with no NUL inside, at
 * most max bytes long.
 */
bool mon_get_u32(struct mon_msg *m, uint32_t *v);
bool mon_get_str(struct mon_msg *m, const char **s, size_t max);
/* The type of a received message (its first field). */
bool mon_get_type(struct mon_msg *m, uint32_t *type);
/* Everything was read and nothing was malformed. */
bool mon_msg_done(const struct mon_msg *m);
/* Take ownership of received fd i (-1 when there is none). */
int mon_take_fd(struct mon_msg *m, int i);

/*
 * Send one message (with its fds); MOAT_ERR_SYSTEM when the peer is
 * gone. Receive one: MOAT_ERR_AGAIN (nonblocking, nothing there),
 * MOAT_ERR_NOTFOUND at EOF, MOAT_ERR_INVALID for a truncated message or
 * too many fds (those are closed). Received fds are close-on-exec.
 */
int mon_send(int fd, struct mon_msg *m);
int mon_recv(int fd, struct mon_msg *m, bool nonblock);
/*
 * The same into the caller's buffer (a message longer than cap is
 * MOAT_ERR_INVALID): no allocation, for the loops of processes whose
 * pages their children share (the zygote, the monitor parent).
 */
int mon_recv_into(int fd, struct mon_msg *m, void *buf, size_t cap);

/* The address to dial for a direct-tcpip host, or NULL: not loopback. */
const char *mon_loopback_target(const char *host);

/*
 * Copy text for a log line: printable ASCII kept, anything else shown as
 * '?', at most len-1 bytes. Client-chosen names (the SSH user) and the
 * session process's log lines go through it.
 */
void mon_log_safe(const char *in, char *out, size_t len);

/* ---- the monitor (monitor.c): runs in a privileged process ---- */

struct mon_peer {
	const char *text;	/* "127.0.0.1:5555", for logs and records */
	bool relay;		/* a relay preface comes first */
};

/*
 * Serve one connection's session process on `fd` until it goes away,
 * then hang up what it spawned, wait (bounded) for them and record their
 * end. fd must have had SO_PASSCRED set before the session process could
 * write to it. `startup_fd` (or -1) is closed when the client authenticates (the
 * listener counts pre-auth connections by it). Returns 0 when the
 * session ended normally, MOAT_ERR_DENIED when a request was out of
 * state or malformed (the session process was killed), another code on
 * failure. Hooks run in this process.
 */
int moat_sshd_monitor_run(int fd, int startup_fd, const struct mon_peer *peer,
    const struct moat_sshd_config *cfg, const struct moat_sshd_hooks *h);

/*
 * For the fuzz target: dispatch one request (bytes as received) in state
 * 1 << (state % 4), with hooks that authorize "box" and spawn nothing.
 */
int mon_fuzz_one(const uint8_t *data, size_t len, unsigned state);

/* ---- the monitor parent (monparent.c), for the listener ---- */

/*
 * Fork the monitor parent: it keeps 0-2, its channel (*ctl is ours) and
 * the fds hooks->monitor_fds names, and double-forks one monitor per
 * sshd_mparent_conn. The caller must be a child subreaper.
 */
int sshd_mparent_start(const struct moat_sshd_config *cfg,
    const struct moat_sshd_hooks *h, int *ctl, pid_t *pid,
    struct moat_cause *cause);
/* A monitor for one connection: its channel end and startup pipe. */
int sshd_mparent_conn(int ctl, int chan, int startup, bool relay,
    const char *peer);

#endif
