/*
 * A sandbox: one set of namespaces (pid, mnt, uts, ipc, net) held by a
 * small PID 1 ("sandbox init"), a cgroup, a network (sandbox/net.h) and
 * the prepared confinement (a Landlock ruleset and a seccomp program)
 * that every process started in it goes through.
 *
 * moat_sandbox_create() builds all of it; moat_sandbox_spawn() starts one
 * process inside, confined by the ordered steps of sandbox/spawn.c;
 * moat_sandbox_free() kills everything inside and removes every trace
 * (cgroups, network). docs/sandbox.md describes the whole design.
 *
 * A struct moat_sandbox may be used from any process that holds it: a
 * process forked from its creator (one per SSH connection) can spawn into
 * the sandbox, because everything spawn needs is an fd or plain memory.
 * Only the creator may free it (it is init's parent).
 */
#ifndef MOAT_SANDBOX_SANDBOX_H
#define MOAT_SANDBOX_SANDBOX_H

#include <sys/types.h>

#include <stdbool.h>
#include <stdint.h>

#include "common/errors.h"

struct moat_policy;
struct moat_sandbox;

/*
 * Caller attribution: BPF programs on the sandbox's cgroup record which
 * task created and connected each TCP socket (common/attrib.h), for the
 * proxy to read. Without them the proxy scans /proc instead.
 */
enum moat_attrib_mode {
	MOAT_ATTRIB_AUTO = 0, /* when the kernel offers it, else the scan */
	MOAT_ATTRIB_REQUIRE,  /* or the sandbox is not created */
	MOAT_ATTRIB_OFF,      /* the /proc scan */
};

struct moat_sandbox_config {
	const char *name;	    /* [a-z0-9-], also the hostname */
	/*
	 * The static sections are read at create: filesystem_policy,
	 * landlock, process and resources. NULL means defaults (no extra
	 * paths, best_effort, user "sandbox", no limits but pids).
	 */
	struct moat_policy *policy;
	const char *workspace;	    /* host dir, read-write at /sandbox */
	const char *rootfs;	    /* NULL: the host's system dirs, read-only */
	uint32_t net_index;	    /* which subnet of the pool */
	uint16_t proxy_port;	    /* 0: 3128 */
	/*
	 * A root-only directory of this sandbox: create writes its state
	 * record there (MOAT_SANDBOX_STATE_FILE), adopt reads it. NULL: no
	 * record (the sandbox cannot be adopted).
	 */
	const char *state_dir;
	const char *net_pool;	    /* NULL: 10.200.0.0/16 (sandbox/net.h) */
	enum moat_attrib_mode attrib; /* caller attribution (below) */
	/*
	 * The sandbox CA's certificate and the bundle of the system roots
	 * plus it (host paths; the key never enters the sandbox): bound
	 * read-only at MOAT_SANDBOX_CA_CERT and MOAT_SANDBOX_CA_BUNDLE (the
	 * bundle also on the system store, when the view has one) and
	 * named by SSL_CERT_FILE, REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
	 * GIT_SSL_CAINFO and NODE_EXTRA_CA_CERTS. NULL: no CA.
	 */
	const char *ca_cert;
	const char *ca_bundle;
	/*
	 * Extra variables (K=V) of every process of the sandbox, fixed like
	 * PATH: the credential placeholders. NULL-terminated; NULL: none.
	 */
	const char *const *env;
	/*
	 * Live restore: the sandbox's init keeps running when its creator
	 * dies (it is then reparented), so that a later process can adopt
	 * the sandbox. false: the kernel kills init with its creator
	 * (PR_SET_PDEATHSIG). During create it always dies with its creator.
	 */
	bool outlive_creator;
	/*
	 * Soft RLIMIT_NOFILE of spawned processes (at most the hard limit
	 * they inherit, which they may raise it to); 0: inherit. A daemon
	 * that raised its own gives back the limit it started with.
	 */
	unsigned long nofile_soft;
};

/* Where the CA files appear inside a sandbox that has one. */
#define MOAT_SANDBOX_CA_CERT "/run/moat/ca.pem"
#define MOAT_SANDBOX_CA_BUNDLE "/run/moat/ca-bundle.pem"
/* The system's trust store (Debian), covered by the bundle inside. */
#define MOAT_SANDBOX_SYSTEM_ROOTS "/etc/ssl/certs/ca-certificates.crt"

/* The state record in moat_sandbox_config.state_dir. */
#define MOAT_SANDBOX_STATE_FILE "sandbox.state"

/*
 * Build a sandbox. On success *out owns it; on failure nothing is left
 * behind (no process, cgroup, netns, veth or ruleset) and the cause says
 * what failed. MOAT_ERR_INVALID (bad name, workspace), MOAT_ERR_EXISTS
 * (a sandbox of that name holds its cgroup), MOAT_ERR_UNSUPPORTED
 * (hard_requirement on a kernel without Landlock), MOAT_ERR_SYSTEM.
 */
int moat_sandbox_create(const struct moat_sandbox_config *c,
    struct moat_sandbox **out, struct moat_cause *cause);

/*
 * Take over a running sandbox that an earlier creator (a moatd that
 * died or stopped with live restore) left behind: read the state record
 * in c->state_dir, check that its init is the same process (pid, start
 * time, boot), that the config still fits it (name, workspace, rootfs,
 * net index, pool, proxy port), reopen its namespaces (pidfd and
 * /proc/INIT/ns/...), cgroups and network by path, put its nftables
 * tables back as create made them, and prepare the confinement
 * (seccomp program, Landlock ruleset from c->policy against init's
 * view) as create does. The caller becomes its owner, as the creator:
 * moat_sandbox_free kills it.
 * MOAT_ERR_NOTFOUND: nothing to adopt (no record, or its init is gone);
 * MOAT_ERR_INVALID: the config changed in a way the running sandbox
 * cannot follow (the cause says what); MOAT_ERR_SYSTEM: a part of it is
 * missing or cannot be opened. On any error nothing was changed: the
 * caller purges (moat_sandbox_purge) and creates a new one.
 */
int moat_sandbox_adopt(const struct moat_sandbox_config *c,
    struct moat_sandbox **out, struct moat_cause *cause);

/*
 * Kill every process of the sandbox, wait for them, remove its cgroups,
 * network and state record. NULL is fine. In a process other than the
 * owner it only releases the memory and fds (the sandbox lives on).
 */
void moat_sandbox_free(struct moat_sandbox *sb);

/*
 * Release the memory and fds only, also in the owner: the sandbox runs
 * on (live restore) and its state record stays for the next owner's
 * moat_sandbox_adopt. NULL is fine.
 */
void moat_sandbox_detach(struct moat_sandbox *sb);

/*
 * Remove what a sandbox of this name left behind when its creator was
 * killed (SIGKILL, a crash) or that cannot be adopted: cgroups (killing
 * any process still in them, init included) and the network
 * (moat_net_purge). Its state record (if any) is the caller's to
 * remove. Nothing there is fine. Never call it for a sandbox someone
 * owns. 0, MOAT_ERR_AGAIN (a cgroup would not empty) or MOAT_ERR_SYSTEM.
 */
int moat_sandbox_purge(const char *name, struct moat_cause *cause);

struct moat_spawn {
	const char *const *argv; /* NULL: the user's login shell */
	/* Extra K=V, already allowlisted by the caller (TERM, LANG, ...). */
	const char *const *env;
	int fds[3];		 /* become 0, 1, 2; -1 means /dev/null */
	bool pty;		 /* fds[0] is a pty slave: setsid, TIOCSCTTY */
	bool login;		 /* argv[0] of the shell gets a leading '-' */
	const char *cwd;	 /* NULL: HOME */
};

/*
 * Start one process inside the sandbox, as a child of the caller (who
 * waitpid()s it). The process is in every namespace and cgroup of the
 * sandbox, with a reset environment, Landlock, seccomp, no privileges.
 * On failure the child is killed and reaped and the cause names the step:
 * "spawn step 'exec' failed: No such file or directory" (the code is
 * MOAT_ERR_NOTFOUND for a missing command, else MOAT_ERR_SYSTEM).
 */
int moat_sandbox_spawn(struct moat_sandbox *sb, const struct moat_spawn *s,
    pid_t *pid, struct moat_cause *cause);

/*
 * A pty from the sandbox's own devpts (so `tty` inside names it and
 * /dev/pts/N exists there), its slave owned by the sandbox user, mode
 * 0620. Give *slave as fds[0..2] with pty = true; the caller keeps
 * *master. Both close-on-exec. MOAT_ERR_SYSTEM with the cause.
 */
int moat_sandbox_openpty(struct moat_sandbox *sb, int *master, int *slave,
    struct moat_cause *cause);

/*
 * Once per daemon (moatd, moat run): make the OOM killer pick sandbox
 * processes before us (-900 for us; sandbox processes get +500).
 */
void moat_sandbox_protect_self(void);

const char *moat_sandbox_name(const struct moat_sandbox *sb);
const char *moat_sandbox_home(const struct moat_sandbox *sb); /* /sandbox */
uid_t moat_sandbox_uid(const struct moat_sandbox *sb);
gid_t moat_sandbox_gid(const struct moat_sandbox *sb);
pid_t moat_sandbox_init_pid(const struct moat_sandbox *sb);
/* The proxy's listen address on the host side, e.g. "10.200.0.1". */
const char *moat_sandbox_host_addr(const struct moat_sandbox *sb);
uint16_t moat_sandbox_proxy_port(const struct moat_sandbox *sb);
/* The sandbox's netns (owned by the sandbox; do not close). */
int moat_sandbox_netns_fd(const struct moat_sandbox *sb);
/*
 * Every fd the sandbox holds (namespaces, cgroup, Landlock, network),
 * for a forked holder that closes all others (an SSH monitor); writes at
 * most max and returns how many it wrote.
 */
size_t moat_sandbox_fds(const struct moat_sandbox *sb, int *fds, size_t max);
/* A file listing every pid of the sandbox, one per line (cgroup.procs). */
const char *moat_sandbox_procs_path(const struct moat_sandbox *sb);
/*
 * The attribution maps (owned by the sandbox; do not close): the map of
 * connections to the proxy, the SYN map (both keyed by 4-tuple, see
 * common/attrib.h) and the cgroup v2 id every record carries. 0, or
 * MOAT_ERR_NOTFOUND when the sandbox has none; *why then says why not.
 */
int moat_sandbox_attrib(const struct moat_sandbox *sb, int *conns_fd,
    int *tuples_fd, uint64_t *cgroup_id, const char **why);
/*
 * Attach caller attribution now, as create does with mode (an adopted
 * sandbox has none until asked: moat_sandbox_attrib says why). 0 when
 * attached, already there, off, or failed under MOAT_ATTRIB_AUTO (the
 * why of moat_sandbox_attrib says so); the error under
 * MOAT_ATTRIB_REQUIRE.
 */
int moat_sandbox_attrib_attach(struct moat_sandbox *sb,
    enum moat_attrib_mode mode, struct moat_cause *cause);
/*
 * The fds of the BPF links that keep the attribution programs attached
 * (owned by the sandbox): whoever holds a copy keeps them attached, so
 * the proxy is given them too and attribution outlives moatd. Returns
 * how many were put in fds (at most max); 0 without attribution.
 */
size_t moat_sandbox_attrib_links(const struct moat_sandbox *sb, int *fds,
    size_t max);

/* A socket created inside the sandbox's netns (close-on-exec). */
int moat_sandbox_socket(struct moat_sandbox *sb, int domain, int type,
    int proto, struct moat_cause *cause);
/* The NFLOG socket of the sandbox's netns; see sandbox/net.h. */
int moat_sandbox_nflog_open(struct moat_sandbox *sb, int *fd,
    struct moat_cause *cause);

#endif
