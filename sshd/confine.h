/*
 * Confinement of the SSH session processes (docs/ssh.md, "Privilege
 * separation"): the zygote confines itself once, each session process it
 * forks adds one more filter. Internal to sshd/.
 */
#ifndef MOAT_SSHD_CONFINE_H
#define MOAT_SSHD_CONFINE_H

#include <sys/types.h>

#include <linux/filter.h>

#include <stdbool.h>

#include <libssh/libssh.h>
#include <libssh/server.h>

#include "common/errors.h"

struct moat_sshd_confine {
	uid_t uid;		/* the privsep user */
	gid_t gid;
	bool privileged;	/* root: chroot and change ids (else tests) */
	char dir[4096];		/* the empty root */
	struct sock_fprog child;	/* the session process's extra filter */
};

/*
 * Run what libssh and OpenSSL would otherwise do lazily on the first
 * connection (provider and algorithm fetches, the DRBG), while files can
 * still be opened: after chroot and seccomp they cannot.
 */
int moat_sshd_confine_warm(ssh_bind b, struct moat_cause *cause);

/*
 * Confine the calling process (the zygote), in the order of the steps in
 * confine.c: /dev/null opened (*devnull), the child filter compiled, the
 * directory checked and made the root, ids dropped and checked, the
 * allowlist installed. On failure the cause names the step.
 */
int moat_sshd_confine_self(struct moat_sshd_confine *c, int *devnull,
    struct moat_cause *cause);

/* In a forked session process: no fork, exec or new filters from now. */
int moat_sshd_confine_child(const struct moat_sshd_confine *c);

#endif
