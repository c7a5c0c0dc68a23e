/*
 * moat's embedded SSH server (libssh 0.10), privilege-separated as
 * OpenSSH is: per connection, an unprivileged session process speaks SSH
 * (forked from a confined zygote) and a privileged monitor (forked from
 * the caller) does what needs privilege on its request, through hooks
 * moatd provides. The SSH code never creates sandboxes itself. See
 * docs/ssh.md.
 */
#ifndef MOAT_SSHD_SSHD_H
#define MOAT_SSHD_SSHD_H

#include <sys/types.h>

#include <stdbool.h>
#include <stdint.h>

#include "common/errors.h"

struct moat_relay_cache;

/* What a session channel wants to run. */
struct moat_sshd_spawn {
	/*
	 * NULL: the user's login shell (interactive). For exec requests
	 * {"/bin/bash", "-c", command, NULL}; a hook may instead run
	 * `command` with the user's own shell.
	 */
	const char *const *argv;
	const char *command;	/* the exec request's text, or NULL */
	/* allowlisted K=V from env requests + TERM from pty-req, NULL-terminated */
	const char *const *env;
	int fds[3];		/* stdin/stdout/stderr (pipes or the pty slave thrice) */
	bool pty;		/* fds[0] is a pty slave: setsid + TIOCSCTTY in the child */
	bool login;		/* login shell ("-bash") */
	const char *subsystem;	/* "sftp" or NULL; the hook maps it to sftp-server */
};

/*
 * What the privileged side does for a connection. Every hook runs in
 * the connection's monitor process (root, forked from the caller of
 * moat_sshd_server_accept), never in the process that speaks SSH.
 */
struct moat_sshd_hooks {
	void *arg;
	/* is this public key (OpenSSH "type base64") authorized for sandbox? */
	bool (*authorized)(void *arg, const char *sandbox, const char *key_type,
	    const char *key_b64);
	bool (*sandbox_exists)(void *arg, const char *sandbox);
	/*
	 * Spawn into the sandbox; the child must be a child of the calling
	 * process (waitpid works) and should lead its own process group
	 * (signal requests use killpg). 0 or a MOAT_ERR_* code.
	 */
	int (*spawn)(void *arg, const char *sandbox,
	    const struct moat_sshd_spawn *s, pid_t *pid,
	    struct moat_cause *cause);
	/*
	 * A nonblocking TCP connect started inside the sandbox netns to
	 * host:port (sshd allows only loopback before calling); *fd is
	 * the connecting socket, close-on-exec.
	 */
	int (*connect)(void *arg, const char *sandbox, const char *host,
	    uint16_t port, int *fd, struct moat_cause *cause);
	/* Session records (moatd writes the store); either may be NULL. */
	void (*session_start)(void *arg, const char *sandbox, const char *who,
	    const char *from, const char *kind, int64_t *id);
	void (*session_end)(void *arg, int64_t id, int exit_status,
	    const char *exit_signal);
	/*
	 * A pty pair for a pty-req, from the sandbox's own devpts so the
	 * name works inside (both ends close-on-exec; sshd sets modes and
	 * size). NULL: a pty of the host's devpts.
	 */
	int (*openpty)(void *arg, const char *sandbox, int *master,
	    int *slave, struct moat_cause *cause);
	/*
	 * The fds a monitor keeps besides its own (the sandboxes' namespace
	 * and cgroup fds, the session-record socket); every other fd it
	 * inherited is closed right after the fork. Returns how many it
	 * wrote (at most max). NULL: keep none.
	 */
	size_t (*monitor_fds)(void *arg, int *fds, size_t max);
};

/* MaxStartups (docs/ssh.md): pre-auth connections the listener allows. */
struct moat_sshd_startups {
	int start;		/* from this many, refuse with rate % ... */
	int rate;		/* ... rising linearly ... */
	int full;		/* ... to 100 % at this many */
	int per_source;		/* pre-auth from one address (0: no limit) */
};
#define MOAT_SSHD_STARTUPS_DEFAULT { 10, 30, 100, 5 }

struct moat_sshd_config {
	const char *const *hostkey_paths; /* NULL-terminated; ed25519 key files */
	int max_auth_tries;		/* 6 */
	int login_grace_s;		/* 30 */
	const char *relay_secret;	/* HMAC key text; NULL: no preface checks */
	int relay_skew_s;		/* 300 */
	/*
	 * Nonce replay cache shared by every monitor of the relay listener;
	 * made by moat_relay_cache_new() in the parent before the first
	 * fork. Relay connections are refused without it when relay_secret
	 * is set.
	 */
	struct moat_relay_cache *relay_cache;
	/* Idle grace after the main child exits while a background job
	 * still holds its output open; 0 means 2000 ms. */
	int bg_grace_ms;
	/*
	 * The unprivileged side: the uid and gid it runs as and the empty
	 * directory that becomes its root. privsep_uid 0 is refused; the
	 * directory must be owned by root and writable by nobody else.
	 */
	uid_t privsep_uid;
	gid_t privsep_gid;
	const char *privsep_dir;
	struct moat_sshd_startups startups;
};

/* Generate an ed25519 host key at path (0600) if missing; keep it if present. */
int moat_sshd_hostkey_ensure(const char *path, struct moat_cause *cause);
/*
 * The host key's fingerprint as OpenSSH prints it ("SHA256:..."), so an
 * operator can check a client's first-contact prompt against it.
 */
int moat_sshd_hostkey_fingerprint(const char *path, char *out, size_t len,
    struct moat_cause *cause);

/* A TCP listener (SOCK_CLOEXEC, nonblocking) on addr:port. */
int moat_sshd_listen(const char *addr, uint16_t port, int *fd,
    struct moat_cause *cause);

/*
 * The argv[1] with which a program that uses moat_sshd_server_new is
 * re-executed to become the session-process parent; such a program
 * calls moat_sshd_zygote_main() first thing in main() when it sees it.
 */
#define MOAT_SSHD_ZYGOTE_ARG "--moat-ssh-zygote"
int moat_sshd_zygote_main(int argc, char **argv);

struct moat_sshd_server;

/*
 * The SSH front door: forks the monitor parent (privileged; it keeps
 * only the fds hooks->monitor_fds names and forks one monitor per
 * connection), starts the zygote (this program re-executed with
 * MOAT_SSHD_ZYGOTE_ARG: it loads the host key, drops to privsep_uid in
 * privsep_dir under seccomp, and forks one session process per
 * connection) and waits until it is confined. The caller becomes a
 * child subreaper: every monitor ends up its child, to reap with
 * waitpid(). cfg and hooks must outlive the server. MOAT_ERR_SYSTEM with
 * the cause when the zygote cannot be confined: nothing then serves SSH.
 */
int moat_sshd_server_new(const struct moat_sshd_config *cfg,
    const struct moat_sshd_hooks *h, struct moat_sshd_server **out,
    struct moat_cause *cause);
void moat_sshd_server_free(struct moat_sshd_server *srv);

/*
 * Accept one pending connection on listen_fd. Over max_startups it is
 * closed at once (MOAT_ERR_DENIED), with no process. Otherwise the
 * zygote gets it for a new session process and the monitor parent forks
 * its monitor. MOAT_ERR_AGAIN when nothing was pending. TCP sockets get
 * TCP_NODELAY and SO_KEEPALIVE.
 */
int moat_sshd_server_accept(struct moat_sshd_server *srv, int listen_fd,
    bool relay);

/*
 * One fd to poll for reading (an epoll set of the server's own fds: the
 * pre-auth connections' startup pipes and the zygote's channel); call
 * moat_sshd_server_step when it is readable.
 */
int moat_sshd_server_fd(const struct moat_sshd_server *srv);
void moat_sshd_server_step(struct moat_sshd_server *srv);

/*
 * What the hooks name changed (moatd stopped or started a sandbox): start
 * a new monitor parent, which keeps the fds hooks->monitor_fds names now
 * and a copy of the caller's memory as it is now. The old one exits;
 * the monitors it forked carry on. 0, or the cause.
 */
int moat_sshd_server_monitors_refresh(struct moat_sshd_server *srv,
    struct moat_cause *cause);

/* Pre-auth connections now, and the zygote's pid (for tests and logs). */
int moat_sshd_server_preauth(const struct moat_sshd_server *srv);
pid_t moat_sshd_server_zygote_pid(const struct moat_sshd_server *srv);

#endif
