/*
 * moat's embedded SSH server (libssh 0.10). One process per connection:
 * moatd's loop accepts and forks (moat_sshd_accept_fork), the child runs
 * one libssh event loop for the connection (moat_sshd_serve) and spawns
 * shells, exec commands and sftp-server through hooks moatd provides.
 * The SSH code never creates sandboxes itself. See docs/ssh.md.
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
};

struct moat_sshd_config {
	const char *const *hostkey_paths; /* NULL-terminated; ed25519 key files */
	int max_auth_tries;		/* 6 */
	int login_grace_s;		/* 30 */
	const char *relay_secret;	/* HMAC key text; NULL: no preface checks */
	int relay_skew_s;		/* 300 */
	/*
	 * Nonce replay cache shared by every connection process of the
	 * relay listener; made by moat_relay_cache_new() in the parent
	 * before the first fork. Relay connections are refused without it
	 * when relay_secret is set.
	 */
	struct moat_relay_cache *relay_cache;
	/* Idle grace after the main child exits while a background job
	 * still holds its output open; 0 means 2000 ms. */
	int bg_grace_ms;
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
 * Accept one connection and fork. The parent gets the child's pid in
 * *child and keeps no copy of the connection fd; MOAT_ERR_AGAIN when
 * nothing was pending. The child serves the connection and _exit()s.
 * TCP sockets get TCP_NODELAY and SO_KEEPALIVE.
 */
int moat_sshd_accept_fork(int listen_fd, bool relay,
    const struct moat_sshd_config *c, const struct moat_sshd_hooks *h,
    pid_t *child);

/*
 * Serve ONE accepted connection in the calling (already forked) process
 * until it ends. `relay`: the fd came from the relay socket and a
 * preface line comes first. peer is the client address text.
 */
int moat_sshd_serve(int fd, bool relay, const char *peer,
    const struct moat_sshd_config *c, const struct moat_sshd_hooks *h);

#endif
